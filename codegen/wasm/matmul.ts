// WebAssembly SIMD matmul kernels, specialised to one matmul's shapes and addresses (or, for the
// symbolic module, reading its rows, products, matrices and addresses at run time: MatmulCode).
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
import type { I32 } from './index-lines.js';
import { bumpBy, hoisted, push, repeatN, text } from './index-lines.js';
import { DEFAULT_TILE, copyPanel, packATiles, packBlocksInto, packInto, packRowsInto, packsA, panelMinK, panelled, times } from './matmul-pack.js';

export { DEFAULT_TILE, PANEL_MIN_FLOATS, packBody, packFloats, packsA, packsB, panelMinK, panelled, transpose4x4 } from './matmul-pack.js';
import type { TileEpilogue } from './tile-epilogue.js';
import { storeLanes } from './tile-epilogue.js';

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
  /** The epilogue, written at the tile's points (the kernel form's: codegen/wasm/tile-epilogue.ts); without one the product is stored at c. */
  readonly epilogueWriter?: (f: Body) => TileWriter;
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

/**
 * A matmul kernel whose sizes M, N, K and matrices `batch`, and whose addresses, may be
 * run-time values (the symbolic module's, built once: codegen/wasm/symbolic-forms.ts). A kernel
 * with a run-time value may pack a transposed B, a B of static sizes and address (a weight, in
 * panels, where M is 4R rows or more at run time) and, with M a number and tiles of 4 rows, a
 * transposed A; it has no panel, no strides and none of matmulInto's options (its epilogue, a
 * TileEpilogue, may read arrays at run-time addresses).
 */
export type MatmulCode = Omit<MatmulKernel, 'M' | 'N' | 'K' | 'batch' | 'a' | 'b' | 'c' | 'pack' | 'packA'> & {
  readonly M: I32;
  readonly N: I32;
  readonly K: I32;
  readonly batch: I32;
  readonly a: I32;
  readonly b: I32;
  readonly c?: I32;
  readonly pack?: I32;
  /** A transposed A's row tiles (see packsA; a kernel of run-time sizes packs where it is given one: its M a number). */
  readonly packA?: I32;
};

/** Whether every size and address of the kernel is a number. */
function isStaticCode(k: MatmulCode): k is MatmulKernel {
  return [k.M, k.N, k.K, k.batch, k.a, k.b, k.c, k.pack, k.packA].every((x) => x === undefined || typeof x === 'number');
}

/** What a kernel writes at each point of its register tiles (after setting `pointers` at each tile). */
export type TileWriter = Pick<TileEpilogue, 'pointers' | 'at' | 'store'>;

