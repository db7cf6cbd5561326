// The WebAssembly target (`--target wasm`): the flat module, with its arena in one
// WebAssembly.Memory. Every matmul (its epilogue — bias add, activation — written at the points of
// its register tile where it can be), convolution and pooling op is a
// WebAssembly SIMD routine specialised to the group's shapes and to the addresses of its arrays;
// every other elementwise, reduction or layout group (and a matmul epilogue that is not fused) is
// its kernel of the kernel form (codegen/kernel/lower.ts) rendered as a wasm function
// (codegen/wasm/kernel.ts): one definition of each op's semantics and of the index algebra. The
// kernels are encoded by graphc at build time and embedded in the module, which still imports
// nothing. The other routines (gather, scatter_add, pick,
// cross-entropy, argmax, argmin, cumsum, softmax along any axis) are kernels of their own
// (codegen/wasm/index-kernels.ts, the row softmax codegen/wasm/softmax.ts); all steps keep the flat module's order and comments.
//
// This file assembles the module (StaticModule); the layout of the memory is codegen/wasm/layout.ts,
// the routines' decisions codegen/wasm/decide.ts, the kernels' code codegen/wasm/*.ts. The
// symbolic module (codegen/wasm/symbolic.ts) renders its elementwise, reduction and layout groups
// with the same renderer, their sizes read at run time (codegen/wasm/symbolic-forms.ts).

import type { Plan, Unit } from '../ir/memplan.js';
import { allUnits, valueName } from '../ir/memplan.js';
import { symbols } from '../ir/dims.js';
import { layoutPlan, polyConst } from '../ir/layout.js';
import { commentText, key, member, typedAs, uniformConst } from './module.js';
import * as E from './expr.js';
import { lowerUnitOf } from './kernel/lower.js';
import type { Kernel as FormKernel } from './kernel/form.js';
import type { WasmKernel } from './wasm/kernel.js';
import { KernelUnsupported, TileEpilogue, renderWasmKernel } from './wasm/kernel.js';
import { scalarNames } from './optim.js';
import type { TrainBackend } from './ts/train.js';
import { updateBody, updateLayout } from './wasm/update.js';
import type { ModuleInfo, Typed } from './module.js';
import type { Backend, UnitEmitter } from './ts.js';
import { emitTs } from './ts.js';
import { encodeModule } from './wasm/encode.js';
import { relaxedDecl } from './wasm/relaxed.js';
import { Body } from './wasm/encode.js';
import { DEFAULT_TILE, matmulBody, packBody, packFloats, packsA, packsB } from './wasm/matmul.js';
import { chunksOf, convBody, convScratch, convSplit, convSumBody, convWhat } from './wasm/conv.js';
import { winogradBody, winogradFits, winogradScratch, winogradWeightsBody, winogradWhat } from './wasm/winograd.js';
import { winogradSumBody, winogradWeightGradBody } from './wasm/winograd-weight.js';
import type { Split } from './wasm/threads.js';
import { formSplit, PACK_COST, threadsDecl } from './wasm/threads.js';
import { checkWasmMemory, emitSymbolicWasm } from './wasm/symbolic.js';
import type { Address } from './wasm/layout.js';
import { PADDING, PAGE, addresses, align } from './wasm/layout.js';
import type { Decision, MatmulDecision, UpdateDecision } from './wasm/decide.js';
import { decideConv, decideMatmul, decidePool, docOf, isConv } from './wasm/decide.js';
import { isPool, poolBody } from './wasm/pool.js';
import { indexKernel } from './wasm/index-kernels.js';

export { isConv } from './wasm/decide.js';

/** A kernel of the module, in call order. */
interface Kernel {
  readonly name: string;
  readonly body: Body;
  /** Its decision (a kernel of the kernel form has none: `what` says what it computes). */
  readonly d?: Decision;
  /**
   * A kernel that threads split: its body computes a range (`body` is then the ranged body); `pack`:
   * the packing of a transposed B, a function of a range of B's rows (`rows` of them) that splits too.
   */
  readonly split?: Split & { readonly pack?: { readonly body: Body; readonly rows: number; readonly work: number } };
  /** What it computes, where not its decision's (the comment of the kernel list). */
  readonly what?: string;
  /** A matmul whose epilogue (not fused into it) is the kernel after it, of the kernel form (else a JS loop). */
  readonly epilogueKernel?: boolean;
}

