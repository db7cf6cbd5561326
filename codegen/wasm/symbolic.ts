// The wasm module of a model with symbolic dimensions (`g.input('Xb', ['B', 3], 'i32')`): the flat
// module's symbolic form (its steps are closures over the bound sizes, see codegen/ts.ts), with
// its arena in one growable WebAssembly.Memory. Its elementwise, reduction and layout groups (and
// a matmul's or convolution's epilogue) are kernels of the kernel form encoded once, at build time,
// and so are its matmuls, index routines, softmaxes, convolutions and poolings (the static
// module's kernels, where their sizes allow) and the optimizer's update
// (codegen/wasm/symbolic-train.ts): each reads its symbolic sizes, strides and addresses from a
// parameter block (codegen/wasm/symbolic-forms.ts). The first call that brings a set of sizes
// lays the memory out for them (growing it when they need more) and writes the parameter block;
// nothing is encoded at run time. The module imports nothing.
//
// The memory's layout is the layout pass's (ir/layout.ts, `symLayout` below): every array's
// offset, the scratch areas and the end are polynomials in the symbols, written into the module
// as code and evaluated for each new set of sizes; no two arrays live at once overlap at any
// sizes (test/layout.test.ts). An index routine, convolution or
// pooling whose sizes codegen/wasm/index-kernels.ts, conv.ts or pool.ts cannot take at run time
// (symbolic-forms.ts), or a group the kernel form's renderer refuses (docs/wasm-symbolic.md,
// "Not yet") runs as the flat module's code.

import type { Unit } from '../../ir/memplan.js';
import { allUnits } from '../../ir/memplan.js';
import { isStatic, numelSize, size, sizeText, symbols } from '../../ir/dims.js';
import type { Poly } from '../../ir/layout.js';
import { arrayBytes, placeAreas, polyAdd, polyEval, polyMax, polyText } from '../../ir/layout.js';
import type { Loc } from '../../ir/types.js';
import { formatType, numel } from '../../ir/types.js';
import { CompileError } from '../../ir/errors.js';
import { num } from '../expr.js';
import type { ModuleInfo } from '../module.js';
import { commentText, typedAs, uniformConst } from '../module.js';
import type { Backend, UnitEmitter } from '../ts.js';
import { emitTs } from '../ts.js';
import { isForwardOnly } from '../../ir/autodiff.js';
import { isConv } from './decide.js';
import { CHUNKS, convScratch } from './conv.js';
import { PADDING, PAGE, addresses } from './layout.js';
import type { MatmulAreas } from './symbolic-forms.js';
import { symForms } from './symbolic-forms.js';
import { encodeModule } from './encode.js';
import { relaxedProbe, relaxSitesDecl } from './relaxed.js';
import type { Body } from './encode.js';
import { symTrain } from './symbolic-train.js';
import { convGeometry } from '../../ir/conv.js';

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
  /** Where matmuls pack a transposed A in row tiles. */
  readonly packAAt: Poly;
  /** Floats of the product area. */
  readonly productFloats: Poly;
  readonly end: Poly;
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
  // B packed (as [K,N] for a transposed B, else in panels), products only an epilogue reads, and A packed in row
  // tiles: each as large as the largest (of the matmuls `areas` names)
  const mm = (u: Unit) => u.insts[0]!;
  const pack = polyMax(...units.filter((u) => areas?.pack.has(u)).map((u) => [arrayBytes(numelSize(u.graph.type(mm(u).args[1]!).shape.slice(-2)))]));
  const product = polyMax(...units.filter((u) => areas?.product.has(u)).map((u) => [arrayBytes(numelSize(u.graph.type(mm(u).result).shape))]));
  const packA = polyMax(...units.filter((u) => areas?.packA.has(u)).map((u) => [arrayBytes(numelSize(u.graph.type(mm(u).args[0]!).shape.slice(-2)))]));
  const placed = placeAreas(end, [pack, product, packA]);
  const [packAt, productAt, packAAt] = placed.at as [Poly, Poly, Poly];
  return { offsets, convAt, convAreas, optAt, paramAt, packAt, productAt, packAAt, productFloats: product.map((t) => ({ ...t, coef: t.coef / 4 })), end: placed.end };
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
 * The optimizer's state and update kernel (symbolic-train.ts: at constant addresses, a param and
 * its gradient being static arrays), the constant arrays, the kernels of the kernel form (their
 * parameter block comes before the symbolic arrays) and the final layout.
 */
