// `graphc export --torch`: each IR op's PyTorch lowering. One table, `LOWER`, maps every op of the
// op table (ir/ops.ts) to a Python expression over its operands' names; a missing entry is a type
// error, and an op that cannot be in an exported graph is null (the export then fails with a
// CompileError naming it). The fused ops of the forward passes become torch's own functions
// (softmax, log_softmax, cross_entropy); batchnorm's and layer norm's `(x − mean) · inv` keep
// the statistics the graph computes, so that autograd's derivative through them is the total
// derivative that graphc's rule computes. The ops that only gradient rules make (a g.grad call
// emits them into a forward graph, where the exporter calls torch.autograd.grad instead, so they
// are dead code there; a graph from elsewhere may hold them) are the vector-Jacobian products of torch's
// own convolutions and pools, taken with torch.autograd.grad (create_graph, so that they are
// differentiable in turn).

import { CompileError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Dim } from '../../ir/dims.js';
import type { OpKind } from '../../ir/ops.js';
import type { Inst, InstOf, ValueId } from '../../ir/types.js';

/** What a lowering sees: its instruction and the Python names of values. */
export interface LowerCtx {
  readonly g: Graph;
  readonly inst: Inst;
  /** The Python name of operand i. */
  arg(i: number): string;
  /** A shape as a Python tuple (symbols are the names bound at the top of forward). */
  shape(shape: readonly Dim[]): string;
  /** The Python name of a symbolic dimension (an int). */
  dim(sym: string): string;
  /** The Python name of a param or buffer attribute, `self.<name>`. */
  attr(graphcName: string): string;
  /** The Python class of custom gradient rule k. */
  customClass(rule: number): string;
}

type Rule<K extends OpKind> = ((c: LowerCtx & { readonly inst: InstOf<K> }) => string) | null;

/** A Python literal for a float (full precision: the f32 rounding is torch's, as graphc's). */
export function pyNum(x: number): string {
  if (Number.isNaN(x)) return "float('nan')";
  if (x === Infinity) return "float('inf')";
  if (x === -Infinity) return "float('-inf')";
  if (Number.isInteger(x)) return `${x}.0`;
  return String(x);
}

const tuple = (xs: readonly (string | number)[]) => (xs.length === 1 ? `(${xs[0]},)` : `(${xs.join(', ')})`);
const unary = (f: string) => (c: LowerCtx): string => `${f}(${c.arg(0)})`;
const binary = (op: string) => (c: LowerCtx): string => `${c.arg(0)} ${op} ${c.arg(1)}`;
const call2 = (f: string) => (c: LowerCtx): string => `${f}(${c.arg(0)}, ${c.arg(1)})`;

/** padding [top, left, bottom, right] as torch's: symmetric (an int pair) or F.pad's [l, r, t, b]. */
function convArgs(a: { stride: number[]; padding: number[]; dilation: number[]; groups: number }): string {
  return `stride=${tuple(a.stride)}, padding=${tuple(a.padding)}, dilation=${tuple(a.dilation)}, groups=${a.groups}`;
}
const poolArgs = (a: { kernel: number[]; stride: number[]; padding: number[] }) => `${tuple(a.kernel)}, ${tuple(a.stride)}, ${tuple(a.padding)}`;

/** Whether v is the mode flag (a select on it is a Python conditional on self.training). */
const isMode = (g: Graph, v: ValueId) => g.def(v).op === 'mode';

/**
 * Each IR op's PyTorch expression. Sources (input, param, buffer, const) are lowered by the
 * emitter; `fwd` exists only in backward graphs and in custom gradient rules (the rule's dy).
 */
