// The examples the browser tests run, as committed in generated/, and their arguments.

import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseGraph } from '../../ir/parse.js';
import type { Arrays } from '../helpers.js';
import { randomArgs, ROOT } from '../helpers.js';

export const EXAMPLES = readdirSync(path.join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.slice(0, -3))
  .sort();

/** Random params (N(0,1)·0.5) and inputs (indices within their bounds) for an example, from its committed forward IR. */
export function exampleArgs(name: string, seed: number): { params: Arrays; inputs: Arrays } {
  const fwd = parseGraph(readFileSync(path.join(ROOT, 'generated', name, `${name}.ir`), 'utf8'));
  const args = randomArgs(fwd, seed, 0.5);
  if (args.inputs.bnvar) args.inputs.bnvar = args.inputs.bnvar.map((v) => Math.abs(v) + 0.1); // a variance (makemore_inference)
  return args;
}

export const plain = (a: Arrays): Record<string, number[]> => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, Array.from(v)]));


/** The options of a training call: a fixed dropout seed and fresh running statistics (the harness gives the page the same). */
export function callOptions(mod: object): { seed: number; buffers?: object } {
  return { seed: 1, buffers: (mod as { initBuffers?: () => object }).initBuffers?.() };
}
