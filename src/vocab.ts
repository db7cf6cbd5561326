// The DSL side of PyTorch's vocabulary (issue #31): argument checks with located errors, then
// the composites of ir/vocab.ts, ir/losses.ts and ir/einsum.ts. dsl.ts declares the surface
// (Tensor's methods, GraphBuilder's members) and calls these.

import type { Builder } from '../ir/builder.js';
import { CompileError } from '../ir/errors.js';
import type { Dim } from '../ir/dims.js';
import { normalizeAxes } from '../ir/shape.js';
import type { ValueId } from '../ir/types.js';
import { formatType } from '../ir/types.js';
import * as V from '../ir/vocab.js';
import * as L from '../ir/losses.js';
import { einsum as einsumOf } from '../ir/einsum.js';
import type { Hint } from '../ir/composite.js';
import { describeValue as describe } from '../ir/vocab.js';
import type { Init } from '../ir/ops.js';
import type { FanInit } from '../ir/init.js';
import { FAN_INITS, fanInit } from '../ir/init.js';
import { optionsOf } from './options.js';

/** Options of the losses: how the elementwise losses are reduced (default 'mean', as torch). */
export interface ReductionOptions {
  /** 'mean' over every element (default), 'sum', or 'none': the tensor of losses, an ordinary output. */
  reduction?: 'mean' | 'sum' | 'none';
}

/** Options of `g.crossEntropy` and `g.nllLoss` (F.cross_entropy's, F.nll_loss's). */
export interface ClassLossOptions<T> extends ReductionOptions {
  /** The class axis of the scores (default −1, the last; torch's layout [N, C, ...] is `axis: 1`). */
  axis?: number;
  /** Positions whose target is this class add nothing, to the loss nor to the mean's denominator. */
  ignoreIndex?: number;
  /** ε of label smoothing (torch 1.13): (1 − ε)·loss + ε/C · the loss against the uniform distribution. */
  labelSmoothing?: number;
  /** One weight per class, `[C]`; the mean divides by the sum of the weights of the targets. */
  weight?: T | readonly number[];
}

/** Options of `var` and `std`. */
export interface VarianceOptions {
  /** Subtracted from the count in the denominator: 1 (default, Bessel's correction), 0 for the population variance. */
  correction?: number;
  /** Keep the reduced axes as size 1. */
  keepDims?: boolean;
}

/** Options of `g.normalize` (`F.normalize`). */
export interface NormalizeOptions {
  /** The norm's exponent (default 2; Infinity: the largest |x|). */
  p?: number;
  /** The axis normalised (default −1). */
  axis?: number;
  /** The smallest norm divided by (default 1e-12). */
  eps?: number;
}

/** Options of `g.cosineSimilarity` (`F.cosine_similarity`). */
export interface CosineSimilarityOptions {
  /** The axis of the vectors (default −1). */
  axis?: number;
  /** The smallest norm divided by (default 1e-8). */
  eps?: number;
}

/** Options of `g.huberLoss`. */
export interface HuberLossOptions extends ReductionOptions {
  /** Where the loss turns from quadratic to linear (default 1). */
  delta?: number;
}

/** Options of `g.binaryCrossEntropy` and `g.binaryCrossEntropyWithLogits`. */
export interface BceOptions<T> extends ReductionOptions {
  /** Multiplies each element's loss (broadcast to it). */
  weight?: T | readonly number[];
  /** binaryCrossEntropyWithLogits only: the weight of the positive term, one per class (broadcast over the last axis). */
  posWeight?: T | readonly number[];
}

/** A number option: undefined gives the default; anything else must pass `ok`. */
export function num(op: string, what: string, v: unknown, dflt: number, need: string, ok: (x: number) => boolean = Number.isFinite): number {
  if (v === undefined) return dflt;
  if (typeof v === 'number' && ok(v)) return v;
  throw new CompileError(`${op}: ${what} must be ${need}, got ${describe(v)}`, `pass ${need}, or leave ${what} out for its default (${dflt})`);
}

