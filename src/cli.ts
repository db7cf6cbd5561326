// The command line: `graphc <verb> ...`. Exit codes: 0 success, 1 a model error (or a failed
// check), 2 a usage error or a file-system error (one line naming the path), 3 an internal error
// (a bug in graphc: one line saying so; GRAPHC_DEBUG=1 adds the stack).

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs as nodeParseArgs } from 'node:util';
import { CompileError } from '../ir/errors.js';
import type { Compiled } from './build.js';
import type { Target } from './build.js';
import { compile, DEFAULT_TARGETS, defaultOutDir, foreignPackageJson, TARGETS } from './build.js';
import { fsErrorLine, isFsError, OutputError, staleFiles, writeFileAtomically, writeOutput } from './output.js';
import { cwdSources, diskSources, formatDiagnostic } from './diagnostics.js';
import type { SourceAccess } from './diagnostics.js';
import { UsageError } from './loader.js';
import { diffText, gradCheck, graphDot, irText, progressLine, renderGraph } from './inspect.js';
import { unifiedDiff } from './textdiff.js';
import type { ValuesFile } from './values.js';
import { readValues } from './values.js';
import type { Hyper, OptimizerName, OptimizerSpec, ScheduleName } from '../codegen/optim.js';
import { hyperProblem, OPTIMIZER_NAMES, OPTIMIZERS, resolveHyper, SCHEDULE_NAMES, scheduleProblem } from '../codegen/optim.js';

export interface Io {
  out(s: string): void;
  err(s: string): void;
  readonly color: boolean;
}

/**
 * A closed stdout or stderr (`graphc graph m.ts | head -1`) ends the command quietly, as other
 * CLIs do: nothing more can be shown, so there is nothing to report.
 */
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(process.exitCode ?? 0);
  });
}

let pipesGuarded = false;

const defaultIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR,
};

interface OptionSpec {
  /** The placeholder of the option's value (`DIR`, `N`); absent for a flag. */
  readonly value?: string;
  /** A one-letter alias (`-o`). */
  readonly short?: string;
  readonly help: string;
}

interface Verb {
  readonly usage: string;
  readonly summary: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly minArgs: number;
  readonly maxArgs?: number;
  run(args: string[], opts: Record<string, string | true>, io: Io): Promise<number>;
}

type Parsed = { args: string[]; opts: Record<string, string | true>; help: boolean };

/**
 * Splits a verb's arguments with Node's `util.parseArgs` (`--opt value`, `--opt=value`, `-o value`,
 * `-o=value`, grouped short flags, `--`), then checks each option against the verb's table so that
 * the messages name the verb and the option's value.
 */
function parseVerbArgs(verb: string, spec: Verb, argv: string[]): Parsed {
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [k, o] of Object.entries(spec.options)) config[k] = { type: o.value ? 'string' : 'boolean', ...(o.short ? { short: o.short } : {}) };
  const { tokens } = nodeParseArgs({ args: argv, options: config, strict: false, allowPositionals: true, tokens: true });
  const args: string[] = [];
  const opts: Record<string, string | true> = {};
  let help = false;
  for (const t of tokens) {
    if (t.kind === 'positional') args.push(t.value);
    else if (t.kind === 'option') {
      if (t.name === 'help') {
        help = true;
        continue;
      }
      const o = Object.hasOwn(spec.options, t.name) ? spec.options[t.name] : undefined;
      if (!o) throw new UsageError(`graphc ${verb}: unknown option ${t.rawName.startsWith('--') ? t.rawName : `-${t.name}`}`);
      if (o.value) {
        if (t.value === undefined) throw new UsageError(`graphc ${verb}: --${t.name} needs a value (${o.value})`);
        // `-o=FILE` as well as `-oFILE` and `-o FILE`
        opts[t.name] = t.inlineValue && !t.rawName.startsWith('--') && t.value.startsWith('=') ? t.value.slice(1) : t.value;
      } else {
        if (t.inlineValue) throw new UsageError(`graphc ${verb}: --${t.name} takes no value`);
        opts[t.name] = true;
      }
    }
  }
  if (help) return { args, opts, help };
  if (args.length < spec.minArgs) throw new UsageError(`graphc ${verb}: missing argument\nusage: ${spec.usage}`);
  if (spec.maxArgs !== undefined && args.length > spec.maxArgs) throw new UsageError(`graphc ${verb}: too many arguments\nusage: ${spec.usage}`);
  return { args, opts, help };
}

