// The model DSL (public contract). A model file default-exports `model(name, fn)`; `graphc
// build` calls `fn(g)` with a tracer that records every call as typed SSA instructions.

import { Builder } from '../ir/builder.js';
import * as C from '../ir/composite.js';
import * as VC from '../ir/vocab.js';
import * as DV from './vocab.js';
import * as LY from './layers.js';
import type { ConvTranspose1dOptions, ConvTranspose2dOptions, GroupNormOptions, UpsampleOptions } from './layers.js';
export type { ConvTranspose1dOptions, ConvTranspose2dOptions, GroupNormOptions, UpsampleOptions } from './layers.js';
import * as IX from './indexops.js';
import * as DC from './declare.js';
import { traceCustomGrad, traceGrad } from './grad-calls.js';
import * as CV from './conv.js';
import type { Conv1dOptions, Conv2dOptions, Pair, Pool1dOptions, Pool2dOptions } from './conv.js';
import { CompileError } from '../ir/errors.js';
import { optionsOf } from './options.js';
import type { Frame, Scope, ScopeTracker } from './scopes.js';
import type { Dim } from '../ir/dims.js';
import { Graph } from '../ir/graph.js';
import type { Init } from '../ir/ops.js';
import type { FanInit } from '../ir/init.js';
import { normalizeAxes } from '../ir/shape.js';
import type { DType, Loc, ValueId } from '../ir/types.js';
import { formatLoc, formatType } from '../ir/types.js';

export type { DType } from '../ir/types.js';
export type { Conv1dOptions, Conv2dOptions, Pair, Pool1dOptions, Pool2dOptions } from './conv.js';
export type { BceOptions, ClassLossOptions, CosineSimilarityOptions, HuberLossOptions, NormalizeOptions, ReductionOptions, VarianceOptions } from './vocab.js';
import type { BceOptions, ClassLossOptions, CosineSimilarityOptions, HuberLossOptions, NormalizeOptions, ReductionOptions, VarianceOptions } from './vocab.js';
import { traceScan } from './scan.js';
import type { ScanOptions, ScanTree } from './scan.js';
export type { ScanOptions, ScanTree } from './scan.js';
import { axisArg, checkShape, describe, epsOf, tensorList } from './dsl-args.js';
/** Wherever a tensor operand is accepted, a plain number is too (a constant). */
export type TensorLike = Tensor | number;
/** An axis or several; negative axes count from the end. */
export type Axis = number | readonly number[];

/** `g.param`'s initialisers: 'kaimingUniform' and the like follow torch.nn.init, the fans of a 2-D param [in, out] (x @ W) being shape[0] and shape[1]. */
export type ParamInit = Init | FanInit;

/** Options of `g.param`. */
export interface ParamOptions {
  /** Initial values: N(0,1), 0, 1 or U(−1,1), or torch.nn.init's kaiming/xavier formulas, times `scale`. Default 'randn'. */
  init?: ParamInit;
  /** xavier's gain (default 1). */
  gain?: number;
  /** kaiming's negative slope a (default 0: the gain √2 of relu). */
  a?: number;
  /** Multiplies the initial values. Default 1. */
  scale?: number;
  /**
   * false: a frozen param (torch's requires_grad = False): no gradient (it is not in `Grads`) and
   * no update in trainStep. Default true.
   */
  trainable?: boolean;
  /** This param's weight decay in the training step, instead of the optimizer's (--weight-decay, --no-decay-1d). */
  weightDecay?: number;
  /**
   * Multiplies this param's learning rate in the training step (scheduled or given), and with it its
   * decoupled weight decay, as the lr of a torch param group. Default 1.
   */
  lrScale?: number;
}

export interface InputOptions {
  /** Also return the loss's gradient with respect to this input, in `grads` under its name. */
  grad?: boolean;
}

/** Options of `g.batchNorm`. */
export interface BatchNormOptions {
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /**
   * Keep running statistics (torch.nn.BatchNorm1d's `momentum`): buffers `<name>.running_mean`
   * and `<name>.running_var`, new = (1 − momentum)·old + momentum·batch statistic, used by
   * evaluation calls. Without it batchNorm normalises with batch statistics in every call.
   */
  momentum?: number;
  /** The buffers' prefix (default: the name of the `const` the result is assigned to). */
  name?: string;
  /** The feature axis (default −1, the last): 1 for NCHW as torch's BatchNorm2d; the statistics are over every other axis. */
  axis?: number;
  /** The variance's divisor n − correction: 1 (default, the lecture's Bessel's correction) or 0 (torch.nn.BatchNorm's normalisation; its running_var stays unbiased). */
  correction?: 0 | 1;
}

/** Options of `g.layerNorm`. */
export interface LayerNormOptions {
  eps?: number;
}

/** What a model function returns: the scalar f32 loss, or an object of named outputs holding `loss` (without one: a forward-only model, no gradient). */
export type ModelOutputs = Tensor | Readonly<Record<string, Tensor>>;
/** The body of a model: traced once by `graphc build`, with `g` to declare inputs and params and call ops. */
export type ModelFn = (g: GraphBuilder) => ModelOutputs;

const MODEL = Symbol.for('graphc.model');

/** What `model(name, fn)` returns: the default export of a model file. */
export interface ModelDef {
  readonly [MODEL]: true;
  readonly name: string;
  readonly fn: ModelFn;
}

/** Declares a model. The default export of a model file. */
export function model(name: string, fn: ModelFn): ModelDef {
  checkModelFn(fn);
  return { [MODEL]: true, name, fn };
}

/** Throws unless fn can be the function of model(name, fn); model(...) leaves the location to the loader. */
export function checkModelFn(fn: unknown, loc?: Loc): asserts fn is ModelFn {
  if (typeof fn !== 'function')
    throw new CompileError(
      `model: the second argument must be a function (g) => { ... }, got ${describe(fn)}`,
      "pass the function that builds the model from g, e.g. export default model('name', (g) => { ...; return { loss }; })",
      loc,
    );
}

