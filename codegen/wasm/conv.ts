// WebAssembly SIMD convolution kernels: implicit GEMM through the register-tiled matmul of
// ./matmul.ts. x [N, C, H, W], w [O, C/G, kH, kW], y [N, O, Ho, Wo]; S = Ho·Wo, kk = kH·kW,
// Kg = (C/G)·kk, Og = O/G. Per image n and group g:
//
//   conv              col[n, c, tap, s] = x[n, c, window(tap, s)]          (im2col, [C·kk, S] an image)
//                     y[n, g] = w[g] · col[n, g]                            [Og,Kg]·[Kg,S]
//   conv_input_grad   col[n, g] = w[g]ᵀ · dy[n, g]                          [Kg,Og]·[Og,S]
//                     dx[n, c, window(tap, s)] += col[n, c, tap, s]         (col2im, a scatter-add)
//   conv_weight_grad  col[n] as the forward's, then
//                     dw[o, kg] = Σ_chunk Σ_(n in chunk) Σ_s dy[n, o, s] · col[n, kg, s]
//
// The images are in a fixed number of chunks (CHUNKS); each kernel's col holds one
// image per chunk, reused image after image, so that an image's col is still in cache when it is
// read (the image's im2col, then its matmuls; its matmuls, then its col2im; its im2col, then its
// dot products). Each kernel computes a range, the blocks of threads: of images for the forward
// and the input gradient (whole chunks: each image's outputs are its own), of chunks for the
// weight gradient, whose partial sums are one set per chunk, added in chunk order by a kernel of
// their own after the chunks (`convSumBody`). So a block computes exactly what the whole kernel
// does. (Keeping every image's col in the forward and reading it in the weight gradient instead
// of its own im2col measured slower: the col of every image does not stay in cache.)
//
// Every size is a constant: the taps are unrolled, and for each tap the range of output rows and
// columns whose window position falls inside x is computed at build time, so padding is never
// visited. A kernel's im2col scratch is its own and is written only at positions inside x: the
// padded positions stay the zeros the memory starts with. Copies along a row are f32x4 when both
// sides are contiguous (stride 1), scalar otherwise.
//
// Where output rows are whole 8-column panels (horizontal stride 1, Wo a multiple of 8 up to 64)
// and Kg ≤ MATMUL_BLOCK, the forward and a stride-1 input gradient (a convolution of dy by the
// flipped weights) run output row by output row (`convRows`, ./conv-rows.ts): the row's col, Kg × Wo floats
// written as the matmul's panels, stays in L1 for the 4×8 register tiles that store straight into
// y (dx), so no image's col is written out and read back (the ResNet's 576 KB an image, beyond
// L2). Same tiles and order of sums as the matmul kernel: the same bits.

import type { Local } from './encode.js';
import { Body } from './encode.js';
import type { I32 } from './index-lines.js';
import { push, repeatN, text } from './index-lines.js';
import { DEFAULT_TILE, MATMUL_BLOCK, matmulInto, PANEL_MIN_FLOATS } from './matmul.js';
import { convRows } from './conv-rows.js';

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

/**
 * A kernel as its code reads it: the static module's ConvKernel, or the symbolic module's
 * (codegen/wasm/symbolic-forms.ts), built once with its number of images N and the addresses of
 * x and y (dx, dy) run-time values of its parameter block; w (dw), a param's, is a number there
 * too. Where N is a run-time value, the chunks' sizes are computed at the kernel's start
 * (`chunking`) and its scratch holds CHUNKS chunks, the most of any N.
 */
export type ConvCode = Omit<ConvKernel, 'N' | 'x' | 'y'> & { readonly N: I32; readonly x: I32; readonly y: I32 };

/** The chunks of images: each has its col (one image at a time) and, in a weight gradient, its partial sums; threads take whole chunks. */
export const CHUNKS = 8;

/** The chunks of a batch of N images, and the images in each (the last may have fewer). */
export function chunksOf(N: number): { chunks: number; per: number } {
  const per = Math.max(1, Math.ceil(N / Math.max(1, Math.min(N, CHUNKS))));
  return { chunks: Math.ceil(N / per), per };
}

/** The images per chunk and the chunks as the code reads them, and the chunks the scratch is laid out for (see ConvCode). */
interface Chunking {
  readonly per: I32;
  readonly chunks: I32;
  readonly slots: number;
}

