// The training step of the GPU.js module (--optimizer): the module's `hyper`, and on the instance
// of `create()` `initOptState`, `trainStep`, `readParams` and `readOptState`. On a device (webgpu,
// WebGL, headless GL) the params, the optimizer state and the gradients stay in device buffers
// between steps: the forward and backward kernels are called one by one on pipeline handles, the
// update is one kernel per param and stored value rendered from the optimizer table's statements
// (codegen/optim.ts), and a step reads back only its loss. Where gpu.js keeps no handles (its cpu
// and webasm modes) the step runs the gradient pipeline and the flat module's JavaScript update on
// the host, in the caller's arrays (docs/training.md, "GPU.js module").

import { numelSize, sizeText } from '../ir/dims.js';
import type { ModuleInfo, Typed } from './module.js';
import { commentText, gradEntries, key, lrCheck, member, ownMember, params } from './module.js';
import { hasModes, modesOf } from './modes.js';
import type { UExpr, UStmt } from './optim.js';
import { clipFactor, OPTIMIZERS, renderJs, scalarNames, slotsOf, updateStatements } from './optim.js';
import type { GroupStep } from './ts/train.js';
import { groupSteps, hyperDecls, lrLine, optStateParts, trainedParams, updateFunction } from './ts/train.js';
import type { GpuAccumNames } from './gpu-accum.js';
import { givenLrCheck, gpuAccumDecls, gpuAccumInterface, gpuAccumNames } from './gpu-accum.js';

/** The module-level names the training step uses, made once (`codeName` gives a fresh one per call). */
export interface TrainNames {
  /** Per param group: its update function and step scalars. */
  readonly steps: readonly GroupStep[];
  readonly sumSq: string;
  /** accumulateGrad, applyUpdate and applyGradients (codegen/gpu-accum.ts). */
  readonly accum: GpuAccumNames;
}

export function trainNames(m: ModuleInfo, codeName: (base: string) => string): TrainNames | undefined {
  return m.optimizer ? { steps: groupSteps(m, codeName), sumSq: codeName('sumOfSquares'), accum: gpuAccumNames(codeName) } : undefined;
}

/** The group step of a param. */
const stepOf = (names: TrainNames, param: string): { s: GroupStep; k: number } => {
  const k = names.steps.findIndex((s) => s.group.params.includes(param));
  return { s: names.steps[k]!, k };
};

/** Module-level declarations: `hyper`, the state's type, its check and the update function. */
export function gpuTrainDecls(m: ModuleInfo, t: Typed, names: TrainNames | undefined): string[] {
  if (!m.optimizer || !names) return [];
  const spec = m.optimizer;
  const def = OPTIMIZERS[spec.name];
  const { stateType, checkState } = optStateParts(m, t);
  const sumSq = names.sumSq;
  return [
    '',
    `// --optimizer ${spec.name}: ${commentText(def.summary)}.`,
    '// On a device trainStep keeps params and optimizer state in device buffers and updates them there',
    '// (readParams, readOptState bring them back); in gpu.js\'s cpu and webasm modes it runs this',
    '// update on the host, in the caller\'s arrays.',
    ...hyperDecls(m, t, stateType),
    ...(t('x') ? ['/** An array on the device: a gpu.js pipeline handle (a WebGPU buffer, a GL texture). */', 'type DeviceArray = { toArray(): Float32Array | Promise<Float32Array>; delete(): void };', ''] : []),
    ...checkState,
    '',
    ...names.steps.flatMap((s, k) => (s.declares ? [...(k ? [''] : []), ...updateFunction(s.group.spec, s.fn, t)] : [])),
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
    ...gpuAccumDecls(m, t, names.accum, names.steps, sumSq),
  ];
}

