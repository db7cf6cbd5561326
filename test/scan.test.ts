// g.scan (issue #32): a scanned model against the same model unrolled by a `for` loop, in the
// float64 interpreter (values and gradients), against finite differences, on the targets
// (which unroll scans today), the IR text's round trip and the errors a user can cause.

import { describe, expect, it } from 'vitest';
import type { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { parseGraph } from '../ir/parse.js';
import { printGraph } from '../ir/print.js';
import { verify } from '../ir/verify.js';
import * as path from 'node:path';
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { reverseMode } from '../ir/autodiff.js';
import { compile, compileGraphs, lower, traceFile } from '../src/build.js';
import { scansOf } from '../ir/loops.js';
import type { Arrays } from './helpers.js';
import { buildAndImport, finiteDiff, interpGrads, lossOf, MODEL_HEAD, modelFile, randomArgs, reference, relErr, rng, ROOT, tmp, tracedModel, writtenModules } from './helpers.js';

/** An RNN cell over T steps of x [T, B, F], written with g.scan and with a for loop; `same`: its y is its new carry. */
function rnn(opts: { T: number; scan: boolean; reverse?: boolean; axis1?: boolean; same?: boolean }): string {
  const { T } = opts;
  const xshape = opts.axis1 ? `[3, ${T}, 4]` : `[${T}, 3, 4]`;
  const step = `(h, x) => { const h2 = x.matmul(Wx).add(h.matmul(Wh)).add(b).tanh(); return [h2, ${opts.same ? 'h2' : 'h2.mul(h2).sum(1)'}]; }`;
  const body = opts.scan
    ? `const [hT, ys] = g.scan(${step}, h0, xs${opts.axis1 || opts.reverse ? `, { ${opts.axis1 ? 'axis: 1, ' : ''}${opts.reverse ? 'reverse: true' : ''} }` : ''});
    const loss = hT.square().mean().add(ys.mean().mul(0.5)).add(ys.${opts.axis1 ? 'narrow(1, 0, 1)' : 'narrow(0, 0, 1)'}.sum());`
    : `const f = ${step};
    let h = h0; const parts = [];
    const order = [...Array(${T}).keys()]${opts.reverse ? '.reverse()' : ''};
    const slots = new Array(${T});
    for (const t of order) { const x = xs.narrow(${opts.axis1 ? 1 : 0}, t, 1).reshape([3, 4]); const [h2, y] = f(h, x); h = h2; slots[t] = y; }
    const ys = g.stack(slots, ${opts.axis1 ? 1 : 0});
    const loss = h.square().mean().add(ys.mean().mul(0.5)).add(ys.${opts.axis1 ? 'narrow(1, 0, 1)' : 'narrow(0, 0, 1)'}.sum());`;
  return `${MODEL_HEAD}export default model('rnn', (g) => {
    const xs = g.input('xs', ${xshape});
    const h0 = g.input('h0', [3, 5]);
    const Wx = g.param('Wx', [4, 5], { scale: 0.5 });
    const Wh = g.param('Wh', [5, 5], { scale: 0.5 });
    const b = g.param('b', [5]);
    ${body}
    return { loss };
  });\n`;
}

describe('g.scan forward', () => {
  for (const variant of [{}, { reverse: true }, { axis1: true }, { reverse: true, axis1: true }])
    it(`equals the unrolled loop ${JSON.stringify(variant)}`, () => {
      const s = tracedModel(rnn({ T: 5, scan: true, ...variant }));
      const u = tracedModel(rnn({ T: 5, scan: false, ...variant }));
      expect(s.insts.some((i) => i.op === 'scan')).toBe(true);
      const args = randomArgs(u, 3);
      const a = lossOf(s, args);
      const b = lossOf(u, args);
      expect(relErr([a], [b])).toBeLessThan(1e-12);
    });

  it('prints its body once, parses back, verifies', () => {
    const s = tracedModel(rnn({ T: 5, scan: true }));
    verify(s);
    const text = printGraph(s);
    expect(text).toMatch(/= scan %h0, %xs, %Wx, %Wh, %b \{body=0, carries=1, length=\[5\], xaxes=\[0\], yaxes=\[0, 0\]\} @ model\.ts:\d+:\d+ \{/);
    expect(text.match(/= tanh/g)?.length).toBe(1);
    const back = parseGraph(text, { file: 'x.ir' });
    verify(back);
    expect(printGraph(back)).toBe(text);
    const args = randomArgs(s, 4);
    expect(lossOf(back, args)).toBe(lossOf(s, args));
  });
});

async function unrolledGrads(src: string, args: { params: Arrays; inputs: Arrays }): Promise<Record<string, Float64Array>> {
  const c = await compile(modelFile(src), { targets: ['ts'] });
  return reference(c.fwd, c.bwd, args.params, args.inputs).grads;
}

describe('g.scan gradients', () => {
  // same: the stored step values include a y (stacked along the scan's axis, here 1)
  for (const variant of [{}, { reverse: true }, { axis1: true }, { reverse: true, axis1: true }, { axis1: true, same: true }])
    it(`a reverse scan, equal to the unrolled loop's and to finite differences ${JSON.stringify(variant)}`, async () => {
      const srcS = rnn({ T: 4, scan: true, ...variant });
      const s = tracedModel(srcS);
      const args = randomArgs(s, 11);
      const { bwd, grads } = interpGrads(s, args);
      expect(bwd.insts.filter((i) => i.op === 'scan').length).toBe(1);
      const want = await unrolledGrads(rnn({ T: 4, scan: false, ...variant }), args);
      for (const k of ['Wx', 'Wh', 'b']) {
        expect(relErr(grads[k]!, want[k]!), k).toBeLessThan(1e-10);
        expect(Math.abs(grads[k]![1]! - finiteDiff(s, args.params, args.inputs, k, 1))).toBeLessThan(1e-7 * Math.max(1, Math.abs(grads[k]![1]!)));
      }
    });

  it('the flat, wasm and GPU.js modules give the unrolled loop\'s gradients', async () => {
    const srcS = rnn({ T: 6, scan: true, axis1: true });
    const c = await compile(modelFile(srcS), { targets: ['ts', 'wasm', 'gpu'] });
    // the flat, wasm and GPU.js modules run the scan as a loop (one lowering)
    expect(c.fwd.insts.some((i) => i.op === 'scan')).toBe(true);
    expect(c.files.find((f) => f.name === 'rnn.gpu.js')!.content).toContain('the loop of');
    expect(c.files.find((f) => f.name === 'rnn.js')!.content).toContain('the loop of');
    const load = writtenModules(c);
    const args = randomArgs(c.fwd, 5);
    const want = await unrolledGrads(rnn({ T: 6, scan: false, axis1: true }), args);
    const flat = await load('rnn.js');
    const wasm = await load('rnn.wasm.js');
    for (const [name, mod] of [['flat', flat], ['wasm', wasm]] as const) {
      const got = mod.valueAndGrad(args.params, args.inputs);
      for (const k of ['Wx', 'Wh', 'b']) expect(relErr(Float64Array.from(got.grads[k]!), want[k]!), `${name} ${k}`).toBeLessThan(1e-4);
    }
    const gpuMod = await load<{ create(o?: { mode?: string }): Promise<{ valueAndGrad(p: Arrays, i: Arrays): Promise<{ grads: Record<string, Float32Array> }>; destroy(): void }> }>('rnn.gpu.js');
    const gpu = await gpuMod.create({ mode: 'cpu' });
    const got = await gpu.valueAndGrad(args.params, args.inputs);
    for (const k of ['Wx', 'Wh', 'b']) expect(relErr(Float64Array.from(got.grads[k]!), want[k]!), `gpu ${k}`).toBeLessThan(1e-4);
    gpu.destroy();
  });
});

describe('examples/lstm.ts', () => {
  const cfg = '{ batch: 3, steps: 5, nEmbd: 4, nHidden: 6, vocab: 7 }';
  const src = (unrolled: boolean) => `import { lstm } from ${JSON.stringify(path.join(ROOT, 'examples', 'lstm.ts'))};\nexport default lstm(${cfg}, 'lstm', ${unrolled});\n`;

  it('has the gradients of the unrolled LSTM (reverse scan in the interpreter, and the flat module) and of finite differences', async () => {
    const s = tracedModel(src(false));
    expect(s.insts.filter((i) => i.op === 'scan').length).toBe(1);
    const args = randomArgs(s, 2, 0.5);
    const { grads } = interpGrads(s, args);
    const c = await compile(modelFile(src(true)), { targets: ['ts'] });
    const want = reference(c.fwd, c.bwd, args.params, args.inputs).grads;
    for (const k of Object.keys(want)) expect(relErr(grads[k]!, want[k]!), k).toBeLessThan(1e-10);
    for (const k of ['Wx', 'Wh', 'b', 'C'])
      for (const i of [0, 5]) expect(Math.abs(grads[k]![i]! - finiteDiff(s, args.params, args.inputs, k, i)), `${k}[${i}]`).toBeLessThan(1e-7);
    const { mod } = await buildAndImport(modelFile(src(false)));
    const got = mod.valueAndGrad(args.params, args.inputs);
    for (const k of Object.keys(want)) expect(relErr(Float64Array.from(got.grads[k]!), want[k]!), `module ${k}`).toBeLessThan(1e-4);
  });

  it("unrolled (lower(g, { loops: false })), builds a backward that reads the forward's steps instead of recomputing them", async () => {
    const count = (g: Graph, op: string) => g.insts.filter((i) => i.op === op).length;
    const unrolled = (file: string) => {
      const fwd = traceFile(file).traced.graph;
      return { fwd, bwd: lower(fwd, { loops: false }).bwd };
    };
    const s = unrolled(modelFile(src(false)));
    const u = unrolled(modelFile(src(true)));
    expect(count(s.fwd, 'scan')).toBe(0);
    expect(count(s.fwd, 'matmul')).toBe(count(u.fwd, 'matmul'));
    // the reverse scan's steps recompute the forward step; the unrolled backward reads the forward's
    // values instead (ir/scan.ts storedStep, then reuse-forward): 3 matmuls a step, not 4 (the loop's
    // first step multiplies the constant zero state, which the loop's passes fold: one more here)
    expect(count(s.bwd, 'matmul')).toBeLessThanOrEqual(count(u.bwd, 'matmul') + 1);
  });

  it('trains: SGD on one batch brings its loss down', async () => {
    const { mod } = await buildAndImport(modelFile(src(false)));
    const params = mod.initParams(1);
    const r = rng(3);
    const X = Int32Array.from({ length: 15 }, () => Math.floor(r() * 7));
    const inputs = { X, Y: Int32Array.from(X, (x) => (x + 1) % 7) };
    const first = mod.valueAndGrad(params, inputs).loss;
    let loss = first;
    for (let it = 0; it < 60; it++) {
      const { loss: l, grads } = mod.valueAndGrad(params, inputs);
      loss = l;
      for (const [k, d] of Object.entries(grads)) params[k]!.forEach((v, i, a) => (a[i] = v - 0.5 * d[i]!));
    }
    expect(loss).toBeLessThan(0.5 * first);
  });
});

describe('g.scan nested, and differentiated inside the model', () => {
  const nested = (scan: boolean) => `${MODEL_HEAD}export default model('nest', (g) => {
    const xs = g.input('xs', [3, 4, 2, 5]);
    const W = g.param('W', [5, 5], { scale: 0.5 });
    const h0 = g.param('h0', [2, 5]);
    const inner = (h, x) => { const h2 = x.matmul(W).add(h).tanh(); return [h2, h2.sum()]; };
    const outer = (h, row) => {
      ${scan ? 'const [h2, ys] = g.scan(inner, h, row);' : 'let h2 = h; const parts = []; for (let t = 0; t < 4; t++) { const [n, y] = inner(h2, row.narrow(0, t, 1).reshape([2, 5])); h2 = n; parts.push(y); } const ys = g.stack(parts, 0);'}
      return [h2.mul(0.5), ys.square().sum()];
    };
    ${scan ? 'const [hT, zs] = g.scan(outer, h0, xs);' : 'let hT = h0; const zp = []; for (let t = 0; t < 3; t++) { const [n, z] = outer(hT, xs.narrow(0, t, 1).reshape([4, 2, 5])); hT = n; zp.push(z); } const zs = g.stack(zp, 0);'}
    return { loss: hT.square().mean().add(zs.mean()) };
  });\n`;

  it('a scan inside a scan: values and gradients of the unrolled loops (the reverse scan holds a reverse scan)', async () => {
    const s = tracedModel(nested(true));
    const args = randomArgs(s, 8, 0.5);
    const u = tracedModel(nested(false));
    expect(relErr([lossOf(s, args)], [lossOf(u, args)])).toBeLessThan(1e-12);
    const { bwd, grads } = interpGrads(s, args);
    const rev = bwd.insts.find((i) => i.op === 'scan')!;
    expect(bwd.bodies[(rev as { attrs: { body: number } }).attrs.body]!.insts.some((i) => i.op === 'scan')).toBe(true);
    const want = await unrolledGrads(nested(false), args);
    for (const k of ['W', 'h0']) expect(relErr(grads[k]!, want[k]!), k).toBeLessThan(1e-10);
    const { mod } = await buildAndImport(modelFile(nested(true)));
    const got = mod.valueAndGrad(args.params, args.inputs);
    for (const k of ['W', 'h0']) expect(relErr(Float64Array.from(got.grads[k]!), want[k]!), `module ${k}`).toBeLessThan(1e-4);
  });

  it('g.grad of a scan inside the model (a reverse scan in the forward graph, differentiated again)', async () => {
    const m = (scan: boolean) => `${MODEL_HEAD}export default model('gg', (g) => {
      const xs = g.input('xs', [4, 2, 3]);
      const W = g.param('W', [3, 3], { scale: 0.5 });
      const h0 = g.param('h0', [2, 3]);
      const step = (h, x) => { const h2 = x.matmul(W).add(h).tanh(); return [h2, null]; };
      ${scan ? 'const [hT] = g.scan(step, h0, xs);' : 'let hT = h0; for (let t = 0; t < 4; t++) hT = step(hT, xs.narrow(0, t, 1).reshape([2, 3]))[0];'}
      const [dh0] = g.grad(hT.square().sum(), [h0]);
      return { loss: dh0.square().sum().add(hT.sum()) };
    });\n`;
    const s = tracedModel(m(true));
    const args = randomArgs(s, 9, 0.5);
    expect(s.insts.filter((i) => i.op === 'scan').length).toBe(2);
    const { grads } = interpGrads(s, args);
    const want = await unrolledGrads(m(false), args);
    for (const k of ['W', 'h0']) expect(relErr(grads[k]!, want[k]!), k).toBeLessThan(1e-10);
    expect(Math.abs(grads.W![2]! - finiteDiff(s, args.params, args.inputs, 'W', 2))).toBeLessThan(1e-7);
  });
});

describe('g.scan with a custom gradient in the step', () => {
  const m = (scan: boolean) => `${MODEL_HEAD}export default model('cg', (g) => {
    const xs = g.input('xs', [4, 2, 3]);
    const W = g.param('W', [3, 3], { scale: 0.5 });
    const h0 = g.param('h0', [2, 3]);
    // softplus with its gradient written by hand (sigmoid): the true one, so the loop agrees
    const softplus = g.customGrad((x) => x.exp().add(1).log(), ([x], y, dy) => [dy.mul(x.sigmoid())]);
    const step = (h, x) => { const h2 = softplus(x.matmul(W).add(h)).mul(0.5); return [h2, h2.sum(1)]; };
    ${scan ? 'const [hT, ys] = g.scan(step, h0, xs);' : 'let hT = h0; const parts = []; for (let t = 0; t < 4; t++) { const [n, y] = step(hT, xs.narrow(0, t, 1).reshape([2, 3])); hT = n; parts.push(y); } const ys = g.stack(parts, 0);'}
    return { loss: hT.square().sum().add(ys.mean()) };
  });\n`;

  it("moves the rule into the region: the reverse scan, the module and the loop's gradients agree", async () => {
    const s = tracedModel(m(true));
    expect(s.bodies[0]!.rules.length).toBe(1);
    const args = randomArgs(s, 6, 0.5);
    const { grads } = interpGrads(s, args);
    const want = await unrolledGrads(m(false), args);
    for (const k of ['W', 'h0']) expect(relErr(grads[k]!, want[k]!), k).toBeLessThan(1e-10);
    const { mod } = await buildAndImport(modelFile(m(true)));
    const got = mod.valueAndGrad(args.params, args.inputs);
    for (const k of ['W', 'h0']) expect(relErr(Float64Array.from(got.grads[k]!), want[k]!), `module ${k}`).toBeLessThan(1e-4);
  });
});

describe('scan in IR text', () => {
  it('a region of IR text that draws a dropout mask over a symbolic length: the build error names it (g.scan draws masks outside the step)', () => {
    const g = parseGraph(`graph forward m {
  %xs: f32[T,2] = input {name="xs"}
  %a: f32[2] = param {name="a", init="randn", scale=1}
  %s: f32[0] = scan %a, %xs {body=0, carries=1, length=["T"], xaxes=[0], yaxes=[0]} {
    %c0: f32[2] = input {name="c0"}
    %x0: f32[2] = input {name="x0"}
    %m: f32[2] = dropout_mask {p=0.5, site=0}
    %c1: f32[2] = mul %c0, %m
    %c2: f32[2] = add %c1, %x0
    return c0=%c2, s0=%c0
  }
  %h: f32[2] = scan_out %s {index=0}
  %l: f32[] = sum %h {axes=[0], keepDims=false}
  return loss=%l
}
`, { file: 'm.ir' });
    expect(() => lower(g)).toThrow(
      "g.scan over the symbolic length T: this scan runs as its steps (a region that draws dropout masks or reads the module's state, as IR text may hold, unrolls on every target), which needs the number of steps at build time",
    );
  });
  const text = (body: string, attrs = 'body=0, carries=1, length=[3], xaxes=[], yaxes=[0]') => `graph forward m {
  %a: f32[2] = param {name="a", init="randn", scale=1}
  %s: f32[0] = scan %a {${attrs}} {
    %c0: f32[2] = input {name="c0"}
${body}
  }
  %h: f32[2] = scan_out %s {index=0}
  %l: f32[] = sum %h {axes=[0], keepDims=false}
  return loss=%l
}
`;
  it('parses a well-formed region and evaluates it', () => {
    const g = parseGraph(text('    %c1: f32[2] = tanh %c0\n    return c0=%c1, s0=%c0'), { file: 'm.ir' });
    verify(g);
    const out = outputsOf(g, interpret(g, { params: { a: [0.5, -1] } })).loss!.data[0]!;
    expect(out).toBeCloseTo(Math.tanh(Math.tanh(Math.tanh(0.5))) + Math.tanh(Math.tanh(Math.tanh(-1))), 12);
  });
  it('rejects a body that changes the carry, and a far body index, with located errors', () => {
    expect(() => parseGraph(text('    %c1: f32[] = sum %c0 {axes=[0], keepDims=false}\n    return c0=%c1, s0=%c0'), { file: 'm.ir' })).toThrow('scan carry 0 enters as f32[2] but the body returns f32[]');
    expect(() => parseGraph(text('    return c0=%c0, s0=%c0', 'body=99999, carries=1, length=[3], xaxes=[], yaxes=[0]'), { file: 'm.ir' })).toThrow('scan body #99999 is far past the 0 bodies before it');
  });
});

describe('hvp and jvp through g.scan', () => {
  it('--hvp and --jvp graphs of a scanned model compute those of the unrolled loop', async () => {
    const { lowerDerived } = await import('../src/build.js');
    for (const kind of ['hvp', 'jvp'] as const) {
      const s = lowerDerived(tracedModel(rnn({ T: 4, scan: true, reverse: true })), kind).fwd;
      const u = lowerDerived(tracedModel(rnn({ T: 4, scan: false, reverse: true })), kind).fwd;
      const args = randomArgs(s, 12, 0.5);
      const a = outputsOf(s, interpret(s, args));
      const b = outputsOf(u, interpret(u, args));
      expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
      for (const k of Object.keys(b)) expect(relErr(a[k]!.data, b[k]!.data), `${kind} ${k}`).toBeLessThan(1e-10);
    }
  });
});

describe('dropout in a scan step', () => {
  const m = `${MODEL_HEAD}export default model('dr', (g) => {
    const xs = g.input('xs', [4, 3, 5]);
    const W = g.param('W', [5, 5], { scale: 0.5 });
    const h0 = g.param('h0', [3, 5]);
    const [hT, ys] = g.scan((h, x) => { const h2 = g.dropout(x.matmul(W).add(h).tanh(), 0.3); return [h2, h2.sum(1)]; }, h0, xs);
    return { loss: hT.square().sum().add(ys.square().mean()) };
  });\n`;

  it('draws a mask per step; the reverse scan, the unrolled backward and the module agree in training', async () => {
    const s = tracedModel(m);
    const args = randomArgs(s, 21, 0.5);
    const env = { ...args, train: true, seed: 5 };
    // the reverse scan, interpreted (each step's mask drawn again from its site)
    const tf = s.clone();
    const tb = reverseMode(tf);
    const tv = interpret(tf, env);
    const tg = interpret(tb, { fwd: tv, train: true, seed: 5 });
    const gradsOf = (bwd: Graph, vals: Map<string, { data: Float64Array }>) => Object.fromEntries(bwd.outputs.map((o) => [o.name, vals.get(bwd.value(o.value).name)!.data]));
    // the build: the scan stays a loop; one mask stacked over the 4 steps, drawn outside the step
    // (a slice per step, an x of the scan), read by the backward from the forward
    const c = await compile(modelFile(m), { targets: ['ts'] });
    const masks = c.fwd.insts.filter((i) => i.op === 'dropout_mask');
    expect(masks.map((i) => c.fwd.type(i.result).shape)).toEqual([[4, 3, 5]]);
    expect(c.fwd.insts.some((i) => i.op === 'scan')).toBe(true);
    expect(c.bwd.insts.some((i) => i.op === 'dropout_mask')).toBe(false);
    // its statistics: zeros at rate p, each step's slice a mask of its own
    const mask = interpret(c.fwd, env).get(c.fwd.value(masks[0]!.result).name)!.data;
    expect(mask.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-12)).toBe(true);
    const steps = [0, 1, 2, 3].map((t) => Array.from(mask.subarray(t * 15, t * 15 + 15)).join());
    expect(new Set(steps).size).toBe(4);
    const uv = interpret(c.fwd, env);
    expect(relErr(outputsOf(c.fwd, uv).loss!.data, outputsOf(tf, tv).loss!.data)).toBeLessThan(1e-12);
    const ug = gradsOf(c.bwd, interpret(c.bwd, { fwd: uv, train: true, seed: 5 }));
    const want = gradsOf(tb, tg);
    for (const k of ['W', 'h0']) expect(relErr(ug[k]!, want[k]!), k).toBeLessThan(1e-10);
    const { mod } = await buildAndImport(modelFile(m));
    const got = (mod.valueAndGrad as (p: Arrays, i: Arrays, o: object) => { loss: number; grads: Record<string, Float32Array> })(args.params, args.inputs, { seed: 5 });
    expect(relErr([got.loss], outputsOf(tf, tv).loss!.data)).toBeLessThan(1e-5);
    for (const k of ['W', 'h0']) expect(relErr(Float64Array.from(got.grads[k]!), want[k]!), `module ${k}`).toBeLessThan(1e-4);
    // evaluation: masks of ones, as outside a scan
    const ev = outputsOf(tf, interpret(tf, args)).loss!.data[0]!;
    expect(relErr([mod.forward(args.params, args.inputs).loss as number], [ev])).toBeLessThan(1e-5);
  });
});

describe('dropout in the steps of nested scans', () => {
  const m = `${MODEL_HEAD}export default model('nd', (g) => {
    const xs = g.input('xs', [3, 4, 2, 5]);
    const W = g.param('W', [5, 5], { scale: 0.5 });
    const h0 = g.param('h0', [2, 5]);
    const inner = (h, x) => { const h2 = g.dropout(x.matmul(W).add(h).tanh(), 0.4); return [h2, h2.sum()]; };
    const outer = (h, row) => { const [h2, ys] = g.scan(inner, h, row, { reverse: true }); return [g.dropout(h2.mul(0.5), 0.2), ys.square().sum()]; };
    const [hT, zs] = g.scan(outer, h0, xs);
    return { loss: hT.square().mean().add(zs.mean()) };
  });\n`;

  it('each scan draws its masks outside its step (the inner one stacked over both scans); the module loops and gives the reverse scans\' values in training', async () => {
    const s = tracedModel(m);
    expect(s.insts.filter((i) => i.op === 'dropout_mask').map((i) => s.type(i.result).shape)).toEqual([[3, 4, 2, 5], [3, 2, 5]]);
    expect(scansOf(s).map(({ g, inst }) => g.bodies[inst.attrs.body]!.insts.filter((i) => i.op === 'dropout_mask').length)).toEqual([0, 0]);
    const args = randomArgs(s, 3, 0.5);
    const env = { ...args, train: true, seed: 9 };
    const tf = s.clone();
    const tb = reverseMode(tf);
    const tv = interpret(tf, env);
    const bv = interpret(tb, { fwd: tv, train: true, seed: 9 });
    const c = await compile(modelFile(m), { targets: ['ts'] });
    expect(c.fwd.insts.some((i) => i.op === 'scan') && c.bwd.insts.some((i) => i.op === 'scan')).toBe(true);
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const mod = (await import(pathToFileURL(path.join(dir, 'nd.js')).href)) as { valueAndGrad(p: Arrays, i: Arrays, o: object): { loss: number; grads: Record<string, Float32Array> } };
    const got = mod.valueAndGrad(args.params, args.inputs, { seed: 9 });
    expect(relErr([got.loss], outputsOf(tf, tv).loss!.data)).toBeLessThan(1e-5);
    for (const o of tb.outputs) expect(relErr(Float64Array.from(got.grads[o.name]!), bv.get(tb.value(o.value).name)!.data), o.name).toBeLessThan(1e-4);
  });
});

describe('a symbolic number of steps', () => {
  const m = (T: string) => `${MODEL_HEAD}export default model('sym', (g) => {
    const xs = g.input('xs', [${T}, 2, 3]);
    const W = g.param('W', [3, 3], { scale: 0.5 });
    const h0 = g.param('h0', [2, 3]);
    const [hT, ys] = g.scan((h, x) => { const h2 = x.matmul(W).add(h).tanh(); return [h2, h2.sum(1)]; }, h0, xs);
    return { loss: hT.square().sum().add(ys.square().sum()) };
  });\n`;
  it('verifies, and the interpreter and the reverse scan run it at the length the inputs bring', async () => {
    const s = tracedModel(m("'T'"));
    const scan = s.insts.find((i) => i.op === 'scan')!;
    expect((scan.attrs as { length: unknown[] }).length).toEqual(['T']);
    verify(s);
    for (const T of [3, 5]) {
      const st = tracedModel(m(String(T)));
      const args = randomArgs(st, T);
      expect(relErr([lossOf(s, args)], [lossOf(st, args)])).toBeLessThan(1e-12);
      expect(relErr(interpGrads(s, args).grads.W!, interpGrads(st, args).grads.W!)).toBeLessThan(1e-12);
    }
  });
});

describe('batchNorm and layerNorm in a scan step', () => {
  const m = (scan: boolean) => `${MODEL_HEAD}export default model('bn', (g) => {
    const xs = g.input('xs', [3, 6, 4]);
    const W = g.param('W', [4, 4], { scale: 0.5 });
    const gain = g.param('gain', [4]);
    const bias = g.param('bias', [4]);
    const h0 = g.param('h0', [6, 4]);
    const step = (h, x) => { const h2 = g.layerNorm(g.batchNorm(x.matmul(W), gain, bias).add(h).tanh(), gain, bias); return [h2, h2.sum(1)]; };
    ${scan ? 'const [hT, ys] = g.scan(step, h0, xs);' : 'let hT = h0; const parts = []; for (let t = 0; t < 3; t++) { const [n, y] = step(hT, xs.narrow(0, t, 1).reshape([6, 4])); hT = n; parts.push(y); } const ys = g.stack(parts, 0);'}
    return { loss: hT.square().sum().add(ys.square().mean()) };
  });\n`;
  it("the reverse scan (fused normalisations in the body) and the built graphs give the loop's gradients", async () => {
    const s = tracedModel(m(true));
    const args = randomArgs(s, 4, 0.5);
    const { grads } = interpGrads(s, args);
    const want = await unrolledGrads(m(false), args);
    for (const k of ['W', 'gain', 'bias', 'h0']) expect(relErr(grads[k]!, want[k]!), k).toBeLessThan(1e-9);
    const c = await compile(modelFile(m(true)), { targets: ['ts'] });
    const got = reference(c.fwd, c.bwd, args.params, args.inputs).grads;
    // the scan stays a loop: the normalisations are fused in its body
    expect(scansOf(c.fwd).some(({ g, inst }) => g.bodies[inst.attrs.body]!.insts.some((i) => i.op === 'bn_apply'))).toBe(true);
    for (const k of ['W', 'gain', 'bias', 'h0']) expect(relErr(got[k]!, want[k]!), `built ${k}`).toBeLessThan(1e-9);
  });
});
