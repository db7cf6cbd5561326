// PyTorch's vocabulary (issue #31): every op, layout call, loss and init built as a composite,
// against PyTorch 1.13 itself in float64 (/usr/bin/python3 with torch; skipped when absent) at
// chosen points that include the kinks (values and gradients of Σ y·R), against float64
// formulas written here, and the interpreter's gradients against finite differences. All cases
// are one model, so that it is traced and lowered once.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileGraphs } from '../src/build.js';
import { interpret, outputsOf } from '../ir/interp.js';
import type { Arrays } from './helpers.js';
import { finiteDiff, modelFile, reference, relErr, rng, randn, smoothAt } from './helpers.js';

interface Case {
  /** Params: name → shape (values from `values` or random). */
  params: Record<string, number[]>;
  /** The DSL expression of y (params by name, `t` the i32 targets [4], `t3` [2, 3], `mask` an f32 0/1 [4, 5]). */
  dsl: string;
  /** The same in PyTorch (F = torch.nn.functional). */
  torch: string;
  /** Chosen values (kinks, ties) for the comparison with torch; random N(0,1) otherwise. */
  values?: Record<string, number[]>;
}

const K = [-2, -0.5, 0, 0, 0.5, 1, 2, 20.5, -30, 3]; // kinks and far tails
const kinks = (n: number) => Array.from({ length: n }, (_, i) => K[i % K.length]! + (i >= K.length ? 0.25 * i : 0));

