// The decomposition pass (codegen/kernel/decompose.ts) and the ALU primitives it builds on: each
// decomposition, evaluated node by node in f32 arithmetic (codegen/kernel/eval.ts's f32 mode), is
// held against the float64 function over dense samples of its range plus the special values, to
// the ulp bound docs/compiler.md states; a kernel of native primitives is left alone; a primitive
// a target lacks and cannot decompose is a CompileError naming it and the target; the flat
// module renders erf through its decomposition. Also: the new primitives print, parse back and
// verify, ir/special.ts's erf against known values.

import { describe, expect, it } from 'vitest';
import type { Size } from '../ir/dims.js';
import { CompileError } from '../ir/errors.js';
import { erf } from '../ir/special.js';
import type { AluOp, HostProgram, Kernel, Launch, Node } from '../codegen/kernel/form.js';
import { ALU, f32Bits, f32FromBits } from '../codegen/kernel/form.js';
import type { Capabilities } from '../codegen/kernel/decompose.js';
import { ALL_ALU, TWO_OVER_PI_HEX, capabilities, decompose, decomposeProgram } from '../codegen/kernel/decompose.js';
import { evalKernel, runEntry } from '../codegen/kernel/eval.js';
import { verifyKernel } from '../codegen/kernel/verify.js';
import { printLaunch } from '../codegen/kernel/print.js';
import { parseLaunch } from '../codegen/kernel/parse.js';
import { TS_CAPABILITIES, renderKernel } from '../codegen/ts/render.js';

const S = (c: number): Size => ({ coef: c, syms: [] });
const TRANSCENDENTAL: readonly AluOp[] = ['exp', 'log', 'tanh', 'sin', 'cos', 'erf', 'log1p', 'expm1', 'pow'];
/** A SIMD target: arithmetic, comparisons, select, sqrt, floor and the bit primitives, no transcendental function. */
const SIMD = capabilities('wasm SIMD', ALL_ALU.filter((o) => !TRANSCENDENTAL.includes(o)));
/** A bare target: not even sqrt, floor, recip, neg or abs. */
const BARE = capabilities('bare', ['add', 'sub', 'mul', 'div', 'lt', 'le', 'eq', 'where', 'cast', 'toint', 'bits', 'frombits', 'shl', 'shr', 'and', 'or', 'max', 'min']);

/** y[i] = op(x[i]) (or op(x[i], c) with a constant c) over n points. */
function kernelOf(op: AluOp, n: number, c?: number): Kernel {
  const x: Node = { op: 'load', dtype: 'f32', access: { arg: 'x', strides: [S(1)], offset: S(0) } };
  const nodes: Node[] = c === undefined ? [x, { op, dtype: 'f32', args: [0] } as Node] : [x, { op: 'const', dtype: 'f32', value: c }, { op, dtype: 'f32', args: [0, 1] } as Node];
  return { kind: 'kernel', name: 'k', domain: [n], axes: [], nodes, stores: [{ node: nodes.length - 1, access: { arg: 'y', strides: [S(1)], offset: S(0) } }], notes: [] };
}

const arraysOf = (n: number) => (name: string) => (name === 'x' || name === 'y' ? { dtype: 'f32' as const, numel: S(n) } : undefined);

/** The spacing of f32 numbers at v (subnormals: 2⁻¹⁴⁹). */
function ulp(v: number): number {
  const a = Math.abs(Math.fround(v));
  if (a === 0) return 2 ** -149;
  return 2 ** (Math.max(Math.floor(Math.log2(a)), -126) - 23);
}

/** The decomposed kernel (verified before and after) evaluated in f32 over xs. */
function run(op: AluOp, xs: Float64Array, caps: Capabilities, c?: number, f32 = true): { out: Float64Array; kernel: Kernel } {
  const k = kernelOf(op, xs.length, c);
  expect(verifyKernel(k, arraysOf(xs.length))).toEqual([]);
  const d = decompose(k, caps);
  expect(verifyKernel(d, arraysOf(xs.length))).toEqual([]);
  expect(d.nodes.every((n) => !(n.op in ALU) || caps.native.has(n.op as AluOp)), 'only native primitives are left').toBe(true);
  const out = new Float64Array(xs.length);
  evalKernel(d, (name) => (name === 'x' ? xs : out), {}, { f32 });
  // stored into an f32 array
  return { out: out.map(Math.fround), kernel: d };
}

/**
 * The largest error in ulps over the points whose reference is a finite nonzero f32 value;
 * where it is ±0, ±∞ or NaN the result must be exactly that (the sign of 0 included).
 */
