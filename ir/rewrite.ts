// Pattern rewrites on the forward IR: the lecture's long forms and graphc's composite ops
// become fused ops whose gradient rules are what an expert writes by hand.
//
//   exp(x − max x) · (Σ exp(x − max x))⁻¹         → softmax(x)
//   log(softmax(x)), (x − m) − log Σ exp(x − m)   → log_softmax(x)
//   −(Σᵢ log_softmax(x)[i, yᵢ]) / n                → xent(x, y)         dx = (softmax(x) − onehot(y)) / n
//   (x − μ) · (Σ(x − μ)²/(n−1) + ε)^−½            → bn_apply(x, μ, inv) dx = inv/n·(n·dy − Σdy − n/(n−1)·x̂·Σdy·x̂)
//     over the leading axes; over the last axis, Σ(x − μ)²/n → ln_apply(x, μ, inv)   dx = inv·(dy − mean dy − x̂·mean dy·x̂)
//     over every axis but another one (NCHW's channels) or with Σ(x − μ)²/n → bn_apply { axis, correction }
//
// The root instruction is replaced in place (it keeps its name, e.g. `probs`); what it no longer
// uses is removed by DCE if nothing else needs it.

import type { Dim, Size } from './dims.js';
import { isStatic, mulSize, numelSize, size, sizeEq } from './dims.js';
import type { Graph } from './graph.js';
import type { OpKind } from './ops.js';
import type { Pass } from './passes.js';
import { dce } from './passes.js';
import type { Inst, InstOf, ValueId } from './types.js';

/** A matcher over the instructions of one graph. */
class Matcher {
  constructor(readonly g: Graph) {}

  def(v: ValueId): Inst {
    return this.g.def(v);
  }

  /** The defining instruction of v if it is an `op`. */
  is<K extends OpKind>(v: ValueId | undefined, op: K): InstOf<K> | undefined {
    if (v === undefined) return undefined;
    const d = this.def(v);
    return d.op === op ? (d as InstOf<K>) : undefined;
  }

  /** The value of a scalar constant. */
  scalar(v: ValueId | undefined): number | undefined {
    const c = this.is(v, 'const');
    return c && c.attrs.data.length === 1 ? c.attrs.data[0] : undefined;
  }

  near(v: ValueId | undefined, x: number): boolean {
    const s = this.scalar(v);
    return s !== undefined && Math.abs(s - x) <= 1e-9 * Math.max(1, Math.abs(x));
  }

  /**
   * sign/(n − minus) with n the number of elements `dims` span: a constant when n is known at
   * build time, else sign · (n − minus)⁻¹ with n the product of the bound sizes, as Builder.count
   * and Builder.recip spell it.
   */
  invCount(v: ValueId | undefined, dims: readonly Dim[], minus = 0, sign = 1): boolean {
    const n = numelSize(dims);
    // relative: 1/n and 1/(n − 1) differ by about 1/n², below any absolute tolerance for large n
    const s = this.scalar(v);
    if (isStatic(n)) return s !== undefined && Math.abs(s - sign / (n.coef - minus)) <= 1e-12 * Math.abs(sign / (n.coef - minus));
    if (sign !== 1) return false;
    const d = this.is(v, 'div');
    if (!d || !this.near(d.args[0], 1)) return false;
    const count = minus ? this.is(d.args[1], 'sub') : undefined;
    if (minus && (!count || !this.near(count.args[1], minus))) return false;
    const spanned = this.countOf(minus ? count!.args[0] : d.args[1]);
    return spanned !== undefined && sizeEq(spanned, n);
  }

  /** The size a product of `dim` reads and constants computes (Builder.count's form). */
  countOf(v: ValueId | undefined): Size | undefined {
    const dim = this.is(v, 'dim');
    if (dim) return size(dim.attrs.name);
    const c = this.scalar(v);
    if (c !== undefined) return Number.isInteger(c) ? size(c) : undefined;
    const m = this.is(v, 'mul');
    const [a, b] = m ? [this.countOf(m.args[0]), this.countOf(m.args[1])] : [];
    return a && b ? mulSize(a, b) : undefined;
  }

  /** mul(a, b) in either order, with `pred` true of the second; returns the first. */
  mulBy(v: ValueId, pred: (w: ValueId) => boolean): ValueId | undefined {
    const m = this.is(v, 'mul');
    if (!m) return undefined;
    const [a, b] = m.args as [ValueId, ValueId];
    if (pred(b)) return a;
    if (pred(a)) return b;
    return undefined;
  }

