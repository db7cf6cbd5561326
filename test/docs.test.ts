// Every code block of README.md and docs/*.md runs, so that the examples cannot rot.
//
// Each document is a session in a folder of its own (under test-results/docs/, inside the package
// so that `graphc` and `graphc/io` resolve as they do for a user); its blocks run in order:
//
// - ```sh: each command line runs in the session's folder: `graphc ARGS` (or `npx graphc ARGS`)
//   through bin/graphc.js, `node FILE`; it must exit 0 (or what the output block after it says).
//   A `# comment` is dropped. Any other command needs a not-run marker.
// - ```ts / ```js whose first line is `// NAME.ext` (or after `<!-- file: NAME -->`, any block): written to
//   the session's folder as NAME, for the commands after it; it must be used by a later block.
// - ```ts / ```js holding `export default model(`: a model file, compiled with the real compiler.
// - ```ts / ```js with an import (`./generated/...`, `graphc/io`, a package): usage code, run by
//   `node` as an ES module in the session's folder (a TypeScript block is transpiled first). Names it uses but does not
//   declare, such as `batch(step)` or `Xb`, come from a prelude that makes valid arrays from the
//   imported module's `spec` (see PRELUDE).
// - `<!-- output -->` (or `<!-- output, exit N -->`) before a block: the block is the stdout, then
//   the stderr, of the last command of the shell block before it, compared exactly.
// - `<!-- excerpt: PATH -->` (PATH in the session's folder if a block made it, else in the repository): every line of the block but `...` lines is found in PATH, in order
//   (generated code, a golden file, a test that asserts a message).
// - `<!-- declarations of: PATH -->`: every `export function|const|interface` that the block
//   declares is exported by PATH, a function with the same parameter names.
// - `<!-- not run: REASON -->`: the block is skipped, and listed by the last test.
// A block that is none of these fails the test. Building every model once per session keeps the
// file fast; docs/ops.md and docs/api.md are generated (npm run check:docs) and hold no examples.

import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import { ROOT } from './helpers.js';

const BIN = path.join(ROOT, 'bin', 'graphc.js');
const GENERATED_DOCS = new Set(['docs/ops.md', 'docs/api.md']);
const DOCS = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
  .filter((d) => !GENERATED_DOCS.has(d))
  // DOCS_ONLY=README.md,docs/cli.md runs those documents only (the last test then reports the others as not handled)
  .filter((d) => !process.env.DOCS_ONLY || process.env.DOCS_ONLY.split(',').includes(d));

export interface Block {
  readonly doc: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly info: string;
  readonly text: string;
  /** The HTML comment on the line before the fence (blank lines between allowed), without `<!--` `-->`. */
  readonly marker?: string;
}

/** The fenced blocks of a Markdown text (fences may be indented, as in a list item). */
export function fencedBlocks(doc: string, md: string): Block[] {
  const lines = md.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)\s*([\w-]*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, info] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !new RegExp(`^\\s*${fence}\\s*$`).test(lines[j]!); j++) body.push(lines[j]!.startsWith(indent!) ? lines[j]!.slice(indent!.length) : lines[j]!);
    if (j === lines.length) throw new Error(`${doc}:${i + 1}: unclosed code block`);
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    const m = k >= 0 ? /^\s*<!--\s*([\s\S]*?)\s*-->\s*$/.exec(lines[k]!) : null;
    blocks.push({ doc, line: i + 1, info: info!, text: body.join('\n'), ...(m ? { marker: m[1] } : {}) });
    i = j;
  }
  return blocks;
}

interface Result {
  readonly code: number;
  readonly output: string;
}

function run(cmd: string, args: string[], cwd: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, output: out + err }));
  });
}

/** Splits a command line into words (single and double quotes; no variables, no pipes). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /'([^']*)'|"([^"]*)"|(\S+)/g;
  for (let m; (m = re.exec(line)); ) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/**
 * Names that usage examples use without declaring them: the data a reader brings. Each is made
 * from the spec of the module the block imports (`__m`): i32 inputs are 0 (a valid index and a
 * valid class), f32 inputs a fixed pattern in [-1, 1).
 */
