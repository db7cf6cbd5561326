// Param groups and schedules in the compiled training step: g.param's trainable, weightDecay and
// lrScale, --no-decay-1d and every --schedule, 100 steps of every optimizer in the flat, wasm and
// threaded wasm modules against the float64 reference (test/optim-reference.ts: torch.optim's
// algorithms with torch's param groups, the schedules written from their formulas, not from the
// emitter's table). The GPU.js module: test/gpu-train.test.ts.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { OptimizerName } from '../codegen/optim.js';
import { parseGraph } from '../ir/parse.js';
import { compile } from '../src/build.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { modelFile, randomArgs, reference, relErr, run, tmp } from './helpers.js';
import type { RefSchedule, RefState } from './optim-reference.js';
import { GROUPS_MODEL, refGroups, refHyper, refLr, torchStepGroups } from './optim-reference.js';

const SCHEDULES: { flags: string[]; hyper: RefSchedule }[] = [
  { flags: ['--schedule', 'cosine', '--warmup', '10', '--total-steps', '80', '--min-lr', '0.0005'], hyper: { schedule: 'cosine', warmup: 10, totalSteps: 80, minLr: 0.0005 } },
  { flags: ['--schedule', 'linear', '--warmup', '5', '--total-steps', '90'], hyper: { schedule: 'linear', warmup: 5, totalSteps: 90, minLr: 0 } },
  { flags: ['--schedule', 'step', '--step-size', '30', '--gamma', '0.5', '--warmup', '4'], hyper: { schedule: 'step', warmup: 4, stepSize: 30, gamma: 0.5 } },
  { flags: ['--schedule', 'constant', '--warmup', '20'], hyper: { schedule: 'constant', warmup: 20 } },
];

const OPTIMIZERS: { name: OptimizerName; flags: string[] }[] = [
  { name: 'sgd', flags: ['--lr', '0.05', '--momentum', '0.9', '--weight-decay', '0.01'] },
  { name: 'adam', flags: ['--lr', '0.01', '--weight-decay', '0.03'] },
  { name: 'adamw', flags: ['--lr', '0.01', '--weight-decay', '0.1', '--clip-grad-norm', '0.5'] },
  { name: 'rmsprop', flags: ['--lr', '0.005', '--weight-decay', '0.01', '--momentum', '0.5'] },
  { name: 'adagrad', flags: ['--lr', '0.05', '--weight-decay', '0.01', '--lr-decay', '0.01'] },
  { name: 'lion', flags: ['--lr', '0.001', '--weight-decay', '0.3', '--clip-grad-norm', '0.5'] },
];

interface Trainer extends GeneratedModule {
  hyper: Record<string, unknown>;
  learningRate?(step: number): number;
  initOptState(params: Arrays): { step: number } & Record<string, unknown>;
  trainStep(params: Arrays, state: object, inputs: Arrays, options?: { lr?: number }): { loss: number };
  create?(o: object): Promise<Trainer & { destroy(): Promise<void> }>;
}

/** Steps 61 to 63 pass options.lr (lr times this): it replaces the scheduled rate for that call. */
const given = (t: number): number | undefined => (t > 60 && t <= 63 ? 0.01 * (t - 55) : undefined);

