// Forward-only modules (#34): a model that returns no `loss` builds `spec`, `initParams` and
// `forward` (with `initBuffers` and the modes where the model has batchnorm or dropout), for
// inference and sampling, on every target (flat, wasm with threads, GPU.js); --optimizer, --hvp
// and --jvp are refused at the model; check, export --onnx and export --torch handle it.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-web';
import { beforeAll, describe, expect, it } from 'vitest';
import { interpret, outputsOf } from '../ir/interp.js';
import type { Compiled } from '../src/build.js';
import { compile } from '../src/build.js';
import { checkModel } from '../src/onnx/check.js';
import { exportFile } from '../src/onnx/index.js';
import { exportTorchFile } from '../src/torch/index.js';
import type { Arrays } from './helpers.js';
import { modelFile, randomArgs, relErr, rng, run, tmp } from './helpers.js';

ort.env.wasm.numThreads = 1;

/** python3 with the onnx package (its checker), where installed. */
const PYTHON_ONNX = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import onnx.checker'], { encoding: 'utf8' }).status === 0);

type Buffers = Record<string, Float32Array>;
type Options = { train?: boolean; seed?: number; buffers?: Buffers };
type Outputs = Record<string, number | Float32Array>;
interface Mod {
  spec: { inputs: Record<string, unknown>; outputs: Record<string, unknown>; params: Record<string, unknown>; buffers?: Record<string, unknown> };
  initParams(seed?: number): Record<string, Float32Array>;
  initBuffers?(): Buffers;
  forward(p: Arrays, i: Arrays, o?: Options): Outputs;
  create?(o?: { threads?: number; minWork?: number; adapt?: boolean }): Promise<{ forward(p: Arrays, i: Arrays, o?: Options): Outputs; destroy(): Promise<void> }>;
}
interface GpuMod {
  create(o: { mode: string }): Promise<Record<string, unknown> & { mode: string; forward(p: Arrays, i: Arrays, o?: Options): Promise<Outputs>; destroy(): void }>;
}

/** An MLP sampler: batchnorm with running statistics, dropout, a softmax; no labels, no loss. */
export const SAMPLER = `import { model } from 'graphc';
export default model('sampler', (g) => {
  const C = g.param('C', [10, 4], { scale: 0.5 });
  const W1 = g.param('W1', [12, 16], { scale: 0.5 });
  const gain = g.param('gain', [16], { init: 'ones' });
  const bias = g.param('bias', [16], { init: 'zeros' });
  const W2 = g.param('W2', [16, 10], { scale: 0.5 });
  const b2 = g.param('b2', [10], { scale: 0.1 });
  const X = g.input('X', [8, 3], 'i32');
  const emb = g.gather(C, X).reshape([8, 12]);
  const bn = g.batchNorm(emb.matmul(W1), gain, bias, { momentum: 0.1 });
  const h = g.dropout(bn.tanh(), 0.25);
  const logits = h.matmul(W2).add(b2);
  const probs = g.softmax(logits);
  return { probs, logits };
});
`;

/** The same network with a symbolic batch and no modes: one build for every batch size. */
const SYMBOLIC = `import { model } from 'graphc';
export default model('sampler_b', (g) => {
  const C = g.param('C', [10, 4], { scale: 0.5 });
  const W1 = g.param('W1', [12, 16], { scale: 0.5 });
  const W2 = g.param('W2', [16, 10], { scale: 0.5 });
  const X = g.input('X', ['B', 3], 'i32');
  const h = g.gather(C, X).reshape(['B', 12]).matmul(W1).tanh();
  const probs = g.softmax(h.matmul(W2));
  return { probs };
});
`;

async function buildAll(file: string): Promise<{ c: Compiled; flat: Mod; wasm: Mod; gpu: GpuMod; dir: string }> {
  const c = await compile(file, { targets: ['ts', 'gpu', 'wasm'] });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const load = async (suffix: string) => import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href);
  return { c, flat: (await load('')) as Mod, wasm: (await load('.wasm')) as Mod, gpu: (await load('.gpu')) as GpuMod, dir };
}

