// Where the makemore XL step's time goes on a real GPU, kernel kind by kernel kind, and which
// GPU.js formulation of a matrix product pays. Each kernel is written the way graphc emits it
// (one output element per thread, sizes as literals; `_2d`: a 2-D output of 8×8 workgroups with
// the same row-major flat index; `_u4`: the reduction loop unrolled by 4). Its operands are
// generated on the device inside the pipeline (an upload of 64 MiB would outweigh the product),
// and its time is that of a pipeline call generating the operands and running it, less that of
// one only generating them (medians of 15 calls, each read back as one number). Every product is
// checked first against a float64 one at 256 sampled entries. `--dawn FEATURES` creates the
// Dawn instance with `enable-dawn-features=FEATURES` (e.g. disable_robustness).
//
//   node bench/gpu-matmul.mjs --mode webasm --scale 16    here, as a check of the script
//   node gpu-matmul.mjs --mode webgpu                     on the lent GPU machine (packed by pack-device.sh)
import { GPU } from 'gpu.js';
import { arg, setupWebGPU } from './device.mjs';

/** The generated operand values (exact in f32 below 2^24 elements), as the kernels compute them. */
const gen = (x, salt) => ((((x + salt) % 101) * 37) % 97) / 97 - 0.5;

const mm = (kind, a, b, form) => {
  const index = form === '2d' ? 'this.thread.x + this.thread.y * N' : 'this.thread.x';
  const step = (d) => (d ? `${a.replace(/k/g, `(k + ${d})`)} * ${b.replace(/k/g, `(k + ${d})`)}` : `${a} * ${b}`);
  const loop = form === 'u4' ? `for (let k = 0; k < K; k += 4) { s += ${[0, 1, 2, 3].map(step).join(' + ')}; }` : `for (let k = 0; k < K; k++) { s += ${step(0)}; }`;
  return { kind, form, body: `function (a, b) { const x = ${index}; const i = Math.floor(x / N); const j = x - i * N; let s = 0; ${loop} return s; }` };
};
const FWD = ['a[i * K + k]', 'b[k * N + j]'];
const TA = ['a[k * M + i]', 'b[k * N + j]'];
const TB = ['a[i * K + k]', 'b[j * K + k]'];
/** [M, K, N] and operand shapes of the XL step's products: hprebn, dW1, dembcat, dh. */
// `ref(i, k, j)`: the flat indices of a and b that the term k of output (i, j) multiplies
const PRODUCTS = {
  fwd: { mkn: [4096, 384, 4096], sizes: (M, K, N) => [M * K, K * N], ref: (M, K, N) => (i, k, j) => [i * K + k, k * N + j] },
  tA: { mkn: [384, 4096, 4096], sizes: (M, K, N) => [K * M, K * N], ref: (M, K, N) => (i, k, j) => [k * M + i, k * N + j] },
  tB: { mkn: [4096, 4096, 384], sizes: (M, K, N) => [M * K, N * K], ref: (M, K, N) => (i, k, j) => [i * K + k, j * K + k] },
  dh: { mkn: [4096, 27, 4096], sizes: (M, K, N) => [M * K, N * K], ref: (M, K, N) => (i, k, j) => [i * K + k, j * K + k] },
};
const CASES = [
  ...['1d', '2d', 'u4'].map((f) => ({ ...mm('fwd', ...FWD, f), ...PRODUCTS.fwd })),
  ...['1d', '2d', 'u4'].map((f) => ({ ...mm('tA', ...TA, f), ...PRODUCTS.tA })),
  ...['1d', '2d', 'u4'].map((f) => ({ ...mm('tB', ...TB, f), ...PRODUCTS.tB })),
  ...['1d', '2d'].map((f) => ({ ...mm('dh', ...TB, f), ...PRODUCTS.dh })),
  // a batch reduction (bnmeani, db1, ...): one thread per column, down 4096 rows
  { kind: 'colsum', form: '1d', mkn: [1, 4096, 4096], sizes: (M, K, N) => [K * N, 1], ref: (M, K, N) => (i, k, j) => [k * N + j, -1], body: 'function (a, b) { const j = this.thread.x; let s = 0; for (let k = 0; k < K; k++) { s += a[k * N + j]; } return s; }' },
  // an elementwise step over the hidden layer (bnraw, h, dhprebn, ...)
  { kind: 'ew', form: '1d', mkn: [4096, 1, 4096], sizes: (M, K, N) => [M * N, M * N], body: 'function (a, b) { const x = this.thread.x; return a[x] * b[x] + 1; }' },
];

