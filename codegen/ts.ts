// The flat TypeScript target: one table of small per-op snippets, and the module around them.
// The backward statements are the forward statements in reverse, each with a comment that
// gives its IR line and the DSL line it comes from.

import type { Graph } from '../ir/graph.js';
import type { OpKind } from '../ir/ops.js';
import { strides, broadcastStrides, reducedShape } from '../ir/shape.js';
import type { InstOf, ValueId } from '../ir/types.js';
import { numel } from '../ir/types.js';
import * as E from './expr.js';
import type { Expr } from './expr.js';
import { nest } from './loops.js';
import type { ModuleInfo } from './module.js';
import { checkDecl, header, initDecl, key, member, outputs, params, specDecl, stmtComment, typeDecls } from './module.js';
import { Slots } from './storage.js';

/** What a snippet sees: the graph, and how to name and read values. */
export interface Ctx {
  readonly g: Graph;
  /** Identifier of a value's array. */
  name(v: ValueId): string;
  /** Element `idx` of a value (a literal for scalar constants, `x[0]` for scalars). */
  read(v: ValueId, idx: string): Expr;
}

type Snippet<K extends OpKind> = (c: Ctx, inst: InstOf<K>) => string[];

// ---------------------------------------------------------------------------------------------
// Snippet helpers grouped by shape

/** An elementwise op: one loop over the result, operands indexed through broadcasting. */
function elementwise<K extends OpKind>(f: (...xs: Expr[]) => Expr): Snippet<K> {
  return (c, inst) => {
    const out = c.g.type(inst.result).shape;
    const accesses = [{ strides: strides(out) }, ...inst.args.map((a) => ({ strides: broadcastStrides(c.g.type(a).shape, out) }))];
    return nest(out, accesses, ([o, ...idx]) => [`${c.name(inst.result)}[${o}] = ${f(...inst.args.map((a, k) => c.read(a, idx[k]!))).code};`]);
  };
}

/** Loops over [kept axes..., reduced axes...] of x; `body` gets (x index, result index). */
function reduceNest(c: Ctx, x: ValueId, axes: readonly number[], inner: (xi: string) => string[], before: (oi: string) => string[], after: (oi: string) => string[]): string[] {
  const shape = c.g.type(x).shape;
  const st = strides(shape);
  const kept = shape.map((_d, i) => i).filter((i) => !axes.includes(i));
  const outSt = strides(reducedShape(shape, axes, false));
  const vars = ['i', 'j', 'k', 'l'];
  const redVars = ['p', 'q', 'r', 's'];
  return nest(
    kept.map((a) => shape[a]!),
    [{ strides: kept.map((a) => st[a]!) }, { strides: outSt }],
    ([xo, oi]) => [
      ...before(oi!),
      ...nest(axes.map((a) => shape[a]!), [{ strides: axes.map((a) => st[a]!) }], ([xi]) => inner(xo === '0' ? xi! : xi === '0' ? xo! : `${xo} + ${xi}`), redVars),
      ...after(oi!),
    ],
    vars,
  );
}

function reduction(init: string, step: (acc: string, v: Expr) => string): Snippet<'sum' | 'max'> {
  return (c, inst) => {
    const x = inst.args[0]!;
    return reduceNest(
      c,
      x,
      inst.attrs.axes,
      (xi) => [step('acc', c.read(x, xi))],
      () => [`let acc = ${init};`],
      (oi) => [`${c.name(inst.result)}[${oi}] = acc;`],
    );
  };
}

