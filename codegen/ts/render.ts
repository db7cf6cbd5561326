// The flat TypeScript renderer of the kernel form (codegen/kernel/form.ts): a kernel becomes loops
// over its domain (size-1 axes dropped, axes that every access walks contiguously merged:
// codegen/loops.ts), its nodes expressions with the parentheses they need (codegen/expr.ts), a
// local wherever a node is used more than once. A reduction over leading axes walks its operand
// in memory order into the arena's `_acc` arrays (Float64Array); any other keeps its axes
// outermost with a scalar accumulator per reduction (`_sum0`, `_max1`), f64 as JavaScript's
// numbers are. `renderAt` renders a routine's epilogue at one point of its result, inside the
// routine's own loops (a matmul's tile, a convolution's plane).

import type { Size } from '../../ir/dims.js';
import { numelSize, size, sizeText, stridesSize } from '../../ir/dims.js';
import { CompileError } from '../../ir/errors.js';
import type { Poly } from '../../ir/layout.js';
import { polyAdd } from '../../ir/layout.js';
import * as E from '../expr.js';
import type { Expr } from '../expr.js';
import type { Access as LoopAccess } from '../loops.js';
import { nest } from '../loops.js';
import type { Access, AluOp, BinaryOp, Kernel, Node, Store, UnaryOp } from '../kernel/form.js';
import { argsOf, epilogueNodes, neededNodes, offsetOf, offsetTerms } from '../kernel/form.js';
import { storedAfterReduction } from '../kernel/eval.js';
import type { Capabilities } from '../kernel/decompose.js';
import { capabilities, decomposeMapped } from '../kernel/decompose.js';

/** How the rendered code names things. */
export interface Names {
  /** The code name of an array (the code reads it as `name[index]`). */
  arr(name: string): string;
  /** The graph value each node computes: its local's name. */
  readonly nodes: ReadonlyMap<number, string>;
  /** The alias a load reads its array through (a view the module names), by node. */
  readonly views: ReadonlyMap<number, string>;
}

/** Where the nodes are evaluated: index expressions of accesses and coordinates, and values given by the caller. */
interface Point {
  index(a: Access): string;
  coord(axis: number): string;
  /** A node's value given by the caller (a reduction's accumulator). */
  readonly given?: ReadonlyMap<number, Expr>;
  /** A load's value given by the caller (a routine's result in a register, a value read once per plane). */
  readonly loaded?: (a: Access) => Expr | undefined;
}

const ONE = E.num(1);
const ZERO = E.num(0);
const and = E.bin('&&', 5);

/**
 * The unary primitives JavaScript has (Math has no erf: it is decomposed; the bit-level
 * primitives toint, bits and frombits are not rendered, and no decomposition JavaScript needs
 * uses them).
 */
type TsUnary = Exclude<UnaryOp, 'cast' | 'erf' | 'toint' | 'bits' | 'frombits'>;
/** The binary primitives JavaScript renders (not the i32 bit operations shl, shr, and, or). */
type TsBinary = Exclude<BinaryOp, 'shl' | 'shr' | 'and' | 'or'>;

/** Each unary primitive in JavaScript (the GPU.js renderer's table starts from it: gpu-kernel.ts). */
export const JS_UNARY: { readonly [K in TsUnary]: (a: Expr) => Expr } = {
  neg: E.neg,
  recip: (a) => E.div(ONE, a),
  abs: (a) => E.call('Math.abs', a),
  exp: (a) => E.call('Math.exp', a),
  log: (a) => E.call('Math.log', a),
  sqrt: (a) => E.call('Math.sqrt', a),
  tanh: (a) => E.call('Math.tanh', a),
  sin: (a) => E.call('Math.sin', a),
  cos: (a) => E.call('Math.cos', a),
  log1p: (a) => E.call('Math.log1p', a),
  expm1: (a) => E.call('Math.expm1', a),
  floor: (a) => E.call('Math.floor', a),
};

/**
 * Binary primitives in JavaScript (the GPU.js renderer's too, but pow); a comparison with a
 * literal on its left reads the other way round (`x > 0`).
 */
export const JS_BINARY: { readonly [K in TsBinary]: (a: Expr, b: Expr) => Expr } = {
  add: E.add,
  sub: E.sub,
  mul: E.mul,
  div: E.div,
  max: (a, b) => E.call('Math.max', a, b),
  min: (a, b) => E.call('Math.min', a, b),
  pow: E.pow, // a constant integer or half-integer exponent is products and √ (decompose.ts's expandedPower)
  lt: (a, b) => (E.literal(a) !== undefined ? E.rel('>')(b, a) : E.rel('<')(a, b)),
  le: (a, b) => (E.literal(a) !== undefined ? E.rel('>=')(b, a) : E.rel('<=')(a, b)),
  eq: E.rel('==='),
};

