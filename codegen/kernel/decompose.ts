// The decomposition pass of the kernel form (issue #29): a renderer declares which ALU primitives
// it renders natively (its Capabilities); `decompose` rewrites every other node of a kernel into
// native ones, recursively (tanh → exp → bit construction). The decompositions are float32
// algorithms, measured node by node in f32 arithmetic (test/decompose.test.ts, bounds in
// docs/compiler.md, "Decomposition"): range reduction, a polynomial fitted for f32, the result
// rebuilt by bit construction, and the IEEE special values (±0, ±∞, NaN) as JavaScript's Math
// gives them. A primitive that is neither native nor decomposable into native ones is a
// CompileError naming it and the target.

import { CompileError } from '../../ir/errors.js';
import type { AluOp, EType, Kernel, Node } from './form.js';
import { ALU, argsOf, isAlu } from './form.js';

/** What a renderer computes natively: the ALU primitives it has an instruction or function for. */
export interface Capabilities {
  /** The target's name, as errors say it ("flat TypeScript", "wasm SIMD"). */
  readonly target: string;
  readonly native: ReadonlySet<AluOp>;
}

/** Every ALU primitive (a target that has them all needs no decomposition). */
export const ALL_ALU: readonly AluOp[] = Object.keys(ALU) as AluOp[];

export function capabilities(target: string, native: Iterable<AluOp>): Capabilities {
  return { target, native: new Set(native) };
}

/** The kernel with only native primitives, and where each node of the original went. */
export interface Decomposed {
  readonly kernel: Kernel;
  /** map[i]: the node of `kernel` computing node i of the original. */
  readonly map: readonly number[];
}

/** The kernel rewritten into the primitives of `caps` (the same object when it has only those). */
export function decompose(k: Kernel, caps: Capabilities): Kernel {
  return decomposeMapped(k, caps).kernel;
}

export function decomposeMapped(k: Kernel, caps: Capabilities): Decomposed {
  if (k.nodes.every((n) => !isAlu(n.op) || caps.native.has(n.op))) return { kernel: k, map: k.nodes.map((_n, i) => i) };
  const b = new Builder(caps);
  const map: number[] = [];
  k.nodes.forEach((n) => {
    const args = argsOf(n).map((a) => map[a]!);
    if (!isAlu(n.op)) map.push(b.keep({ ...n, ...('args' in n ? { args } : {}) } as Node));
    else if (caps.native.has(n.op)) map.push(b.keep({ op: n.op, dtype: n.dtype, args } as unknown as Node));
    else map.push(b.top(n.op, args));
  });
  return { kernel: { ...k, nodes: b.nodes, stores: k.stores.map((s) => ({ ...s, node: map[s.node]! })) }, map };
}

type Rule = (b: Builder, args: readonly number[]) => number;

/** A node's identity for hash-consing: ±∞, NaN and −0 are constants of their own (JSON makes them null and 0). */
const keyOf = (n: Node) => JSON.stringify(n, (_k, v: unknown) => (typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0)) ? `#${v === 0 ? '-0' : String(v)}` : v));

/** Builds the new DAG: original nodes kept in order, decompositions hash-consed. */
class Builder {
  readonly nodes: Node[] = [];
  private readonly memo = new Map<string, number>();
  /** The decompositions under way (a rule that needs its own op again has none). */
  private readonly stack: AluOp[] = [];
  private origin: AluOp | undefined;

  constructor(private readonly caps: Capabilities) {}

  keep(n: Node): number {
    this.nodes.push(n);
    const key = keyOf(n);
    if (!this.memo.has(key)) this.memo.set(key, this.nodes.length - 1);
    return this.nodes.length - 1;
  }

  private add(n: Node): number {
    const key = keyOf(n);
    const at = this.memo.get(key);
    if (at !== undefined) return at;
    return this.keep(n);
  }

  type(i: number): EType {
    return this.nodes[i]!.dtype;
  }

