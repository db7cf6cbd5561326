// Powers of negative values in the GPU.js module in webgpu mode on Chromium's WebGPU (SwiftShader,
// whose pow(-2, 3.0) is 8: WGSL leaves pow undefined for a negative base), issue #36:
// test/fixtures/gpu/powers.ts (the tanh-GELU, x³, odd, even and negative constant exponents,
// exponents that are values, and the domains where PyTorch gives NaN) against the flat module in
// Node: outputs, NaNs at the same places, loss and gradients within 1e-4. The same module in
// gpu.js's cpu and webasm modes: test/gpu-pow.test.ts.

import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildBoth, relErr, ROOT } from '../helpers.js';
import { agree, powersArgs } from '../fixtures/gpu/powers-args.js';
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
  outputs: Record<string, number[] | number>;
  loss: number;
  grads: Record<string, number[]>;
}

it('the GPU.js module of powers.ts in webgpu mode: the flat module’s outputs, NaNs, loss and gradients (≤ 1e-4)', async () => {
  const { c, flat } = await buildBoth(path.join(ROOT, 'test/fixtures/gpu/powers.ts'));
  const source = c.files.find((f) => f.name === 'powers.gpu.js')!.content as string;
  const { params, inputs } = powersArgs(c.fwd);
  expect(Array.from(inputs.x!).some((v) => v < 0)).toBe(true);
  const got = (await page
    .evaluate(
      async ([src, p, i]) => {
        // the module from its text: a blob URL, whose `import 'gpu.js'` the page's import map resolves
        const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
        // (through Function: vitest would rewrite an import() written here for Node)
        const mod = await (new Function('u', 'return import(u)') as (u: string) => Promise<{ create(o: object): Promise<any> }>)(url);
        const f32 = (o: Record<string, number[]>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Float32Array.from(v)]));
        const model = await mod.create({ mode: 'webgpu' });
        try {
          const outs = await model.forward(f32(p), f32(i));
          const r = await model.valueAndGrad(f32(p), f32(i));
          const arr = (v: unknown) => (typeof v === 'number' ? v : Array.from(v as Float32Array));
          return {
            mode: model.mode,
            outputs: Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, arr(v)])),
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
  const want = flat.forward(params, inputs) as Record<string, Float32Array | number>;
  for (const k of ['gelu', 'odd', 'even', 'recip', 'frac', 'general', 'root', 'rsqrt', 'logh']) agree(got.outputs[k] as number[], want[k] as Float32Array, `output ${k}`);
  const g = flat.valueAndGrad(params, inputs);
  expect(Number.isFinite(g.loss)).toBe(true);
  expect(relErr([got.loss], [g.loss]), 'loss').toBeLessThan(1e-4);
  for (const [k, v] of Object.entries(g.grads)) agree(got.grads[k]!, Float32Array.from(v), `gradient of ${k}`);
});

it('destroy() in webgpu mode (pipelines and kernels released at once): after three create()/destroy() cycles a new model still agrees, no page error', async () => {
  const { c, flat } = await buildBoth(path.join(ROOT, 'test/fixtures/gpu/powers.ts'));
  const source = c.files.find((f) => f.name === 'powers.gpu.js')!.content as string;
  const { params, inputs } = powersArgs(c.fwd);
  const loss = await page.evaluate(
    async ([src, p, i]) => {
      const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
      const mod = await (new Function('u', 'return import(u)') as (u: string) => Promise<{ create(o: object): Promise<any> }>)(url);
      const f32 = (o: Record<string, number[]>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Float32Array.from(v)]));
      for (let n = 0; n < 3; n++) {
        const m = await mod.create({ mode: 'webgpu' });
        await m.valueAndGrad(f32(p), f32(i));
        m.destroy();
      }
      const model = await mod.create({ mode: 'webgpu' });
      const r = await model.valueAndGrad(f32(p), f32(i));
      model.destroy();
      await new Promise((done) => setTimeout(done, 100)); // gpu.destroy()'s turn
      return r.loss as number;
    },
    [source, plain(params), plain(inputs)] as const,
  );
  expect(errors).toEqual([]);
  expect(relErr([loss], [flat.valueAndGrad(params, inputs).loss])).toBeLessThan(1e-4);
});
