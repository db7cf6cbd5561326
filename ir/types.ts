// Core IR types: typed ids, tensor types, source locations, instructions and graphs.
//
// The IR is typed SSA: every value is defined by exactly one instruction, has a dtype and a
// static shape, and every instruction records the DSL call that made it. Values and
// instructions have distinct branded id types so one cannot be passed for the other.

import type { Dim } from './dims.js';
import type { AttrsOf, OpKind } from './ops.js';

/** An element type: `'f32'` (Float32Array) or `'i32'` (Int32Array: indices, labels). */
export type DType = 'f32' | 'i32';
/** Dimensions: sizes, or symbols bound per call (see dims.ts). */
export type Shape = readonly Dim[];

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

/** A tensor type with its symbols bound (what the interpreter evaluates). */
export interface ConcreteType {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

declare const valueBrand: unique symbol;
declare const instBrand: unique symbol;
/**
 * Handle of an SSA value: an interned object (compare with ===), so that a value can never be
 * mistaken for a number literal; `index` is its dense index into `Graph.values`.
 */
export interface ValueId {
  readonly index: number;
  readonly [valueBrand]: true;
}
/** Id of an instruction; dense index into `Graph.insts` at creation (stable across passes). */
export type InstId = number & { readonly [instBrand]: true };

/**
 * Where in the model file a DSL call was made (1-based line and column). A backward
 * instruction also names the forward op whose gradient rule produced it (`grad`).
 */
export interface Loc {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly grad?: string;
  /** An instruction that a g.grad call emitted into the forward graph: where that call is. */
  readonly via?: Loc;
}

export interface Value {
  readonly id: ValueId;
  /** A valid, unique identifier within the graph (and across forward + backward graphs). */
  name: string;
  /** A temporary: named `t1`, `t2`, ... in program order by `Graph.numberTemps`. */
  temp: boolean;
  readonly type: TensorType;
  readonly def: InstId;
}

/** One instruction; `op` discriminates `attrs`. */
export type Inst = { [K in OpKind]: InstOf<K> }[OpKind];

export interface InstOf<K extends OpKind> {
  readonly id: InstId;
  readonly op: K;
  readonly args: readonly ValueId[];
  readonly attrs: AttrsOf[K];
  readonly result: ValueId;
  readonly loc: Loc | undefined;
}

export interface Output {
  readonly name: string;
  readonly value: ValueId;
}

/** A fused group: a contiguous run of instructions emitted as one loop nest. */
export interface Group {
  readonly kind: string;
  readonly insts: readonly InstId[];
}

export type GraphKind = 'forward' | 'backward';

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The element count of a static shape (`numelSize` in dims.ts counts symbolic ones). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatType(t: TensorType): string {
  return `${t.dtype}[${t.shape.join(',')}]`;
}

export function formatLoc(loc: Loc): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}
