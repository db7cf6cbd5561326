// The GPU.js module's kernels: one per value a unit stores (codegen/gpu.ts chains them into
// pipelines). A fused group, a copy or a routine's epilogue is rendered from the kernel form
// (gpu-kernel.ts); a routine's own result (a matrix product, a convolution or pooling, softmax,
// gather, the index primitives) is computed at the position of each thread by KernelWriter, with
// gpu-conv.ts and gpu-index.ts.

import type { Size } from '../ir/dims.js';
import { numelSize, sizeEq, stridesSize } from '../ir/dims.js';
import { CompileError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import type { Plan, Unit } from '../ir/memplan.js';
import { valueName } from '../ir/memplan.js';
import type { Inst, Shape, ValueId } from '../ir/types.js';
import * as E from './expr.js';
import type { Expr } from './expr.js';
import type { PositionWriter } from './gpu-conv.js';
import { convAt } from './gpu-conv.js';
import { indexAt } from './gpu-index.js';
import { GPU_SUM_BLOCK, gpuNative, kdim, renderStore, threadAxes, wrapSum } from './gpu-kernel.js';
import type { Access } from './kernel/form.js';
import { lowerUnitOf } from './kernel/lower.js';
import { factor } from './loops.js';
import { uniformConst } from './module.js';
import type { Dim } from '../ir/dims.js';

// ---------------------------------------------------------------------------------------------
// A kernel: one value at the position of each thread

/**
 * The part of a unit one kernel computes, for its comment: the value and the group's locals. A
 * conv group's convolution is a kernel of its own, and its epilogue an elementwise kernel that
 * reads it.
 */
export function gpuCommentUnit(plan: Plan, u: Unit, inst: Inst): Unit {
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
export const MIN_2D_OUTPUTS = 1 << 20;

/**
 * In such a product A·Bᵀ with K ≥ 64, B is transposed by a kernel of its own first, and the
 * product reads the copy as A·B would. On an H200 (bench/gpu-matmul.mjs) a 4096×4096×384 A·Bᵀ
 * (makemore XL's dembcat) took 26.1 ms 1-D and 9.5 ms 2-D, where A·B of the same size took 4.9.
 */
const MIN_TRANSPOSED_K = 64;

/** An array `of` [cols, rows] that a kernel reads as its transpose `name` [rows, cols]. */
export interface Transposed {
  readonly name: string;
  readonly of: string;
  readonly rows: number;
  readonly cols: number;
}

/** A gpu.js kernel: its source, the arrays it reads, its row width if 2-D, the transposed copies it reads. */
export interface GpuKernel {
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
function kernelOf(g: Graph, plan: Plan, u: Unit, shape: Shape, own: ValueId | undefined, value: (w: KernelWriter, pos: string[]) => Expr, transposedName: ((of: string) => string) | undefined, viewRoot?: (name: string) => string): GpuKernel {
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
export function unitKernels(g: Graph, plan: Plan, u: Unit, transposedName: ((of: string) => string) | undefined, viewRoot: (name: string) => string): { inst: Inst; k: GpuKernel }[] {
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

