// The kernel-form wasm renderer (codegen/wasm/kernel.ts): kernels of the kernel form, written as
// text, run as wasm functions against the reference evaluator (codegen/kernel/eval.ts), each way
// the renderer walks a domain (four lanes with single points after them, single points only, a
// row reduction's lanes, a column reduction's lanes, long sums in f64 blocks, guards, coordinates,
// where, i32 loads); then whole modules whose groups were JS loops (layout copies, broadcasts,
// powers with constant exponents, one_hot) against the float64 interpreter, on 1 and 2 threads,
// with no JS loop step left but the routines'.

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import { parseLaunch } from '../codegen/kernel/parse.js';
import type { Kernel } from '../codegen/kernel/form.js';
import { evalKernel } from '../codegen/kernel/eval.js';
import { Body, encodeModule } from '../codegen/wasm/encode.js';
import { f32x4Exp } from '../codegen/wasm/kernel-alu.js';
import { renderWasmKernel } from '../codegen/wasm/kernel.js';
import { WASM_CAPABILITIES, unaryOnStack } from '../codegen/wasm/kernel-alu.js';
import { decompose } from '../codegen/kernel/decompose.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { interpGrads, modelFile, randomArgs, reference, relErr, rng, tmp, tracedModel } from './helpers.js';
import { kernelJsSteps } from './wasm-steps.js';

declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Memory: new (size: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
};

const kernel = (head: string, ...body: string[]) => parseLaunch([head, ...body.map((l) => `  ${l}`), 'end'].join('\n')) as Kernel;

/**
 * Runs `k` as wasm (whole, and where it splits as two ranges) over arrays of the given sizes
 * (random values; i32 arrays within [0, 8)) and returns each array after it and the evaluator's.
 */