function layoutAll(m: ModuleInfo, units: readonly Unit[], syms: readonly string[], typed: boolean) {
  // (the pack and product areas come after every array: the forms' addresses, laid out without them, do not move)
  const Ls = symLayout(m, units);
  const staticAddress = addresses(m.plan, Ls.offsets.map((p, id) => (isStatic(m.plan.buffers[id]!.size) ? polyEval(p, {}) : (undefined as unknown as number))));
  const train = m.optimizer ? symTrain(m, staticAddress, Ls.optAt, syms, typedAs(typed)) : undefined;
  const optBytes = train?.bytes ?? 0;
  const consts = constArrays(m, symLayout(m, units, undefined, 0, 0, optBytes).paramAt);
  const L0 = symLayout(m, units, undefined, 0, consts.bytes, optBytes);
  const convAt = (u: Unit) => {
    const at = L0.convAt.get(u);
    return at && polyEval(at, {});
  };
  const forms = symForms(m, units, L0.paramAt, (id) => (isStatic(m.plan.buffers[id]!.size) ? polyEval(L0.offsets[id]!, {}) : undefined), consts.at, convAt);
  const L = symLayout(m, units, forms.areas, forms.count, consts.bytes, optBytes);
  const formFns = [...forms.fns, ...(train?.fn ? [train.fn] : [])];
  return { train, consts, forms, L, formFns };
}