const CASES: Record<string, Case> = {
  silu: { params: { silu_x: [10] }, dsl: 'silu_x.silu()', torch: 'F.silu(silu_x)', values: { silu_x: kinks(10) } },
  logSigmoid: { params: { ls_x: [10] }, dsl: 'ls_x.logSigmoid()', torch: 'F.logsigmoid(ls_x)', values: { ls_x: kinks(10) } },
  softplus: { params: { sp_x: [10] }, dsl: 'sp_x.softplus()', torch: 'F.softplus(sp_x)', values: { sp_x: kinks(10) } },
  softplus_beta: { params: { spb_x: [10] }, dsl: 'spb_x.softplus(2, 3)', torch: 'F.softplus(spb_x, 2, 3)', values: { spb_x: [...kinks(8), 1.5, 1.4] } },
  leakyRelu: { params: { lr_x: [10] }, dsl: 'lr_x.leakyRelu(0.1)', torch: 'F.leaky_relu(lr_x, 0.1)', values: { lr_x: kinks(10) } },
  leakyRelu_default: { params: { lrd_x: [10] }, dsl: 'lrd_x.leakyRelu()', torch: 'F.leaky_relu(lrd_x)', values: { lrd_x: kinks(10) } },
  elu: { params: { elu_x: [10] }, dsl: 'elu_x.elu(0.7)', torch: 'F.elu(elu_x, 0.7)', values: { elu_x: [...kinks(9), 100] } },
  clamp: { params: { cl_x: [10] }, dsl: 'cl_x.clamp(-0.5, 1)', torch: 'torch.clamp(cl_x, -0.5, 1)', values: { cl_x: kinks(10) } },
  clamp_min: { params: { clm_x: [10] }, dsl: 'clm_x.clamp(0)', torch: 'torch.clamp(clm_x, min=0)', values: { clm_x: kinks(10) } },
  clamp_max: { params: { clx_x: [10] }, dsl: 'clx_x.clamp(undefined, 0.5)', torch: 'torch.clamp(clx_x, max=0.5)', values: { clx_x: kinks(10) } },
  rsqrt: { params: { rs_x: [4] }, dsl: 'rs_x.rsqrt()', torch: 'torch.rsqrt(rs_x)', values: { rs_x: [0.25, 1, 4, 9] } },
  sin: { params: { sin_x: [10] }, dsl: 'sin_x.mul(3).sin()', torch: 'torch.sin(sin_x * 3)', values: { sin_x: [...kinks(8), 1e-8, 1.0471975511965976] } },
  cos: { params: { cos_x: [10] }, dsl: 'cos_x.mul(3).cos()', torch: 'torch.cos(cos_x * 3)', values: { cos_x: [...kinks(8), 1e-8, 0.5235987755982988] } },
  erf: { params: { erf_x: [10] }, dsl: 'erf_x.erf()', torch: 'torch.erf(erf_x)', values: { erf_x: [...kinks(8), 1e-9, -4.5] } },
  log1p: { params: { l1p_x: [10] }, dsl: 'l1p_x.log1p()', torch: 'torch.log1p(l1p_x)', values: { l1p_x: [0, 1e-10, -1e-7, 1e-4, 0.5, -0.5, 3, -0.99, 20.5, 1e6] } },
  expm1: { params: { em1_x: [10] }, dsl: 'em1_x.expm1()', torch: 'torch.expm1(em1_x)', values: { em1_x: [...kinks(8), 1e-10, -1e-7] } },
  gelu: { params: { gelu_x: [10] }, dsl: 'gelu_x.gelu()', torch: 'F.gelu(gelu_x)', values: { gelu_x: [...kinks(8), 1e-9, -6] } },
  gelu_none: { params: { geln_x: [10] }, dsl: "geln_x.gelu('none')", torch: "F.gelu(geln_x, approximate='none')", values: { geln_x: kinks(10) } },
  gelu_tanh: { params: { gelt_x: [10] }, dsl: "gelt_x.gelu('tanh')", torch: "F.gelu(gelt_x, approximate='tanh')", values: { gelt_x: kinks(10) } },
  // the tails, where the result is e^−|x| (log1p keeps its digits)
  tails_softplus: { params: { tsp_x: [4] }, dsl: 'tsp_x.softplus()', torch: 'F.softplus(tsp_x)', values: { tsp_x: [-40, -20, -17, 40] } },
  tails_logSigmoid: { params: { tls_x: [4] }, dsl: 'tls_x.logSigmoid()', torch: 'F.logsigmoid(tls_x)', values: { tls_x: [40, 20, 17, -40] } },
  tails_bcewl: {
    params: { tbw_x: [6] },
    dsl: "g.binaryCrossEntropyWithLogits(tbw_x, g.const([0, 1, 0, 1, 0, 1]), { posWeight: [2], reduction: 'none' })",
    torch: "F.binary_cross_entropy_with_logits(tbw_x, torch.tensor([0., 1, 0, 1, 0, 1], dtype=torch.float64), pos_weight=torch.tensor([2.], dtype=torch.float64), reduction='none')",
    values: { tbw_x: [-40, 40, -20, 20, 17, -17] },
  },
  compare: {
    params: { cmp_x: [6], cmp_y: [6] },
    dsl: 'cmp_x.gt(cmp_y).add(cmp_x.ge(cmp_y).mul(2)).add(cmp_x.lt(cmp_y).mul(4)).add(cmp_x.le(cmp_y).mul(8)).add(cmp_x.eq(cmp_y).mul(16)).add(cmp_x.ne(0.5).mul(32)).add(cmp_x)',
    torch: '(cmp_x > cmp_y).double() + 2 * (cmp_x >= cmp_y) + 4 * (cmp_x < cmp_y) + 8 * (cmp_x <= cmp_y) + 16 * (cmp_x == cmp_y) + 32 * (cmp_x != 0.5) + cmp_x',
    values: { cmp_x: [1, 2, 3, 0.5, -1, 0], cmp_y: [2, 2, 1, 0.5, -1, 0.25] },
  },
  maskedFill: { params: { mf_x: [4, 5] }, dsl: 'mf_x.maskedFill(mask, -3)', torch: 'mf_x.masked_fill(mask != 0, -3)' },
  where: { params: { wh_a: [4, 5], wh_b: [5] }, dsl: 'g.where(mask, wh_a, wh_b.exp())', torch: 'torch.where(mask != 0, wh_a, wh_b.exp())' },
  min: { params: { mn_x: [4, 5] }, dsl: 'mn_x.min(1)', torch: 'torch.amin(mn_x, 1)' },
  min_all: { params: { mna_x: [3, 4] }, dsl: 'mna_x.min()', torch: 'torch.amin(mna_x)' },
  logsumexp: { params: { lse_x: [4, 5] }, dsl: 'lse_x.mul(30).logsumexp(1, true)', torch: 'torch.logsumexp(lse_x * 30, 1, True)' },
  logsumexp_axes: { params: { lsa_x: [2, 3, 4] }, dsl: 'lsa_x.logsumexp([0, 2])', torch: 'torch.logsumexp(lsa_x, (0, 2))' },
  var: { params: { var_x: [4, 5] }, dsl: 'var_x.var(0)', torch: 'torch.var(var_x, 0)' },
  var_all: { params: { vara_x: [3, 4] }, dsl: 'vara_x.var()', torch: 'torch.var(vara_x)' },
  var_pop: { params: { varp_x: [4, 5] }, dsl: 'varp_x.var(1, { correction: 0, keepDims: true })', torch: 'torch.var(varp_x, 1, unbiased=False, keepdim=True)' },
  std: { params: { std_x: [4, 5] }, dsl: 'std_x.std([0, 1])', torch: 'torch.std(std_x, (0, 1))' },
  split: { params: { spl_x: [4, 5] }, dsl: 'g.concat(spl_x.split([2, 3], 1).map((p, i) => p.mul(i + 1)), 1)', torch: 'torch.cat([p * (i + 1) for i, p in enumerate(torch.split(spl_x, [2, 3], 1))], 1)' },
  split_size: { params: { spls_x: [5, 2] }, dsl: 'g.concat(spls_x.split(2).map((p, i) => p.mul(i + 1)), 0)', torch: 'torch.cat([p * (i + 1) for i, p in enumerate(torch.split(spls_x, 2))], 0)' },
  chunk: { params: { ch_x: [6, 2] }, dsl: 'g.concat(ch_x.chunk(4).map((p, i) => p.mul(i + 1)), 0)', torch: 'torch.cat([p * (i + 1) for i, p in enumerate(torch.chunk(ch_x, 4))], 0)' },
  squeeze: { params: { sq_x: [1, 3, 1] }, dsl: 'sq_x.squeeze().unsqueeze(0).unsqueeze(-1).squeeze(2).squeeze(0).mul(g.const([1, 2, 3]))', torch: 'sq_x.squeeze().unsqueeze(0).unsqueeze(-1).squeeze(2).squeeze(0) * torch.tensor([1., 2, 3], dtype=torch.float64)' },
  expand: { params: { ex_x: [3, 1] }, dsl: 'ex_x.expand([2, -1, 4])', torch: 'ex_x.expand(2, -1, 4)' },
  stack: { params: { st_a: [2, 3], st_b: [2, 3] }, dsl: 'g.stack([st_a, st_b.square()], 1)', torch: 'torch.stack([st_a, st_b.square()], 1)' },
  pad: { params: { pad_x: [2, 3] }, dsl: 'g.pad(pad_x, [[1, 0], [2, 1]], -1.5)', torch: 'F.pad(pad_x, (2, 1, 1, 0), value=-1.5)' },
  pad_zero: { params: { padz_x: [2, 3] }, dsl: 'g.pad(padz_x, [[0, 2]])', torch: 'F.pad(padz_x, (0, 0, 0, 2))' },
  einsum_matmul: { params: { em_a: [3, 4], em_b: [5, 4] }, dsl: "g.einsum('ij,kj->ik', em_a, em_b)", torch: "torch.einsum('ij,kj->ik', em_a, em_b)" },
  einsum_batch: { params: { eb_a: [2, 3, 4], eb_b: [2, 4, 5] }, dsl: "g.einsum('bij,bjk->bki', eb_a, eb_b)", torch: "torch.einsum('bij,bjk->bki', eb_a, eb_b)" },
  einsum_three: { params: { e3_a: [2, 3], e3_b: [3, 4], e3_c: [4] }, dsl: "g.einsum('ij,jk,k', e3_a, e3_b, e3_c)", torch: "torch.einsum('ij,jk,k', e3_a, e3_b, e3_c)" },
  einsum_dot: { params: { ed_a: [3, 4], ed_b: [3, 4] }, dsl: "g.einsum('ij,ij->i', ed_a, ed_b)", torch: "torch.einsum('ij,ij->i', ed_a, ed_b)" },
  einsum_outer: { params: { eo_a: [3], eo_b: [4] }, dsl: "g.einsum('i,j->ji', eo_a, eo_b)", torch: "torch.einsum('i,j->ji', eo_a, eo_b)" },
  einsum_trace: { params: { et_a: [3, 4] }, dsl: "g.einsum('ij->', et_a)", torch: "torch.einsum('ij->', et_a)" },
  normalize: { params: { nz_x: [3, 4] }, dsl: 'g.normalize(nz_x)', torch: 'F.normalize(nz_x)', values: { nz_x: [1, 2, 3, 4, 0, 0, 0, 0, -1, 0.5, 0, 2] } },
  normalize_p1: { params: { nz1_x: [3, 4] }, dsl: 'g.normalize(nz1_x, { p: 1, axis: 0 })', torch: 'F.normalize(nz1_x, p=1, dim=0)' },
  normalize_p3: { params: { nz3_x: [3, 4] }, dsl: 'g.normalize(nz3_x, { p: 3 })', torch: 'F.normalize(nz3_x, p=3)' },
  cosine: { params: { cs_a: [3, 4], cs_b: [4] }, dsl: 'g.cosineSimilarity(cs_a, cs_b)', torch: 'F.cosine_similarity(cs_a, cs_b.expand(3, 4))' },
  cosine_zero: { params: { csz_a: [2, 3], csz_b: [2, 3] }, dsl: 'g.cosineSimilarity(csz_a, csz_b, { axis: 0 })', torch: 'F.cosine_similarity(csz_a, csz_b, dim=0)', values: { csz_a: [0, 1, 2, 0, 3, 4], csz_b: [1, 2, 0.5, -1, 0, 1] } },
  mse: { params: { mse_a: [4, 5], mse_b: [4, 5] }, dsl: 'g.mseLoss(mse_a, mse_b)', torch: 'F.mse_loss(mse_a, mse_b)' },
  mse_none: { params: { msen_a: [4, 5], msen_b: [4, 5] }, dsl: "g.mseLoss(msen_a, msen_b, { reduction: 'none' })", torch: "F.mse_loss(msen_a, msen_b, reduction='none')" },
  l1: { params: { l1_a: [4, 5], l1_b: [4, 5] }, dsl: "g.l1Loss(l1_a, l1_b, { reduction: 'sum' })", torch: "F.l1_loss(l1_a, l1_b, reduction='sum')" },
  huber: { params: { hu_a: [8], hu_b: [8] }, dsl: 'g.huberLoss(hu_a, hu_b, { delta: 0.5 })', torch: 'F.huber_loss(hu_a, hu_b, delta=0.5)', values: { hu_a: [0, 1, 0.5, -0.5, 3, 0.2, 0.6, -2], hu_b: [0, 0.5, 0, 0, 1, 0.1, 0, 0] } },
  bce: {
    params: { bce_p: [8], bce_t: [8], bce_w: [8] },
    dsl: "g.binaryCrossEntropy(bce_p, bce_t, { weight: bce_w.stopGradient(), reduction: 'sum' })",
    torch: "F.binary_cross_entropy(bce_p, bce_t, weight=bce_w.detach(), reduction='sum')",
    values: { bce_p: [0.1, 0.5, 0.9, 0.3, 0.7, 0.99, 0.01, 0.6], bce_t: [0, 1, 1, 0.5, 0, 1, 0, 0.25], bce_w: [1, 2, 0.5, 1, 1, 3, 1, 1] },
  },
  bce_clamped: { params: { bcec_p: [3] }, dsl: 'g.binaryCrossEntropy(bcec_p, g.const([1, 0, 1]))', torch: 'F.binary_cross_entropy(bcec_p, torch.tensor([1., 0, 1], dtype=torch.float64))', values: { bcec_p: [0, 1, 1] } },
  bcewl: {
    params: { bwl_x: [4, 3], bwl_t: [4, 3] },
    dsl: 'g.binaryCrossEntropyWithLogits(bwl_x.mul(10), bwl_t.sigmoid(), { posWeight: [1, 2, 0.5], weight: g.const([[1], [2], [1], [0.5]]) })',
    torch: 'F.binary_cross_entropy_with_logits(bwl_x * 10, bwl_t.sigmoid(), pos_weight=torch.tensor([1., 2, 0.5], dtype=torch.float64), weight=torch.tensor([[1.], [2], [1], [0.5]], dtype=torch.float64))',
  },
  bcewl_none: { params: { bwn_x: [10] }, dsl: "g.binaryCrossEntropyWithLogits(bwn_x, g.const([1, 0, 1, 0, 1, 0, 1, 0, 1, 0]), { reduction: 'none' })", torch: "F.binary_cross_entropy_with_logits(bwn_x, torch.tensor([1., 0, 1, 0, 1, 0, 1, 0, 1, 0], dtype=torch.float64), reduction='none')", values: { bwn_x: kinks(10) } },
  ce_plain: { params: { ce_x: [4, 5] }, dsl: 'g.crossEntropy(ce_x, t)', torch: 'F.cross_entropy(ce_x, t)' },
  ce_weight: { params: { cew_x: [4, 5] }, dsl: 'g.crossEntropy(cew_x, t, { weight: [1, 2, 3, 0.5, 1] })', torch: 'F.cross_entropy(cew_x, t, weight=torch.tensor([1., 2, 3, 0.5, 1], dtype=torch.float64))' },
  ce_ignore: { params: { cei_x: [4, 5] }, dsl: 'g.crossEntropy(cei_x, t, { ignoreIndex: 2 })', torch: 'F.cross_entropy(cei_x, t, ignore_index=2)' },
  ce_smooth: { params: { ces_x: [4, 5] }, dsl: 'g.crossEntropy(ces_x, t, { labelSmoothing: 0.2 })', torch: 'F.cross_entropy(ces_x, t, label_smoothing=0.2)' },
  ce_all: {
    params: { cea_x: [4, 5] },
    dsl: 'g.crossEntropy(cea_x, t, { ignoreIndex: 2, labelSmoothing: 0.1, weight: [1, 2, 3, 0.5, 1] })',
    torch: 'F.cross_entropy(cea_x, t, ignore_index=2, label_smoothing=0.1, weight=torch.tensor([1., 2, 3, 0.5, 1], dtype=torch.float64))',
  },
  ce_all_sum: {
    params: { ceas_x: [4, 5] },
    dsl: "g.crossEntropy(ceas_x, t, { ignoreIndex: 2, labelSmoothing: 0.1, weight: [1, 2, 3, 0.5, 1], reduction: 'sum' })",
    torch: "F.cross_entropy(ceas_x, t, ignore_index=2, label_smoothing=0.1, weight=torch.tensor([1., 2, 3, 0.5, 1], dtype=torch.float64), reduction='sum')",
  },
  ce_smooth_ignore_none: {
    params: { cesn_x: [4, 5] },
    dsl: "g.crossEntropy(cesn_x, t, { ignoreIndex: 2, labelSmoothing: 0.3, reduction: 'none' })",
    torch: "F.cross_entropy(cesn_x, t, ignore_index=2, label_smoothing=0.3, reduction='none')",
  },
  ce_torch_layout: {
    params: { cet_x: [2, 4, 3] },
    dsl: 'g.crossEntropy(cet_x, t3, { axis: 1, ignoreIndex: 0, labelSmoothing: 0.1 })',
    torch: 'F.cross_entropy(cet_x, t3, ignore_index=0, label_smoothing=0.1)',
  },
  nll: {
    params: { nll_x: [4, 5] },
    dsl: "g.nllLoss(g.logSoftmax(nll_x), t, { weight: [1, 2, 3, 0.5, 1], ignoreIndex: 1 })",
    torch: 'F.nll_loss(F.log_softmax(nll_x, -1), t, weight=torch.tensor([1., 2, 3, 0.5, 1], dtype=torch.float64), ignore_index=1)',
  },
};

