// The wasm target (--target wasm): the encoder, the SIMD matmul kernels on their own against a
// float64 reference (every operand layout, ragged shapes, batches, register tiles), the epilogue
// of each op at the tiles' points, the softmax kernel, and the wasm module of every example against the flat module (the
// elementwise and reduction groups are kernels of the kernel form: test/wasm-kernel.test.ts).

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import { Body, encodeModule, RELAXED_PROBE, relaxSites, sleb, uleb } from '../codegen/wasm/encode.js';

/** What this process's runtime runs: Node 20 has relaxed SIMD only behind --experimental-wasm-relaxed-simd. */
const NATIVE_SIMD = WebAssembly.validate(Uint8Array.from(RELAXED_PROBE)) ? 'relaxed' : 'plain';
import type { MatmulKernel } from '../codegen/wasm/matmul.js';
import { matmulBody, packBody, packFloats, packsA, packsB } from '../codegen/wasm/matmul.js';
import { softmaxBody } from '../codegen/wasm/softmax.js';
import type { GeneratedModule } from './helpers.js';
import { modelFile, randomArgs, relErr, rng, ROOT, run, tmp } from './helpers.js';
import { kernelJsSteps } from './wasm-steps.js';

// The part of the WebAssembly API these tests use (TypeScript declares it only with the DOM library).
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Memory: new (size: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
};

