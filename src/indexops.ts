// The DSL side of the index primitives (ir/indexops.ts): argmax/argmin, cumsum, flip, arange and
// i32 constants, with their argument checks; dsl.ts declares the surface and calls these.

import type { Builder } from '../ir/builder.js';
import { CompileError } from '../ir/errors.js';
import type { Dim } from '../ir/dims.js';
import { symbols } from '../ir/dims.js';
import { normalizeAxes } from '../ir/shape.js';
import type { DType, ValueId } from '../ir/types.js';
import { formatType } from '../ir/types.js';
import { describeValue as describe } from '../ir/vocab.js';

/** One axis of x (negative counts from the end); a scalar has none. */
function oneAxis(op: string, b: Builder, x: ValueId, axis: unknown, example: string): number {
  const t = b.type(x);
  if (t.shape.length === 0)
    throw new CompileError(`${op}: x is a scalar ${formatType(t)}, which has no axis to take the ${op} along`, `reshape it to [1] first, or apply ${op} to a tensor of rank 1 or more`);
  if (typeof axis !== 'number') throw new CompileError(`${op}: the axis must be a number, got ${describe(axis)}`, `name one axis, e.g. ${example}`);
  return normalizeAxes(op, axis, t.shape.length)[0]!;
}

function needF32(op: string, b: Builder, x: ValueId): void {
  const t = b.type(x);
  if (t.dtype !== 'f32') throw new CompileError(`${op}: x is ${formatType(t)} but f32 is needed`, `${op} works on f32 values; an i32 tensor holds indices and labels`);
}

/** x.argmax(axis, keepDims) / x.argmin: the i32 index of the first extremum (the first NaN's where there is one). */
export function argExtremum(b: Builder, op: 'argmax' | 'argmin', x: ValueId, axis: unknown, keepDims: unknown): ValueId {
  const a = oneAxis(op, b, x, axis, `x.${op}(-1)`);
  if (typeof keepDims !== 'boolean') throw new CompileError(`${op}: keepDims must be true or false, got ${describe(keepDims)}`, `e.g. x.${op}(-1, true)`);
  needF32(op, b, x);
  return op === 'argmax' ? b.argmax(x, a, keepDims) : b.argmin(x, a, keepDims);
}

/** x.cumsum(axis): running sums along one axis. */
export function cumsum(b: Builder, x: ValueId, axis: unknown): ValueId {
  const a = oneAxis('cumsum', b, x, axis, 'x.cumsum(1)');
  needF32('cumsum', b, x);
  return b.cumsum(x, a);
}

/** x.flip(axes): the order of each axis of `axes` (a number or an array) reversed. */
export function flip(b: Builder, x: ValueId, axes: unknown): ValueId {
  const t = b.type(x);
  if (!(typeof axes === 'number' || (Array.isArray(axes) && axes.every((a) => typeof a === 'number'))))
    throw new CompileError(`flip: axes must be a number or an array of numbers, got ${describe(axes)}`, 'e.g. x.flip(1) or x.flip([0, 1])');
  const list = normalizeAxes('flip', axes as number | number[], t.shape.length);
  const symbolic = list.find((a) => typeof t.shape[a] === 'string');
  if (symbolic !== undefined)
    throw new CompileError(`flip: axis ${symbolic} of ${formatType(t)} has the symbolic size ${t.shape[symbolic]}`, 'flip axes whose size is known at build time');
  // one flip per axis where a tensor with symbolic sizes is flipped on several (each copy's
  // offset is then one term of the symbolic sizes)
  if (list.length > 1 && t.shape.some((d) => typeof d === 'string')) return list.reduce((v, a) => b.flip(v, [a]), x);
  return b.flip(x, list);
}

/** x.float(): an i32 tensor's values as f32 (exact below 2²⁴); an f32 tensor as it is (torch's .float()). */
export function float(b: Builder, x: ValueId): ValueId {
  return b.type(x).dtype === 'f32' ? x : b.cast(x);
}

/** g.arange(n): i32 [n] holding 0 … n − 1; n a positive integer or a symbolic dimension of an input. */
export function arange(b: Builder, n: unknown): ValueId {
  if (typeof n === 'string') {
    const known = symbols(b.graph);
    if (!known.includes(n))
      throw new CompileError(
        `arange: '${n}' is not a symbolic dimension of an input declared before it${known.length ? ` (the model has ${known.map((s) => `'${s}'`).join(', ')})` : ''}`,
        `declare an input with it first, e.g. g.input('tokens', ['B', '${n}'], 'i32'), or pass a number`,
      );
    return b.arange(n);
  }
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
    throw new CompileError(`arange: n must be a positive integer or the name of a symbolic dimension, got ${describe(n)}`, "e.g. g.arange(10), or g.arange('T') for an input's symbolic T");
  return b.arange(n as Dim);
}

/** g.const(values, dtype): an f32 constant, or i32 values, which must be integers in range. */
export function constant(b: Builder, data: readonly number[], shape: readonly number[], dtype: unknown): ValueId {
  if (dtype !== 'f32' && dtype !== 'i32') throw new CompileError(`const: dtype must be 'f32' or 'i32', got ${describe(dtype)}`, "use 'f32' for data (the default) and 'i32' for indices and labels");
  if (dtype === 'i32') {
    const bad = data.findIndex((v) => !Number.isInteger(v) || Math.abs(v) > 2 ** 31 - 1);
    if (bad >= 0)
      throw new CompileError(`const: an i32 constant holds integers, but element ${bad} is ${data[bad]}`, "round the values (Math.round), or make an f32 constant: g.const(values) or g.const(values, 'f32')");
  }
  return b.constant(data, shape, dtype as DType);
}
