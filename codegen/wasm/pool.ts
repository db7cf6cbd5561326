// WebAssembly kernels for max and average pooling and their gradients, over the planes of
// x [N, C, H, W] (y [N, C, Ho, Wo]). Every size is a constant: the output rows (and columns) are
// split at build time into runs whose windows cover the same taps of x (the interior, where every
// tap is inside, and each border row or column, where padding cuts the window), so that every
// window's taps are unrolled at constant offsets and padding is never visited.
//
//   max_pool       y = the maximum of the window
//   avg_pool       y = the window's sum / (kH·kW)              (padding counts, as PyTorch's default)
//   max_pool_grad  dx[the first maximum of the window] += dy   (dx zeroed first; windows may overlap)
//   avg_pool_grad  dx[every tap of the window] += dy / (kH·kW)
//
// A window of 2×2 with stride 2 and no padding (LeNet's) is computed four outputs at a time in
// f32x4: two rows of eight inputs, their vertical maxima, then the maxima of lane pairs (a shuffle);
// its max pooling gradient too: the four taps of four windows as four vectors (even and odd lanes
// of the two rows), the first maximum by compare-and-select in tap order, dy masked to each tap,
// interleaved back into the two rows of dx. Every kernel computes a range of planes (the blocks
// of threads: a plane's outputs are its own). The symbolic module (codegen/wasm/symbolic-forms.ts)
// renders the same kernels once, at build time, its number of planes and its addresses run-time
// values (a symbolic batch); the sizes of a plane and the window are numbers.

import type { Local } from './encode.js';
import { Body } from './encode.js';
import type { I32 } from './index-lines.js';
import { push } from './index-lines.js';

export type PoolOp = 'max_pool' | 'avg_pool' | 'max_pool_grad' | 'avg_pool_grad';

export interface PoolKernel {
  readonly op: PoolOp;
  /** N·C planes of H×W (x, dx) and Ho×Wo (y, dy): a number, or a run-time value (the symbolic module's). */
  readonly planes: I32;
  readonly H: number;
  readonly W: number;
  readonly Ho: number;
  readonly Wo: number;
  readonly kernel: readonly number[];
  readonly stride: readonly number[];
  /** [h, w], as much before as after. */
  readonly padding: readonly number[];
  /**
   * Byte addresses: x (max_pool_grad reads it; none for avg_pool_grad), y (dy for the gradients),
   * dx (the gradients); numbers, or run-time values (the symbolic module's).
   */
  readonly x?: I32;
  readonly y: I32;
  readonly dx?: I32;
}

/** A pooling kernel of the static module: its planes and addresses numbers. */
export type StaticPoolKernel = PoolKernel & { readonly planes: number; readonly x?: number; readonly y: number; readonly dx?: number };

/** Runs of consecutive outputs along one axis whose windows keep the taps [lo, hi). */
function runs(out: number, k: number, s: number, pad: number, n: number): { start: number; count: number; lo: number; hi: number }[] {
  const rs: { start: number; count: number; lo: number; hi: number }[] = [];
  for (let i = 0; i < out; i++) {
    const lo = Math.max(0, pad - i * s);
    const hi = Math.min(k, n + pad - i * s);
    const last = rs[rs.length - 1];
    if (last && last.lo === lo && last.hi === hi) last.count++;
    else rs.push({ start: i, count: 1, lo, hi });
  }
  return rs;
}

/** The planes [start, end) of a ranged kernel, or all of them. */
type Planes = { readonly start: Local; readonly end: Local } | undefined;

/** `body` for each plane of the range, p counting the planes; xp, yp set to plane p of `xBase` and y first (body bumps them). */
function eachPlane(f: Body, k: PoolKernel, range: Planes, xBase: I32, [p, xp, yp]: Local[], body: () => void): void {
  if (range) f.get(range.start).set(p);
  else f.assign(p, 0);
  push(f.get(p).i32(4 * k.H * k.W).i32Mul(), xBase).i32Add().set(xp);
  push(f.get(p).i32(4 * k.Ho * k.Wo).i32Mul(), k.y).i32Add().set(yp);
  f.loopUntil(() => (range ? f.get(p).get(range.end) : push(f.get(p), k.planes)).i32GeS(), () => {
    body();
    f.bump(p, 1);
  });
}

/** dx − x, the bytes from a tap of x to the same position of dx: a number, or a local set to it (run-time addresses). */
function deltaOf(f: Body, k: PoolKernel): number | Local {
  const [x, dx] = [k.x!, k.dx!];
  if (typeof x === 'number' && typeof dx === 'number') return dx - x;
  const d = f.local('i32');
  push(push(f, dx), x).i32Sub().set(d);
  return d;
}

