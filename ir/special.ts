// Special functions in float64 that JavaScript's Math lacks: the reference semantics of the ALU
// primitives of codegen/kernel/form.ts (and of the graph ops that compute them).

const TWO_OVER_SQRT_PI = 1.1283791670955126; // 2/√π
const ONE_OVER_SQRT_PI = 0.5641895835477563; // 1/√π

/**
 * erf(x) = 2/√π ∫₀ˣ e^(−t²) dt, to about 1e-15 relative. |x| < 2.5: the series
 * erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)), whose terms are all positive (no
 * cancellation); above: 1 − erfc(x), erfc by its continued fraction
 * erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated by Lentz's method.
 * erf(±0) = ±0, erf(±∞) = ±1, erf(NaN) = NaN.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === 0) return x;
  const ax = Math.abs(x);
  const sign = x < 0 ? -1 : 1;
  if (ax >= 6) return sign; // 1 − erf(6) ≈ 2e-17: below half an ulp of 1
  if (ax < 2.5) {
    const x2 = ax * ax;
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    return sign * TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
  }
  return sign * (1 - erfcLarge(ax));
}

/** erfc(x) for x ≥ 2.5 by the continued fraction (modified Lentz). */
function erfcLarge(x: number): number {
  // erfc(x) = e^(−x²)/√π · 1/(x + a₁/(x + a₂/(x + …))), aₖ = k/2
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-17) break;
  }
  return (ONE_OVER_SQRT_PI * Math.exp(-x * x)) / f;
}
