// The index kernels' encoding helpers (run-time sizes and addresses as `I32`, the opcodes the
// encoder has no name for, ranges of rows) and the kernels over lines along an axis: argmax and
// argmin, cumsum (codegen/wasm/index-kernels.ts has the dispatch, the row kernels, xent,
// argmax_mask and max_pool_pick; codegen/wasm/softmax.ts and softmax-columns.ts the softmaxes). A line's count, length and the elements between
// two of its elements may each be a number or a run-time value (the symbolic module,
// codegen/wasm/symbolic-forms.ts); the four-lanes form needs the numbers, the four-columns form
// takes a run-time inner size too (whether four lines are four columns is checked line by line).

import { Body, uleb } from './encode.js';
import type { Local } from './encode.js';
import type { Split } from './threads.js';

/** A routine's kernel: its body (a function of a range of rows where it splits), and what it computes. */
export interface IndexKernel {
  readonly body: Body;
  readonly split?: Split;
  readonly what: string;
}

export const numel = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

/**
 * A row count or an address: a number, or (the symbolic module: codegen/wasm/symbolic-forms.ts)
 * code that pushes its run-time value; every kernel here but the static dispatch's
 * (indexKernel) takes these for its row or line count and addresses.
 */
export type I32 = number | { readonly push: (f: Body) => void; readonly text: string };
export const push = (f: Body, v: I32): Body => (typeof v === 'number' ? f.i32(v) : (v.push(f), f));
export const text = (v: I32): string => (typeof v === 'number' ? String(v) : v.text);
/** The i32 b − a (two addresses: a constant where both are). */
export const minus = (f: Body, b: I32, a: I32): Body => (typeof a === 'number' && typeof b === 'number' ? f.i32(b - a) : push(push(f, b), a).i32Sub());


// ---------------------------------------------------------------------------------------------
// Instructions the encoder has no name for (opcodes of the core specification)

const I32_LOAD = 0x28;
const I32_STORE = 0x36;
export const op = {
  i32Load: (f: Body, off = 0) => f.raw(I32_LOAD, 0x02, ...uleb(off)),
  i32Store: (f: Body, off = 0) => f.raw(I32_STORE, 0x02, ...uleb(off)),
  i32GeU: (f: Body) => f.raw(0x4f),
  i32LtU: (f: Body) => f.raw(0x49),
  i32Or: (f: Body) => f.raw(0x72),
  i32RemU: (f: Body) => f.raw(0x70),
  i32Shl: (f: Body) => f.raw(0x74),
  i32ShrU: (f: Body) => f.raw(0x76),
  i32And: (f: Body) => f.raw(0x71),
  f32Sub: (f: Body) => f.raw(0x93),
  f32Ne: (f: Body) => f.raw(0x5c),
  f32Lt: (f: Body) => f.raw(0x5d),
  f64Const: (f: Body, x: number) => {
    const b = new Uint8Array(new Float64Array([x]).buffer);
    return f.raw(0x44, ...b);
  },
  f64Sub: (f: Body) => f.raw(0xa1),
  f64Mul: (f: Body) => f.raw(0xa2),
  f64Div: (f: Body) => f.raw(0xa3),
  f64PromoteF32: (f: Body) => f.raw(0xbb),
  i32ReinterpretF32: (f: Body) => f.raw(0xbc),
  f32ReinterpretI32: (f: Body) => f.raw(0xbe),
  /** if (the i32 on the stack) then … else …, each leaving an f32 with `result` */
  ifElse: (f: Body, then: () => void, otherwise: () => void, result?: 'f32') => {
    f.raw(0x04, result ? 0x7d : 0x40);
    then();
    f.raw(0x05);
    otherwise();
    f.raw(0x0b);
  },
};

/** The range of rows a body computes: its two arguments where it splits, else [0, extent). */
export function rangeOf(f: Body, extent: I32): [Local, Local] {
  if (f.params === 2) return [f.param(0), f.param(1)];
  const [lo, hi] = [f.local('i32'), f.local('i32')];
  f.assign(lo, 0);
  push(f, extent).set(hi);
  return [lo, hi];
}

/** for (i = lo; i < hi; i++) body() */
export function forRange(f: Body, i: Local, lo: Local, hi: Local, body: () => void): void {
  f.get(lo).set(i);
  f.loopUntil(
    () => f.get(i).get(hi).i32GeS(),
    () => {
      body();
      f.bump(i, 1);
    },
  );
}