/** Pushes xc + o + delta: the position in dx of the tap at xc + o of x. */
function dxAt(f: Body, xc: Local, o: number, delta: number | Local): Body {
  return typeof delta === 'number' ? f.get(xc).i32(o + delta).i32Add() : f.get(xc).i32(o).i32Add().get(delta).i32Add();
}

/** The planes of dx in the range set to 0. */
function zeroPlanes(f: Body, k: PoolKernel, range: Planes, [ptr, end]: Local[]): void {
  const bytes = 4 * k.H * k.W;
  const dx = k.dx!;
  if (range) {
    push(f.get(range.start).i32(bytes).i32Mul(), dx).i32Add().set(ptr);
    push(f.get(range.end).i32(bytes).i32Mul(), dx).i32Add().set(end);
  } else if (typeof dx === 'number' && typeof k.planes === 'number') f.assign(ptr, dx).assign(end, dx + k.planes * bytes);
  else push(push(push(f, dx).set(ptr), k.planes).i32(bytes).i32Mul(), dx).i32Add().set(end);
  // whole vectors while they fit, then the floats left
  f.loopUntil(() => f.get(ptr).i32(16).i32Add().get(end).i32GtS(), () => {
    f.get(ptr).f32x4Const(0).v128Store(0);
    f.bump(ptr, 16);
  });
  f.loopUntil(() => f.get(ptr).get(end).i32GeS(), () => {
    f.get(ptr).f32x4Const(0).f32x4ExtractLane(0).f32Store(0);
    f.bump(ptr, 4);
  });
}

/** The kernel as a function body; with `ranged`, a function of the planes [start, end). */
export function poolBody(k: PoolKernel, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  const range: Planes = opts.ranged ? { start: f.param(0), end: f.param(1) } : undefined;
  const { op, planes, H, W, Ho, Wo } = k;
  const [kH, kW] = k.kernel as [number, number];
  const [sh, sw] = k.stride as [number, number];
  const [ph, pw] = k.padding as [number, number];
  if ((typeof planes === 'number' ? planes : 1) * Ho * Wo === 0) return f;
  const i32 = () => f.local('i32');
  const [cp, cr, cc, xp, yp, xr, yr, xc, yc, at, cond, ptr] = Array.from({ length: 12 }, i32);
  const [best, v, g] = [f.local('f32'), f.local('f32'), f.local('f32')];
  const grad = op === 'max_pool_grad' || op === 'avg_pool_grad';
  // the plane walked by the window's taps: x, or dx for the average's gradient (which reads no x)
  const base = op === 'avg_pool_grad' ? k.dx! : k.x!;
  const delta = op === 'max_pool_grad' ? deltaOf(f, k) : 0; // from a tap of x to the same position of dx
  const inv = 1 / (kH * kW);
  const lenet = kH === 2 && kW === 2 && sh === 2 && sw === 2 && ph === 0 && pw === 0 && Wo >= 4;
  // (the 2×2 gradient writes every position its windows cover: dx is zeroed only where some are left out)
  if (grad && !(op === 'max_pool_grad' && lenet && H === 2 * Ho && W === 2 * Wo)) zeroPlanes(f, k, range, [ptr, at]);
  if (lenet && (op === 'max_pool' || op === 'max_pool_grad')) {
    eachPlane(f, k, range, k.x!, [cp, xr, yr], () => (op === 'max_pool' ? maxPool2x2(f, k, [cr, cc, xr, yr, xc, yc]) : maxPool2x2Grad(f, k, [cr, cc, xr, yr, xc, yc], delta)));
    return f;
  }

  /** One window: its taps are x[xc + 4·(p·W + q)] for the rows and columns of the run. */
  const window = (rows: { lo: number; hi: number }, cols: { lo: number; hi: number }) => {
    const offs: number[] = [];
    for (let p = rows.lo; p < rows.hi; p++) for (let q = cols.lo; q < cols.hi; q++) offs.push(4 * ((p - rows.lo) * W + (q - cols.lo)));
    if (op === 'max_pool' || op === 'avg_pool') {
      f.get(yc);
      offs.forEach((o, t) => {
        f.get(xc).f32Load(o);
        if (t > 0) op === 'max_pool' ? f.f32Max() : f.f32Add();
      });
      if (op === 'avg_pool') f.f32Const(inv).f32Mul();
      f.f32Store(0);
    } else if (op === 'max_pool_grad') {
      // the first maximum, as the float64 reference: a later tap wins only when it is greater
      dxAt(f.get(xc).f32Load(offs[0]!).set(best), xc, offs[0]!, delta).set(at);
      for (const o of offs.slice(1)) {
        f.get(xc).f32Load(o).set(v);
        f.get(v).get(best).f32Gt().set(cond);
        f.get(v).get(best).get(cond).select().set(best);
        dxAt(f, xc, o, delta).get(at).get(cond).select().set(at);
      }
      f.get(at).get(at).f32Load(0).get(yc).f32Load(0).f32Add().f32Store(0);
    } else {
      f.get(yc).f32Load(0).f32Const(inv).f32Mul().set(g);
      for (const o of offs) f.get(xc).get(xc).f32Load(o).get(g).f32Add().f32Store(o);
    }
  };

  const rowRuns = runs(Ho, kH, sh, ph, H);
  const colRuns = runs(Wo, kW, sw, pw, W);
  eachPlane(f, k, range, base, [cp, xp, yp], () => {
    for (const rr of rowRuns) {
      f.get(xp).i32(4 * (rr.start * sh - ph + rr.lo) * W).i32Add().set(xr);
      f.get(yp).i32(4 * rr.start * Wo).i32Add().set(yr);
      f.repeat(cr, rr.count, () => {
        for (const cr2 of colRuns) {
          f.get(xr).i32(4 * (cr2.start * sw - pw + cr2.lo)).i32Add().set(xc);
          f.get(yr).i32(4 * cr2.start).i32Add().set(yc);
          f.repeat(cc, cr2.count, () => {
            window(rr, cr2);
            f.bump(xc, 4 * sw).bump(yc, 4);
          });
        }
        f.bump(xr, 4 * sh * W).bump(yr, 4 * Wo);
      });
    }
    f.bump(xp, 4 * H * W).bump(yp, 4 * Ho * Wo);
  });
  return f;
}

