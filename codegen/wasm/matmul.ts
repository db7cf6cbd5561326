// WebAssembly SIMD matmul kernels, specialised to one matmul's shapes and addresses.
//
// C[M,N] = op(A) · op(B) (op: optionally transposed), for each of `batch` matrices. The kernel
// vectorises along the columns of C: a register tile of R rows × V vectors (4 columns each)
// accumulates A[i,p]·B[p,j..j+3] over p (in blocks of MATMUL_BLOCK when K is longer), reading A one element at a time (splat, any stride, so
// transA costs nothing) and B four contiguous columns at a time. A transposed B is first packed
// into a scratch area (in panels of the tile's columns where N is a multiple of 4; an untransposed
// B too where it pays: see `panelled`). Columns past N in the last vector are computed (reading into the
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
  /**
   * A scratch area of K·N floats for packing B: a transposed B always needs it; an untransposed B
   * is packed when it is given (see `packsB`). Where N is a multiple of 4, B is packed in panels
   * (`panelled`), else (a transposed B only) as [K,N].
   */
  readonly pack?: number;
  /**
   * A scratch area of K·4V floats (V the tile's vectors) where an untransposed B is copied one
   * panel at a time before the row tiles read it (a convolution's col: see `panelled`); with
   * `offsets`, `offsets.panel` is added to it.
   */
  readonly panel?: number;
  readonly epilogue: readonly Step[];
  /** The epilogue as a writer at the tile's points instead (the static module's, of the kernel form: codegen/wasm/kernel.ts's TileEpilogue). */
  readonly epilogueWriter?: (f: Body) => Pick<StepWriter, 'pointers' | 'at' | 'store'>;
  /**
   * A scratch area of M·K floats where a transposed A is packed in row tiles (see `packsA`): tile
   * i (rows i..i+R−1, R = 4) at packA + 4·i·K, its K columns of R contiguous floats.
   */
  readonly packA?: number;
  /** Register tile: rows × vectors of 4 columns. */
  readonly tile?: { readonly rows: number; readonly vecs: number };
  /** Bytes from one matrix of the batch to the next, where not the matrices' sizes (a convolution's images). */
  readonly strides?: { readonly a: number; readonly b: number; readonly c: number };
}

export const DEFAULT_TILE = { rows: 4, vecs: 2 } as const;

/**
 * How the tiles read B. 'rows': B as [K,N] (row stride 4N bytes). 'panels': B packed whole into
 * panels of 4V columns (the tile's), each panel K rows of 4V floats one after another at
 * pack + 4·j·K (j its first column); 'panel': the panel of the tiles about to run copied into
 * `panel` first. A panel's rows are contiguous, so the K rows a tile reads stay in L1 for every
 * row tile that passes over them; B's own rows, 4N bytes apart, mapped onto few cache sets (a
 * stride of 4 KiB, N = 1024, onto one): [16,144]·[144,1024] ran at 13.7 GFLOP/s from B's rows and
 * 31.8 from panels, [512,768]ᵀ·[768,128] at 16.2 against 26.9 (2026-12-06, one thread, loaded machine).
 */
export function panelled(k: Pick<MatmulKernel, 'N' | 'transB' | 'pack' | 'panel'>): 'rows' | 'panels' | 'panel' {
  if (k.N % 4 !== 0) return 'rows';
  if (k.pack !== undefined) return 'panels';
  return !k.transB && k.panel !== undefined ? 'panel' : 'rows';
}

/**
 * B's floats above which its rows, 4N bytes apart, no longer stay in a 32 KiB L1 (8 ways of 64
 * sets of 64-byte lines: K rows 4N bytes apart fall in about 1024/N sets, 8 lines each, so a panel
 * of K rows stays while K·N ≤ 8192); below it B is read in place.
 */
export const PANEL_MIN_FLOATS = 8192;

/**
 * Whether an untransposed B is worth packing into panels (the caller then gives the kernel a pack
 * area of K·N floats): one matrix, several row tiles passing over each panel, B wider than a panel,
 * longer than a few rows and larger than PANEL_MIN_FLOATS.
 */
export function packsB(k: Pick<MatmulKernel, 'M' | 'N' | 'K' | 'batch' | 'transB' | 'tile'>): boolean {
  const { rows: R, vecs: V } = k.tile ?? DEFAULT_TILE;
  return !k.transB && k.batch === 1 && k.N % 4 === 0 && k.N > 4 * V && k.M >= 4 * R && k.K >= 16 && k.K * k.N > PANEL_MIN_FLOATS;
}