/** chunksOf(N) as numbers, or (a run-time N) computed into locals: per = ⌈N / CHUNKS⌉ over CHUNKS images, else 1; chunks = ⌈N / per⌉. */
function chunking(f: Body, N: I32): Chunking {
  if (typeof N === 'number') {
    const { chunks, per } = chunksOf(N);
    return { per, chunks, slots: chunks };
  }
  const [per, chunks] = [f.local('i32'), f.local('i32')];
  push(push(f, N).i32(CHUNKS - 1).i32Add().i32(CHUNKS).i32DivU().i32(1), N).i32(CHUNKS).i32GtS().select().set(per);
  push(f, N).get(per).i32Add().i32(1).i32Sub().get(per).i32DivU().set(chunks);
  return { per: { push: (g) => void g.get(per), text: 'per' }, chunks: { push: (g) => void g.get(chunks), text: 'chunks' }, slots: CHUNKS };
}

/** x (dx) and y (dy) as the matmuls' constant addresses take them: a number, else 0 and the run-time value to add to the image's offset. */
function split(a: I32): [number, I32 | undefined] {
  return typeof a === 'number' ? [a, undefined] : [0, a];
}

/** offset += a's run-time value, where it has one. */
function addTo(f: Body, offset: Local, rt: I32 | undefined): void {
  if (rt !== undefined) push(f.get(offset), rt).i32Add().set(offset);
}

/**
 * Floats of the panel a forward or input-gradient kernel copies its matmul's B into, one panel at a
 * time (./matmul.ts `panelled`: col or dy, whose rows are S floats apart, as K rows of 4V contiguous
 * floats), per chunk; 0 where S is not a multiple of 4 or B is at most PANEL_MIN_FLOATS (B is then
 * read in place).
 */
function panelFloats(k: Omit<ConvCode, 'scratch'>): number {
  if (k.op === 'conv_weight_grad' || (k.Ho * k.Wo) % 4 !== 0 || (k.op === 'conv' && inPanels(k))) return 0;
  const K = k.op === 'conv' ? (k.C / k.groups) * k.kH * k.kW : k.O / k.groups;
  // a B that stays in L1 as it is is read in place
  return K * k.Ho * k.Wo > PANEL_MIN_FLOATS ? K * 4 * DEFAULT_TILE.vecs : 0;
}

/** Floats of scratch a kernel needs: a col per chunk, and the weight gradient's partial sums (a vector per weight and chunk) or the others' panels (one per chunk). */
export function convScratch(k: Omit<ConvKernel, 'scratch'>): number {
  const { chunks } = chunksOf(k.N);
  // the input gradient as a convolution of dy: its col ([O·kk, H·W] an image) and its flipped weights, per chunk
  if (k.op === 'conv_input_grad' && gradInPanels(k)) return chunks * (k.O * k.kH * k.kW * k.H * k.W + k.C * (k.O / k.groups) * k.kH * k.kW);
  const col = chunks * k.C * k.kH * k.kW * k.Ho * k.Wo;
  return k.op === 'conv_weight_grad' ? col + 4 * chunks * k.O * (k.C / k.groups) * k.kH * k.kW : col + chunks * panelFloats(k);
}

/** How a kernel splits over threads: images in whole chunks for the forward and the input gradient, chunks for the weight gradient. */
export function convSplit(k: Omit<ConvKernel, 'scratch'>): { extent: number; align: number; work: number } | undefined {
  if (k.N * k.C * k.O * k.Ho * k.Wo === 0) return undefined;
  const work = k.N * k.O * k.Ho * k.Wo * (k.C / k.groups) * k.kH * k.kW;
  const { chunks, per } = chunksOf(k.N);
  return k.op === 'conv_weight_grad' ? { extent: chunks, align: 1, work } : { extent: k.N, align: per, work };
}

/** What a kernel computes, for a module's list of its kernels (the Winograd kernels say their own: winograd.ts). */
export function convWhat(c: Omit<ConvCode, 'scratch'>): string {
  const S = c.Ho * c.Wo;
  const Kg = (c.C / c.groups) * c.kH * c.kW;
  const Og = c.O / c.groups;
  const N = text(c.N);
  const gr = c.groups > 1 ? `${c.groups} groups × ` : '';
  const rows = byOutputRows(c) ? ', output row by output row' : '';
  if (c.op === 'conv') return `im2col, ${gr}${N} × [${Og},${Kg}]·[${Kg},${S}]${rows}`;
  // a stride-1 input gradient: the convolution of dy by the flipped weights, dy's col in panels, stored straight into dx
  if (c.op === 'conv_input_grad' && gradInPanels(c)) return `a convolution of dy by the flipped weights, ${gr}${N} × [${c.C / c.groups},${Og * c.kH * c.kW}]·[${Og * c.kH * c.kW},${c.H * c.W}], dy's col in panels${rows}, stored into dx`;
  if (c.op === 'conv_input_grad') return `${gr}${N} × [${Kg},${Og}]·[${Og},${S}] (A transposed), col2im`;
  const NS = typeof c.N === 'number' ? String(c.N * S) : `${N} * ${S}`;
  return `im2col, ${gr}[${Og},${NS}]·[${NS},${Kg}] as dot products along the positions, in chunks of images`;
}

