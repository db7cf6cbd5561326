// Each product kernel of a wasm module (matmuls, and the im2col products of convolutions and
// their gradients) against the machine's SIMD peak: its time in a step (bench/kernel-profile.mjs),
// its FLOPs from the shape the module's kernel list gives (`[b ×] [M,K]·[K,N]`), and the GFLOP/s
// that makes, as a fraction of a plain SIMD multiply-add loop's (bench/simd.mjs). Kernels of the
// same kind and shape (one per layer) are summed into one row; the other kernels (elementwise,
// reductions, softmax, ...) and the JS between kernels are summed apart. Used by
// `node bench/realistic.mjs --kernels`.
import { readFileSync } from 'node:fs';
import { profileKernels } from './kernel-profile.mjs';
import { fmt, table } from './report.mjs';
import { simdPeak } from './simd.mjs';

/** name → { kind, shape, flops } for every kernel of the module's list whose line ends in a product shape. */
export function productKernels(moduleFile) {
  const out = new Map();
  for (const line of readFileSync(moduleFile, 'utf8').split('\n')) {
    const head = /^\/\/ {3}(\w+): /.exec(line);
    if (!head) continue;
    const shapes = [...line.matchAll(/(?:(\d+) × )?\[(\d+),(\d+)\]·\[(\d+),(\d+)\]/g)];
    if (!shapes.length) continue;
    const m = shapes.at(-1);
    const [b, M, K, N] = [Number(m[1] ?? 1), Number(m[2]), Number(m[3]), Number(m[5])];
    const kind = /^(conv_input_grad|conv_weight_grad|conv|matmul)_/.exec(head[1])?.[1] ?? head[1].split('_')[0];
    // a Winograd kernel's line gives its direct convolution's shape: the flops it saves count as done (its "of peak" above 100%)
    const winograd = /Winograd/.test(line);
    out.set(head[1], { kind, winograd, shape: m[0] + (/A transposed/.test(line) ? ' (Aᵀ)' : /B transposed/.test(line) ? ' (Bᵀ)' : '') + (winograd ? ' Winograd' : ''), flops: 2 * b * M * K * N });
  }
  return out;
}

/** The table's text: one row per kind and shape of product kernel, then the rest of the step. */
export async function kernelPeakReport(moduleFile, { rounds = 20, params, inputs } = {}) {
  // the peak measured before and after the profile, the higher kept (other processes lower it)
  const first = await simdPeak();
  const [prof] = await profileKernels([moduleFile], { rounds, params, inputs });
  const second = await simdPeak();
  const peak = second.gflops > first.gflops ? second : first;
  const products = productKernels(moduleFile);
  const groups = new Map();
  let other = 0;
  let otherCount = 0;
  for (const [name, ms] of prof.kernels) {
    const p = products.get(name);
    if (name === '(JS)') continue;
    if (!p) {
      other += ms;
      otherCount++;
      continue;
    }
    const key = `${p.kind} ${p.shape}`;
    const g = groups.get(key) ?? { kind: p.kind, shape: p.shape, count: 0, ms: 0, flops: 0 };
    Object.assign(g, { count: g.count + 1, ms: g.ms + ms, flops: g.flops + p.flops });
    groups.set(key, g);
  }
  const rows = [...groups.values()].sort((a, b) => b.ms - a.ms);
  const pct = (ms) => `${((100 * ms) / prof.step).toFixed(1)}%`;
  const ofPeak = (flops, ms) => `${((100 * flops) / (ms * 1e6) / peak.gflops).toFixed(0)}%`;
  const body = rows.map((g) => [g.kind, g.shape, g.count, fmt.ms(g.ms), pct(g.ms), fmt.gflops(g.flops / (g.ms * 1e6)), ofPeak(g.flops, g.ms)]);
  const all = rows.reduce((a, g) => ({ ms: a.ms + g.ms, flops: a.flops + g.flops }), { ms: 0, flops: 0 });
  body.push(['all products', '', rows.reduce((n, g) => n + g.count, 0), fmt.ms(all.ms), pct(all.ms), fmt.gflops(all.flops / (all.ms * 1e6)), ofPeak(all.flops, all.ms)]);
  body.push(['other kernels', 'elementwise, reductions, softmax, ...', otherCount, fmt.ms(other), pct(other), '', '']);
  body.push(['JS between kernels', '', '', fmt.ms(prof.kernels.get('(JS)')), pct(prof.kernels.get('(JS)')), '', '']);
  return [
    `per kernel, 1 thread (median ms per step over ${rounds} steps, this process; step ${fmt.ms(prof.step)} ms with the timers), against the SIMD peak ${fmt.gflops(peak.gflops)} GFLOP/s (f32x4 mul + add, ${peak.accumulators} accumulators)`,
    table(['kernel', 'shape', 'n', 'ms', 'of step', 'GFLOP/s', 'of peak'], body),
    ...([...products.values()].some((p) => p.winograd)
      ? ['Winograd: the kernels of 3×3 stride-1 convolutions that run as Winograd (F(2×2,3×3) the forward and input gradient, F(3×3,2×2) the weight gradient) count the direct convolution\'s flops (2.25× their multiplies): "of peak" above 100% is the saving']
      : []),
  ].join('\n');
}
