// Passes: a flat, named list. The runner verifies the graph before and after each pass and
// numbers the temporaries in program order after it.

import { Builder } from './builder.js';
import type { Graph } from './graph.js';
import type { NDArray } from './ndarray.js';
import { nd } from './ndarray.js';
import { OPS } from './ops.js';
import { fmtAttrs } from './print.js';
import { asDim, isStatic, numelSize, sizeEq, staticShape } from './dims.js';
import type { ConcreteType, Inst, InstId, Shape, ValueId } from './types.js';
import { numel, sameShape } from './types.js';
import { verify } from './verify.js';

export interface PassContext {
  /** Forward values that must survive (read by the backward graph). */
  readonly keep: ReadonlySet<string>;
  /** For backward passes: the forward graph whose values they read. */
  readonly forward?: Graph;
}

export interface Pass {
  readonly name: string;
  readonly run: (g: Graph, ctx: PassContext) => void;
}

/** Runs passes in order, verifying before and after each; `after(name, g)` observes each stage. */
export function runPasses(g: Graph, passes: readonly Pass[], ctx: PassContext, after?: (pass: string, g: Graph) => void): void {
  verify(g, 'before passes');
  for (const p of passes) {
    p.run(g, ctx);
    g.numberTemps();
    verify(g, `after ${p.name}`);
    after?.(p.name, g);
  }
}

// ---------------------------------------------------------------------------------------------

function isLive(g: Graph, inst: Inst, ctx: PassContext): boolean {
  // a scan's results stay with it: the reverse pass reads the carries it stored (ir/scan-grad.ts)
  return inst.op === 'input' || inst.op === 'param' || inst.op === 'scan_out' || ctx.keep.has(g.value(inst.result).name);
}

/** Dead-code elimination: drops instructions whose value reaches no output. */
export const dce: Pass = {
  name: 'dce',
  run(g, ctx) {
    const live = new Set<ValueId>(g.outputs.map((o) => o.value));
    const dead = new Set<InstId>();
    for (let i = g.insts.length - 1; i >= 0; i--) {
      const inst = g.insts[i]!;
      if (live.has(inst.result) || isLive(g, inst, ctx)) inst.args.forEach((a) => live.add(a));
      else dead.add(inst.id);
    }
    g.remove(dead);
  },
};

/**
 * Common-subexpression elimination: one instruction per (op, operands, attributes). A reduction
 * that differs from an earlier one only in keepDims becomes a reshape of it (a bias gradient
 * `Σdy` and the kept `Σdy` of a batchnorm or a broadcast operand are one sum).
 */
export const cse: Pass = {
  name: 'cse',
  run(g) {
    const seen = new Map<string, ValueId>();
    const reductions = new Map<string, ValueId>();
    const dead = new Set<InstId>();
    for (const id of g.insts.map((i) => i.id)) {
      const inst = g.inst(id);
      if (inst.op === 'input' || inst.op === 'param' || inst.op === 'fwd') continue;
      if (inst.op === 'sum' || inst.op === 'max') {
        const rkey = `${inst.op} ${inst.args[0]!.index} [${[...inst.attrs.axes].sort((a, b) => a - b)}]`;
        const other = reductions.get(rkey);
        if (other !== undefined && g.type(other).shape.length !== g.type(inst.result).shape.length) {
          g.replaceInst(inst, { ...inst, op: 'reshape', args: [other], attrs: { shape: [...g.type(inst.result).shape] } } as Inst);
          continue;
        }
        if (other === undefined) reductions.set(rkey, inst.result);
      }
      const key = instKey(g, inst, (a) => String(a.index));
      const prev = seen.get(key);
      if (prev === undefined) {
        seen.set(key, inst.result);
        continue;
      }
      adoptName(g, prev, inst.result);
      g.replaceUses(inst.result, prev);
      dead.add(inst.id);
    }
    g.remove(dead);
  },
};

const COMMUTATIVE = new Set(['add', 'mul', 'maximum', 'minimum']);