  /** The value of a const node, if i is one. */
  constOf(i: number): number | undefined {
    const n = this.nodes[i]!;
    return n.op === 'const' ? n.value : undefined;
  }

  /** A node of the original kernel whose op is not native. */
  top(op: AluOp, args: readonly number[]): number {
    this.origin = op;
    try {
      return this.op(op, ...args);
    } finally {
      this.origin = undefined;
    }
  }

  /** op(args), natively or through its decomposition. */
  op(op: AluOp, ...args: number[]): number {
    const t = ALU[op].type(args.map((a) => this.type(a)));
    if (t !== 'f32' && t !== 'i32' && t !== 'bool') throw new CompileError(`internal: decomposing ${this.origin}: ${op} ${t}`);
    if (this.caps.native.has(op)) return this.add({ op, dtype: t, args } as unknown as Node);
    const rule = RULES[op];
    if (!rule || this.stack.includes(op)) {
      const target = `the ${this.caps.target} target`;
      const hint = `declare ${op} native in the renderer's capabilities, or add a decomposition of it to codegen/kernel/decompose.ts`;
      if (op === this.origin) throw new CompileError(`${target} cannot compute ${op}: it has no ${op} primitive and no decomposition of ${op} into the primitives it has`, hint);
      throw new CompileError(`${target} cannot compute ${this.origin}: its decomposition needs ${op}, which ${target} lacks and cannot decompose`, hint);
    }
    this.stack.push(op);
    try {
      return rule(this, args);
    } finally {
      this.stack.pop();
    }
  }

  c(value: number): number {
    return this.add({ op: 'const', dtype: 'f32', value: Math.fround(value) });
  }
  ci(value: number): number {
    return this.add({ op: 'const', dtype: 'i32', value: value | 0 });
  }
  add2(a: number, b: number) {
    return this.op('add', a, b);
  }
  sub(a: number, b: number) {
    return this.op('sub', a, b);
  }
  mul(a: number, b: number) {
    return this.op('mul', a, b);
  }
  lt(a: number, b: number) {
    return this.op('lt', a, b);
  }
  eq(a: number, b: number) {
    return this.op('eq', a, b);
  }
  where(c: number, a: number, b: number) {
    return this.op('where', c, a, b);
  }
  /** c₀ + t·(c₁ + t·(c₂ + …)), Horner's scheme. */
  poly(t: number, cs: readonly number[]): number {
    let s = this.c(cs[cs.length - 1]!);
    for (let k = cs.length - 2; k >= 0; k--) s = this.add2(this.mul(s, t), this.c(cs[k]!));
    return s;
  }
  /** round(t) to the nearest integer (halves away from 0), as i32. */
  rint(t: number): number {
    return this.op('toint', this.add2(t, this.where(this.lt(t, this.c(0)), this.c(-0.5), this.c(0.5))));
  }
  /** 2ⁿ for an i32 n in [-126, 127], by building its bits. */
  pow2(n: number): number {
    return this.op('frombits', this.op('shl', this.add2(n, this.ci(127)), this.ci(23)));
  }
}

// ---------------------------------------------------------------------------------------------
// Polynomials, fitted for f32 (weighted least squares at Chebyshev nodes, coefficients rounded to
// f32; the error each reaches, in f32 arithmetic, is in docs/compiler.md)