/**
 * The wasm module: TypeScript, or with `typed` false the same code as plain JavaScript. With
 * `threads` false (a derived module enclosed in another, --hvp/--jvp) it has no create() and no
 * instance(): one arena over one memory, as the module of a single thread.
 */
export function emitWasm(m: ModuleInfo, typed = true, opts: { readonly threads?: boolean } = {}): string {
  if (symbols(m.fwd).length) return emitSymbolicWasm(m, typed);
  return emitTs(m, typed, new StaticModule(m, typed).backend(opts.threads ?? true));
}

/** A group's kernel of the kernel form, rendered as wasm. */
interface Form {
  readonly launch: FormKernel;
  readonly rendered: WasmKernel;
}

/**
 * The static module (every size a number): its memory (the arena's buffers, the constant arrays,
 * the kernels' scratch areas, the optimizer state), how each group runs, and its kernels in the
 * order the steps call them (`kernels` fills as the flat module's emitter asks for each unit).
 */
class StaticModule {
  private readonly plan: Plan;
  private readonly offsets: number[];
  private readonly address: Address;
  private readonly consts: ReturnType<typeof constLayout>;
  private readonly forms = new Map<Unit, Form | undefined>();
  /** A conv group (the convolution, then its bias and activation) runs as two kernels: the convolution into its array, then its epilogue. */
  private readonly parts = new Map<Unit, readonly [Unit, Unit]>();
  private readonly decisions = new Map<Unit, Exclude<Decision, UpdateDecision>>();
  private readonly scratch: { packAt: number; packAAt: number; productAt: number; productFloats: number; convAt: Map<Unit, number>; end: number };
  private readonly training?: ReturnType<typeof trainLayout>;
  private readonly pages: number;
  private readonly kernels: Kernel[] = [];
  /** Where the column sums split by rows keep their chunks' partial totals (see scratchLayout). */
  private partialAt?: number;

  constructor(
    private readonly m: ModuleInfo,
    private readonly typed: boolean,
  ) {
    this.plan = m.plan;
    // the buffers' offsets from the layout pass (ir/layout.ts): constants here, no symbols
    const layout = layoutPlan(this.plan);
    this.offsets = layout.offsets.map(polyConst);
    let end = polyConst(layout.end);
    this.address = addresses(this.plan, this.offsets);
    // the constant arrays (not uniform) that kernels of the kernel form read: in the memory too
    this.consts = constLayout(m, end);
    this.decide();
    this.scratch = this.scratchLayout(this.consts.end);
    end = this.scratch.end;
    // the training step's kernel comes last: the steps call it after the backward pass
    this.training = m.optimizer ? trainLayout(m, this.address, end, typedAs(typed)) : undefined;
    if (this.training) end = this.training.end;
    checkWasmMemory(m, end);
    this.pages = Math.max(1, Math.ceil((end + PADDING) / PAGE));
  }

  /** The byte address of an array of the kernel form (a value's root name), where it is in the memory. */
  private readonly arrayAt = (name: string): number | undefined => {
    const id = this.plan.bufferOf.get(name);
    return id !== undefined ? this.offsets[id] : this.consts.at(name);
  };

  /** A group's kernel of the kernel form, where the wasm renderer has it (every elementwise, reduction or layout group it can render). */
  private formOf(u: Unit): Form | undefined {
    if (!this.forms.has(u)) {
      const launch = lowerUnitOf(this.plan, u).launch;
      const rendered = launch?.kind === 'kernel' ? tryRender(launch, this.arrayAt, this.partialAt) : undefined;
      this.forms.set(u, launch?.kind === 'kernel' && rendered ? { launch, rendered } : undefined);
    }
    return this.forms.get(u);
  }

  /** How each group runs: a routine's kernel (matmul, convolution, pooling), else its kernel of the kernel form or an index routine's. */
  private decide(): void {
    const { m, address } = this;
    const units = allUnits(this.plan);
    for (const u of units)
      if (u.kind === 'conv' && u.insts[0]!.op === 'conv') this.parts.set(u, [{ ...u, kind: 'single', insts: [u.insts[0]!] }, { ...u, kind: 'elementwise', insts: u.insts.slice(1) }]);
    for (const u of units.flatMap((x) => this.parts.get(x) ?? [x])) {
      const op = u.insts[0]!.op;
      const d = op === 'matmul' ? this.matmulDecision(u) : isConv(op) ? decideConv(m, u, address) : isPool(op) ? decidePool(m, u, address) : undefined;
      if (d) this.decisions.set(u, d);
    }
  }

