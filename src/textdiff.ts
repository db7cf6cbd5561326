// Line diffs (the `diff` package's Myers diff) and unified-diff output, for golden files, `build
// --check` and `graphc diff`.

import { diffArrays } from 'diff';

export type Edit = { readonly op: ' ' | '-' | '+'; readonly line: string };

/** The shortest edit script turning a into b (removals before additions within a change). */
export function diffLines(a: readonly string[], b: readonly string[]): Edit[] {
  const edits: Edit[] = [];
  for (const c of diffArrays(a as string[], b as string[])) {
    const op = c.added ? '+' : c.removed ? '-' : ' ';
    for (const line of c.value) edits.push({ op, line });
  }
  return edits;
}

export interface UnifiedOptions {
  readonly context?: number;
  readonly color?: boolean;
}

/** A unified diff of two texts ('' when equal). */
export function unifiedDiff(a: string, b: string, nameA: string, nameB: string, opts: UnifiedOptions = {}): string {
  const al = a.split('\n');
  const bl = b.split('\n');
  const edits = diffLines(al, bl);
  if (edits.every((e) => e.op === ' ')) return '';
  return formatUnified(edits, nameA, nameB, opts);
}

export function formatUnified(edits: readonly Edit[], nameA: string, nameB: string, opts: UnifiedOptions = {}): string {
  const ctx = opts.context ?? 3;
  const paint = (code: string, s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const out = [paint('1', `--- ${nameA}`), paint('1', `+++ ${nameB}`)];
  // positions of each edit in a and b
  const pos: { ai: number; bi: number }[] = [];
  let ai = 0;
  let bi = 0;
  for (const e of edits) {
    pos.push({ ai, bi });
    if (e.op !== '+') ai++;
    if (e.op !== '-') bi++;
  }
  let i = 0;
  while (i < edits.length) {
    if (edits[i]!.op === ' ') {
      i++;
      continue;
    }
    let start = Math.max(0, i - ctx);
    let end = i;
    // extend the hunk while changes are within 2·ctx of each other
    for (;;) {
      while (end < edits.length && edits[end]!.op !== ' ') end++;
      let next = end;
      while (next < edits.length && edits[next]!.op === ' ') next++;
      if (next < edits.length && next - end <= 2 * ctx) end = next;
      else break;
    }
    const stop = Math.min(edits.length, end + ctx);
    const hunk = edits.slice(start, stop);
    const aLen = hunk.filter((e) => e.op !== '+').length;
    const bLen = hunk.filter((e) => e.op !== '-').length;
    out.push(paint('36', `@@ -${pos[start]!.ai + (aLen ? 1 : 0)},${aLen} +${pos[start]!.bi + (bLen ? 1 : 0)},${bLen} @@`));
    for (const e of hunk) out.push(e.op === '-' ? paint('31', `-${e.line}`) : e.op === '+' ? paint('32', `+${e.line}`) : ` ${e.line}`);
    i = stop;
    start = stop;
  }
  return out.join('\n') + '\n';
}
