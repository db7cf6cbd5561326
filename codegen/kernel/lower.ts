// The lowering from the fusion units of the memory plan (ir/fusion.ts, ir/memplan.ts) to the
// kernel form: each elementwise or reduce group becomes one kernel, each matmul or conv group a
// routine with its epilogue kernel, each other unit what its entry of the lowering table
// (rules.ts) says. Arrays are the values of the graph that the plan gives storage, named by
// value; the host program places them in the plan's buffers.

import type { Dim, Size } from '../../ir/dims.js';
import { numelSize, size, stridesSize } from '../../ir/dims.js';
import { CompileError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Plan, Unit } from '../../ir/memplan.js';
import { isState, valueName } from '../../ir/memplan.js';
import type { OpKind } from '../../ir/ops.js';
import { printInst } from '../../ir/print.js';
import { broadcastStridesSize } from '../../ir/shape.js';
import type { Inst, InstOf, Shape, ValueId } from '../../ir/types.js';
import { formatLoc } from '../../ir/types.js';
import type { Poly } from '../../ir/layout.js';
import { polyAdd } from '../../ir/layout.js';
import { offsetOf } from './form.js';
import type { Access, ArrayDecl, Entry, HostProgram, Kernel, Launch, LoopMoves, Routine, RoutineCall, Step, Store, View } from './form.js';
import type { AluCtx, LayoutOp, Lowering } from './rules.js';
import { Dag, LOWERING } from './rules.js';
import type { ScanLoop } from './scan-loop.js';
import { scanLoopOf } from './scan-loop.js';

const ZERO = size(0);

/** The state of one lowering: the plan, the arrays declared so far, launch names. */
class Lowerer {
  readonly arrays = new Map<string, ArrayDecl>();
  /** The graph value each node of a group kernel computes (a renderer's names for its locals). */
  readonly names = new Map<Kernel, ReadonlyMap<number, string>>();
  /** The alias a load of a group kernel reads its array through (a view that a target may name). */
  readonly views = new Map<Kernel, ReadonlyMap<number, string>>();
  private count = 0;

  constructor(readonly plan: Plan) {}

  fresh(prefix: 'k' | 'r'): string {
    return `${prefix}${this.count++}`;
  }

  /** The value an alias chain ends at (the value whose array a view reads). */
  root(name: string): string {
    const s = this.plan.storage.get(name);
    return s?.kind === 'alias' ? this.root(s.of) : name;
  }

  /** Declares (once) the array of a value and returns its name. */
  array(g: Graph, v: ValueId): string {
    const name = this.root(valueName(g, v));
    if (this.arrays.has(name)) return name;
    const s = this.plan.storage.get(name);
    const t = g.type(v);
    const numel = numelSize(t.shape);
    const id = this.plan.bufferOf.get(name);
    let decl: ArrayDecl;
    if (s?.kind === 'const') decl = { name, dtype: t.dtype, numel, place: { kind: 'const', data: s.data } };
    else if (s?.kind === 'literal') decl = { name, dtype: t.dtype, numel, place: { kind: 'const', data: [s.value] } };
    else if (id !== undefined) decl = { name, dtype: t.dtype, numel, place: { kind: 'buffer', id } };
    else if (s?.kind === 'register') decl = { name, dtype: t.dtype, numel, place: { kind: 'scratch' } };
    else throw new CompileError(`internal: the kernel form has no array for ${name} (storage ${s?.kind ?? 'none'})`);
    this.arrays.set(name, decl);
    return name;
  }

  /** A value read inside a kernel that needs no array: a literal, a uniform constant, a bound size. */
  scalar(g: Graph, v: ValueId, dag: Dag): number | undefined {
    const s = this.plan.storage.get(this.root(valueName(g, v)));
    if (s?.kind === 'literal') return dag.const(s.value);
    if (s?.kind === 'const' && s.data.length > 0 && s.data.every((x) => Object.is(x, s.data[0]))) return dag.const(s.data[0]!);
    if (s?.kind === 'dim') return dag.add({ op: 'dim', dtype: 'f32', name: s.name });
    return undefined;
  }

