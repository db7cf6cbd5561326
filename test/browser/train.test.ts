// The GPU.js module's trainStep on a device: Chromium's WebGPU on SwiftShader (no GPU needed). The
// params and the optimizer state stay in device buffers between steps: a few steps of adam, of sgd
// with momentum and weight decay and of adamw with clipping follow the flat module's trainStep
// (≤ 1e-4), readParams and readOptState bring the params and the state back, and the only buffer
// the page maps for reading during the steps is the loss (every GPUBuffer.mapAsync is counted).

import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/build.js';
import type { Arrays } from '../helpers.js';
import { modelFile, randomArgs, relErr, ROOT, run } from '../helpers.js';
import { GROUPS_MODEL } from '../optim-reference.js';
import { harness, launch, type Session } from './chromium.js';

const MODEL = `import { model } from 'graphc';
export default model('mlp', (g) => {
  const W1 = g.param('W1', [6, 16], { scale: 0.4 });
  const b1 = g.param('b1', [16], { scale: 0.1 });
  const W2 = g.param('W2', [16, 5], { scale: 0.4 });
  const b2 = g.param('b2', [5], { scale: 0.1 });
  const x = g.input('x', [12, 6]);
  const y = g.input('y', [12], 'i32');
  const h = x.matmul(W1).add(b1).tanh();
  const loss = g.crossEntropy(h.matmul(W2).add(b2), y);
  return { loss };
});
`;

/** With dropout (masks from the step number) and batchnorm running statistics (buffers). */
const MODES_MODEL = `import { model } from 'graphc';
export default model('bn', (g) => {
  const W1 = g.param('W1', [6, 16], { scale: 0.4 });
  const gain = g.param('gain', [1, 16], { init: 'ones' });
  const bias = g.param('bias', [1, 16], { init: 'zeros' });
  const W2 = g.param('W2', [16, 5], { scale: 0.4 });
  const x = g.input('x', [12, 6]);
  const y = g.input('y', [12], 'i32');
  const hn = g.batchNorm(x.matmul(W1), gain, bias, { momentum: 0.1 });
  const h = g.dropout(hn.tanh(), 0.25);
  const loss = g.crossEntropy(h.matmul(W2), y);
  return { loss };
});
`;

/** SwiftShader runs WebGPU on the CPU: few steps. */
const STEPS = 8;

const CASES: [string, string[], string][] = [
  ['adam', ['--optimizer', 'adam', '--lr', '0.01'], MODEL],
  ['sgd', ['--optimizer', 'sgd', '--lr', '0.05', '--momentum', '0.9', '--weight-decay', '0.01'], MODEL],
  ['adamw', ['--optimizer', 'adamw', '--lr', '0.01', '--clip-grad-norm', '0.5'], MODEL],
  ['adam, dropout and batchnorm buffers', ['--optimizer', 'adam', '--lr', '0.01'], MODES_MODEL],
  // param groups (weight decays, lrScale, a frozen param) and a schedule: kernels per group, scalars per group
  ['adamw, param groups and a cosine schedule', ['--optimizer', 'adamw', '--lr', '0.01', '--no-decay-1d', '--clip-grad-norm', '0.5', '--schedule', 'cosine', '--warmup', '2', '--total-steps', '6'], GROUPS_MODEL],
];

type State = { step: number } & Record<string, unknown>;
interface FlatTrainer {
  hyper: { lr: number };
  initOptState(params: Arrays): State;
  trainStep(params: Arrays, state: object, inputs: Arrays, options?: { lr?: number; buffers?: Arrays }): { loss: number };
  initBuffers?(): Arrays;
}

/** What the page reports: losses, what came back, and every mapAsync (bytes) and writeBuffer (bytes) per step. */
interface PageRun {
  mode: string;
  loss: number[];
  params: Record<string, number[]>;
  state: { step: number } & Record<string, Record<string, number[]>>;
  reads: number[][];
  writes: number[][];
  /** Per step, the writes whose bytes are a host param's. */
  uploads: number[][];
  hostW1: number[];
  /** ms per trainStep, and per valueAndGrad (the pipeline, gradients read back) after the steps. */
  ms: number[];
  vag: number[];
  /** The running statistics after the steps (a model with buffers). */
  buffers?: Record<string, number[]>;
}

