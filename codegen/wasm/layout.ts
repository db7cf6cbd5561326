// The layout of the wasm module's memory: every array of the memory plan at a byte offset, 16-byte
// aligned (the offsets are ir/layout.ts's), with padding after the last one (a kernel's last
// vector may read past an array's end).

import type { Graph } from '../../ir/graph.js';
import type { Plan } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import type { ValueId } from '../../ir/types.js';
import { alignUp } from '../../ir/layout.js';

export const PAGE = 65536;
/** Bytes after the last array: a kernel's last vector may read up to 12 bytes past an array's end. */
export const PADDING = 16;
/** n rounded up to a multiple of 16 (ir/layout.ts: every offset of the layout pass is). */
export const align = alignUp;

/** The byte address of a value's array in the memory, when it has one there. */
export function addresses(plan: Plan, offsets: readonly number[]): (g: Graph, v: ValueId) => number | undefined {
  const root = (n: string): string => {
    const s = plan.storage.get(n);
    return s?.kind === 'alias' ? root(s.of) : n;
  };
  return (g, v) => {
    const id = plan.bufferOf.get(root(valueName(g, v)));
    return id === undefined ? undefined : offsets[id];
  };
}

export type Address = (g: Graph, v: ValueId) => number | undefined;