async function median(f, n = 15) {
  for (let w = 0; w < 3; w++) await f();
  const ts = [];
  for (let r = 0; r < n; r++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  return ts.sort((p, q) => p - q)[n >> 1];
}

async function main() {
  const mode = arg('mode', 'webgpu');
  const scale = Number(arg('scale', '1')); // divide the sizes, for a quick check on a CPU
  const features = arg('dawn', '');
  if (mode === 'webgpu') await setupWebGPU(features);
  const gpu = new GPU({ mode });
  const opts = (output) => ({ output, precision: 'single', tactic: 'precision' });
  const rows = [];
  for (const c of CASES) {
    const [M, K, N] = c.mkn.map((d) => (d === 1 || d === 27 ? d : d / scale));
    const [na, nb] = c.sizes(M, K, N);
    const nOut = c.kind === 'colsum' ? N : M * N;
    const name = `${c.kind}_${c.form}`;
    try {
      // eslint-disable-next-line no-new-func
      const body = new Function(`return ${c.body.replace(/\b([MKN])\b/g, (d) => String({ M, K, N }[d]))}`)();
      const k = gpu.createKernel(body, opts(c.form === '2d' ? [N, M] : [nOut]));
      const genA = gpu.createKernel(new Function(`return function () { const x = this.thread.x; return ((((x + 1) % 101) * 37) % 97) / 97 - 0.5; }`)(), opts([na]));
      const genB = gpu.createKernel(new Function(`return function () { const x = this.thread.x; return ((((x + 2) % 101) * 37) % 97) / 97 - 0.5; }`)(), opts([nb]));
      const sink = gpu.createKernel(function (p, q) { return p[0] + q[0]; }, opts([1]));
      const flat = gpu.createKernel(function (p) { return p[this.thread.x]; }, opts([nOut]));
      const base = gpu.createPipeline(() => sink(genA(), genB()));
      const one = gpu.createPipeline(() => { const o = k(genA(), genB()); return sink(o, o); });
      let err = 0;
      if (c.kind !== 'ew') {
        const out = await gpu.createPipeline(() => flat(k(genA(), genB())))();
        const ref = c.ref(M, K, N);
        for (let t = 0; t < 256; t++) {
          const i = (t * 7919) % M;
          const j = (t * 104729) % N;
          let s = 0;
          for (let kk = 0; kk < K; kk++) {
            const [ia, ib] = ref(i, kk, j);
            s += gen(ia, 1) * (ib < 0 ? 1 : gen(ib, 2));
          }
          err = Math.max(err, Math.abs(out[c.kind === 'colsum' ? j : i * N + j] - s) / Math.max(Math.abs(s), 1));
        }
      }
      const tb = await median(() => base());
      const t1 = await median(() => one());
      const ms = Math.max(t1 - tb, 1e-6);
      const flop = c.kind === 'ew' ? 2 * M * N : c.kind === 'colsum' ? K * N : 2 * M * K * N;
      const bytes = c.kind === 'ew' ? 12 * M * N : c.kind === 'colsum' ? 4 * (K * N + N) : 4 * (na + nb + M * N);
      rows.push({ name, shape: `${M}x${K}x${N}`, base: tb, ms, gflops: flop / ms / 1e6, gbs: bytes / ms / 1e6, err });
    } catch (e) {
      rows.push({ name, shape: `${M}x${K}x${N}`, error: String(e?.stack ?? e).split('\n').slice(0, 3).join(' | ') });
    }
  }
  // moving data: a param the size of XL's W1 uploaded, and a gradient that size read back
  const n = 384 * 4096 / scale;
  const host = new Float32Array(n).fill(0.5);
  const take = gpu.createKernel(function (p) { return p[0]; }, opts([1]));
  const fill = gpu.createKernel(function () { return this.thread.x * 0.5; }, opts([n]));
  const small = gpu.createKernel(function () { return 1; }, opts([1]));
  const tNone = await median(gpu.createPipeline(() => small()));
  const tUp = await median(gpu.createPipeline((p) => take(p)).bind(null, host));
  const tDown = await median(gpu.createPipeline(() => fill()));
  console.log(`gpu-matmul: mode ${mode}${features ? `, dawn features ${features}` : ''}, scale 1/${scale}`);
  console.log(`a pipeline call: ${tNone.toFixed(3)} ms; uploading ${(n * 4) / 2 ** 20} MiB adds ${(tUp - tNone).toFixed(3)} ms; reading it back adds ${(tDown - tNone).toFixed(3)} ms`);
  console.log('kernel     M x K x N          base ms  kernel ms  GFLOP/s   GB/s  max rel err');
  for (const r of rows) {
    if (r.error) console.log(`${r.name.padEnd(10)} ${r.shape.padEnd(16)} ERROR ${r.error}`);
    else console.log(`${r.name.padEnd(10)} ${r.shape.padEnd(16)} ${r.base.toFixed(3).padStart(8)}  ${r.ms.toFixed(3).padStart(9)}  ${r.gflops.toFixed(0).padStart(7)}  ${r.gbs.toFixed(0).padStart(5)}  ${r.err.toExponential(1)}`);
  }
  process.exit(0); // a Dawn device keeps the process alive
}

await main();