export function isModelDef(x: unknown): x is ModelDef {
  return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[MODEL] === true;
}

/** Where a DSL call was made, and which `const` it is assigned to (supplied by the loader). */
export interface CallSites {
  /** The location of the innermost user frame of the current call stack. */
  here(): Loc | undefined;
  /**
   * The current DSL call's location and the variable its value is assigned to: at the call, or,
   * when its function returns the value, where the function's caller assigns the result (up
   * through helpers that return it: `const q = heads(query(a))` names what `heads` returns).
   */
  current(): { loc?: Loc; name?: string };
  /** The user frames of the current call stack, innermost first (for `graphc graph`'s clusters). */
  frames?(): Frame[];
}

const TRACER = Symbol('tracer');

/** A traced tensor: a value of the graph under construction. */
export class Tensor {
  /** @internal */
  readonly [TRACER]: Tracer;
  /** @internal */
  readonly id: ValueId;

  /** @internal */
  constructor(tracer: Tracer, id: ValueId) {
    this[TRACER] = tracer;
    this.id = id;
  }

  /** The sizes of the dimensions; a tensor with a symbolic dimension has `dims` instead. */
  get shape(): number[] {
    const t = this[TRACER].graph.type(this.id);
    if (t.shape.some((d) => typeof d === 'string'))
      throw new CompileError(
        `shape: ${formatType(t)} has a symbolic dimension, whose size is not known at build time`,
        "read tensor.dims, whose entries are sizes or the names of symbolic dimensions (['B', 30])",
        this[TRACER].here(),
      );
    return [...(t.shape as number[])];
  }

  /** The dimensions: sizes, and the names of symbolic ones (`['B', 30]`). */
  get dims(): Dim[] {
    return [...this[TRACER].graph.type(this.id).shape];
  }

  /** The element type: `'f32'` or `'i32'`. */
  get dtype(): DType {
    return this[TRACER].graph.type(this.id).dtype;
  }

  private op(f: (b: Builder, t: Tracer) => ValueId): Tensor {
    const t = this[TRACER];
    return t.call(() => f(t.b, t));
  }

  /** this + o, broadcasting as NumPy does. */
  add(o: TensorLike): Tensor {
    return this.op((b, t) => b.add(this.id, t.operand(o)));
  }
  /** this − o, broadcasting. */
  sub(o: TensorLike): Tensor {
    return this.op((b, t) => b.sub(this.id, t.operand(o)));
  }
  /** this · o elementwise, broadcasting. */
  mul(o: TensorLike): Tensor {
    return this.op((b, t) => b.mul(this.id, t.operand(o)));
  }
  /** this / o, broadcasting. */
  div(o: TensorLike): Tensor {
    return this.op((b, t) => b.div(this.id, t.operand(o)));
  }
  /** this ** o, broadcasting. */
  pow(o: TensorLike): Tensor {
    return this.op((b, t) => b.pow(this.id, t.operand(o)));
  }
  /** The elementwise maximum; a tie gives the whole gradient to this (the first operand): graphc's choice, where PyTorch splits it evenly. */
  maximum(o: TensorLike): Tensor {
    return this.op((b, t) => b.maximum(this.id, t.operand(o)));
  }
  /** The elementwise minimum; a tie gives the whole gradient to this (the first operand): graphc's choice, where PyTorch splits it evenly. */
  minimum(o: TensorLike): Tensor {
    return this.op((b, t) => b.minimum(this.id, t.operand(o)));
  }

  /** −this. */
  neg(): Tensor {
    return this.op((b) => b.neg(this.id));
  }
  /** e^this. */
  exp(): Tensor {
    return this.op((b) => b.exp(this.id));
  }
  /** The natural logarithm. */
  log(): Tensor {
    return this.op((b) => b.log(this.id));
  }
  /** tanh; its gradient is computed from the output (1 − y²). */
  tanh(): Tensor {
    return this.op((b) => b.tanh(this.id));
  }
  /** σ(this) = 1 / (1 + e^−this); its gradient is computed from the output (y·(1 − y)). */
  sigmoid(): Tensor {
    return this.op((b) => b.sigmoid(this.id));
  }
  /** max(this, 0); no gradient at 0, as PyTorch. */
  relu(): Tensor {
    return this.op((b) => b.relu(this.id));
  }
  /** The square root. */
  sqrt(): Tensor {
    return this.op((b) => b.sqrt(this.id));
  }
  /** this². */
  square(): Tensor {
    return this.op((b) => b.square(this.id));
  }
  /** |this|. */
  abs(): Tensor {
    return this.op((b) => b.abs(this.id));
  }

  /** The sum over `axis` (a number, an array, or omitted for every axis), keeping the reduced axes as size 1 with `keepDims`. */
  sum(axis?: Axis, keepDims = false): Tensor {
    return this.op((b) => b.sum(this.id, normalizeAxes('sum', axisArg('sum', axis), this.dims.length), keepDims));
  }
  /** The mean over `axis` (as `sum`); over a symbolic dimension it divides by the size bound by the call. */
  mean(axis?: Axis, keepDims = false): Tensor {
    return this.op((b) => C.mean(b, this.id, normalizeAxes('mean', axisArg('mean', axis), this.dims.length), keepDims));
  }
  /** The maximum over `axis` (as `sum`); the whole gradient goes to the first argmax: graphc's choice, where PyTorch's `amax` splits it evenly among ties. */
  max(axis?: Axis, keepDims = false): Tensor {
    return this.op((b) => b.max(this.id, normalizeAxes('max', axisArg('max', axis), this.dims.length), keepDims));
  }

