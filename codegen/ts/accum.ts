// Gradient accumulation and caller-given gradients in the flat and wasm modules (--optimizer):
// `accumulateGrad` adds a batch's gradient into the optimizer state (`state.grad_accum`, one array
// per param, and `state.accum_count`, the number of batches in it), `applyUpdate` takes one step
// with their mean and zeroes them (torch's `(loss / K).backward()` K times, then `step()`), and
// `applyGradients` takes one step with gradients the caller gives. Each step is trainStep's update
// (codegen/ts/train.ts `updateLines`), clipping included, on other gradients. See docs/training.md.

import { numelSize, sizeText } from '../../ir/dims.js';
import type { ModuleInfo, Typed } from '../module.js';
import { commentText, key, lrCheck, member, ownMember, params } from '../module.js';
import { hasModes } from '../modes.js';
import type { StepNames, TrainContext } from './train.js';
import { lrLine, trainedParams, updateLines } from './train.js';

/**
 * The type of gradients of the trained params (applyGradients' `grads`, the state's `grad_accum`):
 * `Params` when no param is frozen, else an object of the trained ones (a frozen param has none).
 */
export function gradsType(m: ModuleInfo): string {
  const all = params(m.fwd);
  const ps = trainedParams(m);
  return ps.length === all.length ? 'Params' : `{ ${ps.map((p) => `${key(p.name)}: Float32Array;`).join(' ')} }`;
}

/** The accumulator's fields of the optimizer state, for its type (`OptState`). */
export const accumFields = (m: ModuleInfo): string =>
  `/** accumulateGrad's running sum of gradients (made by its first call). */ grad_accum?: ${gradsType(m)}; /** The number of batches in grad_accum. */ accum_count?: number;`;

/** The message of applyUpdate when nothing was accumulated. */
export const nothingAccumulated = (name: string) =>
  `${name}: applyUpdate has no accumulated gradient to apply (state.accum_count is 0): call accumulateGrad(params, state, inputs) for each batch first`;

/** `accumulateGrad`, `applyUpdate`, `applyGradients` and the step they share. */
export function accumDecls(m: ModuleInfo, t: Typed, c: TrainContext, n: StepNames): string[] {
  const ps = trainedParams(m);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const modes = hasModes(m.fwd);
  const b = c.backend && c.backend.covered.size ? c.backend : undefined;
  const stepWith = c.codeName('stepWith');
  const addInto = c.codeName('addInto');
  const divide = c.codeName('divideBy');
  const checkParams = c.codeName('checkParams');
  const checkAccum = c.codeName('checkAccum');
  const accumOptions = c.codeName('accumOptions');
  // after checkOptState: a scheduled rate reads state.step, as trainStep's
  const lrLines = [`  ${lrLine(m.optimizer!, 'options', 'state.step')}`, ...lrCheck(m.name, '  ')];
  return [
    ...accumHelpers(m, t, { checkParams, checkAccum, addInto, divide }),
    '/** One update of every trained param with the gradients in `grads` (checked): trainStep\'s, clipping included. */',
    `function ${stepWith}(params${t(': Params')}, state${t(': OptState')}, grads${t(`: ${gradsType(m)}`)}, lr${t(': number')})${t(': void')} {`,
    '  const t = state.step + 1; // the step number of this step, from 1',
    ...(b
      ? [
          "  // the kernel reads the params and gradients in the memory, where valueAndGrad leaves them",
          ...[...b.covered].flatMap((p) => [
            `  ${b.staged(p)}.set(${member('params', p)});`,
            `  if (${member('grads', p)} !== ${c.gradArray(p)}) ${c.gradArray(p)}.set(${member('grads', p)});`,
          ]),
        ]
      : []),
    ...updateLines(m, t, c, n, (p) => member('grads', p)),
    '  state.step = t;',
    '}',
    '',
    '/**',
    ' * One optimizer step with the gradients given (one Float32Array per trained param, as valueAndGrad\'s',
    ' * grads), in place: clipping applies to them as in trainStep. options.lr overrides hyper.lr.',
    ' */',
    `export function applyGradients(params${t(': Params')}, state${t(': OptState')}, grads${t(`: ${gradsType(m)}`)}, options${t('?: { lr?: number }')})${t(': void')} {`,
    '  checkOptState(state);',
    ...lrLines,
    `  ${checkParams}(params);`,
    ...gradsCheck(m, '  '),
    `  ${stepWith}(params, state, grads, lr);`,
    '}',
    '',
    ...(modes ? ['/** The options accumulateGrad passes to valueAndGrad (one object, so that a call allocates nothing). */', `const ${accumOptions}${t(': Options')} = { seed: undefined, buffers: undefined };`, ''] : []),
    '/**',
    ' * Adds the gradient of this batch\'s loss into state.grad_accum (made by the first call) and',
    ' * counts it in state.accum_count; applyUpdate then steps with their mean. No param changes.',
    ' */',
    `export function accumulateGrad(params${t(': Params')}, state${t(': OptState')}, inputs${t(': Inputs')}, options${t('?: { seed?: number; buffers?: Buffers }')})${t(': { loss: number }')} {`,
    '  checkOptState(state);',
    `  ${checkAccum}(state);`,
    ...(modes
      ? [
          `  ${accumOptions}.seed = options?.seed; // the dropout masks: the seed given, else fresh ones`,
          `  ${accumOptions}.buffers = options?.buffers;`,
          `  valueAndGrad(params, inputs, ${accumOptions});`,
        ]
      : ['  valueAndGrad(params, inputs);']),
    `  const acc = state.grad_accum ??= { ${ps.map((p) => `${key(p.name)}: new Float32Array(${sizeOf(p)})`).join(', ')} };`,
    ...ps.map((p) => `  ${addInto}(${member('acc', p.name)}, ${c.gradArray(p.name)}); // ${commentText(p.name)}`),
    '  state.accum_count = (state.accum_count ?? 0) + 1;',
    '  return trainResult;',
    '}',
    '',
    '/**',
    ' * One optimizer step with the mean of the gradients accumulateGrad gathered, in place, then',
    ' * state.grad_accum zeroed and state.accum_count 0. options.lr overrides hyper.lr.',
    ' */',
    `export function applyUpdate(params${t(': Params')}, state${t(': OptState')}, options${t('?: { lr?: number }')})${t(': void')} {`,
    '  checkOptState(state);',
    ...lrLines,
    `  ${checkAccum}(state);`,
    `  ${checkParams}(params);`,
    '  const k = state.accum_count ?? 0;',
    `  if (k === 0) throw new Error(${JSON.stringify(nothingAccumulated(m.name))});`,
    `  const acc = state.grad_accum${t('!')};`,
    '  // the mean gradient, in place',
    ...ps.map((p) => `  ${divide}(${member('acc', p.name)}, k);`),
    `  ${stepWith}(params, state, acc, lr);`,
    ...ps.map((p) => `  ${member('acc', p.name)}.fill(0);`),
    '  state.accum_count = 0;',
    '}',
  ];
}

