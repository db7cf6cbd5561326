// The op-table entries of convolutions and pooling (PyTorch's layout: x [N, C, H, W], weight
// [O, C/groups, kH, kW]): shape rules, gradient rules and float64 references. The 1-D forms of
// the DSL are these ops over [N, C, 1, L].
//
//   conv             y[n, o, i, j] = Σ_{c, p, q} x[n, g·C/G + c, i·sh − pt + p·dh, j·sw − pl + q·dw] · w[o, c, p, q]
//   conv_input_grad  dx = the transposed convolution of dy (dy convolved with the flipped weights)
//   conv_weight_grad dw = the correlation of x with dy
//   max_pool, avg_pool and their gradients (max: to the first maximum of each window)
//
// The gradient ops are linear in each operand, and their own gradients are these three ops
// again, so that any order of differentiation stays in the table.

import { CompileError } from './errors.js';
import * as K from './ndarray.js';
import type { NDArray } from './ndarray.js';
import type { GradCtx, GradThunk } from './ops.js';
import type { Dim } from './dims.js';
import { isStatic } from './dims.js';
import type { Inst, TensorType } from './types.js';
import type { Graph } from './graph.js';
import { formatType } from './types.js';

/** A convolution's geometry: padding is [top, left, bottom, right]. */
export interface ConvAttrs {
  stride: number[];
  padding: number[];
  dilation: number[];
  groups: number;
}
export interface ConvInputGradAttrs extends ConvAttrs {
  /** The input's spatial size [H, W] (not determined by the output's under a stride). */
  size: number[];
}
export interface ConvWeightGradAttrs extends ConvAttrs {
  /** The kernel's size [kH, kW]. */
  kernel: number[];
}
/** A pooling window; padding is [top, left] (as much again at the bottom and right). */
export interface PoolAttrs {
  kernel: number[];
  stride: number[];
  padding: number[];
}
export interface PoolGradAttrs extends PoolAttrs {
  size: number[];
}

/**
 * A convolution op's x [N, C, H, W], w [O, Cg, kH, kW] and y [N, O, Ho, Wo]: which of its two
 * arguments and its result holds each (conv: x, w → y; conv_input_grad: dy, w → dx;
 * conv_weight_grad: x, dy → dw).
 */
export function convOperands<T>(op: string, [a0, a1]: readonly T[], result: T): { x: T; w: T; y: T } {
  if (op === 'conv') return { x: a0!, w: a1!, y: result };
  return op === 'conv_input_grad' ? { x: result, w: a1!, y: a0! } : { x: a0!, w: result, y: a1! };
}

/**
 * A convolution instruction's geometry for the emitters: its x, w and y values (convOperands),
 * x [N, C, H, W] (N may be symbolic), w [O, Cg, kH, kW], y [N, O, Ho, Wo], its strides, dilations
 * and leading paddings, and Og = O / groups.
 */
export function convGeometry(g: Graph, inst: Inst) {
  const { x, w, y } = convOperands(inst.op, inst.args, inst.result);
  const [N, C, H, W] = g.type(x).shape as [Dim, number, number, number];
  const [O, Cg, kH, kW] = g.type(w).shape as [number, number, number, number];
  const [, , Ho, Wo] = g.type(y).shape as [Dim, number, number, number];
  const a = inst.attrs as unknown as ConvAttrs;
  const [[sh, sw], [dh, dw], [pt, pl]] = [a.stride, a.dilation, a.padding] as [number, number][];
  return { x, w, y, N, C, H, W, O, Cg, kH, kW, Ho, Wo, sh: sh!, sw: sw!, dh: dh!, dw: dw!, pt: pt!, pl: pl!, Og: O / a.groups };
}

export const CONV_SCHEMA = { stride: 'ints', padding: 'ints', dilation: 'ints', groups: 'int' } as const;
export const POOL_SCHEMA = { kernel: 'ints', stride: 'ints', padding: 'ints' } as const;

const f32 = (shape: Dim[]): TensorType => ({ dtype: 'f32', shape });

/** Output size of one spatial axis. */
export function outSize(n: number, k: number, stride: number, padBefore: number, padAfter: number, dilation = 1): number {
  return Math.floor((n + padBefore + padAfter - dilation * (k - 1) - 1) / stride) + 1;
}

function fail(op: string, msg: string): never {
  throw new CompileError(`${op}: ${msg}`, 'internal rule error: build the operands with the DSL (g.conv2d, g.maxPool2d, ...)');
}

function static4(op: string, t: TensorType, what: string, batchFree = true): number[] {
  if (t.dtype !== 'f32' || t.shape.length !== 4) fail(op, `${what} must be an f32 tensor of rank 4, got ${formatType(t)}`);
  t.shape.forEach((d, i) => {
    if ((i > 0 || !batchFree) && !isStatic(d)) fail(op, `${what} ${formatType(t)} has a symbolic dimension other than the batch`);
  });
  return t.shape.map((d) => (typeof d === 'number' ? d : -1));
}