/** The output positions [lo, hi) whose tap offset `t·d − pad + i·s` lies in [0, n). */
export function span(t: number, d: number, pad: number, s: number, n: number, out: number): [number, number] {
  const lo = Math.max(0, Math.ceil((pad - t * d) / s));
  const hi = Math.min(out, Math.floor((n - 1 + pad - t * d) / s) + 1);
  return [lo, Math.max(lo, hi)];
}

/**
 * The kernel as a function body. With `ranged`, a function of [start, end): images (the forward,
 * the input gradient) or chunks of images (the weight gradient), as `convSplit` says. A weight
 * gradient's partial sums become dw in `convSumBody`, which runs after it.
 */
export function convBody(k: ConvCode, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  const { N, C, O, kH, kW, Ho, Wo, groups: G } = k;
  const S = Ho * Wo;
  const kk = kH * kW;
  const Cg = C / G;
  const Og = O / G;
  const Kg = Cg * kk;
  if ((typeof N === 'number' ? N : 1) * C * O * S === 0) return f;
  const range = opts.ranged ? { start: f.param(0), end: f.param(1) } : undefined;
  if (k.op === 'conv_weight_grad') {
    weightGrad(f, k, range);
    return f;
  }
  if (k.op === 'conv_input_grad' && gradInPanels(k)) {
    inputGradInPanels(f, k, range);
    return f;
  }
  const i32 = () => f.local('i32');
  const [n, xn, cn, offA, offB, offC, offP] = Array.from({ length: 7 }, i32);
  const im2col = im2colWriter(f, k);
  const panelIm2col = k.op === 'conv' && inPanels(k) && !rowsFit(k) ? panelIm2colWriter(f, k) : undefined;
  const col = k.scratch;
  const ch = chunking(f, N);
  // the chunk's panel (see panelFloats), after every chunk's col
  const pf = panelFloats(k);
  const panel = pf ? col + 4 * ch.slots * C * kk * S : undefined;
  const [y, yRt] = split(k.y);
  // per image: x (dx) at xn, col at cn; the matmuls' offsets of B and C
  const image = () => {
    push(f.get(n).i32(4 * C * k.H * k.W).i32Mul(), k.x).i32Add().set(xn);
    // the image's col: its chunk's
    push(f.get(n), ch.per).i32DivU().i32(4 * C * kk * S).i32Mul().set(offA);
    f.get(offA).i32(col).i32Add().set(cn);
    if (pf) push(f.get(n), ch.per).i32DivU().i32(4 * pf).i32Mul().set(offP);
    if (k.op === 'conv' && byOutputRows(k)) {
      push(f.get(n).i32(4 * O * S).i32Mul(), k.y).i32Add().set(offC);
      convRows(f, k, O, { a: k.w, xn, yn: offC, buf: cn });
    } else if (k.op === 'conv' && panelIm2col) {
      // the col written straight into the panels the matmul reads (no copy of a panel)
      panelIm2col(xn, cn);
      f.get(offA).set(offB).get(n).i32(4 * O * S).i32Mul().set(offC);
      addTo(f, offC, yRt);
      for (let g = 0; g < G; g++)
        matmulInto(f, {
          name: '', M: Og, N: S, K: Kg, batch: 1, transA: false, transB: false,
          a: k.w + 4 * g * Og * Kg, b: 0, c: y + 4 * g * Og * S, pack: col + 4 * g * Kg * S,
          aBatched: false, bBatched: false,
        }, { offsets: { b: offB, c: offC }, prepacked: true });
    } else if (k.op === 'conv') {
      im2col(xn, cn, false);
      f.get(offA).set(offB).get(n).i32(4 * O * S).i32Mul().set(offC);
      addTo(f, offC, yRt);
      for (let g = 0; g < G; g++)
        matmulInto(f, {
          name: '', M: Og, N: S, K: Kg, batch: 1, transA: false, transB: false,
          a: k.w + 4 * g * Og * Kg, b: col + 4 * g * Kg * S, c: y + 4 * g * Og * S,
          aBatched: false, bBatched: false, panel,
        }, { offsets: { b: offB, c: offC, panel: offP } });
    } else {
      f.get(n).i32(4 * O * S).i32Mul().set(offB).get(offA).set(offC);
      addTo(f, offB, yRt);
      for (let g = 0; g < G; g++)
        matmulInto(f, {
          name: '', M: Kg, N: S, K: Og, batch: 1, transA: true, transB: false,
          a: k.w + 4 * g * Og * Kg, b: y + 4 * g * Og * S, c: col + 4 * g * Kg * S,
          aBatched: false, bBatched: false, panel,
        }, { offsets: { b: offB, c: offC, panel: offP } });
      zeroAt(f, xn, C * k.H * k.W, offB, offC);
      im2col(xn, cn, true);
    }
  };
  if (range) {
    f.get(range.start).set(n);
    f.loopUntil(() => f.get(n).get(range.end).i32GeS(), () => {
      image();
      f.bump(n, 1);
    });
  } else if (typeof N === 'number') {
    f.assign(n, 0);
    f.repeat(f.local('i32'), N, () => {
      image();
      f.bump(n, 1);
    });
  } else {
    f.assign(n, 0);
    f.loopUntil(() => push(f.get(n), N).i32GeS(), () => {
      image();
      f.bump(n, 1);
    });
  }
  return f;
}

