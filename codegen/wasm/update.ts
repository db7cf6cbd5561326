// The optimizer update as one WebAssembly SIMD kernel (--optimizer with --target wasm): the
// statements of the optimizer table (codegen/optim.ts) as a kernel of the kernel form over each
// param (codegen/kernel/form.ts), rendered by the wasm kernel renderer (codegen/wasm/kernel.ts),
// four elements at a time, one loop per param. A param is read and written where the module
// staged it, its gradient where the backward pass left it, its state where the module keeps it in
// the memory, and the per-step scalars (lr, bias corrections, the clipping factor) from a small
// scalar area.

import { numelSize } from '../../ir/dims.js';
import { valueName } from '../../ir/memplan.js';
import type { ModuleInfo } from '../module.js';
import { commentText, key, member } from '../module.js';
import type { OptimizerSpec, UExpr } from '../optim.js';
import { scalarNames, slotsOf, updateStatements } from '../optim.js';
import { trainGroups } from '../ts/train.js';
import type { Address } from './layout.js';
import { align } from './layout.js';
import type { AluOp, Kernel, Node } from '../kernel/form.js';
import { Body } from './encode.js';
import { renderWasmKernelInto } from './kernel.js';

/** Where one param's arrays are (byte addresses in the memory), and its param group's update. */
export interface UpdateTarget {
  /** The optimizer of its param group (codegen/optim.ts paramGroups: its weight decay). */
  readonly spec: OptimizerSpec;
  /** The address of its group's step scalars. */
  readonly scalarsAt: number;
  readonly n: number;
  readonly p: number;
  readonly g: number;
  /** The address of each state slot's array. */
  readonly slots: Readonly<Record<string, number>>;
}

const OPS: Record<'+' | '-' | '*' | '/' | 'max' | 'sqrt', AluOp> = { '+': 'add', '-': 'sub', '*': 'mul', '/': 'div', max: 'max', sqrt: 'sqrt' };

/**
 * One param's update as a kernel over its n elements (arrays named p, g, the state slots and
 * `scalars`, which the caller places): values are read once, and each array stored with its last
 * value.
 */
export function updateKernel(at: UpdateTarget): Kernel {
  const scalars = scalarNames(at.spec);
  const nodes: Node[] = [];
  const S = (c: number) => ({ coef: c, syms: [] });
  const push = (n: Node) => nodes.push(n) - 1;
  const load = (arg: string, stride: number, offset = 0) => push({ op: 'load', dtype: 'f32', access: { arg, strides: [S(stride)], offset: S(offset) } });
  const c = (value: number) => push({ op: 'const', dtype: 'f32', value });
  const op = (o: AluOp, ...args: number[]) => push({ op: o, dtype: o === 'lt' ? 'bool' : 'f32', args } as unknown as Node);
  const latest = new Map<string, () => number>([
    ['p', () => load('p', 1)],
    ['g', () => load('g', 1)],
    ...Object.keys(at.slots).map((s) => [s, () => load(s, 1)] as [string, () => number]),
    ...scalars.map((s, k) => [s, () => load('scalars', 0, k)] as [string, () => number]),
  ]);
  const read = new Map<string, number>();
  const emit = (e: UExpr): number => {
    if (typeof e === 'number') return c(e);
    if (typeof e === 'string') {
      let v = read.get(e);
      if (v === undefined) {
        const get = latest.get(e);
        if (!get) throw new Error(`internal: update reads unknown name ${e}`);
        read.set(e, (v = get()));
      }
      return v;
    }
    if (e.op === 'sign') {
      // sign(x) = (x > 0) − (0 > x) (0 at 0, as torch.sign), plus t − t with t = min(max(x, −1), 1):
      // 0 for every number, NaN for NaN, so that a NaN gradient reaches the param as in the flat
      // module and torch
      const x = emit(e.a);
      const zero = c(0);
      const masks = op('sub', op('cast', op('lt', zero, x)), op('cast', op('lt', x, zero)));
      const t = op('min', op('max', x, c(-1)), c(1));
      return op('add', masks, op('sub', t, t));
    }
    return 'b' in e ? op(OPS[e.op], emit(e.a), emit(e.b)) : op(OPS[e.op], emit(e.a));
  };
  const stmts = updateStatements(at.spec);
  const lastWrite = new Map<string, number>();
  stmts.forEach((st, k) => lastWrite.set(st.set, k));
  const stores: Kernel['stores'][number][] = [];
  stmts.forEach((st, k) => {
    const v = emit(st.to);
    read.set(st.set, v);
    if (st.set !== 'g' && lastWrite.get(st.set) === k) stores.push({ node: v, access: { arg: st.set, strides: [S(1)], offset: S(0) } });
  });
  return { kind: 'kernel', name: 'update', domain: [at.n], axes: [], nodes, stores, notes: [] };
}