  /** A load of v's array: a load node, noting the alias v is when it is a view of a stored array. */
  load(g: Graph, v: ValueId, dag: Dag, views: Map<number, string>, access: Omit<Access, 'arg'>): number {
    const i = dag.add({ op: 'load', dtype: g.type(v).dtype, access: { arg: this.array(g, v), ...access } });
    const name = valueName(g, v);
    const s = this.plan.storage.get(name);
    const root = this.plan.storage.get(this.root(name));
    if (s?.kind === 'alias' && root && ['buffer', 'param', 'input', 'state'].includes(root.kind) && !views.has(i)) views.set(i, name);
    return i;
  }

  stored(g: Graph, v: ValueId): boolean {
    return this.plan.storage.get(valueName(g, v))?.kind === 'buffer';
  }
}

function fail(op: string, why: string, inst: Inst): CompileError {
  const at = inst.loc ? ` (${formatLoc(inst.loc)})` : '';
  // every target renders the kernel form, so none can build the op: a gap of graphc's, not the model's
  const fix = 'this is a bug in graphc, not in the model: please report it with the model; writing this line with other ops may avoid it meanwhile';
  return new CompileError(`the kernel form cannot lower ${op}${at}: ${why}`, fix, inst.loc);
}

/** Where the axes of a value of `shape` sit in the domain: all of them, or the kept ones. */
function placement(shape: Shape, domain: readonly Dim[], axes: readonly number[]): number[] {
  if (shape.length === domain.length) return shape.map((_d, i) => i);
  const kept = domain.map((_d, i) => i).filter((i) => !axes.includes(i));
  if (shape.length !== kept.length) throw new CompileError(`internal: a value of rank ${shape.length} in a kernel over [${domain.join(', ')}]`);
  return kept;
}

/**
 * The strides of a value of `shape` over the domain axes it sits at (`at`): 0 on the others,
 * and on its size-1 axes that sit at a longer domain axis (a keepDims reduction's [n, 1]).
 */
function lift(strides: readonly Size[], shape: Shape, at: readonly number[], domain: readonly Dim[]): Size[] {
  const out = new Array<Size>(domain.length).fill(ZERO);
  at.forEach((d, i) => (out[d] = shape[i] === 1 && domain[d] !== 1 ? ZERO : strides[i]!));
  return out;
}

/**
 * One kernel over `domain` (reducing `axes`) computing `members`: elementwise ops, reductions
 * and their epilogues. Values computed outside are loaded with broadcast strides.
 */
function groupKernel(L: Lowerer, g: Graph, members: readonly Inst[], domain: readonly Dim[], axes: readonly number[], notes: string[]): Kernel {
  const dag = new Dag();
  const nodeOf = new Map<ValueId, number>();
  const names = new Map<number, string>();
  const views = new Map<number, string>();
  const stores: Store[] = [];
  for (const inst of members) {
    const shape = g.type(inst.result).shape;
    const at = placement(shape, domain, axes);
    const rule = LOWERING[inst.op] as Lowering<OpKind>;
    const operand = (a: ValueId): number => {
      const known = nodeOf.get(a) ?? L.scalar(g, a, dag);
      if (known !== undefined) return known;
      const ashape = g.type(a).shape;
      // one_hot's index operand lies along the result's axes but the last
      const st = inst.op === 'one_hot' ? [...stridesSize(ashape), ZERO] : broadcastStridesSize(ashape, shape);
      return L.load(g, a, dag, views, { strides: lift(st, shape, at, domain), offset: ZERO });
    };
    let node: number;
    if ('reduce' in rule) {
      const src = g.type(inst.args[0]!).shape;
      const full = placement(src, domain, axes);
      const x = nodeOf.get(inst.args[0]!) ?? L.load(g, inst.args[0]!, dag, views, { strides: lift(stridesSize(src), src, full, domain), offset: ZERO });
      node = dag.add({ op: 'reduce', dtype: 'f32', red: rule.reduce, acc: 'f64', args: [x] });
    } else if ('alu' in rule) {
      const ctx: AluCtx<OpKind> = { dag, x: inst.args.map(operand), inst, lastCoord: () => dag.add({ op: 'coord', dtype: 'i32', axis: at[at.length - 1]! }) };
      node = rule.alu(ctx);
    } else throw fail(inst.op, 'it is not an elementwise op or a reduction, yet it is in a fused group', inst);
    nodeOf.set(inst.result, node);
    if (!names.has(node)) names.set(node, valueName(g, inst.result));
    if (L.stored(g, inst.result)) stores.push({ node, access: { arg: L.array(g, inst.result), strides: lift(stridesSize(shape), shape, at, domain), offset: ZERO } });
  }
  const k: Kernel = { kind: 'kernel', name: L.fresh('k'), domain, axes, nodes: dag.nodes, stores, notes };
  L.names.set(k, names);
  L.views.set(k, views);
  return k;
}