function verbHelp(name: string, v: Verb): string {
  const opts = Object.entries(v.options).map(
    ([k, o]) => `  ${o.short ? `-${o.short}, ` : ''}${k.length === 1 ? '-' : '--'}${k}${o.value ? ` ${o.value}` : ''}`.padEnd(28) + o.help,
  );
  return [`usage: ${v.usage}`, '', v.summary, ...(opts.length ? ['', 'options:', ...opts] : []), `  -h, --help`.padEnd(28) + `show this help`, ''].join('\n');
}

/**
 * Prints a compile error with its source line and returns the exit code for it. `model`: the
 * model file the command was working on, which an internal error names.
 */
function report(e: unknown, io: Io, src?: SourceAccess, model?: string): number {
  if (e instanceof UsageError) {
    io.err(`${e.message.startsWith('graphc') ? '' : 'graphc: '}${e.message}\n`);
    return 2;
  }
  if (e instanceof CompileError) {
    io.err(formatDiagnostic(e, src) + '\n');
    return 1;
  }
  if (e instanceof OutputError) {
    io.err(`graphc: ${e.message}\n`);
    return 2;
  }
  // any other file-system error: one line naming the path, never a Node stack
  if (isFsError(e)) {
    io.err(`graphc: ${fsErrorLine(e, undefined, e.syscall === 'open' || e.syscall === 'read' || e.syscall === 'scandir' ? 'cannot read' : 'cannot access')}\n`);
    return 2;
  }
  // anything else (a VerifyError, an `internal: ...` Error) is a bug in graphc, not in the model
  return internalError(e, io, model);
}

/** The exit code of an internal error. */
const INTERNAL_ERROR = 3;

/**
 * An internal error: one line with its message (flattened to one line) and the model, never a
 * Node stack unless GRAPHC_DEBUG=1 asks for it.
 */
function internalError(e: unknown, io: Io, model?: string): number {
  const message = (e instanceof Error ? e.message : String(e)).replace(/^internal: /, '').replace(/\s*\n\s*/g, ' ').replace(/\.$/, '');
  const debug = process.env.GRAPHC_DEBUG === '1';
  io.err(`graphc: internal error${model ? ` on ${model}` : ''}: ${message}. This is a bug in graphc: please report it with the model${debug ? '' : ' (GRAPHC_DEBUG=1 shows the stack)'}\n`);
  if (debug && e instanceof Error && e.stack) io.err(`${e.stack}\n`);
  return INTERNAL_ERROR;
}

/**
 * A test-only fault: GRAPHC_TEST_FAULT=internal makes `graphc build` throw an internal error while
 * compiling (test/cli.test.ts checks what the command prints; nothing else sets it).
 */
function testFault(): void {
  if (process.env.GRAPHC_TEST_FAULT === 'internal') throw new Error('internal: a fault injected by GRAPHC_TEST_FAULT');
}

function warn(c: Compiled, io: Io): void {
  for (const w of c.warnings) io.err(formatDiagnostic(w, c.model) + '\n');
}

