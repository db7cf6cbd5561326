// The symbolic wasm module's kernels of the kernel form (codegen/kernel/form.ts): every
// elementwise, reduction and layout group (and a conv group's epilogue) rendered once, at build
// time, by the static module's renderer (codegen/wasm/kernel.ts), its symbolic sizes, strides and
// addresses run-time values: each kernel reads them from the parameter block, an array of i32 at
// a constant address that the host fills from the layout pass's polynomials (ir/layout.ts) when a
// call brings new sizes. No probing, no fitting, no generator run at run time for these groups.

import type { Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import type { Size } from '../../ir/dims.js';
import { isStatic, sizeText } from '../../ir/dims.js';
import type { Poly } from '../../ir/layout.js';
import { polyAdd } from '../../ir/layout.js';
import type { ModuleInfo } from '../module.js';
import { commentText } from '../module.js';
import { lowerUnitOf } from '../kernel/lower.js';
import type { Body } from './encode.js';
import type { Rt, Val } from './kernel-plan.js';
import { KernelUnsupported, renderWasmKernel } from './kernel.js';
import { docOf } from './decide.js';

/** A group's kernel of the kernel form: its function's name and what it computes. */
export interface FormKernel {
  readonly name: string;
  readonly what: string;
}

export interface SymForms {
  /** The kernel of each group it renders (of a conv group: its epilogue, `epilogue` true). */
  readonly byUnit: ReadonlyMap<Unit, FormKernel & { readonly epilogue: boolean }>;
  readonly fns: readonly { readonly name: string; readonly body: Body }[];
  /** The parameter block's length (i32s). */
  readonly count: number;
  /** Its values as polynomials in the symbols, given the arrays' offsets of the final layout. */
  params(offsets: readonly Poly[]): Poly[];
}

/** A conv group's epilogue (bias, activation) as a group of its own, where it has one. */
function convEpilogue(u: Unit): Unit | undefined {
  return u.kind === 'conv' && u.insts[0]!.op === 'conv' && u.insts.length > 1 ? { ...u, kind: 'elementwise', insts: u.insts.slice(1) } : undefined;
}

/**
 * The kernels of the kernel form of `units`, where the renderer has them (the others run as the
 * static decisions' kernels or the flat module's loops: codegen/wasm/symbolic.ts). `paramAt`: the
 * parameter block's byte address; `staticAt`: a static buffer's byte offset (undefined for a
 * symbolic one, whose offset is a run-time value); `constAt`: a constant array's.
 */
export function symForms(m: ModuleInfo, units: readonly Unit[], paramAt: number, staticAt: (id: number) => number | undefined, constAt: (name: string) => number | undefined): SymForms {
  const slots = new Map<string, { v: Rt; index: number }>();
  const addresses = new Map<string, { id: number; off: Size }>();
  const param = (v: Rt): number => {
    let s = slots.get(v.key);
    if (!s) slots.set(v.key, (s = { v, index: slots.size }));
    return paramAt + 4 * s.index;
  };
  const rt = {
    address(arg: string, off: Size): Val | undefined {
      const id = m.plan.bufferOf.get(arg);
      if (id === undefined) {
        const at = constAt(arg);
        return at === undefined ? undefined : isStatic(off) ? at + 4 * off.coef : undefined;
      }
      const at = staticAt(id);
      if (at !== undefined && isStatic(off)) return at + 4 * off.coef;
      const key = `@${id}+${sizeText(off)}`;
      addresses.set(key, { id, off });
      return { key };
    },
  };
  const byUnit = new Map<Unit, FormKernel & { epilogue: boolean }>();
  const fns: { name: string; body: Body }[] = [];
  for (const u of units) {
    const part = convEpilogue(u);
    const launch = lowerUnitOf(m.plan, part ?? u).launch;
    if (launch?.kind !== 'kernel') continue;
    let body: Body;
    try {
      body = renderWasmKernel(launch, () => undefined, { rt, param }).body;
    } catch (err) {
      if (err instanceof KernelUnsupported) continue;
      throw err;
    }
    const name = `kernel_${valueName(u.graph, u.insts[u.insts.length - 1]!.result)}`;
    const what = `${commentText(docOf(m, part ?? u))}   [${launch.domain.join(',')}]${launch.axes.length ? ` reducing axes ${launch.axes.join(',')}` : ''}`;
    byUnit.set(u, { name, what, epilogue: part !== undefined });
    fns.push({ name, body });
  }
  return {
    byUnit,
    fns,
    get count() {
      return slots.size;
    },
    params: (offsets) =>
      [...slots.values()].map(({ v }) => {
        const a = addresses.get(v.key);
        if (a) return polyAdd(offsets[a.id]!, { coef: 4 * a.off.coef, syms: a.off.syms });
        if (!v.size) throw new Error(`internal: the run-time value ${v.key} is neither a size nor an address`);
        return polyAdd(v.size);
      }),
  };
}
