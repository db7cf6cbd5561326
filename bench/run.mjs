// npm run bench: times one training step (forward + backward, every parameter gradient) of the
// makemore MLP at two sizes, graphc's generated code (the flat module, and the wasm target's
// SIMD kernels) against TF.js (cpu and wasm backends) and PyTorch eager (graphc wasm and PyTorch
// each on 1 and on --threads threads), times `graphc build` itself, and reports each wasm matmul
// kernel's GFLOP/s against the machine's SIMD peak.
//
//   npm run bench [-- --sizes=S,L] [--quick] [--contenders=long,symbolic,wasm,tfjs-cpu,tfjs-wasm,torch] [--rebuild]
//                 [--threads=N] [--realistic=gpt,cnn|none] [--baseline=REV]
//
// --baseline=REV builds the compiler at REV (bench/baseline.mjs) and adds its wasm modules as
// contenders (makemore, the CNN section, the threads section, the realistic sizes), with
// new / baseline ratios flagged when the new build is more than 5% slower.
//
// Each contender runs in a process of its own (so its peak RSS is its own), is warmed up by time
// (V8 keeps optimising for a few thousand calls), and then the contenders take turns in many
// short rounds: round 1 of A, B, C, ..., round 2 of A, B, C, ... (short rounds spread any outside
// load evenly over the contenders). The reported time is the median over every measured step.
// Before any timing, every contender's loss and gradients must agree with graphc's composite-op
// model to 1e-4 (max|a − b| / max(max|b|, 1e-3) per tensor), or the run fails with exit code 1.
import { checksOverhead } from './checks.mjs';
import { baselineBuild, prepareBaseline, versusBaseline } from './baseline.mjs';
import { cnnStep } from './cnn-step.mjs';
import { exampleStep } from './examples.mjs';
import { realisticSection } from './realistic.mjs';
import { kernelGflops, kernelShapes, simdPeak } from './simd.mjs';
import { splitMatmul } from './threads.mjs';
import { threadsStep } from './threads-step.mjs';
import { trainStepRows } from './train.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildMakemore, buildMlp, ensureCompilerBuilt, makemoreFlops, mulberry32, REFERENCE_FLOPS, ROOT, SIZES } from './models.mjs';
import { fmt, relError, table } from './report.mjs';
import { findTorchPython, JsWorker, PythonWorker, timeInTurns } from './workers.mjs';

const SEED = 42; // parameters: initParams(SEED) of the composite module; inputs: mulberry32(SEED)
const TOLERANCE = 1e-4;
/**
 * The makemore contenders, N = --threads. `--contenders` picks by `group ?? id`: `wasm` runs the wasm
 * module on 1 thread (its default exports) and on N (create({ threads: N })), `torch` PyTorch on 1
 * and on N threads (issue 30: each side at equal thread counts, and PyTorch at its best).
 */
function contenderList(n) {
  return [
    { id: 'composite', label: 'graphc composite', kind: 'graphc', variant: 'composite' },
    { id: 'long', label: 'graphc long-form', kind: 'graphc', variant: 'long' },
    { id: 'symbolic', label: 'graphc batch B', kind: 'graphc', variant: 'symbolic' },
    { id: 'wasm', label: 'graphc wasm, 1 thread', kind: 'graphc', variant: 'wasm' },
    { id: 'wasm-n', group: 'wasm', label: `graphc wasm, ${n} threads`, kind: 'graphc', variant: 'wasm', threads: n },
    { id: 'tfjs-cpu', label: 'TF.js cpu', kind: 'tfjs-cpu' },
    { id: 'tfjs-wasm', label: 'TF.js wasm', kind: 'tfjs-wasm' },
    // OMP/OPENBLAS/MKL_NUM_THREADS and torch.set_num_threads = threads (workers.mjs's torchEnv): without
    // them Debian's OpenBLAS ran 2 threads under torch's 1-thread default, against graphc's 1 thread
    { id: 'torch-1', group: 'torch', label: 'PyTorch eager, 1 thread', kind: 'torch', threads: 1 },
    { id: 'torch-n', group: 'torch', label: `PyTorch eager, ${n} threads`, kind: 'torch', threads: n },
    // only with --baseline: makemoreComposite --target wasm built by the baseline's compiler
    { id: 'baseline-wasm', label: 'baseline wasm, 1 thread', kind: 'graphc', variant: 'baseline-wasm' },
  ];
}
/** The ids `--contenders` takes. */
const GROUPS = [...new Set(contenderList(2).map((c) => c.group ?? c.id))];

