// `graphc check` of a forward-only model (no loss): there is no gradient to check, so the
// generated module's outputs are checked against the float64 interpreter instead, in an
// evaluation call and, where the model has dropout or batchnorm buffers, in a training call (the
// same dropout masks from the same seed, the batch statistics and the next running statistics).

import type { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { formatType } from '../ir/types.js';
import { hasModes, isBufferOutput } from '../codegen/modes.js';
import type { FlatModule } from './checkmodules.js';

/**
 * One row of graphc check: a param's gradient, or one output of one call of a forward-only model,
 * with its largest errors against the float64 interpreter.
 */
export interface ForwardRow {
  readonly param: string;
  readonly shape: string;
  readonly checked: number;
  readonly maxAbs: number;
  readonly maxRel: number;
  readonly pass: boolean;
  /** The coordinates checked (flat indices) and the finite difference (or reference value) at each. */
  readonly coords: readonly number[];
  readonly fd: Float64Array;
}

export function forwardCheck(
  g: Graph,
  mod: FlatModule,
  args: { params: Record<string, Float32Array>; inputs: Record<string, Float32Array | Int32Array>; seed: number; tolerance: number; notes: readonly string[] },
): { rows: ForwardRow[]; table: string } {
  const { params, inputs, seed, tolerance } = args;
  const p64 = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Float64Array.from(v)]));
  const calls = hasModes(g) ? [false, true] : [false];
  const rows: ForwardRow[] = [];
  for (const train of calls) {
    const buffers = mod.initBuffers?.();
    const buffers64 = buffers && Object.fromEntries(Object.entries(buffers).map(([k, v]) => [k, Float64Array.from(v)]));
    const got = mod.forward(params, inputs, { train, seed, buffers });
    const want = outputsOf(g, interpret(g, { params: p64, inputs, train, seed, buffers: buffers64 }));
    // the running statistics a training call moves on to, as the model's outputs
    const names = [...g.outputs.filter((o) => !isBufferOutput(g, o.name)).map((o) => o.name), ...(train && buffers ? Object.keys(buffers) : [])];
    for (const name of names) {
      const ref = want[name]!.data;
      const value = isBufferOutput(g, name) ? buffers![name]! : got[name]!;
      const out = typeof value === 'number' ? [value] : value;
      let maxAbs = 0;
      let scale = 1e-3;
      for (let i = 0; i < ref.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(out[i]! - ref[i]!));
        scale = Math.max(scale, Math.abs(ref[i]!));
      }
      if (Number.isNaN(maxAbs) || out.length !== ref.length) maxAbs = Infinity;
      const maxRel = maxAbs / scale;
      const o = g.outputs.find((x) => x.name === name)!;
      const label = calls.length > 1 ? `${name} (${train ? 'training' : 'evaluation'})` : name;
      rows.push({ param: label, shape: formatType(g.type(o.value)), checked: ref.length, maxAbs, maxRel, pass: maxRel <= tolerance, coords: [], fd: new Float64Array(0) });
    }
  }
  const head = ['output', 'shape', 'checked', 'max abs err', 'max rel err', ''];
  const body = rows.map((x) => [x.param, x.shape, String(x.checked), x.maxAbs.toExponential(2), x.maxRel.toExponential(2), x.pass ? 'PASS' : 'FAIL']);
  const widths = head.map((h, k) => Math.max(h.length, ...body.map((b) => b[k]!.length)));
  const fmt = (cells: string[]) => cells.map((s, k) => (k >= 2 && k <= 4 ? s.padStart(widths[k]!) : s.padEnd(widths[k]!))).join('  ').trimEnd();
  const table = [
    `forward check of ${g.name}: the model returns no loss, so there is no gradient to check; the generated module's outputs against the float64 interpreter`,
    ...args.notes,
    `(seed ${seed}; relative error = max |output - reference| / max(max |reference|, 1e-3), PASS when at most ${tolerance})`,
    ...(calls.length > 1 ? [`(an evaluation call, then a training call with seed ${seed}: its dropout masks, batch statistics and next running statistics)`] : []),
    fmt(head),
    ...body.map(fmt),
  ].join('\n');
  return { rows, table: table + '\n' };
}