/** The lines of the `Model` interface the training step adds. */
export function gpuTrainInterface(m: ModuleInfo): string[] {
  if (!m.optimizer) return [];
  return [
    '  /** A fresh optimizer state for these params: step 0, every slot zeros. */',
    '  initOptState(params: Params): OptState;',
    '  /**',
    '   * One training step. On a device the params and the state stay there (readParams, readOptState):',
    '   * the arrays passed in are uploaded at the first step and whenever other objects are passed. In',
    '   * cpu and webasm modes the update runs on the host, in place.',
    '   */',
    '  trainStep(params: Params, state: OptState, inputs: Inputs, options?: { lr?: number; seed?: number; buffers?: Buffers }): Promise<{ loss: number }>;',
    '  /** Copies of the params as the last trainStep left them. */',
    '  readParams(): Promise<Params>;',
    '  /** A copy of the optimizer state as the last trainStep left it. */',
    '  readOptState(): Promise<OptState>;',
    ...gpuAccumInterface(m),
  ];
}

/**
 * The instance's methods. `vagBody`: the lines of valueAndGrad up to and including
 * `const r = ...` (with `options` in scope), `r[k + 1]` then being the gradient of gradEntries' k.
 * `device`: whether `resident`, `deviceStep`, `deviceTail` and `dev` exist (gpuDeviceStep).
 */
