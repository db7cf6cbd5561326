// Every options object of the DSL rejects a key it does not read (a misspelt option, such as
// torch's snake_case, used to be ignored: a model that silently computed something else), with
// the call's line, graphc's spelling and the accepted options. The models are .js files, which
// the type-checker does not see, as a JavaScript user's or an options object built at run time.

import { describe, expect, it } from 'vitest';
import { compileGraphs } from '../src/build.js';
import { CompileError } from '../ir/errors.js';
import { modelFile } from './helpers.js';

/** The error of a model whose body (with x [4, 6], x4 [2, 3, 5, 5], x3 [2, 3, 8], t the i32 targets [4]) returns `expr`. */
function errorOf(expr: string): { message: string; hint?: string; line?: number } {
  const src = `import { model } from 'graphc';
export default model('bad', (g) => {
  const x = g.param('x', [4, 6]);
  const x4 = g.param('x4', [2, 3, 5, 5]);
  const x3 = g.param('x3', [2, 3, 8]);
  const w4 = g.param('w4', [4, 3, 3, 3]);
  const w3 = g.param('w3', [4, 3, 3]);
  const t = g.input('t', [4], 'i32');
  return ${expr};
});
`;
  try {
    compileGraphs(modelFile(src, 'bad.js'));
  } catch (e) {
    if (!(e instanceof CompileError)) throw e;
    return { message: e.message, hint: e.hint, line: e.loc?.line };
  }
  throw new Error(`${expr} built`);
}

const CASES: [string, string, string][] = [
  // [expression, message, fix]
  [
    'g.crossEntropy(x, t, { label_smoothing: 0.1, ignore_index: 0 })',
    "crossEntropy: unknown options 'label_smoothing' and 'ignore_index'",
    'write labelSmoothing for label_smoothing and ignoreIndex for ignore_index; the options of g.crossEntropy are axis, ignoreIndex, labelSmoothing, weight, reduction',
  ],
  ['g.nllLoss(x, t, { dim: 1 })', "nllLoss: unknown option 'dim'", 'write axis for dim; the options of g.nllLoss are axis, ignoreIndex, labelSmoothing, weight, reduction'],
  ['x.var(0, { unbiased: false }).sum()', "var: unknown option 'unbiased'", "write correction: 0 for torch's unbiased: false (unbiased: true is the default, correction: 1); the options of x.var are correction, keepDims"],
  ['x.std(0, { keepdim: true }).sum()', "std: unknown option 'keepdim'", 'write keepDims for keepdim; the options of x.std are correction, keepDims'],
  ['g.mseLoss(x, 0, { reduce: false })', "mseLoss: unknown option 'reduce'", 'the options of g.mseLoss are reduction'],
  ['g.l1Loss(x, 0, { Reduction: "sum" })', "l1Loss: unknown option 'Reduction'", 'write reduction for Reduction; the options of g.l1Loss are reduction'],
  ['g.huberLoss(x, 0, { beta: 1 })', "huberLoss: unknown option 'beta'", 'the options of g.huberLoss are delta, reduction'],
  ['g.binaryCrossEntropy(x.sigmoid(), 0, { size_average: true })', "binaryCrossEntropy: unknown option 'size_average'", 'the options of g.binaryCrossEntropy are weight, posWeight, reduction'],
  ['g.binaryCrossEntropyWithLogits(x, 0, { pos_weight: [1, 1, 1, 1, 1, 1] })', "binaryCrossEntropyWithLogits: unknown option 'pos_weight'", 'write posWeight for pos_weight; the options of g.binaryCrossEntropyWithLogits are weight, posWeight, reduction'],
  ['g.normalize(x, { dim: 1 }).sum()', "normalize: unknown option 'dim'", 'write axis for dim; the options of g.normalize are p, axis, eps'],
  ['g.cosineSimilarity(x, x, { dim: 0 }).sum()', "cosineSimilarity: unknown option 'dim'", 'write axis for dim; the options of g.cosineSimilarity are axis, eps'],
  ['g.layerNorm(x, 1, 0, { elementwise_affine: false }).sum()', "layerNorm: unknown option 'elementwise_affine'", 'the options of g.layerNorm are eps'],
  ['g.batchNorm(x, 1, 0, { track_running_stats: true }).sum()', "batchNorm: unknown option 'track_running_stats'", 'the options of g.batchNorm are axis, correction, eps, momentum, name'],
  ['g.groupNorm(x4, 3, 1, 0, { affine: false }).sum()', "groupNorm: unknown option 'affine'", 'the options of g.groupNorm are eps'],
  ['g.convTranspose2d(x4, w4.transpose([1, 0, 2, 3]), { output_padding: 1 }).sum()', "convTranspose2d: unknown option 'output_padding'", 'write outputPadding for output_padding; the options of g.convTranspose2d are bias, stride, padding, outputPadding, dilation, groups'],
  ['g.upsample(x4, { scale_factor: 2, align_corners: true }).sum()', "upsample: unknown options 'scale_factor' and 'align_corners'", 'write alignCorners for align_corners; write scale for scale_factor; the options of g.upsample are scale, mode, alignCorners'],
  ['g.conv2d(x4, w4, { padding_mode: "zeros" }).sum()', "conv2d: unknown option 'padding_mode'", 'the options of g.conv2d are bias, stride, padding, dilation, groups'],
  ['g.conv1d(x3, w3, { Stride: 2 }).sum()', "conv1d: unknown option 'Stride'", 'write stride for Stride; the options of g.conv1d are bias, stride, padding, dilation, groups'],
  ['g.maxPool2d(x4, 2, { ceil_mode: true }).sum()', "maxPool2d: unknown option 'ceil_mode'", 'the options of g.maxPool2d are stride, padding'],
  ['g.avgPool1d(x3, 2, { count_include_pad: false }).sum()', "avgPool1d: unknown option 'count_include_pad'", 'the options of g.avgPool1d are stride, padding'],
  ["g.param('W', [4], { weight_decay: 0 }).sum()", "param 'W': unknown option 'weight_decay'", 'write weightDecay for weight_decay; the options of g.param are init, gain, a, scale, trainable, weightDecay, lrScale'],
  ["g.input('u', [4], 'f32', { requires_grad: true }).sum()", "input: unknown option 'requires_grad'", 'the options of g.input are grad'],
];

