// The GPU.js target: the same steps as the flat module, as gpu.js kernels, one per value a unit
// stores (gpu-writer.ts: a fused group, a copy or a routine's epilogue rendered from the kernel
// form by gpu-kernel.ts, a routine's result by its own code). The kernels are chained by two
// gpu.js pipelines, compiled once in `create`: `forward`, and `valueAndGrad`, whose backward
// kernels run in the reverse order of the forward ones. A pipeline call records every kernel
// into one command encoder on webgpu (one fused pass over one wasm memory on webasm) and reads
// back only its results: the outputs, or the loss and the gradients. emitGpu assembles the module
// from its sections: the kernels, the pipelines' arguments, their results, create()'s setup and
// pipelines, the model's methods, and create() itself.

import { numelSize, sizeText, symbols } from '../ir/dims.js';
import type { Graph } from '../ir/graph.js';
import type { Unit } from '../ir/memplan.js';
import { isState, valueName } from '../ir/memplan.js';
import type { ValueId } from '../ir/types.js';
import * as E from './expr.js';
import type { ModuleInfo } from './module.js';
import { checkDecl, checkFiniteDecl, codeNames, gradEntries, header, initDecl, key, member, moduleGraphs, outputs, params, specDecl, typeDecls, typedAs, uniformConst, unitComment } from './module.js';
import { hasModes, initBuffersDecl, modesOf, optionsDecl, stateCode } from './modes.js';
import { GPU_SUM_BLOCK } from './gpu-kernel.js';
import type { Transposed } from './gpu-writer.js';
import { gpuCommentUnit, MIN_2D_OUTPUTS, unitKernels } from './gpu-writer.js';
import { loadGpuDecl, releaseLines, webgpuSetup } from './gpu-host.js';
import { gpuAccumMethods, gpuHostCopy } from './gpu-accum.js';
import type { PStep, Step } from './gpu-loop.js';
import { gpuLoop, isLoop, loopKernelDecl, stepReads } from './gpu-loop.js';
import { gpuDeviceKernels, gpuDeviceStep, gpuTrainDecls, gpuTrainInterface, gpuTrainMethods, gpuTrainState, trainNames } from './gpu-train.js';

export { GPU_SUM_BLOCK };

// ---------------------------------------------------------------------------------------------
// The module

