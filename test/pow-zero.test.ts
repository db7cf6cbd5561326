// pow's gradients at a zero base (issue #31), as PyTorch 1.13 computes them (pow_backward_self and
// pow_backward_exponent use `where`): d/dx x^q is 0 where q = 0 (not 0·0^-1 = NaN), d/dq x^q is
// 0 where x = 0 and q ≥ 0 (not log 0 · 0 = NaN). Each model in the flat, wasm and GPU.js (cpu)
// modules and the float64 interpreter, and through g.grad (a rule emitted into the forward graph);
// a constant exponent with no zero keeps its select-free gradient.

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import type { Compiled } from '../src/build.js';
import type { Arrays, GeneratedModule, GpuModule } from './helpers.js';
import { finiteDiff, modelFile, reference, tmp } from './helpers.js';

/** torch's d/dx and d/dq of x^q with an upstream gradient of 1, in float64. */
const torchDx = (x: number, q: number) => (q === 0 ? 0 : q * Math.pow(x, q - 1));
const torchDq = (x: number, q: number) => (x === 0 && q >= 0 ? 0 : Math.pow(x, q) * Math.log(x));

async function buildAll(file: string): Promise<{ c: Compiled; flat: GeneratedModule; wasm: GeneratedModule; gpu: GpuModule }> {
  const c = await compile(file, { targets: ['ts', 'gpu', 'wasm'] });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const load = async <T>(suffix: string) => (await import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href)) as T;
  return { c, flat: await load<GeneratedModule>(''), wasm: await load<GeneratedModule>('.wasm'), gpu: await load<GpuModule>('.gpu') };
}

/** Equal to float32 precision; infinities equal by sign; a NaN never. */
function expectClose(got: ArrayLike<number>, want: readonly number[], what: string): void {
  expect(got.length, what).toBe(want.length);
  want.forEach((w, i) => {
    const g = got[i]!;
    const ok = Number.isFinite(w) ? Math.abs(g - w) <= 1e-5 * Math.max(1, Math.abs(w)) : g === w;
    expect(ok, `${what}[${i}]: ${g}, torch gives ${w}`).toBe(true);
  });
}

/** The gradients of every target and of the interpreter against `want`. */
async function expectGrads(body: string, name: string, params: Record<string, number[]>, want: Record<string, number[]>): Promise<Compiled> {
  const { c, flat, wasm, gpu } = await buildAll(modelFile(`import { model } from 'graphc';
export default model('${name}', (g) => {
  ${body}
});
`));
  const ps: Arrays = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float32Array.from(v)]));
  const ref = reference(c.fwd, c.bwd, ps, {});
  for (const [k, w] of Object.entries(want)) expectClose(ref.grads[k]!, w, `float64 interpreter: d loss / d ${k}`);
  for (const [target, mod] of [['flat', flat], ['wasm', wasm]] as const) {
    const { grads } = mod.valueAndGrad(ps, {});
    for (const [k, w] of Object.entries(want)) expectClose(grads[k]!, w, `${target} module: d loss / d ${k}`);
  }
  const model = await gpu.create({ mode: 'cpu' });
  try {
    const { grads } = await model.valueAndGrad(ps, {});
    for (const [k, w] of Object.entries(want)) expectClose(grads[k]!, w, `GPU.js (cpu) module: d loss / d ${k}`);
  } finally {
    model.destroy();
  }
  return c;
}

const ops = (g: Compiled['bwd']) => new Set(g.insts.map((i) => i.op));

