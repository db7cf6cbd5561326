// ts-morph, and the TypeScript it carries: the one copy of TypeScript that loading a model runs
// (transpiling it, type-checking it, reading its calls, and `graphc graph`'s scopes).
//
// Loaded with require on first use, not with an ESM `import`: importing a CommonJS package from
// an ES module makes Node compile the file once more to detect its format (the package has no
// "type") and lex the whole of it for its export names (cjs-module-lexer). Measured on a busy
// 2-core machine (medians of 4): `import('ts-morph')` 1.5 s, `require('ts-morph')` 0.9 s; for the
// `typescript` package, which a build now loads only to strip the types of a symbolic wasm module
// or of --hvp/--jvp's (codegen/wasm/symbolic.ts; src/scopes.ts parses with ts-morph's), 1.8 s
// against 0.7 s. On first use: a command that fails before it loads a model (a usage
// error, --help) loads none.

import { createRequire } from 'node:module';
import type * as TsMorph from 'ts-morph';

const require = createRequire(import.meta.url);

let loaded: typeof TsMorph | undefined;

/** The ts-morph package (loaded once). */
export function tsMorph(): typeof TsMorph {
  return (loaded ??= require('ts-morph') as typeof TsMorph);
}

/** ts-morph's TypeScript (its `ts` export). */
export function tsApi(): typeof TsMorph.ts {
  return tsMorph().ts;
}
