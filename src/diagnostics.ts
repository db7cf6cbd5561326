// Renders errors the way compilers do: `file:line:col: error: message`, the source line with a
// caret under the call, and how to fix it; the message and the fix are one line each.
//
//   examples/bad.ts:12:25: error: matmul: inner dimensions differ: f32[32,30] × f32[20,64] (30 ≠ 20)
//      12 |   const hprebn = embcat.matmul(W1).add(b1);
//         |                         ^^^^^^
//     fix: the left operand's last dimension must equal the right operand's first; ...
//
// An error inside a helper function adds a line for each call that led there:
// `  called from model.ts:11:13: const h = layer(x, 16);`.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { CompileError } from '../ir/errors.js';

export interface SourceAccess {
  sourceOf(locFile: string): string | undefined;
  displayPath(locFile: string): string;
}

/** Text on one line: line breaks (and the indentation after them) become one space. */
function oneLine(s: string): string {
  return s.replace(/[ \t]*(\r?\n|\r)\s*/g, ' ').trim();
}

export function formatDiagnostic(e: CompileError, src?: SourceAccess): string {
  const sev = e.severity;
  const message = oneLine(e.message);
  const lines: string[] = [];
  if (!e.loc) {
    lines.push(`${sev}: ${message}`);
  } else {
    const file = src ? src.displayPath(e.loc.file) : e.loc.file;
    lines.push(`${file}:${e.loc.line}:${e.loc.col}: ${sev}: ${message}`);
    const text = src?.sourceOf(e.loc.file)?.split(/\r?\n/)[e.loc.line - 1];
    if (text !== undefined) {
      const num = String(e.loc.line);
      const pad = ' '.repeat(num.length);
      const shown = text.replace(/\t/g, ' ');
      const start = Math.min(e.loc.col - 1, shown.length);
      const word = /^[\p{L}\p{N}_$]+/u.exec(shown.slice(start));
      const width = Math.max(1, word ? word[0].length : 1);
      lines.push(`  ${num} | ${shown}`);
      lines.push(`  ${pad} | ${' '.repeat(start)}${'^'.repeat(width)}`);
    }
  }
  for (const loc of e.via) {
    const text = src?.sourceOf(loc.file)?.split(/\r?\n/)[loc.line - 1]?.trim();
    lines.push(`  called from ${src ? src.displayPath(loc.file) : loc.file}:${loc.line}:${loc.col}${text ? `: ${text}` : ''}`);
  }
  if (e.hint) lines.push(`  fix: ${oneLine(e.hint)}`);
  for (const more of e.also) lines.push(formatDiagnostic(more, src));
  if (e.trailer) lines.push(e.trailer);
  return lines.join('\n');
}

/** Reads sources from disk; locations are paths from the working directory (IR files). */
export const cwdSources: SourceAccess = {
  sourceOf: (f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return undefined;
    }
  },
  displayPath: (f) => f,
};

/** Reads sources from disk; locations are relative to the model file's folder. */
export function diskSources(modelFile: string): SourceAccess {
  const dir = path.dirname(path.resolve(modelFile));
  return {
    sourceOf: (f) => {
      try {
        return readFileSync(path.resolve(dir, f), 'utf8');
      } catch {
        return undefined;
      }
    },
    displayPath: (f) => path.relative(process.cwd(), path.resolve(dir, f)).split(path.sep).join('/') || f,
  };
}
