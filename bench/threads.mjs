// Does splitting a matmul across two threads pay? A measurement for the wasm target, not a
// feature of it: one of graphc's SIMD kernels over all the rows of C, against two kernels over
// half the rows each, one on this thread and one on a worker, sharing one WebAssembly.Memory
// (SharedArrayBuffer). Each call wakes the worker through an Atomics flag, runs its own half, and
// waits for the worker's (the synchronous API of the generated modules allows no more). Only
// layouts where a row split is contiguous: A not transposed (a transposed B is packed by each
// half for itself, as the kernel does).
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ROOT } from './models.mjs';
import { msPerCall } from './timing.mjs';

const dist = (p) => import(pathToFileURL(path.join(ROOT, 'dist', p)).href);

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { memory, bytes, flag } = workerData;
const run = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports.bottom;
const sync = new Int32Array(memory.buffer, flag, 2);
let seen = 0;
parentPort.postMessage('ready');
for (;;) {
  Atomics.wait(sync, 0, seen);
  seen = Atomics.load(sync, 0);
  if (seen < 0) break;
  run();
  Atomics.store(sync, 1, seen);
  Atomics.notify(sync, 1);
}
`;


/** ms for C = A·op(B) on one thread and split by rows over two; checks that both give the same C. */
export async function splitMatmul({ M, N, K, transB }) {
  const { encodeModule } = await dist('codegen/wasm/encode.js');
  const { matmulBody } = await dist('codegen/wasm/matmul.js');
  const half = Math.floor(M / 2);
  let end = 64; // the flag words first
  const place = (floats) => {
    const at = end;
    end += Math.ceil((floats * 4) / 16) * 16 + 16;
    return at;
  };
  const a = place(M * K);
  const b = place(K * N);
  const c = place(M * N);
  const c1 = place(M * N);
  const packs = [place(K * N), place(K * N)];
  const pages = Math.ceil(end / 65536) + 1;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const f32 = new Float32Array(memory.buffer);
  for (let i = a / 4; i < (c - 16) / 4; i++) f32[i] = Math.sin(i) * 0.5;
  const kernel = (name, rows, rowOffset, out, pack) =>
    matmulBody({ name, M: rows, N, K, batch: 1, transA: false, transB, a: a + rowOffset * K * 4, b, c: out + rowOffset * N * 4, pack: transB ? pack : undefined, aBatched: false, bBatched: false });
  const encode = (fns) => encodeModule(pages, fns, { shared: true });
  const one = new WebAssembly.Instance(new WebAssembly.Module(encode([{ name: 'all', body: kernel('all', M, 0, c, packs[0]) }])), { env: { memory } }).exports.all;
  const top = new WebAssembly.Instance(new WebAssembly.Module(encode([{ name: 'top', body: kernel('top', half, 0, c1, packs[0]) }])), { env: { memory } }).exports.top;
  const bottomBytes = encode([{ name: 'bottom', body: kernel('bottom', M - half, half, c1, packs[1]) }]);
  const worker = new Worker(WORKER, { eval: true, workerData: { memory, bytes: bottomBytes, flag: 0 } });
  await new Promise((resolve) => worker.once('message', resolve));
  const sync = new Int32Array(memory.buffer, 0, 2);
  let gen = 0;
  const two = () => {
    gen++;
    Atomics.store(sync, 0, gen);
    Atomics.notify(sync, 0);
    top();
    while (Atomics.load(sync, 1) !== gen) Atomics.wait(sync, 1, gen - 1);
  };
  try {
    one();
    two();
    const same = f32.subarray(c / 4, c / 4 + M * N).every((x, i) => x === f32[c1 / 4 + i]);
    if (!same) throw new Error('the split matmul differs from the whole one');
    const msOne = msPerCall(one, 300);
    const msTwo = msPerCall(two, 300);
    return { msOne, msTwo, speedup: msOne / msTwo };
  } finally {
    Atomics.store(sync, 0, -1);
    Atomics.notify(sync, 0);
    await worker.terminate();
  }
}