function maxUlp(op: AluOp, xs: Float64Array, ref: (x: number) => number, caps: Capabilities, c?: number, f32 = true): { ulps: number; at: number } {
  const { out } = run(op, xs, caps, c, f32);
  let ulps = 0;
  let at = NaN;
  const wrong: string[] = [];
  xs.forEach((x, i) => {
    const r = ref(x);
    const r32 = Math.fround(r);
    if (!Number.isFinite(r32) || r32 === 0) {
      if (!Object.is(out[i], r32)) wrong.push(`${op}(${x}) = ${out[i]}, not ${r32}`);
      return;
    }
    const e = Math.abs(out[i]! - r) / ulp(r);
    if (!(e <= ulps)) [ulps, at] = [e, x];
  });
  expect(wrong.slice(0, 5)).toEqual([]);
  return { ulps, at };
}

/** n f32 points from lo to hi, evenly (or evenly in log scale when `log`, lo and hi of one sign). */
function samples(lo: number, hi: number, n: number, log = false): number[] {
  return Array.from({ length: n }, (_x, i) => {
    const t = i / (n - 1);
    return Math.fround(log ? Math.sign(lo) * Math.exp(Math.log(Math.abs(lo)) + t * (Math.log(Math.abs(hi)) - Math.log(Math.abs(lo)))) : lo + t * (hi - lo));
  });
}
const SPECIAL = [0, -0, Infinity, -Infinity, NaN, 1e-45, -1e-45, 1e-40, -1e-40, 2 ** -126, 3.4e38, -3.4e38, 1, -1, 0.5, -0.5, 2];
const points = (...parts: readonly (readonly number[])[]) => Float64Array.from(parts.flat(), Math.fround);
/** Dense over [−hi, hi], log-spaced from 1e-30 to hi on either side, and the special values. */
const symmetric = (hi: number) => points(samples(-hi, hi, 60000), samples(1e-30, hi, 20000, true), samples(-1e-30, -hi, 20000, true), SPECIAL);

interface Case {
  readonly op: AluOp;
  readonly ref: (x: number) => number;
  readonly xs: () => Float64Array;
  /** The bound docs/compiler.md states, in ulps. */
  readonly bound: number;
  readonly c?: number;
  /** Also measured on the bare target (where its decomposition uses decomposed sqrt, recip, neg, abs, floor). */
  readonly bare?: boolean;
}

const CASES: readonly (readonly [string, Case])[] = [
  ['exp', { op: 'exp', ref: Math.exp, bound: 1, xs: () => points(samples(-110, 90, 80000), samples(-1, 1, 20000), SPECIAL, [88.72283172607422, 88.72283935546875, -87.3, -103.9, -104.5]) }],
  ['log', { op: 'log', ref: Math.log, bound: 1, xs: () => points(samples(1e-45, 3.4e38, 60000, true), samples(0, 3, 20000), samples(0.5, 2, 20000), SPECIAL) }],
  ['tanh', { op: 'tanh', ref: Math.tanh, bound: 1.5, bare: true, xs: () => symmetric(20) }],
  ['sin', { op: 'sin', ref: Math.sin, bound: 2, xs: () => points(samples(-1e5, 1e5, 60000), samples(-10, 10, 20000), samples(1e-30, 1e5, 20000, true), samples(1e4, 3.4e38, 10000, true), samples(-1e4, -3.4e38, 10000, true), SPECIAL) }],
  ['cos', { op: 'cos', ref: Math.cos, bound: 2, xs: () => points(samples(-1e5, 1e5, 60000), samples(-10, 10, 20000), samples(-1e-30, -1e5, 20000, true), samples(1e4, 3.4e38, 10000, true), samples(-1e4, -3.4e38, 10000, true), SPECIAL) }],
  ['erf', { op: 'erf', ref: erf, bound: 2, xs: () => symmetric(10) }],
  ['log1p', { op: 'log1p', ref: Math.log1p, bound: 2, xs: () => points(samples(-1, 10, 60000), samples(1e-30, 3e38, 20000, true), samples(-1e-30, -1, 20000, true), SPECIAL, [-2]) }],
  ['expm1', { op: 'expm1', ref: Math.expm1, bound: 2, xs: () => points(Array.from(symmetric(1)), samples(-110, 90, 40000)) }],
  ['sqrt', { op: 'sqrt', bare: true, ref: Math.sqrt, bound: 1, xs: () => points(samples(1e-45, 3.4e38, 60000, true), samples(0, 4, 40000), SPECIAL) }],
  ['floor', { op: 'floor', bare: true, ref: Math.floor, bound: 0, xs: () => points(samples(-1e3, 1e3, 60000), samples(-1e9, 1e9, 40000), SPECIAL, [8388607.5, -8388607.5]) }],
  ['pow(x, 3)', { op: 'pow', c: 3, ref: (x) => Math.pow(x, 3), bound: 1.5, xs: () => points(samples(-30, 30, 100000), SPECIAL) }],
  ['pow(x, -3)', { op: 'pow', bare: true, c: -3, ref: (x) => Math.pow(x, -3), bound: 2.5, xs: () => points(samples(-30, 30, 100000), SPECIAL) }],
  ['pow(x, 0.5)', { op: 'pow', bare: true, c: 0.5, ref: (x) => Math.pow(x, 0.5), bound: 1, xs: () => points(samples(0, 100, 100000), SPECIAL) }],
  ['pow(x, 1.5)', { op: 'pow', c: 1.5, bare: true, ref: (x) => Math.pow(x, 1.5), bound: 2, xs: () => points(samples(-1, 100, 100000), SPECIAL) }],
  ['pow(x, -2.5)', { op: 'pow', c: -2.5, bare: true, ref: (x) => Math.pow(x, -2.5), bound: 4, xs: () => points(samples(-1, 100, 100000), SPECIAL) }],
  ['pow(x, -0.5)', { op: 'pow', bare: true, c: -0.5, ref: (x) => Math.pow(x, -0.5), bound: 2.5, xs: () => points(samples(0, 100, 100000), SPECIAL) }],
];