export function gpuTrainMethods(m: ModuleInfo, t: Typed, names: TrainNames | undefined, vagBody: readonly string[], device = false): string[] {
  if (!m.optimizer || !names) return [];
  const spec = m.optimizer;
  const slots = slotsOf(spec);
  const all = params(m.fwd);
  const ps = trainedParams(m);
  const sizeOf = (p: (typeof ps)[number]) => sizeText(numelSize(p.shape));
  const { freshSlot } = optStateParts(m, t);
  const grads = gradEntries(m).map((g) => g.name);
  const missing = ps.filter((p) => !grads.includes(p.name));
  if (missing.length) throw new Error(`graphc: the GPU.js training step needs a gradient of every param, and '${missing[0]!.name}' has none`);
  const modes = hasModes(m.fwd);
  const clip = spec.hyper.clipGradNorm;
  const sumSq = names.sumSq;
  const gradOf = (name: string) => `r[${grads.indexOf(name) + 1}]${t('!')}`;
  const nothing = `throw new Error('${m.name}: readParams() has nothing to read: no trainStep has run on this model yet');`;
  // params: every one; a state's slots: the trained ones
  const copyOf = (obj: string, of = ps) => `{ ${of.map((q) => `${key(q.name)}: Float32Array.from(${member(obj, q.name)})`).join(', ')} }`;
  // accumulateGrad's sum and count when the state has them (they stay on the host)
  const accumOf = (st: string) => `, ...(${st}.grad_accum !== undefined ? { grad_accum: ${copyOf(`${st}.grad_accum`)}, accum_count: ${st}.accum_count ?? 0 } : {})`;
  const fromDevice = (list: string, of = ps) => `{ ${of.map((q, k) => `${key(q.name)}: Float32Array.from(await ${list}[${k}]${t('!')}.toArray())`).join(', ')} }`;
  return [
    `    initOptState(params${t(': Params')})${t(': OptState')} {`,
    `      if (typeof params !== 'object' || params === null) throw new TypeError('${m.name}: params must be an object');`,
    ...all.map((p) => `      expectArray('param', ${JSON.stringify(p.name)}, ${ownMember('params', p.name)}, Float32Array, ${sizeOf(p)}, '${p.dtype}[${p.shape.join(',')}]');`),
    `      return { step: 0${slots.map((s) => `, ${s}: ${freshSlot()}`).join('')} };`,
    '    },',
    `    async trainStep(params${t(': Params')}, state${t(': OptState')}, inputs${t(': Inputs')}, stepOptions${t('?: { lr?: number; seed?: number; buffers?: Buffers }')})${t(': Promise<{ loss: number }>')} {`,
    '      checkOptState(state);',
    ...givenLrCheck(m.name, '      '),
    ...(device
      ? [
          '      if (resident) {',
          '        // params and state on the device; a step waits for the one before',
          '        const run = deviceTail.then(() => deviceStep(params, state, inputs, stepOptions));',
          '        deviceTail = run.catch(() => undefined);',
          '        return run;',
          '      }',
        ]
      : []),
    '      // a step waits for the one before: the step number and the scheduled rate are those it runs with',
    '      const run = stepTail.then(async () => {',
    ...[
      `      ${lrLine(spec, 'stepOptions', 'state.step')}`,
      ...lrCheck(m.name, '      '),
      '      const t = state.step + 1; // the step number of this step, from 1',
      ...(modes
        ? [`      const options${t(': Options')} = { seed: stepOptions?.seed ?? t, buffers: stepOptions?.buffers }; // the dropout masks: the seed given, else the step number`]
        : [`      const options${t(': Options | undefined')} = undefined;`]),
      '      // the forward and backward steps on the device, the gradients read back',
      ...vagBody,
      ...(clip !== undefined
        ? [
            `      // clip_grad_norm_(max_norm = ${clip}): every gradient scaled by min(1, N / (‖g‖₂ + 1e-6)), ‖g‖₂ over all of them`,
            `      const clip = ${clipFactor(spec, ps.map((p) => `${sumSq}(${gradOf(p.name)})`).join(' + '))};`,
          ]
        : []),
      '      // the update on the host, in place',
      ...names.steps.flatMap((s, k) => [
        ...s.lines.map((l) => `      ${l}`),
        ...(s.values.length ? [`      const s${k || ''} = new Float64Array([${s.values.join(', ')}]); // ${scalarNames(s.group.spec).join(', ')}: this step's scalars`] : []),
      ]),
      ...ps.map((p) => {
        const { s, k } = stepOf(names, p.name);
        return `      ${s.fn}(${[member('params', p.name), gradOf(p.name), ...slots.map((x) => member('state.' + x, p.name)), sizeOf(p), ...(s.values.length ? [`s${k || ''}`] : [])].join(', ')}); // ${commentText(p.name)}`;
      }),
      '      state.step = t;',
      '      trained = { params, state };',
      `      return { loss: r[0]${t('!')}[0]${t('!')} };`,
    ].map((l) => `  ${l}`),
    '      });',
    '      stepTail = run.catch(() => undefined);',
    '      return run;',
    '    },',
    `    async readParams()${t(': Promise<Params>')} {`,
    ...(device
      ? [
          '      if (resident) {',
          '        await deviceTail;',
          "        // (none there after applyUpdate or applyGradients, which run on the host: then the host's)",
          `        if (dev !== undefined) return ${fromDevice('dev.p', all)};`,
          '      }',
        ]
      : []),
    '      await stepTail;',
    `      if (trained === undefined) ${nothing}`,
    `      return ${copyOf('trained.params', all)};`,
    '    },',
    `    async readOptState()${t(': Promise<OptState>')} {`,
    ...(device
      ? [
          '      if (resident) {',
          '        await deviceTail;',
          `        if (dev !== undefined) return { step: dev.state.step${slots.map((s) => `, ${s}: ${fromDevice(`dev.${s}`)}`).join('')}${accumOf('dev.state')} };`,
          '      }',
        ]
      : []),
    '      await stepTail;',
    `      if (trained === undefined) ${nothing.replace('readParams()', 'readOptState()')}`,
    '      const st = trained.state;',
    `      return { step: st.step${slots.map((s) => `, ${s}: ${copyOf(`st.${s}`)}`).join('')}${accumOf('st')} };`,
    '    },',
  ];
}

/** The instance's record of the params and state the last host trainStep updated (declared before `return {`). */
export function gpuTrainState(m: ModuleInfo, t: Typed): string[] {
  return m.optimizer
    ? [
        `  let trained${t(': { params: Params; state: OptState } | undefined')};`,
        '  /** Every host step runs after the one before (a step awaits its gradient pipeline). */',
        `  let stepTail${t(': Promise<unknown>')} = Promise.resolve();`,
      ]
    : [];
}