function checkGeometry(op: string, a: ConvAttrs): void {
  const ok =
    a.stride.length === 2 && a.dilation.length === 2 && a.padding.length === 4 &&
    a.stride.every((s) => Number.isInteger(s) && s >= 1) && a.dilation.every((s) => Number.isInteger(s) && s >= 1) &&
    a.padding.every((p) => Number.isInteger(p) && p >= 0) && Number.isInteger(a.groups) && a.groups >= 1;
  if (!ok) fail(op, `bad geometry stride ${JSON.stringify(a.stride)} padding ${JSON.stringify(a.padding)} dilation ${JSON.stringify(a.dilation)} groups ${a.groups}`);
}

/** The output spatial size of a convolution of x [.., H, W] by a kernel [kH, kW]. */
function convOut(op: string, hw: number[], k: number[], a: ConvAttrs): [number, number] {
  const ho = outSize(hw[0]!, k[0]!, a.stride[0]!, a.padding[0]!, a.padding[2]!, a.dilation[0]!);
  const wo = outSize(hw[1]!, k[1]!, a.stride[1]!, a.padding[1]!, a.padding[3]!, a.dilation[1]!);
  if (ho < 1 || wo < 1) fail(op, `the output would be ${ho}×${wo}`);
  return [ho, wo];
}

export function convShape(op: string, x: TensorType, w: TensorType, a: ConvAttrs): TensorType {
  checkGeometry(op, a);
  const [, C, H, W] = static4(op, x, 'x');
  const [O, Cg, kH, kW] = static4(op, w, 'the weight', false);
  if (C! % a.groups !== 0 || O! % a.groups !== 0 || Cg! * a.groups !== C) fail(op, `weight ${formatType(w)} does not fit x ${formatType(x)} with ${a.groups} groups`);
  const [ho, wo] = convOut(op, [H!, W!], [kH!, kW!], a);
  return f32([x.shape[0]!, O!, ho, wo]);
}

function convInputGradShape(op: string, dy: TensorType, w: TensorType, a: ConvInputGradAttrs): TensorType {
  checkGeometry(op, a);
  const [, O, Ho, Wo] = static4(op, dy, 'dy');
  const [O2, Cg, kH, kW] = static4(op, w, 'the weight', false);
  if (a.size.length !== 2 || O !== O2 || O! % a.groups !== 0) fail(op, `dy ${formatType(dy)} does not fit the weight ${formatType(w)}`);
  const [ho, wo] = convOut(op, a.size, [kH!, kW!], a);
  if (ho !== Ho || wo !== Wo) fail(op, `dy ${formatType(dy)} is not the output of a ${a.size.join('×')} input`);
  return f32([dy.shape[0]!, Cg! * a.groups, a.size[0]!, a.size[1]!]);
}

function convWeightGradShape(op: string, x: TensorType, dy: TensorType, a: ConvWeightGradAttrs): TensorType {
  checkGeometry(op, a);
  const [, C, H, W] = static4(op, x, 'x');
  const [, O, Ho, Wo] = static4(op, dy, 'dy');
  if (a.kernel.length !== 2 || x.shape[0] !== dy.shape[0] || C! % a.groups !== 0 || O! % a.groups !== 0) fail(op, `x ${formatType(x)} does not fit dy ${formatType(dy)}`);
  const [ho, wo] = convOut(op, [H!, W!], a.kernel, a);
  if (ho !== Ho || wo !== Wo) fail(op, `dy ${formatType(dy)} is not the output of x ${formatType(x)}`);
  return f32([O!, C! / a.groups, a.kernel[0]!, a.kernel[1]!]);
}

function checkPool(op: string, a: PoolAttrs): void {
  const ok =
    a.kernel.length === 2 && a.stride.length === 2 && a.padding.length === 2 &&
    a.kernel.every((s) => Number.isInteger(s) && s >= 1) && a.stride.every((s) => Number.isInteger(s) && s >= 1) &&
    a.padding.every((p, i) => Number.isInteger(p) && p >= 0 && 2 * p <= a.kernel[i]!);
  if (!ok) fail(op, `bad window kernel ${JSON.stringify(a.kernel)} stride ${JSON.stringify(a.stride)} padding ${JSON.stringify(a.padding)}`);
}

function poolOut(op: string, hw: number[], a: PoolAttrs): [number, number] {
  const ho = outSize(hw[0]!, a.kernel[0]!, a.stride[0]!, a.padding[0]!, a.padding[0]!);
  const wo = outSize(hw[1]!, a.kernel[1]!, a.stride[1]!, a.padding[1]!, a.padding[1]!);
  if (ho < 1 || wo < 1) fail(op, `the output would be ${ho}×${wo}`);
  return [ho, wo];
}