/** A structural key of an instruction: op, type, attributes and operand keys (sorted when commutative). */
function instKey(g: Graph, inst: Inst, arg: (v: ValueId) => string): string {
  const t = g.type(inst.result);
  const args = inst.args.map(arg);
  if (COMMUTATIVE.has(inst.op)) args.sort();
  // a reduction's axes in any order are the same reduction
  const attrs = inst.op === 'sum' || inst.op === 'max' ? { ...inst.attrs, axes: [...inst.attrs.axes].sort((a, b) => a - b) } : inst.attrs;
  return `${inst.op} ${t.dtype}[${t.shape}] ${args.join(',')}${fmtAttrs(attrs)}`;
}

/**
 * Backward instructions that recompute a forward value (e.g. the softmax of the cross-entropy
 * rule, when the model outputs `probs = softmax(logits)`) read it instead.
 */
export const reuseForward: Pass = {
  name: 'reuse-forward',
  run(g, ctx) {
    const fwd = ctx.forward;
    if (!fwd) return;
    const constKey = (gr: Graph, d: Inst) => (d.op === 'const' ? `c${gr.type(d.result).dtype}[${gr.type(d.result).shape}]=${d.attrs.data.join(',')}` : undefined);
    const known = new Map<string, string>();
    for (const inst of fwd.insts) {
      if (inst.op === 'input' || inst.op === 'param' || inst.op === 'const') continue;
      known.set(instKey(fwd, inst, (a) => constKey(fwd, fwd.def(a)) ?? `%${fwd.value(a).name}`), fwd.value(inst.result).name);
    }
    const reads = new Map<string, ValueId>();
    for (const inst of g.insts) if (inst.op === 'fwd') reads.set(inst.attrs.name, inst.result);
    const dead = new Set<InstId>();
    for (const id of g.insts.map((i) => i.id)) {
      const inst = g.inst(id);
      if (inst.args.length === 0) continue;
      const argKey = (a: ValueId) => {
        const d = g.def(a);
        return d.op === 'fwd' ? `%${d.attrs.name}` : constKey(g, d);
      };
      if (!inst.args.every((a) => argKey(a) !== undefined)) continue;
      const name = known.get(instKey(g, inst, (a) => argKey(a)!));
      if (name === undefined) continue;
      const existing = reads.get(name);
      if (existing) {
        // a read of that forward value may come later in the graph: it has no operands, so it moves up
        const readId = g.def(existing).id;
        const at = g.insts.findIndex((i) => i.id === inst.id);
        const readAt = g.insts.findIndex((i) => i.id === readId);
        if (readAt > at) g.insts.splice(at, 0, ...g.insts.splice(readAt, 1));
        g.replaceUses(inst.result, existing);
        dead.add(inst.id);
      } else {
        g.replaceInst(inst, { ...inst, op: 'fwd', args: [], attrs: { name } } as Inst);
        const v = g.value(inst.result);
        if (v.name) g.names.release(v.name);
        g.names.claimExact(name);
        v.name = name;
        v.temp = false;
        reads.set(name, inst.result);
      }
    }
    g.remove(dead);
  },
};

/**
 * The forward values the backward graph reads that one add, sub, mul or neg of values it reads
 * anyway (or of constants) computes: recomputed there instead of read, so that the forward no
 * longer stores them (a fused group keeps them in registers). The GPT's GELU,
 * ½x·(1 + tanh u), stored ½x and 1 + tanh u beside x and tanh u for its gradient, two more arrays
 * of its [12,64,512] written and read a step per layer. One level only: an operand must be a read
 * that stays (or a constant), never one recomputed itself.
 */
