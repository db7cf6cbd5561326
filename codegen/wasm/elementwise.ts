// WebAssembly SIMD kernels for elementwise groups: the group's steps over an [M,N] iteration
// space (leading axes collapsed into rows), four columns at a time, with a lane-wise last vector
// when N is not a multiple of 4. Each array the steps read or write has a pointer that walks its
// row; a broadcast operand's pointer stays put along the axis it is broadcast over.

import { Body } from './encode.js';
import type { Local } from './encode.js';
import type { Step } from './steps.js';
import { StepWriter } from './steps.js';

export interface ElementwiseKernel {
  readonly M: number;
  readonly N: number;
  readonly steps: readonly Step[];
}

/**
 * With `ranged`, a function of two arguments that computes the rows [start, end) (threads' row
 * blocks: rows are independent, and a ragged row's last vector is stored lane by lane).
 */
export function elementwiseBody(k: ElementwiseKernel, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  elementwiseLoop(f, k, opts.ranged ? { rows: [f.param(0), f.param(1)] } : {});
  return f;
}

/** A range [start, end) of rows or of columns, as two i32 locals (columns: start a multiple of 4). */
export type Range = readonly [Local, Local];

/** Appends the loops of `k` to a function body: over every row and column, or over ranges of them. */
export function elementwiseLoop(f: Body, k: ElementwiseKernel, range: { rows?: Range; cols?: Range } = {}): void {
  const { M, N } = k;
  if (M * N === 0) return;
  const rowCounter = f.local('i32');
  const vecCounter = f.local('i32');
  const i = f.local('i32');
  const w = new StepWriter(f, k.steps, N);
  const full = Math.floor(N / 4);
  const rest = N % 4;
  const advance = () => {
    for (const p of w.pointers) if (p.sj) f.bump(p.local, 16);
  };
  const row = () => {
    pointersAtRow(f, w, i, range.cols?.[0]);
    if (range.cols) {
      // the whole vectors of [start, end), then the ragged last one when end is N
      const [jv, end] = [f.local('i32'), range.cols[1]];
      f.get(range.cols[0]).set(jv);
      f.loopUntil(
        () => f.get(jv).i32(4).i32Add().get(end).i32GtS(),
        () => {
          w.at(0, 0, 4);
          advance();
          f.bump(jv, 4);
        },
      );
      if (rest) f.when(() => f.get(jv).get(end).i32LtS(), () => w.at(0, 0, rest));
    } else {
      if (full > 0)
        f.repeat(vecCounter, full, () => {
          w.at(0, 0, 4);
          advance();
        });
      if (rest) w.at(0, 0, rest);
    }
    f.bump(i, 1);
  };
  if (range.rows) {
    f.get(range.rows[0]).set(i);
    f.loopUntil(() => f.get(i).get(range.rows![1]).i32GeS(), row);
  } else {
    f.assign(i, 0);
    f.repeat(rowCounter, M, row);
  }
}

/** Sets every pointer of the steps to its array's position (i, 0), or (i, col). */
function pointersAtRow(f: Body, w: StepWriter, i: Local, col?: Local): void {
  for (const p of w.pointers) {
    f.i32(p.addr);
    if (p.si) f.get(i).i32(4 * p.si).i32Mul().i32Add();
    if (col && p.sj) f.get(col).i32(4 * p.sj).i32Mul().i32Add();
    f.set(p.local);
  }
}

/**
 * A reduction group over leading axes, as three loops: the accumulators (one row of N per
 * reduction, in a scratch area) are set to 0 or −∞; every row of the [M,N] space computes the
 * group's elementwise members and adds (or maxes) into them; one last row computes the epilogue
 * over the kept positions, reading the accumulators. A sum over more than REDUCE_MIN_ROWS rows
 * is blocked: each block of REDUCE_BLOCK rows adds into the f32 accumulators, which are then added
 * into f64 totals (`blocked`) and zeroed, and the totals, rounded to f32, are the accumulators
 * the epilogue reads. So no f32 sum runs over more than REDUCE_MIN_ROWS terms (one over the 32,768
 * rows of a CIFAR batch norm was off by 1e-3 relative); the flat module's accumulators are f64.
 */
export interface ReduceKernel {
  readonly M: number;
  readonly N: number;
  readonly init: readonly Step[];
  readonly rows: readonly Step[];
  readonly epilogue: readonly Step[];
  /** Each sum's accumulators and its f64 totals (N doubles, 16-byte aligned), used where M > REDUCE_MIN_ROWS. */
  readonly blocked?: readonly { readonly acc: number; readonly total: number }[];
}

/**
 * The rows a column sum adds in f32 before adding them into its f64 totals (16 rather than 64:
 * the nine-conv ResNet's worst gradient 1.1e-6 rather than 3.2e-6 relative, at the same speed).
 */
