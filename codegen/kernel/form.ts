// The kernel form: the small IR below the graph IR that every target is to render (issue #29).
//
// A **kernel** is one loop nest over an iteration domain (sizes are `Dim`s, so symbolic batch
// sizes work). It reads arrays through affine index maps (a stride per domain axis plus an
// offset; a broadcast operand has stride 0 on the axes it does not vary along; a guard makes a
// load read 0 outside a window), computes an expression DAG over a fixed set of ALU primitives,
// may reduce over some of its axes (sum or max, with an accumulator type), computes an epilogue
// over the kept axes from the reductions, and stores values through index maps.
//
// A **routine** is what needs an algorithm of its own (a register-tiled matmul, a convolution,
// softmax rows, pooling, the index ops): its operands are views (shape, strides, offset) of
// arrays, its result is written densely, and an epilogue kernel over the result's shape may
// follow it (a matmul's bias and activation) reading the result as an array.
//
// A **host program** holds, per entry point, the ordered launches and the staging and read-back
// of arrays; every array is a value of the graph, placed in a buffer of the memory plan.
//
// The ALU table at the bottom is the one definition of each primitive's semantics (arity,
// typing, float64 evaluation), shared by the verifier and the reference evaluator.

import type { Dim, Size } from '../../ir/dims.js';
import type { Poly } from '../../ir/layout.js';
import { polyAdd } from '../../ir/layout.js';
import type { AttrsOf } from '../../ir/ops.js';
import { erf } from '../../ir/special.js';

/** Element types of kernel values: f32 and i32 as in the graph IR, bool for comparisons. */
export type EType = 'f32' | 'i32' | 'bool';

/**
 * An affine index map over a kernel's domain: index = offset + Σ strides[d] · x_d, x_d the
 * coordinate of domain axis d. `strides` has one entry per domain axis (0: broadcast).
 */
export interface Access {
  /** The array read or written: a value name declared by the host program. */
  readonly arg: string;
  readonly strides: readonly Size[];
  /**
   * A size, or a sum of sizes of different symbols (ir/layout.ts's `Poly`, two terms or more): a
   * pad's or slice's start along axes whose strides are products of different symbols (`2*B + 1`).
   */
  readonly offset: Size | Poly;
  /** A load with guards reads 0 where a guard fails (the padding of a pad or concat). */
  readonly guards?: readonly Guard[];
}

/** An offset as a sum of sizes (`[]` for 0). */
export function offsetTerms(o: Size | Poly): Poly {
  return 'coef' in o ? polyAdd(o) : o;
}

/** A sum of sizes as an offset: one size where the terms have one set of symbols (0 for none). */
export function offsetOf(p: Poly): Size | Poly {
  return p.length <= 1 ? (p[0] ?? { coef: 0, syms: [] }) : p;
}

/**
 * lo ≤ x_axis < hi. One domain axis per guard for now; a padded convolution window (a guard on
 * stride·x_o + x_k − pad) is the next form of it.
 */
export interface Guard {
  readonly axis: number;
  readonly lo: number;
  readonly hi: Size;
}

/**
 * Unary primitives. f32 → f32: neg (also i32), recip, abs, exp, log, sqrt, tanh, sin, cos, erf,
 * log1p, expm1, floor. Conversions: cast (i32 or bool → f32, by value), toint (f32 → i32,
 * truncating toward 0, saturating at ±2³¹, NaN → 0: wasm's i32.trunc_sat_f32_s), bits (f32 → i32,
 * the IEEE-754 bit pattern) and frombits (i32 → f32, its inverse).
 */
export type UnaryOp =
  | 'neg' | 'recip' | 'abs' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'cast'
  | 'sin' | 'cos' | 'erf' | 'log1p' | 'expm1' | 'floor'
  | 'toint' | 'bits' | 'frombits';
/**
 * Binary primitives: add sub mul max min on two f32 or two i32 (i32 wraps modulo 2³²), div and
 * pow on f32, comparisons lt le eq (→ bool); on i32 only: shl, shr (arithmetic: the sign bit is
 * copied in; the shift count is taken modulo 32; every decomposition shifts by a constant, which
 * wasm SIMD needs: its shifts take one scalar count); and, or on two i32 (bitwise) or two bool.
 */
export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'pow' | 'lt' | 'le' | 'eq'
  | 'shl' | 'shr' | 'and' | 'or';
/** Every computing primitive: what a renderer's capabilities name (codegen/kernel/decompose.ts). */
export type AluOp = UnaryOp | BinaryOp | 'where';
export type ReduceOp = 'sum' | 'max';