describe('param groups, --no-decay-1d and schedules: 100 steps against torch.optim in float64 (flat, wasm, threaded wasm)', () => {
  const file = modelFile(GROUPS_MODEL, 'groups.ts');
  // every optimizer with every schedule, the groups' model, --no-decay-1d on every other case
  const cases = OPTIMIZERS.flatMap((o, i) => SCHEDULES.map((s, j) => ({ ...o, schedule: s, noDecay1d: (i + j) % 2 === 0 })));
  for (const c of cases) {
    const flags = [...c.flags, ...c.schedule.flags, ...(c.noDecay1d ? ['--no-decay-1d'] : [])];
    it(`${c.name} ${flags.join(' ')}`, async () => {
      const out = path.join(tmp(), 'groups');
      const r = await run(['build', file, '--out', out, '--target', 'ts,wasm', '--optimizer', c.name, ...flags]);
      expect(r.err).toBe('');
      const flat = (await import(pathToFileURL(path.join(out, 'groups.js')).href)) as Trainer;
      const wasm = (await import(pathToFileURL(path.join(out, 'groups.wasm.js')).href)) as Trainer;
      // hyper shows the schedule's settings (and --no-decay-1d)
      expect(flat.hyper).toMatchObject({ ...c.schedule.hyper, ...(c.noDecay1d ? { noDecay1d: true } : {}) });
      expect('noDecay1d' in flat.hyper).toBe(c.noDecay1d);
      expect(wasm.hyper).toEqual(flat.hyper);
      const h = refHyper(Object.fromEntries(Object.entries(flat.hyper).filter(([, v]) => typeof v !== 'string')) as Record<string, number | boolean>);
      for (const k of [0, 3, 9, 10, 11, 45, 79, 80, 81, 150]) expect(flat.learningRate!(k), `learningRate(${k})`).toBeCloseTo(refLr(c.schedule.hyper, h.lr, k), 12);
      const compiled = await compile(file, { targets: [] });
      const { params, inputs } = randomArgs(compiled.fwd, 7);
      const groups = refGroups(h.weightDecay, c.noDecay1d);
      const p64: Record<string, Float64Array> = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float64Array.from(v)]));
      const state64: RefState = {};
      for (let t = 1; t <= 100; t++) {
        const { grads } = reference(compiled.fwd, compiled.bwd, p64 as unknown as Arrays, inputs);
        expect(Object.keys(grads).sort()).toEqual(['W1', 'W2', 'b1', 'gain']);
        torchStepGroups(c.name, h, given(t) !== undefined ? given(t)! * h.lr : refLr(c.schedule.hyper, h.lr, t - 1), t, p64, grads, state64, groups);
      }
      const threaded = await wasm.create!({ threads: 2, minWork: 0 });
      try {
        for (const [target, mod] of [['flat', flat], ['wasm', wasm], ['threaded', threaded]] as const) {
          const p = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float32Array.from(v)]));
          const state = mod.initOptState(p);
          for (const slot of Object.keys(state).filter((k) => k !== 'step')) expect(Object.keys(state[slot] as object).sort(), `${target} state.${slot}`).toEqual(['W1', 'W2', 'b1', 'gain']);
          for (let t = 1; t <= 100; t++) {
            const lr = given(t);
            mod.trainStep(p, state, inputs, lr === undefined ? undefined : { lr: lr * h.lr });
          }
          expect(state.step).toBe(100);
          expect(p.b2, `${target}: the frozen b2 is as it was`).toEqual(params.b2);
          for (const k of Object.keys(p64)) expect(relErr(p[k]!, p64[k]!), `${target} ${k}`).toBeLessThan(2e-5);
        }
      } finally {
        await threaded.destroy();
      }
    });
  }
});

describe('a frozen param', () => {
  it('has no gradient (not in Grads, not in the backward graph) and keeps no optimizer state', async () => {
    const file = modelFile(GROUPS_MODEL, 'groups.ts');
    const out = path.join(tmp(), 'frozen');
    const r = await run(['build', file, '--out', out, '--target', 'ts,wasm', '--optimizer', 'adam']);
    expect(r.err).toBe('');
    const compiled0 = await compile(file, { targets: [] });
    const ts = readFileSync(path.join(out, 'groups.ts'), 'utf8');
    const grads = ts.slice(ts.indexOf('export interface Grads {'), ts.indexOf('}', ts.indexOf('export interface Grads {')));
    expect(grads).toContain('W2: Float32Array');
    expect(grads).not.toContain('b2');
    const grad = readFileSync(path.join(out, 'groups.grad.ir'), 'utf8');
    expect(grad).not.toMatch(/%db2\b/);
    const ir = readFileSync(path.join(out, 'groups.ir'), 'utf8');
    expect(ir).toContain('= param {name="b2", init="randn", scale=0.1, frozen=true}');
    expect(ir).toContain('= param {name="W2", init="randn", scale=0.4, weightDecay=0.05, lrScale=2}');
    // the IR text reads back with the options
    const parsed = parseGraph(ir);
    expect(parsed.insts.filter((i) => i.op === 'param').map((i) => i.attrs)).toEqual(compiled0.fwd.insts.filter((i) => i.op === 'param').map((i) => i.attrs));
    const compiled = await compile(file, { targets: [] });
    const { params, inputs } = randomArgs(compiled.fwd, 3);
    for (const target of ['', '.wasm']) {
      const mod = (await import(pathToFileURL(path.join(out, `groups${target}.js`)).href)) as Trainer & { valueAndGrad(p: Arrays, i: Arrays): { loss: number; grads: Record<string, Float32Array> } };
      const want = reference(compiled.fwd, compiled.bwd, params, inputs);
      const got = mod.valueAndGrad(params, inputs);
      expect(Object.keys(got.grads).sort(), target).toEqual(['W1', 'W2', 'b1', 'gain']);
      for (const k of Object.keys(got.grads)) expect(relErr(got.grads[k]!, want.grads[k]!), `${target} d${k}`).toBeLessThan(1e-5);
    }
  });

  it('graphc check leaves it out (it has no gradient), export --torch makes it requires_grad=False', async () => {
    const file = modelFile(GROUPS_MODEL, 'groups.ts');
    const check = await run(['check', file]);
    expect(check.code).toBe(0);
    const rows = check.out.split('\n').filter((l) => /(PASS|FAIL)$/.test(l)).map((l) => l.split(/\s+/)[0]);
    expect(rows).toEqual(['W1', 'b1', 'gain', 'W2']);
    const py = path.join(tmp(), 'groups_torch.py');
    expect((await run(['export', file, '--torch', py])).code).toBe(0);
    const text = readFileSync(py, 'utf8');
    expect(text).toContain('self.b2 = torch.nn.Parameter(torch.empty((5,)), requires_grad=False)  # trainable: false');
    expect(text).toContain('self.W2 = torch.nn.Parameter(torch.empty((16, 5)))\n');
  });

  it('without trainable: false the same param has a gradient and an update', async () => {
    const file = modelFile(GROUPS_MODEL.replace(", trainable: false", ''), 'groups.ts');
    const compiled = await compile(file, { targets: [] });
    expect(compiled.bwd.outputs.map((o) => o.name)).toEqual(['W1', 'b1', 'gain', 'W2', 'b2']);
  });
});

