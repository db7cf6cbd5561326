// `graphc export MODEL --torch FILE [--params FILE]`: the model's forward graph, after the forward
// passes, as a Python file defining a torch.nn.Module, with the params (and running statistics)
// from a values file or initParams(0) embedded as its starting values.

import { initialParams } from '../../ir/init.js';
import { runPasses } from '../../ir/passes.js';
import { FORWARD_PASSES, LOOP_PASSES } from '../../ir/pipeline.js';
import { displaySource, traceFile } from '../build.js';
import type { ValuesFile } from '../values.js';
import { withValues } from '../values.js';
import { checkMissing } from '../onnx/export.js';
import { exportTorch } from './export.js';

export { exportTorch } from './export.js';
export { LOWER } from './lower.js';

export async function exportTorchFile(file: string, opts: { params?: ValuesFile; allowMissing?: boolean; warn?: (message: string) => void } = {}): Promise<{ name: string; source: string; sources: string[] }> {
  const { model, traced } = traceFile(file);
  const g = traced.graph;
  // the forward passes fuse softmax, cross-entropy and the normalisations into torch's functions;
  // a model with g.grad is lowered as traced (the calls' records name values the passes rewrite)
  // no torch loop yet: a scan exports as its steps
  runPasses(g, LOOP_PASSES, { keep: new Set() });
  if (g.gradCalls.length === 0) runPasses(g, FORWARD_PASSES, { keep: new Set() });
  // a params file must hold every param and buffer (else a usage error; --allow-missing: warnings)
  if (opts.params) checkMissing(g, opts.params.file, Object.keys(opts.params.values), opts);
  const values = withValues(g, 'param', initialParams(g, 0), opts.params);
  const isBuffer = new Set(g.insts.flatMap((i) => (i.op === 'buffer' ? [i.attrs.name] : [])));
  const pick = (keep: boolean) => Object.fromEntries(Object.entries(values).filter(([k]) => isBuffer.has(k) === keep));
  return { name: g.name, sources: model.loader.loadedFiles(), source: exportTorch(g, { params: pick(false), buffers: pick(true), source: displaySource(file) }) };
}
