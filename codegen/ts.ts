// The flat TypeScript target. One table of per-op snippets (an expression for elementwise ops,
// a statement for the others), emitters for the three kinds of fused groups, and the module
// around them. The backward statements are the forward statements in reverse; each loop nest
// carries a comment with its IR lines, the formula it computes and the DSL line it comes from.

import type { Graph } from '../ir/graph.js';
import type { Plan, Unit } from '../ir/memplan.js';
import { valueName } from '../ir/memplan.js';
import type { OpKind } from '../ir/ops.js';
import type { Dim, Size } from '../ir/dims.js';
import { isStatic, mulSize, numelSize, size, sizeEq, sizeText, stridesSize, sumSizes, symbols } from '../ir/dims.js';
import { broadcastStridesSize, fmtShape } from '../ir/shape.js';
import type { Inst, InstOf, Shape, Value, ValueId } from '../ir/types.js';
import * as E from './expr.js';
import type { Expr } from './expr.js';
import { formula } from './formula.js';
import type { Access } from './loops.js';
import { factor, nest } from './loops.js';
import type { ModuleInfo } from './module.js';
import type { Typed } from './module.js';
import { checkDecl, checkFiniteDecl, commentText, header, initDecl, key, member, params, specDecl, typeDecls, typedAs, unitComment } from './module.js';

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

