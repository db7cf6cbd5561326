// Parser of the IR text format (see print.ts). Every problem is a CompileError located at
// `file:line:col` of the IR text; no other kind of exception escapes for any input.

import type { Dim } from './dims.js';
import { asDim, isDim, numelSize, size, sizeEq } from './dims.js';
import { CompileError } from './errors.js';
import { Graph, Names } from './graph.js';
import type { AttrsOf, OpKind } from './ops.js';
import { OPS } from './ops.js';
import { fmtName } from './print.js';
import { checkAttrs, inferType } from './verify.js';
import { checkScan, checkScanOut } from './scan.js';
import type { DType, GraphKind, InstId, InstOf, Loc, TensorType, ValueId } from './types.js';
import { formatType, sameShape } from './types.js';

/**
 * How deep `[` may nest in an attribute value. Attributes are flat arrays at most; the bound keeps
 * the recursive descent of attrValue from overflowing the stack on text like `[[[[…`.
 */
const MAX_ATTR_DEPTH = 32;

class Cursor {
  pos = 0;
  line = 1;
  col = 1;
  constructor(
    readonly text: string,
    readonly file: string,
  ) {}

  loc(): Loc {
    return { file: this.file, line: this.line, col: this.col };
  }

  error(msg: string, hint = 'see the IR text format in README.md'): never {
    throw new CompileError(msg, hint, this.loc());
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  advance(): string {
    const c = this.text[this.pos++] ?? '';
    if (c === '\n') {
      this.line++;
      this.col = 1;
    } else this.col++;
    return c;
  }

  /** Skips spaces and tabs; with `newlines`, also line breaks and `#` comment lines. */
  skip(newlines = false): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r') this.advance();
      else if (newlines && c === '\n') this.advance();
      else if (newlines && c === '#') while (this.peek() !== '\n' && this.peek() !== '') this.advance();
      else return;
    }
  }

  eat(s: string): boolean {
    this.skip();
    if (this.text.startsWith(s, this.pos)) {
      for (let i = 0; i < s.length; i++) this.advance();
      return true;
    }
    return false;
  }

  expect(s: string): void {
    if (!this.eat(s)) this.error(`expected '${s}' but found ${this.found()}`);
  }

  found(): string {
    const c = this.peek();
    if (c === '') return 'the end of the text';
    if (c === '\n') return 'the end of the line';
    const m = /^\S{1,20}/.exec(this.text.slice(this.pos));
    return `'${m ? m[0] : c}'`;
  }

  ident(what: string): string {
    this.skip();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.pos, this.pos + 256));
    if (!m) this.error(`expected ${what} but found ${this.found()}`);
    for (let i = 0; i < m[0].length; i++) this.advance();
    return m[0];
  }

  string(): string {
    this.skip();
    const start = this.loc();
    if (this.peek() !== '"') this.error(`expected a string but found ${this.found()}`);
    let raw = this.advance();
    for (;;) {
      const c = this.advance();
      if (c === '' || c === '\n') throw new CompileError('unterminated string', 'close the string with "', start);
      raw += c;
      if (c === '\\') raw += this.advance();
      else if (c === '"') break;
    }
    try {
      return JSON.parse(raw) as string;
    } catch {
      throw new CompileError(`invalid string ${raw}`, 'strings use JSON escapes', start);
    }
  }

  /** A name that is an identifier or a quoted string. */
  name(what: string): string {
    this.skip();
    return this.peek() === '"' ? this.string() : this.ident(what);
  }

  number(): number {
    this.skip();
    const m = /^(-?inf|nan|-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)/.exec(this.text.slice(this.pos, this.pos + 64));
    if (!m) this.error(`expected a number but found ${this.found()}`);
    for (let i = 0; i < m[0].length; i++) this.advance();
    const s = m[0];
    return s === 'inf' ? Infinity : s === '-inf' ? -Infinity : s === 'nan' ? NaN : Number(s);
  }

  int(what: string): number {
    const at = this.loc();
    const n = this.number();
    if (!Number.isInteger(n) || n < 0) throw new CompileError(`expected ${what} (a non-negative integer), got ${n}`, 'see the IR text format in README.md', at);
    return n;
  }

  /** An attribute value; `depth` counts the arrays it is nested in. */
  attrValue(depth = 0): unknown {
    this.skip();
    const c = this.peek();
    if (c === '"') return this.string();
    if (c === '[') {
      if (depth >= MAX_ATTR_DEPTH) this.error(`attribute value nested more than ${MAX_ATTR_DEPTH} arrays deep`, 'attribute values are numbers, booleans, strings or arrays of numbers');
      this.advance();
      const items: unknown[] = [];
      if (this.eat(']')) return items;
      do items.push(this.attrValue(depth + 1));
      while (this.eat(','));
      this.expect(']');
      return items;
    }
    if (this.eat('true')) return true;
    if (this.eat('false')) return false;
    return this.number();
  }
}