/** No epilogue: the tile's accumulators stored as they are (`lanes` of the last vector). */
function plainStores(f: Body): TileWriter {
  return {
    pointers: [],
    at: () => undefined,
    store: (ptr, value, off, lanes) => storeLanes(f, ptr, value, off, lanes),
  };
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
export function matmulBody(k: MatmulCode, opts: { ranged?: boolean; batches?: boolean } = {}): Body {
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
  readonly k: MatmulCode;
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
  readonly epilogue: TileWriter;
  /** B as [K,N]. */
  readonly bRows: I32;
  readonly layout: ReturnType<typeof panelled>;
  readonly panelAt: Local | undefined;
  /** A transposed A packed in row tiles (`packsA`): the full tiles read it from there, a ragged last tile from A. */
  readonly packedA: boolean;
  readonly fullRows: number;
  /** Run-time sizes (the symbolic module's): r·(A's row stride) for r = 1 … R−1 where that stride is one, M mod R where M is one. */
  readonly aRows: readonly I32[];
  readonly ragged: I32;
  /** A run-time K's f64 totals' start (see runTimeBlocks). */
  readonly start: Local | undefined;
  /** The epilogue's pointers' addresses (run-time ones read once, at the kernel's start). */
  readonly pointerAt: readonly I32[];
  /** A run-time N: r·4N (C's row r from the tile's first) for r = 1 … R−1, and a local for row r's address. */
  readonly cRows: readonly I32[];
  readonly rowPtr: Local | undefined;
  /** Bytes between B's rows as [K,N] (a run-time N: read once). */
  readonly bRowStep: I32;
}

/**
 * The kernel's code appended to `f` (a convolution's kernel runs its matmuls after its im2col).
 * With `ranged`, `f` has the two parameters [start, end) of the rows (see `matmulBody`). With
 * `offsets` (one matrix), locals of `f` holding byte offsets added to the addresses of B and C
 * (a convolution's image), and of A where given. With `prepacked` (and offsets), B is already in
 * panels at k.pack + offsets.b (a convolution's col written as panels): nothing is packed.
 */
export function matmulInto(f: Body, code: MatmulCode, opts: IntoOptions = {}): Body {
  const k = isStaticCode(code) ? code : runTime(f, code, opts);
  const { M, N, K, batch } = k;
  if ((opts.ranged || opts.offsets) && batch !== 1) throw new Error('internal: a ranged or offset matmul over a batch');
  if (typeof M === 'number' && typeof N === 'number' && typeof batch === 'number' && M * N * batch === 0) return f;
  const e = emitState(f, k, opts);
  const { tA, tB, tC, packOff, prepacked } = e;
  const strideA = k.strides ? k.strides.a : k.aBatched ? hoisted(f, times(4, M, K)) : 0;
  const strideB = k.strides ? k.strides.b : k.bBatched ? hoisted(f, times(4, K, N)) : 0;
  const strideC = k.strides ? k.strides.c : hoisted(f, times(4, M, N));
  const next = () => {
    bumpBy(f, tA, strideA);
    bumpBy(f, tB, strideB);
    bumpBy(f, tC, strideC);
    if (packOff && !prepacked) f.bump(packOff, 4 * (K as number) * (N as number));
  };
  if (opts.batches) {
    if (!isStaticCode(k)) throw new Error('internal: a matmul of run-time sizes split over threads');
    // the matrices [start, end) of the batch: the blocks of threads, each matrix computed as the whole kernel does
    const [start, end, t] = [f.param(0), f.param(1), f.local('i32')];
    f.get(start).set(t);
    for (const [l, stride] of [[tA, strideA], [tB, strideB], [tC, strideC], ...(packOff ? [[packOff, 4 * k.K * k.N] as const] : [])] as const) f.get(t).i32(stride as number).i32Mul().set(l);
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
  repeatN(f, e.counterT, batch, () => {
    emitMatrixAt(e);
    next();
  });
  return f;
}

/**
 * A kernel of run-time values checked (see MatmulCode) and with them computed into locals at its
 * start (each then read from its local).
 */
function runTime(f: Body, k: MatmulCode, opts: IntoOptions): MatmulCode {
  const rowsPacked = k.pack !== undefined && !k.transB;
  if ((k.packA !== undefined && (typeof k.M !== 'number' || k.batch !== 1 || (k.tile ?? DEFAULT_TILE).rows !== 4)) || k.panel !== undefined || k.strides || opts.ranged || opts.batches || opts.offsets || (rowsPacked && [k.N, k.batch].some((x) => typeof x !== 'number')))
    throw new Error(`internal: matmul ${k.name} of run-time sizes packs A, has panels, strides or options, or packs a B of a run-time N or batch into panels`);
  const [M, N, K, batch, a, b, c, pack, packA] = [k.M, k.N, k.K, k.batch, k.a, k.b, k.c, k.pack, k.packA].map((x) => (x === undefined ? x : hoisted(f, x)));
  return { ...k, M: M!, N: N!, K: K!, batch: batch!, a: a!, b: b!, c, pack, packA };
}

/** Checks matmulInto's options against the kernel and allocates the locals its steps share. */
function emitState(f: Body, k: MatmulCode, opts: IntoOptions): Emit {
  const { M, K, batch, transB } = k;
  const { rows: R, vecs: V } = k.tile ?? DEFAULT_TILE;
  // `prepacked` (one matrix, with offsets): B is already in panels at k.pack + offsets.b (a convolution's col written in panels)
  const prepacked = opts.prepacked === true;
  if (prepacked && (!opts.offsets || opts.batches || opts.ranged || k.pack === undefined || batch !== 1 || panelled(k) !== 'panels')) throw new Error('internal: a prepacked B needs offsets and panels');
  const packOff = prepacked ? opts.offsets!.b : opts.batches && batch !== 1 && k.pack !== undefined ? f.local('i32') : undefined;
  const i32 = () => f.local('i32');
  const [tA, tB, tC, i, j, aPtr, bPtr, cPtr, counterT, counterJ, counterI, counterP, src, dst] = Array.from({ length: 14 }, i32);
  i32(); // a scratch local no step uses (kept: the locals' numbering, so the emitted modules, stay as they were)
  const acc = Array.from({ length: R * V }, () => f.local('v128'));
  const outer = long(K) ? Array.from({ length: R * V }, () => [f.local('v128'), f.local('v128')] as const) : [];
  const counterB = long(K) ? f.local('i32') : undefined;
  const bv = Array.from({ length: V }, () => f.local('v128'));
  const av = f.local('v128');
  const epilogue = k.epilogueWriter?.(f) ?? plainStores(f);
  const layout = panelled(k);
  const panelAt = layout === 'panel' ? f.local('i32') : undefined;
  // (after the others: a static kernel's locals keep their numbers)
  const rowStride = k.transA ? 4 : times(4, K);
  const aRows = typeof rowStride === 'number' ? [] : Array.from({ length: R }, (_, r) => (r === 0 ? 0 : hoisted(f, times(r, rowStride))));
  const ragged = typeof M === 'number' ? M % R : hoisted(f, { push: (g) => void push(g, M).i32(R).raw(0x70), text: `${text(M)} mod ${R}` }); // i32.rem_u
  const start = typeof K === 'number' ? undefined : f.local('v128');
  if (start) {
    // −0 in each f64 lane where 0 < K ≤ MATMUL_BLOCK (K − 1 <u MATMUL_BLOCK), else +0 (see runTimeBlocks)
    f.i32x4Lanes([0, -0x80000000, 0, -0x80000000]).i32x4Const(0);
    push(f, K).i32(1).i32Sub().i32(MATMUL_BLOCK).raw(0x49).select().set(start); // i32.lt_u
  }
  const pointerAt = epilogue.pointers.map((p) => hoisted(f, p.addr));
  const bRowStep = hoisted(f, times(4, k.N));
  // a run-time N: C's row r at r·4N from the tile's pointer, stored through rowPtr
  const cRows = typeof k.N === 'number' ? [] : Array.from({ length: R }, (_, r) => (r === 0 ? 0 : hoisted(f, times(r, 4, k.N))));
  const rowPtr = typeof k.N === 'number' ? undefined : f.local('i32');
  return {
    f, k, opts, R, V, ranged: opts.ranged ?? false, prepacked, packOff,
    tA, tB, tC, i, j, aPtr, bPtr, cPtr, counterT, counterJ, counterI, counterP, src, dst,
    acc, outer, counterB, bv, av, epilogue,
    bRows: transB ? k.pack! : k.b,
    layout, panelAt,
    packedA: k.packA !== undefined && (isStaticCode(k) ? packsA(k) : true) && !(opts.batches && batch !== 1),
    fullRows: typeof M === 'number' ? M - (M % R) : 0,
    aRows,
    ragged,
    start,
    pointerAt,
    cRows,
    rowPtr,
    bRowStep,
  };
}

/** Whether K may be longer than MATMUL_BLOCK (a run-time K may). */
const long = (K: I32): boolean => typeof K !== 'number' || K > MATMUL_BLOCK;

/** ptr = base + i·si·4 + j·sj·4 (+ extra) */
function setPtr(e: Emit, ptr: Local, base: I32, si: I32, sj: I32, extra?: Local): void {
  const { f, i, j } = e;
  push(f, base);
  if (extra) f.get(extra).i32Add();
  if (si) push(f.get(i), times(4, si)).i32Mul().i32Add();
  if (sj) push(f.get(j), times(4, sj)).i32Mul().i32Add();
  f.set(ptr);
}

/**
 * One matrix; an untransposed B of a run-time M or K (a weight, a weight gradient's dy of B*64 rows)
 * packed into panels only where the static kernel would pack it at these sizes (packsB: M of 4R
 * rows or more, K of panelMinK(N) or more), else read in place.
 */
function emitMatrixAt(e: Emit): void {
  const { f, k, R } = e;
  const { M, K } = k;
  if ((typeof M === 'number' && typeof K === 'number') || k.transB || e.layout !== 'panels') return emitMatrix(e);
  // the run-time tests of packsB, anded
  const tests = [...(typeof M === 'number' ? [] : [() => push(f, M).i32(4 * R).i32GeS()]), ...(typeof K === 'number' ? [] : [() => push(f, K).i32(panelMinK(k.N as number)).i32GeS()])];
  const packs = () =>
    tests.forEach((test, n) => {
      test();
      if (n > 0) f.raw(0x71); // i32.and
    });
  f.when(packs, () => emitMatrix(e));
  f.when(
    () => {
      packs();
      f.i32Eqz();
    },
    () => emitMatrix({ ...e, k: { ...k, pack: undefined }, layout: 'rows' }),
  );
}

/** One matrix of the batch: A's row tiles and B packed where they are, then the tiles column run by column run. */
function emitMatrix(e: Emit): void {
  const { f, k, i, j, src, dst, counterJ, counterP, tB, packOff, panelAt, V } = e;
  const { N, K } = k;
  const some = typeof K !== 'number' || K > 0;
  if (e.packedA && some) {
    // the full row tiles of the rows this call computes: [0, fullRows), or [start, min(end, fullRows))
    const endL = f.local('i32');
    if (e.ranged) {
      f.get(f.param(0)).set(i).get(f.param(1)).set(endL);
      f.when(() => f.get(endL).i32(e.fullRows).i32GtS(), () => f.assign(endL, e.fullRows));
    } else f.assign(i, 0).assign(endL, e.fullRows);
    packATiles(f, k as MatmulCode & { M: number }, e.R, i, endL, src, dst, counterP);
  }
  if (k.pack !== undefined && some && !e.ranged && !e.prepacked) {
    if (!k.transB && typeof k.pack !== 'number') {
      // (N a number: runTime; the panels at a run-time address, added as an offset)
      const at = f.local('i32');
      push(f, k.pack).set(at);
      packRowsInto(f, { ...k, N: N as number, pack: 0 }, V, tB, j, src, dst, counterJ, at);
    } else if (!k.transB) packRowsInto(f, { ...k, N: N as number, pack: k.pack as number }, V, tB, j, src, dst, counterJ, packOff);
    else if (typeof N === 'number' && N % 4 === 0 && typeof K === 'number' && K % 4 === 0) packBlocksInto(f, { ...k, K, N }, tB, src, dst, counterJ, counterP, packOff);
    else packInto(f, k, tB, src, dst, counterJ, counterP, packOff);
  }
  if (panelAt) {
    f.i32(k.panel!);
    if (e.opts.offsets?.panel) f.get(e.opts.offsets.panel).i32Add();
    f.set(panelAt);
  }
  if (typeof N !== 'number') return runTimeColumns(e, N);
  for (const cr of columnRuns(N, V)) {
    f.assign(j, cr.start);
    f.repeat(counterJ, cr.count, () => {
      if (panelAt) copyPanel(f, k as MatmulKernel, cr.size, tB, j, panelAt, src, dst, counterP);
      emitRowTiles(e, cr);
      f.bump(j, 4 * cr.size);
    });
  }
}

/**
 * The column tiles of a run-time N: N / 4V tiles of V vectors, then the whole vectors left one at a
 * time, then the last N mod 4 columns as a vector of 1, 2 or 3 lanes (chosen at run time).
 */
function runTimeColumns(e: Emit, N: Exclude<I32, number>): void {
  const { f, j, counterJ, V } = e;
  const run = (size: number, lastLanes: number): Run => ({ start: 0, count: 0, size, lastLanes });
  f.assign(j, 0);
  repeatN(f, counterJ, { push: (g) => void push(g, N).i32(4 * V).i32DivU(), text: `${N.text} / ${4 * V}` }, () => {
    emitRowTiles(e, run(V, 4));
    f.bump(j, 4 * V);
  });
  repeatN(f, counterJ, { push: (g) => void push(g, N).i32(4 * V).raw(0x70).i32(4).i32DivU(), text: `(${N.text} mod ${4 * V}) / 4` }, () => { // i32.rem_u
    emitRowTiles(e, run(1, 4));
    f.bump(j, 4);
  });
  for (let lanes = 1; lanes < 4; lanes++) f.when(() => push(f, N).i32(3).raw(0x71).i32(lanes).raw(0x46), () => emitRowTiles(e, run(1, lanes))); // i32.and, i32.eq
}

/** The row tiles of one column run: all of them, or those of [start, end). */
function emitRowTiles(e: Emit, cr: Run): void {
  const { f, i, R } = e;
  const M = e.k.M;
  if (!e.ranged && typeof M !== 'number') {
    // M / R whole tiles, then the ragged last one (M mod R rows, a run-time value)
    f.assign(i, 0);
    repeatN(f, e.counterI, { push: (g) => void push(g, M).i32(R).i32DivU(), text: `${text(M)} / ${R}` }, () => {
      emitTile(e, R, cr.size, cr.lastLanes);
      f.bump(i, R);
    });
    for (let rows = 1; rows < R; rows++) f.when(() => push(f, e.ragged).i32(rows).raw(0x46), () => emitTile(e, rows, cr.size, cr.lastLanes)); // i32.eq
    return;
  }
  if (!e.ranged) {
    for (const rr of rowRuns(M as number, R)) {
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
  if (e.ragged) f.when(() => f.get(i).get(end).i32LtS(), () => emitTile(e, e.ragged as number, cr.size, cr.lastLanes));
}

/** One register tile of `rows` × `vecs`: its pointers, its sums over K (in f32 blocks added into f64 where K is long), its epilogue and stores. */
function emitTile(e: Emit, rows: number, vecs: number, lastLanes: number): void {
  const { f, k, V, acc, outer } = e;
  const { N, K } = k;
  const used = [...Array(rows * vecs).keys()].map((n) => Math.floor(n / vecs) * V + (n % vecs));
  tilePointers(e, rows);
  for (const n of used) f.f32x4Const(0).set(acc[n]!);
  const products = (count: I32) => tileProducts(e, rows, vecs, count);
  if (long(K)) {
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
    if (typeof K === 'number') {
      for (const n of used) f.f32x4Const(0).set(outer[n]![0]).f32x4Const(0).set(outer[n]![1]);
      f.repeat(e.counterB!, Math.floor(K / MATMUL_BLOCK), () => {
        products(MATMUL_BLOCK);
        flush();
      });
      if (K % MATMUL_BLOCK) {
        products(K % MATMUL_BLOCK);
        flush();
      }
    } else runTimeBlocks(e, used, K, products, flush);
    for (const n of used) {
      const [lo, hi] = outer[n]!;
      f.get(lo).f32x4DemoteF64x2Zero().get(hi).f32x4DemoteF64x2Zero().i32x4Shuffle([0, 1, 4, 5]).set(acc[n]!);
    }
  } else if ((K as number) > 0) products(K);
  if (k.c !== undefined) setPtr(e, e.cPtr, k.c, N, 1, e.tC);
  const rowAt = (r: number): [Local, number] => {
    if (typeof N === 'number') return [e.cPtr, 4 * r * N];
    (r === 0 ? f.get(e.cPtr) : push(f.get(e.cPtr), e.cRows[r]!).i32Add()).set(e.rowPtr!);
    return [e.rowPtr!, 0];
  };
  e.epilogue.pointers.forEach((p, n) => setPtr(e, p.local, e.pointerAt[n]!, p.si, p.sj));
  for (let r = 0; r < rows; r++) {
    const [ptr, off] = k.c !== undefined ? rowAt(r) : [e.cPtr, 0];
    for (let v = 0; v < vecs; v++) {
      const lanes = v === vecs - 1 ? lastLanes : 4;
      if (k.c !== undefined) e.epilogue.store(ptr, acc[r * V + v]!, off + 16 * v, lanes);
      e.epilogue.at(r, v, lanes, acc[r * V + v]!);
    }
  }
}

/**
 * The sums of a run-time K (codegen/wasm/symbolic-forms.ts's kernels): ⌊K / MATMUL_BLOCK⌋ blocks, then
 * the rest, each added into the f64 totals as a static K > MATMUL_BLOCK is (from +0). Where
 * 0 < K ≤ MATMUL_BLOCK the totals start at −0: the one f32 sum s then goes through f64 unchanged
 * (−0 + s is s for every s, −0 too, which a sum of fused multiply-adds of products that round to
 * −0 gives), so the bits are those of a static K's f32 sum (but NaN payloads).
 */
function runTimeBlocks(e: Emit, used: readonly number[], K: Exclude<I32, number>, products: (count: I32) => void, flush: () => void): void {
  const { f, outer } = e;
  for (const n of used) f.get(e.start!).set(outer[n]![0]).get(e.start!).set(outer[n]![1]);
  repeatN(f, e.counterB!, { push: (g) => void push(g, K).i32(MATMUL_BLOCK).i32DivU(), text: `${K.text} / ${MATMUL_BLOCK}` }, () => {
    products(MATMUL_BLOCK);
    flush();
  });
  const rest: I32 = { push: (g) => void push(g, K).i32(MATMUL_BLOCK).raw(0x70), text: `${K.text} mod ${MATMUL_BLOCK}` }; // i32.rem_u
  f.when(() => push(f, rest), () => {
    products(rest);
    flush();
  });
}

/** Bytes between A[i,p] and A[i+1,p] (`row`) and between A[i,p] and A[i,p+1] (`step`) as a tile of `rows` reads them. */
function aStrides(e: Emit, rows: number): { readonly fromPack: boolean; readonly row: I32; readonly step: I32 } {
  const { k } = e;
  const fromPack = e.packedA && rows === e.R;
  return { fromPack, row: fromPack || k.transA ? 4 : times(4, k.K), step: fromPack ? 4 * e.R : k.transA ? times(4, k.M) : 4 };
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
function tileProducts(e: Emit, rows: number, vecs: number, count: I32): void {
  const { f, aPtr, bPtr, bv, av, acc, V } = e;
  const a = aStrides(e, rows);
  const bStep = e.layout === 'rows' ? e.bRowStep : 16 * vecs; // bytes from B[p, j] to B[p+1, j]
  repeatN(f, e.counterP, count, () => {
    for (let v = 0; v < vecs; v++) f.get(bPtr).v128Load(16 * v).set(bv[v]!);
    for (let r = 0; r < rows; r++) {
      if (typeof a.row === 'number') f.get(aPtr).v128Load32Splat(r * a.row).set(av);
      else (r === 0 ? f.get(aPtr) : push(f.get(aPtr), e.aRows[r]!).i32Add()).v128Load32Splat(0).set(av); // A's row r: a run-time stride
      for (let v = 0; v < vecs; v++) {
        const c = acc[r * V + v]!;
        f.get(av).get(bv[v]!).madd(c).set(c);
      }
    }
    bumpBy(f, aPtr, a.step);
    bumpBy(f, bPtr, bStep);
  });
}
