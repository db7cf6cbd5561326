// The routines of the kernel form in WGSL: the matrix product and the convolutions (implicit
// GEMM) through the tiled product of gemm.ts (tiles per shape, register blocking, vec4 loads,
// the epilogue fused into the store), the pools as direct loops (one invocation per result),
// softmax rows, cross-entropy, and the index ops (scatter_add as a gather: WGSL has no f32
// atomics, so each result sums the sources whose index names its row). A routine this file has
// no WGSL for is a CompileError naming it and the target.

import type { Dim, Size } from '../../ir/dims.js';
import { mulSize, numelSize, size } from '../../ir/dims.js';
import { CompileError } from '../../ir/errors.js';
import type { Routine, View } from '../kernel/form.js';
import { offsetTerms } from '../kernel/form.js';
import type { Shader } from './wgsl.js';
import type { Gemm, Operand } from './gemm.js';
import { gemmShader, mult4 } from './gemm.js';
import { Bindings, PRELUDE, WG, entry1d, f32, indexOf, js, statements, sz, unflatten } from './wgsl.js';
import { convOperands } from '../../ir/conv.js';

type DtypeOf = (array: string) => 'f32' | 'i32';

function shader(notes: readonly string[], b: Bindings, head: readonly string[], body: readonly string[], threads: Size): Shader {
  const wgsl = [...notes.map((l) => `// ${l}`), ...b.decls(), PRELUDE, ...head, ...body.map((l) => `  ${l}`), '}'].join('\n');
  return { wgsl, arrays: b.arrays(), threads: js(threads) };
}

const ceilDiv = (n: Dim | Size, d: number) => `Math.ceil((${js(n)}) / ${d})`;

/** The matrix product: C[t, i, j] = Σ_p A[t, i, p] · B[t, p, j] (A, B transposed by the view's flags), tiled (gemm.ts). */
function matmul(r: Extract<Routine, { op: 'matmul' }>, dtypeOf: DtypeOf): Shader {
  const b = new Bindings(dtypeOf);
  const [A, B] = r.inputs as [View, View];
  const out = r.output.shape;
  const M = out[out.length - 2]!;
  const N = out[out.length - 1]!;
  const { transA, transB } = r.attrs;
  const K = transA ? A.shape[A.shape.length - 2]! : A.shape[A.shape.length - 1]!;
  const batch = numelSize(out.slice(0, -2));
  // an operand's element at (row-or-column x, term k) through the view's strides (a batched one
  // steps by its batch stride along t); its last axis is K (A untransposed, B transposed) or x
  const operand = (v: View, kLast: boolean, extX: Dim): Operand => {
    const rk = v.shape.length;
    const [s0, s1] = [v.strides[rk - 2]!, v.strides[rk - 1]!];
    const strides = [s0, s1, ...(rk > 2 ? [v.strides[rk - 3]!] : [])];
    const unit = s1.coef === 1 && s1.syms.length === 0;
    const vec4 = unit && mult4(s0) && strides.slice(2).every(mult4) && mult4(v.offset) && mult4(kLast ? K : extX);
    return {
      arg: v.arg,
      // neighbouring invocations load along the contiguous axis
      alongK: kLast,
      vec4,
      at: (x, k) => ({ index: indexOf(strides, v.offset, (d) => (kLast ? [x, k, 't'] : [k, x, 't'])[d]!) }),
    };
  };
  const cOut = r.output.arg;
  const { head, body, TM, TN } = gemmShader(
    {
      M,
      N,
      K,
      // C at (t·M + gi)·N + gj; an epilogue's stores unit-stride along gj, the rest multiples of 4
      rowsOf4: mult4(N) && epilogueRowsOf4(r, (s) => s.length === out.length && unitAt(s, s.length - 1) && s.slice(0, -1).every(mult4)),
      A: operand(A, !transA, M),
      B: operand(B, transB, N),
      store: (val) => [
        `${b.at(cOut, `(t * ${sz(M)} + gi) * ${sz(N)} + gj`, true)} = ${val};`,
        ...epilogueAt(r, b, val, [...unflatten('t', out.slice(0, -2), out.slice(0, -2).map((_d, d) => `x${d}`)), `let x${out.length - 2} = gi;`, `let x${out.length - 1} = gj;`]),
      ],
    },
    b,
  );
  const notes = [...r.notes, ...(r.epilogue?.notes.length ? ['its epilogue, at each result:', ...r.epilogue.notes] : [])];
  const wgsl = [...notes.map((l) => `// ${l}`), ...b.decls(), PRELUDE, ...head, ...body.map((l) => `  ${l}`), '}'].join('\n');
  return { wgsl, arrays: b.arrays(), groups: [ceilDiv(N, TN), ceilDiv(M, TM), js(batch)] };
}

