// Sizes past what the generated modules can allocate are refused when the model is built (a
// typed array's length, wasm's 4 GiB memory), and at the call for symbolic sizes: before, they
// built with exit 0 and failed at import ("Invalid typed array length", wasm's "initial ... above
// the upper bound") or threw "internal: sleb(...)".

import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { modelFile, ROOT, run, tmp } from './helpers.js';

describe('size limits', () => {
  it("a param larger than a typed array: refused at build time at the param's line, with its size and the limit", async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('big', (g) => {
  const W = g.param('W', [100000, 100000]);
  return W.square().sum();
});
`);
    const r = await run(['build', file, '--out', path.join(tmp(), 'out')]);
    expect(r.err).toBe(`${path.relative(ROOT, file)}:3:15: error: param 'W' f32[100000,100000] has 10,000,000,000 elements, more than a typed array holds (4,294,967,296 = 2^32 in V8)
  3 |   const W = g.param('W', [100000, 100000]);
    |               ^^^^^
  fix: make it smaller: the generated modules keep every tensor in one Float32Array or Int32Array
`);
    expect(r.code).toBe(1);
  });

  it("a model whose wasm memory would pass 4 GiB: the wasm target refused at the largest param (skipped among others, an error alone)", async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('big', (g) => {
  const W = g.param('W', [1000000000]);
  return W.square().sum();
});
`);
    const f = path.relative(ROOT, file);
    const msg = `${f}:3:15: error: the wasm module needs 8,000,000,032 bytes of memory (122,071 pages), more than wasm's 4 GiB (65536 pages of 64 KiB); its largest param 'W' is f32[1000000000], 1,000,000,000 elements
  3 |   const W = g.param('W', [1000000000]);
    |               ^^^^^
  fix: make the model smaller, or build it for the ts or gpu target, whose arrays are not in one wasm memory
`;
    const alone = await run(['build', file, '--out', path.join(tmp(), 'out'), '--target', 'wasm']);
    expect(alone.err).toBe(msg);
    expect(alone.code).toBe(1);
    const both = await run(['build', file, '--out', path.join(tmp(), 'out'), '--target', 'ts,wasm']);
    expect(both.err).toBe(msg.replace(': error: the wasm module', ': warning: the wasm target is skipped (the other targets are built): the wasm module'));
    expect(both.code).toBe(0);
    // --check: the skipped target's files are not checked, so the folder is not called up to date
    const out = path.join(tmp(), 'out');
    await run(['build', file, '--out', out, '--target', 'ts,wasm']);
    const check = await run(['build', file, '--out', out, '--target', 'ts,wasm', '--check']);
    expect(check.err).toBe(`${both.err}graphc build --check: ${out} is not checked for the wasm target (skipped, see the warning)
  fix: make the model build for every target given, or leave wasm out of --target
`);
    expect(check.code).toBe(1);
  });

  it('a symbolic wasm module called with a size past 4 GiB of memory: a RangeError naming the dimension, the size and the limit', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('sym', (g) => {
  const x = g.input('x', ['B', 1]);
  const W = g.param('W', [1, 64]);
  return x.matmul(W).tanh().mean();
});
`);
    const out = path.join(tmp(), 'out');
    expect((await run(['build', file, '--out', out, '--target', 'wasm'])).code).toBe(0);
    const mod = (await import(pathToFileURL(path.join(out, 'sym.wasm.js')).href)) as { initParams(s: number): Record<string, Float32Array>; forward(p: object, i: object): { loss: number } };
    const params = mod.initParams(0);
    expect(Number.isFinite(mod.forward(params, { x: new Float32Array(5).fill(0.5) }).loss)).toBe(true);
    expect(() => mod.forward(params, { x: new Float32Array(2e7) })).toThrow(
      new RangeError("sym: B = 20000000 needs 10560000592 bytes of wasm memory, more than wasm's 4 GiB (65536 pages of 64 KiB): call with a smaller B, or use the flat module (graphc build --target ts)"),
    );
    // the module still works at a size that fits
    expect(Number.isFinite(mod.forward(params, { x: new Float32Array(7).fill(0.5) }).loss)).toBe(true);
  });
});