/**
 * `count` floats from `src` to `dst` (byte addresses in locals, both advanced past them): four at a
 * time, then one by one; `add`: added into dst; no src: NaN (zeros with `add`).
 */
export function copyFloats(f: Body, count: number, src: Local | undefined, dst: Local, k: Local, combine?: 'add'): void {
  const vecs = Math.floor(count / 4);
  if (vecs > 0)
    f.repeat(k, vecs, () => {
      f.get(dst);
      if (src === undefined) f.f32x4Const(combine ? 0 : NaN);
      else if (combine) f.get(dst).v128Load(0).get(src).v128Load(0).f32x4('add');
      else f.get(src).v128Load(0);
      f.v128Store(0);
      if (src) f.bump(src, 16);
      f.bump(dst, 16);
    });
  for (let l = 0; l < count % 4; l++) {
    f.get(dst);
    if (src === undefined) f.f32Const(combine ? 0 : NaN);
    else if (combine) f.get(dst).f32Load(4 * l).get(src).f32Load(4 * l).f32Add();
    else f.get(src).f32Load(4 * l);
    f.f32Store(4 * l);
  }
  if (src) f.bump(src, 4 * (count % 4));
  f.bump(dst, 4 * (count % 4));
}

/** kz floats (a run-time count in the local) from the byte address in z made 0: four at a time while four are left, then one by one. */
export function zeroFloats(f: Body, z: Local, kz: Local): void {
  f.loopUntil(
    () => f.get(kz).i32(4).i32LtS(),
    () => void f.get(z).f32x4Const(0).v128Store(0).bump(z, 16).bump(kz, -4),
  );
  f.loopUntil(
    () => f.get(kz).i32Eqz(),
    () => void f.get(z).f32Const(0).f32Store(0).bump(z, 4).bump(kz, -1),
  );
}

/** A split by rows where there is more than one. */
export const rows = (extent: I32, work: number): Split | undefined => (typeof extent === 'number' && extent > 1 ? { extent, align: 1, work } : undefined);

// ---------------------------------------------------------------------------------------------
// Lines along an axis

/**
 * The lines of a shape along an axis: how many (outer·inner: a run-time value in the symbolic
 * module, where the axes before the axis have symbolic sizes), their length, and inner, the
 * elements between two of a line's (numbers).
 */
export interface Lines {
  readonly lines: I32;
  readonly len: I32;
  readonly inner: I32;
}

/** a·k (a number where a is one). */
export const times = (a: I32, k: number): I32 => (typeof a === 'number' ? a * k : k === 1 ? a : { push: (f) => void push(f, a).i32(k).i32Mul(), text: `${k}·${a.text}` });
/** a·b (a number where both are). */
export const product = (a: I32, b: I32): I32 =>
  typeof a === 'number' && typeof b === 'number' ? a * b : typeof b === 'number' ? times(a, b) : typeof a === 'number' ? times(b, a) : { push: (f) => void push(push(f, a), b).i32Mul(), text: `${a.text}·${b.text}` };
/** a − 1. */
const less1 = (a: I32): I32 => (typeof a === 'number' ? a - 1 : { push: (f) => void push(f, a).i32(1).i32Sub(), text: `${a.text} − 1` });
/** local += d (−= with `sign` −1). */
export function bumpBy(f: Body, l: Local, d: I32, sign: 1 | -1 = 1): Body {
  if (typeof d === 'number') return f.bump(l, sign * d);
  push(f.get(l), d);
  return (sign > 0 ? f.i32Add() : f.i32Sub()).set(l);
}
/** body() `count` times (a run-time count may be 0); the counter counts down. */
export function repeatN(f: Body, j: Local, count: I32, body: () => void): void {
  if (typeof count === 'number') return void (count > 0 && f.repeat(j, count, body));
  push(f, count).set(j);
  f.loopUntil(
    () => f.get(j).i32Eqz(),
    () => {
      body();
      f.bump(j, -1);
    },
  );
}
/** b − a (a number where both are). */
const minusOf = (b: I32, a: I32): I32 => (typeof a === 'number' && typeof b === 'number' ? b - a : { push: (f) => void minus(f, b, a), text: `${text(b)} − ${text(a)}` });
/** A run-time value computed once into a local at the function's start (a number stays one). */
export function hoisted(f: Body, v: I32): I32 {
  if (typeof v === 'number') return v;
  const l = f.local('i32');
  push(f, v).set(l);
  return { push: (g) => void g.get(l), text: v.text };
}
/** An inner size the four-columns form takes: a number of at least 4, or a run-time value (checked line by line). */
const wide = (v: I32): boolean => typeof v !== 'number' || v >= 4;

