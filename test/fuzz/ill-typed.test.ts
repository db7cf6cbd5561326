// Property: random ILL-TYPED model files fail `graphc build` cleanly. Each program is a random
// well-typed prefix (from the graph fuzzer's generator) followed by one statement that breaks a
// rule (a shape mismatch, a bad axis, an i32 tensor in arithmetic, a bad name, a wrong argument
// kind, a TypeScript syntax or type error, a bad loss or default export, ...), then a valid
// loss. The build must exit 1 (2 for usage errors), print exactly
//
//   path:line:col: error: message        (or `error: message` when the error has no location)
//     N | the source line
//       |    ^^^
//     fix: how to fix it
//
// with the location inside the file (and, where the rule is a DSL call, at that call: the
// caret under the method name), the message of that rule, never a stack trace or an internal
// error, nothing on stdout, and no output folder. One property per family of violations.
// Further: usage errors exit 2 with a one-line message; and random mutations of valid model
// sources (a number, a method name, a line, a token, characters) either build (exit 0, files
// written) or fail in the same clean way.
//
// FUZZ_SCALE=k runs k times as many programs, FUZZ_SEED=k shifts the seeds, FUZZ_NO_SHRINK=1
// reports the first failure unshrunk, FUZZ_SHOW=1 prints what ran.

