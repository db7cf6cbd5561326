// The GPU.js module's training step (--optimizer), in gpu.js's cpu mode (no device handles: the
// update runs on the host): 30 steps against the flat module's trainStep, readParams,
// readOptState, and the checks of its arguments. On a device: test/browser/train.test.ts.

import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import type { Arrays } from './helpers.js';
import { modelFile, randomArgs, reference, relErr, run, tmp } from './helpers.js';
import type { RefState } from './optim-reference.js';
import { GROUPS_MODEL, refGroups, refHyper, refLr, torchStep, torchStepGroups } from './optim-reference.js';
import type { OptimizerName } from '../codegen/optim.js';

const MODEL = `import { model } from 'graphc';
export default model('mlp', (g) => {
  const W1 = g.param('W1', [6, 16], { scale: 0.4 });
  const b1 = g.param('b1', [16], { scale: 0.1 });
  const W2 = g.param('W2', [16, 5], { scale: 0.4 });
  const b2 = g.param('b2', [5], { scale: 0.1 });
  const x = g.input('x', [12, 6]);
  const y = g.input('y', [12], 'i32');
  const h = x.matmul(W1).add(b1).tanh();
  const loss = g.crossEntropy(h.matmul(W2).add(b2), y);
  return { loss };
});
`;

type State = { step: number } & Record<string, unknown>;
interface FlatTrainer {
  hyper: Record<string, unknown>;
  initOptState(params: Arrays): State;
  trainStep(params: Arrays, state: object, inputs: Arrays, options?: { lr?: number }): { loss: number };
}
interface GpuModel {
  initOptState(params: Arrays): State;
  trainStep(params: Arrays, state: object, inputs: Arrays, options?: { lr?: number }): Promise<{ loss: number }>;
  readParams(): Promise<Record<string, Float32Array>>;
  readOptState(): Promise<State>;
  destroy(): void;
}
interface GpuTrainer {
  hyper: Record<string, unknown>;
  create(options?: { mode?: string }): Promise<GpuModel>;
}

async function build(flags: string[], source = MODEL): Promise<{ flat: FlatTrainer; gpu: GpuTrainer }> {
  const name = /model\('(\w+)'/.exec(source)![1]!;
  const file = modelFile(source, `${name}.ts`);
  const out = path.join(tmp(), 'gputrain');
  const r = await run(['build', file, '--out', out, '--target', 'ts,gpu', ...flags]);
  expect(r.err).toBe('');
  const flat = (await import(pathToFileURL(path.join(out, `${name}.js`)).href)) as FlatTrainer;
  const gpu = (await import(pathToFileURL(path.join(out, `${name}.gpu.js`)).href)) as GpuTrainer;
  return { flat, gpu };
}

const copy = (p: Arrays) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Float32Array.from(v)]));

const CASES = [
  ['--optimizer', 'adam', '--lr', '0.01'],
  ['--optimizer', 'sgd', '--lr', '0.05', '--momentum', '0.9', '--weight-decay', '0.01'],
  ['--optimizer', 'adamw', '--lr', '0.01', '--clip-grad-norm', '0.5'],
];

describe('GPU.js trainStep (cpu mode): 30 steps against the flat module', () => {
  it.each(CASES)('%s %s %s %s', async (...flags) => {
    const { flat, gpu } = await build(flags);
    expect(gpu.hyper).toEqual(flat.hyper);
    const compiled = await compile(modelFile(MODEL, 'mlp.ts'), { targets: [] });
    const { params, inputs } = randomArgs(compiled.fwd, 7);
    const lr = flat.hyper.lr as number;
    const a = copy(params);
    const sa = flat.initOptState(a);
    const model = await gpu.create({ mode: 'cpu' });
    try {
      const b = copy(params);
      const W1 = b.W1;
      const sb = model.initOptState(b);
      for (let t = 1; t <= 30; t++) {
        const opts = t > 15 ? { lr: lr / 2 } : undefined; // a schedule through options.lr
        const want = flat.trainStep(a, sa, inputs, opts).loss;
        const got = (await model.trainStep(b, sb, inputs, opts)).loss;
        expect(relErr([got], [want]), `loss at step ${t}`).toBeLessThan(1e-4);
      }
      expect(b.W1, 'in place').toBe(W1);
      expect(sb.step).toBe(30);
      for (const k of Object.keys(a)) expect(relErr(b[k]!, a[k]!), k).toBeLessThan(1e-4);
      const read = await model.readParams();
      expect(Object.keys(read).sort()).toEqual(Object.keys(b).sort());
      for (const k of Object.keys(b)) {
        expect(read[k], k).toEqual(b[k]);
        expect(read[k], `${k} is a copy`).not.toBe(b[k]);
      }
      // cpu mode keeps no device handles: the update ran on the host, in the caller's state
      const st = await model.readOptState();
      expect(st.step).toBe(30);
      for (const slot of Object.keys(sb).filter((k) => k !== 'step'))
        for (const k of Object.keys(b)) {
          const mine = (sb[slot] as Record<string, Float32Array>)[k]!;
          const theirs = (st[slot] as Record<string, Float32Array>)[k]!;
          expect(theirs, `${slot}.${k}`).toEqual(mine);
          expect(theirs, `${slot}.${k} is a copy`).not.toBe(mine);
        }
    } finally {
      model.destroy();
    }
  });
});