/**
 * The M from which a transposed A is packed: A's rows 4M bytes apart. At 512 packing ran 1.15–1.25×
 * faster. At M = 128 (the GPT's [128,768]ᵀ·[768,512] and [128,768]ᵀ·[768,384], A's rows 512 bytes
 * apart: 8 of L1's 64 sets) it ran no faster on its own, on operands left in cache by the run
 * before; in the module's step, where A is an activation of the forward pass long evicted, those
 * two kinds and [128,768]ᵀ·[768,128] ran 1–2% faster in the 10th percentiles of 30–60 steps (two
 * builds of each in alternation, 2026-12-07, load 5–7: 9.02 → 8.85 and 6.73 → 6.63 ms a step),
 * 3–11% in the medians while other processes loaded the machine (an unchanged kind's medians
 * moved up to 4% in the same runs), 3–12% in the medians of 2 threads (two runs).
 */
const PACK_A_MIN_M = 128;
/**
 * The floats of A from which it is packed: WaveNet's [256,32]ᵀ·[32,128] and [256,64]ᵀ·[64,128]
 * (8,192 and 16,384 floats) ran no faster packed; the GPT's 393,216 did.
 */
const PACK_A_MIN_FLOATS = 65536;

/**
 * Whether a transposed A (stored [K, M]) is worth packing into row tiles (the caller then gives the
 * kernel a `packA` area of M·K floats): one matrix, tiles of 4 rows, M at least PACK_A_MIN_M, at least PACK_A_MIN_FLOATS. A tile reads 16 bytes of each of K rows of A, 4M bytes apart: at M = 512
 * (the GPT's weight gradients, [512,768]ᵀ·[768,128]) a stride of 2 KiB, so the K lines fall in 2
 * of L1's 64 sets and are gone before the next tile reads their next 16 bytes; packed, a tile's A is
 * 16·K contiguous bytes. The packing copies each 16 bytes once (a vector), of one line of A for
 * four tiles at a time.
 */
export function packsA(k: Pick<MatmulKernel, 'M' | 'K' | 'batch' | 'transA' | 'tile'>): boolean {
  const { rows: R } = k.tile ?? DEFAULT_TILE;
  return k.transA && k.batch === 1 && R === 4 && k.M >= PACK_A_MIN_M && k.K >= 16 && k.M * k.K >= PACK_A_MIN_FLOATS;
}

/** Floats of pack area a kernel needs: K·N for each matrix of a batch whose B it packs (a kernel of `batches`: threads take whole matrices), 0 if it packs none. */
export function packFloats(k: Pick<MatmulKernel, 'N' | 'K' | 'batch' | 'transB'> & { readonly tile?: MatmulKernel['tile']; readonly M: number }): number {
  return k.transB || packsB(k) ? k.batch * k.K * k.N : 0;
}

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
 * order as the whole kernel. A ranged kernel does not pack B: `packBody` does, once,
 * before the blocks run. With `batches` it is a function of the matrices [start, end) of the
 * batch (each packing its own B, in a pack area of `packFloats`).
 */
export function matmulBody(k: MatmulKernel, opts: { ranged?: boolean; batches?: boolean } = {}): Body {
  return matmulInto(new Body(opts.ranged || opts.batches ? 2 : 0), k, opts);
}

/** matmulInto's options (see there). */
interface IntoOptions {
  readonly ranged?: boolean;
  readonly batches?: boolean;
  readonly offsets?: { readonly a?: Local; readonly b: Local; readonly c: Local; readonly panel?: Local };
  readonly prepacked?: boolean;
}

/**
 * One kernel's emission state: the body, the kernel, its options and the locals every step shares
 * (allocated up front in one order, so that the emitted module does not depend on how the steps
 * are split).
 */