import { existsSync, readdirSync, realpathSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { modelFile, ROOT, run, tmp } from '../helpers.js';
import { BODY_LINE0, Choices, choicesArb, modelSource, ModelGen, S } from './gen.js';

const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
/** FUZZ_SEED=k shifts every seed (to explore beyond the fixed CI runs). */
const seed = (s: number) => s + Number(process.env.FUZZ_SEED ?? 0);
const endOnFailure = process.env.FUZZ_NO_SHRINK === '1';

/** What a bad program must fail with. */
interface Expect {
  readonly code: 1 | 2;
  /** 1-based line of the error, when the rule pins it down. */
  readonly line?: number;
  readonly col?: number;
  /** The message must match. */
  readonly msg?: RegExp;
}

interface Bad {
  readonly family: string;
  readonly source: string;
  readonly expect: Expect;
  /** More arguments of graphc build (after the model file). */
  readonly args?: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// The diagnostic format

interface Diagnostic {
  readonly file?: string;
  readonly line?: number;
  readonly col?: number;
  readonly message: string;
}

/** Parses and validates stderr of a failed build; returns what it says. */
function checkDiagnostic(err: string, modelPath: string, source: string): Diagnostic {
  expect(err, 'no stack trace').not.toMatch(/^\s+at /m);
  expect(err, 'no internal error').not.toMatch(/internal/i);
  expect(err.endsWith('\n'), 'ends with a newline').toBe(true);
  const lines = err.slice(0, -1).split('\n');
  const head = /^(.+?):(\d+):(\d+): error: (.+)$/.exec(lines[0]!);
  if (!head) {
    expect(lines, 'an unlocated error is two lines: error, fix').toHaveLength(2);
    expect(lines[0]).toMatch(/^error: \S/);
    expect(lines[1]).toMatch(/^ {2}fix: \S/);
    return { message: lines[0]!.slice('error: '.length) };
  }
  const [, file, l, c, message] = head;
  const line = Number(l);
  const col = Number(c);
  expect(path.resolve(ROOT, file!), 'the path names the model file').toBe(realpathSync(modelPath));
  const src = source.split(/\r?\n/);
  expect(line, 'line inside the file').toBeGreaterThanOrEqual(1);
  expect(line).toBeLessThanOrEqual(src.length);
  const text = src[line - 1]!.replace(/\t/g, ' ');
  expect(col, 'column inside the line').toBeGreaterThanOrEqual(1);
  expect(col).toBeLessThanOrEqual(text.length + 1);
  // a located error is four lines: error, source line, caret, fix; TypeScript's errors come
  // together (up to 10, each four lines, then a line saying how many more)
  const more = /^\(and \d+ more type errors? not shown\)$/.test(lines.at(-1) ?? '') ? 1 : 0;
  expect((lines.length - more) % 4, 'located errors are four lines each: error, source line, caret, fix').toBe(0);
  const num = String(line);
  expect(lines[1], 'the source line').toBe(`  ${num} | ${text}`);
  const caret = new RegExp(`^ {2} {${num.length}} \\| ( *)(\\^+)$`).exec(lines[2]!);
  expect(caret, `a caret line, got ${JSON.stringify(lines[2])}`).not.toBeNull();
  expect(caret![1]!.length, 'the caret is under the column').toBe(Math.min(col - 1, text.length));
  expect(lines[3]).toMatch(/^ {2}fix: \S/);
  return { file, line, col, message: message! };
}

async function buildFails(b: Bad): Promise<void> {
  const file = modelFile(b.source);
  const out = path.join(tmp(), 'out');
  const r = await run(['build', file, '--out', out, ...(b.args ?? [])]);
  try {
    expect(r.code, 'exit code').toBe(b.expect.code);
    expect(existsSync(out), 'no output folder').toBe(false);
    expect(readdirSync(path.dirname(out)), 'no temporary folder left behind').toEqual([]);
    expect(r.out, 'nothing on stdout').toBe('');
    if (b.expect.code === 2) {
      expect(r.err).toMatch(/^graphc[ :][^\n]*\n(usage: [^\n]*\n)?$/);
      return;
    }
    const d = checkDiagnostic(r.err, file, b.source);
    if (b.expect.line !== undefined) expect(d.line, 'error line').toBe(b.expect.line);
    if (b.expect.col !== undefined) expect(d.col, 'error column').toBe(b.expect.col);
    if (b.expect.msg) expect(d.message).toMatch(b.expect.msg);
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- family ${b.family}; stderr ---\n${r.err}--- model ---\n${b.source}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Bad statements

/** A program under construction: a well-typed prefix, then the bad part. */
class Program {
  readonly gen: ModelGen;
  readonly extra: string[] = [];
  constructor(readonly c: Choices) {
    this.gen = new ModelGen(c, { ops: c.range(0, 3) });
    this.gen.body();
  }

  /** Appends a line; returns its 1-based line number in the file. */
  add(line: string): number {
    this.extra.push(line);
    return BODY_LINE0 + this.gen.lines.length + this.extra.length - 1;
  }

  /** 1-based column of `.name(` or `g.name(` (the method name) in a body line. */
  static col(line: string, method: string): number {
    const at = line.indexOf(`.${method}(`);
    if (at < 0) throw new Error(`no .${method}( in ${line}`);
    return at + 2 + 2; // skip the dot, 1-based, the two spaces of indentation
  }

  private names = 0;
  fresh(prefix = 'b'): string {
    return `${prefix}${this.names++}_`;
  }

  /** A fresh f32 param of this shape. */
  param(shape: readonly number[]): string {
    const n = this.fresh('w');
    this.add(`const ${n} = g.param('${n}', ${S(shape)});`);
    return n;
  }

  index(shape: readonly number[]): string {
    const n = this.fresh('ix');
    this.add(`const ${n} = g.input('${n}', ${S(shape)}, 'i32');`);
    return n;
  }

  /** The file with the valid loss (and a custom return, if given). */
  source(ret?: string[], name = 'fz'): string {
    const tail = ret ?? [...this.gen.lossLines(), 'return { loss };'];
    return modelSource(name, [...this.gen.lines, ...this.extra, ...tail]);
  }
}

type Family = (p: Program) => Bad;
const dims = (c: Choices, k: number) => Array.from({ length: k }, () => c.range(1, 4));
const other = (c: Choices, d: number) => (d === 1 ? c.range(2, 4) : d + c.range(1, 3));

const FAMILIES: Record<string, Family> = {
  broadcast(p) {
    const c = p.c;
    const a = dims(c, c.range(1, 3)).map((d) => Math.max(2, d));
    const b = a.slice(c.int(a.length));
    const k = c.int(b.length);
    b[k] = other(c, b[k]!); // a clash, neither side 1
    const [A, B] = [p.param(a), p.param(b)];
    const op = c.pick(['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum']);
    const [L, R] = c.chance(50) ? [A, B] : [B, A];
    const stmt = `const bad = ${L}.${op}(${R});`;
    const line = p.add(stmt);
    return { family: 'broadcast', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, op), msg: new RegExp(`^${op}: cannot broadcast`) } };
  },

  matmul(p) {
    const c = p.c;
    const kind = c.int(4);
    let a: number[];
    let b: number[];
    let msg: RegExp;
    if (kind === 0) {
      const [m, k, n] = dims(c, 3);
      [a, b] = [[m!, k!], [other(c, k!), n!]];
      msg = /^matmul: inner dimensions differ/;
    } else if (kind === 1) {
      a = dims(c, c.int(2));
      b = dims(c, c.range(0, 3));
      if (c.chance(50)) [a, b] = [b, a];
      msg = /^matmul: needs operands of rank 2 or more/;
    } else if (kind === 2) {
      const [t, m, k, n] = dims(c, 4);
      [a, b] = [[t!, m!, k!], [other(c, t!), k!, n!]];
      msg = /^matmul: batch dimensions differ/;
    } else {
      const [t, m, k, n] = dims(c, 4);
      [a, b] = [[m!, k!], [t!, k!, n!]];
      msg = /^matmul: batch dimensions differ/;
    }
    const [A, B] = [p.param(a), p.param(b)];
    const stmt = `const bad = ${A}.matmul(${B});`;
    const line = p.add(stmt);
    return { family: 'matmul', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, 'matmul'), msg } };
  },

  reshape(p) {
    const c = p.c;
    const s = dims(c, c.range(1, 3));
    const n = s.reduce((x, y) => x * y, 1);
    const A = p.param(s);
    let to: string;
    let msg: RegExp;
    switch (c.int(4)) {
      case 0:
        to = S(c.chance(50) ? [n + c.range(1, 3)] : [n + 1, 1]);
        msg = /^reshape: cannot reshape/;
        break;
      case 1:
        to = '[-1, -1]';
        msg = /^reshape: only one -1/;
        break;
      case 2: {
        const k = n + 1 + c.int(3);
        to = S([k, -1]);
        msg = /^reshape: cannot reshape/;
        break;
      }
      default:
        to = c.pick(['[-2]', `[${n}, 0.5]`, '[NaN]', `[${n}, -3]`]);
        msg = /^reshape: invalid shape/;
    }
    const stmt = `const bad = ${A}.reshape(${to});`;
    const line = p.add(stmt);
    return { family: 'reshape', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, 'reshape'), msg } };
  },

  axes(p) {
    const c = p.c;
    const r = c.range(0, 3);
    const A = p.param(dims(c, r));
    let stmt: string;
    let method: string;
    let msg: RegExp;
    const out = () => (c.chance(50) ? r + c.int(3) : -r - 1 - c.int(3));
    switch (c.int(7)) {
      case 5: {
        // narrow: an axis out of range, or a window that leaves the axis
        method = 'narrow';
        const shape = dims(c, r);
        if (r === 0 || c.chance(30)) {
          stmt = `const bad = ${A}.narrow(${out()}, 0, 1);`;
          msg = /^narrow: axis -?\d+ is out of range/;
        } else {
          const a = c.int(r);
          const d = shape[a]!;
          const [start, length, m] = c.pick([
            [d, 1, /^narrow: start \d+ is not an index of axis/],
            [-1, 1, /^narrow: start -1 is not an index of axis/],
            [0, 0, /^narrow: length 0 is not a positive integer/],
            [0, d + 1, /^narrow: start 0 and length \d+ reach past the end of axis/],
          ] as [number, number, RegExp][]);
          stmt = `const bad = ${p.param(shape)}.narrow(${a}, ${start}, ${length});`;
          msg = m;
        }
        break;
      }
      case 0:
        method = c.pick(['sum', 'mean', 'max']);
        stmt = `const bad = ${A}.${method}(${out()}${c.chance(50) ? ', true' : ''});`;
        msg = new RegExp(`^${method}: axis -?\\d+ is out of range`);
        break;
      case 1: {
        method = c.pick(['sum', 'mean', 'max']);
        if (r === 0) {
          stmt = `const bad = ${A}.${method}([0]);`;
          msg = /out of range/;
        } else {
          const a = c.int(r);
          stmt = `const bad = ${A}.${method}([${a}, ${c.chance(50) ? a : a - r}]);`;
          msg = /is listed twice/;
        }
        break;
      }
      case 2:
        method = c.pick(['softmax', 'logSoftmax']);
        stmt = `const bad = g.${method}(${A}${r === 0 && c.chance(50) ? '' : `, ${out()}`});`;
        msg = new RegExp(`^${method}: axis`);
        break;
      case 3:
        method = 'concat';
        stmt = `const bad = g.concat([${A}, ${A}], ${out()});`;
        msg = /^concat: axis/;
        break;
      case 4: {
        method = 'transpose';
        const perm = c.pick([[0, 0], [1], [0, 1, 2, 3], [2, 0], [-1, 0]].filter((q) => q.length !== r || new Set(q).size !== q.length || q.some((x) => x < 0 || x >= r)));
        stmt = `const bad = ${A}.transpose(${S(perm)});`;
        msg = /^transpose: .* is not a permutation/;
        break;
      }
      default:
        method = c.pick(['sum', 'mean', 'max']);
        stmt = `const bad = ${A}.${method}(${c.pick(['0.5', '[0.5]', 'NaN', 'Infinity'])});`;
        msg = new RegExp(`^${method}: axis .* is out of range`);
    }
    if (method === 'transpose' && r < 2 && c.chance(30)) {
      stmt = `const bad = ${A}.transpose();`;
      msg = /^transpose: .* fewer than two axes/;
    }
    const line = p.add(stmt);
    return { family: 'axes', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, method), msg } };
  },

  i32Arithmetic(p) {
    const c = p.c;
    const s = dims(c, c.range(1, 2));
    const I = p.index(s);
    const F = p.param(s);
    const forms: [string, string, RegExp][] = [
      [`${I}.add(1)`, 'add', /^add: the first operand is i32/],
      [`${F}.mul(${I})`, 'mul', /^mul: the second operand is i32/],
      [`${I}.sub(${F})`, 'sub', /^sub: the first operand is i32/],
      [`${I}.exp()`, 'exp', /^exp: the operand is i32/],
      [`${I}.square()`, 'square', /^square: the operand is i32/],
      [`${I}.sum()`, 'sum', /the operand is i32/],
      [`${I}.max(0)`, 'max', /the operand is i32/],
      [`${I}.mean()`, 'mean', /the operand is i32/],
      [`g.softmax(${I})`, 'softmax', /the operand is i32/],
      [`${I}.reshape([-1, 1]).matmul(${F}.reshape([1, -1]))`, 'matmul', /^matmul: the left operand is i32/],
      [`g.concat([${F}, ${I}], 0)`, 'concat', /^concat: tensor 1 is i32/],
      [`g.gather(${I}, ${I})`, 'gather', /^gather: the table is i32/],
    ];
    const [expr, method, msg] = c.pick(forms);
    const stmt = `const bad = ${expr};`;
    const line = p.add(stmt);
    return { family: 'i32-arithmetic', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, method), msg } };
  },

  indices(p) {
    const c = p.c;
    const [n, k] = [c.range(1, 4), c.range(1, 4)];
    const X = p.param([n, k]);
    const Xf = p.param([n]);
    const forms: [string, string, RegExp][] = [
      [`g.gather(${X}, ${Xf})`, 'gather', /^gather: the index tensor is f32/],
      [`g.pick(${X}, ${Xf})`, 'pick', /^pick: the index tensor is f32/],
      [`g.oneHot(${Xf}, ${k})`, 'oneHot', /^oneHot: the index tensor is f32/],
      [`g.crossEntropy(${X}, ${Xf})`, 'crossEntropy', /^crossEntropy: targets must be i32/],
      [`g.hingeLoss(${X}, ${Xf})`, 'hingeLoss', /^hingeLoss: targets must be i32/],
    ];
    // wrong shapes of the index tensors, and tables and logits of the wrong rank
    const I = p.index([n + 1]);
    const S0 = p.param([]);
    const X3 = p.param([n, k, 2]);
    const In = p.index([n]);
    forms.push(
      [`g.pick(${X}, ${I})`, 'pick', /^pick: needs x \[n, c\] and indices \[n\]/],
      [`g.crossEntropy(${X}, ${I})`, 'crossEntropy', /^crossEntropy: targets must be i32\[\d+\]/],
      [`g.crossEntropy(${X3}, ${In})`, 'crossEntropy', /^crossEntropy: targets must be i32\[\d+, \d+\] class indices, one per row of logits/],
      [`g.crossEntropy(${Xf}, ${In})`, 'crossEntropy', /^crossEntropy: logits must be 2-D/],
      [`g.hingeLoss(${Xf}, ${In})`, 'hingeLoss', /^hingeLoss: scores must be 2-D/],
      [`g.gather(${S0}, ${In})`, 'gather', /^gather: the table is a scalar/],
      [`g.oneHot(${In}, ${c.pick(['0', '-1', '1.5', 'NaN'])})`, 'oneHot', /^oneHot: depth .* is not a positive integer/],
      [`g.batchNorm(${Xf}, 1, 0)`, 'batchNorm', /^batchNorm: x must be \[n, features\] or \[n, \.\.\., features\]/],
      [`g.batchNorm(${p.param(c.pick([[1, k], [1, 1, k]]))}, 1, 0)`, 'batchNorm', /^batchNorm: needs a batch of 2 or more rows/],
      [`g.layerNorm(${S0}, 1, 0)`, 'layerNorm', /^layerNorm: x must be an f32 tensor \[\.\.\., features\], got f32\[\]/],
      [`g.layerNorm(${X}, ${p.param([k + 1])}, 0)`, 'layerNorm', /^layerNorm: gain f32\[\d+\] does not fit x f32\[\d+,\d+\]: it must hold one value per feature/],
      [`g.batchNorm(${p.param([n + 1, k])}, 1, ${p.param([n + 2, k])})`, 'batchNorm', /^batchNorm: bias f32\[\d+,\d+\] does not fit x f32\[\d+,\d+\]/],
    );
    const [expr, method, msg] = c.pick(forms);
    const stmt = `const bad = ${expr};`;
    const line = p.add(stmt);
    return { family: 'indices', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, method), msg } };
  },

  loss(p) {
    const c = p.c;
    switch (c.int(6)) {
      case 0: {
        const L = p.fresh('L');
        const stmt = `const ${L} = ${p.param(dims(c, c.range(1, 3)))}.tanh();`;
        const line = p.add(stmt);
        const ret = c.chance(50) ? `return ${L};` : `return { loss: ${L} };`;
        return { family: 'loss-not-scalar', source: p.source([ret]), expect: { code: 1, line, col: Program.col(stmt, 'tanh'), msg: /^the loss must be an f32 scalar, but it is f32\[/ } };
      }
      case 1: {
        const L = p.fresh('L');
        const stmt = `const ${L} = g.input('${L}', [], 'i32');`;
        const line = p.add(stmt);
        return { family: 'loss-i32', source: p.source([`return { loss: ${L} };`]), expect: { code: 1, line, col: Program.col(stmt, 'input'), msg: /^the loss must be an f32 scalar, but it is i32\[\]/ } };
      }
      case 2: {
        const L = p.fresh('L');
        p.add(`const ${L} = ${p.param([])}.square();`);
        // no output named loss: a forward-only model, which builds, but not with --optimizer
        return {
          family: 'loss-missing',
          source: p.source([`return { ${c.pick(['total', 'Loss', 'out', 'losses'])}: ${L} };`]),
          args: ['--optimizer', 'sgd'],
          expect: { code: 1, line: 3, col: 1, msg: /^--optimizer sgd: the model returns no loss \(its outputs: \w+\), so it builds a forward-only module/ },
        };
      }
      case 3:
        return { family: 'loss-none', source: p.source([c.pick(['return {};', 'return {} as any;', 'return null as any;', 'return undefined as any;'])]), expect: { code: 1, line: 3, col: 1, msg: /^the model function returned no tensors/ } };
      case 4:
        return {
          family: 'loss-not-tensor',
          source: p.source([c.pick(['return { loss: 3 } as any;', "return { loss: 'x' } as any;", 'return { loss: [1, 2] } as any;'])]),
          expect: { code: 1, line: 3, col: 1, msg: /^the model output 'loss' is not a tensor/ },
        };
      default:
        // TypeScript rejects these before anything runs
        return { family: 'loss-type', source: p.source([c.pick(['return 3;', "return 'loss';", 'return { loss: 3 };', 'return [];', 'return;'])]), expect: { code: 1, msg: /^TS\d+: / } };
    }
  },

  names(p) {
    const c = p.c;
    switch (c.int(5)) {
      case 0: {
        // a name used twice (params and inputs share one namespace)
        const name = c.pick(['w', 'x', 'W1', 'loss']);
        const k1 = c.pick(['param', 'input']);
        const k2 = c.pick(['param', 'input']);
        p.add(`const d1 = g.${k1}('${name}', [2]);`);
        const stmt = `const d2 = g.${k2}('${name}', [${c.range(1, 3)}]);`;
        const line = p.add(stmt);
        return { family: 'duplicate-name', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, k2), msg: new RegExp(`^${k2}: the name '${name}' is already used by (another|a) ${k1} at `) } };
      }
      case 1: {
        const kind = c.pick(['param', 'input']);
        const stmt = `const bad = g.${kind}('', [2]);`;
        const line = p.add(stmt);
        return { family: 'empty-name', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, kind), msg: new RegExp(`^${kind}: the name must be a non-empty string`) } };
      }
      case 2: {
        const kind = c.pick(['param', 'input']);
        const stmt = `const bad = g.${kind}(${c.pick(['3', 'null', 'undefined', '{}'])} as any, [2]);`;
        const line = p.add(stmt);
        return { family: 'name-kind', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, kind), msg: new RegExp(`^${kind}: the name must be a non-empty string`) } };
      }
      case 3: {
        const name = c.pick(['1bad', 'a b', '', 'x/y', '../up', 'é', '-lead', 'a.b']);
        return { family: 'model-name', source: p.source(undefined, name), expect: { code: 1, line: 3, col: 1, msg: /^invalid model name/ } };
      }
      default: {
        // a reused name of the prefix
        const declared = p.gen.lines.map((l) => /g\.(param|input)\('([^']+)'/.exec(l)).filter((m) => m !== null);
        const m = declared.length ? c.pick(declared) : null;
        if (!m) return FAMILIES.names!(p);
        const kind = c.pick(['param', 'input']);
        const stmt = `const again = g.${kind}('${m[2]}', [1]);`;
        const line = p.add(stmt);
        return { family: 'duplicate-name', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, kind), msg: /is already used by/ } };
      }
    }
  },

  argumentKinds(p) {
    const c = p.c;
    const A = p.param(dims(c, c.range(1, 2)));
    const forms: [string, string, RegExp][] = [
      [`${A}.add(${c.pick(["'x'", 'null', '[1, 2]', '{}', 'undefined', 'true'])} as any)`, 'add', /^expected a tensor or a number, got /],
      [`${A}.matmul(${c.pick(['2', "'x'", 'null'])} as any)`, 'matmul', /^expected a tensor, got /],
      [`g.concat([], 0)`, 'concat', /^concat: expected a non-empty array/],
      [`g.concat(${A} as any, 0)`, 'concat', /^concat: expected a non-empty array/],
      [`g.param('w', ${c.pick(["'abc'", '[2, -1]', '[1.5]', '[NaN]', '3'])} as any)`, 'param', /^param: invalid shape/],
      [`g.param('w', [2], { init: ${c.pick(["'foo'", "'normal'", '3'])} as any })`, 'param', /^param: unknown init/],
      [`g.param('w', [2], { scale: ${c.pick(['NaN', 'Infinity', "'1'"])} as any })`, 'param', /^param: scale must be a finite number/],
      [`g.input('x', [2], ${c.pick(["'f64'", "'int32'", '3'])} as any)`, 'input', /^input: dtype must be 'f32' or 'i32'/],
      [`g.const(${c.pick(["'a'", 'null', '{}'])} as any)`, 'const', /^const: expected a number or nested arrays/],
      [`g.const([[1, 2], [3]])`, 'const', /^const: nested arrays are not rectangular/],
      [`g.gather(${c.pick(['3', "'t'"])} as any, ${A} as any)`, 'gather', /^expected a tensor, got /],
    ];
    const [expr, method, msg] = c.pick(forms);
    const stmt = `const bad = ${expr};`;
    const line = p.add(stmt);
    return { family: 'argument-kinds', source: p.source(), expect: { code: 1, line, col: Program.col(stmt, method), msg } };
  },

  typeErrors(p) {
    const c = p.c;
    const A = p.param(dims(c, c.range(1, 2)));
    const stmt = `const bad = ${c.pick([
      `${A}.add('x')`,
      `${A}.matmull(${A})`,
      `g.param(3, [2])`,
      `g.param('w', 'abc')`,
      `g.input('x', [2], 'f64')`,
      `${A}.sum('0')`,
      `g.softmax(${A}, 'last')`,
      `${A}.reshape(4)`,
      `g.concat(${A}, 0)`,
      `${A}.shape.foo()`,
      `undefinedThing.add(${A})`,
      `${A}.add()`,
      `g.param('w', [2], { init: 'normal' })`,
    ])};`;
    const line = p.add(stmt);
    return { family: 'type-error', source: p.source(), expect: { code: 1, line, msg: /^TS\d+: / } };
  },

  syntax(p) {
    const c = p.c;
    const A = p.param([2]);
    const stmt = c.pick([
      `const bad = ${A}.add(${A};`,
      `const bad = ${A}.add(${A}));`,
      `const = ${A};`,
      `const bad = '${A};`,
      `const bad = ${A}..add(${A});`,
      `const 1bad = ${A};`,
      `const bad = ${A}.add(@);`,
      `const bad = [${A};`,
      `const bad = ${A}.add(${A}) }`,
      `const bad = ${A} +* 2;`,
    ]);
    p.add(stmt);
    // an unclosed bracket or string may be reported further down
    return { family: 'syntax', source: p.source(), expect: { code: 1, msg: /^TS\d+: / } };
  },

  throws(p) {
    const c = p.c;
    const [stmt, msg, located] = c.pick<[string, RegExp, boolean]>([
      [`throw new Error('boom');`, /^the model threw Error: boom/, true],
      [`throw new RangeError('out of range');`, /^the model threw RangeError: out of range/, true],
      [`(null as any).foo();`, /^the model threw TypeError: /, true],
      [`JSON.parse('{');`, /^the model threw SyntaxError: /, true],
      // a thrown non-Error carries no stack, so the error may have no location
      [`throw 'a string';`, /^the model threw a string/, false],
    ]);
    const line = p.add(stmt);
    return { family: 'throws', source: p.source(), expect: { code: 1, line: located ? line : undefined, msg } };
  },

  modelFn(p) {
    const c = p.c;
    const fn = c.pick(['3', 'null', "'fn'", '{}', 'undefined']);
    const src = `import { model } from 'graphc';\n\nexport default model('fz', ${fn} as any);\n`;
    return { family: 'model-fn', source: src, expect: { code: 1, line: 3 } };
  },

  defaultExport(p) {
    const c = p.c;
    const body = p.source();
    const kind = c.int(5);
    if (kind === 0) {
      // reported at the model(...) call, naming what it is exported as
      const src = body.replace('export default model(', 'export const notDefault = model(');
      const lines = src.split('\n');
      const at = lines.findIndex((l) => l.includes('export const notDefault = model('));
      const col = lines[at]!.indexOf('model(') + 1;
      return { family: 'no-default-export', source: src, expect: { code: 1, line: at + 1, col, msg: /^the model file has no default export: this model\(\.\.\.\) is exported as 'notDefault'/ } };
    }
    const forms = ['3', "{ name: 'x' }", 'model', "'model'", 'null', "[model('a', (g) => g.param('p', []))]", 'function (g: unknown) { return g; }', 'class {}'];
    const other = c.pick(forms);
    const src = `import { model } from 'graphc';\nvoid model;\nexport default ${other};\n`;
    return { family: 'not-a-model', source: src, expect: { code: 1, line: 3, col: 1, msg: /^the default export of the model file is not model\(\.\.\.\)/ } };
  },
};

