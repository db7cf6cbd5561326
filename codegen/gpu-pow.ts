// a ** b in the shaders of the GPU.js module (issue #36): WGSL and GLSL leave pow undefined for a
// negative base, so the expression gpu.js compiles never gives pow one. Constant powers follow the
// one rule of the kernel form's decomposition (expandedPower).

import * as E from './expr.js';
import type { Expr } from './expr.js';
import { expandedPower } from './kernel/decompose.js';

const one = E.num(1);
const zero = E.num(0);
const FLT_MAX = 3.4028234663852886e38;

/**
 * a ** b in a shader, with PyTorch's signs: WGSL and GLSL leave pow(x, y) undefined for x < 0
 * (SwiftShader's WebGPU gives pow(-2, 3.0) = 8), so pow only ever sees a base ≥ 0 here. A
 * constant integer or half-integer exponent of magnitude ≤ 64 never comes here: the shared
 * decomposition pass writes it as products, a reciprocal and a square root on every target
 * (codegen/kernel/decompose.ts, expandedPower, before the GPU.js renderer runs). A larger
 * constant integer n gives |a|^n with a's sign for odd n; any other exponent gives pow(a, b) for
 * a ≥ 0, and for a < 0 ±pow(-a, b) where b is an integer (the sign by its parity), else NaN.
 * gpu.js kernels have no NaN literal: the NaN is √a of that negative a (NaN in JavaScript, in
 * wasm and on the GPUs and SwiftShader we know; WGSL only says indeterminate). `a` and `b` are
 * atoms (codegen/gpu-kernel.ts gives pow's operands as locals or array reads: TWICE).
 */
export function gpuPow(a: Expr, b: Expr): Expr {
  const n = E.literal(b);
  if (expandedPower(n)) throw new Error(`internal: pow(x, ${n}) reached the GPU.js renderer; the decomposition expands it (expandedPower)`);
  const pow = (x: Expr, y: Expr) => E.call('Math.pow', x, y);
  const negative = E.rel('<')(a, zero);
  const nan = E.call('Math.sqrt', a);
  if (n !== undefined && Number.isInteger(n)) {
    const magnitude = pow(E.call('Math.abs', a), b);
    return n % 2 === 0 ? magnitude : E.mul(E.cond(negative, E.num(-1), one), magnitude);
  }
  if (n !== undefined) {
    // a non-integer constant: NaN below 0 but at −∞, where Math.pow gives +∞ (n > 0) or 0 (n < 0)
    const atMinusInf = n > 0 ? E.call('Math.sqrt', E.neg(a)) : zero;
    return E.cond(E.rel('<')(a, E.num(-FLT_MAX)), atMinusInf, E.cond(negative, nan, pow(a, b)));
  }
  const half = E.mul(b, E.num(0.5));
  const sign = E.cond(E.rel('===')(E.call('Math.floor', half), half), one, E.num(-1));
  const integral = E.rel('===')(E.call('Math.floor', b), b);
  return E.cond(negative, E.cond(integral, E.mul(sign, pow(E.neg(a), b)), nan), pow(a, b));
}