/** One SSA node of a kernel's DAG; args are indices of earlier nodes. */
export type Node =
  | { readonly op: 'const'; readonly dtype: EType; readonly value: number }
  | { readonly op: 'load'; readonly dtype: EType; readonly access: Access }
  /** The coordinate of a domain axis (one_hot's class index). */
  | { readonly op: 'coord'; readonly dtype: 'i32'; readonly axis: number }
  /** The bound size of a symbolic dimension, as f32 (the 1/B of a mean over a symbolic batch). */
  | { readonly op: 'dim'; readonly dtype: 'f32'; readonly name: string }
  | { readonly op: UnaryOp; readonly dtype: EType; readonly args: readonly [number] }
  | { readonly op: BinaryOp; readonly dtype: EType; readonly args: readonly [number, number] }
  /**
   * where(c, a, b): a where c holds, else b. `rare`: c seldom holds (Payne–Hanek's huge sin
   * arguments): a renderer may compute what only `a` needs just where c holds somewhere
   * (codegen/kernel/rare.ts); the value is the same. Printed `where.rare`.
   */
  | { readonly op: 'where'; readonly dtype: EType; readonly args: readonly [number, number, number]; readonly rare?: true }
  /**
   * The reduction of its operand over the kernel's reduced axes; nodes that use it are the
   * epilogue, evaluated once per point of the kept axes.
   */
  | { readonly op: 'reduce'; readonly dtype: EType; readonly red: ReduceOp; readonly acc: 'f32' | 'f64'; readonly args: readonly [number] };

export interface Store {
  readonly node: number;
  readonly access: Access;
}

export interface Kernel {
  readonly kind: 'kernel';
  readonly name: string;
  readonly domain: readonly Dim[];
  /** The reduced axes of the domain, sorted (empty: no reduction). */
  readonly axes: readonly number[];
  readonly nodes: readonly Node[];
  readonly stores: readonly Store[];
  /** Comment lines: the IR instructions the kernel computes. */
  readonly notes: readonly string[];
}

/** A strided view of an array: a routine's operand. */
export interface View {
  readonly arg: string;
  readonly shape: readonly Dim[];
  readonly strides: readonly Size[];
  readonly offset: Size;
}

/** The graph ops that lower to routines rather than to ALU expressions. */
export type RoutineOp =
  | 'matmul'
  | 'conv'
  | 'conv_input_grad'
  | 'conv_weight_grad'
  | 'max_pool'
  | 'max_pool_grad'
  | 'max_pool_pick'
  | 'avg_pool'
  | 'avg_pool_grad'
  | 'softmax'
  | 'log_softmax'
  | 'xent'
  | 'gather'
  | 'scatter_add'
  | 'pick'
  | 'argmax_mask'
  | 'argmax'
  | 'argmin'
  | 'cumsum';

export type RoutineCall = { [K in RoutineOp]: { readonly op: K; readonly attrs: AttrsOf[K] } }[RoutineOp];

export type Routine = RoutineCall & {
  readonly kind: 'routine';
  readonly name: string;
  readonly inputs: readonly View[];
  /** The result, written densely (row-major). */
  readonly output: View;
  /** The result's element type (i32: argmax, argmin). */
  readonly dtype: 'f32' | 'i32';
  /** Elementwise ops of the result (a matmul's bias, an activation), over the result's shape. */
  readonly epilogue?: Kernel;
  readonly notes: readonly string[];
};

export type Launch = Kernel | Routine;

/** Where an array lives: a buffer of the memory plan, constant data, or a scratch array. */
export type Place =
  | { readonly kind: 'buffer'; readonly id: number }
  | { readonly kind: 'const'; readonly data: readonly number[] }
  /** A routine's result that only its epilogue reads (a register value of the plan). */
  | { readonly kind: 'scratch' };

export interface ArrayDecl {
  readonly name: string;
  readonly dtype: 'f32' | 'i32';
  readonly numel: Size;
  readonly place: Place;
}

export interface BufferDecl {
  readonly id: number;
  readonly dtype: 'f32' | 'i32';
  readonly size: Size;
}