/** A dense row-major view of a value's array. */
function view(L: Lowerer, g: Graph, v: ValueId): View {
  const shape = g.type(v).shape;
  return { arg: L.array(g, v), shape, strides: stridesSize(shape), offset: ZERO };
}

/** A copy kernel over the result's shape: transpose, slice, pad, concat. */
function layoutKernel(L: Lowerer, g: Graph, inst: Extract<Inst, { op: LayoutOp }>, notes: string[]): Kernel {
  const out = g.type(inst.result).shape;
  const dag = new Dag();
  const views = new Map<number, string>();
  const load = (a: ValueId, acc: Omit<Access, 'arg'>) => L.load(g, a, dag, views, acc);
  let node: number;
  const x = inst.args[0]!;
  const xst = stridesSize(g.type(x).shape);
  switch (inst.op) {
    case 'transpose': {
      // out[..., i_d, ...] = x[..., i_perm⁻¹ ...]: domain axis d walks x's axis perm[d]
      node = load(x, { strides: inst.attrs.perm.map((p) => xst[p]!), offset: ZERO });
      break;
    }
    case 'slice':
      node = load(x, { strides: xst, offset: sumOf(inst.attrs.starts.map((s, d) => scale(xst[d]!, s))) });
      break;
    case 'flip': {
      // out[..., i_d, ...] = x[..., n_d − 1 − i_d, ...] on a flipped axis d: stride −st_d from (n_d − 1)·st_d
      const xs = g.type(x).shape;
      const flipped = (d: number) => inst.attrs.axes.includes(d);
      node = load(x, { strides: xst.map((st, d) => (flipped(d) ? scale(st, -1) : st)), offset: sumOf(xst.map((st, d) => (flipped(d) ? scale(st, (xs[d] as number) - 1) : ZERO))) });
      break;
    }
    case 'pad':
      node = load(x, windowed(g.type(x).shape, xst, inst.attrs.starts, out));
      break;
    case 'concat': {
      let off = 0;
      const parts = inst.args.map((a) => {
        const s = g.type(a).shape;
        const starts = s.map((_d, j) => (j === inst.attrs.axis ? off : 0));
        off += s[inst.attrs.axis] as number; // the shape rule keeps the concatenation axis static
        return load(a, windowed(s, stridesSize(s), starts, out));
      });
      // the parts' guards are disjoint: each point reads one part and zeros from the others
      node = parts.reduce((acc, p) => dag.bin('add', acc, p));
      break;
    }
  }
  const stores = [{ node, access: { arg: L.array(g, inst.result), strides: stridesSize(out), offset: ZERO } }];
  const k: Kernel = { kind: 'kernel', name: L.fresh('k'), domain: out, axes: [], nodes: dag.nodes, stores, notes };
  L.views.set(k, views);
  return k;
}

