// The reverse-mode pass: forward IR in, backward IR out.
//
// The backward graph is a graph of its own. It reads the forward values it needs by name
// (`%h: f32[32,64] = fwd {name="h"}`), seeds `dloss = 1`, then walks the forward instructions
// in reverse, applying each op's gradient rule from the op table. Contributions are summed back
// over broadcast axes, and fan-out contributions are added up. Its outputs are the gradients of
// every param, keyed by the param's DSL name.

import { Builder } from './builder.js';
import { CompileError } from './errors.js';
import { Graph, Names } from './graph.js';
import type { GradCtx } from './ops.js';
import { OPS } from './ops.js';
import { fmtLocSuffix } from './print.js';
import type { Inst, Shape, ValueId } from './types.js';
import { formatType, sameShape } from './types.js';

export const LOSS = 'loss';

/** Values through which a gradient flows from some param: forward reachability. */
function dependsOnParams(g: Graph): Set<ValueId> {
  const dep = new Set<ValueId>();
  for (const inst of g.insts) {
    const t = g.type(inst.result);
    if (inst.op === 'param') dep.add(inst.result);
    else if (t.dtype === 'f32' && OPS[inst.op].grad !== 'none' && inst.args.some((a) => dep.has(a))) dep.add(inst.result);
  }
  return dep;
}

export function lossValue(g: Graph): ValueId {
  const out = g.outputs.find((o) => o.name === LOSS);
  if (!out)
    throw new CompileError(
      `the model has no output named '${LOSS}' (its outputs: ${g.outputs.map((o) => o.name).join(', ') || 'none'})`,
      "return { loss, ... } or return the scalar loss tensor itself",
    );
  const t = g.type(out.value);
  if (t.dtype !== 'f32' || t.shape.length !== 0)
    throw new CompileError(`the loss must be an f32 scalar, but it is ${formatType(t)}`, 'reduce it to a scalar, e.g. with .mean() or .sum()', g.def(out.value).loc);
  return out.value;
}

/** The forward instructions whose result a gradient flows through, on the way to the loss. */
export function activeInsts(g: Graph): Set<ValueId> {
  const dep = dependsOnParams(g);
  const loss = lossValue(g);
  const needed = new Set<ValueId>();
  if (dep.has(loss)) needed.add(loss);
  for (let i = g.insts.length - 1; i >= 0; i--) {
    const inst = g.insts[i]!;
    if (!needed.has(inst.result)) continue;
    for (const a of inst.args) if (dep.has(a)) needed.add(a);
  }
  return needed;
}

/**
 * Builds the backward graph of g. `gradOf`, when given, receives the backward value holding the
 * gradient of each forward value that has one (for drawing gradients on the graph).
 */
