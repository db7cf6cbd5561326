// The wasm module of a model with symbolic dimensions (`g.input('Xb', ['B', 3], 'i32')`): the flat
// module's symbolic form (its steps are closures over the bound sizes, see codegen/ts.ts), with
// its arena in one growable WebAssembly.Memory. Its elementwise, reduction and layout groups (and
// a convolution's epilogue) are kernels of the kernel form encoded once, at build time, whose
// symbolic sizes, strides and addresses are read from a parameter block (codegen/wasm/symbolic-forms.ts);
// so are its index routines, its softmaxes, its convolutions and its poolings (the static
// module's kernels, where their sizes allow: symbolic-forms.ts), and the optimizer's update
// (codegen/wasm/symbolic-train.ts). Its matmul groups are wasm SIMD kernels encoded at run time: the first call that brings a
// set of sizes lays the memory out for them (growing it when they need more), writes the
// parameter block, encodes those kernels for its sizes and addresses with the kernel generators
// of codegen/wasm/*.ts, embedded in the module, and instantiates them; a later call with the same
// sizes reuses them. The module imports nothing.
//
// The memory's layout is the layout pass's (ir/layout.ts, `symLayout` below): every array's
// offset, the scratch areas and the end are polynomials in the symbols, written into the module
// as code and evaluated for each new set of sizes; no two arrays live at once overlap at any
// sizes (test/layout.test.ts). What a matmul's kernel gets (its sizes, its arrays' addresses, its
// epilogue's steps) is the static module's decision (codegen/wasm/decide.ts) at the bound sizes:
// decided here at build time on the graph with the symbols bound to a grid of probe sizes, in the
// layout evaluated there, every number of the description a polynomial in the sizes, which the
// probes determine and one more probe checks. A group whose description does not come out the
// same way at every probe, an index routine, convolution or pooling whose sizes
// codegen/wasm/index-kernels.ts, conv.ts or pool.ts cannot take at run time (symbolic-forms.ts), or a group the kernel form's renderer refuses (docs/wasm-symbolic.md, "Not yet") runs as the
// flat module's code.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type * as Typescript from 'typescript';
import type { Graph } from '../../ir/graph.js';
import type { Unit } from '../../ir/memplan.js';
import { allUnits, valueName } from '../../ir/memplan.js';
import { bindShape, isStatic, numelSize, size, sizeText, symbols } from '../../ir/dims.js';
import type { Poly } from '../../ir/layout.js';
import { arrayBytes, placeAreas, polyAdd, polyEval, polyMax, polyText } from '../../ir/layout.js';
import type { Loc, ValueId } from '../../ir/types.js';
import { formatType, numel } from '../../ir/types.js';
import { CompileError } from '../../ir/errors.js';
import { num } from '../expr.js';
import type { ModuleInfo } from '../module.js';
import { commentText, typedAs, uniformConst } from '../module.js';
import type { Backend, UnitEmitter } from '../ts.js';
import { emitTs } from '../ts.js';
import { isForwardOnly } from '../../ir/autodiff.js';
import type { MatmulDecision } from './decide.js';
import { decideMatmul, isConv } from './decide.js';
import { CHUNKS, convScratch } from './conv.js';
import { PADDING, PAGE, addresses } from './layout.js';
import type { SymForms } from './symbolic-forms.js';
import { symForms } from './symbolic-forms.js';
import { encodeModule } from './encode.js';
import { relaxedProbe, relaxSitesDecl } from './relaxed.js';
import type { Body } from './encode.js';
import { unaryOnStackDecl } from './symbolic-replay.js';
import { symTrain } from './symbolic-train.js';
import { convGeometry } from '../../ir/conv.js';

/**
 * The kernel generators the module carries (codegen/wasm/*.ts, in dependency order, their imports
 * stripped: each imports only from these, but for steps.ts's unaryOnStack, replayed by
 * unaryOnStackDecl), and what it calls of them.
 */
export const SOURCES = ['encode', 'steps', 'matmul'] as const;
const GENERATORS = ['encodeModule', 'matmulBody'] as const;

type Dims = Readonly<Record<string, number>>;

/** A matmul kernel of the symbolic module: what the steps call, and its description at one probe. */
interface SymKernel {
  readonly name: string;
  readonly d: MatmulDecision;
  /** The generator and its argument. */
  readonly gen: 'matmulBody';
  readonly arg: object;
}

/**
 * The memory of the symbolic module (ir/layout.ts): the plan's buffers, static ones first, then
 * each convolution's im2col scratch (a constant size: at most CHUNKS chunks of images, and at a
 * constant offset, so that its padded positions, never written, stay zero whatever the sizes),
 * then the symbolic buffers, then the scratch areas the kernels share one after another, each as
 * large as the coefficient-wise maximum of their needs. Every offset is a polynomial in the symbols.
 */
