// g.scan(step, init, xs, options?): jax.lax.scan in the DSL. The step function is traced once,
// into the model's graph with placeholders for the carries and the slices of the xs; what it
// recorded is then taken out and becomes the scan's region (ir/scan.ts), the tensors it closed
// over the scan's extra operands. The scan also returns the carry that entered each step (a y
// the user does not see): the reverse pass reads those (ir/scan-grad.ts). The step holds no module
// state: the training flag stays outside (a closed-over value), batchNorm's running statistics
// become carries, and dropout's masks are drawn outside, stacked over the steps (more xs), so that
// every target runs the scan as a loop.

import { SYMBOL } from '../ir/dims.js';
import type { Dim } from '../ir/dims.js';
import { CompileError } from '../ir/errors.js';
import { Graph } from '../ir/graph.js';
import { checkScan, dropAxis, SCAN_TOKEN, scanOutType } from '../ir/scan.js';
import { checkpointScan } from '../ir/scan-checkpoint.js';
import type { Inst, InstOf, Loc, TensorType, ValueId } from '../ir/types.js';
import { formatType } from '../ir/types.js';
import { describe } from './dsl-args.js';
import type { Tensor, Tracer } from './dsl.js';
import { optionsOf } from './options.js';
import { Builder } from '../ir/builder.js';

/** Options of `g.scan`. */
export interface ScanOptions {
  /** The axis of the xs that is scanned, and along which the ys are stacked (default 0; 1 for [B, T, ...] data). */
  axis?: number;
  /** The number of steps: required when xs is null, else it must equal the xs' length along axis. */
  length?: Dim;
  /** Run from the last index to the first (the ys still in index order), as jax.lax.scan. */
  reverse?: boolean;
  /**
   * Store the carry every `checkpoint` steps (a positive integer ≤ the number of steps) instead of
   * every step: the reverse pass recomputes each segment's steps from its stored carry (about T/k
   * + k carries in memory instead of T, two more forward passes), as jax.checkpoint in a scan.
   */
  checkpoint?: number;
}

/** A carry, an x or a y of a step: a tensor, an array of tensors, or null (xs and ys). */
export type ScanTree = Tensor | readonly Tensor[] | null;

const HINT = 'g.scan(step, init, xs, { axis, length, reverse, checkpoint }) with step (carry, x) => [newCarry, y]';

/** The tensors of a tree, and how to rebuild its structure from them. */
function leaves(t: Tracer, v: unknown, what: string, nullable: boolean, loc: Loc | undefined): { ids: ValueId[]; rebuild: (ids: readonly ValueId[]) => unknown } {
  if (v === null && nullable) return { ids: [], rebuild: () => null };
  const err = () =>
    new CompileError(`g.scan: ${what} must be a tensor${nullable ? ', an array of tensors or null' : ' or an array of tensors'}, got ${describe(v)}`, HINT, loc);
  const one = (x: unknown): ValueId => {
    try {
      return t.operand(x, 'g.scan');
    } catch (e) {
      if (e instanceof CompileError) throw err();
      throw e;
    }
  };
  if (Array.isArray(v)) return { ids: v.map(one), rebuild: (ids) => ids.map((id) => tensor(t, id)) };
  return { ids: [one(v)], rebuild: (ids) => tensor(t, ids[0]!) };
}

function tensor(t: Tracer, id: ValueId): Tensor {
  return t.wrap(id);
}

