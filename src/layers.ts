// The DSL side of PyTorch's layers (issue #31): batchNorm's axis and correction, layerNorm over
// several axes, groupNorm, transposed convolutions, upsampling and adaptive pooling. Argument
// checks with located errors, then composites of existing ops (ir/layers.ts).

import type { Builder } from '../ir/builder.js';
import * as C from '../ir/composite.js';
import type { BnAxis, Hint } from '../ir/composite.js';
import { CompileError } from '../ir/errors.js';
import { adaptiveMatrix, groupNormalize, interpolationMatrix, normalizeLastAxes, repeat2d, resample2d } from '../ir/layers.js';
import { broadcastShapes, fmtShape, normalizeAxes } from '../ir/shape.js';
import type { Loc, TensorType, ValueId } from '../ir/types.js';
import { formatLoc, formatType, sameShape } from '../ir/types.js';
import { describeValue as describe } from '../ir/vocab.js';
import type { Pair } from './conv.js';
import { pairOf, rankCheck, show } from './conv.js';
import { batchNormOptions, epsOf } from './dsl-args.js';
import type { BatchNormOptions } from './dsl.js';
import { optionsOf } from './options.js';

/** batchNorm's feature axis (normalised; the last by default) and correction (0 or 1). */
export function bnAxis(b: Builder, x: ValueId, o: { axis?: unknown; correction?: unknown }): BnAxis {
  const rank = b.type(x).shape.length;
  const out: BnAxis = {};
  if (o.axis !== undefined) {
    if (typeof o.axis !== 'number')
      throw new CompileError(`batchNorm: axis must be a number, got ${describe(o.axis)}`, 'the feature axis, e.g. { axis: 1 } for NCHW maps as torch.nn.BatchNorm2d');
    if (rank >= 2 && Number.isInteger(o.axis) && (o.axis === 0 || o.axis === -rank))
      throw new CompileError(
        `batchNorm: axis ${o.axis} is the batch axis of x [${b.type(x).shape.join(', ')}]`,
        'axis names the features (the channels), normalised each over the batch: e.g. { axis: 1 } for [N, C, H, W], or leave it out for the last axis',
      );
    if (rank >= 2) out.axis = normalizeAxes('batchNorm', o.axis, rank)[0]!;
  }
  if (o.correction !== undefined) {
    if (o.correction !== 0 && o.correction !== 1)
      throw new CompileError(
        `batchNorm: correction must be 0 or 1, got ${describe(o.correction)}`,
        "0 divides the variance by n as torch.nn.BatchNorm normalises, 1 (the default) by n − 1 (Bessel's correction, the lecture's)",
      );
    out.correction = o.correction;
  }
  return out;
}

/** Options of `g.groupNorm`. */
export interface GroupNormOptions {
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
}

/** Options of `g.convTranspose2d` (`F.conv_transpose2d`'s). */
export interface ConvTranspose2dOptions<T> {
  /** [C_out], one value per output channel. */
  bias?: T;
  /** The step of the equivalent convolution's input gradient: the output grows by it (default 1). */
  stride?: Pair;
  /** Removed from each side of the output (as torch: dilation·(k − 1) − padding is the padding of the equivalent convolution). */
  padding?: Pair;
  /** Added to one side (the end) of the output; smaller than the stride or the dilation (as torch). */
  outputPadding?: Pair;
  /** The spacing of the kernel's taps (default 1). */
  dilation?: Pair;
  /** Channel groups: C_in and C_out are split into this many independent parts (default 1). */
  groups?: number;
}

/** Options of `g.convTranspose1d` (`F.conv_transpose1d`'s). */
export interface ConvTranspose1dOptions<T> {
  bias?: T;
  stride?: number;
  padding?: number;
  outputPadding?: number;
  dilation?: number;
  groups?: number;
}

