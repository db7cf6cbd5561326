// Properties of the IR text format (ir/print.ts, ir/parse.ts):
//
// (a) parseGraph never throws anything but a CompileError located inside the text, whatever the
//     text: arbitrary strings, soups of IR tokens, pathological repetitions, and random
//     mutations (characters, tokens, lines) of the IR files in generated/. When it parses, the
//     printed graph is a fixed point: printGraph(parseGraph(printGraph(g))) === printGraph(g).
// (b) Random well-typed graphs built with the Builder, over every op of the op table with
//     random attributes, names that need sanitising or quoting, odd numbers (NaN, ±inf, −0,
//     denormals), locations with odd file names, fused groups and comment preambles, print to
//     text that parses back to the same graph.
// (Models of the graph fuzzer round-trip too: see graphs.test.ts, check (c).)
//
// FUZZ_SCALE=k runs k times as many inputs, FUZZ_SEED=k shifts the seeds.

import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Builder } from '../../ir/builder.js';
import { CompileError } from '../../ir/errors.js';
import { Graph } from '../../ir/graph.js';
import { staticShape } from '../../ir/dims.js';
import type { AttrKind, Init, OpKind } from '../../ir/ops.js';
import { OPS } from '../../ir/ops.js';
import { parseGraph } from '../../ir/parse.js';
import { printGraph } from '../../ir/print.js';
import type { Loc, TensorType, ValueId } from '../../ir/types.js';
import { verify } from '../../ir/verify.js';
import { ROOT } from '../helpers.js';
import { Choices, choicesArb, factorShape, numel, randShape } from './gen.js';

const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
/** FUZZ_SEED=k shifts every seed (to explore beyond the fixed CI runs). */
const seed = (s: number) => s + Number(process.env.FUZZ_SEED ?? 0);

// ---------------------------------------------------------------------------------------------
// (a) any text

const stats = { parsed: 0, rejected: 0 };

/** parseGraph either succeeds and round-trips, or throws a CompileError located in the text. */
function parsesOrLocatedError(text: string): void {
  let g: Graph;
  try {
    g = parseGraph(text, { file: 'fuzz.ir' });
  } catch (e) {
    stats.rejected++;
    if (!(e instanceof CompileError)) throw new Error(`parseGraph threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} for ${JSON.stringify(text.length > 400 ? text.slice(0, 400) + '…' : text)}`);
    const lines = text.split('\n');
    const where = `${e.message} at ${JSON.stringify(e.loc)} in ${JSON.stringify(text.length > 400 ? text.slice(0, 400) + '…' : text)}`;
    expect(e.loc, `located: ${where}`).toBeDefined();
    expect(e.loc!.file, where).toBe('fuzz.ir');
    expect(e.loc!.line, where).toBeGreaterThanOrEqual(1);
    expect(e.loc!.line, where).toBeLessThanOrEqual(lines.length);
    expect(e.loc!.col, where).toBeGreaterThanOrEqual(1);
    expect(e.loc!.col, where).toBeLessThanOrEqual(lines[e.loc!.line - 1]!.length + 1);
    expect(e.message.length, where).toBeGreaterThan(0);
    expect(e.hint, where).toBeTruthy();
    return;
  }
  stats.parsed++;
  const p1 = printGraph(g);
  expect(printGraph(parseGraph(p1)), `round trip of ${JSON.stringify(text)}`).toBe(p1);
}

/** The IR files of generated/ (forward and backward, with groups and plan comments). */
function corpus(): string[] {
  const dir = path.join(ROOT, 'generated');
  return readdirSync(dir)
    .flatMap((m) => readdirSync(path.join(dir, m)).filter((f) => f.endsWith('.ir')).map((f) => path.join(dir, m, f)))
    .sort()
    .map((f) => readFileSync(f, 'utf8'));
}