function matmul(c: Ctx, inst: InstOf<'matmul'>): string[] {
  const [A, B] = inst.args as [ValueId, ValueId];
  const { transA, transB } = inst.attrs;
  const ta = c.g.type(A).shape;
  const tb = c.g.type(B).shape;
  const out = c.g.type(inst.result).shape;
  const M = out.at(-2)!;
  const N = out.at(-1)!;
  const K = transA ? ta.at(-2)! : ta.at(-1)!;
  const batch = numel(out.slice(0, -2));
  const a = c.name(A);
  const b = c.name(B);
  const C = c.name(inst.result);
  const aOff = ta.length > 2 && batch > 1 ? `t * ${M * K} + ` : '';
  const bOff = tb.length > 2 && batch > 1 ? `t * ${K * N} + ` : '';
  const cOff = batch > 1 ? `t * ${M * N} + ` : '';
  const A_ = (i: string, p: string) => `${a}[${aOff}${transA ? `${p} * ${M} + ${i}` : `${i} * ${K} + ${p}`}]`;
  const B_ = (p: string, j: string) => `${b}[${bOff}${transB ? `${j} * ${K} + ${p}` : `${p} * ${N} + ${j}`}]`;
  const C_ = (i: string, j: string) => `${C}[${cOff}${i} * ${N} + ${j}]`;
  let body: string[];
  if (!transB && !transA) {
    // i-k-j: the inner loop walks rows of B and C contiguously
    body = [
      `for (let i = 0; i < ${M}; i++) {`,
      `for (let j = 0; j < ${N}; j++) ${C_('i', 'j')} = 0;`,
      `for (let p = 0; p < ${K}; p++) {`,
      `const aik = ${A_('i', 'p')};`,
      `for (let j = 0; j < ${N}; j++) ${C_('i', 'j')} += aik * ${B_('p', 'j')};`,
      '}',
      '}',
    ];
  } else if (transA && !transB) {
    // k-i-j: rows of Aᵀ are columns of A; accumulate outer products
    body = [
      `for (let i = 0; i < ${M * N}; i++) ${C}[${cOff}i] = 0;`,
      `for (let p = 0; p < ${K}; p++) {`,
      `for (let i = 0; i < ${M}; i++) {`,
      `const aik = ${A_('i', 'p')};`,
      `for (let j = 0; j < ${N}; j++) ${C_('i', 'j')} += aik * ${B_('p', 'j')};`,
      '}',
      '}',
    ];
  } else {
    // dot products along contiguous rows
    body = [
      `for (let i = 0; i < ${M}; i++) {`,
      `for (let j = 0; j < ${N}; j++) {`,
      'let acc = 0;',
      `for (let p = 0; p < ${K}; p++) acc += ${A_('i', 'p')} * ${B_('p', 'j')};`,
      `${C_('i', 'j')} = acc;`,
      '}',
      '}',
    ];
  }
  return batch > 1 ? [`for (let t = 0; t < ${batch}; t++) {`, ...body, '}'] : body;
}

// ---------------------------------------------------------------------------------------------
// The table

const relGt = E.rel('>');
const relGe = E.rel('>=');
const one = E.num(1);
const zero = E.num(0);

function powExpr(a: Expr, b: Expr): Expr {
  switch (E.literal(b)) {
    case 1:
      return a;
    case 2:
      return a.prec >= E.P.ATOM ? E.mul(a, a) : E.pow(a, b);
    case 0.5:
      return E.call('Math.sqrt', a);
    case -0.5:
      return E.div(one, E.call('Math.sqrt', a));
    case -1:
      return E.div(one, a);
    default:
      return E.pow(a, b);
  }
}

const nothing = (): string[] => [];

