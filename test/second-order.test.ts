// Second derivatives: g.grad inside a model (every op's gradient rule differentiated again),
// g.customGrad, and the hvp and jvp functions of `graphc build --hvp --jvp`, each against the
// float64 interpreter and central finite differences of it.

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { OPS } from '../ir/ops.js';
import type { OpKind } from '../ir/ops.js';
import { compile, compileGraphs, lowerDerived, traceFile } from '../src/build.js';
import type { Arrays } from './helpers.js';
import { finiteDiff, modelFile, randomArgs, reference, relErr, rng, run, smoothAt, tmp } from './helpers.js';

type Rand = () => number;
const dim = (r: Rand) => 2 + Math.floor(r() * 3);
const S = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Model bodies defining params and `y`. The model differentiates L = Σ y·tanh(y) with g.grad
 * (so that the upstream gradient of every rule depends on the params), and its loss is
 * Σₖ ⟨dL/dpₖ, Sₖ⟩: the loss's gradient is the Hessian of L times S, through every rule's rule.
 */
const OPS_2ND: Record<string, (r: Rand) => string> = {
  neg: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.neg().mul(a);`,
  exp: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.exp();`,
  log: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.square().add(0.5).log();`,
  tanh: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.tanh();`,
  sigmoid: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.sigmoid();`,
  relu: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.relu().mul(a);`,
  sqrt: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.square().add(0.5).sqrt();`,
  abs: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.abs().mul(a);`,
  sin_cos: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.mul(2).sin().add(a.cos().mul(a));`,
  erf: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.erf().mul(a);`,
  log1p_expm1: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.square().log1p().add(a.mul(0.5).expm1());`,
  add_sub: (r) => `const a = g.param('a', ${S([dim(r), 3])}); const b = g.param('b', [3]); const y = a.add(b).sub(b.mul(a));`,
  div: (r) => `const a = g.param('a', ${S([dim(r), 3])}); const b = g.param('b', [1, 3]); const y = a.div(b.square().add(0.5));`,
  pow: (r) => `const a = g.param('a', ${S([dim(r), 2])}); const b = g.param('b', [2]); const y = a.square().add(0.5).pow(b);`,
  maximum_minimum: (r) => `const a = g.param('a', ${S([dim(r), 3])}); const b = g.param('b', [3]); const y = a.maximum(b).mul(a).add(a.minimum(b).mul(b));`,
  sum_mean: (r) => `const a = g.param('a', ${S([dim(r), dim(r), 2])}); const y = a.sum(1).mul(a.mean([0, 2], true).sum(1));`,
  max: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = a.max(1).mul(a.sum(1));`,
  matmul: (r) => {
    const [m, k, n] = [dim(r), dim(r), dim(r)];
    return `const a = g.param('a', [${m}, ${k}]); const b = g.param('b', [${k}, ${n}]); const y = a.matmul(b);`;
  },
  matmul_batched: (r) => `const a = g.param('a', [2, ${dim(r)}, 3]); const b = g.param('b', [3, ${dim(r)}]); const y = a.matmul(b).tanh().matmul(b.transpose());`,
  transpose_reshape: (r) => `const a = g.param('a', [${dim(r)}, 3, 2]); const y = a.transpose([2, 0, 1]).reshape([2, -1]).mul(a.reshape([2, -1]));`,
  narrow_concat: (r) => `const a = g.param('a', [${dim(r)}, 4]); const w = a.narrow(1, 1, 2); const y = g.concat([w, a, w.square()], 1);`,
  gather: (r) => `const C = g.param('C', [5, ${dim(r)}]); const ix = g.input('ix', [${dim(r)}], 'i32'); const y = g.gather(C, ix);`,
  pick_oneHot: (r) => {
    const n = dim(r);
    return `const a = g.param('a', [${n}, 4]); const ix = g.input('ix', [${n}], 'i32'); const y = g.pick(a, ix).add(g.oneHot(ix, 4).mul(a).sum(1));`;
  },
  softmax: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = g.softmax(a).mul(a);`,
  logSoftmax: (r) => `const a = g.param('a', ${S([dim(r), dim(r)])}); const y = g.logSoftmax(a, 0);`,
  crossEntropy: (r) => {
    const n = dim(r);
    return `const a = g.param('a', [${n}, 4]); const ix = g.input('ix', [${n}], 'i32'); const y = g.crossEntropy(a, ix);`;
  },
  batchNorm: (r) => `const a = g.param('a', [${dim(r) + 2}, 3]); const gain = g.param('gain', [3]); const bias = g.param('bias', [3]); const y = g.batchNorm(a, gain, bias);`,
  layerNorm: (r) => `const a = g.param('a', [${dim(r)}, 4]); const gain = g.param('gain', [4]); const bias = g.param('bias', [4]); const y = g.layerNorm(a, gain, bias);`,
  // the index primitives: cumsum's rule is a (reversed) cumsum, flip's a flip; argmax picks
  cumsum_flip: (r) => `const a = g.param('a', ${S([dim(r), dim(r) + 1])}); const y = a.cumsum(1).mul(a.flip([0, 1])).add(g.pick(a, a.argmax(1)).reshape([-1, 1]));`,
  hingeLoss: (r) => {
    const n = dim(r);
    return `const a = g.param('a', [${n}, 3]); const ix = g.input('ix', [${n}], 'i32'); const y = g.hingeLoss(a.tanh(), ix, 0.5);`;
  },
  const: () => `const a = g.param('a', [2, 3]); const y = a.mul(a).mul(g.const([[1, -2, 3], [0.5, 0, -1]]));`,
  conv2d: () => `const a = g.param('a', [1, 2, 5, 5]); const w = g.param('w', [3, 2, 2, 2]); const y = g.conv2d(a, w, { stride: [2, 1], padding: 1 }).tanh();`,
  avgPool2d: () => `const a = g.param('a', [1, 2, 4, 4]); const y = g.avgPool2d(a.square(), 2, { stride: 1 });`,
  // overlapping and padded windows: a position is the first maximum of several windows or none
  maxPool2d: () => `const a = g.param('a', [1, 2, 5, 5]); const y = g.maxPool2d(a.square().add(a), 3, { stride: 2, padding: 1 }).mul(g.maxPool2d(a, 2, { stride: 2, padding: 1 }));`,
  // max_pool_pick (in the second derivative of max pooling) differentiated twice: a g.grad inside y
  maxPoolPick: () => `const a = g.param('a', [1, 2, 5, 5]); const [da] = g.grad(g.maxPool2d(a, 3, { stride: 2, padding: 1 }).square().sum(), [a]); const y = da.mul(a);`,
};

/**
 * Ops with a gradient rule whose second derivative is not in this test, and why: `select` is
 * made only by batchNorm with running statistics, in training mode, and its rule is select
 * itself, linear in dy (test/modes.test.ts covers its first order).
 */
const NOT_TWICE: ReadonlySet<OpKind> = new Set(['select']);

const paramsOf = (body: string) => [...body.matchAll(/const (\w+) = g\.param\('(\w+)'/g)].map((m) => m[1]!);

/** One model holding every case in a block of its own (one build: the type check dominates), params prefixed by the case. */
function secondOrderModel(cases: Record<string, string>): string {
  const blocks = Object.entries(cases).map(([name, body]) => {
    const ps = paramsOf(body);
    const b = body.replace(/g\.param\('(\w+)'/g, `g.param('${name}_$1'`).replace(/g\.input\('(\w+)'/g, `g.input('${name}_$1'`);
    return `  {
    ${b}
    const L = y.mul(y.tanh()).sum();
    const grads = g.grad(L, [${ps.join(', ')}]);
    grads.forEach((d, k) => terms.push(d.mul(g.input('${name}_S' + k, d.shape)).sum()));
  }`;
  });
  return `import { model, Tensor } from 'graphc';
export default model('second_order', (g) => {
  const terms: Tensor[] = [];
${blocks.join('\n')}
  return { loss: terms.reduce((a, b) => a.add(b)) };
});
`;
}

/** The float64 gradients against central finite differences of the float64 loss (sampled entries away from kinks). */
function expectFd(fwd: Graph, grads: Record<string, ArrayLike<number>>, params: Arrays, inputs: Arrays, seed: number, tol = 1e-5): void {
  for (const [k, gr] of Object.entries(grads)) {
    const r = rng(seed);
    const idx = Array.from({ length: Math.min(6, gr.length) }, (_, i) => (gr.length <= 6 ? i : Math.floor(r() * gr.length))).filter((i) =>
      smoothAt(fwd, params, inputs, k, i),
    );
    const fd = idx.map((i) => finiteDiff(fwd, params, inputs, k, i));
    expect(relErr(idx.map((i) => gr[i]!), fd), `d loss / d ${k} vs finite differences`).toBeLessThan(tol);
  }
}

const differentiatedTwice = new Set<OpKind>();
const note = (g: Graph) => g.insts.forEach((i) => differentiatedTwice.add(i.op));

describe('g.grad: every gradient rule differentiated again', () => {
  it('each case against finite differences of its float64 gradient', () => {
    const r = rng(17);
    const file = modelFile(secondOrderModel(Object.fromEntries(Object.entries(OPS_2ND).map(([name, body]) => [name, body(r)]))));
    const { fwd, bwd } = compileGraphs(file);
    // the forward graph holds the first pass's instructions, which the reverse pass differentiated
    note(fwd);
    const { params, inputs } = randomArgs(fwd, 3);
    const ref = reference(fwd, bwd, params, inputs);
    expectFd(fwd, ref.grads, params, inputs, 3);
  });
});

async function importBuilt(file: string, opts: Parameters<typeof compile>[1]) {
  const c = await compile(file, opts);
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const load = async (suffix: string) => import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href);
  return { c, load };
}

const PINN = `import { model } from 'graphc';
export default model('pinn_small', (g) => {
  const x = g.input('x', [5, 1]);
  const W1 = g.param('W1', [1, 4]);
  const b1 = g.param('b1', [4]);
  const W2 = g.param('W2', [4, 1]);
  const u = x.matmul(W1).add(b1).tanh().matmul(W2);
  const [ux] = g.grad(u.sum(), [x]);
  const [uxx] = g.grad(ux.sum(), [x]);
  const loss = uxx.add(u).square().mean();
  return { loss, u, ux, uxx };
});
`;

/** A PINN in sines: Poisson's u'' = −π²·sin(πx) (solution sin πx), a first layer of sin features. */
const PINN_SIN = `import { model } from 'graphc';
export default model('pinn_sin', (g) => {
  const x = g.input('x', [6, 1]);
  const W1 = g.param('W1', [1, 8]);
  const b1 = g.param('b1', [8]);
  const W2 = g.param('W2', [8, 1]);
  const u = x.matmul(W1).add(b1).sin().matmul(W2);
  const [ux] = g.grad(u.sum(), [x]);
  const [uxx] = g.grad(ux.sum(), [x]);
  const source = x.mul(Math.PI).sin().mul(Math.PI ** 2);
  const loss = uxx.add(source).square().mean();
  return { loss, u, uxx };
});
`;

describe('g.grad models', () => {
  it("a PINN in sines (u'' = −π² sin πx, sin features): flat, wasm and GPU.js (cpu) against the interpreter and finite differences; sin πx itself has residual 0", async () => {
    const { c, load } = await importBuilt(modelFile(PINN_SIN), { targets: ['ts', 'wasm', 'gpu'] });
    const { params, inputs } = randomArgs(c.fwd, 2);
    inputs.x = Float32Array.from({ length: 6 }, (_v, i) => i / 5);
    const ref = reference(c.fwd, c.bwd, params, inputs);
    expectFd(c.fwd, ref.grads, params, inputs, 2);
    const gpu = await (await load('.gpu')).create({ mode: 'cpu' });
    // the exact solution: W1 = [π, 0, …], b1 = 0, W2 = [1, 0, …]ᵀ
    const exact = { W1: Float32Array.from({ length: 8 }, (_v, i) => (i === 0 ? Math.PI : 0)), b1: new Float32Array(8), W2: Float32Array.from({ length: 8 }, (_v, i) => (i === 0 ? 1 : 0)) };
    try {
      for (const [name, mod] of [['flat', await load('')], ['wasm', await load('.wasm')], ['gpu', gpu]] as const) {
        const out = await mod.valueAndGrad(params, inputs);
        expect(relErr([out.loss], ref.outputs.loss!.data), `${name} loss`).toBeLessThan(1e-5);
        for (const k of Object.keys(params)) expect(relErr(out.grads[k], ref.grads[k]!), `${name} d loss / d ${k}`).toBeLessThan(1e-4);
        const at = await mod.forward(exact, inputs);
        expect(at.loss as number, `${name}: the residual of sin πx`).toBeLessThan(1e-9);
        expect(relErr(at.u as Float32Array, Array.from(inputs.x!, (v) => Math.sin(Math.PI * v))), `${name}: u = sin πx`).toBeLessThan(1e-6);
      }
    } finally {
      gpu.destroy();
    }
  });

  it("a physics-informed loss (u'' + u): the module's gradient against finite differences, g.grad's values against the interpreter's", async () => {
    const { c, load } = await importBuilt(modelFile(PINN), { targets: ['ts', 'gpu'] });
    const mod = await load('');
    const { params, inputs } = randomArgs(c.fwd, 1);
    const ref = reference(c.fwd, c.bwd, params, inputs);
    const out = mod.valueAndGrad(params, inputs);
    expect(relErr([out.loss], ref.outputs.loss!.data)).toBeLessThan(1e-5);
    for (const k of Object.keys(params)) expect(relErr(out.grads[k], ref.grads[k]!), k).toBeLessThan(1e-4);
    expectFd(c.fwd, ref.grads, params, inputs, 1);
    // ux and uxx: du/dx and d²u/dx² of each point, against finite differences in x
    const x0 = Float64Array.from(inputs.x!);
    const uAt = (x: Float64Array) => outputsOf(c.fwd, interpret(c.fwd, { params, inputs: { x } })).u!.data;
    const h = 1e-3;
    const shifted = (d: number) => uAt(x0.map((v) => v + d * h));
    const [m2, m1, z, p1, p2] = [-2, -1, 0, 1, 2].map(shifted) as Float64Array[];
    const fwdOut = mod.forward(params, inputs);
    const ux = z!.map((_v, i) => (m2![i]! - 8 * m1![i]! + 8 * p1![i]! - p2![i]!) / (12 * h));
    const uxx = z!.map((_v, i) => (-p2![i]! + 16 * p1![i]! - 30 * z![i]! + 16 * m1![i]! - m2![i]!) / (12 * h * h));
    expect(relErr(fwdOut.ux, ux), 'ux').toBeLessThan(1e-4);
    expect(relErr(fwdOut.uxx, uxx), 'uxx').toBeLessThan(1e-4);
  });

  it('the emitted comments name the g.grad call of each instruction', async () => {
    const { c } = await importBuilt(modelFile(PINN), { targets: ['ts', 'gpu'] });
    const code = c.files.find((f) => f.name === 'pinn_small.ts')!.content as string;
    expect(code).toContain("tanh'  (model.ts:7, of g.grad at model.ts:9)");
    expect(c.files.find((f) => f.name === 'pinn_small.ir')!.content).toContain('grad(tanh) via 8:18');
  });
});

const CUSTOM = `import { model } from 'graphc';
export default model('custom', (g) => {
  const w = g.param('w', [6]);
  const s = g.param('s', [6]);
  // straight-through sign: sign(w) forward, the gradient passed through unchanged
  const sign = g.customGrad((x) => x.div(x.abs()), (xs, y, dy) => [dy]);
  // the identity forward, its gradient clipped to [-0.1, 0.1]
  const clip = g.customGrad((x) => x.mul(1), ([x], y, dy) => [dy.maximum(-0.1).minimum(0.1)]);
  // a rule that reads x, y and a param: d/dx of x·s is s, written as the user's rule
  const scaled = g.customGrad((x) => x.mul(s), ([x], y, dy) => [dy.mul(y).div(x)]);
  const q = sign(w);
  const c = clip(s.mul(3));
  const z = scaled(w.tanh());
  const loss = q.mul(s).sum().add(c.square().sum()).add(z.square().sum());
  return { loss, q, c };
});
`;

describe('g.customGrad', () => {
  it('a straight-through sign and a clipped gradient against their formulas', async () => {
    const { c, load } = await importBuilt(modelFile(CUSTOM), { targets: ['ts', 'wasm'] });
    const { params, inputs } = randomArgs(c.fwd, 4);
    const w = Float64Array.from(params.w!);
    const s = Float64Array.from(params.s!);
    // dL/dw = s (straight through) + 2z·s·tanh'(w); dL/ds = sign(w) + 3·clip(2·3s)
    const z = w.map((v, i) => Math.tanh(v) * s[i]!);
    const dw = w.map((v, i) => s[i]! + 2 * z[i]! * s[i]! * (1 - Math.tanh(v) ** 2));
    // s, which the third rule closes over, gets no gradient through it (as a torch.autograd.Function's non-inputs)
    const ds = s.map((v, i) => Math.sign(w[i]!) + 3 * Math.min(0.1, Math.max(-0.1, 2 * 3 * v)));
    for (const suffix of ['', '.wasm']) {
      const mod = await load(suffix);
      const out = mod.valueAndGrad(params, inputs);
      expect(relErr(out.grads.w, dw), `${suffix} dw`).toBeLessThan(1e-5);
      expect(relErr(out.grads.s, ds), `${suffix} ds`).toBeLessThan(1e-5);
    }
    const code = c.files.find((f) => f.name === 'custom.ts')!.content as string;
    expect(code).toContain("the user's gradient rule (g.customGrad)  (model.ts:8)");
  });

  it("its backward is differentiable: g.grad through a custom rule, then the model's gradient", () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('custom2', (g) => {
  const w = g.param('w', [3, 2]);
  const x = g.input('x', [4, 3]);
  // softplus with its gradient written by hand: sigmoid(x)
  const softplus = g.customGrad((x) => x.exp().add(1).log(), ([x], y, dy) => [dy.mul(x.sigmoid())]);
  const u = softplus(x.matmul(w)).sum();
  const [dw] = g.grad(u, [w]);
  const loss = dw.square().sum();
  return { loss };
});
`);
    const { fwd, bwd } = compileGraphs(file);
    const { params, inputs } = randomArgs(fwd, 5);
    const ref = reference(fwd, bwd, params, inputs);
    expectFd(fwd, ref.grads, params, inputs, 5);
    differentiatedTwice.add('custom_grad');
  });

  it('a gradient of the wrong shape is an error at the call', () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('bad', (g) => {
  const w = g.param('w', [3]);
  const f = g.customGrad((x) => x.tanh(), ([x], y, dy) => [dy.sum()]);
  return f(w).sum();
});
`);
    expect(() => traceFile(file)).toThrow('g.customGrad: backward returned f32[] as the gradient of argument 0, which is f32[3]');
  });
});

describe('g.grad errors', () => {
  it('a y that is not a scalar', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('bad', (g) => {
  const x = g.input('x', [4, 1]);
  const w = g.param('w', [1, 1]);
  const u = x.matmul(w);
  const [ux] = g.grad(u, [x]);
  return ux.sum().add(w.sum());
});
`);
    const r = await run(['build', '--out', tmp(), file]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('model.ts:6:18: error: g.grad: y must be an f32 scalar, but it is f32[4,1]');
    expect(r.err).toContain('fix: reduce it to a scalar first, e.g. g.grad(u.sum(), [x]) for the gradient of every entry of u');
  });
});