const started = performance.now();
const opts = parseArgs(process.argv.slice(2));
const plan = opts.quick
  ? { warmupMs: 500, rounds: { S: 6, L: 4 }, roundMs: { S: 100, L: 300 }, minSteps: 1, mlpLayers: [10, 100] }
  : { warmupMs: 2000, rounds: { S: 30, L: 16 }, roundMs: { S: 100, L: 300 }, minSteps: 1, mlpLayers: [10, 100, 1000] };

const workDir = mkdtempSync(path.join(os.tmpdir(), 'graphc-bench-'));
const workers = [];
let baseline; // --baseline: prepareBaseline()'s build of the compiler at REV
try {
  process.exitCode = await main();
} catch (e) {
  console.error(`\nbench failed: ${e?.stack ?? e}`);
  process.exitCode = 1;
} finally {
  for (const w of workers) w.close();
  rmSync(workDir, { recursive: true, force: true });
  baseline?.dispose();
}

async function main() {
  console.log(`graphc bench: ${os.cpus()[0]?.model ?? 'cpu'} (${os.cpus().length} cores), Node ${process.version}${opts.quick ? ', --quick' : ''}`);
  loadNote('before the run', 0);
  const stale = ensureCompilerBuilt(opts);
  if (stale) console.log(`note: ${stale}`);
  if (opts.baseline) baseline = prepareBaseline(opts.baseline);

  // 1. Build every model with graphc, timing the builds.
  section('graphc build: wall time of `node bin/graphc.js build` (Node start included)');
  const builds = {};
  for (const size of opts.sizes) {
    for (const variant of ['composite', 'long', 'symbolic', 'wasm']) {
      const b = buildMakemore(workDir, variant, size);
      builds[`${variant}_${size}`] = b;
      console.log(`  ${b.name.padEnd(22)} ${b.ok ? `${fmt.ms(b.ms).padStart(8)} ms   ${kb(b.jsBytes)} of JS, ${b.jsLines} lines` : 'FAILED'}`);
      if (!b.ok) {
        console.log(indent(b.error));
        console.log('  graphc could not build the model: if the compiler is mid-change, run `npm run build` and try again');
        return 1;
      }
    }
  }
  if (baseline)
    for (const size of opts.sizes) {
      const b = buildMakemore(workDir, 'wasm', size, { baseline });
      if (!b.ok) throw new Error(`the baseline (${baseline.label}) could not build makemore ${size}:\n${b.error}`);
      builds[`baseline-wasm_${size}`] = b;
      console.log(`  ${b.name.padEnd(22)} ${fmt.ms(b.ms).padStart(8)} ms   (the baseline, ${baseline.label})`);
    }
  const mlps = plan.mlpLayers.map((layers) => {
    const b = buildMlp(workDir, layers);
    console.log(`  ${b.name.padEnd(22)} ${b.ok ? `${fmt.ms(b.ms).padStart(8)} ms   ${(b.ms / layers).toFixed(1)} ms/layer, ${kb(b.jsBytes)} of JS` : `FAILED: ${firstLine(b.error)}`}`);
    return b;
  });
  const okMlps = mlps.filter((b) => b.ok);
  for (let i = 1; i < okMlps.length; i++) {
    const [a, b] = [okMlps[i - 1], okMlps[i]];
    console.log(`  ${a.name} -> ${b.name}: ${((b.ms - a.ms) / (b.layers - a.layers)).toFixed(2)} ms per added layer`);
  }

  // 2. Start every contender on the same parameters and inputs; check that they agree.
  const torchPython = opts.contenders.includes('torch') ? findTorchPython() : undefined;
  if (opts.contenders.includes('torch') && !torchPython) console.log('\nnote: PyTorch is not importable (tried python3 and /usr/bin/python3): skipping it (on Debian: apt-get install python3-torch)');
  const runs = {};
  for (const size of opts.sizes) runs[size] = await startContenders(size, builds, torchPython);
  let agree = true;
  for (const size of opts.sizes) agree = checkAgreement(size, runs[size]) && agree;
  if (!agree) {
    console.log(`\nFAIL: the contenders disagree (tolerance ${TOLERANCE}); nothing was timed`);
    return 1;
  }
  printVersions(runs[opts.sizes[0]]);

  // 3. Time them, taking turns, and ask each process for its peak RSS.
  const results = {};
  for (const size of opts.sizes) {
    results[size] = await timeContenders(size, runs[size]);
    printSize(size, results[size]);
  }

  // 4. The summary and the targets.
  printSummary(results, builds, mlps);

  // 5. The wasm kernels, one by one, against the SIMD peak.
  section('wasm matmul kernels: each run on its own (no epilogue), GFLOP/s against a plain SIMD multiply-add loop');
  const peak = await simdPeak();
  console.log(`  SIMD peak (f32x4 mul + add from L1 into ${peak.accumulators} accumulators, one thread): ${fmt.gflops(peak.gflops)} GFLOP/s`);
  const kernelRows = [];
  for (const size of opts.sizes)
    for (const k of kernelShapes(builds[`wasm_${size}`].module)) {
      const r = await kernelGflops(k);
      const layout = k.transA || k.transB ? ` (${[k.transA && 'A', k.transB && 'B'].filter(Boolean).join(', ')}ᵀ)` : '';
      kernelRows.push([size, k.name, `${k.batch > 1 ? `${k.batch} × ` : ''}[${k.M},${k.K}]·[${k.K},${k.N}]${layout}`, fmt.ms(r.ms), fmt.gflops(r.gflops), `${((100 * r.gflops) / peak.gflops).toFixed(0)}%`]);
    }
  console.log(indent(table(['size', 'kernel', 'shape', 'ms', 'GFLOP/s', 'of peak'], kernelRows)));

  // 6. Would two threads pay? (a measurement; the generated modules stay single-threaded)
  section('two threads: a wasm matmul kernel split by rows over this thread and a worker (SharedArrayBuffer, Atomics), against one thread; A not transposed');
  const splitRows = [];
  for (const size of opts.sizes)
    for (const k of kernelShapes(builds[`wasm_${size}`].module)) {
      if (k.transA || k.batch > 1 || k.M < 2) continue;
      const r = await splitMatmul(k);
      splitRows.push([size, k.name, `[${k.M},${k.K}]·[${k.K},${k.N}]${k.transB ? ' (Bᵀ)' : ''}`, fmt.ms(r.msOne), fmt.ms(r.msTwo), `${r.speedup.toFixed(2)}×`]);
    }
  console.log(indent(table(['size', 'kernel', 'shape', '1 thread ms', '2 threads ms', 'speed-up'], splitRows)));

  // 7. What the argument checks of the generated module cost.
  section('argument checks: graphc composite with and without checkArgs, alternating in this process');
  for (const size of opts.sizes) {
    const o = await checksOverhead(builds[`composite_${size}`].module, makeInputs(SIZES[size], SEED), opts.quick ? { rounds: 6, warmupMs: 800 } : {});
    console.log(`  ${size}: ${fmt.ms(o.checked)} ms checked, ${fmt.ms(o.unchecked)} ms unchecked: ${(100 * o.overhead).toFixed(1)}% of a step`);
  }
  // 8. The sequence models of examples/: flat against wasm.
  section('examples: one training step of generated/wavenet and generated/gpt, the flat module against the wasm module, alternating in this process');
  const exampleRows = [];
  for (const name of ['wavenet', 'gpt']) {
    const r = await exampleStep(name, opts.quick ? { rounds: 4, warmupMs: 500 } : {});
    if (r.err > TOLERANCE) {
      console.log(`  FAIL: ${name}: the wasm module's loss or gradients differ from the flat module's by ${fmt.err(r.err)}`);
      return 1;
    }
    exampleRows.push([name, r.nParams.toLocaleString('en-US'), fmt.ms(r.flat), fmt.ms(r.wasm), `${(r.flat / r.wasm).toFixed(1)}×`, fmt.err(r.err)]);
  }
  console.log(indent(table(['example', 'params', 'flat ms', 'wasm ms', 'wasm speed-up', 'max err'], exampleRows)));

  // 8b. The convolutional network of examples/cnn.ts: flat and wasm beside TF.js and PyTorch (bench/cnn-step.mjs).
  const torchCnn = await cnnSection(workDir);
  if (torchCnn === null) return 1;

  // 9. The compiled training step against valueAndGrad and the JS update it replaces.
  section('training step: trainStep (--optimizer adamw) against valueAndGrad + a JavaScript AdamW update, alternating in this process');
  const trained = await trainStepRows({ quick: opts.quick });
  const disagree = trained.find((r) => r.err > TOLERANCE);
  if (disagree) {
    console.log(`  FAIL: ${disagree.name}: trainStep's params differ from valueAndGrad + the JS update's by ${fmt.err(disagree.err)} after 20 steps`);
    return 1;
  }
  const trainRows = trained.map((r) => [r.name, r.nParams.toLocaleString('en-US'), fmt.ms(r.compiled), fmt.ms(r.js), `${(r.compiled / r.js).toFixed(2)}×`, fmt.err(r.err)]);
  console.log(indent(table(['module', 'params', 'trainStep ms', 'valueAndGrad + JS ms', 'ratio', 'max param err (20 steps)'], trainRows)));

  // 10. The threads column: the wasm modules' create({ threads }) against their default exports.
  await threadsSection(builds, workDir, torchCnn);

  // 11. The realistic sizes: nanoGPT's CPU config and the CIFAR ResNet against PyTorch (bench/realistic.mjs).
  if (opts.realistic.length) {
    section('realistic sizes (bench/realistic.mjs)');
    await realisticSection({ models: opts.realistic, quick: opts.quick, threads: opts.threads, baseline });
  }

  loadNote('at the end', 1); // the bench itself keeps one core busy
  console.log(`\ntotal bench time ${fmt.s(performance.now() - started)}`);
  return 0;
}

