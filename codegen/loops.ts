// Loop nests over a shape, with each operand's index expression. Size-1 axes are dropped and
// axes that every operand walks contiguously are merged, so `b1` broadcast over [32, 64] gives
//   for (let i = 0; i < 32; i++) for (let j = 0; j < 64; j++) out[i * 64 + j] = t1[i * 64 + j] + b1[j];
// and a same-shape elementwise op gives one flat loop.

import type { Dim, Size } from '../ir/dims.js';
import { mulSize, size, sizeEq, sizeText } from '../ir/dims.js';
import { CompileError } from '../ir/errors.js';

/** Loop variables, outermost first (all reserved: no value may be named like them). */
export const LOOP_VARS = ['i', 'j', 'k', 'l', 'p', 'q', 'r', 's'] as const;

/** Sizes and strides are numbers, or products with symbols bound per call (`B * 64`). */
type Extent = Dim | Size;

export interface Access {
  /** Stride of each axis of the nest (0 where the operand is broadcast). */
  readonly strides: readonly Extent[];
  /** Constant offset added to the index (a sum of sizes of different symbols: `T * 2 + 1`). */
  readonly base?: Extent | readonly Size[];
}

export interface Collapsed {
  readonly dims: Size[];
  readonly strides: Size[][];
}

/** Drops size-1 axes and merges axes that are contiguous for every access. */
export function collapse(dims: readonly Extent[], accesses: readonly Access[]): Collapsed {
  const keep = dims.map((d, i) => i).filter((i) => !sizeEq(dims[i]!, 1));
  const out: Collapsed = { dims: [], strides: accesses.map(() => []) };
  for (const ax of keep) {
    const last = out.dims.length - 1;
    const mergeable = last >= 0 && accesses.every((a, k) => sizeEq(out.strides[k]![last]!, mulSize(a.strides[ax]!, dims[ax]!)));
    if (mergeable) {
      out.dims[last] = mulSize(out.dims[last]!, dims[ax]!);
      accesses.forEach((a, k) => (out.strides[k]![last] = size(a.strides[ax]!)));
    } else {
      out.dims.push(size(dims[ax]!));
      accesses.forEach((a, k) => out.strides[k]!.push(size(a.strides[ax]!)));
    }
  }
  return out;
}

/** Code for a size as the right operand of / or %: a product (`B * 2`) needs parentheses there. */
export function factor(code: string): string {
  return code.includes(' ') ? `(${code})` : code;
}

/** The index expression of an access, given loop variable names. */
export function indexExpr(vars: readonly string[], strides: readonly Extent[], base: Extent | readonly Size[] = 0): string {
  const terms: string[] = [];
  for (const b of Array.isArray(base) ? base : [base as Extent]) if (!sizeEq(b, 0)) terms.push(sizeText(b));
  strides.forEach((s, d) => {
    if (sizeEq(s, 0)) return;
    terms.push(sizeEq(s, 1) ? vars[d]! : `${vars[d]} * ${sizeText(s)}`);
  });
  return terms.length ? terms.join(' + ') : '0';
}

/**
 * Emits a loop nest over `dims` and calls `body` with each access's index expression in the
 * innermost loop. `vars` names the loop variables, outermost first.
 */
export function nest(
  dims: readonly Extent[],
  accesses: readonly Access[],
  body: (idx: string[]) => string[],
  vars: readonly string[] = LOOP_VARS,
): string[] {
  const c = collapse(dims, accesses);
  if (c.dims.length > vars.length) throw new CompileError(`it would need a loop nest of ${c.dims.length} axes that do not merge (the most is ${vars.length})`);
  const v = vars.slice(0, c.dims.length);
  const idx = accesses.map((a, k) => indexExpr(v, c.strides[k]!, a.base ?? 0));
  const lines: string[] = [];
  c.dims.forEach((d, i) => lines.push(`for (let ${v[i]} = 0; ${v[i]} < ${sizeText(d)}; ${v[i]}++) {`));
  lines.push(...body(idx));
  c.dims.forEach(() => lines.push('}'));
  return lines;
}
