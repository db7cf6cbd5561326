// Every example's flat module (generated/<name>/<name>.js) and wasm module (<name>.wasm.js), as
// committed, give the same loss and gradients in Chromium as in Node (≤ 1e-6 relative). A wasm
// module with matmuls or convolutions fuses their multiply-adds in both (relaxed SIMD: Chromium's
// by default, Node's by the flag vitest.browser.config.ts gives it).

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GeneratedModule } from '../helpers.js';
import { relErr, ROOT } from '../helpers.js';
import { harness, launch, type Session } from './chromium.js';
import { callOptions, EXAMPLES, exampleArgs, plain } from './examples.js';

interface Result {
  loss: number;
  grads: Record<string, number[]>;
  simd: string | null;
}

let s: Session;
let run: (url: string, params: Record<string, number[]>, inputs: Record<string, number[]>) => Promise<Result>;

beforeAll(async () => {
  s = await launch();
  const { page, errors } = await harness(s);
  run = async (url, params, inputs) => {
    const r = await page.evaluate(
      ([u, p, i]) => (globalThis as unknown as { harness: { valueAndGrad(...a: unknown[]): Promise<Result> } }).harness.valueAndGrad(u, p, i),
      [url, params, inputs] as const,
    );
    expect(errors).toEqual([]);
    return r;
  };
});
afterAll(async () => {
  await s?.close();
});

it('covers every example of examples/', () => {
  expect(EXAMPLES.length).toBeGreaterThanOrEqual(8);
  expect(EXAMPLES).toContain('makemore');
});

describe.each(EXAMPLES)('%s', (name) => {
  it.each([
    ['flat', ''],
    ['wasm', '.wasm'],
  ])('%s module: the same loss and gradients in Chromium as in Node', async (_kind, suffix) => {
    const file = path.join(ROOT, 'generated', name, `${name}${suffix}.js`);
    const mod = (await import(pathToFileURL(file).href)) as GeneratedModule;
    const { params, inputs } = exampleArgs(name, 7);
    const node = (mod.valueAndGrad as (p: object, i: object, o: object) => ReturnType<GeneratedModule['valueAndGrad']>)(params, inputs, callOptions(mod));
    const want = { loss: node.loss, grads: Object.fromEntries(Object.entries(node.grads).map(([k, v]) => [k, Array.from(v)])) };
    const got = await run(`/generated/${name}/${name}${suffix}.js`, plain(params), plain(inputs));
    const simd = (mod as { simd?: string }).simd ?? null;
    expect(got.simd, 'the SIMD multiply-adds the module runs in Chromium').toBe(simd);
    if (suffix && /^\/\/ {3}(matmul|conv)_\w+: /m.test(readFileSync(file, 'utf8'))) expect(simd, 'the SIMD multiply-adds it runs in Node').toBe('relaxed');
    expect(Number.isFinite(want.loss), 'the loss in Node').toBe(true);
    expect(relErr([got.loss], [want.loss]), 'loss').toBeLessThanOrEqual(1e-6);
    expect(Object.keys(got.grads).sort()).toEqual(Object.keys(want.grads).sort());
    for (const [k, g] of Object.entries(got.grads)) expect(relErr(g, want.grads[k]!), `gradient of ${k}`).toBeLessThanOrEqual(1e-6);
  });
});
