// Threads under the wasm kernels: the code of the wasm module's `create({ threads })`. It makes a
// shared WebAssembly.Memory, instantiates the module's kernels (the same bytes, with the memory
// import marked shared) on the calling thread and on N − 1 workers (Node's worker_threads, a
// browser's Web Workers), and gives `instance()` (the module's arena and steps, see
// codegen/wasm.ts) a `kernels` object whose large kernels run split: every kernel that splits is
// a function of a range of rows (of columns, for a column reduction over fewer than 1,024 rows; of
// fixed chunks of rows with partial sums, added in order afterwards, over more), and the blocks of a call
// write disjoint parts of their outputs and add in the order the whole kernel does, so that the
// results are bit-identical to the single-threaded module's. A kernel below a measured amount
// of work per thread runs whole on the calling thread.
//
// Workers are told of a block through a slot of a SharedArrayBuffer (a generation number, the
// kernel, the range) and `Atomics.notify`; after a block each spins on its slot for a while
// before it sleeps in `Atomics.wait`, so that the next kernel of a step finds it awake. The
// caller runs its own block, then takes every block that no worker has claimed yet (a worker
// asleep, or not scheduled on a busy machine: no call waits for a thread that has not started),
// and spins (and, where a thread may block, sleeps) until the claimed blocks are done. Which
// thread runs a block never changes what it computes. Nothing is imported at load time: Node's worker_threads
// is imported by `create` itself.

/** How a kernel splits: its extent (rows, or columns), the block alignment, and its work (multiply-adds or element steps). */
export interface Split {
  readonly extent: number;
  readonly align: number;
  readonly work: number;
}

/**
 * Work a thread must get for a kernel to split: 2 million multiply-adds, from a sweep of
 * bench/threads-step.mjs --min-work on the 2-core development machine (docs/threads.md, 2026-12-02):
 * the GPT's kernels (up to 524,288) and WaveNet's (up to 2,097,152) ran no faster split at any
 * minWork, makemore L's (7 and 50 million, and its tanh group) did. Below it a kernel runs whole.
 */
export const MIN_WORK_PER_THREAD = 1 << 21;
/**
 * The work of one float that the packing of a transposed B copies: its writes stride down the
 * packed columns (makemore L packed 196,608 floats in 0.57 ms, 2026-12-02: about the time of 10
 * million multiply-adds in a matmul kernel), so a copy counts as 32.
 */
export const PACK_COST = 32;
/**
 * How many adds of a column reduction count as one unit of work: a column reduction split by
 * columns makes each thread read every row of its arrays, and splitting one never paid on the
 * 2-core development machine (docs/threads.md), so it splits only when 16 times larger.
 */
export const COLUMN_REDUCTION_COST = 16;
/**
 * The work of one element of the domain of a kernel of the kernel form, on top of its nodes (the
 * renderer counts a node per element): its loads and stores. A layout copy or a ReLU over the CIFAR
 * ResNet's [32,16,32,32] activations (524,288 elements, one or two nodes) took 0.09–0.37 ms on one
 * thread (2026-12-07), as long as a matmul of 2–9 million multiply-adds, where its nodes alone
 * counted 0.5–1 million and it never split.
 */
export const ELEMENT_COST = 8;
/**
 * The work of one element of a softmax along the last axis (its max, exponential, sum and
 * division): the GPT's attention softmax, 196,608 elements, took 0.54 ms (2026-12-07), as long as
 * a matmul of about 13 million multiply-adds.
 */
export const SOFTMAX_COST = 64;

/**
 * The split of a kernel of the kernel form (the renderer's, codegen/wasm/kernel.ts), its work in
 * multiply-adds: its nodes and ELEMENT_COST per element of its domain; a reduction with a kept axis
 * after a reduced one splits by columns, where every thread reads every row, and its work counts
 * COLUMN_REDUCTION_COST times less (makemore L's column sums over [256,1024] ran 1.2–2.5× slower
 * split, 2026-12-02; the CIFAR ResNet's batch-norm sums over [32768,16], whose blocks of 8 columns
 * share every cache line and lose the renderer's 16-column unrolling, 1.1–3×, 2026-12-07).
 */