export const rematerialize: Pass = {
  name: 'rematerialize',
  run(g, ctx) {
    const fwd = ctx.forward;
    if (!fwd) return;
    const reads = new Map<string, Inst>();
    for (const inst of g.insts) if (inst.op === 'fwd') reads.set(inst.attrs.name, inst);
    /** The forward instruction of a read, where it is one cheap op of reads and constants. */
    const cheap = (name: string): Inst | undefined => {
      const v = fwd.byName(name);
      if (!v) return undefined;
      const d = fwd.def(v.id);
      if (d.op !== 'add' && d.op !== 'sub' && d.op !== 'mul' && d.op !== 'neg') return undefined;
      return d.args.every((a) => fwd.def(a).op === 'const' || (reads.has(fwd.value(a).name) && !REMAT_OPS.has(fwd.def(a).op))) ? d : undefined;
    };
    const dead = new Set<InstId>();
    for (const [name, read] of [...reads]) {
      const d = cheap(name);
      if (!d) continue;
      const args = d.args.map((a) => {
        const c = fwd.def(a);
        if (c.op !== 'const') return reads.get(fwd.value(a).name)!.result;
        return g.append('const', [], c.attrs, fwd.type(a), c.loc);
      });
      const result = g.append(d.op, args, d.attrs as never, fwd.type(d.result), d.loc);
      // the new instructions (and the reads they take) go where the read was
      const added = g.insts.splice(g.insts.length - 1 - args.filter((_, k) => fwd.def(d.args[k]!).op === 'const').length);
      const operandReads = args.map((a) => g.def(a)).filter((i) => i.op === 'fwd');
      for (const r of operandReads) {
        const at = g.insts.indexOf(r);
        if (at > g.insts.indexOf(read)) g.insts.splice(g.insts.indexOf(read), 0, ...g.insts.splice(at, 1));
      }
      g.insts.splice(g.insts.indexOf(read), 0, ...added);
      g.replaceUses(read.result, result);
      dead.add(read.id);
    }
    g.remove(dead);
  },
};
/** The ops `rematerialize` recomputes (an operand computed by one of them may be recomputed itself: not taken). */
const REMAT_OPS = new Set(['add', 'sub', 'mul', 'neg']);

/**
 * Σ over axes of a product moves the factors that are constant along those axes outside, when
 * the remaining sum is one the graph already takes: Σᵢ dy·gain·x̂ = gain·Σᵢ dy·x̂ = gain·dgain.
 * This is what leaves batchnorm's backward with only Σdy and Σdy·x̂, i.e. dbias and dgain.
 */
export const factorReductions: Pass = {
  name: 'factor-reductions',
  run(g) {
    const b = new Builder(g);
    const existing = new Map<string, ValueId>();
    for (const inst of g.insts) existing.set(instKey(g, inst, (a) => String(a.index)), inst.result);
    for (const id of g.insts.map((i) => i.id)) {
      const inst = g.inst(id);
      if (inst.op !== 'sum') continue;
      const x = inst.args[0]!;
      const xs = g.type(x).shape;
      const { axes, keepDims } = inst.attrs;
      const factors: ValueId[] = [];
      const flatten = (v: ValueId) => {
        const d = g.def(v);
        if (d.op === 'mul' && sameShape(g.type(v).shape, xs)) d.args.forEach(flatten);
        else factors.push(v);
      };
      flatten(x);
      const constant = (v: ValueId) => {
        const s = g.type(v).shape;
        const off = xs.length - s.length;
        return axes.every((a) => a < off || s[a - off] === 1);
      };
      const outer = factors.filter(constant);
      const inner = factors.filter((v) => !constant(v));
      if (outer.length === 0 || inner.length === 0 || !inner.every((v) => sameShape(g.type(v).shape, xs))) continue;
      // the product of the inner factors and its sum must already exist
      const find = (op: 'mul' | 'sum', args: ValueId[], attrs: object, shape: Shape) =>
        existing.get(instKey(g, { op, args, attrs, result: inst.result } as unknown as Inst, (a) => String(a.index)).replace(/\[[^\]]*\]/, `[${shape}]`));
      let prod: ValueId | undefined = inner[0]!;
      for (const v of inner.slice(1)) prod = prod && find('mul', [prod, v], {}, xs);
      const s = prod && find('sum', [prod], { axes, keepDims }, g.type(inst.result).shape);
      if (s === undefined || s === inst.result) continue;
      b.loc = inst.loc;
      const before = g.insts.length;
      const outShape = g.type(inst.result).shape;
      let k = outer[0]!;
      for (const v of outer.slice(1)) k = b.mul(k, v);
      if (!sameShape(g.type(k).shape, outShape) && sizeEq(numelSize(g.type(k).shape), numelSize(outShape))) k = b.reshape(k, outShape);
      substitute(g, inst, before, b.mul(s, k));
    }
  },
};

/** A transpose that swaps the last two axes (and nothing else): what matmul's flags express. */
function swapsLastTwo(inst: Inst): boolean {
  if (inst.op !== 'transpose') return false;
  const p = inst.attrs.perm;
  const r = p.length;
  return r >= 2 && p[r - 1] === r - 2 && p[r - 2] === r - 1 && p.slice(0, -2).every((x, i) => x === i);
}