/** The kernels of the module, one per stored value, and the pipeline steps that call them. */
function kernelSection(m: ModuleInfo, typed: boolean) {
  const t = typedAs(typed);
  const plan = m.plan;
  // symbolic dimensions are constants of the kernels, which are compiled for each set of sizes
  const syms = symbols(m.fwd);
  const thisType = syms.length ? 'this: IKernelFunctionThis<Sizes>' : 'this: IKernelFunctionThis';
  const codeName = codeNames(m, ['gpu', 'mode', 'options', 'kernel', 'loopKernel']);
  const training = trainNames(m, codeName);
  const kernels: string[] = [];
  /** Values whose kernels run 2-D in webgpu mode (read back through a 1-D copy: see `result`). */
  const twoD = new Set<string>();
  const transposedNames = new Map<string, string>();
  const transposedName = (of: string) => transposedNames.get(of) ?? (transposedNames.set(of, codeName(`${of}_T`)), transposedNames.get(of)!);
  const transposers = new Map<string, Step>();
  /** The kernel writing the transposed copy `t` (once per module), and its call. */
  const transposer = (tr: Transposed, user: string): Step => {
    const known = transposers.get(tr.name);
    if (known) return known;
    const kernel = codeName(`kernel_${tr.name}`);
    kernels.push(
      '',
      `// ${tr.name} = ${tr.of}ᵀ, so that ${user}'s product reads it as A·B reads B: neighbouring threads read`,
      `// neighbouring floats (in A·Bᵀ they would read ${tr.rows} floats apart)`,
      `const ${kernel} = kernel(function (${[t(thisType), `${tr.of}${t(': Float32Array')}`].filter(Boolean).join(', ')})${t(': number')} {`,
      'const _x = this.thread.x;',
      `const _i0 = Math.floor(_x / ${tr.cols});`,
      `const _rest0 = _x - _i0 * ${tr.cols};`,
      `return ${tr.of}[_rest0 * ${tr.rows} + _i0];`,
      `}, ${tr.rows * tr.cols});`,
    );
    const step = { name: tr.name, kernel, args: [tr.of] };
    transposers.set(tr.name, step);
    return step;
  };
  // a reshape (or stopGradient) of a value is the same handle: one whose result is a temporary
  // is no variable of its own, its readers read the source under the source's name (a pipeline
  // says `// t13, t14: views of t12`), where `const t13 = t12;` would copy a temporary's name
  const temps = new Set<string>();
  for (const g of moduleGraphs(m)) for (const inst of g.insts) if (inst.op !== 'fwd' && g.value(inst.result).temp) temps.add(g.value(inst.result).name);
  const viewRoot = (name: string): string => {
    const s = plan.storage.get(name);
    return s?.kind === 'alias' && temps.has(name) ? viewRoot(s.of) : name;
  };
  // a scan's loop (codegen/gpu-loop.ts): its body's kernels once, called in a loop by the pipeline
  const loopContext = { plan, t, thisType, codeName, kernels, viewRoot, steps: (us: readonly Unit[]) => steps(us, true) };
  /** The steps of units; those of a loop's body read no transposed copies (one per step would be made). */
  const steps = (units: readonly Unit[], inBody = false): PStep[] =>
    units.flatMap((u): PStep[] => {
      if (u.insts[0]!.op === 'scan') return [gpuLoop(loopContext, u)];
      if (u.insts[0]!.op === 'scan_out') return []; // written by the loop
      return unitKernels(u.graph, plan, u, inBody ? undefined : transposedName, viewRoot).flatMap(({ inst, k }) => {
          const name = valueName(u.graph, inst.result);
          const before = k.transposed.map((tr) => transposer(tr, name));
          const kernel = codeName(`kernel_${name}`);
          if (k.width !== undefined) twoD.add(name);
          const argTypes = k.args.map((a) => `${a}${t(': Float32Array')}`);
          kernels.push(
            '',
            ...unitComment(m, gpuCommentUnit(plan, u, inst), plan),
            `const ${kernel} = kernel(function (${[t(thisType), ...argTypes].filter(Boolean).join(', ')})${t(': number')} {`,
            ...k.body,
            `}, ${sizeText(k.size)}${k.width === undefined ? '' : `, ${k.width}`});`,
          );
          return [...before, { name, kernel, args: k.args }];
        });
    });
  const fwdSteps = steps(plan.units.forward);
  const bwdSteps = steps(plan.units.backward);
  if (plan.bodies.size) kernels.unshift(...loopKernelDecl(t, thisType));
  return { t, plan, syms, thisType, codeName, training, kernels, twoD, transposedNames, transposedName, transposers, transposer, temps, viewRoot, steps, fwdSteps, bwdSteps };
}

