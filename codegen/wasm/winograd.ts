// WebAssembly SIMD Winograd F(2×2, 3×3) kernels for 3×3, stride-1, undilated, ungrouped
// convolutions: the forward and the input gradient (a convolution of dy by the flipped weights
// with their channels transposed, as ./conv.ts `inputGradInPanels` treats it). Each 2×2 output
// tile is
//
//   y = Aᵀ [ Σ_c (G w[o, c] Gᵀ) ⊙ (Bᵀ d[c] B) ] A,     d[c] the tile's 4×4 input window,
//
// 16 multiplies per input channel for 36 of the direct convolution (2.25× fewer). Per call the
// weights are transformed once, U[o/4][p][o%4][c] (p the 16 positions of the transform), by an
// unsplit kernel of their own (`winogradWeightsBody`) into one copy every thread reads; per image
// its input is copied into a padded buffer (its borders never written: they stay the zeros the
// scratch starts with), then block by block of tile rows (V_FLOATS): their transformed input V,
// laid out per register tile's tiles (V[pair][p][c][8 tiles]: one tile's loads contiguous, never
// 4 KB apart), by 4 tiles a vector (the stride-2 columns of a tile row gathered by shuffles), then
// per register tile of 4 output channels × 4 or 8 tiles (of one tile row or two) the 16 products
// M[p] = U[p] · V[p] (each one f32 sum along the channels) into a small buffer, and their output
// transform stored straight into y (dx). Every output is written: nothing is zeroed or added to.
//
// Eligibility (`winogradFits`): 3×3, stride 1, dilation 1, groups 1, C and O multiples of 4 and
// at least 8, outputs of even height and a width a multiple of 8 (whole tiles, whole vectors of
// 4 tiles); an input gradient's paddings at most 2. Threads split the images in whole chunks as
// the direct kernels do (conv.ts `convSplit`): each chunk has its own slot of scratch (a range
// uses its first chunk's), after the one U. Where the Winograd scratch would outgrow the direct
// kernel's by more than WINOGRAD_EXTRA_BYTES (many channels) the direct kernel runs. The weight
// gradient (F(3×3, 2×2), the same eligibility) is ./winograd-weight.ts, on this file's input copy
// and transform.

import type { Local } from './encode.js';
import { Body } from './encode.js';
import type { ConvKernel } from './conv.js';
import { chunksOf, convScratch } from './conv.js';

/** The convolution the kernel computes: C input channels of H×W, O output channels of Ho×Wo, the top and left padding, byte addresses. */
export interface Geometry {
  readonly N: number;
  readonly C: number;
  readonly O: number;
  readonly H: number;
  readonly W: number;
  readonly Ho: number;
  readonly Wo: number;
  readonly pt: number;
  readonly pl: number;
  /** x (dy for the input gradient), y (dx), w */
  readonly src: number;
  readonly dst: number;
  readonly w: number;
  /** the input gradient: the weights flipped and their channels transposed */
  readonly grad: boolean;
}

export function geometry(k: Omit<ConvKernel, 'scratch'>): Geometry {
  const [pt, pl] = k.padding as [number, number];
  // the weight gradient's: the forward's, dy at dst and dw at w
  if (k.op !== 'conv_input_grad') return { N: k.N, C: k.C, O: k.O, H: k.H, W: k.W, Ho: k.Ho, Wo: k.Wo, pt, pl, src: k.x, dst: k.y, w: k.w, grad: false };
  return { N: k.N, C: k.O, O: k.C, H: k.Ho, W: k.Wo, Ho: k.H, Wo: k.W, pt: 2 - pt, pl: 2 - pl, src: k.y, dst: k.x, w: k.w, grad: true };
}

