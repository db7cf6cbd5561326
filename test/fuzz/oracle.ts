// The oracles of the graph fuzzer (see graphs.test.ts): the generated module against the
// float64 interpreter, the interpreter's gradients against finite differences of the traced
// model (stop_gradient frozen, kinks skipped honestly), and IR round trips.

import { expect } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import { interpret, outputsOf } from '../../ir/interp.js';
import { maxPoolGradEval } from '../../ir/conv.js';
import * as K from '../../ir/ndarray.js';
import type { NDArray } from '../../ir/ndarray.js';
import { fmtNumber, printGraph } from '../../ir/print.js';
import { parseGraph } from '../../ir/parse.js';
import { dce } from '../../ir/passes.js';
import { reverseMode } from '../../ir/autodiff.js';
import { staticShape } from '../../ir/dims.js';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { OutputFile } from '../../src/build.js';
import { compileGraphs, displaySource, emitFiles } from '../../src/build.js';
import type { ModuleInfo } from '../../codegen/module.js';
import type { Plan } from '../../ir/memplan.js';
import { checkFusionLowering } from '../fusion-kernel.js';
import { indent } from '../../codegen/module.js';
import { emitTs } from '../../codegen/ts.js';
import { emitWasm } from '../../codegen/wasm.js';
import type { Arrays, GeneratedModule } from '../helpers.js';
import { finiteDiff, modelFile, randomArgs, reference, relErr, rng, smoothAt, tmp } from '../helpers.js';

export const stats = { msBuild: 0, msChecks: 0, graphs: 0, fdChecked: 0, fdSkippedKink: 0, gradSkippedNearKink: 0, illConditioned: 0, wasmKernels: new Map<string, number>(), wasmIllConditioned: 0, ops: new Map<string, number>(), scans: 0, checkpointed: 0 };

/** The traced graph with each stop_gradient replaced by the constant it evaluates to. */
function freezeStopGradients(traced: Graph, vals: Map<string, NDArray>): Graph {
  const text = printGraph(traced)
    .split('\n')
    .map((line) => {
      const m = /^(\s*%([A-Za-z_][A-Za-z0-9_]*): \S+ = )stop_gradient %[A-Za-z0-9_]+/.exec(line);
      if (!m) return line;
      const data = vals.get(m[2]!)!.data;
      return line.replace(/= stop_gradient %[A-Za-z0-9_]+/, `= const {data=[${Array.from(data, fmtNumber).join(', ')}]}`);
    })
    .join('\n');
  const g = parseGraph(text, { file: 'frozen.ir' });
  dce.run(g, { keep: new Set() });
  return g;
}

/** The smallest non-zero distance of a kink argument from its kink (Infinity when none). */
function kinkMargin(g: Graph, vals: Map<string, NDArray>): number {
  let m = Infinity;
  const arg = (inst: Graph['insts'][number], i: number) => vals.get(g.value(inst.args[i]!).name)!;
  const note = (x: number) => {
    if (x !== 0) m = Math.min(m, Math.abs(x));
  };
  for (const inst of g.insts) {
    if (inst.op === 'relu' || inst.op === 'abs') arg(inst, 0).data.forEach(note);
    else if (inst.op === 'maximum' || inst.op === 'minimum') K.map(staticShape(g.type(inst.result).shape), [arg(inst, 0), arg(inst, 1)], (a, b) => a - b).data.forEach(note);
    else if (inst.op === 'max') {
      const x = arg(inst, 0);
      const mx = K.reduce(x, inst.attrs.axes, x.shape.map((d, i) => (inst.attrs.axes.includes(i) ? 1 : d)), -Infinity, Math.max);
      K.map(x.shape, [x, mx], (v, top) => top - v).data.forEach(note);
    } else if (inst.op === 'max_pool') {
      // each window's maximum against the window's other values
      const x = arg(inst, 0);
      const y = vals.get(g.value(inst.result).name)!;
      const at = maxPoolGradEval(x, K.map(y.shape, [], () => 1), inst.attrs);
      const gap = (v: number, i: number) => (at.data[i] ? 0 : v);
      // a value not routed to lies below some window maximum: its distance to the nearest maximum above it
      const tops = Array.from(y.data);
      x.data.forEach((v, i) => {
        if (gap(v, i) === 0) return;
        let d = Infinity;
        for (const t of tops) if (t >= v) d = Math.min(d, t - v);
        note(d === Infinity ? 0 : d);
      });
    }
  }
  return m;
}