/**
 * 2×2 max pooling with stride 2 of one plane (x at xr, y at yr, both bumped to the next plane),
 * four outputs at a time: rows 2i and 2i+1 of eight inputs each, their vertical maxima m0, m1
 * (lanes 0–3, 4–7), then max(even lanes, odd lanes). A ragged end of a row is computed from the
 * last four outputs again (Wo ≥ 4), overlapping the vector before.
 */
function maxPool2x2(f: Body, k: PoolKernel, [cr, cc, xr, yr, xc, yc]: Local[]): void {
  const { W, Ho, H } = k;
  const [m0, m1] = [f.local('v128'), f.local('v128')];
  const vec = (xo: number, yo: number) => {
    f.get(xc).v128Load(xo).get(xc).v128Load(xo + 4 * W).f32x4('max').set(m0);
    f.get(xc).v128Load(xo + 16).get(xc).v128Load(xo + 16 + 4 * W).f32x4('max').set(m1);
    f.get(yc);
    f.get(m0).get(m1).i32x4Shuffle([0, 2, 4, 6]).get(m0).get(m1).i32x4Shuffle([1, 3, 5, 7]).f32x4('max');
    f.v128Store(yo);
  };
  rows2x2(f, k, [cr, cc, xr, yr, xc, yc], vec);
  // rows past 2·Ho (an odd H) belong to no window
  if (H > 2 * Ho) f.bump(xr, 4 * (H - 2 * Ho) * W);
}

/** The output rows of one 2×2 plane, `vec(xo, yo)` computing the four outputs at yc + yo from the inputs at xc + xo. */
function rows2x2(f: Body, k: PoolKernel, [cr, cc, xr, yr, xc, yc]: Local[], vec: (xo: number, yo: number) => void): void {
  const { W, Ho, Wo } = k;
  const full = Math.floor(Wo / 4);
  f.repeat(cr, Ho, () => {
    f.get(xr).set(xc).get(yr).set(yc);
    f.repeat(cc, full, () => {
      vec(0, 0);
      f.bump(xc, 32).bump(yc, 16);
    });
    // the last outputs of a ragged row: the vector ending at Wo, from the row's start
    if (Wo % 4) {
      f.get(xr).set(xc).get(yr).set(yc);
      vec(4 * 2 * (Wo - 4), 4 * (Wo - 4));
    }
    f.bump(xr, 4 * 2 * W).bump(yr, 4 * Wo);
  });
}

/**
 * The gradient of 2×2 max pooling with stride 2 over one plane, four windows at a time: their
 * taps (0,0), (0,1), (1,0), (1,1) are the even and odd lanes of the two rows' eight inputs; the
 * first maximum wins as in the scalar kernel (a later tap only when greater), dy (plus 0, as the
 * scalar kernel's 0 + dy) goes to the winning tap and 0 to the others, the taps interleaved back
 * into the rows of dx. Windows do not overlap, so these stores are dx (a ragged row's last
 * vector, computed again, stores the same values).
 */
