// Shared generators of the fuzzers.
//
// Programs are drawn from a *choice sequence* (Hypothesis style): a fixed-length array of
// naturals that fast-check generates and shrinks, read left to right by `Choices`. Every
// decision is `choice % n`, and an exhausted sequence reads 0, so shrinking the naturals towards
// 0 turns a failing program into a simpler one (fewer ops, option 0 of each decision), while
// the program stays well-typed by construction.

import fc from 'fast-check';

export class Choices {
  private i = 0;
  constructor(private readonly xs: readonly number[]) {}

  /** A number in 0..n-1 (0 when the sequence is exhausted). */
  int(n: number): number {
    if (n <= 1) return 0;
    const v = this.xs[this.i++];
    return v === undefined ? 0 : v % n;
  }

  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability pct/100; false on the shrunk (0) choice. */
  chance(pct: number): boolean {
    return this.int(100) >= 100 - pct;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  /** One of the keys, with weights; the first key is what a 0 choice gives. */
  weighted<T extends string>(table: readonly (readonly [T, number])[]): T {
    const total = table.reduce((s, [, w]) => s + w, 0);
    let r = this.int(total);
    for (const [k, w] of table) {
      if (r < w) return k;
      r -= w;
    }
    return table[0]![0];
  }

  /** A random permutation of 0..n-1 (identity on 0 choices). */
  perm(n: number): number[] {
    const p = [...Array(n).keys()];
    for (let i = n - 1; i > 0; i--) {
      const j = i - this.int(i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }
}

/** The arbitrary of choice sequences. */
export const choicesArb = (length = 400): fc.Arbitrary<number[]> => fc.array(fc.nat({ max: 0xfffff }), { minLength: length, maxLength: length });

// ---------------------------------------------------------------------------------------------
// Shapes

export type Shape = number[];
export const S = (s: readonly number[]): string => `[${s.join(', ')}]`;
export const numel = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);
export const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

export function broadcast(a: readonly number[], b: readonly number[]): number[] | undefined {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return undefined;
    out.push(da === 1 ? db : da);
  }
  return out;
}

export function randShape(c: Choices, minRank = 0, maxRank = 3, maxDim = 4): Shape {
  const r = c.range(minRank, maxRank);
  return Array.from({ length: r }, () => c.range(1, maxDim));
}

/** A shape that broadcasts with s (result rank ≤ 3): equal, a suffix, size-1 axes, a scalar, extra leading axes, or two-sided. */
export function partnerShape(c: Choices, s: readonly number[]): Shape {
  switch (c.int(6)) {
    case 0:
      return [...s];
    case 1:
      return s.slice(c.int(s.length + 1));
    case 2:
      return s.map((d) => (c.chance(50) ? 1 : d));
    case 3:
      return [];
    case 4:
      return s.length < 3 ? [c.range(1, 4), ...s] : [...s];
    default: {
      // two-sided: where s has 1 the partner may be bigger, elsewhere it is 1 or equal
      const p = s.map((d) => (d === 1 ? c.range(1, 4) : c.chance(50) ? 1 : d));
      return p.slice(c.int(p.length + 1));
    }
  }
}

/** A random factorisation of n into `rank` dimensions (rank 0 only when n = 1). */
export function factorShape(c: Choices, n: number, rank: number): Shape {
  if (rank === 0) return n === 1 ? [] : [n];
  const dims = Array<number>(rank).fill(1);
  let m = n;
  for (let p = 2; m > 1; p++)
    while (m % p === 0) {
      dims[c.int(rank)]! *= p;
      m /= p;
    }
  return dims;
}

/** Nested array literal of a shape, with values from a small list. */
export function nestedLiteral(c: Choices, shape: readonly number[], values: readonly number[] = [0.5, -1, 2, 0.25, -0.75, 1.5, 3, -2]): { text: string; mag: number } {
  let mag = 0;
  const rec = (d: number): string => {
    if (d === shape.length) {
      const v = c.pick(values);
      mag = Math.max(mag, Math.abs(v));
      return String(v);
    }
    return `[${Array.from({ length: shape[d]! }, () => rec(d + 1)).join(', ')}]`;
  };
  return { text: rec(0), mag };
}

// ---------------------------------------------------------------------------------------------
// Well-typed DSL programs

export interface Val {
  readonly name: string;
  readonly shape: Shape;
  /** A rough bound on |value| for random N(0,1) params and inputs; keeps values in a safe range. */
  readonly mag: number;
}

interface Idx {
  readonly name: string;
  readonly shape: Shape;
}

export interface GenOptions {
  /** Number of ops (statements after the declarations). */
  readonly ops: number;
  /** Allow stopGradient (the checker freezes it for finite differences). */
  readonly stopGradient?: boolean;
  /** Allow g.scan over a value's axis, with a closed-over value (test/scan.test.ts has the rest). */
  readonly scan?: boolean;
}

/** Names that are reserved words of the emitted modules, temporaries' names, or otherwise awkward. */
const TRICKY = ['t1', 't2', 't3', 'dp0', 'dv1', 'grads', 'params', 'inputs', 'outputs', 'spec', 'acc', 'i', 'n', 'k', 'result', 'forward', 'loss_', 'd', 'dloss', 'café', 'checkArgs', 'best'];

const LITERALS = [0.5, 2, -1, 3, 1.5, -0.25, 0.1, 1, 0];
const EXPONENTS = [2, 0.5, -1, 1, 3, 1.5, -0.5, 0, -1.5];

/**
 * Generates a well-typed model as DSL source text: declarations, random ops over the values
 * so far (with fan-out), and a loss that sums every unused value against a random input R.
 */
export class ModelGen {
  readonly lines: string[] = [];
  readonly pool: Val[] = [];
  private readonly uses = new Map<string, number>();
  private readonly idx: Idx[] = [];
  private readonly names = new Set<string>();
  private nv = 0;
  private np = 0;
  private nx = 0;
  private ni = 0;
  /** The op of each defined value, in order (for statistics). */
  readonly ops: string[] = [];