/** The keys of each options object (the order of their interfaces above). */
const REDUCTION = ['reduction'];
const KEYS = {
  variance: ['correction', 'keepDims'],
  normalize: ['p', 'axis', 'eps'],
  cosineSimilarity: ['axis', 'eps'],
  mseLoss: REDUCTION,
  l1Loss: REDUCTION,
  huberLoss: ['delta', ...REDUCTION],
  bce: ['weight', 'posWeight', ...REDUCTION],
  classLoss: ['axis', 'ignoreIndex', 'labelSmoothing', 'weight', ...REDUCTION],
} as const;

/** torch.var's and torch.std's older `unbiased` flag, in graphc's (and torch's newer) spelling. */
const UNBIASED = "write correction: 0 for torch's unbiased: false (unbiased: true is the default, correction: 1)";

export function reduction(op: string, v: unknown): L.Reduction {
  if (v === undefined) return 'mean';
  if (v === 'mean' || v === 'sum' || v === 'none') return v;
  throw new CompileError(`${op}: reduction must be 'mean', 'sum' or 'none', got ${describe(v)}`, `e.g. g.${op}(a, b, { reduction: 'sum' })`);
}

function axisOf(op: string, axis: unknown, rank: number, extra = 0): number {
  if (typeof axis !== 'number') throw new CompileError(`${op}: axis must be a number, got ${describe(axis)}`, `e.g. ${op}(..., 1); negative axes count from the end`);
  if (extra && !(Number.isInteger(axis) && axis >= -rank - 1 && axis <= rank))
    throw new CompileError(
      `${op}: axis ${axis} is not a place for a new axis in a tensor of rank ${rank}`,
      `use an axis in ${-rank - 1}..${rank}: 0 puts the new axis first, ${rank} (or -1) last`,
    );
  return normalizeAxes(op, axis, rank + extra)[0]!;
}

// --- Tensor methods -------------------------------------------------------------------------

export function softplus(b: Builder, x: ValueId, beta: unknown, threshold: unknown): ValueId {
  const be = num('softplus', 'beta', beta, 1, 'a finite number ≠ 0', (v) => Number.isFinite(v) && v !== 0);
  return V.softplus(b, x, be, num('softplus', 'threshold', threshold, 20, 'a number'));
}

export function gelu(b: Builder, x: ValueId, approximate: unknown): ValueId {
  if (approximate !== undefined && approximate !== 'none' && approximate !== 'tanh')
    throw new CompileError(`gelu: approximate must be 'none' or 'tanh', got ${describe(approximate)}`, "write x.gelu() for the exact GELU (erf), or x.gelu('tanh') for the tanh approximation");
  return V.gelu(b, x, approximate ?? 'none');
}

export function clamp(b: Builder, x: ValueId, min: unknown, max: unknown): ValueId {
  const lo = num('clamp', 'min', min, NaN, 'a number', (v) => !Number.isNaN(v));
  const hi = num('clamp', 'max', max, NaN, 'a number', (v) => !Number.isNaN(v));
  if (min === undefined && max === undefined) throw new CompileError('clamp: neither min nor max is given', 'pass at least one bound: x.clamp(0), x.clamp(undefined, 1) or x.clamp(-1, 1)');
  return V.clamp(b, x, min === undefined ? undefined : lo, max === undefined ? undefined : hi);
}

export function maskedFill(b: Builder, x: ValueId, mask: ValueId, value: unknown): ValueId {
  if (typeof value !== 'number' || Number.isNaN(value))
    throw new CompileError(`maskedFill: value must be a number, got ${describe(value)}`, 'e.g. scores.maskedFill(mask, -Infinity)');
  return V.maskedFill(b, x, mask, value);
}