export function formSplit(split: Split, domain: readonly (number | string)[], axes: readonly number[], byRows = false): Split {
  const numel = domain.reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1);
  const work = split.work + ELEMENT_COST * numel;
  // (a column sum split by chunks of rows, codegen/wasm/kernel.ts's ROW_CHUNKS: each thread reads its own rows)
  const columns = !byRows && axes.length > 0 && domain.some((_, i) => i > axes[0]! && !axes.includes(i));
  return { ...split, work: columns ? Math.floor(work / COLUMN_REDUCTION_COST) : work };
}

/**
 * Loads of its slot a worker makes after a block before it sleeps (about 10 µs here: the gap
 * between the kernels of a step). Longer spins made the step slower on the loaded development
 * machine, where a spinning worker takes CPU time from the calling thread (docs/threads.md).
 */
export const SPIN = 2000;
/** Loads of a done generation the caller makes before it sleeps, waiting for a block that a worker runs. */
export const WAIT_SPIN = 20000;
/**
 * The first timed calls of a kernel that adapts (whole and split alternating, the faster time of
 * each way kept) before it picks a way: one of each picked the GPT's and the ResNet's first-layer
 * products and convolutions whole in some runs (a slow first call of a way: a page fault, a
 * worker late), which a re-timing 16 calls later only then undid.
 */
export const WARM = 6;

/** The lines of the threaded part of a wasm module. */
export function threadsDecl(
  /** `pack`: a transposed B packed first, by a function of a range of B's rows that splits too (its rows and work). */
  kernels: readonly { name: string; split?: Split & { pack?: { rows: number; work: number } } }[],
  pages: number,
  sharedFlagAt: number,
  typed: boolean,
  /** The derived functions of the module (--hvp, --jvp): the instance carries them too. */
  derived: readonly string[] = [],
): string[] {
  const T = (s: string) => (typed ? s : '');
  const split = kernels.filter((k) => k.split);
  const table = split.map((k) => `  ${JSON.stringify(k.name)}: [${k.split!.extent}, ${k.split!.align}, ${k.split!.work}, ${k.split!.pack?.rows ?? 0}, ${k.split!.pack?.work ?? 0}],`);
  return [
    '// ---------------------------------------------------------------------------------------------',
    '// Threads: create({ threads }) runs the large kernels split over threads sharing one memory (see docs/threads.md).',
    '',
    '/** The kernels that split: [extent (rows; columns for a column reduction), block alignment, work, rows and work of the packing of a transposed B first (0: none)]. */',
    `const splits${T(': Record<string, readonly [number, number, number, number, number]>')} = {`,
    ...table,
    '};',
    `const MIN_WORK = ${MIN_WORK_PER_THREAD}; // work a thread must get for a kernel to split`,
    `const SPIN = ${SPIN}; // loads of its slot a worker makes before it sleeps`,
    `const WARM = ${WARM}; // timed calls, whole and split alternating, from which an adapting kernel picks its way`,
    `const WAIT_SPIN = ${WAIT_SPIN}; // loads of a running block's done generation the caller makes before it sleeps`,
    'const PACK_ALIGN = 16; // the columns of a packed B a chunk of its packing starts at: a cache line',
    '',
    ...workerLines(T),
    ...createLines(pages, sharedFlagAt, T, derived),
    ...splitLines(T),
    ...kernelsLines(T, derived),
  ];
}

