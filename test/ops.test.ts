// Every op of the op table: the generated code's forward values and gradients against the
// float64 interpreter, and the interpreter's gradients against central finite differences,
// over random shapes with broadcasting. Ops without a DSL surface are compiled from IR text.

import { describe, expect, it } from 'vitest';
import type { Graph } from '../ir/graph.js';
import { OPS } from '../ir/ops.js';
import type { OpKind } from '../ir/ops.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { traceFile } from '../src/build.js';
import { buildAndImport, buildIR, finiteDiff, modelFile, randomArgs, reference, relErr, rng } from './helpers.js';

type Rand = () => number;
const dim = (r: Rand) => 1 + Math.floor(r() * 5);
const pickOne = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const S = (s: readonly number[]) => `[${s.join(', ')}]`;

/** A broadcasting partner for shape s: equal, a suffix, with 1s, or a scalar. */
function partner(r: Rand, s: number[]): number[] {
  return pickOne(r, [s, s.slice(1), s.map((d, i) => (i === 0 ? 1 : d)), s.map((d, i) => (i === s.length - 1 ? 1 : d)), []]);
}

/** DSL model bodies: `y` is the value under test; the loss is sum(y · R) for a random input R. */
const DSL: Record<string, (r: Rand) => string> = {
  neg: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.neg();`,
  exp: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.exp();`,
  log: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.square().add(0.5).log();`,
  tanh: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.tanh();`,
  sigmoid: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.sigmoid();`,
  relu: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.relu();`,
  sqrt: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.square().add(0.5).sqrt();`,
  abs: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.abs();`,
  sin: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.mul(2).sin();`,
  cos: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.mul(2).cos();`,
  erf: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.erf();`,
  log1p: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.square().log1p();`,
  expm1: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.expm1();`,
  ...Object.fromEntries(
    (['add', 'sub', 'mul', 'maximum', 'minimum'] as const).map((op) => [
      op,
      (r: Rand) => {
        const s = [dim(r), dim(r), dim(r)];
        const [sa, sb] = r() < 0.5 ? [s, partner(r, s)] : [partner(r, s), s];
        return `const a = g.param('a', ${S(sa)}); const b = g.param('b', ${S(sb)}); const y = a.${op}(b);`;
      },
    ]),
  ),
  div: (r) => {
    const s = [dim(r), dim(r)];
    return `const a = g.param('a', ${S(s)}); const b = g.param('b', ${S(partner(r, s))}); const y = a.div(b.square().add(0.5));`;
  },
  pow: (r) => {
    const s = [dim(r), dim(r)];
    return `const a = g.param('a', ${S(s)}); const b = g.param('b', ${S(partner(r, s))}); const y = a.square().add(0.5).pow(b);`;
  },
  scalar_operand: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.mul(3).sub(1).div(2).pow(2);`,
  sum: (r) => {
    const s = [dim(r), dim(r), dim(r)];
    const axis = pickOne(r, ['', '0', '1', '-1', '[0, 2]']);
    return `const a = g.param('a', ${S(s)}); const y = a.sum(${axis}${axis && r() < 0.5 ? ', true' : ''});`;
  },
  mean: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.mean(${pickOne(r, ['', '0', '1', '[0, 1]'])});`,
  // a mean over a symbolic dimension divides by its bound size (the dim op); checks bind B = 5
  dim: (r) => `const x = g.input('x', ['B', ${dim(r)}]); const a = g.param('a', [1, ${dim(r)}]); const y = x.sum(1, true).mul(a).mean(0);`,
  max: (r) => `const a = g.param('a', ${S([dim(r), dim(r), dim(r)])}); const y = a.max(${pickOne(r, ['undefined', '0', '1', '2', '[0, 2]'])}, ${r() < 0.5});`,
  matmul: (r) => {
    const [m, k, n] = [dim(r), dim(r), dim(r)];
    return `const a = g.param('a', [${m}, ${k}]); const b = g.param('b', [${k}, ${n}]); const y = a.matmul(b);`;
  },
  matmul_batched: (r) => {
    const [t, m, k, n] = [dim(r), dim(r), dim(r), dim(r)];
    return `const a = g.param('a', [${t}, ${m}, ${k}]); const b = g.param('b', [${k}, ${n}]); const y = a.matmul(b);`;
  },
  matmul_batched_both: (r) => {
    const [t, m, k, n] = [dim(r), dim(r), dim(r), dim(r)];
    return `const a = g.param('a', [${t}, ${m}, ${k}]); const b = g.param('b', [${t}, ${k}, ${n}]); const y = a.matmul(b);`;
  },
  transpose: (r) => `const a = g.param('a', ${S([dim(r), dim(r), dim(r)])}); const y = a.transpose(${pickOne(r, ['', '[2, 0, 1]', '[1, 0, 2]'])});`,
  reshape: (r) => {
    const [p, q] = [dim(r), dim(r)];
    return `const a = g.param('a', [${p}, ${q}, 2]); const y = a.reshape([-1, ${p * 2}]).tanh();`;
  },
  stopGradient: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.mul(a.stopGradient());`,
  const: (r) => `const a = g.param('a', [2, 3]); const y = a.mul(g.const([[1, -2, 3], [0.5, 0, -1]])).add(g.const(${r().toFixed(2)}));`,
  gather: (r) => `const C = g.param('C', [${dim(r) + 2}, ${dim(r)}]); const ix = g.input('ix', ${S([dim(r), dim(r)])}, 'i32'); const y = g.gather(C, ix);`,
  pick: (r) => {
    const n = dim(r);
    return `const a = g.param('a', [${n}, ${dim(r) + 1}]); const ix = g.input('ix', [${n}], 'i32'); const y = g.pick(a, ix);`;
  },
  oneHot: (r) => {
    const n = dim(r);
    return `const a = g.param('a', [${n}, 4]); const ix = g.input('ix', [${n}], 'i32'); const y = g.oneHot(ix, 4).mul(a);`;
  },
  concat: (r) => {
    const [m, n] = [dim(r), dim(r)];
    return r() < 0.5
      ? `const a = g.param('a', [${m}, ${n}]); const b = g.param('b', [${dim(r)}, ${n}]); const y = g.concat([a, b, a], 0);`
      : `const a = g.param('a', [${m}, ${n}]); const b = g.param('b', [${m}, ${dim(r)}]); const y = g.concat([a, b], 1);`;
  },
  softmax: (r) => `const a = g.param('a', ${S([dim(r), dim(r) + 1])}); const y = g.softmax(a, ${pickOne(r, ['-1', '0'])});`,
  logSoftmax: (r) => `const a = g.param('a', ${S([dim(r), dim(r) + 1])}); const y = g.logSoftmax(a);`,
  crossEntropy: (r) => {
    const n = dim(r);
    return `const a = g.param('a', [${n}, ${dim(r) + 1}]); const ix = g.input('ix', [${n}], 'i32'); const y = g.crossEntropy(a, ix);`;
  },
  batchNorm: (r) => {
    const f = dim(r);
    return `const a = g.param('a', [${dim(r) + 2}, ${f}]); const gain = g.param('gain', [${f}]); const bias = g.param('bias', [1, ${f}]); const y = g.batchNorm(a, gain, bias);`;
  },
  // a window of one axis (an RNN's timestep, a sequence's last position), fed on to two consumers
  narrow: (r) => {
    const s = [dim(r) + 1, dim(r) + 2, dim(r)];
    const axis = pickOne(r, [0, 1, 2, -1, -2]);
    const size = s.at(axis)!;
    const start = Math.floor(r() * size);
    const length = 1 + Math.floor(r() * (size - start));
    return `const a = g.param('a', ${S(s)}); const w = a.narrow(${axis}, ${start}, ${length}); const y = w.tanh().add(w.square());`;
  },
  // layer norm over the last axis, of a [c] vector, an [n, c] matrix or an [n, t, c] tensor
  layerNorm: (r) => {
    const c = dim(r) + 1;
    const shape = pickOne(r, [[c], [dim(r), c], [dim(r), dim(r), c]]);
    return `const a = g.param('a', ${S(shape)}); const gain = g.param('gain', [${c}]); const bias = g.param('bias', [${c}]); const y = g.layerNorm(a, gain, bias);`;
  },
  // convolutions and pooling (every form on every target: test/conv.test.ts)
  conv2d: (r) => `const x = g.param('x', [2, 2, ${dim(r) + 3}, ${dim(r) + 3}]); const w = g.param('w', [3, 2, 3, 2]); const y = g.conv2d(x, w, { stride: ${1 + Math.floor(r() * 2)}, padding: 1 });`,
  conv1d: (r) => `const x = g.param('x', [2, 2, ${dim(r) + 4}]); const w = g.param('w', [2, 1, 3]); const y = g.conv1d(x, w, { groups: 2, dilation: 2 });`,
  maxPool2d: (r) => `const x = g.param('x', [2, 2, ${dim(r) + 2}, ${dim(r) + 2}]); const y = g.maxPool2d(x, 2, { stride: 1 });`,
  avgPool2d: (r) => `const x = g.param('x', [2, 2, ${dim(r) + 2}, ${dim(r) + 2}]); const y = g.avgPool2d(x, 3, { stride: 2, padding: 1 });`,
  // max pooling's gradient differentiated again: max_pool_pick, max_pool_grad's adjoint
  maxPool2dTwice: (r) => `const x = g.param('x', [1, 2, ${dim(r) + 3}, ${dim(r) + 3}]); const [dx] = g.grad(g.maxPool2d(x, 3, { stride: 2, padding: 1 }).square().sum(), [x]); const y = dx.mul(x);`,
  hingeLoss: (r) => {
    const n = dim(r);
    return `const a = g.param('a', [${n}, ${dim(r) + 1}]); const ix = g.input('ix', [${n}], 'i32'); const y = g.hingeLoss(a, ix, 0.5);`;
  },
  // the index primitives: the indices pick values (no gradient flows through them)
  argmax: (r) => {
    const [n, c] = [dim(r), dim(r) + 1];
    return `const a = g.param('a', [${n}, ${c}]); const y = g.pick(a, a.argmax(1)).add(g.oneHot(a.argmin(-1), ${c}).mul(a).sum(1));`;
  },
  cumsum: (r) => `const a = g.param('a', ${S([dim(r), dim(r), dim(r)])}); const y = a.cumsum(${pickOne(r, ['0', '1', '-1'])}).tanh();`,
  flip: (r) => `const a = g.param('a', ${S([dim(r), dim(r), dim(r)])}); const y = a.flip(${pickOne(r, ['0', '[1, 2]', '-1', '[0, 1, 2]'])}).mul(a);`,
  arange: (r) => {
    const n = dim(r);
    return `const a = g.param('a', [${n}, ${n}]); const i = g.arange(${n}); const y = i.unsqueeze(1).ge(i.unsqueeze(0)).mul(a).add(i.lt(g.const([${n - 1}], 'i32')).mul(a));`;
  },
  float: (r) => {
    const n = dim(r);
    return `const a = g.param('a', [2, ${n}]); const ix = g.input('ix', [2, ${n}], 'i32'); const y = a.mul(ix.float()).add(g.arange(${n}).float().mul(a));`;
  },
  // a custom gradient equal to the true one (tanh' = 1 − y²), so that finite differences agree
  customGrad: (r) =>
    `const a = g.param('a', ${S([dim(r), dim(r)])}); const f = g.customGrad((x) => x.tanh(), ([x], t, dy) => [dy.mul(t.square().neg().add(1))]); const y = f(a.mul(2));`,
  // a scan (a loop on every target; test/scan.test.ts holds it against the unrolled loop): a carry, two xs, a closed-over param
  scan: (r) => {
    const [t, n, m] = [dim(r), dim(r), dim(r)];
    return `const a = g.param('a', [${t}, ${n}, ${m}]); const w = g.param('w', [${m}]); const c0 = g.param('c0', [${n}, ${m}]);
  const [c, ys] = g.scan((c, [x, z]) => { const c2 = c.mul(x.tanh()).add(z.mul(w)); return [c2, c2.sum(1)]; }, c0, [a, a.square()], { reverse: ${r() < 0.5} });
  const y = c.add(ys.sum(0, true).transpose().mean());`;
  },
};

