// The ONNX checker's rules that can be checked without ONNX itself (onnx/checker.cc's model,
// graph, node, tensor and attribute checks), over the bytes of a model read back: the opset
// import, typed inputs and outputs, initializers whose data fits their type, every name defined
// once (SSA) and before its use (topological order), and each node against the schema of its
// operator at opset 17: its number of inputs and outputs, and its attributes' names and types.

import type { DecodedModel } from './proto.js';
import { AT, DT, decodeModel } from './proto.js';

interface Schema {
  readonly inputs: readonly [number, number];
  /** Attribute types; `!` marks a required one. */
  readonly attrs?: Readonly<Record<string, string>>;
}

const ELEMENTWISE: Schema = { inputs: [1, 1] };
const BINARY: Schema = { inputs: [2, 2] };

/** The operators an exported model uses, as their opset-17 schemas declare them. */
export const SCHEMAS: Readonly<Record<string, Schema>> = {
  Identity: ELEMENTWISE,
  Neg: ELEMENTWISE,
  Exp: ELEMENTWISE,
  Log: ELEMENTWISE,
  Tanh: ELEMENTWISE,
  Sigmoid: ELEMENTWISE,
  Relu: ELEMENTWISE,
  Sqrt: ELEMENTWISE,
  Abs: ELEMENTWISE,
  Sin: ELEMENTWISE,
  Cos: ELEMENTWISE,
  Erf: ELEMENTWISE,
  Add: BINARY,
  Sub: BINARY,
  Mul: BINARY,
  Div: BINARY,
  Pow: BINARY,
  Greater: BINARY,
  GreaterOrEqual: BINARY,
  Equal: BINARY,
  Less: BINARY,
  MatMul: BINARY,
  Max: { inputs: [1, Infinity] },
  Min: { inputs: [1, Infinity] },
  Cast: { inputs: [1, 1], attrs: { to: 'INT!', saturate: 'INT' } },
  ReduceSum: { inputs: [1, 2], attrs: { keepdims: 'INT', noop_with_empty_axes: 'INT' } },
  ReduceMax: { inputs: [1, 1], attrs: { axes: 'INTS', keepdims: 'INT' } },
  ReduceMean: { inputs: [1, 1], attrs: { axes: 'INTS', keepdims: 'INT' } },
  Transpose: { inputs: [1, 1], attrs: { perm: 'INTS' } },
  Reshape: { inputs: [2, 2], attrs: { allowzero: 'INT' } },
  Expand: BINARY,
  Concat: { inputs: [1, Infinity], attrs: { axis: 'INT!' } },
  Slice: { inputs: [3, 5] },
  Pad: { inputs: [2, 4], attrs: { mode: 'STRING' } },
  Gather: { inputs: [2, 2], attrs: { axis: 'INT' } },
  GatherElements: { inputs: [2, 2], attrs: { axis: 'INT' } },
  Unsqueeze: BINARY,
  Squeeze: { inputs: [1, 2] },
  Shape: { inputs: [1, 1], attrs: { start: 'INT', end: 'INT' } },
  Softmax: { inputs: [1, 1], attrs: { axis: 'INT' } },
  LogSoftmax: { inputs: [1, 1], attrs: { axis: 'INT' } },
  LayerNormalization: { inputs: [2, 3], attrs: { axis: 'INT', epsilon: 'FLOAT', stash_type: 'INT' } },
  BatchNormalization: { inputs: [5, 5], attrs: { epsilon: 'FLOAT', momentum: 'FLOAT', training_mode: 'INT' } },
  Where: { inputs: [3, 3] },
  ArgMax: { inputs: [1, 1], attrs: { axis: 'INT', keepdims: 'INT', select_last_index: 'INT' } },
  ArgMin: { inputs: [1, 1], attrs: { axis: 'INT', keepdims: 'INT', select_last_index: 'INT' } },
  CumSum: { inputs: [2, 2], attrs: { exclusive: 'INT', reverse: 'INT' } },
  Range: { inputs: [3, 3] },
  Conv: { inputs: [2, 3], attrs: { auto_pad: 'STRING', dilations: 'INTS', group: 'INT', kernel_shape: 'INTS', pads: 'INTS', strides: 'INTS' } },
  MaxPool: {
    inputs: [1, 1],
    attrs: { auto_pad: 'STRING', ceil_mode: 'INT', dilations: 'INTS', kernel_shape: 'INTS!', pads: 'INTS', storage_order: 'INT', strides: 'INTS' },
  },
  AveragePool: {
    inputs: [1, 1],
    attrs: { auto_pad: 'STRING', ceil_mode: 'INT', count_include_pad: 'INT', kernel_shape: 'INTS!', pads: 'INTS', strides: 'INTS' },
  },
};