export const REDUCE_BLOCK = 16;
/**
 * The rows from which a column sum is blocked: up to here an f32 sum loses little, and the blocks'
 * additions into the totals cost a shorter kernel more than it gains (makemore L's [256, 1024]
 * sums: 10–20 % slower).
 */
export const REDUCE_MIN_ROWS = 256;

/**
 * With `ranged`, a function of two arguments that computes the kept columns [start, end) (start
 * a multiple of 4): threads' column blocks, each summing its columns over every row in the same
 * order (and the same blocks) as the whole kernel.
 */
export function reduceBody(k: ReduceKernel, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  const cols = opts.ranged ? { cols: [f.param(0), f.param(1)] as const } : {};
  elementwiseLoop(f, { M: 1, N: k.N, steps: k.init }, cols);
  if (k.blocked?.length && k.M > REDUCE_MIN_ROWS && k.N > 0) blockedRows(f, k, k.blocked, cols.cols);
  else elementwiseLoop(f, { M: k.M, N: k.N, steps: k.rows }, cols);
  if (k.epilogue.length) elementwiseLoop(f, { M: 1, N: k.N, steps: k.epilogue }, cols);
  return f;
}

/** The rows of a column reduction in blocks of REDUCE_BLOCK, each sum's block added into its f64 totals. */
function blockedRows(f: Body, k: ReduceKernel, sums: NonNullable<ReduceKernel['blocked']>, cols?: Range): void {
  const [jv, counter, acc, total, start, end] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
  const v = f.local('v128');
  /** `body` for each vector of 4 kept columns (a ragged last one whole: the scratch areas are whole vectors), acc and total at its place. */
  const vectors = (body: (s: { acc: number; total: number }) => void) => {
    const at = () => {
      for (const s of sums) {
        f.get(jv).i32(4).i32Mul().i32(s.acc).i32Add().set(acc);
        f.get(jv).i32(8).i32Mul().i32(s.total).i32Add().set(total);
        body(s);
      }
      f.bump(jv, 4);
    };
    if (cols) {
      f.get(cols[0]).set(jv);
      f.loopUntil(() => f.get(jv).get(cols[1]).i32GeS(), at);
    } else {
      f.assign(jv, 0);
      f.repeat(counter, Math.ceil(k.N / 4), at);
    }
  };
  // the totals zeroed (the accumulators are: their init)
  vectors(() => f.get(total).f32x4Const(0).v128Store(0).get(total).f32x4Const(0).v128Store(16));
  f.assign(start, 0);
  f.loopUntil(() => f.get(start).i32(k.M).i32GeS(), () => {
    f.get(start).i32(REDUCE_BLOCK).i32Add().set(end);
    f.when(() => f.get(end).i32(k.M).i32GtS(), () => f.assign(end, k.M));
    elementwiseLoop(f, { M: k.M, N: k.N, steps: k.rows }, { rows: [start, end], ...(cols ? { cols } : {}) });
    // totals += the block's sums (f64); the accumulators zeroed for the next block
    vectors(() => {
      f.get(acc).v128Load(0).set(v);
      f.get(total).get(total).v128Load(0).get(v).f64x2PromoteLowF32x4().f64x2Add().v128Store(0);
      f.get(total).get(total).v128Load(16).get(v).get(v).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().v128Store(16);
      f.get(acc).f32x4Const(0).v128Store(0);
    });
    f.get(end).set(start);
  });
  // the accumulators: the totals rounded to f32
  vectors(() => {
    f.get(acc);
    f.get(total).v128Load(0).f32x4DemoteF64x2Zero();
    f.get(total).v128Load(16).f32x4DemoteF64x2Zero();
    f.i32x4Shuffle([0, 1, 4, 5]).v128Store(0);
  });
}

/**
 * A reduction group over trailing axes (row sums and maxes: layer norm's statistics, the sums of
 * softmax's and layer norm's gradients). Every row of the [M,N] space computes the group's
 * elementwise members four columns at a time and adds (or maxes) each reduced value into a vector
 * of its own; in a ragged last vector the lanes past N count as 0 (−∞ for a maximum). The four
 * lanes are then combined and stored at the row's place among the accumulators (M floats per
 * reduction, in a scratch area), and one last row computes the epilogue over the M kept
 * positions. A sum over a row of more than ROW_BLOCK vectors adds its vector into f64 totals
 * after every ROW_BLOCK vectors, so that each lane's f32 sum runs over ROW_BLOCK terms at most
 * (the flat module's accumulators are f64).
 */
