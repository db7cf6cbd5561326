// The ONNX file format: the few protobuf messages of onnx.proto that an exported model uses,
// encoded (and decoded, for the checker and the tests) by a small protobuf wire-format writer.
// Field numbers are onnx.proto's; only the wire types varint (0), 64-bit (1), length-delimited
// (2) and 32-bit (5) occur.

// ---------------------------------------------------------------------------------------------
// Wire format

/** Appends protobuf fields to a growing byte buffer. */
export class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** An unsigned varint; negative int64s are written as their two's complement (10 bytes). */
  varint(v: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(v));
    this.reserve(10);
    while (x >= 0x80n) {
      this.buf[this.len++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.len++] = Number(x);
    return this;
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  /** An int32/int64/enum/bool field (wire type 0). */
  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    return this.varint(v);
  }

  /** A float field (wire type 5). */
  float(field: number, v: number): this {
    this.tag(field, 5);
    this.reserve(4);
    new DataView(this.buf.buffer).setFloat32(this.len, v, true);
    this.len += 4;
    return this;
  }

  /** A length-delimited field: bytes, a string or an embedded message. */
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2);
    this.varint(b.length);
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: Writer): this {
    return this.bytes(field, m.finish());
  }

  /** A packed repeated int64 field. */
  packedInts(field: number, vs: readonly (number | bigint)[]): this {
    const w = new Writer();
    for (const v of vs) w.varint(v);
    return this.bytes(field, w.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export interface Field {
  readonly field: number;
  readonly wire: number;
  /** varint and fixed-width fields: the value (int64 as bigint); length-delimited: the bytes. */
  readonly int?: bigint;
  readonly bytes?: Uint8Array;
  readonly fixed?: DataView;
}

/** Splits one message into its fields (throws on malformed input). */
export function readFields(b: Uint8Array): Field[] {
  const out: Field[] = [];
  let p = 0;
  const varint = (): bigint => {
    let x = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (p >= b.length) throw new Error('protobuf: truncated varint');
      const c = b[p++]!;
      x |= BigInt(c & 0x7f) << shift;
      if (c < 0x80) return x;
      if (shift > 63n) throw new Error('protobuf: varint longer than 10 bytes');
    }
  };
  while (p < b.length) {
    const tag = Number(varint());
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 0) throw new Error('protobuf: field number 0');
    if (wire === 0) out.push({ field, wire, int: varint() });
    else if (wire === 2) {
      const n = Number(varint());
      if (p + n > b.length) throw new Error(`protobuf: field ${field} runs past the end of its message`);
      out.push({ field, wire, bytes: b.subarray(p, p + n) });
      p += n;
    } else if (wire === 5 || wire === 1) {
      const n = wire === 5 ? 4 : 8;
      if (p + n > b.length) throw new Error('protobuf: truncated fixed-width field');
      out.push({ field, wire, fixed: new DataView(b.buffer, b.byteOffset + p, n) });
      p += n;
    } else throw new Error(`protobuf: unsupported wire type ${wire}`);
  }
  return out;
}

/** The values of a repeated int64 field, packed or not. */
export function readInts(fields: readonly Field[], field: number): bigint[] {
  const out: bigint[] = [];
  for (const f of fields) {
    if (f.field !== field) continue;
    if (f.wire === 0) out.push(BigInt.asIntN(64, f.int!));
    else if (f.bytes) for (const x of readPacked(f.bytes)) out.push(BigInt.asIntN(64, x));
  }
  return out;
}

function readPacked(b: Uint8Array): bigint[] {
  const out: bigint[] = [];
  let p = 0;
  while (p < b.length) {
    let x = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (p >= b.length) throw new Error('protobuf: truncated packed varint');
      const c = b[p++]!;
      x |= BigInt(c & 0x7f) << shift;
      if (c < 0x80) break;
    }
    out.push(x);
  }
  return out;
}

export const text = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);

// ---------------------------------------------------------------------------------------------
// The ONNX messages

/** TensorProto.DataType */
export const DT = { FLOAT: 1, INT32: 6, INT64: 7, BOOL: 9 } as const;
export type DataType = (typeof DT)[keyof typeof DT];

