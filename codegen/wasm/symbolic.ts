// The wasm module of a model with symbolic dimensions (`g.input('Xb', ['B', 3], 'i32')`): the flat
// module's symbolic form (its steps are closures over the bound sizes, see codegen/ts.ts), with
// its arena in one growable WebAssembly.Memory and its matmul, elementwise, reduction and softmax
// groups as wasm SIMD kernels encoded at run time: the first call that brings a set of sizes lays
// the memory out for them (growing it when they need more), encodes the kernels for those sizes
// and addresses with the kernel generators of codegen/wasm/*.ts, embedded in the module, and
// instantiates them; a later call with the same sizes reuses them. The module imports nothing.
//
// What a kernel gets (its sizes, its arrays' addresses, its steps) is decided here at build time,
// by the static module's decisions (codegen/wasm/decide.ts) run on the graph with the symbols bound
// to a grid of probe sizes: every number of a kernel's description is a polynomial in the bound
// sizes (the layout puts the static arrays first, then the symbolic ones, each 16-byte aligned per
// unit of its symbols), which the probes determine and one more probe checks. A group whose
// description does not come out the same way at every probe runs as the flat module's code.

import * as fs from 'node:fs';
import ts from 'typescript';
import type { Graph } from '../../ir/graph.js';
import type { Unit } from '../../ir/memplan.js';
import { allUnits, valueName } from '../../ir/memplan.js';
import type { Size } from '../../ir/dims.js';
import { bindShape, isStatic, numelSize, sizeText, symbols } from '../../ir/dims.js';
import type { Loc, ValueId } from '../../ir/types.js';
import { formatType, numel } from '../../ir/types.js';
import { CompileError } from '../../ir/errors.js';
import { num } from '../expr.js';
import type { ModuleInfo } from '../module.js';
import { commentText } from '../module.js';
import type { Backend, UnitEmitter } from '../ts.js';
import { emitTs } from '../ts.js';
import { isForwardOnly } from '../../ir/autodiff.js';
import type { Decision } from './decide.js';
import { accSlot, decideElementwise, decideMatmul, decideReduce, decideRowReduce, decideSoftmax, isConv, reductionOf } from './decide.js';
import { isPool } from './pool.js';
import { PADDING, PAGE, align } from './layout.js';

/** The kernel generators the module carries, in dependency order, and what it calls of them. */
const SOURCES = ['encode', 'steps', 'elementwise', 'matmul', 'softmax'] as const;
const GENERATORS = ['encodeModule', 'matmulBody', 'elementwiseBody', 'reduceBody', 'rowReduceBody', 'softmaxBody'] as const;

type Dims = Readonly<Record<string, number>>;

/** A kernel of the symbolic module: what the steps call, and its description at one probe. */
interface SymKernel {
  readonly name: string;
  readonly d: Exclude<Decision, { kind: 'update' | 'conv' }>;
  /** The generator and its argument. */
  readonly gen: (typeof GENERATORS)[number];
  readonly arg: object;
}

/** The layout and the kernels at one binding of the symbols. */
interface Probe {
  readonly offsets: number[];
  readonly end: number;
  readonly productAt: number;
  readonly productFloats: number;
  readonly kernels: Map<Unit, SymKernel>;
}

/** Bytes of an array of `s` floats in the symbolic layout: 16-byte aligned per unit of its symbols. */
const bytesOf = (s: Size, dims: Dims) => align(s.coef * 4) * s.syms.reduce((a, d) => a * dims[d]!, 1);

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

