// The flat TypeScript target: the module around the units. Its pieces live in codegen/ts/: the
// per-op snippet table (snippets.ts), the emitter of one fused group (emitter.ts) and the matmul
// kernels (matmul.ts). The backward statements are the forward statements in reverse; each loop
// nest carries a comment with its IR lines, the formula it computes and the DSL line it comes from.

import type { Graph } from '../ir/graph.js';
import type { Plan, Unit } from '../ir/memplan.js';
import { allUnits, valueName } from '../ir/memplan.js';
import type { Size } from '../ir/dims.js';
import { isStatic, numelSize, size, sizeEq, sizeText, symbols } from '../ir/dims.js';
import type { InstOf, Value, ValueId } from '../ir/types.js';
import * as E from './expr.js';
import type { ModuleInfo } from './module.js';
import type { Typed } from './module.js';
import { checkDecl, checkFiniteDecl, codeNames, commentText, gradEntries, header, initDecl, key, lrCheck, member, moduleGraphs, ownMember, params, specDecl, typeDecls, typedAs, uniformConst } from './module.js';
import type { Backend } from './ts/snippets.js';
import { Emitter } from './ts/emitter.js';
import { hasModes, initBuffersDecl, isBufferOutput, optionsDecl, stateCode } from './modes.js';
import { Kernels, matmulKernel } from './ts/matmul.js';
import { trainDecls, trainedParams } from './ts/train.js';

export type { Backend, Ctx, UnitEmitter } from './ts/snippets.js';

// ---------------------------------------------------------------------------------------------
// The module

const ARRAY = { f32: 'Float32Array', i32: 'Int32Array' } as const;

/**
 * The flat module: TypeScript (unformatted; the build formats it with prettier), or with
 * `typed` false the same code as plain JavaScript.
 */
export function emitTs(m: ModuleInfo, typed = true, backend?: Backend): string {
  const t = typedAs(typed);
  const plan = m.plan;
  const codeName = codeNames(m);
  const kernels = new Kernels(codeName);
  for (const u of allUnits(plan))
    if (u.insts[0]!.op === 'matmul') kernels.count(matmulKernel(new Emitter(m, plan, codeName, kernels, t, true), u).body.join('\n'));
  const fwd = new Emitter(m, plan, codeName, kernels, t, false, backend);
  const fwdCode = plan.units.forward.flatMap((u) => fwd.unit(u));
  for (const o of m.fwd.outputs) fwd.arrOf(m.fwd, o.value);
  const bwd = new Emitter(m, plan, codeName, kernels, t, false, backend);
  const bwdCode = plan.units.backward.flatMap((u) => bwd.unit(u));
  const grads = gradientArrays(m, bwd, codeName);
  const arena = arenaOf(m, kernels, backend);
  const p = moduleParts({ m, t, typed, backend, codeName, kernels, fwd, bwd, fwdCode, bwdCode, ...grads, ...arena });
  const lines = arena.syms.length ? symbolicModule(p) : staticModule(p);
  return lines.join('\n') + '\n';
}

/**
 * The gradients' arrays: a gradient that is a forward value, a constant or shared with another
 * param is copied into a fresh array (declared in extraDecls, filled by gradCopies).
 */
function gradientArrays(m: ModuleInfo, bwd: Emitter, codeName: (base: string) => string): { gradArrays: Map<string, string>; gradCopies: string[]; extraDecls: string[] } {
  const plan = m.plan;
  const gradArrays = new Map<string, string>();
  const gradCopies: string[] = [];
  const extraDecls: string[] = [];
  const ownedBy = new Set<string>();
  for (const o of m.bwd.outputs) {
    const name = valueName(m.bwd, o.value);
    const s = plan.storage.get(name);
    const own = s?.kind === 'buffer' && m.bwd.def(o.value).op !== 'fwd' && !ownedBy.has(name);
    if (own) {
      ownedBy.add(name);
      gradArrays.set(o.name, `buf.${name}`);
      continue;
    }
    const copy = codeName(`d${name}_copy`);
    extraDecls.push(`const ${copy} = new Float32Array(${sizeText(numelSize(m.bwd.type(o.value).shape))}); // the gradient of ${commentText(o.name)}`);
    const c = uniformConst(plan, name);
    gradCopies.push(c !== undefined ? `${copy}.fill(${E.num(c).code});` : `${copy}.set(${bwd.arrOf(m.bwd, o.value)});`);
    gradArrays.set(o.name, copy);
  }
  return { gradArrays, gradCopies, extraDecls };
}