/**
 * A routine's epilogue kernel (bias, activation) at one result of the tile, the product in `val`,
 * the result's coordinates x0, x1, ... set by `coords`: fused into the routine's store, so the
 * product is not read back by another shader.
 */
function epilogueAt(r: Routine, b: Bindings, val: string, coords: readonly string[]): string[] {
  const k = r.epilogue;
  if (!k) return [];
  const given = new Map(k.nodes.flatMap((nd, i) => (nd.op === 'load' && nd.access.arg === r.output.arg ? [[i, val] as const] : [])));
  return [...coords, ...statements(k, k.nodes.map(() => true), k.stores, b, given)];
}

const unitAt = (s: readonly Size[], d: number) => s[d]!.coef === 1 && s[d]!.syms.length === 0;

/** Every store of the routine's epilogue (if any) has strides that `ok` accepts and an offset that is a multiple of 4. */
function epilogueRowsOf4(r: Routine, ok: (strides: readonly Size[]) => boolean): boolean {
  return (r.epilogue?.stores ?? []).every((st) => offsetTerms(st.access.offset).every(mult4) && ok(st.access.strides));
}

/** Softmax or log-softmax along an axis: an invocation per row (max, Σ exp, normalise). */
function softmax(r: Extract<Routine, { op: 'softmax' | 'log_softmax' }>, dtypeOf: DtypeOf): Shader {
  const b = new Bindings(dtypeOf);
  const shape = r.inputs[0]!.shape;
  const axis = r.attrs.axis;
  const len = sz(shape[axis]!);
  const inner = numelSize(shape.slice(axis + 1));
  const outer = numelSize(shape.slice(0, axis));
  const x = b.arr(r.inputs[0]!.arg);
  const y = b.arr(r.output.arg, true);
  const at = (j: string) => `base + ${j} * ${sz(inner)}`;
  const body = [
    `let base = (gi / ${sz(inner)}) * ${sz(mulSize(shape[axis]!, inner))} + gi % ${sz(inner)};`,
    `var mx = ${f32(-Infinity)};`,
    `for (var j = 0; j < ${len}; j++) { mx = max(mx, ${x}[${at('j')}]); }`,
    'var s = 0.0;',
    `for (var j = 0; j < ${len}; j++) { s += exp(${x}[${at('j')}] - mx); }`,
    r.op === 'log_softmax'
      ? `for (var j = 0; j < ${len}; j++) { ${y}[${at('j')}] = ${x}[${at('j')}] - mx - log(s); }`
      : `for (var j = 0; j < ${len}; j++) { ${y}[${at('j')}] = exp(${x}[${at('j')}] - mx) / s; }`,
  ];
  const n = mulSize(outer, inner);
  return shader(r.notes, b, entry1d(sz(n)), body, n);
}

/** Cross-entropy of logits [n, c] and targets [n]: −mean log softmax at the targets, one invocation. */
function xent(r: Extract<Routine, { op: 'xent' }>, dtypeOf: DtypeOf): Shader {
  const b = new Bindings(dtypeOf);
  const [n, c] = r.inputs[0]!.shape as [Dim, Dim];
  const x = b.arr(r.inputs[0]!.arg);
  const t = b.arr(r.inputs[1]!.arg);
  const y = b.arr(r.output.arg, true);
  const body = [
    'var total = 0.0;',
    'var part = 0.0;',
    `for (var i = 0; i < ${sz(n)}; i++) {`,
    `  let base = i * ${sz(c)};`,
    `  var mx = ${f32(-Infinity)};`,
    `  for (var j = 0; j < ${sz(c)}; j++) { mx = max(mx, ${x}[base + j]); }`,
    '  var s = 0.0;',
    `  for (var j = 0; j < ${sz(c)}; j++) { s += exp(${x}[base + j] - mx); }`,
    `  part += ${x}[base + ${t}[i]] - mx - log(s);`,
    '  if (i % 64 == 63) { total += part; part = 0.0; }',
    '}',
    `${y}[0] = -(total + part) / f32(${sz(n)});`,
  ];
  return shader(r.notes, b, entry1d('1'), body, size(1));
}

