// The pass pipelines: flat, named lists. `runPasses` verifies before and after each pass.

import type { Pass } from './passes.js';
import { runPasses, cse, dce, factorReductions, flattenMatmuls, foldTransposes, reuseForward, simplify } from './passes.js';
import { fuse } from './fusion.js';
import { fuseComposites } from './rewrite.js';
import { unrollScans } from './scan.js';

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
export const BACKWARD_PASSES: readonly Pass[] = [simplify, foldTransposes, factorReductions, cse, reuseForward, cse, dce];

/**
 * Both graphs, right after the reverse pass: the targets run no loops yet, so every scan (and the
 * reverse scan of its gradient) becomes its steps (ir/scan.ts); the backward passes then see them.
 */
export const LOOP_PASSES: readonly Pass[] = [{ name: 'unroll-scans', run: (g, ctx) => unrollScans(g, ctx.forward) }];

/** Both graphs, once the backward graph exists: forward values it no longer reads go, then fusion. */
export const SCHEDULE_PASSES: readonly Pass[] = [dce, fuse];
