// Gradient accumulation and caller-given gradients (#34): accumulateGrad over K batches then
// applyUpdate equals one trainStep on their union (mean loss), applyGradients given the module's
// own valueAndGrad gradients equals trainStep, and their argument errors; on the flat module and
// the wasm module with 1 and 2 threads.

import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import type { Arrays } from './helpers.js';
import { modelFile, randomArgs, relErr, run, tmp } from './helpers.js';

/** The MLP of test/train.test.ts with a batch of `n` rows. */
const mlp = (n: number) => `import { model } from 'graphc';
export default model('mlp', (g) => {
  const W1 = g.param('W1', [6, 16], { scale: 0.4 });
  const b1 = g.param('b1', [16], { scale: 0.1 });
  const W2 = g.param('W2', [16, 5], { scale: 0.4 });
  const b2 = g.param('b2', [5], { scale: 0.1 });
  const x = g.input('x', [${n}, 6]);
  const y = g.input('y', [${n}], 'i32');
  const h = x.matmul(W1).add(b1).tanh();
  const loss = g.crossEntropy(h.matmul(W2).add(b2), y);
  return { loss };
});
`;

type State = { step: number; grad_accum?: Record<string, Float32Array>; accum_count?: number } & Record<string, unknown>;
interface Accum {
  initOptState(params: Arrays): State;
  valueAndGrad(params: Arrays, inputs: Arrays): { loss: number; grads: Record<string, Float32Array> };
  trainStep(params: Arrays, state: State, inputs: Arrays, options?: { lr?: number }): { loss: number };
  accumulateGrad(params: Arrays, state: State, inputs: Arrays): { loss: number };
  applyUpdate(params: Arrays, state: State, options?: { lr?: number }): void;
  applyGradients(params: Arrays, state: State, grads: Record<string, Float32Array>, options?: { lr?: number }): void;
}
type Wasm = Accum & { create(o: object): Promise<Accum & { destroy(): Promise<void> }> };

const clone = (ps: Arrays): Record<string, Float32Array> => Object.fromEntries(Object.entries(ps).map(([k, v]) => [k, Float32Array.from(v as Float32Array)]));

/** The flat module, the wasm module, and wasm instances of 1 and 2 threads, built with these flags. */
async function targets(n: number, flags: string[], source = mlp): Promise<{ mods: [string, Accum][]; done: () => Promise<void>; fwd: Awaited<ReturnType<typeof compile>>['fwd'] }> {
  const file = modelFile(source(n), 'mlp.ts');
  const out = path.join(tmp(), 'accum');
  const r = await run(['build', file, '--out', out, '--target', 'ts,wasm', ...flags]);
  expect(r.err).toBe('');
  const flat = (await import(pathToFileURL(path.join(out, 'mlp.js')).href)) as Accum;
  const wasm = (await import(pathToFileURL(path.join(out, 'mlp.wasm.js')).href)) as Wasm;
  const one = await wasm.create({ threads: 1 });
  const two = await wasm.create({ threads: 2, minWork: 0 });
  const { fwd } = await compile(file, { targets: [] });
  return {
    mods: [['flat', flat], ['wasm', wasm], ['wasm 1 thread', one], ['wasm 2 threads', two]],
    done: async () => {
      await one.destroy();
      await two.destroy();
    },
    fwd,
  };
}

const CASES: string[][] = [
  ['--optimizer', 'adam', '--lr', '0.01', '--clip-grad-norm', '0.5'],
  ['--optimizer', 'sgd', '--lr', '0.05', '--momentum', '0.9', '--clip-grad-norm', '0.5'],
  ['--optimizer', 'adamw', '--lr', '0.01', '--weight-decay', '0.05', '--clip-grad-norm', '0.3'],
  ['--optimizer', 'rmsprop', '--momentum', '0.5', '--clip-grad-norm', '0.5'],
  ['--optimizer', 'lion', '--lr', '0.001', '--weight-decay', '0.1'],
];

