// The kernel-form wasm renderer's first half: a kernel of the kernel form (codegen/kernel/form.ts)
// made ready for the loops of codegen/wasm/kernel.ts. Sizes become numbers (the static module) or,
// with `rt` (the symbolic module), run-time values where symbolic (an i32 the host writes into a
// parameter block when a call brings new sizes: `Rt`), accesses byte addresses and element strides (a power with a constant integer or half-integer
// exponent is products and square roots before the decomposition pass), a copy with guards (pad, concat) boxes of its domain in
// which every guard holds everywhere or nowhere, axes of extent 1 are dropped and adjacent axes
// that every access walks as one are merged.

import type { Dim, Size } from '../../ir/dims.js';
import { isStatic, mulSize, size, sizeText } from '../../ir/dims.js';
import { CompileError } from '../../ir/errors.js';
import type { Poly } from '../../ir/layout.js';
import { polyAdd } from '../../ir/layout.js';
import type { EType, Kernel, Node } from '../kernel/form.js';
import { argsOf, offsetTerms } from '../kernel/form.js';

/**
 * A run-time value (the symbolic module): an i32 the host computes for each set of sizes and
 * writes into the parameter block, named by `key`; `size` where it is a product of dimensions
 * (a size or a stride, not an address).
 */
export interface Rt {
  readonly key: string;
  readonly size?: Size;
  /** Bytes added to the value (an address shifted to a box of a guarded copy). */
  readonly plus?: number;
}

/** A size, stride or address: a number known at build time, or a run-time value. */
export type Val = number | Rt;

/** How a kernel with symbolic sizes gets its run-time values (the symbolic module). */
export interface RtSizes {
  /** The byte address of element `offset` of array `arg`, undefined where it is not in the memory. */
  address(arg: string, offset: Size): Val | undefined;
  /** The byte address of the element at a sum of sizes of other symbols (a box of a guarded copy shifted along axes of such strides). */
  addressSum?(arg: string, offset: readonly Size[]): Val | undefined;
}

/** A size as a value: a number where static, else the run-time value keyed by its text. */
export const valOf = (s: Size): Val => (isStatic(s) ? s.coef : { key: sizeText(s), size: s });
export const valKey = (v: Val): string => (typeof v === 'number' ? String(v) : `{${v.key}}${v.plus ? `+${v.plus}` : ''}`);
const valEq = (a: Val, b: Val | undefined): boolean => b !== undefined && valKey(a) === valKey(b);
function valMul(a: Val, b: Val): Val | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  const x = typeof a === 'number' ? size(a) : a.size;
  const y = typeof b === 'number' ? size(b) : b.size;
  return x && y ? valOf(mulSize(x, y)) : undefined;
}

/** An access of a flat kernel: a byte address and a stride (in elements) per axis. */
export interface FlatAccess {
  readonly base: Val;
  readonly strides: readonly Val[];
}

/** A node of a flat kernel: a load names its access by index, a bound size (symbolic module) its run-time value. */
export type FlatNode = Exclude<Node, { op: 'load' } | { op: 'dim' }> | { readonly op: 'load'; readonly dtype: EType; readonly a: number } | { readonly op: 'dim'; readonly dtype: 'f32'; readonly v: Rt };

export interface FlatKernel {
  readonly dims: readonly Val[];
  readonly reduced: readonly boolean[];
  readonly nodes: readonly FlatNode[];
  readonly accesses: readonly FlatAccess[];
  readonly stores: readonly { readonly node: number; readonly a: number }[];
}

/** A flat kernel whose sizes are all known at build time (flatten without `rt`). */
export type StaticFlatKernel = Omit<FlatKernel, 'dims' | 'accesses'> & { readonly dims: readonly number[]; readonly accesses: readonly { readonly base: number; readonly strides: readonly number[] }[] };

/** What the wasm target cannot render (yet): a CompileError naming the kernel and what. */
export class KernelUnsupported extends CompileError {}

export function unsupported(k: { name: string }, what: string): KernelUnsupported {
  return new KernelUnsupported(`the wasm target cannot render kernel ${k.name}: ${what}`, 'this kernel runs as the flat module\'s loop until the wasm renderer has it (issue #29)');
}

/**
 * The flat kernels of `k` (one per box of its guards), run in order; `addr` gives an array's byte
 * address; with `rt` (the symbolic module) symbolic sizes are run-time values and `rt` gives the
 * addresses.
 */
