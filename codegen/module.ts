// Pieces every generated module shares, whatever the target: the header, `spec`, the exported
// types, deterministic parameter initialisation and the argument checks.

import type { Graph } from '../ir/graph.js';
import { fnv1a } from '../ir/init.js';
import { OPS } from '../ir/ops.js';
import type { Size } from '../ir/dims.js';
import { dimBindings, isSymbol, numelSize, sizeText, staticShape, symbols } from '../ir/dims.js';
import type { DType, Loc, Shape, TensorType, ValueId } from '../ir/types.js';
import { formatType, numel } from '../ir/types.js';
import type { Plan, Unit } from '../ir/memplan.js';
import { printInst } from '../ir/print.js';
import { formula } from './formula.js';
import { isForwardOnly } from '../ir/autodiff.js';
import { isBufferOutput, modeTypes, specBuffers } from './modes.js';
import type { OptimizerSpec } from './optim.js';

/** A property key in an object literal; `__proto__` is computed so that it stays an own key. */
/**
 * The value of a constant whose elements are all equal (a scalar, or a broadcast constant such
 * as the seed of a sum's gradient): the emitters read it as a literal (`1`), never as an array
 * of copies under a name that hides it. Else undefined.
 */
export function uniformConst(plan: Plan, name: string): number | undefined {
  const s = plan.storage.get(name);
  if (s?.kind === 'literal') return s.value;
  if (s?.kind !== 'const' || s.data.length === 0) return undefined;
  const x = s.data[0]!;
  return s.data.every((y) => Object.is(y, x)) ? x : undefined;
}

