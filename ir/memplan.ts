// The memory plan: which values need an array, and which arrays they share. Values that live
// only inside one fused group are loop locals; the others get buffers, assigned by liveness
// over the forward steps followed by the backward steps, so that dead intermediates share
// storage. Params and inputs are staged into buffers of their own; forward values the backward
// reads live until their last backward use; outputs and gradients live to the end.

import type { Graph } from './graph.js';
import { OPS } from './ops.js';
import type { DType, Inst, ValueId } from './types.js';
import type { Size } from './dims.js';
import { numelSize, sizeText } from './dims.js';

/** A unit of emission: a fused group or a single instruction. */
export interface Unit {
  readonly graph: Graph;
  readonly kind: 'elementwise' | 'reduce' | 'matmul' | 'conv' | 'single';
  readonly insts: readonly Inst[];
}

export type Storage =
  | { readonly kind: 'param' | 'input'; readonly key: string }
  /**
   * What the module itself sets before the forward pass: a buffer (key: its name), the mode flag
   * or a dropout mask (key: the op).
   */
  | { readonly kind: 'state'; readonly key: string }
  | { readonly kind: 'literal'; readonly value: number }
  | { readonly kind: 'const'; readonly data: readonly number[] }
  /** The bound size of a symbolic dimension. */
  | { readonly kind: 'dim'; readonly name: string }
  | { readonly kind: 'alias'; readonly of: string }
  | { readonly kind: 'register' }
  | { readonly kind: 'buffer' };

export interface Buffer {
  readonly id: number;
  readonly dtype: DType;
  /** Elements; a buffer with symbols in its size is allocated when a call binds them. */
  size: Size;
  readonly values: { name: string; from: number; to: number }[];
}

export interface Plan {
  readonly units: { readonly forward: Unit[]; readonly backward: Unit[] };
  /** Storage of every value, by name (backward `fwd` reads are the forward values). */
  readonly storage: ReadonlyMap<string, Storage>;
  readonly buffers: readonly Buffer[];
  /** Buffer of each value with storage 'buffer' (params and inputs included). */
  readonly bufferOf: ReadonlyMap<string, number>;
  /** The unit that computes each value. */
  readonly unitOf: ReadonlyMap<string, Unit>;
  /**
   * The units of each scan body that stays a loop (ir/loops.ts), nested ones included: emitted once,
   * inside the loop. Their values' arrays live through the scan's step.
   */
  readonly bodies: ReadonlyMap<Graph, Unit[]>;
}

/** Every unit of a plan: the forward's, the backward's and those of the loops' bodies. */
export function allUnits(plan: Plan): Unit[] {
  return [...plan.units.forward, ...plan.units.backward, ...[...plan.bodies.values()].flat()];
}

export function units(g: Graph): Unit[] {
  const groupOf = new Map<number, number>();
  g.groups.forEach((gr, k) => gr.insts.forEach((id) => groupOf.set(id, k)));
  const out: Unit[] = [];
  let lastGroup = -1;
  for (const inst of g.insts) {
    if (OPS[inst.op].category === 'source') continue;
    const k = groupOf.get(inst.id);
    if (k === undefined) out.push({ graph: g, kind: 'single', insts: [inst] });
    else if (k !== lastGroup) out.push({ graph: g, kind: g.groups[k]!.kind as Unit['kind'], insts: g.groups[k]!.insts.map((id) => g.inst(id)) });
    lastGroup = k ?? -1;
  }
  return out;
}

/**
 * `storeAll`: every value gets an array, none lives only in a loop (for --check-finite, which
 * checks each value where it is made).
 */
export function planMemory(fwd: Graph, bwd: Graph, opts: { storeAll?: boolean } = {}): Plan {
  const sched = schedule(fwd, bwd);
  const storage = storageKinds(fwd, bwd, sched, opts.storeAll);
  const root = (name: string): string => {
    const s = storage.get(name);
    return s?.kind === 'alias' ? root(s.of) : name;
  };
  const lastUse = lifetimes(fwd, bwd, sched, root);
  const { buffers, bufferOf } = assignBuffers(fwd, bwd, sched, storage, lastUse, root);
  const { forward, backward, unitOf, bodies } = sched;
  return { units: { forward, backward }, storage, buffers, bufferOf, unitOf, bodies };
}