/** Each case on the SIMD target where it is not native there, and on the bare target where its decomposition differs. */
const RUNS = CASES.flatMap(([name, cs]) =>
  [['a SIMD target', SIMD] as const, ['a bare target', BARE] as const]
    .filter(([_t, caps]) => (cs.c !== undefined || !caps.native.has(cs.op)) && (caps === SIMD || cs.bare))
    .map(([t, caps]) => [name, t, caps, cs] as const),
);

describe.each(RUNS)('the decomposition of %s on %s', (_name, _t, caps, cs) => {
  it('is within its bound in f32 arithmetic', () => {
    const { ulps, at } = maxUlp(cs.op, cs.xs(), cs.ref, caps, cs.c);
    expect(ulps, `${cs.op} at ${at}`).toBeLessThanOrEqual(cs.bound);
  });
});

describe('the decompositions in float64 arithmetic (a renderer that computes in f64, as the flat module does)', () => {
  it.each(CASES)('%s is within its bound too', (_name, cs) => {
    const xs = cs.xs().filter((_x, i) => i % 10 === 0);
    const caps = SIMD.native.has(cs.op) && cs.c === undefined ? BARE : SIMD; // sqrt, floor: decomposed on the bare target
    const { ulps, at } = maxUlp(cs.op, Float64Array.from([...xs, ...SPECIAL], Math.fround), cs.ref, caps, cs.c, false);
    expect(ulps, `${cs.op} at ${at}`).toBeLessThanOrEqual(cs.bound);
  });
});

describe('the decompositions of the arithmetic primitives', () => {
  it('compute what the primitive does where a target lacks it (div within 1.5 ulps of the f32 quotient, the others exactly)', () => {
    const n = 20000;
    let seed = 7;
    const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const a = Float64Array.from({ length: n }, () => Math.fround((rnd() - 0.5) * Math.exp((rnd() - 0.5) * 60)));
    const bv = Float64Array.from({ length: n }, () => Math.fround((rnd() - 0.5) * Math.exp((rnd() - 0.5) * 60)));
    for (const op of ['recip', 'neg', 'abs', 'sub', 'div', 'max', 'min'] as const) {
      const unary = ALU[op].arity === 1;
      const load = (arg: string): Node => ({ op: 'load', dtype: 'f32', access: { arg, strides: [S(1)], offset: S(0) } });
      const nodes: Node[] = unary ? [load('a'), { op, dtype: 'f32', args: [0] } as Node] : [load('a'), load('b'), { op, dtype: 'f32', args: [0, 1] } as Node];
      const k: Kernel = { kind: 'kernel', name: 'k', domain: [n], axes: [], nodes, stores: [{ node: nodes.length - 1, access: { arg: 'y', strides: [S(1)], offset: S(0) } }], notes: [] };
      const caps = capabilities('test', ALL_ALU.filter((o) => o !== op));
      const d = decompose(k, caps);
      expect(d.nodes.some((nd) => nd.op === op), op).toBe(false);
      const arrays = (name: string) => (['a', 'b', 'y'].includes(name) ? { dtype: 'f32' as const, numel: S(n) } : undefined);
      expect(verifyKernel(d, arrays)).toEqual([]);
      const y = new Float64Array(n);
      evalKernel(d, (name) => (name === 'a' ? a : name === 'b' ? bv : y), {}, { f32: true });
      // against the f32 rounding of the exact result
      const want = (i: number) => Math.fround(ALU[op].eval(a[i]!, bv[i]!));
      const worst = Math.max(...Array.from(y, (v, i) => Math.abs(v - want(i)) / ulp(want(i))));
      expect(worst, op).toBeLessThanOrEqual(op === 'div' ? 1.5 : 0);
    }
  });
});