const T = [2, 0, 4, 2];
const T3 = [0, 1, 3, 3, 0, 2];
const MASK = Array.from({ length: 20 }, (_, i) => ((i * 7) % 3 === 0 ? 1 : 0));

function source(): string {
  const lines: string[] = [];
  for (const c of Object.values(CASES)) for (const [p, s] of Object.entries(c.params)) lines.push(`const ${p} = g.param('${p}', ${JSON.stringify(s)});`);
  lines.push(`const t = g.input('t', [4], 'i32'); const t3 = g.input('t3', [2, 3], 'i32'); const mask = g.input('mask', [4, 5]);`);
  const names = Object.keys(CASES);
  names.forEach((n, k) => lines.push(`const y_${n} = ${CASES[n]!.dsl}; const r_${n} = g.input('r_${n}', y_${n}.shape);`));
  lines.push(`const loss = ${names.map((n) => `y_${n}.mul(r_${n}).sum()`).join('.add(')}${')'.repeat(names.length - 1)};`);
  lines.push(`return { loss, ${names.map((n) => `y_${n}`).join(', ')} };`);
  return `import { model } from 'graphc';\nexport default model('vocab', (g) => {\n  ${lines.join('\n  ')}\n});\n`;
}

const { fwd, bwd } = compileGraphs(modelFile(source(), 'vocab.ts'));
const shapeOf = (name: string) => fwd.type(fwd.insts.find((i) => (i.op === 'param' || i.op === 'input') && i.attrs.name === name)!.result).shape as number[];
const numel = (s: number[]) => s.reduce((p, d) => p * d, 1);

