// The wasm module's index kernels (codegen/wasm/index-kernels.ts) on their own, over a memory of
// their own: an index out of range (which only a computed index could be: the staged inputs are
// checked first) reads NaN and writes nothing, never outside its arrays, as the flat module's
// typed arrays behave; cross-entropy's f64 logarithm against Math.log over many rows.

import { describe, expect, it } from 'vitest';
import type { Routine, View } from '../codegen/kernel/form.js';
import { Body, encodeModule } from '../codegen/wasm/encode.js';
import type { IndexKernel } from '../codegen/wasm/index-kernels.js';
import { argmaxMask, cumsum, indexKernel } from '../codegen/wasm/index-kernels.js';
import { softmaxBody, softmaxRows } from '../codegen/wasm/softmax.js';
import { f32x4Exp } from '../codegen/wasm/kernel-alu.js';
import { size } from '../ir/dims.js';

declare const WebAssembly: {
  Memory: new (size: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, (...a: number[]) => void> };
};

/** A dense view of `shape` over the array `arg`. */
function view(arg: string, shape: number[]): View {
  const strides = shape.map((_d, k) => size(shape.slice(k + 1).reduce((p, d) => p * d, 1)));
  return { arg, shape, strides, offset: size(0) };
}

/** Byte addresses of the arrays a..d, 16 KiB apart; everything else in the memory holds the sentinel 12345. */
const AT: Record<string, number> = { a: 0, b: 16384, c: 32768, d: 49152 };
const SENTINEL = 12345;

/** Runs the kernel of r (a split one over `ranges`, by default its whole extent at once). */
function run(r: Routine | IndexKernel, fill: (f32: Float32Array, i32: Int32Array) => void, ranges?: [number, number][]): { f32: Float32Array; i32: Int32Array } {
  const k = 'body' in r ? r : indexKernel(r, (arg) => AT[arg]);
  if (!k) throw new Error(`no kernel for ${(r as Routine).op}`);
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  const f32 = new Float32Array(memory.buffer);
  const i32 = new Int32Array(memory.buffer);
  f32.fill(SENTINEL);
  fill(f32, i32);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(encodeModule(1, [{ name: 'k', body: k.body }])), { env: { memory } });
  if (k.split) for (const [lo, hi] of ranges ?? [[0, k.split.extent]]) inst.exports.k!(lo, hi);
  else inst.exports.k!();
  return { f32, i32 };
}

const routine = (op: string, attrs: object, inputs: View[], output: View, dtype: 'f32' | 'i32' = 'f32') => ({ kind: 'routine', name: 'r0', op, attrs, inputs, output, dtype, notes: [] }) as unknown as Routine;
const at = (arg: string, k = 0) => AT[arg]! / 4 + k;