/** The workers' code (workerMain, startWorker) and the thread count of the machine. */
function workerLines(T: (s: string) => string): string[] {
  return [
    '/**',
    ' * A worker: the kernels over the shared memory, then a loop over its slot (16 words of `ctl`:',
    ' * [0] the job generation, -1 to stop; [1] the kernel; [2], [3] the range; [4] the done',
    ' * generation; [5] set while it sleeps; [6] set while the caller sleeps; [7] the claim: the',
    ' * generation while the block is open, its negation once this worker or the caller took it).',
    ' * Its source is the code of the worker, so it refers to nothing outside itself.',
    ' */',
    `function workerMain(data${T(': any')}, ready${T(': () => void')})${T(': void')} {`,
    '  const { module, memory, ctl: shared, slot, names, spin } = data;',
    '  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports as any;'.replace(' as any', T(' as any')),
    `  const fns${T(': ((start: number, end: number) => void)[]')} = names.map((n${T(': string')}) => exports[n]);`,
    '  const ctl = new Int32Array(shared);',
    '  const at = 16 * slot;',
    '  let seen = 0;',
    '  ready();',
    '  for (;;) {',
    '    let gen = Atomics.load(ctl, at);',
    '    for (let n = 0; gen === seen && n < spin; n++) gen = Atomics.load(ctl, at);',
    '    if (gen === seen) {',
    '      Atomics.store(ctl, at + 5, 1);',
    '      Atomics.wait(ctl, at, seen);',
    '      Atomics.store(ctl, at + 5, 0);',
    '      continue;',
    '    }',
    '    if (gen < 0) return;',
    '    seen = gen;',
    '    // the block is this worker\'s unless the caller, done with its own, took it first',
    '    if (Atomics.compareExchange(ctl, at + 7, gen, -gen) !== gen) continue;',
    '    fns[ctl[at + 1]!]!(ctl[at + 2]!, ctl[at + 3]!);'.replace(/!/g, T('!')),
    '    Atomics.store(ctl, at + 4, gen);',
    '    if (Atomics.load(ctl, at + 6)) Atomics.notify(ctl, at + 4);',
    '  }',
    '}',
    '',
    "// the worker's source is workerMain's: a bundler that keeps function names (esbuild's keepNames) may wrap it in __name",
    "const PRELUDE = 'var __name = (f) => f;\\n';",
    '',
    '/** Starts a worker running workerMain(data); resolves when its kernels are instantiated. */',
    `async function startWorker(data${T(': object')})${T(': Promise<{ terminate(): unknown }>')} {`,
    `  const g = globalThis${T(' as any')};`,
    '  if (g.process?.versions?.node) {',
    "    const wt = 'node:worker_threads'; // imported only here, and only in Node",
    `    const { Worker } = await import(wt)${T(' as any')};`,
    "    // (a dynamic import: an eval'd worker is CommonJS, or an ES module under --input-type=module)",
    "    const code = `${PRELUDE}import('node:worker_threads').then(({ parentPort, workerData }) => (${workerMain})(workerData, () => parentPort.postMessage('ready')));`;",
    '    const worker = new Worker(code, { eval: true, workerData: data });',
    `    await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });`,
    '    worker.unref(); // a worker never keeps the process alive',
    '    return worker;',
    '  }',
    '  if (!g.crossOriginIsolated)',
    "    throw new Error('create({ threads }): a page needs cross-origin isolation for shared memory: serve it with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp');",
    "  const code = `${PRELUDE}onmessage = (e) => { onmessage = null; (${workerMain})(e.data, () => postMessage('ready')); };`;",
    "  const url = g.URL.createObjectURL(new g.Blob([code], { type: 'text/javascript' }));",
    '  const worker = new g.Worker(url);',
    `  await new Promise((resolve, reject) => { worker.onmessage = resolve; worker.onerror = reject; worker.postMessage(data); });`,
    '  g.URL.revokeObjectURL(url);',
    '  return worker;',
    '}',
    '',
    '/** Whether create() has warned of a thread count above the hardware threads (it does once). */',
    'let warnedThreads = false;',
    '',
    '/** The number of threads of this machine. */',
    `async function hardwareThreads()${T(': Promise<number>')} {`,
    `  const g = globalThis${T(' as any')};`,
    '  if (g.navigator?.hardwareConcurrency) return g.navigator.hardwareConcurrency;',
    "  const os = 'node:os';",
    `  if (g.process?.versions?.node) return (await import(os)${T(' as any')}).availableParallelism();`,
    '  return 1;',
    '}',
    '',
  ];
}