  /** max(x, [axis], keepDims) or its stopGradient. */
  rowMax(v: ValueId, x: ValueId, axis: number): boolean {
    const sg = this.is(v, 'stop_gradient');
    const m = this.is(sg ? sg.args[0] : v, 'max');
    return !!m && m.args[0] === x && m.attrs.keepDims && m.attrs.axes.length === 1 && m.attrs.axes[0] === axis;
  }

  /** sum(v, [axis], keepDims: true): returns v. */
  keptSum(s: ValueId, axis: number): ValueId | undefined {
    return this.keptSumOver(s, [axis]);
  }

  /** sum(v, axes, keepDims: true), the axes in any order: returns v. */
  keptSumOver(s: ValueId, axes: readonly number[]): ValueId | undefined {
    const m = this.is(s, 'sum');
    const same = m && m.attrs.axes.length === axes.length && axes.every((a) => m.attrs.axes.includes(a));
    return m && m.attrs.keepDims && same ? m.args[0] : undefined;
  }

  /** z = x − max(x, axis): returns x. */
  shifted(z: ValueId, axis: number): ValueId | undefined {
    const s = this.is(z, 'sub');
    return s && this.rowMax(s.args[1]!, s.args[0]!, axis) ? s.args[0] : undefined;
  }

  /** The axis of a keep-dims single-axis sum. */
  sumAxis(s: ValueId): number | undefined {
    const m = this.is(s, 'sum');
    return m && m.attrs.keepDims && m.attrs.axes.length === 1 ? m.attrs.axes[0] : undefined;
  }

  /** softmax: e · s⁻¹ or e / s with e = exp(x − max x), s = Σ e. Returns [x, axis]. */
  softmax(inst: Inst): [ValueId, number] | undefined {
    let e: ValueId | undefined;
    let s: ValueId | undefined;
    if (inst.op === 'div') [e, s] = inst.args as [ValueId, ValueId];
    else if (inst.op === 'mul') {
      for (const [a, b] of [inst.args, [...inst.args].reverse()] as [ValueId, ValueId][]) {
        const p = this.is(b, 'pow');
        if (p && this.near(p.args[1], -1)) [e, s] = [a, p.args[0]!];
      }
    }
    if (e === undefined || s === undefined) return undefined;
    const axis = this.sumAxis(s);
    if (axis === undefined || this.keptSum(s, axis) !== e) return undefined;
    const ex = this.is(e, 'exp');
    const x = ex && this.shifted(ex.args[0]!, axis);
    return x === undefined ? undefined : [x, axis];
  }

  /** log_softmax: log(softmax(x)) or z − log Σ exp z with z = x − max x. */
  logSoftmax(inst: Inst): [ValueId, number] | undefined {
    if (inst.op === 'log') {
      const sm = this.is(inst.args[0], 'softmax');
      return sm ? [sm.args[0]!, sm.attrs.axis] : undefined;
    }
    if (inst.op !== 'sub') return undefined;
    const [z, l] = inst.args as [ValueId, ValueId];
    const lg = this.is(l, 'log');
    const s = lg?.args[0];
    const axis = s === undefined ? undefined : this.sumAxis(s);
    if (axis === undefined) return undefined;
    const ex = this.is(this.keptSum(s!, axis), 'exp');
    if (!ex || ex.args[0] !== z) return undefined;
    const x = this.shifted(z, axis);
    return x === undefined ? undefined : [x, axis];
  }

  /** xent: −(Σᵢ pick(log_softmax(x), y)ᵢ)/n, written as neg(Σ · 1/n) or Σ · (−1/n). */
  xent(inst: Inst): [ValueId, ValueId] | undefined {
    /** Σ·f where Σ sums axis 0 of an [n] vector and f = sign/n: returns Σ. */
    const scaledSum = (m: InstOf<'mul'> | undefined, sign: number): ValueId | undefined => {
      if (!m) return undefined;
      for (const [a, b] of [m.args, [...m.args].reverse()] as [ValueId, ValueId][]) {
        const s = this.is(a, 'sum');
        if (!s || s.attrs.keepDims || s.attrs.axes.length !== 1 || s.attrs.axes[0] !== 0) continue;
        if (this.invCount(b, [this.g.type(s.args[0]!).shape[0]!], 0, sign)) return a;
      }
      return undefined;
    };
    const total = inst.op === 'neg' ? scaledSum(this.is(inst.args[0], 'mul'), 1) : inst.op === 'mul' ? scaledSum(inst as InstOf<'mul'>, -1) : undefined;
    const pick = this.is(this.is(total, 'sum')?.args[0], 'pick');
    const ls = this.is(pick?.args[0], 'log_softmax');
    if (!pick || !ls || ls.attrs.axis !== 1 || this.g.type(ls.args[0]!).shape.length !== 2) return undefined;
    return [ls.args[0]!, pick.args[1]!];
  }