/** Options of `g.upsample` (`F.interpolate` on [N, C, H, W] with a scale_factor). */
export interface UpsampleOptions {
  /** The factor of H and W (a number, or [sH, sW]); the output is ⌊H·sH⌋ × ⌊W·sW⌋. */
  scale: Pair;
  /** 'nearest' (default) or 'bilinear'. */
  mode?: 'nearest' | 'bilinear';
  /** bilinear: the corner pixels' centres of input and output coincide (default false, as torch). */
  alignCorners?: boolean;
}

/** g's layer methods (issue #31), declared here and part of GraphBuilder. */
export interface LayerMethods<T> {
  /**
   * Group normalisation of x [N, C, ...] (torch.nn.GroupNorm): the C channels in `groups` groups,
   * each group of a sample normalised over its channels and positions (variance divided by n),
   * then `gain · x̂ + bias` with gain and bias [C] (or numbers).
   */
  groupNorm(x: T, groups: number, gain: T | number, bias: T | number, options?: GroupNormOptions): T;
  /** x [N, C_in, H, W], weight [C_in, C_out/groups, kH, kW] → [N, C_out, Ho, Wo], Ho = (H − 1)·stride − 2·padding + dilation·(kH − 1) + outputPadding + 1 (`F.conv_transpose2d`). */
  convTranspose2d(x: T, weight: T, options?: ConvTranspose2dOptions<T>): T;
  /** x [N, C_in, L], weight [C_in, C_out/groups, k] → [N, C_out, Lo] (`F.conv_transpose1d`). */
  convTranspose1d(x: T, weight: T, options?: ConvTranspose1dOptions<T>): T;
  /** x [N, C, H, W] resized by `scale` (`F.interpolate(x, scale_factor=..., mode=..., align_corners=...)`). */
  upsample(x: T, options: UpsampleOptions): T;
  /** x [N, C, H, W] → [N, C, oh, ow], each output the mean of rows ⌊i·H/oh⌋ to ⌈(i + 1)·H/oh⌉ − 1 and the same in W (`F.adaptive_avg_pool2d`). */
  adaptiveAvgPool2d(x: T, size: Pair): T;
}

const whole = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min;

/**
 * layerNorm over the last k axes, k the rank of gain without its leading 1s (torch.nn.LayerNorm's
 * normalized_shape: a gain [H, W] normalises over the last two axes); a number gain: the last axis.
 */
export function layerNorm(b: Builder, hint: Hint, x: ValueId, gain: ValueId, bias: ValueId, eps: number): ValueId {
  const t = b.type(x);
  const gs = b.type(gain).shape;
  let k = gs.length;
  while (k > 1 && gs[gs.length - k] === 1) k--;
  if (k <= 1 || t.dtype !== 'f32') return C.layerNorm(b, hint, x, gain, bias, eps);
  const want = gs.slice(-k);
  if (t.shape.length < k || !sameShape(t.shape.slice(-k), want))
    throw new CompileError(
      `layerNorm: gain ${formatType(b.type(gain))} does not fit x ${formatType(t)}: layerNorm normalises over the last ${k} axes (gain's shape, torch's normalized_shape), which must be ${fmtShape(want)}`,
      `give gain and bias the shape of the axes to normalise over, e.g. ${fmtShape(t.shape.slice(-k))}, or [${t.shape.at(-1)}] for the last axis alone`,
    ).withLoc(b.loc);
  if (!want.every((d) => typeof d === 'number'))
    throw new CompileError(`layerNorm: the normalised axes ${fmtShape(want)} must have sizes known at build time`, 'normalise over axes of fixed size').withLoc(b.loc);
  const bt = b.type(bias);
  const out = broadcastShapes(bt.shape, t.shape);
  if (bt.dtype !== 'f32' || !out || !sameShape(out, t.shape))
    throw new CompileError(`layerNorm: bias ${formatType(bt)} does not fit x ${formatType(t)}`, `give bias the shape of gain, ${fmtShape(want)}, or pass a number`).withLoc(b.loc);
  return b.add(b.mul(gain, normalizeLastAxes(b, hint, x, k, eps)), bias);
}