interface Emit {
  readonly f: Body;
  readonly k: MatmulKernel;
  readonly opts: IntoOptions;
  readonly R: number;
  readonly V: number;
  readonly ranged: boolean;
  readonly prepacked: boolean;
  /** A batch split over threads (`batches`) packs matrix t's B at pack + 4·t·K·N (see `packFloats`); a prepacked B's offset. */
  readonly packOff: Local | undefined;
  readonly tA: Local;
  readonly tB: Local;
  readonly tC: Local;
  readonly i: Local;
  readonly j: Local;
  readonly aPtr: Local;
  readonly bPtr: Local;
  readonly cPtr: Local;
  readonly counterT: Local;
  readonly counterJ: Local;
  readonly counterI: Local;
  readonly counterP: Local;
  readonly src: Local;
  readonly dst: Local;
  /** The R·V accumulators, row-major; with K > MATMUL_BLOCK their f64 totals (two f64x2 each) and the blocks' counter. */
  readonly acc: readonly Local[];
  readonly outer: readonly (readonly [Local, Local])[];
  readonly counterB: Local | undefined;
  readonly bv: readonly Local[];
  readonly av: Local;
  readonly epilogue: Pick<StepWriter, 'pointers' | 'at' | 'store'>;
  /** B as [K,N]. */
  readonly bRows: number;
  readonly layout: ReturnType<typeof panelled>;
  readonly panelAt: Local | undefined;
  /** A transposed A packed in row tiles (`packsA`): the full tiles read it from there, a ragged last tile from A. */
  readonly packedA: boolean;
  readonly fullRows: number;
}

/**
 * The kernel's code appended to `f` (a convolution's kernel runs its matmuls after its im2col).
 * With `ranged`, `f` has the two parameters [start, end) of the rows (see `matmulBody`). With
 * `offsets` (one matrix), locals of `f` holding byte offsets added to the addresses of B and C
 * (a convolution's image), and of A where given. With `prepacked` (and offsets), B is already in
 * panels at k.pack + offsets.b (a convolution's col written as panels): nothing is packed.
 */
export function matmulInto(f: Body, k: MatmulKernel, opts: IntoOptions = {}): Body {
  const { M, N, K, batch } = k;
  if ((opts.ranged || opts.offsets) && batch !== 1) throw new Error('internal: a ranged or offset matmul over a batch');
  if (M * N * batch === 0) return f;
  const e = emitState(f, k, opts);
  const { tA, tB, tC, packOff, prepacked } = e;
  const strideA = k.strides ? k.strides.a : k.aBatched ? 4 * M * K : 0;
  const strideB = k.strides ? k.strides.b : k.bBatched ? 4 * K * N : 0;
  const strideC = k.strides ? k.strides.c : 4 * M * N;
  const next = () => {
    f.bump(tA, strideA).bump(tB, strideB).bump(tC, strideC);
    if (packOff && !prepacked) f.bump(packOff, 4 * K * N);
  };
  if (opts.batches) {
    // the matrices [start, end) of the batch: the blocks of threads, each matrix computed as the whole kernel does
    const [start, end, t] = [f.param(0), f.param(1), f.local('i32')];
    f.get(start).set(t);
    for (const [l, stride] of [[tA, strideA], [tB, strideB], [tC, strideC], ...(packOff ? [[packOff, 4 * K * N] as const] : [])] as const) f.get(t).i32(stride).i32Mul().set(l);
    f.loopUntil(
      () => f.get(t).get(end).i32GeS(),
      () => {
        emitMatrix(e);
        next();
        f.bump(t, 1);
      },
    );
    return f;
  }
  if (opts.offsets?.a) f.get(opts.offsets.a).set(tA);
  else f.assign(tA, 0);
  if (packOff && !prepacked) f.assign(packOff, 0);
  if (opts.offsets) f.get(opts.offsets.b).set(tB).get(opts.offsets.c).set(tC);
  else f.assign(tB, 0).assign(tC, 0);
  f.repeat(e.counterT, batch, () => {
    emitMatrix(e);
    next();
  });
  return f;
}

