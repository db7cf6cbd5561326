// Which groups of the flat module run as wasm kernels, and with what: each decision reads a unit of
// the memory plan (a matmul group, an elementwise group, a reduction, a softmax, a convolution) and
// the addresses of its arrays, and gives the kernel's description (codegen/wasm/*.ts encode it), or
// undefined where a part has no SIMD form here (the flat module's code runs it).

import type { Plan, Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import { isStatic, numelSize } from '../../ir/dims.js';
import { broadcastStridesSize } from '../../ir/shape.js';
import type { Inst, InstOf, Shape, ValueId } from '../../ir/types.js';
import { sameShape } from '../../ir/types.js';
import { isElementwise } from '../../ir/fusion.js';
import { formula } from '../formula.js';
import type { ModuleInfo } from '../module.js';
import type { MatmulKernel } from './matmul.js';
import type { ConvKernel } from './conv.js';
import type { PoolKernel } from './pool.js';
import { isPool, poolKernel } from './pool.js';
import type { ElementwiseKernel, ReduceKernel, RowReduceKernel } from './elementwise.js';
import type { SoftmaxKernel } from './softmax.js';
import type { Operand, Step, StepOp } from './steps.js';
import type { Address } from './layout.js';
import { align } from './layout.js';
import { REDUCE_MIN_ROWS } from './elementwise.js';


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

/** An elementwise group (or a single elementwise op) as a kernel over [M,N]. */
export interface ElementwiseDecision {
  readonly kind: 'elementwise';
  readonly kernel: ElementwiseKernel;
  readonly doc: string;
}

/** A reduction over leading axes (column sums, with the group's elementwise members and epilogue) as a kernel. */
export interface ReduceDecision {
  readonly kind: 'reduce';
  readonly kernel: ReduceKernel;
  readonly doc: string;
}

/** A reduction over trailing axes (row sums, with the group's members and epilogue) as a kernel. */
export interface RowReduceDecision {
  readonly kind: 'rowreduce';
  readonly kernel: RowReduceKernel;
  readonly doc: string;
}

/** A softmax over the last axis as a kernel over its rows. */
export interface SoftmaxDecision {
  readonly kind: 'softmax';
  readonly kernel: SoftmaxKernel;
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
  readonly kernel: PoolKernel;
  readonly doc: string;
}

export type Decision = ConvDecision | PoolDecision | MatmulDecision | ElementwiseDecision | ReduceDecision | RowReduceDecision | SoftmaxDecision | UpdateDecision;

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
  const [a0, a1] = inst.args as [ValueId, ValueId];
  const [xv, wv, yv] = inst.op === 'conv' ? [a0, a1, inst.result] : inst.op === 'conv_input_grad' ? [inst.result, a1, a0] : [a0, inst.result, a1];
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
  const xv = inst.op === 'avg_pool_grad' ? inst.result : inst.args[0]!;
  const yv = inst.op === 'max_pool' || inst.op === 'avg_pool' ? inst.result : inst.op === 'max_pool_grad' ? inst.args[1]! : inst.args[0]!;
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

/** How to run an elementwise group as a kernel, or undefined for the flat module's loop. */
export function decideElementwise(m: ModuleInfo, u: Unit, address: Address): ElementwiseDecision | undefined {
  if (!u.insts.every(isElementwise)) return undefined;
  const shape = u.graph.type(u.insts[0]!.result).shape as number[];
  const N = shape.length ? shape[shape.length - 1]! : 1;
  const M = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const steps = stepsOf(m, u, u.insts, { out: shape }, address)?.steps;
  return steps && { kind: 'elementwise', kernel: { M, N, steps }, doc: docOf(m, u) };
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

/**
 * The reductions of a reduce group, all over the same axes of one shape: leading axes (column
 * sums, [M,N] with M the reduced positions) or trailing ones (row sums, N the reduced positions).
 */
export function reductionOf(u: Unit): { reductions: InstOf<'sum' | 'max'>[]; shape: number[]; axes: readonly number[]; leading: boolean; M: number; N: number } | undefined {
  if (!(u.kind === 'reduce' || (u.kind === 'single' && (u.insts[0]!.op === 'sum' || u.insts[0]!.op === 'max')))) return undefined;
  const reductions = u.insts.filter((i) => i.op === 'sum' || i.op === 'max') as InstOf<'sum' | 'max'>[];
  const shape = u.graph.type(reductions[0]!.args[0]!).shape as number[];
  const axes = reductions[0]!.attrs.axes;
  if (axes.length === 0 || axes.length >= shape.length) return undefined;
  const leading = axes.every((a, k) => a === k);
  if (!leading && !axes.every((a, k) => a === shape.length - axes.length + k)) return undefined;
  const split = leading ? axes.length : shape.length - axes.length;
  const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
  return { reductions, shape, axes, leading, M: size(shape.slice(0, split)), N: size(shape.slice(split)) };
}

type Reduction = NonNullable<ReturnType<typeof reductionOf>>;

/**
 * The scratch bytes of one reduction of a group whose accumulators take `kept` bytes (the kept
 * positions' floats, 16-byte aligned): the accumulators, and for a column reduction over more
 * than REDUCE_MIN_ROWS rows (or a symbolic number: M is NaN) the f64 totals of its blocks after
 * them (two more `kept`).
 */
export function accSlot(r: { readonly leading: boolean; readonly M: number }, kept: number): number {
  return r.leading && !(r.M <= REDUCE_MIN_ROWS) ? 3 * kept : kept;
}

/**
 * What a reduce group's kernel computes, whichever its axes: the steps of its members over the
 * full shape, the operand each reduction reduces, the accumulators (one per reduction, a float
 * per kept position, in the scratch area at accAt), and the epilogue over the kept positions:
 * a copy of each stored reduction's result, then the group's epilogue members. Undefined when a
 * part has no SIMD form here. `accStride`: the bytes from one accumulator to the next (default:
 * the kept positions' floats, 16-byte aligned; the symbolic module's layout gives its own).
 */
function reduceGroup(m: ModuleInfo, u: Unit, r: Reduction, address: Address, accAt: number, accStride?: number): { rows: Step[]; reduced: Operand[]; accs: number[]; epilogue: Step[] } | undefined {
  const g = u.graph;
  const { reductions, shape, axes, leading, M, N } = r;
  const isReduction = (i: Inst) => reductions.includes(i as InstOf<'sum'>);
  const inFull = (i: Inst) => !isReduction(i) && sameShape(g.type(i.result).shape, shape);
  const accs = reductions.map((_r, k) => accAt + k * (accStride ?? accSlot(r, align((leading ? N : M) * 4))));
  const acc = (k: number): Operand => ({ kind: 'mem', addr: accs[k]!, si: 0, sj: 1 });
  const rows = stepsOf(m, u, u.insts.filter(inFull), { out: shape, split: leading ? axes.length : shape.length - axes.length }, address);
  if (!rows) return undefined;
  const reduced: Operand[] = [];
  for (const red of reductions) {
    const x = rows.operand(red.args[0]!);
    if (g.type(red.result).dtype !== 'f32' || !x) return undefined;
    reduced.push(x);
  }
  const results: Step[] = [];
  for (const [k, red] of reductions.entries())
    if (m.plan.storage.get(valueName(g, red.result))?.kind === 'buffer') results.push({ op: 'copy', args: [acc(k)], store: address(g, red.result) });
  const epilogue = u.insts.filter((i) => !isReduction(i) && !inFull(i));
  const epiShape = epilogue.length ? (g.type(epilogue[0]!.result).shape as number[]) : [];
  if (epilogue.some((i) => !sameShape(g.type(i.result).shape, epiShape))) return undefined;
  // over the kept positions as one row (as [1, N] rows of the kept shape for leading axes kept)
  const split = leading && epiShape.length === shape.length ? axes.length : 0;
  const known = new Map<ValueId, Operand>(reductions.map((red, k) => [red.result, acc(k)]));
  const epi = stepsOf(m, u, epilogue, { out: epiShape, split, known }, address);
  if (!epi) return undefined;
  // an epilogue step refers to earlier epilogue steps by index: shift them past the result copies
  const shift = (o: Operand): Operand => (o.kind === 'step' ? { kind: 'step', step: o.step + results.length } : o);
  return { rows: rows.steps, reduced, accs, epilogue: [...results, ...epi.steps.map((st) => ({ ...st, args: st.args.map(shift) }))] };
}

/** How to run a reduction over leading axes (column sums) as a kernel, or undefined for the flat module's loops. */
export function decideReduce(m: ModuleInfo, u: Unit, address: Address, accAt: number, accStride?: number): ReduceDecision | undefined {
  const r = reductionOf(u);
  const parts = r?.leading ? reduceGroup(m, u, r, address, accAt, accStride) : undefined;
  if (!r || !parts) return undefined;
  const { reductions, M, N } = r;
  const { accs } = parts;
  const init: Step[] = reductions.map((red, k) => ({ op: 'copy', args: [{ kind: 'const', value: red.op === 'sum' ? 0 : -Infinity }], store: accs[k], storeSi: 0 }));
  // every row adds (or maxes) into the accumulators
  const accumulate: Step[] = reductions.map((red, k) => ({
    op: red.op === 'sum' ? 'add' : 'pmax',
    args: [{ kind: 'mem', addr: accs[k]!, si: 0, sj: 1 }, parts.reduced[k]!],
    store: accs[k],
    storeSi: 0,
  }));
  // each sum's f64 totals after its accumulators (accSlot), used where M > REDUCE_MIN_ROWS: given at
  // every M, so that the symbolic module's kernels, described at small probe sizes, have them too
  const blocked = reductions.flatMap((red, k) => (red.op === 'sum' ? [{ acc: accs[k]!, total: accs[k]! + align(N * 4) }] : []));
  return { kind: 'reduce', kernel: { M, N, init, rows: [...parts.rows, ...accumulate], epilogue: parts.epilogue, ...(blocked.length ? { blocked } : {}) }, doc: docOf(m, u) };
}

/** How to run a reduction over trailing axes (row sums) as a kernel, or undefined for the flat module's loops. */
export function decideRowReduce(m: ModuleInfo, u: Unit, address: Address, accAt: number, accStride?: number): RowReduceDecision | undefined {
  const r = reductionOf(u);
  const parts = r && !r.leading && r.N > 0 ? reduceGroup(m, u, r, address, accAt, accStride) : undefined;
  if (!r || !parts) return undefined;
  const { reductions, M, N } = r;
  // one step per reduction holding the value it reduces, which the kernel folds into its vector
  const taps: Step[] = parts.reduced.map((x) => ({ op: 'copy', args: [x] }));
  return {
    kind: 'rowreduce',
    kernel: {
      M,
      N,
      rows: [...parts.rows, ...taps],
      reductions: reductions.map((red, k) => ({ step: parts.rows.length + k, op: red.op, acc: parts.accs[k]! })),
      epilogue: parts.epilogue,
    },
    doc: docOf(m, u),
  };
}

/** How to run a softmax over the last axis as a kernel, or undefined for the flat module's loops. */
export function decideSoftmax(m: ModuleInfo, u: Unit, address: Address): SoftmaxDecision | undefined {
  const inst = u.insts[0]!;
  if (u.insts.length !== 1 || inst.op !== 'softmax') return undefined;
  const g = u.graph;
  const shape = g.type(inst.result).shape as number[];
  const [x, out] = [address(g, inst.args[0]!), address(g, inst.result)];
  if (inst.attrs.axis !== shape.length - 1 || x === undefined || out === undefined) return undefined;
  const N = shape.at(-1)!;
  return { kind: 'softmax', kernel: { M: shape.slice(0, -1).reduce((a, b) => a * b, 1), N, x, out }, doc: docOf(m, u) };
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
      const byExponent: Record<number, StepOp> = { 1: 'copy', 2: 'square', 0.5: 'sqrt', [-1]: 'recip', [-0.5]: 'rsqrt' };
      const op = byExponent[e.value];
      return op ? { op, args: [args[0]!] } : undefined;
    }
    default:
      return undefined;
  }
}
