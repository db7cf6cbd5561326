// Test helpers: build a model, import its generated module, and the float64 oracles (the
// reference interpreter and central finite differences).

import { mkdirSync, mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'vitest';
import type { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import type { NDArray } from '../ir/ndarray.js';
import * as K from '../ir/ndarray.js';
import { maxPoolGradEval } from '../ir/conv.js';
import { bindShape, staticShape } from '../ir/dims.js';
import { numel } from '../ir/types.js';
import { indexBounds } from '../codegen/module.js';
import type { Compiled, Target } from '../src/build.js';
import { compile, emitFiles, lower, traceFile } from '../src/build.js';
import { reverseMode } from '../ir/autodiff.js';
import { verify } from '../ir/verify.js';
import { parseGraph } from '../ir/parse.js';
import { main } from '../src/cli.js';
import { unifiedDiff } from '../src/textdiff.js';

export const ROOT = path.resolve(import.meta.dirname, '..');

export type Arrays = Record<string, Float32Array | Int32Array>;

/** The API every generated module exports. */
export interface GeneratedModule {
  spec: { name: string; inputs: Record<string, { dtype: string; shape: number[] }>; params: Record<string, { dtype: string; shape: number[] }>; outputs: Record<string, { dtype: string; shape: number[] }> };
  initParams(seed?: number): Record<string, Float32Array>;
  forward(params: Arrays, inputs: Arrays): Record<string, number | Float32Array>;
  valueAndGrad(params: Arrays, inputs: Arrays): { loss: number; grads: Record<string, Float32Array> };
}

let tmpRoot: string | undefined;
export function tmp(): string {
  tmpRoot ??= mkdtempSync(path.join(tmpdir(), 'graphc-test-'));
  return mkdtempSync(path.join(tmpRoot, 'd'));
}

/** Writes a model source to a temporary file and returns its path. */
export function modelFile(source: string, name = 'model.ts'): string {
  const dir = tmp();
  const file = path.join(dir, name);
  writeFileSync(file, source);
  return file;
}

/** The targets the helpers build: the flat module and the GPU.js module (graphc build's default until it became ts,wasm). */
export const TS_GPU: readonly Target[] = ['ts', 'gpu'];

/** Compiles a model file and imports the generated JavaScript module. */
export async function buildAndImport(file: string): Promise<{ c: Compiled; mod: GeneratedModule }> {
  const c = await compile(file, { targets: TS_GPU });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const mod = (await import(pathToFileURL(path.join(dir, `${c.name}.js`)).href)) as GeneratedModule;
  return { c, mod };
}

/** Compiles a model file for the wasm target and imports its module; `code` is the module's source. */
export async function buildWasmModule(file: string): Promise<{ c: Compiled; mod: GeneratedModule; code: string }> {
  const c = await compile(file, { targets: ['wasm'] });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const name = `${c.name}.wasm.js`;
  return { c, code: c.files.find((f) => f.name === name)!.content as string, mod: (await import(pathToFileURL(path.join(dir, name)).href)) as GeneratedModule };
}

/** A seeded PRNG (mulberry32) for test data. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** Random params (N(0,1)·scale) and inputs (N(0,1), or indices within their bounds). */
export function randomArgs(fwd: Graph, seed: number, scale = 1, dims: Record<string, number> = {}): { params: Arrays; inputs: Arrays } {
  const r = rng(seed);
  const bounds = indexBounds(fwd);
  const params: Arrays = {};
  const inputs: Arrays = {};
  for (const inst of fwd.insts) {
    const t = fwd.type(inst.result);
    const n = numel(bindShape(t.shape, dims));
    if (inst.op === 'param') params[inst.attrs.name] = Float32Array.from({ length: n }, () => scale * randn(r));
    if (inst.op === 'input') {
      const b = bounds.get(inst.attrs.name) ?? 10;
      inputs[inst.attrs.name] =
        t.dtype === 'i32' ? Int32Array.from({ length: n }, () => Math.floor(r() * b)) : Float32Array.from({ length: n }, () => randn(r));
    }
  }
  return { params, inputs };
}

/** Float64 reference: outputs and gradients from the interpreter. */
export function reference(
  fwd: Graph,
  bwd: Graph,
  params: Arrays,
  inputs: Arrays,
  opts: { float32?: boolean } = {},
): { outputs: Record<string, NDArray>; grads: Record<string, Float64Array> } {
  const vals = interpret(fwd, { params, inputs, float32: opts.float32 });
  const bv = interpret(bwd, { fwd: vals, float32: opts.float32 });
  const grads: Record<string, Float64Array> = {};
  for (const o of bwd.outputs) grads[o.name] = bv.get(bwd.value(o.value).name)!.data;
  return { outputs: outputsOf(fwd, vals), grads };
}

/**
 * How far a float32 gradient may be from the float64 reference: 1e-4 (relErr), or, where float32
 * cannot do better (a gradient that cancels to zero, such as a bias before batchnorm), 10× the
 * error of the float32-rounding interpreter on the same graphs.
 */
export function gradTolerance(ref: ArrayLike<number>, ref32: () => ArrayLike<number>, err: number): number {
  return err < 1e-4 ? 1e-4 : Math.max(1e-4, 10 * relErr(ref32(), ref));
}

/** The float64 loss at params (for finite differences). */
export function lossAt(fwd: Graph, params: Record<string, ArrayLike<number>>, inputs: Arrays): number {
  return outputsOf(fwd, interpret(fwd, { params, inputs })).loss!.data[0]!;
}

/**
 * The step of the finite differences at x0. The five-point stencil's truncation error is
 * O(h⁴), so a step this large keeps rounding (about ε·|loss| / h) small too: both near 1e-12 on
 * the examples, where the three-point stencil's best step leaves about 1e-9. The points it reads
 * lie within ±2h of x0 (FD_SPAN · h): a kink closer than that spoils it.
 */
export const fdStep = (x0: number): number => 1e-4 * Math.max(1, Math.abs(x0));
export const FD_SPAN = 2;

/** The derivative of the loss with respect to params[name][i] by the five-point stencil, in float64. */
export function finiteDiff(fwd: Graph, params: Arrays, inputs: Arrays, name: string, i: number): number {
  const p64: Record<string, Float64Array> = {};
  for (const [k, v] of Object.entries(params)) p64[k] = Float64Array.from(v);
  const x = p64[name]!;
  const x0 = x[i]!;
  const h = fdStep(x0);
  const at = (d: number) => {
    x[i] = x0 + d * h;
    return lossAt(fwd, p64, inputs);
  };
  return (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * h);
}

/** Which side of each kink every element is on: signs of relu/abs arguments and of maximum/minimum differences, argmax positions. */
function kinkSignature(g: Graph, vals: Map<string, NDArray>): string {
  const parts: string[] = [];
  const arg = (inst: Graph['insts'][number], i: number) => vals.get(g.value(inst.args[i]!).name)!;
  for (const inst of g.insts) {
    if (inst.op === 'relu' || inst.op === 'abs') parts.push(Array.from(arg(inst, 0).data, Math.sign).join());
    else if (inst.op === 'maximum' || inst.op === 'minimum') {
      const out = staticShape(g.type(inst.result).shape);
      parts.push(Array.from(K.map(out, [arg(inst, 0), arg(inst, 1)], (a, b) => Math.sign(a - b)).data).join());
    } else if (inst.op === 'max') parts.push(Array.from(K.argmaxMask(arg(inst, 0), inst.attrs.axes).data).join());
    // argmax and argmin: the indices they pick
    else if (inst.op === 'argmax' || inst.op === 'argmin') parts.push(Array.from(vals.get(g.value(inst.result).name)!.data).join());
    // max pooling: where each window's first maximum is (the counts of a gradient of ones)
    else if (inst.op === 'max_pool') parts.push(Array.from(maxPoolGradEval(arg(inst, 0), K.map(staticShape(g.type(inst.result).shape), [], () => 1), inst.attrs).data).join());
  }
  return parts.join('|');
}

/**
 * Whether finiteDiff at params[name][i] reads a smooth loss: no element crosses a kink (relu,
 * abs, maximum, minimum, an argmax) between the stencil's ends.
 */
export function smoothAt(fwd: Graph, params: Arrays, inputs: Arrays, name: string, i: number): boolean {
  if (!fwd.insts.some((inst) => KINKS.has(inst.op))) return true;
  const signature = (d: number) => {
    const p64: Record<string, Float64Array> = {};
    for (const [k, v] of Object.entries(params)) p64[k] = Float64Array.from(v);
    p64[name]![i]! += d;
    return kinkSignature(fwd, interpret(fwd, { params: p64, inputs }));
  };
  let at = baseSignatures.get(params)?.get(fwd);
  if (at === undefined) {
    at = signature(0);
    baseSignatures.set(params, (baseSignatures.get(params) ?? new Map()).set(fwd, at));
  }
  const span = FD_SPAN * fdStep(params[name]![i]!);
  return signature(-span) === at && signature(span) === at;
}

const KINKS = new Set(['relu', 'abs', 'maximum', 'minimum', 'max', 'argmax', 'argmin']);
/** The kink signature at unperturbed params, by params object and graph. */
const baseSignatures = new WeakMap<Arrays, Map<Graph, string>>();

/**
 * Relative error at the scale of the reference tensor: max|a − b| / max(max|b|, 1e-3). Below
 * 1e-3 the scale is absolute, so that gradients that are zero in exact arithmetic (b1 under
 * batchnorm) compare by their rounding noise rather than by 0/0.
 */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 1e-3;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return Number.isNaN(diff) ? Infinity : diff / scale;
}

/**
 * Golden-file comparison: fails with a unified diff on mismatch; UPDATE_SNAPSHOTS=1 rewrites the
 * file instead.
 */
export function expectGolden(file: string, actual: string): void {
  const p = path.join(ROOT, 'test', 'golden', file);
  if (process.env.UPDATE_SNAPSHOTS === '1') {
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, actual);
    return;
  }
  if (!existsSync(p)) throw new Error(`golden file test/golden/${file} is missing; run UPDATE_SNAPSHOTS=1 npm test to create it`);
  const expected = readFileSync(p, 'utf8');
  if (expected !== actual)
    throw new Error(`golden file test/golden/${file} differs (run UPDATE_SNAPSHOTS=1 npm test to accept):\n${unifiedDiff(expected, actual, `test/golden/${file}`, 'actual')}`);
}

