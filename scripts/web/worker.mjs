// The page's training loop, in a module worker so that the page stays responsive: chunks of steps
// of about 40 ms, a progress message after each, an evaluation (calibrated losses, samples) every
// `evalEvery` steps (2,500, as `npm run demo`) and at the end, and pause / resume / stop between chunks.
import { MODELS } from './models.mjs';

let control = { paused: false, stopped: false, wake: null };

self.onmessage = async ({ data: msg }) => {
  if (msg.cmd === 'start') run(msg).catch((e) => self.postMessage({ type: 'error', message: String(e?.stack ?? e) }));
  else if (msg.cmd === 'pause') control.paused = true;
  else if (msg.cmd === 'resume') {
    control.paused = false;
    control.wake?.();
  } else if (msg.cmd === 'stop') {
    control.stopped = true;
    control.wake?.();
  }
};

const tick = () => new Promise((r) => setTimeout(r, 0));

async function run({ model, backend, steps, seed = 1, evalEvery = 2500, window = 100 }) {
  const m = MODELS[model];
  const { createTask } = await import(m.task);
  const t0 = performance.now();
  const task = await createTask({ module: m.modules[backend], seed });
  self.postMessage({ type: 'ready', info: task.info, loadMs: performance.now() - t0 });
  let step = 0;
  let windowSum = 0;
  let windowCount = 0;
  let busy = 0; // ms spent in training steps (steps/s counts them only)
  const evaluate = () => {
    const t = performance.now();
    const e = task.evaluate();
    self.postMessage({ type: 'eval', step, ...e, ms: performance.now() - t });
  };
  evaluate();
  while (step < steps && !control.stopped) {
    if (control.paused) {
      await new Promise((r) => (control.wake = r));
      control.wake = null;
      continue;
    }
    const start = performance.now();
    const from = step;
    const points = [];
    let last = NaN;
    while (step < steps && performance.now() - start < 40) {
      if (step > from && step % evalEvery === 0) break; // evaluate at the multiples of evalEvery
      last = task.step(step, steps);
      step++;
      windowSum += last;
      if (++windowCount === window) {
        points.push([step, windowSum / windowCount]);
        windowSum = 0;
        windowCount = 0;
      }
    }
    const ms = performance.now() - start;
    busy += ms;
    self.postMessage({ type: 'progress', step, steps, loss: last, points, rate: ((step - from) / ms) * 1000, meanRate: (step / busy) * 1000 });
    if (step % evalEvery === 0 || step === steps) evaluate();
    await tick();
  }
  self.postMessage({ type: 'done', step, stopped: control.stopped });
}
