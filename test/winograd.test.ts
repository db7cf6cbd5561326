// The wasm module's Winograd convolutions (codegen/wasm/winograd.ts, winograd-weight.ts): the forwards,
// input gradients (F(2×2, 3×3)) and weight gradients (F(3×3, 2×2)) of eligible 3×3 stride-1 convolutions (pad 1, pad 0, uneven paddings, 1 and 3
// images, C ≠ O, register tiles of 4 tiles, 8 of a tile row and 8 of two, a block of tile rows less than the image,
// 9 images in chunks of 2, a width of 72, 3 vectors of tiles a tile row, pad 2) against
// the float64 interpreter; that they take the Winograd path and that ineligible ones (stride 2, a
// dx whose width is no multiple of 8) do not; and a 2-thread instance splitting them bit for bit.
// Many channels fall back to the direct kernels (the scratch stays the direct kernels' size).

import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileGraphs } from '../src/build.js';
import { indent } from '../codegen/module.js';
import { emitWasm } from '../codegen/wasm.js';
import { randomArgs, reference, relErr, modelFile, tmp } from './helpers.js';

type Arrays = Record<string, Float32Array | Int32Array>;
interface Instance {
  forward(p: Arrays, i: Arrays): Record<string, number | Float32Array>;
  valueAndGrad(p: Arrays, i: Arrays): { loss: number; grads: Record<string, Float32Array> };
}
interface WasmModule extends Instance {
  create(o?: { threads?: number; minWork?: number; adapt?: boolean }): Promise<Instance & { destroy(): Promise<void> }>;
}

// each conv: [name, x dims, w dims, options, (forward and weight gradient, input gradient) on the Winograd path]
const CONVS: [string, number[], number[], string, [boolean, boolean]][] = [
  // pad 1, 3 images, C ≠ O, 4 tiles a row (one vector of tiles)
  ['a', [3, 8, 8, 8], [12, 8, 3, 3], '{ padding: 1 }', [true, true]],
  // 1 image, 8 tiles a row (two vectors), an odd count of tile rows
  ['b', [1, 12, 6, 16], [8, 12, 3, 3], '{ padding: 1 }', [true, true]],
  // pad 0: the forward's output 8×16; dx 10×18 is no whole vectors of tiles (the direct kernel)
  ['c', [2, 8, 10, 18], [8, 8, 3, 3], '{}', [true, false]],
  // pad 0: the forward's output 8×14 (direct), dx 10×16 (Winograd with the dy's padding 2)
  ['d', [1, 8, 10, 16], [16, 8, 3, 3], '{}', [false, true]],
  // uneven paddings (2 rows, 1 column): output 8×16, dx 6×16
  ['e', [2, 8, 6, 16], [8, 8, 3, 3], '{ padding: [2, 1] }', [true, true]],
  // 72 input channels: a block of fewer tile rows than the image, the products' loop over channels not unrolled whole
  ['f', [1, 72, 8, 8], [8, 72, 3, 3], '{ padding: 1 }', [true, true]],
  // 3 tile rows of one vector of tiles: register tiles of 4 tiles (8×8 outputs above pair two tile rows)
  ['h', [2, 8, 6, 8], [8, 8, 3, 3], '{ padding: 1 }', [true, true]],
  // 9 images: chunks of 2, the last of 1
  ['i', [9, 8, 4, 8], [8, 8, 3, 3], '{ padding: 1 }', [true, true]],
  // width 72: the input copy's loop over vectors; 9 vectors of 4 tiles a tile row
  ['j', [1, 8, 2, 72], [8, 8, 3, 3], '{ padding: 1 }', [true, true]],
  // output width 24: 3 vectors of 4 tiles a tile row
  ['k', [1, 8, 4, 24], [8, 8, 3, 3], '{ padding: 1 }', [true, true]],
  // pad 2: the forward's output 8×16; dx 6×14 (direct)
  ['l', [1, 8, 6, 14], [8, 8, 3, 3], '{ padding: 2 }', [true, false]],
  // stride 2: ineligible
  ['g', [2, 8, 8, 8], [8, 8, 3, 3], '{ padding: 1, stride: 2 }', [false, false]],
];

const SOURCE = `import { model } from 'graphc';
export default model('wino', (g) => {
${CONVS.map(
  ([n, x, w, o]) => `  const x${n} = g.param('x${n}', [${x}]);
  const w${n} = g.param('w${n}', [${w}]);
  const y${n} = g.conv2d(x${n}, w${n}, ${o});
  const R${n} = g.input('R${n}', y${n}.dims);`,
).join('\n')}
  const loss = ${CONVS.map(([n]) => `y${n}.mul(R${n}).sum()`).join('.add(')}${')'.repeat(CONVS.length - 1)};
  return { loss, ${CONVS.map(([n]) => `y${n}`).join(', ')} };
});
`;

