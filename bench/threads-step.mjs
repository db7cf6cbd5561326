// The threads column: one training step (valueAndGrad) of a wasm module's default exports (one
// thread) against its threaded instance (`create({ threads: N })`), alternating in this process
// after checking that the two agree bit for bit. Also used on its own to measure where a kernel
// starts to pay for a split:
//   node bench/threads-step.mjs MODULE.wasm.js [--threads N] [--min-work W] [--rounds R] [--second-import] [--no-adapt] [--baseline OTHER.wasm.js]
// --no-adapt: create({ adapt: false }), every kernel that reaches minWork split; --baseline: another
// build of the same model (main's, say) in the same alternation, its 1-thread and threaded steps.
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { randomInputs } from './models.mjs';

/** Index inputs in [0, 27) (the characters of every example), `labels` in [0, 10) (the CNN's), f32 inputs in [0, 1) (the CNN's images), from a mulberry32 stream. */
const inputsOf = (spec, seed) => randomInputs(spec, seed, Object.fromEntries(Object.keys(spec.inputs).map((k) => [k, k === 'labels' ? 10 : 27])));

const bits = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * A module's default exports and its threaded instance (create({ threads })), after checking that
 * their first steps agree bit for bit. The instance comes from the same module, as a user makes it:
 * create() evaluates its own copy of the steps (freshInstance), so that the default exports keep
 * theirs (closures made once, which V8 compiles for their one arena); with `secondImport` from a
 * second import of the module instead (what this bench did before create() did so itself).
 */
async function pair(file, { threads, minWork, adapt, secondImport, seed }) {
  const mod = await import(pathToFileURL(file).href);
  const copy = secondImport ? await import(`${pathToFileURL(file).href}?threaded`) : mod;
  const inst = await copy.create({ threads, ...(minWork === undefined ? {} : { minWork }), ...(adapt === undefined ? {} : { adapt }) });
  const params = mod.initParams(seed);
  const inputs = inputsOf(mod.spec, seed);
  const a = mod.valueAndGrad(params, inputs);
  const want = { loss: a.loss, grads: Object.fromEntries(Object.entries(a.grads).map(([k, g]) => [k, Float32Array.from(g)])) };
  const b = inst.valueAndGrad(params, inputs);
  if (!Object.is(a.loss, b.loss) || Object.entries(want.grads).some(([k, g]) => !bits(b.grads[k]).equals(bits(g)))) {
    await inst.destroy();
    throw new Error(`${file}: the ${threads}-thread step differs from the single-threaded one`);
  }
  return { inst, variants: [{ step: () => mod.valueAndGrad(params, inputs), times: [] }, { step: () => inst.valueAndGrad(params, inputs), times: [] }] };
}

/**
 * Median ms per step on 1 thread and on `threads`, timed in alternating rounds; throws when the
 * results differ in a bit. With `baseline` (another build's module of the same model, on the same
 * params and inputs), its 1-thread and threaded steps join the alternation: baseOne, baseMany.
 */
export async function threadsStep(file, { threads = 2, minWork, adapt, secondImport = false, rounds = 12, roundMs = 150, warmupMs = 1500, seed = 42, baseline } = {}) {
  const pairs = [await pair(file, { threads, minWork, adapt, secondImport, seed })];
  try {
    if (baseline) pairs.push(await pair(baseline, { threads, minWork, adapt, secondImport, seed }));
    const variants = pairs.flatMap((p) => p.variants);
    for (const v of variants) for (const t0 = performance.now(); performance.now() - t0 < warmupMs; ) v.step();
    for (let r = 0; r < rounds; r++)
      for (const v of r % 2 ? [...variants].reverse() : variants)
        for (const t0 = performance.now(); performance.now() - t0 < roundMs; ) {
          const s = performance.now();
          v.step();
          v.times.push(performance.now() - s);
        }
    const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
    const [one, many, baseOne, baseMany] = variants.map((v) => median(v.times));
    return { one, many, ratio: many / one, ...(baseline ? { baseOne, baseMany } : {}) };
  } finally {
    for (const p of pairs) await p.inst.destroy();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, ...rest] = process.argv.slice(2);
  const opt = (name) => {
    const i = rest.indexOf(name);
    return i >= 0 ? Number(rest[i + 1]) : undefined;
  };
  const threads = opt('--threads') ?? 2;
  const b = rest.indexOf('--baseline');
  const baseline = b >= 0 ? rest[b + 1] : undefined;
  const adapt = rest.includes('--no-adapt') ? false : undefined;
  const r = await threadsStep(file, { threads, minWork: opt('--min-work'), adapt, secondImport: rest.includes('--second-import'), rounds: opt('--rounds') ?? 12, baseline });
  console.log(`1 thread ${r.one.toFixed(4)} ms, ${threads} threads ${r.many.toFixed(4)} ms: ${r.ratio.toFixed(3)}×`);
  if (baseline) console.log(`baseline: 1 thread ${r.baseOne.toFixed(4)} ms, ${threads} threads ${r.baseMany.toFixed(4)} ms: ${(r.baseMany / r.baseOne).toFixed(3)}×`);
  console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}
