// PyTorch's layers (issue #31): batchNorm over NCHW's channels with torch's correction and running
// statistics, layerNorm over gain's axes, groupNorm, convTranspose1d/2d, upsample (nearest,
// bilinear, alignCorners, float scales) and adaptiveAvgPool2d, in one model. The float64
// interpreter against torch 1.13 itself in float64 (outputs, loss, autograd gradients, running
// statistics; skipped without /usr/bin/python3's torch) and against finite differences; every
// target (flat, wasm, wasm on 2 threads, GPU.js cpu) against the interpreter, in training and in
// evaluation; the ONNX export run by ONNX Runtime, the torch export's gradients; the rewrite's
// fused ops; the DSL's errors.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { compile, compileGraphs } from '../src/build.js';
import { CompileError } from '../ir/errors.js';
import { exportFile } from '../src/onnx/index.js';
import { exportTorchFile } from '../src/torch/index.js';
import { interpret, outputsOf } from '../ir/interp.js';
import type { Arrays } from './helpers.js';
import { gradTolerance, modelFile, randomArgs, relErr, tmp } from './helpers.js';

ort.env.wasm.numThreads = 1;

const OUTS = ['bn', 'bn2', 'gn', 'ln', 'ct', 'ctg', 'ct1', 'upN', 'upF', 'upB', 'upA', 'ap', 'ap2'] as const;

const MODEL = `import { model } from 'graphc';
export default model('layers', (g) => {
  const x = g.input('x', [2, 4, 5, 6]);
  const x1 = g.input('x1', [2, 4, 7]);
  const bnG = g.param('bn_g', [4], { init: 'uniform' });
  const bnB = g.param('bn_b', [4], { init: 'uniform' });
  const bn = g.batchNorm(x, bnG, bnB, { axis: 1, correction: 0, momentum: 0.1 });
  const bn2 = g.batchNorm(x.tanh(), bnG, bnB, { axis: 1 });
  const gn = g.groupNorm(bn, 2, g.param('gn_g', [4], { init: 'uniform' }), g.param('gn_b', [4]), { eps: 1e-3 });
  const ln = g.layerNorm(gn.add(bn2), g.param('ln_g', [5, 6], { init: 'uniform' }), g.param('ln_b', [5, 6]));
  const ct = g.convTranspose2d(ln, g.param('ct_W', [4, 3, 3, 3]), { stride: 2, padding: 1, outputPadding: 1, bias: g.param('ct_b', [3]) });
  const ctg = g.convTranspose2d(bn2, g.param('ctg_W', [4, 1, 2, 2]), { groups: 2, dilation: 2, stride: [1, 2] });
  const ct1 = g.convTranspose1d(x1, g.param('ct1_W', [4, 2, 3]), { stride: 3, padding: 1, outputPadding: 2 });
  const upN = g.upsample(ln, { scale: 2 });
  const upF = g.upsample(ln, { scale: [1.5, 2.5] });
  const upB = g.upsample(ln, { scale: 1.5, mode: 'bilinear' });
  const upA = g.upsample(ln, { scale: [2, 0.7], mode: 'bilinear', alignCorners: true });
  const ap = g.adaptiveAvgPool2d(ct, [3, 5]);
  const ap2 = g.adaptiveAvgPool2d(ct, [5, 4]);
  const outs = { bn, bn2, gn, ln, ct, ctg, ct1, upN, upF, upB, upA, ap, ap2 };
  let total = x.sum().mul(0);
  for (const [k, v] of Object.entries(outs)) total = total.add(v.mul(g.input('r_' + k, v.dims)).sum());
  return { loss: total, ...outs };
});
`;

const SHAPES: Record<string, number[]> = {
  bn: [2, 4, 5, 6], bn2: [2, 4, 5, 6], gn: [2, 4, 5, 6], ln: [2, 4, 5, 6], ct: [2, 3, 10, 12], ctg: [2, 2, 7, 13], ct1: [2, 2, 21],
  upN: [2, 4, 10, 12], upF: [2, 4, 7, 15], upB: [2, 4, 7, 9], upA: [2, 4, 10, 4], ap: [2, 3, 3, 5], ap2: [2, 3, 5, 4],
};