const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;

/** The arena: the arrays of the memory plan, and the entries of the object that names them by value. */
function arenaOf(m: ModuleInfo, kernels: Kernels, backend: Backend | undefined): { syms: string[]; bytesText: string; staticBytes: number; arrays: string[]; entries: string[] } {
  const plan = m.plan;
  // the arena: every array the steps touch, by value name
  const syms = symbols(m.fwd);
  const staticBytes = plan.buffers.reduce((s, b) => s + (isStatic(b.size) ? b.size.coef * 4 : 0), 0);
  const perSym = new Map<string, number>();
  for (const b of plan.buffers) if (!isStatic(b.size)) perSym.set(b.size.syms.join(' × '), (perSym.get(b.size.syms.join(' × ')) ?? 0) + b.size.coef * 4);
  const bytesText = [kib(staticBytes), ...[...perSym].map(([d, n]) => `${kib(n)} × ${d}`)].join(' + ');
  const values = new Map<string, Value>();
  for (const g of [m.bwd, m.fwd, ...plan.bodies.keys()]) for (const inst of g.insts) values.set(g.value(inst.result).name, g.value(inst.result));
  /**
   * A value's array: its buffer, or an exact-length view of a larger shared one (made once, or
   * when a call changes the sizes of symbolic dimensions: a symbolic buffer may be larger).
   */
  const view = (name: string) => {
    const id = plan.bufferOf.get(name)!;
    const v = values.get(name)!;
    const n = numelSize(v.type.shape);
    const b = plan.buffers[id]!.size;
    return isStatic(b) && sizeEq(n, b) ? `buffers[${id}]` : `buffers[${id}].subarray(0, ${sizeText(n)})`;
  };
  const describe = (name: string) => {
    const v = values.get(name)!;
    return `${v.type.dtype}[${v.type.shape.join(',')}]`;
  };
  // the arena: the arrays of the memory plan, and an object that names them by value; arrays
  // whose size has symbols start empty and grow with the largest sizes a call brings
  const arrays = plan.buffers.map((b) => `new ${ARRAY[b.dtype]}(${isStatic(b.size) ? b.size.coef : 0})`);
  const entries: string[] = [];
  for (const g of moduleGraphs(m))
    for (const inst of g.insts) {
      const name = g.value(inst.result).name;
      const s = plan.storage.get(name);
      if (!s || inst.op === 'fwd') continue;
      const root = (n: string): string => {
        const t = plan.storage.get(n)!;
        return t.kind === 'alias' ? root(t.of) : n;
      };
      if (s.kind === 'buffer' || s.kind === 'param' || s.kind === 'input' || s.kind === 'state')
        entries.push(`${key(name)}: ${view(name)}, // ${describe(name)}${s.kind === 'param' || s.kind === 'input' ? ` (${s.kind} ${commentText(s.key)})` : s.kind === 'state' ? ` (${commentText(s.key)})` : ''}`);
      else if (s.kind === 'const' && uniformConst(plan, name) !== undefined && !kernels.referenced.has(name))
        entries.push(`// ${key(name)}: ${describe(name)}, every element ${E.num(uniformConst(plan, name)!).code} (the code reads the literal)`);
      else if (s.kind === 'const') entries.push(`${key(name)}: ${ARRAY[g.type(inst.result).dtype]}.from([${s.data.map((x) => E.num(x).code).join(', ')}]),`);
      else if (s.kind === 'alias') {
        const r = root(name);
        const rs = plan.storage.get(r)!;
        if (rs.kind === 'buffer' || rs.kind === 'param' || rs.kind === 'input' || rs.kind === 'state') entries.push(`${key(name)}: ${view(r)}, // a view of ${s.of}`);
      }
    }
  const accSize = maxSizeCode(allUnits(plan).map((u) => accNeed(u)));
  const accSlots = Math.max(0, ...allUnits(plan).map((u) => accCount(u)));
  for (let k = 0; k < accSlots; k++) entries.push(`_acc${k}: new Float64Array(${accSize}), // accumulators of column sums`);
  entries.push(...(backend?.entries ?? []));
  return { syms, bytesText, staticBytes, arrays, entries };
}

