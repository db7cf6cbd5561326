// `graphc/io`: checkpoints in the safetensors format, keyed by the DSL names, and the values
// files that `graphc check|graph|export --params/--inputs` read (safetensors or JSON).
//
// The format (as huggingface/safetensors describes it): 8 bytes, the header's length N as a
// little-endian u64; N bytes of UTF-8 JSON mapping each tensor's name to
// { "dtype": "F32" | "I32" | ..., "shape": [...], "data_offsets": [begin, end] } (offsets into
// the data that follows the header, in bytes) and an optional "__metadata__" of string to
// string; then the data, each tensor row-major and little-endian. graphc writes the header
// padded with spaces to a multiple of 8 bytes, as the reference writer does, and reads F32 and
// I32 tensors (other dtypes are an error naming the tensor).

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import * as path from 'node:path';

/** A tensor as the modules take and return it: row-major, Float32Array for f32, Int32Array for i32. */
export type TensorData = Float32Array | Int32Array;

/** A tensor with its shape (what safetensors stores). */
export interface ShapedTensor {
  readonly data: TensorData;
  readonly shape: readonly number[];
}

/** The part of a generated module's `spec` that the checks read. */
export interface SpecLike {
  /** The model's name, in error messages. */
  readonly name?: string;
  /** The params a checkpoint must hold, with their dtypes and shapes. */
  readonly params: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly (number | string)[] }>>;
  /** The model's inputs: the shapes `saveParams` gives tensors saved under their names. */
  readonly inputs?: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly (number | string)[] }>>;
  /** The module's buffers (batchnorm's running statistics): part of a checkpoint, as in a torch state_dict. */
  readonly buffers?: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly (number | string)[] }>>;
}