// every optimizer with its options, in gpu.js's cpu mode, against the float64 reference
const REF_CASES: [OptimizerName, string[]][] = [
  ['sgd', ['--lr', '0.05', '--momentum', '0.8', '--nesterov', '--weight-decay', '0.01', '--clip-grad-norm', '0.5']],
  ['adam', ['--lr', '0.01', '--amsgrad', '--weight-decay', '0.02']],
  ['adamw', ['--lr', '0.01', '--amsgrad', '--clip-grad-norm', '0.5']],
  ['rmsprop', ['--centered', '--momentum', '0.5', '--weight-decay', '0.01']],
  ['rmsprop', ['--lr', '0.005', '--clip-grad-norm', '0.5']],
  ['adagrad', ['--lr', '0.05', '--weight-decay', '0.01', '--clip-grad-norm', '0.5', '--lr-decay', '0.02']],
  ['lion', ['--lr', '0.001', '--weight-decay', '0.1']],
];

describe('GPU.js trainStep (cpu mode): 100 steps against torch.optim in float64', () => {
  it.each(REF_CASES)('%s %s', async (name, flags) => {
    const { gpu } = await build(['--optimizer', name, ...flags]);
    const h = refHyper(gpu.hyper as Record<string, number | boolean>);
    const compiled = await compile(modelFile(MODEL, 'mlp.ts'), { targets: [] });
    const { params, inputs } = randomArgs(compiled.fwd, 7);
    const p64: Record<string, Float64Array> = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float64Array.from(v)]));
    const state64: RefState = {};
    for (let t = 1; t <= 100; t++) torchStep(name, h, t > 50 ? h.lr / 2 : h.lr, t, p64, reference(compiled.fwd, compiled.bwd, p64 as unknown as Arrays, inputs).grads, state64);
    const model = await gpu.create({ mode: 'cpu' });
    try {
      const p = copy(params);
      const state = model.initOptState(p);
      for (let t = 1; t <= 100; t++) await model.trainStep(p, state, inputs, t > 50 ? { lr: h.lr / 2 } : undefined);
      expect(state.step).toBe(100);
      for (const k of Object.keys(p64)) expect(relErr(p[k]!, p64[k]!), k).toBeLessThan(2e-5);
    } finally {
      model.destroy();
    }
  });
});

// param groups (g.param weightDecay, lrScale, a frozen param), --no-decay-1d and a schedule
const GROUP_CASES: [OptimizerName, string[]][] = [
  ['sgd', ['--lr', '0.05', '--momentum', '0.9', '--weight-decay', '0.01', '--no-decay-1d', '--schedule', 'step', '--step-size', '30', '--gamma', '0.5']],
  ['adam', ['--lr', '0.01', '--weight-decay', '0.03', '--schedule', 'linear', '--warmup', '5', '--total-steps', '90']],
  ['adamw', ['--lr', '0.01', '--no-decay-1d', '--clip-grad-norm', '0.5', '--schedule', 'cosine', '--warmup', '10', '--total-steps', '80', '--min-lr', '0.0005']],
  ['rmsprop', ['--lr', '0.005', '--weight-decay', '0.01', '--no-decay-1d', '--schedule', 'constant', '--warmup', '20']],
  ['adagrad', ['--lr', '0.05', '--weight-decay', '0.01', '--schedule', 'cosine', '--total-steps', '100']],
  ['lion', ['--lr', '0.001', '--weight-decay', '0.3', '--no-decay-1d', '--clip-grad-norm', '0.5', '--schedule', 'linear', '--total-steps', '60', '--min-lr', '0.0001']],
];

