// The GPU.js module of every example (generated/<name>/<name>.gpu.js, which imports gpu.js: here
// gpu.js's browser build through an import map) in webgpu mode on Chromium's WebGPU (SwiftShader,
// a CPU implementation of Vulkan: no GPU needed): its loss and gradients match the flat module's
// (≤ 1e-4), and a training run of a few hundred SGD steps on it lowers the loss as the flat
// module's does.

import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GeneratedModule } from '../helpers.js';
import { relErr, ROOT } from '../helpers.js';
import { harness, launch, type Session } from './chromium.js';
import { callOptions, EXAMPLES, exampleArgs, plain } from './examples.js';

/**
 * The training runs: SGD at 0.1 on one fixed batch from initParams(3), 200 steps; 25 for the GPT
 * and WaveNet, whose step takes 0.4–0.5 s on SwiftShader here (200 would take 3 minutes).
 */
// a step on SwiftShader takes 0.4–0.5 s for the GPT and WaveNet, longer for the CNN; the PINN's
// SGD at this rate is chaotic (f32 differences grow), so it runs few steps
const STEPS: Record<string, number> = { gpt: 25, wavenet: 25, cnn: 10, pinn: 10 };
const stepsOf = (name: string): number => STEPS[name] ?? 200;
const LR = 0.1;

let s: Session;
let page: Page;
let errors: string[];
type Harness = Record<string, (...a: unknown[]) => Promise<unknown>>;
const call = <T>(fn: string, ...args: unknown[]): Promise<T> =>
  page.evaluate(([f, a]) => (globalThis as unknown as { harness: Harness }).harness[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;

beforeAll(async () => {
  s = await launch({ webgpu: true });
  ({ page, errors } = await harness(s));
});
afterAll(async () => {
  await s?.close();
});

it('Chromium offers a WebGPU adapter', async () => {
  const adapter = await call<{ vendor: string; architecture: string; description: string } | null>('adapter');
  expect(adapter).not.toBeNull();
  console.log(`WebGPU adapter: ${JSON.stringify(adapter)}`);
});

describe.each(EXAMPLES)('%s', (name) => {
  const url = (suffix: string) => `/generated/${name}/${name}${suffix}.js`;

  it('GPU.js module in webgpu mode: the flat module’s loss and gradients (≤ 1e-4)', async () => {
    const seen = errors.length; // the page is shared: an earlier example's errors are its own
    const flat = (await import(pathToFileURL(path.join(ROOT, 'generated', name, `${name}.js`)).href)) as GeneratedModule;
    const { params, inputs } = exampleArgs(name, 11);
    const want = (flat.valueAndGrad as (p: object, i: object, o: object) => ReturnType<GeneratedModule['valueAndGrad']>)(params, inputs, callOptions(flat));
    const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
    const got = await call<{ mode: string; loss: number; grads: Record<string, number[]> }>('gpuValueAndGrad', url('.gpu'), 'webgpu', plain(params), plain(inputs));
    expect(errors.slice(seen)).toEqual([]);
    expect(got.mode).toBe('webgpu');
    expect(Number.isFinite(want.loss)).toBe(true);
    expect(relErr([got.loss], [want.loss]), 'loss').toBeLessThan(1e-4);
    expect(Object.keys(got.grads).sort()).toEqual(Object.keys(wantGrads).sort());
    for (const [k, g] of Object.entries(got.grads)) expect(relErr(g, wantGrads[k]!), `gradient of ${k}`).toBeLessThan(1e-4);
  });

  afterAll(() => call('destroyModels'));

  it(`GPU.js module in webgpu mode: ${stepsOf(name)} SGD steps lower the loss as the flat module's do`, async () => {
    const seen = errors.length;
    const flat = (await import(pathToFileURL(path.join(ROOT, 'generated', name, `${name}.js`)).href)) as GeneratedModule;
    const { inputs } = exampleArgs(name, 12);
    const params = flat.initParams(3);
    const r = await call<{ mode: string; flatLoss: number[]; gpuLoss: number[]; gpuMs: number }>('trainBoth', url(''), url('.gpu'), 'webgpu', plain(params), plain(inputs), stepsOf(name), LR);
    expect(errors.slice(seen)).toEqual([]);
    expect(r.mode).toBe('webgpu');
    const [f0, f1, g0, g1] = [r.flatLoss[0]!, r.flatLoss.at(-1)!, r.gpuLoss[0]!, r.gpuLoss.at(-1)!];
    let worst = 0;
    r.gpuLoss.forEach((g, i) => (worst = Math.max(worst, Math.abs(g - r.flatLoss[i]!) / Math.max(Math.abs(r.flatLoss[i]!), 1e-3))));
    console.log(`${name}: loss ${f0.toFixed(4)} → ${f1.toFixed(4)} (flat), ${g0.toFixed(4)} → ${g1.toFixed(4)} (webgpu, ${r.gpuMs.toFixed(1)} ms/step); worst step ${worst.toExponential(1)}`);
    expect(f1, 'the flat module trains').toBeLessThan(0.9 * f0);
    expect(g1, 'the GPU.js module trains').toBeLessThan(0.9 * g0);
    expect(worst, 'the two runs agree at every step').toBeLessThan(1e-2);
  });
});