const PRELUDE: Record<string, string> = {
  __inputs: `const __inputs = (seed = 0) => Object.fromEntries(Object.entries(__m.spec.inputs).map(([k, v]) => {
  const n = v.shape.reduce((a, b) => a * (typeof b === 'number' ? b : 32), 1);
  return [k, v.dtype === 'i32' ? new Int32Array(n) : Float32Array.from({ length: n }, (_, i) => (((i * 7919 + seed * 104729) % 200) - 100) / 100)];
}));`,
  batch: 'const batch = (step) => __inputs(step);', // a value where the block does not call it: BATCH_VALUE
  devSet: 'const devSet = __inputs(1);',
  schedule: 'const schedule = (step) => 1;',
  Xb: 'const { Xb } = __inputs();',
  Yb: 'const { Yb } = __inputs();',
  X: 'const { X } = __inputs();',
  Y: 'const { Y } = __inputs();',
};

const BATCH_VALUE = 'const batch = __inputs();';

function declares(code: string, name: string): boolean {
  return new RegExp(`\\b(const|let|var)\\s[^;]*\\b${name}\\s*=[^=]|\\b(function|class)\\s+${name}\\b|\\{[^}]*\\b${name}\\b[^}]*\\}\\s*=|import[^;]*\\b${name}\\b[^;]*from`).test(code);
}

