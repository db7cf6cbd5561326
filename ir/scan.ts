// g.scan's region instruction, jax.lax.scan's semantics:
//
//   %s: f32[0] = scan %h0, %xs, %W {body=0, carries=1, length=[16], xaxes=[0], yaxes=[0, 0]} @ lstm.ts:30:21
//   %h: f32[4,8] = scan_out %s {index=0}
//
// The scan's operands are the initial carries, the xs (sliced along their `xaxes` entry) and the
// values the step closes over; its region `body` (Graph.bodies) is a graph of its own whose
// `input`s are, in order, the carries, the slices and the closed-over values, and whose outputs
// are the new carries, then the per-step ys (stacked along their `yaxes` entry). The scan's own
// value is a token; `scan_out` reads result `index`: the final carries, then the stacked ys.
//
// Here: the types of the results, the verifier's checks of a region, the float64 slicing and
// stacking the interpreter uses, and `unrollScans`, which turns scans into their steps: those of
// --hvp and --jvp, and (from IR text only) those whose step draws dropout masks or reads module
// state; every target keeps the others as loops (ir/loops.ts, docs/dsl.md). g.scan draws a step's
// dropout masks outside the step, one mask stacked over the steps (src/scan.ts), and closes over
// the mode flag: its steps hold no state.

import { Builder } from './builder.js';
import type { Dim } from './dims.js';
import { bindShape, isStatic } from './dims.js';
import { CompileError } from './errors.js';
import { bodyHasState } from './loops.js';
import type { Graph } from './graph.js';
import type { NDArray } from './ndarray.js';
import { nd } from './ndarray.js';
import type { Inst, InstOf, Shape, TensorType, ValueId } from './types.js';
import { formatType, numel, sameShape } from './types.js';

/** The type of a scan's own value: a token that only scan_out reads. */
export const SCAN_TOKEN: TensorType = { dtype: 'f32', shape: [0] };

export interface ScanParts {
  readonly body: Graph;
  readonly carries: number;
  readonly xs: number;
  readonly ys: number;
  /** The closed-over operands, after the carries and the xs. */
  readonly closed: number;
}

export function scanParts(g: Graph, inst: InstOf<'scan'>): ScanParts {
  const body = g.bodies[inst.attrs.body];
  if (!body) throw new Error(`internal: no scan body #${inst.attrs.body} in graph ${g.name}`);
  const { carries } = inst.attrs;
  const xs = inst.attrs.xaxes.length;
  return { body, carries, xs, ys: inst.attrs.yaxes.length, closed: inst.args.length - carries - xs };
}

/** The body's operands: its `input` instructions, in order. */
export function bodyInputs(body: Graph): InstOf<'input'>[] {
  return body.insts.filter((i): i is InstOf<'input'> => i.op === 'input');
}

export function insertAxis(shape: Shape, axis: number, n: Dim): Dim[] {
  return [...shape.slice(0, axis), n, ...shape.slice(axis)];
}

export function dropAxis(shape: Shape, axis: number): Dim[] {
  return shape.filter((_d, i) => i !== axis);
}

/** The type of result `index` of a scan: a carry's type, or a y's stacked along its axis. */
export function scanOutType(g: Graph, scan: InstOf<'scan'>, index: number): TensorType {
  const { body, carries } = scanParts(g, scan);
  const out = body.outputs[index];
  if (!out) throw new Error(`internal: scan has no result ${index}`);
  const t = body.type(out.value);
  if (index < carries) return t;
  return { dtype: t.dtype, shape: insertAxis(t.shape, scan.attrs.yaxes[index - carries]!, scan.attrs.length[0]!) };
}

