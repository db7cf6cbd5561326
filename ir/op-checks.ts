// The checks and float64 helpers the op table's rules share (ir/ops.ts, ir/ops-fused.ts).

import { CompileError } from './errors.js';
import * as K from './ndarray.js';
import type { NDArray } from './ndarray.js';
import type { Dim } from './dims.js';
import { isStatic } from './dims.js';
import type { Shape, TensorType } from './types.js';
import { formatType, numel } from './types.js';


export function needF32(op: string, t: TensorType, which: string): void {
  if (t.dtype !== 'f32')
    throw new CompileError(
      `${op}: ${which} is ${formatType(t)} but f32 is needed`,
      'i32 tensors hold indices and labels; use g.oneHot(indices, depth) to turn class indices into f32, or declare the input with dtype \'f32\'',
    );
}

export function needI32(op: string, t: TensorType, which: string): void {
  if (t.dtype !== 'i32')
    throw new CompileError(
      `${op}: ${which} is ${formatType(t)} but i32 indices are needed`,
      "declare the index input with dtype 'i32', e.g. g.input('Yb', [32], 'i32')",
    );
}

export const f32 = (shape: Shape): TensorType => ({ dtype: 'f32', shape });

/** Index bounds are checked against sizes known at build time. */
export function staticBound(op: string, t: TensorType, axis: number, what: string): void {
  if (!isStatic(t.shape[axis]!))
    throw new CompileError(`${op}: the number of ${what} of ${formatType(t)} is symbolic`, `give axis ${axis} a size known at build time`);
}

/** Whether [start, start + len) lies inside [0, dim); a symbolic range must be the whole axis. */
export function fitsIn(start: number, len: Dim, dim: Dim): boolean {
  if (typeof len === 'number' && typeof dim === 'number') return start >= 0 && len >= 0 && start + len <= dim;
  return start === 0 && len === dim;
}

export function checkIndex(op: string, i: number, n: number): void {
  if (!(Number.isInteger(i) && i >= 0 && i < n)) throw new RangeError(`${op}: index ${i} is out of range [0, ${n})`);
}

export function checkAxis(op: string, axis: number, x: TensorType): void {
  if (!Number.isInteger(axis) || axis < 0 || axis >= x.shape.length)
    throw new CompileError(`${op}: axis ${axis} is not an axis of ${formatType(x)}`, `use an axis in 0..${x.shape.length - 1}`);
}

/** Row-wise softmax (or log-softmax) along one axis, in float64. */
export function softmaxEval(x: NDArray, axis: number, log: boolean): NDArray {
  const shape = x.shape;
  const len = shape[axis]!;
  const inner = numel(shape.slice(axis + 1));
  const outer = numel(shape.slice(0, axis));
  const out = K.nd(shape);
  for (let o = 0; o < outer; o++)
    for (let q = 0; q < inner; q++) {
      const base = o * len * inner + q;
      let m = -Infinity;
      for (let k = 0; k < len; k++) m = Math.max(m, x.data[base + k * inner]!);
      let s = 0;
      for (let k = 0; k < len; k++) s += Math.exp(x.data[base + k * inner]! - m);
      for (let k = 0; k < len; k++) {
        const z = x.data[base + k * inner]! - m;
        out.data[base + k * inner] = log ? z - Math.log(s) : Math.exp(z) / s;
      }
    }
  return out;
}
