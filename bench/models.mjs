// The models the benchmark builds with graphc: the makemore MLP at each size (long form and
// composite ops) and plain MLPs of many layers (for build time), plus the FLOP counts.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..');
const CLI = path.join(ROOT, 'bin/graphc.js');

/** The two sizes of the makemore network that are timed. */
export const SIZES = {
  S: { batch: 32, block: 3, nEmbd: 10, nHidden: 64, vocab: 27 },
  L: { batch: 256, block: 3, nEmbd: 64, nHidden: 1024, vocab: 27 },
};

/** A seeded uniform [0, 1) stream (mulberry32): the inputs every contender gets. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random inputs of a spec from a seeded stream: f32 in [0, 1), i32 in [0, classes[name]). */
export function randomInputs(spec, seed, classes) {
  const rand = mulberry32(seed);
  return Object.fromEntries(
    Object.entries(spec.inputs).map(([k, { shape, dtype }]) => {
      const n = shape.reduce((a, d) => a * d, 1);
      return [k, dtype === 'f32' ? Float32Array.from({ length: n }, () => rand()) : Int32Array.from({ length: n }, () => Math.floor(rand() * classes[k]))];
    }),
  );
}

/** The reference FLOP count per training step that GFLOP/s is computed against. */
export const REFERENCE_FLOPS = { S: 754e3, L: 350e6 };

/**
 * Our own count of one step (forward + backward) of the makemore MLP: the matmuls exactly
 * (forward, and two of the same size backward: dX and dW), elementwise work and reductions
 * approximately (about 24 operations per hidden unit and example, 12 per logit, one per gathered
 * embedding value for dC).
 */
export function makemoreFlops({ batch: n, block, nEmbd, nHidden: H, vocab: V }) {
  const K = block * nEmbd;
  const matmul = 3 * 2 * n * (K * H + H * V);
  const elementwise = 24 * n * H + 12 * n * V + n * K;
  return { matmul, elementwise, total: matmul + elementwise };
}

/**
 * Runs `graphc build MODEL --out DIR --target LIST` as a child process; returns its wall time.
 * The targets default to ts,gpu, graphc build's default when the bench's build times were first
 * measured (it is ts,wasm now), so that the times stay comparable. `cli`: another build's
 * bin/graphc.js (bench/baseline.mjs).
 */
export function graphcBuild(modelFile, outDir, { timeoutMs = 180_000, target = 'ts,gpu', cli = CLI } = {}) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, 'build', modelFile, '--out', outDir, '--target', target], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
  });
  const ms = performance.now() - t0;
  const ok = r.status === 0;
  const timedOut = r.error?.code === 'ETIMEDOUT';
  const error = ok ? undefined : timedOut ? `timed out after ${timeoutMs / 1000} s` : (r.stderr || r.stdout || `exit ${r.status}`).trim();
  return { ok, ms, error, timedOut };
}

/**
 * Writes the model file of a makemore variant ('composite', 'long', 'symbolic': the composite
 * one built once for any batch, 'B', or 'wasm': the composite one built with --target wasm) and
 * builds it; with `baseline` (bench/baseline.mjs), with that build's compiler.
 */
export function buildMakemore(workDir, variant, sizeName, { baseline } = {}) {
  const name = `makemore_${variant}_${sizeName}${baseline ? '_baseline' : ''}`;
  const [fn, file] = variant === 'long' ? ['makemore', 'makemore.ts'] : ['makemoreComposite', 'makemore_composite.ts'];
  const cfg = variant === 'symbolic' ? { ...SIZES[sizeName], batch: 'B' } : SIZES[sizeName];
  const src = path.join(workDir, `${name}.ts`);
  writeFileSync(src, `import { ${fn} } from ${JSON.stringify(path.join(ROOT, 'examples', file))};\n` + `export default ${fn}(${JSON.stringify(cfg)}, '${name}');\n`);
  const outDir = path.join(workDir, name);
  const build = graphcBuild(src, outDir, { ...(variant === 'wasm' ? { target: 'wasm' } : {}), ...(baseline ? { cli: baseline.cli } : {}) });
  const module = path.join(outDir, `${name}${variant === 'wasm' ? '.wasm' : ''}.js`);
  return { name, module, ...build, ...(build.ok ? fileStats(module) : {}) };
}

/** An MLP of `layers` layers h = relu(h W_i + b_i), W_i [64,64], on x [32,64]; loss mean(h²). */
export function mlpSource(layers) {
  const lines = [
    `import { model } from 'graphc';`,
    ``,
    `export default model('mlp${layers}', (g) => {`,
    `  const x = g.input('x', [32, 64]);`,
  ];
  for (let i = 1; i <= layers; i++) {
    lines.push(
      `  const W${i} = g.param('W${i}', [64, 64], { scale: 0.125 });`,
      `  const b${i} = g.param('b${i}', [64], { scale: 0.1 });`,
      `  const h${i} = ${i === 1 ? 'x' : `h${i - 1}`}.matmul(W${i}).add(b${i}).relu();`,
    );
  }
  lines.push(`  const loss = h${layers}.square().mean();`, `  return { loss };`, `});`, ``);
  return lines.join('\n');
}

/** Builds an MLP of `layers` layers; a build that runs past `timeoutMs` is stopped and reported. */
export function buildMlp(workDir, layers, { timeoutMs = 60_000 } = {}) {
  const name = `mlp${layers}`;
  const src = path.join(workDir, `${name}.ts`);
  writeFileSync(src, mlpSource(layers));
  const outDir = path.join(workDir, name);
  const build = graphcBuild(src, outDir, { timeoutMs });
  return { name, layers, ...build, ...(build.ok ? fileStats(path.join(outDir, `${name}.js`)) : {}) };
}

function fileStats(file) {
  return { jsBytes: statSync(file).size, jsLines: readFileSync(file, 'utf8').split('\n').length };
}

/**
 * Makes sure dist/ (the compiled compiler) exists, building it when it is missing or when asked;
 * returns a warning when the sources look newer than dist/.
 */
export function ensureCompilerBuilt({ rebuild }) {
  const cli = path.join(ROOT, 'dist/src/cli.js');
  if (rebuild || !existsSync(cli)) {
    console.log(`building the compiler: npx tsc -p tsconfig.build.json`);
    const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) console.log(`  tsc exited ${r.status}: dist/ may be incomplete (the compiler's sources may be mid-change)`);
  }
  if (!existsSync(cli)) throw new Error('dist/src/cli.js is missing: run `npm run build`');
  const built = statSync(cli).mtimeMs;
  const newest = newestMtime(['src', 'ir', 'codegen'].map((d) => path.join(ROOT, d)));
  return newest > built + 1000 ? 'dist/ is older than src/, ir/ or codegen/: run `npm run build` (or pass --rebuild) to bench the current sources' : undefined;
}

function newestMtime(dirs) {
  let newest = 0;
  const walk = (d) => {
    for (const e of safeReaddir(d)) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  dirs.forEach(walk);
  return newest;
}

function safeReaddir(d) {
  try {
    return readdirSync(d, { withFileTypes: true });
  } catch {
    return [];
  }
}
