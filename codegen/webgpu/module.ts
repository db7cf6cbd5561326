// The WebGPU module (`graphc build --target webgpu`): the host program of the kernel form
// (codegen/kernel/lower.ts) rendered as WGSL shaders (wgsl.ts, routines.ts) and a small runtime
// that creates the buffers and pipelines and runs an entry point as one command encoder and one
// submit. It imports nothing: `create({ device })` takes a GPUDevice, or asks navigator.gpu for one.
// Every array of the program has a storage buffer of its own (the memory plan's sharing of
// buffers is for sequential loops; shaders run in parallel). Symbolic dimensions: the shaders
// are template literals over the bound sizes, and a call builds the buffers, pipelines and bind
// groups for its sizes the first time it brings them; with --optimizer the arrays trainStep keeps
// (RESIDENT) live in arenas that every set of sizes shares (runtime.ts).

import { size, symbols } from '../../ir/dims.js';
import { CompileError } from '../../ir/errors.js';
import { isForwardOnly } from '../../ir/autodiff.js';
import type { Launch } from '../kernel/form.js';
import { launchesOf, lowerProgram } from '../kernel/lower.js';
import { hasModes, initBuffersDecl, modesOf, optionsDecl, stateCode } from '../modes.js';
import type { ModuleInfo, Typed } from '../module.js';
import { checkDecl, checkFiniteDecl, gradEntries, header, initDecl, inputs, key, member, outputs, params, specDecl, typeDecls, typedAs } from '../module.js';
import { FUSED, renderRoutine } from './routines.js';
import { runtimeDecl } from './runtime.js';
import { webgpuTrain } from './train.js';
import { gradsType } from '../ts/accum.js';
import type { Shader } from './wgsl.js';
import { js, renderKernel, WGSL_CAPABILITIES } from './wgsl.js';
import { decomposeLaunch } from '../kernel/decompose.js';
import { hasLoops, loopRuns, runsCode } from './loop.js';

/** The shaders of a launch (its primitives decomposed into WGSL's): a kernel's, or a routine's and then its epilogue's. */
function shadersOf(launch: Launch, dtypeOf: (a: string) => 'f32' | 'i32'): Shader[] {
  const l = decomposeLaunch(launch, WGSL_CAPABILITIES);
  if (l.kind === 'kernel') return [renderKernel(l, dtypeOf)];
  return [renderRoutine(l, dtypeOf), ...(l.epilogue && !FUSED.has(l.op) ? [renderKernel(l.epilogue, dtypeOf)] : [])];
}

const tpl = (s: string) => '`' + s.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';

