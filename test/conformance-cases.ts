// The cases of the conformance matrix (test/conformance.test.ts), keyed by op: a new op in
// ir/ops.ts without an entry here is a type error. A case builds a value y from params and
// inputs with the IR builder; the matrix adds an input R of y's shape and the loss Σ y·R, and
// checks y, the loss and the gradients of every param on every target against the float64
// interpreter. The case must leave its op in the optimised graphs (checked).

import type { Builder } from '../ir/builder.js';
import * as L from '../ir/losses.js';
import type { Dim } from '../ir/dims.js';
import type { OpKind } from '../ir/ops.js';
import type { DType, ValueId } from '../ir/types.js';

export interface Ctx {
  readonly b: Builder;
  /** An f32 param, N(0, 1) (or `data`). */
  param(name: string, shape: readonly Dim[]): ValueId;
  /** An input: f32 N(0, 1), i32 within the op's index bound (or `data`). */
  input(name: string, shape: readonly Dim[], dtype?: DType): ValueId;
  /** A buffer's next value (an output named after it, as batchNorm's running statistics). */
  update(name: string, next: ValueId): void;
}

export interface Case {
  /** What the case exercises (the test's name). */
  readonly label: string;
  /** y, the value under test. */
  build(c: Ctx): ValueId;
  /** Sizes of symbolic dimensions in the calls. */
  readonly dims?: Record<string, number>;
  /** Fixed values of params and inputs (ties, zeros, edge values), row-major. */
  readonly data?: Record<string, number[]>;
  /** Training calls ({ train: true, seed }), with buffers: dropout masks, the mode flag, running statistics. */
  readonly train?: boolean;
}

/** An op that no case can hold, and why (and where it is covered instead). */
export interface NoCase {
  readonly none: string;
}

export type Entry = Case | readonly Case[] | NoCase;

const B = 'B';
const conv = (stride: number[], padding: number[], dilation: number[], groups: number) => ({ stride, padding, dilation, groups });
const pool = (kernel: number[], stride: number[], padding: number[]) => ({ kernel, stride, padding });
/** 0, 1, 2, … n − 1 scaled by k. */
const ramp = (n: number, k = 1, from = 0) => Array.from({ length: n }, (_x, i) => (from + i) * k);

