// The compiled training step: one `trainStep` (forward, backward, AdamW update, in the module)
// against `valueAndGrad` followed by the JavaScript AdamW update a user would write by hand (the
// one the GPT demo carried before the module had trainStep), for the examples' GPT and makemore,
// flat and wasm modules. Both are checked first: 20 steps from the same start must give the same
// params. Timed in alternation in this process. `node bench/train.mjs` runs it alone.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { mulberry32, ROOT } from './models.mjs';
import { relError } from './report.mjs';

const HYPER = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** torch.optim.AdamW over plain arrays, as a user writes it: what trainStep replaces. */
function jsAdamW(params, grads, state, lr) {
  const { beta1, beta2, eps, weightDecay } = HYPER;
  state.t++;
  const bc1 = 1 - beta1 ** state.t;
  const bc2 = 1 - beta2 ** state.t;
  for (const k of Object.keys(params)) {
    const p = params[k];
    const g = grads[k];
    const m = (state.m[k] ??= new Float32Array(p.length));
    const v = (state.v[k] ??= new Float32Array(p.length));
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * weightDecay;
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      p[i] -= (lr * m[i]) / bc1 / (Math.sqrt(v[i] / bc2) + eps);
    }
  }
}

function inputsOf(spec, seed) {
  const rand = mulberry32(seed);
  return Object.fromEntries(Object.entries(spec.inputs).map(([k, { shape }]) => [k, Int32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => Math.floor(rand() * 27))]));
}

const copy = (ps) => Object.fromEntries(Object.entries(ps).map(([k, v]) => [k, Float32Array.from(v)]));

/** Median ms per step of trainStep and of valueAndGrad + the JS update, for one built module. */
async function compare(file, { rounds, roundMs, warmupMs }) {
  const mod = await import(pathToFileURL(file).href);
  const inputs = inputsOf(mod.spec, 7);
  // agreement: 20 steps each from the same params
  const a = mod.initParams(3);
  const b = copy(a);
  const sa = mod.initOptState(a);
  const sb = { t: 0, m: {}, v: {} };
  for (let s = 0; s < 20; s++) {
    mod.trainStep(a, sa, inputs);
    jsAdamW(b, mod.valueAndGrad(b, inputs).grads, sb, HYPER.lr);
  }
  // b1 of makemore feeds batchnorm: its gradient cancels to float32 noise, which Adam normalises to
  // steps of ±lr whatever the rounding, so it is left out of the comparison (as the makemore tests do)
  const compared = Object.keys(a).filter((k) => !(mod.spec.name === 'makemore' && k === 'b1'));
  const err = Math.max(...compared.map((k) => relError(a[k], b[k])));
  const variants = [
    { name: 'trainStep', params: a, step: () => mod.trainStep(a, sa, inputs), times: [] },
    { name: 'valueAndGrad + JS', params: b, step: () => jsAdamW(b, mod.valueAndGrad(b, inputs).grads, sb, HYPER.lr), times: [] },
  ];
  for (const v of variants) for (const t0 = performance.now(); performance.now() - t0 < warmupMs; ) v.step();
  for (let r = 0; r < rounds; r++)
    for (const v of variants)
      for (const t0 = performance.now(); performance.now() - t0 < roundMs; ) {
        const s = performance.now();
        v.step();
        v.times.push(performance.now() - s);
      }
  const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  return { compiled: median(variants[0].times), js: median(variants[1].times), err, nParams: Object.values(a).reduce((n, p) => n + p.length, 0) };
}

/** Builds the examples with --optimizer adamw into a temporary folder and compares each module. */
export async function trainStepRows({ quick = false } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'graphc-bench-train-'));
  const timing = quick ? { rounds: 4, roundMs: 100, warmupMs: 300 } : { rounds: 12, roundMs: 150, warmupMs: 1500 };
  try {
    const rows = [];
    for (const name of ['makemore', 'gpt']) {
      const out = path.join(dir, name);
      const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/graphc.js'), 'build', path.join(ROOT, 'examples', `${name}.ts`), '--out', out, '--target', 'ts,wasm', '--optimizer', 'adamw'], { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`graphc build ${name} --optimizer adamw failed: ${r.stderr}`);
      for (const target of ['', '.wasm']) rows.push({ name: `${name}${target || ' (flat)'}`, ...(await compare(path.join(out, `${name}${target}.js`), timing)) });
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const rows = await trainStepRows({ quick: process.argv.includes('--quick') });
  for (const r of rows)
    console.log(`${r.name.padEnd(18)} ${r.nParams.toLocaleString('en-US').padStart(7)} params  trainStep ${r.compiled.toFixed(3)} ms  valueAndGrad + JS AdamW ${r.js.toFixed(3)} ms  (${(r.compiled / r.js).toFixed(2)}×)  max param err after 20 steps ${r.err.toExponential(1)}`);
}
