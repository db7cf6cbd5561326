// The GPU.js target's convolutions and pooling: each thread computes one output element (a
// gather), so the gradients loop over the outputs whose windows cover the thread's position:
//
//   conv              y[n, m, i, j]  = Σ_{k, p, q} x[n, k', i·sh − pt + p·dh, j·sw − pl + q·dw] · w[m, k, p, q]
//   conv_input_grad   dx[n, c, h, w] = Σ_{m of c's group, p, q} dy[n, m, (h + pt − p·dh)/sh, …] · w[m, c − g·C/G, p, q]
//                                      (the transposed convolution, over the taps that land on a stride)
//   conv_weight_grad  dw[m, k, p, q] = Σ_{n, i, j} x[n, k', i·sh − pt + p·dh, …] · dy[n, m, i, j]
//   max_pool (grad)   the window's first maximum; the gradient adds dy of each window whose
//                     first maximum is this position
//   max_pool_pick     v at the window's first maximum of x (max_pool_grad's adjoint)
//   avg_pool (grad)   the window's sum / (kH·kW); the gradient sums dy / (kH·kW) over the windows

import type { Dim, Size } from '../ir/dims.js';
import type { Graph } from '../ir/graph.js';
import type { Inst, ValueId } from '../ir/types.js';
import * as E from './expr.js';
import type { Expr } from './expr.js';
import { convGeometry as geometry } from '../ir/conv.js';

/** What these kernels need of the GPU target's kernel writer. */
export interface PositionWriter {
  readonly g: Graph;
  readonly lines: string[];
  fresh(base: string): string;
  loop(init: string, counts: readonly (Dim | Size)[], body: (vars: string[], acc: string) => string[]): string;
  capture(f: () => string): { lines: string[]; value: string };
  at(v: ValueId, pos: readonly string[]): Expr;
}

type Op = 'conv' | 'conv_input_grad' | 'conv_weight_grad' | 'max_pool' | 'max_pool_grad' | 'max_pool_pick' | 'avg_pool' | 'avg_pool_grad';

const inRange = (v: string, n: number) => `${v} >= 0 && ${v} < ${n}`;

/** The lines of reading operands, then `use` of their values. */
function reading(w: PositionWriter, reads: (() => string)[], use: (vals: string[]) => string): string[] {
  const got = reads.map((r) => w.capture(r));
  return [...got.flatMap((x) => x.lines), use(got.map((x) => x.value))];
}

/** `body` under `cond`: the lines of reading operands inside it too. */
function guarded(w: PositionWriter, cond: string, reads: (() => string)[], use: (vals: string[]) => string): string[] {
  return [`if (${cond}) {`, ...reading(w, reads, use), '}'];
}

/**
 * A sliding window along the input's height and width: strides, paddings (top, left), dilations
 * (none for a pool), the input's size, and the output's (for the windows that cover a position).
 */
interface Window {
  readonly sh: number;
  readonly sw: number;
  readonly pt: number;
  readonly pl: number;
  readonly dh?: number;
  readonly dw?: number;
  readonly H: number;
  readonly W: number;
  readonly Ho: number;
  readonly Wo: number;
}

/**
 * Tap (p, q) of the output window (i, j): the input position h = i·sh − pt + p·dh, w = j·sw − pl + q·dw,
 * and `inside(h, w)` under the check that it lies in the input (not in its padding).
 */
function windowAt(w: PositionWriter, win: Window, [i, j, p, q]: readonly [string, string, string, string], inside: (h: string, x: string) => string[]): string[] {
  const h = w.fresh('h');
  const x = w.fresh('w');
  const tap = (o: string, s: number, pad: number, t: string, d: number | undefined) => `${o} * ${s} - ${pad} + ${t}${d === undefined ? '' : ` * ${d}`}`;
  return [`const ${h} = ${tap(i, win.sh, win.pt, p, win.dh)};`, `const ${x} = ${tap(j, win.sw, win.pl, q, win.dw)};`, `if (${inRange(h, win.H)} && ${inRange(x, win.W)}) {`, ...inside(h, x), '}'];
}

/**
 * The output window (i, j) whose tap (p, q) is the input position (h, w), if any (a gradient's
 * gather): `lines` compute i and j, `covers` says whether the tap lands on a stride inside the output.
 */
function coveringWindow(w: PositionWriter, win: Window, [h, x, p, q]: readonly [string, string, string, string]): { i: string; j: string; lines: string[]; covers: string } {
  const th = w.fresh('th');
  const tw = w.fresh('tw');
  const i = w.fresh('i');
  const j = w.fresh('j');
  const tap = (o: string, pad: number, t: string, d: number | undefined) => `${o} + ${pad} - ${t}${d === undefined ? '' : ` * ${d}`}`;
  return {
    i,
    j,
    lines: [`const ${th} = ${tap(h, win.pt, p, win.dh)};`, `const ${tw} = ${tap(x, win.pl, q, win.dw)};`, `const ${i} = Math.floor(${th} / ${win.sh});`, `const ${j} = Math.floor(${tw} / ${win.sw});`],
    covers: `${th} >= 0 && ${tw} >= 0 && ${i} * ${win.sh} === ${th} && ${j} * ${win.sw} === ${tw} && ${i} < ${win.Ho} && ${j} < ${win.Wo}`,
  };
}

