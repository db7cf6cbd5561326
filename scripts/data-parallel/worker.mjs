// A worker of GradientPool: the generated module's valueAndGrad on its shard, its gradients
// written into shared memory for the main thread to sum.
import { parentPort, workerData } from 'node:worker_threads';
import { viewsOf } from './pool.mjs';

const { modulePath, spec } = workerData;
const mod = await import(modulePath);
const params = viewsOf(spec.params, workerData.params);
const inputs = viewsOf(spec.inputs, workerData.inputs);
const grads = viewsOf(spec.params, workerData.grads);
parentPort.on('message', () => {
  try {
    const r = mod.valueAndGrad(params, inputs);
    for (const k in grads) grads[k].set(r.grads[k]);
    parentPort.postMessage({ loss: r.loss });
  } catch (e) {
    parentPort.postMessage({ error: e.message });
  }
});
parentPort.postMessage('ready');