/**
 * The im2col of one image (x at `xn`, its col [C·kk, S] at `cn`), or with `add` its col2im
 * (x[window] += col). Leaves xn and cn as they were.
 */
function im2colWriter(f: Body, k: Geometry): (xn: Local, cn: Local, add: boolean) => void {
  const { C, H, W, kH, kW, Ho, Wo } = k;
  const [sh, sw] = k.stride as [number, number];
  const [dh, dw] = k.dilation as [number, number];
  const [pt, pl] = k.padding as [number, number];
  const S = Ho * Wo;
  const kk = kH * kW;
  const i32 = () => f.local('i32');
  const [cc, ci, cj, xb, dc, src, dst, sr, dr] = Array.from({ length: 9 }, i32);

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

  return (xn, cn, add) => {
    f.get(xn).set(xb).get(cn).set(dc);
    // the channels of every group in turn: col's rows are (c, tap) for c over all C
    f.repeat(cc, C, () => {
      for (let p = 0; p < kH; p++) {
        const [i0, i1] = span(p, dh, pt, sh, H, Ho);
        for (let q = 0; q < kW; q++) {
          const [j0, j1] = span(q, dw, pl, sw, W, Wo);
          if (i1 <= i0 || j1 <= j0) continue;
          const tap = p * kW + q;
          f.get(xb).i32(4 * ((i0 * sh - pt + p * dh) * W + j0 * sw - pl + q * dw)).i32Add().set(sr);
          f.get(dc).i32(4 * (tap * S + i0 * Wo + j0)).i32Add().set(dr);
          f.repeat(ci, i1 - i0, () => {
            f.get(sr).set(src).get(dr).set(dst);
            row(j1 - j0, 4 * sw, 4, add);
            f.bump(sr, 4 * sh * W).bump(dr, 4 * Wo);
          });
        }
      }
      f.bump(xb, 4 * H * W).bump(dc, 4 * kk * S);
    });
  };
}

/** The panels' width in floats: the matmul tile's columns (./matmul.ts `panelled`). */
export const PANEL = 4 * DEFAULT_TILE.vecs;
/** The widest output row whose vectors `panelIm2colWriter` unrolls. */
const PANEL_ROW_MAX = 64;

/**
 * Whether a forward's col is written straight into panels (`panelIm2colWriter`): output rows of
 * whole panels (Wo a multiple of the panel's width, at most PANEL_ROW_MAX), read along x's rows
 * (horizontal stride 1), so that 4 output columns are 4 contiguous floats of x and of a panel row.
 */
function inPanels(k: Geometry): boolean {
  return k.stride[1] === 1 && k.Wo % PANEL === 0 && k.Wo <= PANEL_ROW_MAX;
}

/** What the panel im2col reads of a convolution: its input's and output's sizes, taps and steps. */
export type Geometry = Pick<ConvKernel, 'C' | 'H' | 'W' | 'kH' | 'kW' | 'Ho' | 'Wo' | 'groups' | 'stride' | 'padding' | 'dilation'>;

/**
 * A stride-1 convolution's input gradient as a convolution of dy (`inputGradInPanels`):
 * dx[c, a, b] = Σ_(o, p', q') w'[c, o, p', q'] · dy[o, a − pt' + p'·dh, b − pl' + q'·dw], with the
 * taps flipped, w'[c, o, p', q'] = w[o, c, kH − 1 − p', kW − 1 − q'], and the padding
 * pt' = dh·(kH − 1) − pt (pl' likewise): the geometry of that convolution.
 */