/** A [C] (or number) gain or bias as [C, 1, ...] for x [N, C, ...]. */
function perChannel(op: string, b: Builder, v: ValueId, what: string, x: TensorType): ValueId {
  const t = b.type(v);
  const ch = x.shape[1]!;
  if (t.dtype === 'f32' && t.shape.length === 0) return v;
  if (t.dtype !== 'f32' || t.shape.length !== 1 || t.shape[0] !== ch)
    throw new CompileError(`${op}: ${what} ${formatType(t)} does not fit x ${formatType(x)}: it must hold one value per channel`, `give ${what} the shape [${ch}], or pass a number`).withLoc(b.loc);
  return b.reshape(v, [ch, ...Array(x.shape.length - 2).fill(1)]);
}

export function groupNorm(b: Builder, hint: Hint, x: ValueId, groups: unknown, gain: ValueId, bias: ValueId, options: unknown): ValueId {
  const o = optionsOf('groupNorm', 'g.groupNorm', options, ['eps'], 'g.groupNorm(x, 8, gain, bias, { eps: 1e-5 })');
  const t = b.type(x);
  if (t.dtype !== 'f32' || t.shape.length < 2 || !t.shape.slice(1).every((d) => typeof d === 'number'))
    throw new CompileError(`groupNorm: x must be an f32 tensor [N, C, ...] with sizes known at build time but for N, got ${formatType(t)}`, 'e.g. feature maps [N, C, H, W]').withLoc(b.loc);
  const ch = t.shape[1] as number;
  if (!whole(groups, 1))
    throw new CompileError(`groupNorm: groups must be a positive integer, got ${describe(groups)}`, `e.g. g.groupNorm(x, ${ch % 2 === 0 ? 2 : 1}, gain, bias)`).withLoc(b.loc);
  if (ch % groups !== 0)
    throw new CompileError(
      `groupNorm: groups = ${groups} does not divide the ${ch} channels of x ${formatType(t)}`,
      `use a number of groups that divides ${ch}: ${[...Array(ch).keys()].map((i) => i + 1).filter((d) => ch % d === 0).join(', ')}`,
    ).withLoc(b.loc);
  const [g, c] = [perChannel('groupNorm', b, gain, 'gain', t), perChannel('groupNorm', b, bias, 'bias', t)];
  const eps = epsOf('groupNorm', o.eps);
  return b.add(b.mul(g, hint(groupNormalize(b, hint, x, groups, eps), 'gnraw')), c);
}

