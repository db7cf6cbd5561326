// WebAssembly SIMD convolution kernels: implicit GEMM through the register-tiled matmul of
// ./matmul.ts. x [N, C, H, W], w [O, C/G, kH, kW], y [N, O, Ho, Wo]; S = Ho·Wo, kk = kH·kW,
// Kg = (C/G)·kk, Og = O/G. Per group g:
//
//   conv              col[n, c, tap, s] = x[n, c, window(tap, s)]          (im2col, [N, C·kk, S])
//                     y[n, g] = w[g] · col[n, g]                            N × [Og,Kg]·[Kg,S]
//   conv_input_grad   col[n, g] = w[g]ᵀ · dy[n, g]                          N × [Kg,Og]·[Og,S]
//                     dx[n, c, window(tap, s)] += col[n, c, tap, s]         (col2im, a scatter-add)
//   conv_weight_grad  colT[g, (n, s), (c, tap)] = x[n, c, window(tap, s)]   (im2col, [G, N·S, Kg])
//                     dyT[o, (n, s)] = dy[n, o, s]
//                     dw[g] = dyT[g] · colT[g]                              [Og,N·S]·[N·S,Kg]
//
// Every size is a constant: the taps are unrolled, and for each tap the range of output rows and
// columns whose window position falls inside x is computed at build time, so padding is never
// visited. A kernel's im2col scratch is its own and is written only at positions inside x: the
// padded positions stay the zeros the memory starts with. Copies along a row are f32x4 when both
// sides are contiguous (stride 1), scalar otherwise.

import type { Local } from './encode.js';
import { Body } from './encode.js';
import { matmulInto } from './matmul.js';

export type ConvOp = 'conv' | 'conv_input_grad' | 'conv_weight_grad';

export interface ConvKernel {
  readonly op: ConvOp;
  readonly N: number;
  readonly C: number;
  readonly H: number;
  readonly W: number;
  readonly O: number;
  readonly kH: number;
  readonly kW: number;
  readonly Ho: number;
  readonly Wo: number;
  readonly groups: number;
  readonly stride: readonly number[];
  /** [top, left, bottom, right] */
  readonly padding: readonly number[];
  readonly dilation: readonly number[];
  /** Byte addresses: x (dx for the input gradient), w (dw for the weight gradient), y (dy for both gradients). */
  readonly x: number;
  readonly w: number;
  readonly y: number;
  /** Byte address of the kernel's own scratch (convScratch floats). */
  readonly scratch: number;
}

/** Floats of scratch a kernel needs: its col (and dyT for the weight gradient). */
export function convScratch(k: Omit<ConvKernel, 'scratch'>): number {
  if (k.op !== 'conv_weight_grad') return k.N * k.C * k.kH * k.kW * k.Ho * k.Wo;
  // col with its rows padded to whole vectors (the padding stays 0), then a vector of partial sums per weight
  return k.N * k.C * k.kH * k.kW * align4(k.Ho * k.Wo) + 4 * k.O * (k.C / k.groups) * k.kH * k.kW;
}

const align4 = (n: number) => Math.ceil(n / 4) * 4;

/** The output positions [lo, hi) whose tap offset `t·d − pad + i·s` lies in [0, n). */
function span(t: number, d: number, pad: number, s: number, n: number, out: number): [number, number] {
  const lo = Math.max(0, Math.ceil((pad - t * d) / s));
  const hi = Math.min(out, Math.floor((n - 1 + pad - t * d) / s) + 1);
  return [lo, Math.max(lo, hi)];
}

/** Float strides of a col layout: per image, group, channel of the group, tap, output row and column. */
interface Layout {
  readonly n: number;
  readonly g: number;
  readonly c: number;
  readonly tap: number;
  readonly row: number;
  readonly col: number;
}

