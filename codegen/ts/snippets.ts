// The flat TypeScript target's routines: the statements of the ops with loops of their own
// (softmax rows, cross-entropy, the index ops, convolutions and pooling).

import type { Graph } from '../../ir/graph.js';
import type { Unit } from '../../ir/memplan.js';
import type { RoutineOp } from '../kernel/form.js';
import { mulSize, numelSize, sizeText, stridesSize } from '../../ir/dims.js';
import type { InstOf, Shape, ValueId } from '../../ir/types.js';
import type { Expr } from '../expr.js';
import type { Access } from '../loops.js';
import { factor, nest } from '../loops.js';
import type { Typed } from '../module.js';
import type { TrainBackend } from './train.js';
import { convLoops, poolLoops } from './conv.js';
import { INDEX_ROUTINES } from './indexops.js';


// ---------------------------------------------------------------------------------------------
// The snippet table

/** What a statement snippet sees. */
export interface Ctx {
  readonly g: Graph;
  /** The array of a value (its name in the emitted code). */
  arr(v: ValueId): string;
  /** Element `idx` of a value: a literal for scalar constants, `x[0]` for scalars. */
  read(v: ValueId, idx: string): Expr;
}

/**
 * What another target changes in the flat module (the wasm target: where the arena lives, and
 * matmul, elementwise and reduction groups as calls of its kernels). Everything else is the flat
 * module's code.
 */
export interface Backend {
  /** The header's one-line description of the module. */
  readonly what: string;
  /** Declarations before the arena, and the arena's `buffers` (given the flat module's arrays). */
  buffersDecl(arrays: readonly string[], t: Typed): string[];
  /** More arrays for `buf`: `name: expression, // comment` lines. */
  readonly entries: readonly string[];
  /** A unit's code (a kernel call), or undefined for the flat module's loops. */
  unit(u: Unit, e: UnitEmitter): string[] | undefined;
  /**
   * With it (static shapes), the arena and the steps are the body of a function that the backend
   * opens and closes, so that a module can make more than one of them (the wasm module: one per
   * memory): `top` is declared before it at module level, `close` gets the names of the functions
   * the body would export (they are returned instead) and exports them, and `scope`: the
   * module-level names the body refers to (what a fresh evaluation of its source needs).
   */
  readonly instance?: { readonly top: readonly string[]; readonly open: readonly string[]; close(names: readonly string[], scope: readonly string[]): string[] };
  /** The optimizer update as a kernel (--optimizer), for the params it covers. */
  readonly train?: TrainBackend;
}

/** What a backend may ask of the emitter of a unit. */
export interface UnitEmitter {
  /** The array of a value, noted as used. */
  arrOf(g: Graph, v: ValueId): string;
  /** Marks an extra `buf` array as used by the current function. */
  use(name: string): void;
  /** A matmul group's epilogue as a loop of its own, reading the product from `product`. */
  epilogueLoop(u: Unit, product: string): string[];
}

/** The ops the flat module writes with loops of their own: routines and layout copies. */
export type OwnOp = Exclude<RoutineOp, 'matmul'>;

/**
 * The statements of the routines; the elementwise ops, reductions and layout copies are rendered
 * from the kernel form (render.ts), matmul groups by matmul.ts.
 */
export const TS_ROUTINES: { readonly [K in OwnOp]: { readonly emit: (c: Ctx, inst: InstOf<K>) => string[] } } = {
  argmax_mask: {
    emit: (c, inst) => {
      const x = inst.args[0]!;
      const out = c.arr(inst.result);
      return [
        `${out}.fill(0);`,
        ...keptOuterNest(
          c.g.type(x).shape,
          inst.attrs.axes,
          [{ strides: stridesSize(c.g.type(x).shape) }],
          () => ['let _best = -Infinity;', 'let _at = -1;'],
          ([xi]) => [`if (_at < 0 || ${c.read(x, xi!).code} > _best) {`, `_best = ${c.read(x, xi!).code};`, `_at = ${xi};`, '}'],
          () => [`${out}[_at] = 1;`],
        ),
      ];
    },
  },
  gather: {
    emit: (c, inst) => {
      const [table, idx] = inst.args as [ValueId, ValueId];
      const n = sizeText(numelSize(c.g.type(idx).shape));
      const row = sizeText(numelSize(c.g.type(table).shape.slice(1)));
      const out = c.arr(inst.result);
      if (row === '1') return [`for (let i = 0; i < ${n}; i++) ${out}[i] = ${c.arr(table)}[${c.read(idx, 'i').code}];`];
      return [
        `for (let i = 0; i < ${n}; i++) {`,
        `const _row = ${c.read(idx, 'i').code} * ${row};`,
        `for (let j = 0; j < ${row}; j++) ${out}[i * ${row} + j] = ${c.arr(table)}[_row + j];`,
        '}',
      ];
    },
  },
  scatter_add: {
    emit: (c, inst) => {
      const [idx, src] = inst.args as [ValueId, ValueId];
      const n = sizeText(numelSize(c.g.type(idx).shape));
      const row = sizeText(numelSize(inst.attrs.shape.slice(1)));
      const out = c.arr(inst.result);
      return [
        `${out}.fill(0);`,
        `for (let i = 0; i < ${n}; i++) {`,
        `const _row = ${c.read(idx, 'i').code} * ${row};`,
        `for (let j = 0; j < ${row}; j++) ${out}[_row + j] += ${c.read(src, `i * ${row} + j`).code};`,
        '}',
      ];
    },
  },
  pick: {
    emit: (c, inst) => {
      const [x, idx] = inst.args as [ValueId, ValueId];
      const [n, cols] = c.g.type(x).shape.map(sizeText) as [string, string];
      return [`for (let i = 0; i < ${n}; i++) ${c.arr(inst.result)}[i] = ${c.arr(x)}[i * ${cols} + ${c.read(idx, 'i').code}];`];
    },
  },
  softmax: { emit: (c, inst) => softmaxLoops(c, inst.args[0]!, inst.result, inst.attrs.axis, false) },
  log_softmax: { emit: (c, inst) => softmaxLoops(c, inst.args[0]!, inst.result, inst.attrs.axis, true) },
  xent: {
    emit: (c, inst) => {
      const [x, t] = inst.args as [ValueId, ValueId];
      const [n, cls] = c.g.type(x).shape.map(sizeText) as [string, string];
      const xs = c.arr(x);
      return [
        'let _total = 0;',
        `for (let i = 0; i < ${n}; i++) {`,
        'let _max = -Infinity;',
        `for (let j = 0; j < ${cls}; j++) if (${xs}[i * ${cls} + j] > _max) _max = ${xs}[i * ${cls} + j];`,
        'let _sum = 0;',
        `for (let j = 0; j < ${cls}; j++) _sum += Math.exp(${xs}[i * ${cls} + j] - _max);`,
        `_total += ${xs}[i * ${cls} + ${c.read(t, 'i').code}] - _max - Math.log(_sum);`,
        '}',
        `${c.arr(inst.result)}[0] = -_total / ${n};`,
      ];
    },
  },
  conv: { emit: convLoops },
  conv_input_grad: { emit: convLoops },
  conv_weight_grad: { emit: convLoops },
  max_pool: { emit: poolLoops },
  max_pool_grad: { emit: poolLoops },
  max_pool_pick: { emit: poolLoops },
  avg_pool: { emit: poolLoops },
  avg_pool_grad: { emit: poolLoops },
  ...INDEX_ROUTINES,
};

