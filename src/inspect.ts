// The inspection verbs: `graphc ir`, `graphc diff`, `graphc check` and `graphc graph`.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { isForwardOnly, reverseMode } from '../ir/autodiff.js';
import type { ForwardRow } from './checkforward.js';
import { forwardCheck } from './checkforward.js';
import { modelLoc } from './frontend.js';
import { CompileError } from '../ir/errors.js';
import type { LoadedModel } from './loader.js';
import { diffGraphs } from '../ir/diff.js';
import type { Graph } from '../ir/graph.js';
import { interpret } from '../ir/interp.js';
import type { NDArray } from '../ir/ndarray.js';
import { parseGraph } from '../ir/parse.js';
import { printGraph } from '../ir/print.js';
import { describePlan } from '../ir/memplan.js';
import type { InstOf, ValueId } from '../ir/types.js';
import { formatType, numel } from '../ir/types.js';
import { indexBounds } from '../codegen/module.js';
import { initialBuffers, initialParams } from '../ir/init.js';
import { compileGraphs, traceFile } from './build.js';
import { checkGraphs, float32Module, float64Code, frozenInput, importCode } from './checkmodules.js';
import type { Coord, LossSetup } from './checkfd.js';
import { finiteDifferences, lossOf, threadsFor } from './checkfd.js';
import { UsageError } from './loader.js';
import type { ValuesFile } from './values.js';
import { bindDims, withValues } from './values.js';
import type { Scope } from './scopes.js';

// ---------------------------------------------------------------------------------------------
// graphc ir

/** The stages `--after` accepts, in order, for each graph. */
export async function stages(file: string): Promise<{ forward: string[]; backward: string[] }> {
  const out = { forward: [] as string[], backward: [] as string[] };
  const seen = { forward: new Map<string, number>(), backward: new Map<string, number>() };
  compileGraphs(file, {
    afterPass: (kind, pass) => {
      const n = (seen[kind].get(pass) ?? 0) + 1;
      seen[kind].set(pass, n);
      out[kind].push(n === 1 ? pass : `${pass}#${n}`);
    },
  });
  return out;
}

/**
 * The forward (or backward) IR of a model, as the build writes it, or as it stands after the
 * stage `after` (`trace`, `reverse-mode`, or a pass name; `cse#2` is the second run of cse).
 */
export async function irText(file: string, opts: { grad?: boolean; after?: string } = {}): Promise<string> {
  const kind = opts.grad ? 'backward' : 'forward';
  if (!opts.after) {
    const { model, fwd, bwd, plan } = compileGraphs(file);
    if (opts.grad) noBackward(model, fwd);
    const g = opts.grad ? bwd : fwd;
    return printGraph(g, { preamble: describePlan(plan, g) });
  }
  const want = opts.after;
  let text: string | undefined;
  const seen = new Map<string, number>();
  const { model, fwd } = compileGraphs(file, {
    afterPass: (k, pass, g) => {
      if (k !== kind) return;
      const n = (seen.get(pass) ?? 0) + 1;
      seen.set(pass, n);
      if (want === pass ? n === 1 : want === `${pass}#${n}`) text = printGraph(g);
    },
  });
  if (opts.grad) noBackward(model, fwd);
  if (text === undefined) throw new UsageError(`graphc ir: no stage '${want}' in the ${kind} pipeline; the stages are: ${(await stages(file))[kind].join(', ')}`);
  return text;
}

/** `graphc ir --grad` of a forward-only model (no loss): it has no backward graph to print. */
function noBackward(model: LoadedModel, fwd: Graph): void {
  if (!isForwardOnly(fwd)) return;
  const outs = fwd.outputs.filter((o) => !fwd.insts.some((i) => i.op === 'buffer' && i.attrs.name === o.name)).map((o) => o.name);
  throw new CompileError(
    `--grad: the model returns no loss (its outputs: ${outs.join(', ')}), so it is forward-only and has no backward graph`,
    `graphc ir without --grad prints its forward graph; return the scalar loss too, e.g. { loss, ${outs[0]} }, to differentiate it`,
    modelLoc(model),
  );
}

// ---------------------------------------------------------------------------------------------
// graphc diff

