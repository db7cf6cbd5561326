// The optimizer table, optax's model: an optimizer is a chain of transforms (clip_by_global_norm,
// add_decayed_weights, scale_by_adam, trace, …, scale_by_learning_rate), and each transform
// contributes the state it keeps per param (torch.optim's slot names), the scalars it computes once
// per step, its per-element statements (each with the formula the emitted code carries as its
// comment) and the hyperparameters it reads. Every target renders the chain's statements: the flat
// module as one JavaScript loop (`renderJs`), the wasm module as one SIMD kernel
// (`codegen/wasm/update.ts`), the GPU.js module as kernels (`codegen/gpu-train.ts`). Semantics and
// defaults are torch.optim's (Lion: the paper's, with decoupled weight decay).

/** The optimizers `graphc build --optimizer` knows. */
export const OPTIMIZER_NAMES = ['sgd', 'adam', 'adamw', 'rmsprop', 'adagrad', 'lion'] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

/** Build-time hyperparameters (the module's `hyper` shows those its chain reads); `lr` can be overridden per call. */
export interface Hyper {
  readonly lr: number;
  /** trace (sgd, rmsprop): the momentum μ (0: none). */
  readonly momentum: number;
  /** trace (sgd): Nesterov momentum. */
  readonly nesterov: boolean;
  /** scale_by_rms: the smoothing constant α of the squared-gradient average. */
  readonly alpha: number;
  /** scale_by_rms: normalise by the variance (the average of g² less the square of the average of g). */
  readonly centered: boolean;
  /** scale_by_adam, scale_by_lion. */
  readonly beta1: number;
  readonly beta2: number;
  /** scale_by_adam, scale_by_rms, scale_by_adagrad: added to the denominator. */
  readonly eps: number;
  /** scale_by_adagrad: the learning rate's decay, lr/(1 + (t − 1)·lrDecay). */
  readonly lrDecay: number;
  /** scale_by_adam: AMSGrad (the running maximum of the second moment). */
  readonly amsgrad: boolean;
  /** add_decayed_weights: L2 added to the gradient (sgd, adam, rmsprop, adagrad) or decoupled (adamw, lion). */
  readonly weightDecay: number;
  /** clip_by_global_norm: scale all gradients by min(1, N / ‖g‖₂) first (torch.nn.utils.clip_grad_norm_). */
  readonly clipGradNorm?: number;
  /** --no-decay-1d: params of rank ≤ 1 (biases, norm gains) get no weight decay (nanoGPT's configure_optimizers). */
  readonly noDecay1d?: boolean;
  /** The learning-rate schedule compiled into the step (`scheduleExpr`); absent: lr at every step. */
  readonly schedule?: ScheduleName;
  /** Steps of linear warmup, lr·(t + 1)/W for t < W (default 0). */
  readonly warmup?: number;
  /** cosine, linear: the step t = N at which the rate reaches minLr. */
  readonly totalSteps?: number;
  /** cosine, linear: the final rate (default 0). */
  readonly minLr?: number;
  /** step: the rate is multiplied by gamma every stepSize steps after the warmup. */
  readonly stepSize?: number;
  /** step: the factor (default 0.1, as torch's StepLR). */
  readonly gamma?: number;
}

/** The learning-rate schedules `graphc build --schedule` knows. */
export const SCHEDULE_NAMES = ['constant', 'cosine', 'linear', 'step'] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

export interface OptimizerSpec {
  readonly name: OptimizerName;
  readonly hyper: Hyper;
}

/**
 * A per-element expression: a number, a name (`p`, `g`, a state slot: the element at this
 * position; a step scalar: one number per step), or an operation (`sign`: −1, 0 or 1, as torch.sign).
 */
export type UExpr =
  | number
  | string
  | { readonly op: '+' | '-' | '*' | '/' | 'max'; readonly a: UExpr; readonly b: UExpr }
  | { readonly op: 'sqrt' | 'sign'; readonly a: UExpr };

