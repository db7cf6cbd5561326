// The modules `graphc check` runs, built in memory and imported in-process: the flat module as
// `graphc build` writes it (float32: the gradients under test), and the same flat code over
// Float64Array arrays, whose forward gives the loss that the finite differences take. One
// compiled forward per coordinate instead of one run of the reference interpreter makes the
// check as fast as the module (a 100k-param transformer in seconds rather than minutes).

import { planMemory } from '../ir/memplan.js';
import type { Graph } from '../ir/graph.js';
import type { Plan } from '../ir/memplan.js';
import type { Loc } from '../ir/types.js';
import type { ModuleInfo } from '../codegen/module.js';
import { emitTs } from '../codegen/ts.js';
import { compileGraphs, displaySource } from './build.js';
import type { LoadedModel } from './loader.js';

/** What check calls on a flat module (float32 or float64 arrays alike). */
export interface FlatModule {
  initParams(seed: number): Record<string, Float32Array>;
  initBuffers?(): Record<string, Float32Array>;
  forward(p: object, i: object, o?: object): Record<string, number | ArrayLike<number>>;
  valueAndGrad(p: object, i: object, o?: object): { loss: number; grads: Record<string, Float32Array> };
}

export interface CheckBuild {
  readonly model: LoadedModel;
  readonly fwd: Graph;
  readonly bwd: Graph;
  readonly plan: Plan;
  /**
   * The forward's stop_gradient values that were a g.customGrad before reverse mode turned them
   * into the identity: the finite differences go through them (their forward is what the custom
   * rule differentiates), unlike what a g.stopGradient stops.
   */
  readonly customGrads: ReadonlySet<string>;
}

/** The model's graphs as `graphc build` lowers them, and which stop_gradients were custom_grads. */
export function checkGraphs(file: string): CheckBuild {
  let customGrads = new Set<string>();
  const { model, fwd, bwd, plan } = compileGraphs(file, {
    afterPass: (kind, _pass, g) => {
      if (kind !== 'forward') return;
      const names = g.insts.filter((i) => i.op === 'custom_grad').map((i) => g.value(i.result).name);
      if (names.length) customGrads = new Set(names);
    },
  });
  return { model, fwd, bwd, plan, customGrads };
}

/** The flat module of the graphs as plain JavaScript (what the build writes as NAME.js, unindented). */
function flatCode(file: string, b: Pick<CheckBuild, 'model' | 'fwd' | 'bwd' | 'plan'>): string {
  const lines = new Map<string, string[]>();
  const sourceLine = (loc: Loc) => {
    let l = lines.get(loc.file);
    if (!l) lines.set(loc.file, (l = (b.model.sourceOf(loc.file) ?? '').split(/\r?\n/)));
    return l[loc.line - 1];
  };
  const info: ModuleInfo = { name: b.fwd.name, plan: b.plan, source: displaySource(file), fwd: b.fwd, bwd: b.bwd, sourceLine };
  return emitTs(info, false);
}

/** Imports a module that imports nothing, without writing a file. */
export async function importCode(code: string): Promise<FlatModule> {
  return (await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`)) as FlatModule;
}

/** The flat module as the build writes it (float32). */
export async function float32Module(file: string, b: CheckBuild): Promise<FlatModule> {
  return importCode(flatCode(file, b));
}

/** The input that stands for a frozen stop_gradient value in the float64 module. */
export const frozenInput = (value: string) => `frozen ${value}`;

/**
 * The flat module in float64 (its code): the code of `b`'s graphs emitted over Float64Array arrays; with
 * values in `frozen` (stop_gradient results), of the model lowered afresh with each of them read
 * from the input `frozenInput(name)` instead of computed. The flat module's float32
 * arithmetic lives only in its Float32Array storage (its scalars are JavaScript doubles), so the same code over
 * Float64Array arrays evaluates the same graph in float64.
 */
export function float64Code(file: string, b: CheckBuild, frozen: readonly string[]): string {
  const f64 = (code: string) => code.replace(/(?<![\w$.'"])Float32Array\b/g, 'Float64Array');
  if (frozen.length === 0) return f64(flatCode(file, b));
  const { model, fwd, bwd } = compileGraphs(file);
  const want = new Set(frozen);
  for (const inst of [...fwd.insts]) {
    const name = fwd.value(inst.result).name;
    if (inst.op !== 'stop_gradient' || !want.has(name)) continue;
    fwd.replaceInst(inst, { id: inst.id, op: 'input', args: [], attrs: { name: frozenInput(name) }, result: inst.result, loc: inst.loc });
    want.delete(name);
  }
  if (want.size) throw new Error(`internal: graphc check: no stop_gradient ${[...want].join(', ')} in the relowered forward graph`);
  return f64(flatCode(file, { model, fwd, bwd, plan: planMemory(fwd, bwd) }));
}
