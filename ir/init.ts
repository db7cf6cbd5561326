// Deterministic parameter initialisation: the reference the generated modules' initParams
// reproduce exactly (codegen/module.ts emits the same function; a test holds them equal).

import { bindShape, staticShape } from './dims.js';
import type { Graph } from './graph.js';
import { numel } from './types.js';

/** FNV-1a of a string: each param's random stream is seeded from (seed, its name). */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const c of new TextEncoder().encode(s)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h;
}

/** Initial values: N(0,1), 0, 1 or U(−1,1), times the scale, from mulberry32 seeded by (seed, salt). */
export function initArray(n: number, init: string, scale: number, seed: number, salt: number): Float32Array {
  const a = new Float32Array(n);
  let state = (Math.imul(seed | 0, 0x9e3779b1) ^ salt) >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = 0; i < n; i++) {
    if (init === 'randn') a[i] = scale * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
    else if (init === 'uniform') a[i] = scale * (2 * next() - 1);
    else a[i] = init === 'ones' ? scale : 0;
  }
  return a;
}


/** The generated module's initParams(seed), computed the same way (see codegen/module.ts). */
export function initialParams(g: Graph, seed: number): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const inst of g.insts) {
    if (inst.op !== 'param') continue;
    out[inst.attrs.name] = initArray(numel(staticShape(g.type(inst.result).shape)), inst.attrs.init, inst.attrs.scale, seed, fnv1a(inst.attrs.name));
  }
  return out;
}


/** The initialisers of torch.nn.init that g.param maps onto 'randn' and 'uniform' with a scale. */
export type FanInit = 'kaimingUniform' | 'kaimingNormal' | 'xavierUniform' | 'xavierNormal';
export const FAN_INITS: readonly FanInit[] = ['kaimingUniform', 'kaimingNormal', 'xavierUniform', 'xavierNormal'];

/**
 * fan_in and fan_out of a param: of a 2-D [in, out] (graphc's x @ W layout) shape[0] and
 * shape[1]; of a conv weight [O, C/groups, ...k] as torch: C/groups·k and O·k.
 */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length === 2) return { fanIn: shape[0]!, fanOut: shape[1]! };
  const field = shape.slice(2).reduce((p, d) => p * d, 1);
  return { fanIn: shape[1]! * field, fanOut: shape[0]! * field };
}

/**
 * torch.nn.init's formulas as N(0, 1) or U(−1, 1) times a scale: kaiming (mode fan_in,
 * nonlinearity leaky_relu with negative slope a) gain √(2/(1 + a²)), std gain/√fan_in, bound
 * √3·std; xavier std gain·√(2/(fan_in + fan_out)), bound √3·std.
 */
export function fanInit(init: FanInit, shape: readonly number[], opts: { gain: number; a: number }): { init: 'randn' | 'uniform'; scale: number } {
  const { fanIn, fanOut } = fans(shape);
  const std = init.startsWith('kaiming') ? Math.sqrt(2 / (1 + opts.a * opts.a)) / Math.sqrt(fanIn) : opts.gain * Math.sqrt(2 / (fanIn + fanOut));
  return init.endsWith('Normal') ? { init: 'randn', scale: std } : { init: 'uniform', scale: Math.sqrt(3) * std };
}

/**
 * The generated module's initBuffers(), computed the same way (codegen/modes.ts): each buffer a
 * running mean of zeros or, named `*.running_var`, a running variance of ones, as torch
 * initialises them. `dims` binds the symbolic dimensions of a buffer's shape.
 */
export function initialBuffers(g: Graph, dims: Readonly<Record<string, number>> = {}): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const inst of g.insts) {
    if (inst.op !== 'buffer') continue;
    const n = numel(bindShape(g.type(inst.result).shape, dims));
    out[inst.attrs.name] = new Float32Array(n).fill(inst.attrs.name.endsWith('.running_var') ? 1 : 0);
  }
  return out;
}
