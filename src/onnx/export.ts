// `graphc export --onnx`: the forward graph (after the forward passes, so that the fused ops are
// recognised) as an ONNX model. One table, `LOWER`, holds each IR op's ONNX lowering, as each
// emitter is a table of per-op snippets; the fused ops become ONNX's own operators where one
// exists (Softmax, LogSoftmax, LayerNormalization, BatchNormalization, Gather) and a few
// standard nodes where none does (cross-entropy). Params become initializers, inputs and outputs
// keep their DSL names, and a symbolic dimension is an ONNX dim_param read at run time with Shape.

import { isBufferOutput } from '../../codegen/modes.js';
import { CompileError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Dim } from '../../ir/dims.js';
import type { OpKind } from '../../ir/ops.js';
import type { DType, Inst, InstOf, TensorType, ValueId } from '../../ir/types.js';
import { formatType, numel } from '../../ir/types.js';
import { UsageError } from '../loader.js';
import type { AttrValue, DataType, Model, Node, Tensor, ValueInfo } from './proto.js';
import { DT } from './proto.js';

/** ONNX opset of the default domain the exported models import (LayerNormalization is 17). */
export const OPSET = 17;
/** IR version 8 goes with opset 17 (ONNX 1.12). */
export const IR_VERSION = 8;

export interface ExportOptions {
  /** Param values by DSL name (every param must be given). */
  readonly params: Readonly<Record<string, Float32Array>>;
  /** Running statistics by buffer name (`bn1.running_mean`); torch's initial values (0, 1) where absent. */
  readonly buffers?: Readonly<Record<string, Float32Array>>;
  /** Written into the model's doc_string: where it came from. */
  readonly source?: string;
  readonly producerVersion?: string;
}

const elemType = (d: DType): DataType => (d === 'f32' ? DT.FLOAT : DT.INT32);

function raw(data: ArrayLike<number>, dt: DataType): Uint8Array {
  if (dt === DT.FLOAT) return new Uint8Array(Float32Array.from(data).buffer);
  if (dt === DT.INT32) return new Uint8Array(Int32Array.from(data).buffer);
  if (dt === DT.INT64) return new Uint8Array(BigInt64Array.from(Array.from(data, (x) => BigInt(x))).buffer);
  return Uint8Array.from(data);
}

/** What a lowering rule sees: its instruction, and helpers that add nodes and constants. */
export interface LowerCtx {
  readonly g: Graph;
  readonly inst: Inst;
  /** The ONNX name of operand i. */
  arg(i: number): string;
  /** The ONNX name the result must have. */
  readonly out: string;
  /** Adds a node; returns its (first) output, a fresh name unless `out` is given. */
  node(opType: string, inputs: readonly string[], attrs?: Record<string, AttrValue>, out?: string): string;
  /** An initializer holding these values (int64 for shapes and axes). */
  constant(data: ArrayLike<number>, dims: readonly number[], dt: DataType, hint?: string): string;
  /** An int64 [rank] tensor of a shape whose entries may be symbols (read with Shape at run time). */
  shapeTensor(shape: readonly Dim[]): string;
  /** A symbol's size in this call, as an f32 scalar. */
  dimValue(sym: string): string;
  /** The ONNX name of an IR value already lowered. */
  name(v: ValueId): string;
}

type Rule<K extends OpKind> = ((c: LowerCtx & { readonly inst: InstOf<K> }) => void) | string | null;

/** An f32 0/1 mask; an i32 operand compared with an f32 one is cast to f32 (as the targets compare). */
const compare = (op: string): Rule<'gt' | 'ge'> => (c) => {
  const [a, b] = c.inst.args.map((v, i) => (c.g.type(v).dtype !== 'f32' && c.g.type(c.inst.args[1 - i]!).dtype === 'f32' ? c.node('Cast', [c.arg(i)], { to: { i: DT.FLOAT } }) : c.arg(i)));
  c.node('Cast', [c.node(op, [a!, b!])], { to: { i: DT.FLOAT } }, c.out);
};

/** ArgMax / ArgMin (the first index: select_last_index 0), cast from int64 to graphc's i32. */
const arg = (op: 'ArgMax' | 'ArgMin'): Rule<'argmax' | 'argmin'> => (c) => {
  const { axis, keepDims } = c.inst.attrs;
  c.node('Cast', [c.node(op, [c.arg(0)], { axis: { i: axis }, keepdims: { i: keepDims ? 1 : 0 }, select_last_index: { i: 0 } })], { to: { i: DT.INT32 } }, c.out);
};

