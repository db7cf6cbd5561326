// The kernel-form wasm renderer: one kernel of the kernel form (codegen/kernel/form.ts) as a
// WebAssembly function. The loops walk the kept axes outermost and the reduced axes inside them
// (codegen/wasm/kernel-plan.ts has dropped axes of extent 1 and merged the ones every access
// walks as one). One axis is vectorised, four points at a time with single points for the rest:
// the innermost (the reduced one of a row reduction, whose four lanes are combined at the end),
// or for a reduction the innermost kept axis (a column reduction: four kept points in the lanes,
// the reduced loops inside), whichever has fewer accesses that stride along it, where no store
// stands still along it; else none (single points, still wasm). Along the vectorised axis a load of stride 0 is
// a splat, of stride 1 a vector, of a larger stride four lane loads (a transpose's reads, where codegen/wasm/transpose.ts does not tile it), and a
// store of stride 1 a vector, of a larger stride four lane stores. At the start of each innermost run a pointer
// per access is set from the coordinates, the nodes that do not vary along the run are computed
// once, and the run bumps the pointers. A sum over many points adds its f32 lanes into f64
// totals after every block of them (REDUCE_BLOCK rows, ROW_BLOCK vectors of a row);
// a sum to one value (a loss), after every term.

import type { Kernel } from '../kernel/form.js';
import type { Local } from './encode.js';
import { Body } from './encode.js';
import type { FlatKernel, FlatNode, Rt, RtSizes, StaticFlatKernel, Val } from './kernel-plan.js';
import { KernelUnsupported, flatten, unsupported, valKey } from './kernel-plan.js';
import { WASM_CAPABILITIES, alu, constant } from './kernel-alu.js';
import { decompose } from '../kernel/decompose.js';
import { rareBlocks, renderPass } from './kernel-rare.js';
import type { Split } from './threads.js';
import { renderTransposeCopy, transposeCopy } from './transpose.js';

export { KernelUnsupported };
export { TileEpilogue, type TilePointer } from './tile-epilogue.js';

/** A rendered kernel: its whole body, and where it splits over threads its ranged body and split. */
export interface WasmKernel {
  readonly body: Body;
  readonly ranged?: { readonly body: Body; readonly split: Split };
  /**
   * A sum split by chunks of rows (a column sum, or an NCHW sum per channel by images: see
   * ROW_CHUNKS): `ranged.body` computes the f64 partial totals of chunks [start, end) of its rows
   * into `partialBytes` bytes at the partial area, `sum` (whole, run after it) adds the chunks'
   * totals in order and computes and stores the results.
   */
  readonly rows?: { readonly sum: Body; readonly partialBytes: number };
}

/**
 * How a kernel with run-time sizes reads them (the symbolic module): `rt` gives its arrays'
 * addresses, `param` the byte address in the parameter block of each run-time value.
 */
export interface RtParams {
  readonly rt: RtSizes;
  param(v: Rt): number;
}

/**
 * Renders `k` (its primitives that are not native here decomposed: codegen/kernel/decompose.ts);
 * `addr` gives the byte address of each array it reads or writes; with `rt` its symbolic sizes
 * are run-time values read from the parameter block (no ranged body: the symbolic module has no threads).
 */
export function renderWasmKernel(k: Kernel, addr: (arg: string) => number | undefined, rt?: RtParams, partialAt?: number): WasmKernel {
  const flats = flatten(decompose(k, WASM_CAPABILITIES), addr, rt ? { rt: rt.rt } : {});
  const tc = flats.length === 1 && !rt ? transposeCopy(flats[0] as StaticFlatKernel) : undefined;
  if (tc) return renderTransposeCopy(flats[0] as StaticFlatKernel, tc);
  const whole = new Body();
  for (const fk of flats) new Nest(whole, fk, k.name, rt?.param).emit();
  if (flats.length !== 1 || rt) return { body: whole };
  const fk = flats[0]! as StaticFlatKernel;
  const nest = new Nest(new Body(2), fk, k.name);
  const rowsPer = partialAt !== undefined ? nest.rowChunk() : undefined;
  if (rowsPer !== undefined) {
    // a column sum over many rows: split by chunks of rows, then the chunks' totals added in order
    const part = { at: partialAt!, rows: rowsPer };
    const chunks = new Nest(new Body(2), fk, k.name, undefined, { ...part, phase: 'chunks' });
    chunks.emit();
    const sum = new Nest(new Body(), fk, k.name, undefined, { ...part, phase: 'sum' });
    sum.emit();
    const numel = fk.dims.reduce((a, b) => a * b, 1);
    const work = numel * Math.max(1, chunks.live.filter(Boolean).length);
    return { body: whole, ranged: { body: chunks.f, split: { extent: ROW_CHUNKS, align: 1, work } }, rows: { sum: sum.f, partialBytes: chunks.partialBytes() } };
  }
  const outer = nest.order[0]!;
  if (fk.reduced[outer] || fk.dims[outer]! < 2) return { body: whole };
  nest.emit();
  const numel = fk.dims.reduce((a, b) => a * b, 1);
  const work = numel * Math.max(1, nest.live.filter(Boolean).length);
  return { body: whole, ranged: { body: nest.f, split: { extent: fk.dims[outer]!, align: outer === nest.vec ? 4 : 1, work } } };
}

