// The DSL side of PyTorch's layers (issue #31): batchNorm's axis and correction, layerNorm over
// several axes, groupNorm, transposed convolutions, upsampling and adaptive pooling. Argument
// checks with located errors, then composites of existing ops (ir/layers.ts).

import type { Builder } from '../ir/builder.js';
import type { BnAxis } from '../ir/composite.js';
import { CompileError } from '../ir/errors.js';
import { normalizeAxes } from '../ir/shape.js';
import type { ValueId } from '../ir/types.js';
import { describeValue as describe } from '../ir/vocab.js';

/** batchNorm's feature axis (normalised; the last by default) and correction (0 or 1). */
export function bnAxis(b: Builder, x: ValueId, o: { axis?: unknown; correction?: unknown }): BnAxis {
  const rank = b.type(x).shape.length;
  const out: BnAxis = {};
  if (o.axis !== undefined) {
    if (typeof o.axis !== 'number')
      throw new CompileError(`batchNorm: axis must be a number, got ${describe(o.axis)}`, 'the feature axis, e.g. { axis: 1 } for NCHW maps as torch.nn.BatchNorm2d');
    if (rank >= 2 && Number.isInteger(o.axis) && (o.axis === 0 || o.axis === -rank))
      throw new CompileError(
        `batchNorm: axis ${o.axis} is the batch axis of x [${b.type(x).shape.join(', ')}]`,
        'axis names the features (the channels), normalised each over the batch: e.g. { axis: 1 } for [N, C, H, W], or leave it out for the last axis',
      );
    if (rank >= 2) out.axis = normalizeAxes('batchNorm', o.axis, rank)[0]!;
  }
  if (o.correction !== undefined) {
    if (o.correction !== 0 && o.correction !== 1)
      throw new CompileError(
        `batchNorm: correction must be 0 or 1, got ${describe(o.correction)}`,
        "0 divides the variance by n as torch.nn.BatchNorm normalises, 1 (the default) by n − 1 (Bessel's correction, the lecture's)",
      );
    out.correction = o.correction;
  }
  return out;
}
