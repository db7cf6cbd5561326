// The DSL's convolutions and pooling (PyTorch's layout and semantics): argument checks with
// located errors, then the IR's conv / max_pool / avg_pool over [N, C, H, W]; the 1-D forms run
// as the 2-D ones over [N, C, 1, L].

import type { Builder } from '../ir/builder.js';
import type { ConvAttrs, PoolAttrs } from '../ir/conv.js';
import { outSize } from '../ir/conv.js';
import { CompileError } from '../ir/errors.js';
import type { Dim } from '../ir/dims.js';
import type { TensorType, ValueId } from '../ir/types.js';
import { formatType } from '../ir/types.js';
import { optionsOf } from './options.js';

export type Pair = number | readonly [number, number];

export interface Conv2dOptions<T> {
  bias?: T;
  stride?: Pair;
  padding?: Pair | 'same';
  dilation?: Pair;
  groups?: number;
}

export interface Conv1dOptions<T> {
  bias?: T;
  stride?: number;
  /** A number, `[left, right]` (a causal convolution: `[(k − 1) · dilation, 0]`), or 'same'. */
  padding?: number | readonly [number, number] | 'same';
  dilation?: number;
  groups?: number;
}

export interface Pool2dOptions {
  stride?: Pair;
  padding?: Pair;
}

export interface Pool1dOptions {
  stride?: number;
  padding?: number;
}

type Op = 'conv1d' | 'conv2d' | 'maxPool1d' | 'maxPool2d' | 'avgPool1d' | 'avgPool2d' | 'convTranspose1d' | 'convTranspose2d' | 'upsample' | 'adaptiveAvgPool2d';

/** A convolution's options object, its keys checked. */
export function convOptions(op: 'conv1d' | 'conv2d', o: unknown): Conv2dOptions<unknown> | Conv1dOptions<unknown> {
  const ex = op === 'conv2d' ? 'g.conv2d(x, w, { stride: 2, padding: 1 })' : 'g.conv1d(x, w, { stride: 2, padding: 1 })';
  return optionsOf(op, `g.${op}`, o, ['bias', 'stride', 'padding', 'dilation', 'groups'], ex) as Conv2dOptions<unknown> | Conv1dOptions<unknown>;
}

/** A pooling's options object, its keys checked. */
export function poolOptions(op: 'maxPool1d' | 'maxPool2d' | 'avgPool1d' | 'avgPool2d', o: unknown): Pool2dOptions | Pool1dOptions {
  return optionsOf(op, `g.${op}`, o, ['stride', 'padding'], `g.${op}(x, 2, { stride: 2 })`) as Pool2dOptions | Pool1dOptions;
}

export function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? `[${v.map(show).join(', ')}]` : String(v);
}

/** A number or a pair of integers ≥ min, as a pair. */
export function pairOf(op: Op, what: string, v: unknown, min: number, dims: 1 | 2, example: string): [number, number] {
  const ok = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= min;
  if (ok(v)) return [v, v];
  if (dims === 2 && Array.isArray(v) && v.length === 2 && v.every(ok)) return [v[0], v[1]];
  const kind = min === 0 ? 'a non-negative integer' : 'a positive integer';
  throw new CompileError(`${op}: ${what} must be ${kind}${dims === 2 ? ' or a pair [h, w] of them' : ''}, got ${show(v)}`, `e.g. ${what}: ${example}`);
}

export function rankCheck(op: Op, x: TensorType, dims: 1 | 2): void {
  const layout = dims === 2 ? '[N, C, H, W]' : '[N, C, L]';
  if (x.dtype !== 'f32' || x.shape.length !== dims + 2)
    throw new CompileError(
      `${op}: x must be an f32 tensor ${layout}, got ${formatType(x)}`,
      dims === 2 ? 'reshape it, e.g. x.reshape([B, 1, 28, 28]) for one channel of 28×28 images' : 'reshape it, e.g. x.reshape([B, 1, L]) for one channel',
    );
  x.shape.slice(1).forEach((d) => {
    if (typeof d !== 'number')
      throw new CompileError(`${op}: x ${formatType(x)} has a symbolic dimension other than the batch`, 'only the batch (the first axis) may be symbolic: give the channels and the spatial axes sizes');
  });
}

