// The GPU.js target's index routines (ir/indexops.ts), each thread at one position of the
// result: argmax/argmin walk the axis (the first extremum; a NaN wins, as torch), cumsum sums the
// entries up to this one (from it, reversed). flip, arange and cast are rendered from the kernel
// form (gpu-kernel.ts: a copy with a negative stride, a coordinate, a cast).

import type { Dim, Size } from '../ir/dims.js';
import { size, sizeText } from '../ir/dims.js';
import type { Inst } from '../ir/types.js';
import * as E from './expr.js';
import type { Expr } from './expr.js';
import type { PositionWriter } from './gpu-conv.js';

type Op = 'argmax' | 'argmin' | 'cumsum';

/** A size inside a kernel, the bound symbols read as its constants (as gpu.ts's kdim). */
const kdim = (d: Dim | Size) => {
  const s = size(d);
  return sizeText({ coef: s.coef, syms: s.syms.map((x) => `this.constants.${x}`) });
};

export function indexAt(w: PositionWriter, inst: Extract<Inst, { op: Op }>, pos: readonly string[]): Expr {
  const x = inst.args[0]!;
  const xs = w.g.type(x).shape;
  const axis = inst.attrs.axis;
  if (inst.op === 'cumsum') {
    const along = (k: string) => pos.map((p, d) => (d === axis ? k : p));
    const sum = w.loop('0', [xs[axis]!], ([k], acc) => {
      const v = w.capture(() => w.at(x, along(k!)).code);
      return [...v.lines, `if (${k} ${inst.attrs.reverse ? '>=' : '<='} ${pos[axis]}) ${acc} += ${v.value};`];
    });
    return E.atom(sum);
  }
  // the result's position without the axis (keepDims: its size-1 entry), the axis at k
  const kept = inst.attrs.keepDims ? pos.filter((_p, d) => d !== axis) : pos;
  const along = (k: string) => [...kept.slice(0, axis), k, ...kept.slice(axis)];
  const [best, at, r] = [w.fresh('best'), w.fresh('at'), w.fresh('r')];
  const first = w.capture(() => w.at(x, along('0')).code);
  w.lines.push(...first.lines, `let ${best} = ${first.value};`, `let ${at} = 0;`);
  const v = w.capture(() => w.at(x, along(r)).code);
  const better = inst.op === 'argmax' ? '>' : '<';
  w.lines.push(
    `for (let ${r} = 1; ${r} < ${kdim(xs[axis]!)}; ${r}++) {`,
    ...v.lines,
    `if (${best} === ${best} && (${v.value} !== ${v.value} || ${v.value} ${better} ${best})) {`,
    `${best} = ${v.value};`,
    `${at} = ${r};`,
    '}',
    '}',
  );
  return E.atom(at);
}
