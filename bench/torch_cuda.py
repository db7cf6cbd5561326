"""PyTorch eager on CUDA: one training step of the makemore network at S, L and XL (timing only;
the same network as examples/makemore.ts). Run on the lent GPU machine: python3 torch_cuda.py"""
import time

import torch
import torch.nn.functional as F

SIZES = {'S': (32, 3, 10, 64, 27), 'L': (256, 3, 64, 1024, 27), 'XL': (4096, 3, 128, 4096, 27)}


def step(p, Xb, Yb, n):
    for t in p.values():
        t.grad = None
    emb = p['C'][Xb]
    hprebn = emb.view(n, -1) @ p['W1'] + p['b1']
    bnmeani = hprebn.sum(0, keepdim=True) / n
    bndiff = hprebn - bnmeani
    bnvar = (bndiff**2).sum(0, keepdim=True) / (n - 1)
    bnraw = bndiff * (bnvar + 1e-5) ** -0.5
    h = torch.tanh(p['bngain'] * bnraw + p['bnbias'])
    loss = F.cross_entropy(h @ p['W2'] + p['b2'], Yb)
    loss.backward()
    return loss


def flops(n, block, ne, nh, v):
    """as bench/gpu.mjs counts them: the three products of each matmul, and the elementwise work"""
    k = block * ne
    return 3 * 2 * n * (k * nh + nh * v) + 24 * n * nh + 12 * n * v + n * k


def main():
    dev = torch.device('cuda')
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 products, as the GPU.js kernels compute
    print('device', torch.cuda.get_device_name(0), 'torch', torch.__version__, 'tf32 off')
    for name, (n, block, ne, nh, v) in SIZES.items():
        g = torch.Generator(device='cpu').manual_seed(1)
        shapes = {'C': (v, ne), 'W1': (ne * block, nh), 'b1': (nh,), 'W2': (nh, v), 'b2': (v,), 'bngain': (1, nh), 'bnbias': (1, nh)}
        p = {k: (torch.randn(s, generator=g) * 0.1).to(dev).requires_grad_() for k, s in shapes.items()}
        Xb = torch.randint(0, v, (n, block), generator=g).to(dev)
        Yb = torch.randint(0, v, (n,), generator=g).to(dev)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 2:
            step(p, Xb, Yb, n)
        torch.cuda.synchronize()
        times = []
        t1 = time.perf_counter()
        while time.perf_counter() - t1 < 3:
            a = time.perf_counter()
            step(p, Xb, Yb, n)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - a) * 1000)
        times.sort()
        ms = times[len(times) // 2]
        print(f'{name:4} {ms:8.3f} ms/step  ({times[0]:.3f}-{times[-1]:.3f}, {len(times)} steps)  '
              f'{flops(n, block, ne, nh, v) / ms / 1e6:9.1f} GFLOP/s')


main()
