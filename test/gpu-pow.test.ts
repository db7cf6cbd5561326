// Powers in the GPU.js module (issue #36): WGSL and GLSL leave pow(x, y) undefined for x < 0
// (SwiftShader's WebGPU gives pow(-2, 3.0) = 8), so the shader code graphc emits writes constant
// integer exponents as products and gives pow a base ≥ 0 only, with PyTorch's signs. The exact
// text emitted, and test/fixtures/gpu/powers.ts in gpu.js's cpu and webasm modes against the flat
// module (in webgpu mode on Chromium: test/browser/pow.test.ts).

import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GPU_CAPABILITIES, GPU_UNARY } from '../codegen/gpu-kernel.js';
import { gpuPow } from '../codegen/gpu-pow.js';
import { decompose, expandedPower } from '../codegen/kernel/decompose.js';
import type { Kernel } from '../codegen/kernel/form.js';
import * as E from '../codegen/expr.js';
import { agree, powersArgs } from './fixtures/gpu/powers-args.js';
import { buildBoth, relErr, ROOT } from './helpers.js';

describe('the shader expression of a ** b', () => {
  const x = E.atom('x[i]');
  const text = (b: E.Expr) => gpuPow(x, b).code;
  /** y = x ** c over 4 elements. */
  const powKernel = (c: number): Kernel => {
    const acc = { arg: 'x', strides: [{ coef: 1, syms: [] }], offset: { coef: 0, syms: [] } };
    return { kind: 'kernel', name: 'k', domain: [4], axes: [], nodes: [{ op: 'load', dtype: 'f32', access: acc }, { op: 'const', dtype: 'f32', value: c }, { op: 'pow', dtype: 'f32', args: [0, 1] }], stores: [{ node: 2, access: { ...acc, arg: 'y' } }], notes: [] };
  };

  it('a constant integer or half-integer up to 64 is the decomposition\'s (expandedPower): products, a reciprocal, √, never a pow', () => {
    for (const c of [3, -2, 0, 1, 4, 7, -6, 64, -64, 0.5, -0.5, 1.5, -1.5, 63.5]) {
      expect(() => text(E.num(c)), `${c}`).toThrow(`internal: pow(x, ${c}) reached the GPU.js renderer; the decomposition expands it (expandedPower)`);
      const nodes = decompose(powKernel(c), GPU_CAPABILITIES).nodes;
      expect(nodes.some((n) => n.op === 'pow'), `x ** ${c}`).toBe(false);
      if (Number.isInteger(c) && c > 1) expect(nodes.filter((n) => n.op !== 'load' && n.op !== 'const').every((n) => n.op === 'mul'), `x ** ${c}: products`).toBe(true);
    }
    // GPU.js keeps pow for the other constants: the same rule as every target's
    for (const c of [65, -65, 2.25, 0.3]) expect(decompose(powKernel(c), GPU_CAPABILITIES).nodes.some((n) => n.op === 'pow'), `x ** ${c}`).toBe(true);
  });

  it('a larger constant integer: |a|^n with the sign of a for odd n; another constant is NaN for a negative base but −∞', () => {
    expect(text(E.num(65))).toBe('(x[i] < 0 ? -1 : 1) * Math.pow(Math.abs(x[i]), 65)');
    expect(text(E.num(-66))).toBe('Math.pow(Math.abs(x[i]), -66)');
    expect(text(E.num(2.25))).toBe('x[i] < -3.4028234663852886e+38 ? Math.sqrt(-x[i]) : x[i] < 0 ? Math.sqrt(x[i]) : Math.pow(x[i], 2.25)');
    expect(text(E.num(-1.25))).toBe('x[i] < -3.4028234663852886e+38 ? 0 : x[i] < 0 ? Math.sqrt(x[i]) : Math.pow(x[i], -1.25)');
  });

  it('an exponent that is a value: pow of a base ≥ 0, the sign by the parity of an integer exponent, else NaN', () => {
    expect(text(E.atom('y[i]'))).toBe(
      'x[i] < 0 ? (Math.floor(y[i]) === y[i] ? (Math.floor(y[i] * 0.5) === y[i] * 0.5 ? 1 : -1) * Math.pow(-x[i], y[i]) : Math.sqrt(x[i])) : Math.pow(x[i], y[i])',
    );
  });

  it('log of a negative value is NaN (SwiftShader gives it a number): √ of it, as the NaN of pow', () => {
    expect(GPU_UNARY.log(x, (e) => e).code).toBe('x[i] < 0 ? Math.sqrt(x[i]) : Math.log(x[i])');
  });

  it('the same rules in JavaScript give Math.pow of every base and exponent, PyTorch NaNs included', () => {
    const bases = [-3, -2, -0.5, 0, 0.5, 2, 3];
    const exps = [-3, -2, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 7, 2.5, 65, -66, 2.25, -1.25];
    for (const b of exps)
      for (const a of bases) {
        const variable = new Function('x', 'y', `return ${gpuPow(E.atom('x[0]'), E.atom('y[0]')).code};`) as (x: number[], y: number[]) => number;
        const want = Math.pow(a, b);
        const same = (got: number) => Object.is(got, want) || Math.abs(got - want) <= 1e-12 * Math.abs(want);
        if (!expandedPower(b)) {
          const constant = new Function('x', `return ${gpuPow(E.atom('x[0]'), E.num(b)).code};`) as (x: number[]) => number;
          expect(same(constant([a])), `${a} ** ${b}: ${constant([a])}, not ${want}`).toBe(true);
        }
        expect(same(variable([a], [b])), `${a} ** y, y = ${b}: ${variable([a], [b])}, not ${want}`).toBe(true);
      }
  });

  it('a constant exponent at −∞, +∞ and −0 gives Math.pow’s value', () => {
    const exps = [65, -65, 66, -66, 2.25, -1.25, 0.3];
    for (const b of exps)
      for (const a of [-Infinity, Infinity, -0]) {
        const constant = new Function('x', `return ${gpuPow(E.atom('x[0]'), E.num(b)).code};`) as (x: number[]) => number;
        // the sign of a zero result is not kept (shaders need not keep it): −0 ** 5 may give +0
        // a −0 base counts as +0, as in the decomposition (pow(−0, −65) is +∞, not −∞)
        const [got, want] = [constant([a]), Math.pow(Object.is(a, -0) ? 0 : a, b)];
        expect(Object.is(got, want) || (got === 0 && want === 0), `${a} ** ${b}: ${got}, not ${want}`).toBe(true);
      }
  });
});