/** Forward IR of the ops that have no DSL surface of their own. */
const IR: Record<string, string> = {
  slice_pad: `graph forward slice_pad {
  %a: f32[4,5] = param {name="a", init="randn", scale=1}
  %s: f32[2,3] = slice %a {starts=[1, 2], sizes=[2, 3]}
  %y: f32[3,6] = pad %s {starts=[1, 2], shape=[3, 6]}
  %R: f32[3,6] = input {name="R"}
  %z: f32[3,6] = mul %y, %R
  %loss: f32[] = sum %z {axes=[0, 1], keepDims=false}
  return loss=%loss
}`,
  scatter_add: `graph forward scatter_add {
  %a: f32[6,3] = param {name="a", init="randn", scale=1}
  %ix: i32[6] = input {name="ix"}
  %C: f32[4,3] = param {name="C", init="randn", scale=1}
  %g: f32[6,3] = gather %C, %ix
  %t: f32[6,3] = mul %a, %g
  %y: f32[4,3] = scatter_add %ix, %t {shape=[4, 3]}
  %R: f32[4,3] = input {name="R"}
  %z: f32[4,3] = mul %y, %R
  %loss: f32[] = sum %z {axes=[0, 1], keepDims=false}
  return loss=%loss
}`,
  masks: `graph forward masks {
  %a: f32[3,4] = param {name="a", init="randn", scale=1}
  %b: f32[4] = param {name="b", init="randn", scale=1}
  %m: f32[3,4] = gt %a, %b
  %n: f32[3,4] = ge %b, %a
  %k: f32[3,4] = argmax_mask %a {axes=[1]}
  %mn: f32[3,4] = add %m, %n
  %mk: f32[3,4] = add %mn, %k
  %bb: f32[3,4] = broadcast %b {shape=[3, 4]}
  %y: f32[3,4] = mul %mk, %bb
  %u: f32[4,4] = matmul %y, %a {transA=true, transB=false}
  %v: f32[3,3] = matmul %a, %y {transA=false, transB=true}
  %q: f32[4,3] = param {name="q", init="randn", scale=1}
  %w: f32[3,3] = matmul %q, %y {transA=true, transB=true}
  %s1: f32[] = sum %u {axes=[0, 1], keepDims=false}
  %s2: f32[] = sum %v {axes=[0, 1], keepDims=false}
  %s3: f32[] = sum %w {axes=[0, 1], keepDims=false}
  %s12: f32[] = add %s1, %s2
  %loss: f32[] = add %s12, %s3
  return loss=%loss
}`,
};