/** Appends the loops of `k` (its primitives decomposed) to the function body `f` (a kernel of several, as the optimizer's update). */
export function renderWasmKernelInto(f: Body, k: Kernel, addr: (arg: string) => number | undefined): void {
  for (const fk of flatten(decompose(k, WASM_CAPABILITIES), addr)) new Nest(f, fk, k.name).emit();
}

/**
 * The rows a column sum adds in f32 before adding them into its f64 totals (16 rather than 64:
 * the nine-conv ResNet's worst gradient 1.1e-6 rather than 3.2e-6 relative, at the same speed).
 */
export const REDUCE_BLOCK = 16;
/**
 * The rows from which a column sum is blocked: up to here an f32 sum loses little, and the blocks'
 * additions into the totals cost a shorter kernel more than it gains (makemore L's [256, 1024]
 * sums: 10–20 % slower).
 */
export const REDUCE_MIN_ROWS = 256;
/**
 * The chunks of rows of a column sum split by rows: each chunk's f64 totals (its rows' blocks of
 * REDUCE_BLOCK rows, as the whole kernel adds them) go to a partial area, and a kernel of their own
 * (`…_sum`) adds the chunks' totals in order, so the results do not depend on the thread count (a
 * fixed number of chunks, as the convolution's weight gradient: codegen/wasm/conv.ts). Split by
 * columns instead, every thread read every row (docs/threads.md).
 */
export const ROW_CHUNKS = 8;
/** The rows from which a column sum splits by rows (fewer: too little work for a thread). */
export const ROW_SPLIT_MIN_ROWS = 1024;

/** The vectors of a row a row sum adds in f32 (4 lanes each) before adding them into its f64 totals. */
export const ROW_BLOCK = 64;

const LANE0: [number, number, number, number] = [-1, 0, 0, 0];
/**
 * The vectors of kept columns a column reduction computes side by side (16 columns: each row of
 * the reduced loops then reads a whole 64-byte line, not 16 bytes of it; makemore L's
 * [256, 1024] column sums made its step 12 % slower one vector at a time; 8 vectors were no
 * faster than 4 on makemore L or the CIFAR ResNet, for a third more code).
 */
const COLUMN_UNROLL = 4;

/**
 * The vectors an elementwise kernel of many nodes (HEAVY_NODES computing nodes or more: a GELU's
 * tanh, decomposed) computes side by side along its innermost axis, node by node: four independent
 * chains of dependent operations interleaved for the processor to overlap. The GPT's GELU kernel,
 * [12,64,512], 1.00–1.06 ms one vector at a time, 0.87 two, 0.66–0.71 four, 0.63–0.70 eight
 * (2026-12-07, load 7); lighter kernels (its gradient's, the layer norms') were no faster.
 */
const ELEMENTWISE_UNROLL = 4;
const HEAVY_NODES = 40;
const heavy = (nodes: readonly FlatNode[], live: readonly boolean[]) => nodes.filter((n, i) => live[i] && 'args' in n).length >= HEAVY_NODES;

/** Where an access's address comes from while nodes are computed: its pointer, or its coordinates. */
type Addr = (a: number) => void;

