// The parent's side of the contender processes: a forked Node process (IPC, structured clone)
// or a persistent Python process (JSON lines), each answering one request at a time.
import { fork, spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { median } from './report.mjs';

const HERE = import.meta.dirname;

class Worker {
  #pending = [];
  constructor(label, child) {
    this.label = label;
    this.child = child;
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const p of this.#pending.splice(0)) p.reject(new Error(`${label}: the process exited (${signal ?? `code ${code}`})`));
    });
  }

  /** Sends one command and resolves with the answer; rejects on an error answer. */
  request(msg) {
    if (this.exited) return Promise.reject(new Error(`${this.label}: the process has exited`));
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.send(msg);
    });
  }

  answered(reply) {
    const p = this.#pending.shift();
    if (!p) return;
    if (reply.ok) p.resolve(reply);
    else p.reject(new Error(`${this.label}: ${reply.error}`));
  }

  close() {
    if (this.exited) return;
    try {
      this.send({ cmd: 'exit' });
    } catch {
      // already gone
    }
    setTimeout(() => this.exited || this.child.kill(), 2000).unref();
  }
}

/** A JavaScript contender: bench/worker-js.mjs in a process of its own. */
export class JsWorker extends Worker {
  /** `flags`: Node flags of the process (e.g. --experimental-wasm-relaxed-simd), after this process's own. */
  constructor(label, { flags = [] } = {}) {
    const child = fork(path.join(HERE, 'worker-js.mjs'), [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [...process.execArgv, ...flags] });
    super(label, child);
    child.on('message', (reply) => this.answered(reply));
  }
  send(msg) {
    this.child.send(msg);
  }
}

/**
 * The PyTorch contender: bench/torch_worker.py, tensors as base64 in JSON lines. `threads`: the
 * process's OpenMP and BLAS threads (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, read
 * when torch loads; send the same to init for torch.set_num_threads).
 */
export class PythonWorker extends Worker {
  constructor(label, python, { threads } = {}) {
    const env = { ...process.env };
    if (threads) for (const k of ['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS']) env[k] = String(threads);
    const child = spawn(python, ['-u', path.join(HERE, 'torch_worker.py')], { stdio: ['pipe', 'pipe', 'inherit'], env });
    super(label, child);
    createInterface({ input: child.stdout }).on('line', (line) => this.answered(decodeGrads(JSON.parse(line))));
    child.stdin.on('error', () => {}); // an exit is reported by the 'exit' handler
  }
  send(msg) {
    this.child.stdin.write(JSON.stringify(msg, (_k, v) => (ArrayBuffer.isView(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : v)) + '\n');
  }
}

function decodeGrads(reply) {
  if (reply.grads) {
    for (const [name, b64] of Object.entries(reply.grads)) {
      const bytes = Buffer.from(b64, 'base64');
      reply.grads[name] = new Float32Array(new Uint8Array(bytes).buffer);
    }
  }
  return reply;
}

/** The first Python that can import torch: python3 on the PATH, then Debian's /usr/bin/python3. */
export function findTorchPython() {
  for (const python of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return python;
  }
  return undefined;
}

/**
 * Times contenders that each run in a worker, taking turns: a warm-up of `warmupMs` each, then
 * `rounds` rounds of at least `roundMs` (and `minSteps` steps) of each in turn (with `reverse`,
 * the order reversed every other round: no contender always follows the same one). Returns, per
 * contender (in order), the median ms over every measured step, the step count, the lowest and
 * highest round median, and the process's peak RSS.
 */
export async function timeInTurns(list, { warmupMs, rounds, roundMs, minSteps = 1, reverse = false, log = () => {} }) {
  for (const c of list) {
    const w = await c.worker.request({ cmd: 'round', ms: warmupMs, minSteps, record: false });
    log(`  warm-up ${c.label}: ${w.steps} steps`);
  }
  const samples = list.map(() => ({ times: [], roundMedians: [] }));
  for (let r = 0; r < rounds; r++) {
    const order = list.map((_, i) => i);
    if (reverse && r % 2) order.reverse();
    for (const i of order) {
      const { times } = await list[i].worker.request({ cmd: 'round', ms: roundMs, minSteps });
      samples[i].times.push(...times);
      samples[i].roundMedians.push(median(times));
    }
  }
  return Promise.all(
    list.map(async (c, i) => {
      const s = samples[i];
      const { maxRssKb } = await c.worker.request({ cmd: 'rss' });
      return { c, ms: median(s.times), steps: s.times.length, lo: Math.min(...s.roundMedians), hi: Math.max(...s.roundMedians), maxRssKb };
    }),
  );
}