let s: Session;
let page: Page;
let errors: string[];

beforeAll(async () => {
  s = await launch({ webgpu: true });
  ({ page, errors } = await harness(s));
});
afterAll(async () => {
  await s?.close();
});

const plain = (a: Arrays) => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, Array.from(v)]));
const copy = (p: Arrays) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Float32Array.from(v)]));

/** In the page: `steps` trainSteps of the GPU.js module in webgpu mode, every read and write of a GPU buffer recorded per step. */
function trainInPage(p: Page, url: string, params: Record<string, number[]>, inputs: Record<string, number[]>, steps: number, lr: number): Promise<PageRun> {
  return p.evaluate(
    async ([url, params, inputs, steps, lr]) => {
      const g = globalThis as unknown as {
        GPUBuffer: { prototype: { mapAsync(mode: number, offset?: number, size?: number): Promise<void>; size: number } };
        GPUQueue: { prototype: { writeBuffer(b: unknown, o: number, data: ArrayBufferView | ArrayBuffer, dataOffset?: number, size?: number): void } };
      };
      // import() through a Function: vitest would rewrite a literal import() in this callback
      const mod = await (new Function('u', 'return import(u)') as (u: string) => Promise<any>)(url as string); // eslint-disable-line @typescript-eslint/no-explicit-any
      const model = await mod.create({ mode: 'webgpu' });
      const typed = (spec: Record<string, { dtype: string }>, v: Record<string, number[]>) =>
        Object.fromEntries(Object.entries(v).map(([k, a]) => [k, spec[k]!.dtype === 'i32' ? Int32Array.from(a) : Float32Array.from(a)]));
      const ps = typed(mod.spec.params, params as Record<string, number[]>);
      const ins = typed(mod.spec.inputs, inputs as Record<string, number[]>);
      const state = model.initOptState(ps);
      const buffers = mod.initBuffers?.();
      const reads: number[][] = [];
      const writes: number[][] = [];
      let r: number[] = [];
      let w: number[] = [];
      let up: number[] = [];
      const uploads: number[][] = [];
      const map = g.GPUBuffer.prototype.mapAsync;
      const write = g.GPUQueue.prototype.writeBuffer;
      g.GPUBuffer.prototype.mapAsync = function (mode, offset, size) {
        r.push(size ?? this.size - (offset ?? 0));
        return map.call(this, mode, offset, size);
      };
      // the host's params as bytes: a write that carries one is a param uploaded again
      const hostBytes = Object.values(ps).map((v) => new Uint8Array(v.buffer.slice(0)));
      g.GPUQueue.prototype.writeBuffer = function (b, o, data, dataOffset, size) {
        const unit = ArrayBuffer.isView(data) && 'BYTES_PER_ELEMENT' in data ? (data as Float32Array).BYTES_PER_ELEMENT : 1;
        const base = ArrayBuffer.isView(data) ? data.byteOffset : 0;
        const buf = ArrayBuffer.isView(data) ? data.buffer : data;
        const start = base + (dataOffset ?? 0) * unit;
        const bytes = size !== undefined ? size * unit : (ArrayBuffer.isView(data) ? data.byteLength : data.byteLength) - (dataOffset ?? 0) * unit;
        const view = new Uint8Array(buf, start, bytes);
        w.push(bytes);
        if (hostBytes.some((h) => h.length === view.length && h.every((x, k) => x === view[k]))) up.push(bytes);
        return write.call(this, b, o, data, dataOffset, size);
      };
      const loss: number[] = [];
      const ms: number[] = [];
      try {
        for (let t = 1; t <= (steps as number); t++) {
          r = [];
          w = [];
          up = [];
          const opts = { lr: t > (steps as number) / 2 ? (lr as number) / 2 : undefined, buffers }; // a schedule through options.lr
          const t0 = performance.now();
          loss.push((await model.trainStep(ps, state, ins, opts)).loss);
          ms.push(performance.now() - t0);
          reads.push(r);
          writes.push(w);
          uploads.push(up);
        }
      } finally {
        g.GPUBuffer.prototype.mapAsync = map;
        g.GPUQueue.prototype.writeBuffer = write;
      }
      const back = await model.readParams();
      const st = await model.readOptState();
      const out = Object.fromEntries(Object.entries(back).map(([k, v]) => [k, Array.from(v as Float32Array)]));
      const stOut: Record<string, unknown> = { step: st.step };
      for (const [k, v] of Object.entries(st)) if (k !== 'step') stOut[k] = Object.fromEntries(Object.entries(v as Record<string, Float32Array>).map(([q, a]) => [q, Array.from(a)]));
      // for comparison: the gradient pass alone as the host path runs it (pipeline, gradients read back)
      const vag: number[] = [];
      for (let k = 0; k < 3; k++) {
        const t0 = performance.now();
        await model.valueAndGrad(ps, ins, { buffers: mod.initBuffers?.() });
        vag.push(performance.now() - t0);
      }
      const mode = model.mode;
      model.destroy();
      return { mode, loss, params: out, state: stOut, reads, writes, uploads, ms, vag, buffers: buffers && Object.fromEntries(Object.entries(buffers).map(([k, v]) => [k, Array.from(v as Float32Array)])), hostW1: Array.from(ps.W1 as Float32Array) } as unknown as PageRun;
    },
    [url, params, inputs, steps, lr] as const,
  );
}

