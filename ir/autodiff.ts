// The reverse-mode pass. One implementation (`backprop`) serves two targets: a backward graph of
// its own (`reverseMode`, what valueAndGrad runs) and the forward graph itself (`gradInGraph`:
// g.grad inside a model, and the derived graphs of hvp and jvp), whose gradient instructions a
// later run differentiates again: a second derivative is the reverse pass run again.
//
// The backward graph is a graph of its own. It reads the forward values it needs by name
// (`%h: f32[32,64] = fwd {name="h"}`), seeds `dloss = 1`, then walks the forward instructions
// in reverse, applying each op's gradient rule from the op table. Contributions are summed back
// over broadcast axes, and fan-out contributions are added up. Its outputs are the gradients of
// every param, keyed by the param's DSL name, then of every input declared with { grad: true }.

import { Builder } from './builder.js';
import { CompileError } from './errors.js';
import { Graph, Names } from './graph.js';
import type { GradCtx, GradThunk } from './ops.js';
import { OPS } from './ops.js';
import { fmtLocSuffix } from './print.js';
import { scanVjp } from './scan-grad.js';
import type { Inst, InstOf, Loc, Shape, ValueId } from './types.js';
import { formatLoc, formatType, sameShape } from './types.js';

export const LOSS = 'loss';

/**
 * Values through which a gradient flows from one of `from`: forward reachability over f32
 * values and ops that pass a gradient (a custom gradient passes it from its xs only).
 */
function reachableFrom(g: Graph, from: ReadonlySet<ValueId>): Set<ValueId> {
  const dep = new Set<ValueId>();
  for (const inst of g.insts) {
    if (from.has(inst.result)) dep.add(inst.result);
    else if (g.type(inst.result).dtype === 'f32' && OPS[inst.op].grad !== 'none' && gradArgs(inst).some((a) => dep.has(a))) dep.add(inst.result);
  }
  return dep;
}

/** The sources the backward graph gives gradients of: params, and inputs declared with { grad: true }. */
export function wrt(inst: Inst): boolean {
  return (inst.op === 'param' && inst.attrs.frozen !== true) || (inst.op === 'input' && inst.attrs.grad === true);
}

/** The operands a gradient can flow to: a custom gradient's xs, every operand of other ops. */
function gradArgs(inst: Inst): readonly ValueId[] {
  return inst.op === 'custom_grad' ? inst.args.slice(1, 1 + inst.attrs.inputs) : inst.args;
}

/**
 * Whether g is a forward-only model: one that returns outputs but none named `loss` (inference,
 * sampling). Its module has forward and no gradient; its backward graph has no instructions.
 */
