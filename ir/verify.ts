// The verifier: op arity and attributes, SSA dominance, unique names, and every type equal to
// what the op table's shape rule says. It runs before and after every pass.

import { CompileError } from './errors.js';
import type { Graph } from './graph.js';
import type { AttrKind } from './ops.js';
import { isDim, isStatic, staticShape, SYMBOL } from './dims.js';
import { OPS } from './ops.js';
import { printInst } from './print.js';
import { checkScan, checkScanOut } from './scan.js';
import type { Inst, TensorType, ValueId } from './types.js';
import { formatType, numel, sameShape } from './types.js';

const INITS = ['randn', 'zeros', 'ones', 'uniform'];
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function attrOk(kind: AttrKind, v: unknown): boolean {
  const isNum = (x: unknown) => typeof x === 'number';
  const isInt = (x: unknown) => Number.isInteger(x);
  switch (kind) {
    case 'int':
      return isInt(v);
    case 'num':
    case 'optnum':
      return isNum(v);
    case 'bool':
      return typeof v === 'boolean';
    case 'flag':
      return v === true;
    case 'str':
      return typeof v === 'string';
    case 'ints':
      return Array.isArray(v) && v.every(isInt);
    case 'nums':
      return Array.isArray(v) && v.every(isNum);
    case 'dims':
      return Array.isArray(v) && v.every((d) => isInt(d) || (typeof d === 'string' && isDim(d)));
    case 'init':
      return INITS.includes(v as string);
  }
}

/** Checks attributes against the op's schema; returns a message, or undefined when fine. */
export function checkAttrs(op: string, attrs: Record<string, unknown>): string | undefined {
  const def = (OPS as Record<string, (typeof OPS)[keyof typeof OPS]>)[op];
  if (!def) return `unknown op '${op}'`;
  const schema = def.attrs as Record<string, AttrKind>;
  for (const k of Object.keys(attrs)) if (!(k in schema)) return `${op} has no attribute '${k}'`;
  for (const [k, kind] of Object.entries(schema)) {
    if (!(k in attrs)) {
      if (kind === 'flag' || kind === 'optnum') continue;
      return `${op} needs attribute '${k}' (${kind})`;
    }
    if (!attrOk(kind, attrs[k])) return `${op} attribute '${k}' must be ${kind === 'init' ? INITS.join('|') : kind}`;
  }
  return undefined;
}

/** The type the op table infers for an instruction (sources: their declared type). */
export function inferType(g: Graph, inst: Inst): TensorType {
  const def = OPS[inst.op];
  if (!def.shape) return g.type(inst.result);
  return (def.shape as (a: readonly TensorType[], at: unknown) => TensorType)(
    inst.args.map((a) => g.type(a)),
    inst.attrs,
  );
}

export class VerifyError extends Error {
  override name = 'VerifyError';
}

export function verify(g: Graph, stage = ''): void {
  const where = stage ? ` (${stage})` : '';
  const fail = (inst: Inst | undefined, msg: string): never => {
    const at = inst ? `\n  at: ${printInst(g, inst)}` : '';
    throw new VerifyError(`IR verification failed in graph ${g.kind} ${g.name}${where}: ${msg}${at}`);
  };
  const defined = new Set<ValueId>();
  const names = new Set<string>();
  for (const inst of g.insts) {
    const def = OPS[inst.op];
    if (!def) fail(inst, `unknown op '${inst.op}'`);
    const am = checkAttrs(inst.op, inst.attrs as Record<string, unknown>);
    if (am) fail(inst, am);
    if (def.arity === 'variadic' ? inst.args.length === 0 : inst.args.length !== def.arity)
      fail(inst, `${inst.op} takes ${def.arity} operands, got ${inst.args.length}`);
    for (const a of inst.args) if (!defined.has(a)) fail(inst, `operand %${g.values[a.index]?.name ?? '#' + a.index} is used before it is defined`);
    if (inst.op === 'fwd' && g.kind !== 'backward') fail(inst, 'fwd reads appear only in backward graphs');
    if ((inst.op === 'input' || inst.op === 'param') && g.kind !== 'forward') fail(inst, `${inst.op} appears only in forward graphs`);
    const v = g.values[inst.result.index];
    if (!v || v.id !== inst.result || v.def !== inst.id) fail(inst, 'result value is not defined by this instruction');
    if (defined.has(inst.result)) fail(inst, 'value defined twice');
    if (!IDENT.test(v!.name)) fail(inst, `invalid value name '${v!.name}'`);
    if (names.has(v!.name)) fail(inst, `duplicate value name %${v!.name}`);
    names.add(v!.name);
    const t = v!.type;
    if (!t.shape.every(isDim)) fail(inst, `invalid shape in ${formatType(t)}`);
    if (inst.op === 'const' && !(t.shape.every(isStatic) && inst.attrs.data.length === numel(staticShape(t.shape))))
      fail(inst, `const has ${inst.attrs.data.length} values for ${formatType(t)}`);
    if (inst.op === 'dim' && (t.dtype !== 'f32' || t.shape.length !== 0 || !SYMBOL.test(inst.attrs.name))) fail(inst, `dim is an f32 scalar of a symbol, not ${formatType(t)}`);
    let want: TensorType;
    try {
      want = inferType(g, inst);
    } catch (e) {
      return fail(inst, e instanceof CompileError ? e.message : String(e));
    }
    if (want.dtype !== t.dtype || !sameShape(want.shape, t.shape))
      fail(inst, `declared ${formatType(t)} but the shape rule gives ${formatType(want)}`);
    if (inst.op === 'scan') {
      const sm = checkScan(g, inst);
      if (sm) fail(inst, sm);
      if (t.dtype !== 'f32' || !sameShape(t.shape, [0])) fail(inst, `a scan's value is its token f32[0], not ${formatType(t)}`);
      verify(g.bodies[inst.attrs.body]!, `${stage ? stage + ', ' : ''}body of %${v!.name}`);
    } else if (inst.op === 'scan_out') {
      const sm = defined.has(inst.args[0]!) ? checkScanOut(g, inst) : undefined;
      if (sm) fail(inst, sm);
    }
    defined.add(inst.result);
  }
  const position = new Map(g.insts.map((inst, k) => [inst.id, k] as const));
  for (const gr of g.groups) {
    const at = gr.insts.map((id) => position.get(id));
    if (at.some((k) => k === undefined)) fail(undefined, `group ${gr.kind} lists a removed instruction`);
    if (at.some((k, i) => i > 0 && k !== at[i - 1]! + 1)) fail(undefined, `group ${gr.kind} is not a contiguous run of instructions`);
  }
  const outNames = new Set<string>();
  for (const o of g.outputs) {
    if (!defined.has(o.value)) fail(undefined, `output ${o.name} refers to an undefined value`);
    if (outNames.has(o.name)) fail(undefined, `duplicate output name ${o.name}`);
    outNames.add(o.name);
  }
}