/** The lines of a shape along an axis. */
export function around(shape: readonly number[], axis: number): Lines {
  const inner = numel(shape.slice(axis + 1));
  return { lines: numel(shape.slice(0, axis)) * inner, len: shape[axis]!, inner };
}

/** work·lines, where the number of lines is known (a split's work). */
export const work = (n: I32, w: I32): number => (typeof n === 'number' && typeof w === 'number' ? n * w : 0);

/**
 * For each line l in the range: base = the byte address of its first element in the array at
 * `at` ((l / inner)·len·inner + l % inner floats in), then body(l, base); elements are 4·inner
 * bytes apart.
 */
export function eachLine(f: Body, { lines, len, inner }: Lines, at: I32, body: (l: Local, base: Local) => void): void {
  const [lo, hi] = rangeOf(f, lines);
  const [l, base] = [f.local('i32'), f.local('i32')];
  forRange(f, l, lo, hi, () => {
    if (inner === 1) push(f.get(l), times(len, 4)).i32Mul();
    else {
      push(push(f.get(l), inner).i32DivU(), times(product(len, inner), 4)).i32Mul();
      push(f.get(l), inner);
      op.i32RemU(f);
      f.i32(4).i32Mul().i32Add();
    }
    push(f, at).i32Add().set(base);
    body(l, base);
  });
}

/**
 * For each line in the range as eachLine, but four adjacent lines at once (`four`, from the first
 * one's l and base) where the range holds them and they are four columns of one row (inner ≥ 4, or
 * a run-time inner): their elements are then one v128 apart from the next's.
 */
export function eachLineBy4(f: Body, x: Lines, at: I32, one: (l: Local, base: Local) => void, four: (l: Local, base: Local) => void): void {
  const { len } = x;
  if (!wide(x.inner)) return eachLine(f, x, at, one);
  const inner = hoisted(f, x.inner);
  const [lo, hi] = rangeOf(f, x.lines);
  const [l, base, col] = [f.local('i32'), f.local('i32'), f.local('i32')];
  f.get(lo).set(l);
  f.loopUntil(
    () => f.get(l).get(hi).i32GeS(),
    () => {
      push(f.get(l), inner);
      op.i32RemU(f);
      f.set(col);
      push(push(f.get(l), inner).i32DivU(), times(product(len, inner), 4)).i32Mul().get(col).i32(4).i32Mul().i32Add();
      push(f, at).i32Add().set(base);
      // one line where l + 4 > hi or col + 4 > inner, else four
      push(f.get(l).i32(4).i32Add().get(hi).i32GtS().get(col).i32(4).i32Add(), inner).i32GtS();
      op.i32Or(f);
      op.ifElse(
        f,
        () => {
          one(l, base);
          f.bump(l, 1);
        },
        () => {
          four(l, base);
          f.bump(l, 4);
        },
      );
    },
  );
}

export const SIMD_OP = { f32x4Ne: 0x42, i32x4ExtractLane: 0x1b, f32x4ReplaceLane: 0x20 } as const;

/**
 * mask = (v better than best, or v NaN where a NaN wins) and best not NaN, lane by lane, of the
 * v128 locals: the lanes where the scalar loop would take v (a NaN best is kept: the first NaN
 * ends a line).
 */
function betterMask(f: Body, which: 'argmax' | 'argmin', v: Local, best: Local, nanWins: boolean): void {
  f.get(v).get(best).f32x4(which === 'argmax' ? 'gt' : 'lt');
  if (!nanWins) return;
  f.get(v).get(v).simd(SIMD_OP.f32x4Ne);
  f.v128Or();
  f.get(best).get(best).f32x4('eq');
  f.v128And();
}

