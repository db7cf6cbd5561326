// The public entry point: what model files import from 'graphc'.
export { model, Tensor } from './dsl.js';
export type { Dim } from '../ir/dims.js';
export type {
  Axis,
  BatchNormOptions,
  BceOptions,
  ClassLossOptions,
  ConvTranspose1dOptions,
  ConvTranspose2dOptions,
  CosineSimilarityOptions,
  DType,
  GraphBuilder,
  GroupNormOptions,
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
  TensorLike,
  UpsampleOptions,
  VarianceOptions,
} from './dsl.js';