describe('an index out of range in a wasm index kernel', () => {
  it('gather: its row reads NaN; the other rows are copied; nothing past the output is written', () => {
    // table [4, 6], indices [5]: 2, −1, 4, 0, 3
    const { f32 } = run(routine('gather', {}, [view('a', [4, 6]), view('b', [5])], view('c', [5, 6])), (f, i) => {
      for (let k = 0; k < 24; k++) f[at('a', k)] = k + 0.5;
      i.set([2, -1, 4, 0, 3], at('b'));
    });
    const out = Array.from(f32.subarray(at('c'), at('c', 30)));
    const row = (r: number) => Array.from({ length: 6 }, (_x, j) => r * 6 + j + 0.5);
    expect(out).toEqual([...row(2), ...Array(6).fill(NaN), ...Array(6).fill(NaN), ...row(0), ...row(3)]);
    expect(f32[at('c', 30)]).toBe(SENTINEL);
  });

  it('scatter_add: its row adds nothing; repeated indices add in order; no other memory changes', () => {
    // src [5, 5] into [3, 5] at 1, 7, 1, −2, 0
    const { f32 } = run(routine('scatter_add', { shape: [3, 5] }, [view('a', [5]), view('b', [5, 5])], view('c', [3, 5])), (f, i) => {
      i.set([1, 7, 1, -2, 0], at('a'));
      for (let k = 0; k < 25; k++) f[at('b', k)] = k;
    });
    const src = (r: number) => Array.from({ length: 5 }, (_x, j) => r * 5 + j);
    const want = [...src(4), ...src(0).map((x, j) => x + src(2)[j]!), ...Array(5).fill(0)];
    expect(Array.from(f32.subarray(at('c'), at('c', 15)))).toEqual(want);
    expect(f32[at('c', 15)]).toBe(SENTINEL);
    expect(f32[at('c') - 1]).toBe(SENTINEL);
  });

  it('scatter_add split by columns (threads): each range of columns as one pass over all of them', () => {
    const scatter = (ranges?: [number, number][]) =>
      run(
        routine('scatter_add', { shape: [3, 10] }, [view('a', [4]), view('b', [4, 10])], view('c', [3, 10])),
        (f, i) => {
          i.set([2, 0, 2, 9], at('a'));
          for (let k = 0; k < 40; k++) f[at('b', k)] = Math.sin(k);
        },
        ranges,
      ).f32.slice(at('c') - 1, at('c', 31));
    const whole = scatter();
    expect(whole[0]).toBe(SENTINEL);
    expect(whole[31]).toBe(SENTINEL);
    expect(Array.from(whole.subarray(1, 11))).toEqual(Array.from({ length: 10 }, (_x, j) => Math.fround(Math.sin(10 + j))));
    expect(Array.from(whole.subarray(21, 31))).toEqual(Array.from({ length: 10 }, (_x, j) => Math.fround(Math.fround(Math.sin(j)) + Math.fround(Math.sin(20 + j)))));
    expect(scatter([[0, 4], [4, 10]])).toEqual(whole);
    expect(scatter([[4, 8], [0, 4], [8, 10]])).toEqual(whole);
  });

  it('pick and xent: NaN where the index is out of range', () => {
    const pick = run(routine('pick', {}, [view('a', [3, 4]), view('b', [3])], view('c', [3])), (f, i) => {
      for (let k = 0; k < 12; k++) f[at('a', k)] = k;
      i.set([3, 4, -1], at('b'));
    });
    expect(Array.from(pick.f32.subarray(at('c'), at('c', 4)))).toEqual([3, NaN, NaN, SENTINEL]);
    const xent = run(routine('xent', {}, [view('a', [2, 3]), view('b', [2])], view('c', [])), (f, i) => {
      f.set([1, 2, 3, 4, 5, 6], at('a'));
      i.set([0, 3], at('b'));
    });
    expect(xent.f32[at('c')]).toBeNaN();
    expect(xent.f32[at('c', 1)]).toBe(SENTINEL);
  });
});

/** exp of each float by the kernels' f32x4Exp (the steps' Cephes approximation), in a memory of its own. */
function wasmExp(xs: readonly number[]): Float32Array {
  const f = new Body();
  const [p, j] = [f.local('i32'), f.local('i32')];
  const tmp = Array.from({ length: 5 }, () => f.local('v128'));
  f.repeat(j, Math.ceil(xs.length / 4), () => {
    f.get(p).get(p).v128Load(0);
    f32x4Exp(f, tmp);
    f.v128Store(0).bump(p, 16);
  });
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  new Float32Array(memory.buffer).set(xs);
  new WebAssembly.Instance(new WebAssembly.Module(encodeModule(1, [{ name: 'k', body: f }])), { env: { memory } }).exports.k!();
  return new Float32Array(memory.buffer, 0, xs.length);
}

/** The bits of a result, every NaN one NaN (which NaN an operation makes is the engine's: its tiers differ). */
const bits = (x: Float32Array) => Array.from(new Uint32Array(Float32Array.from(x, (v) => (Number.isNaN(v) ? NaN : v)).buffer));