/**
 * Transposes that a matmul's flags absorb, so that no transposed copy is written:
 *   matmul(xᵀ, y) → matmul(x, y, transA = ¬transA) (and likewise for y),
 *   (a·b)ᵀ → bᵀ·aᵀ, one matmul with its operands swapped and flags flipped, when the product
 *   is used only there and both operands have the same rank.
 * The first form is a tied output head's `h @ W.T` and attention's `q @ k.T`; the second is their
 * weight gradient, `dW = (hᵀ·dlogits)ᵀ`.
 */
export const foldTransposes: Pass = {
  name: 'fold-transposes',
  run(g, ctx) {
    const uses = g.uses();
    const outputs = new Set(g.outputs.map((o) => o.value));
    for (const id of g.insts.map((i) => i.id)) {
      const inst = g.inst(id);
      if (inst.op === 'matmul') {
        const [a, b] = inst.args.map((v) => g.def(v)) as [Inst, Inst];
        // [..., m, k] × [k, n] has a gradient rule for a transposed B, not for a transposed A
        const sameRank = g.type(a.result).shape.length === g.type(b.result).shape.length;
        const foldA = swapsLastTwo(a) && sameRank;
        const foldB = swapsLastTwo(b) && (sameRank || (!inst.attrs.transA && !foldA));
        if (!foldA && !foldB) continue;
        const at = { ...inst.attrs };
        const args = [...inst.args];
        if (foldA) [args[0], at.transA] = [a.args[0]!, !at.transA];
        if (foldB) [args[1], at.transB] = [b.args[0]!, !at.transB];
        g.replaceInst(inst, { ...inst, args, attrs: at });
      } else if (swapsLastTwo(inst)) {
        const mm = g.def(inst.args[0]!);
        if (mm.op !== 'matmul' || uses.get(mm.result)?.length !== 1 || outputs.has(mm.result) || ctx.keep.has(g.value(mm.result).name)) continue;
        const [x, y] = mm.args as [ValueId, ValueId];
        if (g.type(x).shape.length !== g.type(y).shape.length) continue;
        g.replaceInst(inst, { ...inst, op: 'matmul', args: [y, x], attrs: { transA: !mm.attrs.transB, transB: !mm.attrs.transA } } as Inst);
      }
    }
    dce.run(g, ctx);
  },
};

/**
 * [..., m, k] · [k, n] is one matmul over the rows of every batch: [b·m, k] · [k, n] between two
 * reshapes (views). One register-tiled kernel instead of b small ones, and its gradient
 * dB = A₂ᵀ·dC₂ a single matmul too. A symbolic batch's rows are one product dimension (`B*64`).
 */
export const flattenMatmuls: Pass = {
  name: 'flatten-matmuls',
  run(g) {
    const b = new Builder(g);
    for (const id of g.insts.map((i) => i.id)) {
      const inst = g.inst(id);
      if (inst.op !== 'matmul' || inst.attrs.transA) continue;
      const [x, w] = inst.args as [ValueId, ValueId];
      const xs = g.type(x).shape;
      if (xs.length <= 2 || g.type(w).shape.length !== 2) continue;
      // (a symbolic batch's rows are one product dimension: B*64)
      const rows = asDim(numelSize(xs.slice(0, -1)));
      b.loc = inst.loc;
      const before = g.insts.length;
      const x2 = b.reshape(x, [rows, xs.at(-1)!]);
      const product = b.matmul(x2, w, false, inst.attrs.transB);
      const r = b.reshape(product, g.type(inst.result).shape);
      // the rows read as the values they view: x1_rows, hpre1_rows
      for (const [v, of] of [[x2, x], [product, inst.result]] as const) if (!g.value(of).temp) g.rename(v, `${g.value(of).name}_rows`);
      substitute(g, inst, before, r);
    }
  },
};

/**
 * Replaces inst by r, computed by the instructions added (at the end) since `before`: they move
 * to inst's place, and r takes its uses and, if inst was named, its name.
 */
function substitute(g: Graph, inst: Inst, before: number, r: ValueId): void {
  const added = g.insts.splice(before);
  g.insts.splice(g.insts.findIndex((i) => i.id === inst.id), 0, ...added);
  adoptName(g, r, inst.result);
  g.replaceUses(inst.result, r);
  g.remove(new Set([inst.id]));
}