/** The verifier's checks of a scan against its region; a message, or undefined when it is well formed. */
export function checkScan(g: Graph, inst: InstOf<'scan'>): string | undefined {
  const body = g.bodies[inst.attrs.body];
  if (!body) return `scan body #${inst.attrs.body} does not exist`;
  const p = scanParts(g, inst);
  const ins = bodyInputs(body);
  if (inst.attrs.length.length !== 1) return `scan length must be one dimension, got [${inst.attrs.length.join(', ')}]`;
  const n = inst.attrs.length[0]!;
  if (p.closed < 0) return `scan has ${inst.args.length} operands, fewer than its ${p.carries} carries and ${p.xs} xs`;
  if (ins.length !== inst.args.length) return `scan has ${inst.args.length} operands but its body reads ${ins.length}`;
  if (body.outputs.length !== p.carries + p.ys) return `scan body returns ${body.outputs.length} results, not ${p.carries} carries and ${p.ys} ys`;
  const bad = body.insts.find((i) => i.op === 'param' || i.op === 'buffer');
  if (bad) return `a scan body holds ${bad.op}, which belongs outside it`;
  for (let k = 0; k < inst.args.length; k++) {
    const at = g.type(inst.args[k]!);
    const it = body.type(ins[k]!.result);
    let want = at;
    if (k >= p.carries && k < p.carries + p.xs) {
      const axis = inst.attrs.xaxes[k - p.carries]!;
      if (!(axis >= 0 && axis < at.shape.length)) return `scan x ${k - p.carries} (${formatType(at)}) has no axis ${axis}`;
      if (at.shape[axis] !== n) return `scan x ${k - p.carries} is ${formatType(at)}, whose axis ${axis} is not the length ${n}`;
      want = { dtype: at.dtype, shape: dropAxis(at.shape, axis) };
    }
    if (!sameType(want, it)) return `scan operand ${k} gives ${formatType(want)} but the body reads ${formatType(it)}`;
  }
  for (let k = 0; k < p.carries; k++) {
    const t = body.type(body.outputs[k]!.value);
    if (!sameType(t, g.type(inst.args[k]!))) return `scan carry ${k} enters as ${formatType(g.type(inst.args[k]!))} but the body returns ${formatType(t)}`;
  }
  for (let j = 0; j < p.ys; j++) {
    const axis = inst.attrs.yaxes[j]!;
    const rank = body.type(body.outputs[p.carries + j]!.value).shape.length;
    if (!(axis >= 0 && axis <= rank)) return `scan y ${j} of rank ${rank} cannot be stacked along axis ${axis}`;
  }
  return undefined;
}

export function checkScanOut(g: Graph, inst: InstOf<'scan_out'>): string | undefined {
  const s = g.def(inst.args[0]!);
  if (s.op !== 'scan') return `scan_out reads a ${s.op}, not a scan`;
  const p = scanParts(g, s);
  if (inst.attrs.index >= p.carries + p.ys) return `scan_out index ${inst.attrs.index} is past the scan's ${p.carries + p.ys} results`;
  const want = scanOutType(g, s, inst.attrs.index);
  const t = g.type(inst.result);
  if (!sameType(want, t)) return `declared ${formatType(t)} but the scan gives ${formatType(want)}`;
  return undefined;
}

function sameType(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && sameShape(a.shape, b.shape);
}

// ---------------------------------------------------------------------------------------------
// Float64 slicing and stacking (the interpreter)

/** x's slice t along axis, without that axis. */
export function takeAlong(x: NDArray, axis: number, t: number): NDArray {
  const outer = numel(x.shape.slice(0, axis));
  const n = x.shape[axis]!;
  const inner = numel(x.shape.slice(axis + 1));
  const out = nd(dropAxis(x.shape, axis) as number[]);
  for (let o = 0; o < outer; o++) for (let q = 0; q < inner; q++) out.data[o * inner + q] = x.data[(o * n + t) * inner + q]!;
  return out;
}

/** The parts stacked along a new axis, in order. */
export function stackAlong(parts: readonly NDArray[], axis: number, partShape: readonly number[]): NDArray {
  const n = parts.length;
  const outer = numel(partShape.slice(0, axis));
  const inner = numel(partShape.slice(axis));
  const out = nd(insertAxis(partShape, axis, n) as number[]);
  parts.forEach((p, t) => {
    for (let o = 0; o < outer; o++) for (let q = 0; q < inner; q++) out.data[(o * n + t) * inner + q] = p.data[o * inner + q]!;
  });
  return out;
}

/** The number of steps of a scan with its symbols bound. */
export function boundLength(inst: InstOf<'scan'>, dims: Readonly<Record<string, number>>): number {
  return bindShape(inst.attrs.length, dims)[0]!;
}

// ---------------------------------------------------------------------------------------------
// Unrolling

/**
 * Replaces every scan of g by its steps, in place: each step slices the xs, emits a copy of the
 * body on the current carries, and the ys are concatenated along their axes. A result keeps the
 * scan_out's name (a backward graph reads forward values by name). Nested scans unroll in turn.
 * A scan over a symbolic length cannot unroll: that is an error located at the g.scan call.
 */
export function unrollScans(g: Graph, forward?: Graph, which: (s: InstOf<'scan'>) => boolean = () => true): void {
  while (g.insts.some((i) => i.op === 'scan' && which(i))) unrollOnce(g, forward, which);
  if (g.kind === 'backward' && forward) readForwardMasks(g, forward);
}

/**
 * The dropout site of a mask in a scan's body at step t: each step draws a mask of its own. A
 * nested scan's steps map their outer step's sites again (the interpreter composes the same way).
 */
export function stepSite(site: number, t: number): number {
  return (Math.imul(site + 1, 0x2545f491) ^ Math.imul(t + 1, 0x9e3779b9)) >>> 1;
}

function hasMasks(body: Graph): boolean {
  return body.insts.some((i) => i.op === 'dropout_mask' || (i.op === 'scan' && hasMasks(body.bodies[i.attrs.body]!)));
}