/** AttributeProto.AttributeType */
export const AT = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

export type AttrValue = { f: number } | { i: number } | { s: string } | { ints: readonly number[] } | { floats: readonly number[] } | { t: Tensor };

export interface Tensor {
  readonly name: string;
  readonly dataType: DataType;
  readonly dims: readonly number[];
  /** Little-endian raw bytes (raw_data). */
  readonly raw: Uint8Array;
}

export interface Node {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name: string;
  readonly attrs: Readonly<Record<string, AttrValue>>;
  readonly doc?: string;
}

export interface ValueInfo {
  readonly name: string;
  readonly elemType: DataType;
  /** A size, or a dim_param (a symbolic dimension's name). */
  readonly dims: readonly (number | string)[];
}

export interface Model {
  readonly irVersion: number;
  readonly opset: number;
  readonly producer: string;
  readonly producerVersion: string;
  readonly graphName: string;
  readonly doc: string;
  readonly nodes: readonly Node[];
  readonly initializers: readonly Tensor[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
}

function tensorMsg(t: Tensor): Writer {
  const w = new Writer();
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.raw);
  return w;
}

function attrMsg(name: string, v: AttrValue): Writer {
  const w = new Writer().string(1, name);
  if ('f' in v) w.float(2, v.f).int(20, AT.FLOAT);
  else if ('i' in v) w.int(3, v.i).int(20, AT.INT);
  else if ('s' in v) w.string(4, v.s).int(20, AT.STRING);
  else if ('t' in v) w.message(5, tensorMsg(v.t)).int(20, AT.TENSOR);
  else if ('floats' in v) {
    for (const f of v.floats) w.float(7, f);
    w.int(20, AT.FLOATS);
  } else {
    for (const i of v.ints) w.int(8, i);
    w.int(20, AT.INTS);
  }
  return w;
}

function nodeMsg(n: Node): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs)) w.message(5, attrMsg(k, v));
  if (n.doc) w.string(6, n.doc);
  return w;
}

function valueInfoMsg(v: ValueInfo): Writer {
  const shape = new Writer();
  for (const d of v.dims) shape.message(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().string(2, d));
  const tensorType = new Writer().int(1, v.elemType).message(2, shape);
  return new Writer().string(1, v.name).message(2, new Writer().message(1, tensorType));
}

