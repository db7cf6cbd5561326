// Which groups of the flat module run as wasm kernels, and with what: each decision reads a unit of
// the memory plan (a matmul group, an elementwise group, a reduction, a convolution, a pooling) and
// the addresses of its arrays, and gives the kernel's description (codegen/wasm/*.ts encode it), or
// undefined where a part has no SIMD form here (the flat module's code runs it).

import type { Plan, Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import { isStatic, numelSize } from '../../ir/dims.js';
import { broadcastStridesSize } from '../../ir/shape.js';
import type { Inst, InstOf, Shape, ValueId } from '../../ir/types.js';
import { formula } from '../formula.js';
import type { ModuleInfo } from '../module.js';
import type { MatmulKernel } from './matmul.js';
import type { ConvKernel } from './conv.js';
import type { PoolKernel, StaticPoolKernel } from './pool.js';
import { isPool, poolKernel, poolOperands } from './pool.js';
import type { Operand, Step, StepOp } from './steps.js';
import type { Address } from './layout.js';
import { convOperands } from '../../ir/conv.js';


/** How a matmul group is run. */
export interface MatmulDecision {
  readonly kind: 'matmul';
  readonly kernel: Omit<MatmulKernel, 'c' | 'pack'>;
  /** The product is stored in its own buffer (else in the scratch area when the epilogue is JS). */
  readonly productStored: boolean;
  /** The epilogue runs in the kernel (else as a loop of the flat module's code after it). */
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
  const epilogue =
    u.insts.length > 1 && batch === 1 && out.length === 2 ? stepsOf(m, u, u.insts.slice(1), { out, known: new Map([[mm.result, { kind: 'acc' }]]) }, address)?.steps : undefined;
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
      epilogue: epilogue ?? [],
    },
    productStored: m.plan.storage.get(valueName(g, mm.result))?.kind === 'buffer',
    fusedEpilogue: epilogue !== undefined || u.insts.length === 1,
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

/**
 * A value read at the positions of an iteration shape collapsed to [M,N] (the axes before `split`
 * as rows, the others as columns): its row and column strides, or undefined when its axes do not
 * collapse (an operand broadcast along some row axes and not others) or its column stride is
 * not 0 or 1.
 */
function rowColumnStrides(shape: Shape, out: readonly number[], split = out.length - 1): { si: number; sj: number } | undefined {
  const st = broadcastStridesSize(shape, out).map((x) => (isStatic(x) ? x.coef : NaN));
  if (st.some(Number.isNaN)) return undefined;
  const rows = Math.max(split, 0); // a scalar space has no axes
  const si = collapse(st.slice(0, rows), out.slice(0, rows));
  const sj = collapse(st.slice(rows), out.slice(rows));
  return si === undefined || sj === undefined || sj > 1 ? undefined : { si, sj };
}

/**
 * The stride s of a run of axes read as one: every axis's stride is s × the product of the sizes
 * after it (axes of size 1 never move); undefined when there is no such s.
 */
function collapse(strides: readonly number[], dims: readonly number[]): number | undefined {
  let s: number | undefined;
  let inner = 1;
  for (let d = dims.length - 1; d >= 0; d--) {
    if (dims[d] !== 1) {
      s ??= strides[d]! / inner;
      if (strides[d] !== s * inner) return undefined;
    }
    inner *= dims[d]!;
  }
  return s === undefined || Number.isInteger(s) ? (s ?? 0) : undefined;
}

/** What the steps of a space read. */
interface Space {
  /** The iteration shape, and how many of its leading axes are rows. */
  readonly out: readonly number[];
  readonly split?: number;
  /** Values with operands of their own (the matmul's accumulators, a reduction's running values). */
  readonly known?: ReadonlyMap<ValueId, Operand>;
}

/**
 * Instructions as kernel steps over a space (a matmul's [M,N], an elementwise group's shape, a
 * reduction's full or kept shape), and the operand of any value they read; undefined when an op
 * has no SIMD form here or an operand is not in the memory.
 */
function stepsOf(m: ModuleInfo, u: Unit, members: readonly Inst[], space: Space, address: Address): { steps: Step[]; operand: (v: ValueId) => Operand | undefined } | undefined {
  const g = u.graph;
  const stepOf = new Map<ValueId, number>();
  const storage = (v: ValueId) => m.plan.storage.get(valueName(g, v));
  const operand = (v: ValueId): Operand | undefined => {
    const k = space.known?.get(v);
    if (k) return k;
    const step = stepOf.get(v);
    if (step !== undefined) return { kind: 'step', step };
    const s = storage(v);
    if (s?.kind === 'literal') return { kind: 'const', value: s.value };
    const addr = address(g, v);
    if (addr === undefined || g.type(v).dtype !== 'f32') return undefined;
    const strides = rowColumnStrides(g.type(v).shape, space.out, space.split);
    return strides && { kind: 'mem', addr, ...strides };
  };
  const steps: Step[] = [];
  for (const inst of members) {
    if (g.type(inst.result).dtype !== 'f32') return undefined;
    const op = simdOp(inst, (v) => storage(v));
    if (!op) return undefined;
    const args = op.args.map(operand);
    if (args.some((x) => x === undefined)) return undefined;
    const stored = storage(inst.result)?.kind === 'buffer';
    const store = stored ? address(g, inst.result) : undefined;
    if (stored && store === undefined) return undefined;
    stepOf.set(inst.result, steps.length);
    steps.push({ op: op.op, args: args as Operand[], store });
  }
  return { steps, operand };
}

/** The SIMD form of an elementwise instruction, as in the flat module's snippet table. */
export function simdOp(inst: Inst, storage: (v: ValueId) => ReturnType<Plan['storage']['get']>): { op: StepOp; args: ValueId[] } | undefined {
  const args = [...inst.args];
  switch (inst.op) {
    case 'add':
    case 'sub':
    case 'mul':
    case 'div':
    case 'neg':
    case 'abs':
    case 'sqrt':
    case 'relu':
    case 'square':
    case 'gt':
    case 'ge':
    case 'bn_apply':
    case 'exp':
    case 'tanh':
    case 'sigmoid':
    case 'select':
      return { op: inst.op, args };
    case 'ln_apply': // the same (x − mean) · inv step, broadcast the other way
      return { op: 'bn_apply', args };
    case 'maximum':
      return { op: 'max', args };
    case 'minimum':
      return { op: 'min', args };
    case 'broadcast':
      return { op: 'copy', args };
    case 'pow': {
      const e = storage(args[1]!);
      if (e?.kind !== 'literal') return undefined;
      // not ±0.5: √ gives NaN at −∞ where pow gives +∞ (0 for −0.5); the kernel form's decomposition has pow's values
      const byExponent: Record<number, StepOp> = { 1: 'copy', 2: 'square', [-1]: 'recip' };
      const op = byExponent[e.value];
      return op ? { op, args: [args[0]!] } : undefined;
    }
    default:
      return undefined;
  }
}
