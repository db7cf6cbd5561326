// The wasm module's kernels of the routines with an algorithm of their own that are not matmuls,
// convolutions, pooling or row softmaxes: the index ops and the losses over them (issue #30: no
// JS loop in a wasm step). Each is a function of the static module, written from the routine of
// the kernel form (codegen/kernel/lower.ts: its operands as views of arrays in the memory):
//
// - gather: each index's table row copied, four floats at a time; scatter_add: zeros, then each
//   source row added into its index's row, four at a time, in the order of the indices (the flat
//   module's order: the same sums);
// - pick: one element per row; xent: per row the maximum, Σ exp(x − max) (the exponentials the
//   softmax kernel's, four at a time, summed in f64), then the picked logit minus max + log Σ,
//   the mean in f64 as the flat module's;
// - argmax, argmin: the first maximum (minimum) of each line, a NaN winning and ending the line
//   (torch's semantics, the flat module's); argmax_mask: 1 at the first maximum of each reduced
//   slice (row-major; over adjacent axes as lines, four at once); cumsum: running sums in f64,
//   from either end;
// - softmax and log_softmax along any axis (the row kernel of softmax.ts takes the last axis);
//   max_pool_pick: v at the first maximum of each window of x (pool.ts has the other pooling ops).
//
// An index out of [0, bound) (the staged inputs are checked before, codegen/module.ts, so only
// computed indices could be) reads NaN and adds nothing, as the flat module's typed arrays do, and
// never touches memory outside its array. The kernels over rows or lines split over threads by
// rows (max_pool_pick by planes, argmax_mask over adjacent axes by whole planes of lines, a softmax
// along an axis with elements after it by planes or blocks of four columns, scatter_add of rows of
// 8 or more floats by blocks of columns, since rows repeat); xent (one sum), a scatter_add of
// narrower rows and argmax_mask over axes that are not adjacent run whole. The kernels over lines along an axis are in codegen/wasm/index-lines.ts, the softmax four
// adjacent lines at a time in codegen/wasm/softmax-columns.ts.

import type { Routine, View } from '../kernel/form.js';
import type { Local } from './encode.js';
import { Body } from './encode.js';
import { f32x4Exp } from './kernel-alu.js';
import { softmaxColumns } from './softmax-columns.js';
import { softmaxRows } from './softmax.js';
import type { Split } from './threads.js';
import type { I32, IndexKernel, Lines } from './index-lines.js';
import { argBest, around, bumpBy, copyFloats, cumsum, f64Log, forRange, hoisted, minus, numel, op, product, push, rangeOf, repeatN, rows, text, times, work, zeroFloats } from './index-lines.js';

export type { I32, IndexKernel, Lines } from './index-lines.js';
export { argBest, cumsum } from './index-lines.js';

/** The ops this file has kernels for. */
const OPS = new Set(['gather', 'scatter_add', 'pick', 'xent', 'argmax', 'argmin', 'argmax_mask', 'cumsum', 'softmax', 'log_softmax', 'max_pool_pick']);

/** The kernel of a routine, or undefined where its op or its operands' layout has none here. */
export function indexKernel(r: Routine, at: (arg: string) => number | undefined): IndexKernel | undefined {
  if (!OPS.has(r.op) || r.epilogue) return undefined;
  const views = [...r.inputs, r.output];
  if (!views.every(dense)) return undefined;
  const addrs = views.map((v) => {
    const a = at(v.arg);
    return a === undefined ? undefined : a + 4 * v.offset.coef;
  });
  if (addrs.some((a) => a === undefined)) return undefined;
  const [a, b, c] = addrs as number[];
  const dims = (v: View) => v.shape as number[];
  switch (r.op) {
    case 'gather':
      return gather(dims(r.inputs[0]!), numel(dims(r.inputs[1]!)), a!, b!, c!);
    case 'scatter_add':
      return scatterAdd(dims(r.output), numel(dims(r.inputs[0]!)), a!, b!, c!);
    case 'pick':
      return pick(dims(r.inputs[0]!) as [number, number], a!, b!, c!);
    case 'xent':
      return xent(dims(r.inputs[0]!) as [number, number], a!, b!, c!);
    case 'argmax':
    case 'argmin':
      return argBest(r.op, around(dims(r.inputs[0]!), r.attrs.axis), a!, b!);
    case 'cumsum':
      return cumsum(around(dims(r.inputs[0]!), r.attrs.axis), !!r.attrs.reverse, a!, b!);
    case 'softmax':
    case 'log_softmax': {
      const x = dims(r.inputs[0]!);
      const axis = r.attrs.axis as number;
      const inner = numel(x.slice(axis + 1));
      // along an axis with elements after it: four adjacent lines at a time (softmax-columns.ts)
      if (inner > 1) return softmaxColumns(numel(x.slice(0, axis)), x[axis]!, inner, r.op === 'log_softmax', a!, b!, true);
      return softmaxRows(numel(x.slice(0, axis)), x[axis]!, r.op === 'log_softmax', a!, b!, true);
    }
    case 'argmax_mask': {
      const lines = maskLines(dims(r.inputs[0]!), r.attrs.axes);
      return lines ? argBest('argmax', lines, a!, b!, true) : argmaxMask(dims(r.inputs[0]!), r.attrs.axes, a!, b!);
    }
    case 'max_pool_pick': {
      const [N, C, H, W] = dims(r.inputs[0]!) as [number, number, number, number];
      const [, , Ho, Wo] = dims(r.output) as [number, number, number, number];
      return maxPoolPick(N * C, [H, W], [Ho, Wo], r.attrs, a!, b!, c!);
    }
    default:
      return undefined;
  }
}