/**
 * The CNN section (generated/cnn: flat and wasm, TF.js, PyTorch on 1 thread; with --baseline the
 * baseline's flat and wasm modules in the alternation). Returns PyTorch's row (undefined when it
 * did not run), or null when a contender failed or disagreed.
 */
async function cnnSection(workDir) {
  section('CNN: one training step (valueAndGrad) of generated/cnn (LeNet-style, batch 64, about 115 MFLOP), flat and wasm modules in alternation in this process, beside TF.js and PyTorch on 1 thread; all checked against the flat module first');
  let cnn;
  try {
    // TF.js wasm (its weight gradient through Conv3DBackpropFilterV2: it has no 2-D one); its cpu backend only if wasm fails
    const before = baseline && path.join(workDir, 'cnn_baseline');
    if (before) baselineBuild(baseline, 'examples/cnn.ts', before);
    cnn = await cnnStep({ reps: opts.quick ? 5 : 20, tfjs: ['wasm', 'cpu'], tfjsReps: opts.quick ? 1 : 2, before });
  } catch (e) {
    console.log(`  FAIL: ${firstLine(e.message)}`);
    return null;
  }
  for (const n of cnn.notes) console.log(`  note: ${n}`);
  const wasmCnn = cnn.rows.find((r) => r.name === 'graphc wasm');
  console.log(indent(table(['contender', 'ms', 'wasm / this', 'max rel err'], cnn.rows.map((r) => [r.name, fmt.ms(r.ms), fmt.ratio(wasmCnn.ms / r.ms), r.name === 'graphc flat' ? '(reference)' : fmt.err(r.err)]))));
  const torchCnn = cnn.rows.find((r) => r.name.startsWith('PyTorch'));
  console.log(`  target: graphc wasm ≤ PyTorch 1-thread: ${torchCnn ? `${wasmCnn.ms <= torchCnn.ms ? 'PASS' : 'FAIL'} (${fmt.ratio(wasmCnn.ms / torchCnn.ms)})` : 'n/a (PyTorch skipped)'}`);
  const tfWasmCnn = cnn.rows.find((r) => r.name.startsWith('TF.js') && r.name.includes('wasm'));
  console.log(`  target: graphc wasm ≤ 0.3× TF.js wasm: ${tfWasmCnn ? `${wasmCnn.ms <= 0.3 * tfWasmCnn.ms ? 'PASS' : 'FAIL'} (${fmt.ratio(wasmCnn.ms / tfWasmCnn.ms)})` : 'n/a (TF.js wasm did not run)'}`);
  for (const kind of baseline ? ['flat', 'wasm'] : []) {
    const [now, then] = [`graphc ${kind}`, `before: ${kind}`].map((n) => cnn.rows.find((r) => r.name === n).ms);
    console.log(`  graphc ${kind} new / baseline (${baseline.label}): ${versusBaseline(now, then)}`);
  }
  return torchCnn;
}

