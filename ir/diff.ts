// An IR-aware diff. Values are matched by name and structure, not by numbering: a named value
// is itself; a temporary (`t12`) is the structure that computes it (op, type, attributes and
// the identities of its operands). Renaming temporaries or reordering independent lines is
// therefore no change; what is left is printed as a unified diff of instructions.

import type { Graph } from './graph.js';
import { fmtAttrs, fmtName } from './print.js';
import type { Inst, ValueId } from './types.js';
import { formatType } from './types.js';

const TEMP = /^t\d+$/;

/** A 52-bit content hash (two FNV-1a lanes), so that equal structures agree across graphs. */
function hash(s: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
  }
  return `#${h1.toString(16)}${(h2 & 0xfffff).toString(16)}`;
}

/**
 * The identity of every value of g: `%name` for named values; for temporaries, a hash of the
 * structure that computes them (whose operands are identities in turn).
 */
function identities(g: Graph, ignoreNames = false): Map<ValueId, string> {
  const ids = new Map<ValueId, string>();
  for (const inst of g.insts) ids.set(inst.result, anonymous(g, inst, ignoreNames) ? hash(structureOf(g, inst, ids, ignoreNames)) : `%${g.value(inst.result).name}`);
  return ids;
}

/**
 * Whether a value is identified by the structure that computes it rather than by its name: a
 * temporary, or with `ignoreNames` every value but the params and inputs (the module's keys).
 */
function anonymous(g: Graph, inst: Inst, ignoreNames: boolean): boolean {
  return TEMP.test(g.value(inst.result).name) || (ignoreNames && inst.op !== 'param' && inst.op !== 'input');
}

function structureOf(g: Graph, inst: Inst, ids: Map<ValueId, string>, ignoreNames = false): string {
  // a backward graph's view of a forward value names it; with ignoreNames only its type counts
  const attrs = ignoreNames && inst.op === 'fwd' ? '' : fmtAttrs(inst.attrs);
  return `${formatType(g.type(inst.result))} = ${inst.op} ${inst.args.map((a) => ids.get(a)!).join(', ')}${attrs}`;
}

/**
 * Values of b that are a value of a under another name (the same structure), where at least one
 * of the two names is not a temporary's: `hid → hidden`, or `t1 → pre` for a newly named one.
 */
export function renames(a: Graph, b: Graph): { from: string; to: string }[] {
  const ia = identities(a, true);
  const ib = identities(b, true);
  const values = (g: Graph) => g.insts.filter((i) => i.op !== 'param' && i.op !== 'input');
  const aNames = new Set(values(a).map((i) => a.value(i.result).name));
  const bNames = new Set(values(b).map((i) => b.value(i.result).name));
  const byId = new Map<string, string[]>();
  for (const i of values(a)) if (!bNames.has(a.value(i.result).name)) byId.set(ia.get(i.result)!, [...(byId.get(ia.get(i.result)!) ?? []), a.value(i.result).name]);
  const out: { from: string; to: string }[] = [];
  for (const i of values(b)) {
    const to = b.value(i.result).name;
    if (aNames.has(to)) continue;
    const list = byId.get(ib.get(i.result)!);
    const k = list?.findIndex((from) => !(TEMP.test(from) && TEMP.test(to))) ?? -1;
    if (k >= 0) out.push({ from: list!.splice(k, 1)[0]!, to });
  }
  return out;
}

function pairTemps(a: Graph, b: Graph, ignoreNames = false): Map<ValueId, string> {
  const ia = identities(a, ignoreNames);
  const ib = identities(b, ignoreNames);
  const temps = (g: Graph) => g.insts.filter((i) => anonymous(g, i, ignoreNames));
  const free = new Map<string, ValueId[]>();
  const sig = (g: Graph, inst: Inst) => `${inst.op} ${formatType(g.type(inst.result))}${ignoreNames && inst.op === 'fwd' ? '' : fmtAttrs(inst.attrs)}`;
  const byId = new Map<string, ValueId[]>();
  for (const inst of temps(a)) byId.set(ia.get(inst.result)!, [...(byId.get(ia.get(inst.result)!) ?? []), inst.result]);
  const taken = new Set<ValueId>();
  const pairs = new Map<ValueId, string>();
  const rest: Inst[] = [];
  for (const inst of temps(b)) {
    const hit = byId.get(ib.get(inst.result)!)?.find((v) => !taken.has(v));
    if (hit) {
      taken.add(hit);
      pairs.set(inst.result, a.value(hit).name);
    } else rest.push(inst);
  }
  for (const inst of temps(a)) if (!taken.has(inst.result)) free.set(sig(a, inst), [...(free.get(sig(a, inst)) ?? []), inst.result]);
  for (const inst of rest) {
    const hit = free.get(sig(b, inst))?.shift();
    if (hit) pairs.set(inst.result, a.value(hit).name);
  }
  return pairs;
}

export interface DiffOptions {
  readonly color?: boolean;
  /** Compare structure only: values other than params and inputs match whatever their names. */
  readonly ignoreNames?: boolean;
  /** Lines of context around each change. */
  readonly context?: number;
}