/** F.conv_transpose1d/2d: the convolution's input gradient (conv_input_grad) of x by weight, which has torch's layout [C_in, C_out/groups, ...k]. */
export function convTranspose(b: Builder, op: 'convTranspose1d' | 'convTranspose2d', x: ValueId, w: ValueId, bias: ValueId | undefined, options: unknown): ValueId {
  const dims = op === 'convTranspose2d' ? 2 : 1;
  const ex = dims === 2 ? 'g.convTranspose2d(x, w, { stride: 2, padding: 1, outputPadding: 1 })' : 'g.convTranspose1d(x, w, { stride: 2 })';
  const o = optionsOf(op, `g.${op}`, options, ['bias', 'stride', 'padding', 'outputPadding', 'dilation', 'groups'], ex);
  const xt = b.type(x);
  const wt = b.type(w);
  rankCheck(op, xt, dims);
  const wLayout = dims === 2 ? '[C_in, C_out/groups, kH, kW]' : '[C_in, C_out/groups, k]';
  if (wt.dtype !== 'f32' || wt.shape.length !== dims + 2 || !wt.shape.every((d) => typeof d === 'number'))
    throw new CompileError(`${op}: the weight must be an f32 tensor ${wLayout} (torch's layout), got ${formatType(wt)}`, `declare it as g.param('W', ${dims === 2 ? '[inChannels, outChannels / groups, kH, kW]' : '[inChannels, outChannels / groups, k]'})`).withLoc(b.loc);
  const groups = o.groups ?? 1;
  if (!whole(groups, 1))
    throw new CompileError(`${op}: groups must be a positive integer, got ${show(groups)}`, 'e.g. groups: 1, or groups equal to the channels (depthwise)').withLoc(b.loc);
  const cin = xt.shape[1] as number;
  const [wIn, cg] = wt.shape as number[] as [number, number];
  if (cin % groups !== 0)
    throw new CompileError(`${op}: the ${cin} input channels of x ${formatType(xt)} are not divisible by groups = ${groups}`, 'groups must divide the input channels').withLoc(b.loc);
  if (wIn !== cin)
    throw new CompileError(
      `${op}: the weight ${formatType(wt)} has ${wIn} input channels (its first axis), but x ${formatType(xt)} has ${cin}`,
      `a transposed convolution's weight is [C_in, C_out/groups, ...k] as torch's (the first axis the input channels, ${cin})`,
    ).withLoc(b.loc);
  const cout = cg * groups;
  const pair = (what: string, v: unknown, min: number, e: string) => pairOf(op, what, v, min, dims, dims === 2 ? e : e.split(' ')[0]!);
  const stride = pair('stride', o.stride ?? 1, 1, '2 or [2, 1]');
  const padding = pair('padding', o.padding ?? 0, 0, '1 or [1, 0]');
  const outputPadding = pair('outputPadding', o.outputPadding ?? 0, 0, '1 or [1, 0]');
  const dilation = pair('dilation', o.dilation ?? 1, 1, '2 or [2, 1]');
  const kernel = wt.shape.slice(2) as number[];
  const size = (xt.shape.slice(2) as number[]).map((n, i) => {
    const j = dims === 2 ? i : 0;
    const most = Math.max(stride[j]!, dilation[j]!);
    if (outputPadding[j]! >= most)
      throw new CompileError(
        `${op}: outputPadding ${outputPadding[j]} must be smaller than the stride ${stride[j]} or the dilation ${dilation[j]}`,
        `outputPadding picks one of the output sizes: 0 to max(stride, dilation) − 1 (here ${most - 1}), as torch's output_padding`,
      ).withLoc(b.loc);
    const out = (n - 1) * stride[j]! - 2 * padding[j]! + dilation[j]! * (kernel[i]! - 1) + outputPadding[j]! + 1;
    if (out < 1)
      throw new CompileError(`${op}: the output size along ${dims === 2 ? ['H', 'W'][i] : 'L'} would be ${out}`, 'use less padding').withLoc(b.loc);
    return out;
  });
  if (bias !== undefined) {
    const bt = b.type(bias);
    if (bt.dtype !== 'f32' || bt.shape.length !== 1 || bt.shape[0] !== cout)
      throw new CompileError(`${op}: the bias must be f32[${cout}], one value per output channel, got ${formatType(bt)}`, `declare it as g.param('b', [${cout}])`).withLoc(b.loc);
  }
  const N = xt.shape[0]!;
  const [x4, w4] = dims === 2 ? [x, w] : [b.reshape(x, [N, cin, 1, xt.shape[2]!]), b.reshape(w, [wIn, cg, 1, kernel[0]!])];
  const attrs =
    dims === 2
      ? { stride, padding: [padding[0], padding[1], padding[0], padding[1]], dilation, groups, size }
      : { stride: [1, stride[0]], padding: [0, padding[0], 0, padding[0]], dilation: [1, dilation[0]], groups, size: [1, size[0]!] };
  // an outputPadding of a stride or more (torch allows up to the dilation): the convolution whose
  // input gradient this is has as many more output rows, all zero in x (they add nothing)
  const extra = outputPadding.map((p, j) => Math.floor(p / stride[j]!));
  const xs = b.type(x4).shape as number[];
  const grown = dims === 2 ? [xs[2]! + extra[0]!, xs[3]! + extra[1]!] : [1, xs[3]! + extra[0]!];
  const xin = extra.some((e) => e > 0) ? b.pad(x4, [0, 0, 0, 0], [xs[0]!, xs[1]!, ...grown]) : x4;
  let y = b.convInputGrad(xin, w4, attrs);
  if (bias !== undefined) y = b.add(y, b.reshape(bias, [1, cout, 1, 1]));
  return dims === 2 ? y : b.reshape(y, [N, cout, size[0]!]);
}

