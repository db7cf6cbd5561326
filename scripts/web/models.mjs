// The models the page can train: one entry each, naming its files (served from web-out/, built by
// scripts/web/build.mjs) and the task module that feeds and evaluates it in the worker. Adding a
// model is an entry here, a task module in models/, and its builds in build.mjs; adding a module
// kind (the threaded wasm module: `create({ threads })`) is an entry of `modules` and a loader in
// models/load.mjs.
export const MODELS = {
  makemore: {
    title: 'makemore MLP',
    blurb:
      "The lecture's network (Karpathy, makemore part 4), written out long form: embedding, linear, batchnorm with Bessel's correction, tanh, linear, softmax, cross-entropy. Minibatches of 32 contexts of 3 characters, trained by the module's compiled trainStep (SGD at 0.1, then 0.01); every 2,500 steps batchnorm is calibrated on the whole training set and the dev split is evaluated.",
    task: './models/makemore.mjs',
    steps: 30000,
    source: { label: 'examples/makemore.ts', url: '/examples/makemore.ts', from: 'export function makemore' },
    code: { label: 'makemore.ts: valueAndGrad (emitted by graphc)', url: '/web-out/generated/makemore/makemore.ts', from: 'export function valueAndGrad' },
    graph: '/web-out/graphs/makemore.svg',
    // which generated module trains it, by the backend picked on the page
    modules: {
      wasm: { label: 'wasm SIMD', url: '/web-out/generated/makemore/makemore.wasm.js' },
      threads: { label: 'wasm SIMD, threads', url: '/web-out/generated/makemore/makemore.wasm.js', threads: true },
      flat: { label: 'flat JS', url: '/web-out/generated/makemore/makemore.js' },
    },
  },
};
