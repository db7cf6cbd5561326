"""The realistic-size models of bench/realistic.mjs in PyTorch (eager, CPU), for bench/torch_worker.py.

NanoGPT: karpathy/nanoGPT's model.py at its CPU config as bench/models/nanogpt.ts writes it (bias
False, the head tied to wte, GELU in its tanh form, the causal mask by masked_fill as model.py's
path without flash attention does). ResNet: test/fixtures/precision/resnet.ts (3x3 convolutions
without bias, batch norm over the channels with Bessel's correction as graphc's g.batchNorm,
residual adds, global average pooling, a linear head). Both take graphc's params as they are:
linear weights [in, out] (x @ W, so no transposition), conv weights [out, in, 3, 3] as torch's.
"""
import ctypes
import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from torch_worker import decode


def tensors(shapes, params):
    return {name: torch.tensor(decode(params[name], '<f4').reshape(shape), requires_grad=True) for name, shape in shapes.items()}


class NanoGPT:
    def __init__(self, cfg, shapes, params, inputs):
        self.cfg = cfg
        self.p = tensors(shapes, params)
        n, t = cfg['batch'], cfg['block']
        self.X = torch.tensor(decode(inputs['X'], '<i4').astype(np.int64).reshape(n, t))
        self.Y = torch.tensor(decode(inputs['Y'], '<i4').astype(np.int64).reshape(n, t))
        self.mask = torch.tril(torch.ones(t, t, dtype=torch.bool))

    def step(self):
        p, cfg = self.p, self.cfg
        n, t, c, nh = cfg['batch'], cfg['block'], cfg['nEmbd'], cfg['nHead']
        for v in p.values():
            v.grad = None
        x = p['wte'][self.X] + p['wpe']
        for l in range(cfg['nLayer']):
            h = F.layer_norm(x, (c,), p[f'h{l}_ln1_g'], None, 1e-5)
            q, k, v = (h @ p[f'h{l}_attn_W']).split(c, dim=2)
            q, k, v = (z.view(n, t, nh, c // nh).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // nh))
            att = F.softmax(att.masked_fill(~self.mask, float('-inf')), dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(n, t, c)
            x = x + y @ p[f'h{l}_attnproj_W']
            h = F.layer_norm(x, (c,), p[f'h{l}_ln2_g'], None, 1e-5)
            x = x + F.gelu(h @ p[f'h{l}_fc_W'], approximate='tanh') @ p[f'h{l}_mlpproj_W']
        x = F.layer_norm(x, (c,), p['lnf_g'], None, 1e-5)
        logits = F.linear(x, p['wte'])  # the tied head: x @ wteᵀ
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), self.Y.view(-1))
        loss.backward()
        return loss.item()


class ResNet:
    def __init__(self, cfg, shapes, params, inputs):
        self.p = tensors(shapes, params)
        self.x = torch.tensor(decode(inputs['x'], '<f4').reshape(cfg['x']))
        self.labels = torch.tensor(decode(inputs['labels'], '<i4').astype(np.int64))
        self.convs = sorted(int(k[4:-2]) for k in self.p if k.startswith('conv'))

    def conv_bn(self, h, i):
        y = F.conv2d(h, self.p[f'conv{i}_W'], padding=1)
        # graphc's batch norm divides the variance by m - 1 (m = n·h·w rows); torch's by m. Exactly
        # the same: (x - μ) / √(k·var + ε) = (x - μ) / √(var + ε/k) / √k with k = m / (m - 1)
        k = y.numel() / y.shape[1]
        k = k / (k - 1)
        return F.batch_norm(y, None, None, self.p[f'bn{i}_g'] / math.sqrt(k), self.p[f'bn{i}_b'], training=True, eps=1e-5 / k)

    def step(self):
        p = self.p
        for v in p.values():
            v.grad = None
        h = self.conv_bn(self.x, 1).relu()
        for b in range((self.convs[-1] - 1) // 2):
            t = self.conv_bn(h, 2 + 2 * b).relu()
            h = (self.conv_bn(t, 3 + 2 * b) + h).relu()
        logits = h.mean((2, 3)) @ p['fc_W'] + p['fc_b']
        loss = F.cross_entropy(logits, self.labels)
        loss.backward()
        return loss.item()


MODELS = {'nanogpt': NanoGPT, 'resnet': ResNet}


def blas_info():
    """Which BLAS this process loaded (from /proc/self/maps, after a matmul), and its threads."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    with open('/proc/self/maps') as f:
        libs = sorted({line.split()[-1] for line in f if re.search(r'blas|lapack|mkl|blis|atlas', line.split()[-1], re.I)})
    built = re.search(r'BLAS_INFO=(\w+)', torch.__config__.show())
    info = {'libs': libs, 'built': built.group(1) if built else '?'}
    joined = ' '.join(libs)
    if 'mkl' in joined:
        info['kind'] = 'MKL'
    elif 'openblas' in joined:
        info['kind'] = 'OpenBLAS'
        lib = next(l for l in libs if 'openblas' in l and '.so' in l)
        try:
            ob = ctypes.CDLL(lib)
            ob.openblas_get_config.restype = ctypes.c_char_p
            info['kind'] = f"OpenBLAS ({ob.openblas_get_config().decode()}; {ob.openblas_get_num_threads()} thread(s))"
        except (OSError, AttributeError):
            pass
    elif 'blis' in joined:
        info['kind'] = 'BLIS'
    elif 'atlas' in joined:
        info['kind'] = 'ATLAS'
    elif re.search(r'/blas/libblas\.so', joined):
        info['kind'] = 'reference'  # Debian's libblas3: the netlib Fortran loops
    else:
        info['kind'] = 'unknown'
    return info
