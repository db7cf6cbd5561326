// The GPU.js target: the same steps as the flat module, as gpu.js kernels. Each value a fused
// group writes is one kernel that computes it at the position of its thread (gpu.js's webgpu
// backend has no kernel maps, so a group that writes two values becomes two kernels); values
// that live only inside the group are recomputed inline. The kernels are chained by two
// gpu.js pipelines, compiled once in `create`: `forward`, and `valueAndGrad`, whose backward
// kernels run in the reverse order of the forward ones. A pipeline call records every kernel
// into one command encoder on webgpu (one fused pass over one wasm memory on webasm) and reads
// back only its results: the outputs, or the loss and the gradients.

import type { Dim, Size } from '../ir/dims.js';
import { numelSize, size, sizeEq, sizeText, stridesSize, sumSizes, symbols } from '../ir/dims.js';
import type { Graph } from '../ir/graph.js';
import type { Plan, Unit } from '../ir/memplan.js';
import { isState, valueName } from '../ir/memplan.js';
import type { OpKind } from '../ir/ops.js';
import { inversePerm } from '../ir/ops.js';
import type { Inst, InstOf, Shape, ValueId } from '../ir/types.js';
import * as E from './expr.js';
import type { PositionWriter } from './gpu-conv.js';
import { convAt } from './gpu-conv.js';
import { factor } from './loops.js';
import type { Expr } from './expr.js';
import type { ModuleInfo, Typed } from './module.js';
import { checkDecl, checkFiniteDecl, gradEntries, header, initDecl, key, member, outputs, params, specDecl, typeDecls, typedAs, uniformConst, unitComment } from './module.js';
import { hasModes, initBuffersDecl, modesOf, optionsDecl, stateCode } from './modes.js';
import { indexAt } from './gpu-index.js';
import type { GpuBody } from './gpu-kernel.js';
import { GPU_SUM_BLOCK, gpuNative, kdim, renderStore, threadAxes, wrapSum } from './gpu-kernel.js';
import type { Access, Kernel } from './kernel/form.js';
import { lowerUnitOf } from './kernel/lower.js';
import { CompileError } from '../ir/errors.js';

export { GPU_SUM_BLOCK };
import { gpuAccumMethods, gpuHostCopy } from './gpu-accum.js';
import { gpuDeviceKernels, gpuDeviceStep, gpuTrainDecls, gpuTrainInterface, gpuTrainMethods, gpuTrainState, trainNames } from './gpu-train.js';

/**
 * destroy()'s release of the pipelines and kernels, now: gpu.destroy() releases them on the next
 * turn of the event loop and holds every kernel until then, so a loop of create() and destroy()
 * that never yields kept every instance alive (3 MB each for makemore). A WebGL context ('gpu'
 * mode) is left whole to gpu.destroy(), which releases it with its kernels on that turn.
 */
function releaseLines(t: (s: string) => string): string[] {
  const internals = t(' as unknown as { pipelines: { destroy(): unknown }[]; kernels: { destroy(removeCanvas?: boolean): void }[]; Kernel: { mode: string } }');
  return [
    `      const own = gpu${internals};`,
    '      for (const p of own.pipelines.slice()) void p.destroy();',
    "      if (own.Kernel.mode !== 'gpu') {",
    '        for (const k of own.kernels.slice()) k.destroy(true);',
    '        own.kernels.length = 0;',
    '      }',
  ];
}

// ---------------------------------------------------------------------------------------------
// A kernel: one value at the position of each thread

/**
 * The part of a unit one kernel computes, for its comment: the value and the group's locals. A
 * conv group's convolution is a kernel of its own, and its epilogue an elementwise kernel that
 * reads it.
 */
function gpuCommentUnit(plan: Plan, u: Unit, inst: Inst): Unit {
  const local = (x: Inst) => plan.storage.get(u.graph.value(x.result).name)?.kind === 'register';
  if (u.kind !== 'conv') return { ...u, insts: u.insts.filter((x) => x === inst || local(x)) };
  if (inst === u.insts[0]) return { ...u, kind: 'single', insts: [inst] };
  return { ...u, kind: 'elementwise', insts: u.insts.slice(1).filter((x) => x === inst || local(x)) };
}

/** Flat index of a position in a row-major shape. */
function flat(pos: readonly string[], shape: Shape): string {
  const st = stridesSize(shape);
  const terms = pos.flatMap((p, d) => (p === '0' || shape[d] === 1 ? [] : [sizeEq(st[d]!, 1) ? p : `${wrapSum(p)} * ${kdim(st[d]!)}`]));
  return terms.length ? terms.join(' + ') : '0';
}

class KernelWriter implements PositionWriter {
  readonly lines: string[] = [];
  /** The arrays the kernel reads, by value name, in order of first use. */
  readonly args: string[] = [];
  /** Values already computed at a position, one map per open scope (loop bodies nest). */
  private readonly memo: Map<string, Expr>[] = [new Map()];
  private n = 0;
  /** Whether the kernel computes a matrix product (then a 2-D dispatch pays on a GPU). */
  hasMatmul = false;
  /** Arrays this kernel reads transposed (`B` of A·Bᵀ), which a kernel of their own writes first. */
  readonly transposed: Transposed[] = [];

  constructor(
    readonly g: Graph,
    readonly plan: Plan,
    /** Values computed inside the kernel rather than read from an array. */
    readonly registers: ReadonlySet<ValueId>,
    /** The name of an array's transposed copy, when this kernel's products should read one. */
    readonly transposedName?: (of: string) => string,
    /** The array a view reads: a temporary's reshape is its source under the source's name. */
    readonly viewRoot: (name: string) => string = (n) => n,
  ) {}

  fresh(base: string): string {
    return `_${base}${this.n++}`;
  }

  private name(v: ValueId): string {
    return this.viewRoot(valueName(this.g, v));
  }

  /** Reads the array `name` at a flat index, registering it as an argument (the kernel form's loads). */
  read(name: string, index: string): Expr {
    if (!this.args.includes(name)) this.args.push(name);
    return E.atom(`${name}[${index}]`);
  }

  /** Reads an array at a flat index, registering it as an argument. */
  private array(v: ValueId, index: string): Expr {
    const s = this.plan.storage.get(this.name(v));
    const c = uniformConst(this.plan, this.name(v));
    if (c !== undefined) return E.num(c); // a scalar, or a constant of equal elements: its literal
    if (s?.kind === 'dim') return E.atom(kdim(s.name)); // the bound size, a constant of the kernel
    const name = this.name(v);
    if (!this.args.includes(name)) this.args.push(name);
    return E.atom(`${name}[${index}]`);
  }