export function key(name: string): string {
  if (name === '__proto__') return '["__proto__"]';
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

/** The names a plain object inherits (Object.prototype's members: `toString`, `constructor`, `__proto__`, ...). */
const INHERITED: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/**
 * An argument's property as the checks read it: `obj.name`, or for a name every object inherits,
 * its own property only (`params.toString` is otherwise Object.prototype's function, and
 * `params.__proto__` the prototype), undefined when the object has none.
 */
export function ownMember(obj: string, name: string): string {
  return INHERITED.has(name) ? `(Object.hasOwn(${obj}, ${JSON.stringify(name)}) ? ${member(obj, name)} : undefined)` : member(obj, name);
}

/**
 * `describeArg(x)`: a value as an error message shows it, its type named where a number alone
 * would hide it (`the string '0.1'`, `an Array`, `null`).
 */
export function describeArgDecl(t: Typed): string[] {
  return [
    '/** A value as an error message shows it: numbers as they are, anything else with its type. */',
    `function describeArg(x${t(': unknown')})${t(': string')} {`,
    "  if (typeof x === 'number' || typeof x === 'boolean' || x === undefined || x === null) return String(x);",
    "  if (typeof x === 'string') return `the string '${x.length > 40 ? x.slice(0, 40) + '…' : x}'`;",
    "  if (typeof x === 'bigint') return `the bigint ${x}n`;",
    "  if (typeof x === 'symbol') return `the symbol ${String(x)}`;",
    "  if (typeof x === 'function') return 'a function';",
    '  const tag = Object.prototype.toString.call(x).slice(8, -1);',
    '  return `${/^[AEIOU]/.test(tag) ? \'an\' : \'a\'} ${tag}`;',
    '}',
  ];
}

/**
 * The run-time check of a learning rate in `lr` (trainStep's, update's): a finite number ≥ 0, as
 * the CLI's --lr (which also refuses 0, a value a schedule may reach at run time).
 */
export function lrCheck(name: string, indent: string): string[] {
  return [
    `${indent}if (typeof lr !== 'number' || !Number.isFinite(lr)) throw new TypeError(\`${name}: the learning rate must be a finite number, got \${describeArg(lr)}\`);`,
    `${indent}if (lr < 0) throw new RangeError(\`${name}: lr, the learning rate, must be ≥ 0, got \${lr}\`);`,
  ];
}

/** A property access `obj.name` or `obj["name"]`. */
export function member(obj: string, name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? `${obj}.${name}` : `${obj}[${JSON.stringify(name)}]`;
}

/** One-line comment text; never closes or breaks the comment. */
export function commentText(s: string): string {
  return s.replace(/[\r\n\u2028\u2029]+/g, ' ');
}

export interface ModuleInfo {
  readonly name: string;
  /** Emit a check after each step that throws on the first NaN or infinity (--check-finite). */
  readonly checkFinite?: boolean;
  /**
   * --optimizer: emit `hyper`, `initOptState` and `trainStep` (codegen/optim.ts), and with sgd also
   * `update(params, grads, lr)`, one step of plain SGD.
   */
  readonly optimizer?: OptimizerSpec;
  /** The memory plan, which also fixes the units (fused groups) and their order. */
  readonly plan: Plan;
  /** The model file as given on the command line (relative, forward slashes). */
  readonly source: string;
  readonly fwd: Graph;
  readonly bwd: Graph;
  /** Source line text of a location, for comments. */
  readonly sourceLine: (loc: Loc) => string | undefined;
  /** The module of a derived function (--hvp, --jvp), enclosed in the model's module. */
  readonly derivedKind?: 'hvp' | 'jvp';
  /** --hvp, --jvp: the derived functions' own modules (codegen/derived.ts). */
  readonly derived?: { readonly hvp?: ModuleInfo; readonly jvp?: ModuleInfo };
}

/** The graphs whose values a module names: the forward, the backward and the bodies of their loops. */
export function moduleGraphs(m: ModuleInfo): Graph[] {
  return [m.fwd, m.bwd, ...m.plan.bodies.keys()];
}

/**
 * Identifiers for a module's own helpers that no value name, symbolic dimension or `reserved`
 * name can shadow: `base`, else `base_1`, `base_2`, … (each given once).
 */
export function codeNames(m: ModuleInfo, reserved: readonly string[] = []): (base: string) => string {
  const taken = new Set<string>([...reserved, ...symbols(m.fwd)]);
  for (const g of moduleGraphs(m)) for (const inst of g.insts) taken.add(g.value(inst.result).name);
  return (base) => {
    let n = base;
    for (let k = 1; taken.has(n); k++) n = `${base}_${k}`;
    taken.add(n);
    return n;
  };
}

interface Entry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

export function params(g: Graph): Entry[] {
  return g.insts.flatMap((i) => (i.op === 'param' ? [{ name: i.attrs.name, ...g.type(i.result) }] : []));
}

export function inputs(g: Graph): Entry[] {
  return g.insts.flatMap((i) => (i.op === 'input' ? [{ name: i.attrs.name, ...g.type(i.result) }] : []));
}

/** The gradients valueAndGrad returns, keyed as the backward graph's outputs: every param, then inputs with { grad: true }. */
export function gradEntries(m: { fwd: Graph; bwd: Graph }): Entry[] {
  return m.bwd.outputs.map((o) => ({ name: o.name, ...m.bwd.type(o.value) }));
}

/** The model's outputs (not the next running statistics, which are outputs named after their buffers). */
export function outputs(g: Graph): Entry[] {
  return g.outputs.filter((o) => !isBufferOutput(g, o.name)).map((o) => ({ name: o.name, ...g.type(o.value) }));
}

/**
 * The module's first lines. `results`: what the arrays that forward and valueAndGrad return are,
 * 'reused' (the flat and wasm modules' arena) or 'fresh' (the GPU.js module reads them back anew).
 */
export function header(m: ModuleInfo, what: string, results: 'reused' | 'fresh' = 'reused'): string[] {
  return [
    `// generated by graphc from ${commentText(m.source)}, do not edit.`,
    `// ${what}`,
    ...(results === 'reused'
      ? ['// Buffers are allocated once, when the module loads: the arrays that forward and valueAndGrad', '// return are reused (overwritten) by the next call; copy them to keep them.']
      : ['// The kernels are compiled once, in create(); every call of forward and valueAndGrad returns new', '// arrays (read back from the device), which later calls leave as they are.']),
  ];
}

function entries(list: Entry[], frozen: ReadonlySet<string> = new Set()): string {
  const dim = (d: Shape[number]) => (isSymbol(d) ? `'${d}'` : String(d));
  return `{ ${list.map((e) => `${key(e.name)}: { dtype: '${e.dtype}', shape: [${e.shape.map(dim).join(', ')}]${frozen.has(e.name) ? ', trainable: false' : ''} }`).join(', ')} }`;
}

/** Type annotations: kept in the TypeScript module, dropped in the JavaScript one. */
export type Typed = (annotation: string) => string;
export const typedAs = (typed: boolean): Typed => (typed ? (s) => s : () => '');

/**
 * Indents line-based code by its braces (for the JavaScript module, which is not passed through
 * prettier). Braces in `//` comments do not count.
 */
export function indent(code: string): string {
  let depth = 0;
  return code
    .split('\n')
    .map((raw) => {
      const line = raw.trim();
      const code = line.startsWith('//') ? '' : line.replace(/\/\/.*$/, '');
      const opens = (code.match(/[{[(]/g) ?? []).length;
      const closes = (code.match(/[}\])]/g) ?? []).length;
      const lead = /^[}\])]/.test(code) ? 1 : 0;
      const out = line ? '  '.repeat(Math.max(0, depth - lead)) + line : '';
      depth += opens - closes;
      return out;
    })
    .join('\n');
}