/** The usage block as an ES module: TypeScript transpiled, with the prelude names it needs. */
function usageModule(code: string, lang: string): string {
  let js = lang === 'ts' ? ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText : code;
  const rel = /from\s+['"](\.\.?\/[^'"]+)['"]/.exec(js);
  const needed = Object.keys(PRELUDE).filter((n) => !n.startsWith('__') && new RegExp(`\\b${n}\\b`).test(js) && !declares(js, n));
  if (needed.length > 0) {
    if (!rel) throw new Error(`uses ${needed.join(', ')} but imports no module to make them from`);
    const prelude = needed.map((n) => (n === 'batch' && !/\bbatch\(/.test(js) ? BATCH_VALUE : PRELUDE[n]));
    js = `import * as __m from '${rel[1]}';\n${PRELUDE.__inputs}\n${prelude.join('\n')}\n${js}`;
  }
  return js;
}

/** `--` and ( ) balanced parameter names of the first `NAME(` in a declaration text. */
function paramNames(text: string, name: string): string[] | undefined {
  const at = new RegExp(`function\\s+${name}\\s*\\(`).exec(text);
  if (!at) return undefined;
  let depth = 1;
  let i = at.index + at[0].length;
  const start = i;
  for (; i < text.length && depth > 0; i++) {
    if ('([{<'.includes(text[i]!)) depth++;
    else if (')]}>'.includes(text[i]!) && !(text[i] === '>' && text[i - 1] === '=')) depth--;
  }
  const inner = text.slice(start, i - 1);
  const parts: string[] = [];
  depth = 0;
  let cur = '';
  for (const c of inner) {
    if ('([{<'.includes(c)) depth++;
    if (')]}>'.includes(c)) depth--;
    if (c === ',' && depth === 0) (parts.push(cur), (cur = ''));
    else cur += c;
  }
  if (cur.trim()) parts.push(cur);
  return parts.map((p) => /^\s*(?:\.\.\.)?(\w+)/.exec(p)?.[1] ?? p.trim());
}

/** A path of a marker: in the session's folder (what its blocks built), else in the repository. */
function resolvePath(s: Session, file: string): string {
  const local = path.join(s.dir, file);
  return existsSync(local) ? local : path.join(ROOT, file);
}

function checkExcerpt(b: Block, file: string): void {
  const text = readFileSync(file, 'utf8');
  let at = 0;
  for (const line of b.text.split('\n')) {
    const want = line.trim();
    if (want === '' || /^(\/\/\s*)?\.\.\.$/.test(want)) continue;
    const i = text.indexOf(want, at);
    if (i < 0) throw new Error(`excerpt of ${file}: not found (in this order): ${want}`);
    at = i + want.length;
  }
}

function checkDeclarations(b: Block, file: string): void {
  const text = readFileSync(file, 'utf8');
  let n = 0;
  for (const m of b.text.matchAll(/export\s+(?:async\s+)?(function|const|let|interface|type)\s+(\w+)/g)) {
    n++;
    const [, kind, name] = m;
    const decl = new RegExp(`export\\s+(?:async\\s+)?(?:function|const|let|interface|type)\\s+${name}\\b`);
    if (!decl.test(text)) throw new Error(`${file} exports no ${name}`);
    if (kind === 'function') {
      const want = paramNames(b.text, name!)!;
      const have = paramNames(text, name!);
      if (have && have.join(',') !== want.join(',')) throw new Error(`${file}: ${name}(${have.join(', ')}), the block says ${name}(${want.join(', ')})`);
    }
  }
  if (n === 0) throw new Error('a declarations block that declares nothing');
}

interface Session {
  readonly dir: string;
  readonly files: Map<string, Block>;
  readonly used: Set<string>;
  last?: { line: string; result: Result; block: Block };
}

const SESSIONS = path.join(ROOT, 'test-results', 'docs');
const notRun: string[] = [];
const handled = new Map<string, string>();
const times: [string, number][] = [];

async function runShell(s: Session, b: Block, expectExit: number): Promise<void> {
  const lines = b.text.split('\n').map((l) => l.replace(/(^|\s)#.*$/, '').trim()).filter(Boolean);
  if (lines.length === 0) throw new Error('an empty shell block');
  for (const [i, line] of lines.entries()) {
    const w = words(line);
    if (w[0] === 'npx') w.shift();
    let result: Result;
    if (w[0] === 'graphc') result = await run(process.execPath, [BIN, ...w.slice(1)], s.dir);
    else if (w[0] === 'node') result = await run(process.execPath, w.slice(1), s.dir);
    else throw new Error(`cannot run \`${line}\` in a test: mark the block <!-- not run: reason -->`);
    for (const f of s.files.keys()) if (w.includes(f)) s.used.add(f);
    s.last = { line, result, block: b };
    const want = i === lines.length - 1 ? expectExit : 0;
    if (result.code !== want) throw new Error(`\`${line}\` exited ${result.code}, not ${want}:\n${result.output}`);
  }
}

async function runBlock(s: Session, b: Block, next: Block | undefined): Promise<string> {
  const marker = b.marker ?? '';
  if (/^not run:/.test(marker)) {
    const reason = marker.slice('not run:'.length).trim();
    if (!reason) throw new Error('a not-run marker needs a reason');
    notRun.push(`${b.doc}:${b.line}: ${reason}`);
    return 'not run';
  }
  const excerpt = /^excerpt:\s*(\S+)$/.exec(marker);
  if (excerpt) return (checkExcerpt(b, resolvePath(s, excerpt[1]!)), 'excerpt');
  const decls = /^declarations of:\s*(\S+)$/.exec(marker);
  if (decls) return (checkDeclarations(b, resolvePath(s, decls[1]!)), 'declarations');
  const output = /^output(?:, exit (\d+))?$/.exec(marker);
  if (output) {
    if (!s.last || s.last.result === undefined) throw new Error('an output block with no command before it');
    expect(b.text.trimEnd(), `the output of \`${s.last.line}\``).toBe(s.last.result.output.trimEnd());
    return 'output';
  }
  if (b.info === 'sh') {
    const out = next?.marker ? /^output, exit (\d+)$/.exec(next.marker) : null;
    await runShell(s, b, out ? Number(out[1]) : 0);
    return 'shell';
  }
  const named = /^file:\s*(\S+)$/.exec(marker)?.[1] ?? (/^(ts|js)$/.test(b.info) ? /^\/\/ ([\w.-]+\.(?:ts|mjs|js|json))\s*$/.exec(b.text.split('\n')[0]!)?.[1] : undefined);
  if (named) {
    writeFileSync(path.join(s.dir, named), b.text + '\n');
    s.files.set(named, b);
    return 'file';
  }
  if (/^(ts|js)$/.test(b.info) && /export default model\(/.test(b.text)) {
    const file = path.join(s.dir, `block-${b.line}.ts`);
    writeFileSync(file, b.text + '\n');
    await compile(file, { targets: ['ts'] });
    return 'model';
  }
  if (/^(ts|js)$/.test(b.info) && /^\s*import\b[^;]*from\s+['"]/m.test(b.text)) {
    const file = `block-${b.line}.mjs`;
    writeFileSync(path.join(s.dir, file), usageModule(b.text, b.info));
    const r = await run(process.execPath, [file], s.dir);
    if (r.code !== 0) throw new Error(`the usage code exited ${r.code}:\n${r.output}`);
    return 'usage';
  }
  throw new Error(`no test runs this \`\`\`${b.info} block: make it runnable, or mark it (<!-- excerpt: PATH -->, <!-- declarations of: PATH -->, <!-- output -->, <!-- not run: reason -->)`);
}

mkdirSync(SESSIONS, { recursive: true });
afterAll(() => rmSync(SESSIONS, { recursive: true, force: true }));

describe.concurrent('the code blocks of the documentation', () => {
  for (const doc of DOCS) {
    it(doc, async () => {
      const blocks = fencedBlocks(doc, readFileSync(path.join(ROOT, doc), 'utf8'));
      const s: Session = { dir: mkdtempSync(path.join(SESSIONS, `${path.basename(doc, '.md')}-`)), files: new Map(), used: new Set() };
      symlinkSync(path.join(ROOT, 'examples'), path.join(s.dir, 'examples'));
      for (const g of readdirSync(path.join(ROOT, 'generated'))) if (blocks.some((b) => new RegExp(`generated/${g}\\b`).test(b.text))) cpSync(path.join(ROOT, 'generated', g), path.join(s.dir, 'generated', g), { recursive: true });
      const failures: string[] = [];
      for (const [i, b] of blocks.entries()) {
        const t0 = performance.now();
        try {
          handled.set(`${doc}:${b.line}`, await runBlock(s, b, blocks[i + 1]));
          times.push([`${doc}:${b.line}`, performance.now() - t0]);
        } catch (e) {
          failures.push(`${doc}:${b.line} (\`\`\`${b.info}): ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      for (const [f, b] of s.files) if (!s.used.has(f) && !blocks.some((o) => o.line > b.line && o.text.includes(f))) failures.push(`${doc}:${b.line}: the file ${f} is written but no later block uses it`);
      expect(failures.join('\n\n')).toBe('');
    }, 240_000);
  }
});

describe('the documentation test', () => {
  it('finds the blocks, and handles each', () => {
    const md = 'a\n\n<!-- not run: why -->\n```sh\nnpm x\n```\n  ```ts\n  const a = 1;\n  ```\n';
    expect(fencedBlocks('t.md', md)).toEqual([
      { doc: 't.md', line: 4, info: 'sh', text: 'npm x', marker: 'not run: why' },
      { doc: 't.md', line: 7, info: 'ts', text: 'const a = 1;' },
    ]);
    expect(() => fencedBlocks('t.md', '```ts\nx')).toThrow('t.md:1: unclosed code block');
    expect(paramNames('export function trainStep(params: P, state: S, inputs: I,\n  options?: { lr?: number; seed?: number }): { loss: number };', 'trainStep')).toEqual(['params', 'state', 'inputs', 'options']);
    expect(paramNames('export function initParams(seed = 0): Params {', 'initParams')).toEqual(['seed']);
  });

  it.sequential('has run or excused every block (the list of blocks not run)', () => {
    const all = DOCS.flatMap((d) => fencedBlocks(d, readFileSync(path.join(ROOT, d), 'utf8')));
    const missing = all.filter((b) => !handled.has(`${b.doc}:${b.line}`)).map((b) => `${b.doc}:${b.line}`);
    expect(missing, 'blocks that neither ran nor are marked not run').toEqual([]);
    const slow = times.sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`);
    console.log(`${all.length} blocks: ${all.length - notRun.length} ran, ${notRun.length} not run:\n${notRun.sort().join('\n')}\nslowest: ${slow.join(', ')}`);
  });
});