/** A reduction's axes (all when omitted) for min/logsumexp. */
export function axes(op: string, axis: unknown, rank: number, required = false): number[] {
  if (axis === undefined && required) throw new CompileError(`${op}: the axis is missing`, `name the axis to reduce, e.g. x.${op}(-1)`);
  if (axis === undefined || typeof axis === 'number' || (Array.isArray(axis) && axis.every((a) => typeof a === 'number'))) return normalizeAxes(op, axis as number | number[] | undefined, rank);
  throw new CompileError(`${op}: axis must be a number or an array of numbers, got ${describe(axis)}`, `e.g. x.${op}(1) or x.${op}([0, 1])`);
}

export function variance(b: Builder, op: 'var' | 'std', x: ValueId, axis: unknown, options: unknown): ValueId {
  const o = optionsOf(op, `x.${op}`, options, KEYS.variance, `x.${op}(0, { correction: 0, keepDims: true })`, { unbiased: UNBIASED });
  const correction = num(op, 'correction', o.correction, 1, 'a number ≥ 0', (v) => Number.isFinite(v) && v >= 0);
  if (o.keepDims !== undefined && typeof o.keepDims !== 'boolean') throw new CompileError(`${op}: keepDims must be true or false, got ${describe(o.keepDims)}`, `e.g. x.${op}(0, { keepDims: true })`);
  const v = V.variance(b, x, axes(op, axis, b.type(x).shape.length), correction, o.keepDims === true, op);
  return op === 'std' ? b.sqrt(v) : v;
}

function staticAxis(op: string, b: Builder, x: ValueId, axis: unknown): { a: number; d: number } {
  const t = b.type(x);
  const a = axisOf(op, axis, t.shape.length);
  const d = t.shape[a]!;
  if (typeof d === 'string') throw new CompileError(`${op}: axis ${a} of ${formatType(t)} has the symbolic size ${d}`, `${op} an axis whose size is known at build time`);
  return { a, d };
}

/** torch.split: a list of sizes, or one size for every piece (the last the rest). */
export function split(b: Builder, x: ValueId, sizes: unknown, axis: unknown): ValueId[] {
  const { a, d } = staticAxis('split', b, x, axis ?? 0);
  const ok = (k: unknown) => typeof k === 'number' && Number.isInteger(k) && k >= 1;
  if (typeof sizes === 'number' && ok(sizes)) {
    const each: number[] = [];
    for (let p = 0; p < d; p += sizes) each.push(Math.min(sizes, d - p));
    return V.split(b, x, each, a);
  }
  if (!Array.isArray(sizes) || sizes.length === 0 || !sizes.every(ok))
    throw new CompileError(`split: sizes must be a non-empty array of positive integers, got ${describe(sizes)}`, `e.g. x.split([2, ${Math.max(1, d - 2)}], ${a}) for pieces of 2 and ${Math.max(1, d - 2)}`);
  return V.split(b, x, sizes as number[], a);
}

export function chunk(b: Builder, x: ValueId, n: unknown, axis: unknown): ValueId[] {
  const { a, d } = staticAxis('chunk', b, x, axis ?? 0);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new CompileError(`chunk: n must be a positive integer, got ${describe(n)}`, 'e.g. x.chunk(3, -1) for three pieces along the last axis');
  return V.split(b, x, V.chunkSizes(d, n), a, 'chunk');
}

export function unsqueeze(b: Builder, x: ValueId, axis: unknown): ValueId {
  return V.unsqueeze(b, x, axisOf('unsqueeze', axis, b.type(x).shape.length, 1));
}

export function squeeze(b: Builder, x: ValueId, axis: unknown): ValueId {
  return V.squeeze(b, x, axis === undefined ? undefined : axes('squeeze', axis, b.type(x).shape.length));
}

export function expand(b: Builder, x: ValueId, shape: unknown): ValueId {
  if (!Array.isArray(shape) || !shape.every((d) => (typeof d === 'number' && Number.isInteger(d) && d >= -1) || typeof d === 'string'))
    throw new CompileError(`expand: invalid shape ${JSON.stringify(shape)}`, 'give one size per axis, −1 to keep one, e.g. x.expand([4, -1])');
  return V.expand(b, x, shape as Dim[]);
}

// --- g --------------------------------------------------------------------------------------

