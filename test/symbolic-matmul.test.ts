// Matmuls in the wasm module of a model with a symbolic batch (codegen/wasm/symbolic.ts): the
// static build's matmul kernel (codegen/wasm/matmul.ts) built once, its rows M, products K and
// matrices read at run time (codegen/wasm/symbolic-forms.ts), nothing encoded per size. Each
// product sums over K in the same order at every size, in f32 blocks of MATMUL_BLOCK added into
// f64 where K is longer: the static builds' bits at sizes around the blocks and the register tile.

import { describe, expect, it } from 'vitest';
import { buildWasmModule, modelFile, randomArgs, reference, relErr } from './helpers.js';
import { MATMUL_BLOCK } from '../codegen/wasm/matmul.js';

/** The bits of an array as u32 (−0 is not +0). */
const bits = (v: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(v).buffer));

// M = B rows (ragged tiles of 1, 2 and 3 rows, N = 10 and 6: a ragged last vector), K = B products of the weight
// gradients (A transposed: within one block, exactly one, one more, two and a bit), a transposed B packed
// (h's gradient through W2ᵀ), batches of B matrices, B transposed (a) and A transposed (q), and K = B products of
// an untransposed A (o: its rows B floats apart) and of a transposed B packed (o2), and N = B columns (gram, of B
// transposed, its epilogue a kernel of its own reading the product area; xx, of B read in place: tiles of 8, 4 and
// 1–3 columns; og, N = K = B), a weight packed into panels (pz: [64,160], as the static build packs it from 16 rows; read
// in place below 16) and a weight gradient's transposed A packed in row tiles (dW4: [130,B]ᵀ, 32 tiles, four at a
// time, and a ragged one, as the static build packs it from K = 512) with its B, dpb [B,16], packed into panels
// from K = 513, where the static build's K·N passes PANEL_MIN_FLOATS (read in place below). The products and what only elementwise ops take from them (y, a, q,
// o, o2, gram, xx, og, pz, dW1 … dW4) have
// the static builds' bits; a sum over the batch
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
  const xt = g.input('xt', [12, ${JSON.stringify(b)}]);
  const zt = g.input('zt', [7, ${JSON.stringify(b)}]);
  const o = xt.matmul(h);
  const o2 = xt.matmul(zt.transpose([1, 0]));
  const gram = x.matmul(x.transpose([1, 0])).mul(0.5).tanh();
  const xx = x.matmul(xt);
  const og = xt.matmul(gram);
  const zz = g.input('zz', [${JSON.stringify(b)}, 64]);
  const W3 = g.param('W3', [64, 160]);
  const pz = zz.matmul(W3).add(b1.sum()).relu();
  const xb = g.input('xb', [${JSON.stringify(b)}, 130]);
  const W4 = g.param('W4', [130, 16]);
  const pb = xb.matmul(W4);
  return { loss: y.square().mean().add(a.square().mean()).add(q.mean()).add(pz.mean()).add(pb.square().mean()), y, a, q, o, o2, gram, xx, pz, og };
});
`;

describe('matmuls in the symbolic wasm module', () => {
  it(`are built once, and give the static builds' bits at B = 1, 2, 3, 5 … 9, 13, ${MATMUL_BLOCK - 1} … ${MATMUL_BLOCK + 2}, 300 and ${2 * MATMUL_BLOCK + 1}, and again after larger sizes`, async () => {
    const sym = await buildWasmModule(modelFile(source('B')));
    // every matmul a kernel built once (forward, both weight gradients, h's gradient, the batched ones): none encoded per size, no generator embedded
    expect(sym.code).not.toMatch(/kernels\.\w+\(\);|const gen = |matmulBody/);
    const calls = sym.code.match(/^ +forms\.matmul_\w+\(\);$/gm) ?? [];
    expect(calls.length).toBeGreaterThanOrEqual(7);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_\w+: .*\[12,B\]·\[B,10\] \(A transposed\), sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_\w+: .*\(B transposed\), sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_\w+: .*B × \[3,8\]·\[8,3\] \(B transposed\), sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_\w+: .*B × \[3,3\]·\[3,8\] \(A transposed\), sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_o: o = xt @ h {3}\[12,B\]·\[B,10\], sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_o2: o2 = xt @ zt\.T {3}\[12,B\]·\[B,7\] \(B transposed\), sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_gram: \w+ = x @ x\.T {3}\[B,12\]·\[12,B\] \(B transposed\), sizes read at run time$/m);
    expect(sym.code).toMatch(/^ +forms\.matmul_gram\(\);\n +forms\.epilogue_gram\(\);$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_xx: xx = x @ xt {3}\[B,12\]·\[12,B\], sizes read at run time$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_\w+: \w+ = zz @ W3 {3}\[B,64\]·\[64,160\], sizes read at run time, B packed in panels where M ≥ 16$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_dW4: dW4 = xb\.T @ \w+ {3}\[130,B\]·\[B,16\] \(A transposed\), sizes read at run time, B packed in panels where K ≥ 513, A packed in row tiles$/m);
    expect(sym.code).toMatch(/^\/\/ {3}matmul_og: og = xt @ \w+ {3}\[12,B\]·\[B,B\], sizes read at run time$/m);
    const seen = new Map<number, number[]>();
    for (const n of [1, 2, 3, 5, 6, 7, 8, 9, 13, MATMUL_BLOCK - 1, MATMUL_BLOCK, MATMUL_BLOCK + 1, MATMUL_BLOCK + 2, 300, 2 * MATMUL_BLOCK + 1]) {
      const fixed = await buildWasmModule(modelFile(source(n)));
      const { params, inputs } = randomArgs(sym.c.fwd, n, 0.5, { B: n });
      const [got, want] = [sym, fixed].map((b) => b.mod.valueAndGrad(params, inputs));
      for (const w of ['W1', 'W2', 'W3', 'W4']) expect(bits(got!.grads[w]!), `B = ${n}: d${w}`).toEqual(bits(want!.grads[w]!));
      const ref = reference(sym.c.fwd, sym.c.bwd, params, inputs);
      expect(relErr([got!.loss], [ref.outputs.loss!.data[0]!]), `B = ${n}: loss vs the interpreter`).toBeLessThan(1e-5);
      for (const w of ['b1', 'P']) expect(relErr(got!.grads[w]!, ref.grads[w]!), `B = ${n}: d${w} vs the interpreter`).toBeLessThan(1e-4);
      const [fs, ff] = [sym, fixed].map((b) => b.mod.forward(params, inputs));
      for (const o of ['y', 'a', 'q', 'o', 'o2', 'gram', 'xx', 'og', 'pz']) expect(bits(fs![o] as Float32Array), `B = ${n}: ${o}`).toEqual(bits(ff![o] as Float32Array));
      seen.set(n, [...bits(fs!.o2 as Float32Array), ...bits(fs!.gram as Float32Array)]);
    }
    // back to smaller sizes after larger ones (the memory laid out again, the parameter block rewritten): the same bits
    for (const n of [3, MATMUL_BLOCK + 1, 1]) {
      const { params, inputs } = randomArgs(sym.c.fwd, n, 0.5, { B: n });
      const f = sym.mod.forward(params, inputs);
      expect([...bits(f.o2 as Float32Array), ...bits(f.gram as Float32Array)], `B = ${n} again`).toEqual(seen.get(n));
    }
  }, 240_000);
});
