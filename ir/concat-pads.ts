// A sum of zero-padded pieces that tile an axis is their concatenation: the gradient of a value
// narrowed into parts (attention's q, k and v cut from one c_attn product, `narrow` → `pad` in
// the reverse pass) arrives as pad(dq) + pad(dk) + pad(dv), each pad writing the whole padded
// array, mostly zeros, and the sum reading them all again; concat(dq, dk, dv) writes it once.
// x + 0 is x for every x but −0 (−0 + 0 is +0), so the values are those of the sum but for the
// sign of a zero.

import { Builder } from './builder.js';
import type { Graph } from './graph.js';
import type { Pass } from './passes.js';
import type { Inst, InstId, ValueId } from './types.js';
import { sameShape } from './types.js';

/** A pad that adds zeros along one axis only: its operand and where it starts along that axis. */
interface Piece {
  readonly x: ValueId;
  readonly axis: number;
  readonly start: number;
  readonly size: number;
}

function pieceOf(g: Graph, inst: Inst): Piece | undefined {
  if (inst.op !== 'pad') return undefined;
  const xs = g.type(inst.args[0]!).shape;
  const out = inst.attrs.shape;
  const axes = out.map((_d, k) => k).filter((k) => inst.attrs.starts[k] !== 0 || xs[k] !== out[k]);
  const axis = axes[0];
  if (axes.length !== 1 || typeof xs[axis!] !== 'number' || typeof out[axis!] !== 'number') return undefined;
  return { x: inst.args[0]!, axis: axis!, start: inst.attrs.starts[axis!]!, size: xs[axis!] as number };
}

/**
 * The pieces of the sum rooted at `root` (adds of its shape, each inner one used only by the next
 * and not kept), or undefined where a term is not such a pad.
 */
function terms(g: Graph, root: Inst, uses: Map<ValueId, Inst[]>, kept: (v: ValueId) => boolean): Inst[] | undefined {
  const shape = g.type(root.result).shape;
  const out: Inst[] = [];
  const walk = (v: ValueId, inner: boolean): boolean => {
    const d = g.def(v);
    if (d.op === 'add' && (!inner || ((uses.get(v)?.length ?? 0) === 1 && !kept(v))) && d.args.every((a) => sameShape(g.type(a).shape, shape))) return d.args.every((a) => walk(a, true));
    if (d.op !== 'pad') return false;
    out.push(d);
    return true;
  };
  return walk(root.result, false) ? out : undefined;
}

export const concatPads: Pass = {
  name: 'concat-pads',
  run(g, ctx) {
    const b = new Builder(g);
    const outputs = new Set(g.outputs.map((o) => o.value));
    const kept = (v: ValueId) => outputs.has(v) || ctx.keep.has(g.value(v).name);
    const uses = g.uses();
    const removed = new Set<InstId>();
    // roots last first: the adds inside a tree replaced by its concatenation are not seen again
    for (const root of [...g.insts].reverse()) {
      if (root.op !== 'add' || removed.has(root.id) || !root.args.every((a) => ['add', 'pad'].includes(g.def(a).op))) continue;
      const pads = terms(g, root, uses, kept);
      if (!pads || pads.length < 2) continue;
      const pieces = pads.map((p) => pieceOf(g, p));
      if (pieces.some((p) => p === undefined) || new Set(pieces.map((p) => p!.axis)).size !== 1) continue;
      const axis = pieces[0]!.axis;
      // in order along the axis, each starting where the last ended, the last ending at the end
      const sorted = [...pieces].sort((p, q) => p!.start - q!.start) as Piece[];
      let at = 0;
      for (const p of sorted) at = p.start === at ? at + p.size : NaN;
      if (at !== g.type(root.result).shape[axis]) continue;
      b.loc = root.loc;
      const before = g.insts.length;
      const c = b.concat(
        sorted.map((p) => p.x),
        axis,
      );
      const added = g.insts.splice(before);
      g.insts.splice(g.insts.findIndex((i) => i.id === root.id), 0, ...added);
      // the concatenation takes the sum's uses and its name (the tree's adds and pads are dead: dce)
      const d = g.value(root.result);
      if (!d.temp) {
        const name = d.name;
        g.names.release(name);
        d.name = '';
        d.temp = true;
        g.rename(c, name);
      }
      g.replaceUses(root.result, c);
      removed.add(root.id);
      const inner = (v: ValueId) => {
        const i = g.def(v);
        if (i.op === 'add') {
          removed.add(i.id);
          i.args.forEach(inner);
        }
      };
      root.args.forEach(inner);
      g.remove(new Set([root.id]));
    }
  },
};
