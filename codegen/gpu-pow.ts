// a ** b in the shaders of the GPU.js module (issue #36): WGSL and GLSL leave pow undefined for a
// negative base, so the expression gpu.js compiles never gives pow one.

import * as E from './expr.js';
import type { Expr } from './expr.js';

const one = E.num(1);
const zero = E.num(0);
const FLT_MAX = 3.4028234663852886e38;

/** The largest |n| of a constant integer exponent written as a product (x·x·x·x; 1/(x·x) for n = -2). */
const MAX_PRODUCT_EXPONENT = 4;

/**
 * a ** b in a shader, with PyTorch's signs: WGSL and GLSL leave pow(x, y) undefined for x < 0
 * (SwiftShader's WebGPU gives pow(-2, 3.0) = 8), so pow only ever sees a base ≥ 0 here. A constant
 * integer exponent n is a product for |n| ≤ 4 (x·x·x, more exact than pow too; a reciprocal for
 * n < 0), else |a|^n with a's sign for odd n; ±0.5 are √a and 1/√a; any other exponent gives
 * pow(a, b) for a ≥ 0, and for a < 0 ±pow(-a, b) where b is an integer (the sign by its parity),
 * else NaN. gpu.js kernels have no NaN literal: the NaN is √a of that negative a (NaN in
 * JavaScript, in wasm and on the GPUs and SwiftShader we know; WGSL only says indeterminate).
 * `a` and `b` are atoms (codegen/gpu.ts gives pow's operands as locals or array reads: TWICE).
 */
export function gpuPow(a: Expr, b: Expr): Expr {
  const n = E.literal(b);
  const pow = (x: Expr, y: Expr) => E.call('Math.pow', x, y);
  const negative = E.rel('<')(a, zero);
  const nan = E.call('Math.sqrt', a);
  if (n !== undefined && Number.isInteger(n)) {
    if (n === 0) return one; // as PyTorch and Math.pow: x^0 = 1 for every x, NaN included
    if (Math.abs(n) <= MAX_PRODUCT_EXPONENT) {
      let p = a;
      for (let k = 1; k < Math.abs(n); k++) p = E.mul(p, a);
      return n > 0 ? p : E.div(one, p);
    }
    const magnitude = pow(E.call('Math.abs', a), b);
    return n % 2 === 0 ? magnitude : E.mul(E.cond(negative, E.num(-1), one), magnitude);
  }
  if (n === 0.5 || n === -0.5) {
    // √ with Math.pow's values at −∞ (+∞; 0 for −½: only −∞ lies below −FLT_MAX, and shaders have
    // no ∞ literal) and at −0 (+0; +∞ for −½: −0 + 0 is +0)
    const root = E.call('Math.sqrt', E.cond(E.rel('<')(a, E.num(-FLT_MAX)), E.neg(a), E.add(a, zero)));
    return n > 0 ? root : E.div(one, root);
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