const IR_TOKENS = [
  'graph', 'forward', 'backward', 'fz', '"q z"', '{', '}', '\n', '\n  ', ' ', '%', 'x', 'y', 't1', ':', 'f32', 'i32', 'f64', '[', ']', '2', '0', '-1', ',', '=',
  'param', 'input', 'const', 'fwd', 'add', 'sum', 'matmul', 'concat', 'reshape', 'xent', 'bogus', 'name="x"', 'init="randn"', 'scale=1', 'axes=[0]', 'keepDims=true',
  'data=[1, 2]', 'shape=[2]', '@', 'm.ts', '"a b.ts"', ':1:2', ':0:0', 'grad(add)', 'grad(', 'return', 'loss=%x', '#', '"', '\\', '\\u00', 'group', 'g0', 'elementwise',
  'nan', 'inf', '-inf', '-', '1e5', '.5', '5.', 'true', 'false', '\r', '\t', '\u00e9', '\ud800', '😀', '}\n',
];

/** Tokens of a text: identifiers, numbers, whitespace runs, single other characters. */
const tokenize = (s: string) => s.match(/[A-Za-z_][A-Za-z0-9_]*|-?\d+(\.\d*)?([eE][-+]?\d+)?|\s+|[\s\S]/g) ?? [];

/** One random edit of characters, tokens or lines. */
function mutateText(text: string, kind: number, i: number, j: number, extra: string): string {
  const at = i % (text.length + 1);
  switch (kind) {
    case 0: // delete characters
      return text.slice(0, at) + text.slice(at + 1 + (j % 4));
    case 1: // duplicate characters
      return text.slice(0, at) + text.slice(at, at + 1 + (j % 6)) + text.slice(at);
    case 2: {
      // swap two characters
      const b = j % (text.length + 1);
      const [x, y] = [Math.min(at, b), Math.max(at, b)];
      if (y >= text.length) return text;
      return text.slice(0, x) + text[y] + text.slice(x + 1, y) + text[x] + text.slice(y + 1);
    }
    case 3: // insert a string
      return text.slice(0, at) + (extra || IR_TOKENS[j % IR_TOKENS.length]) + text.slice(at);
    case 4:
    case 5:
    case 6: {
      const toks = tokenize(text);
      if (toks.length === 0) return text;
      const k = i % toks.length;
      const o = j % toks.length;
      if (kind === 4) toks.splice(k, 1); // delete a token
      else if (kind === 5) toks.splice(k, 0, toks[o]!); // duplicate one elsewhere
      else [toks[k], toks[o]] = [toks[o]!, toks[k]!]; // swap two
      return toks.join('');
    }
    default: {
      const lines = text.split('\n');
      const k = i % lines.length;
      const o = j % lines.length;
      if (kind === 7) lines.splice(k, 1);
      else if (kind === 8) lines.splice(k, 0, lines[o]!);
      else [lines[k], lines[o]] = [lines[o]!, lines[k]!];
      return lines.join('\n');
    }
  }
}

