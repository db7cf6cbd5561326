// The ALU primitives of the kernel form (codegen/kernel/form.ts) as WebAssembly SIMD: f32 nodes
// are f32x4 lanes, i32 nodes i32x4 lanes, bool nodes lane masks (all ones where true), so that a
// comparison is one instruction and `where` a v128.bitselect; bits and frombits reinterpret the
// lanes (no instruction), and a shift's count is one constant for all lanes. What is not here
// (exp, log, tanh, sin, erf, a power with a non-constant exponent) the shared decomposition pass
// (codegen/kernel/decompose.ts) rewrites into these.

import type { Body, Local } from './encode.js';
import type { AluOp, EType, Node } from '../kernel/form.js';
import type { Capabilities } from '../kernel/decompose.js';
import { capabilities, decompose } from '../kernel/decompose.js';
import type { FlatNode } from './kernel-plan.js';
import { size } from '../../ir/dims.js';

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
  return 'args' in n && aluWith(f, n, nodes, (k) => f.get(res[n.args[k]!]!));
}

/** alu, each operand pushed by `arg(k)` (operand k: a local, or an expression left on the stack). */
function aluWith(f: Body, n: FlatNode, nodes: readonly FlatNode[], arg: (k: number) => void): boolean {
  if (!('args' in n) || n.op === 'reduce' || !isNative(n.op)) return false;
  const type = (i: number) => nodes[n.args[i]!]!.dtype;
  switch (n.op) {
    case 'where': // a where c, else b: bitselect(a, b, mask); b and not c where a is +0, a and c where b is
      if (isZero(nodes[n.args[1]]!)) arg(2), arg(0), f.simd(ANDNOT);
      else if (isZero(nodes[n.args[2]]!)) arg(1), arg(0), f.v128And();
      else arg(1), arg(2), arg(0), f.v128Bitselect();
      return true;
    case 'recip':
      f.f32x4Const(1), arg(0);
      f.f32x4('div');
      return true;
    case 'cast':
      arg(0);
      if (type(0) === 'bool') f.f32x4Const(1).v128And();
      else f.simd(CONVERT_I32_TO_F32);
      return true;
    case 'bits':
    case 'frombits': // the same 128 bits, read as the other type
      arg(0);
      return true;
    case 'shl':
    case 'shr': {
      // one count for every lane: a constant
      const c = nodes[n.args[1]]!;
      if (c.op !== 'const') return false;
      arg(0);
      f.i32(c.value).simd(SHIFT[n.op]);
      return true;
    }
    case 'min':
    case 'max': {
      // against a constant: pmin(x, c) = c < x ? c : x (pmax: x < c ? c : x), one instruction on x64 where f32x4.min/max
      // are several (their NaN and ±0 rules); the same lanes, a NaN x kept, except min(+0, −0) and max(−0, +0): so
      // not for a constant −0 (min) or +0 (max)
      const k = n.args.findIndex((i) => nodes[i]!.op === 'const');
      const c = k < 0 ? undefined : (nodes[n.args[k]!] as { value: number }).value;
      if (type(0) !== 'f32' || c === undefined || Number.isNaN(c) || Object.is(c, n.op === 'min' ? -0 : 0)) return binary(f, n.op, type(0), n.args.length, arg);
      arg(1 - k), arg(k);
      f.simd(n.op === 'min' ? PMIN : PMAX);
      return true;
    }
    default:
      return binary(f, n.op, type(0), n.args.length, arg);
  }
}

const [PMIN, PMAX] = [0xea, 0xeb];
const ANDNOT = 0x4f;
/** A constant whose bits are all 0 (+0, false). */
const isZero = (n: FlatNode) => n.op === 'const' && Object.is(n.value, 0);

/** A lane-wise instruction of the operands' type over the operands in order; false where it has none. */
function binary(f: Body, op: NativeOp, dtype: EType, arity: number, arg: (k: number) => void): boolean {
  const code = (dtype === 'i32' ? I32 : dtype === 'bool' ? BOOL : F32)[op];
  if (code === undefined) return false;
  for (let k = 0; k < arity; k++) arg(k);
  f.simd(code);
  return true;
}