/** Runs per family: more for the families with more kinds of violation. */
const RUNS: Record<string, number> = { axes: 8, indices: 8, loss: 8, names: 8, argumentKinds: 8, i32Arithmetic: 6, typeErrors: 6 };
const DESCRIBE: Record<string, string> = {
  broadcast: 'binary ops on shapes that do not broadcast',
  matmul: 'matmul with differing inner or batch dimensions, or rank < 2',
  reshape: 'reshape to a wrong element count, two -1s or invalid dimensions',
  axes: 'axes out of range, listed twice or not integers; bad transpose permutations',
  i32Arithmetic: 'i32 tensors in arithmetic, reductions, softmax, matmul, concat, as a gather table',
  indices: 'f32 tensors as indices; index, logits and table tensors of the wrong shape; bad oneHot depth; bad batchNorm input',
  loss: 'a non-scalar, i32, missing, non-tensor or ill-typed loss',
  names: 'duplicate param/input names, empty or non-string names, invalid model names',
  argumentKinds: 'wrong argument kinds (strings, null, arrays, NaN) past the type checker',
  typeErrors: 'TypeScript type errors',
  syntax: 'syntax errors',
  throws: 'a model function that throws',
  modelFn: 'model(name, f) where f is not a function',
  defaultExport: 'a default export that is not model(...), or none',
};

