// The generated modules at run time: arguments are checked before any work, with errors that
// name the tensor, what was expected and what came; --check-finite names the first non-finite
// value and the DSL line that made it.

import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Arrays, GeneratedModule } from './helpers.js';
import { modelFile, ROOT, run, tmp } from './helpers.js';

const makemore = (await import(pathToFileURL(path.join(ROOT, 'generated/makemore/makemore.js')).href)) as GeneratedModule;

function args(): { params: Arrays; inputs: Arrays } {
  return { params: makemore.initParams(1), inputs: { Xb: new Int32Array(96).fill(3), Yb: new Int32Array(32).fill(5) } };
}

describe('argument checks', () => {
  const cases: [string, (a: { params: Arrays; inputs: Arrays }) => void, ErrorConstructor, string][] = [
    ['a missing input', (a) => delete a.inputs.Xb, TypeError, "makemore: missing input 'Xb' (i32[32,3])"],
    ['a missing param', (a) => delete a.params.W1, TypeError, "makemore: missing param 'W1' (f32[30,64])"],
    ['a wrong array type', (a) => (a.inputs.Xb = new Float32Array(96) as unknown as Int32Array), TypeError, "makemore: input 'Xb' must be Int32Array (i32[32,3]), got Float32Array"],
    ['a plain array', (a) => (a.params.b1 = [] as unknown as Float32Array), TypeError, "makemore: param 'b1' must be Float32Array (f32[64]), got Array"],
    ['a wrong length', (a) => (a.params.C = new Float32Array(269)), RangeError, "makemore: param 'C' must have 270 elements (f32[27,10]), got 269"],
    ['an index out of range', (a) => (a.inputs.Xb![7] = 27), RangeError, "makemore: input 'Xb' holds 27 at [7], but indices must be in [0, 27)"],
    ['a negative index', (a) => (a.inputs.Yb![0] = -1), RangeError, "makemore: input 'Yb' holds -1 at [0], but indices must be in [0, 27)"],
  ];
  it.each(cases)('reject %s before any work', (_what, spoil, type, message) => {
    for (const f of [makemore.forward, makemore.valueAndGrad]) {
      const a = args();
      const before = f(a.params, a.inputs);
      const loss = typeof before.loss === 'number' ? before.loss : NaN;
      spoil(a);
      expect(() => f(a.params, a.inputs)).toThrow(type);
      expect(() => f(a.params, a.inputs)).toThrow(message);
      // nothing ran: the module's results are those of the last good call
      expect(typeof before.loss === 'number' ? before.loss : NaN).toBe(loss);
    }
  });
});

describe('non-finite values', () => {
  const source = `import { model } from 'graphc';
export default model('nan', (g) => {
  const x = g.param('x', [4]);
  const y = g.input('y', [4]);
  const lx = x.log();
  const z = lx.mul(y).exp();
  return z.sum();
});
`;
  const params = { x: Float32Array.of(1, 2, -3, 4) };
  const inputs = { y: Float32Array.of(1, 1, 1, 1) };

  it('pass through by default: the loss is NaN, which Number.isFinite detects', async () => {
    const out = path.join(tmp(), 'plain');
    expect((await run(['build', modelFile(source), '--out', out, '--target', 'ts'])).code).toBe(0);
    const m = (await import(pathToFileURL(path.join(out, 'nan.js')).href)) as GeneratedModule;
    expect(Number.isFinite(m.valueAndGrad(params, inputs).loss)).toBe(false);
  });

  it('throw at the first one with --check-finite, naming the value and its line', async () => {
    const out = path.join(tmp(), 'checked');
    expect((await run(['build', modelFile(source), '--out', out, '--target', 'ts', '--check-finite'])).code).toBe(0);
    const m = (await import(pathToFileURL(path.join(out, 'nan.js')).href)) as GeneratedModule;
    expect(() => m.valueAndGrad(params, inputs)).toThrow(new RangeError('nan: NaN in lx[2], computed at model.ts:5 (built with --check-finite)'));
    expect(() => m.forward(params, inputs)).toThrow('NaN in lx[2]');
    expect(m.valueAndGrad({ x: Float32Array.of(1, 2, 3, 4) }, inputs).loss).toBeCloseTo(10, 4);
    // a non-finite argument is named as the argument, before anything is computed from it
    expect(() => m.valueAndGrad({ x: Float32Array.of(1, NaN, 3, 4) }, inputs)).toThrow(new RangeError("nan: NaN in param 'x'[1], passed in (built with --check-finite)"));
    expect(() => m.forward({ x: Float32Array.of(1, 2, 3, 4) }, { y: Float32Array.of(1, 1, Infinity, 1) })).toThrow(
      new RangeError("nan: Infinity in input 'y'[2], passed in (built with --check-finite)"),
    );
  });
});