export function stack(b: Builder, xs: ValueId[], axis: unknown): ValueId {
  return V.stack(b, xs, axisOf('stack', axis ?? 0, b.type(xs[0]!).shape.length, 1));
}

export function pad(b: Builder, x: ValueId, pads: unknown, value: unknown): ValueId {
  const pair = (p: unknown) => Array.isArray(p) && p.length === 2 && p.every((k) => typeof k === 'number');
  if (!Array.isArray(pads) || !pads.every(pair))
    throw new CompileError(`pad: pads must be an array of [before, after] pairs, got ${describe(pads)}`, 'one pair per axis from axis 0, e.g. g.pad(x, [[0, 0], [1, 1]]) pads axis 1 by one on each side');
  if (typeof value !== 'number' || Number.isNaN(value)) throw new CompileError(`pad: value must be a number, got ${describe(value)}`, 'e.g. g.pad(x, [[1, 1]], -Infinity)');
  return V.pad(b, x, pads as [number, number][], value);
}

export function einsum(b: Builder, spec: unknown, xs: ValueId[]): ValueId {
  if (typeof spec !== 'string') throw new CompileError(`einsum: the spec must be a string, got ${describe(spec)}`, "e.g. g.einsum('ij,jk->ik', a, b)");
  if (xs.length === 0) throw new CompileError('einsum: no tensors given', "pass one tensor per term of the spec, e.g. g.einsum('ij->ji', a)");
  return einsumOf(b, spec, xs);
}

export function normalize(b: Builder, x: ValueId, options: unknown): ValueId {
  const o = optionsOf('normalize', 'g.normalize', options, KEYS.normalize, 'g.normalize(x, { p: 2, axis: -1 })');
  const p = num('normalize', 'p', o.p, 2, 'a number > 0 (or Infinity)', (v) => v > 0);
  const eps = num('normalize', 'eps', o.eps, 1e-12, 'a finite number ≥ 0', (v) => Number.isFinite(v) && v >= 0);
  return V.normalize(b, x, p, axisOf('normalize', o.axis ?? -1, b.type(x).shape.length), eps);
}

export function cosineSimilarity(b: Builder, x: ValueId, y: ValueId, options: unknown): ValueId {
  const o = optionsOf('cosineSimilarity', 'g.cosineSimilarity', options, KEYS.cosineSimilarity, 'g.cosineSimilarity(a, b, { axis: 1 })');
  const eps = num('cosineSimilarity', 'eps', o.eps, 1e-8, 'a finite number ≥ 0', (v) => Number.isFinite(v) && v >= 0);
  const rank = Math.max(b.type(x).shape.length, b.type(y).shape.length);
  return V.cosineSimilarity(b, x, y, axisOf('cosineSimilarity', o.axis ?? -1, rank), eps);
}

type Operand = (o: unknown) => ValueId;

export function pairLoss(b: Builder, op: 'mseLoss' | 'l1Loss' | 'huberLoss', x: ValueId, y: ValueId, options: unknown): ValueId {
  const o = optionsOf(op, `g.${op}`, options, KEYS[op], `g.${op}(a, b, { reduction: 'sum' })`);
  const r = reduction(op, o.reduction);
  if (op === 'huberLoss') return L.huberLoss(b, x, y, num(op, 'delta', o.delta, 1, 'a number > 0', (v) => Number.isFinite(v) && v > 0), r);
  return op === 'mseLoss' ? L.mseLoss(b, x, y, r) : L.l1Loss(b, x, y, r);
}

/** A weight option: a tensor, or an array of numbers (a constant). */
function weightOf(op: string, what: string, w: unknown, operand: Operand, b: Builder): ValueId | undefined {
  if (w === undefined) return undefined;
  if (Array.isArray(w) && w.length > 0 && w.every((k) => typeof k === 'number' && Number.isFinite(k))) return b.constant(w as number[], [w.length]);
  if (typeof w === 'number') return b.scalar(w);
  try {
    return operand(w);
  } catch {
    throw new CompileError(`${op}: ${what} must be a tensor or an array of numbers, got ${describe(w)}`, `e.g. { ${what}: [1, 2, 0.5] }`);
  }
}