describe('GPU.js trainStep (cpu mode): param groups and schedules, 100 steps against torch.optim in float64', () => {
  it.each(GROUP_CASES)('%s %s', async (name, flags) => {
    const { gpu } = await build(['--optimizer', name, ...flags], GROUPS_MODEL);
    const hyper = gpu.hyper as Record<string, number | boolean | string>;
    const h = refHyper(Object.fromEntries(Object.entries(hyper).filter(([, v]) => typeof v !== 'string')) as Record<string, number | boolean>);
    const compiled = await compile(modelFile(GROUPS_MODEL, 'groups.ts'), { targets: [] });
    const { params, inputs } = randomArgs(compiled.fwd, 7);
    const groups = refGroups(h.weightDecay, hyper.noDecay1d === true);
    const p64: Record<string, Float64Array> = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float64Array.from(v)]));
    const state64: RefState = {};
    for (let t = 1; t <= 100; t++) torchStepGroups(name, h, refLr(hyper, h.lr, t - 1), t, p64, reference(compiled.fwd, compiled.bwd, p64 as unknown as Arrays, inputs).grads, state64, groups);
    const model = await gpu.create({ mode: 'cpu' });
    try {
      const p = copy(params);
      const state = model.initOptState(p);
      for (let t = 1; t <= 100; t++) await model.trainStep(p, state, inputs);
      expect(state.step).toBe(100);
      expect(p.b2, 'the frozen b2').toEqual(params.b2);
      for (const k of Object.keys(p64)) expect(relErr(p[k]!, p64[k]!), k).toBeLessThan(2e-5);
      expect(Object.keys(await model.readParams()).sort()).toEqual(['W1', 'W2', 'b1', 'b2', 'gain']);
      const st = await model.readOptState();
      for (const slot of Object.keys(st).filter((k) => k !== 'step')) expect(Object.keys(st[slot] as object).sort(), slot).toEqual(['W1', 'W2', 'b1', 'gain']);
    } finally {
      model.destroy();
    }
  });
});

describe('GPU.js trainStep: arguments', () => {
  it('checks the learning rate, the state and the params, and readParams before any step', async () => {
    const { gpu } = await build(['--optimizer', 'adam']);
    const compiled = await compile(modelFile(MODEL, 'mlp.ts'), { targets: [] });
    const { params, inputs } = randomArgs(compiled.fwd, 3);
    const model = await gpu.create({ mode: 'cpu' });
    try {
      await expect(model.readParams()).rejects.toThrow(new Error('mlp: readParams() has nothing to read: no trainStep has run on this model yet'));
      await expect(model.readOptState()).rejects.toThrow(new Error('mlp: readOptState() has nothing to read: no trainStep has run on this model yet'));
      expect(() => model.initOptState({ ...params, b2: new Float32Array(4) })).toThrow(new RangeError("mlp: param 'b2' must have 5 elements (f32[5]), got 4"));
      const state = model.initOptState(params) as { step: number; exp_avg: Record<string, Float32Array>; exp_avg_sq: Record<string, Float32Array> };
      expect(state.step).toBe(0);
      expect(Object.keys(state.exp_avg).sort()).toEqual(['W1', 'W2', 'b1', 'b2']);
      expect(state.exp_avg_sq.W1).toEqual(new Float32Array(96));
      await expect(model.trainStep(params, state, inputs, { lr: NaN })).rejects.toThrow(new TypeError('mlp: the learning rate must be a finite number, got NaN'));
      await expect(model.trainStep(params, { ...state, step: -1 }, inputs)).rejects.toThrow(new TypeError('mlp: state.step must be a non-negative integer, got -1'));
      await expect(model.trainStep(params, { step: 0 }, inputs)).rejects.toThrow(new TypeError('mlp: state.exp_avg is missing: make the state with initOptState(params)'));
      await expect(model.trainStep(params, { ...state, exp_avg: { ...state.exp_avg, b1: new Float32Array(3) } }, inputs)).rejects.toThrow(
        new RangeError("mlp: optimizer state 'exp_avg.b1' must have 16 elements (f32[16]), got 3"),
      );
      await expect(model.trainStep({ ...params, W1: new Float32Array(2) }, state, inputs)).rejects.toThrow(new RangeError("mlp: param 'W1' must have 96 elements (f32[6,16]), got 2"));
      expect(state.step, 'a rejected step changes nothing').toBe(0);
      await expect(model.readParams()).rejects.toThrow(/nothing to read/);
    } finally {
      model.destroy();
    }
  });
});