/** gather, scatter_add, pick: an invocation per result. */
function indexOp(r: Extract<Routine, { op: 'gather' | 'scatter_add' | 'pick' }>, dtypeOf: DtypeOf): Shader {
  const b = new Bindings(dtypeOf);
  const y = b.arr(r.output.arg, true);
  const total = numelSize(r.output.shape);
  let body: string[];
  if (r.op === 'gather') {
    const [table, idx] = r.inputs as [View, View];
    const row = numelSize(table.shape.slice(1));
    body = [`let i = gi / ${sz(row)};`, `let j = gi % ${sz(row)};`, `${y}[gi] = ${b.arr(table.arg)}[${b.arr(idx.arg)}[i] * ${sz(row)} + j];`];
  } else if (r.op === 'scatter_add') {
    const [idx, src] = r.inputs as [View, View];
    const row = numelSize(r.output.shape.slice(1));
    const n = numelSize(idx.shape);
    const iv = b.arr(idx.arg);
    const sv = b.arr(src.arg);
    body = [
      `let rr = gi / ${sz(row)};`,
      `let j = gi % ${sz(row)};`,
      'var total = 0.0;',
      'var part = 0.0;',
      `for (var i = 0; i < ${sz(n)}; i++) {`,
      `  if (${iv}[i] == rr) { part += ${sv}[i * ${sz(row)} + j]; }`,
      '  if (i % 64 == 63) { total += part; part = 0.0; }',
      '}',
      `${y}[gi] = total + part;`,
    ];
  } else {
    const [x, idx] = r.inputs as [View, View];
    const c = x.shape[1]!;
    body = [`${y}[gi] = ${b.arr(x.arg)}[gi * ${sz(c)} + ${b.arr(idx.arg)}[gi]];`];
  }
  return shader(r.notes, b, entry1d(sz(total)), body, total);
}

/** 1 at the first maximum of x over `axes` for each point of the other axes, else 0. */
function argmaxMask(r: Extract<Routine, { op: 'argmax_mask' }>, dtypeOf: DtypeOf): Shader {
  const b = new Bindings(dtypeOf);
  const x = r.inputs[0]!;
  const shape = x.shape;
  const axes = r.attrs.axes;
  const kept = shape.map((_d, i) => i).filter((i) => !axes.includes(i));
  const keptDims = kept.map((d) => shape[d]!);
  const redDims = axes.map((d) => shape[d]!);
  const R = numelSize(redDims);
  const xv = b.arr(x.arg);
  const yv = b.arr(r.output.arg, true);
  const st = r.output.strides;
  const idx = indexOf(x.strides, x.offset, (d) => `x${d}`);
  const yidx = indexOf(st, size(0), (d) => `x${d}`);
  const body = [
    ...unflatten('gi', keptDims, kept.map((d) => `x${d}`)),
    `var best = ${f32(-Infinity)};`,
    'var at = -1;',
    `for (var ri = 0; ri < ${sz(R)}; ri++) {`,
    ...unflatten('ri', redDims, axes.map((d) => `x${d}`)).map((l) => `  ${l}`),
    `  let v = ${xv}[${idx}];`,
    '  if (at < 0 || v > best) { best = v; at = ri; }',
    '}',
    `for (var ri = 0; ri < ${sz(R)}; ri++) {`,
    ...unflatten('ri', redDims, axes.map((d) => `x${d}`)).map((l) => `  ${l}`),
    `  ${yv}[${yidx}] = select(0.0, 1.0, ri == at);`,
    '}',
  ];
  const n = numelSize(keptDims);
  return shader(r.notes, b, entry1d(sz(n)), body, n);
}

/**
 * argmax / argmin along an axis (an invocation per line: the first extremum, a NaN wins and ends
 * the line, as torch) and cumsum (an invocation per line: a running sum, from the end with
 * `reverse`, added in blocks of 64 terms that join the total, as the reductions).
 */
