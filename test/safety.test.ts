// Builds are deterministic, and no DSL name can inject code into the generated modules.

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import type { GpuModule } from './helpers.js';
import { buildBoth, modelFile, reference, relErr, ROOT, run, tmp } from './helpers.js';

const BIN = path.join(ROOT, 'bin', 'graphc.js');

describe('deterministic builds', () => {
  it('gives byte-identical files run after run, from another folder, in another locale and time zone', () => {
    const outputs: Record<string, string>[] = [];
    for (const env of [{}, {}, { TZ: 'Pacific/Auckland', LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8' }]) {
      // a copy of the examples in a fresh folder each time: absolute paths would differ
      const dir = tmp();
      mkdirSync(path.join(dir, 'examples'));
      for (const f of ['makemore.ts', 'makemore_composite.ts']) copyFileSync(path.join(ROOT, 'examples', f), path.join(dir, 'examples', f));
      const r = spawnSync(process.execPath, [BIN, 'build', 'examples/makemore_composite.ts'], { cwd: dir, encoding: 'utf8', env: { ...process.env, ...env } });
      expect(r.status, r.stderr).toBe(0);
      const out = path.join(dir, 'generated', 'makemore_composite');
      const files = Object.fromEntries(readdirSync(out).map((f) => [f, readFileSync(path.join(out, f), 'utf8')]));
      for (const text of Object.values(files)) expect(text).not.toContain(dir);
      outputs.push(files);
    }
    expect(outputs[1]).toEqual(outputs[0]);
    expect(outputs[2]).toEqual(outputs[0]);
    // and the same as the committed build in this repository (whose folder's manifest also lists
    // the wasm target's files: a manifest records the folder, not one build)
    expect(Object.keys(outputs[0]!)).toContain('.graphc-manifest.json');
    for (const [f, text] of Object.entries(outputs[0]!)) if (f !== '.graphc-manifest.json') expect(text, f).toBe(readFileSync(path.join(ROOT, 'generated/makemore_composite', f), 'utf8'));
  });
});

const NAMES = ['x; process.exit()', 'constructor', '__proto__', 'größe', 'a-b', 'a b', 'a_b', '*/ evil(); /*', `it's "quoted"`, 'new\nline', 'toString', '0start'];

describe('DSL names', () => {
  it('become safe identifiers and escaped strings; the module works under every name', async () => {
    const params = NAMES.map((n, k) => `  const p${k} = g.param(${JSON.stringify(n)}, [2]);`).join('\n');
    const file = modelFile(`import { model } from 'graphc';
export default model('names', (g) => {
${params}
  const x = g.input(${JSON.stringify('x; process.exit()#input')}, [2]);
  const all = [${NAMES.map((_n, k) => `p${k}`).join(', ')}].reduce((a, b) => a.add(b));
  return all.mul(x).square().sum();
});
`);
    const { c, flat, gpu } = await buildBoth(file);
    // the names survive as keys of spec, initParams and grads
    expect(Object.keys(flat.spec.params)).toEqual(NAMES);
    const p = flat.initParams(1);
    expect(Object.keys(p)).toEqual(NAMES);
    expect(Object.getOwnPropertyNames(p)).toContain('__proto__');
    const inputs = { 'x; process.exit()#input': Float32Array.of(0.5, -2) };
    const { loss, grads } = flat.valueAndGrad(p, inputs);
    expect(Object.keys(grads)).toEqual(NAMES);
    const ref = reference(c.fwd, c.bwd, p, inputs);
    expect(relErr([loss], ref.outputs.loss!.data)).toBeLessThan(1e-6);
    for (const n of NAMES) expect(relErr(grads[n]!, ref.grads[n]!), n).toBeLessThan(1e-5);
    // the same through the GPU.js module
    const model = await (gpu as GpuModule).create({ mode: 'cpu' });
    const g = await model.valueAndGrad(p, inputs);
    for (const n of NAMES) expect(relErr(g.grads[n]!, ref.grads[n]!), n).toBeLessThan(1e-5);
    model.destroy();
    // no name appears in the code unescaped: outside strings and comments there is none
    for (const f of c.files.filter((x) => x.name.endsWith('.js') || x.name.endsWith('.ts'))) {
      const code = String(f.content)
        .replace(/\/\/.*$/gm, '')
        .replace(/`(?:\\[\s\S]|\$\{[^}]*\}|[^\\`])*`/g, '``')
        .replace(/"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'/g, '""');
      expect(code, f.name).not.toContain('process.exit');
      expect(code, f.name).not.toContain('evil()');
    }
  });

  it('reject a model name that is not a file name', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('../x', (g) => g.param('p', [1]).sum());
`);
    const r = await run(['build', file, '--out', path.join(tmp(), 'out')]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`error: invalid model name "../x"\n`);
    expect(r.err).toContain('fix: the model name names the output folder and files: use letters, digits, _ and -, starting with a letter\n');
  });

  it('that collide after sanitising stay distinct', async () => {
    const { c } = await (async () => ({ c: await compile(modelFile(`import { model } from 'graphc';
export default model('collide', (g) => {
  const a = g.param('a-b', [1]);
  const b = g.param('a b', [1]);
  const d = g.param('a_b', [1]);
  return a.add(b).add(d).sum();
});
`)) }))();
    const names = c.fwd.insts.filter((i) => i.op === 'param').map((i) => c.fwd.value(i.result).name);
    expect(names).toEqual(['a_b', 'a_b_1', 'a_b_2']);
    void pathToFileURL;
  });
});
