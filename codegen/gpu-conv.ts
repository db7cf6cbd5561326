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

/** `body` under `cond`: the lines of reading operands inside it too. */
function guarded(w: PositionWriter, cond: string, reads: (() => string)[], use: (vals: string[]) => string): string[] {
  const got = reads.map((r) => w.capture(r));
  return [`if (${cond}) {`, ...got.flatMap((x) => x.lines), use(got.map((x) => x.value)), '}'];
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

/** A convolution's strides, dilations, paddings, operands and the sizes of its x, w and y (whichever value holds each). */
function convGeometry(g: Graph, inst: ConvInst) {
  const t = (v: ValueId) => g.type(v).shape as number[];
  const a = inst.attrs;
  const [sh, sw] = a.stride as [number, number];
  const [dh, dw] = a.dilation as [number, number];
  const [pt, pl] = a.padding as [number, number];
  const [a0, a1] = inst.args as [ValueId, ValueId];
  const [xs, ws, ys] = inst.op === 'conv' ? [t(a0), t(a1), t(inst.result)] : inst.op === 'conv_input_grad' ? [t(inst.result), t(a1), t(a0)] : [t(a0), t(inst.result), t(a1)];
  const [N, , H, W] = xs as [Dim, number, number, number];
  const [O, Cg, kH, kW] = ws as [number, number, number, number];
  const [, , Ho, Wo] = ys as [Dim, number, number, number];
  const Og = O / a.groups;
  const Gc = (m: string) => (a.groups === 1 ? '0' : `Math.floor(${m} / ${Og}) * ${Cg}`);
  return { sh, sw, dh, dw, pt, pl, a0, a1, N, H, W, Cg, kH, kW, Ho, Wo, Og, Gc };
}
type ConvGeometry = ReturnType<typeof convGeometry>;

/** conv: Σ over the window's channels and taps of x · w. */
function convForwardAt(w: PositionWriter, c: ConvGeometry, pos: readonly string[]): Expr {
  const { sh, sw, dh, dw, pt, pl, a0, a1, H, W, Cg, kH, kW, Gc } = c;
  const [n, m, i, j] = pos as [string, string, string, string];
  return E.atom(
    w.loop('0', [Cg, kH, kW], ([k, p, q], acc) => {
      const h = w.fresh('h');
      const x = w.fresh('w');
      return [
        `const ${h} = ${i} * ${sh} - ${pt} + ${p} * ${dh};`,
        `const ${x} = ${j} * ${sw} - ${pl} + ${q} * ${dw};`,
        ...guarded(w, `${inRange(h, H)} && ${inRange(x, W)}`, [() => w.at(a0, [n, `${Gc(m)} + ${k}`, h, x]).code, () => w.at(a1, [m, k!, p!, q!]).code], ([xv, wv]) => `${acc} += ${xv} * ${wv};`),
      ];
    }),
  );
}

/** conv_input_grad: the transposed convolution, over the taps that land on a stride. */
function convInputGradAt(w: PositionWriter, cg: ConvGeometry, pos: readonly string[]): Expr {
  const { sh, sw, dh, dw, pt, pl, a0, a1, Cg, kH, kW, Ho, Wo, Og } = cg;
  const [n, c, h, x] = pos as [string, string, string, string];
  const grp = w.fresh('g');
  const kk = w.fresh('k');
  w.lines.push(`const ${grp} = Math.floor(${c} / ${Cg});`, `const ${kk} = ${c} - ${grp} * ${Cg};`);
  return E.atom(
    w.loop('0', [Og, kH, kW], ([mm, p, q], acc) => {
      const th = w.fresh('th');
      const tw = w.fresh('tw');
      const i = w.fresh('i');
      const j = w.fresh('j');
      const m = w.fresh('m');
      return [
        `const ${th} = ${h} + ${pt} - ${p} * ${dh};`,
        `const ${tw} = ${x} + ${pl} - ${q} * ${dw};`,
        `const ${i} = Math.floor(${th} / ${sh});`,
        `const ${j} = Math.floor(${tw} / ${sw});`,
        `const ${m} = ${grp} * ${Og} + ${mm};`,
        ...guarded(
          w,
          `${th} >= 0 && ${tw} >= 0 && ${i} * ${sh} === ${th} && ${j} * ${sw} === ${tw} && ${i} < ${Ho} && ${j} < ${Wo}`,
          [() => w.at(a0, [n, m, i, j]).code, () => w.at(a1, [m, kk, p!, q!]).code],
          ([dv, wv]) => `${acc} += ${dv} * ${wv};`,
        ),
      ];
    }),
  );
}

/** conv_weight_grad: Σ over the batch and the outputs of x · dy. */
function convWeightGradAt(w: PositionWriter, c: ConvGeometry, pos: readonly string[]): Expr {
  const { sh, sw, dh, dw, pt, pl, a0, a1, N, H, W, Ho, Wo, Gc } = c;
  const [m, k, p, q] = pos as [string, string, string, string];
  return E.atom(
    w.loop('0', [N, Ho, Wo], ([n, i, j], acc) => {
      const h = w.fresh('h');
      const x = w.fresh('w');
      return [
        `const ${h} = ${i} * ${sh} - ${pt} + ${p} * ${dh};`,
        `const ${x} = ${j} * ${sw} - ${pl} + ${q} * ${dw};`,
        ...guarded(w, `${inRange(h, H)} && ${inRange(x, W)}`, [() => w.at(a0, [n!, `${Gc(m)} + ${k}`, h, x]).code, () => w.at(a1, [n!, m, i!, j!]).code], ([xv, dv]) => `${acc} += ${xv} * ${dv};`),
      ];
    }),
  );
}

/** max_pool, avg_pool: the window's first maximum, or its mean. */
function poolAt(w: PositionWriter, inst: PoolInst<'max_pool' | 'avg_pool'>, pos: readonly string[]): Expr {
  const t = (v: ValueId) => w.g.type(v).shape as number[];
  const [kh, kw] = inst.attrs.kernel as [number, number];
  const [sh, sw] = inst.attrs.stride as [number, number];
  const [ph, pw] = inst.attrs.padding as [number, number];
  const [, , H, W] = t(inst.args[0]!);
  const [n, c, i, j] = pos as [string, string, string, string];
  const max = inst.op === 'max_pool';
  const acc = w.loop(max ? '-Infinity' : '0', [kh, kw], ([p, q], acc) => {
    const h = w.fresh('h');
    const x = w.fresh('w');
    return [
      `const ${h} = ${i} * ${sh} - ${ph} + ${p};`,
      `const ${x} = ${j} * ${sw} - ${pw} + ${q};`,
      ...guarded(w, `${inRange(h, H!)} && ${inRange(x, W!)}`, [() => w.at(inst.args[0]!, [n, c, h, x]).code], ([v]) => (max ? `if (${v} > ${acc}) ${acc} = ${v};` : `${acc} += ${v};`)),
    ];
  });
  return max ? E.atom(acc) : E.atom(`${acc} / ${kh * kw}`);
}

/** max_pool_pick: v at the window's first maximum of x. */
function maxPoolPickAt(w: PositionWriter, inst: PoolInst<'max_pool_pick'>, pos: readonly string[]): Expr {
  const t = (v: ValueId) => w.g.type(v).shape as number[];
  const [kh, kw] = inst.attrs.kernel as [number, number];
  const [sh, sw] = inst.attrs.stride as [number, number];
  const [ph, pw] = inst.attrs.padding as [number, number];
  const [, , H, W] = t(inst.args[0]!);
  const [n, c, i, j] = pos as [string, string, string, string];
  // the window's first maximum in row-major order (a later tie does not replace it), and v there
  const best = w.fresh('best');
  w.lines.push(`let ${best} = -Infinity;`);
  const found = w.fresh('found');
  w.lines.push(`let ${found} = 0;`);
  const acc = w.loop('0', [kh, kw], ([p, q], acc) => {
    const h = w.fresh('h');
    const x = w.fresh('w');
    const xv = w.capture(() => w.at(inst.args[0]!, [n, c, h, x]).code);
    const vv = w.capture(() => w.at(inst.args[1]!, [n, c, h, x]).code);
    return [
      `const ${h} = ${i} * ${sh} - ${ph} + ${p};`,
      `const ${x} = ${j} * ${sw} - ${pw} + ${q};`,
      `if (${inRange(h, H!)} && ${inRange(x, W!)}) {`,
      ...xv.lines,
      `if (${found} === 0 || ${xv.value} > ${best}) {`,
      `${best} = ${xv.value};`,
      `${found} = 1;`,
      ...vv.lines,
      `${acc} = ${vv.value};`,
      '}',
      '}',
    ];
  });
  return E.atom(acc);
}

/** max_pool_grad, avg_pool_grad: dy of each window whose first maximum is this position (or all of them, / kH·kW). */
function poolGradAt(w: PositionWriter, inst: PoolInst<'max_pool_grad' | 'avg_pool_grad'>, pos: readonly string[]): Expr {
  const t = (v: ValueId) => w.g.type(v).shape as number[];
  const [kh, kw] = inst.attrs.kernel as [number, number];
  const [sh, sw] = inst.attrs.stride as [number, number];
  const [ph, pw] = inst.attrs.padding as [number, number];
  const [, , H, W] = t(inst.result);
  const dy = inst.args[inst.args.length - 1]!;
  const [, , Ho, Wo] = t(dy);
  const [n, c, h, x] = pos as [string, string, string, string];
  const max = inst.op === 'max_pool_grad';
  // the windows (i, j) whose tap (p, q) is this position
  const acc = w.loop('0', [kh, kw], ([p, q], acc) => {
    const th = w.fresh('th');
    const tw = w.fresh('tw');
    const i = w.fresh('i');
    const j = w.fresh('j');
    const inWindow = `${th} >= 0 && ${tw} >= 0 && ${i} * ${sh} === ${th} && ${j} * ${sw} === ${tw} && ${i} < ${Ho} && ${j} < ${Wo}`;
    const head = [`const ${th} = ${h} + ${ph} - ${p};`, `const ${tw} = ${x} + ${pw} - ${q};`, `const ${i} = Math.floor(${th} / ${sh});`, `const ${j} = Math.floor(${tw} / ${sw});`];
    if (!max) return [...head, ...guarded(w, inWindow, [() => w.at(dy, [n, c, i, j]).code], ([d]) => `${acc} += ${d};`)];
    // the window's first maximum, in row-major order of its taps
    const best = w.fresh('best');
    const bh = w.fresh('bh');
    const bw = w.fresh('bw');
    const r = w.fresh('r');
    const s = w.fresh('s');
    const hh = w.fresh('h');
    const ww = w.fresh('w');
    const v = w.capture(() => w.at(inst.args[0]!, [n, c, hh, ww]).code);
    const d = w.capture(() => w.at(dy, [n, c, i, j]).code);
    return [
      ...head,
      `if (${inWindow}) {`,
      `let ${best} = -Infinity;`,
      `let ${bh} = -1;`,
      `let ${bw} = -1;`,
      `for (let ${r} = 0; ${r} < ${kh}; ${r}++) {`,
      `for (let ${s} = 0; ${s} < ${kw}; ${s}++) {`,
      `const ${hh} = ${i} * ${sh} - ${ph} + ${r};`,
      `const ${ww} = ${j} * ${sw} - ${pw} + ${s};`,
      `if (${inRange(hh, H!)} && ${inRange(ww, W!)}) {`,
      ...v.lines,
      `if (${bh} < 0 || ${v.value} > ${best}) {`,
      `${best} = ${v.value};`,
      `${bh} = ${hh};`,
      `${bw} = ${ww};`,
      '}',
      '}',
      '}',
      '}',
      `if (${bh} === ${h} && ${bw} === ${x}) {`,
      ...d.lines,
      `${acc} += ${d.value};`,
      '}',
      '}',
    ];
  });
  return max ? E.atom(acc) : E.atom(`${acc} / ${kh * kw}`);
}
