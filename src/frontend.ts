// Traces a loaded model into a forward graph and checks what only the whole model can tell:
// the outputs, the loss, params that never reach the loss.

import { activeInsts, isForwardOnly, lossValue, LOSS } from '../ir/autodiff.js';
import { CompileError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import { dimBindings } from '../ir/dims.js';
import type { Loc, ValueId } from '../ir/types.js';
import { formatType } from '../ir/types.js';
import { checkModelFn, Tensor, Tracer } from './dsl.js';
import type { LoadedModel } from './loader.js';
import { TRACE_TIMEOUT_MS } from './loader.js';
import { defaultExportAt } from './names.js';
import type { Scope } from './scopes.js';
import { ScopeTracker } from './scopes.js';

const MODEL_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export interface Traced {
  readonly graph: Graph;
  /** Param and input names with where they were declared. */
  readonly declared: Tracer['declared'];
  readonly warnings: CompileError[];
  /** With `scopes`: the helper call or loop iteration each instruction (by id) was made in. */
  readonly scopes?: ReadonlyMap<number, Scope>;
}

/** Where the model file default-exports model(...): the location of errors about the whole model. */
export function modelLoc(m: LoadedModel): Loc {
  const file = m.file.split(/[\\/]/).pop()!;
  const at = defaultExportAt(m.file, m.sourceOf(file) ?? '');
  return { file, line: at.line, col: at.col };
}

/** Every symbolic dimension must be bound by the length of some input. */
function checkBindable(g: Graph): void {
  const bound = dimBindings(g);
  for (const inst of g.insts) {
    if (inst.op !== 'input') continue;
    const open = g.type(inst.result).shape.filter((d) => typeof d === 'string' && !bound.has(d));
    if (open.length)
      throw new CompileError(
        `input '${inst.attrs.name}' ${formatType(g.type(inst.result))}: the size of ${[...new Set(open)].join(' and ')} cannot be bound from the inputs' lengths`,
        'a call binds a dimension from an input whose other dimensions are known: declare one where it is the only named dimension (e.g. [\'B\', 3])',
        inst.loc,
      );
  }
}

/** The most elements of a typed array in V8 (Node, Chrome): a larger tensor could not be allocated. */
export const TYPED_ARRAY_MAX = 2 ** 32;

/** Every tensor of static shape must fit a typed array; the generated modules would fail at import. */
function checkSizes(g: Graph): void {
  for (const inst of g.insts) {
    const t = g.type(inst.result);
    if (!t.shape.every((d) => typeof d === 'number')) continue;
    const n = (t.shape as number[]).reduce((a, b) => a * b, 1);
    if (n <= TYPED_ARRAY_MAX) continue;
    const what = inst.op === 'param' || inst.op === 'input' ? `${inst.op} '${(inst.attrs as { name: string }).name}'` : `${inst.op}: the result`;
    throw new CompileError(
      `${what} ${formatType(t)} has ${n.toLocaleString('en-US')} elements, more than a typed array holds (${TYPED_ARRAY_MAX.toLocaleString('en-US')} = 2^32 in V8)`,
      'make it smaller: the generated modules keep every tensor in one Float32Array or Int32Array',
      inst.loc,
    );
  }
}

export function traceModel(m: LoadedModel, opts: { scopes?: boolean } = {}): Traced {
  const name = m.def.name;
  if (typeof name !== 'string' || !MODEL_NAME.test(name))
    throw new CompileError(
      `invalid model name ${JSON.stringify(name)}`,
      'the model name names the output folder and files: use letters, digits, _ and -, starting with a letter',
      modelLoc(m),
    );
  // model(...) has checked it already, unless the def was made another way
  if (typeof m.def.fn !== 'function') checkModelFn(m.def.fn, modelLoc(m));
  const tracer = new Tracer(name, m.sites);
  if (opts.scopes) tracer.scopes = new ScopeTracker((file) => m.sourceOf(file));
  m.loader.lastCall = undefined;
  const result = m.loader.withFrames(() =>
    m.loader.withTimeLimit(m.timeout ?? TRACE_TIMEOUT_MS, `tracing the model '${name}'`, () => modelLoc(m), () => {
      try {
        return m.def.fn(tracer.api());
      } catch (e) {
        throw m.loader.located(e);
      }
    }),
  );
  const g = tracer.graph;
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    (result as unknown as Promise<unknown>).then(undefined, () => undefined); // its rejection is not reported
    throw new CompileError(
      'the model function returned a Promise (is it async?): the model is traced synchronously, so it cannot await',
      'remove async (and every await) from the model function; load data before model(...) with synchronous calls, or pass it as an input',
      modelLoc(m),
    );
  }
  const outputs: [string, unknown][] = result instanceof Tensor ? [[LOSS, result]] : result && typeof result === 'object' && !Array.isArray(result) ? Object.entries(result) : [];
  if (outputs.length === 0)
    throw new CompileError(
      `the model function returned no tensors: it returned ${returnedText(result)}`,
      'return the scalar loss, or an object such as { loss, probs }',
      modelLoc(m),
    );
  for (const [key, t] of outputs) {
    if (!(t instanceof Tensor))
      throw new CompileError(`the model output '${key}' is not a tensor: it is ${returnedText(t)}`, 'return tensors made by g (e.g. { loss, probs }); make a number a tensor with g.const(...)', modelLoc(m));
    if (key === LOSS && t.dtype === 'i32')
      throw new CompileError(
        `the loss must be an f32 scalar, but it is ${formatType(tracer.graph.type(t.id))}: an i32 tensor holds indices, and has no gradient`,
        'compute the loss from f32 values, e.g. g.crossEntropy(logits, labels) with the i32 labels as targets',
        tracer.graph.def(t.id).loc ?? modelLoc(m),
      );
    g.outputs.push({ name: key, value: tracer.operand(t) });
  }
  // the next running statistics: outputs named after their buffers, which the modules copy back
  for (const u of tracer.bufferUpdates) {
    if (outputs.some(([key]) => key === u.name))
      throw new CompileError(
        `the model output '${u.name}' has the name of a batchNorm buffer`,
        'rename the output: the names <name>.running_mean and <name>.running_var are the running statistics',
        modelLoc(m),
      );
    g.outputs.push(u);
  }
  // no output named loss: a forward-only model (forward, no gradient), else the loss is checked
  const forwardOnly = isForwardOnly(g);
  if (forwardOnly) checkForwardOnly(g, outputs.map(([key]) => key));
  else
    try {
      lossValue(g);
    } catch (e) {
      if (e instanceof CompileError) e.withLoc(modelLoc(m));
      throw e;
    }
  g.numberTemps();
  checkBindable(g);
  checkSizes(g);

  const warnings: CompileError[] = [];
  if (forwardOnly) {
    // a forward-only model: a param that no output reads changes nothing
    const read = readBy(g, g.outputs.map((o) => o.value));
    for (const inst of g.insts)
      if (inst.op === 'param' && !read.has(inst.result))
        warnings.push(new CompileError(`param '${inst.attrs.name}' reaches no output of the model; it changes nothing`, 'use it on the way to an output, or remove it', inst.loc, 'warning'));
    return { graph: g, declared: tracer.declared, warnings, ...(tracer.scopes ? { scopes: tracer.scopeOf } : {}) };
  }
  const active = activeInsts(g);
  const read = readByLoss(g);
  for (const inst of g.insts)
    if (inst.op === 'param' && inst.attrs.frozen !== true && !active.has(inst.result))
      warnings.push(
        read.has(inst.result)
          ? new CompileError(
              `param '${inst.attrs.name}' reaches the loss only through stopGradient (or ops with no gradient); its gradient is always zero`,
              'remove the stopGradient on its way to the loss if it should learn, or ignore this warning if it is frozen on purpose',
              inst.loc,
              'warning',
            )
          : new CompileError(
              `param '${inst.attrs.name}' does not reach the loss; its gradient is always zero`,
              'use it on the way to the loss, remove it, or ignore this warning if that is intended',
              inst.loc,
              'warning',
            ),
      );
  return { graph: g, declared: tracer.declared, warnings, ...(tracer.scopes ? { scopes: tracer.scopeOf } : {}) };
}