/** Σ|a·b| over the products of a value with a random input R (the loss terms of the generator). */
function l1OfLossTerms(g: Graph, vals: Map<string, NDArray>): number {
  let l1 = 0;
  for (const inst of g.insts) {
    if (inst.op !== 'mul') continue;
    const isR = (k: number) => {
      const d = g.def(inst.args[k]!);
      return d.op === 'input' && /^R[0-9]+$/.test(d.attrs.name);
    };
    if (!isR(0) && !isR(1)) continue;
    const [a, b] = inst.args.map((v) => vals.get(g.value(v).name)!);
    K.map(staticShape(g.type(inst.result).shape), [a!, b!], (x, y) => Math.abs(x * y)).data.forEach((v) => (l1 += v));
  }
  return l1;
}

/**
 * The gradients from the interpreter with every value rounded to float32 after each op: what a
 * float32 evaluation of the same graphs gives. Where it is as far from the float64 gradients as
 * the generated module, the difference is the problem's conditioning, not a code generation bug.
 */
function f32Grads(c: Built, params: Arrays, inputs: Arrays): Record<string, Float64Array> {
  return reference(c.fwd, c.bwd, params, inputs, { float32: true }).grads;
}

export async function checkModel(src: string, seed: number, extra: string | undefined): Promise<void> {
  const file = modelFile(src);
  const t0 = performance.now();
  const { c, mod, wasm, traced } = await buildTsAndImport(file);
  const t2 = performance.now();
  stats.msBuild += t2 - t0;
  try {
    await checks(c, mod, traced, seed, extra, wasm);
  } finally {
    stats.msChecks += performance.now() - t2;
  }
}

/** What the checks need of a build. */
export interface Built {
  readonly name: string;
  readonly fwd: Graph;
  readonly bwd: Graph;
  /** The .ir and .grad.ir files as the build writes them. */
  readonly irFiles: readonly OutputFile[];
  readonly plan: Plan;
}

/**
 * Like buildAndImport of test/helpers.ts, but (for run time) emits only the plain JavaScript
 * module that `graphc build` writes as <name>.js, without the prettier-formatted .ts and the GPU
 * module, which these checks do not execute; and keeps the forward graph as traced, before any
 * pass, by printing it at the 'trace' stage and parsing it back. (Loading a model type-checks
 * it, about 150 ms, so loading it a second time just to trace it would double the run time.)
 */
export async function buildTsAndImport(file: string): Promise<{ c: Built; mod: GeneratedModule; wasm: GeneratedModule; traced: Graph }> {
  let tracedText = '';
  const { model, fwd, bwd, plan } = compileGraphs(file, {
    afterPass: (graph, pass, g) => {
      if (graph === 'forward' && pass === 'trace') tracedText = printGraph(g);
    },
  });
  const lines = new Map<string, string[]>();
  const info: ModuleInfo = {
    name: fwd.name,
    plan,
    source: displaySource(file),
    fwd,
    bwd,
    sourceLine: (loc) => {
      let l = lines.get(loc.file);
      if (!l) lines.set(loc.file, (l = (model.sourceOf(loc.file) ?? '').split(/\r?\n/)));
      return l[loc.line - 1];
    },
  };
  const irFiles = await emitFiles(info, []);
  const dir = tmp();
  writeFileSync(path.join(dir, `${fwd.name}.js`), indent(emitTs(info, false)));
  const wasmCode = emitWasm(info, false);
  for (const [, kind] of wasmCode.matchAll(/^\/\/ {3}(matmul|elementwise|reduce|rowreduce|softmax|conv_input_grad|conv_weight_grad|conv|max_pool_grad|avg_pool_grad|max_pool|avg_pool|channel)_\w/gm)) stats.wasmKernels.set(kind!, (stats.wasmKernels.get(kind!) ?? 0) + 1);
  writeFileSync(path.join(dir, `${fwd.name}.wasm.js`), indent(wasmCode));
  const mod = (await import(pathToFileURL(path.join(dir, `${fwd.name}.js`)).href)) as GeneratedModule;
  const wasm = (await import(pathToFileURL(path.join(dir, `${fwd.name}.wasm.js`)).href)) as GeneratedModule;
  const traced = parseGraph(tracedText, { file: 'traced.ir' });
  expect(printGraph(traced), 'traced IR round trip').toBe(tracedText);
  return { c: { name: fwd.name, fwd, bwd, irFiles, plan }, mod, wasm, traced };
}

