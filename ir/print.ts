// The IR text format. One instruction a line:
//
//   %hprebn: f32[32,64] = add %t3, %b1 @ makemore.ts:27:47
//   %bnmeani: f32[1,64] = sum %hprebn {axes=[0], keepDims=true} @ makemore.ts:29:36
//
// Attributes print as `{key=value}` with numbers, booleans, strings and number arrays. Fused
// groups print as `group NAME KIND { ... }` blocks around their instructions; the memory plan
// prints as `# buffer` comment lines, which the parser skips. `parseGraph(printGraph(g))`
// rebuilds the same graph.

import type { Graph } from './graph.js';
import type { Inst, Loc } from './types.js';
import { formatType } from './types.js';

export function fmtNumber(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (Object.is(x, -0)) return '-0';
  return String(x);
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BARE_FILE = /^[A-Za-z0-9_./-]+$/;

export function fmtName(s: string): string {
  return IDENT.test(s) ? s : JSON.stringify(s);
}

function fmtAttr(v: unknown): string {
  if (typeof v === 'number') return fmtNumber(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(fmtAttr).join(', ')}]`;
  throw new Error(`internal: cannot print attribute ${String(v)}`);
}

export function fmtAttrs(attrs: object): string {
  const entries = Object.entries(attrs);
  if (entries.length === 0) return '';
  return ` {${entries.map(([k, v]) => `${k}=${fmtAttr(v)}`).join(', ')}}`;
}

export function fmtLocSuffix(loc: Loc | undefined): string {
  if (!loc) return '';
  const f = BARE_FILE.test(loc.file) ? loc.file : JSON.stringify(loc.file);
  return ` @ ${f}:${loc.line}:${loc.col}${loc.grad ? ` grad(${loc.grad})` : ''}${loc.via ? ` via ${loc.via.line}:${loc.via.col}` : ''}`;
}

/** The text of one instruction, without indentation; with `locs` false, without its location. */
export function printInst(g: Graph, inst: Inst, locs = true): string {
  const v = g.value(inst.result);
  const args = inst.args.map((a) => `%${g.value(a).name}`).join(', ');
  return `%${v.name}: ${formatType(v.type)} = ${inst.op}${args ? ' ' + args : ''}${fmtAttrs(inst.attrs)}${locs ? fmtLocSuffix(inst.loc) : ''}`;
}

export interface PrintOptions {
  /** Extra comment lines after the header (e.g. the memory plan). */
  readonly preamble?: readonly string[];
  /** Print locations (default true). */
  readonly locs?: boolean;
}

export function printGraph(g: Graph, opts: PrintOptions = {}): string {
  // Locations are left out when printing rather than cut from the printed line afterwards: a
  // string attribute may itself contain " @ ".
  const locs = opts.locs ?? true;
  const out: string[] = [`graph ${g.kind} ${fmtName(g.name)} {`];
  for (const c of opts.preamble ?? []) out.push(`  # ${c}`);
  printBlock(g, '  ', locs, out);
  out.push('}');
  return out.join('\n') + '\n';
}

/**
 * The instructions of g, its groups and its `return` line at `indent`; a scan is followed by
 * its region, the body graph's lines one level deeper between `{` and `}`.
 */
function printBlock(g: Graph, indent: string, locs: boolean, out: string[]): void {
  const groupOf = new Map<number, number>();
  g.groups.forEach((gr, gi) => gr.insts.forEach((id) => groupOf.set(id, gi)));
  let open = -1;
  for (const inst of g.insts) {
    const gi = groupOf.get(inst.id) ?? -1;
    if (gi !== open) {
      if (open >= 0) out.push(`${indent}}`);
      if (gi >= 0) out.push(`${indent}group g${gi} ${g.groups[gi]!.kind} {`);
      open = gi;
    }
    const at = gi >= 0 ? indent + '  ' : indent;
    const body = inst.op === 'scan' ? g.bodies[inst.attrs.body] : undefined;
    out.push(at + printInst(g, inst, locs) + (body ? ' {' : ''));
    if (body) {
      printBlock(body, at + '  ', locs, out);
      out.push(`${at}}`);
    }
  }
  if (open >= 0) out.push(`${indent}}`);
  const outs = g.outputs.map((o) => `${fmtName(o.name)}=%${g.value(o.value).name}`).join(', ');
  out.push(`${indent}return ${outs}`);
}
