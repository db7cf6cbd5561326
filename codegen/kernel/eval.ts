// The reference evaluator of the kernel form: runs kernels, routines and host programs over
// Float64Arrays, one point of the domain at a time. It is what proves the lowering right (the
// tests hold every stored value against the float64 interpreter of the graph IR), and the
// semantics a renderer must keep.

import type { Dim, Size } from '../../ir/dims.js';
import { bindSize, size } from '../../ir/dims.js';
import * as K from '../../ir/ndarray.js';
import type { NDArray } from '../../ir/ndarray.js';
import { OPS } from '../../ir/ops.js';
import type { ConcreteType } from '../../ir/types.js';
import type { Access, Entry, HostProgram, Kernel, Launch, Routine, Step, StepSlice, View } from './form.js';
import { ALU, REDUCE_INIT, REDUCE_STEP, argsOf, epilogueNodes, isAlu, offsetTerms } from './form.js';

export type Dims = Readonly<Record<string, number>>;
/** The array of each name. */
export type Memory = (name: string) => Float64Array;

const bind = (s: Dim | Size, dims: Dims) => bindSize(size(s), dims);

/**
 * Whether a store writes once per point of the kept axes (after the reduction), not per point of
 * the domain: it does not move along any reduced axis (an axis of extent 1 never moves, whatever
 * its stride: a keepDims result [3, 1, 1] of a max over axes 1 and 2 of [3, 1, 2]).
 */
export function storedAfterReduction(k: Kernel, strides: readonly Size[]): boolean {
  return k.axes.length > 0 && k.axes.every((a) => strides[a]!.coef === 0 || k.domain[a] === 1);
}

interface Bound {
  readonly arr: Float64Array;
  readonly strides: number[];
  readonly offset: number;
  readonly guards: { axis: number; lo: number; hi: number }[];
}

function boundAccess(a: Access, mem: Memory, dims: Dims): Bound {
  return {
    arr: mem(a.arg),
    strides: a.strides.map((s) => bind(s, dims)),
    offset: offsetTerms(a.offset).reduce((s, t) => s + bind(t, dims), 0),
    guards: (a.guards ?? []).map((g) => ({ axis: g.axis, lo: g.lo, hi: bind(g.hi, dims) })),
  };
}

function address(b: Bound, x: readonly number[]): number {
  let i = b.offset;
  for (let d = 0; d < x.length; d++) i += b.strides[d]! * x[d]!;
  return i;
}

/** Calls f at every point of a box (row-major); a box with no axes has one point. */
function forEachPoint(sizes: readonly number[], f: (x: number[]) => void): void {
  if (sizes.some((n) => n === 0)) return;
  const x = sizes.map(() => 0);
  for (;;) {
    f(x);
    let d = sizes.length - 1;
    while (d >= 0 && ++x[d]! === sizes[d]) x[d--] = 0;
    if (d < 0) return;
  }
}

/** How the evaluator computes: float64 (the reference), or f32 as a renderer does. */
export interface EvalOptions {
  /**
   * Round every f32 node's value to f32 (Math.fround: constants, loads, each primitive's result,
   * each step of an f32 accumulator): the arithmetic of an f32 target, which the decompositions
   * of codegen/kernel/decompose.ts are measured in.
   */
  readonly f32?: boolean;
}

const same = (x: number) => x;