  /** The matrix product: `[m, k] × [k, n]`, `[..., m, k] × [k, n]` or `[..., m, k] × [..., k, n]`. */
  matmul(o: Tensor): Tensor {
    return this.op((b, t) => b.matmul(this.id, t.operand(o, 'matmul')));
  }
  /** Permutes the axes by `perm` (default: swaps the last two). */
  transpose(perm?: readonly number[]): Tensor {
    return this.op((b) => {
      const r = this.dims.length;
      if (perm === undefined && r < 2)
        throw new CompileError(`transpose: ${formatType(b.type(this.id))} has fewer than two axes to swap`, 'pass a permutation, or reshape first');
      const p = perm ? [...perm] : [...Array(r).keys()].map((i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i));
      return b.transpose(this.id, p);
    });
  }
  /**
   * `length` entries of `axis` from `start` (torch.narrow): `x.narrow(1, t, 1)` is x[:, t:t+1].
   * The rank stays; its gradient puts dy back in place among zeros.
   */
  narrow(axis: number, start: number, length: number): Tensor {
    return this.op((b) => {
      const t = b.type(this.id);
      const [a] = normalizeAxes('narrow', axis, t.shape.length) as [number];
      const d = t.shape[a]!;
      if (typeof d === 'string')
        throw new CompileError(`narrow: axis ${a} of ${formatType(t)} has the symbolic size ${d}`, 'narrow an axis whose size is known at build time');
      if (!Number.isInteger(length) || length < 1) throw new CompileError(`narrow: length ${length} is not a positive integer`, 'take at least one entry');
      if (!Number.isInteger(start) || start < 0 || start >= d)
        throw new CompileError(`narrow: start ${start} is not an index of axis ${a} of ${formatType(t)}`, `start at an index in 0..${d - 1}`);
      if (start + length > d)
        throw new CompileError(
          `narrow: start ${start} and length ${length} reach past the end of axis ${a} of ${formatType(t)}, whose size is ${d}`,
          `start + length must be at most ${d}`,
        );
      return b.slice(this.id, t.shape.map((_d, i) => (i === a ? start : 0)), t.shape.map((s, i) => (i === a ? length : s)));
    });
  }
  /** The same elements in another shape; one entry may be −1 (inferred), and a symbolic dimension stays an axis of its own (`['B', -1]`). */
  reshape(shape: readonly Dim[]): Tensor {
    return this.op((b) => b.reshape(this.id, checkShape('reshape', shape, { wild: true, symbols: true })));
  }
  /** The same values, through which no gradient flows (`torch.Tensor.detach`). */
  stopGradient(): Tensor {
    return this.op((b) => b.stopGradient(this.id));
  }

