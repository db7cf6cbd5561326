// The decomposition pass of the kernel form (issue #29): a renderer declares which ALU primitives
// it renders natively (its Capabilities); `decompose` rewrites every other node of a kernel into
// native ones, recursively (tanh → exp → bit construction). The decompositions are float32
// algorithms, measured node by node in f32 arithmetic (test/decompose.test.ts, bounds in
// docs/compiler.md, "Decomposition"): range reduction, a polynomial fitted for f32, the result
// rebuilt by bit construction, and the IEEE special values (±0, ±∞, NaN) as JavaScript's Math
// gives them. A primitive that is neither native nor decomposable into native ones is a
// CompileError naming it and the target.

import { CompileError } from '../../ir/errors.js';
import type { AluOp, EType, HostProgram, Kernel, Launch, Node } from './form.js';
import { ALU, argsOf, isAlu, nodeKey } from './form.js';

/** What a renderer computes natively: the ALU primitives it has an instruction or function for. */
export interface Capabilities {
  /** The target's name: errors say `the ${target} target` ("flat TypeScript", "wasm SIMD"; a name that is already "the … target" is used as it is). */
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

/**
 * Whether a power with this constant exponent is expanded (powInt, powHalf: products, a
 * reciprocal, a square root) on every target, also one with a native pow: an integer or a
 * half-integer of magnitude ≤ 64. A target's native pow computes only the other exponents.
 */
export function expandedPower(c: number | undefined): boolean {
  return c !== undefined && Number.isInteger(2 * c) && Math.abs(c) <= 64;
}

/** Whether node `n` of `nodes` is computed natively under `caps` (a power with an expanded exponent never is). */
function isNative(n: Node, nodes: readonly Node[], caps: Capabilities): boolean {
  if (!isAlu(n.op) || !caps.native.has(n.op)) return false;
  if (n.op !== 'pow') return true;
  const e = nodes[n.args[1]]!;
  return !(e.op === 'const' && expandedPower(e.value));
}

export function decomposeMapped(k: Kernel, caps: Capabilities): Decomposed {
  if (k.nodes.every((n) => !isAlu(n.op) || isNative(n, k.nodes, caps))) return { kernel: k, map: k.nodes.map((_n, i) => i) };
  const b = new Builder(caps);
  const map: number[] = [];
  k.nodes.forEach((n) => {
    const args = argsOf(n).map((a) => map[a]!);
    if (!isAlu(n.op)) map.push(b.keep({ ...n, ...('args' in n ? { args } : {}) } as Node));
    else if (isNative(n, k.nodes, caps)) map.push(b.keep({ ...n, args } as unknown as Node));
    else map.push(b.top(n.op, args));
  });
  return { kernel: { ...k, nodes: b.nodes, stores: k.stores.map((s) => ({ ...s, node: map[s.node]! })) }, map };
}

/** A launch in the primitives of `caps`: a kernel, or a routine's epilogue. */
export function decomposeLaunch(l: Launch, caps: Capabilities): Launch {
  if (l.kind === 'kernel') return decompose(l, caps);
  if (!l.epilogue) return l;
  const epilogue = decompose(l.epilogue, caps);
  return epilogue === l.epilogue ? l : { ...l, epilogue };
}

/** Every launch of a host program in the primitives of `caps` (a launch two entries share stays one object). */
export function decomposeProgram(p: HostProgram, caps: Capabilities): HostProgram {
  const done = new Map<Launch, Launch>();
  const of = (l: Launch) => {
    let d = done.get(l);
    if (!d) done.set(l, (d = decomposeLaunch(l, caps)));
    return d;
  };
  const entries = p.entries.map((e) => ({ ...e, steps: e.steps.map((st) => (st.kind === 'launch' ? { ...st, launch: of(st.launch) } : st)) }));
  return [...done].every(([a, b]) => a === b) ? p : { ...p, entries };
}

type Rule = (b: Builder, args: readonly number[]) => number;

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
    const key = nodeKey(n);
    if (!this.memo.has(key)) this.memo.set(key, this.nodes.length - 1);
    return this.nodes.length - 1;
  }

  private add(n: Node): number {
    const key = nodeKey(n);
    const at = this.memo.get(key);
    if (at !== undefined) return at;
    return this.keep(n);
  }

  type(i: number): EType {
    return this.nodes[i]!.dtype;
  }

  native(op: AluOp): boolean {
    return this.caps.native.has(op);
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
    if (this.caps.native.has(op) && !(op === 'pow' && expandedPower(this.constOf(args[1]!)))) return this.add({ op, dtype: t, args } as unknown as Node);
    const rule = RULES[op];
    if (!rule || this.stack.includes(op)) {
      // the name, or a whole phrase ("the wasm SIMD target") where a renderer gave one
      const name = this.caps.target;
      const target = /^the .* target$/.test(name) ? name : `the ${name} target`;
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
  /** where(c, a, b) flagged rare: c seldom holds (codegen/kernel/rare.ts); a plain where on a target without a native where. */
  rareWhere(c: number, a: number, b: number) {
    const t = ALU.where.type([c, a, b].map((i) => this.type(i)));
    if (!this.native('where') || (t !== 'f32' && t !== 'i32')) return this.where(c, a, b);
    return this.add({ op: 'where', dtype: t, args: [c, a, b], rare: true });
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
/** tanh(x) = x + x³·P(x²), |x| < 0.55 (minimax in relative error). */
const TANH_P = [-0.33333316445350647, 0.13332585990428925, -0.05385230854153633, 0.021071679890155792, -0.0062742396257817745];
/** e^r = 1 + r + r²·P(r), 0 ≤ r < ln2 (minimax in relative error; tanh's e^(2|x|), whose n is floor(x·log2e)). */
const EXP_TANH_P = [0.5000022649765015, 0.16663190722465515, 0.04185502603650093, 0.007868350483477116, 0.0019125324906781316];
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
/** 2^r = 1 + r·P(r), |r| ≤ ½. */
const EXP2_P = [0.6931471824645996, 0.24022650718688965, 0.055504102259874344, 0.00961803738027811, 0.0013334081741049886, 0.00015467044431716204, 0.000015165644072112627];
/** log(1+f) = 2·atanh(s), s = f/(2+f): the series of (2 atanh(s) − 2s)/(s·z), z = s² ≤ 0.0295. */
const LOG_P = [2 / 3, 2 / 5, 2 / 7, 2 / 9, 2 / 11];

const LOG2E = 1.4426950408889634;
/** ln 2 = LN2_HI + LN2_LO, LN2_HI with 15 significant bits: n·LN2_HI is exact for |n| < 512. */
const LN2_HI = 0.693145751953125;
const LN2_LO = 1.428606765330187e-6;
/**
 * π/2 in six parts, consecutive 8-bit slices of its binary expansion and then the rest rounded
 * to f32 (Cody–Waite): q·part is exact for |q| < 2¹⁶, x − q·(the first three) is exact, and the
 * next two are subtracted keeping their rounding errors (trig).
 */
const PIO2 = [1.5703125, 0.000457763671875, 0.000025987625122070312, 7.543712854385376e-8, 6.002665031701326e-11, 7.443547731314504e-13];
const TWO_OVER_PI = 0.6366197723675814;
/** From here sin and cos reduce by Payne–Hanek (Cody–Waite's q < 2¹⁶ holds up to 102942). */
const TRIG_SMALL = 2 ** 16;
/** π/2 = PIO2_12[0] + PIO2_12[1] + …, the first part of 12 bits (its product by 12 bits is exact). */
const PIO2_12 = [3217 / 2048, Math.fround(Math.PI / 2 - 3217 / 2048)] as const;
/**
 * 2/π's binary expansion after the point, 256 bits in hex (test/decompose.test.ts recomputes it
 * from Machin's formula).
 */
export const TWO_OVER_PI_HEX = 'a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561';
/** Bit p of 2/π (2^−p's), 0 for p ≤ 0. */
const bitOf = (p: number) => (p < 1 ? 0 : (parseInt(TWO_OVER_PI_HEX[(p - 1) >> 2]!, 16) >> (3 - ((p - 1) & 3))) & 1);
/** Σ bit(24m + k)·2^−k over k = lo … hi (bits beyond the hex string count as 0: below 2⁻¹⁶⁰ of x). */
function twoOverPiBits(m: number, lo: number, hi: number): number {
  let v = 0;
  for (let k = hi; k >= lo; k--) v += bitOf(24 * m + k) * 2 ** -k;
  return v;
}
/** PH_CHUNKS[j][m]: 12 bits of 2/π for bucket m, positions 12j − 8 … 12j + 3 past 24m (exact in f32). */
const PH_CHUNKS = Array.from({ length: 7 }, (_c, j) => Array.from({ length: 5 }, (_m, m) => twoOverPiBits(m, 12 * j - 8, 12 * j + 3)));
/** PH_TAIL[m]: the bits of 2/π past the chunks, rounded to f32. */
const PH_TAIL = Array.from({ length: 5 }, (_m, m) => Math.fround(twoOverPiBits(m, 76, 76 + 60)));
const F32_MIN_NORMAL = 2 ** -126;
/** The x below which exp(x) rounds to 0 in f32. */
const EXP_MIN = -104;

const neg = (b: Builder, x: number) => b.op('neg', x);

/**
 * exp: n = floor(x·log2e + ½), r = x − n·ln2 (Cody–Waite), 2ⁿ·(1 + r + r²P(r)), 2ⁿ in two halves
 * (subnormal results), each from the bits of its exponent + 1.5·2²³ (twoTo): no float→int
 * conversion, which is a saturating truncation of several instructions on x64. x is clamped
 * above at 89: the product overflows to ∞ from x = 88.72283 on (the largest f32 whose exp is
 * finite, within 1 ulp). Below EXP_MIN x is replaced by 0 and the result by 0, not clamped: 2ⁿ·p
 * at −104 underflows, which costs x64 a microcode assist a lane, and a masked attention score
 * (−1e9) is common. Results between EXP_MIN and −87.34 are subnormal, as Math.exp's. NaN stays NaN.
 */
function expRule(b: Builder, [x]: readonly number[]): number {
  const low = b.lt(x!, b.c(EXP_MIN));
  const xc = b.op('min', b.where(low, b.c(0), x!), b.c(89));
  const nf = b.op('floor', b.add2(b.mul(xc, b.c(LOG2E)), b.c(0.5)));
  const r = b.sub(b.sub(xc, b.mul(nf, b.c(LN2_HI))), b.mul(nf, b.c(LN2_LO)));
  const p = b.add2(b.c(1), b.add2(r, b.mul(b.mul(r, r), b.poly(r, EXP_P))));
  const n1 = b.op('floor', b.mul(nf, b.c(0.5)));
  return b.where(low, b.c(0), b.mul(b.mul(p, twoTo(b, n1)), twoTo(b, b.sub(nf, n1))));
}

/**
 * 2ⁿ for an integer-valued f32 n in [−126, 127], from bits: n + 127 + 1.5·2²³ is exact and its
 * bits are bits(1.5·2²³) + n + 127, which shifted left by 23 leave n + 127 (< 2⁸) alone, in the
 * exponent field.
 */
function twoTo(b: Builder, n: number): number {
  return b.op('frombits', b.op('shl', b.op('bits', b.add2(n, b.c(1.5 * 2 ** 23 + 127))), b.ci(23)));
}

/** x > 0 as 2^e·m, m ∈ [√½, √2), by its bits (a subnormal x scaled by 2²³ first): e (i32) and m. */
function frexp(b: Builder, x: number): { e: number; m: number } {
  const tiny = b.lt(x, b.c(F32_MIN_NORMAL));
  const xs = b.where(tiny, b.mul(x, b.c(2 ** 23)), x);
  const i = b.op('bits', xs);
  const e0 = b.sub(b.sub(b.op('and', b.op('shr', i, b.ci(23)), b.ci(255)), b.ci(127)), b.where(tiny, b.ci(23), b.ci(0)));
  const m0 = b.op('frombits', b.op('or', b.op('and', i, b.ci(0x007fffff)), b.ci(0x3f800000)));
  const big = b.lt(b.c(Math.SQRT2), m0);
  return { e: b.add2(e0, b.where(big, b.ci(1), b.ci(0))), m: b.where(big, b.mul(m0, b.c(0.5)), m0) };
}

/**
 * ln(m), m ∈ [√½, √2): f = m − 1 (exact), s = f/(2+f), ln(m) = f − (h − s·(h + R(s²))), h = f²/2;
 * as f, h and s·(h + R), for the caller to add up with what else it has.
 */
function lnMantissa(b: Builder, m: number): { f: number; h: number; sr: number } {
  const f = b.sub(m, b.c(1));
  const s = b.op('div', f, b.add2(b.c(2), f));
  const z = b.mul(s, s);
  const R = b.mul(z, b.poly(z, LOG_P));
  const h = b.mul(b.c(0.5), b.mul(f, f));
  return { f, h, sr: b.mul(s, b.add2(h, R)) };
}

/** log(x) of a positive x: e·ln2 (in two parts) + ln(m). */
function logCore(b: Builder, x: number): number {
  const { e, m } = frexp(b, x);
  const { f, h, sr } = lnMantissa(b, m);
  const ef = b.op('cast', e);
  return b.add2(b.mul(ef, b.c(LN2_HI)), b.sub(f, b.sub(h, b.add2(sr, b.mul(ef, b.c(LN2_LO))))));
}

/** log with its special values: log(±0) = −∞, log(x < 0) = NaN, log(∞) = ∞, log(NaN) = NaN. */
function logRule(b: Builder, [x]: readonly number[]): number {
  const y = b.where(b.eq(x!, b.c(Infinity)), x!, logCore(b, x!));
  const z = b.where(b.eq(x!, b.c(0)), b.c(-Infinity), y);
  return b.where(b.eq(x!, x!), b.where(b.lt(x!, b.c(0)), b.c(NaN), z), x!);
}

/** log1p: u = 1 + x, log(u) + (x − (u − 1))/u (the rounding of 1 + x, corrected); x where u = 1. */
function log1pRule(b: Builder, [x]: readonly number[]): number {
  // where log is decomposed it reads u's f32 bits: the correction must see that same u, also in
  // a target that computes in float64 (frombits(bits(u)) rounds u to f32; in f32 it is u)
  const u0 = b.add2(b.c(1), x!);
  const u = b.native('log') ? u0 : b.op('frombits', b.op('bits', u0));
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

/**
 * e^x for x in [0, 20] only, as tanh needs it (no overflow, no subnormal, NaN kept): n =
 * floor(x·log2e), r = x − n·ln2 ∈ [0, ln2) with ln2 in one f32 part (n ≤ 28 since x ≤ 20: the
 * product's rounding error, half an ulp of n·ln2 at most, is below what tanh's 1 − 2/(e^x + 1) can show from x = 1.1 on, where tanh uses
 * it), 2ⁿ·(1 + r + r²P(r)), 2ⁿ in one piece (twoTo): no clamps, no `where`, no second power of two.
 */
function expBounded(b: Builder, x: number): number {
  const nf = b.op('floor', b.mul(x, b.c(LOG2E)));
  const r = b.sub(x, b.mul(nf, b.c(Math.LN2)));
  const p = b.add2(b.c(1), b.add2(r, b.mul(b.mul(r, r), b.poly(r, EXP_TANH_P))));
  return b.mul(p, twoTo(b, nf));
}

/**
 * tanh: with a = |x|, a + a³P(a²) for a < 0.55, else 1 − 2/(e^(2·min(a, 10)) + 1) (tanh rounds
 * to 1 in f32 from 9.02, so the clamp saturates and e^(2a) never overflows; from 0.55 on tanh ≥
 * 0.5, where the subtraction loses nothing), the sign of x put back on by its bit (−0 kept). Both
 * halves are branch-free: a SIMD target computes both. 41 instructions, 46 before the exp lost its
 * rounding half and its second ln2 part and the polynomial a coefficient; one rational x·P(x²)/Q(x²)
 * over the whole range (22) errs by 5 ulps near 1 in f32 (its P and Q round by 2⁻²⁴ each).
 */
function tanhRule(b: Builder, [x]: readonly number[]): number {
  const ax = b.op('abs', x!);
  const t = b.mul(ax, ax);
  const small = b.add2(ax, b.mul(b.mul(ax, t), b.poly(t, TANH_P)));
  const e = expBounded(b, b.op('min', b.add2(ax, ax), b.c(20)));
  const big = b.sub(b.c(1), b.op('div', b.c(2), b.add2(e, b.c(1))));
  const mag = b.where(b.lt(ax, b.c(0.55)), small, big);
  return b.op('frombits', b.op('or', b.op('bits', mag), b.op('and', b.op('bits', x!), b.ci(-0x80000000))));
}

/**
 * sin and cos: (r, q) with x = q·π/2 + r, |r| ≲ π/4, r = rh + rl (reduceSmall below 2¹⁶,
 * reducePayneHanek from there), then ±sin r or ±cos r by the quadrant q + shift (cos: shift 1).
 * Over the whole finite range; NaN at ±∞ and NaN.
 */
function trig(shift: number): Rule {
  return (b, [x]) => {
    const small = reduceSmall(b, x!);
    const huge = reducePayneHanek(b, x!);
    const isHuge = b.op('le', b.c(TRIG_SMALL), b.op('abs', x!));
    // the huge arguments are rare: a renderer may reduce by Payne–Hanek only where some lane has one
    const rh = b.rareWhere(isHuge, huge.rh, small.rh);
    const rl = b.rareWhere(isHuge, huge.rl, small.rl);
    const q = b.rareWhere(isHuge, huge.q, small.q);
    const t = b.mul(rh, rh);
    // sin(rh + rl) ≈ sin(rh) + rl, cos(rh + rl) ≈ cos(rh) − rl·rh
    const s = b.add2(rh, b.add2(b.mul(b.mul(rh, t), b.poly(t, SIN_P)), rl));
    const c = b.add2(b.sub(b.c(1), b.mul(b.c(0.5), t)), b.sub(b.mul(b.mul(t, t), b.poly(t, COS_P)), b.mul(rl, rh)));
    const j = b.add2(q, b.ci(shift));
    const v = b.where(b.eq(b.op('and', j, b.ci(1)), b.ci(1)), c, s);
    const y = b.where(b.eq(b.op('and', j, b.ci(2)), b.ci(2)), neg(b, v), v);
    // sin(±0) = ±0; ±∞ and NaN: NaN
    const z = shift === 0 ? b.where(b.eq(x!, b.c(0)), x!, y) : y;
    return b.where(b.lt(b.op('abs', x!), b.c(Infinity)), z, b.c(NaN));
  };
}

/** x = q·π/2 + rh + rl: q (i32; only q mod 4 is used) and r as an unevaluated sum. */
interface Reduced {
  readonly rh: number;
  readonly rl: number;
  readonly q: number;
}

/**
 * Cody–Waite, for |x| < 2¹⁶: q = round(x·2/π), r = x − q·π/2 with π/2 in six parts (q·part
 * exact for |q| < 2¹⁶, x − q·(the first three) exact, the next two subtracted with their
 * rounding errors kept).
 */
function reduceSmall(b: Builder, x: number): Reduced {
  const q = b.rint(b.mul(x, b.c(TWO_OVER_PI)));
  const qf = b.op('cast', q);
  const part = (k: number) => b.mul(qf, b.c(PIO2[k]!));
  // exact: r3 = x − q·(p₀ + p₁ + p₂)
  const r3 = b.sub(b.sub(b.sub(x, part(0)), part(1)), part(2));
  // less q·p₃ and q·p₄, each with its rounding error kept (2Sum), and q·p₅ (tiny); r = rh + rl
  const [h1, e1] = twoDiff(b, r3, part(3));
  const [h2, e2] = twoDiff(b, h1, part(4));
  const h3 = b.sub(h2, part(5));
  const lo = b.add2(e1, e2);
  const rh = b.add2(h3, lo);
  return { rh, rl: b.sub(lo, b.sub(rh, h3)), q };
}

/**
 * Payne–Hanek, for 2¹⁶ ≤ |x| < 2¹²⁸, in f32 arithmetic (no f64, no table look-up: a SIMD lane
 * cannot index an array): x·2/π mod 4 from the bits of 2/π that matter at x's exponent, each
 * product exact. x is scaled by 2^(−24m), m = ⌊(e − 16)/24⌋ for its exponent e (so x' has an
 * exponent in [16, 40)); then x·2/π = x'·Σ_j D_j with D_j the 12 bits of 2/π at positions
 * 24m + 12j − 8 … 24m + 12j + 3 (PH_CHUNKS; the bits above them make multiples of 4). x' = xh +
 * xl, 12 bits each, so that every xh·D_j and xl·D_j is exact; the products are taken mod 4 and
 * their integer parts counted into q while the fractions are summed, exactly up to 2⁻⁴⁶ (rh + rl
 * as a 2Sum pair) and with rounding errors below 2⁻⁵⁸ after that: |x mod π/2| of an f32 is no
 * smaller than 2⁻³⁰ (test/decompose.test.ts checks the closest cases at every exponent), so r
 * keeps f32 accuracy.
 */
function reducePayneHanek(b: Builder, x: number): Reduced {
  const e = b.op('and', b.op('shr', b.op('bits', x), b.ci(23)), b.ci(255));
  const bucket = [1, 2, 3, 4].map((m) => b.op('le', b.ci(127 + 16 + 24 * m), e));
  /** vals[m] for x's bucket m. */
  const pick = (vals: readonly number[]) => vals.slice(1).reduce((acc, v, k) => b.where(bucket[k]!, b.c(v), acc), b.c(vals[0]!));
  const xs = b.mul(x, pick([1, 2 ** -24, 2 ** -48, 2 ** -72, 2 ** -96]));
  const xh = b.op('frombits', b.op('and', b.op('bits', xs), b.ci(-4096)));
  const xl = b.sub(xs, xh);
  const d = PH_CHUNKS.map(pick);
  // p mod 4 in [0, 4) (exact: p's bits below 4), and an integer within ½ of p (if p + ½ rounds
  // up, p − that is just beyond −½; exact in f32 and f64 alike)
  const mod4 = (p: number) => b.sub(p, b.mul(b.op('floor', b.mul(p, b.c(0.25))), b.c(4)));
  const near = (p: number) => b.op('floor', b.add2(p, b.c(0.5)));
  // the products by their lowest possible bit (2⁻¹⁰, 2⁻²², 2⁻³⁴, …) and size (< 2³⁷, 2²⁵, 2¹³, 2¹, 2⁻¹¹, 2⁻²³)
  const g = (j: number) => [b.mul(xh, d[j]!), b.mul(xl, d[j - 1]!)];
  // 2⁻¹⁰: mod 4, their sum is exact; its integer to q
  let s = b.add2(mod4(g(1)[0]!), mod4(g(1)[1]!));
  let qf = near(s);
  s = b.sub(s, qf);
  /** t's integer part (|t| ≤ 2²²) to q, its fraction returned. */
  const frac = (t: number) => {
    const k = near(t);
    qf = b.add2(qf, k);
    return b.sub(t, k);
  };
  /** s's integer part to q (|s| ≤ ½ after it). */
  const renorm = () => {
    s = frac(s);
  };
  // 2⁻²²: mod 4, then their fractions, summed exactly (|s| ≤ 1.5)
  for (const p of g(2)) s = b.add2(s, frac(mod4(p)));
  renorm();
  // 2⁻³⁴ and 2⁻⁴⁶: fractions in 2Sum pairs, s + l exact (l's terms have at most 24 bits)
  let l: number | undefined;
  const add = (t: number) => {
    const [h, err] = twoSum(b, s, t);
    s = h;
    l = l === undefined ? err : b.add2(l, err);
  };
  for (const p of g(3)) add(frac(p));
  renorm();
  for (const p of g(4)) add(frac(p));
  renorm();
  // s + l, exact so far, as a pair with |l| ≤ ulp(s)/2: where s cancels to a small f, l is as small
  [s, l] = twoSum(b, s, l!);
  // 2⁻⁵⁸ and 2⁻⁷⁰ (< 2⁻¹¹): 2Sum; the rest (< 2⁻³⁵) to l directly
  for (const p of [...g(5), ...g(6)]) add(p);
  l = b.add2(l!, b.add2(b.mul(xl, d[6]!), b.mul(xs, pick(PH_TAIL))));
  renorm();
  // f = s + l (≈ x·2/π − q), r = f·π/2 as rh + rl: fh·P₀ exact (12 bits each), the rest added
  const fh0 = b.add2(s, l);
  const fl = b.sub(l, b.sub(fh0, s));
  const fhh = b.op('frombits', b.op('and', b.op('bits', fh0), b.ci(-4096)));
  const fhl = b.sub(fh0, fhh);
  const hi = b.mul(fhh, b.c(PIO2_12[0]));
  const lo = b.add2(b.add2(b.mul(fhl, b.c(PIO2_12[0])), b.mul(fh0, b.c(PIO2_12[1]))), b.mul(fl, b.c(Math.PI / 2)));
  const rh = b.add2(hi, lo);
  return { rh, rl: b.sub(lo, b.sub(rh, hi)), q: b.op('toint', qf) };
}

/** a + b as the rounded sum and its rounding error (Knuth's 2Sum): s + e = a + b exactly. */
function twoSum(b: Builder, x: number, y: number): [number, number] {
  const s = b.add2(x, y);
  const bb = b.sub(s, x);
  return [s, b.add2(b.sub(x, b.sub(s, bb)), b.sub(y, bb))];
}

/** a − b as the rounded difference and its rounding error (Knuth's 2Sum): d + e = a − b exactly. */
function twoDiff(b: Builder, x: number, y: number): [number, number] {
  const d = b.sub(x, y);
  const bb = b.sub(d, x);
  return [d, b.sub(b.sub(x, b.sub(d, bb)), b.add2(y, bb))];
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
 * |x|^y for a general y, as 2^(y·log₂|x|): log₂|x| = e + l (frexp, l = ln(m)·log₂e), y split as
 * yh + yl with yh of 12 significant bits so that yh·e is exact; n = round(y·log₂|x|) and the rest
 * r = (yh·e − n) + (yl·e + y·l), |r| ≤ ½, so 2ⁿ·2^r. The error grows with |y| (that of y·l), not
 * with |y·log₂|x||.
 */
function powAbs(b: Builder, ax: number, y: number): number {
  const { e, m } = frexp(b, ax);
  const { f, h, sr } = lnMantissa(b, m);
  const l = b.mul(b.sub(f, b.sub(h, sr)), b.c(LOG2E));
  const ef = b.op('cast', e);
  const yh = b.op('frombits', b.op('and', b.op('bits', y), b.ci(-4096)));
  const yl = b.sub(y, yh);
  const A = b.mul(yh, ef);
  const B = b.add2(b.mul(yl, ef), b.mul(y, l));
  const T = b.add2(A, B);
  const n = b.rint(b.op('min', b.op('max', T, b.c(-160)), b.c(130)));
  const r = b.add2(b.sub(A, b.op('cast', n)), B);
  const p = b.add2(b.c(1), b.mul(r, b.poly(r, EXP2_P)));
  const n1 = b.op('shr', n, b.ci(1));
  const v = b.mul(b.mul(p, b.pow2(n1)), b.pow2(b.sub(n, n1)));
  return b.where(b.lt(b.c(128), T), b.c(Infinity), b.where(b.lt(T, b.c(-151)), b.c(0), v));
}

/**
 * pow(x, y): a constant integer y (|y| ≤ 64) by multiplications, a constant half-integer
 * (±0.5, 1.5, …) as |x|^(|y| − ½)·√x (its reciprocal for y < 0), on every target (expandedPower:
 * the one place constant powers are written out); otherwise |x|^y (powAbs) with
 * x < 0 giving ±|x|^y for an integer y and NaN otherwise, and Math.pow's values at x = ±0, ±∞
 * and y = 0, ±∞. A −0 base counts as +0 (pow(−0, −1) is +∞, not −∞).
 */
function powRule(b: Builder, [x, y]: readonly number[]): number {
  const c = b.constOf(y!);
  if (c !== undefined && Number.isInteger(c) && Math.abs(c) <= 64) return powInt(b, x!, c);
  // a half-integer: |x|^(|c| − ½)·√x (NaN for x < 0 from √), its reciprocal for c < 0
  if (c !== undefined && expandedPower(c)) {
    const m = Math.abs(c) - 0.5;
    const v = m === 0 ? powHalf(b, x!) : b.mul(powInt(b, b.op('abs', x!), m), powHalf(b, x!));
    return c < 0 ? b.op('recip', v) : v;
  }
  const ax = b.op('abs', x!);
  const yPos = b.lt(b.c(0), y!);
  const inf = b.c(Infinity);
  const zero = b.c(0);
  // |x| = 0 or ∞, y = ±∞: what Math.pow gives
  const at0 = b.where(yPos, zero, inf);
  const atInf = b.where(yPos, inf, zero);
  const yInf = b.where(b.eq(ax, b.c(1)), b.c(NaN), b.where(b.lt(b.c(1), ax), atInf, at0));
  const finite = b.where(b.eq(ax, zero), at0, b.where(b.eq(ax, inf), atInf, powAbs(b, ax, y!)));
  // a NaN x reads as a finite number's bits in powAbs, and y = NaN would pick 0 or ∞ above: NaN
  const mag = b.where(b.eq(y!, y!), b.where(b.eq(x!, x!), b.where(b.eq(b.op('abs', y!), inf), yInf, finite), x!), y!);
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
