// Composite ops, built from primitives. Each intermediate value gets a name hint (`counts`,
// `bnvar_inv`, ...) in the vocabulary of the lecture notes, so that the IR and the generated
// code read like the hand-written backprop.

import type { Builder } from './builder.js';
import { CompileError } from './errors.js';
import type { Dim } from './dims.js';
import type { ValueId } from './types.js';
import { formatType } from './types.js';

export type Hint = (v: ValueId, name: string) => ValueId;

function rank2(op: string, b: Builder, x: ValueId, what: string): [Dim, Dim] {
  const t = b.type(x);
  if (t.shape.length !== 2)
    throw new CompileError(`${op}: ${what} must be 2-D [n, classes], got ${formatType(t)}`, 'reshape it to [n, c] first').withLoc(b.loc);
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

/** mean over the batch of −log softmax(logits)[i, targets[i]]. */
export function crossEntropy(b: Builder, hint: Hint, logits: ValueId, targets: ValueId): ValueId {
  const [n] = rank2('crossEntropy', b, logits, 'logits');
  targetsOf('crossEntropy', b, targets, n);
  const logprobs = hint(logSoftmax(b, hint, logits, 1), 'logprobs');
  return b.neg(mean(b, b.pick(logprobs, targets), [0], false));
}

/**
 * Batch normalisation over axis 0 with batch statistics, as in the lecture: the variance used
 * for normalisation has Bessel's correction (n − 1).
 */
export function batchNorm(b: Builder, hint: Hint, x: ValueId, gain: ValueId, bias: ValueId, eps: number): ValueId {
  const t = b.type(x);
  if (t.shape.length !== 2)
    throw new CompileError(`batchNorm: x must be 2-D [n, features], got ${formatType(t)}`, 'reshape it to [n, features] first').withLoc(b.loc);
  const n = t.shape[0]!;
  if (typeof n === 'number' && n < 2)
    throw new CompileError(`batchNorm: needs a batch of 2 or more rows, got ${formatType(t)}`, "Bessel's correction divides by n − 1").withLoc(b.loc);
  const bnmeani = hint(mean(b, x, [0], true), 'bnmeani');
  const bndiff = hint(b.sub(x, bnmeani), 'bndiff');
  const bndiff2 = hint(b.square(bndiff), 'bndiff2');
  const bnvar = hint(b.mul(b.sum(bndiff2, [0], true), b.recip(b.count([n], 1))), 'bnvar');
  const bnvarInv = hint(b.pow(b.add(bnvar, eps), -0.5), 'bnvar_inv');
  const bnraw = hint(b.mul(bndiff, bnvarInv), 'bnraw');
  return b.add(b.mul(gain, bnraw), bias);
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
