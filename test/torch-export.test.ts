// `graphc export --torch`: every example, and conformance models (a g.customGrad model, dropout
// in evaluation, batchnorm with running statistics in training and evaluation), exported and run
// by Debian's python3-torch, in one Python process for all of them (torch's import costs seconds):
// the loss and every gradient (torch autograd's) against the flat module's valueAndGrad, in
// float32, to 1e-5; the running statistics after a training forward; a checkpoint through
// graphc saveParams → load_safetensors → save_safetensors → graphc bit-identical. Skipped, with
// the reason, where /usr/bin/python3 cannot import torch (.ci/run installs python3-torch).

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { OpKind } from '../ir/ops.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { parseGraph } from '../ir/parse.js';
import { CompileError } from '../ir/errors.js';
import { loadTensors, saveParams } from '../src/io.js';
import { exportTorch, exportTorchFile } from '../src/torch/index.js';
import type { LOWER } from '../src/torch/lower.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { buildAndImport, modelFile, relErr, rng, ROOT, run, tmp } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const torchMissing = (() => {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `${PYTHON} cannot import torch (${(r.error?.message ?? r.stderr).trim().split('\n').pop()}); .ci/run installs python3-torch`;
})();
if (torchMissing) console.warn(`test/torch-export.test.ts: skipped: ${torchMissing}`);

type Module = GeneratedModule & {
  initBuffers?: () => Record<string, Float32Array>;
  forward(p: Arrays, i: Arrays, o?: { buffers?: Arrays; train?: boolean }): Record<string, number | Float32Array>;
  valueAndGrad(p: Arrays, i: Arrays, o?: { buffers?: Arrays }): { loss: number; grads: Record<string, Float32Array> };
  spec: GeneratedModule['spec'] & { buffers?: Record<string, { dtype: string; shape: number[] }> };
};

/** The index bounds of i32 inputs (vocabularies, classes). */
const BOUNDS: Record<string, number> = { target_classes: 10, y: 10, Xb: 27, Yb: 27, labels: 10, X: 27, Y: 27, t: 3 };

function inputsOf(mod: Module, seed: number): Arrays {
  const r = rng(seed);
  const out: Arrays = {};
  for (const [k, v] of Object.entries(mod.spec.inputs)) {
    // a symbolic dimension (the batch B) is 20 rows
    const n = (v.shape as (number | string)[]).reduce<number>((a, d) => a * (typeof d === 'number' ? d : 20), 1);
    out[k] = v.dtype === 'i32' ? Int32Array.from({ length: n }, () => Math.floor(r() * (BOUNDS[k] ?? 3))) : Float32Array.from({ length: n }, () => 0.1 + r());
  }
  return out;
}

const copy = (o: Record<string, Float32Array | number>) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? Float32Array.of(v) : Float32Array.from(v)]));

interface Case {
  readonly name: string;
  readonly file: string;
  readonly cls: string;
  readonly mode: 'train' | 'eval';
  readonly mod: Module;
  readonly params: Record<string, Float32Array>;
  readonly buffers: Record<string, Float32Array>;
  readonly inputs: Arrays;
}

interface Result {
  error?: string;
  outputs: Record<string, number[]>;
  grads?: Record<string, number[]>;
  buffers: Record<string, number[]>;
  bad?: string[];
  dropout_train?: number[];
}

