// The lowering table: for every op of the graph IR, how it becomes kernel form. The table is
// exhaustive over `OPS` (`{ [K in OpKind]: Lowering<K> }`): an op added to ir/ops.ts without an
// entry here is a type error. Elementwise ops are expressions over the ALU primitives of
// form.ts, reductions are reduce nodes, the ops with an algorithm of their own are routines,
// layout ops are copy kernels whose index maps do the work, views and sources need no code.

import type { OpKind } from '../../ir/ops.js';
import type { InstOf } from '../../ir/types.js';
import type { BinaryOp, EType, Node, ReduceOp, RoutineOp, UnaryOp } from './form.js';
import { nodeKey } from './form.js';

/** Builds a kernel's DAG, hash-consed: an equal node is made once. */
export class Dag {
  readonly nodes: Node[] = [];
  private readonly memo = new Map<string, number>();

  add(n: Node): number {
    const key = nodeKey(n);
    const at = this.memo.get(key);
    if (at !== undefined) return at;
    this.nodes.push(n);
    this.memo.set(key, this.nodes.length - 1);
    return this.nodes.length - 1;
  }

  type(i: number): EType {
    return this.nodes[i]!.dtype;
  }

  const(value: number, dtype: EType = 'f32'): number {
    return this.add({ op: 'const', dtype, value });
  }

  un(op: UnaryOp, a: number): number {
    return this.add({ op, dtype: op === 'cast' ? 'f32' : this.type(a), args: [a] });
  }

  bin(op: BinaryOp, a: number, b: number): number {
    const cmp = op === 'lt' || op === 'le' || op === 'eq';
    return this.add({ op, dtype: cmp ? 'bool' : this.type(a), args: [a, b] });
  }

  where(c: number, a: number, b: number): number {
    return this.add({ op: 'where', dtype: this.type(a), args: [c, a, b] });
  }

  /** 1 where c holds, else 0. */
  mask(c: number): number {
    return this.where(c, this.const(1), this.const(0));
  }
}

/** What an elementwise rule sees: the DAG, its operands' nodes, and the coordinate of the result's last axis. */
export interface AluCtx<K extends OpKind> {
  readonly dag: Dag;
  readonly x: readonly number[];
  readonly inst: InstOf<K>;
  /** The coordinate (i32) along the result's last axis (one_hot's class). */
  lastCoord(): number;
}

/** The ops lowered to copy kernels. */
export type LayoutOp = 'transpose' | 'slice' | 'pad' | 'concat' | 'flip';

export type Lowering<K extends OpKind> =
  /** Elementwise: the node of the result at one position. */
  | { readonly alu: (c: AluCtx<K>) => number }
  | { readonly reduce: ReduceOp }
  /** A routine of its own (only the ops of RoutineOp). */
  | { readonly routine: K extends RoutineOp ? true : never }
  /** A copy kernel whose index maps do the work (lower.ts builds it). */
  | { readonly layout: K & LayoutOp }
  /** No code: the value is a view of its operand's array (or a source). */
  | { readonly none: 'view' | 'source' }
  /** Not lowered to the kernel form (yet): a CompileError naming the op says why. */
  | { readonly unsupported: string };

/** Two operands of one type: an i32 compared with an f32 is cast to f32. */
function numeric(dag: Dag, a: number, b: number): [number, number] {
  const [ta, tb] = [dag.type(a), dag.type(b)];
  return ta === tb ? [a, b] : [ta === 'i32' ? dag.un('cast', a) : a, tb === 'i32' ? dag.un('cast', b) : b];
}

const un = (op: UnaryOp) => ({ alu: (c: AluCtx<OpKind>) => c.dag.un(op, c.x[0]!) });
const bin = (op: BinaryOp) => ({ alu: (c: AluCtx<OpKind>) => c.dag.bin(op, c.x[0]!, c.x[1]!) });
const same = { alu: (c: AluCtx<OpKind>) => c.x[0]! };
const source = { none: 'source' } as const;
const routine = { routine: true } as const;
/** (x − mean) · inv: batchnorm's and layer norm's apply. */
const normalize = { alu: ({ dag, x }: AluCtx<OpKind>) => dag.bin('mul', dag.bin('sub', x[0]!, x[1]!), x[2]!) };