describe('the decomposition of pow with a non-constant exponent', () => {
  it('is within 2 + 2·|y| ulps, with Math.pow\'s values at 0, ∞ and negative bases', () => {
    for (const y of [1.7, 2.5, -1.3, 3, 7.3, -11.1, 0.37, Infinity, -Infinity, NaN, 0]) {
      const xs = points(samples(-100, 100, 20000), samples(1e-30, 1e30, 10000, true), SPECIAL);
      const k = kernelOf('pow', xs.length);
      // the exponent from an array, so that it is no constant
      const nodes: Node[] = [k.nodes[0]!, { op: 'load', dtype: 'f32', access: { arg: 'e', strides: [S(0)], offset: S(0) } }, { op: 'pow', dtype: 'f32', args: [0, 1] }];
      const kp: Kernel = { ...k, nodes, stores: [{ node: 2, access: k.stores[0]!.access }] };
      const arrays = (n: string) => (n === 'e' ? { dtype: 'f32' as const, numel: S(1) } : arraysOf(xs.length)(n));
      const d = decompose(kp, SIMD);
      expect(verifyKernel(d, arrays)).toEqual([]);
      const out = new Float64Array(xs.length);
      evalKernel(d, (n) => (n === 'x' ? xs : n === 'e' ? Float64Array.of(y) : out), {}, { f32: true });
      const wrong: string[] = [];
      xs.forEach((x, i) => {
        const r = Math.pow(x, Math.fround(y));
        if (Object.is(x, -0)) return; // documented: a −0 base counts as +0
        const special = !Number.isFinite(Math.fround(r)) || Math.fround(r) === 0;
        if (special ? !Object.is(out[i], Math.fround(r)) : Math.abs(out[i]! - r) / ulp(r) > 2 + 2 * Math.abs(y)) wrong.push(`pow(${x}, ${y}) = ${out[i]}, not ${r}`);
      });
      expect(wrong.slice(0, 5)).toEqual([]);
    }
  });
});

describe('sin and cos near their zeros', () => {
  it('are within 1.5 ulps at the f32 nearest each multiple of π (sin) and of π/2 off them (cos) up to 1e5', () => {
    for (const [op, ref, off] of [['sin', Math.sin, 0], ['cos', Math.cos, 0.5]] as const) {
      const xs = Float64Array.from({ length: 31830 }, (_v, k) => Math.fround((k + 1 + off - (k === 31829 && off ? 1 : 0)) * Math.PI));
      const { ulps, at } = maxUlp(op, xs, ref, SIMD);
      expect(ulps, `${op} at ${at}`).toBeLessThanOrEqual(1.5);
    }
  });
});

describe('sin and cos beyond 1e5 (Payne–Hanek)', () => {
  it('are within 2 ulps of Math.sin and Math.cos up to 3.4e38, and NaN at ±∞ and NaN', () => {
    const big = [1e5, 65536, 1e6, 1e7, 1e10, 1e20, 1e30, 3.4e38, 3.4028234663852886e38];
    const xs = points(big, big.map((x) => -x), [Infinity, -Infinity, NaN]);
    for (const [op, ref] of [['sin', Math.sin], ['cos', Math.cos]] as const) {
      const { out } = run(op, xs, SIMD);
      xs.forEach((x, i) => {
        if (!Number.isFinite(x)) return expect(out[i], `${op}(${x})`).toBeNaN();
        expect(Math.abs(out[i]! - ref(x)) / ulp(ref(x)), `${op}(${x}) = ${out[i]}, not ${ref(x)}`).toBeLessThanOrEqual(2);
      });
    }
  });

  it('are within 1 ulp at the f32 closest to a multiple of π/2 at every exponent, 2/π\'s bits as Machin\'s formula gives them', () => {
    // 2/π·2^P from π = 16·atan(1/5) − 4·atan(1/239) in P-bit fixed point
    const P = 480n;
    const ONE = 1n << P;
    const atanInv = (n: bigint) => {
      let [s, t, k, sign] = [0n, ONE / n, 1n, 1n];
      for (; t; t /= n * n, k += 2n, sign = -sign) s += (sign * t) / k;
      return s;
    };
    const twoOverPi = (2n * ONE * ONE) / (16n * atanInv(5n) - 4n * atanInv(239n));
    expect(twoOverPi.toString(16).slice(0, 64)).toBe(TWO_OVER_PI_HEX);
    // x = M·2^(e−23), M in [2²³, 2²⁴): the M with M·α nearest an integer, α = 2^(e−23)·2/π mod 1,
    // are among multiples of α's continued fraction's (semi)convergent denominators
    const xs: number[] = [];
    for (let e = 16; e <= 127; e++) {
      const a = (e >= 23 ? twoOverPi << BigInt(e - 23) : twoOverPi >> BigInt(23 - e)) & (ONE - 1n);
      const dens: bigint[] = [];
      let [num, den, q0, q1] = [a, ONE, 0n, 1n];
      while (num !== 0n && q1 < 1n << 24n) {
        const t = den / num;
        [num, den] = [den - t * num, num];
        for (let s = 1n; s <= t && q0 + s * q1 < 1n << 24n; s++) dens.push(q0 + s * q1);
        [q0, q1] = [q1, q0 + t * q1];
      }
      const ms = dens.flatMap((q) => [1n, 2n, 3n].map((c) => ((1n << 23n) / q + c) * q)).filter((m) => m < 1n << 24n);
      const dist = (m: bigint) => {
        const v = (m * a) & (ONE - 1n);
        return v > ONE / 2n ? ONE - v : v;
      };
      ms.sort((u, v) => (dist(u) < dist(v) ? -1 : 1));
      for (const m of ms.slice(0, 2)) xs.push(Number(m) * 2 ** (e - 23), -Number(m) * 2 ** (e - 23));
    }
    // the closest is within 2⁻²⁸ of a multiple of π/2 (so sin is about 3e-9 there)
    expect(Math.min(...xs.map((x) => Math.abs(Math.sin(x))))).toBeLessThan(4e-9);
    for (const [op, ref] of [['sin', Math.sin], ['cos', Math.cos]] as const) {
      const { ulps, at } = maxUlp(op, Float64Array.from(xs), ref, SIMD);
      expect(ulps, `${op} at ${at}`).toBeLessThanOrEqual(1);
    }
  });
});

