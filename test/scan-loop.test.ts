// g.scan as a real loop (issue #32): the flat and wasm modules (single-threaded and on 2 threads)
// run a scan's body once inside a `for` loop. Their values, loss and every gradient are held
// against the float64 interpreter (the reverse scan itself) and the same model unrolled by a `for`
// loop; a symbolic number of steps builds once and runs at several lengths; the module's size does
// not grow with the number of steps.

import { describe, expect, it } from 'vitest';
import { readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Graph } from '../ir/graph.js';
import { reverseMode } from '../ir/autodiff.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { compile, compileGraphs, lower, traceFile } from '../src/build.js';
import type { Target } from '../src/build.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { modelFile, randomArgs, reference, relErr, ROOT, run, tmp } from './helpers.js';

const HEAD = "import { model } from 'graphc';\n";
type Args = { params: Arrays; inputs: Arrays };
type Maybe<T> = T | Promise<T>;
interface Instance {
  forward(p: Arrays, i: Arrays): Maybe<Record<string, unknown>>;
  valueAndGrad(p: Arrays, i: Arrays): Maybe<{ loss: number; grads: Record<string, Float32Array> }>;
  destroy?(): void;
}
interface WasmModule extends Instance {
  create(o?: { threads?: number; minWork?: number; adapt?: boolean }): Promise<Instance & { destroy(): void }>;
}

/** An RNN over the steps of xs, written with g.scan (reverse, along axis 1) or with a for loop. */
function rnn(opts: { T: number | string; scan: boolean; reverse?: boolean; axis1?: boolean; sym?: boolean }): string {
  const { T } = opts;
  const Tq = typeof T === 'string' ? `'${T}'` : T;
  const xshape = opts.axis1 ? `[3, ${Tq}, 4]` : `[${Tq}, 3, 4]`;
  const step = `(h, x) => { const h2 = x.matmul(Wx).add(h.matmul(Wh)).add(b).tanh(); return [h2, h2.mul(h2).sum(1)]; }`;
  const axis = opts.axis1 ? 1 : 0;
  // the first step's y once more (a narrow needs a static axis: with a symbolic length, the last carry's sum)
  const first = opts.sym ? 'hT.sum()' : `ys.narrow(${axis}, 0, 1).sum()`;
  const body = opts.scan
    ? `const [hT, ys] = g.scan(${step}, h0, xs, { axis: ${axis}${opts.reverse ? ', reverse: true' : ''} });
    const loss = hT.square().mean().add(ys.mean().mul(0.5)).add(${first});`
    : `const f = ${step};
    let h = h0;
    const order = [...Array(${T}).keys()]${opts.reverse ? '.reverse()' : ''};
    const slots = new Array(${T});
    for (const t of order) { const [h2, y] = f(h, xs.narrow(${axis}, t, 1).reshape([3, 4])); h = h2; slots[t] = y; }
    const ys = g.stack(slots, ${axis});
    const hT = h;
    const loss = h.square().mean().add(ys.mean().mul(0.5)).add(${first});`;
  return `${HEAD}export default model('rnn', (g) => {
    const xs = g.input('xs', ${xshape});
    const h0 = g.input('h0', [3, 5]);
    const Wx = g.param('Wx', [4, 5], { scale: 0.5 });
    const Wh = g.param('Wh', [5, 5], { scale: 0.5 });
    const b = g.param('b', [5]);
    ${body}
    return { loss, ys };
  });\n`;
}

const lstmSrc = (steps: number, unrolled = false, hidden = 6) =>
  `import { lstm } from ${JSON.stringify(path.join(ROOT, 'examples', 'lstm.ts'))};\nexport default lstm({ batch: 3, steps: ${steps}, nEmbd: 4, nHidden: ${hidden}, vocab: 7 }, 'lstm', ${unrolled});\n`;