/** x placed at `starts` in a larger domain: read x[o − start] where it lies inside x, else 0. */
function windowed(shape: Shape, st: readonly Size[], starts: readonly number[], out: Shape): Omit<Access, 'arg'> {
  const hiOf = (s: number, n: Dim): Size => {
    const hi = sumOf([size(s), size(n)]);
    if (!('coef' in hi)) throw new CompileError(`internal: a guard's bound mixes symbolic sizes`);
    return hi;
  };
  const guards = starts.flatMap((s, d) => (s === 0 && shape[d] === out[d] ? [] : [{ axis: d, lo: s, hi: hiOf(s, shape[d]!) }]));
  return { strides: st, offset: sumOf(starts.map((s, d) => scale(st[d]!, -s))), guards };
}

function scale(s: Size, k: number): Size {
  return { coef: s.coef * k, syms: s.syms };
}

/** A sum of sizes: an access's offset (terms of different symbols, `2*B + 1`, stay terms of their own). */
function sumOf(terms: readonly Size[]): Size | Poly {
  return offsetOf(polyAdd(...terms));
}

/** The launches of one unit of the plan. */
function lowerUnit(L: Lowerer, u: Unit, notes: string[]): Launch[] {
  const g = u.graph;
  const first = u.insts[0]!;
  const rule = LOWERING[first.op] as Lowering<OpKind>;
  if ('unsupported' in rule) throw fail(first.op, rule.unsupported, first);
  if ('none' in rule) return [];
  if ('routine' in rule) {
    const epi = u.insts.slice(1);
    const out = g.type(first.result).shape;
    const call = { op: first.op, attrs: first.attrs } as RoutineCall;
    const r: Routine = {
      kind: 'routine',
      name: L.fresh('r'),
      ...call,
      inputs: first.args.map((a) => view(L, g, a)),
      output: view(L, g, first.result),
      dtype: g.type(first.result).dtype,
      ...(epi.length ? { epilogue: groupKernel(L, g, epi, out, [], []) } : {}),
      notes,
    };
    return [r];
  }
  if ('layout' in rule) return [layoutKernel(L, g, first as Extract<Inst, { op: LayoutOp }>, notes)];
  const red = u.insts.find((i) => i.op === 'sum' || i.op === 'max') as InstOf<'sum' | 'max'> | undefined;
  const domain = red ? g.type(red.args[0]!).shape : g.type(first.result).shape;
  return [groupKernel(L, g, u.insts, domain, red ? red.attrs.axes : [], notes)];
}

/**
 * The launch of one unit for a renderer (undefined for a unit with no code), with the names of
 * the graph values its kernel's nodes compute and the aliases its loads read through (of a
 * kernel, or of a routine's epilogue).
 */
export function lowerUnitOf(plan: Plan, u: Unit): { launch?: Launch; names: ReadonlyMap<number, string>; views: ReadonlyMap<number, string> } {
  const L = new Lowerer(plan);
  const [launch] = lowerUnit(L, u, irLines(u));
  const k = launch?.kind === 'kernel' ? launch : launch?.epilogue;
  return { launch, names: (k && L.names.get(k)) ?? new Map(), views: (k && L.views.get(k)) ?? new Map() };
}

/** A unit's instructions as the IR prints them. */
export function irLines(u: Unit): string[] {
  return u.insts.map((i) => printInst(u.graph, i));
}

/** Stages of the sources the caller provides: params, inputs, module state. */
function stages(L: Lowerer, fwd: Graph): Step[] {
  const out: Step[] = [];
  for (const inst of fwd.insts) {
    if (inst.op !== 'param' && inst.op !== 'input' && !isState(inst)) continue;
    const source = inst.op === 'param' || inst.op === 'input' ? inst.op : 'state';
    const key = inst.op === 'dropout_mask' ? `dropout_mask ${inst.attrs.site}` : inst.op === 'mode' ? 'mode' : inst.attrs.name;
    out.push({ kind: 'stage', array: L.array(fwd, inst.result), source, key });
  }
  return out;
}

/**
 * The host program of a model: forward (the forward units, then its outputs read back) and
 * valueAndGrad (the forward and backward units, the loss and the gradients read back). `note`
 * gives each unit's comment lines (by default the IR lines it computes).
 */