  constructor(
    readonly c: Choices,
    readonly opts: GenOptions,
  ) {}

  // --- names and declarations -------------------------------------------------------------------

  private fresh(prefix: string): string {
    if (prefix === 'v' && this.c.chance(8)) {
      const t = this.c.pick(TRICKY);
      if (!this.names.has(t)) {
        this.names.add(t);
        return t;
      }
    }
    let name: string;
    do name = `${prefix}${prefix === 'v' ? this.nv++ : prefix === 'p' ? this.np++ : prefix === 'x' ? this.nx++ : this.ni++}`;
    while (this.names.has(name));
    this.names.add(name);
    return name;
  }

  private emit(line: string): void {
    this.lines.push(line);
  }

  define(expr: string, shape: Shape, mag: number, op: string): Val {
    const name = this.fresh('v');
    this.emit(`const ${name} = ${expr};`);
    const v = { name, shape, mag };
    this.pool.push(v);
    this.ops.push(op);
    return v;
  }

  newParam(shape: Shape): Val {
    const name = this.fresh('p');
    const opt = this.c.pick(['', '', `, { scale: 0.5 }`, `, { init: 'uniform' }`, `, { init: 'zeros', scale: 2 }`]);
    this.emit(`const ${name} = g.param('${name}', ${S(shape)}${opt});`);
    const v = { name, shape, mag: 4 };
    this.pool.push(v);
    return v;
  }

  newInput(shape: Shape): Val {
    const name = this.fresh('x');
    this.emit(`const ${name} = g.input('${name}', ${S(shape)}${this.c.chance(30) ? ", 'f32'" : ''});`);
    const v = { name, shape, mag: 4 };
    this.pool.push(v);
    return v;
  }

  /** An i32 index input of this shape: a new one, or one declared before (fan-out of indices). */
  index(shape: Shape): string {
    const old = this.idx.filter((i) => sameShape(i.shape, shape));
    if (old.length && this.c.chance(40)) return this.c.pick(old).name;
    const name = this.fresh('i');
    this.emit(`const ${name} = g.input('${name}', ${S(shape)}, 'i32');`);
    this.idx.push({ name, shape });
    return name;
  }

  /** A value of this exact shape: an existing one, or a new param, input or constant. */
  valueOf(shape: Shape, allowConst = true): { expr: string; mag: number } {
    const old = this.pool.filter((v) => sameShape(v.shape, shape));
    const k = this.c.int(allowConst ? 5 : 4);
    if (k === 1 && old.length) return this.use(this.c.pick(old));
    if (k === 2) return this.use(this.newInput(shape));
    if (k === 4 && numel(shape) <= 12) {
      const lit = nestedLiteral(this.c, shape);
      return { expr: `g.const(${lit.text})`, mag: lit.mag };
    }
    return this.use(this.newParam(shape));
  }

  /** Marks a value used; wraps it in tanh (or scales it) when its magnitude exceeds cap. */
  use(v: Val, cap = 6): { expr: string; mag: number } {
    this.uses.set(v.name, (this.uses.get(v.name) ?? 0) + 1);
    if (v.mag <= cap) return { expr: v.name, mag: v.mag };
    if (this.c.chance(50)) return { expr: `${v.name}.tanh()`, mag: 1 };
    const k = Math.ceil(v.mag / 2);
    return { expr: `${v.name}.div(${k})`, mag: v.mag / k };
  }

  /** A pool value, preferring recent ones (for depth), or one satisfying pred. */
  pickVal(pred: (v: Val) => boolean = () => true): Val | undefined {
    const ok = this.pool.filter(pred);
    if (ok.length === 0) return undefined;
    // half the time one of the last three, so that chains get deep
    return this.c.chance(50) ? ok[Math.max(0, ok.length - 1 - this.c.int(3))]! : this.c.pick(ok);
  }

  // --- ops ------------------------------------------------------------------------------------

