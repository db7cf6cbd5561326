// graphc/io: safetensors checkpoints (round trip, a fixture written byte by byte from the
// format's description, errors naming the tensor), and values files for `graphc check` and
// `graphc graph` (--params, --inputs).

import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError, checkParams, decodeSafetensors, encodeSafetensors, loadParams, loadTensors, saveParams } from 'graphc/io';
import { traceFile } from '../src/build.js';
import { readValues, withValues } from '../src/values.js';
import { ROOT, run, tmp } from './helpers.js';

const spec = {
  name: 'm',
  params: { W: { dtype: 'f32', shape: [2, 3] }, 'b.x': { dtype: 'f32', shape: [3] } },
};

/** A safetensors file built by hand: the length, the header text, the data, as the format describes them. */
function handMade(header: string, data: number[]): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  let n = h.length;
  for (let i = 0; i < 8; i++) {
    out[i] = n & 0xff; // u64, little-endian
    n = Math.floor(n / 256);
  }
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors', () => {
  it('round-trips f32 and i32 tensors bit for bit, with shapes and metadata, keyed by any name', () => {
    const file = path.join(tmp(), 'p.safetensors');
    const W = Float32Array.of(1, -2.5, 3e-38, Infinity, NaN, -0);
    const bx = Float32Array.of(0.1, 0.2, 0.3);
    const idx = Int32Array.of(-7, 2147483647);
    saveParams(file, { W, 'b.x': bx, 'idx ü': { data: idx, shape: [2, 1] } }, { spec, metadata: { step: '12' } });
    const back = loadParams(file);
    expect(Object.keys(back)).toEqual(['W', 'b.x', 'idx ü']);
    expect(Buffer.from(back.W!.buffer).equals(Buffer.from(W.buffer))).toBe(true);
    expect(back['idx ü']).toEqual(idx);
    expect(back['idx ü']).toBeInstanceOf(Int32Array);
    const { tensors, metadata } = loadTensors(file);
    expect(tensors.W!.shape).toEqual([2, 3]);
    expect(tensors['b.x']!.shape).toEqual([3]);
    expect(tensors['idx ü']!.shape).toEqual([2, 1]);
    expect(metadata).toEqual({ step: '12' });
    // the header is padded with spaces to 8 bytes, and the data follows it in the order given
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    expect(header.W).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
    expect(header['idx ü']).toEqual({ dtype: 'I32', shape: [2, 1], data_offsets: [36, 44] });
    expect(bytes.length).toBe(8 + n + 44);
  });

  it('reads a fixture written byte by byte from the format description', () => {
    // {"a":F32[2] = [1, -2], "__metadata__", "n":I32[] = 5}; 1.0f = 00 00 80 3f, -2.0f = 00 00 00 c0
    const header = '{"__metadata__":{"by":"hand"},"n":{"dtype":"I32","shape":[],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const bytes = handMade(header, [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x05, 0x00, 0x00, 0x00]);
    const file = path.join(tmp(), 'hand.safetensors');
    writeFileSync(file, bytes);
    const p = loadParams(file);
    expect(p.a).toEqual(Float32Array.of(1, -2));
    expect(p.n).toEqual(Int32Array.of(5));
    const { tensors, metadata } = loadTensors(file);
    expect(tensors.n!.shape).toEqual([]);
    expect(metadata).toEqual({ by: 'hand' });
    // and what graphc writes for the same tensors is the same data under an equivalent header
    const ours = encodeSafetensors({ a: Float32Array.of(1, -2), n: { data: Int32Array.of(5), shape: [] } });
    const back = decodeSafetensors(ours);
    expect(back.tensors.a!.data).toEqual(p.a);
    expect(Array.from(ours.subarray(ours.length - 12))).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x05, 0x00, 0x00, 0x00]);
  });

  it('checks a checkpoint against a spec: missing and unknown names, shapes, dtypes, each naming the tensor', () => {
    const file = path.join(tmp(), 'p.safetensors');
    const W = new Float32Array(6);
    const bx = new Float32Array(3);
    saveParams(file, { W, 'b.x': bx }, { spec });
    expect(Object.keys(loadParams(file, { spec }))).toEqual(['W', 'b.x']);
    saveParams(file, { W }, { spec });
    expect(() => loadParams(file, { spec })).toThrow(`${file}: missing param 'b.x' of m`);
    saveParams(file, { W, 'b.x': bx, extra: bx }, { spec });
    expect(() => loadParams(file, { spec })).toThrow(`${file}: 'extra' is not a param of m (its params: W, b.x); pass { strict: false } to ignore it`);
    expect(Object.keys(loadParams(file, { spec, strict: false }))).toEqual(['W', 'b.x', 'extra']);
    saveParams(file, { W: { data: W, shape: [3, 2] }, 'b.x': bx });
    expect(() => loadParams(file, { spec })).toThrow(`${file}: param 'W' is f32[3,2] in the file, but the model's is f32[2,3]`);
    saveParams(file, { W, 'b.x': new Int32Array(3) }, { spec });
    expect(() => loadParams(file, { spec })).toThrow(`${file}: param 'b.x' is I32 in the file, but the model's is f32[3]`);
    expect(() => checkParams({ W: new Float32Array(5), 'b.x': bx }, spec)).toThrow("the checkpoint: param 'W' is f32[5] in the file, but the model's is f32[2,3]");
  });

  it("holds a model's buffers beside its params (as a torch state_dict), checked when present", () => {
    const withBuffers = { ...spec, buffers: { 'bn.running_mean': { dtype: 'f32', shape: [1, 3] } } };
    const file = path.join(tmp(), 'b.safetensors');
    const W = new Float32Array(6);
    const bx = new Float32Array(3);
    saveParams(file, { W, 'b.x': bx, 'bn.running_mean': Float32Array.of(1, 2, 3) }, { spec: withBuffers });
    expect(loadTensors(file).tensors['bn.running_mean']!.shape).toEqual([1, 3]); // its shape from spec.buffers
    expect(loadParams(file, { spec: withBuffers })['bn.running_mean']).toEqual(Float32Array.of(1, 2, 3));
    expect(() => loadParams(file, { spec })).toThrow(`${file}: 'bn.running_mean' is not a param of m (its params: W, b.x); pass { strict: false } to ignore it`);
    saveParams(file, { W, 'b.x': bx, 'bn.running_mean': { data: new Float32Array(4), shape: [4] } }, { spec });
    expect(() => loadParams(file, { spec: withBuffers })).toThrow(`${file}: buffer 'bn.running_mean' is f32[4] in the file, but the model's is f32[1,3]`);
    saveParams(file, { W, 'b.x': bx, extra: bx }, { spec });
    expect(() => loadParams(file, { spec: withBuffers })).toThrow(
      `${file}: 'extra' is not a param of m (its params: W, b.x; its buffers: bn.running_mean); pass { strict: false } to ignore it`,
    );
    // a checkpoint of the params alone is complete: the buffers keep what initBuffers gives
    saveParams(file, { W, 'b.x': bx }, { spec });
    expect(Object.keys(loadParams(file, { spec: withBuffers }))).toEqual(['W', 'b.x']);
  });

  it('reports truncated and malformed files, naming the tensor', () => {
    const good = encodeSafetensors({ W: new Float32Array(6), b: new Float32Array(3) });
    const dec = (b: Uint8Array) => () => decodeSafetensors(b, 'p.safetensors');
    expect(dec(good.subarray(0, good.length - 4))).toThrow("p.safetensors: truncated: tensor 'b' needs bytes [24, 36) of the data, but the file holds 32 bytes of data");
    expect(dec(good.subarray(0, 5))).toThrow('p.safetensors: not a safetensors file: 5 bytes, shorter than the 8-byte header length');
    expect(dec(good.subarray(0, 40))).toThrow(/^p\.safetensors: not a safetensors file, or truncated: its header is \d+ bytes long, but only 32 bytes follow the length$/);
    const f16 = handMade('{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]);
    expect(dec(f16)).toThrow("p.safetensors: tensor 'h' is F16; graphc reads F32 and I32 tensors (convert it, e.g. tensor.float() in PyTorch)");
    const wrong = handMade('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Array(8).fill(0));
    expect(dec(wrong)).toThrow("p.safetensors: tensor 'w' is F32[3], 12 bytes, but its data_offsets [0, 8] span 8");
    const gap = handMade('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Array(8).fill(0));
    expect(dec(gap)).toThrow("p.safetensors: tensor 'w' starts at byte 4 of the data, but the tensor before it ends at 0 (the data must be contiguous)");
    expect(dec(handMade('{"w": nope}', []))).toThrow(/^p\.safetensors: the safetensors header is not valid UTF-8 JSON/);
    expect(() => encodeSafetensors({ W: { data: new Float32Array(5), shape: [2, 3] } })).toThrow("saveParams: tensor 'W' has 5 values, but its shape [2, 3] needs 6");
  });
});

describe('names that every object has (prototype-free maps)', () => {
  /** An object with an own property of each name (an object literal's `__proto__:` would set its prototype). */
  const own = (entries: [string, unknown][]): Record<string, never> => {
    const o = {};
    for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
    return o as Record<string, never>;
  };

  it("saveParams writes a param named '__proto__' and loadParams gives it back as an entry, not as the result's prototype", () => {
    const file = path.join(tmp(), 'proto.safetensors');
    const protoSpec = { name: 'm', params: own([['__proto__', { dtype: 'f32', shape: [2] }], ['constructor', { dtype: 'f32', shape: [1] }]]) };
    saveParams(file, own([['__proto__', Float32Array.of(1, 2)], ['constructor', Float32Array.of(3)]]), { spec: protoSpec });
    const back = loadParams(file, { spec: protoSpec });
    expect(Object.keys(back)).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(back)).toBe(null);
    expect(Object.getOwnPropertyDescriptor(back, '__proto__')!.value).toEqual(Float32Array.of(1, 2));
    expect(loadTensors(file).tensors['constructor']!.shape).toEqual([1]);
  });

  it("loadParams with a spec rejects extra tensors named 'toString', 'constructor' or '__proto__'; checkParams misses no param so named", () => {
    const file = path.join(tmp(), 'extra.safetensors');
    const W = new Float32Array(6);
    const bx = new Float32Array(3);
    saveParams(file, own([['W', W], ['b.x', bx], ['toString', bx], ['constructor', bx], ['__proto__', bx]]), { spec });
    expect(() => loadParams(file, { spec })).toThrow(
      `${file}: 'toString', 'constructor', '__proto__' are not params of m (its params: W, b.x); pass { strict: false } to ignore them`,
    );
    const loose = loadParams(file, { spec, strict: false });
    expect(Object.getPrototypeOf(loose)).toBe(null);
    expect(Object.keys(loose)).toEqual(['W', 'b.x', 'toString', 'constructor', '__proto__']);
    const named = { name: 'm', params: { toString: { dtype: 'f32', shape: [3] }, W: { dtype: 'f32', shape: [2, 3] } } };
    expect(() => checkParams({ W }, named)).toThrow("the checkpoint: missing param 'toString' of m");
    expect(() => checkParams({ W, toString: bx, hasOwnProperty: bx }, named)).toThrow("the checkpoint: 'hasOwnProperty' is not a param of m (its params: toString, W); pass { strict: false } to ignore it");
  });
});

