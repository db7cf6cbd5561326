// The weight gradient of a 3×3 stride-1 convolution as Winograd F(3×3, 2×2): each 2×2 tile of dy
// (of output positions 2ti..2ti+1, 2tj..2tj+1) correlated with the 4×4 window of x it reads gives
// that tile's share of all 9 taps of dw[o, c],
//
//   dw[o, c] = Aᵀ [ Σ_(n, tiles) (G dy_tile Gᵀ) ⊙ (Bᵀ x_window B) ] A,
//
// with B the forward's (./winograd.ts `inputTransform` writes the same V), G = [1 0; ½ ½; ½ −½; 0 −1]
// (the last row's sign taking up F(3×3, 2×2)'s Bᵀ, whose last row is the forward's negated) and
// Aᵀ = [1 1 1 0; 0 1 −1 0; 0 1 1 1]: 16 multiplies a tile and channel pair for 36. The sums over
// tiles run in the transformed domain: per position p a product [O, tiles]·[tiles, C] along the
// tiles (vectors of 4 tiles, a 4 × 2 register tile of channel pairs), added per block of tile rows
// into the chunk's partial sums ([16][O][C] vectors). `winogradSumBody` then adds, per weight, the
// chunks' vectors and lanes in order (as conv.ts `convSumBody`) and applies Aᵀ · A. Threads split
// the chunks as the direct kernel's.

import type { Local } from './encode.js';
import { Body } from './encode.js';
import type { ConvKernel } from './conv.js';
import { chunksOf } from './conv.js';
import type { Geometry, Plan } from './winograd.js';
import { geometry, inputCopier, inputTransform, plan } from './winograd.js';

/** The chunks [start, end) (all of them without a range): each chunk's partial sums, zeroed, then its images block by block. */
export function winogradWeightGradBody(k: ConvKernel, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  const g = geometry(k);
  const p = plan(g, true);
  const { chunks, per } = chunksOf(g.N);
  const [c, n, nEnd, slot, xp, xb, yb, blk, part, zc, zp] = Array.from({ length: 11 }, () => f.local('i32'));
  const range = opts.ranged ? { start: f.param(0), end: f.param(1) } : undefined;
  const copy = inputCopier(f, g, p);
  const input = inputTransform(f, g, p, true);
  const dyT = dyTransform(f, g, p);
  const products = productsAdder(f, g, p);
  if (range) f.get(range.start).set(c);
  else f.assign(c, 0);
  f.loopUntil(() => (range ? f.get(c).get(range.end) : f.get(c).i32(chunks)).i32GeS(), () => {
    f.get(c).i32(4 * p.slotFloats).i32Mul().i32(k.scratch).i32Add().set(slot);
    f.get(slot).i32(p.m).i32Add().tee(part).set(zp);
    f.repeat(zc, 16 * g.O * g.C, () => {
      f.get(zp).f32x4Const(0).v128Store(0);
      f.bump(zp, 16);
    });
    f.get(c).i32(per).i32Mul().tee(n).i32(per).i32Add().set(nEnd);
    f.when(() => f.get(nEnd).i32(g.N).i32GtS(), () => f.assign(nEnd, g.N));
    f.loopUntil(() => f.get(n).get(nEnd).i32GeS(), () => {
      f.get(slot).i32(p.xp).i32Add().set(xp);
      copy(n, xp);
      f.get(xp).set(xb);
      f.get(n).i32(4 * g.O * g.Ho * g.Wo).i32Mul().i32(g.dst).i32Add().set(yb);
      f.repeat(blk, p.th / p.Rt, () => {
        input(xb, slot);
        dyT(yb, slot);
        products(slot, part);
        f.bump(xb, 4 * 2 * p.Rt * p.Wp).bump(yb, 4 * 2 * p.Rt * g.Wo);
      });
      f.bump(n, 1);
    });
    f.bump(c, 1);
  });
  return f;
}

/**
 * D[p][o][T] = (G dy_tile Gᵀ)[p] of the block's tiles (dy's rows from yb), laid out as
 * inputTransform's V with tilesInRows: by 4 tiles a vector, a tile row's dy row from column s is 2 loads whose
 * even and odd lanes are its 2 columns.
 */
