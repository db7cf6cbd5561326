// The training step of the flat and wasm modules (--optimizer): `hyper`, `initOptState`,
// `trainStep`, and the per-optimizer update function rendered from the optimizer table
// (codegen/optim.ts). The wasm module runs the same statements as one SIMD kernel over the params
// whose arrays are in its memory (`TrainBackend`); the others take the JavaScript loop.

import { numelSize, sizeText } from '../../ir/dims.js';
import type { ModuleInfo, Typed } from '../module.js';
import { commentText, key, lrCheck, member, ownMember, params } from '../module.js';
import { hasModes } from '../modes.js';
import type { OptimizerSpec, ParamGroup } from '../optim.js';
import { clipFactor, hyperKeys, OPTIMIZERS, paramGroups, renderJs, scalarNames, scheduleExpr, slotsOf, stepScalars, updateStatements } from '../optim.js';
import { accumDecls, accumFields } from './accum.js';

/** What the wasm module changes in the training step. */
export interface TrainBackend {
  /** Declarations (the optimizer state and the step scalars in the memory). */
  readonly decls: readonly string[];
  /** Params the kernel updates (its arrays are in the memory); the others take the JavaScript loop. */
  readonly covered: ReadonlySet<string>;
  /** The kernel's copy of the state arrays in the memory: `resident.exp_avg.W1` etc. (an expression). */
  readonly resident: string;
  /**
   * Code that runs the kernel, given each param group's scalars (expressions) in the order of its
   * `scalarNames`, and the array each covered param's gradient is in (an expression).
   */
  run(scalars: readonly (readonly string[])[], grad: (param: string) => string): string[];
  /** The kernel's copy of a covered param in the memory (valueAndGrad stages it there). */
  readonly staged: (param: string) => string;
  /**
   * Whether initOptState's first state is the memory's own arrays (default true; the symbolic
   * wasm module's memory grows, which would detach them: its states are plain arrays, copied in).
   */
  readonly handsOut?: boolean;
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
function hyperLiteral(spec: OptimizerSpec): string {
  return `{ ${hyperKeys(spec).map((k) => `${k}: ${typeof spec.hyper[k] === 'string' ? `'${spec.hyper[k]}'` : String(spec.hyper[k])}`).join(', ')} }`;
}

/** The trainable params (a frozen one has no gradient and no update) in param groups (codegen/optim.ts). */
export function trainGroups(m: ModuleInfo): ParamGroup[] {
  const ps = m.fwd.insts.flatMap((i) =>
    i.op === 'param' && i.attrs.frozen !== true ? [{ name: i.attrs.name, rank: m.fwd.type(i.result).shape.length, weightDecay: i.attrs.weightDecay, lrScale: i.attrs.lrScale }] : [],
  );
  return paramGroups(m.optimizer!, ps);
}

/** The params the step updates (every param but the frozen ones), in declaration order. */
export function trainedParams(m: ModuleInfo): ReturnType<typeof params> {
  const trained = new Set(trainGroups(m).flatMap((g) => g.params));
  return params(m.fwd).filter((p) => trained.has(p.name));
}

/** One param group's part of the step: its update function and how its step scalars are computed. */
export interface GroupStep {
  readonly group: ParamGroup;
  /** The update function of its params (one per distinct weight decay). */
  readonly fn: string;
  /** Whether `fn` is declared by this group (the first with its weight decay). */
  readonly declares: boolean;
  /** Lines computing its step scalars from `lr`, `t` (and `clip`). */
  readonly lines: readonly string[];
  /** The values of its `scalarNames`, in order: names in scope after `lines`. */
  readonly values: readonly string[];
}

/**
 * The param groups' update functions and step scalars. One group of lrScale 1 (no per-param
 * options) gives the code of a build without groups: `adamStep`, `const stepSize = …`.
 */
export function groupSteps(m: ModuleInfo, codeName: (base: string) => string): GroupStep[] {
  const spec = m.optimizer!;
  const groups = trainGroups(m);
  const fns = new Map<number, string>();
  return groups.map((group, k) => {
    const wd = group.spec.hyper.weightDecay;
    const declares = !fns.has(wd);
    if (declares) fns.set(wd, codeName(`${spec.name}Step`));
    const sfx = groups.length > 1 ? `_${k + 1}` : '';
    const lr = group.lrScale === 1 ? 'lr' : `groupLr${sfx}`;
    const scalars = stepScalars(group.spec, lr);
    const lines = [
      ...(groups.length > 1 ? [`// ${commentText(group.params.join(', '))}: weight decay ${wd}, lr × ${group.lrScale}`] : []),
      ...(lr !== 'lr' ? [`const ${lr} = lr * ${group.lrScale}; // lrScale ${group.lrScale}`] : []),
      ...scalars.map((s) => `const ${s.name}${sfx} = ${s.code}; // ${commentText(s.formula)}`),
    ];
    const values = scalarNames(group.spec).map((n) => (n === 'lr' ? lr : n === 'clip' ? 'clip' : `${n}${sfx}`));
    return { group, fn: fns.get(wd)!, declares, lines, values };
  });
}

/**
 * The learning rate of a step, `lr`: options.lr when the call gives one, else the build's, as the
 * schedule has it at the state's step (after checkOptState).
 */
export function lrLine(spec: OptimizerSpec, given: string, step: string): string {
  const base = spec.hyper.schedule ? scheduleExpr(spec.hyper, 'hyper.lr', step).code : 'hyper.lr';
  return `const lr = ${given} !== undefined && ${given}.lr !== undefined ? ${given}.lr : ${base};${spec.hyper.schedule ? ` // --schedule ${spec.hyper.schedule}` : ''}`;
}

/**
 * What every target's --optimizer declares first: `hyper` (with its comment), the learning rate,
 * and (typed modules) OptState's type.
 */
export function hyperDecls(m: ModuleInfo, t: Typed, stateType: string): string[] {
  const spec = m.optimizer!;
  const slots = slotsOf(spec);
  return [
    hyperDoc(spec),
    `export const hyper = ${hyperLiteral(spec)}${t(' as const')};`,
    ...learningRateDecl(m, t),
    '',
    ...(t('x') ? [`/** The optimizer's state: the step count and, per param, ${slots.length ? slots.join(' and ') : 'nothing else'} (torch.optim's names). */`, `export interface OptState ${stateType}`, ''] : []),
  ];
}

/** The comment of the module's `hyper`. */
function hyperDoc(spec: OptimizerSpec): string {
  return spec.hyper.schedule
    ? `/** The build-time hyperparameters, the schedule's among them (learningRate); trainStep's options.lr replaces the scheduled rate for one call. */`
    : `/** The build-time hyperparameters; trainStep's options.lr overrides lr for one call (schedules). */`;
}

/** `learningRate(step)`, exported with a schedule: the rate of the update after `step` updates. */
function learningRateDecl(m: ModuleInfo, t: Typed): string[] {
  const spec = m.optimizer!;
  if (!spec.hyper.schedule) return [];
  const s = scheduleExpr(spec.hyper, 'hyper.lr', 'step');
  return [
    '',
    `/**`,
    ` * The scheduled learning rate (--schedule ${spec.hyper.schedule}) of the update after \`step\` updates (a state's`,
    ` * step), before any param's lrScale: ${commentText(s.formula)}.`,
    ' */',
    `export function learningRate(step${t(': number')})${t(': number')} {`,
    `  if (!Number.isInteger(step) || step < 0) throw new TypeError(\`${m.name}: the step must be a non-negative integer, got \${describeArg(step)}\`);`,
    `  return ${s.code};`,
    '}',
  ];
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
  const ps = trainedParams(m);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const stateType = `{ /** The number of optimizer steps taken. */ step: number; ${slots.map((s) => `${s}: Grads;`).join(' ')} ${accumFields(m)} }`;
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
  const all = params(m.fwd);
  const ps = trainedParams(m);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const steps = groupSteps(m, c.codeName);
  const clip = spec.hyper.clipGradNorm;
  const modes = hasModes(m.fwd);
  const sumSq = c.codeName('addSquares');
  const scalarArrays = steps.map(() => c.codeName('stepScalars'));
  const normArray = c.codeName('gradNormSq');
  const { stateType, freshSlot, checkState } = optStateParts(m, t);
  const covered = c.backend?.covered ?? new Set<string>();
  const residentPairs = residentPairsOf(m, c);
  const names: StepNames = { steps, sumSq, scalarArrays, normArray };
  return [
    '',
    `// --optimizer ${spec.name}: ${commentText(def.summary)}.`,
    ...hyperDecls(m, t, stateType),
    ...(c.backend?.decls ?? []),
    `/** A fresh optimizer state: step 0${slots.length ? `, ${slots.join(' and ')} zeros` : ''}. */`,
    `export function initOptState(params${t(': Params')})${t(': OptState')} {`,
    "  if (typeof params !== 'object' || params === null) throw new TypeError('" + m.name + ": params must be an object');",
    ...all.map((p) => `  expectArray('param', ${JSON.stringify(p.name)}, ${ownMember('params', p.name)}, Float32Array, ${sizeOf(p)}, '${p.dtype}[${p.shape.join(',')}]');`),
    ...(c.backend && covered.size && c.backend.handsOut !== false
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
    ...steps.flatMap((s) => (s.declares ? [...updateFunction(s.group.spec, s.fn, t), ''] : [])),
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
    ...steps.flatMap((s, k) => (s.values.length ? [`const ${scalarArrays[k]} = new Float64Array(${s.values.length}); // ${scalarNames(s.group.spec).join(', ')}: this step's scalars${steps.length > 1 ? ` (${commentText(s.group.params.join(', '))})` : ''}`] : [])),
    ...(modes ? ['/** The options trainStep passes to valueAndGrad (one object, so that a step allocates nothing). */', `const stepOptions${t(': Options')} = { seed: 0, buffers: undefined };`] : []),
    '',
    '/**',
    ` * One training step, in place: forward, backward and ${def.title} update of every param (and of the`,
    ' * optimizer state). options.lr overrides hyper.lr for this call. Allocates nothing.',
    ' */',
    `export function trainStep(params${t(': Params')}, state${t(': OptState')}, inputs${t(': Inputs')}, options${t('?: { lr?: number; seed?: number; buffers?: Buffers }')})${t(': { loss: number }')} {`,
    '  checkOptState(state);',
    "  // (not `options?.lr ?? hyper.lr`: V8 boxed that number, 16 bytes a step)",
    `  ${lrLine(spec, 'options', 'state.step')}`,
    ...lrCheck(m.name, '  '),
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
  /** Per param group: its update function and step scalars. */
  readonly steps: readonly GroupStep[];
  /** clip_by_global_norm's Σ g² over one array, into `normArray`. */
  readonly sumSq: string;
  /** Per param group (as `steps`): the Float64Array its scalars are passed in. */
  readonly scalarArrays: readonly string[];
  readonly normArray: string;
}

/** The wasm module's state arrays in its memory paired with the caller's (`[mine, theirs]`). */
function residentPairsOf(m: ModuleInfo, c: TrainContext): (readonly [string, string])[] {
  const covered = c.backend?.covered ?? new Set<string>();
  const slots = slotsOf(m.optimizer!);
  const ps = trainedParams(m);
  // the wasm module's kernel reads the state in its memory: the caller's state is copied in and back out
  return c.backend && covered.size ? slots.flatMap((s) => ps.filter((p) => covered.has(p.name)).map((p) => [member(`${c.backend!.resident}.${s}`, p.name), member(`state.${s}`, p.name)] as const)) : [];
}

/**
 * The update of every trained param after the gradients are in place (`t` and `lr` in scope, `lr`
 * the scheduled or given rate before any group's lrScale), up to the new step count: clipping's
 * factor, each param group's step scalars, the kernel (wasm) and the JavaScript loop. `gradOf(p)`:
 * the array the update reads p's gradient from (the wasm kernel always reads its memory's).
 */
export function updateLines(m: ModuleInfo, t: Typed, c: TrainContext, n: StepNames, gradOf: (param: string) => string): string[] {
  const spec = m.optimizer!;
  const slots = slotsOf(spec);
  const ps = trainedParams(m);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const clip = spec.hyper.clipGradNorm;
  const covered = c.backend?.covered ?? new Set<string>();
  const jsParams = ps.filter((p) => !covered.has(p.name));
  const grad = (p: string) => (covered.has(p) ? c.gradArray(p) : gradOf(p));
  const groupOf = (p: string) => n.steps.findIndex((s) => s.group.params.includes(p));
  const residentCopies = (dir: 'in' | 'out') => residentPairsOf(m, c).map(([mine, theirs], k) => `  ${dir === 'in' ? 'optIn' : 'optOut'}(${k}, ${mine}, ${theirs});`);
  return [
    ...(clip !== undefined
      ? [
          `  // clip_grad_norm_(max_norm = ${clip}): every gradient scaled by min(1, N / (‖g‖₂ + 1e-6)), ‖g‖₂ over all of them`,
          `  ${n.normArray}[0] = 0;`,
          ...ps.map((p) => `  ${n.sumSq}(${grad(p.name)});`),
          `  const clip = ${clipFactor(spec, `${n.normArray}[0]${t('!')}`)};`,
        ]
      : []),
    ...n.steps.flatMap((s, k) => [...s.lines.map((l) => `  ${l}`), ...s.values.map((v, j) => `  ${n.scalarArrays[k]}[${j}] = ${v};`)]),
    ...residentCopies('in'),
    ...(c.backend && covered.size ? c.backend.run(n.steps.map((s) => s.values), grad).map((l) => `  ${l}`) : []),
    ...jsParams.map((p) => {
      const k = groupOf(p.name);
      const s = n.steps[k]!;
      const args = [member('params', p.name), grad(p.name), ...slots.map((x) => member(`state.${x}`, p.name)), sizeOf(p), ...(s.values.length ? [n.scalarArrays[k]!] : [])];
      return `  ${s.fn}(${args.join(', ')}); // ${commentText(p.name)}`;
    }),
    ...residentCopies('out'),
  ];
}
