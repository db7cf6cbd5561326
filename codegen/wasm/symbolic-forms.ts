// The symbolic wasm module's kernels of the kernel form (codegen/kernel/form.ts): every
// elementwise, reduction and layout group (and a matmul's or conv group's epilogue) rendered once,
// at build time, by the static module's renderer (codegen/wasm/kernel.ts), and its routines
// (matmuls, convolutions, poolings, index routines) built once by the static module's kernel
// generators; their symbolic sizes, strides and addresses are run-time values: each kernel reads
// them from the parameter block, an array of i32 at a constant address that the host fills from
// the layout pass's polynomials (ir/layout.ts) when a call brings new sizes. No probing, no
// fitting, no generator run at run time.

import type { Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import type { Size } from '../../ir/dims.js';
import { isStatic, mulSize, numelSize, size, sizeEq, sizeText } from '../../ir/dims.js';
import type { Poly } from '../../ir/layout.js';
import { polyAdd } from '../../ir/layout.js';
import type { ModuleInfo } from '../module.js';
import { commentText } from '../module.js';
import { lowerUnitOf } from '../kernel/lower.js';
import type { Body } from './encode.js';
import type { Rt, Val } from './kernel-plan.js';
import { valOf } from './kernel-plan.js';
import { KernelUnsupported, renderWasmKernel } from './kernel.js';
import type { Routine, View } from '../kernel/form.js';
import type { I32, IndexKernel } from './index-kernels.js';
import { text } from './index-lines.js';
import type { PoolKernel, PoolOp } from './pool.js';
import { isPool, poolBody, poolOperands } from './pool.js';
import type { ConvCode } from './conv.js';
import { convBody, convSumBody, convWhat } from './conv.js';
import { convOperands } from '../../ir/conv.js';
import { softmaxColumns } from './softmax-columns.js';
import { argBest, argmaxMask, cumsum, gather, maxPoolPick, pick, scatterAdd, xent } from './index-kernels.js';
import { docOf, isConv } from './decide.js';
import { softmaxRows } from './softmax.js';
import type { MatmulCode, TileWriter } from './matmul.js';
import { TileEpilogue } from './tile-epilogue.js';
import { DEFAULT_TILE, matmulBody, packsA, packsB, panelMinK } from './matmul.js';

/** A group's kernel of the kernel form: its function's name and what it computes. */
export interface FormKernel {
  readonly name: string;
  readonly what: string;
}

export interface SymForms {
  /** The kernel of each group it renders (of a conv group: its epilogue, `epilogue` true). */
  readonly byUnit: ReadonlyMap<Unit, FormKernel & { readonly epilogue: boolean }>;
  /** A conv group's convolution: its kernels (a weight gradient's chunks, then their sum), called before its epilogue's. */
  readonly convs: ReadonlyMap<Unit, readonly FormKernel[]>;
  /**
   * A matmul group's matmul, its epilogue in its tiles where `fused`, else called before its
   * epilogue's kernel (byUnit, `epilogue` true; where the renderer has none, the flat module's loop
   * over the product: its array where `stored`, else the product area).
   */
  readonly matmuls: ReadonlyMap<Unit, FormKernel & { readonly stored: boolean; readonly fused: boolean }>;
  /** The matmuls that need the pack and product areas (the layout places them after every array). */
  readonly areas: MatmulAreas;
  /** The functions (`what`: a convolution's own description; the others' are byUnit's). */
  readonly fns: readonly (FormKernel & { readonly body: Body })[];
  /** The parameter block's length (i32s). */
  readonly count: number;
  /**
   * Its values as polynomials in the symbols, given the arrays' offsets of the final layout, the
   * product area's (where a matmul whose product only its epilogue reads writes it), the pack
   * area's (where a matmul packs its B: transposed, or a weight in panels) and the packA area's
   * (where it packs a transposed A in row tiles).
   */
  params(offsets: readonly Poly[], areas?: { readonly productAt: Poly; readonly packAt: Poly; readonly packAAt: Poly }): Poly[];
}

/** The matmul groups whose kernel packs B (transposed, or a weight in panels), those whose product only their epilogue's kernel reads, and those that pack a transposed A (the areas of the layout). */
export interface MatmulAreas {
  readonly pack: ReadonlySet<Unit>;
  readonly product: ReadonlySet<Unit>;
  /** Those whose kernel packs a transposed A (its M·K floats). */
  readonly packA: ReadonlySet<Unit>;
}

/** The ids of the product and pack areas in the parameter block's addresses. */
const PRODUCT = -1;
const PACK = -2;
const PACK_A = -3;

/** A conv group's epilogue (bias, activation) as a group of its own, where it has one. */
function convEpilogue(u: Unit): Unit | undefined {
  return u.kind === 'conv' && u.insts[0]!.op === 'conv' && u.insts.length > 1 ? { ...u, kind: 'elementwise', insts: u.insts.slice(1) } : undefined;
}

/**
 * The kernels of `units`, built once, where the renderer and the generators have them (the others
 * run as the flat module's loops: codegen/wasm/symbolic.ts): the kernel form's, the matmuls', the
 * convolutions', the poolings' and the index routines'. `paramAt`: the parameter block's byte
 * address; `staticAt`: a static buffer's byte offset (undefined for a symbolic one, whose offset is
 * a run-time value); `constAt`: a constant array's; `convScratchAt`: a convolution's im2col area's.
 */
export function symForms(m: ModuleInfo, units: readonly Unit[], paramAt: number, staticAt: (id: number) => number | undefined, constAt: (name: string) => number | undefined, convScratchAt: (u: Unit) => number | undefined = () => undefined): SymForms {
  const slots = new Map<string, { v: Rt; index: number }>();
  const addresses = new Map<string, { id: number; off: Size; more?: readonly Size[] }>();
  const param = (v: Rt): number => {
    let s = slots.get(v.key);
    if (!s) slots.set(v.key, (s = { v, index: slots.size }));
    return paramAt + 4 * s.index;
  };
  let product: string | undefined; // the product a matmul epilogue's kernel reads from the product area, while it renders
  const rt = {
    address(arg: string, off: Size): Val | undefined {
      if (arg === product) {
        addresses.set(`@product+${sizeText(off)}`, { id: PRODUCT, off });
        return { key: `@product+${sizeText(off)}` };
      }
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
    addressSum(arg: string, offs: readonly Size[]): Val | undefined {
      const id = m.plan.bufferOf.get(arg);
      if (id === undefined || arg === product) return undefined;
      const key = `@${id}+${offs.map(sizeText).join(' + ')}`;
      addresses.set(key, { id, off: offs[0]!, more: offs.slice(1) });
      return { key };
    },
  };
  const byUnit = new Map<Unit, FormKernel & { epilogue: boolean }>();
  const convs = new Map<Unit, FormKernel[]>();
  const matmuls = new Map<Unit, FormKernel & { stored: boolean; fused: boolean }>();
  const [pack_, product_, packA_] = [new Set<Unit>(), new Set<Unit>(), new Set<Unit>()];
  const area = (key: string, id: number) => (): Val => {
    addresses.set(key, { id, off: size(0) });
    return { key };
  };
  const [pack, packA] = [area('@pack', PACK), area('@packA', PACK_A)];
  const fns: (FormKernel & { body: Body })[] = [];
  const i32 = (v: Val): I32 => (typeof v === 'number' ? v : { push: (f) => void (f.i32(0).i32Load(param(v)), v.plus && f.i32(v.plus).i32Add()), text: v.key });
  for (const u of units) {
    // a scan is a loop of the host program (its body's units are units of their own) and its results need no launch
    if (u.insts[0]!.op === 'scan' || u.insts[0]!.op === 'scan_out') continue;
    const conv = convForms(m, u, rt.address, i32, convScratchAt(u));
    if (conv) {
      convs.set(u, conv.map(({ name, what }) => ({ name, what })));
      fns.push(...conv);
    }
    const part = convEpilogue(u);
    const launch = lowerUnitOf(m.plan, part ?? u).launch;
    const name = `kernel_${valueName(u.graph, u.insts[u.insts.length - 1]!.result)}`;
    if (launch?.kind === 'routine' && launch.op === 'matmul') {
      // the epilogue written at the matmul's tiles where it can be (as the static module's), else a kernel of its own
      // after it, reading the product where the matmul wrote it (its array, else the product area)
      const stored = m.plan.bufferOf.has(launch.output.arg);
      const writer = launch.epilogue && launch.output.shape.length === 2 ? TileEpilogue.plan(launch.epilogue, launch.output.arg, () => undefined, { sizes: rt, i32 }) : undefined;
      const fused = writer !== undefined || !launch.epilogue;
      product = stored || fused ? undefined : launch.output.arg;
      const mname = `matmul_${valueName(u.graph, u.insts[u.insts.length - 1]!.result)}`;
      const mm = matmulRoutine(launch, mname, rt.address, i32, { pack, packA }, writer, stored || !writer);
      product = undefined;
      if (!mm) continue;
      const mwhat = `${commentText(docOf(m, fused ? u : { ...u, insts: [u.insts[0]!] }))}   ${mm.what}`;
      matmuls.set(u, { name: mname, what: mwhat, stored, fused });
      fns.push({ name: mname, body: mm.body, what: mwhat });
      if (mm.packs) pack_.add(u);
      if (mm.packsA) packA_.add(u);
      if (fused) continue;
      if (!stored) product_.add(u);
      product = stored ? undefined : launch.output.arg;
      try {
        const ename = `epilogue_${valueName(u.graph, u.insts[u.insts.length - 1]!.result)}`;
        const body = renderWasmKernel(launch.epilogue, () => undefined, { rt, param }).body;
        const what = `the epilogue of ${commentText(docOf(m, u))}   [${launch.epilogue.domain.join(',')}]`;
        byUnit.set(u, { name: ename, what, epilogue: true });
        fns.push({ name: ename, body, what });
      } catch (err) {
        if (!(err instanceof KernelUnsupported)) throw err;
      } finally {
        product = undefined;
      }
      continue;
    }
    if (launch?.kind === 'routine' && !part) {
      // an index routine with a symbolic number of rows (codegen/wasm/index-kernels.ts), a pooling over a symbolic number of planes
      const ik = isPool(launch.op) ? poolRoutine(launch, rt.address, i32) : indexRoutine(launch, rt.address, i32);
      if (!ik) continue;
      const rname = `${launch.op}_${valueName(u.graph, u.insts[u.insts.length - 1]!.result)}`;
      const what = `${commentText(docOf(m, u))}   ${ik.what}`;
      byUnit.set(u, { name: rname, what, epilogue: false });
      fns.push({ name: rname, body: ik.body, what });
      continue;
    }
    if (launch?.kind !== 'kernel') continue;
    let body: Body;
    try {
      body = renderWasmKernel(launch, () => undefined, { rt, param }).body;
    } catch (err) {
      if (err instanceof KernelUnsupported) continue;
      throw err;
    }
    const what = `${commentText(docOf(m, part ?? u))}   [${launch.domain.join(',')}]${launch.axes.length ? ` reducing axes ${launch.axes.join(',')}` : ''}`;
    byUnit.set(u, { name, what, epilogue: part !== undefined });
    fns.push({ name, body, what });
  }
  return {
    byUnit,
    convs,
    matmuls,
    areas: { pack: pack_, product: product_, packA: packA_ },
    fns,
    get count() {
      return slots.size;
    },
    params: (offsets, areas) =>
      [...slots.values()].map(({ v }) => {
        const a = addresses.get(v.key);
        if (a && a.id < 0 && !areas) throw new Error('internal: a matmul kernel reads the product or pack area, whose offsets are not given');
        const at = (id: number) => (id === PRODUCT ? areas!.productAt : id === PACK ? areas!.packAt : id === PACK_A ? areas!.packAAt : offsets[id]!);
        if (a) return polyAdd(at(a.id), ...[a.off, ...(a.more ?? [])].map((t) => ({ coef: 4 * t.coef, syms: t.syms })));
        if (!v.size) throw new Error(`internal: the run-time value ${v.key} is neither a size nor an address`);
        return polyAdd(v.size);
      }),
  };
}

/**
 * The kernel of a matmul routine (codegen/wasm/matmul.ts), built once: its sizes M, N, K and its
 * matrices run-time values where they are symbolic, its operands dense arrays of the
 * memory, a transposed B packed in the pack area (a weight too, in panels, where the static module
 * packs it at 16 rows; a weight gradient's transposed A in row tiles where the static module packs it
 * at a K of 512); its epilogue `writer` at its tiles' points; its
 * product stored where `storesProduct` (address(output) gives the product area where only the
 * epilogue's kernel reads it). Else undefined (the flat module's loop).
 */
function matmulRoutine(r: Routine, name: string, address: (arg: string, off: Size) => Val | undefined, i32: (v: Val) => I32, areas: { readonly pack: () => Val; readonly packA: () => Val }, writer: ((f: Body) => TileWriter) | undefined, storesProduct: boolean): { body: Body; what: string; packs: boolean; packsA: boolean } | undefined {
  if (r.op !== 'matmul' || ![...r.inputs, r.output].every(dense)) return undefined;
  const [A, B] = r.inputs as [View, View];
  const out = r.output.shape;
  const { transA, transB } = r.attrs;
  const at = [A, B, ...(storesProduct ? [r.output] : [])].map((v) => address(v.arg, v.offset));
  if (at.some((x) => x === undefined)) return undefined;
  const [a, b, c] = at.map((x) => i32(x!));
  const dim = (d: Size): I32 => {
    const v = valOf(d);
    return typeof v === 'number' ? v : i32(v);
  };
  const [M, N, K, batch] = [size(out.at(-2)!), size(out.at(-1)!), size(A.shape.at(transA ? -2 : -1)!), numelSize(out.slice(0, -2))];
  // an untransposed B of a static N (a weight, a weight gradient's dy) packed into panels where the static module packs it
  // (packsB): a run-time M or K is tested at run time (matmul.ts emitMatrixAt), here as if it passed
  const panels =
    !transB && isStatic(N) && isStatic(batch) && batch.coef === 1 && packsB({ M: isStatic(M) ? M.coef : 4 * DEFAULT_TILE.rows, N: N.coef, K: isStatic(K) ? K.coef : panelMinK(N.coef), batch: 1, transB: false });
  // a transposed A of a static M (a weight gradient's: M the layer's inputs) in row tiles where the static module packs it at
  // its K (at a run-time K: as at a K of 512 or more)
  const tilesA = transA && isStatic(M) && isStatic(batch) && batch.coef === 1 && packsA({ M: M.coef, K: isStatic(K) ? K.coef : 512, batch: 1, transA: true });
  const k: MatmulCode = {
    name, M: dim(M), N: dim(N), K: dim(K), batch: dim(batch), transA, transB, a: a!, b: b!, c, pack: transB || panels ? i32(areas.pack()) : undefined, packA: tilesA ? i32(areas.packA()) : undefined,
    aBatched: A.shape.length > 2, bBatched: B.shape.length > 2, ...(writer ? { epilogueWriter: writer } : {}),
  };
  const shape = (rows: Size, cols: Size) => `[${sizeText(rows)},${sizeText(cols)}]`;
  const batchText = isStatic(batch) && batch.coef === 1 ? '' : `${sizeText(batch)} × `;
  const where = [...(isStatic(M) ? [] : ['M ≥ 16']), ...(isStatic(K) ? [] : [`K ≥ ${panelMinK(N.coef)}`])];
  const packed = `${panels ? `, B packed in panels${where.length ? ` where ${where.join(' and ')}` : ''}` : ''}${tilesA ? ', A packed in row tiles' : ''}`;
  const what = `${batchText}${shape(M, K)}·${shape(K, N)}${transA ? ' (A transposed)' : ''}${transB ? ' (B transposed)' : ''}, sizes read at run time${packed}`;
  return { body: matmulBody(k), what, packs: k.pack !== undefined, packsA: tilesA };
}

/** A view whose elements are its array's, row-major from its offset (sizes may be symbolic). */
function dense(v: View): boolean {
  let st = size(1);
  for (let d = v.shape.length - 1; d >= 0; d--) {
    if (v.shape[d] !== 1 && !sizeEq(v.strides[d]!, st)) return false;
    st = mulSize(st, v.shape[d]!);
  }
  return true;
}

/**
 * The kernels of a conv group's convolution (codegen/wasm/conv.ts; a weight gradient's chunks,
 * then `…_sum` adding them), built once, its number of images N and the addresses of x and y
 * (dx, dy) run-time values, or undefined (the flat module's loop): a size other than the batch
 * symbolic, or weights (dw) that are not at a constant address. `scratch`: its im2col area's
 * (constant) byte address, laid out for CHUNKS chunks.
 */
function convForms(m: ModuleInfo, u: Unit, address: (arg: string, off: Size) => Val | undefined, i32: (v: Val) => I32, scratch: number | undefined): { name: string; body: Body; what: string }[] | undefined {
  const inst = u.insts[0]!;
  if (!isConv(inst.op) || scratch === undefined) return undefined;
  const launch = lowerUnitOf(m.plan, { ...u, kind: 'single', insts: [inst] }).launch;
  if (launch?.kind !== 'routine' || ![...launch.inputs, launch.output].every(dense)) return undefined;
  const { x, w, y } = convOperands(inst.op, launch.inputs, launch.output);
  const [N, C, H, W] = x.shape;
  const [O, , kH, kW] = w.shape;
  const [, , Ho, Wo] = y.shape;
  if (![C, H, W, O, kH, kW, Ho, Wo].every((d) => typeof d === 'number')) return undefined;
  const [xa, wa, ya] = [x, w, y].map((v) => address(v.arg, v.offset));
  if (xa === undefined || ya === undefined || typeof wa !== 'number') return undefined;
  const a = inst.attrs as { groups: number; stride: number[]; padding: number[]; dilation: number[] };
  const n = valOf(size(N!));
  const k: ConvCode = {
    op: inst.op, N: typeof n === 'number' ? n : i32(n), C: C as number, H: H as number, W: W as number, O: O as number, kH: kH as number, kW: kW as number, Ho: Ho as number, Wo: Wo as number,
    groups: a.groups, stride: a.stride, padding: a.padding, dilation: a.dilation, x: i32(xa), w: wa, y: i32(ya), scratch,
  };
  const name = `${inst.op}_${valueName(u.graph, inst.result)}`;
  const what = `${commentText(docOf(m, { ...u, insts: [inst] }))}   ${convWhat(k)}`;
  const body = { name, body: convBody(k), what };
  return inst.op === 'conv_weight_grad' ? [body, { name: `${name}_sum`, body: convSumBody(k), what: `the chunks' partial sums of ${name}, added in order` }] : [body];
}

/**
 * The kernel of a pooling routine (codegen/wasm/pool.ts) whose number of planes or addresses are
 * run-time values, where the sizes of its planes are numbers (the static module's kernel, its
 * windows' border runs unrolled); else undefined (the flat module's loop).
 */
function poolRoutine(r: Routine, address: (arg: string, off: Size) => Val | undefined, i32: (v: Val) => I32): IndexKernel | undefined {
  const op = r.op as PoolOp;
  if (r.epilogue || ![...r.inputs, r.output].every(dense)) return undefined;
  const { x: xv, y: yv, dx: dxv } = poolOperands(op, r.inputs, r.output);
  const sizes = [...xv.shape.slice(2), ...yv.shape.slice(2)];
  if (xv.shape.length !== 4 || !sizes.every((d) => typeof d === 'number')) return undefined;
  const [H, W, Ho, Wo] = sizes as number[];
  const at = (v: View): I32 | undefined => {
    const a = address(v.arg, v.offset);
    return a === undefined ? undefined : i32(a);
  };
  const [x, y, dx] = [op === 'avg_pool_grad' ? undefined : at(xv), at(yv), dxv && at(dxv)];
  if (y === undefined || (op !== 'avg_pool_grad' && x === undefined) || (dxv && dx === undefined)) return undefined;
  const n = valOf(numelSize(xv.shape.slice(0, 2)));
  const planes = typeof n === 'number' ? n : i32(n);
  const attrs = r.attrs as { kernel: number[]; stride: number[]; padding: number[] };
  const k: PoolKernel = { op, planes, H: H!, W: W!, Ho: Ho!, Wo: Wo!, kernel: attrs.kernel, stride: attrs.stride, padding: attrs.padding, x, y, dx };
  return { body: poolBody(k), what: `${op.replaceAll('_', ' ')} over ${text(planes)} planes of ${H}×${W}` };
}

/**
 * The kernel of an index routine whose number of rows (lines, planes), sizes or addresses are
 * run-time values, or undefined (the flat module's loop): a gather's table, scatter_add's rows,
 * pick's and xent's classes have sizes that are numbers (the shape rules keep them so); a line's
 * count, length and the distance between its elements (argmax, argmin, cumsum, softmax,
 * log_softmax), an argmax_mask's axes and a max_pool_pick's planes may be run-time values. A softmax
 * over the last axis is the static module's row kernel (codegen/wasm/softmax.ts); along another
 * axis four adjacent lines at a time (codegen/wasm/softmax-columns.ts).
 */
function indexRoutine(r: Routine, address: (arg: string, off: Size) => Val | undefined, i32: (v: Val) => I32): IndexKernel | undefined {
  const views = [...r.inputs, r.output];
  // (the lowering gives a routine dense operands: a transpose, narrow, flip or expand before it is a layout kernel that
  // writes a dense array, codegen/kernel/lower.ts; a view out of order is kept out as the static dispatch does)
  if (r.epilogue || !views.every(dense)) return undefined;
  const at = views.map((v) => address(v.arg, v.offset));
  if (at.some((a) => a === undefined)) return undefined;
  const [a, b, c] = at.map((x) => i32(x!));
  // a count as a value the body reads (a number too: a kernel of a constant count splits over threads, which these are not)
  const count = (n: Size): I32 => {
    const v = valOf(n);
    return typeof v === 'number' ? { push: (f: Body) => void f.i32(v), text: String(v) } : i32(v);
  };
  const rows = (v: View) => count(numelSize(v.shape));
  // a size the body reads: a number where it is one (its loops unrolled or vectorised as the static module's), else its run-time value
  const dim = (n: Size): I32 => {
    const v = valOf(n);
    return typeof v === 'number' ? v : i32(v);
  };
  const statics = (v: View, from = 0) => v.shape.slice(from).every((d) => typeof d === 'number');
  const x = r.inputs[0]!;
  let k: IndexKernel | undefined;
  if (r.op === 'gather' && statics(x)) k = gather(x.shape as number[], rows(r.inputs[1]!), a!, b!, c!);
  else if (r.op === 'scatter_add' && statics(r.output)) k = scatterAdd(r.output.shape as number[], rows(x), a!, b!, c!);
  else if ((r.op === 'pick' || r.op === 'xent') && x.shape.length === 2 && statics(x, 1))
    k = (r.op === 'pick' ? pick : xent)([count(size(x.shape[0]!)), x.shape[1] as number], a!, b!, c!);
  else if (r.op === 'argmax' || r.op === 'argmin' || r.op === 'cumsum' || r.op === 'softmax' || r.op === 'log_softmax') {
    const axis = r.attrs.axis as number;
    const [outer, len, inner] = [numelSize(x.shape.slice(0, axis)), size(x.shape[axis]!), numelSize(x.shape.slice(axis + 1))];
    if (r.op === 'softmax' || r.op === 'log_softmax') {
      // over rows: the static module's row kernel, its rows, length and addresses run-time values; along another axis
      // (lines `inner` apart): four adjacent lines at a time
      if (sizeEq(inner, size(1))) return softmaxRows(count(outer), dim(len), r.op === 'log_softmax', a!, b!);
      return softmaxColumns(count(outer), dim(len), dim(inner), r.op === 'log_softmax', a!, b!);
    }
    const lines = { lines: count(numelSize([...x.shape.slice(0, axis), ...x.shape.slice(axis + 1)])), len: dim(len), inner: dim(inner) };
    k = r.op === 'cumsum' ? cumsum(lines, !!r.attrs.reverse, a!, b!) : argBest(r.op, lines, a!, b!);
  } else if (r.op === 'argmax_mask') k = argmaxMask(x.shape.map((d) => dim(size(d))), r.attrs.axes as number[], a!, b!);
  else if (r.op === 'max_pool_pick' && x.shape.length === 4) {
    const [H, W] = x.shape.slice(2).map((d) => dim(size(d))) as [I32, I32];
    const [Ho, Wo] = r.output.shape.slice(2).map((d) => dim(size(d))) as [I32, I32];
    k = maxPoolPick(count(numelSize(x.shape.slice(0, 2))), [H, W], [Ho, Wo], r.attrs as never, a!, b!, c!);
  }
  // (a body split over threads takes a range: the symbolic module calls its kernels whole)
  return k && !k.split ? k : undefined;
}