const nested = (scan: boolean) => `${HEAD}export default model('nest', (g) => {
  const xs = g.input('xs', [3, 4, 2, 5]);
  const W = g.param('W', [5, 5], { scale: 0.5 });
  const h0 = g.param('h0', [2, 5]);
  const inner = (h, x) => { const h2 = x.matmul(W).add(h).tanh(); return [h2, h2.sum()]; };
  const outer = (h, row) => {
    ${scan ? 'const [h2, ys] = g.scan(inner, h, row, { reverse: true });' : 'let h2 = h; const parts = []; for (let t = 3; t >= 0; t--) { const [n, y] = inner(h2, row.narrow(0, t, 1).reshape([2, 5])); h2 = n; parts[t] = y; } const ys = g.stack(parts, 0);'}
    return [h2.mul(0.5), ys.square().sum()];
  };
  ${scan ? 'const [hT, zs] = g.scan(outer, h0, xs);' : 'let hT = h0; const zp = []; for (let t = 0; t < 3; t++) { const [n, z] = outer(hT, xs.narrow(0, t, 1).reshape([4, 2, 5])); hT = n; zp.push(z); } const zs = g.stack(zp, 0);'}
  return { loss: hT.square().mean().add(zs.mean()) };
});\n`;

const traced = (src: string): Graph => traceFile(modelFile(src)).traced.graph;

/** The float64 interpreter on the traced graph: its outputs, and the gradients of its reverse scan (nothing unrolled). */
function interpreted(src: string, args: Args): { outputs: Record<string, Float64Array>; grads: Record<string, Float64Array> } {
  const fwd = traced(src);
  const bwd = reverseMode(fwd);
  const outputs = Object.fromEntries(Object.entries(outputsOf(fwd, interpret(fwd, args))).map(([k, v]) => [k, v.data]));
  return { outputs, grads: reference(fwd, bwd, args.params, args.inputs).grads };
}

/** The gradients of the model unrolled by a for loop (no scan), from the interpreter on its lowered graphs. */
function unrolledGrads(src: string, args: Args): Record<string, Float64Array> {
  const c = compileGraphs(modelFile(src), { targets: ['ts'] });
  expect(c.fwd.insts.some((i) => i.op === 'scan')).toBe(false);
  return reference(c.fwd, c.bwd, args.params, args.inputs).grads;
}

/** Builds the flat and wasm modules (and the GPU.js one, in gpu.js's cpu mode) and imports them: flat, wasm, and wasm on 2 threads. */
async function modules(src: string, targets: readonly Target[] = ['ts', 'wasm'], threads = true, gpuModes = ['cpu']): Promise<{ files: Map<string, string>; run: [string, Instance][]; close(): void }> {
  const c = await compile(modelFile(src), { targets });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const imp = async (f: string) => (await import(pathToFileURL(path.join(dir, f)).href)) as unknown;
  const flat = (await imp(`${c.name}.js`)) as Instance;
  const run: [string, Instance][] = [['flat', flat]];
  let threaded: (Instance & { destroy(): void }) | undefined;
  if (targets.includes('wasm')) {
    const wasm = (await imp(`${c.name}.wasm.js`)) as WasmModule;
    run.push(['wasm', wasm]);
    if (threads) {
      threaded = await wasm.create({ threads: 2, minWork: 0, adapt: false });
      run.push(['wasm 2 threads', threaded]);
    }
  }
  const gpus: Instance[] = [];
  if (targets.includes('gpu')) {
    const mod = (await imp(`${c.name}.gpu.js`)) as { create(o: { mode: string }): Promise<Instance & { mode: string }> };
    for (const mode of gpuModes) {
      const gpu = await mod.create({ mode });
      expect(gpu.mode).toBe(mode);
      gpus.push(gpu);
      run.push([`GPU.js (${mode} mode)`, gpu]);
    }
  }
  return {
    files: new Map(c.files.map((f) => [f.name, String(f.content)])),
    run,
    close: () => {
      threaded?.destroy();
      for (const gpu of gpus) gpu.destroy?.();
    },
  };
}