describe('accumulateGrad and applyUpdate: K batches equal one trainStep on their union', () => {
  for (const flags of CASES) {
    it(flags.slice(1).join(' '), async () => {
      const K = 3;
      const small = await targets(8, flags);
      const union = await targets(8 * K, flags);
      try {
        const { params } = randomArgs(small.fwd, 11);
        // K batches of 8 rows, and their union of 8K rows
        const batches = [...Array(5)].map((_, s) => [...Array(K)].map((_, k) => randomArgs(small.fwd, 100 + 10 * s + k).inputs));
        const joined = batches.map((bs) => ({
          x: Float32Array.from(bs.flatMap((b) => Array.from(b.x as Float32Array))),
          y: Int32Array.from(bs.flatMap((b) => Array.from(b.y as Int32Array))),
        }));
        for (let m = 0; m < small.mods.length; m++) {
          const [name, acc] = small.mods[m]!;
          const one = union.mods[m]![1];
          const pa = clone(params);
          const pb = clone(params);
          const sa = acc.initOptState(pa);
          const sb = one.initOptState(pb);
          for (let s = 0; s < batches.length; s++) {
            const lr = s >= 3 ? { lr: 0.002 } : undefined;
            const losses = batches[s]!.map((b) => acc.accumulateGrad(pa, sa, b).loss);
            expect(sa.accum_count, name).toBe(K);
            acc.applyUpdate(pa, sa, lr);
            expect(sa.accum_count).toBe(0);
            expect(Math.max(...Object.values(sa.grad_accum!).map((a) => Math.max(...a.map(Math.abs))))).toBe(0);
            const { loss } = one.trainStep(pb, sb, joined[s]!, lr);
            expect(losses.reduce((x, y) => x + y) / K, `${name} loss ${s}`).toBeCloseTo(loss, 5);
          }
          expect(sa.step).toBe(5);
          for (const k of Object.keys(pa)) expect(relErr(pa[k]!, pb[k]!), `${name} ${k}`).toBeLessThan(2e-5);
          // the params moved: the comparison is not of two unchanged copies
          expect(relErr(pa.W1!, params.W1 as Float32Array)).toBeGreaterThan(1e-4);
        }
      } finally {
        await small.done();
        await union.done();
      }
    });
  }
});

describe('applyGradients', () => {
  for (const flags of CASES.slice(0, 3)) {
    it(`given valueAndGrad's gradients, it is trainStep (bit-identical): ${flags.slice(1).join(' ')}`, async () => {
      const { mods, done, fwd } = await targets(8, flags);
      try {
        const { params } = randomArgs(fwd, 5);
        for (const [name, mod] of mods) {
          const pa = clone(params);
          const pb = clone(params);
          const sa = mod.initOptState(pa);
          const sb = mod.initOptState(pb);
          for (let s = 0; s < 6; s++) {
            const { inputs } = randomArgs(fwd, 40 + s);
            const lr = s >= 3 ? { lr: 0.003 } : undefined;
            // the gradients as a caller holds them: copies, not the module's arrays
            const grads = clone(mod.valueAndGrad(pa, inputs).grads);
            mod.applyGradients(pa, sa, grads, lr);
            mod.trainStep(pb, sb, inputs, lr);
          }
          expect(sa.step).toBe(6);
          for (const k of Object.keys(pa)) expect(pa[k], `${name} ${k}`).toEqual(pb[k]);
          for (const [slot, v] of Object.entries(sb)) if (typeof v === 'object') for (const k of Object.keys(pa)) expect((sa[slot] as Record<string, Float32Array>)[k], `${name} ${slot}.${k}`).toEqual((v as Record<string, Float32Array>)[k]);
          // the module's own arrays, passed back as they are
          const pc = clone(params);
          const sc = mod.initOptState(pc);
          mod.applyGradients(pc, sc, mod.valueAndGrad(pc, randomArgs(fwd, 40).inputs).grads);
          const pd = clone(params);
          mod.trainStep(pd, mod.initOptState(pd), randomArgs(fwd, 40).inputs);
          for (const k of Object.keys(pc)) expect(pc[k], `${name} own arrays ${k}`).toEqual(pd[k]);
        }
      } finally {
        await done();
      }
    });
  }

  it('clips the gradients it is given as trainStep does', async () => {
    const { mods, done, fwd } = await targets(8, ['--optimizer', 'sgd', '--lr', '1', '--clip-grad-norm', '0.5']);
    try {
      const { params } = randomArgs(fwd, 5);
      for (const [name, mod] of mods) {
        const p = clone(params);
        // a gradient of norm 10 (every element of W1's 96 the same): clipped to 0.5, so each step is 0.5/√96
        const grads = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, new Float32Array(v.length)]));
        grads.W1!.fill(10 / Math.sqrt(96));
        mod.applyGradients(p, mod.initOptState(p), grads);
        const moved = p.W1!.map((v, i) => (params.W1 as Float32Array)[i]! - v);
        for (const d of moved) expect(d, name).toBeCloseTo(0.5 / Math.sqrt(96), 5);
        expect(p.b1, name).toEqual(params.b1);
      }
    } finally {
      await done();
    }
  });
});