const f64 = (b: Buffers) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Float64Array.from(v)]));
const copy = (b: Buffers): Buffers => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Float32Array.from(v)]));

describe('a forward-only model (no loss) with batchnorm and dropout', () => {
  let m: Awaited<ReturnType<typeof buildAll>>;
  beforeAll(async () => {
    m = await buildAll(modelFile(SAMPLER, 'sampler.ts'));
  });

  it('builds spec, initParams, initBuffers and forward, and no gradient functions, on every target', async () => {
    expect(m.c.warnings.map((w) => w.message)).toEqual([]);
    expect(m.c.files.map((f) => f.name)).toEqual(['sampler.ir', 'sampler.ts', 'sampler.js', 'sampler.gpu.ts', 'sampler.gpu.js', 'sampler.wasm.ts', 'sampler.wasm.js', 'package.json']);
    for (const mod of [m.flat, m.wasm]) {
      expect(Object.keys(mod.spec.outputs)).toEqual(['probs', 'logits']);
      expect(Object.keys(mod.spec.inputs)).toEqual(['X']);
      expect(typeof mod.initBuffers).toBe('function');
      expect(mod).not.toHaveProperty('valueAndGrad');
      expect(mod).not.toHaveProperty('trainStep');
    }
    const ts = m.c.files.find((f) => f.name === 'sampler.ts')!.content;
    expect(ts).toMatch(/export function forward\(/);
    expect(ts).not.toMatch(/function valueAndGrad|interface Grads|backwardPass|lossSlot/);
    const gpu = await m.gpu.create({ mode: 'cpu' });
    try {
      expect(gpu).not.toHaveProperty('valueAndGrad');
      expect(gpu.mode).toBe('cpu');
    } finally {
      gpu.destroy();
    }
  });

  it('gives the float64 interpreter\'s outputs in evaluation and in training (the same dropout masks), flat, wasm, threaded wasm and GPU.js', async () => {
    const gpu = await m.gpu.create({ mode: 'cpu' });
    const threaded = await m.wasm.create!({ threads: 2, minWork: 0, adapt: false });
    try {
      for (const [seed, train] of [[0, false], [1, true], [7, true]] as const) {
        const { params, inputs } = randomArgs(m.c.fwd, seed);
        const buffers = m.flat.initBuffers!();
        // evaluation normalises with running statistics other than the initial ones
        for (const b of Object.values(buffers)) for (let i = 0; i < b.length; i++) b[i] = b[i]! + 0.1 * (i % 3);
        const ref = interpret(m.c.fwd, { params, inputs, train, seed, buffers: f64(buffers) });
        const runs: [string, Outputs][] = [
          ['flat', m.flat.forward(params, inputs, { train, seed, buffers: copy(buffers) })],
          ['wasm', m.wasm.forward(params, inputs, { train, seed, buffers: copy(buffers) })],
          ['threads', threaded.forward(params, inputs, { train, seed, buffers: copy(buffers) })],
          ['gpu', await gpu.forward(params, inputs, { train, seed, buffers: copy(buffers) })],
        ];
        for (const [, out] of runs)
          for (const name of ['probs', 'logits']) expect(relErr(out[name] as Float32Array, ref.get(name)!.data)).toBeLessThan(1e-5);
      }
    } finally {
      gpu.destroy();
      await threaded.destroy();
    }
  });

  it('updates the running statistics in a training forward, and leaves them in evaluation', () => {
    const { params, inputs } = randomArgs(m.c.fwd, 3);
    for (const mod of [m.flat, m.wasm]) {
      const buffers = mod.initBuffers!();
      mod.forward(params, inputs, { buffers });
      expect(buffers).toEqual(mod.initBuffers!());
      mod.forward(params, inputs, { buffers, train: true, seed: 1 });
      const ref = outputsOf(m.c.fwd, interpret(m.c.fwd, { params, inputs, train: true, seed: 1, buffers: f64(mod.initBuffers!()) }));
      expect(relErr(buffers['bn.running_mean']!, ref['bn.running_mean']!.data)).toBeLessThan(1e-5);
      expect(relErr(buffers['bn.running_var']!, ref['bn.running_var']!.data)).toBeLessThan(1e-5);
      expect(buffers['bn.running_mean']!.some((v) => v !== 0)).toBe(true);
    }
  });
});

describe('a forward-only model with a symbolic batch', () => {
  it('samples at every batch size on the flat, wasm and GPU.js targets', async () => {
    const c = await compile(modelFile(SYMBOLIC, 'sampler_b.ts'), { targets: ['ts', 'gpu', 'wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const load = async (suffix: string) => import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href);
    const flat = (await load('')) as Mod;
    const wasm = (await load('.wasm')) as Mod;
    const gpu = await ((await load('.gpu')) as GpuMod).create({ mode: 'cpu' });
    try {
      expect(flat).not.toHaveProperty('valueAndGrad');
      expect(wasm).not.toHaveProperty('valueAndGrad');
      expect(gpu).not.toHaveProperty('valueAndGrad');
      for (const B of [1, 5, 2]) {
        const { params, inputs } = randomArgs(c.fwd, B, 1, { B });
        const ref = interpret(c.fwd, { params, inputs }).get('probs')!.data;
        expect(ref.length).toBe(B * 10);
        expect(relErr(flat.forward(params, inputs).probs as Float32Array, ref)).toBeLessThan(1e-5);
        expect(relErr(wasm.forward(params, inputs).probs as Float32Array, ref)).toBeLessThan(1e-5);
        expect(relErr((await gpu.forward(params, inputs)).probs as Float32Array, ref)).toBeLessThan(1e-5);
      }
    } finally {
      gpu.destroy();
    }
  });
});

describe('graphc build of a forward-only model', () => {
  const refusal = (flag: string, what: string) => `test/fixtures/errors/no-loss.ts:2:1: error: ${flag}: the model returns no loss (its outputs: total), so it builds a forward-only module (spec, initParams, forward): no gradient, no ${what}
  2 | export default model('bad', (g) => {
    | ^^^^^^
  fix: return the scalar loss too, e.g. { loss, total }, to build ${what}; or build without ${flag}
`;
  it.each([
    [['--optimizer', 'adam'], '--optimizer adam', 'trainStep'],
    [['--optimizer', 'sgd', '--target', 'gpu'], '--optimizer sgd', 'trainStep'],
    [['--hvp'], '--hvp', 'hvp'],
    [['--jvp'], '--jvp', 'jvp'],
  ])('refuses %j at the model, saying why and how to fix it (exit 1, nothing written)', async (args, flag, what) => {
    const out = path.join(tmp(), 'out');
    const r = await run(['build', 'test/fixtures/errors/no-loss.ts', '--out', out, ...args]);
    expect(r.err).toBe(refusal(flag, what));
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
  });

  it('says it in these words (docs/module.md quotes them)', async () => {
    const r = await run(['build', 'test/fixtures/errors/no-loss.ts', '--out', path.join(tmp(), 'out'), '--optimizer', 'adam']);
    expect(r.err.split('\n')).toEqual([
      'test/fixtures/errors/no-loss.ts:2:1: error: --optimizer adam: the model returns no loss (its outputs: total), so it builds a forward-only module (spec, initParams, forward): no gradient, no trainStep',
      "  2 | export default model('bad', (g) => {",
      '    | ^^^^^^',
      '  fix: return the scalar loss too, e.g. { loss, total }, to build trainStep; or build without --optimizer adam',
      '',
    ]);
  });

  it('builds it without those flags: its IR, no gradient IR, the modules', async () => {
    const out = path.join(tmp(), 'out');
    const r = await run(['build', 'test/fixtures/errors/no-loss.ts', '--out', out, '--target', 'ts,gpu,wasm']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['.graphc-manifest.json', 'bad.gpu.js', 'bad.gpu.ts', 'bad.ir', 'bad.js', 'bad.ts', 'bad.wasm.js', 'bad.wasm.ts', 'package.json']);
  });

  it('graphc ir prints its forward graph, and refuses --grad at the model (it has no backward graph)', async () => {
    const fwd = await run(['ir', 'test/fixtures/errors/no-loss.ts']);
    expect(fwd.code).toBe(0);
    expect(fwd.out).toMatch(/^graph forward bad \{/);
    const r = await run(['ir', 'test/fixtures/errors/no-loss.ts', '--grad']);
    expect(r.err).toBe(`test/fixtures/errors/no-loss.ts:2:1: error: --grad: the model returns no loss (its outputs: total), so it is forward-only and has no backward graph
  2 | export default model('bad', (g) => {
    | ^^^^^^
  fix: graphc ir without --grad prints its forward graph; return the scalar loss too, e.g. { loss, total }, to differentiate it
`);
    expect(r.code).toBe(1);
  });

  it('warns (and builds) when a param reaches no output', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('unused', (g) => {
  const w = g.param('w', [3]);
  const u = g.param('u', [3]);
  return { y: g.input('x', [3]).mul(w) };
});
`);
    const out = path.join(tmp(), 'out');
    const r = await run(['build', file, '--out', out]);
    expect(r.code).toBe(0);
    expect(r.err.split('\n')[0]).toMatch(/model\.ts:4:15: warning: param 'u' reaches no output of the model; it changes nothing$/);
    expect(r.err.split('\n').slice(1).join('\n')).toBe(`  4 |   const u = g.param('u', [3]);
    |               ^^^^^
  fix: use it on the way to an output, or remove it
`);
    expect(existsSync(path.join(out, 'unused.js'))).toBe(true);
  });

  it("refuses an input declared { grad: true }, at the input's line", async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('fo', (g) => {
  const w = g.param('w', [3]);
  const x = g.input('x', [3], 'f32', { grad: true });
  return { y: x.mul(w) };
});
`);
    const c = compile(file);
    await expect(c).rejects.toThrow("input 'x' is declared { grad: true }, but the model returns no loss (its outputs: y): a forward-only model has no gradient");
    const r = await run(['build', file, '--out', path.join(tmp(), 'out')]);
    expect(r.err.split('\n').slice(1).join('\n')).toBe(`  4 |   const x = g.input('x', [3], 'f32', { grad: true });
    |               ^^^^^
  fix: return the scalar loss as { loss, ... } to get the input's gradient from valueAndGrad, or drop { grad: true }
`);
    expect(r.err.split('\n')[0]).toMatch(/model\.ts:4:15: error: input 'x' is declared/);
  });
});

describe('graphc check, export --onnx and export --torch of a forward-only model', () => {
  const file = modelFile(SAMPLER, 'sampler.ts');

  it('check: the outputs (and the next running statistics) against the float64 interpreter, in evaluation and training', async () => {
    const r = await run(['check', file]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines.slice(0, 4)).toEqual([
      "forward check of sampler: the model returns no loss, so there is no gradient to check; the generated module's outputs against the float64 interpreter",
      '(seed 0; relative error = max |output - reference| / max(max |reference|, 1e-3), PASS when at most 0.001)',
      '(an evaluation call, then a training call with seed 0: its dropout masks, batch statistics and next running statistics)',
      'output                      shape      checked  max abs err  max rel err',
    ]);
    const rows = lines.slice(4, -1).map((l) => l.split(/\s{2,}/));
    expect(rows.map((x) => [x[0], x[1], x[2], x[5]])).toEqual([
      ['probs (evaluation)', 'f32[8,10]', '80', 'PASS'],
      ['logits (evaluation)', 'f32[8,10]', '80', 'PASS'],
      ['probs (training)', 'f32[8,10]', '80', 'PASS'],
      ['logits (training)', 'f32[8,10]', '80', 'PASS'],
      ['bn.running_mean (training)', 'f32[16]', '16', 'PASS'],
      ['bn.running_var (training)', 'f32[16]', '16', 'PASS'],
    ]);
    for (const x of rows) expect(Number(x[4])).toBeLessThan(1e-5);
  });

  it('export --onnx: no label input, a valid graph that ONNX Runtime runs to the flat module\'s outputs', async () => {
    const { bytes, model } = await exportFile(file);
    expect(checkModel(bytes)).toEqual([]);
    expect(model.inputs.map((i) => i.name)).toEqual(['X']);
    expect(model.outputs.map((o) => o.name)).toEqual(['probs', 'logits']);
    const { flat, c } = await buildAll(file);
    const { inputs } = randomArgs(c.fwd, 11);
    const want = flat.forward(flat.initParams(0), inputs, { buffers: flat.initBuffers!() });
    const session = await ort.InferenceSession.create(bytes);
    try {
      const got = await session.run({ X: new ort.Tensor('int32', inputs.X as Int32Array, [8, 3]) });
      for (const k of ['probs', 'logits']) {
        expect(got[k]!.dims).toEqual([8, 10]);
        expect(relErr(got[k]!.data as Float32Array, want[k] as Float32Array), k).toBeLessThan(1e-5);
      }
    } finally {
      await session.release();
    }
    if (PYTHON_ONNX) {
      const out = path.join(tmp(), 'sampler.onnx');
      writeFileSync(out, bytes);
      const r = spawnSync(PYTHON_ONNX, ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', out], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });

  it('export --torch: forward(**inputs) takes X and returns the outputs, no loss; valid Python', async () => {
    const { source } = await exportTorchFile(file);
    expect(source).toContain('# sampler: the model as a torch.nn.Module. forward(**inputs) returns its outputs (a forward-only model: no loss);');
    expect(source).toMatch(/\n {8}return \{"probs": \w+, "logits": \w+\}\n/);
    expect(source).not.toMatch(/inputs\["(?!X")/);
    const out = path.join(tmp(), 'sampler.py');
    writeFileSync(out, source);
    const r = spawnSync('python3', ['-m', 'py_compile', out], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // where /usr/bin/python3 has torch: the module in eval mode gives the flat module's outputs
    if (spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status !== 0) return;
    const { flat, c } = await buildAll(file);
    const { inputs } = randomArgs(c.fwd, 12);
    const want = flat.forward(flat.initParams(0), inputs, { buffers: flat.initBuffers!() });
    const driver = [
      'import importlib.util, json, sys, torch',
      'spec = importlib.util.spec_from_file_location("sampler_export", sys.argv[1])',
      'mod = importlib.util.module_from_spec(spec)',
      'spec.loader.exec_module(mod)',
      'm = mod.sampler()',
      'm.eval()',
      'out = m(X=torch.tensor(json.loads(sys.argv[2]), dtype=torch.int32).reshape(8, 3))',
      'print(json.dumps({k: v.detach().reshape(-1).tolist() for k, v in out.items()}))',
    ].join('\n');
    const py = spawnSync('/usr/bin/python3', ['-c', driver, out, JSON.stringify([...(inputs.X as Int32Array)])], { encoding: 'utf8' });
    expect(py.stderr).toBe('');
    const got = JSON.parse(py.stdout) as Record<string, number[]>;
    expect(Object.keys(got)).toEqual(['probs', 'logits']);
    for (const k of ['probs', 'logits']) expect(relErr(got[k]!, want[k] as Float32Array), k).toBeLessThan(1e-5);
  });
});

describe('sampling: a forward-only model takes the params a training model learned', () => {
  // the training model and its sampler share the params' names and shapes; the sampler has no labels
  const net = (name: string, batch: string | number, train: boolean) => `import { model } from 'graphc';
export default model('${name}', (g) => {
  const C = g.param('C', [6, 4], { scale: 0.5 });
  const W1 = g.param('W1', [12, 16], { scale: 0.3 });
  const W2 = g.param('W2', [16, 6], { scale: 0.3 });
  const X = g.input('X', [${JSON.stringify(batch)}, 3], 'i32');
  const logits = g.gather(C, X).reshape([${JSON.stringify(batch)}, 12]).matmul(W1).tanh().matmul(W2);
  ${train ? `const Y = g.input('Y', [${JSON.stringify(batch)}], 'i32');\n  return { loss: g.crossEntropy(logits, Y), probs: g.softmax(logits) };` : 'return { probs: g.softmax(logits) };'}
});
`;

  it('trains, then samples from the same params: the sampler\'s probabilities are the training model\'s', async () => {
    const dir = tmp();
    const trainFile = modelFile(net('lm', 32, true), 'lm.ts');
    const sampleFile = modelFile(net('lm_sample', 'B', false), 'lm_sample.ts');
    expect((await run(['build', trainFile, '--out', path.join(dir, 'lm'), '--target', 'ts', '--optimizer', 'adam', '--lr', '0.05'])).err).toBe('');
    expect((await run(['build', sampleFile, '--out', path.join(dir, 'lm_sample'), '--target', 'ts'])).err).toBe('');
    type Lm = Mod & { initOptState(p: Arrays): object; trainStep(p: Arrays, s: object, i: Arrays): { loss: number } };
    const lm = (await import(pathToFileURL(path.join(dir, 'lm', 'lm.js')).href)) as Lm;
    const sampler = (await import(pathToFileURL(path.join(dir, 'lm_sample', 'lm_sample.js')).href)) as Mod;
    // the sequences 0 1 2 3 4 5 0 1 ...: the next token is the last one plus 1
    const r = rng(5);
    const data = () => {
      const X = new Int32Array(96);
      const Y = new Int32Array(32);
      for (let i = 0; i < 32; i++) {
        const s = Math.floor(r() * 6);
        for (let j = 0; j < 3; j++) X[i * 3 + j] = (s + j) % 6;
        Y[i] = (s + 3) % 6;
      }
      return { X, Y };
    };
    const params = lm.initParams(0);
    const state = lm.initOptState(params);
    const first = lm.trainStep(params, state, data()).loss;
    let last = first;
    for (let k = 0; k < 150; k++) last = lm.trainStep(params, state, data()).loss;
    expect(last).toBeLessThan(first / 4);
    // the same params, one context: the sampler's row is the training model's
    const batch = data();
    const want = lm.forward(params, batch).probs as Float32Array;
    const got = sampler.forward(params, { X: batch.X.slice(0, 3) }).probs as Float32Array;
    expect(relErr(got, want.subarray(0, 6))).toBeLessThan(1e-6);
    // sample 8 tokens after the context 2 3 4, one at a time (B = 1), drawing from the probabilities
    const draw = rng(9);
    const ctx = Int32Array.of(2, 3, 4);
    const out: number[] = [];
    for (let t = 0; t < 8; t++) {
      const p = sampler.forward(params, { X: ctx }).probs as Float32Array;
      let u = draw();
      let next = 0;
      while (next < 5 && u >= p[next]!) u -= p[next++]!;
      out.push(next);
      ctx.set([ctx[1]!, ctx[2]!, next]);
    }
    // the rule it learned: mostly the last token plus 1
    const follows = out.filter((x, i) => x === ((i === 0 ? 4 : out[i - 1]!) + 1) % 6).length;
    expect(follows).toBeGreaterThanOrEqual(6);
  }, 120_000);
});
