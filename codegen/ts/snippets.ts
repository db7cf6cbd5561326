// The flat TypeScript target's snippet table: for each op, an expression (elementwise ops) or a
// statement of its own, and the loop-nest helpers the snippets and the group emitters share.

import type { Graph } from '../../ir/graph.js';
import type { Unit } from '../../ir/memplan.js';
import type { OpKind } from '../../ir/ops.js';
import { mulSize, numelSize, sizeText, stridesSize, sumSizes } from '../../ir/dims.js';
import type { InstOf, Shape, ValueId } from '../../ir/types.js';
import * as E from '../expr.js';
import type { Expr } from '../expr.js';
import type { Access } from '../loops.js';
import { factor, nest } from '../loops.js';
import type { Typed } from '../module.js';
import type { TrainBackend } from './train.js';
import { header } from '../module.js';
import { convLoops, poolLoops } from './conv.js';


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
   * the body would export (they are returned instead) and exports them.
   */
  readonly instance?: { readonly top: readonly string[]; readonly open: readonly string[]; close(names: readonly string[]): string[] };
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

export type Snippet<K extends OpKind> =
  /** Elementwise: the value at one position from the operands' values there. */
  | { readonly expr: (a: readonly Expr[]) => Expr; readonly atoms?: boolean }
  /** A statement of its own. */
  | { readonly emit: (c: Ctx, inst: InstOf<K>) => string[] }
  /** Emitted by the group emitter of that kind. */
  | { readonly group: 'reduce' | 'matmul' }
  /** Nothing to emit: a source, or a view of its operand. */
  | { readonly none: true };

const one = E.num(1);
const zero = E.num(0);
const x1 = (f: (a: Expr) => Expr) => ({ expr: (a: readonly Expr[]) => f(a[0]!) });
const x2 = (f: (a: Expr, b: Expr) => Expr) => ({ expr: (a: readonly Expr[]) => f(a[0]!, a[1]!) });

