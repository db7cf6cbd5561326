// The op table's entries for the index ops (gather, scatter_add, pick, one_hot), softmax,
// log_softmax, cross-entropy, the fused normalisations (bn_apply, ln_apply), and the
// convolutions and pooling (ir/conv.ts): ir/ops.ts spreads FUSED_OPS and CONV_OPS into OPS.

import { CompileError } from './errors.js';
import * as K from './ndarray.js';
import { fmtShape } from './shape.js';
import type { Dim } from './dims.js';
import { formatType, numel, sameShape } from './types.js';
import * as CV from './conv.js';
import type { AttrSchema, AttrsOf, GradCtx, OpDef } from './ops.js';
import type { TensorType, ValueId } from './types.js';
import { isStatic, numelSize } from './dims.js';
import { checkAxis, checkIndex, f32, needF32, needI32, softmaxEval, staticBound } from './op-checks.js';

type None = Record<string, never>;

export const FUSED_OPS: { readonly [P in 'gather' | 'scatter_add' | 'pick' | 'one_hot' | 'softmax' | 'log_softmax' | 'xent' | 'bn_apply' | 'ln_apply']: OpDef<AttrsOf[P]> } = {
  gather: {
    category: 'index',
    attrs: {},
    arity: 2,
    shape: ([table, idx]) => {
      needF32('gather', table!, 'the table');
      needI32('gather', idx!, 'the index tensor');
      if (table!.shape.length < 1) throw new CompileError(`gather: the table is a scalar ${formatType(table!)}`, 'gather rows from a table of rank 1 or more');
      staticBound('gather', table!, 0, 'rows');
      return f32([...idx!.shape, ...table!.shape.slice(1)]);
    },
    grad: (c) => [() => c.b.scatterAdd(c.x(1), c.dy, [...c.xt(0).shape]), null],
    indices: ([table]) => [{ arg: 1, bound: table!.shape[0] as number }],
    eval: ([table, idx], _a, t) => {
      const row = numel(table!.shape.slice(1));
      const out = K.nd(t.shape);
      idx!.data.forEach((r, i) => {
        checkIndex('gather', r, table!.shape[0]!);
        out.data.set(table!.data.subarray(r * row, r * row + row), i * row);
      });
      return out;
    },
  },
  scatter_add: {
    category: 'index',
    attrs: { shape: 'dims' },
    arity: 2,
    shape: ([idx, src], a) => {
      needI32('scatter_add', idx!, 'the index tensor');
      const want = [...idx!.shape, ...a.shape.slice(1)];
      if (!sameShape(want, src!.shape))
        throw new CompileError(`scatter_add: source ${formatType(src!)} does not match ${fmtShape(want)}`, 'internal rule error');
      staticBound('scatter_add', f32(a.shape), 0, 'rows');
      return f32(a.shape);
    },
    grad: (c) => [null, () => c.b.gather(c.dy, c.x(0))],
    indices: (_t, a) => [{ arg: 0, bound: a.shape[0] as number }],
    eval: ([idx, src], _a, t) => {
      const row = numel(t.shape.slice(1));
      const out = K.nd(t.shape);
      idx!.data.forEach((r, i) => {
        checkIndex('scatter_add', r, t.shape[0]!);
        for (let j = 0; j < row; j++) out.data[r * row + j]! += src!.data[i * row + j]!;
      });
      return out;
    },
  },
  pick: {
    category: 'index',
    attrs: {},
    arity: 2,
    shape: ([x, idx]) => {
      needF32('pick', x!, 'the first operand');
      needI32('pick', idx!, 'the index tensor');
      if (x!.shape.length !== 2 || idx!.shape.length !== 1 || x!.shape[0] !== idx!.shape[0])
        throw new CompileError(
          `pick: needs x [n, c] and indices [n], got ${formatType(x!)} and ${formatType(idx!)}`,
          'pick(x, indices) takes x[range(n), indices]: one index per row of a 2-D x',
        );
      staticBound('pick', x!, 1, 'classes');
      return f32([x!.shape[0]!]);
    },
    grad: (c) => [() => c.b.mul(c.b.oneHot(c.x(1), c.xt(0).shape[1] as number), c.b.reshape(c.dy, [c.yt.shape[0]!, 1])), null],
    indices: ([x]) => [{ arg: 1, bound: x!.shape[1] as number }],
    eval: ([x, idx]) => {
      const cols = x!.shape[1]!;
      return K.nd([x!.shape[0]!], Array.from(idx!.data, (j, i) => (checkIndex('pick', j, cols), x!.data[i * cols + j]!)));
    },
  },
  one_hot: {
    category: 'index',
    attrs: { depth: 'int' },
    arity: 1,
    shape: ([idx], a) => {
      needI32('oneHot', idx!, 'the index tensor');
      if (!Number.isInteger(a.depth) || a.depth < 1)
        throw new CompileError(`oneHot: depth ${a.depth} is not a positive integer`, 'pass the number of classes as depth');
      return f32([...idx!.shape, a.depth]);
    },
    grad: 'none',
    indices: (_t, a) => [{ arg: 0, bound: a.depth }],
    eval: ([idx], a, t) => {
      const out = K.nd(t.shape);
      idx!.data.forEach((j, i) => {
        checkIndex('oneHot', j, a.depth);
        out.data[i * a.depth + j] = 1;
      });
      return out;
    },
  },

  softmax: {
    category: 'fused',
    attrs: { axis: 'int' },
    arity: 1,
    shape: ([x], a) => {
      needF32('softmax', x!, 'the operand');
      checkAxis('softmax', a.axis, x!);
      return f32(x!.shape);
    },
    // dx = y · (dy − Σ dy·y)
    grad: (c) => [() => c.b.mul(c.y(), c.b.sub(c.dy, c.b.sum(c.b.mul(c.dy, c.y()), [c.attrs.axis], true)))],
    eval: ([x], a) => softmaxEval(x!, a.axis, false),
  },
  log_softmax: {
    category: 'fused',
    attrs: { axis: 'int' },
    arity: 1,
    shape: ([x], a) => {
      needF32('logSoftmax', x!, 'the operand');
      checkAxis('logSoftmax', a.axis, x!);
      return f32(x!.shape);
    },
    // dx = dy − softmax(x) · Σ dy
    grad: (c) => [() => c.b.sub(c.dy, c.b.mul(c.b.exp(c.y()), c.b.sum(c.dy, [c.attrs.axis], true)))],
    eval: ([x], a) => softmaxEval(x!, a.axis, true),
  },
  xent: {
    category: 'fused',
    attrs: {},
    arity: 2,
    shape: ([x, t]) => {
      needF32('crossEntropy', x!, 'the logits');
      needI32('crossEntropy', t!, 'the targets');
      if (x!.shape.length !== 2 || t!.shape.length !== 1 || t!.shape[0] !== x!.shape[0])
        throw new CompileError(`crossEntropy: needs logits [n, c] and targets [n], got ${formatType(x!)} and ${formatType(t!)}`, 'one target class per row of logits');
      staticBound('crossEntropy', x!, 1, 'classes');
      return f32([]);
    },
    // dlogits = (softmax(logits) − onehot(targets)) · dy / n
    grad: (c) => {
      const [n, cls] = c.xt(0).shape as [Dim, number];
      const { b } = c;
      return [() => b.mul(b.sub(b.softmax(c.x(0), 1), b.oneHot(c.x(1), cls)), b.mul(c.dy, b.recip(b.count([n])))), null];
    },
    indices: ([x]) => [{ arg: 1, bound: x!.shape[1] as number }],
    eval: ([x, t]) => {
      const [n, cls] = x!.shape as [number, number];
      const lp = softmaxEval(x!, 1, true);
      let s = 0;
      t!.data.forEach((j, i) => {
        checkIndex('crossEntropy', j, cls);
        s += lp.data[i * cls + j]!;
      });
      return K.nd([], [-s / n]);
    },
  },
  bn_apply: normalization('batchNorm', 'bn_apply', 'leading', 1) as OpDef<AttrsOf['bn_apply']>,
  ln_apply: normalization('layerNorm', 'ln_apply', 'last', 0) as OpDef<None>,
};

