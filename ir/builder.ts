// Emits instructions into a graph with shape inference from the op table. Used by the DSL
// tracer, by the gradient rules and by rewriting passes.

import { CompileError } from './errors.js';
import type { Graph } from './graph.js';
import type { AttrsOf, Init, OpKind } from './ops.js';
import { OPS } from './ops.js';
import type { Dim } from './dims.js';
import { numelSize } from './dims.js';
import type { DType, Loc, Shape, TensorType, ValueId } from './types.js';
import { numel } from './types.js';

/** A value, or a plain number that becomes an f32 scalar constant. */
export type Operand = ValueId | number;
type SourceOp = 'input' | 'param' | 'const' | 'fwd' | 'dim' | 'buffer' | 'mode' | 'dropout_mask';
type Name = { raw: string } | { exact: string };

export class Builder {
  constructor(
    readonly graph: Graph,
    /** Location stamped on every emitted instruction. */
    public loc?: Loc,
  ) {}

  type(v: ValueId): TensorType {
    return this.graph.type(v);
  }

  emit<K extends Exclude<OpKind, SourceOp>>(op: K, args: readonly Operand[], attrs: AttrsOf[K], name?: Name): ValueId {
    const ids = args.map((a) => (typeof a === 'number' ? this.scalar(a) : a));
    const def = OPS[op];
    if (def.arity !== 'variadic' && def.arity !== ids.length)
      throw new Error(`internal: ${op} takes ${def.arity} operands, got ${ids.length}`);
    let type: TensorType;
    try {
      type = def.shape!(
        ids.map((v) => this.type(v)),
        attrs,
      );
    } catch (e) {
      throw e instanceof CompileError ? e.withLoc(this.loc) : e;
    }
    return this.graph.append(op, ids, attrs, type, this.loc, name);
  }

  source<K extends SourceOp>(op: K, attrs: AttrsOf[K], type: TensorType, name?: Name): ValueId {
    return this.graph.append(op, [], attrs, type, this.loc, name);
  }

  scalar(v: number): ValueId {
    return this.source('const', { data: [v] }, { dtype: 'f32', shape: [] });
  }

  constant(data: readonly number[], shape: readonly number[], dtype: DType = 'f32'): ValueId {
    if (data.length !== numel(shape)) throw new Error(`internal: ${data.length} values for shape [${shape}]`);
    return this.source('const', { data: [...data] }, { dtype, shape });
  }

  /** The size of a symbolic dimension in this call, as an f32 scalar. */
  dim(name: string): ValueId {
    return this.source('dim', { name }, { dtype: 'f32', shape: [] });
  }

  /**
   * How many elements `dims` span, minus `minus`: a number when it is known at build time, else
   * a scalar computed from the bound dimensions (the n of a mean, the n − 1 of Bessel).
   */
  count(dims: readonly Dim[], minus = 0): Operand {
    const s = numelSize(dims);
    if (s.syms.length === 0) return s.coef - minus;
    let v: ValueId = this.dim(s.syms[0]!);
    for (const d of s.syms.slice(1)) v = this.mul(v, this.dim(d));
    if (s.coef !== 1) v = this.mul(v, s.coef);
    return minus ? this.sub(v, minus) : v;
  }

  /** 1/x, folded when x is a number. */
  recip(x: Operand): Operand {
    return typeof x === 'number' ? 1 / x : this.div(1, x);
  }

  input(name: string, type: TensorType, valueName: Name, grad = false): ValueId {
    return this.source('input', grad ? { name, grad: true } : { name }, type, valueName);
  }

  /** A module buffer, f32 (batchnorm's running statistics). */
  buffer(name: string, shape: Shape, valueName: Name): ValueId {
    return this.source('buffer', { name }, { dtype: 'f32', shape }, valueName);
  }

  /** 1 in a training call, 0 in evaluation. */
  mode(): ValueId {
    return this.source('mode', {}, { dtype: 'f32', shape: [] }, { raw: 'training' });
  }

  dropoutMask(p: number, site: number, shape: Shape, valueName: Name): ValueId {
    return this.source('dropout_mask', { p, site }, { dtype: 'f32', shape }, valueName);
  }

  param(name: string, shape: Shape, init: Init, scale: number, valueName: Name, train: { frozen?: true; weightDecay?: number; lrScale?: number } = {}): ValueId {
    return this.source('param', { name, init, scale, ...train }, { dtype: 'f32', shape }, valueName);
  }