/** Loss, outputs and every gradient of each module against the float64 interpreter (and the unrolled loop's gradients). */
async function expectClose(run: [string, Instance][], want: ReturnType<typeof interpreted>, unrolled: Record<string, Float64Array> | undefined, args: Args): Promise<void> {
  for (const k of Object.keys(want.grads)) if (unrolled) expect(relErr(want.grads[k]!, unrolled[k]!), `unrolled ${k}`).toBeLessThan(1e-9);
  for (const [name, mod] of run) {
    const out = await mod.forward(args.params, args.inputs);
    for (const [k, v] of Object.entries(want.outputs)) {
      const got = out[k];
      expect(relErr(typeof got === 'number' ? [got] : Float64Array.from(got as Float32Array), v), `${name} output ${k}`).toBeLessThan(1e-5);
    }
    const vg = await mod.valueAndGrad(args.params, args.inputs);
    expect(relErr([vg.loss], want.outputs.loss!), `${name} loss`).toBeLessThan(1e-5);
    expect(Object.keys(vg.grads).sort()).toEqual(Object.keys(want.grads).sort());
    for (const k of Object.keys(want.grads)) expect(relErr(Float64Array.from(vg.grads[k]!), want.grads[k]!), `${name} d${k}`).toBeLessThan(1e-4);
    // the gradients outlive the call (until the next valueAndGrad): a forward() call leaves them as they are
    const kept = Object.fromEntries(Object.entries(vg.grads).map(([k, v]) => [k, Array.from(v)]));
    await mod.forward(args.params, args.inputs);
    for (const [k, v] of Object.entries(kept)) expect(Array.from(vg.grads[k]!), `${name} d${k} after a forward() call`).toEqual(v);
  }
}

/** Two scans one after the other closing over the same param (and, with `checkpoint`, the second checkpointed). */
const twoScans = (checkpoint?: number) => `${HEAD}export default model('two', (g) => {
  const xs = g.input('xs', [5, 2, 3]);
  const W = g.param('W', [3, 3], { scale: 0.5 });
  const a0 = g.input('a0', [2, 3]);
  const [a1] = g.scan((a, x) => { const n = a.matmul(W).add(x).tanh(); return [n, n]; }, a0, xs);
  const [a2] = g.scan((a, x) => { const n = a.matmul(W).sub(x).tanh(); return [n, n]; }, a1, xs${checkpoint ? `, { checkpoint: ${checkpoint} }` : ''});
  return { loss: a2.sum() };
});\n`;

/** The flat module runs the scan as a loop: its body once, no step's copy. */
function expectLoop(code: string, loops: number): void {
  expect(code.match(/\/\/ the loop of /g)?.length ?? 0).toBe(loops);
}

