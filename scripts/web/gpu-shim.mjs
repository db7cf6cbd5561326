// `import { GPU } from 'gpu.js'` in the browser: a page's import map points 'gpu.js' here, after a
// classic <script> has loaded gpu.js's browser build (node_modules/gpu.js/dist/gpu-browser.js),
// which defines the global GPU. Served from localhost like everything else: nothing from a CDN.
const { GPU } = globalThis;
if (typeof GPU !== 'function') throw new Error("gpu.js: load /node_modules/gpu.js/dist/gpu-browser.js with a <script> before importing 'gpu.js'");
export { GPU };
export default GPU;