export const TS_SNIPPETS: { readonly [K in OpKind]: Snippet<K> } = {
  input: nothing,
  param: nothing,
  const: nothing,
  fwd: nothing,
  reshape: nothing,
  stop_gradient: nothing,

  neg: elementwise((a) => E.neg(a!)),
  exp: elementwise((a) => E.call('Math.exp', a!)),
  log: elementwise((a) => E.call('Math.log', a!)),
  tanh: elementwise((a) => E.call('Math.tanh', a!)),
  sigmoid: elementwise((a) => E.div(one, E.add(one, E.call('Math.exp', E.neg(a!))))),
  relu: elementwise((a) => E.cond(relGt(a!, zero), a!, zero)),
  sqrt: elementwise((a) => E.call('Math.sqrt', a!)),
  square: elementwise((a) => powExpr(a!, E.num(2))),
  abs: elementwise((a) => E.call('Math.abs', a!)),
  add: elementwise((a, b) => E.add(a!, b!)),
  sub: elementwise((a, b) => E.sub(a!, b!)),
  mul: elementwise((a, b) => E.mul(a!, b!)),
  div: elementwise((a, b) => E.div(a!, b!)),
  pow: elementwise((a, b) => powExpr(a!, b!)),
  maximum: elementwise((a, b) => E.call('Math.max', a!, b!)),
  minimum: elementwise((a, b) => E.call('Math.min', a!, b!)),
  gt: elementwise((a, b) => E.cond(relGt(a!, b!), one, zero)),
  ge: elementwise((a, b) => E.cond(relGe(a!, b!), one, zero)),
  broadcast: elementwise((a) => a!),

  sum: reduction('0', (acc, v) => `${acc} += ${v.code};`),
  max: reduction('-Infinity', (acc, v) => `if (${E.wrap(v, E.P.REL + 1)} > ${acc}) ${acc} = ${v.code};`),
  argmax_mask: (c, inst) => {
    const x = inst.args[0]!;
    const out = c.name(inst.result);
    return [
      `${out}.fill(0);`,
      ...reduceNest(
        c,
        x,
        inst.attrs.axes,
        (xi) => [`if (at < 0 || ${c.read(x, xi).code} > best) {`, `best = ${c.read(x, xi).code};`, `at = ${xi};`, '}'],
        () => ['let best = -Infinity;', 'let at = -1;'],
        () => [`${out}[at] = 1;`],
      ),
    ];
  },

  matmul,
  transpose: (c, inst) => {
    const x = inst.args[0]!;
    const out = c.g.type(inst.result).shape;
    const st = strides(c.g.type(x).shape);
    return nest(out, [{ strides: strides(out) }, { strides: inst.attrs.perm.map((p) => st[p]!) }], ([o, xi]) => [
      `${c.name(inst.result)}[${o}] = ${c.read(x, xi!).code};`,
    ]);
  },
  concat: (c, inst) => {
    const out = c.g.type(inst.result).shape;
    const ost = strides(out);
    let off = 0;
    return inst.args.flatMap((a) => {
      const s = c.g.type(a).shape;
      const base = off * ost[inst.attrs.axis]!;
      off += s[inst.attrs.axis]!;
      return nest(s, [{ strides: ost, base }, { strides: strides(s) }], ([o, xi]) => [`${c.name(inst.result)}[${o}] = ${c.read(a, xi!).code};`]);
    });
  },
  slice: (c, inst) => {
    const x = inst.args[0]!;
    const st = strides(c.g.type(x).shape);
    const base = inst.attrs.starts.reduce((s, v, d) => s + v * st[d]!, 0);
    return nest(inst.attrs.sizes, [{ strides: strides(inst.attrs.sizes) }, { strides: st, base }], ([o, xi]) => [
      `${c.name(inst.result)}[${o}] = ${c.read(x, xi!).code};`,
    ]);
  },
  pad: (c, inst) => {
    const x = inst.args[0]!;
    const s = c.g.type(x).shape;
    const ost = strides(inst.attrs.shape);
    const base = inst.attrs.starts.reduce((acc, v, d) => acc + v * ost[d]!, 0);
    return [
      `${c.name(inst.result)}.fill(0);`,
      ...nest(s, [{ strides: ost, base }, { strides: strides(s) }], ([o, xi]) => [`${c.name(inst.result)}[${o}] = ${c.read(x, xi!).code};`]),
    ];
  },

  gather: (c, inst) => {
    const [table, idx] = inst.args as [ValueId, ValueId];
    const n = numel(c.g.type(idx).shape);
    const row = numel(c.g.type(table).shape.slice(1));
    const out = c.name(inst.result);
    if (row === 1) return [`for (let i = 0; i < ${n}; i++) ${out}[i] = ${c.name(table)}[${c.read(idx, 'i').code}];`];
    return [
      `for (let i = 0; i < ${n}; i++) {`,
      `const r = ${c.read(idx, 'i').code} * ${row};`,
      `for (let j = 0; j < ${row}; j++) ${out}[i * ${row} + j] = ${c.name(table)}[r + j];`,
      '}',
    ];
  },
  scatter_add: (c, inst) => {
    const [idx, src] = inst.args as [ValueId, ValueId];
    const n = numel(c.g.type(idx).shape);
    const row = numel(inst.attrs.shape.slice(1));
    const out = c.name(inst.result);
    return [
      `${out}.fill(0);`,
      `for (let i = 0; i < ${n}; i++) {`,
      `const r = ${c.read(idx, 'i').code} * ${row};`,
      `for (let j = 0; j < ${row}; j++) ${out}[r + j] += ${c.read(src, `i * ${row} + j`).code};`,
      '}',
    ];
  },
  pick: (c, inst) => {
    const [x, idx] = inst.args as [ValueId, ValueId];
    const [n, cols] = c.g.type(x).shape as [number, number];
    return [`for (let i = 0; i < ${n}; i++) ${c.name(inst.result)}[i] = ${c.name(x)}[i * ${cols} + ${c.read(idx, 'i').code}];`];
  },
  one_hot: (c, inst) => {
    const idx = inst.args[0]!;
    const n = numel(c.g.type(idx).shape);
    const out = c.name(inst.result);
    return [`${out}.fill(0);`, `for (let i = 0; i < ${n}; i++) ${out}[i * ${inst.attrs.depth} + ${c.read(idx, 'i').code}] = 1;`];
  },
};