  /**
   * A matmul group's kernel, its epilogue (of the kernel form: the routine's epilogue kernel)
   * written at the points of the register tile where it can be (one matrix, nothing but loads
   * along the tile's rows and columns), else a kernel of its own after the matmul.
   */
  private matmulDecision(u: Unit): MatmulDecision | undefined {
    const d = decideMatmul(this.m, u, this.address);
    if (!d) return undefined;
    const routine = lowerUnitOf(this.plan, u).launch;
    const writer = d.kernel.batch === 1 && routine?.kind === 'routine' && routine.epilogue ? TileEpilogue.plan(routine.epilogue, routine.output.arg, this.arrayAt) : undefined;
    return { ...d, kernel: { ...d.kernel, ...(writer ? { epilogueWriter: writer } : {}) }, fusedEpilogue: writer !== undefined || u.insts.length === 1 };
  }

  /**
   * The scratch areas from `end`: B packed as [K,N] for a transposed B, products the matmul
   * kernel hands to a JS epilogue, and each convolution's im2col scratch (its own: its padded
   * positions stay zero).
   */
  private scratchLayout(end: number) {
    const matmuls = [...this.decisions.values()].flatMap((d) => (d.kind === 'matmul' ? [d] : []));
    const packAt = end;
    end += align(Math.max(0, ...matmuls.map((d) => packFloats(d.kernel))) * 4);
    // a transposed A packed in row tiles (its own area: B may be packed too)
    const packAAt = end;
    end += align(Math.max(0, ...matmuls.map((d) => (packsA(d.kernel) ? d.kernel.M * d.kernel.K : 0))) * 4);
    const productAt = end;
    const productFloats = Math.max(0, ...matmuls.map((d) => (d.productStored || d.fusedEpilogue ? 0 : d.kernel.M * d.kernel.N * d.kernel.batch)));
    end += align(productFloats * 4);
    const convAt = new Map<Unit, number>();
    for (const [u, d] of this.decisions)
      if (d.kind === 'conv') {
        convAt.set(u, end);
        end += align((winogradFits(d.kernel) ? winogradScratch(d.kernel) : convScratch(d.kernel)) * 4);
      }
    // the partial totals of the sums split by chunks of rows (column sums, NCHW sums per channel; one area: a kernel's `_sum` runs right after it)
    this.partialAt = end;
    // (of the units that are kernels: a scan is a loop of the host program, its scan_outs its results)
    const forms = allUnits(this.plan)
      .flatMap((x) => this.parts.get(x) ?? [x])
      .filter((u) => !this.decisions.has(u) && u.insts[0]!.op !== 'scan' && u.insts[0]!.op !== 'scan_out');
    end += align(Math.max(0, ...forms.map((u) => this.formOf(u)?.rendered.rows?.partialBytes ?? 0)));
    return { packAt, packAAt, productAt, productFloats, convAt, end };
  }

  /** The kernels in the order of the module: the training step's last. */
  private allKernels(): Kernel[] {
    return this.training?.kernel ? [...this.kernels, this.training.kernel] : this.kernels;
  }

  /** What the flat module's emitter asks of the wasm module (codegen/ts.ts's Backend). */
  backend(threaded: boolean): Backend {
    const { typed, pages, offsets, training } = this;
    // read by the `entries` getter, whose `this` is the backend object
    const self = this;
    return {
      what: 'The flat module with its matmuls, convolutions, pooling and row softmaxes as WebAssembly SIMD kernels, and every elementwise, reduction and layout group as its kernel of the kernel form (built by graphc, embedded below): no imports, no tape.',
      // read after the units: the constant arrays that kernels read, copied into the memory
      get entries() {
        return [...(self.scratch.productFloats ? [`_product: new Float32Array(memory.buffer, ${self.scratch.productAt}, ${self.scratch.productFloats}), // matmul products read by an epilogue loop`] : []), ...self.consts.entries(typed)];
      },
      buffersDecl: (arrays, t) =>
        threaded
          ? arenaDecl(offsets, arrays, t)
          : [
              ...kernelsDecl(this.m, this.allKernels(), pages, typed),
              `const memory = new WebAssembly.Memory({ initial: ${pages}, maximum: ${pages} }); // ${pages} × 64 KiB, never grown: the arrays below stay valid`,
              `const kernels = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports${t(' as unknown as Kernels')};`,
              ...arenaDecl(offsets, arrays, t),
            ],
      instance: threaded ? this.instanceDecl() : undefined,
      ...(training ? { train: training.backend } : {}),
      unit: (u: Unit, e: UnitEmitter) => {
        const split = this.parts.get(u);
        if (!split) return this.unitCode(u, e);
        // the convolution as its kernel (else the flat module's fused loops), its epilogue after it
        const conv = this.unitCode(split[0], e);
        if (!conv) return undefined;
        return [...conv, ...(this.unitCode(split[1], e) ?? e.epilogueLoop(u, e.arrOf(u.graph, u.insts[0]!.result)))];
      },
    };
  }