function source(name: string, body: string): string {
  return `import { model } from 'graphc';
export default model('${name}', (g) => {
  ${body}
  const R = g.input('R', y.shape);
  return { loss: y.mul(R).sum(), y };
});
`;
}

/**
 * `fdScale`: what the gradient is relative to the true derivative. stopGradient(a)·a has
 * gradient a, half the derivative 2a that finite differences see.
 */
async function check(c: { fwd: Graph; bwd: Graph }, mod: GeneratedModule, seed: number, fdScale = 1): Promise<void> {
  const { params, inputs } = randomArgs(c.fwd, seed, 1, { B: 5 });
  const ref = reference(c.fwd, c.bwd, params, inputs);
  const { loss, grads } = mod.valueAndGrad(params, inputs);
  expect(relErr([loss], ref.outputs.loss!.data), 'loss').toBeLessThan(1e-5);
  for (const [k, gr] of Object.entries(grads)) {
    expect(relErr(gr, ref.grads[k]!), `generated d loss / d ${k}`).toBeLessThan(1e-4);
    const r = rng(seed);
    const idx = Array.from({ length: Math.min(6, gr.length) }, (_, i) => (gr.length <= 6 ? i : Math.floor(r() * gr.length)));
    const fd = idx.map((i) => fdScale * finiteDiff(c.fwd, params, inputs, k, i));
    expect(relErr(idx.map((i) => ref.grads[k]![i]!), fd), `float64 d loss / d ${k} vs finite differences`).toBeLessThan(1e-5);
  }
}

