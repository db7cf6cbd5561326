// The WebGPU module as built (no WebGPU in Node here: the browser tests run it, in
// test/browser/webgpu.test.ts): every example builds with --target webgpu into a module that
// imports nothing, create() rejects without navigator.gpu, and what the renderer cannot render is a
// CompileError naming the op and the target.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { size } from '../ir/dims.js';
import { CompileError } from '../ir/errors.js';
import type { Kernel, Routine } from '../codegen/kernel/form.js';
import { renderRoutine, tileOf } from '../codegen/webgpu/routines.js';
import { WGSL_CAPABILITIES, f32, renderKernel } from '../codegen/webgpu/wgsl.js';
import { decompose } from '../codegen/kernel/decompose.js';
import { compile } from '../src/build.js';
import { ROOT } from './helpers.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'graphc-webgpu-'));

const built = new Map<string, Promise<Record<string, string>>>();
/** build(name), once per test file (the examples' builds are shared by the tests). */
const buildOnce = (name: string) => built.get(name) ?? (built.set(name, build(name)), built.get(name)!);

/**
 * The stores of a shader into an arena it declares vec4 that more than one invocation may make
 * into one vec4 (a component write may access the whole vector: WGSL spec, gpuweb #2152): a store
 * whose index steps by 1 with the local invocation id's x (`tx`, not `4 * tx`, through the lets
 * that use it), and every store where the rows are not a multiple of 4 long (`gj < N`).
 */
function sharedVec4Stores(wgsl: string): string[] {
  const v4 = new Set([...wgsl.matchAll(/var<storage, read_write> (a\d+): array<vec4<f32>>/g)].map((m) => m[1]!));
  if (v4.size === 0) return [];
  // the names that step by 1 with lid.x: `4 * tx` does not, nor `tid / 4k` (k invocations' rows)
  const unit = new Set(['lid.x']);
  const strip = (e: string) => e.replace(/\b4 \* tx\b/g, '').replace(/\btid \/ (\d+)/g, (m, k) => (Number(k) % 4 === 0 ? '' : m));
  const refersUnit = (e: string) => [...unit].some((u) => new RegExp(`\\b${u.replace('.', '\\.')}\\b`).test(strip(e)));
  const bad: string[] = [];
  const rows = /\bgj < (\d+)\)/.exec(wgsl);
  for (const line of wgsl.split('\n')) {
    const d = /^\s*(?:let|var) (\w+)(?::[^=]*)? = (.*);$/.exec(line);
    if (d && refersUnit(d[2]!)) unit.add(d[1]!);
    const st = /^\s*(a\d+)\[(.*)\] = /.exec(line);
    if (st && v4.has(st[1]!) && (refersUnit(st[2]!) || (rows && Number(rows[1]) % 4 !== 0))) bad.push(line.trim());
  }
  return bad;
}

async function build(name: string, optimizer?: 'adam' | 'sgd'): Promise<Record<string, string>> {
  const { resolveHyper } = await import('../codegen/optim.js');
  const c = await compile(path.join(ROOT, 'examples', `${name}.ts`), { targets: ['webgpu'], optimizer: optimizer && { name: optimizer, hyper: resolveHyper(optimizer, {}) } });
  const out = path.join(dir, name + (optimizer ?? ''));
  mkdirSync(out, { recursive: true });
  for (const f of c.files) writeFileSync(path.join(out, f.name), f.content);
  return Object.fromEntries(c.files.map((f) => [f.name, String(f.content)]));
}

