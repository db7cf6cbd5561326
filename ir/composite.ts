// Composite ops, built from primitives. Each intermediate value gets a name hint (`counts`,
// `bnvar_inv`, ...) in the vocabulary of the lecture notes, so that the IR and the generated
// code read like the hand-written backprop.

import type { Builder } from './builder.js';
import { CompileError } from './errors.js';
import type { Dim } from './dims.js';
import { asDim, isStatic, numelSize } from './dims.js';
import type { TensorType, ValueId } from './types.js';
import { formatType, sameShape } from './types.js';
import { broadcastShapes, fmtShape } from './shape.js';

export type Hint = (v: ValueId, name: string) => ValueId;

/** `also`: the other shapes the op takes, for the message. */
function rank2(op: string, b: Builder, x: ValueId, what: string, also = ''): [Dim, Dim] {
  const t = b.type(x);
  if (t.shape.length !== 2)
    throw new CompileError(`${op}: ${what} must be 2-D [n, classes]${also}, got ${formatType(t)}`, 'reshape it to [n, c] first').withLoc(b.loc);
  return [t.shape[0]!, t.shape[1]!];
}

function targetsOf(op: string, b: Builder, targets: ValueId, n: Dim): void {
  const t = b.type(targets);
  if (t.dtype !== 'i32' || t.shape.length !== 1 || t.shape[0] !== n)
    throw new CompileError(
      `${op}: targets must be i32[${n}] class indices, got ${formatType(t)}`,
      `declare the targets as g.input(name, [${n}], 'i32')`,
    ).withLoc(b.loc);
}

/** mean over `axes` = sum · (1/count), the count bound per call where an axis is symbolic. */
export function mean(b: Builder, x: ValueId, axes: number[], keepDims: boolean): ValueId {
  const shape = b.type(x).shape;
  return b.mul(b.sum(x, axes, keepDims), b.recip(b.count(axes.map((a) => shape[a]!))));
}

/** x − max(x) along `axis`, with the max held constant (the numerical-stability shift). */
function shifted(b: Builder, hint: Hint, x: ValueId, axis: number): ValueId {
  const maxes = hint(b.stopGradient(b.max(x, [axis], true)), 'logit_maxes');
  return hint(b.sub(x, maxes), 'norm_logits');
}

export function softmax(b: Builder, hint: Hint, x: ValueId, axis: number): ValueId {
  const counts = hint(b.exp(shifted(b, hint, x, axis)), 'counts');
  const countsSum = hint(b.sum(counts, [axis], true), 'counts_sum');
  return b.div(counts, countsSum);
}

export function logSoftmax(b: Builder, hint: Hint, x: ValueId, axis: number): ValueId {
  const norm = shifted(b, hint, x, axis);
  const countsSum = hint(b.sum(hint(b.exp(norm), 'counts'), [axis], true), 'counts_sum');
  return b.sub(norm, hint(b.log(countsSum), 'log_counts_sum'));
}

/**
 * mean over the batch of −log softmax(logits)[i, targets[i]]; logits [n, t, classes] with
 * targets [n, t] (a loss at every position of a sequence) average over all n·t positions.
 */
