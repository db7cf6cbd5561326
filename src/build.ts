// `graphc build`: model file → forward IR → passes → reverse mode → backward IR → passes →
// flat TypeScript (+ plain ESM JavaScript). Compilation happens in memory; files are written
// only when everything succeeded, through a temporary folder, so a failed build writes nothing.

import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { dropCustomGrads, isForwardOnly, reverseMode } from '../ir/autodiff.js';
import { CompileError } from '../ir/errors.js';
import { Graph, Names } from '../ir/graph.js';
import { Builder } from '../ir/builder.js';
import { dropCotangents, hvpGraph, jvpGraph } from '../ir/derived.js';
import type { Loc } from '../ir/types.js';
import { derivedCode } from '../codegen/derived.js';
import { runPasses } from '../ir/passes.js';
import type { Plan } from '../ir/memplan.js';
import { describePlan, planMemory } from '../ir/memplan.js';
import { BACKWARD_PASSES, FORWARD_PASSES, KEPT_LOOP_PASSES, LOOP_PASSES, SCHEDULE_PASSES } from '../ir/pipeline.js';
import { nameBodies } from '../ir/loops.js';
import { printGraph } from '../ir/print.js';
import type { ModuleInfo } from '../codegen/module.js';
import type { OptimizerSpec } from '../codegen/optim.js';
import { indent } from '../codegen/module.js';
import { emitGpu } from '../codegen/gpu.js';
import { emitWebgpu } from '../codegen/webgpu/module.js';
import { emitTs } from '../codegen/ts.js';
import { emitWasm } from '../codegen/wasm.js';
import type { Traced } from './frontend.js';
import { modelLoc, traceModel } from './frontend.js';
import type { LoadedModel } from './loader.js';
import { loadModel } from './loader.js';

import type { OutputFile } from './output.js';
export type { OutputFile } from './output.js';
export { staleFiles, writeOutput } from './output.js';

export interface Compiled {
  readonly name: string;
  readonly model: LoadedModel;
  readonly fwd: Graph;
  readonly bwd: Graph;
  readonly plan: Plan;
  readonly warnings: readonly CompileError[];
  readonly files: readonly OutputFile[];
}

export type Target = 'ts' | 'gpu' | 'wasm' | 'webgpu';
/** Every target, in the order their files are emitted. */
export const TARGETS: readonly Target[] = ['ts', 'gpu', 'wasm', 'webgpu'];
/**
 * What `graphc build` emits without --target: the flat module and the wasm module (the GPU.js
 * module, which needs the `gpu.js` package, only when asked for).
 */
export const DEFAULT_TARGETS: readonly Target[] = ['ts', 'wasm'];

export interface CompileOptions {
  /** Emit finite checks after every step (--check-finite). */
  readonly checkFinite?: boolean;
  /** Emit the training step (`hyper`, `initOptState`, `trainStep`; with sgd also `update`). */
  readonly optimizer?: OptimizerSpec;
  /** Which modules to emit besides the IR (default: DEFAULT_TARGETS). */
  readonly targets?: readonly Target[];
  /** --hvp: emit hvp(params, inputs, v) in the flat and wasm modules. */
  readonly hvp?: boolean;
  /** --jvp: emit jvp(params, inputs, tangents) in the flat and wasm modules. */
  readonly jvp?: boolean;
  /** The time limit of loading and tracing the model, in ms (--trace-timeout; default 60 s). */
  readonly traceTimeout?: number;
  /** Called with each pass's name and the graph after it (for `graphc ir --after`). */
  readonly afterPass?: (graph: 'forward' | 'backward', pass: string, g: Graph) => void;
}

/** The model file as it appears in generated headers: relative to the working directory. */
export function displaySource(file: string): string {
  return path.relative(process.cwd(), path.resolve(file)).split(path.sep).join('/');
}

/**
 * The middle end: forward passes, reverse mode, backward passes, then fusion of both graphs and
 * the memory plan. Mutates fwd.
 */