export type Step =
  /**
   * Copies a param, an input or module state into its array; a state's key is a buffer's name,
   * `mode` (the training flag) or `dropout_mask SITE`.
   */
  | { readonly kind: 'stage'; readonly array: string; readonly source: 'param' | 'input' | 'state'; readonly key: string }
  | { readonly kind: 'launch'; readonly launch: Launch }
  /** Reads an output (or a gradient) back from its array. */
  | { readonly kind: 'read'; readonly output: string; readonly array: string }
  /**
   * A scan that stays a loop (ir/loops.ts): `steps`, the body's launches (nested loops included),
   * run `length` times (from the last step when `reverse`). Before each run the host copies the
   * step's slices of the xs into the body's operand arrays, after it writes the ys at the step
   * and copies the new carries back (the scan's IR line, `scan`, says which arrays).
   */
  | { readonly kind: 'loop'; readonly scan: string; readonly length: Size; readonly reverse: boolean; readonly steps: readonly Step[]; readonly moves: LoopMoves };

/** A copy of one array into another (a uniform constant of one element fills it). */
export interface Move {
  readonly to: string;
  readonly from: string;
}

/** Slice t along `axis` of `stacked` (of shape `shape`, the scanned axis included), as the step's array `step`. */
export interface StepSlice {
  readonly stacked: string;
  readonly step: string;
  readonly shape: readonly Dim[];
  readonly axis: number;
}

/** The host's copies around a loop's steps. */
export interface LoopMoves {
  /** Before the loop: the initial carries and the closed-over values into the body's operands. */
  readonly init: readonly Move[];
  /** Before each step: the xs' slices into the body's operands. */
  readonly xs: readonly StepSlice[];
  /** After each step: the ys written into their stacked arrays. */
  readonly ys: readonly StepSlice[];
  /** Then the new carries into the carries' operands (all read before any is written). */
  readonly carries: readonly Move[];
  /** After the loop: the final carries into the scan's results. */
  readonly out: readonly Move[];
}

export interface Entry {
  readonly name: 'forward' | 'valueAndGrad';
  readonly steps: readonly Step[];
}

export interface HostProgram {
  readonly name: string;
  readonly buffers: readonly BufferDecl[];
  readonly arrays: readonly ArrayDecl[];
  readonly entries: readonly Entry[];
}

// ---------------------------------------------------------------------------------------------
// The ALU primitives: arity, result type, float64 semantics

export interface AluDef {
  readonly arity: number;
  /** The result type from the operand types, or a message saying what is wrong. */
  readonly type: (args: readonly EType[]) => EType | string;
  readonly eval: (...xs: number[]) => number;
}

const numeric = (t: EType) => t === 'f32' || t === 'i32';
const unaryF32: AluDef['type'] = ([a]) => (a === 'f32' ? 'f32' : `needs f32, got ${a}`);
const sameNumeric: AluDef['type'] = ([a, b]) => (a === b && numeric(a!) ? a! : `needs two f32 or two i32 operands, got ${a}, ${b}`);
const compare: AluDef['type'] = ([a, b]) => (a === b && numeric(a!) ? 'bool' : `needs two f32 or two i32 operands, got ${a}, ${b}`);
const unary = (f: (x: number) => number): AluDef => ({ arity: 1, type: unaryF32, eval: f });
const binary = (f: (a: number, b: number) => number, type = sameNumeric): AluDef => ({ arity: 2, type, eval: f });
const twoI32: AluDef['type'] = ([a, b]) => (a === 'i32' && b === 'i32' ? 'i32' : `needs two i32 operands, got ${a}, ${b}`);
const logical: AluDef['type'] = ([a, b]) => (a === b && (a === 'i32' || a === 'bool') ? a! : `needs two i32 or two bool operands, got ${a}, ${b}`);

const F32 = new Float32Array(1);
const I32 = new Int32Array(F32.buffer);
/** The bit pattern of the f32 nearest x. */
export function f32Bits(x: number): number {
  F32[0] = x;
  return I32[0]!;
}
/** The f32 whose bit pattern is the i32 x. */
export function f32FromBits(x: number): number {
  I32[0] = x;
  return F32[0]!;
}
/** f32 → i32 as wasm's i32.trunc_sat_f32_s: toward 0, saturating, NaN → 0. */
function toInt(x: number): number {
  if (Number.isNaN(x)) return 0;
  return Math.max(-2147483648, Math.min(2147483647, Math.trunc(x))) | 0;
}

/**
 * The semantics of every computing primitive (const, load, coord, dim and reduce are the kernel's
 * own), in float64; an evaluator rounds each f32 result to f32 (Math.fround) and wraps each i32
 * result modulo 2³² (codegen/kernel/eval.ts).
 */
