// Models that break the rules fail the build with a located error (file:line:col, the line, a
// caret under the call, how to fix it) and write nothing.

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OPS } from '../ir/ops.js';
import { modelFile, ROOT, run, tmp } from './helpers.js';

const CASES: Record<string, string> = {
  'matmul-inner': `test/fixtures/errors/matmul-inner.ts:5:15: error: matmul: inner dimensions differ: f32[32,30] × f32[20,64] (30 ≠ 20)
  5 |   const h = x.matmul(W1);
    |               ^^^^^^
  fix: the left operand's last dimension must equal the right operand's first; transpose or reshape one of them
`,
  broadcast: `test/fixtures/errors/broadcast.ts:5:12: error: add: cannot broadcast f32[32,64] with f32[27]: aligned from the right, 64 and 27 differ and neither is 1
  5 |   return x.add(b).sum();
    |            ^^^
  fix: broadcasting aligns shapes from the right and needs each pair of dimensions to be equal or 1; reshape an operand (e.g. keep a size-1 axis with keepDims) so that they line up
`,
  'axis-range': `test/fixtures/errors/axis-range.ts:4:12: error: sum: axis 2 is out of range for a tensor of rank 2
  4 |   return x.sum(2);
    |            ^^^
  fix: use an axis in -2..1 (negative axes count from the end)
`,
  'i32-arith': `test/fixtures/errors/i32-arith.ts:5:16: error: mul: the first operand is i32[32] but f32 is needed
  5 |   const y = ix.mul(2);
    |                ^^^
  fix: i32 tensors hold indices and labels; use g.oneHot(indices, depth) to turn class indices into f32, or declare the input with dtype 'f32'
`,
  'loss-not-scalar': `test/fixtures/errors/loss-not-scalar.ts:4:27: error: the loss must be an f32 scalar, but it is f32[4]
  4 |   const loss = W.square().sum(0);
    |                           ^^^
  fix: reduce it to a scalar, e.g. with .mean() or .sum()
`,
  'duplicate-param': `test/fixtures/errors/duplicate-param.ts:4:15: error: param: the name 'W' is already used by another param at duplicate-param.ts:3:15
  4 |   const V = g.param('W', [4]);
    |               ^^^^^
  fix: params and inputs need distinct names, because they are the keys of the generated module’s objects
`,
  'reshape-count': `test/fixtures/errors/reshape-count.ts:4:12: error: reshape: cannot reshape [4, 6] (24 elements) to [5, 5] (25 elements)
  4 |   return x.reshape([5, 5]).sum();
    |            ^^^^^^^
  fix: the element count must stay the same; use -1 for one dimension to have it inferred
`,
  'symbolic-merge': `test/fixtures/errors/symbolic-merge.ts:4:18: error: reshape: cannot reshape [B, 4, 16] (B * 64 elements) to [-1, 16]
  4 |   const flat = x.reshape([-1, 16]);
    |                  ^^^^^^^
  fix: -1 would stand for B * 4, but a symbolic dimension cannot be merged with other axes: keep it an axis of its own, e.g. [B, -1, 16]; batchNorm and crossEntropy take a [B, T, C] tensor as it is
`,
  // an error in a helper function names the calls that led to it
  'helper-call': `test/fixtures/errors/lib/layers.ts:3:12: error: matmul: inner dimensions differ: f32[4,16] × f32[15,3] (16 ≠ 15)
  3 |   return x.matmul(W);
    |            ^^^^^^
  called from test/fixtures/errors/lib/layers.ts:6:10: return linear(x, W).tanh();
  called from test/fixtures/errors/helper-call.ts:8:13: const y = block(block(h, W1), W2); // the outer call fails: its W2 does not fit
  fix: the left operand's last dimension must equal the right operand's first; transpose or reshape one of them
`,
  'norm-gain': `test/fixtures/errors/norm-gain.ts:5:12: error: layerNorm: gain f32[4] does not fit x f32[8,4,16]: it must hold one value per feature
  5 |   return g.layerNorm(x, gain, 0).sum();
    |            ^^^^^^^^^
  fix: give gain the shape [16] (or [1, 16]), or pass a number
`,
  'narrow-range': `test/fixtures/errors/narrow-range.ts:4:20: error: narrow: start 6 and length 3 reach past the end of axis 1 of f32[32,8,10], whose size is 8
  4 |   const last = emb.narrow(1, 6, 3); // positions are 0..7
    |                    ^^^^^^
  fix: start + length must be at most 8
`,
  'f32-indices': `test/fixtures/errors/f32-indices.ts:5:12: error: gather: the index tensor is f32[32] but i32 indices are needed
  5 |   return g.gather(C, ix).sum();
    |            ^^^^^^
  fix: declare the index input with dtype 'i32', e.g. g.input('Yb', [32], 'i32')
`,
  'empty-name': `test/fixtures/errors/empty-name.ts:3:15: error: param: the name must be a non-empty string, got ""
  3 |   const x = g.param('', [4]);
    |               ^^^^^
  fix: give the param a name, e.g. g.param('W1', ...)
`,
  'no-default': `test/fixtures/errors/no-default.ts:2:18: error: the model file has no default export: this model(...) is exported as 'm'
  2 | export const m = model('bad', (g) => g.param('x', [4]).sum());
    |                  ^^^^^
  fix: graphc builds the default export: write export default in front of model(...) instead of export const m =, or add the line: export default m;
`,
  'export-named': `test/fixtures/errors/export-named.ts:2:11: error: the model file has no default export: this model(...) is exported as 'm'
  2 | const m = model('bad', (g) => g.param('x', [4]).sum());
    |           ^^^^^
  fix: graphc builds the default export: write export default in front of model(...) instead of export const m =, or add the line: export default m;
`,
  'not-exported': `test/fixtures/errors/not-exported.ts:3:13: error: the model file has no default export: this model(...) is assigned to 'bad' but not exported
  3 | const bad = model('bad', (g) => g.param('x', [4]).sum());
    |             ^^^^^
  fix: graphc builds the default export: add the line: export default bad;
`,
  'no-model': `test/fixtures/errors/no-model.ts:1:1: error: the model file has no default export
  1 | import { model } from 'graphc';
    | ^^^^^^
  fix: end the file with: export default model('name', (g) => { ... })
`,
  'not-a-model': `test/fixtures/errors/not-a-model.ts:3:1: error: the default export of the model file is not model(...)
  3 | export default { name: 'bad' };
    | ^^^^^^
  fix: end the file with: export default model('name', (g) => { ... })
`,
  'syntax': `test/fixtures/errors/syntax.ts:3:29: error: TS1005: ')' expected.
  3 |   const x = g.param('x', [4];
    |                             ^
  fix: fix the TypeScript error in the model file
`,
  'type-error': `test/fixtures/errors/type-error.ts:4:12: error: TS2551: Property 'matmull' does not exist on type 'Tensor'. Did you mean 'matmul'?
  4 |   return x.matmull(x).sum();
    |            ^^^^^^^
  fix: fix the type error: the model must type-check against the graphc DSL
`,
  'input-dtype': `test/fixtures/errors/input-dtype.ts:3:15: error: input: dtype must be 'f32' or 'i32', got "f64"
  3 |   const x = g.input('x', [4], 'f64' as 'f32');
    |               ^^^^^
  fix: use 'f32' for data and 'i32' for indices and labels
`,
};

