# The benchmark of scripts/bench/lstm.lua in PyTorch: one training step's
# forward and backward of a 2-layer LSTM (input and hidden 256) over 64
# steps at batch 64. lstm.lua runs it with OMP_NUM_THREADS and --threads set
# to its own count.
import argparse, statistics, time
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--rounds", type=int, default=7)
parser.add_argument("--steps", type=int, default=3)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)

LAYERS, INPUT, HIDDEN, BATCH, STEPS = 2, 256, 256, 64, 64
torch.manual_seed(1)
lstm = torch.nn.LSTM(INPUT, HIDDEN, LAYERS)
x = torch.randn(STEPS, BATCH, INPUT)
w = torch.randn(STEPS, BATCH, HIDDEN)


def step():
    lstm.zero_grad()
    out, _ = lstm(x)
    (out * w).sum().backward()


for _ in range(3):
    step()
times = []
for _ in range(args.rounds):
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    times.append((time.perf_counter() - t0) / args.steps)
print("PyTorch %d thread%s: step %.3f ms (torch %s)"
      % (args.threads, " " if args.threads == 1 else "s", statistics.median(times) * 1e3,
         torch.__version__))