/**
 * The threads column: the wasm modules' create({ threads }) against their default exports
 * (makemore at each size, generated/wavenet, gpt and cnn); with --baseline, the baseline's builds
 * of the same models too, in the same alternation, and new / baseline per model and thread count.
 */
async function threadsSection(builds, workDir, torchCnn) {
  section(`threads: one training step of the wasm module on 1 thread (its default exports) and on ${opts.threads} (create({ threads: ${opts.threads} })), alternating in this process, bit-identical`);
  const threadRows = [];
  const threadModels = [
    ...opts.sizes.map((size) => [`makemore ${size}`, builds[`wasm_${size}`].module]),
    ...['wavenet', 'gpt', 'cnn'].map((name) => [name, path.join(ROOT, 'generated', name, `${name}.wasm.js`)]),
  ];
  const baselineModules = {};
  if (baseline) {
    for (const size of opts.sizes) baselineModules[`makemore ${size}`] = builds[`baseline-wasm_${size}`].module;
    for (const name of ['wavenet', 'gpt', 'cnn']) {
      baselineBuild(baseline, `examples/${name}.ts`, path.join(workDir, `${name}_baseline`), 'wasm');
      baselineModules[name] = path.join(workDir, `${name}_baseline`, `${name}.wasm.js`);
    }
  }
  const baselineRows = [];
  const ratios = {};
  const manyMs = {};
  for (const [name, file] of threadModels) {
    const r = await threadsStep(file, { threads: opts.threads, baseline: baselineModules[name], ...(opts.quick ? { rounds: 4, warmupMs: 500 } : {}) });
    ratios[name] = r.ratio;
    manyMs[name] = r.many;
    threadRows.push([name, fmt.ms(r.one), fmt.ms(r.many), `${r.ratio.toFixed(2)}×`]);
    if (baselineModules[name]) {
      threadRows.push([`  baseline ${name}`, fmt.ms(r.baseOne), fmt.ms(r.baseMany), `${(r.baseMany / r.baseOne).toFixed(2)}×`]);
      baselineRows.push(`  ${name}: new / baseline, 1 thread ${versusBaseline(r.one, r.baseOne)}; ${opts.threads} threads ${versusBaseline(r.many, r.baseMany)}`);
    }
  }
  console.log(indent(table(['model', '1 thread ms', `${opts.threads} threads ms`, `${opts.threads} threads / 1`], threadRows)));
  if (ratios['makemore L'] !== undefined) console.log(`  target: at L the ${opts.threads}-thread step ≤ 0.6× the 1-thread step: ${ratios['makemore L'] <= 0.6 ? 'PASS' : 'FAIL'} (${ratios['makemore L'].toFixed(2)}×)`);
  // the CNN's threaded step against PyTorch's 1-thread step of the CNN section above (issue 17)
  if (torchCnn && manyMs.cnn !== undefined) {
    const ms = manyMs.cnn;
    console.log(`  target: the CNN on ${opts.threads} threads ≤ 0.6× PyTorch's 1-thread step: ${ms <= 0.6 * torchCnn.ms ? 'PASS' : 'FAIL'} (${fmt.ratio(ms / torchCnn.ms)})`);
  }
  const slower = Object.entries(ratios).filter(([, r]) => r > 1.02); // within 2%: the same
  console.log(`  target: no model slower than on 1 thread (by more than 2%): ${slower.length ? `FAIL (${slower.map(([n, r]) => `${n} ${r.toFixed(2)}×`).join(', ')})` : 'PASS'}`);
  for (const line of baselineRows) console.log(line);
}

