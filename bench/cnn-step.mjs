// One training step of examples/cnn.ts (LeNet-style, batch 64) in graphc's flat and wasm modules
// (generated/cnn) beside TF.js (its wasm backend when it can run the step, else its cpu backend)
// and PyTorch on 1 thread (bench/cnn_torch.py, when torch is importable), all checked first for
// agreement with the flat module (loss and every gradient within 1e-4 relative error). Times are
// medians of `reps` steps (valueAndGrad: forward and backward; no optimizer); the in-process
// contenders are timed in alternation (one step of each per round), so that a shared machine's
// load falls on all of them alike. Used by `npm run bench:cnn` (bench/cnn.mjs) and `npm run bench`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { mulberry32, ROOT } from './models.mjs';
import { findTorchPython, torchEnv } from './workers.mjs';

const load = (dir, f) => import(pathToFileURL(path.resolve(dir, f)).href);

const relErr = (a, b) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
};

/**
 * Rows { name, ms, err } (err: the worst relative error against the flat module) and notes (the
 * contenders that could not run, and why). `tfjs`: the TF.js backends to try in order, the first
 * that runs the step is timed (wasm in the alternation; the cpu backend, seconds a step, alone for
 * `tfjsReps` steps);
 * `before`: a folder with the flat and wasm modules of an earlier build (cnn.js, cnn.wasm.js).
 */
