// The data-parallel example (scripts/data-parallel/): K worker threads computing valueAndGrad on
// shards of a batch, their gradients averaged, equal the gradient of the module built for the
// whole batch; the training script runs and lowers the loss.

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain ESM without type declarations
import { GradientPool } from '../scripts/data-parallel/pool.mjs';
import { buildAndImport, modelFile, relErr, rng, ROOT } from './helpers.js';

describe('data-parallel gradients over worker threads', () => {
  it('two shards of 16 averaged equal the gradient of the GPT built for batch 32', async () => {
    const pool = await GradientPool.create(pathToFileURL(path.join(ROOT, 'generated/gpt/gpt.js')).href, 2);
    try {
      const examples = ROOT.split(path.sep).join('/') + '/examples';
      const { mod: big } = await buildAndImport(modelFile(`import { gpt, GPT } from '${examples}/gpt.ts';\nexport default gpt({ ...GPT, batch: 32 }, 'gpt32');\n`));
      const r = rng(3);
      const X = Int32Array.from({ length: 32 * 8 }, () => Math.floor(r() * 27));
      const Y = Int32Array.from({ length: 32 * 8 }, () => Math.floor(r() * 27));
      pool.shards[0].X.set(X.subarray(0, 128));
      pool.shards[0].Y.set(Y.subarray(0, 128));
      pool.shards[1].X.set(X.subarray(128));
      pool.shards[1].Y.set(Y.subarray(128));
      const got = await pool.valueAndGrad();
      const want = big.valueAndGrad(big.initParams(0), { X, Y });
      expect(relErr([got.loss], [want.loss])).toBeLessThan(1e-6);
      for (const [k, g] of Object.entries(want.grads)) expect(relErr(got.grads[k], g), `gradient of ${k}`).toBeLessThan(1e-5);
      // the params are shared: an update on the main thread is what the workers read next
      pool.params.head_b[0] += 1;
      const moved = await pool.valueAndGrad();
      expect(moved.loss).not.toBe(got.loss);
    } finally {
      await pool.close();
    }
  });

  it('node scripts/data-parallel.mjs trains the GPT on 2 workers', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/data-parallel.mjs'), '--workers', '2', '--steps', '60'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('data-parallel: 2 worker thread(s), each valueAndGrad on 16 × 8 characters: a global batch of 32 windows');
    const losses = [...r.stdout.matchAll(/loss (\d\.\d{4})/g)].map((m) => Number(m[1]));
    expect(losses).toHaveLength(5);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.1);
  });
});
