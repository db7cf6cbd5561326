// The error of a unary primitive's decomposition (codegen/kernel/decompose.ts) over EVERY f32 in a
// range, as the wasm SIMD target computes it: the decomposition for WASM_CAPABILITIES, compiled to
// straight-line JavaScript with each node rounded as codegen/kernel/eval.ts's f32 mode rounds it
// (Math.fround per f32 node, |0 per i32 node), checked bit for bit against evalKernel on a sample
// first. test/decompose.test.ts measures ~100k points; this one all of them (every f32 in [0, 10]:
// 1.09e9 points, a few minutes).
//   node scripts/decompose-ulps.mjs OP LO HI [--stride N] [--dist DIR]
// OP: tanh, exp, log, sin, cos, log1p, expm1, erf; DIR: another checkout's dist/ (a baseline's rule).
// It reads the compiled compiler in dist/: run `npm run build` first, or it measures the rule dist/ was built with.
// Prints the largest error in ulps against the float64 function (the measure of docs/compiler.md)
// and the distance in f32 steps from the float64 function rounded to f32, with counts of 0/1/2/3+.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : dflt;
};
const stride = Number(opt('--stride', 1));
const dist = path.resolve(opt('--dist', path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist')));
const [op, loArg, hiArg] = args;
if (!op || loArg === undefined || hiArg === undefined) throw new Error('usage: node scripts/decompose-ulps.mjs OP LO HI [--stride N] [--dist DIR]');
const { decompose } = await import(`${dist}/codegen/kernel/decompose.js`);
const { WASM_CAPABILITIES } = await import(`${dist}/codegen/wasm/kernel-alu.js`);
const { ALU, f32Bits, f32FromBits } = await import(`${dist}/codegen/kernel/form.js`);
const { evalKernel } = await import(`${dist}/codegen/kernel/eval.js`);
const { erf } = await import(`${dist}/ir/special.js`);
const REF = { tanh: Math.tanh, exp: Math.exp, log: Math.log, sin: Math.sin, cos: Math.cos, log1p: Math.log1p, expm1: Math.expm1, erf };
const ref = REF[op] ?? (() => { throw new Error(`no reference for ${op}`); })();

const S = (c) => ({ coef: c, syms: [] });
const kernelOf = (n) => ({ kind: 'kernel', name: 'k', domain: [n], axes: [], notes: [], nodes: [{ op: 'load', dtype: 'f32', access: { arg: 'x', strides: [S(1)], offset: S(0) } }, { op, dtype: 'f32', args: [0] }], stores: [{ node: 1, access: { arg: 'y', strides: [S(1)], offset: S(0) } }] });
const d = decompose(kernelOf(1), WASM_CAPABILITIES);
// straight-line JavaScript: node i is v<i>, an ALU node calls its eval (E[i]) and is rounded to its type
const lines = d.nodes.map((nd, i) => {
  if (nd.op === 'load') return `const v${i} = Math.fround(x);`;
  if (nd.op === 'const') return `const v${i} = ${nd.dtype === 'f32' ? Math.fround(nd.value) : nd.value};`;
  const a = nd.args.map((j) => `v${j}`).join(', ');
  if (nd.dtype === 'i32') return nd.op === 'mul' ? `const v${i} = Math.imul(${a});` : `const v${i} = E[${i}](${a}) | 0;`;
  return nd.dtype === 'f32' ? `const v${i} = Math.fround(E[${i}](${a}));` : `const v${i} = E[${i}](${a});`;
});
const E = d.nodes.map((nd) => ALU[nd.op]?.eval);
const f = new Function('E', `return (x) => { ${lines.join(' ')} return v${d.stores[0].node}; };`)(E);
const instructions = d.nodes.filter((nd) => !['const', 'load', 'bits', 'frombits'].includes(nd.op)).length;

// the compiled function against evalKernel, bit for bit, on 2^20 points spread over the range and the special values
const lo = Math.fround(Number(loArg)), hi = Math.fround(Number(hiArg));
const n = 1 << 20;
const xs = Float64Array.from({ length: n }, (_x, i) => Math.fround(lo + ((hi - lo) * i) / (n - 1)));
xs.set([0, -0, Infinity, -Infinity, NaN, 1e-45, -1e-45, 3.4e38, -3.4e38]);
const ys = new Float64Array(n);
evalKernel(decompose(kernelOf(n), WASM_CAPABILITIES), (name) => (name === 'x' ? xs : ys), {}, { f32: true });
let mismatches = 0;
xs.forEach((x, i) => {
  if (!Object.is(Math.fround(ys[i]), f(x)) && mismatches++ < 5) console.log(`mismatch at ${x}: evalKernel ${ys[i]}, compiled ${f(x)}`);
});
if (mismatches) throw new Error(`${mismatches} mismatches: the compiled decomposition is not evalKernel's`);
const show = (v) => (Object.is(v, -0) ? '-0' : String(v));
console.log(`${op}: ${instructions} instructions (bits/frombits not counted); ${[0, -0, Infinity, -Infinity, NaN].map((v) => `${show(v)} → ${show(f(v))}`).join(', ')}`);

// every f32 in [lo, hi] (stride: every stride-th), by bit pattern on each side of 0
const ulp = (v) => {
  const a = Math.abs(Math.fround(v));
  return a === 0 ? 2 ** -149 : 2 ** (Math.max(Math.floor(Math.log2(a)), -126) - 23);
};
let worst = 0, at = NaN, steps = 0, stepsAt = NaN, points = 0;
const hist = [0, 0, 0, 0];
const sweep = (from, to, sign) => {
  for (let u = from; u <= to; u += stride) {
    const x = f32FromBits(sign | u), y = f(x), r = ref(x), r32 = Math.fround(r);
    points++;
    if (!Number.isFinite(r32) || r32 === 0) {
      if (!Object.is(y, r32)) throw new Error(`${op}(${x}) = ${y}, not ${r32}`);
      hist[0]++;
      continue;
    }
    const e = Math.abs(y - r) / ulp(r);
    if (!(e <= worst)) [worst, at] = [e, x];
    const s = Math.abs(f32Bits(y) - f32Bits(r32));
    hist[Math.min(s, 3)]++;
    if (!(s <= steps)) [steps, stepsAt] = [s, x];
  }
};
// the non-negative part as bit patterns of +lo..+hi, the negative part as those of |hi|..|lo| with the sign bit
if (hi >= 0) sweep(lo > 0 ? f32Bits(lo) : 0, f32Bits(hi), 0);
if (lo < 0) sweep(hi < 0 ? f32Bits(-hi) : 0, f32Bits(-lo), -0x80000000);
console.log(`${op} over ${stride === 1 ? 'every' : `every ${stride}th`} f32 in [${lo}, ${hi}] (${points} points): max ${worst.toFixed(4)} ulp at ${at} (against the float64 ${op}); ${steps} f32 steps at most from it rounded to f32 (at ${stepsAt}), counts of 0/1/2/3+ steps: ${hist.join('/')}`);
