// The WebGPU module's runtime, emitted as code: the device (the caller's or navigator.gpu's),
// a storage buffer per array, a pipeline and a bind group per shader for each set of sizes, and
// `run`: the shaders of an entry point dispatched in one compute pass, the arrays it reads back
// copied into one mappable buffer, one submit.

import type { ModuleInfo, Typed } from '../module.js';
import { WG } from './wgsl.js';

/** WebGPU's flags, as numbers (a module that imports nothing cannot rely on the GPUBufferUsage global of every host). */
const USAGE = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, STORAGE: 128 };

/**
 * `encode` runs a scan's loop (codegen/webgpu/loop.ts) step by step. `resident`: the module declares RESIDENT, the arrays trainStep keeps on the device, which
 * live in arenas of their own that every set of sizes shares.
 */
export function runtimeDecl(m: ModuleInfo, t: Typed, syms: readonly string[], resident = false): string[] {
  return [...deviceDecl(m, t), ...runtimeBody(m, t, syms, resident)];
}

/** grid() and acquire(): the workgroups of a 1-D dispatch, and the device. */
function deviceDecl(m: ModuleInfo, t: Typed): string[] {
  const name = m.name;
  return [
    '/** Workgroups of 64 for `n` invocations: x up to 65535, the rest along y. */',
    `function grid(n${t(': number')})${t(': [number, number, number]')} {`,
    `  const g = Math.ceil(n / ${WG});`,
    '  return g <= 65535 ? [g, 1, 1] : [65535, Math.ceil(g / 65535), 1];',
    '}',
    '',
    '/** The arrays, pipelines and bind groups for one set of sizes. */',
    ...(t('x')
      ? [
          '// eslint-disable-next-line @typescript-eslint/no-explicit-any',
          `type Built = { buffers: any[]; place: Record<string, [number, number]>; decls: ReturnType<typeof arrayDecls>; pipelines: any[]; binds: any[]; groups: [number, number, number][]; sizes: Record<string, number> };`,
          '/** A shader to dispatch, or a loop: its trip count (the product of `n`, numbers and sizes by name) and one step. */',
          'type Run = number | { n: (number | string)[]; body: Run[] };',
          '',
        ]
      : []),
    '/** The device of `options.device`, or one that navigator.gpu\'s adapter gives with its storage limits. */',
    `async function acquire(options${t(': { device?: GPUDevice }')})${t(': Promise<GPUDevice>')} {`,
    `  if (typeof options !== 'object' || options === null) throw new TypeError('${name}: the options of create() must be an object');`,
    '  if (options.device !== undefined) {',
    "    if (typeof options.device !== 'object' || options.device === null || typeof options.device.createBuffer !== 'function')",
    `      throw new TypeError(\`${name}: options.device must be a GPUDevice, got \${describeArg(options.device)}\`);`,
    '    return options.device;',
    '  }',
    `  const gpu = (globalThis${t(' as { navigator?: { gpu?: any } }')}).navigator?.gpu;`,
    '  if (!gpu)',
    `    throw new Error("${name}: no WebGPU here (navigator.gpu is undefined): run it in a browser with WebGPU, install a WebGPU implementation as navigator.gpu, or pass create({ device })");`,
    '  const adapter = await gpu.requestAdapter();',
    `  if (!adapter) throw new Error("${name}: navigator.gpu offers no WebGPU adapter on this machine");`,
    '  // a fused kernel binds every array it touches: ask for what the adapter offers (the default is 8)',
    `  const requiredLimits${t(': Record<string, number>')} = {};`,
    "  for (const k of ['maxStorageBuffersPerShaderStage', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupsPerDimension'])",
    '    if (typeof adapter.limits[k] === \'number\') requiredLimits[k] = adapter.limits[k];',
    '  const device = await adapter.requestDevice({ requiredLimits });',
    `  (device${t(' as { __graphcOwn?: boolean }')}).__graphcOwn = true;`,
    '  return device;',
    '}',
    '',
  ];
}

