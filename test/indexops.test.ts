// The index primitives of PyTorch's vocabulary (issue #31): x.argmax/argmin (i32, the first
// extremum, the first NaN where there is one, no gradient), x.cumsum (its gradient the reversed
// cumsum), x.flip, g.arange (over a symbolic T too) and g.const(values, 'i32').
// - against PyTorch 1.13 in float64 (/usr/bin/python3; skipped without torch): values, indices
//   at ties and NaN, and gradients;
// - the interpreter's gradients against finite differences;
// - a causal-attention model over a symbolic T built for every target (flat, wasm, GPU.js cpu)
//   and called at two sequence lengths against the interpreter; its forward exported to ONNX
//   (run by ONNX Runtime) and to PyTorch (loss and autograd gradients).
// The conformance matrix (test/conformance-cases.ts) has the op-level cases; the DSL's errors
// are in test/fixtures/errors (argmax-*, const-i32-float, arange-dim, flip-symbolic).

import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { compile, compileGraphs } from '../src/build.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { exportFile } from '../src/onnx/index.js';
import { decodeModel } from '../src/onnx/proto.js';
import { exportTorchFile } from '../src/torch/index.js';
import type { Arrays, GeneratedModule, GpuModule } from './helpers.js';
import { finiteDiff, modelFile, reference, relErr, rng, randn, smoothAt, tmp } from './helpers.js';

ort.env.wasm.numThreads = 1;

