// Which GPU.js matmul formulation pays on a real GPU: the makemore XL products
// (B 4096, K 384, H 4096) written the way graphc emits them (one output element per thread,
// 1-D output), with a 2-D output, and with four adjacent columns per thread (Array(4)).
// Each runs inside a gpu.js pipeline (one command buffer, no readback but one number), once and
// r times per call; the slope is the time of one product. Every variant is checked first
// against a float64 product at 256 sampled entries.
//
//   node bench/gpu-matmul.mjs --mode webasm --scale 8     here, as a check of the script
//   node gpu-matmul.mjs --mode webgpu                     on the lent GPU machine (packed by pack-device.sh)
import { GPU } from 'gpu.js';

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : dflt);

/** Kernel bodies: C[M,N] = A[M,K] B[K,N] (fwd), C[M,N] = A[K,M]ᵀ B[K,N] (transA, like dW1). */
const variants = {
  fwd_1d: { out: (M, N) => [M * N], fn: `function (a, b) {
    const x = this.thread.x; const i = Math.floor(x / this.constants.N); const j = x - i * this.constants.N;
    let s = 0;
    for (let k = 0; k < this.constants.K; k++) { s += a[i * this.constants.K + k] * b[k * this.constants.N + j]; }
    return s; }` },
  fwd_2d: { out: (M, N) => [N, M], fn: `function (a, b) {
    const i = this.thread.y; const j = this.thread.x;
    let s = 0;
    for (let k = 0; k < this.constants.K; k++) { s += a[i * this.constants.K + k] * b[k * this.constants.N + j]; }
    return s; }` },
  fwd_vec4: { out: (M, N) => [(M * N) / 4], vec4: true, fn: `function (a, b) {
    const x = this.thread.x; const q = this.constants.N / 4; const i = Math.floor(x / q); const j = (x - i * q) * 4;
    let s0 = 0; let s1 = 0; let s2 = 0; let s3 = 0;
    for (let k = 0; k < this.constants.K; k++) {
      const av = a[i * this.constants.K + k]; const o = k * this.constants.N + j;
      s0 += av * b[o]; s1 += av * b[o + 1]; s2 += av * b[o + 2]; s3 += av * b[o + 3];
    }
    return [s0, s1, s2, s3]; }` },
  tA_1d: { transA: true, out: (M, N) => [M * N], fn: `function (a, b) {
    const x = this.thread.x; const i = Math.floor(x / this.constants.N); const j = x - i * this.constants.N;
    let s = 0;
    for (let k = 0; k < this.constants.K; k++) { s += a[k * this.constants.M + i] * b[k * this.constants.N + j]; }
    return s; }` },
  tA_vec4: { transA: true, out: (M, N) => [(M * N) / 4], vec4: true, fn: `function (a, b) {
    const x = this.thread.x; const q = this.constants.N / 4; const i = Math.floor(x / q); const j = (x - i * q) * 4;
    let s0 = 0; let s1 = 0; let s2 = 0; let s3 = 0;
    for (let k = 0; k < this.constants.K; k++) {
      const av = a[k * this.constants.M + i]; const o = k * this.constants.N + j;
      s0 += av * b[o]; s1 += av * b[o + 1]; s2 += av * b[o + 2]; s3 += av * b[o + 3];
    }
    return [s0, s1, s2, s3]; }` },
};