class Nest {
  readonly order: number[];
  /** The vectorised axis (-1: none). */
  readonly vec: number;
  readonly live: boolean[];
  private readonly red: boolean;
  private readonly nKept: number;
  private readonly inner: number;
  /** The nodes the stores after the reduction need (the reductions given). */
  private readonly epi: boolean[];
  private readonly body: boolean[];
  private readonly reduces: number[];
  private readonly after: { node: number; a: number }[];
  private readonly during: { node: number; a: number }[];
  private readonly x: Local[];
  /** Each node's local, per vector of an unrolled column reduction (see COLUMN_UNROLL). */
  private readonly resU: Local[][];
  private readonly ptr = new Map<string, Local>();
  private readonly accU: Map<number, { v: Local; totals?: readonly [Local, Local] }>[];
  /** Vectors of the vectorised axis computed side by side (COLUMN_UNROLL in a column reduction's widest loop), and the one being written. */
  private U = 1;
  private u = 0;
  private readonly block: number;
  private readonly count?: Local;
  /** Sums added into their f64 totals term by term (else in blocks of `block`). */
  private readonly exact: boolean;
  private mode: 1 | 4 = 1;
  /** The locals of the run-time values, read from the parameter block at the start. */
  private readonly rtLocal = new Map<string, Local>();
  /** Each node's rare block (codegen/wasm/kernel-rare.ts), on first use. */
  private only?: number[];
  /** The chunks phase: the chunk's local, and its rows [start, end). */
  private chunk?: Local;
  private rowRange?: { readonly start: Local; readonly end: Local };

  constructor(
    readonly f: Body,
    private readonly k: FlatKernel,
    private readonly name: string,
    private readonly param?: (v: Rt) => number,
    /** A sum split by chunks of rows: the chunks' partial totals (`chunks`, a function of a range of chunks) or their sum (`sum`); `rows` a chunk's rows, or 'even' (see rowChunk). */
    private readonly part?: { readonly at: number; readonly rows: number | 'even'; readonly phase: 'chunks' | 'sum' },
  ) {
    const axes = k.dims.map((_d, i) => i);
    this.red = k.reduced.some(Boolean);
    const kept = axes.filter((d) => !k.reduced[d]);
    this.order = [...kept, ...axes.filter((d) => k.reduced[d])];
    this.nKept = kept.length;
    this.inner = this.order[this.order.length - 1]!;
    const n = k.nodes;
    this.reduces = n.flatMap((x, i) => (x.op === 'reduce' ? [i] : []));
    const isEpi: boolean[] = [];
    n.forEach((x, i) => (isEpi[i] = x.op === 'reduce' || args(x).some((a) => isEpi[a])));
    const storedAfter = (a: number) => this.red && k.dims.every((d, ax) => !k.reduced[ax] || d === 1 || k.accesses[a]!.strides[ax] === 0);
    this.after = k.stores.filter((s) => storedAfter(s.a));
    this.during = k.stores.filter((s) => !storedAfter(s.a));
    const operands = this.reduces.map((r) => args(n[r]!)[0]!);
    this.body = needed(n, [...operands, ...this.during.map((s) => s.node)]).map((b, i) => b && !isEpi[i]);
    const epiNeed = needed(n, this.after.map((s) => s.node));
    this.live = n.map((_x, i) => this.body[i]! || epiNeed[i]!);
    this.epi = epiNeed;
    this.vec = this.chooseVec();
    this.x = axes.map(() => f.local('i32'));
    const unroll = this.red && this.vec >= 0 && this.vec !== this.inner ? COLUMN_UNROLL : !this.red && this.vec >= 0 && this.vec === this.inner && heavy(n, this.live) ? ELEMENTWISE_UNROLL : 1;
    this.resU = Array.from({ length: unroll }, () => n.map(() => f.local('v128')));
    // (a symbolic number of reduced points: as many as a block's)
    const R = axes.filter((d) => k.reduced[d]).reduce((a, d) => a * num(k.dims[d]!, Infinity), 1);
    const lanes = this.vec === this.inner && this.red;
    const sums = this.reduces.some((r) => (n[r] as { red: string }).red === 'sum');
    // a reduction to one value (a loss) adds every term into the f64 totals, as the flat module's
    // f64 sum: its terms often cancel, and it is one pass over its operand
    this.exact = sums && this.nKept === 0;
    const blocked = this.exact || (sums && (lanes ? R > 4 * ROW_BLOCK : R > REDUCE_MIN_ROWS));
    this.block = lanes ? ROW_BLOCK : REDUCE_BLOCK;
    if (blocked && !this.exact) this.count = f.local('i32');
    this.accU = Array.from({ length: unroll }, () => {
      const acc = new Map<number, { v: Local; totals?: readonly [Local, Local] }>();
      for (const r of this.reduces) {
        const sum = (n[r] as { red: string }).red === 'sum';
        acc.set(r, { v: f.local('v128'), ...(blocked && sum ? { totals: [f.local('v128'), f.local('v128')] as const } : {}) });
      }
      return acc;
    });
  }