/** Runs a kernel: stores land in the arrays of `mem`. i32 results wrap modulo 2³². */
export function evalKernel(k: Kernel, mem: Memory, dims: Dims, opts: EvalOptions = {}): void {
  const f32 = opts.f32 ? Math.fround : same;
  const n = k.domain.map((d) => bind(d, dims));
  const epi = epilogueNodes(k);
  const loads = k.nodes.map((nd) => (nd.op === 'load' ? boundAccess(nd.access, mem, dims) : undefined));
  const stores = k.stores.map((s) => ({ node: s.node, at: boundAccess(s.access, mem, dims), after: storedAfterReduction(k, s.access.strides) }));
  const vals = new Float64Array(k.nodes.length);
  const acc = new Float64Array(k.nodes.length);
  const x = n.map(() => 0);
  /** Each node's evaluation at the current point, made once (the tests run 100k-point kernels). */
  const fns = k.nodes.map((nd, i): (() => number) => {
    switch (nd.op) {
      case 'const': {
        const v = nd.dtype === 'f32' ? f32(nd.value) : nd.value;
        return () => v;
      }
      case 'load': {
        const b = loads[i]!;
        const round = nd.dtype === 'f32' ? f32 : same;
        return () => (b.guards.some((g) => x[g.axis]! < g.lo || x[g.axis]! >= g.hi) ? 0 : round(b.arr[address(b, x)]!));
      }
      case 'coord':
        return () => x[nd.axis]!;
      case 'dim':
        return () => f32(dims[nd.name]!);
      case 'reduce':
        return () => f32(acc[i]!);
      default: {
        if (!isAlu(nd.op)) throw new Error(`internal: no semantics for ${nd.op}`);
        const ev = ALU[nd.op].eval;
        const [a = 0, b = 0, c = 0] = argsOf(nd);
        const raw = [() => ev(vals[a]!), () => ev(vals[a]!, vals[b]!), () => ev(vals[a]!, vals[b]!, vals[c]!)][argsOf(nd).length - 1]!;
        if (nd.dtype === 'i32') return nd.op === 'mul' ? () => Math.imul(vals[a]!, vals[b]!) : () => raw() | 0;
        return nd.dtype === 'f32' ? () => f32(raw()) : raw;
      }
    }
  });
  const evalNode = (i: number) => fns[i]!();
  const step = k.nodes.map((nd) => (nd.op === 'reduce' && nd.acc === 'f32' ? (a: number, v: number) => f32(REDUCE_STEP[nd.red](a, v)) : nd.op === 'reduce' ? REDUCE_STEP[nd.red] : undefined));
  const pass = (epilogue: boolean) => {
    for (let i = 0; i < k.nodes.length; i++) if (epi[i] === epilogue) vals[i] = evalNode(i);
    for (const s of stores) if (s.after === epilogue) s.at.arr[address(s.at, x)] = vals[s.node]!;
  };
  const kept = n.map((_d, i) => i).filter((i) => !k.axes.includes(i));
  forEachPoint(kept.map((d) => n[d]!), (outer) => {
    kept.forEach((d, j) => (x[d] = outer[j]!));
    k.nodes.forEach((nd, i) => nd.op === 'reduce' && (acc[i] = REDUCE_INIT[nd.red]));
    forEachPoint(k.axes.map((d) => n[d]!), (inner) => {
      k.axes.forEach((d, j) => (x[d] = inner[j]!));
      pass(false);
      k.nodes.forEach((nd, i) => nd.op === 'reduce' && (acc[i] = step[i]!(acc[i]!, vals[nd.args[0]]!)));
    });
    if (k.axes.length === 0) return;
    // the epilogue reads values that do not vary along the reduced axes: evaluate them at 0 there
    k.axes.forEach((d) => (x[d] = 0));
    pass(false);
    pass(true);
  });
}

function gather(v: View, mem: Memory, dims: Dims): NDArray {
  const shape = v.shape.map((d) => bind(d, dims));
  const b = boundAccess({ arg: v.arg, strides: v.strides, offset: v.offset }, mem, dims);
  const out = K.nd(shape);
  let i = 0;
  forEachPoint(shape, (x) => (out.data[i++] = b.arr[address(b, x)]!));
  return out;
}

/** Runs a routine through the op table's float64 evaluation, then its epilogue. */
export function evalRoutine(r: Routine, mem: Memory, dims: Dims, opts: EvalOptions = {}): void {
  const args = r.inputs.map((v) => gather(v, mem, dims));
  const out: ConcreteType = { dtype: r.dtype, shape: r.output.shape.map((d) => bind(d, dims)) };
  const ev = OPS[r.op].eval as (a: readonly NDArray[], attrs: unknown, t: ConcreteType) => NDArray;
  const y = ev(args, r.attrs, out);
  const b = boundAccess({ arg: r.output.arg, strides: r.output.strides, offset: r.output.offset }, mem, dims);
  let i = 0;
  forEachPoint(out.shape, (x) => (b.arr[address(b, x)] = y.data[i++]!));
  if (r.epilogue) evalKernel(r.epilogue, mem, dims, opts);
}

/** Runs a launch (a routine's own algorithm in float64 whatever `opts` says; its epilogue as asked). */
export function evalLaunch(l: Launch, mem: Memory, dims: Dims, opts: EvalOptions = {}): void {
  if (l.kind === 'kernel') evalKernel(l, mem, dims, opts);
  else evalRoutine(l, mem, dims, opts);
}