  /**
   * bn_apply: (x − μ)·inv with μ = Σx/n, inv = (Σ(x − μ)²/(n − 1) + ε)^−½, over every axis but
   * the last (axis 0 of [n, f]; axes 0 and 1 of the lecture's [n, t, f]); ln_apply: the same with
   * Σ(x − μ)²/n over the last axis (layer norm).
   */
  normalization(inst: Inst): { op: 'bn_apply' | 'ln_apply'; args: [ValueId, ValueId, ValueId]; attrs: { axis?: number; correction?: number } } | undefined {
    if (inst.op !== 'mul') return undefined;
    for (const [d, inv] of [inst.args, [...inst.args].reverse()] as [ValueId, ValueId][]) {
      const sub = this.is(d, 'sub');
      if (!sub) continue;
      const [x, mu] = sub.args as [ValueId, ValueId];
      const shape = this.g.type(x).shape;
      const r = shape.length;
      if (r === 0) continue;
      // the lecture's batchnorm, layer norm, then batchnorm over another feature axis or with
      // torch's biased variance (g.batchNorm's axis and correction: 1 for NCHW's channels); the
      // feature axis is never axis 0, the batch (as g.batchNorm's axis)
      const others = (f: number) => [...Array(r).keys()].filter((i) => i !== f);
      const kinds: { op: 'bn_apply' | 'ln_apply'; axes: number[]; correction: 0 | 1; attrs: { axis?: number; correction?: number } }[] = [
        { op: 'bn_apply', axes: others(r - 1), correction: 1, attrs: {} },
        { op: 'ln_apply', axes: [r - 1], correction: 0, attrs: {} },
      ];
      for (let f = r - 1; f >= 1; f--)
        for (const correction of [1, 0] as const)
          if (f !== r - 1 || correction !== 1)
            kinds.push({ op: 'bn_apply', axes: others(f), correction, attrs: { ...(f !== r - 1 ? { axis: f } : {}), ...(correction !== 1 ? { correction } : {}) } });
      for (const { op, axes, correction, attrs } of kinds) {
        const spanned = axes.map((a) => shape[a]!);
        const n = numelSize(spanned);
        if (axes.length === 0 || (isStatic(n) && n.coef < 1 + correction)) continue;
        const sumKept = (v: ValueId | undefined) => (v === undefined ? undefined : this.keptSumOver(v, axes));
        if (sumKept(this.mulBy(mu, (w) => this.invCount(w, spanned))) !== x) continue;
        const p = this.is(inv, 'pow');
        if (!p || !this.near(p.args[1], -0.5)) continue;
        const plusEps = this.is(p.args[0], 'add');
        if (!plusEps) continue;
        const [va, vb] = plusEps.args as [ValueId, ValueId];
        const variance = this.scalar(vb) !== undefined ? va : this.scalar(va) !== undefined ? vb : undefined;
        if (variance === undefined) continue;
        const sq = sumKept(this.mulBy(variance, (w) => this.invCount(w, spanned, correction)));
        if (sq === undefined) continue;
        const sqd = this.def(sq);
        const isSquare =
          (sqd.op === 'pow' && sqd.args[0] === d && this.near(sqd.args[1], 2)) ||
          (sqd.op === 'square' && sqd.args[0] === d) ||
          (sqd.op === 'mul' && sqd.args[0] === d && sqd.args[1] === d);
        if (isSquare) return { op, args: [x, mu, inv], attrs };
      }
    }
    return undefined;
  }
}

/** The fused-op rewrite, one pattern after another in program order. */
export const fuseComposites: Pass = {
  name: 'fuse-composites',
  run(g, ctx) {
    const m = new Matcher(g);
    for (const id of g.insts.map((i) => i.id)) {
      const inst = g.inst(id);
      const replace = <K extends OpKind>(op: K, args: ValueId[], attrs: InstOf<K>['attrs']) =>
        g.replaceInst(inst, { ...inst, op, args, attrs } as unknown as Inst);
      const sm = m.softmax(inst);
      if (sm) {
        replace('softmax', [sm[0]], { axis: sm[1] });
        continue;
      }
      const ls = m.logSoftmax(inst);
      if (ls) {
        replace('log_softmax', [ls[0]], { axis: ls[1] });
        continue;
      }
      const xe = g.type(inst.result).shape.length === 0 ? m.xent(inst) : undefined;
      if (xe) {
        replace('xent', xe, {});
        continue;
      }
      const norm = m.normalization(inst);
      if (norm) replace(norm.op, norm.args, norm.attrs);
    }
    dce.run(g, ctx);
  },
};
