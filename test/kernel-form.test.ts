// The kernel form (codegen/kernel/): every example's forward and backward graphs, and every
// symbolic-dimension case, lowered to a host program whose reference evaluation stores, launch
// by launch, what the float64 interpreter computes (through the memory plan's shared buffers);
// the printed form parses back to itself and verifies; golden kernel form of two examples; the
// verifier's errors by their text.

import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindDims, interpret } from '../ir/interp.js';
import type { Graph } from '../ir/graph.js';
import type { Plan } from '../ir/memplan.js';
import { compileGraphs } from '../src/build.js';
import type { HostProgram, Launch } from '../codegen/kernel/form.js';
import { lowerProgram } from '../codegen/kernel/lower.js';
import { runEntry } from '../codegen/kernel/eval.js';
import { printProgram } from '../codegen/kernel/print.js';
import { parseProgram } from '../codegen/kernel/parse.js';
import { verifyProgram } from '../codegen/kernel/verify.js';
import { CASES } from './symbolic-cases.js';
import { expectGolden, modelFile, randomArgs, relErr, rng, ROOT } from './helpers.js';
import { bindShape } from '../ir/dims.js';
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
): { checked: number; launches: number } {
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
  const want = (name: string) => fv.get(name) ?? bv.get(name);
  const bound = bindDims(fwd, { inputs, dims });
  const scratch = new Set(p.arrays.filter((a) => a.place.kind === 'scratch').map((a) => a.name));
  let checked = 0;
  let launches = 0;
  const entry = p.entries.find((e) => e.name === 'valueAndGrad')!;
  const out = runEntry(p, entry, {
    params,
    inputs,
    state: buffers,
    dims: bound,
    after: (l, mem) => {
      launches++;
      for (const name of storedBy(l)) {
        if (scratch.has(name)) continue;
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
  return { checked, launches };
}

describe.each(EXAMPLES)('the kernel form of example %s', (name) => {
  const file = path.join(ROOT, 'examples', `${name}.ts`);
  it('evaluates to the float64 interpreter, launch by launch, in the planned buffers', () => {
    const { fwd, bwd, plan } = build(file);
    const p = lowerProgram(fwd, bwd, plan);
    const units = plan.units.forward.length + plan.units.backward.length;
    const { checked, launches } = checkProgram(fwd, bwd, p, 1);
    // every unit that computes something is a launch (views and reshapes are none)
    const views = [...plan.units.forward, ...plan.units.backward].filter((u) => u.insts[0]!.op === 'reshape' || u.insts[0]!.op === 'stop_gradient').length;
    expect(launches).toBe(units - views);
    expect(checked).toBeGreaterThanOrEqual(launches);
  });

  it('prints text that parses back to the same program, which verifies and evaluates alike', () => {
    const { fwd, bwd, plan } = build(file);
    const p = lowerProgram(fwd, bwd, plan);
    expect(verifyProgram(p)).toEqual([]);
    const text = printProgram(p);
    const back = parseProgram(text);
    expect(printProgram(back)).toBe(text);
    expect(verifyProgram(back)).toEqual([]);
    checkProgram(fwd, bwd, back, 2);
  });
});

describe.each(['makemore', 'gpt'])('the golden kernel form of %s', (name) => {
  it('matches test/golden/kernel/', () => {
    const { fwd, bwd, plan } = build(path.join(ROOT, 'examples', `${name}.ts`));
    expectGolden(`kernel/${name}.kernels`, printProgram(lowerProgram(fwd, bwd, plan)));
  });
});

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
      expect(launches).toBeGreaterThan(0);
    }
    expect(verifyProgram(p)).toEqual([]);
    const text = printProgram(p);
    expect(printProgram(parseProgram(text))).toBe(text);
  });
});
