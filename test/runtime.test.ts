// The generated modules at run time: arguments are checked before any work, with errors that
// name the tensor, what was expected and what came; --check-finite names the first non-finite
// value and the DSL line that made it.

import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
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

describe('argument keys', () => {
  it('names a misspelled key with the missing one', () => {
    const a = args();
    const { Xb, ...rest } = a.inputs;
    expect(() => makemore.forward(a.params, { ...rest, Xs: Xb! })).toThrow(
      new TypeError("makemore: missing input 'Xb' (i32[32,3]); the inputs have 'Xs', which is not an input of makemore (its inputs: Xb, Yb)"),
    );
    const { W1, ...ps } = a.params;
    expect(() => makemore.valueAndGrad({ ...ps, w1: W1!, W_1: W1! }, a.inputs)).toThrow(
      new TypeError("makemore: missing param 'W1' (f32[30,64]); the params have 'w1', 'W_1', which are not a param of makemore (its params: C, W1, b1, W2, b2, bngain, bnbias)"),
    );
    // keys that are no argument are otherwise ignored
    expect(() => makemore.forward(a.params, { ...a.inputs, extra: new Int32Array(1) })).not.toThrow();
  });

  it('says when a missing input is needed only for some outputs (the labels, for the loss)', () => {
    const a = args();
    expect(() => makemore.forward(a.params, { Xb: a.inputs.Xb! })).toThrow(
      new TypeError(
        "makemore: missing input 'Yb' (i32[32]); only the output 'loss' depends on it, but every call computes all outputs: pass one (zeros will do) when you want only the others",
      ),
    );
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

  it('throw in the GPU.js module with --check-finite, naming the argument or the result', async () => {
    const out = path.join(tmp(), 'gpu-checked');
    expect((await run(['build', modelFile(source), '--out', out, '--target', 'gpu', '--check-finite'])).code).toBe(0);
    const g = (await import(pathToFileURL(path.join(out, 'nan.gpu.js')).href)) as { create(o: { mode: string }): Promise<GeneratedModule> };
    const m = await g.create({ mode: 'cpu' });
    const why = '(the GPU.js module checks its arguments and results, not each step: the flat module built with --check-finite names the first value)';
    await expect(m.valueAndGrad(params, inputs)).rejects.toThrow(new RangeError(`nan: NaN in loss[0], returned by valueAndGrad ${why} (built with --check-finite)`));
    await expect(m.forward(params, inputs)).rejects.toThrow(new RangeError(`nan: NaN in output 'loss'[0], returned by forward ${why} (built with --check-finite)`));
    await expect(m.valueAndGrad({ x: Float32Array.of(1, NaN, 3, 4) }, inputs)).rejects.toThrow(new RangeError("nan: NaN in param 'x'[1], passed in (built with --check-finite)"));
    expect((await m.valueAndGrad({ x: Float32Array.of(1, 2, 3, 4) }, inputs)).loss).toBeCloseTo(10, 4);
  });

  it("the GPU.js module's results are new arrays each call, as its header says", async () => {
    const out = path.join(tmp(), 'gpu-fresh');
    expect((await run(['build', modelFile(source), '--out', out, '--target', 'gpu'])).code).toBe(0);
    const file = path.join(out, 'nan.gpu.js');
    expect(readFileSync(file, 'utf8')).toContain('// The kernels are compiled once, in create(); every call of forward and valueAndGrad returns new\n// arrays (read back from the device), which later calls leave as they are.\n');
    const g = (await import(pathToFileURL(file).href)) as { create(o: { mode: string }): Promise<GeneratedModule> };
    const m = await g.create({ mode: 'cpu' });
    const first = await m.valueAndGrad({ x: Float32Array.of(1, 2, 3, 4) }, inputs);
    const kept = Float32Array.from(first.grads.x!);
    const second = await m.valueAndGrad({ x: Float32Array.of(4, 3, 2, 1) }, inputs);
    expect(second.grads.x).not.toBe(first.grads.x);
    expect(first.grads.x).toEqual(kept);
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
    expect(() => m.update(params, grads, -1)).toThrow(new RangeError('makemore: lr, the learning rate, must be ≥ 0, got -1'));
    expect(() => m.update(params, grads, '0.1' as unknown as number)).toThrow(new TypeError("makemore: the learning rate must be a finite number, got the string '0.1'"));
    expect(() => m.update(params, { ...grads, b1: new Float32Array(3) }, 0.1)).toThrow(
      new RangeError("makemore: gradient 'b1' must have 64 elements (f32[64]), got 3"),
    );
    expect((await run(['build', 'examples/makemore.ts', '--out', out, '--optimizer', 'nadam'])).err).toBe("graphc build: unknown optimizer 'nadam' (known: sgd, adam, adamw, rmsprop, adagrad, lion)\n");
  });
});

const PROTO = `import { model } from 'graphc';
// names that every object inherits: params, inputs and the optimizer state keyed by them must work
export default model('proto', (g) => {
  const a = g.param('constructor', [3], { scale: 0.5 });
  const b = g.param('toString', [3], { scale: 0.5 });
  const x = g.input('__proto__', [3]);
  const y = g.input('valueOf', [3]);
  return { loss: a.mul(x).add(b).mul(y).square().sum() };
});
`;

type Trainer = GeneratedModule & {
  initOptState(p: Arrays): { step: number; exp_avg: Record<string, Float32Array>; exp_avg_sq: Record<string, Float32Array> };
  trainStep(p: Arrays, s: object, i: Arrays, o?: { lr?: unknown }): { loss: number } | Promise<{ loss: number }>;
  hvp?(p: Arrays, i: Arrays, v: Arrays): { loss: number };
};

describe("names an object inherits, arrays of another realm, the learning rate's type and sign", () => {
  it('params and inputs named constructor, toString, __proto__, valueOf; a Float32Array from a vm context; lr -1 and \'0.1\' (flat, wasm, GPU.js)', async () => {
    const out = path.join(tmp(), 'proto');
    const r = await run(['build', modelFile(PROTO, 'proto.ts'), '--out', out, '--target', 'ts,wasm,gpu', '--optimizer', 'adam', '--hvp']);
    expect(r.err).toBe('');
    const flat = (await import(pathToFileURL(path.join(out, 'proto.js')).href)) as Trainer;
    const wasm = (await import(pathToFileURL(path.join(out, 'proto.wasm.js')).href)) as Trainer;
    const gpuModule = (await import(pathToFileURL(path.join(out, 'proto.gpu.js')).href)) as { create(o: object): Promise<Trainer>; initParams: Trainer['initParams'] };
    const gpu = Object.assign(await gpuModule.create({ mode: 'cpu' }), { initParams: gpuModule.initParams });
    const own = (entries: [string, Float32Array][]) => {
      const o: Record<string, Float32Array> = {};
      for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
      return o;
    };
    const params = () => own([['constructor', Float32Array.of(1, 2, 3)], ['toString', Float32Array.of(0.5, -1, 2)]]);
    const inputs = () => own([['__proto__', Float32Array.of(2, 1, -1)], ['valueOf', Float32Array.of(1, -2, 0.5)]]);
    // Σ ((a·x + b)·y)²
    const want = [0, 1, 2].reduce((s, i) => s + (([1, 2, 3][i]! * [2, 1, -1][i]! + [0.5, -1, 2][i]!) * [1, -2, 0.5][i]!) ** 2, 0);
    for (const [name, m] of [['flat', flat], ['wasm', wasm], ['gpu', gpu]] as const) {
      const call = async (p: Arrays, i: Arrays) => (await m.valueAndGrad(p, i)).loss;
      expect(await call(params(), inputs()), name).toBeCloseTo(want, 4);
      expect(Object.keys(m.initParams(0)), name).toEqual(['constructor', 'toString']);
      // a missing one is missing, not Object.prototype's member; other keys of the prototype's names are ignored
      const { toString: _t, ...noToString } = params();
      await expect(call(noToString, inputs()), name).rejects.toThrow(new TypeError("proto: missing param 'toString' (f32[3])"));
      await expect(call(params(), own([['valueOf', Float32Array.of(1, 2, 3)]])), name).rejects.toThrow(new TypeError("proto: missing input '__proto__' (f32[3])"));
      await expect(call(params(), own([['__proto__', Float32Array.of(1, 2, 3)]])), name).rejects.toThrow(new TypeError("proto: missing input 'valueOf' (f32[3])"));
      expect(await call(own([...Object.entries(params()), ['hasOwnProperty', new Float32Array(1)]]), inputs()), name).toBeCloseTo(want, 4);
      // typed arrays of another realm
      const foreign = own([['constructor', runInNewContext('Float32Array.of(1, 2, 3)') as Float32Array], ['toString', Float32Array.of(0.5, -1, 2)]]);
      expect(foreign.constructor instanceof Float32Array).toBe(false);
      expect(await call(foreign, inputs()), `${name} another realm`).toBeCloseTo(want, 4);
      await expect(call(own([['constructor', new Float64Array(3) as unknown as Float32Array], ['toString', Float32Array.of(0.5, -1, 2)]]), inputs()), name).rejects.toThrow(
        new TypeError("proto: param 'constructor' must be Float32Array (f32[3]), got Float64Array"),
      );
      // the optimizer state keyed by them; the learning rate's sign and type
      const p = params();
      const state = m.initOptState(p);
      expect((await m.trainStep(p, state, inputs())).loss, name).toBeCloseTo(want, 4);
      expect(state.step).toBe(1);
      const { toString: _s, ...partial } = state.exp_avg;
      await expect((async () => m.trainStep(p, { ...state, exp_avg: partial }, inputs()))(), name).rejects.toThrow(new TypeError("proto: missing optimizer state 'exp_avg.toString' (f32[3])"));
      await expect((async () => m.trainStep(p, state, inputs(), { lr: -1 }))(), name).rejects.toThrow(new RangeError('proto: lr, the learning rate, must be ≥ 0, got -1'));
      await expect((async () => m.trainStep(p, state, inputs(), { lr: '0.1' }))(), name).rejects.toThrow(new TypeError("proto: the learning rate must be a finite number, got the string '0.1'"));
      expect(state.step, `${name}: a refused step changes nothing`).toBe(1);
      if (m.hvp) expect(m.hvp(params(), inputs(), own([['constructor', new Float32Array(3)], ['toString', new Float32Array(3)]])).loss, `${name} hvp`).toBeCloseTo(want, 4);
    }
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
        const options = { buffers: (mod as { initBuffers?: () => object }).initBuffers?.() };
        const { grads } = (mod.valueAndGrad as (p: Arrays, i: Arrays, o: object) => ReturnType<GeneratedModule['valueAndGrad']>)(a.params, a.inputs, options);
        const kept = Object.fromEntries(Object.entries(grads).map(([k, v]) => [k, Float32Array.from(v)]));
        (mod.forward as (p: Arrays, i: Arrays, o: object) => unknown)(b.params, b.inputs, options); // another batch, other params
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
