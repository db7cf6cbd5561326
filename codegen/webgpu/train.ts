// trainStep of the WebGPU module (--optimizer): the params and the optimizer state live on the
// device between steps (arrays `res:<param>` and `opt:<slot>:<param>` of the arenas); a step copies
// the resident params into the arrays the forward pass reads, runs the forward and backward
// shaders, then one update shader per trained param rendered from the optimizer table's statements
// (codegen/optim.ts: sgd, adam and the others alike), all in one command encoder and one submit,
// and reads back only the loss (and, in training mode, the next running statistics). A step
// uploads the inputs, the module state and the step's scalars (lr, bias corrections: a few floats
// per param group). readParams and readOptState read the resident arrays back. The resident arrays
// (and the trained params' gradients) have arenas of their own, bound by the pipelines of every
// set of sizes: with symbolic dimensions a step builds its sizes' pipelines the first time, and
// the params and state it updates are the same whatever the sizes.

import type { Dim, Size } from '../../ir/dims.js';
import { numelSize } from '../../ir/dims.js';
import { CompileError } from '../../ir/errors.js';
import type { HostProgram, Step } from '../kernel/form.js';
import type { ModuleInfo, Typed } from '../module.js';
import { commentText, gradEntries, inputs, key, member, ownMember, params } from '../module.js';
import { hasModes, modesOf } from '../modes.js';
import type { UExpr } from '../optim.js';
import { OPTIMIZERS, scalarNames, slotsOf, updateStatements } from '../optim.js';
import { givenLrCheck } from '../gpu-accum.js';
import { gradsCheck, gradsType } from '../ts/accum.js';
import { groupSteps, hyperDecls, lrLine, optStateParts, trainedParams } from '../ts/train.js';
import type { Shader } from './wgsl.js';
import { Bindings, PRELUDE, WG, entry1d, f32, js, sz, treeJoin } from './wgsl.js';

/** Where trainStep's --check-finite error says the value was found, and what became of the step. */
const FINITE_WHERE =
  'computed by trainStep (the WebGPU module checks the loss and the gradients of a step on the device, not each value: the flat module built with --check-finite names the first); the step was not taken: the params and the optimizer state are as before it';

export interface TrainInfo {
  readonly stages: readonly Extract<Step, { kind: 'stage' }>[];
  readonly gradReads: readonly (readonly [string, string])[];
  readonly syms: readonly string[];
  /** The sizes of the symbolic dimensions as bound by checkArgs (`{ B: dims.B }`), and all 1 (`{ B: 1 }`). */
  readonly sizes: string;
  readonly ones: string;
  /** Whether an array of the program may stay on the device across sizes (a static size, not a constant). */
  readonly residentOk: (array: string) => boolean;
}

export interface TrainParts {
  /** Module-level declarations: hyper, OptState, checkOptState. */
  readonly decls: string[];
  /** More arrays: name, element count. */
  readonly arrays: { name: string; numel: string }[];
  /** The arrays that live in the arenas every set of sizes shares (RESIDENT): these and the trained params' gradients. */
  readonly resident: string[];
  /** More shaders (after the program's): per trained param, the copy and the update. */
  readonly shaders: Shader[];
  /** Lines inside create(), given the index of the first extra shader. */
  create(first: number): string[];
  readonly methods: string[];
}

function wgslOf(e: UExpr, name: (n: string) => string): string {
  if (typeof e === 'number') return f32(e);
  if (typeof e === 'string') return name(e);
  if (!('b' in e)) return `${e.op}(${wgslOf(e.a, name)})`;
  if (e.op === 'max') return `max(${wgslOf(e.a, name)}, ${wgslOf(e.b, name)})`;
  return `(${wgslOf(e.a, name)} ${e.op} ${wgslOf(e.b, name)})`;
}

