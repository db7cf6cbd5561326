// The WebAssembly target (`--target wasm`): the flat module, with its arena in one
// WebAssembly.Memory and every matmul group (the matmul and its epilogue: bias add, activation)
// a WebAssembly SIMD kernel specialised to the group's shapes and to the addresses of its arrays.
// The kernels are encoded by graphc at build time and embedded in the module, which still
// imports nothing. Every other step is the flat module's code, with the same comments; the
// kernels are called in the same places as the flat module's matmul functions.

import { CompileError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import type { Plan, Unit } from '../ir/memplan.js';
import { valueName } from '../ir/memplan.js';
import { isStatic, numelSize, symbols } from '../ir/dims.js';
import { broadcastStridesSize } from '../ir/shape.js';
import type { Inst, InstOf, ValueId } from '../ir/types.js';
import { formula } from './formula.js';
import { commentText, member } from './module.js';
import type { ModuleInfo, Typed } from './module.js';
import type { Backend, UnitEmitter } from './ts.js';
import { emitTs } from './ts.js';
import { encodeModule } from './wasm/encode.js';
import type { Body } from './wasm/encode.js';
import type { MatmulKernel } from './wasm/matmul.js';
import { matmulBody } from './wasm/matmul.js';
import type { Operand, Step as EpilogueStep } from './wasm/steps.js';

const PAGE = 65536;
/** Bytes after the last array: a kernel's last vector may read up to 12 bytes past an array's end. */
const PADDING = 16;
const align = (n: number) => Math.ceil(n / 16) * 16;

/** How one matmul group is run. */
interface Decision {
  readonly kernel: Omit<MatmulKernel, 'c' | 'pack'>;
  /** The product is stored in its own buffer (else in the scratch area when the epilogue is JS). */
  readonly productStored: boolean;
  /** The epilogue runs in the kernel (else as a loop of the flat module's code after it). */
  readonly fusedEpilogue: boolean;
  readonly doc: string;
}

/** The wasm module: TypeScript, or with `typed` false the same code as plain JavaScript. */
export function emitWasm(m: ModuleInfo, typed = true): string {
  rejectSymbolic(m);
  const plan = m.plan;
  const offsets: number[] = [];
  let end = 0;
  for (const b of plan.buffers) {
    offsets.push(end);
    end += align(b.size.coef * 4);
  }
  const address = addresses(plan, offsets);

  const decisions = new Map<Unit, Decision>();
  for (const u of [...plan.units.forward, ...plan.units.backward]) {
    if (u.insts[0]!.op !== 'matmul') continue;
    const d = decide(m, u, address);
    if (d) decisions.set(u, d);
  }
  // scratch areas: B packed as [K,N] for a transposed B, and products the kernel hands to a JS epilogue
  const packAt = end;
  const packFloats = Math.max(0, ...[...decisions.values()].map((d) => (d.kernel.transB ? d.kernel.K * d.kernel.N : 0)));
  end += align(packFloats * 4);
  const productAt = end;
  const productFloats = Math.max(0, ...[...decisions.values()].map((d) => (d.productStored || d.fusedEpilogue ? 0 : d.kernel.M * d.kernel.N * d.kernel.batch)));
  end += align(productFloats * 4);
  const pages = Math.max(1, Math.ceil((end + PADDING) / PAGE));

  const kernels: { name: string; body: Body; doc: string; d: Decision }[] = [];
  const backend: Backend = {
    what: 'The flat module with its matmuls as WebAssembly SIMD kernels (built by graphc, embedded below): no imports, no tape.',
    entries: productFloats ? [`_product: new Float32Array(memory.buffer, ${productAt}, ${productFloats}), // matmul products read by an epilogue loop`] : [],
    buffersDecl: (arrays, t) => buffersDecl(kernels, pages, offsets, arrays, t),
    matmul: (u: Unit, e: UnitEmitter) => {
      const d = decisions.get(u);
      if (!d) return undefined;
      const g = u.graph;
      const mm = u.insts[0]!;
      const name = `matmul_${valueName(g, u.insts[u.insts.length - 1]!.result)}`;
      const c = d.productStored ? address(g, mm.result) : d.fusedEpilogue ? undefined : productAt;
      const kernel = { ...d.kernel, name, c, pack: d.kernel.transB ? packAt : undefined };
      kernels.push({ name, body: matmulBody(kernel), doc: d.doc, d });
      const call = [`${member('kernels', name)}();`];
      if (d.fusedEpilogue || u.insts.length === 1) {
        // the kernel writes the arrays it computes: name them, so that checks see them as used
        for (const inst of u.insts) if (m.plan.storage.get(valueName(g, inst.result))?.kind === 'buffer') e.arrOf(g, inst.result);
        return call;
      }
      if (!d.productStored) e.use('_product');
      return [...call, ...e.epilogueLoop(u, d.productStored ? e.arrOf(g, mm.result) : '_product')];
    },
  };
  return emitTs(m, typed, backend);
}

function rejectSymbolic(m: ModuleInfo): void {
  const syms = symbols(m.fwd);
  if (syms.length === 0) return;
  const input = m.fwd.insts.find((i) => i.op === 'input' && m.fwd.type(i.result).shape.some((d) => typeof d === 'string'));
  throw new CompileError(
    `--target wasm needs static shapes, but dimension ${syms.join(', ')} is bound per call`,
    'build the wasm module for fixed sizes (a number instead of a dimension name), or use --target ts,gpu, which take any size',
    input?.loc,
  );
}

/** The byte address of a value's array in the memory, when it has one there. */
function addresses(plan: Plan, offsets: readonly number[]): (g: Graph, v: ValueId) => number | undefined {
  const root = (n: string): string => {
    const s = plan.storage.get(n);
    return s?.kind === 'alias' ? root(s.of) : n;
  };
  return (g, v) => {
    const id = plan.bufferOf.get(root(valueName(g, v)));
    return id === undefined ? undefined : offsets[id];
  };
}

/** How to run a matmul group, or undefined for the flat module's loops (an operand outside the memory). */
function decide(m: ModuleInfo, u: Unit, address: (g: Graph, v: ValueId) => number | undefined): Decision | undefined {
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
  const epilogue = u.insts.length > 1 && batch === 1 && out.length === 2 ? epilogueSteps(m, u, address) : undefined;
  const last = u.insts[u.insts.length - 1]!;
  const inUnit = new Set(u.insts.map((x) => x.id));
  const doc = `${valueName(g, last.result)} = ${formula(g, last.result, (d) => inUnit.has(d.id) && m.plan.storage.get(valueName(g, d.result))?.kind !== 'buffer')}`;
  return {
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
    doc,
  };
}

/** A matmul group's epilogue as kernel steps, or undefined when some op has no SIMD form here. */
function epilogueSteps(m: ModuleInfo, u: Unit, address: (g: Graph, v: ValueId) => number | undefined): EpilogueStep[] | undefined {
  const g = u.graph;
  const mm = u.insts[0]!;
  const out = g.type(mm.result).shape;
  const stepOf = new Map<ValueId, number>();
  const storage = (v: ValueId) => m.plan.storage.get(valueName(g, v));
  const operand = (v: ValueId): Operand | undefined => {
    if (v === mm.result) return { kind: 'acc' };
    const step = stepOf.get(v);
    if (step !== undefined) return { kind: 'step', step };
    const s = storage(v);
    if (s?.kind === 'literal') return { kind: 'const', value: s.value };
    const addr = address(g, v);
    if (addr === undefined || g.type(v).dtype !== 'f32') return undefined;
    const [si, sj] = broadcastStridesSize(g.type(v).shape, out);
    if (!isStatic(si!) || !isStatic(sj!) || sj!.coef > 1) return undefined;
    return { kind: 'mem', addr, si: si!.coef, sj: sj!.coef };
  };
  const steps: EpilogueStep[] = [];
  for (const inst of u.insts.slice(1)) {
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
  return steps;
}

/** The SIMD form of an elementwise instruction, as in the flat module's snippet table. */
function simdOp(inst: Inst, storage: (v: ValueId) => ReturnType<Plan['storage']['get']>): { op: EpilogueStep['op']; args: ValueId[] } | undefined {
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
      return { op: inst.op, args };
    case 'maximum':
      return { op: 'max', args };
    case 'minimum':
      return { op: 'min', args };
    case 'broadcast':
      return { op: 'copy', args };
    case 'pow': {
      const e = storage(args[1]!);
      if (e?.kind !== 'literal') return undefined;
      const byExponent: Record<number, EpilogueStep['op']> = { 1: 'copy', 2: 'square', 0.5: 'sqrt', [-1]: 'recip', [-0.5]: 'rsqrt' };
      const op = byExponent[e.value];
      return op ? { op, args: [args[0]!] } : undefined;
    }
    default:
      return undefined;
  }
}

/** The memory, the kernels, and the arena's arrays as views of the memory. */
function buffersDecl(
  kernels: readonly { name: string; body: Body; doc: string; d: Decision }[],
  pages: number,
  offsets: readonly number[],
  arrays: readonly string[],
  t: Typed,
): string[] {
  const bytes = encodeModule(
    pages,
    kernels.map((k) => ({ name: k.name, body: k.body })),
  );
  const base64 = Buffer.from(bytes).toString('base64');
  const chunks = base64.match(/.{1,96}/g) ?? [''];
  const shape = (k: MatmulKernel) => `${k.batch > 1 ? `${k.batch} × ` : ''}[${k.M},${k.K}]·[${k.K},${k.N}]${k.transA || k.transB ? ` (${[k.transA ? 'A' : '', k.transB ? 'B' : ''].filter(Boolean).join(', ')} transposed)` : ''}`;
  const views = arrays.map((a, id) => {
    const [, type, n] = /^new (\w+)\((\d+)\)$/.exec(a)!;
    return `new ${type}(memory.buffer, ${offsets[id]}, ${n})`;
  });
  return [
    `// WebAssembly SIMD kernels (${bytes.length} bytes), one per matmul group, in the order the steps call them:`,
    ...kernels.map((k) => `//   ${k.name}: ${commentText(k.doc)}   ${shape(k.d.kernel)}${k.d.fusedEpilogue ? '' : ', epilogue in JS'}`),
    ...t(
      [
        '// The part of the WebAssembly API this module uses (declared here: TypeScript has it only with the DOM library).',
        'declare const WebAssembly: {',
        '  Memory: new (size: { initial: number; maximum: number }) => { readonly buffer: ArrayBuffer };',
        '  Module: new (bytes: Uint8Array) => object;',
        '  Instance: new (module: object, imports: object) => { readonly exports: object };',
        '};',
      ].join('\n'),
    )
      .split('\n')
      .filter(Boolean),
    `const memory = new WebAssembly.Memory({ initial: ${pages}, maximum: ${pages} }); // ${pages} × 64 KiB, never grown: the arrays below stay valid`,
    'const wasm = [',
    ...chunks.map((c) => `'${c}',`),
    "].join('');",
    `const kernels = new WebAssembly.Instance(new WebAssembly.Module(Uint8Array.from(atob(wasm), (c) => c.charCodeAt(0))), { env: { memory } }).exports${t(
      ` as unknown as { ${kernels.map((k) => `${k.name}(): void;`).join(' ')} }`,
    )};`,
    `const buffers = [${views.join(', ')}]${t(' as const')};`,
  ];
}
