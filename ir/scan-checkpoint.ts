// g.scan's `checkpoint: k` (jax.checkpoint around the step of a scan, nested): the scan of T steps
// becomes an outer scan over the ⌊T/k⌋ segments of k steps whose body runs an inner scan of the
// k steps, then, when k does not divide T, a scan of the T mod k steps left (the last segment, a
// shorter one: in a reverse scan the lowest indices, which run last).
//
//   %s:  f32[0] = scan %h0, %xs8, %W {body=0, carries=1, length=[8], ...}     the segments
//     { %c0 = input; %x0 = input (k steps); %s1 = scan %c0, %x0, %W {body=0, length=[k]} { step }
//       return c0=<inner's last carry>, y0=<inner's ys>, s0=%c0 }
//
// Each scan stores the carry that entered each of its steps (src/scan.ts), so the forward keeps
// the carry at each segment's start (⌊T/k⌋ of them, and the T mod k of the last segment); the
// reverse scan of the segments (ir/scan-grad.ts) recomputes a segment's forward from its stored
// carry, which runs the inner scan again and stores its k carries inside that reverse step, then
// runs the inner scan's reverse scan over them (which recomputes each step's forward from its
// carry: a scan inside a body stores no step values): about T/k + k carries live at once instead
// of T, for two more forward passes. Nothing here is target-specific: a target that unrolls scans unrolls
// both levels, one that runs loops runs two nested loops.
//
// Dropout: the outer scan's step s maps the inner body's dropout sites to those of segment s and
// the inner scan those of its step (stepSite, composed as for any nested scan), and the last
// segment's body gets the sites of segment ⌊T/k⌋: each step draws its own mask, and the
// recomputation in the reverse pass draws the same one (the interpreter and the unrolled backward
// derive it from the same site). The masks differ from those of the scan without checkpoint.

import { Builder } from './builder.js';
import { Graph } from './graph.js';
import { atStep, bodyInputs, checkScan, insertAxis, SCAN_TOKEN, scanOutType, scanParts } from './scan.js';
import type { InstOf, Shape, TensorType, ValueId } from './types.js';

/**
 * Replaces the scan `inst` of g (no scan_out reads it yet) by its checkpointed form with segments
 * of k steps (1 < k ≤ T, T static); returns the values of its results: the final carries, then
 * the stacked ys other than the stored carries (each scan of the form stores its own, a scan_out
 * named scan_carries each: the outer scan's are the segments' starts).
 */