/** create()'s head: its options, the instance where nothing splits, the shared memory, the workers. */
function createLines(pages: number, sharedFlagAt: number, T: (s: string) => string, derived: readonly string[]): string[] {
  return [
    '/**',
    ' * An instance of the module whose large kernels run split over `threads` threads (this one and',
    ' * threads − 1 workers; default, and at most: every hardware thread), with its own arena in a shared',
    ' * memory. Its functions are those of the module, synchronous, bit-identical in their results;',
    ' * `destroy()` stops the workers (which never keep a process alive in any case). `minWork`: the',
    ` * work a thread must get for a kernel to split (default ${MIN_WORK_PER_THREAD}; 0 splits every kernel that can);`,
    ' * `adapt` (default true): time each kernel that splits, whole and split, and run it the faster',
    ' * way (false: always split).',
    ...(derived.length
      ? [
          ` * The derived functions (${derived.join(', ')}) are the module's own, on the calling thread (their own`,
          ' * single-threaded kernels and memory): the instance carries them so that it has every entry point.',
        ]
      : []),
    ' */',
    `export async function create(options${T(': { threads?: number; minWork?: number; adapt?: boolean }')} = {})${T(`: Promise<ReturnType<typeof instance> & { readonly threads: number; destroy(): Promise<void> }${derived.map((d) => ` & { ${d}: typeof ${d} }`).join('')}>`)} {`,
    '  const hardware = await hardwareThreads();',
    '  let threads = options.threads ?? hardware;',
    '  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`create: threads must be a whole number ≥ 1, got ${describeArg(threads)}`);',
    '  if (threads > hardware) {',
    '    // more threads than the machine runs at once only take turns (and each worker holds its memory)',
    '    if (!warnedThreads) console.warn(`create: threads: ${threads} is more than the ${hardware} hardware threads of this machine: using ${hardware} (docs/threads.md)`);',
    '    warnedThreads = true;',
    '    threads = hardware;',
    '  }',
    '  const minWork = options.minWork ?? MIN_WORK;',
    `  if (!Number.isFinite(minWork) || minWork < 0) throw new RangeError(\`create: minWork must be a number ≥ 0, got \${minWork}\`);`,
    '  /** The blocks a kernel splits into on this many threads (1: it runs whole, on the calling thread). */',
    `  const blocksOf = (extent${T(': number')}, align${T(': number')}, work${T(': number')})${T(': number')} => Math.min(threads, minWork > 0 ? Math.floor(work / minWork) : threads, Math.ceil(extent / align));`,
    '  if (!Object.values(splits).some(([extent, align, work]) => blocksOf(extent, align, work) > 1)) {',
    '    // no kernel splits: the module\'s own kind of instance, over a memory of its own (unshared: the steps',
    '    // between the kernels run faster over an ArrayBuffer than over a SharedArrayBuffer), with no workers',
    `    const memory = new WebAssembly.Memory({ initial: ${pages}, maximum: ${pages} });`,
    `    const own = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports${T(' as unknown as Kernels')};`,
    '    return {',
    '      ...freshInstance()(memory, own),',
    ...derived.map((d) => `      ${d},`),
    '      threads,',
    '      async destroy() {},',
    '    };',
    '  }',
    `  const memory = new WebAssembly.Memory({ initial: ${pages}, maximum: ${pages}, shared: true });`,
    '  const shared = bytes.slice();',
    `  shared[${sharedFlagAt}] = 3; // the memory import: shared`,
    '  const module = new WebAssembly.Module(shared);',
    `  const own = new WebAssembly.Instance(module, { env: { memory } }).exports${T(' as any')};`,
    '  const names = Object.keys(splits);',
    '  const packed = names.filter((n) => splits[n]![3]! > 0);'.replace(/!/g, T('!')),
    '  // the jobs: each kernel that splits (a function of a range), then each packing of a transposed B',
    '  const jobs = [...names.map((n) => `${n}_range`), ...packed.map((n) => `${n}_pack`)];',
    '  const ranges = jobs.map((n) => own[n]);',
    '  const ctl = new Int32Array(new SharedArrayBuffer(64 * Math.max(1, threads - 1)));',
    `  const workers${T(': { terminate(): unknown }[]')} = [];`,
    '  try {',
    '    for (let slot = 0; slot < threads - 1; slot++)',
    '      workers.push(await startWorker({ module, memory, ctl: ctl.buffer, slot, names: jobs, spin: SPIN }));',
    '  } catch (e) {',
    '    for (const w of workers) w.terminate();',
    '    throw e;',
    '  }',
  ];
}

