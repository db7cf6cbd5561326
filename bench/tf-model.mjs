// The makemore MLP in TensorFlow.js ops, trained with tf.variableGrads, on the CPU or the WASM
// backend. The math is the model's (examples/makemore.ts): batchnorm with batch statistics and
// Bessel's correction, tanh, and a cross-entropy via log-softmax, which subtracts the row max
// and holds it constant in the backward pass, as the model's stopGradient does.
import { register } from 'node:module';

/**
 * Loads tfjs-core with one backend. In Node, tfjs-core's package entry (a CommonJS bundle)
 * registers no gradient functions: the @tensorflow/tfjs union package bundles them in. With
 * tfjs-core alone we load core's own register_all_gradients module from its ES-module build
 * (that needs the resolve hook); its ops share the one global engine with the bundle, exactly as
 * in the union package's Node bundle.
 */
export async function loadTf(backend) {
  const tf = await import('@tensorflow/tfjs-core');
  const backendModule = backend === 'wasm' ? await import('@tensorflow/tfjs-backend-wasm') : await import('@tensorflow/tfjs-backend-cpu');
  register(new URL('./tf-esm-hook.mjs', import.meta.url));
  await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  tf.enableProdMode(); // silences the "install tfjs-node" banner; changes no kernel
  if (!(await tf.setBackend(backend))) throw new Error(`TF.js backend ${backend} failed to initialise`);
  await tf.ready();
  const info = { tfjsCore: tf.version_core, backend: tf.getBackend() };
  if (backend === 'wasm') {
    info.tfjsBackendWasm = backendModule.version_wasm;
    info.simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    info.threads = backendModule.getThreadsCount();
  } else info.tfjsBackendCpu = backendModule.version_cpu;
  return { tf, info };
}

/**
 * Variables from the given parameters; returns step() (one forward + backward, all gradients,
 * the loss read back as a number) and result() (the same, with copies of the gradients).
 */
export function makemoreTf(tf, cfg, shapes, params, inputs) {
  const { batch: n, block, nEmbd, vocab } = cfg;
  const v = {};
  for (const [name, shape] of Object.entries(shapes)) v[name] = tf.variable(tf.tensor(params[name], shape, 'float32'), true, name);
  const Xb = tf.tensor2d(inputs.Xb, [n, block], 'int32');
  const Ymask = oneHot(tf, tf.tensor1d(inputs.Yb, 'int32'), vocab); // [n, vocab]
  const embed = embedding(tf, Xb, vocab);

  function loss() {
    const emb = embed(v.C); // C[Xb]: [n, block, nEmbd]
    const embcat = tf.reshape(emb, [n, block * nEmbd]);
    const hprebn = tf.add(tf.matMul(embcat, v.W1), v.b1);
    const bnmeani = tf.mul(tf.sum(hprebn, 0, true), 1 / n);
    const bndiff = tf.sub(hprebn, bnmeani);
    const bndiff2 = tf.square(bndiff);
    const bnvar = tf.mul(tf.sum(bndiff2, 0, true), 1 / (n - 1)); // Bessel's correction
    const bnvar_inv = tf.rsqrt(tf.add(bnvar, 1e-5)); // (bnvar + eps)^-0.5
    const bnraw = tf.mul(bndiff, bnvar_inv);
    const hpreact = tf.add(tf.mul(v.bngain, bnraw), v.bnbias);
    const h = tf.tanh(hpreact);
    const logits = tf.add(tf.matMul(h, v.W2), v.b2);
    const logprobs = tf.logSoftmax(logits); // logits - max - log(sum(exp(logits - max)))
    return tf.mul(tf.sum(tf.mul(logprobs, Ymask)), -1 / n); // -mean(logprobs[i, Yb[i]])
  }

  const vars = Object.values(v);
  const step = () => {
    const { value, grads } = tf.variableGrads(loss, vars);
    const l = value.dataSync()[0];
    tf.dispose([value, ...Object.values(grads)]);
    return l;
  };
  const result = () => {
    const { value, grads } = tf.variableGrads(loss, vars);
    const out = { loss: value.dataSync()[0], grads: {} };
    for (const name of Object.keys(shapes)) out.grads[name] = Float32Array.from(grads[name].dataSync());
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  };
  return { step, result };
}

/**
 * C[Xb] by tf.gather. Gather's gradient is an UnsortedSegmentSum, a kernel the wasm backend
 * lacks (4.22: "Kernel 'UnsortedSegmentSum' not registered for backend 'wasm'"); there the
 * gradient is computed as onehot(Xb)ᵀ · dEmb with the backend's matMul instead.
 */
function embedding(tf, Xb, vocab) {
  if (tf.getKernel('UnsortedSegmentSum', tf.getBackend())) return (C) => tf.gather(C, Xb);
  const flat = tf.reshape(Xb, [-1]);
  const onehot = oneHot(tf, flat, vocab); // [n * block, vocab]
  return tf.customGrad((C) => {
    const value = tf.gather(C, Xb);
    const gradFunc = (dy) => tf.matMul(onehot, tf.reshape(dy, [flat.size, C.shape[1]]), true, false);
    return { value, gradFunc };
  });
}

/** A float32 one-hot matrix. (The wasm backend's OneHot gives zeros when asked for float32.) */
function oneHot(tf, indices, depth) {
  return tf.cast(tf.oneHot(indices, depth), 'float32');
}