interface SymLayout {
  readonly offsets: readonly Poly[];
  readonly convAt: ReadonlyMap<Unit, Poly>;
  /** The convolutions' scratch areas as [offset, bytes] (constants). */
  readonly convAreas: readonly (readonly [number, number])[];
  /** The optimizer state and step scalars (codegen/wasm/symbolic-train.ts), a constant. */
  readonly optAt: number;
  /** The parameter block of the kernels of the kernel form (codegen/wasm/symbolic-forms.ts), a constant. */
  readonly paramAt: number;
  readonly packAt: Poly;
  readonly productAt: Poly;
  /** Floats of the product area. */
  readonly productFloats: Poly;
  readonly end: Poly;
}

/** The matmul units whose kernel packs a transposed B, and those whose product a JS epilogue reads. */
interface MatmulAreas {
  readonly pack: ReadonlySet<Unit>;
  readonly product: ReadonlySet<Unit>;
  /** Those whose epilogue the kernel does not fuse (a kernel of the kernel form after it: symbolic-forms.ts). */
  readonly epilogue: ReadonlySet<Unit>;
}

/**
 * Which matmuls need the pack and product areas: their decisions at one binding (the areas come
 * after every array, so the decisions' flags do not depend on them; a kernel whose flags differ
 * at another probe does not fit and runs as the flat module's code).
 */
function matmulAreas(m: ModuleInfo, units: readonly Unit[], dims: Dims): MatmulAreas {
  const address = addresses(m.plan, symLayout(m, units).offsets.map((p) => polyEval(p, dims)));
  const pack = new Set<Unit>();
  const product = new Set<Unit>();
  const epilogue = new Set<Unit>();
  for (const u of units) {
    if (u.insts[0]!.op !== 'matmul') continue;
    const d = decideMatmul(m, { ...u, graph: bound(u.graph, dims) }, address);
    if (d?.kernel.transB) pack.add(u);
    if (d && !d.productStored && !d.fusedEpilogue) product.add(u);
    if (d && !d.fusedEpilogue) epilogue.add(u);
  }
  return { pack, product, epilogue };
}

/** A conv group's parts: the convolution, then its epilogue (bias, activation) as a group of its own. */
function convParts(u: Unit): readonly [Unit, Unit] | undefined {
  return u.kind === 'conv' && u.insts[0]!.op === 'conv' ? [{ ...u, kind: 'single', insts: [u.insts[0]!] }, { ...u, kind: 'elementwise', insts: u.insts.slice(1) }] : undefined;
}

/** Floats of a convolution's scratch for any batch: undefined where a size other than the batch is symbolic. */
function convScratchBound(u: Unit): number | undefined {
  const inst = u.insts[0]!;
  if (!isConv(inst.op)) return undefined;
  const { C, H, W, O, Cg, kH, kW, Ho, Wo } = convGeometry(u.graph, inst);
  if (![C, H, W, O, Cg, kH, kW, Ho, Wo].every((d) => typeof d === 'number')) return undefined;
  const a = inst.attrs as { groups: number; stride: number[]; padding: number[]; dilation: number[] };
  // chunksOf(N).chunks ≤ CHUNKS for every N (codegen/wasm/conv.ts)
  return convScratch({ op: inst.op, N: CHUNKS, C, H, W, O, kH, kW, Ho: Ho as number, Wo: Wo as number, groups: a.groups, stride: a.stride, padding: a.padding, dilation: a.dilation, x: 0, w: 0, y: 0 });
}

/** The layout of the symbolic module (see SymLayout). */
function symLayout(m: ModuleInfo, units: readonly Unit[], areas?: MatmulAreas, params = 0, constBytes = 0, optBytes = 0): SymLayout {
  const plan = m.plan;
  const bytes = plan.buffers.map((b) => arrayBytes(b.size));
  const offsets: Poly[] = new Array(plan.buffers.length);
  let end: Poly = [];
  for (const b of plan.buffers) if (isStatic(b.size)) (offsets[b.id] = end), (end = polyAdd(end, bytes[b.id]!));
  const convAt = new Map<Unit, Poly>();
  const convAreas: [number, number][] = [];
  for (const u of units) {
    const n = convScratchBound(convParts(u)?.[0] ?? u);
    if (n === undefined) continue;
    convAt.set(u, end);
    convAreas.push([polyEval(end, {}), arrayBytes(size(n)).coef]);
    end = polyAdd(end, arrayBytes(size(n)));
  }
  // the optimizer state (symTrain), the constant arrays the kernels of the kernel form read (constArrays), then their parameter block
  const optAt = polyEval(end, {});
  end = polyAdd(end, size(optBytes));
  end = polyAdd(end, size(constBytes));
  const paramAt = polyEval(end, {});
  end = polyAdd(end, arrayBytes(size(params)));
  for (const b of plan.buffers) if (!isStatic(b.size)) (offsets[b.id] = end), (end = polyAdd(end, bytes[b.id]!));
  // B packed as [K,N] for a transposed B, and products read by an epilogue loop: as large as the largest
  // (only the matmuls whose kernel packs B or hands its product to a JS epilogue: `areas`)
  const mm = (u: Unit) => u.insts[0]!;
  const pack = polyMax(...units.filter((u) => areas?.pack.has(u)).map((u) => [arrayBytes(numelSize(u.graph.type(mm(u).args[1]!).shape.slice(-2)))]));
  const product = polyMax(...units.filter((u) => areas?.product.has(u)).map((u) => [arrayBytes(numelSize(u.graph.type(mm(u).result).shape))]));
  const placed = placeAreas(end, [pack, product]);
  const [packAt, productAt] = placed.at as [Poly, Poly];
  return { offsets, convAt, convAreas, optAt, paramAt, packAt, productAt, productFloats: product.map((t) => ({ ...t, coef: t.coef / 4 })), end: placed.end };
}

