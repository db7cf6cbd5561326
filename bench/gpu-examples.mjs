// Every example's GPU.js module as committed in generated/, in one gpu.js mode: its loss,
// gradients and outputs against the flat module's (max relative error ≤ 1e-4), then one
// training step of each timed (medians over ~1 s). On the lent GPU machine this is the check that
// every kernel kind graphc emits (gathers and their scatter-add gradients, softmax and layer
// norm rows, attention's batched products) compiles to WGSL and computes the same numbers there.
//
//   node bench/gpu-examples.mjs --mode webasm          here
//   node gpu-examples.mjs --mode webgpu                on the lent GPU machine (packed by pack-device.sh)
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { arg } from './device.mjs';
import { relError } from './report.mjs';

/** Inputs from the module's spec: indices 0 or 1 (valid for every index input), floats in (0.5, 1.5). */
function inputsOf(spec) {
  let seed = 9;
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
  return Object.fromEntries(
    Object.entries(spec.inputs).map(([k, { dtype, shape }]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return [k, dtype === 'i32' ? Int32Array.from({ length: n }, () => (rand() < 0.5 ? 0 : 1)) : Float32Array.from({ length: n }, () => 0.5 + rand())];
    }),
  );
}

async function median(f, ms) {
  await f();
  const ts = [];
  const t0 = performance.now();
  while (performance.now() - t0 < ms || ts.length < 5) {
    const a = performance.now();
    await f();
    ts.push(performance.now() - a);
  }
  return ts.sort((x, y) => x - y)[ts.length >> 1];
}

async function main() {
  const mode = arg('mode', 'webgpu');
  const dir = path.resolve(arg('dir', existsSync('generated') ? 'generated' : path.join(import.meta.dirname, '..', 'generated')));
  const rows = [];
  for (const name of readdirSync(dir).sort()) {
    const base = path.join(dir, name, name);
    if (!existsSync(`${base}.gpu.js`)) continue;
    try {
      const flat = await import(pathToFileURL(`${base}.js`).href);
      const gpuMod = await import(pathToFileURL(`${base}.gpu.js`).href);
      const params = flat.initParams(1);
      const inputs = inputsOf(flat.spec);
      const want = flat.valueAndGrad(params, inputs);
      const wantLoss = want.loss;
      const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
      const wantOuts = Object.fromEntries(Object.entries(flat.forward(params, inputs)).map(([k, v]) => [k, typeof v === 'number' ? [v] : Float32Array.from(v)]));
      const model = await gpuMod.create({ mode });
      const got = await model.valueAndGrad(params, inputs);
      const outs = await model.forward(params, inputs);
      let err = relError([got.loss], [wantLoss]);
      for (const [k, g] of Object.entries(wantGrads)) err = Math.max(err, relError(got.grads[k], g));
      for (const [k, o] of Object.entries(wantOuts)) err = Math.max(err, relError(typeof outs[k] === 'number' ? [outs[k]] : outs[k], o));
      const gpuMs = await median(() => model.valueAndGrad(params, inputs), 1000);
      const flatMs = await median(() => flat.valueAndGrad(params, inputs), 1000);
      rows.push({ name, mode: model.mode, err, gpuMs, flatMs });
      model.destroy();
    } catch (e) {
      rows.push({ name, error: String(e?.stack ?? e).split('\n').slice(0, 3).join(' | ') });
    }
  }
  console.log(`gpu-examples: mode ${mode}, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
  console.log('example             backend  max rel err      GPU.js ms/step  flat ms/step');
  for (const r of rows) {
    if (r.error) console.log(`${r.name.padEnd(18)}  ERROR ${r.error}`);
    else console.log(`${r.name.padEnd(18)}  ${r.mode.padEnd(7)}  ${r.err.toExponential(1)} ${r.err <= 1e-4 ? 'PASS' : 'FAIL'}  ${r.gpuMs.toFixed(3).padStart(14)}  ${r.flatMs.toFixed(3).padStart(12)}`);
  }
  process.exit(rows.every((r) => !r.error && r.err <= 1e-4) ? 0 : 1); // a Dawn device keeps the process alive
}

await main();