export const CONV_OPS: { readonly [P in 'conv' | 'conv_input_grad' | 'conv_weight_grad' | 'max_pool' | 'max_pool_grad' | 'max_pool_pick' | 'avg_pool' | 'avg_pool_grad']: OpDef<AttrsOf[P]> } = {
  conv: {
    category: 'conv',
    attrs: CV.CONV_SCHEMA,
    arity: 2,
    shape: ([x, w], a) => CV.convShape('conv', x!, w!, a),
    grad: CV.convGrad,
    eval: ([x, w], a, t) => CV.convEval(x!, w!, a, t.shape),
  },
  conv_input_grad: {
    category: 'conv',
    attrs: { ...CV.CONV_SCHEMA, size: 'ints' },
    arity: 2,
    shape: ([dy, w], a) => CV.shapes.convInputGradShape('conv_input_grad', dy!, w!, a),
    grad: CV.convInputGradGrad,
    eval: ([dy, w], a, t) => CV.convInputGradEval(dy!, w!, a, t.shape),
  },
  conv_weight_grad: {
    category: 'conv',
    attrs: { ...CV.CONV_SCHEMA, kernel: 'ints' },
    arity: 2,
    shape: ([x, dy], a) => CV.shapes.convWeightGradShape('conv_weight_grad', x!, dy!, a),
    grad: CV.convWeightGradGrad,
    eval: ([x, dy], a, t) => CV.convWeightGradEval(x!, dy!, a, t.shape),
  },
  max_pool: {
    category: 'conv',
    attrs: CV.POOL_SCHEMA,
    arity: 1,
    shape: ([x], a) => CV.poolShape('max_pool', x!, a),
    grad: CV.maxPoolGrad,
    eval: ([x], a, t) => CV.maxPoolEval(x!, a, t.shape),
  },
  max_pool_grad: {
    category: 'conv',
    attrs: { ...CV.POOL_SCHEMA, size: 'ints' },
    arity: 2,
    shape: ([x, dy], a) => {
      const t = CV.shapes.poolGradShape('max_pool_grad', dy!, a);
      if (!sameShape(t.shape, x!.shape)) throw new CompileError(`max_pool_grad: dy ${formatType(dy!)} is not the output of x ${formatType(x!)}`, 'internal rule error');
      return t;
    },
    grad: CV.maxPoolGradGrad,
    eval: ([x, dy], a) => CV.maxPoolGradEval(x!, dy!, a),
  },
  max_pool_pick: {
    category: 'conv',
    attrs: CV.POOL_SCHEMA,
    arity: 2,
    shape: ([x, v], a) => {
      if (!sameShape(v!.shape, x!.shape)) throw new CompileError(`max_pool_pick: v ${formatType(v!)} is not shaped as x ${formatType(x!)}`, 'internal rule error');
      return CV.poolShape('max_pool_pick', x!, a);
    },
    grad: CV.maxPoolPickGrad,
    eval: ([x, v], a, t) => CV.maxPoolPickEval(x!, v!, a, t.shape),
  },
  avg_pool: {
    category: 'conv',
    attrs: CV.POOL_SCHEMA,
    arity: 1,
    shape: ([x], a) => CV.poolShape('avg_pool', x!, a),
    grad: CV.avgPoolGrad,
    eval: ([x], a, t) => CV.avgPoolEval(x!, a, t.shape),
  },
  avg_pool_grad: {
    category: 'conv',
    attrs: { ...CV.POOL_SCHEMA, size: 'ints' },
    arity: 1,
    shape: ([dy], a) => CV.shapes.poolGradShape('avg_pool_grad', dy!, a),
    grad: CV.avgPoolGradGrad,
    eval: ([dy], a, t) => CV.avgPoolGradEval(dy!, a, t.shape),
  },
};