function args(seed: number, chosen: boolean): { params: Arrays; inputs: Arrays } {
  const r = rng(seed);
  const params: Arrays = {};
  for (const c of Object.values(CASES))
    for (const p of Object.keys(c.params)) params[p] = Float32Array.from(chosen && c.values?.[p] ? c.values[p]! : Array.from({ length: numel(shapeOf(p)) }, () => randn(r)));
  // bce's probabilities and targets in (0, 1)
  for (const p of ['bce_p', 'bce_t', 'bcec_p']) if (!chosen) params[p] = params[p]!.map((v) => 1 / (1 + Math.exp(-v)));
  if (!chosen) params.rs_x = params.rs_x!.map((v) => v * v + 0.5);
  if (!chosen) params.l1p_x = params.l1p_x!.map((v) => Math.abs(v) - 0.9);
  const inputs: Arrays = { t: Int32Array.from(T), t3: Int32Array.from(T3), mask: Float32Array.from(MASK) };
  for (const n of Object.keys(CASES)) inputs[`r_${n}`] = Float32Array.from({ length: numel(shapeOf(`r_${n}`)) }, () => Math.round(randn(r) * 4) / 4);
  return { params, inputs };
}

const TORCH = '/usr/bin/python3';
const hasTorch = existsSync(TORCH) && spawnSync(TORCH, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

/** y and d(Σ y·r)/d params of each case in PyTorch, float64. */
function torchResults(params: Arrays, inputs: Arrays): Record<string, { y: number[]; grads: Record<string, number[]> }> {
  const tensors = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, { data: Array.from(v), shape: shapeOf(k) }]));
  const rs = Object.fromEntries(Object.keys(CASES).map((n) => [n, { data: Array.from(inputs[`r_${n}`]!), shape: shapeOf(`r_${n}`) }]));
  const script = `
import json, sys, torch
import torch.nn.functional as F
d = json.load(sys.stdin)
out = {}
for name, c in d['cases'].items():
    env = {'torch': torch, 'F': F}
    for p in c['params']:
        a = d['params'][p]
        env[p] = torch.tensor(a['data'], dtype=torch.float64).reshape(a['shape']).requires_grad_(True)
    env['t'] = torch.tensor(${JSON.stringify(T)}); env['t3'] = torch.tensor(${JSON.stringify(T3)}).reshape(2, 3)
    env['mask'] = torch.tensor(${JSON.stringify(MASK)}, dtype=torch.float64).reshape(4, 5)
    y = eval(c['torch'], env)
    r = torch.tensor(d['r'][name]['data'], dtype=torch.float64).reshape(d['r'][name]['shape'])
    (y * r).sum().backward()
    out[name] = {'y': y.detach().reshape(-1).tolist(), 'grads': {p: (env[p].grad if env[p].grad is not None else torch.zeros_like(env[p])).reshape(-1).tolist() for p in c['params']}}
print(json.dumps(out).replace('NaN', '"nan"').replace('-Infinity', '"-inf"').replace('Infinity', '"inf"'))
`;
  const cases = Object.fromEntries(Object.entries(CASES).map(([n, c]) => [n, { params: Object.keys(c.params), torch: c.torch }]));
  const r = spawnSync(TORCH, ['-c', script], { input: JSON.stringify({ params: tensors, r: rs, cases }), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const num = (v: unknown): number => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : (v as number));
  const parsed = JSON.parse(r.stdout) as Record<string, { y: unknown[]; grads: Record<string, unknown[]> }>;
  return Object.fromEntries(Object.entries(parsed).map(([n, v]) => [n, { y: v.y.map(num), grads: Object.fromEntries(Object.entries(v.grads).map(([p, g]) => [p, g.map(num)])) }]));
}