describe('test/fixtures/gpu/powers.ts in the GPU.js module', () => {
  it.each(['cpu', 'webasm'])('%s mode: the flat module’s outputs, NaNs, loss and gradients (≤ 1e-4)', async (mode) => {
    const { c, flat, gpu } = await buildBoth(path.join(ROOT, 'test/fixtures/gpu/powers.ts'));
    const { params, inputs } = powersArgs(c.fwd);
    expect(Array.from(inputs.x!).some((v) => v < 0)).toBe(true);
    const model = await gpu.create({ mode });
    try {
      const want = flat.forward(params, inputs) as Record<string, Float32Array | number>;
      const got = await model.forward(params, inputs);
      for (const k of ['gelu', 'odd', 'even', 'recip', 'frac', 'general', 'root', 'rsqrt', 'logh']) agree(got[k] as Float32Array, want[k] as Float32Array, `output ${k}`);
      expect(Array.from(want.frac as Float32Array).some(Number.isNaN), 'a negative base with exponent 1.5').toBe(true);
      const g0 = flat.valueAndGrad(params, inputs);
      const wantGrads = Object.fromEntries(Object.entries(g0.grads).map(([k, v]) => [k, Float32Array.from(v)]));
      const wantLoss = g0.loss;
      expect(Number.isFinite(wantLoss)).toBe(true);
      const r = await model.valueAndGrad(params, inputs);
      expect(relErr([r.loss], [wantLoss]), 'loss').toBeLessThan(1e-4);
      // dk has log(h) of the negative h: NaN there, as in PyTorch
      for (const [k, g] of Object.entries(r.grads)) agree(g, wantGrads[k]!, `gradient of ${k}`);
    } finally {
      model.destroy();
    }
  });
});
