// The threaded wasm module (create({ threads })): every example's threaded instance against its
// single-threaded module, bit for bit, with every kernel that can split split over 2 and 3
// threads (minWork: 0 and adapt: false; uneven blocks), and adapting, a model with ragged rows and columns, a clean shutdown
// (destroy(), and a process that never calls it still exits), an instance where nothing splits (unshared, no workers), and the errors of create.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { modelFile, ROOT, tmp } from './helpers.js';

const EXAMPLES = ['neuron', 'makemore', 'makemore_composite', 'makemore_inference', 'wavenet', 'gpt', 'twolayer', 'classifier', 'cnn', 'pinn'];

type Arrays = Record<string, Float32Array | Int32Array>;
interface Instance {
  forward(p: Arrays, i: Arrays): Record<string, number | Float32Array>;
  valueAndGrad(p: Arrays, i: Arrays): { loss: number; grads: Record<string, Float32Array> };
  destroy(): Promise<void>;
  threads: number;
}
interface WasmModule extends Omit<Instance, 'destroy' | 'threads'> {
  spec: { inputs: Record<string, { dtype: string; shape: number[] }> };
  initParams(seed?: number): Arrays;
  create(o?: { threads?: number; minWork?: number; adapt?: boolean }): Promise<Instance>;
}

const load = (file: string): Promise<WasmModule> => import(pathToFileURL(file).href);

/** Index inputs in [0, 10) (every example's index bound is at least that), floats in (0.5, 1.5). */
function inputsOf(m: WasmModule, seed: number): Arrays {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  return Object.fromEntries(
    Object.entries(m.spec.inputs).map(([k, { dtype, shape }]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return [k, dtype === 'i32' ? Int32Array.from({ length: n }, () => Math.floor(next() * 10)) : Float32Array.from({ length: n }, () => 0.5 + next())];
    }),
  );
}

/** Every output, loss and gradient of two modules, equal bit for bit (NaN equal to NaN). */
function expectSame(a: Omit<Instance, 'destroy' | 'threads'>, b: Omit<Instance, 'destroy' | 'threads'>, params: Arrays, inputs: Arrays): void {
  const copy = (r: { loss: number; grads: Record<string, Float32Array> }) => ({ loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, g]) => [k, Float32Array.from(g)])) });
  const want = copy(a.valueAndGrad(params, inputs));
  const got = copy(b.valueAndGrad(params, inputs));
  expect(Object.is(got.loss, want.loss), `loss ${got.loss} vs ${want.loss}`).toBe(true);
  for (const [k, g] of Object.entries(want.grads)) expect(Buffer.from(got.grads[k]!.buffer).equals(Buffer.from(g.buffer)), `gradient of ${k}`).toBe(true);
  const outA = a.forward(params, inputs);
  const outAcopy = Object.fromEntries(Object.entries(outA).map(([k, v]) => [k, typeof v === 'number' ? v : Float32Array.from(v)]));
  const outB = b.forward(params, inputs);
  for (const [k, v] of Object.entries(outAcopy)) {
    const w = outB[k]!;
    if (typeof v === 'number') expect(Object.is(w, v), `output ${k}`).toBe(true);
    else expect(Buffer.from((w as Float32Array).buffer, (w as Float32Array).byteOffset, (w as Float32Array).byteLength).equals(Buffer.from(v.buffer)), `output ${k}`).toBe(true);
  }
}

const open: Instance[] = [];
// create() caps the thread count at the machine's hardware threads (the navigator's count where
// there is one): the splits over 3 and 4 threads are tested on any machine as if it had 4
const realNavigator = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
const hardware = { hardwareConcurrency: 4 };
beforeAll(() => void Object.defineProperty(globalThis, 'navigator', { value: hardware, configurable: true, writable: true }));
afterAll(() => {
  if (realNavigator) Object.defineProperty(globalThis, 'navigator', realNavigator);
  else delete (globalThis as { navigator?: unknown }).navigator;
});

afterAll(async () => {
  for (const i of open) await i.destroy();
});

