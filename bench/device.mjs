// What the GPU scripts of the bench share (gpu.mjs, gpu-matmul.mjs, gpu-examples.mjs). They run on
// the lent GPU machine, packed by pack-device.sh with this file and report.mjs and nothing else of
// the repository.

/** The value of `--name=value` or `--name value` on the command line, else `dflt`. */
export const arg = (name, dflt) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : dflt);

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
