// The contract between fusion (ir/fusion.ts) and the kernel form (codegen/kernel/lower.ts),
// issue #29: every fusion group of a graph is one unit of the memory plan, and lowers to exactly
// one launch: an elementwise or reduce group to one kernel storing every member value the plan
// stores, a matmul or conv group to one routine whose epilogue kernel computes the other members.

import { expect } from 'vitest';
import type { Graph } from '../ir/graph.js';
import type { Plan, Unit } from '../ir/memplan.js';
import { valueName } from '../ir/memplan.js';
import type { Launch } from '../codegen/kernel/form.js';
import { launchesOf, lowerProgram } from '../codegen/kernel/lower.js';

/** The arrays a kernel stores. */
const storesOf = (l: Launch): string[] => (l.kind === 'kernel' ? l.stores.map((s) => s.access.arg) : []);

export function checkFusionLowering(fwd: Graph, bwd: Graph, plan: Plan): void {
  // each group is one unit: its instructions, in order, and nothing else
  for (const [g, units] of [
    [fwd, plan.units.forward],
    [bwd, plan.units.backward],
  ] as const)
    g.groups.forEach((gr, k) => {
      const of = units.filter((u) => u.insts.some((i) => gr.insts.includes(i.id)));
      expect(of.length, `${g.kind} group g${k} (${gr.kind}) is ${of.length} units of the plan`).toBe(1);
      expect(
        of[0]!.insts.map((i) => i.id),
        `${g.kind} group g${k}: the unit's instructions`,
      ).toEqual(gr.insts);
    });
  // each unit lowers to its launches: the note of a unit marks the launches made from it
  const id = new Map<string, Unit>();
  const prog = lowerProgram(fwd, bwd, plan, (u) => {
    const key = `unit ${id.size}`;
    id.set(key, u);
    return [key];
  });
  const launches = new Map<string, Launch[]>();
  for (const l of launchesOf(prog)) {
    const key = l.notes[0]!;
    launches.set(key, [...(launches.get(key) ?? []), l]);
  }
  for (const [key, u] of id) {
    if (u.kind === 'single') continue;
    const what = `${u.graph.kind} ${u.kind} group of ${u.insts.map((i) => i.op).join(', ')}`;
    const ls = launches.get(key) ?? [];
    expect(ls.length, `${what}: launches`).toBe(1);
    const l = ls[0]!;
    const stored = u.insts.map((i) => valueName(u.graph, i.result)).filter((n) => plan.storage.get(n)?.kind === 'buffer');
    if (u.kind === 'elementwise' || u.kind === 'reduce') {
      expect(l.kind, what).toBe('kernel');
      for (const n of stored) expect(storesOf(l), `${what}: stores ${n}`).toContain(n);
    } else {
      expect(l.kind, what).toBe('routine');
      if (l.kind !== 'routine') return;
      expect(l.op, what).toBe(u.insts[0]!.op);
      expect(l.epilogue !== undefined, `${what}: an epilogue kernel iff the group has more than its routine`).toBe(u.insts.length > 1);
      for (const n of stored.filter((n) => n !== valueName(u.graph, u.insts[0]!.result))) expect(storesOf(l.epilogue!), `${what}: the epilogue stores ${n}`).toContain(n);
    }
  }
}
