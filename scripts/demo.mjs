// npm run demo: build examples/makemore.ts with graphc and train the generated module on the
// English first names that @stdlib ships, as the lecture trains makemore; then calibrate
// batchnorm on the training set, report train/dev/test loss, sample names and draw the loss curve.
//
//   npm run demo -- [--steps N] [--seed N] [--resume [FILE]] [--checkpoint-every N]
//                   [--eval-every N] [--out DIR]
//
// Checkpoints go to DIR/checkpoint.json (the training state) and DIR/checkpoint.safetensors (the
// params) every N steps, at the end and on Ctrl-C (atomic writes);
// --resume continues from one exactly as if the run had not stopped.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { splits, loadNames } from './demo/data.mjs';
import { demoOptions } from './demo/options.mjs';
import { calibrate, runningLoss, sampleNames, splitLoss } from './demo/evaluate.mjs';
import { lossCurveSvg } from './demo/plot.mjs';
import { Rng } from './demo/rng.mjs';
import { loadCheckpoint, saveCheckpoint, Trainer, writeFileAtomic } from './demo/train.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const USAGE = 'usage: npm run demo -- [--steps N] [--seed N] [--resume [FILE]] [--checkpoint-every N] [--eval-every N] [--out DIR]';

const { values: opts, positionals, int } = demoOptions(
  USAGE,
  {
    steps: { type: 'string', default: '30000' },
    seed: { type: 'string', default: '1' },
    resume: { type: 'boolean', default: false },
    'checkpoint-every': { type: 'string', default: '5000' },
    'eval-every': { type: 'string', default: '2500' },
    out: { type: 'string', default: 'demo-out' },
  },
  { positionals: true },
);
const steps = int('steps', 1);
const seed = int('seed', 0);
const checkpointEvery = int('checkpoint-every', 1);
const evalEvery = int('eval-every', 1);
const OUT = path.resolve(opts.out);
const checkpointFile = positionals[0] && opts.resume ? path.resolve(positionals[0]) : path.join(OUT, 'checkpoint.json');
mkdirSync(path.join(OUT, 'models'), { recursive: true });

// ---------------------------------------------------------------------------------------------
// Data, and the networks graphc builds for it

const { train, dev, test } = splits(loadNames(42));
console.log(`data: ${train.n + dev.n + test.n} examples from the @stdlib first names; train ${train.n}, dev ${dev.n}, test ${test.n}`);

// The training network is examples/makemore.ts as it is (batch 32). Evaluation needs other batch
// sizes: the training network built for the whole training set (calibration: the lecture's
// long form divides by its batch size, a number), and the inference network built once with a
// symbolic batch 'B', which serves the dev set, the test set and 10 names sampled side by side.
// The long form has no running statistics: examples/makemore_running.ts, the same network with
// g.batchNorm(..., { momentum: 0.001 }) and the same params, keeps them (the lecture's
// bnmean_running, momentum 0.001) by a training-mode forward on each step's minibatch, and
// evaluates the dev set with them in evaluation mode, beside the calibrated statistics.
const models = {
  calibrate: ['makemore', 'makemore', `{ ...LECTURE, batch: ${train.n} }, 'makemore_calibrate', true`],
  inference: ['makemore_inference', 'makemoreInference', `{ ...LECTURE, batch: 'B' }, 'makemore_any_batch'`],
  running: ['makemore_running', 'makemoreRunning', `{ ...LECTURE, batch: 'B' }, 'makemore_running_any_batch', { momentum: 0.001 }`],
};
const files = [path.join(ROOT, 'examples/makemore.ts')];
for (const [key, [file, fn, args]] of Object.entries(models)) {
  const from = path.relative(path.join(OUT, 'models'), path.join(ROOT, 'examples', `${file}.ts`)).split(path.sep).join('/');
  const src = `import { LECTURE } from '${path.relative(path.join(OUT, 'models'), path.join(ROOT, 'examples/makemore.ts')).split(path.sep).join('/')}';\nimport { ${fn} } from '${from}';\n\nexport default ${fn}(${args});\n`;
  const f = path.join(OUT, 'models', `${key}.ts`);
  writeFileSync(f, src);
  files.push(f);
}
const t0 = performance.now();
// --optimizer sgd --lr 0.1: the training module exports trainStep(params, state, inputs, { lr }),
// the compiled SGD step; the lecture's 0.01 for the second half comes through options.lr
// --target ts,wasm: the inference network (symbolic batch) runs on the wasm module, whose kernels are
// encoded for each batch size the first time it comes (docs/wasm-symbolic.md)
const b = spawnSync(process.execPath, [path.join(ROOT, 'bin/graphc.js'), 'build', '--target', 'ts,wasm', '--optimizer', 'sgd', '--lr', '0.1', ...files], {
  cwd: OUT,
  stdio: ['ignore', 'pipe', 'inherit'],
});
if (b.status !== 0) process.exit(b.status ?? 1);
console.log(`graphc build: examples/makemore.ts and 3 evaluation builds in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${path.relative(process.cwd(), OUT) || '.'}/generated/`);
const load = (name, suffix = '') => import(pathToFileURL(path.join(OUT, 'generated', name, `${name}${suffix}.js`)).href);
const mm = await load('makemore');
const calibrateMod = await load('makemore_calibrate');
const inference = await load('makemore_any_batch', '.wasm');
const running = await load('makemore_running_any_batch');

