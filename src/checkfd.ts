// The finite differences of `graphc check`: central differences of a float64 loss, one coordinate
// at a time, in this thread or, when there is enough work, on worker threads that each import the
// float64 module (a module that imports nothing) and take coordinates as they fall free. Each
// difference depends only on its coordinate and the unperturbed values, so the numbers are the
// same however many threads take them.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** One coordinate to difference: the param and the flat index. */
export interface Coord {
  readonly param: string;
  readonly i: number;
}

/**
 * The central difference of `loss` in x[i]: (loss(x + h) − loss(x − h)) / 2h with
 * h = 1e-6 · max(1, |x[i]|); x[i] is restored. (Also the workers' code: it must stay self-contained.)
 */
export function centralDifference(loss: () => number, x: Float64Array, i: number): number {
  const x0 = x[i]!;
  const h = 1e-6 * Math.max(1, Math.abs(x0));
  x[i] = x0 + h;
  const up = loss();
  x[i] = x0 - h;
  const down = loss();
  x[i] = x0;
  return (up - down) / (2 * h);
}

/** What a worker needs to evaluate the loss: the float64 module's code and its arguments. */
export interface LossSetup {
  readonly code: string;
  readonly params: Record<string, Float64Array>;
  readonly inputs: Record<string, Float64Array | Int32Array>;
  /** The module buffers (running statistics) each call starts from. */
  readonly buffers?: Record<string, Float64Array>;
  readonly seed: number;
}

/** The loss of the float64 module for the params as they stand: a training call, its buffers afresh each time. */
export function lossOf(
  mod: { forward(p: object, i: object, o?: object): Record<string, unknown> },
  s: Omit<LossSetup, 'code'>,
): () => number {
  // a training forward updates the running statistics it is given: each call gets them afresh
  const scratch = s.buffers && Object.fromEntries(Object.entries(s.buffers).map(([k, v]) => [k, v.slice()]));
  return () => {
    if (scratch) for (const k of Object.keys(scratch)) scratch[k]!.set(s.buffers![k]!);
    return Number(mod.forward(s.params, s.inputs, { train: true, seed: s.seed, buffers: scratch }).loss);
  };
}

const WORKER = (fns: string) => `
const { parentPort, workerData: w } = require('node:worker_threads');
${fns}
import(w.url).then((mod) => {
  const loss = lossOf(mod, w);
  parentPort.on('message', (t) => {
    if (t === null) return parentPort.close();
    parentPort.postMessage({ k: t.k, fd: centralDifference(loss, w.params[t.param], t.i) });
  });
  parentPort.postMessage({ k: -1 });
}, (e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
`;

/** How many threads to use for `evals` loss evaluations of `ms` each (1: this thread). */
export function threadsFor(evals: number, ms: number, cap = availableParallelism()): number {
  // below about two seconds of work, starting workers (and warming each one's JIT) costs more
  if (evals * ms < 2000) return 1;
  return Math.max(1, Math.min(cap, 8, Math.floor(evals / 8)));
}

/**
 * The central differences at `coords` of `params`, in order; `done(k, fd)` is called as each one
 * is known. `threads` 1 (or no `setup`) evaluates `loss` here; more start that many workers on
 * `setup` (whose params are `params`).
 */
export async function finiteDifferences(
  coords: readonly Coord[],
  opts: { threads: number; loss: () => number; params: Record<string, Float64Array>; setup?: LossSetup; done?: (k: number, fd: number) => void },
): Promise<Float64Array> {
  const out = new Float64Array(coords.length);
  if (opts.threads <= 1 || !opts.setup) {
    coords.forEach((c, k) => {
      out[k] = centralDifference(opts.loss, opts.params[c.param]!, c.i);
      opts.done?.(k, out[k]!);
    });
    return out;
  }
  const { code, ...args } = opts.setup;
  const url = `data:text/javascript;base64,${Buffer.from(code).toString('base64')}`;
  const source = WORKER(`${centralDifference.toString()}\n${lossOf.toString()}`);
  let next = 0;
  const workers: Worker[] = [];
  try {
    await Promise.all(
      Array.from({ length: opts.threads }, () => {
        const w = new Worker(source, { eval: true, workerData: { ...args, url } });
        workers.push(w);
        return new Promise<void>((resolve, reject) => {
          const feed = () => {
            if (next < coords.length) {
              const k = next++;
              w.postMessage({ k, param: coords[k]!.param, i: coords[k]!.i });
            } else {
              w.postMessage(null);
              resolve();
            }
          };
          w.on('message', (m: { k: number; fd: number; error?: string }) => {
            if (m.error !== undefined) return reject(new Error(`internal: graphc check: a finite-difference worker failed: ${m.error}`));
            if (m.k >= 0) {
              out[m.k] = m.fd;
              opts.done?.(m.k, m.fd);
            }
            feed();
          });
          w.on('error', reject);
        });
      }),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return out;
}