export function upsample(b: Builder, x: ValueId, options: unknown): ValueId {
  const o = optionsOf('upsample', 'g.upsample', options, ['scale', 'mode', 'alignCorners'], "g.upsample(x, { scale: 2, mode: 'bilinear' })", {
    scale_factor: 'write scale for scale_factor',
    size: 'g.upsample takes a scale: for an output size, give the factors [Ho / H, Wo / W]',
  });
  const t = b.type(x);
  rankCheck('upsample', t, 2);
  const mode = o.mode ?? 'nearest';
  if (mode !== 'nearest' && mode !== 'bilinear')
    throw new CompileError(`upsample: mode must be 'nearest' or 'bilinear', got ${describe(mode)}`, "e.g. g.upsample(x, { scale: 2, mode: 'bilinear' }); torch's other modes are not built").withLoc(b.loc);
  const align = o.alignCorners ?? false;
  if (typeof align !== 'boolean') throw new CompileError(`upsample: alignCorners must be true or false, got ${describe(align)}`, 'e.g. { alignCorners: true }').withLoc(b.loc);
  if (align && mode === 'nearest')
    throw new CompileError("upsample: alignCorners applies to mode 'bilinear' only", "leave alignCorners out, or pass mode: 'bilinear' (torch refuses align_corners with 'nearest' too)").withLoc(b.loc);
  const pos = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
  const s = o.scale;
  const scale = pos(s) ? [s, s] : Array.isArray(s) && s.length === 2 && s.every(pos) ? (s as [number, number]) : undefined;
  if (!scale) throw new CompileError(`upsample: scale must be a positive number or a pair [sH, sW] of them, got ${show(s)}`, 'e.g. g.upsample(x, { scale: 2 })').withLoc(b.loc);
  const [h, w] = t.shape.slice(2) as [number, number];
  const [ho, wo] = [Math.floor(h * scale[0]!), Math.floor(w * scale[1]!)];
  if (ho < 1 || wo < 1) throw new CompileError(`upsample: the output would be ${ho}×${wo} for x ${formatType(t)} and scale ${show(s)}`, 'use a larger scale').withLoc(b.loc);
  if (mode === 'nearest' && scale.every((f) => Number.isInteger(f))) return repeat2d(b, x, scale[0]!, scale[1]!);
  const m = (n: number, out: number, f: number) => interpolationMatrix(n, out, mode, align, f);
  return resample2d(b, x, m(h, ho, scale[0]!), ho, m(w, wo, scale[1]!), wo);
}

export function adaptiveAvgPool2d(b: Builder, x: ValueId, sizeArg: unknown): ValueId {
  const t = b.type(x);
  rankCheck('adaptiveAvgPool2d', t, 2);
  const [oh, ow] = pairOf('adaptiveAvgPool2d', 'size', sizeArg, 1, 2, '1 or [7, 7]');
  const [h, w] = t.shape.slice(2) as [number, number];
  if (h % oh === 0 && w % ow === 0) {
    if (oh === h && ow === w) return x;
    const kernel = [h / oh, w / ow];
    return b.avgPool(x, { kernel, stride: kernel, padding: [0, 0] });
  }
  return resample2d(b, x, adaptiveMatrix(h, oh), oh, adaptiveMatrix(w, ow), ow);
}

