// The char LSTM of examples/lstm.ts (batch 16, hidden 128) written with g.scan and with a `for`
// loop, at several sequence lengths: `graphc build` time, module sizes, and one training step
// (valueAndGrad) of the flat and wasm modules, the two models taking turns (issue #32).
//
//   npm run build && node bench/lstm-scan.mjs [--steps=16,64] [--rounds=8]
//
// Today the targets unroll a scan (docs/dsl.md), so both models build to modules that grow with
// the number of steps; this is the yardstick for the targets that will run the loop.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '..');
const arg = (k, d) => process.argv.find((a) => a.startsWith(`--${k}=`))?.split('=')[1] ?? d;
const STEPS = arg('steps', '16,64').split(',').map(Number);
const ROUNDS = Number(arg('rounds', '8'));
const dir = mkdtempSync(path.join(os.tmpdir(), 'graphc-lstm-'));

function build(T, unrolled) {
  const name = `lstm_${T}_${unrolled ? 'for' : 'scan'}`;
  const file = path.join(dir, `${name}.ts`);
  writeFileSync(file, `import { lstm } from ${JSON.stringify(path.join(ROOT, 'examples', 'lstm.ts'))};\nexport default lstm({ batch: 16, steps: ${T}, nEmbd: 16, nHidden: 128, vocab: 27 }, 'lstm', ${unrolled});\n`);
  const out = path.join(dir, name);
  const t0 = performance.now();
  execFileSync(process.execPath, [path.join(ROOT, 'bin', 'graphc.js'), 'build', file, '--target', 'ts,wasm', '--out', out], { stdio: 'pipe' });
  const ms = performance.now() - t0;
  return { out, ms, ts: statSync(path.join(out, 'lstm.js')).size, wasm: statSync(path.join(out, 'lstm.wasm.js')).size };
}

async function stepper(out, file) {
  const mod = await import(pathToFileURL(path.join(out, file)).href);
  const params = mod.initParams(1);
  const inputs = {};
  for (const [k, s] of Object.entries(mod.spec.inputs)) inputs[k] = Int32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, (_x, i) => (i * 7 + (k === 'Y' ? 1 : 0)) % 27);
  for (let i = 0; i < 5; i++) mod.valueAndGrad(params, inputs);
  return () => mod.valueAndGrad(params, inputs);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
for (const T of STEPS) {
  const scan = build(T, false);
  const loop = build(T, true);
  console.log(`T = ${T}: build ${(scan.ms / 1000).toFixed(1)} s (scan), ${(loop.ms / 1000).toFixed(1)} s (for); flat module ${kb(scan.ts)} / ${kb(loop.ts)}, wasm module ${kb(scan.wasm)} / ${kb(loop.wasm)}`);
  for (const file of ['lstm.js', 'lstm.wasm.js']) {
    const a = await stepper(scan.out, file);
    const b = await stepper(loop.out, file);
    const ta = [];
    const tb = [];
    for (let r = 0; r < ROUNDS; r++)
      for (const [f, acc] of [[a, ta], [b, tb]]) {
        const t0 = performance.now();
        f();
        acc.push(performance.now() - t0);
      }
    console.log(`  ${file}: step ${median(ta).toFixed(1)} ms (scan), ${median(tb).toFixed(1)} ms (for), scan/for ${(median(ta) / median(tb)).toFixed(2)}`);
  }
}