/** Whether a convolution kernel runs as Winograd: F(2×2, 3×3) a forward or input gradient, F(3×3, 2×2) a weight gradient (see the header). */
export function winogradFits(k: Omit<ConvKernel, 'scratch'>): boolean {
  if (k.kH !== 3 || k.kW !== 3 || k.groups !== 1) return false;
  if (k.stride.some((s) => s !== 1) || k.dilation.some((d) => d !== 1)) return false;
  if (k.C % 4 || k.O % 4 || k.C < 8 || k.O < 8 || k.N < 1) return false;
  if (k.op === 'conv_input_grad' && k.padding.some((p) => p < 0 || p > 2)) return false;
  if (k.padding.some((p) => p < 0)) return false;
  const g = geometry(k);
  if (!(g.Ho >= 2 && g.Ho % 2 === 0 && g.Wo % 8 === 0 && g.Ho + 2 >= g.H + g.pt && g.Wo + 2 >= g.W + g.pl)) return false;
  return 4 * winogradScratch(k) <= 4 * convScratch(k) + WINOGRAD_EXTRA_BYTES;
}

/**
 * Floats of V a block may hold (32 KB; a weight gradient's V and D together twice that). Blocks of
 * 2 tile rows (32 tiles) measured faster than 4 or 8 for the ResNet's 16 channels: 2.0 against
 * 2.2 ms a forward, 4.1 against 6.1 ms a forward and weight gradient (CPU time, load 7).
 */
const V_FLOATS = 8192;

/** The sizes the kernel is built from: tiles, the block of tile rows, the register tile's vectors of tiles, the scratch of a chunk. */
export function plan(g: Geometry, weightGrad = false) {
  const th = g.Ho / 2;
  const tw = g.Wo / 2;
  // tiles a register tile spans: 8 where a tile row holds whole pairs of vectors
  // a rows of one vector of tiles (4 tiles): its pairs are two tile rows (stack 2), where they come in twos
  const stack = tw === 4 && th % 2 === 0 ? 2 : 1;
  const Gt = tw % 8 === 0 || stack === 2 ? 2 : 1;
  let Rt = stack;
  const perTile = weightGrad ? 8 * (g.C + g.O) : 16 * g.C;
  for (let r = stack; r <= th; r += stack) if (th % r === 0 && perTile * r * tw <= V_FLOATS) Rt = r;
  // per pair (register tile's tiles) of a tile row, bytes from its first vector of tiles to its second in the padded input and in y
  const subX = stack === 2 ? 4 * 2 * (g.Wo + 2) : 32;
  const subY = stack === 2 ? 4 * 2 * g.Wo : 32;
  const pairs = (tw * stack) / (4 * Gt);
  const T = Rt * tw;
  const Hp = g.Ho + 2;
  const Wp = g.Wo + 2;
  const at4 = (n: number) => 4 * Math.ceil(n / 4);
  // ahead of the slots, the forwards' U (one copy: written by its own unsplit kernel before the split one reads it)
  const shared = weightGrad ? 0 : at4(16 * g.O * g.C);
  // the slot: D (the weight gradient's transformed dy; none for the forwards), the padded input, V, M (the forwards') or the partial sums ([16][O][C] vectors)
  const uF = weightGrad ? at4(16 * g.O * T) : 0;
  const xpF = at4(g.C * Hp * Wp);
  const vF = 16 * g.C * T;
  const mF = weightGrad ? 64 * g.O * g.C : 16 * 4 * Gt * 4;
  return { th, tw, Gt, Rt, T, stack, subX, subY, pairs, Hp, Wp, shared, u: 0, xp: 4 * uF, v: 4 * (uF + xpF), m: 4 * (uF + xpF + vF), slotFloats: uF + xpF + vF + mF };
}

/** Floats of scratch: the forwards' transformed weights, then a slot per chunk (its padded input, V and products; the weight gradient's D and partial sums). */
export function winogradScratch(k: Omit<ConvKernel, 'scratch'>): number {
  const p = plan(geometry(k), k.op === 'conv_weight_grad');
  return p.shared + chunksOf(k.N).chunks * p.slotFloats;
}

/**
 * Bytes of scratch a Winograd kernel may take beyond the direct kernel's (./conv.ts `convScratch`).
 * Its U (16·O·C floats, the direct kernel has none) and a weight gradient's partial sums (64·O·C
 * floats a chunk, the direct kernel's 36·O·C) outgrow the direct kernel's scratch with the
 * channels: beyond this margin the direct kernel runs instead, so a model's memory stays within
 * 4 MiB a convolution of the direct kernels' (a model that fits wasm's 4 GiB without Winograd
 * still fits with it, up to that margin). The ResNet's 16 to 64 channels stay well inside it.
 */
