// The op table: for every primitive, its shape rule, its gradient rule and its float64
// reference evaluation, side by side. Adding an op is one entry in `AttrsOf` and one in `OPS`;
// a missing entry is a type error here and in every emitter's table.
//
// Gradient rules return one thunk per operand (null where no gradient flows). The reverse pass
// calls only the thunks of operands that need a gradient, and sums the result back over
// broadcast axes itself, so rules are written for same-shape operands.

import type { Builder } from './builder.js';
import { CompileError } from './errors.js';
import * as K from './ndarray.js';
import type { NDArray } from './ndarray.js';
import { broadcastOrThrow, fmtShape, reducedShape, resolveReshape } from './shape.js';
import type { Dim } from './dims.js';
import { asDim, divSize, isStatic, numelSize } from './dims.js';
import type { ConcreteType, DType, Shape, TensorType, ValueId } from './types.js';
import { formatType, numel, sameShape } from './types.js';
import type { ConvAttrs, ConvInputGradAttrs, ConvWeightGradAttrs, PoolAttrs, PoolGradAttrs } from './conv.js';
import * as CV from './conv.js';
import { erf } from './special.js';
import { INDEX_OPS } from './indexops.js';

export type Init = 'randn' | 'zeros' | 'ones' | 'uniform';
type None = Record<string, never>;
interface Reduce {
  axes: number[];
  keepDims: boolean;
}

/** Attributes of each op. The keys of this interface are the op kinds. */
export interface AttrsOf {
  // sources: their type is declared, not inferred
  /** `grad`: the model asks for this input's gradient (g.input(..., { grad: true })). */
  input: { name: string; grad?: true };
  /**
   * `frozen`: g.param's trainable: false (no gradient, no update); `weightDecay`, `lrScale`: the
   * param's own weight decay and learning-rate factor in the training step (codegen/optim.ts).
   */
  param: { name: string; init: Init; scale: number; frozen?: true; weightDecay?: number; lrScale?: number };
  const: { data: number[] };
  /** In a backward graph: the forward value of that name. */
  fwd: { name: string };
  /** The size a symbolic dimension is bound to in this call, as an f32 scalar. */
  dim: { name: string };
  /**
   * A module buffer (batchnorm's running statistics, `bn1.running_mean`): state that is not a
   * param, passed in `options.buffers` and updated in place by training calls.
   */
  buffer: { name: string };
  /** 1 in a training call, 0 in evaluation: an f32 scalar the module sets before the forward pass. */
  mode: None;
  /**
   * Dropout site `site`'s mask: each element 0 with probability p, else 1/(1 − p), drawn by the
   * module from the call's seed before the forward pass (ir/random.ts) in training, all ones in
   * evaluation. The backward reads the same values: a mask is never drawn twice.
   */
  dropout_mask: { p: number; site: number };
  // elementwise, unary
  neg: None;
  exp: None;
  log: None;
  tanh: None;
  sigmoid: None;
  relu: None;
  sqrt: None;
  square: None;
  abs: None;
  sin: None;
  cos: None;
  /** The error function 2/√π ∫₀ˣ e^(−t²) dt (exact GELU's). */
  erf: None;
  /** log(1 + x), exact for small |x|. */
  log1p: None;
  /** e^x − 1, exact for small |x|. */
  expm1: None;
  stop_gradient: None;
  // elementwise, binary with NumPy broadcasting
  add: None;
  sub: None;
  mul: None;
  div: None;
  pow: None;
  maximum: None;
  minimum: None;
  /** 1 where a > b, else 0 (f32 mask; no gradient). */
  gt: None;
  /** 1 where a >= b, else 0. */
  ge: None;
  /** Where c ≠ 0, a, else b (the value not taken is never read into the result: no NaN leaks). */
  select: None;
  // reductions
  sum: Reduce;
  max: Reduce;
  /** 1 at the first maximum (row-major) of each reduced slice, 0 elsewhere; shape of x. */
  argmax_mask: { axes: number[] };
  // linear algebra and layout
  /** op(A)·op(B) over the last two axes, where op transposes when the flag is set. */
  matmul: { transA: boolean; transB: boolean };
  transpose: { perm: number[] };
  reshape: { shape: Dim[] };
  broadcast: { shape: Dim[] };
  concat: { axis: number };
  slice: { starts: number[]; sizes: Dim[] };
  /** x placed at `starts` inside zeros of `shape` (the adjoint of slice). */
  pad: { starts: number[]; shape: Dim[] };
  // indexing
  /** table[indices]: shape indices.shape + table.shape[1:]. */
  gather: None;
  /** The adjoint of gather: zeros of `shape`, then out[indices[i]] += src[i]. */
  scatter_add: { shape: Dim[] };
  /** x[range(n), indices] for x [n, c] and indices [n]. */
  pick: None;
  one_hot: { depth: number };
  // fused ops: what the rewrite pass turns the lecture's long forms and the composites into,
  // because their gradient rules are cheaper than the chain of primitive rules
  softmax: { axis: number };
  log_softmax: { axis: number };
  /** Mean over the batch of −log_softmax(logits)[i, targets[i]], for logits [n, c]. */
  xent: None;
  /**
   * (x − mean) · inv for x [n, f], where mean and inv [1, f] are x's batch mean and its inverse
   * standard deviation with Bessel's correction (the rewrite guarantees it). Its gradient is the
   * total derivative through mean and inv: no gradient flows to them separately.
   */
  bn_apply: None;
  /**
   * Layer norm's (x − mean) · inv for x [..., c], where mean and inv [..., 1] are the mean of
   * each row of c and its inverse standard deviation (divided by c, no correction); its gradient
   * too is the total derivative through mean and inv.
   */
  ln_apply: None;
  /**
   * g.customGrad: operand 0 is the forward's result, and this its value; its gradient is the
   * user's backward, the graph's rule `rule` (Graph.rules), with xs operands 1..inputs and the
   * values the backward reads besides them after those. Dropped once the reverse passes have run.
   */
  custom_grad: { rule: number; inputs: number };
  // convolutions and pooling over x [N, C, H, W] (ir/conv.ts)
  /** x [N, C, H, W] ⋆ weight [O, C/groups, kH, kW] → [N, O, Ho, Wo]; padding [top, left, bottom, right]. */
  conv: ConvAttrs;
  /** The transposed convolution: dy [N, O, Ho, Wo] and weight → dx [N, C, size]. */
  conv_input_grad: ConvInputGradAttrs;
  /** The correlation of x [N, C, H, W] with dy [N, O, Ho, Wo] → dweight [O, C/groups, kernel]. */
  conv_weight_grad: ConvWeightGradAttrs;
  /** Max over each window; padding [h, w] on both sides. */
  max_pool: PoolAttrs;
  /** (x, dy) → dx: each window's dy added at its first maximum. */
  max_pool_grad: PoolGradAttrs;
  /** v [N, C, H, W] at the first maximum of x's windows: max_pool_grad's adjoint (its second derivative). */
  max_pool_pick: PoolAttrs;
  /** Mean over each window (padding counted, as PyTorch's default). */
  avg_pool: PoolAttrs;
  /** dy → dx: each window's dy/(kH·kW) added over the window. */
  avg_pool_grad: PoolGradAttrs;
  // the index primitives of PyTorch's vocabulary (ir/indexops.ts)
  /** The i32 index of the first maximum along `axis` (of the first NaN where there is one, as torch); no gradient. */
  argmax: { axis: number; keepDims: boolean };
  /** The i32 index of the first minimum along `axis` (of the first NaN where there is one); no gradient. */
  argmin: { axis: number; keepDims: boolean };
  /** Running sums along `axis`, from the end with `reverse` (the gradient of a cumsum). */
  cumsum: { axis: number; reverse?: true };
  /** x with the order of `axes` reversed (axes of static size). */
  flip: { axes: number[] };
  /** i32 [n] holding 0, 1, … n − 1; `shape` is [n], n possibly symbolic. */
  arange: { shape: Dim[] };
  /** An i32 tensor's values as f32 (x.float()); no gradient. */
  cast: None;
}