function dyGeometry(k: Omit<ConvCode, 'scratch'>): Geometry {
  const [dh, dw] = k.dilation as [number, number];
  const [pt, pl] = k.padding as [number, number];
  return {
    C: k.O, H: k.Ho, W: k.Wo, kH: k.kH, kW: k.kW, Ho: k.H, Wo: k.W, groups: k.groups,
    stride: [1, 1], dilation: k.dilation, padding: [dh * (k.kH - 1) - pt, dw * (k.kW - 1) - pl],
  };
}

/** Whether an input gradient runs as a convolution of dy whose col is written in panels (stride 1; dx's rows whole panels). */
export function gradInPanels(k: Omit<ConvCode, 'scratch'>): boolean {
  return k.stride[0] === 1 && k.stride[1] === 1 && inPanels(dyGeometry(k));
}

/** Whether a forward, or an input gradient run as a convolution of dy (`gradInPanels`), runs output row by output row (`convRows`): the kernels' choice and the kernel list's words. */
export function byOutputRows(k: Omit<ConvCode, 'scratch'>): boolean {
  if (k.op === 'conv') return rowsFit(k);
  return k.op === 'conv_input_grad' && gradInPanels(k) && rowsFit(dyGeometry(k));
}

/**
 * The input gradient of a stride-1 convolution as the convolution of dy that `dyGeometry` gives:
 * the flipped weights w' (per group [Cg, Og·kk]) written once per call into its first
 * chunk's slot, then per image dx[n, g] = w'[g] · col[g] stored straight into dx (no col2im, no
 * zeroing of dx): row by output row where `rowsFit` (`convRows`: each row's col in L1), else the
 * image's col of dy in panels and the matmul kernel. Images in whole chunks, as the other path.
 */
function inputGradInPanels(f: Body, k: ConvCode, range?: { start: Local; end: Local }): void {
  const { N, C, O, H, W, kH, kW, Ho, Wo, groups: G } = k;
  const kk = kH * kW;
  const [Cg, Og] = [C / G, O / G];
  const Kd = Og * kk;
  const Sd = H * W;
  const ch = chunking(f, N);
  const colFloats = O * kk * Sd;
  const col = k.scratch;
  const wT = col + 4 * ch.slots * colFloats;
  const geometry = dyGeometry(k);
  const rows = byOutputRows(k);
  const writer = rows ? undefined : panelIm2colWriter(f, geometry);
  const [n, yn, cn, offA, offB, offC, sO, dO, s, d, co, cc] = Array.from({ length: 12 }, () => f.local('i32'));
  const [x, xRt] = split(k.x);
  // w' in the slot of the range's first chunk
  if (range) push(f.get(range.start), ch.per).i32DivU().i32(4 * C * Kd).i32Mul().set(offA);
  else f.assign(offA, 0);
  for (let g = 0; g < G; g++) {
    f.i32(k.w + 4 * g * Og * Cg * kk).set(sO);
    f.get(offA).i32(wT + 4 * g * Cg * Kd).i32Add().set(dO);
    f.repeat(co, Og, () => {
      f.get(sO).set(s).get(dO).set(d);
      f.repeat(cc, Cg, () => {
        for (let t = 0; t < kk; t++) f.get(d).get(s).f32Load(4 * (kk - 1 - t)).f32Store(4 * t);
        f.bump(s, 4 * kk).bump(d, 4 * Kd);
      });
      f.bump(sO, 4 * Cg * kk).bump(dO, 4 * kk);
    });
  }
  const image = () => {
    push(f.get(n).i32(4 * O * Ho * Wo).i32Mul(), k.y).i32Add().set(yn);
    push(f.get(n), ch.per).i32DivU().i32(4 * colFloats).i32Mul().set(offB);
    f.get(offB).i32(col).i32Add().set(cn);
    if (rows) {
      push(f.get(n).i32(4 * C * Sd).i32Mul(), k.x).i32Add().set(offC);
      convRows(f, geometry, C, { a: wT, aOff: offA, xn: yn, yn: offC, buf: cn });
      return;
    }
    writer!(yn, cn);
    f.get(n).i32(4 * C * Sd).i32Mul().set(offC);
    addTo(f, offC, xRt);
    for (let g = 0; g < G; g++)
      matmulInto(f, {
        name: '', M: Cg, N: Sd, K: Kd, batch: 1, transA: false, transB: false,
        a: wT + 4 * g * Cg * Kd, b: 0, c: x + 4 * g * Cg * Sd, pack: col + 4 * g * Kd * Sd,
        aBatched: false, bBatched: false,
      }, { offsets: { a: offA, b: offB, c: offC }, prepacked: true });
  };
  if (range) f.get(range.start).set(n);
  else f.assign(n, 0);
  f.loopUntil(() => (range ? f.get(n).get(range.end) : push(f.get(n), N)).i32GeS(), () => {
    image();
    f.bump(n, 1);
  });
}

