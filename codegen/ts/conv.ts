// The flat TypeScript target's convolution and pooling loops. Every bound, stride and padding is
// a constant of the emitted code (the batch may be a symbol). A convolution without padding (every
// tap of every output inside the input) is a direct loop nest over (image n, output channel m,
// row i, 4 columns j), each sum in a register over (k, p, q) (directConv below). Otherwise, and
// for the gradients, a convolution is one loop nest
// over (image n, output channel m, input channel k, tap p, q), with the range of output rows i
// and columns j whose tap falls inside the input computed once per tap, so that no padded
// position is visited and the innermost loop runs along a row:
//
//   conv              y[n, m, i, j]   += w[m, k, p, q] · x[n, k', i·sh − pt + p·dh, j·sw − pl + q·dw]
//   conv_input_grad   dx[n, k', ·, ·] += w[m, k, p, q] · dy[n, m, i, j]   (the transposed convolution)
//   conv_weight_grad  dw[m, k, p, q]  += Σ_{i, j} x[n, k', ·, ·] · dy[n, m, i, j]
//
// where k' = (m div O/G)·C/G + k is the input channel of output channel m's group. In a conv
// group (ir/fusion.ts) the bias and a following elementwise chain run on each sum in its register
// (the direct form), or over each output plane y[n, m, ·, ·] as soon as it is accumulated, while
// it is in cache: one pass less over y, and the bias a constant of the plane.

import type { Inst, InstOf, ValueId } from '../../ir/types.js';
import type { ConvAttrs, PoolAttrs } from '../../ir/conv.js';
import { convGeometry, convOperands } from '../../ir/conv.js';
import { sizeText } from '../../ir/dims.js';
import type { Ctx } from './snippets.js';

type ConvOp = 'conv' | 'conv_input_grad' | 'conv_weight_grad';

/** A convolution's geometry (ir/conv.ts), N as code. */
function convDims(c: Ctx, inst: InstOf<ConvOp>) {
  const d = convGeometry(c.g, inst as Inst);
  return { ...d, N: sizeText(d.N) };
}

/** `a + b·v` simplified for the constants of the emitted code. */
function lin(a: number, b: number, v: string): string {
  const term = b === 0 ? '' : b === 1 ? v : `${v} * ${b}`;
  if (!term) return String(a);
  return a === 0 ? term : a > 0 ? `${term} + ${a}` : `${term} - ${-a}`;
}

/** The first and one-past-last output index whose tap `p·d − pad + i·s` lies in [0, n). */
function range(lo: string, hi: string, tap: string, d: number, pad: number, s: number, n: number, out: number): string[] {
  // i·s + p·d − pad ≥ 0  ⇔  i ≥ ⌈(pad − p·d) / s⌉;  i·s + p·d − pad ≤ n − 1  ⇔  i ≤ ⌊(n − 1 + pad − p·d) / s⌋
  const off = (c: number) => (d === 0 ? String(c) : c === 0 ? `-${d === 1 ? tap : `${tap} * ${d}`}` : `${c} - ${d === 1 ? tap : `${tap} * ${d}`}`);
  const div = (e: string, f: 'ceil' | 'floor') => (s === 1 ? e : `Math.${f}((${e}) / ${s})`);
  return [
    `const ${lo} = Math.max(0, ${div(off(pad), 'ceil')});`,
    `const ${hi} = Math.min(${out}, ${div(off(n - 1 + pad), 'floor')} + 1);`,
  ];
}

/** Formula of a convolution, for the comments: `conv2d(x, w, stride=2)` with the non-default attrs. */
export function convOptions(a: ConvAttrs): string {
  const pair = (v: readonly number[]) => (v[0] === v[1] ? String(v[0]) : `(${v.join(', ')})`);
  const pad = a.padding[0] === a.padding[2] && a.padding[1] === a.padding[3] ? pair([a.padding[0]!, a.padding[1]!]) : `(${a.padding.join(', ')})`;
  return [
    a.stride.some((v) => v !== 1) ? `stride=${pair(a.stride)}` : '',
    a.padding.some((v) => v !== 0) ? `padding=${pad}` : '',
    a.dilation.some((v) => v !== 1) ? `dilation=${pair(a.dilation)}` : '',
    a.groups !== 1 ? `groups=${a.groups}` : '',
  ].filter(Boolean).map((s) => `, ${s}`).join('');
}

export function poolOptions(a: PoolAttrs): string {
  const pair = (v: readonly number[]) => (v[0] === v[1] ? String(v[0]) : `(${v.join(', ')})`);
  return `, ${pair(a.kernel)}${a.stride.every((s, i) => s === a.kernel[i]) ? '' : `, stride=${pair(a.stride)}`}${a.padding.some((p) => p) ? `, padding=${pair(a.padding)}` : ''}`;
}