export function flatten(k: Kernel, addr: (arg: string) => number | undefined, opts: { readonly squeeze?: boolean; readonly rt?: RtSizes } = {}): FlatKernel[] {
  const rt = opts.rt;
  const num = (s: Dim | Size): Val => {
    if (typeof s === 'number') return s;
    if (rt) return valOf(size(s));
    if (typeof s === 'object' && s.syms.length === 0) return s.coef;
    throw unsupported(k, `a symbolic size (${typeof s === 'string' ? s : s.syms.join('*')})`);
  };
  const dims = k.domain.map(num);
  const accesses: { base: Val; strides: Val[]; guards: { axis: number; lo: number; hi: Val }[]; arg: string; offset: Poly }[] = [];
  const access = (a: Extract<Node, { op: 'load' }>['access']) => {
    const terms = offsetTerms(a.offset);
    const off = rt ? 0 : terms.reduce((s, t) => s + (num(t) as number), 0);
    // (an offset of terms of different symbols, `2*B + 1`: a sum of sizes from the parameter block)
    const at = !rt ? addr(a.arg) : terms.length <= 1 ? rt.address(a.arg, terms[0] ?? size(0)) : rt.addressSum?.(a.arg, terms);
    if (at === undefined) throw unsupported(k, `array ${a.arg} is not in the memory`);
    const base = rt ? at : (at as number) + 4 * off;
    accesses.push({ base, strides: a.strides.map(num), guards: (a.guards ?? []).map((g) => ({ axis: g.axis, lo: g.lo, hi: num(g.hi) })), arg: a.arg, offset: terms });
    return accesses.length - 1;
  };
  const nodes: FlatNode[] = [];
  const map: number[] = [];
  const push = (n: FlatNode) => nodes.push(n) - 1;
  for (const n of k.nodes) {
    if (n.op === 'dim' && !rt) throw unsupported(k, `the bound size ${n.name}`);
    const args = argsOf(n).map((a) => map[a]!);
    if (n.op === 'load') map.push(push({ op: 'load', dtype: n.dtype, a: access(n.access) }));
    else if (n.op === 'dim') map.push(push({ op: 'dim', dtype: 'f32', v: { key: n.name, size: size(n.name) } }));
    else map.push(push({ ...n, ...('args' in n ? { args } : {}) } as FlatNode));
  }
  const stores = k.stores.map((s) => ({ node: map[s.node]!, a: access(s.access) }));
  const reduced = dims.map((_d, i) => k.axes.includes(i));
  const guarded = accesses.some((a) => a.guards.length > 0);
  const plain = (ks: Box[]) => ks.map((b) => (opts.squeeze === false ? { ...b, reduced } : squeeze({ ...b, reduced })));
  if (!guarded) return plain([{ dims, nodes, accesses, stores }]);
  if (k.axes.length || nodes.some((n) => n.op === 'coord')) throw unsupported(k, 'a guarded load in a reduction or beside a coordinate');
  // (the guarded axes' sizes and the guards' bounds must be numbers; the strides along them too, but in the symbolic module, whose shifted addresses are run-time values)
  const gAxes = new Set(accesses.flatMap((a) => a.guards.map((g) => g.axis)));
  const isNum = (v: Val) => typeof v === 'number';
  if (![...gAxes].every((d) => isNum(dims[d]!)) || !accesses.every((a) => (rt || [...gAxes].every((d) => isNum(a.strides[d]!))) && a.guards.every((g) => isNum(g.hi))))
    throw unsupported(k, 'a guarded load (pad, concat) along a symbolic axis');
  // an address shifted along an axis of a run-time stride (the symbolic module): the address of the shifted element, a run-time value of its own
  // (along two axes whose strides are different products of symbols: a sum of sizes)
  const shifted = (a: (typeof accesses)[number], lo: ReadonlyMap<number, number>): Val => {
    const terms = polyAdd(a.offset, ...[...lo].map(([d, x]) => mulSize(typeof a.strides[d] === 'number' ? size(a.strides[d] as number) : (a.strides[d] as Rt).size!, x)));
    const at = terms.length <= 1 ? rt!.address(a.arg, terms[0] ?? size(0)) : rt!.addressSum?.(a.arg, terms);
    if (at === undefined) throw unsupported(k, 'a guarded load (pad, concat) whose shifted address is not in the memory');
    return at;
  };
  return plain(boxes(dims, nodes, accesses as ((typeof accesses)[number] & { guards: { axis: number; lo: number; hi: number }[] })[], stores, shifted));
}

type Box = { dims: Val[]; nodes: FlatNode[]; accesses: FlatAccess[]; stores: { node: number; a: number }[] };

/**
 * The boxes of a guarded copy's domain in which each guard holds everywhere or nowhere: a load
 * outside its window is the constant 0, and a sum with it its other operand.
 */
