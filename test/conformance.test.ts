// The conformance matrix (issue #29, item 5): every op of the op table (ir/ops.ts) × every target
// (the flat module, the wasm SIMD module, the wasm module's threaded instance on 2 threads with
// every kernel that can split split, the GPU.js module in gpu.js's cpu mode) against the float64
// interpreter (ir/interp.ts). Each case (test/conformance-cases.ts, a table keyed by op name:
// an op without an entry is a type error there) builds a value y with the IR builder; the
// matrix adds an input R and the loss Σ y·R (summed by rows first), compiles the graph in
// process (the passes, autodiff, fusion and the memory plan of `graphc build`, no CLI) and
// checks on every target: forward's y and loss, valueAndGrad's loss and gradients, and the
// buffers a training call updates; a case with symbolic sizes at its own, then 1, then 13.
// Tolerances are float32 rounding (FLOOR, OVER_F32 below);
// where the float32 interpreter gives NaN or ±∞ the target must give the same. Each case must
// keep its op through the passes, and every fusion group of its graphs lowers to one kernel or
// one routine of the kernel form (test/fusion-kernel.ts). docs/compiler.md: how to add a case.

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Builder } from '../ir/builder.js';
import { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import type { OpKind } from '../ir/ops.js';
import { OPS } from '../ir/ops.js';
import { indent } from '../codegen/module.js';
import { emitTs } from '../codegen/ts.js';
import { emitWasm } from '../codegen/wasm.js';
import { emitGpu } from '../codegen/gpu.js';
import { LOWERING } from '../codegen/kernel/rules.js';
import type { Arrays } from './helpers.js';
import { tmp } from './helpers.js';
import type { Case } from './conformance-cases.js';
import type { Built } from './conformance-build.js';
import { buildCase, expectClose, initBuffers, referenceOf, sizesOf } from './conformance-build.js';
import { CASES, casesOf } from './conformance-cases.js';
import { checkFusionLowering } from './fusion-kernel.js';
import { jsLoopSteps } from './wasm-steps.js';

type Options = { train?: boolean; seed?: number; buffers?: Record<string, Float32Array> };
type Out = Record<string, number | Float32Array>;
type VG = { loss: number; grads: Record<string, Float32Array> };
interface SyncModule {
  forward(p: Arrays, i: Arrays, o?: Options): Out;
  valueAndGrad(p: Arrays, i: Arrays, o?: Options): VG;
  initBuffers?(): Record<string, Float32Array>;
}
interface WasmModule extends SyncModule {
  create(o: { threads: number; minWork: number; adapt: boolean }): Promise<SyncModule & { destroy(): Promise<void>; threads: number }>;
}
interface GpuModule {
  create(o: { mode: string }): Promise<{ forward(p: Arrays, i: Arrays, o?: Options): Promise<Out>; valueAndGrad(p: Arrays, i: Arrays, o?: Options): Promise<VG>; destroy(): void }>;
}

const TARGETS = ['flat', 'wasm', 'wasm-threads', 'gpu-cpu'] as const;
type TargetName = (typeof TARGETS)[number];

async function importModule<T>(dir: string, file: string, code: string): Promise<T> {
  writeFileSync(path.join(dir, file), code);
  return (await import(pathToFileURL(path.join(dir, file)).href)) as T;
}

const realNavigator = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
// the threaded instance caps its thread count at the hardware threads: run 2 on any machine
beforeAll(() => void Object.defineProperty(globalThis, 'navigator', { value: { hardwareConcurrency: 2 }, configurable: true, writable: true }));
afterAll(() => {
  if (realNavigator) Object.defineProperty(globalThis, 'navigator', realNavigator);
  else delete (globalThis as { navigator?: unknown }).navigator;
});

const wasmModules = new Map<Built, Promise<WasmModule>>();
/** The cases whose threaded instance split a kernel over the 2 threads. */
const split = new Set<string>();
const threaded = new Set<string>();

type Call = ReturnType<typeof referenceOf>;
type Result = { fwd: { y: ArrayLike<number>; loss: number }; vg: { loss: number; grads: Record<string, Float32Array>; buffers: Record<string, Float32Array> } };
type Fns = { forward(p: Arrays, i: Arrays, o?: Options): Out | Promise<Out>; valueAndGrad(p: Arrays, i: Arrays, o?: Options): VG | Promise<VG> };

/** Runs one case on one target, forward then valueAndGrad at each size; returns what they give (copied). */
async function runTarget(t: TargetName, m: Built, dir: string, c: Case, calls: readonly Call[]): Promise<Result[]> {
  const fresh = () => Object.fromEntries(Object.entries(initBuffers(m)).map(([k, v]) => [k, Float32Array.from(v)]));
  const each = async (fns: Fns) => {
    const out: Result[] = [];
    for (const { params, inputs } of calls) {
      // the buffers of the valueAndGrad call: its training step updates them in place
      const buffers = fresh();
      const opts = (vg = false): Options | undefined => (c.train ? { train: true, seed: 7, buffers: vg ? buffers : fresh() } : undefined);
      const f = await fns.forward(params, inputs, opts());
      const fwd = { y: typeof f.y === 'number' ? [f.y] : Float32Array.from(f.y as Float32Array), loss: f.loss as number };
      const vg = await fns.valueAndGrad(params, inputs, opts(true));
      // an instance that splits a kernel runs over a shared memory (docs/threads.md)
      if (t === 'wasm-threads' && Object.values(vg.grads).some((g) => g.buffer instanceof SharedArrayBuffer)) split.add(m.name);
      out.push({ fwd, vg: { loss: vg.loss, grads: Object.fromEntries(Object.entries(vg.grads).map(([k, v]) => [k, Float32Array.from(v)])), buffers } });
    }
    return out;
  };
  if (t === 'flat') return each(await importModule<SyncModule>(dir, `${m.name}.js`, indent(emitTs(m.info, false))));
  if (t === 'wasm' || t === 'wasm-threads') {
    // one wasm module per case for both (a symbolic build is slow to emit)
    const source = () => {
      const code = indent(emitWasm(m.info, false));
      // every group a wasm kernel, the routines (gathers, cross-entropy, argmax, cumsum…) too: no JS loop (issue #30), with symbolic sizes too
      expect(jsLoopSteps(code).map((s) => s.ops.join(' ')), `${m.name}: steps that run as JS loops in the wasm module`).toEqual([]);
      return code;
    };
    const mod = await (wasmModules.get(m) ?? wasmModules.set(m, importModule<WasmModule>(dir, `${m.name}.wasm.js`, source())).get(m)!);
    if (t === 'wasm') return each(mod);
    const inst = await mod.create({ threads: 2, minWork: 0, adapt: false });
    threaded.add(m.name);
    try {
      return await each(inst);
    } finally {
      await inst.destroy();
    }
  }
  const mod = await importModule<GpuModule>(dir, `${m.name}.gpu.js`, indent(emitGpu(m.info, false)));
  const inst = await mod.create({ mode: 'cpu' });
  try {
    return await each(inst);
  } finally {
    inst.destroy();
  }
}

const ALL = casesOf(CASES);

it('has a case (or a reason) for every op of the table', () => {
  const missing = (Object.keys(OPS) as OpKind[]).filter((op) => !(op in CASES));
  expect(missing, 'ops without a conformance case').toEqual([]);
});

it('lowers no op it has no case for: each such op says why, and the kernel form refuses it', () => {
  for (const op of Object.keys(CASES) as OpKind[]) {
    const e = CASES[op];
    if (!('none' in e)) continue;
    expect(e.none.length, `${op}: the reason`).toBeGreaterThan(40);
    expect('unsupported' in LOWERING[op], `${op} has a lowering, so it can reach a target: give it a case`).toBe(true);
  }
});

it("has two float32 yardsticks: each sum's terms added in float64 and rounded once, or added in float32", () => {
  const g = new Graph('sums', 'forward');
  const b = new Builder(g);
  const x = b.input('x', { dtype: 'f32', shape: [5] }, { raw: 'x' });
  g.outputs.push({ name: 'loss', value: b.sum(x, [0]) });
  const inputs = { x: Float32Array.of(1, 2 ** -24, 2 ** -24, 2 ** -24, 2 ** -24) };
  // 1 + 2⁻²⁴ rounds back to 1 in float32 (ties to even), four times; in float64 the four add up to 2⁻²²
  expect(outputsOf(g, interpret(g, { inputs, float32: true })).loss!.data[0]).toBe(1 + 2 ** -22);
  expect(outputsOf(g, interpret(g, { inputs, float32: true, float32Sums: true })).loss!.data[0]).toBe(1);
});

describe.each(ALL)('$op: $label', ({ op, label, c, index }) => {
  const name = `conf_${op}_${index}`;
  let m: Built;
  let calls: Call[];
  let dir: string;
  const setup = () => {
    if (!m) {
      m = buildCase(name, c);
      calls = sizesOf(c).map((dims) => referenceOf(m, c, 11 + index, dims));
      dir = tmp();
    }
  };

  it('holds its op after the passes; each fusion group lowers to one kernel or one routine', () => {
    setup();
    expect([...m.ops], `the case's graphs lost ${op}`).toContain(op);
    checkFusionLowering(m.fwd, m.bwd, m.info.plan);
  });

  it.each(TARGETS)('%s agrees with the float64 interpreter', async (t) => {
    setup();
    if (t === 'wasm-threads' && c.dims) {
      // documented (docs/threads.md): a module with symbolic sizes encodes its kernels per call on the calling thread
      await expect(runTarget(t, m, dir, c, calls), `${op} (${label}) on ${t}`).rejects.toThrow(/threads need a build for fixed sizes/);
      return;
    }
    const results = await runTarget(t, m, dir, c, calls);
    results.forEach((got, k) => {
      const { dims, ref, ref32, sums32 } = calls[k]!;
      const at = `${op} (${label}) on ${t}${c.dims ? ` at ${JSON.stringify(dims)}` : ''}`;
      expectClose(`${at}: forward y`, got.fwd.y, ref.y, ref32.y, sums32.y);
      expectClose(`${at}: forward loss`, got.fwd.loss, ref.loss, ref32.loss, sums32.loss);
      expectClose(`${at}: valueAndGrad loss`, got.vg.loss, ref.loss, ref32.loss, sums32.loss);
      expect(Object.keys(got.vg.grads).sort(), `${at}: gradients`).toEqual(Object.keys(ref.grads).sort());
      for (const [k, g] of Object.entries(ref.grads)) expectClose(`${at}: d loss / d ${k}`, got.vg.grads[k], g, ref32.grads[k]!, sums32.grads[k]!);
      for (const [k, v] of Object.entries(ref.buffers)) expectClose(`${at}: buffer ${k} after valueAndGrad`, got.vg.buffers[k], v, ref32.buffers[k]!, sums32.buffers[k]!);
    });
  });
});

it('splits kernels over the 2 threads in most static cases (the threads column runs split kernels, not only the whole ones)', () => {
  // wasm-threads ran for every static case above; those that split nothing have no kernel that can split (a JS step, one row)
  const ran = threaded.size;
  expect(split.size, `split in: ${[...split].join(' ')}`).toBeGreaterThanOrEqual(ran / 2);
});
