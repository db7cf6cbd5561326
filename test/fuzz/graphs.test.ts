// Property: for random well-typed models (random shapes of rank 0–3 with NumPy broadcasting,
// fan-out, sum/mean/max over random axes with keepDims, 2-D and batched matmul, transpose and
// reshape, gather/pick/oneHot with i32 index inputs, concat, softmax/logSoftmax/crossEntropy/
// batchNorm/hingeLoss, conv1d/conv2d (strides, padding, dilation, groups, bias) and max/avg
// pools, the lecture's long forms of them (which the rewrite pass fuses) and near
// misses, constants, awkward value names), written as DSL source ending in
// loss = Σ_leaves Σ(leaf · R) with a random input R per unused value, the compiled module agrees
// with the float64 reference interpreter, and the interpreter's gradients agree with central
// finite differences of the model as traced. Values are kept in safe domains (log, sqrt and pow
// of x² + 0.5, |x| + 0.5 or sigmoid(x); division by x² + 0.5; large values squashed by tanh).
//
// Oracles, per model (test/fuzz/oracle.ts):
//  (a) generated module vs the interpreter on the optimised forward/backward IR: the loss within
//      1e-5 of Σ|leaf·R| (float32 summation cannot do better where the terms cancel), every
//      param gradient and the extra output within relErr 1e-4. A gradient beyond 1e-4 passes
//      only if an interpreter that rounds every value to float32 is off by at least a tenth as
//      much (float32 ill-conditioning, e.g. batchnorm over 2 rows); how often is printed.
//  (b) interpreter gradients vs central finite differences (helpers.finiteDiff) of the *traced*,
//      unoptimised forward graph at 3 coordinates per param, relErr ≤ 1e-5; the traced and the
//      optimised forward graphs also give the same loss in float64. stopGradient is accounted
//      for exactly: finite differences run on the traced graph with every stop_gradient replaced
//      by the constant it holds. Kinks (relu, abs, maximum, minimum, max-reductions) are handled
//      honestly: a coordinate is skipped when x ± h straddles a kink (a kink argument changes
//      sign, or an argmax moves, between x − h, x and x + h), and the module-vs-interpreter
//      gradients are not compared when a kink argument lies within 1e-5 of its kink; both
//      counts are printed.
//  (c) the traced, optimised forward and backward IR (with fused groups) print and parse back to
//      the same text, and so do the .ir files the build writes.
//  (d) the wasm module (--target wasm: matmuls as WebAssembly SIMD kernels) agrees with the flat
//      module: loss within 1e-5 of the scale above, gradients and the extra output within 1e-4
//      (or, where float32 conditioning explains it, the allowance of (a) against the interpreter).
//
// FUZZ_SCALE=k runs k times as many models, FUZZ_SEED=k shifts the seeds,
// FUZZ_NO_SHRINK=1 reports the first failure unshrunk, FUZZ_COLLECT=file logs every failure to
// the file instead of stopping (triage), FUZZ_SHOW=1 prints which ops were covered.

import { appendFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Choices, choicesArb, ModelGen } from './gen.js';
import { checkModel, stats } from './oracle.js';

/** Runs the check, adding the model source to any failure. */
async function checkGenerated(xs: number[], seed: number, opts: { maxOps: number; stopGradient: boolean; scan?: boolean }): Promise<void> {
  const c = new Choices(xs);
  const gen = new ModelGen(c, { ops: c.range(1, opts.maxOps), stopGradient: opts.stopGradient, scan: opts.scan });
  const { text, extra } = gen.source();
  try {
    await checkModel(text, seed, extra);
  } catch (e) {
    const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    if (process.env.FUZZ_COLLECT) {
      // triage mode: log every failure instead of stopping at the first
      appendFileSync(process.env.FUZZ_COLLECT, `=== ${msg.split('\n')[0]}\n--- model (data seed ${seed}) ---\n${text}\n`);
      return;
    }
    throw new Error(`${msg}\n--- model (data seed ${seed}) ---\n${text}`);
  }
}

/** FUZZ_SCALE=k multiplies the number of runs (default 1); FUZZ_NO_SHRINK=1 reports the first failure as found. */
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
/** FUZZ_SEED=k shifts every seed (to explore beyond the fixed CI runs). */
const seed = (s: number) => s + Number(process.env.FUZZ_SEED ?? 0);
const endOnFailure = process.env.FUZZ_NO_SHRINK === '1';
/** Each property's time limit grows with its number of runs (about 0.3 s a model, 2 cores). */
const timeout = 120_000 * Math.max(1, SCALE);

describe('fuzz: random well-typed models', () => {
  it('compiled loss, outputs and gradients match the float64 interpreter, whose gradients match finite differences (no stopGradient)', async () => {
    await fc.assert(
      fc.asyncProperty(choicesArb(), fc.integer({ min: 1, max: 1 << 30 }), (xs, seed) => checkGenerated(xs, seed, { maxOps: 8, stopGradient: false })),
      { seed: seed(42), numRuns: runs(50), endOnFailure },
    );
  }, timeout);

  it('the same with g.scan (the flat and wasm modules run them as loops; the traced reverse scans give their gradients)', async () => {
    const before = stats.scans;
    const ckBefore = stats.checkpointed;
    await fc.assert(
      fc.asyncProperty(choicesArb(), fc.integer({ min: 1, max: 1 << 30 }), (xs, seed) => checkGenerated(xs, seed, { maxOps: 8, stopGradient: false, scan: true })),
      { seed: seed(4343), numRuns: runs(12), endOnFailure },
    );
    console.log(`graphs fuzz: ${stats.scans - before} models with g.scan, ${stats.checkpointed - ckBefore} of them checkpointed`);
    if (!endOnFailure && SCALE >= 1) expect(stats.scans - before).toBeGreaterThan(3);
  }, timeout);

  it('the same with stopGradient (finite differences on the graph with stopped values frozen) and bigger models', async () => {
    await fc.assert(
      fc.asyncProperty(choicesArb(600), fc.integer({ min: 1, max: 1 << 30 }), (xs, seed) => checkGenerated(xs, seed, { maxOps: 16, stopGradient: true })),
      { seed: seed(4242), numRuns: runs(20), endOnFailure },
    );
    console.log(
      `graphs fuzz: ${stats.graphs} models (build ${(stats.msBuild / 1000).toFixed(1)} s, checks ${(stats.msChecks / 1000).toFixed(1)} s), ${stats.fdChecked} finite-difference coordinates checked, ${stats.fdSkippedKink} skipped (x±h straddles a kink), ` +
        `${stats.gradSkippedNearKink} models with a kink argument within 1e-5 (generated-vs-interpreter gradients not compared), ` +
        `${stats.illConditioned} gradients beyond 1e-4 but within 10× the float32-rounding interpreter's error; ` +
        `wasm modules: SIMD kernels ${['matmul', 'elementwise', 'reduce', 'rowreduce', 'softmax', 'conv', 'conv_input_grad', 'conv_weight_grad', 'max_pool', 'avg_pool', 'max_pool_grad', 'avg_pool_grad', 'channel'].map((k) => `${k} ${stats.wasmKernels.get(k) ?? 0}`).join(', ')}; ${stats.wasmIllConditioned} gradients beyond 1e-4 of the flat module's (allowed as above)`,
    );
    if (process.env.FUZZ_SHOW) console.log(`ops (traced, and opt: optimised): ${[...stats.ops.entries()].sort().map(([k, n]) => `${k}:${n}`).join(' ')}`);
  }, timeout);
});
