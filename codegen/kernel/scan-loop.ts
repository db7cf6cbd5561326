// A scan that stays a loop (ir/loops.ts), as every target's loop starts from it: the host
// program's `loop` step (lower.ts), the flat and wasm modules' loop (codegen/ts/loop.ts) and the
// GPU.js pipeline's (codegen/gpu-loop.ts). Each renders the same parts: the carries and the
// closed-over values into the body's operands, per step t the xs' slices, the body's units once,
// the ys at t and the new carries, then the final carries into the scan's results.

import type { Dim } from '../../ir/dims.js';
import { isStatic, sizeText } from '../../ir/dims.js';
import type { Graph } from '../../ir/graph.js';
import type { Plan, Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import type { ScanParts } from '../../ir/scan.js';
import { bodyInputs, scanParts } from '../../ir/scan.js';
import type { InstOf, ValueId } from '../../ir/types.js';

export interface ScanLoop {
  /** The graph that holds the scan. */
  readonly graph: Graph;
  readonly scan: InstOf<'scan'>;
  /** The scan's value name. */
  readonly name: string;
  /** Its body and how its operands split: carries, xs, closed-over values (and how many ys). */
  readonly parts: ScanParts;
  readonly body: Graph;
  /** The body's operands (its `input` instructions, in order). */
  readonly ins: readonly InstOf<'input'>[];
  /** The memory plan's units of the body, emitted once inside the loop. */
  readonly bodyUnits: readonly Unit[];
  /** The number of steps, and as code (a symbolic one is bound by the call). */
  readonly length: Dim;
  readonly trips: string;
  /** The scan's results that the graph reads (its scan_outs), by result index: the carries, then the ys. */
  readonly results: ReadonlyMap<number, ValueId>;
  /** The comment line above the loop's code. */
  readonly comment: string;
}

/** The loop of a scan unit of the memory plan (its first instruction is the scan). */
export function scanLoopOf(plan: Plan, u: Unit): ScanLoop {
  const graph = u.graph;
  const scan = u.insts[0] as InstOf<'scan'>;
  const name = valueName(graph, scan.result);
  const parts = scanParts(graph, scan);
  const body = parts.body;
  const bodyUnits = plan.bodies.get(body);
  if (!bodyUnits) throw new Error(`internal: the memory plan has no units for the body of scan ${name}`);
  const length = scan.attrs.length[0]!;
  const results = new Map<number, ValueId>();
  for (const i of graph.insts) if (i.op === 'scan_out' && i.args[0] === scan.result) results.set(i.attrs.index, i.result);
  const what = `${isStatic(length) ? length : `${length} (bound by the call)`} steps${scan.attrs.reverse ? ', from the last' : ''}`;
  return {
    graph,
    scan,
    name,
    parts,
    body,
    ins: bodyInputs(body),
    bodyUnits,
    length,
    trips: sizeText(length),
    results,
    comment: `// the loop of ${name}: ${what}; its body (${body.name}) once, below`,
  };
}
