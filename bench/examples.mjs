// The sequence models of examples/ (part 5's WaveNet, the tiny GPT): one training step of the
// committed generated modules, the flat module against the wasm module, timed in alternation in
// this process after checking that their losses and gradients agree.
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { mulberry32, ROOT } from './models.mjs';
import { relError } from './report.mjs';

/** The examples' inputs are characters: '.' and a–z. */
const VOCAB = 27;

/** Inputs of the spec: i32 character indices, drawn from a mulberry32 stream. */
function inputsOf(spec, seed) {
  const rand = mulberry32(seed);
  return Object.fromEntries(
    Object.entries(spec.inputs).map(([k, { shape }]) => [k, Int32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => Math.floor(rand() * VOCAB))]),
  );
}

/** Median ms per step of the flat and wasm modules of an example, and their worst disagreement. */
export async function exampleStep(name, { rounds = 12, roundMs = 150, warmupMs = 1500, seed = 42 } = {}) {
  const load = (suffix) => import(pathToFileURL(path.join(ROOT, 'generated', name, `${name}${suffix}.js`)).href);
  const variants = [
    { name: 'flat', mod: await load(''), times: [] },
    { name: 'wasm', mod: await load('.wasm'), times: [] },
  ];
  const params = variants[0].mod.initParams(seed);
  const inputs = inputsOf(variants[0].mod.spec, seed);
  const [a, b] = variants.map((v) => {
    const { loss, grads } = v.mod.valueAndGrad(params, inputs);
    return { loss, grads: Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, Float32Array.from(g)])) };
  });
  const err = Math.max(relError([b.loss], [a.loss]), ...Object.keys(a.grads).map((k) => relError(b.grads[k], a.grads[k])));
  for (const v of variants) for (const t0 = performance.now(); performance.now() - t0 < warmupMs; ) v.mod.valueAndGrad(params, inputs);
  for (let r = 0; r < rounds; r++)
    for (const v of variants)
      for (const t0 = performance.now(); performance.now() - t0 < roundMs; ) {
        const s = performance.now();
        v.mod.valueAndGrad(params, inputs);
        v.times.push(performance.now() - s);
      }
  const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  const [flat, wasm] = variants.map((v) => median(v.times));
  const nParams = Object.values(params).reduce((n, p) => n + p.length, 0);
  return { flat, wasm, err, nParams };
}
