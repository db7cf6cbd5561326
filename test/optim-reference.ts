// torch.optim's update rules in float64 on plain arrays, written from torch's documented algorithms
// (the pseudo-code of torch.optim.SGD, Adam, AdamW, RMSprop and Adagrad, initial_accumulator_value 0;
// Lion from its paper),
// not from graphc's transform table: the reference the compiled trainStep of every target is
// checked against (test/train.test.ts, test/gpu-train.test.ts), itself checked against torch.optim
// when python3 has torch (test/optim-torch.test.ts).

import type { OptimizerName } from '../codegen/optim.js';

/** The hyperparameters as torch names them (graphc's `hyper`, every field present). */
export interface RefHyper {
  lr: number;
  momentum: number;
  nesterov: boolean;
  alpha: number;
  centered: boolean;
  beta1: number;
  beta2: number;
  eps: number;
  amsgrad: boolean;
  lrDecay: number;
  weightDecay: number;
  clipGradNorm?: number;
}

/** The float64 reference's hyperparameters: the case's `hyper`, and torch's values for the ones its optimizer does not read. */
export const refHyper = (hyper: Record<string, number | boolean>): RefHyper => ({ momentum: 0, nesterov: false, alpha: 0.99, centered: false, beta1: 0.9, beta2: 0.999, eps: 1e-8, amsgrad: false, lrDecay: 0, weightDecay: 0, ...(hyper as Partial<RefHyper>), lr: hyper.lr as number });

export type RefState = Record<string, Record<string, Float64Array>>;

/** One step of torch.optim's `name` on every param, in place; `t` is the step number from 1. */
export function torchStep(name: OptimizerName, h: RefHyper, lr: number, t: number, params: Record<string, Float64Array>, grads: Record<string, Float64Array>, state: RefState): void {
  let clip = 1;
  if (h.clipGradNorm !== undefined) {
    // torch.nn.utils.clip_grad_norm_: total_norm over all gradients, clip_coef = max_norm / (total_norm + 1e-6), clamped to 1
    let sq = 0;
    for (const g of Object.values(grads)) for (const x of g) sq += x * x;
    clip = Math.min(1, h.clipGradNorm / (Math.sqrt(sq) + 1e-6));
  }
  for (const [k, p] of Object.entries(params)) {
    const zeros = () => new Float64Array(p.length);
    const s = (state[k] ??= { m: zeros(), v: zeros(), vmax: zeros(), buf: zeros(), gavg: zeros(), sum: zeros() });
    for (let i = 0; i < p.length; i++) {
      let g = grads[k]![i]! * clip;
      switch (name) {
        case 'sgd': {
          if (h.weightDecay) g += h.weightDecay * p[i]!;
          if (h.momentum) {
            s.buf![i] = t === 1 ? g : h.momentum * s.buf![i]! + g;
            g = h.nesterov ? g + h.momentum * s.buf![i]! : s.buf![i]!;
          }
          p[i]! -= lr * g;
          break;
        }
        case 'adam':
        case 'adamw': {
          if (name === 'adam' && h.weightDecay) g += h.weightDecay * p[i]!;
          if (name === 'adamw') p[i]! *= 1 - lr * h.weightDecay;
          s.m![i] = h.beta1 * s.m![i]! + (1 - h.beta1) * g;
          s.v![i] = h.beta2 * s.v![i]! + (1 - h.beta2) * g * g;
          let v = s.v![i]!;
          if (h.amsgrad) v = s.vmax![i] = Math.max(s.vmax![i]!, v);
          const mhat = s.m![i]! / (1 - h.beta1 ** t);
          const vhat = v / (1 - h.beta2 ** t);
          p[i]! -= (lr * mhat) / (Math.sqrt(vhat) + h.eps);
          break;
        }
        case 'rmsprop': {
          if (h.weightDecay) g += h.weightDecay * p[i]!;
          s.v![i] = h.alpha * s.v![i]! + (1 - h.alpha) * g * g;
          let avg: number;
          if (h.centered) {
            s.gavg![i] = h.alpha * s.gavg![i]! + (1 - h.alpha) * g;
            avg = Math.sqrt(s.v![i]! - s.gavg![i]! * s.gavg![i]!) + h.eps;
          } else avg = Math.sqrt(s.v![i]!) + h.eps;
          if (h.momentum > 0) {
            s.buf![i] = h.momentum * s.buf![i]! + g / avg;
            p[i]! -= lr * s.buf![i]!;
          } else p[i]! -= (lr * g) / avg;
          break;
        }
        case 'adagrad': {
          const clr = lr / (1 + (t - 1) * h.lrDecay);
          if (h.weightDecay) g += h.weightDecay * p[i]!;
          s.sum![i] = s.sum![i]! + g * g; // initial_accumulator_value 0
          p[i]! -= (clr * g) / (Math.sqrt(s.sum![i]!) + h.eps);
          break;
        }
        case 'lion': {
          p[i]! *= 1 - lr * h.weightDecay;
          const c = h.beta1 * s.m![i]! + (1 - h.beta1) * g;
          p[i]! -= lr * Math.sign(c);
          s.m![i] = h.beta2 * s.m![i]! + (1 - h.beta2) * g;
          break;
        }
      }
    }
  }
}

