// The GPU.js renderer of the kernel form (codegen/kernel/form.ts): a fused elementwise or reduce
// group, a layout copy or a routine's epilogue becomes one gpu.js kernel per value it stores, each
// thread at one point of that value: its coordinates come from the thread's flat index, every
// load is the array at the access's affine index there (a guarded load reads 0 outside its
// window), the nodes the stored one needs are expressions with a local wherever one is used
// twice, and a reduction is a loop over the reduced axes with an accumulator per reduce node
// (sums of more than 256 terms add into a block sum first: GPU_SUM_BLOCK). A value the group
// stores in an earlier kernel is read from its array by the later kernels rather than computed
// again (shared intermediates that live only in registers are still computed by each kernel
// that needs them: gpu.js's webgpu backend has no kernel maps).
//
// The renderer declares the ALU primitives gpu.js compiles in every mode (cpu, webasm, WebGL's
// GLSL, WGSL): the rest goes through the decomposition pass (codegen/kernel/decompose.ts), and a
// kernel that needs a primitive neither native nor decomposable is a CompileError naming it and
// the target. erf, log1p and expm1 are declared native with gpu-special.ts's formulas (a shader's
// log is not accurate near 1, which the decompositions' log-based forms would inherit), pow with
// gpu-pow.ts's (no shader pow ever sees a negative base), log with PyTorch's NaN below 0.

import type { Dim, Size } from '../ir/dims.js';
import { size, sizeText } from '../ir/dims.js';
import { CompileError } from '../ir/errors.js';
import * as E from './expr.js';
import type { Expr } from './expr.js';
import type { Access, AluOp, BinaryOp, Kernel, UnaryOp } from './kernel/form.js';
import { argsOf, neededNodes, offsetTerms } from './kernel/form.js';
import type { Capabilities } from './kernel/decompose.js';
import { capabilities, decomposeMapped } from './kernel/decompose.js';
import { storedAfterReduction } from './kernel/eval.js';
import { gpuPow } from './gpu-pow.js';
import type { Local } from './gpu-special.js';
import { gpuErf, gpuExpm1, gpuLog1p } from './gpu-special.js';
import { JS_BINARY, JS_UNARY } from './ts/render.js';

/** The terms a GPU.js kernel's sum adds before adding them into its total (see `reduceLoop`). */
export const GPU_SUM_BLOCK = 64;

/**
 * A size inside a kernel: a number, or a product with the bound sizes of symbolic dimensions,
 * which gpu.js kernels read as constants (`this.constants.B * 64`).
 */
export function kdim(d: Dim | Size): string {
  const s = size(d);
  return sizeText({ coef: s.coef, syms: s.syms.map((x) => `this.constants.${x}`) });
}

export const wrapSum = (p: string) => (/[+-]/.test(p) ? `(${p})` : p);

const one = E.num(1);
const zero = E.num(0);

/** The unary primitives gpu.js compiles (no bit-level ones: toint, bits, frombits are decomposed or refused). */
type GpuUnary = Exclude<UnaryOp, 'cast' | 'toint' | 'bits' | 'frombits'>;
/** The binary primitives gpu.js compiles (not the i32 bit operations). */
type GpuBinary = Exclude<BinaryOp, 'shl' | 'shr' | 'and' | 'or'>;

/**
 * Each unary primitive's expression from its operand's (an atom where the formula reads it twice:
 * TWICE): JavaScript's Math, but log (NaN below 0) and the ones gpu.js lacks (erf, log1p, expm1).
 */
export const GPU_UNARY: { readonly [K in GpuUnary]: (a: Expr, local: Local) => Expr } = {
  ...JS_UNARY,
  // NaN below 0 as in PyTorch: SwiftShader's WebGPU gives log(x < 0) a number (WGSL leaves it
  // indeterminate); its √ of a negative value is NaN, as everywhere we know (see gpuPow)
  log: (a) => E.cond(E.rel('<')(a, zero), E.call('Math.sqrt', a), E.call('Math.log', a)),
  erf: gpuErf,
  log1p: gpuLog1p,
  expm1: gpuExpm1,
};