describe('decompose', () => {
  it('leaves a kernel of native primitives as it is (the same object)', () => {
    const k = kernelOf('exp', 4);
    expect(decompose(k, capabilities('flat TypeScript', ALL_ALU))).toBe(k);
    expect(decompose(k, TS_CAPABILITIES)).toBe(k);
  });

  it('computes tanh with one select, one power of two and no float→int conversion (issue #30: the GELU forward)', () => {
    const d = decompose(kernelOf('tanh', 4), SIMD);
    const count = (op: string) => d.nodes.filter((n) => n.op === op).length;
    // the |x| < 0.55 select only: no clamp or ±∞/0 selects of a general exp, no rounding select
    expect([count('where'), count('frombits'), count('toint'), count('div')]).toEqual([1, 2, 0, 1]);
    // instructions (bits and frombits reinterpret: none): 41, it was 46 (its exp rounding n to nearest, ln2 in two parts, a sixth
    // coefficient below 0.625), 62 before that (47 before twoTo added 127 with its 1.5·2²³)
    expect(d.nodes.filter((n) => !['const', 'load', 'bits', 'frombits'].includes(n.op)).length).toBeLessThanOrEqual(41);
    // saturates to ±1 (tanh rounds to 1 in f32 from 9.02), ±0 and NaN kept
    const { out } = run('tanh', Float64Array.of(9.5, -9.5, 20, 1e30, -Infinity, 0, -0, NaN), SIMD);
    expect(Array.from(out)).toEqual([1, -1, 1, 1, -1, 0, -0, NaN]);
  });

  it('computes exp with one select (below −104: 0), no ±∞ select (the product overflows) and no float→int conversion (the softmax kernels\' exp)', () => {
    const d = decompose(kernelOf('exp', 4), SIMD);
    const count = (op: string) => d.nodes.filter((n) => n.op === op).length;
    // one comparison, x < −104, for two selects: x → 0 before the polynomial (no underflowing product), the result → 0
    expect([count('lt'), count('where'), count('frombits'), count('toint')]).toEqual([1, 2, 2, 0]);
    // instructions (bits and frombits reinterpret: none): 32, it was 36
    expect(d.nodes.filter((n) => !['const', 'load', 'bits', 'frombits'].includes(n.op)).length).toBeLessThanOrEqual(32);
  });

  it('names the primitive and the target it cannot compute in a CompileError', () => {
    const noBits = capabilities('scalar', ALL_ALU.filter((o) => !['exp', 'bits', 'frombits'].includes(o)));
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(CompileError);
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(err(() => decompose(kernelOf('exp', 4), noBits))).toBe('the scalar target cannot compute exp: its decomposition needs bits, which the scalar target lacks and cannot decompose');
    expect(err(() => decompose(kernelOf('exp', 4), capabilities('the wasm SIMD target', noBits.native)))).toBe('the wasm SIMD target cannot compute exp: its decomposition needs bits, which the wasm SIMD target lacks and cannot decompose');
    const noToint = capabilities('bare', ALL_ALU.filter((o) => o !== 'toint'));
    const k = kernelOf('floor', 4);
    const kt: Kernel = { ...k, nodes: [k.nodes[0]!, { op: 'toint', dtype: 'i32', args: [0] }, { op: 'cast', dtype: 'f32', args: [1] }], stores: [{ node: 2, access: k.stores[0]!.access }] };
    expect(err(() => decompose(kt, noToint))).toBe('the bare target cannot compute toint: it has no toint primitive and no decomposition of toint into the primitives it has');
  });

  it('rewrites a routine\'s epilogue and every launch of a host program, a shared launch once', () => {
    const k = kernelOf('erf', 4);
    const r: Launch = { kind: 'routine', name: 'r', op: 'matmul', attrs: {} as never, inputs: [], output: { arg: 'y', shape: [4], strides: [S(1)], offset: S(0) }, dtype: 'f32', epilogue: k, notes: [] };
    const p: HostProgram = { name: 'p', buffers: [], arrays: [], entries: [{ name: 'forward', steps: [{ kind: 'launch', launch: k }, { kind: 'launch', launch: r }] }, { name: 'valueAndGrad', steps: [{ kind: 'launch', launch: k }] }] };
    const d = decomposeProgram(p, SIMD);
    const launches = (i: number) => d.entries[i]!.steps.flatMap((st) => (st.kind === 'launch' ? [st.launch] : []));
    const [l0, l1] = launches(0);
    expect(launches(1)[0]).toBe(l0);
    expect(l0).toEqual(decompose(k, SIMD));
    expect(l1!.kind === 'routine' && l1!.epilogue).toEqual(decompose(k, SIMD));
    expect(decomposeProgram(p, TS_CAPABILITIES)).not.toBe(p); // erf is no JavaScript function
    expect(decomposeProgram(p, capabilities('all', ALL_ALU))).toBe(p);
  });

  it('keeps the stores on the nodes that compute them, through a reduction\'s epilogue', () => {
    // y = erf(sum(x)) over 8 elements: the decomposition is the epilogue
    const nodes: Node[] = [
      { op: 'load', dtype: 'f32', access: { arg: 'x', strides: [S(1)], offset: S(0) } },
      { op: 'reduce', dtype: 'f32', red: 'sum', acc: 'f64', args: [0] },
      { op: 'erf', dtype: 'f32', args: [1] },
    ];
    const k: Kernel = { kind: 'kernel', name: 'k', domain: [8], axes: [0], nodes, stores: [{ node: 2, access: { arg: 'y', strides: [S(0)], offset: S(0) } }], notes: [] };
    const arrays = (n: string) => (n === 'x' ? { dtype: 'f32' as const, numel: S(8) } : n === 'y' ? { dtype: 'f32' as const, numel: S(1) } : undefined);
    const d = decompose(k, SIMD);
    expect(verifyKernel(d, arrays)).toEqual([]);
    const x = Float64Array.from({ length: 8 }, (_v, i) => 0.1 * i - 0.3);
    const y = new Float64Array(1);
    evalKernel(d, (n) => (n === 'x' ? x : y), {}, { f32: true });
    expect(Math.abs(y[0]! - erf(x.reduce((a, b) => a + b))) / ulp(y[0]!)).toBeLessThanOrEqual(2);
  });
});