/** The graphs an operand of `graphc diff` stands for: an IR file, a model, or a generated folder. */
export async function graphsOf(p: string): Promise<Graph[]> {
  if (!existsSync(p)) throw new UsageError(`graphc diff: no such file or folder: ${p}`);
  if (statSync(p).isDirectory()) {
    const files = readdirSync(p).filter((f) => f.endsWith('.ir')).sort();
    if (files.length === 0) throw new UsageError(`graphc diff: ${p} holds no .ir files`);
    // forward graphs before backward ones
    const graphs = files.map((f) => parseGraph(readFileSync(path.join(p, f), 'utf8'), { file: path.join(p, f) }));
    return [...graphs.filter((g) => g.kind === 'forward'), ...graphs.filter((g) => g.kind !== 'forward')];
  }
  if (p.endsWith('.ir')) return [parseGraph(readFileSync(p, 'utf8'), { file: p })];
  const { fwd, bwd } = compileGraphs(p);
  return [fwd, bwd];
}

/** The IR-aware diff of two operands; '' when they are the same. */
export async function diffText(a: string, b: string, color = false, ignoreNames = false): Promise<string> {
  const ga = await graphsOf(a);
  const gb = await graphsOf(b);
  const pairs = ga.flatMap((x) => gb.filter((y) => y.kind === x.kind).map((y) => [x, y] as const));
  if (pairs.length === 0) throw new UsageError(`graphc diff: ${a} and ${b} have no graph of the same kind (forward or backward) to compare`);
  const hunks = pairs.map(([x, y]) => diffGraphs(x, y, { color, ignoreNames })).filter((h) => h !== '');
  if (hunks.length === 0) return '';
  const bold = (s: string) => (color ? `\x1b[1m${s}\x1b[0m` : s);
  return `${bold(`--- ${a}`)}\n${bold(`+++ ${b}`)}\n${hunks.join('')}`;
}

// ---------------------------------------------------------------------------------------------
// graphc check

/** One row of graphc check's table (a param's gradient, or an output of a forward-only model). */
type CheckRow = ForwardRow;

/** Seeded random numbers (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Params from the generated `initParams(seed)` and random inputs (indices within their bounds). */
/** The size each symbolic dimension of g gets: `dims` (--dim B=32), else 3. */
export function dimSizes(g: Graph, dims: Readonly<Record<string, number>> = {}): Map<string, number> {
  const out = new Map<string, number>();
  for (const inst of g.insts)
    if (inst.op === 'input') for (const d of g.type(inst.result).shape) if (typeof d === 'string') out.set(d, dims[d] ?? out.get(d) ?? 3);
  for (const d of Object.keys(dims))
    if (!out.has(d)) throw new UsageError(`--dim ${d}: the model has no symbolic dimension ${d}${out.size ? ` (its dimensions: ${[...out.keys()].join(', ')})` : ''}`);
  return out;
}

/** "(B = 3; --dim B=N to choose)" for a model with symbolic dimensions, else ''. */
function dimNote(sizes: Map<string, number>, given: Readonly<Record<string, number>>): string {
  if (sizes.size === 0) return '';
  const used = [...sizes].map(([d, n]) => `${d} = ${n}`).join(', ');
  const unset = [...sizes.keys()].filter((d) => given[d] === undefined);
  return `symbolic dimensions bound to ${used}${unset.length ? ` (${unset.map((d) => `--dim ${d}=N`).join(' ')} to choose)` : ''}`;
}

function randomInputs(g: Graph, seed: number, sizes: Map<string, number> = new Map()): Record<string, Float32Array | Int32Array> {
  const r = rng(seed);
  const bounds = indexBounds(g);
  const inputs: Record<string, Float32Array | Int32Array> = {};
  for (const inst of g.insts) {
    if (inst.op !== 'input') continue;
    const t = g.type(inst.result);
    // a symbolic dimension gets a small size of its own (--dim, or what a values file binds)
    const n = numel(t.shape.map((d) => (typeof d === 'number' ? d : (sizes.get(d) ?? 3))));
    inputs[inst.attrs.name] =
      t.dtype === 'i32'
        ? Int32Array.from({ length: n }, () => Math.floor(r() * (bounds.get(inst.attrs.name) ?? 10)))
        : Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
  }
  return inputs;
}