  /** The threaded module's parts: the kernels and create({ threads }), instance() around the steps, the default instance. */
  private instanceDecl(): NonNullable<Backend['instance']> {
    const { typed, pages, m } = this;
    const kernels = () => this.allKernels();
    // read twice by the flat module's emitter (codegen/ts.ts `instanced`), after the units: made once
    let top: string[] | undefined;
    return {
      // the kernels, then create({ threads }) (which calls instance(), declared below)
      get top() {
        return (top ??= [
          ...kernelsDecl(m, kernels(), pages, typed),
          '',
          ...threadsDecl(
            kernels().map((k) => ({ name: k.name, split: k.split && { extent: k.split.extent, align: k.split.align, work: k.split.work, pack: k.split.pack && { rows: k.split.pack.rows, work: k.split.pack.work } } })),
            pages,
            sharedFlagAt(pages),
            typed,
            (['hvp', 'jvp'] as const).filter((d) => m.derived?.[d]),
          ),
        ]);
      },
      open: [
        '/** The arena in `memory`, and the steps that run its kernels (`kernels`, the functions of the wasm instance or of a threaded one). */',
        `function instance(memory${typed ? ': { readonly buffer: ArrayBufferLike }' : ''}, kernels${typed ? ': Kernels' : ''}) {`,
      ],
      close: (names, scope) => [
        `  return { ${names.join(', ')} };`,
        '}',
        '',
        `const memory = new WebAssembly.Memory({ initial: ${pages}, maximum: ${pages} }); // ${pages} × 64 KiB, never grown: the arrays stay valid`,
        `const single = instance(memory, new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports${typed ? ' as unknown as Kernels' : ''});`,
        `export const { ${names.join(', ')} } = single;`,
        '',
        ...freshDecl(scope, typed),
      ],
    };
  }

  /** A kernel of the kernel form as a wasm function and its call, or undefined where the renderer cannot render it yet. */
  private formKernel(name: string, k: FormKernel, what: string, addr: (arg: string) => number | undefined, rendered?: WasmKernel): string[] | undefined {
    const r = rendered ?? tryRender(k, addr);
    if (!r) return undefined;
    if (r.rows && r.ranged) {
      // a sum split by chunks of rows (a column sum, an NCHW sum per channel), then the chunks' totals added in order
      this.kernels.push({ name, body: r.ranged.body, split: formSplit(r.ranged.split, k.domain, k.axes, true), what: `${what}, by chunks of rows` });
      this.kernels.push({ name: `${name}_sum`, body: r.rows.sum, what: `the chunks' partial sums of ${name}, added in order` });
      return [`${member('kernels', name)}();`, `${member('kernels', `${name}_sum`)}();`];
    }
    this.kernels.push(r.ranged ? { name, body: r.ranged.body, split: formSplit(r.ranged.split, k.domain, k.axes), what } : { name, body: r.body, what });
    return [`${member('kernels', name)}();`];
  }