/** A copy of a body whose dropout masks, nested bodies' included, are those of step t. */
export function atStep(body: Graph, t: number): Graph {
  if (!hasMasks(body)) return body;
  const c = body.clone();
  for (const inst of c.insts)
    if (inst.op === 'dropout_mask') c.replaceInst(inst, { ...inst, attrs: { ...inst.attrs, site: stepSite(inst.attrs.site, t) } });
    else if (inst.op === 'scan') c.bodies[inst.attrs.body] = atStep(c.bodies[inst.attrs.body]!, t);
  return c;
}

/**
 * A backward graph's unrolled steps recompute the forward's steps, dropout masks included: each
 * mask is read from the forward (same site), as every mask is drawn once, before the forward pass.
 */
function readForwardMasks(g: Graph, forward: Graph): void {
  const bySite = new Map<number, string>();
  for (const i of forward.insts) if (i.op === 'dropout_mask') bySite.set(i.attrs.site, forward.value(i.result).name);
  const dead = new Set<Inst['id']>();
  for (const inst of [...g.insts]) {
    if (inst.op !== 'dropout_mask') continue;
    const name = bySite.get(inst.attrs.site);
    if (name === undefined) throw new Error(`internal: the backward recomputes dropout site ${inst.attrs.site}, which the forward does not draw`);
    const read = g.insts.find((i) => i.op === 'fwd' && i.attrs.name === name);
    if (read) {
      g.replaceUses(inst.result, read.result);
      dead.add(inst.id);
      continue;
    }
    g.replaceInst(inst, { id: inst.id, op: 'fwd', args: [], attrs: { name }, result: inst.result, loc: inst.loc });
    const v = g.value(inst.result);
    if (v.name) g.names.release(v.name);
    g.names.claimExact(name);
    v.name = name;
    v.temp = false;
  }
  g.remove(dead);
}

function unrollOnce(g: Graph, forward: Graph | undefined, which: (s: InstOf<'scan'>) => boolean): void {
  // reads of forward values first (they have no operands): a step may read one (storedStep)
  const old = [...g.insts.filter((i) => i.op === 'fwd'), ...g.insts.filter((i) => i.op !== 'fwd')];
  g.insts = [];
  const results = new Map<ValueId, ValueId[]>();
  const subst = new Map<ValueId, ValueId>();
  const fresh = new Set<ValueId>();
  for (const inst of old) {
    if (inst.op === 'scan' && which(inst)) {
      g.names.release(g.value(inst.result).name);
      results.set(inst.result, unrollScan(g, inst, fresh, forward));
    } else if (inst.op === 'scan_out' && results.has(inst.args[0]!)) {
      let v = results.get(inst.args[0]!)![inst.attrs.index]!;
      // the result takes the scan_out's name (a backward graph may read it): a value the scan
      // passed through unchanged gets a view of that name
      const old = g.value(inst.result);
      if (!fresh.has(v)) v = new Builder(g, inst.loc).reshape(v, g.type(v).shape);
      const nv = g.value(v);
      if (nv.name) g.names.release(nv.name);
      nv.name = old.name;
      nv.temp = old.temp;
      fresh.delete(v);
      subst.set(inst.result, v);
    } else g.insts.push(inst);
  }
  for (const [from, to] of subst) g.replaceUses(from, to);
}

function unrollScan(g: Graph, inst: InstOf<'scan'>, fresh: Set<ValueId>, forward: Graph | undefined): ValueId[] {
  const p = scanParts(g, inst);
  const n = inst.attrs.length[0]!;
  if (!isStatic(n)) {
    // (g.scan draws a step's dropout masks outside the step: only a region of IR text holds state)
    const state = bodyHasState(g, inst);
    throw new CompileError(
      `g.scan over the symbolic length ${n}: this scan runs as its steps (${state ? "a region that draws dropout masks or reads the module's state, as IR text may hold, unrolls" : 'the scans of --hvp and --jvp unroll'} on every target), which needs the number of steps at build time`,
      state
        ? 'give the scanned axis a size known at build time, or draw the masks outside the region (one mask stacked over the steps, an x of the scan) and pass the state in as an operand, as g.scan does'
        : 'give the scanned axis a size known at build time, or build without --hvp and --jvp: forward, valueAndGrad and the training step run a scan as a loop at any length',
      inst.loc,
    );
  }
  const b = new Builder(g, inst.loc);
  const mark = g.values.length;
  const ins = bodyInputs(p.body);
  let carries = inst.args.slice(0, p.carries);
  const xs = inst.args.slice(p.carries, p.carries + p.xs);
  const closed = inst.args.slice(p.carries + p.xs);
  const ys: ValueId[][] = Array.from({ length: p.ys }, () => new Array<ValueId>(n as number));
  for (let s = 0; s < (n as number); s++) {
    const t = inst.attrs.reverse ? (n as number) - 1 - s : s;
    b.loc = inst.loc;
    const slices = xs.map((x, j) => storedStep(g, forward, x, inst.attrs.xaxes[j]!, t) ?? sliceAt(b, x, inst.attrs.xaxes[j]!, t));
    const outs = emitBody(g, atStep(p.body, t), [...carries, ...slices, ...closed], ins);
    carries = outs.slice(0, p.carries);
    outs.slice(p.carries).forEach((y, j) => (ys[j]![t] = y));
  }
  b.loc = inst.loc;
  const stacked = ys.map((parts, j) => {
    const axis = inst.attrs.yaxes[j]!;
    const shape = insertAxis(g.type(parts[0]!).shape, axis, 1);
    return b.emit('concat', parts.map((y) => b.reshape(y, shape)), { axis });
  });
  for (let i = mark; i < g.values.length; i++) fresh.add(g.values[i]!.id);
  return [...carries, ...stacked];
}

