// PyTorch's vocabulary built from the primitives of the op table (issue #31's composites):
// activations, comparisons, reductions, layout, normalisations. Each keeps PyTorch's semantics
// and gradients (the kinks included) without a primitive of its own; the losses are in
// ir/losses.ts, einsum in ir/einsum.ts.

import type { Builder } from './builder.js';
import { CompileError } from './errors.js';
import type { Dim } from './dims.js';
import { isStatic, numelSize } from './dims.js';
import type { TensorType, ValueId } from './types.js';
import { formatType, sameShape } from './types.js';
import { broadcastShapes, fmtShape } from './shape.js';
import { mean } from './composite.js';

export function describeValue(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return x.length === 0 ? 'an empty array' : `an array of ${x.length}`;
  if (typeof x === 'string') return JSON.stringify(x);
  if (typeof x === 'number' || typeof x === 'boolean' || x === undefined) return String(x);
  return `${/^[aeiou]/.test(typeof x) ? 'an' : 'a'} ${typeof x}`;
}

function needF32(op: string, b: Builder, x: ValueId, what = 'x'): TensorType {
  const t = b.type(x);
  if (t.dtype !== 'f32')
    throw new CompileError(`${op}: ${what} is ${formatType(t)} but f32 is needed`, 'i32 tensors hold indices and labels; use g.oneHot(indices, depth) to turn class indices into f32').withLoc(b.loc);
  return t;
}

// --- activations ----------------------------------------------------------------------------

/**
 * log(1 + e^z) without overflow: relu(z) + log1p(e^−|z|), |z| written 2·relu(z) − z so that
 * the gradient at z = 0 is σ(0) = ½ (abs and relu pass none at their kink). log1p keeps the
 * digits of a small result (softplus(−20) = 2.06e-9, where log(1 + e^−20) is 0 in float32).
 */
export function softplusStable(b: Builder, z: ValueId): ValueId {
  const r = b.relu(z);
  const absz = b.sub(b.mul(r, 2), z);
  return b.add(r, b.log1p(b.exp(b.neg(absz))));
}

/** F.softplus: (1/β)·log(1 + e^{βx}), and x itself where βx > threshold. */
export function softplus(b: Builder, x: ValueId, beta: number, threshold: number): ValueId {
  needF32('softplus', b, x);
  const z = beta === 1 ? x : b.mul(x, beta);
  const sp = beta === 1 ? softplusStable(b, z) : b.div(softplusStable(b, z), beta);
  return b.select(b.gt(z, threshold), x, sp);
}

/** log σ(x) = −softplus(−x). */
export function logSigmoid(b: Builder, x: ValueId): ValueId {
  needF32('logSigmoid', b, x);
  return b.neg(softplusStable(b, b.neg(x)));
}

/**
 * F.gelu: x·Φ(x) = ½·x·(1 + erf(x/√2)), or with approximate 'tanh' ½·x·(1 + tanh(√(2/π)·(x +
 * 0.044715·x³))) (GPT-2's).
 */
export function gelu(b: Builder, x: ValueId, approximate: 'none' | 'tanh'): ValueId {
  needF32('gelu', b, x);
  const inner =
    approximate === 'none'
      ? b.erf(b.mul(x, Math.SQRT1_2))
      : b.tanh(b.mul(b.mul(x, b.add(b.mul(b.square(x), 0.044715), 1)), Math.sqrt(2 / Math.PI)));
  return b.mul(b.mul(x, 0.5), b.add(inner, 1));
}

export function silu(b: Builder, x: ValueId): ValueId {
  needF32('silu', b, x);
  return b.mul(x, b.sigmoid(x));
}

/** x where x > 0, else slope·x (the gradient at 0 is slope, as PyTorch). */
export function leakyRelu(b: Builder, x: ValueId, slope: number): ValueId {
  needF32('leakyRelu', b, x);
  return b.select(b.gt(x, 0), x, b.mul(x, slope));
}