describe('crafted checkpoint files: a CheckpointError naming the file and the tensor', () => {
  const F32 = (offsets: string) => `{"dtype":"F32","shape":[1],"data_offsets":${offsets}}`;
  const dec = (b: Uint8Array) => () => decodeSafetensors(b, 'p.safetensors');
  const fails = (b: Uint8Array, message: string) => {
    expect(dec(b)).toThrow(CheckpointError);
    expect(dec(b)).toThrow(message);
  };

  it('an entry null, a dtype that is not a string, a shape or offsets 200,000 arrays deep', () => {
    fails(handMade('{"w":null}', []), `p.safetensors: tensor 'w' has no header entry ({"dtype", "shape", "data_offsets"}), got null`);
    fails(handMade('{"w":[1,2]}', []), `p.safetensors: tensor 'w' has no header entry ({"dtype", "shape", "data_offsets"}), got [1,2]`);
    fails(handMade(`{"w":{"dtype":["F32"],"shape":[1],"data_offsets":[0,4]}}`, [0, 0, 0, 0]), `p.safetensors: tensor 'w' has no valid dtype (a string such as "F32"), got ["F32"]`);
    fails(handMade(`{"w":{"dtype":{"F32":1},"shape":[1],"data_offsets":[0,4]}}`, [0, 0, 0, 0]), `p.safetensors: tensor 'w' has no valid dtype (a string such as "F32"), got {"F32":1}`);
    fails(handMade(`{"w":{"dtype":"constructor","shape":[1],"data_offsets":[0,4]}}`, [0, 0, 0, 0]), `p.safetensors: tensor 'w' has an unknown dtype "constructor"`);
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    fails(handMade(`{"w":{"dtype":"F32","shape":${deep},"data_offsets":[0,4]}}`, [0, 0, 0, 0]), "p.safetensors: tensor 'w' has no valid shape (a list of non-negative integers), got [[[[…]]]]");
    fails(handMade(`{"w":{"dtype":"F32","shape":[1],"data_offsets":${deep}}}`, [0, 0, 0, 0]), "p.safetensors: tensor 'w' has no valid data_offsets ([begin, end] in bytes), got [[[[…]]]]");
    fails(handMade(`{"__metadata__":{"a":1},"w":${F32('[0,4]')}}`, [0, 0, 0, 0]), 'p.safetensors: the __metadata__ must map names to strings, got {"a":1}');
    // and what saveParams would write so is refused before a byte is written
    expect(() => encodeSafetensors({ w: new Float32Array(1) }, { metadata: { step: 12 as unknown as string } })).toThrow(
      "saveParams: metadata 'step' must be a string (safetensors metadata maps strings to strings), got 12",
    );
  });

  it('keys given twice are named as such, not reported as a contiguity error', () => {
    fails(handMade(`{"w":${F32('[0,4]')},"v":${F32('[4,8]')},"w":${F32('[4,8]')}}`, new Array(8).fill(0)), "p.safetensors: tensor 'w' appears twice in the header");
    fails(handMade(`{"w":{"dtype":"F32","shape":[1],"shape":[2],"data_offsets":[0,4]}}`, [0, 0, 0, 0]), "p.safetensors: tensor 'w' has 'shape' twice in its header entry");
    fails(handMade(`{"__metadata__":{"a":"1","a":"2"}}`, []), "p.safetensors: the __metadata__ holds 'a' twice");
    // a key's text in escapes is the same key; the same key in two entries is no duplicate
    fails(handMade(`{"w":${F32('[0,4]')},"\\u0077":${F32('[0,4]')}}`, [0, 0, 0, 0]), "p.safetensors: tensor 'w' appears twice in the header");
    expect(Object.keys(decodeSafetensors(handMade(`{"a\\"":${F32('[0,4]')},"b":${F32('[4,8]')}}`, new Array(8).fill(0))).tensors)).toEqual(['a"', 'b']);
  });

  it('a header with a byte-order mark, and one over the 100,000,000 bytes the reference reader allows', () => {
    const bom = [0xef, 0xbb, 0xbf];
    const h = new TextEncoder().encode(`{"w":${F32('[0,4]')}}`);
    const b = new Uint8Array(8 + 3 + h.length + 4);
    new DataView(b.buffer).setBigUint64(0, BigInt(3 + h.length), true);
    b.set(bom, 8);
    b.set(h, 11);
    fails(b, 'p.safetensors: the safetensors header is not valid UTF-8 JSON (');
    // a JSON file (a values file) is not taken for a safetensors one, with or without a byte-order mark
    const json = new TextEncoder().encode('{"w": [1, 2]}');
    fails(json, "p.safetensors: not a safetensors file: it begins with '{', as JSON text does");
    fails(Uint8Array.from([...bom, ...json]), "p.safetensors: not a safetensors file: it begins with '{' (after a byte-order mark), as JSON text does");
    // {} and spaces: valid JSON, but longer than the reference reader's limit
    const n = 100_000_008;
    const big = new Uint8Array(8 + n).fill(0x20);
    new DataView(big.buffer).setBigUint64(0, BigInt(n), true);
    big[8] = 0x7b;
    big[9] = 0x7d;
    fails(big, `p.safetensors: not a safetensors file: its header would be ${n} bytes long, more than the 100000000 bytes the format allows`);
  });

  it('graphc check --params: a crafted file exits 2 with the message; a JSON values file may begin with a byte-order mark', async () => {
    const dir = tmp();
    const st = path.join(dir, 'p.safetensors');
    writeFileSync(st, handMade('{"w0":null}', []));
    const r = await run(['check', 'examples/neuron.ts', '--params', st]);
    expect([r.code, r.out, r.err]).toEqual([
      2,
      '',
      `graphc: ${st}: tensor 'w0' has no header entry ({"dtype", "shape", "data_offsets"}), got null (a values file is a .safetensors file or a JSON object of flat arrays)\n`,
    ]);
    const f = path.join(dir, 'p.json');
    writeFileSync(f, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ w0: 0.5 }))]));
    const ok = await run(['check', 'examples/neuron.ts', '--params', f]);
    expect([ok.code, ok.err]).toEqual([0, '']);
    expect(ok.out).toContain(`(params from ${f}; the others from seed 0)`);
    writeFileSync(f, `{"w0": ${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    const deep = await run(['check', 'examples/neuron.ts', '--params', f]);
    expect([deep.code, deep.err]).toEqual([2, `graphc: ${f}: 'w0' must be a flat array of numbers (row-major), got [[[[…]]]]\n`]);
    writeFileSync(f, '{"w0": [1], "w0": [2]}');
    const dup = await run(['check', 'examples/neuron.ts', '--params', f]);
    expect([dup.code, dup.err]).toEqual([2, `graphc: ${f}: 'w0' appears twice\n`]);
  });
});

describe('values files for graphc check and graphc graph', () => {
  it('graphc check --params takes a JSON file; names not in it keep initParams', async () => {
    const dir = tmp();
    const f = path.join(dir, 'p.json');
    writeFileSync(f, JSON.stringify({ w0: 0.5, x1: [4] }));
    const r = await run(['check', 'examples/neuron.ts', '--params', f]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`(params from ${f}; the others from seed 0)`);
  });

  it('graphc graph --values --params shows the values of the file (safetensors), and --inputs those of the inputs', async () => {
    const dir = tmp();
    const f = path.join(dir, 'p.safetensors');
    saveParams(f, { w0: { data: Float32Array.of(1), shape: [] }, x0: { data: Float32Array.of(0), shape: [] } });
    const dot = path.join(dir, 'g.dot');
    const r = await run(['graph', 'examples/neuron.ts', '--values', '--params', f, '-o', dot]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const text = readFileSync(dot, 'utf8');
    // s0 = w0·x0 = 0, s3 = 0 + 6 − 3 = 3, σ(3) = 0.95 (the slide's initParams gives 1.00 and 0.73)
    expect(text).toContain('<font color="darkgreen">3.00</font>');
    expect(text).toContain('<font color="darkgreen">0.95</font>');
    const cls = path.join(dir, 'x.json');
    writeFileSync(cls, JSON.stringify({ target_classes: Array.from({ length: 64 }, (_, i) => i % 10) }));
    const c = await run(['check', 'examples/classifier.ts', '--inputs', cls, '--samples', '2']);
    expect(c.err).toBe('');
    expect(c.out).toContain(`(inputs from ${cls}; the others from seed 0)`);
  });

  it('wrong sizes, unknown names, wrong dtypes and bad files are clear usage errors', async () => {
    const dir = tmp();
    const f = path.join(dir, 'p.json');
    const g = traceFile(path.join(ROOT, 'examples', 'makemore.ts')).traced.graph;
    const bad = (json: unknown, kind: 'param' | 'input' = 'param') => {
      writeFileSync(f, typeof json === 'string' ? json : JSON.stringify(json));
      return () => withValues(g, kind, {}, readValues(f));
    };
    expect(bad({ W9: [1] })).toThrow(`${f}: 'W9' is not a param of makemore; its params are: C, W1, b1, W2, b2, bngain, bnbias`);
    expect(bad({ Xb: [1] })).toThrow(`${f}: 'Xb' is not a param of makemore (it is an input: pass it with --inputs); its params are: C, W1, b1, W2, b2, bngain, bnbias`);
    expect(bad({ W1: 'x' })).toThrow(`${f}: 'W1' must be a flat array of numbers (row-major), got "x"`);
    expect(bad('{"W1": [1,')).toThrow(`${f}: not valid JSON`);
    expect(bad({ Yb: [0.5, ...new Array(31).fill(0)] }, 'input')).toThrow(`${f}: input 'Yb' is i32[32], but holds 0.5 at [0], not an integer`);
    const st = path.join(dir, 'p.safetensors');
    saveParams(st, { b1: new Int32Array(64) });
    expect(() => withValues(g, 'param', {}, readValues(st))).toThrow(`${st}: param 'b1' is I32 in the file, but the model's is f32[64]`);
    // through the command line: exit code 2 and the message
    writeFileSync(f, JSON.stringify({ W1: [1, 2, 3] }));
    const r = await run(['check', 'examples/makemore.ts', '--params', f]);
    expect([r.code, r.out, r.err]).toEqual([2, '', `graphc: ${f}: param 'W1' has 3 values, but f32[30,64] needs 1920\n`]);
    saveParams(st, { b1: { data: new Float32Array(64), shape: [1, 64] } });
    const gr = await run(['graph', 'examples/makemore.ts', '--values', '--params', st, '-o', path.join(dir, 'g.dot')]);
    expect([gr.code, gr.err]).toEqual([2, `graphc: ${st}: param 'b1' has shape [1, 64] in the file, but the model's is f32[64]\n`]);
    writeFileSync(st, Uint8Array.of(1, 2, 3));
    expect((await run(['check', 'examples/makemore.ts', '--params', st])).err).toBe(
      `graphc: ${st}: not a safetensors file: 3 bytes, shorter than the 8-byte header length (a values file is a .safetensors file or a JSON object of flat arrays)\n`,
    );
    expect((await run(['graph', 'examples/neuron.ts', '--params', st])).err).toBe('graphc graph: --params and --inputs give the values that --values shows; add --values\n');
    expect((await run(['check', 'examples/neuron.ts', '--params', path.join(ROOT, 'nowhere.json')])).err).toBe(`graphc: cannot read ${path.join(ROOT, 'nowhere.json')}\n`);
  });
});