/** softmax of a line as the flat module's loop: `if (v > max) max = v`, exp(x − max) (f32), Σ in f64, times f32(1 / Σ). */
function softmaxLine(x: readonly number[]): number[] {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  const e = wasmExp(x.map((v) => Math.fround(v - max)));
  let sum = 0;
  for (const v of e) sum += v;
  const c = Math.fround(1 / sum);
  return Array.from(e, (v) => Math.fround(v * c));
}

describe('wasm softmax over rows (softmax.ts)', () => {
  /** M, N read from the memory at d: the symbolic module's run-time row count and length. */
  const rt = (k: number, text: string) => ({ push: (f: Body) => void f.i32(0).i32Load(AT.d! + 4 * k), text });

  it('a run-time row count and length: the static kernel\'s bits (ragged and blocked rows, NaN, ±∞, ±0, ties); log_softmax against float64', () => {
    const pool = [3, 3, 0, -0, -Infinity, Infinity, NaN, -1e9];
    for (const [M, N] of [[3, 1], [2, 3], [5, 4], [3, 7], [2, 65], [2, 259], [1, 300]] as [number, number][]) {
      const fill = (special: boolean) => (f: Float32Array, i: Int32Array) => {
        i.set([M, N], at('d'));
        for (let k = 0; k < M * N; k++) f[at('a', k)] = special && k % 5 === 2 ? pool[k % pool.length]! : Math.sin(k * 1.7) * (k % 3 ? 3 : 40);
      };
      for (const log of [false, true])
        for (const special of [false, true]) {
          const out = (k: IndexKernel, ranges?: [number, number][]) => run(k, fill(special), ranges).f32.slice(at('b') - 1, at('b', M * N + 1));
          const stat = softmaxRows(M, N, log, AT.a!, AT.b!, true);
          const want = out(stat);
          expect(want[0], 'nothing before the output').toBe(SENTINEL);
          expect(want[M * N + 1], 'nothing after it').toBe(SENTINEL);
          if (stat.split) expect(bits(out(stat, [[1, M], [0, 1]])), `${M}×${N}: rows in two ranges`).toEqual(bits(want));
          const sym = softmaxRows(rt(0, 'M'), rt(1, 'N'), log, AT.a!, AT.b!);
          expect(sym.what).toBe(`${log ? 'log_softmax' : 'softmax'} of M rows of N, four columns at a time`);
          expect(bits(out(sym)), `${M}×${N} ${log ? 'log_softmax' : 'softmax'}: run-time sizes`).toEqual(bits(want));
          if (special || !log) continue;
          const x = run(stat, fill(false)).f32.slice(at('a'), at('a', M * N));
          for (let r = 0; r < M; r++) {
            const row = Array.from(x.subarray(r * N, (r + 1) * N));
            const lse = Math.max(...row) + Math.log(row.reduce((s, v) => s + Math.exp(v - Math.max(...row)), 0));
            row.forEach((v, j) => expect(Math.abs(want[1 + r * N + j]! - (v - lse)), `${M}×${N} [${r},${j}]`).toBeLessThan(2e-6 * Math.max(1, Math.abs(v - lse))));
          }
        }
    }
  });

  it('in place (x and y one array): the same bits as into another array', () => {
    const fill = (f: Float32Array) => {
      for (let k = 0; k < 3 * 10; k++) f[at('a', k)] = Math.cos(k) * 9;
    };
    for (const log of [false, true]) {
      const apart = run({ body: softmaxBody({ M: 3, N: 10, x: AT.a!, out: AT.b!, log }), what: '' }, fill).f32.slice(at('b'), at('b', 30));
      const inPlace = run({ body: softmaxBody({ M: 3, N: 10, x: AT.a!, out: AT.a!, log }), what: '' }, fill).f32.slice(at('a'), at('a', 30));
      expect(bits(inPlace)).toEqual(bits(apart));
    }
  });
});

