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

describe('webgpu mode', () => {
  it('says clearly when this machine has no WebGPU adapter', async () => {
    const { gpu } = await buildBoth(path.join(ROOT, 'examples', 'neuron.ts'));
    await expect(gpu.create({ mode: 'webgpu' })).rejects.toThrow(/^neuron: mode 'webgpu' (needs the 'webgpu' package|found no WebGPU adapter)/);
  });
});
