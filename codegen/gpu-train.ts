// The training step of the GPU.js module (--optimizer): the module's `hyper`, and on the instance
// of `create()` `initOptState`, `trainStep` and `readParams`. The step runs the gradient pipeline
// (forward and backward kernels on the device, the gradients read back), then the optimizer
// table's statements (codegen/optim.ts) as the flat module's JavaScript loop on the host. Params
// and optimizer state live on the host, in the caller's arrays: device residency between steps is
// not done yet (docs/training.md, "GPU.js module").

import { numelSize, sizeText } from '../ir/dims.js';
import type { ModuleInfo, Typed } from './module.js';
import { commentText, gradEntries, key, member, params } from './module.js';
import { hasModes } from './modes.js';
import { OPTIMIZERS, scalarNames, stepScalars } from './optim.js';
import { hyperLiteral, optStateParts, updateFunction } from './ts/train.js';

/** The module-level names the training step uses, made once (`codeName` gives a fresh one per call). */
export interface TrainNames {
  readonly step: string;
  readonly sumSq: string;
}

export function trainNames(m: ModuleInfo, codeName: (base: string) => string): TrainNames | undefined {
  return m.optimizer ? { step: codeName(`${m.optimizer.name}Step`), sumSq: codeName('sumOfSquares') } : undefined;
}

/** Module-level declarations: `hyper`, the state's type, its check and the update function. */
export function gpuTrainDecls(m: ModuleInfo, t: Typed, names: TrainNames | undefined): string[] {
  if (!m.optimizer || !names) return [];
  const spec = m.optimizer;
  const def = OPTIMIZERS[spec.name];
  const slots = def.slots(spec.hyper);
  const { stateType, checkState } = optStateParts(m, t);
  const sumSq = names.sumSq;
  return [
    '',
    `// --optimizer ${spec.name}: ${commentText(def.summary)}.`,
    '// trainStep runs the gradient pipeline on the device and this update on the host (params and',
    '// optimizer state stay in the caller\'s arrays between steps).',
    `/** The build-time hyperparameters; trainStep's options.lr overrides lr for one call (schedules). */`,
    `export const hyper = ${hyperLiteral(spec)}${t(' as const')};`,
    '',
    ...(t('x') ? [`/** The optimizer's state: the step count and, per param, ${slots.length ? slots.join(' and ') : 'nothing else'} (torch.optim's names). */`, `export interface OptState ${stateType}`, ''] : []),
    ...checkState,
    '',
    ...updateFunction(spec, names.step, t),
    ...(spec.hyper.clipGradNorm !== undefined
      ? [
          '',
          `function ${sumSq}(a${t(': Float32Array')})${t(': number')} {`,
          '  let s = 0;',
          `  for (let i = 0; i < a.length; i++) s += a[i]${t('!')} * a[i]${t('!')};`,
          '  return s;',
          '}',
        ]
      : []),
  ];
}

/** The lines of the `Model` interface the training step adds. */
export function gpuTrainInterface(m: ModuleInfo): string[] {
  if (!m.optimizer) return [];
  return [
    '  /** A fresh optimizer state for these params: step 0, every slot zeros. */',
    '  initOptState(params: Params): OptState;',
    '  /** One training step, in place: gradients on the device, the update of params and state on the host. */',
    '  trainStep(params: Params, state: OptState, inputs: Inputs, options?: { lr?: number; seed?: number; buffers?: Buffers }): Promise<{ loss: number }>;',
    '  /** Copies of the params as the last trainStep left them. */',
    '  readParams(): Promise<Params>;',
  ];
}

/**
 * The instance's methods. `vagBody`: the lines of valueAndGrad up to and including
 * `const r = ...` (with `options` in scope), `r[k + 1]` then being the gradient of gradEntries' k.
 */
