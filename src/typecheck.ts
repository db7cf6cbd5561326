// Type-checks a model file (and the files it imports) with TypeScript, `graphc` resolved to this
// compiler's own DSL types, so that a type error is reported as TypeScript's own diagnostic at
// its line rather than as whatever it would break at run time.

import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import * as tsMorph from 'ts-morph';
import { ts } from 'ts-morph';
import { CompileError } from '../ir/errors.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
/** The DSL's types: dist/src/index.d.ts when running built, src/index.ts when running from source. */
const DSL_TYPES = existsSync(path.join(HERE, 'index.d.ts')) ? path.join(HERE, 'index.d.ts') : path.join(HERE, 'index.ts');
/** The compiler's own folders (src, ir, codegen, or their dist/ builds): never reported. */
const OWN = [HERE, path.resolve(HERE, '../ir'), path.resolve(HERE, '../codegen')].map((d) => d + path.sep);

/**
 * TypeScript's message as one line: a chained message ("Argument of type ... is not assignable
 * to parameter of type 'ModelFn'." then, indented below, "Type 'void' is not assignable to type
 * 'ModelOutputs'.") has its parts joined with ' ', each ending in punctuation, so that a
 * diagnostic keeps its one header line.
 */
export function flatTsMessage(text: string | ts.DiagnosticMessageChain): string {
  const parts = ts
    .flattenDiagnosticMessageText(text, '\n')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  return parts.map((l, i) => (i < parts.length - 1 && !/[.:;!?]$/.test(l) ? `${l}.` : l)).join(' ');
}

/** The compiler options of the check: `graphc` resolves to this compiler's own DSL types. */
const OPTIONS: ts.CompilerOptions = {
  strict: true,
  noImplicitAny: false,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  allowImportingTsExtensions: true,
  noEmit: true,
  skipLibCheck: true,
  types: [],
  lib: ['lib.es2022.d.ts'],
  paths: { graphc: [DSL_TYPES] },
};

/** One error diagnostic, as plain data (it may come from another thread). */
interface RawDiagnostic {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly code: number;
  /** TypeScript's message, a chained one flattened with '\n'. */
  readonly text: string;
}

/**
 * The check itself, written as a function of its own source text so that it can also run in a
 * worker thread: `tsMorph` is the ts-morph module, `options` the compiler options.
 */
function collectDiagnostics(tsMorph: typeof import('ts-morph'), entry: string, options: ts.CompilerOptions): RawDiagnostic[] {
  const project = new tsMorph.Project({ skipAddingFilesFromTsConfig: true, compilerOptions: options });
  project.addSourceFileAtPath(entry);
  project.resolveSourceFileDependencies();
  const out: RawDiagnostic[] = [];
  for (const d of project.getPreEmitDiagnostics()) {
    const sf = d.getSourceFile();
    if (d.getCategory() !== tsMorph.ts.DiagnosticCategory.Error || !sf) continue;
    const lc = sf.getLineAndColumnAtPos(d.getStart() ?? 0);
    const text = tsMorph.ts.flattenDiagnosticMessageText(d.compilerObject.messageText, '\n');
    out.push({ file: sf.getFilePath(), line: lc.line, col: lc.column, code: d.getCode(), text });
  }
  return out;
}

/**
 * The same check in a worker thread with a 512 MB stack, waited for synchronously. TypeScript
 * infers a const's type from its initializer on demand, and the contextual type of the model
 * function makes it check the returned loss first: in a 1000-layer MLP that recursion goes
 * through every layer and overflows the main thread's stack.
 */
function collectOnBigStack(entry: string): RawDiagnostic[] {
  const done = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const code = [
    "const { workerData } = require('node:worker_threads');",
    `const collect = ${collectDiagnostics.toString()};`,
    'const { port, done, tsMorph, entry, options } = workerData;',
    'let reply;',
    'try { reply = { diagnostics: collect(require(tsMorph), entry, options) }; } catch (e) { reply = { error: String(e && e.stack || e) }; }',
    'port.postMessage(reply);',
    'Atomics.store(done, 0, 1);',
    'Atomics.notify(done, 0);',
  ].join('\n');
  const worker = new Worker(code, {
    eval: true,
    workerData: { port: port2, done, tsMorph: require.resolve('ts-morph'), entry, options: OPTIONS },
    transferList: [port2],
    resourceLimits: { stackSizeMb: 512 },
  });
  try {
    if (Atomics.wait(done, 0, 0, 600_000) === 'timed-out') throw new Error('internal: the type check did not finish in 10 minutes');
    const reply = receiveMessageOnPort(port1)?.message as { diagnostics?: RawDiagnostic[]; error?: string } | undefined;
    if (!reply?.diagnostics) throw new Error(`internal: the type check failed: ${reply?.error ?? 'no reply'}`);
    return reply.diagnostics;
  } finally {
    void worker.terminate();
    port1.close();
  }
}

/** The type errors of a model file and its imports, as located CompileErrors (files relative to `dir`). */
export function typeErrors(entry: string, dir: string): CompileError[] {
  let diagnostics: RawDiagnostic[];
  try {
    diagnostics = collectDiagnostics(tsMorph, entry, OPTIONS);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    diagnostics = collectOnBigStack(entry);
  }
  const own = (f: string) => OWN.some((d) => path.resolve(f).startsWith(d)) || f.includes(`${path.sep}node_modules${path.sep}`);
  return diagnostics
    .filter((d) => !own(d.file))
    .map(
      (d) =>
        new CompileError(`TS${d.code}: ${flatTsMessage(d.text)}`, 'fix the type error: the model must type-check against the graphc DSL', {
          file: path.relative(dir, d.file).split(path.sep).join('/'),
          line: d.line,
          col: d.col,
        }),
    );
}

/** The first type error, mentioning how many more there are. */
export function firstTypeError(errors: readonly CompileError[]): CompileError {
  const first = errors[0]!;
  const more = errors.length - 1;
  return more ? new CompileError(`${first.message} (and ${more} more type error${more > 1 ? 's' : ''})`, first.hint, first.loc) : first;
}