/** The pipelines' arguments (params, inputs, state, constant arrays) and their calls with the views they need. */
function argSection(m: ModuleInfo, c: ReturnType<typeof kernelSection>) {
  const { plan, codeName, temps, viewRoot } = c;
  // pipeline arguments: params, inputs and constant arrays, by value name
  const pinfo = params(m.fwd).map((p) => ({ kind: 'params' as const, key: p.name, name: stagedName(m, 'param', p.name), n: sizeText(numelSize(p.shape)) }));
  const iinfo = m.fwd.insts.flatMap((i) => (i.op === 'input' ? [{ kind: 'inputs' as const, key: i.attrs.name, name: m.fwd.value(i.result).name, n: sizeText(numelSize(m.fwd.type(i.result).shape)) }] : []));
  // constants of equal elements are literals in the kernels: only the others are arrays
  const consts = [...plan.storage].flatMap(([name, s]) => (s.kind === 'const' && uniformConst(plan, name) === undefined ? [{ name, data: s.data }] : []));
  // the module's own state: the mode flag and dropout masks are filled on the host and uploaded,
  // buffers are passed as they are; the next running statistics come back as results
  const modes = modesOf(m.fwd);
  const sinfo = m.fwd.insts.flatMap((i) => (isState(i) ? [{ op: i.op, name: m.fwd.value(i.result).name, n: sizeText(numelSize(m.fwd.type(i.result).shape)) }] : []));
  const hostOf = new Map(sinfo.filter((x) => x.op !== 'buffer').map((x) => [x.name, codeName(`${x.name}_host`)]));
  const argNames = [...pinfo.map((p) => p.name), ...iinfo.map((p) => p.name), ...sinfo.map((x) => x.name), ...consts.map((c) => c.name)];

  // aliases (reshape, stopGradient) are the same handle under another name, declared as soon
  // as what they view exists (at the top for views of params and inputs)
  const aliasesOf = new Map<string, string[]>();
  for (const g of moduleGraphs(m))
    for (const inst of g.insts) {
      const s = plan.storage.get(g.value(inst.result).name);
      if (s?.kind === 'alias' && inst.op !== 'fwd') aliasesOf.set(s.of, [...(aliasesOf.get(s.of) ?? []), g.value(inst.result).name]);
    }
  const views = (root: string, needed: Set<string>): string[] =>
    (aliasesOf.get(root) ?? []).flatMap((a) => {
      if (temps.has(a)) {
        // a temporary's view: no variable; say what it is where it would have been declared
        const inner = views(a, needed);
        return [`// ${a}: a view of ${viewRoot(a)} as ${shapeOfName(a)} (the same array)`, ...inner];
      }
      return needed.has(a) || (aliasesOf.get(a) ?? []).length ? [`const ${a} = ${viewRoot(root)}; // a view of ${viewRoot(root)} as ${shapeOfName(a)} (the same array)`, ...views(a, needed)] : [];
    });
  const shapeOfName = (name: string) => {
    const v = moduleGraphs(m).reduce<ReturnType<Graph['byName']>>((found, g) => found ?? g.byName(name), undefined);
    return v ? `${v.type.dtype}[${v.type.shape.join(',')}]` : name;
  };
  /**
   * The calls of a pipeline, with the views its kernels and its results (`reads`) need; a
   * transposed copy is made once, before its first reader.
   */
  const plan_ = (list: PStep[], reads: readonly string[], awaited = false) => {
    const needed = new Set([...stepReads(list), ...reads]);
    // the values declared so far in scope: a loop's body sees the ones before it, and what it
    // declares is not seen after it
    const render = (l: readonly PStep[], seen: Set<string>): string[] =>
      l.flatMap((s) => {
        if (isLoop(s)) return s.render((body) => render(body, new Set(seen)), (name) => views(name, needed), awaited, (name) => needed.has(name));
        if (seen.has(s.name)) return [];
        seen.add(s.name);
        return [...call(s, awaited), ...views(s.name, needed)];
      });
    return [...argNames.flatMap((a) => views(a, needed)), ...render(list, new Set())];
  };
  // outside a pipeline (trainStep on a device) a kernel call is awaited: webgpu's give promises
  const call = (s: Step, awaited = false) => [`const ${s.name} = ${awaited ? 'await ' : ''}${s.kernel}(${s.args.join(', ')});`];
  return { ...c, pinfo, iinfo, consts, modes, sinfo, hostOf, argNames, aliasesOf, views, shapeOfName, plan_, call };
}

