# PyTorch's own float32 error on the ResNets of bench/precision.mjs: the same network (conv 3×3
# without bias, batch norm as graphc's g.batchNorm over [n·h·w, c] rows with Bessel's correction,
# residual adds, global average pooling, linear head, cross-entropy) on the params and inputs that
# `node bench/precision.mjs --dump DIR` wrote, in float32 and float64, each gradient against
# graphc's float64 interpreter by the same measure: max|a - b| / max(max|b|, 1e-3) per tensor.
#   python3 bench/precision_torch.py DIR/resnet_block.json DIR/resnet_cifar.json
import json
import sys

import torch

torch.set_num_threads(1)
if "--no-mkldnn" in sys.argv:  # convolutions by im2col and GEMM instead of oneDNN (whose 3×3 kernels may be Winograd)
    sys.argv.remove("--no-mkldnn")
    torch.backends.mkldnn.enabled = False


def rel_err(a, b):
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-3))


def loss_of(p, x, labels):
    def conv_bn(h, i):
        y = torch.nn.functional.conv2d(h, p[f"conv{i}_W"], padding=1)
        n, c, hh, ww = y.shape
        rows = y.permute(0, 2, 3, 1).reshape(-1, c)
        mu = rows.mean(0)
        var = ((rows - mu) ** 2).sum(0) / (rows.shape[0] - 1)
        out = (rows - mu) / torch.sqrt(var + 1e-5) * p[f"bn{i}_g"] + p[f"bn{i}_b"]
        return out.reshape(n, hh, ww, c).permute(0, 3, 1, 2)

    convs = sorted(int(k[4:-2]) for k in p if k.startswith("conv"))
    if convs[-1] == 2:  # one block: x is the block's input
        t = conv_bn(x, 1).relu()
        h = (conv_bn(t, 2) + x).relu()
    else:
        h = conv_bn(x, 1).relu()
        for b in range((convs[-1] - 1) // 2):
            t = conv_bn(h, 2 + 2 * b).relu()
            h = (conv_bn(t, 3 + 2 * b) + h).relu()
    logits = h.mean((2, 3)) @ p["fc_W"] + p["fc_b"]
    return torch.nn.functional.cross_entropy(logits, labels)


for path in sys.argv[1:]:
    d = json.load(open(path))
    shapes = d["shapes"]
    ref = {k: torch.tensor(v, dtype=torch.float64).reshape(shapes[k]) for k, v in d["grads"].items()}
    for dtype in (torch.float32, torch.float64):
        p = {k: torch.tensor(v, dtype=dtype).reshape(shapes[k]).requires_grad_() for k, v in d["params"].items()}
        x = torch.tensor(d["inputs"]["x"], dtype=dtype)
        x = x.reshape(d["xShape"])
        labels = torch.tensor(d["inputs"]["labels"], dtype=torch.long)
        loss = loss_of(p, x, labels)
        loss.backward()
        errs = {k: rel_err(p[k].grad.double(), ref[k]) for k in ref}
        worst = max(errs, key=errs.get)
        print(f"{path}: torch {dtype}: worst {worst} {errs[worst]:.2e}")
        print("   ", ", ".join(f"{k} {e:.2e}" for k, e in errs.items()))
