// The compiled training step (--optimizer): 100 steps of each optimizer and its options in the
// flat, wasm and threaded wasm modules against the same updates computed in float64 from the
// interpreter's gradients (test/optim-reference.ts: torch.optim's documented algorithms, not the
// emitter's transform table).

import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { OptimizerName } from '../codegen/optim.js';
import { compile } from '../src/build.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { modelFile, randomArgs, reference, relErr, run, tmp } from './helpers.js';
import type { RefState } from './optim-reference.js';
import { refHyper, torchStep } from './optim-reference.js';

// a small smooth classifier: every gradient stays well away from zero, so float32 and float64
// runs stay close over 100 steps
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

interface Trainer extends GeneratedModule {
  hyper: Record<string, unknown>;
  initOptState(params: Arrays): { step: number } & Record<string, unknown>;
  trainStep(params: Arrays, state: object, inputs: Arrays, options?: { lr?: number }): { loss: number };
  create?(o: object): Promise<Trainer & { destroy(): Promise<void> }>;
}

/** Each case: the flags, and the `hyper` the module must export (torch.optim's defaults where not given). */
const CASES: { name: OptimizerName; flags: string[]; hyper: Record<string, number | boolean> }[] = [
  { name: 'sgd', flags: ['--lr', '0.1'], hyper: { lr: 0.1, momentum: 0, nesterov: false, weightDecay: 0 } },
  { name: 'sgd', flags: ['--lr', '0.05', '--momentum', '0.9', '--weight-decay', '0.01'], hyper: { lr: 0.05, momentum: 0.9, nesterov: false, weightDecay: 0.01 } },
  { name: 'sgd', flags: ['--lr', '0.05', '--momentum', '0.8', '--nesterov', '--clip-grad-norm', '0.5'], hyper: { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0, clipGradNorm: 0.5 } },
  { name: 'adam', flags: ['--lr', '0.01'], hyper: { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } },
  { name: 'adam', flags: ['--lr', '0.01', '--weight-decay', '0.05', '--beta1', '0.8', '--eps', '1e-6'], hyper: { lr: 0.01, beta1: 0.8, beta2: 0.999, eps: 1e-6, weightDecay: 0.05 } },
  { name: 'adam', flags: ['--lr', '0.01', '--amsgrad', '--weight-decay', '0.02', '--clip-grad-norm', '0.5'], hyper: { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.02, amsgrad: true, clipGradNorm: 0.5 } },
  { name: 'adamw', flags: ['--lr', '0.01', '--clip-grad-norm', '1'], hyper: { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, clipGradNorm: 1 } },
  { name: 'adamw', flags: ['--lr', '0.01', '--amsgrad', '--beta2', '0.99'], hyper: { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01, amsgrad: true } },
  { name: 'rmsprop', flags: [], hyper: { lr: 0.01, alpha: 0.99, momentum: 0, eps: 1e-8, centered: false, weightDecay: 0 } },
  { name: 'rmsprop', flags: ['--lr', '0.005', '--momentum', '0.9', '--weight-decay', '0.01', '--alpha', '0.9'], hyper: { lr: 0.005, alpha: 0.9, momentum: 0.9, eps: 1e-8, centered: false, weightDecay: 0.01 } },
  { name: 'rmsprop', flags: ['--centered', '--momentum', '0.5', '--clip-grad-norm', '0.5', '--eps', '1e-6'], hyper: { lr: 0.01, alpha: 0.99, momentum: 0.5, eps: 1e-6, centered: true, weightDecay: 0, clipGradNorm: 0.5 } },
  { name: 'adagrad', flags: ['--lr', '0.05'], hyper: { lr: 0.05, lrDecay: 0, eps: 1e-10, weightDecay: 0 } },
  { name: 'adagrad', flags: ['--weight-decay', '0.01', '--clip-grad-norm', '0.5'], hyper: { lr: 0.01, lrDecay: 0, eps: 1e-10, weightDecay: 0.01, clipGradNorm: 0.5 } },
  { name: 'adagrad', flags: ['--lr', '0.05', '--lr-decay', '0.02', '--eps', '1e-8'], hyper: { lr: 0.05, lrDecay: 0.02, eps: 1e-8, weightDecay: 0 } },
  { name: 'lion', flags: ['--lr', '0.001'], hyper: { lr: 0.001, beta1: 0.9, beta2: 0.99, weightDecay: 0 } },
  { name: 'lion', flags: ['--lr', '0.001', '--weight-decay', '0.1', '--beta1', '0.95', '--clip-grad-norm', '0.5'], hyper: { lr: 0.001, beta1: 0.95, beta2: 0.99, weightDecay: 0.1, clipGradNorm: 0.5 } },
];