  /** The code of a group: its kernel's call (kernels of its own pushed), or undefined for the flat module's code. */
  private unitCode(u: Unit, e: UnitEmitter): string[] | undefined {
    const d = this.decisions.get(u);
    const last = valueName(u.graph, u.insts[u.insts.length - 1]!.result);
    const call = (name: string) => [`${member('kernels', name)}();`];
    if (!d) {
      const launch = lowerUnitOf(this.plan, u).launch;
      if (launch?.kind === 'routine') {
        // the index ops, cross-entropy, softmax along any axis: kernels of their own (codegen/wasm/index-kernels.ts, softmax.ts)
        const k = indexKernel(launch, this.arrayAt);
        const name = `${launch.op}_${last}`;
        if (k) this.kernels.push({ name, body: k.body, ...(k.split ? { split: k.split } : {}), what: `${commentText(docOf(this.m, u))}   ${k.what}` });
        return k && call(name);
      }
      // its kernel of the kernel form (codegen/kernel/lower.ts), rendered as wasm
      const f = this.formOf(u);
      if (!f) return undefined;
      const k = f.launch;
      return this.formKernel(`kernel_${last}`, k, `${commentText(docOf(this.m, u))}   [${k.domain.join(',')}]${k.axes.length ? ` reducing axes ${k.axes.join(',')}` : ''} (kernel form)`, this.arrayAt, f.rendered);
    }
    if (d.kind === 'conv') {
      const name = `${d.kernel.op}_${last}`;
      const kernel = { ...d.kernel, scratch: this.scratch.convAt.get(u)! };
      // the forward and the input gradient split by images, the weight gradient by chunks of images
      const split = convSplit(kernel);
      // 3×3 stride-1 convolutions as Winograd (codegen/wasm/winograd.ts, winograd-weight.ts), split the same way
      const wino = winogradFits(kernel);
      const body = !wino ? convBody : kernel.op === 'conv_weight_grad' ? winogradWeightGradBody : winogradBody;
      // the forwards' transformed weights first, once (unsplit: the threads of the split kernel all read them)
      const weights = wino && kernel.op !== 'conv_weight_grad';
      if (weights) this.kernels.push({ name: `${name}_u`, body: winogradWeightsBody(kernel), what: `the Winograd transform of ${name}'s weights (G w Gᵀ), read by ${name}` });
      this.kernels.push(split ? { name, body: body(kernel, { ranged: true }), d, split } : { name, body: body(kernel), d });
      if (kernel.op !== 'conv_weight_grad') return weights ? [...call(`${name}_u`), ...call(name)] : call(name);
      // the weight gradient's partial sums of the chunks, added in order into dw
      this.kernels.push({ name: `${name}_sum`, body: (wino ? winogradSumBody : convSumBody)(kernel), d, what: `the ${chunksOf(kernel.N).chunks} chunks' partial sums of ${name}, added in order${wino ? ', and the Winograd output transform' : ''}` });
      return [...call(name), ...call(`${name}_sum`)];
    }
    if (d.kind === 'pool') {
      // split by planes (a window's taps as its work)
      const name = `${d.kernel.op}_${last}`;
      const p = d.kernel;
      this.kernels.push({ name, body: poolBody(p, { ranged: true }), d, split: { extent: p.planes, align: 1, work: p.planes * p.Ho * p.Wo * p.kernel[0]! * p.kernel[1]! } });
      return call(name);
    }
    if (d.kind !== 'matmul') throw new Error(`internal: a ${(d as Decision).kind} decision in the static module`);
    return this.matmulCode(u, d, last, e);
  }

  /** A matmul group: the matmul kernel (its epilogue fused, else a kernel of the kernel form or a JS loop after it). */
  private matmulCode(u: Unit, d: MatmulDecision, last: string, e: UnitEmitter): string[] {
    const g = u.graph;
    const mm = u.insts[0]!;
    const name = `matmul_${last}`;
    const { productAt, packAt, packAAt } = this.scratch;
    const c = d.productStored ? this.address(g, mm.result) : d.fusedEpilogue ? undefined : productAt;
    const kernel = { ...d.kernel, name, c, pack: d.kernel.transB || packsB(d.kernel) ? packAt : undefined, packA: packsA(d.kernel) ? packAAt : undefined };
    // one matrix splits by blocks of the register tile's rows; a batch by its matrices
    if (kernel.batch === 1)
      this.kernels.push({
        name,
        body: matmulBody(kernel, { ranged: true }),
        d,
        split: {
          extent: kernel.M,
          align: DEFAULT_TILE.rows,
          work: kernel.M * kernel.N * kernel.K,
          pack: kernel.transB
            ? { body: packBody(kernel), rows: kernel.N, work: PACK_COST * kernel.N * kernel.K }
            : kernel.pack !== undefined
              ? { body: packBody(kernel), rows: kernel.K, work: kernel.N * kernel.K } // B's rows copied into its panels
              : undefined,
        },
      });
    else this.kernels.push({ name, body: matmulBody(kernel, { batches: true }), d, split: { extent: kernel.batch, align: 1, work: kernel.batch * kernel.M * kernel.N * kernel.K } });
    const call = [`${member('kernels', name)}();`];
    if (d.fusedEpilogue) return call;
    // the epilogue as a kernel of the kernel form, reading the product where the matmul wrote it
    const routine = lowerUnitOf(this.plan, u).launch;
    const product = routine?.kind === 'routine' ? routine.output.arg : undefined;
    const epi =
      routine?.kind === 'routine' && routine.epilogue
        ? this.formKernel(`epilogue_${last}`, routine.epilogue, `the epilogue of ${name} (kernel form)`, (arg) => (arg === product ? (c ?? productAt) : this.arrayAt(arg)))
        : undefined;
    if (epi) {
      const at = this.kernels.findIndex((x) => x.name === name);
      this.kernels[at] = { ...this.kernels[at]!, epilogueKernel: true };
      return [...call, ...epi];
    }
    if (!d.productStored) e.use('_product');
    return [...call, ...e.epilogueLoop(u, d.productStored ? e.arrOf(g, mm.result) : '_product')];
  }
}

