// A transpose's copy kernel in 4×4 tiles: where a flat kernel (codegen/wasm/kernel-plan.ts) only
// copies an f32 array, reading it contiguously along one axis and writing it contiguously along
// another (NCHW ↔ NHWC: the CIFAR ResNet's permutes around each batch norm), each tile is four
// vector loads, eight shuffles and four vector stores, rather than codegen/wasm/kernel.ts's
// lane-by-lane loads or stores (four lane loads per vector, each from another line, 16 channels
// 4 KiB apart aliasing in the L1 cache). A copy: the results are the same bits.

import type { Local } from './encode.js';
import { Body } from './encode.js';
import type { WasmKernel } from './kernel.js';
import type { StaticFlatKernel } from './kernel-plan.js';
import { transpose4x4 } from './matmul.js';

/** A transpose copy: `a` the axis the load walks contiguously, `b` the one the store does, `outer` the others in order. */
export interface TransposeCopy {
  readonly a: number;
  readonly b: number;
  readonly outer: readonly number[];
}

/** The tiles' axes where `k` is a transpose copy of f32 (both axes multiples of 4, no negative or broadcast strides), else undefined. */
export function transposeCopy(k: StaticFlatKernel): TransposeCopy | undefined {
  if (k.reduced.some(Boolean) || k.nodes.length !== 1 || k.stores.length !== 1) return undefined;
  const n = k.nodes[0]!;
  if (n.op !== 'load' || n.dtype !== 'f32' || k.stores[0]!.node !== 0) return undefined;
  const ld = k.accesses[n.a]!;
  const st = k.accesses[k.stores[0]!.a]!;
  if (ld.strides.some((s) => s < 0) || st.strides.some((s) => s < 1)) return undefined;
  const a = ld.strides.indexOf(1);
  const b = st.strides.indexOf(1);
  if (a < 0 || b < 0 || a === b || k.dims[a]! % 4 !== 0 || k.dims[b]! % 4 !== 0) return undefined;
  return { a, b, outer: k.dims.map((_d, i) => i).filter((i) => i !== a && i !== b) };
}

/** Whether a ranged copy splits along its first outer axis (one of 2 or more points), else by rows of tiles along p. */
export function splitsOuter(k: StaticFlatKernel, t: TransposeCopy): boolean {
  return t.outer.length > 0 && k.dims[t.outer[0]!]! >= 2;
}

/** The tiles' outer axis p and inner axis q: the longer of the two innermost (the longer runs of bumped pointers). */
export function tileAxes(k: StaticFlatKernel, t: TransposeCopy): readonly [number, number] {
  return k.dims[t.a]! >= k.dims[t.b]! ? [t.b, t.a] : [t.a, t.b];
}

/**
 * Appends the tiled copy to `f`; with `ranged` (a function of two i32 arguments, start and end) only
 * the points whose first outer coordinate lies in [start, end), or where that axis has one point
 * or there is none (`splitsOuter`), the rows of tiles along p (`tileAxes`) in [start, end).
 */
export function emitTransposeCopy(f: Body, k: StaticFlatKernel, t: TransposeCopy, ranged: boolean): void {
  if (k.dims.some((d) => d === 0)) return;
  const ld = k.accesses[(k.nodes[0] as { a: number }).a]!;
  const st = k.accesses[k.stores[0]!.a]!;
  const [p, q] = tileAxes(k, t);
  const splitTiles = ranged && !splitsOuter(k, t);
  const x = t.outer.map(() => f.local('i32'));
  const [sRow, dRow, s, d, cp, cq] = [0, 0, 0, 0, 0, 0].map(() => f.local('i32')) as [Local, Local, Local, Local, Local, Local];
  const r = [0, 1, 2, 3].map(() => f.local('v128'));
  const tt = [0, 1, 2, 3].map(() => f.local('v128'));
  const pointer = (base: number, strides: readonly number[], into: Local) => {
    f.i32(base);
    t.outer.forEach((ax, i) => {
      if (strides[ax] !== 0) f.get(x[i]!).i32(4 * strides[ax]!).i32Mul().i32Add();
    });
    f.set(into);
  };
  const tile = () => {
    // r[j]: the load's 4 points along a at b + j
    for (let j = 0; j < 4; j++) f.get(s).v128Load(4 * j * ld.strides[t.b]!).set(r[j]!);
    // row i of the store (a + i): lane i of r[0…3]
    transpose4x4(f, r, tt, (i, push) => {
      f.get(d);
      push();
      f.v128Store(4 * i * st.strides[t.a]!);
    });
  };
  const tileRow = () => {
    f.get(sRow).set(s).get(dRow).set(d);
    f.repeat(cq, k.dims[q]! / 4, () => {
      tile();
      f.bump(s, 16 * ld.strides[q]!).bump(d, 16 * st.strides[q]!);
    });
    f.bump(sRow, 16 * ld.strides[p]!).bump(dRow, 16 * st.strides[p]!);
  };
  const tiles = () => {
    pointer(ld.base, ld.strides, sRow);
    pointer(st.base, st.strides, dRow);
    if (!splitTiles) return void f.repeat(cp, k.dims[p]! / 4, tileRow);
    // this range's rows of tiles: from tile row `start`, until `end`
    f.get(sRow).get(f.param(0)).i32(16 * ld.strides[p]!).i32Mul().i32Add().set(sRow);
    f.get(dRow).get(f.param(0)).i32(16 * st.strides[p]!).i32Mul().i32Add().set(dRow);
    f.get(f.param(0)).set(cp);
    f.loopUntil(
      () => void f.get(cp).get(f.param(1)).i32GeS(),
      () => {
        tileRow();
        f.bump(cp, 1);
      },
    );
  };
  const level = (i: number): void => {
    if (i === t.outer.length) return tiles();
    const xi = x[i]!;
    const split = ranged && i === 0 && !splitTiles;
    if (split) f.get(f.param(0)).set(xi);
    else f.assign(xi, 0);
    f.loopUntil(
      () => {
        f.get(xi);
        if (split) f.get(f.param(1));
        else f.i32(k.dims[t.outer[i]!]!);
        f.i32GeS();
      },
      () => {
        level(i + 1);
        f.bump(xi, 1);
      },
    );
  };
  level(0);
}

/** A transpose's copy in 4×4 tiles (codegen/wasm/transpose.ts), split over threads along its first outer axis, or (none, or of one point) by rows of tiles. */
export function renderTransposeCopy(fk: StaticFlatKernel, tc: TransposeCopy): WasmKernel {
  const whole = new Body();
  emitTransposeCopy(whole, fk, tc, false);
  const extent = splitsOuter(fk, tc) ? fk.dims[tc.outer[0]!]! : fk.dims[tileAxes(fk, tc)[0]]! / 4;
  if (extent < 2) return { body: whole };
  const ranged = new Body(2);
  emitTransposeCopy(ranged, fk, tc, true);
  const work = fk.dims.reduce((a, b) => a * b, 1);
  return { body: whole, ranged: { body: ranged, split: { extent, align: 1, work } } };
}