describe('options objects', () => {
  it.each(CASES)('%s: a located error naming the key, its spelling and the options', (expr, message, hint) => {
    expect(errorOf(expr)).toEqual({ message, hint, line: 9 });
  });

  it('that are not objects are an error too (a conv used to read options.stride of a number)', () => {
    expect(errorOf('g.conv2d(x4, w4, 2).sum()')).toEqual({ message: 'conv2d: the options must be an object, got 2', hint: 'e.g. g.conv2d(x, w, { stride: 2, padding: 1 })', line: 9 });
    expect(errorOf('g.layerNorm(x, 1, 0, 1e-5).sum()')).toEqual({ message: 'layerNorm: the options must be an object, got 0.00001', hint: 'e.g. g.layerNorm(x, gain, bias, { eps: 1e-5 })', line: 9 });
  });

  it('with only known keys still build', () => {
    const src = `import { model } from 'graphc';
export default model('ok', (g) => {
  const x = g.param('x', [4, 6]);
  const t = g.input('t', [4], 'i32', {});
  const bn = g.batchNorm(x, 1, 0, { eps: 1e-5, momentum: 0.1 });
  const a = g.crossEntropy(bn, t, { axis: -1, ignoreIndex: 0, labelSmoothing: 0.1, weight: [1, 1, 1, 1, 1, 1], reduction: 'mean' });
  return a.add(x.var(0, { correction: 0, keepDims: true }).sum()).add(g.layerNorm(x, 1, 0, { eps: 1e-5 }).sum());
});
`;
    expect(() => compileGraphs(modelFile(src, 'ok.js'))).not.toThrow();
  });
});