/** A kernel of the kernel form rendered as wasm, or undefined where the renderer cannot render it yet. */
function tryRender(k: FormKernel, addr: (arg: string) => number | undefined, partialAt?: number): WasmKernel | undefined {
  try {
    return renderWasmKernel(k, addr, undefined, partialAt);
  } catch (err) {
    if (err instanceof KernelUnsupported) return undefined;
    throw err;
  }
}

/**
 * The memory of the constant arrays (not uniform: a uniform one is a literal of the kernels) from
 * `start`: `at` gives one's address (noting it as read), `entries` the arena's lines that copy the
 * read ones in (after the units: the others need no copy).
 */
function constLayout(m: ModuleInfo, start: number): { end: number; at(name: string): number | undefined; entries(typed: boolean): string[] } {
  const consts = new Map<string, { at: number; dtype: 'f32' | 'i32'; data: readonly number[] }>();
  let end = start;
  for (const g of [m.fwd, m.bwd])
    for (const inst of g.insts) {
      const name = g.value(inst.result).name;
      const s = m.plan.storage.get(name);
      if (inst.op === 'fwd' || s?.kind !== 'const' || consts.has(name) || uniformConst(m.plan, name) !== undefined) continue;
      consts.set(name, { at: end, dtype: g.type(inst.result).dtype, data: s.data });
      end += align(s.data.length * 4);
    }
  const read = new Set<string>();
  return {
    end,
    at(name) {
      const c = consts.get(name);
      if (c) read.add(name);
      return c?.at;
    },
    entries: (typed) =>
      [...read].map((name) => {
        const c = consts.get(name)!;
        const type = c.dtype === 'f32' ? 'Float32Array' : 'Int32Array';
        return `${key(`_mem_${name}`)}: ((a${typed ? `: ${type}` : ''}) => (a.set([${c.data.map((x) => E.num(x).code).join(', ')}]), a))(new ${type}(memory.buffer, ${c.at}, ${c.data.length})), // ${commentText(name)}, in the memory for the kernels`;
      }),
  };
}

/**
 * The memory of the training step: each covered param's optimizer state (a param whose staged
 * copy and gradient are arrays of the arena), then the step scalars; the update kernel over them.
 * The state of a param the kernel does not cover (its gradient is a copy outside the memory) is a
 * plain array, updated by the flat module's loop.
 */
