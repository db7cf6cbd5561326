// A small WebAssembly binary encoder: just what graphc's kernels need (one imported memory,
// functions of no arguments or of two i32 arguments (a range of rows or columns), i32 and v128
// locals, structured loops, calls, loads and stores, and the f32x4 arithmetic of the SIMD
// proposal). Instructions are appended to a `Body` by name; the
// module is laid out section by section as the binary format describes.
//
// Relaxed SIMD: the matmul and convolution kernels' multiply-adds are written by `madd` as
// f32x4.mul, local.get acc, f32x4.add (plain SIMD, which every runtime with SIMD has). Each is a
// site of the same length as local.get acc, f32x4.relaxed_madd, nop × 3 (a fused multiply-add
// where the hardware has one): `encodeModule` encodes either form (`relaxed`) and lists the sites'
// offsets (`sites`), so that a module carries the plain bytes and the offsets, and rewrites the
// sites in place (`relaxSites`) where the runtime validates RELAXED_PROBE.

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`internal: uleb(${n})`);
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (32-bit range). */
export function sleb(n: number): number[] {
  if (!Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 32) throw new Error(`internal: sleb(${n})`);
  n |= 0;
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const utf8 = (s: string) => [...new TextEncoder().encode(s)];
const vec = (items: readonly number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

export type LocalType = 'i32' | 'f32' | 'f64' | 'v128';
const TYPE_CODE: Record<LocalType, number> = { i32: 0x7f, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** A local variable of the function being written. */
export interface Local {
  readonly index: number;
  readonly type: LocalType;
}

const SIMD = 0xfd;
/** The f32x4 operations kernels use, by their opcode after the SIMD prefix. */
export const F32X4 = {
  splat: 0x13,
  eq: 0x41,
  lt: 0x43,
  gt: 0x44,
  ge: 0x46,
  nearest: 0x6a,
  abs: 0xe0,
  neg: 0xe1,
  sqrt: 0xe3,
  add: 0xe4,
  sub: 0xe5,
  mul: 0xe6,
  div: 0xe7,
  min: 0xe8,
  max: 0xe9,
  pmin: 0xea,
  pmax: 0xeb,
} as const;
export type F32x4Op = keyof typeof F32X4;

/** The opcode of f32x4.relaxed_madd after the SIMD prefix (the relaxed SIMD proposal): a·b + c. */
const RELAXED_MADD = 0x105;

/**
 * A module that validates only where the runtime has relaxed SIMD: one function
 * (v128, v128, v128) → v128 of f32x4.relaxed_madd.
 */
export const RELAXED_PROBE: readonly number[] = [
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
  ...[0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b], // type (v128 v128 v128) → v128
  ...[0x03, 0x02, 0x01, 0x00], // one function of it
  ...[0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, SIMD, ...uleb(RELAXED_MADD), 0x0b],
];

/**
 * Rewrites in place, at each offset of `sites` (a module's multiply-adds, see `madd`), f32x4.mul,
 * local.get acc, f32x4.add into local.get acc, f32x4.relaxed_madd, nop × 3 (the same length).
 * (codegen/wasm.ts `relaxedDecl` writes the same loop into a static module.)
 */
export function relaxSites(bytes: Uint8Array, sites: readonly number[]): void {
  for (const at of sites) {
    let end = at + 4; // the last byte of local.get's index (an unsigned LEB128)
    while (bytes[end]! & 0x80) end++;
    bytes.copyWithin(at, at + 3, end + 1); // local.get acc, moved to the site's start
    bytes.set([SIMD, ...uleb(RELAXED_MADD), 0x01, 0x01, 0x01], end - 2); // f32x4.relaxed_madd, nop × 3
  }
}

/** The instructions of one function body. */
export class Body {
  private readonly code: number[] = [];
  private readonly locals: Local[] = [];
  /** The offsets in `code` of the multiply-adds (see `madd`). */
  private readonly madds: number[] = [];
  private depth = 0;

  /** A function of `params` i32 arguments (0 or 2): they are its first locals. */
  constructor(readonly params = 0) {
    for (let k = 0; k < params; k++) this.local('i32');
  }

  /** Argument k. */
  param(k: number): Local {
    if (k >= this.params) throw new Error(`internal: no argument ${k}`);
    return this.locals[k]!;
  }

  local(type: LocalType): Local {
    const l = { index: this.locals.length, type };
    this.locals.push(l);
    return l;
  }

  private op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  /** Instructions by their bytes (codegen/wasm/index-kernels.ts names the ones it uses); control flow must balance. */
  raw(...bytes: number[]): this {
    return this.op(...bytes);
  }

  get(l: Local): this {
    return this.op(0x20, ...uleb(l.index));
  }
  set(l: Local): this {
    return this.op(0x21, ...uleb(l.index));
  }
  tee(l: Local): this {
    return this.op(0x22, ...uleb(l.index));
  }
  i32(n: number): this {
    return this.op(0x41, ...sleb(n));
  }
  i32Add(): this {
    return this.op(0x6a);
  }
  i32Sub(): this {
    return this.op(0x6b);
  }
  i32Mul(): this {
    return this.op(0x6c);
  }
  i32DivU(): this {
    return this.op(0x6e);
  }
  /** local += n */
  bump(l: Local, n: number): this {
    return n === 0 ? this : this.get(l).i32(n).i32Add().set(l);
  }
  /** local = n */
  assign(l: Local, n: number): this {
    return this.i32(n).set(l);
  }

  /** A counted loop: `body` runs `count` times (count ≥ 1) with `counter` going count … 1. */
  repeat(counter: Local, count: number, body: () => void): this {
    if (count < 1) throw new Error(`internal: loop of ${count} iterations`);
    if (count === 1) {
      body();
      return this;
    }
    this.assign(counter, count);
    this.op(0x03, 0x40); // loop (no result)
    this.depth++;
    body();
    this.get(counter).i32(1).i32Sub().tee(counter).op(0x0d, 0x00); // br_if 0 while counter ≠ 0
    this.depth--;
    return this.op(0x0b);
  }

  /**
   * A loop that runs `body` while `exit` (code leaving an i32 on the stack) is 0: the test comes
   * first, so that the body may run no time at all.
   */
  loopUntil(exit: () => void, body: () => void): this {
    this.op(0x02, 0x40, 0x03, 0x40); // block, loop
    this.depth += 2;
    exit();
    this.op(0x0d, 0x01); // br_if 1: out of the block
    body();
    this.op(0x0c, 0x00); // br 0: back to the loop
    this.depth -= 2;
    return this.op(0x0b, 0x0b);
  }
  /** `body` when the i32 that `cond` leaves on the stack is not 0. */
  when(cond: () => void, body: () => void): this {
    cond();
    this.op(0x04, 0x40); // if (no result)
    this.depth++;
    body();
    this.depth--;
    return this.op(0x0b);
  }
  i32GeS(): this {
    return this.op(0x4e);
  }
  i32GtS(): this {
    return this.op(0x4a);
  }
  i32LtS(): this {
    return this.op(0x48);
  }
  /** Calls function `index` of the module. */
  call(index: number): this {
    return this.op(0x10, ...uleb(index));
  }

  i32Load(offset: number): this {
    return this.op(0x28, 0x02, ...uleb(offset));
  }
  f32ConvertI32S(): this {
    return this.op(0xb2);
  }
  f32Load(offset: number): this {
    return this.op(0x2a, 0x02, ...uleb(offset));
  }
  f32Store(offset: number): this {
    return this.op(0x38, 0x02, ...uleb(offset));
  }
  v128Load(offset: number): this {
    return this.op(SIMD, ...uleb(0x00), 0x00, ...uleb(offset));
  }
  /** Loads one f32 and splats it to four lanes. */
  v128Load32Splat(offset: number): this {
    return this.op(SIMD, ...uleb(0x09), 0x00, ...uleb(offset));
  }
  v128Store(offset: number): this {
    return this.op(SIMD, ...uleb(0x0b), 0x00, ...uleb(offset));
  }
  /** Replaces lane `lane` of a v128 with 4 bytes loaded (operands: the address, then the vector). */
  v128Load32Lane(offset: number, lane: number): this {
    return this.op(SIMD, ...uleb(0x56), 0x00, ...uleb(offset), lane);
  }
  /** Stores lane `lane` of a v128 as an f32. */
  v128Store32Lane(offset: number, lane: number): this {
    return this.op(SIMD, ...uleb(0x5a), 0x00, ...uleb(offset), lane);
  }
  /** A v128 with the same f32 in every lane. */
  f32x4Const(x: number): this {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    for (let k = 0; k < 4; k++) view.setFloat32(4 * k, x, true);
    return this.op(SIMD, ...uleb(0x0c), ...bytes);
  }
  /** A v128 with the same i32 in every lane. */
  i32x4Const(x: number): this {
    return this.i32x4Lanes([x, x, x, x]);
  }
  /** A v128 of four i32 lanes (a lane mask: −1 where a lane is kept, 0 elsewhere). */
  i32x4Lanes(lanes: readonly [number, number, number, number]): this {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    lanes.forEach((x, k) => view.setInt32(4 * k, x | 0, true));
    return this.op(SIMD, ...uleb(0x0c), ...bytes);
  }
  /** Lane `lane` of an f32x4, as an f32 on the stack. */
  f32x4ExtractLane(lane: number): this {
    return this.op(SIMD, ...uleb(0x1f), lane);
  }
  f32Add(): this {
    return this.op(0x92);
  }
  f32Mul(): this {
    return this.op(0x94);
  }
  f32Gt(): this {
    return this.op(0x5e);
  }
  f32Const(x: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, x, true);
    return this.op(0x43, ...b);
  }
  /** a, b, cond → cond ≠ 0 ? a : b */
  select(): this {
    return this.op(0x1b);
  }
  /** Lanes of two vectors by byte index (0–15 the first, 16–31 the second), as 4-byte lanes: lane k of the result is lane lanes[k] (0–7). */
  i32x4Shuffle(lanes: readonly [number, number, number, number]): this {
    return this.op(SIMD, ...uleb(0x0d), ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]));
  }
  f32Max(): this {
    return this.op(0x97);
  }
  v128And(): this {
    return this.op(SIMD, ...uleb(0x4e));
  }
  v128Or(): this {
    return this.op(SIMD, ...uleb(0x50));
  }
  /** (a & mask) | (b & ~mask), operands a, b, mask. */
  v128Bitselect(): this {
    return this.op(SIMD, ...uleb(0x52));
  }
  i32x4Add(): this {
    return this.op(SIMD, ...uleb(0xae));
  }
  f32x4(op: F32x4Op): this {
    return this.op(SIMD, ...uleb(F32X4[op]));
  }
  /**
   * acc + a·b, with a and b the f32x4s on the stack: f32x4.mul, local.get acc, f32x4.add, a site
   * that the relaxed encoding makes one f32x4.relaxed_madd (see the header).
   */
  madd(acc: Local): this {
    this.madds.push(this.code.length);
    return this.f32x4('mul').get(acc).f32x4('add');
  }
  /** The two low f32 lanes as an f64x2. */
  f64x2PromoteLowF32x4(): this {
    return this.op(SIMD, ...uleb(0x5f));
  }
  /** An f64x2 rounded to the two low f32 lanes (the high lanes 0). */
  f32x4DemoteF64x2Zero(): this {
    return this.op(SIMD, ...uleb(0x5e));
  }
  f64x2Add(): this {
    return this.op(SIMD, ...uleb(0xf0));
  }
  /** Lane `lane` of an f64x2, as an f64 on the stack. */
  f64x2ExtractLane(lane: number): this {
    return this.op(SIMD, ...uleb(0x21), lane);
  }
  f64Add(): this {
    return this.op(0xa0);
  }
  /** An f64 rounded to f32. */
  f32DemoteF64(): this {
    return this.op(0xb6);
  }

  /** A SIMD instruction by its opcode after the prefix (the kernel-form renderer's table, codegen/wasm/kernel-alu.ts). */
  simd(code: number): this {
    return this.op(SIMD, ...uleb(code));
  }
  /** An f32 splat to four lanes. */
  f32x4Splat(): this {
    return this.op(SIMD, ...uleb(0x13));
  }
  /** An i32 splat to four lanes. */
  i32x4Splat(): this {
    return this.op(SIMD, ...uleb(0x11));
  }
  i32Eqz(): this {
    return this.op(0x45);
  }

  /**
   * The encoded body: locals (grouped by type) and code, its multiply-adds fused where `relaxed`;
   * their offsets in it pushed onto `sites` (plus `at`, the body's offset in the module).
   */
  encode(relaxed = false, sites?: number[], at = 0): number[] {
    if (this.depth !== 0) throw new Error('internal: unclosed loop');
    const groups: number[][] = [];
    for (const l of this.locals.slice(this.params)) {
      const last = groups[groups.length - 1];
      if (last && last[1] === TYPE_CODE[l.type]) last[0]!++;
      else groups.push([1, TYPE_CODE[l.type]]);
    }
    const locals = vec(groups.map(([n, t]) => [...uleb(n!), t!]));
    const body = [...locals, ...this.code, 0x0b];
    const out = [...uleb(body.length), ...body];
    const start = out.length - body.length + locals.length;
    if (relaxed) {
      const code = Uint8Array.from(this.code);
      relaxSites(code, this.madds);
      code.forEach((b, i) => (out[start + i] = b));
    }
    if (sites) for (const m of this.madds) sites.push(at + start + m);
    return out;
  }
}

