// Shape arithmetic shared by the shape rules, the interpreter and the emitters.

import type { Dim, Size } from './dims.js';
import { divSize, isStatic, numelSize, size, sizeEq, sizeText, stridesSize } from './dims.js';
import { CompileError } from './errors.js';
import type { Shape, TensorType } from './types.js';
import { formatType } from './types.js';

export function fmtShape(s: Shape): string {
  return `[${s.join(', ')}]`;
}

/** Row-major strides of a concrete shape. */
export function strides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d]!;
  }
  return st;
}

/** NumPy broadcasting of two shapes, or undefined when they are incompatible. */
export function broadcastShapes(a: Shape, b: Shape): Dim[] | undefined {
  const n = Math.max(a.length, b.length);
  const out = new Array<Dim>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function broadcastOrThrow(op: string, a: TensorType, b: TensorType): Dim[] {
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
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const st = strides(shape);
  const off = outShape.length - shape.length;
  return outShape.map((d, i) => {
    const j = i - off;
    if (j < 0) return 0;
    return shape[j] === 1 && d !== 1 ? 0 : st[j]!;
  });
}

/** `broadcastStrides` of shapes that may hold symbols. */
export function broadcastStridesSize(shape: Shape, outShape: Shape): Size[] {
  const st = stridesSize(shape);
  const off = outShape.length - shape.length;
  return outShape.map((d, i) => {
    const j = i - off;
    if (j < 0) return size(0);
    return shape[j] === 1 && d !== 1 ? size(0) : st[j]!;
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

export function reducedShape(shape: Shape, axes: readonly number[], keepDims: boolean): Dim[] {
  const out: Dim[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/**
 * Resolves one -1 in a reshape target. A symbolic dimension stays an axis of its own: the target
 * names every symbol of the source once (or -1 stands for one), and the sizes multiply to the
 * same count.
 */
export function resolveReshape(from: Shape, to: readonly Dim[]): Dim[] {
  const total = numelSize(from);
  const wild = to.filter((d) => d === -1).length;
  if (wild > 1) throw new CompileError(`reshape: only one -1 is allowed, got ${fmtShape(to)}`, 'give all but one dimension explicitly');
  for (const d of to)
    if (typeof d === 'number' && (!Number.isInteger(d) || (d < 0 && d !== -1)))
      throw new CompileError(`reshape: invalid dimension ${d} in ${fmtShape(to)}`, 'dimensions are non-negative integers, or -1 for one inferred dimension');
  const known = numelSize(to.filter((d) => d !== -1));
  const count = (s: Size) => `${sizeText(s)} elements`;
  const out = [...to];
  if (wild === 1) {
    const rest = known.coef === 0 ? undefined : divSize(total, known);
    if (rest === undefined || rest.syms.length > 1 || (rest.syms.length === 1 && rest.coef !== 1))
      throw new CompileError(
        `reshape: cannot reshape ${fmtShape(from)} (${count(total)}) to ${fmtShape(to)}`,
        isStatic(total) && isStatic(known)
          ? `the known dimensions multiply to ${sizeText(known)}, which does not divide ${sizeText(total)}`
          : rest
            ? `-1 would stand for ${sizeText(rest)}, but a symbolic dimension cannot be merged with other axes: keep it an axis of its own, e.g. ${fmtShape(to.flatMap((d) => (d === -1 ? [...rest.syms, -1] : [d])))}; batchNorm and crossEntropy take a [${rest.syms[0]}, T, C] tensor as it is`
            : 'a symbolic dimension stays an axis of its own: name it in the target shape, or let -1 stand for it',
      );
    out[out.indexOf(-1)] = rest.syms.length ? rest.syms[0]! : rest.coef;
  } else if (!sizeEq(known, total))
    throw new CompileError(
      `reshape: cannot reshape ${fmtShape(from)} (${count(total)}) to ${fmtShape(to)} (${count(known)})`,
      isStatic(total) && isStatic(known)
        ? 'the element count must stay the same; use -1 for one dimension to have it inferred'
        : 'the element count must stay the same, with each symbolic dimension an axis of its own',
    );
  return out;
}
