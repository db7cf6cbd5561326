// The derived graphs of `graphc build --hvp` and `--jvp`: the model's forward graph with the
// reverse pass run into it (gradInGraph), once or twice, as for g.grad. Both are forward-only
// graphs; emitted as functions of their own (codegen/derived.ts), they get the passes, fusion and
// memory plan of any forward graph.
//
// hvp, reverse-over-reverse: Hv = ∇θ ⟨∇θ L, v⟩. The first pass gives ∇θ L inside the graph, the
// second differentiates its dot product with v (the rules of the first pass's instructions).
// jvp, the transpose trick: the vector-Jacobian product u ↦ Jᵀu is linear in u, so J·t is the
// gradient with respect to u of ⟨Jᵀu, t⟩. Two reverse passes, no forward-mode rules; u drops out
// (the result does not depend on it), and with it every instruction of the first pass that only
// the second one read.

import { gradInGraph, lossValue } from './autodiff.js';
import { Builder } from './builder.js';
import { Graph } from './graph.js';
import type { ValueId } from './types.js';

/** Names of the derived functions' extra arguments and outputs, as keys of the sub-module. */
export const HVP_V = (p: string) => `v.${p}`;
export const HVP_OUT = (p: string) => `hv.${p}`;
export const JVP_T = (x: string) => `tangent.${x}`;
export const JVP_U = (o: string) => `cotangent.${o}`;
export const JVP_OUT = (o: string) => `tangentOutput.${o}`;

interface Src {
  readonly name: string;
  readonly value: ValueId;
}

function sources(g: Graph, op: 'param' | 'input'): Src[] {
  return g.insts.flatMap((i) => (i.op === op ? [{ name: i.attrs.name, value: i.result }] : []));
}

/** Σₖ sum(aₖ · bₖ): a scalar. */
function dot(b: Builder, pairs: readonly (readonly [ValueId, ValueId])[]): ValueId {
  let s: ValueId | undefined;
  for (const [x, y] of pairs) {
    const t = b.sum(b.mul(x, y), [...b.type(x).shape.keys()]);
    s = s === undefined ? t : b.add(s, t);
  }
  return s ?? b.scalar(0);
}

/**
 * g (a forward graph after the forward passes) with inputs `v.<param>` and outputs `loss` and
 * `hv.<param>`: the Hessian of the loss times v. Mutates g.
 */
export function hvpGraph(g: Graph): Graph {
  const loss = lossValue(g);
  const params = sources(g, 'param');
  const b = new Builder(g, g.def(loss).loc);
  const grads = gradInGraph(g, loss, params.map((p) => p.value), g.def(loss).loc);
  const vs = params.map((p) => b.input(HVP_V(p.name), g.type(p.value), { raw: `v_${p.name}` }));
  b.loc = g.def(loss).loc;
  const gv = dot(b, grads.map((d, k) => [d, vs[k]!] as const));
  const hv = gradInGraph(g, gv, params.map((p) => p.value), g.def(loss).loc);
  g.outputs = [{ name: 'loss', value: loss }, ...params.map((p, k) => ({ name: HVP_OUT(p.name), value: hv[k]! }))];
  return g;
}

/**
 * g with inputs `tangent.<x>` for each param and f32 input x and outputs: the model's, and
 * `tangentOutput.<o>` for each f32 output o (J·t). The cotangent inputs `cotangent.<o>` that the
 * construction uses are gone once the passes have run (see dropCotangents). Mutates g.
 */
export function jvpGraph(g: Graph): Graph {
  // the model's outputs: not the next running statistics (outputs named after their buffers), which
  // jvp reads and never updates
  const buffers = new Set(g.insts.flatMap((i) => (i.op === 'buffer' ? [i.attrs.name] : [])));
  g.outputs = g.outputs.filter((o) => !buffers.has(o.name));
  const outs = g.outputs.filter((o) => g.type(o.value).dtype === 'f32');
  const wrt = [...sources(g, 'param'), ...sources(g, 'input').filter((x) => g.type(x.value).dtype === 'f32')];
  const loc = g.def(lossValue(g)).loc;
  const b = new Builder(g, loc);
  const us = outs.map((o) => b.input(JVP_U(o.name), g.type(o.value), { raw: `u_${o.name}` }));
  const vjp = gradInGraph(g, dot(b, outs.map((o, k) => [o.value, us[k]!] as const)), wrt.map((x) => x.value), loc);
  const ts = wrt.map((x) => b.input(JVP_T(x.name), { dtype: 'f32', shape: g.type(x.value).shape }, { raw: `t_${x.name}` }));
  b.loc = loc;
  const jt = gradInGraph(g, dot(b, vjp.map((d, k) => [d, ts[k]!] as const)), us, loc);
  g.outputs = [...g.outputs, ...outs.map((o, k) => ({ name: JVP_OUT(o.name), value: jt[k]! }))];
  return g;
}

/** Removes the cotangent inputs of a jvp graph once nothing reads them (after DCE). */
export function dropCotangents(g: Graph): void {
  const uses = g.uses();
  const dead = new Set(g.insts.filter((i) => i.op === 'input' && i.attrs.name.startsWith('cotangent.')).map((i) => i.id));
  for (const inst of g.insts)
    if (dead.has(inst.id) && uses.has(inst.result)) throw new Error(`internal: J·t still reads the cotangent ${g.value(inst.result).name}`);
  g.remove(dead);
}
