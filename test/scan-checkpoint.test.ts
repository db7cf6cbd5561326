// g.scan's `checkpoint: k` (issue #32): the carry stored every k steps, each segment's steps
// recomputed by the reverse pass (ir/scan-checkpoint.ts). Gradients against the scan without
// checkpoint, the float64 interpreter, finite differences and the flat and wasm modules; how many
// carries the backward reads; dropout's masks in the recomputation; g.grad and hvp through it.

import { describe, expect, it } from 'vitest';
import { reverseMode } from '../ir/autodiff.js';
import type { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { parseGraph } from '../ir/parse.js';
import { printGraph } from '../ir/print.js';
import type { InstOf } from '../ir/types.js';
import { verify } from '../ir/verify.js';
import { compile } from '../src/build.js';
import type { Arrays } from './helpers.js';
import { buildAndImport, finiteDiff, interpGrads, lossOf, MODEL_HEAD, modelFile, randomArgs, relErr, tracedModel, writtenModules } from './helpers.js';

interface Rnn {
  T: number;
  checkpoint?: number;
  reverse?: boolean;
  axis1?: boolean;
  B?: number;
  H?: number;
}

/** An RNN cell over T steps of xs [T, B, 4] (or [B, T, 4] with axis1), written with g.scan. */
function rnn(o: Rnn): string {
  const B = o.B ?? 3;
  const H = o.H ?? 5;
  const xshape = o.axis1 ? `[${B}, ${o.T}, 4]` : `[${o.T}, ${B}, 4]`;
  const opts = [o.axis1 ? 'axis: 1' : '', o.reverse ? 'reverse: true' : '', o.checkpoint !== undefined ? `checkpoint: ${o.checkpoint}` : ''].filter((s) => s).join(', ');
  return `${MODEL_HEAD}export default model('rnn', (g) => {
    const xs = g.input('xs', ${xshape});
    const h0 = g.input('h0', [${B}, ${H}]);
    const Wx = g.param('Wx', [4, ${H}], { scale: 0.5 });
    const Wh = g.param('Wh', [${H}, ${H}], { scale: 0.5 });
    const b = g.param('b', [${H}]);
    const step = (h, x) => { const h2 = x.matmul(Wx).add(h.matmul(Wh)).add(b).tanh(); return [h2, h2.mul(h2).sum(1)]; };
    const [hT, ys] = g.scan(step, h0, xs${opts ? `, { ${opts} }` : ''});
    const w = g.const([${[...Array(o.T).keys()].map((t) => ((t * 7) % 5) - 2).join(', ')}]).reshape(${o.axis1 ? `[1, ${o.T}]` : `[${o.T}, 1]`});
    const loss = hT.square().mean().add(ys.mul(w).mean());
    return { loss };
  });\n`;
}

const scans = (g: Graph) => g.insts.filter((i): i is InstOf<'scan'> => i.op === 'scan');

describe('checkpoint: k, in the float64 interpreter', () => {
  for (const variant of [{}, { reverse: true }, { axis1: true }, { reverse: true, axis1: true }])
    for (const k of [1, 2, 3, 7])
      it(`T = 7, k = ${k} ${JSON.stringify(variant)}: the values and gradients of the scan without checkpoint, and finite differences`, () => {
        const plain = tracedModel(rnn({ T: 7, ...variant }));
        const s = tracedModel(rnn({ T: 7, checkpoint: k, ...variant }));
        // k = 1 stores every carry: the plain scan; otherwise segments, and a last one when k ∤ 7
        expect(scans(s).length).toBe(k === 1 ? 1 : k === 7 ? 1 : 2);
        if (k > 1) expect(s.bodies[scans(s)[0]!.attrs.body]!.insts.some((i) => i.op === 'scan')).toBe(true);
        const args = randomArgs(plain, 11 + k, 0.7);
        expect(lossOf(s, args)).toBe(lossOf(plain, args));
        const want = interpGrads(plain, args).grads;
        const { grads } = interpGrads(s, args);
        for (const name of ['Wx', 'Wh', 'b', 'h0', 'xs']) expect(relErr(grads[name] ?? [], want[name] ?? []), name).toBeLessThan(1e-13);
        for (const name of ['Wx', 'Wh', 'b']) expect(Math.abs(grads[name]![1]! - finiteDiff(s, args.params, args.inputs, name, 1)), name).toBeLessThan(1e-7 * Math.max(1, Math.abs(grads[name]![1]!)));
      });
});

describe('checkpoint: k, stored values', () => {
  /** The floats of the stored carries (scan_carries) the backward reads from the forward. */
  const storedRead = (bwd: Graph) =>
    bwd.insts.filter((i) => i.op === 'fwd' && i.attrs.name.startsWith('scan_carries')).reduce((s, i) => s + (bwd.type(i.result).shape as number[]).reduce((a, d) => a * d, 1), 0);
  /** The stored carries of a reverse body's scans (the recomputed segment's): their floats. */
  const storedInside = (bwd: Graph) =>
    scans(bwd).flatMap((r) =>
      bwd.bodies[r.attrs.body]!.insts.filter((i) => i.op === 'scan_out' && bwd.bodies[r.attrs.body]!.value(i.result).name.startsWith('scan_carries')).map((i) => bwd.bodies[r.attrs.body]!.type(i.result).shape as number[]),
    );

  it('T = 64, k = 8: the backward reads 8 stored carries, not 64; a reverse step stores the 8 of its segment', () => {
    const B = 3;
    const H = 5;
    const plain = reverseMode(tracedModel(rnn({ T: 64, B, H })));
    expect(storedRead(plain)).toBe(64 * B * H);
    expect(storedInside(plain)).toEqual([]);
    const ck = reverseMode(tracedModel(rnn({ T: 64, B, H, checkpoint: 8 })));
    expect(storedRead(ck)).toBe(8 * B * H);
    expect(storedInside(ck)).toEqual([[8, B, H]]);
    // k ∤ T: the segments' starts and the last segment's carries
    const odd = reverseMode(tracedModel(rnn({ T: 64, B, H, checkpoint: 10 })));
    expect(storedRead(odd)).toBe((6 + 4) * B * H);
  });

  it('prints as a scan whose region holds the inner scan, parses back, verifies', () => {
    const s = tracedModel(rnn({ T: 6, checkpoint: 3 }));
    verify(s);
    const text = printGraph(s);
    expect(text).toMatch(/= scan %h0, %\w+, %Wx, %Wh, %b \{body=0, carries=1, length=\[2\], xaxes=\[0\], yaxes=\[0, 0\]\} @ model\.ts:\d+:\d+ \{/);
    expect(text).toMatch(/ {4}%\w+: f32\[0\] = scan %c0, %x0, %Wx, %Wh, %b \{body=0, carries=1, length=\[3\], xaxes=\[0\], yaxes=\[0, 0\]\}/);
    expect(text.match(/= tanh/g)?.length).toBe(1);
    const back = parseGraph(text, { file: 'x.ir' });
    verify(back);
    expect(printGraph(back)).toBe(text);
    const args = randomArgs(s, 4);
    expect(lossOf(back, args)).toBe(lossOf(s, args));
  });
});

describe('checkpoint: k on the flat and wasm modules', () => {
  it("T = 7, k = 3, reverse, axis 1: the float64 interpreter's gradients, within float32 rounding", async () => {
    const src = rnn({ T: 7, checkpoint: 3, reverse: true, axis1: true });
    const s = tracedModel(src);
    const args = randomArgs(s, 5, 0.7);
    const want = interpGrads(s, args).grads;
    const c = await compile(modelFile(src), { targets: ['ts', 'wasm'] });
    expect(c.fwd.insts.some((i) => i.op === 'scan'), 'the flat and wasm modules run the scans as loops').toBe(true);
    const load = writtenModules(c);
    const plainC = await compile(modelFile(rnn({ T: 7, reverse: true, axis1: true })), { targets: ['ts', 'wasm'] });
    const loadPlain = writtenModules(plainC);
    for (const file of ['rnn.js', 'rnn.wasm.js']) {
      const mod = await load(file);
      const plainMod = await loadPlain(file);
      const got = mod.valueAndGrad(args.params, args.inputs);
      const base = plainMod.valueAndGrad(args.params, args.inputs);
      for (const k of ['Wx', 'Wh', 'b']) {
        expect(relErr(Float64Array.from(got.grads[k]!), want[k]!), `${file} ${k}`).toBeLessThan(1e-5);
        expect(relErr(Float64Array.from(got.grads[k]!), Float64Array.from(base.grads[k]!)), `${file} ${k} vs no checkpoint`).toBeLessThan(1e-5);
      }
    }
  });
});

describe('checkpoint: k with dropout in the step', () => {
  const m = `${MODEL_HEAD}export default model('dr', (g) => {
    const xs = g.input('xs', [5, 3, 4]);
    const W = g.param('W', [4, 4], { scale: 0.5 });
    const h0 = g.param('h0', [3, 4]);
    const [hT, ys] = g.scan((h, x) => { const h2 = g.dropout(x.matmul(W).add(h).tanh(), 0.4); return [h2, h2.sum(1)]; }, h0, xs, { checkpoint: 2 });
    return { loss: hT.square().sum().add(ys.square().mean()) };
  });\n`;

  it('draws a mask per step; the recomputed segments draw the same masks (reverse scans, unrolled backward and module agree)', async () => {
    const s = tracedModel(m);
    const args = randomArgs(s, 21, 0.5);
    const env = { ...args, train: true, seed: 7 };
    const tf = s.clone();
    const tb = reverseMode(tf);
    const tv = interpret(tf, env);
    const gradsOf = (bwd: Graph, vals: Map<string, { data: Float64Array }>) => Object.fromEntries(bwd.outputs.map((o) => [o.name, vals.get(bwd.value(o.value).name)!.data]));
    const want = gradsOf(tb, interpret(tb, { fwd: tv, train: true, seed: 7 }));
    // the masks (one stacked over the steps, sliced by segment) are those of the scan without checkpoint
    const plain = tracedModel(m.replace(', { checkpoint: 2 }', ''));
    expect(plain.insts.filter((i) => i.op === 'scan')).toHaveLength(1);
    const pb = reverseMode(plain);
    const pv = interpret(plain, env);
    expect(relErr(outputsOf(plain, pv).loss!.data, outputsOf(tf, tv).loss!.data)).toBeLessThan(1e-12);
    const pg = gradsOf(pb, interpret(pb, { fwd: pv, train: true, seed: 7 }));
    for (const k of ['W', 'h0']) expect(relErr(pg[k]!, want[k]!), `without checkpoint ${k}`).toBeLessThan(1e-10);
    // the build: one mask stacked over the 5 steps (a slice per step), drawn before the forward
    // pass; the backward (its recomputed segments too) reads it from the forward instead of drawing it
    const c = await compile(modelFile(m), { targets: ['ts'] });
    const masks = c.fwd.insts.filter((i) => i.op === 'dropout_mask');
    expect(masks.map((i) => c.fwd.type(i.result).shape)).toEqual([[5, 3, 4]]);
    expect(c.bwd.insts.some((i) => i.op === 'dropout_mask')).toBe(false);
    const uv = interpret(c.fwd, env);
    expect(relErr(outputsOf(c.fwd, uv).loss!.data, outputsOf(tf, tv).loss!.data)).toBeLessThan(1e-12);
    const ug = gradsOf(c.bwd, interpret(c.bwd, { fwd: uv, train: true, seed: 7 }));
    for (const k of ['W', 'h0']) expect(relErr(ug[k]!, want[k]!), k).toBeLessThan(1e-10);
    const { mod } = await buildAndImport(modelFile(m));
    const got = (mod.valueAndGrad as (p: Arrays, i: Arrays, o: object) => { loss: number; grads: Record<string, Float32Array> })(args.params, args.inputs, { seed: 7 });
    expect(relErr([got.loss], outputsOf(tf, tv).loss!.data)).toBeLessThan(1e-5);
    for (const k of ['W', 'h0']) expect(relErr(Float64Array.from(got.grads[k]!), want[k]!), `module ${k}`).toBeLessThan(1e-4);
  });
});

describe('checkpoint: k under g.grad and hvp', () => {
  const gg = (ck: string) => `${MODEL_HEAD}export default model('gg', (g) => {
    const xs = g.input('xs', [5, 2, 3]);
    const W = g.param('W', [3, 3], { scale: 0.5 });
    const h0 = g.param('h0', [2, 3]);
    const step = (h, x) => { const h2 = x.matmul(W).add(h).tanh(); return [h2, null]; };
    const [hT] = g.scan(step, h0, xs${ck});
    const [dh0] = g.grad(hT.square().sum(), [h0]);
    return { loss: dh0.square().sum().add(hT.sum()) };
  });\n`;

  it('g.grad of a checkpointed scan inside the model, differentiated again: the gradients without checkpoint', () => {
    const s = tracedModel(gg(', { checkpoint: 2 }'));
    const p = tracedModel(gg(''));
    const args = randomArgs(p, 9, 0.5);
    expect(lossOf(s, args)).toBe(lossOf(p, args));
    const { grads } = interpGrads(s, args);
    const want = interpGrads(p, args).grads;
    for (const k of ['W', 'h0']) expect(relErr(grads[k]!, want[k]!), k).toBeLessThan(1e-12);
    expect(Math.abs(grads.W![2]! - finiteDiff(s, args.params, args.inputs, 'W', 2))).toBeLessThan(1e-7);
  });

  it('--hvp and --jvp of a checkpointed scan compute those without checkpoint', async () => {
    const { lowerDerived } = await import('../src/build.js');
    for (const kind of ['hvp', 'jvp'] as const) {
      const s = lowerDerived(tracedModel(rnn({ T: 5, checkpoint: 2, reverse: true })), kind).fwd;
      const u = lowerDerived(tracedModel(rnn({ T: 5, reverse: true })), kind).fwd;
      const args = randomArgs(s, 12, 0.5);
      const a = outputsOf(s, interpret(s, args));
      const b = outputsOf(u, interpret(u, args));
      expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
      for (const k of Object.keys(b)) expect(relErr(a[k]!.data, b[k]!.data), `${kind} ${k}`).toBeLessThan(1e-10);
    }
  });
});

describe('checkpoint: k with several carries, and without xs', () => {
  const lstm = (ck: string) => `${MODEL_HEAD}export default model('ls', (g) => {
    const xs = g.input('xs', [2, 7, 3]);
    const Wx = g.param('Wx', [3, 16], { scale: 0.5 });
    const Wh = g.param('Wh', [4, 16], { scale: 0.5 });
    const c0 = g.param('c0', [2, 4]);
    const cell = ([h, c], x) => {
      const gates = x.matmul(Wx).add(h.matmul(Wh));
      const c2 = gates.narrow(1, 4, 4).sigmoid().mul(c).add(gates.narrow(1, 0, 4).sigmoid().mul(gates.narrow(1, 8, 4).tanh()));
      const h2 = gates.narrow(1, 12, 4).sigmoid().mul(c2.tanh());
      return [[h2, c2], h2];
    };
    const [[hT, cT], hs] = g.scan(cell, [c0.tanh(), c0], xs, { axis: 1${ck} });
    return { loss: hs.square().mean().add(cT.sum()).add(hT.mean()) };
  });\n`;
  const noXs = (ck: string) => `${MODEL_HEAD}export default model('nx', (g) => {
    const W = g.param('W', [3, 3], { scale: 0.5 });
    const h0 = g.param('h0', [2, 3]);
    const [hT, ys] = g.scan((h) => { const h2 = h.matmul(W).tanh(); return [h2, h2.sum()]; }, h0, null, { length: 5${ck} });
    return { loss: hT.square().sum().add(ys.mul(g.const([1, -2, 3, -4, 5])).sum()) };
  });\n`;
  for (const [name, m] of [['two carries (an LSTM cell), axis 1', lstm], ['xs null, { length: 5 }', noXs]] as const)
    it(`${name}: the gradients without checkpoint`, () => {
      const p = tracedModel(m(''));
      const args = randomArgs(p, 3, 0.6);
      const want = interpGrads(p, args).grads;
      for (const k of [2, 3]) {
        const s = tracedModel(m(`, checkpoint: ${k}`));
        expect(s.bodies[scans(s)[0]!.attrs.body]!.insts.some((i) => i.op === 'scan')).toBe(true);
        expect(lossOf(s, args)).toBe(lossOf(p, args));
        const { grads } = interpGrads(s, args);
        for (const g of Object.keys(want)) expect(relErr(grads[g]!, want[g]!), `k=${k} ${g}`).toBeLessThan(1e-13);
      }
    });
});

describe('checkpoint: k with a symbolic batch', () => {
  const m = (ck: string) => `${MODEL_HEAD}export default model('sb', (g) => {
    const xs = g.input('xs', [5, 'B', 3]);
    const W = g.param('W', [3, 3], { scale: 0.5 });
    const U = g.param('U', [3, 3], { scale: 0.5 });
    const h0 = g.input('h0', ['B', 3]);
    const [hT, ys] = g.scan((h, x) => { const h2 = x.matmul(W).add(h.matmul(U)).tanh(); return [h2, h2.sum(1)]; }, h0, xs${ck});
    return { loss: hT.square().mean().add(ys.mean()) };
  });\n`;
  it('T = 5, k = 2 over [5, B, 3]: one build, the gradients without checkpoint at B = 2 and 4, and the flat module', async () => {
    const s = tracedModel(m(', { checkpoint: 2 }'));
    const p = tracedModel(m(''));
    const c = await compile(modelFile(m(', { checkpoint: 2 }')), { targets: ['ts'] });
    const mod = await writtenModules(c)('sb.js');
    for (const B of [2, 4]) {
      const args = randomArgs(p, B, 0.6, { B });
      const want = interpGrads(p, args).grads;
      const { grads } = interpGrads(s, args);
      for (const k of ['W', 'U']) expect(relErr(grads[k]!, want[k]!), `B=${B} ${k}`).toBeLessThan(1e-13);
      const got = mod.valueAndGrad(args.params, args.inputs);
      for (const k of ['W', 'U']) expect(relErr(Float64Array.from(got.grads[k]!), want[k]!), `module B=${B} ${k}`).toBeLessThan(1e-4);
    }
  });
});

describe('checkpoint: k with a custom gradient in the step', () => {
  const m = (ck: string) => `${MODEL_HEAD}export default model('cg', (g) => {
    const xs = g.input('xs', [5, 2, 3]);
    const W = g.param('W', [3, 3], { scale: 0.5 });
    const h0 = g.param('h0', [2, 3]);
    // softplus with a hand-written gradient that is twice the true one: the rule must be the one applied
    const softplus = g.customGrad((x) => x.exp().add(1).log(), ([x], y, dy) => [dy.mul(x.sigmoid()).mul(2)]);
    const [hT, ys] = g.scan((h, x) => { const h2 = softplus(x.matmul(W).add(h)).mul(0.5); return [h2, h2.sum(1)]; }, h0, xs${ck});
    return { loss: hT.square().sum().add(ys.mean()) };
  });\n`;
  it("T = 5, k = 2 (a last segment of one step): the rule's gradients, as without checkpoint", () => {
    const p = tracedModel(m(''));
    const s = tracedModel(m(', { checkpoint: 2 }'));
    expect(scans(s).length).toBe(2);
    const args = randomArgs(p, 6, 0.5);
    const want = interpGrads(p, args).grads;
    const { grads } = interpGrads(s, args);
    for (const k of ['W', 'h0']) expect(relErr(grads[k]!, want[k]!), k).toBeLessThan(1e-13);
    // the doubled rule: not the true gradient
    expect(Math.abs(grads.W![1]! - finiteDiff(s, args.params, args.inputs, 'W', 1))).toBeGreaterThan(1e-4);
  });
});
