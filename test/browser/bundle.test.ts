// A generated module bundled into a page: esbuild bundles the committed makemore modules (the flat
// one and the wasm one) into one classic script, as a user's bundler would, minified, with and
// without keepNames; in Chromium the bundle gives Node's loss and gradients, and the threaded
// wasm instance (create({ threads: 2 }), its kernels split over a worker whatever their size)
// still starts its worker from the bundled code and gives the wasm module's results bit for bit.

import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GeneratedModule } from '../helpers.js';
import { relErr, ROOT } from '../helpers.js';
import { launch, type Session } from './chromium.js';
import { callOptions, exampleArgs, plain } from './examples.js';

const NAME = 'makemore';
const OUT = path.join(ROOT, 'web-out', 'test-bundle');

/** The page's code: both modules, and a function the test calls with plain arrays. */
const ENTRY = `import * as flat from '../../generated/${NAME}/${NAME}.js';
import * as wasm from '../../generated/${NAME}/${NAME}.wasm.js';

const typed = (mod, kind, arrays) =>
  Object.fromEntries(Object.entries(arrays).map(([k, v]) => [k, mod.spec[kind][k].dtype === 'i32' ? Int32Array.from(v) : Float32Array.from(v)]));
const plain = (r) => ({ loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, Array.from(v)])) });
const options = (mod) => ({ seed: 1, buffers: mod.initBuffers?.() });

globalThis.runBundle = async (params, inputs) => {
  const args = (mod) => [typed(mod, 'params', params), typed(mod, 'inputs', inputs), options(mod)];
  const out = { flat: plain(flat.valueAndGrad(...args(flat))), wasm: plain(wasm.valueAndGrad(...args(wasm))) };
  const inst = await wasm.create({ threads: 2, minWork: 0, adapt: false });
  try {
    out.threads = { n: inst.threads, ...plain(inst.valueAndGrad(...args(wasm))) };
  } finally {
    await inst.destroy();
  }
  return out;
};
globalThis.bundleReady = true;
`;

interface Grads {
  loss: number;
  grads: Record<string, number[]>;
}

let s: Session;
/** Node's results of the same modules, unbundled. */
const want: Partial<Record<'flat' | 'wasm', Grads>> = {};
let params: Record<string, number[]>;
let inputs: Record<string, number[]>;

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  writeFileSync(path.join(OUT, 'entry.mjs'), ENTRY);
  const args = exampleArgs(NAME, 5);
  for (const [kind, suffix] of [['flat', ''], ['wasm', '.wasm']] as const) {
    const mod = (await import(pathToFileURL(path.join(ROOT, 'generated', NAME, `${NAME}${suffix}.js`)).href)) as GeneratedModule;
    const r = (mod.valueAndGrad as (p: object, i: object, o: object) => ReturnType<GeneratedModule['valueAndGrad']>)(args.params, args.inputs, callOptions(mod));
    want[kind] = { loss: r.loss, grads: Object.fromEntries(Object.entries(r.grads).map(([k, v]) => [k, Array.from(v)])) };
  }
  params = plain(args.params);
  inputs = plain(args.inputs);
  s = await launch();
});
afterAll(async () => {
  await s?.close();
});

describe.each([
  ['minified, keepNames', { minify: true, keepNames: true }],
  ['minified', { minify: true, keepNames: false }],
])('esbuild bundle (%s)', (label, opts) => {
  it('runs in Chromium: the flat and wasm modules give their gradients in Node, the threaded instance the wasm module’s bit for bit', async () => {
    const file = `bundle-${opts.keepNames ? 'keep' : 'min'}`;
    const result = await build({
      entryPoints: [path.join(OUT, 'entry.mjs')],
      bundle: true,
      format: 'iife',
      platform: 'browser',
      target: 'es2022',
      outfile: path.join(OUT, `${file}.js`),
      metafile: true,
      logLevel: 'silent',
      ...opts,
    });
    expect(result.errors).toEqual([]);
    expect(result.warnings.map((w) => w.text)).toEqual([]);
    // the modules import nothing: the bundle is the entry and the two modules
    const inputsOf = (m: Metafile) => Object.keys(m.inputs).map((f) => path.relative(ROOT, path.resolve(f)).split(path.sep).join('/')).sort();
    expect(inputsOf(result.metafile!)).toEqual([`generated/${NAME}/${NAME}.js`, `generated/${NAME}/${NAME}.wasm.js`, 'web-out/test-bundle/entry.mjs']);
    writeFileSync(path.join(OUT, `${file}.html`), `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${label}</title><link rel="icon" href="data:,"><script src="${file}.js"></script></head><body></body></html>\n`);

    const { page, errors, outside } = await s.open(`web-out/test-bundle/${file}.html`);
    await page.waitForFunction(() => (globalThis as unknown as { bundleReady?: boolean }).bundleReady === true);
    const got = (await page.evaluate(
      ([p, i]) => (globalThis as unknown as { runBundle(p: unknown, i: unknown): Promise<unknown> }).runBundle(p, i),
      [params, inputs] as const,
    )) as { flat: Grads; wasm: Grads; threads: Grads & { n: number } };
    await page.close();
    expect(errors).toEqual([]);
    expect(outside).toEqual([]);
    for (const kind of ['flat', 'wasm'] as const) {
      const w = want[kind]!;
      expect(Number.isFinite(w.loss)).toBe(true);
      expect(relErr([got[kind].loss], [w.loss]), `${kind}: loss`).toBeLessThanOrEqual(1e-6);
      expect(Object.keys(got[kind].grads).sort()).toEqual(Object.keys(w.grads).sort());
      for (const [k, g] of Object.entries(got[kind].grads)) expect(relErr(g, w.grads[k]!), `${kind}: gradient of ${k}`).toBeLessThanOrEqual(1e-6);
    }
    expect(got.threads.n).toBe(2);
    expect(got.threads.loss).toBe(got.wasm.loss);
    expect(got.threads.grads).toEqual(got.wasm.grads);
  });
});
