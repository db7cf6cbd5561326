// The optimizer table: for each optimizer, the state it keeps per param, the scalars it computes
// once per step, and its update as a few per-element statements, each with the formula the
// emitted code carries as its comment. Every target renders the same statements: the flat module
// as one JavaScript loop (`renderJs`), the wasm module as one SIMD kernel (`codegen/wasm/update.ts`),
// the GPU.js module as kernels (`codegen/gpu.ts`). Semantics are torch.optim's.

/** The optimizers `graphc build --optimizer` knows. */
export const OPTIMIZER_NAMES = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

/** Build-time hyperparameters (the module's `hyper`); `lr` can be overridden per call. */
export interface Hyper {
  readonly lr: number;
  /** sgd: the momentum μ (0: none). */
  readonly momentum: number;
  /** sgd: Nesterov momentum. */
  readonly nesterov: boolean;
  /** adam, adamw. */
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** sgd and adam: L2 added to the gradient; adamw: decoupled. */
  readonly weightDecay: number;
  /** Scale all gradients by min(1, N / ‖g‖₂) first (torch.nn.utils.clip_grad_norm_). */
  readonly clipGradNorm?: number;
}

export interface OptimizerSpec {
  readonly name: OptimizerName;
  readonly hyper: Hyper;
}

/**
 * A per-element expression: a number, a name (`p`, `g`, a state slot: the element at this
 * position; a step scalar: one number per step), or an operation.
 */
export type UExpr = number | string | { readonly op: '+' | '-' | '*' | '/'; readonly a: UExpr; readonly b: UExpr } | { readonly op: 'sqrt'; readonly a: UExpr };

/**
 * One statement of an update: `set` is `p`, a state slot (stored) or `g` (the gradient as the
 * update sees it, a local).
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

interface OptimizerDef {
  /** What it is, in torch's words. */
  readonly summary: string;
  readonly defaults: Partial<Hyper> & { readonly lr: number };
  /** State arrays kept per param (torch.optim's state names), zeros at step 0. */
  readonly slots: (h: Hyper) => readonly string[];
  readonly scalars: (h: Hyper) => readonly StepScalar[];
  readonly body: (h: Hyper) => readonly UStmt[];
}

/** 1 − β as it is written (0.1, not 0.09999999999999998). */
const oneMinus = (x: number): number => Number((1 - x).toPrecision(12));

const add = (a: UExpr, b: UExpr): UExpr => ({ op: '+', a, b });
const sub = (a: UExpr, b: UExpr): UExpr => ({ op: '-', a, b });
const mul = (a: UExpr, b: UExpr): UExpr => ({ op: '*', a, b });
const div = (a: UExpr, b: UExpr): UExpr => ({ op: '/', a, b });
const sqrt = (a: UExpr): UExpr => ({ op: 'sqrt', a });

/** L2 weight decay: the decay term added to the gradient (torch's `weight_decay` of SGD and Adam). */
const l2 = (h: Hyper): UStmt[] => (h.weightDecay ? [{ set: 'g', to: add('g', mul(h.weightDecay, 'p')), formula: `g = g + λ·p   (weight decay, λ = ${h.weightDecay})` }] : []);

/** Adam's moments and step, after whatever weight decay the variant applies. */
const adamMoments = (h: Hyper): UStmt[] => [
  { set: 'exp_avg', to: add(mul(h.beta1, 'exp_avg'), mul(oneMinus(h.beta1), 'g')), formula: `m = β1·m + (1 − β1)·g   (β1 = ${h.beta1})` },
  { set: 'exp_avg_sq', to: add(mul(h.beta2, 'exp_avg_sq'), mul(oneMinus(h.beta2), mul('g', 'g'))), formula: `v = β2·v + (1 − β2)·g²   (β2 = ${h.beta2})` },
  {
    set: 'p',
    to: sub('p', div(mul('stepSize', 'exp_avg'), add(mul(sqrt('exp_avg_sq'), 'invSqrtBc2'), h.eps))),
    formula: `p -= lr·m̂/(√v̂ + eps), m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ)   (eps = ${h.eps})`,
  },
];

const adamScalars = (h: Hyper): StepScalar[] => [
  { name: 'stepSize', code: `lr / (1 - ${h.beta1} ** t)`, formula: 'lr / (1 − β1ᵗ)' },
  { name: 'invSqrtBc2', code: `1 / Math.sqrt(1 - ${h.beta2} ** t)`, formula: '1 / √(1 − β2ᵗ)' },
];

