# The benchmark of scripts/bench/mlp_sweep.lua in PyTorch: for each row of
# its grid ("width,batch,depth;..."), training steps of `depth` layers
# Linear(width, width) with a ReLU between them, MSE loss against a fixed
# target, SGD lr 0.01 (zero_grad, forward, loss, backward, step). Prints
# "width batch depth step T ms" per row: the median of the rounds, each
# about --seconds long. mlp_sweep.lua runs it with OMP_NUM_THREADS and
# --threads set to its own count.
import argparse, statistics, time
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--rounds", type=int, default=7)
parser.add_argument("--seconds", type=float, default=0.05)
parser.add_argument("--grid", required=True)
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)


def new_step(width, batch, depth):
    torch.manual_seed(1)
    layers = []
    for i in range(depth):
        layers.append(torch.nn.Linear(width, width))
        if i < depth - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    criterion = torch.nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.rand(batch, width), torch.rand(batch, width)

    def step():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    return step


print("torch %s, %d thread%s" % (torch.__version__, args.threads, "" if args.threads == 1 else "s"))
for row in args.grid.split(";"):
    width, batch, depth = (int(v) for v in row.split(","))
    step = new_step(width, batch, depth)
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    step()
    calls = max(1, int(args.seconds / max(time.perf_counter() - t0, 1e-7)))
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        times.append((time.perf_counter() - t0) / calls)
    print("%d %d %d step %.6f ms" % (width, batch, depth, statistics.median(times) * 1e3), flush=True)