export function webgpuTrain(m: ModuleInfo, t: Typed, prog: HostProgram, info: TrainInfo): TrainParts | undefined {
  if (!m.optimizer) return undefined;
  const spec = m.optimizer;
  const slots = slotsOf(spec);
  const ps = trainedParams(m);
  const grads = new Map(info.gradReads.map(([o, a]) => [o, a]));
  const missing = ps.find((p) => !grads.has(p.name));
  if (missing) throw new CompileError(`the webgpu training step needs a gradient of every trained param, and '${missing.name}' has none`);
  const steps = groupSteps(m, (b) => b);
  const arrayOf = new Map(info.stages.filter((s) => s.source === 'param').map((s) => [s.key, s.array]));
  const arrays: { name: string; numel: string }[] = [];
  const shaders: Shader[] = [];
  // per param group the step scalars the host computes (clip is the device's: clipShaders)
  const hostNames = steps.map((s) => scalarNames(s.group.spec).filter((x) => x !== 'clip'));
  const hostValues = steps.map((s) => s.values.filter((v) => v !== 'clip'));
  steps.forEach((_s, k) => arrays.push({ name: `opt:scalars:${k}`, numel: String(Math.max(1, hostValues[k]!.length)) }));
  const clip = spec.hyper.clipGradNorm;
  if (clip !== undefined) arrays.push({ name: 'clip:sq', numel: String(ps.length) }, { name: 'clip:factor', numel: '1' });
  for (const p of ps) {
    const n = js(numelSize(p.shape));
    arrays.push({ name: `res:${p.name}`, numel: n }, ...slots.map((s) => ({ name: `opt:${s}:${p.name}`, numel: n })));
    const k = steps.findIndex((s) => s.group.params.includes(p.name));
    shaders.push(...paramShaders(m, p, { param: arrayOf.get(p.name)!, grad: grads.get(p.name)!, group: k, spec: steps[k]!.group.spec, names: hostNames[k]!, clip: clip !== undefined }));
  }
  if (clip !== undefined) shaders.push(...clipShaders(ps.map((p) => ({ grad: grads.get(p.name)!, n: numelSize(p.shape) })), clip));
  // --check-finite: the loss and each trained param's gradient, checked on the device
  const checked = m.checkFinite ? [{ what: 'loss', array: grads.get('loss')!, n: '1' }, ...ps.map((p) => ({ what: `gradient of '${p.name}'`, array: grads.get(p.name)!, n: sz(numelSize(p.shape)) }))] : [];
  if (checked.length) {
    arrays.push({ name: 'finite:at', numel: String(3 * checked.length) }, { name: 'finite:flag', numel: '4' });
    shaders.push(...finiteShaders(checked));
  }
  const decls = optimizerDecls(m, t);
  const all = params(m.fwd);
  const sizeOf = (p: (typeof all)[number]) => js(numelSize(p.shape));
  const modes = modesOf(m.fwd);
  const create = (first: number): string[] => {
    const copies = ps.map((_p, j) => first + 2 * j);
    const updates = ps.map((_p, j) => first + 2 * j + 1);
    const clips = clip !== undefined ? [...ps.map((_p, j) => first + 2 * ps.length + j), first + 3 * ps.length] : [];
    const afterClips = first + 2 * ps.length + clips.length;
    const finite = checked.length ? [...checked.map((_c, j) => afterClips + j), afterClips + checked.length] : [];
    return [
      '  // trainStep: the params and state it keeps on the device, and the objects they came from',
      '  // (b: the arrays of some set of sizes; the resident ones are the same in every set)',
      `  let dev${t(': { params: Params; state: OptState; step: number; b: Built } | undefined')};`,
      `  let stepTail${t(': Promise<unknown>')} = Promise.resolve();`,
      `  const TRAIN = [${copies.join(', ')}];`,
      `  const UPDATE = [${updates.join(', ')}];`,
      ...(clips.length ? [`  const CLIP = [${clips.join(', ')}]; // clip_grad_norm_(max_norm = ${clip}): Σ g² per gradient, then min(1, N / (‖g‖₂ + 1e-6))`] : []),
      ...(finite.length
        ? [
            `  const FINITE = [${finite.join(', ')}]; // --check-finite: the loss and the gradients, on the device`,
            `  const FINITE_NAMES = ${JSON.stringify(checked.map((c) => c.what))};`,
            '  const FINITE_CLEAR = Float32Array.of(-1, 0, 0, 0);',
          ]
        : []),
      `  const STEP_READS${t(': [string, string][]')} = [...GRAD_READS.filter(([o]) => o === 'loss' || o.startsWith('next '))${finite.length ? ", ['finite', 'finite:flag']" : ''}];`,
      `  const scalars = [${hostValues.map((v) => `new Float32Array(${Math.max(1, v.length)})`).join(', ')}];`,
    ];
  };
  const nothing = (what: string) => `throw new Error('${m.name}: ${what}() has nothing to read: no trainStep has run on this model yet');`;
  // a step's start (trainStep's and applyGradients'): the params and state to the device when they
  // are other objects than the last step's, the rate and the step scalars
  const prologue = (checkParams: boolean) => [
    checkParams ? '        const b = await rt.built(sizes);' : `        const b = dev?.b ?? (await rt.built(${info.ones})); // the update shaders bind only resident arrays: any set of sizes will do`,
    '        if (dev === undefined || dev.params !== params || dev.state !== state) {',
    '          // other objects than the last step\'s: their values go to the device',
    ...(checkParams && m.checkFinite ? ps.map((p) => `          checkFinite(${JSON.stringify(`param '${p.name}'`)}, ${member('params', p.name)}, 'passed in');`) : []),
    ...ps.flatMap((p) => [`          write(b, ${JSON.stringify(`res:${p.name}`)}, ${member('params', p.name)});`, ...slots.map((s) => `          write(b, ${JSON.stringify(`opt:${s}:${p.name}`)}, ${member(`state.${s}`, p.name)});`)]),
    '          dev = { params, state, step: state.step, b };',
    '        }',
    `        ${lrLine(spec, 'stepOptions', 'state.step')}`,
    '        const t = state.step + 1; // the step number of this step, from 1',
    ...steps.flatMap((s, k) => [...s.lines.map((l) => `        ${l}`), ...(hostValues[k]!.length ? [`        scalars[${k}]${t('!')}.set([${hostValues[k]!.join(', ')}]); // ${hostNames[k]!.join(', ')}`] : [])]),
    ...steps.map((_s, k) => `        write(b, 'opt:scalars:${k}', scalars[${k}]${t('!')});`),
    ...(checked.length && !checkParams ? ["        write(b, 'finite:flag', FINITE_CLEAR); // the update shaders run"] : []),
  ];
  const grad = (p: (typeof ps)[number]) => JSON.stringify(grads.get(p.name)!);
  const methods = [
    `    initOptState(params${t(': Params')})${t(': OptState')} {`,
    `      if (typeof params !== 'object' || params === null) throw new TypeError('${m.name}: params must be an object');`,
    ...all.map((p) => `      expectArray('param', ${JSON.stringify(p.name)}, ${ownMember('params', p.name)}, Float32Array, ${sizeOf(p)}, '${p.dtype}[${p.shape.join(',')}]');`),
    `      return { step: 0${slots.map((s) => `, ${s}: { ${ps.map((p) => `${key(p.name)}: new Float32Array(${sizeOf(p)})`).join(', ')} }`).join('')} };`,
    '    },',
    `    async trainStep(params${t(': Params')}, state${t(': OptState')}, inputs${t(': Inputs')}, stepOptions${t('?: { lr?: number; seed?: number; buffers?: Buffers }')})${t(': Promise<{ loss: number }>')} {`,
    '      checkArgs(params, inputs);',
    `      const sizes = ${info.sizes}; // the sizes of these inputs, before an await lets another call bind others`,
    '      checkOptState(state);',
    ...givenLrCheck(m.name, '      '),
    ...(hasModes(m.fwd) ? [`      const options${t(': Options')} = { seed: stepOptions?.seed ?? state.step + 1, buffers: stepOptions?.buffers };`, '      checkOptions(options, true, false);'] : [`      const options = undefined;`]),
    '      // a step waits for the one before: the step number and the scheduled rate are those it runs with',
    ...(m.checkFinite ? inputs(m.fwd).filter((e) => e.dtype === 'f32').map((e) => `      checkFinite(${JSON.stringify(`input '${e.name}'`)}, ${member('inputs', e.name)}, 'passed in');`) : []),
    '      const run = stepTail.then(async () => {',
    ...prologue(true),
    '        stage(b, params, inputs, options, false);',
    '        const enc = device.createCommandEncoder();',
    `        rt.encode(enc, b, [...TRAIN, ...GRAD, ${checked.length ? '...FINITE, ' : ''}${clip !== undefined ? '...CLIP, ' : ''}...UPDATE]);`,
    '        const take = rt.readBack(enc, b, STEP_READS);',
    '        device.queue.submit([enc.finish()]);',
    '        const r = await take();',
    ...(checked.length
      ? [
          `        const f = r.finite${t('!')};`,
          `        if (f[0]${t('!')} >= 0)`,
          `          throw new RangeError(\`${m.name}: \${f[3]} in \${FINITE_NAMES[f[0]${t('!')}]}[\${f[1]${t('!')} * 65536 + f[2]${t('!')}}], ${FINITE_WHERE} (built with --check-finite)\`);`,
        ]
      : []),
    ...(modes.buffers.length ? ['        if (callState.train) {', ...modes.buffers.map((bb) => `          ${member(`options.buffers${t('!')}`, bb.name)}.set(r[${JSON.stringify(`next ${bb.name}`)}]${t('!')});`), '        }'] : []),
    '        state.step = t;',
    `        dev${t('!')}.step = t;`,
    `        return { loss: r.loss${t('!')}[0]${t('!')} };`,
    '      });',
    '      stepTail = run.catch(() => undefined);',
    '      return run;',
    '    },',
    `    async applyGradients(params${t(': Params')}, state${t(': OptState')}, grads${t(`: ${gradsType(m)}`)}, stepOptions${t('?: { lr?: number }')})${t(': Promise<void>')} {`,
    `      if (typeof params !== 'object' || params === null) throw new TypeError('${m.name}: params must be an object');`,
    ...all.map((p) => `      expectArray('param', ${JSON.stringify(p.name)}, ${ownMember('params', p.name)}, Float32Array, ${sizeOf(p)}, '${p.dtype}[${p.shape.join(',')}]');`),
    '      checkOptState(state);',
    ...givenLrCheck(m.name, '      '),
    ...gradsCheck(m, '      '),
    '      // one optimizer step on the device with the gradients given: they go where the backward pass leaves its own',
    '      const run = stepTail.then(async () => {',
    ...prologue(false),
    ...ps.map((p) => `        write(b, ${grad(p)}, ${member('grads', p.name)});`),
    '        const enc = device.createCommandEncoder();',
    `        rt.encode(enc, b, [${clip !== undefined ? '...CLIP, ' : ''}...UPDATE]);`,
    '        device.queue.submit([enc.finish()]);',
    '        await device.queue.onSubmittedWorkDone();',
    '        state.step = t;',
    `        dev${t('!')}.step = t;`,
    '      });',
    '      stepTail = run.catch(() => undefined);',
    '      return run;',
    '    },',
    ...readMethods(m, t, ps, slots, nothing),
  ];
  void gradEntries;
  const resident = [...arrays.map((a) => a.name), ...ps.map((p) => grads.get(p.name)!).filter((a) => info.residentOk(a))];
  return { decls, arrays, resident, shaders, create, methods };
}