describe('build errors', () => {
  it.each(Object.keys(CASES))('%s: exact message, exit 1, nothing written', async (name) => {
    const out = path.join(tmp(), 'out');
    const r = await run(['build', `test/fixtures/errors/${name}.ts`, '--out', out]);
    expect(r.err).toBe(CASES[name]);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
  });

  // the corpus of bad models: each test/fixtures/errors/NAME.ts (or .js) with its exact message in NAME.expected
  const corpus = readdirSync(path.join(ROOT, 'test/fixtures/errors')).filter((f) => f.endsWith('.expected')).map((f) => f.slice(0, -'.expected'.length));
  it('has the corpus of bad models', () => expect(corpus.length).toBeGreaterThanOrEqual(44));
  it.each(corpus)('corpus %s: exact message (located, with the fix), exit 1, nothing written', async (name) => {
    const dir = path.join(ROOT, 'test/fixtures/errors');
    const file = existsSync(path.join(dir, `${name}.ts`)) ? `${name}.ts` : `${name}.js`;
    const out = path.join(tmp(), 'out');
    // an endless loop is stopped by the time limit (default 60 s; 1 s here)
    const r = await run(['build', `test/fixtures/errors/${file}`, '--out', out, ...(name.startsWith('trace-loop') ? ['--trace-timeout', '1'] : [])]);
    expect(r.err).toBe(readFileSync(path.join(dir, `${name}.expected`), 'utf8'));
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(path.dirname(out))).toEqual([]); // no temporary either
  });

  it('reports a group the flat module cannot render as an error naming the op and the target, at its line (was an uncaught Error)', async () => {
    // a transpose of 9 axes walks each with a stride of its own: the flat module has loop variables for 8
    const file = modelFile(`import { model } from 'graphc';
export default model('deep', (g) => {
  const x = g.param('x', [2, 3, 2, 3, 2, 3, 2, 3, 2]);
  const y = x.transpose([8, 7, 6, 5, 4, 3, 2, 1, 0]);
  return y.mul(y).sum();
});
`);
    const out = path.join(tmp(), 'out');
    const r = await run(['build', file, '--target', 'ts', '--out', out]);
    const f = path.relative(ROOT, file);
    expect(r.err).toBe(`${f}:4:15: error: the flat TypeScript target cannot render transpose: it would need a loop nest of 9 axes that do not merge (the most is 8)
  4 |   const y = x.transpose([8, 7, 6, 5, 4, 3, 2, 1, 0]);
    |               ^^^^^^^^^
  fix: give the value fewer axes (reshape it): the flat module walks at most 8 axes of different strides
`);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
  });

  it("reports an op with no gradient rule on the path to the loss, at the op's line", async () => {
    // no op of the table lacks a rule; take tanh's away for the duration of this test
    const table = OPS as unknown as Record<string, { grad: unknown }>;
    const saved = table.tanh!;
    table.tanh = { ...saved, grad: null };
    try {
      const file = modelFile(`import { model } from 'graphc';
export default model('nograd', (g) => {
  const x = g.param('x', [4]);
  const h = x.tanh();
  return h.sum();
});
`);
      const r = await run(['build', file, '--out', path.join(tmp(), 'out')]);
      expect(r.code).toBe(1);
      expect(r.err).toBe(
        `${path.relative(ROOT, file)}:4:15: error: the op 'tanh' has no gradient rule, but it lies on the path from a param to the loss\n` +
          '  4 |   const h = x.tanh();\n' +
          '    |               ^^^^\n' +
          '  fix: wrap its input in .stopGradient() if no gradient should flow through it, or compute it another way\n',
      );
    } finally {
      table.tanh = saved;
    }
  });

  it("reports a type error in a 1000-layer model (TypeScript's checker recurses through every layer)", async () => {
    const layers = Array.from({ length: 1000 }, (_, i) =>
      i === 499 ? `  const h${i + 1} = h${i}.add('b');` : `  const h${i + 1} = h${i}.mul(W).tanh();`,
    );
    const file = modelFile(`import { model } from 'graphc';
export default model('deep', (g) => {
  const W = g.param('W', [4]);
  const h0 = g.input('x', [4]);
${layers.join('\n')}
  return h1000.sum();
});
`);
    const r = await run(['build', file, '--out', path.join(tmp(), 'out')]);
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toBe(
      `${path.relative(ROOT, file)}:504:25: error: TS2345: Argument of type 'string' is not assignable to parameter of type 'TensorLike'.`,
    );
  });

  it('warns (and builds) when a param does not reach the loss', async () => {
    const r = await run(['build', 'test/fixtures/errors/unused-param.ts', '--out', path.join(tmp(), 'out')]);
    expect(r.code).toBe(0);
    expect(r.err).toBe(`test/fixtures/errors/unused-param.ts:4:20: warning: param 'unused' does not reach the loss; its gradient is always zero
  4 |   const unused = g.param('unused', [3]);
    |                    ^^^^^
  fix: use it on the way to the loss, remove it, or ignore this warning if that is intended
`);
  });

  it('warns when a param reaches the loss only through stopGradient', async () => {
    const r = await run(['build', 'test/fixtures/errors/stopped-param.ts', '--out', path.join(tmp(), 'out')]);
    expect(r.code).toBe(0);
    expect(r.err).toBe(`test/fixtures/errors/stopped-param.ts:4:20: warning: param 'frozen' reaches the loss only through stopGradient (or ops with no gradient); its gradient is always zero
  4 |   const frozen = g.param('frozen', [4]);
    |                    ^^^^^
  fix: remove the stopGradient on its way to the loss if it should learn, or ignore this warning if it is frozen on purpose
`);
  });

  it('leaves an existing output folder as it was', async () => {
    const out = path.join(tmp(), 'out');
    mkdirSync(out);
    writeFileSync(path.join(out, 'bad.ts'), 'previous build\n');
    const r = await run(['build', 'test/fixtures/errors/matmul-inner.ts', '--out', out]);
    expect(r.code).toBe(1);
    expect(readdirSync(out)).toEqual(['bad.ts']);
    expect(readFileSync(path.join(out, 'bad.ts'), 'utf8')).toBe('previous build\n');
    expect(readdirSync(path.dirname(out))).toEqual(['out']); // no temporary folder left behind
  });

  it('exits 2 on usage errors and 0 on success', async () => {
    expect((await run(['frobnicate'])).code).toBe(2);
    expect((await run(['build'])).code).toBe(2);
    expect((await run(['build', 'examples/neuron.ts', '--bogus'])).code).toBe(2);
    expect((await run(['build', 'no/such/model.ts'])).err).toBe('graphc: no such model file: no/such/model.ts\n');
    const out = path.join(tmp(), 'neuron');
    const ok = await run(['build', 'examples/neuron.ts', '--out', out]);
    expect(ok.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['.graphc-manifest.json', 'neuron.grad.ir', 'neuron.ir', 'neuron.js', 'neuron.ts', 'neuron.wasm.js', 'neuron.wasm.ts', 'package.json']);
    const only = path.join(tmp(), 'ts-only');
    expect((await run(['build', 'examples/neuron.ts', '--out', only, '--target', 'ts'])).code).toBe(0);
    expect(readdirSync(only).sort()).toEqual(['.graphc-manifest.json', 'neuron.grad.ir', 'neuron.ir', 'neuron.js', 'neuron.ts', 'package.json']);
    const wasmOnly = path.join(tmp(), 'wasm-only');
    expect((await run(['build', 'examples/neuron.ts', '--out', wasmOnly, '--target', 'wasm'])).code).toBe(0);
    expect(readdirSync(wasmOnly).sort()).toEqual(['.graphc-manifest.json', 'neuron.grad.ir', 'neuron.ir', 'neuron.wasm.js', 'neuron.wasm.ts', 'package.json']);
    expect((await run(['build', 'examples/neuron.ts', '--target', 'cuda'])).err).toBe("graphc build: unknown target 'cuda' (known: ts, gpu, wasm, webgpu)\n");
    expect((await run(['build', '--help'])).code).toBe(0);
  });
});

