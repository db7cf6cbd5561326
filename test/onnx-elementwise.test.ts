// `graphc export --onnx` of issue #31's elementwise primitives and the composites built on them
// (sin, cos, erf, log1p, expm1, gelu both ways, softplus, logSigmoid, BCE with logits): run by
// ONNX Runtime against the float64 interpreter, element by element, small values and tails
// included. Opset 17 has Sin, Cos and Erf; log1p and expm1 are written with Goldberg's and Kahan's
// forms (src/onnx/export.ts), which keep the digits that Log(1 + x) and Exp(x) − 1 lose.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { interpret, outputsOf } from '../ir/interp.js';
import { compileGraphs } from '../src/build.js';
import { checkModel } from '../src/onnx/check.js';
import { exportFile } from '../src/onnx/index.js';
import { modelFile, tmp } from './helpers.js';

ort.env.wasm.numThreads = 1;

/** −4 … 4 in steps of 1/16, ±10⁻ᵏ, and the tails of softplus (±17, ±20, ±40). */
const X = Float32Array.from([
  ...Array.from({ length: 129 }, (_x, i) => -4 + i / 16),
  ...Array.from({ length: 12 }, (_x, k) => 10 ** -(k + 1)),
  ...Array.from({ length: 12 }, (_x, k) => -(10 ** -(k + 1))),
  17, -17, 20, -20, 40, -40,
]);
const N = X.length;
const T = Float32Array.from(X, (_x, i) => i % 2);

const SOURCE = `import { model } from 'graphc';
export default model('elementwise', (g) => {
  const x = g.input('x', [${N}]);
  const t = g.input('t', [${N}]);
  return {
    sin: x.sin(),
    cos: x.cos(),
    erf: x.erf(),
    log1p: x.log1p(),
    expm1: x.expm1(),
    gelu: x.gelu(),
    geluTanh: x.gelu('tanh'),
    softplus: x.softplus(),
    logSigmoid: x.logSigmoid(),
    bce: g.binaryCrossEntropyWithLogits(x, t, { reduction: 'none' }),
  };
});
`;

/**
 * Per output: the largest error allowed, relative to |want| (or absolute where the value crosses
 * 0 between grid points: sin and cos, whose float32 argument is not the decimal one; and relative
 * to |x| for gelu, whose ½·x·(1 + erf(x/√2)) cancels in its left tail in float32, as torch's).
 */
const TOL: Record<string, { rel?: number; abs?: number; ofX?: number }> = {
  sin: { abs: 3e-7 },
  cos: { abs: 3e-7 },
  erf: { rel: 1e-6 },
  log1p: { rel: 4e-7 },
  expm1: { rel: 4e-7 },
  gelu: { rel: 2e-6, ofX: 1e-6 },
  geluTanh: { rel: 2e-6, ofX: 1e-6 },
  softplus: { rel: 1e-6 },
  logSigmoid: { rel: 1e-6 },
  bce: { rel: 1e-6 },
};

const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import onnx.checker'], { encoding: 'utf8' }).status === 0);

describe('ONNX export of the elementwise primitives', () => {
  it('runs in ONNX Runtime within a few float32 roundings of the float64 interpreter, small values and tails included', async () => {
    const file = modelFile(SOURCE, 'elementwise.ts');
    const { bytes, model } = await exportFile(file);
    expect(checkModel(bytes)).toEqual([]);
    const ops = new Set(model.nodes.map((n) => n.opType));
    for (const op of ['Sin', 'Cos', 'Erf']) expect(ops.has(op), op).toBe(true);
    const { fwd } = compileGraphs(file);
    const want = outputsOf(fwd, interpret(fwd, { inputs: { x: X, t: T } }));
    const session = await ort.InferenceSession.create(bytes);
    const got = await session.run({ x: new ort.Tensor('float32', X, [N]), t: new ort.Tensor('float32', T, [N]) });
    await session.release();
    for (const [name, tol] of Object.entries(TOL)) {
      const g = got[name]!.data as Float32Array;
      const w = want[name]!.data;
      for (let i = 0; i < N; i++) {
        if (!Number.isFinite(w[i]!)) {
          expect(g[i], `${name}(${X[i]})`).toBe(w[i]);
          continue;
        }
        const bound = tol.abs ?? Math.max(tol.rel! * Math.abs(w[i]!), (tol.ofX ?? 0) * Math.abs(X[i]!));
        expect(Math.abs(g[i]! - w[i]!), `${name}(${X[i]}): ${g[i]}, want ${w[i]}`).toBeLessThanOrEqual(bound);
      }
    }
    if (python) {
      const out = path.join(tmp(), 'elementwise.onnx');
      writeFileSync(out, bytes);
      const r = spawnSync(python, ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', out], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });
});