function lineOp(r: Extract<Routine, { op: 'argmax' | 'argmin' | 'cumsum' }>, dtypeOf: DtypeOf): Shader {
  const b = new Bindings(dtypeOf);
  const x = r.inputs[0]!;
  const shape = x.shape;
  const axis = r.attrs.axis;
  const kept = shape.map((_d, i) => i).filter((i) => i !== axis);
  const keptDims = kept.map((d) => shape[d]!);
  const len = sz(shape[axis]!);
  const xv = b.arr(x.arg);
  const yv = b.arr(r.output.arg, true);
  const at = indexOf(x.strides, x.offset, (d) => `x${d}`);
  const lines = [...unflatten('gi', keptDims, kept.map((d) => `x${d}`))];
  if (r.op === 'cumsum') {
    // the result is dense with x's shape: its index at x_axis = j
    const dense = indexOf(denseStrides(shape), size(0), (d) => `x${d}`);
    lines.push(
      'var total = 0.0;',
      'var part = 0.0;',
      `for (var k = 0; k < ${len}; k++) {`,
      `  let x${axis} = ${r.attrs.reverse ? `${len} - 1 - k` : 'k'};`,
      `  part += ${xv}[${at}];`,
      `  ${yv}[${dense}] = total + part;`,
      '  if (k % 64 == 63) { total += part; part = 0.0; }',
      '}',
    );
  } else {
    const better = r.op === 'argmax' ? '>' : '<';
    lines.push(
      `var x${axis} = 0;`,
      `var best = ${xv}[${at}];`,
      'var found = 0;',
      `for (var j = 1; j < ${len} && !gc_isnan(best); j++) {`,
      `  x${axis} = j;`,
      `  let v = ${xv}[${at}];`,
      `  if (gc_isnan(v) || v ${better} best) { best = v; found = j; }`,
      '}',
      `${yv}[gi] = found;`,
    );
  }
  const n = numelSize(keptDims);
  return shader(r.notes, b, entry1d(sz(n)), lines, n);
}

/** Row-major strides of a shape. */
function denseStrides(shape: readonly Dim[]): Size[] {
  const out: Size[] = [];
  let s: Size = size(1);
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = s;
    s = mulSize(s, shape[d]!);
  }
  return out;
}

/**
 * The convolutions as implicit GEMM in the tiled product (gemm.ts), a batch of the product per
 * group, the gathered operand's element computed from its coordinates (no im2col buffer):
 * - conv: y[n, g·Og + o, i, j] = Σ_(c,p,q) W[g·Og + o, (c, p, q)] · X[n, g·Cg + c, i·s − pad + p·d, ...]:
 *   M = Og, N = batch·Ho·Wo, K = Cg·kH·kW (W as vec4 where K is a multiple of 4);
 * - conv_input_grad: dx[n, g·Cg + c, h, w] = Σ_(o,p,q) W[g·Og + o, c, p, q] · dy[n, g·Og + o, (h + pad − p·d)/s, ...]
 *   (the taps that land on the stride): M = Cg, N = batch·H·W, K = Og·kH·kW;
 * - conv_weight_grad: dW[g·Og + o, (c, p, q)] = Σ_(n,i,j) dy[n, g·Og + o, i, j] · X[n, g·Cg + c, i·s − pad + p·d, ...]:
 *   M = Og, N = Cg·kH·kW, K = batch·Ho·Wo (dy as vec4 where Ho·Wo is a multiple of 4).
 */
