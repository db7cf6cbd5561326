// The GPU.js module of every example, in gpu.js's cpu and webasm modes (no GPU needed): its
// loss, gradients and outputs agree with the flat module.

import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildBoth, modelFile, randomArgs, relErr, ROOT } from './helpers.js';

const EXAMPLES = ['neuron', 'makemore', 'makemore_composite', 'wavenet', 'gpt', 'twolayer', 'classifier'];

describe.each(EXAMPLES)('GPU.js module of %s', (name) => {
  it.each(['cpu', 'webasm'])('agrees with the flat module in %s mode', async (mode) => {
    const { c, flat, gpu } = await buildBoth(path.join(ROOT, 'examples', `${name}.ts`));
    const model = await gpu.create({ mode });
    try {
      expect(model.mode).toBe(mode);
      const { params, inputs } = randomArgs(c.fwd, 11, 0.5);
      const want = flat.valueAndGrad(params, inputs);
      const wantLoss = want.loss;
      const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
      const got = await model.valueAndGrad(params, inputs);
      expect(relErr([got.loss], [wantLoss])).toBeLessThan(1e-4);
      expect(Object.keys(got.grads).sort()).toEqual(Object.keys(wantGrads).sort());
      for (const [k, g] of Object.entries(got.grads)) expect(relErr(g, wantGrads[k]!), `gradient of ${k}`).toBeLessThan(1e-4);
      const outs = await model.forward(params, inputs);
      const flatOuts = flat.forward(params, inputs);
      for (const [k, v] of Object.entries(flatOuts))
        expect(relErr(typeof v === 'number' ? [outs[k] as number] : (outs[k] as Float32Array), typeof v === 'number' ? [v] : v), `output ${k}`).toBeLessThan(1e-4);
    } finally {
      model.destroy();
    }
  });
});

describe('GPU.js module with a symbolic batch', () => {
  it.each(['cpu', 'webasm'])('compiles its kernels for each batch size a call brings, and agrees with the flat module (%s)', async (mode) => {
    const examples = ROOT.split(path.sep).join('/') + '/examples';
    const file = modelFile(`import { LECTURE } from '${examples}/makemore.ts';
import { makemoreComposite } from '${examples}/makemore_composite.ts';
export default makemoreComposite({ ...LECTURE, batch: 'B' }, 'gpu_sym');
`);
    const { c, flat, gpu } = await buildBoth(file);
    const model = await gpu.create({ mode });
    try {
      for (const n of [7, 32, 7]) {
        const { params, inputs } = randomArgs(c.fwd, n, 0.5, { B: n });
        const want = flat.valueAndGrad(params, inputs);
        const wantLoss = want.loss;
        const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
        const got = await model.valueAndGrad(params, inputs);
        expect(relErr([got.loss], [wantLoss]), `B = ${n}: loss`).toBeLessThan(1e-4);
        for (const [k, g] of Object.entries(got.grads)) expect(relErr(g, wantGrads[k]!), `B = ${n}: gradient of ${k}`).toBeLessThan(1e-4);
        const probs = (await model.forward(params, inputs)).probs as Float32Array;
        expect(probs.length).toBe(n * 27);
        expect(relErr(probs, flat.forward(params, inputs).probs as Float32Array), `B = ${n}: probs`).toBeLessThan(1e-4);
      }
      expect(model.mode).toBe(mode);
    } finally {
      model.destroy();
    }
  });
});

describe('GPU.js module of a large product', () => {
  // dA = dd·Bᵀ has 2^20 outputs and K = 64: on a GPU it runs 2-D and reads Bᵀ from a transposed
  // copy (codegen/gpu.ts); here, in the modes without a GPU, the same module must still agree
  const file = modelFile(`import { model } from 'graphc';
export default model('large', (g) => {
  const A = g.param('A', [1024, 1024]);
  const B = g.param('B', [1024, 64]);
  const y = g.input('y', [1024, 64]);
  const d = A.matmul(B).sub(y);
  return { loss: d.mul(d).mean() };
});
`);

  it('transposes B once, runs the product 2-D on webgpu and reads its gradient back through a 1-D copy', async () => {
    const { c } = await buildBoth(file);
    const content = c.files.find((f) => f.name === 'large.gpu.ts')!.content;
    const src = typeof content === 'string' ? content : new TextDecoder().decode(content);
    const order = ['const B_T = kernel_B_T(B);', 'const dA = kernel_dA(B_T, dd);', 'return [loss, copy_dA(dA), dB];'].map((l) => src.indexOf(l));
    expect(order.every((k) => k > 0) && order[0]! < order[1]! && order[1]! < order[2]!, order.join()).toBe(true);
    expect(src).toContain('return B[_rest0 * 64 + _i0];');
    expect(src).toContain('_acc0 += dd[_i0 * 64 + _r1] * B_T[_r1 * 1024 + _rest0];');
    expect(src).toContain('const _x = this.thread.x + this.thread.y * 1024;');
    expect(src).toContain("output: width && mode === 'webgpu' && n >= 1048576 ? [width, n / width] : [n],");
    // the forward product has 65,536 outputs: 1-D, and its B is read as it is
    expect(src.match(/this\.thread\.y/g)).toHaveLength(1);
  });

  it.each(['cpu', 'webasm'])('agrees with the flat module in %s mode', async (mode) => {
    const { c, flat, gpu } = await buildBoth(file);
    const model = await gpu.create({ mode });
    try {
      const { params, inputs } = randomArgs(c.fwd, 5, 0.5);
      const want = flat.valueAndGrad(params, inputs);
      const got = await model.valueAndGrad(params, inputs);
      expect(relErr([got.loss], [want.loss])).toBeLessThan(1e-4);
      for (const k of ['A', 'B']) expect(relErr(got.grads[k]!, Float32Array.from(want.grads[k]!)), `gradient of ${k}`).toBeLessThan(1e-4);
    } finally {
      model.destroy();
    }
  });
});

describe('webgpu mode', () => {
  it('says clearly when this machine has no WebGPU adapter', async () => {
    const { gpu } = await buildBoth(path.join(ROOT, 'examples', 'neuron.ts'));
    await expect(gpu.create({ mode: 'webgpu' })).rejects.toThrow(/^neuron: mode 'webgpu' (needs the 'webgpu' package|found no WebGPU adapter)/);
  });
});