async function startContenders(size, builds, torchPython) {
  const cfg = SIZES[size];
  const composite = await import(pathToFileURL(builds[`composite_${size}`].module).href);
  const params = composite.initParams(SEED);
  const shapes = Object.fromEntries(Object.entries(composite.spec.params).map(([k, p]) => [k, p.shape]));
  const inputs = makeInputs(cfg, SEED);
  const chosen = contenderList(opts.threads).filter((c) => opts.contenders.includes(c.group ?? c.id) && (c.kind !== 'torch' || torchPython) && (c.id !== 'baseline-wasm' || baseline));
  const list = chosen.map((c) => {
    const worker = c.kind === 'torch' ? new PythonWorker(`${c.label} ${size}`, torchPython, { threads: c.threads }) : new JsWorker(`${c.label} ${size}`);
    workers.push(worker);
    return { ...c, worker };
  });
  // start up in parallel (nothing is timed yet); each answers with its first loss and gradients
  await Promise.all(
    list.map(async (c) => {
      const module = c.kind === 'graphc' ? builds[`${c.variant}_${size}`].module : undefined;
      const reply = await c.worker.request({ cmd: 'init', kind: c.kind, cfg, shapes, params, inputs, module, threads: c.threads });
      Object.assign(c, { info: reply.info, loss: reply.loss, grads: reply.grads });
      // the BLAS's own threads, as the process reports them (OpenBLAS's openblas_get_num_threads())
      const blasThreads = c.kind === 'torch' && /; (\d+) thread\(s\)\)$/.exec(c.info?.blas?.kind ?? '')?.[1];
      if (blasThreads) c.label += ` (BLAS ${blasThreads} thread${blasThreads === '1' ? '' : 's'})`;
    }),
  );
  return list;
}

