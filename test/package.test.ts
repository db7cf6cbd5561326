// graphc in a new user's own project: the package that `npm pack` makes, installed into a fresh
// `npm init -y` project, builds the README's model with `npx graphc build`, and the generated
// modules train in a "type": "commonjs" project as in a "type": "module" one. Besides: what a
// user's project does not have (gpu.js) and what a model file may use (Node's API, its own imports).
//
// The pack-install test runs the README's section "Use graphc in your project" block by block,
// as a user types it, with two changes that keep it offline and fast: `npm pack` does not rebuild
// dist/ (`--ignore-scripts`: the `npm ci` before the tests built it, as prepack would), and
// `npm install` gets `--offline`, its project seeded with a package-lock.json whose entries are
// the repository's own (package-lock.json, graphc's dependencies only), so that the tarball's
// dependencies are the versions `npm ci` installed, from the cache it filled. Where that cache
// lacks one (a machine that never ran npm ci here), it installs again from the same registry.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { RawDiagnostic } from '../src/typecheck.js';
import { typeError } from '../src/typecheck.js';
import { OUTPUT_PACKAGE_JSON } from '../src/build.js';
import { ROOT, run, tmp } from './helpers.js';

const BIN = path.join(ROOT, 'bin', 'graphc.js');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; the environment without npm's per-run variables (vitest may run under `npm test`). */
function sh(cmd: string, args: readonly string[], cwd: string): Result {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(?!config_(cache|registry)$)/i.test(k)));
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...env, NO_COLOR: '1' } });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

