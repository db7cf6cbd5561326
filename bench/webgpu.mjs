// The GPU measurement of the WebGPU module (issue #33), prepared for a lent GPU machine and not yet
// run there: one training step (valueAndGrad) of makemore at S, L and XL, of the nanoGPT-sized GPT
// (bench/models/nanogpt.ts) and of a CIFAR-sized CNN (examples/cnn.ts at batch 64, 3×32×32 is the
// next size to add), each checked first against the flat module (≤ 1e-4 relative), then timed
// (median over --seconds after a warm-up); then the tiled matmul shader alone at square sizes
// (--matmul 1024,2048,4096) and a convolution as implicit GEMM (--conv batch,channels,size:
// 64,64,32), each checked against float64 at 64 results and then timed, in GFLOP/s against the
// chip's fp32 peak (--peak GFLOP/s, default the H100 SXM's 67,000); then PyTorch
// CUDA eager in the same run (bench/torch_cuda.py, when python3 and torch are there).
//
//   npm run bench:webgpu -- --sizes S                      here: needs a navigator.gpu (none in Node
//                                                          without the `webgpu` package)
//   on the GPU machine, as ../shared/gpu/README.md says for the GPU.js module:
//   ../shared/gpu/prepare-device.sh bench/webgpu.mjs bench/webgpu-kernels.mjs bench/device.mjs bench/report.mjs bench/torch_cuda.py dist <models>
//   source .device/on-device.sh; cd .device/app && node webgpu.mjs --models models && python3 torch_cuda.py
//
// --models DIR: load DIR/<name>/<name>.{js,webgpu.js}; those missing are built with graphc
// (needs the repository). --skip-check XL: no flat reference for XL (28 s of CPU per step here).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { convCase, kernelPeak, matmulCase } from './webgpu-kernels.mjs';

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const ROOT = path.resolve(import.meta.dirname, '..');
const SIZES = {
  S: { batch: 32, block: 3, nEmbd: 10, nHidden: 64, vocab: 27 },
  L: { batch: 256, block: 3, nEmbd: 64, nHidden: 1024, vocab: 27 },
  XL: { batch: 4096, block: 3, nEmbd: 128, nHidden: 4096, vocab: 27 },
};

/** navigator.gpu: the host's, or Dawn's from the `webgpu` package (Node). */
async function gpu() {
  if (globalThis.navigator?.gpu) return globalThis.navigator.gpu;
  const pkg = await import('webgpu').catch((e) => {
    throw new Error(`bench:webgpu needs navigator.gpu: the 'webgpu' package (Dawn) could not be loaded: ${e.message}`);
  });
  Object.assign(globalThis, pkg.globals);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: pkg.create([]) }, configurable: true });
  return globalThis.navigator.gpu;
}

/** The models: name → TypeScript source of a graphc model file. */
function sources(selected) {
  const out = {};
  for (const s of selected.filter((x) => SIZES[x]))
    out[`makemore_${s}`] = `import { makemore } from ${JSON.stringify(path.join(ROOT, 'examples/makemore.ts'))};\nexport default makemore(${JSON.stringify(SIZES[s])}, 'makemore_${s}');\n`;
  if (selected.includes('gpt')) out.nanogpt = `export { default } from ${JSON.stringify(path.join(ROOT, 'bench/models/nanogpt.ts'))};\n`;
  if (selected.includes('cnn')) out.cnn = `import { cnn } from ${JSON.stringify(path.join(ROOT, 'examples/cnn.ts'))};\nexport default cnn(64, 'cnn');\n`;
  return out;
}

function build(dir, name, src) {
  if (existsSync(path.join(dir, name, `${name}.webgpu.js`))) return;
  const file = path.join(dir, `${name}.ts`);
  writeFileSync(file, src);
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/graphc.js'), 'build', file, '--out', path.join(dir, name), '--target', 'ts,webgpu'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}

function randomArgs(spec, seed) {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  const fill = (entries, isParam) =>
    Object.fromEntries(
      Object.entries(entries).map(([k, e]) => {
        const n = e.shape.reduce((a, d) => a * (typeof d === 'number' ? d : 1), 1);
        return [k, e.dtype === 'i32' ? Int32Array.from({ length: n }, () => Math.floor(rand() * 2)) : Float32Array.from({ length: n }, () => (rand() - 0.5) * (isParam ? 0.2 : 1))];
      }),
    );
  return { params: fill(spec.params, true), inputs: fill(spec.inputs, false) };
}

const relErr = (a, b) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
};

