// Training with a graphc-generated module: its compiled trainStep (built with --optimizer sgd),
// the lecture's step decay of the learning rate through options.lr, batchnorm running statistics
// kept beside it, and checkpoints from which a run resumes exactly where it stopped: the params,
// the running buffers and the optimizer state's arrays (SGD without momentum has none) in a
// safetensors file (graphc/io's saveParams, readable by PyTorch and Hugging Face), and beside it a
// small JSON of the training state (step, the optimizer's step count, the random state that draws
// the minibatches, the loss history) that names the tensors file.
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
   * `mod`: the generated module of the training network (inputs Xb [batch, block], Yb [batch]),
   * built with `--optimizer` (its compiled `trainStep`); `train`: the training dataset; `steps`:
   * the length of the run (the schedule depends on it). `running` (optional): a module of the
   * same network with batchnorm running statistics (`g.batchNorm(..., { momentum })`, the same
   * params); before each step a training-mode forward of it on the step's minibatch moves its
   * buffers towards the batch statistics, as the lecture updates `bnmean_running` in its forward pass.
   */
  constructor(mod, train, { steps, seed = 1, params, step = 0, rng, history, window = [0, 0], opt, running, buffers }) {
    if (typeof mod.trainStep !== 'function') throw new Error(`the module '${mod.spec.name}' has no trainStep: build it with graphc build --optimizer sgd`);
    this.mod = mod;
    this.train = train;
    this.steps = steps;
    this.seed = seed;
    this.params = params ?? mod.initParams(seed);
    this.opt = opt ?? mod.initOptState(this.params);
    this.running = running;
    this.buffers = running ? (buffers ?? running.initBuffers()) : undefined;
    this.step = step;
    this.rng = new Rng(rng ?? seed * 2654435761);
    /** Mean minibatch loss of every `window` steps, and the dev loss at each evaluation. */
    this.history = history ?? { window: 100, train: [], dev: [] };
    [this.windowSum, this.windowCount] = window;
    const [batch, block] = mod.spec.inputs.Xb.shape;
    this.batch = { Xb: new Int32Array(batch * block), Yb: new Int32Array(batch) };
  }

  /** One step of the compiled optimizer on a random minibatch; returns its loss. */
  trainStep() {
    const { Xb, Yb } = this.batch;
    const { X, Y, n, block } = this.train;
    for (let i = 0; i < Yb.length; i++) {
      const k = this.rng.int(n);
      for (let j = 0; j < block; j++) Xb[i * block + j] = X[k * block + j];
      Yb[i] = Y[k];
    }
    if (this.running) this.running.forward(this.params, this.batch, { train: true, buffers: this.buffers });
    const { loss } = this.mod.trainStep(this.params, this.opt, this.batch, { lr: learningRate(this.step, this.steps) });
    this.step++;
    this.windowSum += loss;
    if (++this.windowCount === this.history.window) {
      this.history.train.push([this.step, this.windowSum / this.windowCount]);
      this.windowSum = 0;
      this.windowCount = 0;
    }
    return loss;
  }

  /**
   * What a checkpoint holds (arrays copied): `tensors` are the params, the running buffers (by
   * their names) and the optimizer state's arrays (`opt.<key>.<param>`); the rest is JSON.
   */
  state() {
    const copy = (v) => Float32Array.from(v);
    const tensors = Object.fromEntries(Object.entries(this.params).map(([k, v]) => [k, copy(v)]));
    for (const [k, v] of Object.entries(this.buffers ?? {})) tensors[k] = copy(v);
    const opt = {};
    for (const [key, v] of Object.entries(this.opt)) {
      if (typeof v === 'number') opt[key] = v;
      else for (const [p, a] of Object.entries(v)) tensors[`opt.${key}.${p}`] = copy(a);
    }
    return {
      format: 'graphc-demo-checkpoint',
      version: 3,
      model: this.mod.spec.name,
      running: this.running?.spec.name ?? null,
      steps: this.steps,
      seed: this.seed,
      step: this.step,
      rng: this.rng.state,
      opt,
      history: this.history,
      window: [this.windowSum, this.windowCount],
      tensors,
    };
  }

  /** A trainer that continues from a checkpoint's state (tensors as Float32Arrays, as loadCheckpoint gives them). */
  static resume(mod, train, state, running) {
    if (state.format !== 'graphc-demo-checkpoint' || state.version !== 3) throw new Error('not a graphc demo checkpoint (version 3)');
    if (state.model !== mod.spec.name) throw new Error(`the checkpoint is of model '${state.model}', not '${mod.spec.name}'`);
    if (state.running !== (running?.spec.name ?? null))
      throw new Error(`the checkpoint's running statistics are of '${state.running}', not '${running?.spec.name ?? null}'`);
    const { tensors } = state;
    const pick = (names) => Object.fromEntries(names.filter((k) => k in tensors).map((k) => [k, tensors[k]]));
    const paramNames = Object.keys(mod.spec.params);
    checkParams(pick(paramNames), mod.spec, { file: state.paramsFile });
    const params = Object.fromEntries(paramNames.map((k) => [k, Float32Array.from(tensors[k])]));
    let buffers;
    if (running) {
      buffers = running.initBuffers();
      for (const k of Object.keys(buffers)) {
        if (!(k in tensors)) throw new Error(`${state.paramsFile}: missing buffer '${k}' of ${running.spec.name}`);
        buffers[k].set(tensors[k]);
      }
    }
    const opt = mod.initOptState(params);
    for (const [key, v] of Object.entries(opt)) {
      if (typeof v === 'number') {
        if (typeof state.opt?.[key] !== 'number') throw new Error(`the checkpoint has no optimizer state '${key}'`);
        opt[key] = state.opt[key];
      } else
        for (const [p, a] of Object.entries(v)) {
          const t = tensors[`opt.${key}.${p}`];
          if (!t) throw new Error(`${state.paramsFile}: missing optimizer state 'opt.${key}.${p}'`);
          a.set(t);
        }
    }
    const { steps, seed, step, rng, history, window } = state;
    return new Trainer(mod, train, { steps, seed, params, step, rng, history, window, opt, running, buffers });
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
  const { tensors, ...state } = trainer.state();
  const paramsFile = paramsFileOf(file);
  saveParams(paramsFile, tensors, { spec: trainer.mod.spec, metadata: { format: state.format, model: state.model, step: String(state.step) } });
  writeFileAtomic(file, JSON.stringify({ ...state, params: path.basename(paramsFile) }));
}

/** The state of a checkpoint with its params read from the safetensors file it names. */
export function loadCheckpoint(file) {
  const state = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof state.params !== 'string') throw new Error(`${file}: not a graphc demo checkpoint (version 3: the params in a .safetensors file it names)`);
  const paramsFile = path.resolve(path.dirname(file), state.params);
  const { tensors, metadata } = loadTensors(paramsFile);
  if (metadata.step !== String(state.step))
    throw new Error(`${paramsFile} holds the params of step ${metadata.step}, but ${file} is the state of step ${state.step} (was a save interrupted?)`);
  return { ...state, paramsFile, tensors: Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.data])) };
}
