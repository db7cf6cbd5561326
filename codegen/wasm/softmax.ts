// The WebAssembly SIMD kernel of softmax and log_softmax over the last axis of an [M,N] array
// (attention's rows, a classifier's probabilities, a loss's log-probabilities), of the static
// module and of the symbolic one, whose row count, row length and addresses may be run-time
// values. Per row: the maximum; exp(x − max) and its sum; then each element. Four columns at a
// time; in the last vector of a ragged row the lanes past N are masked (−∞ for the maximum, 0 for
// the sum) and the stores go lane by lane. exp is the steps' Cephes approximation.
// - softmax: exp(x − max) stored and summed in f32, in a row of more than SOFTMAX_BLOCK vectors
//   into f64 totals after every SOFTMAX_BLOCK vectors; then each element times 1 / Σ.
// - log_softmax: the sum in f64 in the order of the elements (the flat module's), two rows at a
//   time (their chains of dependent adds overlap), then y = x − (max + ln Σ) in f64, rounded once.
// A run-time row length takes the same steps in the same order as the static module's kernel of
// that length (the same bits). Along another axis (four adjacent lines in the lanes, a different
// access pattern): codegen/wasm/softmax-columns.ts.

import { Body } from './encode.js';
import type { Local } from './encode.js';
import { f32x4Exp } from './kernel-alu.js';
import type { I32, IndexKernel } from './index-lines.js';
import { bumpBy, f64Log, op, push, repeatN, rows, text, times, work } from './index-lines.js';
import { SOFTMAX_COST } from './threads.js';

/** M rows of N floats from x into out (byte addresses): numbers, or run-time values (the symbolic module's). */
export interface SoftmaxKernel {
  readonly M: I32;
  readonly N: I32;
  readonly x: I32;
  readonly out: I32;
  readonly log?: boolean;
}

/** The vectors of a row whose exponentials the sum adds in f32 before adding them into its f64 totals. */
export const SOFTMAX_BLOCK = 64;

/** A vector's lanes that are the row's: 4, the first few of the last vector, or a run-time count ('rt'). */
type Lanes = number | 'rt';

const SIMD = { i32x4LtS: 0x39, f64x2Splat: 0x14, f64x2Sub: 0xf1 } as const;

/**
 * Softmax (log-softmax) of M rows of N: with `threads` (the static module), split by rows over
 * threads, its body a function of a range of rows.
 */
export function softmaxRows(M: I32, N: I32, log: boolean, x: I32, out: I32, threads = false): IndexKernel {
  const split = threads ? rows(M, work(M, N) * SOFTMAX_COST) : undefined;
  const body = softmaxBody({ M, N, x, out, log }, { ranged: split !== undefined });
  return { body, split, what: `${log ? 'log_softmax' : 'softmax'} of ${text(M)} rows of ${text(N)}, four columns at a time` };
}

/** With `ranged` (all sizes numbers), a function of two arguments that computes the rows [start, end): threads' row blocks. */
export function softmaxBody(k: SoftmaxKernel, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  if (k.M === 0 || k.N === 0) return f;
  const t = rowTools(f, k, opts.ranged === true);
  if (k.log === true) logSoftmaxRows(t);
  else softmaxOfRows(t);
  return f;
}

type RowTools = ReturnType<typeof rowTools>;

