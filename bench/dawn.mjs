// navigator.gpu in Node from the `webgpu` package (Dawn), as a generated GPU.js module sets it up
// (with the `onuncapturederror` workaround of ../shared/gpu/README.md), but with Dawn features
// of the bench's choosing: a generated module uses a navigator.gpu that already exists.

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
