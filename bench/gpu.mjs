// The GPU measurement of the GPU.js module (issue: "GPU.js target"): the makemore network at
// sizes S, L and XL, one training step (valueAndGrad) in the given gpu.js mode, checked against
// the flat module, then timed.
//
//   node bench/gpu.mjs --mode webasm --sizes S            here, as a check of the script
//   bash bench/pack-device.sh                             then, on the lent GPU machine:
//   source .device/on-device.sh; cd .device/app && node gpu.mjs --mode webgpu --models models
//
// With --models DIR it loads prebuilt modules (DIR/<size>/makemore_<size>.{js,gpu.js}); without
// it, it builds them with graphc first.
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

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

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : dflt);

async function buildModels(dir, sizes) {
  const { spawnSync } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const root = path.resolve(import.meta.dirname, '..');
  for (const s of sizes) {
    const src = path.join(dir, `makemore_${s}.ts`);
    writeFileSync(src, `import { makemore } from ${JSON.stringify(path.join(root, 'examples/makemore.ts'))};\nexport default makemore(${JSON.stringify(GPU_SIZES[s])}, 'makemore_${s}');\n`);
    const r = spawnSync(process.execPath, [path.join(root, 'bin/graphc.js'), 'build', src, '--out', path.join(dir, s)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
  }
}

function relErr(a, b) {
  let d = 0;
  let s = 1e-3;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
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
    await buildModels(dir, sizes);
  }
  const rows = [];
  for (const s of sizes) {
    const base = path.join(path.resolve(dir), s, `makemore_${s}`);
    if (!existsSync(`${base}.gpu.js`)) throw new Error(`missing ${base}.gpu.js`);
    const flat = await import(pathToFileURL(`${base}.js`).href);
    const gpuMod = await import(pathToFileURL(`${base}.gpu.js`).href);
    const model = await gpuMod.create({ mode });
    const params = flat.initParams(1);
    const cfg = GPU_SIZES[s];
    let seed = 7;
    const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
    const inputs = { Xb: Int32Array.from({ length: cfg.batch * cfg.block }, () => Math.floor(rand() * cfg.vocab)), Yb: Int32Array.from({ length: cfg.batch }, () => Math.floor(rand() * cfg.vocab)) };
    // correctness first: the GPU module against the flat module
    const want = flat.valueAndGrad(params, inputs);
    const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
    const got = await model.valueAndGrad(params, inputs);
    const err = Math.max(relErr([got.loss], [want.loss]), ...Object.keys(wantGrads).map((k) => relErr(got.grads[k], wantGrads[k])));
    // timing: warm up by time, then median of steps (each awaited: loss and grads read back)
    const t0 = performance.now();
    while (performance.now() - t0 < 1000 * Math.min(2, seconds)) await model.valueAndGrad(params, inputs);
    const times = [];
    const t1 = performance.now();
    while (performance.now() - t1 < 1000 * seconds || times.length < 5) {
      const a = performance.now();
      await model.valueAndGrad(params, inputs);
      times.push(performance.now() - a);
    }
    times.sort((x, y) => x - y);
    const ms = times[times.length >> 1];
    rows.push({ size: s, mode: model.mode, ms, gflops: flops(cfg) / ms / 1e6, err });
    model.destroy();
  }
  console.log(`date ${new Date().toISOString().slice(0, 10)}, node ${process.version}, mode ${mode}`);
  console.log('size  backend  ms/step  GFLOP/s  max rel err vs flat TS');
  for (const r of rows) console.log(`${r.size.padEnd(4)}  ${r.mode.padEnd(7)}  ${r.ms.toFixed(2).padStart(7)}  ${r.gflops.toFixed(1).padStart(7)}  ${r.err.toExponential(1)} ${r.err <= 1e-4 ? 'PASS' : 'FAIL'}`);
  process.exit(rows.every((r) => r.err <= 1e-4) ? 0 : 1); // a Dawn device keeps the process alive
}

await main();