describe('Winograd F(2×2, 3×3) convolutions of the wasm module', () => {
  const file = modelFile(SOURCE);
  const { fwd, bwd, plan } = compileGraphs(file);
  const info = { name: 'wino', plan, source: 'model.ts', fwd, bwd, sourceLine: () => undefined };
  const out = path.join(tmp(), 'wino.wasm.js');
  writeFileSync(out, indent(emitWasm(info, false)));
  const src = readFileSync(out, 'utf8');
  const load = () => import(pathToFileURL(out).href) as Promise<WasmModule>;
  const { params, inputs } = randomArgs(fwd, 11, 0.5);

  it('runs the eligible forwards and input gradients as Winograd kernels, the others as the direct ones', () => {
    const kernels = new Map([...src.matchAll(/^\/\/ {3}(conv\w*): (.*)$/gm)].map((m) => [m[1]!, m[2]!] as const));
    for (const [n, , , , [forward, grad]] of CONVS)
      for (const [name, want] of [[`conv_y${n}`, forward], [`conv_input_grad_dx${n}`, grad], [`conv_weight_grad_dw${n}`, forward]] as const) {
        const what = kernels.get(name);
        expect(what, name).toBeDefined();
        expect(/Winograd F\((2×2,3×3|3×3,2×2)\)/.test(what!), `${name}: ${what}`).toBe(want);
      }
  });

  it('agrees with the float64 interpreter: outputs, loss and every gradient', async () => {
    const m = await load();
    const ref = reference(fwd, bwd, params, inputs);
    const got = m.valueAndGrad(params, inputs);
    expect(relErr([got.loss], ref.outputs.loss!.data), 'loss').toBeLessThan(1e-5);
    for (const [k, g] of Object.entries(got.grads)) expect(relErr(g, ref.grads[k]!), `d loss / d ${k}`).toBeLessThan(1e-4);
    const y = m.forward(params, inputs);
    for (const [n] of CONVS) expect(relErr(y[`y${n}`] as Float32Array, ref.outputs[`y${n}`]!.data), `y${n}`).toBeLessThan(1e-5);
  });

  it('splits over 2 threads (images, chunks of images) without changing a bit', async () => {
    const m = await load();
    const t = await m.create({ threads: 2, minWork: 0, adapt: false });
    try {
      const want = m.valueAndGrad(params, inputs);
      const copy = Object.fromEntries(Object.entries(want.grads).map(([k, g]) => [k, Float32Array.from(g)]));
      const got = t.valueAndGrad(params, inputs);
      expect(Object.is(got.loss, want.loss)).toBe(true);
      for (const [k, g] of Object.entries(copy)) expect(Buffer.from(got.grads[k]!.buffer, got.grads[k]!.byteOffset, got.grads[k]!.byteLength).equals(Buffer.from(g.buffer)), k).toBe(true);
    } finally {
      await t.destroy();
    }
  });
});

describe('Winograd convolutions with many channels', () => {
  it('fall back to the direct kernels where their scratch would outgrow it (the module builds as without Winograd)', () => {
    // two 1024 → 1024 convolutions of 8 images 8×8: Winograd's transformed weights and partial sums took 6.1 GB
    const file = modelFile(`import { model } from 'graphc';
export default model('big', (g) => {
  const x = g.param('x', [8, 1024, 8, 8]);
  const w1 = g.param('w1', [1024, 1024, 3, 3]);
  const w2 = g.param('w2', [1024, 1024, 3, 3]);
  const y = g.conv2d(g.conv2d(x, w1, { padding: 1 }).relu(), w2, { padding: 1 });
  return { loss: y.sum() };
});
`);
    const { fwd, bwd, plan } = compileGraphs(file);
    const src = emitWasm({ name: 'big', plan, source: 'model.ts', fwd, bwd, sourceLine: () => undefined }, false);
    const kernels = new Map([...src.matchAll(/^\/\/ {3}(conv\w*): (.*)$/gm)].map((m) => [m[1]!, m[2]!] as const));
    // the forwards' U (16·O·C floats, 64 MiB) and the weight gradients' partial sums (8 × 256 MB) outgrow the direct kernels' scratch: direct
    for (const name of ['conv_t1', 'conv_y', 'conv_weight_grad_dw1', 'conv_weight_grad_dw2']) expect(kernels.get(name), name).not.toMatch(/Winograd/);
    // the direct input gradients' flipped weights a chunk (8 × 38 MB) outgrow Winograd's one U: Winograd
    for (const name of ['conv_input_grad_dx', 'conv_input_grad_dt2']) expect(kernels.get(name), name).toMatch(/Winograd F\(2×2,3×3\)/);
    // (main, the direct kernels only: 50,241 pages, 3.3 GB)
    const pages = Number(/new WebAssembly\.Memory\(\{ initial: (\d+)/.exec(src)![1]);
    expect(pages * 65536).toBeLessThan(3.3e9);
  });
});