export type OpKind = keyof AttrsOf;

/** What a gradient rule sees of the forward instruction, with values read into the backward graph. */
export interface GradCtx<A> {
  /** Emits into the backward graph, stamped with the forward instruction's location. */
  readonly b: Builder;
  readonly attrs: A;
  /** Upstream gradient, typed like the result. */
  readonly dy: ValueId;
  /** Forward operand i, read into the backward graph. */
  x(i: number): ValueId;
  /** Forward result, read into the backward graph. */
  y(): ValueId;
  /** Type of forward operand i. */
  xt(i: number): TensorType;
  /** Number of forward operands. */
  readonly arity: number;
  readonly yt: TensorType;
  /** custom_grad only: the user's rule, emitted by the reverse pass (ir/autodiff.ts). */
  userRule(): readonly GradThunk[];
  /**
   * The forward graph around the instruction: its operands, the instruction that made a value,
   * and a forward value read into the backward graph (batchnorm's mode flag: `modeOf`).
   */
  readonly forward?: { readonly args: readonly ValueId[]; def(v: ValueId): { readonly op: string; readonly args: readonly ValueId[] }; read(v: ValueId): ValueId };
}

/**
 * The mode flag that selects operand k's value (a `select(mode, …)`, as batchNorm with running
 * statistics selects its statistics), or undefined: the flag, read into the backward graph.
 */
function modeOf(c: GradCtx<unknown>, k: number): ValueId | undefined {
  const f = c.forward;
  if (!f) return undefined;
  const d = f.def(f.args[k]!);
  if (d.op !== 'select' || f.def(d.args[0]!).op !== 'mode') return undefined;
  return f.read(d.args[0]!);
}

export type GradThunk = (() => ValueId) | null;

/**
 * 'none': no gradient flows through this op (comparisons, indices, stopGradient).
 * null: differentiating through it is an error (the op has no gradient rule).
 */
export type GradRule<A> = ((c: GradCtx<A>) => readonly GradThunk[]) | 'none' | null;

export type OpCategory = 'source' | 'elementwise' | 'reduce' | 'matmul' | 'layout' | 'index' | 'fused' | 'conv';

/** The kind of each attribute, for the parser and the verifier. */
/** 'dims': a shape, whose entries are integers or symbols. */
/** 'flag': an optional boolean, present (and printed) only when true; 'optnum': an optional number. */
export type AttrKind = 'int' | 'num' | 'optnum' | 'bool' | 'flag' | 'str' | 'ints' | 'nums' | 'dims' | 'init';
export type AttrSchema<A> = { readonly [P in keyof A]-?: AttrKind };

export interface OpDef<A> {
  readonly category: OpCategory;
  readonly attrs: AttrSchema<A>;
  /** Number of operands; 'variadic' for concat. */
  readonly arity: number | 'variadic';
  /** Result type from operand types (null for sources, whose type is declared). */
  readonly shape: ((args: readonly TensorType[], attrs: A) => TensorType) | null;
  readonly grad: GradRule<A>;
  /**
   * Operands that hold indices, with their exclusive bound: the generated modules check index
   * inputs against these before any work.
   */
  readonly indices?: (args: readonly TensorType[], attrs: A) => readonly { readonly arg: number; readonly bound: number }[];
  /**
   * Float64 reference evaluation (sources are bound by the interpreter), with the result type's
   * symbols bound; a shape attribute is read from `out`, not from the attributes.
   */
  readonly eval: ((args: readonly NDArray[], attrs: A, out: ConcreteType) => NDArray) | null;
}

// ---------------------------------------------------------------------------------------------
// Shape-rule helpers

function needF32(op: string, t: TensorType, which: string): void {
  if (t.dtype !== 'f32')
    throw new CompileError(
      `${op}: ${which} is ${formatType(t)} but f32 is needed`,
      'i32 tensors hold indices and labels; use g.oneHot(indices, depth) to turn class indices into f32, or declare the input with dtype \'f32\'',
    );
}