/**
 * A module of exported functions `() => void` or `(start, end) => void` over one memory imported as `env.memory`
 * (`pages` 64 KiB pages, not growable: the arrays viewing it stay valid; `shared` for a memory
 * that worker threads share; `growable`: at least `pages`, no maximum, for the symbolic module's
 * memory, which grows with the sizes of its calls).
 */
export function encodeModule(
  pages: number,
  functions: readonly { name: string; body: Body }[],
  opts: { shared?: boolean; growable?: boolean; relaxed?: boolean; sites?: number[] } = {},
): Uint8Array {
  const types = [
    [0x60, 0x00, 0x00], // func [] -> []
    [0x60, 0x02, 0x7f, 0x7f, 0x00], // func [i32 i32] -> []: a range
  ];
  const typeOf = (b: Body) => {
    if (b.params !== 0 && b.params !== 2) throw new Error(`internal: a function of ${b.params} arguments`);
    return b.params / 2;
  };
  // limits: 0x01 min and max; 0x03 min and max, shared between threads; 0x00 min only (a memory that grows)
  const limits = opts.growable ? [0x00, ...uleb(pages)] : [opts.shared ? 0x03 : 0x01, ...uleb(pages), ...uleb(pages)];
  const memoryImport = [...name('env'), ...name('memory'), 0x02, ...limits];
  const head = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(types)),
    ...section(2, vec([memoryImport])),
    ...section(3, vec(functions.map((f) => uleb(typeOf(f.body))))),
    ...section(7, vec(functions.map((f, k) => [...name(f.name), 0x00, ...uleb(k)]))),
  ];
  // the code section, the offsets of its multiply-adds relative to its contents (then moved past its header)
  const sites: number[] = [];
  const code = [...uleb(functions.length)];
  for (const f of functions) for (const b of f.body.encode(opts.relaxed, sites, code.length)) code.push(b);
  const codeSection = section(10, code);
  const shift = head.length + codeSection.length - code.length;
  opts.sites?.push(...sites.map((s) => s + shift));
  return Uint8Array.from([...head, ...codeSection]);
}

function name(s: string): number[] {
  const b = utf8(s);
  return [...uleb(b.length), ...b];
}
