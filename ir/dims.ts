import type { Graph } from './graph.js';

// Dimensions. A dimension is a size known at build time (32) or a symbol ('B') that each call
// binds from the lengths of its inputs, so that one build serves every batch size. Products of
// dimensions (element counts, strides, buffer sizes) are `Size`s: a number times symbols, which
// the emitters print as code (`B * 64`).

/** A dimension: a size, or the name of a symbolic dimension bound by each call (`'B'`). */
export type Dim = number | string;

/** coef · Π syms, syms sorted: the product of some dimensions. */
export interface Size {
  readonly coef: number;
  readonly syms: readonly string[];
}

/** A symbol: an identifier that names a dimension bound per call. */
export const SYMBOL = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isSymbol(d: Dim): d is string {
  return typeof d === 'string';
}

export function size(d: Dim | Size): Size {
  if (typeof d === 'number') return { coef: d, syms: [] };
  if (typeof d === 'string') return { coef: 1, syms: [d] };
  return d;
}

export function mulSize(a: Dim | Size, b: Dim | Size): Size {
  const x = size(a);
  const y = size(b);
  return { coef: x.coef * y.coef, syms: [...x.syms, ...y.syms].sort() };
}

/** a / b when it is a product of dimensions (b's symbols among a's, coefficients dividing). */
export function divSize(a: Dim | Size, b: Dim | Size): Size | undefined {
  const x = size(a);
  const y = size(b);
  if (y.coef === 0 || x.coef % y.coef !== 0) return undefined;
  const syms = [...x.syms];
  for (const s of y.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return undefined;
    syms.splice(i, 1);
  }
  return { coef: x.coef / y.coef, syms };
}

export function sizeEq(a: Dim | Size, b: Dim | Size): boolean {
  const x = size(a);
  const y = size(b);
  return x.coef === y.coef && x.syms.length === y.syms.length && x.syms.every((s, i) => s === y.syms[i]);
}

export function isStatic(s: Dim | Size): boolean {
  return size(s).syms.length === 0;
}

/** The number of a static size (an internal error for a symbolic one). */
export function staticSize(s: Dim | Size): number {
  const x = size(s);
  if (x.syms.length) throw new Error(`internal: ${sizeText(x)} is not known at build time`);
  return x.coef;
}

/** Element count of a shape. */
export function numelSize(shape: readonly Dim[]): Size {
  return shape.reduce<Size>((acc, d) => mulSize(acc, d), size(1));
}

/** Row-major strides of a shape. */
export function stridesSize(shape: readonly Dim[]): Size[] {
  const st = new Array<Size>(shape.length);
  let s = size(1);
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s = mulSize(s, shape[d]!);
  }
  return st;
}

/** As text and as code: `64`, `B`, `B * 64`. */
export function sizeText(s: Dim | Size): string {
  const x = size(s);
  if (x.syms.length === 0) return String(x.coef);
  if (x.coef === 0) return '0';
  return (x.coef === 1 ? x.syms : [...x.syms, String(x.coef)]).join(' * ');
}

/** The symbols of a shape, each once, in order of appearance. */
export function symbolsOf(shape: readonly Dim[]): string[] {
  return [...new Set(shape.filter(isSymbol))];
}

/** A shape with its symbols replaced by their bound sizes. */
export function bindShape(shape: readonly Dim[], dims: Readonly<Record<string, number>>): number[] {
  return shape.map((d) => {
    if (typeof d === 'number') return d;
    const v = dims[d];
    if (v === undefined) throw new Error(`internal: dimension '${d}' is not bound`);
    return v;
  });
}

/** The size with its symbols replaced by their bound sizes. */
export function bindSize(s: Size, dims: Readonly<Record<string, number>>): number {
  return s.syms.reduce((acc, d) => acc * bindShape([d], dims)[0]!, s.coef);
}

/** A size as one dimension: a number, or a single symbol (undefined for `3 * B`, `B * T`). */
export function asDim(s: Size): Dim | undefined {
  if (s.syms.length === 0) return s.coef;
  return s.syms.length === 1 && s.coef === 1 ? s.syms[0] : undefined;
}

/** A shape known at build time as numbers (an internal error if it has symbols). */
export function staticShape(shape: readonly Dim[]): number[] {
  return shape.map((d) => staticSize(d));
}

/** A sum of sizes with the same symbols (zero terms drop out); an internal error otherwise. */
export function sumSizes(terms: readonly Size[]): Size {
  const nonzero = terms.filter((t) => t.coef !== 0);
  if (nonzero.length === 0) return size(0);
  const syms = nonzero[0]!.syms;
  if (!nonzero.every((t) => sizeEq({ coef: 1, syms: t.syms }, { coef: 1, syms })))
    throw new Error(`internal: cannot add ${nonzero.map(sizeText).join(' + ')} into one size`);
  return { coef: nonzero.reduce((a, t) => a + t.coef, 0), syms };
}

/** The inputs of a graph with their shapes. */
function inputShapes(g: Graph): { name: string; shape: readonly Dim[] }[] {
  return g.insts.flatMap((i) => (i.op === 'input' ? [{ name: i.attrs.name, shape: g.type(i.result).shape }] : []));
}

/** The symbolic dimensions of a model, in the order its inputs declare them. */
export function symbols(g: Graph): string[] {
  return [...new Set(inputShapes(g).flatMap((e) => symbolsOf(e.shape)))];
}

/**
 * Which input binds each symbolic dimension from its length, in binding order: the first input,
 * in declaration order, in which it is the only dimension not bound by an earlier binding (and
 * appears once). A symbol missing from the map cannot be bound from the inputs' lengths.
 */
export function dimBindings(g: Graph): Map<string, { input: string; per: Size }> {
  const out = new Map<string, { input: string; per: Size }>();
  for (let progress = true; progress; ) {
    progress = false;
    for (const e of inputShapes(g)) {
      const open = symbolsOf(e.shape).filter((d) => !out.has(d));
      if (open.length !== 1 || e.shape.filter((d) => d === open[0]).length !== 1) continue;
      out.set(open[0]!, { input: e.name, per: numelSize(e.shape.filter((d) => d !== open[0])) });
      progress = true;
    }
  }
  return out;
}