/** The pipelines' results (copies where no kernel's array can be one) and the staging of the arguments. */
function resultSection(m: ModuleInfo, c: ReturnType<typeof argSection>) {
  const { t, plan, thisType, codeName, twoD, viewRoot, pinfo, iinfo, consts, modes, sinfo, hostOf } = c;
  // results: outputs of the forward plan; loss then every gradient of the backward plan. A result
  // that no kernel computes (a param, a constant, a value shared by two gradients) gets a copy, and
  // so does one a 2-D kernel computes (gpu.js would read it back as rows)
  const copies: string[] = [];
  const result = (g: Graph, v: ValueId, seen: Set<string>): string => {
    const name = viewRoot(valueName(g, v));
    const c = uniformConst(plan, name);
    const s = c === undefined ? plan.storage.get(name) : ({ kind: 'literal', value: c } as const);
    if (s?.kind === 'buffer' && !seen.has(name) && g.def(v).op !== 'fwd' && !twoD.has(name)) {
      seen.add(name);
      return name;
    }
    const copy = codeName(`copy_${name}`);
    const n = sizeText(numelSize(g.type(v).shape));
    copies.push(
      '',
      `const ${copy} = kernel(function (${[t(thisType), s?.kind === 'literal' ? '' : `src${t(': Float32Array')}`].filter(Boolean).join(', ')})${t(': number')} {`,
      s?.kind === 'literal' ? `return ${E.num(s.value).code};` : 'return src[this.thread.x];',
      `}, ${n});`,
    );
    return `${copy}(${s?.kind === 'literal' ? '' : name})`;
  };
  const fwdSeen = new Set<string>();
  const fwdResults = m.fwd.outputs.map((o) => `${key(o.name)}: ${result(m.fwd, o.value, fwdSeen)}`);
  const gradSeen = new Set<string>();
  // a forward-only model (no loss) has the forward pipeline and no gradient pipeline
  const lossOut = m.fwd.outputs.find((o) => o.name === 'loss');
  const withGrad = <T>(lines: readonly T[]): T[] => (lossOut ? [...lines] : []);
  const lossName = lossOut ? valueName(m.fwd, lossOut.value) : '';
  const gradResults = lossOut ? [lossName, ...m.bwd.outputs.map((o) => result(m.bwd, o.value, gradSeen))] : [];
  const nextOf = (b: (typeof modes.buffers)[number]) => m.fwd.outputs.find((o) => o.name === b.name)!.value;
  if (lossOut) gradResults.push(...modes.buffers.map((b) => result(m.fwd, nextOf(b), gradSeen)));
  const outs = outputs(m.fwd);

  const constData = new Map(consts.map((c) => [c.name, codeName(`${c.name}_data`)]));
  // i32 inputs are staged as f32 arrays (gpu.js kernels read floats)
  const staging = new Map(iinfo.filter((i) => m.fwd.byName(i.name)?.type.dtype === 'i32').map((i) => [i.name, codeName(`${i.name}_f32`)]));
  const stagingDecls = iinfo.filter((i) => staging.has(i.name)).map((i) => `const ${staging.get(i.name)} = new Float32Array(${i.n});`);
  const argExprs = [
    ...pinfo.map((p) => member('params', p.key)),
    ...iinfo.map((i) => staging.get(i.name) ?? member('inputs', i.key)),
    ...sinfo.map((x) => hostOf.get(x.name) ?? member(`options.buffers${t('!')}`, modes.buffers.find((b) => b.value === x.name)!.name)),
    ...consts.map((c) => constData.get(c.name)!),
  ];
  const stage = [
    ...iinfo.filter((i) => staging.has(i.name)).map((i) => `${staging.get(i.name)}.set(${member('inputs', i.key)});`),
    ...stateCode(m, t, (v) => hostOf.get(v)!, 'options', 'callState', false).set,
  ];
  stagingDecls.push(...sinfo.filter((x) => hostOf.has(x.name)).map((x) => `const ${hostOf.get(x.name)} = new Float32Array(${x.n});`));
  return { ...c, copies, result, fwdSeen, fwdResults, gradSeen, lossOut, withGrad, lossName, gradResults, nextOf, outs, constData, staging, stagingDecls, argExprs, stage };
}

