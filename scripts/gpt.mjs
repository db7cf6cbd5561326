// npm run demo:gpt: build examples/gpt.ts (a tiny GPT) with graphc and train its WebAssembly
// module with its compiled AdamW step (trainStep) on the same @stdlib first names as the makemore
// demo, read as one stream of characters ('.emma.olivia.…'); report the dev and test loss per
// character and sample names.
//
//   npm run demo:gpt -- [--steps N] [--seed N] [--out DIR]
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { itos, loadNames, stoi } from './demo/data.mjs';
import { demoOptions } from './demo/options.mjs';
import { Rng } from './demo/rng.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const USAGE = 'usage: npm run demo:gpt -- [--steps N] [--seed N] [--out DIR]';

const { values: opts, int } = demoOptions(USAGE, {
  steps: { type: 'string', default: '5000' },
  seed: { type: 'string', default: '1' },
  out: { type: 'string', default: 'demo-out' },
});
const steps = int('steps');
const seed = int('seed');
const OUT = path.resolve(opts.out);
mkdirSync(OUT, { recursive: true });

// the names split 80/10/10 as in the makemore demo, each split one stream of characters
const names = loadNames(42);
const n1 = Math.floor(0.8 * names.length);
const n2 = Math.floor(0.9 * names.length);
const stream = (words) => Int32Array.from(`.${words.join('.')}.`, stoi);
const train = stream(names.slice(0, n1));
const dev = stream(names.slice(n1, n2));
const test = stream(names.slice(n2));

// --optimizer adamw with the hyperparameters of the demo's former hand-written Adam: lr 3e-3 (a
// tenth of it for the last 30% of the steps, through options.lr), β (0.9, 0.99), ε 1e-8 and no
// weight decay (so AdamW is Adam here; torch.optim.AdamW's default would be 0.01). Dropout 0.1 in
// the blocks was tried (2026-12-01, 5,000 steps) and raised the dev loss from 2.1293 to 2.1571.
const file = path.join(ROOT, 'examples/gpt.ts');
const t0 = performance.now();
const b = spawnSync(
  process.execPath,
  [path.join(ROOT, 'bin/graphc.js'), 'build', '--target', 'ts,wasm', '--optimizer', 'adamw', '--lr', '3e-3', '--beta1', '0.9', '--beta2', '0.99', '--eps', '1e-8', '--weight-decay', '0', file],
  { cwd: OUT, stdio: ['ignore', 'pipe', 'inherit'] },
);
if (b.status !== 0) process.exit(b.status ?? 1);
const gpt = await import(pathToFileURL(path.join(OUT, 'generated/gpt/gpt.wasm.js')).href);
const [B, T] = gpt.spec.inputs.X.shape;
const vocab = gpt.spec.outputs.logits.shape[2];
const nParams = Object.values(gpt.spec.params).reduce((n, p) => n + p.shape.reduce((a, d) => a * d, 1), 0);
console.log(`graphc build: examples/gpt.ts in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${nParams} params, batch ${B} × ${T} characters`);

const X = new Int32Array(B * T);
const Y = new Int32Array(B * T);
/** Row r of the batch: the characters of s from start(r), and each one's successor. */
const fill = (s, start) => {
  for (let r = 0; r < B; r++)
    for (let t = 0, o = start(r); t < T; t++) {
      X[r * T + t] = s[o + t];
      Y[r * T + t] = s[o + t + 1];
    }
};

// the compiled AdamW step: 3e-3, a tenth of it for the last 30% of the steps
const params = gpt.initParams(seed);
const optState = gpt.initOptState(params);
const rng = new Rng(seed);
let avg = NaN;
const tTrain = performance.now();
for (let step = 1; step <= steps; step++) {
  fill(train, () => rng.int(train.length - T));
  const { loss } = gpt.trainStep(params, optState, { X, Y }, { lr: step <= 0.7 * steps ? 3e-3 : 3e-4 });
  avg = step === 1 ? loss : 0.99 * avg + 0.01 * loss;
  if (step % Math.max(1, Math.floor(steps / 10)) === 0 || step === steps)
    console.log(`  step ${String(step).padStart(String(steps).length)}/${steps}  loss ${avg.toFixed(4)} (running mean)  ${(step / ((performance.now() - tTrain) / 1000)).toFixed(0)} steps/s`);
}

/** The mean loss per character of a stream, in batches of windows side by side. */
const streamLoss = (s) => {
  let total = 0;
  let batches = 0;
  for (let o = 0; o + B * T < s.length; o += B * T, batches++) {
    fill(s, (r) => o + r * T);
    total += gpt.forward(params, { X, Y }).loss;
  }
  return total / batches;
};
console.log(`\nloss per character after ${steps} steps:  dev ${streamLoss(dev).toFixed(4)}   test ${streamLoss(test).toFixed(4)}`);

// Sampling: each name starts after a '.'; a window of up to T characters, read at its last one
const sampled = [];
const sampler = new Rng(seed + 2147483647);
for (let n = 0; n < 10; n++) {
  const ctx = [0];
  let name = '';
  while (name.length < 30) {
    const win = ctx.slice(-T);
    X.fill(0);
    X.set(win);
    const { logits } = gpt.forward(params, { X, Y });
    const row = logits.subarray((win.length - 1) * vocab, win.length * vocab);
    const top = Math.max(...row);
    const e = Array.from(row, (z) => Math.exp(z - top));
    const sum = e.reduce((a, x) => a + x, 0);
    const ix = sampler.categorical(e.map((x) => x / sum));
    if (ix === 0) break;
    name += itos(ix);
    ctx.push(ix);
  }
  sampled.push(name);
}
console.log(`\n10 names sampled from the trained model:\n  ${sampled.join('\n  ')}`);
