// WebAssembly SIMD matmul kernels, specialised to one matmul's shapes and addresses.
//
// C[M,N] = op(A) · op(B) (op: optionally transposed), for each of `batch` matrices. The kernel
// vectorises along the columns of C: a register tile of R rows × V vectors (4 columns each)
// accumulates A[i,p]·B[p,j..j+3] over p, reading A one element at a time (splat, any stride, so
// transA costs nothing) and B four contiguous columns at a time. A transposed B is first packed
// into a scratch area as [K,N]. Columns past N in the last vector are computed (reading into the
// next row, or the padding after the arena) but never stored. Tiles walk the columns outermost,
// so that one panel of B (K × 4V) stays in cache while every row of A passes over it. The
// epilogue (bias add, activation, ...) runs on the accumulators before they are stored.

import type { F32x4Op, Local } from './encode.js';
import { Body } from './encode.js';

/** An operand of an epilogue step. */
export type Operand =
  | { readonly kind: 'acc' }
  /** The result of an earlier step. */
  | { readonly kind: 'step'; readonly step: number }
  /** A broadcast f32 array: element (i, j) at byte `addr + 4·(i·si + j·sj)`. */
  | { readonly kind: 'mem'; readonly addr: number; readonly si: number; readonly sj: number }
  | { readonly kind: 'const'; readonly value: number };

/** The elementwise operations an epilogue step can apply. */
export type EpilogueOp = Extract<F32x4Op, 'add' | 'sub' | 'mul' | 'div' | 'min' | 'max' | 'neg' | 'abs' | 'sqrt'> | 'relu' | 'square' | 'gt' | 'ge' | 'copy' | 'bn_apply' | 'recip' | 'rsqrt';

export interface EpilogueStep {
  readonly op: EpilogueOp;
  readonly args: readonly Operand[];
  /** Where the step's result is stored (an [M,N] array), if it is. */
  readonly store?: number;
}

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
  readonly epilogue: readonly EpilogueStep[];
  /** Register tile: rows × vectors of 4 columns. */
  readonly tile?: { readonly rows: number; readonly vecs: number };
}

export const DEFAULT_TILE = { rows: 4, vecs: 2 } as const;

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

