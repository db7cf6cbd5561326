// TEMPORARY (untracked): stand-in until the decompose branch's ir/special.ts is merged.
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a >= 6) return Math.sign(x);
  let term = a;
  let sum = a;
  for (let n = 0; n < 500 && term > sum * 1e-17; n++) {
    term *= (2 * a * a) / (2 * n + 3);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
}