describe('accumulation and applyGradients: errors', () => {
  it('names what is wrong', async () => {
    const { mods, done, fwd } = await targets(8, ['--optimizer', 'adam']);
    try {
      const { params, inputs } = randomArgs(fwd, 5);
      for (const [name, mod] of mods) {
        const p = clone(params);
        const state = mod.initOptState(p);
        expect(() => mod.applyUpdate(p, state), name).toThrow(
          new Error('mlp: applyUpdate has no accumulated gradient to apply (state.accum_count is 0): call accumulateGrad(params, state, inputs) for each batch first'),
        );
        const grads = clone(mod.valueAndGrad(p, inputs).grads);
        expect(() => mod.applyGradients(p, state, { ...grads, W1: new Float32Array(5) })).toThrow(new RangeError("mlp: gradient 'W1' must have 96 elements (f32[6,16]), got 5"));
        expect(() => mod.applyGradients(p, state, { ...grads, b2: new Float64Array(5) as unknown as Float32Array })).toThrow(
          new TypeError("mlp: gradient 'b2' must be Float32Array (f32[5]), got Float64Array"),
        );
        const { b1: _, ...noB1 } = grads;
        expect(() => mod.applyGradients(p, state, noB1)).toThrow(new TypeError("mlp: missing gradient 'b1' (f32[16])"));
        expect(() => mod.applyGradients(p, state, null as unknown as Record<string, Float32Array>)).toThrow(
          new TypeError('mlp: grads must be an object with a Float32Array per param (as valueAndGrad returns)'),
        );
        expect(() => mod.applyGradients(p, state, grads, { lr: -1 })).toThrow(new RangeError('mlp: lr, the learning rate, must be ≥ 0, got -1'));
        expect(() => mod.applyGradients({ ...p, W2: new Float32Array(3) }, state, grads)).toThrow(new RangeError("mlp: param 'W2' must have 80 elements (f32[16,5]), got 3"));
        // nothing moved by a refused call
        expect(state.step, name).toBe(0);
        expect(p).toEqual(clone(params));
        mod.accumulateGrad(p, state, inputs);
        expect(() => mod.applyUpdate(p, { ...state, grad_accum: { ...state.grad_accum!, W2: new Float32Array(2) } })).toThrow(
          new RangeError("mlp: optimizer state 'grad_accum.W2' must have 80 elements (f32[16,5]), got 2"),
        );
        expect(() => mod.applyUpdate(p, { ...state, accum_count: 1.5 })).toThrow(new TypeError('mlp: state.accum_count must be a non-negative integer, got 1.5'));
        expect(state.accum_count).toBe(1);
        mod.applyUpdate(p, state);
        expect(state.step).toBe(1);
        expect(() => mod.applyUpdate(p, state)).toThrow(/applyUpdate has no accumulated gradient/);
      }
    } finally {
      await done();
    }
  });
});

interface GpuAccum {
  initOptState(params: Arrays): State;
  valueAndGrad(params: Arrays, inputs: Arrays): Promise<{ loss: number; grads: Record<string, Float32Array> }>;
  trainStep(params: Arrays, state: State, inputs: Arrays, options?: { lr?: number }): Promise<{ loss: number }>;
  accumulateGrad(params: Arrays, state: State, inputs: Arrays): Promise<{ loss: number }>;
  applyUpdate(params: Arrays, state: State, options?: { lr?: number }): Promise<void>;
  applyGradients(params: Arrays, state: State, grads: Record<string, Float32Array>, options?: { lr?: number }): Promise<void>;
  readParams(): Promise<Record<string, Float32Array>>;
  readOptState(): Promise<State>;
  destroy(): void;
}

