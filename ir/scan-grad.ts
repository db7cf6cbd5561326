// The gradient of a scan: a reverse scan (jax's scan transpose, written for this IR).
//
// The forward scan returns, besides its results, the carry that entered each step (src/scan.ts
// adds them: body results that are its carry inputs). The reverse scan runs the other way over
// those stored carries, the xs and the gradients of the ys; its body recomputes the step's
// forward from the stored carry (the body copied) and runs the reverse pass over it
// (autodiff.ts's backpropMany) from the gradients of the new carries and of the y:
//
//   carries: dc (one per f32 carry), dk (one per closed-over f32 value, summed over the steps)
//   xs:      the stored carries, the xs, the gradients of the ys
//   closed:  the forward's closed-over values
//   ys:      dx (one per f32 x)
//
// Its own carries are stored the same way, so that the reverse scan can be differentiated again.

import type { Sink } from './autodiff.js';
import { backpropMany } from './autodiff.js';
import { Builder } from './builder.js';
import { CompileError } from './errors.js';
import { Graph } from './graph.js';
import { bodyInputs, checkScan, emitBodyMap, SCAN_TOKEN, scanOutType, scanParts } from './scan.js';
import type { InstOf, TensorType, ValueId } from './types.js';

const isF32 = (t: TensorType) => t.dtype === 'f32';

/**
 * The contributions of a scan to its operands' gradients, (operand index, gradient), from the
 * gradients `cots` of its results (by result index), emitted into the sink's graph.
 */