export function specDecl(m: ModuleInfo, t: Typed): string[] {
  return [
    'export const spec = {',
    `  name: ${JSON.stringify(m.name)},`,
    `  inputs: ${entries(inputs(m.fwd))},`,
    `  params: ${entries(params(m.fwd), frozenParams(m))},`,
    `  outputs: ${entries(outputs(m.fwd))},`,
    ...specBuffers(m),
    ...(m.optimizer ? [`  optimizer: ${optimizerEntry(m.optimizer)},`] : []),
    `}${t(' as const')};`,
  ];
}

/** The frozen params (g.param's trainable: false): `spec` marks them, as the optimizer state has none. */
function frozenParams(m: ModuleInfo): Set<string> {
  return new Set(m.fwd.insts.flatMap((i) => (i.op === 'param' && i.attrs.frozen ? [i.attrs.name] : [])));
}

/** spec.optimizer: the optimizer and the flags that add state slots, which saveState records and loadState checks. */
function optimizerEntry(o: OptimizerSpec): string {
  const h = o.hyper;
  const flags = [
    ...(h.amsgrad ? ['amsgrad: true'] : []),
    ...(o.name === 'rmsprop' && h.centered ? ['centered: true'] : []),
    ...((o.name === 'sgd' || o.name === 'rmsprop') && h.momentum ? ['momentum: true'] : []),
  ];
  return `{ ${[`name: '${o.name}'`, ...flags].join(', ')} }`;
}

const arrayType = (d: DType) => (d === 'f32' ? 'Float32Array' : 'Int32Array');

export function typeDecls(m: ModuleInfo): string[] {
  const iface = (name: string, list: Entry[], t: (e: Entry) => string) => [
    `export interface ${name} {`,
    ...list.map((e) => `  ${key(e.name)}: ${t(e)}; // ${e.dtype}[${e.shape.join(',')}]`),
    '}',
  ];
  return [
    ...iface('Params', params(m.fwd), (e) => arrayType(e.dtype)),
    ...iface('Inputs', inputs(m.fwd), (e) => arrayType(e.dtype)),
    ...iface('Outputs', outputs(m.fwd), (e) => (e.shape.length === 0 ? 'number' : arrayType(e.dtype))),
    // a forward-only model (no loss) has no gradients
    ...(isForwardOnly(m.fwd) ? [] : iface('Grads', gradEntries(m), (e) => arrayType(e.dtype))),
    ...modeTypes(m),
  ];
}

