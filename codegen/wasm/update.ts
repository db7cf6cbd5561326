// The optimizer update as one WebAssembly SIMD kernel (--optimizer with --target wasm): the
// statements of the optimizer table (codegen/optim.ts) as elementwise steps over each param, four
// elements at a time, one loop per param. A param is read and written where the module staged it,
// its gradient where the backward pass left it, its state where the module keeps it in the memory,
// and the per-step scalars (lr, bias corrections, the clipping factor) from a small scalar area.

import type { OptimizerSpec, UExpr } from '../optim.js';
import { scalarNames, updateStatements } from '../optim.js';
import { Body } from './encode.js';
import { elementwiseLoop } from './elementwise.js';
import type { Operand, Step, StepOp } from './steps.js';

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

const OPS: Record<'+' | '-' | '*' | '/' | 'max' | 'sqrt', StepOp> = { '+': 'add', '-': 'sub', '*': 'mul', '/': 'div', max: 'max', sqrt: 'sqrt' };

/** The steps of one param's update: values are read once, and each array stored with its last value. */
export function updateSteps(at: UpdateTarget): Step[] {
  const { spec, scalarsAt } = at;
  const scalars = scalarNames(spec);
  const steps: Step[] = [];
  const latest = new Map<string, Operand>([
    ['p', { kind: 'mem', addr: at.p, si: at.n, sj: 1 }],
    ['g', { kind: 'mem', addr: at.g, si: at.n, sj: 1 }],
    ...Object.entries(at.slots).map(([s, addr]) => [s, { kind: 'mem', addr, si: at.n, sj: 1 }] as [string, Operand]),
    ...scalars.map((s, k) => [s, { kind: 'mem', addr: scalarsAt + 4 * k, si: 0, sj: 0 }] as [string, Operand]),
  ]);
  const emit = (e: UExpr): Operand => {
    if (typeof e === 'number') return { kind: 'const', value: e };
    if (typeof e === 'string') {
      const o = latest.get(e);
      if (!o) throw new Error(`internal: update reads unknown name ${e}`);
      return o;
    }
    if (e.op === 'sign') {
      // sign(x) = (x > 0) − (0 > x): two masks of 1.0 lanes (0 at 0, as torch.sign), plus t − t
      // with t = min(max(x, −1), 1): 0 for every number, NaN for NaN (f32x4.min/max propagate it),
      // so that a NaN gradient reaches the param as in the flat module and torch
      const x = emit(e.a);
      const zero: Operand = { kind: 'const', value: 0 };
      const at = (k: number): Operand => ({ kind: 'step', step: k });
      steps.push({ op: 'gt', args: [x, zero] }, { op: 'gt', args: [zero, x] });
      steps.push({ op: 'sub', args: [at(steps.length - 2), at(steps.length - 1)] });
      const masks = steps.length - 1;
      steps.push({ op: 'max', args: [x, { kind: 'const', value: -1 }] });
      steps.push({ op: 'min', args: [at(steps.length - 1), { kind: 'const', value: 1 }] });
      steps.push({ op: 'sub', args: [at(steps.length - 1), at(steps.length - 1)] });
      steps.push({ op: 'add', args: [at(masks), at(steps.length - 1)] });
      return at(steps.length - 1);
    }
    const args = 'b' in e ? [emit(e.a), emit(e.b)] : [emit(e.a)];
    steps.push({ op: OPS[e.op], args });
    return { kind: 'step', step: steps.length - 1 };
  };
  const stmts = updateStatements(spec);
  const lastWrite = new Map<string, number>();
  stmts.forEach((s, k) => lastWrite.set(s.set, k));
  stmts.forEach((s, k) => {
    let o = emit(s.to);
    const stored = s.set !== 'g' && lastWrite.get(s.set) === k;
    if (stored) {
      // a statement that only renames a value (g = b) or reads an array as it is still needs a step to store
      if (o.kind !== 'step' || steps[o.step]!.store !== undefined) {
        steps.push({ op: 'copy', args: [o] });
        o = { kind: 'step', step: steps.length - 1 };
      }
      const addr = s.set === 'p' ? at.p : at.slots[s.set]!;
      const step = steps[o.step]!;
      steps[o.step] = { ...step, store: addr };
    }
    latest.set(s.set, o);
  });
  return steps;
}

/** The kernel: every covered param's update, one loop each. */
export function updateBody(targets: readonly UpdateTarget[]): Body {
  const f = new Body();
  for (const at of targets) if (at.n > 0) elementwiseLoop(f, { M: 1, N: at.n, steps: updateSteps(at) });
  return f;
}