export interface HostEnv {
  readonly params?: Readonly<Record<string, ArrayLike<number>>>;
  readonly inputs?: Readonly<Record<string, ArrayLike<number>>>;
  /**
   * Module state by stage key: buffers by name, `mode` and `dropout_mask SITE` (when absent, as
   * an evaluation call: 0 and masks of ones).
   */
  readonly state?: Readonly<Record<string, ArrayLike<number>>>;
  readonly dims?: Dims;
  /** Runs a launch in place of evalLaunch (a renderer's code). */
  readonly launch?: (l: Launch, mem: Memory, dims: Dims) => void;
  /** Evaluates the kernels in f32 arithmetic (EvalOptions), when no `launch` is given. */
  readonly f32?: boolean;
  /** Called after each launch (the tests check what it stored). */
  readonly after?: (l: Launch, mem: Memory) => void;
}

/** The memory of a host program: one Float64Array per buffer, arrays as their prefixes. */
export function memoryOf(p: HostProgram, dims: Dims): Memory {
  const buffers = new Map(p.buffers.map((b) => [b.id, new Float64Array(bind(b.size, dims))] as const));
  const arrays = new Map<string, Float64Array>();
  for (const a of p.arrays) {
    const n = bind(a.numel, dims);
    const place = a.place;
    if (place.kind === 'buffer') arrays.set(a.name, buffers.get(place.id)!.subarray(0, n));
    else if (place.kind === 'const') arrays.set(a.name, Float64Array.from(place.data));
    else arrays.set(a.name, new Float64Array(n));
  }
  return (name) => {
    const a = arrays.get(name);
    if (!a) throw new Error(`internal: the host program declares no array ${name}`);
    return a;
  };
}

/** Runs one entry point; returns what it reads back, by output name. */
export function runEntry(p: HostProgram, e: Entry, env: HostEnv, mem: Memory = memoryOf(p, env.dims ?? {})): Record<string, Float64Array> {
  const dims = env.dims ?? {};
  const out: Record<string, Float64Array> = {};
  const run = (steps: readonly Step[]): void => {
    for (const s of steps) {
      if (s.kind === 'stage') {
        const from = s.source === 'param' ? env.params : s.source === 'input' ? env.inputs : env.state;
        const data = from?.[s.key];
        const arr = mem(s.array);
        if (data) arr.set(data);
        else if (s.source === 'state' && (s.key === 'mode' || s.key.startsWith('dropout_mask '))) arr.fill(s.key === 'mode' ? 0 : 1);
        else throw new TypeError(`kernel form: missing ${s.source} '${s.key}'`);
      } else if (s.kind === 'launch') {
        if (env.launch) env.launch(s.launch, mem, dims);
        else evalLaunch(s.launch, mem, dims, { f32: env.f32 });
        env.after?.(s.launch, mem);
      } else if (s.kind === 'loop') runLoop(s, mem, dims, run);
      else out[s.output] = Float64Array.from(mem(s.array));
    }
  };
  run(e.steps);
  return out;
}

/** dst = src (a uniform constant of one element fills it). */
function put(dst: Float64Array, src: Float64Array): void {
  if (src.length === dst.length) dst.set(src);
  else if (src.length === 1) dst.fill(src[0]!);
  else throw new Error(`internal: kernel form: a copy of ${src.length} elements into ${dst.length}`);
}

/** A loop step: the host's copies around its steps, as codegen/ts/loop.ts emits them. */
function runLoop(s: Extract<Step, { kind: 'loop' }>, mem: Memory, dims: Dims, run: (steps: readonly Step[]) => void): void {
  const m = s.moves;
  const T = bind(s.length, dims);
  const geom = (x: StepSlice) => {
    const shape = x.shape.map((d) => bind(d, dims));
    return { outer: shape.slice(0, x.axis).reduce((a, b) => a * b, 1), inner: shape.slice(x.axis + 1).reduce((a, b) => a * b, 1), n: shape[x.axis]! };
  };
  for (const x of m.init) put(mem(x.to), mem(x.from));
  for (let k = 0; k < T; k++) {
    const t = s.reverse ? T - 1 - k : k;
    for (const x of m.xs) {
      const { outer, inner, n } = geom(x);
      const src = mem(x.stacked);
      const dst = mem(x.step);
      for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) dst[o * inner + i] = src.length === 1 ? src[0]! : src[(o * n + t) * inner + i]!;
    }
    run(s.steps);
    for (const y of m.ys) {
      const { outer, inner, n } = geom(y);
      const src = mem(y.step);
      const dst = mem(y.stacked);
      for (let o = 0; o < outer; o++) for (let i = 0; i < inner; i++) dst[(o * n + t) * inner + i] = src.length === 1 ? src[0]! : src[o * inner + i]!;
    }
    const next = m.carries.map((c) => Float64Array.from(mem(c.from)));
    m.carries.forEach((c, j) => put(mem(c.to), next[j]!));
  }
  for (const x of m.out) put(mem(x.to), mem(x.from));
}