export function scanVjp(g: Graph, scanInst: InstOf<'scan'>, sink: Sink, cots: ReadonlyMap<number, ValueId>, active: ReadonlySet<ValueId>): [number, ValueId][] {
  let inst = scanInst;
  const p = scanParts(g, inst);
  const F = p.body;
  const fin = bodyInputs(F);
  const tg = sink.b.graph;
  const b = sink.b;
  const zeros = (t: TensorType) => b.broadcast(b.scalar(0), t.shape);
  // the stored carries: results of this scan that are the body's carry inputs
  const storedIdx = fin.slice(0, p.carries).map((c) => F.outputs.findIndex((o, k) => k >= p.carries && o.value === c.result));
  const missing = storedIdx.findIndex((k) => k < 0);
  if (missing >= 0)
    throw new CompileError(`the scan does not store the carry ${missing} that entered each step, which its gradient needs`, 'a scan made by g.scan stores them; in IR text, return each carry input as a y of the body', inst.loc);
  // read by a scan_out of the forward graph (made here when the forward passes dropped an unused one)
  const stored = storedIdx.map(
    (k) =>
      g.insts.find((i) => i.op === 'scan_out' && i.args[0] === inst.result && i.attrs.index === k)?.result ??
      g.append('scan_out', [inst.result], { index: k }, scanOutType(g, inst, k), inst.loc, { raw: 'scan_carries' }),
  );
  const argT = (k: number) => g.type(inst.args[k]!);
  const carriesF = [...Array(p.carries).keys()].filter((i) => isF32(argT(i)));
  const xsF = [...Array(p.xs).keys()].filter((j) => isF32(argT(p.carries + j)) && active.has(inst.args[p.carries + j]!));
  const closedF = [...Array(p.closed).keys()].filter((j) => isF32(argT(p.carries + p.xs + j)) && active.has(inst.args[p.carries + p.xs + j]!));
  const ysCot = [...Array(p.ys).keys()].filter((j) => cots.has(p.carries + j));
  // the step's values the reverse pass reads (residuals), stored by the forward scan as more ys
  // (a new one stacked along axis 0; one that is a y already, along that y's axis), so that the reverse scan does not recompute the step's forward: found
  // by a first run of the reverse pass into a scratch graph. Only for a scan of the graph being
  // differentiated (not one inside a body being differentiated: depth 0).
  const residuals =
    depth === 0
      ? residualsOf(
          F,
          fin,
          [...carriesF.map((i) => F.outputs[i]!.value), ...ysCot.map((j) => F.outputs[p.carries + j]!.value)],
          [...carriesF.map((i) => fin[i]!.result), ...xsF.map((j) => fin[p.carries + j]!.result), ...closedF.map((j) => fin[p.carries + p.xs + j]!.result)],
        )
      : [];
  const resIdx = residuals.map((v) => {
    const k = F.outputs.findIndex((o, j) => j >= p.carries && o.value === v);
    if (k >= 0) return k;
    F.outputs.push({ name: `r${F.outputs.length}`, value: v });
    return F.outputs.length - 1;
  });
  if (resIdx.some((k) => k - p.carries >= inst.attrs.yaxes.length)) {
    const yaxes = [...inst.attrs.yaxes, ...Array<number>(F.outputs.length - p.carries - inst.attrs.yaxes.length).fill(0)];
    inst = { ...inst, attrs: { ...inst.attrs, yaxes } };
    g.replaceInst(g.def(inst.result), inst);
  }
  const resStored = resIdx.map(
    (k) =>
      g.insts.find((i) => i.op === 'scan_out' && i.args[0] === inst.result && i.attrs.index === k)?.result ??
      g.append('scan_out', [inst.result], { index: k }, scanOutType(g, inst, k), inst.loc, { raw: 'scan_residual' }),
  );

  // the reverse body
  const R = new Graph(`${F.name}_grad`, 'forward');
  const input = (raw: string, t: TensorType): ValueId => {
    const name = R.names.claim(raw);
    R.names.release(name);
    return R.append('input', [], { name }, t, inst.loc, { exact: name });
  };
  const carryName = (i: number) => F.value(fin[i]!.result).name;
  const dc = carriesF.map((i) => input(`d${carryName(i)}`, F.type(fin[i]!.result)));
  const dk = closedF.map((j) => input(`d${F.value(fin[p.carries + p.xs + j]!.result).name}`, F.type(fin[p.carries + p.xs + j]!.result)));
  const cIn = fin.slice(0, p.carries).map((c) => input(F.value(c.result).name, F.type(c.result)));
  const xIn = fin.slice(p.carries, p.carries + p.xs).map((x) => input(F.value(x.result).name, F.type(x.result)));
  const dyIn = ysCot.map((j) => input(`d${F.outputs[p.carries + j]!.name}`, F.type(F.outputs[p.carries + j]!.value)));
  const rIn = residuals.map((v) => input(F.value(v).name || 'r', F.type(v)));
  const kIn = fin.slice(p.carries + p.xs).map((k) => input(F.value(k.result).name, F.type(k.result)));
  const map = emitBodyMap(R, F, [...cIn, ...xIn, ...kIn], fin);
  residuals.forEach((v, k) => map.set(v, rIn[k]!));
  const rb = new Builder(R, inst.loc);
  const seeds: [ValueId, ValueId][] = [];
  carriesF.forEach((i, k) => seeds.push([F.outputs[i]!.value, dc[k]!]));
  ysCot.forEach((j, k) => seeds.push([F.outputs[p.carries + j]!.value, dyIn[k]!]));
  const wrt = [...carriesF.map((i) => fin[i]!.result), ...xsF.map((j) => fin[p.carries + j]!.result), ...closedF.map((j) => fin[p.carries + p.xs + j]!.result)];
  depth++;
  let grads: (ValueId | undefined)[];
  try {
    grads = backpropMany(F, seeds, wrt, { b: rb, read: (v) => map.get(v) ?? noValue(v) });
  } finally {
    depth--;
  }
  const rzeros = (v: ValueId) => rb.broadcast(rb.scalar(0), F.type(v).shape);
  const got = grads.map((d, k) => d ?? rzeros(wrt[k]!));
  const nc = carriesF.length;
  const nx = xsF.length;
  rb.loc = inst.loc;
  const outs: { name: string; value: ValueId }[] = [];
  got.slice(0, nc).forEach((d, k) => outs.push({ name: `c${k}`, value: d }));
  got.slice(nc + nx).forEach((d, k) => outs.push({ name: `c${nc + k}`, value: rb.add(dk[k]!, d) }));
  got.slice(nc, nc + nx).forEach((d, k) => outs.push({ name: `y${k}`, value: d }));
  // its own carries, stored for a gradient of the gradient
  [...dc, ...dk].forEach((v, k) => outs.push({ name: `s${k}`, value: v }));
  R.outputs.push(...outs);
  R.numberTemps();

  // the reverse scan in the target graph
  const read = (k: number) => sink.read(inst.args[k]!);
  const initDc = carriesF.map((i) => cots.get(i) ?? zeros(argT(i)));
  const initDk = closedF.map((j) => zeros(argT(p.carries + p.xs + j)));
  const xs = [
    ...stored.map((v) => sink.read(v!)),
    ...[...Array(p.xs).keys()].map((j) => read(p.carries + j)),
    ...ysCot.map((j) => cots.get(p.carries + j)!),
    ...resStored.map((v) => sink.read(v)),
  ];
  const xaxes = [...storedIdx.map((k) => inst.attrs.yaxes[k - p.carries]!), ...inst.attrs.xaxes, ...ysCot.map((j) => inst.attrs.yaxes[j]!), ...resIdx.map((k) => inst.attrs.yaxes[k - p.carries]!)];
  const closed = [...Array(p.closed).keys()].map((j) => read(p.carries + p.xs + j));
  const carries = [...initDc, ...initDk];
  tg.bodies.push(R);
  const attrs = {
    body: tg.bodies.length - 1,
    carries: carries.length,
    length: inst.attrs.length,
    xaxes,
    yaxes: [...xsF.map((j) => inst.attrs.xaxes[j]!), ...carries.map(() => 0)],
    ...(inst.attrs.reverse ? {} : { reverse: true as const }),
  };
  const token = tg.append('scan', [...carries, ...xs, ...closed], attrs, SCAN_TOKEN, b.loc);
  const rinst = tg.def(token) as InstOf<'scan'>;
  const bad = checkScan(tg, rinst);
  if (bad) throw new Error(`internal: the reverse scan is malformed: ${bad}`);
  const result = (k: number) => tg.append('scan_out', [token], { index: k }, scanOutType(tg, rinst, k), b.loc);
  const res: [number, ValueId][] = [];
  carriesF.forEach((i, k) => active.has(inst.args[i]!) && res.push([i, result(k)]));
  closedF.forEach((j, k) => res.push([p.carries + p.xs + j, result(nc + k)]));
  xsF.forEach((j, k) => res.push([p.carries + j, result(carries.length + k)]));
  carries.forEach((_c, k) => result(carries.length + nx + k));
  return res;
}

