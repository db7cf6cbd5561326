// Data-parallel gradients on one machine: K worker threads, each holding the same generated
// module, compute valueAndGrad on their own shard of a batch; the main thread sums their
// gradients (an all-reduce) and divides by K. Each shard's loss is a mean over its examples, so
// with equal shards the result is the gradient of the mean loss over the whole batch: what the
// module built for K times the batch would compute (when examples do not interact: batchnorm's
// batch statistics would be per shard, as in torch's DistributedDataParallel without SyncBatchNorm).
//
// Params, inputs and gradients live in SharedArrayBuffers: the main thread updates the params in
// place and writes each shard's inputs; a worker reads them and writes its gradients; a step is
// one message to each worker and one reply.
import { Worker } from 'node:worker_threads';

const numel = (shape) => shape.reduce((a, d) => a * d, 1);
const Typed = { f32: Float32Array, i32: Int32Array };

/** A typed array per entry of a spec table (params, inputs), one after another in `sab`. */
export function viewsOf(table, sab) {
  let off = 0;
  const arrays = {};
  for (const [k, t] of Object.entries(table)) {
    arrays[k] = new Typed[t.dtype](sab, off, numel(t.shape));
    off += numel(t.shape) * 4; // f32 and i32 alike
  }
  return arrays;
}

/** One SharedArrayBuffer holding a typed array per entry of a spec table. */
export function sharedArrays(table) {
  const sab = new SharedArrayBuffer(Object.values(table).reduce((a, t) => a + numel(t.shape) * 4, 0));
  return { sab, arrays: viewsOf(table, sab) };
}

export class GradientPool {
  /** `modulePath`: a generated flat module (.js) with a static batch; `workers`: shards per step. */
  static async create(modulePath, workers) {
    const mod = await import(modulePath);
    const pool = new GradientPool(mod, modulePath, workers);
    await Promise.all(pool.workers.map((w) => new Promise((resolve, reject) => (w.once('message', resolve), w.once('error', reject)))));
    return pool;
  }

  constructor(mod, modulePath, k) {
    this.spec = mod.spec;
    const params = sharedArrays(mod.spec.params);
    /** The params every worker reads: update them in place between steps. */
    this.params = params.arrays;
    Object.entries(mod.initParams(0)).forEach(([n, v]) => this.params[n].set(v));
    this.shards = [];
    this.workerGrads = [];
    this.workers = Array.from({ length: k }, () => {
      const inputs = sharedArrays(mod.spec.inputs);
      const grads = sharedArrays(mod.spec.params);
      this.shards.push(inputs.arrays);
      this.workerGrads.push(grads.arrays);
      return new Worker(new URL('./worker.mjs', import.meta.url), {
        workerData: { modulePath, spec: mod.spec, params: params.sab, inputs: inputs.sab, grads: grads.sab },
      });
    });
    /** The averaged gradients (owned by the main thread). */
    this.grads = Object.fromEntries(Object.entries(mod.spec.params).map(([n, t]) => [n, new Float32Array(numel(t.shape))]));
  }

  /** One data-parallel valueAndGrad: the inputs of shard i are `this.shards[i]`, filled by the caller. */
  async valueAndGrad() {
    const losses = await Promise.all(
      this.workers.map((w) => new Promise((resolve, reject) => {
        w.once('message', (m) => (m.error ? reject(new Error(m.error)) : resolve(m.loss)));
        w.postMessage('step');
      })),
    );
    // the all-reduce: the mean of the shards' gradients
    const k = this.workers.length;
    for (const [n, g] of Object.entries(this.grads)) {
      g.fill(0);
      for (const wg of this.workerGrads) {
        const src = wg[n];
        for (let i = 0; i < g.length; i++) g[i] += src[i];
      }
      for (let i = 0; i < g.length; i++) g[i] /= k;
    }
    return { loss: losses.reduce((a, b) => a + b, 0) / k, grads: this.grads };
  }

  async close() {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
