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
 * over the kept positions, reading the accumulators. Accumulation is in f32 (the flat module's
 * accumulators are f64).
 */
export interface ReduceKernel {
  readonly M: number;
  readonly N: number;
  readonly init: readonly Step[];
  readonly rows: readonly Step[];
  readonly epilogue: readonly Step[];
}

/**
 * With `ranged`, a function of two arguments that computes the kept columns [start, end) (start
 * a multiple of 4): threads' column blocks, each summing its columns over every row in the same
 * order as the whole kernel.
 */
export function reduceBody(k: ReduceKernel, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  const cols = opts.ranged ? { cols: [f.param(0), f.param(1)] as const } : {};
  elementwiseLoop(f, { M: 1, N: k.N, steps: k.init }, cols);
  elementwiseLoop(f, { M: k.M, N: k.N, steps: k.rows }, cols);
  if (k.epilogue.length) elementwiseLoop(f, { M: 1, N: k.N, steps: k.epilogue }, cols);
  return f;
}

/**
 * A reduction group over trailing axes (row sums and maxes: layer norm's statistics, the sums of
 * softmax's and layer norm's gradients). Every row of the [M,N] space computes the group's
 * elementwise members four columns at a time and adds (or maxes) each reduced value into a vector
 * of its own; in a ragged last vector the lanes past N count as 0 (−∞ for a maximum). The four
 * lanes are then combined and stored at the row's place among the accumulators (M floats per
 * reduction, in a scratch area), and one last row computes the epilogue over the M kept
 * positions. Accumulation is in f32 (the flat module's accumulators are f64).
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
  rows(() => {
    pointersAtRow(f, w, i);
    k.reductions.forEach((r, n) => f.f32x4Const(identity(r.op)).set(sums[n]!));
    if (full > 0)
      f.repeat(vecCounter, full, () => {
        w.at(0, 0, 4);
        fold(4);
        for (const p of w.pointers) if (p.sj) f.bump(p.local, 16);
      });
    if (rest) {
      w.at(0, 0, rest);
      fold(rest);
    }
    // acc[i] = the four lanes combined
    k.reductions.forEach((r, n) => {
      f.get(i).i32(4).i32Mul().i32(r.acc).i32Add();
      f.get(sums[n]!).f32x4ExtractLane(0);
      for (let l = 1; l < 4; l++) f.get(sums[n]!).f32x4ExtractLane(l)[r.op === 'sum' ? 'f32Add' : 'f32Max']();
      f.f32Store(0);
    });
    f.bump(i, 1);
  });
  if (k.epilogue.length) elementwiseLoop(f, { M: 1, N: M, steps: k.epilogue }, range ? { cols: range } : {});
  return f;
}
