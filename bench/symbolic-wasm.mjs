// The symbolic wasm module (codegen/wasm/symbolic.ts): its size and build time, and one
// valueAndGrad step at one batch size against the static wasm build of that size.
// node bench/symbolic-wasm.mjs [N]   (after npm run build)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { compile } from '../dist/src/build.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const N = Number(process.argv[2] ?? 64);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graphc-symwasm-'));
const models = {
  makemore_inference: (b) => `import { LECTURE } from '${ROOT}/examples/makemore.ts';\nimport { makemoreInference } from '${ROOT}/examples/makemore_inference.ts';\nexport default makemoreInference({ ...LECTURE, batch: ${JSON.stringify(b)} }, 'm_${b}');\n`,
  cnn: (b) => `import { cnn } from '${ROOT}/examples/cnn.ts';\nexport default cnn(${JSON.stringify(b)}, 'c_${b}');\n`,
};

async function build(src, tag) {
  const file = path.join(dir, `${tag}.ts`);
  fs.writeFileSync(file, src);
  const t0 = performance.now();
  const c = await compile(file, { targets: ['wasm'] });
  const ms = performance.now() - t0;
  const out = path.join(dir, tag);
  fs.mkdirSync(out);
  for (const f of c.files) fs.writeFileSync(path.join(out, f.name), f.content);
  const js = c.files.find((f) => f.name.endsWith('.wasm.js'));
  return { ms, bytes: js.content.length, mod: await import(pathToFileURL(path.join(out, js.name)).href) };
}

function args(mod, n) {
  const params = mod.initParams(1);
  const inputs = {};
  for (const [k, s] of Object.entries(mod.spec.inputs)) {
    const len = s.shape.reduce((a, d) => a * (typeof d === 'number' ? d : n), 1);
    inputs[k] = s.dtype === 'i32' ? Int32Array.from({ length: len }, (_, i) => (i * 7) % 10) : Float32Array.from({ length: len }, (_, i) => Math.sin(i));
  }
  return { params, inputs };
}

function step(mod, n) {
  const { params, inputs } = args(mod, n);
  for (let i = 0; i < 5; i++) mod.valueAndGrad(params, inputs);
  const times = [];
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) mod.valueAndGrad(params, inputs);
    times.push((performance.now() - t0) / 10);
  }
  return times.sort((a, b) => a - b)[3];
}

for (const [name, src] of Object.entries(models)) {
  const sym = await build(src('B'), `${name}_sym`);
  const stat = await build(src(N), `${name}_${N}`);
  const first = performance.now();
  sym.mod.valueAndGrad(...Object.values(args(sym.mod, N)));
  const firstCall = performance.now() - first;
  console.log(`${name}: symbolic module ${sym.bytes} B, built in ${sym.ms.toFixed(0)} ms (static ${stat.bytes} B, ${stat.ms.toFixed(0)} ms); first call at B=${N} ${firstCall.toFixed(1)} ms; step at B=${N}: symbolic ${step(sym.mod, N).toFixed(3)} ms, static ${step(stat.mod, N).toFixed(3)} ms`);
}