describe('trainStep: 100 steps against torch.optim in float64 (flat, wasm, threaded wasm)', () => {
  const file = modelFile(MODEL, 'mlp.ts');
  for (const c of CASES) {
    it(`${c.name} ${c.flags.join(' ')}`, async () => {
      const out = path.join(tmp(), 'train');
      const r = await run(['build', file, '--out', out, '--target', 'ts,wasm', '--optimizer', c.name, ...c.flags]);
      expect(r.err).toBe('');
      const h = refHyper(c.hyper);
      const compiled = await compile(file, { targets: [] });
      const { params, inputs } = randomArgs(compiled.fwd, 7);
      // the reference: float64 params, gradients from the float64 interpreter
      const p64: Record<string, Float64Array> = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float64Array.from(v)]));
      const state64: RefState = {};
      for (let t = 1; t <= 100; t++) {
        const lr = t > 50 ? h.lr / 2 : h.lr; // a schedule through options.lr
        const { grads } = reference(compiled.fwd, compiled.bwd, p64 as unknown as Arrays, inputs);
        torchStep(c.name, h, lr, t, p64, grads, state64);
      }
      const flat = (await import(pathToFileURL(path.join(out, 'mlp.js')).href)) as Trainer;
      const wasm = (await import(pathToFileURL(path.join(out, 'mlp.wasm.js')).href)) as Trainer;
      const threaded = await wasm.create!({ threads: 2, minWork: 0 });
      try {
        for (const [target, mod] of [['flat', flat], ['wasm', wasm], ['threaded', threaded]] as const) {
          expect(mod.hyper ?? wasm.hyper).toEqual(c.hyper);
          const p = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float32Array.from(v)]));
          const W1 = p.W1;
          const state = mod.initOptState(p);
          const first = mod.trainStep(p, state, inputs).loss;
          for (let t = 2; t <= 100; t++) mod.trainStep(p, state, inputs, t > 50 ? { lr: h.lr / 2 } : undefined);
          expect(p.W1, 'in place').toBe(W1);
          expect(state.step).toBe(100);
          expect(first).toBeCloseTo(reference(compiled.fwd, compiled.bwd, params, inputs).outputs.loss!.data[0]!, 5);
          for (const k of Object.keys(p64)) expect(relErr(p[k]!, p64[k]!), `${target} ${k}`).toBeLessThan(2e-5);
        }
      } finally {
        await threaded.destroy();
      }
    });
  }
});

