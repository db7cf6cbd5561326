// The backward pass `rematerialize` (ir/passes.ts): a forward value that one add, sub, mul or neg
// of values the backward reads anyway (or of constants) computes is recomputed in the backward,
// and the forward no longer stores it. The GELU of GPT-2 (its tanh form) stored ½h and 1 + tanh u
// beside h and tanh u for its gradient.

import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compile } from '../src/build.js';
import type { Graph } from '../ir/graph.js';
import type { Inst } from '../ir/types.js';
import type { GeneratedModule } from './helpers.js';
import { finiteDiff, MODEL_HEAD, modelFile, randomArgs, reference, relErr, tmp } from './helpers.js';

const GELU = `${MODEL_HEAD}
export default model('gelu', (g) => {
  const x = g.input('x', [4, 8]);
  const W = g.param('W', [8, 16]);
  const h = x.matmul(W);
  const u = h.add(h.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
  const y = h.mul(0.5).mul(u.tanh().add(1));
  return y.square().mean();
});
`;

/** The forward instruction a backward `fwd` read reads. */
const readOf = (fwd: Graph, read: Inst): Inst => fwd.def(fwd.byName((read.attrs as { name: string }).name)!.id);

describe('rematerialize', () => {
  it('the GELU backward recomputes ½h and 1 + tanh u from h and tanh u; the forward stores neither; its gradients are the finite differences\'', async () => {
    const c = await compile(modelFile(GELU), { targets: ['ts', 'wasm'] });
    const reads = c.bwd.insts.filter((i) => i.op === 'fwd');
    const defs = reads.map((r) => readOf(c.fwd, r));
    // what the backward reads: x, h, tanh u and y (for the square's gradient; y = ½h · (1 + tanh u), whose operands it does not read)
    expect(reads.map((r) => (r.attrs as { name: string }).name).sort()).toEqual(['h', 't9', 'x', 'y']);
    expect(defs.map((d) => d.op).sort()).toEqual(['input', 'matmul', 'mul', 'tanh']);
    // the forward's ½h and 1 + tanh u: computed in its fused group, no array of their own
    const tanh = c.fwd.insts.find((i) => i.op === 'tanh')!;
    const h = c.fwd.insts.find((i) => i.op === 'matmul')!;
    const half = c.fwd.insts.find((i) => i.op === 'mul' && i.args[0] === h.result)!;
    const onePlus = c.fwd.insts.find((i) => i.op === 'add' && i.args[0] === tanh.result)!;
    for (const v of [half, onePlus]) expect(c.plan.storage.get(c.fwd.value(v.result).name)?.kind, c.fwd.value(v.result).name).not.toBe('buffer');
    // the backward computes them: a mul of h by ½ and an add of tanh u and 1
    const bwdOps = c.bwd.insts.filter((i) => (i.op === 'mul' || i.op === 'add') && i.args.some((a) => c.bwd.def(a).op === 'fwd' && ['matmul', 'tanh'].includes(readOf(c.fwd, c.bwd.def(a)).op)));
    expect(bwdOps.length).toBeGreaterThanOrEqual(2);

    // the gradient: the float64 interpreter of these graphs, the flat and the wasm modules, and finite differences of the forward
    const { params, inputs } = randomArgs(c.fwd, 3, 0.5);
    const ref = reference(c.fwd, c.bwd, params, inputs);
    for (let i = 0; i < 128; i += 17) expect(Math.abs(finiteDiff(c.fwd, params, inputs, 'W', i) - ref.grads.W![i]!), `dW[${i}]`).toBeLessThan(1e-8 + 1e-6 * Math.abs(ref.grads.W![i]!));
    const dir = tmp();
    for (const f of c.files) writeFileSync(path.join(dir, f.name), f.content);
    for (const file of ['gelu.js', 'gelu.wasm.js']) {
      const mod = (await import(pathToFileURL(path.join(dir, file)).href)) as GeneratedModule;
      expect(relErr(mod.valueAndGrad(params, inputs).grads.W!, ref.grads.W!), file).toBeLessThan(1e-5);
    }
  });
});
