// Training and evaluation mode: dropout's counter-based masks (ir/random.ts) and batchnorm's
// running statistics (module buffers), in the flat, wasm and GPU.js (cpu) modules and the float64
// interpreter. See docs/training.md.

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { interpret } from '../ir/interp.js';
import { dropoutMask, dropoutUniforms } from '../ir/random.js';
import type { Compiled } from '../src/build.js';
import { compile } from '../src/build.js';
import { gradCheck } from '../src/inspect.js';
import type { Arrays } from './helpers.js';
import { modelFile, randomArgs, relErr, ROOT, run, tmp } from './helpers.js';

type Buffers = Record<string, Float32Array>;
type Options = { train?: boolean; seed?: number; buffers?: Buffers };
interface Mod {
  initParams(seed?: number): Record<string, Float32Array>;
  initBuffers(): Buffers;
  spec: { buffers?: Record<string, { dtype: string; shape: number[] }>; outputs: Record<string, unknown> };
  forward(p: Arrays, i: Arrays, o?: Options): Record<string, number | Float32Array>;
  valueAndGrad(p: Arrays, i: Arrays, o?: Options): { loss: number; grads: Record<string, Float32Array> };
}
interface GpuMod {
  create(o: { mode: string }): Promise<{
    forward(p: Arrays, i: Arrays, o?: Options): Promise<Record<string, number | Float32Array>>;
    valueAndGrad(p: Arrays, i: Arrays, o?: Options): Promise<{ loss: number; grads: Record<string, Float32Array> }>;
    destroy(): void;
  }>;
}

async function buildAll(file: string): Promise<{ c: Compiled; flat: Mod; wasm: Mod; gpu: GpuMod }> {
  const c = await compile(file, { targets: ['ts', 'gpu', 'wasm'] });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const load = async (suffix: string) => import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href);
  return { c, flat: (await load('')) as Mod, wasm: (await load('.wasm')) as Mod, gpu: (await load('.gpu')) as GpuMod };
}

const copy = (b: Buffers): Buffers => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Float32Array.from(v)]));
const f64 = (b: Buffers) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Float64Array.from(v)]));

describe('the dropout mask generator', () => {
  const N = 4096;

  it('keeps a fraction 1 − p of the elements, with the binomial variance over seeds', () => {
    for (const p of [0.1, 0.5, 0.9]) {
      const fractions = Array.from({ length: 200 }, (_x, seed) => dropoutMask(N, p, seed, 0).filter((v) => v !== 0).length / N);
      const mean = fractions.reduce((a, b) => a + b, 0) / fractions.length;
      const variance = fractions.reduce((a, b) => a + (b - mean) ** 2, 0) / (fractions.length - 1);
      // the mean of 200 × 4096 Bernoulli(1 − p): standard error ≤ 0.0006; variance p(1 − p)/N within 30%
      expect(Math.abs(mean - (1 - p))).toBeLessThan(0.003);
      expect(variance / ((p * (1 - p)) / N)).toBeGreaterThan(0.7);
      expect(variance / ((p * (1 - p)) / N)).toBeLessThan(1.3);
    }
  });

  it('scales what it keeps by 1/(1 − p), and draws uniforms in [0, 1) with 24 bits', () => {
    const m = dropoutMask(1000, 0.2, 7, 3);
    expect(new Set(m)).toEqual(new Set([0, 1 / 0.8]));
    const u = dropoutUniforms(100000, 1, 0);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(u.every((x) => Number.isInteger(x * 16777216))).toBe(true);
    const mean = u.reduce((a, b) => a + b, 0) / u.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
  });

  /** Pearson correlation of two sequences. */
  const corr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    const n = a.length;
    let ma = 0;
    let mb = 0;
    for (let i = 0; i < n; i++) (ma += a[i]!), (mb += b[i]!);
    ma /= n;
    mb /= n;
    let sab = 0;
    let saa = 0;
    let sbb = 0;
    for (let i = 0; i < n; i++) {
      sab += (a[i]! - ma) * (b[i]! - mb);
      saa += (a[i]! - ma) ** 2;
      sbb += (b[i]! - mb) ** 2;
    }
    return sab / Math.sqrt(saa * sbb);
  };

  it('draws neighbouring elements, consecutive seeds and other sites independently', () => {
    const n = 100000;
    const u = dropoutUniforms(n + 1, 5, 0);
    // 1/sqrt(n) ≈ 0.003: a correlation under 0.015 is within 5 standard errors of none
    expect(Math.abs(corr(u.subarray(0, n), u.subarray(1)))).toBeLessThan(0.015);
    for (let seed = 0; seed < 5; seed++) {
      expect(Math.abs(corr(dropoutUniforms(n, seed, 0), dropoutUniforms(n, seed + 1, 0)))).toBeLessThan(0.015);
      expect(Math.abs(corr(dropoutUniforms(n, seed, 0), dropoutUniforms(n, seed, 1)))).toBeLessThan(0.015);
    }
    // masks of consecutive steps (seeds) agree as often as independent ones would: (1 − p)² + p²
    const a = dropoutMask(n, 0.5, 41, 0);
    const b = dropoutMask(n, 0.5, 42, 0);
    const same = a.filter((v, i) => v === b[i]).length / n;
    expect(Math.abs(same - 0.5)).toBeLessThan(0.01);
    // seeds past 2^32 are not those below it
    expect(dropoutMask(64, 0.5, 2 ** 32 + 3, 0)).not.toEqual(dropoutMask(64, 0.5, 3, 0));
  });
});

