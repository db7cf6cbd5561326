// The packing of a matmul kernel's operands (codegen/wasm/matmul.ts): where it pays (`packsA`,
// `packsB`, `panelled`) and the code that copies them: B (transposed, or in panels of the tile's
// columns) into the pack area, the row tiles of a transposed A into packA.

import type { Local } from './encode.js';
import { Body } from './encode.js';
import type { I32 } from './index-lines.js';
import { product, push, repeatN } from './index-lines.js';
import type { MatmulCode, MatmulKernel } from './matmul.js';

/** a·b·…: a number where every factor is one, else the product computed where it is pushed. */
export const times = (...xs: readonly I32[]): I32 => xs.reduce<I32>((p, x) => product(p, x), 1);

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
export function panelled(k: Pick<MatmulCode, 'N' | 'transB' | 'pack' | 'panel'>): 'rows' | 'panels' | 'panel' {
  if (typeof k.N !== 'number' || k.N % 4 !== 0) return 'rows';
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
  return !k.transB && k.batch === 1 && k.N % 4 === 0 && k.N > 4 * V && k.M >= 4 * R && k.K >= panelMinK(k.N);
}

/** The K from which packsB packs a B of N columns: 16 rows or more, K·N above PANEL_MIN_FLOATS (a run-time K is tested against it). */
export function panelMinK(N: number): number {
  return Math.max(16, Math.floor(PANEL_MIN_FLOATS / N) + 1);
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
 * The row tiles of a transposed A from row i (a multiple of R) up to endL into k.packA: tile i's
 * P[p] = A[p, i..i+R−1] (one vector), four tiles (one line of A) at a time while four fit. i and
 * the others are scratch.
 */
export function packATiles(f: Body, k: MatmulCode & { readonly M: number }, R: number, i: Local, endL: Local, src: Local, dst: Local, counter: Local): void {
  const { M, K } = k;
  // (a run-time K: the other three tiles' stores through pointers of their own, 4·R·K·t bytes on, not constant offsets)
  const more = typeof K === 'number' ? [] : [1, 2, 3].map(() => f.local('i32'));
  for (const width of [4, 1])
    f.loopUntil(
      () => f.get(i).i32(R * width).i32Add().get(endL).i32GtS(),
      () => {
        push(f, k.a).get(i).i32(4).i32Mul().i32Add().set(src);
        push(push(f, k.packA!).get(i), times(4, K)).i32Mul().i32Add().set(dst);
        const wide = width > 1 && more.length > 0;
        if (wide) more.forEach((d, t) => push(f.get(dst), times(4 * R * (t + 1), K)).i32Add().set(d));
        repeatN(f, counter, K, () => {
          for (let t = 0; t < width; t++) {
            if (wide && t > 0) f.get(more[t - 1]!).get(src).v128Load(16 * t).v128Store(0);
            else f.get(dst).get(src).v128Load(16 * t).v128Store(t === 0 ? 0 : 4 * R * (K as number) * t);
          }
          f.bump(src, 4 * M).bump(dst, 4 * R);
          if (wide) for (const d of more) f.bump(d, 4 * R);
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
function packedColumn(f: Body, k: MatmulCode, V: number, j: Local, step: Local, off?: Local): void {
  const { N, K } = k;
  if (off) f.get(off);
  else f.i32(0);
  if (panelled(k) !== 'panels') {
    push(f, times(4, N)).set(step);
    push(f, k.pack!).get(j).i32(4).i32Mul().i32Add().i32Add();
    return;
  }
  const w = 4 * V;
  // j0 = j − j % w; width = min(w, N − j0)
  const j0 = () => f.get(j).i32(w).i32DivU().i32(w).i32Mul();
  f.i32(N as number); // (panels: N is a number)
  j0();
  f.i32Sub().set(step);
  f.when(() => f.get(step).i32(w).i32GtS(), () => f.i32(w).set(step));
  f.get(step).i32(4).i32Mul().set(step);
  // pack + 4·j0·K + 4·(j − j0)
  push(f, k.pack!);
  j0();
  push(f, times(4, K)).i32Mul().i32Add().get(j).i32(4).i32Mul().i32Add();
  j0();
  f.i32(4).i32Mul().i32Sub().i32Add();
}

/** Row p of an untransposed B (at src) into its panels (p in `p`); dst is scratch. K may be a run-time value (the symbolic module's B*64 rows). */
function copyRowIntoPanels(f: Body, k: PanelRows, V: number, p: Local, src: Local, dst: Local, off?: Local): void {
  const { N, K } = k;
  const w = 4 * V;
  for (let j0 = 0; j0 < N; j0 += w) {
    const width = Math.min(w, N - j0);
    if (typeof K === 'number') f.i32(k.pack + 4 * j0 * K);
    else if (j0 === 0) f.i32(k.pack);
    else push(f, K).i32(4 * j0).i32Mul().i32(k.pack).i32Add();
    f.get(p).i32(4 * width).i32Mul().i32Add();
    if (off) f.get(off).i32Add();
    f.set(dst);
    for (let v = 0; v < width / 4; v++) f.get(dst).get(src).v128Load(4 * j0 + 16 * v).v128Store(16 * v);
  }
}

/** An untransposed B packed into panels: N a number; K and B's address may be run-time values. */
type PanelRows = Pick<MatmulCode, 'K' | 'b'> & { readonly N: number; readonly pack: number };

/** Every row of an untransposed B (of this batch matrix: tB) into its panels; j, src, dst and counter are scratch. */
export function packRowsInto(f: Body, k: PanelRows, V: number, tB: Local, j: Local, src: Local, dst: Local, counter: Local, off?: Local): void {
  push(f, k.b).get(tB).i32Add().set(src);
  f.assign(j, 0);
  repeatN(f, counter, k.K, () => {
    copyRowIntoPanels(f, k, V, j, src, dst, off);
    f.bump(src, 4 * k.N).bump(j, 1);
  });
}

/** The panel of B starting at column j (`vecs` vectors wide): its K rows B[p, j..] → panel[p], at panelAt; src, dst and counter are scratch. */
export function copyPanel(f: Body, k: MatmulKernel, vecs: number, tB: Local, j: Local, panelAt: Local, src: Local, dst: Local, counter: Local): void {
  f.i32(k.b).get(tB).i32Add().get(j).i32(4).i32Mul().i32Add().set(src);
  f.get(panelAt).set(dst);
  f.repeat(counter, k.K, () => {
    for (let v = 0; v < vecs; v++) f.get(dst).get(src).v128Load(16 * v).v128Store(16 * v);
    f.bump(src, 4 * k.N).bump(dst, 16 * vecs);
  });
}

/** P[p, j] = B[j, p] into the pack area: B is read in order, P written down its columns. */
export function packInto(f: Body, k: MatmulCode, tB: Local, src: Local, dst: Local, counterJ: Local, counterP: Local, off?: Local): void {
  const { K } = k;
  const { vecs: V } = k.tile ?? DEFAULT_TILE;
  const [j, step] = [f.local('i32'), f.local('i32')];
  push(f, k.b).get(tB).i32Add().set(src);
  f.assign(j, 0);
  repeatN(f, counterJ, k.N, () => {
    packedColumn(f, k, V, j, step, off);
    f.set(dst);
    repeatN(f, counterP, K, () => {
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
export function packBlocksInto(f: Body, k: MatmulCode & { readonly K: number; readonly N: number }, tB: Local, src: Local, dst: Local, counterJ: Local, counterP: Local, off?: Local): void {
  const { vecs: V } = k.tile ?? DEFAULT_TILE;
  const four = fourColumns(f, k, V, src, dst, counterP, off);
  push(f, k.b).get(tB).i32Add().set(src);
  f.assign(four.j, 0);
  f.repeat(counterJ, k.N / 4, four.pack);
}

/** Packs the four columns j…j+3 of P from four rows of a transposed B at src (src then four rows further, j + 4): `pack`, with its j. */
function fourColumns(f: Body, k: MatmulCode & { readonly K: number }, V: number, src: Local, dst: Local, counterP: Local, off?: Local, j = f.local('i32'), step = f.local('i32')): { j: Local; pack: () => void } {
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
      copyRowIntoPanels(f, { ...k, pack: k.pack! }, V, j, src, dst);
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
