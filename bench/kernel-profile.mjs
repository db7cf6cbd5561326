// Per-kernel times of a fixed-shape wasm module's valueAndGrad: the module's source is loaded with
// its kernels object wrapped in timers (one performance.now() before and after each kernel call;
// the rest of the step, its JS, is the step's time less the kernels'). Modules given together are
// timed in alternation (one step of each per round), medians of the rounds:
//   node bench/kernel-profile.mjs MODULE.wasm.js [MODULE2.wasm.js ...] [--rounds R] [--threads N]
// --threads N profiles the threaded instance (create({ threads: N })) instead of the default exports.
// profileKernels() is the same measurement for other scripts (bench/realistic.mjs --kernels).
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { mulberry32 } from './models.mjs';

const WRAP = `
const __times = new Map();
function __wrap(k) {
  const out = {};
  for (const name of Object.keys(k)) {
    const f = k[name];
    if (typeof f !== 'function') { out[name] = f; continue; }
    __times.set(name, 0);
    out[name] = (...a) => { const t0 = performance.now(); const r = f(...a); __times.set(name, __times.get(name) + performance.now() - t0); return r; };
  }
  return out;
}
export { __times };
`;

async function load(spec, n, { threads, adapt } = {}) {
  // FILE:minWork=W:adapt=0 gives the threaded instance its own options
  const [file, ...kv] = spec.split(':');
  const own = Object.fromEntries(kv.map((x) => x.split('=')).map(([k, v]) => [k, k === 'adapt' ? v !== '0' : Number(v)]));
  let src = readFileSync(file, 'utf8');
  const before = src;
  src = src.replace(/const single = instance\(memory, (.*)\);/, 'const single = instance(memory, __wrap($1));');
  src = src.replace('...freshInstance()(memory, kernels),', '...freshInstance()(memory, __wrap(kernels)),');
  if (src === before) throw new Error(`${file}: no instance() call to wrap`);
  const url = `data:text/javascript;base64,${Buffer.from(WRAP + src + `\n// ${n}`).toString('base64')}`;
  const mod = await import(url);
  const inst = threads ? await mod.create({ threads, ...(adapt === 0 ? { adapt: false } : {}), ...own }) : mod;
  return { file: spec, mod, inst };
}


const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/**
 * Profiles the modules' valueAndGrad, one step of each per round (after 5 rounds of warm-up):
 * [{ file, step, kernels: Map(name → median ms per step, '(JS)' the rest) }] in the modules' order.
 * Options as the command line's; `params` and `inputs` default to initParams(1) and mulberry32(7) draws.
 */
export async function profileKernels(files, { rounds = 40, threads, adapt, busy, thrash, params, inputs } = {}) {
  let sink = 0;
  const junk = thrash ? new Float32Array(thrash * 262144) : undefined;
  const mods = [];
  for (const [n, f] of files.entries()) mods.push(await load(path.resolve(f), n, { threads, adapt }));
  const r = mulberry32(7);
  const spec = mods[0].mod.spec;
  inputs ??= Object.fromEntries(
    Object.entries(spec.inputs).map(([k, s]) => {
      const n = s.shape.reduce((a, d) => a * d, 1);
      return [k, s.dtype === 'i32' ? Int32Array.from({ length: n }, () => Math.floor(r() * 10)) : Float32Array.from({ length: n }, () => r())];
    }),
  );
  params ??= mods[0].mod.initParams(1);
  const samples = mods.map(() => ({ step: [], kernels: new Map() }));
  for (let round = 0; round < rounds + 5; round++)
    mods.forEach((m, i) => {
      const times = m.mod.__times;
      for (const k of times.keys()) times.set(k, 0);
      if (junk) junk.fill(round);
      if (busy) {
        let a = 1;
        for (let k = 0; k < busy; k++) a = a * 1.0000001 + 1e-9;
        sink += a;
      }
      const t0 = performance.now();
      m.inst.valueAndGrad(params, inputs);
      const t = performance.now() - t0;
      if (round < 5) return;
      samples[i].step.push(t);
      let sum = 0;
      for (const [k, v] of times) {
        if (!samples[i].kernels.has(k)) samples[i].kernels.set(k, []);
        samples[i].kernels.get(k).push(v);
        sum += v;
      }
      if (!samples[i].kernels.has('(JS)')) samples[i].kernels.set('(JS)', []);
      samples[i].kernels.get('(JS)').push(t - sum);
    });
  for (const m of mods) if (threads) await m.inst.destroy();
  return mods.map((m, i) => ({ file: m.file, step: median(samples[i].step), kernels: new Map([...samples[i].kernels].map(([k, v]) => [k, median(v)])), sink }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args.splice(i, 2)[1]) : undefined;
  };
  const rounds = opt('--rounds') ?? 40;
  const threads = opt('--threads');
  // --adapt 0: the threaded instance always splits (no timing of whole against split)
  const adapt = opt('--adapt');
  // --thrash MB: before each step, write MB of another array (as bench/cnn-step.mjs's flat step in between evicts the caches)
  const thrash = opt('--thrash');
  // --busy N: before each step, N iterations of a scalar JS loop (as the flat step in between)
  const busy = opt('--busy');
  const results = await profileKernels(args, { rounds, threads, adapt, busy, thrash });
  const label = (m) => `${path.basename(path.dirname(m.file.split(':')[0]))}${m.file.split(':').slice(1).map((x) => `:${x}`).join('')}`;
  console.log(`median ms of ${rounds} rounds (alternating), ${threads ? `${threads} threads` : '1 thread'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const names = [...new Set(results.flatMap((s) => [...s.kernels.keys()]))];
  console.log(`${'kernel'.padEnd(34)}${results.map((m) => label(m).padStart(16)).join('')}`);
  for (const k of names) {
    const row = results.map((s) => (s.kernels.has(k) ? s.kernels.get(k).toFixed(3) : '-').padStart(16));
    if (results.some((s) => s.kernels.has(k) && s.kernels.get(k) > 0.0005)) console.log(`${k.padEnd(34)}${row.join('')}`);
  }
  console.log(`${'STEP'.padEnd(34)}${results.map((s) => s.step.toFixed(3).padStart(16)).join('')}`);
}
