// The flat TypeScript target's matmul kernels: register-tiled loops with the group's epilogue
// fused in, one kernel per matmul, or shared by matmuls of one structure in a large module.

import type { Unit } from '../../ir/memplan.js';
import type { Dim, Size } from '../../ir/dims.js';
import { mulSize, numelSize, sizeEq, sizeText, stridesSize } from '../../ir/dims.js';
import type { InstOf, ValueId } from '../../ir/types.js';
import * as E from '../expr.js';
import { CompileError } from '../../ir/errors.js';
import type { Access } from '../kernel/form.js';
import { offsetTerms } from '../kernel/form.js';
import { lowerUnitOf } from '../kernel/lower.js';
import { renderAt } from './render.js';
import { formula } from '../formula.js';
import { uniformConst } from '../module.js';

import type { Emitter } from './emitter.js';

/** The register-tiled loops of a matmul group, written by `e` (value names or formal names). */
export function matmulKernel(e: Emitter, u: Unit): { emitter: Emitter; body: string[]; doc: string } {
  const g = u.graph;
  const mm = u.insts[0] as InstOf<'matmul'>;
  const [A, B] = mm.args as [ValueId, ValueId];
  const { transA, transB } = mm.attrs;
  const ta = g.type(A).shape;
  const tb = g.type(B).shape;
  const out = g.type(mm.result).shape;
  const M = out.at(-2)!;
  const N = out.at(-1)!;
  const Kd = transA ? ta.at(-2)! : ta.at(-1)!;
  const batch = numelSize(out.slice(0, -2));
  const batched = !sizeEq(batch, 1);
  // a uniform constant operand (the ones of a sum's gradient) is read as its literal
  const ca = uniformConst(e.plan, e.name(g, A));
  const cb = uniformConst(e.plan, e.name(g, B));
  const a = ca === undefined ? e.arrOf(g, A) : '';
  const b = cb === undefined ? e.arrOf(g, B) : '';
  const aOff = ta.length > 2 && batched ? `t * ${sizeText(mulSize(M, Kd))} + ` : '';
  const bOff = tb.length > 2 && batched ? `t * ${sizeText(mulSize(Kd, N))} + ` : '';
  const cOff = batched ? `t * ${sizeText(mulSize(M, N))} + ` : '';
  const times = (x: string, k: Dim | Size) => (x.includes(' ') ? `(${x}) * ${sizeText(k)}` : `${x} * ${sizeText(k)}`);
  const aAt = (i: string, p: string) => ca !== undefined ? E.num(ca).code : `${a}[${aOff}${transA ? `${times(p, M)} + ${i}` : `${times(i, Kd)} + ${p}`}]`;
  const bAt = (p: string, j: string) => cb !== undefined ? E.num(cb).code : `${b}[${bOff}${transB ? `${times(j, Kd)} + ${p}` : `${times(p, N)} + ${j}`}]`;
  // tile shapes measured fastest on V8 for each operand layout
  const [TI, TJ] = !transA && !transB ? [2, 4] : !transA && transB ? [4, 2] : transA && !transB ? [2, 4] : [2, 2];
  const outStrides = stridesSize(out.slice(-2));
  // the epilogue (bias, activation) at each product, in its register: the group's kernel form
  const lowered = lowerUnitOf(e.plan, u);
  const epi = lowered.launch?.kind === 'routine' ? lowered.launch.epilogue : undefined;
  const product = e.name(g, mm.result);
  const batchStrides = stridesSize(out).slice(0, -2);
  const element = (i: string, j: string, c: string): string[] => {
    const at = (st: readonly Size[]) => {
      const terms: string[] = [];
      if (!sizeEq(st[0]!, 0)) terms.push(sizeEq(st[0]!, 1) ? i : times(i, st[0]!));
      if (!sizeEq(st[1]!, 0)) terms.push(sizeEq(st[1]!, 1) ? j : times(j, st[1]!));
      return terms.join(' + ') || '0';
    };
    // an operand is read at the product's row and column, and at its batch when it varies along it
    const index = (a: Access): string => {
      const batch = a.strides.slice(0, -2);
      if (batch.every((s, d) => sizeEq(s, batchStrides[d]!)) && offsetTerms(a.offset).length === 0) return `${cOff}${at(a.strides.slice(-2))}`;
      if (batch.every((s) => sizeEq(s, 0)) && offsetTerms(a.offset).length === 0) return at(a.strides.slice(-2));
      throw new CompileError(`the flat TypeScript target cannot render matmul's epilogue: ${a.arg} is read along the batch axes with strides [${batch.map(sizeText).join(', ')}]`);
    };
    const lines: string[] = [];
    if (e.stored(g, mm.result)) lines.push(`${e.arrOf(g, mm.result)}[${cOff}${at(outStrides)}] = ${c};`);
    if (epi) lines.push(...renderAt(epi, e.names(lowered), index, (a) => (a.arg === product ? E.atom(c) : undefined)));
    // each tile element's epilogue gets a block of its own when it declares locals
    return lines.some((l) => l.startsWith('const ')) ? ['{', ...lines, '}'] : lines;
  };
  // loop bounds are numbers, or code when a dimension is symbolic (`B - B % 2`)
  const empty = (lo: number | string, hi: number | string) => typeof lo === 'number' && typeof hi === 'number' && hi <= lo;
  const tiles = (i0: number | string, i1: number | string, ti: number, j0: number | string, j1: number | string, tj: number): string[] => {
    if (empty(i0, i1) || empty(j0, j1)) return [];
    const rows = [...Array(ti).keys()];
    const cols = [...Array(tj).keys()];
    const ii = (r: number) => (r ? `i + ${r}` : 'i');
    const jj = (c: number) => (c ? `j + ${c}` : 'j');
    const cv = (r: number, c: number) => `_c${r}${c}`;
    return [
      `for (let i = ${i0}; i < ${i1}; i += ${ti}) {`,
      `for (let j = ${j0}; j < ${j1}; j += ${tj}) {`,
      `let ${rows.flatMap((r) => cols.map((c) => `${cv(r, c)} = 0`)).join(', ')};`,
      `for (let p = 0; p < ${sizeText(Kd)}; p++) {`,
      `const ${rows.map((r) => `_a${r} = ${aAt(ii(r), 'p')}`).join(', ')};`,
      `const ${cols.map((c) => `_b${c} = ${bAt('p', jj(c))}`).join(', ')};`,
      ...rows.flatMap((r) => cols.map((c) => `${cv(r, c)} += _a${r} * _b${c};`)),
      '}',
      ...rows.flatMap((r) => cols.flatMap((c) => element(ii(r), jj(c), cv(r, c)))),
      '}',
      '}',
    ];
  };
  // a symbolic extent gets full tiles and a remainder loop, as a large one does
  const tileOf = (d: Dim, t: number) => (typeof d === 'string' || d >= t ? t : 1);
  const fullTiles = (d: Dim, t: number) => (typeof d === 'number' ? d - (d % t) : t === 1 ? d : `${d} - ${d} % ${t}`);
  const ti = tileOf(M, TI);
  const tj = tileOf(N, TJ);
  const Mt = fullTiles(M, ti);
  const Nt = fullTiles(N, tj);
  const loops = [...tiles(0, Mt, ti, 0, Nt, tj), ...tiles(0, Mt, ti, Nt, N, 1), ...tiles(Mt, M, 1, 0, N, 1)];
  const body = batched ? [`for (let t = 0; t < ${sizeText(batch)}; t++) {`, ...loops, '}'] : loops;
  const last = u.insts[u.insts.length - 1]!;
  const set = new Set(u.insts.map((x) => x.id));
  const doc = `${e.arrOf(g, last.result)} = ${formula(g, last.result, (d) => set.has(d.id) && !e.stored(g, d.result), (n) => e.shown(n))}`;
  return { emitter: e, body, doc };
}

/** Above this many matmul groups a module's matmuls of one structure share a kernel. */
const SHARE_ABOVE = 64;

/** Module-level kernels, and how many matmul groups share each kernel structure. */
export class Kernels {
  readonly code: string[] = [];
  /** Every array name the emitted code reads or writes (a constant no code reads gets no array). */
  readonly referenced = new Set<string>();
  private readonly counts = new Map<string, number>();
  private readonly names = new Map<string, string>();

  constructor(private readonly codeName: (base: string) => string) {}

  count(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  uses(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Whether matmuls of this structure share a kernel: in a module of more than SHARE_ABOVE matmuls. */
  shares(key: string): boolean {
    let total = 0;
    for (const n of this.counts.values()) total += n;
    return total > SHARE_ABOVE && this.uses(key) > 1;
  }

  /** The name of the shared kernel of this structure, emitting it the first time. */
  shared(key: string, emit: (name: string) => string[]): string {
    let name = this.names.get(key);
    if (!name) {
      name = this.codeName(`matmul_shared${this.names.size + 1}`);
      this.names.set(key, name);
      this.code.push(...emit(name));
    }
    return name;
  }
}

