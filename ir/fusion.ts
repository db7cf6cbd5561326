// Fusion: contiguous runs of instructions become groups, each emitted as one loop nest.
//
//   elementwise  a chain of elementwise ops over one shape (operands broadcast into it)
//   reduce       sums/maxes over the same axes of one shape, with the elementwise ops of that
//                shape that feed them (computed in the same loop) and an epilogue of
//                elementwise ops over the reduced shape (e.g. bnvar_inv = (Σ…/(n−1) + ε)^−½),
//                begun only once no sum that could still share the loop is ready
//   matmul       a matmul and the elementwise ops of its output that consume it (bias add,
//                activation, an activation's gradient)
//   conv         a convolution and the elementwise ops of its output that consume it (the bias
//                add of conv1d/conv2d, a following activation), computed per output plane
//                right after the plane is accumulated
//
// Sources (params, inputs, constants, forward reads) and the scalars computed from them alone are
// hoisted to the top first, so that they do not break runs (and so are the views of them that a
// convolution's epilogue reads: conv2d's bias reshaped to [1, O, 1, 1]); what is left ungrouped is emitted one
// instruction at a time.

import type { Graph } from './graph.js';
import { OPS } from './ops.js';
import type { Pass } from './passes.js';
import type { Group, Inst, Shape, ValueId } from './types.js';
import { sameShape } from './types.js';

export type GroupKind = 'elementwise' | 'reduce' | 'matmul' | 'conv';

/** Ops computed one element at a time from operands at (broadcast) positions of the result. */
export function isElementwise(inst: Inst): boolean {
  return (OPS[inst.op].category === 'elementwise' && inst.op !== 'stop_gradient') || inst.op === 'one_hot';
}

const isSource = (inst: Inst) => OPS[inst.op].category === 'source';

interface Open {
  kind: GroupKind;
  /** Iteration shape: the result shape (elementwise, matmul) or the reduced operand's shape. */
  shape: Shape;
  axes?: readonly number[];
  members: Inst[];
  /** Values over the full iteration shape, and over the reduced shape (reductions, epilogue). */
  full: Set<ValueId>;
  reduced: Set<ValueId>;
  /** A reduce group has begun its epilogue: no more reductions or full-shape members. */
  epilogue: boolean;
}

function open(g: Graph, inst: Inst): Open | undefined {
  const shape = g.type(inst.result).shape;
  const base = { members: [inst], full: new Set([inst.result]), reduced: new Set<ValueId>(), epilogue: false };
  if (isElementwise(inst)) return { kind: 'elementwise', shape, ...base };
  if (inst.op === 'matmul') return { kind: 'matmul', shape, ...base };
  if (inst.op === 'conv') return { kind: 'conv', shape, ...base };
  if (inst.op === 'sum' || inst.op === 'max')
    return { kind: 'reduce', shape: g.type(inst.args[0]!).shape, axes: inst.attrs.axes, members: [inst], full: new Set(), reduced: new Set([inst.result]), epilogue: false };
  return undefined;
}

/**
 * Whether inst can join the open group, and how: a member of its loop over the full shape
 * ('full', 'reduced' for a reduction) or of a reduce group's epilogue. `inOrder`: inst is the
 * next instruction in program order; an instruction picked ahead of its turn must consume a
 * value of the group (otherwise it would only be computed early and kept in memory for longer).
 * `apply`: add it to the group (otherwise only answer).
 */
function join(g: Graph, cur: Open, inst: Inst, inOrder: boolean, apply: boolean): Joins | undefined {
  const shape = g.type(inst.result).shape;
  const uses = (set: Set<ValueId>) => inst.args.some((a) => set.has(a));
  const related = (set: Set<ValueId>) => inOrder || uses(set);
  const add = (phase: Joins, axes?: readonly number[]): Joins => {
    if (!apply) return phase;
    if (phase === 'epilogue') cur.epilogue = true;
    if (axes) {
      cur.kind = 'reduce';
      cur.axes = axes;
    }
    cur.members.push(inst);
    cur[phase === 'full' ? 'full' : 'reduced'].add(inst.result);
    return phase;
  };
  const isReduction = inst.op === 'sum' || inst.op === 'max';
  switch (cur.kind) {
    case 'elementwise':
      if (isElementwise(inst) && sameShape(shape, cur.shape) && related(cur.full)) return add('full');
      if (isReduction && sameShape(g.type(inst.args[0]!).shape, cur.shape) && cur.full.has(inst.args[0]!)) return add('reduced', inst.attrs.axes);
      return undefined;
    case 'reduce': {
      const sameSpace = isReduction && sameShape(g.type(inst.args[0]!).shape, cur.shape) && sameAxes(inst.attrs.axes, cur.axes!);
      if (!cur.epilogue && sameSpace && !uses(cur.reduced) && related(cur.full)) return add('reduced');
      if (!cur.epilogue && isElementwise(inst) && sameShape(shape, cur.shape) && !uses(cur.reduced) && related(cur.full)) return add('full');
      const reducedShapes = [...cur.reduced].map((v) => g.type(v).shape);
      if (isElementwise(inst) && inst.op !== 'one_hot' && reducedShapes.some((r) => sameShape(r, shape)) && !uses(cur.full) && related(cur.reduced)) return add('epilogue');
      return undefined;
    }
    case 'matmul':
      // epilogues of 2-D matmuls only: the kernel indexes its epilogue operands by (row, column)
      if (cur.shape.length === 2 && isElementwise(inst) && inst.op !== 'one_hot' && sameShape(shape, cur.shape) && related(cur.full)) return add('full');
      return undefined;
    case 'conv':
      // an epilogue over the output [N, O, Ho, Wo], its operands read through broadcast strides
      if (isElementwise(inst) && inst.op !== 'one_hot' && sameShape(shape, cur.shape) && related(cur.full)) return add('full');
      return undefined;
  }
}

