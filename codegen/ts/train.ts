// The training step of the flat and wasm modules (--optimizer): `hyper`, `initOptState`,
// `trainStep`, and the per-optimizer update function rendered from the optimizer table
// (codegen/optim.ts). The wasm module runs the same statements as one SIMD kernel over the params
// whose arrays are in its memory (`TrainBackend`); the others take the JavaScript loop.

import { numelSize, sizeText } from '../../ir/dims.js';
import type { ModuleInfo, Typed } from '../module.js';
import { commentText, key, lrCheck, member, ownMember, params } from '../module.js';
import { hasModes } from '../modes.js';
import type { OptimizerSpec } from '../optim.js';
import { clipFactor, hyperKeys, OPTIMIZERS, renderJs, scalarNames, slotsOf, stepScalars, updateStatements } from '../optim.js';
import { ACCUM_FIELDS, accumDecls } from './accum.js';

/** What the wasm module changes in the training step. */
export interface TrainBackend {
  /** Declarations (the optimizer state and the step scalars in the memory). */
  readonly decls: readonly string[];
  /** Params the kernel updates (its arrays are in the memory); the others take the JavaScript loop. */
  readonly covered: ReadonlySet<string>;
  /** The kernel's copy of the state arrays in the memory: `resident.exp_avg.W1` etc. (an expression). */
  readonly resident: string;
  /** Code that runs the kernel, given the scalars' names in the order of `scalarNames`. */
  run(scalars: readonly string[]): string[];
  /** The kernel's copy of a covered param in the memory (valueAndGrad stages it there). */
  readonly staged: (param: string) => string;
}

export interface TrainContext {
  /** The array each param's gradient is in after valueAndGrad (`buf.dW1`). */
  readonly gradArray: (param: string) => string;
  /** The loss of the last valueAndGrad (`lossSlot[0]`). */
  readonly loss: string;
  readonly codeName: (base: string) => string;
  readonly backend?: TrainBackend;
}

/** Hyperparameters as an object literal, in the order of the module's `hyper` contract. */
export function hyperLiteral(spec: OptimizerSpec): string {
  return `{ ${hyperKeys(spec).map((k) => `${k}: ${String(spec.hyper[k])}`).join(', ')} }`;
}

/** The name of an array argument of the update function. */
const arrayArg = (n: string) => n;

/**
 * The update of one param as a JavaScript function over its arrays: the optimizer's statements in
 * one loop. The step scalars come in one Float64Array (`s`): a number passed to a function that V8
 * does not inline is boxed, which would allocate on every call.
 */
export function updateFunction(spec: OptimizerSpec, fn: string, t: Typed): string[] {
  const slots = slotsOf(spec);
  const stmts = updateStatements(spec);
  const scalars = scalarNames(spec);
  const arrays = ['p', 'g', ...slots];
  const setsG = stmts.some((s) => s.set === 'g');
  const name = (n: string) => (n === 'g' ? 'gi' : arrays.includes(n) ? `${arrayArg(n)}[i]${t('!')}` : n);
  const target = (n: string) => (n === 'g' ? 'gi' : `${arrayArg(n)}[i]`);
  return [
    `/** One ${spec.name} step of one param, in place (${commentText(OPTIMIZERS[spec.name].summary)}). */`,
    `function ${fn}(${[...arrays.map((a) => `${arrayArg(a)}${t(': Float32Array')}`), `n${t(': number')}`, ...(scalars.length ? [`s${t(': Float64Array')}`] : [])].join(', ')})${t(': void')} {`,
    ...(scalars.length ? [`  const ${scalars.map((x, k) => `${x} = s[${k}]${t('!')}`).join(', ')};`] : []),
    '  for (let i = 0; i < n; i++) {',
    `    ${setsG ? 'let' : 'const'} gi = g[i]${t('!')};`,
    ...stmts.map((s) => `    ${target(s.set)} = ${renderJs(s.to, name)}; // ${commentText(s.formula)}`),
    '  }',
    '}',
  ];
}