export function crossEntropy(b: Builder, hint: Hint, logits: ValueId, targets: ValueId): ValueId {
  const lt = b.type(logits);
  if (lt.shape.length > 2) {
    const positions = lt.shape.slice(0, -1);
    const classes = lt.shape.at(-1)!;
    const tt = b.type(targets);
    const rank = lt.shape.length;
    // PyTorch's layout: F.cross_entropy takes logits [N, C, d1, ...] with targets [N, d1, ...]
    if (tt.dtype === 'i32' && !sameShape(tt.shape, positions) && sameShape(tt.shape, [lt.shape[0]!, ...lt.shape.slice(2)])) {
      const perm = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2), 1];
      throw new CompileError(
        `crossEntropy: logits ${formatType(lt)} with targets ${formatType(tt)} are in PyTorch's layout, the classes on axis 1 (F.cross_entropy's [N, C, ...]); graphc's crossEntropy takes the classes on the last axis by default`,
        `pass { axis: 1 } to read the classes from axis 1 as torch does (g.crossEntropy(logits, targets, { axis: 1 })), or move the class axis last: g.crossEntropy(logits.transpose(${fmtShape(perm)}), targets) gives logits ${fmtShape(perm.map((k) => lt.shape[k]!))}`,
      ).withLoc(b.loc);
    }
    if (tt.dtype !== 'i32' || !sameShape(tt.shape, positions))
      throw new CompileError(
        `crossEntropy: targets must be i32${fmtShape(positions)} class indices, one per row of logits ${formatType(lt)}, got ${formatType(tt)}`,
        `declare the targets as g.input(name, ${fmtShape(positions)}, 'i32')`,
      ).withLoc(b.loc);
    if (typeof classes !== 'number')
      throw new CompileError(`crossEntropy: the number of classes of ${formatType(lt)} is symbolic`, 'give the last axis a size known at build time').withLoc(b.loc);
    // the positions as the rows of one [n, classes] matrix (n = B*64 where B is symbolic): the fused cross-entropy rule
    const n = asDim(numelSize(positions));
    const rows = (v: ValueId, shape: Dim[]) => {
      const r = b.reshape(v, shape);
      return b.graph.value(v).temp ? r : hint(r, `${b.graph.value(v).name}_rows`);
    };
    return crossEntropy(b, hint, rows(logits, [n, classes]), rows(targets, [n]));
  }
  const [n] = rank2('crossEntropy', b, logits, 'logits', ' (or [n, t, classes])');
  targetsOf('crossEntropy', b, targets, n);
  const logprobs = hint(logSoftmax(b, hint, logits, 1), 'logprobs');
  return b.neg(mean(b, b.pick(logprobs, targets), [0], false));
}

/**
 * Batch normalisation with batch statistics, as in the lecture: over axis 0 of [n, features], and
 * over axes 0 and 1 of [n, t, features] (part 5's BatchNorm1d); the variance used for
 * normalisation has Bessel's correction (n − 1, with n the number of rows averaged). `bn.axis`:
 * the feature axis (default the last; 1 for NCHW as torch's BatchNorm2d), the statistics over
 * every other; `bn.correction` 0: the variance divided by n, as torch.nn.BatchNorm normalises.
 */
export function batchNorm(b: Builder, hint: Hint, x: ValueId, gain: ValueId, bias: ValueId, eps: number, bn: BnAxis = {}): ValueId {
  const s = batchStatistics(b, hint, x, gain, bias, eps, bn);
  const bnraw = hint(b.mul(s.bndiff, s.bnvarInv), 'bnraw');
  return b.add(b.mul(s.gain, bnraw), s.bias);
}

/** batchNorm's feature axis (normalised, default the last) and correction (default 1). */
export interface BnAxis {
  axis?: number;
  correction?: 0 | 1;
}

/**
 * The checks and batch statistics of batchNorm: bnmeani, bndiff, bnvar (divided by n − correction)
 * and bnvar_inv, kept as 1s on the normalised axes; gain and bias reshaped to broadcast along the
 * feature axis (a [C] gain of NCHW's BatchNorm2d becomes [C, 1, 1]).
 */