function expectNear(got: ArrayLike<number>, want: readonly number[], what: string, tol = 1e-9): void {
  expect(got.length, what).toBe(want.length);
  want.forEach((w, i) => {
    const g = got[i]!;
    const ok = Number.isFinite(w) ? Math.abs(g - w) <= tol * Math.max(1, Math.abs(w)) : Object.is(g, w) || (Number.isNaN(w) && Number.isNaN(g));
    expect(ok, `${what}[${i}]: graphc ${g}, torch ${w}`).toBe(true);
  });
}

describe('PyTorch vocabulary as composites, against PyTorch 1.13 in float64', () => {
  for (const [label, seed, chosen] of [['chosen points (kinks, ties, tails)', 1, true], ['random points', 7, false]] as const)
    it.skipIf(!hasTorch)(`values and gradients of every case at ${label}`, () => {
      const { params, inputs } = args(seed, chosen);
      const p64: Record<string, Float64Array> = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float64Array.from(v)]));
      const ref = reference(fwd, bwd, p64 as unknown as Arrays, inputs);
      const want = torchResults(params, inputs);
      for (const n of Object.keys(CASES)) {
        expectNear(ref.outputs[`y_${n}`]!.data, want[n]!.y, `${n}: y`);
        for (const p of Object.keys(CASES[n]!.params)) expectNear(ref.grads[p]!, want[n]!.grads[p]!, `${n}: d/d ${p}`, 1e-7);
      }
    });
});

