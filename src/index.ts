// The public entry point: what model files import from 'graphc'.
export { model, Tensor } from './dsl.js';
export type { Dim } from '../ir/dims.js';
export type {
  Axis,
  BatchNormOptions,
  DType,
  GraphBuilder,
  LayerNormOptions,
  ModelDef,
  ModelFn,
  ModelOutputs,
  NestedNumbers,
  ParamOptions,
  TensorLike,
} from './dsl.js';