/** The body's locals and the steps both forms are written with: passes over a row, masks, stores, the loop over rows, a row's maximum. */
function rowTools(f: Body, k: SoftmaxKernel, ranged: boolean) {
  const { M, N } = k;
  const log = k.log === true;
  const [rows, vecs, rowX, rowO, px, po] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
  const [max, sum, v] = [f.local('v128'), f.local('v128'), f.local('v128')];
  const tmp = Array.from({ length: 5 }, () => f.local('v128'));
  const row = rowShape(f, N, log);
  const { full, rest, blocked, blocks, tail, rowBytes } = row;

  /** The vector on the stack (kept in v) with its lanes from `lanes` on replaced by `fill`. */
  const masked = (lanes: Lanes, fill: number) => {
    if (lanes === 4) return;
    f.set(v).get(v).f32x4Const(fill);
    if (lanes === 'rt') f.get(row.mask!);
    else f.i32x4Lanes([0, 1, 2, 3].map((l) => (l < lanes ? -1 : 0)) as [number, number, number, number]);
    f.v128Bitselect();
  };
  /** Stores v at po: whole, or its first `lanes` lanes (a run-time count: 1 to 3). */
  const store = (lanes: Lanes) => {
    if (lanes === 4) f.get(po).get(v).v128Store(0);
    else if (lanes === 'rt') {
      f.get(po).get(v).v128Store32Lane(0, 0);
      for (const l of [1, 2]) f.when(() => push(f, rest).i32(l).i32GtS(), () => f.get(po).get(v).v128Store32Lane(4 * l, l));
    } else for (let l = 0; l < lanes; l++) f.get(po).get(v).v128Store32Lane(4 * l, l);
  };
  // a blocked row: the sum's vector added into two f64x2 totals after every SOFTMAX_BLOCK vectors
  const [lo, hi, nb] = blocked !== false ? [f.local('v128'), f.local('v128'), f.local('i32')] : [];
  const flush = () => {
    f.get(lo!).get(sum).f64x2PromoteLowF32x4().f64x2Add().set(lo!);
    f.get(hi!).get(sum).get(sum).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().set(hi!);
    f.f32x4Const(0).set(sum);
  };
  /** One pass over the row (the next one with `second`): body(lanes) with px and po at each vector; with `flushed`, the sum's blocks flushed. */
  const pass = (body: (lanes: Lanes) => void, flushed = false, second = false) => {
    f.get(rowX).set(px).get(rowO).set(po);
    if (second) bumpBy(bumpBy(f, px, rowBytes), po, rowBytes);
    const vectors = (count: I32) =>
      repeat(f, vecs, count, () => {
        body(4);
        f.bump(px, 16).bump(po, 16);
      });
    const byBlocks = flushed && blocked !== false;
    if (byBlocks) {
      f.f32x4Const(0).set(lo!).f32x4Const(0).set(hi!);
      repeat(f, nb!, blocks, () => {
        vectors(SOFTMAX_BLOCK);
        flush();
      });
      vectors(tail);
    } else vectors(full);
    if (typeof rest !== 'number') f.when(() => push(f, rest), () => body('rt'));
    else if (rest) body(rest);
    if (byBlocks) (blocked === true ? flush() : f.when(() => f.get(blocked as Local), flush));
  };
  /** The four lanes of a vector combined by op, splatted back to four lanes. */
  const across = (x: Local, op: 'f32Max' | 'f32Add') => {
    f.get(x).f32x4ExtractLane(0);
    for (let l = 1; l < 4; l++) f.get(x).f32x4ExtractLane(l)[op]();
    f.f32x4('splat');
  };

  /** body(pair) for each row, or with `pairs` for each two rows (pair true) and a last one (false). */
  const eachRow = (body: (pair: boolean) => void, pairs = false) => {
    const by = pairs ? 2 : 1;
    const each = (pair: boolean) => {
      body(pair);
      bumpBy(f, rowX, times(rowBytes, by));
      bumpBy(f, rowO, times(rowBytes, by));
    };
    if (!ranged) {
      push(f, k.x).set(rowX);
      push(f, k.out).set(rowO);
      // (a run-time number of rows counted down, none for 0)
      if (!pairs) return repeat(f, rows, M, () => each(false));
      if (typeof M === 'number') return void (repeat(f, rows, Math.floor(M / 2), () => each(true)), M % 2 && body(false));
      repeat(f, rows, { push: (g) => void push(g, M).i32(2).i32DivU(), text: 'pairs' }, () => each(true));
      return void f.when(() => void op.i32And(push(f, M).i32(1)), () => body(false));
    }
    if (typeof M !== 'number' || typeof N !== 'number' || typeof k.x !== 'number' || typeof k.out !== 'number') throw new Error('internal: a ranged softmax body with run-time sizes');
    const [start, end] = [f.param(0), f.param(1)];
    f.get(start).i32(4 * N).i32Mul().tee(rows).i32(k.x).i32Add().set(rowX);
    f.get(rows).i32(k.out).i32Add().set(rowO);
    f.get(start).set(rows); // the row index
    f.loopUntil(
      () => f.get(rows).i32(by - 1).i32Add().get(end).i32GeS(),
      () => {
        each(pairs);
        f.bump(rows, by);
      },
    );
    if (pairs) f.when(() => f.get(rows).get(end).i32LtS(), () => body(false));
  };
  /** The maximum of the row (the next one with `second`) into m; pmax skips NaN, as the flat module's `if (v > max) max = v` does. */
  const maxOf = (m: Local, second = false) => {
    f.f32x4Const(-Infinity).set(m);
    pass(
      (lanes) => {
        f.get(m).get(px).v128Load(0);
        masked(lanes, -Infinity);
        f.f32x4('pmax').set(m);
      },
      false,
      second,
    );
    across(m, 'f32Max');
    f.set(m);
  };
  return { f, row, px, po, max, sum, v, tmp, lo, hi, masked, store, pass, across, eachRow, maxOf };
}

