// Data-parallel training on one machine: the tiny GPT of examples/gpt.ts (its committed flat
// module, generated/gpt/gpt.js, batch 16 × 8 characters) trained with Adam on a global batch of
// 16·K windows of the names stream, split over K worker threads; each step the workers compute
// valueAndGrad on their shards and the main thread averages the gradients (scripts/data-parallel/
// pool.mjs) and updates the shared params. The same scheme, with the average done by an
// all-reduce over the network, is how data-parallel training scales past one machine.
//
//   node scripts/data-parallel.mjs [--workers K] [--steps N] [--seed N]
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadNames, stoi } from './demo/data.mjs';
import { Rng } from './demo/rng.mjs';
import { GradientPool } from './data-parallel/pool.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values: opts } = parseArgs({
  options: { workers: { type: 'string', default: '2' }, steps: { type: 'string', default: '300' }, seed: { type: 'string', default: '1' } },
});
const K = Number(opts.workers);
const steps = Number(opts.steps);
const seed = Number(opts.seed);
if (![K, steps, seed].every((n) => Number.isInteger(n) && n >= 0) || K < 1) {
  console.error('usage: node scripts/data-parallel.mjs [--workers K ≥ 1] [--steps N] [--seed N]');
  process.exit(2);
}

const names = loadNames(42);
const n1 = Math.floor(0.8 * names.length);
const train = Int32Array.from(`.${names.slice(0, n1).join('.')}.`, stoi);

const pool = await GradientPool.create(pathToFileURL(path.join(ROOT, 'generated/gpt/gpt.js')).href, K);
const [B, T] = pool.spec.inputs.X.shape;
console.log(`data-parallel: ${K} worker thread(s), each valueAndGrad on ${B} × ${T} characters: a global batch of ${K * B} windows`);

const rng = new Rng(seed);
const params = pool.params; // shared with the workers
const moments = Object.fromEntries(Object.entries(params).map(([k, p]) => [k, { m: new Float32Array(p.length), v: new Float32Array(p.length) }]));
let avg = NaN;
const t0 = performance.now();
for (let step = 1; step <= steps; step++) {
  for (const { X, Y } of pool.shards)
    for (let r = 0; r < B; r++)
      for (let t = 0, o = rng.int(train.length - T); t < T; t++) {
        X[r * T + t] = train[o + t];
        Y[r * T + t] = train[o + t + 1];
      }
  const { loss, grads } = await pool.valueAndGrad();
  avg = step === 1 ? loss : 0.95 * avg + 0.05 * loss;
  // Adam (β 0.9, 0.99), learning rate 3e-3, as npm run demo:gpt
  const c1 = 1 - 0.9 ** step;
  const c2 = 1 - 0.99 ** step;
  for (const [k, p] of Object.entries(params)) {
    const g = grads[k];
    const { m, v } = moments[k];
    for (let i = 0; i < p.length; i++) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.99 * v[i] + 0.01 * g[i] * g[i];
      p[i] -= (3e-3 * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + 1e-8);
    }
  }
  if (step % Math.max(1, Math.floor(steps / 5)) === 0 || step === steps) {
    const s = (performance.now() - t0) / 1000;
    console.log(`  step ${String(step).padStart(String(steps).length)}/${steps}  loss ${avg.toFixed(4)} (running mean)  ${(step / s).toFixed(0)} steps/s, ${((step * K * B) / s).toFixed(0)} windows/s`);
  }
}
await pool.close();
