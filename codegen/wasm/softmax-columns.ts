// Softmax and log-softmax along an axis other than the last (the symbolic module,
// codegen/wasm/symbolic-forms.ts): the lines of [outer, len, inner] along the middle axis, four
// adjacent lines at once. Four lines at columns c … c + 3 of one plane have their elements side by
// side, one v128 at each step along the axis: the maximum, Σ exp(x − max) (f32x4Exp, summed in
// f64) and the outputs are four lanes of four lines. The columns past the last four are one line
// at a time with the same code, its loads splat to four lanes and lane 0 stored. The outer count,
// the line's length and the inner size may each be a number or a run-time value.

import { Body } from './encode.js';
import type { Local } from './encode.js';
import { f32x4Exp } from './kernel-alu.js';
import type { I32, IndexKernel } from './index-lines.js';
import type { Split } from './threads.js';
import { bumpBy, f64Log, hoisted, minus, op, product, push, rangeOf, repeatN, text, times } from './index-lines.js';

const SIMD_OP = { f64x2Splat: 0x14, f64x2ReplaceLane: 0x22, f64x2Sub: 0xf1, f64x2Div: 0xf3 } as const;

/**
 * Softmax (log-softmax) of `outer`·`inner` lines of `len`, `inner` floats apart, four lines at a
 * time. `threads` (the static module, all sizes numbers): a function of a range that splits over
 * threads, by the outer planes where there are several, else by blocks of four columns (each
 * line's sums the same as in one pass).
 */