  /** The nodes' locals of the vector being written. */
  private get res(): Local[] {
    return this.resU[this.u]!;
  }

  private get acc(): Map<number, { v: Local; totals?: readonly [Local, Local] }> {
    return this.accU[this.u]!;
  }

  /** `body` for each vector computed side by side (u = 0 … U − 1). */
  private each(body: () => void): void {
    for (this.u = 0; this.u < this.U; this.u++) body();
    this.u = 0;
  }

  /** The byte offset of the vector being written from lane 0's address, for an access of stride s along the vectorised axis. */
  private offset(s: number): number {
    return 16 * this.u * s;
  }

  /** The vectorised axis: see the file's comment. */
  private chooseVec(): number {
    const k = this.k;
    const loadsOf = (which: readonly boolean[]) => k.nodes.flatMap((x, i) => (which[i] && x.op === 'load' ? [x.a] : []));
    // the accesses that stride by more than 1 along an axis (lane by lane), or undefined where one cannot be vectorised along it
    const cost = (ax: number, loads: readonly number[], stores: readonly { a: number }[]) => {
      // (a run-time stride along the axis: not vectorised along it)
      const s = (a: number) => num(k.accesses[a]!.strides[ax]!, -1);
      if (loads.some((a) => s(a) < 0) || stores.some((st) => s(st.a) < 1)) return undefined;
      return [...loads, ...stores.map((st) => st.a)].filter((a) => s(a) > 1).length;
    };
    const inner = this.inner;
    if (!this.red) return cost(inner, loadsOf(this.live), k.stores) !== undefined ? inner : -1;
    const lanes = num(k.dims[inner]!, 4) >= 4 ? cost(inner, loadsOf(this.body), this.during) : undefined;
    const c = this.nKept ? this.order[this.nKept - 1]! : -1;
    const columns = c >= 0 ? cost(c, loadsOf(this.live), k.stores) : undefined;
    if (lanes !== undefined && (columns === undefined || lanes <= columns)) return inner;
    return columns !== undefined ? c : -1;
  }

  /**
   * The rows of a chunk where this kernel splits by rows (ROW_CHUNKS), every reduction a blocked
   * sum, of known sizes, each store during the reduction its own per row: a column sum (one kept
   * axis, vectorised, and one reduced axis of at least ROW_SPLIT_MIN_ROWS rows), a multiple of
   * REDUCE_BLOCK so that its blocks are the whole kernel's; or an NCHW sum per channel, 'even'
   * (chunk c holds the images ⌊c·N/8⌋ to ⌊(c+1)·N/8⌋, so that 2 or 4 threads get equal shares).
   */
  rowChunk(): number | 'even' | undefined {
    const k = this.k;
    if (!this.count || this.nKept !== 1 || !this.reduces.every((r) => this.isSum(r)) || k.dims.some((d) => typeof d !== 'number')) return undefined;
    if (this.during.some((st) => k.accesses[st.a]!.strides[this.chunked] === 0)) return undefined;
    const R = k.dims[this.chunked] as number;
    if (this.order.length === 2 && this.vec === this.order[0]) return R < ROW_SPLIT_MIN_ROWS ? undefined : Math.ceil(R / ROW_CHUNKS / REDUCE_BLOCK) * REDUCE_BLOCK;
    // a sum over the images and pixels of an NCHW tensor per channel ([N, C, HW], the kept axis
    // between the reduced ones): by chunks of images, as the convolutions and the elementwise
    // kernels around it split, so that each thread reads what it wrote (split by channels, a
    // thread read every image, half of them from the other core's cache: 1.3–1.4× slower on 2
    // threads than on 1)
    const between = this.order.length === 3 && this.vec === this.inner && this.chunked < this.order[0]! && this.order[0]! < this.inner;
    return between && R >= 2 && (k.dims[this.inner] as number) >= 4 * ROW_BLOCK ? 'even' : undefined;
  }

  /** The reduced axis a kernel split by chunks of rows chunks: the outer one. */
  private get chunked(): number {
    return this.order[this.nKept]!;
  }

