import type { Graph } from './graph.js';

// Dimensions. A dimension is a size known at build time (32) or a symbol ('B') that each call
// binds from the lengths of its inputs, so that one build serves every batch size. Products of
// dimensions (element counts, strides, buffer sizes) are `Size`s: a number times symbols, which
// the emitters print as code (`B * 64`). A pass may make a product one axis (the rows of a
// [B, 64, 128] · [128, n] flattened to [B*64, 128]): that dimension is the product's text, `'B*64'`;
// a model's inputs, params and outputs only have symbols.

/** A dimension: a size, or the name of a symbolic dimension bound by each call (`'B'`); inside the compiler also a product of them (`'B*64'`, which a model does not write). */
export type Dim = number | string;

/** coef · Π syms, syms sorted: the product of some dimensions. */
export interface Size {
  readonly coef: number;
  readonly syms: readonly string[];
}

/** A symbol: an identifier that names a dimension bound per call. */
export const SYMBOL = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A product dimension: symbols sorted, then a coefficient above 1 (`B*T`, `B*64`), as `asDim` writes it. */
export const PRODUCT = /^[A-Za-z_][A-Za-z0-9_]*(\*[A-Za-z_][A-Za-z0-9_]*)*(\*[1-9][0-9]*)?$/;

/** A symbol bound per call (not a product of them). */
export function isSymbol(d: Dim): d is string {
  return typeof d === 'string' && !d.includes('*');
}

/** A dimension's text as a dimension of the IR: a size, a symbol or a product (`B*64`). */
export function isDim(d: unknown): d is Dim {
  return (typeof d === 'number' && Number.isInteger(d) && d >= 0) || (typeof d === 'string' && (SYMBOL.test(d) || (PRODUCT.test(d) && asDim(size(d)) === d)));
}

export function size(d: Dim | Size): Size {
  if (typeof d === 'number') return { coef: d, syms: [] };
  if (typeof d === 'string') {
    if (!d.includes('*')) return { coef: 1, syms: [d] };
    const parts = d.split('*');
    const coef = /^[0-9]+$/.test(parts.at(-1)!) ? Number(parts.pop()) : 1;
    return { coef, syms: parts.sort() };
  }
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

/**
 * As text and as code: `64`, `B`, `B * 64`; a product dimension (`'B*64'`) in parentheses,
 * `(B * 64)`, one operand wherever the code puts it (`-_total / (B * 64)`).
 */
export function sizeText(s: Dim | Size): string {
  if (typeof s === 'string' && s.includes('*')) return `(${sizeText(size(s))})`;
  const x = size(s);
  if (x.syms.length === 0) return String(x.coef);
  if (x.coef === 0) return '0';
  return (x.coef === 1 ? x.syms : [...x.syms, String(x.coef)]).join(' * ');
}

/** The symbols of a shape, each once, in order of appearance (a product's among them). */
export function symbolsOf(shape: readonly Dim[]): string[] {
  return [...new Set(shape.flatMap((d) => (typeof d === 'string' ? size(d).syms : [])))];
}

/** A shape with its symbols replaced by their bound sizes. */
export function bindShape(shape: readonly Dim[], dims: Readonly<Record<string, number>>): number[] {
  return shape.map((d) => (typeof d === 'number' ? d : bindSize(size(d), dims)));
}

/** The size with its symbols replaced by their bound sizes. */
export function bindSize(s: Size, dims: Readonly<Record<string, number>>): number {
  return s.syms.reduce((acc, d) => {
    const v = dims[d];
    if (v === undefined) throw new Error(`internal: dimension '${d}' is not bound`);
    return acc * v;
  }, s.coef);
}

/** A size as one dimension: a number, a symbol, or a product of them (`'B*64'`, `'B*T'`). */
export function asDim(s: Size): Dim {
  if (s.syms.length === 0 || s.coef === 0) return s.coef;
  return [...s.syms, ...(s.coef === 1 ? [] : [String(s.coef)])].join('*');
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
