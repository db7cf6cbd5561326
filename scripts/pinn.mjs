// npm run demo:pinn: build examples/pinn.ts (a physics-informed network whose loss holds its own
// second derivative, taken with g.grad) with graphc's compiled Adam, train it to solve
// u'' = −u, u(0) = 0, u'(0) = 1 on [0, π], and compare with the exact solution sin x.
//
//   npm run demo:pinn -- [--steps N] [--seed N] [--out DIR]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { demoOptions } from './demo/options.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const USAGE = 'usage: npm run demo:pinn -- [--steps N] [--seed N] [--out DIR]';

const { values: opts, int } = demoOptions(USAGE, {
  steps: { type: 'string', default: '6000' },
  seed: { type: 'string', default: '1' },
  out: { type: 'string', default: 'demo-out' },
});
const steps = int('steps');
const seed = int('seed');
const OUT = path.resolve(opts.out);
mkdirSync(OUT, { recursive: true });

const t0 = performance.now();
const LR = 0.005;
const b = spawnSync(
  process.execPath,
  [path.join(ROOT, 'bin/graphc.js'), 'build', '--target', 'ts', '--optimizer', 'adam', '--lr', String(LR), path.join(ROOT, 'examples/pinn.ts')],
  { cwd: OUT, stdio: ['ignore', 'pipe', 'inherit'] },
);
if (b.status !== 0) process.exit(b.status ?? 1);
const pinn = await import(pathToFileURL(path.join(OUT, 'generated/pinn/pinn.js')).href);
const [N] = pinn.spec.inputs.x.shape;
console.log(`graphc build: examples/pinn.ts in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${N} collocation points on [0, π]`);

// the collocation points: an even grid from 0 (the initial conditions are read at row 0)
const grid = Float32Array.from({ length: N }, (_, i) => (Math.PI * i) / (N - 1));
// a second set between the grid's points, where the network never trained
const mid = Float32Array.from({ length: N }, (_, i) => (Math.PI * Math.min(i + 0.5, N - 1)) / (N - 1));

const params = pinn.initParams(seed);
const state = pinn.initOptState(params);
const history = [];
const t1 = performance.now();
for (let s = 0; s < steps; s++) {
  // Adam, the learning rate decayed by 10 over the run (cosine)
  const lr = LR * (0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * s) / Math.max(1, steps))));
  const { loss } = pinn.trainStep(params, state, { x: grid }, { lr });
  if (s % 50 === 0 || s === steps - 1) history.push([s, loss]);
}
const secs = (performance.now() - t1) / 1000;

const errorAt = (x) => {
  const u = Float32Array.from(pinn.forward(params, { x }).u);
  return { u, max: Math.max(...Array.from(u, (v, i) => Math.abs(v - Math.sin(x[i])))) };
};
const onGrid = errorAt(grid);
const between = errorAt(mid);
const maxErr = Math.max(onGrid.max, between.max);
console.log(`${steps} Adam steps in ${secs.toFixed(1)} s (${Math.round(steps / secs)} steps/s); final loss ${history.at(-1)[1].toExponential(3)}`);
console.log(`max |u − sin x|: ${onGrid.max.toExponential(2)} at the collocation points, ${between.max.toExponential(2)} between them (target < 1e-2)`);

// the fit: u and sin x over [0, π], and the loss curve
const W = 720;
const Hh = 400;
const M = { left: 60, right: 20, top: 30, bottom: 45 };
const f = (v) => v.toFixed(1);
const X = (x) => M.left + (x / Math.PI) * (W - M.left - M.right);
const Y = (y) => M.top + ((1.1 - y) / 1.2) * (Hh - M.top - M.bottom);
const pts = [...Array.from(grid, (x, i) => [x, onGrid.u[i]]), ...Array.from(mid, (x, i) => [x, between.u[i]])].sort((a, b) => a[0] - b[0]);
const exact = Array.from({ length: 200 }, (_, i) => (Math.PI * i) / 199).map((x) => [x, Math.sin(x)]);
const poly = (p, color, width, dash = '') =>
  `<polyline fill="none" stroke="${color}" stroke-width="${width}"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${p.map(([x, y]) => `${f(X(x))},${f(Y(y))}`).join(' ')}"/>`;
const ticks = [0, 0.5, 1].map((y) => `<line x1="${M.left}" x2="${W - M.right}" y1="${f(Y(y))}" y2="${f(Y(y))}" stroke="#ddd"/><text x="${M.left - 6}" y="${f(Y(y) + 4)}" text-anchor="end">${y}</text>`);
const xt = [0, Math.PI / 2, Math.PI].map((x, k) => `<text x="${f(X(x))}" y="${Hh - M.bottom + 18}" text-anchor="middle">${['0', 'π/2', 'π'][k]}</text>`);
const svg = [
  `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`,
  `<rect width="${W}" height="${Hh}" fill="white"/>`,
  `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">u'' = −u, u(0) = 0, u'(0) = 1: the network (graphc, ${steps} Adam steps) and sin x</text>`,
  ...ticks,
  ...xt,
  `<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${Hh - M.top - M.bottom}" fill="none" stroke="#888"/>`,
  poly(exact, '#d62728', 4),
  poly(pts, '#1f77b4', 1.5, '6 3'),
  `<text x="${W - M.right - 8}" y="${M.top + 16}" text-anchor="end" fill="#d62728">sin x</text>`,
  `<text x="${W - M.right - 8}" y="${M.top + 32}" text-anchor="end" fill="#1f77b4">u(x), max error ${maxErr.toExponential(1)}</text>`,
  `<text x="${W / 2}" y="${Hh - 8}" text-anchor="middle">x</text>`,
  '</svg>',
].join('\n') + '\n';
writeFileSync(path.join(OUT, 'pinn-fit.svg'), svg);
let pictures = 'pinn-fit.svg';
try {
  const { Resvg } = await import('@resvg/resvg-js');
  writeFileSync(path.join(OUT, 'pinn-fit.png'), new Resvg(svg, { font: { loadSystemFonts: true } }).render().asPng());
  pictures += ' and pinn-fit.png';
} catch {
  // the PNG is optional
}
console.log(`wrote ${path.relative(process.cwd(), path.join(OUT, pictures.split(' ')[0]))}${pictures.includes('png') ? ' (and .png)' : ''}`);
process.exit(maxErr < 1e-2 ? 0 : 1);