  /** The bytes of the partial area: an f64 total per chunk, reduction and kept point. */
  partialBytes(): number {
    return ROW_CHUNKS * this.reduces.length * (this.k.dims[this.order[0]!] as number) * 8;
  }

  /** The byte address of chunk `c`'s total of reduction number `ri` at the kept point x (pushed: the chunk and x from locals, the rest a constant). */
  private partialAddress(c: Local | number, ri: number): void {
    const f = this.f;
    const K = this.k.dims[this.order[0]!] as number;
    const stride = this.reduces.length * K * 8;
    if (typeof c === 'number') f.i32(this.part!.at + c * stride + ri * K * 8);
    else f.get(c).i32(stride).i32Mul().i32(this.part!.at + ri * K * 8).i32Add();
    f.get(this.x[this.order[0]!]!).i32(8).i32Mul().i32Add();
  }

  emit(): void {
    if (this.k.dims.some((d) => d === 0)) return;
    this.readParams();
    if (this.part?.phase === 'chunks') return this.chunks();
    if (this.part?.phase === 'sum') return this.loop(0, undefined, () => this.combine());
    if (this.nKept === 0) this.reduction(() => this.nest(0));
    else this.nest(0);
  }

  private nest(level: number): void {
    if (level === this.order.length - 1) return this.innermost(level);
    this.loop(level, undefined, () => {
      if (level + 1 === this.nKept && this.red) this.reduction(() => this.nest(level + 1));
      else this.nest(level + 1);
    });
  }

  /** The chunks [start, end) of rows: each chunk's totals, as reduction() adds them, into the partial area. */
  private chunks(): void {
    const f = this.f;
    const { rows } = this.part!;
    const R = this.k.dims[this.chunked] as number;
    const c = (this.chunk = f.local('i32'));
    const start = f.local('i32');
    const end = f.local('i32');
    this.rowRange = { start, end };
    f.get(f.param(0)).set(c);
    f.loopUntil(
      () => f.get(c).get(f.param(1)).i32GeS(),
      () => {
        if (rows === 'even') {
          f.get(c).i32(R).i32Mul().i32(ROW_CHUNKS).i32DivU().set(start);
          f.get(c).i32(1).i32Add().i32(R).i32Mul().i32(ROW_CHUNKS).i32DivU().set(end);
        } else {
          f.get(c).i32(rows).i32Mul().tee(start).i32(rows).i32Add().set(end);
          // the last chunks end at R (and may be empty)
          f.i32(R).get(end).get(end).i32(R).i32GtS().select().set(end);
        }
        this.nest(0);
        f.bump(c, 1);
      },
    );
  }

  /** The sum phase at a vector of kept points: the chunks' totals added in order, then the epilogue and its stores. */
  private combine(): void {
    const f = this.f;
    this.each(() => {
      this.reduces.forEach((r, ri) => {
        const [t0, t1] = this.acc.get(r)!.totals!;
        f.f32x4Const(0).set(t0).f32x4Const(0).set(t1);
        for (let c = 0; c < ROW_CHUNKS; c++) {
          const off = 32 * this.u;
          if (this.mode === 4) {
            f.get(t0);
            this.partialAddress(c, ri);
            f.v128Load(off).f64x2Add().set(t0);
            f.get(t1);
            this.partialAddress(c, ri);
            f.v128Load(off + 16).f64x2Add().set(t1);
          } else {
            f.get(t0);
            this.partialAddress(c, ri);
            f.raw(0xfd, 0x5d, 0x03, 0x00); // v128.load64_zero
            f.f64x2Add().set(t0);
          }
        }
      });
    });
    this.each(() => this.finish());
    this.epilogue();
  }

  /** The epilogue's nodes and the stores after the reduction, at the kept points. */
  private epilogue(): void {
    const at: Addr = (a) => this.address(a, (ax) => !this.k.reduced[ax]);
    this.each(() => {
      this.pass((i) => this.epi[i]! && this.k.nodes[i]!.op !== 'reduce', at);
      for (const s of this.after) this.store(s, at);
    });
  }

  /** The accumulators set, the reduced loops, the lanes combined, the epilogue and its stores. */
  private reduction(loops: () => void): void {
    const f = this.f;
    this.each(() => {
      for (const [r, a] of this.acc) {
        f.f32x4Const(this.isSum(r) ? 0 : -Infinity).set(a.v);
        if (a.totals) f.f32x4Const(0).set(a.totals[0]).f32x4Const(0).set(a.totals[1]);
      }
    });
    if (this.count) f.assign(this.count, this.block);
    loops();
    if (this.count || this.exact) this.flush();
    if (this.part?.phase === 'chunks') return this.storeTotals();
    this.each(() => this.finish());
    this.epilogue();
  }