function batchStatistics(b: Builder, hint: Hint, x: ValueId, gain: ValueId, bias: ValueId, eps: number, bn: BnAxis) {
  const t = b.type(x);
  const r = t.shape.length;
  if (r < 2)
    throw new CompileError(`batchNorm: x must be [n, features] or [n, ..., features], got ${formatType(t)}`, 'reshape it to [n, features] first').withLoc(b.loc);
  const f = bn.axis ?? r - 1;
  const correction = bn.correction ?? 1;
  const axes = [...Array(r).keys()].filter((i) => i !== f);
  const rows = axes.map((i) => t.shape[i]!);
  const n = numelSize(rows);
  if (isStatic(n) && n.coef < 2)
    throw new CompileError(
      `batchNorm: needs a batch of 2 or more rows, got ${formatType(t)}`,
      correction === 1 ? "Bessel's correction divides by n − 1" : 'the statistics of one value per feature say nothing (torch refuses it too)',
    ).withLoc(b.loc);
  const features = t.shape[f]!;
  const perFeature = (v: ValueId): ValueId => {
    const vt = b.type(v);
    if (f === r - 1 || vt.shape.length !== 1 || vt.shape[0] !== features) return v;
    return b.reshape(v, [features, ...Array(r - 1 - f).fill(1)]);
  };
  const [g, c] = [perFeature(gain), perFeature(bias)];
  for (const [v, what] of [[g, 'gain'], [c, 'bias']] as const) {
    scaleShift('batchNorm', b, v, what, t, features);
    // over another axis than the last, a gain that varies along a normalised axis is a mistake
    const vs = b.type(v).shape;
    if (f !== r - 1 && vs.some((d, i) => d !== 1 && r - vs.length + i !== f))
      throw new CompileError(
        `batchNorm: ${what} ${formatType(b.type(v))} does not fit x ${formatType(t)}: it must hold one value per feature`,
        `give ${what} the shape [${features}], or pass a number`,
      ).withLoc(b.loc);
  }
  const bnmeani = hint(mean(b, x, axes, true), 'bnmeani');
  const bndiff = hint(b.sub(x, bnmeani), 'bndiff');
  const bndiff2 = hint(b.square(bndiff), 'bndiff2');
  const sq = b.sum(bndiff2, axes, true);
  const bnvar = hint(b.mul(sq, b.recip(b.count(rows, correction))), 'bnvar');
  const bnvarInv = hint(b.pow(b.add(bnvar, eps), -0.5), 'bnvar_inv');
  // the running variance is the unbiased one whatever the correction, as torch keeps it
  const unbiased = () => (correction === 1 ? bnvar : hint(b.mul(sq, b.recip(b.count(rows, 1))), 'bnvar_unbiased'));
  return { bnmeani, bndiff, bnvar, bnvarInv, unbiased, gain: g, bias: c, features };
}

/**
 * batchNorm that keeps running statistics, as torch.nn.BatchNorm1d: buffers `<name>.running_mean`
 * and `<name>.running_var` of [features]. A training call normalises with the batch statistics
 * (the fused bn_apply, whose gradient is the lecture's) and gives the next running statistics,
 * new = (1 − momentum)·old + momentum·batch statistic (the variance unbiased: Bessel's correction,
 * as torch); an evaluation call normalises with the running statistics. Which statistics are
 * used is selected by the mode flag (a select, not a blend: a batch of one has a NaN variance).
 */
export function batchNormRunning(
  b: Builder,
  hint: Hint,
  x: ValueId,
  gain: ValueId,
  bias: ValueId,
  eps: number,
  momentum: number,
  name: string,
  bn: BnAxis = {},
): { y: ValueId; updates: { name: string; value: ValueId }[] } {
  const s = batchStatistics(b, hint, x, gain, bias, eps, bn);
  const { bnmeani, bnvarInv, features: f } = s;
  const stat = b.type(bnmeani).shape;
  const meanName = `${name}.running_mean`;
  const varName = `${name}.running_var`;
  const runningMean = b.buffer(meanName, [f], { raw: meanName });
  const runningVar = b.buffer(varName, [f], { raw: varName });
  const training = b.mode();
  const runningInv = hint(b.pow(b.add(b.reshape(runningVar, stat), eps), -0.5), 'bnvar_inv_running');
  const bnmean = hint(b.select(training, bnmeani, b.reshape(runningMean, stat)), 'bnmean');
  const bninv = hint(b.select(training, bnvarInv, runningInv), 'bninv');
  // the statistics are x's batch statistics in every call that takes a gradient (training)
  const r = b.type(x).shape.length;
  const attrs = { ...(bn.axis !== undefined && bn.axis !== r - 1 ? { axis: bn.axis } : {}), ...(bn.correction === 0 ? { correction: 0 } : {}) };
  const bnraw = hint(b.emit('bn_apply', [x, bnmean, bninv], attrs), 'bnraw');
  const next = (old: ValueId, batch: ValueId) => b.add(b.mul(old, 1 - momentum), b.mul(b.reshape(batch, [f]), momentum));
  const updates = [
    { name: meanName, value: hint(next(runningMean, bnmeani), `${name}_running_mean_next`) },
    { name: varName, value: hint(next(runningVar, s.unbiased()), `${name}_running_var_next`) },
  ];
  return { y: b.add(b.mul(s.gain, bnraw), s.bias), updates };
}