/** The text of an instruction without its location, temporaries renamed through `rename`. */
function line(g: Graph, inst: Inst, rename: (v: ValueId) => string): string {
  const args = inst.args.map((a) => `%${rename(a)}`).join(', ');
  return `%${rename(inst.result)}: ${formatType(g.type(inst.result))} = ${inst.op}${args ? ' ' + args : ''}${fmtAttrs(inst.attrs)}`;
}

/**
 * The differences between two graphs as unified-diff hunks ('' when they are the same).
 * B's temporaries are printed under the names of the A temporaries they pair with.
 */
export function diffGraphs(a: Graph, b: Graph, opts: DiffOptions = {}): string {
  const ignoreNames = opts.ignoreNames ?? false;
  const pairs = pairTemps(a, b, ignoreNames);
  const aNames = new Set(a.insts.map((i) => a.value(i.result).name));
  const renameA = (v: ValueId) => a.value(v).name;
  let primed = false;
  const renameB = (v: ValueId) => {
    const name = b.value(v).name;
    const paired = pairs.get(v);
    if (paired !== undefined) return paired;
    if (!(TEMP.test(name) && aNames.has(name))) return name;
    primed = true;
    return `${name}'`;
  };
  const line_ = (g: Graph, inst: Inst, rename: (v: ValueId) => string) => {
    const l = line(g, inst, rename);
    return ignoreNames && inst.op === 'fwd' ? l.replace(/ \{name=[^}]*\}$/, '') : l;
  };
  const textA = a.insts.map((inst) => line_(a, inst, renameA));
  const textB = b.insts.map((inst) => line_(b, inst, renameB));
  // a line is unchanged when the other graph has the same line (as many times), wherever it is
  const count = (list: string[]) => {
    const m = new Map<string, number>();
    for (const k of list) m.set(k, (m.get(k) ?? 0) + 1);
    return m;
  };
  const inB = count(textB);
  const inA = count(textA);
  const take = (m: Map<string, number>) => (k: string) => {
    const n = m.get(k) ?? 0;
    if (n > 0) m.set(k, n - 1);
    return n > 0;
  };
  const sameA = textA.map(take(inB));
  const sameB = textB.map(take(inA));

  // interleave: each run of B's new lines goes after A's line that matches B's line before it,
  // and after A's removed lines there, as in a unified diff
  type Row = { op: ' ' | '-' | '+'; text: string };
  const rows: Row[] = [];
  const afterKey = new Map<string, Row[]>();
  const lead: Row[] = [];
  let lastSame: string | undefined;
  textB.forEach((text, k) => {
    if (sameB[k]) lastSame = text;
    else (lastSame === undefined ? lead : (afterKey.get(lastSame) ?? afterKey.set(lastSame, []).get(lastSame)!)).push({ op: '+', text });
  });
  let pending: Row[] = lead;
  textA.forEach((text, k) => {
    if (sameA[k]) {
      rows.push(...pending);
      pending = afterKey.get(text) ?? [];
      afterKey.delete(text);
    }
    rows.push({ op: sameA[k] ? ' ' : '-', text });
  });
  rows.push(...pending);
  for (const rest of afterKey.values()) rows.push(...rest);
  const outA = a.outputs.map((o) => `${fmtName(o.name)}=%${renameA(o.value)}`).join(', ');
  const outB = b.outputs.map((o) => `${fmtName(o.name)}=%${renameB(o.value)}`).join(', ');
  if (outA === outB) rows.push({ op: ' ', text: `return ${outA}` });
  else rows.push({ op: '-', text: `return ${outA}` }, { op: '+', text: `return ${outB}` });

  if (rows.every((r) => r.op === ' ')) return '';
  const ctx = opts.context ?? 2;
  const paint = (code: string, s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  // each side's model name when they differ
  const title = a.name === b.name ? `@@ graph ${a.kind} ${a.name} @@` : `@@ -graph ${a.kind} ${a.name} +graph ${b.kind} ${b.name} @@`;
  const out: string[] = [paint('36', title)];
  let shownTo = -1;
  rows.forEach((r, i) => {
    if (r.op === ' ') return;
    const from = Math.max(i - ctx, shownTo + 1);
    if (shownTo >= 0 && from > shownTo + 1) out.push(paint('36', '@@'));
    for (let j = from; j < i; j++) out.push(` ${rows[j]!.text}`);
    out.push(r.op === '-' ? paint('31', `-${r.text}`) : paint('32', `+${r.text}`));
    shownTo = i;
    let j = i + 1;
    for (; j < rows.length && j <= i + ctx && rows[j]!.op === ' '; j++) out.push(` ${rows[j]!.text}`);
    shownTo = j - 1;
  });
  // what the reader may wonder about: renamed values, and primed names
  const notes: string[] = [];
  if (!ignoreNames) {
    const moved = renames(a, b);
    if (moved.length) notes.push(`# renamed (the same structure): ${moved.map((r) => `%${r.from} → %${r.to}`).join(', ')}`);
    if (diffGraphs(a, b, { ignoreNames: true }) === '') notes.push('# only names differ: the structure is the same (--ignore-names compares structure only)');
  }
  if (primed && out.some((l) => /%t\d+'/.test(l)))
    notes.push("# %tN' is a temporary of the second graph that matches none of the first; primed so as not to be read as the first's %tN");
  return [...out, ...notes.map((n) => paint('2', n))].join('\n') + '\n';
}