  /** The chunk's totals at the vector of kept points, into the partial area (a single point: lane 0). */
  private storeTotals(): void {
    const f = this.f;
    this.each(() => {
      this.reduces.forEach((r, ri) => {
        const [t0, t1] = this.acc.get(r)!.totals!;
        const off = 32 * this.u;
        this.partialAddress(this.chunk!, ri);
        if (this.mode === 4) {
          f.get(t0).v128Store(off);
          this.partialAddress(this.chunk!, ri);
          f.get(t1).v128Store(off + 16);
          return;
        }
        // a sum across the lanes: its four f64 totals added as finish() adds them, into lane 0
        if (this.vec === this.inner) this.laneTotal(t0, t1).simd(0x14).set(t0); // f64x2.splat
        f.get(t0).raw(0xfd, 0x5b, 0x03, 0x00, 0x00); // v128.store64_lane, lane 0
      });
    });
  }

  /** A loop over the axis at `level`: four points at a time, then single ones, on the vectorised axis. */
  private loop(level: number, prologue: (() => void) | undefined, body: () => void): void {
    const f = this.f;
    const axis = this.order[level]!;
    const x = this.x[axis]!;
    const ranged = level === 0 && this.f.params === 2 && !this.part;
    // a chunk of rows: the reduced loop over the chunk's rows
    const rows = this.rowRange && axis === this.chunked ? this.rowRange : undefined;
    if (ranged) f.get(f.param(0)).set(x);
    else if (rows) f.get(rows.start).set(x);
    else f.assign(x, 0);
    const end = () => (ranged ? f.get(f.param(1)) : rows ? f.get(rows.end) : this.push(this.k.dims[axis]!));
    prologue?.();
    if (axis === this.vec) {
      this.mode = 4;
      for (const U of this.resU.length > 1 ? [this.resU.length, 1] : [1]) {
        this.U = U;
        const full = () => {
          f.get(x).i32(4 * U).i32Add();
          end();
          f.i32GtS();
        };
        f.loopUntil(full, () => {
          body();
          f.bump(x, 4 * U);
        });
      }
      this.U = 1;
      this.mode = 1;
    }
    const done = () => {
      f.get(x);
      end();
      f.i32GeS();
    };
    f.loopUntil(done, () => {
      body();
      f.bump(x, 1);
    });
  }

  /** The innermost loop: pointers and the nodes that do not vary along it first. */
  private innermost(level: number): void {
    const f = this.f;
    const k = this.k;
    const axis = this.order[level]!;
    const varies: boolean[] = [];
    k.nodes.forEach((n, i) => (varies[i] = (n.op === 'load' && k.accesses[n.a]!.strides[axis] !== 0) || (n.op === 'coord' && n.axis === axis) || args(n).some((a) => varies[a])));
    const accesses = [...new Set([...k.nodes.flatMap((n, i) => (this.body[i] && n.op === 'load' ? [n.a] : [])), ...this.during.map((s) => s.a)])];
    const at: Addr = (a) => f.get(this.pointer(a));
    this.loop(
      level,
      () => {
        for (const a of accesses) {
          this.address(a, () => true);
          f.set(this.pointer(a));
        }
        // (for every vector computed side by side: where they run along this loop's own axis, U is still 1 here)
        const U = this.U;
        if (axis === this.vec) this.U = this.resU.length;
        this.each(() => this.pass((i) => this.body[i]! && !varies[i], at));
        this.U = U;
      },
      () => {
        if (this.U > 1 && axis === this.vec && !(this.only ??= rareBlocks(k.nodes, k.stores)).some((c) => c >= 0)) {
          // an elementwise kernel's vectors side by side (ELEMENTWISE_UNROLL), node by node: their chains interleaved
          for (const i of k.nodes.keys()) if (this.body[i] && varies[i]) this.each(() => this.node(i, at));
          this.each(() => {
            for (const s of this.during) this.store(s, at);
          });
        } else
          this.each(() => {
            this.pass((i) => this.body[i]! && varies[i]!, at);
            for (const s of this.during) this.store(s, at);
          });
        this.accumulate();
        const step = axis === this.vec ? this.mode * this.U : 1;
        const bumped = new Set<Local>();
        for (const a of accesses) {
          const p = this.pointer(a);
          const s = k.accesses[a]!.strides[axis]!;
          if (typeof s !== 'number' && !bumped.has(p)) f.get(p).get(this.rtLocal.get(s.key)!).i32(4 * step).i32Mul().i32Add().set(p);
          else if (s !== 0 && !bumped.has(p)) f.bump(p, 4 * (s as number) * step);
          bumped.add(p);
        }
      },
    );
  }

