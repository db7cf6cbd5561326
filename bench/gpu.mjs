// The GPU measurement of the GPU.js module (issue: "GPU.js target"): the makemore network at
// sizes S, L and XL, one training step (valueAndGrad) in the given gpu.js mode, checked against
// the flat module, then timed.
//
//   node bench/gpu.mjs --mode webasm --sizes S            here, as a check of the script
//   bash bench/pack-device.sh                             then, on the lent GPU machine:
//   source .device/on-device.sh; cd .device/app && node gpu.mjs --mode webgpu --models models
//
// With --models DIR it loads the modules from DIR/<size>/makemore_<size>.{js,gpu.js}, and builds
// with graphc those not there (without it, into a fresh folder). `--write-ref` (how pack-device.sh
// builds them) then stores the flat module's loss and gradients beside each model
// (makemore_<size>.ref.{json,bin}) instead of timing, so that the device need not spend its time
// on the flat XL step (about 28 s here); without them the flat module runs there.
// `--flat-seconds N` also times the flat module on this machine (S and L only); `--dawn FEATURES`
// sets navigator.gpu up first with those Dawn features (e.g. disable_robustness).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { arg, setupWebGPU } from './device.mjs';
import { relError } from './report.mjs';

export const GPU_SIZES = {
  S: { batch: 32, block: 3, nEmbd: 10, nHidden: 64, vocab: 27 },
  L: { batch: 256, block: 3, nEmbd: 64, nHidden: 1024, vocab: 27 },
  XL: { batch: 4096, block: 3, nEmbd: 128, nHidden: 4096, vocab: 27 },
};

/** Matmul FLOPs of one step (forward and both backward products) plus the elementwise work. */
export function flops({ batch: n, block, nEmbd, nHidden: H, vocab: V }) {
  const K = block * nEmbd;
  return 3 * 2 * n * (K * H + H * V) + 24 * n * H + 12 * n * V + n * K;
}

