// `graphc export --torch`: the forward graph (after the forward passes, so that softmax,
// cross-entropy and the normalisations are torch's own functions, and before the reverse pass, so
// that g.customGrad is still one instruction; a model with g.grad is lowered as traced, each call
// torch.autograd.grad) as one self-contained Python file: a
// torch.nn.Module whose forward is one line per IR instruction, with the DSL line as a comment.
// torch's autograd computes the gradients. The params' values travel in the file as an embedded
// safetensors checkpoint (graphc's names), read by the same code as `load_safetensors`.

import { isBufferOutput } from '../../codegen/modes.js';
import { CompileError } from '../../ir/errors.js';
import type { CustomRule, Graph } from '../../ir/graph.js';
import type { Dim } from '../../ir/dims.js';
import type { OpKind } from '../../ir/ops.js';
import type { Inst, Loc, ValueId } from '../../ir/types.js';
import { numel } from '../../ir/types.js';
import { encodeSafetensors } from '../io.js';
import type { LowerCtx } from './lower.js';
import { LOWER, PRELUDE, pyNum } from './lower.js';
import { moduleMethods } from './module.js';

export interface TorchExportOptions {
  /** Param values by DSL name (every param must be given). */
  readonly params: Readonly<Record<string, Float32Array>>;
  /** Running statistics by buffer name; torch's initial values (0, 1) where absent. */
  readonly buffers?: Readonly<Record<string, Float32Array>>;
  /** Where the model came from (the header comment). */
  readonly source?: string;
}

const KEYWORDS = new Set(
  ('False None True and as assert async await break class continue def del elif else except finally for from global if import in is ' +
    'lambda nonlocal not or pass raise return try while with yield match case self torch inputs dev json base64 os ctx dy ' +
    '_conv2d _vjp _max_pool_pick _argmax_mask _track _grad _GRAPHC_CHECKPOINT').split(' '),
);

/** Python names: identifiers, distinct, no keyword (a taken name gets a numbered suffix). */
export class Names {
  private readonly taken = new Set<string>();
  constructor(reserved: Iterable<string> = []) {
    for (const r of reserved) this.taken.add(r);
  }
  fresh(base: string): string {
    let b = base.replace(/[^A-Za-z0-9_]/g, '_');
    if (!/^[A-Za-z_]/.test(b)) b = `_${b}`;
    let n = b;
    for (let k = 1; this.taken.has(n) || KEYWORDS.has(n); k++) n = `${b}_${k}`;
    this.taken.add(n);
    return n;
  }
}

/** A Python string literal. */
export const pyStr = (s: string) => JSON.stringify(s);

function locComment(loc: Loc | undefined): string {
  if (!loc) return '';
  const at = `${loc.file.split('/').pop()}:${loc.line}`;
  if (loc.via) return `  # ${at} (${loc.grad ?? ''}' of g.grad at ${loc.via.file.split('/').pop()}:${loc.via.line})`;
  return loc.grad ? `  # ${at} (${loc.grad}')` : `  # ${at}`;
}

/** A const's values as a torch tensor on `dev`. */
function constExpr(g: Graph, inst: Inst & { op: 'const' }): string {
  const t = g.type(inst.result);
  const dt = t.dtype === 'f32' ? 'torch.float32' : 'torch.int32';
  const data = inst.attrs.data;
  const num = (x: number) => (t.dtype === 'f32' ? pyNum(x) : String(x));
  const shape = t.shape as number[];
  if (shape.length === 0) return `torch.tensor(${num(data[0] ?? 0)}, dtype=${dt}, device=dev)`;
  if (data.length >= 1 && data.every((x) => Object.is(x, data[0])) && (data.length === 1 || data.length === numel(shape)) && numel(shape) !== 1) return `torch.full(${tupleOf(shape)}, ${num(data[0]!)}, dtype=${dt}, device=dev)`;
  return `torch.tensor([${data.map(num).join(', ')}], dtype=${dt}, device=dev).reshape(${tupleOf(shape)})`;
}

const tupleOf = (xs: readonly (string | number)[]) => (xs.length === 1 ? `(${xs[0]},)` : `(${xs.join(', ')})`);

interface Emitter {
  /** Python name of each value in scope. */
  readonly py: Map<ValueId, string>;
  readonly names: Names;
  /** Symbol → Python name, or undefined where symbols are not in scope (custom backward). */
  readonly dims: Map<string, string> | undefined;
  readonly lines: string[];
  readonly indent: string;
  readonly inBackward: boolean;
}

