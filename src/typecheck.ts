// Type-checks a model file (and the files it imports) with TypeScript, `graphc` resolved to this
// compiler's own DSL types, so that a type error is reported as TypeScript's own diagnostic at
// its line rather than as whatever it would break at run time.

import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { ts } from 'ts-morph';
import { CompileError } from '../ir/errors.js';
import { Tensor, Tracer } from './dsl.js';
import { tsApi } from './tsmorph.js';

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
  const parts = tsApi()
    .flattenDiagnosticMessageText(text, '\n')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  return parts.map((l, i) => (i < parts.length - 1 && !/[.:;!?]$/.test(l) ? `${l}.` : l)).join(' ');
}

/**
 * Node's types (@types/node, a dependency of graphc): a model file is a Node program, which
 * may read `process.env` or a file with `node:fs` while it builds the model. Resolved from
 * this compiler's own location, so that the user's project needs no @types/node of its own
 * (undefined if they are missing).
 */
function nodeTypeRoots(): { typeRoots: string[]; types: string[] } | undefined {
  try {
    const dir = path.dirname(require.resolve('@types/node/package.json'));
    return { typeRoots: [path.dirname(dir)], types: ['node'] };
  } catch {
    return undefined;
  }
}

const NODE_TYPES = nodeTypeRoots();

let options: { plain: ts.CompilerOptions; node: ts.CompilerOptions | undefined } | undefined;

/**
 * The compiler options of the check (made on first use: TypeScript's enums are ts-morph's, loaded
 * on first use).
 *
 * `plain`: `strict: true` as `tsc --init` writes it (so that code that type-checks in the user's
 * editor type-checks here: `const outs = []; outs.push(t)` is an evolving array only under
 * noImplicitAny), and `graphc` resolves to this compiler's own DSL types.
 *
 * `node`: the same with Node's types. Reading them costs about 1 s of CPU in a process (2 MB of
 * declarations), so a check runs without them first, and again with them only when it finds
 * an error that Node's declarations could remove (NODE_NAMES): a model that uses no Node API,
 * or none wrongly, does not pay for them, and one that does is checked as a Node program.
 */
function checkOptions(): { plain: ts.CompilerOptions; node: ts.CompilerOptions | undefined } {
  if (options) return options;
  const ts = tsApi();
  const plain: ts.CompilerOptions = {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    resolveJsonModule: true,
    esModuleInterop: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    lib: ['lib.es2022.d.ts'],
    paths: { graphc: [DSL_TYPES] },
  };
  return (options = { plain, node: NODE_TYPES && { ...plain, ...NODE_TYPES } });
}

/**
 * The errors that Node's types may remove: a name or module not found (`process`, `node:fs`,
 * `console`, `NodeJS.*`, with or without TypeScript's advice to install @types/node), a property
 * not found (`import.meta.dirname`).
 */
const NODE_NAMES = new Set([2304, 2307, 2339, 2503, 2552, 2580, 2584, 2591, 2592, 2593, 2792, 2867, 2868]);

/** One error diagnostic, as plain data (it may come from another thread). */
export interface RawDiagnostic {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly code: number;
  /** TypeScript's message, a chained one flattened with '\n'. */
  readonly text: string;
}

/**
 * The check itself, written as a function of its own source text so that it can also run in a
 * worker thread: `common` is ts-morph's TypeScript with its standard library, `options` the compiler options, `shared` the
 * compiler's own folders: their files and node_modules' (the standard library's declarations
 * among them) are not the user's.
 *
 * Only the user's files are checked: the compiler's sources are read for the types they declare
 * and never checked themselves (checking all of them took seconds per build). Their parsed files
 * are kept in `cache` and shared by every later check of the process (a build of several models,
 * a test run): a source file parsed and bound under the same options can be reused by a new
 * program, as TypeScript's language service does.
 */
