// npm run bench:cnn: one training step of examples/cnn.ts (LeNet-style, batch 64) in graphc's
// flat and wasm modules (generated/cnn) beside PyTorch on 1 thread, all checked first for
// agreement with the flat module (loss and every gradient within 1e-4 relative error).
// Times are medians of --reps steps (valueAndGrad: forward and backward; no optimizer).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { mulberry32, ROOT } from './models.mjs';

const reps = Number(process.argv.find((a) => a.startsWith('--reps='))?.slice(7) ?? 20);
const load = (f) => import(pathToFileURL(path.join(ROOT, 'generated/cnn', f)).href);
const flat = await load('cnn.js');
const wasm = await load('cnn.wasm.js');
const params = flat.initParams(1);
const r = mulberry32(7);
const x = Float32Array.from({ length: 64 * 784 }, () => r());
const labels = Int32Array.from({ length: 64 }, () => Math.floor(r() * 10));
const inputs = { x, labels };

const relErr = (a, b) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
};
const want = flat.valueAndGrad(params, inputs);
const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
const agree = (name, got) => {
  const errs = [relErr([got.loss], [want.loss]), ...Object.keys(wantGrads).map((k) => relErr(got.grads[k], wantGrads[k]))];
  const worst = Math.max(...errs);
  if (!(worst < 1e-4)) throw new Error(`${name} disagrees with the flat module: relative error ${worst}`);
  return worst;
};

function time(f) {
  for (let i = 0; i < 3; i++) f();
  const t = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    t.push(performance.now() - t0);
  }
  return t.sort((a, b) => a - b)[t.length >> 1];
}

const rows = [];
rows.push({ name: 'graphc flat', ms: time(() => flat.valueAndGrad(params, inputs)), err: 0 });
const wErr = agree('wasm', wasm.valueAndGrad(params, inputs));
rows.push({ name: 'graphc wasm', ms: time(() => wasm.valueAndGrad(params, inputs)), err: wErr });

const dir = mkdtempSync(path.join(tmpdir(), 'graphc-cnn-'));
for (const [k, v] of Object.entries(params)) writeFileSync(path.join(dir, `${k}.f32`), v);
writeFileSync(path.join(dir, 'x.f32'), x);
writeFileSync(path.join(dir, 'labels.i32'), labels);
writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ params: Object.fromEntries(Object.entries(flat.spec.params).map(([k, s]) => [k, s.shape])), x: [64, 1, 28, 28], reps }));
const py = spawnSync('python3', [path.join(ROOT, 'bench/cnn_torch.py'), dir], { encoding: 'utf8', maxBuffer: 1 << 28 });
if (py.status === 0) {
  const t = JSON.parse(py.stdout);
  rows.push({ name: `PyTorch ${t.torch} (1 thread)`, ms: t.ms, err: agree('PyTorch', t) });
} else console.log(`(no PyTorch row: ${py.stderr.trim().split('\n').at(-1)})`);

const torch = rows.find((r) => r.name.startsWith('PyTorch'));
console.log(`examples/cnn.ts, one training step (valueAndGrad) at batch 64, median of ${reps}; ${new Date().toISOString().slice(0, 10)}`);
for (const row of rows)
  console.log(`  ${row.name.padEnd(28)} ${row.ms.toFixed(2).padStart(9)} ms${torch ? `  ${(row.ms / torch.ms).toFixed(2)}× PyTorch` : ''}  (agrees within ${row.err.toExponential(1)})`);