  // PyTorch's vocabulary (composites of the primitives: ir/vocab.ts)
  /** x·σ(x) (`F.silu`). */
  silu(): Tensor { return this.op((b) => VC.silu(b, this.id)); }
  /** log σ(x), computed as −softplus(−x) without overflow (`F.logsigmoid`). */
  logSigmoid(): Tensor { return this.op((b) => VC.logSigmoid(b, this.id)); }
  /** (1/β)·log(1 + e^{βx}), and x where βx > threshold (`F.softplus`). */
  softplus(beta = 1, threshold = 20): Tensor { return this.op((b) => DV.softplus(b, this.id, beta, threshold)); }
  /** x where x > 0, else slope·x; the gradient at 0 is slope, as PyTorch (`F.leaky_relu`). */
  leakyRelu(slope = 0.01): Tensor { return this.op((b) => VC.leakyRelu(b, this.id, DV.num('leakyRelu', 'slope', slope, 0.01, 'a finite number'))); }
  /** x where x > 0, else α(e^x − 1) (`F.elu`). */
  elu(alpha = 1): Tensor { return this.op((b) => VC.elu(b, this.id, DV.num('elu', 'alpha', alpha, 1, 'a finite number'))); }
  /** x limited to [min, max] (either may be omitted); the gradient passes where min ≤ x ≤ max (`torch.clamp`). */
  clamp(min?: number, max?: number): Tensor { return this.op((b) => DV.clamp(b, this.id, min, max)); }
  /** 1/√x. */
  rsqrt(): Tensor { return this.op((b) => VC.rsqrt(b, this.id)); }
  /** x·Φ(x) = ½·x·(1 + erf(x/√2)) (`F.gelu`); `'tanh'`: ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), GPT-2's. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return this.op((b) => DV.gelu(b, this.id, approximate)); }
  /** sin(this); its gradient cos. */
  sin(): Tensor { return this.op((b) => b.sin(this.id)); }
  /** cos(this); its gradient −sin. */
  cos(): Tensor { return this.op((b) => b.cos(this.id)); }
  /** The error function 2/√π·∫₀ˣ e^(−t²) dt (`torch.erf`); its gradient 2/√π·e^(−x²). */
  erf(): Tensor { return this.op((b) => b.erf(this.id)); }
  /** log(1 + this), exact for small |this| (`torch.log1p`). */
  log1p(): Tensor { return this.op((b) => b.log1p(this.id)); }
  /** e^this − 1, exact for small |this| (`torch.expm1`); its gradient from the output (y + 1). */
  expm1(): Tensor { return this.op((b) => b.expm1(this.id)); }
  /** An f32 mask, 1 where this > o, else 0; no gradient flows through it. */
  gt(o: TensorLike): Tensor { return this.op((b, t) => VC.compare(b, 'gt', this.id, t.operand(o))); }
  /** An f32 mask, 1 where this ≥ o, else 0; no gradient. */
  ge(o: TensorLike): Tensor { return this.op((b, t) => VC.compare(b, 'ge', this.id, t.operand(o))); }
  /** An f32 mask, 1 where this < o, else 0; no gradient. */
  lt(o: TensorLike): Tensor { return this.op((b, t) => VC.compare(b, 'lt', this.id, t.operand(o))); }
  /** An f32 mask, 1 where this ≤ o, else 0; no gradient. */
  le(o: TensorLike): Tensor { return this.op((b, t) => VC.compare(b, 'le', this.id, t.operand(o))); }
  /** An f32 mask, 1 where this = o, else 0 (NaN equals nothing); no gradient. */
  eq(o: TensorLike): Tensor { return this.op((b, t) => VC.compare(b, 'eq', this.id, t.operand(o))); }
  /** An f32 mask, 1 where this ≠ o, else 0; no gradient. */
  ne(o: TensorLike): Tensor { return this.op((b, t) => VC.compare(b, 'ne', this.id, t.operand(o))); }
  /** `value` where the f32 `mask` is nonzero, this elsewhere (`masked_fill`); the gradient flows where the mask is 0. */
  maskedFill(mask: Tensor, value: number): Tensor { return this.op((b, t) => DV.maskedFill(b, this.id, t.operand(mask, 'maskedFill'), value)); }
  /** The minimum over `axis` (as `sum`); the whole gradient goes to the first argmin (`torch.amin`, graphc's tie rule as `max`). */
  min(axis?: Axis, keepDims = false): Tensor { return this.op((b) => VC.min(b, this.id, DV.axes('min', axis, this.dims.length), keepDims)); }
  /** log Σ e^x over `axis`, shifted by the maximum for stability (`torch.logsumexp`). */
  logsumexp(axis: Axis, keepDims = false): Tensor { return this.op((b) => VC.logsumexp(b, this.id, DV.axes('logsumexp', axis, this.dims.length, true), keepDims)); }
  /** The variance over `axis` (all when omitted), Σ(x − mean)² / (n − correction), correction 1 by default (`torch.var`). */
  var(axis?: Axis, options: VarianceOptions = {}): Tensor { return this.op((b) => DV.variance(b, 'var', this.id, axis, options)); }
  /** The square root of `var` (`torch.std`). */
  std(axis?: Axis, options: VarianceOptions = {}): Tensor { return this.op((b) => DV.variance(b, 'std', this.id, axis, options)); }
  /** Pieces along `axis` of the given sizes, or of `sizes` entries each and the rest (`torch.split`). */
  split(sizes: number | readonly number[], axis = 0): Tensor[] { return this[TRACER].calls(() => DV.split(this[TRACER].b, this.id, sizes, axis)); }
  /** `n` pieces along `axis` of ⌈size/n⌉ entries, the last the rest, possibly fewer pieces (`torch.chunk`). */
  chunk(n: number, axis = 0): Tensor[] { return this[TRACER].calls(() => DV.chunk(this[TRACER].b, this.id, n, axis)); }
  /** A new axis of size 1 at `axis` (−1: last) (`torch.unsqueeze`). */
  unsqueeze(axis: number): Tensor { return this.op((b) => DV.unsqueeze(b, this.id, axis)); }
  /** Without `axis` (a number or array) if its size is 1, else unchanged; without it, without every axis of size 1 (`torch.squeeze`). */
  squeeze(axis?: Axis): Tensor { return this.op((b) => DV.squeeze(b, this.id, axis)); }
  /** Size-1 axes repeated to `shape` (−1 keeps an axis; new leading axes allowed); the gradient sums back (`torch.expand`). */
  expand(shape: readonly Dim[]): Tensor { return this.op((b) => DV.expand(b, this.id, shape)); }
  // the index primitives (src/indexops.ts)
  /** The i32 index of the first maximum along `axis` (of the first NaN where there is one), as `torch.argmax`; no gradient. */
  argmax(axis: number, keepDims = false): Tensor { return this.op((b) => IX.argExtremum(b, 'argmax', this.id, axis, keepDims)); }
  /** The i32 index of the first minimum along `axis` (of the first NaN where there is one), as `torch.argmin`; no gradient. */
  argmin(axis: number, keepDims = false): Tensor { return this.op((b) => IX.argExtremum(b, 'argmin', this.id, axis, keepDims)); }
  /** Running sums along `axis` (`torch.cumsum`), in float64 on the CPU targets; the gradient is the reversed cumsum of dy. */
  cumsum(axis: number): Tensor { return this.op((b) => IX.cumsum(b, this.id, axis)); }
  /** The order of `axes` (a number or an array; sizes known at build time) reversed (`torch.flip`). */
  flip(axes: Axis): Tensor { return this.op((b) => IX.flip(b, this.id, axes)); }
  /** The values as f32 (`torch.Tensor.float`): i32 indices become numbers (exact below 2²⁴); no gradient flows through it. */
  float(): Tensor { return this.op((b) => IX.float(b, this.id)); }
}