describe('graphc build --target webgpu', () => {
  it.each(['makemore', 'cnn', 'wavenet'])('%s: a .webgpu.ts and a .webgpu.js that import nothing, every shader a compute entry point', async (name) => {
    const files = await buildOnce(name);
    const js = files[`${name}.webgpu.js`]!;
    expect(files[`${name}.webgpu.ts`]).toBeDefined();
    expect(js).not.toMatch(/^\s*import\s/m);
    expect(js).not.toMatch(/\bimport\(/);
    expect(js).toMatch(/export async function create\(options = \{\}\)/);
    const shaders = js.match(/@compute @workgroup_size/g) ?? [];
    expect(shaders.length).toBeGreaterThan(3);
  });

  it('vec4 arenas: each vec4 a shader writes is written by one invocation (the products, the convolutions, the fused epilogues of makemore, cnn, wavenet)', async () => {
    let checked = 0;
    for (const name of ['makemore', 'cnn', 'wavenet']) {
      const js = (await buildOnce(name))[`${name}.webgpu.js`]!;
      const shaders = [...js.matchAll(/`([^`]*@compute[^`]*)`/g)].map((m) => m[1]!);
      for (const s of shaders) {
        expect(sharedVec4Stores(s), `${name}: ${s.split('\n')[0]}`).toEqual([]);
        if (/array<vec4<f32>>/.test(s)) checked++;
      }
    }
    // the vec4 loads stay where the stores own their vec4s (a check that cannot pass by finding no vec4 shader)
    expect(checked).toBeGreaterThan(5);
  });

  it('vec4 arenas: a product or convolution loads vec4 only where each invocation owns 4 adjacent columns of a row (rows a multiple of 4 long), element by element elsewhere', async () => {
    const k = (await import(pathToFileURL(path.join(ROOT, 'bench', 'webgpu-kernels.mjs')).href)) as {
      matmulCase(m: number, n?: number, k?: number): { r: Routine };
      convCase(batch: number, c: number, hw: number): { r: Routine };
    };
    const wgsl = (r: Routine) => renderRoutine(r, () => 'f32').wgsl;
    // 40 × 12 @ 12 × 36 (rows of 36), a 3×3 conv of 6 × 6 images (36 pixels), rows of 1024 (tiles
    // of 128): vec4, 4 adjacent columns an invocation, 16 invocations along a row; rows of 32 and 12
    // (tiles of 32 and 16 columns) in tiles of 64 rows: 8 and 4 invocations along a row
    const cases = [
      [k.matmulCase(40, 36, 12).r, 16],
      [k.convCase(2, 8, 6).r, 16],
      [k.matmulCase(64, 1024, 64).r, 16],
      [k.matmulCase(64, 32, 12).r, 8],
      [k.matmulCase(40, 12, 12).r, 4],
    ] as const;
    for (const [r, cx] of cases) {
      const s = wgsl(r);
      expect(s).toMatch(/> a\d+: array<vec4<f32>>/);
      expect(s).toContain(`let gj = col0 + 4 * tx + j % 4 + ${4 * cx} * (j / 4);`);
      if (cx < 16) expect(s).toContain(`let tx = tid % ${cx};`);
      expect(sharedVec4Stores(s)).toEqual([]);
    }
    // rows of 7 (K = 12: A could be read as vec4), 5 × 5 and 3 × 3 images (25 and 9 pixels, K = 72;
    // 4 × 9 = 36 results a row, but 4 adjacent ones may lie in two images), rows of 12 (20 rows:
    // tiles of 16 columns and 32 rows: 4 invocations along a row would need 64 rows): element by element
    for (const s of [wgsl(k.matmulCase(40, 7, 12).r), wgsl(k.convCase(2, 8, 5).r), wgsl(k.convCase(4, 8, 3).r), wgsl(k.matmulCase(20, 12, 12).r)]) {
      expect(s).not.toMatch(/array<vec4<f32>>/);
      expect(s).toMatch(/let gj = col0 \+ tx \+ 16 \* j;/);
    }
  });

  it('the build is deterministic', async () => {
    const a = await buildOnce('makemore');
    const b = await build('makemore');
    expect(a['makemore.webgpu.js']).toBe(b['makemore.webgpu.js']);
  });

  it('create() rejects where there is no navigator.gpu (Node), naming the ways out', async () => {
    await build('neuron');
    const mod = (await import(pathToFileURL(path.join(dir, 'neuron', 'neuron.webgpu.js')).href)) as { create(o?: object): Promise<unknown> };
    await expect(mod.create()).rejects.toThrow(
      'neuron: no WebGPU here (navigator.gpu is undefined): run it in a browser with WebGPU, install a WebGPU implementation as navigator.gpu, or pass create({ device })',
    );
    await expect(mod.create({ device: 'gpu' })).rejects.toThrow("neuron: options.device must be a GPUDevice, got the string 'gpu'");
  });

  it('--optimizer adam: trainStep, readParams and readOptState, and the update shader of each param', async () => {
    const files = await build('makemore', 'adam');
    const js = files['makemore.webgpu.js']!;
    for (const m of ['initOptState(params)', 'async trainStep(params, state, inputs, stepOptions)', 'async readParams()', 'async readOptState()']) expect(js).toContain(m);
    expect(js).toContain('// --optimizer adam: the update of W1');
  });
});

describe('the WGSL renderer', () => {
  const kernel = (nodes: Kernel['nodes']): Kernel => ({
    kind: 'kernel',
    name: 'k0',
    domain: [4],
    axes: [],
    nodes,
    stores: [{ node: nodes.length - 1, access: { arg: 'y', strides: [size(1)], offset: size(0) } }],
    notes: ['%y: f32[4] = erf %x'],
  });

  it("sin and cos reduce by Payne–Hanek in an `if` on |x| ≥ 2¹⁶ (the rare wheres' block), its values used only there", () => {
    const x = { op: 'load', dtype: 'f32', access: { arg: 'x', strides: [size(1)], offset: size(0) } } as const;
    const k = kernel([x, { op: 'sin', dtype: 'f32', args: [0] }, { op: 'cos', dtype: 'f32', args: [0] }, { op: 'add', dtype: 'f32', args: [1, 2] }] as unknown as Kernel['nodes']);
    const lines = renderKernel(decompose(k, WGSL_CAPABILITIES), () => 'f32').wgsl.split('\n');
    const at = lines.findIndex((l) => /^ {2}if \(v\d+\) \{$/.test(l));
    const end = lines.indexOf('  }', at);
    // the three wheres set to Cody–Waite's values before it, to Payne–Hanek's in it
    expect(lines.slice(at - 3, at).every((l) => /^ {2}var v\d+: (f32|i32) = v\d+;$/.test(l))).toBe(true);
    expect(lines.slice(end - 3, end).every((l) => /^ {4}v\d+ = v\d+;$/.test(l))).toBe(true);
    const inside = lines.slice(at + 1, end - 3).map((l) => /^ {4}let (v\d+):/.exec(l)?.[1]);
    expect(inside.length).toBeGreaterThan(100);
    expect(inside.every(Boolean)).toBe(true);
    const after = lines.slice(end).join('\n');
    expect(inside.filter((v) => new RegExp(`\\b${v}\\b`).test(after))).toEqual([]);
  });

  it('an op outside its capabilities is a CompileError naming the op and the target', () => {
    const k = kernel([
      { op: 'load', dtype: 'f32', access: { arg: 'x', strides: [size(1)], offset: size(0) } },
      { op: 'erf', dtype: 'f32', args: [0] } as unknown as Kernel['nodes'][number],
    ]);
    expect(() => renderKernel(k, () => 'f32')).toThrow(CompileError);
    expect(() => renderKernel(k, () => 'f32')).toThrow('the webgpu target cannot render erf (in kernel k0: %y: f32[4] = erf %x)');
  });

  it('matmul tiles per shape at build time: 16 up to 16, 32 up to 32, 128 from 512, 64 between and for a symbolic extent', () => {
    expect([1, 5, 16, 17, 32, 33, 300, 511, 512, 4096].map((n) => tileOf(n))).toEqual([
      { tile: 16, regs: 1 },
      { tile: 16, regs: 1 },
      { tile: 16, regs: 1 },
      { tile: 32, regs: 2 },
      { tile: 32, regs: 2 },
      { tile: 64, regs: 4 },
      { tile: 64, regs: 4 },
      { tile: 64, regs: 4 },
      { tile: 128, regs: 8 },
      { tile: 128, regs: 8 },
    ]);
    expect(tileOf('B')).toEqual({ tile: 64, regs: 4 });
  });

  it('a large product (bench/webgpu-kernels.mjs at 1024): 128 × 128 tiles, 8 × 8 results per invocation unrolled into scalars, vec4 loads, 8 terms a step', async () => {
    const { matmulCase } = (await import(pathToFileURL(path.join(ROOT, 'bench', 'webgpu-kernels.mjs')).href)) as { matmulCase(n: number): { r: Routine } };
    const s = renderRoutine(matmulCase(1024).r, () => 'f32');
    expect(s.wgsl).toContain('var<workgroup> As: array<f32, 1024>;');
    expect(s.wgsl).toContain('c7_7 += a7 * b7;');
    expect(s.wgsl).toContain('v = a0[(1024 * gx + gk) / 4];');
    expect(s.wgsl).toMatch(/> a\d+: array<vec4<f32>>/);
    expect(s.groups).toEqual(['Math.ceil((1024) / 128)', 'Math.ceil((1024) / 128)', '1']);
  });

  it('a routine without WGSL is a CompileError naming it', () => {
    const r = { kind: 'routine', name: 'r0', op: 'fft', attrs: {}, inputs: [], output: { arg: 'y', shape: [1], strides: [size(1)], offset: size(0) }, dtype: 'f32', notes: [] } as unknown as Routine;
    expect(() => renderRoutine(r, () => 'f32')).toThrow('the webgpu target cannot render the routine fft');
  });

  it('f32 literals: integers with a point; NaN and the infinities from their bits at run time (WGSL has no literal for them, and the largest finite float was not ∞: a row of −∞ had max −3.4e38)', () => {
    expect(f32(2)).toBe('2.0');
    expect(f32(0.1)).toBe('0.1');
    expect(f32(-Infinity)).toBe('gc_special(0xff800000u)');
    expect(f32(Infinity)).toBe('gc_special(0x7f800000u)');
    expect(f32(NaN)).toBe('gc_special(0x7fc00000u)');
  });

  const sumKernel = (rows: number): Kernel => ({
    kind: 'kernel',
    name: 'k1',
    domain: [rows, 1000],
    axes: [1],
    nodes: [
      { op: 'load', dtype: 'f32', access: { arg: 'x', strides: [size(1000), size(1)], offset: size(0) } },
      { op: 'reduce', dtype: 'f32', red: 'sum', acc: 'f64', args: [0] },
    ],
    stores: [{ node: 1, access: { arg: 'y', strides: [size(1), size(0)], offset: size(0) } }],
    notes: [],
  });

  it('a reduction of many results over many terms: an invocation per result, adding blocks of 64 into its total', () => {
    const s = renderKernel(sumKernel(5000), () => 'f32');
    expect(s.wgsl).toContain('for (var rb = 0; rb < 1000; rb += 64) {');
    expect(s.wgsl).toContain('acc0 += part0;');
    expect(s.threads).toBe('5000');
  });

  it('a reduction of few results over many terms: a workgroup per result, a tree in workgroup memory', () => {
    const s = renderKernel(sumKernel(2), () => 'f32');
    expect(s.wgsl).toContain('var<workgroup> red0: array<f32, 64>;');
    expect(s.wgsl).toContain('for (var ri = li; ri < select(0, 1000, live); ri += 64) {');
    expect(s.threads).toBe('2 * 64');
  });
});

/**
 * A GPUDevice that runs no shader but keeps its buffers' bytes (writeBuffer, copyBufferToBuffer,
 * mapAsync), and records the pipelines and bind groups made: the runtime's placement of the arrays
 * and its builds per size, checked in Node.
 */
function fakeDevice(limits: Record<string, number> = {}) {
  class Buf {
    bytes: Uint8Array;
    constructor(
      size: number,
      readonly usage: number,
    ) {
      this.bytes = new Uint8Array(size);
    }
    destroy() {}
    mapAsync() {
      return Promise.resolve();
    }
    getMappedRange() {
      return this.bytes.buffer;
    }
    unmap() {}
  }
  const buffers: Buf[] = [];
  const pipelines: { code: string }[] = [];
  const binds: { code: string; buffers: Buf[] }[] = [];
  const device = {
    limits: { maxStorageBuffersPerShaderStage: 10, maxStorageBufferBindingSize: 1 << 27, maxBufferSize: 1 << 28, ...limits },
    createBuffer: ({ size, usage }: { size: number; usage: number }) => (buffers.push(new Buf(size, usage)), buffers.at(-1)!),
    queue: {
      writeBuffer(b: Buf, at: number, data: ArrayBuffer | ArrayBufferView, from = 0, n?: number) {
        const src = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data, from, n);
        b.bytes.set(src, at);
      },
      submit: (list: (() => void)[][]) => list.flat().forEach((f) => f()),
      onSubmittedWorkDone: () => Promise.resolve(),
    },
    pushErrorScope() {},
    popErrorScope: () => Promise.resolve(null),
    createShaderModule: ({ code }: { code: string }) => ({ code }),
    createComputePipeline: (d: { compute: { module: { code: string } } }) => {
      const p = { code: d.compute.module.code, getBindGroupLayout: () => p };
      pipelines.push(p);
      return p;
    },
    createBindGroup: (d: { layout: { code: string }; entries: { resource: { buffer: Buf } }[] }) => binds.push({ code: d.layout.code, buffers: d.entries.map((e) => e.resource.buffer) }),
    createCommandEncoder: () => {
      const ops: (() => void)[] = [];
      return {
        beginComputePass: () => ({ setPipeline() {}, setBindGroup() {}, dispatchWorkgroups() {}, end() {} }),
        copyBufferToBuffer: (s: Buf, so: number, d: Buf, dof: number, n: number) => ops.push(() => d.bytes.set(s.bytes.subarray(so, so + n), dof)),
        finish: () => ops,
      };
    },
  };
  return { device, buffers, pipelines, binds };
}

describe('symbolic dimensions with --optimizer (a device that runs no shader: what the runtime builds)', () => {
  const model = [
    "import { model } from 'graphc';",
    "export default model('symadam', (g) => {",
    "  const W = g.param('W', [3, 4], { scale: 0.5 });",
    "  const b = g.param('b', [4], { scale: 0.5 });",
    "  const X = g.input('X', ['B', 3]);",
    "  const Y = g.input('Y', ['B', 4]);",
    '  const y = X.matmul(W).add(b).tanh();',
    '  return { loss: y.sub(Y).square().mean(), y };',
    '});',
    '',
  ];
  type Model = Record<string, (...a: unknown[]) => Promise<Record<string, unknown>>> & { initOptState(p: object): { step: number } };
  const loaded = new Map<string, Promise<{ create(o: object): Promise<Model> }>>();
  const load = (name = 'symadam', lines = model) => loaded.get(name) ?? (loaded.set(name, build(name, lines)), loaded.get(name)!);
  const build = async (name: string, lines: string[]) => {
    const out = path.join(dir, name);
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, `${name}.ts`), lines.join('\n'));
    const { resolveHyper } = await import('../codegen/optim.js');
    const c = await compile(path.join(out, `${name}.ts`), { targets: ['webgpu'], optimizer: { name: 'adam', hyper: resolveHyper('adam', {}) } });
    for (const f of c.files) writeFileSync(path.join(out, f.name), f.content);
    return (await import(pathToFileURL(path.join(out, `${name}.webgpu.js`)).href)) as { create(o: object): Promise<Model> };
  };
  const batch = (B: number) => ({ X: new Float32Array(3 * B).fill(0.5), Y: new Float32Array(4 * B).fill(0.25) });
  const params = () => ({ W: Float32Array.from({ length: 12 }, (_x, i) => i / 8), b: Float32Array.from([1, 2, 3, 4]) });

  it('trainStep at two sizes, queued together: a build per size (each step with its own sizes), the params, optimizer state and gradients in arenas both builds bind', async () => {
    const mod = await load();
    const f = fakeDevice();
    const m = await mod.create({ device: f.device });
    const p = params();
    const state = m.initOptState(p);
    // the second call binds B = 5 before the first one's step runs
    await Promise.all([m.trainStep!(p, state, batch(2)), m.trainStep!(p, state, batch(5))]);
    const per = f.pipelines.length / 2;
    expect(Number.isInteger(per) && per > 5).toBe(true);
    expect(f.pipelines.slice(0, per).map((x) => x.code)).not.toEqual(f.pipelines.slice(per).map((x) => x.code));
    // the update shaders (they bind only resident arrays) bind the same buffers at both sizes; the product of X, not
    const bound = (what: RegExp) => f.binds.filter((x) => what.test(x.code)).map((x) => x.buffers);
    const updates = bound(/--optimizer adam: the update of W/);
    expect(updates.length).toBe(2);
    expect(updates[1]).toEqual(updates[0]);
    const firsts = f.binds.filter((_x, i) => i === 0 || i === per).map((x) => x.buffers);
    expect(firsts[1]!.some((x) => !firsts[0]!.includes(x))).toBe(true);
    // the resident arenas are made once: a build after the first makes only the arenas of its sizes
    const storage = () => f.buffers.filter((x) => x.usage & 128).length;
    const two = storage();
    await m.trainStep!(p, state, batch(7));
    const own = storage() - two;
    expect(own).toBeGreaterThan(0);
    expect(two - 2 * own, 'the shared arenas').toBeGreaterThan(0);
    // readParams and readOptState read the resident arrays (this device runs no update: the params as passed in)
    expect(await m.readParams!()).toEqual(params());
    expect((await m.readOptState!()).step).toBe(3);
    m.destroy!();
  });

  it('an array past what the device binds in one buffer: a RangeError naming it and the sizes', async () => {
    const mod = await load();
    const m = await mod.create({ device: fakeDevice({ maxStorageBufferBindingSize: 4096 }).device });
    const p = params();
    await expect(m.forward!(p, batch(1000))).rejects.toThrow(
      "symadam: array 'X' takes 12000 bytes at B = 1000, and this device binds at most 4096 in one buffer (maxStorageBufferBindingSize, maxBufferSize): call it with smaller sizes or run it on an adapter that offers more",
    );
    await expect(m.trainStep!(p, m.initOptState(p), batch(1000))).rejects.toThrow(RangeError);
    // a size that fits still runs
    expect(((await m.trainStep!(p, m.initOptState(p), batch(2))) as { loss: number }).loss).toBe(0);
  });

  it('dropout over a symbolic dimension: the mask sized by the sizes of the call (forward in training, trainStep at two sizes)', async () => {
    // the mask's length, 4·B, was computed from a `B` the module does not define (a ReferenceError)
    const lines = model.map((l) => l.replace("model('symadam'", "model('symdrop'").replace('.add(b).tanh();', '.add(b);').replace('  return {', '  const d = g.dropout(y, 0.5);\n  return {').replace('y.sub(Y)', 'd.sub(Y)'));
    expect(lines.join('\n')).toContain('g.dropout(y, 0.5)');
    const mod = await load('symdrop', lines);
    const m = await mod.create({ device: fakeDevice().device });
    const p = params();
    expect(((await m.forward!(p, batch(3), { train: true, seed: 1 })) as { y: Float32Array }).y.length).toBe(12);
    const state = m.initOptState(p);
    await Promise.all([m.trainStep!(p, state, batch(2)), m.trainStep!(p, state, batch(5))]);
    expect(state.step).toBe(2);
  });
});