function trainLayout(m: ModuleInfo, address: Address, start: number, t: Typed): { end: number; backend: TrainBackend; kernel?: Kernel } {
  const spec = m.optimizer!;
  const { slots, groups, targets, covered, fields, scalarsAt, scalarCount, end, stagedOf, copyBack } = updateLayout(m, address, start, false);
  const backend: TrainBackend = {
    decls: [
      `// The optimizer state in the memory, where the update kernel reads and writes it. The first initOptState`,
      `// of this instance returns a state whose arrays are these (a fresh object: step 0, zeros), which trainStep`,
      `// then updates in place; any other state (a later initOptState's plain arrays, one of the caller's own, or`,
      `// an array the caller replaced) is copied in before the kernel and back out after it, the first state's`,
      `// arrays kept aside meanwhile: every state is independent of the others, and its arrays are the state.`,
      `const optMemory = { ${slots.map((s) => `${s}: { ${fields.get(s)!.join(', ')} }`).join(', ')} };`,
      `let optHandedOut = false; // whether initOptState has returned the memory's arrays`,
      `const optSpares${t(': (Float32Array | undefined)[]')} = []; // the memory's arrays, kept aside while another state's are in`,
      `/** Before the update kernel: a state's array that is not the memory's own is copied in. */`,
      `function optIn(k${t(': number')}, mine${t(': Float32Array')}, theirs${t(': Float32Array')})${t(': void')} {`,
      `  if (theirs === mine) return;`,
      `  if (optHandedOut) (optSpares[k] ??= new Float32Array(mine.length)).set(mine);`,
      `  mine.set(theirs);`,
      `}`,
      `/** After it: that array back out, and the memory's own back in. */`,
      `function optOut(k${t(': number')}, mine${t(': Float32Array')}, theirs${t(': Float32Array')})${t(': void')} {`,
      `  if (theirs === mine) return;`,
      `  theirs.set(mine);`,
      `  if (optHandedOut) mine.set(optSpares[k]${t('!')});`,
      `}`,
      ...groups.map((x, k) => `const optScalars${groups.length > 1 ? `_${k + 1}` : ''} = new Float32Array(memory.buffer, ${scalarsAt[k]}, ${Math.max(1, scalarCount[k]!)}); // ${scalarNames(x.spec).join(', ') || 'unused'}${groups.length > 1 ? ` (${commentText(x.params.join(', '))})` : ''}`),
      '',
    ],
    covered,
    resident: 'optMemory',
    staged: stagedOf,
    run: (values) => [
      ...values.flatMap((vs, g) => vs.map((s, k) => `optScalars${groups.length > 1 ? `_${g + 1}` : ''}[${k}] = ${s};`)),
      'kernels.update();',
      ...copyBack,
    ],
  };
  if (targets.length === 0) return { end, backend };
  const doc = `${spec.name} update of ${targets.length} param${targets.length === 1 ? '' : 's'} (${[...covered].join(', ')})`;
  return { end, backend, kernel: { name: 'update', body: updateBody(targets), d: { kind: 'update', params: targets.length, doc } } };
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
    const pack = k.split.pack ? fns.push({ name: `${k.name}_pack`, body: k.split.pack.body }) - 1 : undefined;
    const whole = new Body();
    if (pack !== undefined) whole.i32(0).i32(k.split.pack!.rows).call(pack);
    whole.i32(0).i32(k.split.extent).call(rows);
    fns.push({ name: k.name, body: whole });
  }
  return fns;
}

/**
 * freshInstance(): instance() evaluated anew from its source, for create(). The steps of the
 * default exports are closures that instance() made once, which V8 compiles for their one arena
 * (its arrays, its kernels: constants of their context); a second call of the same instance()
 * makes them closures made twice, compiled for any context, and slows the default exports and
 * the new instance alike (the GPT step by 8–10%, 2026-12-02: docs/threads.md). Where the source
 * cannot be evaluated (a page whose Content-Security-Policy forbids it; a minified build, whose
 * source no longer names the module-level functions it calls) it is instance() itself.
 */
function freshDecl(scope: readonly string[], typed: boolean): string[] {
  const T = (s: string) => (typed ? s : '');
  return [
    '/** instance(), evaluated anew from its source: its steps are closures of their own (see create). */',
    `function freshInstance()${T(': typeof instance')} {`,
    `  const scope = { ${scope.join(', ')} }; // the module-level names instance() refers to`,
    '  const source = String(instance);',
    '  try {',
    "    if (source.startsWith('function instance(') && Object.keys(scope).every((n) => new RegExp(`\\\\b${n}\\\\b`).test(source)))",
    `      return new Function('__name', ...Object.keys(scope), \`return \${source};\`)((f${T(': unknown')}) => f, ...Object.values(scope));`,
    '  } catch {',
    '    /* no eval here (a Content-Security-Policy): instance() itself */',
    '  }',
    '  return instance;',
    '}',
  ];
}

/**
 * The byte that makes the module's memory import shared (a threaded instance sets it). The import
 * section comes before every section that depends on the functions (the type section is fixed),
 * so the modules of no functions have it at the same offset: two full encodings of the kernels
 * cost 2 × 150 ms for nanoGPT (2026-12-07).
 */
function sharedFlagAt(pages: number): number {
  const [a, b] = [false, true].map((shared) => encodeModule(pages, [], { shared }));
  const at = a!.findIndex((x, i) => x !== b![i]);
  if (at < 0 || a!.length !== b!.length) throw new Error('internal: no shared flag');
  return at;
}