describe('fuzz: ill-typed models fail the build with exit 1, one located diagnostic (file:line:col, source line, caret, fix) at the offending call, and no output', () => {
  it.each(Object.keys(FAMILIES).map((f, k) => [f, DESCRIBE[f], k] as const))('%s: %s', async (family, _what, k) => {
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(choicesArb(120), async (xs) => {
        const b = FAMILIES[family]!(new Program(new Choices(xs)));
        seen.add(b.family);
        await buildFails(b);
      }),
      { seed: seed(100 + k), numRuns: runs(RUNS[family] ?? 5), endOnFailure },
    );
    if (process.env.FUZZ_SHOW) console.log(`${family}: ${[...seen].join(', ')}`);
  });
});

describe('fuzz: CLI robustness', () => {
  it('usage errors exit 2 with a one-line message and write nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('no/such/model.ts', 'missing.ts', '', 'examples'), fc.boolean(), async (file, twice) => {
        const out = path.join(tmp(), 'out');
        const argv = twice ? ['build', 'examples/neuron.ts', 'examples/twolayer.ts', '--out', out] : ['build', file, '--out', out];
        const r = await run(argv);
        expect(r.code).toBe(2);
        expect(r.err).toMatch(/^graphc[ :][^\n]*\n(usage: [^\n]*\n)?$/);
        expect(existsSync(out)).toBe(false);
      }),
      { seed: seed(8), numRuns: 8 },
    );
  });

  it('random mutations of valid models either build (exit 0, files written) or fail cleanly (exit 1, located diagnostic, nothing written)', async () => {
    let built = 0;
    let failed = 0;
    await fc.assert(
      fc.asyncProperty(choicesArb(200), fc.array(fc.tuple(fc.nat(4), fc.nat(), fc.nat(), fc.string({ maxLength: 3 })), { minLength: 1, maxLength: 2 }), async (xs, muts) => {
        const gen = new ModelGen(new Choices(xs), { ops: 3 });
        let src = gen.source().text;
        for (const [kind, i, j, s] of muts) src = mutate(src, kind, i, j, s);
        const file = modelFile(src);
        const out = path.join(tmp(), 'out');
        const r = await run(['build', file, '--out', out]);
        try {
          expect([0, 1], 'exit code').toContain(r.code);
          if (r.code === 0) {
            built++;
            expect(readdirSync(out).length, 'files written').toBeGreaterThanOrEqual(4);
            expect(r.err, 'only warnings on stderr').not.toMatch(/: error: /);
          } else {
            failed++;
            if (process.env.FUZZ_SHOW) console.log(r.err.split('\n')[0]);
            expect(existsSync(out), 'no output folder').toBe(false);
            checkDiagnostic(r.err, file, src);
          }
        } catch (e) {
          throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- stderr ---\n${r.err}--- model ---\n${src}`);
        }
      }),
      { seed: seed(9), numRuns: runs(20), endOnFailure },
    );
    console.log(`mutated models: ${built} built, ${failed} failed cleanly`);
  });
});

const TOKENS = ['(', ')', '[', ']', '{', '}', ',', ';', '.', "'", '=', 'const', 'g', 'return', 'loss', '0', '-1', '1e9', 'add', 'sum', 'param', 'as any', '\n', '//', '/*'];
const METHODS = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'matmul', 'neg', 'exp', 'log', 'tanh', 'relu', 'sqrt', 'square', 'abs', 'sum', 'mean', 'max', 'transpose', 'reshape', 'stopGradient', 'softmax', 'gather', 'pick', 'concat'];
const NUMBERS = ['0', '1', '2', '3', '4', '-1', '0.5', '5', '64'];

/**
 * One random edit, from mild (a number, a method name) to destructive: replace a numeric
 * literal, rename a method call, delete or duplicate a line, insert a token, delete characters.
 */
function mutate(src: string, kind: number, i: number, j: number, s: string): string {
  const at = i % (src.length + 1);
  const replaceNth = (re: RegExp, f: (m: string) => string) => {
    const hits = [...src.matchAll(re)];
    if (hits.length === 0) return src;
    const h = hits[i % hits.length]!;
    return src.slice(0, h.index) + f(h[0]) + src.slice(h.index! + h[0].length);
  };
  switch (kind) {
    case 0:
      return replaceNth(/(?<![A-Za-z_0-9.])-?[0-9]+(\.[0-9]+)?(?![A-Za-z_0-9])/g, () => NUMBERS[j % NUMBERS.length]!);
    case 1:
      return replaceNth(/\.[A-Za-z]+\(/g, () => `.${METHODS[j % METHODS.length]}(`);
    case 2: {
      const lines = src.split('\n');
      const k = 3 + (i % Math.max(1, lines.length - 5)); // a body line
      return (j % 2 ? lines.filter((_, n) => n !== k) : [...lines.slice(0, k + 1), lines[k]!, ...lines.slice(k + 1)]).join('\n');
    }
    case 3:
      return src.slice(0, at) + (s || TOKENS[j % TOKENS.length]) + src.slice(at);
    default:
      return src.slice(0, at) + src.slice(at + 1 + (j % 4));
  }
}