/** The units in step order, the step each runs at, and the unit that computes each value. */
interface Schedule {
  readonly forward: Unit[];
  readonly backward: Unit[];
  /** The forward's units followed by the backward's: unit k runs at step k. */
  readonly all: Unit[];
  readonly step: Map<Unit, number>;
  readonly unitOf: Map<string, Unit>;
  /** The units of the bodies of the scans that stay loops, nested ones included. */
  readonly bodies: Map<Graph, Unit[]>;
  /** A body's unit runs at the step of its outermost scan. */
  readonly bodyStep: Map<Unit, number>;
}

/** The units of both graphs and of their loops' bodies, with their steps and the unit of each value. */
function schedule(fwd: Graph, bwd: Graph): Schedule {
  const forward = units(fwd);
  const backward = units(bwd);
  const all = [...forward, ...backward];
  const unitOf = new Map<string, Unit>();
  const step = new Map<Unit, number>();
  all.forEach((u, k) => {
    step.set(u, k);
    for (const inst of u.insts) unitOf.set(u.graph.value(inst.result).name, u);
  });
  // the bodies of the scans that stay loops: their units, at the step of their outermost scan
  const bodies = new Map<Graph, Unit[]>();
  const bodyStep = new Map<Unit, number>();
  const addBodies = (u: Unit, at: number): void => {
    const s = u.insts[0]!;
    if (s.op !== 'scan') return;
    const body = u.graph.bodies[s.attrs.body]!;
    const us = units(body);
    bodies.set(body, us);
    for (const b of us) {
      bodyStep.set(b, at);
      for (const inst of b.insts) unitOf.set(body.value(inst.result).name, b);
      addBodies(b, at);
    }
  };
  all.forEach((u, k) => addBodies(u, k));
  return { forward, backward, all, step, unitOf, bodies, bodyStep };
}

/** The storage kind of every value of both graphs and of the loops' bodies. */
function storageKinds(fwd: Graph, bwd: Graph, sched: Schedule, storeAll: boolean | undefined): Map<string, Storage> {
  const { unitOf, bodies } = sched;
  const storage = new Map<string, Storage>();
  for (const g of [fwd, bwd, ...bodies.keys()]) {
    const users = g.uses();
    const isBody = g !== fwd && g !== bwd;
    for (const inst of g.insts) {
      const v = g.value(inst.result);
      const t = v.type;
      switch (inst.op) {
        case 'scan':
          // a token: the scan writes its results' arrays (scan_out), which live from the scan on
          storage.set(v.name, { kind: 'register' });
          continue;
        case 'input':
          // a body's operands: the loop copies the carries, the steps' slices and the closed-over values in
          storage.set(v.name, isBody ? { kind: 'buffer' } : { kind: inst.op, key: inst.attrs.name });
          continue;
        case 'param':
          storage.set(v.name, { kind: inst.op, key: inst.attrs.name });
          continue;
        case 'buffer':
          storage.set(v.name, { kind: 'state', key: `buffer ${inst.attrs.name}` });
          continue;
        case 'mode':
          storage.set(v.name, { kind: 'state', key: 'mode: 1 in training, 0 in evaluation' });
          continue;
        case 'dropout_mask':
          storage.set(v.name, { kind: 'state', key: `dropout mask, p = ${inst.attrs.p}` });
          continue;
        case 'const':
          storage.set(v.name, t.shape.length === 0 ? { kind: 'literal', value: inst.attrs.data[0]! } : { kind: 'const', data: inst.attrs.data });
          continue;
        case 'dim':
          storage.set(v.name, { kind: 'dim', name: inst.attrs.name });
          continue;
        case 'fwd':
          continue;
        case 'reshape':
        case 'stop_gradient': {
          // a view of a constant is the constant (the emitters give constants no buffer to view)
          const of = storage.get(valueName(g, inst.args[0]!));
          if (of?.kind === 'const' || of?.kind === 'literal') storage.set(v.name, { kind: 'const', data: of.kind === 'const' ? of.data : [of.value] });
          else storage.set(v.name, { kind: 'alias', of: g.value(inst.args[0]!).name });
          continue;
        }
      }
      const u = unitOf.get(v.name)!;
      const outside = (users.get(inst.result) ?? []).some((x) => unitOf.get(g.value(x.result).name) !== u);
      const isOutput = g.outputs.some((o) => o.value === inst.result);
      const readLater = g === fwd && bwd.insts.some((x) => x.op === 'fwd' && x.attrs.name === v.name);
      // a convolution's output keeps its array in a conv group: the flat module accumulates each
      // output plane there before its epilogue reads it, and the wasm module's kernel writes it
      const accumulated = u.kind === 'conv' && inst === u.insts[0];
      storage.set(v.name, u.kind !== 'single' && !accumulated && !outside && !isOutput && !readLater && !storeAll ? { kind: 'register' } : { kind: 'buffer' });
      void t;
    }
  }
  return storage;
}