/** What the flat module computes natively: its tables' primitives, cast and where; the rest is decomposed (codegen/kernel/decompose.ts). */
export const TS_CAPABILITIES: Capabilities = capabilities('flat TypeScript', [...(Object.keys(JS_UNARY) as AluOp[]), ...(Object.keys(JS_BINARY) as AluOp[]), 'cast', 'where']);

/** The kernel in the flat module's primitives, with the names of its nodes carried over. */
function native(k: Kernel, names: Names): { k: Kernel; names: Names } {
  const d = decomposeMapped(k, TS_CAPABILITIES);
  if (d.kernel === k) return { k, names };
  const move = (m: ReadonlyMap<number, string>) => new Map([...m].map(([i, n]) => [d.map[i]!, n] as const));
  return { k: d.kernel, names: { arr: names.arr, nodes: move(names.nodes), views: move(names.views) } };
}

const isAtom = (e: Expr) => e.prec >= E.P.ATOM || E.literal(e) !== undefined;

/**
 * The statements computing the nodes of `which` (in order) at one point, each store of `stores`
 * after its node; returns the lines and each node's expression.
 */
function statements(k: Kernel, which: readonly boolean[], storeAfter: boolean | undefined, names: Names, at: Point, taken: Set<string>) {
  const stores = k.stores.filter((s) => storeAfter === undefined || storedAfterReduction(k, s.access.strides) === storeAfter);
  const uses = k.nodes.map(() => 0);
  const storeCount = k.nodes.map(() => 0);
  // a reduction's operand is used by it, whose accumulation the caller writes
  k.nodes.forEach((n, i) => (which[i] || n.op === 'reduce') && argsOf(n).forEach((a) => uses[a]!++));
  for (const s of stores) storeCount[s.node]!++;
  const lines: string[] = [];
  const exprs: Expr[] = [];
  const local = (i: number, e: Expr): Expr => {
    if (isAtom(e)) return e;
    const base = `_${names.nodes.get(i) ?? `n${i}`}`;
    let n = base;
    for (let c = 1; taken.has(n); c++) n = `${base}_${c}`;
    taken.add(n);
    lines.push(`const ${n} = ${e.code};`);
    return E.atom(n);
  };
  const build = (i: number): Expr => {
    const given = at.given?.get(i);
    if (given) return given;
    const n = k.nodes[i]!;
    const x = (j: number) => exprs[j]!;
    switch (n.op) {
      case 'const':
        return E.num(n.value);
      case 'load':
        return load(n.access, names.views.get(i) ?? n.access.arg, names, at);
      case 'coord':
        return E.atom(at.coord(n.axis));
      case 'dim':
        return E.atom(n.name); // the bound size, a local of every function that uses it
      case 'reduce':
        throw new CompileError(`internal: the flat module's renderer met a reduction outside its loops`);
      case 'where': {
        // where(c = 0, b, a), a select, reads as `c !== 0 ? a : b`
        const c = k.nodes[n.args[0]]!;
        if (c.op === 'eq' && E.literal(x(c.args[1])) === 0 && uses[n.args[0]] === 1) return E.cond(E.rel('!==')(x(c.args[0]), x(c.args[1])), x(n.args[2]), x(n.args[1]));
        return E.cond(x(n.args[0]), x(n.args[1]), x(n.args[2]));
      }
      case 'cast':
        return k.nodes[n.args[0]]!.dtype === 'bool' ? E.cond(x(n.args[0]), ONE, ZERO) : x(n.args[0]);
      default: {
        const f = argsOf(n).length === 1 ? (JS_UNARY as Partial<Record<string, (a: Expr) => Expr>>)[n.op] : undefined;
        const g = argsOf(n).length === 2 ? (JS_BINARY as Partial<Record<string, (a: Expr, b: Expr) => Expr>>)[n.op] : undefined;
        if (f) return f(x(n.args[0]!));
        if (g) return g(x(n.args[0]!), x(n.args[1]!));
        throw new CompileError(`internal: the flat module's renderer met ${n.op}, which decompose should have rewritten`);
      }
    }
  };
  k.nodes.forEach((_n, i) => {
    if (!which[i]) return;
    let e = build(i);
    if (uses[i]! > 1 || (storeCount[i]! > 0 && uses[i]! > 0) || storeCount[i]! > 1) e = local(i, e);
    exprs[i] = e;
    for (const s of stores) if (s.node === i) lines.push(`${names.arr(s.access.arg)}[${at.index(s.access)}] = ${e.code};`);
  });
  return { lines, exprs };
}

