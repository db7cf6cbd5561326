// The kernels of the WebGPU module alone, for bench/webgpu.mjs (on a GPU, through Dawn for Node)
// and for test/browser/webgpu.test.ts (the same code at small sizes on SwiftShader, so that the
// benchmark is known to run before a GPU is lent): a case is a routine of the kernel form, the
// sizes of its arrays, its flops and a float64 reference of one result; kernelPeak runs a shader
// rendered from it, checks it and times it. Plain JavaScript that imports nothing (it runs in a page).

const sz = (n) => ({ coef: n, syms: [] });
const dense = (arg, shape) => {
  const strides = [];
  let st = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = sz(st);
    st *= shape[d];
  }
  return { arg, shape, strides, offset: sz(0) };
};

/**
 * A kernel case's shader `sh` (renderRoutine of `k.r`) alone on `device`, its arrays filled with
 * waves: checked once against the case's float64 reference at 64 results (≤ 1e-4 relative to
 * the largest), then timed with `median(fn, seconds)` over `reps` launches a submit: ms per
 * launch and GFLOP/s.
 */
export async function kernelPeak(device, sh, k, seconds, median, reps = 10) {
  const { r, sizes, flops, ref: reference } = k;
  const code = sh.wgsl.replace(/var<storage, read>/g, 'var<storage, read_write>');
  const names = Object.keys(sizes);
  const host = Object.fromEntries(names.map((k, j) => [k, Float32Array.from({ length: sizes[k] }, (_x, i) => Math.sin(i * (0.37 + j * 0.11)))]));
  const bufs = names.map((k) => device.createBuffer({ size: Math.ceil((sizes[k] * 4) / 16) * 16, usage: 128 | 8 | 4 }));
  names.forEach((k, j) => device.queue.writeBuffer(bufs[j], 0, host[k]));
  device.pushErrorScope('validation');
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
  const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: sh.arrays.map((a, i) => ({ binding: i, resource: { buffer: bufs[names.indexOf(a.name)] } })) });
  const err = await device.popErrorScope();
  if (err) throw new Error(`bench:webgpu: WebGPU refused the ${r.op} shader: ${err.message}`);
  const groups = sh.groups.map((g) => Function(`return ${g}`)());
  const launch = async (reps) => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(...groups);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  // the check: the result read back against the float64 reference at a few places
  await launch(1);
  const out = r.output.arg;
  const rb = device.createBuffer({ size: sizes[out] * 4, usage: 1 | 8 });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(bufs[names.indexOf(out)], 0, rb, 0, sizes[out] * 4);
  device.queue.submit([enc.finish()]);
  await rb.mapAsync(1);
  const got = new Float32Array(rb.getMappedRange().slice(0));
  rb.unmap();
  rb.destroy();
  let worst = 0;
  let scale = 0;
  for (let q = 0; q < 64; q++) {
    const i = Math.floor(((q * 2654435761) % 4294967296) / 4294967296 * sizes[out]);
    const want = reference(host, i);
    worst = Math.max(worst, Math.abs(got[i] - want));
    scale = Math.max(scale, Math.abs(want));
  }
  const err2 = worst / Math.max(scale, 1e-30);
  if (!(err2 <= 1e-4)) throw new Error(`bench:webgpu: the ${r.op} shader's results are ${err2.toExponential(1)} off the float64 reference (above 1e-4)`);
  const ms = (await median(() => launch(reps), seconds)) / reps;
  bufs.forEach((b) => b.destroy());
  return { ms, gflops: flops / (ms * 1e6), err: err2 };
}

/** The tiled matmul alone: m×k·k×n (n = k = m: square; from 512 tiles of 128, 8×8 results per invocation, vec4 loads). */
export function matmulCase(m, n = m, k = m) {
  const r = { kind: 'routine', name: 'mm', op: 'matmul', attrs: { transA: false, transB: false }, inputs: [dense('A', [m, k]), dense('B', [k, n])], output: dense('C', [m, n]), dtype: 'f32', notes: [] };
  const ref = (h, i) => {
    const [row, col] = [Math.floor(i / n), i % n];
    let s = 0;
    for (let p = 0; p < k; p++) s += h.A[row * k + p] * h.B[p * n + col];
    return s;
  };
  return { label: `matmul ${m}×${k}×${n}`, r, sizes: { A: m * k, B: k * n, C: m * n }, flops: 2 * m * n * k, ref };
}

/** A convolution as implicit GEMM alone: batch × c → c channels, hw × hw, 3×3, padding 1. */
export function convCase(batch, c, hw) {
  const attrs = { stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1 };
  const r = { kind: 'routine', name: 'cv', op: 'conv', attrs, inputs: [dense('X', [batch, c, hw, hw]), dense('W', [c, c, 3, 3])], output: dense('Y', [batch, c, hw, hw]), dtype: 'f32', notes: [] };
  const ref = (h, i) => {
    const j = i % hw;
    const y = Math.floor(i / hw) % hw;
    const o = Math.floor(i / (hw * hw)) % c;
    const n = Math.floor(i / (hw * hw * c));
    let s = 0;
    for (let ch = 0; ch < c; ch++)
      for (let p = 0; p < 3; p++)
        for (let q = 0; q < 3; q++) {
          const [hh, ww] = [y - 1 + p, j - 1 + q];
          if (hh >= 0 && hh < hw && ww >= 0 && ww < hw) s += h.X[((n * c + ch) * hw + hh) * hw + ww] * h.W[((o * c + ch) * 3 + p) * 3 + q];
        }
    return s;
  };
  const size = batch * c * hw * hw;
  return { label: `conv ${batch}×${c}×${hw}×${hw}, ${c} 3×3 filters (implicit GEMM)`, r, sizes: { X: size, W: c * c * 9, Y: size }, flops: 2 * size * c * 9, ref };
}