/** What emitTs has made, for the pieces that write the module. */
interface ModuleInputs {
  readonly m: ModuleInfo;
  readonly t: Typed;
  readonly typed: boolean;
  readonly backend: Backend | undefined;
  readonly codeName: (base: string) => string;
  readonly kernels: Kernels;
  readonly fwd: Emitter;
  readonly bwd: Emitter;
  readonly fwdCode: string[];
  readonly bwdCode: string[];
  readonly gradArrays: Map<string, string>;
  readonly gradCopies: string[];
  readonly extraDecls: string[];
  readonly syms: string[];
  readonly bytesText: string;
  readonly staticBytes: number;
  readonly arrays: string[];
  readonly entries: string[];
}

type ModuleParts = ReturnType<typeof moduleParts>;

/** The functions and declarations both kinds of module have (stage, the passes, outputs, the header). */
function moduleParts(x: ModuleInputs) {
  const { m, t, typed, backend, codeName, kernels, fwd, bwd, fwdCode, bwdCode, gradArrays, gradCopies, extraDecls, syms, bytesText, staticBytes } = x;
  const plan = m.plan;
  // a forward-only model (no loss) has forward and no valueAndGrad
  const lossOut = m.fwd.outputs.find((o) => o.name === 'loss');
  const lossSlot = codeName('lossSlot');
  const lossName = lossOut ? valueName(m.fwd, lossOut.value) : '';
  const withGrad = <T>(lines: readonly T[]): T[] => (lossOut ? [...lines] : []);
  const destructure = (used: Set<string>) => {
    const names = [...used].filter((n) => n !== '');
    return names.length ? [`const { ${names.map((n) => key(n)).join(', ')} } = buf;`] : [];
  };
  const staged = [...params(m.fwd).map((p) => ['params', p] as const), ...inputsOf(m).map((p) => ['inputs', p] as const)];
  const stageFn = [
    '/** Copies the arguments into the arena, so that every loop reads arrays of known length. */',
    `function stage(params${t(': Params')}, inputs${t(': Inputs')})${t(': void')} {`,
    ...staged.map(([obj, e]) => `buf.${stagedName(m, obj, e.name)}.set(${member(obj, e.name)});`),
    // --check-finite: a NaN that comes in is named as the argument, not as the first value made from it
    ...(m.checkFinite ? staged : [])
      .filter(([obj, e]) => m.fwd.type(m.fwd.byName(stagedName(m, obj, e.name))!.id).dtype === 'f32')
      .map(([obj, e]) => `checkFinite(${JSON.stringify(`${obj === 'params' ? 'param' : 'input'} '${e.name}'`)}, buf.${stagedName(m, obj, e.name)}, 'passed in');`),
    '}',
  ];
  const forwardFn = [`function forwardPass()${t(': void')} {`, ...destructure(fwd.used), ...fwdCode, '}'];
  const backwardFn = [`function backwardPass()${t(': void')} {`, ...destructure(bwd.used), ...bwdCode, ...gradCopies, `  ${lossSlot}[0] = buf.${lossName}[0];`, '}'];
  const outputsDecl = [
    syms.length
      ? '// Outputs are returned through getters: scalars (storing a number into an object allocates in V8) and arrays (the arena is laid out anew when sizes change).'
      : '// Scalars are returned through getters: storing a number into an object allocates in V8.',
    `const outputsObj${t(': Outputs')} = {`,
    ...m.fwd.outputs.filter((o) => !isBufferOutput(m.fwd, o.name)).map((o) => {
      const e = outputExpr(m.fwd, o.value, plan);
      return m.fwd.type(o.value).shape.length === 0 || syms.length ? `get ${key(o.name)}() { return ${e}; },` : `${key(o.name)}: ${e},`;
    }),
    '};',
  ];
  const resultDecl = [
    `const ${lossSlot} = new Float64Array(1); // the loss of the last valueAndGrad`,
    `const result${t(': { loss: number; grads: Grads }')} = { get loss() { return ${lossSlot}[0]; }, grads: { ${gradEntries(m)
      .map((p) => `${key(p.name)}: ${gradArrays.get(p.name)}`)
      .join(', ')} } };`,
  ];
  const common = [
    ...header(m, backend?.what ?? 'Flat forward and backward code: no imports, no tape; the backward pass is the forward pass in reverse.'),
    '',
    ...specDecl(m, t),
    '',
    ...(typed ? typeDecls(m) : []),
    '',
    `// Memory plan: ${plan.buffers.length} arrays, ${syms.length ? bytesText : kib(staticBytes)}, shared by values whose lifetimes do not overlap`,
    `// (see ${m.name}${lossOut ? '.grad' : ''}.ir). Values that live only inside one loop nest are locals.`,
  ];
  /** The header, the arena (declared by `arena`), params' initialisation and the argument checks. */
  const preamble = (arena: string[]) => [...common, ...arena, ...extraDecls, '', ...initDecl(m, t), ...initBuffersDecl(m, t), '', ...checkDecl(m, t), ...optionsDecl(m, t), ''];
  // the module's own state (mode flag, buffers, dropout masks) around the forward pass
  const modes = hasModes(m.fwd);
  const state = stateCode(m, t, (v) => `buf.${v}`);
  const optionsParam = modes ? `options${t(': Options')} = noOptions` : `options${t('?: Options')}`;
  const checkOptionsCall = (train: boolean) => (modes ? [`  checkOptions(options, ${train}, false);`] : []);
  return { ...x, kernels, plan, lossOut, lossSlot, lossName, withGrad, destructure, stageFn, forwardFn, backwardFn, outputsDecl, resultDecl, common, preamble, modes, state, optionsParam, checkOptionsCall };
}