/** The GPU.js module in gpu.js's cpu mode. */
async function gpuTarget(n: number, flags: string[], source = mlp): Promise<{ gpu: GpuAccum; fwd: Awaited<ReturnType<typeof compile>>['fwd'] }> {
  const file = modelFile(source(n), 'mlp.ts');
  const out = path.join(tmp(), 'accumgpu');
  const r = await run(['build', file, '--out', out, '--target', 'gpu', ...flags]);
  expect(r.err).toBe('');
  const mod = (await import(pathToFileURL(path.join(out, 'mlp.gpu.js')).href)) as { create(o: object): Promise<GpuAccum> };
  return { gpu: await mod.create({ mode: 'cpu' }), fwd: (await compile(file, { targets: [] })).fwd };
}

describe('the GPU.js module (cpu mode): accumulateGrad, applyUpdate, applyGradients', () => {
  for (const flags of CASES.slice(0, 3)) {
    it(flags.slice(1).join(' '), async () => {
      const K = 2;
      const small = await gpuTarget(8, flags);
      const union = await gpuTarget(8 * K, flags);
      try {
        const { params } = randomArgs(small.fwd, 11);
        const pa = clone(params);
        const pb = clone(params);
        const sa = small.gpu.initOptState(pa);
        const sb = union.gpu.initOptState(pb);
        for (let s = 0; s < 4; s++) {
          const bs = [...Array(K)].map((_, k) => randomArgs(small.fwd, 200 + 10 * s + k).inputs);
          const joined = { x: Float32Array.from(bs.flatMap((b) => Array.from(b.x as Float32Array))), y: Int32Array.from(bs.flatMap((b) => Array.from(b.y as Int32Array))) };
          let sum = 0;
          for (const b of bs) sum += (await small.gpu.accumulateGrad(pa, sa, b)).loss;
          expect(sa.accum_count).toBe(K);
          await small.gpu.applyUpdate(pa, sa, { lr: 0.004 });
          expect(sa.accum_count).toBe(0);
          const { loss } = await union.gpu.trainStep(pb, sb, joined, { lr: 0.004 });
          expect(sum / K).toBeCloseTo(loss, 5);
        }
        for (const k of Object.keys(pa)) expect(relErr(pa[k]!, pb[k]!), k).toBeLessThan(2e-5);
        expect(relErr(pa.W1!, params.W1 as Float32Array)).toBeGreaterThan(1e-4);
        // readParams and readOptState read what the last update left
        expect(await small.gpu.readParams()).toEqual(pa);
        expect((await small.gpu.readOptState()).step).toBe(4);
        // applyGradients with the module's own gradients is trainStep, bit for bit
        const pc = clone(params);
        const pd = clone(params);
        const sc = small.gpu.initOptState(pc);
        const sd = small.gpu.initOptState(pd);
        for (let s = 0; s < 4; s++) {
          const { inputs } = randomArgs(small.fwd, 300 + s);
          await small.gpu.applyGradients(pc, sc, (await small.gpu.valueAndGrad(pc, inputs)).grads);
          await small.gpu.trainStep(pd, sd, inputs);
        }
        for (const k of Object.keys(pc)) expect(pc[k], k).toEqual(pd[k]);
        expect(sc.step).toBe(4);
        await expect(small.gpu.applyUpdate(pc, sc)).rejects.toThrow(
          new Error('mlp: applyUpdate has no accumulated gradient to apply (state.accum_count is 0): call accumulateGrad(params, state, inputs) for each batch first'),
        );
        await expect(small.gpu.applyGradients(pc, sc, { ...clone(params), b1: new Float32Array(2) })).rejects.toThrow(new RangeError("mlp: gradient 'b1' must have 16 elements (f32[16]), got 2"));
      } finally {
        small.gpu.destroy();
        union.gpu.destroy();
      }
    });
  }
});

/**
 * test/optim-reference.ts's GROUPS_MODEL with a batch of `n` rows: four param groups (lrScale 0.5
 * and 2, weight decays of their own) and a frozen param b2.
 */
