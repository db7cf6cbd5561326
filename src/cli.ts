// The command line: `graphc <verb> ...`. Exit codes: 0 success, 1 a model error (or a failed
// check), 2 a usage error.

import * as path from 'node:path';
import { CompileError } from '../ir/errors.js';
import { VerifyError } from '../ir/verify.js';
import type { Compiled } from './build.js';
import type { Target } from './build.js';
import { compile, defaultOutDir, staleFiles, TARGETS, writeAtomically } from './build.js';
import { diskSources, formatDiagnostic } from './diagnostics.js';
import type { SourceAccess } from './diagnostics.js';
import { UsageError } from './loader.js';
import { unifiedDiff } from './textdiff.js';

export interface Io {
  out(s: string): void;
  err(s: string): void;
  readonly color: boolean;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR,
};

interface OptionSpec {
  readonly value?: string;
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

type Parsed = { args: string[]; opts: Record<string, string | true> };

function parseArgs(verb: string, spec: Verb, argv: string[]): Parsed {
  const args: string[] = [];
  const opts: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const [k, inline] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
      const o = spec.options[k];
      if (!o) throw new UsageError(`graphc ${verb}: unknown option --${k}`);
      if (o.value) {
        const v = inline ?? argv[++i];
        if (v === undefined) throw new UsageError(`graphc ${verb}: --${k} needs a value (${o.value})`);
        opts[k] = v;
      } else {
        if (inline !== undefined) throw new UsageError(`graphc ${verb}: --${k} takes no value`);
        opts[k] = true;
      }
    } else args.push(a);
  }
  if (args.length < spec.minArgs) throw new UsageError(`graphc ${verb}: missing argument\nusage: ${spec.usage}`);
  if (spec.maxArgs !== undefined && args.length > spec.maxArgs) throw new UsageError(`graphc ${verb}: too many arguments\nusage: ${spec.usage}`);
  return { args, opts };
}

function verbHelp(name: string, v: Verb): string {
  const opts = Object.entries(v.options).map(([k, o]) => `  --${k}${o.value ? ` ${o.value}` : ''}`.padEnd(28) + o.help);
  return [`usage: ${v.usage}`, '', v.summary, ...(opts.length ? ['', 'options:', ...opts] : []), `  --help`.padEnd(28) + `show this help`, ''].join('\n');
}

/** Prints a compile error with its source line and returns the exit code for it. */
function report(e: unknown, io: Io, src?: SourceAccess): number {
  if (e instanceof UsageError) {
    io.err(`graphc: ${e.message}\n`);
    return 2;
  }
  if (e instanceof CompileError) {
    io.err(formatDiagnostic(e, src) + '\n');
    return 1;
  }
  if (e instanceof VerifyError) {
    io.err(`graphc: internal compiler error (please report it): ${e.message}\n`);
    return 1;
  }
  throw e;
}

function warn(c: Compiled, io: Io): void {
  for (const w of c.warnings) io.err(formatDiagnostic(w, c.model) + '\n');
}

const VERBS: Record<string, Verb> = {
  build: {
    usage: 'graphc build MODEL.ts... [--out DIR] [--check]',
    summary:
      'Compiles each model into DIR (default generated/<name>/): <name>.ir (forward IR), <name>.grad.ir\n' +
      '(backward IR), <name>.ts (the flat module) and <name>.js (the same module as plain ESM), and\n' +
      'with the gpu target <name>.gpu.ts and <name>.gpu.js (the GPU.js module).\n' +
      'A failed build writes nothing. With --check, writes nothing and exits 1 if the files on disk\n' +
      'differ from what this compiler produces, showing the difference.',
    options: {
      out: { value: 'DIR', help: 'output folder (one model only)' },
      target: { value: 'LIST', help: 'comma-separated targets: ts (flat module), gpu (GPU.js module); default ts,gpu' },
      check: { help: 'compare with the files on disk instead of writing' },
    },
    minArgs: 1,
    async run(args, opts, io) {
      if (opts.out && args.length > 1) throw new UsageError('graphc build: --out takes one model at a time');
      const targets = typeof opts.target === 'string' ? opts.target.split(',') : [...TARGETS];
      for (const t of targets) if (!(TARGETS as readonly string[]).includes(t)) throw new UsageError(`graphc build: unknown target '${t}' (known: ${TARGETS.join(', ')})`);
      let status = 0;
      for (const file of args) {
        let c: Compiled;
        try {
          c = await compile(file, { targets: targets as Target[] });
        } catch (e) {
          status = Math.max(status, report(e, io, diskSources(file)));
          continue;
        }
        warn(c, io);
        const dir = typeof opts.out === 'string' ? opts.out : defaultOutDir(c.name);
        if (opts.check) {
          const stale = staleFiles(dir, c.files);
          for (const s of stale) io.out(unifiedDiff(s.old, s.new, path.join(dir, s.name) + ' (on disk)', path.join(dir, s.name) + ' (rebuilt)', { color: io.color }));
          if (stale.length) {
            io.err(`graphc build --check: ${stale.length} stale file(s) in ${dir}: ${stale.map((s) => s.name).join(', ')}\n  fix: run graphc build ${file}\n`);
            status = Math.max(status, 1);
          } else io.out(`${dir}: up to date\n`);
        } else {
          writeAtomically(dir, c.files);
          io.out(`wrote ${dir}/ (${c.files.map((f) => f.name).join(', ')})\n`);
        }
      }
      return status;
    },
  },
};

const MAIN_HELP = `graphc: a compile-time graph compiler for differentiable models

usage: graphc <verb> [options]

verbs:
${Object.entries(VERBS)
  .map(([k, v]) => `  ${k.padEnd(8)}${v.usage}`)
  .join('\n')}

graphc <verb> --help shows a verb's options. Exit codes: 0 success, 1 model error, 2 usage error.
`;

export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
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
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(verbHelp(verb, spec));
    return 0;
  }
  try {
    const { args, opts } = parseArgs(verb, spec, [...rest]);
    return await spec.run(args, opts, io);
  } catch (e) {
    return report(e, io);
  }
}