function needI32(op: string, t: TensorType, which: string): void {
  if (t.dtype !== 'i32')
    throw new CompileError(
      `${op}: ${which} is ${formatType(t)} but i32 indices are needed`,
      "declare the index input with dtype 'i32', e.g. g.input('Yb', [32], 'i32')",
    );
}

const f32 = (shape: Shape): TensorType => ({ dtype: 'f32', shape });

/** Axes in IR attributes are normalised: sorted, distinct, in range. */
function checkAxes(axes: readonly number[], x: TensorType): void {
  const r = x.shape.length;
  if (!axes.every((a, i) => Number.isInteger(a) && a >= 0 && a < r && (i === 0 || a > axes[i - 1]!)))
    throw new CompileError(`axes ${fmtShape(axes)} are not sorted distinct axes of ${formatType(x)}`, 'list each axis once, in increasing order');
}

// ---------------------------------------------------------------------------------------------
// Rule helpers grouped by shape (JAX style): unary elementwise, binary broadcasting, reductions.

function unary(f: (x: number) => number, grad: GradRule<None>, op = ''): OpDef<None> {
  return {
    category: 'elementwise',
    attrs: {},
    arity: 1,
    shape: ([x]) => {
      needF32(op, x!, 'the operand');
      return f32(x!.shape);
    },
    grad,
    eval: ([x], _a, t) => K.map(t.shape, [x!], f),
  };
}

function binary(f: (a: number, b: number) => number, grad: GradRule<None>, op = ''): OpDef<None> {
  return {
    category: 'elementwise',
    attrs: {},
    arity: 2,
    shape: ([a, b]) => {
      needF32(op, a!, 'the first operand');
      needF32(op, b!, 'the second operand');
      return f32(broadcastOrThrow(op, a!, b!));
    },
    grad,
    eval: ([a, b], _a, t) => K.map(t.shape, [a!, b!], f),
  };
}

/** A comparison: f32 or i32 operands (mixed: the i32 one compared as f32), an f32 mask of 0/1. */
function comparison(f: (a: number, b: number) => number, op: string): OpDef<None> {
  return { ...binary(f, 'none', op), shape: ([a, b]) => f32(broadcastOrThrow(op, a!, b!)) };
}

function reduction(init: number, step: (acc: number, v: number) => number, grad: GradRule<Reduce>): OpDef<Reduce> {
  return {
    category: 'reduce',
    attrs: { axes: 'ints', keepDims: 'bool' },
    arity: 1,
    shape: ([x], a) => {
      needF32('reduction', x!, 'the operand');
      checkAxes(a.axes, x!);
      return f32(reducedShape(x!.shape, a.axes, a.keepDims));
    },
    grad,
    eval: ([x], a, t) => K.reduce(x!, a.axes, t.shape, init, step),
  };
}

function source<A>(attrs: AttrSchema<A>): OpDef<A> {
  return { category: 'source', attrs, arity: 0, shape: null, grad: 'none', eval: null };
}

/** dy of a reduction result, reshaped so that it broadcasts against the operand. */
function keepDimsOf(c: GradCtx<Reduce>): ValueId {
  return c.attrs.keepDims ? c.dy : c.b.reshape(c.dy, reducedShape(c.xt(0).shape, c.attrs.axes, true));
}

function matmulShape(op: string, a: TensorType, b: TensorType, transA: boolean, transB: boolean): TensorType {
  needF32(op, a, 'the left operand');
  needF32(op, b, 'the right operand');
  if (a.shape.length < 2 || b.shape.length < 2)
    throw new CompileError(
      `${op}: needs operands of rank 2 or more, got ${formatType(a)} × ${formatType(b)}`,
      'reshape a vector to [1, n] or [n, 1] first',
    );
  const [m, k1] = transA ? [a.shape.at(-1)!, a.shape.at(-2)!] : [a.shape.at(-2)!, a.shape.at(-1)!];
  const [k2, n] = transB ? [b.shape.at(-1)!, b.shape.at(-2)!] : [b.shape.at(-2)!, b.shape.at(-1)!];
  if (k1 !== k2)
    throw new CompileError(
      `${op}: inner dimensions differ: ${formatType(a)} × ${formatType(b)} (${k1} ≠ ${k2})`,
      `the left operand's last dimension must equal the right operand's ${b.shape.length > 2 ? 'second-to-last' : 'first'}; transpose or reshape one of them`,
    );
  const ba = a.shape.slice(0, -2);
  const bb = b.shape.slice(0, -2);
  if (bb.length > 0 && !sameShape(ba, bb))
    throw new CompileError(
      `${op}: batch dimensions differ: ${formatType(a)} × ${formatType(b)}`,
      'batched matmul takes [..., m, k] × [k, n] or [..., m, k] × [..., k, n] with equal batch dimensions',
    );
  return f32([...ba, m, n]);
}

/** The gradient of a matmul operand: dA = dC·Bᵀ, dB = Aᵀ·dC (and their transposed variants). */
function matmulGrad(c: GradCtx<AttrsOf['matmul']>): readonly GradThunk[] {
  const { b, dy } = c;
  const { transA, transB } = c.attrs;
  const A = () => c.x(0);
  const B = () => c.x(1);
  const dA = transA ? () => b.matmul(B(), dy, transB, true) : () => b.matmul(dy, B(), false, !transB);
  let dB = transB ? () => b.matmul(dy, A(), true, transA) : () => b.matmul(A(), dy, !transA, false);
  const ra = c.xt(0).shape.length;
  if (ra > 2 && c.xt(1).shape.length === 2 && !transA) {
    // [..., m, k] × [k, n]: fold the batch into the rows instead of summing per-batch products.
    // (with a symbolic batch, only when the rows are one dimension: B·3 rows are not)
    const k = c.xt(0).shape.at(-1)!;
    const n = c.yt.shape.at(-1)!;
    const rows = asDim(divSize(numelSize(c.xt(0).shape), k)!);
    if (rows !== undefined) {
      const A2 = () => b.reshape(A(), [rows, k]);
      const dC2 = () => b.reshape(dy, [rows, n]);
      dB = transB ? () => b.matmul(dC2(), A2(), true, false) : () => b.matmul(A2(), dC2(), true, false);
    }
  }
  return [dA, dB];
}

