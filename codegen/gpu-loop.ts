// A scan that stays a loop (ir/loops.ts) in the GPU.js module: the pipeline's orchestration runs a
// JS `for` over the steps, around the body's kernels, which the module declares once. gpu.js
// traces the orchestration once per pipeline (its plan holds the steps; the module's size does not
// depend on them) and gives a loop's ping-pong handles two alternating buffers.
//
//   let h = h0;  const W_b = W;  let ys = fill0();       carries, closed-over values, stacked ys
//   for (let s = 0; s < T; s++) {
//     const t = s (or T - 1 - s for a reverse scan);
//     const x = slice_x(xs, t);                           slice t of each x: a kernel taking t
//     the body's kernels (nested loops included)
//     ys = put_y(ys, y, t);                               y into slice t of the stacked ys
//     h = h2;                                             the new carries (handles: no copy)
//   }
//   const hT = h;  const ysT = ys;                        the scan's results
//
// The body's handles are immutable values: a swap of carries is an assignment of handles. A y or a
// carry of equal elements is a fill kernel's result. The step index reaches a kernel as a number
// argument (a literal of gpu.js's plan per traced step).

import type { Graph } from '../ir/graph.js';
import type { Plan, Unit } from '../ir/memplan.js';
import { valueName } from '../ir/memplan.js';
import type { Dim } from '../ir/dims.js';
import { mulSize, numelSize, sizeText } from '../ir/dims.js';
import type { ValueId } from '../ir/types.js';
import * as E from './expr.js';
import { kdim } from './gpu-kernel.js';
import { scanLoopOf } from './kernel/scan-loop.js';
import { factor } from './loops.js';
import { uniformConst } from './module.js';

/** One kernel call of a pipeline: `const name = kernel(...args);`. */
export interface Step {
  readonly name: string;
  readonly kernel: string;
  readonly args: string[];
}

/** A scan's loop in a pipeline: its body's steps, and the code around them. */
export interface LoopStep {
  readonly loop: true;
  readonly name: string;
  /** Every name the loop's own code reads (outer handles, the body's inputs and outputs). */
  readonly reads: readonly string[];
  /** The body's steps. */
  readonly body: readonly PStep[];
  /**
   * The loop's code: `inner` renders the body's steps, `views` a name's views; `awaited`: kernel
   * calls are awaited; `used`: whether the pipeline reads a value (a stacked y it does not read,
   * such as the forward's stored steps in `forward`, is not built).
   */
  render(inner: (steps: readonly PStep[]) => string[], views: (name: string) => string[], awaited: boolean, used: (name: string) => boolean): string[];
}

export type PStep = Step | LoopStep;

export const isLoop = (s: PStep): s is LoopStep => 'loop' in s;

/** Every name a list of steps reads, nested loops included. */
export function stepReads(list: readonly PStep[]): string[] {
  return list.flatMap((s) => (isLoop(s) ? [...s.reads, ...stepReads(s.body)] : s.args));
}

export interface LoopContext {
  readonly plan: Plan;
  /** `: type` in the TypeScript module, nothing in the JavaScript one. */
  readonly t: (s: string) => string;
  readonly thisType: string;
  readonly codeName: (base: string) => string;
  /** The module's kernel declarations, where the loop's own kernels go. */
  readonly kernels: string[];
  readonly viewRoot: (name: string) => string;
  /** The pipeline steps of units (a body's). */
  readonly steps: (units: readonly Unit[]) => PStep[];
}

/** The name of the helper that declares the loops' kernels, which take the step index as a number. */
export const LOOP_KERNEL = 'loopKernel';

/** The declaration of LOOP_KERNEL, after the module's `kernel` helper. */
export function loopKernelDecl(t: (s: string) => string, thisType: string): string[] {
  return [
    "  // the loops' kernels (slices of the xs, the stacked ys) take the step index as a number",
    `  const ${LOOP_KERNEL} = kernel${t(` as unknown as (fn: (${thisType}, ...args: never[]) => number, n: number) => (...args: (IPipelineHandle | number)[]) => IPipelineHandle`)};`,
  ];
}

