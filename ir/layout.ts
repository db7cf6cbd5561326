// The layout pass: every buffer of the memory plan (ir/memplan.ts) at a byte offset that is a
// polynomial in the symbolic sizes (a sum of `Size` monomials, ir/dims.ts), valid for every
// binding of them. The buffers follow one another: each offset is the sum of the aligned sizes
// of the buffers before it, so that, term by term, offset[i + 1] = offset[i] + bytes[i] with every
// coefficient nonnegative; no two buffers overlap for any sizes ≥ 0 (the plan already gives
// values whose lifetimes overlap different buffers), and each offset is a multiple of ALIGN
// because each term is (a monomial's coefficient, bytes per unit of its symbols, is rounded up to
// ALIGN). A buffer's bytes are align(4·coef)·Π syms, at most 12·Π syms more than its floats.
//
// Static buffers come first: their offsets are constants, the same at every binding (a module
// with symbolic sizes keeps its params and state in place when a call brings other sizes). With
// no symbols (the static build) the layout is the plain one: buffer by buffer, in plan order.
//
// Scratch areas that several kernels share one after another (accumulators, packed operands)
// take the coefficient-wise maximum of their needs (`polyMax`): for nonnegative coefficients it
// is at least each of them at every binding, where a maximum of polynomials is not one.

import type { Size } from './dims.js';
import { bindSize, isStatic } from './dims.js';
import type { Plan } from './memplan.js';

/** Byte alignment of every offset (a wasm SIMD vector). */
export const ALIGN = 16;
export const alignUp = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** A polynomial in the symbols: a sum of monomials, one per set of symbols, in a canonical order. */
export type Poly = readonly Size[];

const keyOf = (s: Size) => s.syms.join('*');

/** The sum of polynomials (or sizes), terms with the same symbols added, zero terms dropped. */
export function polyAdd(...ps: readonly (Poly | Size)[]): Poly {
  const terms = new Map<string, Size>();
  for (const p of ps)
    for (const t of 'coef' in p ? [p as Size] : (p as Poly)) {
      const k = keyOf(t);
      terms.set(k, { coef: (terms.get(k)?.coef ?? 0) + t.coef, syms: t.syms });
    }
  return canonical([...terms.values()]);
}

/** The coefficient-wise maximum: at least each of `ps` at every binding (their coefficients ≥ 0). */
export function polyMax(...ps: readonly Poly[]): Poly {
  const terms = new Map<string, Size>();
  for (const p of ps)
    for (const t of p) {
      if (t.coef < 0) throw new Error(`internal: polyMax of a negative term (${polyText(p)})`);
      const k = keyOf(t);
      terms.set(k, { coef: Math.max(terms.get(k)?.coef ?? 0, t.coef), syms: t.syms });
    }
  return canonical([...terms.values()]);
}

function canonical(ts: Size[]): Poly {
  return ts.filter((t) => t.coef !== 0).sort((a, b) => a.syms.length - b.syms.length || (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
}

/** The value at a binding of the symbols. */
export function polyEval(p: Poly, dims: Readonly<Record<string, number>>): number {
  return p.reduce((s, t) => s + bindSize(t, dims), 0);
}

/** The number of a polynomial without symbols (an internal error otherwise). */
export function polyConst(p: Poly): number {
  if (!p.every((t) => isStatic(t))) throw new Error(`internal: ${polyText(p)} is not known at build time`);
  return p.reduce((s, t) => s + t.coef, 0);
}

/** As code over the symbols' names: `1024 + 48 * B + 4 * B * T`. */
export function polyText(p: Poly): string {
  if (p.length === 0) return '0';
  return p.map((t) => (t.syms.length === 0 ? String(t.coef) : t.coef === 1 ? t.syms.join(' * ') : `${t.coef} * ${t.syms.join(' * ')}`)).join(' + ');
}

/** Bytes of an array of `n` elements of 4 bytes: ALIGN-aligned per unit of its symbols. */
export function arrayBytes(n: Size): Size {
  return { coef: alignUp(n.coef * 4), syms: n.syms };
}

export interface Layout {
  /** The byte offset of each buffer of the plan, by id. */
  readonly offsets: readonly Poly[];
  /** Bytes of each buffer, by id. */
  readonly bytes: readonly Size[];
  /** The end of the last buffer: where scratch areas may follow. */
  readonly end: Poly;
}

/** The layout of a plan's buffers (see the head of this file). */
export function layoutPlan(plan: Plan): Layout {
  const offsets: Poly[] = new Array(plan.buffers.length);
  const bytes: Size[] = plan.buffers.map((b) => arrayBytes(b.size));
  let end: Poly = [];
  for (const pass of [true, false])
    for (const b of plan.buffers)
      if (isStatic(b.size) === pass) {
        offsets[b.id] = end;
        end = polyAdd(end, bytes[b.id]!);
      }
  return { offsets, bytes, end };
}

/** Places areas one after another from `start`: each one's offset, and the end. */
export function placeAreas(start: Poly, areas: readonly Poly[]): { at: Poly[]; end: Poly } {
  const at: Poly[] = [];
  let end = start;
  for (const a of areas) {
    at.push(end);
    end = polyAdd(end, a);
  }
  return { at, end };
}