describe("the flat module's renderer", () => {
  it('renders erf through its decomposition, and the new primitives JavaScript has natively', () => {
    for (const op of ['erf', 'sin', 'cos', 'log1p', 'expm1', 'floor'] as const) {
      const xs = points(samples(-6, 6, 2001), [0, -0, Infinity, -Infinity, NaN]);
      const k = kernelOf(op, xs.length);
      const lines = renderKernel(k, { arr: (n) => n, nodes: new Map(), views: new Map() }, () => '_acc');
      const code = lines.join('\n');
      expect(code).not.toMatch(/\berf\b/);
      if (op !== 'erf') expect(code).toContain(`Math.${op}(`);
      const y = new Float32Array(xs.length);
      new Function('x', 'y', code)(Float32Array.from(xs), y);
      const ref = op === 'erf' ? erf : Math[op];
      xs.forEach((x, i) => {
        const r = Math.fround(ref(x));
        if (!Number.isFinite(r) || r === 0) return expect(Object.is(y[i], r), `${op}(${x}) = ${y[i]}`).toBe(true);
        expect(Math.abs(y[i]! - ref(x)) / ulp(r), `${op}(${x})`).toBeLessThanOrEqual(2);
      });
    }
  });
});

describe('constant powers', () => {
  it('are expanded by the decomposition on every target, also one with a native pow; other exponents keep the native pow', () => {
    const WITH_POW = capabilities('with pow', ALL_ALU);
    for (const c of [0, 1, 2, 3, -1, -2, 0.5, -0.5, 1.5, -2.5, 64]) {
      const d = decompose(kernelOf('pow', 8, c), WITH_POW);
      expect(d.nodes.some((n) => n.op === 'pow'), `pow(x, ${c})`).toBe(false);
    }
    for (const c of [0.3, 65, -1.25]) expect(decompose(kernelOf('pow', 8, c), WITH_POW).nodes.some((n) => n.op === 'pow'), `pow(x, ${c})`).toBe(true);
  });

  it("render in the flat module with Math.pow's values at ±0, ±∞, NaN and negative bases", () => {
    const xs = points(samples(-5, 5, 401), [0, -0, Infinity, -Infinity, NaN, -1, 1]);
    for (const c of [0, 1, 2, 3, -1, -2, -3, 0.5, -0.5, 1.5, -1.5, 0.3]) {
      const code = renderKernel(kernelOf('pow', xs.length, c), { arr: (n) => n, nodes: new Map(), views: new Map() }, () => '_acc').join('\n');
      if (c !== 0.3) expect(code, `pow(x, ${c})`).not.toContain('**');
      const y = new Float64Array(xs.length);
      new Function('x', 'y', code)(Float64Array.from(xs), y);
      xs.forEach((x, i) => {
        const r = Math.pow(x, c);
        if (!Number.isFinite(r) || r === 0) return expect(Object.is(y[i], r), `pow(${x}, ${c}) = ${y[i]}`).toBe(true);
        expect(Math.abs(y[i]! - r) / Math.abs(r), `pow(${x}, ${c})`).toBeLessThanOrEqual(4e-16);
      });
    }
  });
});

