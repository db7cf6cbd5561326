// The GPU.js module's host-side helpers: loading gpu.js, setting WebGPU up in Node, releasing
// the kernels on destroy().

import type { ModuleInfo, Typed } from './module.js';

/**
 * destroy()'s release of the pipelines and kernels, now: gpu.destroy() releases them on the next
 * turn of the event loop and holds every kernel until then, so a loop of create() and destroy()
 * that never yields kept every instance alive (3 MB each for makemore). A WebGL context ('gpu'
 * mode) is left whole to gpu.destroy(), which releases it with its kernels on that turn.
 */
export function releaseLines(t: (s: string) => string): string[] {
  const internals = t(' as unknown as { pipelines: { destroy(): unknown }[]; kernels: { destroy(removeCanvas?: boolean): void }[]; Kernel: { mode: string } }');
  return [
    `      const own = gpu${internals};`,
    '      for (const p of own.pipelines.slice()) void p.destroy();',
    "      if (own.Kernel.mode !== 'gpu') {",
    '        for (const k of own.kernels.slice()) k.destroy(true);',
    '        own.kernels.length = 0;',
    '      }',
  ];
}


/**
 * gpu.js, imported by create() rather than by the module: a project without the package can
 * import the module (a bundle of the other targets, a page) and gets create()'s rejection
 * saying what to install, not a module-resolution error at load.
 */
export function loadGpuDecl(m: ModuleInfo, t: Typed): string[] {
  return [
    "/** The gpu.js package's GPU class, imported on create()'s first call. */",
    `async function loadGPU()${t(': Promise<typeof GPUClass>')} {`,
    '  try {',
    "    return (await import('gpu.js')).GPU;",
    '  } catch (e) {',
    `    const err = e${t(' as { code?: string; message?: string }')};`,
    "    if (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND')",
    `      throw new Error("${m.name}: the GPU.js module needs the 'gpu.js' package, which this project does not have: npm install gpu.js");`,
    `    throw new Error(\`${m.name}: the 'gpu.js' package could not be loaded: \${err?.message ?? String(e)}\`);`,
    '  }',
    '}',
  ];
}

/**
 * Node has no navigator.gpu: the `webgpu` package (Dawn) provides one. gpu.js assigns
 * device.onuncapturederror, which Dawn's binding rejects; giving the device an own writable
 * property first works around it (see ../shared/gpu/README.md). On every navigator.gpu (Dawn's or
 * a browser's) the device gpu.js requests asks for the adapter's maxStorageBuffersPerShaderStage:
 * a fused kernel binds each array it reads and the one it writes, and WebGPU's default limit (8)
 * is below what most adapters offer. Wrapped once, however many modules set it up; a device gpu.js
 * requested before (it keeps one per page) keeps the limits it has.
 */
export function webgpuSetup(m: ModuleInfo, t: Typed): string[] {
  const Gpu = '{ requestAdapter(...a: unknown[]): Promise<{ limits: Record<string, number>; requestDevice(d?: { requiredLimits?: Record<string, number> }): Promise<object> } | null> }';
  return [
    '/** Provides navigator.gpu in Node from the `webgpu` package (Dawn), once; asks for the adapter\'s storage buffer limit. */',
    `async function setupWebGPU(GPU${t(': typeof GPUClass')})${t(': Promise<void>')} {`,
    `  const g = globalThis${t(' as { navigator?: { gpu?: unknown } }')};`,
    '  const dawn = !g.navigator?.gpu;',
    '  if (dawn) {',
    `    let pkg${t(': { create(flags: string[]): unknown; globals: object }')};`,
    '    try {',
    `      pkg = (await import('webgpu' + ''))${t(' as typeof pkg')};`,
    '    } catch (e) {',
    `      throw new Error(\`${m.name}: mode 'webgpu' needs the 'webgpu' package (Dawn) and it could not be loaded: \${(e${t(' as Error')}).message}\`);`,
    '    }',
    '    Object.assign(globalThis, pkg.globals);',
    '    g.navigator = { ...(g.navigator ?? {}), gpu: pkg.create([]) };',
    '  }',
    `  const gpu = g.navigator${t("!")}.gpu${t(` as ${Gpu} & { [k: symbol]: boolean }`)};`,
    "  const wrapped = Symbol.for('graphc.webgpu');",
    '  if (!gpu[wrapped]) {',
    '    gpu[wrapped] = true;',
    '    const requestAdapter = gpu.requestAdapter.bind(gpu);',
    `    gpu.requestAdapter = async (...a${t(': unknown[]')}) => {`,
    '      const adapter = await requestAdapter(...a);',
    '      if (!adapter) return adapter;',
    '      const requestDevice = adapter.requestDevice.bind(adapter);',
    '      adapter.requestDevice = async (d = {}) => {',
    '        const storage = adapter.limits.maxStorageBuffersPerShaderStage;',
    '        const device = await requestDevice({ ...d, requiredLimits: { ...d.requiredLimits, ...(storage ? { maxStorageBuffersPerShaderStage: storage } : {}) } });',
    "        if (dawn) Object.defineProperty(device, 'onuncapturederror', { value: null, writable: true, configurable: true });",
    '        return device;',
    '      };',
    '      return adapter;',
    '    };',
    '  }',
    '  if (!(await GPU.isWebGPUAvailable()))',
    `    throw new Error("${m.name}: mode 'webgpu' found no WebGPU adapter on this machine; use mode 'gpu', 'webasm' or 'cpu'");`,
    '}',
  ];
}
