// A fused kernel binding more storage buffers than WebGPU's default maxStorageBuffersPerShaderStage
// (8): test/fixtures/gpu/wide.ts (nine arrays read, one written) in the GPU.js module's webgpu mode
// on Chromium's WebGPU (SwiftShader, whose adapter offers 10). The module asks for the adapter's
// limit when gpu.js requests the device (docs/gpu.md); the results agree with the flat module in
// Node (≤ 1e-4). Before, the pipeline failed: "The number of storage buffers (10) in the Compute
// stage exceeds the maximum per-stage limit (8)".

import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildBoth, randomArgs, relErr, ROOT } from '../helpers.js';
import { harness, launch, type Session } from './chromium.js';
import { plain } from './examples.js';

let s: Session;
let page: Page;
let errors: string[];

beforeAll(async () => {
  s = await launch({ webgpu: true });
  ({ page, errors } = await harness(s));
});
afterAll(async () => {
  await s?.close();
});

interface PageResult {
  mode: string;
  adapterLimit: number;
  y: number[];
  loss: number;
  grads: Record<string, number[]>;
}

it('a fused kernel reading nine arrays (ten storage buffers) runs in webgpu mode and agrees with the flat module (≤ 1e-4)', async () => {
  const { c, flat } = await buildBoth(path.join(ROOT, 'test/fixtures/gpu/wide.ts'));
  const source = c.files.find((f) => f.name === 'wide.gpu.js')!.content as string;
  // the fused group's kernel takes the param's tanh and the eight inputs
  expect(source).toMatch(/kernel\(function \(t1, x0, x1, x2, x3, x4, x5, x6, x7\)/);
  const { params, inputs } = randomArgs(c.fwd, 7);
  const got = (await page
    .evaluate(
      async ([src, p, i]) => {
        const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
        const mod = await (new Function('u', 'return import(u)') as (u: string) => Promise<{ create(o: object): Promise<any> }>)(url);
        const f32 = (o: Record<string, number[]>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Float32Array.from(v)]));
        const nav = (globalThis as unknown as { navigator: { gpu: { requestAdapter(): Promise<{ limits: Record<string, number> }> } } }).navigator;
        const adapter = await nav.gpu.requestAdapter();
        const model = await mod.create({ mode: 'webgpu' });
        try {
          const outs = await model.forward(f32(p), f32(i));
          const r = await model.valueAndGrad(f32(p), f32(i));
          return {
            mode: model.mode,
            adapterLimit: adapter.limits.maxStorageBuffersPerShaderStage,
            y: Array.from(outs.y as Float32Array),
            loss: r.loss,
            grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, Array.from(v as Float32Array)])),
          };
        } finally {
          model.destroy();
        }
      },
      [source, plain(params), plain(inputs)] as const,
    )
    .catch((e: Error) => {
      throw new Error(`${e.message}\nthe page's errors: ${errors.join('\n')}`);
    })) as PageResult;
  expect(errors).toEqual([]);
  expect(got.mode).toBe('webgpu');
  // the adapter offers more than the default 8 (a kernel binding more than it offers would have to be split)
  expect(got.adapterLimit).toBeGreaterThanOrEqual(10);
  const want = flat.forward(params, inputs) as Record<string, Float32Array | number>;
  expect(relErr(got.y, want.y as Float32Array), 'y').toBeLessThan(1e-4);
  const g = flat.valueAndGrad(params, inputs);
  expect(relErr([got.loss], [g.loss]), 'loss').toBeLessThan(1e-4);
  expect(relErr(got.grads.w!, g.grads.w!), 'gradient of w').toBeLessThan(1e-4);
});