function dyTransform(f: Body, g: Geometry, p: Plan): (yb: Local, slot: Local) => void {
  const [oc, rc, gc, sp, dp, os, od] = Array.from({ length: 7 }, () => f.local('i32'));
  const v = () => f.local('v128');
  const [a, b] = [v(), v()];
  const r = Array.from({ length: 8 }, v);
  const { Gt, pairs, stack } = p;
  const plane = 4 * g.O * p.T;
  const subY = stack === 2 ? 4 * 2 * g.Wo : 32;
  const step = stack === 2 ? 0 : 32 * Gt;
  const half = () => f.f32x4Const(0.5).f32x4('mul');
  const four = (sub: number) => {
    // rows of G g: g0, ½(g0 + g1), ½(g0 − g1), −g1, for columns 0 and 1 of the tiles (r[2i + j])
    const col = [0, 1].map((u) => {
      f.get(sp).v128Load(4 * u * g.Wo + subY * sub).set(a).get(sp).v128Load(4 * u * g.Wo + subY * sub + 16).set(b);
      return [[0, 2, 4, 6], [1, 3, 5, 7]].map((lanes) => {
        const x = v();
        f.get(a).get(b).i32x4Shuffle(lanes as [number, number, number, number]).set(x);
        return x;
      });
    });
    for (let j = 0; j < 2; j++) {
      const [g0, g1] = [col[0]![j]!, col[1]![j]!];
      f.get(g0).set(r[j]!);
      f.get(g0).get(g1).f32x4('add');
      half();
      f.set(r[2 + j]!);
      f.get(g0).get(g1).f32x4('sub');
      half();
      f.set(r[4 + j]!);
      f.get(g1).f32x4('neg').set(r[6 + j]!);
    }
    // each row [x, y] times Gᵀ: x, ½(x + y), ½(x − y), −y
    for (let i = 0; i < 4; i++) {
      const [x, y] = [r[2 * i]!, r[2 * i + 1]!];
      const at = (j: number) => plane * (4 * i + j) + 16 * sub;
      f.get(dp).get(x).v128Store(at(0));
      f.get(dp).get(x).get(y).f32x4('add');
      half();
      f.v128Store(at(1));
      f.get(dp).get(x).get(y).f32x4('sub');
      half();
      f.v128Store(at(2));
      f.get(dp).get(y).f32x4('neg').v128Store(at(3));
    }
  };
  return (yb, slot) => {
    f.get(yb).set(os).get(slot).i32(p.u).i32Add().set(od);
    f.repeat(oc, g.O, () => {
      f.get(os).set(sp).get(od).set(dp);
      f.repeat(rc, p.Rt / stack, () => {
        f.repeat(gc, pairs, () => {
          for (let sub = 0; sub < Gt; sub++) four(sub);
          f.bump(sp, step).bump(dp, 16 * Gt);
        });
        f.bump(sp, 4 * 2 * g.Wo * stack - step * pairs);
      });
      f.bump(os, 4 * g.Ho * g.Wo).bump(od, 4 * p.T);
    });
  };
}

/**
 * part[p][o][c] += Σ_(block's tiles) D[p][o][t] · V[p][c][t] (rows of the block's T tiles), per position by register tiles of 4
 * output × 2 input channels whose 8 vector accumulators run along the block's tiles (6 loads for 8
 * multiply-adds), loaded from the partial sums and stored back.
 */
