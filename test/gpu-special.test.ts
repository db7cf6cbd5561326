// erf, log1p and expm1 in the GPU.js module (codegen/gpu-special.ts): gpu.js has no erf, and its
// GLSL and WGSL log1p and expm1 are log(1 + x) and exp(x) − 1. The module's own expressions
// against float64 over a dense grid, in gpu.js's webasm mode, whose arithmetic is float32 as a
// shader's (its exp and log are JavaScript's, rounded to float32), and in cpu mode (float64).

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import { erf } from '../ir/special.js';
import type { GpuModule } from './helpers.js';
import { modelFile, tmp } from './helpers.js';

/** −6 … 6 in steps of 1/1024, and ±10^−k: small values where log(1 + x) and eˣ − 1 lose their digits. */
const GRID = Float32Array.from([
  ...Array.from({ length: 12 * 1024 + 1 }, (_x, i) => -6 + i / 1024),
  ...Array.from({ length: 20 }, (_x, k) => 10 ** -(k + 1)),
  ...Array.from({ length: 20 }, (_x, k) => -(10 ** -(k + 1))),
]);
const N = GRID.length;

const SOURCE = `import { model } from 'graphc';
export default model('special', (g) => {
  const x = g.input('x', [${N}]);
  const w = g.param('w', [1], { init: 'ones' });
  const y = x.mul(w);
  const erf = y.erf();
  const log1p = y.log1p();
  const expm1 = y.expm1();
  return { loss: erf.add(expm1).sum(), erf, log1p, expm1 };
});
`;

interface Errors {
  /** Largest |got − want|. */
  abs: number;
  /** Largest |got − want| / |want| over want ≠ 0. */
  rel: number;
}

function errors(got: Float32Array, want: (x: number) => number, keep: (x: number) => boolean = () => true): Errors {
  let abs = 0;
  let rel = 0;
  GRID.forEach((x, i) => {
    if (!keep(x)) return;
    const w = want(x);
    const d = Math.abs(got[i]! - w);
    abs = Math.max(abs, d);
    if (w !== 0) rel = Math.max(rel, d / Math.abs(w));
  });
  return { abs, rel };
}

describe('erf, log1p and expm1 in the GPU.js module', async () => {
  const c = await compile(modelFile(SOURCE, 'special.ts'), { targets: ['gpu'] });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const gpu = (await import(pathToFileURL(path.join(dir, 'special.gpu.js')).href)) as GpuModule;

  // float32's unit roundoff is 6e-8: a few roundings in webasm mode, the formulas' own error in cpu mode
  const BOUNDS = { webasm: { erfAbs: 3e-7, erfRel: 6e-7, rel: 4e-7 }, cpu: { erfAbs: 6e-8, erfRel: 1.2e-7, rel: 1.2e-7 } } as const;
  it.each(['webasm', 'cpu'] as const)('%s mode: within a few float32 roundings of float64, small values included', async (mode) => {
    const model = await gpu.create({ mode });
    try {
      const out = await model.forward({ w: Float32Array.of(1) }, { x: GRID });
      const b = BOUNDS[mode];
      const e = errors(out.erf as Float32Array, erf);
      // log1p's domain is x > −1
      const l = errors(out.log1p as Float32Array, Math.log1p, (x) => x > -1);
      const m = errors(out.expm1 as Float32Array, Math.expm1);
      console.log(`GPU.js ${mode}: erf ${e.abs.toExponential(2)} (${e.rel.toExponential(2)} relative), log1p ${l.rel.toExponential(2)} relative, expm1 ${m.rel.toExponential(2)} relative`);
      expect(e.abs, 'erf').toBeLessThanOrEqual(b.erfAbs);
      expect(e.rel, 'erf, relative').toBeLessThanOrEqual(b.erfRel);
      expect(l.rel, 'log1p, relative').toBeLessThanOrEqual(b.rel);
      expect(m.rel, 'expm1, relative').toBeLessThanOrEqual(b.rel);
      // log1p below −1 is NaN, at −1 −∞, as Math.log1p
      const at = (v: number) => GRID.indexOf(v);
      expect((out.log1p as Float32Array)[at(-2)]).toBeNaN();
      expect((out.log1p as Float32Array)[at(-1)]).toBe(-Infinity);
    } finally {
      model.destroy();
    }
  });

  it('log(1 + x) and eˣ − 1 in float32, as gpu.js writes them, would lose every digit of a small x', () => {
    const f = Math.fround;
    const naiveLog1p = Float32Array.from(GRID, (x) => f(Math.log(f(1 + x))));
    const naiveExpm1 = Float32Array.from(GRID, (x) => f(f(Math.exp(x)) - 1));
    expect(errors(naiveLog1p, Math.log1p, (x) => x > -1).rel).toBeGreaterThan(0.5);
    expect(errors(naiveExpm1, Math.expm1).rel).toBeGreaterThan(0.5);
  });
});