describe('float64 formulas written here', () => {
  const { params, inputs } = args(3, true);
  const out = outputsOf(fwd, interpret(fwd, { params, inputs }));
  const y = (n: string) => Array.from(out[`y_${n}`]!.data);
  const x = (p: string) => Array.from(params[p]!);
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  it('activations', () => {
    expectNear(y('silu'), x('silu_x').map((v) => v * sig(v)), 'silu', 1e-12);
    expectNear(y('logSigmoid'), x('ls_x').map((v) => (v < 0 ? v - Math.log1p(Math.exp(v)) : -Math.log1p(Math.exp(-v)))), 'logSigmoid', 1e-12);
    expectNear(y('softplus_beta'), x('spb_x').map((v) => (2 * v > 3 ? v : Math.log1p(Math.exp(2 * v)) / 2)), 'softplus', 1e-12);
    expectNear(y('leakyRelu'), x('lr_x').map((v) => (v > 0 ? v : 0.1 * v)), 'leakyRelu', 1e-12);
    expectNear(y('elu'), x('elu_x').map((v) => (v > 0 ? v : 0.7 * Math.expm1(v))), 'elu', 1e-12);
    expectNear(y('clamp'), x('cl_x').map((v) => Math.min(Math.max(v, -0.5), 1)), 'clamp', 0);
  });
  it('the exact GELU, erf, sin, cos, log1p and expm1', () => {
    const erf = (v: number) => {
      // erf's series 2/√π·e^(−v²)·Σ 2ⁿv²ⁿ⁺¹/(1·3·…·(2n+1)), of positive terms; erfc(6) < 1e-16
      if (Math.abs(v) >= 6) return Math.sign(v);
      let term = Math.abs(v);
      let sum = term;
      for (let n = 0; n < 400; n++) sum += term *= (2 * v * v) / (2 * n + 3);
      return Math.sign(v) * (2 / Math.sqrt(Math.PI)) * Math.exp(-v * v) * sum;
    };
    expectNear(y('erf'), x('erf_x').map(erf), 'erf', 1e-14);
    expectNear(y('gelu'), x('gelu_x').map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2))), 'gelu', 1e-14);
    expectNear(y('gelu_tanh'), x('gelt_x').map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))), 'gelu tanh', 1e-14);
    expectNear(y('sin'), x('sin_x').map((v) => Math.sin(3 * v)), 'sin', 0);
    expectNear(y('cos'), x('cos_x').map((v) => Math.cos(3 * v)), 'cos', 0);
    expectNear(y('log1p'), x('l1p_x').map(Math.log1p), 'log1p', 0);
    expectNear(y('expm1'), x('em1_x').map(Math.expm1), 'expm1', 0);
  });
  it('softplus, logSigmoid and BCE with logits keep the relative precision of their tails (e^−40 is not rounded to 0)', () => {
    const rel = (got: number[], want: number[], what: string) =>
      want.forEach((w, i) => expect(Math.abs(got[i]! - w), `${what}[${i}]: ${got[i]}, want ${w}`).toBeLessThanOrEqual(1e-12 * Math.abs(w)));
    const sp = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));
    rel(y('tails_softplus'), x('tsp_x').map(sp), 'softplus');
    rel(y('tails_logSigmoid'), x('tls_x').map((v) => -sp(-v)), 'logSigmoid');
    // (1 − t)·softplus(x) + posWeight·t·softplus(−x)
    const t = [0, 1, 0, 1, 0, 1];
    rel(y('tails_bcewl'), x('tbw_x').map((v, i) => (1 - t[i]!) * Math.log1p(Math.exp(v)) + 2 * t[i]! * Math.log1p(Math.exp(-v))), 'binaryCrossEntropyWithLogits');
  });
  it('chunk and split sizes as torch (ceil(6/4) = 2: three pieces)', () => {
    expectNear(y('chunk'), x('ch_x').map((v, i) => v * (Math.floor(i / 4) + 1)), 'chunk', 1e-12);
    expectNear(y('split_size'), x('spls_x').map((v, i) => v * (Math.floor(i / 4) + 1)), 'split', 1e-12);
  });
  it('crossEntropy with weight, ignoreIndex and label smoothing (torch 1.13)', () => {
    const X = x('cea_x');
    const w = [1, 2, 3, 0.5, 1];
    let nll = 0;
    let smooth = 0;
    let den = 0;
    T.forEach((c, i) => {
      if (c === 2) return;
      const row = X.slice(i * 5, i * 5 + 5);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
      nll -= w[c]! * (row[c]! - lse);
      smooth -= row.reduce((s, v, k) => s + w[k]! * (v - lse), 0);
      den += w[c]!;
    });
    expectNear(y('ce_all'), [0.9 * (nll / den) + (0.1 / 5) * (smooth / den)], 'crossEntropy', 1e-12);
  });
});