/**
 * log(1 + x) and e^x − 1, which opset 17 lacks, exact near 0 in float32 as torch's: where |x| < 1,
 * log(u)·x/(u − 1) for u = 1 + x (the rounding of u cancels, Goldberg) and (u − 1)·x/log(u) for
 * u = e^x (Kahan), x itself where u rounds to 1; elsewhere log(u) and u − 1, exact enough there.
 */
const log1pOrExpm1 = (expm1: boolean): Rule<'log1p' | 'expm1'> => (c) => {
  const x = c.arg(0);
  const one = c.constant([1], [], DT.FLOAT, 'one');
  const u = c.node(expm1 ? 'Exp' : 'Add', expm1 ? [x] : [x, one]);
  const d = c.node('Sub', [u, one]);
  const log = c.node('Log', [u]);
  const near = c.node(expm1 ? 'Div' : 'Mul', [expm1 ? c.node('Mul', [d, x]) : log, expm1 ? log : c.node('Div', [x, d])]);
  const small = c.node('Where', [c.node('Equal', [d, c.constant([0], [], DT.FLOAT, 'zero')]), x, near]);
  c.node('Where', [c.node('Less', [expm1 ? c.node('Abs', [x]) : x, one]), small, expm1 ? d : log], {}, c.out);
};

function reduce(op: 'ReduceSum' | 'ReduceMax'): Rule<'sum' | 'max'> {
  return (c) => {
    const { axes, keepDims } = c.inst.attrs;
    if (axes.length === 0) return void c.node('Identity', [c.arg(0)], {}, c.out);
    const keepdims = { i: keepDims ? 1 : 0 };
    // opset 17: ReduceSum takes its axes as an input (since 13), ReduceMax as an attribute (until 18)
    if (op === 'ReduceSum') c.node(op, [c.arg(0), c.constant(axes, [axes.length], DT.INT64, 'axes')], { keepdims }, c.out);
    else c.node(op, [c.arg(0)], { axes: { ints: axes }, keepdims }, c.out);
  };
}

/** The const-valued scalar behind operand i of the instruction, if it is one. */
function scalarConst(g: Graph, v: ValueId): number | undefined {
  const d = g.def(v);
  return d.op === 'const' && d.attrs.data.length === 1 ? d.attrs.data[0] : undefined;
}

/**
 * A normalisation's statistics, as the rewrite leaves them: `inv = (variance + eps) ** -0.5`.
 * Returns the variance and eps, or undefined when `inv` is computed some other way.
 */
export function varianceOf(g: Graph, inv: ValueId): { variance: ValueId; eps: number } | undefined {
  const p = g.def(inv);
  if (p.op !== 'pow' || scalarConst(g, p.args[1]!) !== -0.5) return undefined;
  const a = g.def(p.args[0]!);
  if (a.op !== 'add') return undefined;
  for (const [k, other] of [
    [1, 0],
    [0, 1],
  ] as const) {
    const eps = scalarConst(g, a.args[k]!);
    if (eps !== undefined && g.type(a.args[other]!).dtype === 'f32') return { variance: a.args[other]!, eps };
  }
  return undefined;
}

/**
 * The value v is in evaluation mode: a select on the mode flag (training ? a : b, as the running
 * statistics of batchNorm's { momentum } are chosen) is its evaluation branch b, so that the
 * statistics a normalisation reads are the running ones and not a Where over both.
 */
function inEvaluation(g: Graph, v: ValueId): ValueId {
  const d = g.def(v);
  return d.op === 'select' && g.def(d.args[0]!).op === 'mode' ? inEvaluation(g, d.args[2]!) : v;
}

/** (x − mean) · inv from the operands: what a normalisation computes when it cannot be an ONNX op. */
function normalizeByHand(c: LowerCtx): void {
  c.node('Mul', [c.node('Sub', [c.arg(0), c.arg(1)]), c.arg(2)], {}, c.out);
}

/**
 * ONNX BatchNormalization in inference mode: (x − mean) / √(var + eps) · scale + bias over the
 * channel axis 1. graphc's features are the last axis by default (x [n, f] or [n, t, f]), so a
 * rank-3 x is transposed to [n, f, t] and back; a batchNorm with { axis: 1 } (NCHW) is not
 * transposed. mean and var are [f] tensors: the batch statistics that the graph computes, or the
 * running statistics (initializers) of a batchNorm with { momentum }.
 */
