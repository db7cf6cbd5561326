// NaN in maxima (docs/dsl.md, "NaN, a stated difference from PyTorch"): a reduction `max` skips
// NaN on every target and in the float64 interpreter (torch.max/amax give NaN); max pooling differs
// by target (below); the elementwise `maximum`/`minimum` propagate NaN as torch.maximum does.

import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect, it } from 'vitest';
import { interpret } from '../ir/interp.js';
import { compile } from '../src/build.js';
import type { GeneratedModule, GpuModule } from './helpers.js';
import { modelFile, ROOT, tmp } from './helpers.js';

const MODEL = `import { model } from 'graphc';
export default model('nanmax', (g) => {
  const x = g.input('x', [3, 8]);
  const y = g.input('y', [3, 8]);
  const p = g.input('p', [1, 1, 4, 8]);
  const w = g.param('w', []);
  const rmax = x.max(1);
  const mx = x.maximum(y);
  const mn = x.minimum(y);
  // against constants (wasm: pmin/pmax where they give f32x4.min/max's lanes, NaN and ±0 included)
  const cl = x.clamp(-0.5, 2);
  const m0 = x.minimum(0);
  const m1 = x.maximum(-1).minimum(-0);
  const pool2 = g.maxPool2d(p, 2);
  const pool3 = g.maxPool2d(p, 3, { stride: 1 });
  return { loss: x.sum().mul(w), rmax, mx, mn, cl, m0, m1, pool2, pool3 };
});
`;

const N = NaN;
const x = Float32Array.of(N, 1, 2, 0, -1, -0, 0, -3, N, N, N, N, N, N, N, N, 3, 1, 4, 1, 5, 9, 2, 6);
const y = Float32Array.from(x, (_v, i) => i % 3);
// NaN at the first tap of window (0,0) and at the last tap of window (0,1) of the 2×2 pooling
const p = Float32Array.from({ length: 32 }, (_v, i) => (i === 0 || i === 11 ? NaN : i));

/** k×k max pooling of the [4,8] plane with stride s: `first`, the window's first tap then each greater one; `propagate`, NaN if any tap is. */
function pool(k: number, s: number, mode: 'first' | 'propagate'): number[] {
  const out: number[] = [];
  for (let i = 0; i + k <= 4; i += s)
    for (let j = 0; j + k <= 8; j += s) {
      const taps = Array.from({ length: k * k }, (_v, t) => p[(i + Math.floor(t / k)) * 8 + j + (t % k)]!);
      out.push(mode === 'propagate' && taps.some(Number.isNaN) ? NaN : taps.reduce((a, v) => (v > a ? v : a)));
    }
  return out;
}

it('max skips NaN, maximum/minimum propagate it, max pooling as documented per target: the interpreter, the flat, wasm and GPU.js (cpu mode) modules', async () => {
  const c = await compile(modelFile(MODEL, 'nanmax.ts'), { targets: ['ts', 'wasm', 'gpu'] });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const flat = (await import(pathToFileURL(path.join(dir, 'nanmax.js')).href)) as GeneratedModule;
  const wasm = (await import(pathToFileURL(path.join(dir, 'nanmax.wasm.js')).href)) as GeneratedModule;
  const gpu = await ((await import(pathToFileURL(path.join(dir, 'nanmax.gpu.js')).href)) as GpuModule).create({ mode: 'cpu' });
  const params = { w: Float32Array.of(1) };
  const inputs = { x, y, p };
  const ref = interpret(c.fwd, { params, inputs });
  const out = (name: string) => Array.from(ref.get(c.fwd.value(c.fwd.outputs.find((o) => o.name === name)!.value).name)!.data);
  const mx = Array.from(x, (v, i) => (Number.isNaN(v) ? NaN : Math.max(v, y[i]!)));
  const mn = Array.from(x, (v, i) => (Number.isNaN(v) ? NaN : Math.min(v, y[i]!)));
  // row 0 holds a NaN and its maximum is 2; row 1 is all NaN: −∞
  expect(out('rmax')).toEqual([2, -Infinity, 9]);
  expect(out('mx')).toEqual(mx);
  expect(out('mn')).toEqual(mn);
  const signed = (v: ArrayLike<number>) => Array.from(v, (e) => (Object.is(e, -0) ? '-0' : e));
  const consts = {
    cl: Array.from(x, (v) => (Number.isNaN(v) ? NaN : Math.min(Math.max(v, -0.5), 2))),
    m0: Array.from(x, (v) => (Number.isNaN(v) ? NaN : Math.min(v, 0))),
    m1: Array.from(x, (v) => (Number.isNaN(v) ? NaN : Math.min(Math.max(v, -1), -0))),
  };
  for (const [k, want] of Object.entries(consts)) expect(signed(out(k)), k).toEqual(signed(want));
  // max pooling: the first tap of a window, then each greater one (a NaN first tap gives NaN)
  expect(out('pool2')).toEqual(pool(2, 2, 'first'));
  expect(out('pool2').slice(0, 2)).toEqual([NaN, 10]);
  expect(out('pool3')).toEqual(pool(3, 1, 'first'));
  for (const [name, mod] of [['flat', flat], ['wasm', wasm]] as const) {
    const got = mod.forward(params, inputs);
    for (const k of ['rmax', 'mx', 'mn']) expect(Array.from(got[k] as Float32Array), `${name} ${k}`).toEqual(out(k));
    for (const [k, want] of Object.entries(consts)) expect(signed(got[k] as Float32Array), `${name} ${k}`).toEqual(signed(want));
    // the wasm kernels' f32.max/f32x4.max give NaN where any tap is NaN
    for (const [k, size, stride] of [['pool2', 2, 2], ['pool3', 3, 1]] as const)
      expect(Array.from(got[k] as Float32Array), `${name} ${k}`).toEqual(name === 'wasm' ? pool(size, stride, 'propagate') : out(k));
  }
  // the GPU.js module (its kernels run as JavaScript in cpu mode) starts each maximum at −∞ and
  // takes each greater tap: NaN is skipped, and a window or slice of NaN only is −∞
  const got = await gpu.forward(params, inputs);
  gpu.destroy();
  expect(Array.from(got.rmax as Float32Array)).toEqual(out('rmax'));
  expect(Array.from(got.pool2 as Float32Array).slice(0, 2)).toEqual([9, 10]);
});

it('docs/dsl.md states the difference from PyTorch', () => {
  const dsl = readFileSync(path.join(ROOT, 'docs/dsl.md'), 'utf8');
  expect(dsl).toContain('- NaN, a stated difference from PyTorch: a reduction `max` skips NaN');
  expect(dsl).toContain('`maxPool2d`/`maxPool1d` differ by target');
});