/** A graph whose types have the symbols bound (what the static decisions read). */
function bound(g: Graph, dims: Dims): Graph {
  return new Proxy(g, {
    get(target, p) {
      if (p === 'type') return (v: ValueId) => {
        const t = target.type(v);
        return { ...t, shape: bindShape(t.shape, dims) };
      };
      const x = Reflect.get(target, p, target);
      return typeof x === 'function' ? x.bind(target) : x;
    },
  });
}

/** The kernels' descriptions for the sizes `dims`, in the layout evaluated at them. */
function probe(m: ModuleInfo, units: readonly Unit[], L: SymLayout, dims: Dims, forms: SymForms): Map<Unit, SymKernel[]> {
  const offsets = L.offsets.map((p) => polyEval(p, dims));
  const address = addresses(m.plan, offsets);
  const graphs = new Map([m.fwd, m.bwd, ...m.plan.bodies.keys()].map((g) => [g, bound(g, dims)]));
  const at = (u: Unit): Unit => ({ ...u, graph: graphs.get(u.graph)! });
  const kernels = new Map<Unit, SymKernel[]>();
  const nameOf = (u: Unit) => valueName(u.graph, u.insts[u.insts.length - 1]!.result);
  for (const u of units) {
    const op = u.insts[0]!.op;
    const form = forms.byUnit.get(u);
    if (form && !form.epilogue) continue;
    // (a convolution or pooling is a kernel of symbolic-forms.ts where its sizes but the batch are numbers, else the flat module's loop)
    const d = op === 'matmul' ? decideMatmul(m, at(u), address) : undefined;
    if (!d) continue;
    const name = `${d.kind}_${nameOf(u)}`;
    const mm = u.insts[0]!;
    const c = d.productStored ? address(u.graph, mm.result) : d.fusedEpilogue ? undefined : polyEval(L.productAt, dims);
    kernels.set(u, [{ name, d, gen: 'matmulBody', arg: { ...d.kernel, name, c, pack: d.kernel.transB ? polyEval(L.packAt, dims) : undefined } }]);
  }
  return kernels;
}

// ---------------------------------------------------------------------------------------------
// Polynomials from probes

/** A polynomial in the symbols: coefficient by exponents (one per symbol). */
type Fit = Map<string, { exps: number[]; coef: number }>;

/** The degree of each symbol: its largest power in any size of the model. */
function degrees(m: ModuleInfo, syms: readonly string[]): number[] {
  const deg = syms.map(() => 1);
  for (const g of [m.fwd, m.bwd])
    for (const inst of g.insts) {
      const s = numelSize(g.type(inst.result).shape);
      syms.forEach((d, k) => (deg[k] = Math.max(deg[k]!, s.syms.filter((x) => x === d).length)));
    }
  return deg;
}

/** Probe values of each symbol (degree + 1 of them) and the values of the check probe. */
const PROBES = [5, 7, 11, 13, 17, 19];
const CHECK = 23;

/** Every point of the probe grid. */
function grid(syms: readonly string[], deg: readonly number[]): Dims[] {
  let points: Record<string, number>[] = [{}];
  syms.forEach((d, k) => {
    points = points.flatMap((p) => PROBES.slice(0, deg[k]! + 1).map((v) => ({ ...p, [d]: v })));
  });
  return points;
}

/** The polynomial through the values at the grid points (integer coefficients), or undefined. */
function fit(syms: readonly string[], deg: readonly number[], points: readonly Dims[], values: readonly number[]): Fit | undefined {
  const monos: number[][] = [];
  const walk = (k: number, e: number[]) => {
    if (k === syms.length) return void monos.push(e);
    for (let x = 0; x <= deg[k]!; x++) walk(k + 1, [...e, x]);
  };
  walk(0, []);
  // Gaussian elimination with partial pivoting on the (well-conditioned, small) Vandermonde system
  const n = monos.length;
  const a = points.map((p, r) => [...monos.map((e) => e.reduce((acc, x, k) => acc * p[syms[k]!]! ** x, 1)), values[r]!]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[piv]![c]!)) piv = r;
    [a[c], a[piv]] = [a[piv]!, a[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r]![c]! / a[c]![c]!;
      for (let k = c; k <= n; k++) a[r]![k]! -= f * a[c]![k]!;
    }
  }
  const poly: Fit = new Map();
  for (let c = 0; c < n; c++) {
    const coef = Math.round(a[c]![n]! / a[c]![c]!);
    if (coef !== 0) poly.set(monos[c]!.join(','), { exps: monos[c]!, coef });
  }
  return points.every((p, r) => evalPoly(poly, syms, p) === values[r]) ? poly : undefined;
}