export function lower(fwd: Graph, opts: CompileOptions & { readonly loops?: boolean } = {}): { bwd: Graph; plan: Plan } {
  // every target runs scans as loops (ir/loops.ts); `loops: false` unrolls them
  const LOOPS = (opts.loops ?? true) ? KEPT_LOOP_PASSES : LOOP_PASSES;
  opts.afterPass?.('forward', 'trace', fwd);
  runPasses(fwd, FORWARD_PASSES, { keep: new Set() }, (p, g) => opts.afterPass?.('forward', p, g));
  const bwd = reverseMode(fwd);
  dropCustomGrads(fwd);
  opts.afterPass?.('backward', 'reverse-mode', bwd);
  runPasses(fwd, LOOPS, { keep: new Set() }, (p, g) => opts.afterPass?.('forward', p, g));
  // the modules name both graphs' values in one scope: the steps' forward names are taken
  for (const i of fwd.insts) bwd.names.reserve(fwd.value(i.result).name);
  runPasses(bwd, LOOPS, { keep: new Set(), forward: fwd }, (p, g) => opts.afterPass?.('backward', p, g));
  // the steps of a scan may hold custom gradients, whose rules have run by now
  dropCustomGrads(fwd);
  dropCustomGrads(bwd);
  runPasses(bwd, BACKWARD_PASSES, { keep: new Set(), forward: fwd }, (p, g) => opts.afterPass?.('backward', p, g));
  const keep = new Set(bwd.insts.flatMap((i) => (i.op === 'fwd' ? [i.attrs.name] : [])));
  runPasses(fwd, SCHEDULE_PASSES, { keep }, (p, g) => opts.afterPass?.('forward', p, g));
  runPasses(bwd, SCHEDULE_PASSES, { keep: new Set(), forward: fwd }, (p, g) => opts.afterPass?.('backward', p, g));
  nameBodies([fwd, bwd]);
  return { bwd, plan: planMemory(fwd, bwd, { storeAll: opts.checkFinite }) };
}

/**
 * The graph of hvp or jvp (ir/derived.ts), lowered as a forward-only model: the model traced
 * once for the module (a copy of that trace: a model that draws Math.random() or keeps state
 * gives the derived functions the same function as forward), its forward passes, the reverse passes run into it, the forward passes again, fusion
 * and the memory plan. Its backward graph only holds zeros (valueAndGrad of a derived graph is
 * never called).
 */
export function lowerDerived(traced: Graph, kind: 'hvp' | 'jvp'): { fwd: Graph; bwd: Graph; plan: Plan } {
  const g = traced.clone();
  // the reverse passes of hvp and jvp run over the steps of each scan
  runPasses(g, LOOP_PASSES, { keep: new Set() });
  runPasses(g, FORWARD_PASSES, { keep: new Set() });
  if (kind === 'hvp') hvpGraph(g);
  else jvpGraph(g);
  g.numberTemps();
  runPasses(g, FORWARD_PASSES, { keep: new Set() });
  dropCustomGrads(g);
  if (kind === 'jvp') dropCotangents(g);
  g.freezeNames();
  const gb = new Graph(g.name, 'backward', new Names(g.insts.map((i) => g.value(i.result).name)));
  const b = new Builder(gb);
  for (const inst of g.insts) {
    if (inst.op !== 'param') continue;
    const d = b.broadcast(b.scalar(0), g.type(inst.result).shape);
    gb.rename(d, 'd' + g.value(inst.result).name);
    gb.outputs.push({ name: inst.attrs.name, value: d });
  }
  gb.numberTemps();
  runPasses(gb, BACKWARD_PASSES, { keep: new Set(), forward: g });
  runPasses(g, SCHEDULE_PASSES, { keep: new Set() });
  runPasses(gb, SCHEDULE_PASSES, { keep: new Set(), forward: g });
  return { fwd: g, bwd: gb, plan: planMemory(g, gb) };
}

/** Loads and traces a model. */
export function traceFile(file: string, opts: { scopes?: boolean; traceTimeout?: number } = {}): { model: LoadedModel; traced: Traced } {
  const model = loadModel(file, { timeout: opts.traceTimeout });
  return { model, traced: traceModel(model, opts) };
}