// ---------------------------------------------------------------------------------------------
// The step on a device (webgpu, WebGL, headless GL): params, optimizer state and gradients stay in
// device buffers (gpu.js pipeline handles) between steps

/** What the module tells the device step about the gradient pass's arguments and results. */
export interface DeviceStepInfo {
  /** The gradient pass's arguments in order: params, then inputs and state, then constants. */
  readonly args: readonly { readonly kind: 'param' | 'step' | 'const'; readonly n: string }[];
  /** Where `gradSteps` (the gradient kernels called one by one) is declared: it exists. */
  readonly gradSteps: string;
}

/** Rows of threads that each sum this many squares of a gradient (clipping's norm). */
const NORM_CHUNK = 256;

/** Names an update statement reads. */
function readsOf(e: UExpr, out: Set<string>): Set<string> {
  if (typeof e === 'string') out.add(e);
  else if (typeof e !== 'number') {
    readsOf(e.a, out);
    if ('b' in e) readsOf(e.b, out);
  }
  return out;
}

/**
 * The statements that compute `target` (the last value it is set to), and the names whose values
 * before the update they read: the kernel of one stored value computes only what it needs.
 */
export function statementsFor(stmts: readonly UStmt[], target: string): { keep: UStmt[]; live: Set<string> } {
  const last = stmts.map((s) => s.set).lastIndexOf(target);
  const live = new Set([target]);
  const keep: UStmt[] = [];
  for (let k = last; k >= 0; k--) {
    const s = stmts[k]!;
    if (!live.has(s.set)) continue;
    keep.unshift(s);
    live.delete(s.set);
    readsOf(s.to, live);
  }
  return { keep, live };
}

/** Identifier-safe text of a param name for kernel names. */
const ident = (s: string) => s.replace(/[^A-Za-z0-9_$]/g, '_');

