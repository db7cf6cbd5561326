// trainStep on the device for the WebGPU module (placeholder until the update kernels land).

import { CompileError } from '../../ir/errors.js';
import type { HostProgram, Step } from '../kernel/form.js';
import type { ModuleInfo, Typed } from '../module.js';

export interface TrainInfo {
  readonly stages: readonly Extract<Step, { kind: 'stage' }>[];
  readonly gradReads: readonly (readonly [string, string])[];
  readonly syms: readonly string[];
}

export function webgpuTrain(m: ModuleInfo, _t: Typed, _prog: HostProgram, _info: TrainInfo): string[] {
  if (!m.optimizer) return [];
  throw new CompileError(`the webgpu target has no trainStep for --optimizer ${m.optimizer.name} yet`, 'build without --optimizer for the webgpu target, or use the ts, wasm or gpu target');
}