export interface ParseOptions {
  /** File name for error locations. */
  readonly file?: string;
}

/** Parses one graph. */
export function parseGraph(text: string, opts: ParseOptions = {}): Graph {
  const c = new Cursor(text, opts.file ?? '<ir>');
  c.skip(true);
  if (!c.eat('graph')) c.error(`expected 'graph' but found ${c.found()}`);
  c.skip();
  const kindAt = c.loc();
  const kind = c.ident("'forward' or 'backward'");
  if (kind !== 'forward' && kind !== 'backward') throw new CompileError(`unknown graph kind '${kind}'`, "use 'forward' or 'backward'", kindAt);
  const g = new Graph(c.name('a graph name'), kind as GraphKind, new Names());
  c.expect('{');
  parseBlock(c, g);
  c.skip(true);
  if (c.peek() !== '') c.error(`unexpected ${c.found()} after the graph`);
  return g;
}

/** Instructions, groups and the return line of g, up to its closing `}` (a scan's region too). */
function parseBlock(c: Cursor, g: Graph, depth = 0): void {
  const byName = new Map<string, ValueId>();
  let groupKind: string | undefined;
  let groupInsts: InstId[] = [];
  for (;;) {
    c.skip(true);
    if (c.eat('return')) break;
    if (c.peek() === '}' && groupKind !== undefined) {
      // the printer never writes one, and one would renumber the groups after it
      if (groupInsts.length === 0) c.error('empty group', 'a group holds at least one instruction: remove the empty group');
      c.advance();
      g.groups.push({ kind: groupKind, insts: groupInsts });
      groupKind = undefined;
      continue;
    }
    if (c.eat('group')) {
      if (groupKind !== undefined) c.error('groups do not nest');
      c.ident('a group name');
      groupKind = c.ident('a group kind');
      groupInsts = [];
      c.expect('{');
      continue;
    }
    const id = parseInst(c, g, byName, depth);
    if (groupKind !== undefined) groupInsts.push(g.value(id).def);
  }
  if (groupKind !== undefined) c.error('unclosed group before return');
  parseOutputs(c, g, byName);
  c.skip(true);
  c.expect('}');
}

/** How deep scan regions may nest in IR text (the parser recurses once a level). */
const MAX_REGION_DEPTH = 16;

/** A scan's region after its line: `{`, the body graph's lines, `}`; stored at its `body` index. */
function parseRegion(c: Cursor, g: Graph, inst: InstOf<'scan'>, at: Loc, depth: number): void {
  if (depth >= MAX_REGION_DEPTH) c.error(`scan regions nested more than ${MAX_REGION_DEPTH} deep`, 'nest fewer scans');
  if (!c.eat('{')) c.error(`expected '{' and the scan's body after the scan, but found ${c.found()}`, 'a scan is followed by its region: { ...instructions; return c0=%v, ... }');
  const body = new Graph(`${g.name}_body${inst.attrs.body}`, 'forward', new Names());
  parseBlock(c, body, depth + 1);
  const k = inst.attrs.body;
  // bodies are numbered in order (a removed scan leaves a gap): a far index is a typo
  if (k > g.bodies.length + 1024) throw new CompileError(`scan body #${k} is far past the ${g.bodies.length} bodies before it`, 'number the scans\' bodies from 0, in order', at);
  if (g.bodies[k] !== undefined && g.bodies[k]!.insts.length > 0) throw new CompileError(`scan body #${k} is defined twice`, 'give each scan its own body index', at);
  while (g.bodies.length < k) g.bodies.push(new Graph(`${g.name}_unused`, 'forward', new Names()));
  g.bodies[k] = body;
  const bad = checkScan(g, inst);
  if (bad) throw new CompileError(bad, 'the scan\'s operands, attributes and body must agree (ir/scan.ts)', at);
}