const groupsModel = (n: number) => `import { model } from 'graphc';
export default model('mlp', (g) => {
  const W1 = g.param('W1', [6, 16], { scale: 0.4 });
  const b1 = g.param('b1', [16], { scale: 0.1, lrScale: 0.5 });
  const gain = g.param('gain', [16], { init: 'ones', weightDecay: 0.02 });
  const W2 = g.param('W2', [16, 5], { scale: 0.4, weightDecay: 0.05, lrScale: 2 });
  const b2 = g.param('b2', [5], { scale: 0.1, trainable: false });
  const x = g.input('x', [${n}, 6]);
  const y = g.input('y', [${n}], 'i32');
  const h = x.matmul(W1).add(b1).tanh().mul(gain);
  const loss = g.crossEntropy(h.matmul(W2).add(b2), y);
  return { loss };
});
`;

const GROUP_CASES: string[][] = [
  ['--optimizer', 'adamw', '--lr', '0.01', '--weight-decay', '0.1', '--clip-grad-norm', '0.5', '--schedule', 'cosine', '--warmup', '2', '--total-steps', '6', '--min-lr', '0.001'],
  ['--optimizer', 'sgd', '--lr', '0.05', '--momentum', '0.9', '--weight-decay', '0.01', '--no-decay-1d', '--schedule', 'step', '--step-size', '2', '--gamma', '0.5', '--warmup', '1'],
];
const TRAINED = ['W1', 'W2', 'b1', 'gain'];