const TORCH = `
import json, sys, torch
import torch.nn.functional as F
d = json.load(sys.stdin)
t = lambda v, s: torch.tensor(v, dtype=torch.float64).reshape(s)
P = {k: t(v["data"], v["shape"]).requires_grad_() for k, v in d["params"].items()}
I = {k: t(v["data"], v["shape"]) for k, v in d["inputs"].items()}
x = I["x"]
rm, rv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
bn = F.batch_norm(x, rm, rv, P["bn_g"], P["bn_b"], training=True, momentum=0.1, eps=1e-5)
h = torch.tanh(x)
mu = h.mean((0, 2, 3), keepdim=True)
var = ((h - mu) ** 2).sum((0, 2, 3), keepdim=True) / (h.numel() / 4 - 1)
bn2 = (h - mu) / torch.sqrt(var + 1e-5) * P["bn_g"].reshape(4, 1, 1) + P["bn_b"].reshape(4, 1, 1)
gn = F.group_norm(bn, 2, P["gn_g"], P["gn_b"], eps=1e-3)
ln = F.layer_norm(gn + bn2, [5, 6], P["ln_g"], P["ln_b"], eps=1e-5)
o = dict(bn=bn, bn2=bn2, gn=gn, ln=ln,
  ct=F.conv_transpose2d(ln, P["ct_W"], P["ct_b"], stride=2, padding=1, output_padding=1),
  ctg=F.conv_transpose2d(bn2, P["ctg_W"], None, stride=(1, 2), groups=2, dilation=2),
  ct1=F.conv_transpose1d(I["x1"], P["ct1_W"], None, stride=3, padding=1, output_padding=2),
  upN=F.interpolate(ln, scale_factor=2, mode="nearest"),
  upF=F.interpolate(ln, scale_factor=(1.5, 2.5), mode="nearest"),
  upB=F.interpolate(ln, scale_factor=1.5, mode="bilinear", align_corners=False),
  upA=F.interpolate(ln, scale_factor=(2, 0.7), mode="bilinear", align_corners=True))
o["ap"] = F.adaptive_avg_pool2d(o["ct"], (3, 5))
o["ap2"] = F.adaptive_avg_pool2d(o["ct"], (5, 4))
loss = sum((v * I["r_" + k]).sum() for k, v in o.items())
loss.backward()
print(json.dumps({"loss": loss.item(), "outputs": {k: v.detach().reshape(-1).tolist() for k, v in o.items()},
  "shapes": {k: list(v.shape) for k, v in o.items()},
  "grads": {k: v.grad.reshape(-1).tolist() for k, v in P.items()}, "running_mean": rm.tolist(), "running_var": rv.tolist()}))
`;

const torchOk = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const file = modelFile(MODEL, 'layers.ts');
const f64 = (a: Arrays) => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, Float64Array.from(v)]));

type Opts = { train?: boolean; seed?: number; buffers?: Record<string, Float32Array> };
type Out = Record<string, number | Float32Array>;
type VG = { loss: number; grads: Record<string, Float32Array> };
interface Mod {
  forward(p: Arrays, i: Arrays, o?: Opts): Out;
  valueAndGrad(p: Arrays, i: Arrays, o?: Opts): VG;
  initBuffers(): Record<string, Float32Array>;
  initParams(seed?: number): Record<string, Float32Array>;
}

async function built(targets: ('ts' | 'gpu' | 'wasm')[]) {
  const c = await compile(file, { targets });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const load = async <T>(suffix: string) => (await import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href)) as T;
  return { c, dir, load };
}