const ATTR_TYPE: Record<number, string> = Object.fromEntries(Object.entries(AT).map(([k, v]) => [v, k]));
const ELEM_BYTES: Record<number, number> = { [DT.FLOAT]: 4, [DT.INT32]: 4, [DT.INT64]: 8, [DT.BOOL]: 1 };

/** Every rule the model breaks, as one line each (empty when it passes). */
export function checkModel(bytes: Uint8Array): string[] {
  let m: DecodedModel;
  try {
    m = decodeModel(bytes);
  } catch (e) {
    return [`not a ModelProto: ${(e as Error).message}`];
  }
  const errs: string[] = [];
  if (m.irVersion < 3 || m.irVersion > 8) errs.push(`ir_version ${m.irVersion}: opset 17 models are IR version 8 or earlier (3 or later for initializers outside the inputs)`);
  const def = m.opsetImports.filter((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (def.length !== 1) errs.push(`the model must import the default domain once, imports ${JSON.stringify(m.opsetImports)}`);
  else if (def[0]!.version < 17) errs.push(`opset ${def[0]!.version}: LayerNormalization needs 17 or later`);
  if (!m.graphName) errs.push('the graph has no name');
  const defined = new Set<string>();
  const define = (name: string, what: string) => {
    if (!name) errs.push(`${what} has an empty name`);
    else if (defined.has(name)) errs.push(`'${name}' is defined twice (graph inputs, initializers and node outputs must be distinct: SSA); the second time by ${what}`);
    defined.add(name);
  };
  for (const v of [...m.inputs, ...m.outputs]) {
    if (v.elemType !== DT.FLOAT && v.elemType !== DT.INT32 && v.elemType !== DT.INT64) errs.push(`value '${v.name}' has no tensor elem_type`);
    for (const d of v.dims) if (typeof d === 'number' ? !(Number.isInteger(d) && d >= 0) : d === '') errs.push(`value '${v.name}' has an invalid dimension ${JSON.stringify(d)}`);
  }
  for (const v of m.inputs) define(v.name, `graph input '${v.name}'`);
  const inputNames = new Set(m.inputs.map((v) => v.name));
  for (const t of m.initializers) {
    if (!inputNames.has(t.name)) define(t.name, `initializer '${t.name}'`);
    const size = ELEM_BYTES[t.dataType];
    if (size === undefined) errs.push(`initializer '${t.name}' has data_type ${t.dataType}, not one this exporter writes`);
    else if (t.raw.length !== size * t.dims.reduce((a, b) => a * b, 1)) errs.push(`initializer '${t.name}': raw_data is ${t.raw.length} bytes, dims [${t.dims.join(', ')}] need ${size * t.dims.reduce((a, b) => a * b, 1)}`);
    if (t.dims.some((d) => !Number.isInteger(d) || d < 0)) errs.push(`initializer '${t.name}' has a negative dimension`);
  }
  const nodeNames = new Set<string>();
  m.nodes.forEach((n, k) => {
    const where = `node ${k} (${n.opType} '${n.name}')`;
    if (n.name) {
      if (nodeNames.has(n.name)) errs.push(`${where}: node names must be unique`);
      nodeNames.add(n.name);
    }
    const s = SCHEMAS[n.opType];
    if (!s) {
      errs.push(`${where}: no operator ${n.opType} in the default domain at opset 17 (as this checker knows it)`);
      for (const o of n.outputs) define(o, where); // so that its readers are not reported too
      return;
    }
    if (n.inputs.length < s.inputs[0] || n.inputs.length > s.inputs[1]) errs.push(`${where}: takes ${s.inputs[0]}${s.inputs[1] === Infinity ? ' or more' : s.inputs[1] !== s.inputs[0] ? `–${s.inputs[1]}` : ''} inputs, has ${n.inputs.length}`);
    if (n.outputs.length !== 1) errs.push(`${where}: has ${n.outputs.length} outputs, its schema 1`);
    for (const i of n.inputs) if (i !== '' && !defined.has(i)) errs.push(`${where}: input '${i}' is not a graph input, an initializer or the output of an earlier node (nodes must be topologically sorted)`);
    const types = m.attrTypes[k]!;
    for (const [a, t] of Object.entries(types)) {
      const want = s.attrs?.[a]?.replace('!', '');
      if (!want) errs.push(`${where}: unknown attribute '${a}'`);
      else if (ATTR_TYPE[t] !== want) errs.push(`${where}: attribute '${a}' is ${ATTR_TYPE[t] ?? `type ${t}`}, its schema says ${want}`);
    }
    for (const [a, t] of Object.entries(s.attrs ?? {})) if (t.endsWith('!') && !(a in types)) errs.push(`${where}: the required attribute '${a}' is missing`);
    for (const o of n.outputs) define(o, where);
  });
  for (const o of m.outputs) if (!defined.has(o.name)) errs.push(`graph output '${o.name}' is not computed by any node`);
  return errs;
}
