// Convolutions and pooling in the wasm module of a model with a symbolic batch
// (codegen/wasm/symbolic.ts): they run as the static build's conv kernels (im2col and the matmul
// kernel, the weight gradient's chunks and their sum) and pooling kernels, built once with their
// number of images (planes), chunks and addresses read at run time (codegen/wasm/symbolic-forms.ts),
// in the layout of ir/layout.ts; each size against the float64 interpreter, and sizes
// back and forth (the im2col scratch of a padded convolution keeps its zeros) give the same bits.

import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Compiled } from '../src/build.js';
import type { GeneratedModule } from './helpers.js';
import { buildWasmModule, gradTolerance, modelFile, randomArgs, reference, relErr, ROOT, tmp } from './helpers.js';

const EXAMPLES = ROOT.split(path.sep).join('/') + '/examples';


const copyOf = (r: { loss: number; grads: Record<string, Float32Array> }) => ({ loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, Float32Array.from(v)])) });

/** valueAndGrad and forward at batch n against the float64 interpreter; the result, copied. */
function against(c: Compiled, mod: GeneratedModule, n: number, out: string) {
  const { params, inputs } = randomArgs(c.fwd, 10 + n, 0.5, { B: n });
  const ref = reference(c.fwd, c.bwd, params, inputs);
  const got = copyOf(mod.valueAndGrad(params, inputs));
  expect(relErr([got.loss], [ref.outputs.loss!.data[0]!]), `B = ${n}: loss`).toBeLessThan(1e-5);
  for (const [p, g] of Object.entries(ref.grads)) {
    const err = relErr(got.grads[p]!, g);
    expect(err, `B = ${n}: d loss / d ${p}`).toBeLessThan(gradTolerance(g, () => reference(c.fwd, c.bwd, params, inputs, { float32: true }).grads[p]!, err));
  }
  const y = mod.forward(params, inputs)[out] as Float32Array;
  expect(relErr(y, ref.outputs[out]!.data), `B = ${n}: ${out}`).toBeLessThan(1e-5);
  return got;
}