/** x where x > 0, else α(e^x − 1); e^min(x, 0) so that the branch not taken never overflows into a NaN gradient. */
export function elu(b: Builder, x: ValueId, alpha: number): ValueId {
  needF32('elu', b, x);
  return b.select(b.gt(x, 0), x, b.mul(b.sub(b.exp(b.minimum(x, 0)), 1), alpha));
}

/** torch.clamp: the gradient passes where min ≤ x ≤ max (ties to x: maximum/minimum give a tie to the first operand). */
export function clamp(b: Builder, x: ValueId, min: number | undefined, max: number | undefined): ValueId {
  needF32('clamp', b, x);
  let y = x;
  if (min !== undefined) y = b.maximum(y, min);
  if (max !== undefined) y = b.minimum(y, max);
  return y;
}

export function rsqrt(b: Builder, x: ValueId): ValueId {
  needF32('rsqrt', b, x);
  return b.pow(x, -0.5);
}

// --- comparisons ----------------------------------------------------------------------------

export type Comparison = 'gt' | 'ge' | 'lt' | 'le' | 'eq' | 'ne';

/** f32 masks of 0/1 through which no gradient flows; NaN compares unequal and unordered, as PyTorch. */
export function compare(b: Builder, op: Comparison, x: ValueId, o: ValueId): ValueId {
  switch (op) {
    case 'gt':
      return b.gt(x, o);
    case 'ge':
      return b.ge(x, o);
    case 'lt':
      return b.gt(o, x);
    case 'le':
      return b.ge(o, x);
    case 'eq':
      return b.mul(b.ge(x, o), b.ge(o, x));
    case 'ne':
      return b.sub(1, b.mul(b.ge(x, o), b.ge(o, x)));
  }
}

/** select(cond, a, b) with torch.where's broadcasting; cond is f32, nonzero = true. */
export function where(b: Builder, cond: ValueId, a: ValueId, c: ValueId, op = 'where'): ValueId {
  const ct = b.type(cond);
  if (ct.dtype !== 'f32')
    throw new CompileError(
      `${op}: the condition is ${formatType(ct)}; a condition is an f32 mask (nonzero = true)`,
      'make it with a comparison, e.g. x.gt(0), or g.oneHot(...) for class indices',
    ).withLoc(b.loc);
  return b.select(cond, a, c);
}

/** x.maskedFill(mask, value): value where mask ≠ 0; the result keeps x's shape. */
export function maskedFill(b: Builder, x: ValueId, mask: ValueId, value: number): ValueId {
  const xt = needF32('maskedFill', b, x);
  const mt = b.type(mask);
  const out = broadcastShapes(mt.shape, xt.shape);
  if (out && !sameShape(out, xt.shape))
    throw new CompileError(`maskedFill: mask ${formatType(mt)} does not broadcast to x ${formatType(xt)} without growing it`, `give the mask x's shape ${fmtShape(xt.shape)} or one that broadcasts to it`).withLoc(b.loc);
  return where(b, mask, b.scalar(value), x, 'maskedFill');
}

// --- reductions -----------------------------------------------------------------------------

/** The minimum over axes: −max(−x); the gradient goes to the first argmin. */
export function min(b: Builder, x: ValueId, axes: number[], keepDims: boolean): ValueId {
  needF32('min', b, x);
  return b.neg(b.max(b.neg(x), axes, keepDims));
}

/** log Σ e^x over axes, shifted by the max (held constant; 0 where it is infinite, as torch). */
export function logsumexp(b: Builder, x: ValueId, axes: number[], keepDims: boolean): ValueId {
  needF32('logsumexp', b, x);
  const m = b.stopGradient(b.max(x, axes, true));
  const safe = b.select(b.ge(b.abs(m), Infinity), 0, m);
  const s = b.log(b.sum(b.exp(b.sub(x, safe)), axes, keepDims));
  return b.add(s, keepDims ? safe : b.reshape(safe, b.type(s).shape));
}

