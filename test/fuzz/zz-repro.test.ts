// TEMPORARY debugging harness (to be deleted)
import { it } from 'vitest';
import { readFileSync } from 'node:fs';
import { buildAndImport, finiteDiff, modelFile, randomArgs, reference, relErr } from '../helpers.js';
import { printGraph } from '../../ir/print.js';
import { loadModel } from '../../src/loader.js';
import { traceModel } from '../../src/frontend.js';
import { interpret, outputsOf } from '../../ir/interp.js';

it('repro', async () => {
  const src = readFileSync(process.env.REPRO!, 'utf8');
  const file = modelFile(src);
  const seed = Number(process.env.SEED ?? 1);
  const { c, mod } = await buildAndImport(file);
  const traced = traceModel(loadModel(file)).graph;
  if (process.env.SHOW) { console.log(printGraph(traced)); console.log(printGraph(c.fwd)); console.log(printGraph(c.bwd)); }
  const { params, inputs } = randomArgs(traced, seed);
  const ref = reference(c.fwd, c.bwd, params, inputs);
  const tl = outputsOf(traced, interpret(traced, { params, inputs })).loss!.data[0];
  const got = mod.valueAndGrad(params, inputs);
  console.log('loss gen', got.loss, 'ref', ref.outputs.loss!.data[0], 'traced', tl);
  for (const [k, p] of Object.entries(params)) {
    const fd = Array.from(p, (_, i) => finiteDiff(traced, params, inputs, k, i));
    console.log(k, 'gen', Array.from(got.grads[k]!).map(x=>x.toFixed(5)).join(' '));
    console.log(k, 'ref', Array.from(ref.grads[k]!).map(x=>x.toFixed(5)).join(' '));
    console.log(k, 'fd ', fd.map(x=>x.toFixed(5)).join(' '), 'relErr gen/ref', relErr(got.grads[k]!, ref.grads[k]!), 'ref/fd', relErr(ref.grads[k]!, fd));
  }
});