// ---------------------------------------------------------------------------------------------
// Training

let trainer;
if (opts.resume) {
  if (!existsSync(checkpointFile)) {
    console.error(`--resume: no checkpoint at ${checkpointFile}`);
    process.exit(2);
  }
  trainer = Trainer.resume(mm, train, loadCheckpoint(checkpointFile), running);
  console.log(`resumed from ${path.relative(process.cwd(), checkpointFile)} at step ${trainer.step} of ${trainer.steps}`);
} else trainer = new Trainer(mm, train, { steps, seed, running });

const save = () => saveCheckpoint(checkpointFile, trainer);
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130); // a second Ctrl-C does not wait
  interrupted = true;
});

const evaluateDev = () => {
  const stats = calibrate(calibrateMod, trainer.params, train);
  return { train: stats.loss, dev: splitLoss(inference, trainer.params, stats, dev), stats };
};

const bar = progressBar(trainer.steps);
const start = { step: trainer.step, time: performance.now() };
let loss = NaN;
while (trainer.step < trainer.steps && !interrupted) {
  // a chunk of steps, then a turn of the event loop so that Ctrl-C is heard
  const until = Math.min(trainer.steps, trainer.step + 250);
  while (trainer.step < until) {
    loss = trainer.trainStep();
    if (trainer.step % evalEvery === 0) trainer.history.dev.push([trainer.step, evaluateDev().dev]);
    if (trainer.step % checkpointEvery === 0) save();
  }
  const rate = (trainer.step - start.step) / ((performance.now() - start.time) / 1000);
  bar.update(trainer.step, `loss ${loss.toFixed(4)}  ${rate.toFixed(0)} steps/s`);
  await new Promise((r) => setImmediate(r));
}
bar.done();
save();
if (interrupted) {
  console.log(`interrupted at step ${trainer.step}: saved ${path.relative(process.cwd(), checkpointFile)}; continue with npm run demo -- --resume`);
  process.exit(130);
}

// ---------------------------------------------------------------------------------------------
// Report

const final = evaluateDev();
const testLoss = splitLoss(inference, trainer.params, final.stats, test);
console.log(`\nloss after ${trainer.steps} steps (batchnorm calibrated on the training set):`);
console.log(`  train ${final.train.toFixed(4)}   dev ${final.dev.toFixed(4)}   test ${testLoss.toFixed(4)}`);
const devRunning = runningLoss(running, trainer.params, trainer.buffers, dev);
const testRunning = runningLoss(running, trainer.params, trainer.buffers, test);
console.log(`with the running statistics (momentum 0.001) instead:\n  dev ${devRunning.toFixed(4)}   test ${testRunning.toFixed(4)}`);
const names = sampleNames(inference, trainer.params, final.stats, new Rng(seed + 2147483647), 10);
console.log(`\n10 names sampled from the trained model:\n  ${names.join('\n  ')}\n`);

if (trainer.history.dev.at(-1)?.[0] !== trainer.step) trainer.history.dev.push([trainer.step, final.dev]);
const svg = lossCurveSvg(trainer.history);
writeFileAtomic(path.join(OUT, 'demo-loss.svg'), svg);
let pictures = 'demo-loss.svg';
try {
  const { Resvg } = await import('@resvg/resvg-js');
  writeFileAtomic(path.join(OUT, 'demo-loss.png'), new Resvg(svg, { font: { loadSystemFonts: true } }).render().asPng());
  pictures += ' and demo-loss.png';
} catch (e) {
  console.log(`(no PNG: ${e.message})`);
}
console.log(`wrote ${path.relative(process.cwd(), OUT) || '.'}/: ${pictures}, checkpoint.json and checkpoint.safetensors`);

/** One line of progress: redrawn in place on a terminal, a line every 10% otherwise. */
function progressBar(total) {
  const tty = Boolean(process.stdout.isTTY);
  let lastDraw = 0;
  let lastTenth = -1;
  return {
    update(step, text) {
      const frac = step / total;
      if (tty) {
        if (performance.now() - lastDraw < 100 && step < total) return;
        lastDraw = performance.now();
        const width = 30;
        const full = Math.round(frac * width);
        process.stdout.write(`\r  [${'#'.repeat(full)}${'.'.repeat(width - full)}] step ${step}/${total}  ${text}   `);
      } else if (Math.floor(frac * 10) > lastTenth) {
        lastTenth = Math.floor(frac * 10);
        console.log(`  step ${String(step).padStart(String(total).length)}/${total}  ${text}`);
      }
    },
    done() {
      if (tty) process.stdout.write('\n');
    },
  };
}
