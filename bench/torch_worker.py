"""The makemore MLP in PyTorch (eager, CPU), a contender in a process of its own; with "model"
"nanogpt" or "resnet" in init, one of bench/realistic_torch.py's (bench/realistic.mjs).

Speaks JSON lines over stdin/stdout with bench/run.mjs, one answer per command:
  {"cmd": "init", "cfg", "shapes", "params", "inputs", "model"?, "threads"?} -> {"info", "loss", "grads"}
  {"cmd": "round", "ms", "minSteps", "record"}         -> {"steps", "times"?} (ms per step)
  {"cmd": "rss"}                                       -> {"maxRssKb"}
Tensors travel as base64 of their little-endian bytes (float32, or int32 for inputs). With
"threads", torch.set_num_threads(threads) (the parent also sets OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS for the process, so that the BLAS's own threads follow; without them
Debian's OpenBLAS runs as many threads as cores under a 1-thread torch, and OMP_WAIT_POLICY=PASSIVE
and glibc's malloc thresholds unless set: see bench/README.md). info says which BLAS the process
loaded, its threads, and those variables as the process saw them.
"""
import base64
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def decode(b64, dtype):
    return np.frombuffer(base64.b64decode(b64), dtype=dtype)


def encode(t):
    return base64.b64encode(t.detach().contiguous().numpy().astype('<f4').tobytes()).decode('ascii')


class Makemore:
    def __init__(self, cfg, shapes, params, inputs):
        self.n = cfg['batch']
        self.p = {
            name: torch.tensor(decode(params[name], '<f4').reshape(shape), requires_grad=True)
            for name, shape in shapes.items()
        }
        self.Xb = torch.tensor(decode(inputs['Xb'], '<i4').astype(np.int64).reshape(self.n, -1))
        self.Yb = torch.tensor(decode(inputs['Yb'], '<i4').astype(np.int64))

    def step(self):
        """One forward + backward pass, all parameter gradients; returns the loss."""
        p, n = self.p, self.n
        for t in p.values():
            t.grad = None
        emb = p['C'][self.Xb]
        embcat = emb.view(n, -1)
        hprebn = embcat @ p['W1'] + p['b1']
        bnmeani = hprebn.sum(0, keepdim=True) * (1 / n)
        bndiff = hprebn - bnmeani
        bndiff2 = bndiff**2
        bnvar = bndiff2.sum(0, keepdim=True) * (1 / (n - 1))  # Bessel's correction
        bnvar_inv = (bnvar + 1e-5) ** -0.5
        bnraw = bndiff * bnvar_inv
        hpreact = p['bngain'] * bnraw + p['bnbias']
        h = torch.tanh(hpreact)
        logits = h @ p['W2'] + p['b2']
        loss = F.cross_entropy(logits, self.Yb)  # log-softmax (max-subtracted) and mean NLL
        loss.backward()
        return loss.item()


def result(model):
    """One step of a model (its step() and its params p): the loss and every gradient."""
    loss = model.step()
    return {'loss': loss, 'grads': {name: encode(t.grad) for name, t in model.p.items()}}


def time_round(step, ms, minSteps=1, record=True):
    times = []
    end = time.perf_counter() + ms / 1000
    t = time.perf_counter()
    while len(times) < minSteps or t < end:
        step()
        now = time.perf_counter()
        times.append((now - t) * 1000)
        t = now
    return {'steps': len(times), 'times': times} if record else {'steps': len(times)}


def main():
    model = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            cmd = msg['cmd']
            if cmd == 'exit':
                break
            if cmd == 'init':
                if msg.get('threads'):
                    torch.set_num_threads(msg['threads'])
                info = {'python': sys.version.split()[0], 'torch': torch.__version__, 'threads': torch.get_num_threads()}
                # what the parent set before torch loaded (bench/workers.mjs's PythonWorker)
                info['env'] = {k: os.environ.get(k, 'unset') for k in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'OMP_WAIT_POLICY', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_')}
                import realistic_torch

                model_class = Makemore if msg.get('model', 'makemore') == 'makemore' else realistic_torch.MODELS[msg['model']]
                model = model_class(msg['cfg'], msg['shapes'], msg['params'], msg['inputs'])
                info['blas'] = realistic_torch.blas_info()
                reply = {'info': info, **result(model)}
            elif cmd == 'round':
                reply = time_round(model.step, msg['ms'], msg.get('minSteps', 1), msg.get('record', True))
            elif cmd == 'rss':
                reply = {'maxRssKb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
            else:
                raise ValueError(f'unknown command {cmd}')
            reply['ok'] = True
        except Exception as e:  # reported to the parent, which stops the run
            reply = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