/** Whether v is a constant with no zero (the backward graph copies a forward constant as one). */
function nonzeroConst(b: Builder, v: ValueId): boolean {
  const d = b.graph.def(v);
  return d.op === 'const' && d.attrs.data.every((k) => k !== 0);
}

/**
 * x^q, with PyTorch's gradients at zero (pow_backward_self / _exponent): the base's is 0 where
 * q = 0, the exponent's 0 where x = 0 and q ≥ 0 (not 0·log 0 = NaN). An operand that is a
 * constant with no zero needs no select (x.pow(3), batchnorm's pow(-0.5)).
 */
function powGrad(c: GradCtx<None>): readonly GradThunk[] {
  const { b, dy } = c;
  return [
    () => {
      const q = c.x(1);
      const d = b.mul(dy, b.mul(q, b.pow(c.x(0), b.sub(q, 1))));
      return nonzeroConst(b, q) ? d : b.select(q, d, 0);
    },
    () => {
      const x = c.x(0);
      const d = b.mul(dy, b.mul(b.log(x), c.y()));
      return nonzeroConst(b, x) ? d : b.select(x, d, b.select(b.ge(c.x(1), 0), 0, d));
    },
  ];
}

function concatShape(args: readonly TensorType[], axis: number): TensorType {
  if (args.length === 0) throw new CompileError('concat: needs at least one tensor', 'pass a non-empty array of tensors');
  const first = args[0]!;
  const rank = first.shape.length;
  if (!Number.isInteger(axis) || axis < 0 || axis >= rank)
    throw new CompileError(`concat: axis ${axis} is out of range for ${formatType(first)}`, `use an axis in 0..${rank - 1}`);
  const out = [...first.shape];
  let along = 0;
  // every problem is named, not only the first: a symbolic concatenation axis can hide that
  // another axis differs too
  const symbolic = args.findIndex((t) => typeof t.shape[axis] === 'string');
  const problems = symbolic >= 0 ? [`tensor ${symbolic} is ${formatType(args[symbolic]!)}, symbolic along axis ${axis}`] : [];
  const fixes = symbolic >= 0 ? ['concatenate along an axis whose sizes are known at build time'] : [];
  args.forEach((t, i) => {
    if (t.dtype !== first.dtype)
      throw new CompileError(`concat: tensor ${i} is ${formatType(t)} but tensor 0 is ${formatType(first)}`, 'concatenate tensors of one dtype');
    const ok = t.shape.length === rank && t.shape.every((d, j) => j === axis || d === first.shape[j]);
    if (!ok) problems.push(`tensor ${i} is ${formatType(t)}, which does not match ${formatType(first)} outside axis ${axis}`);
    else along += t.shape[axis] as number;
  });
  if (problems.length > fixes.length) fixes.push('all tensors must have the same rank and the same size on every axis but the concatenation axis');
  if (problems.length) throw new CompileError(`concat: ${problems.join('; also ')}`, fixes.join('; and '));
  out[axis] = along;
  return { dtype: first.dtype, shape: out };
}

// ---------------------------------------------------------------------------------------------
// The table

type OpTable = { readonly [Op in OpKind]: OpDef<AttrsOf[Op]> };