/** A module with symbolic sizes: the steps are closures over one call's sizes, made anew when they change. */
function symbolicModule(p: ModuleParts): string[] {
  const { m, t, plan, entries, syms, arrays, kernels, stageFn, forwardFn, backwardFn, outputsDecl, resultDecl, withGrad, preamble, lossOut, modes, state, optionsParam, checkOptionsCall, gradArrays, lossSlot, codeName, backend } = p;
  return [
    ...preamble([`const buffers${t(`: [${plan.buffers.map((b) => ARRAY[b.dtype]).join(', ')}]`)} = [${arrays.join(', ')}];`]),
    ...symbolicArena(m, plan, entries, t),
    ...checkFiniteDecl(m, t),
    ...outputsDecl,
    '',
    ...withGrad(resultDecl),
    '',
    '/**',
    ' * The steps for the sizes of one call. The arena and the sizes are constants of these closures,',
    ' * which V8 then compiles as it compiles a static build; a call with other sizes makes a new set.',
    ' */',
    `function steps(buf${t(': ReturnType<typeof arena>')}, ${syms.map((d) => `${d}${t(': number')}`).join(', ')}) {`,
    ...stageFn,
    ...kernels.code,
    '',
    ...forwardFn,
    '',
    ...withGrad(backwardFn),
    '',
    `  return { stage, forwardPass${lossOut ? ', backwardPass' : ''} };`,
    '}',
    '',
    `let current${t(': ReturnType<typeof steps> | undefined')};`,
    '',
    '/** Checks the arguments, binds the sizes, lays the arena out when they change and stages the arguments. */',
    `function prepare(params${t(': Params')}, inputs${t(': Inputs')})${t(': ReturnType<typeof steps>')} {`,
    '  checkArgs(params, inputs);',
    `  if (current === undefined || ${syms.map((d) => `dims.${d} !== laidOut.${d}`).join(' || ')}) {`,
    '    layout();',
    `    current = steps(buf, ${syms.map((d) => `dims.${d}`).join(', ')});`,
    '  }',
    '  current.stage(params, inputs);',
    '  return current;',
    '}',
    '',
    '/** Runs the model forward; scalar outputs are numbers. */',
    `export function forward(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': Outputs')} {`,
    ...(modes ? ['  checkOptions(options, false, false);', '  const s = prepare(params, inputs);', ...state.set, '  s.forwardPass();', ...state.save] : ['  prepare(params, inputs).forwardPass();']),
    '  return outputsObj;',
    '}',
    '',
    ...withGrad([
      '/** The loss and the gradient of the loss with respect to every param. */',
      `export function valueAndGrad(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': { loss: number; grads: Grads }')} {`,
      ...checkOptionsCall(true),
      '  const s = prepare(params, inputs);',
      ...state.set,
      '  s.forwardPass();',
      ...state.save,
      '  s.backwardPass();',
      '  return result;',
      '}',
    ]),
    ...updateDecl(m, t),
    ...(m.optimizer ? trainDecls(m, t, { gradArray: (p) => gradArrays.get(p)!, loss: `${lossSlot}[0]`, codeName, backend: backend?.train }) : []),
  ];
}