/**
 * A forward-only model (no output named loss) has no gradient: --optimizer, --hvp and --jvp, which
 * differentiate the loss, are refused at the model's default export.
 */
function refuseGradientOptions(fwd: Graph, model: LoadedModel, opts: CompileOptions): void {
  const flag = opts.optimizer ? `--optimizer ${opts.optimizer.name}` : opts.hvp ? '--hvp' : opts.jvp ? '--jvp' : undefined;
  if (!flag) return;
  const outs = fwd.outputs.filter((o) => !fwd.insts.some((i) => i.op === 'buffer' && i.attrs.name === o.name)).map((o) => o.name);
  const what = flag === '--hvp' ? 'hvp' : flag === '--jvp' ? 'jvp' : 'trainStep';
  throw new CompileError(
    `${flag}: the model returns no loss (its outputs: ${outs.join(', ')}), so it builds a forward-only module (spec, initParams, forward): no gradient, no ${what}`,
    `return the scalar loss too, e.g. { loss, ${outs[0]} }, to build ${what}; or build without ${flag}`,
    modelLoc(model),
  );
}

/** Front end and middle end: the optimised forward and backward graphs. */
export function compileGraphs(
  file: string,
  opts: CompileOptions = {},
): { model: LoadedModel; fwd: Graph; bwd: Graph; plan: Plan; warnings: CompileError[]; traced?: Graph } {
  const { model, traced } = traceFile(file, { traceTimeout: opts.traceTimeout });
  const fwd = traced.graph;
  if (isForwardOnly(fwd)) refuseGradientOptions(fwd, model, opts);
  // --hvp, --jvp: the derived graphs start from this trace (lowerDerived), before the passes change it
  const copy = opts.hvp || opts.jvp ? fwd.clone() : undefined;
  // every target runs scans as loops (ir/loops.ts): one lowering for all of them
  const { bwd, plan } = lower(fwd, opts);
  return { model, fwd, bwd, plan, warnings: traced.warnings, traced: copy };
}

/**
 * The back end: the IR files, and for each target a TypeScript module (formatted with prettier)
 * and the same module as plain JavaScript.
 */
/**
 * With several targets, one that refuses the model (a CompileError from its emitter, such as the
 * wasm target's for symbolic shapes) is skipped: `skipped` gets a warning naming it and why, and
 * the others are built. A target asked for alone fails the build.
 */
export async function emitFiles(info: ModuleInfo, targets: readonly Target[] = DEFAULT_TARGETS, skipped: CompileError[] = []): Promise<OutputFile[]> {
  const head = `# generated by graphc from ${info.source}, do not edit.\n`;
  const files: OutputFile[] = [
    { name: `${info.name}.ir`, content: head + printGraph(info.fwd, { preamble: describePlan(info.plan, info.fwd) }) },
    // a forward-only model (no loss) has no backward graph to print
    ...(isForwardOnly(info.fwd) ? [] : [{ name: `${info.name}.grad.ir`, content: head + printGraph(info.bwd, { preamble: describePlan(info.plan, info.bwd) }) }]),
  ];
  const emitters = { ts: { suffix: '', emit: emitTs }, gpu: { suffix: '.gpu', emit: emitGpu }, wasm: { suffix: '.wasm', emit: emitWasm }, webgpu: { suffix: '.webgpu', emit: emitWebgpu } };
  for (const target of TARGETS.filter((t) => targets.includes(t))) {
    const { suffix, emit } = emitters[target];
    let code: string;
    try {
      code = emit(info);
    } catch (e) {
      if (!(e instanceof CompileError) || targets.length === 1) throw e;
      const w = new CompileError(`the ${target} target is skipped (the other targets are built): ${e.message}`, e.hint, e.loc, 'warning');
      w.via = e.via;
      skipped.push(w);
      continue;
    }
    // --hvp, --jvp: the derived functions, after the module (flat and wasm targets)
    const more = (typed: boolean) => (target === 'gpu' || target === 'webgpu' ? '' : derivedCode(info, info.derived, (d, ty) => (target === 'wasm' ? emitWasm(d, ty, { threads: false }) : emit(d, ty)), typed));
    files.push(
      { name: `${info.name}${suffix}.ts`, content: await format(code + more(true), 'babel-ts', `${info.name}${suffix}.ts`) },
      { name: `${info.name}${suffix}.js`, content: indent(emit(info, false) + more(false)) },
    );
  }
  return files;
}

