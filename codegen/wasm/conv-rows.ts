// One image of a convolution output row by output row (`convRows`, chosen by conv.ts's
// `byOutputRows`): the forward's and a stride-1 input gradient's col one output row at a time, in
// L1, for the matmul kernel's register tiles (see codegen/wasm/conv.ts's header).

import type { Body, Local } from './encode.js';
import type { Geometry } from './conv.js';
import { PANEL, span } from './conv.js';

/** The output rows of a geometry in runs of consecutive rows whose taps inside x (kernel rows p) are the same, and the class (distinct set of taps) of each run. */
function rowRunsOf(k: Geometry): { start: number; count: number; cls: number; taps: number[] }[] {
  const [sh] = k.stride as [number, number];
  const [dh] = k.dilation as [number, number];
  const [pt] = k.padding as [number, number];
  const keys: string[] = [];
  const runs: { start: number; count: number; cls: number; taps: number[] }[] = [];
  for (let i = 0; i < k.Ho; i++) {
    const taps = [...Array(k.kH).keys()].filter((p) => i * sh - pt + p * dh >= 0 && i * sh - pt + p * dh < k.H);
    const key = taps.join(',');
    const last = runs[runs.length - 1];
    if (last && keys[last.cls] === key) last.count++;
    else {
      if (!keys.includes(key)) keys.push(key);
      runs.push({ start: i, count: 1, cls: keys.indexOf(key), taps });
    }
  }
  return runs;
}

/**
 * One image of a convolution (`rowsFit`), output row by output row: the row's col, K rows of its
 * Wo positions, written as Wo/8 panels (K × 8 floats each; 4·(C·kk)·Wo bytes, in L1) from x at
 * `xn`, then y[g][:, row] = a[g] · that col by register tiles of 4 output channels × 8 positions
 * (the matmul kernel's tile and order of sums: each output one f32 sum along K), stored at `yn`.
 * Each class of rows (`rowRunsOf`: the same kernel rows inside x) has a col of its own at `buf`
 * (all fit in the scratch of a whole col, classes ≤ Ho), written at the same positions row after
 * row: its padded positions are never written and stay the zeros the scratch starts with. A tap's
 * vector that reaches into the padding loads 4 floats inside the row and shuffles zeros in.
 * a: the weights [G][O/G][K] at `a` (+ `aOff`). Leaves xn, yn as they were.
 */
