// Type-checks a model file (and the files it imports) with TypeScript, `graphc` resolved to this
// compiler's own DSL types, so that a type error is reported as TypeScript's own diagnostic at
// its line rather than as whatever it would break at run time.

import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Project, ts } from 'ts-morph';
import { CompileError } from '../ir/errors.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
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

/** The type errors of a model file and its imports, as located CompileErrors (files relative to `dir`). */
export function typeErrors(entry: string, dir: string): CompileError[] {
  const project = new Project({
    skipAddingFilesFromTsConfig: true,
    compilerOptions: {
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
    },
  });
  project.addSourceFileAtPath(entry);
  project.resolveSourceFileDependencies();
  const own = (f: string) => OWN.some((d) => path.resolve(f).startsWith(d)) || f.includes(`${path.sep}node_modules${path.sep}`);
  const out: CompileError[] = [];
  for (const d of project.getPreEmitDiagnostics()) {
    if (d.getCategory() !== ts.DiagnosticCategory.Error) continue;
    const sf = d.getSourceFile();
    if (!sf || own(sf.getFilePath())) continue;
    const start = d.getStart() ?? 0;
    const lc = sf.getLineAndColumnAtPos(start);
    const message = flatTsMessage(d.compilerObject.messageText);
    out.push(
      new CompileError(`TS${d.getCode()}: ${message}`, 'fix the type error: the model must type-check against the graphc DSL', {
        file: path.relative(dir, sf.getFilePath()).split(path.sep).join('/'),
        line: lc.line,
        col: lc.column,
      }),
    );
  }
  return out;
}

/** The first type error, mentioning how many more there are. */
export function firstTypeError(errors: readonly CompileError[]): CompileError {
  const first = errors[0]!;
  const more = errors.length - 1;
  return more ? new CompileError(`${first.message} (and ${more} more type error${more > 1 ? 's' : ''})`, first.hint, first.loc) : first;
}
