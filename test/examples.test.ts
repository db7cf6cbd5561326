// Every example: the generated module's loss and gradients against the float64 interpreter and
// against central finite differences; the text IR round-trips; the IR matches its golden file.

import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { reverseMode } from '../ir/autodiff.js';
import { initialParams } from '../ir/init.js';
import { parseGraph } from '../ir/parse.js';
import { traceModel } from '../src/frontend.js';
import { loadModel } from '../src/loader.js';
import { printGraph } from '../ir/print.js';
import { buildAndImport, expectGolden, finiteDiff, randomArgs, reference, relErr, rng, ROOT, smoothAt } from './helpers.js';

const EXAMPLES = ['neuron', 'makemore', 'makemore_composite', 'makemore_inference', 'wavenet', 'gpt', 'twolayer', 'classifier'];

/** Inputs that must lie in a domain: a variance is not negative. */
const POSITIVE_INPUTS = new Set(['bnvar']);

describe.each(EXAMPLES)('example %s', (name) => {
  const file = path.join(ROOT, 'examples', `${name}.ts`);
  const args = (fwd: Parameters<typeof randomArgs>[0], seed: number) => {
    const a = randomArgs(fwd, seed, 0.5);
    for (const k of Object.keys(a.inputs)) if (POSITIVE_INPUTS.has(k)) a.inputs[k] = (a.inputs[k] as Float32Array).map(Math.abs);
    return a;
  };

  it('gives the loss and every gradient of the float64 reference', async () => {
    const { c, mod } = await buildAndImport(file);
    for (const seed of [1, 2]) {
      const { params, inputs } = args(c.fwd, seed);
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
    const { params, inputs } = args(c.fwd, 3);
    const ref = reference(c.fwd, c.bwd, params, inputs);
    const r = rng(7);
    // 8 points of each param, or fewer (not under 4) where a model has many params: 128 in all
    const per = Math.max(4, Math.min(8, Math.floor(128 / Object.keys(params).length)));
    for (const [k, p] of Object.entries(params)) {
      // points where the loss is smooth over the stencil (a relu kink inside it spoils it)
      const idx: number[] = [];
      for (let tries = 0; idx.length < Math.min(per, p.length) && tries < 64; tries++) {
        const i = p.length <= per ? tries : Math.floor(r() * p.length);
        if (i < p.length && smoothAt(c.fwd, params, inputs, k, i)) idx.push(i);
      }
      expect(idx.length, `smooth points of ${k}`).toBe(Math.min(per, p.length));
      const fd = idx.map((i) => finiteDiff(c.fwd, params, inputs, k, i));
      const an = idx.map((i) => ref.grads[k]![i]!);
      expect(relErr(an, fd), `d loss / d ${k}${JSON.stringify(idx)}`).toBeLessThan(1e-6);
    }
  });

  it('keeps the float64 gradients of the unoptimised traced graph (rewrites, fusion and CSE change no value)', async () => {
    const { c } = await buildAndImport(file);
    const plain = traceModel(loadModel(file)).graph;
    const plainBwd = reverseMode(plain);
    const { params, inputs } = args(c.fwd, 4);
    const opt = reference(c.fwd, c.bwd, params, inputs);
    const ref = reference(plain, plainBwd, params, inputs);
    expect(relErr(opt.outputs.loss!.data, ref.outputs.loss!.data)).toBeLessThan(1e-12);
    for (const k of Object.keys(ref.grads)) expect(relErr(opt.grads[k]!, ref.grads[k]!), k).toBeLessThan(1e-9);
  });

  it("initialises params exactly as the compiler's reference (ir/init.ts)", async () => {
    const { c, mod } = await buildAndImport(file);
    for (const seed of [0, 7]) {
      const want = initialParams(c.fwd, seed);
      const got = mod.initParams(seed);
      for (const k of Object.keys(want)) expect(got[k], k).toEqual(want[k]);
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

describe('the WaveNet of part 5', () => {
  it("normalises [n, t, c] over the batch and the positions with batchnorm's fused rule", async () => {
    const { c } = await buildAndImport(path.join(ROOT, 'examples', 'wavenet.ts'));
    const fwd = printGraph(c.fwd, { locs: false });
    const bwd = printGraph(c.bwd, { locs: false });
    expect(fwd.match(/= bn_apply /g)).toHaveLength(3);
    expect(fwd).toMatch(/%bnmeani: f32\[1,1,128\] = mul %t\d+, %t\d+\n/);
    expect(fwd).toMatch(/= sum %hpre1 \{axes=\[0, 1\], keepDims=true\}/);
    // the backward reads bnvar_inv; the chain rule through the variance (a pow of −1.5) is gone
    expect(bwd).not.toMatch(/= pow /);
    expect(bwd).toMatch(/%dbias1: f32\[128\] = sum %\w+ \{axes=\[0, 1\], keepDims=false\}/);
  });
});

/** Temporaries renumbered by first appearance, and the graph name dropped. */
function canonical(text: string): string {
  const seen = new Map<string, string>();
  return text
    .replace(/^graph (\w+) \S+ \{/m, 'graph $1 _ {')
    .replace(/%t\d+\b/g, (t) => {
      if (!seen.has(t)) seen.set(t, `%t${seen.size + 1}`);
      return seen.get(t)!;
    });
}

describe('the long-form makemore of the lecture', () => {
  it('compiles to the same fused backward as the composite-op model', async () => {
    const long = await buildAndImport(path.join(ROOT, 'examples', 'makemore.ts'));
    const composite = await buildAndImport(path.join(ROOT, 'examples', 'makemore_composite.ts'));
    expect(canonical(printGraph(long.c.bwd, { locs: false }))).toBe(canonical(printGraph(composite.c.bwd, { locs: false })));
    // and the backward is the lecture's: cross-entropy and batchnorm fused, tanh from its output
    const text = printGraph(long.c.bwd, { locs: false });
    // FileCheck style: `%_` stands for any temporary
    const check = (pattern: string) => expect(text).toMatch(new RegExp(pattern.replace(/[[\]{}()]/g, '\\$&').replace(/%_/g, '%t\\d+')));
    check('%_: f32[32,27] = one_hot %Yb {depth=27}');
    check('%_: f32[32,27] = sub %probs, %_');
    check('%dlogits: f32[32,27] = mul %_, %_');
    check('%dh: f32[32,64] = matmul %dlogits, %W2 {transA=false, transB=true}');
    check('%dW2: f32[64,27] = matmul %h, %dlogits {transA=true, transB=false}');
    check('%dbnbias: f32[1,64] = sum %dhpreact {axes=[0], keepDims=true}');
    check('%_: f32[32,64] = mul %dhpreact, %bnraw');
    check('%dbngain: f32[1,64] = sum %_ {axes=[0], keepDims=true}');
    check('%dhprebn: f32[32,64] = mul %_, %_');
    check('%db1: f32[64] = sum %dhprebn {axes=[0], keepDims=false}');
    expect(text).not.toMatch(/= (exp|log|pow|max) /);
  });
});