/** Module-level declarations of --optimizer: hyper, the learning rate, OptState, checkOptState. */
function optimizerDecls(m: ModuleInfo, t: Typed): string[] {
  const spec = m.optimizer!;
  const { stateType, checkState } = optStateParts(m, t);
  return [
    '',
    `// --optimizer ${spec.name}: ${commentText(OPTIMIZERS[spec.name].summary)}. trainStep keeps params and optimizer state on the`,
    '// device and updates them there (readParams, readOptState bring them back).',
    ...hyperDecls(m, t, stateType),
    ...checkState,
  ];
}

/** readParams and readOptState: the resident arrays read back (in one submit each). */
function readMethods(m: ModuleInfo, t: Typed, ps: readonly { name: string }[], slots: readonly string[], nothing: (what: string) => string): string[] {
  const all = params(m.fwd);
  return [
    `    async readParams()${t(': Promise<Params>')} {`,
    '      await stepTail;',
    `      if (dev === undefined) ${nothing('readParams')}`,
    '      const b = dev.b;',
    `      const reads${t(': [string, string][]')} = [${ps.map((p) => `[${JSON.stringify(p.name)}, ${JSON.stringify(`res:${p.name}`)}]`).join(', ')}];`,
    '      const enc = device.createCommandEncoder();',
    '      const take = rt.readBack(enc, b, reads);',
    '      device.queue.submit([enc.finish()]);',
    '      const r = await take();',
    `      return { ${all.map((p) => `${key(p.name)}: ${ps.some((q) => q.name === p.name) ? `r[${JSON.stringify(p.name)}]${t(' as Float32Array')}` : `Float32Array.from(${member('dev.params', p.name)})`}`).join(', ')} }${t(' as Params')};`,
    '    },',
    `    async readOptState()${t(': Promise<OptState>')} {`,
    '      await stepTail;',
    `      if (dev === undefined) ${nothing('readOptState')}`,
    '      const b = dev.b;',
    `      const reads${t(': [string, string][]')} = [${slots.flatMap((s) => ps.map((p) => `[${JSON.stringify(`${s} ${p.name}`)}, ${JSON.stringify(`opt:${s}:${p.name}`)}]`)).join(', ')}];`,
    '      const enc = device.createCommandEncoder();',
    '      const take = rt.readBack(enc, b, reads);',
    '      device.queue.submit([enc.finish()]);',
    '      const r = await take();',
    `      return { step: dev.step${slots.map((s) => `, ${s}: { ${ps.map((p) => `${key(p.name)}: r[${JSON.stringify(`${s} ${p.name}`)}]${t(' as Float32Array')}`).join(', ')} }`).join('')} }${t(' as OptState')};`,
    '    },',
  ];
}

