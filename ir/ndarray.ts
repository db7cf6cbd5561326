// Float64 n-d arrays and the reference kernels of the interpreter. Clarity over speed: these
// are the oracle the generated code is tested against.

import { broadcastStrides, strides } from './shape.js';
import { numel } from './types.js';

/** The interpreter works on concrete shapes: symbols are bound before it sees them. */
type Shape = readonly number[];

export interface NDArray {
  readonly shape: Shape;
  readonly data: Float64Array;
}

export function nd(shape: Shape, data?: ArrayLike<number>): NDArray {
  const n = numel(shape);
  const d = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new Error(`internal: ${data.length} values for shape [${shape}]`);
    d.set(data);
  }
  return { shape: [...shape], data: d };
}

/** Calls f(outIndex, operandOffsets...) over every element of outShape, row-major. */
function forEachBroadcast(outShape: Shape, operands: readonly Shape[], f: (o: number, offs: number[]) => void): void {
  const st = operands.map((s) => broadcastStrides(s, outShape));
  const rank = outShape.length;
  const idx = new Array<number>(rank).fill(0);
  const offs = operands.map(() => 0);
  const n = numel(outShape);
  for (let o = 0; o < n; o++) {
    f(o, offs);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      for (let k = 0; k < offs.length; k++) offs[k]! += st[k]![d]!;
      if (idx[d]! < outShape[d]!) break;
      for (let k = 0; k < offs.length; k++) offs[k]! -= st[k]![d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
}

export function map(outShape: Shape, args: readonly NDArray[], f: (...xs: number[]) => number): NDArray {
  const out = nd(outShape);
  const shapes = args.map((a) => a.shape);
  const [a, b] = args.map((x) => x.data);
  // unary and binary ops (nearly all) without spreading an argument array per element
  if (args.length === 1) forEachBroadcast(outShape, shapes, (o, offs) => (out.data[o] = f(a![offs[0]!]!)));
  else if (args.length === 2) forEachBroadcast(outShape, shapes, (o, offs) => (out.data[o] = f(a![offs[0]!]!, b![offs[1]!]!)));
  else {
    const xs = new Array<number>(args.length);
    forEachBroadcast(outShape, shapes, (o, offs) => {
      for (let k = 0; k < args.length; k++) xs[k] = args[k]!.data[offs[k]!]!;
      out.data[o] = f(...xs);
    });
  }
  return out;
}

/** Reduces `axes` of x with (init, step); the result has shape outShape (keepDims or not). */
export function reduce(x: NDArray, axes: readonly number[], outShape: Shape, init: number, step: (acc: number, v: number) => number): NDArray {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = nd(outShape);
  out.data.fill(init);
  forEachBroadcast(x.shape, [kept], (o, [ko]) => {
    out.data[ko!] = step(out.data[ko!]!, x.data[o]!);
  });
  return out;
}

/** 1 at the first maximal element (row-major) of each reduced slice, 0 elsewhere. */
export function argmaxMask(x: NDArray, axes: readonly number[]): NDArray {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const best = new Float64Array(numel(kept)).fill(-Infinity);
  const at = new Float64Array(best.length).fill(-1);
  forEachBroadcast(x.shape, [kept], (o, [ko]) => {
    const v = x.data[o]!;
    if (v > best[ko!]! || at[ko!] === -1) {
      best[ko!] = v;
      at[ko!] = o;
    }
  });
  const out = nd(x.shape);
  for (const o of at) out.data[o] = 1;
  return out;
}

export function matmul(a: NDArray, b: NDArray, transA: boolean, transB: boolean, outShape: Shape): NDArray {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = outShape[outShape.length - 2]!;
  const n = outShape[outShape.length - 1]!;
  const k = transA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const batch = numel(outShape.slice(0, -2));
  const out = nd(outShape);
  const aMat = a.shape[ra - 2]! * a.shape[ra - 1]!;
  const bMat = b.shape[rb - 2]! * b.shape[rb - 1]!;
  const aBatched = ra > 2;
  const bBatched = rb > 2;
  // the strides of A[i, p] in its (possibly transposed) layout
  const [ai, ap] = transA ? [1, m] : [k, 1];
  const A = a.data;
  const B = b.data;
  for (let t = 0; t < batch; t++) {
    const ao = aBatched ? t * aMat : 0;
    const bo = bBatched ? t * bMat : 0;
    const C = out.data.subarray(t * m * n, (t + 1) * m * n);
    if (transB)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += A[ao + i * ai + p * ap]! * B[bo + j * k + p]!;
          C[i * n + j] = s;
        }
    // B's rows are contiguous: add a[i, p] · B[p, :] into C[i, :] (each sum still in order of p)
    else
      for (let i = 0; i < m; i++)
        for (let p = 0; p < k; p++) {
          const av = A[ao + i * ai + p * ap]!;
          for (let j = 0; j < n; j++) C[i * n + j] += av * B[bo + p * n + j]!;
        }
  }
  return out;
}

export function transpose(x: NDArray, perm: readonly number[]): NDArray {
  const outShape = perm.map((p) => x.shape[p]!);
  const st = strides(x.shape);
  const permSt = perm.map((p) => st[p]!);
  const out = nd(outShape);
  const rank = outShape.length;
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.data.length; o++) {
    let off = 0;
    for (let d = 0; d < rank; d++) off += idx[d]! * permSt[d]!;
    out.data[o] = x.data[off]!;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < outShape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Copies the box `starts`/`sizes` of x. */
export function slice(x: NDArray, starts: readonly number[], sizes: readonly number[]): NDArray {
  const out = nd(sizes);
  const st = strides(x.shape);
  const base = starts.reduce((s, v, d) => s + v * st[d]!, 0);
  forEachBroadcast(sizes, [], (o) => {
    let rem = o;
    let off = base;
    for (let d = sizes.length - 1; d >= 0; d--) {
      off += (rem % sizes[d]!) * st[d]!;
      rem = Math.floor(rem / sizes[d]!);
    }
    out.data[o] = x.data[off]!;
  });
  return out;
}

/** Places x at offset `starts` inside zeros of shape outShape (the adjoint of slice). */
export function pad(x: NDArray, starts: readonly number[], outShape: Shape): NDArray {
  const out = nd(outShape);
  const st = strides(outShape);
  const base = starts.reduce((s, v, d) => s + v * st[d]!, 0);
  const xs = x.shape;
  for (let o = 0; o < x.data.length; o++) {
    let rem = o;
    let off = base;
    for (let d = xs.length - 1; d >= 0; d--) {
      off += (rem % xs[d]!) * st[d]!;
      rem = Math.floor(rem / xs[d]!);
    }
    out.data[off] = x.data[o]!;
  }
  return out;
}
