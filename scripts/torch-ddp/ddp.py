# Data-parallel SGD on a module written by `graphc export --torch`, with torch.distributed's DDP
# (gloo, CPU). Run under torchrun, one process per rank:
#
#   torchrun --nproc_per_node 2 --redirects 2 --tee 2 --log_dir LOGS \
#       scripts/torch-ddp/ddp.py MODEL.py CLASS DATA.safetensors TRAINED.safetensors [--steps N] [--lr LR]
#
# DATA holds X [steps, global batch, ...] (i32) and Y [steps, global batch] (i32); each rank takes
# its rows of each step's global batch (rank r of R: rows r·B/R .. (r+1)·B/R), DDP averages the
# gradients over the ranks (an all-reduce), and every rank applies the same SGD step. Rank 0
# writes the trained params as a graphc checkpoint (safetensors, graphc's names). Batch norm
# normalises with each rank's own rows (DDP without SyncBatchNorm).
import argparse
import importlib.util
import json

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def read_safetensors(path):
    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        dtype = torch.float32 if e["dtype"] == "F32" else torch.int32
        out[name] = torch.frombuffer(bytearray(data[8 + n + begin:8 + n + end]), dtype=dtype).reshape(e["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("module")
    ap.add_argument("cls")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--inputs", default="Xb,Yb", help="the model's input names for X and Y")
    args = ap.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    spec = importlib.util.spec_from_file_location("exported", args.module)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = getattr(mod, args.cls)()  # every rank starts from the exported values
    model.train()
    ddp = DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr)
    data = read_safetensors(args.data)
    x_name, y_name = args.inputs.split(",")
    for step in range(args.steps):
        rows = data["X"].shape[1] // world
        sl = slice(rank * rows, (rank + 1) * rows)
        opt.zero_grad()
        out = ddp(**{x_name: data["X"][step, sl], y_name: data["Y"][step, sl]})
        out["loss"].backward()  # DDP all-reduces the gradients: their mean over the ranks
        opt.step()
        print(f"rank {rank} step {step + 1}: loss {out['loss'].item():.6f}", flush=True)
    if rank == 0:
        model.save_safetensors(args.out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
