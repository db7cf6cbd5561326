// The makemore task in the browser: the names as the Node demo splits them (scripts/demo/), random
// minibatches of 32 trained by the module's compiled trainStep (SGD) at the lecture's learning
// rate, and the evaluation of the Node demo
// (scripts/demo/evaluate.mjs): batchnorm calibrated on the whole training set, the dev split's
// loss, names sampled from the network.
import { splits } from '/scripts/demo/dataset.mjs';
import { calibrate, sampleNames, splitLoss } from '/scripts/demo/evaluate.mjs';
import { Rng } from '/scripts/demo/rng.mjs';
import { loadModule } from './load.mjs';

/** The lecture's schedule (as scripts/demo/train.mjs): 0.1 for the first half of the run, then 0.01. */
const learningRate = (step, steps) => (step < steps / 2 ? 0.1 : 0.01);

/** `module`: the training module picked on the page (wasm, threaded wasm or flat: `{ url, threads? }`); the evaluation uses wasm. */
export async function createTask({ module, seed = 1 }) {
  const [names, train, calibrateMod, dev, sampler] = await Promise.all([
    fetch('/web-out/names.json').then((r) => r.json()),
    loadModule(module.url, module),
    loadModule('/web-out/generated/makemore_calibrate/makemore_calibrate.wasm.js'),
    loadModule('/web-out/generated/makemore_dev/makemore_dev.wasm.js'),
    loadModule('/web-out/generated/makemore_inference/makemore_inference.wasm.js'),
  ]);
  const data = splits(names);
  const rng = new Rng(seed * 2654435761);
  const sampleRng = new Rng(seed + 2147483647);
  const [batch, block] = train.spec.inputs.Xb.shape;
  const inputs = { Xb: new Int32Array(batch * block), Yb: new Int32Array(batch) };
  const params = train.initParams(seed);
  // the module's compiled training step (built with --optimizer sgd): forward, backward and update
  const state = train.initOptState(params);
  return {
    info: `${names.length} names: ${data.train.n} training examples, ${data.dev.n} dev${train.threads ? `, ${train.threads} threads` : ''}`,
    params,
    /** One SGD step on a random minibatch; returns its loss. */
    step(step, steps) {
      const { X, Y, n } = data.train;
      for (let i = 0; i < batch; i++) {
        const k = rng.int(n);
        for (let j = 0; j < block; j++) inputs.Xb[i * block + j] = X[k * block + j];
        inputs.Yb[i] = Y[k];
      }
      return train.trainStep(params, state, inputs, { lr: learningRate(step, steps) }).loss;
    },
    /** Training and dev loss with batchnorm calibrated on the training set, and sampled names. */
    evaluate() {
      const stats = calibrate(calibrateMod, params, data.train);
      return {
        train: stats.loss,
        dev: splitLoss(dev, params, stats, data.dev),
        samples: sampleNames(sampler, params, stats, sampleRng, sampler.spec.inputs.Xb.shape[0]),
      };
    },
  };
}