const TORCH = '/usr/bin/python3';
const hasTorch = existsSync(TORCH) && spawnSync(TORCH, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
/** Debian's python3-onnx, whose checker (full_check: shape inference too) test/onnx.test.ts also runs where installed. */
const onnxChecker = existsSync(TORCH) && spawnSync(TORCH, ['-c', 'import onnx.checker'], { encoding: 'utf8' }).status === 0;

// ---------------------------------------------------------------------------------------------
// One model of every DSL call, in float64

const OPS_MODEL = `import { model } from 'graphc';
export default model('ixops', (g) => {
  const a = g.param('a', [4, 5]);
  const c = g.param('c', [3, 6]);
  const f = g.param('f', [2, 3, 4]);
  const xn = g.input('xn', [3, 4]);
  const rc = g.input('rc', [3, 6]);
  const rr = g.input('rr', [3, 6]);
  const rf = g.input('rf', [2, 3, 4]);
  const amax = a.argmax(1);
  const amin = a.argmin(0, true);
  const nmax = xn.argmax(-1);
  const nmin = xn.argmin(1);
  const cs = c.cumsum(1);
  const cs0 = c.cumsum(-2);
  const fl = f.flip([0, 2]);
  const fl1 = f.flip(-1);
  const loss = g.pick(a, amax).sum()
    .add(g.pick(a.transpose(), amin.reshape([5])).mul(2).sum())
    .add(cs.mul(rc).sum())
    .add(cs0.tanh().mul(rr).sum())
    .add(fl.mul(rf).sum())
    .add(fl1.square().mul(rf).sum());
  return { loss, amax, amin, nmax, nmin, cs, cs0, fl, fl1 };
});
`;

/** The same in PyTorch (float64), the indices as int. */
const TORCH_MODEL = `
amax = a.argmax(1); amin = a.argmin(0, keepdim=True)
nmax = xn.argmax(-1); nmin = xn.argmin(1)
cs = c.cumsum(1); cs0 = c.cumsum(-2)
fl = f.flip((0, 2)); fl1 = f.flip(-1)
loss = a[torch.arange(4), amax].sum() + 2 * a.t()[torch.arange(5), amin.reshape(5)].sum() + (cs * rc).sum() + (cs0.tanh() * rr).sum() + (fl * rf).sum() + (fl1.square() * rf).sum()
`;

const { fwd, bwd } = compileGraphs(modelFile(OPS_MODEL, 'ixops.ts'));
const SHAPES: Record<string, number[]> = { a: [4, 5], c: [3, 6], f: [2, 3, 4], xn: [3, 4], rc: [3, 6], rr: [3, 6], rf: [2, 3, 4] };
const OUTS = ['amax', 'amin', 'nmax', 'nmin', 'cs', 'cs0', 'fl', 'fl1'];
const numel = (s: number[]) => s.reduce((p, d) => p * d, 1);

/** Ties in every row and column of a (the first wins); NaN first, later, twice and with ±∞ in xn. */
const A_TIES = [1, 3, 3, 0, 3, /**/ 2, 2, 2, 2, 2, /**/ -1, -5, -1, -5, 0, /**/ -1, 0, 4, -5, -2];
const XN = [NaN, 1, 2, 0, /**/ 1, NaN, 2, NaN, /**/ -Infinity, Infinity, 0, Infinity];

function args(seed: number, ties: boolean): { params: Arrays; inputs: Arrays } {
  const r = rng(seed);
  const rand = (k: string) => Float32Array.from({ length: numel(SHAPES[k]!) }, () => randn(r));
  const params: Arrays = { a: ties ? Float32Array.from(A_TIES) : rand('a'), c: rand('c'), f: rand('f') };
  const inputs: Arrays = { xn: Float32Array.from(XN), rc: rand('rc'), rr: rand('rr'), rf: rand('rf') };
  return { params, inputs };
}

function torchResults(params: Arrays, inputs: Arrays): { outs: Record<string, number[]>; grads: Record<string, number[]> } {
  const all = { ...params, ...inputs };
  const json = (v: ArrayLike<number>) => JSON.stringify(Array.from(v, (x) => (Number.isNaN(x) ? 'nan' : x === Infinity ? 'inf' : x === -Infinity ? '-inf' : x)));
  const defs = Object.entries(all)
    .map(([k, v]) => `${k} = torch.tensor([float(x) for x in ${json(v)}], dtype=torch.float64).reshape(${SHAPES[k]!.join(', ')})${k in params ? '.requires_grad_(True)' : ''}`)
    .join('\n');
  const script = `import json, torch\n${defs}\n${TORCH_MODEL}\nloss.backward()
outs = {k: v.detach().reshape(-1).tolist() for k, v in dict(amax=amax, amin=amin, nmax=nmax, nmin=nmin, cs=cs, cs0=cs0, fl=fl, fl1=fl1).items()}
print(json.dumps({'outs': outs, 'grads': {k: v.grad.reshape(-1).tolist() for k, v in dict(a=a, c=c, f=f).items()}}))`;
  const p = spawnSync(TORCH, ['-c', script], { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(p.stderr);
  return JSON.parse(p.stdout) as { outs: Record<string, number[]>; grads: Record<string, number[]> };
}

describe('argmax, argmin, cumsum, flip against PyTorch 1.13 in float64', () => {
  for (const [label, seed, ties] of [['ties in a (the first index wins) and NaN/±∞ in xn', 1, true], ['random values', 9, false]] as const)
    it.skipIf(!hasTorch)(`indices, values and gradients at ${label}`, () => {
      const { params, inputs } = args(seed, ties);
      const ref = reference(fwd, bwd, params, inputs);
      const want = torchResults(params, inputs);
      for (const k of OUTS) {
        const got = Array.from(ref.outputs[k]!.data);
        if (['amax', 'amin', 'nmax', 'nmin'].includes(k)) expect(got, k).toEqual(want.outs[k]);
        else expect(relErr(got, want.outs[k]!), k).toBeLessThan(1e-12);
      }
      for (const p of ['a', 'c', 'f']) expect(relErr(ref.grads[p]!, want.grads[p]!), `d loss / d ${p}`).toBeLessThan(1e-12);
    });

  it("the interpreter's indices at ties and NaN, as torch's CPU kernels give them", () => {
    const { params, inputs } = args(1, true);
    const out = outputsOf(fwd, interpret(fwd, { params, inputs }));
    const idx = (k: string) => Array.from(out[k]!.data);
    expect(fwd.type(fwd.outputs.find((o) => o.name === 'amax')!.value).dtype).toBe('i32');
    expect(idx('amax')).toEqual([1, 0, 4, 2]); // ties: the first
    expect(idx('amin')).toEqual([2, 2, 2, 2, 3]); // columns (ties in 0 and 3), keepDims [1, 5]
    expect(out.amin!.shape).toEqual([1, 5]);
    expect(idx('nmax')).toEqual([0, 1, 1]); // the first NaN; +∞ first of two
    expect(idx('nmin')).toEqual([0, 1, 0]); // the first NaN; −∞
  });
});

describe('gradients against finite differences (float64 interpreter)', () => {
  it('every element of c (cumsum), f (flip) and a (picked at argmax/argmin)', () => {
    const { params, inputs } = args(4, false);
    const { grads } = reference(fwd, bwd, params, inputs);
    let checked = 0;
    for (const p of ['a', 'c', 'f'])
      for (let i = 0; i < params[p]!.length; i++) {
        if (!smoothAt(fwd, params, inputs, p, i)) continue;
        const fd = finiteDiff(fwd, params, inputs, p, i);
        expect(Math.abs(grads[p]![i]! - fd), `d loss / d ${p}[${i}]: ${grads[p]![i]} vs ${fd}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
        checked++;
      }
    expect(checked).toBeGreaterThan(60);
  });

  it('no gradient flows through the indices: d/da of pick(a, argmax(a)) is 1 at the argmax only', () => {
    const { params, inputs } = args(1, true);
    const { grads } = reference(fwd, bwd, params, inputs);
    // rows: the argmax of each row gets 1; columns: the argmin of each column gets 2
    const want = new Array(20).fill(0);
    [1, 0, 4, 2].forEach((j, i) => (want[i * 5 + j] += 1));
    [2, 2, 2, 2, 3].forEach((i, j) => (want[i * 5 + j] += 2));
    expect(Array.from(grads.a!)).toEqual(want);
  });
});

// ---------------------------------------------------------------------------------------------
// A causal-attention model over a symbolic T on every target

const CAUSAL = `import { model } from 'graphc';
export default model('causal', (g) => {
  const tok = g.input('tok', [2, 'T'], 'i32');
  const E = g.param('E', [7, 4]);
  const W = g.param('W', [4, 7]);
  const x = g.gather(E, tok);
  const i = g.arange('T');
  const causal = i.unsqueeze(1).ge(i.unsqueeze(0));
  const att = g.softmax(x.matmul(x.transpose([0, 2, 1])).maskedFill(causal.eq(0), -1e9), -1);
  const pos = i.float().mul(0.1).add(i.lt(2)).reshape([1, 'T', 1]); // i32 against a number: compared as f32
  const h = att.matmul(x).cumsum(1).flip([0, 2]).add(pos);
  const logits = h.matmul(W);
  const pred = logits.argmax(-1);
  const low = logits.argmin(-1, true);
  const loss = g.crossEntropy(logits, pred).add(g.crossEntropy(logits, tok).mul(0.5));
  const acc = pred.eq(tok).mean(); // accuracy: i32 indices compared with i32 labels
  return { loss, pred, low, causal, acc };
});
`;

const causalFile = modelFile(CAUSAL, 'causal.ts');
const tokens = (T: number) => Int32Array.from({ length: 2 * T }, (_x, k) => (k * 5 + 3) % 7);
const lowerTriangle = (T: number) => Array.from({ length: T * T }, (_x, k) => (Math.floor(k / T) >= k % T ? 1 : 0));

describe('a causal mask over a symbolic T (g.arange(T) against its transpose) on every target', () => {
  it('flat, wasm and GPU.js (cpu) at T = 3 and T = 6: mask, indices (Int32Array), loss and gradients as the interpreter', async () => {
    const c = await compile(causalFile, { targets: ['ts', 'gpu', 'wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const load = async <T>(suffix: string) => (await import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href)) as T;
    const flat = await load<GeneratedModule>('');
    const wasm = await load<GeneratedModule>('.wasm');
    const gpu = await (await load<GpuModule>('.gpu')).create({ mode: 'cpu' });
    const params = flat.initParams(3);
    try {
      for (const T of [3, 6]) {
        const inputs = { tok: tokens(T) };
        const ref = reference(c.fwd, c.bwd, params, inputs);
        expect(Array.from(ref.outputs.causal!.data)).toEqual(lowerTriangle(T));
        const check = (what: string, out: Record<string, number | Float32Array | Int32Array>, grads: Record<string, Float32Array>) => {
          expect(out.pred, `${what} T=${T}: pred is i32`).toBeInstanceOf(Int32Array);
          expect(out.low, `${what} T=${T}: low is i32`).toBeInstanceOf(Int32Array);
          expect(Array.from(out.pred as Int32Array), `${what} T=${T}: pred`).toEqual(Array.from(ref.outputs.pred!.data));
          expect(Array.from(out.low as Int32Array), `${what} T=${T}: low`).toEqual(Array.from(ref.outputs.low!.data));
          expect(Array.from(out.causal as Float32Array), `${what} T=${T}: causal`).toEqual(lowerTriangle(T));
          expect(relErr([out.loss as number], ref.outputs.loss!.data), `${what} T=${T}: loss`).toBeLessThan(1e-5);
          expect(out.acc, `${what} T=${T}: accuracy`).toBeCloseTo(ref.outputs.acc!.data[0]!, 6);
          for (const k of Object.keys(params)) expect(relErr(grads[k]!, ref.grads[k]!), `${what} T=${T}: d loss / d ${k}`).toBeLessThan(1e-4);
        };
        for (const [what, mod] of [['flat', flat], ['wasm', wasm]] as const) check(what, mod.forward(params, inputs), mod.valueAndGrad(params, inputs).grads);
        check('GPU.js (cpu)', await gpu.forward(params, inputs), (await gpu.valueAndGrad(params, inputs)).grads);
      }
    } finally {
      gpu.destroy();
    }
  });

  it('exports to ONNX (ArgMax/ArgMin, CumSum, Slice with step −1, Range over T): ONNX Runtime gives the flat module\'s outputs at T = 3 and T = 5', async () => {
    const c = await compile(causalFile, { targets: ['ts'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const flat = (await import(pathToFileURL(path.join(dir, `${c.name}.js`)).href)) as GeneratedModule;
    const { bytes } = await exportFile(causalFile);
    // torch's first index at ties: select_last_index 0; the reversed slices step by −1
    const nodes = decodeModel(bytes).nodes;
    for (const op of ['ArgMax', 'ArgMin']) expect(nodes.find((n) => n.opType === op)?.attrs.select_last_index, op).toEqual({ i: 0 });
    for (const op of ['CumSum', 'Range']) expect(nodes.some((n) => n.opType === op), op).toBe(true);
    const slices = nodes.filter((n) => n.opType === 'Slice' && n.inputs.length === 5);
    expect(slices.length).toBeGreaterThanOrEqual(2); // flip([0, 2]) of a tensor with a symbolic T: one Slice per axis
    if (onnxChecker) {
      const file = path.join(dir, 'causal.onnx');
      writeFileSync(file, bytes);
      const r = spawnSync(TORCH, ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', file], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
    const session = await ort.InferenceSession.create(bytes);
    try {
      for (const T of [3, 5]) {
        const got = await session.run({ tok: new ort.Tensor('int32', tokens(T), [2, T]) });
        const want = flat.forward(flat.initParams(0), { tok: tokens(T) });
        expect(got.pred!.type).toBe('int32');
        expect(Array.from(got.pred!.data as Int32Array), `T=${T}: pred`).toEqual(Array.from(want.pred as unknown as Int32Array));
        expect(Array.from(got.low!.data as Int32Array), `T=${T}: low`).toEqual(Array.from(want.low as unknown as Int32Array));
        expect(Array.from(got.causal!.data as Float32Array), `T=${T}: causal`).toEqual(lowerTriangle(T));
        expect(relErr(got.loss!.data as Float32Array, [want.loss as number]), `T=${T}: loss`).toBeLessThan(1e-5);
        expect(relErr(got.acc!.data as Float32Array, [want.acc as number]), `T=${T}: accuracy`).toBeLessThan(1e-6);
      }
    } finally {
      await session.release();
    }
  });

  it.skipIf(!hasTorch)("exports to PyTorch: indices, loss and autograd gradients are the flat module's at T = 3 and T = 5", async () => {
    const c = await compile(causalFile, { targets: ['ts'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const flat = (await import(pathToFileURL(path.join(dir, `${c.name}.js`)).href)) as GeneratedModule;
    const { source } = await exportTorchFile(causalFile);
    const py = path.join(dir, 'exported.py');
    writeFileSync(py, source);
    for (const T of [3, 5]) {
      const script = `
import importlib.util, json, torch
spec = importlib.util.spec_from_file_location("exported", ${JSON.stringify(py)})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
m = mod.causal(); m.train()
out = m(tok=torch.tensor(${JSON.stringify(Array.from(tokens(T)))}, dtype=torch.int32).reshape(2, ${T}))
out["loss"].backward()
print(json.dumps({"loss": out["loss"].item(), "pred": out["pred"].reshape(-1).tolist(), "dtype": str(out["pred"].dtype), "grads": {k: t.grad.reshape(-1).tolist() for k, t in m.graphc_tensors().items() if k in m.GRAPHC_PARAMS}}))
`;
      const p = spawnSync(TORCH, ['-c', script], { encoding: 'utf8' });
      expect(p.stderr).toBe('');
      const got = JSON.parse(p.stdout) as { loss: number; pred: number[]; dtype: string; grads: Record<string, number[]> };
      const inputs = { tok: tokens(T) };
      const want = flat.valueAndGrad(flat.initParams(0), inputs);
      expect(got.dtype).toBe('torch.int32');
      expect(got.pred, `T=${T}: pred`).toEqual(Array.from(flat.forward(flat.initParams(0), inputs).pred as unknown as Int32Array));
      expect(relErr([got.loss], [want.loss]), `T=${T}: loss`).toBeLessThan(1e-5);
      for (const k of Object.keys(want.grads)) expect(relErr(got.grads[k]!, want.grads[k]!), `T=${T}: ${k}`).toBeLessThan(1e-4);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The wasm module's SIMD index kernels (codegen/wasm/index-kernels.ts) against the flat module

const LANES = `import { model } from 'graphc';
export default model('lanes', (g) => {
  const x = g.input('x', [6, 13]);
  const xc = g.input('xc', [9, 6]);
  const c = g.param('c', [7, 6]);
  const r = g.input('r', [7, 6]);
  const cs = c.cumsum(0);
  const loss = cs.mul(r).sum();
  return { loss, cs, rmax: x.argmax(-1), rmin: x.argmin(-1), cmax: xc.argmax(0), cmin: xc.argmin(0, true) };
});
`;

describe("the wasm module's SIMD argmax, argmin and cumsum", () => {
  it('give the flat module\'s indices at ties, NaN and ±∞ in any lane, and its cumsum and gradient (four columns at once) exactly', async () => {
    const c = await compile(modelFile(LANES, 'lanes.ts'), { targets: ['ts', 'wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    const wasmJs = c.files.find((f) => f.name.endsWith('.wasm.js'))!.content;
    for (const what of ['four lanes', 'four columns at once']) expect(wasmJs, what).toContain(what);
    const load = async (suffix: string) => (await import(pathToFileURL(path.join(dir, `${c.name}${suffix}.js`)).href)) as GeneratedModule;
    const [flat, wasm] = [await load(''), await load('.wasm')];
    const N = NaN;
    const I = Infinity;
    // rows of 13: lanes over 0–11, the rest one by one
    const x = [
      [0.5, -1, 2, 0.25, 3, -2, 1, 0, 2.5, -3, 1.5, -0.5, 0.75],
      [0, 0, 0, 5, 5, 0, 0, 0, -1, -1, -1, -1, 5], // a tie, the first in lane 3 and the next in lane 0
      [1, 2, 3, 4, 5, 6, N, 8, 9, N, -9, 0, 0], // NaN in lanes 2 and 1: the first wins
      [0, 9, 0, 9, -9, 1, -9, 1, 0, 0, 0, -9, N], // NaN in the rest only
      [-I, -I, -I, -I, -I, -I, -I, -I, -I, -I, -I, -I, -I],
      [-0, 0, -0, 0, I, -I, 7, I, -I, 0, 3, -0, I],
    ].flat();
    const xc = Array.from({ length: 54 }, (_v, k) => [0.5, -1, 2, 3, 1.5, -2][(k * 7) % 6]! + (k % 4));
    for (const [row, col, v] of [[3, 0, N], [5, 0, N], [2, 1, 9], [6, 1, 9], [1, 3, -I], [4, 3, -I], [7, 4, N], [0, 5, I]] as const) xc[row * 6 + col] = v;
    const rr = rng(5);
    const inputs = { x: Float32Array.from(x), xc: Float32Array.from(xc), r: Float32Array.from({ length: 42 }, () => randn(rr)) };
    const params = { c: Float32Array.from({ length: 42 }, () => randn(rr)) };
    const [want, got] = [flat.valueAndGrad(params, inputs), wasm.valueAndGrad(params, inputs)];
    const [fw, gw] = [flat.forward(params, inputs), wasm.forward(params, inputs)];
    for (const k of ['rmax', 'rmin', 'cmax', 'cmin', 'cs']) expect(Array.from(gw[k] as Float32Array), k).toEqual(Array.from(fw[k] as Float32Array));
    expect(Array.from(fw.rmax as unknown as Int32Array)).toEqual([4, 3, 6, 12, 0, 4]);
    expect(Array.from(got.grads.c!)).toEqual(Array.from(want.grads.c!));
    expect(got.loss).toBe(want.loss);
  });
});
