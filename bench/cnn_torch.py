# The PyTorch contender of bench/cnn.mjs: examples/cnn.ts written with torch.nn.functional, on
# 1 thread, from the params and inputs the bench passes (raw float32/int32 files). Prints the
# loss, the gradients (for the agreement check) and the median time of one training step
# (forward, backward, zeroing the gradients; the optimizer is not timed).
import json, sys, time
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
d = sys.argv[1]
spec = json.load(open(f'{d}/spec.json'))
p = {k: torch.tensor(np.fromfile(f'{d}/{k}.f32', dtype=np.float32).reshape(s), requires_grad=True) for k, s in spec['params'].items()}
x = torch.tensor(np.fromfile(f'{d}/x.f32', dtype=np.float32).reshape(spec['x']))
y = torch.tensor(np.fromfile(f'{d}/labels.i32', dtype=np.int32).astype(np.int64))

def step():
    h1 = F.max_pool2d(F.relu(F.conv2d(x, p['W1'], p['b1'])), 2)
    h2 = F.max_pool2d(F.relu(F.conv2d(h1, p['W2'], p['b2'])), 2)
    h3 = F.relu(h2.reshape(x.shape[0], 256) @ p['W3'] + p['b3'])
    loss = F.cross_entropy(h3 @ p['W4'] + p['b4'], y)
    for v in p.values(): v.grad = None
    loss.backward()
    return loss

loss = step()
grads = {k: v.grad.flatten().tolist() for k, v in p.items()}
for _ in range(5): step()
times = []
for _ in range(int(spec['reps'])):
    t0 = time.perf_counter(); step(); times.append((time.perf_counter() - t0) * 1e3)
times.sort()
print(json.dumps({'loss': loss.item(), 'grads': grads, 'ms': times[len(times) // 2], 'torch': torch.__version__}))