/** The `g` a model function receives. */
export interface GraphBuilder {
  /** A dimension may be a name (`['B', 3]`): its size is bound by each call, from the inputs' lengths. */
  /** `{ grad: true }`: valueAndGrad also returns the gradient of the loss with respect to this (f32) input. */
  input(name: string, shape: readonly Dim[], dtype?: DType, options?: InputOptions): Tensor;
  /** A trainable f32 parameter named `name`, initialised by `initParams(seed)` as `options` says (default randn, scale 1); gradients are taken with respect to every param but a frozen one (`trainable: false`), and `weightDecay`, `lrScale` tune its update in trainStep. */
  param(name: string, shape: readonly number[], options?: ParamOptions): Tensor;
  /** A constant: a number or nested arrays of numbers; `'i32'` makes integer indices or labels. */
  const(value: number | NestedNumbers, dtype?: DType): Tensor;
  /** The i32 vector 0, 1, … n − 1 (`torch.arange(n)`); `n` a positive integer or an input's symbolic dimension (`g.arange('T')`). */
  arange(n: Dim): Tensor;
  /** The rows of `table` at the i32 `indices` (`C[Xb]`): shape `[...indices, ...table.shape.slice(1)]`. */
  gather(table: Tensor, indices: Tensor): Tensor;
  /** One entry of each row of `x [n, c]` at the i32 `indices [n]` (`x[range(n), indices]`). */
  pick(x: Tensor, indices: Tensor): Tensor;
  /** The f32 one-hot encoding of the i32 `indices`, `depth` classes on a new last axis. */
  oneHot(indices: Tensor, depth: number): Tensor;
  /** The tensors joined along `axis`. */
  concat(tensors: readonly Tensor[], axis: number): Tensor;
  /** exp(x − max) / Σ exp(x − max) along `axis` (default −1). */
  softmax(x: Tensor, axis?: number): Tensor;
  /** log(softmax(x)) along `axis` (default −1), computed stably. */
  logSoftmax(x: Tensor, axis?: number): Tensor;
  /**
   * The cross-entropy of `logits [n, classes]` (or `[n, t, classes]`) against the i32 class `targets [n]` (or `[n, t]`), averaged over every position (`F.cross_entropy`);
   * options as torch's: the class `axis` (default −1; torch's layout is `{ axis: 1 }`), `ignoreIndex`, `labelSmoothing`, class `weight`, `reduction`.
   */
  crossEntropy(logits: Tensor, targets: Tensor, options?: ClassLossOptions<Tensor>): Tensor;
  /** −Σ w[y]·logProbs[y] over the positions, with crossEntropy's options (`F.nll_loss`; labelSmoothing as F.cross_entropy's). */
  nllLoss(logProbs: Tensor, targets: Tensor, options?: ClassLossOptions<Tensor>): Tensor;
  /** (a − b)², reduced (default: the mean; `F.mse_loss`). */
  mseLoss(a: Tensor, b: TensorLike, options?: ReductionOptions): Tensor;
  /** |a − b|, reduced (`F.l1_loss`). */
  l1Loss(a: Tensor, b: TensorLike, options?: ReductionOptions): Tensor;
  /** ½d² where |d| < delta, else delta·(|d| − ½delta), d = a − b, reduced (`F.huber_loss`). */
  huberLoss(a: Tensor, b: TensorLike, options?: HuberLossOptions): Tensor;
  /** −w·(t·log p + (1 − t)·log(1 − p)) with each log clamped at −100 as torch, reduced (`F.binary_cross_entropy`). */
  binaryCrossEntropy(probs: Tensor, targets: TensorLike, options?: BceOptions<Tensor>): Tensor;
  /** The same from logits, in the stable form (1 − t)·x + (1 + (posWeight − 1)·t)·softplus(−x) (`F.binary_cross_entropy_with_logits`). */
  binaryCrossEntropyWithLogits(logits: Tensor, targets: TensorLike, options?: BceOptions<Tensor>): Tensor;
  /** a where the f32 `cond` is nonzero, else b, broadcasting (`torch.where`); the gradient goes to a where cond holds, to b elsewhere. */
  where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor;
  /** The tensors (of one shape) joined along a new axis `axis` (default 0; `torch.stack`). */
  stack(tensors: readonly Tensor[], axis?: number): Tensor;
  /** x with `pads[i] = [before, after]` entries of `value` (default 0) around axis i, one pair per axis from axis 0 (F.pad lists pairs from the last axis). */
  pad(x: Tensor, pads: readonly (readonly [number, number])[], value?: number): Tensor;
  /** torch.einsum's notation (`'bij,bjk->bik'`), without `...` and repeated letters in one operand; built from transposes, matmuls, products and sums. */
  einsum(spec: string, ...xs: Tensor[]): Tensor;
  /** x / max(‖x‖_p, eps) along `axis` (`F.normalize`; defaults p 2, axis −1, eps 1e-12). */
  normalize(x: Tensor, options?: NormalizeOptions): Tensor;
  /** The cosine of the angle between a and b along `axis`, each norm floored at eps (`F.cosine_similarity`; defaults axis −1, eps 1e-8). */
  cosineSimilarity(a: Tensor, b: Tensor, options?: CosineSimilarityOptions): Tensor;
  /** Batch normalisation over every axis but the feature axis (by default the last: axis 0 of `[n, features]`, axes 0 and 1 of `[n, t, features]`; `{ axis: 1 }` for NCHW as BatchNorm2d), the variance with Bessel's correction (n − 1) as in the lecture or, `{ correction: 0 }`, divided by n as torch, then `gain · x̂ + bias`; with `momentum`, running statistics (see BatchNormOptions). */
  batchNorm(x: Tensor, gain: TensorLike, bias: TensorLike, options?: BatchNormOptions): Tensor;
  /**
   * Inverted dropout (torch.nn.functional.dropout): in a training call each element is zeroed
   * with probability p and the others scaled by 1/(1 − p); in evaluation it is the identity.
   */
  dropout(x: Tensor, p: number): Tensor;
  /** Layer normalisation over the last k axes, k the rank of gain (its leading 1s aside; torch.nn.LayerNorm's normalized_shape: a number gain, the last axis), the variance divided by n, then `gain · x̂ + bias`. */
  layerNorm(x: Tensor, gain: TensorLike, bias: TensorLike, options?: LayerNormOptions): Tensor;
  /** The multiclass SVM loss of `scores [n, classes]` against the i32 `targets [n]`: the mean over rows of Σ_{j ≠ y} max(0, s_j − s_y + margin) (default margin 1). */
  hingeLoss(scores: Tensor, targets: Tensor, margin?: number): Tensor;
  /**
   * The gradients dy/dx of the f32 scalar y with respect to each x (a param, an input or an
   * intermediate value), as tensors of the model: usable in the rest of it and in the loss, and
   * differentiable again (a gradient of a gradient). An x that y does not depend on gets zeros.
   */
  grad(y: Tensor, xs: readonly Tensor[]): Tensor[];
  /**
   * A function usable like any op whose gradient is `backward` instead of the derivative of
   * `forward` (torch.autograd.Function, jax.custom_vjp): `backward(xs, y, dy)` returns one
   * gradient per x, shaped like it (null for none). Both are traced into the IR; the backward is
   * itself differentiable when it is written with differentiable ops.
   */
  customGrad(
    forward: (...xs: Tensor[]) => Tensor,
    backward: (xs: Tensor[], y: Tensor, dy: Tensor) => readonly (Tensor | null | undefined)[],
  ): (...xs: TensorLike[]) => Tensor;
  /** x [N, C, H, W], weight [O, C/groups, kH, kW], bias [O] → [N, O, Ho, Wo] (PyTorch's conv2d). */
  conv2d(x: Tensor, weight: Tensor, options?: Conv2dOptions<Tensor>): Tensor;
  /** x [N, C, L], weight [O, C/groups, k], bias [O] → [N, O, Lo] (PyTorch's conv1d). */
  conv1d(x: Tensor, weight: Tensor, options?: Conv1dOptions<Tensor>): Tensor;
  /** Max pooling of `x [N, C, H, W]` (`F.max_pool2d`); padding counts as −∞. */
  maxPool2d(x: Tensor, kernel: Pair, options?: Pool2dOptions): Tensor;
  /** Average pooling of `x [N, C, H, W]` (`F.avg_pool2d`). */
  avgPool2d(x: Tensor, kernel: Pair, options?: Pool2dOptions): Tensor;
  /** Max pooling of `x [N, C, L]` (`F.max_pool1d`). */
  maxPool1d(x: Tensor, kernel: number, options?: Pool1dOptions): Tensor;
  /** Average pooling of `x [N, C, L]` (`F.avg_pool1d`). */
  avgPool1d(x: Tensor, kernel: number, options?: Pool1dOptions): Tensor;
  /** Group normalisation of `x [N, C, ...]` (torch.nn.GroupNorm): each of `groups` groups of channels of a sample normalised (variance divided by n), then `gain · x̂ + bias`, gain and bias `[C]`. */
  groupNorm(x: Tensor, groups: number, gain: TensorLike, bias: TensorLike, options?: GroupNormOptions): Tensor;
  /** x [N, C_in, H, W], weight [C_in, C_out/groups, kH, kW] (torch's layout), bias [C_out] → [N, C_out, Ho, Wo], Ho = (H − 1)·stride − 2·padding + dilation·(kH − 1) + outputPadding + 1 (`F.conv_transpose2d`). */
  convTranspose2d(x: Tensor, weight: Tensor, options?: ConvTranspose2dOptions<Tensor>): Tensor;
  /** x [N, C_in, L], weight [C_in, C_out/groups, k], bias [C_out] → [N, C_out, Lo] (`F.conv_transpose1d`). */
  convTranspose1d(x: Tensor, weight: Tensor, options?: ConvTranspose1dOptions<Tensor>): Tensor;
  /** `x [N, C, H, W]` resized by `scale`, 'nearest' (default) or 'bilinear' (`F.interpolate(x, scale_factor=..., mode=..., align_corners=...)`). */
  upsample(x: Tensor, options: UpsampleOptions): Tensor;
  /** `x [N, C, H, W]` → `[N, C, oh, ow]`, output i the mean of rows ⌊i·H/oh⌋ to ⌈(i + 1)·H/oh⌉ − 1, the same along W (`F.adaptive_avg_pool2d`). */
  adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor;
  /**
   * jax.lax.scan: `step(carry, x)` returns `[newCarry, y]`; the xs are sliced along `axis`
   * (default 0), the ys stacked along it; returns `[finalCarry, ys]`. Carries are a tensor or an
   * array of tensors, xs and ys also null. The step is traced once (src/scan.ts, docs/dsl.md).
   */
  scan<C extends ScanTree, Y extends ScanTree = Tensor>(step: (carry: C, x: any) => readonly [C, Y] | readonly ScanTree[], init: C, xs: ScanTree, options?: ScanOptions): [C, Y];
}