describe.each(EXAMPLES)('the threaded wasm module of %s', (name) => {
  it('is bit-identical to the single-threaded module, every kernel that can split split over 2 and 3 threads', async () => {
    const m = await load(path.join(ROOT, 'generated', name, `${name}.wasm.js`));
    const params = m.initParams(3);
    for (const threads of [2, 3]) {
      const t = await m.create({ threads, minWork: 0, adapt: false });
      open.push(t);
      expect(t.threads).toBe(threads);
      for (const seed of [1, 2]) expectSame(m, t, params, inputsOf(m, seed));
    }
  });
});

describe('the thread count', () => {
  it('is capped at the hardware threads, with one warning (create({ threads: 64 }) on 2 cores: 2 threads, 1 worker)', async () => {
    const m = await load(path.join(ROOT, 'generated', 'gpt', 'gpt.wasm.js'));
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    hardware.hardwareConcurrency = 2;
    try {
      const a = await m.create({ threads: 64, minWork: 0 });
      open.push(a);
      const b = await m.create({ threads: 3, minWork: 0 });
      open.push(b);
      expect([a.threads, b.threads]).toEqual([2, 2]);
      expect(warn.mock.calls).toEqual([['create: threads: 64 is more than the 2 hardware threads of this machine: using 2 (docs/threads.md)']]);
      const params = m.initParams(3);
      expectSame(m, a, params, inputsOf(m, 1));
      await expect(m.create({ threads: '2' as unknown as number })).rejects.toThrow("create: threads must be a whole number ≥ 1, got the string '2'");
    } finally {
      hardware.hardwareConcurrency = 4;
      warn.mockRestore();
    }
  });
});

