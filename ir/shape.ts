// Shape arithmetic shared by the shape rules, the interpreter and the emitters.

import { CompileError } from './errors.js';
import type { Shape, TensorType } from './types.js';
import { formatType, numel } from './types.js';

export function fmtShape(s: Shape): string {
  return `[${s.join(', ')}]`;
}

/** Row-major strides. */
export function strides(shape: Shape): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d]!;
  }
  return st;
}

/** NumPy broadcasting of two shapes, or undefined when they are incompatible. */
export function broadcastShapes(a: Shape, b: Shape): number[] | undefined {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function broadcastOrThrow(op: string, a: TensorType, b: TensorType): number[] {
  const s = broadcastShapes(a.shape, b.shape);
  if (!s) {
    // the first clash, counting from the right as broadcasting aligns them
    let k = 1;
    while (a.shape.at(-k) === b.shape.at(-k) || a.shape.at(-k) === 1 || b.shape.at(-k) === 1) k++;
    throw new CompileError(
      `${op}: cannot broadcast ${formatType(a)} with ${formatType(b)}: aligned from the right, ` +
        `${a.shape.at(-k)} and ${b.shape.at(-k)} differ and neither is 1`,
      'broadcasting aligns shapes from the right and needs each pair of dimensions to be equal or 1; ' +
        'reshape an operand (e.g. keep a size-1 axis with keepDims) so that they line up',
    );
  }
  return s;
}

/**
 * Strides of `shape` seen as broadcast to `outShape`: 0 on broadcast axes. Used to index an
 * operand inside a loop nest over the output.
 */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const st = strides(shape);
  const off = outShape.length - shape.length;
  return outShape.map((d, i) => {
    const j = i - off;
    if (j < 0) return 0;
    return shape[j] === 1 && d !== 1 ? 0 : st[j]!;
  });
}

/** Normalises an axis argument (number, array or undefined = all) against a rank. */
export function normalizeAxes(op: string, axis: number | readonly number[] | undefined, rank: number): number[] {
  const list = axis === undefined ? [...Array(rank).keys()] : typeof axis === 'number' ? [axis] : [...axis];
  const out: number[] = [];
  for (const a of list) {
    if (!Number.isInteger(a) || a < -rank || a >= rank)
      throw new CompileError(
        `${op}: axis ${a} is out of range for a tensor of rank ${rank}`,
        rank === 0
          ? 'a scalar has no axes; omit the axis argument'
          : `use an axis in ${-rank}..${rank - 1} (negative axes count from the end)`,
      );
    const n = a < 0 ? a + rank : a;
    if (out.includes(n)) throw new CompileError(`${op}: axis ${a} is listed twice`, 'list each axis once');
    out.push(n);
  }
  return out.sort((x, y) => x - y);
}

export function reducedShape(shape: Shape, axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/** Resolves one -1 in a reshape target. */
export function resolveReshape(from: Shape, to: readonly number[]): number[] {
  const total = numel(from);
  const wild = to.filter((d) => d === -1).length;
  if (wild > 1) throw new CompileError(`reshape: only one -1 is allowed, got ${fmtShape(to)}`, 'give all but one dimension explicitly');
  for (const d of to)
    if (!Number.isInteger(d) || (d < 0 && d !== -1))
      throw new CompileError(`reshape: invalid dimension ${d} in ${fmtShape(to)}`, 'dimensions are non-negative integers, or -1 for one inferred dimension');
  const known = to.reduce((p, d) => (d === -1 ? p : p * d), 1);
  const out = [...to];
  if (wild === 1) {
    if (known === 0 || total % known !== 0)
      throw new CompileError(
        `reshape: cannot reshape ${fmtShape(from)} (${total} elements) to ${fmtShape(to)}`,
        `the known dimensions multiply to ${known}, which does not divide ${total}`,
      );
    out[out.indexOf(-1)] = total / known;
  } else if (known !== total)
    throw new CompileError(
      `reshape: cannot reshape ${fmtShape(from)} (${total} elements) to ${fmtShape(to)} (${known} elements)`,
      'the element count must stay the same; use -1 for one dimension to have it inferred',
    );
  return out;
}