/** A number array of any depth, as `g.const` takes it (`[[1, 2], [3, 4]]`). */
export type NestedNumbers = readonly (number | NestedNumbers)[];

/** Records DSL calls into a forward graph. */
export class Tracer {
  readonly graph: Graph;
  readonly b: Builder;
  /** Param and input names, with where they were declared. */
  readonly declared = new Map<string, { kind: 'param' | 'input'; loc: Loc | undefined }>();
  /** Module buffers (running statistics) by name, with where they were declared. */
  readonly buffers = new Map<string, Loc | undefined>();
  /** The next value of each buffer after a training call: extra forward outputs named after the buffer. */
  readonly bufferUpdates: { name: string; value: ValueId }[] = [];
  /** Dropout calls so far: each is a site of its own, with a mask of its own. */
  private dropoutSites = 0;
  private depth = 0;
  /** With a tracker (`graphc graph`): the helper call or loop iteration each instruction was made in. */
  scopes?: ScopeTracker;
  readonly scopeOf = new Map<number, Scope>();

  constructor(
    name: string,
    private readonly sites: CallSites,
  ) {
    this.graph = new Graph(name, 'forward');
    this.b = new Builder(this.graph);
  }

  /**
   * Runs one public DSL call. The outermost call captures the caller's location once (nested
   * calls of composite ops inherit it) and names its result after the `const` it is assigned to.
   */
  call(f: (name: string | undefined) => ValueId): Tensor {
    if (this.depth > 0) return new Tensor(this, f(undefined));
    const { loc, name } = this.sites.current();
    this.depth++;
    this.b.loc = loc;
    const scope = this.scopes && this.sites.frames ? this.scopes.enter(this.sites.frames()) : undefined;
    const first = this.graph.insts.length;
    try {
      const v = f(name);
      if (scope) for (const inst of this.graph.insts.slice(first)) this.scopeOf.set(inst.id, scope);
      if (name && this.graph.value(v).temp) this.graph.rename(v, name);
      return new Tensor(this, v);
    } catch (e) {
      throw e instanceof CompileError ? e.withLoc(loc) : e;
    } finally {
      this.depth--;
      this.b.loc = undefined;
    }
  }