/** One line per instruction: `name = expr  # model.ts:12`. */
function emitInst(g: Graph, inst: Inst, e: Emitter, ctxBase: Omit<LowerCtx, 'inst' | 'arg' | 'shape' | 'dim'>, valueName: (v: ValueId) => string): void {
  const name = e.names.fresh(valueName(inst.result));
  let expr: string;
  if (inst.op === 'const') expr = constExpr(g, inst);
  else {
    const rule = LOWER[inst.op as OpKind] as ((c: LowerCtx) => string) | null;
    if (rule === null || (e.inBackward && (inst.op === 'mode' || inst.op === 'dropout_mask' || inst.op === 'param' || inst.op === 'input' || inst.op === 'buffer')))
      throw new CompileError(`export --torch: the op '${inst.op}' cannot be exported to PyTorch${e.inBackward ? ' inside a custom gradient' : ''}`, 'export a model whose forward graph has only forward ops').withLoc(inst.loc);
    const dim = (sym: string): string => {
      // a product dimension (B*64, the rows of a flattened matmul): the product of its factors
      if (sym.includes('*')) return `(${sym.split('*').map((f) => (/^[0-9]+$/.test(f) ? f : dim(f))).join(' * ')})`;
      const d = e.dims?.get(sym);
      if (!d) throw new CompileError(`export --torch: the dimension ${sym} is not known here${e.inBackward ? ' (inside a custom gradient)' : ''}`, 'give the tensor static sizes').withLoc(inst.loc);
      return d;
    };
    const ctx: LowerCtx = {
      ...ctxBase,
      inst,
      arg: (i) => {
        const v = e.py.get(inst.args[i]!);
        if (v === undefined) throw new Error(`internal: export --torch: operand ${i} of ${inst.op} has no name`);
        return v;
      },
      dim,
      shape: (shape: readonly Dim[]) => tupleOf(shape.map((d) => (typeof d === 'number' ? d : dim(d)))),
    };
    try {
      expr = rule(ctx);
    } catch (err) {
      throw err instanceof CompileError ? err.withLoc(inst.loc) : err;
    }
  }
  e.py.set(inst.result, name);
  e.lines.push(`${e.indent}${name} = ${expr}${locComment(inst.loc)}`);
}

/** The Python class of a custom gradient: forward returns the forward's value, backward is the traced rule. */
function customClass(g: Graph, cls: string, inst: Inst & { op: 'custom_grad' }, rule: CustomRule, ctxBase: Omit<LowerCtx, 'inst' | 'arg' | 'shape' | 'dim'>): string[] {
  const names = new Names(['y']);
  const py = new Map<ValueId, string>();
  // the rule's temporaries are not numbered yet: t, t_1, ... in this scope
  const valueName = (v: ValueId) => {
    const rv = rule.values.get(v) ?? g.value(v);
    return rv.name && !rv.temp ? rv.name : 't';
  };
  const argNames = rule.args.map((a, k) => {
    const n = k === 0 ? 'y' : names.fresh(g.value(a).name); // a value of the forward graph
    if (!py.has(a)) py.set(a, n);
    return n;
  });
  if (!py.has(rule.y)) py.set(rule.y, 'y');
  py.set(rule.seed, 'dy');
  const lines = [
    `class ${cls}(torch.autograd.Function):`,
    `    """g.customGrad${rule.loc ? ` at ${rule.loc.file.split('/').pop()}:${rule.loc.line}` : ''}: the forward's value; the backward is the traced backward."""`,
    '',
    '    @staticmethod',
    `    def forward(ctx, ${argNames.join(', ')}):`,
    `        ctx.save_for_backward(${argNames.join(', ')})`,
    '        return y.clone()',
    '',
    '    @staticmethod',
    '    def backward(ctx, dy):',
    `        ${argNames.join(', ')}${argNames.length === 1 ? ',' : ''} = ctx.saved_tensors`,
    '        dev = dy.device',
  ];
  const e: Emitter = { py, names, dims: undefined, lines, indent: '        ', inBackward: true };
  for (const r of rule.insts) emitInst(g, r, e, ctxBase, valueName);
  const dxs = rule.args.map((_a, k) => {
    if (k === 0 || k > inst.attrs.inputs) return 'None';
    const d = rule.dxs[k - 1];
    return d === undefined ? 'None' : py.get(d) ?? 'None';
  });
  lines.push(`        return ${dxs.join(', ')}`);
  return lines;
}

/**
 * The values forward needs: the outputs, and what they read, where a g.grad result reads its call's
 * y and xs (torch.autograd.grad) instead of the instructions of graphc's reverse pass.
 */
function liveValues(g: Graph, dxOf: ReadonlyMap<number, number>): Set<number> {
  const live = new Set(g.outputs.map((o) => o.value.index));
  for (let i = g.insts.length - 1; i >= 0; i--) {
    const inst = g.insts[i]!;
    if (!live.has(inst.result.index)) continue;
    const k = dxOf.get(inst.result.index);
    const reads = k === undefined ? inst.args : [g.gradCalls[k]!.y, ...g.gradCalls[k]!.xs];
    for (const a of reads) live.add(a.index);
  }
  return live;
}