function collectDiagnostics(
  common: TsCommon,
  entry: string,
  options: ts.CompilerOptions,
  shared: readonly string[],
  cache: Map<string, ts.SourceFile>,
): RawDiagnostic[] {
  const tsLib = common.ts;
  const isShared = (f: string) => f.includes('/node_modules/') || shared.some((d) => f.startsWith(d));
  // the standard library's declarations, which ts-morph's TypeScript carries in memory
  const libDir = common.libFolderInMemoryPath;
  const libs = new Map(common.getLibFiles().map((f) => [`${libDir}/${f.fileName}`, f.text]));
  const host = tsLib.createCompilerHost(options, true);
  // JSDoc comments of .ts files left unparsed, as tsc does (they make no error; the DSL's
  // declarations are full of them): 10% less parsing, 30 ms of a build's check
  host.jsDocParsingMode = tsLib.JSDocParsingMode.ParseForTypeErrors;
  const read = host.getSourceFile.bind(host);
  const { fileExists, readFile } = host;
  host.getDefaultLibLocation = () => libDir;
  host.getDefaultLibFileName = (o) => `${libDir}/${tsLib.getDefaultLibFileName(o)}`;
  host.fileExists = (f) => libs.has(f) || fileExists.call(host, f);
  host.readFile = (f) => libs.get(f) ?? readFile.call(host, f);
  host.getSourceFile = (fileName, version, onError, fresh) => {
    if (!isShared(fileName)) return read(fileName, version, onError, fresh);
    let sf = cache.get(fileName);
    if (sf === undefined) {
      const lib = libs.get(fileName);
      sf = lib !== undefined ? tsLib.createSourceFile(fileName, lib, version, true) : read(fileName, version, onError, fresh);
      if (sf !== undefined) cache.set(fileName, sf);
    }
    return sf;
  };
  const program = tsLib.createProgram({ rootNames: [entry], options, host });
  const mine = program.getSourceFiles().filter((sf) => !isShared(sf.fileName));
  const all = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...mine.flatMap((sf) => [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]),
  ];
  const out: RawDiagnostic[] = [];
  for (const d of all) {
    if (d.category !== tsLib.DiagnosticCategory.Error || !d.file) continue;
    const lc = tsLib.getLineAndCharacterOfPosition(d.file, d.start ?? 0);
    const text = tsLib.flattenDiagnosticMessageText(d.messageText, '\n');
    out.push({ file: d.file.fileName, line: lc.line + 1, col: lc.character + 1, code: d.code, text });
  }
  return out;
}

/** What the check needs of `@ts-morph/common`: ts-morph's TypeScript and its in-memory standard library. */
interface TsCommon {
  readonly ts: typeof ts;
  readonly libFolderInMemoryPath: string;
  getLibFiles(): readonly { readonly fileName: string; readonly text: string }[];
}
/** Where ts-morph's own dependency is resolved from (the check runs the TypeScript that ts-morph carries). */
const TS_MORPH = require.resolve('ts-morph');
/** `@ts-morph/common`, the package whose TypeScript ts-morph exports (tsApi()'s), loaded on first use. */
let common: TsCommon | undefined;

/** The parsed files of the compiler's sources and node_modules, shared by the checks of this process. */
const SHARED_FILES = new Map<string, ts.SourceFile>();

/** The compiler's own folders as TypeScript spells file names ('/'-separated). */
const OWN_TS = OWN.map((d) => d.split(path.sep).join('/'));

/**
 * The same check in a worker thread with a 512 MB stack, waited for synchronously. TypeScript
 * infers a const's type from its initializer on demand, and the contextual type of the model
 * function makes it check the returned loss first: in a 1000-layer MLP that recursion goes
 * through every layer and overflows the main thread's stack.
 */