const CORPUS = corpus();
const mutationArb = fc.tuple(fc.nat(9), fc.nat(), fc.nat(), fc.string({ maxLength: 4, unit: 'binary' }));
const mutatedIr = fc
  .tuple(fc.nat(Math.max(0, CORPUS.length - 1)), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
  .map(([k, muts]) => muts.reduce((t, [kind, i, j, s]) => mutateText(t, kind, i, j, s), CORPUS[k] ?? ''));

describe('fuzz: IR text', () => {
  it('the corpus parses', () => {
    expect(CORPUS.length).toBeGreaterThan(0);
    for (const t of CORPUS) parsesOrLocatedError(t);
    expect(stats.rejected).toBe(0);
  });

  it('parseGraph on arbitrary strings: a round-tripping graph or a CompileError located in the text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300, unit: 'binary' }), parsesOrLocatedError), { seed: seed(11), numRuns: runs(1500) });
    fc.assert(fc.property(fc.string({ maxLength: 300, unit: 'grapheme-ascii' }).map((s) => `graph forward g {\n${s}`), parsesOrLocatedError), { seed: seed(12), numRuns: runs(1000) });
  });

  it('parseGraph on soups of IR tokens: a round-tripping graph or a located CompileError', () => {
    fc.assert(fc.property(fc.array(fc.constantFrom(...IR_TOKENS), { maxLength: 80 }).map((t) => t.join('')), parsesOrLocatedError), { seed: seed(13), numRuns: runs(2000) });
  });

  it('parseGraph on pathological repetitions (deep nesting, long lines): a located CompileError, no stack overflow', () => {
    const deep = fc
      .tuple(fc.constantFrom('[', '{', '%', '-', '"', '[1,', 'graph ', '\n', 'x', '@ a:1:1 '), fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('data', 'shape', 'axes'))
      .map(([tok, n, attr]) => `graph forward g {\n  %a: f32[] = const {${attr}=${tok.repeat(n)}`);
    fc.assert(fc.property(deep, parsesOrLocatedError), { seed: seed(14), numRuns: runs(60) });
  });

  it('rejects an empty group at its closing brace (found by the mutation fuzzer: it renumbered the groups after it)', () => {
    const text = 'graph forward g {\n  group g0 matmul {\n  }\n  %a: f32[] = const {data=[1]}\n  return loss=%a\n}\n';
    const err = (() => {
      try {
        parseGraph(text, { file: 'empty.ir' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CompileError);
    expect((err as CompileError).message).toBe('empty group');
    expect((err as CompileError).loc).toEqual({ file: 'empty.ir', line: 3, col: 3 });
  });

  it('parseGraph on mutated IR files of generated/: a round-tripping graph or a located CompileError', () => {
    fc.assert(fc.property(mutatedIr, parsesOrLocatedError), { seed: seed(15), numRuns: runs(3000) });
    console.log(`IR text fuzz: ${stats.parsed} texts parsed (and round-tripped), ${stats.rejected} rejected with a located CompileError`);
  });

  it('a graph that parses is one the verifier accepts', () => {
    // Besides random mutations, which rarely produce them: a swapped graph kind (`fwd` reads in a
    // forward graph, `param`/`input` in a backward one) and a duplicated output list.
    const targeted = fc.tuple(fc.nat(Math.max(0, CORPUS.length - 1)), fc.boolean()).map(([k, swap]) => {
      const t = CORPUS[k] ?? '';
      return swap ? t.replace(/^graph (forward|backward)/m, (_m, kind: string) => `graph ${kind === 'forward' ? 'backward' : 'forward'}`) : t.replace(/^( {2}return )(.*)$/m, (_m, r: string, outs: string) => `${r}${outs}, ${outs}`);
    });
    fc.assert(
      fc.property(fc.oneof(mutatedIr, targeted), (text) => {
        let g: Graph;
        try {
          g = parseGraph(text, { file: 'fuzz.ir' });
        } catch {
          return;
        }
        try {
          verify(g);
        } catch (e) {
          throw new Error(`parseGraph accepted a graph that verify rejects: ${e instanceof Error ? e.message : String(e)}\n${text}`);
        }
      }),
      { seed: seed(16), numRuns: runs(3000) },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// (b) random well-typed graphs round-trip

const WEIRD_NUMBERS = [0, -0, 1, -1, 0.5, 0.1 + 0.2, 1e-7, 1e21, 1e-300, 5e-324, 1.7976931348623157e308, NaN, Infinity, -Infinity, 123456789.123, -2.5e-8];
const RAW_NAMES = ['x', 'h', 'x y', '1a', 'class', 't1', 'd', '', 'é', 'loss', 'W1', 'a-b', '$', 'forward', '__', 'dx'];
const OUT_NAMES = ['loss', 'probs', 'my out', '', 'a"b', 'x\ny', 'é', '1', 'W1', 'back\\slash', 'tab\there'];
const FILES = ['m.ts', 'dir/m.ts', 'my file.ts', 'a:b.ts', 'é.ts', '"q".ts', '', '../up.ts', 'x\\y.ts', 'line\nbreak.ts'];
/** String attributes; the last two contain " @ ", which looks like the start of a location. */
const STRS = ['x', 'W1', 'a b', '', 'quote"q', 'back\\slash', 'é', '\u0000', 'new\nline', 'a @ b', '} @ m.ts:1:1'];

/** A random attribute value of a kind. */
function attr(c: Choices, kind: AttrKind): unknown {
  switch (kind) {
    case 'int':
      return c.range(-2, 5);
    case 'num':
      return c.pick(WEIRD_NUMBERS);
    case 'bool':
      return c.chance(50);
    case 'str':
      return c.pick(STRS);
    case 'ints':
      return Array.from({ length: c.int(4) }, () => c.range(-1, 4));
    case 'nums':
      return Array.from({ length: c.int(4) }, () => c.pick(WEIRD_NUMBERS));
    case 'init':
      return c.pick<Init>(['randn', 'zeros', 'ones', 'uniform']);
  }
}

/** Attributes for op with operand types ts: valid by construction where it matters, else random. */
function attrsFor(c: Choices, op: OpKind, ts: readonly TensorType[]): Record<string, unknown> {
  const x = staticShape(ts[0]?.shape ?? []); // the random graphs have static shapes
  const r = x.length;
  const sortedAxes = () => [...Array(r).keys()].filter(() => c.chance(50));
  switch (op) {
    case 'sum':
    case 'max':
      return { axes: sortedAxes(), keepDims: c.chance(50) };
    case 'argmax_mask':
    case 'flip':
      return { axes: sortedAxes() };
    case 'argmax':
    case 'argmin':
      return { axis: c.int(Math.max(1, r)), keepDims: c.chance(50) };
    case 'cumsum':
      return c.chance(50) ? { axis: c.int(Math.max(1, r)), reverse: true } : { axis: c.int(Math.max(1, r)) };
    case 'arange':
      return { shape: [c.range(1, 5)] }; // the random graphs have static shapes
    case 'matmul':
      return { transA: c.chance(50), transB: c.chance(50) };
    case 'transpose':
      return { perm: c.perm(r) };
    case 'reshape': {
      const s = factorShape(c, numel(x), numel(x) === 1 ? c.int(3) : c.range(1, 3));
      if (s.length && c.chance(30)) s[c.int(s.length)] = -1;
      return { shape: s };
    }
    case 'broadcast':
      return { shape: [...(r < 3 && c.chance(50) ? [c.range(1, 3)] : []), ...x.map((d) => (d === 1 ? c.range(1, 3) : d))] };
    case 'concat':
    case 'softmax':
    case 'log_softmax':
      return { axis: c.int(Math.max(1, r)) };
    case 'slice': {
      const starts = x.map((d) => c.int(d));
      return { starts, sizes: x.map((d, i) => c.range(0, d - starts[i]!)) };
    }
    case 'pad': {
      const starts = x.map(() => c.int(3));
      return { starts, shape: x.map((d, i) => d + starts[i]! + c.int(2)) };
    }
    case 'one_hot':
      return { depth: c.range(1, 4) };
    case 'scatter_add':
      return { shape: [c.range(1, 4), ...staticShape(ts[1]?.shape.slice(ts[0]?.shape.length ?? 0) ?? [])] };
    default:
      return Object.fromEntries(Object.entries(OPS[op].attrs as Record<string, AttrKind>).map(([k, kind]) => [k, attr(c, kind)]));
  }
}

function randomLoc(c: Choices): Loc | undefined {
  if (c.chance(20)) return undefined;
  const loc = { file: c.pick(FILES), line: c.int(400), col: c.int(120) };
  return c.chance(30) ? { ...loc, grad: c.pick(['add', 'matmul', 'fanout', 'xent', 'bn_apply']) } : loc;
}

const OP_KINDS = (Object.keys(OPS) as OpKind[]).filter((k) => OPS[k].shape !== null);

/** Operands and attributes of a convolution or pooling op that its shape rule accepts (else undefined). */
function convOperands(c: Choices, b: Builder, op: OpKind): { args: ValueId[]; attrs: Record<string, unknown> } | undefined {
  const zeros = (shape: number[]) => b.constant(new Array(numel(shape)).fill(0), shape);
  const s = c.range(1, 2); // stride
  const conv = { stride: [s, s], padding: [0, 0, 0, 0], dilation: [1, 1], groups: 1 };
  const pool = { kernel: [2, 2], stride: [s, s], padding: [0, 0] };
  const out = s === 1 ? 3 : 2; // (4 − 2) / s + 1
  const pooled = s === 1 ? 3 : 2;
  switch (op) {
    case 'conv':
      return { args: [zeros([1, 2, 4, 4]), zeros([3, 2, 2, 2])], attrs: conv };
    case 'conv_input_grad':
      return { args: [zeros([1, 3, out, out]), zeros([3, 2, 2, 2])], attrs: { ...conv, size: [4, 4] } };
    case 'conv_weight_grad':
      return { args: [zeros([1, 2, 4, 4]), zeros([1, 3, out, out])], attrs: { ...conv, kernel: [2, 2] } };
    case 'max_pool':
    case 'avg_pool':
      return { args: [zeros([1, 2, 4, 4])], attrs: pool };
    case 'max_pool_pick':
      return { args: [zeros([1, 2, 4, 4]), zeros([1, 2, 4, 4])], attrs: pool };
    case 'max_pool_grad':
      return { args: [zeros([1, 2, 4, 4]), zeros([1, 2, pooled, pooled])], attrs: { ...pool, size: [4, 4] } };
    case 'avg_pool_grad':
      return { args: [zeros([1, 2, pooled, pooled])], attrs: { ...pool, size: [4, 4] } };
    default:
      return undefined;
  }
}

/** A random well-typed graph: sources, then ops drawn from the whole op table (rejection-sampled). */
export function randomGraph(c: Choices): Graph {
  const kind = c.chance(50) ? 'backward' : 'forward';
  const g = new Graph(c.pick(['g', 'my graph', 'fz', 'é', 'a"b', 'x-y']), kind);
  const b = new Builder(g);
  const vals: ValueId[] = [];
  const name = () => (c.chance(60) ? { raw: c.pick(RAW_NAMES) } : undefined);
  const nSources = c.range(1, 4);
  for (let i = 0; i < nSources; i++) {
    b.loc = randomLoc(c);
    const t: TensorType = { dtype: c.chance(25) ? 'i32' : 'f32', shape: randShape(c) };
    const which = c.int(3);
    if (which === 0) vals.push(b.constant(Array.from({ length: numel(staticShape(t.shape)) }, () => (t.dtype === 'i32' ? c.int(3) : c.pick(WEIRD_NUMBERS))), staticShape(t.shape), t.dtype));
    else if (kind === 'backward') vals.push(b.source('fwd', { name: c.pick(STRS) }, t, name()));
    else if (which === 1) vals.push(b.source('input', { name: c.pick(STRS) }, t, name()));
    else vals.push(b.source('param', { name: c.pick(STRS), init: attr(c, 'init') as Init, scale: c.pick(WEIRD_NUMBERS) }, { dtype: 'f32', shape: t.shape }, name()));
  }
  const nOps = c.range(0, 12);
  for (let i = 0, tries = 0; i < nOps && tries < 60; tries++) {
    const op = c.pick(OP_KINDS) as Exclude<OpKind, 'input' | 'param' | 'const' | 'fwd' | 'dim' | 'buffer' | 'mode' | 'dropout_mask'>;
    const def = OPS[op];
    const arity = def.arity === 'variadic' ? c.range(1, 3) : def.arity;
    const args = Array.from({ length: arity }, () => c.pick(vals));
    // index operands: a fresh i32 constant of the shape the op needs, now and then
    if ((op === 'pick' || op === 'xent') && c.chance(70)) {
      const x = vals.filter((v) => g.type(v).dtype === 'f32' && g.type(v).shape.length === 2);
      if (x.length) {
        args[0] = c.pick(x);
        const [n, k] = g.type(args[0]).shape as [number, number];
        args[1] = b.constant(Array.from({ length: n }, () => c.int(k)), [n], 'i32');
      }
    }
    // batchnorm's and layer norm's apply need statistics shaped from x's ([1, f] or [n, 1]), which
    // random picks seldom are (with each op added to the table, each is drawn less often)
    if ((op === 'bn_apply' || op === 'ln_apply') && c.chance(70)) {
      const x = vals.filter((v) => g.type(v).dtype === 'f32' && g.type(v).shape.length === 2 && g.type(v).shape.every((d) => typeof d === 'number'));
      if (x.length) {
        args[0] = c.pick(x);
        const [n, f] = g.type(args[0]).shape as [number, number];
        const stat = op === 'bn_apply' ? [1, f] : [n, 1];
        args[1] = b.constant(new Array(numel(stat)).fill(0), stat);
        args[2] = b.constant(new Array(numel(stat)).fill(1), stat);
      }
    }
    // convolutions and pooling need 4-D operands of matching sizes, which random shapes seldom
    // are: fresh constants of such shapes, with valid attributes
    const conv = convOperands(c, b, op);
    if (conv) {
      b.loc = randomLoc(c);
      vals.push(b.emit(op, conv.args, conv.attrs as never, name()));
      i++;
      continue;
    }
    // operands of matching shapes help concat, bn_apply and the binary ops
    if (op === 'concat' || (c.chance(30) && arity > 1)) for (let k = 1; k < arity; k++) if (c.chance(70)) args[k] = args[0]!;
    b.loc = randomLoc(c);
    try {
      vals.push(b.emit(op, args, attrsFor(c, op, args.map((a) => g.type(a))) as never, name()));
      i++;
    } catch (e) {
      if (!(e instanceof CompileError)) throw e;
    }
  }
  g.numberTemps();
  // outputs: distinct names, any values
  const names = [...new Set(Array.from({ length: c.range(0, 3) }, () => c.pick(OUT_NAMES)))];
  g.outputs = names.map((n) => ({ name: n, value: c.pick(vals) }));
  // fused groups: disjoint contiguous runs of instructions
  for (let at = c.int(3); at < g.insts.length; ) {
    const len = c.range(1, 4);
    if (c.chance(50)) g.groups.push({ kind: c.pick(['elementwise', 'reduce', 'matmul']), insts: g.insts.slice(at, at + len).map((inst) => inst.id) });
    at += len + c.int(3);
  }
  return g;
}

describe('fuzz: IR round trip', () => {
  it('printed random well-typed graphs (every op, odd names, numbers, locations, groups) parse back to the same text', () => {
    const seenOps = new Set<string>();
    fc.assert(
      fc.property(choicesArb(300), fc.boolean(), fc.boolean(), (xs, locs, preamble) => {
        const g = randomGraph(new Choices(xs));
        verify(g);
        g.insts.forEach((i) => seenOps.add(i.op));
        const opts = { locs, preamble: preamble ? ['memory plan: 2 buffers', 'buffer 0: f32[4] 16 B: x, (dx)'] : [] };
        const text = printGraph(g, opts);
        let g2: Graph;
        try {
          g2 = parseGraph(text, { file: 'printed.ir' });
        } catch (e) {
          throw new Error(`printed IR does not parse: ${e instanceof Error ? e.message : String(e)} ${e instanceof CompileError ? JSON.stringify(e.loc) : ''}\n${text}`);
        }
        expect(printGraph(g2, opts), 'printGraph ∘ parseGraph ∘ printGraph').toBe(text);
        verify(g2);
      }),
      { seed: seed(21), numRuns: runs(1500) },
    );
    const missing = OP_KINDS.filter((k) => !seenOps.has(k));
    expect(missing, 'ops never generated').toEqual([]);
  });
});