/** create()'s middle: handing out a kernel's blocks (`split`), adapting (`run`). */
function splitLines(T: (s: string) => string): string[] {
  return [
    '  // Atomics.wait may not block a browser\'s main thread: there the caller only spins',
    '  let canWait = true;',
    '  try {',
    '    Atomics.wait(ctl, 0, 1, 0);',
    '  } catch {',
    '    canWait = false;',
    '  }',
    '  let gen = 0;',
    '  let destroyed = false;',
    '  /** Kernel k over [0, extent) in n blocks, over the workers and this thread; false where this thread ran a worker\'s block. */',
    `  const split = (k${T(': number')}, extent${T(': number')}, align${T(': number')}, n${T(': number')})${T(': boolean')} => {`,
    '    const block = Math.ceil(extent / align / n) * align;',
    '    const used = Math.ceil(extent / block);',
    '    gen = gen >= 0x3fffffff ? 1 : gen + 1;',
    '    for (let w = 1; w < used; w++) {',
    '      const at = 16 * (w - 1);',
    '      ctl[at + 1] = k;',
    '      ctl[at + 2] = w * block;',
    '      ctl[at + 3] = Math.min(extent, (w + 1) * block);',
    '      Atomics.store(ctl, at + 7, gen);',
    '      Atomics.store(ctl, at, gen);',
    '      if (Atomics.load(ctl, at + 5)) Atomics.notify(ctl, at);',
    '    }',
    '    ranges[k](0, block);',
    '    let helped = true;',
    '    for (let w = 1; w < used; w++) {',
    '      const at = 16 * (w - 1);',
    '      // a block no worker has taken yet (its worker is asleep or not scheduled) runs here',
    '      if (Atomics.compareExchange(ctl, at + 7, gen, -gen) === gen) {',
    '        ranges[k](w * block, Math.min(extent, (w + 1) * block));',
    '        helped = false;',
    '        continue;',
    '      }',
    '      for (let s = 0; ; s++) {',
    '        const done = Atomics.load(ctl, at + 4);',
    '        if (done === gen) break;',
    '        if (canWait && s > WAIT_SPIN) {',
    '          Atomics.store(ctl, at + 6, 1);',
    '          Atomics.wait(ctl, at + 4, done);',
    '          Atomics.store(ctl, at + 6, 0);',
    '        }',
    '      }',
    '    }',
    '    return helped;',
    '  };',
    '  // adapt: each kernel that splits is timed, whole and split (its first WARM timed calls',
    '  // alternating, the faster of each way\'s kept), and runs the faster way; every `period` calls',
    '  // one call of each way is timed again (a time follows down at once, up by a quarter of the',
    '  // gap), the period doubling (to 1024) each time the other way loses',
    '  const adapt = options.adapt ?? true;',
    '  const best = new Float64Array(2 * jobs.length).fill(-1); // [whole, split] ms per job, -1 unknown',
    '  const warm = new Int32Array(jobs.length); // timed calls kept, of the first WARM',
    '  const late = new Int32Array(jobs.length); // timed splits not kept in a row (a worker late)',
    '  const calls = new Int32Array(jobs.length);',
    '  const period = new Int32Array(jobs.length).fill(16);',
    '  /** Kernel k over [0, extent): whole here, or split in blocks over the threads. */',
    `  const run = (k${T(': number')}, extent${T(': number')}, align${T(': number')}, work${T(': number')})${T(': void')} => {`,
    "    if (destroyed) throw new Error('this threaded instance has been destroyed');",
    '    const n = blocksOf(extent, align, work);',
    '    if (n <= 1) return ranges[k](0, extent);',
    '    if (!adapt) {',
    '      split(k, extent, align, n);',
    '      return;',
    '    }',
    '    const faster = best[2 * k + 1]! < best[2 * k]! ? 1 : 0;'.replace(/!/g, T('!')),
    '    // timed: the first WARM calls, then one call of the faster way and one of the other every period calls',
    '    const phase = warm[k]! < WARM ? -1 : ++calls[k]! % period[k]!;'.replace(/!/g, T('!')),
    '    if (phase > 1) {',
    '      if (faster) split(k, extent, align, n);',
    '      else ranges[k](0, extent);',
    '      return;',
    '    }',
    '    const mode = phase < 0 ? warm[k]! & 1 : phase === 1 ? 1 - faster : faster;'.replace(/!/g, T('!')),
    '    const t0 = performance.now();',
    '    // a split where a worker woke too late to take its block (this thread ran it) times the',
    '    // wake-up, not the split (usually 0.1 ms here, now and then 4–6 ms): not kept, unless the',
    '    // two timed splits before it were not either (workers always late: the split is that slow)',
    '    if (mode) late[k] = split(k, extent, align, n) ? 0 : late[k]! + 1;'.replace(/!/g, T('!')),
    '    else ranges[k](0, extent);',
    '    if (mode && late[k]! % 3) return;'.replace(/!/g, T('!')),
    '    const t = performance.now() - t0;',
    '    const e = best[2 * k + mode]!;'.replace(/!/g, T('!')),
    '    best[2 * k + mode] = e < 0 || t < e ? t : phase < 0 ? e : e + 0.25 * (t - e);',
    '    if (phase < 0) warm[k]!++;'.replace(/!/g, T('!')),
    '    if (phase === 1) period[k] = (mode === 1) === (best[2 * k + 1]! < best[2 * k]!) ? 16 : Math.min(1024, 2 * period[k]!);'.replace(/!/g, T('!')),
    '  };',
  ];
}

