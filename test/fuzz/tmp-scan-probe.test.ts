import { it } from 'vitest';
import { appendFileSync } from 'node:fs';
import { Choices, ModelGen } from './gen.js';
import { checkModel } from './oracle.js';

it('probe', async () => {
  let r = 12345;
  const next = () => (r = (Math.imul(r, 1103515245) + 12345) >>> 0);
  for (let k = 0; k < 12; k++) {
    const xs = Array.from({ length: 60 }, () => next() % 1000);
    const gen = new ModelGen(new Choices(xs), { ops: 1 + (next() % 8), stopGradient: false, scan: true });
    const { text, extra } = gen.source();
    const t0 = performance.now();
    let err = '';
    try { await checkModel(text, k + 1, extra); } catch (e) { err = String(e).split('\n')[0]!; }
    appendFileSync('/tmp/probe.txt', `${k} ${text.includes('g.scan')} ${(performance.now() - t0).toFixed(0)} ms ${err}\n`);
    if (err) appendFileSync('/tmp/probe.txt', text + '\n');
  }
}, 600000);
