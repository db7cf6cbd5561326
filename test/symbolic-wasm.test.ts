// The wasm module of a model with a symbolic dimension (codegen/wasm/symbolic.ts): one build serves
// every batch size; its kernels are built once and read their sizes at run time, the memory is laid
// out the first time a call brings a size and reused after.
// Each call against the static wasm build at that size and the float64 interpreter; sizes back and
// forth give the same results; create({ threads }) says why a symbolic module has no threads.

import * as path from 'node:path';
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import type { Compiled } from '../src/build.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { gradTolerance, modelFile, randomArgs, reference, relErr, ROOT, tmp } from './helpers.js';
import { jsLoopSteps, kernelJsSteps } from './wasm-steps.js';
import { resolveHyper } from '../codegen/optim.js';

const EXAMPLES = ROOT.split(path.sep).join('/') + '/examples';

const inference = (batch: string | number, name: string) =>
  modelFile(`import { LECTURE } from '${EXAMPLES}/makemore.ts';
import { makemoreInference } from '${EXAMPLES}/makemore_inference.ts';
export default makemoreInference({ ...LECTURE, batch: ${JSON.stringify(batch)} }, '${name}');
`);

type WasmModule = GeneratedModule & { create(options?: { threads?: number }): Promise<unknown> };

/** Builds the wasm module alone and imports its JavaScript. */
async function buildWasm(file: string): Promise<{ c: Compiled; mod: WasmModule }> {
  const c = await compile(file, { targets: ['wasm'] });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  return { c, mod: (await import(pathToFileURL(path.join(dir, `${c.name}.wasm.js`)).href)) as WasmModule };
}

function argsFor(fwd: Parameters<typeof randomArgs>[0], n: number, seed: number): { params: Arrays; inputs: Arrays } {
  const a = randomArgs(fwd, seed, 0.5, { B: n });
  if (a.inputs.bnvar) a.inputs.bnvar = (a.inputs.bnvar as Float32Array).map(Math.abs);
  return a;
}

const copyOf = (r: { loss: number; grads: Record<string, Float32Array> }) => ({ loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, Float32Array.from(v)])) });

