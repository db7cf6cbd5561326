// The public entry point: what model files import from 'graphc'.
export { model, Tensor } from './dsl.js';
export type { Dim } from '../ir/dims.js';
export type {
  Axis,
  BatchNormOptions,
  BceOptions,
  ClassLossOptions,
  CosineSimilarityOptions,
  DType,
  GraphBuilder,
  HuberLossOptions,
  LayerNormOptions,
  ModelDef,
  ModelFn,
  ModelOutputs,
  NestedNumbers,
  NormalizeOptions,
  ParamInit,
  ParamOptions,
  ReductionOptions,
  ScanOptions,
  ScanTree,
  TensorLike,
  VarianceOptions,
} from './dsl.js';