  // --- sugar, one method per op -------------------------------------------------------------
  neg = (x: Operand) => this.emit('neg', [x], {});
  exp = (x: Operand) => this.emit('exp', [x], {});
  log = (x: Operand) => this.emit('log', [x], {});
  tanh = (x: Operand) => this.emit('tanh', [x], {});
  sigmoid = (x: Operand) => this.emit('sigmoid', [x], {});
  relu = (x: Operand) => this.emit('relu', [x], {});
  sqrt = (x: Operand) => this.emit('sqrt', [x], {});
  square = (x: Operand) => this.emit('square', [x], {});
  abs = (x: Operand) => this.emit('abs', [x], {});
  sin = (x: Operand) => this.emit('sin', [x], {});
  cos = (x: Operand) => this.emit('cos', [x], {});
  erf = (x: Operand) => this.emit('erf', [x], {});
  log1p = (x: Operand) => this.emit('log1p', [x], {});
  expm1 = (x: Operand) => this.emit('expm1', [x], {});
  stopGradient = (x: Operand) => this.emit('stop_gradient', [x], {});
  add = (a: Operand, b: Operand) => this.emit('add', [a, b], {});
  sub = (a: Operand, b: Operand) => this.emit('sub', [a, b], {});
  mul = (a: Operand, b: Operand) => this.emit('mul', [a, b], {});
  div = (a: Operand, b: Operand) => this.emit('div', [a, b], {});
  pow = (a: Operand, b: Operand) => this.emit('pow', [a, b], {});
  maximum = (a: Operand, b: Operand) => this.emit('maximum', [a, b], {});
  minimum = (a: Operand, b: Operand) => this.emit('minimum', [a, b], {});
  gt = (a: Operand, b: Operand) => this.emit('gt', [a, b], {});
  ge = (a: Operand, b: Operand) => this.emit('ge', [a, b], {});
  select = (c: Operand, a: Operand, b: Operand) => this.emit('select', [c, a, b], {});
  sum = (x: ValueId, axes: number[], keepDims = false) => this.emit('sum', [x], { axes, keepDims });
  max = (x: ValueId, axes: number[], keepDims = false) => this.emit('max', [x], { axes, keepDims });
  argmaxMask = (x: ValueId, axes: number[]) => this.emit('argmax_mask', [x], { axes });
  // the index primitives (ir/indexops.ts)
  argmax = (x: ValueId, axis: number, keepDims = false) => this.emit('argmax', [x], { axis, keepDims });
  argmin = (x: ValueId, axis: number, keepDims = false) => this.emit('argmin', [x], { axis, keepDims });
  cumsum = (x: ValueId, axis: number, reverse = false) => this.emit('cumsum', [x], reverse ? { axis, reverse: true } : { axis });
  flip = (x: ValueId, axes: number[]) => (axes.length === 0 ? x : this.emit('flip', [x], { axes }));
  arange = (n: Dim) => this.emit('arange', [], { shape: [n] });
  cast = (x: ValueId) => this.emit('cast', [x], {});
  matmul = (a: ValueId, b: ValueId, transA = false, transB = false) => this.emit('matmul', [a, b], { transA, transB });
  transpose = (x: ValueId, perm: number[]) => this.emit('transpose', [x], { perm });
  reshape = (x: ValueId, shape: readonly Dim[]) => this.emit('reshape', [x], { shape: [...shape] });
  broadcast = (x: ValueId, shape: Shape) => this.emit('broadcast', [x], { shape: [...shape] });
  concat = (xs: ValueId[], axis: number) => this.emit('concat', xs, { axis });
  slice = (x: ValueId, starts: number[], sizes: Dim[]) => this.emit('slice', [x], { starts, sizes });
  pad = (x: ValueId, starts: number[], shape: Dim[]) => this.emit('pad', [x], { starts, shape });
  gather = (table: ValueId, idx: ValueId) => this.emit('gather', [table, idx], {});
  scatterAdd = (idx: ValueId, src: ValueId, shape: Dim[]) => this.emit('scatter_add', [idx, src], { shape });
  pick = (x: ValueId, idx: ValueId) => this.emit('pick', [x, idx], {});
  oneHot = (idx: ValueId, depth: number) => this.emit('one_hot', [idx], { depth });
  softmax = (x: ValueId, axis: number) => this.emit('softmax', [x], { axis });
  logSoftmax = (x: ValueId, axis: number) => this.emit('log_softmax', [x], { axis });
  xent = (logits: ValueId, targets: ValueId) => this.emit('xent', [logits, targets], {});
  conv = (x: ValueId, w: ValueId, a: AttrsOf['conv']) => this.emit('conv', [x, w], a);
  convInputGrad = (dy: ValueId, w: ValueId, a: AttrsOf['conv_input_grad']) => this.emit('conv_input_grad', [dy, w], a);
  convWeightGrad = (x: ValueId, dy: ValueId, a: AttrsOf['conv_weight_grad']) => this.emit('conv_weight_grad', [x, dy], a);
  maxPool = (x: ValueId, a: AttrsOf['max_pool']) => this.emit('max_pool', [x], a);
  maxPoolGrad = (x: ValueId, dy: ValueId, a: AttrsOf['max_pool_grad']) => this.emit('max_pool_grad', [x, dy], a);
  maxPoolPick = (x: ValueId, v: ValueId, a: AttrsOf['max_pool_pick']) => this.emit('max_pool_pick', [x, v], a);
  avgPool = (x: ValueId, a: AttrsOf['avg_pool']) => this.emit('avg_pool', [x], a);
  avgPoolGrad = (dy: ValueId, a: AttrsOf['avg_pool_grad']) => this.emit('avg_pool_grad', [dy], a);
}