type Snippet<K extends OpKind> =
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
  reshape: { none: true },
  stop_gradient: { none: true },

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
function keptOuterNest(
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

// ---------------------------------------------------------------------------------------------
// Emitting units

/** The code of one graph's units, with the names each function must take from `buf`. */
class Emitter {
  /** Arrays referenced by the code emitted so far (names taken from `buf`), in order of use. */
  readonly used = new Set<string>();
  /** For a shared kernel: the formal parameter name of each array it touches. */
  readonly formal?: Map<string, string>;

  constructor(
    readonly m: ModuleInfo,
    readonly plan: Plan,
    readonly codeName: (base: string) => string,
    readonly kernels: Kernels,
    readonly t: Typed,
    formal = false,
    readonly backend?: Backend,
  ) {
    if (formal) this.formal = new Map();
  }

  /** Arrays read under another name (a matmul product in a backend's scratch area). */
  private readonly renamed = new Map<string, string>();

  name(g: Graph, v: ValueId): string {
    return valueName(g, v);
  }

  ctx(g: Graph): Ctx {
    return {
      g,
      arr: (v) => this.arrOf(g, v),
      read: (v, idx) => this.read(g, v, idx),
    };
  }

  arrOf(g: Graph, v: ValueId): string {
    const name = this.renamed.get(this.name(g, v)) ?? this.name(g, v);
    this.used.add(name);
    if (!this.formal) return name;
    if (!this.formal.has(name)) this.formal.set(name, `X${this.formal.size}`);
    return this.formal.get(name)!;
  }

  /** How the code shows a value name: its formal in a shared kernel, else itself. */
  shown(name: string): string {
    const n = this.renamed.get(name) ?? name;
    return this.formal?.get(n) ?? n;
  }

  read(g: Graph, v: ValueId, idx: string): Expr {
    const s = this.plan.storage.get(this.name(g, v));
    if (s?.kind === 'literal') return E.num(s.value);
    if (s?.kind === 'dim') return E.atom(s.name); // the bound size, a local of every function that uses it
    return E.atom(`${this.arrOf(g, v)}[${g.type(v).shape.length === 0 ? '0' : idx}]`);
  }

  stored(g: Graph, v: ValueId): boolean {
    return this.plan.storage.get(this.name(g, v))?.kind === 'buffer';
  }

  unit(u: Unit): string[] {
    const comment = unitComment(this.m, u, this.plan);
    const code = this.code(u);
    if (code.length === 0) return [];
    const scoped = code.some((l) => /^(let|const) /.test(l)) && !/^for /.test(code[0]!);
    return ['', ...comment, ...(scoped ? ['{', ...code, '}'] : code), ...this.finiteChecks(u)];
  }

  /** --check-finite: every f32 value the unit writes is checked for NaN and infinities. */
  private finiteChecks(u: Unit): string[] {
    if (!this.m.checkFinite) return [];
    return u.insts.flatMap((inst) => {
      if (!this.stored(u.graph, inst.result) || u.graph.type(inst.result).dtype !== 'f32') return [];
      const where = inst.loc ? `computed at ${inst.loc.file}:${inst.loc.line}` : 'computed by an instruction without a location';
      return [`checkFinite(${JSON.stringify(this.name(u.graph, inst.result))}, ${this.arrOf(u.graph, inst.result)}, ${JSON.stringify(where)});`];
    });
  }

  private code(u: Unit): string[] {
    const first = u.insts[0]!;
    const own = this.backend?.unit(u, {
      arrOf: (g, v) => this.arrOf(g, v),
      use: (name) => this.used.add(name),
      epilogueLoop: (mu, product) => this.epilogueLoop(mu, product),
    });
    if (own) return own;
    if (u.kind === 'matmul' || (u.kind === 'single' && first.op === 'matmul')) return this.matmul(u);
    if (u.kind === 'reduce' || (u.kind === 'single' && (first.op === 'sum' || first.op === 'max'))) return this.reduce(u);
    if (u.kind === 'elementwise' || (u.kind === 'single' && 'expr' in TS_SNIPPETS[first.op])) return this.elementwise(u);
    const snip = TS_SNIPPETS[first.op] as Snippet<OpKind>;
    if ('emit' in snip) return snip.emit(this.ctx(u.graph), first as InstOf<OpKind>);
    return [];
  }

  /**
   * The body of elementwise members at one position. `ext(v)` reads a value computed outside
   * the members; `slot(v)` is the index to store member v at (when it is stored).
   */
  members(
    g: Graph,
    unit: readonly Inst[],
    members: readonly Inst[],
    ext: (v: ValueId, user: Inst) => Expr,
    slot: (v: ValueId) => string,
    known: Map<ValueId, Expr>,
    coord: () => Expr = () => {
      throw new Error('internal: one_hot outside an elementwise loop');
    },
  ): string[] {
    const lines: string[] = [];
    const inGroup = new Set(members.map((m) => m.result));
    const usesLeft = new Map<ValueId, number>();
    for (const m of unit) for (const a of m.args) if (inGroup.has(a)) usesLeft.set(a, (usesLeft.get(a) ?? 0) + 1);
    const local = (v: ValueId, e: Expr): Expr => {
      if (e.prec >= E.P.ATOM || E.literal(e) !== undefined) return e;
      const n = `_${this.name(g, v)}`;
      lines.push(`const ${n} = ${e.code};`);
      return E.atom(n);
    };
    for (const m of members) {
      const snip = TS_SNIPPETS[m.op] as { expr: (a: readonly Expr[]) => Expr; atoms?: boolean };
      let args = m.args.map((a) => known.get(a) ?? ext(a, m));
      if (m.op === 'one_hot') args.push(coord()); // the coordinate along the class axis
      if (snip.atoms) args = args.map((e, k) => local(m.args[k]!, e));
      let e = snip.expr(args);
      const uses = usesLeft.get(m.result) ?? 0;
      if (this.stored(g, m.result)) {
        if (uses > 0) e = local(m.result, e);
        lines.push(`${this.arrOf(g, m.result)}[${g.type(m.result).shape.length === 0 ? '0' : slot(m.result)}] = ${e.code};`);
      } else if (uses > 1) e = local(m.result, e);
      known.set(m.result, e);
    }
    return lines;
  }

  /** Accesses of a loop nest, deduplicated; `at(key)` gives the index expression of one. */
  private accessSet() {
    const list: Access[] = [];
    const keys = new Map<string, number>();
    return {
      add: (a: Access): string => {
        const k = `${a.strides.map(sizeText).join(',')}+${sizeText(a.base ?? 0)}`;
        if (!keys.has(k)) {
          keys.set(k, list.length);
          list.push(a);
        }
        return k;
      },
      list,
      index: (idx: string[], k: string) => idx[keys.get(k)!]!,
    };
  }

  /** The stride pattern of operand a read at the positions of an elementwise member. */
  private operandStrides(g: Graph, a: ValueId, user: Inst, shape: Shape): Size[] {
    if (user.op === 'one_hot') return [...stridesSize(g.type(a).shape), size(0)].slice(-shape.length);
    return broadcastStridesSize(g.type(a).shape, shape);
  }

  /** The epilogue of a matmul group (its members after the matmul) as an elementwise loop. */
  private epilogueLoop(u: Unit, product: string): string[] {
    const mm = u.insts[0]!;
    this.renamed.set(this.name(u.graph, mm.result), product);
    try {
      return this.elementwise(u, u.insts.slice(1));
    } finally {
      this.renamed.delete(this.name(u.graph, mm.result));
    }
  }

  private elementwise(u: Unit, members: readonly Inst[] = u.insts): string[] {
    const g = u.graph;
    const shape = g.type(members[0]!.result).shape;
    const acc = this.accessSet();
    const out = acc.add({ strides: stridesSize(shape) });
    const inGroup = new Set(members.map((m) => m.result));
    const keyOf = new Map<string, string>();
    const coord = acc.add({ strides: shape.map((_d, i) => (i === shape.length - 1 ? 1 : 0)) });
    for (const m of members)
      for (const a of m.args)
        if (!inGroup.has(a)) keyOf.set(`${m.id}:${a.index}`, acc.add({ strides: this.operandStrides(g, a, m, shape) }));
    return nest(shape, acc.list, (idx) =>
      this.members(
        g,
        members,
        members,
        (v, user) => this.read(g, v, acc.index(idx, keyOf.get(`${user.id}:${v.index}`)!)),
        () => acc.index(idx, out),
        new Map(),
        () => E.atom(acc.index(idx, coord)),
      ),
    );
  }

  private reduce(u: Unit): string[] {
    const g = u.graph;
    const reductions = u.insts.filter((m) => m.op === 'sum' || m.op === 'max') as InstOf<'sum' | 'max'>[];
    const first = reductions[0]!;
    const shape = g.type(first.args[0]!).shape;
    const axes = first.attrs.axes;
    const full = u.insts.filter((m) => m !== first && !reductions.includes(m as InstOf<'sum'>) && sameShape(g.type(m.result).shape, shape));
    const fullSet = new Set(full);
    const epilogue = u.insts.filter((m) => !reductions.includes(m as InstOf<'sum'>) && !fullSet.has(m));
    const kept = shape.map((_d, i) => i).filter((i) => !axes.includes(i));
    const keptShape = kept.map((d) => shape[d]!);
    const K = sizeText(numelSize(keptShape));
    const inGroup = new Set(u.insts.map((m) => m.result));
    const init = (r: InstOf<'sum' | 'max'>) => (r.op === 'sum' ? '0' : '-Infinity');

    // accesses over the full shape (full members and their operands, reduction operands)
    const acc = this.accessSet();
    const fullOut = acc.add({ strides: stridesSize(shape) });
    const keyOf = new Map<string, string>();
    for (const m of [...full, ...reductions])
      for (const a of m.args) if (!inGroup.has(a)) keyOf.set(`${m.id}:${a.index}`, acc.add({ strides: this.operandStrides(g, a, m, shape) }));
    const keptStrides = (() => {
      const st = stridesSize(keptShape);
      const out = shape.map(() => size(0));
      kept.forEach((d, k) => (out[d] = st[k]!));
      return out;
    })();
    const keptAt = acc.add({ strides: keptStrides });
    const coord = acc.add({ strides: shape.map((_d, i) => (i === shape.length - 1 ? 1 : 0)) });

    // the epilogue runs over the kept positions: operands of a reduced shape (with or without
    // the reduced axes kept as 1s) are read through their strides over the kept axes. An operand
    // broadcasts against the shape of the member that reads it: with the reduced axes kept as
    // 1s (keepDims), it aligns with the full shape; without them, with the kept axes alone.
    const keptView = (v: ValueId, user?: Inst): Size[] => {
      const s = g.type(v).shape;
      const fullRank = (user ? g.type(user.result).shape : s).length === shape.length;
      if (fullRank) {
        const bs = broadcastStridesSize(s, shape);
        return kept.map((d) => bs[d]!);
      }
      return broadcastStridesSize(s, keptShape);
    };
    const epi = this.accessSet();
    const accAt = epi.add({ strides: stridesSize(keptShape) });
    const epiOut = new Map<ValueId, string>();
    const epiKey = new Map<string, string>();
    for (const m of [...reductions, ...epilogue]) epiOut.set(m.result, epi.add({ strides: keptView(m.result) }));
    for (const m of epilogue) for (const a of m.args) if (!inGroup.has(a)) epiKey.set(`${m.id}:${a.index}`, epi.add({ strides: keptView(a, m) }));

    const fullBody = (idx: string[], accum: (r: InstOf<'sum' | 'max'>, v: Expr) => string[]) => {
      const known = new Map<ValueId, Expr>();
      const lines = this.members(
        g,
        u.insts,
        full,
        (v, user) => this.read(g, v, acc.index(idx, keyOf.get(`${user.id}:${v.index}`)!)),
        () => acc.index(idx, fullOut),
        known,
        () => E.atom(acc.index(idx, coord)),
      );
      for (const r of reductions) {
        const a = r.args[0]!;
        const v = known.get(a) ?? this.read(g, a, acc.index(idx, keyOf.get(`${r.id}:${a.index}`)!));
        lines.push(...accum(r, v));
      }
      return lines;
    };
    const epilogueBody = (idx: string[], value: (r: InstOf<'sum' | 'max'>) => Expr) => {
      const known = new Map<ValueId, Expr>();
      const lines: string[] = [];
      for (const r of reductions) {
        known.set(r.result, value(r));
        if (this.stored(g, r.result)) lines.push(`${this.arrOf(g, r.result)}[${epi.index(idx, epiOut.get(r.result)!)}] = ${value(r).code};`);
      }
      lines.push(...this.members(g, u.insts, epilogue, (v, user) => this.read(g, v, epi.index(idx, epiKey.get(`${user.id}:${v.index}`)!)), (v) => epi.index(idx, epiOut.get(v)!), known));
      return lines;
    };
    const accName = (k: number) => `_acc${k}`;
    const leading = kept.length > 0 && axes.every((a, k) => a === k);
    if (leading) {
      // reduced axes outermost: walk the operand in memory order, accumulating per kept position
      reductions.forEach((_r, k) => this.used.add(accName(k)));
      return [
        `for (let i = 0; i < ${K}; i++) {`,
        ...reductions.map((r, k) => `${accName(k)}[i] = ${init(r)};`),
        '}',
        ...nest(shape, acc.list, (idx) =>
          fullBody(idx, (r, v) => {
            const k = reductions.indexOf(r);
            const a = `${accName(k)}[${acc.index(idx, keptAt)}]`;
            return r.op === 'sum' ? [`${a} += ${v.code};`] : v.prec >= E.P.ATOM ? [`if (${v.code} > ${a}) ${a} = ${v.code};`] : [`const _v${k} = ${v.code};`, `if (_v${k} > ${a}) ${a} = _v${k};`];
          }),
        ),
        ...nest(keptShape, epi.list, (idx) => epilogueBody(idx, (r) => E.atom(`${accName(reductions.indexOf(r))}[${epi.index(idx, accAt)}]`))),
      ];
    }
    // kept axes outermost: a scalar accumulator per reduction
    return keptOuterNestMulti(shape, axes, acc.list, epi.list, (keptIdx) => reductions.map((r, k) => `let ${accName(k)} = ${init(r)};`), (idx) =>
      fullBody(idx, (r, v) => {
        const a = accName(reductions.indexOf(r));
        return r.op === 'sum' ? [`${a} += ${v.code};`] : v.prec >= E.P.ATOM ? [`if (${v.code} > ${a}) ${a} = ${v.code};`] : [`const _v = ${v.code};`, `if (_v > ${a}) ${a} = _v;`];
      }),
      (keptIdx) => epilogueBody(keptIdx, (r) => E.atom(accName(reductions.indexOf(r)))),
    );
  }

  /**
   * A matmul group as a call of a register-tiled kernel of its own, which reads its arrays from
   * `buf` (fastest on V8: the tiny GPT's step takes 18% longer when its 51 matmuls share 13
   * kernels). In a module of many matmuls (a deep MLP), those of identical structure share one
   * kernel that takes its arrays as arguments, which keeps the module small and its build fast.
   */
  private matmul(u: Unit): string[] {
    const shared = matmulKernel(new Emitter(this.m, this.plan, this.codeName, this.kernels, this.t, true), u);
    const key = shared.body.join('\n');
    const last = u.insts[u.insts.length - 1]!;
    if (this.kernels.shares(key)) {
      const params = [...shared.emitter.formal!.values()];
      const args = [...shared.emitter.formal!.keys()];
      const [A, B] = (u.insts[0] as InstOf<'matmul'>).args.map((v) => fmtShape(u.graph.type(v).shape));
      const name = this.kernels.shared(key, (kname) => [
        '',
        `/** ${commentText(shared.doc)}, ${A} @ ${B}: shared by the ${this.kernels.uses(key)} matmuls of this structure */`,
        `function ${kname}(${params.map((p) => `${p}${this.t(': Float32Array')}`).join(', ')})${this.t(': void')} {`,
        ...shared.body,
        '}',
      ]);
      for (const a of args) this.used.add(a);
      return [`${name}(${args.join(', ')});`];
    }
    const own = matmulKernel(new Emitter(this.m, this.plan, this.codeName, this.kernels, this.t), u);
    const kname = this.codeName(`matmul_${this.name(u.graph, last.result)}`);
    this.kernels.code.push(
      '',
      `/** ${commentText(this.formulaOf(u, last.result))} */`,
      `function ${kname}()${this.t(': void')} {`,
      `const { ${[...own.emitter.used].join(', ')} } = buf;`,
      ...own.body,
      '}',
    );
    return [`${kname}();`];
  }

  formulaOf(u: Unit, v: ValueId): string {
    const set = new Set(u.insts.map((i) => i.id));
    return `${this.name(u.graph, v)} = ${formula(u.graph, v, (d) => set.has(d.id) && !this.stored(u.graph, d.result))}`;
  }
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The register-tiled loops of a matmul group, written by `e` (value names or formal names). */
function matmulKernel(e: Emitter, u: Unit): { emitter: Emitter; body: string[]; doc: string } {
  const g = u.graph;
  const mm = u.insts[0] as InstOf<'matmul'>;
  const epilogue = u.insts.slice(1);
  const [A, B] = mm.args as [ValueId, ValueId];
  const { transA, transB } = mm.attrs;
  const ta = g.type(A).shape;
  const tb = g.type(B).shape;
  const out = g.type(mm.result).shape;
  const M = out.at(-2)!;
  const N = out.at(-1)!;
  const Kd = transA ? ta.at(-2)! : ta.at(-1)!;
  const batch = numelSize(out.slice(0, -2));
  const batched = !sizeEq(batch, 1);
  const a = e.arrOf(g, A);
  const b = e.arrOf(g, B);
  const aOff = ta.length > 2 && batched ? `t * ${sizeText(mulSize(M, Kd))} + ` : '';
  const bOff = tb.length > 2 && batched ? `t * ${sizeText(mulSize(Kd, N))} + ` : '';
  const cOff = batched ? `t * ${sizeText(mulSize(M, N))} + ` : '';
  const times = (x: string, k: Dim | Size) => (x.includes(' ') ? `(${x}) * ${sizeText(k)}` : `${x} * ${sizeText(k)}`);
  const aAt = (i: string, p: string) => `${a}[${aOff}${transA ? `${times(p, M)} + ${i}` : `${times(i, Kd)} + ${p}`}]`;
  const bAt = (p: string, j: string) => `${b}[${bOff}${transB ? `${times(j, Kd)} + ${p}` : `${times(p, N)} + ${j}`}]`;
  // tile shapes measured fastest on V8 for each operand layout
  const [TI, TJ] = !transA && !transB ? [2, 4] : !transA && transB ? [4, 2] : transA && !transB ? [2, 4] : [2, 2];
  const outStrides = stridesSize(out.slice(-2));
  const element = (i: string, j: string, c: string): string[] => {
    const known = new Map<ValueId, Expr>([[mm.result, E.atom(c)]]);
    const lines: string[] = [];
    const at = (st: readonly Size[]) => {
      const terms: string[] = [];
      if (!sizeEq(st[0]!, 0)) terms.push(sizeEq(st[0]!, 1) ? i : times(i, st[0]!));
      if (!sizeEq(st[1]!, 0)) terms.push(sizeEq(st[1]!, 1) ? j : times(j, st[1]!));
      return terms.join(' + ') || '0';
    };
    if (e.stored(g, mm.result)) lines.push(`${e.arrOf(g, mm.result)}[${cOff}${at(outStrides)}] = ${c};`);
    lines.push(...e.members(g, u.insts, epilogue, (v) => e.read(g, v, at(broadcastStridesSize(g.type(v).shape, out).slice(-2))), () => `${cOff}${at(outStrides)}`, known));
    // each tile element's epilogue gets a block of its own when it declares locals
    return lines.some((l) => l.startsWith('const ')) ? ['{', ...lines, '}'] : lines;
  };
  // loop bounds are numbers, or code when a dimension is symbolic (`B - B % 2`)
  const empty = (lo: number | string, hi: number | string) => typeof lo === 'number' && typeof hi === 'number' && hi <= lo;
  const tiles = (i0: number | string, i1: number | string, ti: number, j0: number | string, j1: number | string, tj: number): string[] => {
    if (empty(i0, i1) || empty(j0, j1)) return [];
    const rows = [...Array(ti).keys()];
    const cols = [...Array(tj).keys()];
    const ii = (r: number) => (r ? `i + ${r}` : 'i');
    const jj = (c: number) => (c ? `j + ${c}` : 'j');
    const cv = (r: number, c: number) => `_c${r}${c}`;
    return [
      `for (let i = ${i0}; i < ${i1}; i += ${ti}) {`,
      `for (let j = ${j0}; j < ${j1}; j += ${tj}) {`,
      `let ${rows.flatMap((r) => cols.map((c) => `${cv(r, c)} = 0`)).join(', ')};`,
      `for (let p = 0; p < ${sizeText(Kd)}; p++) {`,
      `const ${rows.map((r) => `_a${r} = ${aAt(ii(r), 'p')}`).join(', ')};`,
      `const ${cols.map((c) => `_b${c} = ${bAt('p', jj(c))}`).join(', ')};`,
      ...rows.flatMap((r) => cols.map((c) => `${cv(r, c)} += _a${r} * _b${c};`)),
      '}',
      ...rows.flatMap((r) => cols.flatMap((c) => element(ii(r), jj(c), cv(r, c)))),
      '}',
      '}',
    ];
  };
  // a symbolic extent gets full tiles and a remainder loop, as a large one does
  const tileOf = (d: Dim, t: number) => (typeof d === 'string' || d >= t ? t : 1);
  const fullTiles = (d: Dim, t: number) => (typeof d === 'number' ? d - (d % t) : t === 1 ? d : `${d} - ${d} % ${t}`);
  const ti = tileOf(M, TI);
  const tj = tileOf(N, TJ);
  const Mt = fullTiles(M, ti);
  const Nt = fullTiles(N, tj);
  const loops = [...tiles(0, Mt, ti, 0, Nt, tj), ...tiles(0, Mt, ti, Nt, N, 1), ...tiles(Mt, M, 1, 0, N, 1)];
  const body = batched ? [`for (let t = 0; t < ${sizeText(batch)}; t++) {`, ...loops, '}'] : loops;
  const last = u.insts[u.insts.length - 1]!;
  const set = new Set(u.insts.map((x) => x.id));
  const doc = `${e.arrOf(g, last.result)} = ${formula(g, last.result, (d) => set.has(d.id) && !e.stored(g, d.result), (n) => e.shown(n))}`;
  return { emitter: e, body, doc };
}

/** Above this many matmul groups a module's matmuls of one structure share a kernel. */
const SHARE_ABOVE = 64;

/** Module-level kernels, and how many matmul groups share each kernel structure. */
class Kernels {
  readonly code: string[] = [];
  private readonly counts = new Map<string, number>();
  private readonly names = new Map<string, string>();

  constructor(private readonly codeName: (base: string) => string) {}

  count(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  uses(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Whether matmuls of this structure share a kernel: in a module of more than SHARE_ABOVE matmuls. */
  shares(key: string): boolean {
    let total = 0;
    for (const n of this.counts.values()) total += n;
    return total > SHARE_ABOVE && this.uses(key) > 1;
  }

  /** The name of the shared kernel of this structure, emitting it the first time. */
  shared(key: string, emit: (name: string) => string[]): string {
    let name = this.names.get(key);
    if (!name) {
      name = this.codeName(`matmul_shared${this.names.size + 1}`);
      this.names.set(key, name);
      this.code.push(...emit(name));
    }
    return name;
  }
}

/** Kept-outer nest with separate accesses for the full (inner) and kept (outer) parts. */
function keptOuterNestMulti(
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

// ---------------------------------------------------------------------------------------------
// The module

const ARRAY = { f32: 'Float32Array', i32: 'Int32Array' } as const;

/** Identifiers for the module's own helpers that no value name can shadow. */
function codeNames(m: ModuleInfo): (base: string) => string {
  const taken = new Set<string>(symbols(m.fwd));
  for (const g of [m.fwd, m.bwd]) for (const inst of g.insts) taken.add(g.value(inst.result).name);
  return (base) => {
    let n = base;
    for (let k = 1; taken.has(n); k++) n = `${base}_${k}`;
    taken.add(n);
    return n;
  };
}

/**
 * The flat module: TypeScript (unformatted; the build formats it with prettier), or with
 * `typed` false the same code as plain JavaScript.
 */
export function emitTs(m: ModuleInfo, typed = true, backend?: Backend): string {
  const t = typedAs(typed);
  const plan = m.plan;
  const codeName = codeNames(m);
  const kernels = new Kernels(codeName);
  for (const u of [...plan.units.forward, ...plan.units.backward])
    if (u.insts[0]!.op === 'matmul') kernels.count(matmulKernel(new Emitter(m, plan, codeName, kernels, t, true), u).body.join('\n'));
  const fwd = new Emitter(m, plan, codeName, kernels, t, false, backend);
  const fwdCode = plan.units.forward.flatMap((u) => fwd.unit(u));
  for (const o of m.fwd.outputs) fwd.arrOf(m.fwd, o.value);
  const bwd = new Emitter(m, plan, codeName, kernels, t, false, backend);
  const bwdCode = plan.units.backward.flatMap((u) => bwd.unit(u));
  const lossOut = m.fwd.outputs.find((o) => o.name === 'loss')!;
  const lossSlot = codeName('lossSlot');
  const lossName = valueName(m.fwd, lossOut.value);

  // gradients need arrays of their own: a gradient that is a forward value, a constant or
  // shared with another param is copied into a fresh array
  const gradArrays = new Map<string, string>();
  const gradCopies: string[] = [];
  const extraDecls: string[] = [];
  const ownedBy = new Set<string>();
  for (const o of m.bwd.outputs) {
    const name = valueName(m.bwd, o.value);
    const s = plan.storage.get(name);
    const own = s?.kind === 'buffer' && m.bwd.def(o.value).op !== 'fwd' && !ownedBy.has(name);
    if (own) {
      ownedBy.add(name);
      gradArrays.set(o.name, `buf.${name}`);
      continue;
    }
    const copy = codeName(`d${name}_copy`);
    extraDecls.push(`const ${copy} = new Float32Array(${sizeText(numelSize(m.bwd.type(o.value).shape))}); // the gradient of ${commentText(o.name)}`);
    gradCopies.push(s?.kind === 'literal' ? `${copy}.fill(${E.num(s.value).code});` : `${copy}.set(${bwd.arrOf(m.bwd, o.value)});`);
    gradArrays.set(o.name, copy);
  }

  // the arena: every array the steps touch, by value name
  const syms = symbols(m.fwd);
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const staticBytes = plan.buffers.reduce((s, b) => s + (isStatic(b.size) ? b.size.coef * 4 : 0), 0);
  const perSym = new Map<string, number>();
  for (const b of plan.buffers) if (!isStatic(b.size)) perSym.set(b.size.syms.join(' × '), (perSym.get(b.size.syms.join(' × ')) ?? 0) + b.size.coef * 4);
  const bytesText = [kib(staticBytes), ...[...perSym].map(([d, n]) => `${kib(n)} × ${d}`)].join(' + ');
  const values = new Map<string, Value>();
  for (const g of [m.bwd, m.fwd]) for (const inst of g.insts) values.set(g.value(inst.result).name, g.value(inst.result));
  /**
   * A value's array: its buffer, or an exact-length view of a larger shared one (made once, or
   * when a call changes the sizes of symbolic dimensions: a symbolic buffer may be larger).
   */
  const view = (name: string) => {
    const id = plan.bufferOf.get(name)!;
    const v = values.get(name)!;
    const n = numelSize(v.type.shape);
    const b = plan.buffers[id]!.size;
    return isStatic(b) && sizeEq(n, b) ? `buffers[${id}]` : `buffers[${id}].subarray(0, ${sizeText(n)})`;
  };
  const describe = (name: string) => {
    const v = values.get(name)!;
    return `${v.type.dtype}[${v.type.shape.join(',')}]`;
  };
  // the arena: the arrays of the memory plan, and an object that names them by value; arrays
  // whose size has symbols start empty and grow with the largest sizes a call brings
  const arrays = plan.buffers.map((b) => `new ${ARRAY[b.dtype]}(${isStatic(b.size) ? b.size.coef : 0})`);
  const entries: string[] = [];
  for (const g of [m.fwd, m.bwd])
    for (const inst of g.insts) {
      const name = g.value(inst.result).name;
      const s = plan.storage.get(name);
      if (!s || inst.op === 'fwd') continue;
      const root = (n: string): string => {
        const t = plan.storage.get(n)!;
        return t.kind === 'alias' ? root(t.of) : n;
      };
      if (s.kind === 'buffer' || s.kind === 'param' || s.kind === 'input')
        entries.push(`${key(name)}: ${view(name)}, // ${describe(name)}${s.kind === 'param' || s.kind === 'input' ? ` (${s.kind} ${commentText(s.key)})` : ''}`);
      else if (s.kind === 'const') entries.push(`${key(name)}: ${ARRAY[g.type(inst.result).dtype]}.from([${s.data.map((x) => E.num(x).code).join(', ')}]),`);
      else if (s.kind === 'alias') {
        const r = root(name);
        const rs = plan.storage.get(r)!;
        if (rs.kind === 'buffer' || rs.kind === 'param' || rs.kind === 'input') entries.push(`${key(name)}: ${view(r)}, // a view of ${s.of}`);
      }
    }
  const accSize = maxSizeCode(plan.units.forward.concat(plan.units.backward).map((u) => accNeed(u)));
  const accSlots = Math.max(0, ...plan.units.forward.concat(plan.units.backward).map((u) => accCount(u)));
  for (let k = 0; k < accSlots; k++) entries.push(`_acc${k}: new Float64Array(${accSize}), // accumulators of column sums`);
  entries.push(...(backend?.entries ?? []));

  const destructure = (used: Set<string>) => {
    const names = [...used].filter((n) => n !== '');
    return names.length ? [`const { ${names.map((n) => key(n)).join(', ')} } = buf;`] : [];
  };
  const staged = [...params(m.fwd).map((p) => ['params', p] as const), ...inputsOf(m).map((p) => ['inputs', p] as const)];
  const stageFn = [
    '/** Copies the arguments into the arena, so that every loop reads arrays of known length. */',
    `function stage(params${t(': Params')}, inputs${t(': Inputs')})${t(': void')} {`,
    ...staged.map(([obj, e]) => `buf.${stagedName(m, obj, e.name)}.set(${member(obj, e.name)});`),
    // --check-finite: a NaN that comes in is named as the argument, not as the first value made from it
    ...(m.checkFinite ? staged : [])
      .filter(([obj, e]) => m.fwd.type(m.fwd.byName(stagedName(m, obj, e.name))!.id).dtype === 'f32')
      .map(([obj, e]) => `checkFinite(${JSON.stringify(`${obj === 'params' ? 'param' : 'input'} '${e.name}'`)}, buf.${stagedName(m, obj, e.name)}, 'passed in');`),
    '}',
  ];
  const forwardFn = [`function forwardPass()${t(': void')} {`, ...destructure(fwd.used), ...fwdCode, '}'];
  const backwardFn = [`function backwardPass()${t(': void')} {`, ...destructure(bwd.used), ...bwdCode, ...gradCopies, `  ${lossSlot}[0] = buf.${lossName}[0];`, '}'];
  const outputsDecl = [
    syms.length
      ? '// Outputs are returned through getters: scalars (storing a number into an object allocates in V8) and arrays (the arena is laid out anew when sizes change).'
      : '// Scalars are returned through getters: storing a number into an object allocates in V8.',
    `const outputsObj${t(': Outputs')} = {`,
    ...m.fwd.outputs.map((o) => {
      const e = outputExpr(m.fwd, o.value, plan);
      return m.fwd.type(o.value).shape.length === 0 || syms.length ? `get ${key(o.name)}() { return ${e}; },` : `${key(o.name)}: ${e},`;
    }),
    '};',
  ];
  const resultDecl = [
    `const ${lossSlot} = new Float64Array(1); // the loss of the last valueAndGrad`,
    `const result${t(': { loss: number; grads: Grads }')} = { get loss() { return ${lossSlot}[0]; }, grads: { ${params(m.fwd)
      .map((p) => `${key(p.name)}: ${gradArrays.get(p.name)}`)
      .join(', ')} } };`,
  ];
  const common = [
    ...header(m, backend?.what ?? 'Flat forward and backward code: no imports, no tape; the backward pass is the forward pass in reverse.'),
    '',
    ...specDecl(m, t),
    '',
    ...(typed ? typeDecls(m) : []),
    '',
    `// Memory plan: ${plan.buffers.length} arrays, ${syms.length ? bytesText : kib(staticBytes)}, shared by values whose lifetimes do not overlap`,
    `// (see ${m.name}.grad.ir). Values that live only inside one loop nest are locals.`,
  ];
  /** The header, the arena (declared by `arena`), params' initialisation and the argument checks. */
  const preamble = (arena: string[]) => [...common, ...arena, ...extraDecls, '', ...initDecl(m, t), '', ...checkDecl(m, t), ''];
  const lines: string[] = syms.length
    ? [
        ...preamble([`const buffers${t(`: [${plan.buffers.map((b) => ARRAY[b.dtype]).join(', ')}]`)} = [${arrays.join(', ')}];`]),
        ...symbolicArena(m, plan, entries, t),
        ...checkFiniteDecl(m, t),
        ...outputsDecl,
        '',
        ...resultDecl,
        '',
        '/**',
        ' * The steps for the sizes of one call. The arena and the sizes are constants of these closures,',
        ' * which V8 then compiles as it compiles a static build; a call with other sizes makes a new set.',
        ' */',
        `function steps(buf${t(': ReturnType<typeof arena>')}, ${syms.map((d) => `${d}${t(': number')}`).join(', ')}) {`,
        ...stageFn,
        ...kernels.code,
        '',
        ...forwardFn,
        '',
        ...backwardFn,
        '',
        '  return { stage, forwardPass, backwardPass };',
        '}',
        '',
        `let current${t(': ReturnType<typeof steps> | undefined')};`,
        '',
        '/** Checks the arguments, binds the sizes, lays the arena out when they change and stages the arguments. */',
        `function prepare(params${t(': Params')}, inputs${t(': Inputs')})${t(': ReturnType<typeof steps>')} {`,
        '  checkArgs(params, inputs);',
        `  if (current === undefined || ${syms.map((d) => `dims.${d} !== laidOut.${d}`).join(' || ')}) {`,
        '    layout();',
        `    current = steps(buf, ${syms.map((d) => `dims.${d}`).join(', ')});`,
        '  }',
        '  current.stage(params, inputs);',
        '  return current;',
        '}',
        '',
        '/** Runs the model forward; scalar outputs are numbers. */',
        `export function forward(params${t(': Params')}, inputs${t(': Inputs')})${t(': Outputs')} {`,
        '  prepare(params, inputs).forwardPass();',
        '  return outputsObj;',
        '}',
        '',
        '/** The loss and the gradient of the loss with respect to every param. */',
        `export function valueAndGrad(params${t(': Params')}, inputs${t(': Inputs')})${t(': { loss: number; grads: Grads }')} {`,
        '  const s = prepare(params, inputs);',
        '  s.forwardPass();',
        '  s.backwardPass();',
        '  return result;',
        '}',
        ...updateDecl(m, t),
      ]
    : [
        ...preamble([...(backend ? backend.buffersDecl(arrays, t) : [`const buffers = [${arrays.join(', ')}]${t(' as const')};`]), 'const buf = {', ...entries, '};']),
        ...checkFiniteDecl(m, t),
        ...stageFn,
        ...kernels.code,
        '',
        ...forwardFn,
        '',
        ...outputsDecl,
        '',
        '/** Runs the model forward; scalar outputs are numbers. */',
        `export function forward(params${t(': Params')}, inputs${t(': Inputs')})${t(': Outputs')} {`,
        '  checkArgs(params, inputs);',
        '  stage(params, inputs);',
        '  forwardPass();',
        '  return outputsObj;',
        '}',
        '',
        ...resultDecl,
        '',
        '/** The loss and the gradient of the loss with respect to every param. */',
        `export function valueAndGrad(params${t(': Params')}, inputs${t(': Inputs')})${t(': { loss: number; grads: Grads }')} {`,
        '  checkArgs(params, inputs);',
        '  stage(params, inputs);',
        '  forwardPass();',
        ...destructure(bwd.used),
        ...bwdCode,
        ...gradCopies,
        `  ${lossSlot}[0] = buf.${lossName}[0];`,
        '  return result;',
        '}',
        ...updateDecl(m, t),
      ];
  return lines.join('\n') + '\n';
}

/** --optimizer sgd: `update(params, grads, lr)`, every param minus lr times its gradient, in place. */
function updateDecl(m: ModuleInfo, t: Typed): string[] {
  if (m.optimizer !== 'sgd') return [];
  const ps = params(m.fwd);
  const check = (kind: string, obj: string) => (p: (typeof ps)[number]) =>
    `expectArray('${kind}', ${JSON.stringify(p.name)}, ${member(obj, p.name)}, Float32Array, ${sizeText(numelSize(p.shape))}, '${p.dtype}[${p.shape.join(',')}]');`;
  return [
    '',
    '/** One step of stochastic gradient descent, in place: each param minus lr times its gradient (--optimizer sgd). */',
    `export function update(params${t(': Params')}, grads${t(': Grads')}, lr${t(': number')})${t(': void')} {`,
    `  if (typeof lr !== 'number' || !Number.isFinite(lr)) throw new TypeError(\`${m.name}: the learning rate must be a finite number, got \${lr}\`);`,
    ...ps.map(check('param', 'params')),
    ...ps.map(check('gradient', 'grads')),
    ...ps.map((p) => {
      const n = sizeText(numelSize(p.shape));
      return `{ const p = ${member('params', p.name)}, g = ${member('grads', p.name)}; for (let i = 0; i < ${n}; i++) p[i]${t('!')} -= lr * g[i]${t('!')}; }`;
    }),
    '}',
  ];
}

/** `const { B } = dims;` for the symbolic dimensions that code uses. */
function sizesDecl(syms: readonly string[], code: readonly string[]): string[] {
  const text = code.filter((l) => !l.trimStart().startsWith('//')).join('\n');
  const used = syms.filter((d) => new RegExp(`\\b${d}\\b`).test(text));
  return used.length ? [`const { ${used.join(', ')} } = dims;`] : [];
}

/**
 * The arena of a model with symbolic dimensions: `arena()` names the arrays for the sizes in
 * `dims`, and `layout()`, called when a call brings other sizes, first grows the arrays whose
 * size has symbols (never shrinking them, so that equal or smaller sizes allocate nothing).
 */
function symbolicArena(m: ModuleInfo, plan: Plan, entries: readonly string[], t: Typed): string[] {
  const syms = symbols(m.fwd);
  const grow = plan.buffers.flatMap((b) => {
    if (isStatic(b.size)) return [];
    const n = sizeText(b.size);
    return [`if (buffers[${b.id}].length < ${n}) buffers[${b.id}] = new ${ARRAY[b.dtype]}(${n});`];
  });
  return [
    '/** The arrays of the arena, named by value, for the sizes in `dims`. */',
    `function arena() {`,
    ...sizesDecl(syms, entries),
    '  return {',
    ...entries,
    '  };',
    '}',
    '/** The arena as last laid out: what the outputs and the gradients are read from. */',
    'let buf = arena();',
    `const laidOut = { ${syms.map((d) => `${d}: 0`).join(', ')} };`,
    '',
    '/** Lays the arena out for the sizes of this call, growing the arrays that are too small. */',
    `function layout()${t(': void')} {`,
    `  const { ${syms.join(', ')} } = dims;`,
    ...grow,
    ...syms.map((d) => `laidOut.${d} = ${d};`),
    '  buf = arena();',
    '}',
    '',
  ];
}

/** Code for the largest of some sizes: a number, or `Math.max(64, B)` when some have symbols. */
function maxSizeCode(sizes: readonly Size[]): string {
  const byKey = new Map<string, Size>();
  for (const s of sizes) {
    const k = s.syms.join(',');
    if (!byKey.has(k) || byKey.get(k)!.coef < s.coef) byKey.set(k, s);
  }
  const parts = [...byKey.values()].filter((s) => s.coef > 0);
  if (parts.length === 0) return '0';
  return parts.length === 1 ? sizeText(parts[0]!) : `Math.max(${parts.map(sizeText).join(', ')})`;
}

function inputsOf(m: ModuleInfo) {
  return m.fwd.insts.flatMap((i) => (i.op === 'input' ? [{ name: i.attrs.name }] : []));
}

/** The arena name (value name) of a staged param or input. */
function stagedName(m: ModuleInfo, obj: 'params' | 'inputs', dslName: string): string {
  const op = obj === 'params' ? 'param' : 'input';
  const inst = m.fwd.insts.find((i) => i.op === op && i.attrs.name === dslName)!;
  return m.fwd.value(inst.result).name;
}

function outputExpr(g: Graph, v: ValueId, plan: Plan): string {
  const name = valueName(g, v);
  const s = plan.storage.get(name);
  if (s?.kind === 'literal') return E.num(s.value).code;
  return g.type(v).shape.length === 0 ? `buf.${name}[0]` : `buf.${name}`;
}

/** The accumulator length a reduce unit over leading axes needs. */
function accNeed(u: Unit): Size {
  const r = u.insts.find((i) => i.op === 'sum' || i.op === 'max') as InstOf<'sum'> | undefined;
  if (!r) return size(0);
  const shape = u.graph.type(r.args[0]!).shape;
  return numelSize(shape.filter((_d, i) => !r.attrs.axes.includes(i)));
}

function accCount(u: Unit): number {
  return u.insts.filter((i) => i.op === 'sum' || i.op === 'max').length;
}
