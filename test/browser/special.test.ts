// erf, log1p and expm1 of the GPU.js module (codegen/gpu-special.ts) in real shaders: Chromium's
// WebGPU (WGSL on SwiftShader) and WebGL ('gpu' mode, GLSL), over the grid of
// test/gpu-special.test.ts (−6 … 6 and ±10⁻ᵏ) against float64. gpu.js's own log1p and expm1 in
// those languages are log(1 + x) and exp(x) − 1, and it has no erf; and a shader's log is accurate
// near 1 only to an absolute 2⁻²¹, so no form through log(1 + x) keeps a small x's digits.

import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { compile } from '../../src/build.js';
import { erf } from '../../ir/special.js';
import { modelFile, tmp } from '../helpers.js';
import { harness, launch, type Session } from './chromium.js';

const GRID = [
  ...Array.from({ length: 12 * 1024 + 1 }, (_x, i) => -6 + i / 1024),
  ...Array.from({ length: 20 }, (_x, k) => 10 ** -(k + 1)),
  ...Array.from({ length: 20 }, (_x, k) => -(10 ** -(k + 1))),
].map(Math.fround);
const N = GRID.length;

const SOURCE = `import { model } from 'graphc';
export default model('special', (g) => {
  const x = g.input('x', [${N}]);
  const w = g.param('w', [1], { init: 'ones' });
  const y = x.mul(w);
  return { loss: y.sum(), erf: y.erf(), log1p: y.log1p(), expm1: y.expm1() };
});
`;

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

/** Largest |got − want| and |got − want|/|want| over the grid points `keep` admits. */
function errorsOf(got: number[], want: (x: number) => number, keep: (x: number) => boolean = () => true) {
  let abs = 0;
  let rel = 0;
  GRID.forEach((x, i) => {
    if (!keep(x)) return;
    const d = Math.abs(got[i]! - want(x));
    abs = Math.max(abs, d);
    if (want(x) !== 0) rel = Math.max(rel, d / Math.abs(want(x)));
  });
  return { abs, rel };
}

it.each(['webgpu', 'gpu'])('%s mode: erf, log1p and expm1 within a few float32 roundings, small values keep their digits', async (mode) => {
  const c = await compile(modelFile(SOURCE, 'special.ts'), { targets: ['gpu'] });
  const source = c.files.find((f) => f.name === 'special.gpu.js')!.content as string;
  writeFileSync(path.join(tmp(), 'special.gpu.js'), source);
  const got = (await page
    .evaluate(
      async ([src, x, m]) => {
        const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
        const mod = await (new Function('u', 'return import(u)') as (u: string) => Promise<{ create(o: object): Promise<any> }>)(url);
        const model = await mod.create({ mode: m });
        try {
          const out = await model.forward({ w: Float32Array.of(1) }, { x: Float32Array.from(x) });
          return { mode: model.mode as string, erf: Array.from(out.erf as Float32Array), log1p: Array.from(out.log1p as Float32Array), expm1: Array.from(out.expm1 as Float32Array) };
        } finally {
          model.destroy();
        }
      },
      [source, GRID, mode] as const,
    )
    .catch((e: Error) => {
      throw new Error(`${e.message}\nthe page's errors: ${errors.join('\n')}`);
    })) as { mode: string; erf: number[]; log1p: number[]; expm1: number[] };
  expect(errors).toEqual([]);
  expect(got.mode).toBe(mode);
  const e = errorsOf(got.erf, erf);
  const l = errorsOf(got.log1p, Math.log1p, (x) => x > -1);
  const m = errorsOf(got.expm1, Math.expm1);
  console.log(`GPU.js ${mode} (Chromium, SwiftShader): erf ${e.abs.toExponential(2)} (${e.rel.toExponential(2)} relative), log1p ${l.rel.toExponential(2)} relative, expm1 ${m.rel.toExponential(2)} relative`);
  // SwiftShader: 1.6e-7, 2.5e-7 and 4.3e-7 (log(1 + x) and Kahan's expm1, which need log to be
  // relatively accurate near 1, were off by 65% and 28%)
  expect(e.abs, 'erf').toBeLessThan(5e-7);
  expect(l.rel, 'log1p, relative').toBeLessThan(1e-6);
  expect(m.rel, 'expm1, relative').toBeLessThan(1e-6);
});
