// batchNorm with running statistics in a g.scan step (issue #32: "batchnorm inside a step works as
// outside"): each running statistic is a carry of the scan, so step t normalises with and updates
// what steps 0..t-1 left, as successive training calls outside a scan do; evaluation leaves them.

import { describe, expect, it } from 'vitest';
import { reverseMode } from '../ir/autodiff.js';
import type { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { verify } from '../ir/verify.js';
import { compile } from '../src/build.js';
import type { Arrays } from './helpers.js';
import { modelFile, randomArgs, relErr, tracedModel, writtenModules } from './helpers.js';

const T = 3;
const N = 6;
const F = 4;
const M = 0.1;

/** An RNN whose step batch-normalises x·W: with running statistics, with batch statistics, or with fixed ones given as inputs. */
const src = (bn: 'running' | 'batch' | 'fixed', checkpoint = 0) => `import { model } from 'graphc';
export default model('bnrun', (g) => {
  const xs = g.input('xs', [${T}, ${N}, ${F}]);
  const W = g.param('W', [${F}, ${F}], { scale: 0.5 });
  const gain = g.param('gain', [${F}]);
  const bias = g.param('bias', [${F}]);
  const h0 = g.param('h0', [${N}, ${F}]);
  ${bn === 'fixed' ? `const rm = g.input('rm', [${F}]); const rv = g.input('rv', [${F}]);` : ''}
  const norm = (z) => ${
    bn === 'running'
      ? `g.batchNorm(z, gain, bias, { momentum: ${M}, name: 'bn' })`
      : bn === 'batch'
        ? 'g.batchNorm(z, gain, bias)'
        : 'z.sub(rm).div(rv.add(1e-5).sqrt()).mul(gain).add(bias)'
  };
  const step = (h, x) => { const h2 = norm(x.matmul(W)).add(h).tanh(); return [h2, h2.sum(1)]; };
  const [hT, ys] = g.scan(step, h0, xs${checkpoint ? `, { checkpoint: ${checkpoint} }` : ''});
  return { loss: hT.square().mean().add(ys.square().mean()) };
});\n`;

/** The running statistics after T training steps from (rm, rv), folded here from x·W. */
function folded(xs: ArrayLike<number>, W: ArrayLike<number>, rm: number[], rv: number[]): { mean: number[]; var: number[] } {
  let mean = [...rm];
  let vr = [...rv];
  for (let t = 0; t < T; t++) {
    const z = (i: number, f: number) => {
      let s = 0;
      for (let q = 0; q < F; q++) s += xs[(t * N + i) * F + q]! * W[q * F + f]!;
      return s;
    };
    const mu = [...Array(F).keys()].map((f) => [...Array(N).keys()].reduce((s, i) => s + z(i, f), 0) / N);
    const v = [...Array(F).keys()].map((f) => [...Array(N).keys()].reduce((s, i) => s + (z(i, f) - mu[f]!) ** 2, 0) / (N - 1));
    mean = mean.map((m, f) => (1 - M) * m + M * mu[f]!);
    vr = vr.map((m, f) => (1 - M) * m + M * v[f]!);
  }
  return { mean, var: vr };
}

describe('batchNorm with running statistics in a scan step', () => {
  const rm = [0.1, -0.2, 0.3, 0.05];
  const rv = [1.2, 0.8, 1.5, 0.9];
  const buffers = { 'bn.running_mean': Float64Array.from(rm), 'bn.running_var': Float64Array.from(rv) };

  for (const checkpoint of [0, 2])
    it(`training: the statistics move once a step; the gradients are batch statistics' ${checkpoint ? `(checkpoint ${checkpoint})` : ''}`, () => {
      const s = tracedModel(src('running', checkpoint));
      verify(s);
      const args = randomArgs(s, 3, 0.7);
      const want = folded(args.inputs.xs!, args.params.W!, rm, rv);
      const fwd = s.clone();
      const bwd = reverseMode(fwd);
      verify(bwd);
      const vals = interpret(fwd, { ...args, train: true, buffers });
      const out = outputsOf(fwd, vals);
      expect(relErr(out['bn.running_mean']!.data, want.mean)).toBeLessThan(1e-12);
      expect(relErr(out['bn.running_var']!.data, want.var)).toBeLessThan(1e-12);
      // normalised by each step's batch statistics: the loss and gradients of batchNorm without momentum
      const p = tracedModel(src('batch'));
      const pf = p.clone();
      const pb = reverseMode(pf);
      const pv = interpret(pf, args);
      expect(relErr(out.loss!.data, outputsOf(pf, pv).loss!.data)).toBeLessThan(1e-12);
      const grads = (b: Graph, v: Map<string, { data: Float64Array }>, train: boolean) => {
        const bv = interpret(b, { fwd: v as never, train, buffers });
        return Object.fromEntries(b.outputs.map((o) => [o.name, bv.get(b.value(o.value).name)!.data]));
      };
      const got = grads(bwd, vals, true);
      const base = grads(pb, pv, false);
      for (const k of ['W', 'gain', 'bias', 'h0']) expect(relErr(got[k]!, base[k]!), k).toBeLessThan(1e-12);
    });

  it('evaluation: each step normalises with the statistics given, which stay as they are', () => {
    const s = tracedModel(src('running'));
    const fx = tracedModel(src('fixed'));
    const args = randomArgs(s, 4, 0.7);
    const out = outputsOf(s, interpret(s, { ...args, buffers }));
    const ref = outputsOf(fx, interpret(fx, { params: args.params, inputs: { ...args.inputs, rm, rv } }));
    expect(relErr(out.loss!.data, ref.loss!.data)).toBeLessThan(1e-12);
    expect(Array.from(out['bn.running_mean']!.data)).toEqual(rm);
    expect(Array.from(out['bn.running_var']!.data)).toEqual(rv);
  });

  it('the flat and wasm modules: valueAndGrad updates the buffers and gives the gradients as the interpreter does', async () => {
    const c = await compile(modelFile(src('running')), { targets: ['ts', 'wasm'] });
    const load = writtenModules(c);
    const args = randomArgs(c.fwd, 5, 0.7);
    const vals = interpret(c.fwd, { ...args, train: true, seed: 1, buffers });
    const want = outputsOf(c.fwd, vals);
    const bv = interpret(c.bwd, { fwd: vals, train: true, seed: 1, buffers });
    for (const file of ['bnrun.js', 'bnrun.wasm.js']) {
      const mod = await load(file);
      const b = { 'bn.running_mean': Float32Array.from(rm), 'bn.running_var': Float32Array.from(rv) };
      const got = (mod.valueAndGrad as (p: Arrays, i: Arrays, o: object) => { loss: number; grads: Record<string, Float32Array> })(args.params, args.inputs, { buffers: b, seed: 1 });
      expect(relErr([got.loss], want.loss!.data), file).toBeLessThan(1e-5);
      for (const o of c.bwd.outputs) expect(relErr(Float64Array.from(got.grads[o.name]!), bv.get(c.bwd.value(o.value).name)!.data), `${file} ${o.name}`).toBeLessThan(1e-4);
      expect(relErr(b['bn.running_mean'], want['bn.running_mean']!.data), file).toBeLessThan(1e-5);
      expect(relErr(b['bn.running_var'], want['bn.running_var']!.data), file).toBeLessThan(1e-5);
      expect(relErr(b['bn.running_mean'], rm), file).toBeGreaterThan(1e-3);
    }
  });
});
