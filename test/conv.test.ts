// Convolutions and pooling (g.conv2d, g.conv1d, g.maxPool2d, g.avgPool2d, g.maxPool1d,
// g.avgPool1d): every form (strides, paddings incl. 'same' and causal, dilations, groups incl.
// depthwise, ragged sizes, 1×1 kernels, kernel = input, a symbolic batch) on every target (flat,
// wasm, GPU.js in cpu mode) against the float64 interpreter, and the interpreter's gradients
// against central finite differences.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileGraphs } from '../src/build.js';
import { indent } from '../codegen/module.js';
import { emitGpu } from '../codegen/gpu.js';
import { emitTs } from '../codegen/ts.js';
import { emitWasm } from '../codegen/wasm.js';
import type { GeneratedModule, GpuModule } from './helpers.js';
import { reverseMode } from '../ir/autodiff.js';
import { parseGraph } from '../ir/parse.js';
import { printGraph } from '../ir/print.js';
import { traceModel } from '../src/frontend.js';
import { loadModel } from '../src/loader.js';
import { expectGolden, ROOT, finiteDiff, modelFile, randomArgs, reference, relErr, rng, run, tmp } from './helpers.js';

/** Model bodies: `y` is the value under test; the loss is sum(y · R) for a random input R. */
const FORMS: Record<string, string> = {
  conv2d_plain: `const x = g.input('x', [2, 3, 6, 5]); const w = g.param('w', [4, 3, 3, 3]); const y = g.conv2d(x, w);`,
  conv2d_bias_relu: `const x = g.param('x', [2, 2, 5, 5]); const w = g.param('w', [3, 2, 3, 3]); const b = g.param('b', [3]); const y = g.conv2d(x, w, { bias: b }).relu();`,
  conv2d_stride_pad: `const x = g.param('x', [2, 2, 7, 6]); const w = g.param('w', [3, 2, 3, 2]); const y = g.conv2d(x, w, { stride: [2, 3], padding: [1, 2] });`,
  conv2d_dilation: `const x = g.param('x', [1, 2, 9, 8]); const w = g.param('w', [2, 2, 3, 3]); const y = g.conv2d(x, w, { dilation: [2, 3], padding: 1 });`,
  conv2d_same: `const x = g.param('x', [2, 1, 6, 7]); const w = g.param('w', [2, 1, 4, 3]); const y = g.conv2d(x, w, { padding: 'same', dilation: [1, 2] });`,
  conv2d_groups: `const x = g.param('x', [2, 4, 5, 5]); const w = g.param('w', [6, 2, 2, 3]); const y = g.conv2d(x, w, { groups: 2, stride: 2 });`,
  conv2d_depthwise: `const x = g.param('x', [2, 3, 6, 6]); const w = g.param('w', [3, 1, 3, 3]); const b = g.param('b', [3]); const y = g.conv2d(x, w, { groups: 3, padding: 1, bias: b });`,
  conv2d_1x1: `const x = g.param('x', [3, 5, 4, 3]); const w = g.param('w', [2, 5, 1, 1]); const y = g.conv2d(x, w);`,
  conv2d_kernel_is_input: `const x = g.param('x', [2, 3, 4, 5]); const w = g.param('w', [2, 3, 4, 5]); const y = g.conv2d(x, w);`,
  conv2d_ragged_stride: `const x = g.param('x', [1, 2, 8, 7]); const w = g.param('w', [3, 2, 3, 3]); const y = g.conv2d(x, w, { stride: 3, padding: [0, 1] });`,
  conv1d_plain: `const x = g.param('x', [2, 3, 9]); const w = g.param('w', [4, 3, 3]); const b = g.param('b', [4]); const y = g.conv1d(x, w, { bias: b }).tanh();`,
  conv1d_causal: `const x = g.param('x', [2, 2, 8]); const w = g.param('w', [3, 2, 2]); const y = g.conv1d(x, w, { padding: [(2 - 1) * 4, 0], dilation: 4 });`,
  conv1d_stride_groups: `const x = g.param('x', [2, 4, 11]); const w = g.param('w', [2, 2, 3]); const y = g.conv1d(x, w, { stride: 2, padding: 1, groups: 2 });`,
  conv1d_same: `const x = g.param('x', [1, 2, 7]); const w = g.param('w', [2, 2, 4]); const y = g.conv1d(x, w, { padding: 'same' });`,
  maxpool2d: `const x = g.param('x', [2, 3, 6, 6]); const y = g.maxPool2d(x, 2);`,
  maxpool2d_stride_pad: `const x = g.param('x', [2, 2, 7, 5]); const y = g.maxPool2d(x, [3, 2], { stride: [2, 1], padding: [1, 1] });`,
  maxpool2d_overlap_ragged: `const x = g.param('x', [1, 2, 7, 7]); const y = g.maxPool2d(x, 3, { stride: 2 });`,
  avgpool2d: `const x = g.param('x', [2, 3, 6, 4]); const y = g.avgPool2d(x, 2);`,
  avgpool2d_pad: `const x = g.param('x', [2, 2, 5, 5]); const y = g.avgPool2d(x, 3, { stride: 2, padding: 1 });`,
  maxpool1d: `const x = g.param('x', [2, 3, 9]); const y = g.maxPool1d(x, 3, { stride: 2, padding: 1 });`,
  avgpool1d: `const x = g.param('x', [2, 3, 8]); const y = g.avgPool1d(x, 2);`,
  // max pooling's gradient inside the model (g.grad), so that its gradient is max_pool_pick
  maxpool2d_twice: `const x = g.param('x', [2, 2, 7, 7]); const [dx] = g.grad(g.maxPool2d(x, 3, { stride: 2, padding: 1 }).square().sum(), [x]); const y = dx.mul(x);`,
  pool_kernel_is_input: `const x = g.param('x', [2, 2, 3, 4]); const y = g.maxPool2d(x, [3, 4]).add(g.avgPool2d(x, [3, 4]));`,
  // edge cases of the wasm module's implicit GEMM: rows copied by a loop (over 16 f32x4 chunks) with a
  // scalar remainder, strided rows by a scalar loop, taps that fall wholly in the padding, groups of
  // ragged sizes (5 output channels, 18-long rows of the weight), a depthwise multiplier
  gemm_wide_rows: `const x = g.param('x', [1, 2, 3, 75]); const w = g.param('w', [3, 2, 2, 3]); const y = g.conv2d(x, w, { padding: [0, 1] });`,
  gemm_wide_strided: `const x = g.param('x', [1, 1, 2, 70]); const w = g.param('w', [2, 1, 1, 3]); const y = g.conv2d(x, w, { stride: [1, 2] });`,
  gemm_empty_taps: `const x = g.param('x', [1, 1, 2, 2]); const w = g.param('w', [2, 1, 3, 3]); const y = g.conv2d(x, w, { padding: 2, dilation: 2 });`,
  gemm_groups_ragged: `const x = g.param('x', [2, 6, 9, 8]); const w = g.param('w', [10, 3, 2, 3]); const y = g.conv2d(x, w, { groups: 2, stride: [2, 1], dilation: [1, 2], padding: [1, 0] });`,
  // large enough that the implicit GEMM reads B (the col, and dy) from panels copied one at a time
  // (K·S > PANEL_MIN_FLOATS for the forward, 36·516, and the input gradient, 16·516; 129 vectors
  // per row of B, so the last panel is narrower)
  gemm_panels: `const x = g.param('x', [2, 4, 12, 43]); const w = g.param('w', [16, 4, 3, 3]); const b = g.param('b', [16]); const y = g.conv2d(x, w, { padding: 1, bias: b });`,
  // output rows of whole 8-column panels (Wo = 16): the forward's col is written straight into the
  // matmul's panels, edge vectors lane by lane; with groups, a vertical stride, dilation and a tap
  // wholly in the padding of some rows
  gemm_col_in_panels: `const x = g.param('x', [2, 4, 7, 16]); const w = g.param('w', [6, 2, 3, 3]); const y = g.conv2d(x, w, { groups: 2, stride: [2, 1], dilation: [1, 2], padding: [1, 2] });`,
  // the input gradient of a stride-1 convolution whose dx rows are whole panels (W = 16): a
  // convolution of dy by the flipped weights, dy's col in panels (more output than input channels)
  gemm_grad_in_panels: `const x = g.param('x', [2, 2, 5, 16]); const w = g.param('w', [6, 1, 2, 4]); const y = g.conv2d(x, w, { groups: 2, dilation: [2, 1], padding: 'same' });`,
  // the forward and the input gradient row by output row (convRows): an x narrower than a vector
  // (its inside lanes copied one by one), and a K of 270 > MATMUL_BLOCK (the forward's col in panels
  // with its sums in blocks; its input gradient, K = 27, row by row)
  gemm_rows_narrow_x: `const x = g.param('x', [1, 2, 3, 2]); const w = g.param('w', [2, 2, 3, 1]); const y = g.conv2d(x, w, { padding: [1, 3] });`,
  gemm_rows_wide_k: `const x = g.param('x', [1, 30, 3, 8]); const w = g.param('w', [3, 30, 3, 3]); const y = g.conv2d(x, w, { padding: 1 });`,
  // the input gradient's K = 30·9 = 270 > MATMUL_BLOCK: dy's col in panels and the matmul kernel (the forward row by row)
  gemm_grad_wide_k: `const x = g.param('x', [1, 2, 3, 8]); const w = g.param('w', [30, 2, 3, 3]); const y = g.conv2d(x, w, { padding: 1 });`,
  gemm_depthwise_multiplier: `const x = g.param('x', [2, 3, 5, 6]); const w = g.param('w', [6, 1, 3, 3]); const y = g.conv2d(x, w, { groups: 3, padding: 1, stride: 2 });`,
  // a conv group's epilogue operands: per channel (the bias), laid out as the output, as one
  // output plane ([Ho, Wo], broadcast over images and channels), and by rows alone ([Ho, 1])
  conv2d_epilogue_operands: `const x = g.param('x', [2, 2, 5, 5]); const w = g.param('w', [3, 2, 3, 3]); const b = g.param('b', [3]);
  const r = g.param('r', [2, 3, 3, 3]); const s = g.param('s', [3, 3]); const y = g.conv2d(x, w, { bias: b }).add(r).mul(s).relu();`,
  conv2d_epilogue_rows: `const x = g.param('x', [2, 2, 6, 5]); const w = g.param('w', [3, 2, 3, 2]); const c = g.param('c', [4, 1]);
  const y = g.conv2d(x, w, { padding: [0, 0] }).mul(c).sigmoid();`,
  lenet_stage: `const x = g.input('x', ['B', 1, 8, 8]); const w = g.param('w', [2, 1, 3, 3]); const b = g.param('b', [2]);
  const h = g.maxPool2d(g.conv2d(x, w, { bias: b }).relu(), 2); const v = g.param('v', [2, 2, 2, 2]); const y = g.conv2d(h, v);`,
};

