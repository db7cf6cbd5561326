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
import { asDim, divSize, numelSize } from './dims.js';
import type { ConcreteType, TensorType, ValueId } from './types.js';
import { formatType, sameShape } from './types.js';
import type { ConvAttrs, ConvInputGradAttrs, ConvWeightGradAttrs, PoolAttrs, PoolGradAttrs } from './conv.js';
import { erf } from './special.js';
import { INDEX_OPS } from './indexops.js';
import { CONV_OPS, FUSED_OPS } from './ops-fused.js';
import { f32, fitsIn, needF32 } from './op-checks.js';

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
   * total derivative through mean and inv: no gradient flows to them separately. `axis`: the
   * feature axis (default the last; the statistics are over every other axis, kept as 1s);
   * `correction`: the variance's divisor is n − correction (default 1, 0 as torch.nn.BatchNorm).
   */
  bn_apply: { axis?: number; correction?: number };
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
  // regions (ir/scan.ts)
  /**
   * jax.lax.scan over the graph's region `body` (Graph.bodies): operands are the initial carries
   * (`carries` of them), the xs (one per `xaxes` entry, sliced along it) and the values the step
   * closes over; the body's results are the new carries, then one y per `yaxes` entry (stacked
   * along it), `length` ([n]) steps, from the end with `reverse`. Its own value is a token
   * (f32[0]); `scan_out` reads its results.
   */
  scan: { body: number; carries: number; length: Dim[]; xaxes: number[]; yaxes: number[]; reverse?: true };
  /** Result `index` of a scan: the final carries, then the stacked ys. */
  scan_out: { index: number };
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
    // [..., m, k] × [k, n]: fold the batch into the rows instead of summing per-batch products
    // (a symbolic batch's rows one product dimension, B*64)
    const k = c.xt(0).shape.at(-1)!;
    const n = c.yt.shape.at(-1)!;
    const rows = asDim(divSize(numelSize(c.xt(0).shape), k)!);
    const A2 = () => b.reshape(A(), [rows, k]);
    const dC2 = () => b.reshape(dy, [rows, n]);
    dB = transB ? () => b.matmul(dC2(), A2(), true, false) : () => b.matmul(A2(), dC2(), true, false);
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

  // the index ops, softmax, cross-entropy and the normalisations (ir/ops-fused.ts)
  ...FUSED_OPS,
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
  // regions: their types, gradients and evaluation need the region (ir/scan.ts): the verifier,
  // the reverse pass and the interpreter handle them there; the declared type is the result's
  scan: {
    category: 'layout',
    attrs: { body: 'int', carries: 'int', length: 'dims', xaxes: 'ints', yaxes: 'ints', reverse: 'flag' },
    arity: 'variadic',
    shape: null,
    grad: () => {
      throw new Error('internal: a scan is differentiated by the reverse pass (ir/scan-grad.ts)');
    },
    eval: null,
  },
  scan_out: {
    category: 'layout',
    attrs: { index: 'int' },
    arity: 1,
    shape: null,
    grad: () => {
      throw new Error('internal: a scan_out is differentiated with its scan (ir/scan-grad.ts)');
    },
    eval: null,
  },
  // convolutions and pooling (ir/ops-fused.ts)
  ...CONV_OPS,
  ...INDEX_OPS,
};

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