export const TS_SNIPPETS: { readonly [K in OpKind]: Snippet<K> } = {
  input: { none: true },
  param: { none: true },
  const: { none: true },
  fwd: { none: true },
  dim: { none: true },
  buffer: { none: true },
  mode: { none: true },
  dropout_mask: { none: true },
  reshape: { none: true },
  stop_gradient: { none: true },
  custom_grad: { none: true }, // dropped before emission (ir/passes.ts dropCustomGrads)

  neg: x1(E.neg),
  exp: x1((a) => E.call('Math.exp', a)),
  log: x1((a) => E.call('Math.log', a)),
  tanh: x1((a) => E.call('Math.tanh', a)),
  sigmoid: x1((a) => E.div(one, E.add(one, E.call('Math.exp', E.neg(a))))),
  relu: { ...x1((a) => E.cond(E.rel('>')(a, zero), a, zero)), atoms: true },
  sqrt: x1((a) => E.call('Math.sqrt', a)),
  square: { ...x1((a) => E.mul(a, a)), atoms: true },
  abs: x1((a) => E.call('Math.abs', a)),
  add: x2(E.add),
  sub: x2(E.sub),
  mul: x2(E.mul),
  div: x2(E.div),
  pow: { ...x2((a, b) => E.powOf(a, b)), atoms: true },
  maximum: x2((a, b) => E.call('Math.max', a, b)),
  minimum: x2((a, b) => E.call('Math.min', a, b)),
  gt: x2((a, b) => E.cond(E.rel('>')(a, b), one, zero)),
  ge: x2((a, b) => E.cond(E.rel('>=')(a, b), one, zero)),
  select: { expr: ([c, a, b]) => E.cond(E.rel('!==')(c!, zero), a!, b!) },
  broadcast: x1((a) => a),
  // operands: the index at this row, and the coordinate along the class axis
  one_hot: x2((idx, j) => E.cond(E.rel('===')(idx, j), one, zero)),
  bn_apply: { expr: ([x, m, s]) => E.mul(E.sub(x!, m!), s!) },
  ln_apply: { expr: ([x, m, s]) => E.mul(E.sub(x!, m!), s!) },

  sum: { group: 'reduce' },
  max: { group: 'reduce' },
  matmul: { group: 'matmul' },

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
  transpose: {
    emit: (c, inst) => {
      const x = inst.args[0]!;
      const out = c.g.type(inst.result).shape;
      const st = stridesSize(c.g.type(x).shape);
      return nest(out, [{ strides: stridesSize(out) }, { strides: inst.attrs.perm.map((p) => st[p]!) }], ([o, xi]) => [
        `${c.arr(inst.result)}[${o}] = ${c.read(x, xi!).code};`,
      ]);
    },
  },
  concat: {
    emit: (c, inst) => {
      const ost = stridesSize(c.g.type(inst.result).shape);
      let off = 0;
      return inst.args.flatMap((a) => {
        const s = c.g.type(a).shape;
        const base = mulSize(off, ost[inst.attrs.axis]!);
        off += s[inst.attrs.axis] as number; // concatenation axes are static
        return nest(s, [{ strides: ost, base }, { strides: stridesSize(s) }], ([o, xi]) => [`${c.arr(inst.result)}[${o}] = ${c.read(a, xi!).code};`]);
      });
    },
  },
  slice: {
    emit: (c, inst) => {
      const x = inst.args[0]!;
      const st = stridesSize(c.g.type(x).shape);
      const base = sumSizes(inst.attrs.starts.map((v, d) => mulSize(v, st[d]!)));
      return nest(inst.attrs.sizes, [{ strides: stridesSize(inst.attrs.sizes) }, { strides: st, base }], ([o, xi]) => [
        `${c.arr(inst.result)}[${o}] = ${c.read(x, xi!).code};`,
      ]);
    },
  },
  pad: {
    emit: (c, inst) => {
      const x = inst.args[0]!;
      const s = c.g.type(x).shape;
      const ost = stridesSize(inst.attrs.shape);
      const base = sumSizes(inst.attrs.starts.map((v, d) => mulSize(v, ost[d]!)));
      return [
        `${c.arr(inst.result)}.fill(0);`,
        ...nest(s, [{ strides: ost, base }, { strides: stridesSize(s) }], ([o, xi]) => [`${c.arr(inst.result)}[${o}] = ${c.read(x, xi!).code};`]),
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
export function plus(a: string, b: string): string {
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

/** Kept-outer nest with separate accesses for the full (inner) and kept (outer) parts. */
export function keptOuterNestMulti(
  shape: Shape,
  axes: readonly number[],
  fullAccesses: readonly Access[],
  keptAccesses: readonly Access[],
  before: (keptIdx: string[]) => string[],
  inner: (idx: string[]) => string[],
  after: (keptIdx: string[]) => string[],
): string[] {
  const kept = shape.map((_d, i) => i).filter((i) => !axes.includes(i));
  const nK = fullAccesses.length;
  // one nest over the kept axes carries both the full accesses' kept parts and the kept accesses
  const outerAccesses = [...fullAccesses.map((a) => ({ strides: kept.map((d) => a.strides[d]!), base: a.base })), ...keptAccesses];
  return nest(
    kept.map((d) => shape[d]!),
    outerAccesses,
    (outerIdx) => [
      ...before(outerIdx.slice(nK)),
      ...nest(
        axes.map((d) => shape[d]!),
        fullAccesses.map((a) => ({ strides: axes.map((d) => a.strides[d]!) })),
        (innerIdx) => inner(outerIdx.slice(0, nK).map((o, k) => plus(o, innerIdx[k]!))),
        ['p', 'q', 'r', 's'],
      ),
      ...after(outerIdx.slice(nK)),
    ],
    ['i', 'j', 'k', 'l'],
  );
}