/**
 * A conv group's epilogue (its bias, its activation): `plane` gives the lines run once per output
 * plane (n, m), before its elements (operands constant over the plane); `element` the lines at one
 * output element, whose value is `v` (an expression), flat index `o`, row `i` and column `j`.
 */
export interface ConvEpilogue {
  readonly plane: () => string[];
  readonly element: (v: string, o: string, i: string, j: string) => string[];
  /** Whether `element` reads i and j (an operand broadcast along rows or columns alone). */
  readonly rowsCols: boolean;
}

/** Output columns computed together by the direct convolution, sharing each weight load. */
const TJ = 4;
/** The widest kernel row whose taps the direct weight gradient sums together (one register each). */
const MAX_TAPS = 8;

export function convLoops(c: Ctx, inst: InstOf<ConvOp>, epilogue?: ConvEpilogue): string[] {
  const { N, C, H, W, O, Cg, kH, kW, Ho, Wo, sh, sw, dh, dw, pt, pl, Og } = convDims(c, inst);
  if (inst.op === 'conv' && inst.attrs.padding.every((v) => v === 0)) return directConv(c, inst as InstOf<'conv'>, epilogue);
  if (inst.op !== 'conv' && inst.attrs.padding.every((v) => v === 0) && kW <= MAX_TAPS) return rowTaps(c, inst as InstOf<'conv_weight_grad' | 'conv_input_grad'>);
  const a = inst.attrs;
  const out = c.arr(inst.result);
  const names = convOperands(inst.op, inst.args.map((v) => c.arr(v)), out);
  const chan = a.groups === 1 ? 'k' : `${Og === 1 ? 'm' : `Math.floor(m / ${Og})`} * ${Cg} + k`;
  const row = lin(-pt, sh, 'i');
  const xRow = `_xb + ${/[+-]/.test(row) ? `(${row})` : row} * ${W}`; // the start of input row i·sh − pt (+ p·dh, in _xb)
  const xCol = lin(-pl, sw, 'j');
  const lines: string[] = [];
  if (inst.op !== 'conv') lines.push(`${out}.fill(0);`);
  lines.push(
    `for (let n = 0; n < ${N}; n++) {`,
    `for (let m = 0; m < ${O}; m++) {`,
    `const _yb = (n * ${O} + m) * ${Ho * Wo};`,
  );
  if (inst.op === 'conv') lines.push(`for (let _o = _yb; _o < _yb + ${Ho * Wo}; _o++) ${out}[_o] = 0;`);
  lines.push(
    `for (let k = 0; k < ${Cg}; k++) {`,
    `for (let p = 0; p < ${kH}; p++) {`,
    ...range('_i0', '_i1', 'p', dh, pt, sh, H, Ho),
    `const _xb = ((n * ${C} + ${chan}) * ${H} + ${lin(0, dh, 'p')}) * ${W};`,
    `for (let q = 0; q < ${kW}; q++) {`,
    ...range('_j0', '_j1', 'q', dw, pl, sw, W, Wo),
    `const _wi = ((m * ${Cg} + k) * ${kH} + p) * ${kW} + q;`,
    `const _xq = ${lin(0, dw, 'q')};`,
  );
  const xAt = `${names.x}[_xr + ${xCol}]`;
  const yAt = `${names.y}[_yr + j]`;
  const rows = (body: string[]) => [
    'for (let i = _i0; i < _i1; i++) {',
    `const _xr = ${xRow} + _xq;`,
    `const _yr = _yb + i * ${Wo};`,
    ...body,
    '}',
  ];
  if (inst.op === 'conv') lines.push(`const _w = ${names.w}[_wi];`, ...rows([`for (let j = _j0; j < _j1; j++) ${yAt} += _w * ${xAt};`]));
  else if (inst.op === 'conv_input_grad') lines.push(`const _w = ${names.w}[_wi];`, ...rows([`for (let j = _j0; j < _j1; j++) ${xAt} += _w * ${yAt};`]));
  else lines.push('let _acc = 0;', ...rows([`for (let j = _j0; j < _j1; j++) _acc += ${xAt} * ${yAt};`]), `${names.w}[_wi] += _acc;`);
  lines.push('}', '}', '}');
  // a conv group's epilogue (bias, activation) runs over the output plane of (n, m) just made
  if (epilogue) {
    const at = (o: string, i: string, j: string) => epilogue.element(`${out}[${o}]`, o, i, j);
    lines.push(...epilogue.plane());
    if (epilogue.rowsCols) lines.push(`for (let i = 0; i < ${Ho}; i++) {`, `for (let j = 0; j < ${Wo}; j++) {`, `const _o = _yb + i * ${Wo} + j;`, ...at('_o', 'i', 'j'), '}', '}');
    else lines.push(`for (let _o = _yb; _o < _yb + ${Ho * Wo}; _o++) {`, ...at('_o', 'i', 'j'), '}');
  }
  lines.push('}', '}');
  return lines;
}

