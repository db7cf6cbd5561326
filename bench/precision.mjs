// The gradient error of every target on the ResNets of issue 27 (test/fixtures/precision): the
// CIFAR-sized ResNet (batch 32, 3×32×32, nine 3×3 convs with batch norm) and one ResNet block
// (batch 24, 16×16 maps). Each target's gradients (flat, wasm, wasm on 2 threads, GPU.js in cpu
// mode, and with `--targets webasm` in gpu.js's webasm mode) against the float64 interpreter (ir/interp.ts), per param as test/helpers.ts's relErr:
// max|a − b| / max(max|b|, 1e-3). Uses dist/ (npm run build first).
//   node bench/precision.mjs [cifar|block|FILE.ts ...] [--targets flat,wasm,threads,gpu] [--dump DIR]
// --dump writes each model's params, inputs and the float64 gradients as JSON (for
// bench/precision_torch.py, which measures PyTorch's float32 error on the same values).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { mulberry32 } from './models.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
// GRAPHC_DIST: another build's dist/ (an earlier commit's, to compare)
const dist = (f) => import(pathToFileURL(path.join(process.env.GRAPHC_DIST ?? path.join(ROOT, 'dist'), f)).href);
const { compileGraphs } = await dist('src/build.js');
const { emitTs } = await dist('codegen/ts.js');
const { emitWasm } = await dist('codegen/wasm.js');
const { emitGpu } = await dist('codegen/gpu.js');
const { indent } = await dist('codegen/module.js');
const { interpret } = await dist('ir/interp.js');

const MODELS = { cifar: 'test/fixtures/precision/resnet_cifar.ts', block: 'test/fixtures/precision/resnet_block.ts' };
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args.splice(i, 2)[1] : dflt;
};
const targets = opt('targets', 'flat,wasm,threads,gpu').split(',');
const dump = opt('dump', undefined);
const files = (args.length ? args : ['block', 'cifar']).map((a) => path.resolve(ROOT, MODELS[a] ?? a));

export const relErr = (a, b) => {
  let diff = 0;
  let scale = 1e-3;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return Number.isNaN(diff) ? Infinity : diff / scale;
};


for (const file of files) {
  const { fwd, bwd, plan } = compileGraphs(file);
  const name = fwd.name;
  const info = { name, plan, source: path.basename(file), fwd, bwd, sourceLine: () => undefined };
  // inside the repository (scratch/ is ignored), so that the GPU.js module's `import 'gpu.js'` resolves
  mkdirSync(path.join(ROOT, 'scratch'), { recursive: true });
  const dir = mkdtempSync(path.join(ROOT, 'scratch', 'precision-'));
  const mods = {};
  for (const [suffix, emit] of [['', emitTs], ['.wasm', emitWasm], ['.gpu', emitGpu]]) {
    writeFileSync(path.join(dir, `${name}${suffix}.js`), indent(emit(info, false)));
    mods[suffix] = await import(pathToFileURL(path.join(dir, `${name}${suffix}.js`)).href);
  }
  // params: the module's initialisation with gains and biases drawn around it; inputs in [0, 1) as images
  const r = mulberry32(11);
  const randn = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const params = mods[''].initParams(5);
  for (const [k, v] of Object.entries(params)) if (/^bn\d+_[gb]$/.test(k)) for (let i = 0; i < v.length; i++) v[i] += 0.2 * randn();
  const spec = mods[''].spec.inputs;
  const inputs = {
    x: Float32Array.from({ length: spec.x.shape.reduce((a, b) => a * b, 1) }, r), // pixels in [0, 1)
    labels: Int32Array.from({ length: spec.labels.shape[0] }, () => Math.floor(r() * 10)),
  };
  let t0 = performance.now();
  const vals = interpret(fwd, { params, inputs });
  const bv = interpret(bwd, { fwd: vals });
  const ref = Object.fromEntries(bwd.outputs.map((o) => [o.name, bv.get(bwd.value(o.value).name).data]));
  const refLoss = vals.get('loss').data[0];
  console.log(`${name}: float64 interpreter ${((performance.now() - t0) / 1000).toFixed(1)} s, loss ${refLoss}`);
  if (dump) {
    mkdirSync(dump, { recursive: true });
    const arr = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Array.from(v)]));
    writeFileSync(path.join(dump, `${name}.json`), JSON.stringify({ params: arr(params), inputs: arr(inputs), grads: arr(ref), xShape: spec.x.shape, shapes: Object.fromEntries(Object.entries(mods[''].spec.params).map(([k, s]) => [k, s.shape])) }));
  }
  const runs = {};
  for (const t of targets) {
    t0 = performance.now();
    if (t === 'flat') runs[t] = mods[''].valueAndGrad(params, inputs);
    else if (t === 'wasm') runs[t] = mods['.wasm'].valueAndGrad(params, inputs);
    else if (t === 'threads') {
      const m = await mods['.wasm'].create({ threads: 2, minWork: 0 });
      runs[t] = m.valueAndGrad(params, inputs);
      runs[t] = { loss: runs[t].loss, grads: Object.fromEntries(Object.entries(runs[t].grads).map(([k, v]) => [k, Float32Array.from(v)])) };
      await m.destroy();
    } else if (t === 'gpu' || t === 'webasm') {
      const m = await mods['.gpu'].create({ mode: t === 'gpu' ? 'cpu' : 'webasm' });
      runs[t] = await m.valueAndGrad(params, inputs);
      m.destroy();
    }
    const ms = performance.now() - t0;
    const errs = Object.keys(ref).map((k) => [k, relErr(runs[t].grads[k], ref[k])]);
    const worst = errs.reduce((a, b) => (b[1] > a[1] ? b : a));
    console.log(`  ${t.padEnd(8)} ${ms.toFixed(0).padStart(6)} ms  loss err ${relErr([runs[t].loss], [refLoss]).toExponential(2)}  worst ${worst[0]} ${worst[1].toExponential(2)}`);
    console.log(`           ${errs.map(([k, e]) => `${k} ${e.toExponential(2)}`).join(', ')}`);
  }
}
process.exit(0);