async function main() {
  const mode = arg('mode', 'webgpu');
  const scale = Number(arg('scale', '1')); // divide the sizes, for a quick check on a CPU
  if (mode === 'webgpu') {
    const { create, globals } = await import('webgpu');
    Object.assign(globalThis, globals);
    const gpuApi = create([]);
    const requestAdapter = gpuApi.requestAdapter.bind(gpuApi);
    gpuApi.requestAdapter = async (...a) => {
      const adapter = await requestAdapter(...a);
      const requestDevice = adapter.requestDevice.bind(adapter);
      adapter.requestDevice = async (...b) => {
        const device = await requestDevice(...b);
        Object.defineProperty(device, 'onuncapturederror', { value: null, writable: true, configurable: true });
        return device;
      };
      return adapter;
    };
    globalThis.navigator = { gpu: gpuApi };
  }
  const gpu = new GPU({ mode });
  let seed = 3;
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296) - 0.5;
  const rows = [];
  for (const [name, v] of Object.entries(variants)) {
    // fwd: hprebn = embcat W1 (4096×384 · 384×4096); transA: dW1 = embcatᵀ dhprebn (384×4096 · 4096×4096)
    const [M, K, N] = (v.transA ? [384, 4096, 4096] : [4096, 384, 4096]).map((d) => d / scale);
    const a = Float32Array.from({ length: M * K }, rand);
    const b = Float32Array.from({ length: K * N }, rand);
    const settings = { output: v.out(M, N), precision: 'single', tactic: 'precision', constants: { M, K, N } };
    if (v.vec4) settings.returnType = 'Array(4)';
    // eslint-disable-next-line no-new-func
    const mm = gpu.createKernel(new Function(`return ${v.fn}`)(), settings);
    const sink1 = gpu.createKernel(function (c) { return c[0] + c[this.constants.L - 1]; }, { output: [1], precision: 'single', constants: { L: M * N } });
    const sink4 = gpu.createKernel(function (c, d, e, f) { return c[0] + d[1] + e[2] + f[this.constants.L - 1]; }, { output: [1], precision: 'single', constants: { L: M * N } });
    const full = gpu.createPipeline(function (x, y) { return mm(x, y); });
    const once = gpu.createPipeline(function (x, y) { return sink1(mm(x, y)); });
    const four = gpu.createPipeline(function (x, y0, y1, y2, y3) { return sink4(mm(x, y0), mm(x, y1), mm(x, y2), mm(x, y3)); });
    let err = 0;
    try {
      const c = await full(a, b);
      const flat = c.length === M * N ? c : Float32Array.from(Array.from(c).flatMap((r) => Array.from(r)));
      for (let t = 0; t < 256; t++) {
        const i = (t * 7919) % M;
        const j = (t * 104729) % N;
        let s = 0;
        for (let k = 0; k < K; k++) s += (v.transA ? a[k * M + i] : a[i * K + k]) * b[k * N + j];
        err = Math.max(err, Math.abs(flat[i * N + j] - s) / Math.max(Math.abs(s), 1));
      }
      const b1 = Float32Array.from(b);
      const b2 = Float32Array.from(b);
      const b3 = Float32Array.from(b);
      const time = async (f) => {
        for (let w = 0; w < 2; w++) await f();
        const ts = [];
        for (let r = 0; r < 7; r++) {
          const t0 = performance.now();
          await f();
          ts.push(performance.now() - t0);
        }
        return ts.sort((p, q) => p - q)[3];
      };
      const t1 = await time(() => once(a, b));
      const t4 = await time(() => four(a, b, b1, b2, b3));
      const ms = (t4 - t1) / 3;
      rows.push({ name, shape: `${M}x${K}x${N}`, t1, ms, gflops: (2 * M * K * N) / ms / 1e6, err });
    } catch (e) {
      rows.push({ name, shape: `${M}x${K}x${N}`, error: String(e?.stack ?? e).split('\n').slice(0, 4).join(' | ') });
    }
  }
  console.log(`gpu-matmul: mode ${mode}, scale 1/${scale}`);
  console.log('variant    shape            1 call ms  per product ms  GFLOP/s  max rel err');
  for (const r of rows) {
    if (r.error) console.log(`${r.name.padEnd(10)} ${r.shape.padEnd(16)} ERROR ${r.error}`);
    else console.log(`${r.name.padEnd(10)} ${r.shape.padEnd(16)} ${r.t1.toFixed(3).padStart(9)}  ${r.ms.toFixed(3).padStart(14)}  ${r.gflops.toFixed(0).padStart(7)}  ${r.err.toExponential(1)}`);
  }
  process.exit(0); // a Dawn device keeps the process alive
}

await main();