const MODEL = `import { model } from 'graphc';
export default model('modes', (g) => {
  const W1 = g.param('W1', [4, 16], { scale: 0.5 });
  const W2 = g.param('W2', [16, 3], { scale: 0.5 });
  const gain = g.param('gain', [16], { init: 'ones' });
  const bias = g.param('bias', [16], { init: 'zeros' });
  const x = g.input('x', [8, 4]);
  const y = g.input('y', [8], 'i32');
  const pre = x.matmul(W1);
  const bn1 = g.batchNorm(pre, gain, bias, { momentum: 0.1 });
  const h = g.dropout(bn1.tanh(), 0.3);
  const h2 = g.dropout(h, 0.5);
  const logits = h2.matmul(W2);
  const loss = g.crossEntropy(logits, y);
  return { loss, h2, pre };
});
`;

describe('a model with dropout and batchnorm running statistics', () => {
  let m: Awaited<ReturnType<typeof buildAll>>;
  beforeAll(async () => {
    m = await buildAll(modelFile(MODEL, 'modes.ts'));
  });

  it('lists its buffers in spec and gives fresh ones (mean 0, var 1); the next statistics are no outputs', () => {
    expect(m.flat.spec.buffers).toEqual({ 'bn1.running_mean': { dtype: 'f32', shape: [16] }, 'bn1.running_var': { dtype: 'f32', shape: [16] } });
    expect(Object.keys(m.flat.spec.outputs)).toEqual(['loss', 'h2', 'pre']);
    const b = m.flat.initBuffers();
    expect([...b['bn1.running_mean']!]).toEqual(new Array(16).fill(0));
    expect([...b['bn1.running_var']!]).toEqual(new Array(16).fill(1));
  });

  it('draws the same masks from the same seed in the flat, wasm and GPU.js modules and the interpreter', async () => {
    const { params, inputs } = randomArgs(m.c.fwd, 3);
    const gpu = await m.gpu.create({ mode: 'cpu' });
    try {
      for (const seed of [0, 1, 12345]) {
        const ref = interpret(m.c.fwd, { params, inputs, train: true, seed, buffers: f64(m.flat.initBuffers()) });
        const want = ref.get('h2')!.data;
        const flat = Float32Array.from(m.flat.forward(params, inputs, { train: true, seed, buffers: m.flat.initBuffers() }).h2 as Float32Array);
        const wasm = Float32Array.from(m.wasm.forward(params, inputs, { train: true, seed, buffers: m.wasm.initBuffers() }).h2 as Float32Array);
        const onGpu = (await gpu.forward(params, inputs, { train: true, seed, buffers: m.flat.initBuffers() })).h2 as Float32Array;
        for (const got of [flat, wasm, onGpu]) {
          // the same zeros exactly, the same values within float32
          expect([...got].map((v) => v === 0)).toEqual([...want].map((v) => v === 0));
          expect(relErr(got, want)).toBeLessThan(1e-5);
        }
        // about (1 − 0.3)(1 − 0.5) of the elements are kept
        expect(flat.filter((v) => v !== 0).length).toBeGreaterThan(20);
        expect(flat.filter((v) => v !== 0).length).toBeLessThan(90);
      }
    } finally {
      gpu.destroy();
    }
  });

  it('is the identity in evaluation (forward without train), and normalises with the running statistics', () => {
    const { params, inputs } = randomArgs(m.c.fwd, 4);
    const buffers = m.flat.initBuffers();
    for (let k = 0; k < 3; k++) m.flat.valueAndGrad(params, { ...inputs }, { buffers, seed: k });
    const before = copy(buffers);
    const got = m.flat.forward(params, inputs, { buffers });
    const ref = interpret(m.c.fwd, { params, inputs, buffers: f64(buffers) });
    expect(relErr(got.h2 as Float32Array, ref.get('h2')!.data)).toBeLessThan(1e-5);
    expect(relErr([got.loss as number], ref.get('loss')!.data)).toBeLessThan(1e-5);
    // by hand: tanh((pre − running_mean)/sqrt(running_var + eps)·gain + bias), nothing dropped
    const pre = got.pre as Float32Array;
    const h = Array.from(pre, (v, i) => Math.tanh((v - buffers['bn1.running_mean']![i % 16]!) / Math.sqrt(buffers['bn1.running_var']![i % 16]! + 1e-5) * params.gain![i % 16]! + params.bias![i % 16]!));
    expect(relErr(got.h2 as Float32Array, h)).toBeLessThan(1e-5);
    // evaluation leaves the buffers as they are
    expect(buffers).toEqual(before);
  });

  it('updates the running statistics as torch does (unbiased variance) over k training calls, on every target', async () => {
    const gpu = await m.gpu.create({ mode: 'cpu' });
    try {
      const params = randomArgs(m.c.fwd, 5).params;
      const targets = { flat: m.flat.initBuffers(), wasm: m.wasm.initBuffers(), gpu: m.flat.initBuffers(), train: m.flat.initBuffers() };
      // float64 reference: running = (1 − 0.1)·running + 0.1·batch statistic
      const mean = new Float64Array(16);
      const variance = new Float64Array(16).fill(1);
      for (let k = 0; k < 6; k++) {
        const { inputs } = randomArgs(m.c.fwd, 100 + k);
        const x = inputs.x as Float32Array;
        const W1 = params.W1 as Float32Array;
        for (let j = 0; j < 16; j++) {
          const col = Array.from({ length: 8 }, (_r, i) => [0, 1, 2, 3].reduce((s, q) => s + x[i * 4 + q]! * W1[q * 16 + j]!, 0));
          const mu = col.reduce((a, b) => a + b, 0) / 8;
          const v = col.reduce((a, b) => a + (b - mu) ** 2, 0) / 7;
          mean[j] = 0.9 * mean[j]! + 0.1 * mu;
          variance[j] = 0.9 * variance[j]! + 0.1 * v;
        }
        m.flat.valueAndGrad(params, inputs, { buffers: targets.flat, seed: k });
        m.wasm.valueAndGrad(params, inputs, { buffers: targets.wasm, seed: k });
        await gpu.valueAndGrad(params, inputs, { buffers: targets.gpu, seed: k });
        m.flat.forward(params, inputs, { buffers: targets.train, train: true, seed: k });
      }
      for (const [name, b] of Object.entries(targets)) {
        expect(relErr(b['bn1.running_mean']!, mean), `${name}: running mean`).toBeLessThan(1e-5);
        expect(relErr(b['bn1.running_var']!, variance), `${name}: running var`).toBeLessThan(1e-5);
      }
    } finally {
      gpu.destroy();
    }
  });

  it('takes gradients with the masks of the forward pass (graphc check holds them fixed)', async () => {
    const { params, inputs } = randomArgs(m.c.fwd, 6);
    const seed = 9;
    const got = m.flat.valueAndGrad(params, inputs, { buffers: m.flat.initBuffers(), seed });
    const mode = { train: true, seed, buffers: f64(m.flat.initBuffers()) };
    const fwd = interpret(m.c.fwd, { params, inputs, ...mode });
    const bwd = interpret(m.c.bwd, { fwd });
    for (const o of m.c.bwd.outputs) expect(relErr(got.grads[o.name]!, bwd.get(m.c.bwd.value(o.value).name)!.data), o.name).toBeLessThan(1e-4);
    // the wasm module's gradients are the same
    const w = m.wasm.valueAndGrad(params, inputs, { buffers: m.wasm.initBuffers(), seed });
    for (const [k, g] of Object.entries(w.grads)) expect(relErr(g, got.grads[k]!), k).toBeLessThan(1e-4);
    const check = await gradCheck(m.c.model.file, {});
    expect(check.rows.every((r) => r.pass)).toBe(true);
    expect(check.table).toContain('the finite differences hold the dropout masks fixed: h_mask (modes.ts:11), h2_mask (modes.ts:12)');
  });

  it('draws fresh masks in each call without a seed, from a counter that starts at 0 when the module loads', () => {
    const { params, inputs } = randomArgs(m.c.fwd, 7);
    const seeded = Float32Array.from(m.wasm.forward(params, inputs, { train: true, seed: 0, buffers: m.wasm.initBuffers() }).h2 as Float32Array);
    // the wasm module has made no seedless call yet: its first one uses seed 0
    const first = Float32Array.from(m.wasm.forward(params, inputs, { train: true, buffers: m.wasm.initBuffers() }).h2 as Float32Array);
    const second = Float32Array.from(m.wasm.forward(params, inputs, { train: true, buffers: m.wasm.initBuffers() }).h2 as Float32Array);
    expect(first).toEqual(seeded);
    expect(second).not.toEqual(first);
  });

  it('says what is missing when a model with buffers is called without them', async () => {
    const { params, inputs } = randomArgs(m.c.fwd, 8);
    const msg =
      'modes: this model keeps batchnorm running statistics in buffers (bn1.running_mean, bn1.running_var): pass them in the options, ' +
      'e.g. valueAndGrad(params, inputs, { buffers }) or forward(params, inputs, { buffers }), with buffers = initBuffers()';
    expect(() => m.flat.forward(params, inputs)).toThrow(new TypeError(msg));
    expect(() => m.flat.valueAndGrad(params, inputs, { seed: 1 })).toThrow(new TypeError(msg));
    expect(() => m.wasm.valueAndGrad(params, inputs)).toThrow(new TypeError(msg));
    const gpu = await m.gpu.create({ mode: 'cpu' });
    try {
      await expect(gpu.forward(params, inputs)).rejects.toThrow(new TypeError(msg));
    } finally {
      gpu.destroy();
    }
    expect(() => m.flat.forward(params, inputs, { buffers: { 'bn1.running_mean': new Float32Array(16) } })).toThrow(
      new TypeError("modes: missing buffer 'bn1.running_var' (f32[16])"),
    );
    expect(() => m.flat.valueAndGrad(params, inputs, { buffers: m.flat.initBuffers(), seed: 0.5 })).toThrow(new TypeError('modes: options.seed must be an integer, got 0.5'));
    expect(() => m.flat.valueAndGrad(params, inputs, { buffers: m.flat.initBuffers(), seed: '1' as unknown as number })).toThrow(new TypeError("modes: options.seed must be an integer, got the string '1'"));
  });
});