/** log_softmax: two rows at a time (the two f64 sums' chains of adds side by side), then a last one. */
function logSoftmaxRows(t: RowTools): void {
  const { f, px, max, v, tmp, masked, store, pass, eachRow, maxOf } = t;
  const { rowBytes } = t.row;
  const [max2, sums] = [f.local('v128'), [logSumOf(f), logSumOf(f)]];
  eachRow((pair) => {
    const both = pair ? ([[max, 0], [max2, rowBytes]] as const) : ([[max, 0]] as const);
    both.forEach(([m], r) => maxOf(m, r === 1));
    // Σ exp(x − max) in f64, element by element
    both.forEach((_x, r) => sums[r]!.clear());
    pass((lanes) => {
      both.forEach(([m, at], r) => {
        if (typeof at === 'number') f.get(px).v128Load(at);
        else push(f.get(px), at).i32Add().v128Load(0);
        f.get(m).f32x4('sub');
        f32x4Exp(f, tmp);
        if (lanes === 'rt') masked(lanes, 0);
        sums[r]!.add(typeof lanes === 'number' ? lanes : 4);
      });
    });
    // y = x − (max + ln Σ), in f64, rounded once
    both.forEach(([m], r) => {
      sums[r]!.lse(m);
      pass(
        (lanes) => {
          f.get(px).v128Load(0);
          sums[r]!.minus();
          f.set(v);
          store(lanes);
        },
        false,
        r === 1,
      );
    });
  }, true);
}

/** softmax: each row's exponentials stored and summed, then times 1 / Σ. */
function softmaxOfRows(t: RowTools): void {
  const { f, px, po, max, sum, v, tmp, lo, hi, masked, store, pass, across, eachRow, maxOf } = t;
  const { blocked } = t.row;
  eachRow(() => {
    maxOf(max);
    // e = exp(x − max): stored, and summed
    f.f32x4Const(0).set(sum);
    pass((lanes) => {
      f.get(px).v128Load(0).get(max).f32x4('sub');
      f32x4Exp(f, tmp);
      f.set(v);
      store(lanes);
      f.get(sum).get(v);
      masked(lanes, 0);
      f.f32x4('add').set(sum);
    }, true);
    // times 1 / Σ (a blocked sum's lanes combined in f64)
    const wide = () => {
      f.get(lo!).f64x2ExtractLane(0).get(lo!).f64x2ExtractLane(1).f64Add();
      f.get(hi!).f64x2ExtractLane(0).get(hi!).f64x2ExtractLane(1).f64Add().f64Add().f32DemoteF64().f32x4('splat');
    };
    if (typeof blocked === 'boolean') {
      f.f32x4Const(1);
      if (blocked) wide();
      else across(sum, 'f32Add');
    } else {
      // (a run-time length: blocked or not, into v)
      f.get(blocked);
      op.ifElse(f, () => void (wide(), f.set(v)), () => void (across(sum, 'f32Add'), f.set(v)));
      f.f32x4Const(1).get(v);
    }
    f.f32x4('div').set(sum);
    pass((lanes) => {
      f.get(po).v128Load(0).get(sum).f32x4('mul').set(v);
      store(lanes);
    });
  });
}

/**
 * body() `count` times (counting j down): a number as Body.repeat; a run-time count, which may be
 * 0, as a loop tested at its end (one branch a pass) entered where the count is not 0.
 */