/**
 * One statement of an update: `set` is `p`, a state slot (stored) or `g` (the gradient as the
 * update sees it, a local: the transforms' "updates").
 */
export interface UStmt {
  readonly set: string;
  readonly to: UExpr;
  /** The comment the emitted line carries: the textbook formula. */
  readonly formula: string;
}

/** A scalar computed once per step from `lr` and the step number `t` (JavaScript). */
export interface StepScalar {
  readonly name: string;
  readonly code: string;
  readonly formula: string;
}

/** The hyperparameters, in the order the module's `hyper` lists them. */
const HYPER_ORDER = ['lr', 'lrDecay', 'alpha', 'momentum', 'nesterov', 'beta1', 'beta2', 'eps', 'centered', 'weightDecay', 'amsgrad', 'clipGradNorm', 'noDecay1d', 'schedule', 'warmup', 'totalSteps', 'minLr', 'stepSize', 'gamma'] as const;
/** The schedule's settings each schedule reads (after `schedule` itself). */
const SCHEDULE_KEYS: { readonly [K in ScheduleName]: readonly HyperKey[] } = {
  constant: ['warmup'],
  cosine: ['warmup', 'totalSteps', 'minLr'],
  linear: ['warmup', 'totalSteps', 'minLr'],
  step: ['warmup', 'stepSize', 'gamma'],
};
type HyperKey = (typeof HYPER_ORDER)[number];

/** One optax-style transform. */
export interface Transform {
  /** optax's name. */
  readonly name: string;
  readonly summary: string;
  /** The hyperparameters it reads (those `hyper` lists). */
  readonly hyper: (h: Hyper) => readonly HyperKey[];
  /** State arrays kept per param (torch.optim's state names), zeros at step 0. */
  readonly slots: (h: Hyper) => readonly string[];
  /** Its step scalars; `lr` is the name of the learning rate they are computed from (a param group's). */
  readonly scalars: (h: Hyper, foldLr: boolean, lr: string) => readonly StepScalar[];
  /**
   * Its statements. With `foldLr` (scale_by_learning_rate follows and the transform says it
   * `foldsLr`), it writes `p` itself with lr folded into its step scalars: one multiply fewer.
   */
  readonly body: (h: Hyper, foldLr: boolean) => readonly UStmt[];
  readonly foldsLr?: boolean;
}

/** 1 − β as it is written (0.1, not 0.09999999999999998). */
const oneMinus = (x: number): number => Number((1 - x).toPrecision(12));

const add = (a: UExpr, b: UExpr): UExpr => ({ op: '+', a, b });
const sub = (a: UExpr, b: UExpr): UExpr => ({ op: '-', a, b });
const mul = (a: UExpr, b: UExpr): UExpr => ({ op: '*', a, b });
const div = (a: UExpr, b: UExpr): UExpr => ({ op: '/', a, b });
const max = (a: UExpr, b: UExpr): UExpr => ({ op: 'max', a, b });
const sqrt = (a: UExpr): UExpr => ({ op: 'sqrt', a });
const sign = (a: UExpr): UExpr => ({ op: 'sign', a });
const none = () => [] as const;