describe('the new ALU primitives', () => {
  it('print, parse back and verify', () => {
    const text = [
      'kernel k [4]',
      '  %0: f32 = load x[d0]',
      '  %1: f32 = sin %0',
      '  %2: f32 = cos %1',
      '  %3: f32 = erf %2',
      '  %4: f32 = log1p %3',
      '  %5: f32 = expm1 %4',
      '  %6: f32 = floor %5',
      '  %7: i32 = toint %6',
      '  %8: i32 = bits %6',
      '  %9: i32 = const 23',
      '  %10: i32 = shl %7, %9',
      '  %11: i32 = shr %8, %9',
      '  %12: i32 = and %10, %11',
      '  %13: i32 = or %12, %7',
      '  %14: f32 = frombits %13',
      '  %15: bool = lt %6, %14',
      '  %16: bool = eq %7, %8',
      '  %17: bool = and %15, %16',
      '  %18: bool = or %17, %15',
      '  %19: f32 = where %18, %14, %0',
      '  store y[d0] = %19  # where(or(and(x, y), z), ...)',
      'end',
    ].join('\n');
    const k = parseLaunch(text) as Kernel;
    const printed = printLaunch(k);
    expect(printLaunch(parseLaunch(printed))).toBe(printed);
    expect(verifyKernel(k, arraysOf(4))).toEqual([]);
  });

  it('a rare where (where.rare) prints, parses back and verifies; only a where can be rare; sin and cos decompose through three of them', () => {
    const text = ['kernel k [4]', '  %0: f32 = load x[d0]', '  %1: f32 = const 65536', '  %2: bool = le %1, %0', '  %3: f32 = mul %0, %0', '  %4: f32 = where.rare %2, %3, %0', '  store y[d0] = %4  # where.rare(65536 <= x, x * x, x)', 'end', ''].join('\n');
    const k = parseLaunch(text) as Kernel;
    expect(k.nodes[4]).toEqual({ op: 'where', dtype: 'f32', args: [2, 3, 0], rare: true });
    expect(printLaunch(k)).toBe(text);
    expect(verifyKernel(k, arraysOf(4))).toEqual([]);
    const bad = { ...k, nodes: k.nodes.map((n, i) => (i === 3 ? { ...n, rare: true } : n)) } as Kernel;
    expect(verifyKernel(bad, arraysOf(4))).toEqual(['k: %3: only a where can be rare (rare: true), got mul with rare: true']);
    // the evaluator computes it as a plain where
    const y = new Float64Array(4);
    evalKernel(k, (name) => (name === 'x' ? Float64Array.of(2, 65536, -1e6, 1e6) : y), {});
    expect([...y]).toEqual([2, 65536 * 65536, -1e6, 1e12]);
    for (const op of ['sin', 'cos'] as const) {
      const d = decompose(kernelOf(op, 4), SIMD);
      expect(d.nodes.filter((n) => n.op === 'where' && n.rare).length, op).toBe(3);
      // the store's formula names the shared subexpressions (written out it would be exponential)
      const text = printLaunch(d);
      expect(text.split('\n').filter((l) => / = where\.rare %\d+, %\d+, %\d+$/.test(l)).length, op).toBe(3);
      const store = text.split('\n').find((l) => l.startsWith('  store '))!;
      expect(store.length, op).toBeLessThan(2000);
      expect(store, op).toMatch(/# .*%\d+/);
      expect(printLaunch(parseLaunch(text))).toBe(text);
    }
  });

  it('are typed by the ALU table: the verifier names a wrong operand type', () => {
    const text = ['kernel k [4]', '  %0: f32 = load x[d0]', '  %1: i32 = shl %0, %0', '  %2: f32 = frombits %0', '  %3: i32 = toint %0', '  %4: f32 = bits %0', '  %5: f32 = cast %3', '  store y[d0] = %5', 'end'].join('\n');
    expect(verifyKernel(parseLaunch(text) as Kernel, arraysOf(4))).toEqual([
      'k: %1: shl needs two i32 operands, got f32, f32',
      'k: %2: frombits reinterprets i32 as f32, got f32',
      'k: %4 is typed f32 but bits gives i32',
    ]);
  });

  it('evaluate as wasm computes them: toint truncates and saturates, bits round-trips, i32 wraps', () => {
    const T = ALU.toint.eval;
    expect([T(2.7), T(-2.7), T(NaN), T(1e10), T(-1e10), T(-0.5)]).toEqual([2, -2, 0, 2147483647, -2147483648, 0]);
    expect(f32Bits(1)).toBe(0x3f800000);
    expect(f32Bits(-2)).toBe(-0x40000000);
    expect(f32FromBits(0x7f800000)).toBe(Infinity);
    expect(f32FromBits(f32Bits(0.1))).toBe(Math.fround(0.1));
    expect([ALU.shr.eval(-8, 1), ALU.shl.eval(1, 33), ALU.and.eval(6, 3), ALU.or.eval(6, 3)]).toEqual([-4, 2, 2, 7]);
    // i32 results wrap modulo 2³² in the evaluator; f32 results round in its f32 mode
    const nodes: Node[] = [
      { op: 'const', dtype: 'i32', value: 65537 },
      { op: 'const', dtype: 'i32', value: 65537 },
      { op: 'mul', dtype: 'i32', args: [0, 1] },
      { op: 'cast', dtype: 'f32', args: [2] },
      { op: 'const', dtype: 'f32', value: 1 },
      { op: 'const', dtype: 'f32', value: 2 ** -30 },
      { op: 'add', dtype: 'f32', args: [4, 5] },
      { op: 'add', dtype: 'f32', args: [3, 6] },
    ];
    const k: Kernel = { kind: 'kernel', name: 'k', domain: [1], axes: [], nodes, stores: [{ node: 7, access: { arg: 'y', strides: [S(1)], offset: S(0) } }], notes: [] };
    const y = new Float64Array(1);
    evalKernel(k, () => y, {});
    expect(y[0]).toBe(Math.imul(65537, 65537) + 1 + 2 ** -30);
    evalKernel(k, () => y, {}, { f32: true });
    expect(y[0]).toBe(Math.fround(Math.imul(65537, 65537) + 1));
  });
});

describe("the evaluator's f32 mode", () => {
  it('runs a host program in f32 arithmetic when asked (runEntry), float64 otherwise', () => {
    const nodes: Node[] = [
      { op: 'load', dtype: 'f32', access: { arg: 'x', strides: [S(1)], offset: S(0) } },
      { op: 'const', dtype: 'f32', value: 0.1 },
      { op: 'mul', dtype: 'f32', args: [0, 1] },
      { op: 'const', dtype: 'f32', value: 0.2 },
      { op: 'add', dtype: 'f32', args: [2, 3] },
    ];
    const k: Kernel = { kind: 'kernel', name: 'k', domain: [3], axes: [], nodes, stores: [{ node: 4, access: { arg: 'y', strides: [S(1)], offset: S(0) } }], notes: [] };
    const p: HostProgram = {
      name: 'p',
      buffers: [{ id: 0, dtype: 'f32', size: S(3) }],
      arrays: [
        { name: 'x', dtype: 'f32', numel: S(3), place: { kind: 'const', data: [1, 2, 3] } },
        { name: 'y', dtype: 'f32', numel: S(3), place: { kind: 'buffer', id: 0 } },
      ],
      entries: [{ name: 'forward', steps: [{ kind: 'launch', launch: k }, { kind: 'read', output: 'y', array: 'y' }] }],
    };
    const f = Math.fround;
    expect(Array.from(runEntry(p, p.entries[0]!, {}).y!)).toEqual([1, 2, 3].map((x) => x * 0.1 + 0.2));
    expect(Array.from(runEntry(p, p.entries[0]!, { f32: true }).y!)).toEqual([1, 2, 3].map((x) => f(f(x * f(0.1)) + f(0.2))));
    expect(f(f(2 * f(0.1)) + f(0.2))).not.toBe(2 * 0.1 + 0.2);
  });
});

describe('ir/special.ts erf', () => {
  it('matches known values to 1e-15, with erf(±0) = ±0, erf(±∞) = ±1', () => {
    const known: [number, number][] = [
      [0.1, 0.1124629160182848922],
      [0.5, 0.5204998778130465377],
      [1, 0.8427007929497148693],
      [2, 0.9953222650189527342],
      [1.5, 0.966105146475310713936],
      [3, 0.9999779095030014146],
      [4, 0.999999984582742099719981],
      [5, 1 - 1.5374597944280348e-12],
      [1e-5, 1.1283791670578999e-5],
    ];
    for (const [x, v] of known) {
      expect(Math.abs(erf(x) - v) / v, `erf(${x})`).toBeLessThan(1e-15);
      expect(erf(-x)).toBe(-erf(x));
    }
    expect([erf(0), erf(-0), erf(Infinity), erf(-Infinity), erf(NaN), erf(7)]).toEqual([0, -0, 1, -1, NaN, 1]);
    // the series (below 2.5) and the continued fraction (above) meet
    expect(Math.abs(erf(2.4999999999999996) - erf(2.5))).toBeLessThan(1e-15);
  });
});