/** The last step at which each value (by its alias root) is used; outputs and gradients are used at the end. */
function lifetimes(fwd: Graph, bwd: Graph, sched: Schedule, root: (name: string) => string): Map<string, number> {
  const { forward, backward, bodies, step, bodyStep } = sched;
  const END = sched.all.length;
  const lastUse = new Map<string, number>();
  const use = (name: string, at: number) => lastUse.set(name, Math.max(lastUse.get(name) ?? -1, at));
  // lifetimes, in steps: uses through aliases and forward reads count for the root
  for (const g of [fwd, bwd, ...bodies.keys()])
    for (const u of g === fwd ? forward : g === bwd ? backward : bodies.get(g)!) {
      const at = step.get(u) ?? bodyStep.get(u)!;
      for (const inst of u.insts) {
        use(root(g.value(inst.result).name), at);
        for (const a of inst.args) {
          const d = g.def(a);
          use(root(d.op === 'fwd' ? d.attrs.name : g.value(a).name), at);
        }
      }
    }
  for (const o of fwd.outputs) use(root(fwd.value(o.value).name), END);
  for (const o of bwd.outputs) {
    const d = bwd.def(o.value);
    use(root(d.op === 'fwd' ? d.attrs.name : bwd.value(o.value).name), END);
  }
  return lastUse;
}

