// The float64 reference interpreter: the oracle that tests hold generated code against.

import type { Graph } from './graph.js';
import type { NDArray } from './ndarray.js';
import { nd } from './ndarray.js';
import { OPS } from './ops.js';
import type { Inst, TensorType, ValueId } from './types.js';
import { formatType, numel } from './types.js';

export type Bindings = Readonly<Record<string, ArrayLike<number>>>;

function bound(kind: string, name: string, t: TensorType, data: ArrayLike<number> | undefined): NDArray {
  if (!data) throw new TypeError(`interpreter: missing ${kind} '${name}'`);
  if (data.length !== numel(t.shape))
    throw new RangeError(`interpreter: ${kind} '${name}' has ${data.length} elements, ${formatType(t)} needs ${numel(t.shape)}`);
  return nd(t.shape, data);
}

/**
 * Evaluates every instruction of g in float64. Sources are bound by name: `input`/`param` from
 * `inputs`/`params` (forward graphs), `fwd` from `fwd` (backward graphs).
 * Returns every value, keyed by value name.
 */
export function interpret(
  g: Graph,
  env: { params?: Bindings; inputs?: Bindings; fwd?: ReadonlyMap<string, NDArray> },
): Map<string, NDArray> {
  const vals = new Map<ValueId, NDArray>();
  const byName = new Map<string, NDArray>();
  for (const inst of g.insts) {
    const t = g.type(inst.result);
    const out = evalInst(inst, t, (i) => vals.get(inst.args[i]!)!, env);
    vals.set(inst.result, out);
    byName.set(g.value(inst.result).name, out);
  }
  return byName;
}

function evalInst(
  inst: Inst,
  t: TensorType,
  arg: (i: number) => NDArray,
  env: { params?: Bindings; inputs?: Bindings; fwd?: ReadonlyMap<string, NDArray> },
): NDArray {
  switch (inst.op) {
    case 'input':
      return bound('input', inst.attrs.name, t, env.inputs?.[inst.attrs.name]);
    case 'param':
      return bound('param', inst.attrs.name, t, env.params?.[inst.attrs.name]);
    case 'const':
      return nd(t.shape, inst.attrs.data);
    case 'fwd': {
      const v = env.fwd?.get(inst.attrs.name);
      if (!v) throw new TypeError(`interpreter: forward value '${inst.attrs.name}' is not available`);
      return v;
    }
    default: {
      const def = OPS[inst.op];
      const ev = def.eval as (a: readonly NDArray[], at: unknown, out: TensorType) => NDArray;
      return ev(
        inst.args.map((_a, i) => arg(i)),
        inst.attrs,
        t,
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