/** The `name=%value` list after `return`, possibly empty; names are unique, as verify() wants. */
function parseOutputs(c: Cursor, g: Graph, byName: Map<string, ValueId>): void {
  c.skip();
  if (c.peek() === '\n' || c.peek() === '}') return;
  const names = new Set<string>();
  do {
    c.skip();
    const at = c.loc();
    const name = c.name('an output name');
    if (names.has(name)) throw new CompileError(`duplicate output name ${fmtName(name)}`, 'each output of a graph has its own name', at);
    names.add(name);
    c.expect('=');
    g.outputs.push({ name, value: ref(c, byName) });
  } while (c.eat(','));
}

function ref(c: Cursor, byName: Map<string, ValueId>): ValueId {
  c.skip();
  const at = c.loc();
  c.expect('%');
  const name = c.ident('a value name');
  const id = byName.get(name);
  if (id === undefined) throw new CompileError(`%${name} is not defined before this use`, 'values must be defined on an earlier line', at);
  return id;
}

function parseType(c: Cursor): TensorType {
  c.skip();
  const at = c.loc();
  const dtype = c.ident('a dtype');
  if (dtype !== 'f32' && dtype !== 'i32') throw new CompileError(`unknown dtype '${dtype}'`, 'use f32 or i32', at);
  c.expect('[');
  const shape: Dim[] = [];
  if (!c.eat(']')) {
    // a dimension is a size, a symbol bound per call (`f32[B,30]`) or a product of them (`f32[B*64,30]`)
    do {
      c.skip();
      const at = c.loc();
      let d: Dim = /[A-Za-z_]/.test(c.peek()) ? c.ident('a dimension') : c.int('a dimension');
      if (typeof d === 'string') {
        while (c.eat('*')) d += `*${/[A-Za-z_]/.test(c.peek()) ? c.ident('a dimension') : c.int('a dimension')}`;
        if (!isDim(d)) throw new CompileError(`the dimension ${d} is not in its canonical form`, `write it as ${asDim(size(d))}: its symbols sorted, then its number`, at);
      }
      shape.push(d);
    } while (c.eat(','));
    c.expect(']');
  }
  return { dtype: dtype as DType, shape };
}