/** The v128 temporaries f32x4Exp takes. */
export const EXP_TEMPS = 5;

/**
 * exp of the vector on the stack, as the kernel form's decomposition of exp computes it
 * (codegen/kernel/decompose.ts), with EXP_TEMPS v128 temporaries (the softmax and index kernels').
 */
export function f32x4Exp(f: Body, tmp: readonly Local[]): void {
  unaryOnStack(f, 'exp', tmp.slice(0, EXP_TEMPS));
}

/**
 * op (an f32 → f32 primitive: exp, tanh) of the vector on the stack, in its decomposition into this
 * renderer's primitives: one expression on the stack, each value used more than once in a local of
 * `tmp` (a local reused once its value is dead; the decomposition of exp needs five).
 */
export function unaryOnStack(f: Body, op: 'exp' | 'tanh', tmp: readonly Local[]): void {
  const nodes = decomposedUnary(op);
  const uses = nodes.map(() => 0);
  nodes.forEach((n) => 'args' in n && n.args.forEach((a) => (uses[a] = uses[a]! + 1)));
  const root = nodes.length - 1;
  const held = (i: number) => i === 0 || (i < root && nodes[i]!.op !== 'const' && uses[i]! > 1);
  // when each node's instructions are written: a held one at its place, another within its one user
  const at = nodes.map((_n, i) => i);
  for (let i = root; i >= 0; i--) {
    const n = nodes[i]!;
    if ('args' in n) for (const a of n.args) if (!held(a)) at[a] = at[i]!;
  }
  // each held value's last reader
  const last = nodes.map(() => -1);
  nodes.forEach((n, i) => 'args' in n && n.args.forEach((a) => (last[a] = Math.max(last[a]!, at[i]!))));
  const local = new Map<number, Local>();
  const free = [...tmp];
  const push = (i: number): void => {
    const n = nodes[i]!;
    const l = local.get(i);
    if (l) f.get(l);
    else if (n.op === 'const') constant(f, n.dtype, n.value);
    else if (!aluWith(f, n, nodes, (k) => push((n as { args: readonly number[] }).args[k]!))) failure(`internal: ${op}'s decomposition has ${n.op}, not native in wasm SIMD`);
  };
  nodes.forEach((_n, i) => {
    if (!held(i)) return;
    if (i > 0) push(i);
    const l = free.shift() ?? failure(`internal: ${op} needs more than ${tmp.length} locals`);
    f.set(l);
    local.set(i, l);
    // the locals whose values node i read last are free again
    for (const [a, la] of local) if (last[a] === i) free.push(la), local.delete(a);
  });
  push(nodes.length - 1);
}

const failure = (msg: string): never => {
  throw new Error(msg);
};

const decomposedUnaries = new Map<string, readonly FlatNode[]>();
/** The nodes of op(x) in this renderer's primitives: x is node 0, op(x) the last. */
function decomposedUnary(op: AluOp): readonly FlatNode[] {
  let nodes = decomposedUnaries.get(op);
  if (!nodes) {
    const access = { arg: 'x', strides: [], offset: size(0) };
    const k = decompose({ kind: 'kernel', name: op, domain: [], axes: [], notes: [], nodes: [{ op: 'load', dtype: 'f32', access }, { op, dtype: 'f32', args: [0] } as Node], stores: [{ node: 1, access }] }, WASM_CAPABILITIES);
    const root = k.stores[0]!.node;
    if (root !== k.nodes.length - 1) throw new Error(`internal: ${op}'s decomposition does not end in its value`);
    nodes = k.nodes.map((n) => (n.op === 'load' ? { op: 'load', dtype: 'f32', a: 0 } : n) as FlatNode);
    decomposedUnaries.set(op, nodes);
  }
  return nodes;
}