export const LOWER: { readonly [K in OpKind]: Rule<K> } = {
  input: null, // inputs['name'], by the emitter
  param: null, // self.<name>
  const: null, // torch.tensor(...)
  buffer: null, // self.<name>
  fwd: null, // only in backward graphs (a custom gradient's dy is its backward's argument)
  dim: (c) => `torch.tensor(float(${c.dim(c.inst.attrs.name)}), device=dev)`,
  mode: () => 'torch.tensor(1.0 if self.training else 0.0, device=dev)',
  // all ones in evaluation; torch's generator draws the mask in training (graphc's masks differ)
  dropout_mask: (c) => `torch.nn.functional.dropout(torch.ones(${c.shape(c.g.type(c.inst.result).shape)}, device=dev), ${pyNum(c.inst.attrs.p)}, self.training)`,
  neg: (c) => `-${c.arg(0)}`,
  exp: unary('torch.exp'),
  log: unary('torch.log'),
  tanh: unary('torch.tanh'),
  sigmoid: unary('torch.sigmoid'),
  relu: unary('torch.relu'),
  sqrt: unary('torch.sqrt'),
  square: (c) => `${c.arg(0)} * ${c.arg(0)}`,
  abs: unary('torch.abs'),
  sin: unary('torch.sin'),
  cos: unary('torch.cos'),
  erf: unary('torch.erf'),
  log1p: unary('torch.log1p'),
  expm1: unary('torch.expm1'),
  stop_gradient: (c) => `${c.arg(0)}.detach()`,
  add: binary('+'),
  sub: binary('-'),
  mul: binary('*'),
  div: binary('/'),
  pow: call2('torch.pow'),
  // a tie gives the whole gradient to the first operand, as graphc (torch.maximum splits it);
  // torch.maximum/minimum where the first does not win keep their NaN propagation
  maximum: (c) => `torch.where(${c.arg(0)} >= ${c.arg(1)}, ${c.arg(0)}, torch.maximum(${c.arg(0)}, ${c.arg(1)}))`,
  minimum: (c) => `torch.where(${c.arg(1)} >= ${c.arg(0)}, ${c.arg(0)}, torch.minimum(${c.arg(0)}, ${c.arg(1)}))`,
  gt: (c) => `(${c.arg(0)} > ${c.arg(1)}).float()`,
  ge: (c) => `(${c.arg(0)} >= ${c.arg(1)}).float()`,
  select: (c) =>
    isMode(c.g, c.inst.args[0]!)
      ? `${c.arg(1)} if self.training else ${c.arg(2)}`
      : `torch.where(${c.arg(0)} != 0, ${c.arg(1)}, ${c.arg(2)})`,
  sum: (c) => (c.inst.attrs.axes.length ? `torch.sum(${c.arg(0)}, dim=${tuple(c.inst.attrs.axes)}, keepdim=${c.inst.attrs.keepDims ? 'True' : 'False'})` : c.arg(0)),
  // the gradient to each slice's first maximum, as graphc (torch.amax splits ties): the maximum
  // picked by the mask (a where, so that -inf elsewhere stays out of the sum)
  max: (c) =>
    c.inst.attrs.axes.length
      ? `torch.sum(torch.where(_argmax_mask(${c.arg(0)}, ${tuple(c.inst.attrs.axes)}) != 0, ${c.arg(0)}, torch.zeros_like(${c.arg(0)})), dim=${tuple(c.inst.attrs.axes)}, keepdim=${c.inst.attrs.keepDims ? 'True' : 'False'})`
      : c.arg(0),
  argmax_mask: (c) => `_argmax_mask(${c.arg(0)}, ${tuple(c.inst.attrs.axes)})`,
  // the index primitives (ir/indexops.ts); graphc's indices are int32
  argmax: (c) => `torch.argmax(${c.arg(0)}, dim=${c.inst.attrs.axis}, keepdim=${c.inst.attrs.keepDims ? 'True' : 'False'}).int()`,
  argmin: (c) => `torch.argmin(${c.arg(0)}, dim=${c.inst.attrs.axis}, keepdim=${c.inst.attrs.keepDims ? 'True' : 'False'}).int()`,
  cumsum: (c) => {
    const d = c.inst.attrs.axis;
    return c.inst.attrs.reverse ? `torch.flip(torch.cumsum(torch.flip(${c.arg(0)}, (${d},)), dim=${d}), (${d},))` : `torch.cumsum(${c.arg(0)}, dim=${d})`;
  },
  flip: (c) => `torch.flip(${c.arg(0)}, ${tuple(c.inst.attrs.axes)})`,
  cast: (c) => `${c.arg(0)}.float()`,
  arange: (c) => {
    const n = c.inst.attrs.shape[0]!;
    return `torch.arange(${typeof n === 'number' ? n : c.dim(n)}, dtype=torch.int32, device=dev)`;
  },
  matmul: (c) => {
    const { transA, transB } = c.inst.attrs;
    const t = (i: number, f: boolean) => (f ? `${c.arg(i)}.transpose(-2, -1)` : c.arg(i));
    return `torch.matmul(${t(0, transA)}, ${t(1, transB)})`;
  },
  transpose: (c) => `${c.arg(0)}.permute(${tuple(c.inst.attrs.perm)})`,
  reshape: (c) => `${c.arg(0)}.reshape(${c.shape(c.g.type(c.inst.result).shape)})`,
  broadcast: (c) => `torch.broadcast_to(${c.arg(0)}, ${c.shape(c.g.type(c.inst.result).shape)})`,
  concat: (c) => `torch.cat([${c.inst.args.map((_a, i) => c.arg(i)).join(', ')}], dim=${c.inst.attrs.axis})`,
  slice: (c) => {
    const { starts, sizes } = c.inst.attrs;
    // a symbolic size is the whole axis (the shape rule guarantees it)
    const parts = starts.map((s, d) => (typeof sizes[d] === 'number' ? `${s}:${s + (sizes[d] as number)}` : ':'));
    return `${c.arg(0)}[${parts.join(', ')}]`;
  },
  pad: (c) => {
    const { starts } = c.inst.attrs;
    const x = c.g.type(c.inst.args[0]!).shape;
    const out = c.g.type(c.inst.result).shape;
    const after = out.map((d, i) => {
      if (typeof d === 'number' && typeof x[i] === 'number') return d - starts[i]! - (x[i] as number);
      if (d === x[i] && starts[i] === 0) return 0;
      throw new CompileError(`export --torch: pad of a tensor with a symbolic dimension ${String(d)} cannot be exported`, 'give the padded tensor static sizes');
    });
    // F.pad lists (before, after) from the last axis to the first
    const pads = starts.map((s, i) => [s, after[i]!]).reverse().flat();
    return `torch.nn.functional.pad(${c.arg(0)}, ${tuple(pads)})`;
  },
  gather: (c) => `${c.arg(0)}[${c.arg(1)}.long()]`,
  scatter_add: (c) => {
    const shape = c.inst.attrs.shape;
    const rest = shape.slice(1);
    return `torch.zeros(${c.shape(shape)}, device=dev).index_add(0, ${c.arg(0)}.long().reshape(-1), ${c.arg(1)}.reshape(${c.shape([-1 as Dim, ...rest])}))`;
  },
  pick: (c) => `${c.arg(0)}.gather(1, ${c.arg(1)}.long().unsqueeze(1)).squeeze(1)`,
  one_hot: (c) => `torch.nn.functional.one_hot(${c.arg(0)}.long(), ${c.inst.attrs.depth}).float()`,
  softmax: (c) => `torch.softmax(${c.arg(0)}, dim=${c.inst.attrs.axis})`,
  log_softmax: (c) => `torch.log_softmax(${c.arg(0)}, dim=${c.inst.attrs.axis})`,
  xent: (c) => `torch.nn.functional.cross_entropy(${c.arg(0)}, ${c.arg(1)}.long())`,
  // the statistics are computed in the graph from x: autograd's derivative through them is the
  // total derivative of graphc's rule
  bn_apply: (c) => `(${c.arg(0)} - ${c.arg(1)}) * ${c.arg(2)}`,
  ln_apply: (c) => `(${c.arg(0)} - ${c.arg(1)}) * ${c.arg(2)}`,
  custom_grad: (c) => `${c.customClass(c.inst.attrs.rule)}.apply(${c.inst.args.map((_a, i) => c.arg(i)).join(', ')})`,
  conv: (c) => `_conv2d(${c.arg(0)}, ${c.arg(1)}, ${convArgs(c.inst.attrs)})`,
  // the gradient ops: vector-Jacobian products of torch's own ops (linear in the operand that
  // is differentiated, so a zero tensor stands for it)
  conv_input_grad: (c) => {
    const a = c.inst.attrs;
    const [n, o] = c.g.type(c.inst.args[0]!).shape;
    void o;
    const cin = (c.g.type(c.inst.args[1]!).shape[1] as number) * a.groups;
    return `_vjp(lambda z: _conv2d(z, ${c.arg(1)}, ${convArgs(a)}), torch.zeros(${c.shape([n!, cin, ...a.size])}, device=dev), ${c.arg(0)})`;
  },
  conv_weight_grad: (c) => {
    const a = c.inst.attrs;
    const o = c.g.type(c.inst.args[1]!).shape[1] as number;
    const cg = (c.g.type(c.inst.args[0]!).shape[1] as number) / a.groups;
    return `_vjp(lambda z: _conv2d(${c.arg(0)}, z, ${convArgs(a)}), torch.zeros(${c.shape([o, cg, ...a.kernel])}, device=dev), ${c.arg(1)})`;
  },
  max_pool: (c) => `torch.nn.functional.max_pool2d(${c.arg(0)}, ${poolArgs(c.inst.attrs)})`,
  max_pool_grad: (c) => `_vjp(lambda z: torch.nn.functional.max_pool2d(z, ${poolArgs(c.inst.attrs)}), ${c.arg(0)}.detach(), ${c.arg(1)})`,
  max_pool_pick: (c) => `_max_pool_pick(${c.arg(0)}, ${c.arg(1)}, ${poolArgs(c.inst.attrs)})`,
  avg_pool: (c) => `torch.nn.functional.avg_pool2d(${c.arg(0)}, ${poolArgs(c.inst.attrs)}, count_include_pad=True)`,
  avg_pool_grad: (c) => {
    const a = c.inst.attrs;
    const [n, ch] = c.g.type(c.inst.args[0]!).shape;
    return `_vjp(lambda z: torch.nn.functional.avg_pool2d(z, ${poolArgs(a)}, count_include_pad=True), torch.zeros(${c.shape([n!, ch!, ...a.size])}, device=dev), ${c.arg(0)})`;
  },
};