function repeat(f: Body, j: Local, count: I32, body: () => void): void {
  if (typeof count === 'number') return repeatN(f, j, count, body);
  f.when(
    () => push(f, count).tee(j),
    () => {
      f.raw(0x03, 0x40); // loop
      body();
      f.get(j).i32(1).i32Sub().tee(j).raw(0x0d, 0x00, 0x0b); // br_if 0 while j ≠ 0; end
    },
  );
}

/**
 * A row of N: its whole vectors (`full`), the lanes of its last one (`rest`), whether the sum goes
 * by blocks (softmax: a row of more than SOFTMAX_BLOCK vectors; a local holding it where N is a
 * run-time value) and if so its `blocks` and the vectors after them (`tail`; 0 and full where it
 * does not), its bytes; numbers where N is one, else locals computed once at the function's start,
 * with `mask` the lanes of its last vector.
 */
function rowShape(f: Body, N: I32, log: boolean) {
  if (typeof N === 'number') {
    const full = Math.floor(N / 4);
    const blocked = !log && full > SOFTMAX_BLOCK;
    return { full, rest: N % 4 as I32, blocked: blocked as boolean | Local, blocks: Math.floor(full / SOFTMAX_BLOCK) as I32, tail: (full % SOFTMAX_BLOCK) as I32, rowBytes: 4 * N as I32, mask: undefined as Local | undefined };
  }
  const [n, fl, rs, big, bl, tl] = Array.from({ length: 6 }, () => f.local('i32'));
  const at = (l: Local, what: string): I32 => ({ push: (g) => void g.get(l), text: what });
  push(f, N).tee(n).i32(4).i32DivU().set(fl);
  f.get(n).i32(3);
  op.i32And(f);
  f.set(rs);
  f.get(fl).i32(SOFTMAX_BLOCK).i32GtS().set(big);
  f.get(fl).i32(SOFTMAX_BLOCK).i32DivU().get(big).i32Mul().set(bl);
  f.get(fl).get(bl).i32(SOFTMAX_BLOCK).i32Mul().i32Sub().set(tl);
  const mask = f.local('v128');
  f.i32x4Lanes([0, 1, 2, 3]).get(rs).i32x4Splat().simd(SIMD.i32x4LtS).set(mask);
  return { full: at(fl, `${N.text} / 4`), rest: at(rs, `${N.text} % 4`), blocked: log ? false : big, blocks: at(bl, 'blocks'), tail: at(tl, 'tail'), rowBytes: times(at(n, N.text), 4), mask };
}

/**
 * log_softmax's sum: `add(lanes)` adds the first lanes of the vector on the stack into an f64 in
 * their order, `lse(max)` makes max + ln Σ (f64x2, both lanes), `minus()` turns the vector x on
 * the stack into x − lse, in f64, rounded once.
 */
function logSumOf(f: Body) {
  const s = f.local('f64');
  const [w, lse, lo, hi] = Array.from({ length: 4 }, () => f.local('v128'));
  const t = { s: f.local('f64'), z: f.local('f64'), z2: f.local('f64'), p: f.local('f64'), e: f.local('i32') };
  const half = () => f.f64x2PromoteLowF32x4().get(lse).simd(SIMD.f64x2Sub).f32x4DemoteF64x2Zero();
  return {
    clear: () => void op.f64Const(f, 0).set(s),
    add(lanes: number) {
      // (lanes 0, 1 and 2, 3 promoted two at a time)
      f.tee(w).f64x2PromoteLowF32x4().set(lo);
      if (lanes > 2) f.get(w).get(w).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().set(hi);
      for (let l = 0; l < lanes; l++) f.get(s).get(l < 2 ? lo : hi).f64x2ExtractLane(l % 2).f64Add().set(s);
    },
    lse(max: Local) {
      f.get(max).f32x4ExtractLane(0);
      op.f64PromoteF32(f);
      f.get(s);
      f64Log(f, t);
      f.f64Add().simd(SIMD.f64x2Splat).set(lse);
    },
    minus() {
      f.set(w).get(w);
      half();
      f.get(w).get(w).i32x4Shuffle([2, 3, 2, 3]);
      half();
      f.i32x4Shuffle([0, 1, 4, 5]);
    },
  };
}