function source(name: string, body: string): string {
  return `import { model } from 'graphc';
export default model('${name}', (g) => {
  ${body}
  const R = g.input('R', y.dims);
  return { loss: y.mul(R).sum(), y };
});
`;
}

/** The three modules as plain JavaScript (unformatted: prettier would take most of the time). */
async function build(name: string, body: string) {
  const file = modelFile(source(name, body));
  const { fwd, bwd, plan } = compileGraphs(file);
  const info = { name, plan, source: 'model.ts', fwd, bwd, sourceLine: () => undefined };
  const c = { fwd, bwd };
  const dir = tmp();
  // the wasm target takes static shapes only (for now): a symbolic batch is checked on the others
  const symbolic = fwd.insts.some((i) => fwd.type(i.result).shape.some((d) => typeof d === 'string'));
  type Emit = (m: typeof info, typed: boolean) => string;
  const targets: [string, Emit][] = [['', emitTs], ['.gpu', emitGpu], ...(symbolic ? [] : [['.wasm', emitWasm] as [string, Emit]])];
  for (const [suffix, emit] of targets) writeFileSync(path.join(dir, `${name}${suffix}.js`), indent(emit(info, false)));
  const load = async <T>(suffix: string) => (await import(pathToFileURL(path.join(dir, `${name}${suffix}.js`)).href)) as T;
  const wasmText = symbolic ? '' : readFileSync(path.join(dir, `${name}.wasm.js`), 'utf8');
  return { c, flat: await load<GeneratedModule>(''), wasm: symbolic ? undefined : await load<GeneratedModule>('.wasm'), wasmText, gpu: await load<GpuModule>('.gpu') };
}