export const WINOGRAD_EXTRA_BYTES = 4 << 20;

/** The kernel list's description: the direct convolution's product shape (so bench/kernel-peak.mjs counts its flops), and that it runs as Winograd. */
export function winogradWhat(k: Omit<ConvKernel, 'scratch'>): string {
  const g = geometry(k);
  const K = g.C * 9;
  if (k.op === 'conv_weight_grad')
    return `Winograd F(3×3,2×2) (dy's 2×2 tiles as the filter), [${g.O},${g.N * g.Ho * g.Wo}]·[${g.N * g.Ho * g.Wo},${K}] of the direct convolution's flops (2.25× fewer multiplies), in chunks of images`;
  const how = k.op === 'conv' ? '' : 'the input gradient as a convolution of dy by the flipped weights, ';
  return `Winograd F(2×2,3×3), ${how}${g.N} × [${g.O},${K}]·[${K},${g.Ho * g.Wo}] of the direct convolution's flops (2.25× fewer multiplies), stored into ${k.op === 'conv' ? 'y' : 'dx'}`;
}

/** The kernel's body; with `ranged`, a function of the images [start, end) (whole chunks). */
export function winogradBody(k: ConvKernel, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  const g = geometry(k);
  const p = plan(g);
  const { per } = chunksOf(g.N);
  const [n, slot, xp, xb, yb, blk] = Array.from({ length: 6 }, () => f.local('i32'));
  const range = opts.ranged ? { start: f.param(0), end: f.param(1) } : undefined;
  // the scratch of the range's first chunk (U, ahead of the slots, written by winogradWeightsBody)
  const first = k.scratch + 4 * p.shared;
  if (range) f.get(range.start).i32(per).i32DivU().i32(4 * p.slotFloats).i32Mul().i32(first).i32Add().set(slot);
  else f.assign(slot, first);
  const copy = inputCopier(f, g, p);
  const input = inputTransform(f, g, p);
  const products = productsWriter(f, g, p, k.scratch);
  const image = () => {
    f.get(slot).i32(p.xp).i32Add().set(xp);
    copy(n, xp);
    f.get(xp).set(xb);
    f.get(n).i32(4 * g.O * g.Ho * g.Wo).i32Mul().i32(g.dst).i32Add().set(yb);
    f.repeat(blk, p.th / p.Rt, () => {
      input(xb, slot);
      products(yb, slot);
      f.bump(xb, 4 * 2 * p.Rt * p.Wp).bump(yb, 4 * 2 * p.Rt * g.Wo);
    });
  };
  if (range) f.get(range.start).set(n);
  else f.assign(n, 0);
  f.loopUntil(() => (range ? f.get(n).get(range.end) : f.get(n).i32(g.N)).i32GeS(), () => {
    image();
    f.bump(n, 1);
  });
  return f;
}

/** The forward's or input gradient's U into the scratch ahead of the slots: an unsplit kernel run right before the split one (every thread reads the one copy). */
export function winogradWeightsBody(k: ConvKernel): Body {
  const f = new Body(0);
  const at = f.local('i32');
  f.assign(at, k.scratch);
  transformWeights(f, geometry(k), at);
  return f;
}

/**
 * U = G w Gᵀ (G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]) into the slot as U[o/4][p][o%4][c] (a register
 * tile's 4 output channels, all 16 positions, contiguous), scalar: O·C·16 floats once per call. The
 * input gradient's w'[o', c'] = w[c', o'] flipped (both taps reversed).
 */