/** The wasm module of a model with symbolic dimensions (see the head of this file). */
export function emitSymbolicWasm(m: ModuleInfo, typed = true): string {
  const T = (s: string) => (typed ? s : '');
  const syms = symbols(m.fwd);
  const units = allUnits(m.plan);
  const { train, consts, forms, L, formFns } = layoutAll(m, units, syms, typed);
  const params = forms.params(L.offsets, L);
  const formCode = formsDecl(formFns, typed);
  // matmul and convolution kernels have multiply-adds: fused (f32x4.relaxed_madd) where the runtime has relaxed SIMD
  const relaxed = formCode.sites.length > 0;
  const needsProduct = [...forms.matmuls].some(([u, k]) => !k.stored && !k.fused && !forms.byUnit.has(u));
  const sizes = syms.map((d) => `${d}${T(': number')}`).join(', ');
  const buffers = m.plan.buffers;
  const ARRAY = { f32: 'Float32Array', i32: 'Int32Array' } as const;

  const runtime = [
    '// ---------------------------------------------------------------------------------------------',
    ...formCode.lines,
    ...(typed ? apiDecl(relaxed) : []),
    ...(relaxed
      ? [
          '// Relaxed SIMD: where the runtime validates a function of one f32x4.relaxed_madd, the kernels\' multiply-adds are',
          "// fused (codegen/wasm/encode.ts `madd`, rewritten in `formBytes`); `simd` says which kernels run.",
          `export const simd${T(": 'relaxed' | 'plain'")} = WebAssembly.validate(${relaxedProbe()}) ? 'relaxed' : 'plain';`,
          ...relaxSitesDecl(formCode.sites, 'formBytes', 'formMaddAt', typed).flat(),
        ]
      : []),
    '',
    '/** The layout of the memory for one set of sizes, and the parameter block the kernels read. */',
    `function sized(${sizes}) {`,
    `  const end = ${polyText(L.end)};`,
    `  if (end + ${PADDING} > ${WASM_MAX_PAGES * PAGE}) throw new RangeError(\`${m.fwd.name}: ${syms.map((d) => `${d} = \${${d}}`).join(', ')} needs \${end + ${PADDING}} bytes of wasm memory, more than wasm's 4 GiB (${WASM_MAX_PAGES} pages of 64 KiB): call with a smaller ${syms.join(' or ')}, or use the flat module (graphc build --target ts)\`);`,
    '  return {',
    `    offsets: [${L.offsets.map(polyText).join(', ')}], // of the arrays, in bytes (ir/layout.ts)`,
    `    lengths: [${buffers.map((b) => sizeText(b.size)).join(', ')}],`,
    '    end,',
    `    productAt: ${polyText(L.productAt)},`,
    `    productFloats: ${polyText(L.productFloats)},`,
    `    params: [${params.map(polyText).join(', ')}], // the parameter block of the kernels`,
    '  };',
    '}',
    '',
    train?.fn
      ? `const memory = new WebAssembly.Memory({ initial: ${Math.ceil((L.paramAt + PADDING) / PAGE)} }); // its static part (the optimizer state is viewed at load), grown for larger sizes (which detaches the arrays of the arena: layout() views it anew)`
      : `const memory = new WebAssembly.Memory({ initial: 1 }); // grown for larger sizes (which detaches the arrays of the arena: layout() views it anew)`,
    `const built = new Map${T('<string, { offsets: number[]; lengths: number[]; end: number; productAt: number; productFloats: number; params: number[] }>')}();`,
    ...(formFns.length ? [`const forms = new WebAssembly.Instance(new WebAssembly.Module(formBytes), { env: { memory } }).exports${T(' as unknown as Forms')}; // their sizes are read from the parameter block`] : []),
    `let product = new Float32Array(0); // matmul products read by an epilogue loop`,
    'let inMemory = false; // whether the arena\'s arrays are views of the memory yet (at load they are not)',
    '',
    '/** The memory for the sizes in `dims`: laid out for the first call with them, then reused. */',
    `function relayout()${T(': void')} {`,
    `  const sizes = \`${syms.map((d) => `\${dims.${d}}`).join(',')}\`;`,
    '  let s = built.get(sizes);',
    '  if (s === undefined) {',
    `    s = sized(${syms.map((d) => `dims.${d}`).join(', ')});`,
    `    const pages = Math.ceil((s.end + ${PADDING}) / ${PAGE});`,
    `    const have = memory.buffer.byteLength / ${PAGE};`,
    '    if (pages > have) memory.grow(pages - have);',
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
    '}',
    '',
  ];

  const backend: Backend = {
    what: 'The flat module with its elementwise, reduction and layout groups as WebAssembly SIMD kernels of the kernel form, and its matmuls, index routines, convolutions and poolings as kernels, built by graphc (their sizes read at run time): no imports, no tape.',
    entries: needsProduct ? ['_product: product, // matmul products read by an epilogue loop'] : [],
    ...(train?.fn ? { train: train.backend } : {}),
    buffersDecl: () => {
      throw new Error('internal: the symbolic module has no static arena');
    },
    unit: (u: Unit, e: UnitEmitter) => {
      const mm = forms.matmuls.get(u);
      const form = forms.byUnit.get(u);
      const conv = forms.convs.get(u);
      if (conv) {
        const calls = conv.map((k) => `forms.${k.name}();`);
        if (form) return [...calls, `forms.${form.name}();`];
        // a conv group's epilogue without a kernel: the flat module's loop over the convolution's array
        return convParts(u)?.[1].insts.length ? [...calls, ...e.epilogueLoop(u, e.arrOf(u.graph, u.insts[0]!.result))] : calls;
      }
      if (form && !form.epilogue) return [`forms.${form.name}();`];
      if (!mm) return undefined;
      const call = `forms.${mm.name}();`;
      if (mm.fused) return [call];
      if (form) return [call, `forms.${form.name}();`]; // its epilogue, a kernel of its own reading the product
      if (!mm.stored) e.use('_product');
      return [call, ...e.epilogueLoop(u, mm.stored ? e.arrOf(u.graph, u.insts[0]!.result) : '_product')];
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
/** The part of the WebAssembly API the typed module uses (TypeScript has it only with the DOM library). */
function apiDecl(madds: boolean): string[] {
  return [
    '// The part of the WebAssembly API this module uses (declared here: TypeScript has it only with the DOM library).',
    'declare const WebAssembly: {',
    '  Memory: new (size: { initial: number; maximum?: number; shared?: boolean }) => { readonly buffer: ArrayBufferLike; grow(pages: number): number };',
    '  Module: new (bytes: Uint8Array) => object;',
    '  Instance: new (module: object, imports: object) => { readonly exports: object };',
    ...(madds ? ['  validate: (bytes: Uint8Array) => boolean;'] : []),
    '};',
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

/** The kernels built once (of the kernel form, the matmuls', index routines', poolings' and convolutions'), encoded here for every size: their list, their bytes, and the offsets of their multiply-adds in them. */
function formsDecl(fns: readonly { name: string; body: Body; what: string }[], typed: boolean): { lines: string[]; sites: number[] } {
  const sites: number[] = [];
  if (!fns.length) return { lines: [], sites };
  const bytes = encodeModule(1, fns, { growable: true, sites });
  const chunks = Buffer.from(bytes).toString('base64').match(/.{1,96}/g) ?? [''];
  const lines = [
    `// WebAssembly SIMD kernels built once by graphc for every size (${bytes.length} bytes: the kernel form's, the matmuls', index routines', convolutions' and poolings'): each reads its sizes, strides and addresses from the parameter block`,
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
    ' * Threads are not available for a module with symbolic dimensions: its memory is laid out anew',
    ' * for each call\'s sizes, and the threaded instance splits its kernels for fixed ones. Build the',
    ' * module for a fixed size (a number instead of a dimension name) to use create({ threads }).',
    ' */',
    `export async function create(_options${T('?: { threads?: number; minWork?: number; adapt?: boolean }')})${T(': Promise<never>')} {`,
    `  throw new Error(${JSON.stringify(`create({ threads }): this wasm module has symbolic dimensions (${syms.join(', ')}), whose memory is laid out anew for each call's sizes; threads need a build for fixed sizes (a number instead of a dimension name)`)});`,
    '}',
  ];
}
