// The char LSTM of examples/lstm.ts (batch 16, hidden 128) written with g.scan and with a `for`
// loop, at several sequence lengths: `graphc build` time, module sizes, and one training step
// (valueAndGrad) of the flat and wasm modules (one thread), the two models taking turns (issue #32).
//
//   npm run build && node bench/lstm-scan.mjs [--steps=16,64,256] [--for-steps=16,64] [--rounds=8]
//
// The flat and wasm modules run the scan as a loop (its body once: the module's size does not
// depend on the number of steps); the `for` loop unrolls, so its build and module grow with the
// steps (--for-steps: the lengths at which it is built too; 256 steps take minutes). The machine's
// load averages are printed with the timings.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '..');
const arg = (k, d) => process.argv.find((a) => a.startsWith(`--${k}=`))?.split('=')[1] ?? d;
const STEPS = arg('steps', '16,64,256').split(',').map(Number);
const FOR_STEPS = arg('for-steps', '16,64').split(',').map(Number);
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
const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');
const built = new Map();
for (const T of STEPS) {
  const scan = build(T, false);
  const loop = FOR_STEPS.includes(T) ? build(T, true) : undefined;
  built.set(T, { scan, loop });
  console.log(
    `T = ${T}: build ${(scan.ms / 1000).toFixed(1)} s (scan)${loop ? `, ${(loop.ms / 1000).toFixed(1)} s (for)` : ''}; flat module ${kb(scan.ts)}${loop ? ` / ${kb(loop.ts)}` : ''}, wasm module ${kb(scan.wasm)}${loop ? ` / ${kb(loop.wasm)}` : ''}   [load ${load()}]`,
  );
}
for (const T of STEPS) {
  const { scan, loop } = built.get(T);
  if (!loop) continue;
  console.log(`T = ${T}, steps   [load ${load()}]`);
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
