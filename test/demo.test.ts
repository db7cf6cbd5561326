// The training demo (npm run demo): training with the generated module lowers the loss,
// checkpoints round-trip, a resumed run equals an uninterrupted one bit for bit, calibrated
// evaluation agrees with the full-batch training pass, and the command itself trains, samples,
// draws its curve and survives Ctrl-C.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain ESM without type declarations
import { dataset, loadNames, splits } from '../scripts/demo/data.mjs';
// @ts-expect-error: plain ESM without type declarations
import { calibrate, sampleNames, splitLoss } from '../scripts/demo/evaluate.mjs';
// @ts-expect-error: plain ESM without type declarations
import { Rng } from '../scripts/demo/rng.mjs';
// @ts-expect-error: plain ESM without type declarations
import { loadCheckpoint, saveCheckpoint, Trainer } from '../scripts/demo/train.mjs';
import { loadTensors } from '../src/io.js';
import type { GeneratedModule } from './helpers.js';
import { buildAndImport, modelFile, ROOT, tmp } from './helpers.js';

const names: string[] = loadNames(42);
const data = splits(names);
// the lecture's network as the demo builds it (--optimizer sgd --lr 0.1: its compiled trainStep),
// and the same network with running statistics (momentum 0.001, batch 32)
const built = new Map<string, Promise<GeneratedModule>>();
const buildSgd = (file: string, name: string): Promise<GeneratedModule> => {
  if (!built.has(name)) {
    const dir = tmp();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/graphc.js'), 'build', '--target', 'ts', '--optimizer', 'sgd', '--lr', '0.1', path.join(ROOT, file)], { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    built.set(name, import(pathToFileURL(path.join(dir, 'generated', name, `${name}.js`)).href));
  }
  return built.get(name)!;
};
const lecture = (): Promise<GeneratedModule> => buildSgd('examples/makemore.ts', 'makemore');
const runningNet = (): Promise<GeneratedModule> => import(pathToFileURL(path.join(ROOT, 'generated/makemore_running/makemore_running.js')).href);

describe('demo data', () => {
  it('the @stdlib names, lowercased a-z, split 80/10/10 into contexts of 3', () => {
    expect(names.length).toBeGreaterThan(7000);
    expect(names.every((n) => /^[a-z]+$/.test(n))).toBe(true);
    expect(new Set(names).size).toBe(names.length);
    const chars = (ws: string[]) => ws.reduce((s, w) => s + w.length + 1, 0);
    const n1 = Math.floor(0.8 * names.length);
    const n2 = Math.floor(0.9 * names.length);
    expect([data.train.n, data.dev.n, data.test.n]).toEqual([chars(names.slice(0, n1)), chars(names.slice(n1, n2)), chars(names.slice(n2))]);
    const emma = dataset(['emma']);
    expect(Array.from(emma.X)).toEqual([0, 0, 0, 0, 0, 5, 0, 5, 13, 5, 13, 13, 13, 13, 1]);
    expect(Array.from(emma.Y)).toEqual([5, 13, 13, 1, 0]);
    expect(loadNames(42)).toEqual(names); // the shuffle is fixed by its seed
  });
});