/** Compiles a forward graph given as IR text (for ops that have no DSL surface). */
export async function buildIR(text: string): Promise<{ c: Pick<Compiled, 'fwd' | 'bwd' | 'name'>; mod: GeneratedModule }> {
  const fwd = parseGraph(text);
  const { bwd, plan } = lower(fwd);
  const info = { name: fwd.name, plan, source: 'test.ir', fwd, bwd, sourceLine: () => undefined };
  const files = await emitFiles(info, TS_GPU);
  const dir = tmp();
  for (const f of files) writeFileSync(path.join(dir, f.name), f.content);
  const mod = (await import(pathToFileURL(path.join(dir, `${fwd.name}.js`)).href)) as GeneratedModule;
  return { c: { fwd, bwd, name: fwd.name }, mod };
}

/** The API of a generated GPU.js module. */
export interface GpuModule {
  create(options?: { mode?: string }): Promise<{
    mode: string;
    forward(params: Arrays, inputs: Arrays): Promise<Record<string, number | Float32Array>>;
    valueAndGrad(params: Arrays, inputs: Arrays): Promise<{ loss: number; grads: Record<string, Float32Array> }>;
    destroy(): void;
  }>;
}

/** Compiles a model file with both targets and imports both JavaScript modules. */
export async function buildBoth(file: string): Promise<{ c: Compiled; flat: GeneratedModule; gpu: GpuModule }> {
  const c = await compile(file, { targets: TS_GPU });
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  const flat = (await import(pathToFileURL(path.join(dir, `${c.name}.js`)).href)) as GeneratedModule;
  const gpu = (await import(pathToFileURL(path.join(dir, `${c.name}.gpu.js`)).href)) as GpuModule;
  return { c, flat, gpu };
}

