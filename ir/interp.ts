// The float64 reference interpreter: the oracle that tests hold generated code against.

import { bindShape, bindSize, dimBindings, size } from './dims.js';
import type { Graph } from './graph.js';
import type { NDArray } from './ndarray.js';
import { nd, reduce } from './ndarray.js';
import { OPS } from './ops.js';
import { dropoutMask, validSeed } from './random.js';
import type { ConcreteType, Inst, InstOf, TensorType, ValueId } from './types.js';
import { bodyInputs, boundLength, scanOutType, scanParts, stackAlong, stepSite, takeAlong } from './scan.js';
import { formatType } from './types.js';

export type Bindings = Readonly<Record<string, ArrayLike<number>>>;

/** The values of an evaluation by value name, and the sizes its symbolic dimensions were bound to. */
export type Values = Map<string, NDArray> & { readonly dims?: Readonly<Record<string, number>> };

export interface Env {
  readonly params?: Bindings;
  readonly inputs?: Bindings;
  /** The forward values a backward graph reads (an evaluation's `Values`: its bound sizes too). */
  readonly fwd?: ReadonlyMap<string, NDArray> & { readonly dims?: Readonly<Record<string, number>> };
  /** Sizes of symbolic dimensions; the others are bound from the data the graph reads. */
  readonly dims?: Readonly<Record<string, number>>;
  /**
   * Results of `stop_gradient` by value name, taken as they are instead of computed: held fixed,
   * they make the graph the function whose derivative the backward pass computes (what finite
   * differences must perturb).
   */
  readonly frozen?: ReadonlyMap<string, NDArray>;
  /**
   * Round every value to float32 after each instruction: what a float32 evaluation of the same
   * graph gives (the yardstick for gradients that float32 cannot compute better, e.g. ones that
   * cancel to zero).
   */
  readonly float32?: boolean;
  /**
   * With float32: a sum also adds its terms in float32, one after another, as the wasm module's
   * SIMD kernels do for sums of up to a few hundred terms (docs/wasm.md), where the other
   * evaluations add in float64 and round once (the yardstick of a target's float32 sums).
   */
  readonly float32Sums?: boolean;
  /**
   * A training evaluation (default false: evaluation, as the modules' `forward`): the mode flag
   * is 1 and dropout masks are drawn from `seed` (ir/random.ts), else 0 and masks of ones.
   */
  readonly train?: boolean;
  readonly seed?: number;
  /** The module buffers by name (batchnorm's running statistics). */
  readonly buffers?: Bindings;
  /** Inside a scan's body: the dropout site a mask of the body draws at this step (ir/scan.ts stepSite). */
  readonly siteOf?: (site: number) => number;
}

/**
 * Binds the symbolic dimensions of g from what it reads: a forward graph from the lengths of its
 * inputs, in the order the generated modules bind them (dimBindings), a backward graph from the
 * shapes of the forward values it reads.
 */
export function bindDims(g: Graph, env: Env): Record<string, number> {
  const dims: Record<string, number> = { ...env.fwd?.dims, ...env.dims };
  for (const [d, { input, per }] of dimBindings(g)) {
    const data = env.inputs?.[input];
    if (!data || d in dims) continue;
    const n = data.length / bindSize(per, dims);
    if (!Number.isInteger(n)) throw new RangeError(`interpreter: input '${input}' has ${data.length} elements, which is not ${d} × ${bindSize(per, dims)}`);
    dims[d] = n;
  }
  // the forward values a backward graph reads: a symbol, or a product of symbols with one not
  // bound yet (the rows B*64 bind B; B*T binds T once B is bound)
  for (let progress = true; progress; ) {
    progress = false;
    for (const inst of g.insts) {
      const v = inst.op === 'fwd' ? env.fwd?.get(inst.attrs.name) : undefined;
      if (!v) continue;
      g.type(inst.result).shape.forEach((d, i) => {
        if (typeof d !== 'string') return;
        const s = size(d);
        const open = s.syms.filter((x) => dims[x] === undefined);
        if (open.length !== 1 || s.syms.filter((x) => x === open[0]).length !== 1) return;
        const n = v.shape[i]! / bindSize({ coef: s.coef, syms: s.syms.filter((x) => x !== open[0]) }, dims);
        if (!Number.isInteger(n)) throw new RangeError(`interpreter: forward value '${g.value(inst.result).name}' has ${v.shape[i]} along ${d}, which binds no whole ${open[0]}`);
        dims[open[0]!] = n;
        progress = true;
      });
    }
  }
  return dims;
}

function concrete(t: TensorType, dims: Readonly<Record<string, number>>): ConcreteType {
  return { dtype: t.dtype, shape: bindShape(t.shape, dims) };
}

function bound(kind: string, name: string, t: TensorType, dims: Readonly<Record<string, number>>, data: ArrayLike<number> | undefined): NDArray {
  if (!data) throw new TypeError(`interpreter: missing ${kind} '${name}'`);
  const shape = bindShape(t.shape, dims);
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new RangeError(`interpreter: ${kind} '${name}' has ${data.length} elements, ${formatType(t)} needs ${n}`);
  return nd(shape, data);
}

/**
 * Evaluates every instruction of g in float64. Sources are bound by name: `input`/`param` from
 * `inputs`/`params` (forward graphs), `fwd` from `fwd` (backward graphs); symbolic dimensions
 * from what they read (see bindDims). Returns every value, keyed by value name.
 */