/** create()'s setup, the pipelines, and --check-finite's checks. */
function hostSection(m: ModuleInfo, c: ReturnType<typeof resultSection>) {
  const { t, plan, syms, kernels, fwdSteps, bwdSteps, pinfo, iinfo, consts, modes, argNames, plan_, copies, fwdResults, withGrad, lossName, gradResults, outs, constData, staging, stagingDecls } = c;
  // trainStep keeps params and optimizer state on the device where gpu.js keeps handles (a
  // model with symbolic dimensions runs its update on the host: its kernels are built per size;
  // so does one with a scan's loop: outside a pipeline, a kernel called again (immutable: false)
  // renders into the output its previous call gave, which the loop's next step still reads)
  const device = m.optimizer !== undefined && syms.length === 0 && plan.bodies.size === 0;
  const setup = [
    "  const mode = options.mode ?? 'gpu';",
    '  const GPU = await loadGPU();',
    "  if (mode === 'webgpu') await setupWebGPU(GPU);",
    '  const gpu = new GPU({ mode });',
    ...(device
      ? [
          "  // gpu.js's cpu and webasm modes give arrays, not device handles: there trainStep's update runs on the host",
          `  const resident = !['cpu', 'webasm'].includes((gpu${t(' as unknown as { Kernel: { mode: string } }')}).Kernel.mode);`,
        ]
      : []),
  ];
  const pipelines = [
    ...consts.map((c) => `const ${constData.get(c.name)} = Float32Array.from([${c.data.map((x) => E.num(x).code).join(', ')}]);`),
    ...kernels,
    ...copies,
    '',
    '  // the forward steps',
    `  const forwardPlan = gpu.createPipeline(function (${argNames.map((a) => `${a}${t(': IPipelineHandle')}`).join(', ')}) {`,
    ...plan_(fwdSteps, m.fwd.outputs.map((o) => valueName(m.fwd, o.value))),
    `    return { ${fwdResults.join(', ')} };`,
    '  });',
    ...withGrad([
      '',
      '  // the forward steps, then the backward steps in reverse order',
      `  const gradPlan = gpu.createPipeline(function (${argNames.map((a) => `${a}${t(': IPipelineHandle')}`).join(', ')}) {`,
      ...plan_([...fwdSteps, ...bwdSteps], [lossName, ...m.bwd.outputs.map((o) => valueName(m.bwd, o.value)), ...modes.buffers.map((b) => b.next)]),
      `    return [${gradResults.join(', ')}];`,
      '  });',
    ]),
    '',
    ...stagingDecls,
  ];
  // --check-finite: the values between kernels stay on the device, so the arguments are checked
  // as they come in and the results as they come back
  const finiteWhere = (verb: string) =>
    JSON.stringify(`returned by ${verb} (the GPU.js module checks its arguments and results, not each step: the flat module built with --check-finite names the first value)`);
  const finiteArgs = m.checkFinite
    ? [...pinfo, ...iinfo]
        .filter((a) => a.kind === 'params' || !staging.has(a.name))
        .map((a) => `    checkFinite(${JSON.stringify(`${a.kind === 'params' ? 'param' : 'input'} '${a.key}'`)}, ${member(a.kind, a.key)}, 'passed in');`)
    : [];
  const finiteOutputs = m.checkFinite
    ? outs.filter((o) => o.dtype === 'f32').map((o) => `      checkFinite(${JSON.stringify(`output '${o.name}'`)}, ${member('r', o.name)}${t('!')}, ${finiteWhere('forward')});`)
    : [];
  const finiteGrads = m.checkFinite
    ? [`      checkFinite('loss', r[0]${t('!')}, ${finiteWhere('valueAndGrad')});`, ...gradEntries(m).map((p, k) => `      checkFinite(${JSON.stringify(`gradient of '${p.name}'`)}, r[${k + 1}]${t('!')}, ${finiteWhere('valueAndGrad')});`)]
    : [];
  return { ...c, device, setup, pipelines, finiteWhere, finiteArgs, finiteOutputs, finiteGrads };
}