export const LOWERING: { readonly [K in OpKind]: Lowering<K> } = {
  input: source,
  param: source,
  const: source,
  fwd: source,
  dim: source,
  buffer: source,
  mode: source,
  dropout_mask: source,
  reshape: { none: 'view' },
  stop_gradient: { none: 'view' },
  custom_grad: { unsupported: 'custom_grad is dropped before lowering (after the reverse pass); one left here is an internal error' },
  // regions: a kept scan is a loop (codegen/ts/loop.ts, codegen/gpu-loop.ts, codegen/webgpu/loop.ts),
  // the host program's `loop` step; an unrolled one is its steps (ir/scan.ts's unrollScans)
  scan: { unsupported: 'a scan is a loop step of the host program (codegen/kernel/lower.ts), not a kernel, or unrolls (lower(g, { loops: false }))' },
  scan_out: { unsupported: 'a scan is a loop step of the host program (codegen/kernel/lower.ts), not a kernel, or unrolls (lower(g, { loops: false }))' },

  neg: un('neg'),
  exp: un('exp'),
  log: un('log'),
  tanh: un('tanh'),
  // 1 / (1 + exp(−x))
  sigmoid: { alu: ({ dag, x }) => dag.un('recip', dag.bin('add', dag.const(1), dag.un('exp', dag.un('neg', x[0]!)))) },
  // x where 0 < x, else 0 (NaN gives 0, as `x > 0 ? x : 0`)
  relu: { alu: ({ dag, x }) => dag.where(dag.bin('lt', dag.const(0), x[0]!), x[0]!, dag.const(0)) },
  sqrt: un('sqrt'),
  square: { alu: ({ dag, x }) => dag.bin('mul', x[0]!, x[0]!) },
  abs: un('abs'),
  sin: un('sin'),
  cos: un('cos'),
  erf: un('erf'),
  log1p: un('log1p'),
  expm1: un('expm1'),
  add: bin('add'),
  sub: bin('sub'),
  mul: bin('mul'),
  div: bin('div'),
  pow: bin('pow'),
  maximum: bin('max'),
  minimum: bin('min'),
  gt: { alu: ({ dag, x }) => dag.mask(dag.bin('lt', ...numeric(dag, x[1]!, x[0]!))) },
  ge: { alu: ({ dag, x }) => dag.mask(dag.bin('le', ...numeric(dag, x[1]!, x[0]!))) },
  // where(c = 0, b, a): a wherever c ≠ 0 (NaN included, as `c !== 0 ? a : b`)
  select: { alu: ({ dag, x }) => dag.where(dag.bin('eq', x[0]!, dag.const(0)), x[2]!, x[1]!) },
  broadcast: same,
  one_hot: { alu: (c) => c.dag.mask(c.dag.bin('eq', c.x[0]!, c.lastCoord())) },
  bn_apply: normalize,
  ln_apply: normalize,

  sum: { reduce: 'sum' },
  max: { reduce: 'max' },

  transpose: { layout: 'transpose' },
  slice: { layout: 'slice' },
  pad: { layout: 'pad' },
  concat: { layout: 'concat' },

  matmul: routine,
  argmax_mask: routine,
  gather: routine,
  scatter_add: routine,
  pick: routine,
  softmax: routine,
  log_softmax: routine,
  xent: routine,
  conv: routine,
  conv_input_grad: routine,
  conv_weight_grad: routine,
  max_pool: routine,
  max_pool_grad: routine,
  max_pool_pick: routine,
  avg_pool: routine,
  avg_pool_grad: routine,

  // the index primitives (ir/indexops.ts)
  argmax: routine,
  argmin: routine,
  cumsum: routine,
  flip: { layout: 'flip' },
  // the coordinate along the result's (only) axis
  arange: { alu: (c) => c.lastCoord() },
  cast: un('cast'),
};