/**
 * A trained param's two shaders: the resident param into the array the forward pass reads, and
 * its update (the optimizer table's statements over the param, its gradient, its state slots and
 * the step scalars of its group, `names`).
 */
function paramShaders(
  m: ModuleInfo,
  p: { name: string; shape: readonly Dim[] },
  o: { param: string; grad: string; group: number; spec: Parameters<typeof updateStatements>[0]; names: readonly string[]; clip: boolean },
): Shader[] {
  const spec = m.optimizer!;
  const slots = slotsOf(spec);
  const n = numelSize(p.shape);
  const dtypeOf = () => 'f32' as const;
  const c = new Bindings(dtypeOf);
  const src = c.arr(`res:${p.name}`);
  const dst = c.arr(o.param, true);
  const copy = { wgsl: [`// ${commentText(p.name)}: the resident param, for the forward pass`, ...c.decls(), ...entry1d(sz(n)), `  ${dst}[gi] = ${src}[gi];`, '}'].join('\n'), arrays: c.arrays(), threads: js(n) };
  const b = new Bindings(dtypeOf);
  const pv = b.arr(`res:${p.name}`, true);
  const gv = b.arr(o.grad);
  const sv = slots.map((s) => b.arr(`opt:${s}:${p.name}`, true));
  const names = o.names;
  const sc = names.length ? b.arr(`opt:scalars:${o.group}`) : '';
  const cf = o.clip ? b.arr('clip:factor') : '';
  // --check-finite: a step whose loss or a gradient is not finite is not taken
  const skip = m.checkFinite ? [`if (${b.arr('finite:flag')}[0] >= 0.0) { return; }`] : [];
  const local = (x: string) => (x === 'p' || x === 'g' ? x : slots.includes(x) ? `s_${x}` : x === 'clip' ? `${cf}[0]` : `${sc}[${names.indexOf(x)}]`);
  const body = [
    ...skip,
    `var p = ${pv}[gi];`,
    `var g = ${gv}[gi];`,
    ...slots.map((s, j) => `var s_${s} = ${sv[j]}[gi];`),
    ...updateStatements(o.spec).map((st) => `${local(st.set)} = ${wgslOf(st.to, local)}; // ${commentText(st.formula)}`),
    `${pv}[gi] = p;`,
    ...slots.map((s, j) => `${sv[j]}[gi] = s_${s};`),
  ];
  const update = {
    wgsl: [`// --optimizer ${spec.name}: the update of ${commentText(p.name)}`, ...b.decls(), PRELUDE, ...entry1d(sz(n)), ...body.map((l) => `  ${l}`), '}'].join('\n'),
    arrays: b.arrays(),
    threads: js(n),
  };
  return [copy, update];
}