/** The optimizer state's type, a fresh slot's literal and `checkOptState` (shared with the GPU.js module). */
export function optStateParts(m: ModuleInfo, t: Typed): { stateType: string; freshSlot: () => string; checkState: string[] } {
  const spec = m.optimizer!;
  const slots = slotsOf(spec);
  const ps = params(m.fwd);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const stateType = `{ /** The number of optimizer steps taken. */ step: number; ${slots.map((s) => `${s}: Grads;`).join(' ')} ${ACCUM_FIELDS} }`;
  const freshSlot = () => `{ ${ps.map((p) => `${key(p.name)}: new Float32Array(${sizeOf(p)})`).join(', ')} }`;
  const checkState = [
    '/** Checks an optimizer state before a step. */',
    `function checkOptState(state${t(': OptState')})${t(': void')} {`,
    `  if (typeof state !== 'object' || state === null) throw new TypeError('${m.name}: the optimizer state must be an object from initOptState(params)');`,
    `  if (!Number.isInteger(state.step) || state.step < 0) throw new TypeError(\`${m.name}: state.step must be a non-negative integer, got \${describeArg(state.step)}\`);`,
    ...slots.flatMap((s) => [
      `  if (typeof state.${s} !== 'object' || state.${s} === null) throw new TypeError('${m.name}: state.${s} is missing: make the state with initOptState(params)');`,
      ...ps.map((p) => `  expectArray('optimizer state', ${JSON.stringify(`${s}.${p.name}`)}, ${ownMember(`state.${s}`, p.name)}, Float32Array, ${sizeOf(p)}, '${p.dtype}[${p.shape.join(',')}]');`),
    ]),
    '}',
  ];
  return { stateType, freshSlot, checkState };
}

/** `hyper`, the optimizer state's type, `initOptState` and `trainStep`. */
export function trainDecls(m: ModuleInfo, t: Typed, c: TrainContext): string[] {
  const spec = m.optimizer!;
  const def = OPTIMIZERS[spec.name];
  const slots = slotsOf(spec);
  const ps = params(m.fwd);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const fn = c.codeName(`${spec.name}Step`);
  const scalars = scalarNames(spec);
  const clip = spec.hyper.clipGradNorm;
  const modes = hasModes(m.fwd);
  const sumSq = c.codeName('addSquares');
  const scalarArray = c.codeName('stepScalars');
  const normArray = c.codeName('gradNormSq');
  const { stateType, freshSlot, checkState } = optStateParts(m, t);
  const covered = c.backend?.covered ?? new Set<string>();
  const residentPairs = residentPairsOf(m, c);
  const names: StepNames = { fn, sumSq, scalarArray, normArray };
  return [
    '',
    `// --optimizer ${spec.name}: ${commentText(def.summary)}.`,
    `/** The build-time hyperparameters; trainStep's options.lr overrides lr for one call (schedules). */`,
    `export const hyper = ${hyperLiteral(spec)}${t(' as const')};`,
    '',
    ...(t('x') ? [`/** The optimizer's state: the step count and, per param, ${slots.length ? slots.join(' and ') : 'nothing else'} (torch.optim's names). */`, `export interface OptState ${stateType}`, ''] : []),
    ...(c.backend?.decls ?? []),
    `/** A fresh optimizer state: step 0${slots.length ? `, ${slots.join(' and ')} zeros` : ''}. */`,
    `export function initOptState(params${t(': Params')})${t(': OptState')} {`,
    "  if (typeof params !== 'object' || params === null) throw new TypeError('" + m.name + ": params must be an object');",
    ...ps.map((p) => `  expectArray('param', ${JSON.stringify(p.name)}, ${ownMember('params', p.name)}, Float32Array, ${sizeOf(p)}, '${p.dtype}[${p.shape.join(',')}]');`),
    ...(c.backend && covered.size
      ? [
          '  // the first state of this instance: the arrays in the memory (zeroed), the others plain arrays',
          '  if (!optHandedOut) {',
          '    optHandedOut = true;',
          ...residentPairs.map(([mine]) => `    ${mine}.fill(0);`),
          `    return { step: 0${slots.map((s) => `, ${s}: { ${ps.map((p) => `${key(p.name)}: ${covered.has(p.name) ? member(`${c.backend!.resident}.${s}`, p.name) : `new Float32Array(${sizeOf(p)})`}`).join(', ')} }`).join('')} };`,
          '  }',
        ]
      : []),
    `  return { step: 0${slots.map((s) => `, ${s}: ${freshSlot()}`).join('')} };`,
    '}',
    '',
    ...checkState,
    '',
    ...updateFunction(spec, fn, t),
    '',
    ...(clip !== undefined
      ? [
          `const ${normArray} = new Float64Array(1); // Σ g² over every gradient (an array: a returned number would be boxed)`,
          `function ${sumSq}(a${t(': Float32Array')})${t(': void')} {`,
          `  let s = ${normArray}[0]${t('!')};`,
          `  for (let i = 0; i < a.length; i++) s += a[i]${t('!')} * a[i]${t('!')};`,
          `  ${normArray}[0] = s;`,
          '}',
          '',
        ]
      : []),
    `const trainResult${t(': { loss: number }')} = { get loss() { return ${c.loss}; } };`,
    ...(scalars.length ? [`const ${scalarArray} = new Float64Array(${scalars.length}); // ${scalars.join(', ')}: this step's scalars`] : []),
    ...(modes ? ['/** The options trainStep passes to valueAndGrad (one object, so that a step allocates nothing). */', `const stepOptions${t(': Options')} = { seed: 0, buffers: undefined };`] : []),
    '',
    '/**',
    ` * One training step, in place: forward, backward and ${def.title} update of every param (and of the`,
    ' * optimizer state). options.lr overrides hyper.lr for this call. Allocates nothing.',
    ' */',
    `export function trainStep(params${t(': Params')}, state${t(': OptState')}, inputs${t(': Inputs')}, options${t('?: { lr?: number; seed?: number; buffers?: Buffers }')})${t(': { loss: number }')} {`,
    "  // (not `options?.lr ?? hyper.lr`: V8 boxed that number, 16 bytes a step)",
    '  const lr = options !== undefined && options.lr !== undefined ? options.lr : hyper.lr;',
    ...lrCheck(m.name, '  '),
    '  checkOptState(state);',
    '  const t = state.step + 1; // the step number of this step, from 1',
    ...(modes
      ? [
          '  stepOptions.seed = options?.seed ?? t; // the dropout masks: the seed given, else the step number',
          '  stepOptions.buffers = options?.buffers;',
          '  valueAndGrad(params, inputs, stepOptions);',
        ]
      : ['  valueAndGrad(params, inputs);']),
    ...updateLines(m, t, c, names, c.gradArray),
    '  state.step = t;',
    '  return trainResult;',
    '}',
    ...accumDecls(m, t, c, names),
  ];
}

