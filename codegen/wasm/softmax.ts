// A WebAssembly SIMD kernel for softmax over the last axis of an [M,N] array (attention's rows,
// a classifier's probabilities). Per row: the maximum; exp(x − max), stored and summed; each
// element times 1 / sum. Four columns at a time; in the last vector of a ragged row the lanes
// past N are masked (−∞ for the maximum, 0 for the sum) and the stores go lane by lane. exp is
// the steps' Cephes approximation; the sum is accumulated in f32, in a row of more than
// SOFTMAX_BLOCK vectors into f64 totals after every SOFTMAX_BLOCK vectors (the flat module's in f64).

import { Body } from './encode.js';
import type { Local } from './encode.js';
import { f32x4Exp } from './steps.js';

/**
 * A number, or (the symbolic module: codegen/wasm/symbolic-forms.ts) code that pushes its run-time
 * value (codegen/wasm/index-kernels.ts's I32).
 */
type I32 = number | { readonly push: (f: Body) => void; readonly text: string };

export interface SoftmaxKernel {
  readonly M: number;
  readonly N: number;
  /** Byte addresses of the input and of the output, both rows of N floats. */
  readonly x: number;
  readonly out: number;
}

/** A softmax kernel whose rows and addresses may be run-time values (a whole body only, not a ranged one). */
export interface RtSoftmaxKernel {
  readonly M: I32;
  readonly N: number;
  readonly x: I32;
  readonly out: I32;
}

type Lanes = [number, number, number, number];

/** The vectors of a row whose exponentials the sum adds in f32 before adding them into its f64 totals. */
export const SOFTMAX_BLOCK = 64;

/** With `ranged`, a function of two arguments that computes the rows [start, end): threads' row blocks. */
export function softmaxBody(k: SoftmaxKernel | RtSoftmaxKernel, opts: { ranged?: boolean } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  const { M, N } = k;
  if ((typeof M === 'number' && M === 0) || N === 0) return f;
  const push = (v: I32) => (typeof v === 'number' ? f.i32(v) : (v.push(f), f));
  const full = Math.floor(N / 4);
  const rest = N % 4;
  const [rows, vecs, rowX, rowO, px, po] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
  const [max, sum, v] = [f.local('v128'), f.local('v128'), f.local('v128')];
  const tmp = Array.from({ length: 5 }, () => f.local('v128'));

  /** The vector on the stack (kept in v) with its lanes from `lanes` on replaced by `fill`. */
  const masked = (lanes: number, fill: number) => {
    if (lanes === 4) return;
    f.set(v).get(v).f32x4Const(fill);
    f.i32x4Lanes([0, 1, 2, 3].map((l) => (l < lanes ? -1 : 0)) as Lanes).v128Bitselect();
  };
  /** Stores v at po: whole, or its first `lanes` lanes. */
  const store = (lanes: number) => {
    if (lanes === 4) f.get(po).get(v).v128Store(0);
    else for (let l = 0; l < lanes; l++) f.get(po).get(v).v128Store32Lane(4 * l, l);
  };
  // a row of more than SOFTMAX_BLOCK vectors: the sum's vector added into two f64x2 totals after every SOFTMAX_BLOCK vectors
  const blocked = full > SOFTMAX_BLOCK;
  const [lo, hi, blocks] = blocked ? [f.local('v128'), f.local('v128'), f.local('i32')] : [];
  const flush = () => {
    f.get(lo!).get(sum).f64x2PromoteLowF32x4().f64x2Add().set(lo!);
    f.get(hi!).get(sum).get(sum).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().set(hi!);
    f.f32x4Const(0).set(sum);
  };
  /** One pass over the row: body(lanes) with px and po at each vector; with `flushed`, the sum's blocks flushed. */
  const pass = (body: (lanes: number) => void, flushed = false) => {
    f.get(rowX).set(px).get(rowO).set(po);
    const vectors = (count: number) =>
      f.repeat(vecs, count, () => {
        body(4);
        f.bump(px, 16).bump(po, 16);
      });
    if (flushed && blocked) {
      f.f32x4Const(0).set(lo!).f32x4Const(0).set(hi!);
      f.repeat(blocks!, Math.floor(full / SOFTMAX_BLOCK), () => {
        vectors(SOFTMAX_BLOCK);
        flush();
      });
      if (full % SOFTMAX_BLOCK) vectors(full % SOFTMAX_BLOCK);
    } else if (full > 0) vectors(full);
    if (rest) body(rest);
    if (flushed && blocked) flush();
  };
  /** The four lanes of a vector combined by op, splatted back to four lanes. */
  const across = (x: Local, op: 'f32Max' | 'f32Add') => {
    f.get(x).f32x4ExtractLane(0);
    for (let l = 1; l < 4; l++) f.get(x).f32x4ExtractLane(l)[op]();
    f.f32x4('splat');
  };

  const eachRow = (row: () => void) => {
    if (!opts.ranged) {
      push(k.x).set(rowX);
      push(k.out).set(rowO);
      if (typeof M === 'number') f.repeat(rows, M, row);
      else {
        // a run-time number of rows, counted down (none for 0)
        push(M).set(rows);
        f.loopUntil(
          () => f.get(rows).i32Eqz(),
          () => {
            row();
            f.bump(rows, -1);
          },
        );
      }
      return;
    }
    if (typeof M !== 'number' || typeof k.x !== 'number' || typeof k.out !== 'number') throw new Error('internal: a ranged softmax body with run-time sizes');
    const [start, end] = [f.param(0), f.param(1)];
    f.get(start).i32(4 * N).i32Mul().tee(rows).i32(k.x).i32Add().set(rowX);
    f.get(rows).i32(k.out).i32Add().set(rowO);
    f.get(start).set(rows); // the row index
    f.loopUntil(
      () => f.get(rows).get(end).i32GeS(),
      () => {
        row();
        f.bump(rows, 1);
      },
    );
  };
  eachRow(() => {
    // the maximum; pmax skips NaN, as the flat module's `if (v > max) max = v` does
    f.f32x4Const(-Infinity).set(max);
    pass((lanes) => {
      f.get(max).get(px).v128Load(0);
      masked(lanes, -Infinity);
      f.f32x4('pmax').set(max);
    });
    across(max, 'f32Max');
    f.set(max);
    // e = exp(x − max): stored, and summed
    f.f32x4Const(0).set(sum);
    pass((lanes) => {
      f.get(px).v128Load(0).get(max).f32x4('sub');
      f32x4Exp(f, tmp);
      f.set(v);
      store(lanes);
      f.get(sum).get(v);
      masked(lanes, 0);
      f.f32x4('add').set(sum);
    }, true);
    // times 1 / Σ (a blocked sum's lanes combined in f64)
    f.f32x4Const(1);
    if (blocked) {
      f.get(lo!).f64x2ExtractLane(0).get(lo!).f64x2ExtractLane(1).f64Add();
      f.get(hi!).f64x2ExtractLane(0).get(hi!).f64x2ExtractLane(1).f64Add().f64Add().f32DemoteF64().f32x4('splat');
    } else across(sum, 'f32Add');
    f.f32x4('div').set(sum);
    pass((lanes) => {
      f.get(po).v128Load(0).get(sum).f32x4('mul').set(v);
      store(lanes);
    });
    f.bump(rowX, 4 * N).bump(rowO, 4 * N);
  });
  return f;
}