/** A module of static sizes (or a backend's instance): the arena and the steps at module level. */
function staticModule(p: ModuleParts): string[] {
  const { m, t, entries, arrays, kernels, stageFn, forwardFn, outputsDecl, resultDecl, withGrad, common, extraDecls, modes, state, optionsParam, checkOptionsCall, gradArrays, gradCopies, lossSlot, lossName, codeName, backend, bwd, bwdCode, destructure } = p;
  return instanced(backend?.instance, common, [...initDecl(m, t), ...initBuffersDecl(m, t), '', ...checkDecl(m, t)], [
    ...(backend ? backend.buffersDecl(arrays, t) : [`const buffers = [${arrays.join(', ')}]${t(' as const')};`]),
    'const buf = {',
    ...entries,
    '};',
    ...extraDecls,
    '',
  ], [
    // the options' state (the dropout seed, the call's mode) is the instance's own
    ...optionsDecl(m, t),
    '',
    ...checkFiniteDecl(m, t),
    ...stageFn,
    ...kernels.code,
    '',
    ...forwardFn,
    '',
    ...outputsDecl,
    '',
    '/** Runs the model forward; scalar outputs are numbers. */',
    `export function forward(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': Outputs')} {`,
    '  checkArgs(params, inputs);',
    ...(modes ? ['  checkOptions(options, false, false);'] : []),
    '  stage(params, inputs);',
    ...state.set,
    '  forwardPass();',
    ...state.save,
    '  return outputsObj;',
    '}',
    '',
    ...withGrad([
      ...resultDecl,
      '',
      '/** The loss and the gradient of the loss with respect to every param. */',
      `export function valueAndGrad(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': { loss: number; grads: Grads }')} {`,
      '  checkArgs(params, inputs);',
      ...checkOptionsCall(true),
      '  stage(params, inputs);',
      ...state.set,
      '  forwardPass();',
      ...state.save,
      ...destructure(bwd.used),
      ...bwdCode,
      ...gradCopies,
      `  ${lossSlot}[0] = buf.${lossName}[0];`,
      '  return result;',
      '}',
    ]),
    ...updateDecl(m, t),
    ...(m.optimizer ? trainDecls(m, t, { gradArray: (p) => gradArrays.get(p)!, loss: `${lossSlot}[0]`, codeName, backend: backend?.train }) : []),
  ]);
}

/**
 * A static module's lines: the header, the arena, params' initialisation and checks, then the
 * steps; with a backend's `instance`, the arena and the steps become the body of its function
 * (exported functions returned from it instead), after the checks.
 */
function instanced(inst: Backend['instance'], common: readonly string[], checks: readonly string[], arena: readonly string[], steps: readonly string[]): string[] {
  if (!inst) return [...common, ...arena, ...checks, ...steps];
  const names: string[] = [];
  const hoisted: string[] = [];
  const body: string[] = [];
  for (const l of [...arena, ...steps]) {
    const fn = /^export function (\w+)/.exec(l);
    if (fn) {
      names.push(fn[1]!);
      body.push(l.slice('export '.length));
    } else if (/^export (const|interface|type) /.test(l)) hoisted.push(l); // one-line declarations (hyper, OptState): module level
    else body.push(l);
  }
  // the module-level names (functions, constants) that the body's text mentions
  const outer = [...common, ...inst.top, ...hoisted, ...checks].flatMap((l) => {
    const d = /^(?:export )?(?:async )?(?:function\*? |const |let )(\w+)/.exec(l);
    return d ? [d[1]!] : [];
  });
  const text = body.join('\n');
  const scope = [...new Set(outer)].filter((n) => new RegExp(`\\b${n}\\b`).test(text));
  return [...common, ...inst.top, '', ...(hoisted.length ? [...hoisted, ''] : []), ...checks, '', ...inst.open, ...body, ...inst.close(names, scope)];
}

/** --optimizer sgd: `update(params, grads, lr)`, every param minus lr times its gradient, in place. */
function updateDecl(m: ModuleInfo, t: Typed): string[] {
  if (m.optimizer?.name !== 'sgd') return [];
  const ps = trainedParams(m);
  const check = (kind: string, obj: string) => (p: (typeof ps)[number]) =>
    `expectArray('${kind}', ${JSON.stringify(p.name)}, ${ownMember(obj, p.name)}, Float32Array, ${sizeText(numelSize(p.shape))}, '${p.dtype}[${p.shape.join(',')}]');`;
  return [
    '',
    '/** One step of stochastic gradient descent, in place: each param minus lr times its gradient (--optimizer sgd). */',
    `export function update(params${t(': Params')}, grads${t(': Grads')}, lr${t(': number')})${t(': void')} {`,
    ...lrCheck(m.name, '  '),
    ...ps.map(check('param', 'params')),
    ...ps.map(check('gradient', 'grads')),
    ...ps.map((p) => {
      const n = sizeText(numelSize(p.shape));
      return `{ const p = ${member('params', p.name)}, g = ${member('grads', p.name)}; for (let i = 0; i < ${n}; i++) p[i]${t('!')} -= lr * g[i]${t('!')}; }`;
    }),
    '}',
  ];
}

