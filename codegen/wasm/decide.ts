// Which groups of the flat module run as wasm kernels, and with what: each decision reads a unit of
// the memory plan (a matmul group, an elementwise group, a reduction, a convolution, a pooling) and
// the addresses of its arrays, and gives the kernel's description (codegen/wasm/*.ts encode it), or
// undefined where a part has no SIMD form here (the flat module's code runs it).

import type { Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import { numelSize } from '../../ir/dims.js';
import type { InstOf, ValueId } from '../../ir/types.js';
import { formula } from '../formula.js';
import type { ModuleInfo } from '../module.js';
import type { MatmulKernel } from './matmul.js';
import type { ConvKernel } from './conv.js';
import type { PoolKernel, StaticPoolKernel } from './pool.js';
import { isPool, poolKernel, poolOperands } from './pool.js';
import type { Address } from './layout.js';
import { convOperands } from '../../ir/conv.js';


/** How a matmul group is run. */
export interface MatmulDecision {
  readonly kind: 'matmul';
  readonly kernel: Omit<MatmulKernel, 'c' | 'pack'>;
  /** The product is stored in its own buffer (else in the scratch area when the epilogue is JS). */
  readonly productStored: boolean;
  /** The epilogue runs in the kernel (the caller's TileEpilogue), or there is none; else it is a kernel of its own after it. */
  readonly fusedEpilogue: boolean;
  readonly doc: string;
}

/** The optimizer update of the params whose arrays are in the memory (--optimizer). */
export interface UpdateDecision {
  readonly kind: 'update';
  readonly params: number;
  readonly doc: string;
}

/** A convolution or one of its gradients as an implicit GEMM (im2col and the matmul kernel). */
export interface ConvDecision {
  readonly kind: 'conv';
  readonly kernel: Omit<ConvKernel, 'scratch'>;
  readonly doc: string;
}

/** A pooling op or its gradient as a kernel. */
export interface PoolDecision {
  readonly kind: 'pool';
  readonly kernel: StaticPoolKernel;
  readonly doc: string;
}

export type Decision = ConvDecision | PoolDecision | MatmulDecision | UpdateDecision;

/** How to run a matmul group, or undefined for the flat module's loops (an operand outside the memory). */
export function decideMatmul(m: ModuleInfo, u: Unit, address: Address): MatmulDecision | undefined {
  const g = u.graph;
  const mm = u.insts[0] as InstOf<'matmul'>;
  const [A, B] = mm.args as [ValueId, ValueId];
  const a = address(g, A);
  const b = address(g, B);
  if (a === undefined || b === undefined) return undefined;
  const ta = g.type(A).shape as number[];
  const tb = g.type(B).shape as number[];
  const out = g.type(mm.result).shape as number[];
  const { transA, transB } = mm.attrs;
  const batch = numelSize(out.slice(0, -2)).coef;
  return {
    kind: 'matmul',
    kernel: {
      name: '',
      M: out.at(-2)!,
      N: out.at(-1)!,
      K: transA ? ta.at(-2)! : ta.at(-1)!,
      batch,
      transA,
      transB,
      a,
      b,
      aBatched: ta.length > 2 && batch > 1,
      bBatched: tb.length > 2 && batch > 1,
    },
    productStored: m.plan.storage.get(valueName(g, mm.result))?.kind === 'buffer',
    fusedEpilogue: u.insts.length === 1,
    doc: docOf(m, u),
  };
}

export const isConv = (op: string): op is ConvKernel['op'] => op === 'conv' || op === 'conv_input_grad' || op === 'conv_weight_grad';

/** How to run a convolution op, or undefined for the flat module's loops (an operand outside the memory). */
export function decideConv(m: ModuleInfo, u: Unit, address: Address): ConvDecision | undefined {
  const g = u.graph;
  const inst = u.insts[0] as InstOf<ConvKernel['op']>;
  const { x: xv, w: wv, y: yv } = convOperands(inst.op, inst.args, inst.result);
  const [x, w, y] = [address(g, xv), address(g, wv), address(g, yv)];
  if (x === undefined || w === undefined || y === undefined) return undefined;
  const [N, C, H, W] = g.type(xv).shape as number[];
  const [O, , kH, kW] = g.type(wv).shape as number[];
  const [, , Ho, Wo] = g.type(yv).shape as number[];
  const a = inst.attrs;
  return {
    kind: 'conv',
    kernel: { op: inst.op, N: N!, C: C!, H: H!, W: W!, O: O!, kH: kH!, kW: kW!, Ho: Ho!, Wo: Wo!, groups: a.groups, stride: a.stride, padding: a.padding, dilation: a.dilation, x, w, y },
    doc: docOf(m, u),
  };
}

/** How to run a pooling op or its gradient, or undefined for the flat module's loops. */
export function decidePool(m: ModuleInfo, u: Unit, address: Address): PoolDecision | undefined {
  const g = u.graph;
  const inst = u.insts[0] as InstOf<PoolKernel['op']>;
  if (u.insts.length !== 1 || !isPool(inst.op)) return undefined;
  const { x: xv, y: yv } = poolOperands(inst.op, inst.args, inst.result);
  const kernel = poolKernel(inst.op, inst.attrs, g.type(xv).shape as number[], g.type(yv).shape as number[], (k) => address(g, k < 0 ? inst.result : inst.args[k]!));
  return kernel && { kind: 'pool', kernel, doc: docOf(m, u) };
}

/** The formula of a group's last value, as the flat module's comments write it. */
export function docOf(m: ModuleInfo, u: Unit): string {
  const g = u.graph;
  const last = u.insts[u.insts.length - 1]!;
  const inUnit = new Set(u.insts.map((x) => x.id));
  return `${valueName(g, last.result)} = ${formula(g, last.result, (d) => inUnit.has(d.id) && m.plan.storage.get(valueName(g, d.result))?.kind !== 'buffer')}`;
}
