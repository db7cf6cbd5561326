// The verifier of the kernel form: every index map has the domain's rank and (for sizes known at
// build time) stays inside its array, the DAG refers only to earlier nodes and is typed by the
// ALU table, reductions are over axes of the domain and their epilogue reads nothing that
// varies along them, and the stores of a kernel cover each array they write exactly once.
// It returns the problems as lines of text (empty: the form is valid).

import type { Dim, Size } from '../../ir/dims.js';
import { isStatic, mulSize, size, sizeEq, staticSize } from '../../ir/dims.js';
import type { Poly } from '../../ir/layout.js';
import { polyAdd } from '../../ir/layout.js';
import type { Access, ArrayDecl, HostProgram, Kernel, Launch, Routine, Step, View } from './form.js';
import { ALU, argsOf, epilogueNodes, isAlu, offsetTerms } from './form.js';
import { storedAfterReduction } from './eval.js';
import { fmtAccess, fmtDims, fmtPoly, fmtSize } from './print.js';

export type ArrayInfo = Pick<ArrayDecl, 'dtype' | 'numel'>;
export type Arrays = (name: string) => ArrayInfo | undefined;

const fmtArray = (name: string, a: ArrayInfo) => `${name}: ${a.dtype}[${fmtSize(a.numel)}]`;

/** The lowest and highest index an access reaches over a box, when every size is known. */
function reach(strides: readonly Size[], offset: Poly, domain: readonly Dim[], guards: Access['guards'] = []): [number, number] | undefined {
  if (![...strides, ...offset, ...domain].every(isStatic)) return undefined;
  let lo = offset.reduce((s, t) => s + staticSize(t), 0);
  let hi = lo;
  for (let d = 0; d < domain.length; d++) {
    const g = guards.find((x) => x.axis === d);
    let first = 0;
    let last = staticSize(domain[d]!) - 1;
    if (g && isStatic(g.hi)) {
      first = Math.max(first, g.lo);
      last = Math.min(last, staticSize(g.hi) - 1);
    }
    if (last < first) return undefined; // nothing is read
    const s = staticSize(strides[d]!);
    lo += Math.min(s * first, s * last);
    hi += Math.max(s * first, s * last);
  }
  return [lo, hi];
}

function bounds(what: string, strides: readonly Size[], offset: Poly, domain: readonly Dim[], arg: string, a: ArrayInfo, guards?: Access['guards']): string | undefined {
  const r = reach(strides, offset, domain, guards);
  if (!r || !isStatic(a.numel)) return undefined;
  const n = staticSize(a.numel);
  if (r[0] >= 0 && r[1] < n) return undefined;
  return `${what} reaches ${r[0]}..${r[1]}, outside ${fmtArray(arg, a)}`;
}

/**
 * Whether the axes `over` of a box, with these strides, visit each index of [0, numel) exactly
 * once: after dropping size-1 axes, the strides are a permutation of row-major strides.
 */
function coverage(strides: readonly Size[], offset: Poly, domain: readonly Dim[], over: readonly number[], numel: Size): string | undefined {
  const live = over.filter((d) => !sizeEq(domain[d]!, 1));
  const zero = live.find((d) => strides[d]!.coef === 0);
  if (zero !== undefined) return `writes each element more than once (stride 0 along d${zero} of size ${domain[zero]})`;
  let cur = size(1);
  const left = [...live];
  while (left.length) {
    const k = left.findIndex((d) => sizeEq(strides[d]!, cur));
    if (k < 0) return `does not cover its array densely (no axis of stride ${fmtSize(cur)})`;
    cur = mulSize(cur, domain[left[k]!]!);
    left.splice(k, 1);
  }
  if (offset.length !== 0 || !sizeEq(cur, numel)) return `covers ${fmtSize(cur)} elements from ${fmtPoly(offset)} of an array of ${fmtSize(numel)}`;
  return undefined;
}

/** The domain axes along which each node varies. */
function variation(k: Kernel): Set<number>[] {
  const out: Set<number>[] = [];
  k.nodes.forEach((n, i) => {
    const s = new Set<number>();
    if (n.op === 'load') {
      n.access.strides.forEach((st, d) => st.coef !== 0 && s.add(d));
      for (const g of n.access.guards ?? []) s.add(g.axis);
    } else if (n.op === 'coord') s.add(n.axis);
    else if (n.op !== 'reduce') for (const a of argsOf(n)) for (const d of out[a] ?? []) s.add(d);
    out[i] = s;
  });
  return out;
}