function checkAgreement(size, list) {
  const ref = list[0];
  const names = Object.keys(ref.grads);
  section(`agreement at ${size} with graphc composite: max|a − b| / max(max|b|, 1e-3) per tensor, tolerance ${TOLERANCE}`);
  let ok = true;
  const rows = list.map((c) => {
    const errs = [relError([c.loss], [ref.loss]), ...names.map((n) => (c.grads[n] ? relError(c.grads[n], ref.grads[n]) : Infinity))];
    const worst = Math.max(...errs);
    ok &&= worst <= TOLERANCE;
    return [c.label, c.loss.toFixed(6), ...errs.map(fmt.err), worst <= TOLERANCE ? 'ok' : 'FAIL'];
  });
  console.log(indent(table(['contender', 'loss', 'loss err', ...names.map((n) => `d${n}`), ''], rows)));
  return ok;
}

async function timeContenders(size, list) {
  section(`timing ${size}: warm-up ${fmt.s(plan.warmupMs)} each, then ${plan.rounds[size]} rounds of ≥ ${plan.roundMs[size]} ms (≥ ${plan.minSteps} step${plan.minSteps === 1 ? '' : 's'}), contenders taking turns (order reversed every other round; after each turn, until that process uses no more CPU, ≤ 300 ms)`);
  const flops = REFERENCE_FLOPS[size];
  // reversed and settled as in realistic.mjs: with N-thread contenders in the turns, no process's
  // threads still running after its turn are timed against the next contender
  const rows = await timeInTurns(list, { warmupMs: plan.warmupMs, rounds: plan.rounds[size], roundMs: plan.roundMs[size], minSteps: plan.minSteps, reverse: true, settleMs: 300, log: console.log });
  for (const row of rows) row.gflops = flops / (row.ms * 1e6);
  for (const row of rows) row.ratio = row.ms / rows[0].ms;
  return rows;
}

function printSize(size, rows) {
  const ours = makemoreFlops(SIZES[size]);
  const cfg = Object.entries(SIZES[size]).map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(`\n  ${size} (${cfg}): GFLOP/s at ${fmt.flops(REFERENCE_FLOPS[size])}/step`);
  console.log(`  (our count: matmuls ${fmt.flops(ours.matmul)} + elementwise ≈ ${fmt.flops(ours.elementwise)} = ${fmt.flops(ours.total)})`);
  const body = rows.map((r) => [r.c.label, fmt.ms(r.ms), `${fmt.ms(r.lo)}–${fmt.ms(r.hi)}`, r.steps, fmt.ratio(r.ratio), fmt.gflops(r.gflops), fmt.mb(r.maxRssKb)]);
  console.log(indent(table(['contender', 'median ms/step', 'round medians', 'steps', 'vs composite', 'GFLOP/s', 'peak RSS'], body)));
}