/**
 * The im2col of one image (x at `xn`) written as the panels of its col (at `cn`; each group's
 * [Kg, S] col at cn + 4·g·Kg·S): the panel of the columns s0..s0+7 is Kg rows of 8 floats at
 * 4·s0·Kg, its row (c, tap) the 8 positions of that tap. An output row holds Wo/8 whole panels, so
 * a tap's row of positions is Wo/4 vectors, each of 4 contiguous floats of x and of a panel row;
 * a vector that reaches into the padding copies its lanes inside x one by one, and the padded
 * positions are never written: they stay the zeros the scratch starts with (the same positions
 * every image). Leaves xn and cn as they were.
 */
function panelIm2colWriter(f: Body, k: Geometry): (xn: Local, cn: Local) => void {
  const { C, H, W, kH, kW, Ho, Wo, groups: G } = k;
  const [sh] = k.stride as [number, number];
  const [dh, dw] = k.dilation as [number, number];
  const [pt, pl] = k.padding as [number, number];
  const S = Ho * Wo;
  const kk = kH * kW;
  const Cg = C / G;
  const Kg = Cg * kk;
  const [cc, ci, xb, dc, sr, dr] = Array.from({ length: 6 }, () => f.local('i32'));
  /** Bytes of a panel, and from one output row's panels to the next row's. */
  const panelBytes = 4 * PANEL * Kg;
  const rowBytes = (Wo / PANEL) * panelBytes;
  return (xn, cn) => {
    f.get(xn).set(xb);
    for (let g = 0; g < G; g++) {
      f.get(cn).i32(4 * g * Kg * S).i32Add().set(dc);
      f.repeat(cc, Cg, () => {
        for (let p = 0; p < kH; p++) {
          const [i0, i1] = span(p, dh, pt, sh, H, Ho);
          for (let q = 0; q < kW; q++) {
            const [j0, j1] = span(q, dw, pl, 1, W, Wo);
            if (i1 <= i0 || j1 <= j0) continue;
            const tap = p * kW + q;
            // sr: x at output column j0 of output row i; dr: the panel row of (c, tap) for output row i
            f.get(xb).i32(4 * ((i0 * sh - pt + p * dh) * W + j0 - pl + q * dw)).i32Add().set(sr);
            f.get(dc).i32(i0 * rowBytes + 4 * PANEL * tap).i32Add().set(dr);
            f.repeat(ci, i1 - i0, () => {
              for (let v = 0; v < Wo / 4; v++) {
                const at = Math.floor((4 * v) / PANEL) * panelBytes + 4 * ((4 * v) % PANEL);
                const lo = Math.max(4 * v, j0);
                const hi = Math.min(4 * v + 4, j1);
                if (lo === 4 * v && hi === 4 * v + 4) f.get(dr).get(sr).v128Load(4 * (lo - j0)).v128Store(at);
                else for (let s = lo; s < hi; s++) f.get(dr).get(sr).f32Load(4 * (s - j0)).f32Store(at + 4 * (s - 4 * v));
              }
              f.bump(sr, 4 * sh * W).bump(dr, rowBytes);
            });
          }
        }
        f.bump(xb, 4 * k.H * W).bump(dc, 4 * PANEL * kk);
      });
    }
  };
}

/**
 * The vectors of positions a weight gradient's accumulators sum (in f32, 4 lanes each) before
 * they are added into the chunk's partial sums: so no f32 sum runs over a whole image's positions
 * (50,176 of a 224×224 map), and the partial sums over images and blocks stay short.
 */
export const SUM_BLOCK = 64;

/** Register tile of the weight gradient's dot products: rows of dy (output channels) × rows of col. */
function dotTile(Og: number): [number, number] {
  return Og % 3 === 0 ? [3, 3] : Og === 1 ? [1, 8] : Og === 2 ? [2, 4] : [4, 2];
}

/** Where a weight gradient's col (one image per chunk) and partial sums ([chunks, O, Kg] vectors) are. */
function weightGradLayout(k: ConvCode, slots: number): { col: number; part: number } {
  return { col: k.scratch, part: k.scratch + 4 * slots * k.C * k.kH * k.kW * k.Ho * k.Wo };
}

