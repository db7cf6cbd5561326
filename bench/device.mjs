// What the GPU scripts of the bench share (gpu.mjs, gpu-matmul.mjs, gpu-examples.mjs; they run
// on the lent GPU machine, packed by pack-device.sh, so they import nothing of the repository).

/** The value of `--name=value` or `--name value` on the command line, else `dflt`. */
export const arg = (name, dflt) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : dflt);

/** max |a − b| / max(max |b|, 1e-3): the error measure of every check of the bench. */
export function relErr(a, b) {
  let d = 0;
  let s = 1e-3;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

/**
 * navigator.gpu in Node from the `webgpu` package (Dawn), as a generated GPU.js module sets it up
 * (with the `onuncapturederror` workaround of ../shared/gpu/README.md), but with Dawn features of
 * the bench's choosing: a generated module uses a navigator.gpu that already exists.
 */
/** @param {string} features comma-separated Dawn toggles for enable-dawn-features, or '' */
export async function setupWebGPU(features) {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const gpuApi = create(features ? [`enable-dawn-features=${features}`] : []);
  const requestAdapter = gpuApi.requestAdapter.bind(gpuApi);
  gpuApi.requestAdapter = async (...a) => {
    const adapter = await requestAdapter(...a);
    if (!adapter) return adapter;
    const requestDevice = adapter.requestDevice.bind(adapter);
    adapter.requestDevice = async (...b) => {
      const device = await requestDevice(...b);
      Object.defineProperty(device, 'onuncapturederror', { value: null, writable: true, configurable: true });
      return device;
    };
    return adapter;
  };
  globalThis.navigator = { gpu: gpuApi };
}