export function bce(b: Builder, op: 'binaryCrossEntropy' | 'binaryCrossEntropyWithLogits', x: ValueId, y: ValueId, options: unknown, operand: Operand): ValueId {
  const o = optionsOf(op, `g.${op}`, options, KEYS.bce, `g.${op}(x, targets, { reduction: 'sum' })`);
  const r = reduction(op, o.reduction);
  const weight = weightOf(op, 'weight', o.weight, operand, b);
  if (op === 'binaryCrossEntropy') {
    if (o.posWeight !== undefined) throw new CompileError('binaryCrossEntropy: posWeight is an option of binaryCrossEntropyWithLogits', 'pass logits to g.binaryCrossEntropyWithLogits(logits, targets, { posWeight }), or leave posWeight out');
    return L.binaryCrossEntropy(b, x, y, weight, r);
  }
  return L.bceWithLogits(b, x, y, weightOf(op, 'posWeight', o.posWeight, operand, b), weight, r);
}

export function classLoss(b: Builder, hint: Hint, op: 'crossEntropy' | 'nllLoss', x: ValueId, y: ValueId, options: unknown, operand: Operand): ValueId {
  const o = optionsOf(op, `g.${op}`, options, KEYS.classLoss, `g.${op}(logits, targets, { axis: 1, ignoreIndex: 0 })`);
  const rank = b.type(x).shape.length;
  const ignore = o.ignoreIndex;
  if (ignore !== undefined && (typeof ignore !== 'number' || !Number.isInteger(ignore)))
    throw new CompileError(`${op}: ignoreIndex must be an integer class, got ${describe(ignore)}`, 'e.g. { ignoreIndex: 0 } to skip the targets of class 0');
  const opts: L.ClassLossOptions = {
    axis: rank === 0 ? 0 : axisOf(op, o.axis ?? -1, rank),
    ignoreIndex: ignore as number | undefined,
    labelSmoothing: num(op, 'labelSmoothing', o.labelSmoothing, 0, 'a number in [0, 1]', (v) => v >= 0 && v <= 1),
    weight: weightOf(op, 'weight', o.weight, operand, b),
    reduction: reduction(op, o.reduction),
  };
  return op === 'crossEntropy' ? L.crossEntropy(b, hint, x, y, opts) : L.nllLoss(b, x, y, opts);
}

/** g.param's init option as the IR's init and scale: torch.nn.init's fan formulas as N(0, 1) or U(−1, 1) scaled. */
export function paramInit(init: Init | FanInit, shape: readonly number[], o: { gain?: unknown; a?: unknown }, scale: number): { init: Init; scale: number } {
  const fan = FAN_INITS.includes(init as FanInit);
  const kaiming = init.startsWith('kaiming');
  for (const [k, used] of [['gain', fan && !kaiming], ['a', kaiming]] as const)
    if (o[k] !== undefined && !used)
      throw new CompileError(
        `param: the option ${k} belongs to ${k === 'gain' ? "'xavierUniform' and 'xavierNormal'" : "'kaimingUniform' and 'kaimingNormal'"}, not to ${describe(init)}`,
        k === 'gain' ? 'leave gain out, or pick a xavier init' : 'leave a out, or pick a kaiming init',
      );
  if (!fan) return { init: init as Init, scale };
  const gain = num('param', 'gain', o.gain, 1, 'a finite number');
  const a = num('param', 'a', o.a, 0, 'a finite number');
  if (shape.length < 2 || shape.some((d) => d === 0))
    throw new CompileError(
      `param: ${describe(init)} needs fan-in and fan-out, which a param of shape ${JSON.stringify(shape)} does not have`,
      "use it for a weight [in, out] or a conv weight [out, in/groups, ...kernel]; give a bias 'zeros' or 'uniform' with a scale",
    );
  const f = fanInit(init as FanInit, shape, { gain, a });
  return { init: f.init, scale: f.scale * scale };
}