/** The params and buffers: attributes of the module (Python identifiers mapped from graphc's names) and their values. */
function moduleState(g: Graph, opts: TorchExportOptions) {
  // params and buffers: attributes of the module, Python identifiers mapped from graphc's names
  const attrNames = new Names(['training', 'forward', 'load_safetensors', 'save_safetensors', 'GRAPHC_NAMES', 'GRAPHC_PARAMS', 'GRAPHC_BUFFERS']);
  const attrs = new Map<string, string>();
  const params: { name: string; shape: number[]; frozen?: boolean }[] = [];
  const buffers: { name: string; shape: number[] }[] = [];
  const checkpoint: Record<string, { data: Float32Array; shape: number[] }> = {};
  for (const inst of g.insts) {
    if (inst.op !== 'param' && inst.op !== 'buffer') continue;
    const shape = g.type(inst.result).shape;
    if (!shape.every((d) => typeof d === 'number')) throw new CompileError(`export --torch: ${inst.op} '${inst.attrs.name}' has a symbolic shape`, 'give params static shapes').withLoc(inst.loc);
    const s = shape as number[];
    attrs.set(inst.attrs.name, attrNames.fresh(inst.attrs.name));
    const n = numel(s);
    let data: Float32Array | undefined;
    if (inst.op === 'param') {
      params.push({ name: inst.attrs.name, shape: s, ...(inst.attrs.frozen ? { frozen: true } : {}) });
      data = opts.params[inst.attrs.name];
      if (!data) throw new CompileError(`export --torch: no value for param '${inst.attrs.name}'`, 'pass every param').withLoc(inst.loc);
    } else {
      buffers.push({ name: inst.attrs.name, shape: s });
      data = opts.buffers?.[inst.attrs.name] ?? new Float32Array(n).fill(inst.attrs.name.endsWith('.running_var') ? 1 : 0);
    }
    if (data.length !== n)
      throw new CompileError(`export --torch: ${inst.op} '${inst.attrs.name}' has ${data.length} values, but f32[${s.join(',')}] needs ${n}`, `pass values of the ${inst.op}'s size`).withLoc(inst.loc);
    checkpoint[inst.attrs.name] = { data, shape: s };
  }
  return { attrs, params, buffers, checkpoint };
}