export const OPTIMIZERS: { readonly [K in OptimizerName]: OptimizerDef } = {
  sgd: {
    summary: 'torch.optim.SGD: stochastic gradient descent, with optional momentum (dampening 0), Nesterov momentum and L2 weight decay',
    defaults: { lr: 1e-3, momentum: 0, nesterov: false, weightDecay: 0 },
    slots: (h) => (h.momentum ? ['momentum_buffer'] : []),
    scalars: () => [],
    body: (h) => [
      ...l2(h),
      ...(h.momentum
        ? [
            // torch starts the buffer at g; with dampening 0, μ·0 + g is the same
            { set: 'momentum_buffer', to: add(mul(h.momentum, 'momentum_buffer'), 'g'), formula: `b = μ·b + g   (μ = ${h.momentum})` },
            h.nesterov ? { set: 'g', to: add('g', mul(h.momentum, 'momentum_buffer')), formula: 'g = g + μ·b   (Nesterov)' } : { set: 'g', to: 'momentum_buffer', formula: 'g = b' },
          ]
        : []),
      { set: 'p', to: sub('p', mul('lr', 'g')), formula: 'p -= lr·g' },
    ],
  },
  adam: {
    summary: 'torch.optim.Adam: bias-corrected first and second moments, L2 weight decay added to the gradient',
    defaults: { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
    slots: () => ['exp_avg', 'exp_avg_sq'],
    scalars: adamScalars,
    body: (h) => [...l2(h), ...adamMoments(h)],
  },
  adamw: {
    summary: 'torch.optim.AdamW: Adam with decoupled weight decay (p ← p·(1 − lr·λ) before the step)',
    defaults: { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 },
    slots: () => ['exp_avg', 'exp_avg_sq'],
    scalars: (h) => [...(h.weightDecay ? [{ name: 'decay', code: `1 - lr * ${h.weightDecay}`, formula: '1 − lr·λ' }] : []), ...adamScalars(h)],
    body: (h) => [
      ...(h.weightDecay ? [{ set: 'p', to: mul('p', 'decay'), formula: `p = p·(1 − lr·λ)   (decoupled weight decay, λ = ${h.weightDecay})` }] : []),
      ...adamMoments(h),
    ],
  },
};

/** The hyperparameters of an optimizer: its defaults, overridden by what the build was given. */
export function resolveHyper(name: OptimizerName, given: Partial<Hyper>): Hyper {
  const d = OPTIMIZERS[name].defaults;
  const pick = <K extends keyof Hyper>(k: K, fallback: Hyper[K]): Hyper[K] => (given[k] ?? d[k] ?? fallback) as Hyper[K];
  return {
    lr: pick('lr', d.lr),
    momentum: pick('momentum', 0),
    nesterov: pick('nesterov', false),
    beta1: pick('beta1', 0.9),
    beta2: pick('beta2', 0.999),
    eps: pick('eps', 1e-8),
    weightDecay: pick('weightDecay', 0),
    ...(given.clipGradNorm !== undefined ? { clipGradNorm: given.clipGradNorm } : {}),
  };
}

/** What does not make sense together, as a message (undefined when the combination is fine). */
export function hyperProblem(name: OptimizerName, given: Partial<Hyper>): string | undefined {
  const sgdOnly = (['momentum', 'nesterov'] as const).filter((k) => given[k] !== undefined);
  const adamOnly = (['beta1', 'beta2', 'eps'] as const).filter((k) => given[k] !== undefined);
  if (name !== 'sgd' && sgdOnly.length) return `--${sgdOnly[0]} is an option of sgd, not ${name}`;
  if (name === 'sgd' && adamOnly.length) return `--${adamOnly[0]} is an option of adam and adamw, not sgd`;
  if (given.nesterov && !given.momentum) return '--nesterov needs a --momentum above 0 (as torch.optim.SGD)';
  return undefined;
}

/** The statements of one step: clipping (when asked) sees the loss gradient, then the optimizer's. */
export function updateStatements(spec: OptimizerSpec): UStmt[] {
  const clip: UStmt[] = spec.hyper.clipGradNorm !== undefined ? [{ set: 'g', to: mul('g', 'clip'), formula: 'g = g·min(1, N/‖g‖₂)   (gradient clipping)' }] : [];
  return [...clip, ...OPTIMIZERS[spec.name].body(spec.hyper)];
}

/** The scalars of one step, with `clip` when gradients are clipped (computed by the norm pass). */
export function stepScalars(spec: OptimizerSpec): readonly StepScalar[] {
  return OPTIMIZERS[spec.name].scalars(spec.hyper);
}

/** Every name a statement list reads as a step scalar, in first-use order. */
export function scalarNames(spec: OptimizerSpec): string[] {
  const slots = new Set(['p', 'g', ...OPTIMIZERS[spec.name].slots(spec.hyper)]);
  const out: string[] = [];
  const walk = (e: UExpr): void => {
    if (typeof e === 'number') return;
    if (typeof e === 'string') {
      if (!slots.has(e) && !out.includes(e)) out.push(e);
      return;
    }
    walk(e.a);
    if (e.op !== 'sqrt') walk(e.b);
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
  if (e.op === 'sqrt') return `Math.sqrt(${renderJs(e.a, name)})`;
  const prec = e.op === '+' || e.op === '-' ? 1 : 2;
  const text = `${renderJs(e.a, name, prec)} ${e.op} ${renderJs(e.b, name, prec + (e.op === '-' || e.op === '/' ? 1 : 0))}`;
  return prec < parent ? `(${text})` : text;
}
