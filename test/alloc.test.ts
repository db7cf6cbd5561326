// No allocation inside forward/valueAndGrad after the first call: the steady state triggers
// no garbage collection at all (V8's --trace-gc prints one line per collection) and leaves the
// heap as it found it.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import { modelFile, ROOT, run, tmp } from './helpers.js';

/**
 * The garbage collections of the steady state of a module: the lines --trace-gc printed in the
 * fixture's last window of 10,000 calls, and its heap growth when that is 64 KB or more (none of
 * both when nothing is allocated per call). Earlier windows, where V8 may still be compiling,
 * are not counted.
 */
function steadyStateGcs(module: string, threads?: number): string[] {
  const r = spawnSync(process.execPath, ['--trace-gc', path.join(ROOT, 'test/fixtures/alloc/steady.mjs'), module, ...(threads ? [String(threads)] : [])], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const lines = r.stdout.split('\n');
  expect(lines).toContain('--- end');
  const windows = lines.flatMap((l, i) => (l.startsWith('--- window ') ? [i] : []));
  const last = lines.slice(windows[windows.length - 1]! + 1, lines.indexOf('--- end'));
  const growth = last.find((l) => l.startsWith('--- growth '));
  expect(growth, 'the window reports its heap growth').toBeDefined();
  const bytes = Number(growth!.slice('--- growth '.length));
  return [...last.filter((l) => !l.startsWith('--- ')), ...(bytes >= 65536 ? [`the heap grew by ${bytes} bytes in 10,000 iterations`] : [])];
}

describe('generated modules', () => {
  it.each(['makemore', 'classifier', 'twolayer'])('%s allocates nothing per call', (name) => {
    expect(steadyStateGcs(path.join(ROOT, 'generated', name, `${name}.js`))).toEqual([]);
  });

  it.each(['makemore', 'twolayer'])('the wasm module of %s allocates nothing per call', (name) => {
    expect(steadyStateGcs(path.join(ROOT, 'generated', name, `${name}.wasm.js`))).toEqual([]);
  });

  it('the threaded wasm module of makemore (create({ threads: 2 }), every kernel that can split split, not adapting) allocates nothing per call', () => {
    expect(steadyStateGcs(path.join(ROOT, 'generated', 'makemore', 'makemore.wasm.js'), 2)).toEqual([]);
  });
  it('trainStep allocates nothing per call (adamw: the flat module, and the wasm module with clipping)', async () => {
    const flat = path.join(tmp(), 'trained');
    const wasm = path.join(tmp(), 'clipped');
    expect((await run(['build', 'examples/makemore.ts', '--out', flat, '--target', 'ts', '--optimizer', 'adamw'])).code).toBe(0);
    expect((await run(['build', 'examples/makemore.ts', '--out', wasm, '--target', 'wasm', '--optimizer', 'adamw', '--clip-grad-norm', '1'])).code).toBe(0);
    expect(steadyStateGcs(path.join(flat, 'makemore.js')), 'flat').toEqual([]);
    expect(steadyStateGcs(path.join(wasm, 'makemore.wasm.js')), 'wasm').toEqual([]);
  }, 240_000);
  it('trainStep of the new optimizers allocates nothing per call (rmsprop centered with momentum: flat; lion with clipping: wasm)', async () => {
    const flat = path.join(tmp(), 'rmsprop');
    const wasm = path.join(tmp(), 'lion');
    expect((await run(['build', 'examples/makemore.ts', '--out', flat, '--target', 'ts', '--optimizer', 'rmsprop', '--centered', '--momentum', '0.9'])).code).toBe(0);
    expect((await run(['build', 'examples/makemore.ts', '--out', wasm, '--target', 'wasm', '--optimizer', 'lion', '--weight-decay', '0.1', '--clip-grad-norm', '1'])).code).toBe(0);
    expect(steadyStateGcs(path.join(flat, 'makemore.js')), 'flat').toEqual([]);
    expect(steadyStateGcs(path.join(wasm, 'makemore.wasm.js')), 'wasm').toEqual([]);
  }, 240_000);
  it('trainStep with a schedule and param groups allocates nothing per call (adamw --no-decay-1d, cosine with warmup: flat and wasm)', async () => {
    const dir = path.join(tmp(), 'scheduled');
    const flags = ['--optimizer', 'adamw', '--no-decay-1d', '--schedule', 'cosine', '--warmup', '100', '--total-steps', '100000'];
    expect((await run(['build', 'examples/makemore.ts', '--out', dir, '--target', 'ts,wasm', ...flags])).err).toBe('');
    expect(steadyStateGcs(path.join(dir, 'makemore.js')), 'flat').toEqual([]);
    expect(steadyStateGcs(path.join(dir, 'makemore.wasm.js')), 'wasm').toEqual([]);
  }, 240_000);
  it('a module with dropout and running statistics allocates nothing per call (flat and wasm)', async () => {
    const examples = ROOT.split(path.sep).join('/') + '/examples';
    const file = modelFile(`import { makemoreRunning } from '${examples}/makemore_running.ts';
export default makemoreRunning(undefined, 'steady_dropout', { dropout: 0.1 });
`);
    const c = await compile(file, { targets: ['ts', 'wasm'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    expect(steadyStateGcs(path.join(dir, 'steady_dropout.js'))).toEqual([]);
    expect(steadyStateGcs(path.join(dir, 'steady_dropout.wasm.js'))).toEqual([]);
  }, 180_000); // two modules, up to 60,000 steps each

  it('a module with a symbolic batch allocates nothing per call at a steady size', async () => {
    const examples = ROOT.split(path.sep).join('/') + '/examples';
    const file = modelFile(`import { LECTURE } from '${examples}/makemore.ts';
import { makemoreInference } from '${examples}/makemore_inference.ts';
export default makemoreInference({ ...LECTURE, batch: 'B' }, 'steady_sym');
`);
    const c = await compile(file, { targets: ['ts'] });
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    expect(steadyStateGcs(path.join(dir, 'steady_sym.js'))).toEqual([]);
  });
});