/**
 * The index of the first maximum (minimum) of each line; a NaN wins and ends the line. Lines of
 * the last axis of 8 or more: four lanes of (best, index) over the elements 4t + k, the lanes
 * combined (a NaN lane wins over a number; between two NaNs or two equal values the lower index),
 * then the rest one by one; lines four columns apart (inner ≥ 4): four lines at once.
 * With `mask` (argmax_mask over lines, codegen/wasm/index-kernels.ts's maskLines): each line's
 * elements 0, and 1 at its first maximum as argmaxMask's `if (v > best)` from the first element (a
 * NaN first element keeps it; a later NaN is skipped: in the lanes a NaN first vector's lane is
 * −∞, and the first element is taken at the end where it is NaN); split by whole planes (inner
 * lines), each thread zeroing its planes.
 */
export function argBest(which: 'argmax' | 'argmin', x: Lines, xAt: I32, yAt: I32, mask = false): IndexKernel {
  const { lines, len, inner } = x;
  const split = !mask ? rows(lines, work(lines, len)) : typeof lines === 'number' && typeof inner === 'number' && lines > inner ? { extent: lines, align: inner, work: work(lines, len) } : undefined;
  const f = new Body(split ? 2 : 0);
  const [best, v] = [f.local('f32'), f.local('f32')];
  const [j, p, idx, i] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
  const [vb, vv, vi, vj, vm] = [f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128')];
  const [n, step] = [hoisted(f, len), hoisted(f, times(inner, 4))];
  const better = () => {
    if (which === 'argmax') f.f32Gt();
    else op.f32Lt(f);
  };
  /** v into best, idx where the mask's lanes hold (vj: the lanes' indices). */
  const take = () => {
    betterMask(f, which, vv, vb, !mask);
    f.set(vm);
    f.get(vv).get(vb).get(vm).v128Bitselect().set(vb);
    f.get(vj).get(vi).get(vm).v128Bitselect().set(vi);
  };
  /** From element j at p on, one by one, until the line's end or a NaN best. */
  const scalarRest = () =>
    f.loopUntil(
      () => {
        // j ≥ len, or the best is NaN (where a NaN is skipped, none is greater than a NaN first element: to the end)
        push(f.get(j), n).i32GeS();
        if (mask) return;
        f.get(best).get(best);
        op.f32Ne(f);
        op.i32Or(f);
      },
      () => {
        f.get(p).f32Load(0).set(v);
        f.when(
          () => {
            if (!mask) op.f32Ne(f.get(v).get(v));
            f.get(v).get(best);
            better();
            if (!mask) op.i32Or(f);
          },
          () => f.get(v).set(best).get(j).set(idx),
        );
        bumpBy(f.bump(j, 1), p, step);
      },
    );
  /** (v, i) into (best, idx): where best is NaN, a NaN v of a lower index; else a NaN v, a better v, or an equal v of a lower index. */
  const combine = () =>
    f.when(
      () => {
        if (mask) {
          // (no NaN in the lanes) a greater v, or an equal v of a lower index
          op.i32Or(op.i32And(f.get(v).get(best).f32Gt().get(v).get(best).raw(0x5b).get(i).get(idx).i32LtS()));
          return;
        }
        f.get(v).get(v);
        op.f32Ne(f);
        f.get(i).get(idx).i32LtS();
        op.i32And(f);
        f.get(v).get(v);
        op.f32Ne(f);
        f.get(v).get(best);
        better();
        op.i32Or(f);
        f.get(v).get(best).raw(0x5b); // f32.eq
        f.get(i).get(idx).i32LtS();
        op.i32And(f);
        op.i32Or(f);
        f.get(best).get(best);
        op.f32Ne(f);
        f.select();
      },
      () => f.get(v).set(best).get(i).set(idx),
    );
  const vecs = inner === 1 && typeof len === 'number' && len >= 8 ? Math.floor(len / 4) : 0;
  const one = (l: Local, base: Local) => {
    if (vecs) {
      f.get(base).v128Load(0).set(vb);
      // (a NaN first vector's lane as −∞ where a NaN is skipped)
      if (mask) f.get(vb).f32x4Const(-Infinity).get(vb).get(vb).f32x4('eq').v128Bitselect().set(vb);
      f.i32x4Lanes([0, 1, 2, 3]).tee(vj).set(vi);
      f.get(base).i32(16).i32Add().set(p);
      f.repeat(j, vecs - 1, () => {
        f.get(vj).i32x4Const(4).i32x4Add().set(vj);
        f.get(p).v128Load(0).set(vv);
        take();
        f.bump(p, 16);
      });
      f.get(vb).f32x4ExtractLane(0).set(best);
      f.get(vi).simd(SIMD_OP.i32x4ExtractLane).raw(0).set(idx);
      for (let k = 1; k < 4; k++) {
        f.get(vb).f32x4ExtractLane(k).set(v);
        f.get(vi).simd(SIMD_OP.i32x4ExtractLane).raw(k).set(i);
        combine();
      }
      f.assign(j, 4 * vecs);
    } else {
      f.get(base).f32Load(0).set(best);
      f.assign(idx, 0).assign(j, 1);
      push(f.get(base), step).i32Add().set(p);
    }
    scalarRest();
    if (!mask) {
      push(f.get(l).i32(4).i32Mul(), yAt).i32Add().get(idx);
      return void op.i32Store(f);
    }
    // a NaN first element: the first
    if (vecs) f.when(() => void op.f32Ne(f.get(base).f32Load(0).tee(v).get(v)), () => f.assign(idx, 0));
    push(f.get(idx), step).i32Mul().get(base).i32Add();
    minus(f, yAt, xAt).i32Add().f32Const(1).f32Store(0);
  };
  const four = (l: Local, base: Local) => {
    // lanes: four lines, the scalar loop's test lane by lane
    f.get(base).v128Load(0).set(vb);
    f.i32x4Const(0).tee(vi).set(vj);
    f.get(base).set(p);
    repeatN(f, j, less1(n), () => {
        bumpBy(f, p, step);
        f.get(vj).i32x4Const(1).i32x4Add().set(vj);
        f.get(p).v128Load(0).set(vv);
        take();
      });
    if (!mask) return void push(f.get(l).i32(4).i32Mul(), yAt).i32Add().get(vi).v128Store(0);
    for (let k = 0; k < 4; k++) {
      push(f.get(vi).simd(SIMD_OP.i32x4ExtractLane).raw(k), step).i32Mul().get(base).i32Add();
      minus(f, yAt, xAt).i32Add().f32Const(1).f32Store(4 * k);
    }
  };
  if (mask) {
    // zeros: floats [lo·len, hi·len) of y (whole planes), four at a time, then one by one
    const [lo, hi] = rangeOf(f, lines);
    const [z, kz] = [f.local('i32'), f.local('i32')];
    push(push(f.get(lo), times(len, 4)).i32Mul(), yAt).i32Add().set(z);
    push(f.get(hi).get(lo).i32Sub(), len).i32Mul().set(kz);
    zeroFloats(f, z, kz);
  }
  eachLineBy4(f, x, xAt, one, four);
  const how = vecs ? ', four lanes' : wide(inner) ? ', four columns at once' : '';
  if (mask) return { body: f, split, what: `argmax_mask of ${text(lines)} lines of ${text(len)}${inner !== 1 ? `, ${text(inner)} apart` : ''} (the first maximum${how})` };
  return { body: f, split, what: `${which} of ${text(lines)} lines of ${text(len)} (the first; a NaN wins${how})` };
}

/**
 * Running sums along each line in f64, from the end with `reverse`; lines four columns apart
 * (inner ≥ 4) four at once, in two f64x2 sums (the same sums).
 */
export function cumsum(x: Lines, reverse: boolean, xAt: I32, yAt: I32): IndexKernel {
  const { lines, len, inner } = x;
  const split = rows(lines, work(lines, len));
  const f = new Body(split ? 2 : 0);
  const s = f.local('f64');
  const [j, p] = [f.local('i32'), f.local('i32')];
  const [v, s0, s1] = [f.local('v128'), f.local('v128'), f.local('v128')];
  const step = hoisted(f, times(inner, 4));
  const dy = hoisted(f, minusOf(yAt, xAt));
  const start = (base: Local) => {
    f.get(base);
    if (reverse) push(f, times(product(inner, less1(len)), 4)).i32Add();
    f.set(p);
  };
  // rows (inner 1) of 8 or more: four elements loaded and stored at once, the sums one by one as the rest's
  const vecs = inner === 1 && typeof len === 'number' && len >= 8 ? Math.floor(len / 4) : 0;
  const one = (_l: Local, base: Local) => {
    op.f64Const(f, 0).set(s);
    start(base);
    if (vecs) {
      if (reverse) f.bump(p, -12);
      f.repeat(j, vecs, () => {
        push(f.get(p), dy).i32Add();
        f.get(p).v128Load(0).set(v);
        (reverse ? [3, 2, 1, 0] : [0, 1, 2, 3]).forEach((k, n) => {
          f.get(s).get(v).f32x4ExtractLane(k);
          op.f64PromoteF32(f);
          f.f64Add().tee(s).f32DemoteF64();
          if (n === 0) f.f32x4Splat();
          else f.simd(SIMD_OP.f32x4ReplaceLane).raw(k);
        });
        f.v128Store(0);
        f.bump(p, reverse ? -16 : 16);
      });
      if (reverse) f.bump(p, 12);
    }
    repeatN(f, j, vecs ? (len as number) % 4 : len, () => {
      f.get(s).get(p).f32Load(0);
      op.f64PromoteF32(f);
      f.f64Add().set(s);
      push(f.get(p), dy).i32Add().get(s).f32DemoteF64().f32Store(0);
      bumpBy(f, p, step, reverse ? -1 : 1);
    });
  };
  const four = (_l: Local, base: Local) => {
    f.f32x4Const(0).tee(s0).set(s1); // f64x2 zeros
    start(base);
    repeatN(f, j, len, () => {
      f.get(p).v128Load(0).set(v);
      f.get(s0).get(v).f64x2PromoteLowF32x4().f64x2Add().set(s0);
      f.get(s1).get(v).get(v).i32x4Shuffle([2, 3, 0, 1]).f64x2PromoteLowF32x4().f64x2Add().set(s1);
      push(f.get(p), dy).i32Add();
      f.get(s0).f32x4DemoteF64x2Zero().get(s1).f32x4DemoteF64x2Zero().i32x4Shuffle([0, 1, 4, 5]);
      f.v128Store(0);
      bumpBy(f, p, step, reverse ? -1 : 1);
    });
  };
  eachLineBy4(f, x, xAt, one, four);
  return { body: f, split, what: `cumsum of ${text(lines)} lines of ${text(len)}${reverse ? ', from the end' : ''} (in f64${wide(inner) ? ', four columns at once' : vecs ? ', four elements loaded at once' : ''})` };
}

/**
 * ln(s) of the f64 on the stack, s > 0 finite: s = m·2ᵉ with e from s's f32 exponent bits (m about
 * [1, 2)), ln m = 2·atanh(z), z = (m − 1)/(m + 1) ≤ 1/3, by its series to z²⁵ (error < 1e-13).
 */
export function f64Log(f: Body, t: { s: Local; z: Local; z2: Local; p: Local; e: Local }): void {
  f.set(t.s);
  // e = the f32 exponent of s; m = s / 2ᵉ, 2ᵉ built from its bits (exact)
  f.get(t.s).f32DemoteF64();
  op.i32ReinterpretF32(f);
  f.i32(23);
  op.i32ShrU(f);
  f.i32(255);
  op.i32And(f);
  f.set(t.e);
  f.get(t.s).get(t.e).i32(23);
  op.i32Shl(f);
  op.f32ReinterpretI32(f);
  op.f64PromoteF32(f);
  op.f64Div(f);
  f.set(t.s); // m
  f.get(t.s);
  op.f64Const(f, 1);
  op.f64Sub(f);
  f.get(t.s);
  op.f64Const(f, 1);
  f.f64Add();
  op.f64Div(f);
  f.tee(t.z).get(t.z);
  op.f64Mul(f);
  f.set(t.z2);
  const N = 12;
  op.f64Const(f, 1 / (2 * N + 1)).set(t.p);
  for (let k = N - 1; k >= 0; k--) {
    f.get(t.p).get(t.z2);
    op.f64Mul(f);
    op.f64Const(f, 1 / (2 * k + 1));
    f.f64Add().set(t.p);
  }
  // 2·z·p + (e − 127)·ln 2
  op.f64Const(f, 2);
  f.get(t.z);
  op.f64Mul(f);
  f.get(t.p);
  op.f64Mul(f);
  f.get(t.e).i32(127).i32Sub().raw(0xb7); // f64.convert_i32_s
  op.f64Const(f, Math.LN2);
  op.f64Mul(f);
  f.f64Add();
}