function ok(r: Result, what: string): Result {
  expect(r.status, `${what} exited ${r.status}:\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

/** The fenced blocks of a README section (its `## ` heading up to the next), with the HTML comment before each. */
function sectionBlocks(md: string, heading: string): { info: string; text: string; marker?: string }[] {
  const start = md.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README.md has no section '## ${heading}'`);
  const end = md.indexOf('\n## ', start + 1);
  const section = md.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/(?:<!--\s*([\s\S]*?)\s*-->\s*\n)?```(\w*)\n([\s\S]*?)\n```/g)].map((m) => ({ info: m[2]!, text: m[3]!, ...(m[1] ? { marker: m[1] } : {}) }));
}

/** The command lines of a shell block, comments dropped. */
const commands = (text: string) =>
  text
    .split('\n')
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter(Boolean);

/**
 * package-lock.json for a project whose one dependency is graphc's tarball at `tgz` (relative to
 * the project): the repository's lock entries that are not dev-only, each with the registry
 * address of its tarball (the repository's lock records none), so that `npm install --offline`
 * finds every one in npm's cache by name, version and integrity.
 */
function seededLock(project: string, tgz: string): string {
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, Record<string, unknown>> };
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  const registry = (sh(NPM, ['config', 'get', 'registry'], project).stdout.trim() || 'https://registry.npmjs.org/').replace(/\/?$/, '/');
  const integrity = 'sha512-' + createHash('sha512').update(readFileSync(path.resolve(project, tgz))).digest('base64');
  const packages: Record<string, unknown> = {
    '': { name: path.basename(project), version: '1.0.0', dependencies: { graphc: `file:${tgz}` } },
    'node_modules/graphc': {
      version: pkg.version,
      resolved: `file:${tgz}`,
      integrity,
      license: pkg.license,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
      peerDependencies: pkg.peerDependencies,
      peerDependenciesMeta: pkg.peerDependenciesMeta,
    },
  };
  for (const [k, v] of Object.entries(lock.packages)) {
    if (k === '' || v.dev || v.devOptional || v.link || !k.startsWith('node_modules/')) continue;
    const name = k.slice(k.lastIndexOf('node_modules/') + 'node_modules/'.length);
    packages[k] = { ...v, resolved: v.resolved ?? `${registry}${name}/-/${name.split('/').pop()}-${v.version as string}.tgz` };
  }
  return JSON.stringify({ name: path.basename(project), version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2) + '\n';
}

describe('the package: npm pack, npm install in a fresh project, npx graphc build, train', () => {
  it("follows the README's 'Use graphc in your project' in a \"type\": \"commonjs\" and a \"type\": \"module\" project", () => {
    const t0 = performance.now();
    const blocks = sectionBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'), 'Use graphc in your project');
    const shell = blocks.filter((b) => b.info === 'sh').map((b) => commands(b.text));
    const file = (name: string) => blocks.find((b) => b.text.startsWith(`// ${name}\n`))?.text;
    // the output blocks: the build's, then the training's
    const [built, output] = blocks.filter((b) => b.marker === 'output').map((b) => b.text);
    // the section's steps, in order: pack (in the clone), init and install (in the project), build, train
    expect(shell.map((c) => c.map((l) => l.split(' ').slice(0, 2).join(' ')))).toEqual([['npm ci', 'npm pack'], ['npm init', 'npm install'], ['npx graphc'], ['node train.mjs']]);
    expect(file('xor.ts'), 'the model file').toBeDefined();
    expect(file('train.mjs'), 'the training script').toBeDefined();
    expect(built, "the build's output block").toBeDefined();
    expect(output, "the training's output block").toBeDefined();

    // the layout the README assumes: the clone in graphc/, the project beside it
    const top = tmp();
    const clone = path.join(top, 'graphc');
    const project = path.join(top, 'my-project');
    mkdirSync(clone);
    mkdirSync(project);
    const [, install] = shell[1]!;
    const tgz = install!.split(' ').pop()!;
    const packed = JSON.parse(ok(sh(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', path.resolve(project, path.dirname(tgz))], ROOT), 'npm pack').stdout) as { filename: string; files: { path: string }[] }[];
    expect(path.basename(tgz)).toBe(packed[0]!.filename);
    const shipped = packed[0]!.files.map((f) => f.path);
    for (const f of ['bin/graphc.js', 'dist/src/cli.js', 'dist/src/index.d.ts', 'README.md', 'LICENSE', 'docs/module.md']) expect(shipped, f).toContain(f);
    // (the symbolic wasm module embeds no kernel generator's source since its matmuls are built once, 2026-12-07: none is shipped)
    expect(shipped.filter((f) => /^codegen\//.test(f)), 'sources the package ships').toEqual([]);
    expect(shipped.filter((f) => /^(test|generated|bench|examples|src|ir)\/|\.map$/.test(f)), 'files the package must not ship').toEqual([]);
    // every shipped file is the build, the CLI, the docs or a file package.json's "files" names
    // (a count bound of 250 stood here: the dist/ of each new module adds two files, 286 on 2026-12-06)
    const allowed = /^(bin\/|dist\/.*\.(js|d\.ts)$|docs\/.*\.md$|scripts\/prepare\.mjs$|README\.md$|LICENSE$|package\.json$)/;
    expect(shipped.filter((f) => !allowed.test(f)), 'files outside the package\'s own').toEqual([]);

    // npm init -y: npm 11 writes "type": "commonjs" (older npm writes no type, which means the same)
    ok(sh(NPM, ['init', '-y'], project), 'npm init -y');
    const pj = path.join(project, 'package.json');
    const initial = JSON.parse(readFileSync(pj, 'utf8')) as Record<string, unknown>;
    writeFileSync(pj, JSON.stringify({ ...initial, type: 'commonjs' }, null, 2) + '\n');
    writeFileSync(path.join(project, 'package-lock.json'), seededLock(project, tgz));
    const args = install!.split(' ').slice(1);
    let r = sh(NPM, [...args, '--offline', '--no-audit', '--no-fund'], project);
    let from = "npm's cache, offline";
    if (r.status !== 0 && /ENOTCACHED/.test(r.stderr)) {
      r = sh(NPM, [...args, '--prefer-offline', '--no-audit', '--no-fund'], project);
      from = 'the registry (a package was not in the cache)';
    }
    ok(r, `npm ${args.join(' ')}`);
    expect(existsSync(path.join(project, 'node_modules', 'graphc', 'dist', 'src', 'cli.js'))).toBe(true);

    writeFileSync(path.join(project, 'xor.ts'), file('xor.ts')! + '\n');
    writeFileSync(path.join(project, 'train.mjs'), file('train.mjs')! + '\n');
    const [build] = shell[2]!;
    const b = ok(sh('npx', build!.split(' ').slice(1), project), build!);
    expect(b.stdout.trimEnd()).toBe(built);
    // the generated modules import nothing: not even graphc
    for (const f of ['xor.js', 'xor.wasm.js']) expect(readFileSync(path.join(project, 'generated', 'xor', f), 'utf8')).not.toMatch(/^\s*import\s/m);

    // the wasm module trains as the flat one does (the same script, another file)
    const wasmScript = file('train.mjs')!.replace("'./generated/xor/xor.js'", "'./generated/xor/xor.wasm.js'");
    expect(wasmScript).not.toBe(file('train.mjs'));
    writeFileSync(path.join(project, 'train-wasm.mjs'), wasmScript + '\n');
    for (const type of ['commonjs', 'module']) {
      writeFileSync(pj, JSON.stringify({ ...JSON.parse(readFileSync(pj, 'utf8')), type }, null, 2) + '\n');
      const scripts = type === 'module' ? ['train.mjs', 'train-wasm.mjs', 'train.js'] : ['train.mjs', 'train-wasm.mjs'];
      // in a module project, train.js is an ES module too
      if (type === 'module') writeFileSync(path.join(project, 'train.js'), file('train.mjs')! + '\n');
      for (const s of scripts) {
        const t = ok(sh(process.execPath, [s], project), `node ${s} ("type": "${type}")`);
        expect(t.stdout.trimEnd(), `node ${s} ("type": "${type}")`).toBe(output);
      }
    }
    // a CommonJS script of the commonjs project loads the modules with import()
    writeFileSync(pj, JSON.stringify({ ...JSON.parse(readFileSync(pj, 'utf8')), type: 'commonjs' }, null, 2) + '\n');
    writeFileSync(
      path.join(project, 'train.cjs'),
      "import('./generated/xor/xor.js').then(({ initParams, valueAndGrad }) => console.log(Object.keys(valueAndGrad(initParams(0), { x: new Float32Array(8), y: new Int32Array(4) }).grads).join(' ')));\n",
    );
    expect(ok(sh(process.execPath, ['train.cjs'], project), 'node train.cjs').stdout).toBe('W1 b1 W2\n');
    console.log(`pack, install (from ${from}), build, train: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }, 180_000);
});

describe("the generated modules in the user's project", () => {
  it('the output folder loads as ES modules in a "type": "commonjs" package: the package.json graphc writes beside the modules', async () => {
    const project = tmp();
    writeFileSync(path.join(project, 'package.json'), '{ "name": "p", "type": "commonjs" }\n');
    const out = path.join(project, 'models', 'neuron');
    const r = await run(['build', 'examples/neuron.ts', '--out', out]);
    expect(r).toEqual({ code: 0, out: `wrote ${out}/ (neuron.ir, neuron.grad.ir, neuron.ts, neuron.js, neuron.wasm.ts, neuron.wasm.js, package.json)\n`, err: '' });
    expect(readFileSync(path.join(out, 'package.json'), 'utf8')).toBe(OUTPUT_PACKAGE_JSON.content);
    expect(JSON.parse(OUTPUT_PACKAGE_JSON.content as string).type).toBe('module');
    const script = [
      "import { valueAndGrad } from './models/neuron/neuron.js';",
      "import * as wasm from './models/neuron/neuron.wasm.js';",
      'const f = (x) => Float32Array.of(x);',
      'const p = { w0: f(2), x0: f(-1), w1: f(-3), x1: f(-2), w2: f(-3) };',
      'console.log(valueAndGrad(p, {}).grads.x1[0].toFixed(2), wasm.valueAndGrad(p, {}).grads.x1[0].toFixed(2));',
    ].join('\n');
    writeFileSync(path.join(project, 'use.mjs'), script + '\n');
    expect(sh(process.execPath, ['use.mjs'], project)).toEqual({ status: 0, stdout: '-0.59 -0.59\n', stderr: '' });
    // a rebuild over graphc's own package.json is fine
    expect((await run(['build', 'examples/neuron.ts', '--out', out])).code).toBe(0);
  });

  it("a build does not overwrite a package.json graphc did not write (and writes nothing)", async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'package.json'), '{ "name": "mine" }\n');
    const r = await run(['build', 'examples/neuron.ts', '--out', dir]);
    expect(r).toEqual({
      code: 2,
      out: '',
      err: `graphc build: ${dir}/package.json exists and graphc did not write it (the output folder gets a package.json of its own, {"type": "module"})\n  fix: add "type": "module" to it (the modules are ES modules), or build into a folder of its own (--out DIR)\n`,
    });
    expect(readdirSync(dir)).toEqual(['package.json']);
    expect(readFileSync(path.join(dir, 'package.json'), 'utf8')).toBe('{ "name": "mine" }\n');
    // one that says "type": "module" is enough: kept as it is, the modules written beside it
    const mine = '{ "name": "mine", "type": "module" }\n';
    writeFileSync(path.join(dir, 'package.json'), mine);
    const ok = await run(['build', 'examples/neuron.ts', '--out', dir]);
    expect(ok.code).toBe(0);
    expect(readFileSync(path.join(dir, 'package.json'), 'utf8')).toBe(mine);
    expect(readdirSync(dir).sort()).toEqual(['.graphc-manifest.json', 'neuron.grad.ir', 'neuron.ir', 'neuron.js', 'neuron.ts', 'neuron.wasm.js', 'neuron.wasm.ts', 'package.json']);
  });

  it("the GPU.js module loads in a project without gpu.js; create() rejects saying to npm install gpu.js", async () => {
    const project = tmp();
    const out = path.join(project, 'gen');
    expect((await run(['build', 'examples/neuron.ts', '--out', out, '--target', 'gpu'])).code).toBe(0);
    expect(readFileSync(path.join(out, 'neuron.gpu.js'), 'utf8')).not.toMatch(/^\s*import\s/m);
    const script = [
      "const m = await import('./gen/neuron.gpu.js');",
      "console.log(Object.keys(m.spec.params).join(' '));",
      'try {',
      '  await m.create();',
      "  console.log('created');",
      '} catch (e) {',
      '  console.log(`${e.constructor.name}: ${e.message}`);',
      '}',
    ].join('\n');
    writeFileSync(path.join(project, 'use.mjs'), script + '\n');
    // the temporary folder has no node_modules above it: gpu.js cannot be found
    expect(sh(process.execPath, ['use.mjs'], project)).toEqual({
      status: 0,
      stdout: "w0 x0 w1 x1 w2\nError: neuron: the GPU.js module needs the 'gpu.js' package, which this project does not have: npm install gpu.js\n",
      stderr: '',
    });
    // where gpu.js is installed, the same module creates its kernels (gpu.js's cpu mode)
    cpSync(path.join(out), path.join(ROOT, 'test-results', 'package-gpu'), { recursive: true });
    const here = path.join(ROOT, 'test-results', 'package-gpu', 'neuron.gpu.js');
    const m = (await import(here)) as { create(o: { mode: string }): Promise<{ mode: string; destroy(): void }> };
    const model = await m.create({ mode: 'cpu' });
    expect(model.mode).toBe('cpu');
    model.destroy();
  });
});

describe('model files are Node programs', () => {
  it('a model that reads process.env, reads a file with node:fs, and imports a helper and a JSON file of its own builds', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'sizes.json'), '{ "hidden": 5 }\n');
    writeFileSync(path.join(dir, 'classes.txt'), 'a\nb\nc\n');
    writeFileSync(
      path.join(dir, 'layers.ts'),
      "import type { GraphBuilder, Tensor } from 'graphc';\nexport function dense(g: GraphBuilder, name: string, x: Tensor, n: number, m: number): Tensor {\n  return x.matmul(g.param(name, [n, m]));\n}\n",
    );
    const source = [
      "import { readFileSync } from 'node:fs';",
      "import * as path from 'node:path';",
      "import { model } from 'graphc';",
      "import sizes from './sizes.json';",
      "import { dense } from './layers.ts';",
      '',
      "const classes = readFileSync(path.join(__dirname, 'classes.txt'), 'utf8').trim().split('\\n');",
      "const batch = Number(process.env.BATCH ?? '2');",
      'console.log(`batch ${batch}, ${classes.length} classes`);',
      '',
      "export default model('nodey', (g) => {",
      "  const x = g.input('x', [batch, 4]);",
      "  const y = g.input('y', [batch], 'i32');",
      "  const h = dense(g, 'W1', x, 4, sizes.hidden).tanh();",
      "  return { loss: g.crossEntropy(dense(g, 'W2', h, sizes.hidden, classes.length), y) };",
      '});',
    ].join('\n');
    writeFileSync(path.join(dir, 'model.ts'), source + '\n');
    const r = spawnSync(process.execPath, [BIN, 'build', 'model.ts', '--target', 'ts'], { cwd: dir, encoding: 'utf8', env: { ...process.env, BATCH: '3' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('batch 3, 3 classes\nwrote generated/nodey/ (nodey.ir, nodey.grad.ir, nodey.ts, nodey.js, package.json)\n');
    const { spec } = (await import(pathToFileURL(path.join(dir, 'generated', 'nodey', 'nodey.js')).href)) as { spec: { inputs: Record<string, { shape: number[] }>; params: Record<string, { shape: number[] }> } };
    // the sizes came from the environment (3), the JSON file (5) and the text file (3 classes)
    expect(spec.inputs.x!.shape).toEqual([3, 4]);
    expect(spec.params.W2!.shape).toEqual([5, 3]);
  });

  it("a type error of a model that uses Node's API is the model's own, not a missing Node name", () => {
    const dir = tmp();
    const source = [
      "import { readFileSync } from 'node:fs';",
      "import { model } from 'graphc';",
      "const n = readFileSync(process.argv[1]!).length > 0 ? 2 : 1;",
      "export default model('typo', (g) => g.param('w', [n]).tahn().sum());",
    ].join('\n');
    writeFileSync(path.join(dir, 'model.ts'), source + '\n');
    const r = spawnSync(process.execPath, [BIN, 'build', 'model.ts', '--target', 'ts'], { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      "model.ts:4:55: error: TS2339: Property 'tahn' does not exist on type 'Tensor'.\n  4 | export default model('typo', (g) => g.param('w', [n]).tahn().sum());\n    |                                                       ^^^^\n  fix: did you mean tanh? (x.tanh(...) is the nearest name the DSL has)\n",
    );
    expect(r.stderr).not.toMatch(/TS2307|TS2591|TS2580/);
    expect(readdirSync(dir)).toEqual(['model.ts']);
  });

  it("a Node name without Node's types (graphc's @types/node missing) says what helps, not TypeScript's tsconfig advice", () => {
    const raw: RawDiagnostic = {
      file: '/p/model.ts',
      line: 3,
      col: 15,
      code: 2591,
      text: "Cannot find name 'process'. Do you need to install type definitions for node? Try `npm i --save-dev @types/node` and then add 'node' to the types field in your tsconfig.",
    };
    const e = typeError(raw, '/p');
    expect(e.message).toBe("TS2591: Cannot find name 'process'.");
    expect(e.hint).toBe("graphc checks a model with Node's types (its dependency @types/node), which were not found: reinstall graphc (npm install graphc)");
    expect(e.loc).toEqual({ file: 'model.ts', line: 3, col: 15 });
    // other diagnostics keep TypeScript's text
    expect(typeError({ ...raw, code: 2304, text: "Cannot find name 'foo'." }, '/p').message).toBe("TS2304: Cannot find name 'foo'.");
  });
});
