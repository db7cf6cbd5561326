// `graphc export --onnx`: every example's forward graph exported and run by ONNX Runtime (its
// wasm backend, in Node), against the flat module's forward on random inputs; the written bytes
// against the ONNX checker's rules (ours, and Debian's python3-onnx checker where it is
// installed: .ci/run installs it); symbolic dims as dim_params; located errors.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { parseGraph } from '../ir/parse.js';
import { saveParams } from '../src/io.js';
import { readValues } from '../src/values.js';
import { checkModel } from '../src/onnx/check.js';
import { exportOnnx } from '../src/onnx/export.js';
import { exportFile } from '../src/onnx/index.js';
import { decodeModel, encodeModel } from '../src/onnx/proto.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { buildAndImport, modelFile, relErr, rng, ROOT, run, tmp } from './helpers.js';

ort.env.wasm.numThreads = 1;

/** Every model of examples/ (a new example is exported and run without a change here). */
const EXAMPLES = readdirSync(path.join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();

/** Random inputs of a spec: indices within their bounds, f32 values in [0.1, 1.1) (variances stay positive). */
function inputsOf(mod: GeneratedModule, seed: number, bounds: Record<string, number>, dims: Record<string, number> = {}): Arrays {
  const r = rng(seed);
  const out: Arrays = {};
  for (const [k, v] of Object.entries(mod.spec.inputs)) {
    const n = v.shape.reduce<number>((a, d) => a * (typeof d === 'number' ? d : dims[d]!), 1);
    out[k] = v.dtype === 'i32' ? Int32Array.from({ length: n }, () => Math.floor(r() * (bounds[k] ?? 5))) : Float32Array.from({ length: n }, () => 0.1 + r());
  }
  return out;
}

async function runOnnx(bytes: Uint8Array, mod: GeneratedModule, inputs: Arrays, dims: Record<string, number> = {}): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(mod.spec.inputs))
    feeds[k] = new ort.Tensor(v.dtype === 'i32' ? 'int32' : 'float32', inputs[k]!, v.shape.map((d) => (typeof d === 'number' ? d : dims[d]!)));
  const out = await session.run(feeds);
  await session.release();
  return out;
}

/** The index bounds of an example's i32 inputs (its vocabulary, its classes). */
const BOUNDS: Record<string, Record<string, number>> = {
  classifier: { target_classes: 10 },
  twolayer: { y: 10 },
  makemore: { Xb: 27, Yb: 27 },
  makemore_composite: { Xb: 27, Yb: 27 },
  makemore_inference: { Xb: 27, Yb: 27 },
  makemore_running: { Xb: 27, Yb: 27 },
  cnn: { labels: 10 },
  wavenet: { Xb: 27, Yb: 27 },
  gpt: { X: 27, Y: 27 },
};

/** Each example exported once for the whole file (a trace costs about a second). */
const exports = new Map<string, ReturnType<typeof exportFile>>();
const exported = (name: string) => exports.get(name) ?? (exports.set(name, exportFile(path.join(ROOT, 'examples', `${name}.ts`))), exports.get(name)!);

const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import onnx.checker'], { encoding: 'utf8' }).status === 0);