/** Finite differences of f along a direction: (f(+h) − f(−h)) / 2h, five-point. */
function along(f: (eps: number) => Float64Array, h = 1e-4): Float64Array {
  const [m2, m1, p1, p2] = [-2, -1, 1, 2].map((k) => f(k * h)) as Float64Array[];
  return m2!.map((_v, i) => (m2![i]! - 8 * m1![i]! + 8 * p1![i]! - p2![i]!) / (12 * h));
}

const shift = (a: Arrays, d: Record<string, ArrayLike<number>>, eps: number): Arrays =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [k, d[k] ? Float64Array.from(v, (x, i) => x + eps * d[k]![i]!) : v])) as Arrays;

const MLP = `import { model } from 'graphc';
export default model('mlp', (g) => {
  const x = g.input('x', [6, 3]);
  const y = g.input('y', [6], 'i32');
  const W1 = g.param('W1', [3, 5], { scale: 0.5 });
  const gain = g.param('gain', [5], { init: 'ones' });
  const bias = g.param('bias', [5], { init: 'zeros' });
  const W2 = g.param('W2', [5, 4], { scale: 0.5 });
  const h = g.layerNorm(g.batchNorm(x.matmul(W1), gain, bias).tanh(), gain, bias);
  const logits = h.matmul(W2);
  const loss = g.crossEntropy(logits, y).add(g.softmax(logits).square().mean());
  return { loss, logits };
});
`;