export const ALU: { readonly [K in AluOp]: AluDef } = {
  neg: { arity: 1, type: ([a]) => (numeric(a!) ? a! : `needs f32 or i32, got ${a}`), eval: (x) => -x },
  recip: unary((x) => 1 / x),
  abs: unary(Math.abs),
  exp: unary(Math.exp),
  log: unary(Math.log),
  sqrt: unary(Math.sqrt),
  tanh: unary(Math.tanh),
  sin: unary(Math.sin),
  cos: unary(Math.cos),
  erf: unary(erf),
  log1p: unary(Math.log1p),
  expm1: unary(Math.expm1),
  floor: unary(Math.floor),
  toint: { arity: 1, type: ([a]) => (a === 'f32' ? 'i32' : `converts f32 to i32, got ${a}`), eval: toInt },
  bits: { arity: 1, type: ([a]) => (a === 'f32' ? 'i32' : `reinterprets f32 as i32, got ${a}`), eval: f32Bits },
  frombits: { arity: 1, type: ([a]) => (a === 'i32' ? 'f32' : `reinterprets i32 as f32, got ${a}`), eval: f32FromBits },
  /** To f32 from i32 or bool (1 and 0). */
  cast: { arity: 1, type: ([a]) => (a === 'i32' || a === 'bool' ? 'f32' : `casts i32 or bool to f32, got ${a}`), eval: (x) => x },
  add: binary((a, b) => a + b),
  sub: binary((a, b) => a - b),
  mul: binary((a, b) => a * b),
  div: binary((a, b) => a / b, ([a, b]) => (a === 'f32' && b === 'f32' ? 'f32' : `needs two f32 operands, got ${a}, ${b}`)),
  max: binary(Math.max),
  min: binary(Math.min),
  pow: binary(Math.pow, ([a, b]) => (a === 'f32' && b === 'f32' ? 'f32' : `needs two f32 operands, got ${a}, ${b}`)),
  lt: binary((a, b) => (a < b ? 1 : 0), compare),
  le: binary((a, b) => (a <= b ? 1 : 0), compare),
  eq: binary((a, b) => (a === b ? 1 : 0), compare),
  shl: binary((a, b) => a << b, twoI32),
  shr: binary((a, b) => a >> b, twoI32),
  and: binary((a, b) => a & b, logical),
  or: binary((a, b) => a | b, logical),
  where: {
    arity: 3,
    type: ([c, a, b]) => (c !== 'bool' ? `needs a bool condition, got ${c}` : a === b && numeric(a!) ? a! : `needs two branches of one type, got ${a}, ${b}`),
    eval: (c, a, b) => (c !== 0 ? a! : b!),
  },
};

export const REDUCE_INIT: { readonly [R in ReduceOp]: number } = { sum: 0, max: -Infinity };
export const REDUCE_STEP: { readonly [R in ReduceOp]: (acc: number, v: number) => number } = {
  sum: (acc, v) => acc + v,
  max: (acc, v) => (v > acc ? v : acc),
};

/**
 * A node's hash-consing key: its JSON, with the numbers JSON cannot tell apart (NaN, ±Infinity,
 * −0; JSON writes the first three as null and −0 as 0) spelled out, so that two constants merge
 * only when they are the same value.
 */
export function nodeKey(n: Node): string {
  return JSON.stringify(n, (_k, v: unknown) => (typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0)) ? `#${Object.is(v, -0) ? '-0' : String(v)}` : v));
}

export function isAlu(op: string): op is AluOp {
  return Object.prototype.hasOwnProperty.call(ALU, op);
}

/** The arguments of a node (none for const, load, coord, dim). */
export function argsOf(n: Node): readonly number[] {
  return 'args' in n ? n.args : [];
}

/**
 * The nodes `roots` need, walking back through their arguments: through a reduction's too with
 * `throughReduce` (else it is needed, not what it reduces), not through a node where `stop` holds.
 */
export function neededNodes(k: Kernel, roots: readonly number[], throughReduce = false, stop?: (i: number) => boolean): boolean[] {
  const need = k.nodes.map(() => false);
  const visit = (i: number) => {
    if (need[i]) return;
    need[i] = true;
    if (stop?.(i) || (!throughReduce && k.nodes[i]!.op === 'reduce')) return;
    argsOf(k.nodes[i]!).forEach(visit);
  };
  roots.forEach(visit);
  return need;
}

/**
 * Which nodes belong to the epilogue: those that depend on a reduction. The others are
 * evaluated at every point of the domain.
 */
export function epilogueNodes(k: Kernel): boolean[] {
  const epi: boolean[] = [];
  k.nodes.forEach((n, i) => (epi[i] = n.op === 'reduce' || argsOf(n).some((a) => epi[a])));
  return epi;
}