/** g.scan, traced: returns [carry, ys] with the structures of init and of the step's y. */
export function traceScan(t: Tracer, step: unknown, init: unknown, xs: unknown, options: unknown): [unknown, unknown] {
  const loc = t.here();
  const g = t.graph;
  if (typeof step !== 'function') throw new CompileError(`g.scan: step must be a function (carry, x) => [carry, y], got ${describe(step)}`, HINT, loc);
  let o: ScanOptions;
  try {
    o = optionsOf('g.scan', 'g.scan', options, ['axis', 'length', 'reverse', 'checkpoint'], 'g.scan(step, h0, xs, { axis: 1 })') as ScanOptions;
  } catch (e) {
    throw e instanceof CompileError ? e.withLoc(loc) : e;
  }
  const carry = leaves(t, init, 'init', false, loc);
  const xsIn = leaves(t, xs, 'xs', true, loc);
  const axis = o.axis ?? 0;
  if (!Number.isInteger(axis)) throw new CompileError(`g.scan: axis must be an integer, got ${describe(axis)}`, 'e.g. { axis: 1 } for [B, T, ...] data', loc);
  if (o.reverse !== undefined && typeof o.reverse !== 'boolean') throw new CompileError(`g.scan: reverse must be true or false, got ${describe(o.reverse)}`, 'e.g. { reverse: true }', loc);
  const k = o.checkpoint;
  if (k !== undefined && !(typeof k === 'number' && Number.isInteger(k) && k >= 1))
    throw new CompileError(
      `g.scan: checkpoint must be a positive integer (the number of steps between stored carries), got ${describe(k)}`,
      'e.g. { checkpoint: 8 } stores the carry every 8 steps and recomputes the steps between; leave it out to store every carry',
      loc,
    );
  // the scanned axis of each x, and the number of steps
  const xaxes = xsIn.ids.map((x, j) => {
    const xt = g.type(x);
    const a = axis < 0 ? axis + xt.shape.length : axis;
    if (!(a >= 0 && a < xt.shape.length))
      throw new CompileError(`g.scan: axis ${axis} is not an axis of xs${xsIn.ids.length > 1 ? `[${j}]` : ''} (${formatType(xt)})`, `use an axis in 0..${xt.shape.length - 1}, or -1 for the last`, loc);
    return a;
  });
  let length: Dim | undefined = o.length;
  if (length !== undefined && !((Number.isInteger(length) && (length as number) >= 0) || (typeof length === 'string' && SYMBOL.test(length))))
    throw new CompileError(`g.scan: length must be a non-negative integer or a symbolic dimension's name, got ${describe(length)}`, 'e.g. { length: 16 } or { length: \'T\' }', loc);
  xsIn.ids.forEach((x, j) => {
    const n = g.type(x).shape[xaxes[j]!]!;
    if (length === undefined) length = n;
    else if (n !== length) {
      const first = o.length !== undefined ? `the length ${length} given in the options` : `xs[0] has ${length}`;
      throw new CompileError(
        `g.scan: xs[${j}] (${formatType(g.type(x))}) has ${n} steps along axis ${xaxes[j]}, but ${first}`,
        `give every x the same length along the scanned axis (or scan another axis with { axis })`,
        loc,
      );
    }
  });
  if (length === undefined) throw new CompileError('g.scan: xs is null, so the number of steps is not known', 'pass it in the options: g.scan(step, init, null, { length: 16 })', loc);
  if (length === 0)
    throw new CompileError(
      `g.scan: the scan has 0 steps${o.length !== undefined ? ' (length: 0)' : ' (the xs are empty along the scanned axis)'}`,
      'a scan needs at least one step: give a length ≥ 1 (or xs with at least one slice along axis), or skip the scan and use init as the carry',
      loc,
    );
  if (k !== undefined && k > 1 && typeof length !== 'number')
    throw new CompileError(
      `g.scan: checkpoint needs the number of steps at build time, but the scan runs over the symbolic length ${length}`,
      'give the scanned axis a size known at build time, or leave checkpoint out (every carry is stored)',
      loc,
    );
  if (k !== undefined && typeof length === 'number' && k > length)
    throw new CompileError(
      `g.scan: checkpoint ${k} is more than the scan's ${length} steps`,
      `give a checkpoint from 1 to ${length} (${length} stores only the first carry and recomputes every step)`,
      loc,
    );
  if (carry.ids.length + xsIn.ids.length === 0) throw new CompileError('g.scan: there is no carry and no xs: nothing to scan', HINT, loc);

  // trace the step once, on placeholders
  const start = g.insts.length;
  const updatesFrom = t.bufferUpdates.length;
  const carryTypes = carry.ids.map((c) => g.type(c));
  const holders = [...carry.ids.map((c) => g.type(c)), ...xsIn.ids.map((x, j) => slice(g.type(x), xaxes[j]!))].map((ty) => g.append('fwd', [], { name: 'scan' }, ty, loc));
  const out = (step as (c: unknown, x: unknown) => unknown)(carry.rebuild(holders.slice(0, carry.ids.length)), xsIn.rebuild(holders.slice(carry.ids.length)));
  const recorded = g.insts.slice(start);
  const fail = (msg: string, fix: string): never => {
    g.remove(new Set(recorded.map((i) => i.id)));
    throw new CompileError(`g.scan: ${msg}`, fix, loc);
  };
  if (!Array.isArray(out) || out.length !== 2) fail(`the step must return [carry, y], got ${describe(out)}`, 'return the new carry and this step\'s y (null for none): (c, x) => [c2, y]');
  const [c2, y] = out as unknown[];
  let newCarry: ValueId[] = [];
  let ys: ReturnType<typeof leaves> = { ids: [], rebuild: () => null };
  try {
    newCarry = leaves(t, c2, 'the carry the step returns', false, loc).ids;
    ys = leaves(t, y, 'the y the step returns', true, loc);
  } catch (e) {
    if (e instanceof CompileError) fail(e.message.replace(/^g\.scan: /, ''), e.hint ?? HINT);
    throw e;
  }
  if (newCarry.length !== carry.ids.length || (Array.isArray(init) !== Array.isArray(c2)))
    fail(`the step returns ${Array.isArray(c2) ? `${newCarry.length} carries` : 'one carry'} but init has ${Array.isArray(init) ? carry.ids.length : 'one tensor'}`, 'return a carry of the same structure as init');
  newCarry.forEach((c, k) => {
    const want = carryTypes[k]!;
    const got = g.type(c);
    if (got.dtype !== want.dtype || got.shape.length !== want.shape.length || got.shape.some((d, i) => d !== want.shape[i]))
      fail(
        `the step changes the carry${carry.ids.length > 1 ? ` [${k}]` : ''} from ${formatType(want)} to ${formatType(got)}`,
        'a carry keeps its shape and dtype from step to step: return a tensor shaped like init (reshape or reduce the new value)',
      );
  });
  const bad = recorded.find((i) => i.op === 'param' || i.op === 'input');
  if (bad) {
    g.remove(new Set(recorded.map((i) => i.id)));
    throw new CompileError(
      `g.scan: the step calls g.${bad.op}, which a scan step cannot hold yet`,
      `declare the ${bad.op} outside the step and use it in it (the step closes over it)`,
      bad.loc ?? loc,
    );
  }
  // batchNorm's running statistics: carries of their own, after the user's
  const bn = bufferCarries(t, recorded, updatesFrom, loc);
  const nc = carry.ids.length + bn.inits.length;
  const inits = [...carry.ids, ...bn.inits];
  // dropout's masks: one stacked mask per site, drawn outside the step, more xs of the scan
  const dm = stackedMasks(g, bn.recorded, length, loc);
  const allHolders = [...holders.slice(0, carry.ids.length), ...bn.holders, ...holders.slice(carry.ids.length), ...dm.holders];

  // the region: the recorded instructions, without the placeholders, in a graph of their own
  const { body, closed } = region(g, dm.recorded, allHolders, [...newCarry, ...bn.next, ...ys.ids, ...allHolders.slice(0, nc)], nc);
  g.remove(new Set(dm.recorded.map((i) => i.id)));
  g.bodies.push(body);
  const yaxes = [...ys.ids.map((v) => (axis < 0 ? axis + g.type(v).shape.length + 1 : axis)), ...inits.map(() => 0)];
  const attrs = { body: g.bodies.length - 1, carries: nc, length: [length], xaxes: [...xaxes, ...dm.masks.map(() => 0)], yaxes, ...(o.reverse ? { reverse: true as const } : {}) };
  const token = g.append('scan', [...inits, ...xsIn.ids, ...dm.masks, ...closed], attrs, SCAN_TOKEN, loc);
  const inst = g.def(token) as InstOf<'scan'>;
  const bad2 = checkScan(g, inst);
  if (bad2) {
    const yBad = yaxes.findIndex((a, j) => j < ys.ids.length && !(a >= 0 && a <= g.type(ys.ids[j]!).shape.length));
    throw new CompileError(
      yBad >= 0 ? `g.scan: the step's y${ys.ids.length > 1 ? `[${yBad}]` : ''} cannot be stacked along axis ${axis}` : `g.scan: ${bad2}`,
      yBad >= 0 ? 'a y is stacked along the scanned axis: return a y with at least that many axes, or scan another axis' : HINT,
      loc,
    );
  }
  let results: ValueId[];
  if (k !== undefined && k > 1) results = checkpointScan(g, inst, k); // stored every k steps: nested scans (ir/scan-checkpoint.ts)
  else {
    results = [...inits, ...ys.ids].map((_v, k) => g.append('scan_out', [token], { index: k }, scanOutType(g, inst, k), loc));
    // the carries that entered each step: read by the reverse pass, named after the scan's carries
    inits.forEach((_c, k) => g.append('scan_out', [token], { index: nc + ys.ids.length + k }, scanOutType(g, inst, nc + ys.ids.length + k), loc, { raw: `scan_carries` }));
  }
  // the running statistics the scan leaves are the model's next ones
  bn.updates.forEach((u, q) => (u.value = results[carry.ids.length + q]!));
  return [carry.rebuild(results.slice(0, newCarry.length)), ys.rebuild(results.slice(nc))];
}