describe(`GPU.js trainStep in webgpu mode (SwiftShader): ${STEPS} steps on the device against the flat module`, () => {
  it.each(CASES)('%s', async (name, flags, source) => {
    const mname = /model\('(\w+)'/.exec(source)![1]!;
    const file = modelFile(source, `${mname}.ts`);
    const dir = name.replace(/[^a-z]+/g, '-');
    const out = path.join(ROOT, 'web-out', 'test-train', dir);
    mkdirSync(out, { recursive: true });
    const b = await run(['build', file, '--out', out, '--target', 'ts,gpu', ...flags]);
    expect(b.err).toBe('');
    const flat = (await import(pathToFileURL(path.join(out, `${mname}.js`)).href + `?${Date.now()}`)) as FlatTrainer;
    const compiled = await compile(file, { targets: [] });
    const { params, inputs } = randomArgs(compiled.fwd, 7);
    const lr = flat.hyper.lr;
    const a = copy(params);
    const sa = flat.initOptState(a);
    const want: number[] = [];
    const buffers = flat.initBuffers?.();
    for (let t = 1; t <= STEPS; t++) want.push(flat.trainStep(a, sa, inputs, { lr: t > STEPS / 2 ? lr / 2 : undefined, buffers }).loss);

    const got = await trainInPage(page, `/web-out/test-train/${dir}/${mname}.gpu.js`, plain(params), plain(inputs), STEPS, lr);
    expect(errors).toEqual([]);
    expect(got.mode).toBe('webgpu');
    got.loss.forEach((l, t) => expect(relErr([l], [want[t]!]), `loss at step ${t + 1}`).toBeLessThan(1e-4));
    for (const k of Object.keys(a)) expect(relErr(got.params[k]!, a[k]!), `param ${k}`).toBeLessThan(1e-4);
    expect(got.state.step).toBe(STEPS);
    for (const slot of Object.keys(sa).filter((k) => k !== 'step'))
      for (const k of Object.keys(sa[slot] as Arrays)) expect(relErr(got.state[slot]![k]!, (sa[slot] as Arrays)[k]!), `state ${slot}.${k}`).toBeLessThan(1e-4);
    if (buffers) for (const [k, v] of Object.entries(buffers)) expect(relErr(got.buffers![k]!, v), `buffer ${k}`).toBeLessThan(1e-4);
    expect(got.hostW1, "the caller's arrays are the first step's upload, not updated on the host").toEqual(Array.from(params.W1!));

    // the reads: one mapAsync a step, of the loss's 4 bytes; the params are uploaded by the first
    // step and never again
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
    console.log(
      `${name}: loss ${want[0]!.toFixed(4)} → ${want.at(-1)!.toFixed(4)}; reads per step ${JSON.stringify(got.reads.map((r) => r.length))}; ` +
        `bytes written per step ${JSON.stringify(got.writes.map((w) => w.reduce((x, y) => x + y, 0)))}; trainStep ${got.ms[0]!.toFixed(0)} ms (first), ` +
        `${median(got.ms.slice(1)).toFixed(1)} ms (median of the others); valueAndGrad ${median(got.vag).toFixed(1)} ms`,
    );
    // (and a model with buffers reads the next running statistics back, as the caller's buffers are updated in place)
    const readBytes = [...Object.values(buffers ?? {}).map((v) => v.length * 4), 4].sort((x, y) => x - y);
    for (const r of got.reads) expect([...r].sort((x, y) => x - y), 'bytes mapped for reading in one step').toEqual(readBytes);
    expect(got.uploads[0]!.sort(), 'the first step uploads every param').toEqual(Object.values(a).map((v) => v.length * 4).sort());
    for (const u of got.uploads.slice(1)) expect(u, 'params uploaded by a later step').toEqual([]);
  });
});

// steps not awaited: each runs after the one before, with its step number and scheduled rate
describe('GPU.js trainStep in webgpu mode: steps not awaited, with a warmup schedule', () => {
  it('three trainSteps and an applyGradients under Promise.all follow the flat module', async () => {
    const flags = ['--optimizer', 'adam', '--lr', '0.01', '--schedule', 'cosine', '--warmup', '10', '--total-steps', '80'];
    const file = modelFile(MODEL, 'mlp.ts');
    const out = path.join(ROOT, 'web-out', 'test-train', 'unawaited');
    mkdirSync(out, { recursive: true });
    const b = await run(['build', file, '--out', out, '--target', 'ts,gpu', ...flags]);
    expect(b.err).toBe('');
    type Flat = FlatTrainer & { applyGradients(params: Arrays, state: object, grads: Arrays): void };
    const flat = (await import(pathToFileURL(path.join(out, 'mlp.js')).href + `?${Date.now()}`)) as Flat;
    const compiled = await compile(file, { targets: [] });
    const { params } = randomArgs(compiled.fwd, 11);
    const batches = [1, 2, 3].map((k) => randomArgs(compiled.fwd, 20 + k).inputs);
    const grads = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float32Array.from(v, (_x, i) => Math.sin(i + k.length))]));
    const a = copy(params);
    const sa = flat.initOptState(a);
    const want = batches.map((x) => flat.trainStep(a, sa, x).loss);
    flat.applyGradients(a, sa, grads);
    const got = (await page.evaluate(
      async ([url, params, batches, grads]) => {
        const mod = await (new Function('u', 'return import(u)') as (u: string) => Promise<any>)(url as string); // eslint-disable-line @typescript-eslint/no-explicit-any
        const model = await mod.create({ mode: 'webgpu' });
        const typed = (spec: Record<string, { dtype: string }>, v: Record<string, number[]>) =>
          Object.fromEntries(Object.entries(v).map(([k, a]) => [k, spec[k]!.dtype === 'i32' ? Int32Array.from(a) : Float32Array.from(a)]));
        const ps = typed(mod.spec.params, params as Record<string, number[]>);
        const state = model.initOptState(ps);
        const steps = (batches as Record<string, number[]>[]).map((x) => model.trainStep(ps, state, typed(mod.spec.inputs, x)));
        const all = await Promise.all([...steps, model.applyGradients(ps, state, typed(mod.spec.params, grads as Record<string, number[]>))]);
        const st = await model.readOptState();
        const plainOf = (o: Record<string, Float32Array>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Array.from(v)]));
        const res = {
          mode: model.mode,
          loss: all.slice(0, 3).map((r: { loss: number }) => r.loss),
          params: plainOf(await model.readParams()),
          step: st.step,
          exp_avg: plainOf(st.exp_avg),
          exp_avg_sq: plainOf(st.exp_avg_sq),
        };
        model.destroy();
        return res;
      },
      [`/web-out/test-train/unawaited/mlp.gpu.js`, plain(params), batches.map(plain), plain(grads)] as const,
    )) as { mode: string; loss: number[]; params: Record<string, number[]>; step: number; exp_avg: Record<string, number[]>; exp_avg_sq: Record<string, number[]> };
    expect(errors).toEqual([]);
    expect(got.mode).toBe('webgpu');
    expect(relErr(got.loss, want)).toBeLessThan(1e-4);
    expect(got.step).toBe(4);
    for (const k of Object.keys(a)) {
      expect(relErr(got.params[k]!, a[k]!), `param ${k}`).toBeLessThan(1e-4);
      expect(relErr(got.exp_avg[k]!, (sa.exp_avg as Arrays)[k]!), `exp_avg.${k}`).toBeLessThan(1e-4);
      expect(relErr(got.exp_avg_sq[k]!, (sa.exp_avg_sq as Arrays)[k]!), `exp_avg_sq.${k}`).toBeLessThan(1e-4);
    }
  });
});