/** runtime(device): buffers, pipelines and runs. */
function runtimeBody(m: ModuleInfo, t: Typed, syms: readonly string[], resident: boolean): string[] {
  const name = m.name;
  const sizesType = syms.length ? 'Sizes' : 'Record<string, never>';
  return [
    '/** Buffers, pipelines and runs on `device`. */',
    `function runtime(device${t(': GPUDevice')}) {`,
    `  const built = new Map${t('<string, Built>')}();`,
    `  const shaderModules = new Map${t('<string, any>')}();`,
    `  const maxStorage${t(': number')} = device.limits?.maxStorageBuffersPerShaderStage ?? 8;`,
    `  let destroyed = false;`,
    ...makeDecl(m, t, syms, resident),
    ...encodeDecl(t),
    ...readBackDecl(t),
    '  return {',
    `    async built(sizes${t(`: ${sizesType}`)})${t(': Promise<Built>')} {`,
    `      if (destroyed) throw new Error('${name}: this model was destroyed');`,
    '      const k = JSON.stringify(sizes);',
    '      let b = built.get(k);',
    '      if (!b) built.set(k, (b = await make(sizes)));',
    '      return b;',
    '    },',
    `    write(b${t(': Built')}, name${t(': string')}, data${t(': Float32Array | Int32Array')}) {`,
    `      device.queue.writeBuffer(b.buffers[b.place[name]${t('!')}[0]], b.place[name]${t('!')}[1] * 4, data.buffer, data.byteOffset, data.byteLength);`,
    '    },',
    '    encode,',
    '    readBack,',
    '    /** Runs the shaders of `list`, reads `reads` back: one command encoder, one submit. */',
    `    async run(b${t(': Built')}, list${t(': readonly Run[]')}, reads${t(': readonly (readonly [string, string])[]')}) {`,
    '      const enc = device.createCommandEncoder();',
    '      encode(enc, b, list);',
    '      const take = readBack(enc, b, reads);',
    '      device.queue.submit([enc.finish()]);',
    '      return take();',
    '    },',
    '    destroy() {',
    '      if (destroyed) return;',
    '      destroyed = true;',
    '      for (const b of built.values()) for (const x of b.buffers) x.destroy();',
    '      built.clear();',
    `      if ((device${t(' as { __graphcOwn?: boolean }')}).__graphcOwn) device.destroy();`,
    '    },',
    '  };',
    '}',
  ];
}

/**
 * `make(sizes)`: the arenas and the arrays' places in them, the buffers, then a pipeline and a
 * bind group per shader. With `resident`, the arrays of RESIDENT are placed once, in arenas of
 * their own that every set of sizes binds (trainStep's params and optimizer state stay on the
 * device whatever sizes a step brings).
 */