export const OPS: OpTable = {
  input: source<AttrsOf['input']>({ name: 'str', grad: 'flag' }),
  param: source<AttrsOf['param']>({ name: 'str', init: 'init', scale: 'num', frozen: 'flag', weightDecay: 'optnum', lrScale: 'optnum' }),
  const: source({ data: 'nums' }),
  fwd: source({ name: 'str' }),
  dim: source({ name: 'str' }),
  buffer: source({ name: 'str' }),
  mode: source({}),
  dropout_mask: source({ p: 'num', site: 'int' }),

  neg: unary((x) => -x, (c) => [() => c.b.neg(c.dy)], 'neg'),
  exp: unary(Math.exp, (c) => [() => c.b.mul(c.dy, c.y())], 'exp'),
  log: unary(Math.log, (c) => [() => c.b.div(c.dy, c.x(0))], 'log'),
  tanh: unary(Math.tanh, (c) => [() => c.b.mul(c.dy, c.b.sub(1, c.b.square(c.y())))], 'tanh'),
  sigmoid: unary((x) => 1 / (1 + Math.exp(-x)), (c) => [() => c.b.mul(c.dy, c.b.mul(c.y(), c.b.sub(1, c.y())))], 'sigmoid'),
  relu: unary((x) => (x > 0 ? x : 0), (c) => [() => c.b.mul(c.dy, c.b.gt(c.y(), 0))], 'relu'),
  sqrt: unary(Math.sqrt, (c) => [() => c.b.div(c.b.mul(c.dy, 0.5), c.y())], 'sqrt'),
  square: unary((x) => x * x, (c) => [() => c.b.mul(c.dy, c.b.mul(c.x(0), 2))], 'square'),
  abs: unary(Math.abs, (c) => [() => c.b.mul(c.dy, c.b.sub(c.b.gt(c.x(0), 0), c.b.gt(0, c.x(0))))], 'abs'),
  sin: unary(Math.sin, (c) => [() => c.b.mul(c.dy, c.b.cos(c.x(0)))], 'sin'),
  cos: unary(Math.cos, (c) => [() => c.b.neg(c.b.mul(c.dy, c.b.sin(c.x(0))))], 'cos'),
  // erf'(x) = 2/√π · e^(−x²)
  erf: unary(erf, (c) => [() => c.b.mul(c.dy, c.b.mul(c.b.exp(c.b.neg(c.b.square(c.x(0)))), 2 / Math.sqrt(Math.PI)))], 'erf'),
  log1p: unary(Math.log1p, (c) => [() => c.b.div(c.dy, c.b.add(c.x(0), 1))], 'log1p'),
  // from the output: (e^x − 1)' = y + 1
  expm1: unary(Math.expm1, (c) => [() => c.b.mul(c.dy, c.b.add(c.y(), 1))], 'expm1'),
  stop_gradient: { ...unary((x) => x, 'none', 'stopGradient'), shape: ([x]) => x! },

  add: binary((a, b) => a + b, (c) => [() => c.dy, () => c.dy], 'add'),
  sub: binary((a, b) => a - b, (c) => [() => c.dy, () => c.b.neg(c.dy)], 'sub'),
  mul: binary((a, b) => a * b, (c) => [() => c.b.mul(c.dy, c.x(1)), () => c.b.mul(c.dy, c.x(0))], 'mul'),
  div: binary((a, b) => a / b, (c) => [() => c.b.div(c.dy, c.x(1)), () => c.b.neg(c.b.div(c.b.mul(c.dy, c.y()), c.x(1)))], 'div'),
  pow: binary(Math.pow, powGrad, 'pow'),
  // A tie gives the whole gradient to the first operand (graphc's choice: PyTorch splits it
  // evenly between the two); the losing side gets no gradient.
  maximum: binary(Math.max, (c) => [() => c.b.mul(c.dy, c.b.ge(c.x(0), c.x(1))), () => c.b.mul(c.dy, c.b.gt(c.x(1), c.x(0)))], 'maximum'),
  minimum: binary(Math.min, (c) => [() => c.b.mul(c.dy, c.b.ge(c.x(1), c.x(0))), () => c.b.mul(c.dy, c.b.gt(c.x(0), c.x(1)))], 'minimum'),
  gt: comparison((a, b) => (a > b ? 1 : 0), 'gt'),
  ge: comparison((a, b) => (a >= b ? 1 : 0), 'ge'),
  select: {
    category: 'elementwise',
    attrs: {},
    arity: 3,
    shape: ([c, a, b]) => {
      needF32('select', c!, 'the condition');
      needF32('select', a!, 'the first choice');
      needF32('select', b!, 'the second choice');
      const ab = broadcastOrThrow('select', a!, b!);
      return f32(broadcastOrThrow('select', c!, f32(ab)));
    },
    // the gradient goes to the operand that was taken
    grad: (c) => [null, () => c.b.select(c.x(0), c.dy, 0), () => c.b.select(c.x(0), 0, c.dy)],
    eval: ([c, a, b], _a, t) => K.map(t.shape, [c!, a!, b!], (w, x, y) => (w !== 0 ? x : y)),
  },

  sum: reduction(0, (acc, v) => acc + v, (c) => [() => c.b.broadcast(keepDimsOf(c), c.xt(0).shape)]),
  max: reduction(-Infinity, (acc, v) => (v > acc ? v : acc), (c) => [() => c.b.mul(c.b.argmaxMask(c.x(0), c.attrs.axes), keepDimsOf(c))]),
  argmax_mask: {
    category: 'reduce',
    attrs: { axes: 'ints' },
    arity: 1,
    shape: ([x], a) => {
      checkAxes(a.axes, x!);
      return f32(x!.shape);
    },
    grad: 'none',
    eval: ([x], a) => K.argmaxMask(x!, a.axes),
  },

  matmul: {
    category: 'matmul',
    attrs: { transA: 'bool', transB: 'bool' },
    arity: 2,
    shape: ([a, b], at) => matmulShape('matmul', a!, b!, at.transA, at.transB),
    grad: matmulGrad,
    eval: ([a, b], at, t) => K.matmul(a!, b!, at.transA, at.transB, t.shape),
  },
  transpose: {
    category: 'layout',
    attrs: { perm: 'ints' },
    arity: 1,
    shape: ([x], a) => {
      const r = x!.shape.length;
      const ok = a.perm.length === r && [...a.perm].sort((p, q) => p - q).every((p, i) => p === i);
      if (!ok)
        throw new CompileError(
          `transpose: ${fmtShape(a.perm)} is not a permutation of the ${r} axes of ${formatType(x!)}`,
          `give each axis 0..${r - 1} exactly once, or omit perm to swap the last two axes`,
        );
      return { dtype: x!.dtype, shape: a.perm.map((p) => x!.shape[p]!) };
    },
    grad: (c) => [() => c.b.transpose(c.dy, inversePerm(c.attrs.perm))],
    eval: ([x], a) => K.transpose(x!, a.perm),
  },
  reshape: {
    category: 'layout',
    attrs: { shape: 'dims' },
    arity: 1,
    shape: ([x], a) => ({ dtype: x!.dtype, shape: resolveReshape(x!.shape, a.shape) }),
    grad: (c) => [() => c.b.reshape(c.dy, c.xt(0).shape)],
    eval: ([x], _a, t) => K.nd(t.shape, x!.data),
  },
  broadcast: {
    category: 'elementwise',
    attrs: { shape: 'dims' },
    arity: 1,
    shape: ([x], a) => {
      const s = broadcastOrThrow('broadcast', x!, { dtype: x!.dtype, shape: a.shape });
      if (!sameShape(s, a.shape))
        throw new CompileError(`broadcast: cannot broadcast ${formatType(x!)} to ${fmtShape(a.shape)}`, 'the target shape must contain the operand shape');
      return { dtype: x!.dtype, shape: a.shape };
    },
    grad: (c) => [() => c.dy], // the reverse pass sums dy back over the broadcast axes
    eval: ([x], _a, t) => K.map(t.shape, [x!], (v) => v),
  },
  concat: {
    category: 'layout',
    attrs: { axis: 'int' },
    arity: 'variadic',
    shape: (args, a) => concatShape(args, a.axis),
    grad: (c) => {
      let off = 0;
      return Array.from({ length: c.arity }, (_, i) => {
        const shape = c.xt(i).shape;
        const starts = shape.map((_d, j) => (j === c.attrs.axis ? off : 0));
        off += shape[c.attrs.axis] as number; // the shape rule keeps the concatenation axis static
        return () => c.b.slice(c.dy, starts, [...shape]);
      });
    },
    eval: (args, a, t) => {
      let out = K.nd(t.shape);
      let off = 0;
      for (const x of args) {
        out = addInto(out, K.pad(x, t.shape.map((_d, j) => (j === a.axis ? off : 0)), t.shape));
        off += x.shape[a.axis]!;
      }
      return out;
    },
  },
  slice: {
    category: 'layout',
    attrs: { starts: 'ints', sizes: 'dims' },
    arity: 1,
    shape: ([x], a) => {
      const ok = a.starts.length === x!.shape.length && a.sizes.length === x!.shape.length &&
        a.starts.every((s, d) => fitsIn(s, a.sizes[d]!, x!.shape[d]!));
      if (!ok) throw new CompileError(`slice: box ${fmtShape(a.starts)}+${fmtShape(a.sizes)} is outside ${formatType(x!)}`, 'keep the slice inside the tensor');
      return { dtype: x!.dtype, shape: a.sizes };
    },
    grad: (c) => [() => c.b.pad(c.dy, c.attrs.starts, [...c.xt(0).shape])],
    eval: ([x], a, t) => K.slice(x!, a.starts, t.shape),
  },
  pad: {
    category: 'layout',
    attrs: { starts: 'ints', shape: 'dims' },
    arity: 1,
    shape: ([x], a) => {
      const ok = a.starts.length === x!.shape.length && a.shape.length === x!.shape.length &&
        a.starts.every((s, d) => fitsIn(s, x!.shape[d]!, a.shape[d]!));
      if (!ok) throw new CompileError(`pad: ${formatType(x!)} at ${fmtShape(a.starts)} does not fit in ${fmtShape(a.shape)}`, 'the padded shape must contain the operand');
      return { dtype: x!.dtype, shape: a.shape };
    },
    grad: (c) => [() => c.b.slice(c.dy, c.attrs.starts, [...c.xt(0).shape])],
    eval: ([x], a, t) => K.pad(x!, a.starts, t.shape),
  },

  gather: {
    category: 'index',
    attrs: {},
    arity: 2,
    shape: ([table, idx]) => {
      needF32('gather', table!, 'the table');
      needI32('gather', idx!, 'the index tensor');
      if (table!.shape.length < 1) throw new CompileError(`gather: the table is a scalar ${formatType(table!)}`, 'gather rows from a table of rank 1 or more');
      staticBound('gather', table!, 0, 'rows');
      return f32([...idx!.shape, ...table!.shape.slice(1)]);
    },
    grad: (c) => [() => c.b.scatterAdd(c.x(1), c.dy, [...c.xt(0).shape]), null],
    indices: ([table]) => [{ arg: 1, bound: table!.shape[0] as number }],
    eval: ([table, idx], _a, t) => {
      const row = numel(table!.shape.slice(1));
      const out = K.nd(t.shape);
      idx!.data.forEach((r, i) => {
        checkIndex('gather', r, table!.shape[0]!);
        out.data.set(table!.data.subarray(r * row, r * row + row), i * row);
      });
      return out;
    },
  },
  scatter_add: {
    category: 'index',
    attrs: { shape: 'dims' },
    arity: 2,
    shape: ([idx, src], a) => {
      needI32('scatter_add', idx!, 'the index tensor');
      const want = [...idx!.shape, ...a.shape.slice(1)];
      if (!sameShape(want, src!.shape))
        throw new CompileError(`scatter_add: source ${formatType(src!)} does not match ${fmtShape(want)}`, 'internal rule error');
      staticBound('scatter_add', f32(a.shape), 0, 'rows');
      return f32(a.shape);
    },
    grad: (c) => [null, () => c.b.gather(c.dy, c.x(0))],
    indices: (_t, a) => [{ arg: 0, bound: a.shape[0] as number }],
    eval: ([idx, src], _a, t) => {
      const row = numel(t.shape.slice(1));
      const out = K.nd(t.shape);
      idx!.data.forEach((r, i) => {
        checkIndex('scatter_add', r, t.shape[0]!);
        for (let j = 0; j < row; j++) out.data[r * row + j]! += src!.data[i * row + j]!;
      });
      return out;
    },
  },
  pick: {
    category: 'index',
    attrs: {},
    arity: 2,
    shape: ([x, idx]) => {
      needF32('pick', x!, 'the first operand');
      needI32('pick', idx!, 'the index tensor');
      if (x!.shape.length !== 2 || idx!.shape.length !== 1 || x!.shape[0] !== idx!.shape[0])
        throw new CompileError(
          `pick: needs x [n, c] and indices [n], got ${formatType(x!)} and ${formatType(idx!)}`,
          'pick(x, indices) takes x[range(n), indices]: one index per row of a 2-D x',
        );
      staticBound('pick', x!, 1, 'classes');
      return f32([x!.shape[0]!]);
    },
    grad: (c) => [() => c.b.mul(c.b.oneHot(c.x(1), c.xt(0).shape[1] as number), c.b.reshape(c.dy, [c.yt.shape[0]!, 1])), null],
    indices: ([x]) => [{ arg: 1, bound: x!.shape[1] as number }],
    eval: ([x, idx]) => {
      const cols = x!.shape[1]!;
      return K.nd([x!.shape[0]!], Array.from(idx!.data, (j, i) => (checkIndex('pick', j, cols), x!.data[i * cols + j]!)));
    },
  },
  one_hot: {
    category: 'index',
    attrs: { depth: 'int' },
    arity: 1,
    shape: ([idx], a) => {
      needI32('oneHot', idx!, 'the index tensor');
      if (!Number.isInteger(a.depth) || a.depth < 1)
        throw new CompileError(`oneHot: depth ${a.depth} is not a positive integer`, 'pass the number of classes as depth');
      return f32([...idx!.shape, a.depth]);
    },
    grad: 'none',
    indices: (_t, a) => [{ arg: 0, bound: a.depth }],
    eval: ([idx], a, t) => {
      const out = K.nd(t.shape);
      idx!.data.forEach((j, i) => {
        checkIndex('oneHot', j, a.depth);
        out.data[i * a.depth + j] = 1;
      });
      return out;
    },
  },

  softmax: {
    category: 'fused',
    attrs: { axis: 'int' },
    arity: 1,
    shape: ([x], a) => {
      needF32('softmax', x!, 'the operand');
      checkAxis('softmax', a.axis, x!);
      return f32(x!.shape);
    },
    // dx = y · (dy − Σ dy·y)
    grad: (c) => [() => c.b.mul(c.y(), c.b.sub(c.dy, c.b.sum(c.b.mul(c.dy, c.y()), [c.attrs.axis], true)))],
    eval: ([x], a) => softmaxEval(x!, a.axis, false),
  },
  log_softmax: {
    category: 'fused',
    attrs: { axis: 'int' },
    arity: 1,
    shape: ([x], a) => {
      needF32('logSoftmax', x!, 'the operand');
      checkAxis('logSoftmax', a.axis, x!);
      return f32(x!.shape);
    },
    // dx = dy − softmax(x) · Σ dy
    grad: (c) => [() => c.b.sub(c.dy, c.b.mul(c.b.exp(c.y()), c.b.sum(c.dy, [c.attrs.axis], true)))],
    eval: ([x], a) => softmaxEval(x!, a.axis, true),
  },
  xent: {
    category: 'fused',
    attrs: {},
    arity: 2,
    shape: ([x, t]) => {
      needF32('crossEntropy', x!, 'the logits');
      needI32('crossEntropy', t!, 'the targets');
      if (x!.shape.length !== 2 || t!.shape.length !== 1 || t!.shape[0] !== x!.shape[0])
        throw new CompileError(`crossEntropy: needs logits [n, c] and targets [n], got ${formatType(x!)} and ${formatType(t!)}`, 'one target class per row of logits');
      staticBound('crossEntropy', x!, 1, 'classes');
      return f32([]);
    },
    // dlogits = (softmax(logits) − onehot(targets)) · dy / n
    grad: (c) => {
      const [n, cls] = c.xt(0).shape as [Dim, number];
      const { b } = c;
      return [() => b.mul(b.sub(b.softmax(c.x(0), 1), b.oneHot(c.x(1), cls)), b.mul(c.dy, b.recip(b.count([n])))), null];
    },
    indices: ([x]) => [{ arg: 1, bound: x!.shape[1] as number }],
    eval: ([x, t]) => {
      const [n, cls] = x!.shape as [number, number];
      const lp = softmaxEval(x!, 1, true);
      let s = 0;
      t!.data.forEach((j, i) => {
        checkIndex('crossEntropy', j, cls);
        s += lp.data[i * cls + j]!;
      });
      return K.nd([], [-s / n]);
    },
  },
  bn_apply: normalization('batchNorm', 'bn_apply', 'leading', 1),
  ln_apply: normalization('layerNorm', 'ln_apply', 'last', 0),
  custom_grad: {
    category: 'layout',
    attrs: { rule: 'int', inputs: 'int' },
    arity: 'variadic',
    shape: ([y]) => y!,
    // the user's backward in place of the forward's rules; it is itself differentiable when it is
    // written with ops that have gradient rules
    grad: (c) => c.userRule(),
    eval: ([y]) => y!,
  },
  conv: {
    category: 'conv',
    attrs: CV.CONV_SCHEMA,
    arity: 2,
    shape: ([x, w], a) => CV.convShape('conv', x!, w!, a),
    grad: CV.convGrad,
    eval: ([x, w], a, t) => CV.convEval(x!, w!, a, t.shape),
  },
  conv_input_grad: {
    category: 'conv',
    attrs: { ...CV.CONV_SCHEMA, size: 'ints' },
    arity: 2,
    shape: ([dy, w], a) => CV.shapes.convInputGradShape('conv_input_grad', dy!, w!, a),
    grad: CV.convInputGradGrad,
    eval: ([dy, w], a, t) => CV.convInputGradEval(dy!, w!, a, t.shape),
  },
  conv_weight_grad: {
    category: 'conv',
    attrs: { ...CV.CONV_SCHEMA, kernel: 'ints' },
    arity: 2,
    shape: ([x, dy], a) => CV.shapes.convWeightGradShape('conv_weight_grad', x!, dy!, a),
    grad: CV.convWeightGradGrad,
    eval: ([x, dy], a, t) => CV.convWeightGradEval(x!, dy!, a, t.shape),
  },
  max_pool: {
    category: 'conv',
    attrs: CV.POOL_SCHEMA,
    arity: 1,
    shape: ([x], a) => CV.poolShape('max_pool', x!, a),
    grad: CV.maxPoolGrad,
    eval: ([x], a, t) => CV.maxPoolEval(x!, a, t.shape),
  },
  max_pool_grad: {
    category: 'conv',
    attrs: { ...CV.POOL_SCHEMA, size: 'ints' },
    arity: 2,
    shape: ([x, dy], a) => {
      const t = CV.shapes.poolGradShape('max_pool_grad', dy!, a);
      if (!sameShape(t.shape, x!.shape)) throw new CompileError(`max_pool_grad: dy ${formatType(dy!)} is not the output of x ${formatType(x!)}`, 'internal rule error');
      return t;
    },
    grad: CV.maxPoolGradGrad,
    eval: ([x, dy], a) => CV.maxPoolGradEval(x!, dy!, a),
  },
  max_pool_pick: {
    category: 'conv',
    attrs: CV.POOL_SCHEMA,
    arity: 2,
    shape: ([x, v], a) => {
      if (!sameShape(v!.shape, x!.shape)) throw new CompileError(`max_pool_pick: v ${formatType(v!)} is not shaped as x ${formatType(x!)}`, 'internal rule error');
      return CV.poolShape('max_pool_pick', x!, a);
    },
    grad: CV.maxPoolPickGrad,
    eval: ([x, v], a, t) => CV.maxPoolPickEval(x!, v!, a, t.shape),
  },
  avg_pool: {
    category: 'conv',
    attrs: CV.POOL_SCHEMA,
    arity: 1,
    shape: ([x], a) => CV.poolShape('avg_pool', x!, a),
    grad: CV.avgPoolGrad,
    eval: ([x], a, t) => CV.avgPoolEval(x!, a, t.shape),
  },
  avg_pool_grad: {
    category: 'conv',
    attrs: { ...CV.POOL_SCHEMA, size: 'ints' },
    arity: 1,
    shape: ([dy], a) => CV.shapes.poolGradShape('avg_pool_grad', dy!, a),
    grad: CV.avgPoolGradGrad,
    eval: ([dy], a, t) => CV.avgPoolGradEval(dy!, a, t.shape),
  },
  ...INDEX_OPS,
};