const VERBS: Record<string, Verb> = {
  build: {
    usage: 'graphc build MODEL.ts... [--out DIR] [--target LIST] [--check] [--check-finite] [--optimizer sgd|adam|adamw|rmsprop|adagrad|lion]',
    summary:
      'Compiles each model into DIR (default generated/<name>/): <name>.ir (forward IR), <name>.grad.ir\n' +
      '(backward IR), and per target a TypeScript module and the same module as plain ESM: ts\n' +
      '<name>.ts and <name>.js (the flat module), wasm <name>.wasm.ts and <name>.wasm.js (the flat\n' +
      'module with WebAssembly SIMD kernels), gpu <name>.gpu.ts and <name>.gpu.js (the GPU.js module,\n' +
      'which needs the gpu.js package), webgpu <name>.webgpu.ts and <name>.webgpu.js (WGSL shaders on\n' +
      'WebGPU). Default targets: ts,wasm. A package.json ({"type": "module"})\n' +
      'makes the folder load as ES modules in any package.\n' +
      'A build writes its files all at once, never over a file graphc did not write (each folder has a\n' +
      '.graphc-manifest.json of the files graphc wrote there) or the model itself.\n' +
      'A failed build writes nothing; among several targets, one that refuses the model is skipped\n' +
      'with a warning and the others are written. With --check, writes nothing and exits 1 if the\n' +
      'files on disk differ from what this compiler produces, showing the difference.',
    options: {
      out: { value: 'DIR', short: 'o', help: 'output folder (one model only)' },
      target: { value: 'LIST', short: 't', help: 'comma-separated targets: ts (flat module), gpu (GPU.js module), wasm (WebAssembly SIMD kernels), webgpu (WGSL shaders on WebGPU); default ts,wasm' },
      check: { help: 'compare with the files on disk instead of writing' },
      'check-finite': { help: 'throw at the first NaN or infinity: the flat and wasm modules name the value, the GPU.js and WebGPU modules the argument or result (WebGPU trainStep: its loss or gradients, checked on the device, the step not taken)' },
      optimizer: { value: 'NAME', help: 'compile the training step: sgd, adam, adamw, rmsprop, adagrad or lion (trainStep, initOptState, hyper; sgd also update(params, grads, lr))' },
      lr: { value: 'X', help: 'the learning rate trainStep uses unless a call passes options.lr (default 0.001; rmsprop, adagrad 0.01; lion 0.0001)' },
      momentum: { value: 'M', help: 'sgd, rmsprop: momentum (default 0)' },
      nesterov: { help: 'sgd: Nesterov momentum (needs --momentum)' },
      'weight-decay': { value: 'W', help: 'L2 added to the gradient (sgd, adam, rmsprop, adagrad; default 0); decoupled for adamw (default 0.01) and lion (default 0)' },
      'clip-grad-norm': { value: 'N', help: 'scale all gradients by min(1, N / global L2 norm) before the update' },
      beta1: { value: 'B', help: 'adam, adamw, lion: first-moment decay (default 0.9)' },
      amsgrad: { help: 'adam, adamw: AMSGrad (the running maximum of the second moment)' },
      beta2: { value: 'B', help: 'adam, adamw: second-moment decay (default 0.999); lion: momentum decay (default 0.99)' },
      eps: { value: 'E', help: 'adam, adamw, rmsprop: added to the denominator (default 1e-8); adagrad (default 1e-10)' },
      alpha: { value: 'A', help: 'rmsprop: smoothing constant of the squared-gradient average (default 0.99)' },
      centered: { help: 'rmsprop: normalise by the estimated variance of the gradient' },
      'lr-decay': { value: 'D', help: 'adagrad: the learning rate at step t is lr / (1 + (t - 1)·D) (default 0)' },
      'no-decay-1d': { help: 'no weight decay for params of rank ≤ 1 (biases, norm gains), as nanoGPT; a g.param weightDecay wins' },
      schedule: { value: 'NAME', help: 'the learning rate by step, compiled into trainStep: constant, cosine, linear or step (after --warmup)' },
      warmup: { value: 'W', help: 'schedule: lr·(t + 1)/W for the first W steps (default 0)' },
      'total-steps': { value: 'N', help: 'cosine, linear schedules: the step from which the rate is --min-lr' },
      'min-lr': { value: 'M', help: 'cosine, linear schedules: the final rate (default 0)' },
      'step-size': { value: 'S', help: 'step schedule: the rate is multiplied by --gamma every S steps after the warmup' },
      gamma: { value: 'G', help: 'step schedule: the factor (default 0.1)' },
      hvp: { help: 'the flat and wasm modules also export hvp(params, inputs, v): { loss, hv }, the Hessian of the loss times v' },
      jvp: { help: 'the flat and wasm modules also export jvp(params, inputs, tangents): { outputs, tangentOutputs } (forward mode)' },
      'trace-timeout': { value: 'SECONDS', help: 'stop a model whose loading or tracing takes longer, naming the line it was at (default 60)' },
    },
    minArgs: 1,
    async run(args, opts, io) {
      if (opts.out && args.length > 1) throw new UsageError('graphc build: --out takes one model at a time');
      const targets = typeof opts.target === 'string' ? opts.target.split(',') : [...DEFAULT_TARGETS];
      const optimizer = optimizerSpec(opts);
      const traceTimeout = secondsOption('build', 'trace-timeout', opts['trace-timeout']);
      for (const t of targets) if (!(TARGETS as readonly string[]).includes(t)) throw new UsageError(`graphc build: unknown target '${t}' (known: ${TARGETS.join(', ')})`);
      let status = 0;
      for (const file of args) {
        let c: Compiled;
        try {
          testFault();
          c = await compile(file, { targets: targets as Target[], checkFinite: opts['check-finite'] === true, optimizer, hvp: opts.hvp === true, jvp: opts.jvp === true, traceTimeout });
        } catch (e) {
          status = Math.max(status, report(e, io, diskSources(file), file));
          continue;
        }
        warn(c, io);
        const dir = typeof opts.out === 'string' ? opts.out : defaultOutDir(c.name);
        if (opts.check) {
          const stale = staleFiles(dir, c.files);
          for (const s of stale) io.out(unifiedDiff(s.old, s.new, path.join(dir, s.name) + ' (on disk)', path.join(dir, s.name) + ' (rebuilt)', { color: io.color }));
          // a target skipped (its warning above) rebuilds nothing: whatever files of it the folder holds are not checked
          const skipped = c.warnings.flatMap((w) => /^the (\w+) target is skipped/.exec(w.message)?.[1] ?? []);
          if (stale.length) {
            io.err(`graphc build --check: ${stale.length} stale file(s) in ${dir}: ${stale.map((s) => s.name).join(', ')}\n  fix: run graphc build ${file}\n`);
            status = Math.max(status, 1);
          } else if (skipped.length) {
            io.err(`graphc build --check: ${dir} is not checked for the ${skipped.join(' and ')} target (skipped, see the warning)\n  fix: make the model build for every target given, or leave ${skipped.join(' and ')} out of --target\n`);
            status = Math.max(status, 1);
          } else io.out(`${dir}: up to date\n`);
        } else {
          // the user's own package.json: kept, and enough where it already says "type": "module"
          const foreign = foreignPackageJson(dir);
          const files = foreign && declaresModule(foreign) ? c.files.filter((f) => f.name !== 'package.json') : c.files;
          if (foreign && files === c.files) {
            io.err(
              `graphc build: ${foreign} exists and graphc did not write it (the output folder gets a package.json of its own, {"type": "module"})\n` +
                `  fix: add "type": "module" to it (the modules are ES modules), or build into a folder of its own (--out DIR)\n`,
            );
            status = Math.max(status, 2);
            continue;
          }
          writeOutput(dir, files, { protect: c.model.loader.loadedFiles() });
          io.out(`wrote ${dir}/ (${files.map((f) => f.name).join(', ')})\n`);
        }
      }
      return status;
    },
  },
};