/**
 * A convolution without padding, where every tap of every output lies in the input: one loop
 * nest over (image n, output channel m, row i, TJ columns j…j+TJ−1), each output's sum in a
 * register over (input channel k, tap p, q), one weight load shared by the TJ columns; the
 * group's epilogue then runs on the sums, and each output is written once.
 */
function directConv(c: Ctx, inst: InstOf<'conv'>, epilogue?: ConvEpilogue): string[] {
  const { N, C, H, W, O, Cg, kH, kW, Ho, Wo, sh, sw, dh, dw, Og } = convDims(c, inst);
  const a = inst.attrs;
  const [xv, wv] = inst.args as [ValueId, ValueId];
  const [x, w, y] = [c.arr(xv), c.arr(wv), c.arr(inst.result)];
  const group = a.groups === 1 ? '' : ` + ${Og === 1 ? 'm' : `Math.floor(m / ${Og})`} * ${Cg}`;
  const tile = (t: number, j0: string): string[] => {
    const acc = [...Array(t).keys()].map((u) => `_c${u}`);
    const col = (u: number) => (u === 0 ? j0 : `${j0} + ${u}`);
    const element = (u: number): string[] => {
      const o = u === 0 ? '_o' : `_o + ${u}`;
      const lines = [`${y}[${o}] = ${acc[u]};`, ...(epilogue?.element(acc[u]!, o, 'i', col(u)) ?? [])];
      return lines.some((l) => l.startsWith('const ')) ? ['{', ...lines, '}'] : lines;
    };
    return [
      `let ${acc.map((v) => `${v} = 0`).join(', ')};`,
      `for (let k = 0; k < ${Cg}; k++) {`,
      `for (let p = 0; p < ${kH}; p++) {`,
      `const _xr = _xi + k * ${H * W} + ${lin(0, dh * W, 'p')} + ${lin(0, sw, j0)};`,
      `const _wr = _wb + (k * ${kH} + p) * ${kW};`,
      `for (let q = 0; q < ${kW}; q++) {`,
      `const _w = ${w}[_wr + q];`,
      `const _xq = _xr + ${lin(0, dw, 'q')};`,
      ...acc.map((v, u) => `${v} += _w * ${x}[_xq${u ? ` + ${u * sw}` : ''}];`),
      '}',
      '}',
      '}',
      `const _o = _yb + i * ${Wo} + ${j0};`,
      ...acc.flatMap((_v, u) => element(u)),
    ];
  };
  const full = Wo - (Wo % TJ);
  return [
    `for (let n = 0; n < ${N}; n++) {`,
    `for (let m = 0; m < ${O}; m++) {`,
    `const _yb = (n * ${O} + m) * ${Ho * Wo};`,
    `const _wb = m * ${Cg * kH * kW};`,
    ...(epilogue?.plane() ?? []),
    `for (let i = 0; i < ${Ho}; i++) {`,
    `const _xi = (n * ${C}${group}) * ${H * W} + ${lin(0, sh * W, 'i')};`,
    ...(full > 0 ? [`for (let j = 0; j < ${full}; j += ${TJ}) {`, ...tile(TJ, 'j'), '}'] : []),
    ...(full < Wo ? [`for (let j = ${full}; j < ${Wo}; j++) {`, ...tile(1, 'j'), '}'] : []),
    '}',
    '}',
    '}',
  ];
}

/**
 * The gradients of a convolution without padding, a kernel row at a time: per (image n, output
 * channel m, input channel k, kernel row p), one load of dy[n, m, i, j] serves the row's kW taps.
 * The weight gradient sums each tap in a register (in the order of the general nest: the same
 * values); the input gradient adds w[m, k, p, q] · dy into the kW inputs the taps read, the row's
 * weights held in registers.
 */
