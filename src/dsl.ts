// The model DSL (public contract). A model file default-exports `model(name, fn)`; `graphc
// build` calls `fn(g)` with a tracer that records every call as typed SSA instructions.

import { Builder } from '../ir/builder.js';
import * as C from '../ir/composite.js';
import * as VC from '../ir/vocab.js';
import * as DV from './vocab.js';
import * as IX from './indexops.js';
import { gradInGraph } from '../ir/autodiff.js';
import * as CV from './conv.js';
import type { Conv1dOptions, Conv2dOptions, Pair, Pool1dOptions, Pool2dOptions } from './conv.js';
import { CompileError } from '../ir/errors.js';
import { trainOptions } from './param-options.js';
import { optionsOf } from './options.js';
import type { Frame, Scope, ScopeTracker } from './scopes.js';
import type { Dim } from '../ir/dims.js';
import { Graph } from '../ir/graph.js';
import type { Init } from '../ir/ops.js';
import type { FanInit } from '../ir/init.js';
import { FAN_INITS } from '../ir/init.js';
import { normalizeAxes } from '../ir/shape.js';
import type { DType, Loc, ValueId } from '../ir/types.js';
import { formatLoc, formatType } from '../ir/types.js';

export type { DType } from '../ir/types.js';
export type { Conv1dOptions, Conv2dOptions, Pair, Pool1dOptions, Pool2dOptions } from './conv.js';
export type { BceOptions, ClassLossOptions, CosineSimilarityOptions, HuberLossOptions, NormalizeOptions, ReductionOptions, VarianceOptions } from './vocab.js';
import type { BceOptions, ClassLossOptions, CosineSimilarityOptions, HuberLossOptions, NormalizeOptions, ReductionOptions, VarianceOptions } from './vocab.js';
import { axisArg, batchNormOptions, checkShape, describe, epsOf, flatten, tensorList } from './dsl-args.js';
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
  /** Batch normalisation over every axis but the last (axis 0 of `[n, features]`, axes 0 and 1 of `[n, t, features]`), the variance with Bessel's correction (n − 1) as in the lecture, then `gain · x̂ + bias`; with `momentum`, running statistics (see BatchNormOptions). */
  batchNorm(x: Tensor, gain: TensorLike, bias: TensorLike, options?: BatchNormOptions): Tensor;
  /**
   * Inverted dropout (torch.nn.functional.dropout): in a training call each element is zeroed
   * with probability p and the others scaled by 1/(1 − p); in evaluation it is the identity.
   */
  dropout(x: Tensor, p: number): Tensor;
  /** Layer normalisation over the last axis, the variance divided by n (`torch.nn.LayerNorm`), then `gain · x̂ + bias`. */
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
}

/** A number array of any depth, as `g.const` takes it (`[[1, 2], [3, 4]]`). */
export type NestedNumbers = readonly (number | NestedNumbers)[];

