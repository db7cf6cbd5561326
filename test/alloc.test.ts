// No allocation inside forward/valueAndGrad after the first call: the steady state triggers
// no garbage collection at all (V8's --trace-gc prints one line per collection).

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

describe('generated modules', () => {
  it.each(['makemore', 'classifier', 'twolayer'])('%s allocates nothing per call', (name) => {
    const r = spawnSync(
      process.execPath,
      ['--trace-gc', path.join(ROOT, 'test/fixtures/alloc/steady.mjs'), path.join(ROOT, 'generated', name, `${name}.js`)],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    const steady = lines.slice(lines.indexOf('--- steady state') + 1, lines.indexOf('--- end'));
    expect(lines).toContain('--- end');
    expect(steady).toEqual([]);
  });
});