function transformWeights(f: Body, g: Geometry, slot: Local): void {
  const [ob, cc, src, dst, sO, dO] = Array.from({ length: 6 }, () => f.local('i32'));
  const w = Array.from({ length: 9 }, () => f.local('f32'));
  const t = Array.from({ length: 6 }, () => f.local('f32'));
  // bytes from one output channel's weights to the next, and one input channel's (w is [O][C] forward, [C][O] for the gradient)
  const [rowStep, colStep] = g.grad ? [36, 36 * g.O] : [36 * g.C, 36];
  const plane = 16 * g.C;
  /** ½(a + b + c), ½(a − b + c) */
  const plus = (a: Local, b: Local, c: Local) => f.get(a).get(b).f32Add().get(c).f32Add().f32Const(0.5).f32Mul();
  const minus = (a: Local, b: Local, c: Local) => f.get(a).get(c).f32Add().get(b).raw(0x93).f32Const(0.5).f32Mul();
  const one = () => {
    for (let i = 0; i < 9; i++) f.get(src).f32Load(4 * (g.grad ? 8 - i : i)).set(w[i]!);
    // the rows of G w: w's row 0, ½(sum), ½(alternating), w's row 2
    for (let j = 0; j < 3; j++) {
      plus(w[j]!, w[3 + j]!, w[6 + j]!).set(t[j]!);
      minus(w[j]!, w[3 + j]!, w[6 + j]!).set(t[3 + j]!);
    }
    const rowsOf = [[w[0]!, w[1]!, w[2]!], [t[0]!, t[1]!, t[2]!], [t[3]!, t[4]!, t[5]!], [w[6]!, w[7]!, w[8]!]];
    rowsOf.forEach(([a, b, c], i) => {
      f.get(dst).get(a!).f32Store(plane * 4 * i);
      f.get(dst);
      plus(a!, b!, c!).f32Store(plane * (4 * i + 1));
      f.get(dst);
      minus(a!, b!, c!).f32Store(plane * (4 * i + 2));
      f.get(dst).get(c!).f32Store(plane * (4 * i + 3));
    });
  };
  f.i32(g.w).set(sO).get(slot).set(dO);
  f.repeat(ob, g.O / 4, () => {
    for (let r = 0; r < 4; r++) {
      f.get(sO).i32(r * rowStep).i32Add().set(src);
      f.get(dO).i32(4 * r * g.C).i32Add().set(dst);
      f.repeat(cc, g.C, () => {
        one();
        f.bump(src, colStep).bump(dst, 4);
      });
    }
    f.bump(sO, 4 * rowStep).bump(dO, 16 * plane);
  });
}

export type Plan = ReturnType<typeof plan>;

/** Image n of the input copied into the padded buffer at `xp` (rows Hp × Wp, the image at row pt, column pl): by vectors, the row's rest by floats. */
export function inputCopier(f: Body, g: Geometry, p: Plan): (n: Local, xp: Local) => void {
  const [cc, rc, vc, s, d, sr, dr] = Array.from({ length: 7 }, () => f.local('i32'));
  const vecs = Math.floor(g.W / 4);
  return (n, xp) => {
    f.get(n).i32(4 * g.C * g.H * g.W).i32Mul().i32(g.src).i32Add().set(sr);
    f.get(xp).i32(4 * (g.pt * p.Wp + g.pl)).i32Add().set(dr);
    f.repeat(cc, g.C, () => {
      f.repeat(rc, g.H, () => {
        f.get(sr).set(s).get(dr).set(d);
        if (vecs > 16)
          f.repeat(vc, vecs, () => {
            f.get(d).get(s).v128Load(0).v128Store(0);
            f.bump(s, 16).bump(d, 16);
          });
        else for (let v = 0; v < vecs; v++) f.get(d).get(s).v128Load(16 * v).v128Store(16 * v);
        const at = vecs > 16 ? 0 : 4 * 4 * vecs;
        for (let e = 0; e < g.W % 4; e++) f.get(d).get(s).f32Load(at + 4 * e).f32Store(at + 4 * e);
        f.bump(sr, 4 * g.W).bump(dr, 4 * p.Wp);
      });
      f.bump(dr, 4 * (p.Hp - g.H) * p.Wp);
    });
  };
}

/**
 * V[p][c][t] = (Bᵀ d B)[p] of the block's tiles (rows of tiles from the padded buffer at xb),
 * Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], by 4 tiles a vector: a tile row's window row from
 * column s is 4 loads (s, s+4, s+2, s+6) whose even and odd lanes are its 4 columns.
 */