/** exp(r) = 1 + r + r²·P(r), |r| ≤ ln2/2. */
const EXP_P = [0.49999988079071045, 0.16666516661643982, 0.0416695661842823, 0.00836912076920271, 0.0013750663492828608];
/** tanh(x) = x + x³·P(x²), |x| < 0.625. */
const TANH_P = [-0.3333333134651184, 0.1333320140838623, -0.053946252912282944, 0.021698210388422012, -0.008171788416802883, 0.002138226293027401];
/** expm1(x) = x + x²·P(x), |x| < 0.7. */
const EXPM1_P = [0.5, 0.1666666716337204, 0.04166668280959129, 0.008333328180015087, 0.001388778444379568, 0.00019842553592752665, 0.000025104682208620943, 0.0000027589931050897576];
/** sin(r) = r + r³·P(r²), |r| ≤ π/4. */
const SIN_P = [-0.1666666716337204, 0.008333329111337662, -0.0001983928814297542, 0.000002717912138905376];
/** cos(r) = 1 − r²/2 + r⁴·P(r²), |r| ≤ π/4. */
const COS_P = [0.0416666679084301, -0.0013888883404433727, 0.00002479942122590728, -2.7202810315429815e-7];
/** erf(x) = x + x·P(x²), |x| < 0.875. */
const ERF_SMALL = [0.12837916612625122, -0.37612634897232056, 0.11283732205629349, -0.02686155028641224, 0.005206660833209753, -0.0008210109081119299, 0.00008671101386426017];
/** erfc(x) = e^(−x²)·P(x − 0.875), 0.875 ≤ x < 3.92. */
const ERFC_MID = [0.4643114507198334, -0.3158245086669922, 0.1878393143415451, -0.10031857341527939, 0.048221975564956665, -0.020285259932279587, 0.007050761487334967, -0.0018762825056910515, 0.00034852666431106627, -0.00003951597318518907, 0.000002036430714724702];
/** log(1+f) = 2·atanh(s), s = f/(2+f): the series of (2 atanh(s) − 2s)/(s·z), z = s² ≤ 0.0295. */
const LOG_P = [2 / 3, 2 / 5, 2 / 7, 2 / 9, 2 / 11];

const LOG2E = 1.4426950408889634;
/** ln 2 = LN2_HI + LN2_LO, LN2_HI with 15 significant bits: n·LN2_HI is exact for |n| < 512. */
const LN2_HI = 0.693145751953125;
const LN2_LO = 1.428606765330187e-6;
/** π/2 in five parts, the first four of 8 significant bits (q·part exact for |q| < 2¹⁶): Cody–Waite. */
const PIO2 = [1.5703125, 0.000457763671875, 0.000025987625122070312, 7.543712854385376e-8, 6.07710062827671e-11];
const TWO_OVER_PI = 0.6366197723675814;
/** Where sin and cos hold their bound (q < 2¹⁶ up to 102942); beyond it they are NaN. */
const TRIG_MAX = 1e5;
const F32_MIN_NORMAL = 2 ** -126;
/** The largest f32 whose exp is finite, and the exponent below which exp rounds to 0. */
const EXP_MAX = 88.72283172607422;
const EXP_MIN = -104;

const neg = (b: Builder, x: number) => b.op('neg', x);

/** exp: n = round(x·log2e), r = x − n·ln2 (Cody–Waite), 2ⁿ·(1 + r + r²P(r)), 2ⁿ in two halves. */
function expRule(b: Builder, [x]: readonly number[]): number {
  const xc = b.op('min', b.op('max', x!, b.c(EXP_MIN)), b.c(89));
  const n = b.rint(b.mul(xc, b.c(LOG2E)));
  const nf = b.op('cast', n);
  const r = b.sub(b.sub(xc, b.mul(nf, b.c(LN2_HI))), b.mul(nf, b.c(LN2_LO)));
  const p = b.add2(b.c(1), b.add2(r, b.mul(b.mul(r, r), b.poly(r, EXP_P))));
  const n1 = b.op('shr', n, b.ci(1));
  const y = b.mul(b.mul(p, b.pow2(n1)), b.pow2(b.sub(n, n1)));
  return b.where(b.lt(b.c(EXP_MAX), x!), b.c(Infinity), b.where(b.lt(x!, b.c(EXP_MIN)), b.c(0), y));
}

/**
 * log(x) of a positive normal x already split as 2^e·m (m ∈ [√½, √2)): f = m − 1 (exact),
 * s = f/(2+f), log(m) = f − (f²/2 − s·(f²/2 + R(s²))), plus e·ln2 in two parts.
 */
