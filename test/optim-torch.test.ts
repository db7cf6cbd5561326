// The float64 reference of test/optim-reference.ts (which every target's trainStep is checked
// against) against torch.optim itself, where /usr/bin/python3 has torch: the same params and the
// same sequence of 100 gradients (a schedule halving lr after 50 steps), every optimizer with its
// options, the params after the last step compared to 1e-5.

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OptimizerName } from '../codegen/optim.js';
import { relErr, rng } from './helpers.js';
import type { RefSchedule, RefState } from './optim-reference.js';
import { refGroups, refHyper, refLr, torchStep, torchStepGroups } from './optim-reference.js';

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

const CASES: [OptimizerName, Record<string, number | boolean>][] = [
  ['sgd', { lr: 0.1 }],
  ['sgd', { lr: 0.05, momentum: 0.9, weightDecay: 0.01 }],
  ['sgd', { lr: 0.05, momentum: 0.8, nesterov: true, clipGradNorm: 0.5 }],
  ['adam', { lr: 0.01 }],
  ['adam', { lr: 0.01, beta1: 0.8, eps: 1e-6, weightDecay: 0.05 }],
  ['adam', { lr: 0.01, amsgrad: true, weightDecay: 0.02, clipGradNorm: 0.5 }],
  ['adamw', { lr: 0.01, weightDecay: 0.01, clipGradNorm: 1 }],
  ['adamw', { lr: 0.01, weightDecay: 0.01, amsgrad: true, beta2: 0.99 }],
  ['rmsprop', { lr: 0.01 }],
  ['rmsprop', { lr: 0.005, alpha: 0.9, momentum: 0.9, weightDecay: 0.01 }],
  ['rmsprop', { lr: 0.01, centered: true, momentum: 0.5, eps: 1e-6, clipGradNorm: 0.5 }],
  ['adagrad', { lr: 0.05, eps: 1e-10 }],
  ['adagrad', { lr: 0.05, eps: 1e-10, lrDecay: 0.02 }],
  ['adagrad', { lr: 0.01, eps: 1e-10, weightDecay: 0.01, clipGradNorm: 0.5 }],
  ['lion', { lr: 0.001, beta2: 0.99 }],
  ['lion', { lr: 0.001, beta1: 0.95, beta2: 0.99, weightDecay: 0.1, clipGradNorm: 0.5 }],
];

describe('the float64 reference against torch.optim', () => {
  it.skipIf(!hasTorch)('every optimizer with its options, 100 steps on the same gradients', () => {
    const random = rng(11);
    const sizes = [24, 6, 5];
    const cases = CASES.map(([name, hyper]) => {
      const params = sizes.map((n) => Array.from({ length: n }, () => random() - 0.5));
      // gradients that depend on nothing: a slowly drifting mean and noise, so moments build up
      const grads = Array.from({ length: 100 }, (_, t) => sizes.map((n) => Array.from({ length: n }, (_, i) => Math.sin(0.05 * t + i) * 0.3 + (random() - 0.5) * 0.2)));
      return { name, hyper: refHyper(hyper), params, grads };
    });
    const r = spawnSync(PYTHON, [path.join(import.meta.dirname, 'fixtures/optim_torch.py')], { input: JSON.stringify({ cases }), encoding: 'utf8', maxBuffer: 1 << 26 });
    expect(r.stderr).toBe('');
    const torch = JSON.parse(r.stdout) as number[][][];
    cases.forEach((c, k) => {
      const p64 = Object.fromEntries(c.params.map((p, j) => [String(j), Float64Array.from(p)]));
      const state: RefState = {};
      for (let t = 1; t <= 100; t++) {
        const grads = Object.fromEntries(c.grads[t - 1]!.map((g, j) => [String(j), Float64Array.from(g)]));
        torchStep(c.name, c.hyper, t > 50 ? c.hyper.lr / 2 : c.hyper.lr, t, p64, grads, state);
      }
      c.params.forEach((_, j) => expect(relErr(p64[String(j)]!, torch[k]![j]!), `${c.name} ${JSON.stringify(CASES[k]![1])} param ${j}`).toBeLessThan(1e-5));
    });
  });
});