describe('schedule and group options: errors', () => {
  const file = modelFile(GROUPS_MODEL, 'groups.ts');
  const err = async (...flags: string[]) => {
    const r = await run(['build', file, '--out', path.join(tmp(), 'bad'), ...flags]);
    return `${r.code} ${r.err}`;
  };
  it('checks the schedule flags', async () => {
    expect(await err('--schedule', 'cosine')).toBe('2 graphc build: --schedule needs --optimizer\n');
    expect(await err('--no-decay-1d')).toBe('2 graphc build: --no-decay-1d needs --optimizer\n');
    expect(await err('--optimizer', 'adam', '--schedule', 'exp')).toBe("2 graphc build: unknown schedule 'exp' (known: constant, cosine, linear, step)\n");
    expect(await err('--optimizer', 'adam', '--warmup', '10')).toBe('2 graphc build: --warmup needs --schedule (constant, cosine, linear or step)\n');
    expect(await err('--optimizer', 'adam', '--schedule', 'cosine')).toBe('2 graphc build: --schedule cosine needs --total-steps N, the step from which the rate is --min-lr\n');
    expect(await err('--optimizer', 'adam', '--schedule', 'linear', '--total-steps', '100', '--warmup', '100')).toBe(
      '2 graphc build: --total-steps (100) must be above --warmup (100): the linear decay runs from step W to step N\n',
    );
    expect(await err('--optimizer', 'adam', '--lr', '0.01', '--schedule', 'cosine', '--total-steps', '100', '--min-lr', '0.1')).toBe(
      '2 graphc build: --min-lr (0.1) must be at most the learning rate (0.01): the rate decays from lr to min-lr\n',
    );
    expect(await err('--optimizer', 'adam', '--schedule', 'step')).toBe('2 graphc build: --schedule step needs --step-size S: the rate is multiplied by --gamma every S steps after the warmup\n');
    expect(await err('--optimizer', 'adam', '--schedule', 'step', '--step-size', '10', '--total-steps', '100')).toBe('2 graphc build: --total-steps is a setting of the cosine and linear schedules, not step\n');
    expect(await err('--optimizer', 'adam', '--schedule', 'cosine', '--total-steps', '100', '--gamma', '0.5')).toBe('2 graphc build: --gamma is a setting of the step schedule, not cosine\n');
    expect(await err('--optimizer', 'adam', '--schedule', 'constant', '--min-lr', '0.1')).toBe('2 graphc build: --min-lr is a setting of the cosine and linear schedules, not constant\n');
    expect(await err('--optimizer', 'adam', '--schedule', 'step', '--step-size', '2.5')).toBe("2 graphc build: --step-size must be a whole number of steps above 0, got '2.5'\n");
    expect(await err('--optimizer', 'adam', '--schedule', 'constant', '--warmup', '-1')).toBe("2 graphc build: --warmup must be a whole number of steps ≥ 0, got '-1'\n");
    expect(await err('--optimizer', 'adam', '--schedule', 'step', '--step-size', '5', '--gamma', '0')).toBe("2 graphc build: --gamma must be a number above 0, got '0'\n");
    expect(await err('--optimizer', 'adam', '--schedule', 'cosine', '--total-steps', 'x')).toBe("2 graphc build: --total-steps must be a whole number of steps above 0, got 'x'\n");
  });

  it('learningRate checks its step', async () => {
    const out = path.join(tmp(), 'lr');
    expect((await run(['build', file, '--out', out, '--target', 'ts', '--optimizer', 'adam', '--schedule', 'constant', '--warmup', '3'])).err).toBe('');
    const mod = (await import(pathToFileURL(path.join(out, 'groups.js')).href)) as Trainer;
    expect(() => mod.learningRate!(-1)).toThrow(new TypeError('groups: the step must be a non-negative integer, got -1'));
    expect(() => mod.learningRate!(0.5)).toThrow(new TypeError('groups: the step must be a non-negative integer, got 0.5'));
    expect([0, 1, 2, 3, 100].map((k) => mod.learningRate!(k))).toEqual([0.001 / 3, (0.001 * 2) / 3, 0.001, 0.001, 0.001]);
  });
});