export function batchNormalization(
  c: LowerCtx,
  x: string,
  rank: number,
  stats: { mean: string; variance: string; scale?: string; bias?: string; features: number; eps: number },
  out: string,
  axis = rank - 1,
): void {
  const ones = stats.scale ?? c.constant(new Array(stats.features).fill(1), [stats.features], DT.FLOAT, 'ones');
  const zeros = stats.bias ?? c.constant(new Array(stats.features).fill(0), [stats.features], DT.FLOAT, 'zeros');
  const attrs = { epsilon: { f: stats.eps } };
  if (axis === 1) return void c.node('BatchNormalization', [x, ones, zeros, stats.mean, stats.variance], attrs, out);
  const others = [...Array(rank).keys()].filter((i) => i !== axis);
  const perm = [others[0]!, axis, ...others.slice(1)];
  const back = perm.map((_p, i) => perm.indexOf(i));
  const y = c.node('BatchNormalization', [c.node('Transpose', [x], { perm: { ints: perm } }), ones, zeros, stats.mean, stats.variance], attrs);
  c.node('Transpose', [y], { perm: { ints: back } }, out);
}

/** The f32 [f] statistic of a batchnorm ([1, f], [1, 1, f] or [f] in the IR). */
function flatStat(c: LowerCtx, v: ValueId, features: number): string {
  // a reshape of an [f] tensor (the running statistics' [f] buffers): that tensor itself
  for (let u = v; ; u = c.g.def(u).args[0]!) {
    const shape = c.g.type(u).shape;
    if (shape.length === 1 && shape[0] === features) return c.name(u);
    if (c.g.def(u).op !== 'reshape') break;
  }
  return c.node('Reshape', [c.name(v), c.constant([features], [1], DT.INT64, 'shape')]);
}

/**
 * Each IR op's ONNX lowering: a rule, an op name (for the ops that map one to one), or null
 * where the op cannot be in an exported forward graph. A missing entry is a type error.
 */