function boxes<A extends { base: Val; strides: Val[]; guards: { axis: number; lo: number; hi: number }[] }>(dims: Val[], nodes: FlatNode[], accesses: A[], stores: { node: number; a: number }[], shifted: (a: A, lo: ReadonlyMap<number, number>) => Val): Box[] {
  const gAxes = [...new Set(accesses.flatMap((a) => a.guards.map((g) => g.axis)))].sort((a, b) => a - b);
  const cuts = gAxes.map((d) => {
    const n = dims[d] as number;
    const at = accesses.flatMap((a) => a.guards.filter((g) => g.axis === d).flatMap((g) => [g.lo, g.hi])).filter((x) => x > 0 && x < n);
    return [...new Set([0, n, ...at])].sort((a, b) => a - b);
  });
  let picks: number[][] = [[]];
  for (const c of cuts) picks = picks.flatMap((p) => c.slice(1).map((_x, j) => [...p, j]));
  return picks.map((pick) => {
    const lo = new Map(gAxes.map((d, j) => [d, cuts[j]![pick[j]!]!]));
    const hi = new Map(gAxes.map((d, j) => [d, cuts[j]![pick[j]! + 1]!]));
    const moved = accesses.map((a) => {
      if (!gAxes.every((d) => typeof a.strides[d] === 'number')) return { base: lo.size && gAxes.some((d) => lo.get(d)) ? shifted(a, lo) : a.base, strides: a.strides };
      const by = 4 * gAxes.reduce((s, d) => s + (a.strides[d] as number) * lo.get(d)!, 0);
      return { base: typeof a.base === 'number' ? a.base + by : by ? { ...a.base, plus: (a.base.plus ?? 0) + by } : a.base, strides: a.strides };
    });
    const out: FlatNode[] = [];
    const map: number[] = [];
    const zero = new Set<number>();
    for (const n of nodes) {
      if (n.op === 'load') {
        const holds = accesses[n.a]!.guards.every((g) => lo.get(g.axis)! >= g.lo && hi.get(g.axis)! <= g.hi);
        if (!holds) zero.add(out.length);
        map.push(out.push(holds ? n : { op: 'const', dtype: n.dtype, value: 0 }) - 1);
      } else if (n.op === 'add' && n.args.some((a) => zero.has(map[a]!))) {
        map.push(zero.has(map[n.args[0]]!) ? map[n.args[1]]! : map[n.args[0]]!);
      } else map.push(out.push({ ...n, ...('args' in n ? { args: n.args.map((a) => map[a]!) } : {}) } as FlatNode) - 1);
    }
    const bd = dims.map((n, d) => (lo.has(d) ? hi.get(d)! - lo.get(d)! : n));
    return { dims: bd, nodes: out, accesses: moved, stores: stores.map((s) => ({ node: map[s.node]!, a: s.a })) };
  });
}

/**
 * Axes of extent 1 dropped (a coordinate along one is 0; one reduced axis is kept when all of
 * them would go, and one axis when the domain would have none), then adjacent axes of the same
 * kind (both kept or both reduced) merged where every access walks them as one and no
 * coordinate reads either.
 */
function squeeze(k: Box & { reduced: readonly boolean[] }): FlatKernel {
  if (k.dims.length === 0) return { dims: [1], reduced: [false], nodes: k.nodes, accesses: k.accesses.map((a) => ({ base: a.base, strides: [0] })), stores: k.stores };
  let keep = k.dims.map((n) => n !== 1);
  const lastReduced = k.reduced.lastIndexOf(true);
  if (lastReduced >= 0 && !keep.some((x, d) => x && k.reduced[d])) keep[lastReduced] = true;
  if (!keep.some((x) => x)) keep = keep.map((_x, d) => d === k.dims.length - 1);
  let axes = k.dims.map((_n, d) => d).filter((d) => keep[d]);
  let dims: Val[] = axes.map((d) => k.dims[d]!);
  let reduced = axes.map((d) => k.reduced[d]!);
  let strides = k.accesses.map((a) => axes.map((d) => a.strides[d]!));
  let nodes: FlatNode[] = k.nodes.map((n) => {
    if (n.op !== 'coord') return n;
    return keep[n.axis] ? { ...n, axis: axes.indexOf(n.axis) } : { op: 'const', dtype: 'i32', value: 0 };
  });
  const coords = () => new Set(nodes.flatMap((n) => (n.op === 'coord' ? [n.axis] : [])));
  for (let d = dims.length - 2; d >= 0; d--) {
    const c = coords();
    if (reduced[d] !== reduced[d + 1] || c.has(d) || c.has(d + 1)) continue;
    if (!strides.every((s) => valEq(s[d]!, valMul(s[d + 1]!, dims[d + 1]!)))) continue;
    const merged = valMul(dims[d]!, dims[d + 1]!);
    if (merged === undefined) continue;
    dims = [...dims.slice(0, d), merged, ...dims.slice(d + 2)];
    reduced = [...reduced.slice(0, d), reduced[d]!, ...reduced.slice(d + 2)];
    strides = strides.map((s) => [...s.slice(0, d), s[d + 1]!, ...s.slice(d + 2)]);
    nodes = nodes.map((n) => (n.op === 'coord' && n.axis > d ? { ...n, axis: n.axis - 1 } : n));
    axes = [...axes.slice(0, d), axes[d]!, ...axes.slice(d + 2)];
  }
  return { dims, reduced, nodes, accesses: k.accesses.map((a, i) => ({ base: a.base, strides: strides[i]! })), stores: k.stores };
}
