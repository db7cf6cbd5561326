// Symbolic dimensions: a model whose inputs name a dimension (`['B', 3]`) is built once and
// serves every batch size. Each call binds B from the inputs' lengths; the results equal those
// of static builds at that size and of the float64 interpreter; a call that disagrees on B
// throws; buffers grow for a larger B and are reused for a smaller one.

import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseGraph } from '../ir/parse.js';
import { printGraph } from '../ir/print.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { buildAndImport, buildBoth, finiteDiff, modelFile, randomArgs, reference, relErr, ROOT, run, tmp } from './helpers.js';

const EXAMPLES = ROOT.split(path.sep).join('/') + '/examples';

/** The lecture's network at inference (calibrated batchnorm statistics as inputs): no op couples the rows but the mean. */
const inference = (batch: string | number, name: string) =>
  modelFile(`import { LECTURE } from '${EXAMPLES}/makemore.ts';
import { makemoreInference } from '${EXAMPLES}/makemore_inference.ts';
export default makemoreInference({ ...LECTURE, batch: ${JSON.stringify(batch)} }, '${name}');
`);

/** The lecture's network in training mode with graphc's composite ops: batchnorm over the batch, cross-entropy. */
const training = (batch: string | number, name: string) =>
  modelFile(`import { model } from 'graphc';
export default model('${name}', (g) => {
  const C = g.param('C', [27, 10]);
  const W1 = g.param('W1', [30, 64], { scale: 0.3 });
  const b1 = g.param('b1', [64], { scale: 0.1 });
  const W2 = g.param('W2', [64, 27], { scale: 0.1 });
  const b2 = g.param('b2', [27], { scale: 0.1 });
  const bngain = g.param('bngain', [1, 64], { init: 'ones' });
  const bnbias = g.param('bnbias', [1, 64], { init: 'zeros' });
  const Xb = g.input('Xb', [${JSON.stringify(batch)}, 3], 'i32');
  const Yb = g.input('Yb', [${JSON.stringify(batch)}], 'i32');
  const emb = g.gather(C, Xb);
  const embcat = emb.reshape([${JSON.stringify(batch)}, -1]);
  const hprebn = embcat.matmul(W1).add(b1);
  const hpreact = g.batchNorm(hprebn, bngain, bnbias);
  const h = hpreact.tanh();
  const logits = h.matmul(W2).add(b2);
  const loss = g.crossEntropy(logits, Yb);
  const probs = g.softmax(logits);
  return { loss, probs };
});
`);

/** Inputs for a batch of n: indices, and for the inference network positive variances. */
function argsFor(fwd: Parameters<typeof randomArgs>[0], n: number, seed: number): { params: Arrays; inputs: Arrays } {
  const a = randomArgs(fwd, seed, 0.5, { B: n });
  if (a.inputs.bnvar) a.inputs.bnvar = (a.inputs.bnvar as Float32Array).map(Math.abs);
  return a;
}

function expectSame(got: { loss: number; grads: Record<string, Float32Array> }, want: { loss: number; grads: Record<string, ArrayLike<number>> }, what: string, tol = 1e-5) {
  expect(relErr([got.loss], [want.loss]), `${what}: loss`).toBeLessThan(tol);
  for (const k of Object.keys(want.grads)) expect(relErr(got.grads[k]!, want.grads[k]!), `${what}: d loss / d ${k}`).toBeLessThan(tol * 10);
}