/** The optimizer options of `graphc build`, checked (undefined without --optimizer). */
function optimizerSpec(opts: Record<string, string | true>): OptimizerSpec | undefined {
  const tuning = [
    ...['lr', 'momentum', 'nesterov', 'weight-decay', 'clip-grad-norm', 'beta1', 'beta2', 'eps', 'amsgrad', 'alpha', 'centered', 'lr-decay', 'no-decay-1d'],
    ...['schedule', 'warmup', 'total-steps', 'min-lr', 'step-size', 'gamma'],
  ].filter((k) => opts[k] !== undefined);
  if (opts.optimizer === undefined) {
    if (tuning.length) throw new UsageError(`graphc build: --${tuning[0]} needs --optimizer`);
    return undefined;
  }
  const name = opts.optimizer;
  if (!(OPTIMIZER_NAMES as readonly unknown[]).includes(name)) throw new UsageError(`graphc build: unknown optimizer '${String(name)}' (known: ${OPTIMIZER_NAMES.join(', ')})`);
  const number = (k: string, ok: (x: number) => boolean, what: string): number | undefined => {
    if (opts[k] === undefined) return undefined;
    const x = Number(opts[k]);
    if (opts[k] === true || opts[k] === '' || !Number.isFinite(x) || !ok(x)) throw new UsageError(`graphc build: --${k} must be ${what}, got '${String(opts[k])}'`);
    return x;
  };
  const given: { -readonly [K in keyof Hyper]?: Hyper[K] } = {};
  const set = <K extends keyof Hyper>(k: K, v: Hyper[K] | undefined) => {
    if (v !== undefined) given[k] = v;
  };
  set('lr', number('lr', (x) => x > 0, 'a number above 0'));
  set('momentum', number('momentum', (x) => x >= 0, 'a number ≥ 0'));
  if (opts.nesterov) given.nesterov = true;
  set('weightDecay', number('weight-decay', (x) => x >= 0, 'a number ≥ 0'));
  set('clipGradNorm', number('clip-grad-norm', (x) => x > 0, 'a number above 0'));
  set('beta1', number('beta1', (x) => x >= 0 && x < 1, 'a number in [0, 1)'));
  set('beta2', number('beta2', (x) => x >= 0 && x < 1, 'a number in [0, 1)'));
  set('eps', number('eps', (x) => x >= 0, 'a number ≥ 0'));
  set('alpha', number('alpha', (x) => x >= 0 && x < 1, 'a number in [0, 1)'));
  if (opts.amsgrad) given.amsgrad = true;
  if (opts.centered) given.centered = true;
  set('lrDecay', number('lr-decay', (x) => x >= 0, 'a number ≥ 0'));
  if (opts['no-decay-1d']) given.noDecay1d = true;
  if (opts.schedule !== undefined) {
    if (!(SCHEDULE_NAMES as readonly unknown[]).includes(opts.schedule)) throw new UsageError(`graphc build: unknown schedule '${String(opts.schedule)}' (known: ${SCHEDULE_NAMES.join(', ')})`);
    given.schedule = opts.schedule as ScheduleName;
  }
  set('warmup', number('warmup', (x) => Number.isInteger(x) && x >= 0, 'a whole number of steps ≥ 0'));
  set('totalSteps', number('total-steps', (x) => Number.isInteger(x) && x > 0, 'a whole number of steps above 0'));
  set('minLr', number('min-lr', (x) => x >= 0, 'a number ≥ 0'));
  set('stepSize', number('step-size', (x) => Number.isInteger(x) && x > 0, 'a whole number of steps above 0'));
  set('gamma', number('gamma', (x) => x > 0, 'a number above 0'));
  const problem = hyperProblem(name as OptimizerName, given) ?? scheduleProblem(given, given.lr ?? OPTIMIZERS[name as OptimizerName].defaults.lr);
  if (problem) throw new UsageError(`graphc build: ${problem}`);
  return { name: name as OptimizerName, hyper: resolveHyper(name as OptimizerName, given) };
}

