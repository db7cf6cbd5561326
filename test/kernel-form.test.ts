// The kernel form (codegen/kernel/): every example's forward and backward graphs, and every
// symbolic-dimension case, lowered to a host program whose reference evaluation stores, launch
// by launch, what the float64 interpreter computes (through the memory plan's shared buffers);
// the printed form parses back to itself and verifies; golden kernel form of two examples; the
// verifier's errors by their text. Every fusion group of those graphs lowers to one kernel or one
// routine (+ epilogue): test/fusion-kernel.ts, also run on the fuzz graphs and the conformance cases.

import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindDims, interpret } from '../ir/interp.js';
import type { Graph } from '../ir/graph.js';
import type { Plan } from '../ir/memplan.js';
import { allUnits } from '../ir/memplan.js';
import { compileGraphs } from '../src/build.js';
import type { HostProgram, Launch } from '../codegen/kernel/form.js';
import { lowerProgram } from '../codegen/kernel/lower.js';
import type { Dims, HostEnv, Memory } from '../codegen/kernel/eval.js';
import { evalRoutine, runEntry } from '../codegen/kernel/eval.js';
import type { Names } from '../codegen/ts/render.js';
import { renderKernel } from '../codegen/ts/render.js';
import { printLaunch, printProgram } from '../codegen/kernel/print.js';
import { parseLaunch, parseProgram } from '../codegen/kernel/parse.js';
import { verifyLaunch, verifyProgram } from '../codegen/kernel/verify.js';
import { Dag, LOWERING } from '../codegen/kernel/rules.js';
import type { Kernel } from '../codegen/kernel/form.js';
import { offsetTerms } from '../codegen/kernel/form.js';
import { OPS } from '../ir/ops.js';
import { CompileError } from '../ir/errors.js';
import type { Inst } from '../ir/types.js';
import { CASES } from './symbolic-cases.js';
import { checkFusionLowering } from './fusion-kernel.js';
import { buildAndImport, expectGolden, modelFile, randomArgs, reference, relErr, rng, ROOT } from './helpers.js';
import type { Size } from '../ir/dims.js';
import { bindShape, numelSize, size, sizeText } from '../ir/dims.js';
import { numel } from '../ir/types.js';