/** The buffers, and the buffer of each value with storage 'buffer', assigned greedily in step order. */
function assignBuffers(
  fwd: Graph,
  bwd: Graph,
  sched: Schedule,
  storage: ReadonlyMap<string, Storage>,
  lastUse: ReadonlyMap<string, number>,
  root: (name: string) => string,
): { buffers: Buffer[]; bufferOf: Map<string, number> } {
  const { all, step, unitOf } = sched;
  // greedy assignment in step order: a buffer is free once its last value's last use has passed
  const buffers: Buffer[] = [];
  const bufferOf = new Map<string, number>();
  // buffers are shared between sizes with the same symbols (64·B and 27·B, or 64 and 27)
  const sameSyms = (a: Size, b: Size) => a.syms.length === b.syms.length && a.syms.every((x, i) => x === b.syms[i]);
  // a gradient outlives the call that made it (until the next valueAndGrad): it never shares an
  // array with a forward value, which a forward() call in between would overwrite
  // (the values of the forward's loop bodies included: a forward() call writes them too)
  const forwardNames = new Set<string>();
  const addForward = (g: Graph): void => {
    for (const i of g.insts) {
      forwardNames.add(g.value(i.result).name);
      if (i.op === 'scan') addForward(g.bodies[i.attrs.body]!);
    }
  };
  addForward(fwd);
  const gradNames = new Set(bwd.outputs.map((o) => root(valueName(bwd, o.value))));
  const assign = (name: string, dtype: DType, size: Size, from: number, shared: boolean) => {
    const to = lastUse.get(name) ?? from;
    const grad = gradNames.has(name);
    let best: Buffer | undefined;
    if (shared)
      for (const b of buffers) {
        const free =
          b.values.every((x) => x.to < from) &&
          !b.values.some((x) => storage.get(x.name)!.kind !== 'buffer') &&
          !(grad && b.values.some((x) => forwardNames.has(x.name)));
        if (!free || b.dtype !== dtype || !sameSyms(b.size, size)) continue;
        const fit = (x: Buffer) => Math.abs(x.size.coef - size.coef);
        if (!best || fit(b) < fit(best)) best = b;
      }
    if (!best) buffers.push((best = { id: buffers.length, dtype, size, values: [] }));
    best.size = { coef: Math.max(best.size.coef, size.coef), syms: size.syms };
    best.values.push({ name, from, to });
    bufferOf.set(name, best.id);
  };
  for (const inst of fwd.insts) {
    const v = fwd.value(inst.result);
    if (inst.op === 'param' || inst.op === 'input' || isState(inst)) assign(v.name, v.type.dtype, numelSize(v.type.shape), 0, false);
  }
  for (const u of all) {
    const at = step.get(u)!;
    for (const inst of u.insts) {
      const v = u.graph.value(inst.result);
      // a scan's results are written by the scan: they live from its step (not sharing its operands' arrays)
      const from = inst.op === 'scan_out' ? step.get(unitOf.get(u.graph.value(inst.args[0]!).name)!)! : at;
      if (storage.get(v.name)?.kind === 'buffer') assign(v.name, v.type.dtype, numelSize(v.type.shape), from, true);
      if (inst.op === 'scan') assignBody(u.graph.bodies[inst.attrs.body]!, at);
    }
  }
  /** A body's arrays (nested bodies' too): all live through the step of the scan. */
  function assignBody(body: Graph, at: number): void {
    for (const inst of body.insts) {
      const v = body.value(inst.result);
      if (storage.get(v.name)?.kind === 'buffer') assign(v.name, v.type.dtype, numelSize(v.type.shape), at, true);
      if (inst.op === 'scan') assignBody(body.bodies[inst.attrs.body]!, at);
    }
  }
  return { buffers, bufferOf };
}

/** The plan as comment lines for a graph's IR file. */
export function describePlan(plan: Plan, g: Graph): string[] {
  // a graph's values, its loops' bodies' included
  const names = (x: Graph): string[] => x.insts.flatMap((i) => [x.value(i.result).name, ...(i.op === 'scan' ? names(x.bodies[i.attrs.body]!) : [])]);
  const mine = new Set(names(g));
  const used = plan.buffers.filter((b) => b.values.some((x) => mine.has(x.name)));
  const kib = (n: number) => (n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
  // bytes, with the symbols of symbolic sizes as factors: `256 B × B`
  const bytes = (s: Size) => (s.syms.length ? `${kib(s.coef * 4)} × ${s.syms.join(' × ')}` : kib(s.coef * 4));
  const totals = new Map<string, Size>();
  for (const b of used) {
    const k = b.size.syms.join(',');
    totals.set(k, { coef: (totals.get(k)?.coef ?? 0) + b.size.coef, syms: b.size.syms });
  }
  const total = [...totals.values()].map(bytes).join(' + ') || kib(0);
  const lines = [
    `memory plan: ${used.length} buffers, ${total}; values that live only inside a group are loop locals,`,
    `names in parentheses are values of the ${g.kind === 'forward' ? 'backward' : 'forward'} graph`,
  ];
  for (const b of used)
    lines.push(`buffer ${b.id}: ${b.dtype}[${sizeText(b.size)}] ${bytes(b.size)}: ${b.values.map((x) => (mine.has(x.name) ? x.name : `(${x.name})`)).join(', ')}`);
  return lines;
}

export function valueName(g: Graph, v: ValueId): string {
  const d = g.def(v);
  return d.op === 'fwd' ? d.attrs.name : g.value(v).name;
}

/** The sources a module sets itself before the forward pass: buffers, the mode flag, dropout masks. */
export function isState(inst: Inst): inst is Extract<Inst, { op: 'buffer' | 'mode' | 'dropout_mask' }> {
  return inst.op === 'buffer' || inst.op === 'mode' || inst.op === 'dropout_mask';
}
