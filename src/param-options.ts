// g.param's training options (trainable, weightDecay, lrScale), checked where the param is
// declared, as the param instruction's attributes (frozen, weightDecay, lrScale) that autodiff
// (a frozen param has no gradient) and the training step (codegen/optim.ts paramGroups) read.

import { CompileError } from '../ir/errors.js';
import type { ParamOptions } from './dsl.js';
import { checkOptionKeys } from './options.js';

const PARAM_OPTIONS: readonly string[] = ['init', 'gain', 'a', 'scale', 'trainable', 'weightDecay', 'lrScale'];

/** g.param's training options, checked, as the param's attributes. */
export function trainOptions(name: string, o: ParamOptions, describe: (x: unknown) => string): { frozen?: true; weightDecay?: number; lrScale?: number } {
  checkOptionKeys(`param '${name}'`, 'g.param', o, PARAM_OPTIONS);
  const { trainable, weightDecay, lrScale } = o;
  if (trainable !== undefined && typeof trainable !== 'boolean')
    throw new CompileError(`param '${name}': trainable must be true or false, got ${describe(trainable)}`, `e.g. g.param('${name}', shape, { trainable: false }) for a frozen param`);
  if (weightDecay !== undefined && (typeof weightDecay !== 'number' || !Number.isFinite(weightDecay) || weightDecay < 0))
    throw new CompileError(`param '${name}': weightDecay must be a finite number ≥ 0, got ${describe(weightDecay)}`, `e.g. { weightDecay: 0 } for no weight decay, or { weightDecay: 0.1 }`);
  if (lrScale !== undefined && (typeof lrScale !== 'number' || !Number.isFinite(lrScale) || lrScale < 0))
    throw new CompileError(`param '${name}': lrScale must be a finite number ≥ 0, got ${describe(lrScale)}`, `it multiplies the param's learning rate, e.g. { lrScale: 0.1 }; freeze a param with { trainable: false }`);
  if (trainable === false && (weightDecay !== undefined || lrScale !== undefined))
    throw new CompileError(
      `param '${name}': a frozen param (trainable: false) has no update, so its ${weightDecay !== undefined ? 'weightDecay' : 'lrScale'} does nothing`,
      'remove the option, or make the param trainable',
    );
  return { ...(trainable === false ? { frozen: true as const } : {}), ...(weightDecay !== undefined ? { weightDecay } : {}), ...(lrScale !== undefined ? { lrScale } : {}) };
}
