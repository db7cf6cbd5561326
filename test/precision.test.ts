// Gradients at realistic sizes (issue 27): ResNets whose batch norms sum over thousands of rows
// (test/fixtures/precision: one ResNet block at batch 24 on 16×16 maps, and the CIFAR ResNet's
// nine convs at batch 8 on 16×16 images), every target against the float64 interpreter. The wasm
// module's column sums ran one row after another in f32 and were off by 5e-4 (the block) and
// 9.4e-5 (the nine convs) relative, and so were the GPU.js module's sums in f32 (webasm mode);
// the CIFAR-sized network (batch 32, 3×32×32: 32,768 rows) by 6e-3, which bench/precision.mjs
// measures (its float64 interpreter takes a minute).

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileGraphs } from '../src/build.js';
import { indent } from '../codegen/module.js';
import { emitGpu } from '../codegen/gpu.js';
import { emitTs } from '../codegen/ts.js';
import { emitWasm } from '../codegen/wasm.js';
import type { Arrays, GeneratedModule, GpuModule } from './helpers.js';
import { ROOT, modelFile, randn, reference, relErr, rng, tmp } from './helpers.js';

/**
 * The bound on every gradient's relative error (relErr: max|a − b| / max(max|b|, 1e-3) per
 * tensor): 3× PyTorch's own float32 error on resnet_block with these params and inputs, 3.1e-6
 * (PyTorch 1.13, convolutions by im2col and GEMM; with oneDNN's convolutions it is 1.4e-5;
 * bench/precision_torch.py measures both). The flat and GPU.js modules stay under 1.2e-6 here.
 */
const BOUND = 3 * 3.1e-6;

type Grads = { loss: number; grads: Record<string, Float32Array> };
interface WasmModule extends GeneratedModule {
  create(options: { threads: number; minWork?: number; adapt?: boolean }): Promise<GeneratedModule & { destroy(): Promise<void> }>;
}

async function build(name: string, file = path.join(ROOT, 'test/fixtures/precision', `${name}.ts`)) {
  const { fwd, bwd, plan } = compileGraphs(file);
  const info = { name, plan, source: `${name}.ts`, fwd, bwd, sourceLine: () => undefined };
  const dir = tmp();
  const load = async <T>(suffix: string, emit: (m: typeof info, typed: boolean) => string) => {
    writeFileSync(path.join(dir, `${name}${suffix}.js`), indent(emit(info, false)));
    return (await import(pathToFileURL(path.join(dir, `${name}${suffix}.js`)).href)) as T;
  };
  return { fwd, bwd, flat: await load<GeneratedModule>('', emitTs), wasm: await load<WasmModule>('.wasm', emitWasm), gpu: await load<GpuModule>('.gpu', emitGpu) };
}

/** bench/precision.mjs's params and inputs: the module's initialisation, batch-norm gains and biases drawn around it; pixels in [0, 1). */
function args(flat: GeneratedModule): { params: Arrays; inputs: Arrays } {
  const r = rng(11);
  const params = flat.initParams(5);
  for (const [k, v] of Object.entries(params)) if (/^bn\d+_[gb]$/.test(k)) for (let i = 0; i < v.length; i++) v[i]! += 0.2 * randn(r);
  const { x, labels } = flat.spec.inputs;
  const inputs = {
    x: Float32Array.from({ length: x!.shape.reduce((a, b) => a * b, 1) }, r),
    labels: Int32Array.from({ length: labels!.shape[0]! }, () => Math.floor(r() * 10)),
  };
  return { params, inputs };
}

const copy = (g: Grads): Grads => ({ loss: g.loss, grads: Object.fromEntries(Object.entries(g.grads).map(([k, v]) => [k, Float32Array.from(v)])) });

describe.each(['resnet_block', 'resnet_small'])('%s', (name) => {
  it(`every target's gradients within 3× PyTorch float32's error of the float64 interpreter; threads bit-identical`, async () => {
    const { fwd, bwd, flat, wasm, gpu } = await build(name);
    const { params, inputs } = args(flat);
    const ref = reference(fwd, bwd, params, inputs);
    const threaded = await wasm.create({ threads: 2, minWork: 0 });
    const gm = await gpu.create({ mode: 'cpu' });
    // gpu.js's webasm mode computes in f32 as a device does (its cpu mode in JavaScript's f64)
    const gw = await gpu.create({ mode: 'webasm' });
    let runs: [string, Grads][];
    try {
      runs = [
        ['flat', copy(flat.valueAndGrad(params, inputs))],
        ['wasm', copy(wasm.valueAndGrad(params, inputs))],
        ['wasm, 2 threads', copy(threaded.valueAndGrad(params, inputs))],
        ['gpu (cpu mode)', await gm.valueAndGrad(params, inputs)],
        ['gpu (webasm mode)', await gw.valueAndGrad(params, inputs)],
      ];
    } finally {
      gm.destroy();
      gw.destroy();
      await threaded.destroy();
    }
    for (const [target, got] of runs) {
      expect(relErr([got.loss], ref.outputs.loss!.data), `${target}: loss`).toBeLessThan(1e-6);
      expect(Object.keys(got.grads).sort()).toEqual(Object.keys(ref.grads).sort());
      for (const [k, g] of Object.entries(got.grads)) expect(relErr(g, ref.grads[k]!), `${target}: d loss / d ${k}`).toBeLessThan(BOUND);
    }
    // the blocks of a column sum are the same on any number of threads
    const [, one] = runs[1]!;
    const [, two] = runs[2]!;
    for (const k of Object.keys(one.grads)) expect(Buffer.from(two.grads[k]!.buffer).equals(Buffer.from(one.grads[k]!.buffer)), `threads: ${k}`).toBe(true);
  }, 120_000);
});