  /** The pointer local of an access (one per address and strides). */
  private pointer(a: number): Local {
    const acc = this.k.accesses[a]!;
    const key = `${valKey(acc.base)}:${acc.strides.map(valKey).join(',')}`;
    let p = this.ptr.get(key);
    if (!p) this.ptr.set(key, (p = this.f.local('i32')));
    return p;
  }

  /** Pushes the byte address of an access at the coordinates of the axes `open` selects. */
  private address(a: number, open: (axis: number) => boolean): void {
    const f = this.f;
    const acc = this.k.accesses[a]!;
    this.push(acc.base);
    acc.strides.forEach((s, ax) => {
      if (typeof s !== 'number' && open(ax)) f.get(this.x[ax]!).get(this.rtLocal.get(s.key)!).i32Mul().i32(4).i32Mul().i32Add();
      else if (s !== 0 && open(ax)) f.get(this.x[ax]!).i32(4 * (s as number)).i32Mul().i32Add();
    });
  }

  /** Pushes a size, stride or address: a constant, or the local of a run-time value. */
  private push(v: Val): void {
    if (typeof v === 'number') this.f.i32(v);
    else {
      this.f.get(this.rtLocal.get(v.key)!);
      if (v.plus) this.f.i32(v.plus).i32Add();
    }
  }

  /** The run-time values the loops use, from the parameter block into locals. */
  private readParams(): void {
    const k = this.k;
    const vals = [...k.dims, ...k.accesses.flatMap((a) => [a.base, ...a.strides]), ...k.nodes.flatMap((n) => (n.op === 'dim' ? [n.v] : []))];
    for (const v of vals) {
      if (typeof v === 'number' || this.rtLocal.has(v.key)) continue;
      if (!this.param) throw new Error(`internal: kernel ${this.name} has a run-time value (${v.key}) and no parameter block`);
      const l = this.f.local('i32');
      this.f.i32(0).i32Load(this.param(v)).set(l);
      this.rtLocal.set(v.key, l);
    }
  }

  /** The nodes `which` selects, in order, a rare where's `then` side only where a lane needs it. */
  private pass(which: (i: number) => boolean, at: Addr): void {
    const pass = this.k.nodes.flatMap((_n, i) => (which(i) ? [i] : []));
    renderPass(this.f, this.k.nodes, (this.only ??= rareBlocks(this.k.nodes, this.k.stores)), pass, this.res, (i) => this.node(i, at));
  }

  /** Computes node i into its local. */
  private node(i: number, at: Addr): void {
    const f = this.f;
    const n = this.k.nodes[i]!;
    switch (n.op) {
      case 'const':
        constant(f, n.dtype, n.value);
        break;
      case 'load': {
        const s = this.mode === 4 ? (this.k.accesses[n.a]!.strides[this.vec] as number) : 0;
        const off = this.offset(s);
        if (s > 1) for (let l = 0; l < 4; l++) at(n.a);
        else at(n.a);
        if (s === 1) f.v128Load(off);
        else f.v128Load32Splat(off);
        // lanes 1–3 of a strided load, at their offsets from lane 0's address
        if (s > 1) for (let l = 1; l < 4; l++) f.v128Load32Lane(off + 4 * s * l, l);
        break;
      }
      case 'coord':
        f.get(this.x[n.axis]!).i32x4Splat();
        if (this.mode === 4 && n.axis === this.vec) f.i32x4Lanes([0, 1, 2, 3].map((l) => 4 * this.u + l) as [number, number, number, number]).i32x4Add();
        break;
      case 'dim':
        f.get(this.rtLocal.get(n.v.key)!).f32ConvertI32S().f32x4Splat();
        break;
      case 'reduce':
        throw new Error(`internal: kernel ${this.name} computes a reduction outside its loops`);
      default:
        if (!alu(f, n, this.k.nodes, this.res)) throw unsupported({ name: this.name }, `${n.op} has no WebAssembly SIMD form here (${n.dtype})`);
    }
    f.set(this.res[i]!);
  }