describe('the wasm module with a symbolic batch', () => {
  it('serves B = 1, 7, 32 and 1000 as the static wasm builds and the float64 interpreter; sizes back and forth reuse their kernels', async () => {
    const sym = await buildWasm(inference('B', 'inf_wasm_sym'));
    expect(sym.mod.spec.inputs.Xb!.shape).toEqual(['B', 3]);
    const code = sym.c.files.find((f) => f.name === 'inf_wasm_sym.wasm.js')!.content as string;
    // the groups the static module runs as kernels are kernels here too
    expect(code).toMatch(/forms\.matmul_logits\(\);/); // built once, its rows read at run time
    expect(code).toMatch(/forms\.softmax_probs\(\);/); // the row kernel, its rows read at run time
    expect(code).not.toContain('softmaxBody'); // its generator is not carried
    expect(code).toMatch(/forms\.kernel_db1\(\);/);
    // no JS loop: the gather, cross-entropy and scatter_add too are kernels built by graphc, their row counts and addresses read at run time
    expect(kernelJsSteps(code)).toEqual([]);
    expect(jsLoopSteps(code)).toEqual([]);
    for (const k of ['gather_emb', 'xent_loss', 'scatter_add_dC']) expect(code).toContain(`forms.${k}();`);
    expect(code).not.toMatch(/^import /m);
    const first = new Map<number, ReturnType<typeof copyOf>>();
    for (const n of [1, 7, 32, 1000]) {
      const { params, inputs } = argsFor(sym.c.fwd, n, n);
      const stat = await buildWasm(inference(n, `inf_wasm_${n}`));
      const got = copyOf(sym.mod.valueAndGrad(params, inputs));
      first.set(n, got);
      const want = stat.mod.valueAndGrad(params, inputs);
      const ref = reference(sym.c.fwd, sym.c.bwd, params, inputs);
      expect(relErr([got.loss], [want.loss]), `B = ${n}: loss vs the static build`).toBeLessThan(1e-6);
      expect(relErr([got.loss], [ref.outputs.loss!.data[0]!]), `B = ${n}: loss vs the interpreter`).toBeLessThan(1e-5);
      for (const [p, g] of Object.entries(ref.grads)) {
        expect(relErr(got.grads[p]!, want.grads[p]!), `B = ${n}: d loss / d ${p} vs the static build`).toBeLessThan(1e-5);
        expect(relErr(got.grads[p]!, g), `B = ${n}: d loss / d ${p} vs the interpreter`).toBeLessThan(1e-4);
      }
      const probs = Float32Array.from(sym.mod.forward(params, inputs).probs as Float32Array);
      expect(probs.length).toBe(n * 27);
      expect(relErr(probs, stat.mod.forward(params, inputs).probs as Float32Array), `B = ${n}: probs`).toBeLessThan(1e-6);
    }
    // back to sizes laid out before (the memory stays as large as the largest): the same bits
    for (const n of [7, 1000, 1, 32]) {
      const { params, inputs } = argsFor(sym.c.fwd, n, n);
      expect(copyOf(sym.mod.valueAndGrad(params, inputs)), `B = ${n} again`).toEqual(first.get(n));
    }
    await expect(sym.mod.create({ threads: 2 })).rejects.toThrow(
      "create({ threads }): this wasm module has symbolic dimensions (B), whose memory is laid out anew for each call's sizes; threads need a build for fixed sizes (a number instead of a dimension name)",
    );
  }, 240_000); // five builds

  it('batchnorm over the batch and cross-entropy (training mode) at B = 7 and 1000, against the interpreter and the static build', async () => {
    const training = (batch: string | number, name: string) =>
      modelFile(`import { model } from 'graphc';
export default model('${name}', (g) => {
  const C = g.param('C', [27, 10]);
  const W1 = g.param('W1', [30, 64], { scale: 0.3 });
  const b1 = g.param('b1', [64], { scale: 0.1 });
  const W2 = g.param('W2', [64, 27], { scale: 0.1 });
  const bngain = g.param('bngain', [1, 64], { init: 'ones' });
  const bnbias = g.param('bnbias', [1, 64], { init: 'zeros' });
  const Xb = g.input('Xb', [${JSON.stringify(batch)}, 3], 'i32');
  const Yb = g.input('Yb', [${JSON.stringify(batch)}], 'i32');
  const h = g.batchNorm(g.gather(C, Xb).reshape([${JSON.stringify(batch)}, -1]).matmul(W1).add(b1), bngain, bnbias).tanh();
  const logits = h.matmul(W2);
  const loss = g.crossEntropy(logits, Yb);
  return { loss, probs: g.softmax(logits), m: h.mean(1) };
});
`);
    const { c, mod } = await buildWasm(training('B', 'train_wasm_sym'));
    const stat = await buildWasm(training(1000, 'train_wasm_1000'));
    for (const n of [7, 1000, 7]) {
      const { params, inputs } = argsFor(c.fwd, n, 100 + n);
      const ref = reference(c.fwd, c.bwd, params, inputs);
      const got = mod.valueAndGrad(params, inputs);
      expect(relErr([got.loss], [ref.outputs.loss!.data[0]!]), `B = ${n}: loss`).toBeLessThan(1e-5);
      const want = n === 1000 ? copyOf(stat.mod.valueAndGrad(params, inputs)) : undefined;
      for (const [p, g] of Object.entries(ref.grads)) {
        const err = relErr(got.grads[p]!, g);
        // db1 cancels to nearly zero (batchnorm takes the bias out), and the wasm column sum adds
        // the B rows in float32 (the flat module in float64): 1e-3 of its tiny size at B = 1000
        const tol = p === 'b1' ? 1e-3 : gradTolerance(g, () => reference(c.fwd, c.bwd, params, inputs, { float32: true }).grads[p]!, err);
        expect(err, `B = ${n}: d loss / d ${p}`).toBeLessThan(tol);
        if (want) expect(relErr(got.grads[p]!, want.grads[p]!), `B = ${n}: d loss / d ${p} vs the static build`).toBeLessThan(p === 'b1' ? 1e-3 : 1e-5);
      }
      const outs = mod.forward(params, inputs);
      expect(relErr(outs.m as Float32Array, ref.outputs.m!.data), `B = ${n}: m`).toBeLessThan(1e-5);
    }
  }, 120_000); // two builds

  it('the optimizer update (adam, weight decay, clipping) is one kernel built once: trainStep at B = 3, 40, 3 and applyGradients before any call as the flat module', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('opt_sym', (g) => {
  const W = g.param('W', [3, 5], { scale: 0.5 });
  const b = g.param('b', [5], { init: 'zeros' });
  const x = g.input('x', ['B', 3]);
  const y = g.input('y', ['B'], 'i32');
  return { loss: g.crossEntropy(x.matmul(W).add(b).tanh(), y) };
});
`);
    const c = await compile(file, { targets: ['ts', 'wasm'], optimizer: { name: 'adam', hyper: resolveHyper('adam', { lr: 0.05, weightDecay: 0.01, clipGradNorm: 0.5 }) } });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    type Train = WasmModule & {
      initOptState(p: Arrays): Record<string, unknown> & { step: number };
      trainStep(p: Arrays, s: object, i: Arrays): { loss: number };
      applyGradients(p: Arrays, s: object, g: Arrays): void;
    };
    const load = async (name: string, q = '') => (await import(pathToFileURL(path.join(dir, name)).href + q)) as Train;
    const code = c.files.find((f) => f.name === 'opt_sym.wasm.ts')!.content as string;
    expect(code).toMatch(/^ {2}forms\.update\(\);$/m);
    expect(code).not.toMatch(/^ +adamStep\(/m); // no param takes the JS loop
    expect(kernelJsSteps(code)).toEqual([]);
    const [wasm, flat] = [await load('opt_sym.wasm.js'), await load('opt_sym.js')];
    const init = (): Arrays => ({ W: Float32Array.from({ length: 15 }, (_, i) => Math.sin(i) * 0.5), b: new Float32Array(5) });
    const [pw, pf] = [init(), init()];
    const [sw, sf] = [wasm.initOptState(pw), flat.initOptState(pf)];
    const close = (at: string) => {
      for (const k of ['W', 'b']) {
        expect(relErr(pw[k] as Float32Array, pf[k] as Float32Array), `${at}: ${k}`).toBeLessThan(1e-6);
        for (const slot of ['exp_avg', 'exp_avg_sq']) expect(relErr((sw[slot] as Arrays)[k] as Float32Array, (sf[slot] as Arrays)[k] as Float32Array), `${at}: ${slot}.${k}`).toBeLessThan(1e-6);
      }
    };
    for (const [k, B] of [3, 40, 3].entries()) {
      const inputs: Arrays = { x: Float32Array.from({ length: B * 3 }, (_, i) => Math.cos(i * 1.3 + k)), y: Int32Array.from({ length: B }, (_, i) => (i + k) % 5) };
      const ref = reference(c.fwd, c.bwd, pw, inputs).outputs.loss!.data[0]!;
      const [lw, lf] = [wasm.trainStep(pw, sw, inputs).loss, flat.trainStep(pf, sf, inputs).loss];
      expect(relErr([lw], [ref]), `B = ${B}: loss vs the interpreter`).toBeLessThan(1e-5);
      expect(relErr([lw], [lf]), `B = ${B}: loss vs the flat module`).toBeLessThan(1e-6);
      close(`B = ${B}, step ${k + 1}`);
    }
    expect(sw.step).toBe(3);
    // a fresh instance whose first call is applyGradients: the params and gradients reach the memory first
    const fresh = await load('opt_sym.wasm.js', '?fresh');
    const [qw, qf] = [init(), init()];
    const grads: Arrays = { W: Float32Array.from({ length: 15 }, (_, i) => 0.1 * (i - 7)), b: new Float32Array(5).fill(0.2) };
    const [tw, tf] = [fresh.initOptState(qw), flat.initOptState(qf)];
    fresh.applyGradients(qw, tw, grads);
    flat.applyGradients(qf, tf, grads);
    for (const k of ['W', 'b']) expect(relErr(qw[k] as Float32Array, qf[k] as Float32Array), `applyGradients: ${k}`).toBeLessThan(1e-6);
  }, 60_000);

  it('no JS loop left: matmul epilogues in the matmul\'s tiles (log decomposed, a product that is an output stored too, a sum of two products), batches of matmuls, a pad cut along axes of strides B·2 and 1, and the update of params whose gradients are not arrays of the arena (an input, a constant), at B = 3 and 37', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('rest_sym', (g) => {
  const x = g.input('x', ['B', 4]);
  const W = g.param('W', [4, 5], { scale: 0.5 });
  const b = g.param('b', [5]);
  const v = g.param('v', [2]);
  const s = g.input('s', [3, 'B', 2]);
  const q = g.param('q', [3]);
  const r = g.param('r', [3]);
  const c = g.param('c', [4]);
  const xs = g.input('xs', [3]);
  const h = x.matmul(W).add(b).square().add(1).log(); // log (decomposed) at the tile's points
  const k = x.tanh().matmul(W); // an output: the epilogue reads the product at the tile's points, the product stored too
  const hk = k.abs().add(1).log();
  const t = g.input('t', ['B', 2, 3]);
  const bt = t.matmul(t.transpose([0, 2, 1])).tanh(); // batches of B matrices
  const bk = t.transpose([0, 2, 1]).matmul(t);
  const hb = bk.square().add(bt.sum());
  const pd = g.pad(s.mul(v).tanh(), [[1, 2], [0, 0], [0, 1]]); // boxes along axis 0 (stride B·2) and axis 2 (stride 1)
  const loss = h.square().mean().add(hk.mean()).add(pd.square().mean()).add(q.mul(xs).sum()).add(r.mul(xs).sum()).add(c.sum()).add(hb.mean()); // dq = dr = xs, dc = 1
  return { loss, h, k, pd, bk };
});
`);
    const c = await compile(file, { targets: ['ts', 'wasm'], optimizer: { name: 'adam', hyper: resolveHyper('adam', { lr: 0.05, weightDecay: 0.01, clipGradNorm: 0.5 }) } });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    type Train = WasmModule & {
      initOptState(p: Arrays): Record<string, unknown> & { step: number };
      trainStep(p: Arrays, s: object, i: Arrays): { loss: number };
      applyGradients(p: Arrays, s: object, g: Arrays): void;
    };
    const load = async (name: string) => (await import(pathToFileURL(path.join(dir, name)).href)) as Train;
    const code = c.files.find((f) => f.name === 'rest_sym.wasm.ts')!.content as string;
    expect(jsLoopSteps(code)).toEqual([]);
    // h's (and h²'s), hk's and the weight gradient's sum of two products in the matmul's tiles: no kernel after them, no product area
    expect(code).toMatch(/^\/\/ {3}matmul_hk: hk = log\(t8\) {3}\[B,4\]·\[4,5\], sizes read at run time$/m);
    expect(code).toMatch(/^\/\/ {3}matmul_dW: dW = dW_2 \+ x\.T @ dt2 {3}\[4,B\]·\[B,5\] \(A transposed\), sizes read at run time$/m);
    expect(code).not.toMatch(/epilogue_|_product/);
    expect(code).toMatch(/^\/\/ {3}matmul_\w+: .*B × \[2,3\]·\[3,2\] \(B transposed\), sizes read at run time$/m);
    expect(code).toMatch(/^\/\/ {3}matmul_bk: .*B × \[3,2\]·\[2,3\] \(A transposed\), sizes read at run time$/m);
    expect(code).toContain('forms.kernel_pd();');
    expect(code).not.toMatch(/^ +adamStep\(/m); // every param's update is the kernel's
    for (const p of ['q', 'r', 'c']) expect(code).toMatch(new RegExp(`^ +optGrads\\.${p}\\.set\\(`, 'm'));
    const [wasm, flat] = [await load('rest_sym.wasm.js'), await load('rest_sym.js')];
    const names = ['W', 'b', 'v', 'q', 'r', 'c'];
    const init = (): Arrays => Object.fromEntries(names.map((k) => [k, Float32Array.from({ length: { W: 20, b: 5, v: 2, q: 3, r: 3, c: 4 }[k]! }, (_, i) => Math.sin(i + k.charCodeAt(0)) * 0.5)]));
    for (const B of [3, 37, 1]) {
      const at = `B = ${B}`;
      const { params, inputs } = randomArgs(c.fwd, B, 0.5, { B });
      const ref = reference(c.fwd, c.bwd, params, inputs);
      const got = copyOf(wasm.valueAndGrad(params, inputs));
      expect(relErr([got.loss], [ref.outputs.loss!.data[0]!]), `${at}: loss`).toBeLessThan(1e-5);
      for (const [p, g] of Object.entries(ref.grads)) {
        const err = relErr(got.grads[p]!, g);
        expect(err, `${at}: d loss / d ${p}`).toBeLessThan(gradTolerance(g, () => reference(c.fwd, c.bwd, params, inputs, { float32: true }).grads[p]!, err));
      }
      const outs = wasm.forward(params, inputs);
      for (const o of ['h', 'k', 'pd', 'bk']) expect(relErr(outs[o] as Float32Array, ref.outputs[o]!.data), `${at}: ${o}`).toBeLessThan(1e-5);
    }
    // trainStep and applyGradients as the flat module's (its update a JS loop per param)
    const [pw, pf] = [init(), init()];
    const [sw, sf] = [wasm.initOptState(pw), flat.initOptState(pf)];
    for (const [k, B] of [3, 37, 3].entries()) {
      const { inputs } = randomArgs(c.fwd, 10 + k, 0.5, { B });
      const [lw, lf] = [wasm.trainStep(pw, sw, inputs).loss, flat.trainStep(pf, sf, inputs).loss];
      expect(relErr([lw], [lf]), `step ${k + 1}, B = ${B}: loss vs the flat module`).toBeLessThan(1e-5);
    }
    const grads: Arrays = Object.fromEntries(names.map((k) => [k, (pw[k] as Float32Array).map((x, i) => 0.1 * x + 0.01 * i)]));
    wasm.applyGradients(pw, sw, grads);
    flat.applyGradients(pf, sf, grads);
    for (const k of names) {
      expect(relErr(pw[k] as Float32Array, pf[k] as Float32Array), `${k}`).toBeLessThan(1e-5);
      for (const slot of ['exp_avg', 'exp_avg_sq']) expect(relErr((sw[slot] as Arrays)[k] as Float32Array, (sf[slot] as Arrays)[k] as Float32Array), `${slot}.${k}`).toBeLessThan(1e-5);
    }
  }, 60_000);

  it('every elementwise, reduction and layout group is one kernel encoded at build time, its sizes read at run time: transposes, a mid axis, one-hot, [B,B], two symbols, concatenations and a pad (along an axis of a symbolic stride too; along axes of strides of different symbols, B·2 and 1, B·T·6, T·3 and 1), a constant, a pick; and the index routines over lines (argmax, argmin, cumsum, and softmax and log_softmax rows of a symbolic length too), argmax_mask (over a symbolic axis too) and max_pool_pick', async () => {
    const { c, mod } = await buildWasm(
      modelFile(`import { model } from 'graphc';
export default model('forms_sym', (g) => {
  const x = g.input('x', [3, 'B', 2]);
  const s = g.input('s', ['B', 1]);
  const y = g.input('y', ['B'], 'i32');
  const z = g.input('z', ['B', 'T']);
  const z3 = g.input('z3', ['B', 'T', 4]);
  const w = g.param('w', [2]);
  const v = g.param('v', [3, 2]);
  const u = g.param('u', [5]);
  const p4 = g.input('p4', ['B', 2, 4, 4]);
  const u4 = g.param('u4', [4]);
  const z5 = g.input('z5', [2, 'B', 2, 'T', 3]);
  const h = x.mul(w).tanh(); // [3,B,2]
  const a = h.transpose([1, 0, 2]).mul(v).sum(); // [B,3,2]: strides B·2, 2, 1
  const b = h.transpose([2, 1, 0]).square().mean(1); // [2,3]: a reduction over the middle, symbolic stride
  const d = s.sub(s.reshape(['B'])).square().max(0); // [B,B] reduced to [B]
  const oh = g.oneHot(y, 5).mul(u).sum(1); // a coordinate
  const e = z.tanh().sub(z.mean(0)).square().sum(1); // [B,T]: a mean over B (its bound size)
  const k = g.concat([s, s.mul(g.const([0.5])).tanh(), s.square()], 1).mul(g.const([1, -2, 3])); // [B,3]: boxes of a copy, a constant array
  const pk = g.pick(s.mul(u).tanh(), y); // [B]: an index routine with a symbolic number of rows
  // index routines over B·2 (B·3) lines: a cumsum, a softmax and a log_softmax along the middle axis, argmax, argmin
  const t3 = h.transpose([1, 0, 2]); // [B,3,2]
  const cs = t3.cumsum(1).square().mean();
  const sm = g.softmax(t3, 1).mul(v).sum().add(g.logSoftmax(t3.mul(v), 1).mean()).add(g.softmax(t3.mul(v), 2).square().sum()); // and the row kernel over B·3 rows of 2
  const mx = t3.max(2).mul(v.sum(1)).sum(); // its gradient: an argmax_mask over [B,3,2], the kept B a run-time extent
  const am = t3.argmax(1);
  const an = t3.argmin(2);
  // max_pool_pick over B·2 planes: the second derivative of a max pooling (a g.grad inside the model)
  const q = p4.mul(u4);
  const [dq] = g.grad(g.maxPool2d(q, 2).square().sum(), [q]);
  const mp = dq.mul(q).mean();
  // index routines of static sizes in this module (lines of a constant count): kernels read as whole, no JS loop
  const st = g.softmax(v, 0).mul(v).sum().add(v.cumsum(1).square().sum());
  // and with the symbolic size along or after the line's axis: lines of length B (3 apart), of length T
  const amB = k.argmax(0);
  const anT = z.argmin(1);
  const csT = z.tanh().cumsum(1).square().mean().add(z3.mul(u4).cumsum(1).square().mean()); // along T (the gradient from the end; four columns at once)
  const mxB = t3.max(0).square().sum(); // its gradient: an argmax_mask reducing B
  const lsT = g.logSoftmax(z.mul(u4.sum()), 1); // rows of T, four elements at a time
  const smT = g.softmax(z.tanh().mul(u4.sum()), 1); // likewise
  // softmax and log_softmax along an axis other than the last, of a symbolic length or before a symbolic axis: four adjacent lines at once, the rest one by one
  const smA = g.softmax(z3.mul(u4), 1); // [B,T,4] along T: four lines at once
  const lsA = g.logSoftmax(h.mul(v.sum(0)), 0); // [3,B,2] along 3, B·2 apart: four lines at once, then the rest
  const lsB = g.logSoftmax(z.mul(u4.sum()), 0); // [B,T] along B, T apart
  const smB = g.softmax(x.mul(w), 1); // [3,B,2] along B, 2 apart: one line at a time
  // index routines over views that are not their arrays' elements in order (a transposed table, a flipped narrow, a flip): layout kernels write them dense first
  const tw = g.param('tw', [3, 5]);
  const gt = g.gather(tw.transpose([1, 0]), y).mul(s).tanh().sum();
  const cf = x.flip(2).narrow(0, 1, 2).cumsum(0).square().mean();
  const af = k.flip(1).argmax(1);
  const ax = h.argmax(0); // [3,B,2] along 3, B·2 apart (a run-time inner size: four columns at once where four are left)
  const sym = gt.add(cf).add(smA.square().sum().add(lsA.square().mean()).add(lsB.square().mean()).add(smB.mul(h).sum()));
  // a concatenation and a pad along axis 0 of [3,B,2], whose stride is B·2: boxes at run-time addresses
  const cp = g.concat([h, x.square()], 0).mul(g.const([1, 2, 3, 4, 5, 6]).reshape([6, 1, 1]));
  const pd = g.pad(h, [[1, 2], [0, 0], [0, 0]]);
  // pads whose start is a sum of sizes of different symbols: 2·B + 1, and 6·B·T + 3·T + 1 (their gradients: slices from there)
  const pd2 = g.pad(h.mul(v.sum(0)), [[1, 0], [0, 0], [1, 0]]);
  const pd3 = g.pad(z5.mul(u4.sum()).sin(), [[1, 0], [0, 0], [1, 0], [0, 0], [1, 1]]);
  const loss = a.add(b.sum()).add(d.mean()).add(oh.square().mean()).add(e.mean()).add(k.sum()).add(pk.mean()).add(cs).add(sm).add(mx).add(mp).add(st);
  return { loss: loss.add(csT).add(mxB).add(lsT.mean()).add(cp.sum()).add(pd.square().mean()).add(smT.square().sum()).add(pd2.square().mean()).add(pd3.square().mean()).add(sym), b, d, e, k, am, an, amB, anT, cp, pd, pd2, pd3, lsT, smT, smA, lsA, lsB, smB, af, ax };
});
`),
    );
    const code = c.files.find((f) => f.name === 'forms_sym.wasm.ts')!.content as string;
    // no group of the kernel form runs as a JS loop, and none is encoded per size: one kernel each in the build-time module
    expect(kernelJsSteps(code)).toEqual([]);
    expect(jsLoopSteps(code)).toEqual([]);
    expect(code).toContain('forms.pick_pk();');
    expect(code).toMatch(/argmax of [^\n]* lines of 3 \(the first; a NaN wins, four columns at once\)/); // ax: a run-time inner size
    for (const k of ['argmax_amB', 'argmin_anT', 'log_softmax_lsT', 'softmax_smT', 'softmax_smA', 'log_softmax_lsA', 'log_softmax_lsB', 'softmax_smB', 'argmax_af']) expect(code).toContain(`forms.${k}();`);
    expect(code).toMatch(/softmax_smA: .*four lines at a time/);
    expect((code.match(/^ +forms\.cumsum_\w+\(\);$/gm) ?? []).length).toBeGreaterThanOrEqual(6); // along T: two forward, two from the end
    expect((code.match(/^ +forms\.argmax_mask_\w+\(\);$/gm) ?? []).length).toBe(2); // over axis 2, and over B
    for (const op of ['argmax', 'argmin', 'cumsum', 'softmax', 'log_softmax', 'argmax_mask', 'max_pool_pick', 'gather', 'scatter_add']) expect(code, op).toMatch(new RegExp(`^ +forms\\.${op}_\\w+\\(\\);$`, 'm'));
    expect(code).not.toMatch(/elementwiseBody|reduceBody|channelBody/);
    const forms = code.match(/^ {4}forms\.kernel_\w+\(\);$/gm) ?? [];
    expect(forms.length).toBeGreaterThanOrEqual(10);
    const first = new Map<string, ReturnType<typeof copyOf>>();
    for (const [B, T] of [[3, 5], [37, 2], [1, 1], [1, 6], [3, 5]] as const) {
      const at = `B = ${B}, T = ${T}`;
      const { params, inputs } = randomArgs(c.fwd, B * 100 + T, 0.5, { B, T });
      inputs.y = Int32Array.from({ length: B }, (_, i) => (i * 3) % 5);
      const ref = reference(c.fwd, c.bwd, params, inputs);
      const got = copyOf(mod.valueAndGrad(params, inputs));
      expect(relErr([got.loss], [ref.outputs.loss!.data[0]!]), `${at}: loss`).toBeLessThan(1e-5);
      for (const [p, g] of Object.entries(ref.grads)) {
        const err = relErr(got.grads[p]!, g);
        expect(err, `${at}: d loss / d ${p}`).toBeLessThan(gradTolerance(g, () => reference(c.fwd, c.bwd, params, inputs, { float32: true }).grads[p]!, err));
      }
      const outs = mod.forward(params, inputs);
      for (const o of ['b', 'd', 'e', 'k', 'cp', 'pd', 'pd2', 'pd3', 'lsT', 'smT', 'smA', 'lsA', 'lsB', 'smB']) expect(relErr(outs[o] as Float32Array, ref.outputs[o]!.data), `${at}: ${o}`).toBeLessThan(1e-5);
      for (const o of ['am', 'an', 'amB', 'anT', 'af', 'ax']) expect(Array.from(outs[o] as unknown as Int32Array), `${at}: ${o}`).toEqual(Array.from(ref.outputs[o]!.data));
      const key = `${B},${T}`;
      if (first.has(key)) expect(got, `${at} again`).toEqual(first.get(key));
      else first.set(key, got);
    }
  }, 60_000);
});