  /** A DSL call with several results (split, chunk), located as `call`; `const parts = x.chunk(3)` names them parts_0, parts_1, ... */
  calls(f: () => ValueId[]): Tensor[] {
    let ids: ValueId[] = [];
    let named: string | undefined;
    const temps: boolean[] = [];
    this.call((name) => {
      named = name;
      ids = f();
      for (const id of ids) temps.push(this.graph.value(id).temp === true);
      return ids[0]!;
    });
    if (named) ids.forEach((id, k) => temps[k] && this.graph.rename(id, `${named}_${k}`));
    return ids.map((id) => new Tensor(this, id));
  }

  /** g.grad(y, xs): the reverse pass from y to xs, emitted into the model's graph at the call (src/grad-calls.ts). */
  grad(y: unknown, xs: unknown): Tensor[] {
    return traceGrad(this, y, xs);
  }

  /** g.customGrad(forward, backward): see GraphBuilder.customGrad (src/grad-calls.ts). */
  customGrad(forward: unknown, backward: unknown): (...xs: TensorLike[]) => Tensor {
    return traceCustomGrad(this, forward, backward);
  }

  /** Whether v is a tensor of this model. */
  owns(v: unknown): v is Tensor {
    return v instanceof Tensor && v[TRACER] === this;
  }

  /** Where the DSL call being traced is. */
  callLoc(): Loc | undefined {
    return this.sites.current().loc;
  }

  /** A tensor of this model for a value (g.scan's results). */
  wrap(id: ValueId): Tensor {
    return new Tensor(this, id);
  }

  /** Where the user's code is now (for errors outside DSL calls, such as reading `shape`). */
  here(): Loc | undefined {
    return this.sites.here();
  }

  /** Names a composite op's intermediate after the lecture's vocabulary. */
  readonly hint = (v: ValueId, name: string): ValueId => {
    if (this.graph.value(v).temp) this.graph.rename(v, name);
    return v;
  };

  operand(o: unknown, op?: string): ValueId {
    if (o instanceof Tensor) {
      if (o[TRACER] !== this) throw new CompileError('this tensor belongs to another model', 'create every tensor inside the model function');
      return o.id;
    }
    if (typeof o === 'number' && op === undefined) return this.b.scalar(o);
    throw new CompileError(
      `expected a tensor${op === undefined ? ' or a number' : ''}, got ${describe(o)}`,
      op === undefined ? 'pass a tensor made by g or a plain number' : `${op} takes a tensor; make constants with g.const(...)`,
    );
  }

  declare(kind: 'param' | 'input', name: unknown): string {
    if (typeof name !== 'string' || name.length === 0)
      throw new CompileError(`${kind}: the name must be a non-empty string, got ${describe(name)}`, `give the ${kind} a name, e.g. g.${kind}('W1', ...)`);
    const prev = this.declared.get(name);
    if (prev)
      throw new CompileError(
        `${kind}: the name '${name}' is already used by ${prev.kind === kind ? 'another' : 'a'} ${prev.kind}${prev.loc ? ` at ${formatLoc(prev.loc)}` : ''}`,
        'params and inputs need distinct names, because they are the keys of the generated module’s objects',
      );
    this.declared.set(name, { kind, loc: this.b.loc });
    return name;
  }