function conv(r: Extract<Routine, { op: 'conv' | 'conv_input_grad' | 'conv_weight_grad' }>, dtypeOf: DtypeOf): Shader {
  const b = new Bindings(dtypeOf);
  const a = r.attrs;
  const [s0, s1] = a.stride as [number, number];
  const [p0, p1] = a.padding as [number, number];
  const [d0, d1] = a.dilation as [number, number];
  const G = a.groups;
  const y = r.output.arg;
  // X [batch, C, H, W], W [O, Cg, kH, kW], dy [batch, O, Ho, Wo]
  const { x: xShape, w: wShape, y: yShape } = convOperands(r.op, r.inputs.map((v) => v.shape), r.output.shape);
  const [NB, C, H, W] = xShape as [Dim, Dim, Dim, Dim];
  const [O, Cg, kH, kW] = wShape as [number, number, number, number];
  const [, , Ho, Wo] = yShape as [Dim, Dim, Dim, Dim];
  const Og = O / G;
  const taps = Cg * kH * kW;
  const khw = kH * kW;
  const hw = mulSize(H, W);
  const howo = mulSize(Ho, Wo);
  // the input pixel of output pixel (i, j) at tap (p, q)
  const pixel = (i: string, j: string, p: string, q: string) => [`let h_ = ${i} * ${s0} - ${p0} + ${p} * ${d0};`, `let w_ = ${j} * ${s1} - ${p1} + ${q} * ${d1};`];
  const inImage = `h_ >= 0 && h_ < ${sz(H)} && w_ >= 0 && w_ < ${sz(W)}`;
  const xAt = (n: string, c: string) => `((${n} * ${sz(C)} + t * ${Cg} + ${c}) * ${sz(H)} + h_) * ${sz(W)} + w_`;
  const tap = (k: string, c: string) => [`let ${c} = ${k} / ${khw};`, `let p_ = (${k} % ${khw}) / ${kW};`, `let q_ = ${k} % ${kW};`];
  let g: Gemm;
  if (r.op === 'conv') {
    const [X, Wt] = r.inputs as [View, View];
    g = {
      M: Og,
      N: mulSize(NB, howo),
      K: taps,
      A: { arg: Wt.arg, alongK: true, vec4: taps % 4 === 0, at: (x, k) => ({ index: `(t * ${Og} + ${x}) * ${taps} + ${k}` }) },
      B: {
        arg: X.arg,
        alongK: false,
        vec4: false,
        at: (x, k) => ({
          lines: [`let n_ = ${x} / ${sz(howo)};`, `let i_ = (${x} % ${sz(howo)}) / ${sz(Wo)};`, `let j_ = ${x} % ${sz(Wo)};`, ...tap(k, 'c_'), ...pixel('i_', 'j_', 'p_', 'q_')],
          index: xAt('n_', 'c_'),
          valid: inImage,
        }),
      },
      // y at (n·O + t·Og + gi)·Ho·Wo + i·Wo + j; an epilogue's stores at the same strides along i,
      // j, multiples of 4 along n and the channel (4 adjacent gj lie in one image where Ho·Wo is a multiple of 4)
      rowsOf4: mult4(howo) && epilogueRowsOf4(r, (s) => s.length === 4 && unitAt(s, 3) && sz(s[2]!) === sz(Wo) && mult4(s[0]!) && mult4(s[1]!)),
      // the bias and activation after it fused into the store (x0..x3: n, channel, i, j)
      store: (val) => [
        `${b.at(y, `(gj / ${sz(howo)} * ${O} + t * ${Og} + gi) * ${sz(howo)} + gj % ${sz(howo)}`, true)} = ${val};`,
        ...epilogueAt(r, b, val, [`let x0 = gj / ${sz(howo)};`, `let x1 = t * ${Og} + gi;`, `let x2 = (gj % ${sz(howo)}) / ${sz(Wo)};`, `let x3 = gj % ${sz(Wo)};`]),
      ],
    };
  } else if (r.op === 'conv_input_grad') {
    const [DY, Wt] = r.inputs as [View, View];
    // the output pixel whose tap (p, q) lands on (h, w): on the stride, inside the output
    const on = (v: string, s: number, ext: Dim) => (s === 1 ? `${v} >= 0 && ${v} < ${sz(ext)}` : `${v} >= 0 && ${v} % ${s} == 0 && ${v} / ${s} < ${sz(ext)}`);
    g = {
      M: Cg,
      N: mulSize(NB, hw),
      K: Og * khw,
      A: {
        arg: Wt.arg,
        alongK: true,
        vec4: false,
        at: (x, k) => ({ index: `((t * ${Og} + ${k} / ${khw}) * ${Cg} + ${x}) * ${khw} + ${k} % ${khw}` }),
      },
      B: {
        arg: DY.arg,
        alongK: false,
        vec4: false,
        at: (x, k) => ({
          lines: [
            `let n_ = ${x} / ${sz(hw)};`,
            `let hi = (${x} % ${sz(hw)}) / ${sz(W)} + ${p0} - ((${k} % ${khw}) / ${kW}) * ${d0};`,
            `let wi = ${x} % ${sz(W)} + ${p1} - (${k} % ${kW}) * ${d1};`,
          ],
          index: `((n_ * ${O} + t * ${Og} + ${k} / ${khw}) * ${sz(Ho)} + hi / ${s0}) * ${sz(Wo)} + wi / ${s1}`,
          valid: `${on('hi', s0, Ho)} && ${on('wi', s1, Wo)}`,
        }),
      },
      store: (val) => [`${b.at(y, `(gj / ${sz(hw)} * ${sz(C)} + t * ${Cg} + gi) * ${sz(hw)} + gj % ${sz(hw)}`, true)} = ${val};`],
    };
  } else {
    const [X, DY] = r.inputs as [View, View];
    g = {
      M: Og,
      N: taps,
      K: mulSize(NB, howo),
      A: {
        arg: DY.arg,
        alongK: true,
        vec4: mult4(howo),
        at: (x, k) => ({ index: `(${k} / ${sz(howo)} * ${O} + t * ${Og} + ${x}) * ${sz(howo)} + ${k} % ${sz(howo)}` }),
      },
      B: {
        arg: X.arg,
        alongK: true,
        vec4: false,
        at: (x, k) => ({
          lines: [`let n_ = ${k} / ${sz(howo)};`, `let i_ = (${k} % ${sz(howo)}) / ${sz(Wo)};`, `let j_ = ${k} % ${sz(Wo)};`, ...tap(x, 'c_'), ...pixel('i_', 'j_', 'p_', 'q_')],
          index: xAt('n_', 'c_'),
          valid: inImage,
        }),
      },
      // dW at (t·Og + gi)·taps + gj
      rowsOf4: taps % 4 === 0,
      store: (val) => [`${b.at(y, `(t * ${Og} + gi) * ${taps} + gj`, true)} = ${val};`],
    };
  }
  const { head, body, TM, TN } = gemmShader(g, b);
  const notes = [...r.notes, 'as implicit GEMM in the tiled product (a batch per group)', ...(r.op === 'conv' && r.epilogue?.notes.length ? ['its epilogue, at each result:', ...r.epilogue.notes] : [])];
  const wgsl = [...notes.map((l) => `// ${l}`), ...b.decls(), PRELUDE, ...head, ...body.map((l) => `  ${l}`), '}'].join('\n');
  return { wgsl, arrays: b.arrays(), groups: [ceilDiv(g.N, TN), ceilDiv(g.M, TM), String(G)] };
}