const inspectVerbs: Record<string, Verb> = {
  ir: {
    usage: 'graphc ir MODEL.ts [--grad] [--after STAGE]',
    summary:
      'Prints the forward IR of a model (the backward IR with --grad) with source locations, as the\n' +
      "build writes it, or as it stands after a stage of the pipeline: 'trace' (forward) or\n" +
      "'reverse-mode' (backward), or a pass name such as simplify, fuse-composites, cse, dce or\n" +
      "fuse (cse#2 is the second run of cse). An unknown stage lists the stages.",
    options: {
      grad: { short: 'g', help: 'the backward IR' },
      after: { value: 'STAGE', help: 'the IR after this stage of the pipeline' },
    },
    minArgs: 1,
    maxArgs: 1,
    async run([file], opts, io) {
      try {
        io.out(await irText(file!, { grad: opts.grad === true, after: typeof opts.after === 'string' ? opts.after : undefined }));
        return 0;
      } catch (e) {
        return report(e, io, diskSources(file!), file);
      }
    },
  },
  diff: {
    usage: 'graphc diff A B [--ignore-names]',
    summary:
      'An IR-aware diff of two IR files, two model files, or a model file and its generated folder.\n' +
      'Values match by name and structure, not by number: renaming a temporary or reordering\n' +
      'independent lines is no change. Prints a unified diff of the instructions that changed\n' +
      '(coloured on a terminal), forward graph first, and notes under it the values that are only\n' +
      "renamed; %t7' is a temporary of B that matches none of A. Exits 1 when they differ, 0 when\n" +
      'they are the same, 2 on error.',
    options: {
      'ignore-names': { help: 'compare structure only: a renamed value (hid → hidden) is no change' },
    },
    minArgs: 2,
    maxArgs: 2,
    async run([a, b], opts, io) {
      let text: string;
      try {
        text = await diffText(a!, b!, io.color, opts['ignore-names'] === true);
      } catch (e) {
        // IR parse errors are located in the IR file, models' errors in the model
        const model = [a!, b!].find((f) => /\.(ts|js|mts)$/.test(f));
        const code = report(e, io, e instanceof CompileError && e.loc && /\.ir$/.test(e.loc.file) ? cwdSources : model ? diskSources(model) : undefined, `${a} and ${b}`);
        return code === INTERNAL_ERROR ? code : 2;
      }
      io.out(text);
      return text === '' ? 0 : 1;
    },
  },
  check: {
    usage: 'graphc check MODEL.ts [--seed N] [--samples N] [--dim B=32] [--params FILE] [--inputs FILE]',
    summary:
      "Checks the generated module's gradient of every param against central finite differences\n" +
      'in float64 (the model compiled over Float64Array arrays), at random coordinates; prints a\n' +
      'table and exits 1 when a param fails (a progress line on stderr when it is a terminal). A model\n' +
      'that returns no loss has no gradient: its outputs are checked against the float64 interpreter.\n' +
      '--params and --inputs take values from a .safetensors file or a JSON file of flat row-major\n' +
      'arrays ({"W1": [0.1, ...]}); names not in the file keep initParams(seed)\'s values and the\n' +
      'random inputs.',
    options: {
      seed: { value: 'N', short: 's', help: 'seed of the params (initParams) and inputs (default 0)' },
      samples: { value: 'N', help: 'coordinates checked per param (default 16; all when fewer)' },
      params: { value: 'FILE', help: 'param values (.safetensors or JSON)' },
      inputs: { value: 'FILE', help: 'input values (.safetensors or JSON)' },
      dim: { value: 'D=N[,D=N]', help: 'the size of a symbolic dimension (default 3; the table says what it used)' },
    },
    minArgs: 1,
    maxArgs: 1,
    async run([file], opts, io) {
      const seed = intOption('check', 'seed', opts.seed, 0);
      const samples = intOption('check', 'samples', opts.samples, 16);
      const dims = dimOption('check', opts.dim);
      try {
        // a progress line when stderr is a terminal, cleared before the table
        const line = io.err === defaultIo.err && process.stderr.isTTY ? progressLine((s) => io.err(s)) : undefined;
        line?.note(`checking ${file}: compiling…`);
        const { rows, table } = await gradCheck(file!, { seed, samples, dims, ...valuesOptions(opts), progress: line?.progress }).finally(() => line?.done());
        io.out(table);
        return rows.every((r) => r.pass) ? 0 : 1;
      } catch (e) {
        return report(e, io, diskSources(file!), file);
      }
    },
  },
  graph: {
    usage: 'graphc graph MODEL.ts [--values] [--seed N] [--params FILE] [--inputs FILE] [--max-values N] [--dim B=32] [--optimized] [-o FILE.svg|FILE.png|FILE.dot]',
    summary:
      'Draws the computational graph of a model (Graphviz in WebAssembly): one node per op, edges\n' +
      'with their shapes; a graph of more than 30 ops is laid out top to bottom, at most 40 inches wide.\n' +
      'With --values, each edge shows its forward value (green) and its gradient (red), for the params\n' +
      'of initParams(seed) and random inputs (or the values of --params FILE and --inputs FILE, .safetensors\n' +
      'or JSON; names not in the file keep theirs): the elements of a tensor of up to --max-values elements,\n' +
      'min/mean/max of a larger one. With --optimized, draws the forward graph as the build leaves it\n' +
      '(softmax, cross-entropy fused), each fused group a box. A symbolic dimension gets the size of\n' +
      '--dim (default 3), which the picture states. Writes SVG to stdout, or to -o FILE (PNG or DOT by\n' +
      'its extension).',
    options: {
      values: { short: 'v', help: 'label edges with forward values and gradients' },
      seed: { value: 'N', short: 's', help: 'seed of the params and inputs (default 0)' },
      params: { value: 'FILE', help: 'param values (.safetensors or JSON), with --values' },
      inputs: { value: 'FILE', help: 'input values (.safetensors or JSON), with --values' },
      'max-values': { value: 'N', help: 'show the elements of tensors up to N elements (default 3), else min/mean/max' },
      dim: { value: 'D=N[,D=N]', help: 'the size of a symbolic dimension (default 3)' },
      optimized: { help: 'the optimised forward graph, fused groups as boxes' },
      o: { value: 'FILE', help: 'output file (.svg, .png or .dot)' },
    },
    minArgs: 1,
    maxArgs: 1,
    async run([file], opts, io) {
      const seed = intOption('graph', 'seed', opts.seed, 0);
      const maxValues = intOption('graph', 'max-values', opts['max-values'], 3);
      const dims = dimOption('graph', opts.dim);
      const out = typeof opts.o === 'string' ? opts.o : undefined;
      const ext = out ? path.extname(out).toLowerCase() : '.svg';
      if (!['.svg', '.png', '.dot'].includes(ext)) throw new UsageError(`graphc graph: -o must name a .svg, .png or .dot file, got ${out}`);
      if ((opts.params || opts.inputs) && opts.values !== true) throw new UsageError('graphc graph: --params and --inputs give the values that --values shows; add --values');
      let dot: string;
      try {
        const drawn = await graphDot(file!, { values: opts.values === true, seed, maxValues, dims, optimized: opts.optimized === true, ...valuesOptions(opts) });
        dot = drawn.dot;
        if (drawn.note) io.err(`graphc graph: ${drawn.note}\n`);
      } catch (e) {
        return report(e, io, diskSources(file!), file);
      }
      const content = ext === '.dot' ? dot : await renderGraph(dot, ext === '.png' ? 'png' : 'svg');
      if (out) {
        writeFileAtomically(out, content, { protect: [path.resolve(file!)] });
        io.out(`wrote ${out}\n`);
      } else io.out(typeof content === 'string' ? content : Buffer.from(content).toString('base64'));
      return 0;
    },
  },
};
Object.assign(VERBS, inspectVerbs);