/** The transforms (optax's names), each written once. */
export const TRANSFORMS = {
  clip_by_global_norm: {
    name: 'clip_by_global_norm',
    summary: 'every gradient scaled by min(1, N / (‖g‖₂ + 1e-6)), ‖g‖₂ over all of them (torch.nn.utils.clip_grad_norm_); each target computes `clip` with its norm pass',
    hyper: (h) => (h.clipGradNorm !== undefined ? ['clipGradNorm'] : []),
    slots: none,
    scalars: none,
    body: (h) => (h.clipGradNorm !== undefined ? [{ set: 'g', to: mul('g', 'clip'), formula: 'g = g·min(1, N/‖g‖₂)   (gradient clipping)' }] : []),
  },
  add_decayed_weights: {
    name: 'add_decayed_weights',
    summary: 'L2 weight decay added to the gradient (torch weight_decay of SGD, Adam, RMSprop, Adagrad)',
    hyper: () => ['weightDecay'],
    slots: none,
    scalars: none,
    body: (h) => (h.weightDecay ? [{ set: 'g', to: add('g', mul(h.weightDecay, 'p')), formula: `g = g + λ·p   (weight decay, λ = ${h.weightDecay})` }] : []),
  },
  decoupled_weight_decay: {
    name: 'add_decayed_weights (decoupled)',
    summary: 'decoupled weight decay, p ← p·(1 − lr·λ) (AdamW, Lion)',
    hyper: () => ['weightDecay'],
    slots: none,
    scalars: (h, _foldLr, lr) => (h.weightDecay ? [{ name: 'decay', code: `1 - ${lr} * ${h.weightDecay}`, formula: '1 − lr·λ' }] : []),
    body: (h) => (h.weightDecay ? [{ set: 'p', to: mul('p', 'decay'), formula: `p = p·(1 − lr·λ)   (decoupled weight decay, λ = ${h.weightDecay})` }] : []),
  },
  trace: {
    name: 'trace',
    summary: 'momentum (dampening 0), optionally Nesterov: torch.optim.SGD\'s and RMSprop\'s momentum_buffer',
    hyper: () => ['momentum', 'nesterov'],
    slots: (h) => (h.momentum ? ['momentum_buffer'] : []),
    scalars: none,
    body: (h) =>
      h.momentum
        ? [
            // torch starts the buffer at g; with dampening 0, μ·0 + g is the same
            { set: 'momentum_buffer', to: add(mul(h.momentum, 'momentum_buffer'), 'g'), formula: `b = μ·b + g   (μ = ${h.momentum})` },
            h.nesterov ? { set: 'g', to: add('g', mul(h.momentum, 'momentum_buffer')), formula: 'g = g + μ·b   (Nesterov)' } : { set: 'g', to: 'momentum_buffer', formula: 'g = b' },
          ]
        : [],
  },
  scale_by_adam: {
    name: 'scale_by_adam',
    summary: 'bias-corrected first and second moments, optionally AMSGrad (torch.optim.Adam)',
    hyper: (h) => ['beta1', 'beta2', 'eps', ...(h.amsgrad ? (['amsgrad'] as const) : [])],
    slots: (h) => ['exp_avg', 'exp_avg_sq', ...(h.amsgrad ? ['max_exp_avg_sq'] : [])],
    scalars: (h, foldLr, lr) => [
      foldLr ? { name: 'stepSize', code: `${lr} / (1 - ${h.beta1} ** t)`, formula: 'lr / (1 − β1ᵗ)' } : { name: 'invBc1', code: `1 / (1 - ${h.beta1} ** t)`, formula: '1 / (1 − β1ᵗ)' },
      { name: 'invSqrtBc2', code: `1 / Math.sqrt(1 - ${h.beta2} ** t)`, formula: '1 / √(1 − β2ᵗ)' },
    ],
    body: (h, foldLr) => {
      const v = h.amsgrad ? 'max_exp_avg_sq' : 'exp_avg_sq';
      const denom = add(mul(sqrt(v), 'invSqrtBc2'), h.eps);
      const vhat = h.amsgrad ? 'v̂ = max(v̂, v)/(1 − β2ᵗ)' : 'v̂ = v/(1 − β2ᵗ)';
      return [
        { set: 'exp_avg', to: add(mul(h.beta1, 'exp_avg'), mul(oneMinus(h.beta1), 'g')), formula: `m = β1·m + (1 − β1)·g   (β1 = ${h.beta1})` },
        { set: 'exp_avg_sq', to: add(mul(h.beta2, 'exp_avg_sq'), mul(oneMinus(h.beta2), mul('g', 'g'))), formula: `v = β2·v + (1 − β2)·g²   (β2 = ${h.beta2})` },
        ...(h.amsgrad ? [{ set: 'max_exp_avg_sq', to: max('max_exp_avg_sq', 'exp_avg_sq'), formula: 'v_max = max(v_max, v)   (AMSGrad)' }] : []),
        foldLr
          ? { set: 'p', to: sub('p', div(mul('stepSize', 'exp_avg'), denom)), formula: `p -= lr·m̂/(√v̂ + eps), m̂ = m/(1 − β1ᵗ), ${vhat}   (eps = ${h.eps})` }
          : { set: 'g', to: div(mul('invBc1', 'exp_avg'), denom), formula: `g = m̂/(√v̂ + eps), m̂ = m/(1 − β1ᵗ), ${vhat}   (eps = ${h.eps})` },
      ];
    },
    foldsLr: true,
  },
  scale_by_rms: {
    name: 'scale_by_rms',
    summary: 'the gradient over the root of a running average of its square, optionally centered (torch.optim.RMSprop)',
    hyper: () => ['alpha', 'eps', 'centered'],
    slots: (h) => ['square_avg', ...(h.centered ? ['grad_avg'] : [])],
    scalars: none,
    body: (h) => [
      { set: 'square_avg', to: add(mul(h.alpha, 'square_avg'), mul(oneMinus(h.alpha), mul('g', 'g'))), formula: `v = α·v + (1 − α)·g²   (α = ${h.alpha})` },
      ...(h.centered
        ? [
            { set: 'grad_avg', to: add(mul(h.alpha, 'grad_avg'), mul(oneMinus(h.alpha), 'g')), formula: 'ḡ = α·ḡ + (1 − α)·g   (centered)' },
            { set: 'g', to: div('g', add(sqrt(sub('square_avg', mul('grad_avg', 'grad_avg'))), h.eps)), formula: `g = g/(√(v − ḡ²) + eps)   (eps = ${h.eps})` },
          ]
        : [{ set: 'g', to: div('g', add(sqrt('square_avg'), h.eps)), formula: `g = g/(√v + eps)   (eps = ${h.eps})` }]),
    ],
  },
  scale_by_adagrad: {
    name: 'scale_by_adagrad',
    summary: 'the gradient over the root of the sum of its squares, the learning rate decayed (torch.optim.Adagrad, initial_accumulator_value 0)',
    hyper: () => ['lrDecay', 'eps'],
    slots: () => ['sum'],
    // lr_decay scales the learning rate: with it the transform applies lr itself
    scalars: (h, foldLr, lr) => (foldLr && h.lrDecay ? [{ name: 'clr', code: `${lr} / (1 + (t - 1) * ${h.lrDecay})`, formula: 'lr / (1 + (t − 1)·lr_decay)' }] : []),
    body: (h, foldLr) => [
      { set: 'sum', to: add('sum', mul('g', 'g')), formula: 's = s + g²' },
      foldLr
        ? { set: 'p', to: sub('p', mul(h.lrDecay ? 'clr' : 'lr', div('g', add(sqrt('sum'), h.eps)))), formula: `p -= ${h.lrDecay ? `clr·g/(√s + eps), clr = lr/(1 + (t − 1)·lr_decay)   (lr_decay = ${h.lrDecay}, ` : 'lr·g/(√s + eps)   ('}eps = ${h.eps})` }
        : { set: 'g', to: div('g', add(sqrt('sum'), h.eps)), formula: `g = g/(√s + eps)   (eps = ${h.eps})` },
    ],
    foldsLr: true,
  },
  scale_by_lion: {
    name: 'scale_by_lion',
    summary: 'the sign of an interpolation of the momentum and the gradient, then the momentum (Lion, Chen et al. 2023)',
    hyper: () => ['beta1', 'beta2'],
    slots: () => ['exp_avg'],
    scalars: none,
    // the update reads the momentum before its own statement writes it: one statement writes p
    body: (h) => [
      { set: 'p', to: sub('p', mul('lr', sign(add(mul(h.beta1, 'exp_avg'), mul(oneMinus(h.beta1), 'g'))))), formula: `p -= lr·sign(β1·m + (1 − β1)·g)   (β1 = ${h.beta1})` },
      { set: 'exp_avg', to: add(mul(h.beta2, 'exp_avg'), mul(oneMinus(h.beta2), 'g')), formula: `m = β2·m + (1 − β2)·g   (β2 = ${h.beta2})` },
    ],
    foldsLr: true,
  },
  scale_by_learning_rate: {
    name: 'scale_by_learning_rate',
    summary: 'the descent step p ← p − lr·g',
    hyper: () => ['lr'],
    slots: none,
    scalars: none,
    body: () => [{ set: 'p', to: sub('p', mul('lr', 'g')), formula: 'p -= lr·g' }],
  },
} satisfies Record<string, Transform>;
export type TransformName = keyof typeof TRANSFORMS;

interface OptimizerDef {
  /** What it is, in torch's words. */
  readonly summary: string;
  /** The name a sentence uses, with its article (an Adam update). */
  readonly title: string;
  readonly defaults: Partial<Hyper> & { readonly lr: number };
  /** The chain, in the order its statements run. */
  readonly chain: readonly TransformName[];
  /** Options of other optimizers that this one refuses. */
  readonly accepts: readonly (keyof Hyper)[];
}

const adamChain = (decay: 'add_decayed_weights' | 'decoupled_weight_decay'): TransformName[] => ['clip_by_global_norm', decay, 'scale_by_adam', 'scale_by_learning_rate'];

export const OPTIMIZERS: { readonly [K in OptimizerName]: OptimizerDef } = {
  sgd: {
    summary: 'torch.optim.SGD: stochastic gradient descent, with optional momentum (dampening 0), Nesterov momentum and L2 weight decay',
    title: 'an SGD',
    defaults: { lr: 1e-3, momentum: 0, nesterov: false, weightDecay: 0 },
    chain: ['clip_by_global_norm', 'add_decayed_weights', 'trace', 'scale_by_learning_rate'],
    accepts: ['momentum', 'nesterov'],
  },
  adam: {
    summary: 'torch.optim.Adam: bias-corrected first and second moments, L2 weight decay added to the gradient',
    title: 'an Adam',
    defaults: { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
    chain: adamChain('add_decayed_weights'),
    accepts: ['beta1', 'beta2', 'eps', 'amsgrad'],
  },
  // optax's adamw: adam's chain with the weight decay decoupled
  adamw: {
    summary: 'torch.optim.AdamW: Adam with decoupled weight decay (p ← p·(1 − lr·λ) before the step)',
    title: 'an AdamW',
    defaults: { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 },
    chain: adamChain('decoupled_weight_decay'),
    accepts: ['beta1', 'beta2', 'eps', 'amsgrad'],
  },
  rmsprop: {
    summary: 'torch.optim.RMSprop: the gradient over the root of a running average of its square, optional momentum, centered variant and L2 weight decay',
    title: 'an RMSprop',
    defaults: { lr: 1e-2, alpha: 0.99, eps: 1e-8, momentum: 0, centered: false, weightDecay: 0 },
    chain: ['clip_by_global_norm', 'add_decayed_weights', 'scale_by_rms', 'trace', 'scale_by_learning_rate'],
    accepts: ['alpha', 'eps', 'momentum', 'centered'],
  },
  adagrad: {
    summary: 'torch.optim.Adagrad: the gradient over the root of the sum of its squares, L2 weight decay, lr_decay (initial_accumulator_value 0)',
    title: 'an Adagrad',
    defaults: { lr: 1e-2, lrDecay: 0, eps: 1e-10, weightDecay: 0 },
    chain: ['clip_by_global_norm', 'add_decayed_weights', 'scale_by_adagrad', 'scale_by_learning_rate'],
    accepts: ['eps', 'lrDecay'],
  },
  lion: {
    summary: 'Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the sign of an interpolated momentum, decoupled weight decay',
    title: 'a Lion',
    defaults: { lr: 1e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0 },
    chain: ['clip_by_global_norm', 'decoupled_weight_decay', 'scale_by_lion', 'scale_by_learning_rate'],
    accepts: ['beta1', 'beta2'],
  },
};

/** The chain's transforms, each with whether it folds lr (scale_by_learning_rate follows it). */
function links(name: OptimizerName): { t: Transform; foldLr: boolean; skip: boolean }[] {
  const chain = OPTIMIZERS[name].chain.map((n) => TRANSFORMS[n] as Transform);
  return chain.map((t, k) => ({
    t,
    foldLr: t.foldsLr === true && chain[k + 1] === TRANSFORMS.scale_by_learning_rate,
    skip: t === TRANSFORMS.scale_by_learning_rate && chain[k - 1]?.foldsLr === true,
  }));
}

/** The state arrays of an optimizer's chain, in chain order. */
export function slotsOf(spec: OptimizerSpec): string[] {
  return links(spec.name).flatMap((l) => [...l.t.slots(spec.hyper)]);
}

/** The hyperparameters the module's `hyper` lists, in their order. */
export function hyperKeys(spec: OptimizerSpec): HyperKey[] {
  // a transform shared by several optimizers lists only what this one takes (rmsprop's trace: no nesterov)
  const own = new Set<string>([...Object.keys(OPTIMIZERS[spec.name].defaults), 'amsgrad', 'clipGradNorm']);
  const used = new Set(links(spec.name).flatMap((l) => [...l.t.hyper(spec.hyper)]));
  const h = spec.hyper;
  return [
    ...HYPER_ORDER.filter((k) => used.has(k) && own.has(k)),
    ...(h.noDecay1d ? (['noDecay1d'] as const) : []),
    ...(h.schedule ? (['schedule', ...SCHEDULE_KEYS[h.schedule]] as const) : []),
  ];
}

/** The hyperparameters of an optimizer: its defaults, overridden by what the build was given. */
export function resolveHyper(name: OptimizerName, given: Partial<Hyper>): Hyper {
  const d = OPTIMIZERS[name].defaults;
  const pick = <K extends keyof Hyper>(k: K, fallback: Hyper[K]): Hyper[K] => (given[k] ?? d[k] ?? fallback) as Hyper[K];
  return {
    lr: pick('lr', d.lr),
    momentum: pick('momentum', 0),
    nesterov: pick('nesterov', false),
    alpha: pick('alpha', 0.99),
    centered: pick('centered', false),
    beta1: pick('beta1', 0.9),
    beta2: pick('beta2', 0.999),
    eps: pick('eps', 1e-8),
    amsgrad: pick('amsgrad', false),
    lrDecay: pick('lrDecay', 0),
    weightDecay: pick('weightDecay', 0),
    ...(given.clipGradNorm !== undefined ? { clipGradNorm: given.clipGradNorm } : {}),
    ...(given.noDecay1d ? { noDecay1d: true } : {}),
    ...(given.schedule ? scheduleSettings(given.schedule, given) : {}),
  };
}

/** A schedule's settings, defaults filled in (warmup 0, minLr 0, gamma 0.1), and only those it reads. */
function scheduleSettings(schedule: ScheduleName, given: Partial<Hyper>): Partial<Hyper> {
  const all: Partial<Hyper> = { warmup: given.warmup ?? 0, totalSteps: given.totalSteps, minLr: given.minLr ?? 0, stepSize: given.stepSize, gamma: given.gamma ?? 0.1 };
  return { schedule, ...Object.fromEntries(SCHEDULE_KEYS[schedule].map((k) => [k, all[k as keyof typeof all]])) };
}

/** What does not make sense in a schedule's settings, as a message (undefined when they are fine). */
export function scheduleProblem(given: Partial<Hyper>, lr: number): string | undefined {
  const settings = ['warmup', 'totalSteps', 'minLr', 'stepSize', 'gamma'] as const;
  const s = given.schedule;
  if (s === undefined) {
    const k = settings.find((x) => given[x] !== undefined);
    return k && `${flagOf(k)} needs --schedule (constant, cosine, linear or step)`;
  }
  for (const k of settings) {
    if (given[k] === undefined || SCHEDULE_KEYS[s].includes(k)) continue;
    const owners = SCHEDULE_NAMES.filter((o) => SCHEDULE_KEYS[o].includes(k));
    return `${flagOf(k)} is a setting of the ${owners.join(' and ')} schedule${owners.length > 1 ? 's' : ''}, not ${s}`;
  }
  const W = given.warmup ?? 0;
  if (s === 'cosine' || s === 'linear') {
    if (given.totalSteps === undefined) return `--schedule ${s} needs --total-steps N, the step from which the rate is --min-lr`;
    if (given.totalSteps <= W) return `--total-steps (${given.totalSteps}) must be above --warmup (${W}): the ${s} decay runs from step W to step N`;
    if ((given.minLr ?? 0) > lr) return `--min-lr (${given.minLr}) must be at most the learning rate (${lr}): the rate decays from lr to min-lr`;
  }
  if (s === 'step' && given.stepSize === undefined) return '--schedule step needs --step-size S: the rate is multiplied by --gamma every S steps after the warmup';
  return undefined;
}

/**
 * The scheduled learning rate as a JavaScript expression of the build's rate `base` and `k`, the
 * number of updates before this one (the state's step): written once, every target's step uses it.
 */
export function scheduleExpr(h: Hyper, base: string, k: string): { code: string; formula: string } {
  const W = h.warmup ?? 0;
  const warm = (rest: { code: string; formula: string }) =>
    W > 0 ? { code: `${k} < ${W} ? (${base} * (${k} + 1)) / ${W} : ${rest.code}`, formula: `lr·(t + 1)/W for t < W (W = ${W}), then ${rest.formula}` } : rest;
  const N = h.totalSteps!;
  const m = h.minLr ?? 0;
  switch (h.schedule) {
    case undefined:
    case 'constant':
      return warm({ code: base, formula: 'lr' });
    case 'cosine':
      return warm({
        code: `${k} >= ${N} ? ${num(m)} : ${num(m)} + 0.5 * (${base} - ${num(m)}) * (1 + Math.cos((Math.PI * (${k} - ${W})) / ${N - W}))`,
        formula: `m + ½(lr − m)(1 + cos(π(t − W)/(N − W))), m from t = N on (N = ${N}, m = ${m})`,
      });
    case 'linear':
      return warm({ code: `${k} >= ${N} ? ${num(m)} : ${base} + ((${num(m)} - ${base}) * (${k} - ${W})) / ${N - W}`, formula: `lr + (m − lr)(t − W)/(N − W), m from t = N on (N = ${N}, m = ${m})` });
    case 'step':
      return warm({ code: `${base} * ${h.gamma} ** Math.floor((${k} - ${W}) / ${h.stepSize})`, formula: `lr·γ^⌊(t − W)/S⌋ (S = ${h.stepSize}, γ = ${h.gamma})` });
  }
}

/** A param as the optimizer sees it: its rank and the options g.param gave it. */
export interface ParamOpts {
  readonly name: string;
  readonly rank: number;
  /** g.param's weightDecay: this param's, instead of the build's. */
  readonly weightDecay?: number;
  /** g.param's lrScale: this param's learning rate is lr times it (its decoupled decay too). */
  readonly lrScale?: number;
}

/** Params that share a weight decay and a learning-rate factor: torch's param groups. */
export interface ParamGroup {
  /** The build's optimizer with this group's weight decay. */
  readonly spec: OptimizerSpec;
  readonly lrScale: number;
  readonly params: readonly string[];
}

/**
 * The trainable params in groups, in the order of their first param: a param's weight decay is
 * its own (g.param's weightDecay), else 0 for rank ≤ 1 with --no-decay-1d, else the build's.
 */
export function paramGroups(spec: OptimizerSpec, ps: readonly ParamOpts[]): ParamGroup[] {
  const groups = new Map<string, { spec: OptimizerSpec; lrScale: number; params: string[] }>();
  for (const p of ps) {
    const weightDecay = p.weightDecay ?? (spec.hyper.noDecay1d && p.rank <= 1 ? 0 : spec.hyper.weightDecay);
    const lrScale = p.lrScale ?? 1;
    const key = `${weightDecay} ${lrScale}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { spec: weightDecay === spec.hyper.weightDecay ? spec : { ...spec, hyper: { ...spec.hyper, weightDecay } }, lrScale, params: [] }));
    g.params.push(p.name);
  }
  return [...groups.values()];
}

/** The flag of a hyperparameter. */
export const flagOf = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** What does not make sense together, as a message (undefined when the combination is fine). */
export function hyperProblem(name: OptimizerName, given: Partial<Hyper>): string | undefined {
  const specific = ['momentum', 'nesterov', 'alpha', 'centered', 'beta1', 'beta2', 'eps', 'amsgrad', 'lrDecay'] as const;
  for (const k of specific) {
    if (given[k] === undefined || OPTIMIZERS[name].accepts.includes(k)) continue;
    const owners = OPTIMIZER_NAMES.filter((o) => OPTIMIZERS[o].accepts.includes(k));
    return `${flagOf(k)} is an option of ${owners.length > 1 ? `${owners.slice(0, -1).join(', ')} and ${owners[owners.length - 1]}` : owners[0]}, not ${name}`;
  }
  if (given.nesterov && !given.momentum) return '--nesterov needs a --momentum above 0 (as torch.optim.SGD)';
  return undefined;
}

/** The statements of one step: the chain's, in order (clipping, when asked, sees the loss gradient). */
export function updateStatements(spec: OptimizerSpec): UStmt[] {
  return links(spec.name).flatMap((l) => (l.skip ? [] : [...l.t.body(spec.hyper, l.foldLr)]));
}

/** The scalars of one step computed from lr and t (`clip` comes from the norm pass). */
export function stepScalars(spec: OptimizerSpec, lr = 'lr'): readonly StepScalar[] {
  return links(spec.name).flatMap((l) => (l.skip ? [] : [...l.t.scalars(spec.hyper, l.foldLr, lr)]));
}

/**
 * clip_by_global_norm's factor, as JavaScript, from the sum of squares of every gradient (each
 * target sums them its own way: one loop, a kernel per gradient on a device): the `clip` scalar
 * its statement reads. torch.nn.utils.clip_grad_norm_'s max_norm / (‖g‖₂ + 1e-6), at most 1.
 */
export function clipFactor(spec: OptimizerSpec, sumOfSquares: string): string {
  return `Math.min(1, ${spec.hyper.clipGradNorm} / (Math.sqrt(${sumOfSquares}) + 1e-6))`;
}

/** Every name a statement list reads as a step scalar, in first-use order. */
export function scalarNames(spec: OptimizerSpec): string[] {
  const slots = new Set(['p', 'g', ...slotsOf(spec)]);
  const out: string[] = [];
  const walk = (e: UExpr): void => {
    if (typeof e === 'number') return;
    if (typeof e === 'string') {
      if (!slots.has(e) && !out.includes(e)) out.push(e);
      return;
    }
    walk(e.a);
    if ('b' in e) walk(e.b);
  };
  for (const s of updateStatements(spec)) walk(s.to);
  return out;
}

/** A number as JavaScript source that reads back as the same double. */
function num(x: number): string {
  return Object.is(x, -0) ? '-0' : String(x);
}

/** An expression as JavaScript, names mapped by `name`. */
export function renderJs(e: UExpr, name: (n: string) => string, parent = 0): string {
  if (typeof e === 'number') return num(e);
  if (typeof e === 'string') return name(e);
  if (!('b' in e)) return `Math.${e.op}(${renderJs(e.a, name)})`;
  if (e.op === 'max') return `Math.max(${renderJs(e.a, name)}, ${renderJs(e.b, name)})`;
  const prec = e.op === '+' || e.op === '-' ? 1 : 2;
  const text = `${renderJs(e.a, name, prec)} ${e.op} ${renderJs(e.b, name, prec + (e.op === '-' || e.op === '/' ? 1 : 0))}`;
  return prec < parent ? `(${text})` : text;
}
