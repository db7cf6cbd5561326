// The GPU.js module's erf, log1p and expm1: gpu.js has no erf, and its log1p and expm1 are
// log(1 + x) and exp(x) − 1 in its GLSL and WGSL backends, which lose every digit of a small x
// (log1p(1e-8) is 0 in float32). These are written as expressions over what every backend has
// (exp, log, sqrt, comparisons), polynomials where a shader's exp or log would lose digits,
// accurate to a few float32 roundings (docs/gpu.md; test/gpu-special.test.ts in webasm mode,
// test/browser/special.test.ts in WGSL and GLSL on SwiftShader).

import * as E from './expr.js';
import type { Expr } from './expr.js';

/** Makes a value a local (an atom read more than once). */
export type Local = (e: Expr) => Expr;

const one = E.num(1);
const zero = E.num(0);
const lt = E.rel('<');

/** Horner's rule: c[0] + z·(c[1] + z·(c[2] + ...)). */
function horner(z: Expr, c: readonly number[]): Expr {
  let p = E.num(c.at(-1)!);
  for (let k = c.length - 2; k >= 0; k--) p = E.add(E.num(c[k]!), E.mul(z, p));
  return p;
}

/** 2/√π · (−1)ⁿ / (n!·(2n + 1)): erf's Taylor series in x·(x²)ⁿ. */
const TAYLOR = Array.from({ length: 7 }, (_x, n) => {
  let f = 1;
  for (let k = 2; k <= n; k++) f *= k;
  return ((2 / Math.sqrt(Math.PI)) * (-1) ** n) / (f * (2 * n + 1));
});

/**
 * erfc(a) ≈ t·exp(−a² + P(t)), t = 1/(1 + a/2), for a ≥ 0: the Chebyshev fit of Numerical
 * Recipes (erfcc), relative error below 1.2e-7 for every a ≥ 0.
 */
const ERFC = [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];

/**
 * erf(x): for |x| < 0.5 its Taylor series to x¹³ (relative error below 1e-9: small values keep
 * their digits), elsewhere ±(1 − erfc(|x|)). In float64 the largest error over [−6, 6] is 3.0e-8
 * (5.7e-8 relative, at 0.5); in float32 arithmetic (gpu.js's webasm mode) 1.1e-7, 2.1e-7 relative;
 * in SwiftShader's shaders 1.6e-7.
 */
export function gpuErf(x: Expr, local: Local): Expr {
  const a = local(E.call('Math.abs', x));
  const x2 = local(E.mul(x, x));
  const series = E.mul(x, horner(x2, TAYLOR));
  const t = local(E.div(one, E.add(one, E.mul(E.num(0.5), a))));
  const erfc = local(E.mul(t, E.call('Math.exp', E.add(E.mul(E.neg(a), a), horner(t, ERFC)))));
  return E.cond(lt(a, E.num(0.5)), series, E.cond(lt(x, zero), E.sub(erfc, one), E.sub(one, erfc)));
}

/** 1/(2k + 1), k = 0 … 7: log1p's series 2·atanh(s) = 2·(s + s³/3 + s⁵/5 + …) in s². */
const ATANH = Array.from({ length: 8 }, (_x, k) => 1 / (2 * k + 1));
/** 1/n!, n = 1 … 9: expm1's Taylor series x·(1 + x/2 + x²/6 + …). */
const EXP = Array.from({ length: 9 }, (_x, k) => {
  let f = 1;
  for (let n = 2; n <= k + 1; n++) f *= n;
  return 1 / f;
});

/**
 * log(1 + x). A shader's log is not relatively accurate near 1 (GLSL ES and WGSL allow an
 * absolute error of 2⁻²¹ on [0.5, 2]: on SwiftShader log(u)·x/(u − 1), u = 1 + x, was off by 65%), so
 * where 1 + x lies in [0.5, 2] the series 2·atanh(s), s = x/(2 + x), |s| ≤ 1/3, to s¹⁵ (relative
 * error below 2e-9, then float32's roundings); log(1 + x) elsewhere. NaN below −1.
 */
export function gpuLog1p(x: Expr, local: Local): Expr {
  const u = local(E.add(one, x));
  const s = local(E.div(x, E.add(E.num(2), x)));
  const series = E.mul(E.mul(E.num(2), s), horner(local(E.mul(s, s)), ATANH));
  const log = E.call('Math.log', u);
  const inside = E.cond(E.rel('<=')(x, one), series, log);
  // √ of a negative value is NaN on every backend, as the GPU.js renderer's log (GPU_UNARY)
  return E.cond(lt(u, zero), E.call('Math.sqrt', u), E.cond(lt(x, E.num(-0.5)), log, inside));
}

/**
 * eˣ − 1: for |x| < 0.5 its Taylor series to x⁹ (relative error below 6e-10, then float32's
 * roundings: no log, whose shader form is not accurate near 1), eˣ − 1 elsewhere (at most a
 * factor 2.6 of cancellation).
 */
export function gpuExpm1(x: Expr, _local: Local): Expr {
  return E.cond(lt(E.call('Math.abs', x), E.num(0.5)), E.mul(x, horner(x, EXP)), E.sub(E.call('Math.exp', x), one));
}
