// The float64 reference interpreter: the oracle that tests hold generated code against.

import { bindShape, isSymbol } from './dims.js';
import type { Graph } from './graph.js';
import type { NDArray } from './ndarray.js';
import { nd } from './ndarray.js';
import { OPS } from './ops.js';
import type { ConcreteType, Inst, TensorType, ValueId } from './types.js';
import { formatType } from './types.js';

export type Bindings = Readonly<Record<string, ArrayLike<number>>>;

export interface Env {
  readonly params?: Bindings;
  readonly inputs?: Bindings;
  readonly fwd?: ReadonlyMap<string, NDArray>;
  /** Sizes of symbolic dimensions; the others are bound from the data the graph reads. */
  readonly dims?: Readonly<Record<string, number>>;
}

/**
 * Binds the symbolic dimensions of g from what it reads: the lengths of its inputs (a symbol is
 * bound by an input in which it is the only unbound one) and the shapes of forward values.
 */
export function bindDims(g: Graph, env: Env): Record<string, number> {
  const dims: Record<string, number> = { ...env.dims };
  const reads: [string, TensorType, ArrayLike<number> | NDArray | undefined][] = [];
  for (const inst of g.insts) {
    const t = g.type(inst.result);
    if (inst.op === 'input') reads.push([`input '${inst.attrs.name}'`, t, env.inputs?.[inst.attrs.name]]);
    if (inst.op === 'param') reads.push([`param '${inst.attrs.name}'`, t, env.params?.[inst.attrs.name]]);
    if (inst.op === 'fwd') reads.push([`forward value '${inst.attrs.name}'`, t, env.fwd?.get(inst.attrs.name)]);
  }
  for (let progress = true; progress; ) {
    progress = false;
    for (const [what, t, data] of reads) {
      if (!data) continue;
      if ('shape' in data && 'data' in data) {
        t.shape.forEach((d, i) => {
          if (isSymbol(d) && dims[d] === undefined) {
            dims[d] = (data as NDArray).shape[i]!;
            progress = true;
          }
        });
        continue;
      }
      const unbound = [...new Set(t.shape.filter((d) => isSymbol(d) && dims[d] === undefined))] as string[];
      if (unbound.length !== 1) continue;
      const rest = t.shape.filter((d) => d !== unbound[0]).map((d) => (isSymbol(d) ? dims[d]! : d));
      const per = rest.reduce((a, b) => a * b, 1) * t.shape.filter((d) => d === unbound[0]).length;
      const n = (data as ArrayLike<number>).length / per;
      if (!Number.isInteger(n)) throw new RangeError(`interpreter: ${what} has ${(data as ArrayLike<number>).length} elements, not a multiple of ${per} (${formatType(t)})`);
      dims[unbound[0]!] = n;
      progress = true;
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
export function interpret(g: Graph, env: Env): Map<string, NDArray> {
  const dims = bindDims(g, env);
  const vals = new Map<ValueId, NDArray>();
  const byName = new Map<string, NDArray>();
  for (const inst of g.insts) {
    const out = evalInst(inst, g.type(inst.result), dims, (i) => vals.get(inst.args[i]!)!, env);
    vals.set(inst.result, out);
    byName.set(g.value(inst.result).name, out);
  }
  return byName;
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

/** Forward outputs by output name. */
export function outputsOf(g: Graph, values: Map<string, NDArray>): Record<string, NDArray> {
  const out: Record<string, NDArray> = {};
  for (const o of g.outputs) out[o.name] = values.get(g.value(o.value).name)!;
  return out;
}
