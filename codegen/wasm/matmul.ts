// WebAssembly SIMD matmul kernels, specialised to one matmul's shapes and addresses.
//
// C[M,N] = op(A) · op(B) (op: optionally transposed), for each of `batch` matrices. The kernel
// vectorises along the columns of C: a register tile of R rows × V vectors (4 columns each)
// accumulates A[i,p]·B[p,j..j+3] over p (in blocks of MATMUL_BLOCK when K is longer), reading A one element at a time (splat, any stride, so
// transA costs nothing) and B four contiguous columns at a time. A transposed B is first packed
// into a scratch area as [K,N]. Columns past N in the last vector are computed (reading into the
// next row, or the padding after the arena) but never stored. Tiles walk the columns outermost,
// so that one panel of B (K × 4V) stays in cache while every row of A passes over it. The
// epilogue (bias add, activation, ...) runs on the accumulators before they are stored.

import type { Local } from './encode.js';
import { Body } from './encode.js';
import type { Step } from './steps.js';
import { StepWriter } from './steps.js';

export interface MatmulKernel {
  readonly name: string;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly batch: number;
  readonly transA: boolean;
  readonly transB: boolean;
  /** Byte addresses of the operands; whether each advances from one matrix of the batch to the next. */
  readonly a: number;
  readonly b: number;
  readonly aBatched: boolean;
  readonly bBatched: boolean;
  /** Where the product itself is stored ([batch,M,N]), if it is. */
  readonly c?: number;
  /** A scratch area of K·N floats for packing a transposed B. */
  readonly pack?: number;
  readonly epilogue: readonly Step[];
  /** The epilogue as a writer at the tile's points instead (the static module's, of the kernel form: codegen/wasm/kernel.ts's TileEpilogue). */
  readonly epilogueWriter?: (f: Body) => Pick<StepWriter, 'pointers' | 'at' | 'store'>;
  /** Register tile: rows × vectors of 4 columns. */
  readonly tile?: { readonly rows: number; readonly vecs: number };
  /** Bytes from one matrix of the batch to the next, where not the matrices' sizes (a convolution's images). */
  readonly strides?: { readonly a: number; readonly b: number; readonly c: number };
}

export const DEFAULT_TILE = { rows: 4, vecs: 2 } as const;

/**
 * The products a tile's accumulators sum over K in f32 before they are added into f64 totals
 * (a K of 32,768, a weight gradient over batch × positions, summed in f32 one product after
 * another was off by about 5e-6 relative on values of one sign).
 */
export const MATMUL_BLOCK = 256;

/** A run of equal tiles along one axis: `count` tiles of `size` starting at `start`. */
interface Run {
  readonly start: number;
  readonly count: number;
  readonly size: number;
  /** Columns only: valid lanes of the last vector of each tile (4 except at the end). */
  readonly lastLanes: number;
}

function rowRuns(M: number, R: number): Run[] {
  const full = Math.floor(M / R);
  const runs: Run[] = [];
  if (full > 0) runs.push({ start: 0, count: full, size: R, lastLanes: 4 });
  if (M % R) runs.push({ start: full * R, count: 1, size: M % R, lastLanes: 4 });
  return runs;
}

function columnRuns(N: number, V: number): Run[] {
  const nvec = Math.ceil(N / 4);
  const lastLanes = N - 4 * (nvec - 1);
  const full = Math.floor(nvec / V);
  const rem = nvec % V;
  const runs: Run[] = [];
  const push = (start: number, count: number, size: number, lanes: number) => count > 0 && runs.push({ start, count, size, lastLanes: lanes });
  if (rem === 0 && lastLanes < 4) {
    push(0, full - 1, V, 4);
    push((full - 1) * V * 4, 1, V, lastLanes);
  } else {
    push(0, full, V, 4);
    push(full * V * 4, rem > 0 ? 1 : 0, rem, lastLanes);
  }
  return runs;
}

/**
 * The kernel as a function body. With `ranged` (one matrix, not a batch) it is a function of two
 * arguments that computes the rows [start, end) of C, start a multiple of the tile's rows and end
 * one too or M: the row blocks of threads, which write disjoint rows and sum over K in the same
 * order as the whole kernel. A ranged kernel does not pack a transposed B: `packBody` does, once,
 * before the blocks run.
 */
export function matmulBody(k: MatmulKernel, opts: { ranged?: boolean } = {}): Body {
  return matmulInto(new Body(opts.ranged ? 2 : 0), k, opts);
}