export function inputTransform(f: Body, g: Geometry, p: Plan, tilesInRows = false): (xb: Local, slot: Local) => void {
  const [cc, rc, gc, sp, dp, cs, cd] = Array.from({ length: 7 }, () => f.local('i32'));
  const v = () => f.local('v128');
  const [a, b, a2, b2] = [v(), v(), v(), v()];
  const d = [v(), v(), v(), v()];
  const e = Array.from({ length: 16 }, v);
  const EVEN = [0, 2, 4, 6] as const;
  const ODD = [1, 3, 5, 7] as const;
  const Gt = p.Gt;
  // bytes from one position's V to the next, one channel's to the next and one pair of vectors of tiles to the next: V[pair][p][c][tiles of the pair], or with tilesInRows V[p][c][T]
  const [plane, channel, pair] = tilesInRows ? [4 * g.C * p.T, 4 * p.T, 16 * Gt] : [16 * Gt * g.C, 16 * Gt, 256 * Gt * g.C];
  const { pairs, stack } = p;
  // bytes from one pair to the next along a tile row (none where a pair spans two rows)
  const step = stack === 2 ? 0 : 32 * Gt;
  const op = (x: Local, o: 'add' | 'sub', y: Local) => f.get(x).get(y).f32x4(o);
  const four = (sub: number) => {
    for (let i = 0; i < 4; i++) {
      const row = 4 * i * p.Wp + p.subX * sub;
      f.get(sp).v128Load(row).set(a).get(sp).v128Load(row + 16).set(b);
      f.get(sp).v128Load(row + 8).set(a2).get(sp).v128Load(row + 24).set(b2);
      f.get(a).get(b).i32x4Shuffle(EVEN).set(d[0]!).get(a).get(b).i32x4Shuffle(ODD).set(d[1]!);
      f.get(a2).get(b2).i32x4Shuffle(EVEN).set(d[2]!).get(a2).get(b2).i32x4Shuffle(ODD).set(d[3]!);
      // the row times B: d0 − d2, d1 + d2, d2 − d1, d1 − d3
      op(d[0]!, 'sub', d[2]!).set(e[4 * i]!);
      op(d[1]!, 'add', d[2]!).set(e[4 * i + 1]!);
      op(d[2]!, 'sub', d[1]!).set(e[4 * i + 2]!);
      op(d[1]!, 'sub', d[3]!).set(e[4 * i + 3]!);
    }
    // Bᵀ times the rows, each stored at its position's plane
    for (let j = 0; j < 4; j++) {
      const st = (i: number, x: Local, o: 'add' | 'sub', y: Local) => {
        f.get(dp);
        op(x, o, y).v128Store(plane * (4 * i + j) + 16 * sub);
      };
      st(0, e[j]!, 'sub', e[8 + j]!);
      st(1, e[4 + j]!, 'add', e[8 + j]!);
      st(2, e[8 + j]!, 'sub', e[4 + j]!);
      st(3, e[4 + j]!, 'sub', e[12 + j]!);
    }
  };
  return (xb, slot) => {
    f.get(xb).set(cs).get(slot).i32(p.v).i32Add().set(cd);
    f.repeat(cc, g.C, () => {
      f.get(cs).set(sp).get(cd).set(dp);
      f.repeat(rc, p.Rt / stack, () => {
        f.repeat(gc, pairs, () => {
          for (let sub = 0; sub < Gt; sub++) four(sub);
          f.bump(sp, step).bump(dp, pair);
        });
        f.bump(sp, 4 * 2 * p.Wp * stack - step * pairs);
      });
      f.bump(cs, 4 * p.Hp * p.Wp).bump(cd, channel);
    });
  };
}

/**
 * The block's outputs (y rows from yb): per tile row, pair (or single vector) of 4-tile vectors
 * and 4 output channels, the 16 products M[p] = U[p][o..o+3] · V[p][:, tiles] (4 × Gt vector
 * accumulators along the channels) into the slot's M, then their output transform
 * Aᵀ M A (Aᵀ = [1 1 1 0; 0 1 −1 −1]) stored into y, each output row's two columns interleaved.
 */
