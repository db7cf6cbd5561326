// Training with a graphc-generated module: minibatch SGD with the lecture's step decay of the
// learning rate, and checkpoints from which a run resumes exactly where it stopped: the params in
// a safetensors file (graphc/io's saveParams, readable by PyTorch and Hugging Face), and beside
// it a small JSON of the training state (step, the random state that draws the minibatches, the
// loss history) that names the params file.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { checkParams, loadTensors, saveParams } from 'graphc/io';
import { Rng } from './rng.mjs';

/** The lecture's schedule: 0.1 for the first half of the run, then 0.01. */
export function learningRate(step, steps) {
  return step < steps / 2 ? 0.1 : 0.01;
}

export class Trainer {
  /**
   * `mod`: the generated module of the training network (inputs Xb [batch, block], Yb [batch]);
   * `train`: the training dataset; `steps`: the length of the run (the schedule depends on it).
   */
  constructor(mod, train, { steps, seed = 1, params, step = 0, rng, history, window = [0, 0] }) {
    this.mod = mod;
    this.train = train;
    this.steps = steps;
    this.seed = seed;
    this.params = params ?? mod.initParams(seed);
    this.step = step;
    this.rng = new Rng(rng ?? seed * 2654435761);
    /** Mean minibatch loss of every `window` steps, and the dev loss at each evaluation. */
    this.history = history ?? { window: 100, train: [], dev: [] };
    [this.windowSum, this.windowCount] = window;
    const [batch, block] = mod.spec.inputs.Xb.shape;
    this.batch = { Xb: new Int32Array(batch * block), Yb: new Int32Array(batch) };
  }

  /** One SGD step on a random minibatch; returns its loss. */
  trainStep() {
    const { Xb, Yb } = this.batch;
    const { X, Y, n, block } = this.train;
    for (let i = 0; i < Yb.length; i++) {
      const k = this.rng.int(n);
      for (let j = 0; j < block; j++) Xb[i * block + j] = X[k * block + j];
      Yb[i] = Y[k];
    }
    const { loss, grads } = this.mod.valueAndGrad(this.params, this.batch);
    const lr = learningRate(this.step, this.steps);
    if (this.mod.update) this.mod.update(this.params, grads, lr); // built with --optimizer sgd
    else
      for (const name in this.params) {
        const p = this.params[name];
        const g = grads[name];
        for (let i = 0; i < p.length; i++) p[i] -= lr * g[i];
      }
    this.step++;
    this.windowSum += loss;
    if (++this.windowCount === this.history.window) {
      this.history.train.push([this.step, this.windowSum / this.windowCount]);
      this.windowSum = 0;
      this.windowCount = 0;
    }
    return loss;
  }

  /** What a checkpoint holds (params copied). */
  state() {
    return {
      format: 'graphc-demo-checkpoint',
      version: 2,
      model: this.mod.spec.name,
      steps: this.steps,
      seed: this.seed,
      step: this.step,
      rng: this.rng.state,
      history: this.history,
      window: [this.windowSum, this.windowCount],
      params: Object.fromEntries(Object.entries(this.params).map(([k, v]) => [k, Float32Array.from(v)])),
    };
  }

  /** A trainer that continues from a checkpoint's state (params as Float32Arrays, as loadCheckpoint gives them). */
  static resume(mod, train, state) {
    if (state.format !== 'graphc-demo-checkpoint' || state.version !== 2) throw new Error('not a graphc demo checkpoint (version 2)');
    if (state.model !== mod.spec.name) throw new Error(`the checkpoint is of model '${state.model}', not '${mod.spec.name}'`);
    checkParams(state.params, mod.spec, { file: state.paramsFile });
    const params = Object.fromEntries(Object.keys(mod.spec.params).map((k) => [k, Float32Array.from(state.params[k])]));
    const { steps, seed, step, rng, history, window } = state;
    return new Trainer(mod, train, { steps, seed, params, step, rng, history, window });
  }
}

/** Writes `data` to `file` atomically: a temporary file beside it, synced, then renamed over it. */
export function writeFileAtomic(file, data) {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** The params file of a checkpoint: checkpoint.json's params live in checkpoint.safetensors. */
export function paramsFileOf(file) {
  return file.replace(/(\.json)?$/, '.safetensors');
}

/**
 * Writes the params to the safetensors file beside `file` (its metadata records the step), then
 * the training state to `file`, each atomically.
 */
export function saveCheckpoint(file, trainer) {
  const { params, ...state } = trainer.state();
  const paramsFile = paramsFileOf(file);
  saveParams(paramsFile, params, { spec: trainer.mod.spec, metadata: { format: state.format, model: state.model, step: String(state.step) } });
  writeFileAtomic(file, JSON.stringify({ ...state, params: path.basename(paramsFile) }));
}

/** The state of a checkpoint with its params read from the safetensors file it names. */
export function loadCheckpoint(file) {
  const state = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof state.params !== 'string') throw new Error(`${file}: not a graphc demo checkpoint (version 2: the params in a .safetensors file it names)`);
  const paramsFile = path.resolve(path.dirname(file), state.params);
  const { tensors, metadata } = loadTensors(paramsFile);
  if (metadata.step !== String(state.step))
    throw new Error(`${paramsFile} holds the params of step ${metadata.step}, but ${file} is the state of step ${state.step} (was a save interrupted?)`);
  return { ...state, paramsFile, params: Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.data])) };
}
