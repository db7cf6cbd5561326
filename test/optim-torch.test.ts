// The float64 reference of test/optim-reference.ts (which every target's trainStep is checked
// against) against torch.optim itself, where /usr/bin/python3 has torch: the same params and the
// same sequence of 100 gradients (a schedule halving lr after 50 steps), every optimizer with its
// options, the params after the last step compared to 1e-5.

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OptimizerName } from '../codegen/optim.js';
import { relErr, rng } from './helpers.js';
import type { RefState } from './optim-reference.js';
import { refHyper, torchStep } from './optim-reference.js';

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
