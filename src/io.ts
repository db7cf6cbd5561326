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
//
// Names are keys of prototype-free objects everywhere here: a tensor may be called `__proto__`,
// `constructor` or `toString` (any string the DSL accepts), and a name in a file is never taken
// for a property every object has. A file is checked as the reference reader checks it (a header
// of at most 100,000,000 bytes, every entry a {dtype, shape, data_offsets} object, the tensors
// tiling the data) and for keys given twice; each fault is a CheckpointError naming the file and,
// where one is at fault, the tensor.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import * as path from 'node:path';
import { duplicateKey, preview } from './json-scan.js';

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
  readonly params: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly (number | string)[]; readonly trainable?: boolean }>>;
  /** The model's inputs: the shapes `saveParams` gives tensors saved under their names. */
  readonly inputs?: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly (number | string)[] }>>;
  /** The module's buffers (batchnorm's running statistics): part of a checkpoint, as in a torch state_dict. */
  readonly buffers?: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly (number | string)[] }>>;
  /** The optimizer of a module built with --optimizer, and the flags that add state slots: saveState records it, loadState checks it. */
  readonly optimizer?: OptimizerLike;
}

/** `spec.optimizer`: the optimizer's name and the flags that shape its state. */
export interface OptimizerLike {
  readonly name: string;
  readonly amsgrad?: boolean;
  readonly centered?: boolean;
  readonly momentum?: boolean;
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

const DTYPE_BYTES = new Map<string, number>(Object.entries({ F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8 }));
const LE = endianness() === 'LE';
/** The largest header the reference reader (huggingface/safetensors) accepts, in bytes. */
const MAX_HEADER = 100_000_000;

/** Whether `name` is an own property of `o` (never one of Object.prototype's). */
const has = (o: object | undefined, name: string): boolean => o !== undefined && Object.prototype.hasOwnProperty.call(o, name);
/** `o[name]` when it is an own property, else undefined. */
const own = <T>(o: Readonly<Record<string, T>> | undefined, name: string): T | undefined => (o !== undefined && has(o, name) ? o[name] : undefined);
/** A prototype-free record (a name such as `__proto__` is a key like any other). */
const record = <T>(): Record<string, T> => Object.create(null) as Record<string, T>;

function dtypeOf(d: TensorData): 'F32' | 'I32' {
  if (d instanceof Float32Array) return 'F32';
  if (d instanceof Int32Array) return 'I32';
  throw new TypeError('a tensor must be a Float32Array or an Int32Array');
}

const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The bytes of a safetensors file holding these tensors, in the order given. */
export function encodeSafetensors(tensors: Readonly<Record<string, TensorData | ShapedTensor>>, opts: SaveOptions = {}): Uint8Array {
  const header = record<unknown>();
  if (opts.metadata) {
    // the reader (this one, and the reference) takes string values only
    for (const [k, v] of Object.entries(opts.metadata))
      if (typeof v !== 'string') throw new CheckpointError(`saveParams: metadata '${k}' must be a string (safetensors metadata maps strings to strings), got ${preview(v)}`);
    header.__metadata__ = Object.assign(record<string>(), opts.metadata);
  }
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new CheckpointError("saveParams: '__metadata__' is reserved by the safetensors format; rename the tensor");
    const data = ArrayBuffer.isView(t) ? (t as TensorData) : (t as ShapedTensor).data;
    const dtype = dtypeOf(data);
    const specShape = own(opts.spec?.params, name)?.shape ?? own(opts.spec?.buffers, name)?.shape ?? own(opts.spec?.inputs, name)?.shape;
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
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  if (bytes[bom] === 0x7b /* { */ && n > BigInt(MAX_HEADER))
    throw new CheckpointError(`${file}: not a safetensors file: it begins with '{'${bom ? ' (after a byte-order mark)' : ''}, as JSON text does`);
  if (n > BigInt(MAX_HEADER))
    throw new CheckpointError(`${file}: not a safetensors file: its header would be ${n} bytes long, more than the ${MAX_HEADER} bytes the format allows`);
  if (n > BigInt(bytes.length - 8))
    throw new CheckpointError(`${file}: not a safetensors file, or truncated: its header is ${n} bytes long, but only ${bytes.length - 8} bytes follow the length`);
  let text: string;
  let header: unknown;
  try {
    // a byte-order mark is no part of a header (the reference reader rejects it): fatal, and kept
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + Number(n)));
    header = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file}: the safetensors header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new CheckpointError(`${file}: the safetensors header is not a JSON object`);
  const twice = duplicateKey(text);
  if (twice)
    throw new CheckpointError(
      twice.parent === undefined
        ? `${file}: tensor '${twice.key}' appears twice in the header`
        : twice.parent === '__metadata__'
          ? `${file}: the __metadata__ holds '${twice.key}' twice`
          : `${file}: tensor '${twice.parent}' has '${twice.key}' twice in its header entry`,
    );
  const dataStart = 8 + Number(n);
  const dataLen = bytes.length - dataStart;
  const tensors = record<ShapedTensor>();
  const metadata = record<string>();
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry) || !Object.values(entry).every((v) => typeof v === 'string'))
        throw new CheckpointError(`${file}: the __metadata__ must map names to strings, got ${preview(entry)}`);
      Object.assign(metadata, entry);
      continue;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
      throw new CheckpointError(`${file}: tensor '${name}' has no header entry ({"dtype", "shape", "data_offsets"}), got ${preview(entry)}`);
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = own(e as Record<string, unknown>, 'shape');
    const off = own(e as Record<string, unknown>, 'data_offsets');
    const dt = own(e as Record<string, unknown>, 'dtype');
    if (typeof dt !== 'string') throw new CheckpointError(`${file}: tensor '${name}' has no valid dtype (a string such as "F32"), got ${preview(dt)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      throw new CheckpointError(`${file}: tensor '${name}' has no valid shape (a list of non-negative integers), got ${preview(shape)}`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[0] > off[1])
      throw new CheckpointError(`${file}: tensor '${name}' has no valid data_offsets ([begin, end] in bytes), got ${preview(off)}`);
    const dtype = dt;
    const size = DTYPE_BYTES.get(dtype);
    if (size === undefined) throw new CheckpointError(`${file}: tensor '${name}' has an unknown dtype ${preview(dtype)}`);
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

/** Writes bytes through a temporary file beside `file`, renamed into place (a reader never sees half a file). */
function writeAtomically(file: string, bytes: Uint8Array): void {
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.tmp-${process.pid}`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd); // on disk before the rename makes it the file: a crash leaves the old file or the new one
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true }); // leave no temporary file behind
    throw e;
  }
}