export async function cnnStep({ reps = 20, tfjs = ['wasm', 'cpu'], tfjsReps = reps, before } = {}) {
  const gen = path.join(ROOT, 'generated/cnn');
  const flat = await load(gen, 'cnn.js');
  const wasm = await load(gen, 'cnn.wasm.js');
  const params = flat.initParams(1);
  const r = mulberry32(7);
  const x = Float32Array.from({ length: 64 * 784 }, () => r());
  const labels = Int32Array.from({ length: 64 }, () => Math.floor(r() * 10));
  const inputs = { x, labels };
  const notes = [];
  const want = flat.valueAndGrad(params, inputs);
  const wantGrads = Object.fromEntries(Object.entries(want.grads).map(([k, v]) => [k, Float32Array.from(v)]));
  const agree = (name, got) => {
    const errs = [relErr([got.loss], [want.loss]), ...Object.keys(wantGrads).map((k) => relErr(got.grads[k], wantGrads[k]))];
    const worst = Math.max(...errs);
    if (!(worst < 1e-4)) throw new Error(`${name} disagrees with the flat module on examples/cnn.ts: relative error ${worst}`);
    return worst;
  };
  /** TF.js (tfjs-core + tfjs-backend-wasm) writing the same network, NHWC as TF.js's convolutions want. */
  async function tfjsContender(backend) {
    // the CommonJS builds: @tensorflow/tfjs registers the gradients, and the wasm backend shares its engine
    const require = createRequire(import.meta.url);
    const tf = require('@tensorflow/tfjs');
    require('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend(backend);
    await tf.ready();
    // layouts outside the timed step: x NHWC, conv weights [kH, kW, in, out]
    const xt = tf.transpose(tf.tensor4d(x, [64, 1, 28, 28]), [0, 2, 3, 1]);
    const yt = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
    const conv = (k) => tf.transpose(tf.tensor(params[k], flat.spec.params[k].shape), [2, 3, 1, 0]);
    const vars = {
      W1: conv('W1'), b1: tf.tensor(params.b1), W2: conv('W2'), b2: tf.tensor(params.b2),
      W3: tf.tensor(params.W3, [256, 120]), b3: tf.tensor(params.b3), W4: tf.tensor(params.W4, [120, 10]), b4: tf.tensor(params.b4),
    };
    const names = Object.keys(vars);
    // TF.js 4.22's wasm backend has no Conv2DBackpropFilter kernel (the weight gradient of
    // tf.conv2d), but it has Conv3DBackpropFilterV2: on wasm, the convolution's gradient is TF.js's
    // own, with the weight gradient of the same convolution seen as a 3-D one of depth 1
    const conv2d =
      backend !== 'wasm'
        ? (h, w) => tf.conv2d(h, w, 1, 'valid')
        : tf.customGrad((h, w, save) => {
            save([h, w]);
            const gradFunc = (dy, [hs, ws]) => [
              tf.conv2dTranspose(dy, ws, hs.shape, 1, 'valid'),
              tf.reshape(tf.engine().runKernel('Conv3DBackpropFilterV2', { x: tf.expandDims(hs, 1), dy: tf.expandDims(dy, 1) }, { strides: [1, 1, 1, 1, 1], pad: 'valid', filterShape: [1, ...ws.shape] }), ws.shape),
            ];
            return { value: tf.conv2d(h, w, 1, 'valid'), gradFunc };
          });
    const f = (...v) => {
      const p = Object.fromEntries(names.map((k, i) => [k, v[i]]));
      const h1 = tf.maxPool(tf.relu(tf.add(conv2d(xt, p.W1), p.b1)), 2, 2, 'valid');
      const h2 = tf.maxPool(tf.relu(tf.add(conv2d(h1, p.W2), p.b2)), 2, 2, 'valid');
      // flattened in PyTorch's [N, C, H, W] order, as examples/cnn.ts flattens (a 16K-float transpose)
      const h3 = tf.relu(tf.add(tf.matMul(tf.reshape(tf.transpose(h2, [0, 3, 1, 2]), [64, 256]), p.W3), p.b3));
      const logits = tf.add(tf.matMul(h3, p.W4), p.b4);
      return tf.neg(tf.mean(tf.sum(tf.mul(yt, tf.logSoftmax(logits)), 1)));
    };
    const vg = tf.valueAndGrads(f);
    const step = () => {
      const { value, grads } = vg(names.map((k) => vars[k]));
      const out = { loss: value.dataSync()[0], grads: Object.fromEntries(names.map((k, i) => [k, grads[i]])) };
      return out;
    };
    const check = step();
    const got = { loss: check.loss, grads: {} };
    for (const k of names) {
      const g = k === 'W1' || k === 'W2' ? tf.transpose(check.grads[k], [3, 2, 0, 1]) : check.grads[k];
      got.grads[k] = g.dataSync();
    }
    tf.dispose([...Object.values(check.grads)]);
    const err = agree('TF.js', got);
    const run = () => {
      const o = step();
      for (const g of Object.values(o.grads)) g.dataSync(); // the gradients read back, as graphc's are in arrays
      tf.dispose(Object.values(o.grads));
    };
    // its wasm backend is timed in the alternation with graphc's; the cpu backend (seconds a step) on its own
    return { name: `TF.js ${tf.version_core} ${backend === 'wasm' ? 'wasm (SIMD, 1 thread)' : backend}`, run, err, alternate: backend === 'wasm' };
  }


  const contenders = [
    { name: 'graphc flat', run: () => flat.valueAndGrad(params, inputs), err: 0 },
    { name: 'graphc wasm', run: () => wasm.valueAndGrad(params, inputs), err: agree('wasm', wasm.valueAndGrad(params, inputs)) },
  ];
  if (before) {
    const bf = await load(before, 'cnn.js');
    const bw = await load(before, 'cnn.wasm.js');
    contenders.push({ name: 'before: flat', run: () => bf.valueAndGrad(params, inputs), err: agree('before flat', bf.valueAndGrad(params, inputs)) });
    contenders.push({ name: 'before: wasm', run: () => bw.valueAndGrad(params, inputs), err: agree('before wasm', bw.valueAndGrad(params, inputs)) });
  }
  // the first backend that runs the step is timed (on wasm, the weight gradient goes through its
  // 3-D kernel, above; the cpu backend takes seconds a step: timed on its own, tfjsReps steps)
  let tf;
  for (const backend of tfjs)
    try {
      tf = await tfjsContender(backend);
      break;
    } catch (e) {
      notes.push(`no TF.js ${backend} row: ${e.message.split('\n')[0]}`);
    }

  if (tf?.alternate) contenders.push(tf);
  // in alternation: a few warm-up rounds, then `reps` rounds of one step of each contender
  const times = contenders.map(() => []);
  for (let round = 0; round < reps + 3; round++)
    contenders.forEach((c, i) => {
      const t0 = performance.now();
      c.run();
      if (round >= 3) times[i].push(performance.now() - t0);
    });
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const rows = contenders.map((c, i) => ({ name: c.name, ms: median(times[i]), err: c.err }));
  if (tf && !tf.alternate) {
    const t = [];
    for (let k = 0; k < tfjsReps; k++) {
      const t0 = performance.now();
      tf.run();
      t.push(performance.now() - t0);
    }
    rows.push({ name: tf.name, ms: median(t), err: tf.err });
  }

  const dir = mkdtempSync(path.join(tmpdir(), 'graphc-cnn-'));
  try {
    for (const [k, v] of Object.entries(params)) writeFileSync(path.join(dir, `${k}.f32`), v);
    writeFileSync(path.join(dir, 'x.f32'), x);
    writeFileSync(path.join(dir, 'labels.i32'), labels);
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ params: Object.fromEntries(Object.entries(flat.spec.params).map(([k, s]) => [k, s.shape])), x: [64, 1, 28, 28], reps }));
    const python = findTorchPython();
    // 1 thread for OpenBLAS too: Debian's runs as many threads as cores under torch.set_num_threads(1);
    // OMP_WAIT_POLICY and malloc's thresholds as bench/workers.mjs gives every PyTorch process
    const py = python ? spawnSync(python, [path.join(ROOT, 'bench/cnn_torch.py'), dir], { encoding: 'utf8', maxBuffer: 1 << 28, env: torchEnv(1) }) : undefined;
    if (!py) notes.push('no PyTorch row (skipped): torch is not importable (tried python3 and /usr/bin/python3; on Debian: apt-get install python3-torch)');
    else if (py.status === 0) {
      const t = JSON.parse(py.stdout);
      rows.push({ name: `PyTorch ${t.torch} (1 thread)`, ms: t.ms, err: agree('PyTorch', t) });
    } else notes.push(`no PyTorch row (skipped): ${(py.stderr ?? String(py.error)).trim().split('\n').at(-1)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { rows, notes };
}