describe('PyTorch layers', () => {
  it('the fused normalisations: bn_apply over NCHW axis 1 (torch\'s and the lecture\'s correction), ln_apply for groupNorm and layerNorm over [5, 6]', async () => {
    const { c } = await built(['ts']);
    const fused = c.fwd.insts.filter((i) => i.op === 'bn_apply' || i.op === 'ln_apply').map((i) => `${i.op} ${JSON.stringify(i.attrs)}`);
    expect(fused.sort()).toEqual(['bn_apply {"axis":1,"correction":0}', 'bn_apply {"axis":1}', 'ln_apply {}', 'ln_apply {}']);
    expect(c.fwd.insts.filter((i) => i.op === 'conv_input_grad')).toHaveLength(3);
  });

  it.skipIf(!torchOk)('the float64 interpreter computes what torch 1.13 computes in float64: outputs, loss, gradients, running statistics', async () => {
    const { c } = await built(['ts']);
    const { params, inputs } = randomArgs(c.fwd, 7);
    const buffers = { 'bn.running_mean': new Float64Array(4), 'bn.running_var': new Float64Array(4).fill(1) };
    const vals = interpret(c.fwd, { params, inputs, train: true, buffers });
    const bv = interpret(c.bwd, { fwd: vals });
    const shapeOf = (k: string) => c.fwd.type(c.fwd.outputs.find((o) => o.name === k)!.value).shape;
    const json = (a: Arrays, k: string) => ({ data: Array.from(a[k]!), shape: (k in params ? c.fwd.type(c.fwd.insts.find((i) => i.op === 'param' && i.attrs.name === k)!.result) : c.fwd.type(c.fwd.insts.find((i) => i.op === 'input' && i.attrs.name === k)!.result)).shape });
    const payload = { params: Object.fromEntries(Object.keys(params).map((k) => [k, json(params, k)])), inputs: Object.fromEntries(Object.keys(inputs).map((k) => [k, json(inputs, k)])) };
    const p = spawnSync('/usr/bin/python3', ['-c', TORCH], { input: JSON.stringify(payload), encoding: 'utf8' });
    expect(p.stderr).toBe('');
    const got = JSON.parse(p.stdout) as { loss: number; outputs: Record<string, number[]>; shapes: Record<string, number[]>; grads: Record<string, number[]>; running_mean: number[]; running_var: number[] };
    for (const k of OUTS) {
      expect(got.shapes[k], k).toEqual(SHAPES[k]);
      expect(shapeOf(k), k).toEqual(SHAPES[k]);
      expect(relErr(vals.get(k)!.data, got.outputs[k]!), k).toBeLessThan(1e-12);
    }
    expect(relErr(outputsOf(c.fwd, vals).loss!.data, [got.loss])).toBeLessThan(1e-12);
    for (const o of c.bwd.outputs) expect(relErr(bv.get(c.bwd.value(o.value).name)!.data, got.grads[o.name]!), `d loss / d ${o.name}`).toBeLessThan(1e-11);
    expect(relErr(outputsOf(c.fwd, vals)['bn.running_mean']!.data, got.running_mean)).toBeLessThan(1e-12);
    expect(relErr(outputsOf(c.fwd, vals)['bn.running_var']!.data, got.running_var)).toBeLessThan(1e-12);
  });

  it('gradients agree with finite differences of the float64 loss (a training call)', async () => {
    const { c } = await built(['ts']);
    const { params, inputs } = randomArgs(c.fwd, 8);
    // finiteDiff evaluates in evaluation mode: bn's running statistics (not x's) there, so the
    // check runs on the evaluation graph's gradient, valueAndGrad(..., { train: false })
    const buffers = { 'bn.running_mean': Float64Array.of(0.1, -0.2, 0.3, 0), 'bn.running_var': Float64Array.of(1, 2, 0.5, 1.5) };
    const vals = interpret(c.fwd, { params, inputs, buffers });
    const bv = interpret(c.bwd, { fwd: vals });
    const lossAt = (p: Record<string, Float64Array>) => outputsOf(c.fwd, interpret(c.fwd, { params: p, inputs, buffers })).loss!.data[0]!;
    for (const o of c.bwd.outputs) {
      const g = bv.get(c.bwd.value(o.value).name)!.data;
      const p64 = f64(params);
      for (const i of [0, Math.floor(g.length / 2), g.length - 1]) {
        const x0 = p64[o.name]![i]!;
        const h = 1e-4 * Math.max(1, Math.abs(x0));
        const at = (d: number) => {
          p64[o.name]![i] = x0 + d * h;
          return lossAt(p64);
        };
        const fd = (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * h);
        p64[o.name]![i] = x0;
        expect(Math.abs(fd - g[i]!), `d loss / d ${o.name}[${i}]: ${g[i]} vs ${fd}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
      }
    }
    // and of a training call's loss, where the batch statistics depend on the params (finiteDiff's)
    const tv = interpret(c.fwd, { params, inputs, train: true, buffers });
    const tg = interpret(c.bwd, { fwd: tv });
    const trainLoss = (p: Record<string, Float64Array>) => outputsOf(c.fwd, interpret(c.fwd, { params: p, inputs, train: true, buffers })).loss!.data[0]!;
    for (const name of ['bn_g', 'gn_g', 'ln_g', 'ct_W']) {
      const g = tg.get(c.bwd.value(c.bwd.outputs.find((o) => o.name === name)!.value).name)!.data;
      const p64 = f64(params);
      const x0 = p64[name]![1]!;
      const h = 1e-4 * Math.max(1, Math.abs(x0));
      const at = (d: number) => {
        p64[name]![1] = x0 + d * h;
        return trainLoss(p64);
      };
      const fd = (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * h);
      expect(Math.abs(fd - g[1]!), `training: d loss / d ${name}[1]`).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
    }
  });
});

describe('PyTorch layers on every target', () => {
  it('flat, wasm, wasm on 2 threads and GPU.js (cpu) as the float64 interpreter: training calls (gradients, running statistics) and evaluation', async () => {
    const { c, load } = await built(['ts', 'gpu', 'wasm']);
    const flat = await load<Mod>('');
    const wasm = await load<Mod & { create(o: { threads: number; minWork: number }): Promise<Mod & { destroy(): Promise<void> }> }>('.wasm');
    const threaded = await wasm.create({ threads: 2, minWork: 0 });
    const gpu = await (await load<{ create(o: { mode: string }): Promise<{ forward(p: Arrays, i: Arrays, o?: Opts): Promise<Out>; valueAndGrad(p: Arrays, i: Arrays, o?: Opts): Promise<VG>; destroy(): void }> }>('.gpu')).create({ mode: 'cpu' });
    const { params, inputs } = randomArgs(c.fwd, 9);
    const start = { 'bn.running_mean': Float32Array.of(0.1, -0.2, 0.3, 0), 'bn.running_var': Float32Array.of(1, 2, 0.5, 1.5) };
    const copy = () => Object.fromEntries(Object.entries(start).map(([k, v]) => [k, Float32Array.from(v)]));
    const ref = (train: boolean) => {
      const vals = interpret(c.fwd, { params, inputs, train, buffers: f64(start) });
      const bv = interpret(c.bwd, { fwd: vals });
      const grads32 = () => {
        const v32 = interpret(c.fwd, { params, inputs, train, buffers: f64(start), float32: true });
        const b32 = interpret(c.bwd, { fwd: v32, float32: true });
        return Object.fromEntries(c.bwd.outputs.map((o) => [o.name, b32.get(c.bwd.value(o.value).name)!.data]));
      };
      return { out: outputsOf(c.fwd, vals), grads: Object.fromEntries(c.bwd.outputs.map((o) => [o.name, bv.get(c.bwd.value(o.value).name)!.data])), grads32 };
    };
    const train = ref(true);
    const evaluation = ref(false);
    const check = (what: string, out: Out, vg: VG, buffers: Record<string, Float32Array>, want: ReturnType<typeof ref>, trained: boolean) => {
      for (const k of OUTS) expect(relErr(out[k] as Float32Array, want.out[k]!.data), `${what}: ${k}`).toBeLessThan(2e-5);
      expect(relErr([vg.loss], want.out.loss!.data), `${what}: loss`).toBeLessThan(2e-5);
      // gn_b's gradient cancels (layerNorm over [5, 6] removes a per-channel shift): float32's error there
      for (const [k, g] of Object.entries(want.grads)) {
        const e = relErr(vg.grads[k]!, g);
        expect(e, `${what}: d loss / d ${k}`).toBeLessThanOrEqual(gradTolerance(g, () => want.grads32()[k]!, e));
      }
      if (trained) for (const k of Object.keys(start)) expect(relErr(buffers[k]!, want.out[k]!.data), `${what}: ${k}`).toBeLessThan(1e-5);
    };
    try {
      for (const [what, m] of [['flat', flat], ['wasm', wasm], ['wasm (2 threads)', threaded]] as const) {
        for (const trained of [true, false]) {
          const buffers = copy();
          const out = m.forward(params, inputs, { train: trained, seed: 1, buffers: copy() });
          const vg = m.valueAndGrad(params, inputs, { train: trained, seed: 1, buffers });
          check(`${what} ${trained ? 'training' : 'evaluation'}`, out, vg, buffers, trained ? train : evaluation, trained);
        }
      }
      for (const trained of [true, false]) {
        const buffers = copy();
        const out = await gpu.forward(params, inputs, { train: trained, seed: 1, buffers: copy() });
        const vg = await gpu.valueAndGrad(params, inputs, { train: trained, seed: 1, buffers });
        check(`GPU.js (cpu) ${trained ? 'training' : 'evaluation'}`, out, vg, buffers, trained ? train : evaluation, trained);
      }
    } finally {
      gpu.destroy();
      await threaded.destroy();
    }
  });

  it('exports to ONNX (BatchNormalization over axis 1, LayerNormalization, ConvTranspose), run by ONNX Runtime as the flat module\'s forward', async () => {
    const { c, load } = await built(['ts']);
    const flat = await load<Mod>('');
    const { bytes, model } = await exportFile(file);
    const ops = model.nodes.map((n) => n.opType);
    expect(ops.filter((o) => o === 'BatchNormalization')).toHaveLength(2);
    expect(ops.filter((o) => o === 'ConvTranspose')).toHaveLength(3);
    // over NCHW's axis 1 ONNX's BatchNormalization needs no transposes
    const bnInputs = model.nodes.filter((n) => n.opType === 'BatchNormalization').map((n) => model.nodes.find((m) => m.outputs.includes(n.inputs[0]!))?.opType);
    expect(bnInputs).not.toContain('Transpose');
    const session = await ort.InferenceSession.create(bytes);
    const { inputs } = randomArgs(c.fwd, 10);
    const feeds = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, new ort.Tensor('float32', v as Float32Array, (c.fwd.type(c.fwd.insts.find((i) => i.op === 'input' && i.attrs.name === k)!.result).shape as number[]))]));
    const got = await session.run(feeds);
    await session.release();
    const want = flat.forward(flat.initParams(0), inputs, { buffers: flat.initBuffers() });
    for (const k of OUTS) expect(relErr(got[k]!.data as Float32Array, want[k] as Float32Array), k).toBeLessThan(1e-5);
    expect(relErr(got.loss!.data as Float32Array, [want.loss as number])).toBeLessThan(1e-5);
  });

  it.skipIf(!torchOk)('convTranspose2d with an outputPadding of the stride or more (dilation 2, outputPadding 1, as torch allows): float64 interpreter against torch', async () => {
    const src = `import { model } from 'graphc';
export default model('ctd', (g) => {
  const x = g.input('x', [2, 3, 4, 4]);
  const y = g.convTranspose2d(x.tanh(), g.param('w', [3, 2, 3, 3]), { dilation: 2, outputPadding: 1, padding: [0, 1], stride: [1, 2] });
  const z = g.convTranspose1d(x.reshape([2, 3, 16]), g.param('w1', [3, 2, 3]), { dilation: 3, outputPadding: 2, padding: 1 });
  return { loss: y.mul(g.input('ry', y.dims)).sum().add(z.mul(g.input('rz', z.dims)).sum()), y, z };
});
`;
    const c = await compile(modelFile(src, 'ctd.ts'), { targets: ['ts'] });
    const { params, inputs } = randomArgs(c.fwd, 3);
    const vals = interpret(c.fwd, { params, inputs });
    const bv = interpret(c.bwd, { fwd: vals });
    const py = `
import json, sys, torch
import torch.nn.functional as F
d = json.load(sys.stdin)
t = lambda k, s: torch.tensor(d[k], dtype=torch.float64).reshape(s)
x, ry, rz = t("x", [2, 3, 4, 4]), t("ry", [2, 2, 9, 10]), t("rz", [2, 2, 22])
w, w1 = t("w", [3, 2, 3, 3]).requires_grad_(), t("w1", [3, 2, 3]).requires_grad_()
y = F.conv_transpose2d(torch.tanh(x), w, None, stride=(1, 2), padding=(0, 1), output_padding=1, dilation=2)
z = F.conv_transpose1d(x.reshape(2, 3, 16), w1, None, padding=1, output_padding=2, dilation=3)
loss = (y * ry).sum() + (z * rz).sum()
loss.backward()
print(json.dumps({"shapes": [list(y.shape), list(z.shape)], "y": y.detach().reshape(-1).tolist(), "z": z.detach().reshape(-1).tolist(), "w": w.grad.reshape(-1).tolist(), "w1": w1.grad.reshape(-1).tolist()}))
`;
    const payload = Object.fromEntries(Object.entries({ ...params, ...inputs }).map(([k, v]) => [k, Array.from(v)]));
    const p = spawnSync('/usr/bin/python3', ['-c', py], { input: JSON.stringify(payload), encoding: 'utf8' });
    expect(p.stderr).toBe('');
    const got = JSON.parse(p.stdout) as { shapes: number[][]; y: number[]; z: number[]; w: number[]; w1: number[] };
    expect(got.shapes).toEqual([[2, 2, 9, 10], [2, 2, 22]]);
    expect(vals.get('y')!.shape).toEqual([2, 2, 9, 10]);
    expect(relErr(vals.get('y')!.data, got.y)).toBeLessThan(1e-12);
    expect(relErr(vals.get('z')!.data, got.z)).toBeLessThan(1e-12);
    for (const o of c.bwd.outputs) expect(relErr(bv.get(c.bwd.value(o.value).name)!.data, got[o.name as 'w' | 'w1']), `d loss / d ${o.name}`).toBeLessThan(1e-11);
  });

  it.skipIf(!torchOk)("exports to PyTorch: its training call's loss, autograd gradients and running statistics are the flat module's", async () => {
    const { c, dir, load } = await built(['ts']);
    const flat = await load<Mod>('');
    const { source } = await exportTorchFile(file);
    // the transposed convolutions as torch's own (their geometry fits conv_transpose2d's options)
    expect(source.match(/torch\.nn\.functional\.conv_transpose2d\(/g)).toHaveLength(3);
    const py = path.join(dir, 'exported.py');
    writeFileSync(py, source);
    const { inputs } = randomArgs(c.fwd, 11);
    const shape = (k: string) => c.fwd.type(c.fwd.insts.find((i) => i.op === 'input' && i.attrs.name === k)!.result).shape;
    const args = Object.keys(inputs).map((k) => `${k}=torch.tensor(${JSON.stringify(Array.from(inputs[k]!))}).reshape(${JSON.stringify(shape(k))})`).join(', ');
    const script = `
import importlib.util, json, torch
spec = importlib.util.spec_from_file_location("exported", ${JSON.stringify(py)})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
m = mod.layers(); m.train()
out = m(${args})
out["loss"].backward()
t = m.graphc_tensors()
print(json.dumps({"loss": out["loss"].item(), "grads": {k: v.grad.reshape(-1).tolist() for k, v in t.items() if k in m.GRAPHC_PARAMS}, "buffers": {k: t[k].reshape(-1).tolist() for k in m.GRAPHC_BUFFERS}}))
`;
    const p = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8' });
    expect(p.stderr).toBe('');
    const got = JSON.parse(p.stdout) as { loss: number; grads: Record<string, number[]>; buffers: Record<string, number[]> };
    const buffers = flat.initBuffers();
    const want = flat.valueAndGrad(flat.initParams(0), inputs, { buffers });
    expect(relErr([got.loss], [want.loss])).toBeLessThan(1e-5);
    for (const k of Object.keys(want.grads)) expect(relErr(got.grads[k]!, want.grads[k]!), k).toBeLessThan(1e-4);
    for (const k of Object.keys(buffers)) expect(relErr(got.buffers[k]!, buffers[k]!), k).toBeLessThan(1e-5);
  });
});

/** The located error of a model (x4 [2, 3, 5, 5], x [4, 6]) whose line 6 returns `expr`. */
function errorOf(expr: string): { message: string; hint?: string; line?: number } {
  const src = `import { model } from 'graphc';
export default model('bad', (g) => {
  const x4 = g.param('x4', [2, 3, 5, 5]);
  const x = g.param('x', [4, 6]);
  const w = g.param('w', [3, 2, 3, 3]);
  return ${expr};
});
`;
  try {
    compileGraphs(modelFile(src, 'bad.js'));
  } catch (e) {
    if (!(e instanceof CompileError)) throw e;
    return { message: e.message, hint: e.hint, line: e.loc?.line };
  }
  throw new Error(`${expr} built`);
}

const ERRORS: [string, string, string][] = [
  ['g.batchNorm(x4, 1, 0, { axis: 4 }).sum()', 'batchNorm: axis 4 is out of range for a tensor of rank 4', 'use an axis in -4..3 (negative axes count from the end)'],
  [
    'g.batchNorm(x4, 1, 0, { axis: 0 }).sum()',
    'batchNorm: axis 0 is the batch axis of x [2, 3, 5, 5]',
    'axis names the features (the channels), normalised each over the batch: e.g. { axis: 1 } for [N, C, H, W], or leave it out for the last axis',
  ],
  ['g.batchNorm(x4, 1, 0, { correction: 2 }).sum()', 'batchNorm: correction must be 0 or 1, got 2', "0 divides the variance by n as torch.nn.BatchNorm normalises, 1 (the default) by n − 1 (Bessel's correction, the lecture's)"],
  ['g.batchNorm(x4, g.param("gain", [5]), 0, { axis: 1 }).sum()', 'batchNorm: gain f32[5] does not fit x f32[2,3,5,5]: it must hold one value per feature', 'give gain the shape [3], or pass a number'],
  ['g.groupNorm(x4, 2, 1, 0).sum()', 'groupNorm: groups = 2 does not divide the 3 channels of x f32[2,3,5,5]', 'use a number of groups that divides 3: 1, 3'],
  ['g.groupNorm(x4, 1, g.param("gain", [5]), 0).sum()', 'groupNorm: gain f32[5] does not fit x f32[2,3,5,5]: it must hold one value per channel', 'give gain the shape [3], or pass a number'],
  [
    'g.layerNorm(x4, g.param("gain", [3, 5]), 0).sum()',
    'layerNorm: gain f32[3,5] does not fit x f32[2,3,5,5]: layerNorm normalises over the last 2 axes (gain\'s shape, torch\'s normalized_shape), which must be [3, 5]',
    'give gain and bias the shape of the axes to normalise over, e.g. [5, 5], or [5] for the last axis alone',
  ],
  ['g.upsample(x4, { scale: 2, mode: "bicubic" }).sum()', 'upsample: mode must be \'nearest\' or \'bilinear\', got "bicubic"', "e.g. g.upsample(x, { scale: 2, mode: 'bilinear' }); torch's other modes are not built"],
  ['g.upsample(x4, { scale: 2, alignCorners: true }).sum()', "upsample: alignCorners applies to mode 'bilinear' only", "leave alignCorners out, or pass mode: 'bilinear' (torch refuses align_corners with 'nearest' too)"],
  ['g.upsample(x, { scale: 2 }).sum()', 'upsample: x must be an f32 tensor [N, C, H, W], got f32[4,6]', 'reshape it, e.g. x.reshape([B, 1, 28, 28]) for one channel of 28×28 images'],
  ['g.convTranspose2d(x4, w, { groups: 2 }).sum()', 'convTranspose2d: the 3 input channels of x f32[2,3,5,5] are not divisible by groups = 2', 'groups must divide the input channels'],
  [
    'g.convTranspose2d(x4, w.transpose([1, 0, 2, 3])).sum()',
    'convTranspose2d: the weight f32[2,3,3,3] has 2 input channels (its first axis), but x f32[2,3,5,5] has 3',
    "a transposed convolution's weight is [C_in, C_out/groups, ...k] as torch's (the first axis the input channels, 3)",
  ],
  ['g.convTranspose2d(x4, w, { stride: 2, outputPadding: 2 }).sum()', 'convTranspose2d: outputPadding 2 must be smaller than the stride 2 or the dilation 1', "outputPadding picks one of the output sizes: 0 to max(stride, dilation) − 1 (here 1), as torch's output_padding"],
  ['g.adaptiveAvgPool2d(x4, [0, 2]).sum()', 'adaptiveAvgPool2d: size must be a positive integer or a pair [h, w] of them, got [0, 2]', 'e.g. size: 1 or [7, 7]'],
];

describe('PyTorch layers: errors', () => {
  it.each(ERRORS)('%s: a located error', (expr, message, hint) => {
    expect(errorOf(expr)).toEqual({ message, hint, line: 6 });
  });
});

describe('PyTorch layers over a symbolic batch', () => {
  it('one build serves every batch size: flat and wasm as the float64 interpreter at B = 3 and B = 1', async () => {
    const src = `import { model } from 'graphc';
export default model('layers_sym', (g) => {
  const x = g.input('x', ['B', 4, 4, 5]);
  const bn = g.batchNorm(x, g.param('bn_g', [4], { init: 'uniform' }), 0, { axis: 1, correction: 0 });
  const gn = g.groupNorm(bn.tanh(), 2, g.param('gn_g', [4], { init: 'uniform' }), g.param('gn_b', [4]));
  const ct = g.convTranspose2d(gn, g.param('W', [4, 2, 3, 3]), { stride: 2, outputPadding: 1 });
  const up = g.upsample(g.upsample(ct, { scale: 2 }), { scale: 0.75, mode: 'bilinear' });
  const y = g.adaptiveAvgPool2d(up, [3, 2]);
  return { loss: y.square().mean(), y };
});
`;
    const c = await compile(modelFile(src, 'layers_sym.ts'), { targets: ['ts', 'wasm'] });
    // the statistics over B·4·5 values per channel (a bound count) fuse as for a static batch
    expect(c.fwd.insts.filter((i) => i.op === 'bn_apply' || i.op === 'ln_apply').map((i) => `${i.op} ${JSON.stringify(i.attrs)}`)).toEqual(['bn_apply {"axis":1,"correction":0}', 'ln_apply {}']);
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const flat = (await import(pathToFileURL(path.join(dir, 'layers_sym.js')).href)) as Mod;
    const wasm = (await import(pathToFileURL(path.join(dir, 'layers_sym.wasm.js')).href)) as Mod;
    for (const B of [3, 1]) {
      const { params, inputs } = randomArgs(c.fwd, 12 + B, 1, { B });
      // B = 1: torch's batchnorm over 1·4·5 values per channel is still defined
      const vals = interpret(c.fwd, { params, inputs, train: true });
      const bv = interpret(c.bwd, { fwd: vals });
      const out = outputsOf(c.fwd, vals);
      for (const [what, m] of [['flat', flat], ['wasm', wasm]] as const) {
        const vg = m.valueAndGrad(params, inputs);
        const y = m.forward(params, inputs).y as Float32Array;
        expect(y.length, `${what} B=${B}`).toBe(B * 2 * 3 * 2);
        expect(relErr(y, out.y!.data), `${what} B=${B}: y`).toBeLessThan(1e-5);
        for (const o of c.bwd.outputs) expect(relErr(vg.grads[o.name]!, bv.get(c.bwd.value(o.value).name)!.data), `${what} B=${B}: d loss / d ${o.name}`).toBeLessThan(1e-4);
      }
    }
  });
});