/** A view of static sizes whose elements are its array's, row-major from its offset. */
function dense(v: View): boolean {
  if (v.offset.syms.length || v.shape.some((d) => typeof d !== 'number')) return false;
  let s = 1;
  for (let d = v.shape.length - 1; d >= 0; d--) {
    const n = v.shape[d] as number;
    if (n > 1 && (v.strides[d]!.syms.length || v.strides[d]!.coef !== s)) return false;
    s *= n;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// gather, scatter_add, pick

/** out[i, :] = table[idx[i], :] (NaN for an index out of range). */
export function gather(table: readonly number[], n: I32, tAt: I32, iAt: I32, oAt: I32): IndexKernel {
  const V = table[0]!;
  const R = numel(table.slice(1));
  const split = rows(n, typeof n === 'number' ? n * R : 0);
  const f = new Body(split ? 2 : 0);
  const [lo, hi] = rangeOf(f, n);
  const [i, r, src, dst, k] = ['i32', 'i32', 'i32', 'i32', 'i32'].map(() => f.local('i32')) as Local[];
  forRange(f, i, lo, hi, () => {
    push(f.get(i).i32(4).i32Mul(), iAt).i32Add();
    op.i32Load(f).set(r);
    push(f.get(i).i32(4 * R).i32Mul(), oAt).i32Add().set(dst);
    f.get(r).i32(V);
    op.i32LtU(f);
    op.ifElse(
      f,
      () => {
        push(f.get(r!).i32(4 * R).i32Mul(), tAt).i32Add().set(src!);
        copyFloats(f, R, src, dst!, k!);
      },
      () => copyFloats(f, R, undefined, dst!, k!),
    );
  });
  return { body: f, split, what: `gather of ${text(n)} rows of ${R} from a table of ${V}, four floats at a time` };
}

/**
 * out = zeros(shape), then out[idx[i], :] += src[i, :] in the order of i (an index out of range
 * adds nothing): a range of columns [c0, c1), all rows; threads split the columns in blocks of
 * whole vectors, each column's sums the same as in one pass.
 */
export function scatterAdd(shape: readonly number[], n: I32, iAt: I32, sAt: I32, oAt: I32): IndexKernel {
  const V = shape[0]!;
  const R = numel(shape.slice(1));
  const split: Split | undefined = R >= 8 && typeof n === 'number' ? { extent: R, align: 4, work: n * R } : undefined;
  const f = new Body(split ? 2 : 0);
  const [c0, c1] = rangeOf(f, R);
  const [i, r, src, dst, k] = Array.from({ length: 5 }, () => f.local('i32'));
  // the span's floats: four at a time while four are left, then one by one
  const span = (add: boolean) => {
    f.get(c1).get(c0).i32Sub().set(k);
    f.loopUntil(
      () => f.get(k).i32(4).i32LtS(),
      () => {
        f.get(dst);
        if (add) f.get(dst).v128Load(0).get(src).v128Load(0).f32x4('add');
        else f.f32x4Const(0);
        f.v128Store(0).bump(dst, 16).bump(src, 16).bump(k, -4);
      },
    );
    f.loopUntil(
      () => f.get(k).i32Eqz(),
      () => {
        f.get(dst);
        if (add) f.get(dst).f32Load(0).get(src).f32Load(0).f32Add();
        else f.f32Const(0);
        f.f32Store(0).bump(dst, 4).bump(src, 4).bump(k, -1);
      },
    );
  };
  /** The byte address of element c0 of row `row` (a local) of the array at `at`, into `into`. */
  const rowAt = (row: Local, at: I32, into: Local) => push(f.get(row).i32(R).i32Mul().get(c0).i32Add().i32(4).i32Mul(), at).i32Add().set(into);
  // zeros
  const [v0, v1] = [f.local('i32'), f.local('i32')];
  f.assign(v0, 0).assign(v1, V);
  forRange(f, r, v0, v1, () => {
    rowAt(r, oAt, dst);
    span(false);
  });
  push(f, n).set(v1);
  forRange(f, i, v0, v1, () => {
    push(f.get(i).i32(4).i32Mul(), iAt).i32Add();
    op.i32Load(f).set(r);
    f.get(r).i32(V);
    op.i32LtU(f);
    f.when(
      () => undefined,
      () => {
        rowAt(r, oAt, dst);
        rowAt(i, sAt, src);
        span(true);
      },
    );
  });
  return { body: f, split, what: `scatter_add of ${text(n)} rows of ${R} into ${V} rows, four floats at a time${split ? ', threads splitting the columns' : ''}` };
}

/** y[i] = x[i, idx[i]] (NaN for an index out of range). */
export function pick(x: readonly [I32, number], xAt: I32, iAt: I32, yAt: I32): IndexKernel {
  const [n, c] = [x[0]!, x[1]!];
  const split = rows(n, typeof n === 'number' ? n : 0);
  const f = new Body(split ? 2 : 0);
  const [lo, hi] = rangeOf(f, n);
  const [i, r] = [f.local('i32'), f.local('i32')];
  forRange(f, i, lo, hi, () => {
    push(f.get(i).i32(4).i32Mul(), iAt).i32Add();
    op.i32Load(f).set(r);
    push(f.get(i).i32(4).i32Mul(), yAt).i32Add();
    f.get(r).i32(c);
    op.i32LtU(f);
    op.ifElse(
      f,
      () => {
        push(f.get(i).i32(c).i32Mul().get(r).i32Add().i32(4).i32Mul(), xAt).i32Add().f32Load(0);
      },
      () => f.f32Const(NaN),
      'f32',
    );
    f.f32Store(0);
  });
  return { body: f, split, what: `pick of one of ${c} in each of ${text(n)} rows` };
}

// ---------------------------------------------------------------------------------------------
// xent, argmax_mask

/** −mean over rows of (x[i, t_i] − max_i − ln Σ_j exp(x[i, j] − max_i)): rows four floats at a time, sums in f64. */
export function xent(x: readonly [I32, number], xAt: I32, tAt: I32, yAt: I32): IndexKernel {
  const [n, C] = [x[0]!, x[1]!];
  const f = new Body();
  const full = Math.floor(C / 4);
  const rest = C % 4;
  const [i, k, px, r] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
  const [vmax, acc, vv] = [f.local('v128'), f.local('v128'), f.local('v128')];
  const max = f.local('f32');
  const [total, sum] = [f.local('f64'), f.local('f64')];
  const tmp = Array.from({ length: 5 }, () => f.local('v128'));
  const t = { s: f.local('f64'), z: f.local('f64'), z2: f.local('f64'), p: f.local('f64'), e: f.local('i32') };
  /** The vector at px with the lanes from `lanes` on replaced by `fill`. */
  const load = (lanes: number, fill: number) => {
    f.get(px).v128Load(0);
    if (lanes === 4) return;
    f.set(vv).get(vv).f32x4Const(fill);
    f.i32x4Lanes([0, 1, 2, 3].map((l) => (l < lanes ? -1 : 0)) as [number, number, number, number]).v128Bitselect();
  };
  const pass = (rowStart: () => void, body: (lanes: number) => void) => {
    rowStart();
    if (full > 0)
      f.repeat(k, full, () => {
        body(4);
        f.bump(px, 16);
      });
    if (rest) body(rest);
  };
  const rowAt = () => push(f.get(i).i32(4 * C).i32Mul(), xAt).i32Add().set(px);
  op.f64Const(f, 0).set(total);
  f.assign(i, 0);
  f.loopUntil(
    () => push(f.get(i), n).i32GeS(),
    () => {
      f.f32x4Const(-Infinity).set(vmax);
      pass(rowAt, (lanes) => {
        f.get(vmax);
        load(lanes, -Infinity);
        f.f32x4('pmax').set(vmax);
      });
      f.get(vmax).f32x4ExtractLane(0);
      for (let l = 1; l < 4; l++) f.get(vmax).f32x4ExtractLane(l).f32Max();
      f.set(max);
      // Σ exp(x − max): the exponentials' lanes added into two f64x2 totals
      f.f32x4Const(0).set(acc);
      f.f32x4Const(0).set(vmax); // the high lanes' totals
      pass(rowAt, (lanes) => {
        load(lanes, -Infinity);
        f.get(max).f32x4Splat().f32x4('sub');
        f32x4Exp(f, tmp);
        f.set(vv);
        f.get(acc).get(vv).f64x2PromoteLowF32x4().f64x2Add().set(acc);
        f.get(vmax).get(vv).get(vv).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().set(vmax);
      });
      f.get(acc).f64x2ExtractLane(0).get(acc).f64x2ExtractLane(1).f64Add();
      f.get(vmax).f64x2ExtractLane(0).get(vmax).f64x2ExtractLane(1).f64Add().f64Add().set(sum);
      // total += x[i, t] − max − ln Σ (NaN for a target out of range)
      push(f.get(i).i32(4).i32Mul(), tAt).i32Add();
      op.i32Load(f).set(r);
      f.get(total);
      f.get(r).i32(C);
      op.i32LtU(f);
      op.ifElse(
        f,
        () => {
          push(f.get(i).i32(C).i32Mul().get(r).i32Add().i32(4).i32Mul(), xAt).i32Add().f32Load(0);
        },
        () => f.f32Const(NaN),
        'f32',
      );
      op.f64PromoteF32(f);
      f.get(max);
      op.f64PromoteF32(f);
      op.f64Sub(f);
      f.get(sum);
      f64Log(f, t);
      op.f64Sub(f);
      f.f64Add().set(total);
      f.bump(i, 1);
    },
  );
  push(f, yAt);
  op.f64Const(f, 0);
  f.get(total);
  op.f64Sub(f);
  if (typeof n === 'number') op.f64Const(f, n);
  else push(f, n).raw(0xb7); // f64.convert_i32_s
  op.f64Div(f);
  f.f32DemoteF64().f32Store(0);
  return { body: f, what: `cross-entropy of ${text(n)} rows of ${C} logits, four at a time, summed in f64` };
}

/**
 * 1 at the first maximum (row-major over the reduced axes) of each slice, 0 elsewhere: nested
 * loops over the kept axes, then over the reduced ones. Any axis may have a run-time extent (the
 * symbolic module).
 */
export function argmaxMask(shape: readonly I32[], axes: readonly number[], xAt: I32, yAt: I32): IndexKernel {
  const f = new Body();
  const dim = (k: number) => shape[k]!;
  const all = shape.reduce<I32>((p, d) => product(p, d), 1);
  const strides = shape.map((_d, k) => hoisted(f, times(shape.slice(k + 1).reduce<I32>((p, d) => product(p, d), 1), 4)));
  const many = (d: I32) => typeof d !== 'number' || d > 1;
  const kept = shape.map((_d, k) => k).filter((k) => !axes.includes(k) && many(dim(k)));
  const red = axes.filter((k) => many(dim(k)));
  const [best, v] = [f.local('f32'), f.local('f32')];
  const [at, z, kz] = [f.local('i32'), f.local('i32'), f.local('i32')];
  // zeros
  push(f, yAt).set(z);
  if (typeof all === 'number') copyFloats(f, all, undefined, z, kz, 'add');
  else {
    // four at a time while four are left, then one by one
    push(f, all).set(kz);
    zeroFloats(f, z, kz);
  }
  const nest = (levels: readonly number[], from: Local, body: (p: Local) => void) => {
    if (levels.length === 0) return body(from);
    const [p, c] = [f.local('i32'), f.local('i32')];
    f.get(from).set(p);
    repeatN(f, c, dim(levels[0]!), () => {
      nest(levels.slice(1), p, body);
      bumpBy(f, p, strides[levels[0]!]!);
    });
  };
  const start = f.local('i32');
  push(f, xAt).set(start);
  nest(kept, start, (base) => {
    f.get(base).f32Load(0).set(best);
    f.get(base).set(at);
    nest(red, base, (p) => {
      f.when(
        () => f.get(p).f32Load(0).tee(v).get(best).f32Gt(),
        () => f.get(v).set(best).get(p).set(at),
      );
    });
    minus(f.get(at), yAt, xAt).i32Add().f32Const(1).f32Store(0);
  });
  return { body: f, what: `argmax_mask of ${shape.map(text).join('×')} over axes ${axes.join(',')}` };
}

/**
 * The reduced axes of argmax_mask as lines along one axis, where they are adjacent (axes of size 1
 * between them aside): row-major over them is along the line. Undefined where they are not or
 * none has more than one element.
 */
export function maskLines(shape: readonly number[], axes: readonly number[]): Lines | undefined {
  const red = axes.filter((k) => shape[k]! > 1);
  if (!red.length) return undefined;
  const [a, b] = [Math.min(...red), Math.max(...red)];
  for (let k = a; k <= b; k++) if (!axes.includes(k) && shape[k]! > 1) return undefined;
  const inner = numel(shape.slice(b + 1));
  const len = numel(shape.slice(a, b + 1));
  return { lines: numel(shape.slice(0, a)) * inner, len, inner };
}

/**
 * max_pool_pick: y = v at the first maximum (row-major) of each window of x, the window clipped to
 * the plane as the flat module's; a range of planes.
 */
export function maxPoolPick(planes: I32, xs: readonly [I32, I32], ys: readonly [I32, I32], a: { kernel: readonly number[]; stride: readonly number[]; padding: readonly number[] }, xAt: I32, vAt: I32, yAt: I32): IndexKernel {
  const [H, W] = xs;
  const [Ho, Wo] = ys;
  const [kh, kw] = a.kernel as [number, number];
  const [sh, sw] = a.stride as [number, number];
  const [ph, pw] = a.padding as [number, number];
  const split = rows(planes, work(planes, product(product(Ho, Wo), kh * kw)));
  const f = new Body(split ? 2 : 0);
  const [lo, hi] = rangeOf(f, planes);
  const [n, i, j, h0, h1, w0, w1, pp, q, qe, at, xp, yp] = Array.from({ length: 13 }, () => f.local('i32'));
  const [best, v] = [f.local('f32'), f.local('f32')];
  /** max(0, k·s + d), or min(n, k·s + d), of the local k. */
  const clip = (k: Local, s: number, d: number, bound?: I32) => {
    f.get(k).i32(s).i32Mul().i32(d).i32Add().set(q);
    if (bound === undefined) f.get(q).i32(0).get(q).i32(0).i32GtS().select();
    else {
      push(f.get(q), bound).get(q);
      push(f, bound).i32LtS().select();
    }
  };
  /** for (k = from; k < to; k++) body() over locals */
  const loop = (k: Local, from: Local | number, to: Local | I32, body: () => void) => {
    if (typeof from === 'number') f.assign(k, from);
    else f.get(from).set(k);
    f.loopUntil(
      () => (typeof to === 'object' && 'index' in to ? f.get(k).get(to) : push(f.get(k), to)).i32GeS(),
      () => {
        body();
        f.bump(k, 1);
      },
    );
  };
  forRange(f, n, lo, hi, () => {
    push(f.get(n), times(product(H, W), 4)).i32Mul().set(xp);
    push(push(f.get(n), times(product(Ho, Wo), 4)).i32Mul(), yAt).i32Add().set(yp);
    loop(i, 0, Ho, () => {
      clip(i, sh, -ph);
      f.set(h0);
      clip(i, sh, kh - ph, H);
      f.set(h1);
      loop(j, 0, Wo, () => {
        clip(j, sw, -pw);
        f.set(w0);
        clip(j, sw, kw - pw, W);
        f.set(w1);
        f.f32Const(-Infinity).set(best).i32(-1).set(at);
        loop(pp, h0, h1, () => {
          // q walks the row's taps (byte offsets in the plane), up to qe
          push(f.get(pp), W).i32Mul().get(w0).i32Add().i32(4).i32Mul().get(xp).i32Add().set(q);
          push(f.get(pp), W).i32Mul().get(w1).i32Add().i32(4).i32Mul().get(xp).i32Add().set(qe);
          f.loopUntil(
            () => f.get(q).get(qe).i32GeS(),
            () => {
              f.when(
                () => {
                  f.get(at).i32(0).i32LtS();
                  push(f.get(q), xAt).i32Add().f32Load(0).tee(v).get(best).f32Gt();
                  op.i32Or(f);
                },
                () => f.get(v).set(best).get(q).set(at),
              );
              f.bump(q, 4);
            },
          );
        });
        push(f.get(yp).get(at), vAt).i32Add().f32Load(0).f32Store(0);
        f.bump(yp, 4);
      });
    });
  });
  return { body: f, split, what: `max_pool_pick over ${text(planes)} planes of ${text(H)}×${text(W)}, ${kh}×${kw} windows` };
}