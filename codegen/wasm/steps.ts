// Elementwise steps in WebAssembly SIMD: what a matmul kernel's epilogue and an elementwise
// kernel compute at each position, four columns (one f32x4) at a time. Operands are the matmul's
// accumulators, earlier steps, constants, or arrays read through broadcast strides; a step's
// result may be stored. tanh, exp and sigmoid have no SIMD instruction: exp and tanh are the
// kernel form's decompositions of them (codegen/kernel/decompose.ts), written on the stack.

import type { Body, F32x4Op, Local } from './encode.js';
import { unaryOnStack } from './kernel-alu.js';

/** A pointer of a tile epilogue (codegen/wasm/tile-epilogue.ts; here, as the symbolic module embeds this file): `addr + 4·(i·si + j·sj)` at the tile's first row i and column j. */
export interface TilePointer {
  readonly local: Local;
  readonly addr: number;
  readonly si: number;
  readonly sj: number;
}

/** The v128 temporaries a StepWriter has for its exp and tanh, and of them exp's (unaryOnStack). */
export const STEP_TEMPS = 8;
export const EXP_TEMPS = 5;

/** An operand of a step. */
export type Operand =
  | { readonly kind: 'acc' }
  /** The result of an earlier step. */
  | { readonly kind: 'step'; readonly step: number }
  /** A broadcast f32 array: element (i, j) at byte `addr + 4·(i·si + j·sj)`, sj 0 or 1. */
  | { readonly kind: 'mem'; readonly addr: number; readonly si: number; readonly sj: number }
  | { readonly kind: 'const'; readonly value: number };

/** The elementwise operations a step can apply. */
export type StepOp =
  | Extract<F32x4Op, 'add' | 'sub' | 'mul' | 'div' | 'min' | 'max' | 'neg' | 'abs' | 'sqrt'>
  | 'relu'
  | 'square'
  | 'gt'
  | 'ge'
  | 'copy'
  | 'bn_apply'
  | 'recip'
  | 'rsqrt'
  | 'exp'
  | 'tanh'
  | 'sigmoid'
  /** a < b ? b : a: a running maximum that, as the flat module's `if (v > a) a = v`, skips NaN. */
  | 'pmax'
  /** select(c, a, b): c ≠ 0 ? a : b (NaN counts as ≠ 0, as the flat module's `c !== 0`). */
  | 'select';

export interface Step {
  readonly op: StepOp;
  readonly args: readonly Operand[];
  /** Where the step's result is stored (an array of the iteration shape, rows of N), if it is. */
  readonly store?: number;
  /** The row stride of the stored array, if not N (0: one row that every row updates, an accumulator). */
  readonly storeSi?: number;
}

/** Writes steps at one position; the kernel sets and advances the pointers. */
export class StepWriter {
  /** The pointer locals (a tile epilogue's kind): `addr + 4·(i·si + j·sj)` at the position being computed. */
  readonly pointers: TilePointer[] = [];
  private readonly results: Local[];
  private readonly tmp: Local[];
  private readonly storePtr = new Map<number, { local: Local; si: number }>();

  constructor(
    private readonly f: Body,
    readonly steps: readonly Step[],
    /** Row length of the stored arrays. */
    private readonly N: number,
  ) {
    this.results = steps.map(() => f.local('v128'));
    this.tmp = steps.some((s) => s.op === 'tanh' || s.op === 'exp' || s.op === 'sigmoid') ? Array.from({ length: STEP_TEMPS }, () => f.local('v128')) : [];
    for (const s of steps) {
      for (const a of s.args) if (a.kind === 'mem') this.pointer(a.addr, a.si, a.sj);
      if (s.store !== undefined) this.storePtr.set(s.store, { local: this.pointer(s.store, s.storeSi ?? N, 1), si: s.storeSi ?? N });
    }
  }

  /** The register holding step n's result at the position last written. */
  result(n: number): Local {
    return this.results[n]!;
  }

  private pointer(addr: number, si: number, sj: number): Local {
    if (sj !== 0 && sj !== 1) throw new Error(`internal: operand with column stride ${sj}`);
    const p = this.pointers.find((q) => q.addr === addr && q.si === si && q.sj === sj);
    if (p) return p.local;
    const local = this.f.local('i32');
    this.pointers.push({ local, addr, si, sj });
    return local;
  }

