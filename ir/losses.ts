// PyTorch's losses as composites (issue #31): torch.nn.functional's formulas and reductions,
// with its class-axis, ignore_index, class weights and label smoothing for nll_loss and
// cross_entropy. crossEntropy without options stays the fused xent (ir/composite.ts).

import type { Builder } from './builder.js';
import { CompileError } from './errors.js';
import type { Dim } from './dims.js';
import type { Hint } from './composite.js';
import { crossEntropy as fusedCrossEntropy, logSoftmax, mean } from './composite.js';
import type { TensorType, ValueId } from './types.js';
import { formatType, sameShape } from './types.js';
import { broadcastShapes, fmtShape } from './shape.js';
import { softplusStable } from './vocab.js';

export type Reduction = 'mean' | 'sum' | 'none';

/** Reduces elementwise losses as `reduction` says: the mean over every element, the sum, or the tensor itself. */
export function reduce(b: Builder, l: ValueId, reduction: Reduction): ValueId {
  const r = b.type(l).shape.map((_d, i) => i);
  if (reduction === 'none') return l;
  return reduction === 'sum' ? b.sum(l, r) : mean(b, l, r, false);
}

function pair(op: string, b: Builder, x: ValueId, y: ValueId, names: [string, string]): Dim[] {
  const [xt, yt] = [b.type(x), b.type(y)];
  for (const [t, n] of [[xt, names[0]], [yt, names[1]]] as const)
    if (t.dtype !== 'f32')
      throw new CompileError(`${op}: ${n} is ${formatType(t)} but f32 is needed`, `pass f32 ${n}; class indices go to g.crossEntropy or g.nllLoss`).withLoc(b.loc);
  const s = broadcastShapes(xt.shape, yt.shape);
  if (!s || !sameShape(s, xt.shape))
    throw new CompileError(
      `${op}: ${names[1]} ${formatType(yt)} does not fit ${names[0]} ${formatType(xt)}`,
      `give ${names[1]} the shape ${fmtShape(xt.shape)} (or one that broadcasts to it)`,
    ).withLoc(b.loc);
  return s;
}

/** An optional per-element weight that broadcasts to `shape`. */
function weighted(op: string, b: Builder, l: ValueId, w: ValueId | undefined, what: string): ValueId {
  if (w === undefined) return l;
  const lt = b.type(l);
  const wt = b.type(w);
  const s = broadcastShapes(wt.shape, lt.shape);
  if (wt.dtype !== 'f32' || !s || !sameShape(s, lt.shape))
    throw new CompileError(`${op}: ${what} ${formatType(wt)} does not broadcast to the loss ${formatType(lt)}`, `give ${what} the shape ${fmtShape(lt.shape)} or one that broadcasts to it (e.g. [${lt.shape.at(-1) ?? 1}])`).withLoc(b.loc);
  return b.mul(l, w);
}

export function mseLoss(b: Builder, x: ValueId, y: ValueId, reduction: Reduction): ValueId {
  pair('mseLoss', b, x, y, ['input', 'target']);
  return reduce(b, b.square(b.sub(x, y)), reduction);
}

export function l1Loss(b: Builder, x: ValueId, y: ValueId, reduction: Reduction): ValueId {
  pair('l1Loss', b, x, y, ['input', 'target']);
  return reduce(b, b.abs(b.sub(x, y)), reduction);
}

/** F.huber_loss: ½d² where |d| < δ, else δ(|d| − ½δ). */
export function huberLoss(b: Builder, x: ValueId, y: ValueId, delta: number, reduction: Reduction): ValueId {
  pair('huberLoss', b, x, y, ['input', 'target']);
  const d = b.sub(x, y);
  const z = b.abs(d);
  return reduce(b, b.select(b.gt(delta, z), b.mul(b.square(d), 0.5), b.mul(b.sub(z, 0.5 * delta), delta)), reduction);
}

/** log v clamped at −100 as torch's BCE does, with no NaN gradient at v = 0. */
function clampedLog(b: Builder, v: ValueId): ValueId {
  const pos = b.gt(v, 0);
  return b.select(pos, b.maximum(b.log(b.select(pos, v, 1)), -100), -100);
}

/**
 * F.binary_cross_entropy: −w·(t·log p + (1 − t)·log(1 − p)), each log clamped at −100. The
 * gradient is torch's own: d/dp = w·(p − t) / max(p·(1 − p), 1e-12) (not the derivative of the
 * clamped logs), added as p·G − stop(p·G), which is exactly 0 in value; d/dt = w·(log(1 − p) − log p).
 */