function collectOnBigStack(entry: string, options: ts.CompilerOptions): RawDiagnostic[] {
  const done = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const code = [
    "const { workerData } = require('node:worker_threads');",
    `const collect = ${collectDiagnostics.toString()};`,
    "const { createRequire } = require('node:module');",
    'const { port, done, tsMorph, entry, options, shared } = workerData;',
    'let reply;',
    'try { reply = { diagnostics: collect(createRequire(tsMorph)("@ts-morph/common"), entry, options, shared, new Map()) }; } catch (e) { reply = { error: String(e && e.stack || e) }; }',
    'port.postMessage(reply);',
    'Atomics.store(done, 0, 1);',
    'Atomics.notify(done, 0);',
  ].join('\n');
  const worker = new Worker(code, {
    eval: true,
    workerData: { port: port2, done, tsMorph: TS_MORPH, entry, options, shared: OWN_TS },
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

/**
 * What noImplicitAny alone reports ("implicitly has an 'any' type": a helper's untyped parameter,
 * an untyped index, an untyped `this`): accepted, as graphc always has, so that strict mode only
 * adds what the user's editor accepts and nothing it would not.
 */
const IMPLICIT_ANY = new Set([2683, 7005, 7006, 7008, 7010, 7011, 7015, 7017, 7018, 7019, 7022, 7023, 7024, 7031, 7034, 7041, 7052, 7053]);

/** The names the DSL's types offer, for "did you mean" (Tensor's methods, and g's). */
function dslNames(type: string): readonly string[] | undefined {
  if (type === 'Tensor')
    return Object.getOwnPropertyNames(Tensor.prototype).filter((n) => n !== 'constructor' && n !== 'op' && !n.startsWith('_'));
  if (type === 'GraphBuilder') return Object.keys(Tracer.prototype.api.call({} as Tracer));
  return undefined;
}

/** The optimal-string-alignment distance (Levenshtein with adjacent transpositions: tahn → tanh is 1). */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  return d[a.length]![b.length]!;
}

/** The nearest DSL name to a misspelled one, if one is near enough (a third of its letters, at least 1, ignoring case). */
export function nearestName(name: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const n of names) {
    const dist = editDistance(name.toLowerCase(), n.toLowerCase());
    if (dist < bestD) [best, bestD] = [n, dist];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

/** How to fix a type error: the nearest DSL name for a misspelled method (TS2339 gives none). */
function fixOf(d: RawDiagnostic): string {
  const m = d.code === 2339 ? /^Property '([^']+)' does not exist on type '(\w+)'/.exec(d.text) : null;
  const names = m ? dslNames(m[2]!) : undefined;
  const near = m && names ? nearestName(m[1]!, names) : undefined;
  if (near) return `did you mean ${near}? (${m![2] === 'Tensor' ? `x.${near}(...)` : `g.${near}(...)`} is the nearest name the DSL has)`;
  return 'fix the type error: the model must type-check against the graphc DSL';
}

/**
 * TypeScript's "Cannot find name 'process'. Do you need to install type definitions for node?
 * Try `npm i --save-dev @types/node` and then add 'node' to the types field in your tsconfig."
 * (TS2580, TS2591): the check has Node's types, so this only happens when graphc's own
 * @types/node is missing, and neither step of TypeScript's advice would help (the check reads
 * no tsconfig). Its first sentence is kept, with the fix that does help.
 */
const NODE_TYPES_MISSING = new Set([2580, 2591]);

/** One diagnostic as a located CompileError (its file relative to `dir`). */
export function typeError(d: RawDiagnostic, dir: string): CompileError {
  const loc = { file: path.relative(dir, d.file).split(path.sep).join('/'), line: d.line, col: d.col };
  if (NODE_TYPES_MISSING.has(d.code)) {
    const first = /^[^\n]*?\.(?= Do you need)/.exec(d.text)?.[0] ?? flatTsMessage(d.text);
    return new CompileError(`TS${d.code}: ${first}`, "graphc checks a model with Node's types (its dependency @types/node), which were not found: reinstall graphc (npm install graphc)", loc);
  }
  return new CompileError(`TS${d.code}: ${flatTsMessage(d.text)}`, fixOf(d), loc);
}

/** The diagnostics of one check under `options` (on a big stack where the main thread's overflows). */
function collect(entry: string, options: ts.CompilerOptions): RawDiagnostic[] {
  try {
    common ??= createRequire(TS_MORPH)('@ts-morph/common') as TsCommon;
    return collectDiagnostics(common, entry, options, OWN_TS, SHARED_FILES);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    return collectOnBigStack(entry, options);
  }
}

/** The type errors of a model file and its imports, as located CompileErrors (files relative to `dir`). */
export function typeErrors(entry: string, dir: string): CompileError[] {
  const own = (f: string) => OWN.some((d) => path.resolve(f).startsWith(d)) || f.includes(`${path.sep}node_modules${path.sep}`);
  const users = (ds: RawDiagnostic[]) => ds.filter((d) => !own(d.file) && !IMPLICIT_ANY.has(d.code));
  const { plain, node } = checkOptions();
  let diagnostics = users(collect(entry, plain));
  if (node && diagnostics.some((d) => NODE_NAMES.has(d.code))) diagnostics = users(collect(entry, node));
  return diagnostics.map((d) => typeError(d, dir));
}

/** How many type errors a build shows; the rest are counted. */
export const MAX_TYPE_ERRORS = 10;

/** The first type error, with the next ones (up to MAX_TYPE_ERRORS in all) shown after it. */
export function firstTypeError(errors: readonly CompileError[]): CompileError {
  const first = errors[0]!;
  const hidden = errors.length - MAX_TYPE_ERRORS;
  const e = hidden > 0 ? new CompileError(first.message, first.hint, first.loc) : first;
  e.also = errors.slice(1, MAX_TYPE_ERRORS);
  if (hidden > 0) e.trailer = `(and ${hidden} more type error${hidden > 1 ? 's' : ''} not shown)`;
  return e;
}