/**
 * clip_grad_norm_ on the device: per gradient one workgroup sums its squares (strided parts in
 * blocks of 64 terms, joined by a tree in workgroup memory) into `clip:sq`; a last shader adds
 * them in param order and writes min(1, N / (‖g‖₂ + 1e-6)) to `clip:factor`, which every update
 * shader reads as `clip` (the optimizer table's `g = g·clip`).
 */
function clipShaders(grads: readonly { grad: string; n: Size }[], maxNorm: number): Shader[] {
  const out: Shader[] = grads.map(({ grad, n }, k) => {
    const b = new Bindings(() => 'f32');
    const g = b.arr(grad);
    const sq = b.arr('clip:sq', true);
    const wgsl = [
      `// Σ g² of gradient ${k} (clip_grad_norm_)`,
      ...b.decls(),
      `var<workgroup> red: array<f32, ${WG}>;`,
      `@compute @workgroup_size(${WG})`,
      'fn main(@builtin(local_invocation_index) lidx: u32) {',
      '  let li = i32(lidx);',
      '  var total = 0.0;',
      '  var part = 0.0;',
      '  var terms = 0;',
      `  for (var i = li; i < ${sz(n)}; i += ${WG}) {`,
      `    part += ${g}[i] * ${g}[i];`,
      '    terms++;',
      '    if (terms % 64 == 0) { total += part; part = 0.0; }',
      '  }',
      '  red[li] = total + part;',
      ...treeJoin('red[li] = red[li] + red[li + s];').map((l) => `  ${l}`),
      `  if (li == 0) { ${sq}[${k}] = red[0]; }`,
      '}',
    ].join('\n');
    return { wgsl, arrays: b.arrays(), threads: String(WG) };
  });
  const b = new Bindings(() => 'f32');
  const sq = b.arr('clip:sq');
  const f = b.arr('clip:factor', true);
  out.push({
    wgsl: [
      `// clip_grad_norm_(max_norm = ${maxNorm}): min(1, N / (‖g‖₂ + 1e-6)), ‖g‖₂ over every gradient`,
      ...b.decls(),
      ...entry1d('1'),
      '  var s = 0.0;',
      `  for (var k = 0; k < ${grads.length}; k++) { s += ${sq}[k]; }`,
      `  ${f}[0] = min(1.0, ${f32(maxNorm)} / (sqrt(s) + 1e-6));`,
      '}',
    ].join('\n'),
    arrays: b.arrays(),
    threads: '1',
  });
  return out;
}