function maxPool2x2Grad(f: Body, k: PoolKernel, [cr, cc, xr, yr, xc, yc]: Local[], delta: number | Local): void {
  const { W, Ho, H } = k;
  const at = f.local('i32');
  const v = () => f.local('v128');
  const [a0, a1, t0, t1, t2, t3, best, c1, c2, c3, gv, rest] = Array.from({ length: 12 }, v);
  const vec = (xo: number, yo: number) => {
    const evenOdd = (lo: number, even: typeof t0, odd: typeof t0) => {
      f.get(xc).v128Load(lo).set(a0).get(xc).v128Load(lo + 16).set(a1);
      f.get(a0).get(a1).i32x4Shuffle([0, 2, 4, 6]).set(even);
      f.get(a0).get(a1).i32x4Shuffle([1, 3, 5, 7]).set(odd);
    };
    evenOdd(xo, t0, t1);
    evenOdd(xo + 4 * W, t2, t3);
    f.get(t0).set(best);
    for (const [t, c] of [[t1, c1], [t2, c2], [t3, c3]] as const) {
      f.get(t).get(best).f32x4('gt').set(c);
      f.get(t).get(best).get(c).v128Bitselect().set(best);
    }
    f.get(yc).v128Load(yo).f32x4Const(0).f32x4('add').set(gv);
    // the winner: tap 3 where c3, else 2 where c2, else 1 where c1, else 0
    f.get(gv).get(c3).v128And().set(t3);
    f.f32x4Const(0).get(gv).get(c3).v128Bitselect().set(rest);
    f.get(rest).get(c2).v128And().set(t2);
    f.f32x4Const(0).get(rest).get(c2).v128Bitselect().set(rest);
    f.get(rest).get(c1).v128And().set(t1);
    f.f32x4Const(0).get(rest).get(c1).v128Bitselect().set(t0);
    dxAt(f, xc, 0, delta).set(at); // the same position of dx
    for (const [row, even, odd] of [[0, t0, t1], [4 * W, t2, t3]] as const) {
      f.get(at).get(even).get(odd).i32x4Shuffle([0, 4, 1, 5]).v128Store(xo + row);
      f.get(at).get(even).get(odd).i32x4Shuffle([2, 6, 3, 7]).v128Store(xo + row + 16);
    }
  };
  rows2x2(f, k, [cr, cc, xr, yr, xc, yc], vec);
  if (H > 2 * Ho) f.bump(xr, 4 * (H - 2 * Ho) * W);
}

/**
 * A pooling op's arrays among its operands and result: x [N, C, H, W] (for avg_pool_grad, which
 * reads no x, its result dx, whose planes it walks), y [N, C, Ho, Wo] (dy for the gradients) and
 * the gradients' dx (their result).
 */
export function poolOperands<T>(op: PoolOp, args: readonly T[], result: T): { x: T; y: T; dx?: T } {
  const grad = op === 'max_pool_grad' || op === 'avg_pool_grad';
  return {
    x: op === 'avg_pool_grad' ? result : args[0]!,
    y: op === 'max_pool' || op === 'avg_pool' ? result : op === 'max_pool_grad' ? args[1]! : args[0]!,
    ...(grad ? { dx: result } : {}),
  };
}

export const isPool = (op: string): op is PoolOp => op === 'max_pool' || op === 'avg_pool' || op === 'max_pool_grad' || op === 'avg_pool_grad';

/**
 * The kernel of a pooling op whose arrays are in the memory (`address` of operand k, or of the
 * result for k = -1), or undefined for the flat module's loops.
 */
export function poolKernel(op: PoolOp, attrs: { kernel: number[]; stride: number[]; padding: number[] }, xShape: readonly number[], yShape: readonly number[], address: (k: number) => number | undefined): StaticPoolKernel | undefined {
  const [N, C, H, W] = xShape as number[];
  const [, , Ho, Wo] = yShape as number[];
  const grad = op === 'max_pool_grad' || op === 'avg_pool_grad';
  const x = op === 'avg_pool_grad' ? undefined : address(0);
  const y = op === 'max_pool_grad' ? address(1) : op === 'avg_pool_grad' ? address(0) : address(-1);
  const dx = grad ? address(-1) : undefined;
  if (y === undefined || (op !== 'avg_pool_grad' && x === undefined) || (grad && dx === undefined)) return undefined;
  return { op, planes: N! * C!, H: H!, W: W!, Ho: Ho!, Wo: Wo!, kernel: attrs.kernel, stride: attrs.stride, padding: attrs.padding, x, y, dx };
}