  /**
   * `B` of A·Bᵀ read from a transposed copy, row by row as in A·B: where each thread walks a row
   * of B, neighbouring threads read K floats apart. Only for a 2-D array with K ≥ 64 (and a
   * large product: `transposedName` is given); else undefined and B is read as it is.
   */
  private transposedRead(B: ValueId): ((p: string, j: string) => string) | undefined {
    const [N, K] = this.g.type(B).shape;
    const s = this.plan.storage.get(this.name(B));
    if (!this.transposedName || this.registers.has(B) || uniformConst(this.plan, this.name(B)) !== undefined || s?.kind === 'dim') return undefined;
    if (this.g.type(B).shape.length !== 2 || typeof N !== 'number' || typeof K !== 'number' || K < MIN_TRANSPOSED_K) return undefined;
    const of = this.name(B);
    const name = this.transposedName(of);
    if (!this.transposed.some((t) => t.name === name)) this.transposed.push({ name, of, rows: K, cols: N });
    if (!this.args.includes(name)) this.args.push(name);
    return (p, j) => `${name}[${wrapSum(p)} * ${N} + ${j}]`;
  }

  private local(e: Expr): Expr {
    if (e.prec >= E.P.ATOM || E.literal(e) !== undefined) return e;
    const t = this.fresh('t');
    this.lines.push(`const ${t} = ${e.code};`);
    return E.atom(t);
  }

  /**
   * A loop accumulating into a fresh variable: `body(vars, acc)` gives the statements of one
   * iteration at the loop variables `vars`.
   */
  loop(init: string, counts: readonly (Dim | Size)[], body: (vars: string[], acc: string) => string[]): string {
    const acc = this.fresh('acc');
    const vars = counts.map(() => this.fresh('r'));
    this.lines.push(`let ${acc} = ${init};`);
    // a sum over more than 256 terms (or a symbolic number) adds into a block sum, which is added
    // into the total every GPU_SUM_BLOCK terms: on a device (f32) each sum runs over GPU_SUM_BLOCK
    // or terms / GPU_SUM_BLOCK additions rather than terms (gpu.js's webasm mode: a ResNet block's
    // batch-norm sums over 6,144 rows were off by 5e-4 relative)
    const terms = counts.reduce<number>((a, c) => a * (typeof c === 'number' ? c : typeof c === 'object' && c.syms.length === 0 ? c.coef : Infinity), 1);
    const blocked = init === '0' && terms > 256;
    // named after the total (not fresh names, so that adding them renames no temporary)
    const [block, count] = blocked ? [`${acc}_block`, `${acc}_count`] : [acc, ''];
    if (blocked) this.lines.push(`let ${block} = 0;`, `let ${count} = 0;`);
    counts.forEach((c, k) => this.lines.push(`for (let ${vars[k]} = 0; ${vars[k]} < ${kdim(c)}; ${vars[k]}++) {`));
    const inner = body(vars, block);
    this.lines.push(...inner);
    if (blocked) this.lines.push(`${count}++;`, `if (${count} === ${GPU_SUM_BLOCK}) {`, `${acc} += ${block};`, `${block} = 0;`, `${count} = 0;`, '}');
    counts.forEach(() => this.lines.push('}'));
    if (blocked) this.lines.push(`${acc} += ${block};`);
    return acc;
  }

  /**
   * Statements emitted by `f` in a scope of their own (a loop body): they are returned rather
   * than appended, and what they computed is not visible after it.
   */
  capture(f: () => string): { lines: string[]; value: string } {
    const before = this.lines.length;
    this.memo.push(new Map());
    const value = f();
    this.memo.pop();
    const lines = this.lines.splice(before);
    return { lines, value };
  }

  /** The value v at position `pos` (one index expression per axis). */
  at(v: ValueId, pos: readonly string[]): Expr {
    const shape = this.g.type(v).shape;
    if (!this.registers.has(v)) return this.array(v, flat(pos, shape));
    const key = `${v.index}@${pos.join(',')}`;
    for (const scope of this.memo) {
      const hit = scope.get(key);
      if (hit) return hit;
    }
    const out = this.local(this.compute(this.g.def(v), pos));
    this.memo[this.memo.length - 1]!.set(key, out);
    return out;
  }

  private compute(inst: Inst, pos: readonly string[]): Expr {
    const g = this.g;
    const out = g.type(inst.result).shape;
    switch (inst.op) {
      case 'matmul': {
        this.hasMatmul = true;
        const [A, B] = inst.args as [ValueId, ValueId];
        const { transA, transB } = inst.attrs;
        const ta = g.type(A).shape;
        const tb = g.type(B).shape;
        const K = transA ? ta.at(-2)! : ta.at(-1)!;
        const batch = pos.slice(0, -2);
        const [i, j] = [pos[pos.length - 2]!, pos[pos.length - 1]!];
        const bT = transB ? this.transposedRead(B) : undefined;
        return E.atom(
          this.loop('0', [K], ([p], acc) => {
            const aPos = [...batch.slice(batch.length - (ta.length - 2)), ...(transA ? [p!, i] : [i, p!])];
            const bPos = [...batch.slice(batch.length - (tb.length - 2)), ...(transB ? [j, p!] : [p!, j])];
            const a = this.capture(() => this.at(A, aPos).code);
            const b = bT ? { lines: [], value: bT(p!, j) } : this.capture(() => this.at(B, bPos).code);
            return [...a.lines, ...b.lines, `${acc} += ${a.value} * ${b.value};`];
          }),
        );
      }
      case 'gather': {
        const [table, idx] = inst.args as [ValueId, ValueId];
        const ir = g.type(idx).shape.length;
        const row = numelSize(g.type(table).shape.slice(1));
        const r = this.at(idx, pos.slice(0, ir));
        const rest = flat(pos.slice(ir), g.type(table).shape.slice(1));
        return this.array(table, sizeEq(row, 1) ? r.code : `${E.wrap(r, E.P.MUL)} * ${kdim(row)}${rest === '0' ? '' : ` + ${rest}`}`);
      }
      case 'scatter_add': {
        const [idx, src] = inst.args as [ValueId, ValueId];
        const n = numelSize(g.type(idx).shape);
        const row = kdim(numelSize(out.slice(1)));
        const rest = flat(pos.slice(1), out.slice(1));
        const idxs = this.name(idx);
        this.array(idx, '0');
        const srcAt = (q: string) => this.array(src, `${q} * ${row}${rest === '0' ? '' : ` + ${rest}`}`).code;
        return E.atom(this.loop('0', [n], ([q], acc) => [`if (${idxs}[${q}] === ${pos[0]}) ${acc} += ${srcAt(q!)};`]));
      }
      case 'pick': {
        const [x, idx] = inst.args as [ValueId, ValueId];
        const c = this.at(idx, [pos[0]!]);
        return this.at(x, [pos[0]!, c.code]);
      }
      case 'softmax':
      case 'log_softmax':
        return this.softmax(inst.args[0]!, inst.attrs.axis, pos, inst.op === 'log_softmax');
      case 'xent': {
        const [x, t] = inst.args as [ValueId, ValueId];
        const [n, c] = g.type(x).shape as [Dim, number];
        const total = this.loop('0', [n], ([i], acc) => {
          const body = this.capture(() => {
            const lse = this.local(this.logSumExp(x, 1, [i!, '0']));
            const target = this.at(x, [i!, this.at(t, [i!]).code]);
            return `${acc} += ${target.code} - ${lse.code};`;
          });
          return [...body.lines, body.value];
        });
        void c;
        return E.atom(`-${total} / ${factor(kdim(n))}`);
      }
      case 'conv':
      case 'conv_input_grad':
      case 'conv_weight_grad':
      case 'max_pool':
      case 'max_pool_grad':
      case 'max_pool_pick':
      case 'avg_pool':
      case 'avg_pool_grad':
        return convAt(this, inst, pos);
      case 'argmax_mask': {
        const x = inst.args[0]!;
        const xs = g.type(x).shape;
        const axes = inst.attrs.axes;
        const best = this.fresh('best');
        const at = this.fresh('at');
        const vars = axes.map(() => this.fresh('r'));
        this.lines.push(`let ${best} = -Infinity;`, `let ${at} = -1;`);
        axes.forEach((a, k) => this.lines.push(`for (let ${vars[k]} = 0; ${vars[k]} < ${kdim(xs[a]!)}; ${vars[k]}++) {`));
        let r = 0;
        const full = xs.map((_d, d) => (axes.includes(d) ? vars[r++]! : pos[d]!));
        const val = this.capture(() => this.at(x, full).code);
        const offset = flat(full, xs);
        this.lines.push(...val.lines, `if (${at} < 0 || ${val.value} > ${best}) {`, `${best} = ${val.value};`, `${at} = ${offset};`, '}');
        axes.forEach(() => this.lines.push('}'));
        return E.cond(E.rel('===')(E.atom(at), E.atom(`(${flat(pos, xs)})`)), E.num(1), E.num(0));
      }
      // the index primitives (ir/indexops.ts)
      case 'argmax':
      case 'argmin':
      case 'cumsum':
        return indexAt(this, inst, pos);
      default:
        // elementwise ops, reductions and copies are rendered from the kernel form (gpu-kernel.ts)
        throw new CompileError(`internal: the GPU.js target computes ${inst.op} only in the kernel form, not inside a routine's kernel`);
    }
  }