function logCore(b: Builder, x: number): number {
  const tiny = b.lt(x, b.c(F32_MIN_NORMAL));
  const xs = b.where(tiny, b.mul(x, b.c(2 ** 23)), x);
  const i = b.op('bits', xs);
  const e0 = b.sub(b.sub(b.op('and', b.op('shr', i, b.ci(23)), b.ci(255)), b.ci(127)), b.where(tiny, b.ci(23), b.ci(0)));
  const m0 = b.op('frombits', b.op('or', b.op('and', i, b.ci(0x007fffff)), b.ci(0x3f800000)));
  const big = b.lt(b.c(Math.SQRT2), m0);
  const m = b.where(big, b.mul(m0, b.c(0.5)), m0);
  const e = b.add2(e0, b.where(big, b.ci(1), b.ci(0)));
  const f = b.sub(m, b.c(1));
  const s = b.op('div', f, b.add2(b.c(2), f));
  const z = b.mul(s, s);
  const R = b.mul(z, b.poly(z, LOG_P));
  const hfsq = b.mul(b.c(0.5), b.mul(f, f));
  const ef = b.op('cast', e);
  const lo = b.add2(b.mul(s, b.add2(hfsq, R)), b.mul(ef, b.c(LN2_LO)));
  return b.add2(b.mul(ef, b.c(LN2_HI)), b.sub(f, b.sub(hfsq, lo)));
}

/** log with its special values: log(±0) = −∞, log(x < 0) = NaN, log(∞) = ∞, log(NaN) = NaN. */
function logRule(b: Builder, [x]: readonly number[]): number {
  const y = b.where(b.eq(x!, b.c(Infinity)), x!, logCore(b, x!));
  const z = b.where(b.eq(x!, b.c(0)), b.c(-Infinity), y);
  return b.where(b.eq(x!, x!), b.where(b.lt(x!, b.c(0)), b.c(NaN), z), x!);
}

/** log1p: u = 1 + x, log(u) + (x − (u − 1))/u (the rounding of 1 + x, corrected); x where u = 1. */
function log1pRule(b: Builder, [x]: readonly number[]): number {
  const u = b.add2(b.c(1), x!);
  const lu = b.op('log', u);
  const corr = b.op('div', b.sub(x!, b.sub(u, b.c(1))), u);
  const inside = b.where(b.lt(u, b.c(Infinity)), b.add2(lu, corr), lu);
  return b.where(b.eq(u, b.c(1)), x!, b.where(b.lt(b.c(0), u), inside, lu));
}

/** expm1: x + x²·P(x) for |x| < 0.7 (±0 kept), else exp(x) − 1. */
function expm1Rule(b: Builder, [x]: readonly number[]): number {
  const p = b.add2(x!, b.mul(b.mul(x!, x!), b.poly(x!, EXPM1_P)));
  const e = b.sub(b.op('exp', x!), b.c(1));
  const small = b.where(b.eq(x!, b.c(0)), x!, p);
  return b.where(b.lt(x!, b.c(0.7)), b.where(b.lt(b.c(-0.7), x!), small, e), e);
}

/** tanh: x + x³P(x²) for |x| < 0.625, else ±(1 − 2/(e^(2|x|) + 1)). */
function tanhRule(b: Builder, [x]: readonly number[]): number {
  const ax = b.op('abs', x!);
  const t = b.mul(x!, x!);
  const p = b.add2(x!, b.mul(b.mul(x!, t), b.poly(t, TANH_P)));
  const e = b.op('exp', b.add2(ax, ax));
  const big = b.sub(b.c(1), b.op('div', b.c(2), b.add2(e, b.c(1))));
  // x + x³P(x²) is +0 at −0 (P(0) < 0): keep the zero's sign
  const small = b.where(b.eq(x!, b.c(0)), x!, p);
  return b.where(b.lt(ax, b.c(0.625)), small, b.where(b.lt(x!, b.c(0)), neg(b, big), big));
}

