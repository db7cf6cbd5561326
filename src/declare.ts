// g.input, g.param and g.const, traced: their checks and the instruction each emits (the name
// already declared by the tracer, inside its t.call).

import { CompileError } from '../ir/errors.js';
import { FAN_INITS } from '../ir/init.js';
import type { ValueId } from '../ir/types.js';
import { checkShape, describe, flatten } from './dsl-args.js';
import type { GraphBuilder, ParamInit, Tracer } from './dsl.js';
import * as IX from './indexops.js';
import { optionsOf } from './options.js';
import { trainOptions } from './param-options.js';
import * as DV from './vocab.js';

const INITS: readonly ParamInit[] = ['randn', 'zeros', 'ones', 'uniform', ...FAN_INITS];

type Args<K extends 'input' | 'param' | 'const'> = Parameters<GraphBuilder[K]>;

export function input(t: Tracer, n: string, shape: Args<'input'>[1], dtype: NonNullable<Args<'input'>[2]>, options: NonNullable<Args<'input'>[3]>): ValueId {
  const s = checkShape('input', shape, { symbols: true });
  for (const d of s) if (typeof d === 'string') t.graph.reserveName(d);
  if (dtype !== 'f32' && dtype !== 'i32')
    throw new CompileError(`input: dtype must be 'f32' or 'i32', got ${describe(dtype)}`, "use 'f32' for data and 'i32' for indices and labels");
  optionsOf('input', 'g.input', options, ['grad'], "g.input('x', [1, 28, 28], 'f32', { grad: true })");
  if (options.grad !== undefined && typeof options.grad !== 'boolean')
    throw new CompileError(`input: grad must be true or false, got ${describe(options.grad)}`, "e.g. g.input('x', [1, 28, 28], 'f32', { grad: true })");
  if (options.grad && dtype !== 'f32')
    throw new CompileError(`input: '${n}' is ${dtype}, which has no gradient`, "ask for the gradient of an f32 input; i32 inputs hold indices and labels");
  return t.b.input(n, { dtype, shape: s }, { raw: n }, options.grad === true);
}

export function param(t: Tracer, n: string, shape: Args<'param'>[1], options: NonNullable<Args<'param'>[2]>): ValueId {
  const s = checkShape('param', shape) as number[];
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new CompileError(`param '${n}': the options must be an object, got ${describe(options)}`, `e.g. g.param('${n}', shape, { init: 'zeros', lrScale: 0.1 })`);
  const init = options.init ?? 'randn';
  const scale = options.scale ?? 1;
  if (!INITS.includes(init))
    throw new CompileError(`param: unknown init ${describe(init)}`, `use one of ${INITS.map((i) => `'${i}'`).join(', ')}`);
  if (typeof scale !== 'number' || !Number.isFinite(scale))
    throw new CompileError(`param: scale must be a finite number, got ${describe(scale)}`, 'e.g. { scale: 0.1 }');
  const train = trainOptions(n, options, describe);
  const i = DV.paramInit(init, s, options, scale);
  return t.b.param(n, s, i.init, i.scale, { raw: n }, train);
}

export function constant(t: Tracer, value: Args<'const'>[0], dtype: NonNullable<Args<'const'>[1]>): ValueId {
  const { data, shape } = flatten(value);
  if (!data.every((x) => typeof x === 'number'))
    throw new CompileError('const: every element must be a number', 'pass e.g. 0.5 or [[1, 2], [3, 4]]');
  return IX.constant(t.b, data, shape, dtype);
}
