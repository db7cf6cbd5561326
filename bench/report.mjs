// Statistics and plain-text tables for the benchmark's output.
export function median(xs) {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** max|a − b| / max(max|b|, 1e-3): the agreement of a tensor a with the reference b. */
export function relError(a, b) {
  let diff = 0;
  let scale = 1e-3;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return a.length === b.length ? diff / scale : Infinity;
}

/** A table with a header row; columns after the first are right-aligned. */
export function table(header, rows) {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, c) => Math.max(...cells.map((r) => r[c]?.length ?? 0)));
  const line = (r) => r.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join('  ').trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export const fmt = {
  ms: (x) => (!Number.isFinite(x) ? '-' : x < 0.1 ? x.toFixed(4) : x < 10 ? x.toFixed(3) : x.toFixed(1)),
  ratio: (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '-'),
  gflops: (x) => (Number.isFinite(x) ? x.toFixed(2) : '-'),
  err: (x) => (x === 0 ? '0' : x.toExponential(1)),
  mb: (kb) => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(0)} MB` : '-'),
  flops: (x) => (x >= 1e9 ? `${(x / 1e9).toFixed(2)} GFLOP` : x >= 1e6 ? `${(x / 1e6).toFixed(1)} MFLOP` : `${(x / 1e3).toFixed(1)} kFLOP`),
  s: (ms) => `${(ms / 1000).toFixed(2)} s`,
};