/**
 * batchNorm with running statistics in the step: each buffer it reads becomes a carry of the scan,
 * so that step t normalises with (in evaluation) and updates (in training) the statistics that
 * steps 0..t-1 left, as successive calls outside a scan would; evaluation keeps them as they are.
 * The buffer stays outside the step, the initial carry; the step reads the carry through
 * stop_gradient (no gradient flows into running statistics, as outside). Returns the carries'
 * inits, placeholders and new values, the updates to point at the scan's results, and the
 * instructions to make the region of (the placeholders first, the buffers and the training flag
 * left out).
 */
function bufferCarries(t: Tracer, recorded: readonly Inst[], updatesFrom: number, loc: Loc | undefined) {
  const g = t.graph;
  const bufs = recorded.filter((i): i is InstOf<'buffer'> => i.op === 'buffer');
  // the training flag is the call's: it stays outside, a value the step closes over
  const skip = new Set([...bufs, ...recorded.filter((i) => i.op === 'mode')].map((i) => i.id));
  const none = { inits: [] as ValueId[], holders: [] as ValueId[], next: [] as ValueId[], updates: [] as { name: string; value: ValueId }[], recorded: recorded.filter((i) => !skip.has(i.id)) };
  if (bufs.length === 0) return none;
  const b = new Builder(g, loc);
  const mode = recorded.find((i) => i.op === 'mode')?.result ?? b.mode();
  const mark = g.insts.length;
  const holders = bufs.map((i) => g.append('fwd', [], { name: 'scan' }, g.type(i.result), loc));
  bufs.forEach((i, q) => g.replaceUses(i.result, b.stopGradient(holders[q]!)));
  const first = g.insts.slice(mark);
  const updates = bufs.map((i) => t.bufferUpdates.slice(updatesFrom).find((u) => u.name === i.attrs.name) ?? noUpdate(i.attrs.name));
  const mark2 = g.insts.length;
  const next = bufs.map((_i, q) => b.stopGradient(b.select(mode, updates[q]!.value, holders[q]!)));
  // (replaceUses made new instructions of the readers: the current ones, by id)
  const rest = recorded.filter((i) => !skip.has(i.id)).map((i) => g.inst(i.id));
  return { inits: bufs.map((i) => i.result), holders, next, updates, recorded: [...first, ...rest, ...g.insts.slice(mark2)] };
}