/** The module-level names trainStep's update uses (made once by trainDecls). */
export interface StepNames {
  /** The update function of one param. */
  readonly fn: string;
  /** clip_by_global_norm's Σ g² over one array, into `normArray`. */
  readonly sumSq: string;
  readonly scalarArray: string;
  readonly normArray: string;
}

/** The wasm module's state arrays in its memory paired with the caller's (`[mine, theirs]`). */
function residentPairsOf(m: ModuleInfo, c: TrainContext): (readonly [string, string])[] {
  const covered = c.backend?.covered ?? new Set<string>();
  const slots = slotsOf(m.optimizer!);
  const ps = params(m.fwd);
  // the wasm module's kernel reads the state in its memory: the caller's state is copied in and back out
  return c.backend && covered.size ? slots.flatMap((s) => ps.filter((p) => covered.has(p.name)).map((p) => [member(`${c.backend!.resident}.${s}`, p.name), member(`state.${s}`, p.name)] as const)) : [];
}

/**
 * The update of every param after the gradients are in place (`t` and `lr` in scope), up to the
 * new step count: the step scalars, clipping's factor, the kernel (wasm) and the JavaScript loop.
 * `gradOf(p)`: the array the update reads p's gradient from (the wasm kernel always reads its
 * memory's).
 */
export function updateLines(m: ModuleInfo, t: Typed, c: TrainContext, n: StepNames, gradOf: (param: string) => string): string[] {
  const spec = m.optimizer!;
  const slots = slotsOf(spec);
  const ps = params(m.fwd);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const scalars = scalarNames(spec);
  const clip = spec.hyper.clipGradNorm;
  const covered = c.backend?.covered ?? new Set<string>();
  const jsParams = ps.filter((p) => !covered.has(p.name));
  const grad = (p: string) => (covered.has(p) ? c.gradArray(p) : gradOf(p));
  const residentCopies = (dir: 'in' | 'out') => residentPairsOf(m, c).map(([mine, theirs], k) => `  ${dir === 'in' ? 'optIn' : 'optOut'}(${k}, ${mine}, ${theirs});`);
  return [
    ...stepScalars(spec).map((s) => `  const ${s.name} = ${s.code}; // ${commentText(s.formula)}`),
    ...(clip !== undefined
      ? [
          `  // clip_grad_norm_(max_norm = ${clip}): every gradient scaled by min(1, N / (‖g‖₂ + 1e-6)), ‖g‖₂ over all of them`,
          `  ${n.normArray}[0] = 0;`,
          ...ps.map((p) => `  ${n.sumSq}(${grad(p.name)});`),
          `  const clip = ${clipFactor(spec, `${n.normArray}[0]${t('!')}`)};`,
        ]
      : []),
    ...scalars.map((s, k) => `  ${n.scalarArray}[${k}] = ${s};`),
    ...residentCopies('in'),
    ...(c.backend && covered.size ? c.backend.run(scalars).map((l) => `  ${l}`) : []),
    ...jsParams.map(
      (p) =>
        `  ${n.fn}(${[member('params', p.name), grad(p.name), ...slots.map((s) => member(`state.${s}`, p.name)), sizeOf(p), ...(scalars.length ? [n.scalarArray] : [])].join(', ')}); // ${commentText(p.name)}`,
    ),
    ...residentCopies('out'),
  ];
}