/** The helpers the lowerings call, defined once at the top of the emitted file. */
export const PRELUDE = `def _conv2d(x, w, stride, padding, dilation, groups):
    # graphc's padding is [top, left, bottom, right]; torch's conv2d pads symmetrically
    top, left, bottom, right = padding
    if (top, left) != (bottom, right):
        x = torch.nn.functional.pad(x, (left, right, top, bottom))
        top, left = 0, 0
    return torch.nn.functional.conv2d(x, w, None, stride, (top, left), dilation, groups)


def _vjp(f, z, dy):
    # dy · ∂f/∂z at z, itself differentiable (create_graph): a gradient op of graphc's rules
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        return torch.autograd.grad(f(z), z, dy, create_graph=True)[0]


def _max_pool_pick(x, v, kernel, stride, padding):
    # v at the first maximum of each of x's windows
    y, idx = torch.nn.functional.max_pool2d(x, kernel, stride, padding, return_indices=True)
    return v.flatten(2).gather(2, idx.flatten(2)).reshape(y.shape)


def _track(x):
    # an input that g.grad differentiates with respect to: autograd records it
    return x if x.requires_grad else x.detach().requires_grad_(True)


def _grad(y, xs):
    # g.grad(y, xs): dy/dx for each x, differentiable in turn (create_graph); zeros where y does
    # not depend on x, as graphc's
    gs = torch.autograd.grad(y, xs, create_graph=True, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g in gs]


def _argmax_mask(x, axes):
    # 1 at the first maximum (row-major) of each slice over axes, 0 elsewhere
    rest = [d for d in range(x.dim()) if d not in axes]
    perm = rest + list(axes)
    xt = x.detach().permute(perm)
    flat = xt.reshape(xt.shape[:len(rest)] + (-1,))
    mask = torch.nn.functional.one_hot(flat.argmax(-1), flat.shape[-1]).to(x.dtype).reshape(xt.shape)
    inv = [perm.index(d) for d in range(x.dim())]
    return mask.permute(inv)
`;