function productsWriter(f: Body, g: Geometry, p: Plan, u: number): (yb: Local, slot: Local) => void {
  const { Gt } = p;
  const S = g.Ho * g.Wo;
  const [rc, gc, oc, pc, cc, yT, tP, aO, yO, aP, bP, mP, mB] = Array.from({ length: 13 }, () => f.local('i32'));
  const v = () => f.local('v128');
  const acc = Array.from({ length: 4 * Gt }, v);
  const bv = Array.from({ length: Gt }, v);
  const av = v();
  const s = Array.from({ length: 8 }, v);
  const y = Array.from({ length: 4 }, v);
  /** 4 output channels × Gt vectors of tiles, position by position into M. */
  const gemm = () => {
    f.get(aO).set(aP).get(tP).set(bP).get(mB).set(mP);
    f.repeat(pc, 16, () => {
      for (const x of acc) f.f32x4Const(0).set(x);
      // along the channels by a loop (unrolled, V8 ran a forward 2.65× slower, 5.3 against 2.0 ms: the loads all hoisted ahead)
      f.repeat(cc, g.C, () => {
        for (let t = 0; t < Gt; t++) f.get(bP).v128Load(16 * t).set(bv[t]!);
        for (let r = 0; r < 4; r++) {
          f.get(aP).v128Load32Splat(4 * r * g.C).set(av);
          for (let t = 0; t < Gt; t++) f.get(av).get(bv[t]!).madd(acc[r * Gt + t]!).set(acc[r * Gt + t]!);
        }
        f.bump(aP, 4).bump(bP, 16 * Gt);
      });
      acc.forEach((x, i) => f.get(mP).get(x).v128Store(16 * i));
      // (aP and bP have moved along the channels: the next position's are right after)
      f.bump(aP, 12 * g.C).bump(mP, 16 * 4 * Gt);
    });
  };
  /** Output channel r's vector t of tiles: its 16 products in M, transformed and stored at yO. */
  const out = (r: number, t: number) => {
    const m = (i: number, j: number) => f.get(mB).v128Load(16 * ((4 * i + j) * 4 * Gt + r * Gt + t));
    for (let j = 0; j < 4; j++) {
      m(0, j);
      m(1, j);
      f.f32x4('add');
      m(2, j);
      f.f32x4('add').set(s[j]!);
      m(1, j);
      m(2, j);
      f.f32x4('sub');
      m(3, j);
      f.f32x4('sub').set(s[4 + j]!);
    }
    for (let i = 0; i < 2; i++) {
      const [s0, s1, s2, s3] = s.slice(4 * i, 4 * i + 4) as [Local, Local, Local, Local];
      f.get(s0).get(s1).f32x4('add').get(s2).f32x4('add').set(y[2 * i]!);
      f.get(s1).get(s2).f32x4('sub').get(s3).f32x4('sub').set(y[2 * i + 1]!);
      // columns 2j and 2j + 1 of the 4 tiles, interleaved: 8 contiguous floats of the output row
      const at = 4 * (r * S + i * g.Wo) + p.subY * t;
      f.get(yO).get(y[2 * i]!).get(y[2 * i + 1]!).i32x4Shuffle([0, 4, 1, 5]).v128Store(at);
      f.get(yO).get(y[2 * i]!).get(y[2 * i + 1]!).i32x4Shuffle([2, 6, 3, 7]).v128Store(at + 16);
    }
  };
  return (yb, slot) => {
    f.get(slot).i32(p.m).i32Add().set(mB);
    f.get(yb).set(yT).get(slot).i32(p.v).i32Add().set(tP);
    const step = p.stack === 2 ? 0 : 32 * Gt;
    f.repeat(rc, p.Rt / p.stack, () => {
      f.repeat(gc, p.pairs, () => {
        f.assign(aO, u);
        f.get(yT).set(yO);
        f.repeat(oc, g.O / 4, () => {
          gemm();
          for (let r = 0; r < 4; r++) for (let t = 0; t < Gt; t++) out(r, t);
          f.bump(aO, 256 * g.C).bump(yO, 4 * 4 * S);
        });
        f.bump(yT, step).bump(tP, 256 * Gt * g.C);
      });
      f.bump(yT, 4 * 2 * g.Wo * p.stack - step * p.pairs);
    });
  };
}
