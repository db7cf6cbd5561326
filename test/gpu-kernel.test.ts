// The GPU.js renderer of the kernel form (codegen/gpu-kernel.ts): a group that stores two values
// is two kernels, the later one reading what the earlier one wrote rather than computing it
// again; a primitive gpu.js has not and that no decomposition gives is a CompileError naming it
// and the target.

import { describe, expect, it } from 'vitest';
import { CompileError } from '../ir/errors.js';
import { size } from '../ir/dims.js';
import { GPU_CAPABILITIES, gpuNative } from '../codegen/gpu-kernel.js';
import type { Kernel } from '../codegen/kernel/form.js';
import { buildBoth, modelFile, randomArgs, relErr } from './helpers.js';

const SOURCE = `import { model } from 'graphc';
export default model('twostores', (g) => {
  const x = g.input('x', [3, 5]);
  const w = g.param('w', [5]);
  const h = x.mul(w).tanh();
  const o = h.mul(2).add(1).exp();
  return { h, o, loss: o.sum() };
});
`;

/** The body of the kernel function `name` in a GPU.js module's text. */
function kernelBody(text: string, name: string): string {
  const start = text.indexOf(`const ${name} = kernel(function`);
  expect(start, `${name} in the module`).toBeGreaterThanOrEqual(0);
  return text.slice(start, text.indexOf('\n}, ', start));
}

describe('a fused group that stores two values', async () => {
  const { c, flat, gpu } = await buildBoth(modelFile(SOURCE, 'twostores.ts'));
  const text = String(c.files.find((f) => f.name === 'twostores.gpu.js')!.content);

  it("is two kernels, the second reading the first one's array rather than computing tanh again", () => {
    const h = kernelBody(text, 'kernel_h');
    const o = kernelBody(text, 'kernel_o');
    expect(h).toContain('Math.tanh(');
    expect(o).not.toContain('Math.tanh(');
    expect(o).toMatch(/\bh\[/);
    expect(o).toContain('Math.exp(');
  });

  it('agrees with the flat module in cpu mode (outputs, loss, gradient)', async () => {
    const { params, inputs } = randomArgs(c.fwd, 3);
    const want = await flat.forward(params, inputs);
    const wantGrad = await flat.valueAndGrad(params, inputs);
    const model = await gpu.create({ mode: 'cpu' });
    try {
      const got = await model.forward(params, inputs);
      for (const k of ['h', 'o']) expect(relErr(got[k] as Float32Array, want[k] as Float32Array), k).toBeLessThan(1e-5);
      const g = await model.valueAndGrad(params, inputs);
      expect(Math.abs(g.loss - wantGrad.loss) / Math.abs(wantGrad.loss)).toBeLessThan(1e-5);
      expect(relErr(g.grads.w!, wantGrad.grads.w!)).toBeLessThan(1e-4);
    } finally {
      model.destroy();
    }
  });
});

describe('the capabilities of the GPU.js renderer', () => {
  it('declares the shader primitives native and not the bit-level ones', () => {
    for (const op of ['exp', 'log', 'tanh', 'sin', 'cos', 'sqrt', 'pow', 'erf', 'log1p', 'expm1', 'where'] as const) expect(GPU_CAPABILITIES.native.has(op), op).toBe(true);
    for (const op of ['bits', 'frombits', 'toint', 'shl', 'shr', 'and', 'or'] as const) expect(GPU_CAPABILITIES.native.has(op), op).toBe(false);
  });

  it('refuses a kernel that needs a primitive it has not and cannot decompose, naming it and the target', () => {
    const k: Kernel = {
      kind: 'kernel',
      name: 'k0',
      domain: [4],
      axes: [],
      nodes: [
        { op: 'load', dtype: 'f32', access: { arg: 'x', strides: [size(1)], offset: size(0) } },
        { op: 'bits', dtype: 'i32', args: [0] },
        { op: 'cast', dtype: 'f32', args: [1] },
      ],
      stores: [{ node: 2, access: { arg: 'y', strides: [size(1)], offset: size(0) } }],
      notes: [],
    };
    expect(() => gpuNative(k)).toThrow(CompileError);
    expect(() => gpuNative(k)).toThrow('the GPU.js target cannot compute bits: it has no bits primitive and no decomposition of bits into the primitives it has');
  });
});
