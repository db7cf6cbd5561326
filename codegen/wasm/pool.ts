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
// f32x4: two rows of eight inputs, their vertical maxima, then the maxima of lane pairs (a shuffle).

import type { Local } from './encode.js';
import { Body } from './encode.js';

export type PoolOp = 'max_pool' | 'avg_pool' | 'max_pool_grad' | 'avg_pool_grad';

export interface PoolKernel {
  readonly op: PoolOp;
  /** N·C planes of H×W (x, dx) and Ho×Wo (y, dy). */
  readonly planes: number;
  readonly H: number;
  readonly W: number;
  readonly Ho: number;
  readonly Wo: number;
  readonly kernel: readonly number[];
  readonly stride: readonly number[];
  /** [h, w], as much before as after. */
  readonly padding: readonly number[];
  /** Byte addresses: x (max_pool_grad reads it; none for avg_pool_grad), y (dy for the gradients), dx (the gradients). */
  readonly x?: number;
  readonly y: number;
  readonly dx?: number;
}

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

export function poolBody(k: PoolKernel): Body {
  const f = new Body();
  const { op, planes, H, W, Ho, Wo } = k;
  const [kH, kW] = k.kernel as [number, number];
  const [sh, sw] = k.stride as [number, number];
  const [ph, pw] = k.padding as [number, number];
  if (planes * Ho * Wo === 0) return f;
  const i32 = () => f.local('i32');
  const [cp, cr, cc, xp, yp, xr, yr, xc, yc, at, cond, ptr] = Array.from({ length: 12 }, i32);
  const [best, v, g] = [f.local('f32'), f.local('f32'), f.local('f32')];
  const grad = op === 'max_pool_grad' || op === 'avg_pool_grad';
  // the plane walked by the window's taps: x, or dx for the average's gradient (which reads no x)
  const base = op === 'avg_pool_grad' ? k.dx! : k.x!;
  const delta = op === 'max_pool_grad' ? k.dx! - k.x! : 0; // from a tap of x to the same position of dx
  const inv = 1 / (kH * kW);
  if (grad) zero(f, k.dx!, planes * H * W, cp, ptr);
  if (op === 'max_pool' && kH === 2 && kW === 2 && sh === 2 && sw === 2 && ph === 0 && pw === 0 && Wo >= 4) {
    maxPool2x2(f, k, [cp, cr, cc, xr, yr, xc, yc]);
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
      f.get(xc).f32Load(offs[0]!).set(best).get(xc).i32(offs[0]! + delta).i32Add().set(at);
      for (const o of offs.slice(1)) {
        f.get(xc).f32Load(o).set(v);
        f.get(v).get(best).f32Gt().set(cond);
        f.get(v).get(best).get(cond).select().set(best);
        f.get(xc).i32(o + delta).i32Add().get(at).get(cond).select().set(at);
      }
      f.get(at).get(at).f32Load(0).get(yc).f32Load(0).f32Add().f32Store(0);
    } else {
      f.get(yc).f32Load(0).f32Const(inv).f32Mul().set(g);
      for (const o of offs) f.get(xc).get(xc).f32Load(o).get(g).f32Add().f32Store(o);
    }
  };

  const rowRuns = runs(Ho, kH, sh, ph, H);
  const colRuns = runs(Wo, kW, sw, pw, W);
  f.assign(xp, base).assign(yp, k.y);
  f.repeat(cp, planes, () => {
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
 * 2×2 max pooling with stride 2, four outputs at a time: rows 2i and 2i+1 of eight inputs each,
 * their vertical maxima m0, m1 (lanes 0–3, 4–7), then max(even lanes, odd lanes). A ragged end of
 * a row is computed from the last four outputs again (Wo ≥ 4), overlapping the vector before.
 */
function maxPool2x2(f: Body, k: PoolKernel, [cp, cr, cc, xr, yr, xc, yc]: Local[]): void {
  const { planes, W, Ho, Wo, H } = k;
  const [m0, m1] = [f.local('v128'), f.local('v128')];
  const vec = (xo: number, yo: number) => {
    f.get(xc).v128Load(xo).get(xc).v128Load(xo + 4 * W).f32x4('max').set(m0);
    f.get(xc).v128Load(xo + 16).get(xc).v128Load(xo + 16 + 4 * W).f32x4('max').set(m1);
    f.get(yc);
    f.get(m0).get(m1).i32x4Shuffle([0, 2, 4, 6]).get(m0).get(m1).i32x4Shuffle([1, 3, 5, 7]).f32x4('max');
    f.v128Store(yo);
  };
  const full = Math.floor(Wo / 4);
  f.assign(xr, k.x!).assign(yr, k.y);
  f.repeat(cp, planes, () => {
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
    // rows past 2·Ho (an odd H) belong to no window
    if (H > 2 * Ho) f.bump(xr, 4 * (H - 2 * Ho) * W);
  });
}

/** n floats at `at` set to 0. */
function zero(f: Body, at: number, n: number, counter: Local, ptr: Local): void {
  const vecs = Math.floor(n / 4);
  f.assign(ptr, at);
  if (vecs > 0)
    f.repeat(counter, vecs, () => {
      f.get(ptr).f32x4Const(0).v128Store(0);
      f.bump(ptr, 16);
    });
  for (let o = 0; o < n % 4; o++) f.get(ptr).f32x4Const(0).f32x4ExtractLane(0).f32Store(4 * o);
}

export const isPool = (op: string): op is PoolOp => op === 'max_pool' || op === 'avg_pool' || op === 'max_pool_grad' || op === 'avg_pool_grad';

/**
 * The kernel of a pooling op whose arrays are in the memory (`address` of operand k, or of the
 * result for k = -1), or undefined for the flat module's loops.
 */
export function poolKernel(op: PoolOp, attrs: { kernel: number[]; stride: number[]; padding: number[] }, xShape: readonly number[], yShape: readonly number[], address: (k: number) => number | undefined): PoolKernel | undefined {
  const [N, C, H, W] = xShape as number[];
  const [, , Ho, Wo] = yShape as number[];
  const grad = op === 'max_pool_grad' || op === 'avg_pool_grad';
  const x = op === 'avg_pool_grad' ? undefined : address(0);
  const y = op === 'max_pool_grad' ? address(1) : op === 'avg_pool_grad' ? address(0) : address(-1);
  const dx = grad ? address(-1) : undefined;
  if (y === undefined || (op !== 'avg_pool_grad' && x === undefined) || (grad && dx === undefined)) return undefined;
  return { op, planes: N! * C!, H: H!, W: W!, Ho: Ho!, Wo: Wo!, kernel: attrs.kernel, stride: attrs.stride, padding: attrs.padding, x, y, dx };
}
