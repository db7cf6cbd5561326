// `graphc export MODEL --onnx FILE [--params FILE]`: the model's forward graph, after the forward
// passes (so that softmax, layer norm, batchnorm and cross-entropy are recognised), with the
// params from a values file (which must hold them all, unless allowMissing) or initParams(0), as
// ONNX bytes checked by the checker's rules.

import { initialParams } from '../../ir/init.js';
import { runPasses } from '../../ir/passes.js';
import { FORWARD_PASSES, LOOP_PASSES } from '../../ir/pipeline.js';
import type { Graph } from '../../ir/graph.js';
import { displaySource, traceFile } from '../build.js';
import type { ValuesFile } from '../values.js';
import { withValues } from '../values.js';
import { checkModel } from './check.js';
import { checkMissing, exportOnnx } from './export.js';
import type { Model } from './proto.js';
import { encodeModel } from './proto.js';

export { checkModel } from './check.js';
export { exportOnnx, OPSET } from './export.js';
export { decodeModel, encodeModel } from './proto.js';

export interface Exported {
  readonly name: string;
  readonly graph: Graph;
  readonly model: Model;
  readonly bytes: Uint8Array;
  /** Every source file of the model (the output must not overwrite one). */
  readonly sources: string[];
}

export async function exportFile(file: string, opts: { params?: ValuesFile; allowMissing?: boolean; warn?: (message: string) => void } = {}): Promise<Exported> {
  const { model: loaded, traced } = traceFile(file);
  const g = traced.graph;
  // no ONNX Loop yet: a scan exports as its steps
  runPasses(g, LOOP_PASSES, { keep: new Set() });
  runPasses(g, FORWARD_PASSES, { keep: new Set() });
  // a params file must hold every param and buffer (else a usage error; --allow-missing: warnings)
  if (opts.params) checkMissing(g, opts.params.file, Object.keys(opts.params.values), opts);
  const values = withValues(g, 'param', initialParams(g, 0), opts.params);
  const isBuffer = new Set(g.insts.flatMap((i) => (i.op === 'buffer' ? [i.attrs.name] : [])));
  const pick = (keep: boolean) => Object.fromEntries(Object.entries(values).filter(([k]) => isBuffer.has(k) === keep));
  const model = exportOnnx(g, { params: pick(false), buffers: pick(true), source: displaySource(file) });
  const bytes = encodeModel(model);
  const errs = checkModel(bytes);
  if (errs.length) throw new Error(`graphc export: internal error, the exported model breaks the ONNX checker's rules (please report it):\n  ${errs.join('\n  ')}`);
  return { name: g.name, graph: g, model, bytes, sources: loaded.loader.loadedFiles() };
}
