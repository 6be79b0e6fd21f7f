# The benchmark of scripts/bench/mlp.lua in PyTorch: training steps of the
# 784-512-10 network (Linear, ReLU, Linear, cross-entropy, RMSprop lr 0.001)
# at batch 128, and one shuffled epoch of Fashion-MNIST (read from Debian's
# dataset-fashion-mnist; random data of the same shape when it is absent).
# mlp.lua runs it with OMP_NUM_THREADS and --threads set to its own count.
import argparse, gzip, os, statistics, time
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--rounds", type=int, default=15)
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--no-epoch", action="store_true")
parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)

BATCH, IN, HIDDEN, OUT = 128, 784, 512, 10
FLOPS = 2 * BATCH * IN * HIDDEN * 2 + 2 * BATCH * HIDDEN * OUT * 3


def new_step():
    model = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, OUT))
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.001)

    def step(x, y):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return step


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


torch.manual_seed(1)
step = new_step()
x = torch.rand(BATCH, IN)
y = torch.tensor([(i * 7) % OUT for i in range(1, BATCH + 1)])
for _ in range(20):
    step(x, y)
times = []
for _ in range(args.rounds):
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step(x, y)
    times.append((time.perf_counter() - t0) / args.steps)
t = statistics.median(times)
print("PyTorch %d thread%s: step %.3f ms (%.1f GFLOP/s; torch %s)"
      % (args.threads, " " if args.threads == 1 else "s", t * 1e3, FLOPS / t / 1e9,
         torch.__version__))

if not args.no_epoch:
    images_path = os.path.join(args.data, "train-images-idx3-ubyte.gz")
    if os.path.exists(images_path):
        images = read_idx(images_path).reshape(-1, IN).float() / 255
        labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz")).long()
        source = "Fashion-MNIST"
    else:
        images, labels = torch.rand(60000, IN), torch.randint(0, OUT, (60000,))
        source = "random data"
    step = new_step()
    n = images.shape[0]
    g = torch.Generator().manual_seed(7)
    # the epoch, with the time of the indexing that makes each batch (the
    # usual slicing by a random permutation, as a DataLoader over a
    # TensorDataset does) measured inside it
    loading = 0.0
    t0 = time.perf_counter()
    order = torch.randperm(n, generator=g)
    steps = 0
    for i in range(0, n, BATCH):
        t1 = time.perf_counter()
        idx = order[i:i + BATCH]
        xb, yb = images[idx], labels[idx]
        loading += time.perf_counter() - t1
        step(xb, yb)
        steps += 1
    epoch = time.perf_counter() - t0
    print("PyTorch %d thread%s: epoch %.2f s (%d steps, %.3f ms/step, %s); loading and batching %.3f s = %.2f%%"
          % (args.threads, " " if args.threads == 1 else "s", epoch, steps, epoch / steps * 1e3,
             source, loading, loading / epoch * 100))