const interopVerbs: Record<string, Verb> = {
  export: {
    usage: 'graphc export MODEL.ts [--onnx OUT.onnx] [--torch OUT.py] [--params FILE [--allow-missing]]',
    summary:
      'Writes the forward graph of a model (the outputs it returns) as an ONNX model (opset 17):\n' +
      'the params as initializers (from --params FILE, a .safetensors or JSON values file holding\n' +
      'every param and buffer, else initParams(0)), inputs and outputs named as in spec, symbolic\n' +
      'dimensions as dim_params, the fused ops as ONNX operators (Softmax, LayerNormalization,\n' +
      'BatchNormalization, Gather); with --torch, as a Python file defining a torch.nn.Module (one\n' +
      'line per op, autograd for the gradients, load_safetensors/save_safetensors with graphc\'s\n' +
      'names). Give one or both.',
    options: {
      onnx: { value: 'FILE', help: 'the ONNX file to write' },
      torch: { value: 'FILE', help: 'the PyTorch module (.py) to write' },
      params: { value: 'FILE', help: 'param values (.safetensors or JSON): every param and buffer of the model' },
      'allow-missing': { help: 'with --params: export a param or buffer the file lacks with its initial value (a warning each)' },
    },
    minArgs: 1,
    maxArgs: 1,
    async run([file], opts, io) {
      if (typeof opts.onnx !== 'string' && typeof opts.torch !== 'string')
        throw new UsageError('graphc export: --onnx OUT.onnx or --torch OUT.py is required\nusage: graphc export MODEL.ts [--onnx OUT.onnx] [--torch OUT.py] [--params FILE [--allow-missing]]');
      if (opts['allow-missing'] === true && typeof opts.params !== 'string') throw new UsageError('graphc export: --allow-missing needs --params FILE');
      const missing = { allowMissing: opts['allow-missing'] === true, warn: (w: string) => io.err(`${w}\n`) };
      if (typeof opts.torch === 'string') {
        const torchOut = opts.torch;
        const { exportTorchFile } = await import('./torch/index.js');
        let py: string;
        let sources: string[];
        try {
          ({ source: py, sources } = await exportTorchFile(file!, { params: valuesOptions(opts).params, ...missing }));
        } catch (e) {
          return report(e, io, diskSources(file!), file);
        }
        writeFileAtomically(torchOut, py, { protect: sources });
        io.out(`wrote ${torchOut} (${Buffer.byteLength(py)} bytes)\n`);
      }
      if (typeof opts.onnx !== 'string') return 0;
      const out = opts.onnx;
      const { params } = valuesOptions(opts);
      const { exportFile } = await import('./onnx/index.js');
      let bytes: Uint8Array;
      let sources: string[];
      try {
        ({ bytes, sources } = await exportFile(file!, { params, ...missing }));
      } catch (e) {
        return report(e, io, diskSources(file!), file);
      }
      writeFileAtomically(out, bytes, { protect: sources });
      io.out(`wrote ${out} (${bytes.length} bytes)\n`);
      return 0;
    },
  },
};
Object.assign(VERBS, interopVerbs);