/** The kernel as a function body. */
export function matmulBody(k: MatmulKernel): Body {
  const { M, N, K, batch, transA, transB } = k;
  const { rows: R, vecs: V } = k.tile ?? DEFAULT_TILE;
  const f = new Body();
  if (M * N * batch === 0) return f;
  const i32 = () => f.local('i32');
  const [tA, tB, tC, i, j, aPtr, bPtr, cPtr, counterT, counterJ, counterI, counterP, src, dst, dstRow] = Array.from({ length: 15 }, i32);
  const acc = Array.from({ length: R * V }, () => f.local('v128'));
  const bv = Array.from({ length: V }, () => f.local('v128'));
  const av = f.local('v128');
  const steps = k.epilogue.map(() => f.local('v128'));
  // pointers of the epilogue's memory operands and stores, set at the start of each tile
  const memPtrs = new Map<string, Local>();
  const memKey = (addr: number, si: number, sj: number) => `${addr}:${si}:${sj}`;
  const memPtr = (addr: number, si: number, sj: number) => {
    const key = memKey(addr, si, sj);
    if (!memPtrs.has(key)) memPtrs.set(key, i32());
    return memPtrs.get(key)!;
  };
  for (const s of k.epilogue) {
    for (const a of s.args) if (a.kind === 'mem') memPtr(a.addr, a.si, a.sj);
    if (s.store !== undefined) memPtr(s.store, N, 1);
  }
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

  const pushOperand = (o: Operand, r: number, v: number) => {
    switch (o.kind) {
      case 'acc':
        f.get(acc[r * V + v]!);
        return;
      case 'step':
        f.get(steps[o.step]!);
        return;
      case 'const':
        f.f32x4Const(o.value);
        return;
      case 'mem': {
        f.get(memPtr(o.addr, o.si, o.sj));
        const off = 4 * (r * o.si + 4 * v * o.sj);
        if (o.sj === 0) f.v128Load32Splat(off);
        else if (o.sj === 1) f.v128Load(off);
        else throw new Error(`internal: epilogue operand with column stride ${o.sj}`);
        return;
      }
    }
  };

  const store = (ptr: Local, value: Local, off: number, lanes: number) => {
    if (lanes === 4) {
      f.get(ptr).get(value).v128Store(off);
      return;
    }
    for (let lane = 0; lane < lanes; lane++) f.get(ptr).get(value).v128Store32Lane(off + 4 * lane, lane);
  };

  const epilogueAt = (r: number, v: number, lanes: number) => {
    k.epilogue.forEach((s, n) => {
      const [x, y, z] = s.args;
      const push = (o: Operand | undefined) => pushOperand(o!, r, v);
      switch (s.op) {
        case 'copy':
          push(x);
          break;
        case 'neg':
        case 'abs':
        case 'sqrt':
          push(x);
          f.f32x4(s.op);
          break;
        case 'square':
          push(x);
          push(x);
          f.f32x4('mul');
          break;
        case 'relu': // x > 0 ? x : 0, as pmax(0, x) = 0 < x ? x : 0
          f.f32x4Const(0);
          push(x);
          f.f32x4('pmax');
          break;
        case 'recip':
          f.f32x4Const(1);
          push(x);
          f.f32x4('div');
          break;
        case 'rsqrt':
          f.f32x4Const(1);
          push(x);
          f.f32x4('sqrt').f32x4('div');
          break;
        case 'gt':
        case 'ge': // a mask of all-ones lanes, and-ed with 1.0
          push(x);
          push(y);
          f.f32x4(s.op);
          f.f32x4Const(1).v128And();
          break;
        case 'bn_apply': // (x - mean) * scale
          push(x);
          push(y);
          f.f32x4('sub');
          push(z);
          f.f32x4('mul');
          break;
        default:
          push(x);
          push(y);
          f.f32x4(s.op);
      }
      f.set(steps[n]!);
      if (s.store !== undefined) store(memPtr(s.store, N, 1), steps[n]!, 4 * (r * N + 4 * v), lanes);
    });
  };

  const tile = (rows: number, vecs: number, lastLanes: number) => {
    // A[i, 0] and B[0, j] of this batch matrix
    setPtr(aPtr, k.a, transA ? 1 : K, 0, tA);
    setPtr(bPtr, bRows, 0, 1, transB ? undefined : tB);
    for (let n = 0; n < rows * vecs; n++) f.f32x4Const(0).set(acc[Math.floor(n / vecs) * V + (n % vecs)]!);
    if (K > 0)
      f.repeat(counterP, K, () => {
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
    if (k.c !== undefined) setPtr(cPtr, k.c, N, 1, tC);
    for (const [key, ptr] of memPtrs) {
      const [addr, si, sj] = key.split(':').map(Number) as [number, number, number];
      setPtr(ptr, addr, si, sj);
    }
    for (let r = 0; r < rows; r++)
      for (let v = 0; v < vecs; v++) {
        const lanes = v === vecs - 1 ? lastLanes : 4;
        if (k.c !== undefined) store(cPtr, acc[r * V + v]!, 4 * (r * N + 4 * v), lanes);
        epilogueAt(r, v, lanes);
      }
  };

  const pack = () => {
    // P[p, j] = B[j, p]: B is read in order, P written down its columns
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
  };

  const matrix = () => {
    if (transB && K > 0) pack();
    for (const cr of columnRuns(N, V)) {
      f.assign(j, cr.start);
      f.repeat(counterJ, cr.count, () => {
        for (const rr of rowRuns(M, R)) {
          f.assign(i, rr.start);
          f.repeat(counterI, rr.count, () => {
            tile(rr.size, cr.size, cr.lastLanes);
            f.bump(i, rr.size);
          });
        }
        f.bump(j, 4 * cr.size);
      });
    }
  };

  f.assign(tA, 0).assign(tB, 0).assign(tC, 0);
  f.repeat(counterT, batch, () => {
    matrix();
    if (k.aBatched) f.bump(tA, 4 * M * K);
    if (k.bBatched) f.bump(tB, 4 * K * N);
    f.bump(tC, 4 * M * N);
  });
  return f;
}
