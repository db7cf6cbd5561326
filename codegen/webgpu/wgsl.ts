// The WGSL renderer of the kernel form (codegen/kernel/form.ts): a kernel is one compute shader
// with one invocation per point of its kept axes; a reduction is a loop of that invocation over
// the reduced axes, summed in blocks of 64 terms (a block's f32 sum joins the total, so that no
// f32 sum runs over thousands of terms: the kernel form asks for an f64 accumulator, which WGSL
// lacks). Sizes of symbolic dimensions are interpolations of the emitted template literal
// (`${B * 64}`): the module compiles a kernel's pipeline for each set of sizes it meets.
//
// Capabilities (WGSL_CAPABILITIES): WGSL has exp, log, sqrt, tanh, sin, cos, floor and pow
// natively (pow only for a base ≥ 0: `gc_pow` gives PyTorch's signs; a constant integer or
// half-integer exponent is products and √ on every target, decompose.ts's expandedPower); the shared decomposition
// pass (codegen/kernel/decompose.ts) rewrites the rest (erf, log1p, expm1) into these before
// rendering, and an op it cannot is a CompileError naming the op and the target.

import type { Dim, Size } from '../../ir/dims.js';
import { numelSize, size } from '../../ir/dims.js';
import { CompileError } from '../../ir/errors.js';
import type { Access, AluOp, EType, Kernel } from '../kernel/form.js';
import { capabilities } from '../kernel/decompose.js';
import { argsOf, epilogueNodes, neededNodes, offsetTerms } from '../kernel/form.js';
import { storedAfterReduction } from '../kernel/eval.js';
import { isRare, rareOnly, rarePlan } from '../kernel/rare.js';