/** The kernels of the device step, declared in `create` after the pipelines. */
export function gpuDeviceKernels(
  m: ModuleInfo,
  t: Typed,
  thisType: string,
  codeName: (base: string) => string,
  argSizes: readonly string[],
  steps: readonly GroupStep[],
): { lines: string[]; names: DeviceNames } {
  const spec = m.optimizer!;
  const slots = slotsOf(spec);
  // per param group: the step scalars computed on the host (its scalarNames but clip), and their values
  const hostOf = steps.map((s) => scalarNames(s.group.spec).filter((x) => x !== 'clip'));
  const hostValues = steps.map((s) => s.values.filter((v) => v !== 'clip'));
  const arrays = ['p', 'g', ...slots];
  const ps = trainedParams(m);
  const place = codeName('place');
  const placeBySize = new Map<string, string>();
  const placeOf = (n: string) => placeBySize.get(n) ?? (placeBySize.set(n, codeName(`place_${ident(n)}`)), placeBySize.get(n)!);
  const fnType = (args: readonly string[]) => [t(thisType), ...args.map((a) => `${a}${t(': Float32Array')}`)].filter(Boolean).join(', ');
  const update: DeviceNames['update'] = {};
  const lines: string[] = [
    '',
    '  // trainStep on a device: params, optimizer state and gradients stay in device buffers (pipeline',
    '  // handles) between steps; a kernel that keeps its result (`keep`) gives each call a fresh buffer',
    `  const deviceKernel = (fn${t(`: (${thisType}, ...args: Float32Array[]) => number`)}, n${t(': number')}, keep${t(': boolean')}) =>`,
    `    gpu.createKernel(fn, { output: [n], pipeline: true, immutable: keep, precision: 'single', tactic: 'precision' })${t(' as unknown as (...args: unknown[]) => DeviceArray | Promise<DeviceArray>')};`,
    `  /** An array to the device: a fresh buffer of n floats. */`,
    `  const ${place} = (n${t(': number')}) => deviceKernel(function (${fnType(['src'])})${t(': number')} {`,
    '    return src[this.thread.x];',
    '  }, n, true);',
  ];
  const sizes = new Set<string>(argSizes);
  for (const host of hostOf) if (host.length) sizes.add(String(host.length));
  const body: string[] = [];
  for (const p of ps) {
    const n = sizeText(numelSize(p.shape));
    const k = steps.findIndex((s) => s.group.params.includes(p.name));
    const stmts = updateStatements(steps[k]!.group.spec);
    const host = hostOf[k]!;
    update[p.name] = {};
    for (const target of [...slots, 'p']) {
      if (!stmts.some((s) => s.set === target)) continue;
      const { keep, live } = statementsFor(stmts, target);
      const argArrays = arrays.filter((a) => live.has(a));
      const args = [...argArrays.map((a) => `${a}In`), ...(host.some((h) => live.has(h)) ? ['s'] : []), ...(live.has('clip') ? ['clipv'] : [])];
      const name = codeName(`${spec.name}_${ident(p.name)}_${target}`);
      update[p.name]![target] = { name, args: [...argArrays, ...(host.some((h) => live.has(h)) ? ['s'] : []), ...(live.has('clip') ? ['clip'] : [])] };
      body.push(
        `  // ${commentText(p.name)}: ${target === 'p' ? 'the param' : `state.${target}`} after the step`,
        `  const ${name} = deviceKernel(function (${fnType(args)})${t(': number')} {`,
        '    const i = this.thread.x;',
        ...argArrays.map((a) => `    let ${a} = ${a}In[i];`),
        ...host.flatMap((h, k) => (live.has(h) ? [`    const ${h} = s[${k}];`] : [])),
        ...(live.has('clip') ? ['    const clip = clipv[0];'] : []),
        ...keep.map((s) => `    ${s.set} = ${renderJs(s.to, (x) => x)}; // ${commentText(s.formula)}`),
        `    return ${target};`,
        `  }, ${n}, true);`,
      );
    }
  }
  // clip_grad_norm_: Σ g² in rows of NORM_CHUNK per gradient, the rows summed into a running total
  // by one thread per gradient, the last of which gives the factor
  const norm: DeviceNames['norm'] = [];
  const clip = spec.hyper.clipGradNorm;
  if (clip !== undefined) {
    ps.forEach((p, k) => {
      const n = numelSize(p.shape);
      if (n.syms.length) throw new Error('internal: the device step needs static param sizes');
      const rows = Math.ceil(n.coef / NORM_CHUNK);
      const rowsName = codeName(`squares_${ident(p.name)}`);
      const totalName = codeName(`norm_${ident(p.name)}`);
      const lastOne = k === ps.length - 1;
      norm.push({ param: p.name, rows: rowsName, total: totalName, first: k === 0 });
      body.push(
        `  // Σ g² of ${commentText(p.name)}'s gradient, ${NORM_CHUNK} elements a thread`,
        `  const ${rowsName} = deviceKernel(function (${fnType(['g'])})${t(': number')} {`,
        `    const b = this.thread.x * ${NORM_CHUNK};`,
        '    let s = 0;',
        `    for (let j = 0; j < ${NORM_CHUNK}; j++) {`,
        `      if (b + j < ${n.coef}) {`,
        '        s += g[b + j] * g[b + j];',
        '      }',
        '    }',
        '    return s;',
        `  }, ${rows}, false);`,
        lastOne ? `  // ‖g‖₂ over every gradient, and the factor min(1, N / (‖g‖₂ + 1e-6)) (max_norm N = ${clip})` : `  // the running total of Σ g² up to ${commentText(p.name)}`,
        `  const ${totalName} = deviceKernel(function (${fnType(k === 0 ? ['rows'] : ['rows', 'before'])})${t(': number')} {`,
        `    let s = ${k === 0 ? '0' : 'before[0]'};`,
        `    for (let j = 0; j < ${rows}; j++) {`,
        '      s += rows[j];',
        '    }',
        lastOne ? `    return ${clipFactor(spec, 's')};` : '    return s;',
        '  }, 1, false);',
      );
    });
  }
  for (const n of sizes) lines.push(`  const ${placeOf(n)} = ${place}(${n});`);
  lines.push(...body);
  return { lines, names: { placeOf, update, norm, steps, hostValues } };
}