export function initDecl(m: ModuleInfo, t: Typed): string[] {
  const ps = m.fwd.insts.flatMap((i) => (i.op === 'param' ? [i] : []));
  return [
    '/** Initial values, deterministic per seed: N(0,1), 0, 1 or U(-1,1), times the scale (mulberry32). */',
    `function initArray(n${t(': number')}, init${t(': string')}, scale${t(': number')}, seed${t(': number')}, salt${t(': number')})${t(': Float32Array')} {`,
    '  const a = new Float32Array(n);',
    '  let state = (Math.imul(seed | 0, 0x9e3779b1) ^ salt) >>> 0;',
    `  const next = ()${t(': number')} => {`,
    '    state = (state + 0x6d2b79f5) >>> 0;',
    '    let t = state;',
    '    t = Math.imul(t ^ (t >>> 15), t | 1);',
    '    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);',
    '    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;',
    '  };',
    '  for (let i = 0; i < n; i++) {',
    "    if (init === 'randn') a[i] = scale * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());",
    "    else if (init === 'uniform') a[i] = scale * (2 * next() - 1);",
    "    else a[i] = init === 'ones' ? scale : 0;",
    '  }',
    '  return a;',
    '}',
    '',
    '/** Fresh parameters; the same seed gives the same values. */',
    `export function initParams(seed = 0)${t(': Params')} {`,
    '  return {',
    ...ps.map((p) => {
      const n = numel(staticShape(m.fwd.type(p.result).shape));
      return `    ${key(p.attrs.name)}: initArray(${n}, '${p.attrs.init}', ${p.attrs.scale}, seed, 0x${fnv1a(p.attrs.name).toString(16)}),`;
    }),
    '  };',
    '}',
  ];
}

/** The helper behind --check-finite: throws naming the value and the DSL line that made it (or the argument). */
export function checkFiniteDecl(m: ModuleInfo, t: Typed): string[] {
  if (!m.checkFinite) return [];
  return [
    `function checkFinite(name${t(': string')}, a${t(': Float32Array')}, where${t(': string')})${t(': void')} {`,
    '  for (let i = 0; i < a.length; i++)',
    `    if (!Number.isFinite(a[i]${t('!')}))`,
    '      throw new RangeError(`' + m.name + ': ${a[i]} in ${name}[${i}], ${where} (built with --check-finite)`);',
    '}',
    '',
  ];
}

/** Index inputs and the exclusive bound of their values (from the op table's index operands). */
export function indexBounds(g: Graph): Map<string, number> {
  const bounds = new Map<string, number>();
  const note = (v: ValueId, bound: number) => {
    // follow layout ops back to the input the indices come from
    let inst = g.def(v);
    while (inst.op === 'reshape' || inst.op === 'transpose' || inst.op === 'stop_gradient') inst = g.def(inst.args[0]!);
    if (inst.op === 'concat' || inst.op === 'slice') {
      inst.args.forEach((a) => note(a, bound));
      return;
    }
    if (inst.op !== 'input') return;
    const k = inst.attrs.name;
    bounds.set(k, Math.min(bounds.get(k) ?? Infinity, bound));
  };
  for (const inst of g.insts) {
    const rule = OPS[inst.op].indices as ((t: readonly TensorType[], a: unknown) => readonly { arg: number; bound: number }[]) | undefined;
    for (const { arg, bound } of rule?.(inst.args.map((a) => g.type(a)), inst.attrs) ?? []) note(inst.args[arg]!, bound);
  }
  return bounds;
}

/** A size as code over the bound dimensions (`dims.B * 3`). */
function sizeCode(s: Size): string {
  return sizeText({ coef: s.coef, syms: s.syms.map((d) => `dims.${d}`) });
}