function evalPoly(p: Fit, syms: readonly string[], dims: Dims): number {
  let s = 0;
  for (const { exps, coef } of p.values()) s += coef * exps.reduce((acc, x, k) => acc * dims[syms[k]!]! ** x, 1);
  return s;
}

/** A polynomial as code over the symbols' names. */
function polyCode(p: Fit, syms: readonly string[]): string {
  const terms = [...p.values()].map(({ exps, coef }) => {
    const vars = exps.flatMap((x, k) => Array.from({ length: x }, () => syms[k]!));
    return vars.length === 0 ? `${coef}` : coef === 1 ? vars.join(' * ') : `${coef} * ${vars.join(' * ')}`;
  });
  return terms.length === 0 ? '0' : terms.join(' + ').replace(/\+ -/g, '- ');
}

/**
 * The code of a description given at every probe (and the check probe, last): the same structure
 * at each, every number a constant or a polynomial in the symbols; undefined when it is not.
 */
function describe(xs: readonly unknown[], fitNum: (values: number[]) => string | undefined): string | undefined {
  const x0 = xs[0];
  if (typeof x0 === 'number') {
    if (xs.some((x) => typeof x !== 'number')) return undefined;
    const vs = xs as number[];
    if (vs.every((v) => Object.is(v, x0))) return num(x0).code;
    return fitNum(vs);
  }
  if (x0 === undefined || x0 === null || typeof x0 !== 'object') return xs.every((x) => x === x0) ? JSON.stringify(x0) ?? 'undefined' : undefined;
  if (Array.isArray(x0)) {
    if (xs.some((x) => !Array.isArray(x) || x.length !== x0.length)) return undefined;
    const parts: string[] = [];
    for (let i = 0; i < x0.length; i++) {
      const c = describe(xs.map((x) => (x as unknown[])[i]), fitNum);
      if (c === undefined) return undefined;
      parts.push(c);
    }
    return `[${parts.join(', ')}]`;
  }
  const keys = Object.keys(x0).filter((k) => (x0 as Record<string, unknown>)[k] !== undefined);
  const parts: string[] = [];
  for (const k of keys) {
    const c = describe(xs.map((x) => (x as Record<string, unknown>)[k]), fitNum);
    if (c === undefined) return undefined;
    parts.push(`${JSON.stringify(k)}: ${c}`);
  }
  for (const x of xs) if (Object.keys(x as object).filter((k) => (x as Record<string, unknown>)[k] !== undefined).join() !== keys.join()) return undefined;
  return `{ ${parts.join(', ')} }`;
}

// ---------------------------------------------------------------------------------------------
// The generators, embedded

/** The source of one of codegen/wasm/*.ts, from the sources (graphc run from them or from dist/). */
function generatorSource(file: string): string {
  for (const rel of [`./${file}.ts`, `../../../codegen/wasm/${file}.ts`]) {
    const url = new URL(rel, import.meta.url);
    if (fs.existsSync(url)) return fs.readFileSync(url, 'utf8');
  }
  throw new Error(`internal: the source of codegen/wasm/${file}.ts is not found (the symbolic wasm module embeds it)`);
}

let typescriptPackage: typeof Typescript | undefined;

/**
 * The `typescript` package, which strips the embedded generators' types, loaded on first use and
 * with require: a build without symbolic sizes does not load it (1.8 s as an ESM import on a busy
 * machine, src/tsmorph.ts).
 */
function typescript(): typeof Typescript {
  return (typescriptPackage ??= createRequire(import.meta.url)('typescript') as typeof Typescript);
}

/**
 * The kernel generators as one closure (the matmul kernel's, with the files it imports: its
 * epilogues are steps): TypeScript, or JavaScript with `typed` false; none where the module has no
 * matmul kernel encoded per size.
 */