/** The spatial extent checks shared by convolutions and pooling, for one axis. */
function extentCheck(op: Op, x: TensorType, n: number, k: number, d: number, before: number, after: number, axis: string): void {
  const padded = n + before + after;
  const padText = before === after ? `${before}` : `${before} + ${after}`;
  if (k > padded)
    throw new CompileError(
      `${op}: the kernel (${k} along ${axis}) is larger than the padded input (${n} + padding ${padText} = ${padded}) of x ${formatType(x)}`,
      'use a smaller kernel, or pad the input',
    );
  const span = d * (k - 1) + 1;
  if (span > padded)
    throw new CompileError(
      `${op}: the output size along ${axis} would be ${outSize(n, k, 1, before, after, d)}: the dilated kernel spans ${d}·(${k} − 1) + 1 = ${span}, more than the padded input's ${padded}`,
      'use a smaller dilation or kernel, or pad the input',
    );
}

/** A convolution: x [N, C, H, W] or [N, C, L], weight [O, C/groups, kH, kW] or [O, C/groups, k]. */
export function conv(b: Builder, op: 'conv1d' | 'conv2d', x: ValueId, w: ValueId, bias: ValueId | undefined, o: Conv2dOptions<unknown> | Conv1dOptions<unknown>): ValueId {
  const dims = op === 'conv2d' ? 2 : 1;
  const xt = b.type(x);
  const wt = b.type(w);
  rankCheck(op, xt, dims);
  const wLayout = dims === 2 ? '[O, C/groups, kH, kW]' : '[O, C/groups, k]';
  if (wt.dtype !== 'f32' || wt.shape.length !== dims + 2 || !wt.shape.every((d) => typeof d === 'number'))
    throw new CompileError(`${op}: the weight must be an f32 tensor ${wLayout}, got ${formatType(wt)}`, `declare it as g.param('W', ${dims === 2 ? '[outChannels, inChannels / groups, kH, kW]' : '[outChannels, inChannels / groups, k]'})`);
  const groups = o.groups ?? 1;
  if (typeof groups !== 'number' || !Number.isInteger(groups) || groups < 1)
    throw new CompileError(`${op}: groups must be a positive integer, got ${show(groups)}`, 'e.g. groups: 1 (a full convolution), or groups equal to the channels (depthwise)');
  const C = xt.shape[1] as number;
  const [O, Cg] = wt.shape as number[] as [number, number];
  if (C % groups !== 0)
    throw new CompileError(`${op}: the ${C} input channels of x ${formatType(xt)} are not divisible by groups = ${groups}`, 'groups must divide both the input and the output channels');
  if (O % groups !== 0)
    throw new CompileError(`${op}: the ${O} output channels of the weight ${formatType(wt)} are not divisible by groups = ${groups}`, 'groups must divide both the input and the output channels');
  if (Cg * groups !== C)
    throw new CompileError(
      `${op}: the weight ${formatType(wt)} takes ${Cg} input channel${Cg === 1 ? '' : 's'} per group, but x ${formatType(xt)} has ${C}${groups === 1 ? '' : ` in ${groups} groups, ${C / groups} per group`}`,
      `the weight's second dimension must be C / groups = ${C / groups}`,
    );
  const stride = pairOf(op, 'stride', o.stride ?? 1, 1, dims, dims === 2 ? '2 or [2, 1]' : '2');
  const dilation = pairOf(op, 'dilation', o.dilation ?? 1, 1, dims, dims === 2 ? '2 or [2, 1]' : '2');
  const kernel = wt.shape.slice(2) as number[];
  const size = xt.shape.slice(2) as number[];
  // padding [before, after] per spatial axis
  let pads: [number, number][];
  if (o.padding === 'same') {
    if (stride.some((s) => s !== 1))
      throw new CompileError(`${op}: padding 'same' needs stride 1, got stride ${show(o.stride)}`, "PyTorch defines 'same' padding for stride 1 only; give the padding as a number");
    // as PyTorch: the total d·(k − 1), the odd one at the end
    pads = kernel.map((k, i) => {
      const total = dilation[dims === 2 ? i : 0]! * (k - 1);
      return [Math.floor(total / 2), total - Math.floor(total / 2)];
    });
  } else if (dims === 1 && Array.isArray(o.padding)) {
    const lr = o.padding as unknown[];
    if (lr.length !== 2 || !lr.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0))
      throw new CompileError(`${op}: padding must be a non-negative integer, [left, right] or 'same', got ${show(o.padding)}`, 'e.g. padding: 1, or padding: [(k - 1) * dilation, 0] for a causal convolution');
    pads = [[lr[0] as number, lr[1] as number]];
  } else {
    const ex = dims === 2 ? "1, [1, 2] or 'same'" : "1, [2, 0] or 'same'";
    const p = pairOf(op, 'padding', o.padding ?? 0, 0, dims, ex);
    pads = dims === 2 ? [[p[0], p[0]], [p[1], p[1]]] : [[p[0], p[0]]];
  }
  const axisName = dims === 2 ? ['H', 'W'] : ['L'];
  kernel.forEach((k, i) => extentCheck(op, xt, size[i]!, k, dilation[dims === 2 ? i : 0]!, pads[i]![0], pads[i]![1], axisName[i]!));
  if (bias !== undefined) {
    const bt = b.type(bias);
    if (bt.dtype !== 'f32' || bt.shape.length !== 1 || bt.shape[0] !== O)
      throw new CompileError(`${op}: the bias must be f32[${O}], one value per output channel, got ${formatType(bt)}`, `declare it as g.param('b', [${O}])`);
  }
  const attrs: ConvAttrs =
    dims === 2
      ? { stride, padding: [pads[0]![0], pads[1]![0], pads[0]![1], pads[1]![1]], dilation, groups }
      : { stride: [1, stride[0]], padding: [0, pads[0]![0], 0, pads[0]![1]], dilation: [1, dilation[0]], groups };
  const N = xt.shape[0]!;
  const x4 = dims === 2 ? x : b.reshape(x, [N, C, 1, size[0]!]);
  const w4 = dims === 2 ? w : b.reshape(w, [O, Cg, 1, kernel[0]!]);
  let y = b.conv(x4, w4, attrs);
  if (bias !== undefined) y = b.add(y, b.reshape(bias, [1, O, 1, 1]));
  if (dims === 1) {
    const s = b.type(y).shape;
    y = b.reshape(y, [s[0]!, s[1]!, s[3]!] as Dim[]);
  }
  return y;
}