const LOWER: { readonly [K in OpKind]: Rule<K> } = {
  input: null, // graph inputs, named as in spec
  param: null, // initializers
  const: null, // initializers
  fwd: null, // only in backward graphs
  dim: (c) => void c.node('Identity', [c.dimValue(c.inst.attrs.name)], {}, c.out),
  buffer: null, // initializers: the running statistics
  // convolutions and pooling over [N, C, H, W] (1-D ones are 2-D over [N, C, 1, L] in the IR)
  conv: (c) => {
    const { stride, padding, dilation, groups } = c.inst.attrs;
    c.node('Conv', [c.arg(0), c.arg(1)], { strides: { ints: stride }, pads: { ints: padding }, dilations: { ints: dilation }, group: { i: groups } }, c.out);
  },
  // g.convTranspose2d/1d (in a backward graph, the gradient of a conv): ConvTranspose with the
  // output padding that gives the attribute's size
  conv_input_grad: (c) => {
    const { stride, padding, dilation, groups, size } = c.inst.attrs;
    const [, , ho, wo] = c.g.type(c.inst.args[0]!).shape as number[];
    const kernel = c.g.type(c.inst.args[1]!).shape.slice(2) as number[];
    const outputPadding = [ho!, wo!].map((n, i) => size[i]! - (stride[i]! * (n - 1) + dilation[i]! * (kernel[i]! - 1) + 1 - padding[i]! - padding[i + 2]!));
    const attrs = { strides: { ints: stride }, pads: { ints: padding }, dilations: { ints: dilation }, group: { i: groups }, output_padding: { ints: outputPadding } };
    c.node('ConvTranspose', [c.arg(0), c.arg(1)], attrs, c.out);
  },
  conv_weight_grad: null,
  max_pool: (c) => {
    const { kernel, stride, padding } = c.inst.attrs;
    c.node('MaxPool', [c.arg(0)], { kernel_shape: { ints: kernel }, strides: { ints: stride }, pads: { ints: [...padding, ...padding] } }, c.out);
  },
  avg_pool: (c) => {
    const { kernel, stride, padding } = c.inst.attrs;
    // padding counted in the average, as torch's default
    c.node('AveragePool', [c.arg(0)], { kernel_shape: { ints: kernel }, strides: { ints: stride }, pads: { ints: [...padding, ...padding] }, count_include_pad: { i: 1 } }, c.out);
  },
  max_pool_grad: null,
  max_pool_pick: null,
  avg_pool_grad: null,
  custom_grad: (c) => void c.node('Identity', [c.arg(0)], {}, c.out), // its value is its forward's; the rule only matters to gradients
  scan: null, // no ONNX Loop yet: a model with g.scan does not export
  scan_out: null,
  // the exported graph is evaluation mode: the mode flag is 0 and dropout is the identity
  mode: (c) => void c.node('Identity', [c.constant([0], [], DT.FLOAT, 'training')], {}, c.out),
  dropout_mask: (c) => void c.node('Expand', [c.constant([1], [], DT.FLOAT, 'one'), c.shapeTensor(c.g.type(c.inst.result).shape)], {}, c.out),
  select: (c) =>
    // on the mode flag, the evaluation branch (the exported graph is evaluation mode)
    void (c.g.def(c.inst.args[0]!).op === 'mode'
      ? c.node('Identity', [c.arg(2)], {}, c.out)
      : c.node('Where', [c.node('Cast', [c.arg(0)], { to: { i: DT.BOOL } }), c.arg(1), c.arg(2)], {}, c.out)),
  neg: 'Neg',
  exp: 'Exp',
  log: 'Log',
  tanh: 'Tanh',
  sigmoid: 'Sigmoid',
  relu: 'Relu',
  sqrt: 'Sqrt',
  square: (c) => void c.node('Mul', [c.arg(0), c.arg(0)], {}, c.out),
  abs: 'Abs',
  sin: 'Sin',
  cos: 'Cos',
  erf: 'Erf',
  log1p: log1pOrExpm1(false),
  expm1: log1pOrExpm1(true),
  stop_gradient: 'Identity',
  add: 'Add',
  sub: 'Sub',
  mul: 'Mul',
  div: 'Div',
  pow: 'Pow',
  maximum: 'Max',
  minimum: 'Min',
  gt: compare('Greater'),
  ge: compare('GreaterOrEqual'),
  sum: reduce('ReduceSum'),
  max: reduce('ReduceMax'),
  argmax_mask: null, // made by gradient rules only
  // the index primitives (ir/indexops.ts)
  argmax: arg('ArgMax'),
  argmin: arg('ArgMin'),
  cumsum: (c) => void c.node('CumSum', [c.arg(0), c.constant([c.inst.attrs.axis], [], DT.INT64, 'axis')], { reverse: { i: c.inst.attrs.reverse ? 1 : 0 } }, c.out),
  // a Slice from the last entry to before the first, step −1, on each flipped axis
  flip: (c) => {
    const axes = c.inst.attrs.axes;
    const k = axes.length;
    const [starts, ends, steps] = [axes.map(() => -1), axes.map(() => -Number.MAX_SAFE_INTEGER), axes.map(() => -1)];
    const consts = [c.constant(starts, [k], DT.INT64, 'starts'), c.constant(ends, [k], DT.INT64, 'ends'), c.constant(axes, [k], DT.INT64, 'axes'), c.constant(steps, [k], DT.INT64, 'steps')];
    c.node('Slice', [c.arg(0), ...consts], {}, c.out);
  },
  cast: (c) => void c.node('Cast', [c.arg(0)], { to: { i: DT.FLOAT } }, c.out),
  // Range(0, n, 1) in int64 (n from the input's shape when symbolic), cast to i32
  arange: (c) => {
    const n = c.node('Squeeze', [c.shapeTensor(c.inst.attrs.shape), c.constant([0], [1], DT.INT64, 'axes')]);
    const range = c.node('Range', [c.constant([0], [], DT.INT64, 'start'), n, c.constant([1], [], DT.INT64, 'delta')]);
    c.node('Cast', [range], { to: { i: DT.INT32 } }, c.out);
  },
  matmul: (c) => {
    const { transA, transB } = c.inst.attrs;
    const t = (i: number, flag: boolean) => {
      if (!flag) return c.arg(i);
      const r = c.g.type(c.inst.args[i]!).shape.length;
      const perm = [...Array(r).keys()];
      [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
      return c.node('Transpose', [c.arg(i)], { perm: { ints: perm } });
    };
    c.node('MatMul', [t(0, transA), t(1, transB)], {}, c.out);
  },
  transpose: (c) => void c.node('Transpose', [c.arg(0)], { perm: { ints: c.inst.attrs.perm } }, c.out),
  reshape: (c) => void c.node('Reshape', [c.arg(0), c.shapeTensor(c.g.type(c.inst.result).shape)], {}, c.out),
  broadcast: (c) => void c.node('Expand', [c.arg(0), c.shapeTensor(c.inst.attrs.shape)], {}, c.out),
  concat: (c) => void c.node('Concat', c.inst.args.map((_a, i) => c.arg(i)), { axis: { i: c.inst.attrs.axis } }, c.out),
  slice: (c) => {
    const { starts, sizes } = c.inst.attrs;
    // a symbolic size is the whole axis (the shape rule guarantees it): end at INT64_MAX
    const ends = sizes.map((s, d) => (typeof s === 'number' ? starts[d]! + s : Number.MAX_SAFE_INTEGER));
    const r = starts.length;
    const axes = [...Array(r).keys()];
    c.node('Slice', [c.arg(0), c.constant(starts, [r], DT.INT64, 'starts'), c.constant(ends, [r], DT.INT64, 'ends'), c.constant(axes, [r], DT.INT64, 'axes')], {}, c.out);
  },
  pad: (c) => {
    const { starts, shape } = c.inst.attrs;
    const x = c.g.type(c.inst.args[0]!).shape;
    if (![...shape, ...x].every((d) => typeof d === 'number'))
      throw new CompileError('export: pad of a tensor with a symbolic dimension cannot be exported', 'give the padded tensor static sizes');
    const after = shape.map((d, i) => (d as number) - starts[i]! - (x[i] as number));
    c.node('Pad', [c.arg(0), c.constant([...starts, ...after], [2 * starts.length], DT.INT64, 'pads')], {}, c.out);
  },
  gather: (c) => void c.node('Gather', [c.arg(0), c.arg(1)], { axis: { i: 0 } }, c.out),
  scatter_add: null, // made by gradient rules only
  pick: (c) => {
    // x[range(n), indices] = GatherElements(x, indices[:, None], axis 1)[:, 0]
    const one = c.constant([1], [1], DT.INT64, 'axes');
    const idx = c.node('Unsqueeze', [c.arg(1), one]);
    c.node('Squeeze', [c.node('GatherElements', [c.arg(0), idx], { axis: { i: 1 } }), one], {}, c.out);
  },
  one_hot: (c) => {
    // indices[..., None] == [0, 1, ..., depth − 1], cast to f32
    const { depth } = c.inst.attrs;
    const idx = c.node('Unsqueeze', [c.arg(0), c.constant([-1], [1], DT.INT64, 'axes')]);
    const classes = c.constant([...Array(depth).keys()], [depth], DT.INT32, 'classes');
    c.node('Cast', [c.node('Equal', [idx, classes])], { to: { i: DT.FLOAT } }, c.out);
  },
  softmax: (c) => void c.node('Softmax', [c.arg(0)], { axis: { i: c.inst.attrs.axis } }, c.out),
  log_softmax: (c) => void c.node('LogSoftmax', [c.arg(0)], { axis: { i: c.inst.attrs.axis } }, c.out),
  xent: (c) => {
    // −mean(log_softmax(logits)[i, targets[i]]), as torch.nn.functional.cross_entropy
    const one = c.constant([1], [1], DT.INT64, 'axes');
    const logp = c.node('LogSoftmax', [c.arg(0)], { axis: { i: 1 } });
    const picked = c.node('GatherElements', [logp, c.node('Unsqueeze', [c.arg(1), one])], { axis: { i: 1 } });
    c.node('Neg', [c.node('ReduceMean', [picked], { keepdims: { i: 0 } })], {}, c.out);
  },
  bn_apply: (c) => {
    const xt = c.g.type(c.inst.args[0]!);
    // the batch's statistics, or the running ones of a batchNorm with { momentum }
    const stats = varianceOf(c.g, inEvaluation(c.g, c.inst.args[2]!));
    const axis = (c.inst.attrs as { axis?: number }).axis ?? xt.shape.length - 1;
    const features = xt.shape[axis]!;
    if (!stats || typeof features !== 'number') return normalizeByHand(c);
    const variance = flatStat(c, stats.variance, features);
    const mean = flatStat(c, inEvaluation(c.g, c.inst.args[1]!), features);
    batchNormalization(c, c.arg(0), xt.shape.length, { mean, variance, features, eps: stats.eps }, c.out, axis);
  },
  ln_apply: (c) => {
    // LayerNormalization recomputes the row's mean and variance (divided by n, as ln_apply's):
    // the statistics the graph computed are then unused and are not exported
    const stats = varianceOf(c.g, c.inst.args[2]!);
    const features = c.g.type(c.inst.args[0]!).shape.at(-1)!;
    if (!stats || typeof features !== 'number') return normalizeByHand(c);
    const ones = c.constant(new Array(features).fill(1), [features], DT.FLOAT, 'ones');
    const zeros = c.constant(new Array(features).fill(0), [features], DT.FLOAT, 'zeros');
    c.node('LayerNormalization', [c.arg(0), ones, zeros], { axis: { i: -1 }, epsilon: { f: stats.eps } }, c.out);
  },
};

/** Where each symbol can be read at run time: the first input that has it, and the axis. */
function symbolSources(g: Graph): Map<string, { input: string; axis: number }> {
  const out = new Map<string, { input: string; axis: number }>();
  for (const inst of g.insts)
    if (inst.op === 'input')
      g.type(inst.result).shape.forEach((d, axis) => {
        if (typeof d === 'string' && !out.has(d)) out.set(d, { input: inst.attrs.name, axis });
      });
  return out;
}

function valueInfo(name: string, t: TensorType): ValueInfo {
  return { name, elemType: elemType(t.dtype), dims: [...t.shape] };
}

/** The forward graph as an ONNX model. Throws a located CompileError for what cannot be exported. */
export function exportOnnx(g: Graph, opts: ExportOptions): Model {
  const b = builder(g);
  // DSL names first: inputs, params and outputs keep them exactly
  for (const inst of g.insts) if (inst.op === 'input' || inst.op === 'param') b.taken.add(inst.attrs.name);
  // the model's outputs: not the next running statistics, which only training calls produce
  const modelOutputs = g.outputs.filter((o) => !isBufferOutput(g, o.name));
  for (const o of modelOutputs) b.taken.add(o.name);
  const inputs = addSources(g, opts, b);
  // an output that its value's node can write directly takes the output's name
  const outputOf = new Map<ValueId, string>();
  for (const o of modelOutputs) {
    const d = g.def(o.value);
    if (!outputOf.has(o.value) && d.op !== 'input' && d.op !== 'param') outputOf.set(o.value, o.name);
  }
  for (const inst of g.insts) {
    if (inst.op === 'input' || inst.op === 'param' || inst.op === 'buffer') continue;
    lowerInst(g, b, inst, outputOf);
  }
  b.current = undefined;
  // outputs: the value's own name where its node wrote it, else an Identity
  const outputs: ValueInfo[] = [];
  for (const o of modelOutputs) {
    const name = b.onnxName.get(o.value)!;
    if (name !== o.name) b.ctxBase.node('Identity', [name], {}, o.name);
    outputs.push(valueInfo(o.name, g.type(o.value)));
  }
  const params = new Set(g.insts.flatMap((i) => (i.op === 'param' ? [i.attrs.name] : [])));
  return pruneInitializers({
    irVersion: IR_VERSION,
    opset: OPSET,
    producer: 'graphc',
    producerVersion: opts.producerVersion ?? '',
    graphName: g.name,
    doc: opts.source ? `exported by graphc from ${opts.source}` : '',
    nodes: prune(b.nodes, new Set(outputs.map((o) => o.name))),
    initializers: b.initializers,
    inputs,
    outputs,
  }, params);
}

/** The model under construction, and the part of the lowering rules' context that is the same for every instruction. */
interface Builder {
  readonly nodes: Node[];
  readonly initializers: Tensor[];
  /** The names in use: a fresh name is none of them. */
  readonly taken: Set<string>;
  /** The ONNX name of each IR value lowered so far. */
  readonly onnxName: Map<ValueId, string>;
  /** The instruction being lowered: the nodes added are named after it and documented with its location. */
  current: Inst | undefined;
  /** An unused name: `base`, else `base_1`, `base_2`, ... */
  fresh(base: string): string;
  readonly ctxBase: Pick<LowerCtx, 'g' | 'node' | 'constant' | 'shapeTensor' | 'dimValue'>;
}

/** An empty model for g, with the helpers that add nodes, constants and symbols' sizes to it. */
function builder(g: Graph): Builder {
  const nodes: Node[] = [];
  const initializers: Tensor[] = [];
  const taken = new Set<string>();
  const onnxName = new Map<ValueId, string>();
  const fresh = (base: string): string => {
    let n = base;
    for (let k = 1; taken.has(n); k++) n = `${base}_${k}`;
    taken.add(n);
    return n;
  };
  const constants = new Map<string, string>();
  const constant = (data: ArrayLike<number>, dims: readonly number[], dt: DataType, hint = 'const'): string => {
    const key = `${dt}|${dims.join(',')}|${Array.from(data).join(',')}`;
    const hit = constants.get(key);
    if (hit) return hit;
    const name = fresh(hint);
    initializers.push({ name, dataType: dt, dims, raw: raw(data, dt) });
    constants.set(key, name);
    return name;
  };
  let counter = 0;
  const node = (opType: string, ins: readonly string[], attrs: Record<string, AttrValue> = {}, out?: string): string => {
    const current = b.current;
    const o = out ?? fresh(`${current ? onnxName.get(current.result) ?? 'v' : 'v'}_${opType}`);
    const loc = current?.loc;
    const doc = current ? `${current.op} ${g.value(current.result).name}${loc ? ` @ ${loc.file.split('/').pop()}:${loc.line}:${loc.col}` : ''}` : undefined;
    nodes.push({ opType, inputs: ins, outputs: [o], name: `n${counter++}_${opType}`, attrs, doc });
    return o;
  };
  const sources = symbolSources(g);
  const shapes = new Map<string, string>();
  const symVec = (sym: string): string => {
    // a product dimension (B*64, the rows of a flattened matmul): its factors multiplied
    if (sym.includes('*'))
      return sym
        .split('*')
        .map((f) => (/^[0-9]+$/.test(f) ? constant([Number(f)], [1], DT.INT64, 'factor') : dimVec(f)))
        .reduce((a, f) => node('Mul', [a, f]));
    const src = sources.get(sym);
    if (!src) throw new CompileError(`export: dimension ${sym} is not a dimension of any input`, 'name the dimension in an input').withLoc(b.current?.loc);
    let s = shapes.get(src.input);
    if (!s) shapes.set(src.input, (s = node('Shape', [src.input], {}, fresh(`${src.input}_shape`))));
    return node('Gather', [s, constant([src.axis], [1], DT.INT64, 'axis')], { axis: { i: 0 } }, fresh(`${sym}_dim`));
  };
  const symVecs = new Map<string, string>();
  const dimVec = (sym: string) => symVecs.get(sym) ?? (symVecs.set(sym, symVec(sym)), symVecs.get(sym)!);
  const dimValues = new Map<string, string>();
  const ctxBase = {
    g,
    node,
    constant,
    shapeTensor(shape: readonly Dim[]): string {
      if (shape.every((d) => typeof d === 'number')) return constant(shape as number[], [shape.length], DT.INT64, 'shape');
      const parts: string[] = [];
      let run: number[] = [];
      const flush = () => {
        if (run.length) parts.push(constant(run, [run.length], DT.INT64, 'shape'));
        run = [];
      };
      for (const d of shape) {
        if (typeof d === 'number') run.push(d);
        else {
          flush();
          parts.push(dimVec(d));
        }
      }
      flush();
      return node('Concat', parts, { axis: { i: 0 } });
    },
    dimValue(sym: string): string {
      let v = dimValues.get(sym);
      if (!v) {
        const scalar = node('Squeeze', [dimVec(sym), constant([0], [1], DT.INT64, 'axes')]);
        dimValues.set(sym, (v = node('Cast', [scalar], { to: { i: DT.FLOAT } }, fresh(`${sym}_f32`))));
      }
      return v;
    },
  };
  const b: Builder = { nodes, initializers, taken, onnxName, current: undefined, fresh, ctxBase };
  return b;
}

/** Names the inputs, params and buffers, and adds the params and buffers as initializers; returns the model's inputs. */
function addSources(g: Graph, opts: ExportOptions, b: Builder): ValueInfo[] {
  const inputs: ValueInfo[] = [];
  for (const inst of g.insts) {
    if (inst.op === 'input') {
      b.onnxName.set(inst.result, inst.attrs.name);
      inputs.push(valueInfo(inst.attrs.name, g.type(inst.result)));
    } else if (inst.op === 'param') {
      const t = g.type(inst.result);
      const data = opts.params[inst.attrs.name];
      if (!data) throw new CompileError(`export: no value for param '${inst.attrs.name}'`, 'pass every param').withLoc(inst.loc);
      if (data.length !== numel(t.shape as number[]))
        throw new CompileError(`export: param '${inst.attrs.name}' has ${data.length} values, but ${t.dtype}[${t.shape.join(',')}] needs ${numel(t.shape as number[])}`, 'pass values of the param\'s size').withLoc(inst.loc);
      b.onnxName.set(inst.result, inst.attrs.name);
      b.initializers.push({ name: inst.attrs.name, dataType: DT.FLOAT, dims: t.shape as number[], raw: raw(data, DT.FLOAT) });
    } else if (inst.op === 'buffer') {
      // evaluation mode normalises with the running statistics: initializers too
      const t = g.type(inst.result);
      const n = numel(t.shape as number[]);
      const data = opts.buffers?.[inst.attrs.name] ?? new Float32Array(n).fill(inst.attrs.name.endsWith('.running_var') ? 1 : 0);
      if (data.length !== n) throw new CompileError(`export: buffer '${inst.attrs.name}' has ${data.length} values, but f32[${t.shape.join(',')}] needs ${n}`, "pass values of the buffer's size").withLoc(inst.loc);
      const name = b.fresh(inst.attrs.name);
      b.onnxName.set(inst.result, name);
      b.initializers.push({ name, dataType: DT.FLOAT, dims: t.shape as number[], raw: raw(data, DT.FLOAT) });
    }
  }
  return inputs;
}

/** Lowers one instruction: a const as an initializer, any other op by its LOWER rule (a located CompileError where it has none). */
function lowerInst(g: Graph, b: Builder, inst: Inst, outputOf: ReadonlyMap<ValueId, string>): void {
  const { onnxName, fresh } = b;
  b.current = inst;
  const t = g.type(inst.result);
  if (inst.op === 'const') {
    const n = numel(t.shape as number[]);
    const data = inst.attrs.data.length === n ? inst.attrs.data : new Array<number>(n).fill(inst.attrs.data[0] ?? 0);
    const name = outputOf.get(inst.result) ?? fresh(g.value(inst.result).name);
    b.initializers.push({ name, dataType: elemType(t.dtype), dims: t.shape as number[], raw: raw(data, elemType(t.dtype)) });
    onnxName.set(inst.result, name);
    return;
  }
  const rule = LOWER[inst.op] as Rule<OpKind>;
  if (rule === null)
    throw new CompileError(`export: the op '${inst.op}' cannot be exported to ONNX`, 'export the forward graph of a model whose ops have an ONNX form').withLoc(inst.loc);
  const out = outputOf.get(inst.result) ?? fresh(g.value(inst.result).name);
  onnxName.set(inst.result, out);
  const ctx: LowerCtx = {
    ...b.ctxBase,
    inst,
    out,
    arg: (i) => onnxName.get(inst.args[i]!)!,
    name: (v) => onnxName.get(v)!,
  };
  try {
    if (typeof rule === 'string') b.ctxBase.node(rule, inst.args.map((_a, i) => ctx.arg(i)), {}, out);
    else rule(ctx as never);
  } catch (e) {
    if (e instanceof CompileError) throw e.withLoc(inst.loc);
    throw e;
  }
}

/** Keeps the nodes the outputs depend on (LayerNormalization leaves the graph's statistics unused). */
function prune(nodes: readonly Node[], outputs: ReadonlySet<string>): Node[] {
  const need = new Set(outputs);
  const keep = new Array<boolean>(nodes.length).fill(false);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.outputs.some((o) => need.has(o))) continue;
    keep[i] = true;
    for (const x of n.inputs) need.add(x);
  }
  return nodes.filter((_n, i) => keep[i]);
}