describe('hvp and jvp', () => {
  for (const [name, text] of [
    ['mlp', MLP],
    ['pinn_small', PINN],
  ] as const)
    it(`${name}: hvp against finite differences of the float64 gradient, jvp against finite differences of the float64 outputs (flat and wasm)`, async () => {
      const { c, load } = await importBuilt(modelFile(text), { targets: ['ts', 'wasm'], hvp: true, jvp: true });
      const { params, inputs } = randomArgs(c.fwd, 7);
      const v = randomArgs(c.fwd, 8).params;
      const gradAt = (eps: number) => {
        const g = reference(c.fwd, c.bwd, shift(params, v, eps), inputs).grads;
        return Float64Array.from(Object.keys(params).flatMap((k) => Array.from(g[k]!)));
      };
      const hvRef = along(gradAt);
      const t = { ...randomArgs(c.fwd, 9).params, ...Object.fromEntries(Object.entries(randomArgs(c.fwd, 9).inputs).filter(([, a]) => a instanceof Float32Array)) };
      const outAt = (eps: number) => {
        const o = outputsOf(c.fwd, interpret(c.fwd, { params: shift(params, t, eps), inputs: shift(inputs, t, eps) }));
        return Float64Array.from(Object.keys(o).flatMap((k) => Array.from(o[k]!.data)));
      };
      const jtRef = along(outAt);
      // the derived graphs hold the first pass's rules of the fused ops, differentiated again
      note(lowerDerived(traceFile(c.model.file).traced.graph, 'hvp').fwd);
      for (const suffix of ['', '.wasm']) {
        const mod = await load(suffix);
        const r = mod.hvp(params, inputs, v);
        expect(relErr([r.loss], [reference(c.fwd, c.bwd, params, inputs).outputs.loss!.data[0]!]), `${suffix} hvp loss`).toBeLessThan(1e-5);
        const hv = Object.keys(params).flatMap((k) => Array.from(r.hv[k] as Float32Array));
        expect(relErr(hv, hvRef), `${suffix} hv`).toBeLessThan(1e-3);
        const j = mod.jvp(params, inputs, t);
        const jt = Object.keys(c.fwd.outputs.map((o) => o.name)).length && c.fwd.outputs.flatMap((o) => {
          const x = j.tangentOutputs[o.name];
          return typeof x === 'number' ? [x] : Array.from(x as Float32Array);
        });
        expect(relErr(jt as number[], jtRef), `${suffix} J·t`).toBeLessThan(1e-3);
        expect(j.outputs.loss).toBeCloseTo(r.loss, 5);
      }
    });
});

