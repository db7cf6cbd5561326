// The WebAssembly target (`--target wasm`): the flat module, with its arena in one
// WebAssembly.Memory, and every matmul group (the matmul and its epilogue: bias add, activation),
// every elementwise group, every reduction over leading or trailing axes and every softmax over
// the last axis a WebAssembly SIMD kernel specialised to the group's shapes and to the addresses
// of its arrays. The kernels are encoded by graphc at build time and embedded in the module, which
// still imports nothing. Every other step (cross-entropy, gathers, transposes) is the flat
// module's code; all steps keep the flat module's order and comments.

import { CompileError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import type { Plan, Unit } from '../ir/memplan.js';
import { valueName } from '../ir/memplan.js';
import { isStatic, numelSize, symbols } from '../ir/dims.js';
import { broadcastStridesSize } from '../ir/shape.js';
import type { Inst, InstOf, Shape, ValueId } from '../ir/types.js';
import { sameShape } from '../ir/types.js';
import { formula } from './formula.js';
import { commentText, key, member } from './module.js';
import { OPTIMIZERS, scalarNames } from './optim.js';
import type { TrainBackend } from './ts/train.js';
import type { UpdateTarget } from './wasm/update.js';
import { updateBody } from './wasm/update.js';
import type { ModuleInfo, Typed } from './module.js';
import type { Backend, UnitEmitter } from './ts.js';
import { emitTs } from './ts.js';
import { encodeModule } from './wasm/encode.js';
import { Body } from './wasm/encode.js';
import type { MatmulKernel } from './wasm/matmul.js';
import { DEFAULT_TILE, matmulBody, packBody } from './wasm/matmul.js';
import type { ConvKernel } from './wasm/conv.js';
import { convBody, convScratch } from './wasm/conv.js';
import type { ChannelKernel } from './wasm/channel.js';
import { channelBody, channelKernel } from './wasm/channel.js';
import type { PoolKernel } from './wasm/pool.js';
import { isPool, poolBody, poolKernel } from './wasm/pool.js';
import type { ElementwiseKernel, ReduceKernel, RowReduceKernel } from './wasm/elementwise.js';
import { elementwiseBody, reduceBody, rowReduceBody } from './wasm/elementwise.js';
import type { SoftmaxKernel } from './wasm/softmax.js';
import { softmaxBody } from './wasm/softmax.js';
import type { Operand, Step, StepOp } from './wasm/steps.js';
import { isElementwise } from '../ir/fusion.js';
import type { Split } from './wasm/threads.js';
import { threadsDecl } from './wasm/threads.js';

const PAGE = 65536;
/** Bytes after the last array: a kernel's last vector may read up to 12 bytes past an array's end. */
const PADDING = 16;
const align = (n: number) => Math.ceil(n / 16) * 16;

/** How a matmul group is run. */
interface MatmulDecision {
  readonly kind: 'matmul';
  readonly kernel: Omit<MatmulKernel, 'c' | 'pack'>;
  /** The product is stored in its own buffer (else in the scratch area when the epilogue is JS). */
  readonly productStored: boolean;
  /** The epilogue runs in the kernel (else as a loop of the flat module's code after it). */
  readonly fusedEpilogue: boolean;
  readonly doc: string;
}

/** An elementwise group (or a single elementwise op) as a kernel over [M,N]. */
interface ElementwiseDecision {
  readonly kind: 'elementwise';
  readonly kernel: ElementwiseKernel;
  readonly doc: string;
}

/** A reduction over leading axes (column sums, with the group's elementwise members and epilogue) as a kernel. */
interface ReduceDecision {
  readonly kind: 'reduce';
  readonly kernel: ReduceKernel;
  readonly doc: string;
}

/** A reduction over trailing axes (row sums, with the group's members and epilogue) as a kernel. */
interface RowReduceDecision {
  readonly kind: 'rowreduce';
  readonly kernel: RowReduceKernel;
  readonly doc: string;
}

/** A softmax over the last axis as a kernel over its rows. */
interface SoftmaxDecision {
  readonly kind: 'softmax';
  readonly kernel: SoftmaxKernel;
  readonly doc: string;
}

/** The optimizer update of the params whose arrays are in the memory (--optimizer). */
interface UpdateDecision {
  readonly kind: 'update';
  readonly params: number;
  readonly doc: string;
}

/** A convolution or one of its gradients as an implicit GEMM (im2col and the matmul kernel). */
interface ConvDecision {
  readonly kind: 'conv';
  readonly kernel: Omit<ConvKernel, 'scratch'>;
  readonly doc: string;
}

/** A pooling op or its gradient as a kernel. */
interface PoolDecision {
  readonly kind: 'pool';
  readonly kernel: PoolKernel;
  readonly doc: string;
}

/** An elementwise or reduce group over [N, C, ...] with per-channel operands (a bias) as a kernel. */
interface ChannelDecision {
  readonly kind: 'channel';
  readonly kernel: ChannelKernel;
  readonly doc: string;
}

type Decision = ConvDecision | PoolDecision | ChannelDecision | MatmulDecision | ElementwiseDecision | ReduceDecision | RowReduceDecision | SoftmaxDecision | UpdateDecision;

/** A kernel of the module, in call order. */
interface Kernel {
  readonly name: string;
  readonly body: Body;
  readonly d: Decision;
  /** A kernel that threads split: its body computes a range (`body` is then the ranged body). */
  readonly split?: Split & { readonly pack?: Body };
}

/**
 * The wasm module: TypeScript, or with `typed` false the same code as plain JavaScript. With
 * `threads` false (a derived module enclosed in another, --hvp/--jvp) it has no create() and no
 * instance(): one arena over one memory, as the module of a single thread.
 */
export function emitWasm(m: ModuleInfo, typed = true, opts: { readonly threads?: boolean } = {}): string {
  const threaded = opts.threads ?? true;
  rejectSymbolic(m);
  const plan = m.plan;
  const offsets: number[] = [];
  let end = 0;
  for (const b of plan.buffers) {
    offsets.push(end);
    end += align(b.size.coef * 4);
  }
  const address = addresses(plan, offsets);
  const units = [...plan.units.forward, ...plan.units.backward];
  // scratch area: the accumulators of reductions (one row of the kept positions each)
  const accAt = end;
  end += Math.max(0, ...units.map((u) => {
    const r = reductionOf(u);
    return r ? r.reductions.length * align((r.leading ? r.N : r.M) * 4) : 0;
  }));

  const decisions = new Map<Unit, Exclude<Decision, UpdateDecision>>();
  for (const u of units) {
    const d =
      u.insts[0]!.op === 'matmul'
        ? decideMatmul(m, u, address)
        : isConv(u.insts[0]!.op)
          ? decideConv(m, u, address)
          : isPool(u.insts[0]!.op)
            ? decidePool(m, u, address)
            : (decideElementwise(m, u, address) ?? decideReduce(m, u, address, accAt) ?? decideRowReduce(m, u, address, accAt) ?? decideSoftmax(m, u, address) ?? decideChannel(m, u, address));
    if (d) decisions.set(u, d);
  }
  const matmuls = [...decisions.values()].flatMap((d) => (d.kind === 'matmul' ? [d] : []));
  // scratch areas: B packed as [K,N] for a transposed B, and products the kernel hands to a JS epilogue
  const packAt = end;
  const packFloats = Math.max(0, ...matmuls.map((d) => (d.kernel.transB ? d.kernel.K * d.kernel.N : 0)));
  end += align(packFloats * 4);
  const productAt = end;
  const productFloats = Math.max(0, ...matmuls.map((d) => (d.productStored || d.fusedEpilogue ? 0 : d.kernel.M * d.kernel.N * d.kernel.batch)));
  end += align(productFloats * 4);
  // each convolution's im2col scratch is its own: its padded positions stay zero
  const convAt = new Map<Unit, number>();
  for (const [u, d] of decisions)
    if (d.kind === 'conv') {
      convAt.set(u, end);
      end += align(convScratch(d.kernel) * 4);
    }
  const kernels: Kernel[] = [];
  // the training step's kernel comes last: the steps call it after the backward pass
  const training = m.optimizer ? trainLayout(m, address, end) : undefined;
  if (training) end = training.end;
  const pages = Math.max(1, Math.ceil((end + PADDING) / PAGE));

  /** The kernels in the order of the module: the training step's last. */
  const allKernels = () => (training?.kernel ? [...kernels, training.kernel] : kernels);
  const backend: Backend = {
    what: 'The flat module with its matmuls, elementwise groups, column and row reductions and row softmaxes as WebAssembly SIMD kernels (built by graphc, embedded below): no imports, no tape.',
    entries: productFloats ? [`_product: new Float32Array(memory.buffer, ${productAt}, ${productFloats}), // matmul products read by an epilogue loop`] : [],
    buffersDecl: (arrays, t) =>
      threaded
        ? arenaDecl(offsets, arrays, t)
        : [
            ...kernelsDecl(allKernels(), pages, typed),
            `const memory = new WebAssembly.Memory({ initial: ${pages}, maximum: ${pages} }); // ${pages} × 64 KiB, never grown: the arrays below stay valid`,
            `const kernels = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports${t(' as unknown as Kernels')};`,
            ...arenaDecl(offsets, arrays, t),
          ],
    instance: threaded ? {
      // the kernels, then create({ threads }) (which calls instance(), declared below)
      get top() {
        return [
          ...kernelsDecl(allKernels(), pages, typed),
          '',
          ...threadsDecl(
            allKernels().map((k) => ({ name: k.name, split: k.split && { extent: k.split.extent, align: k.split.align, work: k.split.work, pack: k.split.pack !== undefined } })),
            pages,
            sharedFlagAt(allKernels(), pages),
            typed,
          ),
        ];
      },
      open: [
        '/** The arena in `memory`, and the steps that run its kernels (`kernels`, the functions of the wasm instance or of a threaded one). */',
        `function instance(memory${typed ? ': { readonly buffer: ArrayBufferLike }' : ''}, kernels${typed ? ': Kernels' : ''}) {`,
      ],
      close: (names) => [
        `  return { ${names.join(', ')} };`,
        '}',
        '',
        `const memory = new WebAssembly.Memory({ initial: ${pages}, maximum: ${pages} }); // ${pages} × 64 KiB, never grown: the arrays stay valid`,
        `const single = instance(memory, new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports${typed ? ' as unknown as Kernels' : ''});`,
        `export const { ${names.join(', ')} } = single;`,
      ],
    } : undefined,
    ...(training ? { train: training.backend } : {}),
    unit: (u: Unit, e: UnitEmitter) => {
      const d = decisions.get(u);
      if (!d) return undefined;
      const g = u.graph;
      const last = valueName(g, u.insts[u.insts.length - 1]!.result);
      if (d.kind === 'conv') {
        const name = `${d.kernel.op}_${last}`;
        kernels.push({ name, body: convBody({ ...d.kernel, scratch: convAt.get(u)! }), d });
        return [`${member('kernels', name)}();`];
      }
      if (d.kind === 'pool' || d.kind === 'channel') {
        const name = d.kind === 'pool' ? `${d.kernel.op}_${last}` : `channel_${last}`;
        kernels.push({ name, body: d.kind === 'pool' ? poolBody(d.kernel) : channelBody(d.kernel), d });
        return [`${member('kernels', name)}();`];
      }
      if (d.kind !== 'matmul') {
        const name = `${d.kind}_${last}`;
        const ranged = { ranged: true };
        const k = d.kernel;
        // what splits over threads: rows (columns for a column reduction), in blocks of whole vectors where an epilogue runs over the block
        const [body, split] =
          d.kind === 'elementwise'
            ? [elementwiseBody(k as ElementwiseKernel, ranged), { extent: k.M, align: 1, work: k.M * k.N * (k as ElementwiseKernel).steps.length }]
            : d.kind === 'reduce'
              ? [reduceBody(d.kernel, ranged), { extent: k.N, align: 4, work: k.M * k.N * d.kernel.rows.length }]
              : d.kind === 'rowreduce'
                ? [rowReduceBody(d.kernel, ranged), { extent: k.M, align: d.kernel.epilogue.length ? 4 : 1, work: k.M * k.N * d.kernel.rows.length }]
                : [softmaxBody(d.kernel, ranged), { extent: k.M, align: 1, work: k.M * k.N * 8 }];
        kernels.push({ name, body, d, split });
        return [`${member('kernels', name)}();`];
      }
      const mm = u.insts[0]!;
      const name = `matmul_${last}`;
      const c = d.productStored ? address(g, mm.result) : d.fusedEpilogue ? undefined : productAt;
      const kernel = { ...d.kernel, name, c, pack: d.kernel.transB ? packAt : undefined };
      // one matrix splits by blocks of the register tile's rows; a batch of them stays whole
      if (kernel.batch === 1)
        kernels.push({
          name,
          body: matmulBody(kernel, { ranged: true }),
          d,
          split: { extent: kernel.M, align: DEFAULT_TILE.rows, work: kernel.M * kernel.N * kernel.K, pack: kernel.transB ? packBody(kernel) : undefined },
        });
      else kernels.push({ name, body: matmulBody(kernel), d });
      const call = [`${member('kernels', name)}();`];
      if (d.fusedEpilogue) return call;
      if (!d.productStored) e.use('_product');
      return [...call, ...e.epilogueLoop(u, d.productStored ? e.arrOf(g, mm.result) : '_product')];
    },
  };
  return emitTs(m, typed, backend);
}

/**
 * The memory of the training step: each covered param's optimizer state (a param whose staged
 * copy and gradient are arrays of the arena), then the step scalars; the update kernel over them.
 * The state of a param the kernel does not cover (its gradient is a copy outside the memory) is a
 * plain array, updated by the flat module's loop.
 */
function trainLayout(m: ModuleInfo, address: Address, start: number): { end: number; backend: TrainBackend; kernel?: Kernel } {
  const spec = m.optimizer!;
  const slots = OPTIMIZERS[spec.name].slots(spec.hyper);
  const scalars = scalarNames(spec);
  let end = start;
  const targets: UpdateTarget[] = [];
  const covered = new Set<string>();
  const owned = new Set<string>();
  const fields = new Map<string, string[]>(slots.map((s) => [s, []]));
  for (const o of m.bwd.outputs) {
    const p = m.fwd.insts.find((i) => i.op === 'param' && i.attrs.name === o.name);
    if (!p) continue; // the gradient of an input: no update
    const n = numelSize(m.fwd.type(p.result).shape).coef;
    const name = valueName(m.bwd, o.value);
    const inArena = m.plan.storage.get(name)?.kind === 'buffer' && m.bwd.def(o.value).op !== 'fwd' && !owned.has(name);
    const g = address(m.bwd, o.value);
    const staged = address(m.fwd, p.result);
    if (inArena && g !== undefined && staged !== undefined) {
      owned.add(name);
      covered.add(o.name);
      const at: Record<string, number> = {};
      for (const s of slots) {
        at[s] = end;
        fields.get(s)!.push(`${key(o.name)}: new Float32Array(memory.buffer, ${end}, ${n})`);
        end += align(n * 4);
      }
      targets.push({ n, p: staged, g, slots: at });
    } else for (const s of slots) fields.get(s)!.push(`${key(o.name)}: new Float32Array(${n})`);
  }
  const scalarsAt = end;
  end += align(Math.max(1, scalars.length) * 4);
  const stagedOf = (param: string) => {
    const p = m.fwd.insts.find((i) => i.op === 'param' && i.attrs.name === param)!;
    return member('buf', m.fwd.value(p.result).name);
  };
  const backend: TrainBackend = {
    decls: [
      `// The optimizer state lives in the memory, where the update kernel reads it: initOptState resets this one`,
      `// state and returns it; a state of the caller's own is copied in before the kernel and out after it.`,
      `const optState = { step: 0${slots.map((s) => `, ${s}: { ${fields.get(s)!.join(', ')} }`).join('')} };`,
      `const optScalars = new Float32Array(memory.buffer, ${scalarsAt}, ${Math.max(1, scalars.length)}); // ${scalars.join(', ') || 'unused'}`,
      '',
    ],
    covered,
    resident: 'optState',
    run: (names) => [
      ...names.map((s, k) => `optScalars[${k}] = ${s};`),
      'kernels.update();',
      ...[...covered].map((p) => `${member('params', p)}.set(${stagedOf(p)}); // the updated ${commentText(p)}, back to the caller's array`),
    ],
  };
  if (targets.length === 0) return { end, backend };
  const doc = `${spec.name} update of ${targets.length} param${targets.length === 1 ? '' : 's'} (${[...covered].join(', ')})`;
  return { end, backend, kernel: { name: 'update', body: updateBody(spec, targets, scalarsAt), d: { kind: 'update', params: targets.length, doc } } };
}

function rejectSymbolic(m: ModuleInfo): void {
  const syms = symbols(m.fwd);
  if (syms.length === 0) return;
  const input = m.fwd.insts.find((i) => i.op === 'input' && m.fwd.type(i.result).shape.some((d) => typeof d === 'string'));
  throw new CompileError(
    `--target wasm needs static shapes, but ${syms.length === 1 ? `dimension ${syms[0]} is` : `dimensions ${syms.join(', ')} are`} bound per call`,
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

type Address = (g: Graph, v: ValueId) => number | undefined;

/** How to run a matmul group, or undefined for the flat module's loops (an operand outside the memory). */
function decideMatmul(m: ModuleInfo, u: Unit, address: Address): MatmulDecision | undefined {
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
function decideConv(m: ModuleInfo, u: Unit, address: Address): ConvDecision | undefined {
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

function decideChannel(m: ModuleInfo, u: Unit, address: Address): ChannelDecision | undefined {
  if (u.kind !== 'elementwise' && u.kind !== 'reduce' && !(u.kind === 'single' && isElementwise(u.insts[0]!))) return undefined;
  const kernel = channelKernel({ plan: m.plan, address, simdOp, isElementwise }, u);
  return kernel && { kind: 'channel', kernel, doc: docOf(m, u) };
}

function decidePool(m: ModuleInfo, u: Unit, address: Address): PoolDecision | undefined {
  const g = u.graph;
  const inst = u.insts[0] as InstOf<PoolKernel['op']>;
  if (u.insts.length !== 1 || !isPool(inst.op)) return undefined;
  const xv = inst.op === 'avg_pool_grad' ? inst.result : inst.args[0]!;
  const yv = inst.op === 'max_pool' || inst.op === 'avg_pool' ? inst.result : inst.op === 'max_pool_grad' ? inst.args[1]! : inst.args[0]!;
  const kernel = poolKernel(inst.op, inst.attrs, g.type(xv).shape as number[], g.type(yv).shape as number[], (k) => address(g, k < 0 ? inst.result : inst.args[k]!));
  return kernel && { kind: 'pool', kernel, doc: docOf(m, u) };
}

/** The formula of a group's last value, as the flat module's comments write it. */
function docOf(m: ModuleInfo, u: Unit): string {
  const g = u.graph;
  const last = u.insts[u.insts.length - 1]!;
  const inUnit = new Set(u.insts.map((x) => x.id));
  return `${valueName(g, last.result)} = ${formula(g, last.result, (d) => inUnit.has(d.id) && m.plan.storage.get(valueName(g, d.result))?.kind !== 'buffer')}`;
}

/** How to run an elementwise group as a kernel, or undefined for the flat module's loop. */
function decideElementwise(m: ModuleInfo, u: Unit, address: Address): ElementwiseDecision | undefined {
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
function reductionOf(u: Unit): { reductions: InstOf<'sum' | 'max'>[]; shape: number[]; axes: readonly number[]; leading: boolean; M: number; N: number } | undefined {
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
 * What a reduce group's kernel computes, whichever its axes: the steps of its members over the
 * full shape, the operand each reduction reduces, the accumulators (one per reduction, a float
 * per kept position, in the scratch area at accAt), and the epilogue over the kept positions:
 * a copy of each stored reduction's result, then the group's epilogue members. Undefined when a
 * part has no SIMD form here.
 */
function reduceGroup(m: ModuleInfo, u: Unit, r: Reduction, address: Address, accAt: number): { rows: Step[]; reduced: Operand[]; accs: number[]; epilogue: Step[] } | undefined {
  const g = u.graph;
  const { reductions, shape, axes, leading, M, N } = r;
  const isReduction = (i: Inst) => reductions.includes(i as InstOf<'sum'>);
  const inFull = (i: Inst) => !isReduction(i) && sameShape(g.type(i.result).shape, shape);
  const accs = reductions.map((_r, k) => accAt + k * align((leading ? N : M) * 4));
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
function decideReduce(m: ModuleInfo, u: Unit, address: Address, accAt: number): ReduceDecision | undefined {
  const r = reductionOf(u);
  const parts = r?.leading ? reduceGroup(m, u, r, address, accAt) : undefined;
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
  return { kind: 'reduce', kernel: { M, N, init, rows: [...parts.rows, ...accumulate], epilogue: parts.epilogue }, doc: docOf(m, u) };
}

/** How to run a reduction over trailing axes (row sums) as a kernel, or undefined for the flat module's loops. */
function decideRowReduce(m: ModuleInfo, u: Unit, address: Address, accAt: number): RowReduceDecision | undefined {
  const r = reductionOf(u);
  const parts = r && !r.leading && r.N > 0 ? reduceGroup(m, u, r, address, accAt) : undefined;
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
function decideSoftmax(m: ModuleInfo, u: Unit, address: Address): SoftmaxDecision | undefined {
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

/** The functions of the wasm module: each kernel; a split one as its range, its packing of B and a whole call of both. */
function functionsOf(kernels: readonly Kernel[]): { name: string; body: Body }[] {
  const fns: { name: string; body: Body }[] = [];
  for (const k of kernels) {
    if (!k.split) {
      fns.push({ name: k.name, body: k.body });
      continue;
    }
    const rows = fns.push({ name: `${k.name}_range`, body: k.body }) - 1;
    const pack = k.split.pack ? fns.push({ name: `${k.name}_pack`, body: k.split.pack }) - 1 : undefined;
    const whole = new Body();
    if (pack !== undefined) whole.call(pack);
    whole.i32(0).i32(k.split.extent).call(rows);
    fns.push({ name: k.name, body: whole });
  }
  return fns;
}

/** The byte that makes the module's memory import shared (a threaded instance sets it). */
function sharedFlagAt(kernels: readonly Kernel[], pages: number): number {
  const [a, b] = [false, true].map((shared) => encodeModule(pages, functionsOf(kernels), { shared }));
  const at = a!.findIndex((x, i) => x !== b![i]);
  if (at < 0 || a!.length !== b!.length) throw new Error('internal: no shared flag');
  return at;
}

/** The kernels: their list, the WebAssembly API this module uses (typed) and the module's bytes. */
function kernelsDecl(kernels: readonly Kernel[], pages: number, typed: boolean): string[] {
  const bytes = encodeModule(pages, functionsOf(kernels));
  const base64 = Buffer.from(bytes).toString('base64');
  const chunks = base64.match(/.{1,96}/g) ?? [''];
  const what = (d: Decision) => {
    if (d.kind === 'elementwise') return `[${d.kernel.M},${d.kernel.N}] elementwise`;
    if (d.kind === 'reduce') return `[${d.kernel.M},${d.kernel.N}] column reduction`;
    if (d.kind === 'rowreduce') return `[${d.kernel.M},${d.kernel.N}] row reduction`;
    if (d.kind === 'softmax') return `[${d.kernel.M},${d.kernel.N}] softmax of each row`;
    if (d.kind === 'update') return 'optimizer step';
    if (d.kind === 'channel') return `[${d.kernel.N},${d.kernel.C},${d.kernel.S}] per channel${d.kernel.sums.length ? ', sums over images and positions' : ''}`;
    if (d.kind === 'pool') return `${d.kernel.op.replaceAll('_', ' ')} over ${d.kernel.planes} planes of ${d.kernel.H}×${d.kernel.W}`;
    if (d.kind === 'conv') {
      const c = d.kernel;
      const S = c.Ho * c.Wo;
      const Kg = (c.C / c.groups) * c.kH * c.kW;
      const Og = c.O / c.groups;
      const gr = c.groups > 1 ? `${c.groups} groups × ` : '';
      if (c.op === 'conv') return `im2col, ${gr}${c.N} × [${Og},${Kg}]·[${Kg},${S}]`;
      if (c.op === 'conv_input_grad') return `${gr}${c.N} × [${Kg},${Og}]·[${Og},${S}] (A transposed), col2im`;
      return `im2col, ${gr}[${Og},${c.N * S}]·[${c.N * S},${Kg}] as dot products along the positions`;
    }
    const k = d.kernel;
    const layout = k.transA || k.transB ? ` (${[k.transA ? 'A' : '', k.transB ? 'B' : ''].filter(Boolean).join(', ')} transposed)` : '';
    return `${k.batch > 1 ? `${k.batch} × ` : ''}[${k.M},${k.K}]·[${k.K},${k.N}]${layout}${d.fusedEpilogue ? '' : ', epilogue in JS'}`;
  };
  return [
    `// WebAssembly SIMD kernels (${bytes.length} bytes), one per matmul, elementwise, reduction and softmax group, in the order the steps call them:`,
    ...kernels.map((k) => `//   ${k.name}: ${commentText(k.d.doc)}   ${what(k.d)}`),
    ...(typed
      ? [
          '// The part of the WebAssembly API this module uses (declared here: TypeScript has it only with the DOM library).',
          'declare const WebAssembly: {',
          '  Memory: new (size: { initial: number; maximum: number; shared?: boolean }) => { readonly buffer: ArrayBufferLike };',
          '  Module: new (bytes: Uint8Array) => object;',
          '  Instance: new (module: object, imports: object) => { readonly exports: object };',
          '};',
          `type Kernels = { ${kernels.map((k) => `${k.name}(): void;`).join(' ')} };`,
        ]
      : []),
    'const wasm = [',
    ...chunks.map((c) => `'${c}',`),
    "].join('');",
    'const bytes = Uint8Array.from(atob(wasm), (c) => c.charCodeAt(0));',
  ];
}

/** The arena's arrays as views of the memory. */
function arenaDecl(offsets: readonly number[], arrays: readonly string[], t: Typed): string[] {
  const views = arrays.map((a, id) => {
    const [, type, n] = /^new (\w+)\((\d+)\)$/.exec(a)!;
    return `new ${type}(memory.buffer, ${offsets[id]}, ${n})`;
  });
  return [`const buffers = [${views.join(', ')}]${t(' as const')};`];
}