  /** Emits one random op; returns false when it did not apply (the caller tries another). */
  step(): boolean {
    const table: (readonly [string, number])[] = [
      ['binary', 12],
      ['unary', 10],
      ['reduce', 6],
      ['matmul', 5],
      ['layout', 5],
      ['gather', 3],
      ['pick', 2],
      ['oneHot', 1],
      ['concat', 3],
      ['softmax', 3],
      ['crossEntropy', 2],
      ['batchNorm', 2],
      ['layerNorm', 2],
      ['hingeLoss', 1],
      ['longForm', 3],
      ['const', 1],
      ['conv', 3],
    ];
    if (this.opts.stopGradient) table.push(['stopGradient', 2]);
    if (this.opts.scan) table.push(['scan', 40]);
    const kind = this.c.weighted(table);
    switch (kind) {
      case 'binary':
        return this.binary();
      case 'unary':
        return this.unary();
      case 'reduce':
        return this.reduce();
      case 'matmul':
        return this.matmul();
      case 'layout':
        return this.layout();
      case 'gather':
        return this.gather();
      case 'pick':
        return this.pick();
      case 'oneHot':
        return this.oneHot();
      case 'concat':
        return this.concat();
      case 'softmax':
        return this.softmax();
      case 'scan':
        return this.scan();
      case 'crossEntropy':
        return this.crossEntropy();
      case 'batchNorm':
        return this.batchNorm();
      case 'layerNorm':
        return this.layerNorm();
      case 'hingeLoss':
        return this.hingeLoss();
      case 'longForm':
        return this.longForm();
      case 'const':
        return this.constOp();
      case 'conv':
        return this.conv();
      case 'stopGradient': {
        const a = this.pickVal();
        if (!a) return false;
        const A = this.use(a);
        this.define(`${A.expr}.stopGradient()`, a.shape, A.mag, 'stopGradient');
        return true;
      }
    }
    return false;
  }

  /** A binary op with NumPy broadcasting. */
  binary(): boolean {
    const a = this.pickVal();
    if (!a) return false;
    const op = this.c.pick(['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum'] as const);
    // the partner: a literal number, or a value of a broadcast-compatible shape
    let B: { expr: string; mag: number; shape: Shape; literal: boolean };
    if (this.c.chance(20)) {
      const x = this.c.pick(LITERALS.filter((l) => op !== 'div' || l !== 0));
      B = { expr: String(x), mag: Math.abs(x), shape: [], literal: true };
    } else {
      const compatible = this.pool.filter((v) => {
        const r = broadcast(a.shape, v.shape);
        return r !== undefined && r.length <= 3;
      });
      if (compatible.length && this.c.chance(40)) {
        const v = this.c.pick(compatible);
        const u = this.use(v, op === 'mul' ? 4 : 6);
        B = { ...u, shape: v.shape, literal: false };
      } else {
        const ps = partnerShape(this.c, a.shape);
        B = { ...this.valueOf(ps), shape: ps, literal: false };
      }
    }
    const A = this.use(a, op === 'mul' ? 4 : op === 'pow' ? 2 : 6);
    const out = broadcast(a.shape, B.shape)!;
    const swap = !B.literal && this.c.chance(50);
    const [L, R] = swap ? [B, A] : [A, B];
    switch (op) {
      case 'add':
      case 'sub':
        this.define(`${L.expr}.${op}(${R.expr})`, out, L.mag + R.mag, op);
        break;
      case 'mul':
        this.define(`${L.expr}.mul(${R.expr})`, out, L.mag * R.mag, op);
        break;
      case 'maximum':
      case 'minimum':
        this.define(`${L.expr}.${op}(${R.expr})`, out, Math.max(L.mag, R.mag), op);
        break;
      case 'div':
        // the divisor is kept away from 0
        if (R === B && B.literal) this.define(`${L.expr}.div(${R.expr})`, out, L.mag / Math.abs(Number(R.expr)), op);
        else if (this.c.chance(30)) this.define(`${L.expr}.div(${R.expr}.abs().add(0.5))`, out, L.mag * 2, op);
        else this.define(`${L.expr}.div(${R.expr}.square().add(0.5))`, out, L.mag * 2, op);
        break;
      case 'pow': {
        // a positive base in [0.5, 4.5]; a literal exponent in [−1.5, 3], or tanh of a value
        const base = `${A.expr}.square().add(0.5)`;
        if (B.literal || this.c.chance(30)) {
          const e = B.literal && Math.abs(Number(B.expr)) <= 2 ? Number(B.expr) : this.c.pick(EXPONENTS);
          this.define(`${base}.pow(${e})`, a.shape, Math.max(Math.pow(4.5, Math.max(e, 0)), Math.pow(0.5, Math.min(e, 0))), op);
        } else {
          const e = `${B.expr}.tanh()`;
          this.define(`${base}.pow(${e})`, out, 4.5, op);
        }
        break;
      }
    }
    return true;
  }

  unary(): boolean {
    const a = this.pickVal();
    if (!a) return false;
    const op = this.c.pick(['neg', 'exp', 'log', 'tanh', 'sigmoid', 'relu', 'sqrt', 'square', 'abs'] as const);
    switch (op) {
      case 'neg':
      case 'relu':
      case 'abs': {
        const A = this.use(a);
        this.define(`${A.expr}.${op}()`, a.shape, A.mag, op);
        break;
      }
      case 'tanh':
      case 'sigmoid': {
        const A = this.use(a, 1e9);
        this.define(`${A.expr}.${op}()`, a.shape, 1, op);
        break;
      }
      case 'exp': {
        const A = this.use(a, 2.5);
        this.define(`${A.expr}.exp()`, a.shape, Math.exp(A.mag), op);
        break;
      }
      case 'square': {
        const A = this.use(a, 4);
        this.define(`${A.expr}.square()`, a.shape, A.mag * A.mag, op);
        break;
      }
      case 'log': {
        const A = this.use(a);
        const arg = this.c.pick([`${A.expr}.square().add(0.5)`, `${A.expr}.abs().add(0.5)`, `${A.expr}.sigmoid()`]);
        this.define(`${arg}.log()`, a.shape, Math.max(Math.abs(Math.log(A.mag * A.mag + 0.5)), 8), op);
        break;
      }
      case 'sqrt': {
        const A = this.use(a);
        const arg = this.c.pick([`${A.expr}.square().add(0.5)`, `${A.expr}.abs().add(0.5)`, `${A.expr}.exp()`]);
        this.define(`${arg}.sqrt()`, a.shape, Math.sqrt(A.mag * A.mag + 0.5) + Math.exp(A.mag / 2), op);
        break;
      }
    }
    return true;
  }

