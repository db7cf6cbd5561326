// Where each value of a forward/backward graph pair lives in the emitted code, shared by the
// emitters. Every value is referred to by its IR name:
//   - params and inputs are locals taken from the `params`/`inputs` objects;
//   - scalar constants are inlined as literals, other constants are module-level arrays;
//   - reshape and stopGradient are aliases of their operand (no copy);
//   - a backward graph's `fwd` reads are the forward values themselves (same name);
//   - everything else gets a module-level buffer, allocated once.

import type { Graph } from '../ir/graph.js';
import type { DType, Inst, Shape, ValueId } from '../ir/types.js';
import { numel } from '../ir/types.js';

export type Storage =
  | { readonly kind: 'param' | 'input'; readonly key: string }
  | { readonly kind: 'literal'; readonly value: number }
  | { readonly kind: 'const'; readonly data: readonly number[] }
  | { readonly kind: 'alias'; readonly of: string }
  | { readonly kind: 'buffer' };

export interface Slot {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly storage: Storage;
  readonly inst: Inst;
  readonly graph: Graph;
}

function storageOf(g: Graph, inst: Inst): Storage {
  switch (inst.op) {
    case 'param':
    case 'input':
      return { kind: inst.op, key: inst.attrs.name };
    case 'const':
      return numel(g.type(inst.result).shape) === 1 && g.type(inst.result).shape.length === 0
        ? { kind: 'literal', value: inst.attrs.data[0]! }
        : { kind: 'const', data: inst.attrs.data };
    case 'reshape':
    case 'stop_gradient':
      return { kind: 'alias', of: g.value(inst.args[0]!).name };
    default:
      return { kind: 'buffer' };
  }
}

/** Slots of every value of the forward graph and the backward graph, by name. */
export class Slots {
  readonly byName = new Map<string, Slot>();

  constructor(graphs: readonly Graph[]) {
    for (const g of graphs)
      for (const inst of g.insts) {
        if (inst.op === 'fwd') continue; // the forward value itself
        const v = g.value(inst.result);
        this.byName.set(v.name, { name: v.name, dtype: v.type.dtype, shape: v.type.shape, storage: storageOf(g, inst), inst, graph: g });
      }
  }

  get(name: string): Slot {
    const s = this.byName.get(name);
    if (!s) throw new Error(`internal: no slot for %${name}`);
    return s;
  }

  of(g: Graph, v: ValueId): Slot {
    return this.get(g.value(v).name);
  }

  /** Follows aliases to the slot that holds the data. */
  root(name: string): Slot {
    let s = this.get(name);
    while (s.storage.kind === 'alias') s = this.get(s.storage.of);
    return s;
  }

  /** Whether a value's data lives in a function-local (a param or input, or an alias of one). */
  isLocal(name: string): boolean {
    const k = this.root(name).storage.kind;
    return k === 'param' || k === 'input';
  }
}
