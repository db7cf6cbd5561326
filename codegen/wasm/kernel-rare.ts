// Rare blocks in the kernel-form wasm renderer (codegen/kernel/rare.ts): the nodes that only the
// `then` sides of rare wheres on a condition use are computed in a block that runs when some lane
// of the condition's mask is set (`v128.any_true`), the wheres taking their `else` operands
// otherwise. A decomposed sin or cos reduces its argument by Payne–Hanek only there.

import type { Body, Local } from './encode.js';
import type { FlatNode } from './kernel-plan.js';
import type { RareItem } from '../kernel/rare.js';
import { argsOf, type Node } from '../kernel/form.js';
import { rareOnly, rarePlan } from '../kernel/rare.js';

const ANY_TRUE = 0x53;

/** The rare blocks of a flat kernel: each node's block condition (-1: none), for `renderPass`. */
export function rareBlocks(nodes: readonly FlatNode[], stores: readonly { readonly node: number }[]): number[] {
  if (!nodes.some((n) => n.op === 'where' && n.rare)) return nodes.map(() => -1);
  const live = nodes.map(() => false);
  const visit = (i: number) => {
    if (live[i]) return;
    live[i] = true;
    argsOf(nodes[i] as Node).forEach(visit);
  };
  stores.forEach((s) => visit(s.node));
  return rareOnly(nodes, live, new Set(stores.map((s) => s.node)));
}

/**
 * Computes the nodes of `pass` (ascending indices) by `node(i)` into their locals `res`, a rare
 * where's `then` side only where some lane needs it; `only` from rareBlocks.
 */
export function renderPass(f: Body, nodes: readonly FlatNode[], only: readonly number[], pass: readonly number[], res: readonly Local[], node: (i: number) => void): void {
  const items: readonly RareItem[] = only.some((c) => c >= 0) ? rarePlan(nodes, pass, only) : pass.map((i) => ({ kind: 'node', node: i }));
  for (const it of items) {
    if (it.kind === 'node') {
      node(it.node);
      continue;
    }
    const ws = it.wheres.map((w) => argsOf(nodes[w] as Node) as readonly [number, number, number]);
    it.wheres.forEach((w, j) => f.get(res[ws[j]![2]]!).set(res[w]!));
    f.when(
      () => f.get(res[it.cond]!).simd(ANY_TRUE),
      () => {
        it.nodes.forEach(node);
        it.wheres.forEach((w, j) => f.get(res[ws[j]![1]]!).get(res[ws[j]![2]]!).get(res[it.cond]!).v128Bitselect().set(res[w]!));
      },
    );
  }
}