/**
 * The kernel's code appended to `f` (a convolution's kernel runs its matmuls after its im2col).
 * With `ranged`, `f` has the two parameters [start, end) of the rows (see `matmulBody`). With
 * `offsets` (one matrix), locals of `f` holding byte offsets added to the addresses of B and C
 * (a convolution's image).
 */
export function matmulInto(f: Body, k: MatmulKernel, opts: { ranged?: boolean; offsets?: { readonly b: Local; readonly c: Local } } = {}): Body {
  const { M, N, K, batch, transA, transB } = k;
  const { rows: R, vecs: V } = k.tile ?? DEFAULT_TILE;
  const ranged = opts.ranged ?? false;
  if ((ranged || opts.offsets) && batch !== 1) throw new Error('internal: a ranged or offset matmul over a batch');
  if (M * N * batch === 0) return f;
  const i32 = () => f.local('i32');
  const [tA, tB, tC, i, j, aPtr, bPtr, cPtr, counterT, counterJ, counterI, counterP, src, dst, dstRow] = Array.from({ length: 15 }, i32);
  const acc = Array.from({ length: R * V }, () => f.local('v128'));
  const outer = K > MATMUL_BLOCK ? Array.from({ length: R * V }, () => [f.local('v128'), f.local('v128')] as const) : [];
  const counterB = K > MATMUL_BLOCK ? f.local('i32') : undefined;
  const bv = Array.from({ length: V }, () => f.local('v128'));
  const av = f.local('v128');
  const epilogue = k.epilogueWriter?.(f) ?? new StepWriter(f, k.epilogue, N);
  const bRows = transB ? k.pack! : k.b; // B as [K,N]
  const aRowStride = transA ? 4 : 4 * K; // bytes between A[i,p] and A[i+1,p]
  const aStepP = transA ? 4 * M : 4; // bytes between A[i,p] and A[i,p+1]

  /** ptr = base + i·si·4 + j·sj·4 */
  const setPtr = (ptr: Local, base: number, si: number, sj: number, extra?: Local) => {
    f.i32(base);
    if (extra) f.get(extra).i32Add();
    if (si) f.get(i).i32(4 * si).i32Mul().i32Add();
    if (sj) f.get(j).i32(4 * sj).i32Mul().i32Add();
    f.set(ptr);
  };

  const tile = (rows: number, vecs: number, lastLanes: number) => {
    // A[i, 0] and B[0, j] of this batch matrix
    setPtr(aPtr, k.a, transA ? 1 : K, 0, tA);
    setPtr(bPtr, bRows, 0, 1, transB ? undefined : tB);
    const used = [...Array(rows * vecs).keys()].map((n) => Math.floor(n / vecs) * V + (n % vecs));
    for (const n of used) f.f32x4Const(0).set(acc[n]!);
    const products = (count: number) =>
      f.repeat(counterP, count, () => {
        for (let v = 0; v < vecs; v++) f.get(bPtr).v128Load(16 * v).set(bv[v]!);
        for (let r = 0; r < rows; r++) {
          f.get(aPtr).v128Load32Splat(r * aRowStride).set(av);
          for (let v = 0; v < vecs; v++) {
            const c = acc[r * V + v]!;
            f.get(c).get(av).get(bv[v]!).f32x4('mul').f32x4('add').set(c);
          }
        }
        f.bump(aPtr, aStepP).bump(bPtr, 4 * N);
      });
    if (K > MATMUL_BLOCK) {
      // blocks of MATMUL_BLOCK products, each block's sums added into the outer sums
      // blocks of MATMUL_BLOCK products, each block's sums added into f64 totals (two f64x2 per accumulator)
      const flush = () => {
        for (const n of used) {
          const [lo, hi] = outer[n]!;
          const c = acc[n]!;
          f.get(lo).get(c).f64x2PromoteLowF32x4().f64x2Add().set(lo);
          f.get(hi).get(c).get(c).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().set(hi);
          f.f32x4Const(0).set(c);
        }
      };
      for (const n of used) f.f32x4Const(0).set(outer[n]![0]).f32x4Const(0).set(outer[n]![1]);
      f.repeat(counterB!, Math.floor(K / MATMUL_BLOCK), () => {
        products(MATMUL_BLOCK);
        flush();
      });
      if (K % MATMUL_BLOCK) {
        products(K % MATMUL_BLOCK);
        flush();
      }
      for (const n of used) {
        const [lo, hi] = outer[n]!;
        f.get(lo).f32x4DemoteF64x2Zero().get(hi).f32x4DemoteF64x2Zero().i32x4Shuffle([0, 1, 4, 5]).set(acc[n]!);
      }
    } else if (K > 0) products(K);
    if (k.c !== undefined) setPtr(cPtr, k.c, N, 1, tC);
    for (const p of epilogue.pointers) setPtr(p.local, p.addr, p.si, p.sj);
    for (let r = 0; r < rows; r++)
      for (let v = 0; v < vecs; v++) {
        const lanes = v === vecs - 1 ? lastLanes : 4;
        if (k.c !== undefined) epilogue.store(cPtr, acc[r * V + v]!, 4 * (r * N + 4 * v), lanes);
        epilogue.at(r, v, lanes, acc[r * V + v]!);
      }
  };

  /** The row tiles of one column run: all of them, or those of [start, end). */
  const rowTiles = (cr: Run) => {
    if (!ranged) {
      for (const rr of rowRuns(M, R)) {
        f.assign(i, rr.start);
        f.repeat(counterI, rr.count, () => {
          tile(rr.size, cr.size, cr.lastLanes);
          f.bump(i, rr.size);
        });
      }
      return;
    }
    const [start, end] = [f.param(0), f.param(1)];
    f.get(start).set(i);
    // whole tiles while i + R ≤ end, then the ragged last tile when end is M
    f.loopUntil(
      () => f.get(i).i32(R).i32Add().get(end).i32GtS(),
      () => {
        tile(R, cr.size, cr.lastLanes);
        f.bump(i, R);
      },
    );
    if (M % R) f.when(() => f.get(i).get(end).i32LtS(), () => tile(M % R, cr.size, cr.lastLanes));
  };

  const matrix = () => {
    if (transB && K > 0 && !ranged) packInto(f, k, tB, src, dst, dstRow, counterJ, counterP);
    for (const cr of columnRuns(N, V)) {
      f.assign(j, cr.start);
      f.repeat(counterJ, cr.count, () => {
        rowTiles(cr);
        f.bump(j, 4 * cr.size);
      });
    }
  };

  f.assign(tA, 0);
  if (opts.offsets) f.get(opts.offsets.b).set(tB).get(opts.offsets.c).set(tC);
  else f.assign(tB, 0).assign(tC, 0);
  f.repeat(counterT, batch, () => {
    matrix();
    f.bump(tA, k.strides ? k.strides.a : k.aBatched ? 4 * M * K : 0);
    f.bump(tB, k.strides ? k.strides.b : k.bBatched ? 4 * K * N : 0);
    f.bump(tC, k.strides ? k.strides.c : 4 * M * N);
  });
  return f;
}