describe('batchnorm running statistics with a symbolic batch', () => {
  it('evaluates a batch of one with the running statistics (its own variance would be NaN)', async () => {
    const examples = ROOT.split(path.sep).join('/') + '/examples';
    const file = modelFile(`import { LECTURE } from '${examples}/makemore.ts';
import { makemoreRunning } from '${examples}/makemore_running.ts';
export default makemoreRunning({ ...LECTURE, batch: 'B' }, 'running_sym', { momentum: 0.1, dropout: 0.2 });
`);
    const c = await compile(file, { targets: ['ts', 'gpu'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const flat = (await import(pathToFileURL(path.join(dir, `${c.name}.js`)).href)) as Mod;
    const gpuMod = (await import(pathToFileURL(path.join(dir, `${c.name}.gpu.js`)).href)) as GpuMod;
    const buffers = flat.initBuffers();
    const big = randomArgs(c.fwd, 32, 0.5, { B: 32 });
    for (let k = 0; k < 4; k++) flat.valueAndGrad(big.params, big.inputs, { buffers, seed: k });
    const one = randomArgs(c.fwd, 1, 0.5, { B: 1 });
    const got = flat.forward(big.params, one.inputs, { buffers });
    const ref = interpret(c.fwd, { params: big.params, inputs: one.inputs, buffers: f64(buffers) });
    expect(Number.isFinite(got.loss)).toBe(true);
    expect(relErr([got.loss as number], ref.get(c.fwd.value(c.fwd.outputs[0]!.value).name)!.data)).toBeLessThan(1e-5);
    const gpu = await gpuMod.create({ mode: 'cpu' });
    try {
      const g1 = await gpu.forward(big.params, one.inputs, { buffers });
      expect(relErr([g1.loss as number], [got.loss as number])).toBeLessThan(1e-5);
      // a training call of the GPU.js module at B = 32 draws the flat module's masks
      const b1 = copy(buffers);
      const b2 = copy(buffers);
      const t1 = flat.valueAndGrad(big.params, big.inputs, { buffers: b1, seed: 77 });
      const t2 = await gpu.valueAndGrad(big.params, big.inputs, { buffers: b2, seed: 77 });
      expect(relErr([t2.loss], [t1.loss])).toBeLessThan(1e-5);
      expect(relErr(b2['hpreact.running_var']!, b1['hpreact.running_var']!)).toBeLessThan(1e-5);
    } finally {
      gpu.destroy();
    }
  });
});

describe('mode errors in the model', () => {
  const build = async (body: string) => {
    const file = modelFile(`import { model } from 'graphc';
export default model('bad', (g) => {
  const x = g.input('x', [8, 4]);
${body}
});
`);
    const r = await run(['build', file, '--out', path.join(tmp(), 'out')]);
    return { ...r, where: path.relative(ROOT, file) };
  };

  it('rejects a dropout probability outside [0, 1)', async () => {
    const r = await build('  const h = g.dropout(x, 1);\n  return h.sum();');
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `${r.where}:4:15: error: dropout: p must be a number in [0, 1), got 1\n` +
        '  4 |   const h = g.dropout(x, 1);\n' +
        '    |               ^^^^^^^\n' +
        '  fix: p is the probability that an element is zeroed, e.g. g.dropout(h, 0.1); p = 0 keeps every element\n',
    );
  });

  it('asks for a name when the running statistics have none', async () => {
    const r = await build("  const w = g.param('w', [4]);\n  return g.batchNorm(x, w, 0, { momentum: 0.1 }).sum();");
    expect(r.code).toBe(1);
    expect(r.err).toContain('error: batchNorm: the running statistics need a name, got undefined');
    expect(r.err).toContain("fix: assign the result to a const (const bn1 = g.batchNorm(...) keeps 'bn1.running_mean' and 'bn1.running_var') or pass { name: 'bn1' }");
  });
});