/** An encoding of the kernels' module: what encodeModule reads of each function, and its result. */
interface Encoding {
  readonly pages: number;
  readonly fns: readonly { readonly name: string; readonly params: number; readonly code: readonly number[]; readonly sites: readonly number[] }[];
  readonly bytes: Uint8Array;
  readonly sites: readonly number[];
}

/** The last encoding of each module's kernels (the .ts and the .js module of a build have the same kernels). */
const encodings = new WeakMap<ModuleInfo, Encoding>();

/**
 * encodeModule(pages, fns, { sites }), reused where the module's last encoding had the same
 * pages and functions: the same names, arguments and encoded bodies (encodeModule's bytes and
 * sites are a function of these; a body's own encoding costs a tenth of the module's, whose
 * assembly took 150 ms for nanoGPT, 2026-12-07).
 */
function encodeKernels(m: ModuleInfo, pages: number, functions: readonly { name: string; body: Body }[]): { bytes: Uint8Array; sites: readonly number[] } {
  const fns = functions.map((f) => {
    const sites: number[] = [];
    return { name: f.name, params: f.body.params, code: f.body.encode(false, sites, 0), sites };
  });
  const last = encodings.get(m);
  const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (last && last.pages === pages && last.fns.length === fns.length && last.fns.every((f, k) => f.name === fns[k]!.name && f.params === fns[k]!.params && same(f.code, fns[k]!.code) && same(f.sites, fns[k]!.sites))) return last;
  const sites: number[] = [];
  const bytes = encodeModule(pages, functions, { sites });
  encodings.set(m, { pages, fns, bytes, sites });
  return { bytes, sites };
}

/** The kernels: their list, the WebAssembly API this module uses (typed) and the module's bytes. */
function kernelsDecl(m: ModuleInfo, kernels: readonly Kernel[], pages: number, typed: boolean): string[] {
  const { bytes, sites } = encodeKernels(m, pages, functionsOf(kernels));
  const base64 = Buffer.from(bytes).toString('base64');
  const chunks = base64.match(/.{1,96}/g) ?? [''];
  const what = (d: Decision, k: Kernel) => {
    if (d.kind === 'update') return 'optimizer step';
    if (d.kind === 'pool') return `${d.kernel.op.replaceAll('_', ' ')} over ${d.kernel.planes} planes of ${d.kernel.H}×${d.kernel.W}`;
    if (d.kind === 'conv') return winogradFits(d.kernel) ? winogradWhat(d.kernel) : convWhat(d.kernel);
    const mm = d.kernel;
    const layout = mm.transA || mm.transB ? ` (${[mm.transA ? 'A' : '', mm.transB ? 'B' : ''].filter(Boolean).join(', ')} transposed)` : '';
    return `${mm.batch > 1 ? `${mm.batch} × ` : ''}[${mm.M},${mm.K}]·[${mm.K},${mm.N}]${layout}${d.fusedEpilogue ? '' : k.epilogueKernel ? ', epilogue a kernel of its own' : ', epilogue in JS'}`;
  };
  return [
    `// WebAssembly SIMD kernels (${bytes.length} bytes), one per matmul, convolution, pooling, row softmax and index routine and per fused group of the kernel form, in the order the steps call them:`,
    ...kernels.map((k) => `//   ${k.name}: ${k.what ?? (k.d ? `${commentText(k.d.doc)}   ${what(k.d, k)}` : '')}`),
    ...(typed
      ? [
          '// The part of the WebAssembly API this module uses (declared here: TypeScript has it only with the DOM library).',
          'declare const WebAssembly: {',
          '  Memory: new (size: { initial: number; maximum: number; shared?: boolean }) => { readonly buffer: ArrayBufferLike };',
          '  Module: new (bytes: Uint8Array) => object;',
          '  Instance: new (module: object, imports: object) => { readonly exports: object };',
          ...(sites.length ? ['  validate: (bytes: Uint8Array) => boolean;'] : []),
          '};',
          `type Kernels = { ${kernels.map((k) => `${k.name}(): void;`).join(' ')} };`,
        ]
      : []),
    'const wasm = [',
    ...chunks.map((c) => `'${c}',`),
    "].join('');",
    'const bytes = Uint8Array.from(atob(wasm), (c) => c.charCodeAt(0));',
    ...relaxedDecl(sites, typed),
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