describe('threads', () => {
  it('split ragged rows and columns (13 rows; 27, 10 and 6 columns; a column sum over 1,037 rows by chunks of rows, the last of 29) without changing a bit', async () => {
    const file = modelFile(`
      import { model } from 'graphc';
      export default model('ragged', (g) => {
        const x = g.input('x', [13, 10]);
        const y = g.input('y', [13], 'i32');
        const W1 = g.param('W1', [10, 27], { scale: 0.3 });
        const b1 = g.param('b1', [27], { scale: 0.1 });
        const W2 = g.param('W2', [27, 6], { scale: 0.3 });
        const h = g.layerNorm(x.matmul(W1).add(b1), g.param('gain', [27], { init: 'ones' }), g.param('bias', [27], { init: 'zeros' })).tanh();
        const logits = h.matmul(W2);
        const probs = g.softmax(logits);
        const cols = g.input('z', [1037, 6]).mul(g.param('zw', [6], { scale: 0.5 })).sum(0);
        // a softmax down the columns (by blocks of four columns) and a max over rows (argmax_mask by rows)
        const down = g.softmax(h, 0).mul(h).mean().add(h.max(1).mean());
        const loss = g.crossEntropy(logits, y).add(h.mul(h).mean()).add(h.sum(0).mean()).add(cols.square().mean()).add(down);
        return { loss, probs, cols };
      });
    `);
    const out = tmp();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'graphc.js'), 'build', file, '--target', 'wasm', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const src = readFileSync(path.join(out, 'ragged.wasm.js'), 'utf8');
    expect(src).toMatch(/\[1037,6\] reducing axes 0 \(kernel form\), by chunks of rows$/m);
    expect(src).toMatch(/softmax of 1·27 lines of 13, 27 apart, four lines at a time/);
    expect(src).toMatch(/argmax_mask of 13 lines of 27 \(the first maximum, four lanes\)/);
    const m = await load(path.join(out, 'ragged.wasm.js'));
    const params = m.initParams(5);
    const inputs = { ...inputsOf(m, 4), y: Int32Array.from({ length: 13 }, (_, i) => (i * 5) % 6) };
    for (const threads of [2, 3, 4]) {
      const t = await m.create({ threads, minWork: 0, adapt: false });
      open.push(t);
      expectSame(m, t, params, inputs);
    }
    // adapting (each kernel timed whole and split, then run the faster way) changes no bit either
    const t = await m.create({ threads: 2, minWork: 0 });
    open.push(t);
    for (let k = 0; k < 40; k++) expectSame(m, t, params, inputs);
  });

  it('split convolutions and pooling by ragged chunks of images and by planes (13 images: 7 chunks, the last of one) without changing a bit', async () => {
    const file = modelFile(`
      import { model } from 'graphc';
      export default model('convsplit', (g) => {
        const x = g.input('x', [13, 2, 11, 9]);
        const W1 = g.param('W1', [4, 2, 3, 3], { scale: 0.3 });
        const W2 = g.param('W2', [6, 2, 3, 2], { scale: 0.3 });
        const W3 = g.param('W3', [3, 6, 2, 2], { scale: 0.3 });
        const h1 = g.conv2d(x, W1, { bias: g.param('b1', [4], { scale: 0.1 }), padding: 1 }).relu(); // [13, 4, 11, 9]
        const p1 = g.maxPool2d(h1, 2); // [13, 4, 5, 4]: an odd H and W
        const h2 = g.conv2d(p1, W2, { stride: [1, 2], padding: [1, 0], groups: 2 }).tanh(); // [13, 6, 5, 2]
        const h3 = g.conv2d(h2, W3, { padding: 1 }); // [13, 3, 6, 3]
        const p3 = g.avgPool2d(h3, 2, { stride: 1 }); // [13, 3, 5, 2]
        return p3.square().mean().add(g.maxPool2d(h1, 3, { stride: 2, padding: 1 }).mean());
      });
    `);
    const out = tmp();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'graphc.js'), 'build', file, '--target', 'wasm', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const m = await load(path.join(out, 'convsplit.wasm.js'));
    const params = m.initParams(5);
    for (const threads of [2, 3, 4]) {
      const t = await m.create({ threads, minWork: 0, adapt: false });
      open.push(t);
      for (const seed of [1, 2]) expectSame(m, t, params, inputsOf(m, seed));
    }
  });

  it('at the default minWork, splits an elementwise group over a large domain, softmax rows, a column sum over 32,768 rows of 16 columns and an NCHW sum per channel (both by chunks of rows) on 2 threads; no bit changes', async () => {
    const file = modelFile(`
      import { model } from 'graphc';
      export default model('wide', (g) => {
        const x = g.input('x', [64, 8192]);
        const z = g.input('z', [32768, 16]);
        const a = g.input('a', [3072, 64]);
        const y = g.input('y', [32, 16, 32, 32]);
        const h = x.mul(g.param('w', [8192], { scale: 0.5 })).relu();
        const q = z.mul(g.param('v', [16], { scale: 0.5 })).tanh();
        const p = g.softmax(a.mul(g.param('u', [64], { scale: 0.5 })));
        const c = y.mul(g.param('c', [16, 1, 1], { scale: 0.5 })).relu().sum([0, 2, 3]);
        return h.sum(0).square().mean().add(q.sum(0).square().mean()).add(p.square().mean()).add(c.square().mean());
      });
    `);
    const out = tmp();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'graphc.js'), 'build', file, '--target', 'wasm', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    // the module's table of the kernels that split, and the blocks create({ threads: 2 }) gives each at the default minWork
    const src = readFileSync(path.join(out, 'wide.wasm.js'), 'utf8');
    const minWork = Number(/const MIN_WORK = (\d+);/.exec(src)![1]);
    const table = new Map([...src.matchAll(/^ {2}"(\w+)": \[(\d+), (\d+), (\d+), \d+, \d+\],$/gm)].map((x) => [x[1]!, x.slice(2, 5).map(Number)]));
    const blocks = (name: string) => {
      const [extent, align, work] = table.get(name) ?? [1, 1, 0];
      return Math.max(1, Math.min(2, Math.floor(work! / minWork), Math.ceil(extent! / align!)));
    };
    const named = (re: RegExp) => [...src.matchAll(re)].map((x) => x[1]!);
    // the gradient's broadcasts and products over [64,8192] (524,288 elements, a node or two each), the softmax of [3072,64]
    const wide = named(/^\/\/ {3}(kernel_\w+): .* {3}\[64,8192\] \(kernel form\)$/gm);
    const softmax = named(/^\/\/ {3}(softmax_\w+): /gm);
    // the column sums over [32768,16]: by chunks of rows (split by columns, both threads read every row), then the chunks' sums
    const narrow = named(/^\/\/ {3}(kernel_\w+): .* {3}\[32768,16\] reducing axes 0 \(kernel form\), by chunks of rows$/gm);
    // the sums per channel of [32,16,32,32] (forward, and the gradient of c): by chunks of images, as the elementwise kernels around them split
    const channels = named(/^\/\/ {3}(kernel_\w+): .* {3}\[32,16,32,32\] reducing axes 0,2,3 \(kernel form\), by chunks of rows$/gm);
    expect(wide.length && softmax.length && narrow.length).toBeGreaterThan(0);
    expect(channels.length).toBe(2);
    expect([...narrow, ...channels].every((k) => src.includes(`//   ${k}_sum: the chunks' partial sums of ${k}, added in order`))).toBe(true);
    for (const k of [...wide, ...softmax, ...narrow, ...channels]) expect(blocks(k), k).toBe(2);
    const m = await load(path.join(out, 'wide.wasm.js'));
    const t = await m.create({ threads: 2, adapt: false });
    open.push(t);
    const params = m.initParams(3);
    const inputs = inputsOf(m, 6);
    expect(Object.values(t.valueAndGrad(params, inputs).grads).some((g) => g.buffer instanceof SharedArrayBuffer)).toBe(true);
    expectSame(m, t, params, inputs);
  });

  it('trainStep (--optimizer adam) of a threaded instance is bit-identical, step after step, with its own optimizer state', async () => {
    const out = tmp();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'graphc.js'), 'build', path.join(ROOT, 'examples', 'makemore.ts'), '--target', 'wasm', '--optimizer', 'adam', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    type Train = { initOptState(p: Arrays): object; trainStep(p: Arrays, s: object, i: Arrays): { loss: number } };
    const m = (await load(path.join(out, 'makemore.wasm.js'))) as WasmModule & Train;
    const t = (await m.create({ threads: 2, minWork: 0, adapt: false })) as Instance & Train;
    open.push(t);
    const [p1, p2] = [m.initParams(1), m.initParams(1)];
    const [s1, s2] = [m.initOptState(p1), t.initOptState(p2)];
    expect(s2).not.toBe(s1);
    for (let k = 0; k < 5; k++) {
      const inputs = inputsOf(m, k);
      expect(Object.is(t.trainStep(p2, s2, inputs).loss, m.trainStep(p1, s1, inputs).loss), `step ${k}`).toBe(true);
    }
    for (const [k, v] of Object.entries(p1)) expect(Buffer.from(p2[k]!.buffer).equals(Buffer.from(v.buffer)), `param ${k}`).toBe(true);
  });

  it('the instance carries the derived functions of --hvp and --jvp, with the module\'s results', async () => {
    const out = tmp();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'graphc.js'), 'build', path.join(ROOT, 'examples', 'twolayer.ts'), '--target', 'wasm', '--hvp', '--jvp', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    type Result = Record<string, number | Record<string, number | Float32Array>>;
    type Derived = { hvp(p: Arrays, i: Arrays, v: Arrays): Result; jvp(p: Arrays, i: Arrays, t: Arrays): Result };
    const m = (await load(path.join(out, 'twolayer.wasm.js'))) as WasmModule & Derived;
    const t = (await m.create({ threads: 2 })) as Instance & Derived;
    open.push(t);
    const copy = (x: Result) => JSON.stringify(x, (_k, v: unknown) => (v instanceof Float32Array ? Array.from(v) : v));
    const [params, v, inputs] = [m.initParams(1), m.initParams(2), inputsOf(m, 3)];
    const want = copy(m.hvp(params, inputs, v));
    expect(copy(t.hvp(params, inputs, v))).toBe(want);
    const tangents = { ...m.initParams(4), ...Object.fromEntries(Object.entries(inputs).filter(([, x]) => x instanceof Float32Array)) };
    const wantJ = copy(m.jvp(params, inputs, tangents));
    expect(copy(t.jvp(params, inputs, tangents))).toBe(wantJ);
  });

  it('the TypeScript module (.wasm.ts, as the test runner compiles it) starts its workers from its own source too', async () => {
    const m = await load(path.join(ROOT, 'generated', 'makemore', 'makemore.wasm.ts'));
    const t = await m.create({ threads: 2, minWork: 0, adapt: false });
    open.push(t);
    expectSame(m, t, m.initParams(4), inputsOf(m, 4));
  });

  it('destroy() stops the workers; the instance then refuses to split a kernel', async () => {
    const m = await load(path.join(ROOT, 'generated', 'makemore', 'makemore.wasm.js'));
    const t = await m.create({ threads: 2, minWork: 0, adapt: false });
    const params = m.initParams(1);
    const inputs = inputsOf(m, 1);
    expect(t.valueAndGrad(params, inputs).loss).toBe(m.valueAndGrad(params, inputs).loss);
    await t.destroy();
    await t.destroy(); // twice is harmless
    expect(() => t.valueAndGrad(params, inputs)).toThrow('this threaded instance has been destroyed');
  });

  it('a process that creates a threaded instance, uses it and never destroys it exits', () => {
    const url = pathToFileURL(path.join(ROOT, 'generated', 'makemore', 'makemore.wasm.js')).href;
    const code = `
      const m = await import(${JSON.stringify(url)});
      const t = await m.create({ threads: 2, minWork: 0, adapt: false });
      const Xb = new Int32Array(96).fill(1), Yb = new Int32Array(32).fill(2);
      console.log(t.valueAndGrad(m.initParams(0), { Xb, Yb }).loss === m.valueAndGrad(m.initParams(0), { Xb, Yb }).loss);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
    expect(r.error, 'the process did not exit').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('true');
  });

  it('an instance where no kernel splits has an unshared memory and no workers, with the same results and steps of its own', async () => {
    const m = await load(path.join(ROOT, 'generated', 'gpt', 'gpt.wasm.js'));
    const params = m.initParams(2);
    const inputs = inputsOf(m, 2);
    // the GPT's kernels are below the default minWork: nothing splits on 2 threads
    const t = await m.create({ threads: 2 });
    expect(t.threads).toBe(2);
    expectSame(m, t, params, inputs);
    const g = t.valueAndGrad(params, inputs).grads;
    expect(Object.values(g).some((a) => a.buffer instanceof SharedArrayBuffer)).toBe(false);
    expect(t.valueAndGrad).not.toBe(m.valueAndGrad);
    // a splitting one is over a shared memory
    const s = await m.create({ threads: 2, minWork: 0, adapt: false });
    open.push(s);
    expect(Object.values(s.valueAndGrad(params, inputs).grads).some((a) => a.buffer instanceof SharedArrayBuffer)).toBe(true);
    expectSame(m, s, params, inputs);
    // the default exports still agree after both ran (each instance's steps are closures of their own)
    expectSame(s, m, params, inputsOf(m, 3));
    await t.destroy();
    await t.destroy(); // harmless
  });

  it('create checks its threads and minWork', async () => {
    const m = await load(path.join(ROOT, 'generated', 'neuron', 'neuron.wasm.js'));
    await expect(m.create({ threads: 0 })).rejects.toThrow('create: threads must be a whole number ≥ 1, got 0');
    await expect(m.create({ threads: 1.5 })).rejects.toThrow('create: threads must be a whole number ≥ 1, got 1.5');
    await expect(m.create({ threads: 2, minWork: -1 })).rejects.toThrow('create: minWork must be a number ≥ 0, got -1');
    await expect(m.create({ threads: 2, minWork: NaN })).rejects.toThrow('create: minWork must be a number ≥ 0, got NaN');
    const one = await m.create({ threads: 1 });
    const params = m.initParams(2);
    expectSame(m, one, params, inputsOf(m, 3));
    await one.destroy();
  });
});