/** A learning-rate schedule's settings, as the module's `hyper` lists them. */
export interface RefSchedule {
  schedule?: 'constant' | 'cosine' | 'linear' | 'step';
  warmup?: number;
  totalSteps?: number;
  minLr?: number;
  stepSize?: number;
  gamma?: number;
}

/**
 * The scheduled rate of the update after `k` updates, written from the formulas (and
 * build-nanogpt's get_lr, torch's StepLR), not from graphc's table: warmup lr·(k + 1)/W for k < W,
 * then cosine m + ½(lr − m)(1 + cos(π(k − W)/(N − W))) (m from N on), linear from lr at W to m at
 * N, step lr·γ^⌊(k − W)/S⌋, constant lr.
 */
export function refLr(s: RefSchedule, lr: number, k: number): number {
  const W = s.warmup ?? 0;
  if (!s.schedule) return lr;
  if (k < W) return (lr * (k + 1)) / W;
  const m = s.minLr ?? 0;
  switch (s.schedule) {
    case 'constant':
      return lr;
    case 'cosine': {
      if (k > s.totalSteps!) return m;
      const ratio = (k - W) / (s.totalSteps! - W);
      return m + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (lr - m);
    }
    case 'linear':
      return k >= s.totalSteps! ? m : lr - ((lr - m) * (k - W)) / (s.totalSteps! - W);
    case 'step':
      return lr * Math.pow(s.gamma ?? 0.1, Math.floor((k - W) / s.stepSize!));
  }
}

/** torch's param groups: params with a weight decay and a learning rate of their own (lr × lrScale). */
export interface RefGroup {
  params: string[];
  weightDecay: number;
  lrScale: number;
}

/**
 * One step of torch.optim with param groups: clip_grad_norm_ over every group's gradients, then
 * each group's update with its weight decay and lr × lrScale. Params in no group (frozen) stay.
 */
export function torchStepGroups(name: OptimizerName, h: RefHyper, lr: number, t: number, params: Record<string, Float64Array>, grads: Record<string, Float64Array>, state: RefState, groups: readonly RefGroup[]): void {
  let clip = 1;
  const used = groups.flatMap((g) => g.params);
  if (h.clipGradNorm !== undefined) {
    let sq = 0;
    for (const k of used) for (const x of grads[k]!) sq += x * x;
    clip = Math.min(1, h.clipGradNorm / (Math.sqrt(sq) + 1e-6));
  }
  for (const g of groups) {
    const ps = Object.fromEntries(g.params.map((k) => [k, params[k]!]));
    const gs = Object.fromEntries(g.params.map((k) => [k, grads[k]!.map((x) => x * clip)]));
    torchStep(name, { ...h, weightDecay: g.weightDecay, clipGradNorm: undefined }, lr * g.lrScale, t, ps, gs, state);
  }
}

// W1 the build's weight decay; b1 (rank 1) none with --no-decay-1d, half the rate; gain (rank 1)
// its own weight decay, which wins over --no-decay-1d; W2 its own weight decay and twice the rate;
// b2 frozen
export const GROUPS_MODEL = `import { model } from 'graphc';
export default model('groups', (g) => {
  const W1 = g.param('W1', [6, 16], { scale: 0.4 });
  const b1 = g.param('b1', [16], { scale: 0.1, lrScale: 0.5 });
  const gain = g.param('gain', [16], { init: 'ones', weightDecay: 0.02 });
  const W2 = g.param('W2', [16, 5], { scale: 0.4, weightDecay: 0.05, lrScale: 2 });
  const b2 = g.param('b2', [5], { scale: 0.1, trainable: false });
  const x = g.input('x', [12, 6]);
  const y = g.input('y', [12], 'i32');
  const h = x.matmul(W1).add(b1).tanh().mul(gain);
  const loss = g.crossEntropy(h.matmul(W2).add(b2), y);
  return { loss };
});
`;

/** The groups of GROUPS_MODEL as torch's param groups, for a build weight decay `wd`. */
export const refGroups = (wd: number, noDecay1d: boolean): RefGroup[] => [
  { params: ['W1'], weightDecay: wd, lrScale: 1 },
  { params: ['b1'], weightDecay: noDecay1d ? 0 : wd, lrScale: 0.5 },
  { params: ['gain'], weightDecay: 0.02, lrScale: 1 },
  { params: ['W2'], weightDecay: 0.05, lrScale: 2 },
];