describe('type errors', () => {
  it('type-checks as strict: true does: an evolving array (const outs = []; outs.push(t)) and an untyped helper parameter build', async () => {
    const file = modelFile(`import { model } from 'graphc';
import type { Tensor } from 'graphc';
export default model('outs', (g) => {
  const x = g.param('x', [4]);
  const twice = (t) => t.mul(2);
  const outs = [];
  for (let i = 0; i < 3; i++) outs.push(twice(x.mul(i + 1)));
  const all: Tensor = g.concat(outs, 0);
  return all.sum();
});
`);
    const r = await run(['build', file, '--out', path.join(tmp(), 'out'), '--target', 'ts']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });

  it('shows every type error (up to 10), and suggests the nearest DSL name for a misspelled one', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('typos', (g) => {
  const x = g.param('x', [4]);
  const h = x.tahn();
  const n = g.lyerNorm(h, 1, 0);
  const s = g.pcik(n, n);
  return s.sum().add(x.frobnicate());
});
`);
    const r = await run(['build', file, '--out', path.join(tmp(), 'out')]);
    expect(r.code).toBe(1);
    const f = path.relative(ROOT, file);
    expect(r.err).toBe(`${f}:4:15: error: TS2339: Property 'tahn' does not exist on type 'Tensor'.
  4 |   const h = x.tahn();
    |               ^^^^
  fix: did you mean tanh? (x.tanh(...) is the nearest name the DSL has)
${f}:5:15: error: TS2551: Property 'lyerNorm' does not exist on type 'GraphBuilder'. Did you mean 'layerNorm'?
  5 |   const n = g.lyerNorm(h, 1, 0);
    |               ^^^^^^^^
  fix: fix the type error: the model must type-check against the graphc DSL
${f}:6:15: error: TS2339: Property 'pcik' does not exist on type 'GraphBuilder'.
  6 |   const s = g.pcik(n, n);
    |               ^^^^
  fix: did you mean pick? (g.pick(...) is the nearest name the DSL has)
${f}:7:24: error: TS2339: Property 'frobnicate' does not exist on type 'Tensor'.
  7 |   return s.sum().add(x.frobnicate());
    |                        ^^^^^^^^^^
  fix: fix the type error: the model must type-check against the graphc DSL
`);
  });

  it('counts the type errors past the 10th', async () => {
    const lines = Array.from({ length: 12 }, (_, i) => `  const y${i} = x.add('s${i}');`);
    const file = modelFile(`import { model } from 'graphc';
export default model('many', (g) => {
  const x = g.param('x', [4]);
${lines.join('\n')}
  return x.sum();
});
`);
    const r = await run(['build', file, '--out', path.join(tmp(), 'out')]);
    expect(r.code).toBe(1);
    expect(r.err.match(/error: TS2345/g)).toHaveLength(10);
    expect(r.err.endsWith("\n(and 2 more type errors not shown)\n")).toBe(true);
  });
});