describe.each(EXAMPLES)('ONNX export of %s', (name) => {
  it('runs in ONNX Runtime and matches the flat module within 1e-5, and passes the checker', async () => {
    const mod = (await import(pathToFileURL(path.join(ROOT, 'generated', name, `${name}.js`)).href)) as GeneratedModule;
    const { bytes, model } = await exported(name);
    expect(checkModel(bytes)).toEqual([]);
    // inputs and outputs are named as in spec, in its order; params are the initializers
    expect(model.inputs.map((i) => i.name)).toEqual(Object.keys(mod.spec.inputs));
    expect(model.outputs.map((o) => o.name)).toEqual(Object.keys(mod.spec.outputs));
    const inits = new Set(model.initializers.map((t) => t.name));
    for (const p of Object.keys(mod.spec.params)) expect(inits.has(p), `initializer ${p}`).toBe(true);
    const inputs = inputsOf(mod, 7, BOUNDS[name] ?? {});
    // a model with running statistics: the export's are torch's initial ones (no params file)
    const withBuffers = mod as GeneratedModule & { initBuffers?: () => Arrays; forward(p: Arrays, i: Arrays, o?: { buffers: Arrays }): Record<string, number | Float32Array> };
    const want = withBuffers.forward(mod.initParams(0), inputs, withBuffers.initBuffers ? { buffers: withBuffers.initBuffers() } : undefined);
    const got = await runOnnx(bytes, mod, inputs);
    for (const [k, v] of Object.entries(want)) {
      const w = typeof v === 'number' ? [v] : Float32Array.from(v);
      expect(got[k]!.dims).toEqual(mod.spec.outputs[k]!.shape);
      expect(relErr(got[k]!.data as Float32Array, w), `output ${k}`).toBeLessThan(1e-5);
    }
    if (python) {
      const file = path.join(tmp(), `${name}.onnx`);
      writeFileSync(file, bytes);
      const r = spawnSync(python, ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', file], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });
});

describe('ONNX export', () => {
  it('lowers the fused ops to ONNX operators', async () => {
    const ops = async (name: string) => new Set((await exported(name)).model.nodes.map((n) => n.opType));
    const gpt = await ops('gpt');
    for (const op of ['Gather', 'LayerNormalization', 'Softmax', 'LogSoftmax', 'MatMul']) expect(gpt.has(op), op).toBe(true);
    // batchnorm with its batch statistics: BatchNormalization over the mean and variance the graph computes
    expect((await ops('makemore')).has('BatchNormalization')).toBe(true);
    expect((await ops('wavenet')).has('BatchNormalization')).toBe(true);
    expect((await ops('twolayer')).has('GatherElements')).toBe(true);
  });

  it('turns a symbolic batch into a dim_param and runs at every batch size', async () => {
    const examples = ROOT.split(path.sep).join('/') + '/examples';
    const file = modelFile(`import { LECTURE } from '${examples}/makemore.ts';
import { makemoreComposite } from '${examples}/makemore_composite.ts';
export default makemoreComposite({ ...LECTURE, batch: 'B' }, 'onnx_sym');
`);
    const { mod } = await buildAndImport(file);
    const { bytes } = await exportFile(file);
    expect(checkModel(bytes)).toEqual([]);
    const m = decodeModel(bytes);
    expect(m.inputs.map((i) => [i.name, i.dims])).toEqual([
      ['Xb', ['B', 3]],
      ['Yb', ['B']],
    ]);
    expect(m.outputs.find((o) => o.name === 'probs')!.dims).toEqual(['B', 27]);
    const session = await ort.InferenceSession.create(bytes);
    for (const B of [5, 32]) {
      const inputs = inputsOf(mod, B, { Xb: 27, Yb: 27 }, { B });
      const want = mod.forward(mod.initParams(0), inputs);
      const got = await session.run({ Xb: new ort.Tensor('int32', inputs.Xb!, [B, 3]), Yb: new ort.Tensor('int32', inputs.Yb!, [B]) });
      expect(got.probs!.dims).toEqual([B, 27]);
      expect(relErr(got.probs!.data as Float32Array, want.probs as Float32Array), `B = ${B}: probs`).toBeLessThan(1e-5);
      expect(relErr(got.loss!.data as Float32Array, [want.loss as number]), `B = ${B}: loss`).toBeLessThan(1e-5);
    }
    await session.release();
  });

  it('exports the rows of a flattened [B, t, c] matmul, a product dimension B*3, as a product of the input shape', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('onnx_rows', (g) => {
  const x = g.input('x', ['B', 3, 4]);
  const y = g.input('y', ['B', 3], 'i32');
  const h = x.matmul(g.param('W', [4, 5])).add(g.param('b', [5])).tanh();
  const logits = h.matmul(g.param('V', [5, 5]));
  return { loss: g.crossEntropy(logits, y), logits };
});
`);
    const { mod } = await buildAndImport(file);
    const { bytes, model } = await exportFile(file);
    expect(checkModel(bytes)).toEqual([]);
    expect(model.nodes.filter((n) => n.opType === 'Mul' && n.inputs.some((i) => i.startsWith('B_dim'))).length).toBeGreaterThan(0);
    const session = await ort.InferenceSession.create(bytes);
    for (const B of [5, 32]) {
      const inputs = inputsOf(mod, B, { y: 5 }, { B });
      const want = mod.forward(mod.initParams(0), inputs);
      const got = await session.run({ x: new ort.Tensor('float32', inputs.x!, [B, 3, 4]), y: new ort.Tensor('int32', inputs.y!, [B, 3]) });
      expect(got.logits!.dims).toEqual([B, 3, 5]);
      expect(relErr(got.logits!.data as Float32Array, want.logits as Float32Array), `B = ${B}: logits`).toBeLessThan(1e-5);
      expect(relErr(got.loss!.data as Float32Array, [want.loss as number]), `B = ${B}: loss`).toBeLessThan(1e-5);
    }
    await session.release();
  });

  it('keeps any DSL name for inputs, params and outputs', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('names', (g) => {
  const w = g.param('b.x', [3], { init: 'uniform' });
  const x = g.input('x; process.exit()', [3]);
  const y = x.mul(w).tanh();
  return { loss: y.sum(), 'out put': y, again: y };
});
`);
    const { mod } = await buildAndImport(file);
    const { bytes, model } = await exportFile(file);
    expect(checkModel(bytes)).toEqual([]);
    expect(model.initializers.map((t) => t.name)).toContain('b.x');
    const x = Float32Array.of(0.5, -1, 2);
    const got = await runOnnx(bytes, mod, { 'x; process.exit()': x });
    const want = mod.forward(mod.initParams(0), { 'x; process.exit()': x });
    expect(relErr(got['out put']!.data as Float32Array, want['out put'] as Float32Array)).toBeLessThan(1e-6);
    expect(relErr(got.again!.data as Float32Array, want['out put'] as Float32Array)).toBeLessThan(1e-6);
    expect(relErr(got.loss!.data as Float32Array, [want.loss as number])).toBeLessThan(1e-6);
  });

  it('exports the ops the examples do not use: narrow, concat, max, one-hot, minimum, abs, sqrt, log', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('misc', (g) => {
  const x = g.input('x', [4, 6]);
  const i = g.input('i', [4], 'i32');
  const w = g.param('w', [6, 3]);
  const a = x.narrow(1, 1, 3);
  const b = g.concat([a, x.narrow(1, 0, 2)], 1).abs().add(1).sqrt().log();
  const h = x.matmul(w).minimum(0.5).maximum(b.max(1, true));
  const oh = g.oneHot(i, 3);
  const loss = h.mul(oh).sum().add(g.pick(h, i).mean()).add(h.max());
  return { loss, h };
});
`);
    const { mod } = await buildAndImport(file);
    const { bytes } = await exportFile(file);
    expect(checkModel(bytes)).toEqual([]);
    const inputs = { x: Float32Array.from({ length: 24 }, (_, k) => Math.sin(k) * 2), i: Int32Array.of(0, 2, 1, 2) };
    const got = await runOnnx(bytes, mod, inputs);
    const want = mod.forward(mod.initParams(0), inputs);
    expect(relErr(got.h!.data as Float32Array, want.h as Float32Array)).toBeLessThan(1e-5);
    expect(relErr(got.loss!.data as Float32Array, [want.loss as number])).toBeLessThan(1e-5);
  });

  it("normalises with the running statistics of the params file: BatchNormalization's initializers", async () => {
    type Running = GeneratedModule & { initBuffers(): Record<string, Float32Array>; forward(p: Arrays, i: Arrays, o: { buffers: Arrays }): Record<string, number | Float32Array> };
    const mod = (await import(pathToFileURL(path.join(ROOT, 'generated/makemore_running/makemore_running.js')).href)) as Running;
    const r = rng(3);
    const params = mod.initParams(5);
    const buffers = mod.initBuffers();
    for (const [k, v] of Object.entries(buffers)) for (let i = 0; i < v.length; i++) v[i] = k.endsWith('running_var') ? 0.5 + r() : r() - 0.5;
    const file = path.join(tmp(), 'trained.safetensors');
    saveParams(file, { ...params, ...buffers }, { spec: mod.spec });
    const { bytes, model } = await exportFile(path.join(ROOT, 'examples/makemore_running.ts'), { params: readValues(file) });
    expect(model.nodes.filter((n) => n.opType === 'BatchNormalization').map((n) => n.inputs.slice(3))).toEqual([['hpreact.running_mean', 'hpreact.running_var']]);
    const inputs = inputsOf(mod, 9, BOUNDS.makemore_running!);
    const got = await runOnnx(bytes, mod, inputs);
    const want = mod.forward(params, inputs, { buffers });
    for (const k of ['loss', 'probs']) {
      const w = want[k]!;
      expect(relErr(got[k]!.data as Float32Array, typeof w === 'number' ? [w] : w), k).toBeLessThan(1e-5);
    }
    // and not with the initial ones: the file's statistics matter to the outputs
    const initial = mod.forward(params, inputs, { buffers: mod.initBuffers() });
    expect(relErr(got.probs!.data as Float32Array, initial.probs as Float32Array)).toBeGreaterThan(1e-3);
  });

  it('refuses a params file that lacks a param or buffer, naming each (exit 2, nothing written)', async () => {
    const dir = tmp();
    const json = path.join(dir, 'p.json');
    writeFileSync(json, JSON.stringify({ w0: [5], x0: [1], x1: [2] }));
    const out = path.join(dir, 'neuron.onnx');
    const r = await run(['export', 'examples/neuron.ts', '--onnx', out, '--params', json]);
    expect(r.err).toBe(
      `graphc export: ${json} has no param 'w1' (f32[]), param 'w2' (f32[]) of neuron: the exported model would hold initial values for them; add them to the file, or pass --allow-missing to export initParams(0) values with a warning each\n`,
    );
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
    // a checkpoint without the running statistics
    const mod = (await import(pathToFileURL(path.join(ROOT, 'generated/makemore_running/makemore_running.js')).href)) as GeneratedModule;
    const st = path.join(dir, 'params-only.safetensors');
    saveParams(st, mod.initParams(5), { spec: mod.spec });
    const e = await run(['export', 'examples/makemore_running.ts', '--onnx', out, '--params', st]);
    expect(e.err).toBe(
      `graphc export: ${st} has no buffer 'hpreact.running_mean' (f32[64]), buffer 'hpreact.running_var' (f32[64]) of makemore_running: the exported model would hold initial values for them; add them to the file, or pass --allow-missing to export torch's initial running statistics (means 0, variances 1) with a warning each\n`,
    );
    expect(e.code).toBe(2);
    const a = await run(['export', 'examples/makemore_running.ts', '--onnx', out, '--params', st, '--allow-missing']);
    expect(a.err).toBe(
      `graphc export: warning: ${st} has no buffer 'hpreact.running_mean' (f32[64]): exported with torch's initial mean, 0 (--allow-missing)\n` +
        `graphc export: warning: ${st} has no buffer 'hpreact.running_var' (f32[64]): exported with torch's initial variance, 1 (--allow-missing)\n`,
    );
    expect(a.code).toBe(0);
    expect((await run(['export', 'examples/neuron.ts', '--onnx', out, '--allow-missing'])).err).toBe('graphc export: --allow-missing needs --params FILE\n');
  });

  it('takes the params from a safetensors or JSON file (--params); with --allow-missing the others from initParams(0), a warning each', async () => {
    const dir = tmp();
    const st = path.join(dir, 'p.safetensors');
    saveParams(st, { w0: { data: Float32Array.of(5), shape: [] } });
    const json = path.join(dir, 'p.json');
    writeFileSync(json, JSON.stringify({ w0: [5] }));
    for (const f of [st, json]) {
      const out = path.join(dir, 'neuron.onnx');
      const r = await run(['export', 'examples/neuron.ts', '--onnx', out, '--params', f, '--allow-missing']);
      expect(r.err).toBe(['x0', 'w1', 'x1', 'w2'].map((n) => `graphc export: warning: ${f} has no param '${n}' (f32[]): exported with its initParams(0) value (--allow-missing)\n`).join(''));
      expect(r.out).toMatch(/^wrote .*neuron\.onnx \(\d+ bytes\)\n$/);
      expect(r.code).toBe(0);
      const m = decodeModel(readFileSync(out));
      const val = (n: string) => new Float32Array(m.initializers.find((t) => t.name === n)!.raw.slice().buffer)[0];
      expect([val('w0'), val('x0'), val('w1')]).toEqual([5, -1, -3]);
      const session = await ort.InferenceSession.create(readFileSync(out));
      const loss = (await session.run({})).loss!.data[0] as number;
      expect(loss).toBeCloseTo(1 / (1 + Math.exp(-(5 * -1 + 6 - 3))), 6);
    }
  });

  it('names the op that cannot be exported, at its line', () => {
    const g = parseGraph(`graph forward bad {
  %x: f32[3] = input {name="x"} @ bad.ts:2:13
  %m: f32[3] = argmax_mask %x {axes=[0]} @ bad.ts:3:13
  return loss=%m
}
`);
    expect(() => exportOnnx(g, { params: {} })).toThrow("export: the op 'argmax_mask' cannot be exported to ONNX");
    try {
      exportOnnx(g, { params: {} });
    } catch (e) {
      expect((e as { loc?: { line: number } }).loc?.line).toBe(3);
    }
  });

  it('is a usage error without --onnx, and writes nothing on a model error', async () => {
    const r = await run(['export', 'examples/neuron.ts']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('graphc export: --onnx OUT.onnx or --torch OUT.py is required\nusage: graphc export MODEL.ts [--onnx OUT.onnx] [--torch OUT.py] [--params FILE [--allow-missing]]\n');
    const bad = modelFile(`import { model } from 'graphc';
export default model('bad', (g) => {
  const x = g.input('x', [3]);
  return { loss: x.matmul(x) };
});
`);
    const out = path.join(tmp(), 'bad.onnx');
    const e = await run(['export', bad, '--onnx', out]);
    expect(e.code).toBe(1);
    expect(e.err).toMatch(/model\.ts:4:20: error: matmul: needs operands of rank 2 or more/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('the ONNX checker rules', () => {
  const ok = () => decodeModel(encodeModel({
    irVersion: 8,
    opset: 17,
    producer: 'graphc',
    producerVersion: '',
    graphName: 'g',
    doc: '',
    inputs: [{ name: 'x', elemType: 1, dims: ['B', 3] }],
    outputs: [{ name: 'y', elemType: 1, dims: ['B', 3] }],
    initializers: [{ name: 'w', dataType: 1, dims: [3], raw: new Uint8Array(12) }],
    nodes: [{ opType: 'Mul', inputs: ['x', 'w'], outputs: ['y'], name: 'n0', attrs: {} }],
  }));

  it('passes a well-formed model and reads back what was written', () => {
    const m = ok();
    expect(checkModel(encodeModel(m))).toEqual([]);
    expect(m.inputs[0]!.dims).toEqual(['B', 3]);
    expect(m.nodes[0]!.inputs).toEqual(['x', 'w']);
  });

  it('finds each broken rule', () => {
    const m = ok();
    const broken = encodeModel({
      ...m,
      opset: 13,
      initializers: [{ ...m.initializers[0]!, raw: new Uint8Array(8) }],
      nodes: [
        { opType: 'Mul', inputs: ['x', 'later'], outputs: ['y'], name: 'n0', attrs: {} },
        { opType: 'Relu', inputs: ['x'], outputs: ['later'], name: 'n0', attrs: { axis: { i: 1 } } },
        { opType: 'Transpose', inputs: ['x'], outputs: ['x'], name: 'n2', attrs: { perm: { i: 1 } } },
        { opType: 'Cast', inputs: ['x', 'w'], outputs: ['c'], name: 'n3', attrs: {} },
        { opType: 'FancyOp', inputs: ['x'], outputs: ['d'], name: 'n4', attrs: {} },
      ],
      outputs: [...m.outputs, { name: 'nowhere', elemType: 1, dims: [] }],
    });
    expect(checkModel(broken)).toEqual([
      'opset 13: LayerNormalization needs 17 or later',
      "initializer 'w': raw_data is 8 bytes, dims [3] need 12",
      "node 0 (Mul 'n0'): input 'later' is not a graph input, an initializer or the output of an earlier node (nodes must be topologically sorted)",
      "node 1 (Relu 'n0'): node names must be unique",
      "node 1 (Relu 'n0'): unknown attribute 'axis'",
      "node 2 (Transpose 'n2'): attribute 'perm' is INT, its schema says INTS",
      "'x' is defined twice (graph inputs, initializers and node outputs must be distinct: SSA); the second time by node 2 (Transpose 'n2')",
      "node 3 (Cast 'n3'): takes 1 inputs, has 2",
      "node 3 (Cast 'n3'): the required attribute 'to' is missing",
      "node 4 (FancyOp 'n4'): no operator FancyOp in the default domain at opset 17 (as this checker knows it)",
      "graph output 'nowhere' is not computed by any node",
    ]);
    expect(checkModel(Uint8Array.of(0x0a, 0x05, 1))).toEqual(['not a ModelProto: protobuf: field 1 runs past the end of its message']);
  });
});