/** create()'s tail: the kernels object and the instance. */
function kernelsLines(T: (s: string) => string, derived: readonly string[]): string[] {
  return [
    `  const kernels${T(': any')} = {};`,
    '  for (const name of Object.keys(own)) if (!/_(range|pack)$/.test(name)) kernels[name] = own[name];',
    '  names.forEach((name, k) => {',
    `    const [extent, align, work, packRows, packWork] = splits[name]${T('!')};`,
    '    // a kernel too small to split on this many threads is the wasm function itself',
    '    if (blocksOf(extent, align, work) <= 1) return;',
    '    if (!packRows) {',
    '      kernels[name] = () => run(k, extent, align, work);',
    '      return;',
    '    }',
    '    // the packing of its transposed B splits whenever it can, without timing: run split, it also wakes',
    '    // the workers for the matmul that follows, which its own times would not show',
    '    const p = names.length + packed.indexOf(name); // its job',
    '    const n = blocksOf(packRows, PACK_ALIGN, packWork);',
    '    kernels[name] = () => {',
    "      if (destroyed) throw new Error('this threaded instance has been destroyed');",
    '      if (n > 1) split(p, packRows, PACK_ALIGN, n);',
    '      else ranges[p](0, packRows);',
    '      run(k, extent, align, work);',
    '    };',
    '  });',
    '  return {',
    '    ...freshInstance()(memory, kernels),',
    ...derived.map((d) => `    ${d},`),
    '    threads,',
    '    async destroy() {',
    '      if (destroyed) return;',
    '      destroyed = true;',
    '      for (let w = 0; w < workers.length; w++) {',
    '        Atomics.store(ctl, 16 * w, -1);',
    '        Atomics.notify(ctl, 16 * w);',
    '      }',
    '      await Promise.all(workers.map((w) => w.terminate()));',
    '    },',
    '  };',
    '}',
  ];
}