export function convRows(f: Body, k: Geometry, O: number, o: { a: number; aOff?: Local; xn: Local; yn: Local; buf: Local }): void {
  const { C, H, W, kH, kW, Ho, Wo, groups: G } = k;
  const [sh] = k.stride as [number, number];
  const [dh, dw] = k.dilation as [number, number];
  const [pt, pl] = k.padding as [number, number];
  const S = Ho * Wo;
  const kk = kH * kW;
  const [Cg, Og] = [C / G, O / G];
  const Kg = Cg * kk;
  const panelBytes = 4 * PANEL * Kg;
  const classBytes = 4 * C * kk * Wo;
  const i32 = () => f.local('i32');
  const [ci, xi, yi, xb, dc, sr, jp, ct, ck, aP, bP, aRow, bPanel, cP, db, yn2] = Array.from({ length: 16 }, i32);
  const acc = Array.from({ length: 8 }, () => f.local('v128'));
  const bv = [f.local('v128'), f.local('v128')];
  const av = f.local('v128');
  /** The row's col of class buffer db, x's row at xi, kernel rows `taps`. */
  const build = (taps: number[]) => {
    for (let g = 0; g < G; g++) {
      f.get(db).i32(4 * g * Kg * Wo).i32Add().set(dc);
      f.get(xi).i32(4 * g * Cg * H * W).i32Add().set(xb);
      f.repeat(ci, Cg, () => {
        for (const p of taps) {
          f.get(xb).i32(4 * (p * dh - pt) * W).i32Add().set(sr);
          for (let q = 0; q < kW; q++) {
            const [j0, j1] = span(q, dw, pl, 1, W, Wo);
            const col = (j: number) => j - pl + q * dw;
            for (let v = 0; v < Wo / 4; v++) {
              const lo = Math.max(4 * v, j0);
              const hi = Math.min(4 * v + 4, j1);
              if (hi <= lo) continue;
              const at = Math.floor((4 * v) / PANEL) * panelBytes + 4 * PANEL * (p * kW + q) + 4 * ((4 * v) % PANEL);
              if (lo === 4 * v && hi === 4 * v + 4) f.get(dc).get(sr).v128Load(4 * col(lo)).v128Store(at);
              else if (W >= 4) {
                // 4 floats of x's row from s0 (inside the row, and holding columns col(lo)..col(hi − 1)), their lanes in place, zeros elsewhere
                const s0 = Math.min(col(lo), W - 4);
                const lanes = [0, 1, 2, 3].map((l) => (4 * v + l >= lo && 4 * v + l < hi ? 4 + col(4 * v + l) - s0 : 0)) as [number, number, number, number];
                f.get(dc).f32x4Const(0).get(sr).v128Load(4 * s0).i32x4Shuffle(lanes).v128Store(at);
              } else for (let s = lo; s < hi; s++) f.get(dc).get(sr).f32Load(4 * col(s)).f32Store(at + 4 * (s - 4 * v));
            }
          }
        }
        f.bump(xb, 4 * H * W).bump(dc, 4 * PANEL * kk);
      });
    }
  };
  /** One tile: `rows` output channels from aRow × the panel at bPanel, stored at cP. */
  const tile = (rows: number) => {
    for (let n = 0; n < 2 * rows; n++) f.f32x4Const(0).set(acc[n]!);
    f.get(aRow).set(aP).get(bPanel).set(bP);
    f.repeat(ck, Kg, () => {
      f.get(bP).v128Load(0).set(bv[0]!).get(bP).v128Load(16).set(bv[1]!);
      for (let r = 0; r < rows; r++) {
        f.get(aP).v128Load32Splat(4 * r * Kg).set(av);
        for (let v = 0; v < 2; v++) f.get(av).get(bv[v]!).madd(acc[2 * r + v]!).set(acc[2 * r + v]!);
      }
      f.bump(aP, 4).bump(bP, 4 * PANEL);
    });
    for (let r = 0; r < rows; r++) for (let v = 0; v < 2; v++) f.get(cP).get(acc[2 * r + v]!).v128Store(4 * (r * S + 4 * v));
  };
  /** y's row at yi = a · the row's col at db. */
  const product = () => {
    for (let g = 0; g < G; g++) {
      f.get(db).i32(4 * g * Kg * Wo).i32Add().set(bPanel);
      f.get(yi).i32(4 * g * Og * S).i32Add().set(yn2);
      f.repeat(jp, Wo / PANEL, () => {
        for (const rr of [{ start: 0, count: Math.floor(Og / 4), size: 4 }, { start: Og - (Og % 4), count: 1, size: Og % 4 }]) {
          if (rr.count === 0 || rr.size === 0) continue;
          f.i32(o.a + 4 * (g * Og + rr.start) * Kg);
          if (o.aOff) f.get(o.aOff).i32Add();
          f.set(aRow);
          f.get(yn2).i32(4 * rr.start * S).i32Add().set(cP);
          f.repeat(ct, rr.count, () => {
            tile(rr.size);
            f.bump(aRow, 4 * rr.size * Kg).bump(cP, 4 * rr.size * S);
          });
        }
        f.bump(bPanel, panelBytes).bump(yn2, 4 * PANEL);
      });
    }
  };
  for (const run of rowRunsOf(k)) {
    f.get(o.buf).i32(run.cls * classBytes).i32Add().set(db);
    f.get(o.xn).i32(4 * run.start * sh * W).i32Add().set(xi);
    f.get(o.yn).i32(4 * run.start * Wo).i32Add().set(yi);
    f.repeat(f.local('i32'), run.count, () => {
      build(run.taps);
      product();
      f.bump(xi, 4 * sh * W).bump(yi, 4 * Wo);
    });
  }
}