export function checkDecl(m: ModuleInfo, t: Typed): string[] {
  const bounds = indexBounds(m.fwd);
  const binds = dimBindings(m.fwd);
  const syms = symbols(m.fwd);
  const line = (kind: string, obj: string) => (e: Entry) => {
    const t = arrayType(e.dtype);
    const b = bounds.get(e.name);
    const binding = [...binds].find(([, x]) => kind === 'input' && x.input === e.name);
    const call = binding
      ? `bindDim(${JSON.stringify(e.name)}, ${ownMember(obj, e.name)}, ${t}, '${binding[0]}', ${sizeCode(binding[1].per)}, '${formatType(e)}');`
      : `expectArray('${kind}', ${JSON.stringify(e.name)}, ${ownMember(obj, e.name)}, ${t}, ${sizeCode(numelSize(e.shape))}, '${formatType(e)}'${e.shape.some(isSymbol) ? ', true' : ''});`;
    return b === undefined ? [call] : [call, `expectIndices(${JSON.stringify(e.name)}, ${member(obj, e.name)}, ${b});`];
  };
  const typedChecks = [
    '  if (a === undefined || a === null) throw new TypeError(`' + m.name + ': missing ${kind} \'${name}\' (${type_})`);',
    // a typed array of another realm (a vm context, an iframe) is not an instance of this realm's class
    '  if (!(a instanceof type) && !(ArrayBuffer.isView(a) && Object.prototype.toString.call(a) === `[object ${type.name}]`))',
    '    throw new TypeError(`' + m.name + ': ${kind} \'${name}\' must be ${type.name} (${type_}), got ${Object.prototype.toString.call(a).slice(8, -1)}`);',
  ];
  const symbolic = syms.length === 0 ? [] : [
    '/** The sizes of the symbolic dimensions in this call, bound from the lengths of the inputs. */',
    `const dims = { ${syms.map((d) => `${d}: 0`).join(', ')} };`,
    `const boundBy = { ${syms.map((d) => `${d}: ''`).join(', ')} };`,
    '',
    `function bindDim(name${t(': string')}, a${t(': unknown')}, type${t(': Function')}, dim${t(": keyof typeof dims")}, per${t(': number')}, type_${t(': string')})${t(': void')} {`,
    "  expectTyped('input', name, a, type, type_);",
    `  const n = (a${t(' as ArrayLike<number>')}).length;`,
    '  if (n === 0 || n % per !== 0)',
    '    throw new RangeError(`' + m.name + ": input '${name}' has ${n} elements, which is not ${dim} × ${per} (${type_}) for any ${dim} ≥ 1`);",
    '  dims[dim] = n / per;',
    '  boundBy[dim] = name;',
    '}',
    '',
    `function boundDims()${t(': string')} {`,
    "  return Object.entries(dims).map(([d, n]) => `${d} = ${n} from input '${boundBy[d" + t(' as keyof typeof dims') + "]}'`).join(', ');",
    '}',
    '',
  ];
  // the inputs in the order checkArgs checks them: those that bind dimensions first
  const inputOrder = [
    ...[...binds.values()].map((x) => inputs(m.fwd).find((e) => e.name === x.input)!),
    ...inputs(m.fwd).filter((e) => ![...binds.values()].some((x) => x.input === e.name)),
  ];
  const readers = outputsReading(m.fwd);
  const allOutputs = m.fwd.outputs.length;
  const notes = inputOrder.flatMap((e) => {
    const outs = readers.get(e.name) ?? [];
    return outs.length > 0 && outs.length < allOutputs ? [[e.name, outs] as const] : [];
  });
  const known = (list: Entry[]) => `{ ${list.map((e) => `${key(e.name)}: '${formatType(e)}'`).join(', ')} }`;
  const keyChecks = [
    '/**',
    ' * Names the first missing argument; a key of the object that is no argument (a misspelling)',
    ' * is named with it. Keys that are not arguments are otherwise ignored.',
    ' */',
    `function checkKeys(kind${t(': string')}, obj${t(': object')}, known${t(': Record<string, string>')}, note${t('?: Record<string, string>')})${t(': void')} {`,
    `  const given = obj${t(' as Record<string, unknown>')};`,
    // (a name every object inherits, such as toString, counts only as the object's own property)
    '  const missing = Object.keys(known).find((k) => (k in Object.prototype && !Object.hasOwn(given, k)) || given[k] === undefined || given[k] === null);',
    '  if (missing === undefined) return;',
    '  const unknown = Object.keys(given).filter((k) => !Object.hasOwn(known, k));',
    "  const got = unknown.length ? `; the ${kind}s have ${unknown.map((k) => `'${k}'`).join(', ')}, which ${unknown.length > 1 ? 'are' : 'is'} not ${kind === 'input' ? 'an input' : 'a param'} of " + m.name + " (its ${kind}s: ${Object.keys(known).join(', ')})` : '';",
    '  throw new TypeError(`' + m.name + ": missing ${kind} '${missing}' (${known[missing]})${got}${note !== undefined && Object.hasOwn(note, missing) ? note[missing] : ''}`);",
    '}',
    '',
  ];
  const noteObj = `{ ${notes
    .map(([name, outs]) => `${key(name)}: ${JSON.stringify(`; only the output${outs.length > 1 ? 's' : ''} ${outs.map((o) => `'${o}'`).join(', ')} ${outs.length > 1 ? 'depend' : 'depends'} on it, but every call computes all outputs: pass one (zeros will do) when you want only the others`)}`)
    .join(', ')} }`;
  const keyTables = [
    '/** The arguments by name, with their types, and what an input only some outputs read is for. */',
    `const paramKeys${t(': Record<string, string>')} = ${known(params(m.fwd))};`,
    `const inputKeys${t(': Record<string, string>')} = ${known(inputOrder)};`,
    `const inputNotes${t(': Record<string, string>')} = ${notes.length ? noteObj : '{}'};`,
    '',
  ];
  return [
    ...describeArgDecl(t),
    '',
    ...keyTables,
    ...keyChecks,
    ...symbolic,
    ...(syms.length
      ? [
          `function expectTyped(kind${t(': string')}, name${t(': string')}, a${t(': unknown')}, type${t(': Function')}, type_${t(': string')})${t(': void')} {`,
          ...typedChecks,
          '}',
          '',
          '/** `symbolic`: the length depends on bound dimensions, which the message then shows. */',
          `function expectArray(kind${t(': string')}, name${t(': string')}, a${t(': unknown')}, type${t(': Function')}, n${t(': number')}, type_${t(': string')}, symbolic = false)${t(': void')} {`,
          '  expectTyped(kind, name, a, type, type_);',
          `  if ((a${t(' as ArrayLike<number>')}).length !== n)`,
          '    throw new RangeError(`' + m.name + `: \${kind} '\${name}' must have \${n} elements (\${type_}\${symbolic ? \`, with \${boundDims()}\` : ''}), got \${(a${t(' as ArrayLike<number>')}).length}\`);`,
          '}',
        ]
      : [
          `function expectArray(kind${t(': string')}, name${t(': string')}, a${t(': unknown')}, type${t(': Function')}, n${t(': number')}, type_${t(': string')})${t(': void')} {`,
          ...typedChecks,
          `  if ((a${t(' as ArrayLike<number>')}).length !== n)`,
          '    throw new RangeError(`' + m.name + `: \${kind} '\${name}' must have \${n} elements (\${type_}), got \${(a${t(' as ArrayLike<number>')}).length}\`);`,
          '}',
        ]),
    '',
    `function expectIndices(name${t(': string')}, a${t(': Int32Array')}, bound${t(': number')})${t(': void')} {`,
    '  for (let i = 0; i < a.length; i++)',
    `    if (a[i]${t('!')} < 0 || a[i]${t('!')} >= bound)`,
    '      throw new RangeError(`' + m.name + ': input \'${name}\' holds ${a[i]} at [${i}], but indices must be in [0, ${bound})`);',
    '}',
    '',
    '/** Checks every argument before any work is done. */',
    `function checkArgs(params${t(': Params')}, inputs${t(': Inputs')})${t(': void')} {`,
    "  if (typeof params !== 'object' || params === null) throw new TypeError('" + m.name + ": params must be an object');",
    "  if (typeof inputs !== 'object' || inputs === null) throw new TypeError('" + m.name + ": inputs must be an object');",
    // checkKeys runs only when an argument is missing: a call that is fine allocates nothing
    `  if (${params(m.fwd).map((e) => `${ownMember('params', e.name)} == null`).join(' || ') || 'false'}) checkKeys('param', params, paramKeys);`,
    ...params(m.fwd).flatMap(line('param', 'params')),
    `  if (${inputOrder.map((e) => `${ownMember('inputs', e.name)} == null`).join(' || ') || 'false'}) checkKeys('input', inputs, inputKeys, inputNotes);`,
    // the inputs that bind dimensions first, in the order they bind them
    ...inputOrder.flatMap(line('input', 'inputs')),
    '}',
  ];
}