// un-awaited calls: each step takes the step number, and the scheduled rate, of the step before it
// as it finished (cpu mode: the host path; on a device the same chain, test/browser/train.test.ts)
describe('GPU.js trainStep: steps not awaited run one after the other', () => {
  const FLAGS = ['--optimizer', 'adam', '--lr', '0.01', '--schedule', 'cosine', '--warmup', '10', '--total-steps', '80'];
  type AccumModel = GpuModel & {
    accumulateGrad(params: Arrays, state: object, inputs: Arrays): Promise<{ loss: number }>;
    applyGradients(params: Arrays, state: object, grads: Arrays, options?: { lr?: number }): Promise<void>;
  };
  type FlatAccum = FlatTrainer & { applyGradients(params: Arrays, state: object, grads: Arrays): void };

  it('three trainSteps and an applyGradients under Promise.all equal the awaited ones and the flat module', async () => {
    const { flat, gpu } = await build(FLAGS);
    const compiled = await compile(modelFile(MODEL, 'mlp.ts'), { targets: [] });
    const { params } = randomArgs(compiled.fwd, 11);
    const batches = [1, 2, 3].map((s) => randomArgs(compiled.fwd, 20 + s).inputs);
    const grads = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float32Array.from(v, (_x, i) => Math.sin(i + k.length))]));
    const a = copy(params);
    const sa = flat.initOptState(a);
    const want = batches.map((x) => flat.trainStep(a, sa, x).loss);
    (flat as FlatAccum).applyGradients(a, sa, grads);
    const m1 = (await gpu.create({ mode: 'cpu' })) as AccumModel;
    const m2 = (await gpu.create({ mode: 'cpu' })) as AccumModel;
    try {
      const b = copy(params);
      const sb = m1.initOptState(b);
      const awaited: number[] = [];
      for (const x of batches) awaited.push((await m1.trainStep(b, sb, x)).loss);
      await m1.applyGradients(b, sb, grads);
      const c = copy(params);
      const sc = m2.initOptState(c);
      const all = await Promise.all([...batches.map((x) => m2.trainStep(c, sc, x)), m2.applyGradients(c, sc, grads)]);
      const losses = all.slice(0, 3).map((r) => (r as { loss: number }).loss);
      expect(losses).toEqual(awaited);
      expect(sc.step).toBe(4);
      for (const k of Object.keys(b)) expect(c[k], k).toEqual(b[k]);
      for (const slot of ['exp_avg', 'exp_avg_sq'])
        for (const k of Object.keys(b)) expect((sc[slot] as Arrays)[k], `${slot}.${k}`).toEqual((sb[slot] as Arrays)[k]);
      expect(relErr(losses, want)).toBeLessThan(1e-4);
      for (const k of Object.keys(a)) expect(relErr(c[k]!, a[k]!), k).toBeLessThan(1e-4);
    } finally {
      m1.destroy();
      m2.destroy();
    }
  });

  it('readOptState keeps grad_accum and accum_count (a checkpoint mid-accumulation)', async () => {
    const { gpu } = await build(FLAGS);
    const compiled = await compile(modelFile(MODEL, 'mlp.ts'), { targets: [] });
    const { params, inputs } = randomArgs(compiled.fwd, 5);
    const model = (await gpu.create({ mode: 'cpu' })) as AccumModel;
    try {
      const state = model.initOptState(params);
      await model.trainStep(params, state, inputs);
      expect(Object.keys(await model.readOptState()).sort(), 'none before accumulateGrad').toEqual(['exp_avg', 'exp_avg_sq', 'step']);
      await model.accumulateGrad(params, state, inputs);
      await model.accumulateGrad(params, state, randomArgs(compiled.fwd, 6).inputs);
      const st = await model.readOptState();
      expect(st.accum_count).toBe(2);
      const acc = state.grad_accum as Arrays;
      const got = st.grad_accum as Arrays;
      expect(Object.keys(got).sort()).toEqual(Object.keys(acc).sort());
      for (const k of Object.keys(acc)) {
        expect(got[k], k).toEqual(acc[k]);
        expect(got[k], `${k} is a copy`).not.toBe(acc[k]);
      }
    } finally {
      model.destroy();
    }
  });
});
