// valueAndGrad(params, inputs, { train: false }) (#34): gradients in evaluation mode (dropout
// off, batchnorm normalising with the running statistics, buffers untouched) on the flat, wasm and
// GPU.js (cpu) modules, against the float64 interpreter and its finite differences.

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { interpret } from '../ir/interp.js';
import type { Compiled } from '../src/build.js';
import { compile } from '../src/build.js';
import type { Arrays } from './helpers.js';
import { modelFile, randomArgs, relErr, tmp } from './helpers.js';

const MODEL = `import { model } from 'graphc';
export default model('evalgrad', (g) => {
  const W1 = g.param('W1', [4, 16], { scale: 0.5 });
  const W2 = g.param('W2', [16, 3], { scale: 0.5 });
  const gain = g.param('gain', [16], { init: 'ones' });
  const bias = g.param('bias', [16], { init: 'zeros' });
  const x = g.input('x', [8, 4], 'f32', { grad: true });
  const y = g.input('y', [8], 'i32');
  const pre = x.matmul(W1);
  const bn1 = g.batchNorm(pre, gain, bias, { momentum: 0.1 });
  const h = g.dropout(bn1.tanh(), 0.3);
  const logits = h.matmul(W2);
  const loss = g.crossEntropy(logits, y);
  return { loss };
});
`;

type Buffers = Record<string, Float32Array>;
type Options = { train?: boolean; seed?: number; buffers?: Buffers };
type Result = { loss: number; grads: Record<string, Float32Array> };
interface Mod {
  forward(p: Arrays, i: Arrays, o?: Options): Record<string, number | Float32Array>;
  valueAndGrad(p: Arrays, i: Arrays, o?: Options): Result;
}
interface GpuMod {
  create(o: { mode: string }): Promise<{ valueAndGrad(p: Arrays, i: Arrays, o?: Options): Promise<Result>; destroy(): void }>;
}

const f64 = (b: Buffers) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Float64Array.from(v)]));
const copy = (b: Buffers): Buffers => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Float32Array.from(v)]));

describe('valueAndGrad in evaluation mode ({ train: false })', () => {
  let c: Compiled;
  let flat: Mod;
  let wasm: Mod;
  let gpu: GpuMod;
  let params: Arrays;
  let inputs: Arrays;
  // running statistics far from the batch's: an evaluation gradient differs from a training one
  const buffers: Buffers = {
    'bn1.running_mean': Float32Array.from({ length: 16 }, (_, i) => 0.3 * Math.sin(i + 1)),
    'bn1.running_var': Float32Array.from({ length: 16 }, (_, i) => 0.5 + 0.4 * Math.cos(i)),
  };
  beforeAll(async () => {
    c = await compile(modelFile(MODEL, 'evalgrad.ts'), { targets: ['ts', 'gpu', 'wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const load = async (suffix: string) => import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href);
    [flat, wasm, gpu] = [(await load('')) as Mod, (await load('.wasm')) as Mod, (await load('.gpu')) as GpuMod];
    ({ params, inputs } = randomArgs(c.fwd, 4));
  });

  /** The float64 interpreter's loss and gradients in evaluation mode. */
  const evalReference = (p: Arrays, i: Arrays) => {
    const fwd = interpret(c.fwd, { params: p, inputs: i, train: false, buffers: f64(buffers) });
    const bwd = interpret(c.bwd, { fwd });
    const loss = fwd.get(c.fwd.value(c.fwd.outputs.find((o) => o.name === 'loss')!.value).name)!.data[0]!;
    return { loss, grads: Object.fromEntries(c.bwd.outputs.map((o) => [o.name, bwd.get(c.bwd.value(o.value).name)!.data])) };
  };

  it("the interpreter's evaluation gradient is its finite differences (batchnorm with running statistics: dx = dy·inv)", () => {
    const ref = evalReference(params, inputs);
    const args = { ...params, ...inputs } as Record<string, Float32Array>;
    const h = 1e-6;
    for (const name of ['W1', 'gain', 'bias', 'W2', 'x']) {
      const a = args[name]!;
      const fd = new Float64Array(a.length);
      for (let i = 0; i < a.length; i++) {
        const at = (d: number) => {
          const moved = Float64Array.from(a);
          moved[i] = moved[i]! + d;
          const p = name === 'x' ? params : { ...params, [name]: moved };
          const inp = name === 'x' ? { ...inputs, x: moved } : inputs;
          return interpret(c.fwd, { params: p as Arrays, inputs: inp as Arrays, train: false, buffers: f64(buffers) }).get(c.fwd.value(c.fwd.outputs[0]!.value).name)!.data[0]!;
        };
        fd[i] = (at(h) - at(-h)) / (2 * h);
      }
      expect(relErr(ref.grads[name]!, fd), name).toBeLessThan(1e-6);
    }
  });

  it('flat, wasm and GPU.js (cpu): the evaluation loss and gradients, the buffers untouched, dropout off', async () => {
    const ref = evalReference(params, inputs);
    const g = await gpu.create({ mode: 'cpu' });
    try {
      const runs: [string, (o: Options) => Promise<Result>][] = [
        ['flat', async (o) => flat.valueAndGrad(params, inputs, o)],
        ['wasm', async (o) => wasm.valueAndGrad(params, inputs, o)],
        ['gpu', (o) => g.valueAndGrad(params, inputs, o)],
      ];
      for (const [name, vag] of runs) {
        const b = copy(buffers);
        const r = await vag({ train: false, buffers: b, seed: 3 });
        expect(relErr([r.loss], [ref.loss]), `${name} loss`).toBeLessThan(1e-5);
        for (const [k, v] of Object.entries(ref.grads)) expect(relErr(r.grads[k]!, v), `${name} ${k}`).toBeLessThan(1e-4);
        expect(b, `${name}: buffers untouched`).toEqual(buffers);
        // the same loss as an evaluation forward (dropout the identity whatever the seed)
        expect(relErr([r.loss], [flat.forward(params, inputs, { buffers: copy(buffers) }).loss as number]), name).toBeLessThan(1e-6);
        // a training call is something else: batch statistics, masks, buffers updated (the
        // module's result arrays are overwritten by the next call: copies kept)
        const [loss, W1] = [r.loss, Float32Array.from(r.grads.W1!)];
        const bt = copy(buffers);
        const t = await vag({ buffers: bt, seed: 3 });
        expect(Math.abs(t.loss - loss), name).toBeGreaterThan(1e-3);
        expect(bt['bn1.running_mean'], name).not.toEqual(buffers['bn1.running_mean']);
        expect(relErr(t.grads.W1!, W1), name).toBeGreaterThan(1e-2);
      }
    } finally {
      g.destroy();
    }
  });

  it('the wasm module runs the selects of the mode flag in its SIMD kernels (a lane mask), not as JavaScript loops', () => {
    const source = c.files.find((f) => f.name === `${c.name}.wasm.js`)!.content as string;
    expect(source).toContain('where(training, ');
    expect(source).not.toContain('training[0] !== 0');
  });

  it('checks options.train', () => {
    expect(() => flat.valueAndGrad(params, inputs, { train: 0 as unknown as boolean, buffers: copy(buffers) })).toThrow(new TypeError('evalgrad: options.train must be true or false, got 0'));
  });
});
