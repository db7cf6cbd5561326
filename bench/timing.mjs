// Steps a contender for at least `ms` milliseconds and at least `minSteps` steps, timing each.
export function timeRound(step, { ms, minSteps = 1, record = true }) {
  const times = [];
  const end = performance.now() + ms;
  let t = performance.now();
  while (times.length < minSteps || t < end) {
    step();
    const now = performance.now();
    times.push(now - t);
    t = now;
  }
  return record ? { steps: times.length, times } : { steps: times.length };
}

/** Runs f for about ms milliseconds after a warm-up of ms / 2: the median over 5 blocks of ms per call. */
export function msPerCall(f, ms = 200) {
  for (let t0 = performance.now(); performance.now() - t0 < ms / 2; ) f();
  const blocks = [];
  for (let b = 0; b < 5; b++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms / 5 || n < 1) {
      f();
      n++;
    }
    blocks.push((performance.now() - t0) / n);
  }
  return blocks.sort((a, b) => a - b)[2];
}