/** The pools: an invocation per result (the gradients: per input element, over the windows holding it). */
function pool(r: Extract<Routine, { op: 'max_pool' | 'max_pool_grad' | 'max_pool_pick' | 'avg_pool' | 'avg_pool_grad' }>, dtypeOf: DtypeOf): Shader {
  const b = new Bindings(dtypeOf);
  const [kh, kw] = r.attrs.kernel as [number, number];
  const [s0, s1] = r.attrs.stride as [number, number];
  const [p0, p1] = r.attrs.padding as [number, number];
  const y = b.arr(r.output.arg, true);
  const out = r.output.shape;
  const n = numelSize(out);
  // the input's shape and the windows' (result) shape
  const xs = r.op === 'avg_pool_grad' ? out : r.inputs[0]!.shape;
  const ys = r.op === 'max_pool_grad' || r.op === 'avg_pool_grad' ? r.inputs[r.inputs.length - 1]!.shape : out;
  const [, , H, W] = xs;
  const [, , Ho, Wo] = ys;
  const xv = r.op === 'avg_pool_grad' ? '' : b.arr(r.inputs[0]!.arg);
  // the first maximum of window (i, j) of plane nc, as an index into x
  const argmax = (i: string, j: string) => [
    `var best = ${f32(-Infinity)};`,
    'var at = -1;',
    `for (var p = 0; p < ${kh}; p++) {`,
    `  let h = ${i} * ${s0} - ${p0} + p;`,
    `  if (h < 0 || h >= ${sz(H!)}) { continue; }`,
    `  for (var q = 0; q < ${kw}; q++) {`,
    `    let w = ${j} * ${s1} - ${p1} + q;`,
    `    if (w < 0 || w >= ${sz(W!)}) { continue; }`,
    `    let k = (nc * ${sz(H!)} + h) * ${sz(W!)} + w;`,
    `    if (at < 0 || ${xv}[k] > best) { best = ${xv}[k]; at = k; }`,
    '  }',
    '}',
  ];
  let lines: string[];
  if (r.op === 'max_pool' || r.op === 'max_pool_pick' || r.op === 'avg_pool') {
    const src = r.op === 'max_pool_pick' ? b.arr(r.inputs[1]!.arg) : xv;
    lines = [
      `let j = gi % ${sz(Wo!)};`,
      `let i = (gi / ${sz(Wo!)}) % ${sz(Ho!)};`,
      `let nc = gi / (${sz(Wo!)} * ${sz(Ho!)});`,
      ...(r.op === 'avg_pool'
        ? [
            'var s = 0.0;',
            `for (var p = 0; p < ${kh}; p++) {`,
            `  let h = i * ${s0} - ${p0} + p;`,
            `  if (h < 0 || h >= ${sz(H!)}) { continue; }`,
            `  for (var q = 0; q < ${kw}; q++) {`,
            `    let w = j * ${s1} - ${p1} + q;`,
            `    if (w >= 0 && w < ${sz(W!)}) { s += ${xv}[(nc * ${sz(H!)} + h) * ${sz(W!)} + w]; }`,
            '  }',
            '}',
            `${y}[gi] = s / ${f32(kh * kw)};`,
          ]
        : [...argmax('i', 'j'), `${y}[gi] = ${src}[at];`]),
    ];
  } else {
    // dx[k]: Σ over the windows (i, j) that hold k (and, for max, take it as their maximum)
    const dy = b.arr(r.inputs[r.inputs.length - 1]!.arg);
    lines = [
      `let w0 = gi % ${sz(W!)};`,
      `let h0 = (gi / ${sz(W!)}) % ${sz(H!)};`,
      `let nc = gi / (${sz(W!)} * ${sz(H!)});`,
      'var s = 0.0;',
      `for (var p = 0; p < ${kh}; p++) {`,
      `  let hi = h0 + ${p0} - p;`,
      `  if (hi < 0 || hi % ${s0} != 0 || hi / ${s0} >= ${sz(Ho!)}) { continue; }`,
      `  let i = hi / ${s0};`,
      `  for (var q = 0; q < ${kw}; q++) {`,
      `    let wi = w0 + ${p1} - q;`,
      `    if (wi < 0 || wi % ${s1} != 0 || wi / ${s1} >= ${sz(Wo!)}) { continue; }`,
      `    let j = wi / ${s1};`,
      `    let d = ${dy}[(nc * ${sz(Ho!)} + i) * ${sz(Wo!)} + j];`,
      ...(r.op === 'avg_pool_grad' ? [`    s += d / ${f32(kh * kw)};`] : [...argmax('i', 'j').map((l) => `    ${l}`), '    if (at == gi) { s += d; }']),
      '  }',
      '}',
      `${y}[gi] = s;`,
    ];
  }
  return shader(r.notes, b, entry1d(sz(n)), lines, n);
}