function generatorsDecl(typed: boolean, used: boolean): string[] {
  if (!used) return [];
  const sources = SOURCES;
  const body = sources
    .map((f) => [`// ---- codegen/wasm/${f}.ts`, ...generatorSource(f).split('\n').filter((l) => !/^import /.test(l)).map((l) => l.replace(/^export /, '')), ...(f === 'steps' ? unaryOnStackDecl() : [])].join('\n'))
    .join('\n');
  const ts = typed ? undefined : typescript();
  const code = !ts ? body : ts.transpileModule(body, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText.replace(/^export \{\};\s*$/m, '');
  return [
    `// The kernel generators of graphc (codegen/wasm/${sources.map((f) => `${f}.ts`).join(', ')}),`,
    '// embedded: the first call with a set of sizes encodes its kernels with them.',
    'const gen = (() => {',
    code,
    `  return { ${GENERATORS.join(', ')} };`,
    '})();',
  ];
}

// ---------------------------------------------------------------------------------------------
// The module

/** The most memory a wasm32 module has: 65536 pages of 64 KiB (4 GiB). */
export const WASM_MAX_PAGES = 65536;

/**
 * Refuses a static layout that does not fit wasm's 4 GiB memory, at the largest param (its
 * location, its size) with the sizes and the limit.
 */
export function checkWasmMemory(m: ModuleInfo, end: number): void {
  const bytes = end + PADDING;
  if (bytes <= WASM_MAX_PAGES * PAGE) return;
  let big: { name: string; n: number; loc?: Loc; type: string } | undefined;
  for (const inst of m.fwd.insts) {
    if (inst.op !== 'param' && inst.op !== 'input') continue;
    const t = m.fwd.type(inst.result);
    if (!t.shape.every((d) => typeof d === 'number')) continue;
    const n = numel(t.shape as number[]);
    if (!big || n > big.n) big = { name: `${inst.op} '${(inst.attrs as { name: string }).name}'`, n, loc: inst.loc, type: formatType(t) };
  }
  throw new CompileError(
    `the wasm module needs ${bytes.toLocaleString('en-US')} bytes of memory (${Math.ceil(bytes / PAGE).toLocaleString('en-US')} pages), more than wasm's 4 GiB (${WASM_MAX_PAGES} pages of 64 KiB)${big ? `; its largest ${big.name} is ${big.type}, ${big.n.toLocaleString('en-US')} elements` : ''}`,
    'make the model smaller, or build it for the ts or gpu target, whose arrays are not in one wasm memory',
    big?.loc,
  );
}

/**
 * The kernels: a group's kernels whose descriptions have the same form at every probe (a conv
 * group's convolution without its epilogue kernel where only the convolution has), each with its
 * description as code over the symbols.
 */
function fitKernels(units: readonly Unit[], probes: readonly Map<Unit, SymKernel[]>[], fitNum: (values: number[]) => string | undefined) {
  const kernels: { u: Unit; k: SymKernel; code: string }[] = [];
  const byUnit = new Map<Unit, { k: SymKernel; code: string }[]>();
  for (const u of units) {
    const ks = probes.map((p) => p.get(u));
    if (ks.some((k) => k === undefined || k.length !== ks[0]!.length)) continue;
    const mine: { u: Unit; k: SymKernel; code: string }[] = [];
    for (let i = 0; i < ks[0]!.length; i++) {
      const at = ks.map((k) => k![i]!);
      const code = describe(at.map((k) => k.arg), fitNum);
      if (code === undefined || !at.every((k) => k.gen === at[0]!.gen && k.name === at[0]!.name)) break;
      mine.push({ u, k: at[0]!, code });
    }
    if (mine.length) byUnit.set(u, mine), kernels.push(...mine);
  }
  return { kernels, byUnit };
}

/**
 * The optimizer's state and update kernel (symbolic-train.ts: at constant addresses, a param and
 * its gradient being static arrays), the constant arrays, the kernels of the kernel form (their
 * parameter block comes before the symbolic arrays) and the final layout.
 */
function layoutAll(m: ModuleInfo, units: readonly Unit[], areas: MatmulAreas, syms: readonly string[], typed: boolean) {
  const Ls = symLayout(m, units, areas);
  const staticAddress = addresses(m.plan, Ls.offsets.map((p, id) => (isStatic(m.plan.buffers[id]!.size) ? polyEval(p, {}) : (undefined as unknown as number))));
  const train = m.optimizer ? symTrain(m, staticAddress, Ls.optAt, syms, typedAs(typed)) : undefined;
  const optBytes = train?.bytes ?? 0;
  const consts = constArrays(m, symLayout(m, units, areas, 0, 0, optBytes).paramAt);
  const L0 = symLayout(m, units, areas, 0, consts.bytes, optBytes);
  const convAt = (u: Unit) => {
    const at = L0.convAt.get(u);
    return at && polyEval(at, {});
  };
  const forms = symForms(m, units, L0.paramAt, (id) => (isStatic(m.plan.buffers[id]!.size) ? polyEval(L0.offsets[id]!, {}) : undefined), consts.at, areas.epilogue, convAt);
  const L = symLayout(m, units, areas, forms.count, consts.bytes, optBytes);
  const formFns = [...forms.fns.map((f) => ({ ...f, what: f.what ?? [...forms.byUnit.values()].find((k) => k.name === f.name)!.what })), ...(train?.fn ? [train.fn] : [])];
  return { train, consts, forms, L, formFns };
}

/** The wasm module of a model with symbolic dimensions (see the head of this file). */
export function emitSymbolicWasm(m: ModuleInfo, typed = true): string {
  const T = (s: string) => (typed ? s : '');
  const syms = symbols(m.fwd);
  const deg = degrees(m, syms);
  const units = allUnits(m.plan);
  const points = [...grid(syms, deg), Object.fromEntries(syms.map((d) => [d, CHECK]))];
  const areas = matmulAreas(m, units, points[0]!);
  const { train, consts, forms, L, formFns } = layoutAll(m, units, areas, syms, typed);
  const params = forms.params(L.offsets, L.productAt);
  const probes = points.map((p) => probe(m, units, L, p, forms));
  const fitNum = (values: number[]) => {
    const p = fit(syms, deg, points.slice(0, -1), values.slice(0, -1));
    return p && evalPoly(p, syms, points.at(-1)!) === values.at(-1) ? polyCode(p, syms) : undefined;
  };
  const { kernels, byUnit } = fitKernels(units, probes, fitNum);
  // matmul and convolution kernels have multiply-adds: fused (f32x4.relaxed_madd) where the runtime has relaxed SIMD
  const madds = kernels.length > 0;
  const formCode = formsDecl(formFns, typed);
  // (the convolutions' kernels of symbolic-forms.ts have multiply-adds too: fused the same way)
  const relaxed = madds || formCode.sites.length > 0;
  const needsProduct = kernels.some(({ u, k }) => k.d.kind === 'matmul' && !k.d.productStored && !k.d.fusedEpilogue && !forms.byUnit.has(u));
  const sizes = syms.map((d) => `${d}${T(': number')}`).join(', ');
  const buffers = m.plan.buffers;
  const ARRAY = { f32: 'Float32Array', i32: 'Int32Array' } as const;

  const runtime = [
    '// ---------------------------------------------------------------------------------------------',
    ...(kernels.length ? [`// WebAssembly SIMD kernels, encoded for the sizes of each call (${syms.join(', ')}) and kept for later calls of those sizes:`] : []),
    ...kernels.map(({ k }) => `//   ${k.name}: ${commentText(k.d.doc)}   (${k.d.kind})`),
    ...formCode.lines,
    ...(typed ? apiDecl(relaxed, kernels.map(({ k }) => k.name)) : []),
    ...generatorsDecl(typed, madds),
    ...(relaxed
      ? [
          '// Relaxed SIMD: where the runtime validates a function of one f32x4.relaxed_madd, the kernels are encoded with their',
          "// multiply-adds fused (codegen/wasm/encode.ts `madd`; those of the kernels built once rewritten in `formBytes`); `simd` says which kernels run.",
          `export const simd${T(": 'relaxed' | 'plain'")} = WebAssembly.validate(${relaxedProbe()}) ? 'relaxed' : 'plain';`,
          ...(formCode.sites.length ? relaxSitesDecl(formCode.sites, 'formBytes', 'formMaddAt', typed).flat() : []),
        ]
      : []),
    '',
    '/** The layout of the memory and the kernels\' code for one set of sizes. */',
    `function sized(${sizes}) {`,
    `  const end = ${polyText(L.end)};`,
    `  if (end + ${PADDING} > ${WASM_MAX_PAGES * PAGE}) throw new RangeError(\`${m.fwd.name}: ${syms.map((d) => `${d} = \${${d}}`).join(', ')} needs \${end + ${PADDING}} bytes of wasm memory, more than wasm's 4 GiB (${WASM_MAX_PAGES} pages of 64 KiB): call with a smaller ${syms.join(' or ')}, or use the flat module (graphc build --target ts)\`);`,
    '  return {',
    `    offsets: [${L.offsets.map(polyText).join(', ')}], // of the arrays, in bytes (ir/layout.ts)`,
    `    lengths: [${buffers.map((b) => sizeText(b.size)).join(', ')}],`,
    '    end,',
    `    productAt: ${polyText(L.productAt)},`,
    `    productFloats: ${polyText(L.productFloats)},`,
    `    params: [${params.map(polyText).join(', ')}], // the parameter block of the kernels of the kernel form`,
    '    fns: [',
    ...kernels.map(({ k, code }) => `      { name: ${JSON.stringify(k.name)}, body: gen.${k.gen}(${code}) }, // ${commentText(k.d.doc)}`),
    '    ],',
    '  };',
    '}',
    '',
    train?.fn
      ? `const memory = new WebAssembly.Memory({ initial: ${Math.ceil((L.paramAt + PADDING) / PAGE)} }); // its static part (the optimizer state is viewed at load), grown for larger sizes (which detaches the arrays of the arena: layout() views it anew)`
      : `const memory = new WebAssembly.Memory({ initial: 1 }); // grown for larger sizes (which detaches the arrays of the arena: layout() views it anew)`,
    `const built = new Map${T('<string, { offsets: number[]; lengths: number[]; productAt: number; productFloats: number; params: number[]; kernels: Kernels }>')}();`,
    ...(formFns.length ? [`const forms = new WebAssembly.Instance(new WebAssembly.Module(formBytes), { env: { memory } }).exports${T(' as unknown as Forms')}; // their sizes are read from the parameter block`] : []),
    `let kernels${T(': Kernels')} = {}${T(' as Kernels')}; // the kernels of the sizes laid out`,
    `let product = new Float32Array(0); // matmul products read by an epilogue loop`,
    'let inMemory = false; // whether the arena\'s arrays are views of the memory yet (at load they are not)',
    '',
    '/** The memory and the kernels for the sizes in `dims`: made for the first call with them, then reused. */',
    `function relayout()${T(': void')} {`,
    `  const sizes = \`${syms.map((d) => `\${dims.${d}}`).join(',')}\`;`,
    '  let s = built.get(sizes);',
    '  if (s === undefined) {',
    `    const k = sized(${syms.map((d) => `dims.${d}`).join(', ')});`,
    `    const pages = Math.ceil((k.end + ${PADDING}) / ${PAGE});`,
    `    const have = memory.buffer.byteLength / ${PAGE};`,
    '    if (pages > have) memory.grow(pages - have);',
    ...(kernels.length
      ? [
          `    const bytes = gen.encodeModule(pages, k.fns, { growable: true${madds ? ", relaxed: simd === 'relaxed'" : ''} });`,
          `    s = { ...k, kernels: new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports${T(' as unknown as Kernels')} };`,
        ]
      : [`    s = { ...k, kernels: {}${T(' as Kernels')} }; // (no kernel encoded per size)`]),
    '    built.set(sizes, s);',
    '  }',
    '  // the static arrays keep their place in every layout: their contents (state, params) move into the memory once',
    ...buffers.map((b) => {
      const view = `new ${ARRAY[b.dtype]}(memory.buffer, s.offsets[${b.id}]${T('!')}, s.lengths[${b.id}]${T('!')})`;
      return isStatic(b.size) ? `  { const v = ${view}; if (!inMemory) v.set(buffers[${b.id}]); buffers[${b.id}] = v; }` : `  buffers[${b.id}] = ${view};`;
    }),
    ...(L.convAreas.length
      ? [
          '  // the convolutions\' im2col scratch: its padded positions are never written and read as 0, and a weight',
          '  // gradient\'s partial sums sit after its 8 chunks\' cols: zeroed for each new size',
          `  for (const [at, n] of ${JSON.stringify(L.convAreas)}) new Uint8Array(memory.buffer, at, n).fill(0);`,
        ]
      : []),
    ...(params.length ? [`  new Int32Array(memory.buffer, ${L.paramAt}, ${params.length}).set(s.params); // the kernels of the kernel form read their sizes and addresses here`] : []),
    ...consts.copies(typed),
    ...(train?.fn ? train.views : []),
    '  inMemory = true;',
    '  product = new Float32Array(memory.buffer, s.productAt, s.productFloats);',
    '  kernels = s.kernels;',
    '}',
    '',
  ];

  const backend: Backend = {
    what: `The flat module with its elementwise, reduction and layout groups as WebAssembly SIMD kernels of the kernel form, and its index routines, convolutions and poolings as kernels, built by graphc (their sizes read at run time)${madds ? `, and its matmuls as kernels encoded at run time for the sizes of ${syms.join(', ')} (the matmul kernel's generator is embedded below)` : ''}: no imports, no tape.`,
    entries: needsProduct ? ['_product: product, // matmul products read by an epilogue loop'] : [],
    ...(train?.fn ? { train: train.backend } : {}),
    buffersDecl: () => {
      throw new Error('internal: the symbolic module has no static arena');
    },
    unit: (u: Unit, e: UnitEmitter) => {
      const ks = byUnit.get(u);
      const form = forms.byUnit.get(u);
      const conv = forms.convs.get(u);
      if (conv) {
        const calls = conv.map((k) => `forms.${k.name}();`);
        if (form) return [...calls, `forms.${form.name}();`];
        // a conv group's epilogue without a kernel: the flat module's loop over the convolution's array
        return convParts(u)?.[1].insts.length ? [...calls, ...e.epilogueLoop(u, e.arrOf(u.graph, u.insts[0]!.result))] : calls;
      }
      if (form && !form.epilogue) return [`forms.${form.name}();`];
      if (!ks) return undefined;
      const d = ks[0]!.k.d;
      const calls = ks.map(({ k }) => `kernels.${k.name}();`);
      if (d.fusedEpilogue) return calls;
      if (form) return [...calls, `forms.${form.name}();`]; // its epilogue, a kernel of its own reading the product
      const mm = u.insts[0]!;
      if (!d.productStored) e.use('_product');
      return [...calls, ...e.epilogueLoop(u, d.productStored ? e.arrOf(u.graph, mm.result) : '_product')];
    },
  };
  const lines = emitTs(m, typed, backend).split('\n');
  // the memory and the kernels, before the arena; layout() (the flat module's, when a call brings other sizes) first lays them out
  const arenaAt = lines.findIndex((l) => l.startsWith('/** The arrays of the arena, named by value'));
  const layoutAt = lines.findIndex((l) => /^function layout\(\)(: void)? \{$/.test(l));
  if (arenaAt < 0 || layoutAt < arenaAt) throw new Error('internal: the symbolic flat module has no arena() and layout()');
  lines.splice(layoutAt + 1, 0, '  relayout(); // the memory, its arrays and the kernels for these sizes');
  gradGetters(m, lines);
  lines.splice(arenaAt, 0, ...runtime);
  lines.push(...createDecl(syms, typed));
  return lines.join('\n') + '\n';
}

/**
 * The constant arrays (not uniform: a uniform one is a literal of the kernels) that kernels of the
 * kernel form read, from `start` (a constant: the static part of the memory): `at` gives one's
 * address (noting it as read), `copies` the lines of relayout() that copy the read ones in, once.
 */
/** The part of the WebAssembly API the typed module uses (TypeScript has it only with the DOM library), and its kernels' type. */
function apiDecl(madds: boolean, kernelNames: readonly string[]): string[] {
  return [
    '// The part of the WebAssembly API this module uses (declared here: TypeScript has it only with the DOM library).',
    'declare const WebAssembly: {',
    '  Memory: new (size: { initial: number; maximum?: number; shared?: boolean }) => { readonly buffer: ArrayBufferLike; grow(pages: number): number };',
    '  Module: new (bytes: Uint8Array) => object;',
    '  Instance: new (module: object, imports: object) => { readonly exports: object };',
    ...(madds ? ['  validate: (bytes: Uint8Array) => boolean;'] : []),
    '};',
    `type Kernels = { ${kernelNames.map((n) => `${n}(): void;`).join(' ')} };`,
  ];
}

function constArrays(m: ModuleInfo, start: number): { bytes: number; at(name: string): number | undefined; copies(typed: boolean): string[] } {
  const consts = new Map<string, { at: number; dtype: 'f32' | 'i32'; data: readonly number[] }>();
  let end = start;
  for (const g of [m.fwd, m.bwd])
    for (const inst of g.insts) {
      const name = g.value(inst.result).name;
      const st = m.plan.storage.get(name);
      if (inst.op === 'fwd' || st?.kind !== 'const' || consts.has(name) || uniformConst(m.plan, name) !== undefined) continue;
      consts.set(name, { at: end, dtype: g.type(inst.result).dtype, data: st.data });
      end += arrayBytes(size(st.data.length)).coef;
    }
  const read = new Set<string>();
  return {
    bytes: end - start,
    at(name) {
      const c = consts.get(name);
      if (c) read.add(name);
      return c?.at;
    },
    copies: () =>
      [...read].map((name) => {
        const c = consts.get(name)!;
        return `  if (!inMemory) new ${c.dtype === 'f32' ? 'Float32Array' : 'Int32Array'}(memory.buffer, ${c.at}, ${c.data.length}).set([${c.data.map((x) => num(x).code).join(', ')}]); // ${commentText(name)}, read by the kernels`;
      }),
  };
}

/** The kernels built once (of the kernel form, the index routines', poolings' and convolutions'), encoded here for every size: their list, their bytes, and the offsets of their multiply-adds in them. */
function formsDecl(fns: readonly { name: string; body: Body; what: string }[], typed: boolean): { lines: string[]; sites: number[] } {
  const sites: number[] = [];
  if (!fns.length) return { lines: [], sites };
  const bytes = encodeModule(1, fns, { growable: true, sites });
  const chunks = Buffer.from(bytes).toString('base64').match(/.{1,96}/g) ?? [''];
  const lines = [
    `// WebAssembly SIMD kernels built once by graphc for every size (${bytes.length} bytes: the kernel form's, the index routines', convolutions' and poolings'): each reads its sizes, strides and addresses from the parameter block`,
    ...fns.map((f) => `//   ${f.name}: ${f.what}`),
    ...(typed ? [`type Forms = { ${fns.map((f) => `${f.name}(): void;`).join(' ')} };`] : []),
    'const formWasm = [',
    ...chunks.map((c) => `'${c}',`),
    "].join('');",
    'const formBytes = Uint8Array.from(atob(formWasm), (c) => c.charCodeAt(0));',
  ];
  return { lines, sites };
}

/**
 * The gradients are arrays of the arena, which every layout views anew: the result reads them
 * through getters (a forward-only model, no loss, has no result and no gradients).
 */
function gradGetters(m: ModuleInfo, lines: string[]): void {
  const resultAt = lines.findIndex((l) => /^const result\b.*grads: \{ .* \} \};$/.test(l));
  if (resultAt < 0 && !isForwardOnly(m.fwd)) throw new Error('internal: the symbolic flat module has no result');
  if (resultAt >= 0) lines[resultAt] = lines[resultAt]!.replace(/grads: \{ (.*) \} \};$/, (_all, list: string) => {
    const entries = list.split(', ').map((e) => {
      const [, k, v] = /^(.+?): (.+)$/.exec(e)!;
      return v!.startsWith('buf.') ? `get ${k}() { return ${v}; }` : e;
    });
    return `grads: { ${entries.join(', ')} } };`;
  });
}

/** create({ threads }) of a symbolic module: refused, with the reason. */
function createDecl(syms: readonly string[], typed: boolean): string[] {
  const T = (s: string) => (typed ? s : '');
  return [
    '',
    '/**',
    ' * Threads are not available for a module with symbolic dimensions: its kernels are encoded per',
    ' * call size on the calling thread, and the threaded instance needs them fixed. Build the module',
    ' * for a fixed size (a number instead of a dimension name) to use create({ threads }).',
    ' */',
    `export async function create(_options${T('?: { threads?: number; minWork?: number; adapt?: boolean }')})${T(': Promise<never>')} {`,
    `  throw new Error(${JSON.stringify(`create({ threads }): this wasm module has symbolic dimensions (${syms.join(', ')}), whose kernels are encoded for each call's sizes on the calling thread; threads need a build for fixed sizes (a number instead of a dimension name)`)});`,
    '}',
  ];
}
