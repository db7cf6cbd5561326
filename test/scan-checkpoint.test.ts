// g.scan's `checkpoint: k` (issue #32): the carry stored every k steps, each segment's steps
// recomputed by the reverse pass (ir/scan-checkpoint.ts). Gradients against the scan without
// checkpoint, the float64 interpreter, finite differences and the flat and wasm modules; how many
// carries the backward reads; dropout's masks in the recomputation; g.grad and hvp through it.

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { reverseMode } from '../ir/autodiff.js';
import type { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { parseGraph } from '../ir/parse.js';
import { printGraph } from '../ir/print.js';
import type { InstOf } from '../ir/types.js';
import { verify } from '../ir/verify.js';
import { compile, traceFile } from '../src/build.js';
import type { Arrays, GeneratedModule } from './helpers.js';
import { buildAndImport, finiteDiff, modelFile, randomArgs, reference, relErr, tmp } from './helpers.js';

const HEAD = "import { model } from 'graphc';\n";

interface Rnn {
  T: number;
  checkpoint?: number;
  reverse?: boolean;
  axis1?: boolean;
  B?: number;
  H?: number;
}

/** An RNN cell over T steps of xs [T, B, 4] (or [B, T, 4] with axis1), written with g.scan. */
function rnn(o: Rnn): string {
  const B = o.B ?? 3;
  const H = o.H ?? 5;
  const xshape = o.axis1 ? `[${B}, ${o.T}, 4]` : `[${o.T}, ${B}, 4]`;
  const opts = [o.axis1 ? 'axis: 1' : '', o.reverse ? 'reverse: true' : '', o.checkpoint !== undefined ? `checkpoint: ${o.checkpoint}` : ''].filter((s) => s).join(', ');
  return `${HEAD}export default model('rnn', (g) => {
    const xs = g.input('xs', ${xshape});
    const h0 = g.input('h0', [${B}, ${H}]);
    const Wx = g.param('Wx', [4, ${H}], { scale: 0.5 });
    const Wh = g.param('Wh', [${H}, ${H}], { scale: 0.5 });
    const b = g.param('b', [${H}]);
    const step = (h, x) => { const h2 = x.matmul(Wx).add(h.matmul(Wh)).add(b).tanh(); return [h2, h2.mul(h2).sum(1)]; };
    const [hT, ys] = g.scan(step, h0, xs${opts ? `, { ${opts} }` : ''});
    const w = g.const([${[...Array(o.T).keys()].map((t) => ((t * 7) % 5) - 2).join(', ')}]).reshape(${o.axis1 ? `[1, ${o.T}]` : `[${o.T}, 1]`});
    const loss = hT.square().mean().add(ys.mul(w).mean());
    return { loss };
  });\n`;
}

const traced = (src: string): Graph => traceFile(modelFile(src)).traced.graph;
const lossOf = (g: Graph, args: { params: Arrays; inputs: Arrays }): number => outputsOf(g, interpret(g, args)).loss!.data[0]!;

/** The loss's gradients from the interpreter, with the reverse scans themselves (nothing unrolled). */
function scanGrads(g: Graph, args: { params: Arrays; inputs: Arrays }): { fwd: Graph; bwd: Graph; grads: Record<string, Float64Array> } {
  const fwd = g.clone();
  const bwd = reverseMode(fwd);
  verify(fwd);
  verify(bwd);
  return { fwd, bwd, grads: reference(fwd, bwd, args.params, args.inputs).grads };
}

const scans = (g: Graph) => g.insts.filter((i): i is InstOf<'scan'> => i.op === 'scan');

describe('checkpoint: k, in the float64 interpreter', () => {
  for (const variant of [{}, { reverse: true }, { axis1: true }, { reverse: true, axis1: true }])
    for (const k of [1, 2, 3, 7])
      it(`T = 7, k = ${k} ${JSON.stringify(variant)}: the values and gradients of the scan without checkpoint, and finite differences`, () => {
        const plain = traced(rnn({ T: 7, ...variant }));
        const s = traced(rnn({ T: 7, checkpoint: k, ...variant }));
        // k = 1 stores every carry: the plain scan; otherwise segments, and a last one when k ∤ 7
        expect(scans(s).length).toBe(k === 1 ? 1 : k === 7 ? 1 : 2);
        if (k > 1) expect(s.bodies[scans(s)[0]!.attrs.body]!.insts.some((i) => i.op === 'scan')).toBe(true);
        const args = randomArgs(plain, 11 + k, 0.7);
        expect(lossOf(s, args)).toBe(lossOf(plain, args));
        const want = scanGrads(plain, args).grads;
        const { grads } = scanGrads(s, args);
        for (const name of ['Wx', 'Wh', 'b', 'h0', 'xs']) expect(relErr(grads[name] ?? [], want[name] ?? []), name).toBeLessThan(1e-13);
        for (const name of ['Wx', 'Wh', 'b']) expect(Math.abs(grads[name]![1]! - finiteDiff(s, args.params, args.inputs, name, 1)), name).toBeLessThan(1e-7 * Math.max(1, Math.abs(grads[name]![1]!)));
      });
});