/** A normalisation's gain or bias must be a number or hold one value per feature: it broadcasts to x and leaves x's shape. */
function scaleShift(op: string, b: Builder, v: ValueId, what: string, x: TensorType, features: Dim = x.shape.at(-1)!): void {
  const t = b.type(v);
  const out = broadcastShapes(t.shape, x.shape);
  if (t.dtype !== 'f32' || !out || !sameShape(out, x.shape)) {
    const f = features;
    throw new CompileError(
      `${op}: ${what} ${formatType(t)} does not fit x ${formatType(x)}: it must hold one value per feature`,
      `give ${what} the shape [${f}]${f === x.shape.at(-1) ? ` (or [1, ${f}])` : ''}, or pass a number`,
    ).withLoc(b.loc);
  }
}

/**
 * Layer norm over the last axis of x [..., c]: each row normalised to mean 0 and variance 1 (the
 * variance divided by c, as torch.nn.LayerNorm does), then scaled by gain and shifted by bias,
 * both [c]. The rewrite fuses (x − lnmean) · lnvar_inv into ln_apply.
 */
export function layerNorm(b: Builder, hint: Hint, x: ValueId, gain: ValueId, bias: ValueId, eps: number): ValueId {
  const t = b.type(x);
  if (t.shape.length < 1 || t.dtype !== 'f32')
    throw new CompileError(`layerNorm: x must be an f32 tensor [..., features], got ${formatType(t)}`, 'normalise a tensor of features: [features], [n, features] or [n, t, features]').withLoc(b.loc);
  for (const [v, what] of [[gain, 'gain'], [bias, 'bias']] as const) scaleShift('layerNorm', b, v, what, t);
  const last = t.shape.length - 1;
  const lnmean = hint(mean(b, x, [last], true), 'lnmean');
  const lndiff = hint(b.sub(x, lnmean), 'lndiff');
  const lnvar = hint(mean(b, b.square(lndiff), [last], true), 'lnvar');
  const lnvarInv = hint(b.pow(b.add(lnvar, eps), -0.5), 'lnvar_inv');
  const lnraw = hint(b.mul(lndiff, lnvarInv), 'lnraw');
  return b.add(b.mul(gain, lnraw), bias);
}

/** Multiclass SVM loss: mean over i of Σ_{j≠yᵢ} max(0, s_ij − s_iyᵢ + margin). */
export function hingeLoss(b: Builder, hint: Hint, scores: ValueId, targets: ValueId, margin: number): ValueId {
  const [n, c] = rank2('hingeLoss', b, scores, 'scores');
  targetsOf('hingeLoss', b, targets, n);
  const correct = hint(b.reshape(b.pick(scores, targets), [n, 1]), 'correct_class_score');
  const margins = hint(b.relu(b.add(b.sub(scores, correct), margin)), 'margins');
  const masked = hint(b.mul(margins, b.sub(1, b.oneHot(targets, c as number))), 'margins_masked');
  return mean(b, b.sum(masked, [1]), [0], false);
}
