// The ALU primitives of the kernel form (codegen/kernel/form.ts) as WebAssembly SIMD: f32 nodes
// are f32x4 lanes, i32 nodes i32x4 lanes, bool nodes lane masks (all ones where true), so that a
// comparison is one instruction and `where` a v128.bitselect; bits and frombits reinterpret the
// lanes (no instruction), and a shift's count is one constant for all lanes. What is not here
// (exp, log, tanh, sin, erf, a power with a non-constant exponent) the shared decomposition pass
// (codegen/kernel/decompose.ts) rewrites into these.

import type { Body, Local } from './encode.js';
import type { AluOp, EType } from '../kernel/form.js';
import type { Capabilities } from '../kernel/decompose.js';
import { capabilities } from '../kernel/decompose.js';
import type { FlatNode } from './kernel-plan.js';

/** The primitives this renderer computes natively (its capabilities, for the decomposition pass). */
export const WASM_NATIVE = ['neg', 'recip', 'abs', 'sqrt', 'floor', 'cast', 'toint', 'bits', 'frombits', 'add', 'sub', 'mul', 'div', 'max', 'min', 'lt', 'le', 'eq', 'shl', 'shr', 'and', 'or', 'where'] as const satisfies readonly AluOp[];
export type NativeOp = (typeof WASM_NATIVE)[number];
export const WASM_CAPABILITIES: Capabilities = capabilities('the wasm SIMD target', WASM_NATIVE);

const NATIVE = new Set<string>(WASM_NATIVE);
export const isNative = (op: string): op is NativeOp => NATIVE.has(op);

/** SIMD opcodes (after the 0xfd prefix) by operand type. */
const F32: Partial<Record<NativeOp, number>> = { add: 0xe4, sub: 0xe5, mul: 0xe6, div: 0xe7, min: 0xe8, max: 0xe9, lt: 0x43, le: 0x45, eq: 0x41, neg: 0xe1, abs: 0xe0, sqrt: 0xe3, floor: 0x68, toint: 0xf8 };
const I32: Partial<Record<NativeOp, number>> = { add: 0xae, sub: 0xb1, mul: 0xb5, min: 0xb6, max: 0xb8, lt: 0x39, le: 0x3d, eq: 0x37, neg: 0xa1, and: 0x4e, or: 0x50 };
/** i32x4 shifts by an i32 count: shl, and shr arithmetic (shr_s). */
const SHIFT = { shl: 0xab, shr: 0xac } as const;
/** Bool masks: and, or bitwise on the lanes. */
const BOOL: Partial<Record<NativeOp, number>> = { and: 0x4e, or: 0x50 };
const CONVERT_I32_TO_F32 = 0xfa;

/** Pushes a constant of a node's type, in every lane. */
export function constant(f: Body, dtype: EType, value: number): void {
  if (dtype === 'f32') f.f32x4Const(value);
  else if (dtype === 'i32') f.i32x4Const(value);
  else f.i32x4Const(value !== 0 ? -1 : 0);
}

/**
 * Pushes the value of a computing node from its operands' locals; undefined when the op is not
 * native here (the caller says which kernel and op).
 */
export function alu(f: Body, n: FlatNode, nodes: readonly FlatNode[], res: readonly Local[]): boolean {
  if (!('args' in n) || n.op === 'reduce' || !isNative(n.op)) return false;
  const a = n.args.map((i) => res[i]!);
  const type = (i: number) => nodes[n.args[i]!]!.dtype;
  switch (n.op) {
    case 'where': // a where c, else b: bitselect(a, b, mask)
      f.get(a[1]!).get(a[2]!).get(a[0]!).v128Bitselect();
      return true;
    case 'recip':
      f.f32x4Const(1).get(a[0]!).f32x4('div');
      return true;
    case 'cast':
      if (type(0) === 'bool') f.get(a[0]!).f32x4Const(1).v128And();
      else f.get(a[0]!).simd(CONVERT_I32_TO_F32);
      return true;
    case 'bits':
    case 'frombits': // the same 128 bits, read as the other type
      f.get(a[0]!);
      return true;
    case 'shl':
    case 'shr': {
      // one count for every lane: a constant
      const c = nodes[n.args[1]]!;
      if (c.op !== 'const') return false;
      f.get(a[0]!).i32(c.value).simd(SHIFT[n.op]);
      return true;
    }
    case 'min':
    case 'max': {
      // against a constant: pmin(x, c) = c < x ? c : x (pmax: x < c ? c : x), one instruction on x64 where f32x4.min/max
      // are several (their NaN and ±0 rules); the same lanes, a NaN x kept, except min(+0, −0) and max(−0, +0): so
      // not for a constant −0 (min) or +0 (max)
      const k = n.args.findIndex((i) => nodes[i]!.op === 'const');
      const c = k < 0 ? undefined : (nodes[n.args[k]!] as { value: number }).value;
      if (type(0) !== 'f32' || c === undefined || Number.isNaN(c) || Object.is(c, n.op === 'min' ? -0 : 0)) return binary(f, n.op, type(0), a);
      f.get(a[1 - k]!).get(a[k]!).simd(n.op === 'min' ? PMIN : PMAX);
      return true;
    }
    default:
      return binary(f, n.op, type(0), a);
  }
}

const [PMIN, PMAX] = [0xea, 0xeb];

/** A lane-wise instruction of the operands' type over the operands in order; false where it has none. */
function binary(f: Body, op: NativeOp, dtype: EType, a: readonly Local[]): boolean {
  const code = (dtype === 'i32' ? I32 : dtype === 'bool' ? BOOL : F32)[op];
  if (code === undefined) return false;
  for (const l of a) f.get(l);
  f.simd(code);
  return true;
}
