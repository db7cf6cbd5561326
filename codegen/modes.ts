// Training and evaluation mode in the generated modules (all targets): the `Options` of forward
// and valueAndGrad, the module buffers (batchnorm's running statistics: `Buffers`,
// `initBuffers`), the mode flag and the dropout masks, which the module sets before the forward
// pass, and the copy of the next running statistics into the caller's buffers after a training
// forward. See docs/training.md.

import type { Graph } from '../ir/graph.js';
import { isState } from '../ir/memplan.js';
import { numelSize, sizeText } from '../ir/dims.js';
import { DROPOUT_SOURCE, dropoutSourceTyped } from '../ir/random.js';
import type { Shape } from '../ir/types.js';
import * as E from './expr.js';
import type { ModuleInfo, Typed } from './module.js';
import { key, member } from './module.js';

export interface BufferEntry {
  /** The buffer's name (`bn1.running_mean`): the key of `Buffers`. */
  readonly name: string;
  readonly shape: Shape;
  /** The value the forward graph reads it as. */
  readonly value: string;
  /**
   * The value holding its next state after a training forward (a forward output named after it);
   * '' in the derived functions' graphs (--hvp, --jvp), which read the buffers and never update them.
   */
  readonly next: string;
}

export interface MaskEntry {
  readonly p: number;
  readonly site: number;
  readonly value: string;
}

export interface Modes {
  readonly buffers: readonly BufferEntry[];
  readonly masks: readonly MaskEntry[];
  /** The value of the mode flag (1 training, 0 evaluation), if the graph reads it. */
  readonly mode: string | undefined;
}

export function modesOf(g: Graph): Modes {
  const outs = new Map(g.outputs.map((o) => [o.name, g.value(o.value).name]));
  const buffers: BufferEntry[] = [];
  const masks: MaskEntry[] = [];
  let mode: string | undefined;
  for (const inst of g.insts) {
    if (!isState(inst)) continue;
    const value = g.value(inst.result).name;
    if (inst.op === 'buffer') buffers.push({ name: inst.attrs.name, shape: g.type(inst.result).shape, value, next: outs.get(inst.attrs.name) ?? '' });
    else if (inst.op === 'dropout_mask') masks.push({ p: inst.attrs.p, site: inst.attrs.site, value });
    else mode = value;
  }
  return { buffers, masks, mode };
}

/** Whether an output of g is a buffer's next state rather than a model output. */
export function isBufferOutput(g: Graph, name: string): boolean {
  return g.insts.some((i) => i.op === 'buffer' && i.attrs.name === name);
}

/** Whether the module has any state of its own (then forward and valueAndGrad read their options). */
export function hasModes(g: Graph): boolean {
  const s = modesOf(g);
  return s.buffers.length > 0 || s.masks.length > 0 || s.mode !== undefined;
}

/** `spec.buffers`, when there are buffers. */
export function specBuffers(m: ModuleInfo): string[] {
  const { buffers } = modesOf(m.fwd);
  if (buffers.length === 0) return [];
  return [`  buffers: { ${buffers.map((b) => `${key(b.name)}: { dtype: 'f32', shape: [${b.shape.join(', ')}] }`).join(', ')} },`];
}

/** The `Buffers` and `Options` types. */
export function modeTypes(m: ModuleInfo): string[] {
  const { buffers, masks } = modesOf(m.fwd);
  if (!hasModes(m.fwd))
    return [
      '/** Module buffers: none in this model (a g.batchNorm with a momentum keeps running statistics). */',
      'export interface Buffers {}',
      '/** The options of forward and valueAndGrad; with no dropout and no buffers in this model, they change nothing. */',
      'export interface Options {',
      '  train?: boolean;',
      '  seed?: number;',
      '  buffers?: Buffers;',
      '}',
    ];
  return [
    '/** Module buffers: batchnorm running statistics (torch.nn.BatchNorm1d), updated in place by training calls. */',
    'export interface Buffers {',
    ...buffers.map((b) => `  ${key(b.name)}: Float32Array; // f32[${b.shape.join(',')}]`),
    '}',
    '/** The options of forward (evaluation unless train) and valueAndGrad (a training call unless train is false). */',
    'export interface Options {',
    '  /** A training call (dropout drawn, batch statistics used and the running ones updated) or an evaluation call (dropout off, running statistics used, buffers untouched). Default: false for forward, true for valueAndGrad. */',
    '  train?: boolean;',
    `  /** The seed of the dropout masks (an integer); default: a counter of the module's training calls without one.${masks.length ? '' : ' (No dropout in this model.)'} */`,
    '  seed?: number;',
    `  /** The running statistics${buffers.length ? ', required: initBuffers() gives fresh ones' : ' (none in this model)'}. */`,
    '  buffers?: Buffers;',
    '}',
  ];
}

/** `initBuffers()`: running means 0 and variances 1, as torch initialises them. */
export function initBuffersDecl(m: ModuleInfo, t: Typed): string[] {
  const { buffers } = modesOf(m.fwd);
  if (buffers.length === 0) return [];
  return [
    '',
    '/** Fresh buffers: running means 0, running variances 1 (as torch.nn.BatchNorm1d). */',
    `export function initBuffers()${t(': Buffers')} {`,
    '  return {',
    ...buffers.map((b) => {
      const n = sizeText(numelSize(b.shape));
      return b.name.endsWith('.running_var') ? `    ${key(b.name)}: new Float32Array(${n}).fill(1),` : `    ${key(b.name)}: new Float32Array(${n}),`;
    }),
    '  };',
    '}',
  ];
}