export function poolShape(op: string, x: TensorType, a: PoolAttrs): TensorType {
  checkPool(op, a);
  const [, C, H, W] = static4(op, x, 'x');
  const [ho, wo] = poolOut(op, [H!, W!], a);
  return f32([x.shape[0]!, C!, ho, wo]);
}

function poolGradShape(op: string, dy: TensorType, a: PoolGradAttrs): TensorType {
  checkPool(op, a);
  const [, C, Ho, Wo] = static4(op, dy, 'dy');
  if (a.size.length !== 2) fail(op, 'size must be [H, W]');
  const [ho, wo] = poolOut(op, a.size, a);
  if (ho !== Ho || wo !== Wo) fail(op, `dy ${formatType(dy)} is not the output of a ${a.size.join('×')} input`);
  return f32([dy.shape[0]!, C!, a.size[0]!, a.size[1]!]);
}

// ---------------------------------------------------------------------------------------------
// Gradient rules

const geometry = (a: ConvAttrs): ConvAttrs => ({ stride: a.stride, padding: a.padding, dilation: a.dilation, groups: a.groups });
const spatial = (t: TensorType) => [t.shape[2] as number, t.shape[3] as number];

export function convGrad(c: GradCtx<ConvAttrs>): readonly GradThunk[] {
  const a = geometry(c.attrs);
  return [
    () => c.b.convInputGrad(c.dy, c.x(1), { ...a, size: spatial(c.xt(0)) }),
    () => c.b.convWeightGrad(c.x(0), c.dy, { ...a, kernel: spatial(c.xt(1)) }),
  ];
}

/** dx = Aᵀ·dy is linear in dy (its adjoint is the convolution) and in w. */
export function convInputGradGrad(c: GradCtx<ConvInputGradAttrs>): readonly GradThunk[] {
  const a = geometry(c.attrs);
  return [() => c.b.conv(c.dy, c.x(1), a), () => c.b.convWeightGrad(c.dy, c.x(0), { ...a, kernel: spatial(c.xt(1)) })];
}

export function convWeightGradGrad(c: GradCtx<ConvWeightGradAttrs>): readonly GradThunk[] {
  const a = geometry(c.attrs);
  return [() => c.b.convInputGrad(c.x(1), c.dy, { ...a, size: spatial(c.xt(0)) }), () => c.b.conv(c.x(0), c.dy, a)];
}

const window = (a: PoolAttrs): PoolAttrs => ({ kernel: a.kernel, stride: a.stride, padding: a.padding });

export function maxPoolGrad(c: GradCtx<PoolAttrs>): readonly GradThunk[] {
  return [() => c.b.maxPoolGrad(c.x(0), c.dy, { ...window(c.attrs), size: spatial(c.xt(0)) })];
}

/**
 * max_pool_grad(x, dy) = Pᵀ·dy, P the selection of each window's first maximum, which x fixes
 * (no gradient to x: piecewise constant, as torch's). Its adjoint in dy picks ddx there.
 */
export function maxPoolGradGrad(c: GradCtx<PoolGradAttrs>): readonly GradThunk[] {
  return [null, () => c.b.maxPoolPick(c.x(0), c.dy, window(c.attrs))];
}

/** max_pool_pick(x, v) = P·v: linear in v, its adjoint max_pool_grad; no gradient to x. */
export function maxPoolPickGrad(c: GradCtx<PoolAttrs>): readonly GradThunk[] {
  return [null, () => c.b.maxPoolGrad(c.x(0), c.dy, { ...window(c.attrs), size: spatial(c.xt(0)) })];
}

export function avgPoolGrad(c: GradCtx<PoolAttrs>): readonly GradThunk[] {
  return [() => c.b.avgPoolGrad(c.dy, { ...window(c.attrs), size: spatial(c.xt(0)) })];
}

export function avgPoolGradGrad(c: GradCtx<PoolGradAttrs>): readonly GradThunk[] {
  return [() => c.b.avgPool(c.dy, window(c.attrs))];
}

// ---------------------------------------------------------------------------------------------
// Float64 references

/**
 * Visits every term of a convolution: f(xIndex, wIndex, yIndex) for each output position, each
 * kernel tap inside the (unpadded) input and each input channel of the output's group.
 */