function checkNodes(k: Kernel, arrays: Arrays, bad: (m: string) => void): void {
  const rank = k.domain.length;
  k.nodes.forEach((n, i) => {
    const args = argsOf(n);
    const later = args.find((a) => !(Number.isInteger(a) && a >= 0 && a < i));
    if (later !== undefined) return bad(`%${i} uses %${later}, which is not defined before it`);
    const types = args.map((a) => k.nodes[a]!.dtype);
    const rare = (n as { rare?: unknown }).rare;
    if (rare !== undefined && (n.op !== 'where' || rare !== true)) bad(`%${i}: only a where can be rare (rare: true), got ${n.op} with rare: ${String(rare)}`);
    if (n.op === 'load') {
      const a = arrays(n.access.arg);
      if (n.access.strides.length !== rank) return bad(`%${i} loads ${n.access.arg} with ${n.access.strides.length} strides in a domain of rank ${rank}`);
      if (!a) return bad(`%${i} loads ${n.access.arg}, which is not declared`);
      if (a.dtype !== n.dtype) bad(`%${i} is typed ${n.dtype} but ${n.access.arg} holds ${a.dtype}`);
      const guardAxis = (n.access.guards ?? []).find((g) => g.axis >= rank);
      if (guardAxis) return bad(`%${i} guards d${guardAxis.axis}, which is not a coordinate of the domain`);
      const oob = bounds(`%${i} = load ${fmtAccess(n.access)}`, n.access.strides, offsetTerms(n.access.offset), k.domain, n.access.arg, a, n.access.guards);
      if (oob) bad(oob);
    } else if (n.op === 'coord') {
      if (!(n.axis >= 0 && n.axis < rank)) bad(`%${i} is the coordinate d${n.axis} of a domain of rank ${rank}`);
    } else if (n.op === 'reduce') {
      if (k.axes.length === 0) bad(`%${i} reduces in a kernel that reduces no axis`);
      if (n.dtype !== 'f32' || types[0] !== 'f32') bad(`%${i} reduces ${types[0]} to ${n.dtype}; reductions are f32`);
    } else if (n.op !== 'const' && n.op !== 'dim') {
      if (!isAlu(n.op)) return bad(`%${i}: ${String(n.op)} is not an ALU primitive`);
      const def = ALU[n.op];
      if (args.length !== def.arity) return bad(`%${i}: ${n.op} takes ${def.arity} operands, got ${args.length}`);
      const t = def.type(types);
      if (t !== n.dtype) bad(t === 'f32' || t === 'i32' || t === 'bool' ? `%${i} is typed ${n.dtype} but ${n.op} gives ${t}` : `%${i}: ${n.op} ${t}`);
    }
  });
}

/** The problems of one kernel; `prefix` names where it is (a routine's epilogue). */
export function verifyKernel(k: Kernel, arrays: Arrays, prefix = `${k.name}: `): string[] {
  const out: string[] = [];
  const bad = (m: string) => out.push(prefix + m);
  const rank = k.domain.length;
  k.domain.forEach((d, i) => typeof d === 'number' && !(Number.isInteger(d) && d >= 0) && bad(`domain axis ${i} has size ${d}`));
  if (!k.axes.every((a, i) => Number.isInteger(a) && a >= 0 && a < rank && (i === 0 || a > k.axes[i - 1]!)))
    bad(`reduced axes (${k.axes.join(', ')}) are not sorted distinct axes of the domain ${fmtDims(k.domain)}`);
  checkNodes(k, arrays, bad);
  if (out.length) return out;
  const epi = epilogueNodes(k);
  const varies = variation(k);
  k.nodes.forEach((n, i) => {
    if (n.op === 'reduce' && epi[n.args[0]]) bad(`%${i} reduces %${n.args[0]}, which is computed after a reduction`);
    if (!epi[i] || n.op === 'reduce') return;
    for (const a of argsOf(n)) {
      const along = k.axes.find((d) => !epi[a] && varies[a]!.has(d));
      if (along !== undefined) bad(`%${i} is computed after the reduction but reads %${a}, which varies along the reduced axis d${along}`);
    }
  });
  const written = new Set<string>();
  for (const s of k.stores) {
    const what = `store ${fmtAccess(s.access)}`;
    const a = arrays(s.access.arg);
    if (!(s.node >= 0 && s.node < k.nodes.length)) {
      bad(`${what} stores %${s.node}, which is not a node`);
      continue;
    }
    if (s.access.strides.length !== rank) {
      bad(`${what} has ${s.access.strides.length} strides in a domain of rank ${rank}`);
      continue;
    }
    if (!a) {
      bad(`${what} writes ${s.access.arg}, which is not declared`);
      continue;
    }
    if (written.has(s.access.arg)) bad(`${what} writes ${s.access.arg} a second time`);
    written.add(s.access.arg);
    if (s.access.guards?.length) bad(`${what} has guards; stores have none`);
    if (k.nodes[s.node]!.dtype !== a.dtype) bad(`${what} stores ${k.nodes[s.node]!.dtype} %${s.node} into ${fmtArray(s.access.arg, a)}`);
    const after = storedAfterReduction(k, s.access.strides);
    const over = k.domain.map((_d, i) => i).filter((d) => !after || !k.axes.includes(d));
    const along = after ? k.axes.find((d) => varies[s.node]!.has(d) && !sizeEq(k.domain[d]!, 1)) : undefined;
    if (along !== undefined) bad(`${what} is written once per kept point but %${s.node} varies along the reduced axis d${along}`);
    const cover = coverage(s.access.strides, offsetTerms(s.access.offset), k.domain, over, a.numel);
    if (cover) bad(`${what} ${cover}`);
  }
  return out;
}