describe('trainStep: arguments and state', () => {
  it('lion: a NaN gradient reaches the params on every target (sign(NaN) is NaN, as torch.sign)', async () => {
    const file = modelFile(MODEL, 'mlp.ts');
    const out = path.join(tmp(), 'train');
    expect((await run(['build', file, '--out', out, '--target', 'ts,wasm', '--optimizer', 'lion'])).code).toBe(0);
    const compiled = await compile(file, { targets: [] });
    for (const target of ['', '.wasm']) {
      const mod = (await import(pathToFileURL(path.join(out, `mlp${target}.js`)).href)) as Trainer;
      const { params, inputs } = randomArgs(compiled.fwd, 3);
      const x = Float32Array.from(inputs.x as Float32Array);
      x[0] = NaN;
      const p = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float32Array.from(v)]));
      const { loss } = mod.trainStep(p, mod.initOptState(p), { ...inputs, x });
      expect(loss, target).toBeNaN();
      expect(Array.from(p.W1!).every(Number.isNaN), `${target || 'flat'}: W1 all NaN`).toBe(true);
    }
  });

  it('checks the learning rate and the state, and copies a state of the caller into the wasm memory and back', async () => {
    const file = modelFile(MODEL, 'mlp.ts');
    const out = path.join(tmp(), 'train');
    expect((await run(['build', file, '--out', out, '--target', 'ts,wasm', '--optimizer', 'adam'])).code).toBe(0);
    const compiled = await compile(file, { targets: [] });
    for (const target of ['', '.wasm']) {
      const mod = (await import(pathToFileURL(path.join(out, `mlp${target}.js`)).href)) as Trainer;
      const { params, inputs } = randomArgs(compiled.fwd, 3);
      const state = mod.initOptState(params) as { step: number; exp_avg: Record<string, Float32Array>; exp_avg_sq: Record<string, Float32Array> };
      expect(() => mod.trainStep(params, state, inputs, { lr: NaN })).toThrow(new TypeError('mlp: the learning rate must be a finite number, got NaN'));
      expect(() => mod.trainStep(params, { ...state, step: -1 }, inputs)).toThrow(new TypeError('mlp: state.step must be a non-negative integer, got -1'));
      expect(() => mod.trainStep(params, { step: 0 }, inputs)).toThrow(new TypeError('mlp: state.exp_avg is missing: make the state with initOptState(params)'));
      expect(() => mod.trainStep(params, { ...state, exp_avg: { ...state.exp_avg, b1: new Float32Array(3) } }, inputs)).toThrow(
        new RangeError("mlp: optimizer state 'exp_avg.b1' must have 16 elements (f32[16]), got 3"),
      );
      // two steps with the module's state, against two steps with a state of the caller's own
      const a = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float32Array.from(v)]));
      const b = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float32Array.from(v)]));
      const own = { step: 0, exp_avg: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, new Float32Array(v.length)])), exp_avg_sq: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, new Float32Array(v.length)])) };
      const s = mod.initOptState(a);
      mod.trainStep(a, s, inputs);
      mod.trainStep(b, own, inputs);
      mod.trainStep(a, s, inputs);
      mod.trainStep(b, own, inputs);
      for (const k of Object.keys(a)) expect(b[k], k).toEqual(a[k]);
      expect(own.exp_avg.W1).toEqual((s as typeof own).exp_avg.W1);
      expect(own.step).toBe(2);
    }
  });

  it('initOptState gives fresh, independent states whose arrays are the state (flat, wasm, a threaded wasm instance)', async () => {
    const file = modelFile(MODEL, 'mlp.ts');
    const out = path.join(tmp(), 'states');
    expect((await run(['build', file, '--out', out, '--target', 'ts,wasm', '--optimizer', 'adam'])).code).toBe(0);
    const compiled = await compile(file, { targets: [] });
    const clone = (ps: Arrays) => Object.fromEntries(Object.entries(ps).map(([k, v]) => [k, Float32Array.from(v as Float32Array)]));
    type State = { step: number; exp_avg: Record<string, Float32Array>; exp_avg_sq: Record<string, Float32Array> };
    /** Two models trained alternately, then a state's array replaced and another written in place. */
    const scenario = (mod: Trainer) => {
      const A = clone(randomArgs(compiled.fwd, 3).params);
      const B = clone(randomArgs(compiled.fwd, 4).params);
      const { inputs } = randomArgs(compiled.fwd, 5);
      const sA = mod.initOptState(A) as unknown as State;
      const sB = mod.initOptState(B) as unknown as State;
      expect(sA).not.toBe(sB);
      expect(sA.exp_avg.W1).not.toBe(sB.exp_avg.W1);
      const losses: number[] = [];
      for (let t = 0; t < 5; t++) {
        losses.push(mod.trainStep(A, sA, inputs).loss);
        losses.push(mod.trainStep(B, sB, inputs).loss);
      }
      expect(sA.step).toBe(5);
      // a later state starts from zeros and leaves the others as they are
      const before = Float32Array.from(sA.exp_avg.W2!);
      const sC = mod.initOptState(A) as unknown as State;
      expect(sC.step).toBe(0);
      expect(Math.max(...sC.exp_avg.W2!.map(Math.abs))).toBe(0);
      expect(sA.exp_avg.W2).toEqual(before);
      // the arrays are the state: one replaced (a loaded checkpoint), one written in place
      sA.exp_avg.W1 = Float32Array.from(sB.exp_avg.W1);
      sA.exp_avg_sq.W2.set(sB.exp_avg_sq.W2);
      const W1 = sA.exp_avg.W1;
      losses.push(mod.trainStep(A, sA, inputs).loss);
      expect(sA.exp_avg.W1).toBe(W1);
      return { A, B, sA, losses };
    };
    const flat = scenario((await import(pathToFileURL(path.join(out, 'mlp.js')).href)) as Trainer);
    const wasm = (await import(pathToFileURL(path.join(out, 'mlp.wasm.js')).href)) as Trainer & { create(o: object): Promise<Trainer & { destroy(): Promise<void> }> };
    const threaded = await wasm.create({ threads: 2, minWork: 0 });
    try {
      for (const [name, r] of [['wasm', scenario(wasm)], ['threaded', scenario(threaded)]] as const) {
        expect(relErr(r.losses, flat.losses), `${name} losses`).toBeLessThan(1e-5);
        for (const k of Object.keys(flat.A)) {
          expect(relErr(r.A[k]!, flat.A[k]!), `${name} A.${k}`).toBeLessThan(1e-5);
          expect(relErr(r.B[k]!, flat.B[k]!), `${name} B.${k}`).toBeLessThan(1e-5);
          expect(relErr(r.sA.exp_avg[k]!, flat.sA.exp_avg[k]!), `${name} exp_avg.${k}`).toBeLessThan(1e-5);
          expect(relErr(r.sA.exp_avg_sq[k]!, flat.sA.exp_avg_sq[k]!), `${name} exp_avg_sq.${k}`).toBeLessThan(1e-5);
        }
      }
    } finally {
      await threaded.destroy();
    }
  });

  it('rejects options that do not fit the optimizer', async () => {
    const file = modelFile(MODEL, 'mlp.ts');
    const out = path.join(tmp(), 'bad');
    const err = async (...flags: string[]) => (await run(['build', file, '--out', out, ...flags])).err;
    expect(await err('--optimizer', 'nadam')).toBe("graphc build: unknown optimizer 'nadam' (known: sgd, adam, adamw, rmsprop, adagrad, lion)\n");
    expect(await err('--lr', '0.1')).toBe('graphc build: --lr needs --optimizer\n');
    expect(await err('--optimizer', 'adam', '--momentum', '0.9')).toBe('graphc build: --momentum is an option of sgd and rmsprop, not adam\n');
    expect(await err('--optimizer', 'sgd', '--beta1', '0.9')).toBe('graphc build: --beta1 is an option of adam, adamw and lion, not sgd\n');
    expect(await err('--optimizer', 'sgd', '--amsgrad')).toBe('graphc build: --amsgrad is an option of adam and adamw, not sgd\n');
    expect(await err('--optimizer', 'adam', '--centered')).toBe('graphc build: --centered is an option of rmsprop, not adam\n');
    expect(await err('--optimizer', 'rmsprop', '--nesterov', '--momentum', '0.9')).toBe('graphc build: --nesterov is an option of sgd, not rmsprop\n');
    expect(await err('--optimizer', 'lion', '--eps', '1e-8')).toBe('graphc build: --eps is an option of adam, adamw, rmsprop and adagrad, not lion\n');
    expect(await err('--optimizer', 'rmsprop', '--alpha', '1')).toBe("graphc build: --alpha must be a number in [0, 1), got '1'\n");
    expect(await err('--optimizer', 'adam', '--lr-decay', '0.1')).toBe('graphc build: --lr-decay is an option of adagrad, not adam\n');
    expect(await err('--optimizer', 'adagrad', '--lr-decay', '-1')).toBe("graphc build: --lr-decay must be a number ≥ 0, got '-1'\n");
    expect(await err('--amsgrad')).toBe('graphc build: --amsgrad needs --optimizer\n');
    expect(await err('--optimizer', 'sgd', '--nesterov')).toBe('graphc build: --nesterov needs a --momentum above 0 (as torch.optim.SGD)\n');
    expect(await err('--optimizer', 'adam', '--lr', '-1')).toBe("graphc build: --lr must be a number above 0, got '-1'\n");
    expect(await err('--optimizer', 'adam', '--beta2', '1')).toBe("graphc build: --beta2 must be a number in [0, 1), got '1'\n");
  });
});