  /** An axis argument for rank r, as DSL text, and the normalised axes (undefined = all). */
  axisArg(r: number): { text: string; axes: number[] } {
    const all = [...Array(r).keys()];
    switch (this.c.int(r === 0 ? 2 : 4)) {
      case 0:
        return { text: '', axes: all };
      case 1:
        if (r === 0 || this.c.chance(30)) return { text: '[]', axes: [] };
        return { text: 'undefined', axes: all };
      case 2: {
        const a = this.c.int(r);
        return { text: String(this.c.chance(40) ? a - r : a), axes: [a] };
      }
      default: {
        const p = this.c.perm(r).slice(0, this.c.range(1, r));
        return { text: S(p.map((a) => (this.c.chance(30) ? a - r : a))), axes: [...p].sort((x, y) => x - y) };
      }
    }
  }

  reduce(): boolean {
    const a = this.pickVal();
    if (!a) return false;
    const op = this.c.pick(['sum', 'mean', 'max'] as const);
    const { text, axes } = this.axisArg(a.shape.length);
    const keep = this.c.chance(40);
    const args = keep ? `${text || 'undefined'}, true` : text;
    const shape = a.shape.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d]));
    const count = numel(axes.map((i) => a.shape[i]!));
    const A = this.use(a);
    this.define(`${A.expr}.${op}(${args})`, shape, op === 'sum' ? A.mag * count : A.mag, op);
    return true;
  }

  matmul(): boolean {
    const a = this.pickVal((v) => v.shape.length >= 2);
    if (!a) {
      // make a matrix from something
      const v = this.pickVal();
      if (!v) return false;
      const V = this.use(v);
      const n = numel(v.shape);
      const shape = n === 1 ? [1, 1] : this.c.chance(50) ? [n, 1] : [1, n];
      this.define(`${V.expr}.reshape(${S(shape)})`, shape, V.mag, 'reshape');
      return true;
    }
    const s = a.shape;
    const A = this.use(a, 4);
    const onLeft = this.c.chance(70);
    if (onLeft) {
      // a [.., m, k] × B [k, n] or [b, k, n] (same batch)
      const k = s.at(-1)!;
      const n = this.c.range(1, 6); // up to 6: a full register tile (2×4) plus a remainder
      const bs = s.length === 3 && this.c.chance(50) ? [s[0]!, k, n] : [k, n];
      const B = this.valueOf(bs, false);
      const mag = A.mag * Math.min(B.mag, 4) * k;
      const Bx = B.mag > 4 ? `${B.expr}.tanh()` : B.expr;
      this.define(`${A.expr}.matmul(${Bx})`, [...s.slice(0, -1), n], mag, 'matmul');
    } else {
      // B [.., m, k] × a [k, n] (a rank 2), or B [b, m, k] × a [b, k, n]
      const k = s.at(-2)!;
      const m = this.c.range(1, 6);
      const bs = s.length === 3 ? [s[0]!, m, k] : this.c.chance(40) ? [this.c.range(1, 3), m, k] : [m, k];
      const B = this.valueOf(bs, false);
      const Bx = B.mag > 4 ? `${B.expr}.tanh()` : B.expr;
      this.define(`${Bx}.matmul(${A.expr})`, [...bs.slice(0, -1), s.at(-1)!], A.mag * Math.min(B.mag, 4) * k, 'matmul');
    }
    return true;
  }

  layout(): boolean {
    const a = this.pickVal();
    if (!a) return false;
    const s = a.shape;
    const A = this.use(a, 1e9);
    if (this.c.chance(50)) {
      // transpose: default (swap the last two) or an explicit permutation, any rank
      if (s.length >= 2 && this.c.chance(40)) {
        const out = [...s];
        [out[s.length - 2], out[s.length - 1]] = [s.at(-1)!, s.at(-2)!];
        this.define(`${A.expr}.transpose()`, out, A.mag, 'transpose');
      } else {
        const p = this.c.perm(s.length);
        this.define(`${A.expr}.transpose(${S(p)})`, p.map((i) => s[i]!), A.mag, 'transpose');
      }
      return true;
    }
    const n = numel(s);
    const rank = n === 1 ? this.c.int(4) : this.c.range(1, 3);
    const to = factorShape(this.c, n, rank);
    const wild = to.length > 0 && this.c.chance(30) ? this.c.int(to.length) : -1;
    const t2 = to.map((d, i) => (i === wild ? -1 : d));
    this.define(`${A.expr}.reshape(${S(t2)})`, to, A.mag, 'reshape');
    return true;
  }

  gather(): boolean {
    const ir = this.c.int(3);
    let T: { expr: string; mag: number };
    let ts: Shape;
    const table = this.c.chance(50) ? this.pickVal((v) => v.shape.length >= 1 && ir + v.shape.length - 1 <= 3) : undefined;
    if (table) {
      T = this.use(table, 1e9);
      ts = table.shape;
    } else {
      ts = [this.c.range(1, 5), ...randShape(this.c, 0, Math.min(2, 3 - ir))];
      T = this.use(this.newParam(ts), 1e9);
    }
    const is = randShape(this.c, ir, ir);
    const I = this.index(is);
    this.define(`g.gather(${T.expr}, ${I})`, [...is, ...ts.slice(1)], T.mag, 'gather');
    return true;
  }

  pick(): boolean {
    const x = this.pickVal((v) => v.shape.length === 2);
    if (!x) return false;
    const X = this.use(x, 1e9);
    const I = this.index([x.shape[0]!]);
    this.define(`g.pick(${X.expr}, ${I})`, [x.shape[0]!], X.mag, 'pick');
    return true;
  }

  oneHot(): boolean {
    const is = randShape(this.c, 0, 2);
    const depth = this.c.range(1, 4);
    const I = this.index(is);
    this.define(`g.oneHot(${I}, ${depth})`, [...is, depth], 1, 'oneHot');
    return true;
  }

  concat(): boolean {
    const a = this.pickVal((v) => v.shape.length >= 1);
    if (!a) return false;
    const s = a.shape;
    const ax = this.c.int(s.length);
    const parts: { expr: string; mag: number; d: number }[] = [{ ...this.use(a), d: s[ax]! }];
    const more = this.c.range(1, 2);
    for (let i = 0; i < more; i++) {
      if (this.c.chance(25)) {
        parts.push({ ...this.use(a), d: s[ax]! }); // the same value twice
        continue;
      }
      const fits = this.pool.filter((v) => v.shape.length === s.length && v.shape.every((d, j) => j === ax || d === s[j]));
      if (fits.length && this.c.chance(40)) {
        const v = this.c.pick(fits);
        parts.push({ ...this.use(v), d: v.shape[ax]! });
      } else {
        const shape = s.map((d, j) => (j === ax ? this.c.range(1, 3) : d));
        parts.push({ ...this.valueOf(shape), d: shape[ax]! });
      }
    }
    if (this.c.chance(30)) parts.reverse();
    const out = s.map((d, j) => (j === ax ? parts.reduce((t, p) => t + p.d, 0) : d));
    const axText = this.c.chance(30) ? ax - s.length : ax;
    this.define(`g.concat([${parts.map((p) => p.expr).join(', ')}], ${axText})`, out, Math.max(...parts.map((p) => p.mag)), 'concat');
    return true;
  }

  /** g.scan over an axis of a value: a carry of the slice's shape, a closed-over value, ys or none, forward or reverse, checkpointed or not. */
  scan(): boolean {
    const a = this.pickVal((v) => v.shape.length >= 1 && v.shape.every((d) => d >= 1));
    if (!a) return false;
    const ax = this.c.int(a.shape.length);
    const slice = a.shape.filter((_d, i) => i !== ax);
    const A = this.use(a);
    const init = this.valueOf(slice, false);
    const K = this.valueOf(slice);
    const carry = this.c.pick([`sc.mul(0.5).add(sx.tanh().mul(${K.expr}.tanh())).tanh()`, `sc.mul(sx.sigmoid()).add(${K.expr}.div(${Math.ceil(K.mag + 1)}))`, `sc.add(sx.tanh()).mul(0.5)`]);
    const ys = this.c.int(3);
    const y = ys === 0 ? 'null' : ys === 1 ? 'sc2.add(sx.tanh())' : 'sc.mul(sx.tanh())';
    const opts = [this.c.chance(50) ? `axis: ${this.c.chance(30) ? ax - a.shape.length : ax}` : ax === 0 ? '' : `axis: ${ax}`, this.c.chance(30) ? 'reverse: true' : '', a.shape[ax]! >= 2 && this.c.chance(50) ? `checkpoint: ${2 + this.c.int(a.shape[ax]! - 1)}` : ''].filter((s) => s);
    const s = this.fresh('s');
    this.emit(`const ${s} = g.scan((sc, sx) => { const sc2 = ${carry}; return [sc2, ${y}]; }, ${init.expr.startsWith('g.const(') || init.mag <= 6 ? init.expr : `${init.expr}.tanh()`}, ${A.expr}${opts.length ? `, { ${opts.join(', ')} }` : ''});`);
    // the carry grows by at most |K|/(|K| + 1) a step: bounded by the number of steps
    this.define(`${s}[0]`, slice, Math.max(init.mag, 1) + a.shape[ax]!, 'scan');
    if (ys > 0) this.define(`${s}[1]`, a.shape, Math.max(init.mag, 1) + a.shape[ax]! + 1, 'scan');
    return true;
  }

  softmax(): boolean {
    const a = this.pickVal((v) => v.shape.length >= 1);
    if (!a) return false;
    const r = a.shape.length;
    const A = this.use(a);
    const ax = this.c.int(r + 1); // r: the default axis
    const axText = ax === r ? '' : `, ${this.c.chance(30) ? ax - r : ax}`;
    if (this.c.chance(50)) this.define(`g.softmax(${A.expr}${axText})`, a.shape, 1, 'softmax');
    else this.define(`g.logSoftmax(${A.expr}${axText})`, a.shape, 2 * A.mag + 2, 'logSoftmax');
    return true;
  }

  crossEntropy(): boolean {
    const x = this.pickVal((v) => v.shape.length === 2);
    if (!x) return false;
    const X = this.use(x);
    const I = this.index([x.shape[0]!]);
    this.define(`g.crossEntropy(${X.expr}, ${I})`, [], 2 * X.mag + 2, 'crossEntropy');
    return true;
  }

  hingeLoss(): boolean {
    const x = this.pickVal((v) => v.shape.length === 2);
    if (!x) return false;
    const X = this.use(x);
    const I = this.index([x.shape[0]!]);
    const margin = this.c.pick(['', ', 0.5', ', 2', ', 0']);
    this.define(`g.hingeLoss(${X.expr}, ${I}${margin})`, [], (2 * X.mag + 2) * x.shape[1]!, 'hingeLoss');
    return true;
  }

  /** gain or bias of a batchnorm over f features: a value of shape [f] or [1, f], or a number. */
  private bnOperand(f: number): { expr: string; mag: number } {
    if (this.c.chance(20)) return { expr: this.c.pick(['1', '0', '0.5', '-2']), mag: 2 };
    return this.valueOf(this.c.chance(50) ? [f] : [1, f]);
  }

  batchNorm(): boolean {
    const x = this.pickVal((v) => v.shape.length === 2 && v.shape[0]! >= 2);
    if (!x) return false;
    const X = this.use(x);
    const f = x.shape[1]!;
    const gain = this.bnOperand(f);
    const bias = this.bnOperand(f);
    const eps = this.c.pick(['', ', { eps: 0.1 }', ', { eps: 1 }', ', {}']);
    this.define(`g.batchNorm(${X.expr}, ${gain.expr}, ${bias.expr}${eps})`, x.shape, 3 * gain.mag * Math.sqrt(x.shape[0]!) + bias.mag, 'batchNorm');
    return true;
  }

  /** Layer norm over the last axis of a [c], [n, c] or [n, t, c] value; gain and bias [c] or numbers. */
  layerNorm(): boolean {
    const x = this.pickVal((v) => v.shape.length >= 1 && v.shape.at(-1)! >= 2);
    if (!x) return false;
    const X = this.use(x);
    const c = x.shape.at(-1)!;
    const operand = () => (this.c.chance(20) ? { expr: this.c.pick(['1', '0', '0.5', '-2']), mag: 2 } : this.valueOf([c]));
    const gain = operand();
    const bias = operand();
    const eps = this.c.pick(['', ', { eps: 0.1 }', ', {}']);
    this.define(`g.layerNorm(${X.expr}, ${gain.expr}, ${bias.expr}${eps})`, x.shape, gain.mag * Math.sqrt(c) + bias.mag, 'layerNorm');
    return true;
  }

  /**
   * A convolution (conv1d or conv2d: stride, padding incl. 'same' and [left, right], dilation,
   * groups incl. depthwise, an optional bias) or a max/avg pooling, of a value of the pool (a
   * rank-3 value as [N, C, L], or as [1, C, H, W]) or of a new 4-D param or input; a 2-D result
   * is reshaped to rank 3. Sizes stay tiny (the interpreter and finite differences visit every tap).
   */
  conv(): boolean {
    const two = this.c.chance(50);
    const poolOnly = this.c.chance(30);
    // the kernel and geometry first, then an input large enough for it
    const k = [this.c.range(1, 3), two ? this.c.range(1, 3) : 1];
    const dil = poolOnly ? [1, 1] : [this.c.range(1, 2), two ? this.c.range(1, 2) : 1];
    const span = k.map((kk, i) => dil[i]! * (kk - 1) + 1);
    const src = this.pickVal((v) => v.shape.length === 3 && v.shape[2]! >= span[1]! && (two ? v.shape[1]! >= span[0]! : true) && numel(v.shape) <= 48);
    let X: { expr: string; mag: number };
    let shape: number[];
    if (src && this.c.chance(60)) {
      const u = this.use(src);
      shape = two ? [1, ...src.shape] : [...src.shape];
      X = { expr: two ? `${u.expr}.reshape(${S(shape)})` : u.expr, mag: u.mag };
    } else {
      shape = [this.c.range(1, 2), this.c.range(1, 3), ...(two ? [span[0]! + this.c.int(3)] : []), span[1]! + this.c.int(4)];
      const name = this.fresh(this.c.chance(50) ? 'x' : 'p');
      this.emit(name.startsWith('x') ? `const ${name} = g.input('${name}', ${S(shape)});` : `const ${name} = g.param('${name}', ${S(shape)});`);
      X = { expr: name, mag: 4 };
    }
    const [N, C] = shape as [number, number];
    const spatial = shape.slice(2);
    const pair = (xs: number[]) => (two ? (xs[0] === xs[1] && this.c.chance(50) ? String(xs[0]) : `[${xs.join(', ')}]`) : String(xs[1]));
    const out = (n: number, kk: number, st: number, p0: number, p1: number, d: number) => Math.floor((n + p0 + p1 - d * (kk - 1) - 1) / st) + 1;
    const ks = two ? k : [k[1]!];
    const ds = two ? dil : [dil[1]!];
    if (poolOnly) {
      const stride = ks.map((kk) => this.c.range(1, kk));
      const pad = ks.map((kk) => this.c.int(Math.floor(kk / 2) + 1));
      const size = spatial.map((n, i) => out(n, ks[i]!, stride[i]!, pad[i]!, pad[i]!, 1));
      const kind = this.c.pick(['max', 'avg'] as const);
      const fn = `${kind}Pool${two ? '2d' : '1d'}`;
      const args = `${two ? `[${ks.join(', ')}]` : ks[0]}, { stride: ${two ? `[${stride.join(', ')}]` : stride[0]}, padding: ${two ? `[${pad.join(', ')}]` : pad[0]} }`;
      const res = [N, C, ...size];
      this.finishConv(`g.${fn}(${X.expr}, ${args})`, res, X.mag, fn);
      return true;
    }
    const divisors = [...Array(C).keys()].map((d) => d + 1).filter((d) => C % d === 0);
    const G = this.c.pick(divisors);
    const O = G * this.c.range(1, 2);
    const stride = ks.map(() => this.c.range(1, 2));
    const same = stride.every((st) => st === 1) && this.c.chance(20);
    const pads: [number, number][] = ks.map(() => {
      const a = this.c.int(2);
      return [a, !two && this.c.chance(30) ? this.c.int(2) : a];
    });
    const padExpr = same ? "'same'" : two ? `[${pads.map((p) => p[0]).join(', ')}]` : pads[0]![0] === pads[0]![1] ? String(pads[0]![0]) : `[${pads[0]!.join(', ')}]`;
    const size = spatial.map((n, i) => {
      const [p0, p1] = same ? [Math.floor((ds[i]! * (ks[i]! - 1)) / 2), ds[i]! * (ks[i]! - 1) - Math.floor((ds[i]! * (ks[i]! - 1)) / 2)] : pads[i]!;
      return out(n, ks[i]!, stride[i]!, p0, p1, ds[i]!);
    });
    const wName = this.fresh('p');
    this.emit(`const ${wName} = g.param('${wName}', ${S([O, C / G, ...ks])}, { scale: 0.5 });`);
    let bias = '';
    if (this.c.chance(50)) {
      const b = this.fresh('p');
      this.emit(`const ${b} = g.param('${b}', [${O}]);`);
      bias = `bias: ${b}, `;
    }
    const opts = `{ ${bias}stride: ${pair(two ? stride : [0, stride[0]!])}, padding: ${padExpr}, dilation: ${pair(two ? ds : [0, ds[0]!])}, groups: ${G} }`;
    const fan = (C / G) * ks.reduce((a, b) => a * b, 1);
    this.finishConv(`g.conv${two ? '2d' : '1d'}(${X.expr}, ${wName}, ${opts})`, [N, O, ...size], X.mag * 2 * Math.sqrt(fan) + (bias ? 4 : 0), `conv${two ? '2d' : '1d'}`);
    return true;
  }

  /** A conv or pool result in the pool: rank 3 as it is, rank 4 reshaped to [N·C, H, W]. */
  private finishConv(expr: string, shape: number[], mag: number, op: string): void {
    if (shape.length === 4) this.define(`${expr}.reshape(${S([shape[0]! * shape[1]!, shape[2]!, shape[3]!])})`, [shape[0]! * shape[1]!, shape[2]!, shape[3]!], mag, op);
    else this.define(expr, shape, mag, op);
  }

  /** The lecture's long forms (which the rewrite pass fuses), and near misses of them. */
  longForm(): boolean {
    const which = this.c.int(4);
    if (which === 0) {
      // softmax: exp(x − max x) / Σ exp(x − max x), or · (Σ …)^−1; a near miss sums another axis
      const a = this.pickVal((v) => v.shape.length >= 1);
      if (!a) return false;
      const r = a.shape.length;
      const A = this.use(a, 1e9); // a name, not an expression: the pattern needs one value
      const ax = this.c.int(r);
      const sumAx = r >= 2 && this.c.chance(20) ? (ax + 1) % r : ax;
      const sg = this.c.chance(50) ? '.stopGradient()' : '';
      const e = this.define(`${A.expr}.sub(${A.expr}.max(${ax}, true)${sg}).exp()`, a.shape, 1, 'softmax-long:exp');
      const E = this.use(e, 1e9);
      const s = this.c.chance(50) ? `${E.expr}.div(${E.expr}.sum(${sumAx}, true))` : `${E.expr}.mul(${E.expr}.sum(${sumAx}, true).pow(-1))`;
      const sm = this.define(s, a.shape, 1, 'softmax-long');
      if (this.c.chance(40)) this.define(`${this.use(sm).expr}.log()`, a.shape, 2 * A.mag + 3, 'log-softmax-long:log');
      return true;
    }
    if (which === 1) {
      // log-softmax: z − log Σ exp z with z = x − max x
      const a = this.pickVal((v) => v.shape.length >= 1);
      if (!a) return false;
      const A = this.use(a, 1e9);
      const ax = this.c.int(a.shape.length);
      const sg = this.c.chance(50) ? '.stopGradient()' : '';
      const z = this.define(`${A.expr}.sub(${A.expr}.max(${ax}, true)${sg})`, a.shape, 2 * A.mag, 'log-softmax-long:z');
      const Z = this.use(z, 1e9);
      this.define(`${Z.expr}.sub(${Z.expr}.exp().sum(${ax}, true).log())`, a.shape, 2 * A.mag + 2, 'log-softmax-long');
      return true;
    }
    if (which === 2) {
      // cross-entropy: −Σ pick(logSoftmax(x), y) / n, in several spellings
      const x = this.pickVal((v) => v.shape.length === 2);
      if (!x) return false;
      const X = this.use(x);
      const n = x.shape[0]!;
      const I = this.index([n]);
      const ls = this.c.chance(50) ? `g.logSoftmax(${X.expr}, 1)` : `g.logSoftmax(${X.expr})`;
      const picked = `g.pick(${ls}, ${I})`;
      const tail = this.c.pick([`.sum(0).mul(-1 / ${n})`, `.mean().neg()`, `.sum().mul(1 / ${n}).neg()`, `.sum(0).mul(${-1 / n})`, `.mean(0).mul(-1)`]);
      this.define(`${picked}${tail}`, [], 2 * X.mag + 3, 'xent-long');
      return true;
    }
    // batchnorm: (x − μ)·(Σ(x − μ)²/(n − 1) + ε)^−½ over axis 0; a near miss divides by n
    const x = this.pickVal((v) => v.shape.length === 2 && v.shape[0]! >= 2);
    if (!x) return false;
    const X = this.use(x, 1e9);
    const n = x.shape[0]!;
    const f = x.shape[1]!;
    const mu = this.c.chance(50) ? `${X.expr}.sum(0, true).mul(1 / ${n})` : `${X.expr}.mean(0, true)`;
    const d = this.define(`${X.expr}.sub(${mu})`, x.shape, 2 * X.mag, 'bn-long:diff');
    const D = this.use(d, 1e9);
    const sq = this.c.pick([`${D.expr}.square()`, `${D.expr}.pow(2)`, `${D.expr}.mul(${D.expr})`]);
    const denom = this.c.chance(85) ? n - 1 : n;
    const variance = this.define(`${sq}.sum(0, true).mul(1 / ${denom})`, [1, f], 4 * X.mag * X.mag, 'bn-long:var');
    const V = this.use(variance, 1e9);
    const eps = this.c.pick(['1e-5', '0.1', '1']);
    const inv = this.c.chance(50) ? `${V.expr}.add(${eps}).pow(-0.5)` : `g.const(${eps}).add(${V.expr}).pow(-0.5)`;
    const y = this.c.chance(50) ? `${D.expr}.mul(${inv})` : `${inv}.mul(${D.expr})`;
    this.define(y, x.shape, Math.sqrt(n), 'bn-long');
    return true;
  }

  constOp(): boolean {
    const a = this.pickVal();
    if (!a) return false;
    const A = this.use(a);
    const ps = partnerShape(this.c, a.shape);
    const lit = nestedLiteral(this.c, ps);
    this.define(`${A.expr}.mul(g.const(${lit.text}))`, broadcast(a.shape, ps)!, A.mag * lit.mag, 'const');
    return true;
  }

  // --- the program ----------------------------------------------------------------------------

  /** Declarations and `opts.ops` random ops. */
  body(): void {
    const first = this.c.range(1, 2);
    for (let i = 0; i < first; i++) this.newParam(randShape(this.c));
    for (let i = 0, tries = 0; i < this.opts.ops && tries < 4 * this.opts.ops + 8; tries++) if (this.step()) i++;
  }

  /** Values no op uses. */
  leaves(): Val[] {
    return this.pool.filter((v) => !this.uses.has(v.name));
  }

  /** The loss: Σ leaf·R over every unused value, each against its own random input R. */
  lossLines(): string[] {
    const out: string[] = [];
    const terms: string[] = [];
    this.leaves().forEach((v, j) => {
      const shapeText = this.c.chance(50) ? `${v.name}.shape` : S(v.shape);
      out.push(`const R${j} = g.input('R${j}', ${shapeText});`);
      const scaled = v.mag > 8 ? `${v.name}.div(${Math.ceil(v.mag / 4)})` : v.name;
      terms.push(this.c.chance(20) ? `${scaled}.mul(R${j}).mean()` : `${scaled}.mul(R${j}).sum()`);
    });
    out.push(`const loss = ${terms.reduce((acc, t) => `${acc}.add(${t})`)};`);
    return out;
  }

  /** The whole model file. */
  source(name = 'fz'): { text: string; extra?: string } {
    this.body();
    const loss = this.lossLines();
    const inner = this.pool.filter((v) => v.shape.length > 0 && this.uses.has(v.name));
    const extra = inner.length && this.c.chance(40) ? this.c.pick(inner).name : undefined;
    const ret = extra ? `return { loss, out: ${extra} };` : this.c.chance(50) ? 'return loss;' : 'return { loss };';
    return { text: modelSource(name, [...this.lines, ...loss, ret]), extra };
  }
}

/** A model file around body lines (the first body line is line 4). */
export function modelSource(name: string, body: readonly string[]): string {
  return `import { model } from 'graphc';\n\nexport default model('${name}', (g) => {\n${body.map((l) => `  ${l}`).join('\n')}\n});\n`;
}

/** Line of body line k (0-based) in modelSource's output. */
export const BODY_LINE0 = 4;