export function lowerProgram(fwd: Graph, bwd: Graph, plan: Plan, note: (u: Unit) => string[] = irLines): HostProgram {
  const L = new Lowerer(plan);
  const staged = stages(L, fwd);
  // a scan that stays a loop: a loop step holding its body's launches; its results need no launch
  const launches = (us: readonly Unit[]): Step[] =>
    us.flatMap((u): Step[] => {
      const first = u.insts[0]!;
      if (first.op === 'scan_out') return [];
      if (first.op === 'scan') {
        const loop = scanLoopOf(plan, u);
        return [{ kind: 'loop', scan: loop.name, length: size(loop.length), reverse: first.attrs.reverse === true, steps: launches(loop.bodyUnits), moves: loopMoves(L, loop) }];
      }
      return lowerUnit(L, u, note(u)).map((launch) => ({ kind: 'launch', launch }));
    });
  const forward = launches(plan.units.forward);
  const backward = launches(plan.units.backward);
  const reads = (g: Graph, names?: ReadonlySet<string>): Step[] =>
    g.outputs.filter((o) => !names || names.has(o.name)).map((o) => ({ kind: 'read', output: o.name, array: L.array(g, o.value) }));
  const entries: Entry[] = [
    { name: 'forward', steps: [...staged, ...forward, ...reads(fwd)] },
    { name: 'valueAndGrad', steps: [...staged, ...forward, ...backward, ...reads(fwd, new Set(['loss'])), ...reads(bwd)] },
  ];
  const buffers = plan.buffers.map((b) => ({ id: b.id, dtype: b.dtype, size: b.size }));
  const arrays = [...L.arrays.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { name: fwd.name, buffers, arrays, entries };
}

/** The host's copies around a scan's loop (codegen/ts/loop.ts writes the same in the flat module). */
function loopMoves(L: Lowerer, loop: ScanLoop): LoopMoves {
  const { graph: g, scan, parts: p, body, ins, results } = loop;
  const arr = (gr: Graph, v: ValueId) => L.array(gr, v);
  const init = [...Array(scan.args.length).keys()].filter((k) => k < p.carries || k >= p.carries + p.xs).map((k) => ({ to: arr(body, ins[k]!.result), from: arr(g, scan.args[k]!) }));
  const xs = [...Array(p.xs).keys()].map((j) => {
    const x = scan.args[p.carries + j]!;
    return { stacked: arr(g, x), step: arr(body, ins[p.carries + j]!.result), shape: g.type(x).shape, axis: scan.attrs.xaxes[j]! };
  });
  const ys = [...Array(p.ys).keys()].flatMap((j) => {
    const out = results.get(p.carries + j);
    return out === undefined ? [] : [{ stacked: arr(g, out), step: arr(body, body.outputs[p.carries + j]!.value), shape: g.type(out).shape, axis: scan.attrs.yaxes[j]! }];
  });
  const carries = [...Array(p.carries).keys()].filter((k) => body.outputs[k]!.value !== ins[k]!.result).map((k) => ({ to: arr(body, ins[k]!.result), from: arr(body, body.outputs[k]!.value) }));
  const out = [...Array(p.carries).keys()].flatMap((k) => {
    const r = results.get(k);
    return r === undefined ? [] : [{ to: arr(g, r), from: arr(body, ins[k]!.result) }];
  });
  return { init, xs, ys, carries, out };
}

/** The kernels and routines of a host program, each once, in launch order. */
export function launchesOf(p: HostProgram): Launch[] {
  const seen = new Set<string>();
  const out: Launch[] = [];
  const visit = (steps: readonly Step[]): void => {
    for (const s of steps)
      if (s.kind === 'loop') visit(s.steps);
      else if (s.kind === 'launch' && !seen.has(s.launch.name)) {
        seen.add(s.launch.name);
        out.push(s.launch);
      }
  };
  for (const e of p.entries) visit(e.steps);
  return out;
}