const EXAMPLES = readdirSync(path.join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();

const compiled = new Map<string, { fwd: Graph; bwd: Graph; plan: Plan }>();
function build(file: string) {
  let c = compiled.get(file);
  if (!c) compiled.set(file, (c = compileGraphs(file)));
  return c;
}

/** The arrays each launch stores. */
function storedBy(l: Launch): string[] {
  if (l.kind === 'routine') return [l.output.arg, ...(l.epilogue ? storedBy(l.epilogue) : [])];
  return l.stores.map((s) => s.access.arg);
}

const references = new Map<string, ReturnType<typeof computeReference>>();
/** Random arguments and the interpreter's values, once per graph, seed and sizes. */
function referenceOf(fwd: Graph, bwd: Graph, seed: number, dims: Record<string, number>, fix?: (inputs: Record<string, Float32Array | Int32Array>, dims: Record<string, number>) => void) {
  const key = `${fwd.name}/${seed}/${JSON.stringify(dims)}`;
  let r = references.get(key);
  if (!r) references.set(key, (r = computeReference(fwd, bwd, seed, dims, fix)));
  return r;
}

function computeReference(fwd: Graph, bwd: Graph, seed: number, dims: Record<string, number>, fix?: (inputs: Record<string, Float32Array | Int32Array>, dims: Record<string, number>) => void) {
  const { params, inputs } = randomArgs(fwd, seed, 0.5, dims);
  fix?.(inputs, dims);
  for (const k of Object.keys(inputs)) if (k === 'bnvar') inputs[k] = (inputs[k] as Float32Array).map(Math.abs);
  // module buffers (running statistics): positive values, a variance among them
  const r = rng(seed + 99);
  const buffers: Record<string, Float64Array> = {};
  for (const inst of fwd.insts)
    if (inst.op === 'buffer') buffers[inst.attrs.name] = Float64Array.from({ length: numel(bindShape(fwd.type(inst.result).shape, dims)) }, () => 0.5 + r());
  const fv = interpret(fwd, { params, inputs, dims, buffers });
  const bv = interpret(bwd, { fwd: fv, dims });
  return { params, inputs, buffers, fv, bv };
}

/**
 * Runs valueAndGrad of the host program and checks every array right after the launch that
 * stores it against the interpreter's value; returns the number of values checked.
 */
function checkProgram(
  fwd: Graph,
  bwd: Graph,
  p: HostProgram,
  seed: number,
  dims: Record<string, number> = {},
  fix?: (inputs: Record<string, Float32Array | Int32Array>, dims: Record<string, number>) => void,
  launch?: HostEnv['launch'],
  bodyValues: ReadonlySet<string> = new Set(),
): { checked: number; launches: number; inLoops: number } {
  const { params, inputs, buffers, fv, bv } = referenceOf(fwd, bwd, seed, dims, fix);
  const want = (name: string) => fv.get(name) ?? bv.get(name);
  const bound = bindDims(fwd, { inputs, dims });
  const scratch = new Set(p.arrays.filter((a) => a.place.kind === 'scratch').map((a) => a.name));
  // the values of a loop's body change at every step: the interpreter has no one value for them
  // (the loop's results, read by the launches after it, and the gradients are checked)
  const perStep = new Set(p.arrays.filter((a) => want(a.name) === undefined && !scratch.has(a.name) && bodyValues.has(a.name)).map((a) => a.name));
  let checked = 0;
  const launched = new Set<string>();
  const inLoops = new Set<string>();
  const entry = p.entries.find((e) => e.name === 'valueAndGrad')!;
  const out = runEntry(p, entry, {
    params,
    inputs,
    state: buffers,
    dims: bound,
    launch,
    after: (l, mem) => {
      launched.add(l.name);
      const stored = storedBy(l);
      if (stored.some((n) => perStep.has(n)) && stored.every((n) => perStep.has(n) || scratch.has(n))) inLoops.add(l.name);
      for (const name of storedBy(l)) {
        if (scratch.has(name) || perStep.has(name)) continue;
        const w = want(name);
        expect(w, `interpreter value ${name}`).toBeDefined();
        expect(relErr(mem(name), w!.data), `${l.name} stores ${name}`).toBeLessThan(1e-9);
        checked++;
      }
    },
  });
  for (const o of fwd.outputs.filter((o) => o.name === 'loss')) expect(relErr(out.loss!, fv.get(fwd.value(o.value).name)!.data)).toBeLessThan(1e-9);
  for (const o of bwd.outputs) {
    const d = bwd.def(o.value);
    const name = d.op === 'fwd' ? d.attrs.name : bwd.value(o.value).name;
    expect(relErr(out[o.name]!, want(name)!.data), `gradient of ${o.name}`).toBeLessThan(1e-9);
  }
  const fwdOut = runEntry(p, p.entries.find((e) => e.name === 'forward')!, { params, inputs, state: buffers, dims: bound });
  for (const o of fwd.outputs) expect(relErr(fwdOut[o.name]!, fv.get(fwd.value(o.value).name)!.data), `output ${o.name}`).toBeLessThan(1e-9);
  return { checked, launches: launched.size, inLoops: inLoops.size };
}

/** The names of the values of the loops' bodies (ir/loops.ts). */
function bodyValuesOf(plan: Plan): Set<string> {
  return new Set([...plan.bodies.keys()].flatMap((g) => g.insts.map((i) => g.value(i.result).name)));
}

describe.each(EXAMPLES)('the kernel form of example %s', (name) => {
  const file = path.join(ROOT, 'examples', `${name}.ts`);
  it('evaluates to the float64 interpreter, launch by launch, in the planned buffers', () => {
    const { fwd, bwd, plan } = build(file);
    const p = lowerProgram(fwd, bwd, plan);
    const all = allUnits(plan);
    const units = all.length;
    const { checked, launches, inLoops } = checkProgram(fwd, bwd, p, 1, {}, undefined, undefined, bodyValuesOf(plan));
    // a launch inside a loop stores values of the step (checked through the loop's results and the gradients)
    expect(inLoops > 0).toBe(plan.bodies.size > 0);
    // every unit that computes something is a launch (views and reshapes are none, nor a scan's loop and its results: its body's units are)
    const views = all.filter((u) => ['reshape', 'stop_gradient', 'scan', 'scan_out'].includes(u.insts[0]!.op)).length;
    expect(launches).toBe(units - views);
    expect(checked).toBeGreaterThanOrEqual(launches - inLoops);
  });

  it('runs its kernels through the flat module\'s renderer (codegen/ts/render.ts) alike', () => {
    const { fwd, bwd, plan } = build(file);
    const { launches } = checkProgram(fwd, bwd, lowerProgram(fwd, bwd, plan), 1, {}, undefined, rendered, bodyValuesOf(plan));
    expect(launches).toBeGreaterThan(0);
  });

  it('verifies, and prints text that parses back to the same program', () => {
    const { fwd, bwd, plan } = build(file);
    const p = lowerProgram(fwd, bwd, plan);
    expect(verifyProgram(p)).toEqual([]);
    const text = printProgram(p);
    const back = parseProgram(text);
    expect(printProgram(back)).toBe(text);
    expect(back).toEqual(p);
  });

  it('lowers every fusion group to one kernel, or one routine and its epilogue', () => {
    const { fwd, bwd, plan } = build(file);
    expect(fwd.groups.length + bwd.groups.length).toBeGreaterThan(0);
    checkFusionLowering(fwd, bwd, plan);
  });
});

describe.each(['makemore', 'gpt'])('the golden kernel form of %s', (name) => {
  it('matches test/golden/kernel/', () => {
    const { fwd, bwd, plan } = build(path.join(ROOT, 'examples', `${name}.ts`));
    expectGolden(`kernel/${name}.kernels`, printProgram(lowerProgram(fwd, bwd, plan)));
  });
});

/** Launches through the flat module's renderer (codegen/ts/render.ts): kernels and routines' epilogues as compiled JavaScript. */
function rendered(l: Launch, mem: Memory, dims: Dims): void {
  const run = (k: Kernel) => new Function('A', 'dims', renderFunction(k))(new Proxy({}, { get: (_t, name) => mem(String(name)) }), dims);
  if (l.kind === 'kernel') return run(l);
  evalRoutine({ ...l, epilogue: undefined }, mem, dims);
  if (l.epilogue) run(l.epilogue);
}

function caseSource(name: string, body: string): string {
  return `import { model } from 'graphc';\nexport default model('${name}', (g) => {${body.replaceAll('BB', "'B'").replaceAll('TT', "'T'")}\n});\n`;
}

describe.each(CASES.filter((c) => !c.error).map((c) => [c.name, c] as const))('the kernel form of symbolic case %s', (name, cs) => {
  it('evaluates to the float64 interpreter at two sizes', () => {
    const { fwd, bwd, plan } = build(modelFile(caseSource(`kf_${name}`, cs.body)));
    const p = lowerProgram(fwd, bwd, plan);
    for (const B of [(cs.Bs ?? [2])[0]!, (cs.Bs ?? [5]).at(-1)!]) {
      const dims: Record<string, number> = cs.T ? { B, T: cs.T[0]! } : { B };
      const { launches } = checkProgram(fwd, bwd, p, 10 + B, dims, cs.fix);
      checkProgram(fwd, bwd, p, 10 + B, dims, cs.fix, rendered);
      expect(launches).toBeGreaterThan(0);
    }
    expect(verifyProgram(p)).toEqual([]);
    const text = printProgram(p);
    expect(printProgram(parseProgram(text))).toBe(text);
    checkFusionLowering(fwd, bwd, plan);
  });
});

describe('the lowering table', () => {
  it('has an entry for every op: a table without one does not type-check', () => {
    const { neg: _neg, ...rest } = LOWERING;
    // @ts-expect-error: neg has no lowering
    const partial: typeof LOWERING = rest;
    expect(Object.keys(partial)).not.toContain('neg');
    expect(Object.keys(LOWERING).sort()).toEqual(Object.keys(OPS).sort());
  });

  it('names the op it cannot lower in a CompileError', () => {
    const { fwd, bwd, plan } = compileGraphs(path.join(ROOT, 'examples', 'neuron.ts'));
    const inst = fwd.insts.find((i) => i.op === 'mul')!;
    const bogus = { ...inst, op: 'custom_grad', attrs: { rule: 0, inputs: 1 }, loc: { file: 'neuron.ts', line: 3, col: 7 } } as unknown as Inst;
    const units = { forward: [...plan.units.forward, { graph: fwd, kind: 'single' as const, insts: [bogus] }], backward: plan.units.backward };
    const lower = () => lowerProgram(fwd, bwd, { ...plan, units });
    expect(lower).toThrow(CompileError);
    expect(lower).toThrow(
      'the kernel form cannot lower custom_grad (neuron.ts:3:7): custom_grad is dropped before lowering (after the reverse pass); one left here is an internal error',
    );
    // the fix says what the user can do (every target renders the kernel form: none builds the op)
    const hint = (() => {
      try {
        lower();
      } catch (e) {
        return (e as CompileError).hint;
      }
    })();
    expect(hint).toBe('this is a bug in graphc, not in the model: please report it with the model; writing this line with other ops may avoid it meanwhile');
  });
});

describe('the verifier', () => {
  const arrays = (name: string) =>
    ({ x: { dtype: 'f32', numel: size(2048) }, y: { dtype: 'f32', numel: size(64) }, s: { dtype: 'f32', numel: size(1) }, idx: { dtype: 'i32', numel: size(32) } })[name] as
      | { dtype: 'f32' | 'i32'; numel: ReturnType<typeof size> }
      | undefined;
  const problems = (text: string) => verifyLaunch(parseLaunch(text), arrays);
  const kernel = (head: string, ...body: string[]) => [head, ...body.map((l) => `  ${l}`), 'end'].join('\n');

  it('accepts a valid reduction with its epilogue', () => {
    expect(problems(kernel('kernel k0 [32, 64] reduce (0)', '%0: f32 = load x[64*d0 + d1]', '%1: f32 = reduce.sum %0 acc f64', '%2: f32 = const 0.5', '%3: f32 = mul %1, %2', 'store y[d1] = %3'))).toEqual([]);
  });

  it('names a load outside its array', () => {
    expect(problems(kernel('kernel k0 [32, 65]', '%0: f32 = load x[64*d0 + d1]', 'store x[64*d0 + d1] = %0'))).toEqual([
      'k0: %0 = load x[64*d0 + d1] reaches 0..2048, outside x: f32[2048]',
    ]);
  });

  it('names a load whose rank is not the domain\'s', () => {
    const k = parseLaunch(kernel('kernel k0 [32, 64]', '%0: f32 = load x[64*d0 + d1]', 'store x[64*d0 + d1] = %0')) as Kernel;
    const n = k.nodes[0] as Extract<Kernel['nodes'][number], { op: 'load' }>;
    const bad = { ...k, nodes: [{ ...n, access: { ...n.access, strides: n.access.strides.slice(1) } }] };
    expect(verifyLaunch(bad, arrays)).toEqual(['k0: %0 loads x with 1 strides in a domain of rank 2']);
  });

  it('names a use before definition and mistyped nodes', () => {
    expect(problems(kernel('kernel k0 [64]', '%0: f32 = add %1, %1', 'store y[d0] = %0'))).toEqual(['k0: %0 uses %1, which is not defined before it']);
    expect(problems(kernel('kernel k0 [64]', '%0: f32 = load y[d0]', '%1: f32 = lt %0, %0', 'store y[d0] = %1'))).toEqual(['k0: %1 is typed f32 but lt gives bool']);
    expect(problems(kernel('kernel k0 [64]', '%0: f32 = load y[d0]', '%1: f32 = where %0, %0, %0', 'store y[d0] = %1'))).toEqual(['k0: %1: where needs a bool condition, got f32']);
    expect(problems(kernel('kernel k0 [32]', '%0: i32 = load idx[d0]', '%1: f32 = exp %0', 'store y[d0] = %1'))).toEqual(['k0: %1: exp needs f32, got i32']);
  });

  it('names reduced axes that are not the domain\'s, and a reduction in a kernel that reduces nothing', () => {
    expect(problems(kernel('kernel k0 [32, 64] reduce (2)', '%0: f32 = load x[64*d0 + d1]', '%1: f32 = reduce.sum %0 acc f64', 'store y[d1] = %1'))).toEqual([
      'k0: reduced axes (2) are not sorted distinct axes of the domain [32, 64]',
    ]);
    expect(problems(kernel('kernel k0 [32, 64]', '%0: f32 = load x[64*d0 + d1]', '%1: f32 = reduce.sum %0 acc f64', 'store x[64*d0 + d1] = %1'))).toEqual([
      'k0: %1 reduces in a kernel that reduces no axis',
    ]);
  });

  it('names an epilogue that reads what varies along the reduced axes', () => {
    expect(problems(kernel('kernel k0 [32, 64] reduce (0)', '%0: f32 = load x[64*d0 + d1]', '%1: f32 = reduce.max %0 acc f64', '%2: f32 = add %1, %0', 'store y[d1] = %2'))).toEqual([
      'k0: %2 is computed after the reduction but reads %0, which varies along the reduced axis d0',
      'k0: store y[d1] is written once per kept point but %2 varies along the reduced axis d0',
    ]);
  });

  it('names stores that do not cover their array exactly once', () => {
    expect(problems(kernel('kernel k0 [32, 64]', '%0: f32 = load x[64*d0 + d1]', 'store y[d1] = %0'))).toEqual([
      'k0: store y[d1] writes each element more than once (stride 0 along d0 of size 32)',
    ]);
    expect(problems(kernel('kernel k0 [32]', '%0: f32 = const 1', 'store y[2*d0] = %0'))).toEqual(['k0: store y[2*d0] does not cover its array densely (no axis of stride 1)']);
    expect(problems(kernel('kernel k0 [32]', '%0: f32 = const 1', 'store y[d0] = %0'))).toEqual(['k0: store y[d0] covers 32 elements from 0 of an array of 64']);
    expect(problems(kernel('kernel k0 [64]', '%0: f32 = const 1', 'store y[d0] = %0', 'store y[d0] = %0'))).toEqual(['k0: store y[d0] writes y a second time']);
  });

  it('names a routine whose epilogue is not over its output', () => {
    const text = [
      'routine r0 matmul {"transA":false,"transB":false}',
      '  in x: [32, 64] strides [64, 1] + 0',
      '  in y: [64, 1] strides [1, 1] + 0',
      '  out s: [1, 1] strides [1, 1] + 0',
      '  kernel k1 [2]',
      '    %0: f32 = load s[0]',
      '    store y[d0] = %0',
      '  end',
      'end',
    ].join('\n');
    expect(problems(text)).toEqual([
      "r0: the epilogue's domain [2] is not the output's shape [1, 1]",
      'r0 epilogue: store y[d0] covers 2 elements from 0 of an array of 64',
    ]);
  });

  it('parses back what it prints, guards and symbolic sizes included', () => {
    const text = kernel('kernel k0 [B, 8]', '%0: f32 = load x[d0 + 8*B*d1 - 2*B] if 2 <= d0 < 10, 0 <= d1 < B', '%1: f32 = dim B', '%2: f32 = mul %0, %1', 'store y[8*d0 + d1] = %2  # x * B');
    expect(printLaunch(parseLaunch(text))).toBe(text + '\n');
  });

  it('parses back an offset that is a sum of sizes of different symbols (a pad of [3, B, 2] along axes 0 and 2, its gradient)', () => {
    const pad = kernel('kernel k0 [4, B, 3]', '%0: f32 = load x[2*B*d0 + 2*d1 + d2 - 1 - 2*B] if 1 <= d0 < 4, 1 <= d2 < 3', 'store y[3*B*d0 + 3*d1 + d2] = %0  # x');
    const k = parseLaunch(pad) as Kernel;
    expect(k.nodes[0]).toMatchObject({ access: { offset: [size(-1), { coef: -2, syms: ['B'] }] } });
    expect(printLaunch(k)).toBe(pad + '\n');
    const slice = kernel('kernel k1 [3, B, 2]', '%0: f32 = load y[3*B*d0 + 3*d1 + d2 + 1 + 3*B + 6*B*T]', 'store x[2*B*d0 + 2*d1 + d2] = %0  # y');
    expect(printLaunch(parseLaunch(slice))).toBe(slice + '\n');
  });
});

// the ops that no example computes: average pooling and its gradient, max pooling's second
// derivative (max_pool_pick), a padded convolution, concat, max and its argmax gradient,
// stopGradient, dropout's mask and the mode flag (staged as evaluation: ones and 0)
const EXTRA = `import { model } from 'graphc';
export default model('kf_extra', (g) => {
  const x = g.input('x', [2, 3, 6, 6]);
  const W = g.param('W', [4, 3, 3, 3]);
  const b = g.param('b', [4]);
  const c = g.conv2d(x, W, { bias: b, padding: 1 }).sigmoid();
  const a = g.avgPool2d(c, 2);
  const m = g.maxPool2d(c.add(c.stopGradient().mul(0.5)), 2);
  const [dc] = g.grad(m.square().sum(), [c]);
  const y = g.dropout(a.add(m).reshape([2, 36]), 0.25);
  const z = g.concat([y, y.abs().sqrt()], 1).max(1);
  const loss = z.exp().log().sum().add(dc.square().mean()).div(2).add(y.maximum(0.1).minimum(0.9).mean());
  return { loss };
});
`;

describe('the kernel form of the ops no example computes', () => {
  it('evaluates to the float64 interpreter, round-trips and verifies', () => {
    const { fwd, bwd, plan } = build(modelFile(EXTRA));
    const p = lowerProgram(fwd, bwd, plan);
    const ops = new Set(launchesOfKind(p));
    for (const op of ['avg_pool', 'avg_pool_grad', 'max_pool_pick', 'max_pool_grad', 'conv_weight_grad', 'argmax_mask']) expect(ops, op).toContain(op);
    const { checked } = checkProgram(fwd, bwd, p, 5);
    expect(checked).toBeGreaterThan(10);
    expect(verifyProgram(p)).toEqual([]);
    const text = printProgram(p);
    expect(text).toMatch(/ if 0 <= d1 < 36\b/); // concat's guarded loads
    expect(printProgram(parseProgram(text))).toBe(text);
  });
});

function launchesOfKind(p: HostProgram): string[] {
  return p.entries.flatMap((e) => e.steps.flatMap((s) => (s.kind === 'launch' && s.launch.kind === 'routine' ? [s.launch.op] : [])));
}

/**
 * A kernel as the flat module renders it (codegen/ts/render.ts), as the body of a JavaScript
 * function `(A, dims)`, A the arrays by name and dims the bound sizes.
 */
function renderFunction(k: Kernel): string {
  const syms = new Set<string>();
  const sizes: Size[] = [];
  for (const d of k.domain) if (typeof d === 'string') for (const x of size(d).syms) syms.add(x);
  for (const n of k.nodes) {
    if (n.op === 'load') sizes.push(...n.access.strides, ...offsetTerms(n.access.offset), ...(n.access.guards ?? []).map((g) => g.hi));
    if (n.op === 'dim') syms.add(n.name);
  }
  for (const s of k.stores) sizes.push(...s.access.strides, ...offsetTerms(s.access.offset));
  for (const s of sizes) for (const x of s.syms) syms.add(x);
  const kept = k.domain.filter((_d, i) => !k.axes.includes(i));
  const reduces = k.nodes.filter((n) => n.op === 'reduce').length;
  const names: Names = { arr: (n) => `A[${JSON.stringify(n)}]`, nodes: new Map(), views: new Map() };
  return [
    ...(syms.size ? [`const { ${[...syms].join(', ')} } = dims;`] : []),
    ...Array.from({ length: reduces }, (_x, j) => `const _acc${j} = new Float64Array(${sizeText(numelSize(kept))});`),
    ...renderKernel(k, names, (j) => `_acc${j}`),
  ].join('\n');
}

describe("the flat module's renderer", () => {
  it("names no local like a reduction's accumulator (a value named sum0 made `const _sum0` twice)", async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('coll', (g) => {
  const x = g.param('x', [4, 3]);
  const sum0 = x.sum(1).mul(2);
  const y = sum0.mul(sum0).add(sum0);
  return y.sum();
});
`);
    const { c, mod } = await buildAndImport(file);
    const { params, inputs } = randomArgs(c.fwd, 3);
    const ref = reference(c.fwd, c.bwd, params, inputs);
    const r = mod.valueAndGrad(params, inputs);
    expect(relErr([r.loss], ref.outputs.loss!.data)).toBeLessThan(1e-5);
    expect(relErr(r.grads.x!, ref.grads.x!)).toBeLessThan(1e-5);
  });
});

// the index primitives (ir/indexops.ts): argmax/argmin and cumsum routines (i32 results for the
// first two), flip a copy kernel with negative strides, arange a coordinate, cast
const INDEX = `import { model } from 'graphc';
export default model('kf_index', (g) => {
  const a = g.param('a', [4, 6]);
  const i = g.arange(6);
  const y = a.flip([0, 1]).cumsum(1).mul(i.float()).add(a.flip(1).mul(i.unsqueeze(0).lt(3)));
  const picked = g.pick(y, y.argmax(1)).add(g.pick(y, y.argmin(-1)));
  return { loss: picked.sum() };
});
`;

describe('the kernel form of the index primitives', () => {
  it('evaluates to the float64 interpreter, round-trips (i32 routines included) and verifies', () => {
    const { fwd, bwd, plan } = build(modelFile(INDEX, 'kf_index.ts'));
    const p = lowerProgram(fwd, bwd, plan);
    const routines = p.entries.flatMap((e) => e.steps.flatMap((s) => (s.kind === 'launch' && s.launch.kind === 'routine' ? [s.launch] : [])));
    for (const op of ['argmax', 'argmin', 'cumsum']) expect(routines.map((r) => r.op), op).toContain(op);
    for (const r of routines) expect(r.dtype, r.op).toBe(r.op === 'argmax' || r.op === 'argmin' ? 'i32' : 'f32');
    const { checked } = checkProgram(fwd, bwd, p, 5);
    expect(checked).toBeGreaterThan(5);
    expect(verifyProgram(p)).toEqual([]);
    const text = printProgram(p);
    expect(text).toContain('load a[-6*d0 - d1 + 23]'); // flip([0, 1]) of a [4, 6]: the reversed walk from the last element
    const back = parseProgram(text);
    expect(printProgram(back)).toBe(text);
    const dtypes = back.entries.flatMap((e) => e.steps.flatMap((s) => (s.kind === 'launch' && s.launch.kind === 'routine' ? [`${s.launch.op}:${s.launch.dtype}`] : [])));
    expect(dtypes).toContain('argmax:i32');
  });
});

describe('the DAG builder hash-conses constants by value', () => {
  it('keeps NaN, ±Infinity, 0 and −0 apart (JSON writes NaN and ±Infinity as null, −0 as 0)', () => {
    const dag = new Dag();
    const ids = [NaN, Infinity, -Infinity, 0, -0, 1].map((v) => dag.const(v));
    expect(new Set(ids).size).toBe(6);
    expect(dag.const(NaN)).toBe(ids[0]);
    expect(dag.const(-0)).toBe(ids[4]);
    expect(Object.is((dag.nodes[ids[4]!] as { value: number }).value, -0)).toBe(true);
  });
});

// Issue #30: a batch norm over rows, whose backward schedules the small bnvar_inv·(1/N) (forward
// values alone) between Σ dbnraw and Σ dbnraw·bnraw: both sums, and the gain's and bias's, are
// one pass over the rows (the small product closed the first group, and the second sum was a
// second pass over the same two tensors), and the kernels still give the interpreter's values.
const BN_ROWS = `import { model } from 'graphc';
export default model('kf_bn_rows', (g) => {
  const x = g.input('x', [2, 3, 2, 2]);
  const rows = x.mul(g.param('s', [1, 3, 1, 1], { init: 'uniform' })).tanh().transpose([0, 2, 3, 1]).reshape([8, 3]);
  const bn = g.batchNorm(rows, g.param('g', [3], { init: 'uniform' }), g.param('b', [3]));
  return { loss: bn.reshape([2, 2, 2, 3]).transpose([0, 3, 1, 2]).relu().square().mean() };
});
`;

describe('the fusion of a batch norm over rows', () => {
  it('sums the backward over the rows in one pass', () => {
    const { fwd, bwd, plan } = build(modelFile(BN_ROWS));
    const passes = new Set<number>();
    for (const inst of bwd.insts)
      if (inst.op === 'sum' && sameRows(bwd.type(inst.args[0]!).shape)) passes.add(bwd.groups.findIndex((gr) => gr.insts.includes(inst.id)));
    expect([...passes]).toHaveLength(1);
    expect([...passes][0]).toBeGreaterThanOrEqual(0);
    expect(bwd.groups[[...passes][0]!]!.insts.filter((id) => bwd.insts.find((i) => i.id === id)!.op === 'sum')).toHaveLength(4);
    const { checked } = checkProgram(fwd, bwd, lowerProgram(fwd, bwd, plan), 3);
    expect(checked).toBeGreaterThan(0);
  });
});

const sameRows = (s: readonly unknown[]) => s.length === 2 && s[0] === 8 && s[1] === 3;