describe('wasm softmax along an axis with elements after it', () => {
  it('four adjacent lines at a time (softmax-columns.ts): bit for bit the flat module\'s loop (softmax) and the row kernel (log_softmax), split by planes or by columns, NaN, ±∞, ±0 and ties', () => {
    for (const [shape, axis] of [[[2, 5, 7], 1], [[6, 9], 0], [[3, 4, 4], 1], [[1, 3, 2], 1]] as [number[], number][]) {
      const n = shape.reduce((p, d) => p * d, 1);
      const [len, inner] = [shape[axis]!, shape.slice(axis + 1).reduce((p, d) => p * d, 1)];
      const outer = n / (len * inner);
      // the special values in the first line of each plane only (ties, ±0, −∞ in some, ∞ or NaN in others), the other lines finite
      const value = (k: number) => {
        const [c, j, p] = [k % inner, Math.floor(k / inner) % len, Math.floor(k / (inner * len))];
        return c === 0 ? [3, 3, 0, -0, -Infinity, Infinity, NaN][(j + 2 * p) % 7]! : Math.sin(k) * 40;
      };
      const fill = (f: Float32Array) => {
        for (let k = 0; k < n; k++) f[at('a', k)] = value(k);
      };
      // the element of line (p, c) at j, and its lines as rows ([outer, inner, len])
      const index = (p: number, c: number, j: number) => (p * len + j) * inner + c;
      const lines = Array.from({ length: outer * inner }, (_l, l) => Array.from({ length: len }, (_j, j) => index(Math.floor(l / inner), l % inner, j)));
      const rows = run(softmaxRows(outer * inner, len, true, AT.a!, AT.b!), (f) => lines.flat().forEach((k, r) => (f[at('a', r)] = value(k))));
      for (const op of ['softmax', 'log_softmax']) {
        const r = routine(op, { axis }, [view('a', shape)], view('b', shape));
        const k = indexKernel(r, (arg) => AT[arg])!;
        expect(k.what).toMatch(/four lines at a time/);
        const want = new Float32Array(n);
        lines.forEach((line, l) => {
          const y = op === 'softmax' ? softmaxLine(line.map((k) => Math.fround(value(k)))) : Array.from(rows.f32.subarray(at('b', l * len), at('b', (l + 1) * len)));
          line.forEach((k, j) => (want[k] = y[j]!));
        });
        const got = (ranges?: [number, number][]) => run(r, fill, ranges).f32.slice(at('b'), at('b', n));
        expect(bits(got()), `${shape} ${axis} ${op}`).toEqual(bits(want));
        expect(Array.from(want).filter((v) => !Number.isNaN(v)).length, `${shape}: values that are not NaN`).toBeGreaterThan(n / 2);
        if (k.split) {
          const e = k.split.extent;
          const cut = k.split.align === 4 ? 4 : 1;
          expect(bits(got([[cut, e], [0, cut]]))).toEqual(bits(want));
        }
        const around = run(r, fill).f32;
        expect([around[at('b') - 1], around[at('b', n)]], 'nothing outside the output').toEqual([SENTINEL, SENTINEL]);
      }
    }
  });
});