/** Max or average pooling over x [N, C, H, W] or [N, C, L]. */
export function pool(b: Builder, op: 'maxPool1d' | 'maxPool2d' | 'avgPool1d' | 'avgPool2d', x: ValueId, kernelArg: unknown, o: Pool2dOptions | Pool1dOptions): ValueId {
  const dims = op.endsWith('2d') ? 2 : 1;
  const xt = b.type(x);
  rankCheck(op, xt, dims);
  const kernel = pairOf(op, 'kernel', kernelArg, 1, dims, dims === 2 ? '2 or [2, 2]' : '2');
  const stride = o.stride === undefined ? kernel : pairOf(op, 'stride', o.stride, 1, dims, dims === 2 ? '2 or [2, 1]' : '2');
  const padding = pairOf(op, 'padding', o.padding ?? 0, 0, dims, dims === 2 ? '1 or [1, 0]' : '1');
  const axisName = dims === 2 ? ['H', 'W'] : ['L'];
  const size = xt.shape.slice(2) as number[];
  size.forEach((n, i) => {
    if (2 * padding[i]! > kernel[i]!)
      throw new CompileError(
        `${op}: padding ${padding[i]} along ${axisName[i]} is more than half the kernel ${kernel[i]}`,
        'as in PyTorch, pooling pads at most half the kernel on each side (so that every window holds an input)',
      );
    extentCheck(op, xt, n, kernel[i]!, 1, padding[i]!, padding[i]!, axisName[i]!);
  });
  const attrs: PoolAttrs = dims === 2 ? { kernel, stride, padding } : { kernel: [1, kernel[0]], stride: [1, stride[0]], padding: [0, padding[0]] };
  const N = xt.shape[0]!;
  const C = xt.shape[1]!;
  const x4 = dims === 2 ? x : b.reshape(x, [N, C, 1, size[0]!]);
  let y = op.startsWith('max') ? b.maxPool(x4, attrs) : b.avgPool(x4, attrs);
  if (dims === 1) {
    const s = b.type(y).shape;
    y = b.reshape(y, [s[0]!, s[1]!, s[3]!] as Dim[]);
  }
  return y;
}