/**
 * Σ_(n in chunk) Σ_s dy[n, o, s] · col[n, kg, s] for the chunks of the range (all of them without
 * one): per image its im2col into the chunk's col, then a register tile of R output channels
 * × T col rows whose R·T vector accumulators run along s together (R + T loads for R·T
 * multiply-adds), added into the chunk's vector of partial sums per weight (after every
 * SUM_BLOCK vectors of a long row, and at its end). The last vector of a
 * ragged row is masked on both sides (it reads into the next row).
 */
function weightGrad(f: Body, k: ConvCode, range?: { start: Local; end: Local }): void {
  const { N, C, O, kH, kW, Ho, Wo, groups: G } = k;
  const S = Ho * Wo;
  const kk = kH * kW;
  const Cg = C / G;
  const Og = O / G;
  const Kg = Cg * kk;
  const ch = chunking(f, N);
  const { col, part } = weightGradLayout(k, ch.slots);
  const { chunks, per } = ch;
  const i32 = () => f.local('i32');
  const [co, ck, cs, img, cimg, aRow, bRow, aP, bP, ptr, c, n, nEnd, xn, partC] = Array.from({ length: 15 }, i32);
  const im2col = im2colWriter(f, k);
  const [R, T] = dotTile(Og);
  const acc = Array.from({ length: R * T }, () => f.local('v128'));
  const dyv = Array.from({ length: R }, () => f.local('v128'));
  const cv = f.local('v128');
  const full = Math.floor(S / 4);
  const block = full > SUM_BLOCK ? f.local('i32') : undefined;
  const rest = S % 4;
  const mask = [0, 1, 2, 3].map((l) => (l < rest ? -1 : 0)) as [number, number, number, number];
  /** One tile of r rows × t cols at aRow (dy) and bRow (col); its partials at partAt + o·Kg·16 + kg·16. */
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
        f.get(bP).v128Load(4 * b * S);
        if (masked) f.i32x4Lanes(mask).v128And();
        f.set(cv);
        for (let a = 0; a < r; a++) {
          const c = acc[a * T + b]!;
          f.get(dyv[a]!).get(cv).madd(c).set(c);
        }
      }
    };
    const vectors = (count: number) =>
      f.repeat(cs, count, () => {
        step(false);
        f.bump(aP, 16).bump(bP, 16);
      });
    /** The accumulators added into the partial sums (and zeroed, `more` where more positions follow). */
    const flush = (more: boolean) => {
      for (let a = 0; a < r; a++)
        for (let b = 0; b < t; b++) {
          const off = 16 * (a * Kg + b);
          f.get(partAt).get(partAt).v128Load(off).get(acc[a * T + b]!).f32x4('add').v128Store(off);
          if (more) f.f32x4Const(0).set(acc[a * T + b]!);
        }
    };
    // a long row (more than SUM_BLOCK vectors) flushes into the partial sums after every SUM_BLOCK vectors
    if (full > SUM_BLOCK) {
      f.repeat(block!, Math.floor(full / SUM_BLOCK), () => {
        vectors(SUM_BLOCK);
        flush(true);
      });
      if (full % SUM_BLOCK) vectors(full % SUM_BLOCK);
    } else if (full > 0) vectors(full);
    if (rest) step(true);
    flush(false);
  };
  const runs = (n: number, size: number) => [
    ...(Math.floor(n / size) > 0 ? [{ start: 0, count: Math.floor(n / size), size }] : []),
    ...(n % size ? [{ start: n - (n % size), count: 1, size: n % size }] : []),
  ];
  const partAt = f.local('i32');
  const partRow = f.local('i32');
  /** One image (dy at img, col at cimg) into the chunk's partials at partC. */
  const image = () => {
    for (let g = 0; g < G; g++)
      for (const rr of runs(Og, R)) {
        f.get(img).i32(4 * (g * Og + rr.start) * S).i32Add().set(aRow);
        f.get(partC).i32(16 * (g * Og + rr.start) * Kg).i32Add().set(partRow);
        f.repeat(co, rr.count, () => {
          for (const tr of runs(Kg, T)) {
            f.get(cimg).i32(4 * (g * Kg + tr.start) * S).i32Add().set(bRow);
            f.get(partRow).i32(16 * tr.start).i32Add().set(partAt);
            f.repeat(ck, tr.count, () => {
              tile(rr.size, tr.size, partAt);
              f.bump(bRow, 4 * tr.size * S).bump(partAt, 16 * tr.size);
            });
          }
          f.bump(aRow, 4 * rr.size * S).bump(partRow, 16 * rr.size * Kg);
        });
      }
  };
  if (range) f.get(range.start).set(c);
  else f.assign(c, 0);
  f.loopUntil(() => (range ? f.get(c).get(range.end) : push(f.get(c), chunks)).i32GeS(), () => {
    // the chunk's partials, zeroed; its images [c·per, min(N, (c + 1)·per))
    f.get(c).i32(16 * O * Kg).i32Mul().i32(part).i32Add().set(partC);
    zeroAt(f, partC, 4 * O * Kg, cs, ptr);
    push(push(f.get(c), per).i32Mul().tee(n), per).i32Add().set(nEnd);
    f.when(() => push(f.get(nEnd), N).i32GtS(), () => push(f, N).set(nEnd));
    f.loopUntil(() => f.get(n).get(nEnd).i32GeS(), () => {
      push(f.get(n).i32(4 * O * S).i32Mul(), k.y).i32Add().set(img);
      f.get(c).i32(4 * C * kk * S).i32Mul().i32(col).i32Add().set(cimg);
      push(f.get(n).i32(4 * C * k.H * k.W).i32Mul(), k.x).i32Add().set(xn);
      im2col(xn, cimg, false);
      image();
      f.bump(n, 1);
    });
    f.bump(c, 1);
  });
}

