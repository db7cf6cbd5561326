// A matmul's epilogue of the kernel form written at the points of the matmul kernel's register
// tile (codegen/wasm/matmul.ts): the kernel-form renderer's other client (codegen/wasm/kernel.ts
// renders whole kernels).

import type { Kernel } from '../kernel/form.js';
import type { Local } from './encode.js';
import { Body } from './encode.js';
import type { FlatKernel, RtSizes, Val } from './kernel-plan.js';
import { KernelUnsupported, flatten, unsupported, valKey } from './kernel-plan.js';
import { WASM_CAPABILITIES, alu, constant } from './kernel-alu.js';
import { decompose } from '../kernel/decompose.js';
import type { I32 } from './index-lines.js';

/** A pointer of a tile epilogue: `addr + 4·(i·si + j·sj)` at the tile's first row i and column j (addr a run-time value in the symbolic module). */
export interface TilePointer {
  readonly local: Local;
  readonly addr: I32;
  readonly si: number;
  readonly sj: number;
}

/** A flat epilogue whose strides are numbers (its addresses may be run-time values: the symbolic module's). */
type TileKernel = Omit<FlatKernel, 'accesses'> & { readonly accesses: readonly { readonly base: Val; readonly strides: readonly number[] }[] };

/** The symbolic module's run-time values (codegen/wasm/symbolic-forms.ts): its arrays' addresses, and a value as code. */
export interface TileRt {
  readonly sizes: RtSizes;
  readonly i32: (v: Val) => I32;
}

/**
 * A matmul's epilogue of the kernel form (its routine's epilogue kernel over the product's
 * [M, N]), written at the points of the matmul kernel's register tile (codegen/wasm/matmul.ts):
 * a load of the product is the tile's accumulator there, any other load or store walks its array
 * from pointers the matmul sets at each tile (a column stride of 0 or 1: a splat or a vector).
 */
export class TileEpilogue {
  readonly pointers: TilePointer[] = [];
  private readonly res: Local[];
  private readonly ptrs: Local[];

  private constructor(
    private readonly f: Body,
    private readonly k: TileKernel,
    private readonly product: ReadonlySet<number>,
    private readonly name: string,
    private readonly rt?: TileRt,
  ) {
    this.res = k.nodes.map(() => f.local('v128'));
    this.ptrs = k.accesses.map((a, i) => (product.has(i) ? (undefined as unknown as Local) : this.pointer(a.base, a.strides[0]!, a.strides[1]!)));
  }

  /**
   * The epilogue `k` (its primitives decomposed) ready for the matmul's tiles, reading the product
   * `product` as the accumulators; undefined where it cannot be written there (then it is a kernel
   * of its own after the matmul). With `rt` (the symbolic module) its arrays' addresses may be
   * run-time values; its strides and N must be numbers.
   */
  static plan(k: Kernel, product: string, addr: (arg: string) => number | undefined, rt?: TileRt): ((f: Body) => TileEpilogue) | undefined {
    const d = decompose(k, WASM_CAPABILITIES);
    if (d.domain.length !== 2 || d.axes.length || d.nodes.some((n) => n.op === 'coord' || n.op === 'dim' || n.op === 'reduce' || (n.op === 'load' && n.access.guards?.length))) return undefined;
    let fk: TileKernel;
    try {
      // (the product's accesses at base 0, as a static build's: they are the tile's accumulators)
      const sizes: RtSizes | undefined = rt && { address: (arg, off) => (arg === product ? (off.syms.length ? undefined : 4 * off.coef) : rt.sizes.address(arg, off)) };
      [fk] = flatten(d, (arg) => (arg === product ? 0 : addr(arg)), { squeeze: false, rt: sizes }) as [TileKernel];
    } catch (err) {
      if (err instanceof KernelUnsupported) return undefined;
      throw err;
    }
    const N = fk.dims[1]!;
    if (typeof N !== 'number' || fk.accesses.some((a) => a.strides.some((x) => typeof x !== 'number'))) return undefined;
    // the accesses of the product: at the point itself
    const ofProduct = new Set(d.nodes.flatMap((n, i) => (n.op === 'load' && n.access.arg === product ? [(fk.nodes[i] as { a: number }).a] : [])));
    if ([...ofProduct].some((a) => fk.accesses[a]!.base !== 0 || fk.accesses[a]!.strides[0] !== N || fk.accesses[a]!.strides[1] !== 1)) return undefined;
    if (fk.stores.some((s) => ofProduct.has(s.a) || fk.accesses[s.a]!.strides[1] !== 1)) return undefined;
    if (fk.accesses.some((a, i) => !ofProduct.has(i) && a.strides[1] !== 0 && a.strides[1] !== 1)) return undefined;
    // every node native (a shift by a constant)
    const trial = new TileEpilogue(new Body(), fk, ofProduct, k.name, rt && { ...rt, i32: () => 0 });
    try {
      trial.at(0, 0, 4, trial.f.local('v128'));
    } catch (err) {
      if (err instanceof KernelUnsupported) return undefined;
      throw err;
    }
    return (f) => new TileEpilogue(f, fk, ofProduct, k.name, rt);
  }

  private readonly keys: string[] = [];

  private pointer(addr: Val, si: number, sj: number): Local {
    const key = `${valKey(addr)} ${si} ${sj}`;
    const at = this.keys.indexOf(key);
    if (at >= 0) return this.pointers[at]!.local;
    const local = this.f.local('i32');
    this.keys.push(key);
    this.pointers.push({ local, addr: typeof addr === 'number' ? addr : this.rt!.i32(addr), si, sj });
    return local;
  }

  /** The epilogue at row r and vector v of the tile (4 columns, `lanes` of them stored), `acc` holding the product there. */
  at(r: number, v: number, lanes: number, acc: Local): void {
    const f = this.f;
    const k = this.k;
    k.nodes.forEach((n, i) => {
      if (n.op === 'const') constant(f, n.dtype, n.value);
      else if (n.op === 'load' && this.product.has(n.a)) f.get(acc);
      else if (n.op === 'load') {
        const [si, sj] = k.accesses[n.a]!.strides as [number, number];
        f.get(this.ptrs[n.a]!);
        if (sj === 0) f.v128Load32Splat(4 * r * si);
        else f.v128Load(4 * (r * si + 4 * v));
      } else if (!alu(f, n, k.nodes, this.res)) throw unsupported({ name: this.name }, `${n.op} has no WebAssembly SIMD form here (${n.dtype})`);
      f.set(this.res[i]!);
    });
    for (const s of k.stores) this.store(this.ptrs[s.a]!, this.res[s.node]!, 4 * (r * k.accesses[s.a]!.strides[0]! + 4 * v), lanes);
  }

  /** Stores `lanes` lanes of a vector at ptr + off. */
  store(ptr: Local, value: Local, off: number, lanes: number): void {
    storeLanes(this.f, ptr, value, off, lanes);
  }
}

/** Stores `lanes` lanes (1–4) of the vector `value` at ptr + off. */
export function storeLanes(f: Body, ptr: Local, value: Local, off: number, lanes: number): void {
  if (lanes === 4) f.get(ptr).get(value).v128Store(off);
  else for (let lane = 0; lane < lanes; lane++) f.get(ptr).get(value).v128Store32Lane(off + 4 * lane, lane);
}