/**
 * Each kind of wasm reduction over many terms of the same sign (values near 1, so that a serial f32
 * sum loses a bit in every add): a row sum (20,000 per row), a column sum (20,000 rows), a
 * per-channel sum over (0, 2, 3) (2 × 128 × 128 per channel; and 9 × 17 × 17, its 9 images in 8
 * chunks) and a convolution's weight gradient
 * (126 × 126 positions), against the float64 interpreter. Summed one term after another in f32
 * they were off by 1.5e-6, 5.3e-6, 4.2e-7 and 6.9e-7 relative (a product over K = 20,000 and a
 * softmax over 20,000 columns: 5e-6 and 1.6e-6); in blocks, by about the final rounding.
 */
describe('long sums on the wasm module', () => {
  const body = `const x = g.param('x', [3, 20000]);
  const w = g.param('w', [20000, 5]);
  const c = g.param('c', [2, 3, 128, 128]);
  const k = g.param('k', [2, 1, 3, 3]);
  const v = g.input('v', [1, 1, 128, 128]);
  const a = g.input('a', [3, 20000]);
  const product = a.matmul(w);
  const probs = g.softmax(x).mul(20000);
  const rows = x.sum(1);
  const cols = w.sum(0);
  const channels = c.mul(2).sum([0, 2, 3]);
  const ragged = g.param('r', [9, 3, 17, 17]).mul(2).sum([0, 2, 3]);
  const y = g.conv2d(v, k);
  const loss = rows.sum().add(cols.sum()).add(channels.sum()).add(ragged.sum()).add(y.sum());`;
  const source = `import { model } from 'graphc';
export default model('longsums', (g) => {
  ${body}
  return { loss, rows, cols, channels, ragged, product, probs };
});
`;
  it('row, column and per-channel sums and a weight gradient within 1.5e-7 of float64', async () => {
    const { fwd, bwd, wasm } = await build('longsums', modelFile(source));
    const r = rng(3);
    const near1 = (n: number) => Float32Array.from({ length: n }, () => 1 + 0.01 * r());
    const params: Record<string, Float32Array> = { x: near1(60000), w: near1(100000), c: near1(2 * 3 * 128 * 128), k: near1(18) };
    const inputs = { v: near1(128 * 128), a: near1(60000) };
    params.r = near1(9 * 3 * 17 * 17);
    const ref = reference(fwd, bwd, params, inputs);
    const out = wasm.forward(params, inputs);
    for (const k of ['rows', 'cols', 'channels', 'ragged', 'product', 'probs']) expect(relErr(out[k] as Float32Array, ref.outputs[k]!.data), k).toBeLessThan(1.5e-7);
    const { grads } = wasm.valueAndGrad(params, inputs);
    expect(relErr(grads.k!, ref.grads.k!), 'd loss / d k').toBeLessThan(1.5e-7);
    // on 2 threads the column sum and the sums per channel split by chunks of rows (of images: 9
    // in 8 chunks; each chunk's f64 totals, added in order afterwards): the same bits as the
    // single-threaded module, so as close to float64
    const threaded = await wasm.create({ threads: 2, minWork: 0, adapt: false });
    try {
      const two = threaded.forward(params, inputs);
      for (const k of ['rows', 'cols', 'channels', 'ragged']) {
        expect(relErr(two[k] as Float32Array, ref.outputs[k]!.data), `2 threads: ${k}`).toBeLessThan(1.5e-7);
        expect(Buffer.from(Float32Array.from(two[k] as Float32Array).buffer).equals(Buffer.from(Float32Array.from(out[k] as Float32Array).buffer)), `2 threads: ${k} bit-identical`).toBe(true);
      }
    } finally {
      await threaded.destroy();
    }
  });
  it('a column sum over a symbolic batch (20,000 rows at the call) within 1.5e-7 of float64', async () => {
    const src = `import { model } from 'graphc';
export default model('longsym', (g) => {
  const x = g.input('x', ['B', 5]);
  const w = g.param('w', [5]);
  const cols = x.sum(0);
  return { loss: cols.mul(w).sum(), cols };
});
`;
    const { fwd, bwd, wasm } = await build('longsym', modelFile(src));
    const r = rng(5);
    const params = { w: Float32Array.from({ length: 5 }, () => r()) };
    const inputs = { x: Float32Array.from({ length: 100000 }, () => 1 + 0.01 * r()) };
    const ref = reference(fwd, bwd, params, inputs);
    expect(relErr(wasm.forward(params, inputs).cols as Float32Array, ref.outputs.cols!.data)).toBeLessThan(1.5e-7);
  });
});