export function convBody(k: ConvKernel): Body {
  const f = new Body();
  const { N, C, H, W, O, kH, kW, Ho, Wo, groups: G } = k;
  const [sh, sw] = k.stride as [number, number];
  const [dh, dw] = k.dilation as [number, number];
  const [pt, pl] = k.padding as [number, number];
  const S = Ho * Wo;
  const kk = kH * kW;
  const Cg = C / G;
  const Og = O / G;
  const Kg = Cg * kk;
  if (N * C * O * S === 0) return f;
  const i32 = () => f.local('i32');
  const [cn, cg, cc, ci, cj, xb, dn, dg, dc, src, dst, sr, dr] = Array.from({ length: 13 }, i32);

  /** One row: `count` elements, x side at src (stride xs bytes), col side at dst (stride ds bytes). */
  const row = (count: number, xs: number, ds: number, add: boolean) => {
    const vec = xs === 4 && ds === 4;
    const step = vec ? 4 : 1;
    const chunks = Math.floor(count / step);
    const one = (o: number, v: boolean) => {
      // copy: col[dst] = x[src];  add: x[src] += col[dst]
      if (v) {
        if (add) f.get(src).get(src).v128Load(o * xs).get(dst).v128Load(o * ds).f32x4('add').v128Store(o * xs);
        else f.get(dst).get(src).v128Load(o * xs).v128Store(o * ds);
      } else if (add) f.get(src).get(src).f32Load(o * xs).get(dst).f32Load(o * ds).f32Add().f32Store(o * xs);
      else f.get(dst).get(src).f32Load(o * xs).f32Store(o * ds);
    };
    const UNROLL = 16;
    let rest = chunks * step; // the element the pointers' offsets start from after the chunks
    if (chunks <= UNROLL) {
      for (let o = 0; o < chunks; o++) one(o * step, vec);
      rest = 0;
    } else
      f.repeat(cj, chunks, () => {
        one(0, vec);
        f.bump(src, xs * step).bump(dst, ds * step);
      });
    for (let o = chunks * step; o < count; o++) one(o - rest, false);
  };

  /** Every tap of every channel of every image, between x and a col of layout `l` at `col`. */
  const im2col: Im2col = (col, l, add) => {
    f.assign(xb, k.x).assign(dn, col);
    f.repeat(cn, N, () => {
      f.get(dn).set(dg);
      f.repeat(cg, G, () => {
        f.get(dg).set(dc);
        f.repeat(cc, Cg, () => {
          for (let p = 0; p < kH; p++) {
            const [i0, i1] = span(p, dh, pt, sh, H, Ho);
            for (let q = 0; q < kW; q++) {
              const [j0, j1] = span(q, dw, pl, sw, W, Wo);
              if (i1 <= i0 || j1 <= j0) continue;
              const tap = p * kW + q;
              f.get(xb).i32(4 * ((i0 * sh - pt + p * dh) * W + j0 * sw - pl + q * dw)).i32Add().set(sr);
              f.get(dc).i32(4 * (tap * l.tap + i0 * l.row + j0 * l.col)).i32Add().set(dr);
              f.repeat(ci, i1 - i0, () => {
                f.get(sr).set(src).get(dr).set(dst);
                row(j1 - j0, 4 * sw, 4 * l.col, add);
                f.bump(sr, 4 * sh * W).bump(dr, 4 * l.row);
              });
            }
          }
          f.bump(xb, 4 * H * W).bump(dc, 4 * l.c);
        });
        f.bump(dg, 4 * l.g);
      });
      f.bump(dn, 4 * l.n);
    });
  };

  const colNCS: Layout = { n: C * kk * S, g: Kg * S, c: kk * S, tap: S, row: Wo, col: 1 };
  const col = k.scratch;
  if (k.op === 'conv') {
    im2col(col, colNCS, false);
    for (let g = 0; g < G; g++)
      matmulInto(f, {
        name: '', M: Og, N: S, K: Kg, batch: N, transA: false, transB: false,
        a: k.w + 4 * g * Og * Kg, b: col + 4 * g * Kg * S, c: k.y + 4 * g * Og * S,
        aBatched: false, bBatched: true, epilogue: [],
        strides: { a: 0, b: 4 * C * kk * S, c: 4 * O * S },
      });
  } else if (k.op === 'conv_input_grad') {
    for (let g = 0; g < G; g++)
      matmulInto(f, {
        name: '', M: Kg, N: S, K: Og, batch: N, transA: true, transB: false,
        a: k.w + 4 * g * Og * Kg, b: k.y + 4 * g * Og * S, c: col + 4 * g * Kg * S,
        aBatched: false, bBatched: true, epilogue: [],
        strides: { a: 0, b: 4 * O * S, c: 4 * C * kk * S },
      });
    zero(f, k.x, N * C * H * W, cn, dst);
    im2col(col, colNCS, true);
  } else weightGrad(f, k, col, im2col);
  return f;
}

type Im2col = (col: number, l: Layout, add: boolean) => void;

/** Register tile of the weight gradient's dot products: rows of dy (output channels) × rows of col. */
function dotTile(Og: number): [number, number] {
  return Og % 3 === 0 ? [3, 3] : Og === 1 ? [1, 8] : Og === 2 ? [2, 4] : [4, 2];
}

/**
 * dw[o, kg] = Σ_n Σ_s dy[n, o, s] · col[n, kg, s]: the forward's im2col (rows padded to whole
 * vectors), then per image a register tile of R output channels × T col rows whose R·T vector
 * accumulators run along s together (R + T loads for R·T multiply-adds), added into a vector of
 * partial sums per weight; the four lanes of each are summed once at the end. The last vector of
 * a ragged row is masked on the dy side (the col side's padding is 0).
 */