function parseInst(c: Cursor, g: Graph, byName: Map<string, ValueId>, depth: number): ValueId {
  const lineAt = c.loc();
  c.expect('%');
  const name = c.ident('a value name');
  if (byName.has(name)) throw new CompileError(`%${name} is defined twice`, 'each value is defined once (SSA)', lineAt);
  c.expect(':');
  const type = parseType(c);
  c.expect('=');
  c.skip();
  const opAt = c.loc();
  const op = c.ident('an op name');
  if (!Object.hasOwn(OPS, op)) throw new CompileError(`unknown op '${op}'`, `ops are: ${Object.keys(OPS).join(', ')}`, opAt);
  checkSourceKind(op, g.kind, opAt);
  const def = OPS[op as OpKind];
  const args: ValueId[] = [];
  c.skip();
  if (c.peek() === '%') {
    do args.push(ref(c, byName));
    while (c.eat(','));
  }
  if (def.arity === 'variadic' ? args.length === 0 : args.length !== def.arity)
    throw new CompileError(`${op} takes ${def.arity === 'variadic' ? 'one or more' : def.arity} operands, got ${args.length}`, 'check the operand list', opAt);
  const attrs: Record<string, unknown> = {};
  c.skip();
  if (c.peek() === '{') {
    c.advance();
    do {
      const k = c.ident('an attribute name');
      c.expect('=');
      attrs[k] = c.attrValue();
    } while (c.eat(','));
    c.expect('}');
  }
  const bad = checkAttrs(op, attrs);
  if (bad) throw new CompileError(bad, 'see the op table in ir/ops.ts', opAt);
  let loc: Loc | undefined;
  if (c.eat('@')) {
    c.skip();
    const file = c.peek() === '"' ? c.string() : bareFile(c);
    c.expect(':');
    const line = c.int('a line number');
    c.expect(':');
    const col = c.int('a column number');
    let grad: string | undefined;
    if (c.eat('grad(')) {
      grad = c.ident('an op name');
      c.expect(')');
    }
    loc = grad ? { file, line, col, grad } : { file, line, col };
    c.skip();
    if (c.eat('via ')) {
      // an instruction a g.grad call emitted: where that call is, in the same file
      const vl = c.int('a line number');
      c.expect(':');
      const vc = c.int('a column number');
      loc = { ...loc, via: { file, line: vl, col: vc } };
    }
  }
  c.skip();
  if (op !== 'scan' && c.peek() !== '\n' && c.peek() !== '') c.error(`unexpected ${c.found()} at the end of the instruction`);
  const id = g.append(op as OpKind, args, attrs as AttrsOf[OpKind], type, loc, { exact: name });
  byName.set(name, id);
  const inst = g.def(id);
  if (inst.op === 'scan') {
    parseRegion(c, g, inst, opAt, depth);
    if (type.dtype !== 'f32' || !sameShape(type.shape, [0])) throw new CompileError(`%${name} is declared ${formatType(type)} but a scan's value is its token f32[0]`, 'fix the declared type', lineAt);
  } else if (inst.op === 'scan_out') {
    const bad = g.def(inst.args[0]!).op === 'scan' ? checkScanOut(g, inst) : 'scan_out reads a value that is not a scan';
    if (bad) throw new CompileError(bad, 'fix the declared type or the index', lineAt);
  }
  if (def.shape) {
    let want: TensorType;
    try {
      want = inferType(g, inst);
    } catch (e) {
      if (e instanceof CompileError) throw new CompileError(e.message, e.hint, opAt);
      throw e;
    }
    if (want.dtype !== type.dtype || !sameShape(want.shape, type.shape))
      throw new CompileError(`%${name} is declared ${formatType(type)} but ${op} gives ${formatType(want)}`, 'fix the declared type', lineAt);
  } else if (op === 'const' && !sizeEq(numelSize(type.shape), (attrs.data as number[]).length))
    throw new CompileError(`const has ${(attrs.data as number[]).length} values for ${formatType(type)}`, 'give one value per element', opAt);
  return id;
}

/**
 * Sources belong to one kind of graph: `input` and `param` feed a forward graph, `fwd` reads a
 * forward value into a backward graph. This is verify()'s rule, checked here too so that a graph
 * that parses is one that verifies, and the error points at the op in the text.
 */
function checkSourceKind(op: string, kind: GraphKind, at: Loc): void {
  if (op === 'fwd' && kind !== 'backward')
    throw new CompileError('fwd reads appear only in backward graphs', 'a forward graph reads its data with input and param', at);
  if ((op === 'input' || op === 'param') && kind !== 'forward')
    throw new CompileError(`${op} appears only in forward graphs`, 'a backward graph reads forward values with fwd', at);
}

function bareFile(c: Cursor): string {
  c.skip();
  const m = /^[A-Za-z0-9_./-]+?(?=:\d)/.exec(c.text.slice(c.pos, c.pos + 1024));
  if (!m) c.error(`expected a file name but found ${c.found()}`);
  for (let i = 0; i < m[0].length; i++) c.advance();
  return m[0];
}