/** Writes tensors to a safetensors file (through a temporary file renamed into place). */
export function saveParams(file: string, tensors: Readonly<Record<string, TensorData | ShapedTensor>>, opts: SaveOptions = {}): void {
  writeAtomically(file, encodeSafetensors(tensors, opts));
}

/** Reads a safetensors file: each tensor's values by name, checked against `opts.spec` when given. */
export function loadParams(file: string, opts: LoadOptions = {}): Record<string, TensorData> {
  const { tensors } = decodeSafetensors(readFileSync(file), file);
  if (opts.spec) checkParams(tensors, opts.spec, { file, strict: opts.strict });
  const out = record<TensorData>();
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
  const missing = Object.keys(spec.params).filter((k) => !has(tensors, k));
  if (missing.length) throw new CheckpointError(`${where}: missing param${missing.length > 1 ? 's' : ''} ${missing.map((k) => `'${k}'`).join(', ')}${model}`);
  if (opts.strict !== false) {
    const extra = Object.keys(tensors).filter((k) => !has(spec.params, k) && !has(spec.buffers, k));
    if (extra.length)
      throw new CheckpointError(`${where}: ${extra.map((k) => `'${k}'`).join(', ')} ${extra.length > 1 ? 'are not params' : 'is not a param'}${model} (its params: ${Object.keys(spec.params).join(', ')}${spec.buffers && Object.keys(spec.buffers).length ? `; its buffers: ${Object.keys(spec.buffers).join(', ')}` : ''}); pass { strict: false } to ignore ${extra.length > 1 ? 'them' : 'it'}`);
  }
  // every param, and the buffers the tensors hold (a checkpoint of params alone leaves them as initBuffers gives them)
  const checked = [...Object.entries(spec.params), ...Object.entries(spec.buffers ?? {}).filter(([k]) => has(tensors, k))];
  for (const [name, p] of checked) {
    const what = has(spec.params, name) ? 'param' : 'buffer';
    const t = own(tensors, name)!;
    const data = ArrayBuffer.isView(t) ? (t as TensorData) : (t as ShapedTensor).data;
    const dtype = data instanceof Int32Array ? 'i32' : 'f32';
    const shape = ArrayBuffer.isView(t) ? undefined : (t as ShapedTensor).shape;
    const want = `${p.dtype}[${p.shape.join(',')}]`;
    if (dtype !== p.dtype) throw new CheckpointError(`${where}: ${what} '${name}' is ${dtype === 'f32' ? 'F32' : 'I32'} in the file, but the model's is ${want}`);
    const sameShape = shape ? shape.length === p.shape.length && shape.every((d, i) => d === p.shape[i]) : data.length === numelOf(p.shape as number[]);
    if (!sameShape) throw new CheckpointError(`${where}: ${what} '${name}' is ${dtype}[${shape ? shape.join(',') : data.length}] in the file, but the model's is ${want}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Optimizer states

/**
 * An optimizer state as `initOptState` makes it and `trainStep` updates it: the step (the number of
 * updates taken) and, per slot (torch.optim's names: `exp_avg`, `exp_avg_sq`, `momentum_buffer`, ...),
 * one Float32Array per param.
 */
export interface OptStateLike {
  /** The number of updates taken (trainStep's next step is step + 1). */
  step: number;
  /** Each slot's arrays by param name (`exp_avg: { W1, b1 }`), or a number the state keeps. */
  [slot: string]: number | Record<string, Float32Array> | Float32Array;
}

/** What `saveState` writes in the `__metadata__`, so that `loadState` knows its file. */
const STATE_FORMAT = 'graphc optimizer state';

/** The optimizer as the `__metadata__` records it, with the flags that add slots: `adam --amsgrad`, `rmsprop --centered --momentum`. */
function optimizerText(o: OptimizerLike): string {
  return [o.name, ...(o.amsgrad ? ['--amsgrad'] : []), ...(o.centered ? ['--centered'] : []), ...(o.momentum ? ['--momentum'] : [])].join(' ');
}

/** Options of `saveState`. */
export interface SaveStateOptions {
  /** The model's spec: each slot's tensors get their param's shape (default: 1-D); its `optimizer` is recorded in the `__metadata__`. */
  readonly spec?: SpecLike;
}

/** Options of `loadState`. */
export interface LoadStateOptions {
  /**
   * Checks the state against a module's spec: every slot holds every trained param (none of the
   * frozen ones), with its shape, and nothing else; and a state saved by another optimizer (or
   * with other slot-shaping flags) is refused.
   */
  readonly spec?: SpecLike;
}

/**
 * Writes an optimizer state to a safetensors file (through a temporary file renamed into place):
 * each slot's array of each param as the tensor `<slot>.<param>` (`exp_avg.W1`), F32, and the step
 * (and any other number the state holds) in the `__metadata__`, as exact decimal text.
 */
export function saveState(file: string, state: OptStateLike, opts: SaveStateOptions = {}): void {
  if (typeof state !== 'object' || state === null) throw new CheckpointError(`saveState: the optimizer state must be an object from initOptState(params), got ${preview(state)}`);
  if (!Number.isSafeInteger(state.step) || state.step < 0)
    throw new CheckpointError(`saveState: state.step must be a non-negative integer (the number of updates taken), got ${typeof state.step === 'number' ? state.step : preview(state.step)}`);
  const metadata = Object.assign(record<string>(), { format: STATE_FORMAT });
  if (opts.spec?.optimizer) metadata.optimizer = optimizerText(opts.spec.optimizer);
  const tensors = record<ShapedTensor>();
  for (const [field, v] of Object.entries(state)) {
    if (typeof v === 'number') {
      if (field === 'format') throw new CheckpointError("saveState: the state's field 'format' is reserved (it marks the file as an optimizer state); rename it");
      if (field === 'optimizer') throw new CheckpointError("saveState: the state's field 'optimizer' is reserved (it records the optimizer that wrote the state); rename it");
      metadata[field] = String(v);
    } else if (v instanceof Float32Array) tensors[field] = { data: v, shape: [v.length] };
    else if (typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !Array.isArray(v)) {
      for (const [param, a] of Object.entries(v)) {
        if (!(a instanceof Float32Array)) throw new CheckpointError(`saveState: state.${field}['${param}'] must be a Float32Array, got ${a === undefined || a === null ? String(a) : (a as object).constructor?.name ?? typeof a}`);
        const shape = own(opts.spec?.params, param)?.shape;
        tensors[`${field}.${param}`] = { data: a, shape: shape && shape.every((d) => typeof d === 'number') && numelOf(shape as number[]) === a.length ? (shape as number[]) : [a.length] };
      }
    } else throw new CheckpointError(`saveState: state.${field} must be a number or an object of Float32Arrays (one per param), got ${preview(v)}`);
  }
  writeAtomically(file, encodeSafetensors(tensors, { metadata }));
}

/**
 * Reads an optimizer state that `saveState` wrote: a fresh state (`step` and each slot's arrays by
 * param) that `trainStep` continues from; with `spec`, checked against the model's params.
 */
export function loadState(file: string, opts: LoadStateOptions = {}): OptStateLike {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new CheckpointError(`${file}: cannot read the optimizer state: ${err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'it is a folder' : err.message}`);
  }
  const { tensors, metadata } = decodeSafetensors(bytes, file);
  if (own(metadata, 'format') !== STATE_FORMAT) {
    const names = Object.keys(tensors);
    const shown = names.slice(0, 4).map((n) => `'${n}'`).join(', ') + (names.length > 4 ? ', …' : '');
    throw new CheckpointError(
      `${file}: not an optimizer state (saveState writes "format": "${STATE_FORMAT}" in the __metadata__, which this file lacks)${names.length ? `; it holds ${shown}` : ''}: a checkpoint of params is read with loadParams(file)`,
    );
  }
  const stepText = own(metadata, 'step');
  if (stepText === undefined) throw new CheckpointError(`${file}: the optimizer state has no step (the "step" of its __metadata__, the number of updates taken); write it with saveState(file, state)`);
  if (!/^(0|[1-9][0-9]*)$/.test(stepText) || !Number.isSafeInteger(Number(stepText)))
    throw new CheckpointError(`${file}: the optimizer state's step must be a non-negative integer, got ${JSON.stringify(stepText)} in its __metadata__`);
  const saved = own(metadata, 'optimizer');
  const wanted = opts.spec?.optimizer;
  // a state saved without the spec (or before graphc recorded it) has no optimizer to check
  if (saved !== undefined && wanted && saved !== optimizerText(wanted))
    throw new CheckpointError(
      `${file}: the optimizer state was saved by ${saved}, but ${opts.spec?.name ?? 'the model'} trains with ${optimizerText(wanted)}: their states have other slots; load a state saved by this optimizer, or start from initOptState(params)`,
    );
  const state = { step: Number(stepText) } as OptStateLike;
  for (const [field, text] of Object.entries(metadata)) {
    if (field === 'format' || field === 'step' || field === 'optimizer') continue;
    const v = Number(text);
    if (text.trim() === '' || String(v) !== text) throw new CheckpointError(`${file}: the optimizer state's '${field}' must be a number, got ${JSON.stringify(text)} in its __metadata__`);
    state[field] = v;
  }
  for (const [name, t] of Object.entries(tensors)) {
    if (!(t.data instanceof Float32Array)) throw new CheckpointError(`${file}: '${name}' is I32, but an optimizer state holds F32 tensors`);
    const dot = name.indexOf('.');
    const field = dot < 0 ? name : name.slice(0, dot);
    if (typeof state[field] === 'number')
      throw new CheckpointError(`${file}: the tensor '${name}' is under '${field}', which the optimizer state's __metadata__ holds as a number; a state written by saveState has no such tensor`);
    if (dot < 0) {
      state[name] = t.data;
      continue;
    }
    const [slot, param] = [name.slice(0, dot), name.slice(dot + 1)];
    if (typeof state[slot] !== 'object') state[slot] = record<Float32Array>();
    (state[slot] as Record<string, Float32Array>)[param] = t.data;
    if (opts.spec) checkSlotTensor(file, opts.spec, slot, param, t);
  }
  if (opts.spec)
    for (const [slot, v] of Object.entries(state)) {
      if (typeof v !== 'object' || v instanceof Float32Array) continue;
      const missing = Object.entries(opts.spec.params)
        .filter(([p, e]) => e.trainable !== false && !has(v, p))
        .map(([p]) => p);
      if (missing.length)
        throw new CheckpointError(`${file}: the optimizer state's ${slot} has no value for the param${missing.length > 1 ? 's' : ''} ${missing.map((p) => `'${p}'`).join(', ')}${opts.spec.name ? ` of ${opts.spec.name}` : ''}; load a state saved from this model`);
    }
  return state;
}

/** One slot's tensor of one param, against the model's param. */
function checkSlotTensor(file: string, spec: SpecLike, slot: string, param: string, t: ShapedTensor): void {
  const model = spec.name ? ` of ${spec.name}` : '';
  const p = own(spec.params, param);
  if (!p) throw new CheckpointError(`${file}: the optimizer state's '${slot}.${param}': '${param}' is not a param${model} (its params: ${Object.keys(spec.params).join(', ')}); load a state saved from this model`);
  if (p.trainable === false)
    throw new CheckpointError(`${file}: the optimizer state's '${slot}.${param}': '${param}' is a frozen param${model} (trainable: false), which has no optimizer state; load a state saved from this model`);
  const want = p.shape as readonly (number | string)[];
  const same = t.shape.length === want.length && t.shape.every((d, i) => d === want[i]);
  // a state saved without a spec holds 1-D tensors: their length must be the param's size
  const flat = t.shape.length === 1 && want.every((d) => typeof d === 'number') && t.shape[0] === numelOf(want as number[]);
  if (!same && !flat)
    throw new CheckpointError(`${file}: the optimizer state's '${slot}.${param}' is f32[${t.shape.join(',')}], but the param '${param}'${model} is ${p.dtype}[${want.join(',')}]; load a state saved from this model`);
}