const INITS: readonly ParamInit[] = ['randn', 'zeros', 'ones', 'uniform', ...FAN_INITS];

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

  /** g.grad(y, xs): the reverse pass from y to xs, emitted into the model's graph at the call. */
  grad(y: unknown, xs: unknown): Tensor[] {
    const { loc } = this.sites.current();
    try {
      if (!(y instanceof Tensor)) throw new CompileError(`g.grad: y must be a tensor, got ${describe(y)}`, 'pass the scalar to differentiate, e.g. g.grad(u.sum(), [x])');
      const yt = this.graph.type(this.operand(y, 'g.grad'));
      if (yt.dtype !== 'f32' || yt.shape.length !== 0)
        throw new CompileError(`g.grad: y must be an f32 scalar, but it is ${formatType(yt)}`, 'reduce it to a scalar first, e.g. g.grad(u.sum(), [x]) for the gradient of every entry of u');
      if (!Array.isArray(xs) || xs.length === 0)
        throw new CompileError(`g.grad: the second argument must be a non-empty array of tensors, got ${describe(xs)}`, 'list what to differentiate with respect to, e.g. g.grad(loss, [x])');
      const ids = xs.map((x, k) => {
        const id = this.operand(x, 'g.grad');
        const t = this.graph.type(id);
        if (t.dtype !== 'f32')
          throw new CompileError(`g.grad: xs[${k}] is ${formatType(t)}; gradients are taken with respect to f32 tensors`, 'differentiate with respect to f32 params, inputs or values; i32 tensors hold indices');
        return id;
      });
      const dxs = gradInGraph(this.graph, y.id, ids, loc);
      this.graph.gradCalls.push({ y: y.id, xs: ids, dxs, loc });
      return dxs.map((d) => new Tensor(this, d));
    } catch (e) {
      throw e instanceof CompileError ? e.withLoc(loc) : e;
    }
  }

  /** g.customGrad(forward, backward): see GraphBuilder.customGrad. */
  customGrad(forward: unknown, backward: unknown): (...xs: TensorLike[]) => Tensor {
    const at = this.sites.current().loc;
    for (const [what, f] of [['forward', forward], ['backward', backward]] as const)
      if (typeof f !== 'function')
        throw new CompileError(
          `g.customGrad: ${what} must be a function, got ${describe(f)}`,
          'pass forward (...xs) => y and backward (xs, y, dy) => [dx for each x], e.g. g.customGrad((x) => ..., ([x], y, dy) => [dy])',
          at,
        );
    const fwd = forward as (...xs: Tensor[]) => unknown;
    const bwd = backward as (xs: Tensor[], y: Tensor, dy: Tensor) => unknown;
    return (...args: TensorLike[]) => {
      const g = this.graph;
      const xs = args.map((a) => (a instanceof Tensor ? (this.operand(a), a) : this.call(() => this.operand(a))));
      for (const [k, x] of xs.entries())
        if (x.dtype !== 'f32')
          throw new CompileError(`g.customGrad: argument ${k} is ${formatType(g.type(x.id))}; a custom gradient takes f32 tensors`, 'pass i32 indices through a closure instead', this.sites.current().loc);
      const y0 = fwd(...xs);
      if (!(y0 instanceof Tensor) || y0[TRACER] !== this || y0.dtype !== 'f32')
        throw new CompileError(`g.customGrad: forward must return an f32 tensor of this model, got ${y0 instanceof Tensor ? formatType(g.type(y0.id)) : describe(y0)}`, 'return the result of DSL calls on its arguments', at);
      const rule = g.rules.length;
      const y = this.call(() => this.b.emit('custom_grad', [y0.id, ...xs.map((x) => x.id)], { rule, inputs: xs.length }));
      const loc = g.def(y.id).loc;
      // the user's backward, traced once with a placeholder for dy, then taken out of the graph:
      // the reverse pass emits it again wherever it differentiates y (autodiff.ts)
      const start = g.insts.length;
      const seed = g.append('fwd', [], { name: 'dy' }, g.type(y.id), loc);
      const dxs = bwd([...xs], y, new Tensor(this, seed));
      const recorded = g.insts.slice(start);
      const body = recorded.slice(1);
      const values = new Map(recorded.map((i) => [i.result, { ...g.value(i.result) }] as const));
      const bad = body.find((i) => i.op === 'param' || i.op === 'input');
      g.remove(new Set(recorded.map((i) => i.id)));
      if (bad)
        throw new CompileError(`g.customGrad: the backward declares ${bad.op} '${(bad.attrs as { name: string }).name}'`, 'declare params and inputs outside the custom gradient and use them in it', bad.loc ?? at);
      if (!Array.isArray(dxs) || dxs.length !== xs.length)
        throw new CompileError(
          `g.customGrad: backward must return an array with one gradient per argument (${xs.length}), got ${Array.isArray(dxs) ? `${dxs.length}` : describe(dxs)}`,
          'return e.g. [dx] for one argument; null where no gradient flows',
          at,
        ).withVia(loc);
      const dxIds = dxs.map((d, k) => {
        if (d === null || d === undefined) return undefined;
        const x = xs[k]!;
        if (!(d instanceof Tensor) || d[TRACER] !== this)
          throw new CompileError(`g.customGrad: backward returned ${describe(d)} as the gradient of argument ${k}`, 'return tensors computed from xs, y and dy (or null)', at).withVia(loc);
        const dt = values.get(d.id)?.type ?? g.type(d.id);
        const xt = g.type(x.id);
        if (dt.dtype !== 'f32' || dt.shape.length !== xt.shape.length || dt.shape.some((n, i) => n !== xt.shape[i]))
          throw new CompileError(`g.customGrad: backward returned ${formatType(dt)} as the gradient of argument ${k}, which is ${formatType(xt)}`, 'each gradient must have the shape of its argument', at).withVia(loc);
        return d.id;
      });
      // values the backward reads besides xs, y and dy become operands, so that the passes keep
      // them (and update them) until the reverse passes have run
      const inside = new Set(recorded.map((i) => i.result));
      const known = new Set([y0.id, y.id, ...xs.map((x) => x.id)]);
      const extras: ValueId[] = [];
      for (const i of body) for (const a of i.args) if (!inside.has(a) && !known.has(a) && !extras.includes(a)) extras.push(a);
      for (const d of dxIds) if (d && !inside.has(d) && !known.has(d) && !extras.includes(d)) extras.push(d);
      const inst = g.def(y.id);
      g.replaceInst(inst, { ...inst, args: [...inst.args, ...extras] } as typeof inst);
      g.rules.push({ insts: body, values, seed, y: y.id, args: [y0.id, ...xs.map((x) => x.id), ...extras], dxs: dxIds, loc });
      return y;
    };
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

  private declare(kind: 'param' | 'input', name: unknown): string {
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
      input(name, shape, dtype = 'f32', options = {}) {
        return t.call(() => {
          const n = t.declare('input', name);
          const s = checkShape('input', shape, { symbols: true });
          for (const d of s) if (typeof d === 'string') t.graph.reserveName(d);
          if (dtype !== 'f32' && dtype !== 'i32')
            throw new CompileError(`input: dtype must be 'f32' or 'i32', got ${describe(dtype)}`, "use 'f32' for data and 'i32' for indices and labels");
          optionsOf('input', 'g.input', options, ['grad'], "g.input('x', [1, 28, 28], 'f32', { grad: true })");
          if (options.grad !== undefined && typeof options.grad !== 'boolean')
            throw new CompileError(`input: grad must be true or false, got ${describe(options.grad)}`, "e.g. g.input('x', [1, 28, 28], 'f32', { grad: true })");
          if (options.grad && dtype !== 'f32')
            throw new CompileError(`input: '${n}' is ${dtype}, which has no gradient`, "ask for the gradient of an f32 input; i32 inputs hold indices and labels");
          return t.b.input(n, { dtype, shape: s }, { raw: n }, options.grad === true);
        });
      },
      param(name, shape, options = {}) {
        return t.call(() => {
          const n = t.declare('param', name);
          const s = checkShape('param', shape) as number[];
          if (typeof options !== 'object' || options === null || Array.isArray(options))
            throw new CompileError(`param '${n}': the options must be an object, got ${describe(options)}`, `e.g. g.param('${n}', shape, { init: 'zeros', lrScale: 0.1 })`);
          const init = options.init ?? 'randn';
          const scale = options.scale ?? 1;
          if (!INITS.includes(init))
            throw new CompileError(`param: unknown init ${describe(init)}`, `use one of ${INITS.map((i) => `'${i}'`).join(', ')}`);
          if (typeof scale !== 'number' || !Number.isFinite(scale))
            throw new CompileError(`param: scale must be a finite number, got ${describe(scale)}`, 'e.g. { scale: 0.1 }');
          const train = trainOptions(n, options, describe);
          const i = DV.paramInit(init, s, options, scale);
          return t.b.param(n, s, i.init, i.scale, { raw: n }, train);
        });
      },
      const(value, dtype = 'f32') {
        return t.call(() => {
          const { data, shape } = flatten(value);
          if (!data.every((x) => typeof x === 'number'))
            throw new CompileError('const: every element must be a number', 'pass e.g. 0.5 or [[1, 2], [3, 4]]');
          return IX.constant(t.b, data, shape, dtype);
        });
      },
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
      batchNorm: (x, gain, bias, options = {}) =>
        t.call((name) => {
          batchNormOptions(options);
          if (options.momentum === undefined) return C.batchNorm(t.b, t.hint, v(x, 'batchNorm'), v(gain), v(bias), epsOf('batchNorm', options.eps));
          const m = options.momentum;
          if (typeof m !== 'number' || !(m >= 0 && m <= 1))
            throw new CompileError(
              `batchNorm: momentum must be a number in [0, 1], got ${describe(m)}`,
              "the running statistics move by momentum · (batch statistic − running), as torch's BatchNorm1d: e.g. { momentum: 0.1 }, or 0.001 as the lecture",
            );
          const prefix = options.name ?? name;
          if (typeof prefix !== 'string' || prefix.length === 0)
            throw new CompileError(
              `batchNorm: the running statistics need a name, got ${describe(prefix)}`,
              "assign the result to a const (const bn1 = g.batchNorm(...) keeps 'bn1.running_mean' and 'bn1.running_var') or pass { name: 'bn1' }",
            );
          for (const k of [`${prefix}.running_mean`, `${prefix}.running_var`]) {
            if (!t.buffers.has(k)) continue;
            const at = t.buffers.get(k);
            throw new CompileError(
              `batchNorm: the buffer '${k}' is already kept by another batchNorm${at ? ` at ${formatLoc(at)}` : ''}`,
              "give each batchNorm with a momentum its own name: assign it to another const, or pass { name: 'bn2' }",
            );
          }
          const r = C.batchNormRunning(t.b, t.hint, v(x, 'batchNorm'), v(gain), v(bias), epsOf('batchNorm', options.eps), m, prefix);
          for (const u of r.updates) {
            t.buffers.set(u.name, t.b.loc);
            t.bufferUpdates.push(u);
          }
          return r.y;
        }),
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
        t.call(() => C.layerNorm(t.b, t.hint, v(x, 'layerNorm'), v(gain), v(bias), epsOf('layerNorm', optionsOf('layerNorm', 'g.layerNorm', options, ['eps'], 'g.layerNorm(x, gain, bias, { eps: 1e-5 })').eps))),
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
    };
  }
}