// log, sin and cos are decomposed (codegen/kernel/decompose.ts): WGSL bounds sin and cos only to
// 2⁻¹¹ absolute error (SwiftShader's were 7e-4 off at 1e4), and log's value at 0 and below
// (SwiftShader gave −88 at 0); the decompositions keep PyTorch's values and IEEE's specials
const NATIVE: readonly AluOp[] = ['neg', 'recip', 'abs', 'exp', 'sqrt', 'tanh', 'floor', 'cast', 'toint', 'bits', 'frombits', 'add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'lt', 'le', 'eq', 'shl', 'shr', 'and', 'or', 'where'];
/** The ALU primitives the WGSL renderer writes itself; decompose.ts rewrites the others. */
export const WGSL_CAPABILITIES = capabilities('webgpu', NATIVE);

/** A shader and what the host binds and dispatches for it. */
export interface Shader {
  /** The WGSL source, a template literal's body (sizes of symbolic dimensions are `${...}`). */
  readonly wgsl: string;
  /** The arrays bound at bindings 0, 1, ... */
  readonly arrays: readonly { readonly name: string; readonly write: boolean }[];
  /**
   * The workgroups to dispatch, as JavaScript expressions over the symbolic dimensions; `threads`
   * (a 1-D count of invocations, dispatched in groups of 64) where `groups` is absent.
   */
  readonly threads?: string;
  readonly groups?: readonly [string, string, string];
}

export const WG = 64;

/** A workgroup's tree join in `red`-like workgroup arrays: `join` (reading li and li + s) in halving strides, behind barriers (lines at the function's indent). */
export function treeJoin(join: string): string[] {
  return ['workgroupBarrier();', `for (var s = ${WG / 2}; s > 0; s = s / 2) {`, `  if (li < s) { ${join} }`, '  workgroupBarrier();', '}'];
}

/** A size in WGSL: a literal, or an interpolation of the bound sizes (the template's `${...}`). */
export function sz(s: Dim | Size): string {
  const x = size(s);
  if (x.syms.length === 0) return String(x.coef);
  return `\${${[...(x.coef === 1 ? [] : [String(x.coef)]), ...x.syms].join(' * ')}}`;
}

/** A size as a JavaScript expression over the bound sizes (locals of the module's build function). */
export function js(s: Dim | Size): string {
  const x = size(s);
  if (x.syms.length === 0) return String(x.coef);
  return [...(x.coef === 1 ? [] : [String(x.coef)]), ...x.syms].join(' * ');
}

/**
 * An f32 literal. WGSL has no literal for NaN and the infinities, and a constant expression may
 * not evaluate to one: they are bit patterns read at run time (`gc_special`, PRELUDE).
 */
export function f32(v: number): string {
  const f = Math.fround(v);
  if (Number.isNaN(f)) return 'gc_special(0x7fc00000u)';
  if (f === Infinity) return 'gc_special(0x7f800000u)';
  if (f === -Infinity) return 'gc_special(0xff800000u)';
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return `${v}.0`;
  const t = String(v);
  return Math.fround(Number(t)) === f ? t : String(f);
}

const wtype = (t: EType) => (t === 'bool' ? 'bool' : t);

/** The helper functions a shader may call. */
export const PRELUDE = [
  '// a ** b with PyTorch\'s signs: WGSL leaves pow undefined for a negative base, and at a zero',
  '// base (SwiftShader gave 0 ** -0.5 = 6e18): 1 for b = 0, ±∞ for b < 0 (− at −0 to an odd b), else 0',
  'fn gc_pow(a: f32, b: f32) -> f32 {',
  '  if (a == 0.0) {',
  '    let odd = b == floor(b) && floor(b * 0.5) != b * 0.5 && (bitcast<u32>(a) & 0x80000000u) != 0u;',
  '    if (b < 0.0) { return select(gc_special(0x7f800000u), gc_special(0xff800000u), odd); }',
  '    return select(select(0.0, 1.0, b == 0.0), a, odd);',
  '  }',
  '  if (a > 0.0) { return pow(a, b); }',
  '  if (b == floor(b)) {',
  '    let m = pow(-a, b);',
  '    return select(m, -m, floor(b * 0.5) != b * 0.5);',
  '  }',
  '  return gc_special(0x7fc00000u);',
  '}',
  '// exp of NaN is NaN (SwiftShader gave +∞)',
  'fn gc_exp(x: f32) -> f32 { return select(exp(x), x, gc_isnan(x)); }',
  '// tanh for every f32: some implementations give NaN beyond ±44 (e^x overflows)',
  'fn gc_tanh(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }',
  '// NaN by bits: WGSL lets an implementation assume no float is NaN, so v != v may fold away',
  'fn gc_isnan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }',
  '// NaN and ±∞ from their bits at run time (a constant expression may not evaluate to them)',
  'fn gc_special(b: u32) -> f32 { return bitcast<f32>(b); }',
  '// max and min with a NaN operand are NaN, as torch.maximum (WGSL leaves them undefined)',
  'fn gc_max(a: f32, b: f32) -> f32 { return select(max(a, b), a + b, gc_isnan(a) || gc_isnan(b)); }',
  'fn gc_min(a: f32, b: f32) -> f32 { return select(min(a, b), a + b, gc_isnan(a) || gc_isnan(b)); }',
].join('\n');

/**
 * Binds the arrays a shader touches: `arr(name, write)` gives the variable of each, `at(name,
 * index)` an element of it. With `vec4` (a tiled matmul reading vec4 views) every f32 array is
 * declared `array<vec4<f32>>` and an element is `a<j>[(i) / 4][(i) % 4]`: the runtime binds each
 * arena once (WebGPU forbids a writable binding overlapping another), so an arena read through a
 * vec4 view is one in the whole shader, its arrays placed at multiples of 16 bytes. A write to a
 * component may then access the whole vec4 (the WGSL spec; gpuweb #2152): a shader sets `vec4` only
 * where each vec4 it writes is written by one invocation alone (gemm.ts: Gemm.rowsOf4).
 */
export class Bindings {
  readonly list: { name: string; write: boolean; dtype: 'f32' | 'i32' }[] = [];
  vec4 = false;

  constructor(private readonly dtypeOf: (array: string) => 'f32' | 'i32') {}

  /** Element `index` of array `name` (a reference: read it or assign to it). */
  at(name: string, index: string, write = false): string {
    const v = this.arr(name, write);
    if (!this.vec4 || this.list.find((x) => x.name === name)!.dtype !== 'f32') return `${v}[${index}]`;
    return `${v}[(${index}) / 4][(${index}) % 4]`;
  }

  arr(name: string, write = false): string {
    let j = this.list.findIndex((b) => b.name === name);
    if (j < 0) {
      j = this.list.length;
      this.list.push({ name, write, dtype: this.dtypeOf(name) });
    } else if (write) this.list[j]!.write = true;
    return `a${j}`;
  }

  decls(): string[] {
    return this.list.map((b, j) => `@group(0) @binding(${j}) var<storage, ${b.write ? 'read_write' : 'read'}> a${j}: array<${this.vec4 && b.dtype === 'f32' ? 'vec4<f32>' : b.dtype}>;`);
  }

  arrays(): { name: string; write: boolean }[] {
    return this.list.map((b) => ({ name: b.name, write: b.write }));
  }
}

/** The opening of a 1-D shader: `gi`, the invocation's index, returning beyond `n`. */
export function entry1d(n: string): string[] {
  return [
    `@compute @workgroup_size(${WG})`,
    'fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {',
    `  let gi = i32(gid.x + gid.y * nwg.x * ${WG}u);`,
    `  if (gi >= ${n}) { return; }`,
  ];
}

/** Lines that split the flat index `flat` into coordinates `names` of `dims` (row-major). */
export function unflatten(flat: string, dims: readonly (Dim | Size)[], names: readonly string[], decl = 'let'): string[] {
  if (dims.length === 0) return [];
  if (dims.length === 1) return [`${decl} ${names[0]} = ${flat};`];
  const out: string[] = [`var ${names[0]}_r = ${flat};`];
  for (let d = dims.length - 1; d > 0; d--) {
    out.push(`${decl} ${names[d]} = ${names[0]}_r % ${sz(dims[d]!)};`, `${names[0]}_r = ${names[0]}_r / ${sz(dims[d]!)};`);
  }
  out.push(`${decl} ${names[0]} = ${names[0]}_r;`);
  return out;
}

/** An index expression: offset + Σ strides[d] · x_d. */
export function indexOf(strides: readonly Size[], offset: Size | readonly Size[], coord: (d: number) => string): string {
  const terms: string[] = [];
  for (const o of offsetTerms(offset)) terms.push(sz(o));
  strides.forEach((s, d) => {
    if (s.coef === 0) return;
    terms.push(s.coef === 1 && s.syms.length === 0 ? coord(d) : `${sz(s)} * ${coord(d)}`);
  });
  return terms.length ? terms.join(' + ') : '0';
}

function unsupported(k: Kernel, op: string): CompileError {
  return new CompileError(
    `the webgpu target cannot render ${op} (in kernel ${k.name}: ${k.notes[0] ?? ''})`,
    `the op ${op} has no WGSL form here and no decomposition: use another target (ts, wasm) for this model`,
  );
}

/**
 * The statements computing the nodes of `which` (and the stores of `stores`) at the point `x_d`;
 * `given`: nodes whose value the caller has (a reduction's sum, a routine's result).
 */
export function statements(k: Kernel, which: readonly boolean[], stores: readonly Kernel['stores'][number][], b: Bindings, given: ReadonlyMap<number, string>): string[] {
  const coord = (d: number) => `x${d}`;
  const v = (i: number) => given.get(i) ?? `v${i}`;
  const lines: string[] = [];
  const load = (a: Access, dtype: EType): string => {
    const read = b.at(a.arg, indexOf(a.strides, a.offset, coord));
    const conds = (a.guards ?? []).flatMap((g) => [...(g.lo > 0 ? [`x${g.axis} >= ${g.lo}`] : []), `x${g.axis} < ${sz(g.hi)}`]);
    if (conds.length === 0) return read;
    return `select(${dtype === 'i32' ? '0' : '0.0'}, ${read}, ${conds.join(' && ')})`;
  };
  const stmt = (i: number): string => {
    const n = k.nodes[i]!;
    const a = argsOf(n).map(v);
    let e: string;
    switch (n.op) {
      case 'const':
        e = n.dtype === 'f32' ? f32(n.value) : n.dtype === 'i32' ? `${n.value}` : n.value ? 'true' : 'false';
        break;
      case 'load':
        e = load(n.access, n.dtype);
        break;
      case 'coord':
        e = coord(n.axis);
        break;
      case 'dim':
        e = `f32(${sz(n.name)})`;
        break;
      case 'reduce':
        throw new CompileError(`internal: the webgpu renderer met a reduction outside its loop`);
      case 'neg':
        e = `-(${a[0]})`;
        break;
      case 'recip':
        e = `1.0 / ${a[0]}`;
        break;
      case 'exp':
        e = `gc_exp(${a[0]})`;
        break;
      case 'abs':
      case 'sqrt':
      case 'floor':
        e = `${n.op}(${a[0]})`;
        break;
      case 'tanh':
        e = `gc_tanh(${a[0]})`;
        break;
      case 'cast':
        e = k.nodes[n.args[0]]!.dtype === 'bool' ? `select(0.0, 1.0, ${a[0]})` : `f32(${a[0]})`;
        break;
      case 'add':
        e = `${a[0]} + ${a[1]}`;
        break;
      case 'sub':
        e = `${a[0]} - ${a[1]}`;
        break;
      case 'mul':
        e = `${a[0]} * ${a[1]}`;
        break;
      case 'div':
        e = `${a[0]} / ${a[1]}`;
        break;
      case 'max':
      case 'min':
        e = n.dtype === 'f32' ? `gc_${n.op}(${a[0]}, ${a[1]})` : `${n.op}(${a[0]}, ${a[1]})`;
        break;
      case 'toint':
        // WGSL's conversion truncates and saturates; NaN gives 0 as the kernel form's toint
        e = `select(i32(${a[0]}), 0, gc_isnan(${a[0]}))`;
        break;
      case 'bits':
        e = `bitcast<i32>(${a[0]})`;
        break;
      case 'frombits':
        e = `bitcast<f32>(${a[0]})`;
        break;
      case 'shl':
        e = `${a[0]} << u32(${a[1]})`;
        break;
      case 'shr':
        e = `${a[0]} >> u32(${a[1]})`;
        break;
      case 'and':
        e = `${a[0]} & ${a[1]}`;
        break;
      case 'or':
        e = `${a[0]} | ${a[1]}`;
        break;
      case 'pow':
        e = `gc_pow(${a[0]}, ${a[1]})`; // a constant integer or half-integer exponent is decomposed (expandedPower)
        break;
      case 'lt':
        e = `${a[0]} < ${a[1]}`;
        break;
      case 'le':
        e = `${a[0]} <= ${a[1]}`;
        break;
      case 'eq':
        e = `${a[0]} == ${a[1]}`;
        break;
      case 'where':
        e = `select(${a[2]}, ${a[1]}, ${a[0]})`;
        break;
      default:
        throw unsupported(k, (n as { op: string }).op);
    }
    return `let v${i}: ${wtype(n.dtype)} = ${e};`;
  };
  lines.push(...rareStatements(k, k.nodes.flatMap((_n, i) => (which[i] && !given.has(i) ? [i] : [])), v, stmt));
  for (const s of stores) {
    // bound first: an array the kernel only writes gets its type from the binding (an i32 arange)
    b.arr(s.access.arg, true);
    const dt = b.list.find((x) => x.name === s.access.arg)?.dtype;
    const nd = k.nodes[s.node]!;
    const val = nd.dtype === 'bool' ? `select(0.0, 1.0, ${v(s.node)})` : (dt ?? 'f32') !== nd.dtype ? `${dt ?? 'f32'}(${v(s.node)})` : v(s.node);
    lines.push(`${b.at(s.access.arg, indexOf(s.access.strides, s.access.offset, coord), true)} = ${val};`);
  }
  return lines;
}

/**
 * The statements of the nodes `pass` by `stmt`, the nodes only the `then` sides of rare wheres on
 * a condition use (codegen/kernel/rare.ts) in an `if` on it, the wheres `var`s set to their `else`
 * operands before it.
 */
function rareStatements(k: Kernel, pass: readonly number[], v: (i: number) => string, stmt: (i: number) => string): string[] {
  if (!k.nodes.some(isRare)) return pass.map(stmt);
  const only = rareOnly(k.nodes, neededNodes(k, k.stores.map((s) => s.node), true), new Set(k.stores.map((s) => s.node)));
  return rarePlan(k.nodes, pass, only).flatMap((it) => {
    if (it.kind === 'node') return [stmt(it.node)];
    const arg = (w: number, j: number) => v(argsOf(k.nodes[w]!)[j]!);
    return [
      ...it.wheres.map((w) => `var v${w}: ${wtype(k.nodes[w]!.dtype)} = ${arg(w, 2)};`),
      `if (${v(it.cond)}) {`,
      ...it.nodes.map((i) => `  ${stmt(i)}`),
      ...it.wheres.map((w) => `  v${w} = ${arg(w, 1)};`),
      '}',
    ];
  });
}

/** The number of terms a block of a sum adds before it joins the total. */
const BLOCK = 64;
/** A reduction of at most this many results over at least this many terms each takes a workgroup per result. */
const WIDE_MAX_RESULTS = 4096;
const WIDE_MIN_TERMS = 512;

/** A kernel as one compute shader: an invocation per point of its kept axes. */
export function renderKernel(k: Kernel, dtypeOf: (array: string) => 'f32' | 'i32'): Shader {
  const b = new Bindings(dtypeOf);
  const all = k.domain.map((_d, i) => i);
  const kept = all.filter((d) => !k.axes.includes(d));
  const keptDims = kept.map((d) => k.domain[d]!);
  const n = numelSize(keptDims);
  const body: string[] = [...unflatten('gi', keptDims, kept.map((d) => `x${d}`))];
  if (k.axes.length === 0) {
    body.push(...statements(k, k.nodes.map(() => true), k.stores, b, new Map()));
  } else {
    const epi = epilogueNodes(k);
    const reduces = k.nodes.flatMap((nd, i) => (nd.op === 'reduce' ? [{ i, red: nd.red, x: nd.args[0] }] : []));
    const inLoop = k.stores.filter((s) => !storedAfterReduction(k, s.access.strides));
    const after = k.stores.filter((s) => storedAfterReduction(k, s.access.strides));
    const loopNodes = neededNodes(k, [...reduces.map((r) => r.x), ...inLoop.map((s) => s.node)]).map((x, i) => x && !epi[i]);
    const afterNodes = neededNodes(k, after.map((s) => s.node));
    const redDims = k.axes.map((d) => k.domain[d]!);
    const R = numelSize(redDims);
    const sum = reduces.some((r) => r.red === 'sum');
    const blocked = sum && (R.syms.length > 0 || R.coef > 4 * BLOCK);
    body.push(...reduces.map((r, j) => `var acc${j}: f32 = ${r.red === 'sum' ? '0.0' : f32(-Infinity)};`));
    // a max as the kernel form's (REDUCE_STEP): v > acc, so a NaN term never wins
    const step = (r: (typeof reduces)[number], j: number, into: string) =>
      r.red === 'sum' ? `${into} += v${r.x};` : `acc${j} = select(acc${j}, v${r.x}, v${r.x} > acc${j});`;
    const inner = [
      ...unflatten('ri', redDims, k.axes.map((d) => `x${d}`)),
      ...statements(k, loopNodes, inLoop, b, new Map()),
    ];
    // few results of long reductions (a loss, a norm's statistics): a workgroup per result, its
    // 64 invocations summing strided parts that a tree in workgroup memory joins
    const wide = inLoop.length === 0 && reduces.every((r) => r.red === 'sum') && n.syms.length === 0 && n.coef <= WIDE_MAX_RESULTS && (R.syms.length > 0 || R.coef >= WIDE_MIN_TERMS);
    if (wide) {
      const given = new Map(reduces.map((r, j) => [r.i, `acc${j}`] as const));
      const join = (_r: (typeof reduces)[number], j: number) => `red${j}[li] = red${j}[li] + red${j}[li + s];`;
      const lines = [
        `let live = gi < ${sz(n)};`,
        ...body.slice(0, -reduces.length),
        ...reduces.map((r, j) => `var acc${j}: f32 = ${r.red === 'sum' ? '0.0' : f32(-Infinity)};`),
        `for (var ri = li; ri < select(0, ${sz(R)}, live); ri += ${WG}) {`,
        ...inner,
        ...reduces.map((r, j) => step(r, j, `acc${j}`)),
        '}',
        ...reduces.map((_r, j) => `red${j}[li] = acc${j};`),
        ...treeJoin(reduces.map(join).join(' ')),
        'if (li == 0 && live) {',
        ...reduces.map((_r, j) => `  acc${j} = red${j}[0];`),
        ...k.axes.map((d) => `  let x${d} = 0;`),
        ...statements(k, afterNodes, after, b, given).map((l) => `  ${l}`),
        '}',
      ];
      const wgsl = [
        ...k.notes.map((l) => `// ${l}`),
        ...b.decls(),
        ...reduces.map((_r, j) => `var<workgroup> red${j}: array<f32, ${WG}>;`),
        PRELUDE,
        `@compute @workgroup_size(${WG})`,
        'fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lidx: u32, @builtin(num_workgroups) nwg: vec3<u32>) {',
        '  let gi = i32(wid.x + wid.y * nwg.x);',
        '  let li = i32(lidx);',
        ...lines.map((l) => `  ${l}`),
        '}',
      ].join('\n');
      return { wgsl, arrays: b.arrays(), threads: `${js(n)} * ${WG}` };
    }
    if (blocked) {
      body.push(
        `for (var rb = 0; rb < ${sz(R)}; rb += ${BLOCK}) {`,
        ...reduces.flatMap((r, j) => (r.red === 'sum' ? [`var part${j}: f32 = 0.0;`] : [])),
        `for (var ri = rb; ri < min(rb + ${BLOCK}, ${sz(R)}); ri++) {`,
        ...inner,
        ...reduces.map((r, j) => step(r, j, `part${j}`)),
        '}',
        ...reduces.flatMap((r, j) => (r.red === 'sum' ? [`acc${j} += part${j};`] : [])),
        '}',
      );
    } else {
      body.push(`for (var ri = 0; ri < ${sz(R)}; ri++) {`, ...inner, ...reduces.map((r, j) => step(r, j, `acc${j}`)), '}');
    }
    // the epilogue reads values that do not vary along the reduced axes: at 0 there
    body.push(...k.axes.map((d) => `let x${d} = 0;`));
    const given = new Map(reduces.map((r, j) => [r.i, `acc${j}`] as const));
    body.push(...statements(k, afterNodes, after, b, given));
  }
  const wgsl = [
    ...k.notes.map((l) => `// ${l}`),
    ...b.decls(),
    PRELUDE,
    ...entry1d(sz(n)),
    ...body.map((l) => `  ${l}`),
    '}',
  ].join('\n');
  return { wgsl, arrays: b.arrays(), threads: js(n) };
}