describe('a scan as a loop: the flat, wasm (1 and 2 threads) and GPU.js modules against the interpreter and the unrolled loop', () => {
  for (const variant of [{}, { reverse: true }, { axis1: true }, { reverse: true, axis1: true }])
    it(`an RNN ${JSON.stringify(variant)}`, async () => {
      const src = rnn({ T: 5, scan: true, ...variant });
      const args = randomArgs(traced(src), 3, 0.7);
      const m = await modules(src, ['ts', 'wasm', 'gpu']);
      try {
        // the forward loop and the reverse scan's loop, in each module (the GPU.js module: in each of its two pipelines)
        expectLoop(m.files.get('rnn.js')!, 2);
        expectLoop(m.files.get('rnn.wasm.js')!, 2);
        expectLoop(m.files.get('rnn.gpu.js')!, 3);
        await expectClose(m.run, interpreted(src, args), unrolledGrads(rnn({ T: 5, scan: false, ...variant }), args), args);
      } finally {
        m.close();
      }
    });

  it('the LSTM of examples/lstm.ts', async () => {
    const src = lstmSrc(5);
    const args = randomArgs(traced(src), 2, 0.5);
    const m = await modules(src, ['ts', 'wasm', 'gpu']);
    try {
      expectLoop(m.files.get('lstm.js')!, 2);
      await expectClose(m.run, interpreted(src, args), unrolledGrads(lstmSrc(5, true), args), args);
    } finally {
      m.close();
    }
  });

  it('a reverse scan inside a scan: a loop inside a loop', async () => {
    const src = nested(true);
    const args = randomArgs(traced(src), 8, 0.5);
    // the GPU.js module in gpu.js's webasm mode too (its fused executor over one wasm memory)
    const m = await modules(src, ['ts', 'wasm', 'gpu'], true, ['cpu', 'webasm']);
    try {
      const code = m.files.get('nest.js')!;
      // forward: outer and inner; backward: the reverse of each (the outer reverse body holds the inner scan's reverse and its recomputation)
      expect(code.match(/\/\/ the loop of /g)!.length).toBeGreaterThanOrEqual(4);
      expect(code).toMatch(/for \(let s\w* = 0; s\w* < 4; s\w*\+\+\) \{/);
      expect(m.files.get('nest.gpu.js')!).toMatch(/for \(let s\w* = 0; s\w* < 4; s\w*\+\+\) \{/);
      await expectClose(m.run, interpreted(src, args), unrolledGrads(nested(false), args), args);
    } finally {
      m.close();
    }
  });
});

describe("the gradients are the caller's until the next valueAndGrad", () => {
  // a gradient shared an array with a forward loop body's copy of W: forward() overwrote dW with W
  for (const checkpoint of [undefined, 2])
    it(`two scans over the same param${checkpoint ? ', the second checkpointed (k = 2 of 5 steps)' : ''}: a forward() call leaves them as they are`, async () => {
      const src = twoScans(checkpoint);
      const args = randomArgs(traced(src), 4, 0.7);
      const m = await modules(src, ['ts', 'wasm', 'gpu']);
      try {
        await expectClose(m.run, interpreted(src, args), undefined, args);
      } finally {
        m.close();
      }
    });
});

describe('a symbolic number of steps', () => {
  it('builds once (flat, wasm on one thread, GPU.js) and runs at 2, 3 and 6 steps', async () => {
    const src = rnn({ T: 'T', scan: true, axis1: true, sym: true });
    // a symbolic wasm module encodes its kernels per call's sizes, on one thread (docs/threads.md)
    const m = await modules(src, ['ts', 'wasm', 'gpu'], false);
    try {
      expectLoop(m.files.get('rnn.js')!, 2);
      expectLoop(m.files.get('rnn.gpu.js')!, 3);
      for (const T of [2, 3, 6]) {
        const args = randomArgs(traced(rnn({ T, scan: true, axis1: true, sym: true })), T, 0.7);
        await expectClose(m.run, interpreted(src, args), unrolledGrads(rnn({ T, scan: false, axis1: true, sym: true }), args), args);
      }
    } finally {
      m.close();
    }
  });
});

describe('the module size does not depend on the number of steps', () => {
  it('the LSTM at 64 steps: flat, wasm, GPU.js and WebGPU modules within 10% of those at 16 steps', async () => {
    const size = async (steps: number) => {
      const c = await compile(modelFile(lstmSrc(steps, false, 16)), { targets: ['ts', 'wasm', 'gpu', 'webgpu'] });
      return Object.fromEntries(c.files.filter((f) => f.name.endsWith('.js')).map((f) => [f.name, f.content.length]));
    };
    const [a, b] = [await size(16), await size(64)];
    for (const f of ['lstm.js', 'lstm.wasm.js']) expect(Math.abs(b[f]! - a[f]!) / a[f]!, f).toBeLessThan(0.1);
    // the GPU.js and WebGPU modules: the same kernels (shaders) and pipelines, only the sizes in them differ
    for (const f of ['lstm.gpu.js', 'lstm.webgpu.js']) expect(Math.abs(b[f]! - a[f]!) / a[f]!, f).toBeLessThan(0.01);
  });
});

/** An RNN with dropout in its step (a char-RNN's), scanned along axis 1 of [3, T, 4] xs. */
const dropRnn = (T: number | string) => `${HEAD}export default model('drnn', (g) => {
  const xs = g.input('xs', [3, ${typeof T === 'string' ? `'${T}'` : T}, 4]);
  const h0 = g.input('h0', [3, 5]);
  const Wx = g.param('Wx', [4, 5], { scale: 0.5 });
  const Wh = g.param('Wh', [5, 5], { scale: 0.5 });
  const [hT, ys] = g.scan((h, x) => { const h2 = g.dropout(x.matmul(Wx).add(h.matmul(Wh)).tanh(), 0.3); return [h2, h2.sum(1)]; }, h0, xs, { axis: 1 });
  return { loss: hT.square().mean().add(ys.square().mean()) };
});\n`;

/** Outputs and gradients of a graph pair from the float64 interpreter, in training with `seed` (or in evaluation). */
function trained(fwd: Graph, bwd: Graph, args: Args, seed?: number): { outputs: Record<string, Float64Array>; grads: Record<string, Float64Array> } {
  const mode = seed === undefined ? {} : { train: true, seed };
  const vals = interpret(fwd, { ...args, ...mode });
  const bv = interpret(bwd, { fwd: vals, ...mode });
  return {
    outputs: Object.fromEntries(Object.entries(outputsOf(fwd, vals)).map(([k, v]) => [k, v.data])),
    grads: Object.fromEntries(bwd.outputs.map((o) => [o.name, bv.get(bwd.value(o.value).name)!.data])),
  };
}

describe('dropout in the step of a scan over a symbolic length (a char-RNN with dropout)', () => {
  it('stays a loop: one build (flat, wasm) runs at 2 and 5 steps, in training against the interpreter and the unrolled steps, and in evaluation', async () => {
    const src = dropRnn('T');
    const m = await modules(src, ['ts', 'wasm'], false);
    try {
      expectLoop(m.files.get('drnn.js')!, 2);
      expectLoop(m.files.get('drnn.wasm.js')!, 2);
      for (const T of [2, 5]) {
        const args = randomArgs(traced(dropRnn(T)), T, 0.7);
        const seed = 11 + T;
        // the reverse scan (nothing unrolled), interpreted at this length with the module's masks
        const tf = traced(src);
        const want = trained(tf, reverseMode(tf), args, seed);
        // the same model unrolled into its steps (lower's loops: false): the same masks, the same gradients
        const uf = traced(dropRnn(T));
        const { bwd: ub } = lower(uf, { loops: false });
        expect(uf.insts.some((i) => i.op === 'scan')).toBe(false);
        const unrolled = trained(uf, ub, args, seed);
        expect(relErr(unrolled.outputs.loss!, want.outputs.loss!)).toBeLessThan(1e-12);
        for (const k of ['Wx', 'Wh']) expect(relErr(unrolled.grads[k]!, want.grads[k]!), `unrolled d${k}`).toBeLessThan(1e-9);
        const evaluation = trained(tf, reverseMode(tf), args);
        expect(Math.abs(evaluation.outputs.loss![0]! - want.outputs.loss![0]!)).toBeGreaterThan(1e-3); // the masks count
        for (const [name, mod] of m.run) {
          const o = { seed };
          const vg = await (mod.valueAndGrad as (p: Arrays, i: Arrays, o: object) => Maybe<{ loss: number; grads: Record<string, Float32Array> }>)(args.params, args.inputs, o);
          expect(relErr([vg.loss], want.outputs.loss!), `${name} loss at T = ${T}`).toBeLessThan(1e-5);
          for (const k of ['Wx', 'Wh']) expect(relErr(Float64Array.from(vg.grads[k]!), want.grads[k]!), `${name} d${k} at T = ${T}`).toBeLessThan(1e-4);
          const ev = await mod.forward(args.params, args.inputs);
          expect(relErr([ev.loss as number], evaluation.outputs.loss!), `${name} evaluation at T = ${T}`).toBeLessThan(1e-5);
        }
      }
    } finally {
      m.close();
    }
  });

  it('the module size does not depend on the number of steps: flat and wasm at 64 steps within 1% of 16', async () => {
    const size = async (T: number) => Object.fromEntries((await compile(modelFile(dropRnn(T)), { targets: ['ts', 'wasm'] })).files.filter((f) => f.name.endsWith('.js')).map((f) => [f.name, f.content.length]));
    const [a, b] = [await size(16), await size(64)];
    for (const f of ['drnn.js', 'drnn.wasm.js']) expect(Math.abs(b[f]! - a[f]!) / a[f]!, f).toBeLessThan(0.01);
  });
});

describe('a symbolic number of steps in a scan that unrolls (the scans of --hvp)', () => {
  const file = 'test/fixtures/scan/symbolic-dropout.ts';
  const message = `${file}:5:17: error: g.scan over the symbolic length T: this scan runs as its steps (the scans of --hvp and --jvp unroll on every target), which needs the number of steps at build time
  5 |   const [h] = g.scan((h, x) => [g.dropout(h.add(x).tanh(), 0.2), null], h0, xs);
    |                 ^^^^
  fix: give the scanned axis a size known at build time, or build without --hvp and --jvp: forward, valueAndGrad and the training step run a scan as a loop at any length
`;
  it('is a located build error with --hvp; without it the same scan (dropout in its step) builds for every target', async () => {
    const out = path.join(tmp(), 'out');
    const r = await run(['build', file, '--target', 'ts', '--hvp', '--out', out]);
    expect(r.err).toBe(message);
    expect(r.code).toBe(1);
    const ok = await run(['build', file, '--target', 'ts,gpu,webgpu', '--out', out]);
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
  });
});