/** The pipeline step of a scan unit: its loop. */
export function gpuLoop(c: LoopContext, u: Unit): LoopStep {
  const { graph: g, scan, name: scanName, parts: p, body, ins, bodyUnits, trips: T, results, comment } = scanLoopOf(c.plan, u);
  const { t, thisType } = c;

  // the loop's kernels, declared once each
  const fills = new Map<string, string>();
  const fill = (value: number, size: string): string => {
    const key = `${value}:${size}`;
    let k = fills.get(key);
    if (!k) {
      k = c.codeName(`fill_${scanName}`);
      fills.set(key, k);
      c.kernels.push('', `const ${k} = kernel(function (${t(thisType)})${t(': number')} {`, `return ${E.num(value).code};`, `}, ${size});`);
    }
    return k;
  };
  /** outer, len, inner of a stacked shape around `axis`, as sizes. */
  const around = (shape: readonly Dim[], axis: number) => ({ outer: numelSize(shape.slice(0, axis)), len: shape[axis]!, inner: numelSize(shape.slice(axis + 1)) });
  const sliceKernel = (x: string, shape: readonly Dim[], axis: number): string => {
    const k = c.codeName(`slice_${x}`);
    const { outer, len, inner } = around(shape, axis);
    const one = (s: ReturnType<typeof numelSize>) => s.syms.length === 0 && s.coef === 1;
    const src = one(outer) ? `src[${one(inner) ? '' : `${factor(kdim(inner))} * `}t + _x]` : `src[(_o * ${kdim(len)} + t) * ${kdim(inner)} + _x - _o * ${kdim(inner)}]`;
    c.kernels.push(
      '',
      `// slice t of ${x} along axis ${axis}: a step's operand`,
      `const ${k} = ${LOOP_KERNEL}(function (${[t(thisType), `src${t(': Float32Array')}`, `t${t(': number')}`].filter(Boolean).join(', ')})${t(': number')} {`,
      'const _x = this.thread.x;',
      ...(one(outer) ? [] : [`const _o = Math.floor(_x / ${factor(kdim(inner))});`]),
      `return ${src};`,
      `}, ${sizeText(mulSize(outer, inner))});`,
    );
    return k;
  };
  const putKernel = (y: string, shape: readonly Dim[], axis: number): string => {
    const k = c.codeName(`put_${y}`);
    const { len, inner } = around(shape, axis);
    c.kernels.push(
      '',
      `// ${y} with slice t along axis ${axis} from a step's y`,
      `const ${k} = ${LOOP_KERNEL}(function (${[t(thisType), `ys${t(': Float32Array')}`, `y${t(': Float32Array')}`, `t${t(': number')}`].filter(Boolean).join(', ')})${t(': number')} {`,
      'const _x = this.thread.x;',
      `const _o = Math.floor(_x / ${factor(kdim(mulSize(len, inner)))});`,
      `const _r = _x - _o * ${kdim(mulSize(len, inner))};`,
      `const _s = Math.floor(_r / ${factor(kdim(inner))});`,
      `if (_s === t) return y[_o * ${kdim(inner)} + _r - _s * ${kdim(inner)}];`,
      'return ys[_x];',
      `}, ${sizeText(numelSize(shape))});`,
    );
    return k;
  };

  const s = c.codeName('s');
  const tv = c.codeName('t');
  const reads: string[] = [];
  const ref = (name: string) => (reads.push(name), name);
  /** A value as a handle: its name, or a fill kernel's result for one of equal elements. */
  const handle = (gr: Graph, v: ValueId, aw: string): string => {
    const name = c.viewRoot(valueName(gr, v));
    const k = uniformConst(c.plan, name);
    return k !== undefined ? `${aw}${fill(k, sizeText(numelSize(gr.type(v).shape)))}()` : ref(name);
  };
  const xs = [...Array(p.xs).keys()].map((j) => {
    const x = scan.args[p.carries + j]!;
    const name = c.viewRoot(valueName(g, x));
    return uniformConst(c.plan, name) !== undefined ? undefined : sliceKernel(name, g.type(x).shape, scan.attrs.xaxes[j]!);
  });
  const allYs = [...Array(p.ys).keys()].map((j) => {
    const out = results.get(p.carries + j);
    if (out === undefined) return undefined;
    const y = body.outputs[p.carries + j]!.value;
    const shape = g.type(out).shape;
    const k = uniformConst(c.plan, c.viewRoot(valueName(body, y)));
    if (k !== undefined) return { out, fill: fill(k, sizeText(numelSize(shape))) };
    return { out, y, acc: c.codeName(`${valueName(g, out)}_acc`), zero: fill(0, sizeText(numelSize(shape))), put: putKernel(valueName(g, out), shape, scan.attrs.yaxes[j]!) };
  });
  const inName = (k: number) => valueName(body, ins[k]!.result);

  const bodySteps = c.steps(bodyUnits);
  const build = (inner: (steps: readonly PStep[]) => string[], views: (name: string) => string[], awaited: boolean, used: (name: string) => boolean = () => true): string[] => {
    const aw = awaited ? 'await ' : '';
    const lines: string[] = [];
    const ys = allYs.filter((y) => y !== undefined && used(valueName(g, y.out)));
    for (let k = 0; k < p.carries; k++) lines.push(`let ${ref(inName(k))} = ${handle(g, scan.args[k]!, aw)};`);
    for (let k = p.carries + p.xs; k < scan.args.length; k++) lines.push(`const ${ref(inName(k))} = ${handle(g, scan.args[k]!, aw)};`);
    for (const y of ys) if (y!.acc) lines.push(`let ${y!.acc} = ${aw}${y!.zero}();`);
    lines.push(`for (let ${s} = 0; ${s} < ${T}; ${s}++) {`);
    lines.push(`const ${tv} = ${scan.attrs.reverse ? `${T} - 1 - ${s}` : s};`);
    xs.forEach((k, j) => {
      const x = scan.args[p.carries + j]!;
      const into = inName(p.carries + j);
      lines.push(`const ${ref(into)} = ${k === undefined ? handle(g, x, aw) : `${aw}${k}(${ref(c.viewRoot(valueName(g, x)))}, ${tv})`};`);
    });
    // the views of the step's operands (a carry's change each step)
    for (let k = 0; k < ins.length; k++) lines.push(...views(inName(k)));
    lines.push(...inner(bodySteps));
    for (const y of ys) if (y!.acc) lines.push(`${y!.acc} = ${aw}${y!.put}(${y!.acc}, ${handle(body, y!.y!, aw)}, ${tv});`);
    // the new carries, all read before any is assigned (a swap)
    const moves = [...Array(p.carries).keys()].filter((k) => body.outputs[k]!.value !== ins[k]!.result);
    const next = moves.map((k) => c.codeName(`next_${inName(k)}`));
    moves.forEach((k, m) => lines.push(`const ${next[m]} = ${handle(body, body.outputs[k]!.value, aw)};`));
    moves.forEach((k, m) => lines.push(`${inName(k)} = ${next[m]};`));
    lines.push('}');
    for (let k = 0; k < p.carries; k++) {
      const out = results.get(k);
      if (out !== undefined) lines.push(`const ${valueName(g, out)} = ${inName(k)};`, ...views(valueName(g, out)));
    }
    for (const y of ys) {
      if (!y) continue;
      const name = valueName(g, y.out);
      lines.push(`const ${name} = ${y.acc ?? `${aw}${y.fill}()`};`, ...views(name));
    }
    // no block around it: the results are the pipeline's values (every name here is the module's own)
    return [comment, ...lines];
  };
  // the names read, from a dry run (the kernels are declared once: fill is memoized)
  const names = new Set<string>();
  build(() => [], () => [], false);
  reads.forEach((r) => names.add(r));
  return { loop: true, name: scanName, reads: [...names], body: bodySteps, render: build };
}