async function median(fn, seconds) {
  for (let i = 0; i < 3; i++) await fn();
  const times = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end || times.length < 5) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

/** A kernel case (webgpu-kernels.mjs) rendered by codegen/webgpu/routines.ts from dist/, checked and timed. */
async function kernelOf(device, k, seconds) {
  const { renderRoutine } = await import(pathToFileURL(path.join(ROOT, 'dist/codegen/webgpu/routines.js')).href);
  return kernelPeak(device, renderRoutine(k.r, () => 'f32'), k, seconds, median);
}

async function main() {
  const selected = (arg('sizes', 'S,L,XL,gpt,cnn')).split(',');
  const seconds = Number(arg('seconds', '3'));
  const skip = new Set((arg('skip-check', '') || '').split(',').filter(Boolean).map((s) => (SIZES[s] ? `makemore_${s}` : s)));
  const dir = arg('models') ?? mkdtempSync(path.join(os.tmpdir(), 'graphc-webgpu-'));
  mkdirSync(dir, { recursive: true });
  const g = await gpu();
  const adapter = await g.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('bench:webgpu: navigator.gpu offers no adapter');
  const info = adapter.info ?? {};
  console.log(`adapter: ${info.vendor ?? ''} ${info.architecture ?? ''} ${info.description ?? ''}`);
  const limits = {};
  for (const k of ['maxStorageBuffersPerShaderStage', 'maxStorageBufferBindingSize', 'maxBufferSize']) limits[k] = adapter.limits[k];
  const device = await adapter.requestDevice({ requiredLimits: limits });
  for (const [name, src] of Object.entries(sources(selected))) {
    build(dir, name, src);
    const flat = await import(pathToFileURL(path.join(dir, name, `${name}.js`)).href);
    const mod = await import(pathToFileURL(path.join(dir, name, `${name}.webgpu.js`)).href);
    const model = await mod.create({ device });
    const { params, inputs } = randomArgs(flat.spec, 7);
    const opts = { seed: 1, buffers: flat.initBuffers?.() };
    const got = await model.valueAndGrad(params, inputs, opts);
    let check = 'not checked (--skip-check)';
    if (!skip.has(name)) {
      const want = flat.valueAndGrad(params, inputs, { seed: 1, buffers: flat.initBuffers?.() });
      const worst = Math.max(relErr([got.loss], [want.loss]), ...Object.keys(want.grads).map((k) => relErr(got.grads[k], want.grads[k])));
      check = `max rel. error against the flat module ${worst.toExponential(1)}${worst > 1e-4 ? ' (ABOVE 1e-4)' : ''}`;
    }
    const ms = await median(() => model.valueAndGrad(params, inputs, opts), seconds);
    console.log(`${name}: valueAndGrad ${ms.toFixed(3)} ms/step; ${check}`);
    model.destroy();
  }
  const peak = Number(arg('peak', '67000'));
  const kernels = [...arg('matmul', '1024,2048,4096').split(',').filter(Boolean).map((n) => matmulCase(Number(n))), ...(arg('conv', '64,64,32') ? [convCase(...arg('conv', '64,64,32').split(',').map(Number))] : [])];
  for (const k of kernels) {
    const r = await kernelOf(device, k, Math.min(seconds, 2));
    console.log(`${k.label}: ${r.ms.toFixed(3)} ms, ${r.gflops.toFixed(0)} GFLOP/s, ${((100 * r.gflops) / peak).toFixed(1)}% of ${peak} GFLOP/s fp32 peak (checked: ${r.err.toExponential(1)} off float64)`);
  }
  const torch = path.join(import.meta.dirname, 'torch_cuda.py');
  if (!argv.includes('--no-torch') && existsSync(torch)) {
    const r = spawnSync('python3', [torch], { encoding: 'utf8' });
    console.log(r.status === 0 ? `PyTorch CUDA eager (bench/torch_cuda.py):\n${r.stdout}` : `PyTorch CUDA eager did not run: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}`);
  }
  device.destroy();
  process.exit(0);
}

main().catch((e) => {
  console.error(e.message ?? e);
  process.exit(1);
});
