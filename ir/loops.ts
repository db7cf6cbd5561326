// Scans that stay loops (the flat and wasm targets): what the middle end does to a scan it keeps.
//
// After the reverse pass a kept scan's region is a graph of its own: the backward's custom-gradient
// markers go, the schedule passes (dce, fusion) run over it, and its values get names that no
// other graph of the module uses (the module's arena names every array by value name, and the body
// of a scan is emitted once, inside a loop, in the same functions as the graph around it). The
// memory plan (ir/memplan.ts) then gives the body's arrays storage next to the others' and the
// emitters (codegen/ts/loop.ts) write the loop.
//
// Which scans stay loops: the flat, wasm, GPU.js (codegen/gpu-loop.ts) and WebGPU
// (codegen/webgpu/loop.ts) modules keep them (`lower(g, { loops: false })` unrolls them all),
// except a scan whose body draws dropout masks or reads the module's state, which unrolls on every
// target. g.scan never makes one: it draws a step's masks outside the step, one mask stacked over
// the steps that the scan slices as an x (src/scan.ts's stackedMasks), and the mode flag is a value
// the step closes over; only a region written in IR text can hold them.

import type { Graph } from './graph.js';
import { isState } from './memplan.js';
import type { InstOf } from './types.js';

/** Whether a scan's body (nested bodies included) holds a dropout mask or module state: such a scan unrolls. */
export function bodyHasState(g: Graph, inst: InstOf<'scan'>): boolean {
  const body = g.bodies[inst.attrs.body]!;
  return body.insts.some((i) => isState(i) || (i.op === 'scan' && bodyHasState(body, i)));
}

/** The scans of g, nested ones included, each with the graph that holds it. */
export function scansOf(g: Graph): { g: Graph; inst: InstOf<'scan'> }[] {
  const out: { g: Graph; inst: InstOf<'scan'> }[] = [];
  for (const inst of g.insts)
    if (inst.op === 'scan') {
      out.push({ g, inst });
      out.push(...scansOf(g.bodies[inst.attrs.body]!));
    }
  return out;
}

/**
 * Names every value of the scans' bodies (nested ones included) so that no two values of the
 * module share a name: a body value that another graph names already gets a suffix (h → h_1). A
 * body that two scans share (a nested body the reverse scan copied) is cloned first. Run once
 * both graphs are final, before the memory plan.
 */
export function nameBodies(graphs: readonly Graph[]): void {
  const taken = new Set<string>();
  for (const g of graphs) for (const inst of g.insts) taken.add(g.value(inst.result).name);
  const seen = new Set<Graph>();
  const fresh = (base: string): string => {
    let n = base;
    for (let k = 1; taken.has(n); k++) n = `${base}_${k}`;
    taken.add(n);
    return n;
  };
  const visit = (g: Graph): void => {
    for (const inst of g.insts) {
      if (inst.op !== 'scan') continue;
      let body = g.bodies[inst.attrs.body]!;
      if (seen.has(body)) g.bodies[inst.attrs.body] = body = body.clone();
      seen.add(body);
      for (const i of body.insts) {
        const v = body.value(i.result);
        v.name = fresh(v.name || 't');
      }
      visit(body);
    }
  };
  graphs.forEach(visit);
}
