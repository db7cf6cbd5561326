// Passes: a flat, named list. The runner verifies the graph before and after each pass and
// numbers the temporaries in program order after it.

import type { Graph } from './graph.js';
import type { NDArray } from './ndarray.js';
import { nd } from './ndarray.js';
import { OPS } from './ops.js';
import { fmtAttrs } from './print.js';
import type { Inst, InstId, TensorType, ValueId } from './types.js';
import { numel, sameShape } from './types.js';
import { verify } from './verify.js';

export interface PassContext {
  /** Forward values that must survive (read by the backward graph). */
  readonly keep: ReadonlySet<string>;
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
  return inst.op === 'input' || inst.op === 'param' || ctx.keep.has(g.value(inst.result).name);
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

/** Common-subexpression elimination: one instruction per (op, operands, attributes). */
export const cse: Pass = {
  name: 'cse',
  run(g) {
    const seen = new Map<string, ValueId>();
    const dead = new Set<InstId>();
    for (const inst of g.insts) {
      if (inst.op === 'input' || inst.op === 'param' || inst.op === 'fwd') continue;
      const t = g.type(inst.result);
      const key = `${inst.op} ${t.dtype}[${t.shape}] ${inst.args.map((a) => a.index).join(',')}${fmtAttrs(inst.attrs)}`;
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
      const folded = foldConst(g, inst);
      if (folded) replaceWithConst(g, inst, folded);
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
    default:
      return undefined;
  }
}

function foldConst(g: Graph, inst: Inst): NDArray | undefined {
  const def = OPS[inst.op];
  if (def.category === 'source' || inst.args.length === 0 || !def.eval) return undefined;
  if (numel(g.type(inst.result).shape) > FOLD_LIMIT) return undefined;
  const args: NDArray[] = [];
  for (const a of inst.args) {
    const d = g.def(a);
    if (d.op !== 'const') return undefined;
    args.push(nd(g.type(a).shape, d.attrs.data));
  }
  const ev = def.eval as (a: readonly NDArray[], at: unknown, out: TensorType) => NDArray;
  return ev(args, inst.attrs, g.type(inst.result));
}

function replaceWithConst(g: Graph, inst: Inst, value: NDArray): void {
  g.replaceInst(inst, { ...inst, op: 'const', args: [], attrs: { data: Array.from(value.data) } } as Inst);
}

/** The standard pipelines. */
export const FORWARD_PASSES: readonly Pass[] = [simplify, cse, dce];
export const BACKWARD_PASSES: readonly Pass[] = [simplify, cse, dce];