  /**
   * The steps at row r and vector v past the pointers' position (4 columns; only `lanes` of
   * them stored), `acc` holding the matmul's accumulator there.
   */
  at(r: number, v: number, lanes: number, acc?: Local): void {
    const f = this.f;
    this.steps.forEach((s, n) => {
      const push = (k: number) => this.push(s.args[k]!, r, v, acc);
      const binary = (op: F32x4Op) => {
        push(0);
        push(1);
        f.f32x4(op);
      };
      switch (s.op) {
        case 'copy':
          push(0);
          break;
        case 'neg':
        case 'abs':
        case 'sqrt':
          push(0);
          f.f32x4(s.op);
          break;
        case 'square':
          push(0);
          push(0);
          f.f32x4('mul');
          break;
        case 'relu': // x > 0 ? x : 0, as pmax(0, x) = 0 < x ? x : 0 (NaN gives 0, as in JS)
          f.f32x4Const(0);
          push(0);
          f.f32x4('pmax');
          break;
        case 'recip':
          f.f32x4Const(1);
          push(0);
          f.f32x4('div');
          break;
        case 'rsqrt':
          f.f32x4Const(1);
          push(0);
          f.f32x4('sqrt').f32x4('div');
          break;
        case 'gt':
        case 'ge': // a mask of all-ones lanes, and-ed with 1.0
          binary(s.op);
          f.f32x4Const(1).v128And();
          break;
        case 'select': // c == 0 ? b : a, by a lane mask
          push(2);
          push(1);
          push(0);
          f.f32x4Const(0).f32x4('eq').v128Bitselect();
          break;
        case 'bn_apply': // (x - mean) * scale
          binary('sub');
          push(2);
          f.f32x4('mul');
          break;
        case 'exp':
          push(0);
          this.exp();
          break;
        case 'sigmoid': // 1 / (1 + exp(-x))
          f.f32x4Const(1);
          push(0);
          f.f32x4('neg');
          this.exp();
          f.f32x4Const(1).f32x4('add').f32x4('div');
          break;
        case 'tanh':
          push(0);
          this.tanh();
          break;
        default:
          binary(s.op);
      }
      f.set(this.results[n]!);
      if (s.store !== undefined) {
        const p = this.storePtr.get(s.store)!;
        this.store(p.local, this.results[n]!, 4 * (r * p.si + 4 * v), lanes);
      }
    });
  }

  /** Stores `lanes` lanes of a vector at ptr + off. */
  store(ptr: Local, value: Local, off: number, lanes: number): void {
    if (lanes === 4) this.f.get(ptr).get(value).v128Store(off);
    else for (let lane = 0; lane < lanes; lane++) this.f.get(ptr).get(value).v128Store32Lane(off + 4 * lane, lane);
  }

  private push(o: Operand, r: number, v: number, acc: Local | undefined): void {
    const f = this.f;
    switch (o.kind) {
      case 'acc':
        if (!acc) throw new Error('internal: no accumulator outside a matmul');
        f.get(acc);
        return;
      case 'step':
        f.get(this.results[o.step]!);
        return;
      case 'const':
        f.f32x4Const(o.value);
        return;
      case 'mem': {
        f.get(this.pointer(o.addr, o.si, o.sj));
        const off = 4 * (r * o.si + 4 * v * o.sj);
        if (o.sj === 0) f.v128Load32Splat(off);
        else f.v128Load(off);
        return;
      }
    }
  }

  private exp(): void {
    f32x4Exp(this.f, this.tmp);
  }

  /** tanh of the vector on the stack: the kernel form's decomposition of it, as exp. */
  private tanh(): void {
    unaryOnStack(this.f, 'tanh', this.tmp);
  }
}

/**
 * exp of the vector on the stack, as the kernel form's decomposition of exp computes it
 * (codegen/kernel/decompose.ts, rendered by codegen/wasm/kernel-alu.ts), with five v128 temporaries.
 */
export function f32x4Exp(f: Body, tmp: readonly Local[]): void {
  unaryOnStack(f, 'exp', tmp.slice(0, EXP_TEMPS));
}