describe('param groups, a frozen param and a schedule: accumulateGrad, applyUpdate, applyGradients', () => {
  for (const flags of GROUP_CASES) {
    it(`K batches equal one trainStep on their union, applyGradients equals trainStep: ${flags.slice(1).join(' ')}`, async () => {
      const K = 3;
      const small = await targets(8, flags, groupsModel);
      const union = await targets(8 * K, flags, groupsModel);
      try {
        const { params } = randomArgs(small.fwd, 11);
        const batches = [...Array(5)].map((_, s) => [...Array(K)].map((_, k) => randomArgs(small.fwd, 100 + 10 * s + k).inputs));
        const joined = batches.map((bs) => ({
          x: Float32Array.from(bs.flatMap((b) => Array.from(b.x as Float32Array))),
          y: Int32Array.from(bs.flatMap((b) => Array.from(b.y as Int32Array))),
        }));
        for (let m = 0; m < small.mods.length; m++) {
          const [name, acc] = small.mods[m]!;
          const one = union.mods[m]![1];
          const pa = clone(params);
          const pb = clone(params);
          const sa = acc.initOptState(pa);
          const sb = one.initOptState(pb);
          for (let s = 0; s < batches.length; s++) {
            for (const b of batches[s]!) acc.accumulateGrad(pa, sa, b);
            // the frozen param has no gradient, so no accumulator
            expect(Object.keys(sa.grad_accum!).sort(), name).toEqual(TRAINED);
            // options.lr given on one step: it replaces the scheduled rate there too
            const lr = s === 3 ? { lr: 0.002 } : undefined;
            acc.applyUpdate(pa, sa, lr);
            one.trainStep(pb, sb, joined[s]!, lr);
          }
          expect(sa.step).toBe(5);
          for (const k of Object.keys(pa)) expect(relErr(pa[k]!, pb[k]!), `${name} ${k}`).toBeLessThan(2e-5);
          expect(pa.b2, `${name} frozen b2`).toEqual(params.b2);
          for (const k of TRAINED) expect(relErr(pa[k]!, params[k] as Float32Array), `${name} ${k} moved`).toBeGreaterThan(1e-4);

          // applyGradients with valueAndGrad's gradients (no b2 among them) is trainStep, bit for bit
          const pc = clone(params);
          const pd = clone(params);
          const sc = acc.initOptState(pc);
          const sd = acc.initOptState(pd);
          for (let s = 0; s < 5; s++) {
            const { inputs } = randomArgs(small.fwd, 40 + s);
            const grads = clone(acc.valueAndGrad(pc, inputs).grads);
            expect(Object.keys(grads).sort(), name).toEqual(TRAINED);
            acc.applyGradients(pc, sc, grads, s === 3 ? { lr: 0.002 } : undefined);
            acc.trainStep(pd, sd, inputs, s === 3 ? { lr: 0.002 } : undefined);
          }
          for (const k of Object.keys(pc)) expect(pc[k], `${name} applyGradients ${k}`).toEqual(pd[k]);
          for (const [slot, v] of Object.entries(sd))
            if (typeof v === 'object' && slot !== 'grad_accum') {
              expect(Object.keys(v as object).sort()).toEqual(TRAINED);
              for (const k of TRAINED) expect((sc[slot] as Record<string, Float32Array>)[k], `${name} ${slot}.${k}`).toEqual((v as Record<string, Float32Array>)[k]);
            }
        }
      } finally {
        await small.done();
        await union.done();
      }
    });
  }

  it('the accumulated step is the groups\' one: ignoring lrScale, the weight decays or the schedule gives other params', async () => {
    // the same steps built without the groups' options and without the schedule end elsewhere
    const flags = GROUP_CASES[0]!;
    const grouped = await targets(8, flags, groupsModel);
    const plain = await targets(8, flags.slice(0, flags.indexOf('--schedule')), (n) => groupsModel(n).replace(/, lrScale: [\d.]+|, weightDecay: [\d.]+/g, ''));
    try {
      const { params } = randomArgs(grouped.fwd, 11);
      const run = (mod: Accum) => {
        const p = clone(params);
        const st = mod.initOptState(p);
        for (let s = 0; s < 4; s++) {
          mod.accumulateGrad(p, st, randomArgs(grouped.fwd, 60 + s).inputs);
          mod.applyUpdate(p, st);
        }
        return p;
      };
      const a = run(grouped.mods[0]![1]);
      const b = run(plain.mods[0]![1]);
      for (const k of TRAINED) expect(relErr(a[k]!, b[k]!), k).toBeGreaterThan(1e-4);
    } finally {
      await grouped.done();
      await plain.done();
    }
  });

  it('the GPU.js module (cpu mode)', async () => {
    const flags = GROUP_CASES[0]!;
    const K = 2;
    const small = await gpuTarget(8, flags, groupsModel);
    const union = await gpuTarget(8 * K, flags, groupsModel);
    try {
      const { params } = randomArgs(small.fwd, 11);
      const pa = clone(params);
      const pb = clone(params);
      const sa = small.gpu.initOptState(pa);
      const sb = union.gpu.initOptState(pb);
      for (let s = 0; s < 4; s++) {
        const bs = [...Array(K)].map((_, k) => randomArgs(small.fwd, 200 + 10 * s + k).inputs);
        const joined = { x: Float32Array.from(bs.flatMap((b) => Array.from(b.x as Float32Array))), y: Int32Array.from(bs.flatMap((b) => Array.from(b.y as Int32Array))) };
        for (const b of bs) await small.gpu.accumulateGrad(pa, sa, b);
        expect(Object.keys(sa.grad_accum!).sort()).toEqual(TRAINED);
        await small.gpu.applyUpdate(pa, sa);
        await union.gpu.trainStep(pb, sb, joined);
      }
      for (const k of Object.keys(pa)) expect(relErr(pa[k]!, pb[k]!), k).toBeLessThan(2e-5);
      expect(pa.b2).toEqual(params.b2);
      expect(relErr(pa.W2!, params.W2 as Float32Array)).toBeGreaterThan(1e-4);
      const pc = clone(params);
      const pd = clone(params);
      const sc = small.gpu.initOptState(pc);
      const sd = small.gpu.initOptState(pd);
      for (let s = 0; s < 4; s++) {
        const { inputs } = randomArgs(small.fwd, 300 + s);
        const { grads } = await small.gpu.valueAndGrad(pc, inputs);
        expect(Object.keys(grads).sort()).toEqual(TRAINED);
        await small.gpu.applyGradients(pc, sc, grads);
        await small.gpu.trainStep(pd, sd, inputs);
      }
      for (const k of Object.keys(pc)) expect(pc[k], k).toEqual(pd[k]);
      expect(sc.step).toBe(4);
    } finally {
      small.gpu.destroy();
      union.gpu.destroy();
    }
  });
});
