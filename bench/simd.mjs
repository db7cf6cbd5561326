// How close the wasm target's matmul kernels come to the machine's limit: the GFLOP/s of a plain
// WebAssembly SIMD multiply-add loop (what one thread of this machine reaches with f32x4.mul and
// f32x4.add from L1), and of each matmul kernel of a wasm build run on its own
// (the same code graphc emits for that shape, on operands in a fresh memory, without its
// epilogue). Uses the compiled compiler in dist/.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './models.mjs';
import { msPerCall } from './timing.mjs';

const dist = (p) => import(pathToFileURL(path.join(ROOT, 'dist', p)).href);

/**
 * The SIMD peak: a loop of f32x4 multiply-adds acc += a · b into R × V independent accumulators,
 * a splatted and b loaded from the same few bytes each iteration (L1, so that the loads cost
 * what they cost a kernel, but nothing is streamed), stored at the end so that nothing is
 * optimised away. The best of a few accumulator grids.
 */
export async function simdPeak() {
  const { Body, encodeModule } = await dist('codegen/wasm/encode.js');
  const steps = 1_000_000;
  let best = { gflops: 0, accumulators: '' };
  for (const [R, V] of [
    [4, 2],
    [3, 4],
    [4, 3],
  ]) {
    const f = new Body();
    const counter = f.local('i32');
    const zero = f.local('i32');
    const accs = Array.from({ length: R * V }, () => f.local('v128'));
    const bs = Array.from({ length: V }, () => f.local('v128'));
    const a = f.local('v128');
    f.repeat(counter, steps, () => {
      for (let v = 0; v < V; v++) f.get(zero).v128Load(16 * v).set(bs[v]);
      for (let r = 0; r < R; r++) {
        f.get(zero).v128Load32Splat(64 + 4 * r).set(a);
        for (let v = 0; v < V; v++) f.get(accs[r * V + v]).get(a).get(bs[v]).f32x4('mul').f32x4('add').set(accs[r * V + v]);
      }
    });
    accs.forEach((acc, k) => f.get(zero).get(acc).v128Store(128 + 16 * k));
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(encodeModule(1, [{ name: 'peak', body: f }])), { env: { memory } });
    const ms = msPerCall(inst.exports.peak, 300);
    const gflops = (R * V * 8 * steps) / (ms * 1e6);
    if (gflops > best.gflops) best = { gflops, accumulators: `${R}×${V}` };
  }
  return best;
}

/** The matmul shapes a wasm module lists (`//   matmul_x: … [M,K]·[K,N] (A transposed)`). */
export function kernelShapes(moduleFile) {
  const text = readFileSync(moduleFile, 'utf8');
  const re = /^\/\/ {3}(matmul_\w+): .* {3}(?:(\d+) × )?\[(\d+),(\d+)\]·\[(\d+),(\d+)\](?: \(([AB, ]+) transposed\))?/gm;
  return [...text.matchAll(re)].map((m) => ({
    name: m[1],
    batch: Number(m[2] ?? 1),
    M: Number(m[3]),
    K: Number(m[4]),
    N: Number(m[6]),
    transA: /A/.test(m[7] ?? ''),
    transB: /B/.test(m[7] ?? ''),
  }));
}

/**
 * graphc's kernel for one matmul shape in a fresh memory of its own (operands of sin noise), given
 * the scratch areas the module gives it (codegen/wasm.ts): B packed (a transposed B, or an
 * untransposed one where `packsB`: B's rows 4N bytes apart are never read in place there), A packed
 * in row tiles where `packsA`; and run as the module runs it (codegen/wasm.ts's functionsOf): one
 * matrix as B's packing (packBody) then the ranged kernel over [0, M), a batch as the kernel of its
 * matrices [0, batch). `encode` and `mm` are codegen/wasm/encode.js and matmul.js (dist/'s, or the
 * sources' in a test). { kernel, run (the module's whole call), exports (its functions: range, pack, mm), memory, flops }.
 */
export function benchKernel({ Body, encodeModule }, { matmulBody, packBody, packsA, packsB }, { M, N, K, batch = 1, transA = false, transB = false }) {
  const shape = { M, N, K, batch, transA, transB };
  const floats = [batch * M * K, batch * K * N, batch * M * N, batch * K * N, M * K];
  const at = [];
  let end = 0;
  for (const n of floats) {
    at.push(end);
    end += Math.ceil((n * 4) / 16) * 16 + 16;
  }
  const pages = Math.ceil(end / 65536) + 1;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  new Float32Array(memory.buffer).forEach((_x, i, a) => (a[i] = Math.sin(i) * 0.5));
  const kernel = { name: 'mm', ...shape, a: at[0], b: at[1], c: at[2], pack: transB || packsB(shape) ? at[3] : undefined, packA: packsA(shape) ? at[4] : undefined, aBatched: batch > 1, bBatched: batch > 1 };
  const fns = [{ name: 'range', body: matmulBody(kernel, batch === 1 ? { ranged: true } : { batches: true }) }];
  const whole = new Body();
  if (batch === 1 && kernel.pack !== undefined) {
    fns.push({ name: 'pack', body: packBody(kernel) });
    whole.i32(0).i32(transB ? N : K).call(1);
  }
  whole.i32(0).i32(batch === 1 ? M : batch).call(0);
  fns.push({ name: 'mm', body: whole });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(encodeModule(pages, fns)), { env: { memory } });
  return { kernel, run: inst.exports.mm, exports: inst.exports, memory, flops: 2 * batch * M * N * K };
}

/** GFLOP/s of graphc's kernel for one matmul shape, run on its own (benchKernel). */
export async function kernelGflops(shape) {
  const k = benchKernel(await dist('codegen/wasm/encode.js'), await dist('codegen/wasm/matmul.js'), shape);
  const ms = msPerCall(k.run);
  return { ms, gflops: k.flops / (ms * 1e6) };
}