// ---------------------------------------------------------------------------------------------
// The module

function ctxFor(g: Graph, slots: Slots): Ctx {
  return {
    g,
    name: (v) => g.value(v).name,
    read: (v, idx) => {
      const s = slots.get(g.value(v).name);
      if (s.storage.kind === 'literal') return E.num(s.storage.value);
      return E.atom(`${s.name}[${s.shape.length === 0 ? '0' : idx}]`);
    },
  };
}

function statements(m: ModuleInfo, g: Graph, slots: Slots): string[] {
  const c = ctxFor(g, slots);
  const out: string[] = [];
  for (const inst of g.insts) {
    const code = (TS_SNIPPETS[inst.op] as Snippet<OpKind>)(c, inst as InstOf<OpKind>);
    if (code.length === 0) continue;
    // a statement that declares locals outside any loop gets a block of its own
    const scoped = code.some((l) => /^(let|const) /.test(l)) && !code[0]!.startsWith('for ');
    out.push('', ...stmtComment(m, g, inst), ...(scoped ? ['{', ...code, '}'] : code));
  }
  return out;
}

/** Function-local declarations of the params and inputs (and their aliases) that `used` needs. */
function localDecls(slots: Slots, used: Set<string>): string[] {
  const out: string[] = [];
  const declared = new Set<string>();
  const declare = (name: string) => {
    if (declared.has(name)) return;
    const s = slots.get(name);
    if (s.storage.kind === 'alias') {
      declare(s.storage.of);
      out.push(`const ${name} = ${s.storage.of};`);
    } else if (s.storage.kind === 'param') out.push(`const ${name} = ${member('params', s.storage.key)};`);
    else if (s.storage.kind === 'input') out.push(`const ${name} = ${member('inputs', s.storage.key)};`);
    declared.add(name);
  };
  for (const s of slots.byName.values()) if (used.has(s.name) && slots.isLocal(s.name)) declare(s.name);
  return out;
}

/** Names of values the statements of g mention (operands and results). */
function mentioned(g: Graph): Set<string> {
  const s = new Set<string>();
  for (const inst of g.insts) {
    if (inst.op === 'reshape' || inst.op === 'stop_gradient' || inst.op === 'fwd') continue;
    s.add(g.value(inst.result).name);
    for (const a of inst.args) s.add(g.value(a).name);
  }
  return s;
}

const ARRAY = { f32: 'Float32Array', i32: 'Int32Array' } as const;

function bufferDecls(slots: Slots): string[] {
  const out: string[] = [];
  for (const s of slots.byName.values()) {
    const t = `${s.dtype}[${s.shape.join(',')}]`;
    if (s.storage.kind === 'buffer') out.push(`const ${s.name} = new ${ARRAY[s.dtype]}(${numel(s.shape)}); // ${t}`);
    else if (s.storage.kind === 'const') out.push(`const ${s.name} = ${ARRAY[s.dtype]}.from([${s.storage.data.map((x) => E.num(x).code).join(', ')}]); // ${t}`);
    else if (s.storage.kind === 'alias' && !slots.isLocal(s.name)) out.push(`const ${s.name} = ${s.storage.of}; // ${t}, a view of %${s.storage.of}`);
  }
  return out;
}

/** A value as seen from outside (an output or a gradient): a number for scalars. */
function valueExpr(g: Graph, v: ValueId, slots: Slots): string {
  const s = slots.get(g.value(v).name);
  if (s.storage.kind === 'literal') return E.num(s.storage.value).code;
  return s.shape.length === 0 ? `${s.name}[0]` : s.name;
}

