// A scan that stays a loop (ir/loops.ts, the kernel form's `loop` step) in the WebGPU module: the
// body's shaders are in the module once, and the runtime encodes them once per step into the same
// compute pass: the whole call stays one command encoder and one submit. The step index lives on
// the device, in a one-element i32 array of the loop's own (`loop:<scan>:s`): a tiny shader sets
// it to 0 before the loop and another adds 1 at the end of each step, and the shaders that move a
// step's slices read it. The list of an entry point (FORWARD, GRAD) holds a loop as
// `{ n: [factors of the trip count], body: [...] }`; its size does not depend on the trip count.
//
//   reset s; the initial carries and closed-over values into the body's operands (copies)
//   step (× T): the xs' slices t into the operands; the body's shaders; the ys into slice t of
//               their stacked arrays; the new carries through temporaries (a swap) into the
//               carries' operands; s += 1
//   the final carries into the scan's results

import type { Size } from '../../ir/dims.js';
import { mulSize, numelSize, size } from '../../ir/dims.js';
import type { HostProgram, Move, Step, StepSlice } from '../kernel/form.js';
import type { Shader } from './wgsl.js';
import { entry1d, js, sz } from './wgsl.js';

/** A run of an entry point: a shader's index, or a loop. */
export type Run = number | { readonly n: Size; readonly body: readonly Run[] };

/** Whether the program holds a loop. */
export function hasLoops(p: HostProgram): boolean {
  const any = (steps: readonly Step[]): boolean => steps.some((s) => s.kind === 'loop');
  return p.entries.some((e) => any(e.steps));
}

/**
 * The loops' shaders and arrays, added to `shaders` (the program's) when `runs` meets a loop the
 * first time: `runs(steps)` gives an entry point's list with its loops.
 */
export function loopRuns(shaders: Shader[], indexOf: ReadonlyMap<string, readonly number[]>, programArray: (name: string) => { dtype: 'f32' | 'i32'; numel: Size }) {
  const arrays: { name: string; dtype: 'f32' | 'i32'; numel: string }[] = [];
  const own = new Map<string, { dtype: 'f32' | 'i32'; numel: Size }>();
  const arrayOf = (name: string) => own.get(name) ?? programArray(name);
  const addArray = (name: string, dtype: 'f32' | 'i32', numel: Size) => {
    own.set(name, { dtype, numel });
    arrays.push({ name, dtype, numel: js(numel) });
  };
  const done = new Map<string, { before: number[]; step: { first: number[]; last: number[] }; after: number[] }>();
  const add = (s: Shader): number => (shaders.push(s), shaders.length - 1);
  const one = (n: Size) => size(n).syms.length === 0 && size(n).coef === 1;
  const decl = (names: readonly [string, boolean][]) => names.map(([a, w], j) => `@group(0) @binding(${j}) var<storage, ${w ? 'read_write' : 'read'}> a${j}: array<${arrayOf(a).dtype}>;`);
  /** to = from (a one-element `from` fills `to`). */
  const copy = (m: Move): Shader => {
    const n = arrayOf(m.to).numel;
    const list: [string, boolean][] = [[m.to, true], [m.from, false]];
    const wgsl = [...decl(list), ...entry1d(sz(n)), `  a0[gi] = a1[${one(arrayOf(m.from).numel) && !one(n) ? '0' : 'gi'}];`, '}'].join('\n');
    return { wgsl, arrays: list.map(([name, write]) => ({ name, write })), threads: js(n) };
  };
  /** Slice t of a stacked array into the step's (`into`), or the step's into slice t (a y). */
  const slice = (x: StepSlice, counter: string, T: Size, reverse: boolean, into: boolean): Shader => {
    const inner = numelSize(x.shape.slice(x.axis + 1));
    const n = mulSize(numelSize(x.shape.slice(0, x.axis)), inner);
    const list: [string, boolean][] = [[into ? x.step : x.stacked, true], [into ? x.stacked : x.step, false], [counter, false]];
    const s = 'a2[0]';
    const t = reverse ? `${sz(T)} - 1 - ${s}` : s;
    const stacked = `(gi / ${sz(inner)} * ${sz(x.shape[x.axis]!)} + t) * ${sz(inner)} + gi % ${sz(inner)}`;
    const body = into ? `  a0[gi] = a1[${one(arrayOf(x.stacked).numel) ? '0' : stacked}];` : `  a0[${stacked}] = a1[${one(arrayOf(x.step).numel) && !one(n) ? '0' : 'gi'}];`;
    const wgsl = [...decl(list), ...entry1d(sz(n)), `  let t = ${t};`, body, '}'].join('\n');
    return { wgsl, arrays: list.map(([name, write]) => ({ name, write })), threads: js(n) };
  };
  const counterShader = (counter: string, reset: boolean): Shader => ({
    wgsl: [...decl([[counter, true]]), ...entry1d('1'), reset ? '  a0[0] = 0;' : '  a0[0] = a0[0] + 1;', '}'].join('\n'),
    arrays: [{ name: counter, write: true }],
    threads: '1',
  });
  const loop = (s: Extract<Step, { kind: 'loop' }>) => {
    const known = done.get(s.scan);
    if (known) return known;
    const counter = `loop:${s.scan}:s`;
    addArray(counter, 'i32', size(1));
    const before = [add(counterShader(counter, true)), ...s.moves.init.map((m) => add(copy(m)))];
    const first = s.moves.xs.map((x) => add(slice(x, counter, s.length, s.reverse, true)));
    const tmps = s.moves.carries.map((m, k) => {
      const tmp = `loop:${s.scan}:carry${k}`;
      addArray(tmp, arrayOf(m.to).dtype, arrayOf(m.to).numel);
      return tmp;
    });
    const last = [
      ...s.moves.ys.map((y) => add(slice(y, counter, s.length, s.reverse, false))),
      ...s.moves.carries.map((m, k) => add(copy({ to: tmps[k]!, from: m.from }))),
      ...s.moves.carries.map((m, k) => add(copy({ to: m.to, from: tmps[k]! }))),
      add(counterShader(counter, false)),
    ];
    const after = s.moves.out.map((m) => add(copy(m)));
    const r = { before, step: { first, last }, after };
    done.set(s.scan, r);
    return r;
  };
  const runs = (steps: readonly Step[]): Run[] =>
    steps.flatMap((s): Run[] => {
      if (s.kind === 'launch') return [...indexOf.get(s.launch.name)!];
      if (s.kind !== 'loop') return [];
      const l = loop(s);
      return [...l.before, { n: s.length, body: [...l.step.first, ...runs(s.steps), ...l.step.last] }, ...l.after];
    });
  return { runs, arrays };
}

/** A list of runs as code: numbers, and loops as `{ n: [coef, 'T', ...], body: [...] }`. */
export function runsCode(list: readonly Run[]): string {
  return `[${list
    .map((r) => (typeof r === 'number' ? String(r) : `{ n: [${[String(size(r.n).coef), ...size(r.n).syms.map((x) => JSON.stringify(x))].join(', ')}], body: ${runsCode(r.body)} }`))
    .join(', ')}]`;
}
