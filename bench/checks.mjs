// The cost of the argument checks of a generated module: the module as built, against a copy
// with the checkArgs calls removed, timed in alternation in this process.
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** Median ms per valueAndGrad step of each variant, and the checks' share of a step. */
export async function checksOverhead(modulePath, inputs, { rounds = 12, roundMs = 150, warmupMs = 1500 } = {}) {
  const unchecked = modulePath.replace(/\.js$/, '.unchecked.js');
  const source = readFileSync(modulePath, 'utf8');
  const stripped = source.replace(/^\s*checkArgs\(params, inputs\);\n/gm, '');
  if (stripped === source) throw new Error(`no checkArgs call found in ${modulePath}`);
  writeFileSync(unchecked, stripped);
  const variants = [
    { name: 'checked', mod: await import(pathToFileURL(modulePath).href), times: [] },
    { name: 'unchecked', mod: await import(pathToFileURL(unchecked).href), times: [] },
  ];
  for (const v of variants) {
    v.params = v.mod.initParams(1);
    const t0 = performance.now();
    while (performance.now() - t0 < warmupMs) v.mod.valueAndGrad(v.params, inputs);
  }
  for (let r = 0; r < rounds; r++)
    for (const v of variants) {
      const t0 = performance.now();
      while (performance.now() - t0 < roundMs) {
        const a = performance.now();
        v.mod.valueAndGrad(v.params, inputs);
        v.times.push(performance.now() - a);
      }
    }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const [checked, plain] = variants.map((v) => median(v.times));
  return { checked, unchecked: plain, overhead: checked / plain - 1 };
}