/** The methods of the model: forward, valueAndGrad, the training ones, destroy. */
function methodSection(m: ModuleInfo, c: ReturnType<typeof hostSection>) {
  const { t, training, modes, withGrad, outs, device, finiteOutputs, finiteGrads } = c;
  /** forward and valueAndGrad; `plans`: where a call gets its pipelines (else the ones in scope). */
  const stateful = hasModes(m.fwd);
  const optionsParam = stateful ? `options${t(': Options')} = noOptions` : `options${t('?: Options')}`;
  const checkOptionsCall = (train: boolean) => (stateful ? [`      checkOptions(options, ${train}, false);`, '      const train = callState.train;'] : []);
  /** After a training call: the next running statistics into the caller's buffers. */
  const saveBuffers = (from: (b: (typeof modes.buffers)[number], k: number) => string) =>
    modes.buffers.length ? ['      if (train) {', ...modes.buffers.map((b, k) => `        ${member(`options.buffers${t('!')}`, b.name)}.set(${from(b, k)});`), '      }'] : [];
  /** valueAndGrad's work, with `options` in scope: the gradient pipeline's results in `r`. */
  const gradBody = (plans?: string) => [
    ...checkOptionsCall(true),
    ...(plans ? [`      const { gradPlan, args } = ${plans};`] : []),
    `      const r = (await gradPlan(...args(params, inputs, options)))${t(' as Float32Array[]')};`,
    ...saveBuffers((_b, k) => `r[${gradEntries(m).length + 1 + k}]${t('!')}`),
  ];
  const methods = (plans?: string) => [
    `    async forward(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': Promise<Outputs>')} {`,
    ...checkOptionsCall(false),
    ...(plans ? [`      const { forwardPlan, args } = ${plans};`] : []),
    `      const r = (await forwardPlan(...args(params, inputs, options)))${t(' as Record<string, Float32Array>')};`,
    ...finiteOutputs,
    ...saveBuffers((b) => `${member('r', b.name)}${t('!')}`),
    // an i32 output (argmax's indices) comes back from the device as floats
    `      return { ${outs.map((o) => `${key(o.name)}: ${o.shape.length === 0 ? `${member('r', o.name)}[0]${t('!')}` : o.dtype === 'i32' ? `Int32Array.from(${member('r', o.name)}${t('!')})` : member('r', o.name)}`).join(', ')} };`,
    '    },',
    ...withGrad([
      `    async valueAndGrad(params${t(': Params')}, inputs${t(': Inputs')}, ${optionsParam})${t(': Promise<{ loss: number; grads: Grads }>')} {`,
      ...gradBody(plans),
      ...finiteGrads,
      `      return { loss: r[0]${t('!')}[0]${t('!')}, grads: { ${gradEntries(m)
        .map((p, k) => `${key(p.name)}: r[${k + 1}]${t('!')}`)
        .join(', ')} } };`,
      '    },',
    ]),
    ...gpuTrainMethods(m, t, training, gradBody(plans), device),
    ...gpuAccumMethods(m, t, training?.accum, gradBody(plans), device),
    '    destroy() {',
    ...(device ? ['      freeDevice();'] : []),
    ...releaseLines(t),
    '      void gpu.destroy();',
    '    },',
  ];
  return { ...c, stateful, optionsParam, checkOptionsCall, saveBuffers, gradBody, methods };
}

