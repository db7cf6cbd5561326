// Gradients at ties (issue #27, item 16): `maximum`, `minimum` and a reduction `max` give the whole
// gradient of a tie to the first operand (the first argmax), which is graphc's own rule: PyTorch
// 1.13 splits a tie evenly (torch.maximum/minimum half to each operand, amax among the tied
// elements). The modules do so, and the documentation says so rather than "as PyTorch".

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { buildAndImport, modelFile, ROOT } from './helpers.js';

const MODEL = `import { model } from 'graphc';
export default model('ties', (g) => {
  const a = g.param('a', [3]);
  const b = g.param('b', [3]);
  return a.maximum(b).sum().add(a.minimum(b).sum().mul(10)).add(a.max().mul(100));
});
`;

it('maximum, minimum and max give the whole gradient of a tie to the first operand, the first argmax', async () => {
  const { mod } = await buildAndImport(modelFile(MODEL, 'ties.ts'));
  const a = Float32Array.of(2, 5, 5);
  const b = Float32Array.of(2, 1, 7);
  const { grads } = mod.valueAndGrad({ a, b }, {});
  // a[0] = b[0]: maximum's 1 and minimum's 10 go to a; max's 100 goes to a[1], the first of the two 5s
  expect(Array.from(grads.a!)).toEqual([11, 101, 10]);
  expect(Array.from(grads.b!)).toEqual([0, 10, 1]);
});

it("the documentation calls the rule at ties graphc's choice, not PyTorch's", () => {
  const docs = ['docs/ops.md', 'docs/api.md', 'docs/dsl.md', 'src/dsl.ts', 'ir/ops.ts'].map((f) => [f, readFileSync(path.join(ROOT, f), 'utf8')] as const);
  for (const [file, text] of docs) {
    const lines = text.split('\n').filter((l) => /\bties?\b/.test(l) && /first (operand|argmax)/.test(l));
    for (const l of lines) expect(l, `${file}: ${l.trim()}`).not.toMatch(/as PyTorch|as in PyTorch/);
  }
  const ops = readFileSync(path.join(ROOT, 'docs/ops.md'), 'utf8');
  expect(ops).toContain("The elementwise maximum; a tie gives the whole gradient to this (the first operand): graphc's choice, where PyTorch splits it evenly.");
  expect(ops).toContain("the whole gradient goes to the first argmax: graphc's choice, where PyTorch's `amax` splits it evenly among ties.");
  expect(readFileSync(path.join(ROOT, 'docs/dsl.md'), 'utf8')).toContain('where PyTorch (1.13) splits it evenly');
});
