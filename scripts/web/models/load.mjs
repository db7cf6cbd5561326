// Loads a generated module for the worker, by its kind. The flat and wasm modules are synchronous
// ESM with the same exports (spec, initParams, forward, valueAndGrad, update); a module kind that
// is created asynchronously (a threaded or GPU module) gets its loader here.
export async function loadModule(url) {
  return import(url);
}