function printVersions(list) {
  section('contenders');
  const width = Math.max(...list.map((c) => c.label.length));
  for (const c of list) {
    const i = c.info ?? {};
    let what = `Node ${i.node}`;
    if (c.kind === 'graphc') what += `, generated JS (${{ composite: 'makemoreComposite', long: 'makemore', symbolic: "makemoreComposite with batch 'B'", wasm: 'makemoreComposite, --target wasm: WebAssembly SIMD matmuls', 'baseline-wasm': `makemoreComposite, --target wasm, by the compiler at ${baseline?.label}` }[c.variant]}${c.threads ? `; create({ threads: ${c.threads} })` : ''})`;
    if (c.kind === 'tfjs-cpu') what += `, @tensorflow/tfjs-core ${i.tfjsCore} + tfjs-backend-cpu ${i.tfjsBackendCpu}`;
    if (c.kind === 'tfjs-wasm') what += `, @tensorflow/tfjs-core ${i.tfjsCore} + tfjs-backend-wasm ${i.tfjsBackendWasm} (SIMD ${i.simd ? 'on' : 'off'}, ${i.threads} thread${i.threads === 1 ? '' : 's'})`;
    if (c.kind === 'torch') {
      const env = ['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'].map((k) => `${k}=${i.env?.[k] ?? '?'}`).join(' ');
      what = `Python ${i.python}, torch ${i.torch}, ${i.threads} thread${i.threads === 1 ? '' : 's'} (torch.set_num_threads), BLAS ${i.blas?.kind ?? '?'}; ${env}`;
    }
    console.log(`  ${c.label.padEnd(width)} ${what}`);
  }
  if (list.some((c) => c.kind === 'torch' && c.info?.blas?.kind === 'reference'))
    console.log('  WARNING: PyTorch runs on the REFERENCE BLAS (Debian\'s libblas3): its matmuls are several times slower than with a tuned one, and every ratio against it flatters graphc (apt-get install libopenblas0-pthread)');
}

function printSummary(results, builds, mlps) {
  section('summary: median ms per training step (ratio to graphc composite)');
  const sizes = Object.keys(results);
  const body = results[sizes[0]].map(({ c }) => [
    c.label,
    ...sizes.flatMap((size) => {
      const r = results[size].find((x) => x.c.id === c.id);
      return [`${fmt.ms(r.ms)} (${fmt.ratio(r.ratio)})`, fmt.gflops(r.gflops), fmt.mb(r.maxRssKb)];
    }),
  ]);
  console.log(indent(table(['contender', ...sizes.flatMap((s) => [`${s} ms/step`, `${s} GFLOP/s`, `${s} peak RSS`])], body)));

  const ms = (size, id) => results[size]?.find((r) => r.c.id === id)?.ms;
  const gflops = (size, id) => results[size]?.find((r) => r.c.id === id)?.gflops;
  const quotient = (a, b) => (a === undefined || b === undefined ? undefined : a / b);
  const mlp1000 = mlps.find((b) => b.layers === 1000);
  const targets = [
    ['S: graphc ≤ 0.5× TF.js wasm', quotient(ms('S', 'composite'), ms('S', 'tfjs-wasm')), (x) => x <= 0.5, fmt.ratio],
    ['S: graphc ≤ 0.1× TF.js cpu', quotient(ms('S', 'composite'), ms('S', 'tfjs-cpu')), (x) => x <= 0.1, fmt.ratio],
    ['L: graphc ≤ 2× TF.js wasm', quotient(ms('L', 'composite'), ms('L', 'tfjs-wasm')), (x) => x <= 2, fmt.ratio],
    ['L: graphc ≥ 1.1 GFLOP/s', gflops('L', 'composite'), (x) => x >= 1.1, (x) => `${fmt.gflops(x)} GFLOP/s`],
    ['L: graphc wasm ≤ 0.5× TF.js wasm', quotient(ms('L', 'wasm'), ms('L', 'tfjs-wasm')), (x) => x <= 0.5, fmt.ratio],
    ...['S', 'L'].flatMap((size) => versusTorch(size, ms)),
    ['S: long-form within 10% of composite', quotient(ms('S', 'long'), ms('S', 'composite')), (x) => Math.abs(x - 1) <= 0.1, fmt.ratio],
    ['L: long-form within 10% of composite', quotient(ms('L', 'long'), ms('L', 'composite')), (x) => Math.abs(x - 1) <= 0.1, fmt.ratio],
    ['S: batch B within 10% of static batch', quotient(ms('S', 'symbolic'), ms('S', 'composite')), (x) => x <= 1.1, fmt.ratio],
    ['makemore (S) build < 1.5 s', builds.long_S?.ms, (x) => x < 1500, fmt.s],
    ['1000-layer MLP build < 20 s', mlp1000?.ok || mlp1000?.timedOut ? mlp1000.ms : undefined, (x) => x < 20_000, (x) => (mlp1000.timedOut ? `> ${fmt.s(x)}` : fmt.s(x))],
  ];
  if (baseline) for (const size of sizes) if (ms(size, 'baseline-wasm')) console.log(`  ${size}: graphc wasm new / baseline (${baseline.label}): ${versusBaseline(ms(size, 'wasm'), ms(size, 'baseline-wasm'))}`);
  section('targets (reported, not enforced)');
  const rows = targets.map(([what, value, pass, show]) => [what, value === undefined ? 'n/a' : show(value), value === undefined ? 'n/a' : pass(value) ? 'PASS' : 'FAIL']);
  console.log(indent(table(['target', 'measured', ''], rows)));
}