/**
 * (x − mean) · inv, normalising over the leading axes (batchnorm: x [n, f] or [n, t, f], mean and
 * inv [1, f] / [1, 1, f] or [f]) or over the last axis (layer norm: x [..., c], mean and inv
 * [..., 1]); the variance inside inv divides by n − correction, n the elements averaged.
 */
function normalization(dsl: string, op: string, over: 'leading' | 'last', defaultCorrection: 0 | 1): OpDef<{ axis?: number; correction?: number }> {
  // bn_apply: every axis but the feature axis (attrs.axis, default the last); ln_apply: the last
  const featureOf = (r: number, a: { axis?: number }) => a.axis ?? r - 1;
  const axesOf = (r: number, a: { axis?: number }) => (over === 'leading' ? [...Array(r).keys()].filter((i) => i !== featureOf(r, a)) : [r - 1]);
  return {
    category: 'elementwise',
    attrs: (over === 'leading' ? { axis: 'optnum', correction: 'optnum' } : {}) as AttrSchema<{ axis?: number; correction?: number }>,
    arity: 3,
    shape: ([x, mean, inv], attrs) => {
      needF32(dsl, x!, 'the operand');
      const r = x!.shape.length;
      const f = featureOf(r, attrs);
      const axes = r < (over === 'leading' ? 2 : 1) || !Number.isInteger(f) || f < 0 || f >= r ? undefined : axesOf(r, attrs);
      const stat = (t: TensorType) =>
        t.dtype === 'f32' &&
        ((t.shape.length === r && t.shape.every((d, i) => (axes!.includes(i) ? d === 1 : d === x!.shape[i]))) ||
          (over === 'leading' && f === r - 1 && t.shape.length === 1 && t.shape[0] === x!.shape[r - 1]));
      if (!axes || !stat(mean!) || !stat(inv!)) {
        const want = over === 'leading' ? 'x [n, ..., f] and statistics [1, ..., f] (1s but on the feature axis)' : 'x [..., c] and statistics [..., 1]';
        throw new CompileError(`${op}: needs ${want}, got ${formatType(x!)}, ${formatType(mean!)}, ${formatType(inv!)}`, 'internal rewrite error');
      }
      return f32(x!.shape);
    },
    // the total derivative through mean and inv, sums over the normalised axes, with the variance
    // divided by n − c (c the correction):
    //   batchnorm (the lecture's c = 1, torch's c = 0)  dx = inv/n · (n·dy − Σdy − n/(n−c) · y · Σ dy·y)
    //   layer norm (c = 0)                              dx = inv · (dy − mean dy − y · mean dy·y)
    grad: (c) => {
      const { b, dy } = c;
      const shape = c.xt(0).shape;
      const axes = axesOf(shape.length, c.attrs);
      const spanned = axes.map((a) => shape[a]!);
      const sumOver = (v: ValueId) => b.sum(v, axes, true);
      const n = () => b.count(spanned);
      let total: () => ValueId;
      const correction = c.attrs.correction ?? defaultCorrection;
      if (over === 'last') {
        const meanOver = (v: ValueId) => b.mul(sumOver(v), b.recip(n()));
        total = () => b.mul(c.x(2), b.sub(b.sub(dy, meanOver(dy)), b.mul(c.y(), meanOver(b.mul(dy, c.y())))));
      } else {
        // n/(n − c): 1 for torch's correction 0; n/(n−1) one constant when n is known, else
        // n · (n − 1)⁻¹ from the bound sizes. Both sums read dy and y in one pass (the layer-norm
        // form's dy − mean dy would need the first sum before the second pass)
        const known = numelSize(spanned);
        const bessel = () => (correction === 0 ? 1 : isStatic(known) ? known.coef / (known.coef - 1) : b.mul(n(), b.recip(b.count(spanned, 1))));
        total = () => b.mul(b.mul(c.x(2), b.recip(n())), b.sub(b.sub(b.mul(dy, n()), sumOver(dy)), b.mul(b.mul(c.y(), bessel()), sumOver(b.mul(dy, c.y())))));
      }
      // batchNorm with running statistics: an evaluation call normalises with the buffers, which
      // do not depend on x, so there dx = dy · inv (a per-feature affine map); the mode flag selects
      const training = over === 'leading' ? modeOf(c as GradCtx<unknown>, 1) : undefined;
      return [training === undefined ? total : () => b.select(training, total(), b.mul(dy, c.x(2))), null, null];
    },
    eval: ([x, mean, inv], _a, t) => K.map(t.shape, [x!, mean!, inv!], (v, m, s) => (v - m) * s),
  };
}

/**
 * The mode flag that selects operand k's value (a `select(mode, …)`, as batchNorm with running
 * statistics selects its statistics), or undefined: the flag, read into the backward graph.
 */
function modeOf(c: GradCtx<unknown>, k: number): ValueId | undefined {
  const f = c.forward;
  if (!f) return undefined;
  const d = f.def(f.args[k]!);
  if (d.op !== 'select' || f.def(d.args[0]!).op !== 'mode') return undefined;
  return f.read(d.args[0]!);
}