function check(k: Kernel, sizes: Record<string, { n: number; i32?: boolean; values?: readonly number[] }>, seed = 1): { got: Record<string, Float32Array | Int32Array>; want: Record<string, Float64Array>; split: boolean } {
  const r = rng(seed);
  const at: Record<string, number> = {};
  let end = 0;
  for (const [name, s] of Object.entries(sizes)) {
    at[name] = end;
    end += Math.ceil((s.n * 4) / 16) * 16;
  }
  const init = Object.fromEntries(Object.entries(sizes).map(([name, s]) => [name, Float64Array.from({ length: s.n }, (_x, i) => (s.values ? Math.fround(s.values[i]!) : s.i32 ? Math.floor(r() * 8) : Math.fround(2 * r() - 1)))]));
  const rendered = renderWasmKernel(k, (arg) => at[arg]);
  const fns = [{ name: 'whole', body: rendered.body }, ...(rendered.ranged ? [{ name: 'range', body: rendered.ranged.body }] : [])];
  const bytes = encodeModule(Math.ceil((end + 16) / 65536), fns);
  expect(WebAssembly.validate(bytes)).toBe(true);
  const results = ['whole', 'range'].filter((f) => fns.some((x) => x.name === f)).map((fn) => {
    const memory = new WebAssembly.Memory({ initial: Math.ceil((end + 16) / 65536), maximum: Math.ceil((end + 16) / 65536) });
    const views = Object.fromEntries(Object.entries(sizes).map(([name, s]) => [name, s.i32 ? new Int32Array(memory.buffer, at[name]!, s.n) : new Float32Array(memory.buffer, at[name]!, s.n)]));
    for (const [name, v] of Object.entries(views)) v.set(init[name]!);
    const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports;
    if (fn === 'whole') (exports.whole as () => void)();
    else {
      const extent = rendered.ranged!.split.extent;
      const cut = Math.min(extent, Math.ceil(extent / 2 / rendered.ranged!.split.align) * rendered.ranged!.split.align);
      (exports.range as (a: number, b: number) => void)(cut, extent);
      (exports.range as (a: number, b: number) => void)(0, cut);
    }
    return views;
  });
  const want = Object.fromEntries(Object.entries(init).map(([name, v]) => [name, Float64Array.from(v)]));
  evalKernel(k, (name) => want[name]!, {});
  if (results[1]) for (const name of Object.keys(sizes)) expect([...results[1][name]!], `${name}, run as two ranges`).toEqual([...results[0]![name]!]);
  return { got: results[0]!, want, split: results.length > 1 };
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-6): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    if (!Number.isFinite(w)) expect(got[i], `[${i}]`).toBe(Math.fround(w));
    else expect(Math.abs(got[i]! - w), `[${i}]: ${got[i]} vs ${w}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(w)));
  }
}

describe('the kernel-form wasm renderer', () => {
  it('vectorises a broadcast that no row stride describes, with single points after the last whole vector', () => {
    // y[i,j,l] = x[i,j,l] * 0.5 + m[j,l]: rows of 7 (one vector and 3 single points), m broadcast along d0
    const k = kernel('kernel k [6, 10, 7]', '%0: f32 = load x[70*d0 + 7*d1 + d2]', '%1: f32 = const 0.5', '%2: f32 = mul %0, %1', '%3: f32 = load m[7*d1 + d2]', '%4: f32 = add %2, %3', 'store y[70*d0 + 7*d1 + d2] = %4');
    const { got, want, split } = check(k, { x: { n: 420 }, m: { n: 70 }, y: { n: 420 } });
    expectClose(got.y!, want.y!);
    expect(split).toBe(true);
  });

  it('copies a transpose: four lane loads where a load strides along the vectorised axis, four lane stores where a store does', () => {
    const k = kernel('kernel k [7, 6, 10]', '%0: f32 = load x[d0 + 70*d1 + 7*d2]', 'store y[60*d0 + 10*d1 + d2] = %0');
    const { got, want } = check(k, { x: { n: 420 }, y: { n: 420 } });
    expect([...got.y!]).toEqual([...want.y!]);
    // a reduction whose store strides along the kept axis it vectorises (columns of a transposed result)
    const r = kernel('kernel k [9, 11, 6] reduce (2)', '%0: f32 = load x[66*d0 + 6*d1 + d2]', '%1: f32 = reduce.max %0 acc f32', 'store y[d0 + 9*d1] = %1');
    const c = check(r, { x: { n: 594 }, y: { n: 99 } });
    expect([...c.got.y!]).toEqual([...c.want.y!]);
    const cols = kernel('kernel k [50, 9] reduce (0)', '%0: f32 = load x[9*d0 + d1]', '%1: f32 = reduce.sum %0 acc f64', 'store y[3*d1] = %1');
    const d = check(cols, { x: { n: 450 }, y: { n: 27 } });
    expectClose([0, 3, 6, 9, 12, 15, 18, 21, 24].map((i) => d.got.y![i]!), [0, 3, 6, 9, 12, 15, 18, 21, 24].map((i) => d.want.y![i]!), 1e-5);
    expect([...d.got.y!].filter((_v, i) => i % 3 !== 0)).toEqual([...d.want.y!].filter((_v, i) => i % 3 !== 0));
  });

  it('copies a transpose contiguous along one axis in and another out in 4×4 tiles of shuffled vectors (NCHW ↔ NHWC)', () => {
    // i32x4.shuffle [0, 4, 1, 5]: the tiles' first shuffle (the lane-by-lane copy has none)
    const shuffle = [0xfd, 0x0d, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23].join(',');
    const cases: [Kernel, number, number, boolean][] = [
      // NCHW [3, 8, 12] → NHWC; NHWC → NCHW; 2-D transposes (no outer axis: split by rows of tiles, 2 and 5 of them); a strided source at an offset
      [kernel('kernel k [3, 12, 8]', '%0: f32 = load x[96*d0 + d1 + 12*d2]', 'store y[96*d0 + 8*d1 + d2] = %0'), 288, 288, true],
      [kernel('kernel k [3, 8, 12]', '%0: f32 = load x[96*d0 + d1 + 8*d2]', 'store y[96*d0 + 12*d1 + d2] = %0'), 288, 288, true],
      [kernel('kernel k [8, 12]', '%0: f32 = load x[d0 + 8*d1]', 'store y[12*d0 + d1] = %0'), 96, 96, true],
      [kernel('kernel k [24, 20]', '%0: f32 = load x[d0 + 24*d1]', 'store y[20*d0 + d1] = %0'), 480, 480, true],
      // NCHW → NHWC at N = 1 (an outer axis of one point: split by rows of tiles too)
      [kernel('kernel k [1, 12, 8]', '%0: f32 = load x[96*d0 + d1 + 12*d2]', 'store y[96*d0 + 8*d1 + d2] = %0'), 96, 96, true],
      [kernel('kernel k [2, 4, 16]', '%0: f32 = load x[5 + 300*d0 + d1 + 17*d2]', 'store y[64*d0 + 16*d1 + d2] = %0'), 600, 128, true],
    ];
    for (const [k, nx, ny, splits] of cases) {
      const { got, want, split } = check(k, { x: { n: nx }, y: { n: ny } });
      expect([...got.y!]).toEqual([...want.y!]);
      expect(split).toBe(splits);
      const bytes = encodeModule(1, [{ name: 'whole', body: renderWasmKernel(k, (arg) => (arg === 'x' ? 0 : 4096)).body }]);
      expect(bytes.join(',')).toContain(shuffle);
    }
  });

  it('pads and concatenates through guards: boxes in which each guard holds everywhere or nowhere', () => {
    const k = kernel('kernel k [4, 9]', '%0: f32 = load a[5*d0 + d1] if 0 <= d1 < 5', '%1: f32 = load b[4*d0 + d1 - 5] if 5 <= d1 < 9', '%2: f32 = add %0, %1', 'store y[9*d0 + d1] = %2');
    const { got, want } = check(k, { a: { n: 20 }, b: { n: 16 }, y: { n: 36 } });
    expect([...got.y!]).toEqual([...want.y!]);
    const pad = kernel('kernel k [5, 11]', '%0: f32 = load a[4*d0 + d1 - 10] if 1 <= d0 < 4, 6 <= d1 < 10', 'store y[11*d0 + d1] = %0');
    const p = check(pad, { a: { n: 12 }, y: { n: 55 } });
    expect([...p.got.y!]).toEqual([...p.want.y!]);
  });

  it('computes comparisons as lane masks, where as a bitselect, i32 loads and coordinates (one_hot)', () => {
    const k = kernel(
      'kernel k [12, 9]',
      '%0: i32 = load idx[d0]',
      '%1: i32 = coord d1',
      '%2: bool = eq %0, %1',
      '%3: f32 = const 1',
      '%4: f32 = const 0',
      '%5: f32 = where %2, %3, %4',
      '%6: f32 = load x[9*d0 + d1]',
      '%7: bool = lt %4, %6',
      '%8: f32 = where %7, %6, %5',
      '%9: f32 = cast %2',
      '%10: f32 = add %8, %9',
      'store y[9*d0 + d1] = %10',
    );
    const { got, want } = check(k, { idx: { n: 12, i32: true }, x: { n: 108 }, y: { n: 108 } });
    expect([...got.y!]).toEqual([...want.y!].map(Math.fround));
  });

  it('computes a kernel of many nodes (a tanh, decomposed) four vectors side by side, then vectors, then single points', () => {
    // rows of 45: two groups of four vectors, three vectors, one point; a coordinate, a load and a
    // store that stride along the vectorised axis (lane by lane), each at the offset of its vector
    const k = kernel(
      'kernel k [3, 45]',
      '%0: f32 = load x[45*d0 + d1]',
      '%1: f32 = const 3',
      '%2: f32 = mul %0, %1',
      '%3: f32 = tanh %2',
      '%4: f32 = load t[d0 + 3*d1]',
      '%5: i32 = coord d1',
      '%6: f32 = cast %5',
      '%7: f32 = mul %4, %6',
      '%8: f32 = add %3, %7',
      'store y[45*d0 + d1] = %8',
      'store z[d0 + 3*d1] = %3',
    );
    const { got, want, split } = check(k, { x: { n: 135 }, t: { n: 135 }, y: { n: 135 }, z: { n: 135 } });
    expectClose(got.y!, want.y!, 2e-6);
    expectClose(got.z!, want.z!, 2e-6);
    expect(split).toBe(true);
  });

  it('writes powers with constant exponents as products and square roots', () => {
    for (const e of [3, -2, 0.5, -1.5, 0, 1, 2.5]) {
      const k = kernel('kernel k [37]', '%0: f32 = load x[d0]', '%1: f32 = abs %0', `%2: f32 = const ${e}`, '%3: f32 = pow %1, %2', 'store y[d0] = %3');
      const { got, want } = check(k, { x: { n: 37 }, y: { n: 37 } });
      expectClose(got.y!, want.y!, 4e-6 * Math.max(1, Math.abs(e)));
    }
  });

  it('constant powers at ±∞ and ±0 give what Math.pow gives (2.5, −1.5, −0.5, 3, −2)', () => {
    const xs = [Infinity, -Infinity, 0, -0, Infinity, -Infinity, 0, -0];
    for (const e of [2.5, -1.5, -0.5, 3, -2]) {
      const k = kernel('kernel k [8]', '%0: f32 = load x[d0]', `%1: f32 = const ${e}`, '%2: f32 = pow %0, %1', 'store y[d0] = %2');
      const rendered = renderWasmKernel(k, (arg) => ({ x: 0, y: 32 })[arg]);
      const bytes = encodeModule(1, [{ name: 'whole', body: rendered.body }]);
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
      new Float32Array(memory.buffer, 0, 8).set(xs);
      (new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports.whole as () => void)();
      expect([...new Float32Array(memory.buffer, 32, 8)], `x^${e}`).toEqual(xs.map((x) => Math.fround(Math.pow(x, e))));
    }
  });

  it("the steps' exp (softmax, cross-entropy, epilogues: f32x4Exp) and tanh are the kernel's bit for bit: exp finite up to 88.7228, subnormal results, 0 below −104", () => {
    const xs = [88.5, 88.72283172607422, 88.72283935546875, 89.5, Infinity, -87.5, -95.25, -103.9, -104.5, -1e9, -Infinity, NaN, 0, -0, 1, -2.75, 10.3, -50.1, 1e-30, 0.3465].map(Math.fround);
    const n = xs.length; // a multiple of 4
    // f32x4Exp over x, four lanes at a time, into y
    const f = new Body();
    const tmp = Array.from({ length: 5 }, () => f.local('v128'));
    for (let o = 0; o < 4 * n; o += 16) {
      f.i32(0).i32(0).v128Load(o);
      f32x4Exp(f, tmp);
      f.v128Store(4 * n + o);
    }
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    new Float32Array(memory.buffer, 0, n).set(xs);
    (new WebAssembly.Instance(new WebAssembly.Module(encodeModule(1, [{ name: 'exp', body: f }])), { env: { memory } }).exports.exp as () => void)();
    const got = [...new Float32Array(memory.buffer, 4 * n, n)];
    const { got: kernelGot } = check(kernel(`kernel k [${n}]`, '%0: f32 = load x[d0]', '%1: f32 = exp %0', 'store y[d0] = %1'), { x: { n, values: xs }, y: { n } });
    expect(got).toEqual([...kernelGot.y!]);
    const ulp = (v: number) => 2 ** (Math.max(Math.floor(Math.log2(Math.abs(v))), -126) - 23);
    xs.forEach((x, i) => {
      const want = Math.fround(Math.exp(x));
      if (!Number.isFinite(want) || want === 0) expect(got[i], `exp(${x})`).toBe(want);
      else expect(Math.abs(got[i]! - Math.exp(x)) / ulp(want), `exp(${x}) = ${got[i]}`).toBeLessThanOrEqual(1);
    });
    // tanh (a matmul epilogue's step) likewise, in the eight locals the steps give it
    const g = new Body();
    const tmp8 = Array.from({ length: 8 }, () => g.local('v128'));
    for (let o = 0; o < 4 * n; o += 16) {
      g.i32(0).i32(0).v128Load(o);
      unaryOnStack(g, 'tanh', tmp8);
      g.v128Store(4 * n + o);
    }
    (new WebAssembly.Instance(new WebAssembly.Module(encodeModule(1, [{ name: 'tanh', body: g }])), { env: { memory } }).exports.tanh as () => void)();
    const { got: tanhKernel } = check(kernel(`kernel k [${n}]`, '%0: f32 = load x[d0]', '%1: f32 = tanh %0', 'store y[d0] = %1'), { x: { n, values: xs }, y: { n } });
    expect([...new Float32Array(memory.buffer, 4 * n, n)]).toEqual([...tanhKernel.y!]);
  });

  it('reduces rows in four lanes, combining them at the end, with the epilogue and a store during the reduction', () => {
    const k = kernel(
      'kernel k [6, 10, 7] reduce (2)',
      '%0: f32 = load x[70*d0 + 7*d1 + d2]',
      '%1: f32 = load m[7*d1 + d2]',
      '%2: f32 = add %0, %1',
      '%3: f32 = reduce.sum %2 acc f64',
      '%4: f32 = reduce.max %2 acc f32',
      '%5: f32 = load s[d1]',
      '%6: f32 = mul %3, %5',
      '%7: f32 = sub %6, %4',
      'store z[70*d0 + 7*d1 + d2] = %2',
      'store y[10*d0 + d1] = %7',
    );
    const { got, want } = check(k, { x: { n: 420 }, m: { n: 70 }, s: { n: 10 }, z: { n: 420 }, y: { n: 60 } });
    expectClose(got.z!, want.z!);
    expectClose(got.y!, want.y!, 1e-5);
  });

  it('reduces columns with four kept points in the lanes, and over a middle axis', () => {
    const cols = kernel('kernel k [30, 4, 13] reduce (0)', '%0: f32 = load x[52*d0 + 13*d1 + d2]', '%1: f32 = load m[13*d1 + d2]', '%2: f32 = mul %0, %1', '%3: f32 = reduce.sum %2 acc f64', 'store y[13*d1 + d2] = %3');
    const c = check(cols, { x: { n: 1560 }, m: { n: 52 }, y: { n: 52 } });
    expectClose(c.got.y!, c.want.y!, 1e-5);
    const mid = kernel('kernel k [5, 9, 6] reduce (1)', '%0: f32 = load x[54*d0 + 6*d1 + d2]', '%1: f32 = reduce.max %0 acc f32', 'store y[6*d0 + d2] = %1');
    const m = check(mid, { x: { n: 270 }, y: { n: 30 } });
    expect([...m.got.y!]).toEqual([...m.want.y!]);
    // 23 kept columns: four vectors side by side, one, then three single columns; a sum, a max,
    // their epilogue and a value stored at every point
    const wide = kernel(
      'kernel k [40, 23] reduce (0)',
      '%0: f32 = load x[23*d0 + d1]',
      '%1: f32 = load m[d1]',
      '%2: f32 = mul %0, %1',
      'store z[23*d0 + d1] = %2',
      '%3: f32 = reduce.sum %2 acc f64',
      '%4: f32 = reduce.max %0 acc f32',
      '%5: f32 = add %3, %4',
      'store y[d1] = %5',
    );
    const w = check(wide, { x: { n: 920 }, m: { n: 23 }, z: { n: 920 }, y: { n: 23 } });
    expect(w.split).toBe(true);
    expectClose(w.got.y!, w.want.y!, 1e-5);
    expectClose(w.got.z!, w.want.z!, 1e-6);
  });

  it('sums long rows and long columns into f64 totals: far closer to the f64 sum than an f32 running sum', () => {
    const r = rng(3);
    const run = (k: Kernel, data: Float64Array, out: number) => {
      const yAt = 16 * Math.ceil((data.length * 4) / 16);
      const bytes = encodeModule(Math.ceil((yAt + 64) / 65536), [{ name: 'f', body: renderWasmKernel(k, (a) => (a === 'x' ? 0 : yAt)).body }]);
      const pages = Math.ceil((yAt + 64) / 65536);
      const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
      new Float32Array(memory.buffer, 0, data.length).set(data);
      (new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports.f as () => void)();
      return new Float32Array(memory.buffer, yAt, out);
    };
    /** The relative errors of the kernel's sums and of f32 running sums, each against the f64 sum. */
    const errors = (got: Float32Array, data: Float64Array, terms: (j: number) => number[]) =>
      [...got].map((g, j) => {
        const xs = terms(j).map((i) => data[i]!);
        const f64 = xs.reduce((a, b) => a + b, 0);
        const f32 = xs.reduce((a, b) => Math.fround(a + b), 0);
        return { ours: Math.abs(g - f64) / f64, naive: Math.abs(f32 - f64) / f64 };
      });
    const n = 4000;
    const x = Float64Array.from({ length: 3 * n }, () => Math.fround(0.1 + 1e-4 * r()));
    const rows = kernel(`kernel k [3, ${n}] reduce (1)`, `%0: f32 = load x[${n}*d0 + d1]`, '%1: f32 = reduce.sum %0 acc f64', 'store y[d0] = %1');
    const m = 8000;
    const xc = Float64Array.from({ length: 5 * m }, () => Math.fround(0.1 + 1e-4 * r()));
    const cols = kernel(`kernel k [${m}, 5] reduce (0)`, '%0: f32 = load x[5*d0 + d1]', '%1: f32 = reduce.sum %0 acc f64', 'store y[d1] = %1');
    const all = [
      ...errors(run(rows, x, 3), x, (j) => Array.from({ length: n }, (_v, i) => j * n + i)),
      ...errors(run(cols, xc, 5), xc, (j) => Array.from({ length: m }, (_v, i) => i * 5 + j)),
    ];
    // a running f32 sum of thousands of terms near 0.1 drifts by up to 1e-5 here; the blocks' f64 totals keep within 1e-7
    expect(Math.max(...all.map((e) => e.naive))).toBeGreaterThan(1e-5);
    for (const e of all) expect(e.ours).toBeLessThan(1e-7);
  });

  it('sums to one value (a loss) in f64 term by term, as the flat module: terms that cancel leave their exact sum', () => {
    const r = rng(5);
    const n = 1001;
    const x = Float64Array.from({ length: n }, () => Math.fround(1000 * (2 * r() - 1)));
    const others = x.slice(0, n - 1).reduce((a, b) => a + b, 0);
    x[n - 1] = Math.fround(0.5 - others);
    const exact = x.reduce((a, b) => a + b, 0);
    const k = kernel(`kernel k [7, 143] reduce (0, 1)`, '%0: f32 = load x[143*d0 + d1]', '%1: f32 = reduce.sum %0 acc f64', 'store y[0] = %1');
    const bytes = encodeModule(1, [{ name: 'f', body: renderWasmKernel(k, (a) => (a === 'x' ? 0 : 4096)).body }]);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    new Float32Array(memory.buffer, 0, n).set(x);
    (new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports.f as () => void)();
    expect(new Float32Array(memory.buffer, 4096, 1)[0]).toBe(Math.fround(exact));
  });

  it('reduces sin and cos by Payne–Hanek only where a lane has |x| ≥ 2¹⁶ (v128.any_true), with the values of the unguarded kernel', () => {
    const k = kernel('kernel k [3, 13]', '%0: f32 = load x[13*d0 + d1]', '%1: f32 = sin %0', '%2: f32 = cos %0', 'store s[13*d0 + d1] = %1', 'store c[13*d0 + d1] = %2');
    const d = decompose(k, WASM_CAPABILITIES);
    // the same kernel with its rare wheres plain: Payne–Hanek at every point, as before
    const plain = { ...d, nodes: d.nodes.map((n) => (n.op === 'where' ? { op: n.op, dtype: n.dtype, args: n.args } : n)) };
    expect(d.nodes.filter((n) => n.op === 'where' && n.rare).length).toBe(3);
    // v128.any_true, then an if: the guard of the block
    const guard = (b: Uint8Array) => b.some((_x, i) => b[i] === 0xfd && b[i + 1] === 0x53 && b[i + 2] === 0x04 && b[i + 3] === 0x40);
    const bytes = (kk: Kernel) => encodeModule(1, [{ name: 'whole', body: renderWasmKernel(kk, () => 0).body }]);
    expect(guard(bytes(d))).toBe(true);
    expect(guard(bytes(plain))).toBe(false);
    const r = rng(7);
    const small = Array.from({ length: 39 }, () => (2 * r() - 1) * 6e4);
    // one huge lane in a vector, one in the single points after the vectors, ±∞, NaN, ±2¹⁶, −0
    const mixed = small.map((x, i) => [1e30, -3.3e9, 7.5e5, Infinity, -Infinity, NaN, 65536, -65536, -0][[5, 12, 25, 30, 31, 32, 33, 36, 38].indexOf(i)] ?? x);
    for (const values of [small, mixed]) {
      const sizes = { x: { n: 39, values }, s: { n: 39 }, c: { n: 39 } };
      const got = check(d, sizes);
      const before = check(plain, sizes);
      expect([...got.got.s!]).toEqual([...before.got.s!]);
      expect([...got.got.c!]).toEqual([...before.got.c!]);
      // within 2 ulps of Math.sin and Math.cos of the f32 argument (ulp of 1: 2⁻²³ at most)
      expectClose(got.got.s!, got.want.s!, 2.4e-7);
      expectClose(got.got.c!, got.want.c!, 2.4e-7);
    }
    // in a row reduction (the body of its loop) and its epilogue
    const red = kernel('kernel k [4, 11] reduce (1)', '%0: f32 = load x[11*d0 + d1]', '%1: f32 = sin %0', '%2: f32 = reduce.sum %1 acc f32', '%3: f32 = cos %2', 'store y[d0] = %3');
    const values = Array.from({ length: 44 }, (_x, i) => (i === 17 ? 1e20 : i % 7));
    const got = check(red, { x: { n: 44, values }, y: { n: 4 } });
    expectClose(got.got.y!, got.want.y!, 2e-6);
    // columns (four vectors side by side, each its own guard), and a sin that does not vary along the row (before its loop)
    const cols = kernel('kernel k [6, 23] reduce (0)', '%0: f32 = load x[23*d0 + d1]', '%1: f32 = sin %0', '%2: f32 = reduce.sum %1 acc f32', 'store y[d1] = %2');
    const c = check(cols, { x: { n: 138, values: Array.from({ length: 138 }, (_x, i) => (i === 40 || i === 130 ? -2e9 : i / 3)) }, y: { n: 23 } });
    expectClose(c.got.y!, c.want.y!, 2e-6);
    const bcast = kernel('kernel k [5, 9]', '%0: f32 = load x[d0]', '%1: f32 = cos %0', '%2: f32 = load z[9*d0 + d1]', '%3: f32 = mul %1, %2', 'store y[9*d0 + d1] = %3');
    const b = check(bcast, { x: { n: 5, values: [1, 3e7, -2, 1e38, 0.5] }, z: { n: 45 }, y: { n: 45 } });
    expectClose(b.got.y!, b.want.y!, 2.4e-7);
  });

  it('refuses what it has no form for with a CompileError naming the kernel and the op', () => {
    // a shift by a count that varies by lane: i32x4 shifts take one count
    const k = kernel('kernel k7 [8]', '%0: i32 = load x[d0]', '%1: i32 = shl %0, %0', 'store x[d0] = %1');
    expect(() => renderWasmKernel(k, () => 0)).toThrow('the wasm target cannot render kernel k7: shl has no WebAssembly SIMD form here (i32)');
  });
});

const LAYOUTS = `import { model } from 'graphc';
export default model('layouts', (g) => {
  const x = g.input('x', [6, 10, 7]);
  const m = g.input('m', [10, 7]);
  const idx = g.input('idx', [6], 'i32');
  const a = g.param('a', [6, 10, 7]);
  const b = g.param('b', [7]);
  const z = g.input('z', [300, 4, 5]);
  const w = g.param('w', [4, 5]);
  const h = x.mul(a).add(m);
  const t = h.transpose([2, 0, 1]);
  const s = h.narrow(2, 1, 5);
  const p = g.pad(s, [[0, 0], [0, 0], [1, 1]]);
  const c = g.concat([h, p], 0);
  const q = c.pow(3).mul(0.1).add(c.abs().add(1).pow(-1.5)).add(c.abs().add(1).pow(0.5));
  const oh = g.oneHot(idx, 7).mul(b);
  const loss = t.sum(0).square().mean()
    .add(q.sum(1).mul(b).square().mean())
    .add(q.max(2).mean())
    .add(z.mul(w).sum(0).square().mean())
    .add(h.sum(1).mul(oh).sum())
    .add(g.concat([h, h.mul(2)], 2).transpose([0, 2, 1]).narrow(1, 3, 9).square().mean());
  return { loss };
});
`;


const SPLITS = `import { model } from 'graphc';
export default model('splits', (g) => {
  const x = g.input('x', [4, 6, 9]);
  const a = g.param('a', [4, 6, 9]);
  const b = g.param('b', [4, 6, 9]);
  const c = g.param('c', [4, 6, 9]);
  // q, k and v narrowed from one value (attention's c_attn): their gradients' pads tile axis 2
  const r = x.add(a);
  const [q, k, v] = [r.narrow(2, 0, 3), r.narrow(2, 3, 2), r.narrow(2, 5, 4)];
  // pieces with a gap (axis 2's 3), and overlapping ones (3): sums of pads that stay sums
  const e = x.mul(b);
  const f = x.sub(c);
  const loss = q.mul(v.narrow(2, 1, 3)).tanh().sum().add(k.square().mean())
    .add(e.narrow(2, 0, 3).mul(e.narrow(2, 4, 3)).sum())
    .add(f.narrow(2, 0, 4).square().sum()).add(f.narrow(2, 3, 6).abs().sum());
  return { loss };
});
`;

describe('the wasm module: groups that were JS loops run as kernels of the kernel form', () => {
  it('constant powers at ±∞ and ±0 in the flat and wasm modules give what Math.pow gives', async () => {
    const EXPS = [2.5, -1.5, -0.5, 0.5, 3, -2];
    const src = `import { model } from 'graphc';
export default model('pinf', (g) => {
  const x = g.input('x', [8]);
  const p = g.param('p', [8]);
  const z = x.add(p);
  return { loss: z.sum(), ${EXPS.map((e, i) => `p${i}: z.pow(${e})`).join(', ')} };
});
`;
    const c = await compile(modelFile(src, 'pinf.ts'), { targets: ['ts', 'wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const xs = [Infinity, -Infinity, 0, -0, Infinity, -Infinity, 0, -0];
    for (const suffix of ['', '.wasm']) {
      const mod = (await import(pathToFileURL(path.join(dir, `pinf${suffix}.js`)).href)) as { forward(p: Arrays, i: Arrays): Record<string, Float32Array> };
      const out = mod.forward({ p: new Float32Array(8) }, { x: Float32Array.from(xs) });
      EXPS.forEach((e, i) => expect([...out[`p${i}`]!], `pinf${suffix}: x^${e}`).toEqual(xs.map((x) => Math.fround(Math.pow(x + 0, e)))));
    }
  });

  it('layout copies, broadcasts, constant powers, one_hot, row, middle and long column reductions agree with the float64 interpreter, on 1 and 2 threads', async () => {
    const file = modelFile(LAYOUTS);
    const c = await compile(file, { targets: ['wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const code = String(c.files.find((f) => f.name === 'layouts.wasm.ts')!.content);
    expect(kernelJsSteps(code)).toEqual([]);
    expect(code).toMatch(/kernel_\w+: .*\(kernel form\)/);
    const mod = (await import(pathToFileURL(path.join(dir, 'layouts.wasm.js')).href)) as GeneratedModule & {
      create(o: { threads: number; minWork: number; adapt: boolean }): Promise<GeneratedModule & { destroy(): Promise<void> }>;
    };
    const { params, inputs } = randomArgs(c.fwd, 9);
    inputs.idx = Int32Array.from([0, 6, 3, 3, 1, 5]);
    const ref = reference(c.fwd, c.bwd, params, inputs);
    const got = mod.valueAndGrad(params, inputs);
    expect(relErr([got.loss], ref.outputs.loss!.data)).toBeLessThan(1e-5);
    for (const [k, g] of Object.entries(ref.grads)) expect(relErr(got.grads[k]!, g), `d${k}`).toBeLessThan(1e-4);
    const single = { loss: got.loss, grads: Object.fromEntries(Object.entries(got.grads).map(([k, v]) => [k, Float32Array.from(v)])) };
    const inst = await mod.create({ threads: 2, minWork: 0, adapt: false });
    try {
      const two = inst.valueAndGrad(params, inputs as Arrays);
      expect(two.loss).toBe(single.loss);
      for (const [k, g] of Object.entries(single.grads)) expect([...two.grads[k]!], `d${k} on 2 threads`).toEqual([...g]);
    } finally {
      await inst.destroy();
    }
  });

  it('a gradient of pieces narrowed from one value is their concatenation where the pieces tile its axis, a sum of pads elsewhere; flat and wasm modules agree with reverse mode before any pass', async () => {
    const file = modelFile(SPLITS, 'splits.ts');
    const c = await compile(file, { targets: ['ts', 'wasm'] });
    const ops = c.bwd.insts.map((i) => i.op);
    expect(ops.filter((o) => o === 'concat')).toHaveLength(1);
    expect(ops.filter((o) => o === 'pad')).toHaveLength(5); // v's own narrow, e's two, f's two
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const args = randomArgs(c.fwd, 5);
    const want = interpGrads(tracedModel(SPLITS), args).grads;
    for (const suffix of ['', '.wasm']) {
      const mod = (await import(pathToFileURL(path.join(dir, `splits${suffix}.js`)).href)) as GeneratedModule;
      const got = mod.valueAndGrad(args.params, args.inputs);
      for (const [k, g] of Object.entries(want)) expect(relErr(got.grads[k]!, g), `splits${suffix}: d${k}`).toBeLessThan(1e-5);
    }
  });
});