/** `const { B } = dims;` for the symbolic dimensions that code uses. */
function sizesDecl(syms: readonly string[], code: readonly string[]): string[] {
  const text = code.filter((l) => !l.trimStart().startsWith('//')).join('\n');
  const used = syms.filter((d) => new RegExp(`\\b${d}\\b`).test(text));
  return used.length ? [`const { ${used.join(', ')} } = dims;`] : [];
}

/**
 * The arena of a model with symbolic dimensions: `arena()` names the arrays for the sizes in
 * `dims`, and `layout()`, called when a call brings other sizes, first grows the arrays whose
 * size has symbols (never shrinking them, so that equal or smaller sizes allocate nothing).
 */
function symbolicArena(m: ModuleInfo, plan: Plan, entries: readonly string[], t: Typed): string[] {
  const syms = symbols(m.fwd);
  const grow = plan.buffers.flatMap((b) => {
    if (isStatic(b.size)) return [];
    const n = sizeText(b.size);
    return [`if (buffers[${b.id}].length < ${n}) buffers[${b.id}] = new ${ARRAY[b.dtype]}(${n});`];
  });
  return [
    '/** The arrays of the arena, named by value, for the sizes in `dims`. */',
    `function arena() {`,
    ...sizesDecl(syms, entries),
    '  return {',
    ...entries,
    '  };',
    '}',
    '/** The arena as last laid out: what the outputs and the gradients are read from. */',
    'let buf = arena();',
    `const laidOut = { ${syms.map((d) => `${d}: 0`).join(', ')} };`,
    '',
    '/** Lays the arena out for the sizes of this call, growing the arrays that are too small. */',
    `function layout()${t(': void')} {`,
    `  const { ${syms.join(', ')} } = dims;`,
    ...grow,
    ...syms.map((d) => `laidOut.${d} = ${d};`),
    '  buf = arena();',
    '}',
    '',
  ];
}

/** Code for the largest of some sizes: a number, or `Math.max(64, B)` when some have symbols. */
function maxSizeCode(sizes: readonly Size[]): string {
  const byKey = new Map<string, Size>();
  for (const s of sizes) {
    const k = s.syms.join(',');
    if (!byKey.has(k) || byKey.get(k)!.coef < s.coef) byKey.set(k, s);
  }
  const parts = [...byKey.values()].filter((s) => s.coef > 0);
  if (parts.length === 0) return '0';
  return parts.length === 1 ? sizeText(parts[0]!) : `Math.max(${parts.map(sizeText).join(', ')})`;
}

function inputsOf(m: ModuleInfo) {
  return m.fwd.insts.flatMap((i) => (i.op === 'input' ? [{ name: i.attrs.name }] : []));
}

/** The arena name (value name) of a staged param or input. */
function stagedName(m: ModuleInfo, obj: 'params' | 'inputs', dslName: string): string {
  const op = obj === 'params' ? 'param' : 'input';
  const inst = m.fwd.insts.find((i) => i.op === op && i.attrs.name === dslName)!;
  return m.fwd.value(inst.result).name;
}

function outputExpr(g: Graph, v: ValueId, plan: Plan): string {
  const name = valueName(g, v);
  const s = plan.storage.get(name);
  if (s?.kind === 'literal') return E.num(s.value).code;
  return g.type(v).shape.length === 0 ? `buf.${name}[0]` : `buf.${name}`;
}

/** The accumulator length a reduce unit over leading axes needs. */
function accNeed(u: Unit): Size {
  const r = u.insts.find((i) => i.op === 'sum' || i.op === 'max') as InstOf<'sum'> | undefined;
  if (!r) return size(0);
  const shape = u.graph.type(r.args[0]!).shape;
  return numelSize(shape.filter((_d, i) => !r.attrs.axes.includes(i)));
}

function accCount(u: Unit): number {
  return u.insts.filter((i) => i.op === 'sum' || i.op === 'max').length;
}