/** The module-level names of the accumulation helpers. */
export interface AccumHelperNames {
  readonly checkParams: string;
  readonly checkAccum: string;
  readonly addInto: string;
  readonly divide: string;
}

/** The checks of params and of a state's accumulator, and the two loops (shared with the GPU.js module). */
export function accumHelpers(m: ModuleInfo, t: Typed, names: AccumHelperNames): string[] {
  const { checkParams, checkAccum, addInto, divide } = names;
  const ps = params(m.fwd);
  const trained = trainedParams(m);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const typeOf = (p: (typeof ps)[number]) => `'${p.dtype}[${p.shape.join(',')}]'`;
  return [
    '',
    '/** Checks the params of a step that runs no forward pass. */',
    `function ${checkParams}(params${t(': Params')})${t(': void')} {`,
    `  if (typeof params !== 'object' || params === null) throw new TypeError('${m.name}: params must be an object');`,
    ...ps.map((p) => `  expectArray('param', ${JSON.stringify(p.name)}, ${ownMember('params', p.name)}, Float32Array, ${sizeOf(p)}, ${typeOf(p)});`),
    '}',
    '',
    '/** Checks the accumulated gradients of a state (when it has them). */',
    `function ${checkAccum}(state${t(': OptState')})${t(': void')} {`,
    '  if (state.grad_accum === undefined && (state.accum_count === undefined || state.accum_count === 0)) return;',
    `  if (!Number.isInteger(state.accum_count) || state.accum_count${t('!')} < 0) throw new TypeError(\`${m.name}: state.accum_count must be a non-negative integer, got \${describeArg(state.accum_count)}\`);`,
    `  if (typeof state.grad_accum !== 'object' || state.grad_accum === null) throw new TypeError('${m.name}: state.grad_accum is missing: accumulateGrad(params, state, inputs) makes it');`,
    ...trained.map((p) => `  expectArray('optimizer state', ${JSON.stringify(`grad_accum.${p.name}`)}, ${ownMember('state.grad_accum', p.name)}, Float32Array, ${sizeOf(p)}, ${typeOf(p)});`),
    '}',
    '',
    `function ${addInto}(acc${t(': Float32Array')}, g${t(': Float32Array')})${t(': void')} {`,
    `  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]${t('!')} + g[i]${t('!')};`,
    '}',
    `function ${divide}(acc${t(': Float32Array')}, k${t(': number')})${t(': void')} {`,
    `  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]${t('!')} / k;`,
    '}',
    '',
  ];
}

/** applyGradients' check of its `grads` (one Float32Array per param). */
export function gradsCheck(m: ModuleInfo, indent: string): string[] {
  const ps = trainedParams(m);
  return [
    `${indent}if (typeof grads !== 'object' || grads === null) throw new TypeError('${m.name}: grads must be an object with a Float32Array per param (as valueAndGrad returns)');`,
    ...ps.map((p) => `${indent}expectArray('gradient', ${JSON.stringify(p.name)}, ${ownMember('grads', p.name)}, Float32Array, ${sizeText(numelSize(p.shape))}, '${p.dtype}[${p.shape.join(',')}]');`),
  ];
}
