// Small models in which a symbolic dimension flows through one kind of op, for
// symbolic-ops.test.ts. `BB` (and `TT`) are replaced by 'B' ('T') in the model source.

export interface Case {
  name: string;
  body: string;
  Bs?: number[]; // default [1, 2, 5, 33]
  T?: number[]; // values of T for two-dim models
  gpu?: boolean; // default true
  /** a form graphc does not support: the build fails with this message */
  error?: string;
  /** adjusts random inputs (e.g. indices bounded by B) */
  fix?: (inputs: Record<string, Float32Array | Int32Array>, dims: Record<string, number>) => void;
}

export const CASES: Case[] = [
  // --- elementwise with broadcasting
  {
    name: 'ew_b1',
    body: `
  const x = g.input('x', [BB, 4]);
  const s = g.input('s', [BB, 1]);
  const w = g.param('w', [1, 4]);
  const v = g.param('v', [4]);
  const a = g.param('a', [1, 1]);
  const y = x.mul(s).add(w).sub(v).tanh();
  const z = x.div(s.abs().add(1)).mul(v).sigmoid();
  const u = s.mul(w).add(a).relu();
  const loss = y.add(z).add(u).square().mean();
  return { loss, y, z, u };`,
  },
  {
    name: 'ew_bk_param_b1',
    body: `
  const x = g.input('x', [BB, 4]);
  const w = g.param('w', [4]);
  const c = g.param('c', [1, 4]);
  const h = x.mul(w);
  const s = h.sum(1, true); // [B,1]
  const y = h.sub(s).mul(c).maximum(x.mul(0.5)).minimum(h.add(1));
  const e = y.exp().add(1).log().sqrt().pow(2);
  const loss = e.mean();
  return { loss, y, e };`,
  },
  {
    name: 'ew_scalar_param_bcast',
    body: `
  const x = g.input('x', [BB, 3]);
  const w = g.param('w', []);
  const c = g.param('c', [3]);
  const y = x.mul(w).add(c).abs().neg();
  const loss = y.sum();
  return { loss, y };`,
  },
  {
    name: 'ew_b1_param_grad',
    // a [B,1] value produced from params, broadcast against [1,k]: gradient sums over k
    body: `
  const x = g.input('x', [BB, 4]);
  const w = g.param('w', [4, 1]);
  const c = g.param('c', [1, 5]);
  const s = x.matmul(w); // [B,1]
  const y = s.mul(c).tanh(); // [B,5]
  const loss = y.mean();
  return { loss, y };`,
  },
  // --- reductions
  ...(
    [
      ['sum0', 'sum(0)'],
      ['sum0k', 'sum(0, true)'],
      ['mean0', 'mean(0)'],
      ['mean0k', 'mean(0, true)'],
      ['max0', 'max(0)'],
      ['max0k', 'max(0, true)'],
      ['sum1', 'sum(1)'],
      ['sum1k', 'sum(1, true)'],
      ['mean1', 'mean(1)'],
      ['mean1k', 'mean(-1, true)'],
      ['max1', 'max(1)'],
      ['max1k', 'max(1, true)'],
      ['sumall', 'sum()'],
      ['meanall', 'mean()'],
      ['maxall', 'max()'],
      ['sumallk', 'sum([0, 1], true)'],
      ['meanallk', 'mean([0, 1], true)'],
      ['maxallk', 'max([0, 1], true)'],
    ] as const
  ).map(([n, red]) => ({
    name: `red_${n}`,
    body: `
  const x = g.input('x', [BB, 4]);
  const w = g.param('w', [4]);
  const h = x.mul(w).tanh();
  const r = h.${red};
  const loss = r.mul(r).sum();
  return { loss, r };`,
  })),
  ...(
    [
      ['3d_sum02', 'sum([0, 2])'],
      ['3d_mean01', 'mean([0, 1])'],
      ['3d_max0', 'max(0)'],
      ['3d_max2', 'max(-1)'],
      ['3d_sum1k', 'sum(1, true)'],
      ['3d_mean02k', 'mean([0, 2], true)'],
      ['3d_mean0', 'mean(0)'],
      ['3d_max01', 'max([0, 1])'],
      ['3d_meanall', 'mean()'],
    ] as const
  ).map(([n, red]) => ({
    name: `red_${n}`,
    body: `
  const x = g.input('x', [BB, 3, 4]);
  const w = g.param('w', [3, 4]);
  const h = x.mul(w).tanh();
  const r = h.${red};
  const loss = r.mul(r).sum();
  return { loss, r };`,
  })),
  {
    name: 'red_mid_B',
    // B in the middle: [3,B,2]
    body: `
  const x = g.input('x', [3, BB, 2]);
  const w = g.param('w', [2]);
  const h = x.mul(w).tanh();
  const a = h.sum(1);
  const b = h.mean(1, true).mul(h).max(0);
  const c = h.max([0, 2]);
  const loss = a.square().sum().add(b.sum()).add(c.mean());
  return { loss, a, b, c };`,
  },
  // --- transpose
  {
    name: 'tr_Bk',
    body: `
  const x = g.input('x', [BB, 4]);
  const w = g.param('w', [4, 1]);
  const xt = x.mul(2).transpose(); // [4,B]
  const y = xt.mul(w).tanh(); // [4,B]
  const loss = y.sum();
  return { loss, y };`,
  },
  {
    name: 'tr_Bk_param',
    body: `
  const x = g.input('x', [BB, 4]);
  const w = g.param('w', [4]);
  const h = x.mul(w); // [B,4]
  const y = h.transpose().tanh(); // [4,B]
  const loss = y.square().mean();
  return { loss, y };`,
  },
  {
    name: 'tr_kBm_default',
    body: `
  const x = g.input('x', [3, BB, 2]);
  const w = g.param('w', [3, 1, 2]);
  const h = x.mul(w).tanh(); // [3,B,2]
  const y = h.transpose(); // [3,2,B]
  const v = g.param('v', [2, 1]);
  const z = y.mul(v).sigmoid();
  const loss = z.mean();
  return { loss, y, z };`,
  },
  {
    name: 'tr_kBm_perm',
    body: `
  const x = g.input('x', [3, BB, 2]);
  const w = g.param('w', [2]);
  const h = x.mul(w).tanh(); // [3,B,2]
  const y = h.transpose([1, 0, 2]); // [B,3,2]
  const z = h.transpose([2, 1, 0]); // [2,B,3]
  const q = h.transpose([1, 2, 0]); // [B,2,3]
  const v = g.param('v', [3, 2]);
  const loss = y.mul(v).sum().add(z.square().mean()).add(q.max(0).sum());
  return { loss, y, z, q };`,
  },
  // --- matmul
  {
    name: 'mm_rows',
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 5]);
  const b = g.param('b', [5]);
  const h = x.matmul(W).add(b).tanh();
  const loss = h.square().mean();
  return { loss, h };`,
  },
  {
    name: 'mm_rows_chain',
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 6]);
  const V = g.param('V', [6, 3]);
  const h = x.matmul(W).relu();
  const o = h.matmul(V);
  const loss = o.square().mean();
  return { loss, o };`,
  },
  {
    name: 'mm_contract_B',
    body: `
  const x = g.input('x', [BB, 4]);
  const y = g.input('y', [BB, 3]);
  const W = g.param('W', [4]);
  const V = g.param('V', [3]);
  const a = x.mul(W); // [B,4]
  const b = y.mul(V).tanh(); // [B,3]
  const c = a.transpose().matmul(b); // [4,3]
  const loss = c.square().sum();
  return { loss, c };`,
  },
  {
    name: 'mm_contract_B_param_rhs',
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 3]);
  const h = x.matmul(W).tanh(); // [B,3]
  const gram = h.transpose().matmul(h); // [3,3]
  const loss = gram.mean();
  return { loss, gram };`,
  },
  {
    name: 'mm_outer_B',
    // [B,k] @ [k,B]: output [B,B]
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4]);
  const h = x.mul(W);
  const o = h.matmul(h.transpose()); // [B,B]
  const loss = o.tanh().sum();
  return { loss, o };`,
  },
  {
    name: 'mm_batched_Bmk_kn',
    body: `
  const x = g.input('x', [BB, 2, 4]);
  const W = g.param('W', [4, 3]);
  const h = x.matmul(W).tanh(); // [B,2,3]
  const loss = h.square().mean();
  return { loss, h };`,
  },
  {
    name: 'mm_batched_both',
    body: `
  const x = g.input('x', [BB, 2, 4]);
  const y = g.input('y', [BB, 4, 3]);
  const W = g.param('W', [4]);
  const V = g.param('V', [3]);
  const h = x.mul(W).matmul(y.mul(V)).tanh(); // [B,2,3]
  const loss = h.square().mean();
  return { loss, h };`,
  },
  {
    name: 'mm_vec_x',
    // [B,k] @ [k,1] then a [1,k] @ [k,B]-like product via transpose
    body: `
  const x = g.input('x', [BB, 4]);
  const w = g.param('w', [1, 4]);
  const s = w.matmul(x.transpose()); // [1,B]
  const loss = s.tanh().sum();
  return { loss, s };`,
  },
  // --- reshape
  {
    name: 'rs_B34_B12',
    body: `
  const x = g.input('x', [BB, 3, 4]);
  const w = g.param('w', [3, 4]);
  const h = x.mul(w).reshape([BB, 12]);
  const W = g.param('W', [12, 2]);
  const o = h.matmul(W);
  const loss = o.square().mean();
  return { loss, h, o };`,
  },
  {
    name: 'rs_B34_Bm1',
    body: `
  const x = g.input('x', [BB, 3, 4]);
  const w = g.param('w', [3, 4]);
  const h = x.mul(w).reshape([BB, -1]);
  const W = g.param('W', [12, 2]);
  const o = h.matmul(W).tanh();
  const loss = o.square().mean();
  return { loss, h, o };`,
  },
  {
    name: 'rs_B12_B34',
    body: `
  const x = g.input('x', [BB, 12]);
  const w = g.param('w', [12]);
  const h = x.mul(w).reshape([BB, 3, 4]);
  const v = g.param('v', [3, 1]);
  const o = h.mul(v).sum(1); // [B,4]
  const loss = o.square().mean();
  return { loss, h, o };`,
  },
  {
    name: 'rs_B12_m134',
    body: `
  const x = g.input('x', [BB, 12]);
  const w = g.param('w', [12]);
  const h = x.mul(w).reshape([-1, 3, 4]);
  const v = g.param('v', [3, 1]);
  const o = h.mul(v).max(1); // [B,4]
  const loss = o.square().mean();
  return { loss, h, o };`,
  },
  {
    name: 'rs_flatten_all',
    error: 'reshape: cannot reshape [B, 3] (B * 3 elements) to [-1]',
    body: `
  const x = g.input('x', [BB, 3]);
  const w = g.param('w', [3]);
  const h = x.mul(w).reshape([-1]); // [3B]
  const loss = h.tanh().sum();
  return { loss, h };`,
  },
  {
    name: 'rs_B_to_B1',
    body: `
  const x = g.input('x', [BB]);
  const w = g.param('w', [1, 4]);
  const h = x.reshape([BB, 1]).mul(w); // [B,4]
  const o = h.reshape([BB, 2, 2]).sum(2);
  const loss = o.tanh().sum();
  return { loss, h, o };`,
  },
  // --- gather / pick / oneHot
  {
    name: 'gather_B',
    body: `
  const C = g.param('C', [10, 4]);
  const i = g.input('i', [BB], 'i32');
  const e = g.gather(C, i); // [B,4]
  const loss = e.tanh().square().mean();
  return { loss, e };`,
  },
  {
    name: 'gather_B3',
    body: `
  const C = g.param('C', [10, 4]);
  const i = g.input('i', [BB, 3], 'i32');
  const e = g.gather(C, i); // [B,3,4]
  const f = e.reshape([BB, -1]);
  const W = g.param('W', [12, 5]);
  const o = f.matmul(W);
  const loss = o.tanh().mean();
  return { loss, e, o };`,
  },
  {
    name: 'gather_dup',
    // few rows, many indices: duplicates accumulate
    body: `
  const C = g.param('C', [3, 2]);
  const i = g.input('i', [BB, 3], 'i32');
  const e = g.gather(C, i);
  const loss = e.mul(e.sum(0, true)).sum();
  return { loss, e };`,
  },
  {
    name: 'gather_table_from_B',
    // table [k,4] from params, indices [B,2]; gather table indexed from a symbolic-size tensor? (table static)
    body: `
  const C = g.param('C', [6, 4]);
  const x = g.input('x', [BB, 4]);
  const i = g.input('i', [BB, 2], 'i32');
  const e = g.gather(C.tanh(), i).sum(1); // [B,4]
  const loss = e.mul(x).mean();
  return { loss, e };`,
  },
  {
    name: 'pick_B',
    body: `
  const x = g.input('x', [BB, 5]);
  const W = g.param('W', [5, 5]);
  const y = g.input('y', [BB], 'i32');
  const l = x.matmul(W);
  const p = g.pick(l, y); // [B]
  const loss = p.tanh().mean();
  return { loss, p };`,
  },
  {
    name: 'onehot_B',
    body: `
  const x = g.input('x', [BB, 5]);
  const w = g.param('w', [5]);
  const y = g.input('y', [BB], 'i32');
  const oh = g.oneHot(y, 5);
  const l = x.mul(w).mul(oh).sum(1);
  const loss = l.square().mean();
  return { loss, oh, l };`,
  },
  {
    name: 'onehot_matmul',
    body: `
  const y = g.input('y', [BB], 'i32');
  const C = g.param('C', [7, 3]);
  const oh = g.oneHot(y, 7);
  const e = oh.matmul(C).tanh();
  const loss = e.sum(0).square().sum();
  return { loss, e };`,
  },
  // --- softmax / logSoftmax / crossEntropy
  {
    name: 'softmax_last',
    body: `
  const x = g.input('x', [BB, 5]);
  const W = g.param('W', [5, 5]);
  const t = g.input('t', [BB, 5]);
  const p = g.softmax(x.matmul(W));
  const loss = p.mul(t).sum().div(7);
  return { loss, p };`,
  },
  {
    name: 'softmax_B',
    body: `
  const x = g.input('x', [BB, 5]);
  const w = g.param('w', [5]);
  const t = g.input('t', [BB, 5]);
  const p = g.softmax(x.mul(w), 0);
  const loss = p.mul(t).sum();
  return { loss, p };`,
  },
  {
    name: 'logsoftmax_last',
    body: `
  const x = g.input('x', [BB, 5]);
  const w = g.param('w', [5]);
  const t = g.input('t', [BB, 5]);
  const p = g.logSoftmax(x.mul(w));
  const loss = p.mul(t).mean();
  return { loss, p };`,
  },
  {
    name: 'logsoftmax_B',
    body: `
  const x = g.input('x', [BB, 5]);
  const w = g.param('w', [5]);
  const t = g.input('t', [BB, 5]);
  const p = g.logSoftmax(x.mul(w), 0);
  const loss = p.mul(t).mean();
  return { loss, p };`,
  },
  {
    name: 'softmax_3d_mid',
    body: `
  const x = g.input('x', [BB, 3, 4]);
  const w = g.param('w', [3, 4]);
  const t = g.input('t', [BB, 3, 4]);
  const p = g.softmax(x.mul(w), 1);
  const q = g.logSoftmax(x.mul(w), 0);
  const loss = p.mul(t).sum().add(q.mul(t).mean());
  return { loss, p, q };`,
  },
  {
    name: 'xent',
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 6]);
  const b = g.param('b', [6]);
  const y = g.input('y', [BB], 'i32');
  const logits = x.matmul(W).add(b);
  const loss = g.crossEntropy(logits, y);
  const probs = g.softmax(logits);
  return { loss, probs };`,
  },
  {
    name: 'xent_longform',
    // the lecture's long form with a symbolic batch: mean of -log p[range(n), y]
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 6]);
  const y = g.input('y', [BB], 'i32');
  const logits = x.matmul(W);
  const logit_maxes = logits.max(1, true);
  const norm_logits = logits.sub(logit_maxes);
  const counts = norm_logits.exp();
  const counts_sum = counts.sum(1, true);
  const counts_sum_inv = counts_sum.pow(-1);
  const probs = counts.mul(counts_sum_inv);
  const logprobs = probs.log();
  const loss = g.pick(logprobs, y).mean().neg();
  return { loss, probs };`,
  },
  // --- batchnorm
  {
    name: 'bn',
    Bs: [3, 5, 33],
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 6]);
  const gain = g.param('gain', [1, 6]);
  const bias = g.param('bias', [1, 6]);
  const h = g.batchNorm(x.matmul(W), gain, bias);
  const t = g.input('t', [BB, 6]);
  const loss = h.tanh().mul(t).mean();
  return { loss, h };`,
  },
  {
    name: 'bn_longform',
    Bs: [3, 5, 33],
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 6]);
  const bngain = g.param('bngain', [1, 6]);
  const bnbias = g.param('bnbias', [1, 6]);
  const t = g.input('t', [BB, 6]);
  const hprebn = x.matmul(W);
  const bnmeani = hprebn.mean(0, true);
  const bndiff = hprebn.sub(bnmeani);
  const bndiff2 = bndiff.square();
  const bnvar = bndiff2.mean(0, true);
  const bnvar_inv = bnvar.add(1e-5).pow(-0.5);
  const bnraw = bndiff.mul(bnvar_inv);
  const h = bngain.mul(bnraw).add(bnbias);
  const loss = h.tanh().mul(t).mean();
  return { loss, h };`,
    gpu: true,
  },
  {
    name: 'bn_scalar_gain',
    Bs: [3, 5, 33],
    body: `
  const x = g.input('x', [BB, 3]);
  const bias = g.param('bias', [3]);
  const h = g.batchNorm(x, 1.5, bias);
  const t = g.input('t', [BB, 3]);
  const loss = h.mul(t).sum();
  return { loss, h };`,
  },
  // --- hinge
  {
    name: 'hinge',
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 5]);
  const y = g.input('y', [BB], 'i32');
  const s = x.matmul(W);
  const loss = g.hingeLoss(s, y);
  return { loss, s };`,
  },
  {
    name: 'hinge_margin',
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 5]);
  const y = g.input('y', [BB], 'i32');
  const s = x.matmul(W);
  const loss = g.hingeLoss(s, y, 0.3).mul(2);
  return { loss, s };`,
  },
  // --- concat
  {
    name: 'concat_1',
    body: `
  const x = g.input('x', [BB, 3]);
  const W = g.param('W', [3, 2]);
  const h = x.matmul(W).tanh(); // [B,2]
  const c = g.concat([x, h, x.mul(2)], 1); // [B,8]
  const V = g.param('V', [8, 1]);
  const loss = c.matmul(V).square().mean();
  return { loss, c };`,
  },
  {
    name: 'concat_3d',
    body: `
  const x = g.input('x', [BB, 2, 3]);
  const w = g.param('w', [2, 3]);
  const v = g.param('v', [2, 1]);
  const c = g.concat([x.mul(w), x.sum(2, true).mul(v)], 2); // [B,2,4]
  const d = g.concat([c, c.tanh()], 1); // [B,4,4]
  const loss = d.square().mean();
  return { loss, c, d };`,
  },
  {
    name: 'concat_mid_B',
    body: `
  const x = g.input('x', [3, BB]);
  const w = g.param('w', [3, 1]);
  const c = g.concat([x.mul(w), w.mul(x).tanh()], 0); // [6,B]
  const loss = c.square().mean();
  return { loss, c };`,
  },
  {
    name: 'concat_B_axis',
    error: 'concat: tensor 0 is f32[B,3], symbolic along axis 0',
    // concat along the symbolic axis itself: [B,3] ++ [B,3] -> [2B,3]? (may be unsupported)
    body: `
  const x = g.input('x', [BB, 3]);
  const w = g.param('w', [3]);
  const c = g.concat([x.mul(w), x.tanh()], 0);
  const loss = c.square().mean();
  return { loss, c };`,
  },
  {
    name: 'concat_B_axis_and_width',
    error: 'concat: tensor 0 is f32[B,3], symbolic along axis 0; also tensor 1 is f32[B,4], which does not match f32[B,3] outside axis 0',
    // the symbolic axis does not hide that the widths differ too
    body: `
  const x = g.input('x', [BB, 3]);
  const y = g.input('y', [BB, 4]);
  const w = g.param('w', [3]);
  const c = g.concat([x.mul(w), y], 0);
  const loss = c.square().mean();
  return { loss, c };`,
  },
  // --- stopGradient
  {
    name: 'stopgrad',
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 3]);
  const h = x.matmul(W);
  const m = h.mean(0, true).stopGradient();
  const y = h.sub(m).tanh();
  const loss = y.square().mean();
  return { loss, y };`,
  },
  // --- constants broadcast against B
  {
    name: 'const_bcast',
    body: `
  const x = g.input('x', [BB, 3]);
  const w = g.param('w', [3]);
  const k = g.const([[1, 2, 3]]);
  const y = x.mul(w).add(k).mul(g.const([0.5, 1, 2]));
  const loss = y.tanh().sum().div(g.const(3));
  return { loss, y };`,
  },
  // --- a small MLP end to end
  {
    name: 'mlp',
    Bs: [3, 5, 33],
    body: `
  const C = g.param('C', [10, 3]);
  const X = g.input('X', [BB, 2], 'i32');
  const Y = g.input('Y', [BB], 'i32');
  const W1 = g.param('W1', [6, 8]);
  const b1 = g.param('b1', [8]);
  const bg = g.param('bg', [1, 8]);
  const bb = g.param('bb', [1, 8]);
  const W2 = g.param('W2', [8, 10]);
  const emb = g.gather(C, X).reshape([BB, -1]);
  const h = g.batchNorm(emb.matmul(W1).add(b1), bg, bb).tanh();
  const logits = h.matmul(W2);
  const loss = g.crossEntropy(logits, Y);
  const probs = g.softmax(logits);
  return { loss, probs };`,
  },
  // --- two symbolic dims
  {
    name: 'two_BT_basic',
    T: [1, 3, 7],
    body: `
  const x = g.input('x', [BB, TT]);
  const y = g.input('y', [TT]);
  const w = g.param('w', []);
  const h = x.mul(y).mul(w).tanh(); // [B,T]
  const a = h.sum(1); // [B]
  const b = h.mean(0); // [T]
  const c = h.max(1, true);
  const loss = a.square().mean().add(b.sum()).add(c.mean());
  return { loss, h, a, b };`,
  },
  {
    // pads whose start is a sum of sizes of different symbols (2·B + 1; 6·B·T + 3·T + 1), their gradients slices from there
    name: 'two_BT_pad_strides',
    T: [3],
    Bs: [2, 5],
    body: `
  const x = g.input('x', [3, BB, 2]);
  const z = g.input('z', [2, BB, 2, TT, 3]);
  const w = g.param('w', [2]);
  const u = g.param('u', [3]);
  const p = g.pad(x.mul(w).tanh(), [[1, 0], [0, 0], [1, 0]]);
  const q = g.pad(z.mul(u).sin(), [[1, 0], [0, 0], [1, 0], [0, 0], [1, 1]]);
  const loss = p.square().mean().add(q.square().mean());
  return { loss, p, q };`,
  },
  {
    name: 'two_BT_softmax',
    T: [1, 3, 7],
    body: `
  const x = g.input('x', [BB, TT]);
  const y = g.input('y', [TT]);
  const w = g.param('w', []);
  const h = x.add(y).mul(w);
  const p = g.softmax(h, 1);
  const q = g.logSoftmax(h, 0);
  const loss = p.mul(x).sum().add(q.mean());
  return { loss, p, q };`,
  },
  {
    name: 'two_BT_matmul',
    T: [1, 3, 7],
    body: `
  const x = g.input('x', [BB, TT]);
  const y = g.input('y', [TT]);
  const w = g.param('w', [1, 4]);
  const yy = y.reshape([TT, 1]).mul(w); // [T,4]
  const o = x.matmul(yy).tanh(); // [B,4]
  const z = x.transpose().matmul(o); // [T,4]
  const loss = o.square().mean().add(z.mean());
  return { loss, o, z };`,
  },
  {
    name: 'two_BT3_gather',
    error: 'reshape: cannot reshape [B, T, 2] (B * T * 2 elements) to [B, -1]',
    T: [1, 3, 7],
    body: `
  const i = g.input('i', [BB, TT], 'i32');
  const m = g.input('m', [TT]);
  const C = g.param('C', [10, 3]);
  const e = g.gather(C, i); // [B,T,3]
  const W = g.param('W', [3, 2]);
  const o = e.matmul(W).tanh().mul(m.reshape([1, TT, 1])); // [B,T,2]
  const r = o.reshape([BB, -1]); // [B, T*2]
  const loss = r.square().mean().add(o.sum([0, 1]).sum());
  return { loss, o, r };`,
  },
  {
    name: 'two_BT_transpose_bn',
    Bs: [3, 5, 33],
    T: [1, 3, 7],
    body: `
  const x = g.input('x', [BB, TT]);
  const y = g.input('y', [TT]);
  const w = g.param('w', []);
  const h = x.mul(y).mul(w).transpose(); // [T,B]
  const bn = g.batchNorm(h.transpose(), 1, 0); // over B
  const loss = bn.tanh().mean().add(h.mean(1).square().sum());
  return { loss, bn };`,
  },
  // --- more
  {
    name: 'mm_cols',
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [3, 4]);
  const b = g.param('b', [3, 1]);
  const o = W.matmul(x.transpose()).add(b).tanh(); // [3,B]
  const loss = o.square().mean();
  return { loss, o };`,
  },
  {
    name: 'mm_epilogue_b1',
    body: `
  const x = g.input('x', [BB, 4]);
  const s = g.input('s', [BB, 1]);
  const W = g.param('W', [4, 3]);
  const o = x.matmul(W).add(s).relu();
  const loss = o.square().mean();
  return { loss, o };`,
  },
  {
    name: 'mm_reduce_B',
    body: `
  const x = g.input('x', [BB, 4]);
  const W = g.param('W', [4, 3]);
  const h = x.matmul(W);
  const a = h.sum(0);
  const m = h.mean(0, true);
  const loss = a.square().sum().add(h.sub(m).square().mean());
  return { loss, a, m };`,
  },
  {
    name: 'pairwise_BB',
    body: `
  const s = g.input('s', [BB, 1]);
  const w = g.param('w', []);
  const v = s.reshape([BB]);
  const d = s.sub(v).square().mul(w); // [B,B]
  const e = s.mul(s.transpose()).tanh(); // [B,B]
  const loss = d.mean().add(e.sum(1).mean()).add(d.max(0).sum());
  return { loss, d, e };`,
  },
  {
    name: 'center_scale',
    body: `
  const x = g.input('x', [BB, 3]);
  const w = g.param('w', [3]);
  const h = x.mul(w);
  const c = h.sub(h.mean(0)).div(h.abs().max(0).add(1));
  const r = c.div(c.abs().sum(1, true).add(1));
  const loss = r.square().sum();
  return { loss, c, r };`,
  },
  {
    name: 'gather_B_table',
    error: 'gather: the number of rows of f32[B,4] is symbolic',
    // the table has B rows; indices bounded by B
    body: `
  const x = g.input('x', [BB, 4]);
  const i = g.input('i', [3], 'i32');
  const w = g.param('w', [4]);
  const e = g.gather(x.mul(w), i); // [3,4]
  const loss = e.tanh().sum();
  return { loss, e };`,
    fix: (inputs, dims) => {
      inputs.i = Int32Array.from([0, dims.B! - 1, Math.floor(dims.B! / 2)]);
    },
  },
  {
    name: 'pick_B_table',
    error: 'pick: the number of classes of f32[4,B] is symbolic',
    body: `
  const x = g.input('x', [4, BB]);
  const i = g.input('i', [4], 'i32');
  const w = g.param('w', [4, 1]);
  const p = g.pick(x.mul(w), i); // [4]
  const loss = p.tanh().sum();
  return { loss, p };`,
    fix: (inputs, dims) => {
      inputs.i = Int32Array.from([0, dims.B! - 1, Math.floor(dims.B! / 2), dims.B! - 1]);
    },
  },
  {
    name: 'onehot_B2',
    body: `
  const y = g.input('y', [BB, 2], 'i32');
  const x = g.input('x', [BB, 2, 4]);
  const w = g.param('w', [4]);
  const oh = g.oneHot(y, 4); // [B,2,4]
  const l = oh.mul(x).mul(w).sum(-1);
  const loss = l.tanh().mean();
  return { loss, oh, l };`,
  },
  {
    name: 'softmax_lastB',
    body: `
  const x = g.input('x', [4, BB]);
  const w = g.param('w', [4, 1]);
  const t = g.input('t', [4, BB]);
  const h = x.mul(w);
  const p = g.softmax(h);
  const q = g.logSoftmax(h);
  const loss = p.mul(t).sum().add(q.mul(t).mean());
  return { loss, p, q };`,
  },
  {
    name: 'vec_B',
    body: `
  const v = g.input('v', [BB]);
  const w = g.param('w', []);
  const h = v.mul(w);
  const p = g.softmax(h);
  const loss = h.max().add(p.mul(v).sum()).add(h.square().mean());
  return { loss, p };`,
  },
  {
    name: 'adj_BB',
    body: `
  const v = g.input('v', [BB]);
  const A = g.input('A', [BB, BB]);
  const W = g.param('W', [1, 3]);
  const h = v.reshape([BB, 1]).mul(W); // [B,3]
  const o = A.matmul(h).tanh(); // [B,3]
  const loss = o.square().mean();
  return { loss, o };`,
  },
  {
    name: 'two_TB_order',
    T: [1, 3, 7],
    body: `
  const y = g.input('y', [TT]);
  const x = g.input('x', [BB, TT]);
  const w = g.param('w', []);
  const h = x.mul(y).mul(w).tanh();
  const loss = h.mean(0).square().sum().add(h.mean());
  return { loss, h };`,
  },
  {
    name: 'two_BT2_elem',
    T: [1, 3, 7],
    body: `
  const x = g.input('x', [BB, TT, 2]);
  const y = g.input('y', [TT]);
  const w = g.param('w', [2]);
  const h = x.mul(y.reshape([TT, 1])).mul(w).tanh(); // [B,T,2]
  const m = h.mean(1); // [B,2]
  const loss = h.square().mean().add(m.sum());
  return { loss, h, m };`,
  },
  {
    name: 'rs_squeeze',
    body: `
  const x = g.input('x', [BB, 1]);
  const w = g.param('w', []);
  const a = x.mul(w).reshape([BB]); // [B]
  const b = a.reshape([1, BB]).tanh(); // [1,B]
  const loss = b.square().sum().add(a.mean());
  return { loss, a, b };`,
  },
  {
    name: 'rs_resplit',
    body: `
  const x = g.input('x', [BB, 3, 4]);
  const w = g.param('w', [3, 4]);
  const h = x.mul(w);
  const a = h.reshape([BB, 4, 3]).tanh();
  const b = h.reshape([BB, 2, -1]).sum(1);
  const loss = a.max(1).sum().add(b.square().mean());
  return { loss, a, b };`,
  },
  {
    name: 'rs_scramble',
    // [B,4] -> [2,B,2]: same element count, B no longer the leading axis
    body: `
  const x = g.input('x', [BB, 4]);
  const w = g.param('w', [4]);
  const h = x.mul(w).reshape([2, BB, 2]);
  const v = g.param('v', [2, 1, 2]);
  const o = h.mul(v).tanh();
  const loss = o.sum([0, 2]).square().sum();
  return { loss, o };`,
  },
  {
    name: 'tr_reshape',
    body: `
  const x = g.input('x', [2, BB, 3]);
  const w = g.param('w', [3]);
  const h = x.mul(w).transpose([0, 2, 1]); // [2,3,B]
  const r = h.reshape([6, BB]).tanh();
  const V = g.param('V', [6, 6]);
  const o = V.matmul(r); // [6,B]
  const loss = o.square().mean();
  return { loss, r, o };`,
  },
  {
    // the lecture's BatchNorm1d on [B, T, C]: statistics over B·T rows (bn_apply over axes 0, 1)
    name: 'bn_3d',
    body: `
  const x = g.input('x', [BB, 3, 4]);
  const W = g.param('W', [4, 4]);
  const gain = g.param('gain', [4]);
  const bias = g.param('bias', [4]);
  const h = g.batchNorm(x.matmul(W), gain, bias);
  const t = g.input('t', [BB, 3, 4]);
  const loss = h.tanh().mul(t).sum();
  return { loss, h };`,
  },
  {
    // a loss at every position of a sequence: its B*3 rows one product dimension, the fused cross-entropy rule
    name: 'xent_3d',
    body: `
  const x = g.input('x', [BB, 3, 4]);
  const W = g.param('W', [4, 5]);
  const y = g.input('y', [BB, 3], 'i32');
  const logits = x.matmul(W);
  const loss = g.crossEntropy(logits, y);
  return { loss, logits };`,
  },
  {
    name: 'row_norm',
    body: `
  const x = g.input('x', [BB, 4]);
  const w = g.param('w', [4]);
  const h = x.mul(w).exp();
  const r = h.div(h.sum(1, true));
  const s = h.div(h.sum(0, true));
  const loss = r.mul(x).sum().add(s.mul(x).mean());
  return { loss, r, s };`,
  },
  {
    name: 'stopgrad_out',
    body: `
  const x = g.input('x', [BB, 3]);
  const w = g.param('w', [3]);
  const h = x.mul(w);
  const sg = h.stopGradient();
  const loss = h.mul(sg).sum().add(sg.max(0).sum());
  return { loss, sg };`,
  },
  {
    name: 'keepdims_epi_bcast',
    // the flat-module reduction-epilogue bug, reproduced with B
    body: `
  const x = g.input('x', [BB, 2, 3]);
  const v = g.param('v', [2, 1]);
  const t = x.sum(2, true).mul(v);
  const loss = t.square().sum();
  return { loss, t };`,
  },
  {
    name: 'two_outer',
    T: [1, 3, 7],
    body: `
  const s = g.input('s', [BB, 1]);
  const y = g.input('y', [TT]);
  const w = g.param('w', [2]);
  const o = s.mul(w.sum()).add(y.reshape([1, TT])).tanh(); // [B,T]
  const bb = o.matmul(o.transpose()); // [B,B]
  const tt = o.transpose().matmul(o); // [T,T]
  const loss = bb.mean().add(tt.sum().mul(w.max())).add(o.max(1).mean());
  return { loss, o, bb, tt };`,
  },
  {
    name: 'two_TB_input',
    T: [1, 3, 7],
    body: `
  const y = g.input('y', [TT]);
  const x = g.input('x', [TT, BB]);
  const W = g.param('W', [4, 1]);
  const h = x.transpose().mul(y).sum(1, true).matmul(W.transpose()); // [B,4]
  const p = g.softmax(h, 0);
  const loss = p.mul(h).sum();
  return { loss, p };`,
  },
  {
    name: 'softmax_inner_sym',
    // softmax along axis 0 of [3,B,2]: the inner size is B * 2
    body: `
  const x = g.input('x', [3, BB, 2]);
  const w = g.param('w', [2]);
  const t = g.input('t', [3, BB, 2]);
  const p = g.softmax(x.mul(w), 0);
  const q = g.logSoftmax(x.mul(w), 0);
  const loss = p.mul(t).sum().add(q.mul(t).mean());
  return { loss, p, q };`,
  },
  {
    name: 'softmax_inner_BT',
    T: [1, 3, 7],
    body: `
  const x = g.input('x', [BB, TT]);
  const y = g.input('y', [TT]);
  const w = g.param('w', [1, 1, 2]);
  const h = x.mul(y).reshape([BB, TT, 1]).mul(w); // [B,T,2]
  const p = g.softmax(h, 0); // inner T * 2
  const loss = p.mul(h).sum();
  return { loss, p };`,
  },
];