describe('--optimizer sgd', () => {
  it('emits update(params, grads, lr): each param minus lr times its gradient, in place, arguments checked', async () => {
    const out = path.join(tmp(), 'sgd');
    expect((await run(['build', 'examples/makemore.ts', '--out', out, '--target', 'ts', '--optimizer', 'sgd'])).code).toBe(0);
    const m = (await import(pathToFileURL(path.join(out, 'makemore.js')).href)) as GeneratedModule & {
      update(params: Arrays, grads: Record<string, Float32Array>, lr: number): void;
    };
    const { params, inputs } = args();
    const { grads } = m.valueAndGrad(params, inputs);
    const want = Object.fromEntries(Object.entries(params).map(([k, p]) => [k, Float32Array.from(p, (x, i) => x - 0.1 * grads[k]![i]!)]));
    const W1 = params.W1;
    m.update(params, grads, 0.1);
    expect(params.W1).toBe(W1); // in place
    for (const k of Object.keys(want)) expect(params[k], k).toEqual(want[k]);
    expect(() => m.update(params, grads, NaN)).toThrow(new TypeError('makemore: the learning rate must be a finite number, got NaN'));
    expect(() => m.update(params, { ...grads, b1: new Float32Array(3) }, 0.1)).toThrow(
      new RangeError("makemore: gradient 'b1' must have 64 elements (f32[64]), got 3"),
    );
    expect((await run(['build', 'examples/makemore.ts', '--out', out, '--optimizer', 'rmsprop'])).err).toBe("graphc build: unknown optimizer 'rmsprop' (known: sgd, adam, adamw)\n");
  });
});

describe('the lifetime of returned arrays', () => {
  it('forward() never writes into the gradients valueAndGrad returned (every example, flat and wasm)', async () => {
    const { readdirSync } = await import('node:fs');
    const { randomArgs } = await import('./helpers.js');
    const { compile } = await import('../src/build.js');
    for (const name of readdirSync(path.join(ROOT, 'generated'))) {
      const c = await compile(path.join(ROOT, 'examples', `${name}.ts`), { targets: [] });
      for (const target of ['', '.wasm']) {
        const mod = (await import(pathToFileURL(path.join(ROOT, 'generated', name, `${name}${target}.js`)).href)) as GeneratedModule;
        const dims = { B: 5 };
        const a = randomArgs(c.fwd, 1, 0.5, dims);
        const b = randomArgs(c.fwd, 2, 0.5, dims);
        const { grads } = mod.valueAndGrad(a.params, a.inputs);
        const kept = Object.fromEntries(Object.entries(grads).map(([k, v]) => [k, Float32Array.from(v)]));
        mod.forward(b.params, b.inputs); // another batch, other params
        for (const k of Object.keys(kept)) expect(grads[k], `${name}${target} d${k}`).toEqual(kept[k]);
      }
    }
  });
});

describe('gradients with respect to inputs', () => {
  it("g.input(name, shape, 'f32', { grad: true }) adds the input's gradient to grads, against finite differences (flat and wasm)", async () => {
    const { compile } = await import('../src/build.js');
    const { lossAt, relErr } = await import('./helpers.js');
    const { printGraph } = await import('../ir/print.js');
    const { parseGraph } = await import('../ir/parse.js');
    const file = modelFile(`import { model } from 'graphc';
export default model('saliency', (g) => {
  const W = g.param('W', [3, 4], { scale: 0.5 });
  const x = g.input('x', [5, 3], 'f32', { grad: true });
  const y = g.input('y', [5], 'i32');
  const loss = g.crossEntropy(x.matmul(W).tanh(), y);
  return { loss };
});
`);
    const out = path.join(tmp(), 'saliency');
    expect((await run(['build', file, '--out', out, '--target', 'ts,wasm'])).code).toBe(0);
    const c = await compile(file, { targets: [] });
    expect(printGraph(c.fwd)).toContain('input {name="x", grad=true}');
    expect(printGraph(parseGraph(printGraph(c.fwd)))).toBe(printGraph(c.fwd));
    const W = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i + 1));
    const x = Float32Array.from({ length: 15 }, (_, i) => Math.cos(3 * i));
    const y = Int32Array.of(0, 3, 1, 2, 3);
    for (const target of ['', '.wasm']) {
      const mod = (await import(pathToFileURL(path.join(out, `saliency${target}.js`)).href)) as GeneratedModule;
      const { grads } = mod.valueAndGrad({ W }, { x, y });
      expect(Object.keys(grads)).toEqual(['W', 'x']);
      const fd = Float64Array.from(x, (_v, i) => {
        const h = 1e-4;
        const at = (d: number) => lossAt(c.fwd, { W }, { x: Float64Array.from(x, (v, j) => (j === i ? v + d : v)) as unknown as Float32Array, y });
        return (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / (12 * h);
      });
      expect(relErr(grads.x!, fd), target || 'flat').toBeLessThan(1e-4);
    }
  });

  it('an i32 input has no gradient: a located error', async () => {
    const r = await run(['build', modelFile(`import { model } from 'graphc';
export default model('bad', (g) => {
  const y = g.input('y', [5], 'i32', { grad: true });
  return { loss: g.oneHot(y, 3).sum() };
});
`), '--out', path.join(tmp(), 'bad')]);
    expect(r.code).toBe(1);
    expect(r.err.replace(/^\S*model\.ts:/, 'model.ts:')).toBe(
      "model.ts:3:15: error: input: 'y' is i32, which has no gradient\n  3 |   const y = g.input('y', [5], 'i32', { grad: true });\n    |               ^^^^^\n  fix: ask for the gradient of an f32 input; i32 inputs hold indices and labels\n",
    );
  });
});
