// Rare branches of the kernel form: a `where` flagged `rare` says that its `then` side is seldom
// taken (Payne–Hanek's reduction of a huge sin/cos argument: codegen/kernel/decompose.ts). Its
// value is a plain where's; a renderer may compute the nodes only that side uses in a block that
// runs when the condition holds somewhere (wasm SIMD: `v128.any_true` of the lane mask; WGSL: an
// `if`), the where's value being its `else` operand elsewhere. Renderers that do not care render
// it as a plain where.
//
// `rarePlan` orders the nodes one pass of a renderer computes into plain nodes and guarded
// blocks: for a condition c, the block holds the rare wheres on c and the nodes used only by their
// `then` sides (directly or through each other), and stands where the first of those wheres
// stood, the nodes it reads that come later in the order computed before it.

import type { Node } from './form.js';
import { argsOf } from './form.js';

/** What the plan needs of a node (a kernel's node, or a renderer's flat copy of it). */
type PlanNode = Pick<Node, 'op'> & { readonly rare?: boolean };

/** One step of a pass: a node computed, or a guarded block. */
export type RareItem =
  | { readonly kind: 'node'; readonly node: number }
  /**
   * The block: `wheres` (rare wheres on `cond`) take their `else` operands' values; where `cond`
   * holds somewhere, `nodes` are computed (in order) and each where its value.
   */
  | { readonly kind: 'rare'; readonly cond: number; readonly nodes: readonly number[]; readonly wheres: readonly number[] };

/** Whether node n is a where flagged rare. */
export function isRare(n: PlanNode): boolean {
  return n.op === 'where' && n.rare === true;
}

/**
 * For each node, the condition of the rare block it belongs to (only the `then` sides of rare
 * wheres on that condition use it), else -1; `live`: the nodes some store needs.
 */
export function rareOnly(nodes: readonly PlanNode[], live: readonly boolean[], stored: ReadonlySet<number>): number[] {
  const users: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => live[i] && new Set(argsOf(n as Node)).forEach((a) => users[a]!.push(i)));
  const only: number[] = nodes.map(() => -1);
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (!live[i] || stored.has(i) || nodes[i]!.op === 'reduce' || users[i]!.length === 0) continue;
    let c: number | undefined;
    for (const u of users[i]!) {
      const un = nodes[u]!;
      const a = argsOf(un as Node);
      // the then side of a top-level rare where (not also its condition or else), or a node of a block
      const side = isRare(un) && only[u] === -1 && a[1] === i && a[0] !== i && a[2] !== i ? a[0]! : only[u]!;
      if (side === -1 || (c !== undefined && c !== side)) {
        c = -1;
        break;
      }
      c = side;
    }
    only[i] = c ?? -1;
  }
  return only;
}

/**
 * The pass computing `order` (node indices, ascending) as plain nodes and rare blocks; `only`
 * from rareOnly. Where a block would need a rare where (its own
 * or another's) before it, the whole pass is plain.
 */
export function rarePlan(nodes: readonly PlanNode[], order: readonly number[], only: readonly number[]): RareItem[] {
  const inPass = new Set(order);
  const conds = new Map<number, number[]>();
  for (const i of order) {
    const n = nodes[i]!;
    if (isRare(n) && only[i] === -1) {
      const c = argsOf(n as Node)[0]!;
      conds.set(c, [...(conds.get(c) ?? []), i]);
    }
  }
  if (conds.size === 0) return order.map((node) => ({ kind: 'node', node }));
  const done = new Set<number>();
  const items: RareItem[] = [];
  const blockAt = new Map<number, number>(); // first where → cond
  const members = new Map<number, number[]>();
  for (const [c, wheres] of conds) {
    blockAt.set(wheres[0]!, c);
    members.set(c, order.filter((i) => only[i] === c));
  }
  const skip = new Set<number>();
  for (const [c, wheres] of conds) for (const i of [...wheres, ...members.get(c)!]) skip.add(i);
  const emit = (i: number) => {
    done.add(i);
    items.push({ kind: 'node', node: i });
  };
  for (const i of order) {
    const c = blockAt.get(i);
    if (c !== undefined) {
      const wheres = conds.get(c)!;
      const block = members.get(c)!;
      const inside = new Set([...block, ...wheres]);
      // the nodes of this pass the block reads that are not computed yet, and theirs
      const need = new Set<number>();
      let ok = true;
      const visit = (j: number) => {
        if (!inPass.has(j) || done.has(j) || need.has(j)) return;
        if (skip.has(j)) ok = false;
        need.add(j);
        argsOf(nodes[j] as Node).forEach(visit);
      };
      for (const j of inside) for (const a of argsOf(nodes[j] as Node)) if (!inside.has(a)) visit(a);
      // a rare where or another block's node needed first: the whole pass plain
      if (!ok) return order.map((node) => ({ kind: 'node', node }));
      [...need].sort((a, b) => a - b).forEach(emit);
      items.push({ kind: 'rare', cond: c, nodes: block, wheres });
      inside.forEach((j) => done.add(j));
    } else if (!done.has(i) && !skip.has(i)) emit(i);
  }
  return items;
}