export function checkpointScan(g: Graph, inst: InstOf<'scan'>, k: number): ValueId[] {
  const p = scanParts(g, inst);
  const T = inst.attrs.length[0] as number;
  const n = Math.floor(T / k);
  const r = T - n * k;
  const rev = inst.attrs.reverse === true;
  const B = p.body;
  const fin = bodyInputs(B);
  const b = new Builder(g, inst.loc);
  const carries0 = inst.args.slice(0, p.carries);
  const xs = inst.args.slice(p.carries, p.carries + p.xs);
  const closed = inst.args.slice(p.carries + p.xs);
  const { xaxes, yaxes } = inst.attrs;
  const bodyIndex = inst.attrs.body;
  g.remove(new Set([inst.id]));

  // the outer body: its inputs those of the step (a segment's xs: k steps), an inner scan of B
  const O = new Graph(`${B.name}_ckpt`, 'forward');
  const oin = fin.map((i, q) => {
    const name = B.value(i.result).name;
    let t: TensorType = B.type(i.result);
    if (q >= p.carries && q < p.carries + p.xs) t = { dtype: t.dtype, shape: insertAxis(t.shape, xaxes[q - p.carries]!, k) };
    return O.append('input', [], { name }, t, i.loc, { exact: name });
  });
  O.bodies.push(B);
  const innerAttrs = { ...inst.attrs, body: 0, length: [k] };
  const itok = O.append('scan', oin, innerAttrs, SCAN_TOKEN, inst.loc);
  const iinst = O.def(itok) as InstOf<'scan'>;
  const iout = B.outputs.map((_o, q) => O.append('scan_out', [itok], { index: q }, scanOutType(O, iinst, q), inst.loc, q >= p.carries && stored(B, p.carries, q) ? { raw: 'scan_carries' } : undefined));
  // its results: the new carries and the segment's ys (the stored carries stay inside), then the
  // carries that entered the segment, stored by the outer scan
  const userYs = [...Array(p.ys).keys()].filter((j) => !stored(B, p.carries, p.carries + j));
  iout.slice(0, p.carries).forEach((v, q) => O.outputs.push({ name: `c${q}`, value: v }));
  userYs.forEach((j, q) => O.outputs.push({ name: `y${q}`, value: iout[p.carries + j]! }));
  oin.slice(0, p.carries).forEach((v, q) => O.outputs.push({ name: `s${q}`, value: v }));
  O.numberTemps();
  g.bodies[bodyIndex] = O;

  // the xs of the segments ([.., n, k, ..] at the scanned axis) and of the last segment
  const part = (x: ValueId, axis: number, start: number, len: number): ValueId => {
    const shape = b.type(x).shape;
    if (start === 0 && len === T) return x;
    return b.slice(x, shape.map((_d, i) => (i === axis ? start : 0)), shape.map((d, i) => (i === axis ? len : d)));
  };
  const mainStart = rev ? r : 0;
  const tailStart = rev ? 0 : n * k;
  const xsMain = xs.map((x, j) => {
    const a = xaxes[j]!;
    const s = part(x, a, mainStart, n * k);
    return b.reshape(s, splitAxis(b.type(s).shape, a, n, k));
  });
  const outerAttrs = {
    body: bodyIndex,
    carries: p.carries,
    length: [n],
    xaxes,
    yaxes: [...userYs.map((j) => yaxes[j]!), ...carries0.map(() => 0)],
    ...(rev ? { reverse: true as const } : {}),
  };
  const otok = g.append('scan', [...carries0, ...xsMain, ...closed], outerAttrs, SCAN_TOKEN, inst.loc);
  const oinst = g.def(otok) as InstOf<'scan'>;
  check(g, oinst);
  const oval = (q: number, raw?: string) => g.append('scan_out', [otok], { index: q }, scanOutType(g, oinst, q), inst.loc, raw ? { raw } : undefined);
  const oc = carries0.map((_c, q) => oval(q));
  const oys = userYs.map((j, q) => {
    const y = oval(p.carries + q);
    const shape = g.type(y).shape;
    const a = yaxes[j]!;
    return b.reshape(y, [...shape.slice(0, a), n * k, ...shape.slice(a + 2)]);
  });
  carries0.forEach((_c, q) => oval(p.carries + userYs.length + q, 'scan_carries'));
  if (r === 0) return [...oc, ...oys];

  // the last segment: the step's body with the dropout sites of segment n, over the steps left
  const tailBody = atStep(B, n);
  g.bodies.push(tailBody === B ? B.clone() : tailBody);
  const tailAttrs = { ...inst.attrs, body: g.bodies.length - 1, length: [r] };
  const ttok = g.append('scan', [...oc, ...xs.map((x, j) => part(x, xaxes[j]!, tailStart, r)), ...closed], tailAttrs, SCAN_TOKEN, inst.loc);
  const tinst = g.def(ttok) as InstOf<'scan'>;
  check(g, tinst);
  const tval = B.outputs.map((_o, q) => g.append('scan_out', [ttok], { index: q }, scanOutType(g, tinst, q), inst.loc, q >= p.carries && stored(B, p.carries, q) ? { raw: 'scan_carries' } : undefined));
  const ys = userYs.map((j, q) => b.concat(rev ? [tval[p.carries + j]!, oys[q]!] : [oys[q]!, tval[p.carries + j]!], yaxes[j]!));
  return [...tval.slice(0, p.carries), ...ys];
}

/** Whether body output q (a y) is a carry input of the body: a stored carry. */
function stored(B: Graph, carries: number, q: number): boolean {
  const v = B.outputs[q]!.value;
  return bodyInputs(B)
    .slice(0, carries)
    .some((i) => i.result === v);
}

function splitAxis(shape: Shape, axis: number, n: number, k: number): Shape {
  return [...shape.slice(0, axis), n, k, ...shape.slice(axis + 1)];
}

function check(g: Graph, s: InstOf<'scan'>): void {
  const bad = checkScan(g, s);
  if (bad) throw new Error(`internal: the checkpointed scan is malformed: ${bad}`);
}
