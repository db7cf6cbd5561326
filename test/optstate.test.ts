// `graphc/io`'s saveState/loadState (#34): the optimizer state as safetensors with torch.optim's
// slot names and the step; a run resumed from a saved state in a fresh module instance is bit for
// bit the run that never stopped (flat and wasm modules), and every wrong file is a
// CheckpointError naming the file, with the fix.

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { OptStateLike } from '../src/io.js';
import { decodeSafetensors, loadParams, loadState, saveParams, saveState } from '../src/io.js';
import type { Arrays } from './helpers.js';
import { modelFile, rng, run, tmp } from './helpers.js';

/** A small classifier with dropout: the masks come from the step number, which the state carries. */
const MLP = `import { model } from 'graphc';
export default model('mlp', (g) => {
  const W1 = g.param('W1', [6, 12], { scale: 0.4 });
  const b1 = g.param('b1', [12], { scale: 0.1 });
  const W2 = g.param('W2', [12, 5], { scale: 0.4 });
  const x = g.input('x', [16, 6]);
  const y = g.input('y', [16], 'i32');
  const h = g.dropout(x.matmul(W1).add(b1).tanh(), 0.2);
  return { loss: g.crossEntropy(h.matmul(W2), y) };
});
`;

type Spec = { name: string; params: Record<string, { dtype: string; shape: number[]; trainable?: boolean }>; optimizer?: { name: string; amsgrad?: boolean; centered?: boolean; momentum?: boolean } };
interface TrainMod {
  spec: Spec;
  initParams(seed?: number): Record<string, Float32Array>;
  initOptState(p: Arrays): OptStateLike;
  trainStep(p: Arrays, s: OptStateLike, i: Arrays): { loss: number };
}

/** The batches of step k (the same in every run). */
function batch(k: number): Arrays {
  const r = rng(1000 + k);
  return { x: Float32Array.from({ length: 96 }, () => 2 * r() - 1), y: Int32Array.from({ length: 16 }, () => Math.floor(r() * 5)) };
}

const bits = (p: Record<string, Float32Array>) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, [...new Uint32Array(v.buffer, v.byteOffset, v.length)]]));

/** The optimizers and options whose states the tests save: every kind of slot. */
const BUILDS: [string, string[]][] = [
  ['adam', ['--optimizer', 'adam', '--amsgrad', '--weight-decay', '0.01', '--clip-grad-norm', '1']],
  ['sgd', ['--optimizer', 'sgd', '--momentum', '0.9', '--nesterov', '--lr', '0.05']],
  ['rmsprop', ['--optimizer', 'rmsprop', '--centered', '--momentum', '0.5']],
];

