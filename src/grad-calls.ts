// g.grad and g.customGrad, traced: the reverse pass emitted into the model's graph at the call,
// and a user's backward recorded once as a rule that the reverse pass emits again (ir/autodiff.ts).

import { gradInGraph } from '../ir/autodiff.js';
import { CompileError } from '../ir/errors.js';
import type { ValueId } from '../ir/types.js';
import { formatType } from '../ir/types.js';
import { describe } from './dsl-args.js';
import { Tensor } from './dsl.js';
import type { TensorLike, Tracer } from './dsl.js';

/** g.grad(y, xs): the reverse pass from y to xs, emitted into the model's graph at the call. */
export function traceGrad(t: Tracer, y: unknown, xs: unknown): Tensor[] {
  const loc = t.callLoc();
  try {
    if (!(y instanceof Tensor)) throw new CompileError(`g.grad: y must be a tensor, got ${describe(y)}`, 'pass the scalar to differentiate, e.g. g.grad(u.sum(), [x])');
    const yt = t.graph.type(t.operand(y, 'g.grad'));
    if (yt.dtype !== 'f32' || yt.shape.length !== 0)
      throw new CompileError(`g.grad: y must be an f32 scalar, but it is ${formatType(yt)}`, 'reduce it to a scalar first, e.g. g.grad(u.sum(), [x]) for the gradient of every entry of u');
    if (!Array.isArray(xs) || xs.length === 0)
      throw new CompileError(`g.grad: the second argument must be a non-empty array of tensors, got ${describe(xs)}`, 'list what to differentiate with respect to, e.g. g.grad(loss, [x])');
    const ids = xs.map((x, k) => {
      const id = t.operand(x, 'g.grad');
      const xt = t.graph.type(id);
      if (xt.dtype !== 'f32')
        throw new CompileError(`g.grad: xs[${k}] is ${formatType(xt)}; gradients are taken with respect to f32 tensors`, 'differentiate with respect to f32 params, inputs or values; i32 tensors hold indices');
      return id;
    });
    const dxs = gradInGraph(t.graph, y.id, ids, loc);
    t.graph.gradCalls.push({ y: y.id, xs: ids, dxs, loc });
    return dxs.map((d) => t.wrap(d));
  } catch (e) {
    throw e instanceof CompileError ? e.withLoc(loc) : e;
  }
}

/** g.customGrad(forward, backward): see GraphBuilder.customGrad. */
export function traceCustomGrad(t: Tracer, forward: unknown, backward: unknown): (...xs: TensorLike[]) => Tensor {
  const at = t.callLoc();
  for (const [what, f] of [['forward', forward], ['backward', backward]] as const)
    if (typeof f !== 'function')
      throw new CompileError(
        `g.customGrad: ${what} must be a function, got ${describe(f)}`,
        'pass forward (...xs) => y and backward (xs, y, dy) => [dx for each x], e.g. g.customGrad((x) => ..., ([x], y, dy) => [dy])',
        at,
      );
  const fwd = forward as (...xs: Tensor[]) => unknown;
  const bwd = backward as (xs: Tensor[], y: Tensor, dy: Tensor) => unknown;
  return (...args: TensorLike[]) => {
    const g = t.graph;
    const xs = args.map((a) => (a instanceof Tensor ? (t.operand(a), a) : t.call(() => t.operand(a))));
    for (const [k, x] of xs.entries())
      if (x.dtype !== 'f32')
        throw new CompileError(`g.customGrad: argument ${k} is ${formatType(g.type(x.id))}; a custom gradient takes f32 tensors`, 'pass i32 indices through a closure instead', t.callLoc());
    const y0 = fwd(...xs);
    if (!(y0 instanceof Tensor) || !t.owns(y0) || y0.dtype !== 'f32')
      throw new CompileError(`g.customGrad: forward must return an f32 tensor of this model, got ${y0 instanceof Tensor ? formatType(g.type(y0.id)) : describe(y0)}`, 'return the result of DSL calls on its arguments', at);
    const rule = g.rules.length;
    const y = t.call(() => t.b.emit('custom_grad', [y0.id, ...xs.map((x) => x.id)], { rule, inputs: xs.length }));
    const loc = g.def(y.id).loc;
    // the user's backward, traced once with a placeholder for dy, then taken out of the graph:
    // the reverse pass emits it again wherever it differentiates y (autodiff.ts)
    const start = g.insts.length;
    const seed = g.append('fwd', [], { name: 'dy' }, g.type(y.id), loc);
    const dxs = bwd([...xs], y, t.wrap(seed));
    const recorded = g.insts.slice(start);
    const body = recorded.slice(1);
    const values = new Map(recorded.map((i) => [i.result, { ...g.value(i.result) }] as const));
    const bad = body.find((i) => i.op === 'param' || i.op === 'input');
    g.remove(new Set(recorded.map((i) => i.id)));
    if (bad)
      throw new CompileError(`g.customGrad: the backward declares ${bad.op} '${(bad.attrs as { name: string }).name}'`, 'declare params and inputs outside the custom gradient and use them in it', bad.loc ?? at);
    if (!Array.isArray(dxs) || dxs.length !== xs.length)
      throw new CompileError(
        `g.customGrad: backward must return an array with one gradient per argument (${xs.length}), got ${Array.isArray(dxs) ? `${dxs.length}` : describe(dxs)}`,
        'return e.g. [dx] for one argument; null where no gradient flows',
        at,
      ).withVia(loc);
    const dxIds = dxs.map((d, k) => {
      if (d === null || d === undefined) return undefined;
      const x = xs[k]!;
      if (!(d instanceof Tensor) || !t.owns(d))
        throw new CompileError(`g.customGrad: backward returned ${describe(d)} as the gradient of argument ${k}`, 'return tensors computed from xs, y and dy (or null)', at).withVia(loc);
      const dt = values.get(d.id)?.type ?? g.type(d.id);
      const xt = g.type(x.id);
      if (dt.dtype !== 'f32' || dt.shape.length !== xt.shape.length || dt.shape.some((n, i) => n !== xt.shape[i]))
        throw new CompileError(`g.customGrad: backward returned ${formatType(dt)} as the gradient of argument ${k}, which is ${formatType(xt)}`, 'each gradient must have the shape of its argument', at).withVia(loc);
      return d.id;
    });
    // values the backward reads besides xs, y and dy become operands, so that the passes keep
    // them (and update them) until the reverse passes have run
    const inside = new Set(recorded.map((i) => i.result));
    const known = new Set([y0.id, y.id, ...xs.map((x) => x.id)]);
    const extras: ValueId[] = [];
    for (const i of body) for (const a of i.args) if (!inside.has(a) && !known.has(a) && !extras.includes(a)) extras.push(a);
    for (const d of dxIds) if (d && !inside.has(d) && !known.has(d) && !extras.includes(d)) extras.push(d);
    const inst = g.def(y.id);
    g.replaceInst(inst, { ...inst, args: [...inst.args, ...extras] } as typeof inst);
    g.rules.push({ insts: body, values, seed, y: y.id, args: [y0.id, ...xs.map((x) => x.id), ...extras], dxs: dxIds, loc });
    return y;
  };
}