describe('GPU.js readOptState in webgpu mode: grad_accum and accum_count', () => {
  it('after accumulateGrad, and after a later trainStep on the device, as the flat module has them', async () => {
    const file = modelFile(MODEL, 'mlp.ts');
    const out = path.join(ROOT, 'web-out', 'test-train', 'accum');
    mkdirSync(out, { recursive: true });
    const b = await run(['build', file, '--out', out, '--target', 'ts,gpu', '--optimizer', 'adam', '--lr', '0.01']);
    expect(b.err).toBe('');
    type Flat = FlatTrainer & { accumulateGrad(params: Arrays, state: object, inputs: Arrays): { loss: number } };
    const flat = (await import(pathToFileURL(path.join(out, 'mlp.js')).href + `?${Date.now()}`)) as Flat;
    const compiled = await compile(file, { targets: [] });
    const { params } = randomArgs(compiled.fwd, 12);
    const batches = [1, 2, 3, 4].map((k) => randomArgs(compiled.fwd, 30 + k).inputs);
    const a = copy(params);
    const sa = flat.initOptState(a);
    flat.trainStep(a, sa, batches[0]!);
    flat.accumulateGrad(a, sa, batches[1]!);
    flat.accumulateGrad(a, sa, batches[2]!);
    const wantAcc = Object.fromEntries(Object.entries(sa.grad_accum as Arrays).map(([k, v]) => [k, Float32Array.from(v)]));
    flat.trainStep(a, sa, batches[3]!);
    type Read = { step: number; accum_count?: number; grad_accum?: Record<string, number[]> };
    const got = (await page.evaluate(
      async ([url, params, batches]) => {
        const mod = await (new Function('u', 'return import(u)') as (u: string) => Promise<any>)(url as string); // eslint-disable-line @typescript-eslint/no-explicit-any
        const model = await mod.create({ mode: 'webgpu' });
        const typed = (spec: Record<string, { dtype: string }>, v: Record<string, number[]>) =>
          Object.fromEntries(Object.entries(v).map(([k, a]) => [k, spec[k]!.dtype === 'i32' ? Int32Array.from(a) : Float32Array.from(a)]));
        const ps = typed(mod.spec.params, params as Record<string, number[]>);
        const ins = (batches as Record<string, number[]>[]).map((x) => typed(mod.spec.inputs, x));
        const state = model.initOptState(ps);
        const read = async () => {
          const st = await model.readOptState();
          return { step: st.step, accum_count: st.accum_count, grad_accum: st.grad_accum && Object.fromEntries(Object.entries(st.grad_accum as Record<string, Float32Array>).map(([k, v]) => [k, Array.from(v)])) };
        };
        await model.trainStep(ps, state, ins[0]);
        await model.accumulateGrad(ps, state, ins[1]);
        await model.accumulateGrad(ps, state, ins[2]);
        const afterAccum = await read().catch((e: Error) => e.message);
        await model.trainStep(ps, state, ins[3]);
        const afterStep = await read().catch((e: Error) => e.message);
        const mode = model.mode;
        model.destroy();
        return { mode, afterAccum, afterStep };
      },
      [`/web-out/test-train/accum/mlp.gpu.js`, plain(params), batches.map(plain)] as const,
    )) as { mode: string; afterAccum: Read | string; afterStep: Read | string };
    expect(errors).toEqual([]);
    expect(got.mode).toBe('webgpu');
    for (const [when, r, step] of [['after accumulateGrad', got.afterAccum, 1], ['after the next trainStep', got.afterStep, 2]] as const) {
      expect(typeof r, `${when}: ${String(r)}`).toBe('object');
      const st = r as Read;
      expect(st.step, when).toBe(step);
      expect(st.accum_count, when).toBe(2);
      for (const k of Object.keys(wantAcc)) expect(relErr(st.grad_accum![k]!, wantAcc[k]!), `${when}: grad_accum.${k}`).toBeLessThan(1e-4);
    }
  });
});