/**
 * sin and cos: q = round(x·2/π), r = x − q·π/2 with π/2 in five parts (exact for |q| < 2¹⁶, so
 * |x| ≤ 1e5), then ±sin r or ±cos r by the quadrant q + shift (cos: shift 1). NaN beyond 1e5: the
 * reduction would lose every digit there (an absolute error of 0.03 at 6e5), and at ±∞.
 */
function trig(shift: number): Rule {
  return (b, [x]) => {
    const q = b.rint(b.mul(x!, b.c(TWO_OVER_PI)));
    const qf = b.op('cast', q);
    let r = x!;
    for (const p of PIO2) r = b.sub(r, b.mul(qf, b.c(p)));
    const t = b.mul(r, r);
    const s = b.add2(r, b.mul(b.mul(r, t), b.poly(t, SIN_P)));
    const c = b.add2(b.sub(b.c(1), b.mul(b.c(0.5), t)), b.mul(b.mul(t, t), b.poly(t, COS_P)));
    const j = b.add2(q, b.ci(shift));
    const v = b.where(b.eq(b.op('and', j, b.ci(1)), b.ci(1)), c, s);
    const y = b.where(b.eq(b.op('and', j, b.ci(2)), b.ci(2)), neg(b, v), v);
    // beyond TRIG_MAX (and at ±∞, NaN): NaN; sin(±0) = ±0
    const z = shift === 0 ? b.where(b.eq(x!, b.c(0)), x!, y) : y;
    return b.where(b.op('le', b.op('abs', x!), b.c(TRIG_MAX)), z, b.c(NaN));
  };
}

/** erf: x + x·P(x²) for |x| < 0.875; ±(1 − e^(−x²)·P(|x| − 0.875)) below 3.92; ±1 from there. */
function erfRule(b: Builder, [x]: readonly number[]): number {
  const ax = b.op('abs', x!);
  const small = b.add2(x!, b.mul(x!, b.poly(b.mul(x!, x!), ERF_SMALL)));
  const erfc = b.mul(b.op('exp', neg(b, b.mul(ax, ax))), b.poly(b.sub(ax, b.c(0.875)), ERFC_MID));
  const mid = b.sub(b.c(1), erfc);
  const big = b.where(b.op('le', b.c(3.92), ax), b.c(1), mid);
  return b.where(b.lt(ax, b.c(0.875)), small, b.where(b.lt(x!, b.c(0)), neg(b, big), big));
}

/** x^n for an integer n: binary powering, a reciprocal for n < 0. */
function powInt(b: Builder, x: number, n: number): number {
  let acc: number | undefined;
  let sq = x;
  for (let m = Math.abs(n); m > 0; m >>= 1) {
    if (m & 1) acc = acc === undefined ? sq : b.mul(acc, sq);
    if (m > 1) sq = b.mul(sq, sq);
  }
  const pos = acc ?? b.c(1);
  return n < 0 ? b.op('recip', pos) : pos;
}

/** √x with pow's values at −0 (+0) and −∞ (+∞). */
function powHalf(b: Builder, x: number): number {
  return b.where(b.eq(x, b.c(-Infinity)), b.c(Infinity), b.add2(b.op('sqrt', x), b.c(0)));
}

/**
 * pow(x, y): a constant integer y (|y| ≤ 64) by multiplications, ±0.5 by sqrt; otherwise
 * exp(y·log|x|), with x < 0 giving ±|x|^y for an integer y and NaN otherwise, pow(x, 0) = 1.
 * A −0 base counts as +0 there (pow(−0, −1) is +∞, not −∞).
 */
