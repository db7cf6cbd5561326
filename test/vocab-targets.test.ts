// A model made of PyTorch's vocabulary (issue #31: activations, masks, einsum, split/stack/pad,
// normalize, logsumexp, var, the losses with their options, kaiming/xavier inits) built for
// every target: the flat, wasm and GPU.js (cpu) modules against the float64 interpreter; its
// forward exported to ONNX (run by ONNX Runtime) and to PyTorch (run by /usr/bin/python3's torch,
// loss and gradients; skipped without torch). The init formulas against torch.nn.init's.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import { exportFile } from '../src/onnx/index.js';
import { exportTorchFile } from '../src/torch/index.js';
import type { Arrays, GeneratedModule, GpuModule } from './helpers.js';
import { modelFile, reference, relErr, rng, randn, tmp } from './helpers.js';

ort.env.wasm.numThreads = 1;

const MODEL = `import { model } from 'graphc';
export default model('vocab_mlp', (g) => {
  const x = g.input('x', [6, 5]);
  const t = g.input('t', [6], 'i32');
  const W1 = g.param('W1', [5, 8], { init: 'kaimingUniform' });
  const W2 = g.param('W2', [8, 4], { init: 'xavierNormal', gain: 0.5 });
  const b1 = g.param('b1', [8], { init: 'uniform', scale: 0.1 });
  const h = x.matmul(W1).add(b1);
  const [left, right] = h.split([3, 5], 1);
  const act = g.concat([left.silu(), right.leakyRelu(0.2).elu().clamp(-0.5, 2)], 1);
  const gated = g.where(act.gt(0), act, act.mul(0.5)).maskedFill(act.lt(-0.4), 0);
  const n = g.normalize(gated, { axis: -1 }).add(gated.logSigmoid().mul(0.1));
  const logits = g.einsum('ij,jk->ik', n, W2).add(g.stack([W2.sum(0), W2.min(0)], 0).logsumexp(0));
  const padded = g.pad(logits, [[0, 0], [0, 1]], -30);
  const ce = g.crossEntropy(padded, t, { labelSmoothing: 0.1, weight: [1, 2, 1, 0.5, 1], ignoreIndex: 4 });
  const perRow = g.mseLoss(logits, logits.softplus().stopGradient(), { reduction: 'none' }).mean(1);
  const bce = g.binaryCrossEntropyWithLogits(logits, g.oneHot(t, 5).narrow(1, 0, 4), { posWeight: [1, 2, 1, 1] });
  const loss = ce.add(perRow.mean().mul(0.1)).add(bce).add(h.var(0).mean().mul(0.01)).add(g.cosineSimilarity(logits, W2.sum(0)).mean().mul(0.1));
  return { loss, logits, perRow };
});
`;

const file = modelFile(MODEL, 'vocab_mlp.ts');
const r = rng(5);
const inputs: Arrays = { x: Float32Array.from({ length: 30 }, () => randn(r)), t: Int32Array.of(0, 1, 2, 3, 4, 2) };