/** Binary primitives: JavaScript's, but pow (gpu-pow.ts). */
export const GPU_BINARY: { readonly [K in GpuBinary]: (a: Expr, b: Expr) => Expr } = { ...JS_BINARY, pow: gpuPow };

/** Primitives whose formula reads an operand more than once: their operands are atoms. */
const TWICE = new Set<AluOp>(['log', 'erf', 'log1p', 'expm1', 'pow']);

/** What the GPU.js module computes natively: its tables' primitives, cast and where. */
export const GPU_CAPABILITIES: Capabilities = capabilities('GPU.js', [...(Object.keys(GPU_UNARY) as AluOp[]), ...(Object.keys(GPU_BINARY) as AluOp[]), 'cast', 'where']);

/** What a kernel being written offers the renderer: its statements, fresh names, its arguments. */
export interface GpuBody {
  readonly lines: string[];
  fresh(base: string): string;
  /** An array read at an index, registering the array as an argument of the kernel. */
  read(array: string, index: string): Expr;
}

/** How the renderer names arrays and where it takes values given by the caller. */
export interface GpuNames {
  /** The code name of a load's array (a view's name, or the array's). */
  array(node: number, a: Access): string;
  /** A load's value given by the caller at the point (a routine's result computed in place). */
  loaded?(a: Access, coords: readonly string[]): Expr | undefined;
}

/** The flat index of an access at a point: offset + Σ stride·coordinate. */
export function indexOf(a: { strides: readonly Size[]; offset: Size | readonly Size[] }, coords: readonly string[]): string {
  const terms: { neg: boolean; code: string }[] = [];
  a.strides.forEach((s, d) => {
    const c = coords[d]!;
    if (s.coef === 0 || c === '0') return;
    const mag = kdim({ coef: Math.abs(s.coef), syms: s.syms });
    terms.push({ neg: s.coef < 0, code: mag === '1' ? c : `${wrapSum(c)} * ${mag}` });
  });
  for (const o of offsetTerms(a.offset)) terms.push({ neg: o.coef < 0, code: kdim({ coef: Math.abs(o.coef), syms: o.syms }) });
  if (terms.length === 0) return '0';
  return terms.map((t, k) => (k === 0 ? (t.neg ? `-${t.code}` : t.code) : `${t.neg ? '-' : '+'} ${t.code}`)).join(' ');
}

const isAtom = (e: Expr) => e.prec >= E.P.ATOM || E.literal(e) !== undefined;