/**
 * Prettier's standalone build with the two plugins the modules need (the babel parsers and the
 * estree printer), loaded on the first format: the same formatter as `import('prettier')`, whose
 * entry point (680 kB, which also resolves config files and loads plugins by name) a build does
 * not use.
 */
let prettier: { format: typeof import('prettier/standalone').format; plugins: import('prettier').Plugin[] } | undefined;

async function format(code: string, parser: 'babel-ts' | 'babel', filepath: string): Promise<string> {
  if (!prettier) {
    const [standalone, babel, estree] = await Promise.all([import('prettier/standalone'), import('prettier/plugins/babel'), import('prettier/plugins/estree')]);
    prettier = { format: standalone.format, plugins: [babel, estree] };
  }
  // the file path tells prettier the text is not JSX (its guess is quadratic on long files)
  return prettier.format(code, { parser, filepath, printWidth: 110, singleQuote: true, plugins: prettier.plugins });
}

export async function compile(file: string, opts: CompileOptions = {}): Promise<Compiled> {
  const { model, fwd, bwd, plan, warnings, traced } = compileGraphs(file, opts);
  const name = fwd.name;
  const lines = new Map<string, string[]>();
  const sourceLine = (loc: Loc) => {
    let l = lines.get(loc.file);
    if (!l) lines.set(loc.file, (l = (model.sourceOf(loc.file) ?? '').split(/\r?\n/)));
    return l[loc.line - 1];
  };
  const source = displaySource(file);
  const derivedInfo = (kind: 'hvp' | 'jvp'): ModuleInfo => {
    const d = lowerDerived(traced!, kind);
    return { name: `${name}.${kind}`, plan: d.plan, source, fwd: d.fwd, bwd: d.bwd, sourceLine, derivedKind: kind };
  };
  const info: ModuleInfo = {
    name,
    plan,
    checkFinite: opts.checkFinite,
    optimizer: opts.optimizer,
    source,
    fwd,
    bwd,
    sourceLine,
    derived: opts.hvp || opts.jvp ? { hvp: opts.hvp ? derivedInfo('hvp') : undefined, jvp: opts.jvp ? derivedInfo('jvp') : undefined } : undefined,
  };
  const skipped: CompileError[] = [];
  const files = await emitFiles(info, opts.targets, skipped);
  if (files.some((f) => f.name.endsWith('.js'))) files.push(OUTPUT_PACKAGE_JSON);
  return { name, model, fwd, bwd, plan, warnings: [...warnings, ...skipped], files };
}

/**
 * The output folder's package.json: the modules are ES modules, and Node loads a `.js` file as
 * the nearest package.json's "type" says (npm init writes "type": "commonjs"). With this file
 * the folder loads as ESM in any package (docs/module.md).
 */
export const OUTPUT_PACKAGE_JSON: OutputFile = {
  name: 'package.json',
  content: '{\n  "//": "written by graphc build: the modules in this folder are ES modules, in any package",\n  "type": "module"\n}\n',
};

/** `dir/package.json` when it exists and graphc did not write it (a build must not overwrite it). */
export function foreignPackageJson(dir: string): string | undefined {
  const p = path.join(dir, OUTPUT_PACKAGE_JSON.name);
  return existsSync(p) && !readFileSync(p, 'utf8').includes('"written by graphc build') ? p : undefined;
}

/** The default output folder of a model: generated/<name>/. */
export function defaultOutDir(name: string): string {
  return path.join('generated', name);
}