  /** The `g` passed to the model function. */
  api(): GraphBuilder {
    const t = this;
    const v = (x: unknown, op?: string) => t.operand(x, op);
    const axisOf = (op: string, x: Tensor, axis: number) => normalizeAxes(op, axis, x.dims.length)[0]!;
    return {
      input: (name, shape, dtype = 'f32', options = {}) => t.call(() => DC.input(t, t.declare('input', name), shape, dtype, options)),
      param: (name, shape, options = {}) => t.call(() => DC.param(t, t.declare('param', name), shape, options)),
      const: (value, dtype = 'f32') => t.call(() => DC.constant(t, value, dtype)),
      arange: (n) => t.call(() => IX.arange(t.b, n)),
      gather: (table, indices) => t.call(() => t.b.gather(v(table, 'gather'), v(indices, 'gather'))),
      pick: (x, indices) => t.call(() => t.b.pick(v(x, 'pick'), v(indices, 'pick'))),
      oneHot: (indices, depth) => t.call(() => t.b.oneHot(v(indices, 'oneHot'), depth)),
      concat: (tensors, axis) =>
        t.call(() => {
          if (!Array.isArray(tensors) || tensors.length === 0)
            throw new CompileError('concat: expected a non-empty array of tensors', 'pass e.g. g.concat([a, b], 1)');
          const ids = tensors.map((x) => v(x, 'concat'));
          return t.b.concat(ids, normalizeAxes('concat', axis, t.graph.type(ids[0]!).shape.length)[0]!);
        }),
      softmax: (x, axis = -1) => t.call(() => C.softmax(t.b, t.hint, v(x, 'softmax'), axisOf('softmax', x, axis))),
      logSoftmax: (x, axis = -1) => t.call(() => C.logSoftmax(t.b, t.hint, v(x, 'logSoftmax'), axisOf('logSoftmax', x, axis))),
      crossEntropy: (logits, targets, options) => t.call(() => DV.classLoss(t.b, t.hint, 'crossEntropy', v(logits, 'crossEntropy'), v(targets, 'crossEntropy'), options, (w) => v(w, 'crossEntropy'))),
      nllLoss: (logProbs, targets, options) => t.call(() => DV.classLoss(t.b, t.hint, 'nllLoss', v(logProbs, 'nllLoss'), v(targets, 'nllLoss'), options, (w) => v(w, 'nllLoss'))),
      mseLoss: (a, b, options) => t.call(() => DV.pairLoss(t.b, 'mseLoss', v(a, 'mseLoss'), v(b), options)),
      l1Loss: (a, b, options) => t.call(() => DV.pairLoss(t.b, 'l1Loss', v(a, 'l1Loss'), v(b), options)),
      huberLoss: (a, b, options) => t.call(() => DV.pairLoss(t.b, 'huberLoss', v(a, 'huberLoss'), v(b), options)),
      binaryCrossEntropy: (p, y, options) => t.call(() => DV.bce(t.b, 'binaryCrossEntropy', v(p, 'binaryCrossEntropy'), v(y), options, (w) => v(w, 'binaryCrossEntropy'))),
      binaryCrossEntropyWithLogits: (x, y, options) =>
        t.call(() => DV.bce(t.b, 'binaryCrossEntropyWithLogits', v(x, 'binaryCrossEntropyWithLogits'), v(y), options, (w) => v(w, 'binaryCrossEntropyWithLogits'))),
      where: (cond, a, b) => t.call(() => VC.where(t.b, v(cond, 'where'), v(a), v(b))),
      stack: (tensors, axis) => t.call(() => DV.stack(t.b, tensorList('stack', tensors).map((x) => v(x, 'stack')), axis)),
      pad: (x, pads, value = 0) => t.call(() => DV.pad(t.b, v(x, 'pad'), pads, value)),
      einsum: (spec, ...xs) => t.call(() => DV.einsum(t.b, spec, xs.map((x) => v(x, 'einsum')))),
      normalize: (x, options) => t.call(() => DV.normalize(t.b, v(x, 'normalize'), options)),
      cosineSimilarity: (a, b, options) => t.call(() => DV.cosineSimilarity(t.b, v(a, 'cosineSimilarity'), v(b, 'cosineSimilarity'), options)),
      batchNorm: (x, gain, bias, options = {}) => t.call((name) => LY.batchNorm(t, v(x, 'batchNorm'), v(gain), v(bias), options, name)),
      dropout: (x, p) =>
        t.call((name) => {
          const xv = v(x, 'dropout');
          const xt = t.graph.type(xv);
          if (xt.dtype !== 'f32')
            throw new CompileError(`dropout: x is ${formatType(xt)} but f32 is needed`, 'dropout zeroes elements of an f32 tensor (activations), not indices');
          if (typeof p !== 'number' || !(p >= 0 && p < 1))
            throw new CompileError(
              `dropout: p must be a number in [0, 1), got ${describe(p)}`,
              'p is the probability that an element is zeroed, e.g. g.dropout(h, 0.1); p = 0 keeps every element',
            );
          if (p === 0) return xv;
          const mask = t.b.dropoutMask(p, t.dropoutSites++, xt.shape, { raw: name ? `${name}_mask` : 'dropout_mask' });
          return t.b.mul(xv, mask);
        }),
      layerNorm: (x, gain, bias, options = {}) =>
        t.call(() => LY.layerNorm(t.b, t.hint, v(x, 'layerNorm'), v(gain), v(bias), epsOf('layerNorm', optionsOf('layerNorm', 'g.layerNorm', options, ['eps'], 'g.layerNorm(x, gain, bias, { eps: 1e-5 })').eps))),
      hingeLoss: (scores, targets, margin = 1) =>
        t.call(() => C.hingeLoss(t.b, t.hint, v(scores, 'hingeLoss'), v(targets, 'hingeLoss'), margin)),
      grad: (y, xs) => t.grad(y, xs),
      customGrad: (forward, backward) => t.customGrad(forward, backward),
      conv2d: (x, weight, options = {}) =>
        t.call(() => {
          const o = CV.convOptions('conv2d', options);
          return CV.conv(t.b, 'conv2d', v(x, 'conv2d'), v(weight, 'conv2d'), o.bias === undefined ? undefined : v(o.bias, 'conv2d'), o);
        }),
      conv1d: (x, weight, options = {}) =>
        t.call(() => {
          const o = CV.convOptions('conv1d', options);
          return CV.conv(t.b, 'conv1d', v(x, 'conv1d'), v(weight, 'conv1d'), o.bias === undefined ? undefined : v(o.bias, 'conv1d'), o);
        }),
      maxPool2d: (x, kernel, options = {}) => t.call(() => CV.pool(t.b, 'maxPool2d', v(x, 'maxPool2d'), kernel, CV.poolOptions('maxPool2d', options))),
      avgPool2d: (x, kernel, options = {}) => t.call(() => CV.pool(t.b, 'avgPool2d', v(x, 'avgPool2d'), kernel, CV.poolOptions('avgPool2d', options))),
      maxPool1d: (x, kernel, options = {}) => t.call(() => CV.pool(t.b, 'maxPool1d', v(x, 'maxPool1d'), kernel, CV.poolOptions('maxPool1d', options))),
      avgPool1d: (x, kernel, options = {}) => t.call(() => CV.pool(t.b, 'avgPool1d', v(x, 'avgPool1d'), kernel, CV.poolOptions('avgPool1d', options))),
      ...LY.layerMethods(t, v),
      scan: ((step: unknown, init: unknown, xs: unknown, options: unknown) => traceScan(t, step, init, xs, options)) as GraphBuilder['scan'],
    };
  }
}