/**
 * (x − mean) · inv, normalising over the leading axes (batchnorm: x [n, f] or [n, t, f], mean and
 * inv [1, f] / [1, 1, f] or [f]) or over the last axis (layer norm: x [..., c], mean and inv
 * [..., 1]); the variance inside inv divides by n − correction, n the elements averaged.
 */
function normalization(dsl: string, op: string, over: 'leading' | 'last', correction: 0 | 1): OpDef<None> {
  const axesOf = (r: number) => (over === 'leading' ? [...Array(r - 1).keys()] : [r - 1]);
  return {
    category: 'elementwise',
    attrs: {},
    arity: 3,
    shape: ([x, mean, inv]) => {
      needF32(dsl, x!, 'the operand');
      const r = x!.shape.length;
      const axes = r < (over === 'leading' ? 2 : 1) ? undefined : axesOf(r);
      const stat = (t: TensorType) =>
        t.dtype === 'f32' &&
        ((t.shape.length === r && t.shape.every((d, i) => (axes!.includes(i) ? d === 1 : d === x!.shape[i]))) ||
          (over === 'leading' && t.shape.length === 1 && t.shape[0] === x!.shape[r - 1]));
      if (!axes || !stat(mean!) || !stat(inv!)) {
        const want = over === 'leading' ? 'x [n, ..., f] and statistics [1, ..., f]' : 'x [..., c] and statistics [..., 1]';
        throw new CompileError(`${op}: needs ${want}, got ${formatType(x!)}, ${formatType(mean!)}, ${formatType(inv!)}`, 'internal rewrite error');
      }
      return f32(x!.shape);
    },
    // the total derivative through mean and inv, sums over the normalised axes:
    //   batchnorm (the lecture's form)  dx = inv/n · (n·dy − Σdy − n/(n−1) · y · Σ dy·y)
    //   layer norm                      dx = inv · (dy − mean dy − y · mean dy·y)
    grad: (c) => {
      const { b, dy } = c;
      const shape = c.xt(0).shape;
      const axes = axesOf(shape.length);
      const spanned = axes.map((a) => shape[a]!);
      const sumOver = (v: ValueId) => b.sum(v, axes, true);
      const n = () => b.count(spanned);
      if (correction === 0) {
        const meanOver = (v: ValueId) => b.mul(sumOver(v), b.recip(n()));
        return [() => b.mul(c.x(2), b.sub(b.sub(dy, meanOver(dy)), b.mul(c.y(), meanOver(b.mul(dy, c.y()))))), null, null];
      }
      // n/(n−1) is one constant when n is known, else n · (n − 1)⁻¹ from the bound sizes
      const known = numelSize(spanned);
      const bessel = () => (isStatic(known) ? known.coef / (known.coef - 1) : b.mul(n(), b.recip(b.count(spanned, 1))));
      const total = () => b.mul(b.mul(c.x(2), b.recip(n())), b.sub(b.sub(b.mul(dy, n()), sumOver(dy)), b.mul(b.mul(c.y(), bessel()), sumOver(b.mul(dy, c.y())))));
      // batchNorm with running statistics: an evaluation call normalises with the buffers, which
      // do not depend on x, so there dx = dy · inv (a per-feature affine map); the mode flag selects
      const training = modeOf(c as GradCtx<unknown>, 1);
      return [training === undefined ? total : () => b.select(training, total(), b.mul(dy, c.x(2))), null, null];
    },
    eval: ([x, mean, inv], _a, t) => K.map(t.shape, [x!, mean!, inv!], (v, m, s) => (v - m) * s),
  };
}