/** The forward graph as a Python module defining `class <name>(torch.nn.Module)`. */
export function exportTorch(g: Graph, opts: TorchExportOptions): string {
  const classNames = new Names(['GRAPHC_NAMES', 'GRAPHC_PARAMS', 'GRAPHC_BUFFERS', '_GRAPHC_CHECKPOINT', '_conv2d', '_vjp', '_max_pool_pick', '_argmax_mask', '_track', '_grad']);
  const cls = classNames.fresh(g.name);
  const { attrs, params, buffers, checkpoint } = moduleState(g, opts);
  // the custom gradients' classes
  const ruleClass = new Map<number, string>();
  const ctxBase = {
    g,
    attr: (n: string) => `self.${attrs.get(n)!}`,
    customClass: (rule: number) => {
      const c = ruleClass.get(rule);
      if (!c) throw new Error(`internal: export --torch: no class for custom gradient rule ${rule}`);
      return c;
    },
  };
  const classes: string[] = [];
  for (const inst of g.insts) {
    if (inst.op !== 'custom_grad' || ruleClass.has(inst.attrs.rule)) continue;
    const rule = g.rules[inst.attrs.rule];
    if (!rule) throw new Error(`internal: no custom gradient rule #${inst.attrs.rule}`);
    const c = classNames.fresh(`_CustomGrad${ruleClass.size}`);
    ruleClass.set(inst.attrs.rule, c);
    classes.push(...customClass(g, c, inst, rule, ctxBase), '', '');
  }
  // forward: symbols bound from the inputs' shapes, then one line per instruction
  const names = new Names();
  const py = new Map<ValueId, string>();
  const dims = new Map<string, string>();
  const body: string[] = ['        dev = self._device()'];
  for (const inst of g.insts)
    if (inst.op === 'input')
      g.type(inst.result).shape.forEach((d, axis) => {
        if (typeof d === 'string' && !dims.has(d)) {
          const n = names.fresh(`dim_${d}`);
          dims.set(d, n);
          body.push(`        ${n} = inputs[${pyStr(inst.attrs.name)}].shape[${axis}]`);
        }
      });
  const e: Emitter = { py, names, dims, lines: body, indent: '        ', inBackward: false };
  const valueName = (v: ValueId) => g.value(v).name;
  // g.grad calls: torch.autograd.grad in place of the reverse pass that graphc traced (which is
  // then dead code, and dropped); their xs that are inputs are tracked by autograd
  const calls = g.gradCalls;
  const dxOf = new Map<number, number>();
  calls.forEach((c, k) => c.dxs.forEach((d) => dxOf.set(d.index, k)));
  const tracked = new Set(calls.flatMap((c) => c.xs.map((x) => x.index)));
  const live = liveValues(g, dxOf);
  const called = new Set<number>();
  for (const inst of g.insts) {
    if (inst.op === 'input' || inst.op === 'param' || inst.op === 'buffer') {
      const n = names.fresh(valueName(inst.result));
      py.set(inst.result, n);
      let src = inst.op === 'input' ? `inputs[${pyStr(inst.attrs.name)}]` : `self.${attrs.get(inst.attrs.name)!}`;
      if (inst.op === 'input' && tracked.has(inst.result.index)) src = `_track(${src})`;
      body.push(`        ${n} = ${src}${locComment(inst.loc)}`);
      continue;
    }
    if (!live.has(inst.result.index)) continue;
    const k = dxOf.get(inst.result.index);
    if (k === undefined) {
      emitInst(g, inst, e, ctxBase, valueName);
      continue;
    }
    if (called.has(k)) continue;
    called.add(k);
    const c = calls[k]!;
    const outs = c.dxs.map((d) => {
      const n = names.fresh(valueName(d));
      py.set(d, n);
      return n;
    });
    const at = c.loc ? `  # ${c.loc.file.split('/').pop()}:${c.loc.line} g.grad` : '';
    body.push(`        ${outs.join(', ')}${outs.length === 1 ? ',' : ''} = _grad(${py.get(c.y)!}, [${c.xs.map((x) => py.get(x)!).join(', ')}])${at}`);
  }
  // training: the running statistics move to their next values
  const nexts = g.outputs.filter((o) => isBufferOutput(g, o.name));
  if (nexts.length) {
    body.push('        if self.training:', '            with torch.no_grad():');
    for (const o of nexts) body.push(`                self.${attrs.get(o.name)!}.copy_(${py.get(o.value)!})`);
  }
  const outs = g.outputs.filter((o) => !isBufferOutput(g, o.name));
  body.push(`        return {${outs.map((o) => `${pyStr(o.name)}: ${py.get(o.value)!}`).join(', ')}}`);

  const blob = Buffer.from(encodeSafetensors(checkpoint)).toString('base64');
  const mapping = [...attrs].map(([k, v]) => `${pyStr(k)}: ${pyStr(v)}`).join(', ');
  return [
    `# generated by graphc${opts.source ? ` from ${opts.source}` : ''} (graphc export --torch), do not edit.`,
    `# ${cls}: the model as a torch.nn.Module. forward(**inputs) returns its outputs (${outs.some((o) => o.name === 'loss') ? 'the loss included' : 'a forward-only model: no loss'});`,
    '# torch autograd computes the gradients. train()/eval() switch dropout and batchnorm as graphc\'s',
    '# training and evaluation calls; dropout masks come from torch\'s generator (they differ from',
    '# graphc\'s). load_safetensors/save_safetensors read and write graphc\'s checkpoints (its names).',
    '# Imports torch and the standard library only.',
    'import base64',
    'import json',
    'import os',
    '',
    'import torch',
    '',
    '',
    PRELUDE,
    '',
    ...classes,
    `class ${cls}(torch.nn.Module):`,
    `    """graphc model '${g.name}'${opts.source ? ` (${opts.source})` : ''}."""`,
    '',
    '    # graphc name -> attribute name (names that are not Python identifiers are mapped)',
    `    GRAPHC_NAMES = {${mapping}}`,
    `    GRAPHC_PARAMS = [${params.map((p) => pyStr(p.name)).join(', ')}]`,
    `    GRAPHC_BUFFERS = [${buffers.map((p) => pyStr(p.name)).join(', ')}]`,
    '',
    '    def __init__(self):',
    '        super().__init__()',
    ...params.map((p) => `        self.${attrs.get(p.name)!} = torch.nn.Parameter(torch.empty(${tupleOf(p.shape)})${p.frozen ? ', requires_grad=False' : ''})${p.frozen ? '  # trainable: false' : ''}`),
    ...buffers.map((b) => `        self.register_buffer(${pyStr(attrs.get(b.name)!)}, torch.empty(${tupleOf(b.shape)}))`),
    '        self._safetensors_metadata = None',
    '        self._load_bytes(base64.b64decode(_GRAPHC_CHECKPOINT), "the exported values")',
    '        self._safetensors_metadata = None',
    '',
    '    def forward(self, **inputs):',
    ...body,
    '',
    ...moduleMethods(),
    '',
    `# the values the module starts from (a safetensors file): ${opts.source ?? ''} params${buffers.length ? ' and buffers' : ''}`,
    `_GRAPHC_CHECKPOINT = "${blob}"`,
    '',
  ].join('\n');
}