/** The tracer's view layers.ts needs: one located call, the name hint, operands. */
interface Calls<T> {
  readonly b: Builder;
  readonly hint: Hint;
  call(f: (name: string | undefined) => ValueId): T;
}

/** g's layer methods, each one traced call. */
export function layerMethods<T>(t: Calls<T>, v: (x: unknown, op?: string) => ValueId): LayerMethods<T> {
  const biasOf = (op: string, o: unknown) => {
    const bias = typeof o === 'object' && o !== null ? (o as { bias?: unknown }).bias : undefined;
    return bias === undefined ? undefined : v(bias, op);
  };
  return {
    groupNorm: (x, groups, gain, bias, options) => t.call(() => groupNorm(t.b, t.hint, v(x, 'groupNorm'), groups, v(gain), v(bias), options)),
    convTranspose2d: (x, weight, options) => t.call(() => convTranspose(t.b, 'convTranspose2d', v(x, 'convTranspose2d'), v(weight, 'convTranspose2d'), biasOf('convTranspose2d', options), options)),
    convTranspose1d: (x, weight, options) => t.call(() => convTranspose(t.b, 'convTranspose1d', v(x, 'convTranspose1d'), v(weight, 'convTranspose1d'), biasOf('convTranspose1d', options), options)),
    upsample: (x, options) => t.call(() => upsample(t.b, v(x, 'upsample'), options)),
    adaptiveAvgPool2d: (x, size) => t.call(() => adaptiveAvgPool2d(t.b, v(x, 'adaptiveAvgPool2d'), size)),
  };
}

/** The tracer's module state that batchNorm's running statistics join. */
interface BufferState {
  readonly b: Builder;
  readonly hint: Hint;
  readonly buffers: Map<string, Loc | undefined>;
  readonly bufferUpdates: { name: string; value: ValueId }[];
}

/** g.batchNorm: batch statistics, or with `momentum` running statistics kept in buffers named after `name` (the const assigned). */
export function batchNorm(t: BufferState, x: ValueId, gain: ValueId, bias: ValueId, options: BatchNormOptions, name: string | undefined): ValueId {
  batchNormOptions(options);
  const bn = bnAxis(t.b, x, options);
  if (options.momentum === undefined) return C.batchNorm(t.b, t.hint, x, gain, bias, epsOf('batchNorm', options.eps), bn);
  const m = options.momentum;
  if (typeof m !== 'number' || !(m >= 0 && m <= 1))
    throw new CompileError(
      `batchNorm: momentum must be a number in [0, 1], got ${describe(m)}`,
      "the running statistics move by momentum · (batch statistic − running), as torch's BatchNorm1d: e.g. { momentum: 0.1 }, or 0.001 as the lecture",
    );
  const prefix = options.name ?? name;
  if (typeof prefix !== 'string' || prefix.length === 0)
    throw new CompileError(
      `batchNorm: the running statistics need a name, got ${describe(prefix)}`,
      "assign the result to a const (const bn1 = g.batchNorm(...) keeps 'bn1.running_mean' and 'bn1.running_var') or pass { name: 'bn1' }",
    );
  for (const k of [`${prefix}.running_mean`, `${prefix}.running_var`]) {
    if (!t.buffers.has(k)) continue;
    const at = t.buffers.get(k);
    throw new CompileError(
      `batchNorm: the buffer '${k}' is already kept by another batchNorm${at ? ` at ${formatLoc(at)}` : ''}`,
      "give each batchNorm with a momentum its own name: assign it to another const, or pass { name: 'bn2' }",
    );
  }
  const r = C.batchNormRunning(t.b, t.hint, x, gain, bias, epsOf('batchNorm', options.eps), m, prefix, bn);
  for (const u of r.updates) {
    t.buffers.set(u.name, t.b.loc);
    t.bufferUpdates.push(u);
  }
  return r.y;
}