export function interpret(g: Graph, env: Env): Values {
  const dims = bindDims(g, env);
  const vals = new Map<ValueId, NDArray>();
  const byName = new Map<string, NDArray>();
  const regions = new Map<ValueId, NDArray[]>();
  for (const inst of g.insts) {
    const name = g.value(inst.result).name;
    const held = inst.op === 'stop_gradient' ? env.frozen?.get(name) : undefined;
    if (inst.op === 'scan') regions.set(inst.result, evalScan(g, inst, inst.args.map((a) => vals.get(a)!), dims, env));
    const exact =
      held ??
      (inst.op === 'scan' ? nd([0]) : undefined) ??
      (inst.op === 'scan_out' ? regions.get(inst.args[0]!)![inst.attrs.index]! : undefined) ??
      (env.float32 && env.float32Sums && inst.op === 'sum'
        ? reduce(vals.get(inst.args[0]!)!, inst.attrs.axes, bindShape(g.type(inst.result).shape, dims), 0, (acc, v) => Math.fround(acc + v))
        : evalInst(inst, g.type(inst.result), dims, (i) => vals.get(inst.args[i]!)!, env));
    const out = env.float32 ? nd(exact.shape, exact.data.map(Math.fround)) : exact;
    vals.set(inst.result, out);
    byName.set(name, out);
  }
  return Object.assign(byName, { dims });
}

function evalInst(inst: Inst, t: TensorType, dims: Readonly<Record<string, number>>, arg: (i: number) => NDArray, env: Env): NDArray {
  switch (inst.op) {
    case 'input':
      return bound('input', inst.attrs.name, t, dims, env.inputs?.[inst.attrs.name]);
    case 'param':
      return bound('param', inst.attrs.name, t, dims, env.params?.[inst.attrs.name]);
    case 'const':
      return nd(concrete(t, dims).shape, inst.attrs.data);
    case 'dim': {
      const v = dims[inst.attrs.name];
      if (v === undefined) throw new TypeError(`interpreter: dimension '${inst.attrs.name}' is not bound`);
      return nd([], [v]);
    }
    case 'buffer':
      return bound('buffer', inst.attrs.name, t, dims, env.buffers?.[inst.attrs.name]);
    case 'mode':
      return nd([], [env.train ? 1 : 0]);
    case 'dropout_mask': {
      const shape = concrete(t, dims).shape;
      const n = shape.reduce((a, b) => a * b, 1);
      if (!env.train) return nd(shape, new Float64Array(n).fill(1));
      if (!validSeed(env.seed)) throw new TypeError(`interpreter: a training evaluation of dropout needs an integer seed, got ${env.seed}`);
      return nd(shape, dropoutMask(n, inst.attrs.p, env.seed, env.siteOf ? env.siteOf(inst.attrs.site) : inst.attrs.site));
    }
    case 'fwd': {
      const v = env.fwd?.get(inst.attrs.name);
      if (!v) throw new TypeError(`interpreter: forward value '${inst.attrs.name}' is not available`);
      return v;
    }
    default: {
      const def = OPS[inst.op];
      const ev = def.eval as (a: readonly NDArray[], at: unknown, out: ConcreteType) => NDArray;
      return ev(
        inst.args.map((_a, i) => arg(i)),
        inst.attrs,
        concrete(t, dims),
      );
    }
  }
}

/**
 * A scan, step by step: each step evaluates the body with the carries, the slices of the xs and
 * the closed-over values bound to its inputs; returns the final carries, then the ys stacked
 * along their axes in index order (a reverse scan runs from the last index).
 */
function evalScan(g: Graph, inst: InstOf<'scan'>, args: readonly NDArray[], dims: Readonly<Record<string, number>>, env: Env): NDArray[] {
  const p = scanParts(g, inst);
  const n = boundLength(inst, dims);
  const ins = bodyInputs(p.body);
  let carries = args.slice(0, p.carries);
  const xs = args.slice(p.carries, p.carries + p.xs);
  const closed = args.slice(p.carries + p.xs);
  const ys: NDArray[][] = Array.from({ length: p.ys }, () => new Array<NDArray>(n));
  for (let s = 0; s < n; s++) {
    const t = inst.attrs.reverse ? n - 1 - s : s;
    const bound = [...carries, ...xs.map((x, j) => takeAlong(x, inst.attrs.xaxes[j]!, t)), ...closed];
    const inputs: Record<string, Float64Array> = {};
    ins.forEach((i, k) => (inputs[i.attrs.name] = bound[k]!.data));
    const outer = env.siteOf;
    const siteOf = (site: number) => stepSite(outer ? outer(site) : site, t);
    const vals = interpret(p.body, { dims, inputs, train: env.train, seed: env.seed, float32: env.float32, float32Sums: env.float32Sums, siteOf });
    const outs = p.body.outputs.map((o) => vals.get(p.body.value(o.value).name)!);
    carries = outs.slice(0, p.carries);
    outs.slice(p.carries).forEach((y, j) => (ys[j]![t] = y));
  }
  const stacked = ys.map((parts, j) => (n > 0 ? stackAlong(parts, inst.attrs.yaxes[j]!, parts[0]!.shape) : nd(bindShape(scanOutType(g, inst, p.carries + j).shape, dims))));
  return [...carries, ...stacked];
}

/** Forward outputs by output name. */
export function outputsOf(g: Graph, values: Map<string, NDArray>): Record<string, NDArray> {
  const out: Record<string, NDArray> = {};
  for (const o of g.outputs) out[o.name] = values.get(g.value(o.value).name)!;
  return out;
}
