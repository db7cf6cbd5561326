// WebAssembly SIMD kernels for elementwise groups: the group's steps over an [M,N] iteration
// space (leading axes collapsed into rows), four columns at a time, with a lane-wise last vector
// when N is not a multiple of 4. Each array the steps read or write has a pointer that walks its
// row; a broadcast operand's pointer stays put along the axis it is broadcast over.

import { Body } from './encode.js';
import type { Step } from './steps.js';
import { StepWriter } from './steps.js';

export interface ElementwiseKernel {
  readonly M: number;
  readonly N: number;
  readonly steps: readonly Step[];
}

export function elementwiseBody(k: ElementwiseKernel): Body {
  const f = new Body();
  elementwiseLoop(f, k);
  return f;
}

/** Appends the loops of `k` to a function body. */
export function elementwiseLoop(f: Body, k: ElementwiseKernel): void {
  const { M, N } = k;
  if (M * N === 0) return;
  const rowCounter = f.local('i32');
  const vecCounter = f.local('i32');
  const i = f.local('i32');
  const w = new StepWriter(f, k.steps, N);
  const full = Math.floor(N / 4);
  const rest = N % 4;
  f.assign(i, 0);
  f.repeat(rowCounter, M, () => {
    // pointers at (i, 0)
    for (const p of w.pointers) {
      f.i32(p.addr);
      if (p.si) f.get(i).i32(4 * p.si).i32Mul().i32Add();
      f.set(p.local);
    }
    const advance = () => {
      for (const p of w.pointers) if (p.sj) f.bump(p.local, 16);
    };
    if (full > 0)
      f.repeat(vecCounter, full, () => {
        w.at(0, 0, 4);
        advance();
      });
    if (rest) w.at(0, 0, rest);
    f.bump(i, 1);
  });
}

/**
 * A reduction group over leading axes, as three loops: the accumulators (one row of N per
 * reduction, in a scratch area) are set to 0 or −∞; every row of the [M,N] space computes the
 * group's elementwise members and adds (or maxes) into them; one last row computes the epilogue
 * over the kept positions, reading the accumulators. Accumulation is in f32 (the flat module's
 * accumulators are f64).
 */
export interface ReduceKernel {
  readonly M: number;
  readonly N: number;
  readonly init: readonly Step[];
  readonly rows: readonly Step[];
  readonly epilogue: readonly Step[];
}

export function reduceBody(k: ReduceKernel): Body {
  const f = new Body();
  elementwiseLoop(f, { M: 1, N: k.N, steps: k.init });
  elementwiseLoop(f, { M: k.M, N: k.N, steps: k.rows });
  if (k.epilogue.length) elementwiseLoop(f, { M: 1, N: k.N, steps: k.epilogue });
  return f;
}