export function softmaxColumns(outer: I32, len: I32, inner: I32, log: boolean, xAt: I32, yAt: I32, threads = false): IndexKernel {
  const sizes = typeof outer === 'number' && typeof len === 'number' && typeof inner === 'number' ? [outer, len, inner] : undefined;
  const by = sizes && threads ? (sizes[0]! > 1 ? 'planes' : sizes[2]! > 4 ? 'columns' : undefined) : undefined;
  const split: Split | undefined = by && sizes ? { extent: by === 'planes' ? sizes[0]! : sizes[2]!, align: by === 'planes' ? 1 : 4, work: sizes[0]! * sizes[1]! * sizes[2]! * 8 } : undefined;
  const f = new Body(split ? 2 : 0);
  const [o, c, j, p, q, p0, base] = Array.from({ length: 7 }, () => f.local('i32'));
  const [vm, vv, acc, hi, lo2, hi2] = Array.from({ length: 6 }, () => f.local('v128'));
  const tmp = Array.from({ length: 5 }, () => f.local('v128'));
  const ln = Array.from({ length: 4 }, () => f.local('f64'));
  const t = { s: f.local('f64'), z: f.local('f64'), z2: f.local('f64'), p: f.local('f64'), e: f.local('i32') };
  const n = hoisted(f, len);
  const step = hoisted(f, times(inner, 4));
  const plane = hoisted(f, times(product(len, inner), 4));
  const dy = hoisted(f, { push: (g) => void minus(g, yAt, xAt), text: 'dy' });
  const cols = hoisted(f, inner);

  /** Four lines from p0 (`w` 4), or one (`w` 1: its elements splat to the four lanes, lane 0 stored). */
  const block = (w: 4 | 1) => {
    const load = () => (w === 4 ? f.v128Load(0) : f.v128Load32Splat(0));
    /** the v128 on the stack to the address under it */
    const store = () => (w === 4 ? f.v128Store(0) : f.v128Store32Lane(0, 0));
    const each = (body: () => void) => {
      f.get(p0).set(p);
      repeatN(f, j, n, () => {
        body();
        bumpBy(f, p, step);
      });
    };
    /** y's element of x's at p: its address into q */
    const atY = () => push(f.get(p), dy).i32Add().set(q);
    // the maxima: pmax(m, x) = m < x ? x : m, a NaN x skipped (as the flat module's `if (v > max) max = v`)
    f.f32x4Const(-Infinity).set(vm);
    each(() => {
      f.get(vm).get(p);
      load().f32x4('pmax').set(vm);
    });
    // Σ exp(x − max): lanes 0, 1 into acc, lanes 2, 3 into hi (f64x2)
    f.f32x4Const(0).tee(acc).set(hi);
    each(() => {
      f.get(p);
      load().get(vm).f32x4('sub');
      f32x4Exp(f, tmp);
      f.set(vv);
      if (!log) {
        atY();
        f.get(q).get(vv);
        store();
      }
      f.get(acc).get(vv).f64x2PromoteLowF32x4().f64x2Add().set(acc);
      if (w === 4) f.get(hi).get(vv).get(vv).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().set(hi);
    });
    if (log) {
      // y = x − (max + ln Σ), lane by lane in f64, rounded once
      for (let k = 0; k < w; k++) {
        f.get(k < 2 ? acc : hi).f64x2ExtractLane(k % 2);
        f64Log(f, t);
        f.set(ln[k]!);
      }
      const lanes = (a: Local, b: Local) => f.get(a).simd(SIMD_OP.f64x2Splat).get(b).simd(SIMD_OP.f64x2ReplaceLane).raw(1);
      lanes(ln[0]!, ln[w === 4 ? 1 : 0]!).get(vm).f64x2PromoteLowF32x4().f64x2Add().set(lo2);
      if (w === 4) lanes(ln[2]!, ln[3]!).get(vm).get(vm).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().set(hi2);
      each(() => {
        atY();
        f.get(q).get(p);
        load().set(vv);
        f.get(vv).f64x2PromoteLowF32x4().get(lo2).simd(SIMD_OP.f64x2Sub).f32x4DemoteF64x2Zero();
        if (w === 4) f.get(vv).get(vv).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().get(hi2).simd(SIMD_OP.f64x2Sub).f32x4DemoteF64x2Zero().i32x4Shuffle([0, 1, 4, 5]);
        store();
      });
    } else {
      // y = exp(x − max) · f32(1 / Σ), lane by lane
      const inv = (s: Local) => op.f64Const(f, 1).simd(SIMD_OP.f64x2Splat).get(s).simd(SIMD_OP.f64x2Div).f32x4DemoteF64x2Zero();
      inv(acc);
      if (w === 4) inv(hi).i32x4Shuffle([0, 1, 4, 5]);
      f.set(lo2);
      each(() => {
        atY();
        f.get(q).get(q);
        load().get(lo2).f32x4('mul');
        store();
      });
    }
  };

  // the range: planes [r0, r1) of all columns, or columns [r0, r1) of the one plane
  const [r0, r1] = split ? rangeOf(f, split.extent) : [undefined, undefined];
  push(f, xAt).set(base);
  if (by === 'planes') f.get(r0!).i32(sizes![1]! * sizes![2]! * 4).i32Mul().get(base).i32Add().set(base);
  const planes: I32 = by === 'planes' ? { push: (g) => void g.get(r1!).get(r0!).i32Sub(), text: 'planes' } : outer;
  repeatN(f, o, planes, () => {
    f.get(base).set(p0);
    if (by === 'columns') {
      f.get(r0!).i32(4).i32Mul().get(p0).i32Add().set(p0);
      f.get(r1!).get(r0!).i32Sub().set(c);
    } else push(f, cols).set(c);
    // (an inner size that is a number: only the blocks it has)
    if (typeof cols !== 'number' || cols >= 4)
      f.loopUntil(
        () => f.get(c).i32(4).i32LtS(),
        () => {
          block(4);
          f.bump(p0, 16).bump(c, -4);
        },
      );
    if (typeof cols !== 'number' || cols % 4 !== 0)
      f.loopUntil(
        () => f.get(c).i32Eqz(),
        () => {
          block(1);
          f.bump(p0, 4).bump(c, -1);
        },
      );
    bumpBy(f, base, plane);
  });
  return { body: f, split, what: `${log ? 'log_softmax' : 'softmax'} of ${text(outer)}·${text(inner)} lines of ${text(len)}, ${text(inner)} apart, four lines at a time` };
}