/** Where the finite differences come from: the model compiled over Float64Array arrays, or the interpreter. */
export type Reference = 'compiled' | 'interpreter';

export interface CheckOptions {
  readonly seed?: number;
  readonly samples?: number;
  readonly tolerance?: number;
  readonly dims?: Readonly<Record<string, number>>;
  readonly params?: ValuesFile;
  readonly inputs?: ValuesFile;
  /** The float64 evaluation the finite differences take (default 'compiled'; both give the same numbers). */
  readonly reference?: Reference;
  /** Threads for the finite differences of the compiled reference (default: by the work, up to 8; 1: this one). */
  readonly threads?: number;
  /** Called after each coordinate. */
  readonly progress?: (p: Progress) => void;
}

/** Where a check stands: `done` of the `total` coordinates of `param`, the `index`th of `params` params. */
export interface Progress {
  readonly param: string;
  readonly index: number;
  readonly params: number;
  readonly done: number;
  readonly total: number;
}

/**
 * Checks the generated module's gradients against central finite differences in float64 (of
 * the model compiled over Float64Array arrays, or of the reference interpreter), at `samples`
 * coordinates of every param.
 */
/** Why every row fails when the loss itself is not finite at the checked point, and the fix. */
function nonFiniteNote(loss: number, inputsGiven: boolean): string {
  const why = inputsGiven ? 'at these params and inputs' : 'at these params and the random inputs (drawn from a standard normal, which may lie outside the model\'s domain: a variance below 0, a log of a negative)';
  return `(the loss is ${loss} ${why}, so no gradient can be checked: pass values the model is defined at with --inputs FILE or --params FILE)`;
}

