// The one check of the DSL's options objects: an object whose every key is one the call reads.
// A misspelt key (torch's snake_case `label_smoothing`, `ignore_index`, `unbiased`) would be
// ignored and build a model that silently computes something else, so it is a located error that
// names the key, suggests graphc's spelling and lists the accepted options. Used by g.param,
// g.input, the losses and the vocabulary (vocab.ts), batchNorm, layerNorm, convolutions and pooling.

import { CompileError } from '../ir/errors.js';
import { describeValue as describe } from '../ir/vocab.js';

/** The spelling graphc reads for `key`, if it is a known option respelt (snake_case, other case, torch's name). */
function respelling(key: string, accepted: readonly string[]): string | undefined {
  const torch: Record<string, string> = { dim: 'axis', keepdim: 'keepDims' };
  const squash = (s: string): string => s.replace(/_/g, '').toLowerCase();
  return accepted.find((a) => squash(a) === squash(key)) ?? (torch[key] !== undefined && accepted.includes(torch[key]!) ? torch[key] : undefined);
}

function quoteList(keys: readonly string[]): string {
  const q = keys.map((k) => `'${k}'`);
  return q.length === 1 ? q[0]! : `${q.slice(0, -1).join(', ')} and ${q[q.length - 1]}`;
}

/**
 * Throws a located error for keys of `o` that `call` does not read. `op` opens the message
 * ("crossEntropy", "param 'W'"); `call` is how the user writes the call ("g.crossEntropy",
 * "x.var"); `hints` give the fix for keys that need more than a respelling (torch's `unbiased`).
 */
export function checkOptionKeys(op: string, call: string, o: object, accepted: readonly string[], hints: Readonly<Record<string, string>> = {}): void {
  const unknown = Object.keys(o).filter((k) => !accepted.includes(k));
  if (unknown.length === 0) return;
  const fixes: string[] = [];
  const respelt: string[] = [];
  for (const k of unknown) {
    if (hints[k] !== undefined) fixes.push(hints[k]!);
    else {
      const r = respelling(k, accepted);
      if (r !== undefined) respelt.push(`${r} for ${k}`);
    }
  }
  if (respelt.length > 0) fixes.unshift(`write ${respelt.join(' and ')}`);
  const list = accepted.length === 0 ? `${call} takes no options` : `the options of ${call} are ${accepted.join(', ')}`;
  throw new CompileError(`${op}: unknown option${unknown.length > 1 ? 's' : ''} ${quoteList(unknown)}`, [...fixes, list].join('; '));
}

/**
 * An options argument: undefined (no options) or a plain object whose keys `call` reads, checked
 * as `checkOptionKeys` does; anything else is an error with `example`.
 */
export function optionsOf(
  op: string,
  call: string,
  o: unknown,
  accepted: readonly string[],
  example: string,
  hints: Readonly<Record<string, string>> = {},
): Record<string, unknown> {
  if (o === undefined) return {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new CompileError(`${op}: the options must be an object, got ${describe(o)}`, `e.g. ${example}`);
  checkOptionKeys(op, call, o, accepted, hints);
  return o as Record<string, unknown>;
}