function checkView(prefix: string, what: string, v: View, arrays: Arrays, dense: boolean): string[] {
  const a = arrays(v.arg);
  if (!a) return [`${prefix}${what} ${v.arg} is not declared`];
  if (v.strides.length !== v.shape.length) return [`${prefix}${what} ${v.arg} has ${v.strides.length} strides for the shape ${fmtDims(v.shape)}`];
  const out: string[] = [];
  const oob = bounds(`${what} ${v.arg} ${fmtDims(v.shape)}`, v.strides, polyAdd(v.offset), v.shape, v.arg, a);
  if (oob) out.push(prefix + oob);
  if (dense) {
    const cover = coverage(v.strides, polyAdd(v.offset), v.shape, v.shape.map((_d, i) => i), a.numel);
    if (cover) out.push(`${prefix}${what} ${v.arg} ${cover}`);
  }
  return out;
}

export function verifyRoutine(r: Routine, arrays: Arrays): string[] {
  const p = `${r.name}: `;
  const out = [...r.inputs.flatMap((v) => checkView(p, 'input', v, arrays, false)), ...checkView(p, 'output', r.output, arrays, true)];
  if (r.epilogue) {
    const same = r.epilogue.domain.length === r.output.shape.length && r.epilogue.domain.every((d, i) => d === r.output.shape[i]);
    if (!same) out.push(`${p}the epilogue's domain ${fmtDims(r.epilogue.domain)} is not the output's shape ${fmtDims(r.output.shape)}`);
    if (r.epilogue.axes.length) out.push(`${p}the epilogue reduces; an epilogue is elementwise`);
    out.push(...verifyKernel(r.epilogue, arrays, `${r.name} epilogue: `));
  }
  return out;
}

export function verifyLaunch(l: Launch, arrays: Arrays): string[] {
  return l.kind === 'kernel' ? verifyKernel(l, arrays) : verifyRoutine(l, arrays);
}

/** The problems of a host program: its arrays and buffers, its steps, each launch. */
export function verifyProgram(p: HostProgram): string[] {
  const out: string[] = [];
  const decl = new Map(p.arrays.map((a) => [a.name, a] as const));
  const buffers = new Map(p.buffers.map((b) => [b.id, b] as const));
  for (const a of p.arrays) {
    if (a.place.kind === 'const' && isStatic(a.numel) && a.place.data.length !== staticSize(a.numel))
      out.push(`array ${a.name}: ${a.place.data.length} constants for ${fmtSize(a.numel)} elements`);
    if (a.place.kind !== 'buffer') continue;
    const b = buffers.get(a.place.id);
    if (!b) out.push(`array ${a.name} is in buffer ${a.place.id}, which is not declared`);
    else if (b.dtype !== a.dtype) out.push(`array ${a.name}: ${a.dtype} is in buffer ${b.id} of ${b.dtype}`);
    else if (sizeEq({ coef: 1, syms: b.size.syms }, { coef: 1, syms: a.numel.syms }) && a.numel.coef > b.size.coef)
      out.push(`array ${fmtArray(a.name, a)} does not fit in buffer ${b.id} of ${fmtSize(b.size)}`);
  }
  const seen = new Set<string>();
  const flat = (steps: readonly Step[]): Step[] => steps.flatMap((s) => (s.kind === 'loop' ? flat(s.steps) : [s]));
  for (const e of p.entries)
    for (const s of flat(e.steps)) {
      if (s.kind === 'loop') continue;
      if (s.kind !== 'launch') {
        if (!decl.has(s.array)) out.push(`entry ${e.name}: ${s.kind} ${s.array}, which is not declared`);
        continue;
      }
      if (seen.has(s.launch.name)) continue;
      seen.add(s.launch.name);
      out.push(...verifyLaunch(s.launch, (n) => decl.get(n)));
    }
  return out;
}