function valuesOptions(opts: Record<string, string | true>): { params?: ValuesFile; inputs?: ValuesFile } {
  return {
    params: typeof opts.params === 'string' ? readValues(opts.params) : undefined,
    inputs: typeof opts.inputs === 'string' ? readValues(opts.inputs) : undefined,
  };
}

/** `--dim B=32` or `--dim B=32,T=8`: sizes of symbolic dimensions. */
function dimOption(verb: string, v: string | true | undefined): Record<string, number> {
  if (v === undefined) return {};
  const out: Record<string, number> = {};
  for (const part of String(v).split(',')) {
    const m = /^([A-Za-z_]\w*)=(\d+)$/.exec(part.trim());
    if (!m || Number(m[2]) < 1) throw new UsageError(`graphc ${verb}: --dim needs NAME=SIZE with a positive size, e.g. --dim B=32, got ${String(v)}`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Whether a package.json says "type": "module" (then the modules beside it load as ESM). */
function declaresModule(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { type?: unknown }).type === 'module';
  } catch {
    return false;
  }
}

/** A positive number of seconds (--trace-timeout), in milliseconds; undefined when not given. */
function secondsOption(verb: string, name: string, v: string | true | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(x) || x <= 0) throw new UsageError(`graphc ${verb}: --${name} needs a number of seconds above 0, got ${String(v)}`);
  return Math.max(1, Math.round(x * 1000));
}