/** The kernel: every covered param's update, one loop each. */
export function updateBody(targets: readonly UpdateTarget[]): Body {
  const f = new Body();
  for (const at of targets) {
    if (at.n === 0) continue;
    const addr = (arg: string) => (arg === 'p' ? at.p : arg === 'g' ? at.g : arg === 'scalars' ? at.scalarsAt : at.slots[arg]);
    renderWasmKernelInto(f, updateKernel(at), addr);
  }
  return f;
}

/** Where the update kernel's arrays are: its targets, the params it covers, each state slot's views, the step scalars' areas. */
export interface UpdateLayout {
  readonly slots: readonly string[];
  readonly groups: ReturnType<typeof trainGroups>;
  readonly targets: readonly UpdateTarget[];
  readonly covered: ReadonlySet<string>;
  /** Per state slot, `key: new Float32Array(memory.buffer, at, n)` of each covered param. */
  readonly fields: ReadonlyMap<string, readonly string[]>;
  /** The gradients copied into the area (`copyMissing`): their views, and their params. */
  readonly copied: readonly string[];
  readonly copies: readonly string[];
  /** Each param group's step scalars: their address and count. */
  readonly scalarsAt: readonly number[];
  readonly scalarCount: readonly number[];
  readonly end: number;
  /** The expression of a param's staged copy (the arena's array the update kernel writes). */
  stagedOf(param: string): string;
  /** After the update kernel: each covered param's staged copy back to the caller's array. */
  readonly copyBack: readonly string[];
}

/**
 * The state area from `start` (a constant), shared by the static and the symbolic wasm modules: a
 * param is covered where its staged copy has an address (`address`) and its gradient is an array
 * of the arena (not a forward value passed through, not one another param's gradient owns);
 * with `copyMissing`, a param whose gradient is not gets an area of its own for a copy of it (the
 * symbolic module), without, it is left to the flat module's loop (the static one). Then each
 * param group's step scalars.
 */
export function updateLayout(m: ModuleInfo, address: Address, start: number, copyMissing: boolean): UpdateLayout {
  const slots = slotsOf(m.optimizer!);
  const groups = trainGroups(m);
  let end = start;
  const targets: UpdateTarget[] = [];
  const covered = new Set<string>();
  const owned = new Set<string>();
  const fields = new Map<string, string[]>(slots.map((s) => [s, []]));
  const copied: string[] = [];
  const copies: string[] = [];
  for (const o of m.bwd.outputs) {
    const p = m.fwd.insts.find((i) => i.op === 'param' && i.attrs.name === o.name);
    if (!p) continue; // the gradient of an input: no update
    const n = numelSize(m.fwd.type(p.result).shape).coef;
    const name = valueName(m.bwd, o.value);
    const inArena = m.plan.storage.get(name)?.kind === 'buffer' && m.bwd.def(o.value).op !== 'fwd' && !owned.has(name);
    const staged = address(m.fwd, p.result);
    const k = groups.findIndex((x) => x.params.includes(o.name));
    if (staged === undefined || k < 0) continue;
    let g = inArena ? address(m.bwd, o.value) : undefined;
    if (g === undefined) {
      if (!copyMissing) continue;
      // (the flat module's copy of the gradient, a JS array: copied into the area before the kernel)
      g = end;
      copied.push(`${key(o.name)}: new Float32Array(memory.buffer, ${end}, ${n})`);
      copies.push(o.name);
      end += align(n * 4);
    } else owned.add(name);
    covered.add(o.name);
    const at: Record<string, number> = {};
    for (const s of slots) {
      at[s] = end;
      fields.get(s)!.push(`${key(o.name)}: new Float32Array(memory.buffer, ${end}, ${n})`);
      end += align(n * 4);
    }
    targets.push({ spec: groups[k]!.spec, scalarsAt: k, n, p: staged, g, slots: at });
  }
  const scalarCount = groups.map((x) => scalarNames(x.spec).length);
  const scalarsAt = scalarCount.map((count) => {
    const at = end;
    end += align(Math.max(1, count) * 4);
    return at;
  });
  const stagedOf = (param: string) => member('buf', m.fwd.value(m.fwd.insts.find((i) => i.op === 'param' && i.attrs.name === param)!.result).name);
  const copyBack = [...covered].map((p) => `${member('params', p)}.set(${stagedOf(p)}); // the updated ${commentText(p)}, back to the caller's array`);
  return { slots, groups, targets: targets.map((t) => ({ ...t, scalarsAt: scalarsAt[t.scalarsAt]! })), covered, fields, copied, copies, scalarsAt, scalarCount, end, stagedOf, copyBack };
}