/** The nodes of `which` at the point `coords` (one per domain axis), their statements into `out`. */
function evalNodes(k: Kernel, which: readonly boolean[], coords: readonly string[], given: ReadonlyMap<number, Expr>, names: GpuNames, body: GpuBody, out: string[]): Expr[] {
  const uses = k.nodes.map(() => 0);
  k.nodes.forEach((n, i) => which[i] && !given.has(i) && argsOf(n).forEach((a) => uses[a]!++));
  const exprs: Expr[] = [];
  const local: Local = (e) => {
    if (isAtom(e)) return e;
    const t = body.fresh('t');
    out.push(`const ${t} = ${e.code};`);
    return E.atom(t);
  };
  k.nodes.forEach((n, i) => {
    if (!which[i]) return;
    const g = given.get(i);
    if (g) return void (exprs[i] = g);
    const x = (j: number) => (TWICE.has(n.op as AluOp) && k.nodes[j]!.dtype !== 'bool' ? (exprs[j] = local(exprs[j]!)) : exprs[j]!);
    let e: Expr;
    switch (n.op) {
      case 'const':
        e = E.num(n.value);
        break;
      case 'load':
        e = load(n.access, names.array(i, n.access), coords, names, body, out);
        break;
      case 'coord':
        e = E.atom(coords[n.axis]!);
        break;
      case 'dim':
        e = E.atom(kdim(n.name));
        break;
      case 'reduce':
        throw new CompileError(`internal: the GPU.js renderer met a reduction outside its loop`);
      case 'where':
        e = E.cond(x(n.args[0]), x(n.args[1]), x(n.args[2]));
        break;
      case 'cast':
        e = k.nodes[n.args[0]]!.dtype === 'bool' ? E.cond(x(n.args[0]), one, zero) : x(n.args[0]);
        break;
      default: {
        const f = argsOf(n).length === 1 ? (GPU_UNARY as Partial<Record<string, (a: Expr, l: Local) => Expr>>)[n.op] : undefined;
        const h = argsOf(n).length === 2 ? (GPU_BINARY as Partial<Record<string, (a: Expr, b: Expr) => Expr>>)[n.op] : undefined;
        if (f) e = f(x(argsOf(n)[0]!), local);
        else if (h) e = h(x(argsOf(n)[0]!), x(argsOf(n)[1]!));
        else throw new CompileError(`the GPU.js target cannot compute ${n.op}: decompose left it in the kernel`);
      }
    }
    // a value used twice is a local (a comparison stays inline: gpu.js types no boolean locals)
    exprs[i] = uses[i]! > 1 && n.dtype !== 'bool' ? local(e) : e;
  });
  return exprs;
}

function load(a: Access, array: string, coords: readonly string[], names: GpuNames, body: GpuBody, out: string[]): Expr {
  const given = names.loaded?.(a, coords);
  if (given) return given;
  const read = body.read(array, indexOf(a, coords));
  const guards = (a.guards ?? []).flatMap((g) => [...(g.lo > 0 ? [`${coords[g.axis]} >= ${g.lo}`] : []), `${coords[g.axis]} < ${kdim(g.hi)}`]);
  if (guards.length === 0) return read;
  // a statement rather than `cond ? read : 0`: a shader may evaluate both branches
  const v = body.fresh('pad');
  out.push(`let ${v} = 0;`, `if (${guards.join(' && ')}) {`, `${v} = ${read.code};`, '}');
  return E.atom(v);
}

/** The kernel in gpu.js's primitives, with the node indices of the original mapped. */
export function gpuNative(k: Kernel): { k: Kernel; map: readonly number[] } {
  const d = decomposeMapped(k, GPU_CAPABILITIES);
  return { k: d.kernel, map: d.map };
}

/** The domain axes a thread of store `s` enumerates: the kept ones after a reduction, else all. */
export function threadAxes(k: Kernel, s: number): number[] {
  const all = k.domain.map((_d, i) => i);
  return storedAfterReduction(k, k.stores[s]!.access.strides) ? all.filter((d) => !k.axes.includes(d)) : all;
}

/**
 * The value kernel `k` stores with its store `s`, at the point whose thread-axis coordinates are
 * `pos` (threadAxes order); the stores before `s` are read from their arrays (`stored`) rather
 * than computed again. Returns the value's expression; statements go into `body.lines`.
 */
