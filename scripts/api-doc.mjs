// Writes docs/api.md, the reference of graphc's public TypeScript surface, from the TSDoc comments
// of the sources (read with ts-morph): the DSL that `graphc` exports (src/index.ts), `graphc/io`
// (src/io.ts), and a generated module's types and functions: examples/makemore_running.ts (dropout
// and batchnorm buffers) built here with `--target ts --optimizer sgd`, so that the reference shows
// the whole contract (every flat module has the same API, keyed by its own names).
// `node scripts/api-doc.mjs` writes it; `--check` exits 1 with a diff when the committed file is
// stale, or when a public declaration or member has no TSDoc comment (npm run docs:api,
// npm run check:docs).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Node, Project } from 'ts-morph';
import { createTwoFilesPatch } from 'diff';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(root, 'docs/api.md');
const ENTRIES = [
  { file: 'src/index.ts', title: "The DSL: `import { model } from 'graphc'`", intro: 'What a model file imports. `model(name, fn)` is its default export; `fn` gets a `GraphBuilder` `g` and returns the loss (or `{ loss, ...outputs }`; outputs without a loss build a forward-only module).' },
  { file: 'src/io.ts', title: "Checkpoints: `import { saveParams, loadParams, saveState, loadState } from 'graphc/io'`", intro: 'safetensors files keyed by the DSL names ([interop.md](interop.md)), and optimizer states ([training.md](training.md)).' },
  {
    file: 'generated/makemore_running/makemore_running.ts',
    build: ['build', 'examples/makemore_running.ts', '--target', 'ts', '--optimizer', 'sgd'],
    title: 'A generated module: `generated/<name>/<name>.ts`',
    intro:
      'What `graphc build` writes, shown for `graphc build examples/makemore_running.ts --target ts --optimizer sgd` (a model with dropout and batchnorm running statistics); every flat module has these exports, with `Params`, `Inputs`, `Outputs`, `Grads` (and `Buffers`) keyed by its own names. The wasm module has the same functions and adds `create({ threads })` ([threads.md](threads.md)); the GPU.js module is asynchronous ([gpu.md](gpu.md)); `--hvp` / `--jvp` add `hvp` and `jvp` ([second-order.md](second-order.md)).',
  },
];

/**
 * The generated module's declarations that its emitter writes without a TSDoc comment: their
 * description here (what every generated module means by them).
 */
const GENERATED_DOCS = {
  spec: "The model's name and, by DSL name, its inputs, params and outputs with their dtype and shape (a symbolic dimension is its name, `'B'`).",
  Params: 'The params by DSL name: a row-major Float32Array each. `initParams(seed)` makes fresh ones; `trainStep` and `update` change them in place.',
  Inputs: 'The inputs by DSL name: Float32Array for f32, Int32Array for i32, row-major; checked before any work (a wrong type, a wrong length or an index out of range throws, naming the tensor).',
  Outputs: "What `forward` returns: each output by name, a scalar as a number. The arrays are the module's own, overwritten by the next call: copy what you keep.",
  Grads: "The loss's gradient with respect to each param (and each input declared with `{ grad: true }`), by name, shaped like it; overwritten by the next `valueAndGrad` or `trainStep`, not by `forward`.",
};

const project = new Project({ tsConfigFilePath: join(root, 'tsconfig.json'), skipAddingFilesFromTsConfig: true });
const undocumented = [];

/** The TSDoc text of a node (its description and tags, as written), or ''. */
function docOf(node) {
  const docs = Node.isJSDocable(node) ? node.getJsDocs() : [];
  return docs
    .map((d) => d.getInnerText().trim())
    .filter(Boolean)
    .join('\n\n');
}

const isInternal = (node) => Node.isJSDocable(node) && node.getJsDocs().some((d) => d.getTags().some((t) => t.getTagName() === 'internal'));

/** A declaration's text without its body and its comments, on one line where it fits. */
function signature(node) {
  let text;
  if (Node.isFunctionDeclaration(node) || Node.isMethodDeclaration(node) || Node.isGetAccessorDeclaration(node)) {
    const body = node.getBody();
    text = body ? node.getText().slice(0, body.getStart() - node.getStart()).trim() : node.getText();
  } else if (Node.isVariableDeclaration(node)) {
    const init = node.getInitializer();
    text = `const ${node.getName()}${init && !node.getTypeNode() ? `: ${node.getType().getText(node)}` : node.getTypeNode() ? `: ${node.getTypeNode().getText()}` : ''}`;
  } else text = node.getText();
  return text
    .replace(/\/\*\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '')
    .replace(/^export\s+(declare\s+)?/, '')
    .replace(/\n\s*\n/g, '\n')
    .trim();
}

function where(node) {
  return `${relative(root, node.getSourceFile().getFilePath())}:${node.getStartLineNumber()}`;
}