const seen = new Set<OpKind>();
const note = (g: Graph) => g.insts.forEach((i) => seen.add(i.op));

describe('op table', () => {
  for (const [name, body] of Object.entries(DSL))
    it.each([1, 2, 3])(`${name} (shapes from seed %i)`, async (seed) => {
      const text = source(`op_${name}`, body(rng(seed * 7919 + name.length)));
      const file = modelFile(text);
      const { c, mod } = await buildAndImport(file);
      // custom_grad lives only until the reverse pass: it is in the traced graph
      if (name === 'customGrad' || name === 'scan') note(traceFile(file).traced.graph);
      note(c.fwd);
      note(c.bwd);
      await check(c, mod, seed, name === 'stopGradient' ? 0.5 : 1);
    });

  for (const [name, text] of Object.entries(IR))
    it(`${name} (from IR)`, async () => {
      const { c, mod } = await buildIR(text);
      note(c.fwd);
      note(c.bwd);
      await check(c, mod, 5);
    });

  it('training mode: dropout masks, the mode flag, buffers and select (batchNorm with running statistics)', async () => {
    const file = modelFile(source('op_modes', `const a = g.param('a', [6, 4]); const gain = g.param('gain', [4]); const bias = g.param('bias', [4]);
  const h = g.dropout(a.tanh(), 0.25);
  const y = g.batchNorm(h, gain, bias, { momentum: 0.1, name: 'bn' });`));
    const { c, mod } = await buildAndImport(file);
    note(c.fwd);
    note(c.bwd);
    const { params, inputs } = randomArgs(c.fwd, 5);
    const buffers = (mod as unknown as { initBuffers(): Record<string, Float32Array> }).initBuffers();
    const buffers64 = Object.fromEntries(Object.entries(buffers).map(([k, v]) => [k, Float64Array.from(v)]));
    const vals = interpret(c.fwd, { params, inputs, train: true, seed: 3, buffers: buffers64 });
    const bv = interpret(c.bwd, { fwd: vals });
    const { loss, grads } = (mod.valueAndGrad as (p: Arrays, i: Arrays, o: object) => { loss: number; grads: Record<string, Float32Array> })(params, inputs, { seed: 3, buffers });
    expect(relErr([loss], outputsOf(c.fwd, vals).loss!.data), 'loss').toBeLessThan(1e-5);
    for (const o of c.bwd.outputs) expect(relErr(grads[o.name]!, bv.get(c.bwd.value(o.value).name)!.data), `d loss / d ${o.name}`).toBeLessThan(1e-4);
  });

  it('covers every op of the table', () => {
    const missing = (Object.keys(OPS) as OpKind[]).filter((k) => !seen.has(k));
    expect(missing).toEqual([]);
  });
});