describe('symbolic dimensions', () => {
  it('one build serves B = 1, 7, 32 and 1000: the static builds and the float64 interpreter agree', async () => {
    const sym = await buildAndImport(inference('B', 'inf_sym'));
    expect(sym.mod.spec.inputs.Xb!.shape).toEqual(['B', 3]);
    expect(sym.mod.spec.outputs.probs!.shape).toEqual(['B', 27]);
    for (const n of [1, 7, 32, 1000]) {
      const { params, inputs } = argsFor(sym.c.fwd, n, n);
      const stat = await buildAndImport(inference(n, `inf_${n}`));
      const ref = reference(sym.c.fwd, sym.c.bwd, params, inputs);
      const got = sym.mod.valueAndGrad(params, inputs);
      const gotCopy = { loss: got.loss, grads: Object.fromEntries(Object.entries(got.grads).map(([k, v]) => [k, Float32Array.from(v)])) };
      expectSame(gotCopy, { loss: ref.outputs.loss!.data[0]!, grads: ref.grads }, `B = ${n} vs the interpreter`);
      expectSame(gotCopy, stat.mod.valueAndGrad(params, inputs), `B = ${n} vs the static build`);
      const probs = sym.mod.forward(params, inputs).probs as Float32Array;
      expect(probs.length).toBe(n * 27);
      expect(relErr(probs, stat.mod.forward(params, inputs).probs as Float32Array), `B = ${n}: probs`).toBeLessThan(1e-6);
    }
  });

  it('batchnorm and cross-entropy use the bound size (1/n, Bessel n − 1): interpreter and finite differences', async () => {
    const { c, mod } = await buildAndImport(training('B', 'train_sym'));
    expect(printGraph(c.fwd)).toMatch(/%bnraw: f32\[B,64\] = bn_apply /); // the lecture's batchnorm, fused as for a static batch
    expect(printGraph(c.fwd)).toMatch(/%loss: f32\[\] = xent %logits, %Yb/);
    for (const n of [7, 32, 1000]) {
      const { params, inputs } = argsFor(c.fwd, n, 100 + n);
      const ref = reference(c.fwd, c.bwd, params, inputs);
      expectSame(mod.valueAndGrad(params, inputs), { loss: ref.outputs.loss!.data[0]!, grads: ref.grads }, `B = ${n}`);
      const fd = [0, 5, 17].map((i) => finiteDiff(c.fwd, params, inputs, 'W1', i));
      expect(relErr([0, 5, 17].map((i) => ref.grads.W1![i]!), fd), `B = ${n}: float64 dW1 vs finite differences`).toBeLessThan(1e-5);
    }
    const stat = await buildAndImport(training(7, 'train_7'));
    const { params, inputs } = argsFor(c.fwd, 7, 3);
    expectSame(mod.valueAndGrad(params, inputs), stat.mod.valueAndGrad(params, inputs), 'B = 7 vs the static build');
  });

  it('the tiny GPT with a symbolic batch: attention over [B, heads, t, t], layer norm and a loss at every position, as the static build', async () => {
    const gpt = (batch: string | number, name: string) =>
      modelFile(`import { gpt, GPT } from '${EXAMPLES}/gpt.ts';\nexport default gpt({ ...GPT, batch: ${JSON.stringify(batch)} }, '${name}');\n`);
    const sym = await buildAndImport(gpt('B', 'gpt_sym'));
    expect(sym.mod.spec.inputs.X!.shape).toEqual(['B', 8]);
    expect(printGraph(sym.c.fwd)).toMatch(/%att: f32\[B,4,8,8\] = softmax %scores \{axis=3\}/);
    for (const n of [3, 16]) {
      const { params, inputs } = argsFor(sym.c.fwd, n, 40 + n);
      const ref = reference(sym.c.fwd, sym.c.bwd, params, inputs);
      const got = sym.mod.valueAndGrad(params, inputs);
      const gotCopy = { loss: got.loss, grads: Object.fromEntries(Object.entries(got.grads).map(([k, v]) => [k, Float32Array.from(v)])) };
      expectSame(gotCopy, { loss: ref.outputs.loss!.data[0]!, grads: ref.grads }, `B = ${n} vs the interpreter`);
      const stat = await buildAndImport(gpt(n, `gpt_${n}`));
      expectSame(gotCopy, stat.mod.valueAndGrad(params, inputs), `B = ${n} vs the static build`);
    }
  });

  it('grows its buffers for a larger B and reuses them for a smaller one, with the same results', async () => {
    const { c, mod } = await buildAndImport(training('B', 'grow'));
    const loss = (n: number) => {
      const { params, inputs } = argsFor(c.fwd, n, 7);
      return mod.valueAndGrad(params, inputs).loss;
    };
    const first = [loss(7), loss(1000), loss(32)];
    expect([loss(7), loss(1000), loss(32), loss(7)]).toEqual([...first, first[0]]);
  });

  it('prints and parses back symbolic types and shape attributes', async () => {
    const { c } = await buildAndImport(training('B', 'ir_sym'));
    for (const g of [c.fwd, c.bwd]) {
      const text = printGraph(g);
      expect(printGraph(parseGraph(text))).toBe(text);
    }
    const text = printGraph(c.fwd);
    expect(text).toContain('%Xb: i32[B,3] = input {name="Xb"}');
    expect(text).toContain('%embcat: f32[B,30] = reshape %emb {shape=["B", -1]}');
    expect(text).toMatch(/= dim \{name="B"\}/);
  });

  it('a call whose inputs disagree on B throws, naming the tensors and sizes', async () => {
    const { c, mod } = await buildAndImport(training('B', 'mixed'));
    const { params, inputs } = argsFor(c.fwd, 5, 1);
    expect(() => mod.valueAndGrad(params, { ...inputs, Yb: new Int32Array(7) })).toThrow(
      new RangeError("mixed: input 'Yb' must have 5 elements (i32[B], with B = 5 from input 'Xb'), got 7"),
    );
    expect(() => mod.valueAndGrad(params, { ...inputs, Xb: new Int32Array(16) })).toThrow(
      new RangeError("mixed: input 'Xb' has 16 elements, which is not B × 3 (i32[B,3]) for any B ≥ 1"),
    );
    expect(() => mod.forward(params, { ...inputs, Xb: new Int32Array(0), Yb: new Int32Array(0) })).toThrow(
      new RangeError("mixed: input 'Xb' has 0 elements, which is not B × 3 (i32[B,3]) for any B ≥ 1"),
    );
  });

  it('build errors: a dimension no input binds, a named dimension in a param, an invalid name, narrowing a symbolic axis', async () => {
    const bad = (body: string) =>
      modelFile(`import { model } from 'graphc';
export default model('bad', (g) => {
${body}
});
`);
    const unbound = bad(`  const x = g.input('x', ['B', 'T']);\n  return x.sum();`);
    expect((await run(['build', unbound, '--out', path.join(tmp(), 'o')])).err).toBe(
      `${path.relative(ROOT, unbound)}:3:15: error: input 'x' f32[B,T]: the size of B and T cannot be bound from the inputs' lengths\n` +
        "  3 |   const x = g.input('x', ['B', 'T']);\n" +
        '    |               ^^^^^\n' +
        "  fix: a call binds a dimension from an input whose other dimensions are known: declare one where it is the only named dimension (e.g. ['B', 3])\n",
    );
    // (the type checker rejects it first; past it, the DSL does)
    const param = bad(`  const w = g.param('w', ['B'] as unknown as number[]);\n  return w.sum();`);
    const r = await run(['build', param, '--out', path.join(tmp(), 'o')]);
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toBe(`${path.relative(ROOT, param)}:3:15: error: param: a param's shape is fixed at build time, got ["B"]`);
    const name = bad(`  const x = g.input('x', ['n', 3]);\n  return x.sum();`);
    expect((await run(['build', name, '--out', path.join(tmp(), 'o')])).err.split('\n')[0]).toBe(
      `${path.relative(ROOT, name)}:3:15: error: input: 'n' cannot name a dimension`,
    );
    const narrowB = bad(`  const x = g.input('x', ['B', 3]);\n  return x.narrow(0, 0, 1).sum();`);
    expect((await run(['build', narrowB, '--out', path.join(tmp(), 'o')])).err.split('\n')[0]).toBe(
      `${path.relative(ROOT, narrowB)}:4:12: error: narrow: axis 0 of f32[B,3] has the symbolic size B`,
    );
  });

  it('tensor.dims names symbolic dimensions; tensor.shape, all numbers, is an error on them', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('dims', (g) => {
  const x = g.input('x', ['B', 2, 3]);
  const y = x.reshape([x.dims[0]!, -1]);
  if (JSON.stringify(y.dims) !== '["B",6]') throw new Error(JSON.stringify(y.dims));
  const n = y.shape[0];
  return y.sum().mul(n);
});
`);
    const r = await run(['build', file, '--out', path.join(tmp(), 'o')]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `${path.relative(ROOT, file)}:6:15: error: shape: f32[B,6] has a symbolic dimension, whose size is not known at build time\n` +
        '  6 |   const n = y.shape[0];\n' +
        '    |               ^^^^^\n' +
        "  fix: read tensor.dims, whose entries are sizes or the names of symbolic dimensions (['B', 30])\n",
    );
  });

  it('a value named like a dimension is renamed; the emitted loops use the dimension', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('named', (g) => {
  const w = g.param('w', [3]);
  const B = w.square();
  const x = g.input('x', ['B', 3]);
  return x.mul(B).sum();
});
`);
    const { c, mod } = await buildAndImport(file);
    expect(printGraph(c.fwd)).toContain('%B_1: f32[3] = square %w');
    const m = mod as GeneratedModule;
    const params = { w: Float32Array.from([1, 2, 3]) };
    expect(m.valueAndGrad(params, { x: Float32Array.from([1, 1, 1, 2, 2, 2]) }).loss).toBeCloseTo(3 * 14, 4);
    expect(Array.from(m.valueAndGrad(params, { x: Float32Array.from([1, 1, 1]) }).grads.w!)).toEqual([2, 4, 6]);
  });

  // Found by stress-testing symbolic shapes: each was a wrong result, a NaN or a crash.
  const REGRESSIONS: Record<string, string> = {
    // softmax along an axis whose inner size is a product with B: i / B * 2 lacked parentheses
    softmaxInnerSymbolic: `const x = g.input('x', [3, 'B', 2]); const w = g.param('w', [2]); const p = g.softmax(x.mul(w), 0); return { loss: p.mul(x).sum(), p };`,
    // a GPU kernel over [2, B, 3] found its thread's position with _x / B * 3
    gpuPositionSymbolic: `const x = g.input('x', ['B', 2, 3]); const w = g.param('w', [3]); const o = x.transpose([1, 0, 2]).mul(w).tanh(); return { loss: o.sum(), o };`,
    // static too: an operand of lower rank in the epilogue of a keepDims reduction was read along the wrong axis
    keepDimsEpilogue: `const x = g.input('x', ['B', 2, 3]); const v = g.param('v', [2, 1]); const t = x.sum(2, true).mul(v); return { loss: t.sum(), t };`,
    // static too: GPU.js results that are views (a reshaped gradient, a reshaped loss) were not declared
    gpuGradientView: `const x = g.input('x', ['B', 3, 4]); const v = g.param('v', [3, 1]); return { loss: x.mul(v).sum() };`,
    gpuLossView: `const x = g.input('x', ['B', 3]); const w = g.param('w', [1, 1]); return { loss: x.sum([0, 1], true).mul(w).sum() };`,
  };
  it.each(Object.keys(REGRESSIONS))('%s: the flat module matches the interpreter, the GPU.js module (cpu) the flat one', async (name) => {
    const file = modelFile(`import { model } from 'graphc';\nexport default model('${name}', (g) => {\n  ${REGRESSIONS[name]}\n});\n`);
    const { c, flat, gpu } = await buildBoth(file);
    const model = await gpu.create({ mode: 'cpu' });
    try {
      for (const n of [1, 3]) {
        const { params, inputs } = argsFor(c.fwd, n, 20 + n);
        const ref = reference(c.fwd, c.bwd, params, inputs);
        const got = flat.valueAndGrad(params, inputs);
        const copy = { loss: got.loss, grads: Object.fromEntries(Object.entries(got.grads).map(([k, v]) => [k, Float32Array.from(v)])) };
        expectSame(copy, { loss: ref.outputs.loss!.data[0]!, grads: ref.grads }, `B = ${n} vs the interpreter`);
        const outs = flat.forward(params, inputs);
        for (const [k, v] of Object.entries(ref.outputs)) expect(relErr(typeof outs[k] === 'number' ? [outs[k] as number] : (outs[k] as Float32Array), v.data), `B = ${n}: output ${k}`).toBeLessThan(1e-5);
        expectSame(await model.valueAndGrad(params, inputs), copy, `B = ${n}: GPU.js vs flat`, 1e-4);
      }
    } finally {
      model.destroy();
    }
  });

  it('names the generated code uses cannot name a dimension', async () => {
    for (const d of ['stage', 'kernel', 'buf', 'args', 'gpu']) {
      const file = modelFile(`import { model } from 'graphc';\nexport default model('m', (g) => {\n  const x = g.input('x', ['${d}', 3]);\n  return x.sum();\n});\n`);
      expect((await run(['build', file, '--out', path.join(tmp(), 'o')])).err.split('\n')[0]).toBe(`${path.relative(ROOT, file)}:3:15: error: input: '${d}' cannot name a dimension`);
    }
  });
});