/** For each input, the outputs of the forward graph that depend on it (in output order). */
export function outputsReading(g: Graph): Map<string, string[]> {
  const inputsOf = new Map<ValueId, Set<string>>();
  for (const inst of g.insts) {
    const set = new Set<string>(inst.op === 'input' ? [inst.attrs.name] : []);
    for (const a of inst.args) for (const n of inputsOf.get(a) ?? []) set.add(n);
    inputsOf.set(inst.result, set);
  }
  const out = new Map<string, string[]>();
  for (const o of g.outputs) for (const n of inputsOf.get(o.value) ?? []) out.set(n, [...(out.get(n) ?? []), o.name]);
  return out;
}

/** Which rule made a value, and where: `   tanh'  (makemore.ts:53)` (the chain rule's local factor). */
function provenance(g: Graph, inst: Graph['insts'][number]): string {
  const loc = inst.loc;
  if (!loc) return '';
  // a fan-out sum reads as the lecture's accumulation: dh_acc = dh_3 + dh_2 is `dh += dh_2`
  const total = g.value(inst.result).name.replace(/_acc(_\d+)?$/, '');
  const rule =
    loc.grad === 'fanout' ? `fan-out: ${total} += the gradient through each use` : loc.grad === 'custom' ? "the user's gradient rule (g.customGrad)" : loc.grad ? `${loc.grad}'` : '';
  // an instruction that g.grad emitted into the forward graph names that call
  const via = loc.via ? `, of g.grad at ${loc.via.file}:${loc.via.line}` : '';
  return `${rule ? `   ${rule}` : ''}  (${loc.file}:${loc.line}${via})`;
}