/** Softmax or log-softmax along one axis: max, Σ exp, normalise. */
function softmaxLoops(c: Ctx, x: ValueId, y: ValueId, axis: number, log: boolean): string[] {
  const shape = c.g.type(x).shape;
  const len = sizeText(shape[axis]!);
  const innerSize = numelSize(shape.slice(axis + 1));
  const inner = sizeText(innerSize);
  const outer = numelSize(shape.slice(0, axis));
  const xs = c.arr(x);
  const ys = c.arr(y);
  const at = (k: string) => (inner === '1' ? `_base + ${k}` : `_base + ${k} * ${inner}`);
  return [
    `for (let i = 0; i < ${sizeText(mulSize(outer, innerSize))}; i++) {`,
    inner === '1' ? `const _base = i * ${len};` : `const _base = Math.floor(i / ${factor(inner)}) * ${sizeText(mulSize(shape[axis]!, innerSize))} + (i % ${factor(inner)});`,
    'let _max = -Infinity;',
    `for (let j = 0; j < ${len}; j++) if (${xs}[${at('j')}] > _max) _max = ${xs}[${at('j')}];`,
    'let _sum = 0;',
    ...(log
      ? [`for (let j = 0; j < ${len}; j++) _sum += Math.exp(${xs}[${at('j')}] - _max);`, 'const _lse = _max + Math.log(_sum);', `for (let j = 0; j < ${len}; j++) ${ys}[${at('j')}] = ${xs}[${at('j')}] - _lse;`]
      : [
          `for (let j = 0; j < ${len}; j++) {`,
          `const _e = Math.exp(${xs}[${at('j')}] - _max);`,
          `${ys}[${at('j')}] = _e;`,
          '_sum += _e;',
          '}',
          'const _inv = 1 / _sum;',
          `for (let j = 0; j < ${len}; j++) ${ys}[${at('j')}] *= _inv;`,
        ]),
    '}',
  ];
}

// ---------------------------------------------------------------------------------------------
// Loop nests

/** Joins two partial index expressions. */
function plus(a: string, b: string): string {
  if (a === '0') return b;
  if (b === '0') return a;
  return `${a} + ${b}`;
}

/**
 * Loops over the kept axes of `shape` (outer, variables i, j, ...) and its reduced `axes`
 * (inner, variables p, q, ...). `accesses` are over the full shape.
 */
export function keptOuterNest(
  shape: Shape,
  axes: readonly number[],
  accesses: readonly Access[],
  before: (keptIdx: string[]) => string[],
  inner: (idx: string[]) => string[],
  after: (keptIdx: string[]) => string[],
): string[] {
  const kept = shape.map((_d, i) => i).filter((i) => !axes.includes(i));
  const pickAxes = (list: number[], a: Access) => ({ strides: list.map((d) => a.strides[d]!), base: a.base });
  return nest(
    kept.map((d) => shape[d]!),
    accesses.map((a) => pickAxes(kept, a)),
    (outerIdx) => [
      ...before(outerIdx),
      ...nest(
        axes.map((d) => shape[d]!),
        accesses.map((a) => ({ strides: axes.map((d) => a.strides[d]!) })),
        (innerIdx) => inner(outerIdx.map((o, k) => plus(o, innerIdx[k]!))),
        ['p', 'q', 'r', 's'],
      ),
      ...after(outerIdx),
    ],
    ['i', 'j', 'k', 'l'],
  );
}