export function renderStore(k: Kernel, s: number, pos: readonly string[], names: GpuNames, body: GpuBody, storedName: (arg: string) => string): Expr {
  const store = k.stores[s]!;
  const axes = threadAxes(k, s);
  const coords = k.domain.map(() => '0');
  axes.forEach((d, j) => (coords[d] = pos[j]!));
  const earlier = new Map<number, Access>();
  for (const t of k.stores.slice(0, s)) if (t.node !== store.node && !earlier.has(t.node)) earlier.set(t.node, t.access);
  const readStored = (which: readonly boolean[], at: readonly string[]) =>
    new Map([...earlier].filter(([i]) => which[i]).map(([i, a]) => [i, body.read(storedName(a.arg), indexOf(a, at))] as const));
  const need = neededNodes(k, [store.node], false, (i) => earlier.has(i));
  const reduces = k.nodes.flatMap((n, i) => (n.op === 'reduce' && need[i] && !earlier.has(i) ? [{ i, red: n.red, x: n.args[0] }] : []));
  const given = new Map<number, Expr>();
  if (reduces.length > 0) {
    // the reduced axes' loop: the nodes the reductions' operands need, at each point of it
    const inner = neededNodes(k, reduces.map((r) => r.x), false, (i) => earlier.has(i));
    const accs = reduceLoop(k, reduces, body, (vars, out) => {
      const at = coords.slice();
      k.axes.forEach((d, j) => (at[d] = vars[j]!));
      const exprs = evalNodes(k, inner, at, readStored(inner, at), names, body, out);
      return reduces.map((r) => exprs[r.x]!);
    });
    reduces.forEach((r, j) => given.set(r.i, E.atom(accs[j]!)));
  }
  for (const [i, e] of readStored(need, coords)) given.set(i, e);
  return evalNodes(k, need, coords, given, names, body, body.lines)[store.node]!;
}

/**
 * The loop over a kernel's reduced axes: an accumulator per reduction (sum or max); `term`
 * writes one iteration's statements and gives each reduction's operand. A sum over more than 256
 * terms (or a symbolic number) adds into a block sum, which is added into the total every
 * GPU_SUM_BLOCK terms: on a device (f32) each sum runs over GPU_SUM_BLOCK or terms /
 * GPU_SUM_BLOCK additions rather than terms (gpu.js's webasm mode: a ResNet block's batch-norm
 * sums over 6,144 rows were off by 5e-4 relative).
 */
function reduceLoop(k: Kernel, reduces: readonly { red: 'sum' | 'max' }[], body: GpuBody, term: (vars: string[], out: string[]) => Expr[]): string[] {
  const counts = k.axes.map((d) => k.domain[d]!);
  const accs = reduces.map(() => body.fresh('acc'));
  const vars = counts.map(() => body.fresh('r'));
  const terms = counts.reduce<number>((a, c) => a * (typeof c === 'number' ? c : Infinity), 1);
  const blocked = terms > 256 && reduces.some((r) => r.red === 'sum');
  const block = (j: number) => (blocked && reduces[j]!.red === 'sum' ? `${accs[j]}_block` : accs[j]!);
  const count = `${accs[0]}_count`;
  const L = body.lines;
  reduces.forEach((r, j) => L.push(`let ${accs[j]} = ${r.red === 'sum' ? '0' : '-Infinity'};`));
  if (blocked) L.push(...reduces.flatMap((r, j) => (r.red === 'sum' ? [`let ${block(j)} = 0;`] : [])), `let ${count} = 0;`);
  counts.forEach((c, j) => L.push(`for (let ${vars[j]} = 0; ${vars[j]} < ${kdim(c)}; ${vars[j]}++) {`));
  const out: string[] = [];
  const vals = term(vars, out).map((v, j) => {
    if (reduces[j]!.red === 'sum' || isAtom(v)) return v;
    const t = body.fresh('v');
    out.push(`const ${t} = ${v.code};`);
    return E.atom(t);
  });
  L.push(...out);
  vals.forEach((v, j) => L.push(reduces[j]!.red === 'sum' ? `${block(j)} += ${v.code};` : `if (${v.code} > ${accs[j]}) ${accs[j]} = ${v.code};`));
  const flush = reduces.flatMap((r, j) => (blocked && r.red === 'sum' ? [`${accs[j]} += ${block(j)};`] : []));
  if (blocked) L.push(`${count}++;`, `if (${count} === ${GPU_SUM_BLOCK}) {`, ...flush, ...reduces.flatMap((r, j) => (r.red === 'sum' ? [`${block(j)} = 0;`] : [])), `${count} = 0;`, '}');
  counts.forEach(() => L.push('}'));
  if (blocked) L.push(...flush);
  return accs;
}