// Regressions the graph fuzzer found: each compiled to a module that read a buffer nothing wrote.
const EDGE_CASES: Record<string, string> = {
  // a reduction over no axes, or over size-1 axes only, is x itself (or a reshape of it)
  emptyAxes: `const x = g.param('x', [3, 2]); const s = g.param('s', []); const y = x.sum([]).mul(s.sum()).add(s.max().mean());`,
  sizeOneAxes: `const x = g.param('x', [3, 1, 2]); const y = x.sum(1, true).mul(x.max(-2, true)).add(x.mean(1).reshape([3, 1, 2]));`,
  softmaxSizeOne: `const x = g.param('x', [4, 1]); const y = g.softmax(x).add(g.logSoftmax(x, 1)).mul(x);`,
  // a reshape of a constant: the backward of batchnorm reshapes a constant gain, and constants
  // of more than 64 elements are not folded
  constGain: `const x = g.param('x', [4, 2]); const b = g.param('b', [1, 2]); const y = g.batchNorm(x, g.const([0.5, 2]), b);`,
  bigConst: `const x = g.param('x', [9, 9]); const y = x.mul(g.const(Array.from({ length: 81 }, (_, i) => i / 81)).reshape([9, 9]));`,
  // the cross-entropy rule's softmax is a forward value (the long-form softmax) whose read comes
  // later in the backward graph: reusing it must move the read up (found by the graph fuzzer)
  reuseLaterRead: `const p1 = g.param('p1', [2, 1]); const p2 = g.param('p2', [2, 1]); const v3 = g.concat([p1.div(6), p2, p1], 1);
  const v5 = v3.sub(v3.max(1, true)).exp(); const v6 = v5.mul(v5.sum(1, true).pow(-1));
  const i0 = g.input('i0', [2], 'i32'); const y = v6.add(g.crossEntropy(v3, i0).div(3));`,
  // transposes that matmul flags absorb (fold-transposes), and the one they must not: a
  // transposed batched A against a 2-D B
  tiedHead: `const W = g.param('W', [5, 4]); const h = g.param('h', [3, 4]); const y = h.matmul(W.transpose());`,
  attention: `const q = g.param('q', [2, 3, 4]); const k = g.param('k', [2, 3, 4]); const y = q.matmul(k.transpose());`,
  batchedTiedHead: `const W = g.param('W', [5, 4]); const h = g.param('h', [2, 3, 4]); const y = h.matmul(W.transpose());`,
  productTransposed: `const a = g.param('a', [3, 4]); const b = g.param('b', [4, 2]); const y = a.matmul(b).transpose().add(b.transpose().matmul(a.transpose())).add(a.transpose().matmul(a).sum(1, true).transpose().matmul(b).sum());`,
  batchedTransposedA: `const x = g.param('x', [2, 4, 3]); const w = g.param('w', [4, 5]); const y = x.transpose().matmul(w);`,
  // the lecture's BatchNorm1d on [n, t, f] (statistics over n·t rows), as the composite and
  // written out; a loss at every position of a sequence
  batchNorm3d: `const x = g.param('x', [3, 2, 4]); const gain = g.param('gain', [4]); const bias = g.param('bias', [4]); const y = g.batchNorm(x, gain, bias).tanh();`,
  batchNorm3dLongForm: `const x = g.param('x', [3, 2, 4]); const mu = x.sum([0, 1], true).mul(1 / 6); const d = x.sub(mu);
  const y = d.mul(d.pow(2).sum([0, 1], true).mul(1 / 5).add(1e-5).pow(-0.5)).tanh();`,
  crossEntropy3d: `const x = g.param('x', [2, 3, 5]); const t = g.input('t', [2, 3], 'i32'); const y = g.crossEntropy(x, t);`,
  // layer norm over the last axis, as the composite and written out as transformers write it
  layerNorm3d: `const x = g.param('x', [3, 2, 4]); const gain = g.param('gain', [4]); const bias = g.param('bias', [4]); const y = g.layerNorm(x, gain, bias).tanh();`,
  layerNormLongForm: `const x = g.param('x', [3, 2, 4]); const mu = x.mean(-1, true); const d = x.sub(mu);
  const y = d.mul(d.square().mean(-1, true).add(1e-5).pow(-0.5)).tanh();`,
};