export function isForwardOnly(g: Graph): boolean {
  return g.outputs.length > 0 && !g.outputs.some((o) => o.name === LOSS);
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

/** The instructions whose result a gradient flows through on the way from `wrt` to y (or to any of several ys). */
function between(g: Graph, wrt: readonly ValueId[], y: ValueId | readonly ValueId[]): Set<ValueId> {
  const dep = reachableFrom(g, new Set(wrt));
  const needed = new Set<ValueId>();
  for (const v of Array.isArray(y) ? y : [y]) if (dep.has(v)) needed.add(v);
  for (let i = g.insts.length - 1; i >= 0; i--) {
    const inst = g.insts[i]!;
    if (!needed.has(inst.result)) continue;
    for (const a of gradArgs(inst)) if (dep.has(a)) needed.add(a);
  }
  return needed;
}

/** What the backward graph differentiates with respect to: every trainable param, then inputs with { grad: true }. */
function paramValues(g: Graph): ValueId[] {
  return [...g.insts.filter((i) => i.op === 'param' && wrt(i)), ...g.insts.filter((i) => i.op === 'input' && wrt(i))].map((i) => i.result);
}

/** The forward instructions whose result a gradient flows through, on the way to the loss. */
export function activeInsts(g: Graph): Set<ValueId> {
  return between(g, paramValues(g), lossValue(g));
}

/**
 * Where one run of the reverse pass writes: a builder on the target graph, how a forward value
 * is read there (itself, when the target is the forward graph; a `fwd` read in a backward graph),
 * and the `g.grad` call that asked for it (when it runs inside the model).
 */
export interface Sink {
  readonly b: Builder;
  read(v: ValueId): ValueId;
  readonly via?: Loc;
  /** Called with each forward value and the target value holding its total gradient. */
  readonly gradOf?: Map<ValueId, ValueId>;
}

/**
 * The reverse pass, the one implementation behind both uses: seeds dy = `seed` at y, walks the
 * instructions of g before y in reverse applying each op's gradient rule (into `sink`), sums
 * contributions back over broadcast axes and over fan-out, and returns the gradient of each of
 * `wrt` (undefined where none reaches it). The target may be g itself (`g.grad`, hvp, jvp),
 * so the gradient instructions it emits can be differentiated again by a later run.
 */
export function backprop(g: Graph, y: ValueId, wrt: readonly ValueId[], seed: ValueId, sink: Sink): (ValueId | undefined)[] {
  return backpropMany(g, [[y, seed]], wrt, sink);
}

/** backprop from several values at once, each with its seed (a scan body's results: ir/scan-grad.ts). */
export function backpropMany(g: Graph, seeds: readonly (readonly [ValueId, ValueId])[], wrt: readonly ValueId[], sink: Sink): (ValueId | undefined)[] {
  const active = between(
    g,
    wrt,
    seeds.map(([y]) => y),
  );
  const { b } = sink;
  const tg = b.graph;
  // instructions up to the last y, as they are now: the rules append to g when it is the target
  const last = Math.max(...seeds.map(([y]) => g.insts.findIndex((i) => i.result === y)));
  const order = g.insts.slice(0, last + 1);
  // values this run creates (a rule may pass a forward value on: that one keeps its name)
  const firstNew = tg.values.length;

  // Accumulated gradient of each forward value; one entry per contribution, summed on use.
  const grads = new Map<ValueId, ValueId[]>();
  const contribute = (v: ValueId, d: ValueId) => {
    const l = grads.get(v);
    if (l) l.push(d);
    else grads.set(v, [d]);
  };
  const stamp = (loc: Loc | undefined, grad: string): Loc | undefined => loc && { ...loc, grad, ...(sink.via ? { via: sink.via } : {}) };
  /** The total gradient of v, named d<v>. */
  const total = (v: ValueId): ValueId | undefined => {
    const parts = grads.get(v);
    if (!parts) return undefined;
    // fan-out: a value used several times gets the sum of its uses' gradients, each named after
    // the gradient and the use, numbered in program order (dh = dh_1 + dh_2, as in `dh += ...`)
    if (parts.length > 1)
      parts.forEach((p, k) => {
        if (tg.value(p).temp && p.index >= firstNew) tg.rename(p, `d${g.value(v).name || 't'}_${parts.length - k}`);
      });
    let d = parts[0]!;
    const saved = b.loc;
    b.loc = stamp(g.def(v).loc, 'fanout');
    const partial: ValueId[] = [];
    for (const p of parts.slice(1)) partial.push((d = b.add(d, p)));
    b.loc = saved;
    // with three uses or more, the running sums are the gradient so far, as the lecture's
    // `dh += ...` accumulates it: dh_acc = dh_3 + dh_2, dh = dh_acc + dh_1
    for (const s of partial.slice(0, -1)) if (tg.value(s).temp && s.index >= firstNew) tg.rename(s, `d${g.value(v).name || 't'}_acc`);
    grads.set(v, [d]);
    const gv = tg.value(d);
    if (gv.temp && d.index >= firstNew) tg.rename(d, 'd' + (g.value(v).name || 't'));
    sink.gradOf?.set(v, d);
    return d;
  };

  for (const [y, seed] of seeds) contribute(y, seed);
  // the gradients of a scan's results, by its token and result index, until the scan is reached
  const scanCots = new Map<ValueId, Map<number, ValueId>>();
  for (let i = order.length - 1; i >= 0; i--) {
    const inst = order[i]!;
    if (!active.has(inst.result)) continue;
    if (inst.op === 'scan_out' || inst.op === 'scan') {
      if (inst.op === 'scan_out') {
        const d = total(inst.result);
        if (d === undefined) continue;
        let m = scanCots.get(inst.args[0]!);
        if (!m) scanCots.set(inst.args[0]!, (m = new Map()));
        m.set(inst.attrs.index, d);
      } else if (scanCots.has(inst.result)) {
        b.loc = stamp(inst.loc, inst.op);
        for (const [k, d] of scanVjp(g, inst, sink, scanCots.get(inst.result)!, active)) contribute(inst.args[k]!, d);
      }
      continue;
    }
    const dy = total(inst.result);
    if (dy === undefined) continue;
    b.loc = stamp(inst.loc, inst.op);
    for (const [k, d] of applyRule(g, inst, sink, dy, active)) contribute(inst.args[k]!, d);
  }
  return wrt.map((x) => {
    b.loc = g.def(x).loc;
    return total(x);
  });
}

/**
 * Builds the backward graph of g. `gradOf`, when given, receives the backward value holding the
 * gradient of each forward value that has one (for drawing gradients on the graph).
 */
export function reverseMode(g: Graph, gradOf?: Map<ValueId, ValueId>): Graph {
  g.freezeNames();
  const names = new Names(g.insts.map((i) => g.value(i.result).name));
  const gb = new Graph(g.name, 'backward', names);
  // a forward-only model (no loss): nothing to differentiate, a backward graph with no outputs
  if (isForwardOnly(g)) return gb;
  const loss = lossValue(g);
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

  b.loc = g.def(loss).loc;
  const seed = b.source('const', { data: [1] }, { dtype: 'f32', shape: [] }, { raw: 'd' + g.value(loss).name });
  const params = paramValues(g);
  const ds = backprop(g, loss, params, seed, { b, read, gradOf });
  params.forEach((p, k) => {
    b.loc = g.def(p).loc;
    let d = ds[k];
    if (d === undefined) {
      // The param does not reach the loss: its gradient is zero (the front end warns).
      d = b.broadcast(b.scalar(0), g.type(p).shape);
      gb.rename(d, 'd' + g.value(p).name);
    }
    gb.outputs.push({ name: (g.def(p) as InstOf<'param' | 'input'>).attrs.name, value: d });
  });
  gb.numberTemps();
  return gb;
}

/**
 * `g.grad(y, xs)` inside a model: the reverse pass from y to xs, emitted into g itself at `via`
 * (the g.grad call), so that the rest of the model, and a later reverse pass, use its result.
 * An x that y does not depend on gets zeros.
 */
export function gradInGraph(g: Graph, y: ValueId, xs: readonly ValueId[], via: Loc | undefined): ValueId[] {
  const b = new Builder(g, via);
  const seed = b.scalar(1);
  const ds = backprop(g, y, xs, seed, { b, read: (v) => v, via });
  return ds.map((d, k) => {
    if (d !== undefined) return d;
    b.loc = via;
    return b.broadcast(b.scalar(0), g.type(xs[k]!).shape);
  });
}

/** Applies inst's gradient rule; returns (operand index, contribution) for active operands. */
function applyRule(g: Graph, inst: Inst, sink: Sink, dy: ValueId, active: Set<ValueId>): [number, ValueId][] {
  const { b, read } = sink;
  const def = OPS[inst.op];
  if (def.grad === 'none') return [];
  if (def.grad === null) throw missingRule(inst, sink.via);
  const ctx: GradCtx<unknown> = {
    b,
    attrs: inst.attrs,
    dy,
    x: (k) => read(inst.args[k]!),
    y: () => read(inst.result),
    xt: (k) => g.type(inst.args[k]!),
    yt: g.type(inst.result),
    arity: inst.args.length,
    userRule: () => replayUserRule(g, inst as InstOf<'custom_grad'>, sink, dy),
    forward: { args: inst.args, def: (v) => g.def(v), read },
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

/**
 * The error for an op with no gradient rule on the path of a reverse pass: the op is the model's
 * own, or one that a g.grad call emitted (then a second derivative through it is missing).
 */
function missingRule(inst: Inst, via: Loc | undefined): CompileError {
  const madeBy = inst.loc?.via;
  if (madeBy)
    return new CompileError(
      `the op '${inst.op}' has no gradient rule, but the gradient that g.grad at ${formatLoc(madeBy)} computes (through ${inst.loc!.grad}'s rule) uses it: its second derivative is missing`,
      `differentiate that g.grad result no further (wrap it in .stopGradient()), or give '${inst.op}' a gradient rule in ir/ops.ts`,
      madeBy,
    );
  return new CompileError(
    via
      ? `the op '${inst.op}' has no gradient rule, but it lies on the path that g.grad at ${formatLoc(via)} differentiates`
      : `the op '${inst.op}' has no gradient rule, but it lies on the path from a param to the loss`,
    'wrap its input in .stopGradient() if no gradient should flow through it, or compute it another way',
    inst.loc,
  );
}

/**
 * A custom gradient's rule: the user's backward, traced once with the model (ir/graph.ts's
 * CustomRule), emitted again here with xs, y and dy bound to this reverse pass's values. Its
 * instructions keep the user's lines and are marked as the user's rule (`grad(custom)`).
 */
function replayUserRule(g: Graph, inst: InstOf<'custom_grad'>, sink: Sink, dy: ValueId): readonly GradThunk[] {
  const rule = g.rules[inst.attrs.rule];
  if (!rule) throw new Error(`internal: no custom gradient rule #${inst.attrs.rule}`);
  const { b } = sink;
  const tg = b.graph;
  const map = new Map<ValueId, ValueId>([[rule.seed, dy]]);
  rule.args.forEach((a, k) => {
    if (!map.has(a)) map.set(a, sink.read(inst.args[k]!));
  });
  // y, as the rule saw it, is the forward's result: operand 0
  if (!map.has(rule.y)) map.set(rule.y, sink.read(inst.args[0]!));
  const saved = b.loc;
  for (const r of rule.insts) {
    const at = r.loc && { ...r.loc, grad: 'custom', ...(sink.via ? { via: sink.via } : {}) };
    b.loc = at;
    const rv = rule.values.get(r.result)!;
    const name = rv.temp || !rv.name ? undefined : { raw: rv.name };
    const v =
      OPS[r.op].category === 'source'
        ? tg.append(r.op, [], r.attrs, rv.type, at, name)
        : (b.emit as (op: string, args: readonly ValueId[], attrs: unknown, name?: { raw: string }) => ValueId)(
            r.op,
            r.args.map((a) => map.get(a) ?? missing(a)),
            r.attrs,
            name,
          );
    map.set(r.result, v);
  }
  b.loc = saved;
  const thunks: GradThunk[] = [null];
  for (let k = 0; k < inst.attrs.inputs; k++) {
    const d = rule.dxs[k];
    thunks.push(d === undefined ? null : () => map.get(d) ?? missing(d));
  }
  while (thunks.length < inst.args.length) thunks.push(null);
  return thunks;
}

function missing(v: ValueId): never {
  throw new Error(`internal: a custom gradient rule reads value #${v.index}, which it does not capture`);
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

/**
 * Once every reverse pass that needs their rules has run, each custom_grad becomes the identity
 * of the forward's result (a stop_gradient, which the emitters treat as a view of its operand),
 * keeping its name: a backward graph may read it by that name.
 */
export function dropCustomGrads(g: Graph): void {
  for (const inst of [...g.insts])
    if (inst.op === 'custom_grad') g.replaceInst(inst, { id: inst.id, op: 'stop_gradient', args: [inst.args[0]!], attrs: {}, result: inst.result, loc: inst.loc });
}