/** The layout and the kernels' descriptions for the sizes `dims`. */
function probe(m: ModuleInfo, units: readonly Unit[], dims: Dims): Probe {
  const plan = m.plan;
  const offsets: number[] = new Array(plan.buffers.length);
  let end = 0;
  for (const pass of [true, false])
    for (const b of plan.buffers)
      if (isStatic(b.size) === pass) {
        offsets[b.id] = end;
        end += bytesOf(b.size, dims);
      }
  const root = (n: string): string => {
    const s = plan.storage.get(n);
    return s?.kind === 'alias' ? root(s.of) : n;
  };
  const address = (g: Graph, v: ValueId) => {
    const id = plan.bufferOf.get(root(valueName(g, v)));
    return id === undefined ? undefined : offsets[id];
  };
  const graphs = new Map([m.fwd, m.bwd, ...plan.bodies.keys()].map((g) => [g, bound(g, dims)]));
  const at = (u: Unit): Unit => ({ ...u, graph: graphs.get(u.graph)! });
  // the accumulators of every reduction (one area: the units run one after another)
  const accAt = end;
  const kept = (u: Unit): Size | undefined => {
    const r = reductionOf(u);
    if (!r) return undefined;
    const shape = u.graph.type(r.reductions[0]!.args[0]!).shape;
    return numelSize(shape.filter((_d, i) => !r.axes.includes(i)));
  };
  // as large as all of them together: a maximum of polynomials is not one
  for (const u of units) {
    const k = kept(u);
    if (k) end += reductionOf(u)!.reductions.length * accSlot(reductionOf(u)!, bytesOf(k, dims));
  }
  const decisions = new Map<Unit, Exclude<Decision, { kind: 'update' | 'conv' | 'pool' | 'channel' }>>();
  for (const u of units) {
    const op = u.insts[0]!.op;
    if (isConv(op) || isPool(op)) continue; // a convolution or a pooling runs as the flat module's code (not yet a kernel here)
    const b = at(u);
    const k = kept(u);
    const d =
      op === 'matmul'
        ? decideMatmul(m, b, address)
        : (decideElementwise(m, b, address) ?? decideReduce(m, b, address, accAt, k && accSlot(reductionOf(u)!, bytesOf(k, dims))) ?? decideRowReduce(m, b, address, accAt, k && bytesOf(k, dims)) ?? decideSoftmax(m, b, address));
    if (d) decisions.set(u, d);
  }
  // one area each for the packing of a transposed B and for products read by an epilogue loop,
  // as large as all of them together
  const packAt = end;
  let pack = 0;
  let product = 0;
  for (const [u, d] of decisions) {
    if (d.kind !== 'matmul') continue;
    const mm = u.insts[0]!;
    const shape = (v: ValueId) => u.graph.type(v).shape;
    if (d.kernel.transB) pack += bytesOf(numelSize(shape(mm.args[1]!).slice(-2)), dims);
    if (!d.productStored && !d.fusedEpilogue) product += bytesOf(numelSize(shape(mm.result)), dims);
  }
  const kernels = new Map<Unit, SymKernel>();
  const productStart = packAt + pack;
  for (const [u, d] of decisions) {
    const last = valueName(u.graph, u.insts[u.insts.length - 1]!.result);
    if (d.kind === 'matmul') {
      const mm = u.insts[0]!;
      const name = `matmul_${last}`;
      const c = d.productStored ? address(u.graph, mm.result) : d.fusedEpilogue ? undefined : productStart;
      kernels.set(u, { name, d, gen: 'matmulBody', arg: { ...d.kernel, name, c, pack: d.kernel.transB ? packAt : undefined } });
    } else {
      const gen = ({ elementwise: 'elementwiseBody', reduce: 'reduceBody', rowreduce: 'rowReduceBody', softmax: 'softmaxBody' } as const)[d.kind];
      kernels.set(u, { name: `${d.kind}_${last}`, d, gen, arg: d.kernel });
    }
  }
  return { offsets, end: productStart + product, productAt: productStart, productFloats: product / 4, kernels };
}

// ---------------------------------------------------------------------------------------------
// Polynomials from probes

/** A polynomial in the symbols: coefficient by exponents (one per symbol). */
type Poly = Map<string, { exps: number[]; coef: number }>;

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
function fit(syms: readonly string[], deg: readonly number[], points: readonly Dims[], values: readonly number[]): Poly | undefined {
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
  const poly: Poly = new Map();
  for (let c = 0; c < n; c++) {
    const coef = Math.round(a[c]![n]! / a[c]![c]!);
    if (coef !== 0) poly.set(monos[c]!.join(','), { exps: monos[c]!, coef });
  }
  return points.every((p, r) => evalPoly(poly, syms, p) === values[r]) ? poly : undefined;
}

function evalPoly(p: Poly, syms: readonly string[], dims: Dims): number {
  let s = 0;
  for (const { exps, coef } of p.values()) s += coef * exps.reduce((acc, x, k) => acc * dims[syms[k]!]! ** x, 1);
  return s;
}

