// Where in the user's program each traced instruction was made: the helper call and the loop
// iteration around it, for `graphc graph`'s clusters (a box per DSL helper call, per iteration
// of an RNN's loop). The tracer hands over the user frames of each DSL call; loops and
// functions come from the file's syntax tree.

import type { ts } from 'ts-morph';
import type { Loc } from '../ir/types.js';
import { tsApi } from './tsmorph.js';

/** One user frame of a DSL call: where it is, its function's name, and how it was called. */
export interface Frame {
  readonly loc: Loc;
  /** The function's name as V8 reports it (`cell`, or undefined for an anonymous callback). */
  readonly fn: string | undefined;
  /** Whether the next user frame out called this one directly (not through `xs.map(f)`). */
  readonly direct: boolean;
}

/** A loop statement or a function of a file, as 1-based line/column spans. */
interface Span {
  readonly kind: 'loop' | 'function';
  readonly line: number;
  readonly col: number;
  readonly endLine: number;
  readonly endCol: number;
}

/** An instance of a scope: one call of a helper, or one iteration of a loop. */
export interface Scope {
  readonly id: number;
  readonly kind: 'call' | 'loop';
  readonly label: string;
  readonly parent: Scope | undefined;
}

const before = (l1: number, c1: number, l2: number, c2: number) => l1 < l2 || (l1 === l2 && c1 < c2);
const inside = (s: Span, line: number, col: number) => !before(line, col, s.line, s.col) && before(line, col, s.endLine, s.endCol);

/**
 * The loops and functions of a source text, and where each call ends, by the position of its
 * callee's name (where the tracer locates a call): a call runs after its arguments, which lie
 * to the right of its name, so successive calls are ordered by where they end.
 */