describe('convolutions and pooling in the symbolic wasm module', () => {
  it('the LeNet CNN with a symbolic batch runs its convolutions and poolings as kernels, at B = 1, 3 and 11 (more images than CHUNKS)', async () => {
    const { c, mod, code } = await buildWasmModule(modelFile(`import { cnn } from '${EXAMPLES}/cnn.ts';\nexport default cnn('B', 'cnn_sym');\n`));
    expect(mod.spec.inputs.x!.shape).toEqual(['B', 1, 28, 28]);
    // the per-channel epilogues (bias, relu: kernels of the kernel form), the forward convolutions, both gradients of the second, the weight gradient's chunk sums, the poolings (built once)
    for (const k of [/forms\.kernel_\w+\(\);/, /forms\.conv_\w+\(\);/, /forms\.conv_input_grad_\w+\(\);/, /forms\.conv_weight_grad_\w+_sum\(\);/, /forms\.max_pool_\w+\(\);/, /forms\.max_pool_grad_\w+\(\);/])
      expect(code).toMatch(k);
    // (no generator embedded, nothing encoded per size: the linear layers' matmuls are kernels built once too)
    expect(code).not.toMatch(/kernels\.\w+\(\);|const gen = |\/\/ ---- codegen\/wasm\/|convBody|poolBody|matmulBody/);
    expect(code).toMatch(/forms\.matmul_\w+\(\);/);
    expect(code).not.toMatch(/^import /m);
    const first = new Map<number, ReturnType<typeof copyOf>>();
    for (const n of [1, 3, 11]) first.set(n, against(c, mod, n, 'logits'));
    for (const n of [3, 1, 11]) expect(against(c, mod, n, 'logits'), `B = ${n} again`).toEqual(first.get(n));
    // the static build's kernels at B = 11 (its chunks of images, 6 of 2, computed at run time here): the same bits of the
    // logits, the loss and the convolutions' weight gradients (b1, a sum over B·24·24 per channel, the static build adds
    // in chunks of images of its own: within rounding)
    const fixed = await buildWasmModule(modelFile(`import { cnn } from '${EXAMPLES}/cnn.ts';\nexport default cnn(11, 'cnn_11');\n`));
    const { params, inputs } = randomArgs(c.fwd, 21, 0.5, { B: 11 });
    const [sym, fix] = [copyOf(mod.valueAndGrad(params, inputs)), copyOf(fixed.mod.valueAndGrad(params, inputs))];
    expect(sym.loss, 'B = 11: the static build\'s loss').toBe(fix.loss);
    for (const w of ['W1', 'W2']) expect(sym.grads[w], `B = 11: the static build's d loss / d ${w}`).toEqual(fix.grads[w]);
    expect(Float32Array.from(mod.forward(params, inputs).logits as Float32Array), 'B = 11: the static build\'s logits').toEqual(fixed.mod.forward(params, inputs).logits);
  }, 240_000);

  it('a padded, strided convolution, average pooling and a padded 3×3 max pooling: the same bits after a larger batch reused the memory', async () => {
    const source = (b: string | number) => `import { model } from 'graphc';
export default model('convpad_${b}', (g) => {
  const W1 = g.param('W1', [4, 2, 3, 3], { scale: 0.3 });
  const b1 = g.param('b1', [4], { scale: 0.1 });
  const W2 = g.param('W2', [3, 4, 3, 3], { scale: 0.3 });
  const x = g.input('x', [${JSON.stringify(b)}, 2, 9, 9]);
  const h = g.conv2d(x, W1, { bias: b1, padding: 1 }).tanh(); // [B, 4, 9, 9]
  const p = g.avgPool2d(h, 2, { stride: 2, padding: 1 }); // [B, 4, 5, 5]
  const y = g.conv2d(p, W2, { stride: 2, padding: 1 }); // [B, 3, 3, 3]
  const q = g.maxPool2d(h, 3, { stride: 2, padding: 1 }); // [B, 4, 5, 5]
  const loss = y.square().mean().add(q.square().mean());
  return { loss, y };
});
`;
    const { c, mod, code } = await buildWasmModule(modelFile(source('B')));
    expect(code).toMatch(/^ +forms\.avg_pool_(?!grad)\w+\(\);$/m);
    expect(code).toMatch(/^ +forms\.avg_pool_grad_\w+\(\);$/m);
    expect(code).toMatch(/^ +forms\.max_pool_grad_\w+\(\);$/m);
    expect(code).toMatch(/^ +forms\.conv_weight_grad_\w+\(\);\n +forms\.conv_weight_grad_\w+_sum\(\);$/m);
    // (a model of convolutions and poolings alone: nothing encoded per size, no generator embedded)
    expect(code).not.toMatch(/kernels\.\w+\(\);|const gen = /);
    const small = against(c, mod, 2, 'y');
    against(c, mod, 13, 'y');
    expect(against(c, mod, 2, 'y'), 'B = 2 after B = 13').toEqual(small);
    // the convolutions' multiply-adds fused where the runtime has relaxed SIMD (a child process with Node 20's flag)
    expect(code).toMatch(/^const formMaddAt = \[$/m);
    const { params, inputs } = randomArgs(c.fwd, 30, 0.5, { B: 13 });
    const ref = reference(c.fwd, c.bwd, params, inputs);
    const dir = tmp();
    // (and the static build for B = 13, fused the same way: the same bits)
    const fixed = await buildWasmModule(modelFile(source(13)));
    writeFileSync(path.join(dir, 'm.mjs'), code);
    writeFileSync(path.join(dir, 's.mjs'), fixed.code);
    writeFileSync(path.join(dir, 'args.json'), JSON.stringify({ params: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, [...v]])), x: [...inputs.x!] }));
    writeFileSync(path.join(dir, 'child.mjs'), `import { readFileSync } from 'node:fs';
const a = JSON.parse(readFileSync(new URL('./args.json', import.meta.url), 'utf8'));
const run = (m) => {
  const r = m.valueAndGrad(Object.fromEntries(Object.entries(a.params).map(([k, v]) => [k, Float32Array.from(v)])), { x: Float32Array.from(a.x) });
  return { simd: m.simd, loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, [...v]])) };
};
console.log(JSON.stringify([run(await import('./m.mjs')), run(await import('./s.mjs'))]));
`);
    type Run = { simd: string; loss: number; grads: Record<string, number[]> };
    const [relaxed, relaxedStatic] = JSON.parse(execFileSync(process.execPath, ['--experimental-wasm-relaxed-simd', path.join(dir, 'child.mjs')], { encoding: 'utf8' })) as [Run, Run];
    expect(relaxed.simd).toBe('relaxed');
    expect(relErr([relaxed.loss], [ref.outputs.loss!.data[0]!]), 'relaxed: loss').toBeLessThan(1e-5);
    for (const [p, g] of Object.entries(ref.grads)) expect(relErr(Float32Array.from(relaxed.grads[p]!), g), `relaxed: d loss / d ${p}`).toBeLessThan(1e-4);
    for (const w of ['W1', 'W2']) expect(relaxed.grads[w], `relaxed: d loss / d ${w}, the static build's`).toEqual(relaxedStatic.grads[w]);
    // fused, not the plain kernels: the convolutions' weight gradients round otherwise
    const plain = copyOf(mod.valueAndGrad(params, inputs));
    expect(['W1', 'W2'].some((w) => relaxed.grads[w]!.some((v, i) => v !== plain.grads[w]![i])), 'relaxed: not the plain bits').toBe(true);
  }, 240_000);

  // every path of the convolution kernels (codegen/wasm/conv.ts): the forward row by output row, its col written as
  // panels, read in place or copied a panel at a time, groups and dilation; the input gradient as a convolution of dy
  // (row by row, or in panels) and as col2im (with a panel); the weight gradient's long rows (SUM_BLOCK) and a ragged
  // last vector (S = 25); the poolings' 2×2 kernel (H = 2·Ho and not), padded windows and overlapping ones
  it('every convolution and pooling kernel path: the static build\'s bits at B = 1, 9 and 17 (one chunk of one image; 4 chunks of 2 and one of 1; 5 of 3 and one of 2), nothing encoded per size', async () => {
    const models: Record<string, (b: string | number) => string> = {
      convs: (b) => `import { model } from 'graphc';
export default model('convs_${b}', (g) => {
  const x = g.input('x', [${JSON.stringify(b)}, 3, 24, 24]);
  const W1 = g.param('W1', [12, 3, 3, 3]);
  const W2 = g.param('W2', [16, 12, 5, 5]);
  const W3 = g.param('W3', [64, 16, 3, 3]);
  const W4 = g.param('W4', [5, 16, 3, 3]);
  const h1 = g.conv2d(x, W1, { padding: 1 }).tanh();
  const h2 = g.conv2d(h1, W2, { padding: 2 }).tanh();
  const y3 = g.conv2d(h2, W3, { stride: 2, padding: 1 });
  const y4 = g.conv2d(h2, W4, { stride: 5 });
  return { loss: y3.square().mean().add(y4.square().mean()), y: y4 };
});
`,
      groups: (b) => `import { model } from 'graphc';
export default model('groups_${b}', (g) => {
  const x = g.input('x', [${JSON.stringify(b)}, 4, 16, 16]);
  const W1 = g.param('W1', [8, 2, 3, 3]);
  const W2 = g.param('W2', [8, 8, 3, 3]);
  const W3 = g.param('W3', [6, 8, 3, 3]);
  const W4 = g.param('W4', [6, 8, 3, 3]);
  const h1 = g.conv2d(x, W1, { padding: 1, groups: 2 }).tanh();
  const h2 = g.conv2d(h1, W2, { padding: 2, dilation: 2 }).tanh();
  const y3 = g.conv2d(g.avgPool2d(h2, 2), W3, { stride: 2, padding: 1 });
  const y4 = g.conv2d(g.maxPool2d(h2, 2), W4, { padding: 1 });
  return { loss: y3.square().mean().add(y4.square().mean()), y: y3 };
});
`,
      pools: (b) => `import { model } from 'graphc';
export default model('pools_${b}', (g) => {
  const x = g.input('x', [${JSON.stringify(b)}, 3, 13, 13]);
  const W = g.param('W', [4, 3, 3, 3]);
  const h = g.conv2d(x, W, { padding: 1 }).tanh();
  const a = g.maxPool2d(h, 2);
  const b = g.avgPool2d(h, 3, { stride: 2 });
  const c = g.maxPool2d(h, 3, { stride: 1, padding: 1 });
  return { loss: a.square().mean().add(b.square().mean()).add(c.square().mean()), y: a };
});
`,
    };
    for (const [name, source] of Object.entries(models)) {
      const sym = await buildWasmModule(modelFile(source('B')));
      expect(sym.code, name).not.toMatch(/kernels\.\w+\(\);/);
      for (const n of [1, 9, 17]) {
        const fixed = await buildWasmModule(modelFile(source(n)));
        const { params, inputs } = randomArgs(sym.c.fwd, n, 0.5, { B: n });
        const [a, b] = [copyOf(sym.mod.valueAndGrad(params, inputs)), copyOf(fixed.mod.valueAndGrad(params, inputs))];
        expect(a, `${name}, B = ${n}: the static build`).toEqual(b);
        expect(Float32Array.from(sym.mod.forward(params, inputs).y as Float32Array), `${name}, B = ${n}: y`).toEqual(fixed.mod.forward(params, inputs).y);
      }
    }
  }, 240_000);
});