describe('training', () => {
  it('a module without the compiled trainStep is refused', async () => {
    const plain = await import(pathToFileURL(path.join(ROOT, 'generated/makemore/makemore.js')).href);
    expect(() => new Trainer(plain, data.train, { steps: 10 })).toThrow("the module 'makemore' has no trainStep: build it with graphc build --optimizer sgd");
  });

  it('the compiled SGD step equals valueAndGrad and p −= lr·g, with the lecture schedule through options.lr', async () => {
    const mod = await lecture();
    const t = new Trainer(mod, data.train, { steps: 20, seed: 4 });
    const params = mod.initParams(4);
    const rng = new Rng(4 * 2654435761);
    const { X, Y, block } = data.train;
    const Xb = new Int32Array(32 * block);
    const Yb = new Int32Array(32);
    for (let s = 0; s < 20; s++) {
      for (let i = 0; i < 32; i++) {
        const k = rng.int(data.train.n);
        for (let j = 0; j < block; j++) Xb[i * block + j] = X[k * block + j];
        Yb[i] = Y[k];
      }
      const { loss, grads } = mod.valueAndGrad(params, { Xb, Yb });
      const lr = s < 10 ? 0.1 : 0.01;
      for (const k of Object.keys(params)) for (let i = 0; i < params[k]!.length; i++) params[k]![i] = params[k]![i]! - lr * grads[k]![i]!;
      expect(t.trainStep()).toBe(loss);
    }
    for (const k of Object.keys(params)) expect(Buffer.from(t.params[k].buffer).equals(Buffer.from(params[k]!.buffer)), k).toBe(true);
  });

  it('a short run lowers the loss', async () => {
    const t = new Trainer(await lecture(), data.train, { steps: 400, seed: 3 });
    const losses: number[] = [];
    while (t.step < t.steps) losses.push(t.trainStep());
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(0, 50))).toBeGreaterThan(3);
    expect(mean(losses.slice(-100))).toBeLessThan(mean(losses.slice(0, 50)) - 0.5);
    expect(t.history.train).toHaveLength(4);
  });

  it('a checkpoint round-trips: params bit for bit, step, random state and history', async () => {
    const mod = await lecture();
    const running = await runningNet();
    const t = new Trainer(mod, data.train, { steps: 100, seed: 5, running });
    for (let i = 0; i < 37; i++) t.trainStep();
    expect(t.opt).toEqual({ step: 37 }); // the compiled SGD's state: its step count
    const file = path.join(tmp(), 'ck.json');
    saveCheckpoint(file, t);
    const u = Trainer.resume(mod, data.train, loadCheckpoint(file), running);
    expect([u.step, u.steps, u.rng.state, u.windowSum, u.windowCount, u.opt]).toEqual([t.step, t.steps, t.rng.state, t.windowSum, t.windowCount, t.opt]);
    for (const k of Object.keys(t.params)) expect(Buffer.from(u.params[k].buffer).equals(Buffer.from(t.params[k].buffer)), k).toBe(true);
    for (const k of ['hpreact.running_mean', 'hpreact.running_var']) {
      expect(t.buffers[k].some((x: number) => x !== 0 && x !== 1), k).toBe(true); // moved by the 37 steps
      expect(Buffer.from(u.buffers[k].buffer).equals(Buffer.from(t.buffers[k].buffer)), k).toBe(true);
    }
    expect(u.history).toEqual(t.history);
    // the training state as JSON, naming the tensors file: params and buffers as safetensors, with their shapes
    const { tensors, ...state } = t.state();
    expect(readFileSync(file, 'utf8')).toBe(JSON.stringify({ ...state, params: 'ck.safetensors' }));
    const stored = loadTensors(path.join(path.dirname(file), 'ck.safetensors'));
    expect(stored.metadata).toEqual({ format: 'graphc-demo-checkpoint', model: 'makemore', step: '37' });
    expect(Object.keys(stored.tensors)).toEqual([...Object.keys(mod.spec.params), 'hpreact.running_mean', 'hpreact.running_var']);
    for (const [k, p] of Object.entries(mod.spec.params)) {
      expect(stored.tensors[k]!.shape, k).toEqual(p.shape);
      expect(Buffer.from(stored.tensors[k]!.data.buffer).equals(Buffer.from((tensors as Record<string, Float32Array>)[k]!.buffer)), k).toBe(true);
    }
  });

  it('resuming from a checkpoint equals training without a stop', async () => {
    const mod = await lecture();
    const running = await runningNet();
    const straight = new Trainer(mod, data.train, { steps: 300, seed: 7, running });
    while (straight.step < 300) straight.trainStep();
    const first = new Trainer(mod, data.train, { steps: 300, seed: 7, running });
    while (first.step < 130) first.trainStep();
    const file = path.join(tmp(), 'ck.json');
    saveCheckpoint(file, first);
    const resumed = Trainer.resume(mod, data.train, loadCheckpoint(file), running);
    while (resumed.step < 300) resumed.trainStep();
    for (const k of Object.keys(straight.params)) expect(Buffer.from(resumed.params[k].buffer).equals(Buffer.from(straight.params[k].buffer)), k).toBe(true);
    for (const k of Object.keys(straight.buffers)) expect(Buffer.from(resumed.buffers[k].buffer).equals(Buffer.from(straight.buffers[k].buffer)), k).toBe(true);
    expect(resumed.opt).toEqual(straight.opt);
    expect(resumed.history).toEqual(straight.history);
  });

  it('a checkpoint of another model is refused', async () => {
    const mod = await lecture();
    const state = new Trainer(mod, data.train, { steps: 10 }).state();
    expect(() => Trainer.resume(mod, data.train, { ...state, model: 'other' })).toThrow("the checkpoint is of model 'other', not 'makemore'");
    const { W1: _w, ...rest } = state.tensors;
    expect(() => Trainer.resume(mod, data.train, { ...state, tensors: rest, paramsFile: 'ck.safetensors' })).toThrow("ck.safetensors: missing param 'W1' of makemore");
    const running = await runningNet();
    expect(() => Trainer.resume(mod, data.train, state, running)).toThrow("the checkpoint's running statistics are of 'null', not 'makemore_running'");
  });

  it('a params file of another step than the state is refused', async () => {
    const mod = await lecture();
    const t = new Trainer(mod, data.train, { steps: 10, seed: 2 });
    const file = path.join(tmp(), 'checkpoint.json');
    saveCheckpoint(file, t);
    const early = readFileSync(file, 'utf8');
    t.trainStep();
    saveCheckpoint(file, t);
    writeFileSync(file, early); // as if the second save had stopped between its two files
    expect(() => loadCheckpoint(file)).toThrow(/checkpoint\.safetensors holds the params of step 1, but .*checkpoint\.json is the state of step 0 \(was a save interrupted\?\)/);
  });
});