export interface RowReduceKernel {
  readonly M: number;
  readonly N: number;
  /** The members over [M,N], then one step per reduction that holds the value it reduces. */
  readonly rows: readonly Step[];
  /** Per reduction: the step of `rows` it reduces, how, and the address of its M accumulators. */
  readonly reductions: readonly { readonly step: number; readonly op: 'sum' | 'max'; readonly acc: number }[];
  readonly epilogue: readonly Step[];
}

/** The vectors of a row a row sum adds in f32 (4 lanes each) before adding them into its f64 totals. */
export const ROW_BLOCK = 64;

/**
 * With `ranged`, a function of two arguments that computes the rows [start, end) and the epilogue
 * at those kept positions (start a multiple of 4 when there is an epilogue): threads' row blocks.
 */
export function rowReduceBody(k: RowReduceKernel, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  const { M, N } = k;
  if (M * N === 0) return f;
  const range = opts.ranged ? ([f.param(0), f.param(1)] as const) : undefined;
  const [rowCounter, vecCounter, i] = [f.local('i32'), f.local('i32'), f.local('i32')];
  const w = new StepWriter(f, k.rows, N);
  const sums = k.reductions.map(() => f.local('v128'));
  const identity = (op: 'sum' | 'max') => (op === 'sum' ? 0 : -Infinity);
  /** Each reduced value into its vector; lanes from `lanes` on replaced by the identity. */
  const fold = (lanes: number) =>
    k.reductions.forEach((r, n) => {
      f.get(sums[n]!).get(w.result(r.step));
      if (lanes < 4) f.f32x4Const(identity(r.op)).i32x4Lanes([0, 1, 2, 3].map((l) => (l < lanes ? -1 : 0)) as [number, number, number, number]).v128Bitselect();
      f.f32x4(r.op === 'sum' ? 'add' : 'pmax').set(sums[n]!);
    });
  const full = Math.floor(N / 4);
  const rest = N % 4;
  const rows = (row: () => void) => {
    if (range) {
      f.get(range[0]).set(i);
      f.loopUntil(() => f.get(i).get(range[1]).i32GeS(), row);
    } else {
      f.assign(i, 0);
      f.repeat(rowCounter, M, row);
    }
  };
  // a row of more than ROW_BLOCK vectors: each sum's vector added into two f64x2 totals after every ROW_BLOCK vectors
  const blocked = full > ROW_BLOCK && k.reductions.some((r) => r.op === 'sum');
  const totals = k.reductions.map((r) => (blocked && r.op === 'sum' ? ([f.local('v128'), f.local('v128')] as const) : undefined));
  const blockCounter = blocked ? f.local('i32') : undefined;
  const flush = () =>
    totals.forEach((t, n) => {
      if (!t) return;
      const v = sums[n]!;
      f.get(t[0]).get(v).f64x2PromoteLowF32x4().f64x2Add().set(t[0]);
      f.get(t[1]).get(v).get(v).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().set(t[1]);
      f.f32x4Const(0).set(v);
    });
  const vectors = (count: number) =>
    f.repeat(vecCounter, count, () => {
      w.at(0, 0, 4);
      fold(4);
      for (const p of w.pointers) if (p.sj) f.bump(p.local, 16);
    });
  rows(() => {
    pointersAtRow(f, w, i);
    k.reductions.forEach((r, n) => f.f32x4Const(identity(r.op)).set(sums[n]!));
    for (const t of totals) if (t) f.f32x4Const(0).set(t[0]).f32x4Const(0).set(t[1]);
    if (blocked) {
      f.repeat(blockCounter!, Math.floor(full / ROW_BLOCK), () => {
        vectors(ROW_BLOCK);
        flush();
      });
      if (full % ROW_BLOCK) vectors(full % ROW_BLOCK);
    } else if (full > 0) vectors(full);
    if (rest) {
      w.at(0, 0, rest);
      fold(rest);
    }
    if (blocked) flush();
    // acc[i] = the four lanes combined (a blocked sum's: its totals' lanes, in f64)
    k.reductions.forEach((r, n) => {
      f.get(i).i32(4).i32Mul().i32(r.acc).i32Add();
      const t = totals[n];
      if (t) {
        f.get(t[0]).f64x2ExtractLane(0).get(t[0]).f64x2ExtractLane(1).f64Add();
        f.get(t[1]).f64x2ExtractLane(0).get(t[1]).f64x2ExtractLane(1).f64Add().f64Add().f32DemoteF64();
      } else {
        f.get(sums[n]!).f32x4ExtractLane(0);
        for (let l = 1; l < 4; l++) f.get(sums[n]!).f32x4ExtractLane(l)[r.op === 'sum' ? 'f32Add' : 'f32Max']();
      }
      f.f32Store(0);
    });
    f.bump(i, 1);
  });
  if (k.epilogue.length) elementwiseLoop(f, { M: 1, N: M, steps: k.epilogue }, range ? { cols: range } : {});
  return f;
}
