// The parent's side of the contender processes: a forked Node process (IPC, structured clone)
// or a persistent Python process (JSON lines), each answering one request at a time.
import { fork, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { median } from './report.mjs';

const HERE = import.meta.dirname;
/** Linux's USER_HZ: the unit of /proc/PID/stat's CPU times (100 on every Linux ABI Node runs on). */
const CLK_TCK = 100;

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

  /** CPU time (ms, every thread, user + system) the process has used so far; undefined off Linux. */
  cpuMs() {
    const f = this.#stat();
    return f && ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  }

  /** Minor page faults of the process so far (fresh pages it touched); undefined off Linux. */
  minorFaults() {
    const f = this.#stat();
    return f && Number(f[7]);
  }

  /** /proc/PID/stat's fields from the 3rd (state) on: minflt is [7], utime and stime [11] and [12]. */
  #stat() {
    try {
      return readFileSync(`/proc/${this.child.pid}/stat`, 'utf8').split(')').pop().trim().split(' ');
    } catch {
      return undefined;
    }
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
 * when torch loads; send the same to init for torch.set_num_threads). OMP_WAIT_POLICY is PASSIVE
 * unless this process's environment sets it: under libgomp's default, a thread that reaches the end
 * of a parallel region first spins for its partner, and on 2 cores with anything else running
 * (2026-12-07: a CI run beside the bench) a 2-thread PyTorch step took 7 to 20 times as long as
 * with PASSIVE. And glibc's malloc keeps freed memory below 64 MiB (MALLOC_MMAP_THRESHOLD_,
 * MALLOC_TRIM_THRESHOLD_, unless set): by default its mmap threshold moves with the sizes a process
 * happened to free before, so one torch process served the ResNet's 2 MiB activations from fresh
 * pages (1,700–3,200 page faults and 12–25 ms of system time a step, twice to 4 times the step) and
 * its twin did not (bench/README.md, "PyTorch's processes").
 */
export class PythonWorker extends Worker {
  constructor(label, python, { threads } = {}) {
    const child = spawn(python, ['-u', path.join(HERE, 'torch_worker.py')], { stdio: ['pipe', 'pipe', 'inherit'], env: torchEnv(threads) });
    super(label, child);
    createInterface({ input: child.stdout }).on('line', (line) => this.answered(decodeGrads(JSON.parse(line))));
    child.stdin.on('error', () => {}); // an exit is reported by the 'exit' handler
  }
  send(msg) {
    this.child.stdin.write(JSON.stringify(msg, (_k, v) => (ArrayBuffer.isView(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : v)) + '\n');
  }
}

/** The environment of a PyTorch process with `threads` OpenMP and BLAS threads (all of the library's when undefined): see PythonWorker. */
export function torchEnv(threads) {
  const env = { ...process.env };
  if (threads) for (const k of ['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS']) env[k] = String(threads);
  env.OMP_WAIT_POLICY ??= 'PASSIVE';
  env.MALLOC_MMAP_THRESHOLD_ ??= String(64 << 20);
  env.MALLOC_TRIM_THRESHOLD_ ??= String(128 << 20);
  return env;
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
 * highest round median, the process's peak RSS, and where /proc tells: `busyCpu`, the cores it
 * used in its own rounds (CPU time / wall time), and `idleCpu`, the cores it used while the others
 * were timed (a process whose threads spin after its turn steals a core from the next contender),
 * and `faultsPerStep`, the minor page faults a measured step took (memory the allocator gave back
 * and took again).
 * `settleMs`: after each turn, wait (at most that long) until the process that ran uses no more
 * CPU, so that no thread of it still spinning is timed against the next; `settledMs`: the longest
 * such wait.
 */
export async function timeInTurns(list, { warmupMs, rounds, roundMs, minSteps = 1, reverse = false, settleMs = 0, log = () => {} }) {
  for (const c of list) {
    const w = await c.worker.request({ cmd: 'round', ms: warmupMs, minSteps, record: false });
    log(`  warm-up ${c.label}: ${w.steps} steps`);
    if (settleMs) await settle(c.worker, settleMs);
  }
  const samples = list.map(() => ({ times: [], roundMedians: [], busy: { cpu: 0, wall: 0 }, idle: { cpu: 0, wall: 0 }, faults: 0 }));
  for (let r = 0; r < rounds; r++) {
    const order = list.map((_, i) => i);
    if (reverse && r % 2) order.reverse();
    for (const i of order) {
      const cpu0 = list.map((c) => c.worker.cpuMs());
      const faults0 = list[i].worker.minorFaults();
      const t0 = performance.now();
      const { times } = await list[i].worker.request({ cmd: 'round', ms: roundMs, minSteps });
      const wall = performance.now() - t0;
      samples[i].faults += list[i].worker.minorFaults() - faults0;
      list.forEach((c, j) => {
        const used = c.worker.cpuMs() - cpu0[j];
        const acc = j === i ? samples[j].busy : samples[j].idle;
        acc.cpu += used;
        acc.wall += wall;
      });
      samples[i].times.push(...times);
      samples[i].roundMedians.push(median(times));
      if (settleMs) samples[i].settled = Math.max(samples[i].settled ?? 0, await settle(list[i].worker, settleMs));
    }
  }
  return Promise.all(
    list.map(async (c, i) => {
      const s = samples[i];
      const { maxRssKb } = await c.worker.request({ cmd: 'rss' });
      const cores = ({ cpu, wall }) => (wall > 0 ? cpu / wall : undefined); // NaN off Linux
      return { c, ms: median(s.times), steps: s.times.length, lo: Math.min(...s.roundMedians), hi: Math.max(...s.roundMedians), maxRssKb, busyCpu: cores(s.busy), idleCpu: cores(s.idle), settledMs: s.settled, faultsPerStep: s.faults / s.times.length };
    }),
  );
}

/** Waits until `worker`'s process uses less than a clock tick in 20 ms (its threads asleep), at most `maxMs`; returns the ms waited. */
async function settle(worker, maxMs) {
  const t0 = performance.now();
  let cpu = worker.cpuMs();
  if (cpu === undefined) return 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    const now = worker.cpuMs();
    const waited = performance.now() - t0;
    if (now - cpu < 10 || waited >= maxMs) return waited;
    cpu = now;
  }
}