describe('wasm argmax_mask over adjacent reduced axes', () => {
  it('as lines (four lanes of a row, four columns at once): bit for bit the nested loops, NaN first or later, ties, ±0, −∞, split by planes', () => {
    const cases: [number[], number[], RegExp][] = [
      [[6, 9], [1], /four lanes/],
      [[3, 13], [1], /four lanes/],
      [[5, 6], [0], /four columns/],
      [[2, 3, 4, 5], [1, 2], /four columns/],
      [[4, 1, 7], [0, 1], /lines of 4, 7 apart/],
      [[3, 5], [1], /lines of 5 \(the first maximum\)$/],
    ];
    for (const [shape, axes, how] of cases) {
      const n = shape.reduce((p, d) => p * d, 1);
      // rows of ties (2, −0/+0 against each other), NaN at the start of some lines and later in others, −∞ rows
      const pool = [2, NaN, -0, 0, 2, -Infinity, 1, -Infinity, NaN, 0, -0, 2, 1.5];
      const fill = (f: Float32Array) => {
        for (let k = 0; k < n; k++) f[at('a', k)] = pool[(k * 7 + (k >> 3)) % pool.length]!;
        f[at('a', n - 1)] = -Infinity;
      };
      const r = routine('argmax_mask', { axes }, [view('a', shape)], view('b', shape));
      const k = indexKernel(r, (arg) => AT[arg])!;
      expect(k.what).toMatch(how);
      const want = new Uint32Array(run(argmaxMask(shape, axes, AT.a!, AT.b!), fill).f32.slice(at('b') - 1, at('b', n + 1)).buffer);
      const got = (ranges?: [number, number][]) => new Uint32Array(run(r, fill, ranges).f32.slice(at('b') - 1, at('b', n + 1)).buffer);
      expect(got()).toEqual(want);
      if (k.split) expect(got([[k.split.align, k.split.extent], [0, k.split.align]])).toEqual(want);
      else expect(how.source).not.toMatch(/lanes/);
    }
  });
});

describe('wasm cumsum along rows', () => {
  it('four elements loaded and stored at once: bit for bit the one-by-one loop (the same f64 sums), either direction, rows of 8 to 13', () => {
    for (const [rows, len] of [[3, 13], [2, 8], [1, 9], [2, 12]]) {
      const n = rows * len;
      const fill = (f: Float32Array) => {
        for (let k = 0; k < n; k++) f[at('a', k)] = k % 9 === 5 ? [NaN, Infinity, -0][k % 3]! : Math.sin(k * 1.7) * 10 ** ((k % 7) - 3);
      };
      for (const reverse of [false, true]) {
        const r = routine('cumsum', { axis: 1, reverse }, [view('a', [rows, len])], view('b', [rows, len]));
        const k = indexKernel(r, (arg) => AT[arg])!;
        expect(k.what).toMatch(/four elements loaded at once/);
        // the same kernel with the row length a run-time value: one by one
        const scalar = cumsum({ lines: rows, len: { push: (f) => void f.i32(len), text: String(len) }, inner: 1 }, reverse, AT.a!, AT.b!);
        expect(scalar.what).not.toMatch(/at once/);
        const bits = (x: Routine | IndexKernel) => new Uint32Array(run(x, fill).f32.slice(at('b') - 1, at('b', n + 1)).buffer);
        expect(bits(r)).toEqual(bits(scalar));
      }
    }
  });
});

describe('wasm cross-entropy', () => {
  it('agrees with the float64 formula over rows of 1 to 300 classes and logits from −80 to 80', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const C of [1, 2, 3, 4, 5, 7, 8, 65, 300]) {
      const n = 5;
      const scale = [0.01, 1, 10, 80][C % 4]!;
      const x = Float32Array.from({ length: n * C }, () => (rand() * 2 - 1) * scale);
      const t = Int32Array.from({ length: n }, () => Math.floor(rand() * C));
      let total = 0;
      for (let i = 0; i < n; i++) {
        const row = Array.from(x.subarray(i * C, (i + 1) * C));
        const max = Math.max(...row);
        total += row[t[i]!]! - max - Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      }
      const { f32 } = run(routine('xent', {}, [view('a', [n, C]), view('b', [n])], view('c', [])), (f, i) => {
        f.set(x, at('a'));
        i.set(t, at('b'));
      });
      const want = -total / n;
      expect(Math.abs(f32[at('c')]! - want), `C = ${C}`).toBeLessThanOrEqual(4e-7 * Math.max(1, Math.abs(want)));
    }
  });
});