/** A pool's window and the sizes of its input x and output y (whichever values hold them). */
function poolWindow(attrs: { kernel: readonly number[]; stride: readonly number[]; padding: readonly number[] }, x: readonly number[], y: readonly number[]): Window & { kh: number; kw: number } {
  const [kh, kw] = attrs.kernel as [number, number];
  const [sh, sw] = attrs.stride as [number, number];
  const [pt, pl] = attrs.padding as [number, number];
  return { kh, kw, sh, sw, pt, pl, H: x[2]!, W: x[3]!, Ho: y[2]!, Wo: y[3]! };
}

type ConvInst = Extract<Inst, { op: 'conv' | 'conv_input_grad' | 'conv_weight_grad' }>;
type PoolInst<K extends Op> = Extract<Inst, { op: K }>;

export function convAt(w: PositionWriter, inst: Extract<Inst, { op: Op }>, pos: readonly string[]): Expr {
  switch (inst.op) {
    case 'conv':
    case 'conv_input_grad':
    case 'conv_weight_grad': {
      const c = convGeometry(w.g, inst);
      if (inst.op === 'conv') return convForwardAt(w, c, pos);
      if (inst.op === 'conv_input_grad') return convInputGradAt(w, c, pos);
      return convWeightGradAt(w, c, pos);
    }
    case 'max_pool':
    case 'avg_pool':
      return poolAt(w, inst, pos);
    case 'max_pool_pick':
      return maxPoolPickAt(w, inst, pos);
    case 'max_pool_grad':
    case 'avg_pool_grad':
      return poolGradAt(w, inst, pos);
  }
}

/** A convolution's geometry (ir/conv.ts), its two arguments, and the first channel of m's group as code. */
function convGeometry(g: Graph, inst: ConvInst) {
  const c = geometry(g, inst);
  const [a0, a1] = inst.args as [ValueId, ValueId];
  return { ...c, a0, a1, Gc: (m: string) => (inst.attrs.groups === 1 ? '0' : `Math.floor(${m} / ${c.Og}) * ${c.Cg}`) };
}
type ConvGeometry = ReturnType<typeof convGeometry>;

/** conv: Σ over the window's channels and taps of x · w. */
function convForwardAt(w: PositionWriter, c: ConvGeometry, pos: readonly string[]): Expr {
  const { a0, a1, Cg, kH, kW, Gc } = c;
  const [n, m, i, j] = pos as [string, string, string, string];
  return E.atom(
    w.loop('0', [Cg, kH, kW], ([k, p, q], acc) =>
      windowAt(w, c, [i, j, p!, q!], (h, x) => reading(w, [() => w.at(a0, [n, `${Gc(m)} + ${k}`, h, x]).code, () => w.at(a1, [m, k!, p!, q!]).code], ([xv, wv]) => `${acc} += ${xv} * ${wv};`)),
    ),
  );
}

/** conv_input_grad: the transposed convolution, over the taps that land on a stride. */
function convInputGradAt(w: PositionWriter, cg: ConvGeometry, pos: readonly string[]): Expr {
  const { a0, a1, Cg, kH, kW, Og } = cg;
  const [n, c, h, x] = pos as [string, string, string, string];
  const grp = w.fresh('g');
  const kk = w.fresh('k');
  w.lines.push(`const ${grp} = Math.floor(${c} / ${Cg});`, `const ${kk} = ${c} - ${grp} * ${Cg};`);
  return E.atom(
    w.loop('0', [Og, kH, kW], ([mm, p, q], acc) => {
      const { i, j, lines, covers } = coveringWindow(w, cg, [h, x, p!, q!]);
      const m = w.fresh('m');
      return [
        ...lines,
        `const ${m} = ${grp} * ${Og} + ${mm};`,
        ...guarded(w, covers, [() => w.at(a0, [n, m, i, j]).code, () => w.at(a1, [m, kk, p!, q!]).code], ([dv, wv]) => `${acc} += ${dv} * ${wv};`),
      ];
    }),
  );
}

/** conv_weight_grad: Σ over the batch and the outputs of x · dy. */
function convWeightGradAt(w: PositionWriter, c: ConvGeometry, pos: readonly string[]): Expr {
  const { a0, a1, N, Ho, Wo, Gc } = c;
  const [m, k, p, q] = pos as [string, string, string, string];
  return E.atom(
    w.loop('0', [N, Ho, Wo], ([n, i, j], acc) =>
      windowAt(w, c, [i!, j!, p, q], (h, x) => reading(w, [() => w.at(a0, [n!, `${Gc(m)} + ${k}`, h, x]).code, () => w.at(a1, [n!, m, i!, j!]).code], ([xv, dv]) => `${acc} += ${xv} * ${dv};`)),
    ),
  );
}