function weightGrad(f: Body, k: ConvKernel, col: number, im2col: Im2col): void {
  const { N, C, O, kH, kW, Ho, Wo, groups: G } = k;
  const S = Ho * Wo;
  const Sp = align4(S);
  const kk = kH * kW;
  const Cg = C / G;
  const Og = O / G;
  const Kg = Cg * kk;
  const part = col + 4 * N * C * kk * Sp; // [O, Kg] vectors
  im2col(col, { n: C * kk * Sp, g: Kg * Sp, c: kk * Sp, tap: Sp, row: Wo, col: 1 }, false);
  const i32 = () => f.local('i32');
  const [cn, co, ck, cs, img, cimg, aRow, bRow, aP, bP, ptr] = Array.from({ length: 11 }, i32);
  zero(f, part, 4 * O * Kg, cs, ptr);
  const [R, T] = dotTile(Og);
  const acc = Array.from({ length: R * T }, () => f.local('v128'));
  const dyv = Array.from({ length: R }, () => f.local('v128'));
  const cv = f.local('v128');
  const full = Math.floor(S / 4);
  const rest = S % 4;
  const mask = [0, 1, 2, 3].map((l) => (l < rest ? -1 : 0)) as [number, number, number, number];
  /** One tile of r rows × t cols at aRow (dy) and bRow (col); its partials at `p` bytes past `part` + o·Kg·16 + kg·16. */
  const tile = (r: number, t: number, partAt: Local) => {
    for (let a = 0; a < r; a++) for (let b = 0; b < t; b++) f.f32x4Const(0).set(acc[a * T + b]!);
    f.get(aRow).set(aP).get(bRow).set(bP);
    const step = (masked: boolean) => {
      for (let a = 0; a < r; a++) {
        f.get(aP).v128Load(4 * a * S);
        if (masked) f.i32x4Lanes(mask).v128And();
        f.set(dyv[a]!);
      }
      for (let b = 0; b < t; b++) {
        f.get(bP).v128Load(4 * b * Sp).set(cv);
        for (let a = 0; a < r; a++) {
          const c = acc[a * T + b]!;
          f.get(c).get(dyv[a]!).get(cv).f32x4('mul').f32x4('add').set(c);
        }
      }
    };
    if (full > 0)
      f.repeat(cs, full, () => {
        step(false);
        f.bump(aP, 16).bump(bP, 16);
      });
    if (rest) step(true);
    for (let a = 0; a < r; a++)
      for (let b = 0; b < t; b++) {
        const off = 16 * (a * Kg + b);
        f.get(partAt).get(partAt).v128Load(off).get(acc[a * T + b]!).f32x4('add').v128Store(off);
      }
  };
  const runs = (n: number, size: number) => [
    ...(Math.floor(n / size) > 0 ? [{ start: 0, count: Math.floor(n / size), size }] : []),
    ...(n % size ? [{ start: n - (n % size), count: 1, size: n % size }] : []),
  ];
  const partAt = f.local('i32');
  const partRow = f.local('i32');
  f.assign(img, k.y).assign(cimg, col);
  f.repeat(cn, N, () => {
    for (let g = 0; g < G; g++)
      for (const rr of runs(Og, R)) {
        f.get(img).i32(4 * (g * Og + rr.start) * S).i32Add().set(aRow);
        f.assign(partRow, part + 16 * (g * Og + rr.start) * Kg);
        f.repeat(co, rr.count, () => {
          for (const tr of runs(Kg, T)) {
            f.get(cimg).i32(4 * (g * Kg + tr.start) * Sp).i32Add().set(bRow);
            f.get(partRow).i32(16 * tr.start).i32Add().set(partAt);
            f.repeat(ck, tr.count, () => {
              tile(rr.size, tr.size, partAt);
              f.bump(bRow, 4 * tr.size * Sp).bump(partAt, 16 * tr.size);
            });
          }
          f.bump(aRow, 4 * rr.size * S).bump(partRow, 16 * rr.size * Kg);
        });
      }
    f.bump(img, 4 * O * S).bump(cimg, 4 * C * kk * Sp);
  });
  // dw[o, kg] = the sum of its partial vector's lanes (dw is [O, Kg] in the order of the partials)
  f.assign(aP, part).assign(bP, k.w);
  f.repeat(cs, O * Kg, () => {
    f.get(bP).get(aP).v128Load(0).set(cv);
    f.get(cv).f32x4ExtractLane(0).get(cv).f32x4ExtractLane(1).f32Add();
    f.get(cv).f32x4ExtractLane(2).get(cv).f32x4ExtractLane(3).f32Add().f32Add();
    f.f32Store(0);
    f.bump(aP, 16).bump(bP, 4);
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