/** create(), for static sizes or per set of symbolic sizes. */
function createSection(m: ModuleInfo, c: ReturnType<typeof methodSection>) {
  const { t, syms, thisType, codeName, training, twoD, fwdSteps, bwdSteps, pinfo, iinfo, consts, modes, sinfo, argNames, plan_, lossOut, withGrad, lossName, gradResults, argExprs, stage, device, setup, pipelines, finiteArgs, stateful, methods } = c;
  const kernelHelper = (constants: string) =>
    twoD.size === 0
      ? [
          '  // kernels are only called inside the pipelines, where they take and give handles',
          `  const kernel = (fn${t(`: (${thisType}, ...args: Float32Array[]) => number`)}, n${t(': number')}) =>`,
          `    gpu.createKernel(fn, { output: [n], ${constants}precision: 'single', tactic: 'precision'${device ? ', pipeline: resident, immutable: false' : ''} })${t(' as unknown as (...args: IPipelineHandle[]) => IPipelineHandle')};`,
        ]
      : [
          '  // kernels are only called inside the pipelines, where they take and give handles; a large',
          "  // matrix product's runs as n / width rows of `width` threads on a GPU (its flat index stays row-major)",
          `  const kernel = (fn${t(`: (${thisType}, ...args: Float32Array[]) => number`)}, n${t(': number')}, width${t('?: number')}) =>`,
          '    gpu.createKernel(fn, {',
          `      output: width && mode === 'webgpu' && n >= ${MIN_2D_OUTPUTS} ? [width, n / width] : [n],`,
          `      ${constants}precision: 'single',`,
          "      tactic: 'precision',",
          ...(device ? ['      pipeline: resident,', '      immutable: false,'] : []),
          `    })${t(' as unknown as (...args: IPipelineHandle[]) => IPipelineHandle')};`,
        ];
  /** trainStep on a device: the gradient kernels called one by one, the update kernels, the step. */
  const deviceLines = (): string[] => {
    if (!device) return [];
    const gradSteps = codeName('gradSteps');
    const kinds = [...pinfo.map((p) => ({ kind: 'param' as const, n: p.n })), ...iinfo.map((i) => ({ kind: 'step' as const, n: i.n })), ...sinfo.map((x) => ({ kind: 'step' as const, n: x.n })), ...consts.map((c) => ({ kind: 'const' as const, n: String(c.data.length) }))];
    const dk = gpuDeviceKernels(m, t, thisType, codeName, kinds.map((k) => k.n), training!.steps);
    return [
      '',
      "  // trainStep's forward and backward steps on a device, the kernels called one by one on handles:",
      '  // the loss, the gradients and the next running statistics stay on the device',
      `  const ${gradSteps} = async (${argNames.map((a) => `${a}${t(': IPipelineHandle')}`).join(', ')}) => {`,
      ...plan_([...fwdSteps, ...bwdSteps], [lossName, ...m.bwd.outputs.map((o) => valueName(m.bwd, o.value)), ...modes.buffers.map((b) => b.next)], true),
      `    return [${gradResults.map((r) => (r.includes('(') ? `await ${r}` : r)).join(', ')}];`,
      '  };',
      ...dk.lines,
      ...gpuDeviceStep(m, t, { args: kinds, gradSteps }, dk.names),
      ...gpuHostCopy(m, t),
    ];
  };
  const staticCreate = () => [
    '/**',
    ` * Compiles every kernel and ${lossOut ? 'both pipelines (running each' : 'the forward pipeline (running it'} once on zeros), on the backend`,
    " * `options.mode` asks for: 'gpu' (the best available), 'cpu', 'webasm' or 'webgpu'.",
    ' */',
    `export async function create(options${t(': { mode?: Mode }')} = {})${t(': Promise<Model>')} {`,
    ...setup,
    ...kernelHelper(''),
    ...pipelines,
    `  const args = (params${t(': Params')}, inputs${t(': Inputs')}, options${t(stateful ? ': Options' : '?: Options')}) => {`,
    '    checkArgs(params, inputs);',
    ...finiteArgs,
    ...stage,
    `    return [${argExprs.join(', ')}];`,
    '  };',
    `  const zeros${t(': Params')} = initParams(0);`,
    `  for (const k of Object.keys(zeros)) zeros[k${t(' as keyof Params')}].fill(0);`,
    `  const zeroInputs = { ${iinfo.map((i) => `${key(i.key)}: new ${m.fwd.byName(i.name)?.type.dtype === 'i32' ? 'Int32Array' : 'Float32Array'}(${i.n})`).join(', ')} }${t(' as Inputs')};`,
    ...(stateful ? [`  const warm${t(': Options')} = { ${modes.buffers.length ? 'buffers: initBuffers()' : ''} };`] : []),
    ...withGrad([`  await gradPlan(...args(zeros, zeroInputs${stateful ? ', warm' : ''}));`]),
    `  await forwardPlan(...args(zeros, zeroInputs${stateful ? ', warm' : ''}));`,
    ...gpuTrainState(m, t),
    ...deviceLines(),
    '  return {',
    `    mode: ${lossOut ? 'gradPlan' : 'forwardPlan'}.backend ?? mode,`,
    ...methods(),
    '  };',
    '}',
  ];
  const symbolicCreate = () => [
    '/**',
    " * Sets the backend up that `options.mode` asks for: 'gpu' (the best available), 'cpu', 'webasm'",
    " * or 'webgpu'. The kernels take the sizes of the symbolic dimensions as constants: a call compiles",
    ` * them and ${lossOut ? 'both pipelines' : 'the forward pipeline'} for its sizes the first time it brings them, and reuses them after.`,
    ' */',
    `export async function create(options${t(': { mode?: Mode }')} = {})${t(': Promise<Model>')} {`,
    ...setup,
    '  /** The kernels and pipelines for one set of sizes. */',
    `  const build = (${syms.map((d) => `${d}${t(': number')}`).join(', ')}) => {`,
    ...kernelHelper(`constants: { ${syms.join(', ')} }, `),
    ...pipelines,
    `  const args = (params${t(': Params')}, inputs${t(': Inputs')}, options${t(stateful ? ': Options' : '?: Options')}) => {`,
    ...stage,
    `    return [${argExprs.join(', ')}];`,
    '  };',
    `  return { ${syms.join(', ')}, forwardPlan, ${lossOut ? 'gradPlan, ' : ''}args };`,
    '  };',
    '  // every set of sizes seen, and the one of the last call',
    `  const built = new Map${t('<string, ReturnType<typeof build>>')}();`,
    `  let current${t(': ReturnType<typeof build> | undefined')};`,
    `  const prepare = (params${t(': Params')}, inputs${t(': Inputs')}) => {`,
    '    checkArgs(params, inputs);',
    ...finiteArgs,
    `    if (current === undefined || ${syms.map((d) => `current.${d} !== dims.${d}`).join(' || ')}) {`,
    `      const sizes = \`${syms.map((d) => `\${dims.${d}}`).join(',')}\`;`,
    `      current = built.get(sizes) ?? build(${syms.map((d) => `dims.${d}`).join(', ')});`,
    '      built.set(sizes, current);',
    '    }',
    '    return current;',
    '  };',
    ...gpuTrainState(m, t),
    '  return {',
    `    get mode() {`,
    `      return current?.${lossOut ? 'gradPlan' : 'forwardPlan'}.backend ?? mode;`,
    '    },',
    ...methods('prepare(params, inputs)'),
    '  };',
    '}',
  ];

  return { ...c, kernelHelper, deviceLines, staticCreate, symbolicCreate };
}