function forEachTap(xs: readonly number[], ws: readonly number[], ys: readonly number[], a: ConvAttrs, f: (xi: number, wi: number, yi: number) => void): void {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [O, Cg, kH, kW] = ws as [number, number, number, number];
  const [, , Ho, Wo] = ys as [number, number, number, number];
  const Og = O / a.groups;
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let i = 0; i < Ho; i++)
        for (let j = 0; j < Wo; j++) {
          const yi = ((n * O + o) * Ho + i) * Wo + j;
          for (let c = 0; c < Cg; c++)
            for (let p = 0; p < kH; p++) {
              const h = i * a.stride[0]! - a.padding[0]! + p * a.dilation[0]!;
              if (h < 0 || h >= H) continue;
              for (let q = 0; q < kW; q++) {
                const w = j * a.stride[1]! - a.padding[1]! + q * a.dilation[1]!;
                if (w < 0 || w >= W) continue;
                f(((n * C + g * Cg + c) * H + h) * W + w, ((o * Cg + c) * kH + p) * kW + q, yi);
              }
            }
        }
    }
}

export function convEval(x: NDArray, w: NDArray, a: ConvAttrs, outShape: readonly number[]): NDArray {
  const y = K.nd(outShape);
  forEachTap(x.shape, w.shape, outShape, a, (xi, wi, yi) => (y.data[yi]! += x.data[xi]! * w.data[wi]!));
  return y;
}

export function convInputGradEval(dy: NDArray, w: NDArray, a: ConvAttrs, outShape: readonly number[]): NDArray {
  const dx = K.nd(outShape);
  forEachTap(outShape, w.shape, dy.shape, a, (xi, wi, yi) => (dx.data[xi]! += dy.data[yi]! * w.data[wi]!));
  return dx;
}

export function convWeightGradEval(x: NDArray, dy: NDArray, a: ConvAttrs, outShape: readonly number[]): NDArray {
  const dw = K.nd(outShape);
  forEachTap(x.shape, outShape, dy.shape, a, (xi, wi, yi) => (dw.data[wi]! += x.data[xi]! * dy.data[yi]!));
  return dw;
}

/** Visits each pooling window: f(yIndex, the input indices inside it in row-major order). */
function forEachWindow(xs: readonly number[], ys: readonly number[], a: PoolAttrs, f: (yi: number, xis: number[]) => void): void {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [, , Ho, Wo] = ys as [number, number, number, number];
  for (let n = 0; n < N * C; n++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++) {
        const xis: number[] = [];
        for (let p = 0; p < a.kernel[0]!; p++) {
          const h = i * a.stride[0]! - a.padding[0]! + p;
          if (h < 0 || h >= H) continue;
          for (let q = 0; q < a.kernel[1]!; q++) {
            const w = j * a.stride[1]! - a.padding[1]! + q;
            if (w >= 0 && w < W) xis.push((n * H + h) * W + w);
          }
        }
        f((n * Ho + i) * Wo + j, xis);
      }
}

/** The first maximum of a window (padding is −∞, never chosen: a window holds an input). */
function argmaxOf(x: NDArray, xis: readonly number[]): number {
  let at = xis[0]!;
  for (const k of xis) if (x.data[k]! > x.data[at]!) at = k;
  return at;
}

export function maxPoolEval(x: NDArray, a: PoolAttrs, outShape: readonly number[]): NDArray {
  const y = K.nd(outShape);
  forEachWindow(x.shape, outShape, a, (yi, xis) => (y.data[yi] = x.data[argmaxOf(x, xis)]!));
  return y;
}

export function maxPoolGradEval(x: NDArray, dy: NDArray, a: PoolAttrs): NDArray {
  const dx = K.nd(x.shape);
  forEachWindow(x.shape, dy.shape, a, (yi, xis) => (dx.data[argmaxOf(x, xis)]! += dy.data[yi]!));
  return dx;
}

export function maxPoolPickEval(x: NDArray, v: NDArray, a: PoolAttrs, outShape: readonly number[]): NDArray {
  const y = K.nd(outShape);
  forEachWindow(x.shape, outShape, a, (yi, xis) => (y.data[yi] = v.data[argmaxOf(x, xis)]!));
  return y;
}

/** Padding counts in the average (PyTorch's count_include_pad): every window divides by kH·kW. */
export function avgPoolEval(x: NDArray, a: PoolAttrs, outShape: readonly number[]): NDArray {
  const y = K.nd(outShape);
  const n = a.kernel[0]! * a.kernel[1]!;
  forEachWindow(x.shape, outShape, a, (yi, xis) => {
    let s = 0;
    for (const k of xis) s += x.data[k]!;
    y.data[yi] = s / n;
  });
  return y;
}

export function avgPoolGradEval(dy: NDArray, a: PoolAttrs, outShape: readonly number[]): NDArray {
  const dx = K.nd(outShape);
  const n = a.kernel[0]! * a.kernel[1]!;
  forEachWindow(outShape, dy.shape, a, (yi, xis) => {
    for (const k of xis) dx.data[k]! += dy.data[yi]! / n;
  });
  return dx;
}

export const shapes = { convShape, convInputGradShape, convWeightGradShape, poolShape, poolGradShape };