/**
 * Gradients get arrays of their own: a gradient that is a forward value, a constant or shared
 * with another param is copied into a fresh buffer `d<param>`.
 */
function gradSlots(m: ModuleInfo, slots: Slots): { decls: string[]; copies: string[]; names: Map<string, string> } {
  const decls: string[] = [];
  const copies: string[] = [];
  const names = new Map<string, string>();
  const taken = new Set<string>();
  for (const o of m.bwd.outputs) {
    const v = m.bwd.value(o.value);
    const root = slots.byName.get(v.name) ? slots.root(v.name) : undefined;
    const own = root && root.storage.kind === 'buffer' && root.graph === m.bwd && !taken.has(root.name);
    if (own) {
      taken.add(root.name);
      names.set(o.name, v.name);
      continue;
    }
    const name = m.bwd.names.claim(`d${o.name}_grad`);
    const n = numel(v.type.shape);
    decls.push(`const ${name} = new Float32Array(${n}); // gradient of ${commentSafe(o.name)}`);
    const src = slots.byName.get(v.name);
    if (src?.storage.kind === 'literal') copies.push(`${name}.fill(${E.num(src.storage.value).code});`);
    else copies.push(`${name}.set(${v.name});`);
    names.set(o.name, name);
  }
  return { decls, copies, names };
}

function commentSafe(s: string): string {
  return s.replace(/[\r\n\u2028\u2029]+/g, ' ');
}

/** The flat TypeScript module (unformatted; the build formats it with prettier). */
export function emitTs(m: ModuleInfo): string {
  const slots = new Slots([m.fwd, m.bwd]);
  const lossName = m.fwd.outputs.find((o) => o.name === 'loss')!;
  const grads = gradSlots(m, slots);
  const fwdUsed = mentioned(m.fwd);
  for (const o of m.fwd.outputs) fwdUsed.add(m.fwd.value(o.value).name);
  const bwdUsed = mentioned(m.bwd);
  for (const o of m.bwd.outputs) bwdUsed.add(m.bwd.value(o.value).name);
  bwdUsed.add(m.fwd.value(lossName.value).name);
  const outs = outputs(m.fwd);

  const lines: string[] = [
    ...header(m, 'Flat forward and backward code: no imports, no tape; the backward pass is the forward pass in reverse.'),
    '',
    ...specDecl(m),
    '',
    ...typeDecls(m),
    '',
    '// Buffers, allocated once.',
    ...bufferDecls(slots),
    ...grads.decls,
    '',
    ...initDecl(m),
    '',
    ...checkDecl(m),
    '',
    'function forwardPass(params: Params, inputs: Inputs): void {',
    ...localDecls(slots, fwdUsed),
    ...statements(m, m.fwd, slots),
    '}',
    '',
    `const outputsObj: Outputs = { ${outs.map((o) => `${key(o.name)}: ${o.shape.length === 0 ? '0' : 'new ' + ARRAY[o.dtype] + '(0)'}`).join(', ')} };`,
    '',
    '/** Runs the model forward; scalar outputs are numbers. */',
    'export function forward(params: Params, inputs: Inputs): Outputs {',
    '  checkArgs(params, inputs);',
    '  forwardPass(params, inputs);',
    ...localDecls(slots, new Set(m.fwd.outputs.map((o) => m.fwd.value(o.value).name))),
    ...m.fwd.outputs.map((o) => `${member('outputsObj', o.name)} = ${valueExpr(m.fwd, o.value, slots)};`),
    '  return outputsObj;',
    '}',
    '',
    `const result: { loss: number; grads: Grads } = { loss: 0, grads: { ${params(m.fwd)
      .map((p) => `${key(p.name)}: ${grads.names.get(p.name)}`)
      .join(', ')} } };`,
    '',
    '/** The loss and the gradient of the loss with respect to every param. */',
    'export function valueAndGrad(params: Params, inputs: Inputs): { loss: number; grads: Grads } {',
    '  checkArgs(params, inputs);',
    '  forwardPass(params, inputs);',
    ...localDecls(slots, bwdUsed),
    ...statements(m, m.bwd, slots),
    ...grads.copies,
    `  result.loss = ${valueExpr(m.fwd, lossName.value, slots)};`,
    '  return result;',
    '}',
  ];
  return lines.join('\n') + '\n';
}