/** Index bounds are checked against sizes known at build time. */
function staticBound(op: string, t: TensorType, axis: number, what: string): void {
  if (!isStatic(t.shape[axis]!))
    throw new CompileError(`${op}: the number of ${what} of ${formatType(t)} is symbolic`, `give axis ${axis} a size known at build time`);
}

/** Whether [start, start + len) lies inside [0, dim); a symbolic range must be the whole axis. */
function fitsIn(start: number, len: Dim, dim: Dim): boolean {
  if (typeof len === 'number' && typeof dim === 'number') return start >= 0 && len >= 0 && start + len <= dim;
  return start === 0 && len === dim;
}

function checkIndex(op: string, i: number, n: number): void {
  if (!(Number.isInteger(i) && i >= 0 && i < n)) throw new RangeError(`${op}: index ${i} is out of range [0, ${n})`);
}

function checkAxis(op: string, axis: number, x: TensorType): void {
  if (!Number.isInteger(axis) || axis < 0 || axis >= x.shape.length)
    throw new CompileError(`${op}: axis ${axis} is not an axis of ${formatType(x)}`, `use an axis in 0..${x.shape.length - 1}`);
}

/** Row-wise softmax (or log-softmax) along one axis, in float64. */
function softmaxEval(x: NDArray, axis: number, log: boolean): NDArray {
  const shape = x.shape;
  const len = shape[axis]!;
  const inner = numel(shape.slice(axis + 1));
  const outer = numel(shape.slice(0, axis));
  const out = K.nd(shape);
  for (let o = 0; o < outer; o++)
    for (let q = 0; q < inner; q++) {
      const base = o * len * inner + q;
      let m = -Infinity;
      for (let k = 0; k < len; k++) m = Math.max(m, x.data[base + k * inner]!);
      let s = 0;
      for (let k = 0; k < len; k++) s += Math.exp(x.data[base + k * inner]! - m);
      for (let k = 0; k < len; k++) {
        const z = x.data[base + k * inner]! - m;
        out.data[base + k * inner] = log ? z - Math.log(s) : Math.exp(z) / s;
      }
    }
  return out;
}

export function inversePerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

function addInto(a: NDArray, b: NDArray): NDArray {
  return K.map(a.shape, [a, b], (x, y) => x + y);
}

export function isF32(t: TensorType): boolean {
  return t.dtype === 'f32';
}

export const DTYPES: readonly DType[] = ['f32', 'i32'];