describe.each(BUILDS)('a run resumed from saveState/loadState (%s)', (name, flags) => {
  let dir: string;
  beforeAll(async () => {
    const file = modelFile(MLP, 'mlp.ts');
    dir = path.join(tmp(), 'out');
    const r = await run(['build', file, '--out', dir, '--target', 'ts,wasm', ...flags]);
    expect(r.err).toBe('');
  }, 120_000);

  /** A fresh instance of the module (its own arena and wasm memory), as a new process would load it. */
  let instances = 0;
  const fresh = async (suffix: string): Promise<TrainMod> => import(`${pathToFileURL(path.join(dir, `mlp${suffix}.js`)).href}?instance=${instances++}`) as Promise<TrainMod>;

  it.each([
    ['flat', ''],
    ['wasm', '.wasm'],
  ])('%s: 10 steps, save, load into a fresh instance, 10 more steps is bit for bit 20 steps straight', async (_target, suffix) => {
    // 20 steps straight
    const a = await fresh(suffix);
    const pa = a.initParams(3);
    const sa = a.initOptState(pa);
    const lossesA = Array.from({ length: 20 }, (_x, k) => a.trainStep(pa, sa, batch(k)).loss);
    // 10 steps, saved
    const b = await fresh(suffix);
    const pb = b.initParams(3);
    const sb = b.initOptState(pb);
    const lossesB = Array.from({ length: 10 }, (_x, k) => b.trainStep(pb, sb, batch(k)).loss);
    const files = tmp();
    saveParams(path.join(files, 'params.safetensors'), pb, { spec: b.spec });
    saveState(path.join(files, 'state.safetensors'), sb, { spec: b.spec });
    // loaded into a fresh instance, 10 more
    const c = await fresh(suffix);
    const pc = loadParams(path.join(files, 'params.safetensors'), { spec: c.spec }) as Record<string, Float32Array>;
    const sc = loadState(path.join(files, 'state.safetensors'), { spec: c.spec });
    expect(sc.step).toBe(10);
    for (let k = 10; k < 20; k++) lossesB.push(c.trainStep(pc, sc, batch(k)).loss);
    expect(lossesB).toEqual(lossesA);
    expect(bits(pc)).toEqual(bits(pa));
    expect(sc.step).toBe(20);
    for (const [slot, v] of Object.entries(sa)) if (typeof v === 'object') expect(bits(sc[slot] as Record<string, Float32Array>), slot).toEqual(bits(v as Record<string, Float32Array>));
    // and the steps moved the params: the comparison is not of two untouched arrays
    expect(bits(pa)).not.toEqual(bits(a.initParams(3)));
  });

  it("writes torch.optim's slot names per param, with the params' shapes, and the step in the __metadata__", async () => {
    const m = await fresh('');
    const p = m.initParams(0);
    const s = m.initOptState(p);
    for (let k = 0; k < 3; k++) m.trainStep(p, s, batch(k));
    const file = path.join(tmp(), 'state.safetensors');
    saveState(file, s, { spec: m.spec });
    const { tensors, metadata } = decodeSafetensors(readFileSync(file));
    const slots = { adam: ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'], sgd: ['momentum_buffer'], rmsprop: ['square_avg', 'grad_avg', 'momentum_buffer'] }[name]!;
    expect(Object.keys(tensors).sort()).toEqual(slots.flatMap((sl) => ['W1', 'b1', 'W2'].map((q) => `${sl}.${q}`)).sort());
    expect(tensors[`${slots[0]}.W1`]!.shape).toEqual([6, 12]);
    expect(tensors[`${slots[0]}.b1`]!.shape).toEqual([12]);
    const optimizer = { adam: 'adam --amsgrad', sgd: 'sgd --momentum', rmsprop: 'rmsprop --centered --momentum' }[name]!;
    expect({ ...metadata }).toEqual({ format: 'graphc optimizer state', step: '3', optimizer });
    // the flags that shape the state are in the module's spec, which loadState checks
    expect(m.spec.optimizer).toEqual({ adam: { name: 'adam', amsgrad: true }, sgd: { name: 'sgd', momentum: true }, rmsprop: { name: 'rmsprop', centered: true, momentum: true } }[name]);
    expect(loadState(file, { spec: m.spec }).step).toBe(3);
  });
});

/** Fine-tuning: W1 frozen (no gradient, no state), b1 and W2 trained. */
const FROZEN = `import { model } from 'graphc';
export default model('ft', (g) => {
  const W1 = g.param('W1', [6, 12], { scale: 0.4, trainable: false });
  const b1 = g.param('b1', [12], { scale: 0.1 });
  const W2 = g.param('W2', [12, 5], { scale: 0.4 });
  const x = g.input('x', [16, 6]);
  const y = g.input('y', [16], 'i32');
  return { loss: g.crossEntropy(x.matmul(W1).add(b1).tanh().matmul(W2), y) };
});
`;

describe('a model with a frozen param: its state saved and loaded with { spec }', () => {
  interface AccMod extends TrainMod {
    accumulateGrad(p: Arrays, s: OptStateLike, i: Arrays): { loss: number };
    applyUpdate(p: Arrays, s: OptStateLike): void;
  }
  let dir: string;
  beforeAll(async () => {
    dir = path.join(tmp(), 'out');
    const r = await run(['build', modelFile(FROZEN, 'ft.ts'), '--out', dir, '--target', 'ts,wasm', '--optimizer', 'adam']);
    expect(r.err).toBe('');
  }, 120_000);
  let instances = 0;
  const fresh = async (suffix: string): Promise<AccMod> => import(`${pathToFileURL(path.join(dir, `ft${suffix}.js`)).href}?instance=${instances++}`) as Promise<AccMod>;

  it('marks the frozen param in spec (only it)', async () => {
    const m = await fresh('');
    expect(m.spec.params).toEqual({ W1: { dtype: 'f32', shape: [6, 12], trainable: false }, b1: { dtype: 'f32', shape: [12] }, W2: { dtype: 'f32', shape: [12, 5] } });
    expect((await fresh('.wasm')).spec).toEqual(m.spec);
  });

  it.each([
    ['flat', ''],
    ['wasm', '.wasm'],
  ])('%s: 3 steps, save, load, 3 more steps is bit for bit 6 steps straight; so with grad_accum', async (_target, suffix) => {
    const a = await fresh(suffix);
    const pa = a.initParams(3);
    const sa = a.initOptState(pa);
    const lossesA = Array.from({ length: 6 }, (_x, k) => a.trainStep(pa, sa, batch(k)).loss);
    a.accumulateGrad(pa, sa, batch(6));
    a.accumulateGrad(pa, sa, batch(7));
    a.applyUpdate(pa, sa);
    const b = await fresh(suffix);
    const pb = b.initParams(3);
    const sb = b.initOptState(pb);
    const lossesB = Array.from({ length: 3 }, (_x, k) => b.trainStep(pb, sb, batch(k)).loss);
    const f = path.join(tmp(), 'state.safetensors');
    saveState(f, sb, { spec: b.spec });
    expect(Object.keys(decodeSafetensors(readFileSync(f)).tensors).sort()).toEqual(['W2', 'b1'].flatMap((q) => [`exp_avg.${q}`, `exp_avg_sq.${q}`]).sort());
    const c = await fresh(suffix);
    const pc = Object.fromEntries(Object.entries(pb).map(([k, v]) => [k, v.slice()]));
    const sc = loadState(f, { spec: c.spec });
    for (let k = 3; k < 6; k++) lossesB.push(c.trainStep(pc, sc, batch(k)).loss);
    expect(lossesB).toEqual(lossesA);
    // the state in the middle of an accumulation: grad_accum (no array for W1) and accum_count
    c.accumulateGrad(pc, sc, batch(6));
    saveState(f, sc, { spec: c.spec });
    const d = await fresh(suffix);
    const sd = loadState(f, { spec: d.spec });
    expect(Object.keys(sd.grad_accum as object).sort()).toEqual(['W2', 'b1']);
    d.accumulateGrad(pc, sd, batch(7));
    d.applyUpdate(pc, sd);
    expect(bits(pc)).toEqual(bits(pa));
    expect(bits(pc)).not.toEqual(bits(a.initParams(3)));
  });

  it('refuses a state with tensors for the frozen param', async () => {
    const m = await fresh('');
    const p = m.initParams(0);
    const s = m.initOptState(p);
    m.trainStep(p, s, batch(0));
    const f = path.join(tmp(), 'state.safetensors');
    saveState(f, { ...s, exp_avg: { ...(s.exp_avg as Record<string, Float32Array>), W1: new Float32Array(72) } }, { spec: m.spec });
    expect(() => loadState(f, { spec: m.spec })).toThrow(`${f}: the optimizer state's 'exp_avg.W1': 'W1' is a frozen param of ft (trainable: false), which has no optimizer state; load a state saved from this model`);
    saveState(f, { ...s, grad_accum: { W1: new Float32Array(72), b1: new Float32Array(12), W2: new Float32Array(60) }, accum_count: 1 }, { spec: m.spec });
    expect(() => loadState(f, { spec: m.spec })).toThrow(`${f}: the optimizer state's 'grad_accum.W1': 'W1' is a frozen param of ft (trainable: false), which has no optimizer state; load a state saved from this model`);
  });
});

describe('loadState: wrong files, each a CheckpointError naming the file, with the fix', () => {
  const spec: Spec = { name: 'mlp', params: { W1: { dtype: 'f32', shape: [6, 12] }, b1: { dtype: 'f32', shape: [12] } } };
  const state = (): OptStateLike => ({ step: 4, exp_avg: { W1: new Float32Array(72).fill(0.5), b1: new Float32Array(12).fill(-1) }, exp_avg_sq: { W1: new Float32Array(72), b1: new Float32Array(12) } });
  const file = (name: string) => path.join(tmp(), name);

  it('round-trips a state saved without a spec (1-D tensors), checked against the spec when loaded', () => {
    const f = file('s.safetensors');
    saveState(f, state());
    const s = loadState(f, { spec });
    expect(s.step).toBe(4);
    expect(s).toEqual(state());
  });

  it('a checkpoint of params', () => {
    const f = file('params.safetensors');
    saveParams(f, { W1: new Float32Array(72), b1: new Float32Array(12) }, { spec });
    expect(() => loadState(f)).toThrow(
      `${f}: not an optimizer state (saveState writes "format": "graphc optimizer state" in the __metadata__, which this file lacks); it holds 'W1', 'b1': a checkpoint of params is read with loadParams(file)`,
    );
  });

  it('a file that is not safetensors, and one that does not exist', () => {
    const f = file('notes.txt');
    writeFileSync(f, 'hello');
    expect(() => loadState(f)).toThrow(`${f}: not a safetensors file: 5 bytes, shorter than the 8-byte header length`);
    const g = file('missing.safetensors');
    expect(() => loadState(g)).toThrow(`${g}: cannot read the optimizer state: no such file`);
  });

  it('a state with no step, and one whose step is not an integer', () => {
    const f = file('nostep.safetensors');
    saveParams(f, { 'exp_avg.W1': new Float32Array(72) }, { metadata: { format: 'graphc optimizer state' } });
    expect(() => loadState(f)).toThrow(`${f}: the optimizer state has no step (the "step" of its __metadata__, the number of updates taken); write it with saveState(file, state)`);
    saveParams(f, { 'exp_avg.W1': new Float32Array(72) }, { metadata: { format: 'graphc optimizer state', step: '2.5' } });
    expect(() => loadState(f)).toThrow(`${f}: the optimizer state's step must be a non-negative integer, got "2.5" in its __metadata__`);
  });

  it('a tensor under the name of the step', () => {
    const f = file('s.safetensors');
    saveParams(f, { 'step.W1': new Float32Array(72) }, { metadata: { format: 'graphc optimizer state', step: '2' } });
    expect(() => loadState(f)).toThrow(`${f}: the tensor 'step.W1' is under 'step', which the optimizer state's __metadata__ holds as a number; a state written by saveState has no such tensor`);
  });

  it("a slot whose shape is not the param's, a param the model lacks, a param the state lacks", () => {
    const f = file('s.safetensors');
    saveState(f, { step: 1, exp_avg: { W1: new Float32Array(72), b1: new Float32Array(12) } }, { spec: { params: { W1: { dtype: 'f32', shape: [12, 6] }, b1: { dtype: 'f32', shape: [12] } } } });
    expect(() => loadState(f, { spec })).toThrow(`${f}: the optimizer state's 'exp_avg.W1' is f32[12,6], but the param 'W1' of mlp is f32[6,12]; load a state saved from this model`);
    saveState(f, { step: 1, exp_avg: { W1: new Float32Array(72), b1: new Float32Array(12), W9: new Float32Array(3) } });
    expect(() => loadState(f, { spec })).toThrow(`${f}: the optimizer state's 'exp_avg.W9': 'W9' is not a param of mlp (its params: W1, b1); load a state saved from this model`);
    saveState(f, { step: 1, exp_avg: { W1: new Float32Array(72) } });
    expect(() => loadState(f, { spec })).toThrow(`${f}: the optimizer state's exp_avg has no value for the param 'b1' of mlp; load a state saved from this model`);
    saveState(f, { step: 1, exp_avg: { W1: new Float32Array(70), b1: new Float32Array(12) } });
    expect(() => loadState(f, { spec })).toThrow(`${f}: the optimizer state's 'exp_avg.W1' is f32[70], but the param 'W1' of mlp is f32[6,12]; load a state saved from this model`);
  });

  it('a state saved by another optimizer, or with other slot-shaping flags; a file without the record loads', () => {
    const f = file('s.safetensors');
    const adam = { ...spec, optimizer: { name: 'adam' } };
    saveState(f, state(), { spec: { ...spec, optimizer: { name: 'adam', amsgrad: true } } });
    expect(decodeSafetensors(readFileSync(f)).metadata.optimizer).toBe('adam --amsgrad');
    expect(() => loadState(f, { spec: adam })).toThrow(
      `${f}: the optimizer state was saved by adam --amsgrad, but mlp trains with adam: their states have other slots; load a state saved by this optimizer, or start from initOptState(params)`,
    );
    saveState(f, { step: 1, momentum_buffer: { W1: new Float32Array(72), b1: new Float32Array(12) } }, { spec: { ...spec, optimizer: { name: 'rmsprop', momentum: true } } });
    expect(() => loadState(f, { spec: { ...spec, optimizer: { name: 'sgd', momentum: true } } })).toThrow(
      `${f}: the optimizer state was saved by rmsprop --momentum, but mlp trains with sgd --momentum: their states have other slots; load a state saved by this optimizer, or start from initOptState(params)`,
    );
    // without the record (saved without a spec, or by an older graphc) nothing is checked
    saveState(f, state());
    expect(loadState(f, { spec: adam })).toEqual(state());
    expect(() => saveState(f, { step: 1, optimizer: 2 })).toThrow("saveState: the state's field 'optimizer' is reserved (it records the optimizer that wrote the state); rename it");
  });

  it('a failed write leaves the file as it was and no temporary file', () => {
    const folder = tmp();
    const target = path.join(folder, 'state.safetensors');
    mkdirSync(target); // a folder that holds a file: the rename over it fails
    writeFileSync(path.join(target, 'keep'), 'x');
    expect(() => saveState(target, state())).toThrow(/state\.safetensors/);
    expect(readdirSync(folder)).toEqual(['state.safetensors']);
    expect(readdirSync(target)).toEqual(['keep']);
  });

  it('saveState refuses a state without a valid step or with a slot that is not arrays, and writes nothing', () => {
    const f = file('bad.safetensors');
    expect(() => saveState(f, { exp_avg: {} } as unknown as OptStateLike)).toThrow('saveState: state.step must be a non-negative integer (the number of updates taken), got undefined');
    expect(() => saveState(f, { step: -1 })).toThrow('saveState: state.step must be a non-negative integer (the number of updates taken), got -1');
    expect(() => saveState(f, { step: 1, exp_avg: { W1: [1, 2] as unknown as Float32Array } })).toThrow("saveState: state.exp_avg['W1'] must be a Float32Array, got Array");
    expect(() => readFileSync(f)).toThrow(/ENOENT/);
  });
});

describe('a GPU.js (cpu mode) run resumed from readParams/readOptState, saveState and loadState', () => {
  interface GpuModel {
    initOptState(p: Arrays): OptStateLike;
    trainStep(p: Arrays, s: OptStateLike, i: Arrays): Promise<{ loss: number }>;
    readParams(): Promise<Record<string, Float32Array>>;
    readOptState(): Promise<OptStateLike>;
    destroy(): void;
  }
  interface GpuMod {
    spec: Spec;
    initParams(seed?: number): Record<string, Float32Array>;
    create(o: { mode: string }): Promise<GpuModel>;
  }

  it('takes bit for bit the steps of the run that never stopped', async () => {
    const dir = path.join(tmp(), 'out');
    const r = await run(['build', modelFile(MLP, 'mlp.ts'), '--out', dir, '--target', 'gpu', '--optimizer', 'adam', '--amsgrad']);
    expect(r.err).toBe('');
    const mod = (await import(pathToFileURL(path.join(dir, 'mlp.gpu.js')).href)) as GpuMod;
    const straight = await mod.create({ mode: 'cpu' });
    const first = await mod.create({ mode: 'cpu' });
    const second = await mod.create({ mode: 'cpu' });
    try {
      const pa = mod.initParams(3);
      const sa = straight.initOptState(pa);
      const lossesA: number[] = [];
      for (let k = 0; k < 20; k++) lossesA.push((await straight.trainStep(pa, sa, batch(k))).loss);
      const pb = mod.initParams(3);
      const sb = first.initOptState(pb);
      const lossesB: number[] = [];
      for (let k = 0; k < 10; k++) lossesB.push((await first.trainStep(pb, sb, batch(k))).loss);
      const files = tmp();
      saveParams(path.join(files, 'params.safetensors'), await first.readParams(), { spec: mod.spec });
      saveState(path.join(files, 'state.safetensors'), await first.readOptState(), { spec: mod.spec });
      const pc = loadParams(path.join(files, 'params.safetensors'), { spec: mod.spec }) as Record<string, Float32Array>;
      const sc = loadState(path.join(files, 'state.safetensors'), { spec: mod.spec });
      expect(sc.step).toBe(10);
      for (let k = 10; k < 20; k++) lossesB.push((await second.trainStep(pc, sc, batch(k))).loss);
      expect(lossesB).toEqual(lossesA);
      expect(bits(await second.readParams())).toEqual(bits(await straight.readParams()));
    } finally {
      for (const m of [straight, first, second]) m.destroy();
    }
  }, 120_000);
});
