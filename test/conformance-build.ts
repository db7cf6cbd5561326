// The conformance matrix's cases as graphs and references (test/conformance.test.ts runs them on
// the Node targets, test/browser/webgpu-conformance.test.ts on the WebGPU module): the case's
// graph with its loss Σ y·R lowered as `graphc build` does, the float64 interpreter's reference
// with the two float32 yardsticks, and the tolerance check.

import { expect } from 'vitest';
import { Builder } from '../ir/builder.js';
import { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import type { OpKind } from '../ir/ops.js';
import type { ValueId } from '../ir/types.js';
import { bindShape } from '../ir/dims.js';
import type { ModuleInfo } from '../codegen/module.js';
import { lower } from '../src/build.js';
import { randomArgs } from './helpers.js';
import type { Case, Ctx } from './conformance-cases.js';

/** The f32 unit roundoff, 2⁻²⁴. */
export const U = 2 ** -24;
/**
 * The tolerance floor: 256 units of roundoff, at the scale of the tensor (relErr below). A case
 * is a chain of at most ~20 ops over tensors of at most ~40 elements, so a float32 evaluation's
 * error is bounded by about (20 + 40)·u; its polynomial exp and tanh (wasm SIMD) add a few units.
 */
export const FLOOR = 256 * U;
/**
 * Where float32 itself cannot do better (cancellation, a division by a small value), the
 * tolerance is 8× the error of the interpreter rounding every value to float32 on the same
 * graphs, the larger of two: adding each sum's terms in float64 (the flat and GPU.js modules)
 * and in float32 (the wasm module's SIMD sums, docs/wasm.md). A target may round in a different
 * order, not worse by an order of magnitude.
 */
export const OVER_F32 = 8;

/**
 * |got − ref| at the scale of the reference tensor (max|ref|, at least 1e-3), as test/helpers'
 * relErr. Where the float32 interpreter has NaN or ±∞ (exp(100) overflows float32, log(0) is
 * −∞ in both), the target must have the same; those elements are left out of the error.
 */
export function err(got: ArrayLike<number>, ref: ArrayLike<number>, ref32: ArrayLike<number> = ref): { err: number; mismatch?: string } {
  if (got.length !== ref.length) return { err: Infinity, mismatch: `length ${got.length}, want ${ref.length}` };
  let diff = 0;
  let scale = 1e-3;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const r32 = ref32[i]!;
    const g = got[i]!;
    if (!Number.isFinite(r32) || !Number.isFinite(r)) {
      if (!Object.is(g, r32) && !(Number.isNaN(r32) && Number.isNaN(g))) return { err: Infinity, mismatch: `[${i}] is ${g}, want ${r32} (float64 ${r})` };
      continue;
    }
    if (!Number.isFinite(g)) return { err: Infinity, mismatch: `[${i}] is ${g}, want ${r}` };
    diff = Math.max(diff, Math.abs(g - r));
    scale = Math.max(scale, Math.abs(r));
  }
  return { err: diff / scale };
}

export function expectClose(what: string, got: ArrayLike<number> | number | undefined, ref: ArrayLike<number>, ref32: ArrayLike<number>, sums32: ArrayLike<number>): void {
  expect(got, `${what}: missing`).toBeDefined();
  const g = typeof got === 'number' ? [got] : Array.from(got!);
  const e = err(g, ref, ref32);
  if (e.mismatch) expect.fail(`${what}: ${e.mismatch}`);
  const e32 = Math.max(err(ref32, ref, ref32).err, err(sums32, ref, ref32).err);
  const tol = Math.max(FLOOR, OVER_F32 * e32);
  expect(e.err, `${what}: error ${e.err.toExponential(2)} > tolerance ${tol.toExponential(2)} (float32 interpreters ${e32.toExponential(2)})`).toBeLessThanOrEqual(tol);
}

export interface Built {
  readonly name: string;
  readonly fwd: Graph;
  readonly bwd: Graph;
  readonly ops: ReadonlySet<OpKind>;
  readonly info: ModuleInfo;
}

