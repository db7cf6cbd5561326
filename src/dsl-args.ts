// The argument checks of the DSL's core calls (shapes, constants, axes, eps), with their
// messages; dsl.ts declares the calls.

import { CompileError } from '../ir/errors.js';
import type { Dim } from '../ir/dims.js';
import { sanitizeName } from '../ir/graph.js';
import { optionsOf } from './options.js';
import type { Axis, NestedNumbers } from './dsl.js';

export function checkShape(op: string, shape: unknown, allow: { wild?: boolean; symbols?: boolean } = {}): Dim[] {
  const ok =
    Array.isArray(shape) &&
    shape.every((d) =>
      typeof d === 'number' ? Number.isInteger(d) && (d >= 0 || (allow.wild === true && d === -1)) : allow.symbols === true && typeof d === 'string',
    );
  if (!ok) {
    const symbolic = !allow.symbols && Array.isArray(shape) && shape.some((d) => typeof d === 'string');
    throw new CompileError(
      symbolic ? `${op}: a ${op}'s shape is fixed at build time, got ${JSON.stringify(shape)}` : `${op}: invalid shape ${JSON.stringify(shape)}`,
      symbolic
        ? 'name dimensions in the shapes of inputs only (g.input(\'Xb\', [\'B\', 3], \'i32\')); params and constants have sizes'
        : `a shape is an array of non-negative integers${allow.wild ? ', with at most one -1' : ''}${allow.symbols ? ' or names of dimensions' : ''}, e.g. [32, 64]`,
    );
  }
  for (const d of shape as Dim[])
    if (typeof d === 'string' && sanitizeName(d) !== d)
      throw new CompileError(
        `${op}: '${d}' cannot name a dimension`,
        'a dimension name is an identifier that is not a JavaScript keyword or a name graphc reserves (such as i, n or t), e.g. \'B\'',
      );
  return [...(shape as Dim[])];
}

/** Flattens a nested number array, checking that it is rectangular. */
export function flatten(value: number | NestedNumbers): { data: number[]; shape: number[] } {
  if (typeof value === 'number') {
    if (Number.isNaN(value)) throw new CompileError('const: a value is NaN', 'constants must be numbers (±Infinity is allowed, e.g. for masks); check how the value was computed or parsed');
    return { data: [value], shape: [] };
  }
  if (!Array.isArray(value)) throw new CompileError(`const: expected a number or nested arrays of numbers, got ${typeof value}`, 'pass e.g. 0.5 or [[1, 2], [3, 4]]');
  const parts = value.map((v) => flatten(v as number | NestedNumbers));
  const inner = parts[0]?.shape ?? [];
  if (!parts.every((p) => p.shape.length === inner.length && p.shape.every((d, i) => d === inner[i])))
    throw new CompileError('const: nested arrays are not rectangular', 'every row must have the same length');
  return { data: parts.flatMap((p) => p.data), shape: [value.length, ...inner] };
}

/** A non-empty array of tensors. */
export function tensorList(op: string, xs: unknown): unknown[] {
  if (!Array.isArray(xs) || xs.length === 0) throw new CompileError(`${op}: expected a non-empty array of tensors, got ${describe(xs)}`, `pass e.g. g.${op}([a, b], 0)`);
  return xs;
}

/** A normalization's eps: a finite number ≥ 0 (default 1e-5). */
export function epsOf(op: string, eps: unknown): number {
  if (eps === undefined) return 1e-5;
  if (typeof eps === 'number' && eps >= 0 && Number.isFinite(eps)) return eps;
  throw new CompileError(`${op}: eps must be a finite number ≥ 0, got ${describe(eps)}`, 'eps is added to the variance before the square root, e.g. { eps: 1e-5 } (the default)');
}

/** A reduction's axis argument: a number, an array of numbers, or undefined. */
export function axisArg(op: string, axis: unknown): Axis | undefined {
  if (axis === undefined || typeof axis === 'number' || (Array.isArray(axis) && axis.every((a) => typeof a === 'number'))) return axis as Axis | undefined;
  throw new CompileError(`${op}: axis must be a number or an array of numbers, got ${describe(axis)}`, `e.g. x.${op}(1), x.${op}([0, 1]) or x.${op}(1, true) to keep the axis; omit it to reduce over every axis`);
}

export function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return x.length === 0 ? 'an empty array' : `an array of ${x.length}`;
  if (typeof x === 'string') return JSON.stringify(x);
  if (typeof x === 'number' || typeof x === 'boolean' || x === undefined) return String(x);
  return `${/^[aeiou]/.test(typeof x) ? 'an' : 'a'} ${typeof x}`;
}

/** batchNorm's options: eps, momentum, name, and torch's axis and correction (read by layers.ts's bnAxis). */
export function batchNormOptions(options: unknown): void {
  optionsOf('batchNorm', 'g.batchNorm', options, ['axis', 'correction', 'eps', 'momentum', 'name'], 'g.batchNorm(x, gain, bias, { axis: 1, correction: 0, momentum: 0.1 })');
}