/** Builds makemore at each size into dir/<size>/ unless it is there (needs the repository). */
async function buildModels(dir, sizes) {
  const { spawnSync } = await import('node:child_process');
  const root = path.resolve(import.meta.dirname, '..');
  for (const s of sizes) {
    if (existsSync(path.join(dir, s, `makemore_${s}.gpu.js`))) continue;
    const src = path.join(dir, `makemore_${s}.ts`);
    writeFileSync(src, `import { makemore } from ${JSON.stringify(path.join(root, 'examples/makemore.ts'))};\nexport default makemore(${JSON.stringify(GPU_SIZES[s])}, 'makemore_${s}');\n`);
    const r = spawnSync(process.execPath, [path.join(root, 'bin/graphc.js'), 'build', src, '--out', path.join(dir, s), '--target', 'ts,gpu'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
  }
}

/** Same parameters and inputs on every machine: initParams(1) and an LCG draw of indices. */
function problem(flat, cfg) {
  const params = flat.initParams(1);
  let seed = 7;
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
  const inputs = { Xb: Int32Array.from({ length: cfg.batch * cfg.block }, () => Math.floor(rand() * cfg.vocab)), Yb: Int32Array.from({ length: cfg.batch }, () => Math.floor(rand() * cfg.vocab)) };
  return { params, inputs };
}

function writeRef(base, want) {
  const keys = Object.keys(want.grads);
  const lengths = keys.map((k) => want.grads[k].length);
  const all = new Float32Array(lengths.reduce((a, b) => a + b, 0));
  let o = 0;
  for (const k of keys) all.set(want.grads[k], (o += want.grads[k].length) - want.grads[k].length);
  writeFileSync(`${base}.ref.bin`, Buffer.from(all.buffer));
  writeFileSync(`${base}.ref.json`, JSON.stringify({ loss: want.loss, keys, lengths }));
}

function readRef(base) {
  if (!existsSync(`${base}.ref.json`)) return null;
  const { loss, keys, lengths } = JSON.parse(readFileSync(`${base}.ref.json`, 'utf8'));
  const buf = readFileSync(`${base}.ref.bin`);
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const grads = {};
  let o = 0;
  keys.forEach((k, i) => (grads[k] = all.subarray(o, (o += lengths[i]))));
  return { loss, grads };
}

async function timeSteps(step, seconds) {
  const t0 = performance.now();
  while (performance.now() - t0 < 1000 * Math.min(2, seconds)) await step();
  const times = [];
  const t1 = performance.now();
  while (performance.now() - t1 < 1000 * seconds || times.length < 5) {
    const a = performance.now();
    await step();
    times.push(performance.now() - a);
  }
  times.sort((x, y) => x - y);
  return { ms: times[times.length >> 1], lo: times[0], hi: times[times.length - 1], n: times.length };
}

async function main() {
  const mode = arg('mode', 'webgpu');
  const sizes = arg('sizes', 'S,L,XL').split(',');
  const seconds = Number(arg('seconds', '3'));
  let dir = arg('models');
  if (!dir) {
    // inside the repository, so that the modules' `import 'gpu.js'` resolves
    const cache = path.resolve(import.meta.dirname, '..', 'node_modules', '.cache');
    mkdirSync(cache, { recursive: true });
    dir = mkdtempSync(path.join(cache, 'graphc-gpu-'));
  }
  await buildModels(path.resolve(dir), sizes);
  const flatSeconds = Number(arg('flat-seconds', '0'));
  const features = arg('dawn', '');
  if (features) await setupWebGPU(features);
  const rows = [];
  for (const s of sizes) {
    const base = path.join(path.resolve(dir), s, `makemore_${s}`);
    const cfg = GPU_SIZES[s];
    const flat = await import(pathToFileURL(`${base}.js`).href);
    const { params, inputs } = problem(flat, cfg);
    if (process.argv.includes('--write-ref')) {
      writeRef(base, flat.valueAndGrad(params, inputs));
      continue;
    }
    try {
      if (!existsSync(`${base}.gpu.js`)) throw new Error(`missing ${base}.gpu.js`);
      const gpuMod = await import(pathToFileURL(`${base}.gpu.js`).href);
      const c0 = performance.now();
      const model = await gpuMod.create({ mode });
      const createMs = performance.now() - c0;
      // correctness first: the GPU module against the flat module
      const want = readRef(base) ?? flat.valueAndGrad(params, inputs);
      const got = await model.valueAndGrad(params, inputs);
      const err = Math.max(relError([got.loss], [want.loss]), ...Object.keys(want.grads).map((k) => relError(got.grads[k], want.grads[k])));
      // timing: warm up by time, then the median of steps (each awaited: loss and grads read back)
      const t = await timeSteps(() => model.valueAndGrad(params, inputs), seconds);
      const tf = await timeSteps(() => model.forward(params, inputs), Math.min(seconds, 2));
      const flatT = flatSeconds > 0 && s !== 'XL' ? await timeSteps(() => flat.valueAndGrad(params, inputs), flatSeconds) : null;
      rows.push({ size: s, mode: model.mode, ...t, fwd: tf.ms, flat: flatT?.ms, createMs, gflops: flops(cfg) / t.ms / 1e6, err, loss: got.loss });
      model.destroy();
    } catch (e) {
      rows.push({ size: s, error: String(e?.stack ?? e) });
    }
  }
  if (process.argv.includes('--write-ref')) return;
  console.log(`date ${new Date().toISOString().slice(0, 10)}, node ${process.version}, mode ${mode}${features ? `, dawn features ${features}` : ''}`);
  console.log('size  backend  ms/step (min-max, n)       fwd ms  flat ms  GFLOP/s  create ms  loss      max rel err vs flat TS');
  for (const r of rows) {
    if (r.error) {
      console.log(`${r.size.padEnd(4)}  ERROR ${r.error}`);
      continue;
    }
    const range = `(${r.lo.toFixed(2)}-${r.hi.toFixed(2)}, ${r.n})`;
    console.log(`${r.size.padEnd(4)}  ${r.mode.padEnd(7)}  ${r.ms.toFixed(3).padStart(7)} ${range.padEnd(18)}  ${r.fwd.toFixed(3).padStart(6)}  ${r.flat === undefined ? '      -' : r.flat.toFixed(2).padStart(7)}  ${r.gflops.toFixed(1).padStart(7)}  ${r.createMs.toFixed(0).padStart(9)}  ${r.loss.toFixed(5)}  ${r.err.toExponential(1)} ${r.err <= 1e-4 ? 'PASS' : 'FAIL'}`);
  }
  process.exit(rows.every((r) => !r.error && r.err <= 1e-4) ? 0 : 1); // a Dawn device keeps the process alive
}

await main();