export function binaryCrossEntropy(b: Builder, p: ValueId, t: ValueId, weight: ValueId | undefined, reduction: Reduction): ValueId {
  pair('binaryCrossEntropy', b, p, t, ['probs', 'targets']);
  const ps = b.stopGradient(p);
  const l = b.neg(b.add(b.mul(t, clampedLog(b, ps)), b.mul(b.sub(1, t), clampedLog(b, b.sub(1, ps)))));
  const wl = weighted('binaryCrossEntropy', b, l, weight, 'weight');
  let grad = b.div(b.sub(ps, b.stopGradient(t)), b.maximum(b.mul(ps, b.sub(1, ps)), 1e-12));
  if (weight !== undefined) grad = b.mul(grad, b.stopGradient(weight));
  const pg = b.mul(p, b.stopGradient(grad));
  return reduce(b, b.add(wl, b.sub(pg, b.stopGradient(pg))), reduction);
}

/**
 * F.binary_cross_entropy_with_logits: (1 − t)·x + (1 + (pw − 1)·t)·softplus(−x), times the weight,
 * computed as (1 − t)·softplus(x) + pw·t·softplus(−x) (the same, since x + softplus(−x) =
 * softplus(x)): no cancellation, so a confident right answer keeps its small loss (e^−|x|) where
 * the first form rounds it to 0.
 */
export function bceWithLogits(b: Builder, x: ValueId, t: ValueId, posWeight: ValueId | undefined, weight: ValueId | undefined, reduction: Reduction): ValueId {
  pair('binaryCrossEntropyWithLogits', b, x, t, ['logits', 'targets']);
  const xt = b.type(x);
  if (posWeight !== undefined) {
    const pt = b.type(posWeight);
    const s = broadcastShapes(pt.shape, xt.shape);
    if (pt.dtype !== 'f32' || !s || !sameShape(s, xt.shape))
      throw new CompileError(`binaryCrossEntropyWithLogits: posWeight ${formatType(pt)} does not broadcast to the logits ${formatType(xt)}`, `give posWeight one value per class: [${xt.shape.at(-1) ?? 1}]`).withLoc(b.loc);
  }
  const pos = posWeight === undefined ? t : b.mul(posWeight, t);
  const l = b.add(b.mul(b.sub(1, t), softplusStable(b, x)), b.mul(pos, softplusStable(b, b.neg(x))));
  return reduce(b, weighted('binaryCrossEntropyWithLogits', b, l, weight, 'weight'), reduction);
}

export interface ClassLossOptions {
  axis: number;
  ignoreIndex?: number;
  labelSmoothing: number;
  weight?: ValueId;
  reduction: Reduction;
}

/** F.cross_entropy: nllLoss of logSoftmax along the class axis; without options, the fused xent. */
export function crossEntropy(b: Builder, hint: Hint, logits: ValueId, targets: ValueId, o: ClassLossOptions): ValueId {
  const lt = b.type(logits);
  const plain = o.axis === lt.shape.length - 1 && o.ignoreIndex === undefined && o.labelSmoothing === 0 && o.weight === undefined && o.reduction === 'mean';
  if (plain) return fusedCrossEntropy(b, hint, logits, targets);
  if (lt.dtype !== 'f32') throw new CompileError(`crossEntropy: logits are ${formatType(lt)} but f32 is needed`, 'pass the f32 scores, one per class').withLoc(b.loc);
  return nllLoss(b, hint(logSoftmax(b, hint, logits, o.axis), 'logprobs'), targets, o, 'crossEntropy');
}

/**
 * F.nll_loss (and label smoothing as F.cross_entropy's, torch 1.13): −w[y]·lp[y] at each position
 * whose target is not ignoreIndex; 'mean' divides by the sum of those weights.
 */