/**
 * The wasm kernels some forms are there to reach, by the kernel list's words (codegen/wasm.ts): the
 * forward and a stride-1 input gradient output row by output row (`convRows`) where K fits one
 * block, else through the matmul kernel.
 */
const PATHS: Record<string, { kernel: string; has: boolean }[]> = {
  gemm_rows_wide_k: [
    { kernel: 'conv_y', has: false },
    { kernel: 'conv_input_grad_dx', has: true },
  ],
  gemm_grad_wide_k: [
    { kernel: 'conv_y', has: true },
    { kernel: 'conv_input_grad_dx', has: false },
  ],
};

describe.each(Object.entries(FORMS))('%s', (name, body) => {
  it('agrees with the float64 interpreter on every target; the interpreter with finite differences', async () => {
    const { c, flat, wasm, wasmText, gpu } = await build(name, body);
    for (const { kernel, has } of PATHS[name] ?? []) {
      const line = wasmText.split('\n').find((l) => l.startsWith(`//   ${kernel}: `));
      expect(line, `${name}: the kernel ${kernel} in the list`).toBeDefined();
      expect(line!.includes('output row by output row'), `${name}: ${kernel} row by row? ${line}`).toBe(has);
    }
    const { params, inputs } = randomArgs(c.fwd, 3, 1, { B: 3 });
    // distinct values, so that no window holds a tie within rounding (ties go to the first)
    const ref = reference(c.fwd, c.bwd, params, inputs);
    const gm = await gpu.create({ mode: 'cpu' });
    try {
      const runs: [string, { loss: number; grads: Record<string, Float32Array> }][] = [
        ['flat', flat.valueAndGrad(params, inputs)],
        ...(wasm ? [['wasm', wasm.valueAndGrad(params, inputs)] as [string, { loss: number; grads: Record<string, Float32Array> }]] : []),
        ['gpu', await gm.valueAndGrad(params, inputs)],
      ];
      for (const [target, got] of runs) {
        expect(relErr([got.loss], ref.outputs.loss!.data), `${target}: loss`).toBeLessThan(1e-5);
        for (const [k, gr] of Object.entries(got.grads)) expect(relErr(gr, ref.grads[k]!), `${target}: d loss / d ${k}`).toBeLessThan(1e-4);
      }
      expect(relErr(flat.forward(params, inputs).y as Float32Array, ref.outputs.y!.data), 'flat: y').toBeLessThan(1e-5);
      expect(relErr((await gm.forward(params, inputs)).y as Float32Array, ref.outputs.y!.data), 'gpu: y').toBeLessThan(1e-5);
    } finally {
      gm.destroy();
    }
    for (const k of Object.keys(ref.grads)) {
      const r = rng(7);
      const n = ref.grads[k]!.length;
      const idx = Array.from({ length: Math.min(6, n) }, (_, i) => (n <= 6 ? i : Math.floor(r() * n)));
      const fd = idx.map((i) => finiteDiff(c.fwd, params, inputs, k, i));
      expect(relErr(idx.map((i) => ref.grads[k]![i]!), fd), `float64 d loss / d ${k} vs finite differences`).toBeLessThan(1e-5);
    }
  });
});