/** When `drop` is replaced by `keep`, a named `drop` lends its name to a temporary `keep`. */
function adoptName(g: Graph, keep: ValueId, drop: ValueId): void {
  const k = g.value(keep);
  const d = g.value(drop);
  if (k.temp && !d.temp) {
    const name = d.name;
    g.names.release(name);
    d.name = '';
    d.temp = true;
    g.rename(keep, name);
  }
}

// ---------------------------------------------------------------------------------------------
// Algebraic simplification and constant folding

function constValue(g: Graph, v: ValueId): number | undefined {
  const inst = g.def(v);
  // a uniform constant is kept as a broadcast scalar (see foldConst)
  if (inst.op === 'broadcast') return uniformBroadcast(g, inst);
  if (inst.op !== 'const') return undefined;
  const d = inst.attrs.data;
  return d.length > 0 && d.every((x) => Object.is(x, d[0])) ? d[0] : undefined;
}

const FOLD_LIMIT = 64;

/**
 * x·1, 1·x, x+0, 0+x, x−0, x/1, x^1 → x (when the shape does not change); −(−x) → x;
 * identity reshapes and transposes → x; instructions whose operands are all small constants are
 * evaluated at compile time.
 */
export const simplify: Pass = {
  name: 'simplify',
  run(g, ctx) {
    const dead = new Set<InstId>();
    for (const id of g.insts.map((i) => i.id)) {
      const inst = g.inst(id);
      const to = simplifyInst(g, inst);
      if (to !== undefined) {
        adoptName(g, to, inst.result);
        g.replaceUses(inst.result, to);
        if (!ctx.keep.has(g.value(inst.result).name)) dead.add(inst.id);
        continue;
      }
      // broadcast(scalar constant) is the folded form of a uniform constant, where it fuses
      const uniform = uniformBroadcast(g, inst);
      if (uniform !== undefined && fusesIntoUsers(g, inst)) {
        // broadcast of a rank-0 scalar, which the emitters write as a literal
        if (g.type(inst.args[0]!).shape.length > 0) replaceWithBroadcast(g, inst, uniform);
        continue;
      }
      const folded = foldConst(g, inst);
      if (folded) {
        const d = folded.data;
        // a constant whose elements are all equal stays a scalar, broadcast: emitted code reads
        // `0.0625`, not an array of 16 copies under a temporary's name
        if (d.length > 1 && g.type(inst.result).dtype === 'f32' && d.every((x) => Object.is(x, d[0])) && fusesIntoUsers(g, inst)) replaceWithBroadcast(g, inst, d[0]!);
        else replaceWithConst(g, inst, folded);
      }
      else if (!reductionToReshape(g, inst)) canonicalPow(g, inst);
    }
    g.remove(dead);
    dce.run(g, ctx);
  },
};

function simplifyInst(g: Graph, inst: Inst): ValueId | undefined {
  const t = g.type(inst.result);
  const [a, b] = inst.args;
  const same = (v: ValueId | undefined) => v !== undefined && sameShape(g.type(v).shape, t.shape) && g.type(v).dtype === t.dtype;
  const c = (v: ValueId | undefined) => (v === undefined ? undefined : constValue(g, v));
  switch (inst.op) {
    case 'mul':
      if (c(b) === 1 && same(a)) return a;
      if (c(a) === 1 && same(b)) return b;
      return undefined;
    case 'add':
      if (c(b) === 0 && same(a)) return a;
      if (c(a) === 0 && same(b)) return b;
      return undefined;
    case 'sub':
      return c(b) === 0 && same(a) ? a : undefined;
    case 'div':
    case 'pow':
      return c(b) === 1 && same(a) ? a : undefined;
    case 'neg': {
      const d = g.def(a!);
      return d.op === 'neg' ? d.args[0] : undefined;
    }
    case 'reshape':
    case 'broadcast':
      return same(a) ? a : undefined;
    case 'transpose':
      return inst.attrs.perm.every((p, i) => p === i) ? a : undefined;
    case 'sum':
    case 'max':
      // a reduction over no axes, or over axes of size 1 only, keeping its dims: x itself
      return same(a) ? a : undefined;
    default:
      return undefined;
  }
}

