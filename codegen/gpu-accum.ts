// Gradient accumulation and caller-given gradients in the GPU.js module (--optimizer): the
// instance's async `accumulateGrad`, `applyUpdate` and `applyGradients`, the flat module's
// (codegen/ts/accum.ts) on the host: the gradients are read back from the gradient pipeline (as
// valueAndGrad's), added into `state.grad_accum` in the caller's arrays, and each step is the
// host update of trainStep in cpu and webasm modes (clipping included). On a device, where
// trainStep keeps params and state in device buffers, these calls first bring a resident copy of
// the same params and state back into the caller's arrays (the next trainStep uploads them again).
// See docs/training.md, "GPU.js module".

import { numelSize, sizeText } from '../ir/dims.js';
import type { ModuleInfo, Typed } from './module.js';
import { commentText, gradEntries, key, lrCheck, member, params } from './module.js';
import { hasModes } from './modes.js';
import { clipFactor, scalarNames, slotsOf } from './optim.js';
import type { AccumHelperNames } from './ts/accum.js';
import { accumHelpers, gradsCheck, gradsType, nothingAccumulated } from './ts/accum.js';
import type { GroupStep } from './ts/train.js';
import { lrLine, trainedParams } from './ts/train.js';

export interface GpuAccumNames extends AccumHelperNames {
  /** The host update of every param with given gradients. */
  readonly hostStep: string;
}

export function gpuAccumNames(codeName: (base: string) => string): GpuAccumNames {
  return {
    checkParams: codeName('checkParams'),
    checkAccum: codeName('checkAccum'),
    addInto: codeName('addInto'),
    divide: codeName('divideBy'),
    hostStep: codeName('hostStep'),
  };
}

/**
 * Module-level declarations: the checks, the loops, and `hostStep(params, state, grads, lr)`, the
 * update of trainStep's host path with the gradients in `grads` (one array per trained param, in
 * order; a frozen param has none). `steps`, `sumSq`: the param groups' update functions and step
 * scalars, and clipping's sum of squares, that gpuTrainDecls declares.
 */
export function gpuAccumDecls(m: ModuleInfo, t: Typed, n: GpuAccumNames, steps: readonly GroupStep[], sumSq: string): string[] {
  const spec = m.optimizer!;
  const slots = slotsOf(spec);
  const ps = trainedParams(m);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const clip = spec.hyper.clipGradNorm;
  return [
    '',
    ...accumHelpers(m, t, n),
    '/** One update of every trained param on the host with the gradients in `grads` (in param order): trainStep\'s, clipping included. */',
    `function ${n.hostStep}(params${t(': Params')}, state${t(': OptState')}, grads${t(': Float32Array[]')}, lr${t(': number')})${t(': void')} {`,
    '  const t = state.step + 1; // the step number of this step, from 1',
    ...(clip !== undefined
      ? [
          `  // clip_grad_norm_(max_norm = ${clip}): every gradient scaled by min(1, N / (‖g‖₂ + 1e-6)), ‖g‖₂ over all of them`,
          `  const clip = ${clipFactor(spec, ps.map((_p, k) => `${sumSq}(grads[${k}]${t('!')})`).join(' + '))};`,
        ]
      : []),
    ...steps.flatMap((s, k) => [
      ...s.lines.map((l) => `  ${l}`),
      ...(s.values.length ? [`  const s${k || ''} = new Float64Array([${s.values.join(', ')}]); // ${scalarNames(s.group.spec).join(', ')}: this step's scalars`] : []),
    ]),
    ...ps.map((p, j) => {
      const k = steps.findIndex((s) => s.group.params.includes(p.name));
      const s = steps[k]!;
      return `  ${s.fn}(${[member('params', p.name), `grads[${j}]${t('!')}`, ...slots.map((x) => member('state.' + x, p.name)), sizeOf(p), ...(s.values.length ? [`s${k || ''}`] : [])].join(', ')}); // ${commentText(p.name)}`;
    }),
    '  state.step = t;',
    '}',
  ];
}

/**
 * The check of a learning rate the caller gives (`stepOptions.lr`), made when a step is called; the
 * scheduled rate is computed when the step runs, from the step number it runs with.
 */
export function givenLrCheck(name: string, indent: string): string[] {
  return [
    `${indent}if (stepOptions !== undefined && stepOptions.lr !== undefined) {`,
    `${indent}  const lr = stepOptions.lr;`,
    ...lrCheck(name, indent + '  '),
    `${indent}}`,
  ];
}

/** The lines of the `Model` interface. */
export function gpuAccumInterface(m: ModuleInfo): string[] {
  if (!m.optimizer) return [];
  const grads = gradsType(m);
  return [
    '  /** Adds the gradient of this batch\'s loss into state.grad_accum (made by the first call), counted in state.accum_count. */',
    '  accumulateGrad(params: Params, state: OptState, inputs: Inputs, options?: { seed?: number; buffers?: Buffers }): Promise<{ loss: number }>;',
    '  /** One optimizer step with the mean of the accumulated gradients, in place; then state.grad_accum zeros, state.accum_count 0. */',
    '  applyUpdate(params: Params, state: OptState, options?: { lr?: number }): Promise<void>;',
    '  /** One optimizer step with the gradients given (one Float32Array per trained param), in place; clipping applies to them. */',
    `  applyGradients(params: Params, state: OptState, grads: ${grads}, options?: { lr?: number }): Promise<void>;`,
  ];
}