/**
 * Issue 30's makemore targets at one size: graphc wasm against PyTorch at equal thread counts (1
 * thread), and graphc wasm on N threads against PyTorch at its best thread count (1 or N, the
 * faster here); undefined (n/a) where a side did not run.
 */
function versusTorch(size, ms) {
  const n = opts.threads;
  const [one, many] = [ms(size, 'torch-1'), ms(size, 'torch-n')];
  const best = many === undefined || one <= many ? { threads: 1, ms: one } : { threads: n, ms: many };
  const its = best.ms === undefined ? 'its best thread count' : `its best, ${best.threads} thread${best.threads === 1 ? '' : 's'}`;
  const quotient = (a, b) => (a === undefined || b === undefined ? undefined : a / b);
  return [
    [`${size}: graphc wasm 1 thread ≤ PyTorch 1 thread`, quotient(ms(size, 'wasm'), one), (x) => x <= 1, fmt.ratio],
    [`${size}: graphc wasm ${n} threads ≤ PyTorch at ${its}`, quotient(ms(size, 'wasm-n'), best.ms), (x) => x <= 1, fmt.ratio],
  ];
}

/** Random valid inputs: context indices and targets in [0, vocab), from a fixed seed. */
function makeInputs({ batch, block, vocab }, seed) {
  const rand = mulberry32(seed);
  const Xb = Int32Array.from({ length: batch * block }, () => Math.floor(rand() * vocab));
  const Yb = Int32Array.from({ length: batch }, () => Math.floor(rand() * vocab));
  return { Xb, Yb };
}

function parseArgs(argv) {
  const o = { sizes: ['S', 'L'], quick: false, rebuild: false, contenders: GROUPS, threads: 2, realistic: ['gpt', 'cnn'], baseline: undefined };
  for (const a of argv) {
    const [k, v] = a.split(/=(.*)/s, 2);
    if (k === '--sizes' && v) o.sizes = v.split(',');
    else if (k === '--contenders' && v) o.contenders = ['composite', ...v.split(',')];
    else if (k === '--quick') o.quick = true;
    else if (k === '--rebuild') o.rebuild = true;
    else if (k === '--threads' && Number.isInteger(Number(v)) && Number(v) >= 2) o.threads = Number(v);
    else if (k === '--realistic' && v) o.realistic = v === 'none' ? [] : v.split(',');
    else if (k === '--baseline' && v) o.baseline = v;
    else usage(`unknown argument ${a}`);
  }
  for (const s of o.sizes) if (!SIZES[s]) usage(`unknown size ${s} (sizes: ${Object.keys(SIZES).join(', ')})`);
  for (const m of o.realistic) if (!['gpt', 'cnn'].includes(m)) usage(`unknown realistic model ${m} (gpt, cnn or none)`);
  for (const c of o.contenders) if (!GROUPS.includes(c)) usage(`unknown contender ${c} (contenders: ${GROUPS.join(', ')})`);
  return o;
}

function usage(msg) {
  console.error(`bench: ${msg}\nusage: npm run bench [-- --sizes=S,L] [--quick] [--contenders=${GROUPS.slice(1).join(',')}] [--rebuild] [--threads=N] [--realistic=gpt,cnn|none] [--baseline=REV]`);
  process.exit(2);
}

/** Other processes on the machine skew the timings: say so when the load average shows them. */
function loadNote(when, ownLoad) {
  const load = os.loadavg()[0];
  if (load > ownLoad + 0.5) console.log(`note: 1-minute load average ${load.toFixed(2)} ${when} (${os.cpus().length} cores): other processes compete for the CPU, timings are noisy`);
}

function section(title) {
  console.log(`\n${title}`);
}

function indent(s) {
  return s.replace(/^/gm, '  ');
}

function firstLine(s) {
  return String(s).split('\n')[0];
}

function kb(bytes) {
  return `${(bytes / 1024).toFixed(0)} KB`;
}
