// The pass pipelines: flat, named lists. `runPasses` verifies before and after each pass.

import type { Pass } from './passes.js';
import { runPasses, cse, dce, factorReductions, flattenMatmuls, foldTransposes, rematerialize, reuseForward, simplify } from './passes.js';
import { fuse } from './fusion.js';
import { concatPads } from './concat-pads.js';
import { fuseComposites } from './rewrite.js';
import { unrollScans } from './scan.js';
import { dropCustomGrads } from './autodiff.js';
import { bodyHasState } from './loops.js';

/**
 * The forward passes run over each scan's region too, as a graph of its own (its inputs and its
 * results stay), before the graph around it: a step's softmax or cross-entropy is fused as outside.
 */
const scanBodies: Pass = {
  name: 'scan-bodies',
  run(g) {
    for (const inst of g.insts) if (inst.op === 'scan') runPasses(g.bodies[inst.attrs.body]!, FORWARD_PASSES, { keep: new Set() });
  },
};

/** Forward IR, before the reverse pass. */
export const FORWARD_PASSES: readonly Pass[] = [scanBodies, simplify, foldTransposes, flattenMatmuls, fuseComposites, cse, dce];

/** Backward IR, right after the reverse pass (the context names the forward graph). */
export const BACKWARD_PASSES: readonly Pass[] = [simplify, foldTransposes, factorReductions, concatPads, cse, reuseForward, cse, rematerialize, cse, dce];

/**
 * Both graphs, right after the reverse pass: the targets run no loops yet, so every scan (and the
 * reverse scan of its gradient) becomes its steps (ir/scan.ts); the backward passes then see them.
 */
export const LOOP_PASSES: readonly Pass[] = [{ name: 'unroll-scans', run: (g, ctx) => unrollScans(g, ctx.forward) }];

/**
 * LOOP_PASSES of the targets that run loops (the flat and wasm modules; ir/loops.ts): only the
 * scans whose step draws dropout masks or reads module state unroll, the others stay.
 */
export const KEPT_LOOP_PASSES: readonly Pass[] = [{ name: 'unroll-stateful-scans', run: (g, ctx) => unrollScans(g, ctx.forward, (s) => bodyHasState(g, s)) }];

/**
 * The schedule of each kept scan's body (nested bodies first): custom-gradient markers go, the
 * forward passes (the reverse scan's body is the reverse pass's output) and concat-pads (an LSTM's
 * gate gradients), then fusion.
 */
export const loopBodies: Pass = {
  name: 'loop-bodies',
  run(g) {
    for (const inst of g.insts) {
      if (inst.op !== 'scan') continue;
      const body = g.bodies[inst.attrs.body]!;
      dropCustomGrads(body);
      runPasses(body, [...FORWARD_PASSES.slice(1), concatPads, loopBodies, dce, fuse], { keep: new Set() });
    }
  },
};

/** Both graphs, once the backward graph exists: forward values it no longer reads go, then fusion. */
export const SCHEDULE_PASSES: readonly Pass[] = [dce, fuse, loopBodies];