describe('gradients against finite differences (float64 interpreter)', () => {
  it('every param of every case, away from kinks', () => {
    const { params, inputs } = args(11, false);
    const { grads } = reference(fwd, bwd, params, inputs);
    let checked = 0;
    // bce_w enters through stopGradient (torch does not differentiate BCE's weight)
    for (const [name, v] of Object.entries(params).filter(([k]) => k !== 'bce_w'))
      for (let i = 0; i < v.length; i += 3) {
        if (!smoothAt(fwd, params, inputs, name, i)) continue;
        const fd = finiteDiff(fwd, params, inputs, name, i);
        expect(Math.abs(grads[name]![i]! - fd), `d loss / d ${name}[${i}]: ${grads[name]![i]} vs ${fd}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
        checked++;
      }
    expect(checked).toBeGreaterThan(150);
  });
});

describe('split and chunk', () => {
  it("name their pieces after the const they are assigned to: parts_0, parts_1, ...", () => {
    const { fwd } = compileGraphs(
      modelFile(`import { model } from 'graphc';
export default model('pieces', (g) => {
  const h = g.param('h', [6, 4]);
  const parts = h.chunk(3);
  const [a, b] = h.split([1, 3], 1);
  return parts[0]!.sum().add(parts[2]!.mul(2).sum()).add(a.sum()).add(b.sum());
});
`),
    );
    const names = fwd.insts.filter((i) => i.op === 'slice').map((i) => fwd.value(i.result).name);
    expect(names.filter((n) => n.startsWith('parts_')).sort()).toEqual(['parts_0', 'parts_2']);
  });
});

describe('with a symbolic batch', () => {
  it('the losses, var and the masks give what the same model with a static batch gives', () => {
    const body = (B: string) => `import { model } from 'graphc';
export default model('sym', (g) => {
  const x = g.input('x', [${B}, 5]);
  const t = g.input('t', [${B}], 'i32');
  const W = g.param('W', [5, 4]);
  const logits = x.matmul(W);
  const ce = g.crossEntropy(logits, t, { ignoreIndex: 1, labelSmoothing: 0.1, weight: [1, 2, 0.5, 1] });
  const nll = g.nllLoss(g.logSoftmax(logits), t, { reduction: 'sum' });
  const mse = g.mseLoss(logits, logits.clamp(-0.5, 0.5).stopGradient());
  const bce = g.binaryCrossEntropyWithLogits(logits, g.oneHot(t, 4));
  const loss = ce.add(nll.mul(0.1)).add(mse).add(bce).add(x.var(0).sum()).add(logits.logsumexp(1).mean()).add(logits.maskedFill(logits.lt(0), 0).std());
  return { loss };
});
`;
    const r = rng(2);
    const params = { W: Float32Array.from({ length: 20 }, () => randn(r)) };
    const inputs = { x: Float32Array.from({ length: 30 }, () => randn(r)), t: Int32Array.of(0, 1, 2, 3, 1, 2) };
    const sym = compileGraphs(modelFile(body("'B'"), 'sym.ts'));
    const fixed = compileGraphs(modelFile(body('6'), 'fixed.ts'));
    const a = reference(sym.fwd, sym.bwd, params, inputs);
    const b = reference(fixed.fwd, fixed.bwd, params, inputs);
    expect(Number.isFinite(b.outputs.loss!.data[0]!)).toBe(true);
    expect(Math.abs(a.outputs.loss!.data[0]! - b.outputs.loss!.data[0]!)).toBeLessThan(1e-12);
    expect(relErr(a.grads.W!, b.grads.W!)).toBeLessThan(1e-12);
  });
});

describe('einsum with symbolic axes', () => {
  // x [B, T, 4] with B and T symbolic used to fail: 'bti,ij->btj' merged b and t into the rows of
  // one matmul, a reshape of B·T rows that a symbolic axis could not take then (a reshape error
  // naming a reshape the user never wrote); now merged letters are a product dimension (B*T), so
  // every pair is one matmul, as with static sizes (y3 and y4 were a broadcast product and a sum)
  const src = `import { model } from 'graphc';
export default model('esym', (g) => {
  const x = g.input('x', ['B', 'T', 4]);
  const z = g.input('z', ['B', 'T', 2, 4]);
  const V = g.input('V', ['B', 4, 3]);
  const W = g.param('W', [4, 3]);
  const U = g.param('U', [5, 4]);
  const y1 = g.einsum('bti,ij->btj', x, W);
  const y2 = g.einsum('ij,btj->tbi', U, x);
  const y3 = g.einsum('bti,btj->ij', x, x);
  const y4 = g.einsum('btsi,bij->btsj', z, V);
  const loss = y1.sum().add(y2.mul(0.5).sum()).add(y3.sum().mul(0.1)).add(y4.sum());
  return { loss, y1, y2, y3, y4 };
});
`;
  const { fwd, bwd } = compileGraphs(modelFile(src, 'esym.ts'));
  it('makes each pair a matmul, its symbolic letters merged into product dimensions (B*T, T*2), not a broadcast product and a sum', () => {
    const mm = fwd.insts.filter((i) => i.op === 'matmul').map((i) => fwd.type(i.result).shape);
    expect(mm).toEqual([['B*T', 3], [5, 'B*T'], [4, 4], ['B', 'T*2', 3]]);
    expect(fwd.insts.filter((i) => i.op === 'mul' && fwd.type(i.result).shape.length > 3)).toEqual([]);
  });
  it.each([2, 3])('gives the float64 formula at B = %i (T = 5), and dloss/dW', (B) => {
    const T = 5;
    const r = rng(B);
    const fill = (n: number) => Float64Array.from({ length: n }, () => randn(r));
    const [x, z, V, W, U] = [fill(B * T * 4), fill(B * T * 2 * 4), fill(B * 4 * 3), fill(12), fill(20)];
    const { outputs, grads } = reference(fwd, bwd, { W, U } as unknown as Arrays, { x, z, V } as unknown as Arrays);
    const X = (b: number, t: number, i: number) => x[(b * T + t) * 4 + i]!;
    const y1: number[] = [];
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let j = 0; j < 3; j++) y1.push([0, 1, 2, 3].reduce((s, i) => s + X(b, t, i) * W[i * 3 + j]!, 0));
    const y2: number[] = [];
    for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) for (let i = 0; i < 5; i++) y2.push([0, 1, 2, 3].reduce((s, j) => s + U[i * 4 + j]! * X(b, t, j), 0));
    const y3: number[] = [];
    const sumBT = (f: (b: number, t: number) => number) => {
      let s = 0;
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) s += f(b, t);
      return s;
    };
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) y3.push(sumBT((b, t) => X(b, t, i) * X(b, t, j)));
    const y4: number[] = [];
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let s = 0; s < 2; s++) for (let j = 0; j < 3; j++)
      y4.push([0, 1, 2, 3].reduce((acc, i) => acc + z[((b * T + t) * 2 + s) * 4 + i]! * V[(b * 4 + i) * 3 + j]!, 0));
    expect(outputs.y1!.shape).toEqual([B, T, 3]);
    expect(outputs.y2!.shape).toEqual([T, B, 5]);
    expect(outputs.y4!.shape).toEqual([B, T, 2, 3]);
    expectNear(outputs.y1!.data, y1, 'y1', 1e-12);
    expectNear(outputs.y2!.data, y2, 'y2', 1e-12);
    expectNear(outputs.y3!.data, y3, 'y3', 1e-12);
    expectNear(outputs.y4!.data, y4, 'y4', 1e-12);
    // dloss/dW[i][j] = Σ_bt x[b,t,i] (y1's sum)
    const dW = Array.from({ length: 12 }, (_, q) => sumBT((b, t) => X(b, t, Math.floor(q / 3))));
    expectNear(grads.W!, dW, 'dloss/dW', 1e-12);
  });
});