describe('evaluation', () => {
  it('inference with calibrated statistics reproduces the full-batch training pass; one symbolic build evaluates and samples', async () => {
    const small = dataset(names.slice(0, 60));
    const build = async (fn: string, file: string, args: string) =>
      (await buildAndImport(modelFile(`import { LECTURE } from '${ROOT}/examples/makemore.ts';\nimport { ${fn} } from '${ROOT}/examples/${file}.ts';\nexport default ${fn}(${args});\n`))).mod;
    const cal = await build('makemore', 'makemore', `{ ...LECTURE, batch: ${small.n} }, 'cal', true`);
    const inf = await build('makemoreInference', 'makemore_inference', `{ ...LECTURE, batch: 'B' }, 'inf'`);
    const params = cal.initParams(9);
    const stats = calibrate(cal, params, small);
    expect(stats.bnmean).toHaveLength(64);
    // batchnorm over a batch with that batch's own statistics is inference with them as inputs
    expect(Math.abs(splitLoss(inf, params, stats, small) - stats.loss)).toBeLessThan(1e-5);
    const sampled: string[] = sampleNames(inf, params, stats, new Rng(1), 4, 12);
    expect(sampled).toHaveLength(4);
    for (const s of sampled) expect(s).toMatch(/^[a-z]{0,12}$/);
  });
});