function load(a: Access, array: string, names: Names, at: Point): Expr {
  const given = at.loaded?.(a);
  if (given) return given;
  const read = E.atom(`${names.arr(array)}[${at.index(a)}]`);
  const guards = (a.guards ?? []).flatMap((g) => {
    const c = E.atom(at.coord(g.axis));
    return [...(g.lo > 0 ? [E.rel('>=')(c, E.num(g.lo))] : []), E.rel('<')(c, E.atom(sizeText(g.hi)))];
  });
  return guards.length ? E.cond(guards.reduce(and), read, ZERO) : read;
}

/** The accesses of a loop nest, deduplicated by index map; coordinates are accesses too (stride 1 on their axis). */
class Accesses {
  readonly list: (LoopAccess & { base: Poly })[] = [];
  private readonly keys = new Map<string, number>();

  add(strides: readonly Size[], offset: Size | Poly = []): void {
    const key = `${strides.map(sizeText).join(',')}+${offsetTerms(offset).map(sizeText).join('+')}`;
    if (!this.keys.has(key)) {
      this.keys.set(key, this.list.length);
      this.list.push({ strides, base: offsetTerms(offset) });
    }
  }

  at(idx: readonly string[], strides: readonly Size[], offset: Size | Poly = []): string {
    return idx[this.keys.get(`${strides.map(sizeText).join(',')}+${offsetTerms(offset).map(sizeText).join('+')}`)!]!;
  }
}

const unit = (rank: number, axis: number) => Array.from({ length: rank }, (_x, d) => size(d === axis ? 1 : 0));

/** Registers the accesses the nodes of `which` and their stores make, over the axes `axes` of the domain. */
function collect(k: Kernel, which: readonly boolean[], storeAfter: boolean | undefined, axes: readonly number[], acc: Accesses): void {
  const pick = (st: readonly Size[]) => axes.map((d) => st[d]!);
  const coord = (d: number) => acc.add(pick(unit(k.domain.length, d)));
  k.nodes.forEach((n, i) => {
    if (!which[i]) return;
    if (n.op === 'load') {
      acc.add(pick(n.access.strides), n.access.offset);
      for (const g of n.access.guards ?? []) coord(g.axis);
    } else if (n.op === 'coord') coord(n.axis);
  });
  for (const s of k.stores) if (storeAfter === undefined || storedAfterReduction(k, s.access.strides) === storeAfter) acc.add(pick(s.access.strides), s.access.offset);
}

/** The point of a nest over the axes `axes` of the domain, whose accesses are `acc`. */
function pointOf(k: Kernel, axes: readonly number[], acc: Accesses, idx: readonly string[], given?: ReadonlyMap<number, Expr>): Point {
  const pick = (st: readonly Size[]) => axes.map((d) => st[d]!);
  return {
    index: (a) => acc.at(idx, pick(a.strides), a.offset),
    coord: (d) => acc.at(idx, pick(unit(k.domain.length, d))),
    given,
  };
}

/** A kernel as statements of the flat module. `acc(k)`: the arena's k-th accumulator array. */
export function renderKernel(kernel: Kernel, kernelNames: Names, acc: (n: number) => string): string[] {
  const { k, names } = native(kernel, kernelNames);
  const all = k.domain.map((_d, i) => i);
  const split = boxes(k, names);
  if (split) return split.flatMap((b) => renderKernel(b.k, b.names, acc));
  if (k.axes.length === 0) {
    const which = k.nodes.map(() => true);
    const a = new Accesses();
    collect(k, which, undefined, all, a);
    return nest(k.domain, a.list, (idx) => statements(k, which, undefined, names, pointOf(k, all, a, idx), new Set()).lines);
  }
  return renderReduction(k, names, acc);
}

/**
 * A copy whose loads have guards (pad, concat) as boxes of its domain in which each guard holds
 * everywhere or nowhere, so that no element tests one: a load outside its window is a 0, and a
 * sum with it is its other operand. Undefined where the guarded axes or bounds are symbolic.
 */