function intOption(verb: string, name: string, v: string | true | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < 0) throw new UsageError(`graphc ${verb}: --${name} needs a non-negative integer, got ${String(v)}`);
  return n;
}

const MAIN_HELP = `graphc: a compile-time graph compiler for differentiable models

usage: graphc <verb> [options]

verbs:
${Object.entries(VERBS)
  .map(([k, v]) => `  ${k.padEnd(8)}${v.usage}`)
  .join('\n')}

graphc <verb> --help shows a verb's options. Exit codes: 0 success, 1 model error, 2 usage or file-system error,
3 internal error (a bug in graphc).
`;

export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  if (io === defaultIo && !pipesGuarded) {
    pipesGuarded = true;
    quietOnClosedPipe(process.stdout);
    quietOnClosedPipe(process.stderr);
  }
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    (verb === undefined ? io.err : io.out)(MAIN_HELP);
    return verb === undefined ? 2 : 0;
  }
  const spec = VERBS[verb];
  if (!spec) {
    io.err(`graphc: unknown verb '${verb}'\n\n${MAIN_HELP}`);
    return 2;
  }
  let model: string | undefined;
  try {
    const { args, opts, help } = parseVerbArgs(verb, spec, [...rest]);
    if (help) {
      io.out(verbHelp(verb, spec));
      return 0;
    }
    // the model an internal error names, when the command has one
    if (verb !== 'diff' && args.length === 1) model = args[0];
    return await spec.run(args, opts, io);
  } catch (e) {
    return report(e, io, undefined, model);
  }
}
