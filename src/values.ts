// Values from a file for `graphc check|graph|export --params FILE --inputs FILE`: a safetensors
// file, or a JSON object mapping each name to its values as a flat row-major array
// (`{"w0": [2], "W1": [0.1, ...]}`; a bare number for a scalar). Names not in the file keep
// the values they would have had (initParams, or the random inputs); a name the model does not
// have, a wrong size or a wrong dtype is an error naming the tensor.

import { readFileSync } from 'node:fs';
import type { Graph } from '../ir/graph.js';
import { CheckpointError, decodeSafetensors } from './io.js';
import type { TensorData } from './io.js';
import { duplicateKey, preview } from './json-scan.js';
import { UsageError } from './loader.js';

export interface FileValue {
  readonly data: ArrayLike<number>;
  /** The stored shape (safetensors), checked against the model's. */
  readonly shape?: readonly number[];
  /** The stored dtype (safetensors); JSON numbers fit either. */
  readonly dtype?: 'f32' | 'i32';
}

export interface ValuesFile {
  readonly file: string;
  readonly values: Readonly<Record<string, FileValue>>;
}

/** Reads a safetensors or JSON values file (told apart by content, not by name). */
export function readValues(file: string): ValuesFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch {
    throw new UsageError(`cannot read ${file}`);
  }
  // a JSON file may begin with a UTF-8 byte-order mark (as some editors write it): it is JSON still
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  const first = bytes.subarray(bom).find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if (first === 0x7b /* { */) {
    let json: unknown;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(bom));
      json = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`${file}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`${file}: expected a JSON object mapping names to arrays of numbers`);
    const twice = duplicateKey(text);
    if (twice && twice.parent === undefined) throw new UsageError(`${file}: '${twice.key}' appears twice`);
    const values: Record<string, FileValue> = Object.create(null);
    for (const [k, v] of Object.entries(json)) {
      const data = typeof v === 'number' ? [v] : v;
      if (!Array.isArray(data) || !data.every((x) => typeof x === 'number'))
        throw new UsageError(`${file}: '${k}' must be a flat array of numbers (row-major), got ${preview(v)}`);
      values[k] = { data };
    }
    return { file, values };
  }
  try {
    const { tensors } = decodeSafetensors(bytes, file);
    const values: Record<string, FileValue> = Object.create(null);
    for (const [k, t] of Object.entries(tensors)) values[k] = { data: t.data, shape: t.shape, dtype: t.data instanceof Int32Array ? 'i32' : 'f32' };
    return { file, values };
  } catch (e) {
    if (e instanceof CheckpointError) throw new UsageError(`${e.message} (a values file is a .safetensors file or a JSON object of flat arrays)`);
    throw e;
  }
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Symbol sizes that the inputs of a values file fix: an input whose shape has one symbol binds
 * it from its length (`Xb` i32[B,3] with 15 values gives B = 5).
 */
export function bindDims(g: Graph, inputs: ValuesFile | undefined): Record<string, number> {
  const dims: Record<string, number> = {};
  if (!inputs) return dims;
  for (const inst of g.insts) {
    if (inst.op !== 'input') continue;
    const v = inputs.values[inst.attrs.name];
    const shape = g.type(inst.result).shape;
    const syms = [...new Set(shape.filter((d): d is string => typeof d === 'string' && !(d in dims)))];
    if (!v || syms.length !== 1) continue;
    const fixed = numel(shape.map((d) => (typeof d === 'number' ? d : d in dims ? dims[d]! : 1)));
    const count = shape.filter((d) => d === syms[0]).length;
    const n = Math.round(Math.pow(v.data.length / fixed, 1 / count));
    if (fixed > 0 && Math.pow(n, count) * fixed === v.data.length) dims[syms[0]!] = n;
  }
  return dims;
}

/**
 * `base` with the file's values put in: every name in the file must be a `kind` of the model,
 * of its size (shape, where the file stores one) and dtype.
 */
export function withValues<T extends TensorData>(g: Graph, kind: 'param' | 'input', base: Readonly<Record<string, T>>, vf: ValuesFile | undefined, dims: Readonly<Record<string, number>> = {}): Record<string, T> {
  // prototype-free: a value named `__proto__` is an entry like any other
  const out: Record<string, T> = Object.assign(Object.create(null) as Record<string, T>, base);
  if (!vf) return out;
  const decl = new Map<string, { dtype: 'f32' | 'i32'; shape: readonly (number | string)[] }>();
  // a params file holds the module buffers (batchnorm's running statistics) too, as a torch state_dict does
  for (const inst of g.insts) if (inst.op === kind || (kind === 'param' && inst.op === 'buffer')) decl.set(inst.attrs.name, g.type(inst.result));
  for (const [name, v] of Object.entries(vf.values)) {
    const t = decl.get(name);
    if (!t) {
      const other = kind === 'param' ? 'input' : 'param';
      const isOther = g.insts.some((i) => i.op === other && i.attrs.name === name);
      throw new UsageError(
        `${vf.file}: '${name}' is not ${kind === 'param' ? 'a param' : 'an input'} of ${g.name}${isOther ? ` (it is ${other === 'input' ? 'an input: pass it with --inputs' : 'a param: pass it with --params'})` : ''}; its ${kind}s are: ${[...decl.keys()].join(', ') || '(none)'}`,
      );
    }
    const shape = t.shape.map((d) => (typeof d === 'number' ? d : dims[d] ?? 3));
    const type = `${t.dtype}[${t.shape.join(',')}]`;
    if (v.dtype && v.dtype !== t.dtype) throw new UsageError(`${vf.file}: ${kind} '${name}' is ${v.dtype === 'f32' ? 'F32' : 'I32'} in the file, but the model's is ${type}`);
    if (v.shape && !(v.shape.length === shape.length && v.shape.every((d, i) => d === shape[i])))
      throw new UsageError(`${vf.file}: ${kind} '${name}' has shape [${v.shape.join(', ')}] in the file, but the model's is ${type}${t.shape.some((d) => typeof d === 'string') ? ` = [${shape.join(', ')}]` : ''}`);
    if (v.data.length !== numel(shape))
      throw new UsageError(`${vf.file}: ${kind} '${name}' has ${v.data.length} values, but ${type} needs ${numel(shape)}${t.shape.some((d) => typeof d === 'string') ? ` (with ${t.shape.filter((d) => typeof d === 'string').map((d) => `${d} = ${dims[d] ?? 3}`).join(', ')})` : ''}`);
    if (t.dtype === 'i32') {
      const bad = Array.from(v.data).findIndex((x) => !Number.isInteger(x));
      if (bad >= 0) throw new UsageError(`${vf.file}: ${kind} '${name}' is ${type}, but holds ${v.data[bad]} at [${bad}], not an integer`);
      out[name] = Int32Array.from(v.data) as T;
    } else out[name] = Float32Array.from(v.data) as T;
  }
  return out;
}