describe("pow's gradients at a zero base, as PyTorch's", () => {
  it('a tensor exponent: d/dx 0^0 = 0, d/dq 0^q = 0 for q ≥ 0 (0, 2, 0.5, 1), the usual values elsewhere', async () => {
    const x = [0, 0, 0, 0, 0.5, 2, 1.5];
    const q = [0, 2, 0.5, 1, -1.5, 0.5, 0];
    const want = { x: x.map((v, i) => torchDx(v, q[i]!)), q: x.map((v, i) => torchDq(v, q[i]!)) };
    // the hard facts at x = 0: q = 0 → 0, q = 2 → 0, q = 0.5 → ∞, q = 1 → 1; d/dq is 0 for each
    expect(want.x.slice(0, 4)).toEqual([0, 0, Infinity, 1]);
    expect(want.q.slice(0, 4)).toEqual([0, 0, 0, 0]);
    await expectGrads(`const x = g.param('x', [7]); const q = g.param('q', [7]); return x.pow(q).sum();`, 'pow_zero_tensor', { x, q }, want);
  });

  it('a constant base with zeros: d/dq 0^q = 0 for q ≥ 0', async () => {
    const base = [0, 0, 2, 0.5];
    const q = [0, 1.5, 0, -1];
    const want = { q: base.map((v, i) => torchDq(v, q[i]!)) };
    expect(want.q.slice(0, 2)).toEqual([0, 0]);
    await expectGrads(`const q = g.param('q', [4]); return g.const(${JSON.stringify(base)}).pow(q).sum();`, 'pow_zero_const_base', { q }, want);
  });

  it.each([
    [0, [0, 0, 0]],
    [2, [0, 0.5, 4]],
    [0.5, [Infinity, 1, 0.5 / Math.SQRT2]],
  ])('a constant exponent %s: d/dx at x = 0, 0.25, 2', async (e, dx) => {
    const x = [0, 0.25, 2];
    expect(x.map((v) => torchDx(v, e))).toEqual(dx);
    await expectGrads(`const x = g.param('x', [3]); return x.pow(${e}).sum();`, `pow_zero_exp_${String(e).replace('.', '_')}`, { x }, { x: dx });
  });

  it('a constant exponent with no zero needs no select; a tensor exponent does', async () => {
    const c3 = await expectGrads(`const x = g.param('x', [3]); return x.pow(3).add(x.pow(-0.5)).sum();`, 'pow_no_select', { x: [0.5, 1, 2] }, {
      x: [0.5, 1, 2].map((v) => torchDx(v, 3) + torchDx(v, -0.5)),
    });
    expect(ops(c3.bwd).has('select')).toBe(false);
    const cq = await expectGrads(`const x = g.param('x', [2]); const q = g.param('q', [2]); return x.pow(q).sum();`, 'pow_select', { x: [0.5, 2], q: [3, -1] }, {
      x: [torchDx(0.5, 3), torchDx(2, -1)],
      q: [torchDq(0.5, 3), torchDq(2, -1)],
    });
    expect(ops(cq.bwd).has('select')).toBe(true);
  });

  it('through g.grad: the first derivatives at x = 0 as outputs, and the second as the gradient of Σ dx', async () => {
    const x = [0, 0, 0, 0.5];
    const q = [1, 2, 3, 1.5];
    const body = `const x = g.param('x', [4]); const q = g.param('q', [4]);
  const [dx, dq] = g.grad(x.pow(q).sum(), [x, q]);
  return { loss: dx.sum(), dx, dq };`;
    // d/dx q·x^(q−1) = q·(q−1)·x^(q−2), 0 where q − 1 = 0 (PyTorch's where, not 0·0^−1 = NaN);
    // d/dq q·x^(q−1) = x^(q−1) + q·x^(q−1)·log x, its second term 0 where x = 0 and q − 1 ≥ 0
    // (PyTorch's zeros; 0·log 0 was NaN, and 1·log 0 = −∞ where q = 1)
    const want = {
      x: [0, 2, 0, 1.5 * 0.5 * Math.pow(0.5, -0.5)],
      q: [1, 0, 0, Math.pow(0.5, 0.5) * (1 + 1.5 * Math.log(0.5))],
    };
    const c = await expectGrads(body, 'pow_zero_grad', { x, q }, want);
    const ps: Arrays = { x: Float32Array.from(x), q: Float32Array.from(q) };
    const ref = reference(c.fwd, c.bwd, ps, {});
    expectClose(ref.outputs.dx!.data, x.map((v, i) => torchDx(v, q[i]!)), 'g.grad: dx');
    expectClose(ref.outputs.dq!.data, x.map((v, i) => torchDq(v, q[i]!)), 'g.grad: dq');
    // the smooth entries against finite differences of the float64 loss
    for (const i of [1, 3]) expect(Math.abs(finiteDiff(c.fwd, ps, {}, 'x', i) - want.x[i]!), `x[${i}]`).toBeLessThan(1e-6);
    expect(Math.abs(finiteDiff(c.fwd, ps, {}, 'q', 3) - want.q[3]!)).toBeLessThan(1e-6);
  });
});