/** Checks matmulInto's options against the kernel and allocates the locals its steps share. */
function emitState(f: Body, k: MatmulKernel, opts: IntoOptions): Emit {
  const { M, K, batch, transB } = k;
  const { rows: R, vecs: V } = k.tile ?? DEFAULT_TILE;
  // `prepacked` (one matrix, with offsets): B is already in panels at k.pack + offsets.b (a convolution's col written in panels)
  const prepacked = opts.prepacked === true;
  if (prepacked && (!opts.offsets || opts.batches || opts.ranged || k.pack === undefined || batch !== 1 || panelled(k) !== 'panels')) throw new Error('internal: a prepacked B needs offsets and panels');
  const packOff = prepacked ? opts.offsets!.b : opts.batches && batch > 1 && k.pack !== undefined ? f.local('i32') : undefined;
  const i32 = () => f.local('i32');
  const [tA, tB, tC, i, j, aPtr, bPtr, cPtr, counterT, counterJ, counterI, counterP, src, dst] = Array.from({ length: 14 }, i32);
  i32(); // a scratch local no step uses (kept: the locals' numbering, so the emitted modules, stay as they were)
  const acc = Array.from({ length: R * V }, () => f.local('v128'));
  const outer = K > MATMUL_BLOCK ? Array.from({ length: R * V }, () => [f.local('v128'), f.local('v128')] as const) : [];
  const counterB = K > MATMUL_BLOCK ? f.local('i32') : undefined;
  const bv = Array.from({ length: V }, () => f.local('v128'));
  const av = f.local('v128');
  const epilogue = k.epilogueWriter?.(f) ?? new StepWriter(f, k.epilogue, k.N);
  const layout = panelled(k);
  const panelAt = layout === 'panel' ? f.local('i32') : undefined;
  return {
    f, k, opts, R, V, ranged: opts.ranged ?? false, prepacked, packOff,
    tA, tB, tC, i, j, aPtr, bPtr, cPtr, counterT, counterJ, counterI, counterP, src, dst,
    acc, outer, counterB, bv, av, epilogue,
    bRows: transB ? k.pack! : k.b,
    layout, panelAt,
    packedA: k.packA !== undefined && packsA(k) && !(opts.batches && batch > 1),
    fullRows: M - (M % R),
  };
}

/** ptr = base + i·si·4 + j·sj·4 (+ extra) */
function setPtr(e: Emit, ptr: Local, base: number, si: number, sj: number, extra?: Local): void {
  const { f, i, j } = e;
  f.i32(base);
  if (extra) f.get(extra).i32Add();
  if (si) f.get(i).i32(4 * si).i32Mul().i32Add();
  if (sj) f.get(j).i32(4 * sj).i32Mul().i32Add();
  f.set(ptr);
}

/** One matrix of the batch: A's row tiles and B packed where they are, then the tiles column run by column run. */
function emitMatrix(e: Emit): void {
  const { f, k, i, j, src, dst, counterJ, counterP, tB, packOff, panelAt, V } = e;
  const { N, K } = k;
  if (e.packedA && K > 0) {
    // the full row tiles of the rows this call computes: [0, fullRows), or [start, min(end, fullRows))
    const endL = f.local('i32');
    if (e.ranged) {
      f.get(f.param(0)).set(i).get(f.param(1)).set(endL);
      f.when(() => f.get(endL).i32(e.fullRows).i32GtS(), () => f.assign(endL, e.fullRows));
    } else f.assign(i, 0).assign(endL, e.fullRows);
    packATiles(f, k, e.R, i, endL, src, dst, counterP);
  }
  if (k.pack !== undefined && K > 0 && !e.ranged && !e.prepacked) {
    if (!k.transB) packRowsInto(f, k, V, tB, j, src, dst, counterJ, packOff);
    else if (N % 4 === 0 && K % 4 === 0) packBlocksInto(f, k, tB, src, dst, counterJ, counterP, packOff);
    else packInto(f, k, tB, src, dst, counterJ, counterP, packOff);
  }
  if (panelAt) {
    f.i32(k.panel!);
    if (e.opts.offsets?.panel) f.get(e.opts.offsets.panel).i32Add();
    f.set(panelAt);
  }
  for (const cr of columnRuns(N, V)) {
    f.assign(j, cr.start);
    f.repeat(counterJ, cr.count, () => {
      if (panelAt) copyPanel(f, k, cr.size, tB, j, panelAt, src, dst, counterP);
      emitRowTiles(e, cr);
      f.bump(j, 4 * cr.size);
    });
  }
}