/** Σ (x − mean)² / (n − correction) over axes. */
export function variance(b: Builder, x: ValueId, axes: number[], correction: number, keepDims: boolean, op = 'var'): ValueId {
  const t = needF32(op, b, x);
  const spanned: Dim[] = axes.map((a) => t.shape[a]!);
  const n = numelSize(spanned);
  if (isStatic(n) && n.coef - correction <= 0)
    throw new CompileError(
      `${op}: axes ${fmtShape(axes)} of ${formatType(t)} hold ${n.coef} element${n.coef === 1 ? '' : 's'} per result; with correction ${correction} the variance divides by ${n.coef - correction}`,
      `reduce over more elements, or pass { correction: 0 } for the population variance`,
    ).withLoc(b.loc);
  const diff = b.sub(x, mean(b, x, axes, true));
  return b.mul(b.sum(b.square(diff), axes, keepDims), b.recip(b.count(spanned, correction)));
}

// --- layout ---------------------------------------------------------------------------------

/** Pieces of `sizes` along axis (torch.split with a list of sizes). */
export function split(b: Builder, x: ValueId, sizes: number[], axis: number, op = 'split'): ValueId[] {
  const t = b.type(x);
  const d = t.shape[axis]!;
  if (typeof d === 'string')
    throw new CompileError(`${op}: axis ${axis} of ${formatType(t)} has the symbolic size ${d}`, `${op} an axis whose size is known at build time`).withLoc(b.loc);
  const total = sizes.reduce((s, k) => s + k, 0);
  if (total !== d)
    throw new CompileError(`${op}: sizes ${fmtShape(sizes)} add up to ${total}, but axis ${axis} of ${formatType(t)} has ${d} entries`, `give sizes that add up to ${d}`).withLoc(b.loc);
  let start = 0;
  return sizes.map((k) => {
    const v = b.slice(x, t.shape.map((_s, i) => (i === axis ? start : 0)), t.shape.map((s, i) => (i === axis ? k : s)));
    start += k;
    return v;
  });
}

/** torch.chunk's sizes: ⌈d/n⌉ each, the last the rest (possibly fewer than n pieces). */
export function chunkSizes(d: number, n: number): number[] {
  const each = Math.ceil(d / n);
  const sizes: number[] = [];
  for (let s = 0; s < d; s += each) sizes.push(Math.min(each, d - s));
  return sizes;
}

export function unsqueeze(b: Builder, x: ValueId, axis: number): ValueId {
  const s = [...b.type(x).shape];
  s.splice(axis, 0, 1);
  return b.reshape(x, s);
}

/** Drops axis (when its size is 1, else x as it is, as torch) or every axis of size 1. */
export function squeeze(b: Builder, x: ValueId, axes: number[] | undefined): ValueId {
  const s = b.type(x).shape;
  const drop = (d: Dim, i: number) => d === 1 && (axes === undefined || axes.includes(i));
  if (!s.some(drop)) return x;
  return b.reshape(x, s.filter((d, i) => !drop(d, i)));
}

/** torch.expand: −1 keeps a size; new leading axes may be added; only size-1 axes grow. */
export function expand(b: Builder, x: ValueId, shape: Dim[]): ValueId {
  const t = b.type(x);
  const lead = shape.length - t.shape.length;
  const bad = (why: string, fix: string) => new CompileError(`expand: cannot expand ${formatType(t)} to ${fmtShape(shape)}: ${why}`, fix).withLoc(b.loc);
  if (lead < 0) throw bad(`the new shape has fewer axes (${shape.length}) than x (${t.shape.length})`, 'give one size (or −1) per axis of x, after any new leading axes');
  const out = shape.map((d, i) => {
    if (i < lead) {
      if (d === -1) throw bad(`−1 at the new leading axis ${i}`, 'a new leading axis needs its size');
      return d;
    }
    const old = t.shape[i - lead]!;
    if (d === -1 || d === old) return old;
    if (old !== 1) throw bad(`axis ${i - lead} has size ${old}, which is not 1`, `only axes of size 1 grow; keep ${old} (or −1) there`);
    return d;
  });
  return sameShape(out, t.shape) ? x : b.broadcast(x, out);
}