function productsAdder(f: Body, g: Geometry, p: Plan): (slot: Local, part: Local) => void {
  const [pc, ob, cb, tc, dB, vB, dP, vP, pP, dO, vO] = Array.from({ length: 11 }, () => f.local('i32'));
  const v = () => f.local('v128');
  const acc = Array.from({ length: 8 }, v);
  const dv = Array.from({ length: 4 }, v);
  const xv = [v(), v()];
  const row = 4 * p.T;
  return (slot, part) => {
    f.get(slot).i32(p.u).i32Add().set(dB).get(slot).i32(p.v).i32Add().set(vB).get(part).set(pP);
    f.repeat(pc, 16, () => {
      f.get(dB).set(dO);
      f.repeat(ob, g.O / 4, () => {
        f.get(vB).set(vO);
        f.repeat(cb, g.C / 2, () => {
          // the accumulators start from the partial sums of output channels o..o+3 × input channels c, c+1 (rows of C vectors)
          for (let r = 0; r < 4; r++) for (let k = 0; k < 2; k++) f.get(pP).v128Load(16 * (r * g.C + k)).set(acc[2 * r + k]!);
          f.get(dO).set(dP).get(vO).set(vP);
          f.repeat(tc, p.T / 4, () => {
            for (let r = 0; r < 4; r++) f.get(dP).v128Load(r * row).set(dv[r]!);
            for (let k = 0; k < 2; k++) {
              f.get(vP).v128Load(k * row).set(xv[k]!);
              for (let r = 0; r < 4; r++) f.get(dv[r]!).get(xv[k]!).madd(acc[2 * r + k]!).set(acc[2 * r + k]!);
            }
            f.bump(dP, 16).bump(vP, 16);
          });
          for (let r = 0; r < 4; r++) for (let k = 0; k < 2; k++) f.get(pP).get(acc[2 * r + k]!).v128Store(16 * (r * g.C + k));
          f.bump(vO, 2 * row).bump(pP, 32);
        });
        f.bump(dO, 4 * row).bump(pP, 16 * (4 * g.C - g.C));
      });
      f.bump(dB, g.O * row).bump(vB, g.C * row);
    });
  };
}

/**
 * dw[o, c] = Aᵀ S A, S[p] the sum of its partial vectors over the chunks in order and of their
 * lanes (0 + 1, 2 + 3, then the two), Aᵀ = [1 1 1 0; 0 1 −1 0; 0 1 1 1]; scalar, once a step.
 */
export function winogradSumBody(k: ConvKernel): Body {
  const f = new Body();
  const g = geometry(k);
  const p = plan(g, true);
  const { chunks } = chunksOf(g.N);
  const [oc, aP, wP] = [f.local('i32'), f.local('i32'), f.local('i32')];
  const cv = f.local('v128');
  const s = Array.from({ length: 16 }, () => f.local('f32'));
  const t = Array.from({ length: 12 }, () => f.local('f32'));
  f.assign(aP, k.scratch + p.m).assign(wP, g.w);
  f.repeat(oc, g.O * g.C, () => {
    for (let q = 0; q < 16; q++) {
      f.get(aP).v128Load(16 * q * g.O * g.C);
      for (let c = 1; c < chunks; c++) f.get(aP).v128Load(4 * c * p.slotFloats + 16 * q * g.O * g.C).f32x4('add');
      f.set(cv);
      f.get(cv).f32x4ExtractLane(0).get(cv).f32x4ExtractLane(1).f32Add();
      f.get(cv).f32x4ExtractLane(2).get(cv).f32x4ExtractLane(3).f32Add().f32Add().set(s[q]!);
    }
    // Aᵀ S: rows s0 + s1 + s2, s1 − s2, s1 + s2 + s3 (t[4i + j])
    for (let j = 0; j < 4; j++) {
      const [s0, s1, s2, s3] = [0, 1, 2, 3].map((i) => s[4 * i + j]!) as [Local, Local, Local, Local];
      f.get(s0).get(s1).f32Add().get(s2).f32Add().set(t[j]!);
      f.get(s1).get(s2).raw(0x93).set(t[4 + j]!);
      f.get(s1).get(s2).f32Add().get(s3).f32Add().set(t[8 + j]!);
    }
    // times A: the same along each row, into dw[o, c]'s 3×3 taps
    for (let i = 0; i < 3; i++) {
      const [t0, t1, t2, t3] = [0, 1, 2, 3].map((j) => t[4 * i + j]!) as [Local, Local, Local, Local];
      f.get(wP).get(t0).get(t1).f32Add().get(t2).f32Add().f32Store(4 * 3 * i);
      f.get(wP).get(t1).get(t2).raw(0x93).f32Store(4 * (3 * i + 1));
      f.get(wP).get(t1).get(t2).f32Add().get(t3).f32Add().f32Store(4 * (3 * i + 2));
    }
    f.bump(aP, 16).bump(wP, 36);
  });
  return f;
}