type Joins = 'full' | 'reduced' | 'epilogue';

function sameAxes(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The prelude: sources, and the scalars computed from constants and dimension sizes alone (the
 * 1/B of a mean over a symbolic batch, Bessel's n/(n − 1)). Computed first, they are ready for
 * any group's epilogue.
 */
function prelude(g: Graph): Set<ValueId> {
  const pre = new Set<ValueId>();
  const sizes = new Set<ValueId>();
  const users = g.uses();
  for (const inst of g.insts) {
    if (inst.op === 'const' || inst.op === 'dim') sizes.add(inst.result);
    else if (isElementwise(inst) && g.type(inst.result).shape.length === 0 && inst.args.every((a) => sizes.has(a))) sizes.add(inst.result);
    if (isSource(inst) || sizes.has(inst.result) || epilogueView(g, inst, pre, users)) pre.add(inst.result);
  }
  return pre;
}

/**
 * A reshape (a view, no code) of a prelude value that an elementwise op of a convolution's output
 * reads: conv2d's bias as [1, O, 1, 1], which the builder makes after the convolution. Hoisted,
 * it does not stand between the convolution and its epilogue.
 */
function epilogueView(g: Graph, inst: Inst, pre: Set<ValueId>, users: ReturnType<Graph['uses']>): boolean {
  if (inst.op !== 'reshape' || !pre.has(inst.args[0]!)) return false;
  return (users.get(inst.result) ?? []).some((u) => isElementwise(u) && u.args.some((a) => g.def(a).op === 'conv'));
}

/**
 * List scheduling for fusion: among the instructions whose operands are ready, take the first
 * (in program order) that joins the open group; when none does, close it and start a new one
 * with the first ready instruction. Program order is kept wherever fusion does not gain.
 */
export const fuse: Pass = {
  name: 'fuse',
  run(g) {
    const pre = prelude(g);
    const sources = g.insts.filter((i) => pre.has(i.result));
    const rest = g.insts.filter((i) => !pre.has(i.result));
    const users = g.uses();
    const pending = new Map<ValueId, number>();
    for (const inst of rest) pending.set(inst.result, inst.args.filter((a) => !pre.has(a)).length);
    const ready: Inst[] = rest.filter((i) => pending.get(i.result) === 0);
    const order = new Map(rest.map((inst, k) => [inst.id, k] as const));
    const scheduled: Inst[] = [];
    const groups: Group[] = [];
    let cur: Open | undefined;
    const close = () => {
      if (cur && cur.members.length > 1) groups.push({ kind: cur.kind, insts: cur.members.map((m) => m.id) });
      cur = undefined;
    };
    const take = (k: number) => {
      const inst = ready.splice(k, 1)[0]!;
      scheduled.push(inst);
      for (const u of users.get(inst.result) ?? []) {
        const left = pending.get(u.result)! - 1;
        pending.set(u.result, left);
        if (left === 0) {
          // keep the ready list in program order
          const at = ready.findIndex((r) => order.get(r.id)! > order.get(u.id)!);
          ready.splice(at < 0 ? ready.length : at, 0, u);
        }
      }
      return inst;
    };
    const isReduction = (inst: Inst) => inst.op === 'sum' || inst.op === 'max';
    // a reduction, or the operand of one over the open group's axes
    const feedsSum = (inst: Inst) =>
      isReduction(inst) || (users.get(inst.result) ?? []).some((u) => isReduction(u) && u.args[0] === inst.result && sameAxes(u.attrs.axes, cur!.axes!));
    const joins = (inst: Inst, at: number) => join(g, cur!, inst, at === 0, false);
    while (ready.length > 0) {
      let k = cur ? ready.findIndex((inst, at) => joins(inst, at) !== undefined) : -1;
      // A pick that would begin a reduce group's epilogue, which closes the group to more sums,
      // gives way to a sum that can still join, or its operand: a small value due next in
      // program order (bnvar_inv·(1/N) of a batch norm over rows, made from forward values
      // alone) would otherwise send Σ dbnraw·bnraw into a second pass over the same tensors.
      if (k >= 0 && joins(ready[k]!, k) === 'epilogue') {
        const sum = ready.findIndex((inst, at) => feedsSum(inst) && ['full', 'reduced'].includes(joins(inst, at) ?? ''));
        if (sum >= 0) k = sum;
      }
      if (k >= 0) {
        join(g, cur!, ready[k]!, k === 0, true);
        take(k);
        continue;
      }
      close();
      cur = open(g, take(0));
    }
    close();
    g.insts = [...sources, ...scheduled];
    g.groups = groups;
  },
};