describe('npm run demo', () => {
  const demo = path.join(ROOT, 'scripts/demo.mjs');

  it('builds, trains, reports train/dev/test loss, samples 10 names and draws the loss curve', () => {
    const out = tmp();
    const r = spawnSync(process.execPath, [demo, '--steps', '600', '--eval-every', '300', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/train \d\.\d{4} {3}dev \d\.\d{4} {3}test \d\.\d{4}\nwith the running statistics \(momentum 0\.001\) instead:\n {2}dev \d\.\d{4} {3}test \d\.\d{4}\n/);
    const sampled = r.stdout.split('10 names sampled from the trained model:\n')[1]!.split('\n').slice(0, 10);
    for (const s of sampled) expect(s).toMatch(/^ {2}[a-z]*$/);
    expect(readFileSync(path.join(out, 'demo-loss.svg'), 'utf8')).toMatch(/^<svg [^]*<polyline [^]*<\/svg>\n$/);
    expect(existsSync(path.join(out, 'demo-loss.png'))).toBe(true);
    const ck = JSON.parse(readFileSync(path.join(out, 'checkpoint.json'), 'utf8'));
    expect([ck.step, ck.steps, ck.history.dev.length]).toEqual([600, 600, 2]);
  });

  it('Ctrl-C saves a checkpoint and exits 130; --resume finishes the run', async () => {
    const out = tmp();
    const child = spawn(process.execPath, [demo, '--steps', '1000000', '--eval-every', '100000', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        text += d.toString();
        if (/step +\d+\/1000000/.test(text)) child.kill('SIGINT');
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code, text).toBe(130);
    expect(text).toMatch(/interrupted at step (\d+): saved .*checkpoint\.json; continue with npm run demo -- --resume/);
    const ck = JSON.parse(readFileSync(path.join(out, 'checkpoint.json'), 'utf8'));
    const at = Number(/interrupted at step (\d+)/.exec(text)![1]);
    expect(ck.step).toBe(at);
    // finish the run quickly: the same checkpoint with a shorter schedule
    writeFileSync(path.join(out, 'checkpoint.json'), JSON.stringify({ ...ck, steps: at + 200 }));
    const r = spawnSync(process.execPath, [demo, '--resume', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`resumed from`);
    expect(r.stdout).toContain(`at step ${at} of ${at + 200}`);
    expect(JSON.parse(readFileSync(path.join(out, 'checkpoint.json'), 'utf8')).step).toBe(at + 200);
  });
});

describe('npm run demo:gpt', () => {
  it('builds the tiny GPT, and 300 compiled AdamW steps take the dev loss per character from ln 27 (3.30) below 2.5', () => {
    const out = tmp();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/gpt.mjs'), '--steps', '300', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^graphc build: examples\/gpt\.ts in \d+\.\d s; 27291 params, batch 16 × 8 characters$/m);
    const [, dev, test] = /loss per character after 300 steps: {2}dev (\d\.\d{4}) {3}test (\d\.\d{4})/.exec(r.stdout)!;
    expect(Number(dev)).toBeLessThan(2.5);
    expect(Number(test)).toBeLessThan(2.5);
    const sampled = r.stdout.split('10 names sampled from the trained model:\n')[1]!.split('\n').slice(0, 10);
    for (const s of sampled) expect(s).toMatch(/^ {2}[a-z]*$/);
  });

  it("demo:pinn: the physics-informed network fits sin x within 1e-2, at the collocation points and between them", () => {
    const out = tmp();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/pinn.mjs'), '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const [, at, between] = /^max \|u − sin x\|: (\S+) at the collocation points, (\S+) between them \(target < 1e-2\)$/m.exec(r.stdout)!;
    expect(Number(at)).toBeLessThan(1e-2);
    expect(Number(between)).toBeLessThan(1e-2);
    expect(existsSync(path.join(out, 'pinn-fit.svg'))).toBe(true);
  });

  it('demo:mnist: one epoch of the CNN with the compiled Adam holds out 2,048 digits and classifies over 90% of them; the pictures are written', () => {
    const out = tmp();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/mnist.mjs'), '--epochs', '1', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^data: 10000 MNIST digits from the mnist package; train 7952, test 2048 \(held out\)$/m);
    const [, right] = /^test accuracy \d+\.\d\d% \((\d+)\/2048\) after 1 epochs, 124 steps/m.exec(r.stdout)!;
    expect(Number(right) / 2048).toBeGreaterThan(0.9);
    for (const f of ['mnist-curve.svg', 'mnist-digits.svg']) expect(existsSync(path.join(out, f)), f).toBe(true);
  });
});