/** dw[o, kg] = the sum of the lanes of its partial vectors, added over the chunks in order (dw is [O, Kg] in the order of the partials). */
export function convSumBody(k: ConvCode): Body {
  const f = new Body();
  const { N, C, O, kH, kW, Ho, Wo, groups: G } = k;
  if ((typeof N === 'number' ? N : 1) * C * O * Ho * Wo === 0) return f;
  const Kg = (C / G) * kH * kW;
  const [cs, aP, bP] = [f.local('i32'), f.local('i32'), f.local('i32')];
  const cv = f.local('v128');
  const { chunks, slots } = chunking(f, N);
  const { part } = weightGradLayout(k, slots);
  // a run-time number of chunks: theirs added in a loop, in the same order
  const [q, cc] = typeof chunks === 'number' ? [] : [f.local('i32'), f.local('i32')];
  f.assign(aP, part).assign(bP, k.w);
  f.repeat(cs, O * Kg, () => {
    f.get(aP).v128Load(0);
    if (typeof chunks === 'number') for (let c = 1; c < chunks; c++) f.get(aP).v128Load(16 * c * O * Kg).f32x4('add');
    else {
      f.set(cv).get(aP).set(q!);
      // (chunks − 1 more; a call binds every size to at least 1, the module's bindDim (codegen/module.ts): the guard only keeps N = 0 from counting down from −1)
      const more: I32 = { push: (g) => void push(push(g, chunks), chunks).i32(0).i32GtS().i32Sub(), text: 'chunks − 1' };
      repeatN(f, cc!, more, () => {
        f.bump(q!, 16 * O * Kg);
        f.get(cv).get(q!).v128Load(0).f32x4('add').set(cv);
      });
      f.get(cv);
    }
    f.set(cv);
    f.get(bP);
    f.get(cv).f32x4ExtractLane(0).get(cv).f32x4ExtractLane(1).f32Add();
    f.get(cv).f32x4ExtractLane(2).get(cv).f32x4ExtractLane(3).f32Add().f32Add();
    f.f32Store(0);
    f.bump(aP, 16).bump(bP, 4);
  });
  return f;
}

/** n floats from the address in `at` set to 0. */
function zeroAt(f: Body, at: Local, n: number, counter: Local, ptr: Local): void {
  const vecs = Math.floor(n / 4);
  f.get(at).set(ptr);
  if (vecs > 0)
    f.repeat(counter, vecs, () => {
      f.get(ptr).f32x4Const(0).v128Store(0);
      f.bump(ptr, 16);
    });
  for (let o = 0; o < n % 4; o++) f.get(ptr).f32x4Const(0).f32x4ExtractLane(0).f32Store(4 * o);
}

/**
 * Whether a convolution (a forward, or an input gradient's convolution of dy) runs output row by
 * output row (`convRows`): its col in panels (`inPanels`), and K = (C/G)·kH·kW at most
 * MATMUL_BLOCK, so that each product is one f32 sum along K as the matmul kernel's.
 */
function rowsFit(k: Geometry): boolean {
  return inPanels(k) && (k.C / k.groups) * k.kH * k.kW <= MATMUL_BLOCK;
}