const RANDOM = `import { model } from 'graphc';
// a model that draws a number when it is traced: every function of the module must be of the one trace
const c = 1 + Math.random();
let traces = 0;
export default model('drawn', (g) => {
  traces++;
  const W = g.param('W', [3]);
  const x = g.input('x', [3]);
  return { loss: W.mul(x).mul(c * traces).square().sum() };
});
`;

const RUNNING = `import { model } from 'graphc';
export default model('bn', (g) => {
  const W = g.param('W', [4, 3], { scale: 0.5 });
  const x = g.input('x', [6, 4]);
  const y = g.input('y', [6], 'i32');
  const bn1 = g.batchNorm(x.matmul(W), g.param('gain', [3], { init: 'ones' }), g.param('bias', [3]), { momentum: 0.1 });
  const logits = bn1.tanh();
  return { loss: g.crossEntropy(logits, y), logits };
});
`;

describe('hvp and jvp: one trace, options', () => {
  it('a model drawing Math.random() at trace time: hvp and jvp are of the function forward computes (the model is traced once)', async () => {
    const { c, load } = await importBuilt(modelFile(RANDOM, 'drawn.ts'), { targets: ['ts', 'wasm'], hvp: true, jvp: true });
    // (the enclosed wasm modules leave the WebAssembly API's declaration to the module: TypeScript allows no declare in a function)
    const wasmTs = c.files.find((f) => f.name === 'drawn.wasm.ts')!.content as string;
    expect(wasmTs.match(/^ *declare const WebAssembly/gm)).toEqual(['declare const WebAssembly']);
    const params = { W: Float32Array.from([0.5, -1, 2]) };
    const inputs = { x: Float32Array.from([1, 2, -0.5]) };
    const v = { W: Float32Array.from([1, 0.5, -2]) };
    for (const suffix of ['', '.wasm']) {
      const mod = await load(suffix);
      const loss = mod.forward(params, inputs).loss as number;
      // loss = k² Σ (W x)², so Hv = 2 k² x² v, with k² = loss / Σ (W x)²
      const k2 = loss / [0, 1, 2].reduce((a, i) => a + (params.W[i]! * inputs.x[i]!) ** 2, 0);
      const r = mod.hvp(params, inputs, v);
      expect(r.loss, `${suffix} hvp loss`).toBeCloseTo(loss, 4);
      expect(relErr(r.hv.W, [0, 1, 2].map((i) => 2 * k2 * inputs.x[i]! ** 2 * v.W[i]!)), `${suffix} hv`).toBeLessThan(1e-5);
      const j = mod.jvp(params, inputs, { W: v.W, x: new Float32Array(3) });
      expect(j.outputs.loss, `${suffix} jvp loss`).toBeCloseTo(loss, 4);
      expect(j.tangentOutputs.loss, `${suffix} J·t`).toBeCloseTo([0, 1, 2].reduce((a, i) => a + 2 * k2 * params.W[i]! * inputs.x[i]! ** 2 * v.W[i]!, 0), 3);
    }
  });

  it('a model with batchnorm running statistics: hvp and jvp take the options (buffers, train), read the buffers and leave them as they are', async () => {
    const { c, load } = await importBuilt(modelFile(RUNNING, 'bn.ts'), { targets: ['ts', 'wasm'], hvp: true, jvp: true });
    const { params, inputs } = randomArgs(c.fwd, 3);
    inputs.y = Int32Array.from([0, 1, 2, 0, 1, 2]);
    const v = randomArgs(c.fwd, 4).params;
    for (const suffix of ['', '.wasm']) {
      const mod = await load(suffix);
      expect(() => mod.hvp(params, inputs, v)).toThrow(
        new TypeError('bn.hvp: this model keeps batchnorm running statistics in buffers (bn1.running_mean, bn1.running_var): pass them in the options, e.g. hvp(params, inputs, v, { buffers }), with buffers = initBuffers()'),
      );
      expect(() => mod.jvp(params, inputs, { ...v, x: new Float32Array(24) })).toThrow(
        new TypeError('bn.jvp: this model keeps batchnorm running statistics in buffers (bn1.running_mean, bn1.running_var): pass them in the options, e.g. jvp(params, inputs, tangents, { buffers }), with buffers = initBuffers()'),
      );
      // running statistics away from their initial values, so that evaluation and training differ
      const buffers = { 'bn1.running_mean': Float32Array.from([0.3, -0.2, 0.1]), 'bn1.running_var': Float32Array.from([2, 0.5, 1.5]) };
      const kept = structuredClone(buffers);
      // training: the Hessian of the loss valueAndGrad differentiates, against central differences of its gradient
      const shifted = (eps: number) => Object.fromEntries(Object.entries(params).map(([k, a]) => [k, (a as Float32Array).map((x, i) => x + eps * (v[k] as Float32Array)[i]!)]));
      const gradAt = (eps: number) => {
        const g = mod.valueAndGrad(shifted(eps), inputs, { buffers: structuredClone(kept) }).grads;
        return Object.keys(params).flatMap((k) => Array.from(g[k] as Float32Array));
      };
      const eps = 1e-2;
      const [gp, gm] = [gradAt(eps), gradAt(-eps)];
      const r = mod.hvp(params, inputs, v, { buffers, train: true });
      const trainingLoss = r.loss as number; // (the result is the module's, overwritten by the next call)
      expect(relErr(Object.keys(params).flatMap((k) => Array.from(r.hv[k] as Float32Array)), gp.map((x, i) => (x - gm[i]!) / (2 * eps))), `${suffix} hv (training)`).toBeLessThan(1e-2);
      expect(trainingLoss, `${suffix} hvp loss (training)`).toBeCloseTo(mod.valueAndGrad(params, inputs, { buffers: structuredClone(kept) }).loss, 5);
      // evaluation (the default): the loss forward computes with the running statistics
      expect(mod.hvp(params, inputs, v, { buffers }).loss, `${suffix} hvp loss (evaluation)`).toBeCloseTo(mod.forward(params, inputs, { buffers: structuredClone(kept) }).loss, 5);
      const j = mod.jvp(params, inputs, { ...v, x: new Float32Array(24) }, { buffers, train: true });
      expect(j.outputs.loss, `${suffix} jvp loss (training)`).toBeCloseTo(trainingLoss, 5);
      expect(Array.from(mod.jvp(params, inputs, { ...v, x: new Float32Array(24) }, { buffers }).outputs.logits as Float32Array), `${suffix} jvp logits (evaluation)`).toEqual(
        Array.from(mod.forward(params, inputs, { buffers: structuredClone(kept) }).logits as Float32Array),
      );
      expect(buffers, `${suffix} buffers read, never updated`).toEqual(kept);
    }
  });
});