function powRule(b: Builder, [x, y]: readonly number[]): number {
  const c = b.constOf(y!);
  if (c !== undefined && Number.isInteger(c) && Math.abs(c) <= 64) return powInt(b, x!, c);
  if (c === 0.5) return powHalf(b, x!);
  if (c === -0.5) return b.op('recip', powHalf(b, x!));
  const ax = b.op('abs', x!);
  const mag = b.op('exp', b.mul(y!, b.op('log', ax)));
  const fl = b.op('floor', y!);
  const isInt = b.eq(fl, y!);
  const half = b.mul(y!, b.c(0.5));
  const odd = b.where(b.eq(b.op('floor', half), half), b.c(1), b.c(-1));
  const nonInt = b.where(b.eq(x!, b.c(-Infinity)), b.c(1), b.c(NaN));
  const sign = b.where(b.lt(x!, b.c(0)), b.where(isInt, odd, nonInt), b.c(1));
  return b.where(b.eq(y!, b.c(0)), b.c(1), b.mul(sign, mag));
}

/** √x: the reciprocal square root's bit guess, three Newton steps, one Heron step; subnormals scaled. */
function sqrtRule(b: Builder, [x]: readonly number[]): number {
  const tiny = b.lt(x!, b.c(F32_MIN_NORMAL));
  const xs = b.where(tiny, b.mul(x!, b.c(2 ** 24)), x!);
  let y = b.op('frombits', b.sub(b.ci(0x5f3759df), b.op('shr', b.op('bits', xs), b.ci(1))));
  const hx = b.mul(b.c(0.5), xs);
  for (let k = 0; k < 3; k++) y = b.mul(y, b.sub(b.c(1.5), b.mul(hx, b.mul(y, y))));
  const s0 = b.mul(xs, y);
  const s1 = b.mul(b.c(0.5), b.add2(s0, b.op('div', xs, s0)));
  const s = b.where(b.eq(xs, b.c(0)), xs, s1);
  const v = b.where(tiny, b.mul(s, b.c(2 ** -12)), s);
  return b.where(b.lt(x!, b.c(0)), b.c(NaN), b.where(b.eq(x!, b.c(Infinity)), x!, v));
}

/** floor through truncation: t − (x < t), for |x| < 2²³ (larger f32 are integers); ±0 kept. */
function floorRule(b: Builder, [x]: readonly number[]): number {
  const t = b.op('cast', b.op('toint', x!));
  const f = b.sub(t, b.where(b.lt(x!, t), b.c(1), b.c(0)));
  const inRange = b.where(b.lt(x!, b.c(2 ** 23)), b.where(b.lt(b.c(-(2 ** 23)), x!), f, x!), x!);
  return b.where(b.eq(x!, b.c(0)), x!, inRange);
}

const minusOne = (b: Builder, x: number) => (b.type(x) === 'i32' ? b.ci(-1) : b.c(-1));

/** How each primitive a target may lack is computed from others. */
const RULES: Partial<Record<AluOp, Rule>> = {
  exp: expRule,
  log: logRule,
  log1p: log1pRule,
  expm1: expm1Rule,
  tanh: tanhRule,
  sin: trig(0),
  cos: trig(1),
  erf: erfRule,
  pow: powRule,
  sqrt: sqrtRule,
  floor: floorRule,
  recip: (b, [x]) => b.op('div', b.c(1), x!),
  div: (b, [x, y]) => b.mul(x!, b.op('recip', y!)),
  neg: (b, [x]) => b.mul(x!, minusOne(b, x!)),
  abs: (b, [x]) => b.op('max', x!, neg(b, x!)),
  sub: (b, [x, y]) => b.add2(x!, neg(b, y!)),
  max: (b, [x, y]) => b.where(b.lt(x!, y!), y!, x!),
  min: (b, [x, y]) => b.where(b.lt(y!, x!), y!, x!),
};

/** The primitives that have a decomposition (the others a target must have if a kernel uses them). */
export const DECOMPOSABLE: ReadonlySet<AluOp> = new Set(Object.keys(RULES) as AluOp[]);