export function gpuTrainMethods(m: ModuleInfo, t: Typed, names: TrainNames | undefined, vagBody: readonly string[]): string[] {
  if (!m.optimizer || !names) return [];
  const spec = m.optimizer;
  const slots = OPTIMIZERS[spec.name].slots(spec.hyper);
  const ps = params(m.fwd);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const { freshSlot } = optStateParts(m, t);
  const grads = gradEntries(m).map((g) => g.name);
  const missing = ps.filter((p) => !grads.includes(p.name));
  if (missing.length) throw new Error(`graphc: the GPU.js training step needs a gradient of every param, and '${missing[0]!.name}' has none`);
  const modes = hasModes(m.fwd);
  const clip = spec.hyper.clipGradNorm;
  const sumSq = names.sumSq;
  const gradOf = (name: string) => `r[${grads.indexOf(name) + 1}]${t('!')}`;
  const fn = names.step;
  const scalars = scalarNames(spec);
  return [
    `    initOptState(params${t(': Params')})${t(': OptState')} {`,
    `      if (typeof params !== 'object' || params === null) throw new TypeError('${m.name}: params must be an object');`,
    ...ps.map((p) => `      expectArray('param', ${JSON.stringify(p.name)}, ${member('params', p.name)}, Float32Array, ${sizeOf(p)}, '${p.dtype}[${p.shape.join(',')}]');`),
    `      return { step: 0${slots.map((s) => `, ${s}: ${freshSlot()}`).join('')} };`,
    '    },',
    `    async trainStep(params${t(': Params')}, state${t(': OptState')}, inputs${t(': Inputs')}, stepOptions${t('?: { lr?: number; seed?: number; buffers?: Buffers }')})${t(': Promise<{ loss: number }>')} {`,
    '      const lr = stepOptions?.lr ?? hyper.lr;',
    `      if (typeof lr !== 'number' || !Number.isFinite(lr)) throw new TypeError(\`${m.name}: the learning rate must be a finite number, got \${lr}\`);`,
    '      checkOptState(state);',
    '      const t = state.step + 1; // the step number of this step, from 1',
    ...(modes
      ? [`      const options${t(': Options')} = { seed: stepOptions?.seed ?? t, buffers: stepOptions?.buffers }; // the dropout masks: the seed given, else the step number`]
      : [`      const options${t(': Options | undefined')} = undefined;`]),
    '      // the forward and backward steps on the device, the gradients read back',
    ...vagBody,
    ...stepScalars(spec).map((s) => `      const ${s.name} = ${s.code}; // ${commentText(s.formula)}`),
    ...(clip !== undefined
      ? [
          `      // clip_grad_norm_(max_norm = ${clip}): every gradient scaled by min(1, N / (‖g‖₂ + 1e-6)), ‖g‖₂ over all of them`,
          `      const clip = Math.min(1, ${clip} / (Math.sqrt(${ps.map((p) => `${sumSq}(${gradOf(p.name)})`).join(' + ')}) + 1e-6));`,
        ]
      : []),
    '      // the update on the host, in place',
    ...(scalars.length ? [`      const s = new Float64Array([${scalars.join(', ')}]); // ${scalars.join(', ')}: this step's scalars`] : []),
    ...ps.map((p) => `      ${fn}(${[member('params', p.name), gradOf(p.name), ...slots.map((s) => member('state.' + s, p.name)), sizeOf(p), ...(scalars.length ? ['s'] : [])].join(', ')}); // ${commentText(p.name)}`),
    '      state.step = t;',
    '      trained = params;',
    `      return { loss: r[0]${t('!')}[0]${t('!')} };`,
    '    },',
    `    async readParams()${t(': Promise<Params>')} {`,
    `      if (trained === undefined) throw new Error('${m.name}: readParams() has nothing to read: no trainStep has run on this model yet');`,
    `      const p = trained;`,
    `      return { ${ps.map((q) => `${key(q.name)}: Float32Array.from(${member('p', q.name)})`).join(', ')} };`,
    '    },',
  ];
}

/** The instance's record of the params the last trainStep updated (declared before `return {`). */
export function gpuTrainState(m: ModuleInfo, t: Typed): string[] {
  return m.optimizer ? [`  let trained${t(': Params | undefined')};`] : [];
}