/** The GPU.js module (unformatted TypeScript, or with `typed` false plain JavaScript). */
export function emitGpu(m: ModuleInfo, typed = true): string {
  const c = createSection(m, methodSection(m, hostSection(m, resultSection(m, argSection(m, kernelSection(m, typed))))));
  const { t, syms, training, withGrad, staticCreate, symbolicCreate } = c;
  const lines: string[] = [
    ...header(m, 'GPU.js kernels: the steps of the flat module, chained on the device by two gpu.js pipelines.', 'fresh'),
    ...(typed ? [`import type { GPU as GPUClass, IKernelFunctionThis, IPipelineHandle } from 'gpu.js';`, ''] : []),
    ...loadGpuDecl(m, t),
    '',
    ...specDecl(m, t),
    '',
    ...(typed ? typeDecls(m) : []),
    ...(typed ? ["export type Mode = 'gpu' | 'cpu' | 'webasm' | 'webgpu';", ''] : []),
    ...(typed && syms.length ? ['/** The sizes of the symbolic dimensions: constants of the kernels. */', `type Sizes = { ${syms.map((d) => `${d}: number`).join('; ')} };`, ''] : []),
    ...(typed
      ? [
          'export interface Model {',
          '  /** the gpu.js backend that runs the kernels */',
          '  readonly mode: string;',
          '  forward(params: Params, inputs: Inputs, options?: Options): Promise<Outputs>;',
          ...withGrad(['  valueAndGrad(params: Params, inputs: Inputs, options?: Options): Promise<{ loss: number; grads: Grads }>;']),
          ...gpuTrainInterface(m),
          '  destroy(): void;',
          '}',
          '',
        ]
      : []),
    ...initDecl(m, t),
    ...initBuffersDecl(m, t),
    '',
    ...checkDecl(m, t),
    ...optionsDecl(m, t),
    ...gpuTrainDecls(m, t, training),
    '',
    ...checkFiniteDecl(m, t),
    ...webgpuSetup(m, t),
    '',
    ...(syms.length ? symbolicCreate() : staticCreate()),
  ];
  return lines.join('\n') + '\n';
}

function stagedName(m: ModuleInfo, op: 'param' | 'input', dslName: string): string {
  const inst = m.fwd.insts.find((i) => i.op === op && i.attrs.name === dslName)!;
  return m.fwd.value(inst.result).name;
}