/** The initializers the kept nodes read, and every param (a param keeps its place in the model). */
export function pruneInitializers(m: Model, params: ReadonlySet<string>): Model {
  const used = new Set(m.nodes.flatMap((n) => n.inputs));
  return { ...m, initializers: m.initializers.filter((t) => used.has(t.name) || params.has(t.name)) };
}

/**
 * `graphc export --params FILE`: the params and buffers of g that FILE does not hold, as messages.
 * Without `allowMissing` they are a usage error naming every one (an exported model would silently
 * carry initial values); with it, one warning each, and the initial values are exported.
 */
export function checkMissing(g: Graph, file: string, given: Iterable<string>, opts: { allowMissing?: boolean; warn?: (message: string) => void } = {}): void {
  const have = new Set(given);
  const missing = g.insts.flatMap((i) => ((i.op === 'param' || i.op === 'buffer') && !have.has(i.attrs.name) ? [{ kind: i.op, name: i.attrs.name, type: formatType(g.type(i.result)) }] : []));
  if (missing.length === 0) return;
  const initial = (m: (typeof missing)[number]) =>
    m.kind === 'param' ? 'its initParams(0) value' : `torch's initial ${m.name.endsWith('.running_var') ? 'variance, 1' : 'mean, 0'}`;
  if (opts.allowMissing) {
    for (const m of missing) opts.warn?.(`graphc export: warning: ${file} has no ${m.kind} '${m.name}' (${m.type}): exported with ${initial(m)} (--allow-missing)`);
    return;
  }
  const list = missing.map((m) => `${m.kind} '${m.name}' (${m.type})`).join(', ');
  throw new UsageError(
    `graphc export: ${file} has no ${list} of ${g.name}: the exported model would hold initial values for ${missing.length > 1 ? 'them' : 'it'}; ` +
      `add them to the file, or pass --allow-missing to export ${[missing.some((m) => m.kind === 'param') ? 'initParams(0) values' : '', missing.some((m) => m.kind === 'buffer') ? "torch's initial running statistics (means 0, variances 1)" : ''].filter(Boolean).join(' and ')} with a warning each`,
  );
}