/** torch.stack: each tensor with a new axis, concatenated along it. */
export function stack(b: Builder, xs: ValueId[], axis: number): ValueId {
  const first = b.type(xs[0]!);
  for (const [k, v] of xs.entries()) {
    const t = b.type(v);
    if (t.dtype !== first.dtype || !sameShape(t.shape, first.shape))
      throw new CompileError(`stack: tensor ${k} is ${formatType(t)} but tensor 0 is ${formatType(first)}`, 'stack tensors of one shape and dtype (g.concat joins along an existing axis)').withLoc(b.loc);
  }
  return b.concat(xs.map((v) => unsqueeze(b, v, axis)), axis);
}

/** g.pad: pads[i] = [before, after] zeros (or value) around axis i, from axis 0. */
export function pad(b: Builder, x: ValueId, pads: [number, number][], value: number): ValueId {
  const t = b.type(x);
  if (pads.length > t.shape.length)
    throw new CompileError(`pad: ${pads.length} pairs for the ${t.shape.length} axes of ${formatType(t)}`, 'give one [before, after] pair per axis, from axis 0').withLoc(b.loc);
  const all = t.shape.map((_d, i) => pads[i] ?? [0, 0]);
  for (const [i, [before, after]] of all.entries()) {
    if (!(Number.isInteger(before) && Number.isInteger(after) && before >= 0 && after >= 0))
      throw new CompileError(`pad: the pair for axis ${i} is [${before}, ${after}]; pads are integers ≥ 0`, 'narrow the tensor (x.narrow) to cut entries instead of a negative pad').withLoc(b.loc);
    if ((before || after) && typeof t.shape[i] === 'string')
      throw new CompileError(`pad: axis ${i} of ${formatType(t)} has the symbolic size ${t.shape[i]}`, 'pad only axes whose size is known at build time').withLoc(b.loc);
  }
  if (all.every(([p, q]) => p === 0 && q === 0)) return x;
  const starts = all.map(([p]) => p);
  const shape = t.shape.map((d, i) => (typeof d === 'string' ? d : d + all[i]![0] + all[i]![1]));
  const px = b.pad(x, starts, shape);
  if (value === 0) return px;
  const inside = b.pad(b.broadcast(b.scalar(1), [...t.shape]), starts, shape);
  return b.select(inside, px, value);
}

// --- normalisation --------------------------------------------------------------------------

/** ‖x‖_p over axis (kept), floored at eps before the root so that a zero row has no NaN gradient. */
function normOf(b: Builder, x: ValueId, p: number, axis: number, eps: number): ValueId {
  if (p === Infinity) return b.maximum(b.max(b.abs(x), [axis], true), eps);
  if (p === 1) return b.maximum(b.sum(b.abs(x), [axis], true), eps);
  if (p === 2) return b.sqrt(b.maximum(b.sum(b.square(x), [axis], true), eps * eps));
  return b.pow(b.maximum(b.sum(b.pow(b.abs(x), p), [axis], true), eps ** p), 1 / p);
}

/** F.normalize: x / max(‖x‖_p, eps) along axis. */
export function normalize(b: Builder, x: ValueId, p: number, axis: number, eps: number): ValueId {
  needF32('normalize', b, x);
  return b.div(x, normOf(b, x, p, axis, eps));
}

/** F.cosine_similarity (torch 1.13): Σ (a / max(‖a‖, eps)) · (b / max(‖b‖, eps)) along axis, a and b broadcast first. */
export function cosineSimilarity(b: Builder, x: ValueId, y: ValueId, axis: number, eps: number): ValueId {
  const xt = needF32('cosineSimilarity', b, x, 'a');
  const yt = needF32('cosineSimilarity', b, y, 'b');
  const shape = broadcastShapes(xt.shape, yt.shape);
  if (!shape)
    throw new CompileError(`cosineSimilarity: a ${formatType(xt)} and b ${formatType(yt)} do not broadcast`, 'give a and b the same shape, or shapes that broadcast (aligned from the right)').withLoc(b.loc);
  const full = (v: ValueId, t: TensorType) => (sameShape(t.shape, shape) ? v : b.broadcast(v, shape));
  return b.sum(b.mul(normalize(b, full(x, xt), 2, axis, eps), normalize(b, full(y, yt), 2, axis, eps)), [axis]);
}