  /** log Σ exp(x) along `axis` at the position `pos` (whose `axis` entry is ignored). */
  private logSumExp(x: ValueId, axis: number, pos: readonly string[]): Expr {
    const len = this.g.type(x).shape[axis]!;
    const along = (k: string) => pos.map((p, d) => (d === axis ? k : p));
    const m = this.loop('-Infinity', [len], ([k], acc) => {
      const v = this.capture(() => this.at(x, along(k!)).code);
      return [...v.lines, `if (${v.value} > ${acc}) ${acc} = ${v.value};`];
    });
    const s = this.loop('0', [len], ([k], acc) => {
      const v = this.capture(() => this.at(x, along(k!)).code);
      return [...v.lines, `${acc} += Math.exp(${v.value} - ${m});`];
    });
    return E.atom(`(${m} + Math.log(${s}))`);
  }

  private softmax(x: ValueId, axis: number, pos: readonly string[], log: boolean): Expr {
    const lse = this.local(this.logSumExp(x, axis, pos));
    const v = this.at(x, pos);
    return log ? E.sub(v, lse) : E.call('Math.exp', E.sub(v, lse));
  }
}

/**
 * A large matrix product's kernel runs as rows × `width` threads in webgpu mode (8×8 workgroups:
 * each reads 8 rows of A and 8 columns of B where a 1-D one reads 1 and 64). Measured on an H200
 * (bench/pack-device.sh) with every product 2-D: the makemore XL step went from 53.2 to 37.1 ms,
 * but L's (products of at most 262k outputs) from 1.68 to 2.41 ms; so only products of at least
 * 2^20 outputs run 2-D (XL: 35.8 ms, L unchanged).
 * The thread's flat index stays row-major: the kernels that read the output index it as before,
 * and gpu.js's other modes keep a 1-D output.
 */
const MIN_2D_WIDTH = 8;
const MIN_2D_OUTPUTS = 1 << 20;

/**
 * In such a product A·Bᵀ with K ≥ 64, B is transposed by a kernel of its own first, and the
 * product reads the copy as A·B would. On an H200 (bench/gpu-matmul.mjs) a 4096×4096×384 A·Bᵀ
 * (makemore XL's dembcat) took 26.1 ms 1-D and 9.5 ms 2-D, where A·B of the same size took 4.9.
 */
const MIN_TRANSPOSED_K = 64;

/** An array `of` [cols, rows] that a kernel reads as its transpose `name` [rows, cols]. */
interface Transposed {
  readonly name: string;
  readonly of: string;
  readonly rows: number;
  readonly cols: number;
}

/** A gpu.js kernel: its source, the arrays it reads, its row width if 2-D, the transposed copies it reads. */
interface GpuKernel {
  readonly args: string[];
  readonly body: string[];
  readonly size: Size;
  readonly width?: number;
  readonly transposed: Transposed[];
}

/**
 * The kernel of a value of `shape` whose thread computes `value` at its position (`own`: the
 * value a routine's kernel computes, not read from its array); `transposedName` names the
 * transposed copies a large product reads.
 */
function kernelOf(g: Graph, plan: Plan, u: Unit, shape: Shape, own: ValueId | undefined, value: (w: KernelWriter, pos: string[]) => Expr, transposedName: (of: string) => string, viewRoot?: (name: string) => string): GpuKernel {
  const registers = new Set(u.insts.filter((i) => plan.storage.get(g.value(i.result).name)?.kind === 'register').map((i) => i.result));
  if (own) registers.add(own); // computed here, not read
  const n = numelSize(shape);
  const w = new KernelWriter(g, plan, registers, n.syms.length === 0 && n.coef >= MIN_2D_OUTPUTS ? transposedName : undefined, viewRoot);
  const pos: string[] = [];
  const head: string[] = ['const _x = this.thread.x;'];
  // the position of this thread, from its flat index
  let rest = '_x';
  shape.forEach((d, k) => {
    const inner = numelSize(shape.slice(k + 1));
    if (d === 1) pos.push('0');
    else if (sizeEq(inner, 1)) pos.push(rest);
    else {
      const v = `_i${k}`;
      head.push(`const ${v} = Math.floor(${rest} / ${factor(kdim(inner))});`);
      if (shape.slice(k + 1).some((x) => x !== 1)) {
        head.push(`const _rest${k} = ${rest} - ${v} * ${kdim(inner)};`);
        rest = `_rest${k}`;
      }
      pos.push(v);
    }
  });
  const v = value(w, pos);
  const last = shape.at(-1);
  const large = n.syms.length > 0 || n.coef >= MIN_2D_OUTPUTS; // a symbolic size is checked when bound
  const width = w.hasMatmul && large && shape.length >= 2 && typeof last === 'number' && last >= MIN_2D_WIDTH ? last : undefined;
  if (width !== undefined) head[0] = `const _x = this.thread.x + this.thread.y * ${width};`;
  return { args: w.args, body: [...head, ...w.lines, `return ${v.code};`], size: n, width, transposed: w.transposed };
}