/**
 * The comment above a unit's code: the formula of each value it writes, then each instruction's
 * IR line with the DSL line it comes from (the source text once per line).
 */
export function unitComment(m: ModuleInfo, u: Unit, plan: Plan): string[] {
  const g = u.graph;
  const inUnit = new Set(u.insts.map((i) => i.id));
  const out: string[] = [];
  // named values and stored temporaries get a line; other temporaries are expanded in place, and
  // so is a conv group's convolution that only its epilogue reads (it keeps an array to accumulate in)
  const conv = u.kind === 'conv' && u.insts[0]!.op === 'conv' ? u.insts[0]! : undefined;
  const convUsers = conv ? (g.uses().get(conv.result) ?? []) : [];
  const epilogueOnly =
    conv !== undefined &&
    convUsers.length > 0 &&
    convUsers.every((x) => inUnit.has(x.id)) &&
    !g.outputs.some((o) => o.value === conv.result) &&
    !(g === m.fwd && m.bwd.insts.some((x) => x.op === 'fwd' && x.attrs.name === g.value(conv.result).name));
  // (its bias, a view of the param, reads as the param: relu(conv2d(x, W1) + b1))
  const biasView = (d: Graph['insts'][number]) => epilogueOnly && d.op === 'reshape' && g.value(d.result).temp && g.def(d.args[0]!).op === 'param';
  const expand = (d: Graph['insts'][number]) =>
    biasView(d) || (inUnit.has(d.id) && g.value(d.result).temp && (plan.storage.get(g.value(d.result).name)?.kind === 'register' || (epilogueOnly && d === conv)));
  for (const inst of u.insts) {
    const v = g.value(inst.result);
    if (expand(inst) || plan.storage.get(v.name)?.kind === 'alias') continue;
    out.push(`// ${commentText(`${v.name} = ${formula(g, inst.result, expand)}${provenance(g, inst)}`)}`);
  }
  const shown = new Set<string>();
  for (const inst of u.insts) {
    const ir = printInst(g, inst, false);
    let where = '';
    if (inst.loc) {
      const at = `${inst.loc.file}:${inst.loc.line}`;
      const text = shown.has(at) ? undefined : m.sourceLine(inst.loc)?.trim();
      shown.add(at);
      where = text ? `   ${at}  ${text}` : `   ${at}`;
    }
    out.push(`//   ${commentText(ir + where)}`);
  }
  return out;
}