export function reverseMode(g: Graph, gradOf?: Map<ValueId, ValueId>): Graph {
  g.freezeNames();
  const loss = lossValue(g);
  const active = activeInsts(g);
  const names = new Names(g.insts.map((i) => g.value(i.result).name));
  const gb = new Graph(g.name, 'backward', names);
  const b = new Builder(gb);

  // Forward values are read into the backward graph once, under their forward names; constants
  // are copied, so that the backward passes can fold them.
  const reads = new Map<ValueId, ValueId>();
  const read = (v: ValueId): ValueId => {
    let r = reads.get(v);
    if (r === undefined) {
      const fv = g.value(v);
      const def = g.def(v);
      r =
        def.op === 'const'
          ? gb.append('const', [], def.attrs, fv.type, def.loc)
          : gb.append('fwd', [], { name: fv.name }, fv.type, def.loc, { exact: fv.name });
      reads.set(v, r);
    }
    return r;
  };

  // Accumulated gradient of each forward value; one entry per contribution, summed on use.
  const grads = new Map<ValueId, ValueId[]>();
  const contribute = (v: ValueId, d: ValueId) => {
    const l = grads.get(v);
    if (l) l.push(d);
    else grads.set(v, [d]);
  };
  /** The total gradient of v, named d<v>. */
  const total = (v: ValueId): ValueId | undefined => {
    const parts = grads.get(v);
    if (!parts) return undefined;
    // fan-out: a value used several times gets the sum of its uses' gradients, each named after
    // the gradient and the use, numbered in program order (dh = dh_1 + dh_2, as in `dh += ...`)
    if (parts.length > 1)
      parts.forEach((p, k) => {
        if (gb.value(p).temp) gb.rename(p, `d${g.value(v).name}_${parts.length - k}`);
      });
    let d = parts[0]!;
    const saved = b.loc;
    const at = g.def(v).loc;
    b.loc = at && { ...at, grad: 'fanout' };
    for (const p of parts.slice(1)) d = b.add(d, p);
    b.loc = saved;
    grads.set(v, [d]);
    const gv = gb.value(d);
    if (gv.temp) gb.rename(d, 'd' + g.value(v).name);
    gradOf?.set(v, d);
    return d;
  };

  b.loc = g.def(loss).loc;
  contribute(loss, b.source('const', { data: [1] }, { dtype: 'f32', shape: [] }, { raw: 'd' + g.value(loss).name }));

  for (let i = g.insts.length - 1; i >= 0; i--) {
    const inst = g.insts[i]!;
    if (!active.has(inst.result) || inst.op === 'param') continue;
    const dy = total(inst.result);
    if (dy === undefined) continue;
    b.loc = inst.loc && { ...inst.loc, grad: inst.op };
    for (const [k, d] of applyRule(g, inst, b, dy, read, active)) contribute(inst.args[k]!, d);
  }

  for (const inst of g.insts) {
    if (inst.op !== 'param') continue;
    b.loc = inst.loc;
    let d = total(inst.result);
    if (d === undefined) {
      // The param does not reach the loss: its gradient is zero (the front end warns).
      d = b.broadcast(b.scalar(0), g.type(inst.result).shape);
      gb.rename(d, 'd' + g.value(inst.result).name);
    }
    gb.outputs.push({ name: inst.attrs.name, value: d });
  }
  gb.numberTemps();
  return gb;
}

/** Applies inst's gradient rule; returns (operand index, contribution) for active operands. */
function applyRule(
  g: Graph,
  inst: Inst,
  b: Builder,
  dy: ValueId,
  read: (v: ValueId) => ValueId,
  active: Set<ValueId>,
): [number, ValueId][] {
  const def = OPS[inst.op];
  if (def.grad === 'none') return [];
  if (def.grad === null)
    throw new CompileError(
      `the op '${inst.op}' has no gradient rule, but it lies on the path from a param to the loss`,
      'wrap its input in .stopGradient() if no gradient should flow through it, or compute it another way',
      inst.loc,
    );
  const ctx: GradCtx<unknown> = {
    b,
    attrs: inst.attrs,
    dy,
    x: (k) => read(inst.args[k]!),
    y: () => read(inst.result),
    xt: (k) => g.type(inst.args[k]!),
    yt: g.type(inst.result),
    arity: inst.args.length,
  };
  const thunks = (def.grad as (c: GradCtx<unknown>) => readonly ((() => ValueId) | null)[])(ctx);
  const out: [number, ValueId][] = [];
  thunks.forEach((thunk, k) => {
    const arg = inst.args[k]!;
    if (!thunk || !active.has(arg)) return;
    const d = unbroadcast(b, thunk(), g.type(arg).shape);
    const t = b.type(d);
    if (!sameShape(t.shape, g.type(arg).shape))
      throw new Error(`internal: gradient rule of ${inst.op} gave ${formatType(t)} for ${formatType(g.type(arg))}${fmtLocSuffix(inst.loc)}`);
    out.push([k, d]);
  });
  return out;
}

/** Sums d back over the axes along which an operand of shape `to` was broadcast. */
export function unbroadcast(b: Builder, d: ValueId, to: Shape): ValueId {
  const from = b.type(d).shape;
  if (sameShape(from, to)) return d;
  const lead = from.length - to.length;
  const axes: number[] = [];
  from.forEach((n, i) => {
    if (i < lead || (to[i - lead] === 1 && n !== 1)) axes.push(i);
  });
  if (axes.length === 0) return b.reshape(d, to);
  const s = b.sum(d, axes, lead === 0);
  return sameShape(b.type(s).shape, to) ? s : b.reshape(s, to);
}
