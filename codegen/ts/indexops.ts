// The flat TypeScript target's routines of the index primitives (ir/indexops.ts): argmax and
// argmin along an axis, cumsum (a running float64 sum, from either end). flip is a layout
// kernel of the kernel form, arange an expression (codegen/kernel/rules.ts).

import type { Dim } from '../../ir/dims.js';
import { mulSize, numelSize, sizeText } from '../../ir/dims.js';
import type { InstOf, ValueId } from '../../ir/types.js';
import { factor } from '../loops.js';
import type { Ctx } from './snippets.js';

/**
 * A loop over the lines of `shape` along `axis` (line i: its elements at `at(k)`, k < len); the
 * loop variable `i` is the line's index in row-major order of the other axes.
 */
function lineLoops(shape: readonly Dim[], axis: number, body: (at: (k: string) => string, len: string) => string[]): string[] {
  const len = sizeText(shape[axis]!);
  const innerSize = numelSize(shape.slice(axis + 1));
  const inner = sizeText(innerSize);
  const outer = numelSize(shape.slice(0, axis));
  const at = (k: string) => (inner === '1' ? `_base + ${k}` : `_base + ${k} * ${inner}`);
  return [
    `for (let i = 0; i < ${sizeText(mulSize(outer, innerSize))}; i++) {`,
    inner === '1' ? `const _base = i * ${len};` : `const _base = Math.floor(i / ${factor(inner)}) * ${sizeText(mulSize(shape[axis]!, innerSize))} + (i % ${factor(inner)});`,
    ...body(at, len),
    '}',
  ];
}

/** The first maximum's (minimum's) index along the axis; a NaN wins and ends the line, as torch. */
function argLoops(c: Ctx, inst: InstOf<'argmax' | 'argmin'>): string[] {
  const x = inst.args[0]!;
  const xs = c.arr(x);
  const better = inst.op === 'argmax' ? '>' : '<';
  return lineLoops(c.g.type(x).shape, inst.attrs.axis, (at, len) => [
    `let _best = ${xs}[${at('0')}];`,
    'let _at = 0;',
    `for (let j = 1; j < ${len} && _best === _best; j++) {`,
    `const _v = ${xs}[${at('j')}];`,
    `if (_v !== _v || _v ${better} _best) {`,
    '_best = _v;',
    '_at = j;',
    '}',
    '}',
    `${c.arr(inst.result)}[i] = _at;`,
  ]);
}

/** y_k = Σ_{j ≤ k} x_j along the axis (Σ_{j ≥ k} with reverse), summed in float64. */
function cumsumLoops(c: Ctx, inst: InstOf<'cumsum'>): string[] {
  const x: ValueId = inst.args[0]!;
  const [xs, ys] = [c.arr(x), c.arr(inst.result)];
  return lineLoops(c.g.type(x).shape, inst.attrs.axis, (at, len) => [
    'let _s = 0;',
    inst.attrs.reverse ? `for (let j = ${len} - 1; j >= 0; j--) {` : `for (let j = 0; j < ${len}; j++) {`,
    `_s += ${xs}[${at('j')}];`,
    `${ys}[${at('j')}] = _s;`,
    '}',
  ]);
}

export const INDEX_ROUTINES = {
  argmax: { emit: argLoops },
  argmin: { emit: argLoops },
  cumsum: { emit: cumsumLoops },
} as const;
