// JavaScript expressions with precedence, so that composed snippets get exactly the
// parentheses they need: `1 - h[i] * h[i]`, not `(1 - (h[i] * h[i]))`.

import { fmtNumber } from '../ir/print.js';

export interface Expr {
  readonly code: string;
  readonly prec: number;
}

export const P = { COND: 4, REL: 10, ADD: 12, MUL: 13, EXP: 14, UNARY: 15, ATOM: 20 } as const;

export const atom = (code: string): Expr => ({ code, prec: P.ATOM });

export function num(x: number): Expr {
  const s = fmtNumber(x)
    .replace(/^inf$/, 'Infinity')
    .replace(/^-inf$/, '-Infinity')
    .replace(/^nan$/, 'NaN');
  return s.startsWith('-') ? { code: s, prec: P.UNARY } : atom(s);
}

/** The code of e, parenthesised unless its precedence is at least `min`. */
export function wrap(e: Expr, min: number): string {
  return e.prec >= min ? e.code : `(${e.code})`;
}

/** A left-associative binary operator of precedence p. */
export function bin(op: string, p: number): (a: Expr, b: Expr) => Expr {
  return (a, b) => ({ code: `${wrap(a, p)} ${op} ${wrap(b, p + 1)}`, prec: p });
}

export const add = bin('+', P.ADD);
export const sub = bin('-', P.ADD);
export const mul = bin('*', P.MUL);
export const div = bin('/', P.MUL);
export const call = (fn: string, ...args: Expr[]): Expr => atom(`${fn}(${args.map((a) => a.code).join(', ')})`);
export const neg = (a: Expr): Expr => ({ code: `-${wrap(a, P.UNARY + 1)}`, prec: P.UNARY });
/** `**` is right-associative and its left operand may not be a unary expression. */
export const pow = (a: Expr, b: Expr): Expr => ({ code: `${wrap(a, P.UNARY + 1)} ** ${wrap(b, P.EXP)}`, prec: P.EXP });
export const cond = (c: Expr, a: Expr, b: Expr): Expr => ({ code: `${wrap(c, P.COND + 1)} ? ${wrap(a, P.COND + 1)} : ${wrap(b, P.COND)}`, prec: P.COND });
export const rel = (op: string) => (a: Expr, b: Expr): Expr => ({ code: `${wrap(a, P.REL + 1)} ${op} ${wrap(b, P.REL + 1)}`, prec: P.REL });

/** The number a literal expression stands for, if it is one. */
export function literal(e: Expr): number | undefined {
  if (!/^-?(\d|Infinity|NaN)/.test(e.code)) return undefined;
  const x = Number(e.code);
  return Number.isNaN(x) && e.code !== 'NaN' ? undefined : x;
}