/** The bytes of an ONNX ModelProto. */
export function encodeModel(m: Model): Uint8Array {
  const g = new Writer();
  for (const n of m.nodes) g.message(1, nodeMsg(n));
  g.string(2, m.graphName);
  for (const t of m.initializers) g.message(5, tensorMsg(t));
  if (m.doc) g.string(10, m.doc);
  for (const v of m.inputs) g.message(11, valueInfoMsg(v));
  for (const v of m.outputs) g.message(12, valueInfoMsg(v));
  const w = new Writer().int(1, m.irVersion).string(2, m.producer).string(3, m.producerVersion);
  w.message(7, g);
  w.message(8, new Writer().string(1, '').int(2, m.opset));
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Decoding (what the checker and the tests read back)

function decodeTensor(b: Uint8Array): Tensor {
  const f = readFields(b);
  const raw = f.find((x) => x.field === 9)?.bytes ?? new Uint8Array();
  return {
    name: text(f.find((x) => x.field === 8)?.bytes),
    dataType: Number(f.find((x) => x.field === 2)?.int ?? 0n) as DataType,
    dims: readInts(f, 1).map(Number),
    raw: Uint8Array.from(raw),
  };
}

function decodeAttr(b: Uint8Array): [string, AttrValue, number] {
  const f = readFields(b);
  const name = text(f.find((x) => x.field === 1)?.bytes);
  const type = Number(f.find((x) => x.field === 20)?.int ?? 0n);
  const floats = f.filter((x) => x.field === 7).map((x) => x.fixed!.getFloat32(0, true));
  let v: AttrValue;
  if (type === AT.FLOAT) v = { f: f.find((x) => x.field === 2)!.fixed!.getFloat32(0, true) };
  else if (type === AT.INT) v = { i: Number(BigInt.asIntN(64, f.find((x) => x.field === 3)?.int ?? 0n)) };
  else if (type === AT.STRING) v = { s: text(f.find((x) => x.field === 4)?.bytes) };
  else if (type === AT.TENSOR) v = { t: decodeTensor(f.find((x) => x.field === 5)!.bytes!) };
  else if (type === AT.FLOATS) v = { floats };
  else v = { ints: readInts(f, 8).map(Number) };
  return [name, v, type];
}

function decodeValueInfo(b: Uint8Array): ValueInfo & { hasType: boolean } {
  const f = readFields(b);
  const type = f.find((x) => x.field === 2)?.bytes;
  let elemType = 0 as DataType;
  const dims: (number | string)[] = [];
  if (type) {
    const tt = readFields(type).find((x) => x.field === 1)?.bytes;
    if (tt) {
      const tf = readFields(tt);
      elemType = Number(tf.find((x) => x.field === 1)?.int ?? 0n) as DataType;
      const shape = tf.find((x) => x.field === 2)?.bytes;
      if (shape)
        for (const d of readFields(shape).filter((x) => x.field === 1)) {
          const df = readFields(d.bytes!);
          const param = df.find((x) => x.field === 2);
          dims.push(param ? text(param.bytes) : Number(BigInt.asIntN(64, df.find((x) => x.field === 1)?.int ?? 0n)));
        }
    }
  }
  return { name: text(f.find((x) => x.field === 1)?.bytes), elemType, dims, hasType: type !== undefined };
}

export interface DecodedModel extends Model {
  readonly opsetImports: readonly { domain: string; version: number }[];
  /** Attribute types as written (AttributeProto.type), per node. */
  readonly attrTypes: readonly Record<string, number>[];
}

/** Reads a ModelProto back (the subset this writer produces, and any other fields ignored). */
export function decodeModel(bytes: Uint8Array): DecodedModel {
  const m = readFields(bytes);
  const gb = m.find((x) => x.field === 7)?.bytes;
  if (!gb) throw new Error('ModelProto has no graph');
  const g = readFields(gb);
  const attrTypes: Record<string, number>[] = [];
  const nodes: Node[] = g
    .filter((x) => x.field === 1)
    .map((x) => {
      const f = readFields(x.bytes!);
      const attrs: Record<string, AttrValue> = {};
      const types: Record<string, number> = {};
      for (const a of f.filter((y) => y.field === 5)) {
        const [k, v, t] = decodeAttr(a.bytes!);
        attrs[k] = v;
        types[k] = t;
      }
      attrTypes.push(types);
      return {
        inputs: f.filter((y) => y.field === 1).map((y) => text(y.bytes)),
        outputs: f.filter((y) => y.field === 2).map((y) => text(y.bytes)),
        name: text(f.find((y) => y.field === 3)?.bytes),
        opType: text(f.find((y) => y.field === 4)?.bytes),
        attrs,
        doc: text(f.find((y) => y.field === 6)?.bytes),
      };
    });
  const opsetImports = m
    .filter((x) => x.field === 8)
    .map((x) => {
      const f = readFields(x.bytes!);
      return { domain: text(f.find((y) => y.field === 1)?.bytes), version: Number(f.find((y) => y.field === 2)?.int ?? 0n) };
    });
  return {
    irVersion: Number(m.find((x) => x.field === 1)?.int ?? 0n),
    opset: opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0,
    opsetImports,
    producer: text(m.find((x) => x.field === 2)?.bytes),
    producerVersion: text(m.find((x) => x.field === 3)?.bytes),
    graphName: text(g.find((x) => x.field === 2)?.bytes),
    doc: text(g.find((x) => x.field === 10)?.bytes),
    nodes,
    attrTypes,
    initializers: g.filter((x) => x.field === 5).map((x) => decodeTensor(x.bytes!)),
    inputs: g.filter((x) => x.field === 11).map((x) => decodeValueInfo(x.bytes!)),
    outputs: g.filter((x) => x.field === 12).map((x) => decodeValueInfo(x.bytes!)),
  };
}
