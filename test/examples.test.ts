// Every example: the generated module's loss and gradients against the float64 interpreter and
// against central finite differences; the text IR round-trips; the IR matches its golden file.

import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseGraph } from '../ir/parse.js';
import { printGraph } from '../ir/print.js';
import { numel } from '../ir/types.js';
import { buildAndImport, expectGolden, finiteDiff, randomArgs, reference, relErr, rng, ROOT } from './helpers.js';

const EXAMPLES = ['neuron', 'makemore', 'makemore_composite', 'twolayer', 'classifier'];

describe.each(EXAMPLES)('example %s', (name) => {
  const file = path.join(ROOT, 'examples', `${name}.ts`);

  it('gives the loss and every gradient of the float64 reference', async () => {
    const { c, mod } = await buildAndImport(file);
    for (const seed of [1, 2]) {
      const { params, inputs } = randomArgs(c.fwd, seed, 0.5);
      const ref = reference(c.fwd, c.bwd, params, inputs);
      const { loss, grads } = mod.valueAndGrad(params, inputs);
      expect(relErr([loss], ref.outputs.loss!.data)).toBeLessThan(1e-5);
      expect(Object.keys(grads).sort()).toEqual(Object.keys(mod.spec.params).sort());
      for (const [k, g] of Object.entries(grads)) expect(relErr(g, ref.grads[k]!), `gradient of ${k}`).toBeLessThan(1e-4);
      const out = mod.forward(params, inputs);
      for (const [k, v] of Object.entries(ref.outputs))
        expect(relErr(typeof out[k] === 'number' ? [out[k] as number] : (out[k] as Float32Array), v.data), `output ${k}`).toBeLessThan(1e-4);
    }
  });

  it('has float64 gradients equal to central finite differences', async () => {
    const { c } = await buildAndImport(file);
    const { params, inputs } = randomArgs(c.fwd, 3, 0.5);
    const ref = reference(c.fwd, c.bwd, params, inputs);
    const r = rng(7);
    for (const [k, p] of Object.entries(params)) {
      const idx = numel([p.length]) <= 8 ? [...p.keys()] : Array.from({ length: 8 }, () => Math.floor(r() * p.length));
      const fd = idx.map((i) => finiteDiff(c.fwd, params, inputs, k, i));
      const an = idx.map((i) => ref.grads[k]![i]!);
      expect(relErr(an, fd), `d loss / d ${k}${JSON.stringify(idx)}`).toBeLessThan(1e-6);
    }
  });

  it('prints IR that parses back to the same graph', async () => {
    const { c } = await buildAndImport(file);
    for (const g of [c.fwd, c.bwd]) {
      const text = printGraph(g);
      expect(printGraph(parseGraph(text))).toBe(text);
    }
  });

  it('matches its golden IR', async () => {
    const { c } = await buildAndImport(file);
    expectGolden(`${name}.ir`, printGraph(c.fwd));
    expectGolden(`${name}.grad.ir`, printGraph(c.bwd));
  });
});

describe('the sigmoid neuron of the DeepRob slides', () => {
  it("gives the slide's gradients", async () => {
    const { mod } = await buildAndImport(path.join(ROOT, 'examples', 'neuron.ts'));
    const f = (x: number) => Float32Array.of(x);
    const { loss, grads } = mod.valueAndGrad({ w0: f(2), x0: f(-1), w1: f(-3), x1: f(-2), w2: f(-3) }, {});
    expect(loss.toFixed(2)).toBe('0.73');
    const two = (k: string) => grads[k]![0]!.toFixed(2);
    expect({ w0: two('w0'), x0: two('x0'), w1: two('w1'), x1: two('x1'), w2: two('w2') }).toEqual({
      w0: '-0.20',
      x0: '0.39',
      w1: '-0.39',
      x1: '-0.59',
      w2: '0.20',
    });
  });
});