export function emitWebgpu(m: ModuleInfo, typed = true): string {
  if (m.derivedKind) throw new CompileError('the webgpu target has no --hvp or --jvp functions yet', 'build them with the ts or wasm target');
  const t = typedAs(typed);
  const prog = lowerProgram(m.fwd, m.bwd, m.plan);
  const syms = symbols(m.fwd);
  const arrays = new Map(prog.arrays.map((a) => [a.name, a]));
  const dtypeOf = (a: string) => {
    const d = arrays.get(a);
    if (!d) throw new CompileError(`internal: the webgpu module has no array ${a}`);
    return d.dtype;
  };
  // shaders, in launch order; a launch's shader indices
  const shaders: Shader[] = [];
  const indexOf = new Map<string, number[]>();
  for (const l of launchesOf(prog)) {
    const list = shadersOf(l, dtypeOf);
    indexOf.set(l.name, list.map((_s, k) => shaders.length + k));
    shaders.push(...list);
  }
  const lossOut = isForwardOnly(m.fwd) ? undefined : m.fwd.outputs.find((o) => o.name === 'loss');
  const modes = modesOf(m.fwd);
  const entry = (name: 'forward' | 'valueAndGrad') => prog.entries.find((e) => e.name === name)!;
  // a scan that stays a loop: its body's shaders once, and shaders of its own (codegen/webgpu/loop.ts)
  const loops = hasLoops(prog);
  const arrayOf = (a: string) => {
    const d = arrays.get(a);
    if (!d) throw new CompileError(`internal: the webgpu module has no array ${a}`);
    return d;
  };
  const loopParts = loopRuns(shaders, indexOf, arrayOf);
  const runLists = { forward: runsCode(loopParts.runs(entry('forward').steps)), valueAndGrad: lossOut ? runsCode(loopParts.runs(entry('valueAndGrad').steps)) : '[]' };
  const programShaders = shaders.length;
  const runs = (name: 'forward' | 'valueAndGrad') => runLists[name];
  const readsOf = (name: 'forward' | 'valueAndGrad') => entry(name).steps.flatMap((s) => (s.kind === 'read' ? [[s.output, s.array] as const] : []));
  const fwdReads = readsOf('forward');
  // valueAndGrad also reads the next running statistics back (a training call saves them)
  const nextReads = modes.buffers.flatMap((b) => fwdReads.filter(([o]) => o === b.name));
  const gradReads = [...readsOf('valueAndGrad'), ...nextReads.map(([o, a]) => [`next ${o}`, a] as const)];
  const stages = entry('forward').steps.flatMap((s) => (s.kind === 'stage' ? [s] : []));
  const sizesOf = (v: (d: string) => string) => (syms.length ? `{ ${syms.map((d) => `${d}: ${v(d)}`).join(', ')} }` : '{}');
  const residentOk = (a: string) => arrayOf(a).place.kind !== 'const' && size(arrayOf(a).numel).syms.length === 0;
  const train = lossOut ? webgpuTrain(m, t, prog, { stages, gradReads, syms, sizes: sizesOf((d) => `dims.${d}`), ones: sizesOf(() => '1'), residentOk }) : undefined;
  if (m.optimizer && !lossOut) throw new CompileError('the webgpu target trains only a model with a loss');
  if (train) shaders.push(...train.shaders);

  const sizesParam = syms.length ? `{ ${syms.join(', ')} }${t(': Sizes')}` : '';
  const arrayLines = prog.arrays.map((a) => {
    const data = a.place.kind === 'const' ? `, data: [${a.place.data.map((x) => (Number.isNaN(x) ? 'NaN' : Object.is(x, -0) ? '-0' : String(x))).join(', ')}]` : '';
    return `    ${key(a.name)}: { dtype: '${a.dtype}', numel: ${js(a.numel)}${data} },`;
  });
  const hostOf = new Map([...(modes.mode ? [[modes.mode, 'host_mode']] : []), ...modes.masks.map((k) => [k.value, `host_mask${k.site}`])] as [string, string][]);
  const stateState = stateCode(m, t, (v) => hostOf.get(v)!, 'options', 'callState', false).set;
  const stageLines = stages.map((s) => {
    const arr = JSON.stringify(s.array);
    if (s.source === 'param') return `    if (withParams) write(b, ${arr}, ${member('params', s.key)});`;
    if (s.source === 'input') return `    write(b, ${arr}, ${member('inputs', s.key)});`;
    if (s.key === 'mode') return `    write(b, ${arr}, host_mode);`;
    if (s.key.startsWith('dropout_mask ')) return `    write(b, ${arr}, host_mask${s.key.slice('dropout_mask '.length)});`;
    return `    write(b, ${arr}, ${member(`options.buffers${t('!')}`, s.key)});`;
  });
  const stateful = hasModes(m.fwd);
  const hostDecls = [
    ...(modes.mode ? [`  const host_mode = new Float32Array(1);`] : []),
    ...modes.masks.map((k) => `  let host_mask${k.site} = new Float32Array(0);`),
  ];
  const maskSizes = maskSizeLines(modes.masks, prog, stages, syms, t);
  const outs = outputs(m.fwd);
  const lines: string[] = [
    ...header(m, 'WebGPU: WGSL shaders of the kernel form and the runtime that runs them, one submit per call.', 'fresh'),
    '',
    ...specDecl(m, t),
    '',
    ...(typed ? typeDecls(m) : []),
    ...(typed && syms.length ? ['/** The sizes of the symbolic dimensions. */', `type Sizes = { ${syms.map((d) => `${d}: number`).join('; ')} };`, ''] : []),
    ...(typed ? webgpuTypes(m, lossOut !== undefined) : []),
    ...initDecl(m, t),
    ...initBuffersDecl(m, t),
    '',
    ...checkDecl(m, t),
    ...checkFiniteDecl(m, t),
    ...optionsDecl(m, t),
    ...(train?.decls ?? []),
    '',
    '/** The WGSL source of every shader, for the sizes of the symbolic dimensions. */',
    `function shaders(${sizesParam})${t(': string[]')} {`,
    '  return [',
    ...shaders.map((s) => `    ${tpl(s.wgsl)},`),
    '  ];',
    '}',
    '',
    '/** Each shader\'s bound arrays (binding 0, 1, ...; `true`: written) and workgroups to dispatch. */',
    `function layout(${sizesParam})${t(': { arrays: [string, boolean][]; groups: [number, number, number] }[]')} {`,
    '  return [',
    ...shaders.map((s) => {
      const groups = s.groups ? `[${s.groups.join(', ')}]` : `grid(${s.threads})`;
      return `    { arrays: [${s.arrays.map((a) => `[${JSON.stringify(a.name)}, ${a.write}]`).join(', ')}], groups: ${groups} },`;
    }),
    '  ];',
    '}',
    '',
    '/** The arrays of the host program: element type, element count, constant data. */',
    `function arrayDecls(${sizesParam})${t(': Record<string, { dtype: string; numel: number; data?: number[] }>')} {`,
    '  return {',
    ...arrayLines,
    ...loopParts.arrays.map((a) => `    ${JSON.stringify(a.name)}: { dtype: '${a.dtype}', numel: ${a.numel} },`),
    ...(train?.arrays ?? []).map((a) => `    ${JSON.stringify(a.name)}: { dtype: 'f32', numel: ${a.numel} },`),
    '  };',
    '}',
    '',
    `/** The shaders forward runs, in order${lossOut ? ', and valueAndGrad\'s' : ''}; the arrays they read back. */`,
    ...(loops ? ['// a loop: `n`, the factors of its trip count (numbers, and symbolic sizes by name); `body`, one step'] : []),
    `const FORWARD${t(loops ? ': Run[]' : '')} = ${runs('forward')};`,
    `const FORWARD_READS${t(': [string, string][]')} = ${JSON.stringify(fwdReads)};`,
    ...(lossOut ? [`const GRAD${t(loops ? ': Run[]' : '')} = ${runs('valueAndGrad')};`, `const GRAD_READS${t(': [string, string][]')} = ${JSON.stringify(gradReads)};`] : []),
    '',
    ...(train ? ['/** The arrays trainStep keeps on the device (params, optimizer state, gradients): in arenas every set of sizes shares. */', `const RESIDENT = new Set(${JSON.stringify(train.resident)});`, ''] : []),
    ...runtimeDecl(m, t, syms, train !== undefined),
    '',
    '/**',
    ' * Creates the model on `options.device`, or on a device of navigator.gpu\'s adapter (asking for',
    ' * its storage buffer limits); rejects where there is no WebGPU.',
    ' */',
    `export async function create(options${t(': { device?: GPUDevice }')} = {})${t(': Promise<Model>')} {`,
    `  const device = await acquire(options${t(' as { device?: GPUDevice }')});`,
    `  const rt = runtime(device);`,
    ...hostDecls,
    `  const stage = (b${t(': Built')}, params${t(': Params')}, inputs${t(': Inputs')}, options${t(stateful ? ': Options' : '?: Options')}, withParams = true) => {`,
    ...(stateful ? maskSizes : []),
    ...stateState.map((l) => `    ${l}`),
    ...stageLines,
    '  };',
    `  const write = (b${t(': Built')}, name${t(': string')}, data${t(': Float32Array | Int32Array')}) => rt.write(b, name, data);`,
    ...(train?.create(programShaders) ?? []),
    '  return {',
    '    device,',
    ...methods(m, t, lossOut !== undefined, outs, syms),
    ...(train?.methods ?? []),
    '  };',
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** stage(): each dropout mask's host array at its size, over the symbolic dimensions the sizes of the build it goes to. */
function maskSizeLines(masks: ReturnType<typeof modesOf>['masks'], prog: ReturnType<typeof lowerProgram>, stages: readonly { key: string; array: string }[], syms: readonly string[], t: Typed): string[] {
  const arrays = masks.map((k) => prog.arrays.find((x) => x.name === stages.find((s) => s.key === `dropout_mask ${k.site}`)?.array));
  const used = syms.filter((d) => arrays.some((a) => a && size(a.numel).syms.includes(d)));
  return [
    ...(used.length ? [`    const { ${used.join(', ')} } = b.sizes${t(' as Sizes')};`] : []),
    ...masks.map((k, j) => {
      const n = arrays[j] ? js(arrays[j]!.numel) : '0';
      return `    if (host_mask${k.site}.length !== ${n}) host_mask${k.site} = new Float32Array(${n});`;
    }),
  ];
}

/** forward, valueAndGrad, destroy. */
function methods(m: ModuleInfo, t: Typed, withGrad: boolean, outs: ReturnType<typeof outputs>, syms: readonly string[]): string[] {
  const stateful = hasModes(m.fwd);
  const modes = modesOf(m.fwd);
  const optionsParam = stateful ? `options${t(': Options')} = noOptions` : `options${t('?: Options')}`;
  const check = (train: boolean) => [...(stateful ? [`      checkOptions(options, ${train}, false);`] : [])];
  const sizes = syms.length ? `{ ${syms.map((d) => `${d}: dims.${d}`).join(', ')} }` : '{}';
  const finite = finiteChecks(m, t);
  const save = (reads: string) =>
    modes.buffers.length
      ? ['      if (callState.train) {', ...modes.buffers.map((b) => `        ${member(`options.buffers${t('!')}`, b.name)}.set(${reads}[${JSON.stringify(reads === 'r' ? b.name : `next ${b.name}`)}]${t('!')});`), '      }']
      : [];
  return [
    `    async forward(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': Promise<Outputs>')} {`,
    '      checkArgs(params, inputs);',
    ...check(false),
    ...finite.args,
    `      const b = await rt.built(${sizes});`,
    '      stage(b, params, inputs, options);',
    '      const r = await rt.run(b, FORWARD, FORWARD_READS);',
    ...finite.outputs(outs),
    ...save('r'),
    `      return { ${outs.map((o) => `${key(o.name)}: ${o.shape.length === 0 ? `r[${JSON.stringify(o.name)}]${t('!')}[0]${t('!')}` : `r[${JSON.stringify(o.name)}]${t(` as ${o.dtype === 'i32' ? 'Int32Array' : 'Float32Array'}`)}`}`).join(', ')} };`,
    '    },',
    ...(withGrad
      ? [
          `    async valueAndGrad(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': Promise<{ loss: number; grads: Grads }>')} {`,
          '      checkArgs(params, inputs);',
          ...check(true),
          ...finite.args,
          `      const b = await rt.built(${sizes});`,
          '      stage(b, params, inputs, options);',
          '      const g = await rt.run(b, GRAD, GRAD_READS);',
          ...finite.grads,
          ...save('g'),
          `      return { loss: g.loss${t('!')}[0]${t('!')}, grads: { ${gradEntries(m)
            .map((p) => `${key(p.name)}: g[${JSON.stringify(p.name)}]${t(' as Float32Array')}`)
            .join(', ')} } };`,
          '    },',
        ]
      : []),
    '    destroy() {',
    '      rt.destroy();',
    '    },',
  ];
}

/**
 * --check-finite: the values between shaders stay on the device, so the arguments are checked as
 * they come in and the results as they come back (as the GPU.js module does).
 */
function finiteChecks(m: ModuleInfo, t: Typed) {
  const where = (verb: string) =>
    JSON.stringify(`returned by ${verb} (the WebGPU module checks its arguments and results, not each step: the flat module built with --check-finite names the first value)`);
  const on = m.checkFinite === true;
  const args = on
    ? [...params(m.fwd).map((p) => ['param', 'params', p] as const), ...inputs(m.fwd).map((i) => ['input', 'inputs', i] as const)]
        .filter(([, , e]) => e.dtype === 'f32')
        .map(([what, obj, e]) => `      checkFinite(${JSON.stringify(`${what} '${e.name}'`)}, ${member(obj, e.name)}, 'passed in');`)
    : [];
  return {
    args,
    outputs: (outs: ReturnType<typeof outputs>) => (on ? outs.filter((o) => o.dtype === 'f32').map((o) => `      checkFinite(${JSON.stringify(`output '${o.name}'`)}, r[${JSON.stringify(o.name)}]${t(' as Float32Array')}, ${where('forward')});`) : []),
    grads: on
      ? [`      checkFinite('loss', g.loss${t(' as Float32Array')}, ${where('valueAndGrad')});`, ...gradEntries(m).map((p) => `      checkFinite(${JSON.stringify(`gradient of '${p.name}'`)}, g[${JSON.stringify(p.name)}]${t(' as Float32Array')}, ${where('valueAndGrad')});`)]
      : [],
  };
}

/** The TypeScript module's declarations of the instance and of the WebGPU objects it touches. */
function webgpuTypes(m: ModuleInfo, withGrad: boolean): string[] {
  const opts = hasModes(m.fwd) ? 'options?: Options' : 'options?: Options';
  return [
    '/** The WebGPU objects the module uses (a GPUDevice from @webgpu/types fits). */',
    '// eslint-disable-next-line @typescript-eslint/no-explicit-any',
    'type GPUDevice = any;',
    '',
    'export interface Model {',
    '  /** The device the model runs on. */',
    '  readonly device: GPUDevice;',
    `  forward(params: Params, inputs: Inputs, ${opts}): Promise<Outputs>;`,
    ...(withGrad ? [`  valueAndGrad(params: Params, inputs: Inputs, ${opts}): Promise<{ loss: number; grads: Grads }>;`] : []),
    ...(m.optimizer
      ? [
          '  initOptState(params: Params): OptState;',
          '  trainStep(params: Params, state: OptState, inputs: Inputs, options?: { lr?: number; seed?: number; buffers?: Buffers }): Promise<{ loss: number }>;',
          `  applyGradients(params: Params, state: OptState, grads: ${gradsType(m)}, options?: { lr?: number }): Promise<void>;`,
          '  readParams(): Promise<Params>;',
          '  readOptState(): Promise<OptState>;',
        ]
      : []),
    '  /** Releases the buffers and pipelines (the device stays the caller\'s, or is destroyed if create made it). */',
    '  destroy(): void;',
    '}',
    '',
  ];
}