describe('coverage', () => {
  it('every op with a gradient rule was differentiated twice', () => {
    const missing = (Object.keys(OPS) as OpKind[]).filter((k) => typeof OPS[k].grad === 'function' && !differentiatedTwice.has(k) && !NOT_TWICE.has(k));
    expect(missing).toEqual([]);
  });

  it('a missing second-order rule is a located error at the g.grad call (max_pool_grad with its rule removed)', async () => {
    // every op of the table has a rule today: the error path is held with one taken away
    const rules = OPS as unknown as Record<string, { grad: unknown }>;
    const saved = rules.max_pool_grad!.grad;
    rules.max_pool_grad!.grad = null;
    onTestFinished(() => void (rules.max_pool_grad!.grad = saved));
    const file = modelFile(`import { model } from 'graphc';
export default model('maxpool2', (g) => {
  const a = g.param('a', [1, 1, 4, 4]);
  const [da] = g.grad(g.maxPool2d(a, 2).square().sum(), [a]);
  return { loss: da.square().sum() };
});
`);
    const r = await run(['build', file, '--out', path.join(tmp(), 'maxpool2')]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("error: the op 'max_pool_grad' has no gradient rule, but the gradient that g.grad at model.ts:4:18 computes (through max_pool's rule) uses it: its second derivative is missing");
  });
});