/** A reduction over size-1 axes only that drops them is a reshape: nothing is summed. */
function reductionToReshape(g: Graph, inst: Inst): boolean {
  if (inst.op !== 'sum' && inst.op !== 'max') return false;
  const xs = g.type(inst.args[0]!).shape;
  if (!inst.attrs.axes.every((ax) => xs[ax] === 1)) return false;
  g.replaceInst(inst, { ...inst, op: 'reshape', attrs: { shape: [...g.type(inst.result).shape] } } as Inst);
  return true;
}

/**
 * x^2 → square(x): one spelling, so that models written either way agree. x^0.5 stays a pow:
 * sqrt differs from it at −∞ (NaN, where pow gives +∞) and at −0 (−0, where pow gives +0), as in torch.
 */
function canonicalPow(g: Graph, inst: Inst): void {
  if (inst.op !== 'pow') return;
  const [x, e] = inst.args as [ValueId, ValueId];
  if (!sameShape(g.type(x).shape, g.type(inst.result).shape)) return;
  const k = constValue(g, e);
  if (k === 2) g.replaceInst(inst, { ...inst, op: 'square', args: [x], attrs: {} } as Inst);
}

/** The value of `broadcast(c)` for a one-element constant c, else undefined. */
function uniformBroadcast(g: Graph, inst: Inst): number | undefined {
  if (inst.op !== 'broadcast') return undefined;
  const d = g.def(inst.args[0]!);
  return d.op === 'const' && d.attrs.data.length === 1 ? d.attrs.data[0] : undefined;
}

function foldConst(g: Graph, inst: Inst): NDArray | undefined {
  const def = OPS[inst.op];
  if (def.category === 'source' || inst.args.length === 0 || !def.eval) return undefined;
  const t = g.type(inst.result);
  if (!t.shape.every(isStatic)) return undefined;
  const shape = staticShape(t.shape);
  // a reshape of a constant is a constant of any size: the data stays as it is
  if (numel(shape) > FOLD_LIMIT && inst.op !== 'reshape' && inst.op !== 'stop_gradient') return undefined;
  const args: NDArray[] = [];
  for (const a of inst.args) {
    const d = g.def(a);
    const at = g.type(a).shape;
    const u = uniformBroadcast(g, d);
    if (u !== undefined && at.every(isStatic)) args.push(nd(staticShape(at), new Array<number>(numel(staticShape(at))).fill(u)));
    else if (d.op !== 'const') return undefined;
    else args.push(nd(staticShape(at), d.attrs.data));
  }
  const ev = def.eval as (a: readonly NDArray[], at: unknown, out: ConcreteType) => NDArray;
  return ev(args, inst.attrs, { dtype: t.dtype, shape });
}

/**
 * Whether every user of inst is an elementwise op of inst's shape, so that fusion inlines a
 * broadcast there and the constant becomes a literal; elsewhere (a matmul operand, a
 * broadcasting user) it would be stored and filled, and the array is kept.
 */
function fusesIntoUsers(g: Graph, inst: Inst): boolean {
  const shape = g.type(inst.result).shape;
  const users = g.insts.filter((u) => u.args.includes(inst.result));
  return (
    users.length > 0 &&
    !g.outputs.some((o) => o.value === inst.result) &&
    users.every((u) => OPS[u.op].category === 'elementwise' && sameShape(g.type(u.result).shape, shape))
  );
}

/** inst becomes broadcast(x) of a new scalar constant placed just before it. */
function replaceWithBroadcast(g: Graph, inst: Inst, x: number): void {
  const b = new Builder(g);
  b.loc = inst.loc;
  const before = g.insts.length;
  const c = b.scalar(x);
  const added = g.insts.splice(before);
  g.insts.splice(g.insts.findIndex((i) => i.id === inst.id), 0, ...added);
  g.replaceInst(inst, { ...inst, op: 'broadcast', args: [c], attrs: { shape: [...g.type(inst.result).shape] } } as Inst);
}

function replaceWithConst(g: Graph, inst: Inst, value: NDArray): void {
  g.replaceInst(inst, { ...inst, op: 'const', args: [], attrs: { data: Array.from(value.data) } } as Inst);
}


