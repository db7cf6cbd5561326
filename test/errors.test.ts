// Models that break the rules fail the build with a located error (file:line:col, the line, a
// caret under the call, how to fix it) and write nothing.

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, tmp } from './helpers.js';

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
};

describe('build errors', () => {
  it.each(Object.keys(CASES))('%s: exact message, exit 1, nothing written', async (name) => {
    const out = path.join(tmp(), 'out');
    const r = await run(['build', `test/fixtures/errors/${name}.ts`, '--out', out]);
    expect(r.err).toBe(CASES[name]);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
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
    expect(readdirSync(out).sort()).toEqual(['neuron.gpu.js', 'neuron.gpu.ts', 'neuron.grad.ir', 'neuron.ir', 'neuron.js', 'neuron.ts']);
    const only = path.join(tmp(), 'ts-only');
    expect((await run(['build', 'examples/neuron.ts', '--out', only, '--target', 'ts'])).code).toBe(0);
    expect(readdirSync(only).sort()).toEqual(['neuron.grad.ir', 'neuron.ir', 'neuron.js', 'neuron.ts']);
    expect((await run(['build', 'examples/neuron.ts', '--target', 'cuda'])).err).toBe("graphc build: unknown target 'cuda' (known: ts, gpu)\n");
    expect((await run(['build', '--help'])).code).toBe(0);
  });
});