/** The row tiles of one column run: all of them, or those of [start, end). */
function emitRowTiles(e: Emit, cr: Run): void {
  const { f, i, R } = e;
  const M = e.k.M;
  if (!e.ranged) {
    for (const rr of rowRuns(M, R)) {
      f.assign(i, rr.start);
      f.repeat(e.counterI, rr.count, () => {
        emitTile(e, rr.size, cr.size, cr.lastLanes);
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
      emitTile(e, R, cr.size, cr.lastLanes);
      f.bump(i, R);
    },
  );
  if (M % R) f.when(() => f.get(i).get(end).i32LtS(), () => emitTile(e, M % R, cr.size, cr.lastLanes));
}

/** One register tile of `rows` × `vecs`: its pointers, its sums over K (in f32 blocks added into f64 where K is long), its epilogue and stores. */
function emitTile(e: Emit, rows: number, vecs: number, lastLanes: number): void {
  const { f, k, V, acc, outer } = e;
  const { N, K } = k;
  const used = [...Array(rows * vecs).keys()].map((n) => Math.floor(n / vecs) * V + (n % vecs));
  tilePointers(e, rows);
  for (const n of used) f.f32x4Const(0).set(acc[n]!);
  const products = (count: number) => tileProducts(e, rows, vecs, count);
  if (K > MATMUL_BLOCK) {
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
    f.repeat(e.counterB!, Math.floor(K / MATMUL_BLOCK), () => {
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
  if (k.c !== undefined) setPtr(e, e.cPtr, k.c, N, 1, e.tC);
  for (const p of e.epilogue.pointers) setPtr(e, p.local, p.addr, p.si, p.sj);
  for (let r = 0; r < rows; r++)
    for (let v = 0; v < vecs; v++) {
      const lanes = v === vecs - 1 ? lastLanes : 4;
      if (k.c !== undefined) e.epilogue.store(e.cPtr, acc[r * V + v]!, 4 * (r * N + 4 * v), lanes);
      e.epilogue.at(r, v, lanes, acc[r * V + v]!);
    }
}

/** Bytes between A[i,p] and A[i+1,p] (`row`) and between A[i,p] and A[i,p+1] (`step`) as a tile of `rows` reads them. */
function aStrides(e: Emit, rows: number): { readonly fromPack: boolean; readonly row: number; readonly step: number } {
  const { k } = e;
  const fromPack = e.packedA && rows === e.R;
  return { fromPack, row: fromPack || k.transA ? 4 : 4 * k.K, step: fromPack ? 4 * e.R : k.transA ? 4 * k.M : 4 };
}

/** A tile's aPtr and bPtr at A[i, 0] and B[0, j] of this batch matrix. */
function tilePointers(e: Emit, rows: number): void {
  const { f, k } = e;
  if (aStrides(e, rows).fromPack) setPtr(e, e.aPtr, k.packA!, k.K, 0);
  else setPtr(e, e.aPtr, k.a, k.transA ? 1 : k.K, 0, e.tA);
  if (e.layout === 'rows') setPtr(e, e.bPtr, e.bRows, 0, 1, k.transB ? e.packOff : e.tB);
  else if (e.layout === 'panels') setPtr(e, e.bPtr, k.pack!, 0, k.K, e.packOff);
  else f.get(e.panelAt!).set(e.bPtr);
}

/** `count` products of a tile's sums: B's vectors of row p, each of A's rows splat and multiplied into them; aPtr and bPtr one p further each. */
function tileProducts(e: Emit, rows: number, vecs: number, count: number): void {
  const { f, aPtr, bPtr, bv, av, acc, V } = e;
  const a = aStrides(e, rows);
  const bStep = e.layout === 'rows' ? 4 * e.k.N : 16 * vecs; // bytes from B[p, j] to B[p+1, j]
  f.repeat(e.counterP, count, () => {
    for (let v = 0; v < vecs; v++) f.get(bPtr).v128Load(16 * v).set(bv[v]!);
    for (let r = 0; r < rows; r++) {
      f.get(aPtr).v128Load32Splat(r * a.row).set(av);
      for (let v = 0; v < vecs; v++) {
        const c = acc[r * V + v]!;
        f.get(av).get(bv[v]!).madd(c).set(c);
      }
    }
    f.bump(aPtr, a.step).bump(bPtr, bStep);
  });
}

/**
 * The row tiles of a transposed A from row i (a multiple of R) up to endL into k.packA: tile i's
 * P[p] = A[p, i..i+R−1] (one vector), four tiles (one line of A) at a time while four fit. i and
 * the others are scratch.
 */
function packATiles(f: Body, k: MatmulKernel, R: number, i: Local, endL: Local, src: Local, dst: Local, counter: Local): void {
  const { M, K } = k;
  for (const width of [4, 1])
    f.loopUntil(
      () => f.get(i).i32(R * width).i32Add().get(endL).i32GtS(),
      () => {
        f.i32(k.a).get(i).i32(4).i32Mul().i32Add().set(src);
        f.i32(k.packA!).get(i).i32(4 * K).i32Mul().i32Add().set(dst);
        f.repeat(counter, K, () => {
          for (let t = 0; t < width; t++) f.get(dst).get(src).v128Load(16 * t).v128Store(4 * R * K * t);
          f.bump(src, 4 * M).bump(dst, 4 * R);
        });
        f.bump(i, R * width);
      },
    );
}

/**
 * Where column j of the packed B starts (P[0, j]) as a byte address, on the stack: pack + 4·j for
 * [K,N]; in panels, pack + 4·(j0·K + j − j0) for the panel starting at column j0, and the bytes
 * between P[p, j] and P[p+1, j] (the panel's width; the last panel may be narrower).
 */
function packedColumn(f: Body, k: MatmulKernel, V: number, j: Local, step: Local, off?: Local): void {
  const { N, K } = k;
  if (off) f.get(off);
  else f.i32(0);
  if (panelled(k) !== 'panels') {
    f.i32(4 * N).set(step);
    f.i32(k.pack!).get(j).i32(4).i32Mul().i32Add().i32Add();
    return;
  }
  const w = 4 * V;
  // j0 = j − j % w; width = min(w, N − j0)
  const j0 = () => f.get(j).i32(w).i32DivU().i32(w).i32Mul();
  f.i32(N);
  j0();
  f.i32Sub().set(step);
  f.when(() => f.get(step).i32(w).i32GtS(), () => f.i32(w).set(step));
  f.get(step).i32(4).i32Mul().set(step);
  // pack + 4·j0·K + 4·(j − j0)
  f.i32(k.pack!);
  j0();
  f.i32(4 * K).i32Mul().i32Add().get(j).i32(4).i32Mul().i32Add();
  j0();
  f.i32(4).i32Mul().i32Sub().i32Add();
}

/** Row p of an untransposed B (at src) into its panels (p in `p`); dst is scratch. */
function copyRowIntoPanels(f: Body, k: MatmulKernel, V: number, p: Local, src: Local, dst: Local, off?: Local): void {
  const { N, K } = k;
  const w = 4 * V;
  for (let j0 = 0; j0 < N; j0 += w) {
    const width = Math.min(w, N - j0);
    f.i32(k.pack! + 4 * j0 * K).get(p).i32(4 * width).i32Mul().i32Add();
    if (off) f.get(off).i32Add();
    f.set(dst);
    for (let v = 0; v < width / 4; v++) f.get(dst).get(src).v128Load(4 * j0 + 16 * v).v128Store(16 * v);
  }
}

/** Every row of an untransposed B (of this batch matrix: tB) into its panels; j, src, dst and counter are scratch. */
function packRowsInto(f: Body, k: MatmulKernel, V: number, tB: Local, j: Local, src: Local, dst: Local, counter: Local, off?: Local): void {
  f.i32(k.b).get(tB).i32Add().set(src);
  f.assign(j, 0);
  f.repeat(counter, k.K, () => {
    copyRowIntoPanels(f, k, V, j, src, dst, off);
    f.bump(src, 4 * k.N).bump(j, 1);
  });
}

/** The panel of B starting at column j (`vecs` vectors wide): its K rows B[p, j..] → panel[p], at panelAt; src, dst and counter are scratch. */
function copyPanel(f: Body, k: MatmulKernel, vecs: number, tB: Local, j: Local, panelAt: Local, src: Local, dst: Local, counter: Local): void {
  f.i32(k.b).get(tB).i32Add().get(j).i32(4).i32Mul().i32Add().set(src);
  f.get(panelAt).set(dst);
  f.repeat(counter, k.K, () => {
    for (let v = 0; v < vecs; v++) f.get(dst).get(src).v128Load(16 * v).v128Store(16 * v);
    f.bump(src, 4 * k.N).bump(dst, 16 * vecs);
  });
}

/** P[p, j] = B[j, p] into the pack area: B is read in order, P written down its columns. */
function packInto(f: Body, k: MatmulKernel, tB: Local, src: Local, dst: Local, counterJ: Local, counterP: Local, off?: Local): void {
  const { K } = k;
  const { vecs: V } = k.tile ?? DEFAULT_TILE;
  const [j, step] = [f.local('i32'), f.local('i32')];
  f.i32(k.b).get(tB).i32Add().set(src);
  f.assign(j, 0);
  f.repeat(counterJ, k.N, () => {
    packedColumn(f, k, V, j, step, off);
    f.set(dst);
    f.repeat(counterP, K, () => {
      f.get(dst).get(src).f32Load(0).f32Store(0);
      f.bump(src, 4).get(dst).get(step).i32Add().set(dst);
    });
    f.bump(j, 1);
  });
}

/**
 * P[p, j] = B[j, p] as packInto, in blocks of 4 × 4 (N and K multiples of 4): four rows of B
 * loaded 4 floats at a time, transposed by shuffles, each column stored as the 4 contiguous floats
 * P[p, j..j+3] (a panel's columns come in fours). Against packInto's one float at a time, the
 * attention's 48 × [64,32]ᵀ packs a sixth of the instructions.
 */
function packBlocksInto(f: Body, k: MatmulKernel, tB: Local, src: Local, dst: Local, counterJ: Local, counterP: Local, off?: Local): void {
  const { vecs: V } = k.tile ?? DEFAULT_TILE;
  const four = fourColumns(f, k, V, src, dst, counterP, off);
  f.i32(k.b).get(tB).i32Add().set(src);
  f.assign(four.j, 0);
  f.repeat(counterJ, k.N / 4, four.pack);
}

/** Packs the four columns j…j+3 of P from four rows of a transposed B at src (src then four rows further, j + 4): `pack`, with its j. */
function fourColumns(f: Body, k: MatmulKernel, V: number, src: Local, dst: Local, counterP: Local, off?: Local, j = f.local('i32'), step = f.local('i32')): { j: Local; pack: () => void } {
  const rows = Array.from({ length: 4 }, () => f.local('v128'));
  const pairs = Array.from({ length: 4 }, () => f.local('v128'));
  const pack = () => {
    packedColumn(f, k, V, j, step, off);
    f.set(dst);
    transposeRows4(f, k.K, src, dst, step, counterP, rows, pairs);
    f.bump(src, 12 * k.K).bump(j, 4);
  };
  return { j, pack };
}

/** Four rows of B from src (K floats each, K a multiple of 4) down four columns of P from dst (`step` bytes between its rows), 4 × 4 blocks at a time; src ends one row further. */
function transposeRows4(f: Body, K: number, src: Local, dst: Local, step: Local, counterP: Local, rows: readonly Local[], pairs: readonly Local[]): void {
  f.repeat(counterP, K / 4, () => {
    rows.forEach((r, n) => f.get(src).v128Load(4 * K * n).set(r));
    transpose4x4(f, rows, pairs, (_i, push) => {
      f.get(dst);
      push();
      f.v128Store(0);
      f.get(dst).get(step).i32Add().set(dst);
    });
    f.bump(src, 16);
  });
}

/**
 * The 4×4 transpose of the vectors in `rows` (rows a, b, c, d): [a0 b0 a1 b1], [a2 b2 a3 b3],
 * [c0 d0 c1 d1], [c2 d2 c3 d3] into `pairs`, then each output row i, [ai bi ci di], pushed by
 * `push` inside `store(i, push)` (which writes it). Also codegen/wasm/transpose.ts's tiles.
 */
export function transpose4x4(f: Body, rows: readonly Local[], pairs: readonly Local[], store: (i: number, push: () => void) => void): void {
  for (const [t, x, y, lanes] of [[0, 0, 1, [0, 4, 1, 5]], [1, 0, 1, [2, 6, 3, 7]], [2, 2, 3, [0, 4, 1, 5]], [3, 2, 3, [2, 6, 3, 7]]] as const) f.get(rows[x]!).get(rows[y]!).i32x4Shuffle(lanes).set(pairs[t]!);
  ([[0, 2, [0, 1, 4, 5]], [0, 2, [2, 3, 6, 7]], [1, 3, [0, 1, 4, 5]], [1, 3, [2, 3, 6, 7]]] as const).forEach(([x, y, lanes], i) => store(i, () => f.get(pairs[x]!).get(pairs[y]!).i32x4Shuffle(lanes)));
}

/**
 * The packing of a ranged kernel's B (transposed, or untransposed with a pack area), as a function
 * of its own (one matrix): of the two parameters [start, end) of the rows of the stored B (the
 * columns j of the packed P where B is transposed, its rows p where not), so that threads can pack
 * disjoint parts; each P[p, j] is a copy, so no split changes a bit.
 */
export function packBody(k: MatmulKernel): Body {
  const f = new Body(2);
  const { N, K } = k;
  if (k.pack === undefined || K === 0 || k.M * N === 0) return f;
  const { vecs: V } = k.tile ?? DEFAULT_TILE;
  const [j, src, dst, step, counterP] = Array.from({ length: 5 }, () => f.local('i32'));
  const [start, end] = [f.param(0), f.param(1)];
  f.get(start).set(j);
  f.i32(k.b).get(j).i32(4 * (k.transB ? K : N)).i32Mul().i32Add().set(src); // B's row j
  if (!k.transB && N % 4 === 0) packBlocksOfRows(f, k, V, j, end, src, dst);
  const oneRow = () => {
    if (k.transB) {
      packedColumn(f, k, V, j, step);
      f.set(dst);
      f.repeat(counterP, K, () => {
        f.get(dst).get(src).f32Load(0).f32Store(0);
        f.bump(src, 4).get(dst).get(step).i32Add().set(dst);
      });
    } else {
      copyRowIntoPanels(f, k, V, j, src, dst);
      f.bump(src, 4 * N);
    }
    f.bump(j, 1);
  };
  if (k.transB && K % 4 === 0 && N % 4 === 0) {
    // a transposed B's rows one at a time up to a multiple of 4, then four at a time in 4 × 4 blocks (as packBlocksInto)
    f.loopUntil(() => f.get(j).i32(3).raw(0x71).i32Eqz().get(j).get(end).i32GeS().raw(0x72), oneRow); // (j & 3) = 0 or j ≥ end
    f.loopUntil(() => f.get(j).i32(4).i32Add().get(end).i32GtS(), fourColumns(f, k, V, src, dst, counterP, undefined, j, step).pack);
  }
  f.loopUntil(() => f.get(j).get(end).i32GeS(), oneRow);
  return f;
}

/**
 * Rows of B copied into panels a block of PACK_BLOCK_ROWS at a time (packBody's untransposed B):
 * each panel's rows of the block (PACK_BLOCK_ROWS·16V contiguous bytes, whole lines) written one
 * after another from the block's rows of B (PACK_BLOCK_ROWS·4N contiguous bytes, in L1). Row by row
 * (copyRowIntoPanels) the N/4V panels take 16V bytes each per row, K·16V bytes apart: at the GPT's
 * N = 512 (64 panels 24 KiB apart, all in one set of L1) every line was written back before its
 * second half came, and [768,512] took 0.37 ms to pack (2026-12-07).
 */
const PACK_BLOCK_ROWS = 16;

/** The rows p of [j, end) of an untransposed B into panels while a whole block of them remains, then the rest row by row; src is B's row j. */
function packBlocksOfRows(f: Body, k: MatmulKernel, V: number, j: Local, end: Local, src: Local, dst: Local): void {
  const { N, K } = k;
  const w = 4 * V;
  const full = Math.floor(N / w);
  const [sp, dp, counter] = [f.local('i32'), f.local('i32'), f.local('i32')];
  f.loopUntil(
    () => f.get(j).i32(PACK_BLOCK_ROWS).i32Add().get(end).i32GtS(),
    () => {
      if (full > 0) {
        // the full panels: panel n at pack + 16V·K·n, its row p at 16V·p further
        f.get(src).set(sp);
        f.i32(k.pack!).get(j).i32(4 * w).i32Mul().i32Add().set(dp);
        f.repeat(counter, full, () => {
          for (let r = 0; r < PACK_BLOCK_ROWS; r++) for (let v = 0; v < V; v++) f.get(dp).get(sp).v128Load(4 * N * r + 16 * v).v128Store(4 * w * r + 16 * v);
          f.bump(sp, 4 * w).bump(dp, 4 * w * K);
        });
      }
      const rest = N - full * w;
      if (rest > 0) {
        // the ragged last panel (rest columns, a multiple of 4) at pack + 4·j0·K, its row p at 4·rest·p further
        const j0 = full * w;
        f.i32(k.pack! + 4 * j0 * K).get(j).i32(4 * rest).i32Mul().i32Add().set(dp);
        for (let r = 0; r < PACK_BLOCK_ROWS; r++) for (let v = 0; v < rest / 4; v++) f.get(dp).get(src).v128Load(4 * j0 + 4 * N * r + 16 * v).v128Store(4 * rest * r + 16 * v);
      }
      f.bump(src, 4 * N * PACK_BLOCK_ROWS).bump(j, PACK_BLOCK_ROWS);
    },
  );
}
