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
