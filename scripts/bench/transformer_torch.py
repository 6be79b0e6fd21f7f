# The benchmark of scripts/bench/transformer.lua in PyTorch: a
# TransformerEncoderLayer's forward and backward (d_model 256, 4 heads,
# feed-forward 1024, dropout 0.1 in training mode, batch_first), sequence
# 128, batch 32. transformer.lua runs it with OMP_NUM_THREADS and --threads
# set to its own count.
import argparse
import statistics
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--rounds", type=int, default=7)
parser.add_argument("--steps", type=int, default=5)
parser.add_argument("--batch", type=int, default=32)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)

D, HEADS, FF, L = 256, 4, 1024, 128
torch.manual_seed(1)
layer = torch.nn.TransformerEncoderLayer(D, HEADS, FF, 0.1, batch_first=True)
x = torch.randn(args.batch, L, D, requires_grad=True)
upstream = torch.randn(args.batch, L, D)


def step():
    layer.zero_grad()
    x.grad = None
    layer(x).backward(upstream)


step()
times = []
for _ in range(args.rounds):
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    times.append((time.perf_counter() - t0) / args.steps)
t = statistics.median(times)
print("PyTorch %d thread%s: step %.3f ms (torch %s)"
      % (args.threads, " " if args.threads == 1 else "s", t * 1e3, torch.__version__))