// torch's param groups (their own weight decay and lr, a frozen param left out) and LambdaLR
// schedules against the reference's groups (torchStepGroups) and schedules (refLr)
const GROUP_CASES: { name: OptimizerName; hyper: Record<string, number | boolean>; schedule: RefSchedule; noDecay1d: boolean }[] = [
  // nanoGPT's configure_optimizers: adamw, no decay for rank ≤ 1, cosine with warmup
  { name: 'adamw', hyper: { lr: 0.01, weightDecay: 0.1, clipGradNorm: 0.5 }, schedule: { schedule: 'cosine', warmup: 10, totalSteps: 80, minLr: 0.001 }, noDecay1d: true },
  { name: 'adam', hyper: { lr: 0.01, weightDecay: 0.03 }, schedule: { schedule: 'linear', warmup: 5, totalSteps: 90, minLr: 0 }, noDecay1d: false },
  { name: 'sgd', hyper: { lr: 0.05, momentum: 0.9, weightDecay: 0.01 }, schedule: { schedule: 'step', warmup: 4, stepSize: 30, gamma: 0.5 }, noDecay1d: true },
  { name: 'lion', hyper: { lr: 0.001, beta2: 0.99, weightDecay: 0.3 }, schedule: { schedule: 'constant', warmup: 20 }, noDecay1d: true },
  { name: 'rmsprop', hyper: { lr: 0.005, weightDecay: 0.01 }, schedule: { schedule: 'cosine', totalSteps: 100 }, noDecay1d: false },
  { name: 'adagrad', hyper: { lr: 0.05, eps: 1e-10, weightDecay: 0.01 }, schedule: { schedule: 'linear', totalSteps: 60, minLr: 0.005 }, noDecay1d: true },
];

describe('the float64 reference with param groups and schedules against torch.optim and LambdaLR', () => {
  it.skipIf(!hasTorch)('groups with their own weight decay and lrScale, a frozen param, every schedule: 100 steps', () => {
    const random = rng(12);
    // W1 [24], b1 [6] (rank 1), gain [6] (its own weight decay), W2 [20] (its own decay, lr × 2), b2 [5] frozen
    const names = ['W1', 'b1', 'gain', 'W2', 'b2'];
    const sizes = [24, 6, 6, 20, 5];
    const cases = GROUP_CASES.map((c) => {
      const hyper = refHyper(c.hyper);
      const groups = refGroups(hyper.weightDecay, c.noDecay1d);
      const params = sizes.map((n) => Array.from({ length: n }, () => random() - 0.5));
      const grads = Array.from({ length: 100 }, (_, t) => sizes.map((n) => Array.from({ length: n }, (_, i) => Math.sin(0.05 * t + i) * 0.3 + (random() - 0.5) * 0.2)));
      return { name: c.name, hyper, params, grads, schedule: c.schedule, groups, torchGroups: groups.map((g) => ({ ...g, params: g.params.map((p) => names.indexOf(p)) })) };
    });
    const r = spawnSync(PYTHON, [path.join(import.meta.dirname, 'fixtures/optim_torch.py')], {
      input: JSON.stringify({ cases: cases.map((c) => ({ name: c.name, hyper: c.hyper, params: c.params, grads: c.grads, schedule: c.schedule, groups: c.torchGroups })) }),
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    expect(r.stderr).toBe('');
    const torch = JSON.parse(r.stdout) as number[][][];
    cases.forEach((c, k) => {
      const p64 = Object.fromEntries(c.params.map((p, j) => [names[j]!, Float64Array.from(p)]));
      const state: RefState = {};
      for (let t = 1; t <= 100; t++) {
        const grads = Object.fromEntries(c.grads[t - 1]!.map((g, j) => [names[j]!, Float64Array.from(g)]));
        torchStepGroups(c.name, c.hyper, refLr(c.schedule, c.hyper.lr, t - 1), t, p64, grads, state, c.groups);
      }
      expect(torch[k]![4], `${c.name}: the frozen b2`).toEqual(c.params[4]);
      names.forEach((n, j) => expect(relErr(p64[n]!, torch[k]![j]!), `${c.name} ${c.schedule.schedule} ${n}`).toBeLessThan(1e-5));
    });
  });
});
