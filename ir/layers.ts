// PyTorch's layers as composites of existing ops (issue #31): layer norm over the last k axes
// and group norm (reshaped onto layer norm's last axis, so that the rewrite fuses them into
// ln_apply), the transposed convolution (the conv op's input gradient, conv_input_grad, which is
// one), and resampling along H and W as products with constant matrices (bilinear upsampling,
// adaptive average pooling) or a broadcast (nearest upsampling by an integer factor).

import type { Builder } from './builder.js';
import type { Hint } from './composite.js';
import { mean } from './composite.js';
import type { Dim } from './dims.js';
import type { ValueId } from './types.js';

/** (x − mean) · (var + eps)^−½ over the last axis, the variance divided by n: what the rewrite fuses into ln_apply. */
export function normalizeLast(b: Builder, hint: Hint, x: ValueId, eps: number): ValueId {
  const last = b.type(x).shape.length - 1;
  const lnmean = hint(mean(b, x, [last], true), 'lnmean');
  const lndiff = hint(b.sub(x, lnmean), 'lndiff');
  const lnvar = hint(mean(b, b.square(lndiff), [last], true), 'lnvar');
  const lnvarInv = hint(b.pow(b.add(lnvar, eps), -0.5), 'lnvar_inv');
  return hint(b.mul(lndiff, lnvarInv), 'lnraw');
}

/** x normalised over its last k axes (statically sized), as one axis of their product. */
export function normalizeLastAxes(b: Builder, hint: Hint, x: ValueId, k: number, eps: number): ValueId {
  const shape = b.type(x).shape;
  if (k === 1) return normalizeLast(b, hint, x, eps);
  const inner = shape.slice(-k) as number[];
  const flat = b.reshape(x, [...shape.slice(0, -k), inner.reduce((p, d) => p * d, 1)]);
  return b.reshape(normalizeLast(b, hint, flat, eps), shape);
}

/** GroupNorm's normalisation of x [N, C, ...]: each of `groups` groups of C/groups channels (and every position) of a sample, biased variance. */
export function groupNormalize(b: Builder, hint: Hint, x: ValueId, groups: number, eps: number): ValueId {
  const shape = b.type(x).shape;
  const per = (shape.slice(1) as number[]).reduce((p, d) => p * d, 1) / groups;
  const grouped = b.reshape(x, [shape[0]!, groups, per]);
  return b.reshape(normalizeLast(b, hint, grouped, eps), shape);
}

/** The [out, n] matrix of torch's adaptive average pooling along one axis: row i averages [⌊i·n/out⌋, ⌈(i + 1)·n/out⌉). */
export function adaptiveMatrix(n: number, out: number): number[] {
  const m = new Array<number>(out * n).fill(0);
  for (let i = 0; i < out; i++) {
    const start = Math.floor((i * n) / out);
    const end = Math.ceil(((i + 1) * n) / out);
    for (let j = start; j < end; j++) m[i * n + j] = 1 / (end - start);
  }
  return m;
}

/**
 * The [out, n] matrix of torch's interpolation along one axis (upsample_nearest / bilinear's
 * linear factor). `scale`: the factor given (torch then maps with 1/scale), or undefined for a
 * size given (n/out). alignCorners: the corners' centres coincide, (n − 1)/(out − 1).
 */
export function interpolationMatrix(n: number, out: number, mode: 'nearest' | 'bilinear', alignCorners: boolean, scale: number | undefined): number[] {
  const m = new Array<number>(out * n).fill(0);
  const ratio = scale !== undefined && scale > 0 ? 1 / scale : n / out;
  for (let i = 0; i < out; i++) {
    if (mode === 'nearest') {
      // torch's nearest_idx: ⌊i·scale⌋ in float32
      m[i * n + Math.min(Math.floor(Math.fround(i * Math.fround(ratio))), n - 1)] = 1;
      continue;
    }
    const src = alignCorners ? (out > 1 ? (i * (n - 1)) / (out - 1) : 0) : Math.max(ratio * (i + 0.5) - 0.5, 0);
    const i0 = Math.min(Math.floor(src), n - 1);
    const i1 = Math.min(i0 + 1, n - 1);
    const l = src - i0;
    m[i * n + i0]! += 1 - l;
    m[i * n + i1]! += l;
  }
  return m;
}

/** x [N, C, H, W] resampled to [N, C, Ho, Wo] as Mh · x · Mwᵀ, with mh [Ho, H] and mw [Wo, W] row-major. */
export function resample2d(b: Builder, x: ValueId, mh: number[], ho: number, mw: number[], wo: number): ValueId {
  const [, , h, w] = b.type(x).shape as [Dim, Dim, number, number];
  const transposed = (m: number[], rows: number, cols: number) => Array.from({ length: rows * cols }, (_v, k) => m[(k % cols) * rows + Math.floor(k / cols)]!);
  let y = x;
  if (!isIdentity(mw, wo, w)) y = b.matmul(y, b.constant(transposed(mw, w, wo), [w, wo]));
  if (!isIdentity(mh, ho, h)) {
    y = b.transpose(y, [0, 1, 3, 2]);
    y = b.transpose(b.matmul(y, b.constant(transposed(mh, h, ho), [h, ho])), [0, 1, 3, 2]);
  }
  return y;
}

function isIdentity(m: number[], rows: number, cols: number): boolean {
  return rows === cols && m.every((v, k) => v === (Math.floor(k / cols) === k % cols ? 1 : 0));
}

/** Nearest upsampling of x [N, C, H, W] by integer factors: each value repeated, as a broadcast. */
export function repeat2d(b: Builder, x: ValueId, sh: number, sw: number): ValueId {
  const [n, c, h, w] = b.type(x).shape as [Dim, Dim, number, number];
  const spread = b.broadcast(b.reshape(x, [n, c, h, 1, w, 1]), [n, c, h, sh, w, sw]);
  return b.reshape(spread, [n, c, h * sh, w * sw]);
}
