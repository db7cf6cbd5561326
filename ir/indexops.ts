// The index primitives of PyTorch's vocabulary (issue #31): argmax and argmin (i32 indices, no
// gradient), cumsum (its gradient is the reverse cumsum of dy), flip (a layout op: its gradient is
// the same flip) and arange (i32 0 … n − 1, n possibly symbolic). Their entries of the op table
// (ir/ops.ts spreads INDEX_OPS into OPS).

import { CompileError } from './errors.js';
import * as K from './ndarray.js';
import type { NDArray } from './ndarray.js';
import { fmtShape, reducedShape } from './shape.js';
import type { Dim } from './dims.js';
import { isStatic } from './dims.js';
import type { TensorType } from './types.js';
import { formatType, numel } from './types.js';
import type { AttrsOf, OpDef } from './ops.js';

function needF32(op: string, t: TensorType): void {
  if (t.dtype !== 'f32')
    throw new CompileError(`${op}: the operand is ${formatType(t)} but f32 is needed`, 'i32 tensors hold indices and labels; compare them (x.lt(y)) to make an f32 mask');
}

function checkAxis(op: string, axis: number, x: TensorType): void {
  if (x.shape.length === 0)
    throw new CompileError(`${op}: the operand is a scalar ${formatType(x)}, which has no axis`, 'reshape it to [1] first, or leave the op out: a scalar is its own result');
  if (!Number.isInteger(axis) || axis < 0 || axis >= x.shape.length)
    throw new CompileError(`${op}: axis ${axis} is not an axis of ${formatType(x)}`, `use an axis in 0..${x.shape.length - 1}`);
}

/** Calls f(base, stride, len) for every line of x along `axis`: the elements base + k·stride, k < len. */
function lines(shape: readonly number[], axis: number, f: (base: number, stride: number, len: number) => void): void {
  const len = shape[axis]!;
  const inner = numel(shape.slice(axis + 1));
  const outer = numel(shape.slice(0, axis));
  for (let o = 0; o < outer; o++) for (let q = 0; q < inner; q++) f(o * len * inner + q, inner, len);
}

/**
 * The index of the first maximum (minimum) along `axis`, a NaN counting as larger (smaller) than
 * every number, so the first NaN's index where a line has one: torch's CPU semantics.
 */
function argEval(x: NDArray, axis: number, outShape: readonly number[], min: boolean): NDArray {
  const out = K.nd(outShape);
  let i = 0;
  lines(x.shape, axis, (base, stride, len) => {
    let at = 0;
    let best = x.data[base]!;
    for (let k = 1; k < len && best === best; k++) {
      const v = x.data[base + k * stride]!;
      if (v !== v || (min ? v < best : v > best)) {
        best = v;
        at = k;
      }
    }
    out.data[i++] = at;
  });
  return out;
}

function argOp(op: 'argmax' | 'argmin'): OpDef<AttrsOf['argmax']> {
  return {
    category: 'index',
    attrs: { axis: 'int', keepDims: 'bool' },
    arity: 1,
    shape: ([x], a) => {
      needF32(op, x!);
      checkAxis(op, a.axis, x!);
      return { dtype: 'i32', shape: reducedShape(x!.shape, [a.axis], a.keepDims) };
    },
    grad: 'none',
    eval: ([x], a, t) => argEval(x!, a.axis, t.shape, op === 'argmin'),
  };
}

/** Running sums along axis, in float64 (from the end with `reverse`). */
function cumsumEval(x: NDArray, axis: number, reverse: boolean): NDArray {
  const out = K.nd(x.shape);
  lines(x.shape, axis, (base, stride, len) => {
    let s = 0;
    for (let j = 0; j < len; j++) {
      const k = reverse ? len - 1 - j : j;
      s += x.data[base + k * stride]!;
      out.data[base + k * stride] = s;
    }
  });
  return out;
}

function flipEval(x: NDArray, axes: readonly number[]): NDArray {
  const out = K.nd(x.shape);
  const st = x.shape.map((_d, i) => numel(x.shape.slice(i + 1)));
  const n = numel(x.shape);
  for (let o = 0; o < n; o++) {
    let src = 0;
    let rest = o;
    x.shape.forEach((d, i) => {
      const c = Math.floor(rest / st[i]!);
      rest -= c * st[i]!;
      src += (axes.includes(i) ? d - 1 - c : c) * st[i]!;
    });
    out.data[o] = x.data[src]!;
  }
  return out;
}

type IndexOps = { readonly [P in 'argmax' | 'argmin' | 'cumsum' | 'flip' | 'arange' | 'cast']: OpDef<AttrsOf[P]> };

export const INDEX_OPS: IndexOps = {
  argmax: argOp('argmax'),
  argmin: argOp('argmin'),
  cumsum: {
    category: 'index',
    attrs: { axis: 'int', reverse: 'flag' },
    arity: 1,
    shape: ([x], a) => {
      needF32('cumsum', x!);
      checkAxis('cumsum', a.axis, x!);
      return { dtype: 'f32', shape: x!.shape };
    },
    // y_k = Σ_{j ≤ k} x_j, so dx_j = Σ_{k ≥ j} dy_k: the cumsum of dy from the other end
    grad: (c) => [() => c.b.cumsum(c.dy, c.attrs.axis, !c.attrs.reverse)],
    eval: ([x], a) => cumsumEval(x!, a.axis, a.reverse === true),
  },
  flip: {
    category: 'layout',
    attrs: { axes: 'ints' },
    arity: 1,
    shape: ([x], a) => {
      const r = x!.shape.length;
      if (!a.axes.every((p, i) => Number.isInteger(p) && p >= 0 && p < r && (i === 0 || p > a.axes[i - 1]!)))
        throw new CompileError(`flip: axes ${fmtShape(a.axes)} are not sorted distinct axes of ${formatType(x!)}`, 'list each axis once, in increasing order');
      for (const p of a.axes)
        if (!isStatic(x!.shape[p]!))
          throw new CompileError(`flip: axis ${p} of ${formatType(x!)} has the symbolic size ${x!.shape[p]}`, 'flip axes whose size is known at build time');
      return { dtype: x!.dtype, shape: x!.shape };
    },
    grad: (c) => [() => c.b.flip(c.dy, c.attrs.axes)],
    eval: ([x], a) => flipEval(x!, a.axes),
  },
  arange: {
    category: 'elementwise',
    attrs: { shape: 'dims' },
    arity: 0,
    shape: (_args, a) => {
      const n: Dim | undefined = a.shape[0];
      if (a.shape.length !== 1 || n === undefined || (typeof n === 'number' && !(Number.isInteger(n) && n >= 1)))
        throw new CompileError(`arange: the size ${fmtShape(a.shape)} is not one positive integer or symbolic dimension`, "pass a size, e.g. g.arange(5), or a symbolic dimension, g.arange('T')");
      return { dtype: 'i32', shape: [n] };
    },
    grad: 'none',
    eval: (_args, _a, t) => K.nd(t.shape, Array.from({ length: t.shape[0]! }, (_x, i) => i)),
  },
  cast: {
    category: 'elementwise',
    attrs: {},
    arity: 1,
    shape: ([x]) => {
      if (x!.dtype !== 'i32') throw new CompileError(`cast: the operand is ${formatType(x!)} but i32 is needed`, 'cast turns i32 indices into f32 values; an f32 tensor is one already');
      return { dtype: 'f32', shape: x!.shape };
    },
    grad: 'none',
    eval: ([x]) => x!,
  },
};
