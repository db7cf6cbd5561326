// Loads a model file: transpiles its TypeScript (with a source map), runs it with `graphc`
// resolved to this compiler's own DSL wherever the file lives, and supplies the call sites
// (location and assigned variable) of every DSL call.

import { readFileSync, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as vm from 'node:vm';
import type { ts } from 'ts-morph';
import { CompileError } from '../ir/errors.js';
import type { Loc } from '../ir/types.js';
import type { CallSites, ModelDef } from './dsl.js';
import type { Frame } from './scopes.js';
import { isModelDef } from './dsl.js';
import * as publicApi from './index.js';
import type { CallSite } from './names.js';
import { defaultExportAt, FileCalls, modelCallAt } from './names.js';
import { firstTypeError, flatTsMessage, typeErrors } from './typecheck.js';
import type { LineMap } from './sourcemap.js';
import { decodeMappings, originalPosition } from './sourcemap.js';
import { tsApi } from './tsmorph.js';

interface SourceFileInfo {
  readonly text: string;
  readonly map: LineMap;
  /** The transpiled code's lines, as V8 runs them. */
  readonly code: readonly string[];
  /** The file's calls, by every position V8 may report for them (parsed when first needed). */
  calls?: FileCalls;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface LoadedModel {
  readonly def: ModelDef;
  readonly loader: Loader;
  /** Absolute path of the model file. */
  readonly file: string;
  readonly sites: CallSites;
  /** Source text of a file named by a Loc (relative to the model's folder). */
  sourceOf(locFile: string): string | undefined;
  /** The path of a Loc's file as the user should see it (relative to the working directory). */
  displayPath(locFile: string): string;
  /** The time limit of tracing, in ms. */
  readonly timeout?: number;
}

const FRAMES = Symbol('graphc.frames');
type Frames = NodeJS.CallSite[];

/** Runs f with structured stack frames recorded on every Error created meanwhile. */
function withFrames<T>(f: () => T): T {
  const prevPrepare = Error.prepareStackTrace;
  const prevLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 64;
  Error.prepareStackTrace = (err, frames) => {
    if (err && typeof err === 'object') (err as unknown as Record<symbol, Frames>)[FRAMES] = frames;
    return `${String(err)}\n${frames.map((c) => `    at ${c.toString()}`).join('\n')}`;
  };
  try {
    return f();
  } finally {
    Error.prepareStackTrace = prevPrepare;
    Error.stackTraceLimit = prevLimit;
  }
}

/** The frames of the current call stack. */
function stackHere(): Frames {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, stackHere);
  return framesOf(holder);
}

function framesOf(e: unknown): Frames {
  if (!e || typeof e !== 'object') return [];
  void (e as { stack?: unknown }).stack; // formatting the stack records the frames
  return (e as Record<symbol, Frames>)[FRAMES] ?? [];
}

export class Loader {
  private readonly files = new Map<string, SourceFileInfo>();
  private readonly modules = new Map<string, { exports: unknown }>();
  readonly dir: string;

  /** The last value thrown by a `throw` of the user's code that is not an Error, and where. */
  private thrown: { value: unknown; loc: Loc; frames: Frames } | undefined;

  /** Where the last DSL call was made (the line named when the time limit stops a model). */
  lastCall: Loc | undefined;
  /** Whether lastCall is a loop's iteration rather than a DSL call. */
  lastInLoop = false;

  constructor(readonly entry: string) {
    this.dir = path.dirname(entry);
  }

  /** The absolute paths of every source file loaded (the model and what it imports). */
  loadedFiles(): string[] {
    return [...this.files.keys()];
  }

  /** Display path of an absolute file, relative to the model's folder (stable across machines). */
  private rel(abs: string): string {
    return path.relative(this.dir, abs).split(path.sep).join('/');
  }

  private calls(abs: string): FileCalls | undefined {
    const info = this.files.get(abs);
    if (!info) return undefined;
    return (info.calls ??= new FileCalls(abs, info.text));
  }

  private callAt(abs: string, line: number, col: number): CallSite | undefined {
    return this.calls(abs)?.at(line, col);
  }

  /**
   * Maps a stack frame to the user's source, if it lies in a loaded model file. A frame of a
   * call is located at the call's method name (V8 reports the '(' of `g.const(...)`).
   */
  locOf(frame: NodeJS.CallSite): Loc | undefined {
    const file = frame.getFileName();
    const info = file ? this.files.get(file) : undefined;
    if (!file || !info) return undefined;
    const pos = originalPosition(info.map, frame.getLineNumber() ?? 0, frame.getColumnNumber() ?? 0);
    if (!pos) return undefined;
    const call = this.callAt(file, pos.line, pos.col);
    return { file: this.rel(file), line: call?.line ?? pos.line, col: call?.col ?? pos.col };
  }

  /**
   * The user's call that a frame stack leads to, at the call's method name: the frame's position
   * may lie anywhere in the call's text (V8 reports `model(...)`, compiled to
   * `(0, graphc_1.model)(...)`, after its '(').
   */
  callerLoc(frames: Frames): Loc | undefined {
    for (const f of frames) {
      const loc = this.callOf(f);
      if (loc) return loc;
    }
    return undefined;
  }

  /**
   * The call a frame of a loaded file is in, at its method name. A call through an import
   * binding runs as `(0, lib_1.f)(...)`, which V8 reports at its argument list's '(': that maps
   * into the first argument, which may be a call of its own, so the call is the one whose
   * argument list holds the position.
   */
  private callOf(frame: NodeJS.CallSite): Loc | undefined {
    const at = this.frameCall(frame);
    if (!at) return undefined;
    const { loc, abs, throughBinding } = at;
    if (at.site) return { file: loc.file, line: at.site.line, col: at.site.col };
    const call = this.calls(abs)?.enclosing(loc.line, loc.col, throughBinding);
    return call ? { file: loc.file, line: call.line, col: call.col } : loc;
  }

  /**
   * The call a frame is making, when the frame's position is one V8 reports for a call: its
   * callee or method name, or the '(' of a call through an import binding or of a callee that is
   * an expression (`makeLayer(4)(x)`). A getter's or a constructor's frame makes no call here.
   */
  private frameCall(frame: NodeJS.CallSite): { loc: Loc; abs: string; throughBinding: boolean; site?: CallSite } | undefined {
    const loc = this.locOf(frame);
    if (!loc) return undefined;
    const abs = path.resolve(this.dir, loc.file);
    const code = this.files.get(abs)?.code[(frame.getLineNumber() ?? 0) - 1] ?? '';
    const at = (frame.getColumnNumber() ?? 0) - 1;
    const throughBinding = code[at] === '(' && /\)\s*$/.test(code.slice(0, at));
    const site = this.callAt(abs, loc.line, loc.col);
    if (site && (!throughBinding || site.atParen)) return { loc, abs, throughBinding, site };
    return { loc, abs, throughBinding, site: throughBinding ? this.calls(abs)?.enclosing(loc.line, loc.col, true) : undefined };
  }

  firstUserLoc(frames: Frames): Loc | undefined {
    for (const f of frames) {
      const loc = this.locOf(f);
      if (loc) return loc;
    }
    return undefined;
  }

  readonly sites: CallSites = {
    here: () => {
      const loc = this.firstUserLoc(stackHere());
      if (loc) [this.lastCall, this.lastInLoop] = [loc, false];
      return loc;
    },
    current: () => {
      const frames = stackHere();
      for (let i = 0; i < frames.length; i++) {
        const loc = this.locOf(frames[i]!);
        if (loc) {
          [this.lastCall, this.lastInLoop] = [loc, false];
          return { loc, name: this.bindingOf(frames, i, loc) };
        }
      }
      return {};
    },
    frames: () => {
      const frames = stackHere();
      const out: Frame[] = [];
      for (let i = 0; i < frames.length; i++) {
        const loc = this.locOf(frames[i]!);
        if (!loc) continue;
        const next = frames[i + 1];
        out.push({ loc, fn: frames[i]!.getFunctionName() ?? undefined, direct: next !== undefined && this.locOf(next) !== undefined });
      }
      return out;
    },
  };

  /**
   * The variable the value of the call at `loc` (frame i) is assigned to. A value its function
   * returns is named by the caller's variable, frame by frame while each frame is the user's
   * direct caller making a call (a frame of the library or the runtime between them, as in
   * `xs.map(f)`, or a getter's frame stops the walk: which call it made cannot be told).
   */
  private bindingOf(frames: Frames, i: number, loc: Loc): string | undefined {
    let site = this.callAt(path.resolve(this.dir, loc.file), loc.line, loc.col);
    for (let j = i + 1; site && !site.name && site.returned && j < frames.length; j++) site = this.frameCall(frames[j]!)?.site;
    return site?.name;
  }

  sourceOf(locFile: string): string | undefined {
    return this.files.get(path.resolve(this.dir, locFile))?.text;
  }

  /** The entry's transpiled code, from syntaxCheck until require runs it (it is transpiled once). */
  private checked: { abs: string; text: string; out: ts.TranspileOutput } | undefined;

  /** Throws TypeScript's diagnostic for a syntax error in the file. */
  syntaxCheck(abs: string): void {
    this.checked = { abs, ...this.transpile(abs) };
  }

  private transpile(abs: string): { text: string; out: ts.TranspileOutput } {
    const ts = tsApi();
    const text = readFileSync(abs, 'utf8');
    const out = ts.transpileModule(text, {
      fileName: abs,
      reportDiagnostics: true,
      transformers: { before: [markThrows] },
      compilerOptions: {
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ES2022,
        sourceMap: true,
        esModuleInterop: true,
        allowJs: true,
      },
    });
    const diag = out.diagnostics?.find((d) => d.category === ts.DiagnosticCategory.Error);
    if (diag) throw tsDiagnostic(diag, this.rel(abs));
    const awaitAt = topLevelAwait(abs, text);
    if (awaitAt)
      throw new CompileError(
        'top-level await: a model file is loaded synchronously (as a CommonJS module), so it cannot await',
        'compute the value without await (e.g. readFileSync instead of fs.promises.readFile), or pass the data as an input of the model',
        { file: this.rel(abs), ...awaitAt },
      );
    return { text, out };
  }

  /** Loads (transpiles and runs) a TypeScript or JavaScript module; cached by path. */
  require(abs: string): unknown {
    const cached = this.modules.get(abs);
    if (cached) return cached.exports;
    const { text, out } = this.checked?.abs === abs ? this.checked : this.transpile(abs);
    this.checked = undefined;
    const map = decodeMappings((JSON.parse(out.sourceMapText ?? '{"mappings":""}') as { mappings: string }).mappings);
    const code = out.outputText.replace(/\/\/# sourceMappingURL=.*$/m, '');
    this.files.set(abs, { text, map, code: code.split('\n') });
    const module = { exports: {} as unknown };
    this.modules.set(abs, module);
    let fn: ReturnType<typeof vm.compileFunction>;
    try {
      fn = vm.compileFunction(code, ['exports', 'require', 'module', '__filename', '__dirname', THROWN, LOOP], { filename: abs });
    } catch (e) {
      throw this.syntaxError(e, abs) ?? e;
    }
    const req = (spec: string) => this.resolve(spec, abs);
    // every `throw v` runs as `throw __graphc_thrown(v, line, col)`: a thrown string has no stack
    const thrown = (v: unknown, line: number, col: number) => {
      if (!(v instanceof Error)) this.thrown = { value: v, loc: { file: this.rel(abs), line, col }, frames: stackHere() };
      return v;
    };
    // and every loop's body starts with `__graphc_loop(line, col)`: where an endless loop runs
    const loop = (line: number, col: number) => {
      this.lastCall = { file: this.rel(abs), line, col };
      this.lastInLoop = true;
    };
    fn.call(module.exports, module.exports, req, module, abs, path.dirname(abs), thrown, loop);
    return module.exports;
  }

  /**
   * V8's syntax error in a transpiled file (what TypeScript's parser lets through, in a .js file:
   * `await` outside an async function, a name declared twice), at its place in the source: V8's
   * stack starts with `file:line`, the line and a caret under the place.
   */
  private syntaxError(e: unknown, abs: string): CompileError | undefined {
    if (!(e instanceof SyntaxError) || typeof e.stack !== 'string') return undefined;
    const [first, , caret] = e.stack.split('\n');
    const m = first?.startsWith(abs + ':') ? /:(\d+)$/.exec(first) : null;
    const info = this.files.get(abs);
    if (!m || !info) return undefined;
    const col = Math.max(0, caret?.indexOf('^') ?? 0) + 1;
    const pos = originalPosition(info.map, Number(m[1]), col);
    return new CompileError(`SyntaxError: ${e.message}`, 'fix the syntax error at this line', pos ? { file: this.rel(abs), line: pos.line, col: pos.col } : undefined);
  }

  private resolve(spec: string, from: string): unknown {
    if (spec === 'graphc') return publicApi;
    if (spec.startsWith('.') || path.isAbsolute(spec)) {
      const base = path.resolve(path.dirname(from), spec);
      const candidates = [base, base.replace(/\.js$/, '.ts'), base + '.ts', path.join(base, 'index.ts')];
      const hit = candidates.find((c) => existsSync(c) && statSync(c).isFile());
      if (hit && /\.(ts|mts|cts)$/.test(hit)) return this.require(hit);
    }
    return createRequire(from)(spec);
  }

  /** Runs f with structured stack frames recorded on errors (to locate user exceptions). */
  withFrames<T>(f: () => T): T {
    return withFrames(f);
  }

  /**
   * Runs the user's code f under a time limit: V8's watchdog stops it after `ms` even inside an
   * endless loop, and the error names what was running and the last DSL call it made, or
   * `fallback()` before any (found only then: the model's default export takes a parse).
   */
  withTimeLimit<T>(ms: number, what: string, fallback: () => Loc, f: () => T): T {
    try {
      return vm.runInNewContext('run()', { run: f }, { timeout: ms }) as T;
    } catch (e) {
      if ((e as { code?: unknown })?.code !== 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw e;
      const at = this.lastCall;
      const where = !at ? 'before its first DSL call or loop' : this.lastInLoop ? 'in the loop at this line' : 'after its last DSL call, at this line';
      throw new CompileError(
        `${what} did not finish within ${ms / 1000} s (an endless loop?); it was stopped ${where}`,
        `${at && this.lastInLoop ? "check the loop's condition: it never becomes false" : 'look for a loop that never ends after this line'}, or allow more time with --trace-timeout SECONDS`,
        at ?? fallback(),
      );
    }
  }

  /**
   * Turns an exception thrown by user code into a located CompileError; a CompileError without
   * a location (thrown by a DSL function such as model(...)) is located at the user's call.
   */
  located(e: unknown): CompileError {
    const frames = framesOf(e);
    let err: CompileError;
    if (e instanceof CompileError) err = e.loc ? e : e.withLoc(this.callerLoc(frames));
    else if (!(e instanceof Error) && this.thrown && Object.is(this.thrown.value, e)) {
      const { loc, frames: at } = this.thrown;
      err = new CompileError(`the model threw ${thrownText(e)}`, 'fix the model code at this line (throw new Error(...) also gives a stack)', loc);
      err.via = this.callChain(at, loc);
    } else {
      const what = e instanceof Error ? `${e.name}: ${e.message}` : thrownText(e);
      const overflow = e instanceof RangeError && /call stack/.test(e.message);
      err = new CompileError(`the model threw ${what}`, overflow ? 'a function here calls itself without end: check the condition that ends the recursion' : 'fix the model code at this line', this.firstUserLoc(frames));
    }
    if (err.loc && err.via.length === 0) err.via = this.callChain(frames, err.loc);
    return err;
  }

  /** The user's calls that led to `loc` (the frames after the one at loc), one per line. */
  private callChain(frames: Frames, loc: Loc): Loc[] {
    const locs = frames.map((f) => this.callOf(f)).filter((l): l is Loc => l !== undefined);
    const at = locs.findIndex((l) => l.file === loc.file && l.line === loc.line);
    const chain: Loc[] = [];
    for (const l of at < 0 ? [] : locs.slice(at + 1)) {
      const prev = chain.at(-1) ?? loc;
      if (l.file !== prev.file || l.line !== prev.line) chain.push(l);
    }
    return chain;
  }
}

const THROWN = '__graphc_thrown';
const LOOP = '__graphc_loop';

/** A thrown value that is not an Error, as the message shows it. */
function thrownText(v: unknown): string {
  if (typeof v === 'string') return `a string: ${JSON.stringify(v)}`;
  if (v === null || v === undefined) return String(v);
  if (typeof v !== 'object') return `the ${typeof v} ${String(v)}`;
  try {
    return `an object ${JSON.stringify(v)?.slice(0, 80) ?? ''}`.trim();
  } catch {
    return 'an object';
  }
}

/**
 * Rewrites `throw v` as `throw __graphc_thrown(v, line, col)`, with the throw's position, and starts
 * each loop's body with `__graphc_loop(line, col)` (the time limit names the loop it stopped in).
 */
const markThrows: ts.TransformerFactory<ts.SourceFile> = (ctx) => (sf) => {
  const ts = tsApi();
  const visit = (node: ts.Node): ts.Node => {
    if (ts.isIterationStatement(node, false)) {
      const at = sf.getLineAndCharacterOfPosition(node.getStart(sf));
      const inner = ts.visitEachChild(node, visit, ctx) as ts.IterationStatement;
      const f = ctx.factory;
      const mark = f.createExpressionStatement(f.createCallExpression(f.createIdentifier(LOOP), undefined, [f.createNumericLiteral(at.line + 1), f.createNumericLiteral(at.character + 1)]));
      const body = ts.isBlock(inner.statement) ? f.updateBlock(inner.statement, [mark, ...inner.statement.statements]) : f.createBlock([mark, inner.statement], true);
      if (ts.isWhileStatement(inner)) return f.updateWhileStatement(inner, inner.expression, body);
      if (ts.isDoStatement(inner)) return f.updateDoStatement(inner, body, inner.expression);
      if (ts.isForStatement(inner)) return f.updateForStatement(inner, inner.initializer, inner.condition, inner.incrementor, body);
      if (ts.isForOfStatement(inner)) return f.updateForOfStatement(inner, inner.awaitModifier, inner.initializer, inner.expression, body);
      if (ts.isForInStatement(inner)) return f.updateForInStatement(inner, inner.initializer, inner.expression, body);
      return inner;
    }
    if (ts.isThrowStatement(node)) {
      const at = sf.getLineAndCharacterOfPosition(node.getStart(sf));
      const inner = ts.visitEachChild(node, visit, ctx);
      const f = ctx.factory;
      return f.updateThrowStatement(inner, f.createCallExpression(f.createIdentifier(THROWN), undefined, [inner.expression, f.createNumericLiteral(at.line + 1), f.createNumericLiteral(at.character + 1)]));
    }
    return ts.visitEachChild(node, visit, ctx);
  };
  return ts.visitNode(sf, visit) as ts.SourceFile;
};

/** Where the file awaits outside any function (`await x` or `for await` at the top level). */
function topLevelAwait(abs: string, text: string): { line: number; col: number } | undefined {
  if (!/\bawait\b/.test(text)) return undefined;
  const ts = tsApi();
  const sf = ts.createSourceFile(abs, text, ts.ScriptTarget.ES2022, true);
  let found: ts.Node | undefined;
  const visit = (node: ts.Node): void => {
    if (found || ts.isFunctionLike(node) || ts.isClassLike(node)) return;
    if (ts.isAwaitExpression(node) || (ts.isForOfStatement(node) && node.awaitModifier)) found = node;
    else ts.forEachChild(node, visit);
  };
  visit(sf);
  if (!found) return undefined;
  const lc = sf.getLineAndCharacterOfPosition(found.getStart(sf));
  return { line: lc.line + 1, col: lc.character + 1 };
}

export function tsDiagnostic(d: ts.Diagnostic, file: string): CompileError {
  const msg = flatTsMessage(d.messageText);
  let loc: Loc | undefined;
  if (d.file && d.start !== undefined) {
    const lc = d.file.getLineAndCharacterOfPosition(d.start);
    loc = { file, line: lc.line + 1, col: lc.character + 1 };
  }
  return new CompileError(`TS${d.code}: ${msg}`, 'fix the TypeScript error in the model file', loc);
}

/**
 * Loads a model file and returns its default-exported model definition. TypeScript's own
 * diagnostics come first: a syntax error, then a type error, before the model runs.
 */
/** The error for a file that calls model(...) but does not export it as the default, at the call. */
function noDefaultExport(call: NonNullable<ReturnType<typeof modelCallAt>>, file: string): CompileError {
  const loc = { file, line: call.line, col: call.col };
  if (call.exportedAs !== undefined)
    return new CompileError(
      `the model file has no default export: this model(...) is exported as '${call.exportedAs}'`,
      `graphc builds the default export: write export default in front of model(...) instead of export const ${call.variable} =, or add the line: export default ${call.variable};`,
      loc,
    );
  if (call.variable !== undefined)
    return new CompileError(
      `the model file has no default export: this model(...) is assigned to '${call.variable}' but not exported`,
      `graphc builds the default export: add the line: export default ${call.variable};`,
      loc,
    );
  return new CompileError('the model file has no default export: this model(...) is not exported', 'graphc builds the default export: write export default in front of model(...)', loc);
}

/** The default time limit of loading and tracing a model (--trace-timeout). */
export const TRACE_TIMEOUT_MS = 60_000;

export function loadModel(file: string, opts: { timeout?: number } = {}): LoadedModel {
  const abs = path.resolve(file);
  if (!existsSync(abs) || !statSync(abs).isFile()) throw new UsageError(`no such model file: ${file}`);
  const loader = new Loader(abs);
  loader.syntaxCheck(abs);
  const errors = typeErrors(abs, loader.dir);
  if (errors.length) throw firstTypeError(errors);
  // located inside withFrames: the frames of an error are recorded when its stack is first read
  const timeout = opts.timeout ?? TRACE_TIMEOUT_MS;
  const exports = loader.withFrames(() =>
    loader.withTimeLimit(timeout, `loading the model file ${path.basename(abs)}`, () => ({ file: path.basename(abs), line: 1, col: 1 }), () => {
      try {
        return loader.require(abs);
      } catch (e) {
        throw loader.located(e);
      }
    }),
  );
  const def = (exports as { default?: unknown } | undefined)?.default;
  if (!isModelDef(def)) {
    const text = loader.sourceOf(path.basename(abs)) ?? '';
    const call = def === undefined ? modelCallAt(abs, text) : undefined;
    if (call) throw noDefaultExport(call, path.basename(abs));
    const at = defaultExportAt(abs, text);
    throw new CompileError(
      def === undefined ? 'the model file has no default export' : 'the default export of the model file is not model(...)',
      "end the file with: export default model('name', (g) => { ... })",
      { file: path.basename(abs), line: at.line, col: at.col },
    );
  }
  return {
    def,
    file: abs,
    sites: loader.sites,
    sourceOf: (f: string) => loader.sourceOf(f),
    displayPath: (f: string) => path.relative(process.cwd(), path.resolve(loader.dir, f)).split(path.sep).join('/') || f,
    loader,
    timeout,
  };
}
