// npm run bench:cnn: one training step of examples/cnn.ts (LeNet-style, batch 64) in graphc's
// flat and wasm modules beside TF.js and PyTorch on 1 thread, all checked first for agreement
// (bench/cnn-step.mjs). --reps=N rounds (default 20); --tfjs=wasm,cpu the TF.js backends to try in
// order (the first that runs the step is timed: wasm in the alternation; cpu takes seconds a step,
// timed alone: --tfjs-reps=N, default 3); --before=DIR adds the flat and wasm modules of an earlier build (cnn.js, cnn.wasm.js in DIR).
import { loadavg } from 'node:os';
import { cnnStep } from './cnn-step.mjs';

const arg = (name, dflt) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt;
const reps = Number(arg('reps', 20));
const { rows, notes } = await cnnStep({ reps, tfjs: arg('tfjs', 'wasm,cpu').split(','), tfjsReps: Number(arg('tfjs-reps', 3)), before: arg('before') });
for (const n of notes) console.log(`(${n})`);
const ref = (p) => rows.find((r) => r.name.startsWith(p));
const torch = ref('PyTorch');
const tfjs = ref('TF.js');
console.log(`examples/cnn.ts, one training step (valueAndGrad) at batch 64, median of ${reps} (in alternation); ${new Date().toISOString().slice(0, 10)}, load average ${loadavg()[0].toFixed(1)}`);
for (const row of rows)
  console.log(
    `  ${row.name.padEnd(32)} ${row.ms.toFixed(2).padStart(9)} ms${tfjs ? `  ${(row.ms / tfjs.ms).toFixed(3)}× TF.js` : ''}${torch ? `  ${(row.ms / torch.ms).toFixed(2)}× PyTorch` : ''}  (agrees within ${row.err.toExponential(1)})`,
  );