export function spansOf(file: string, text: string): { spans: Span[]; ends: Map<string, [number, number]> } {
  // ts-morph's TypeScript, which loading the model has loaded (not a second copy, the `typescript` package)
  const ts = tsApi();
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const out: Span[] = [];
  const ends = new Map<string, [number, number]>();
  const at = (pos: number) => sf.getLineAndCharacterOfPosition(pos);
  const visit = (n: ts.Node) => {
    if (ts.isCallExpression(n) || ts.isNewExpression(n)) {
      const callee = n.expression;
      const name = ts.isPropertyAccessExpression(callee) ? callee.name : callee;
      const a = at(name.getStart(sf));
      const b = at(n.getEnd());
      ends.set(`${a.line + 1}:${a.character + 1}`, [b.line + 1, b.character + 1]);
    }
    const kind = ts.isIterationStatement(n, false) ? 'loop' : ts.isFunctionLike(n) ? 'function' : undefined;
    if (kind) {
      const a = at(n.getStart(sf));
      const b = at(n.getEnd());
      out.push({ kind, line: a.line + 1, col: a.character + 1, endLine: b.line + 1, endCol: b.character + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { spans: out, ends };
}

interface Element {
  readonly key: string;
  readonly kind: 'call' | 'loop';
  readonly label: string;
}

/**
 * Follows the DSL calls of one trace and gives each the innermost scope instance it belongs
 * to. Within one run of a function, the positions of successive DSL calls only move forward; a
 * position that does not (in frame k) starts the next iteration of the innermost loop of
 * frame k around both positions, or, with no such loop, the next call of frame k's function
 * (asked again of its caller's frame when the caller called it directly).
 */
export class ScopeTracker {
  private readonly spans = new Map<string, { spans: Span[]; ends: Map<string, [number, number]> }>();
  private prev: { frames: Frame[]; path: Element[]; scopes: Scope[] } = { frames: [], path: [], scopes: [] };
  private next = 0;
  /** How many instances each element key has had under each parent instance (for the labels). */
  private readonly counts = new Map<string, number>();

  constructor(private readonly textOf: (file: string) => string | undefined) {}

  private fileInfo(file: string): { spans: Span[]; ends: Map<string, [number, number]> } {
    let s = this.spans.get(file);
    if (!s) {
      const text = this.textOf(file);
      s = text === undefined ? { spans: [], ends: new Map() } : spansOf(file, text);
      this.spans.set(file, s);
    }
    return s;
  }

  private spansIn(file: string): Span[] {
    return this.fileInfo(file).spans;
  }

  /** Where a frame's call ends (its position when it is no call). */
  private endOf(loc: Loc): [number, number] {
    return this.fileInfo(loc.file).ends.get(`${loc.line}:${loc.col}`) ?? [loc.line, loc.col];
  }

  /** The loops around a frame's position inside its own function, outermost first. */
  private loopsOf(f: Frame): Span[] {
    const around = this.spansIn(f.loc.file).filter((s) => inside(s, f.loc.line, f.loc.col));
    around.sort((a, b) => (before(a.line, a.col, b.line, b.col) ? -1 : 1));
    const fnAt = around.map((s) => s.kind).lastIndexOf('function');
    return around.slice(fnAt + 1).filter((s) => s.kind === 'loop');
  }

  /** The scope of a DSL call whose user frames are `innermostFirst`; undefined outside any. */
  enter(innermostFirst: readonly Frame[]): Scope | undefined {
    const frames = [...innermostFirst].reverse();
    const path: Element[] = [];
    /** Where each frame's elements start in the path, and where its call element is (-1: none). */
    const start: number[] = [];
    const callAt: number[] = [];
    const loopKeys: string[][] = [];
    frames.forEach((f, k) => {
      start.push(path.length);
      const keys: string[] = [];
      for (const l of this.loopsOf(f)) {
        const key = `${k}:loop:${f.loc.file}:${l.line}:${l.col}`;
        keys.push(key);
        path.push({ key, kind: 'loop', label: `loop ${f.loc.file}:${l.line}` });
      }
      loopKeys.push(keys);
      if (k < frames.length - 1) {
        callAt.push(path.length);
        const callee = frames[k + 1]!;
        path.push({ key: `${k}:call:${f.loc.file}:${f.loc.line}:${f.loc.col}`, kind: 'call', label: `${callee.fn ?? 'function'}(…) ${f.loc.file}:${f.loc.line}` });
      } else callAt.push(-1);
    });
    const keep = this.kept(frames, path, start, callAt, loopKeys);
    const scopes: Scope[] = [];
    for (let i = 0; i < path.length; i++) {
      if (i < keep) {
        scopes.push(this.prev.scopes[i]!);
        continue;
      }
      const parent = scopes[i - 1];
      const e = path[i]!;
      const ck = `${parent?.id ?? -1}/${e.key}`;
      const n = this.counts.get(ck) ?? 0;
      this.counts.set(ck, n + 1);
      const label = e.kind === 'loop' ? `${e.label}, iteration ${n}` : n > 0 ? `${e.label} #${n + 1}` : e.label;
      scopes.push({ id: this.next++, kind: e.kind, label, parent });
    }
    this.prev = { frames, path, scopes };
    return scopes.at(-1);
  }

  /** How many leading elements of the path are the previous call's instances. */
  private kept(frames: readonly Frame[], path: readonly Element[], start: readonly number[], callAt: readonly number[], loopKeys: readonly string[][]): number {
    const prev = this.prev;
    if (prev.frames.length === 0) return 0;
    const same = (a: Frame, b: Frame) => a.loc.file === b.loc.file && a.loc.line === b.loc.line && a.loc.col === b.loc.col;
    const n = Math.min(frames.length, prev.frames.length);
    let j = 0;
    while (j < n && same(frames[j]!, prev.frames[j]!)) j++;
    const prevLoops = (k: number) => prev.path.filter((e) => e.kind === 'loop' && e.key.startsWith(`${k}:`)).map((e) => e.key);
    const common = (k: number) => {
      const a = loopKeys[k]!;
      const b = prevLoops(k);
      let c = 0;
      while (c < a.length && c < b.length && a[c] === b[c]) c++;
      return c;
    };
    const matches = (upTo: number) => {
      // the prefix must be element for element the previous path
      let i = 0;
      while (i < upTo && i < prev.path.length && path[i]!.key === prev.path[i]!.key) i++;
      return i;
    };
    if (j < n) {
      const a = frames[j]!.loc;
      const b = prev.frames[j]!.loc;
      const [al, ac] = this.endOf(a);
      const [bl, bc] = this.endOf(b);
      const forward = a.file !== b.file || before(bl, bc, al, ac) || (bl === al && bc === ac && before(b.line, b.col, a.line, a.col));
      if (forward) return matches(start[j]! + common(j));
    } else if (frames.length !== prev.frames.length) return matches(start[n] ?? path.length);
    // the position did not move forward in frame j: a new iteration, or a new call
    for (let k = Math.min(j, frames.length - 1); k >= 0; k--) {
      const c = common(k);
      if (c > 0) return matches(start[k]! + c - 1);
      if (k === 0) return 0;
      if (!frames[k]!.direct) return matches(callAt[k - 1]!);
    }
    return 0;
  }
}