  private store(s: { node: number; a: number }, at: Addr): void {
    const f = this.f;
    const stride = this.mode === 4 ? (this.k.accesses[s.a]!.strides[this.vec] as number) : 0;
    const off = this.offset(stride);
    if (stride > 1) {
      for (let l = 0; l < 4; l++) {
        at(s.a);
        f.get(this.res[s.node]!).v128Store32Lane(off + 4 * stride * l, l);
      }
      return;
    }
    at(s.a);
    f.get(this.res[s.node]!);
    if (this.mode === 4) f.v128Store(off);
    else f.v128Store32Lane(0, 0);
  }

  private isSum(r: number): boolean {
    return (this.k.nodes[r] as { red: string }).red === 'sum';
  }

  /** Each reduction's operand into its accumulator (a single point of a lane reduction into lane 0 only). */
  private accumulate(): void {
    if (!this.red) return;
    const f = this.f;
    const single = this.mode === 1 && this.vec === this.inner;
    this.each(() => {
      for (const [r, a] of this.acc) {
        const o = this.res[args(this.k.nodes[r]!)[0]!]!;
        f.get(a.v).get(o);
        if (this.isSum(r)) {
          if (single) f.i32x4Lanes(LANE0).v128And();
          f.f32x4('add');
        } else {
          if (single) f.f32x4Const(-Infinity).i32x4Lanes(LANE0).v128Bitselect();
          f.f32x4('pmax');
        }
        f.set(a.v);
      }
    });
    if (this.exact) this.flush();
    const count = this.count;
    if (count) f.when(() => f.get(count).i32(1).i32Sub().tee(count).i32Eqz(), () => {
      this.flush();
      f.assign(count, this.block);
    });
  }

  /** Each blocked sum's lanes added into its f64 totals, and zeroed. */
  private flush(): void {
    const f = this.f;
    for (const a of this.accU.slice(0, this.U).flatMap((m) => [...m.values()])) {
      if (!a.totals) continue;
      const [t0, t1] = a.totals;
      f.get(t0).get(a.v).f64x2PromoteLowF32x4().f64x2Add().set(t0);
      f.get(t1).get(a.v).get(a.v).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().set(t1);
      f.f32x4Const(0).set(a.v);
    }
  }

  /** Pushes the f64 total of a sum across the lanes: its totals' four lanes, (t0₀ + t0₁) + (t1₀ + t1₁). */
  private laneTotal(t0: Local, t1: Local): Body {
    const f = this.f;
    f.get(t0).f64x2ExtractLane(0).get(t0).f64x2ExtractLane(1).f64Add();
    return f.get(t1).f64x2ExtractLane(0).get(t1).f64x2ExtractLane(1).f64Add().f64Add();
  }

  /** The reductions' values, in every lane (a lane reduction's four lanes combined), as their nodes' locals. */
  private finish(): void {
    const f = this.f;
    const lanes = this.vec === this.inner;
    for (const [r, a] of this.acc) {
      const [t0, t1] = a.totals ?? [];
      if (lanes && t0 && t1) this.laneTotal(t0, t1).f32DemoteF64().f32x4Splat();
      else if (lanes) {
        f.get(a.v).f32x4ExtractLane(0);
        for (let l = 1; l < 4; l++) f.get(a.v).f32x4ExtractLane(l)[this.isSum(r) ? 'f32Add' : 'f32Max']();
        f.f32x4Splat();
      } else if (t0 && t1) {
        f.get(t0).f32x4DemoteF64x2Zero().get(t1).f32x4DemoteF64x2Zero().i32x4Shuffle([0, 1, 4, 5]);
      } else f.get(a.v);
      f.set(this.res[r]!);
    }
  }
}

/** A value known at build time, else `otherwise`. */
function num(v: Val, otherwise: number): number {
  return typeof v === 'number' ? v : otherwise;
}

function args(n: FlatNode): readonly number[] {
  return 'args' in n ? n.args : [];
}

/** The nodes `roots` need, walking back through their arguments, stopping at reductions (and including them). */
function needed(nodes: readonly FlatNode[], roots: readonly number[]): boolean[] {
  const need = nodes.map(() => false);
  const visit = (i: number) => {
    if (need[i]) return;
    need[i] = true;
    if (nodes[i]!.op !== 'reduce') args(nodes[i]!).forEach(visit);
  };
  roots.forEach(visit);
  return need;
}