/**
 * In a backward graph, step t of a forward value that the forward's unrolled scan stacked (its
 * stored carries: a concat of the steps' values) is that step's forward value itself, read by
 * name: the backward's copy of the step then reads what the forward computed, and the backward
 * passes (reuse-forward) drop the recomputation the forward already did.
 */
function storedStep(g: Graph, forward: Graph | undefined, x: ValueId, axis: number, t: number): ValueId | undefined {
  const d = g.def(x);
  if (!forward || d.op !== 'fwd') return undefined;
  const fv = forward.byName(d.attrs.name);
  if (!fv) return undefined;
  const cat = forward.def(fv.id);
  if (cat.op !== 'concat' || cat.attrs.axis !== axis || cat.args.length !== g.type(x).shape[axis]) return undefined;
  const part = forward.def(cat.args[t]!);
  if (part.op !== 'reshape') return undefined;
  const src = forward.value(part.args[0]!);
  if (!sameShape(src.type.shape, dropAxis(g.type(x).shape, axis)) || src.type.dtype !== g.type(x).dtype) return undefined;
  const read = g.insts.find((i) => i.op === 'fwd' && i.attrs.name === src.name);
  if (read) return read.result;
  try {
    return g.append('fwd', [], { name: src.name }, src.type, forward.def(src.id).loc, { exact: src.name });
  } catch {
    return undefined; // the name is a backward value's: slice the stacked value instead
  }
}

function sliceAt(b: Builder, x: ValueId, axis: number, t: number): ValueId {
  const shape = b.type(x).shape;
  const starts = shape.map((_d, i) => (i === axis ? t : 0));
  const sizes = shape.map((d, i) => (i === axis ? 1 : d));
  return b.reshape(b.emit('slice', [x], { starts, sizes }), dropAxis(shape, axis));
}

/**
 * Emits a copy of a body into g (appended), its inputs bound to `args`; returns its outputs.
 * Names the body gave its values are claimed again (h, h_1, ...), as a `for` loop would name
 * them; a nested scan's region moves into g.
 */
export function emitBody(g: Graph, body: Graph, args: readonly ValueId[], ins = bodyInputs(body)): ValueId[] {
  const map = emitBodyMap(g, body, args, ins);
  return body.outputs.map((o) => map.get(o.value)!);
}

/** emitBody's copy: every body value's copy in g, by the body value. */
export function emitBodyMap(g: Graph, body: Graph, args: readonly ValueId[], ins = bodyInputs(body)): Map<ValueId, ValueId> {
  const map = new Map<ValueId, ValueId>();
  ins.forEach((i, k) => map.set(i.result, args[k]!));
  for (const inst of body.insts) {
    if (inst.op === 'input') continue;
    const v = body.value(inst.result);
    const name = v.temp || !v.name ? undefined : { raw: v.name };
    let attrs: unknown = inst.attrs;
    if (inst.op === 'scan') {
      g.bodies.push(body.bodies[inst.attrs.body]!);
      attrs = { ...inst.attrs, body: g.bodies.length - 1 };
    } else if (inst.op === 'custom_grad') {
      g.rules.push(body.rules[inst.attrs.rule]!);
      attrs = { ...inst.attrs, rule: g.rules.length - 1 };
    }
    const args2 = inst.args.map((a) => map.get(a) ?? missingArg(a));
    map.set(inst.result, (g.append as (op: string, a: readonly ValueId[], at: unknown, t: TensorType, l: Inst['loc'], n?: { raw: string }) => ValueId)(inst.op, args2, attrs, v.type, inst.loc, name));
  }
  return map;
}

function missingArg(a: ValueId): never {
  throw new Error(`internal: a scan body reads value #${a.index}, which it does not define`);
}