export async function gradCheck(file: string, opts: CheckOptions = {}): Promise<{ rows: CheckRow[]; table: string }> {
  const seed = opts.seed ?? 0;
  const samples = opts.samples ?? 16;
  const tolerance = opts.tolerance ?? 1e-3;
  const reference = opts.reference ?? 'compiled';
  const c = checkGraphs(file);
  const name = c.fwd.name;
  const mod = await float32Module(file, c);
  const params = withValues(c.fwd, 'param', mod.initParams(seed), opts.params);
  // a symbolic dimension: --dim, else what the inputs file binds, else 3
  const sizes = dimSizes(c.fwd, { ...bindDims(c.fwd, opts.inputs), ...opts.dims });
  const dims = Object.fromEntries(sizes);
  const inputs = withValues(c.fwd, 'input', randomInputs(c.fwd, seed + 1, sizes), opts.inputs, dims);
  // a forward-only model (no loss): its outputs against the float64 interpreter
  if (isForwardOnly(c.fwd))
    return forwardCheck(c.fwd, mod, {
      params,
      inputs,
      seed,
      tolerance,
      notes: [
        ...(opts.params || opts.inputs ? [`(${[opts.params && `params from ${opts.params.file}`, opts.inputs && `inputs from ${opts.inputs.file}`].filter(Boolean).join(', ')}; the others from seed ${seed})`] : []),
        ...(sizes.size ? [`(${dimNote(sizes, opts.dims ?? {})})`] : []),
      ],
    });
  // a training call: the dropout masks of this seed, held fixed while the finite differences are
  // taken (the interpreter and the float64 module draw the same masks from the same seed), and
  // batch statistics
  const buffers = mod.initBuffers?.();
  const buffers64 = buffers && Object.fromEntries(Object.entries(buffers).map(([k, v]) => [k, Float64Array.from(v)]));
  // copied: the module's gradient arrays are its own, and a later call on it would overwrite them
  const at0 = mod.valueAndGrad(params, inputs, { seed, buffers });
  const grads = Object.fromEntries(Object.entries(at0.grads).map(([k, v]) => [k, v.slice()]));
  const masks = c.fwd.insts.filter((i) => i.op === 'dropout_mask').map((i) => `${c.fwd.value(i.result).name}${i.loc ? ` (${path.basename(i.loc.file)}:${i.loc.line})` : ''}`);
  const p64: Record<string, Float64Array> = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float64Array.from(v)]));
  // what stopGradient stops is held at its value for the unperturbed params (a custom gradient's
  // forward is not: its rule is what the check is for)
  const stops = c.fwd.insts.filter((i) => i.op === 'stop_gradient' && !c.customGrads.has(c.fwd.value(i.result).name));
  const stopped = stops.map((i) => c.fwd.value(i.result).name);
  const stoppedAt = stops.map((i) => `${c.fwd.value(i.result).name}${i.loc ? ` (${path.basename(i.loc.file)}:${i.loc.line})` : ''}`);
  const mode = { train: true, seed, buffers: buffers64 };
  const base = stopped.length || reference === 'interpreter' ? interpret(c.fwd, { params: p64, inputs, ...mode }) : undefined;
  const frozen = new Map(stopped.map((n) => [n, base!.get(n)!]));
  const lossName = c.fwd.value(c.fwd.outputs.find((o) => o.name === 'loss')!.value).name;
  // the coordinates: every one of a small param, else `samples` drawn at random
  const r = rng(seed + 2);
  // a frozen param (trainable: false) has no gradient to check
  const paramInsts = c.fwd.insts.filter((i): i is InstOf<'param'> => i.op === 'param' && i.attrs.frozen !== true);
  const coords: Coord[] = [];
  for (const inst of paramInsts) {
    const n = p64[inst.attrs.name]!.length;
    const idx = n <= samples ? [...Array(n).keys()] : Array.from({ length: samples }, () => Math.floor(r() * n));
    coords.push(...idx.map((i) => ({ param: inst.attrs.name, i })));
  }
  let lossAt: () => number;
  let setup: LossSetup | undefined;
  if (reference === 'interpreter') lossAt = () => interpret(c.fwd, { params: p64, inputs, frozen, ...mode }).get(lossName)!.data[0]!;
  else {
    const code = float64Code(file, c, stopped);
    const in64: Record<string, Float64Array | Int32Array> = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v instanceof Int32Array ? v : Float64Array.from(v)]));
    for (const [n, v] of frozen) in64[frozenInput(n)] = Float64Array.from(v.data);
    setup = { code, params: p64, inputs: in64, buffers: buffers64, seed };
    lossAt = lossOf(await importCode(code), setup);
  }
  // one evaluation, timed, says whether worker threads are worth starting
  let threads = 1;
  if (setup) {
    const t0 = performance.now();
    lossAt();
    threads = opts.threads ?? threadsFor(2 * coords.length, performance.now() - t0);
  }
  const total = new Map<string, number>();
  for (const x of coords) total.set(x.param, (total.get(x.param) ?? 0) + 1);
  const doneOf = new Map<string, number>();
  const order = paramInsts.map((i) => i.attrs.name);
  const fds = await finiteDifferences(coords, {
    threads,
    loss: lossAt,
    params: p64,
    setup,
    done: (k) => {
      const param = coords[k]!.param;
      doneOf.set(param, (doneOf.get(param) ?? 0) + 1);
      opts.progress?.({ param, index: order.indexOf(param), params: order.length, done: doneOf.get(param)!, total: total.get(param)! });
    },
  });
  const rows: CheckRow[] = [];
  let at = 0;
  for (const inst of paramInsts) {
    if (inst.op !== 'param') continue;
    const pname = inst.attrs.name;
    const g = grads[pname]!;
    const n = total.get(pname)!;
    const idx = coords.slice(at, at + n).map((x) => x.i);
    const fd = fds.slice(at, at + n);
    at += n;
    let maxAbs = 0;
    let scale = 1e-3;
    idx.forEach((i, k) => {
      maxAbs = Math.max(maxAbs, Math.abs(g[i]! - fd[k]!));
      scale = Math.max(scale, Math.abs(fd[k]!));
    });
    const maxRel = maxAbs / scale;
    rows.push({ param: pname, shape: formatType(c.fwd.type(inst.result)), checked: idx.length, maxAbs, maxRel, pass: maxRel <= tolerance, coords: idx, fd });
  }
  const head = ['param', 'shape', 'checked', 'max abs err', 'max rel err', ''];
  const body = rows.map((x) => [x.param, x.shape, String(x.checked), x.maxAbs.toExponential(2), x.maxRel.toExponential(2), x.pass ? 'PASS' : 'FAIL']);
  const widths = head.map((h, k) => Math.max(h.length, ...body.map((b) => b[k]!.length)));
  const fmt = (cells: string[]) => cells.map((s, k) => (k >= 2 && k <= 4 ? s.padStart(widths[k]!) : s.padEnd(widths[k]!))).join('  ').trimEnd();
  const table = [
    `gradient check of ${name}: the generated module against central finite differences of ${reference === 'compiled' ? 'the model compiled in float64' : 'the float64 interpreter'}`,
    ...(opts.params || opts.inputs ? [`(${[opts.params && `params from ${opts.params.file}`, opts.inputs && `inputs from ${opts.inputs.file}`].filter(Boolean).join(', ')}; the others from seed ${seed})`] : []),
    `(seed ${seed}; relative error = max |grad - fd| / max(max |fd|, 1e-3), PASS when at most ${tolerance})`,
    ...(sizes.size ? [`(${dimNote(sizes, opts.dims ?? {})})`] : []),
    ...(stopped.length ? [`(the finite differences hold what stopGradient stops at its value: ${stoppedAt.join(', ')})`] : []),
    ...(masks.length ? [`(a training call with seed ${seed}: the finite differences hold the dropout masks fixed: ${masks.join(', ')})`] : []),
    ...(Number.isFinite(at0.loss) ? [] : [nonFiniteNote(at0.loss, opts.inputs !== undefined)]),
    fmt(head),
    ...body.map(fmt),
  ].join('\n');
  return { rows, table: table + '\n' };
}