/**
 * `checkOptions(options, train)`: validates the options before any work and returns whether the
 * call trains; the dropout generator; and `nextSeed`, the counter of training calls without a
 * seed. Empty for a module without state (its options have no effect).
 */
export function optionsDecl(m: ModuleInfo, t: Typed): string[] {
  if (!hasModes(m.fwd)) return [];
  const { buffers, masks } = modesOf(m.fwd);
  const names = buffers.map((b) => b.name).join(', ');
  const missing =
    `${m.name}: this model keeps batchnorm running statistics in buffers (${names}): ` +
    (m.derivedKind === 'hvp'
      ? 'pass them in the options, e.g. hvp(params, inputs, v, { buffers }), with buffers = initBuffers()'
      : m.derivedKind === 'jvp'
        ? 'pass them in the options, e.g. jvp(params, inputs, tangents, { buffers }), with buffers = initBuffers()'
        : 'pass them in the options, e.g. valueAndGrad(params, inputs, { buffers }) or forward(params, inputs, { buffers }), with buffers = initBuffers()');
  return [
    ...(masks.length ? ['', '// The dropout mask generator (graphc ir/random.ts): a pure function of (seed, site, element).', ...(t('x') !== '' ? dropoutSourceTyped() : DROPOUT_SOURCE).split('\n')] : []),
    ...(masks.length ? ['', '/** The seed of the next training call that brings none (each such call draws fresh masks). */', 'let nextSeed = 0;'] : []),
    '',
    `const noOptions${t(': Options')} = {};`,
    '/** The mode and seed of the current call (set by checkOptions; one object, so that a call allocates nothing). */',
    'const callState = { train: false, seed: 0 };',
    '',
    '/** Checks the options before any work; `train`: the mode unless the options say (or, `fixed`, always). */',
    `function checkOptions(options${t(': Options')}, train${t(': boolean')}, fixed${t(': boolean')})${t(': void')} {`,
    `  if (typeof options !== 'object' || options === null) throw new TypeError('${m.name}: options must be an object');`,
    '  if (options.train !== undefined && !fixed) {',
    `    if (typeof options.train !== 'boolean') throw new TypeError(\`${m.name}: options.train must be true or false, got \${describeArg(options.train)}\`);`,
    '    train = options.train;',
    '  }',
    '  if (options.seed !== undefined && !Number.isSafeInteger(options.seed))',
    `    throw new TypeError(\`${m.name}: options.seed must be an integer, got \${describeArg(options.seed)}\`);`,
    ...(buffers.length
      ? [
          `  const b = options.buffers${t(' as Buffers | undefined')};`,
          `  if (typeof b !== 'object' || b === null) throw new TypeError(${JSON.stringify(missing)});`,
          ...buffers.map((e) => `  expectArray('buffer', ${JSON.stringify(e.name)}, ${member('b', e.name)}, Float32Array, ${sizeText(numelSize(e.shape))}, 'f32[${e.shape.join(',')}]');`),
        ]
      : []),
    '  callState.train = train;',
    `  callState.seed = ${masks.length ? 'options.seed ?? (train ? nextSeed++ : 0)' : 'options.seed ?? 0'};`,
    '}',
  ];
}

/**
 * The statements that set the state into the arena before the forward pass (`arr(value)` is the
 * array a value lives in), and the ones that copy the next running statistics out after a
 * training forward.
 */
export function stateCode(m: ModuleInfo, t: Typed, arr: (value: string) => string, opts = 'options', mode = 'callState', stageBuffers = true): { set: string[]; save: string[] } {
  const { buffers, masks, mode: flag } = modesOf(m.fwd);
  if (!hasModes(m.fwd)) return { set: [], save: [] };
  const set = [
    ...(flag ? [`${arr(flag)}[0] = ${mode}.train ? 1 : 0; // the mode flag`] : []),
    ...(stageBuffers ? buffers : []).map((b) => `${arr(b.value)}.set(${member(`${opts}.buffers${t('!')}`, b.name)});`),
    ...(masks.length
      ? [
          `if (${mode}.train) {`,
          ...masks.map((k) => `fillDropoutMask(${arr(k.value)}, ${E.num(k.p).code}, ${E.num(1 / (1 - k.p)).code}, ${mode}.seed, ${k.site}); // dropout site ${k.site}: 0 with probability ${k.p}, else 1/(1 − p)`),
          '} else {',
          ...masks.map((k) => `${arr(k.value)}.fill(1); // evaluation: dropout is the identity`),
          '}',
        ]
      : []),
  ];
  const updated = buffers.filter((b) => b.next !== '');
  const save = updated.length ? [`if (${mode}.train) {`, ...updated.map((b) => `${member(`${opts}.buffers${t('!')}`, b.name)}.set(${arr(b.next)});`), '}'] : [];
  return { set, save };
}
