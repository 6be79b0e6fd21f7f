# The benchmark of scripts/bench/cnn.lua in PyTorch: training steps of the
# lesson's CNN (two blocks conv 3x3 - BatchNorm2d - ReLU - MaxPool2d, then
# 3136 -> 128 -> 10 with dropout; cross-entropy; Adam) at batch 128, and the
# peak resident memory of the process. cnn.lua runs it with OMP_NUM_THREADS
# and --threads set to its own count.
import argparse, resource, statistics, time
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--rounds", type=int, default=7)
parser.add_argument("--steps", type=int, default=5)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)

BATCH = 128
nn = torch.nn
torch.manual_seed(1)
model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3),
    nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.001)


def step(x, y):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


x = torch.rand(BATCH, 1, 28, 28)
y = torch.tensor([(i * 7) % 10 for i in range(1, BATCH + 1)])
for _ in range(3):
    step(x, y)
times = []
for _ in range(args.rounds):
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step(x, y).item()
    times.append((time.perf_counter() - t0) / args.steps)
t = statistics.median(times)
print("PyTorch %d thread%s: step %.2f ms (torch %s, mkldnn %s); peak RSS %.0f MiB"
      % (args.threads, " " if args.threads == 1 else "s", t * 1e3, torch.__version__,
         torch.backends.mkldnn.is_available(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