/**
 * A progress line for a terminal: `checking W1 (3/8 params): 12/16`, rewritten in place at most
 * every `everyMs` and cleared by `done()`; `note` shows a line of its own meanwhile.
 */
export function progressLine(write: (s: string) => void, everyMs = 100, now = () => Date.now()) {
  let last = -Infinity;
  let shown = false;
  return {
    /** A line of its own (`checking m.ts: compiling…`), until the next. */
    note(text: string): void {
      shown = true;
      write(`\r\x1b[K${text}`);
    },
    progress(p: Progress): void {
      const t = now();
      if (t - last < everyMs && p.done < p.total) return;
      last = t;
      shown = true;
      write(`\r\x1b[Kchecking ${p.param} (${p.index + 1}/${p.params} params): ${p.done}/${p.total}`);
    },
    done(): void {
      if (shown) write('\r\x1b[K');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// graphc graph

const SYMBOL: Partial<Record<string, string>> = {
  add: '+',
  sub: '−',
  mul: '×',
  div: '÷',
  neg: '−x',
  pow: 'x^y',
  square: 'x²',
  sigmoid: 'σ',
  matmul: '@',
  maximum: 'max',
  minimum: 'min',
  stop_gradient: 'stop',
  gather: 'C[X]',
};

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * A number for a label: two decimals from 0.01 up, as the DeepRob slides print them, and two
 * significant digits below (a gradient of 0.001 reads 0.0010, not 0.00).
 */
export function fmtNumber(x: number): string {
  if (x === 0 || !Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 0.01 && a < 1e4) return x.toFixed(2);
  return x.toPrecision(2);
}

/** A constant as written: at most 6 significant digits (1/9 reads 0.111111). */
export function fmtConstant(x: number): string {
  return String(Number(x.toPrecision(6)));
}

function fmtValues(a: NDArray | undefined, limit: number): string | undefined {
  if (!a) return undefined;
  if (a.data.length > limit) {
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (const x of a.data) {
      min = Math.min(min, x);
      max = Math.max(max, x);
      sum += x;
    }
    return `min ${fmtNumber(min)} mean ${fmtNumber(sum / a.data.length)} max ${fmtNumber(max)}`;
  }
  const items = Array.from(a.data, fmtNumber);
  return a.shape.length === 0 ? items[0] : `[${items.join(', ')}]`;
}

export interface GraphOptions {
  /** Label edges with forward values and gradients. */
  readonly values?: boolean;
  readonly seed?: number;
  /** Tensors of at most this many elements show their values; larger ones min/mean/max (default 3). */
  readonly maxValues?: number;
  /** The sizes of symbolic dimensions (default 3 each). */
  readonly dims?: Readonly<Record<string, number>>;
  /** Draw the optimised forward graph, fused groups as boxes, instead of the traced program. */
  readonly optimized?: boolean;
  /** Values of params and inputs from files (--params, --inputs); the others as without them. */
  readonly params?: ValuesFile;
  readonly inputs?: ValuesFile;
}

/** Graphs with more op nodes than this are laid out top to bottom (ranks as rows), others left to right. */
const WIDE = 30;
/** The widest a drawing gets, in inches (72 px each): Graphviz scales a larger one down. */
const MAX_WIDTH_IN = 40;

/**
 * The computational graph of the model as Graphviz DOT: the traced program (or with `optimized`
 * the forward graph as the build leaves it, each fused group a box), one node per op, edges
 * labelled with their shape; with values, each edge shows its forward value (green) over its
 * gradient (red), as the DeepRob slides draw the sigmoid neuron, or min/mean/max for a large tensor.
 */
export async function graphDot(file: string, opts: GraphOptions = {}): Promise<{ dot: string; note: string }> {
  const traced = opts.optimized ? undefined : traceFile(file, { scopes: true }).traced;
  const g = traced ? traced.graph : compileGraphs(file).fwd;
  const sizes = dimSizes(g, { ...bindDims(g, opts.inputs), ...opts.dims });
  const limit = opts.maxValues ?? 3;
  let vals: Map<string, NDArray> | undefined;
  let grads: Map<ValueId, NDArray> | undefined;
  if (opts.values) {
    const gradOf = new Map<ValueId, ValueId>();
    const bwd = reverseMode(g, gradOf);
    const params = withValues(g, 'param', initialParams(g, opts.seed ?? 0), opts.params);
    const dims = Object.fromEntries(sizes);
    // an evaluation, as the modules' forward: dropout off, batchnorm normalising with the
    // running statistics: the module's initBuffers() (means 0, variances 1) unless --params has them
    const inputs = withValues(g, 'input', randomInputs(g, (opts.seed ?? 0) + 1, sizes), opts.inputs, dims);
    const buffers = initialBuffers(g, dims);
    for (const name of Object.keys(buffers)) if (params[name]) buffers[name] = params[name]!;
    vals = interpret(g, { params, inputs, buffers });
    const bvals = interpret(bwd, { fwd: vals });
    grads = new Map([...gradOf].map(([v, d]) => [v, bvals.get(bwd.value(d).name)!]));
  }
  const ops = g.insts.filter((i) => !(i.op === 'const' && i.attrs.data.length === 1)).length;
  const note = dimNote(sizes, opts.dims ?? {});
  const lines = [
    'digraph graphc {',
    `  rankdir=${ops > WIDE ? 'TB' : 'LR'};`,
    ...(ops > WIDE ? [`  size="${MAX_WIDTH_IN},1000";`, '  ranksep=0.3;', '  nodesep=0.2;'] : []),
    ...(note ? [`  label="${esc(note)}";`, '  labelloc=t;', '  fontname="Helvetica";'] : []),
    '  node [fontname="Helvetica", fontsize=11];',
    '  edge [fontname="Helvetica", fontsize=10];',
  ];
  const id = (v: ValueId) => `v${v.index}`;
  const groupOf = new Map<number, number>();
  if (opts.optimized) g.groups.forEach((gr, k) => gr.insts.length > 1 && gr.insts.forEach((i) => groupOf.set(i, k)));
  const nodes = new Map<number, string[]>();
  for (const inst of g.insts) {
    const v = g.value(inst.result);
    if (inst.op === 'const' && inst.attrs.data.length === 1) continue; // shown on the edge
    const label =
      inst.op === 'param' || inst.op === 'input'
        ? `${inst.attrs.name}\\n${inst.op} ${formatType(v.type)}`
        : `${v.temp ? '' : `${v.name}\\n`}${SYMBOL[inst.op] ?? inst.op}`;
    const shape = inst.op === 'param' ? 'box' : inst.op === 'input' ? 'box, style=dashed' : inst.op === 'const' ? 'note' : 'ellipse';
    const k = groupOf.get(inst.id) ?? -1;
    nodes.set(k, [...(nodes.get(k) ?? []), `  ${id(inst.result)} [label="${esc(label)}", shape=${shape}];`]);
  }
  lines.push(...scopeClusters(nodes.get(-1) ?? [], g, traced?.scopes));
  for (const [k, list] of nodes) {
    if (k < 0) continue;
    const gr = g.groups[k]!;
    lines.push(`  subgraph cluster_g${k} {`, `    label="fused ${esc(gr.kind)} group g${k}";`, '    style=rounded;', '    color=gray40;', ...list.map((l) => `  ${l}`), '  }');
  }
  const edgeLabel = (v: ValueId) => {
    const value = fmtValues(vals?.get(g.value(v).name), limit);
    const grad = fmtValues(grads?.get(v), limit);
    if (value === undefined) return `label="${esc(formatType(g.type(v)))}"`;
    return `label=<<font color="darkgreen">${esc(value)}</font>${grad !== undefined ? `<br/><font color="red">${esc(grad)}</font>` : ''}>`;
  };
  for (const inst of g.insts)
    inst.args.forEach((a) => {
      const d = g.def(a);
      if (d.op === 'const' && d.attrs.data.length === 1) {
        const c = `c${inst.result.index}_${a.index}`;
        lines.push(`  ${c} [label="${esc(fmtConstant(d.attrs.data[0]!))}", shape=plaintext];`, `  ${c} -> ${id(inst.result)};`);
      } else lines.push(`  ${id(a)} -> ${id(inst.result)} [${edgeLabel(a)}];`);
    });
  for (const o of g.outputs) {
    lines.push(`  out_${o.value.index}_${esc(o.name).replace(/\W/g, '_')} [label="${esc(o.name)}", shape=plaintext];`);
    lines.push(`  ${id(o.value)} -> out_${o.value.index}_${esc(o.name).replace(/\W/g, '_')} [${edgeLabel(o.value)}];`);
  }
  lines.push('}');
  return { dot: lines.join('\n') + '\n', note };
}

/**
 * The nodes of the traced program in nested clusters, one per helper call and per loop
 * iteration they were made in (a box per RNN step); a scope that holds only one inner scope is
 * drawn as one box with both labels.
 */
function scopeClusters(nodeLines: readonly string[], g: Graph, scopes: ReadonlyMap<number, Scope> | undefined): string[] {
  if (!scopes || scopes.size === 0) return [...nodeLines];
  const byValue = new Map<string, number>(g.insts.map((i) => [`v${i.result.index}`, i.id]));
  const own = new Map<Scope | undefined, string[]>();
  const children = new Map<Scope | undefined, Scope[]>();
  const add = (s: Scope | undefined) => {
    if (!s || children.has(s)) return;
    children.set(s, []);
    add(s.parent);
    children.set(s.parent, [...(children.get(s.parent) ?? []), s]);
  };
  for (const l of nodeLines) {
    const id = byValue.get(/^\s*(v\d+) /.exec(l)?.[1] ?? '');
    const s = id === undefined ? undefined : scopes.get(id);
    add(s);
    own.set(s, [...(own.get(s) ?? []), l]);
  }
  const draw = (s: Scope, depth: number, labels: string[]): string[] => {
    const kids = children.get(s) ?? [];
    const mine = own.get(s) ?? [];
    if (mine.length === 0 && kids.length === 1) return draw(kids[0]!, depth, [...labels, s.label]);
    const pad = '  '.repeat(depth);
    return [
      `${pad}subgraph cluster_s${s.id} {`,
      `${pad}  label="${esc([...labels, s.label].join(' · '))}";`,
      `${pad}  style=rounded;`,
      `${pad}  color="${s.kind === 'loop' ? 'steelblue' : 'gray50'}";`,
      `${pad}  fontname="Helvetica";`,
      `${pad}  fontsize=10;`,
      ...mine.map((l) => `${pad}${l}`),
      ...kids.flatMap((k) => draw(k, depth + 1, [])),
      `${pad}}`,
    ];
  };
  return [...(own.get(undefined) ?? []), ...(children.get(undefined) ?? []).flatMap((s) => draw(s, 1, []))];
}

/** Renders DOT to SVG (Graphviz compiled to WebAssembly), or to PNG through resvg. */
export async function renderGraph(dot: string, format: 'svg' | 'png'): Promise<string | Uint8Array> {
  const { Graphviz } = await import('@hpcc-js/wasm-graphviz');
  const svg = (await Graphviz.load()).dot(dot);
  if (format === 'svg') return svg;
  const { Resvg } = await import('@resvg/resvg-js');
  return new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true } }).render().asPng();
}