describe('edge cases', () => {
  for (const [name, body] of Object.entries(EDGE_CASES))
    it(name, async () => {
      const { c, mod } = await buildAndImport(modelFile(source(`edge_${name}`, body)));
      await check(c, mod, 11);
    });

  it('recognises batchnorm over the rows of [n, t, f], layer norm over its last axis and cross-entropy over [n, t, classes]', async () => {
    const cases = [['batchNorm3d', 'bn_apply'], ['batchNorm3dLongForm', 'bn_apply'], ['crossEntropy3d', 'xent'], ['layerNorm3d', 'ln_apply'], ['layerNormLongForm', 'ln_apply']] as const;
    for (const [name, op] of cases) {
      const { c } = await buildAndImport(modelFile(source(`edge_${name}`, EDGE_CASES[name]!)));
      expect(c.fwd.insts.map((i) => i.op), name).toContain(op);
    }
  });

  it('leaves near misses of batchnorm and layer norm in long form: a variance over other axes, an unbiased one over the last axis; the biased variance over 32,768 rows is torch\'s batchnorm (correction 0), not the lecture\'s', async () => {
    // 1/n and 1/(n − 1) differ by about 1/n²: the Bessel check must not be an absolute tolerance
    const biasedLarge = `const x = g.input('x', [256, 128, 4]); const w = g.param('w', [4, 4]); const h = x.matmul(w);
  const mu = h.mean([0, 1], true); const d = h.sub(mu); const y = d.mul(d.square().mean([0, 1], true).add(1e-5).pow(-0.5));`;
    const biased = (await buildAndImport(modelFile(source('near_biasedLarge', biasedLarge)))).c;
    expect(biased.fwd.insts.filter((i) => i.op === 'bn_apply').map((i) => i.attrs)).toEqual([{ correction: 0 }]);
    const nearMisses = {
      otherAxes: `const x = g.param('x', [3, 2, 4]); const mu = x.mean([0, 1], true); const d = x.sub(mu);
  const y = d.mul(d.square().sum(0, true).mul(1 / 2).add(1e-5).pow(-0.5));`,
    };
    for (const [name, body] of Object.entries(nearMisses)) {
      const { c } = await buildAndImport(modelFile(source(`near_${name}`, body)));
      expect(c.fwd.insts.map((i) => i.op), name).not.toContain('bn_apply');
    }
    // and of layer norm: a variance over the last axis with Bessel's correction is neither
    const bessel = `const x = g.param('x', [3, 4]); const mu = x.mean(1, true); const d = x.sub(mu);
  const y = d.mul(d.square().sum(1, true).mul(1 / 3).add(1e-5).pow(-0.5));`;
    const { c } = await buildAndImport(modelFile(source('near_layerNormBessel', bessel)));
    expect(c.fwd.insts.map((i) => i.op)).not.toContain('ln_apply');
    expect(c.fwd.insts.map((i) => i.op)).not.toContain('bn_apply');
  });

  it('multiplies the rows of every batch by a 2-D matrix in one matmul, forward and backward', async () => {
    const { c } = await buildAndImport(modelFile(source('edge_batchedTiedHead', EDGE_CASES.batchedTiedHead!)));
    // h [2, 3, 4] · Wᵀ: the forward product, dh and dW, each of two 2-D operands
    const ranks = (g: Graph) => g.insts.filter((i) => i.op === 'matmul').map((i) => i.args.map((a) => g.type(a).shape.length).join('×'));
    expect([...ranks(c.fwd), ...ranks(c.bwd)]).toEqual(['2×2', '2×2', '2×2']);
  });

  it('a module of many matmuls (a 40-layer MLP: 119) shares one kernel per matmul structure and keeps every gradient; a small one gives each matmul its own', async () => {
    const layers = Array.from({ length: 40 }, (_x, i) => `const W${i} = g.param('W${i}', [6, 6], { scale: 0.4 }); h = h.matmul(W${i}).tanh();`).join('\n  ');
    const deep = await buildAndImport(modelFile(source('edge_deep', `let h = g.param('x', [5, 6]);\n  ${layers}\n  const y = h;`)));
    const flat = (c: { name: string; files: readonly { name: string; content: string | Uint8Array }[] }) => String(c.files.find((f) => f.name === `${c.name}.js`)!.content);
    const kernelsOf = (code: string) => [...code.matchAll(/^function (matmul_\w+)\(/gm)].map((m) => m[1]!);
    // forward tanh(h·W), backward dh = dy·Wᵀ and dW = hᵀ·dy: 3 structures shared; the last
    // layer's forward (its tanh is stored for the loss) is one of a kind and has its own
    expect(kernelsOf(flat(deep.c)).sort()).toEqual(['matmul_shared1', 'matmul_shared2', 'matmul_shared3', expect.stringMatching(/^matmul_t\d+$/)]);
    await check(deep.c, deep.mod, 3);
    const small = await buildAndImport(modelFile(source('edge_tiedHead', EDGE_CASES.tiedHead!)));
    expect(kernelsOf(flat(small.c)).filter((k) => k.startsWith('matmul_shared'))).toEqual([]);
  });

  it('writes no transposed copy for a matmul operand or a matmul result', async () => {
    for (const name of ['tiedHead', 'attention', 'batchedTiedHead', 'productTransposed']) {
      const { c } = await buildAndImport(modelFile(source(`edge_${name}`, EDGE_CASES[name]!)));
      const ops = [...c.fwd.insts, ...c.bwd.insts].map((i) => i.op);
      expect(ops, name).toContain('matmul');
      expect(ops, name).not.toContain('transpose');
    }
  });
});