/**
 * The kernels of a unit, one per value it stores, in order: a routine's result computed by its
 * own code (gpu-conv.ts, gpu-index.ts, KernelWriter), the values of a fused group, a copy or a
 * routine's epilogue rendered from the kernel form (gpu-kernel.ts), the routine's result computed
 * in place where the epilogue reads it and no array holds it.
 */
function unitKernels(g: Graph, plan: Plan, u: Unit, transposedName: (of: string) => string, viewRoot: (name: string) => string): { inst: Inst; k: GpuKernel }[] {
  const stored = (name: string) => plan.storage.get(name)?.kind === 'buffer';
  const lowered = lowerUnitOf(plan, u);
  const launch = lowered.launch;
  if (!launch) return [];
  const first = u.insts[0]!;
  const out: { inst: Inst; k: GpuKernel }[] = [];
  if (launch.kind === 'routine' && stored(valueName(g, first.result))) {
    out.push({ inst: first, k: kernelOf(g, plan, u, g.type(first.result).shape, first.result, (w, pos) => w.at(first.result, pos), transposedName, viewRoot) });
  }
  const form = launch.kind === 'kernel' ? launch : launch.epilogue;
  if (!form) return out;
  const { k, map } = gpuNative(form);
  const views = new Map([...lowered.views].map(([i, n]) => [map[i]!, n] as const));
  const inPlace = launch.kind === 'routine' && plan.storage.get(valueName(g, first.result))?.kind === 'register' ? launch.output.arg : undefined;
  const byName = new Map(u.insts.map((i) => [valueName(g, i.result), i] as const));
  k.stores.forEach((st, s) => {
    if (!stored(st.access.arg)) return;
    const inst = byName.get(st.access.arg);
    if (!inst) throw new CompileError(`internal: the GPU.js module found no instruction storing ${st.access.arg}`);
    const shape = threadAxes(k, s).map((d) => k.domain[d]!);
    const value = (w: KernelWriter, pos: string[]) => {
      const names = {
        array: (i: number, a: Access) => viewRoot(views.get(i) ?? a.arg),
        loaded: (a: Access, coords: readonly string[]) => (a.arg === inPlace ? w.at(first.result, coords) : undefined),
      };
      return renderStore(k, s, pos, names, w, viewRoot);
    };
    out.push({ inst, k: kernelOf(g, plan, u, shape, undefined, value, transposedName, viewRoot) });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// The module

/** Identifiers for the module's own helpers that no value name can shadow. */
function codeNames(m: ModuleInfo): (base: string) => string {
  const taken = new Set<string>(['gpu', 'mode', 'options', 'kernel', ...symbols(m.fwd)]);
  for (const g of [m.fwd, m.bwd]) for (const inst of g.insts) taken.add(g.value(inst.result).name);
  return (base) => {
    let n = base;
    for (let k = 1; taken.has(n); k++) n = `${base}_${k}`;
    taken.add(n);
    return n;
  };
}

/** One kernel call of a pipeline: `const name = kernel(...args);`. */
interface Step {
  readonly name: string;
  readonly kernel: string;
  readonly args: string[];
}

/** The GPU.js module (unformatted TypeScript, or with `typed` false plain JavaScript). */
export function emitGpu(m: ModuleInfo, typed = true): string {
  const t = typedAs(typed);
  const plan = m.plan;
  // symbolic dimensions are constants of the kernels, which are compiled for each set of sizes
  const syms = symbols(m.fwd);
  const thisType = syms.length ? 'this: IKernelFunctionThis<Sizes>' : 'this: IKernelFunctionThis';
  const codeName = codeNames(m);
  const training = trainNames(m, codeName);
  const kernels: string[] = [];
  /** Values whose kernels run 2-D in webgpu mode (read back through a 1-D copy: see `result`). */
  const twoD = new Set<string>();
  const transposedNames = new Map<string, string>();
  const transposedName = (of: string) => transposedNames.get(of) ?? (transposedNames.set(of, codeName(`${of}_T`)), transposedNames.get(of)!);
  const transposers = new Map<string, Step>();
  /** The kernel writing the transposed copy `t` (once per module), and its call. */
  const transposer = (tr: Transposed, user: string): Step => {
    const known = transposers.get(tr.name);
    if (known) return known;
    const kernel = codeName(`kernel_${tr.name}`);
    kernels.push(
      '',
      `// ${tr.name} = ${tr.of}ᵀ, so that ${user}'s product reads it as A·B reads B: neighbouring threads read`,
      `// neighbouring floats (in A·Bᵀ they would read ${tr.rows} floats apart)`,
      `const ${kernel} = kernel(function (${[t(thisType), `${tr.of}${t(': Float32Array')}`].filter(Boolean).join(', ')})${t(': number')} {`,
      'const _x = this.thread.x;',
      `const _i0 = Math.floor(_x / ${tr.cols});`,
      `const _rest0 = _x - _i0 * ${tr.cols};`,
      `return ${tr.of}[_rest0 * ${tr.rows} + _i0];`,
      `}, ${tr.rows * tr.cols});`,
    );
    const step = { name: tr.name, kernel, args: [tr.of] };
    transposers.set(tr.name, step);
    return step;
  };
  // a reshape (or stopGradient) of a value is the same handle: one whose result is a temporary
  // is no variable of its own, its readers read the source under the source's name (a pipeline
  // says `// t13, t14: views of t12`), where `const t13 = t12;` would copy a temporary's name
  const temps = new Set<string>();
  for (const g of [m.fwd, m.bwd]) for (const inst of g.insts) if (inst.op !== 'fwd' && g.value(inst.result).temp) temps.add(g.value(inst.result).name);
  const viewRoot = (name: string): string => {
    const s = plan.storage.get(name);
    return s?.kind === 'alias' && temps.has(name) ? viewRoot(s.of) : name;
  };
  const steps = (units: readonly Unit[]): Step[] =>
    units.flatMap((u) =>
      unitKernels(u.graph, plan, u, transposedName, viewRoot).flatMap(({ inst, k }) => {
          const name = valueName(u.graph, inst.result);
          const before = k.transposed.map((tr) => transposer(tr, name));
          const kernel = codeName(`kernel_${name}`);
          if (k.width !== undefined) twoD.add(name);
          const argTypes = k.args.map((a) => `${a}${t(': Float32Array')}`);
          kernels.push(
            '',
            ...unitComment(m, gpuCommentUnit(plan, u, inst), plan),
            `const ${kernel} = kernel(function (${[t(thisType), ...argTypes].filter(Boolean).join(', ')})${t(': number')} {`,
            ...k.body,
            `}, ${sizeText(k.size)}${k.width === undefined ? '' : `, ${k.width}`});`,
          );
          return [...before, { name, kernel, args: k.args }];
        }),
    );
  const fwdSteps = steps(plan.units.forward);
  const bwdSteps = steps(plan.units.backward);

  // pipeline arguments: params, inputs and constant arrays, by value name
  const pinfo = params(m.fwd).map((p) => ({ kind: 'params' as const, key: p.name, name: stagedName(m, 'param', p.name), n: sizeText(numelSize(p.shape)) }));
  const iinfo = m.fwd.insts.flatMap((i) => (i.op === 'input' ? [{ kind: 'inputs' as const, key: i.attrs.name, name: m.fwd.value(i.result).name, n: sizeText(numelSize(m.fwd.type(i.result).shape)) }] : []));
  // constants of equal elements are literals in the kernels: only the others are arrays
  const consts = [...plan.storage].flatMap(([name, s]) => (s.kind === 'const' && uniformConst(plan, name) === undefined ? [{ name, data: s.data }] : []));
  // the module's own state: the mode flag and dropout masks are filled on the host and uploaded,
  // buffers are passed as they are; the next running statistics come back as results
  const modes = modesOf(m.fwd);
  const sinfo = m.fwd.insts.flatMap((i) => (isState(i) ? [{ op: i.op, name: m.fwd.value(i.result).name, n: sizeText(numelSize(m.fwd.type(i.result).shape)) }] : []));
  const hostOf = new Map(sinfo.filter((x) => x.op !== 'buffer').map((x) => [x.name, codeName(`${x.name}_host`)]));
  const argNames = [...pinfo.map((p) => p.name), ...iinfo.map((p) => p.name), ...sinfo.map((x) => x.name), ...consts.map((c) => c.name)];

  // aliases (reshape, stopGradient) are the same handle under another name, declared as soon
  // as what they view exists (at the top for views of params and inputs)
  const aliasesOf = new Map<string, string[]>();
  for (const g of [m.fwd, m.bwd])
    for (const inst of g.insts) {
      const s = plan.storage.get(g.value(inst.result).name);
      if (s?.kind === 'alias' && inst.op !== 'fwd') aliasesOf.set(s.of, [...(aliasesOf.get(s.of) ?? []), g.value(inst.result).name]);
    }
  const views = (root: string, needed: Set<string>): string[] =>
    (aliasesOf.get(root) ?? []).flatMap((a) => {
      if (temps.has(a)) {
        // a temporary's view: no variable; say what it is where it would have been declared
        const inner = views(a, needed);
        return [`// ${a}: a view of ${viewRoot(a)} as ${shapeOfName(a)} (the same array)`, ...inner];
      }
      return needed.has(a) || (aliasesOf.get(a) ?? []).length ? [`const ${a} = ${viewRoot(root)}; // a view of ${viewRoot(root)} as ${shapeOfName(a)} (the same array)`, ...views(a, needed)] : [];
    });
  const shapeOfName = (name: string) => {
    const v = m.fwd.byName(name) ?? m.bwd.byName(name);
    return v ? `${v.type.dtype}[${v.type.shape.join(',')}]` : name;
  };
  /**
   * The calls of a pipeline, with the views its kernels and its results (`reads`) need; a
   * transposed copy is made once, before its first reader.
   */
  const plan_ = (list: Step[], reads: readonly string[], awaited = false) => {
    const once = list.filter((s, k) => list.findIndex((x) => x.name === s.name) === k);
    const needed = new Set([...once.flatMap((s) => s.args), ...reads]);
    return [...argNames.flatMap((a) => views(a, needed)), ...once.flatMap((s) => [...call(s, awaited), ...views(s.name, needed)])];
  };
  // outside a pipeline (trainStep on a device) a kernel call is awaited: webgpu's give promises
  const call = (s: Step, awaited = false) => [`const ${s.name} = ${awaited ? 'await ' : ''}${s.kernel}(${s.args.join(', ')});`];

  // results: outputs of the forward plan; loss then every gradient of the backward plan. A result
  // that no kernel computes (a param, a constant, a value shared by two gradients) gets a copy, and
  // so does one a 2-D kernel computes (gpu.js would read it back as rows)
  const copies: string[] = [];
  const result = (g: Graph, v: ValueId, seen: Set<string>): string => {
    const name = viewRoot(valueName(g, v));
    const c = uniformConst(plan, name);
    const s = c === undefined ? plan.storage.get(name) : ({ kind: 'literal', value: c } as const);
    if (s?.kind === 'buffer' && !seen.has(name) && g.def(v).op !== 'fwd' && !twoD.has(name)) {
      seen.add(name);
      return name;
    }
    const copy = codeName(`copy_${name}`);
    const n = sizeText(numelSize(g.type(v).shape));
    copies.push(
      '',
      `const ${copy} = kernel(function (${[t(thisType), s?.kind === 'literal' ? '' : `src${t(': Float32Array')}`].filter(Boolean).join(', ')})${t(': number')} {`,
      s?.kind === 'literal' ? `return ${E.num(s.value).code};` : 'return src[this.thread.x];',
      `}, ${n});`,
    );
    return `${copy}(${s?.kind === 'literal' ? '' : name})`;
  };
  const fwdSeen = new Set<string>();
  const fwdResults = m.fwd.outputs.map((o) => `${key(o.name)}: ${result(m.fwd, o.value, fwdSeen)}`);
  const gradSeen = new Set<string>();
  // a forward-only model (no loss) has the forward pipeline and no gradient pipeline
  const lossOut = m.fwd.outputs.find((o) => o.name === 'loss');
  const withGrad = <T>(lines: readonly T[]): T[] => (lossOut ? [...lines] : []);
  const lossName = lossOut ? valueName(m.fwd, lossOut.value) : '';
  const gradResults = lossOut ? [lossName, ...m.bwd.outputs.map((o) => result(m.bwd, o.value, gradSeen))] : [];
  const nextOf = (b: (typeof modes.buffers)[number]) => m.fwd.outputs.find((o) => o.name === b.name)!.value;
  if (lossOut) gradResults.push(...modes.buffers.map((b) => result(m.fwd, nextOf(b), gradSeen)));
  const outs = outputs(m.fwd);

  const constData = new Map(consts.map((c) => [c.name, codeName(`${c.name}_data`)]));
  // i32 inputs are staged as f32 arrays (gpu.js kernels read floats)
  const staging = new Map(iinfo.filter((i) => m.fwd.byName(i.name)?.type.dtype === 'i32').map((i) => [i.name, codeName(`${i.name}_f32`)]));
  const stagingDecls = iinfo.filter((i) => staging.has(i.name)).map((i) => `const ${staging.get(i.name)} = new Float32Array(${i.n});`);
  const argExprs = [
    ...pinfo.map((p) => member('params', p.key)),
    ...iinfo.map((i) => staging.get(i.name) ?? member('inputs', i.key)),
    ...sinfo.map((x) => hostOf.get(x.name) ?? member(`options.buffers${t('!')}`, modes.buffers.find((b) => b.value === x.name)!.name)),
    ...consts.map((c) => constData.get(c.name)!),
  ];
  const stage = [
    ...iinfo.filter((i) => staging.has(i.name)).map((i) => `${staging.get(i.name)}.set(${member('inputs', i.key)});`),
    ...stateCode(m, t, (v) => hostOf.get(v)!, 'options', 'callState', false).set,
  ];
  stagingDecls.push(...sinfo.filter((x) => hostOf.has(x.name)).map((x) => `const ${hostOf.get(x.name)} = new Float32Array(${x.n});`));

  // trainStep keeps params and optimizer state on the device where gpu.js keeps handles (a
  // model with symbolic dimensions runs its update on the host: its kernels are built per size)
  const device = m.optimizer !== undefined && syms.length === 0;
  const setup = [
    "  const mode = options.mode ?? 'gpu';",
    '  const GPU = await loadGPU();',
    "  if (mode === 'webgpu') await setupWebGPU(GPU);",
    '  const gpu = new GPU({ mode });',
    ...(device
      ? [
          "  // gpu.js's cpu and webasm modes give arrays, not device handles: there trainStep's update runs on the host",
          `  const resident = !['cpu', 'webasm'].includes((gpu${t(' as unknown as { Kernel: { mode: string } }')}).Kernel.mode);`,
        ]
      : []),
  ];
  const pipelines = [
    ...consts.map((c) => `const ${constData.get(c.name)} = Float32Array.from([${c.data.map((x) => E.num(x).code).join(', ')}]);`),
    ...kernels,
    ...copies,
    '',
    '  // the forward steps',
    `  const forwardPlan = gpu.createPipeline(function (${argNames.map((a) => `${a}${t(': IPipelineHandle')}`).join(', ')}) {`,
    ...plan_(fwdSteps, m.fwd.outputs.map((o) => valueName(m.fwd, o.value))),
    `    return { ${fwdResults.join(', ')} };`,
    '  });',
    ...withGrad([
      '',
      '  // the forward steps, then the backward steps in reverse order',
      `  const gradPlan = gpu.createPipeline(function (${argNames.map((a) => `${a}${t(': IPipelineHandle')}`).join(', ')}) {`,
      ...plan_([...fwdSteps, ...bwdSteps], [lossName, ...m.bwd.outputs.map((o) => valueName(m.bwd, o.value)), ...modes.buffers.map((b) => b.next)]),
      `    return [${gradResults.join(', ')}];`,
      '  });',
    ]),
    '',
    ...stagingDecls,
  ];
  // --check-finite: the values between kernels stay on the device, so the arguments are checked
  // as they come in and the results as they come back
  const finiteWhere = (verb: string) =>
    JSON.stringify(`returned by ${verb} (the GPU.js module checks its arguments and results, not each step: the flat module built with --check-finite names the first value)`);
  const finiteArgs = m.checkFinite
    ? [...pinfo, ...iinfo]
        .filter((a) => a.kind === 'params' || !staging.has(a.name))
        .map((a) => `    checkFinite(${JSON.stringify(`${a.kind === 'params' ? 'param' : 'input'} '${a.key}'`)}, ${member(a.kind, a.key)}, 'passed in');`)
    : [];
  const finiteOutputs = m.checkFinite
    ? outs.filter((o) => o.dtype === 'f32').map((o) => `      checkFinite(${JSON.stringify(`output '${o.name}'`)}, ${member('r', o.name)}${t('!')}, ${finiteWhere('forward')});`)
    : [];
  const finiteGrads = m.checkFinite
    ? [`      checkFinite('loss', r[0]${t('!')}, ${finiteWhere('valueAndGrad')});`, ...gradEntries(m).map((p, k) => `      checkFinite(${JSON.stringify(`gradient of '${p.name}'`)}, r[${k + 1}]${t('!')}, ${finiteWhere('valueAndGrad')});`)]
    : [];
  /** forward and valueAndGrad; `plans`: where a call gets its pipelines (else the ones in scope). */
  const stateful = hasModes(m.fwd);
  const optionsParam = stateful ? `options${t(': Options')} = noOptions` : `options${t('?: Options')}`;
  const checkOptionsCall = (train: boolean) => (stateful ? [`      checkOptions(options, ${train}, false);`, '      const train = callState.train;'] : []);
  /** After a training call: the next running statistics into the caller's buffers. */
  const saveBuffers = (from: (b: (typeof modes.buffers)[number], k: number) => string) =>
    modes.buffers.length ? ['      if (train) {', ...modes.buffers.map((b, k) => `        ${member(`options.buffers${t('!')}`, b.name)}.set(${from(b, k)});`), '      }'] : [];
  /** valueAndGrad's work, with `options` in scope: the gradient pipeline's results in `r`. */
  const gradBody = (plans?: string) => [
    ...checkOptionsCall(true),
    ...(plans ? [`      const { gradPlan, args } = ${plans};`] : []),
    `      const r = (await gradPlan(...args(params, inputs, options)))${t(' as Float32Array[]')};`,
    ...saveBuffers((_b, k) => `r[${gradEntries(m).length + 1 + k}]${t('!')}`),
  ];
  const methods = (plans?: string) => [
    `    async forward(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': Promise<Outputs>')} {`,
    ...checkOptionsCall(false),
    ...(plans ? [`      const { forwardPlan, args } = ${plans};`] : []),
    `      const r = (await forwardPlan(...args(params, inputs, options)))${t(' as Record<string, Float32Array>')};`,
    ...finiteOutputs,
    ...saveBuffers((b) => `${member('r', b.name)}${t('!')}`),
    // an i32 output (argmax's indices) comes back from the device as floats
    `      return { ${outs.map((o) => `${key(o.name)}: ${o.shape.length === 0 ? `${member('r', o.name)}[0]${t('!')}` : o.dtype === 'i32' ? `Int32Array.from(${member('r', o.name)}${t('!')})` : member('r', o.name)}`).join(', ')} };`,
    '    },',
    ...withGrad([
      `    async valueAndGrad(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': Promise<{ loss: number; grads: Grads }>')} {`,
      ...gradBody(plans),
      ...finiteGrads,
      `      return { loss: r[0]${t('!')}[0]${t('!')}, grads: { ${gradEntries(m)
        .map((p, k) => `${key(p.name)}: r[${k + 1}]${t('!')}`)
        .join(', ')} } };`,
      '    },',
    ]),
    ...gpuTrainMethods(m, t, training, gradBody(plans), device),
    ...gpuAccumMethods(m, t, training?.accum, gradBody(plans), device),
    '    destroy() {',
    ...(device ? ['      freeDevice();'] : []),
    ...releaseLines(t),
    '      void gpu.destroy();',
    '    },',
  ];
  const kernelHelper = (constants: string) =>
    twoD.size === 0
      ? [
          '  // kernels are only called inside the pipelines, where they take and give handles',
          `  const kernel = (fn${t(`: (${thisType}, ...args: Float32Array[]) => number`)}, n${t(': number')}) =>`,
          `    gpu.createKernel(fn, { output: [n], ${constants}precision: 'single', tactic: 'precision'${device ? ', pipeline: resident, immutable: false' : ''} })${t(' as unknown as (...args: IPipelineHandle[]) => IPipelineHandle')};`,
        ]
      : [
          '  // kernels are only called inside the pipelines, where they take and give handles; a large',
          "  // matrix product's runs as n / width rows of `width` threads on a GPU (its flat index stays row-major)",
          `  const kernel = (fn${t(`: (${thisType}, ...args: Float32Array[]) => number`)}, n${t(': number')}, width${t('?: number')}) =>`,
          '    gpu.createKernel(fn, {',
          `      output: width && mode === 'webgpu' && n >= ${MIN_2D_OUTPUTS} ? [width, n / width] : [n],`,
          `      ${constants}precision: 'single',`,
          "      tactic: 'precision',",
          ...(device ? ['      pipeline: resident,', '      immutable: false,'] : []),
          `    })${t(' as unknown as (...args: IPipelineHandle[]) => IPipelineHandle')};`,
        ];
  /** trainStep on a device: the gradient kernels called one by one, the update kernels, the step. */
  const deviceLines = (): string[] => {
    if (!device) return [];
    const gradSteps = codeName('gradSteps');
    const kinds = [...pinfo.map((p) => ({ kind: 'param' as const, n: p.n })), ...iinfo.map((i) => ({ kind: 'step' as const, n: i.n })), ...sinfo.map((x) => ({ kind: 'step' as const, n: x.n })), ...consts.map((c) => ({ kind: 'const' as const, n: String(c.data.length) }))];
    const dk = gpuDeviceKernels(m, t, thisType, codeName, kinds.map((k) => k.n), training!.steps);
    return [
      '',
      "  // trainStep's forward and backward steps on a device, the kernels called one by one on handles:",
      '  // the loss, the gradients and the next running statistics stay on the device',
      `  const ${gradSteps} = async (${argNames.map((a) => `${a}${t(': IPipelineHandle')}`).join(', ')}) => {`,
      ...plan_([...fwdSteps, ...bwdSteps], [lossName, ...m.bwd.outputs.map((o) => valueName(m.bwd, o.value)), ...modes.buffers.map((b) => b.next)], true),
      `    return [${gradResults.map((r) => (r.includes('(') ? `await ${r}` : r)).join(', ')}];`,
      '  };',
      ...dk.lines,
      ...gpuDeviceStep(m, t, { args: kinds, gradSteps }, dk.names),
      ...gpuHostCopy(m, t),
    ];
  };
  const staticCreate = () => [
    '/**',
    ` * Compiles every kernel and ${lossOut ? 'both pipelines (running each' : 'the forward pipeline (running it'} once on zeros), on the backend`,
    " * `options.mode` asks for: 'gpu' (the best available), 'cpu', 'webasm' or 'webgpu'.",
    ' */',
    `export async function create(options${t(': { mode?: Mode }')} = {})${t(': Promise<Model>')} {`,
    ...setup,
    ...kernelHelper(''),
    ...pipelines,
    `  const args = (params${t(': Params')}, inputs${t(': Inputs')}, options${t(stateful ? ': Options' : '?: Options')}) => {`,
    '    checkArgs(params, inputs);',
    ...finiteArgs,
    ...stage,
    `    return [${argExprs.join(', ')}];`,
    '  };',
    `  const zeros${t(': Params')} = initParams(0);`,
    `  for (const k of Object.keys(zeros)) zeros[k${t(' as keyof Params')}].fill(0);`,
    `  const zeroInputs = { ${iinfo.map((i) => `${key(i.key)}: new ${m.fwd.byName(i.name)?.type.dtype === 'i32' ? 'Int32Array' : 'Float32Array'}(${i.n})`).join(', ')} }${t(' as Inputs')};`,
    ...(stateful ? [`  const warm${t(': Options')} = { ${modes.buffers.length ? 'buffers: initBuffers()' : ''} };`] : []),
    ...withGrad([`  await gradPlan(...args(zeros, zeroInputs${stateful ? ', warm' : ''}));`]),
    `  await forwardPlan(...args(zeros, zeroInputs${stateful ? ', warm' : ''}));`,
    ...gpuTrainState(m, t),
    ...deviceLines(),
    '  return {',
    `    mode: ${lossOut ? 'gradPlan' : 'forwardPlan'}.backend ?? mode,`,
    ...methods(),
    '  };',
    '}',
  ];
  const symbolicCreate = () => [
    '/**',
    " * Sets the backend up that `options.mode` asks for: 'gpu' (the best available), 'cpu', 'webasm'",
    " * or 'webgpu'. The kernels take the sizes of the symbolic dimensions as constants: a call compiles",
    ` * them and ${lossOut ? 'both pipelines' : 'the forward pipeline'} for its sizes the first time it brings them, and reuses them after.`,
    ' */',
    `export async function create(options${t(': { mode?: Mode }')} = {})${t(': Promise<Model>')} {`,
    ...setup,
    '  /** The kernels and pipelines for one set of sizes. */',
    `  const build = (${syms.map((d) => `${d}${t(': number')}`).join(', ')}) => {`,
    ...kernelHelper(`constants: { ${syms.join(', ')} }, `),
    ...pipelines,
    `  const args = (params${t(': Params')}, inputs${t(': Inputs')}, options${t(stateful ? ': Options' : '?: Options')}) => {`,
    ...stage,
    `    return [${argExprs.join(', ')}];`,
    '  };',
    `  return { ${syms.join(', ')}, forwardPlan, ${lossOut ? 'gradPlan, ' : ''}args };`,
    '  };',
    '  // every set of sizes seen, and the one of the last call',
    `  const built = new Map${t('<string, ReturnType<typeof build>>')}();`,
    `  let current${t(': ReturnType<typeof build> | undefined')};`,
    `  const prepare = (params${t(': Params')}, inputs${t(': Inputs')}) => {`,
    '    checkArgs(params, inputs);',
    ...finiteArgs,
    `    if (current === undefined || ${syms.map((d) => `current.${d} !== dims.${d}`).join(' || ')}) {`,
    `      const sizes = \`${syms.map((d) => `\${dims.${d}}`).join(',')}\`;`,
    `      current = built.get(sizes) ?? build(${syms.map((d) => `dims.${d}`).join(', ')});`,
    '      built.set(sizes, current);',
    '    }',
    '    return current;',
    '  };',
    ...gpuTrainState(m, t),
    '  return {',
    `    get mode() {`,
    `      return current?.${lossOut ? 'gradPlan' : 'forwardPlan'}.backend ?? mode;`,
    '    },',
    ...methods('prepare(params, inputs)'),
    '  };',
    '}',
  ];

  const lines: string[] = [
    ...header(m, 'GPU.js kernels: the steps of the flat module, chained on the device by two gpu.js pipelines.', 'fresh'),
    ...(typed ? [`import type { GPU as GPUClass, IKernelFunctionThis, IPipelineHandle } from 'gpu.js';`, ''] : []),
    ...loadGpuDecl(m, t),
    '',
    ...specDecl(m, t),
    '',
    ...(typed ? typeDecls(m) : []),
    ...(typed ? ["export type Mode = 'gpu' | 'cpu' | 'webasm' | 'webgpu';", ''] : []),
    ...(typed && syms.length ? ['/** The sizes of the symbolic dimensions: constants of the kernels. */', `type Sizes = { ${syms.map((d) => `${d}: number`).join('; ')} };`, ''] : []),
    ...(typed
      ? [
          'export interface Model {',
          '  /** the gpu.js backend that runs the kernels */',
          '  readonly mode: string;',
          '  forward(params: Params, inputs: Inputs, options?: Options): Promise<Outputs>;',
          ...withGrad(['  valueAndGrad(params: Params, inputs: Inputs, options?: Options): Promise<{ loss: number; grads: Grads }>;']),
          ...gpuTrainInterface(m),
          '  destroy(): void;',
          '}',
          '',
        ]
      : []),
    ...initDecl(m, t),
    ...initBuffersDecl(m, t),
    '',
    ...checkDecl(m, t),
    ...optionsDecl(m, t),
    ...gpuTrainDecls(m, t, training),
    '',
    ...checkFiniteDecl(m, t),
    ...webgpuSetup(m, t),
    '',
    ...(syms.length ? symbolicCreate() : staticCreate()),
  ];
  return lines.join('\n') + '\n';
}

function stagedName(m: ModuleInfo, op: 'param' | 'input', dslName: string): string {
  const inst = m.fwd.insts.find((i) => i.op === op && i.attrs.name === dslName)!;
  return m.fwd.value(inst.result).name;
}

/**
 * gpu.js, imported by create() rather than by the module: a project without the package can
 * import the module (a bundle of the other targets, a page) and gets create()'s rejection
 * saying what to install, not a module-resolution error at load.
 */
function loadGpuDecl(m: ModuleInfo, t: Typed): string[] {
  return [
    "/** The gpu.js package's GPU class, imported on create()'s first call. */",
    `async function loadGPU()${t(': Promise<typeof GPUClass>')} {`,
    '  try {',
    "    return (await import('gpu.js')).GPU;",
    '  } catch (e) {',
    `    const err = e${t(' as { code?: string; message?: string }')};`,
    "    if (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND')",
    `      throw new Error("${m.name}: the GPU.js module needs the 'gpu.js' package, which this project does not have: npm install gpu.js");`,
    `    throw new Error(\`${m.name}: the 'gpu.js' package could not be loaded: \${err?.message ?? String(e)}\`);`,
    '  }',
    '}',
  ];
}

/**
 * Node has no navigator.gpu: the `webgpu` package (Dawn) provides one. gpu.js assigns
 * device.onuncapturederror, which Dawn's binding rejects; giving the device an own writable
 * property first works around it (see ../shared/gpu/README.md). On every navigator.gpu (Dawn's or
 * a browser's) the device gpu.js requests asks for the adapter's maxStorageBuffersPerShaderStage:
 * a fused kernel binds each array it reads and the one it writes, and WebGPU's default limit (8)
 * is below what most adapters offer. Wrapped once, however many modules set it up; a device gpu.js
 * requested before (it keeps one per page) keeps the limits it has.
 */
function webgpuSetup(m: ModuleInfo, t: Typed): string[] {
  const Gpu = '{ requestAdapter(...a: unknown[]): Promise<{ limits: Record<string, number>; requestDevice(d?: { requiredLimits?: Record<string, number> }): Promise<object> } | null> }';
  return [
    '/** Provides navigator.gpu in Node from the `webgpu` package (Dawn), once; asks for the adapter\'s storage buffer limit. */',
    `async function setupWebGPU(GPU${t(': typeof GPUClass')})${t(': Promise<void>')} {`,
    `  const g = globalThis${t(' as { navigator?: { gpu?: unknown } }')};`,
    '  const dawn = !g.navigator?.gpu;',
    '  if (dawn) {',
    `    let pkg${t(': { create(flags: string[]): unknown; globals: object }')};`,
    '    try {',
    `      pkg = (await import('webgpu' + ''))${t(' as typeof pkg')};`,
    '    } catch (e) {',
    `      throw new Error(\`${m.name}: mode 'webgpu' needs the 'webgpu' package (Dawn) and it could not be loaded: \${(e${t(' as Error')}).message}\`);`,
    '    }',
    '    Object.assign(globalThis, pkg.globals);',
    '    g.navigator = { ...(g.navigator ?? {}), gpu: pkg.create([]) };',
    '  }',
    `  const gpu = g.navigator${t("!")}.gpu${t(` as ${Gpu} & { [k: symbol]: boolean }`)};`,
    "  const wrapped = Symbol.for('graphc.webgpu');",
    '  if (!gpu[wrapped]) {',
    '    gpu[wrapped] = true;',
    '    const requestAdapter = gpu.requestAdapter.bind(gpu);',
    `    gpu.requestAdapter = async (...a${t(': unknown[]')}) => {`,
    '      const adapter = await requestAdapter(...a);',
    '      if (!adapter) return adapter;',
    '      const requestDevice = adapter.requestDevice.bind(adapter);',
    '      adapter.requestDevice = async (d = {}) => {',
    '        const storage = adapter.limits.maxStorageBuffersPerShaderStage;',
    '        const device = await requestDevice({ ...d, requiredLimits: { ...d.requiredLimits, ...(storage ? { maxStorageBuffersPerShaderStage: storage } : {}) } });',
    "        if (dawn) Object.defineProperty(device, 'onuncapturederror', { value: null, writable: true, configurable: true });",
    '        return device;',
    '      };',
    '      return adapter;',
    '    };',
    '  }',
    '  if (!(await GPU.isWebGPUAvailable()))',
    `    throw new Error("${m.name}: mode 'webgpu' found no WebGPU adapter on this machine; use mode 'gpu', 'webasm' or 'cpu'");`,
    '}',
  ];
}
