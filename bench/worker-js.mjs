// A JavaScript contender in a process of its own (forked by run.mjs): graphc's generated module,
// or the TF.js network on one backend. It answers the parent's messages one at a time:
//   { cmd: 'init', kind, cfg, shapes, params, inputs, module?, threads? } -> { info, loss, grads }
//   { cmd: 'round', ms, minSteps, record }                     -> { steps, times? } (ms per step)
//   { cmd: 'rss' }                                             -> { maxRssKb }
// (threads: a wasm module's create({ threads }) instead of its default exports)
import { pathToFileURL } from 'node:url';
import { timeRound } from './timing.mjs';
import { loadTf, makemoreTf } from './tf-model.mjs';

let contender; // { step(): number, result(): { loss, grads } }

async function init({ kind, cfg, shapes, params, inputs, module, threads }) {
  let info = { node: process.version };
  if (kind === 'graphc') {
    const imported = await import(pathToFileURL(module).href);
    const mod = threads ? await imported.create({ threads }) : imported;
    if (imported.simd) info.simd = imported.simd; // 'relaxed' or 'plain': which kernels the module runs
    contender = {
      step: () => mod.valueAndGrad(params, inputs).loss,
      result() {
        const { loss, grads } = mod.valueAndGrad(params, inputs);
        return { loss, grads: Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, Float32Array.from(g)])) };
      },
    };
  } else if (kind === 'tfjs-cpu' || kind === 'tfjs-wasm') {
    const loaded = await loadTf(kind.slice(5));
    info = { ...info, ...loaded.info };
    contender = makemoreTf(loaded.tf, cfg, shapes, params, inputs);
  } else throw new Error(`unknown contender kind ${kind}`);
  return { info, ...contender.result() };
}

async function handle(msg) {
  switch (msg.cmd) {
    case 'init':
      return init(msg);
    case 'round':
      return timeRound(contender.step, msg);
    case 'rss':
      return { maxRssKb: process.resourceUsage().maxRSS };
    default:
      throw new Error(`unknown command ${msg.cmd}`);
  }
}

process.on('message', async (msg) => {
  if (msg.cmd === 'exit') process.exit(0);
  try {
    process.send({ ok: true, ...(await handle(msg)) });
  } catch (e) {
    process.send({ ok: false, error: e?.stack ?? String(e) });
  }
});
process.on('disconnect', () => process.exit(0));