/** A forward-only model has no loss to differentiate: an input declared { grad: true } cannot get a gradient. */
function checkForwardOnly(g: Graph, outputs: readonly string[]): void {
  for (const inst of g.insts)
    if (inst.op === 'input' && inst.attrs.grad === true)
      throw new CompileError(
        `input '${inst.attrs.name}' is declared { grad: true }, but the model returns no loss (its outputs: ${outputs.join(', ')}): a forward-only model has no gradient`,
        "return the scalar loss as { loss, ... } to get the input's gradient from valueAndGrad, or drop { grad: true }",
        inst.loc,
      );
}

/** What a model function returned instead of tensors, for the message. */
function returnedText(v: unknown): string {
  if (v === undefined) return 'undefined (no return statement?)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}${v.some((x) => x instanceof Tensor) ? ' (outputs need names)' : ''}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'object') return 'an object with no entries';
  return `the ${typeof v} ${String(v)}`;
}

/** The values the loss is computed from, gradient or not. */
function readByLoss(g: Graph): Set<ValueId> {
  return readBy(g, [lossValue(g)]);
}

/** The values that `outs` are computed from, gradient or not. */
function readBy(g: Graph, outs: readonly ValueId[]): Set<ValueId> {
  const read = new Set<ValueId>(outs);
  for (let i = g.insts.length - 1; i >= 0; i--) {
    const inst = g.insts[i]!;
    if (read.has(inst.result)) for (const a of inst.args) read.add(a);
  }
  return read;
}