/** max_pool, avg_pool: the window's first maximum, or its mean. */
function poolAt(w: PositionWriter, inst: PoolInst<'max_pool' | 'avg_pool'>, pos: readonly string[]): Expr {
  const t = (v: ValueId) => w.g.type(v).shape as number[];
  const win = poolWindow(inst.attrs, t(inst.args[0]!), t(inst.result));
  const [n, c, i, j] = pos as [string, string, string, string];
  const max = inst.op === 'max_pool';
  const acc = w.loop(max ? '-Infinity' : '0', [win.kh, win.kw], ([p, q], acc) =>
    windowAt(w, win, [i, j, p!, q!], (h, x) => reading(w, [() => w.at(inst.args[0]!, [n, c, h, x]).code], ([v]) => (max ? `if (${v} > ${acc}) ${acc} = ${v};` : `${acc} += ${v};`))),
  );
  return max ? E.atom(acc) : E.atom(`${acc} / ${win.kh * win.kw}`);
}

/** max_pool_pick: v at the window's first maximum of x. */
function maxPoolPickAt(w: PositionWriter, inst: PoolInst<'max_pool_pick'>, pos: readonly string[]): Expr {
  const t = (v: ValueId) => w.g.type(v).shape as number[];
  const win = poolWindow(inst.attrs, t(inst.args[0]!), t(inst.result));
  const [n, c, i, j] = pos as [string, string, string, string];
  // the window's first maximum in row-major order (a later tie does not replace it), and v there
  const best = w.fresh('best');
  w.lines.push(`let ${best} = -Infinity;`);
  const found = w.fresh('found');
  w.lines.push(`let ${found} = 0;`);
  const acc = w.loop('0', [win.kh, win.kw], ([p, q], acc) =>
    windowAt(w, win, [i, j, p!, q!], (h, x) => {
      const xv = w.capture(() => w.at(inst.args[0]!, [n, c, h, x]).code);
      const vv = w.capture(() => w.at(inst.args[1]!, [n, c, h, x]).code);
      return [...xv.lines, `if (${found} === 0 || ${xv.value} > ${best}) {`, `${best} = ${xv.value};`, `${found} = 1;`, ...vv.lines, `${acc} = ${vv.value};`, '}'];
    }),
  );
  return E.atom(acc);
}

/** max_pool_grad, avg_pool_grad: dy of each window whose first maximum is this position (or all of them, / kH·kW). */
function poolGradAt(w: PositionWriter, inst: PoolInst<'max_pool_grad' | 'avg_pool_grad'>, pos: readonly string[]): Expr {
  const t = (v: ValueId) => w.g.type(v).shape as number[];
  const dy = inst.args[inst.args.length - 1]!;
  const win = poolWindow(inst.attrs, t(inst.result), t(dy));
  const [n, c, h, x] = pos as [string, string, string, string];
  const max = inst.op === 'max_pool_grad';
  // the windows (i, j) whose tap (p, q) is this position
  const acc = w.loop('0', [win.kh, win.kw], ([p, q], acc) => {
    const { i, j, lines: head, covers } = coveringWindow(w, win, [h, x, p!, q!]);
    if (!max) return [...head, ...guarded(w, covers, [() => w.at(dy, [n, c, i, j]).code], ([d]) => `${acc} += ${d};`)];
    // the window's first maximum, in row-major order of its taps
    const best = w.fresh('best');
    const bh = w.fresh('bh');
    const bw = w.fresh('bw');
    const r = w.fresh('r');
    const s = w.fresh('s');
    const tap = windowAt(w, win, [i, j, r, s], (hh, ww) => {
      const v = w.capture(() => w.at(inst.args[0]!, [n, c, hh, ww]).code);
      return [...v.lines, `if (${bh} < 0 || ${v.value} > ${best}) {`, `${best} = ${v.value};`, `${bh} = ${hh};`, `${bw} = ${ww};`, '}'];
    });
    const d = w.capture(() => w.at(dy, [n, c, i, j]).code);
    return [
      ...head,
      `if (${covers}) {`,
      `let ${best} = -Infinity;`,
      `let ${bh} = -1;`,
      `let ${bw} = -1;`,
      `for (let ${r} = 0; ${r} < ${win.kh}; ${r}++) {`,
      `for (let ${s} = 0; ${s} < ${win.kw}; ${s}++) {`,
      ...tap,
      '}',
      '}',
      `if (${bh} === ${h} && ${bw} === ${x}) {`,
      ...d.lines,
      `${acc} += ${d.value};`,
      '}',
      '}',
    ];
  });
  return max ? E.atom(acc) : E.atom(`${acc} / ${win.kh * win.kw}`);
}
