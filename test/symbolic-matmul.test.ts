// Matmuls in the wasm module of a model with a symbolic batch (codegen/wasm/symbolic.ts): the
// static build's matmul kernel (codegen/wasm/matmul.ts) built once, its rows M, products K and
// matrices read at run time (codegen/wasm/symbolic-forms.ts), nothing encoded per size. Each
// product sums over K in the same order at every size, in f32 blocks of MATMUL_BLOCK added into
// f64 where K is longer: the static builds' bits at sizes around the blocks and the register tile.

import * as path from 'node:path';
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import type { Compiled } from '../src/build.js';
import type { GeneratedModule } from './helpers.js';
import { modelFile, randomArgs, reference, relErr, tmp } from './helpers.js';
import { MATMUL_BLOCK } from '../codegen/wasm/matmul.js';

async function buildWasm(file: string): Promise<{ c: Compiled; mod: GeneratedModule; code: string }> {
  const c = await compile(file, { targets: ['wasm'] });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const name = `${c.name}.wasm.js`;
  return { c, code: c.files.find((f) => f.name === name)!.content as string, mod: (await import(pathToFileURL(path.join(dir, name)).href)) as GeneratedModule };
}

/** The bits of an array as u32 (−0 is not +0). */
const bits = (v: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(v).buffer));

// M = B rows (ragged tiles of 1, 2 and 3 rows, N = 10 and 6: a ragged last vector), K = B products of the weight
// gradients (A transposed: within one block, exactly one, one more, two and a bit), a transposed B packed
// (h's gradient through W2ᵀ), batches of B matrices, B transposed (a) and A transposed (q). The products and what
// only elementwise ops take from them (y, a, q, dW1, dW2) have the static builds' bits; a sum over the batch
// (the loss, db1, dP) is a reduction kernel of the kernel form, whose order differs from the static one's
const source = (b: string | number) => `import { model } from 'graphc';
export default model('mms_${b}', (g) => {
  const x = g.input('x', [${JSON.stringify(b)}, 12]);
  const u = g.input('u', [${JSON.stringify(b)}, 3, 8]);
  const W1 = g.param('W1', [12, 10]);
  const b1 = g.param('b1', [10]);
  const W2 = g.param('W2', [10, 6]);
  const P = g.param('P', [8]);
  const h = x.matmul(W1).add(b1).tanh();
  const y = h.matmul(W2);
  const s = u.mul(P);
  const a = s.matmul(s.transpose([0, 2, 1]));
  const q = s.transpose([0, 2, 1]).matmul(s);
  return { loss: y.square().mean().add(a.square().mean()).add(q.mean()), y, a, q };
});
`;

describe('matmuls in the symbolic wasm module', () => {
  it(`are built once, and give the static builds' bits at B = 1, 2, 3, 5, ${MATMUL_BLOCK - 1} … ${MATMUL_BLOCK + 2}, 300 and ${2 * MATMUL_BLOCK + 1}`, async () => {
    const sym = await buildWasm(modelFile(source('B')));
    // every matmul a kernel built once (forward, both weight gradients, h's gradient, the batched ones): none encoded per size, no generator embedded
    expect(sym.code).not.toMatch(/kernels\.\w+\(\);|const gen = |matmulBody/);
    const calls = sym.code.match(/^ +forms\.matmul_\w+\(\);$/gm) ?? [];
    expect(calls.length).toBeGreaterThanOrEqual(7);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_\w+: .*\[12,B\]·\[B,10\] \(A transposed\), sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_\w+: .*\(B transposed\), sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_\w+: .*B × \[3,8\]·\[8,3\] \(B transposed\), sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_\w+: .*B × \[3,3\]·\[3,8\] \(A transposed\), sizes read at run time$/m);
    for (const n of [1, 2, 3, 5, MATMUL_BLOCK - 1, MATMUL_BLOCK, MATMUL_BLOCK + 1, MATMUL_BLOCK + 2, 300, 2 * MATMUL_BLOCK + 1]) {
      const fixed = await buildWasm(modelFile(source(n)));
      const { params, inputs } = randomArgs(sym.c.fwd, n, 0.5, { B: n });
      const [got, want] = [sym, fixed].map((b) => b.mod.valueAndGrad(params, inputs));
      for (const w of ['W1', 'W2']) expect(bits(got!.grads[w]!), `B = ${n}: d${w}`).toEqual(bits(want!.grads[w]!));
      const ref = reference(sym.c.fwd, sym.c.bwd, params, inputs);
      expect(relErr([got!.loss], [ref.outputs.loss!.data[0]!]), `B = ${n}: loss vs the interpreter`).toBeLessThan(1e-5);
      for (const w of ['b1', 'P']) expect(relErr(got!.grads[w]!, ref.grads[w]!), `B = ${n}: d${w} vs the interpreter`).toBeLessThan(1e-4);
      const [fs, ff] = [sym, fixed].map((b) => b.mod.forward(params, inputs));
      for (const o of ['y', 'a', 'q']) expect(bits(fs![o] as Float32Array), `B = ${n}: ${o}`).toEqual(bits(ff![o] as Float32Array));
    }
  }, 240_000);
});