/** A polynomial as code over the symbols' names. */
function polyCode(p: Poly, syms: readonly string[]): string {
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

/** The kernel generators as one closure: TypeScript, or JavaScript with `typed` false. */
function generatorsDecl(typed: boolean): string[] {
  const body = SOURCES.map((f) =>
    [`// ---- codegen/wasm/${f}.ts`, ...generatorSource(f).split('\n').filter((l) => !/^import /.test(l)).map((l) => l.replace(/^export /, ''))].join('\n'),
  ).join('\n');
  const code = typed ? body : ts.transpileModule(body, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText.replace(/^export \{\};\s*$/m, '');
  return [
    '// The kernel generators of graphc (codegen/wasm/encode.ts, steps.ts, elementwise.ts, matmul.ts, softmax.ts),',
    '// embedded: the first call with a set of sizes encodes its kernels with them.',
    'const gen = (() => {',
    code,
    `  return { ${GENERATORS.join(', ')} };`,
    '})();',
  ];
}

// ---------------------------------------------------------------------------------------------
// The module

/** The wasm module of a model with symbolic dimensions (see the head of this file). */
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

export function emitSymbolicWasm(m: ModuleInfo, typed = true): string {
  const T = (s: string) => (typed ? s : '');
  const syms = symbols(m.fwd);
  const deg = degrees(m, syms);
  const units = allUnits(m.plan);
  const points = [...grid(syms, deg), Object.fromEntries(syms.map((d) => [d, CHECK]))];
  const probes = points.map((p) => probe(m, units, p));
  const fitNum = (values: number[]) => {
    const p = fit(syms, deg, points.slice(0, -1), values.slice(0, -1));
    return p && evalPoly(p, syms, points.at(-1)!) === values.at(-1) ? polyCode(p, syms) : undefined;
  };
  const layoutCode = (xs: number[], what: string) => {
    const c = describe(xs, fitNum);
    if (c === undefined) throw new Error(`internal: the symbolic wasm layout's ${what} is not a polynomial in ${syms.join(', ')}`);
    return c;
  };
  // the kernels: a group whose description has the same form at every probe
  const kernels: { u: Unit; k: SymKernel; code: string }[] = [];
  for (const u of units) {
    const ks = probes.map((p) => p.kernels.get(u));
    if (ks.some((k) => k === undefined)) continue;
    const code = describe(ks.map((k) => k!.arg), fitNum);
    if (code !== undefined && ks.every((k) => k!.gen === ks[0]!.gen && k!.name === ks[0]!.name)) kernels.push({ u, k: ks[0]!, code });
  }
  const byUnit = new Map(kernels.map((k) => [k.u, k]));
  const needsProduct = kernels.some(({ k }) => k.d.kind === 'matmul' && !k.d.productStored && !k.d.fusedEpilogue);
  const sizes = syms.map((d) => `${d}${T(': number')}`).join(', ');
  const buffers = m.plan.buffers;
  const ARRAY = { f32: 'Float32Array', i32: 'Int32Array' } as const;

  const runtime = [
    '// ---------------------------------------------------------------------------------------------',
    `// WebAssembly SIMD kernels, encoded for the sizes of each call (${syms.join(', ')}) and kept for later calls of those sizes:`,
    ...kernels.map(({ k }) => `//   ${k.name}: ${commentText(k.d.doc)}   (${k.d.kind})`),
    ...(typed
      ? [
          '// The part of the WebAssembly API this module uses (declared here: TypeScript has it only with the DOM library).',
          'declare const WebAssembly: {',
          '  Memory: new (size: { initial: number; maximum?: number; shared?: boolean }) => { readonly buffer: ArrayBufferLike; grow(pages: number): number };',
          '  Module: new (bytes: Uint8Array) => object;',
          '  Instance: new (module: object, imports: object) => { readonly exports: object };',
          '};',
          `type Kernels = { ${kernels.map(({ k }) => `${k.name}(): void;`).join(' ')} };`,
        ]
      : []),
    ...generatorsDecl(typed),
    '',
    '/** The layout of the memory and the kernels\' code for one set of sizes. */',
    `function sized(${sizes}) {`,
    `  const end = ${layoutCode(probes.map((p) => p.end), 'end')};`,
    `  if (end + ${PADDING} > ${WASM_MAX_PAGES * PAGE}) throw new RangeError(\`${m.fwd.name}: ${syms.map((d) => `${d} = \${${d}}`).join(', ')} needs \${end + ${PADDING}} bytes of wasm memory, more than wasm's 4 GiB (${WASM_MAX_PAGES} pages of 64 KiB): call with a smaller ${syms.join(' or ')}, or use the flat module (graphc build --target ts)\`);`,
    '  return {',
    `    offsets: ${layoutCode(probes.map((p) => p.offsets) as unknown as number[], 'offsets')}, // of the arrays, in bytes`,
    `    lengths: [${buffers.map((b) => sizeText(b.size)).join(', ')}],`,
    '    end,',
    `    productAt: ${layoutCode(probes.map((p) => p.productAt), 'product area')},`,
    `    productFloats: ${layoutCode(probes.map((p) => p.productFloats), 'product area')},`,
    '    fns: [',
    ...kernels.map(({ k, code }) => `      { name: ${JSON.stringify(k.name)}, body: gen.${k.gen}(${code}) }, // ${commentText(k.d.doc)}`),
    '    ],',
    '  };',
    '}',
    '',
    `const memory = new WebAssembly.Memory({ initial: 1 }); // grown for larger sizes (which detaches the arrays of the arena: layout() views it anew)`,
    `const built = new Map${T('<string, { offsets: number[]; lengths: number[]; productAt: number; productFloats: number; kernels: Kernels }>')}();`,
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
    '    const bytes = gen.encodeModule(pages, k.fns, { growable: true });',
    `    s = { ...k, kernels: new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports${T(' as unknown as Kernels')} };`,
    '    built.set(sizes, s);',
    '  }',
    '  // the static arrays keep their place in every layout: their contents (state, params) move into the memory once',
    ...buffers.map((b) => {
      const view = `new ${ARRAY[b.dtype]}(memory.buffer, s.offsets[${b.id}]${T('!')}, s.lengths[${b.id}]${T('!')})`;
      return isStatic(b.size) ? `  { const v = ${view}; if (!inMemory) v.set(buffers[${b.id}]); buffers[${b.id}] = v; }` : `  buffers[${b.id}] = ${view};`;
    }),
    '  inMemory = true;',
    '  product = new Float32Array(memory.buffer, s.productAt, s.productFloats);',
    '  kernels = s.kernels;',
    '}',
    '',
  ];

  const backend: Backend = {
    what: `The flat module with its matmuls, elementwise groups, column and row reductions and row softmaxes as WebAssembly SIMD kernels, encoded at run time for the sizes of ${syms.join(', ')} (the kernel generators are embedded below): no imports, no tape.`,
    entries: needsProduct ? ['_product: product, // matmul products read by an epilogue loop'] : [],
    buffersDecl: () => {
      throw new Error('internal: the symbolic module has no static arena');
    },
    unit: (u: Unit, e: UnitEmitter) => {
      const s = byUnit.get(u);
      if (!s) return undefined;
      const call = [`kernels.${s.k.name}();`];
      const d = s.k.d;
      if (d.kind !== 'matmul' || d.fusedEpilogue) return call;
      const mm = u.insts[0]!;
      if (!d.productStored) e.use('_product');
      return [...call, ...e.epilogueLoop(u, d.productStored ? e.arrOf(u.graph, mm.result) : '_product')];
    },
  };
  const lines = emitTs(m, typed, backend).split('\n');
  // the memory and the kernels, before the arena; layout() (the flat module's, when a call brings other sizes) first lays them out
  const arenaAt = lines.findIndex((l) => l.startsWith('/** The arrays of the arena, named by value'));
  const layoutAt = lines.findIndex((l) => /^function layout\(\)(: void)? \{$/.test(l));
  if (arenaAt < 0 || layoutAt < arenaAt) throw new Error('internal: the symbolic flat module has no arena() and layout()');
  lines.splice(layoutAt + 1, 0, '  relayout(); // the memory, its arrays and the kernels for these sizes');
  // the gradients are arrays of the arena, which every layout views anew: read through getters
  // (a forward-only model, no loss, has no result and no gradients)
  const resultAt = lines.findIndex((l) => /^const result\b.*grads: \{ .* \} \};$/.test(l));
  if (resultAt < 0 && !isForwardOnly(m.fwd)) throw new Error('internal: the symbolic flat module has no result');
  if (resultAt >= 0) lines[resultAt] = lines[resultAt]!.replace(/grads: \{ (.*) \} \};$/, (_all, list: string) => {
    const entries = list.split(', ').map((e) => {
      const [, k, v] = /^(.+?): (.+)$/.exec(e)!;
      return v!.startsWith('buf.') ? `get ${k}() { return ${v}; }` : e;
    });
    return `grads: { ${entries.join(', ')} } };`;
  });
  lines.splice(arenaAt, 0, ...runtime);
  lines.push(...createDecl(syms, typed));
  return lines.join('\n') + '\n';
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