describe('conv groups (the flat module fuses a convolution, its bias and its activation)', () => {
  const forwardOf = (name: string) => {
    const { fwd, bwd, plan } = compileGraphs(modelFile(source(name, FORMS[name]!)));
    const code = emitTs({ name, plan, source: 'model.ts', fwd, bwd, sourceLine: () => undefined });
    return { fwd, forward: code.slice(code.indexOf('function forwardPass'), code.indexOf('/** Runs the model forward')) };
  };

  it('conv2d + bias + relu is one conv group: without padding, the epilogue runs on the sums in registers', () => {
    const { fwd, forward } = forwardOf('conv2d_bias_relu');
    expect(printGraph(fwd)).toMatch(/group g0 conv \{\n {4}%t\d+: f32\[2,3,3,3\] = conv %x, %w [^\n]*\n {4}%t\d+: f32\[2,3,3,3\] = add [^\n]*\n {4}%y: f32\[2,3,3,3\] = relu /);
    expect(forward).toContain('// y = relu(conv2d(x: [2, 2, 5, 5], w: [3, 2, 3, 3]) + b)');
    // the bias read once per output plane; each output's sum, then its bias and relu, written once
    // (and the loss's y · R, of the same shape, joins the group too)
    expect(forward).toMatch(/const _pc0 = t\d+\[m\];\n/);
    expect(forward).toMatch(/\{\nt\d+\[_o\] = _c0;\nconst (_t\d+) = _c0 \+ _pc0;\nconst _y = \1 > 0 \? \1 : 0;\ny\[_o\] = _y;\nt\d+\[_o\] = _y \* R\[_o\];\n\}/);
    expect(forward.match(/^for \(let n = 0;/gm)).toHaveLength(1);
  });

  it('with padding, the epilogue runs over each output plane as soon as it is accumulated', () => {
    const { fwd, forward } = forwardOf('conv2d_depthwise');
    expect(printGraph(fwd)).toMatch(/group g0 conv \{/);
    expect(forward).toContain('// y = conv2d(x: [2, 3, 6, 6], w: [3, 1, 3, 3], padding=1, groups=3) + b');
    expect(forward).toMatch(/const _pc0 = t\d+\[m\];\nfor \(let _o = _yb; _o < _yb \+ 36; _o\+\+\) \{\nconst _y = t\d+\[_o\] \+ _pc0;\ny\[_o\] = _y;\n/);
    expect(forward.match(/^for \(let n = 0;/gm)).toHaveLength(1);
  });
});

// Located build errors of the conv and pool ops: exact text (file:line:col, the line, the fix).
const ERRORS: Record<string, string> = {
  channels: "test/fixtures/errors/conv/channels.ts:4:12: error: conv2d: the weight f32[4,2,3,3] takes 2 input channels per group, but x f32[2,3,8,8] has 3\n  4 |   return g.conv2d(x, W).sum();\n    |            ^^^^^^\n  fix: the weight's second dimension must be C / groups = 3\n",
  groups_in: "test/fixtures/errors/conv/groups_in.ts:4:12: error: conv2d: the 3 input channels of x f32[2,3,8,8] are not divisible by groups = 2\n  4 |   return g.conv2d(x, W, { groups: 2 }).sum();\n    |            ^^^^^^\n  fix: groups must divide both the input and the output channels\n",
  groups_out: "test/fixtures/errors/conv/groups_out.ts:4:12: error: conv2d: the 3 output channels of the weight f32[3,2,3,3] are not divisible by groups = 2\n  4 |   return g.conv2d(x, W, { groups: 2 }).sum();\n    |            ^^^^^^\n  fix: groups must divide both the input and the output channels\n",
  kernel_large: "test/fixtures/errors/conv/kernel_large.ts:4:12: error: conv2d: the kernel (5 along H) is larger than the padded input (4 + padding 0 = 4) of x f32[1,1,4,4]\n  4 |   return g.conv2d(x, W, { padding: [0, 1] }).sum();\n    |            ^^^^^^\n  fix: use a smaller kernel, or pad the input\n",
  output_empty: "test/fixtures/errors/conv/output_empty.ts:4:12: error: conv2d: the output size along H would be -1: the dilated kernel spans 3·(3 − 1) + 1 = 7, more than the padded input's 5\n  4 |   return g.conv2d(x, W, { dilation: 3 }).sum();\n    |            ^^^^^^\n  fix: use a smaller dilation or kernel, or pad the input\n",
  pool_large: "test/fixtures/errors/conv/pool_large.ts:4:12: error: maxPool2d: the kernel (4 along H) is larger than the padded input (3 + padding 0 = 3) of x f32[1,2,3,3]\n  4 |   return g.maxPool2d(x, 4).sum();\n    |            ^^^^^^^^^\n  fix: use a smaller kernel, or pad the input\n",
  pool_padding: "test/fixtures/errors/conv/pool_padding.ts:4:12: error: avgPool1d: padding 2 along L is more than half the kernel 2\n  4 |   return g.avgPool1d(x, 2, { padding: 2 }).sum();\n    |            ^^^^^^^^^\n  fix: as in PyTorch, pooling pads at most half the kernel on each side (so that every window holds an input)\n",
  rank: "test/fixtures/errors/conv/rank.ts:4:12: error: conv2d: x must be an f32 tensor [N, C, H, W], got f32[1,28,28]\n  4 |   return g.conv2d(x, W).sum();\n    |            ^^^^^^\n  fix: reshape it, e.g. x.reshape([B, 1, 28, 28]) for one channel of 28×28 images\n",
  same_stride: "test/fixtures/errors/conv/same_stride.ts:4:12: error: conv2d: padding 'same' needs stride 1, got stride 2\n  4 |   return g.conv2d(x, W, { padding: 'same', stride: 2 }).sum();\n    |            ^^^^^^\n  fix: PyTorch defines 'same' padding for stride 1 only; give the padding as a number\n",
  stride_fraction: "test/fixtures/errors/conv/stride_fraction.ts:4:12: error: conv2d: stride must be a positive integer or a pair [h, w] of them, got 1.5\n  4 |   return g.conv2d(x, W, { stride: 1.5 }).sum();\n    |            ^^^^^^\n  fix: e.g. stride: 2 or [2, 1]\n",
  weight_rank: "test/fixtures/errors/conv/weight_rank.ts:4:12: error: conv1d: the weight must be an f32 tensor [O, C/groups, k], got f32[4,3,3,3]\n  4 |   return g.conv1d(x, W).sum();\n    |            ^^^^^^\n  fix: declare it as g.param('W', [outChannels, inChannels / groups, k])\n",
};

describe('conv and pool build errors', () => {
  it.each(Object.keys(ERRORS))('%s: exact message, exit 1, nothing written', async (name) => {
    const dir = path.join(tmp(), 'out');
    const r = await run(['build', `test/fixtures/errors/conv/${name}.ts`, '--out', dir]);
    expect(r.err).toBe(ERRORS[name]);
    expect(r.code).toBe(1);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('examples/cnn.ts (LeNet-style, batch 64)', () => {
  const file = path.join(ROOT, 'examples', 'cnn.ts');
  it('matches its golden IR, which parses back to the same graph', () => {
    const { fwd, bwd } = compileGraphs(file);
    expectGolden('cnn.ir', printGraph(fwd));
    expectGolden('cnn.grad.ir', printGraph(bwd));
    for (const g of [fwd, bwd]) expect(printGraph(parseGraph(printGraph(g)))).toBe(printGraph(g));
    // the gradients of the convolutions are convolutions, shown in the backward IR
    expect(printGraph(bwd)).toMatch(/%dh1: f32\[64,6,12,12\] = conv_input_grad %\w+, %W2 /);
    expect(printGraph(bwd)).toMatch(/%dW1: f32\[6,1,5,5\] = conv_weight_grad %x, %\w+ /);
  });

  it('flat and wasm modules give the float64 loss and gradients; rewrites change no value', async () => {
    const { fwd, bwd, plan } = compileGraphs(file);
    const info = { name: 'cnn', plan, source: 'cnn.ts', fwd, bwd, sourceLine: () => undefined };
    const dir = tmp();
    writeFileSync(path.join(dir, 'cnn.js'), indent(emitTs(info, false)));
    writeFileSync(path.join(dir, 'cnn.wasm.js'), indent(emitWasm(info, false)));
    const flat = (await import(pathToFileURL(path.join(dir, 'cnn.js')).href)) as GeneratedModule;
    const wasm = (await import(pathToFileURL(path.join(dir, 'cnn.wasm.js')).href)) as GeneratedModule;
    const { params, inputs } = randomArgs(fwd, 5, 0.5);
    const ref = reference(fwd, bwd, params, inputs);
    const plain = traceModel(loadModel(file)).graph;
    const plainRef = reference(plain, reverseMode(plain), params, inputs);
    for (const [target, mod] of [['flat', flat], ['wasm', wasm]] as const) {
      const got = mod.valueAndGrad(params, inputs);
      expect(relErr([got.loss], ref.outputs.loss!.data), `${target}: loss`).toBeLessThan(1e-5);
      for (const [k, g] of Object.entries(got.grads)) expect(relErr(g, ref.grads[k]!), `${target}: gradient of ${k}`).toBeLessThan(1e-4);
    }
    for (const k of Object.keys(ref.grads)) expect(relErr(ref.grads[k]!, plainRef.grads[k]!), k).toBeLessThan(1e-9);
  });
});