function rowTaps(c: Ctx, inst: InstOf<'conv_weight_grad' | 'conv_input_grad'>): string[] {
  const { N, C, H, W, O, Cg, kH, kW, Ho, Wo, sh, sw, dh, dw, Og } = convDims(c, inst);
  const a = inst.attrs;
  const out = c.arr(inst.result);
  const { x, w, y: dy } = convOperands(inst.op, inst.args.map((v) => c.arr(v)), out);
  const chan = a.groups === 1 ? 'k' : `${Og === 1 ? 'm' : `Math.floor(m / ${Og})`} * ${Cg} + k`;
  const taps = [...Array(kW).keys()];
  const xAt = (q: number) => `${x}[_xj${q ? ` + ${q * dw}` : ''}]`;
  const wAt = (q: number) => `${w}[_wi${q ? ` + ${q}` : ''}]`;
  const grad = inst.op === 'conv_weight_grad';
  return [
    `${out}.fill(0);`,
    `for (let n = 0; n < ${N}; n++) {`,
    `for (let m = 0; m < ${O}; m++) {`,
    `const _yb = (n * ${O} + m) * ${Ho * Wo};`,
    `for (let k = 0; k < ${Cg}; k++) {`,
    `for (let p = 0; p < ${kH}; p++) {`,
    `const _xb = ((n * ${C} + ${chan}) * ${H} + ${lin(0, dh, 'p')}) * ${W};`,
    `const _wi = ((m * ${Cg} + k) * ${kH} + p) * ${kW};`,
    grad ? `let ${taps.map((q) => `_a${q} = 0`).join(', ')};` : `const ${taps.map((q) => `_w${q} = ${wAt(q)}`).join(', ')};`,
    `for (let i = 0; i < ${Ho}; i++) {`,
    `const _xr = _xb + ${lin(0, sh * W, 'i')};`,
    `const _yr = _yb + i * ${Wo};`,
    `for (let j = 0; j < ${Wo}; j++) {`,
    `const _d = ${dy}[_yr + j];`,
    `const _xj = _xr + ${lin(0, sw, 'j')};`,
    ...taps.map((q) => (grad ? `_a${q} += ${xAt(q)} * _d;` : `${xAt(q)} += _w${q} * _d;`)),
    '}',
    '}',
    ...(grad ? taps.map((q) => `${wAt(q)} += _a${q};`) : []),
    '}',
    '}',
    '}',
    '}',
  ];
}

type PoolOp = 'max_pool' | 'max_pool_grad' | 'max_pool_pick' | 'avg_pool' | 'avg_pool_grad';

/** The loops of a pooling op: one window per output position, its taps clipped to the input. */
export function poolLoops(c: Ctx, inst: InstOf<PoolOp>): string[] {
  const a = inst.attrs;
  const isGrad = inst.op === 'max_pool_grad' || inst.op === 'avg_pool_grad';
  const xv = inst.op === 'avg_pool_grad' ? inst.result : inst.args[0]!;
  const yv = isGrad ? inst.args[inst.args.length - 1]! : inst.result;
  const [N, C, H, W] = c.g.type(xv).shape as [string | number, number, number, number];
  const [, , Ho, Wo] = c.g.type(yv).shape as [unknown, number, number, number];
  const [kh, kw] = a.kernel as [number, number];
  const [sh, sw] = a.stride as [number, number];
  const [ph, pw] = a.padding as [number, number];
  const out = c.arr(inst.result);
  const x = inst.op === 'avg_pool_grad' ? out : c.arr(inst.args[0]!);
  const y = isGrad ? c.arr(yv) : out;
  const lines: string[] = [];
  if (isGrad) lines.push(`${out}.fill(0);`);
  lines.push(
    `for (let n = 0; n < ${sizeText(N)} * ${C}; n++) {`,
    'for (let i = 0; i < ' + Ho + '; i++) {',
    `const _h0 = Math.max(0, ${lin(-ph, sh, 'i')});`,
    `const _h1 = Math.min(${H}, ${lin(kh - ph, sh, 'i')});`,
    `for (let j = 0; j < ${Wo}; j++) {`,
    `const _w0 = Math.max(0, ${lin(-pw, sw, 'j')});`,
    `const _w1 = Math.min(${W}, ${lin(kw - pw, sw, 'j')});`,
    `const _yi = (n * ${Ho} + i) * ${Wo} + j;`,
  );
  const taps = (body: string[]) => [
    'for (let p = _h0; p < _h1; p++) {',
    `for (let q = n * ${H * W} + p * ${W} + _w0; q < n * ${H * W} + p * ${W} + _w1; q++) {`,
    ...body,
    '}',
    '}',
  ];
  if (inst.op === 'max_pool' || inst.op === 'max_pool_grad' || inst.op === 'max_pool_pick') {
    // the first maximum of the window in row-major order (a later tie does not replace it)
    lines.push('let _best = -Infinity;', 'let _at = -1;', ...taps([`if (_at < 0 || ${x}[q] > _best) {`, `_best = ${x}[q];`, '_at = q;', '}']));
    const picked = inst.op === 'max_pool_pick' ? `${y}[_yi] = ${c.arr(inst.args[1]!)}[_at];` : `${y}[_yi] = _best;`;
    lines.push(inst.op === 'max_pool_grad' ? `${out}[_at] += ${y}[_yi];` : picked);
  } else if (inst.op === 'avg_pool') {
    lines.push('let _acc = 0;', ...taps([`_acc += ${x}[q];`]), `${y}[_yi] = _acc / ${kh * kw};`);
  } else {
    lines.push(`const _g = ${y}[_yi] / ${kh * kw};`, ...taps([`${x}[q] += _g;`]));
  }
  lines.push('}', '}', '}');
  return lines;
}