async function checks(c: Built, mod: GeneratedModule, traced: Graph, seed: number, extra: string | undefined, wasm: GeneratedModule): Promise<void> {
  for (const i of traced.insts) stats.ops.set(i.op, (stats.ops.get(i.op) ?? 0) + 1);
  for (const i of c.fwd.insts) stats.ops.set(`opt:${i.op}`, (stats.ops.get(`opt:${i.op}`) ?? 0) + 1);
  stats.graphs++;
  const { params, inputs } = randomArgs(traced, seed);
  const ref = reference(c.fwd, c.bwd, params, inputs);

  // every fusion group lowers to one kernel, or one routine and its epilogue, of the kernel form
  checkFusionLowering(c.fwd, c.bwd, c.plan);

  // (c) printed IR round-trips, groups included; the .ir files parse back to the graphs
  for (const g of [c.fwd, c.bwd]) {
    const text = printGraph(g);
    expect(printGraph(parseGraph(text)), `${g.kind} IR round trip`).toBe(text);
  }
  expect(printGraph(parseGraph(String(c.irFiles.find((f) => f.name === `${c.name}.ir`)!.content))), '.ir file').toBe(printGraph(c.fwd));
  expect(printGraph(parseGraph(String(c.irFiles.find((f) => f.name === `${c.name}.grad.ir`)!.content))), '.grad.ir file').toBe(printGraph(c.bwd));

  // the optimised forward graph computes what the traced one does (float64)
  const tvals = interpret(traced, { params, inputs });
  const tout = outputsOf(traced, tvals);
  expect(relErr(ref.outputs.loss!.data, tout.loss!.data), 'loss: optimised vs traced forward IR (float64)').toBeLessThan(1e-9);
  if (extra) expect(relErr(ref.outputs.out!.data, tout.out!.data), 'output out: optimised vs traced (float64)').toBeLessThan(1e-9);
  // a traced scan's reverse scan (not unrolled) gives the unrolled backward's gradients (float64)
  if (traced.insts.some((i) => i.op === 'scan')) {
    stats.scans++;
    // a checkpointed scan: a scan whose region holds the scan of a segment (ir/scan-checkpoint.ts)
    if (traced.insts.some((i) => i.op === 'scan' && traced.bodies[i.attrs.body]!.insts.some((j) => j.op === 'scan'))) stats.checkpointed++;
    const tf = traced.clone();
    const tb = reverseMode(tf);
    const tg = reference(tf, tb, params, inputs).grads;
    for (const [k, d] of Object.entries(ref.grads)) expect(relErr(tg[k]!, d), `d loss / d ${k}: the reverse scan vs the unrolled backward (float64)`).toBeLessThan(1e-9);
  }

  // (a) generated module vs interpreter
  const frozen = freezeStopGradients(traced, tvals);
  const base = interpret(frozen, { params, inputs });
  const nearKink = kinkMargin(frozen, base) < 1e-5;
  // the module reuses its buffers across calls (README): copy what is compared
  const vg = mod.valueAndGrad(params, inputs);
  const got = { loss: vg.loss, grads: Object.fromEntries(Object.entries(vg.grads).map(([k, v]) => [k, Float32Array.from(v)])) };
  // The loss is Σ leaf·R summed in float32: with cancellation its error is relative to the
  // summed magnitudes Σ|leaf·R|, not to the (possibly small) result.
  const lossScale = Math.max(Math.abs(ref.outputs.loss!.data[0]!), l1OfLossTerms(traced, tvals), 1e-3);
  const lossErr = Math.abs(got.loss - ref.outputs.loss!.data[0]!) / lossScale;
  expect(lossErr, `generated loss ${got.loss} vs interpreter ${ref.outputs.loss!.data[0]} (scale ${lossScale})`).toBeLessThan(1e-5);
  const fwdOut = mod.forward(params, inputs);
  if (extra) expect(relErr(fwdOut.out as Float32Array, ref.outputs.out!.data), 'generated forward output out vs interpreter').toBeLessThan(1e-4);
  expect(Math.abs((fwdOut.loss as number) - ref.outputs.loss!.data[0]!) / lossScale, 'generated forward loss vs interpreter').toBeLessThan(1e-5);
  expect(Object.keys(got.grads).sort(), 'gradient keys').toEqual(Object.keys(params).sort());
  // the float32-rounding interpreter's gradients, computed when a check needs them
  let emu: Record<string, Float64Array> | undefined;
  if (nearKink) stats.gradSkippedNearKink++;
  else {
    for (const [k, gr] of Object.entries(got.grads)) {
      const err = relErr(gr, ref.grads[k]!);
      if (err < 1e-4) continue;
      // Ill-conditioned in float32? Compare with the interpreter rounding every value to float32.
      emu ??= f32Grads(c, params, inputs);
      const emuErr = relErr(emu[k]!, ref.grads[k]!);
      expect(err, `generated d loss / d ${k} vs interpreter (float32-rounding interpreter: ${emuErr.toExponential(2)})`).toBeLessThan(Math.max(1e-4, 10 * emuErr));
      stats.illConditioned++;
    }
  }

  // (d) the wasm module (--target wasm) against the flat module: loss, forward output and
  // gradients within 1e-4; its matmuls and reductions accumulate in float32 where the flat module's use
  // doubles, so where the flat module itself needed the ill-conditioning allowance above, the
  // wasm module gets the same allowance against the interpreter
  const wvg = wasm.valueAndGrad(params, inputs);
  expect(Math.abs(wvg.loss - got.loss) / lossScale, `wasm loss ${wvg.loss} vs flat ${got.loss}`).toBeLessThan(1e-5);
  for (const [k, gr] of Object.entries(got.grads)) {
    const err = relErr(wvg.grads[k]!, gr);
    if (err < 1e-4 || nearKink) continue;
    emu ??= f32Grads(c, params, inputs);
    const emuErr = relErr(emu[k]!, ref.grads[k]!);
    expect(relErr(wvg.grads[k]!, ref.grads[k]!), `wasm d loss / d ${k} vs flat ${err.toExponential(2)} and vs interpreter (float32-rounding interpreter: ${emuErr.toExponential(2)})`).toBeLessThan(Math.max(1e-4, 10 * emuErr));
    stats.wasmIllConditioned++;
  }
  const wout = wasm.forward(params, inputs);
  if (extra) expect(relErr(wout.out as Float32Array, fwdOut.out as Float32Array), 'wasm forward output out vs flat').toBeLessThan(1e-4);
  expect(Math.abs((wout.loss as number) - (fwdOut.loss as number)) / lossScale, 'wasm forward loss vs flat').toBeLessThan(1e-5);

  // (b) interpreter gradients vs finite differences of the traced model
  const r = rng(seed ^ 0x5eed);
  for (const [k, p] of Object.entries(params)) {
    const coords = p.length <= 3 ? [...p.keys()] : [0, 1, 2].map(() => Math.floor(r() * p.length));
    const want: number[] = [];
    const fd: number[] = [];
    for (const i of coords) {
      if (!smoothAt(frozen, params, inputs, k, i)) {
        stats.fdSkippedKink++;
        continue;
      }
      stats.fdChecked++;
      want.push(ref.grads[k]![i]!);
      fd.push(finiteDiff(frozen, params, inputs, k, i));
    }
    expect(relErr(want, fd), `float64 d loss / d ${k} at ${coords} vs finite differences`).toBeLessThan(1e-5);
  }
}