/** How deep the reverse pass is inside scans' bodies (residuals are stored at depth 0 only). */
let depth = 0;

/**
 * The values of a body that its reverse pass reads and that are not its operands (nor constants):
 * found by running the reverse pass into a scratch graph. A body holding a scan stores none.
 */
function residualsOf(F: Graph, fin: readonly InstOf<'input'>[], outs: readonly ValueId[], wrt: readonly ValueId[]): ValueId[] {
  if (F.insts.some((i) => i.op === 'scan' || i.op === 'custom_grad' || i.op === 'dropout_mask')) return [];
  const S = new Graph(`${F.name}_scratch`, 'forward');
  const ins = fin.map((i, k) => S.append('input', [], { name: `i${k}` }, F.type(i.result), undefined, { exact: `i${k}` }));
  const map = emitBodyMap(S, F, ins, [...fin]);
  const seeds = outs.map((v, k): [ValueId, ValueId] => [v, S.append('input', [], { name: `s${k}` }, F.type(v), undefined, { exact: `s${k}` })]);
  const read = new Set<ValueId>();
  depth++;
  try {
    backpropMany(F, seeds, wrt, { b: new Builder(S), read: (v) => (read.add(v), map.get(v) ?? noValue(v)) });
  } finally {
    depth--;
  }
  const operands = new Set(fin.map((i) => i.result));
  return F.insts.filter((i) => read.has(i.result) && !operands.has(i.result) && i.op !== 'const').map((i) => i.result);
}

function noValue(v: ValueId): never {
  throw new Error(`internal: the reverse scan body reads value #${v.index}, which the forward body does not define`);
}