function boxes(k: Kernel, names: Names): { k: Kernel; names: Names }[] | undefined {
  const guards = k.nodes.flatMap((n) => (n.op === 'load' ? (n.access.guards ?? []) : []));
  if (guards.length === 0 || k.axes.length > 0 || k.nodes.some((n) => n.op === 'coord')) return undefined;
  const gAxes = [...new Set(guards.map((g) => g.axis))].sort((a, b) => a - b);
  if (!gAxes.every((d) => typeof k.domain[d] === 'number') || !guards.every((g) => g.hi.syms.length === 0)) return undefined;
  const cuts = gAxes.map((d) => {
    const n = k.domain[d] as number;
    const at = guards.flatMap((g) => (g.axis === d ? [g.lo, g.hi.coef] : [])).filter((x) => x > 0 && x < n);
    return [...new Set([0, n, ...at])].sort((a, b) => a - b);
  });
  let picks: number[][] = [[]];
  for (const c of cuts) picks = picks.flatMap((p) => c.slice(1).map((_x, j) => [...p, j]));
  const out: { k: Kernel; names: Names }[] = [];
  for (const pick of picks) {
    const lo = new Map(gAxes.map((d, j) => [d, cuts[j]![pick[j]!]!]));
    const hi = new Map(gAxes.map((d, j) => [d, cuts[j]![pick[j]! + 1]!]));
    const shift = (a: Access): Access | undefined =>
      gAxes.reduce<Access | undefined>((acc, d) => {
        const off = acc && polyAdd(acc.offset, { coef: a.strides[d]!.coef * lo.get(d)!, syms: a.strides[d]!.syms });
        return off && { arg: a.arg, strides: a.strides, offset: offsetOf(off) };
      }, { arg: a.arg, strides: a.strides, offset: a.offset });
    const nodes: Node[] = [];
    const map: number[] = [];
    const zero = new Set<number>();
    const nodeNames = new Map<number, string>();
    const views = new Map<number, string>();
    for (const [i, n] of k.nodes.entries()) {
      let node: Node;
      if (n.op === 'load') {
        const holds = (n.access.guards ?? []).every((g) => lo.get(g.axis)! >= g.lo && hi.get(g.axis)! <= g.hi.coef);
        const access = shift(n.access);
        if (!access) return undefined;
        node = holds ? { op: 'load', dtype: n.dtype, access } : { op: 'const', dtype: n.dtype, value: 0 };
        if (!holds) zero.add(nodes.length);
      } else if (n.op === 'add' && n.args.some((a) => zero.has(map[a]!))) {
        map[i] = zero.has(map[n.args[0]]!) ? map[n.args[1]]! : map[n.args[0]]!;
        continue;
      } else node = { ...n, ...('args' in n ? { args: n.args.map((a) => map[a]!) } : {}) } as Node;
      map[i] = nodes.length;
      if (names.nodes.has(i)) nodeNames.set(nodes.length, names.nodes.get(i)!);
      if (names.views.has(i)) views.set(nodes.length, names.views.get(i)!);
      nodes.push(node);
    }
    const stores: Store[] = [];
    for (const st of k.stores) {
      const access = shift(st.access);
      if (!access) return undefined;
      stores.push({ node: map[st.node]!, access });
    }
    const domain = k.domain.map((n, d) => (lo.has(d) ? hi.get(d)! - lo.get(d)! : n));
    out.push({ k: { ...k, domain, nodes, stores }, names: { arr: names.arr, nodes: nodeNames, views } });
  }
  return out;
}