export interface DeviceNames {
  /** The kernel that places an array of n floats on the device. */
  readonly placeOf: (n: string) => string;
  /** Per param and stored value (a slot, `p`): the update kernel and the values it takes. */
  readonly update: Record<string, Record<string, { name: string; args: string[] }>>;
  /** clip_grad_norm_'s kernels, in param order. */
  readonly norm: { param: string; rows: string; total: string; first: boolean }[];
  /** Per param group: its step, and the values of its scalar array `s` (`s1`, …) computed on the host. */
  readonly steps: readonly GroupStep[];
  readonly hostValues: readonly (readonly string[])[];
}

/**
 * `deviceStep(params, state, inputs, stepOptions)`, declared in `create` before `return {`: the
 * step on the device, and what readParams and readOptState read there.
 */
export function gpuDeviceStep(m: ModuleInfo, t: Typed, info: DeviceStepInfo, names: DeviceNames): string[] {
  const spec = m.optimizer!;
  const slots = slotsOf(spec);
  const ps = params(m.fwd);
  // the state's slots hold the trained params (not the frozen ones): their indices there
  const trained = trainedParams(m).map((p) => ps.findIndex((q) => q.name === p.name));
  const grads = gradEntries(m).map((g) => g.name);
  const modes = modesOf(m.fwd);
  const gradOf = (name: string) => `r[${grads.indexOf(name) + 1}]${t('!')}`;
  const idx = (kind: 'param' | 'step' | 'const') => info.args.flatMap((a, k) => (a.kind === kind ? [k] : []));
  const stepArgs = idx('step');
  const constArgs = idx('const');
  const handle = (e: string) => `${e}${t(' as DeviceArray')}`;
  const lines: string[] = [
    '',
    '  // the params, the optimizer state and the constants on the device, and whose they were',
    `  let dev${t(': { params: Params; state: OptState; p: DeviceArray[]; ' + slots.map((s) => `${s}: DeviceArray[]; `).join('') + 'c: DeviceArray[] } | undefined')};`,
    '  /** Every step runs after the one before (a step awaits its kernels). */',
    `  let deviceTail${t(': Promise<unknown>')} = Promise.resolve();`,
    `  const freeDevice = () => {`,
    '    if (dev === undefined) return;',
    `    for (const h of [...dev.p, ${slots.map((s) => `...dev.${s}, `).join('')}...dev.c]) h.delete();`,
    '    dev = undefined;',
    '  };',
    `  const deviceStep = async (params${t(': Params')}, state${t(': OptState')}, inputs${t(': Inputs')}, stepOptions${t(': { lr?: number; seed?: number; buffers?: Buffers } | undefined')}) => {`,
    '    // the rate from the step number this step runs with (the steps before it have finished)',
    `    ${lrLine(spec, 'stepOptions', 'state.step')}`,
    ...lrCheck(m.name, '    '),
    '    const t = state.step + 1; // the step number of this step, from 1',
    ...(hasModes(m.fwd)
      ? [
          `    const options${t(': Options')} = { seed: stepOptions?.seed ?? t, buffers: stepOptions?.buffers }; // the dropout masks: the seed given, else the step number`,
          '    checkOptions(options, true, true);',
        ]
      : [`    const options${t(': Options | undefined')} = undefined;`]),
    '    const a = args(params, inputs, options);',
    '    if (dev === undefined || dev.params !== params || dev.state !== state) {',
    '      // params or a state this model has not seen (the first step, a checkpoint): to the device',
    '      freeDevice();',
    '      dev = {',
    '        params,',
    '        state,',
    `        p: [${ps.map((p, k) => handle(`await ${names.placeOf(info.args[k]!.n)}(a[${k}])`)).join(', ')}],`,
    ...slots.map((s) => `        ${s}: [${trained.map((k) => handle(`await ${names.placeOf(info.args[k]!.n)}(${member(`state.${s}`, ps[k]!.name)})`)).join(', ')}],`),
    `        c: [${constArgs.map((k) => handle(`await ${names.placeOf(info.args[k]!.n)}(a[${k}])`)).join(', ')}],`,
    '      };',
    '    }',
    '    const d = dev;',
    '    // this step\'s inputs (and mode flag, dropout masks, running statistics) to the device',
    `    const up${t(': DeviceArray[]')} = [${stepArgs.map((k) => handle(`await ${names.placeOf(info.args[k]!.n)}(a[${k}])`)).join(', ')}];`,
    '    // the forward and backward kernels, one by one: the gradients stay on the device',
    `    const r = (await ${info.gradSteps}(${info.args.map((a, k) => (a.kind === 'param' ? `d.p[${k}]` : a.kind === 'step' ? `up[${stepArgs.indexOf(k)}]` : `d.c[${constArgs.indexOf(k)}]`)).join(', ')}))${t(' as DeviceArray[]')};`,
    ...names.steps.flatMap((s, k) => {
      const v = names.hostValues[k]!;
      return [...s.lines.map((l) => `    ${l}`), ...(v.length ? [`    const s${k || ''} = ${handle(`await ${names.placeOf(String(v.length))}(Float32Array.of(${v.join(', ')}))`)}; // ${v.join(', ')}: this step's scalars`] : [])];
    }),
    ...(names.norm.length
      ? [
          `    // clip_grad_norm_(max_norm = ${spec.hyper.clipGradNorm}): the factor min(1, N / (‖g‖₂ + 1e-6)), on the device`,
          `    let clip${t(': DeviceArray')} = ${handle(`await ${names.norm[0]!.total}(await ${names.norm[0]!.rows}(${gradOf(names.norm[0]!.param)}))`)};`,
          ...names.norm.slice(1).map((x) => `    clip = ${handle(`await ${x.total}(await ${x.rows}(${gradOf(x.param)}), clip)`)};`),
        ]
      : []),
    '    // the update: every new param and state array from the old ones, in fresh buffers',
    ...trained.flatMap((k, j) => {
      // k: the param's index among the params, j: among the state's
      const p = ps[k]!;
      const u = names.update[p.name]!;
      const g = names.steps.findIndex((s) => s.group.params.includes(p.name));
      const argOf = (a: string) => (a === 'p' ? `d.p[${k}]${t('!')}` : a === 'g' ? gradOf(p.name) : a === 's' ? `s${g || ''}` : a === 'clip' ? 'clip' : `d.${a}[${j}]${t('!')}`);
      const at = (target: string) => (target === 'p' ? `d.p[${k}]` : `d.${target}[${j}]`);
      return [
        `    {`,
        `      // ${commentText(p.name)}`,
        ...Object.entries(u).map(([target, x]) => `      const ${target}New = ${handle(`await ${x.name}(${x.args.map(argOf).join(', ')})`)};`),
        ...Object.keys(u).map((target) => `      ${at(target)}${t('!')}.delete();`),
        ...Object.keys(u).map((target) => `      ${at(target)} = ${target}New;`),
        '    }',
      ];
    }),
    '    for (const h of up) h.delete();',
    ...names.hostValues.flatMap((v, k) => (v.length ? [`    s${k || ''}.delete();`] : [])),
    ...(modes.buffers.length
      ? [
          '    // the next running statistics into the caller\'s buffers',
          ...modes.buffers.map((b, k) => `    ${member(`options.buffers${t('!')}`, b.name)}.set(await r[${grads.length + 1 + k}]${t('!')}.toArray());`),
        ]
      : []),
    '    state.step = t;',
    `    const loss = (await r[0]${t('!')}.toArray())[0]${t('!')}; // the one value read back`,
    '    return { loss };',
    '  };',
  ];
  return lines;
}