/**
 * dropout in the step: each mask the step draws (a nested scan's stacked mask included) leaves the
 * step and is drawn once, outside it, stacked along a new first axis of the scan's length, from
 * the same site; the step reads its slice, as an x of the scan. So every step gets a mask of its
 * own (slice t: elements t·n .. t·n + n − 1 of the site's counter-based stream, ir/random.ts),
 * the host draws it before the forward pass at the call's length (a symbolic one too), and the
 * scan stays a loop; the reverse scan reads the same slices, and a checkpointed scan's recomputed
 * segments too. Returns the stacked masks, the placeholders the step reads instead, and the
 * instructions to make the region of (the placeholders in, the masks out).
 */
function stackedMasks(g: Graph, recorded: readonly Inst[], length: Dim, loc: Loc | undefined): { masks: ValueId[]; holders: ValueId[]; recorded: Inst[] } {
  const drawn = recorded.filter((i): i is InstOf<'dropout_mask'> => i.op === 'dropout_mask');
  if (drawn.length === 0) return { masks: [], holders: [], recorded: [...recorded] };
  const mark = g.insts.length;
  const holders = drawn.map((i) => g.append('fwd', [], { name: 'scan' }, g.type(i.result), loc));
  drawn.forEach((i, q) => g.replaceUses(i.result, holders[q]!));
  const first = g.insts.slice(mark);
  const names = drawn.map((i) => g.value(i.result).name);
  const gone = new Set(drawn.map((i) => i.id));
  // (replaceUses made new instructions of the readers: the current ones, by id)
  const rest = recorded.filter((i) => !gone.has(i.id)).map((i) => g.inst(i.id));
  g.remove(gone);
  const b = new Builder(g, loc);
  const masks = drawn.map((i, q) => {
    b.loc = i.loc ?? loc;
    return b.dropoutMask(i.attrs.p, i.attrs.site, [length, ...g.type(holders[q]!).shape], { raw: names[q] || 'dropout_mask' });
  });
  b.loc = loc;
  return { masks, holders, recorded: [...first, ...rest] };
}