export const CASES: { readonly [P in OpKind]: Entry } = {
  // ---- sources
  input: {
    label: 'a symbolic batch [B, 3] (bound to 5 by the call)',
    dims: { B: 5 },
    build: ({ b, param, input }) => b.tanh(b.mul(input('x', [B, 3]), param('a', [3]))),
  },
  param: { label: 'y is a param itself (its gradient is R)', build: ({ param }) => param('a', [2, 3]) },
  const: [
    {
      label: 'a tensor constant and a scalar literal',
      build: ({ b, param }) => b.add(b.mul(param('a', [2, 3]), b.constant([1, -2, 3, 0.5, 0, -1], [2, 3])), 0.25),
    },
    {
      label: 'a constant of 81 values (not folded)',
      build: ({ b, param }) => b.mul(param('a', [9, 9]), b.constant(ramp(81, 1 / 81), [9, 9])),
    },
  ],
  fwd: { label: "the backward reads the forward's result (tanh, exp)", build: ({ b, param }) => b.mul(b.tanh(param('a', [3, 4])), b.exp(param('c', [4]))) },
  dim: {
    label: 'a mean over a symbolic batch divides by the bound size',
    dims: { B: 6 },
    build: ({ b, param, input }) => b.div(b.sum(b.mul(input('x', [B, 4]), param('a', [4])), [0]), b.dim(B)),
  },
  buffer: {
    label: 'running statistics read and updated in a training call',
    train: true,
    build: ({ b, param, update }) => {
      const a = param('a', [3, 4]);
      const mean = b.buffer('bn.running_mean', [4], { raw: 'running_mean' });
      const v = b.buffer('bn.running_var', [4], { raw: 'running_var' });
      update('bn.running_mean', b.add(b.mul(mean, 0.9), b.mul(b.sum(a, [0]), 0.1 / 3)));
      update('bn.running_var', b.add(b.mul(v, 0.9), 0.1));
      return b.mul(b.sub(a, mean), v);
    },
  },
  mode: {
    label: 'the training flag selects (1 in a training call)',
    train: true,
    build: ({ b, param }) => {
      const a = param('a', [3, 4]);
      return b.select(b.mode(), b.tanh(a), b.mul(a, 2));
    },
  },
  dropout_mask: {
    label: 'p = 0.25, drawn from the call seed',
    train: true,
    build: ({ b, param }) => b.mul(param('a', [5, 8]), b.dropoutMask(0.25, 0, [5, 8], { raw: 'mask' })),
  },

  // ---- elementwise, unary
  neg: { label: 'neg', build: ({ b, param }) => b.neg(param('a', [3, 4])) },
  exp: [
    { label: 'exp', build: ({ b, param }) => b.exp(param('a', [3, 4])) },
    { label: 'NaN through exp, log, tanh, sigmoid, sqrt; log and sqrt of negatives', data: { a: [NaN, -1, 2, NaN, -4, 0.5] }, build: ({ b, param }) => {
      const a = param('a', [2, 3]);
      return b.add(b.add(b.exp(a), b.log(a)), b.add(b.add(b.tanh(a), b.sigmoid(a)), b.sqrt(a)));
    } },
    { label: 'exp of large and small values (overflow to ∞, underflow to 0)', data: { a: [-120, -90, -20, 0, 20, 80, 88, 100] }, build: ({ b, param }) => b.exp(param('a', [2, 4])) },
  ],
  log: [
    { label: 'log of a² + 0.5', build: ({ b, param }) => b.log(b.add(b.square(param('a', [3, 4])), 0.5)) },
    { label: 'log at 0 (−∞) and of tiny values', data: { a: [0, 1e-30, 1e-3, 1, 7, 1e20] }, build: ({ b, param }) => b.log(param('a', [2, 3])) },
  ],
  tanh: [
    { label: 'tanh', build: ({ b, param }) => b.tanh(param('a', [3, 4])) },
    { label: 'tanh saturating (±10, ±20, ±50) and at 0', data: { a: [-50, -20, -10, -1e-4, 0, 1e-4, 10, 20, 50] }, build: ({ b, param }) => b.tanh(param('a', [3, 3])) },
  ],
  sigmoid: [
    { label: 'sigmoid', build: ({ b, param }) => b.sigmoid(param('a', [3, 4])) },
    { label: 'sigmoid saturating (±30, ±100)', data: { a: [-100, -30, -5, 0, 5, 30, 100, -1e-4] }, build: ({ b, param }) => b.sigmoid(param('a', [2, 4])) },
  ],
  relu: [
    { label: 'relu with zeros (no gradient at 0)', data: { a: [-2, -0.5, 0, 0, 0.5, 2] }, build: ({ b, param }) => b.relu(param('a', [2, 3])) },
    { label: 'relu of NaN and ±∞', data: { a: [NaN, -Infinity, Infinity, 1, -1, NaN, 0, 3] }, build: ({ b, param }) => b.relu(param('a', [2, 4])) },
  ],
  sqrt: [
    { label: 'sqrt of a² + 0.5', build: ({ b, param }) => b.sqrt(b.add(b.square(param('a', [3, 4])), 0.5)) },
    { label: 'sqrt at 0 (gradient ∞)', data: { a: [0, 1e-6, 0.25, 4, 1e6] }, build: ({ b, param }) => b.sqrt(param('a', [1, 5])) },
  ],
  square: { label: 'square', build: ({ b, param }) => b.square(param('a', [3, 4])) },
  abs: { label: 'abs with zeros (no gradient at 0)', data: { a: [-2, -0.5, 0, 0, 0.5, 2] }, build: ({ b, param }) => b.abs(param('a', [2, 3])) },
  stop_gradient: { label: 'a · stopGradient(a): gradient a, not 2a', build: ({ b, param }) => {
    const a = param('a', [3, 4]);
    return b.mul(a, b.stopGradient(a));
  } },

  // ---- elementwise, binary (NumPy broadcasting)
  add: [
    { label: 'broadcast [3, 1, 4] + [2, 4]', build: ({ b, param }) => b.add(param('a', [3, 1, 4]), param('c', [2, 4])) },
    { label: 'symbolic batch [B, 4] + [4]', dims: { B: 3 }, build: ({ b, param, input }) => b.add(b.mul(input('x', [B, 4]), input('w', [B, 1])), param('c', [4])) },
  ],
  sub: { label: 'broadcast [4] − [3, 1] and a scalar', build: ({ b, param }) => b.sub(b.sub(param('a', [4]), param('c', [3, 1])), 1.5) },
  mul: { label: 'broadcast [2, 3, 1] · [1, 4] and a scalar param', build: ({ b, param }) => b.mul(b.mul(param('a', [2, 3, 1]), param('c', [1, 4])), param('s', [])) },
  div: [
    { label: 'broadcast [3, 4] / (c² + 0.5) [4]', build: ({ b, param }) => b.div(param('a', [3, 4]), b.add(b.square(param('c', [4])), 0.5)) },
    { label: 'division by zero: ±∞ and 0/0 = NaN', data: { a: [1, -1, 0, 2, 0, -3], c: [0, 0, 0, -0, 1, 2] }, build: ({ b, param }) => b.div(param('a', [2, 3]), param('c', [2, 3])) },
    { label: 'a scalar divided by a tensor', build: ({ b, param }) => b.div(2, b.add(b.square(param('c', [2, 3])), 0.25)) },
  ],
  pow: [
    { label: 'a positive base [3, 4] to a param exponent [4]', build: ({ b, param }) => b.pow(b.add(b.square(param('a', [3, 4])), 0.5), param('q', [4])) },
    {
      label: 'a zero base to exponents 0, 0.5, 1, 2, 3 (gradients as torch: 0 where defined, ∞ at 0.5)',
      data: { a: [0, 0, 0, 0, 0, 2, 2, 2, 2, 2], q: [0, 0.5, 1, 2, 3] },
      build: ({ b, param }) => b.pow(param('a', [2, 5]), param('q', [5])),
    },
    {
      label: 'a negative base to integer exponents −1, 2, 3 (real) and 0.5 (NaN)',
      data: { a: [-2, -1.5, -0.5, -3, -1, -4, -0.25, -2], q: [-1, 2, 3, 0.5] },
      build: ({ b, param }) => b.pow(param('a', [2, 4]), param('q', [4])),
    },
    {
      label: 'the constant exponents ±0.5 at −∞, +∞, ±0 and a negative base (Math.pow: +∞ and 0, +∞ and 0, +0 and +∞, NaN)',
      data: { a: [-Infinity, Infinity, 0, -0, 4, -1, 0.25, 9], c: [-Infinity, Infinity, 0, -0, 4, -1, 0.25, 9] },
      build: ({ b, param }) => b.add(b.pow(param('a', [2, 4]), 0.5), b.pow(param('c', [2, 4]), -0.5)),
    },
    { label: 'a negative base to the constant exponent 3', build: ({ b, param }) => b.pow(b.sub(b.neg(b.square(param('a', [3, 4]))), 0.5), 3) },
    { label: 'a constant exponent 2 and −0.5', build: ({ b, param }) => b.add(b.pow(param('a', [3, 4]), 2), b.pow(b.add(b.square(param('c', [3, 4])), 1), -0.5)) },
  ],
  maximum: [
    { label: 'broadcast [3, 4] and [4]', build: ({ b, param }) => b.maximum(param('a', [3, 4]), param('c', [4])) },
    { label: 'ties give the whole gradient to the first operand', data: { a: [2, 5, 5, -1], c: [2, 1, 5, -1] }, build: ({ b, param }) => b.maximum(param('a', [2, 2]), param('c', [2, 2])) },
    { label: 'NaN on either side', data: { a: [NaN, 1, NaN, 2, -1, 3, 0, 1], c: [1, NaN, NaN, 1, -2, 3, 1, 0] }, build: ({ b, param }) => b.maximum(param('a', [2, 4]), param('c', [2, 4])) },
  ],
  minimum: [
    { label: 'broadcast [3, 1] and [3, 4]', build: ({ b, param }) => b.minimum(param('a', [3, 1]), param('c', [3, 4])) },
    { label: 'ties give the whole gradient to the first operand', data: { a: [2, 5, 5, -1], c: [2, 1, 5, -1] }, build: ({ b, param }) => b.minimum(param('a', [2, 2]), param('c', [2, 2])) },
    { label: 'NaN on either side', data: { a: [NaN, 1, NaN, 2, -1, 3, 0, 1], c: [1, NaN, NaN, 1, -2, 3, 1, 0] }, build: ({ b, param }) => b.minimum(param('a', [2, 4]), param('c', [2, 4])) },
  ],
  gt: {
    label: 'a mask with ties (0 where equal), times a',
    data: { a: [1, 2, 3, 0, -1, 2], c: [1, 3, 2] },
    build: ({ b, param }) => {
      const a = param('a', [2, 3]);
      return b.mul(b.gt(a, param('c', [3])), a);
    },
  },
  ge: {
    label: 'a mask with ties (1 where equal), times a',
    data: { a: [1, 2, 3, 0, -1, 2], c: [1, 3, 2] },
    build: ({ b, param }) => {
      const a = param('a', [2, 3]);
      return b.mul(b.ge(param('c', [3]), a), a);
    },
  },
  select: [
    {
      label: 'a condition with zeros, −0 and negatives, broadcast',
      data: { cond: [0, 1, -2, -0, 0.5, 0] },
      build: ({ b, param, input }) => b.select(input('cond', [2, 3]), param('a', [2, 3]), param('c', [3])),
    },
    {
      label: 'the branch not taken is NaN and never leaks into y',
      data: { cond: [1, 0, 1, 0], d: [-1, 4, -9, 1] },
      build: ({ b, param, input }) => b.select(input('cond', [2, 2]), param('a', [2, 2]), b.sqrt(param('d', [2, 2]))),
    },
  ],

  // ---- reductions
  sum: [
    { label: 'over axes [0, 2] of [2, 3, 4]', build: ({ b, param }) => b.sum(param('a', [2, 3, 4]), [0, 2]) },
    { label: 'over axis 1, keepDims, then broadcast back', build: ({ b, param }) => {
      const a = param('a', [3, 5]);
      return b.mul(a, b.sum(a, [1], true));
    } },
    { label: 'over a symbolic batch, keepDims', dims: { B: 7 }, build: ({ b, param, input }) => b.sum(b.mul(input('x', [B, 3]), param('a', [3])), [0], true) },
    { label: 'columns of 300 rows (the wasm kernel sums blocks of rows in float64)', build: ({ b, param }) => b.sum(b.tanh(param('a', [300, 5])), [0]) },
    { label: 'over no axes (y = x) and over a size-1 axis', build: ({ b, param }) => {
      const a = param('a', [3, 1, 2]);
      return b.add(b.sum(a, []), b.sum(a, [1], true));
    } },
    { label: 'over every axis to a scalar', build: ({ b, param }) => b.sum(b.tanh(param('a', [4, 6])), [0, 1]) },
  ],
  max: [
    { label: 'over axis 1 of [3, 4]', build: ({ b, param }) => b.max(param('a', [3, 4]), [1]) },
    { label: 'over axes [0, 2], keepDims', build: ({ b, param }) => b.max(param('a', [2, 3, 4]), [0, 2], true) },
    { label: 'ties: the first maximum takes the gradient', data: { a: [1, 3, 3, 0, 2, 2, 2, 2, -1, -1, -5, -1] }, build: ({ b, param }) => b.max(param('a', [3, 4]), [1]) },
    { label: 'over a symbolic batch', dims: { B: 5 }, build: ({ b, param, input }) => b.max(b.add(input('x', [B, 3]), param('a', [3])), [0]) },
    { label: 'over a size-1 axis and another, keepDims', build: ({ b, param }) => b.max(param('a', [3, 1, 2]), [1, 2], true) },
    { label: 'rows with −∞, and a row of −∞ only', data: { a: [-Infinity, -1, -2, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, 3, -Infinity, 3, 0] }, build: ({ b, param }) => b.max(param('a', [3, 4]), [1]) },
    { label: 'rows with NaN first, NaN later, all NaN', data: { a: [NaN, 1, 2, 0, 1, NaN, 2, 0, NaN, NaN, NaN, NaN] }, build: ({ b, param }) => b.max(param('a', [3, 4]), [1]) },
  ],
  argmax_mask: [
    { label: 'over axis 1, with ties (the first), times a', data: { a: [1, 3, 3, 0, 2, 2, 2, 2, -1, -1, -5, -1] }, build: ({ b, param }) => {
      const a = param('a', [3, 4]);
      return b.mul(b.argmaxMask(a, [1]), a);
    } },
    { label: 'over axes [0, 2] of [2, 3, 2], times a', build: ({ b, param }) => {
      const a = param('a', [2, 3, 2]);
      return b.mul(b.argmaxMask(a, [0, 2]), a);
    } },
  ],

  // ---- linear algebra and layout
  matmul: [
    { label: '[3, 4] @ [4, 5]', build: ({ b, param }) => b.matmul(param('a', [3, 4]), param('c', [4, 5])) },
    { label: 'transA, transB: [4, 3]ᵀ @ [5, 4]ᵀ', build: ({ b, param }) => b.matmul(param('a', [4, 3]), param('c', [5, 4]), true, true) },
    { label: 'transB: [3, 4] @ [5, 4]ᵀ', build: ({ b, param }) => b.matmul(param('a', [3, 4]), param('c', [5, 4]), false, true) },
    { label: 'batched [2, 3, 4] @ [4, 5]', build: ({ b, param }) => b.matmul(param('a', [2, 3, 4]), param('c', [4, 5])) },
    { label: 'batched both [2, 3, 4] @ [2, 4, 2], transA', build: ({ b, param }) => b.matmul(param('a', [2, 4, 3]), param('c', [2, 4, 2]), true) },
    { label: 'a long inner dimension: [5, 300] @ [300, 6]', build: ({ b, param }) => b.matmul(param('a', [5, 300]), param('c', [300, 6])) },
    { label: '1×1 @ 1×1, and a row vector @ a column vector', build: ({ b, param }) => b.add(b.matmul(param('a', [1, 1]), param('c', [1, 1])), b.matmul(param('r', [1, 5]), param('k', [5, 1]))) },
    { label: 'ragged register tiles: [9, 17] @ [17, 13]', build: ({ b, param }) => b.matmul(param('a', [9, 17]), param('c', [17, 13])) },
    { label: 'a symbolic batch of rows [B, 4] @ [4, 3], with a bias and tanh', dims: { B: 5 }, build: ({ b, param, input }) => b.tanh(b.add(b.matmul(input('x', [B, 4]), param('w', [4, 3])), param('c', [3]))) },
  ],
  transpose: [
    { label: 'perm [2, 0, 1]', build: ({ b, param }) => b.transpose(param('a', [2, 3, 4]), [2, 0, 1]) },
    { label: 'the identity perm [0, 1] and a swap of size-1 axes', build: ({ b, param }) => b.add(b.transpose(param('a', [3, 2]), [0, 1]), b.reshape(b.transpose(param('c', [1, 3, 1, 2]), [2, 1, 0, 3]), [3, 2])) },
    { label: 'perm [1, 0] of a symbolic batch', dims: { B: 4 }, build: ({ b, param, input }) => b.transpose(b.mul(input('x', [B, 3]), param('a', [3])), [1, 0]) },
  ],
  reshape: [
    { label: '[2, 3, 4] → [6, 4], then tanh', build: ({ b, param }) => b.tanh(b.reshape(param('a', [2, 3, 4]), [6, 4])) },
    { label: '[B, 6] → [B, 2, 3] (symbolic)', dims: { B: 3 }, build: ({ b, param, input }) => b.reshape(b.mul(input('x', [B, 6]), param('a', [6])), [B, 2, 3]) },
  ],
  broadcast: [
    { label: '[4] → [3, 4]', build: ({ b, param }) => b.mul(b.broadcast(param('a', [4]), [3, 4]), param('c', [3, 4])) },
    { label: 'a scalar param → [2, 3], stored', build: ({ b, param }) => b.broadcast(param('s', []), [2, 3]) },
    { label: '[3, 1] → [3, 5], stored', build: ({ b, param }) => b.broadcast(param('a', [3, 1]), [3, 5]) },
  ],
  concat: [
    { label: 'axis 0: [2, 3], [1, 3], [2, 3]', build: ({ b, param }) => {
      const a = param('a', [2, 3]);
      return b.concat([a, param('c', [1, 3]), b.tanh(a)], 0);
    } },
    { label: 'one part only', build: ({ b, param }) => b.concat([param('a', [2, 3])], 1) },
    { label: 'axis 1: [3, 2], [3, 4]', build: ({ b, param }) => b.concat([param('a', [3, 2]), param('c', [3, 4])], 1) },
    { label: 'axis 1 of a symbolic batch: [B, 2], [B, 3]', dims: { B: 3 }, build: ({ b, param, input }) => b.concat([b.mul(input('x', [B, 2]), param('a', [2])), b.tanh(input('z', [B, 3]))], 1) },
  ],
  slice: [
    { label: 'a window [1:3, 2:5] of [4, 5]', build: ({ b, param }) => b.slice(param('a', [4, 5]), [1, 2], [2, 3]) },
    { label: 'a timestep of a symbolic batch [B, 4, 3] → [B, 1, 3]', dims: { B: 2 }, build: ({ b, param, input }) => b.slice(b.mul(input('x', [B, 4, 3]), param('a', [3])), [0, 2, 0], [B, 1, 3]) },
  ],
  pad: [
    { label: '[2, 3] at [1, 2] inside [4, 6]', build: ({ b, param }) => b.pad(param('a', [2, 3]), [1, 2], [4, 6]) },
    { label: 'at the origin, growing the last axis only, then tanh', build: ({ b, param }) => b.tanh(b.pad(param('a', [2, 3]), [0, 0], [2, 5])) },
  ],

  // ---- indexing
  gather: [
    { label: 'table [5, 3] at indices [2, 4] (repeats)', data: { ix: [0, 4, 4, 1, 2, 0, 3, 4] }, build: ({ b, param, input }) => b.gather(param('C', [5, 3]), input('ix', [2, 4], 'i32')) },
    { label: 'at a symbolic batch of indices [B]', dims: { B: 6 }, build: ({ b, param, input }) => b.gather(param('C', [4, 2]), input('ix', [B], 'i32')) },
    { label: 'table [7, 6] at indices [2, 5]: rows of a vector and a tail, repeats', data: { ix: [6, 0, 3, 3, 6, 1, 2, 3, 5, 0] }, build: ({ b, param, input }) => b.gather(param('C', [7, 6]), input('ix', [2, 5], 'i32')) },
  ],
  scatter_add: [
    {
      label: 'rows [6, 3] added into [4, 3] at repeated indices',
      data: { ix: [0, 3, 3, 1, 0, 3] },
      build: ({ b, param, input }) => b.scatterAdd(input('ix', [6], 'i32'), b.mul(param('a', [6, 3]), param('c', [3])), [4, 3]),
    },
    { label: 'a symbolic batch of rows [B, 2] into [5, 2]', dims: { B: 7 }, build: ({ b, param, input }) => b.scatterAdd(input('ix', [B], 'i32'), b.mul(input('x', [B, 2]), param('a', [2])), [5, 2]) },
    {
      label: 'rows [5, 9] added into [3, 9], one row three times, one never: vectors and a tail',
      data: { ix: [2, 0, 2, 2, 0] },
      build: ({ b, param, input }) => b.scatterAdd(input('ix', [5], 'i32'), b.tanh(param('a', [5, 9])), [3, 9]),
    },
  ],
  pick: [
    { label: 'one class: x [3, 1] at indices of 0', build: ({ b, param, input }) => b.pick(param('a', [3, 1]), input('ix', [3], 'i32')) },
    { label: 'x [4, 5] at indices [4]', build: ({ b, param, input }) => b.pick(param('a', [4, 5]), input('ix', [4], 'i32')) },
    { label: 'a symbolic batch', dims: { B: 3 }, build: ({ b, param, input }) => b.pick(b.mul(input('x', [B, 4]), param('a', [4])), input('ix', [B], 'i32')) },
  ],
  one_hot: [
    {
      label: 'depth 4, times a',
      data: { ix: [0, 3, 3, 1, 2] },
      build: ({ b, param, input }) => b.mul(b.oneHot(input('ix', [5], 'i32'), 4), param('a', [5, 4])),
    },
    { label: 'a symbolic batch of indices, depth 3, times a', dims: { B: 4 }, build: ({ b, param, input }) => b.mul(b.oneHot(input('ix', [B], 'i32'), 3), param('a', [3])) },
  ],

  // ---- fused ops
  softmax: [
    { label: 'axis −1 of [3, 5]', build: ({ b, param }) => b.softmax(param('a', [3, 5]), 1) },
    { label: 'axis 0 of [4, 3]', build: ({ b, param }) => b.softmax(param('a', [4, 3]), 0) },
    { label: 'large logits (±1000: stable)', data: { a: [1000, 999, -1000, 0, 1000, 1000] }, build: ({ b, param }) => b.softmax(param('a', [2, 3]), 1) },
    { label: 'a symbolic batch [B, 4]', dims: { B: 3 }, build: ({ b, param, input }) => b.softmax(b.mul(input('x', [B, 4]), param('a', [4])), 1) },
    { label: 'masked rows: −∞ entries (not a whole row)', data: { a: [-Infinity, 0, 1, -Infinity, 2, -Infinity, -Infinity, 3, 0.5, 0.5, -Infinity, 0] }, build: ({ b, param }) => b.softmax(param('a', [3, 4]), 1) },
    { label: 'over a size-1 axis (all ones, no gradient)', build: ({ b, param }) => b.mul(b.softmax(param('a', [4, 1]), 1), param('c', [4, 1])) },
    { label: 'rows of 33 (vectors and a tail)', build: ({ b, param }) => b.softmax(param('a', [3, 33]), 1) },
  ],
  log_softmax: [
    { label: 'axis −1 of [3, 5]', build: ({ b, param }) => b.logSoftmax(param('a', [3, 5]), 1) },
    { label: 'over a symbolic batch (axis 0 of [B, 3])', dims: { B: 4 }, build: ({ b, param, input }) => b.logSoftmax(b.add(input('x', [B, 3]), param('a', [3])), 0) },
    { label: 'masked rows: −∞ entries', data: { a: [-Infinity, 0, 1, -Infinity, 2, -Infinity, -Infinity, 3, 0.5, 0.5, -Infinity, 0] }, build: ({ b, param }) => b.logSoftmax(param('a', [3, 4]), 1) },
    { label: 'axis 0 of [4, 3], large logits', data: { a: [1000, -1000, 3, 999, 0, 3, -5, 1000, 3, 0, 0, 3] }, build: ({ b, param }) => b.logSoftmax(param('a', [4, 3]), 0) },
    {
      label: 'crossEntropy over axis 1 of [2, 5, 3] with ignoreIndex, class weights, label smoothing',
      data: { t: [0, 2, 4, 1, 2, 3], w: [0.5, 1, 2, 1.5, 0.25] },
      build: ({ b, param, input }) => L.crossEntropy(b, (v) => v, param('a', [2, 5, 3]), input('t', [2, 3], 'i32'), { axis: 1, ignoreIndex: 2, labelSmoothing: 0.1, weight: param('w', [5]), reduction: 'mean' }),
    },
    {
      label: "crossEntropy of rows of 37, ignoreIndex 0, label smoothing 0.2, reduction 'none'",
      data: { t: [0, 5, 36, 12] },
      build: ({ b, param, input }) => L.crossEntropy(b, (v) => v, param('a', [4, 37]), input('t', [4], 'i32'), { axis: 1, ignoreIndex: 0, labelSmoothing: 0.2, reduction: 'none' }),
    },
  ],
  xent: [
    { label: 'large logits (±500), the target at the largest and the smallest', data: { a: [500, -500, 0, 1, 500, 2, -500, 499], t: [0, 1] }, build: ({ b, param, input }) => b.emit('xent', [param('a', [2, 4]), input('t', [2], 'i32')], {}) },
    { label: 'logits [4, 5], targets [4]', build: ({ b, param, input }) => b.emit('xent', [param('a', [4, 5]), input('t', [4], 'i32')], {}) },
    { label: 'logits [9, 70] (rows of vectors and a tail), targets [9]', build: ({ b, param, input }) => b.emit('xent', [param('a', [9, 70]), input('t', [9], 'i32')], {}) },
    { label: 'a symbolic batch', dims: { B: 6 }, build: ({ b, param, input }) => b.emit('xent', [b.mul(input('x', [B, 3]), param('a', [3])), input('t', [B], 'i32')], {}) },
  ],
  bn_apply: [
    {
      label: "x [5, 3] with its batch mean and inverse deviation (Bessel's correction)",
      build: ({ b, param }) => {
        const x = param('a', [5, 3]);
        const mean = b.div(b.sum(x, [0], true), 5);
        const d = b.sub(x, mean);
        const inv = b.pow(b.add(b.div(b.sum(b.square(d), [0], true), 4), 1e-5), -0.5);
        return b.mul(b.emit('bn_apply', [x, mean, inv], {}), param('gain', [3]));
      },
    },
    {
      label: 'over a symbolic batch [B, 3] (the counts are bound sizes)',
      dims: { B: 6 },
      build: ({ b, param, input }) => {
        const x = b.mul(input('x', [B, 3]), param('a', [3]));
        const mean = b.div(b.sum(x, [0], true), b.dim(B));
        const d = b.sub(x, mean);
        const inv = b.pow(b.add(b.div(b.sum(b.square(d), [0], true), b.sub(b.dim(B), 1)), 1e-5), -0.5);
        return b.emit('bn_apply', [x, mean, inv], {});
      },
    },
    {
      label: "NCHW's channels: x [2, 3, 2, 3] over axes 0, 2, 3 (axis 1), the variance divided by n (torch's)",
      build: ({ b, param }) => {
        const x = param('a', [2, 3, 2, 3]);
        const mean = b.div(b.sum(x, [0, 2, 3], true), 12);
        const d = b.sub(x, mean);
        const inv = b.pow(b.add(b.div(b.sum(b.square(d), [0, 2, 3], true), 12), 1e-5), -0.5);
        return b.mul(b.emit('bn_apply', [x, mean, inv], { axis: 1, correction: 0 }), b.reshape(param('gain', [3]), [3, 1, 1]));
      },
    },
  ],
  ln_apply: [
    {
      label: 'x [2, 3, 4] with each row of 4s mean and inverse deviation',
      build: ({ b, param }) => {
        const x = param('a', [2, 3, 4]);
        const mean = b.div(b.sum(x, [2], true), 4);
        const d = b.sub(x, mean);
        const inv = b.pow(b.add(b.div(b.sum(b.square(d), [2], true), 4), 1e-5), -0.5);
        return b.add(b.mul(b.emit('ln_apply', [x, mean, inv], {}), param('gain', [4])), param('bias', [4]));
      },
    },
    {
      label: 'rows of a symbolic batch [B, 5]',
      dims: { B: 3 },
      build: ({ b, param, input }) => {
        const x = b.add(input('x', [B, 5]), param('a', [5]));
        const mean = b.div(b.sum(x, [1], true), 5);
        const d = b.sub(x, mean);
        const inv = b.pow(b.add(b.div(b.sum(b.square(d), [1], true), 5), 1e-5), -0.5);
        return b.emit('ln_apply', [x, mean, inv], {});
      },
    },
  ],
  scan: {
    none: 'a scan is a region, not a kernel: every module runs it as a loop around its body\'s kernels (codegen/ts/loop.ts, codegen/gpu-loop.ts, codegen/webgpu/loop.ts); test/scan.test.ts and test/scan-loop.test.ts check its values and gradients against the unrolled form, the interpreter and finite differences on every target',
  },
  scan_out: {
    none: 'a result of a scan, written by its loop; covered by test/scan.test.ts and test/scan-loop.test.ts',
  },
  custom_grad: {
    none:
      "custom_grad never reaches a target: the reverse pass emits the user's rule (ops of the table, covered here) in its place and drops it before fusion (a custom_grad left to lower is an internal error in codegen/kernel/rules.ts); test/ops.test.ts checks g.customGrad against the interpreter and finite differences",
  },

  // ---- convolutions and pooling
  conv: [
    { label: '3×2 kernel, stride 2, padding 1', build: ({ b, param }) => b.emit('conv', [param('x', [2, 2, 5, 6]), param('w', [3, 2, 3, 2])], conv([2, 2], [1, 1, 1, 1], [1, 1], 1)) },
    { label: 'a symbolic batch [B, 1, 5, 5], 3×3, padding 1', dims: { B: 2 }, build: ({ b, param, input }) => b.emit('conv', [b.mul(input('x', [B, 1, 5, 5]), param('s', [])), param('w', [2, 1, 3, 3])], conv([1, 1], [1, 1, 1, 1], [1, 1], 1)) },
    { label: 'stride 3 past a 2×2 kernel, depthwise (groups = channels = 3)', build: ({ b, param }) => b.emit('conv', [param('x', [2, 3, 8, 7]), param('w', [3, 1, 2, 2])], conv([3, 3], [0, 0, 0, 0], [1, 1], 3)) },
    { label: 'groups 2, dilation 2, uneven padding, a bias and relu', build: ({ b, param }) => b.relu(b.add(b.emit('conv', [param('x', [1, 4, 7, 6]), param('w', [2, 2, 2, 3])], conv([1, 1], [1, 0, 0, 2], [2, 2], 2)), b.reshape(param('c', [2]), [1, 2, 1, 1]))) },
  ],
  conv_input_grad: {
    label: 'dy [2, 3, 3, 4] through a stride-2 padded kernel to [2, 2, 5, 6]',
    build: ({ b, param }) => b.emit('conv_input_grad', [param('dy', [2, 3, 3, 4]), param('w', [3, 2, 3, 2])], { ...conv([2, 2], [1, 1, 1, 1], [1, 1], 1), size: [5, 6] }),
  },
  conv_weight_grad: {
    label: 'x [2, 4, 5, 5] with dy [2, 2, 3, 2], groups 2, stride [1, 2]',
    build: ({ b, param }) => b.emit('conv_weight_grad', [param('x', [2, 4, 5, 5]), param('dy', [2, 2, 3, 2])], { ...conv([1, 2], [0, 0, 0, 0], [1, 1], 2), kernel: [3, 3] }),
  },
  max_pool: [
    { label: '2×2, stride 1', build: ({ b, param }) => b.emit('max_pool', [param('x', [2, 2, 4, 5])], pool([2, 2], [1, 1], [0, 0])) },
    { label: 'a symbolic batch [B, 2, 4, 4], 2×2, stride 2', dims: { B: 3 }, build: ({ b, param, input }) => b.emit('max_pool', [b.add(input('x', [B, 2, 4, 4]), param('s', []))], pool([2, 2], [2, 2], [0, 0])) },
    { label: 'all negative values, 3×3, padding 1 (the padding never wins)', build: ({ b, param }) => b.emit('max_pool', [b.sub(b.neg(b.square(param('x', [1, 2, 4, 5]))), 1)], pool([3, 3], [1, 1], [1, 1])) },
    { label: 'stride 3 past a 2×2 window (rows and columns no window reads)', build: ({ b, param }) => b.emit('max_pool', [param('x', [2, 1, 7, 8])], pool([2, 2], [3, 3], [0, 0])) },
    { label: '3×3, stride 2, padding 1, with ties', data: { x: [1, 1, 2, 2, 1, 1, 0, 0, 3, 3, 3, 0, -1, -1, -1, 3, 3, 3, 0, 0, 2, 2, 2, 2, 2] }, build: ({ b, param }) => b.emit('max_pool', [param('x', [1, 1, 5, 5])], pool([3, 3], [2, 2], [1, 1])) },
  ],
  max_pool_grad: {
    label: '(x, dy) → dx, overlapping 3×3 windows, stride 2, padding 1',
    build: ({ b, param }) => b.emit('max_pool_grad', [param('x', [1, 2, 5, 5]), param('dy', [1, 2, 3, 3])], { ...pool([3, 3], [2, 2], [1, 1]), size: [5, 5] }),
  },
  max_pool_pick: {
    label: "v at the first maximum of x's windows, 2×2, stride 2",
    build: ({ b, param }) => b.emit('max_pool_pick', [param('x', [1, 2, 4, 4]), param('v', [1, 2, 4, 4])], pool([2, 2], [2, 2], [0, 0])),
  },
  avg_pool: [
    { label: '3×3, stride 2, padding 1 (padding counted)', build: ({ b, param }) => b.emit('avg_pool', [param('x', [2, 2, 5, 5])], pool([3, 3], [2, 2], [1, 1])) },
    { label: 'stride 3 past a 2×2 window, padding 1', build: ({ b, param }) => b.emit('avg_pool', [param('x', [1, 2, 7, 7])], pool([2, 2], [3, 3], [1, 1])) },
    { label: 'a symbolic batch [B, 1, 4, 6], 2×3, stride [2, 3]', dims: { B: 2 }, build: ({ b, param, input }) => b.emit('avg_pool', [b.mul(input('x', [B, 1, 4, 6]), param('s', []))], pool([2, 3], [2, 3], [0, 0])) },
  ],
  avg_pool_grad: {
    label: 'dy → dx, 2×3 windows, stride [1, 2]',
    build: ({ b, param }) => b.emit('avg_pool_grad', [param('dy', [1, 2, 3, 2])], { ...pool([2, 3], [1, 2], [0, 0]), size: [4, 5] }),
  },

  // ---- elementwise, unary: issue #31's (last in the table, so that the cases above keep their seeds)
  sin: [
    { label: 'sin of 3a', build: ({ b, param }) => b.sin(b.mul(param('a', [3, 4]), 3)) },
    { label: 'sin at 0, ±π/2, π, of large arguments (±1e4) and ±∞ (NaN)', data: { a: [0, Math.PI / 2, -Math.PI / 2, Math.PI, 1e4, -1e4, 100.25, Infinity, -Infinity] }, build: ({ b, param }) => b.sin(param('a', [3, 3])) },
  ],
  cos: [
    { label: 'cos of 3a', build: ({ b, param }) => b.cos(b.mul(param('a', [3, 4]), 3)) },
    { label: 'cos at 0, ±π/2, π, of large arguments (±1e4) and NaN', data: { a: [0, Math.PI / 2, -Math.PI / 2, Math.PI, 1e4, -1e4, 100.25, NaN, 2] }, build: ({ b, param }) => b.cos(param('a', [3, 3])) },
  ],
  erf: [
    { label: 'erf of 2a', build: ({ b, param }) => b.erf(b.mul(param('a', [3, 4]), 2)) },
    { label: 'erf near 0, about 0.5, in the tails (±3, ±6, ±∞) and of NaN', data: { a: [0, 1e-6, -1e-6, 0.499, 0.5, 0.501, -3, 3, -6, 6, -Infinity, Infinity, NaN, 1.5, -0.2, 10] }, build: ({ b, param }) => b.erf(param('a', [4, 4])) },
    { label: 'erf of small values only (relative precision: the scale is 1e-3)', data: { a: [1e-4, -2e-4, 3e-4, 4e-4, -5e-4, 6e-4, 7e-4, -8e-4] }, build: ({ b, param }) => b.erf(param('a', [2, 4])) },
  ],
  log1p: [
    { label: 'log1p of a² − 0.5', build: ({ b, param }) => b.log1p(b.sub(b.square(param('a', [3, 4])), 0.5)) },
    { label: 'log1p near 0, at −1 (−∞), below −1 (NaN), large and ∞', data: { a: [0, 1e-7, -1e-7, -1, -2, 0.999, 1, 1.001, 1e30, Infinity, -0.999999, NaN] }, build: ({ b, param }) => b.log1p(param('a', [3, 4])) },
    { label: 'log1p of small values only (where log(1 + x) loses its digits)', data: { a: [1e-4, -2e-4, 3e-4, 4e-4, -5e-4, 6e-4, 7e-4, -8e-4] }, build: ({ b, param }) => b.log1p(param('a', [2, 4])) },
  ],
  expm1: [
    { label: 'expm1', build: ({ b, param }) => b.expm1(param('a', [3, 4])) },
    { label: 'expm1 near 0, at ±1, large (∞) and very negative (−1)', data: { a: [0, 1e-7, -1e-7, 1, -1, 0.999, -1.001, 100, -100, Infinity, -Infinity, NaN] }, build: ({ b, param }) => b.expm1(param('a', [3, 4])) },
    { label: 'expm1 of small values only (where e^x − 1 loses its digits)', data: { a: [1e-4, -2e-4, 3e-4, 4e-4, -5e-4, 6e-4, 7e-4, -8e-4] }, build: ({ b, param }) => b.expm1(param('a', [2, 4])) },
  ],

  // ---- the index primitives (ir/indexops.ts): i32 results are used as indices, so that y is f32
  argmax: [
    { label: 'pick at the argmax of each row, ties (the first) (the max, its gradient at the argmax)', data: { a: [1, 3, 3, 0, 2, 2, 2, 2, -1, -1, -5, -1] }, build: ({ b, param }) => {
      const a = param('a', [3, 4]);
      return b.pick(a, b.argmax(a, 1));
    } },
    { label: 'over axis 0 of [4, 3], keepDims, one-hot times a', build: ({ b, param }) => {
      const a = param('a', [4, 3]);
      return b.mul(b.oneHot(b.argmax(a, 0, true), 4), b.reshape(b.transpose(a, [1, 0]), [1, 3, 4]));
    } },
    { label: 'rows with NaN first, NaN later, all NaN, ±∞: the first NaN wins', data: { x: [NaN, 1, 2, 0, 1, NaN, 2, NaN, NaN, NaN, NaN, NaN, -Infinity, Infinity, 0, Infinity] }, build: ({ b, param, input }) => b.mul(b.oneHot(b.argmax(input('x', [4, 4]), 1), 4), param('c', [4, 4])) },
    {
      label: 'over axis 1 of [2, 4, 3] (lines 3 apart): ties, NaN first and later',
      data: { x: [1, NaN, 0, 3, 2, 5, 3, NaN, 5, 0, 2, -1, -1, 4, -Infinity, -1, 4, -Infinity, NaN, 4, -Infinity, -1, 1, -Infinity] },
      build: ({ b, param, input }) => b.mul(b.oneHot(b.argmax(input('x', [2, 4, 3]), 1), 4), param('c', [2, 3, 4])),
    },
    { label: 'over a middle axis of a symbolic batch [B, 5, 2]', dims: { B: 3 }, build: ({ b, param, input }) => b.mul(b.oneHot(b.argmax(b.add(input('x', [B, 5, 2]), param('a', [5, 1])), 1), 5), param('c', [5])) },
  ],
  argmin: [
    { label: 'pick at the argmin of each row, ties (the first)', data: { a: [1, 0, 0, 3, 2, 2, 2, 2, -1, -5, -5, -1] }, build: ({ b, param }) => {
      const a = param('a', [3, 4]);
      return b.pick(a, b.argmin(a, 1));
    } },
    { label: 'rows with NaN and −∞: the first NaN wins', data: { x: [3, NaN, -Infinity, NaN, 2, -Infinity, -Infinity, 0] }, build: ({ b, param, input }) => b.mul(b.oneHot(b.argmin(input('x', [2, 4]), 1), 4), param('c', [2, 4])) },
  ],
  cumsum: [
    { label: 'along axis 1 of [3, 5]', build: ({ b, param }) => b.cumsum(param('a', [3, 5]), 1) },
    { label: 'along axis 0 of [4, 2, 3], then tanh', build: ({ b, param }) => b.tanh(b.cumsum(param('a', [4, 2, 3]), 0)) },
    { label: 'reverse, along axis 1 of [2, 6]', build: ({ b, param }) => b.cumsum(param('a', [2, 6]), 1, true) },
    { label: 'along 2,000 entries of values near 1 (summed in float64)', build: ({ b, param }) => b.cumsum(b.add(b.mul(param('a', [2, 2000]), 1e-3), 1), 1) },
    { label: 'along a symbolic axis [B, 3]', dims: { B: 4 }, build: ({ b, param, input }) => b.cumsum(b.mul(input('x', [B, 3]), param('a', [3])), 0) },
  ],
  flip: [
    { label: 'axis 1 of [3, 4]', build: ({ b, param }) => b.flip(param('a', [3, 4]), [1]) },
    { label: 'axes [0, 2] of [2, 3, 4], then tanh', build: ({ b, param }) => b.tanh(b.flip(param('a', [2, 3, 4]), [0, 2])) },
    { label: 'every axis of [3, 2] (one reverse walk)', build: ({ b, param }) => b.flip(b.exp(param('a', [3, 2])), [0, 1]) },
    { label: 'the static axis of a symbolic batch [B, 3]', dims: { B: 4 }, build: ({ b, param, input }) => b.flip(b.mul(input('x', [B, 3]), param('a', [3])), [1]) },
  ],
  arange: [
    { label: 'arange(5) as f32 through a comparison with an i32 constant', build: ({ b, param }) => b.mul(b.ge(b.arange(5), b.constant([0, 4, 2, 3, 1], [5], 'i32')), param('a', [5])) },
    { label: 'a causal mask over a symbolic T: arange(T)[:, None] >= arange(T)[None, :]', dims: { T: 5 }, build: ({ b, param, input }) => {
      const i = b.arange('T');
      const mask = b.ge(b.reshape(i, ['T', 1]), b.reshape(i, [1, 'T']));
      return b.mul(mask, b.mul(input('x', ['T', 1]), param('a', [])));
    } },
    { label: 'arange(4) compared with an f32 value (cast to f32)', build: ({ b, param }) => b.mul(b.gt(b.arange(4), 1.5), param('a', [4])) },
  ],
  cast: [
    { label: 'arange(T) as f32 positions times a, over a symbolic T', dims: { T: 6 }, build: ({ b, param, input }) => b.mul(b.reshape(b.cast(b.arange('T')), ['T', 1]), b.mul(input('x', ['T', 2]), param('a', [2]))) },
    { label: 'i32 indices [3, 4] as f32, then tanh', data: { ix: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1] }, build: ({ b, param, input }) => b.tanh(b.mul(b.cast(input('ix', [3, 4], 'i32')), param('a', [4]))) },
  ],
};

/** The table as a list: each case with its op and its index (a stable model name). */
export function casesOf(table: typeof CASES): { op: OpKind; label: string; c: Case; index: number }[] {
  const out: { op: OpKind; label: string; c: Case; index: number }[] = [];
  for (const op of Object.keys(table) as OpKind[]) {
    const e = table[op];
    if ('none' in e) continue;
    const list: readonly Case[] = Array.isArray(e) ? e : [e as Case];
    list.forEach((c) => out.push({ op, label: c.label, c, index: out.length }));
  }
  return out;
}