/** The public members of a class or interface: name, signature, doc. */
function members(node) {
  const out = [];
  const list = Node.isClassDeclaration(node) ? node.getMembers() : node.getMembers();
  for (const m of list) {
    if (isInternal(m)) continue;
    if (Node.isConstructorDeclaration(m)) continue;
    if ((Node.isMethodDeclaration(m) || Node.isPropertyDeclaration(m) || Node.isGetAccessorDeclaration(m)) && (m.hasModifier?.('private') || m.hasModifier?.('protected'))) continue;
    const name = m.getName?.();
    if (!name || name.startsWith('[') || name.startsWith('#')) continue;
    out.push({ name, sig: signature(m).replace(/^(public\s+)?/, ''), doc: docOf(m), where: where(m) });
  }
  return out;
}

/** The entry's source: the file, or for a generated module what `graphc build` writes now. */
function sourceOf(entry) {
  if (!entry.build) return project.addSourceFileAtPath(join(root, entry.file));
  const out = mkdtempSync(join(tmpdir(), 'graphc-api-'));
  try {
    const r = spawnSync(process.execPath, [join(root, 'bin/graphc.js'), ...entry.build, '--out', out], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`graphc ${entry.build.join(' ')} failed:\n${r.stderr}`);
    const text = readFileSync(join(out, entry.file.split('/').pop()), 'utf8');
    return project.createSourceFile(join(root, entry.file), text, { overwrite: true });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function section(entry) {
  const sf = sourceOf(entry);
  const lines = [`## ${entry.title}`, '', entry.intro, '', `From \`${entry.file}\`.`, ''];
  const decls = [...sf.getExportedDeclarations()].flatMap(([name, ds]) => ds.map((d) => [name, d]));
  for (const [name, d] of decls) {
    if (isInternal(d)) continue;
    const docNode = Node.isVariableDeclaration(d) ? d.getVariableStatement() ?? d : d;
    const doc = docOf(docNode) || (entry.file.startsWith('generated/') ? (GENERATED_DOCS[name] ?? '') : '');
    if (!doc) undocumented.push(`${where(d)}: ${name}`);
    const kind = Node.isClassDeclaration(d) ? 'class' : Node.isInterfaceDeclaration(d) ? 'interface' : Node.isTypeAliasDeclaration(d) ? 'type' : Node.isFunctionDeclaration(d) ? 'function' : 'const';
    lines.push(`### ${name} <sub>${kind}</sub>`, '');
    if (doc) lines.push(doc, '');
    const ms = Node.isClassDeclaration(d) || Node.isInterfaceDeclaration(d) ? members(d) : [];
    const documentedMembers = ms.filter((m) => m.doc);
    if (Node.isClassDeclaration(d) || (Node.isInterfaceDeclaration(d) && documentedMembers.length > 0)) {
      lines.push('| member | |', '| --- | --- |');
      for (const m of ms) {
        if (!m.doc) undocumented.push(`${m.where}: ${name}.${m.name}`);
        const cell = (s) => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
        lines.push(`| \`${cell(m.sig.replace(/;$/, ''))}\` | ${cell(m.doc)} |`);
      }
      lines.push('');
    } else {
      lines.push('```ts', signature(d), '```', '');
    }
  }
  return lines.join('\n');
}

const body = ENTRIES.map(section).join('\n');
const text = `<!-- generated by graphc, do not edit: npm run docs:api writes it from the TSDoc comments of ${ENTRIES.map((e) => e.file).join(', ')} -->

# API reference

The public TypeScript surface of graphc. Each entry is the declaration as the source has it and
its TSDoc comment; \`npm run docs:api\` regenerates this file, and \`npm run check:docs\` fails when it is
stale or a public declaration has no comment.

${body}`.replace(/\n{3,}/g, '\n\n');

if (process.argv.includes('--check')) {
  const old = readFileSync(OUT, 'utf8');
  let ok = true;
  if (old !== text) {
    process.stderr.write(createTwoFilesPatch('docs/api.md', 'docs/api.md (now)', old, text, 'committed', 'generated') + '\ndocs/api.md is stale: run npm run docs:api\n');
    ok = false;
  }
  if (undocumented.length > 0) {
    process.stderr.write(`public declarations without a TSDoc comment:\n${undocumented.map((u) => `  ${u}`).join('\n')}\n`);
    ok = false;
  }
  process.exitCode = ok ? 0 : 1;
} else {
  writeFileSync(OUT, text);
  if (undocumented.length > 0) process.stderr.write(`public declarations without a TSDoc comment (check:docs fails):\n${undocumented.map((u) => `  ${u}`).join('\n')}\n`);
  process.stdout.write(`wrote docs/api.md\n`);
}