/**
 * The instance's methods. `vagBody`: valueAndGrad's lines up to `const r = ...` (with `options` in
 * scope); `device`: whether `dev`, `deviceTail` and `freeDevice` exist (gpuDeviceStep).
 */
export function gpuAccumMethods(m: ModuleInfo, t: Typed, n: GpuAccumNames | undefined, vagBody: readonly string[], device: boolean): string[] {
  if (!m.optimizer || !n) return [];
  const ps = trainedParams(m);
  const grads = gradEntries(m).map((g) => g.name);
  // a given rate is checked when called; the scheduled one read from state.step once the steps
  // before this call have finished (sync)
  const lrLines = givenLrCheck(m.name, '      ');
  const sync = ['      await stepTail;', ...(device ? ['      await hostCopy(params, state);'] : [])];
  const rate = [`      ${lrLine(m.optimizer, 'stepOptions', 'state.step')}`, ...lrCheck(m.name, '      ')];
  const list = (obj: string) => `[${ps.map((p) => member(obj, p.name)).join(', ')}]`;
  return [
    `    async applyGradients(params${t(': Params')}, state${t(': OptState')}, grads${t(`: ${gradsType(m)}`)}, stepOptions${t('?: { lr?: number }')})${t(': Promise<void>')} {`,
    '      checkOptState(state);',
    ...lrLines,
    `      ${n.checkParams}(params);`,
    ...gradsCheck(m, '      '),
    ...sync,
    ...rate,
    `      ${n.hostStep}(params, state, ${list('grads')}, lr);`,
    '      trained = { params, state };',
    '    },',
    `    async accumulateGrad(params${t(': Params')}, state${t(': OptState')}, inputs${t(': Inputs')}, stepOptions${t('?: { seed?: number; buffers?: Buffers }')})${t(': Promise<{ loss: number }>')} {`,
    '      checkOptState(state);',
    `      ${n.checkAccum}(state);`,
    ...(hasModes(m.fwd)
      ? [`      const options${t(': Options')} = { seed: stepOptions?.seed, buffers: stepOptions?.buffers }; // the dropout masks: the seed given, else fresh ones`]
      : [`      const options${t(': Options | undefined')} = undefined;`]),
    ...sync,
    ...vagBody,
    `      const acc = state.grad_accum ??= { ${ps.map((p) => `${key(p.name)}: new Float32Array(${sizeText(numelSize(p.shape))})`).join(', ')} };`,
    ...ps.map((p) => `      ${n.addInto}(${member('acc', p.name)}, r[${grads.indexOf(p.name) + 1}]${t('!')}); // ${commentText(p.name)}`),
    '      state.accum_count = (state.accum_count ?? 0) + 1;',
    `      return { loss: r[0]${t('!')}[0]${t('!')} };`,
    '    },',
    `    async applyUpdate(params${t(': Params')}, state${t(': OptState')}, stepOptions${t('?: { lr?: number }')})${t(': Promise<void>')} {`,
    '      checkOptState(state);',
    ...lrLines,
    `      ${n.checkAccum}(state);`,
    `      ${n.checkParams}(params);`,
    '      const k = state.accum_count ?? 0;',
    `      if (k === 0) throw new Error(${JSON.stringify(nothingAccumulated(m.name))});`,
    ...sync,
    ...rate,
    `      const acc = state.grad_accum${t('!')};`,
    ...ps.map((p) => `      ${n.divide}(${member('acc', p.name)}, k);`),
    `      ${n.hostStep}(params, state, ${list('acc')}, lr);`,
    ...ps.map((p) => `      ${member('acc', p.name)}.fill(0);`),
    '      state.accum_count = 0;',
    '      trained = { params, state };',
    '    },',
  ];
}

/**
 * `hostCopy(params, state)`, declared in `create` after deviceStep (on a device only): when the
 * device holds these params and this state (trainStep left them there), their values back into
 * the caller's arrays and the device's copies freed, so that a host step starts from them.
 */
export function gpuHostCopy(m: ModuleInfo, t: Typed): string[] {
  if (!m.optimizer) return [];
  const slots = slotsOf(m.optimizer);
  const ps = params(m.fwd);
  // the state's slots hold the trained params only (as dev's): their indices there
  const trained = trainedParams(m);
  return [
    '  /** The params and state that trainStep keeps on the device, back into the caller\'s arrays (then freed there). */',
    `  const hostCopy = async (params${t(': Params')}, state${t(': OptState')}) => {`,
    '    await deviceTail;',
    '    if (dev === undefined || dev.params !== params || dev.state !== state) return;',
    `    const d = dev;`,
    ...ps.map((p, k) => `    ${member('params', p.name)}.set(await d.p[${k}]${t('!')}.toArray());`),
    ...slots.flatMap((s) => trained.map((p, j) => `    ${member(`state.${s}`, p.name)}.set(await d.${s}[${j}]${t('!')}.toArray());`)),
    '    trained = { params, state }; // what readParams and readOptState read from now on',
    '    freeDevice();',
    '  };',
  ];
}