describe('a model of PyTorch vocabulary on every target', () => {
  it('flat, wasm and GPU.js (cpu): loss, outputs and gradients as the float64 interpreter', async () => {
    const c = await compile(file, { targets: ['ts', 'gpu', 'wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const load = async <T>(suffix: string) => (await import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href)) as T;
    const flat = await load<GeneratedModule>('');
    const wasm = await load<GeneratedModule>('.wasm');
    const gpu = await (await load<GpuModule>('.gpu')).create({ mode: 'cpu' });
    const params = flat.initParams(3);
    const ref = reference(c.fwd, c.bwd, params, inputs);
    const check = (what: string, out: Record<string, number | Float32Array>, grads: Record<string, Float32Array>) => {
      expect(relErr([out.loss as number], ref.outputs.loss!.data), `${what}: loss`).toBeLessThan(1e-5);
      for (const k of ['logits', 'perRow']) expect(relErr(out[k] as Float32Array, ref.outputs[k]!.data), `${what}: ${k}`).toBeLessThan(1e-5);
      for (const k of Object.keys(params)) expect(relErr(grads[k]!, ref.grads[k]!), `${what}: d loss / d ${k}`).toBeLessThan(1e-4);
    };
    try {
      for (const [what, mod] of [['flat', flat], ['wasm', wasm]] as const) check(what, mod.forward(params, inputs), mod.valueAndGrad(params, inputs).grads);
      check('GPU.js (cpu)', await gpu.forward(params, inputs), (await gpu.valueAndGrad(params, inputs)).grads);
    } finally {
      gpu.destroy();
    }
  });

  it('softplus, logSigmoid and BCE with logits keep the relative precision of their tails (e^−20, e^−40) on flat, wasm and GPU.js (cpu)', async () => {
    const tails = modelFile(
      `import { model } from 'graphc';
export default model('tails', (g) => {
  const x = g.input('x', [6]);
  const y = x.mul(g.param('w', [1], { init: 'ones' }));
  const bce = g.binaryCrossEntropyWithLogits(y, g.const([0, 1, 0, 1, 0, 1]), { reduction: 'none' });
  return { loss: bce.sum(), softplus: y.softplus(), logSigmoid: y.neg().logSigmoid(), bce };
});
`,
      'tails.ts',
    );
    const c = await compile(tails, { targets: ['ts', 'gpu', 'wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const load = async <T>(suffix: string) => (await import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href)) as T;
    const x = Float32Array.of(-20, 20, -17, 17, -40, 40);
    const sp = (v: number) => Math.log1p(Math.exp(v));
    const want: Record<string, number[]> = {
      softplus: Array.from(x, (v) => (v > 20 ? v : sp(v))),
      logSigmoid: Array.from(x, (v) => -sp(v)),
      // t = 0: softplus(x); t = 1: softplus(−x): e^−20, e^−17, e^−40 each
      bce: Array.from(x, (v, i) => sp(i % 2 ? -v : v)),
    };
    const gpu = await (await load<GpuModule>('.gpu')).create({ mode: 'cpu' });
    try {
      const mods = [['flat', (await load<GeneratedModule>('')).forward], ['wasm', (await load<GeneratedModule>('.wasm')).forward], ['GPU.js (cpu)', gpu.forward]] as const;
      for (const [what, forward] of mods) {
        const out = await forward({ w: Float32Array.of(1) }, { x });
        for (const [k, w] of Object.entries(want))
          w.forEach((v, i) => expect(Math.abs((out[k] as Float32Array)[i]! - v), `${what}: ${k}(${x[i]}) = ${(out[k] as Float32Array)[i]}, want ${v}`).toBeLessThanOrEqual(1e-6 * Math.abs(v)));
      }
    } finally {
      gpu.destroy();
    }
  });

  it('exports to ONNX (run by ONNX Runtime) with the flat module\'s outputs', async () => {
    const c = await compile(file, { targets: ['ts'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const flat = (await import(pathToFileURL(path.join(dir, `${c.name}.js`)).href)) as GeneratedModule;
    const { bytes } = await exportFile(file);
    const session = await ort.InferenceSession.create(bytes);
    const got = await session.run({ x: new ort.Tensor('float32', inputs.x as Float32Array, [6, 5]), t: new ort.Tensor('int32', inputs.t as Int32Array, [6]) });
    await session.release();
    const want = flat.forward(flat.initParams(0), inputs);
    expect(relErr(got.logits!.data as Float32Array, want.logits as Float32Array)).toBeLessThan(1e-5);
    expect(relErr(got.perRow!.data as Float32Array, want.perRow as Float32Array)).toBeLessThan(1e-5);
    expect(relErr(got.loss!.data as Float32Array, [want.loss as number])).toBeLessThan(1e-5);
  });

  const torchOk = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!torchOk)('exports to PyTorch: its loss and autograd gradients are the flat module\'s', async () => {
    const c = await compile(file, { targets: ['ts'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const flat = (await import(pathToFileURL(path.join(dir, `${c.name}.js`)).href)) as GeneratedModule;
    const { source } = await exportTorchFile(file);
    const py = path.join(dir, 'exported.py');
    writeFileSync(py, source);
    const script = `
import importlib.util, json, sys, torch
spec = importlib.util.spec_from_file_location("exported", ${JSON.stringify(py)})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
m = mod.vocab_mlp(); m.train()
out = m(x=torch.tensor(${JSON.stringify(Array.from(inputs.x!))}).reshape(6, 5), t=torch.tensor(${JSON.stringify(Array.from(inputs.t!))}, dtype=torch.int32))
out["loss"].backward()
print(json.dumps({"loss": out["loss"].item(), "grads": {k: t.grad.reshape(-1).tolist() for k, t in m.graphc_tensors().items() if k in m.GRAPHC_PARAMS}}))
`;
    const p = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8' });
    expect(p.stderr).toBe('');
    const got = JSON.parse(p.stdout) as { loss: number; grads: Record<string, number[]> };
    const want = flat.valueAndGrad(flat.initParams(0), inputs);
    expect(relErr([got.loss], [want.loss])).toBeLessThan(1e-5);
    for (const k of Object.keys(want.grads)) expect(relErr(got.grads[k]!, want.grads[k]!), k).toBeLessThan(1e-4);
  });
});

describe("param inits as torch.nn.init's formulas (fan-in of [in, out] is shape[0]; of a conv weight the product of shape[1:])", () => {
  it('kaiming and xavier give the scale of N(0,1) or U(−1,1) that torch computes', async () => {
    const src = `import { model } from 'graphc';
export default model('inits', (g) => {
  const a = g.param('a', [50, 20], { init: 'kaimingUniform' });
  const b = g.param('b', [50, 20], { init: 'kaimingNormal', a: 0.1 });
  const c = g.param('c', [50, 20], { init: 'xavierUniform', gain: 2 });
  const d = g.param('d', [8, 3, 5, 5], { init: 'xavierNormal' });
  const e = g.param('e', [8, 3, 5, 5], { init: 'kaimingUniform', scale: 0.5 });
  return a.sum().add(b.sum()).add(c.sum()).add(d.sum()).add(e.sum());
});
`;
    const c = await compile(modelFile(src, 'inits.ts'), { targets: ['ts'] });
    const attrs = Object.fromEntries(c.fwd.insts.flatMap((i) => (i.op === 'param' ? [[i.attrs.name, i.attrs]] : [])));
    const want = {
      a: { init: 'uniform', scale: Math.sqrt(2) * Math.sqrt(3 / 50) },
      b: { init: 'randn', scale: Math.sqrt(2 / (1 + 0.01)) / Math.sqrt(50) },
      c: { init: 'uniform', scale: 2 * Math.sqrt(6 / 70) },
      d: { init: 'randn', scale: Math.sqrt(2 / (75 + 200)) },
      e: { init: 'uniform', scale: 0.5 * Math.sqrt(2) * Math.sqrt(3 / 75) },
    };
    for (const [k, w] of Object.entries(want)) {
      expect(attrs[k]!.init, k).toBe(w.init);
      expect(attrs[k]!.scale, k).toBeCloseTo(w.scale, 12);
    }
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const mod = (await import(pathToFileURL(path.join(dir, `${c.name}.js`)).href)) as GeneratedModule;
    const p = mod.initParams(0);
    const bound = want.a.scale;
    expect(Math.max(...p.a!.map(Math.abs))).toBeLessThanOrEqual(bound * (1 + 1e-6));
    expect(Math.max(...p.a!.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    const sd = Math.sqrt(p.b!.reduce((s, v) => s + v * v, 0) / p.b!.length);
    expect(Math.abs(sd / want.b.scale - 1)).toBeLessThan(0.1);
  });
});