function makeDecl(m: ModuleInfo, t: Typed, syms: readonly string[], resident: boolean): string[] {
  const sizesType = syms.length ? 'Sizes' : 'Record<string, never>';
  const sizesArg = syms.length ? 'sizes' : '';
  const usage = String(USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST);
  const arenaType = t(': any[]');
  const placeType = t(': Record<string, any>');
  return [
    '  /**',
    '   * The arrays live in arenas: a few storage buffers (one per element type, more where one would',
    "   * pass the device's binding size), each array at an offset of its own, so that a shader binds",
    '   * an arena once however many arrays it reads (SwiftShader allows 10 storage buffers per shader).',
    '   */',
    `  const maxArena${t(': number')} = Math.min(device.limits?.maxStorageBufferBindingSize ?? 134217728, device.limits?.maxBufferSize ?? 268435456, 1 << 30);`,
    `  const pack = (entries${t(': [string, { dtype: string; numel: number }][]')}, arenas${arenaType}, place${placeType}, sizes${t(`: ${sizesType}`)}) => {`,
    '    for (const [k, d] of entries) {',
    '      const bytes = Math.ceil(Math.max(4, d.numel * 4) / 16) * 16; // at multiples of 16 bytes: a matmul may read an array as vec4',
    '      if (bytes > maxArena)',
    `        throw new RangeError(\`${m.name}: array '\${k}' takes \${bytes} bytes${syms.length ? ` at \${Object.entries(sizes).map(([s, n]) => \`\${s} = \${n}\`).join(', ')}` : ''}, and this device binds at most \${maxArena} in one buffer (maxStorageBufferBindingSize, maxBufferSize): ${syms.length ? 'call it with smaller sizes or ' : ''}run it on an adapter that offers more\`);`,
    '      let a = arenas.findIndex((x) => !x.shared && x.dtype === d.dtype && x.size + bytes <= maxArena);',
    '      if (a < 0) {',
    '        arenas.push({ dtype: d.dtype, size: 0 });',
    '        a = arenas.length - 1;',
    '      }',
    '      place[k] = [a, arenas[a]' + t('!') + '.size / 4];',
    '      arenas[a]' + t('!') + '.size += bytes;',
    '    }',
    '  };',
    `  const createArena = (x${t(': { size: number }')}) => device.createBuffer({ size: Math.max(4, x.size), usage: ${usage} });`,
    ...(resident
      ? [
          '  // the arenas of RESIDENT, made by the first make() and shared by every set of sizes',
          `  let shared${t(': { arenas: any[]; place: Record<string, any>; buffers: any[] } | undefined')};`,
        ]
      : []),
    `  const make = async (sizes${t(`: ${sizesType}`)})${t(': Promise<Built>')} => {`,
    `    const decls = arrayDecls(${sizesArg});`,
    ...(resident
      ? [
          '    const entries = Object.entries(decls);',
          '    if (!shared) {',
          `      const arenas${arenaType} = [];`,
          `      const place${placeType} = {};`,
          '      pack(entries.filter(([k]) => RESIDENT.has(k)), arenas, place, sizes);',
          '      shared = { arenas: arenas.map((x) => ({ ...x, shared: true })), place, buffers: [] };',
          '    }',
          `    const arenas${arenaType} = [...shared.arenas];`,
          `    const place${placeType} = { ...shared.place };`,
          '    pack(entries.filter(([k]) => !RESIDENT.has(k)), arenas, place, sizes);',
          "    device.pushErrorScope('validation');",
          '    if (shared.buffers.length < shared.arenas.length) shared.buffers = shared.arenas.map(createArena);',
          '    const buffers = [...shared.buffers, ...arenas.slice(shared.arenas.length).map(createArena)];',
        ]
      : [
          `    const arenas${arenaType} = [];`,
          `    const place${placeType} = {};`,
          '    pack(Object.entries(decls), arenas, place, sizes);',
          "    device.pushErrorScope('validation');",
          '    const buffers = arenas.map(createArena);',
        ]),
    '    for (const [k, d] of Object.entries(decls))',
    `      if (d.data) device.queue.writeBuffer(buffers[place[k]${t('!')}[0]], place[k]${t('!')}[1] * 4, d.dtype === 'i32' ? Int32Array.from(d.data) : Float32Array.from(d.data));`,
    `    const code = shaders(${sizesArg});`,
    `    const lay = layout(${sizesArg});`,
    ...pipelinesDecl(m, t),
    '    const err = await device.popErrorScope();',
    `    if (err) throw new Error(\`${m.name}: WebGPU refused a shader or pipeline: \${err.message}\`);`,
    `    return { buffers, place, decls, pipelines, binds, groups: lay.map((l) => l.groups), sizes };`,
    '  };',
  ];
}

/** Inside make(): each shader's arenas bound (an array j of the shader is arena m<k> at the array's offset), its pipeline and bind group. */
function pipelinesDecl(m: ModuleInfo, t: Typed): string[] {
  return [
    `    const used = lay.map((l) => [...new Set(l.arrays.map(([a]) => place[a]${t('!')}[0]))]);`,
    '    const pipelines = code.map((src, s) => {',
    `      const u${t(': any[]')} = used[s]${t('!')};`,
    '      if (u.length > maxStorage)',
    `        throw new Error(\`${m.name}: shader \${s} binds \${u.length} storage buffers, and this device allows \${maxStorage} (maxStorageBuffersPerShaderStage): run it on an adapter that offers more\`);`,
    "      // the shader's array j (a<j>[i]) is arena m<k> at the array's offset; an arena of an array the shader declares vec4 is vec4 (offsets in vec4s)",
    `      const v4 = new Set(src.split('\\n').flatMap((l) => { const d = /^\\s*@group\\(0\\) @binding\\((\\d+)\\).*: array<vec4<f32>>;$/.exec(l); return d ? [place[lay[s]${t('!')}.arrays[Number(d[1])]${t('!')}[0]]${t('!')}[0]] : []; }));`,
    "      const decl = u.map((a, k) => `@group(0) @binding(${k}) var<storage, read_write> m${k}: array<${v4.has(a) ? 'vec4<f32>' : arenas[a]" + t('!') + '.dtype}>;`);',
    "      const body = src.split('\\n').filter((l) => !l.startsWith('@group(0) @binding(')).join('\\n');",
    "      const text = decl.join('\\n') + '\\n' + body.replace(/\\ba(\\d+)\\[/g, (_m, j) => {",
    `        const [a, off] = place[lay[s]${t('!')}.arrays[Number(j)]${t('!')}[0]]${t('!')};`,
    '        return `m${u.indexOf(a)}[${v4.has(a) ? off / 4 : off} + `;',
    '      });',
    '      let module = shaderModules.get(text);',
    '      if (!module) shaderModules.set(text, (module = device.createShaderModule({ code: text })));',
    "      return device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });",
    '    });',
    '    const binds = pipelines.map((p, s) =>',
    '      device.createBindGroup({',
    '        layout: p.getBindGroupLayout(0),',
    `        entries: used[s]${t('!')}.map((a, i) => ({ binding: i, resource: { buffer: buffers[a] } })),`,
    '      }),',
    '    );',
  ];
}

/** encode(enc, b, list): the dispatches of `list` in a compute pass; a loop's step once per step (its shaders keep the step index on the device). */
function encodeDecl(t: Typed): string[] {
  return [
    "  /** Encodes the dispatches of `list` into a compute pass of `enc`: a loop's step once per step (its shaders keep the step index on the device). */",
    `  const encode = (enc${t(': any')}, b${t(': Built')}, list${t(': readonly Run[]')}) => {`,
    '    const pass = enc.beginComputePass();',
    `    const go = (l${t(': readonly Run[]')}) => {`,
    '      for (const s of l) {',
    "        if (typeof s !== 'number') {",
    `          const n = s.n.reduce${t('<number>')}((a, x) => a * (typeof x === 'number' ? x : b.sizes[x]${t('!')}), 1);`,
    '          for (let k = 0; k < n; k++) go(s.body);',
    '          continue;',
    '        }',
    `        const g = b.groups[s]${t('!')};`,
    '        if (g[0] * g[1] * g[2] === 0) continue;',
    '        pass.setPipeline(b.pipelines[s]);',
    '        pass.setBindGroup(0, b.binds[s]);',
    '        pass.dispatchWorkgroups(g[0], g[1], g[2]);',
    '      }',
    '    };',
    '    go(list);',
    '    pass.end();',
    '  };',
  ];
}

/** readBack(enc, b, reads): copies into one mappable buffer, and `take` to map it after the submit. */
function readBackDecl(t: Typed): string[] {
  return [
    '  /** Copies `reads` into a fresh mappable buffer of `enc`; after the submit, `take` maps it and gives the arrays. */',
    `  const readBack = (enc${t(': any')}, b${t(': Built')}, reads${t(': readonly (readonly [string, string])[]')}) => {`,
    '    let total = 0;',
    '    const at = reads.map(([, a]) => {',
    '      const off = total;',
    `      total += Math.max(4, b.decls[a]${t('!')}.numel * 4);`,
    '      return off;',
    '    });',
    `    const rb = device.createBuffer({ size: Math.max(4, total), usage: ${USAGE.MAP_READ | USAGE.COPY_DST} });`,
    `    reads.forEach(([, a], k) => enc.copyBufferToBuffer(b.buffers[b.place[a]${t('!')}[0]], b.place[a]${t('!')}[1] * 4, rb, at[k], Math.max(4, b.decls[a]${t('!')}.numel * 4)));`,
    '    return async () => {',
    `      await rb.mapAsync(${1});`,
    `      const data${t(': ArrayBuffer')} = rb.getMappedRange().slice(0);`,
    '      rb.unmap();',
    '      rb.destroy();',
    `      const out${t(': Record<string, Float32Array | Int32Array>')} = {};`,
    '      reads.forEach(([o, a], k) => {',
    `        const d = b.decls[a]${t('!')};`,
    "        out[o] = d.dtype === 'i32' ? new Int32Array(data, at[k], d.numel) : new Float32Array(data, at[k], d.numel);",
    '      });',
    '      return out;',
    '    };',
    '  };',
  ];
}