function renderReduction(k: Kernel, names: Names, accArray: (n: number) => string): string[] {
  const all = k.domain.map((_d, i) => i);
  const kept = all.filter((d) => !k.axes.includes(d));
  const keptDims = kept.map((d) => k.domain[d]!);
  const reduces = k.nodes.flatMap((n, i) => (n.op === 'reduce' ? [{ i, red: n.red, x: n.args[0] }] : []));
  const epi = epilogueNodes(k);
  const bodyStores = k.stores.filter((s) => !storedAfterReduction(k, s.access.strides)).map((s) => s.node);
  const body = neededNodes(k, [...reduces.map((r) => r.x), ...bodyStores]).map((b, i) => b && !epi[i]);
  const after = neededNodes(k, k.stores.filter((s) => storedAfterReduction(k, s.access.strides)).map((s) => s.node));
  const init = (red: 'sum' | 'max') => (red === 'sum' ? '0' : '-Infinity');
  const accumulate = (a: string, v: Expr, r: number): string[] =>
    reduces[r]!.red === 'sum' ? [`${a} += ${v.code};`] : isAtom(v) ? [`if (${v.code} > ${a}) ${a} = ${v.code};`] : [`const _v${r} = ${v.code};`, `if (_v${r} > ${a}) ${a} = _v${r};`];
  // the accumulators' names are no local's
  const reserved = () => new Set(reduces.flatMap((r, j) => [`_acc${j}`, `_${r.red}${j}`, `_v${j}`]));
  const bodyAcc = new Accesses();
  collect(k, body, false, all, bodyAcc);
  const epiAcc = new Accesses();
  collect(k, after, true, kept, epiAcc);
  const leading = kept.length > 0 && k.axes.every((a, j) => a === j);
  if (leading) {
    // reduced axes outermost: walk the operand in memory order, accumulating per kept position
    const keptAt = all.map((d) => (kept.includes(d) ? stridesSize(keptDims)[kept.indexOf(d)]! : size(0)));
    bodyAcc.add(keptAt);
    const accAt = stridesSize(keptDims);
    epiAcc.add(accAt);
    const n = sizeText(numelSize(keptDims));
    return [
      `for (let i = 0; i < ${n}; i++) {`,
      ...reduces.map((r, j) => `${accArray(j)}[i] = ${init(r.red)};`),
      '}',
      ...nest(k.domain, bodyAcc.list, (idx) => {
        const { lines, exprs } = statements(k, body, false, names, pointOf(k, all, bodyAcc, idx), reserved());
        return [...lines, ...reduces.flatMap((r, j) => accumulate(`${accArray(j)}[${bodyAcc.at(idx, keptAt)}]`, exprs[r.x]!, j))];
      }),
      ...nest(keptDims, epiAcc.list, (idx) => {
        const given = new Map(reduces.map((r, j) => [r.i, E.atom(`${accArray(j)}[${epiAcc.at(idx, accAt)}]`)] as const));
        return statements(k, after, true, names, pointOf(k, kept, epiAcc, idx, given), reserved()).lines;
      }),
    ];
  }
  // kept axes outermost: a scalar accumulator per reduction
  const scalar = (r: number) => `_${reduces[r]!.red}${r}`;
  const outer = new Accesses();
  for (const a of bodyAcc.list) outer.add(kept.map((d) => size(a.strides[d]!)), a.base);
  for (const a of epiAcc.list) outer.add(a.strides.map((s) => size(s)), a.base);
  const inner = new Accesses();
  for (const a of bodyAcc.list) inner.add(k.axes.map((d) => size(a.strides[d]!)));
  const keptOf = (st: readonly Size[]) => kept.map((d) => st[d]!);
  const redOf = (st: readonly Size[]) => k.axes.map((d) => st[d]!);
  return nest(
    keptDims,
    outer.list,
    (oIdx) => {
      const given = new Map(reduces.map((r, j) => [r.i, E.atom(scalar(j))] as const));
      const ep: Point = { index: (a) => outer.at(oIdx, keptOf(a.strides), a.offset), coord: (d) => outer.at(oIdx, keptOf(unit(k.domain.length, d))), given };
      return [
        ...reduces.map((r, j) => `let ${scalar(j)} = ${init(r.red)};`),
        ...nest(
          k.axes.map((d) => k.domain[d]!),
          inner.list,
          (iIdx) => {
            const plus = (o: string, i: string) => (o === '0' ? i : i === '0' ? o : `${o} + ${i}`);
            const at = (st: readonly Size[], off: Size | Poly) => plus(outer.at(oIdx, keptOf(st), off), inner.at(iIdx, redOf(st)));
            const p: Point = { index: (a) => at(a.strides, a.offset), coord: (d) => at(unit(k.domain.length, d), []) };
            const { lines, exprs } = statements(k, body, false, names, p, reserved());
            return [...lines, ...reduces.flatMap((r, j) => accumulate(scalar(j), exprs[r.x]!, j))];
          },
          ['p', 'q', 'r', 's'],
        ),
        ...statements(k, after, true, names, ep, reserved()).lines,
      ];
    },
    ['i', 'j', 'k', 'l'],
  );
}

/**
 * A routine's epilogue kernel at one point of its result, inside the routine's loops: `index`
 * gives the index of an access there, `loaded` the value of a load the routine has at hand (its
 * result, in a register).
 */
export function renderAt(kernel: Kernel, kernelNames: Names, index: (a: Access) => string, loaded: (a: Access) => Expr | undefined): string[] {
  const { k, names } = native(kernel, kernelNames);
  const which = k.nodes.map(() => true);
  const coord = () => {
    throw new CompileError(`internal: the flat module renders no coordinate in a routine's epilogue`);
  };
  return statements(k, which, undefined, names, { index, coord, loaded }, new Set()).lines;
}