/** A routine as one shader (a matmul's and a conv's epilogue are fused into its store: FUSED; any other's launched after it). */
export const FUSED: ReadonlySet<string> = new Set(['matmul', 'conv']);

export function renderRoutine(r: Routine, dtypeOf: DtypeOf): Shader {
  switch (r.op) {
    case 'matmul':
      return matmul(r, dtypeOf);
    case 'softmax':
    case 'log_softmax':
      return softmax(r, dtypeOf);
    case 'xent':
      return xent(r, dtypeOf);
    case 'gather':
    case 'scatter_add':
    case 'pick':
      return indexOp(r, dtypeOf);
    case 'argmax_mask':
      return argmaxMask(r, dtypeOf);
    case 'argmax':
    case 'argmin':
    case 'cumsum':
      return lineOp(r, dtypeOf);
    case 'conv':
    case 'conv_input_grad':
    case 'conv_weight_grad':
      return conv(r, dtypeOf);
    case 'max_pool':
    case 'max_pool_grad':
    case 'max_pool_pick':
    case 'avg_pool':
    case 'avg_pool_grad':
      return pool(r, dtypeOf);
    default:
      throw new CompileError(`the webgpu target cannot render the routine ${(r as { op: string }).op}`, 'use another target (ts, wasm) for this model');
  }
}

export { WG };
export { tileOf } from './gemm.js';