describe('the encoder', () => {
  it('writes LEB128 as the binary format defines it', () => {
    expect(uleb(0)).toEqual([0]);
    expect(uleb(127)).toEqual([0x7f]);
    expect(uleb(128)).toEqual([0x80, 0x01]);
    expect(uleb(624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(sleb(-1)).toEqual([0x7f]);
    expect(sleb(63)).toEqual([0x3f]);
    expect(sleb(64)).toEqual([0xc0, 0x00]);
    expect(sleb(-64)).toEqual([0x40]);
    expect(sleb(-123456)).toEqual([0xc0, 0xbb, 0x78]);
  });

  it('encodes a module that validates and runs: a loop storing a splatted constant', () => {
    const f = new Body();
    const n = f.local('i32');
    const p = f.local('i32');
    f.repeat(n, 5, () => {
      f.get(p).f32x4Const(2.5).v128Store(0);
      f.bump(p, 16);
    });
    const bytes = encodeModule(1, [{ name: 'fill', body: f }]);
    expect(WebAssembly.validate(bytes)).toBe(true);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    (inst.exports.fill as () => void)();
    const out = new Float32Array(memory.buffer, 0, 24);
    expect([...out]).toEqual([...Array(20).fill(2.5), 0, 0, 0, 0]);
  });

  it('lists the multiply-adds it writes: rewritten at those offsets, the plain module is the relaxed one (locals past 127 included)', () => {
    const f = new Body();
    const p = f.local('i32');
    const locals = Array.from({ length: 200 }, () => f.local('v128'));
    for (const [a, b, c] of [[0, 1, 2], [3, 4, 199], [198, 150, 130]] as const) f.get(locals[a]!).get(locals[b]!).madd(locals[c]!).set(locals[c]!);
    f.get(p).get(locals[130]!).v128Store(0);
    const sites: number[] = [];
    const plain = encodeModule(1, [{ name: 'f', body: f }], { sites });
    const relaxed = encodeModule(1, [{ name: 'f', body: f }], { relaxed: true });
    expect(sites.length).toBe(3);
    expect(relaxed.length).toBe(plain.length);
    expect(WebAssembly.validate(plain)).toBe(true);
    // each site, in the order written: f32x4.mul, local.get acc, f32x4.add; fused: local.get acc, f32x4.relaxed_madd, three nops
    const accs = [2, 199, 130].map((c) => locals[c]!.index);
    sites.forEach((at, i) => {
      const get = [0x20, ...uleb(accs[i]!)];
      expect([...plain.subarray(at, at + get.length + 6)], `site ${i}: plain`).toEqual([0xfd, 0xe6, 0x01, ...get, 0xfd, 0xe4, 0x01]);
      expect([...relaxed.subarray(at, at + get.length + 6)], `site ${i}: relaxed`).toEqual([...get, 0xfd, 0x85, 0x02, 0x01, 0x01, 0x01]);
    });
    expect(plain).not.toEqual(relaxed);
    const patched = plain.slice();
    relaxSites(patched, sites);
    expect(patched).toEqual(relaxed);
  });
});

/** Runs one kernel over random operands placed in a fresh memory; returns C and the float64 reference. */
function runKernel(
  k: Omit<MatmulKernel, 'a' | 'b' | 'c' | 'pack' | 'panel' | 'packA' | 'name'> & { readonly packB?: boolean; readonly panelB?: boolean; readonly packA?: boolean },
  seed = 1,
) {
  const { M, N, K, batch, transA, transB } = k;
  const aLen = (k.aBatched ? batch : 1) * M * K;
  const bLen = (k.bBatched ? batch : 1) * K * N;
  const cLen = batch * M * N;
  let at = 0;
  const place = (n: number) => {
    const o = at;
    at += Math.ceil((n * 4) / 16) * 16 + 16;
    return o;
  };
  const a = place(aLen);
  const b = place(bLen);
  const c = place(cLen);
  const pack = place(K * Math.max(N, 64));
  const packAAt = k.packA ? place(M * K) : 0;
  const pages = Math.ceil((at + 64) / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const f32 = (o: number, n: number) => new Float32Array(memory.buffer, o, n);
  const r = rng(seed);
  // fill the whole memory with noise first: columns past N must never reach a stored result
  new Float32Array(memory.buffer).forEach((_x, i, arr) => (arr[i] = 1e6 * (r() - 0.5)));
  for (const [o, n] of [[a, aLen], [b, bLen]] as const) f32(o, n).forEach((_x, i, arr) => (arr[i] = r() - 0.5));
  f32(c, cLen).fill(0);
  const { packB, panelB, packA, ...rest } = k;
  const kernel: MatmulKernel = { ...rest, name: 'mm', a, b, c, pack: transB || packB ? pack : undefined, panel: panelB ? pack : undefined, packA: packA ? packAAt : undefined };
  const bytes = encodeModule(pages, [{ name: 'mm', body: matmulBody(kernel) }]);
  expect(WebAssembly.validate(bytes)).toBe(true);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
  const want = new Float64Array(cLen);
  const A = f32(a, aLen);
  const B = f32(b, bLen);
  for (let t = 0; t < batch; t++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        const ao = k.aBatched ? t * M * K : 0;
        const bo = k.bBatched ? t * K * N : 0;
        for (let p = 0; p < K; p++) s += A[ao + (transA ? p * M + i : i * K + p)]! * B[bo + (transB ? j * K + p : p * N + j)]!;
        want[t * M * N + i * N + j] = s;
      }
  (inst.exports.mm as () => void)();
  return { got: Float32Array.from(f32(c, cLen)), want, memory, c, cLen };
}

describe('SIMD matmul kernels against a float64 reference', () => {
  const layouts = [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const;
  const shapes = [
    [1, 1, 1],
    [3, 5, 2],
    [4, 8, 7],
    [5, 9, 3],
    [9, 27, 16],
    [13, 3, 30],
    [32, 64, 30],
    // N and K multiples of 4: a transposed B packed in 4×4 blocks
    [6, 20, 12],
  ] as const;
  for (const [transA, transB] of layouts)
    it.each(shapes)(`transA=${transA} transB=${transB}: [%i,K]·[K,%i] with K = %i`, (M, N, K) => {
      for (const tile of [undefined, { rows: 1, vecs: 1 }, { rows: 3, vecs: 3 }, { rows: 8, vecs: 1 }]) {
        const { got, want } = runKernel({ M, N, K, batch: 1, transA, transB, aBatched: false, bBatched: false, tile } as never);
        expect(relErr(got, want), `tile ${JSON.stringify(tile)}`).toBeLessThan(1e-5);
      }
    });

  // B packed into panels of the tile's columns (an untransposed B given a pack area, or copied one
  // panel at a time into a panel area); N a multiple of 4, ragged panels (12 = 8 + 4 columns with
  // 2 vectors, 20 = 12 + 8 with 3) and ragged row tiles, K past MATMUL_BLOCK
  it.each([
    [17, 12, 5],
    [16, 20, 33],
    [9, 8, 300],
    [21, 36, 16],
  ])('an untransposed B in panels: [%i,K]·[K,%i] with K = %i, packed whole or a panel at a time', (M, N, K) => {
    for (const tile of [undefined, { rows: 3, vecs: 3 }, { rows: 1, vecs: 1 }])
      for (const transA of [false, true])
        for (const mode of [{ packB: true }, { panelB: true }]) {
          const { got, want } = runKernel({ M, N, K, batch: 1, transA, transB: false, aBatched: false, bBatched: false, tile, ...mode } as never);
          expect(relErr(got, want), `tile ${JSON.stringify(tile)} transA ${transA} ${JSON.stringify(mode)}`).toBeLessThan(1e-5);
        }
  });

  // a transposed A packed in row tiles (packsA: M ≥ 128): a ragged last row tile (258 = 64·4 + 2)
  // read from A itself, K past MATMUL_BLOCK; and the ranged kernel, each block packing its own
  // tiles, bit for bit the whole kernel
  it('a transposed A packed in row tiles: [258,K]ᵀ·[K,12], whole and over uneven row blocks', () => {
    const [M, N, K] = [258, 12, 300];
    expect(packsA({ M, K, batch: 1, transA: true })).toBe(true);
    for (const transB of [false, true]) {
      const whole = runKernel({ M, N, K, batch: 1, transA: true, transB, aBatched: false, bBatched: false, packA: true }, 5);
      expect(relErr(whole.got, whole.want), `transB ${transB}`).toBeLessThan(1e-5);
      const plain = runKernel({ M, N, K, batch: 1, transA: true, transB, aBatched: false, bBatched: false }, 5);
      expect(relErr(plain.got, plain.want)).toBeLessThan(1e-5);
      const at = (n: number) => Math.ceil((n * 4) / 16) * 16 + 16;
      const a = 0;
      const b = a + at(M * K);
      const c = b + at(K * N);
      const pack = c + 2 * at(M * N) + at(N) + at(M);
      const packA = pack + at(K * Math.max(N, 64));
      const k: MatmulKernel = { M, N, K, batch: 1, transA: true, transB, aBatched: false, bBatched: false, name: 'mm', a, b, c, pack: transB ? pack : undefined, packA };
      const bytes = encodeModule(whole.memory.buffer.byteLength / 65536, [
        { name: 'pack', body: packBody(k) },
        { name: 'range', body: matmulBody(k, { ranged: true }) },
      ]);
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: whole.memory } });
      const run = (name: string, s: number, e: number) => (inst.exports[name] as (s: number, e: number) => void)(s, e);
      new Float32Array(whole.memory.buffer, c, M * N).fill(0);
      new Float32Array(whole.memory.buffer, packA, M * K).fill(Number.NaN); // the whole kernel's packing undone
      if (transB) run('pack', 0, N);
      for (const [s, e] of [[0, 8], [8, 100], [100, 256], [256, 258]]) run('range', s, e);
      const got = new Float32Array(whole.memory.buffer, c, M * N);
      expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(whole.got.buffer)), `transB ${transB}`).toBe(true);
    }
  });

  it('a packed B is packed again for each matrix of a batch', () => {
    // K = 8: a transposed B packed in 4×4 blocks
    for (const K of [7, 8])
      for (const [transB, packB] of [[false, true], [true, false]] as const) {
        const { got, want } = runKernel({ M: 9, N: 12, K, batch: 3, transA: false, transB, aBatched: true, bBatched: true, packB });
        expect(relErr(got, want), `K ${K}, transB ${transB}`).toBeLessThan(1e-5);
      }
  });

  it('the ranged kernel after packBody, over uneven row blocks, computes what the whole kernel does, bit for bit', () => {
    // K = 40: an untransposed B's rows [7, 40) packed in two blocks of 16 (full panels and the ragged one) and a last row;
    // a transposed B's rows [0, 7) in a 4 × 4 block and three single rows, [7, 20) one row and three blocks
    for (const [transB, K] of [[false, 19], [true, 19], [false, 40], [true, 40]] as const) {
      const M = 22;
      const N = 20;
      const whole = runKernel({ M, N, K, batch: 1, transA: false, transB, aBatched: false, bBatched: false, packB: !transB }, 4);
      const kernel = { M, N, K, batch: 1, transA: false, transB, aBatched: false, bBatched: false, name: 'mm' };
      // the same operands in the same memory: the whole kernel's addresses again (runKernel placed them from 0)
      const at = (n: number) => Math.ceil((n * 4) / 16) * 16 + 16;
      const a = 0;
      const b = a + at(M * K);
      const c = b + at(K * N);
      const pack = c + 2 * at(M * N) + at(N) + at(M);
      const k: MatmulKernel = { ...kernel, a, b, c, pack };
      const bytes = encodeModule(whole.memory.buffer.byteLength / 65536, [
        { name: 'pack', body: packBody(k) },
        { name: 'range', body: matmulBody(k, { ranged: true }) },
      ]);
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: whole.memory } });
      const run = (name: string, s: number, e: number) => (inst.exports[name] as (s: number, e: number) => void)(s, e);
      new Float32Array(whole.memory.buffer, c, M * N).fill(0);
      new Float32Array(whole.memory.buffer, pack, K * N).fill(Number.NaN); // the whole kernel's packing undone
      const packRows = transB ? N : K;
      run('pack', 0, 7);
      run('pack', 7, packRows);
      for (const [s, e] of [[0, 8], [8, 12], [12, 20], [20, 22]]) run('range', s, e);
      const got = new Float32Array(whole.memory.buffer, c, M * N);
      expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(whole.got.buffer)), `transB ${transB} K ${K}`).toBe(true);
    }
  });

  it('a batch split by matrices (the blocks of threads: each packs its own B) computes what the whole kernel does, bit for bit', () => {
    for (const [transA, transB] of layouts) {
      const [M, N, K, batch] = [9, 12, 7, 5];
      const whole = runKernel({ M, N, K, batch, transA, transB, aBatched: true, bBatched: true }, 6);
      expect(relErr(whole.got, whole.want)).toBeLessThan(1e-5);
      const at = (n: number) => Math.ceil((n * 4) / 16) * 16 + 16;
      const a = 0;
      const b = a + at(batch * M * K);
      const c = b + at(batch * K * N);
      const pack = c + 2 * at(batch * M * N) + at(N) + at(M);
      const k: MatmulKernel = { M, N, K, batch, transA, transB, aBatched: true, bBatched: true, name: 'mm', a, b, c, pack: transB ? pack : undefined };
      expect(packFloats(k)).toBe(transB ? batch * K * N : 0);
      const bytes = encodeModule(whole.memory.buffer.byteLength / 65536, [{ name: 'range', body: matmulBody(k, { batches: true }) }]);
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: whole.memory } });
      new Float32Array(whole.memory.buffer, c, batch * M * N).fill(0);
      for (const [s, e] of [[3, 5], [0, 1], [1, 3]]) (inst.exports.range as (s: number, e: number) => void)(s, e);
      const got = new Float32Array(whole.memory.buffer, c, batch * M * N);
      expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(whole.got.buffer)), `transA ${transA} transB ${transB}`).toBe(true);
    }
  });

  it.each([
    [true, true],
    [true, false],
    [false, true],
  ])('batched (aBatched %s, bBatched %s), both transposes', (aBatched, bBatched) => {
    for (const [transA, transB] of layouts) {
      const { got, want } = runKernel({ M: 5, N: 6, K: 7, batch: 3, transA, transB, aBatched, bBatched });
      expect(relErr(got, want), `transA ${transA} transB ${transB}`).toBeLessThan(1e-5);
    }
  });

  it('writes exactly C and nothing past it (ragged last vector, ragged last row tile)', () => {
    const { memory, c, cLen, got, want } = runKernel({ M: 5, N: 7, K: 3, batch: 1, transA: false, transB: false, aBatched: false, bBatched: false });
    expect(relErr(got, want)).toBeLessThan(1e-5);
    const after = new Float32Array(memory.buffer, c + cLen * 4, 3);
    for (const x of after) expect(Math.abs(x)).toBeGreaterThan(0); // the noise is still there
  });

  // bench/run.mjs's table of kernels timed makemore L's [256,192]·[192,1024] and [192,256]ᵀ·[256,1024]
  // reading B's rows 4 KiB apart, and [1024,256]ᵀ·[256,27] reading A unpacked: kernels the module
  // never runs (its kernels pack B and A there), at half the speed of the module's; and it ran the
  // whole kernel (B packed row by row inside it) where the module runs packBody then the ranged
  // kernel: [128,768]ᵀ·[768,512] at 80% of peak against the module's 88% (2026-12-07)
  it('the bench (bench/simd.mjs) times the kernel the module runs: B packed where packsB, A where packsA', async () => {
    // @ts-expect-error: plain ESM without type declarations
    const { benchKernel } = await import('../bench/simd.mjs');
    const mm = { matmulBody, packBody, packsA, packsB };
    for (const [shape, packB, packA] of [
      [{ M: 16, K: 32, N: 512 }, true, false],
      [{ M: 16, K: 32, N: 512, transA: true }, true, false],
      [{ M: 256, K: 256, N: 12, transA: true }, false, true],
      [{ M: 128, K: 768, N: 16, transA: true }, true, true], // the GPT's weight gradients' [128,768]ᵀ (PACK_A_MIN_M)
      [{ M: 8, K: 8, N: 8, transB: true }, true, false],
      [{ M: 8, K: 8, N: 8 }, false, false],
      [{ M: 8, K: 8, N: 8, batch: 3, transB: true }, true, false], // the kernel of a batch's matrices [0, 3), each packing its B (the first checked)
    ] as const) {
      const { kernel, run, memory } = benchKernel({ Body, encodeModule }, mm, shape);
      expect([kernel.pack !== undefined, kernel.packA !== undefined], JSON.stringify(shape)).toEqual([packB, packA]);
      run();
      const { M, K, N } = shape;
      const [tA, tB] = ['transA' in shape, 'transB' in shape];
      const f32 = (o: number, n: number) => new Float32Array(memory.buffer, o, n);
      const [A, B, C] = [f32(kernel.a, M * K), f32(kernel.b, K * N), f32(kernel.c, M * N)];
      const want = Float64Array.from({ length: M * N }, (_x, x) => {
        const [i, j] = [Math.floor(x / N), x % N];
        let s = 0;
        for (let p = 0; p < K; p++) s += A[tA ? p * M + i : i * K + p]! * B[tB ? j * K + p : p * N + j]!;
        return s;
      });
      expect(relErr(Float32Array.from(C), want), JSON.stringify(shape)).toBeLessThan(1e-5);
    }
  });

  // a matmul's epilogue of the kernel form written at the register tile's points (codegen/wasm/tile-epilogue.ts): a row
  // (bias), a column, constants and the epilogue's own values, of each op the matmul groups of the models have; one model,
  // each epilogue on a matmul of its own, built with a batch of 6 (tiles of 4 rows and a ragged one of 2) and with a
  // symbolic one (its addresses read at run time; B = 5, 6, 7), against the flat module
  const EPILOGUES: readonly (readonly [string, string])[] = [
    ['+ row bias', 'p.add(b)'],
    ['− column', 'p.sub(c)'],
    ['× constant', 'p.mul(0.25)'],
    ['/ row', 'p.div(r)'],
    ['relu(+ bias)', 'p.add(b).relu()'],
    ['neg', 'p.neg()'],
    ['abs', 'p.abs()'],
    ['sqrt ∘ square', 'p.square().sqrt()'],
    ['1 / (|x| + 1)', 'p.abs().add(1).pow(-1)'],
    ['rsqrt(x² + 1)', 'p.square().add(1).rsqrt()'],
    ['max with row', 'p.maximum(b)'],
    ['min with column', 'p.minimum(c)'],
    ['> 0', 'p.gt(0).float()'],
    ['≥ row', 'p.ge(b).float()'],
    ['tanh, sigmoid, exp', 'p.tanh().add(p.sigmoid()).add(p.mul(0.1).exp())'],
  ];
  it.each([[6], ['B']] as const)(`epilogues fused into the matmul kernel (batch %s): ${EPILOGUES.map(([n]) => n).join(', ')}`, async (batch) => {
    const file = modelFile(`import { model } from 'graphc';
export default model('epilogues_${batch}', (g) => {
  const x = g.input('x', [${JSON.stringify(batch)}, 5]);
  const c = g.input('c', [${JSON.stringify(batch)}, 1]);
  const b = g.param('b', [11]);
  const r = g.param('r', [11], { init: 'ones' });
${EPILOGUES.map((_e, k) => `  const W${k} = g.param('W${k}', [5, 11]);`).join('\n')}
  const outs = {
${EPILOGUES.map(([, e], k) => `    e${k}: ((p) => ${e})(x.matmul(W${k})),`).join('\n')}
  };
  return outs;
});
`);
    const c = await compile(file, { targets: ['ts', 'wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const code = String(c.files.find((f) => f.name === `epilogues_${batch}.wasm.ts`)!.content);
    // every epilogue in its matmul's tiles: no kernel of its own after it
    expect(code.match(/^\/\/ {3}matmul_\w+: /gm)).toHaveLength(EPILOGUES.length);
    expect(code).not.toMatch(/^\/\/ {3}(epilogue|kernel)_/m);
    const flat = (await import(pathToFileURL(path.join(dir, `epilogues_${batch}.js`)).href)) as GeneratedModule;
    const wasm = (await import(pathToFileURL(path.join(dir, `epilogues_${batch}.wasm.js`)).href)) as GeneratedModule;
    // (the symbolic module at B = 5, 6 and 7: a ragged last tile of 1, 2 and 3 rows)
    for (const n of batch === 'B' ? [5, 6, 7] : [6]) {
      const { params, inputs } = randomArgs(c.fwd, n, 0.5, { B: n });
      const [got, want] = [wasm.forward(params, inputs), flat.forward(params, inputs)];
      EPILOGUES.forEach(([name], k) => expect(relErr(got[`e${k}`] as Float32Array, want[`e${k}`] as Float32Array), `B = ${n}: ${name}`).toBeLessThan(1e-6));
    }
  });
});

describe('SIMD softmax of each row', () => {
  /** Runs the kernel on x [M,N] (into out, or in place); returns the result and whether memory past it is untouched. */
  function runSoftmax(M: number, N: number, x: Float32Array, inPlace: boolean) {
    const bytesOf = (n: number) => Math.ceil((n * 4) / 16) * 16 + 16;
    const at = { x: 0, out: inPlace ? 0 : bytesOf(M * N) };
    const end = at.out + bytesOf(M * N);
    const pages = Math.ceil((end + 64) / 65536);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    new Float32Array(memory.buffer).fill(777);
    new Float32Array(memory.buffer, at.x, M * N).set(x);
    const bytes = encodeModule(pages, [{ name: 'softmax', body: softmaxBody({ M, N, ...at }) }]);
    expect(WebAssembly.validate(bytes)).toBe(true);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    (inst.exports.softmax as () => void)();
    const untouched = [...new Float32Array(memory.buffer, at.out + M * N * 4, 4)].every((v) => v === 777);
    return { got: Float32Array.from(new Float32Array(memory.buffer, at.out, M * N)), untouched };
  }

  /** The float64 softmax of each row, as the flat module computes it (the maximum skips NaN). */
  function softmax64(x: Float32Array, N: number): Float64Array {
    const out = new Float64Array(x.length);
    for (let i = 0; i < x.length; i += N) {
      let max = -Infinity;
      for (let j = 0; j < N; j++) if (x[i + j]! > max) max = x[i + j]!;
      let sum = 0;
      for (let j = 0; j < N; j++) sum += out[i + j] = Math.exp(x[i + j]! - max);
      for (let j = 0; j < N; j++) out[i + j]! /= sum;
    }
    return out;
  }

  it.each([
    [1, 1],
    [3, 3],
    [5, 4],
    [6, 5],
    [64, 8],
    [4, 9],
    [32, 27],
  ])('[%i,%i]: against float64, with causal masks of −1e9, large logits and ragged rows, into another array and in place', (M, N) => {
    const r = rng(M * 31 + N);
    const x = Float32Array.from({ length: M * N }, (_v, k) => {
      const [i, j] = [Math.floor(k / N), k % N];
      if (i % 3 === 1 && j > i % N) return -1e9; // an attention row: later positions masked
      return i % 3 === 2 ? r() * 160 - 80 : r() * 6 - 3;
    });
    const want = softmax64(x, N);
    for (const inPlace of [false, true]) {
      const { got, untouched } = runSoftmax(M, N, x, inPlace);
      expect(relErr(got, want), inPlace ? 'in place' : 'into out').toBeLessThan(2e-6);
      expect(untouched, 'nothing written past the result').toBe(true);
    }
  });

  it('a row holding NaN is NaN throughout, as in the flat module; the other rows are untouched by it', () => {
    const x = Float32Array.from([1, NaN, 3, 0.5, 2, -1, 0, 4]);
    const { got } = runSoftmax(2, 4, x, false);
    expect([...got.slice(0, 4)].every(Number.isNaN)).toBe(true);
    expect(relErr(got.slice(4), softmax64(x.slice(4), 4))).toBeLessThan(1e-6);
  });
});

const EXAMPLES = ['neuron', 'makemore', 'makemore_composite', 'makemore_inference', 'wavenet', 'gpt', 'twolayer', 'classifier'];

async function importGenerated(name: string, suffix: string): Promise<GeneratedModule> {
  return (await import(pathToFileURL(path.join(ROOT, 'generated', name, `${name}${suffix}.js`)).href)) as GeneratedModule;
}

describe.each(EXAMPLES)('the wasm module of %s', (name) => {
  it('agrees with the flat module: loss, gradients and outputs within 1e-4, call after call', async () => {
    const flat = await importGenerated(name, '');
    const wasm = await importGenerated(name, '.wasm');
    expect(wasm.spec).toEqual(flat.spec);
    const { compileGraphs } = await import('../src/build.js');
    const { fwd } = compileGraphs(path.join(ROOT, 'examples', `${name}.ts`));
    for (const seed of [3, 4]) {
      const { params, inputs } = randomArgs(fwd, seed, 0.5);
      if (inputs.bnvar) inputs.bnvar = inputs.bnvar.map((v) => Math.abs(v) + 0.1); // a variance (makemore_inference)
      const want = flat.valueAndGrad(params, inputs);
      const wantLoss = want.loss;
      const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
      const got = wasm.valueAndGrad(params, inputs);
      expect(relErr([got.loss], [wantLoss]), 'loss').toBeLessThan(1e-4);
      expect(Object.keys(got.grads).sort()).toEqual(Object.keys(wantGrads).sort());
      for (const [k, g] of Object.entries(got.grads)) expect(relErr(g, wantGrads[k]!), `gradient of ${k}`).toBeLessThan(1e-4);
      const outs = wasm.forward(params, inputs);
      const flatOuts = flat.forward(params, inputs);
      for (const [k, v] of Object.entries(flatOuts)) expect(relErr(typeof v === 'number' ? [outs[k] as number] : (outs[k] as Float32Array), typeof v === 'number' ? [v] : v), `output ${k}`).toBeLessThan(1e-4);
    }
  });

  it('lists its kernels, and its steps are the flat module’s steps with the same comments', () => {
    const flat = readFileSync(path.join(ROOT, 'generated', name, `${name}.ts`), 'utf8');
    const wasm = readFileSync(path.join(ROOT, 'generated', name, `${name}.wasm.ts`), 'utf8');
    const steps = (code: string) => code.slice(code.indexOf('function forwardPass')).split('\n');
    const calls = (code: string, re: RegExp) => steps(code).flatMap((l) => re.exec(l)?.[1] ?? []);
    // the flat module's matmul functions (its own, or one shared by matmuls of one structure,
    // called with arrays) are the wasm module's matmul kernels, called in the same steps
    const matmulSteps = (code: string, call: RegExp) => {
      let comment = '';
      return steps(code).flatMap((l) => (/^\s*\/\/ /.test(l) ? ((comment = l.trim()), []) : call.test(l) ? [comment] : []));
    };
    expect(matmulSteps(wasm, /^\s*kernels\.matmul_\w+\(\);$/)).toEqual(matmulSteps(flat, /^\s*matmul_\w+\((\w+(, \w+)*)?\);$/));
    // (trimmed: the wasm module's steps are one function deeper, inside instance())
    const comments = (code: string) => steps(code).filter((l) => /^\s*\/\/ /.test(l)).map((l) => l.trim());
    expect(comments(wasm)).toEqual(comments(flat));
    // the listing names every kernel in call order
    const listed = [...wasm.matchAll(/^\/\/ {3}(\w+): /gm)].map((m) => m[1]);
    expect(listed).toEqual(calls(wasm, /^\s*kernels\.(\w+)\(\);$/));
    expect(listed.length).toBeGreaterThan(0);
  });
});

describe('wasm target: builds', () => {
  it('a matmul epilogue of any op (log, decomposed) runs at the register tile\'s points, in the matmul kernel', async () => {
    for (const [shape, product, fused] of [['[7, 5]', '[7,5]·[5,6]', true]] as const) {
      const file = modelFile(`import { model } from 'graphc';
export default model('log_layer', (g) => {
  const x = g.input('x', ${shape});
  const W = g.param('W', [5, 6]);
  const b = g.param('b', [6]);
  const h = x.matmul(W).add(b).abs().add(0.5).log();
  return { loss: h.square().mean() };
});
`);
      const c = await compile(file, { targets: ['ts', 'wasm'] });
      const dir = tmp();
      for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
      const code = String(c.files.find((f) => f.name === 'log_layer.wasm.ts')!.content);
      const esc = product.replace(/[[\]·×]/g, (ch) => `\\${ch}`);
      if (fused) {
        expect(code).toMatch(new RegExp(`^// {3}matmul_\\w+: .* {3}${esc}$`, 'm'));
        expect(code).not.toMatch(/^\/\/ {3}epilogue_/m);
      } else {
        expect(code).toMatch(new RegExp(`^// {3}matmul_\\w+: .* {3}${esc}, epilogue a kernel of its own$`, 'm'));
        expect(code).toMatch(/^\/\/ {3}epilogue_\w+: the epilogue of matmul_\w+ \(kernel form\)$/m);
      }
      expect(kernelJsSteps(code)).toEqual([]);
      const flat = (await import(pathToFileURL(path.join(dir, 'log_layer.js')).href)) as GeneratedModule;
      const wasm = (await import(pathToFileURL(path.join(dir, 'log_layer.wasm.js')).href)) as GeneratedModule;
      const { params, inputs } = randomArgs(c.fwd, 5);
      const want = flat.valueAndGrad(params, inputs);
      const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
      const got = wasm.valueAndGrad(params, inputs);
      expect(Math.abs(got.loss - want.loss) / Math.abs(want.loss), 'loss').toBeLessThan(1e-5);
      for (const [k, g] of Object.entries(got.grads)) expect(relErr(g, wantGrads[k]!), `gradient of ${k}`).toBeLessThan(1e-4);
    }
  });

  it('a model with a symbolic dimension builds with the other targets, and its wasm module runs any size (test/symbolic-wasm.test.ts)', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('sym', (g) => {
  const x = g.input('x', ['B', 4]);
  const W = g.param('W', [4, 3]);
  return { loss: x.matmul(W).square().mean() };
});
`);
    const out = path.join(tmp(), 'sym');
    const all = await run(['build', file, '--target', 'ts,gpu,wasm', '--out', out]);
    expect(all.err).toBe('');
    expect(all.code).toBe(0);
    expect(all.out).toBe(`wrote ${out}/ (sym.ir, sym.grad.ir, sym.ts, sym.js, sym.gpu.ts, sym.gpu.js, sym.wasm.ts, sym.wasm.js, package.json)\n`);
    const flat = (await import(pathToFileURL(path.join(out, 'sym.js')).href)) as GeneratedModule;
    const wasm = (await import(pathToFileURL(path.join(out, 'sym.wasm.js')).href)) as GeneratedModule;
    const params = { W: Float32Array.from([0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1, 1.1, 1.2]) };
    for (const B of [3, 1, 9]) {
      const inputs = { x: Float32Array.from({ length: 4 * B }, (_, i) => Math.sin(i)) };
      const want = flat.valueAndGrad(params, inputs);
      const [wantLoss, wantW] = [want.loss, Float32Array.from(want.grads.W!)];
      const got = wasm.valueAndGrad(params, inputs);
      expect(relErr([got.loss], [wantLoss]), `B = ${B}: loss`).toBeLessThan(1e-6);
      expect(relErr(got.grads.W!, wantW), `B = ${B}: dW`).toBeLessThan(1e-6);
    }
    // its kernels encoded with fused multiply-adds where the runtime has relaxed SIMD (a child process with the flag)
    expect((wasm as unknown as { simd: string }).simd).toBe(NATIVE_SIMD);
    const child = `const m = await import(${JSON.stringify(pathToFileURL(path.join(out, 'sym.wasm.js')).href)});
const inputs = { x: Float32Array.from({ length: 4 * 9 }, (_, i) => Math.sin(i)) };
const r = m.valueAndGrad({ W: Float32Array.from(${JSON.stringify([...params.W])}) }, inputs);
console.log(JSON.stringify({ simd: m.simd, loss: r.loss, W: [...r.grads.W] }));`;
    writeFileSync(path.join(out, 'child.mjs'), child);
    const relaxed = JSON.parse(execFileSync(process.execPath, ['--experimental-wasm-relaxed-simd', path.join(out, 'child.mjs')], { encoding: 'utf8' })) as { simd: string; loss: number; W: number[] };
    const want = flat.valueAndGrad(params, { x: Float32Array.from({ length: 4 * 9 }, (_, i) => Math.sin(i)) });
    expect(relaxed.simd).toBe('relaxed');
    expect(relErr([relaxed.loss], [want.loss]), 'relaxed: loss').toBeLessThan(1e-6);
    expect(relErr(relaxed.W, Float32Array.from(want.grads.W!)), 'relaxed: dW').toBeLessThan(1e-6);
  });
});

describe('relaxed SIMD', () => {
  it('the CNN example: its module fuses its multiply-adds where the runtime has relaxed SIMD (and says so), else runs plain SIMD; both agree with the flat module, alone and threaded', async () => {
    const dir = path.join(ROOT, 'generated', 'cnn');
    expect(readFileSync(path.join(dir, 'cnn.wasm.js'), 'utf8')).toContain("export const simd = WebAssembly.validate(probe) ? 'relaxed' : 'plain';");
    const flat = await importGenerated('cnn', '');
    const r = rng(11);
    const params = flat.initParams!(3);
    const inputs = { x: Float32Array.from({ length: 64 * 784 }, () => r() - 0.5), labels: Int32Array.from({ length: 64 }, (_, i) => (i * 7) % 10) };
    const want = flat.valueAndGrad(params, inputs);
    const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
    const out = tmp();
    const list = (o: Record<string, ArrayLike<number>>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Array.from(v)]));
    writeFileSync(path.join(out, 'args.json'), JSON.stringify({ params: list(params), inputs: list(inputs) }));
    // a child process (with the flag or without) runs the module alone and on 2 threads
    writeFileSync(
      path.join(out, 'child.mjs'),
      `import { readFileSync } from 'node:fs';
const m = await import(${JSON.stringify(pathToFileURL(path.join(dir, 'cnn.wasm.js')).href)});
const a = JSON.parse(readFileSync(new URL('./args.json', import.meta.url), 'utf8'));
const params = Object.fromEntries(Object.entries(a.params).map(([k, v]) => [k, Float32Array.from(v)]));
const inputs = { x: Float32Array.from(a.inputs.x), labels: Int32Array.from(a.inputs.labels) };
const result = (r) => ({ loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, [...v]])) });
const single = result(m.valueAndGrad(params, inputs));
const t = await m.create({ threads: 2, minWork: 0, adapt: false });
const threaded = result(t.valueAndGrad(params, inputs));
await t.destroy();
console.log(JSON.stringify({ simd: m.simd, threads: t.threads, single, threaded }));
`,
    );
    type Run = { loss: number; grads: Record<string, number[]> };
    // (without the flag: plain SIMD on Node 20; a runtime with relaxed SIMD by default fuses there too)
    for (const [flags, simd] of [[['--experimental-wasm-relaxed-simd'], 'relaxed'], [[], NATIVE_SIMD]] as const) {
      const got = JSON.parse(execFileSync(process.execPath, [...flags, path.join(out, 'child.mjs')], { encoding: 'utf8', maxBuffer: 1 << 26 })) as { simd: string; threads: number; single: Run; threaded: Run };
      expect(got.simd).toBe(simd);
      expect(got.threads).toBe(2);
      expect(got.threaded, `${simd}: the threaded instance computes what the module does, bit for bit`).toEqual(got.single);
      for (const run of [got.single, got.threaded]) {
        expect(relErr([run.loss], [want.loss]), `${simd}: loss`).toBeLessThan(1e-4);
        expect(Object.keys(run.grads).sort()).toEqual(Object.keys(wantGrads).sort());
        for (const [k, g] of Object.entries(run.grads)) expect(relErr(g, wantGrads[k]!), `${simd}: gradient of ${k}`).toBeLessThan(1e-4);
      }
    }
  });
});
