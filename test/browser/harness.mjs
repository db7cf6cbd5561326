// What the browser tests run inside Chromium: generated modules imported by URL, called on params
// and inputs sent from Node as plain arrays, their results sent back as plain arrays.
// `globalThis.harness` is what the tests call through page.evaluate.

/** Plain arrays to the typed arrays a module's spec asks for. */
function typed(spec, values) {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, spec[k].dtype === 'i32' ? Int32Array.from(v) : Float32Array.from(v)]));
}
const plain = (grads) => Object.fromEntries(Object.entries(grads).map(([k, v]) => [k, Array.from(v)]));

/** GPU.js models by module URL and mode: create() compiles every kernel (seconds on SwiftShader), once. */
const models = new Map();
async function gpuModel(url, mode) {
  const key = `${url} ${mode}`;
  if (!models.has(key)) models.set(key, import(url).then((mod) => mod.create({ mode }).then((model) => ({ mod, model }))));
  return models.get(key);
}

/** The options of a training call: a fixed dropout seed and fresh running statistics (as test/browser/examples.ts gives Node). */
const callOptions = (mod) => ({ seed: 1, buffers: mod.initBuffers?.() });

globalThis.harness = {
  /** loss and gradients of a flat or wasm module. */
  async valueAndGrad(url, params, inputs) {
    const mod = await import(url);
    const { loss, grads } = mod.valueAndGrad(typed(mod.spec.params, params), typed(mod.spec.inputs, inputs), callOptions(mod));
    return { loss, grads: plain(grads), simd: mod.simd ?? null }; // simd: a wasm module's multiply-adds, 'relaxed' or 'plain' (docs/wasm.md)
  },

  /** The GPU.js module in `mode`: the backend it got, its loss and gradients, and the adapter it ran on. */
  async gpuValueAndGrad(url, mode, params, inputs) {
    const { mod, model } = await gpuModel(url, mode);
    const { loss, grads } = await model.valueAndGrad(typed(mod.spec.params, params), typed(mod.spec.inputs, inputs), callOptions(mod));
    return { mode: model.mode, loss, grads: plain(grads) };
  },

  /** Destroys the GPU.js models created so far. */
  async destroyModels() {
    for (const m of models.values()) (await m).model.destroy();
    models.clear();
  },

  /**
   * `steps` of SGD at `lr` on one batch, from the same params, with the flat module and with the
   * GPU.js module in `mode`: the loss of every step of each.
   */
  async trainBoth(flatUrl, gpuUrl, mode, params, inputs, steps, lr) {
    const flat = await import(flatUrl);
    const { model } = await gpuModel(gpuUrl, mode);
    const ins = typed(flat.spec.inputs, inputs);
    const sgd = (p, grads) => {
      for (const k in p) for (let i = 0; i < p[k].length; i++) p[k][i] -= lr * grads[k][i];
    };
    const flatOptions = callOptions(flat);
    const gpuOptions = callOptions(flat);
    const pf = typed(flat.spec.params, params);
    const pg = typed(flat.spec.params, params);
    const flatLoss = [];
    const gpuLoss = [];
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      const r = await model.valueAndGrad(pg, ins, gpuOptions);
      gpuLoss.push(r.loss);
      sgd(pg, r.grads);
    }
    const gpuMs = (performance.now() - t0) / steps;
    for (let s = 0; s < steps; s++) {
      const r = flat.valueAndGrad(pf, ins, flatOptions);
      flatLoss.push(r.loss);
      sgd(pf, r.grads);
    }
    return { mode: model.mode, flatLoss, gpuLoss, gpuMs };
  },

  /** The WebGPU module (graphc build --target webgpu) at `url`: forward and valueAndGrad on navigator.gpu's device. */
  async webgpuRun(url, params, inputs) {
    const mod = await import(url);
    const model = await mod.create();
    try {
      const p = typed(mod.spec.params, params);
      const i = typed(mod.spec.inputs, inputs);
      const out = await model.forward(p, i, callOptions(mod));
      const vag = model.valueAndGrad ? await model.valueAndGrad(p, i, callOptions(mod)) : undefined;
      const outputs = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, typeof v === 'number' ? [v] : Array.from(v)]));
      return { outputs, loss: vag?.loss, grads: vag ? plain(vag.grads) : undefined };
    } finally {
      model.destroy();
    }
  },

  /** `steps` trainSteps of the WebGPU module at `url` (built with --optimizer): each loss, the params and state after. */
  async webgpuTrain(url, params, inputs, steps) {
    const mod = await import(url);
    const model = await mod.create();
    try {
      const p = typed(mod.spec.params, params);
      const i = typed(mod.spec.inputs, inputs);
      const state = model.initOptState(p);
      const options = { buffers: mod.initBuffers?.() };
      const losses = [];
      for (let s = 0; s < steps; s++) losses.push((await model.trainStep(p, state, i, options)).loss);
      const after = await model.readParams();
      const st = await model.readOptState();
      return { losses, params: plain(after), step: st.step };
    } finally {
      model.destroy();
    }
  },

  /**
   * A conformance case's WebGPU module at `url` (test/browser/webgpu-conformance.test.ts): forward,
   * then valueAndGrad, at each call's arguments (a training call with seed 7 and the given
   * buffers, which valueAndGrad updates), on one device shared by every case (asked for with the
   * adapter's storage limits, as create() does).
   */
  async webgpuConformance(url, calls, train) {
    const mod = await import(url);
    globalThis.confDevice ??= navigator.gpu.requestAdapter().then((a) => {
      const keys = ['maxStorageBuffersPerShaderStage', 'maxStorageBufferBindingSize', 'maxBufferSize'];
      return a.requestDevice({ requiredLimits: Object.fromEntries(keys.map((k) => [k, a.limits[k]])) });
    });
    const model = await mod.create({ device: await globalThis.confDevice });
    const f32 = (v) => Object.fromEntries(Object.entries(v ?? {}).map(([k, a]) => [k, Float32Array.from(a)]));
    const out = [];
    try {
      for (const c of calls) {
        const p = typed(mod.spec.params, c.params);
        const i = typed(mod.spec.inputs, c.inputs);
        const buffers = f32(c.buffers);
        const opts = (b) => (train ? { train: true, seed: 7, buffers: b } : undefined);
        const f = await model.forward(p, i, opts(f32(c.buffers)));
        const vg = await model.valueAndGrad(p, i, opts(buffers));
        out.push({ fwd: { y: typeof f.y === 'number' ? [f.y] : Array.from(f.y), loss: f.loss }, vg: { loss: vg.loss, grads: plain(vg.grads), buffers: plain(buffers) } });
      }
    } finally {
      model.destroy();
    }
    return out;
  },

  /** applyGradients of the WebGPU module at `url` with each of `gradsList` in turn, from a fresh state: the params and step after. */
  async webgpuApplyGradients(url, params, gradsList) {
    const mod = await import(url);
    const model = await mod.create();
    try {
      const p = typed(mod.spec.params, params);
      const state = model.initOptState(p);
      for (const g of gradsList) await model.applyGradients(p, state, Object.fromEntries(Object.entries(g).map(([k, v]) => [k, Float32Array.from(v)])));
      const after = await model.readParams();
      const st = await model.readOptState();
      return { params: plain(after), step: st.step, stateStep: state.step };
    } finally {
      model.destroy();
    }
  },

  /** What create() of the WebGPU module at `url` rejects with where navigator.gpu is undefined. */
  async webgpuWithoutGpu(url) {
    const mod = await import(url);
    const desc = Object.getOwnPropertyDescriptor(Navigator.prototype, 'gpu');
    Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    try {
      await mod.create();
      return 'resolved';
    } catch (e) {
      return `${e.name}: ${e.message}`;
    } finally {
      if (desc) Object.defineProperty(Navigator.prototype, 'gpu', desc);
    }
  },

  /** The errors of a WebGPU module's calls with bad arguments, as `name: message`. */
  async webgpuErrors(url, calls) {
    const mod = await import(url);
    const model = await mod.create();
    const out = [];
    try {
      for (const c of calls) {
        const args = c.map((a) => (a && a.__typed ? typed(mod.spec[a.__typed], a.values) : a));
        try {
          await model[args[0]](...args.slice(1));
          out.push('resolved');
        } catch (e) {
          out.push(`${e.name}: ${e.message}`);
        }
      }
      try {
        await mod.create({ device: 42 });
        out.push('resolved');
      } catch (e) {
        out.push(`${e.name}: ${e.message}`);
      }
    } finally {
      model.destroy();
    }
    return out;
  },

  /** The WebGPU adapter this browser offers, if any. */
  async adapter() {
    if (!navigator.gpu) return null;
    const a = await navigator.gpu.requestAdapter();
    if (!a) return null;
    const i = a.info ?? {};
    return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, fallback: a.isFallbackAdapter ?? i.isFallbackAdapter ?? null };
  },
};
document.getElementById('ready').textContent = 'ready';
globalThis.harnessReady = true;