/**
 * --check-finite in trainStep: per checked array (the loss, then each trained param's gradient)
 * one workgroup finds its first value that is NaN or ±∞ (each invocation a strided part, a tree
 * of minima in workgroup memory) and writes [index ÷ 65536, index mod 65536, value] (−1 if none)
 * to `finite:at`; a last shader writes the first such array's [which, index ÷ 65536, index mod
 * 65536, value] to `finite:flag` (which = −1: every value finite), which the update shaders read
 * (they skip the step) and trainStep reads back with the loss.
 */
function finiteShaders(checked: readonly { what: string; array: string; n: string }[]): Shader[] {
  const NONE = 0x7fffffff;
  const out: Shader[] = checked.map(({ what, array, n }, k) => {
    const b = new Bindings(() => 'f32');
    const g = b.arr(array);
    const at = b.arr('finite:at', true);
    const wgsl = [
      `// --check-finite: the first value of the ${commentText(what)} that is NaN or ±∞`,
      ...b.decls(),
      `var<workgroup> red: array<i32, ${WG}>;`,
      `@compute @workgroup_size(${WG})`,
      'fn main(@builtin(local_invocation_index) lidx: u32) {',
      '  let li = i32(lidx);',
      `  var first = ${NONE};`,
      `  for (var i = li; i < ${n}; i += ${WG}) {`,
      `    if (first == ${NONE} && (bitcast<u32>(${g}[i]) & 0x7fffffffu) >= 0x7f800000u) { first = i; }`,
      '  }',
      '  red[li] = first;',
      ...treeJoin('red[li] = min(red[li], red[li + s]);').map((l) => `  ${l}`),
      '  if (li == 0) {',
      '    let i = red[0];',
      `    if (i == ${NONE}) { ${at}[${3 * k}] = -1.0; } else { ${at}[${3 * k}] = f32(i / 65536); ${at}[${3 * k + 1}] = f32(i % 65536); ${at}[${3 * k + 2}] = ${g}[i]; }`,
      '  }',
      '}',
    ].join('\n');
    return { wgsl, arrays: b.arrays(), threads: String(WG) };
  });
  const b = new Bindings(() => 'f32');
  const at = b.arr('finite:at');
  const f = b.arr('finite:flag', true);
  out.push({
    wgsl: [
      '// --check-finite: the first checked array with a value that is not finite (-1: none), for trainStep and the update shaders',
      ...b.decls(),
      ...entry1d('1'),
      '  var which = -1;',
      `  for (var k = ${checked.length - 1}; k >= 0; k--) { if (${at}[3 * k] >= 0.0) { which = k; } }`,
      `  ${f}[0] = f32(which);`,
      `  if (which >= 0) { ${f}[1] = ${at}[3 * which]; ${f}[2] = ${at}[3 * which + 1]; ${f}[3] = ${at}[3 * which + 2]; }`,
      '}',
    ].join('\n'),
    arrays: b.arrays(),
    threads: '1',
  });
  return out;
}