export function nllLoss(b: Builder, lp: ValueId, targets: ValueId, o: ClassLossOptions, op = 'nllLoss'): ValueId {
  const lt = b.type(lp);
  const tt = b.type(targets);
  const rank = lt.shape.length;
  if (lt.dtype !== 'f32' || rank < 1) throw new CompileError(`${op}: the scores are ${formatType(lt)}; f32 [..., classes] is needed`, 'pass f32 scores with a class axis').withLoc(b.loc);
  const classes = lt.shape[o.axis]!;
  if (typeof classes !== 'number')
    throw new CompileError(`${op}: the number of classes of ${formatType(lt)} (axis ${o.axis}) is symbolic`, 'give the class axis a size known at build time').withLoc(b.loc);
  const positions = lt.shape.filter((_d, i) => i !== o.axis);
  if (tt.dtype !== 'i32' || !sameShape(tt.shape, positions)) throw targetsError(op, b, lt, tt, o.axis, positions);
  if (o.ignoreIndex !== undefined && !(Number.isInteger(o.ignoreIndex) && o.ignoreIndex >= 0 && o.ignoreIndex < classes))
    throw new CompileError(
      `${op}: ignoreIndex ${o.ignoreIndex} is not a class of ${formatType(lt)} (0..${classes - 1})`,
      `graphc's modules reject a target outside 0..${classes - 1} before any work, so only a class can be ignored: name the class to skip (e.g. the padding token's), or omit ignoreIndex`,
    ).withLoc(b.loc);
  if (o.weight !== undefined) {
    const wt = b.type(o.weight);
    if (wt.dtype !== 'f32' || !sameShape(wt.shape, [classes]))
      throw new CompileError(`${op}: weight ${formatType(wt)} must hold one f32 value per class: [${classes}]`, `pass a tensor or an array of ${classes} numbers`).withLoc(b.loc);
  }
  // the class axis last: every position a row of [..., classes]
  const last = rank - 1;
  const perm = [...Array(rank).keys()].filter((i) => i !== o.axis).concat(o.axis);
  const rows = o.axis === last ? lp : b.transpose(lp, perm);
  const oh = hint(b, b.oneHot(targets, classes), 'target_mask');
  const picked = b.sum(b.mul(rows, oh), [last]);
  const axes = positions.map((_d, i) => i);
  const keep = o.ignoreIndex === undefined ? undefined : b.sub(1, b.reshape(b.slice(oh, [...positions.map(() => 0), o.ignoreIndex], [...positions, 1]), positions));
  const wPos = o.weight === undefined ? undefined : b.sum(b.mul(oh, o.weight), [last]);
  const w = wPos === undefined ? keep : keep === undefined ? wPos : b.mul(wPos, keep);
  const nll = w === undefined ? b.neg(picked) : b.neg(b.mul(picked, w));
  const denom = () => (w === undefined ? b.count(positions) : b.sum(w, axes));
  const red = (l: ValueId, d: () => ReturnType<typeof denom>) =>
    o.reduction === 'none' ? l : o.reduction === 'sum' ? b.sum(l, axes) : b.div(b.sum(l, axes), d());
  const loss = red(nll, denom);
  if (o.labelSmoothing === 0) return loss;
  let smooth = b.neg(b.sum(o.weight === undefined ? rows : b.mul(rows, o.weight), [last]));
  if (keep !== undefined) smooth = b.mul(smooth, keep);
  const smoothDenom = () => (o.weight !== undefined ? denom() : keep === undefined ? b.count(positions) : b.sum(keep, axes));
  return b.add(b.mul(loss, 1 - o.labelSmoothing), b.mul(red(smooth, smoothDenom), o.labelSmoothing / classes));
}

function hint(b: Builder, v: ValueId, name: string): ValueId {
  if (b.graph.value(v).temp) b.graph.rename(v, name);
  return v;
}

const what = (op: string) => (op === 'nllLoss' ? 'log-probabilities' : 'logits');

function targetsError(op: string, b: Builder, lt: TensorType, tt: TensorType, axis: number, positions: Dim[]): CompileError {
  const rank = lt.shape.length;
  const other = rank > 2 && axis === rank - 1 && sameShape(tt.shape, [lt.shape[0]!, ...lt.shape.slice(2)]);
  if (tt.dtype === 'i32' && other)
    return new CompileError(
      `${op}: ${what(op)} ${formatType(lt)} with targets ${formatType(tt)} are in PyTorch's layout, the classes on axis 1 (F.cross_entropy's [N, C, ...]); graphc's ${op} takes the classes on the last axis by default`,
      `pass { axis: 1 } to read the classes from axis 1 as torch does, or move the class axis last: g.${op}(${op === 'nllLoss' ? 'logProbs' : 'logits'}.transpose(${fmtShape([0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2), 1])}), targets)`,
    ).withLoc(b.loc);
  return new CompileError(
    `${op}: targets must be i32${fmtShape(positions)} class indices, one per position of ${formatType(lt)} (classes on axis ${axis}), got ${formatType(tt)}`,
    `declare the targets as g.input(name, ${fmtShape(positions)}, 'i32')`,
  ).withLoc(b.loc);
}