/** Options of `saveParams` and `encodeSafetensors`. */
export interface SaveOptions {
  /** Shapes by name (default: each tensor's shape from `spec.params`, `spec.buffers` or `spec.inputs`, else 1-D). */
  readonly spec?: SpecLike;
  /** String metadata stored in the header's `__metadata__`. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Options of `loadParams`. */
export interface LoadOptions {
  /**
   * Checks the file against a module's spec: every param present, with its shape and dtype (and
   * each buffer the file holds); with `strict` (the default, as torch's load_state_dict) a name
   * that is neither a param nor a buffer is an error too.
   */
  readonly spec?: SpecLike;
  /** With `spec`: a name in the file that is not a param is an error (default true, as torch's `load_state_dict`). */
  readonly strict?: boolean;
}

/** An error in a checkpoint or values file: it names the file and, where one is at fault, the tensor. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8 };
const LE = endianness() === 'LE';

function dtypeOf(d: TensorData): 'F32' | 'I32' {
  if (d instanceof Float32Array) return 'F32';
  if (d instanceof Int32Array) return 'I32';
  throw new TypeError('a tensor must be a Float32Array or an Int32Array');
}

const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The bytes of a safetensors file holding these tensors, in the order given. */
export function encodeSafetensors(tensors: Readonly<Record<string, TensorData | ShapedTensor>>, opts: SaveOptions = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = { ...opts.metadata };
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new CheckpointError("saveParams: '__metadata__' is reserved by the safetensors format; rename the tensor");
    const data = ArrayBuffer.isView(t) ? (t as TensorData) : (t as ShapedTensor).data;
    const dtype = dtypeOf(data);
    const specShape = opts.spec?.params[name]?.shape ?? opts.spec?.buffers?.[name]?.shape ?? opts.spec?.inputs?.[name]?.shape;
    const shape = ArrayBuffer.isView(t) ? (specShape && specShape.every((d) => typeof d === 'number') ? (specShape as number[]) : [data.length]) : [...(t as ShapedTensor).shape];
    if (numelOf(shape) !== data.length)
      throw new CheckpointError(`saveParams: tensor '${name}' has ${data.length} values, but its shape [${shape.join(', ')}] needs ${numelOf(shape)}`);
    const bytes = new Uint8Array(data.byteLength);
    if (LE) bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else {
      const dv = new DataView(bytes.buffer);
      data.forEach((v, i) => (dtype === 'F32' ? dv.setFloat32(i * 4, v, true) : dv.setInt32(i * 4, v, true)));
    }
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const jsonBytes0 = new TextEncoder().encode(json);
  json += ' '.repeat((8 - (jsonBytes0.length % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + jsonBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  out.set(jsonBytes, 8);
  let p = 8 + jsonBytes.length;
  for (const b of parts) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}

/** The tensors of a safetensors file, with their shapes, and its metadata. */
export function decodeSafetensors(bytes: Uint8Array, file = 'the file'): { tensors: Record<string, ShapedTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new CheckpointError(`${file}: not a safetensors file: ${bytes.length} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8))
    throw new CheckpointError(`${file}: not a safetensors file, or truncated: its header is ${n} bytes long, but only ${bytes.length - 8} bytes follow the length`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + Number(n))));
  } catch (e) {
    throw new CheckpointError(`${file}: the safetensors header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new CheckpointError(`${file}: the safetensors header is not a JSON object`);
  const dataStart = 8 + Number(n);
  const dataLen = bytes.length - dataStart;
  const tensors: Record<string, ShapedTensor> = Object.create(null);
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = e.shape;
    const off = e.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      throw new CheckpointError(`${file}: tensor '${name}' has no valid shape (a list of non-negative integers), got ${JSON.stringify(shape)}`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[0] > off[1])
      throw new CheckpointError(`${file}: tensor '${name}' has no valid data_offsets ([begin, end] in bytes), got ${JSON.stringify(off)}`);
    const dtype = String(e.dtype);
    const size = DTYPE_BYTES[dtype];
    if (size === undefined) throw new CheckpointError(`${file}: tensor '${name}' has an unknown dtype ${JSON.stringify(e.dtype)}`);
    const [begin, end] = off as [number, number];
    if (end - begin !== numelOf(shape) * size)
      throw new CheckpointError(`${file}: tensor '${name}' is ${dtype}[${shape.join(', ')}], ${numelOf(shape) * size} bytes, but its data_offsets [${begin}, ${end}] span ${end - begin}`);
    if (end > dataLen)
      throw new CheckpointError(`${file}: truncated: tensor '${name}' needs bytes [${begin}, ${end}) of the data, but the file holds ${dataLen} bytes of data`);
    if (dtype !== 'F32' && dtype !== 'I32')
      throw new CheckpointError(`${file}: tensor '${name}' is ${dtype}; graphc reads F32 and I32 tensors (convert it, e.g. tensor.float() in PyTorch)`);
    const raw = bytes.subarray(dataStart + begin, dataStart + end);
    const count = numelOf(shape);
    let data: TensorData;
    if (LE) {
      const copy = new Uint8Array(raw).buffer; // a copy (a Buffer's slice would be a view of its pool)
      data = dtype === 'F32' ? new Float32Array(copy, 0, count) : new Int32Array(copy, 0, count);
    } else {
      const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      data = dtype === 'F32' ? Float32Array.from({ length: count }, (_, i) => v.getFloat32(i * 4, true)) : Int32Array.from({ length: count }, (_, i) => v.getInt32(i * 4, true));
    }
    tensors[name] = { data, shape };
    spans.push([begin, end, name]);
  }
  // the reference reader wants the tensors to tile the data exactly
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== at) throw new CheckpointError(`${file}: tensor '${name}' starts at byte ${begin} of the data, but the tensor before it ends at ${at} (the data must be contiguous)`);
    at = end;
  }
  if (at !== dataLen) throw new CheckpointError(`${file}: the tensors cover ${at} bytes of data, but the file holds ${dataLen} after the header`);
  return { tensors, metadata };
}

/** Writes tensors to a safetensors file (through a temporary file renamed into place). */
export function saveParams(file: string, tensors: Readonly<Record<string, TensorData | ShapedTensor>>, opts: SaveOptions = {}): void {
  const bytes = encodeSafetensors(tensors, opts);
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.tmp-${process.pid}`);
  writeFileSync(tmp, bytes);
  renameSync(tmp, file);
}

/** Reads a safetensors file: each tensor's values by name, checked against `opts.spec` when given. */
export function loadParams(file: string, opts: LoadOptions = {}): Record<string, TensorData> {
  const { tensors } = decodeSafetensors(readFileSync(file), file);
  if (opts.spec) checkParams(tensors, opts.spec, { file, strict: opts.strict });
  const out: Record<string, TensorData> = {};
  for (const [k, t] of Object.entries(tensors)) out[k] = t.data;
  return out;
}

/** A safetensors file's tensors with their shapes, and its `__metadata__`. */
export function loadTensors(file: string): { tensors: Record<string, ShapedTensor>; metadata: Record<string, string> } {
  return decodeSafetensors(readFileSync(file), file);
}

/**
 * Checks tensors against a module's spec: every param present, of its dtype and its shape (or
 * size, for plain arrays), and so each buffer present; with `strict` (default) no name that is
 * neither a param nor a buffer.
 */
export function checkParams(tensors: Readonly<Record<string, TensorData | ShapedTensor>>, spec: SpecLike, opts: { file?: string; strict?: boolean } = {}): void {
  const where = opts.file ?? 'the checkpoint';
  const model = spec.name ? ` of ${spec.name}` : '';
  const missing = Object.keys(spec.params).filter((k) => !(k in tensors));
  if (missing.length) throw new CheckpointError(`${where}: missing param${missing.length > 1 ? 's' : ''} ${missing.map((k) => `'${k}'`).join(', ')}${model}`);
  if (opts.strict !== false) {
    const extra = Object.keys(tensors).filter((k) => !(k in spec.params) && !(k in (spec.buffers ?? {})));
    if (extra.length)
      throw new CheckpointError(`${where}: ${extra.map((k) => `'${k}'`).join(', ')} ${extra.length > 1 ? 'are not params' : 'is not a param'}${model} (its params: ${Object.keys(spec.params).join(', ')}${spec.buffers && Object.keys(spec.buffers).length ? `; its buffers: ${Object.keys(spec.buffers).join(', ')}` : ''}); pass { strict: false } to ignore ${extra.length > 1 ? 'them' : 'it'}`);
  }
  // every param, and the buffers the tensors hold (a checkpoint of params alone leaves them as initBuffers gives them)
  const checked = [...Object.entries(spec.params), ...Object.entries(spec.buffers ?? {}).filter(([k]) => k in tensors)];
  for (const [name, p] of checked) {
    const what = name in spec.params ? 'param' : 'buffer';
    const t = tensors[name]!;
    const data = ArrayBuffer.isView(t) ? (t as TensorData) : (t as ShapedTensor).data;
    const dtype = data instanceof Int32Array ? 'i32' : 'f32';
    const shape = ArrayBuffer.isView(t) ? undefined : (t as ShapedTensor).shape;
    const want = `${p.dtype}[${p.shape.join(',')}]`;
    if (dtype !== p.dtype) throw new CheckpointError(`${where}: ${what} '${name}' is ${dtype === 'f32' ? 'F32' : 'I32'} in the file, but the model's is ${want}`);
    const sameShape = shape ? shape.length === p.shape.length && shape.every((d, i) => d === p.shape[i]) : data.length === numelOf(p.shape as number[]);
    if (!sameShape) throw new CheckpointError(`${where}: ${what} '${name}' is ${dtype}[${shape ? shape.join(',') : data.length}] in the file, but the model's is ${want}`);
  }
}