/** The case's graph: params, inputs, y, and loss = Σ y·R. */
export function buildCase(name: string, c: Case): Built {
  const g = new Graph(name, 'forward');
  const b = new Builder(g);
  const ctx: Ctx = {
    b,
    // names as the DSL gives them (a name the emitters reserve, such as q, becomes q_)
    param: (n, shape) => b.param(n, shape, 'randn', 1, { raw: n }),
    input: (n, shape, dtype = 'f32') => b.input(n, { dtype, shape }, { raw: n }),
    update: (n, v) => void updates.push({ name: n, value: v }),
  };
  const updates: { name: string; value: ValueId }[] = [];
  const y = c.build(ctx);
  const shape = g.type(y).shape;
  const R = ctx.input('R', shape);
  // Σ over the last axis, then over the rest: the case's elementwise ops fuse into a row
  // reduction, which the wasm module runs as a SIMD kernel (a reduction over every axis at once
  // it runs as the flat module's code)
  const yR = b.mul(y, R);
  const rows = shape.length ? b.sum(yR, [shape.length - 1]) : yR;
  const loss = shape.length > 1 ? b.sum(rows, shape.slice(1).map((_d, i) => i)) : rows;
  g.rename(y, 'y');
  g.rename(loss, 'loss');
  g.outputs.push({ name: 'loss', value: loss }, { name: 'y', value: y }, ...updates);
  g.numberTemps();
  const { bwd, plan } = lower(g);
  const ops = new Set<OpKind>([...g.insts.map((i) => i.op), ...bwd.insts.map((i) => i.op)]);
  const info: ModuleInfo = { name, plan, source: `${name}.ts`, fwd: g, bwd, sourceLine: () => undefined };
  return { name, fwd: g, bwd, ops, info };
}

/** The float64 reference and the float32-rounding interpreter's, with the call's arguments. */
export function referenceOf(m: Built, c: Case, seed: number, dims: Record<string, number>) {
  const { params, inputs } = randomArgs(m.fwd, seed, 1, dims);
  for (const [k, v] of Object.entries(dims === c.dims || !c.dims ? (c.data ?? {}) : {})) {
    const into = k in params ? params : inputs;
    const want = into[k]!.length;
    if (v.length !== want) throw new Error(`case data ${k}: ${v.length} values for ${want} elements`);
    into[k] = into[k] instanceof Int32Array ? Int32Array.from(v) : Float32Array.from(v);
  }
  const run = (float32: boolean, float32Sums = false) => {
    const buffers = c.train ? initBuffers(m) : undefined;
    const opts = { params, inputs, float32, float32Sums, ...(c.train ? { train: true, seed: 7, buffers } : {}) };
    const vals = interpret(m.fwd, opts);
    const bv = interpret(m.bwd, { fwd: vals, float32, float32Sums });
    const grads: Record<string, Float64Array> = {};
    for (const o of m.bwd.outputs) grads[o.name] = bv.get(m.bwd.value(o.value).name)!.data;
    const outs = outputsOf(m.fwd, vals);
    const next = Object.fromEntries(Object.keys(buffers ?? {}).map((k) => [k, outs[k]!.data]));
    return { loss: outs.loss!.data, y: outs.y!.data, grads, buffers: next };
  };
  return { dims, params, inputs, ref: run(false), ref32: run(true), sums32: run(true, true) };
}

/**
 * The sizes a case is called at: its own, and where it has symbolic dimensions also each bound
 * to 1 and to 13, one after the other on the same module (the wasm module's layout and the
 * GPU.js module's kernels are made for each call's sizes).
 */
export function sizesOf(c: Case): Record<string, number>[] {
  if (!c.dims) return [{}];
  const each = (v: number) => Object.fromEntries(Object.keys(c.dims!).map((k) => [k, v]));
  return [c.dims, each(1), each(13)];
}

/** The buffers' initial values (batchNorm's running statistics: mean 0, variance 1), float64. */
export function initBuffers(m: Built): Record<string, Float64Array> {
  const out: Record<string, Float64Array> = {};
  for (const i of m.fwd.insts) if (i.op === 'buffer') out[i.attrs.name] = new Float64Array(bindShape(m.fwd.type(i.result).shape, {}).reduce((a, d) => a * (d as number), 1)).fill(i.attrs.name.endsWith('var') ? 1 : 0);
  return out;
}