/** Runs the graphc command in-process from the repository root; returns its exit code and output. */
export async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const cwd = process.cwd();
  process.chdir(ROOT);
  try {
    const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s), color: false });
    return { code, out, err };
  } finally {
    process.chdir(cwd);
  }
}


// ---------------------------------------------------------------------------------------------
// Model sources traced to graphs, and compiled modules imported (the scan tests' shared builders)

/** The first line of a model source in a test. */
export const MODEL_HEAD = "import { model } from 'graphc';\n";

/** A model source's traced graph (before any pass). */
export function tracedModel(source: string): Graph {
  return traceFile(modelFile(source)).traced.graph;
}

/** The loss of a graph in the float64 interpreter. */
export function lossOf(g: Graph, args: { params: Arrays; inputs: Arrays }): number {
  return outputsOf(g, interpret(g, args)).loss!.data[0]!;
}

/** The loss's gradients from the interpreter through reverseMode of a copy of g (its loops kept as they are), both graphs verified. */
export function interpGrads(g: Graph, args: { params: Arrays; inputs: Arrays }): { fwd: Graph; bwd: Graph; grads: Record<string, Float64Array> } {
  const fwd = g.clone();
  const bwd = reverseMode(fwd);
  verify(fwd);
  verify(bwd);
  return { fwd, bwd, grads: reference(fwd, bwd, args.params, args.inputs).grads };
}

/** Writes a compilation's files to a fresh directory; the function imports one of them by name. */
export function writtenModules(c: Compiled): <T = GeneratedModule>(file: string) => Promise<T> {
  const dir = tmp();
  for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
  return async <T>(file: string) => (await import(pathToFileURL(path.join(dir, file)).href)) as T;
}