function noUpdate(name: string): never {
  throw new Error(`internal: the scan step reads the buffer '${name}' but does not update it`);
}

function slice(t: TensorType, axis: number): TensorType {
  return { dtype: t.dtype, shape: dropAxis(t.shape, axis) };
}

/**
 * The body graph of a traced step: inputs for the carries and the slices (the placeholders), then
 * for each value from outside the step that it reads (the closed-over values, in order of first
 * use); then the recorded instructions; its outputs are `outs`. A nested scan's region moves in.
 */
function region(g: Graph, recorded: readonly Inst[], holders: readonly ValueId[], outs: readonly ValueId[], carries: number): { body: Graph; closed: ValueId[] } {
  const inside = new Set(recorded.map((i) => i.result));
  const closed: ValueId[] = [];
  const note = (a: ValueId) => {
    if (!inside.has(a) && !closed.includes(a)) closed.push(a);
  };
  for (const i of recorded) i.args.forEach(note);
  outs.forEach(note);
  const body = new Graph(`${g.name}_scan${g.bodies.length}`, 'forward');
  const map = new Map<ValueId, ValueId>();
  const input = (v: ValueId, raw: string) => {
    const name = body.names.claim(raw);
    body.names.release(name);
    map.set(v, body.append('input', [], { name }, g.type(v), g.def(v).loc, { exact: name }));
  };
  holders.forEach((h, k) => input(h, k < carries ? `c${k}` : `x${k - carries}`));
  closed.forEach((v) => input(v, g.value(v).temp || !g.value(v).name ? 'k' : g.value(v).name));
  const holderSet = new Set(holders);
  for (const inst of recorded) {
    if (holderSet.has(inst.result)) continue;
    const v = g.value(inst.result);
    let attrs: unknown = inst.attrs;
    if (inst.op === 'scan') {
      body.bodies.push(g.bodies[inst.attrs.body]!);
      attrs = { ...inst.attrs, body: body.bodies.length - 1 };
    } else if (inst.op === 'custom_grad') {
      // a g.customGrad in the step: its rule moves into the region with it
      body.rules.push(g.rules[inst.attrs.rule]!);
      attrs = { ...inst.attrs, rule: body.rules.length - 1 };
    }
    const append = body.append as (op: string, a: readonly ValueId[], at: unknown, ty: TensorType, l: Loc | undefined, n?: { raw: string }) => ValueId;
    map.set(inst.result, append.call(body, inst.op, inst.args.map((a) => map.get(a)!), attrs, v.type, inst.loc, v.temp || !v.name ? undefined : { raw: v.name }));
  }
  const nY = outs.length - 2 * carries;
  outs.forEach((v, k) => body.outputs.push({ name: k < carries ? `c${k}` : k < carries + nY ? `y${k - carries}` : `s${k - carries - nY}`, value: map.get(v)! }));
  body.numberTemps();
  return { body, closed };
}
