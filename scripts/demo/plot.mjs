// The loss curve as a small standalone SVG: the training loss (mean over each window of steps)
// and the dev loss at each evaluation, log-scaled like the lecture's plots.

const W = 720;
const H = 400;
const M = { left: 60, right: 20, top: 30, bottom: 45 };

export function lossCurveSvg(history, title = 'makemore trained with graphc') {
  const train = history.train;
  const dev = history.dev;
  const all = [...train, ...dev];
  if (all.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><text x="20" y="40">no steps yet</text></svg>\n`;
  const maxStep = Math.max(...all.map(([s]) => s));
  const lo = Math.min(...all.map(([, l]) => l));
  const hi = Math.max(...all.map(([, l]) => l));
  const [ylo, yhi] = [Math.log(lo * 0.98), Math.log(hi * 1.02)];
  const x = (s) => M.left + (s / maxStep) * (W - M.left - M.right);
  const y = (l) => M.top + ((yhi - Math.log(l)) / (yhi - ylo || 1)) * (H - M.top - M.bottom);
  const f = (v) => v.toFixed(1);
  const line = (pts, color, width) =>
    pts.length ? `<polyline fill="none" stroke="${color}" stroke-width="${width}" points="${pts.map(([s, l]) => `${f(x(s))},${f(y(l))}`).join(' ')}"/>` : '';
  const ticks = [];
  for (const l of niceTicks(lo, hi)) ticks.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${f(y(l))}" y2="${f(y(l))}" stroke="#ddd"/><text x="${M.left - 6}" y="${f(y(l) + 4)}" text-anchor="end">${l.toFixed(2)}</text>`);
  for (let k = 0; k <= 4; k++) {
    const s = Math.round((maxStep * k) / 4);
    ticks.push(`<text x="${f(x(s))}" y="${H - M.bottom + 18}" text-anchor="middle">${s}</text>`);
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">${title}</text>`,
    ...ticks,
    `<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#888"/>`,
    line(train, '#1f77b4', 1.2),
    line(dev, '#d62728', 2),
    ...dev.map(([s, l]) => `<circle cx="${f(x(s))}" cy="${f(y(l))}" r="3" fill="#d62728"/>`),
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">step</text>`,
    `<text x="14" y="${H / 2}" text-anchor="middle" transform="rotate(-90 14 ${H / 2})">loss (nats, log scale)</text>`,
    `<text x="${W - M.right - 8}" y="${M.top + 16}" text-anchor="end" fill="#1f77b4">train (mean of ${history.window} steps)</text>`,
    `<text x="${W - M.right - 8}" y="${M.top + 32}" text-anchor="end" fill="#d62728">dev (calibrated batchnorm)</text>`,
    '</svg>',
    '',
  ].join('\n');
}

/** About five round loss values between lo and hi. */
function niceTicks(lo, hi) {
  const step = [0.05, 0.1, 0.2, 0.25, 0.5, 1].find((s) => (hi - lo) / s <= 6) ?? 1;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(Math.round(v * 100) / 100);
  return out;
}
