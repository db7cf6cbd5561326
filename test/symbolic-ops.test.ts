// Every op family with a symbolic dimension flowing through it (test/symbolic-cases.ts): one
// build per model, called at several sizes of B (and T), the first two again at the end (the
// arrays laid out for a larger size are reused); each call's outputs, loss and gradients against
// the float64 interpreter, and the GPU.js module (cpu mode) against the flat module at two
// sizes. The forms graphc does not support fail to build with their message.

import { describe, expect, it } from 'vitest';
import { CompileError } from '../ir/errors.js';
import { CASES } from './symbolic-cases.js';
import type { Arrays } from './helpers.js';
import { buildBoth, gradTolerance, modelFile, randomArgs, reference, relErr } from './helpers.js';

function source(name: string, body: string): string {
  return `import { model } from 'graphc';\nexport default model('${name}', (g) => {${body.replaceAll('BB', "'B'").replaceAll('TT', "'T'")}\n});\n`;
}

const copy = (v: number | Float32Array) => (typeof v === 'number' ? [v] : Float32Array.from(v));

describe.each(CASES.filter((c) => !c.error).map((c) => [c.name, c] as const))('symbolic %s', (name, cs) => {
  it('agrees with the float64 interpreter at every size; the GPU.js module agrees with the flat one', async () => {
    const { c, flat, gpu } = await buildBoth(modelFile(source(`sym_${name}`, cs.body)));
    const args = (B: number, T: number | undefined, seed: number): { params: Arrays; inputs: Arrays } => {
      const dims: Record<string, number> = T === undefined ? { B } : { B, T };
      const a = randomArgs(c.fwd, seed, 0.5, dims);
      cs.fix?.(a.inputs, dims);
      return a;
    };
    const Bs = cs.Bs ?? [1, 2, 5, 33];
    for (const T of cs.T ?? [undefined])
      for (const [k, B] of [...Bs, Bs[0]!, Bs[1] ?? Bs[0]!].entries()) {
        const at = `B = ${B}${T === undefined ? '' : `, T = ${T}`}`;
        const { params, inputs } = args(B, T, 1000 * B + (T ?? 0) + k);
        const ref = reference(c.fwd, c.bwd, params, inputs);
        const outs = flat.forward(params, inputs);
        for (const [o, v] of Object.entries(ref.outputs)) expect(relErr(copy(outs[o]!), v.data), `${at}: output ${o}`).toBeLessThan(1e-4);
        const { loss, grads } = flat.valueAndGrad(params, inputs);
        expect(relErr([loss], ref.outputs.loss!.data), `${at}: loss`).toBeLessThan(1e-4);
        let ref32: Record<string, Float64Array> | undefined;
        for (const [p, g] of Object.entries(ref.grads)) {
          const err = relErr(grads[p]!, g);
          const f32 = () => (ref32 ??= reference(c.fwd, c.bwd, params, inputs, { float32: true }).grads)[p]!;
          expect(err, `${at}: d loss / d ${p}`).toBeLessThan(gradTolerance(g, f32, err));
        }
      }
    if (cs.gpu === false) return;
    const model = await gpu.create({ mode: 'cpu' });
    try {
      for (const B of [Bs[0]!, Bs.includes(5) ? 5 : Bs[1]!, Bs[0]!]) {
        const { params, inputs } = args(B, cs.T ? 3 : undefined, 77 + B);
        const want = flat.valueAndGrad(params, inputs);
        const wantLoss = want.loss;
        const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
        const got = await model.valueAndGrad(params, inputs);
        expect(relErr([got.loss], [wantLoss]), `GPU.js, B = ${B}: loss`).toBeLessThan(1e-4);
        for (const [p, g] of Object.entries(wantGrads)) expect(relErr(got.grads[p]!, g), `GPU.js, B = ${B}: d loss / d ${p}`).toBeLessThan(1e-4);
      }
    } finally {
      model.destroy();
    }
  });
});

describe('symbolic forms graphc does not support', () => {
  it.each(CASES.filter((c) => c.error).map((c) => [c.name, c] as const))('%s: a build error', async (name, cs) => {
    const err = await buildBoth(modelFile(source(`sym_${name}`, cs.body))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CompileError);
    expect((err as CompileError).message).toBe(cs.error);
  });
});
