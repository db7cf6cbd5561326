// Evaluation and sampling as in the lecture: calibrate batchnorm on the whole training set (one
// full-batch pass of the training network, which also gives the training loss), then evaluate a
// split and sample names with the inference network that normalises with those statistics.
import { itos } from './dataset.mjs';

/**
 * `calibrate`: the training network built for the whole training set, with the batch statistics
 * as outputs (`makemore(cfg, name, true)`).
 */
export function calibrate(calibrateMod, params, train) {
  const out = calibrateMod.forward(params, { Xb: train.X, Yb: train.Y });
  return { loss: out.loss, bnmean: Float32Array.from(out.bnmeani), bnvar: Float32Array.from(out.bnvar) };
}

/** The mean loss of a split, with the inference network (built with a symbolic batch, or for its size). */
export function splitLoss(inferenceMod, params, stats, split) {
  return inferenceMod.forward(params, { bnmean: stats.bnmean, bnvar: stats.bnvar, Xb: split.X, Yb: split.Y }).loss;
}

/** The mean loss of a split in evaluation mode, normalising with the running statistics in `buffers`. */
export function runningLoss(runningMod, params, buffers, split) {
  return runningMod.forward(params, { Xb: split.X, Yb: split.Y }, { buffers }).loss;
}

/** `count` names sampled side by side, each character drawn from the network's probs. */
export function sampleNames(inferenceMod, params, stats, rng, count, maxLen = 30) {
  const block = inferenceMod.spec.inputs.Xb.shape[1];
  const vocab = inferenceMod.spec.outputs.probs.shape[1];
  const Xb = new Int32Array(count * block); // contexts start as '...'
  const Yb = new Int32Array(count);
  const names = new Array(count).fill('');
  const done = new Array(count).fill(false);
  for (let t = 0; t < maxLen && done.includes(false); t++) {
    const { probs } = inferenceMod.forward(params, { bnmean: stats.bnmean, bnvar: stats.bnvar, Xb, Yb });
    for (let i = 0; i < count; i++) {
      if (done[i]) continue;
      const ix = rng.categorical(probs.subarray(i * vocab, (i + 1) * vocab));
      if (ix === 0) done[i] = true;
      else names[i] += itos(ix);
      Xb.copyWithin(i * block, i * block + 1, (i + 1) * block);
      Xb[(i + 1) * block - 1] = ix;
    }
  }
  return names;
}
