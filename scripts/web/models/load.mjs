// Loads a generated module for the worker, by its kind. The flat and wasm modules are synchronous
// ESM with the same exports (spec, initParams, forward, valueAndGrad, trainStep, ...); the threaded
// kind is the wasm module's `create({ threads })` instance (its large kernels split over Web
// Workers sharing one memory: the page must be cross-origin isolated), whose functions replace the
// module's own, synchronous as they are in a worker.

/** The threads a threaded module gets: every hardware thread, at most 4 (makemore's kernels are small). */
export const pageThreads = () => Math.max(2, Math.min(4, globalThis.navigator?.hardwareConcurrency ?? 2));

/** `kind.url`: the module; `kind.threads`: true for the threaded instance of a wasm module. */
export async function loadModule(url, kind = {}) {
  const mod = await import(url);
  if (!kind.threads) return mod;
  const instance = await mod.create({ threads: pageThreads() });
  return { ...mod, ...instance };
}
