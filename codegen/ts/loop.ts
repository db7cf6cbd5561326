// A scan that stays a loop (ir/loops.ts), in the flat module and in the wasm module (whose host
// code is the flat module's): its body's units are emitted once, inside a `for` over the steps.
//
//   carries in, closed-over values in (copies into the body's operand arrays, once)
//   for (let s = 0; s < T; s++) {
//     const t = s (or T - 1 - s for a reverse scan);
//     the xs' slices t (copies: contiguous runs of the stacked arrays, at offsets t·stride)
//     the body's units (kernels, routines, nested loops)
//     the ys written at t into the stacked results; the new carries copied into the carries' arrays
//   }
//   the final carries copied out
//
// The body's arrays are the memory plan's (ir/memplan.ts): they live through the scan's step.

import type { Graph } from '../../ir/graph.js';
import type { Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import type { Dim } from '../../ir/dims.js';
import { numelSize, sizeText } from '../../ir/dims.js';
import type { ValueId } from '../../ir/types.js';
import * as E from '../expr.js';
import { scanLoopOf } from '../kernel/scan-loop.js';
import { uniformConst } from '../module.js';
import type { Emitter } from './emitter.js';

/** The product of some dims as code (`1` for none). */
function count(dims: readonly Dim[]): string {
  return sizeText(numelSize(dims));
}

/** `a * b` as code, dropping factors of 1. */
function times(a: string, b: string): string {
  if (a === '1') return b;
  if (b === '1') return a;
  const p = (x: string) => (/^[\w.]+$/.test(x) ? x : `(${x})`);
  return `${p(a)} * ${p(b)}`;
}

/** The flat or wasm module's code of a scan unit: its loop. */
export function loopCode(e: Emitter, u: Unit): string[] {
  const { graph: g, scan, parts: p, body, ins, bodyUnits, trips: T, results, comment } = scanLoopOf(e.plan, u);

  const name = (gr: Graph, v: ValueId) => valueName(gr, v);
  const uniform = (gr: Graph, v: ValueId) => uniformConst(e.plan, name(gr, v));
  const arr = (gr: Graph, v: ValueId) => e.arrOf(gr, v);
  /** dst (all of it) = src (all of it). */
  const copy = (dg: Graph, dst: ValueId, sg: Graph, src: ValueId): string => {
    const c = uniform(sg, src);
    return c !== undefined ? `${arr(dg, dst)}.fill(${E.num(c).code});` : `${arr(dg, dst)}.set(${arr(sg, src)});`;
  };
  const s = e.codeName('s');
  const t = e.codeName('t');
  const o = e.codeName('o');
  const i = e.codeName('i');
  /**
   * Moves slice t along `axis` of the stacked array `stacked` (shape `shape`) from or to the
   * step's array `step`: `into` the step (an x), or out of it (a y).
   */
  const along = (shape: readonly Dim[], axis: number, stacked: string, step: string, into: boolean, fill?: number): string[] => {
    const outer = count(shape.slice(0, axis));
    const inner = count(shape.slice(axis + 1));
    const len = sizeText(shape[axis]!);
    if (outer === '1') {
      const at = times(t, inner);
      const end = inner === '1' ? `${at} + 1` : `${at} + ${inner}`;
      if (fill !== undefined) return [`${stacked}.fill(${E.num(fill).code}, ${at}, ${end});`];
      return into ? [`${step}.set(${stacked}.subarray(${at}, ${end}));`] : [`${stacked}.set(${step}, ${at});`];
    }
    // strided: one run of `inner` elements per outer index
    const base = `(${o} * ${len} + ${t}) * ${inner}`;
    const one = fill !== undefined ? `${stacked}[${base} + ${i}] = ${E.num(fill).code};` : into ? `${step}[${times(o, inner)} + ${i}] = ${stacked}[${base} + ${i}];` : `${stacked}[${base} + ${i}] = ${step}[${times(o, inner)} + ${i}];`;
    return [`for (let ${o} = 0; ${o} < ${outer}; ${o}++) for (let ${i} = 0; ${i} < ${inner}; ${i}++) ${one}`];
  };

  const lines: string[] = [];
  // the carries and the closed-over values into the body's operands
  for (let k = 0; k < p.carries; k++) lines.push(copy(body, ins[k]!.result, g, scan.args[k]!));
  for (let k = p.carries + p.xs; k < scan.args.length; k++) lines.push(copy(body, ins[k]!.result, g, scan.args[k]!));
  lines.push(`for (let ${s} = 0; ${s} < ${T}; ${s}++) {`);
  lines.push(`const ${t} = ${scan.attrs.reverse ? `${T} - 1 - ${s}` : s};`);
  // the xs' slices
  for (let j = 0; j < p.xs; j++) {
    const x = scan.args[p.carries + j]!;
    const into = ins[p.carries + j]!.result;
    const c = uniform(g, x);
    if (c !== undefined) lines.push(`${arr(body, into)}.fill(${E.num(c).code});`);
    else lines.push(...along(g.type(x).shape, scan.attrs.xaxes[j]!, arr(g, x), arr(body, into), true));
  }
  // the body, once
  lines.push(...bodyUnits.flatMap((bu) => e.unit(bu)));
  lines.push('');
  // the ys at t (before the carries change: a y may be a carry operand, such as the stored carries)
  for (let j = 0; j < p.ys; j++) {
    const out = results.get(p.carries + j);
    if (out === undefined) continue;
    const y = body.outputs[p.carries + j]!.value;
    const shape = g.type(out).shape;
    lines.push(...along(shape, scan.attrs.yaxes[j]!, arr(g, out), uniform(body, y) !== undefined ? '' : arr(body, y), false, uniform(body, y)));
  }
  // the new carries: through copies when one is another carry's operand (a swap)
  const operands = new Set(ins.map((x) => name(body, x.result)));
  const rootOf = (v: ValueId): string => {
    const st = e.plan.storage.get(name(body, v));
    return st?.kind === 'alias' ? st.of : name(body, v);
  };
  const moves = [...Array(p.carries).keys()].filter((k) => body.outputs[k]!.value !== ins[k]!.result);
  const swap = moves.some((k) => operands.has(rootOf(body.outputs[k]!.value)));
  if (swap) {
    const tmp = moves.map((k) => `const ${e.codeName(`carry${k}`)} = ${uniform(body, body.outputs[k]!.value) !== undefined ? 'undefined' : `${arr(body, body.outputs[k]!.value)}.slice()`};`);
    lines.push(...tmp);
    moves.forEach((k, m) => {
      const c = uniform(body, body.outputs[k]!.value);
      const tname = /const (\w+)/.exec(tmp[m]!)![1]!;
      lines.push(c !== undefined ? `${arr(body, ins[k]!.result)}.fill(${E.num(c).code});` : `${arr(body, ins[k]!.result)}.set(${tname});`);
    });
  } else for (const k of moves) lines.push(copy(body, ins[k]!.result, body, body.outputs[k]!.value));
  lines.push('}');
  // the final carries out
  for (let k = 0; k < p.carries; k++) {
    const out = results.get(k);
    if (out !== undefined) lines.push(copy(g, out, body, ins[k]!.result));
  }
  return [comment, '{', ...lines, '}'];
}