const EXAMPLES = readdirSync(path.join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();

const CUSTOM = `import { model } from 'graphc';
export default model('custom', (g) => {
  const W = g.param('W', [4, 3]);
  const s = g.param('s', [3], { init: 'ones' });
  const x = g.input('x', [5, 4]);
  const t = g.input('t', [5], 'i32');
  // straight-through sign; tanh whose gradient is clipped and scaled by a value the backward reads
  const sign = g.customGrad((v) => v.div(v.abs()), (_xs, _out, dy) => [dy]);
  const squash = g.customGrad((v) => v.tanh(), (_xs, out, dy) => [dy.mul(out.square().neg().add(1)).mul(s).maximum(-0.1).minimum(0.1)]);
  const h = squash(x.matmul(W).add(sign(W).sum(0)));
  const loss = g.crossEntropy(h.mul(s), t);
  return { loss, h };
});
`;

/** Issue #31's elementwise primitives (torch.sin, torch.erf, torch.log1p, ...) and the composites on them. */
const ELEMENTWISE = `import { model } from 'graphc';
export default model('elementwise', (g) => {
  const W = g.param('W', [4, 6]);
  const x = g.input('x', [5, 4]);
  const t = g.input('t', [5, 6]);
  const h = x.matmul(W);
  const a = h.sin().add(h.cos().mul(0.5)).add(h.erf()).add(h.square().log1p()).add(h.mul(0.3).expm1());
  const b = h.gelu().add(h.gelu('tanh')).add(h.softplus(2, 5)).add(h.logSigmoid());
  const loss = a.mul(b).mean().add(g.binaryCrossEntropyWithLogits(h, t));
  return { loss, a };
});
`;

const RUNNING = (name: string, opts: string) => `import { makemoreRunning } from ${JSON.stringify(path.join(ROOT, 'examples', 'makemore_running.ts'))};
export default makemoreRunning(undefined, '${name}', ${opts});
`;

/**
 * The ops that only gradient rules make (a g.grad call emits them into a forward graph), on their
 * own, against the float64 interpreter.
 */
const GRAD_OPS = `graph forward gradops {
  %x: f32[2,3,4,4] = input {name="x"} @ g.ts:2:1
  %w: f32[4,3,3,3] = param {name="w", init="randn", scale=1} @ g.ts:3:1
  %dy: f32[2,4,2,2] = input {name="dy"} @ g.ts:4:1
  %pdy: f32[2,3,2,2] = input {name="pdy"} @ g.ts:5:1
  %i: i32[4] = input {name="i"} @ g.ts:6:1
  %src: f32[4,3] = input {name="src"} @ g.ts:7:1
  %ci: f32[2,3,4,4] = conv_input_grad %dy, %w {stride=[1,1], padding=[0,0,0,0], dilation=[1,1], groups=1, size=[4,4]} @ g.ts:8:1
  %cw: f32[4,3,3,3] = conv_weight_grad %x, %dy {stride=[1,1], padding=[0,0,0,0], dilation=[1,1], groups=1, kernel=[3,3]} @ g.ts:9:1
  %mg: f32[2,3,4,4] = max_pool_grad %x, %pdy {kernel=[2,2], stride=[2,2], padding=[0,0], size=[4,4]} @ g.ts:10:1
  %mp: f32[2,3,2,2] = max_pool_pick %x, %ci {kernel=[2,2], stride=[2,2], padding=[0,0]} @ g.ts:11:1
  %ag: f32[2,3,4,4] = avg_pool_grad %pdy {kernel=[2,2], stride=[2,2], padding=[0,0], size=[4,4]} @ g.ts:12:1
  %am: f32[2,3,4,4] = argmax_mask %x {axes=[2,3]} @ g.ts:13:1
  %sa: f32[5,3] = scatter_add %i, %src {shape=[5,3]} @ g.ts:14:1
  %cv: f32[2,4,3,3] = conv %x, %w {stride=[1,1], padding=[1,1,0,0], dilation=[1,1], groups=1} @ g.ts:15:1
  return ci=%ci, cw=%cw, mg=%mg, mp=%mp, ag=%ag, am=%am, sa=%sa, cv=%cv
}
`;

/** The Python side: each job's module imported, loaded, run; outputs, gradients and buffers as JSON. */
const DRIVER = `import importlib.util, json, sys, traceback
import torch

def read_st(path):
    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for k, e in header.items():
        b, end = e["data_offsets"]
        dt = torch.float32 if e["dtype"] == "F32" else torch.int32
        out[k] = torch.frombuffer(bytearray(data[8 + n + b:8 + n + end]), dtype=dt).reshape(e["shape"])
    return out

results = []
for i, j in enumerate(json.load(open(sys.argv[1]))):
    try:
        spec = importlib.util.spec_from_file_location(f"exported{i}", j["py"])
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        m = getattr(mod, j["cls"])()
        if j["params"]:
            m.load_safetensors(j["params"])
        m.train() if j["mode"] == "train" else m.eval()
        out = m(**read_st(j["inputs"]))
        r = {"outputs": {k: v.detach().reshape(-1).tolist() for k, v in out.items()}}
        if j["mode"] == "train":
            out["loss"].backward()
            r["grads"] = {k: (t.grad if t.grad is not None else torch.zeros_like(t)).reshape(-1).tolist() for k, t in m.graphc_tensors().items() if k in m.GRAPHC_PARAMS}
        r["buffers"] = {k: m.graphc_tensors()[k].reshape(-1).tolist() for k in m.GRAPHC_BUFFERS}
        if j.get("dropout_train"):
            ins = read_st(j["inputs"])
            m.train()
            losses = []
            for seed in (0, 0, 1):
                torch.manual_seed(seed)
                losses.append(m(**ins)["loss"].item())
            r["dropout_train"] = losses
        if j.get("bad"):
            r["bad"] = []
            for path in j["bad"]:
                try:
                    getattr(mod, j["cls"])().load_safetensors(path)
                    r["bad"].append("loaded")
                except ValueError as e:
                    r["bad"].append(str(e))
        if j.get("roundtrip"):
            m2 = getattr(mod, j["cls"])()
            m2.load_safetensors(j["roundtrip"][0])
            m2.save_safetensors(j["roundtrip"][1])
        results.append(r)
    except Exception:
        results.append({"error": traceback.format_exc()})
json.dump(results, open(sys.argv[2], "w"))
`;

describe.skipIf(torchMissing !== undefined)('graphc export --torch, run by PyTorch', () => {
  const cases: Case[] = [];
  let results: Result[] = [];
  let gradOpsResult: Result | undefined;
  let embedded: Result | undefined;
  let roundtrip: { input: string; output: string } | undefined;
  let seconds = 0;
  let gradOps: Record<string, { data: ArrayLike<number> }> = {};

  beforeAll(async () => {
    const dir = tmp();
    const add = async (name: string, file: string, mod: Module, mode: 'train' | 'eval', buffers: (m: Module) => Record<string, Float32Array> = (m) => m.initBuffers?.() ?? {}) => {
      // the class is named after the model (a '-' of a model name is '_')
      const cls = mod.spec.name.replace(/-/g, '_');
      cases.push({ name, file, cls, mode, mod, params: mod.initParams(1), buffers: buffers(mod), inputs: inputsOf(mod, 7) });
    };
    for (const name of EXAMPLES) {
      const mod = (await import(pathToFileURL(path.join(ROOT, 'generated', name, `${name}.js`)).href)) as Module;
      await add(name, path.join(ROOT, 'examples', `${name}.ts`), mod, 'train');
    }
    const custom = modelFile(CUSTOM, 'custom.ts');
    await add('customGrad', custom, (await buildAndImport(custom)).mod as Module, 'train');
    const elementwise = modelFile(ELEMENTWISE, 'elementwise.ts');
    await add('elementwise (sin, cos, erf, log1p, expm1, gelu, softplus, logSigmoid, BCE with logits)', elementwise, (await buildAndImport(elementwise)).mod as Module, 'train');
    // ties everywhere (zero params against zeros): graphc gives a tie's whole gradient to the first
    // operand or the first maximum, where torch.maximum/minimum/amax would split it
    const ties = modelFile(
      `import { model } from 'graphc';
export default model('ties', (g) => {
  const w = g.param('w', [3, 4], { init: 'zeros' });
  const x = g.input('x', [3, 4]);
  const zero = x.mul(0);
  return { loss: w.maximum(zero).mul(x).sum().add(w.minimum(zero).mul(x).sum()).add(w.max(1).mul(x.sum(1)).sum()) };
});
`,
      'ties.ts',
    );
    await add('ties (maximum, minimum, max)', ties, (await buildAndImport(ties)).mod as Module, 'train');
    const randomBuffers = (m: Module) => {
      const r = rng(3);
      const b = m.initBuffers!();
      for (const [k, v] of Object.entries(b)) for (let i = 0; i < v.length; i++) v[i] = k.endsWith('running_var') ? 0.5 + r() : r() - 0.5;
      return b;
    };
    const bn = modelFile(RUNNING('bn', '{ momentum: 0.1 }'), 'bn.ts');
    const bnMod = (await buildAndImport(bn)).mod as Module;
    await add('batchnorm running statistics, training', bn, bnMod, 'train', randomBuffers);
    await add('batchnorm running statistics, evaluation', bn, bnMod, 'eval', randomBuffers);
    const sym = modelFile(RUNNING('symbolic', "{ momentum: 0.1 }").replace('makemoreRunning(undefined', "makemoreRunning({ batch: 'B', block: 3, nEmbd: 10, nHidden: 64, vocab: 27 }"), 'symbolic.ts');
    await add('symbolic batch B = 20', sym, (await buildAndImport(sym)).mod as Module, 'train', randomBuffers);
    // [B, 3, 4] · [4, 5]: the forward passes flatten its rows into one product dimension, B*3
    // (the reshapes' sizes (dim_B * 3) in the exported code), and the cross-entropy takes its B*3 rows
    const rows = modelFile(
      `import { model } from 'graphc';
export default model('symrows', (g) => {
  const x = g.input('x', ['B', 3, 4]);
  const cls = g.input('cls', ['B', 3], 'i32');
  const h = x.matmul(g.param('W', [4, 5])).add(g.param('b', [5])).tanh();
  const logits = h.matmul(g.param('V', [5, 5]));
  return { loss: g.crossEntropy(logits, cls), logits };
});
`,
      'symrows.ts',
    );
    await add('symbolic rows B·3 (flattened matmuls, a cross-entropy over B*3 rows)', rows, (await buildAndImport(rows)).mod as Module, 'train');
    const drop = modelFile(RUNNING('dropout', '{ momentum: 0.1, dropout: 0.3 }'), 'dropout.ts');
    await add('dropout, evaluation', drop, (await buildAndImport(drop)).mod as Module, 'eval', randomBuffers);

    // every case's files; the module written by the CLI
    const jobs: Record<string, unknown>[] = [];
    {
      const g = parseGraph(GRAD_OPS);
      const r = rng(5);
      const w = Float32Array.from({ length: 4 * 27 }, () => r() - 0.5);
      const f = (n: number) => Float32Array.from({ length: n }, () => r() - 0.5);
      const inputs = { x: f(96), dy: f(32), pdy: f(24), i: Int32Array.of(4, 0, 4, 2), src: f(12) };
      const py = path.join(dir, 'gradops.py');
      writeFileSync(py, exportTorch(g, { params: { w } }));
      const params = path.join(dir, 'gradops-p.safetensors');
      const ins = path.join(dir, 'gradops-i.safetensors');
      saveParams(params, { w: { data: w, shape: [4, 3, 3, 3] } });
      saveParams(ins, { x: { data: inputs.x, shape: [2, 3, 4, 4] }, dy: { data: inputs.dy, shape: [2, 4, 2, 2] }, pdy: { data: inputs.pdy, shape: [2, 3, 2, 2] }, i: { data: inputs.i, shape: [4] }, src: { data: inputs.src, shape: [4, 3] } });
      gradOps = outputsOf(g, interpret(g, { params: { w }, inputs }));
      jobs.push({ py, cls: 'gradops', mode: 'eval', params, inputs: ins });
    }
    for (const [k, c] of cases.entries()) {
      const py = path.join(dir, `m${k}.py`);
      const r = await run(['export', c.file, '--torch', py]);
      expect(r.err).toBe('');
      const params = path.join(dir, `p${k}.safetensors`);
      const inputs = path.join(dir, `i${k}.safetensors`);
      saveParams(params, { ...c.params, ...c.buffers }, { spec: c.mod.spec, metadata: { case: c.name } });
      // with their shapes (a symbolic dimension bound to 20)
      const shaped = Object.fromEntries(Object.entries(c.inputs).map(([n, v]) => [n, { data: v, shape: (c.mod.spec.inputs[n]!.shape as (number | string)[]).map((d) => (typeof d === 'number' ? d : 20)) }]));
      saveParams(inputs, shaped);
      const job: Record<string, unknown> = { py, cls: c.cls, mode: c.mode, params, inputs };
      if (c.name === 'dropout, evaluation') job.dropout_train = true;
      if (c.name === 'makemore_running') {
        const lacking = path.join(dir, 'lacking.safetensors');
        const extra = path.join(dir, 'extra.safetensors');
        const shaped = (name: string) => c.mod.spec.params[name]?.shape ?? c.mod.spec.buffers![name]!.shape;
        saveParams(lacking, { C: c.params.C!, b2: c.params.b2! }, { spec: c.mod.spec });
        saveParams(extra, { ...c.params, W9: new Float32Array(3) }, { spec: c.mod.spec });
        const wrong = path.join(dir, 'wrong.safetensors');
        saveParams(wrong, { ...c.params, W1: { data: c.params.W1!, shape: [...shaped('W1')].reverse() } }, { spec: c.mod.spec });
        job.bad = [lacking, extra, wrong];
      }
      if (c.name === 'makemore_running') job.roundtrip = [params, (roundtrip = { input: params, output: path.join(dir, 'roundtrip.safetensors') }).output];
      jobs.push(job);
    }
    // --params: the values embedded in the module (no load_safetensors)
    {
      const k = cases.findIndex((c) => c.name === 'makemore');
      const py = path.join(dir, 'embedded.py');
      const r = await run(['export', cases[k]!.file, '--torch', py, '--params', path.join(dir, `p${k}.safetensors`)]);
      expect(r.out).toMatch(/^wrote .*embedded\.py \(\d+ bytes\)\n$/);
      jobs.push({ py, cls: 'makemore', mode: 'train', params: null, inputs: path.join(dir, `i${k}.safetensors`) });
    }
    writeFileSync(path.join(dir, 'jobs.json'), JSON.stringify(jobs));
    writeFileSync(path.join(dir, 'driver.py'), DRIVER);
    const t0 = performance.now();
    const p = spawnSync(PYTHON, [path.join(dir, 'driver.py'), path.join(dir, 'jobs.json'), path.join(dir, 'results.json')], { encoding: 'utf8' });
    seconds = (performance.now() - t0) / 1000;
    expect(p.stderr).toBe('');
    expect(p.status).toBe(0);
    [gradOpsResult, ...results] = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')) as Result[];
    embedded = results.pop();
  }, 300_000);

  it('runs every model in one Python process', () => {
    expect(results.length).toBe(cases.length);
    expect(gradOpsResult).toBeDefined();
    console.log(`torch-export: ${cases.length} models run by PyTorch in ${seconds.toFixed(1)} s (one process)`);
  });

  it.each(EXAMPLES.map((e) => [e]).concat([['customGrad'], ['elementwise (sin, cos, erf, log1p, expm1, gelu, softplus, logSigmoid, BCE with logits)'], ['ties (maximum, minimum, max)'], ['batchnorm running statistics, training'], ['symbolic batch B = 20'], ['symbolic rows B·3 (flattened matmuls, a cross-entropy over B*3 rows)']]))(
    '%s: the loss and every gradient equal the flat module’s valueAndGrad (1e-5, f32)',
    (name) => {
      const k = cases.findIndex((c) => c.name === name && c.mode === 'train');
      const c = cases[k]!;
      const r = results[k]!;
      expect(r.error).toBeUndefined();
      const buffers = Object.fromEntries(Object.entries(c.buffers).map(([b, v]) => [b, Float32Array.from(v)]));
      const want = c.mod.valueAndGrad(c.params, c.inputs, Object.keys(buffers).length ? { buffers } : undefined);
      const grads = copy(want.grads);
      expect(relErr(r.outputs.loss!, [want.loss])).toBeLessThan(1e-5);
      expect(Object.keys(r.grads!).sort()).toEqual(Object.keys(c.mod.spec.params).sort());
      for (const [p, g] of Object.entries(grads)) expect(relErr(r.grads![p]!, g), `gradient of ${p}`).toBeLessThan(1e-5);
      // a training forward moves the running statistics as graphc's (momentum, Bessel's correction)
      for (const [b, v] of Object.entries(buffers)) expect(relErr(r.buffers[b]!, v), `buffer ${b}`).toBeLessThan(1e-5);
    },
  );

  it.each([['batchnorm running statistics, evaluation'], ['dropout, evaluation']])('%s: every output equals the flat module’s evaluation forward (1e-5)', (name) => {
    const k = cases.findIndex((c) => c.name === name);
    const c = cases[k]!;
    const r = results[k]!;
    expect(r.error).toBeUndefined();
    const want = copy(c.mod.forward(c.params, c.inputs, { buffers: c.buffers }));
    expect(Object.keys(r.outputs).sort()).toEqual(Object.keys(want).sort());
    for (const [o, v] of Object.entries(want)) expect(relErr(r.outputs[o]!, v), `output ${o}`).toBeLessThan(1e-5);
    // evaluation leaves the running statistics alone
    for (const [b, v] of Object.entries(c.buffers)) expect(r.buffers[b]).toEqual(Array.from(v));
  });

  it('dropout in training draws its masks from torch\'s generator: the same seed, the same loss; another, another', () => {
    const k = cases.findIndex((c) => c.name === 'dropout, evaluation');
    const [a, b, c] = results[k]!.dropout_train!;
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(a).not.toBe(results[k]!.outputs.loss![0]);
  });

  it('export --torch --params FILE: the module starts from the file\'s values', () => {
    const k = cases.findIndex((c) => c.name === 'makemore');
    expect(embedded?.error).toBeUndefined();
    expect(embedded!.outputs).toEqual(results[k]!.outputs);
    expect(embedded!.grads).toEqual(results[k]!.grads);
  });

  it('the ops of gradient rules (conv, pool, argmax and scatter adjoints) equal the float64 interpreter (1e-5)', () => {
    expect(gradOpsResult!.error).toBeUndefined();
    expect(Object.keys(gradOpsResult!.outputs).sort()).toEqual(Object.keys(gradOps).sort());
    for (const [o, v] of Object.entries(gradOps)) expect(relErr(gradOpsResult!.outputs[o]!, v.data), o).toBeLessThan(1e-5);
  });

  it('load_safetensors: a missing param, a name the model lacks, a wrong shape are errors naming them', () => {
    const k = cases.findIndex((c) => c.name === 'makemore_running');
    const [lacking, extra, wrong] = results[k]!.bad!;
    expect(lacking).toMatch(/lacking\.safetensors: no value for the param\(s\) W1, b1, W2, bngain, bnbias; save every param \(graphc's saveParams\(file, params\), or save_safetensors\)$/);
    expect(extra).toMatch(/extra\.safetensors: 'W9' is neither a param nor a buffer of the model; its params are: C, W1, b1, W2, b2, bngain, bnbias; load a checkpoint of this model$/);
    expect(wrong).toMatch(/wrong\.safetensors: 'W1' is F32\[64, 30\], but the model's is F32\[30, 64\]; load a checkpoint of this model$/);
  });

  it('a checkpoint goes graphc → load_safetensors → save_safetensors → graphc bit-identical', () => {
    expect(roundtrip).toBeDefined();
    const a = readFileSync(roundtrip!.input);
    const b = readFileSync(roundtrip!.output);
    expect(b.equals(a)).toBe(true);
    const back = loadTensors(roundtrip!.output);
    expect(back.metadata).toEqual({ case: 'makemore_running' });
    expect(Object.keys(back.tensors)).toEqual(['C', 'W1', 'b1', 'W2', 'b2', 'bngain', 'bnbias', 'hpreact.running_mean', 'hpreact.running_var']);
  });
});

describe.skipIf(torchMissing !== undefined)('torchrun DDP on the exported makemore', () => {
  it('5 SGD steps, 2 ranks × 32 rows, give graphc’s params (valueAndGrad per half, averaged, update) to 1e-5', () => {
    // scripts/torch-ddp.mjs does both sides and exits 1 when the params differ by 1e-5 or more
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'torch-ddp.mjs')], { encoding: 'utf8', cwd: ROOT, timeout: 170_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const m = /max relative difference (\S+)/.exec(r.stdout);
    expect(Number(m?.[1])).toBeLessThan(1e-5);
    expect(r.stdout.match(/rank 0 step \d+/g)).toEqual(['rank 0 step 1', 'rank 0 step 2', 'rank 0 step 3', 'rank 0 step 4', 'rank 0 step 5']);
    console.log(r.stdout.trim().split('\n').pop());
  }, 180_000);
});

describe('graphc export --torch without Python', () => {
  it('the lowering table is exhaustive: a missing op is a type error', () => {
    type Table = typeof LOWER;
    // @ts-expect-error: a table without 'xent' is not a lowering table
    const partial: Table = {} as Omit<Table, 'xent'>;
    void partial;
    const ops: OpKind[] = ['xent', 'bn_apply', 'custom_grad'];
    expect(ops.length).toBe(3);
  });

  it('an op that cannot be in an exported graph is a located CompileError naming it', () => {
    // a backward graph's read of a forward value: not a forward op
    const g = parseGraph(`graph backward bad {
  %x: f32[3] = fwd {name="x"} @ bad.ts:3:13
  %y: f32[3] = add %x, %x @ bad.ts:4:13
  return loss=%y
}
`);
    let err: unknown;
    try {
      exportTorch(g, { params: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CompileError);
    expect((err as Error).message).toContain("export --torch: the op 'fwd' cannot be exported to PyTorch");
    expect((err as { loc?: { line: number } }).loc?.line).toBe(3);
  });

  it('g.grad is torch.autograd.grad (create_graph), not the reverse pass graphc traced', async () => {
    const { source } = await exportTorchFile(path.join(ROOT, 'examples', 'pinn.ts'));
    expect(source).toContain('        x = _track(inputs["x"])  # pinn.ts:14\n');
    expect(source).toMatch(/\n {8}dx, = _grad\(t\d+, \[x\]\) {2}# pinn\.ts:25 g\.grad\n/);
    expect(source).toMatch(/\n {8}dx_1, = _grad\(t\d+, \[x\]\) {2}# pinn\.ts:26 g\.grad\n/);
    expect(source).toContain('gs = torch.autograd.grad(y, xs, create_graph=True, allow_unused=True)');
    // the traced reverse pass is not emitted
    expect(source).not.toMatch(/of g\.grad at/);
  });

  it('--torch and --onnx together write both files', async () => {
    const dir = tmp();
    const r = await run(['export', 'examples/neuron.ts', '--torch', path.join(dir, 'n.py'), '--onnx', path.join(dir, 'n.onnx')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^wrote .*n\.py \(\d+ bytes\)\nwrote .*n\.onnx \(\d+ bytes\)\n$/);
    expect(readFileSync(path.join(dir, 'n.py'), 'utf8')).toContain('class neuron(torch.nn.Module):');
  });

  it('usage errors are exact', async () => {
    const r = await run(['export', 'examples/neuron.ts']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('graphc export: --onnx OUT.onnx or --torch OUT.py is required\nusage: graphc export MODEL.ts [--onnx OUT.onnx] [--torch OUT.py] [--params FILE [--allow-missing]]\n');
  });

  it('writes the module with one line per op, the DSL line as a comment, graphc names mapped to identifiers', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('odd-names', (g) => {
  const w = g.param('layer.0/w', [3]);
  const x = g.input('x', [3]);
  const loss = x.mul(w).sum();
  return { loss };
});
`);
    const { source } = await exportTorchFile(file);
    expect(source).toContain('class odd_names(torch.nn.Module):');
    expect(source).toContain('GRAPHC_NAMES = {"layer.0/w": "layer_0_w"}');
    expect(source).toContain('self.layer_0_w = torch.nn.Parameter(torch.empty((3,)))');
    expect(source).toMatch(/ = x \* layer_0_w {2}# model\.ts:5\n/);
    expect(source).toMatch(/^import torch$/m);
    expect(source.match(/^import \w+|^from /gm)).toEqual(['import base64', 'import json', 'import os', 'import torch']);
  });

  it('sizes the rows of a flattened [B, 3, 4] matmul, a product dimension, as (dim_B * 3), and takes the cross-entropy over them', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('rows', (g) => {
  const x = g.input('x', ['B', 3, 4]);
  const cls = g.input('cls', ['B', 3], 'i32');
  return { loss: g.crossEntropy(x.matmul(g.param('W', [4, 5])), cls) };
});
`);
    const { source } = await exportTorchFile(file);
    expect(source).toMatch(/^ +x_rows = x\.reshape\(\(\(dim_B \* 3\), 4\)\) {2}# model\.ts:5$/m);
    expect(source).toMatch(/^ +loss = torch\.nn\.functional\.cross_entropy\(\w+, \w+\.long\(\)\) {2}# model\.ts:5$/m);
  });
});