/** P[p, j] = B[j, p] into the pack area: B is read in order, P written down its columns. */
function packInto(f: Body, k: MatmulKernel, tB: Local, src: Local, dst: Local, dstRow: Local, counterJ: Local, counterP: Local): void {
  const { N, K } = k;
  f.i32(k.b).get(tB).i32Add().set(src);
  f.assign(dstRow, k.pack!);
  f.repeat(counterJ, N, () => {
    f.get(dstRow).set(dst);
    f.repeat(counterP, K, () => {
      f.get(dst).get(src).f32Load(0).f32Store(0);
      f.bump(src, 4).bump(dst, 4 * N);
    });
    f.bump(dstRow, 4);
  });
}

/**
 * The packing of a ranged kernel's transposed B, as a function of its own (one matrix): of the
 * two parameters [start, end) of the rows of the stored B (the columns j of the packed P), so that
 * threads can pack disjoint columns; each P[p, j] is a copy, so no split changes a bit.
 */
export function packBody(k: MatmulKernel): Body {
  const f = new Body(2);
  const { N, K } = k;
  if (!k.transB || K === 0 || k.M * N === 0) return f;
  const [j, src, dst, dstRow, counterP] = Array.from({ length: 5 }, () => f.local('i32'));
  const [start, end] = [f.param(0), f.param(1)];
  f.get(start).set(j);
  f.i32(k.b).get(j).i32(4 * K).i32Mul().i32Add().set(src); // B[j, 0]
  f.i32(k.pack!).get(j).i32(4).i32Mul().i32Add().set(dstRow); // P[0, j]
  f.loopUntil(
    () => f.get(j).get(end).i32GeS(),
    () => {
      f.get(dstRow).set(dst);
      f.repeat(counterP, K, () => {
        f.get(dst).get(src).f32Load(0).f32Store(0);
        f.bump(src, 4).bump(dst, 4 * N);
      });
      f.bump(dstRow, 4).bump(j, 1);
    },
  );
  return f;
}
