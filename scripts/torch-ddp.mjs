// The DDP check of `graphc export --torch`, and of the recipe of docs/interop.md ("Scale out"):
// examples/makemore.ts exported, then trained by the torchrun command of that recipe, run as
// written (2 processes, DDP, gloo, CPU, loopback), each rank on its 32 rows of every global batch
// of 64; the same steps done with graphc's flat module (valueAndGrad on each half, the two
// gradients averaged, one `update`); the params must agree to 1e-5. Batch norm normalises per
// rank in both (DDP without SyncBatchNorm, and graphc's valueAndGrad on each half). Exits 1 when
// they differ, 2 when python3 torch or torchrun is missing.
//
//   node scripts/torch-ddp.mjs [--keep DIR]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadParams, saveParams } from '../dist/src/io.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values: opts } = parseArgs({ options: { keep: { type: 'string' } } });
// the recipe's torchrun command, as docs/interop.md writes it (continuation lines joined)
const doc = readFileSync(path.join(ROOT, 'docs', 'interop.md'), 'utf8').replace(/\\\n\s*/g, '');
const command = /^torchrun .*$/m.exec(doc)?.[0];
if (!command) {
  console.error('torch-ddp: docs/interop.md has no torchrun command');
  process.exit(1);
}
const words = command.split(/\s+/);
const flag = (name) => words[words.indexOf(name) + 1];
const steps = Number(flag('--steps'));
const LR = Number(flag('--lr'));
const dir = opts.keep ?? mkdtempSync(path.join(tmpdir(), 'graphc-ddp-'));
mkdirSync(dir, { recursive: true });
const t0 = performance.now();

const sh = (cmd, args, extra = {}) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: ROOT, ...extra });
  if (r.error || r.status !== 0) {
    console.error(`torch-ddp: ${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})\n${r.stdout ?? ''}${r.stderr ?? ''}`);
    process.exit(r.error ? 2 : 1);
  }
  return r.stdout;
};
if (spawnSync('/usr/bin/python3', ['-c', 'import torch.distributed'], { encoding: 'utf8' }).status !== 0) {
  console.error('torch-ddp: /usr/bin/python3 cannot import torch.distributed (install python3-torch)');
  process.exit(2);
}

// the model, as PyTorch and as graphc's flat module with plain SGD's update
const py = path.join(dir, 'makemore.py');
sh(process.execPath, ['bin/graphc.js', 'export', 'examples/makemore.ts', '--torch', py]);
try {
  symlinkSync(path.join(ROOT, 'scripts'), path.join(dir, 'scripts'));
} catch {
  // --keep DIR of an earlier run
}
sh(process.execPath, ['bin/graphc.js', 'build', 'examples/makemore.ts', '--target', 'ts', '--optimizer', 'sgd', '--out', path.join(dir, 'gen')]);
const mod = await import(pathToFileURL(path.join(dir, 'gen', 'makemore.js')).href);
const [B, block] = mod.spec.inputs.Xb.shape; // 32 rows per rank
const R = Number(flag('--nproc_per_node'));

// the data: a deterministic global batch of R·B rows per step
let s = 12345;
const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % 27;
const X = Int32Array.from({ length: steps * R * B * block }, next);
const Y = Int32Array.from({ length: steps * R * B }, next);
const data = path.join(dir, 'batches.safetensors');
saveParams(data, { X: { data: X, shape: [steps, R * B, block] }, Y: { data: Y, shape: [steps, R * B] } });

// torchrun, in the recipe's folder (Debian's torchrun on Python 3.11 needs --redirects/--tee/--log_dir)
const trained = path.join(dir, 'trained.safetensors');
const t1 = performance.now();
console.log(`torch-ddp: ${command}`);
const log = sh(words[0], words.slice(1), { cwd: dir, env: { ...process.env, GLOO_SOCKET_IFNAME: 'lo', OMP_NUM_THREADS: '1' } });
const torchSeconds = (performance.now() - t1) / 1000;

// graphc: valueAndGrad on each half, the gradients averaged, one update
const params = mod.initParams(0);
for (let step = 0; step < steps; step++) {
  const sum = {};
  for (let r = 0; r < R; r++) {
    const rows = step * R * B + r * B;
    const inputs = { Xb: X.slice(rows * block, (rows + B) * block), Yb: Y.slice(rows, rows + B) };
    const { grads } = mod.valueAndGrad(params, inputs);
    for (const [k, g] of Object.entries(grads)) {
      sum[k] ??= new Float32Array(g.length);
      for (let i = 0; i < g.length; i++) sum[k][i] += g[i] / R;
    }
  }
  mod.update(params, sum, LR);
}

const got = loadParams(trained, { spec: mod.spec });
let worst = 0;
for (const [k, p] of Object.entries(params)) {
  let diff = 0;
  let scale = 1e-3;
  for (let i = 0; i < p.length; i++) {
    diff = Math.max(diff, Math.abs(got[k][i] - p[i]));
    scale = Math.max(scale, Math.abs(p[i]));
  }
  worst = Math.max(worst, diff / scale);
}
for (const m of log.matchAll(/rank 0 step \d+: loss [0-9.]+/g)) console.log(`  ${m[0]}`);
console.log(`torch-ddp: ${steps} SGD steps, 2 ranks × ${B} rows: params of DDP vs graphc's averaged valueAndGrad: max relative difference ${worst.toExponential(2)} (torchrun ${torchSeconds.toFixed(1)} s, all ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
if (!(worst < 1e-5)) process.exit(1);
