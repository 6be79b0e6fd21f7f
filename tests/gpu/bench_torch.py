"""bench_torch.py: PyTorch's side of tests/gpu/bench.lua, the same work on
the same card, printing "bench <name> <milliseconds per iteration>".
A benchmark, never a test; tests/gpu/check.sh prints the ratios."""
import time

import torch

device = "cuda"
# nnlua computes float32 products in float32 (no TF32), as PyTorch's default does
torch.backends.cuda.matmul.allow_tf32 = False


def timed(iterations, fn):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iterations):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iterations * 1000


def report(name, ms):
    print(f"bench {name:<28} {ms:10.4f}", flush=True)


for n in (1024, 4096, 8192):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    report(f"matmul_{n}", timed(20, lambda: a @ b))


def mlp_step(sizes, batch, iterations, name):
    torch.manual_seed(1)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, sizes[0], device=device)
    y = torch.randint(0, sizes[-1], (batch,), device=device)

    def step():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()

    report(name, timed(iterations, step))


mlp_step([784, 512, 10], 128, 200, "mlp_784_512_10_b128")
mlp_step([4096] * 5, 4096, 10, "mlp_4x4096_b4096")
x, w = torch.randn(4096, 4096, device=device), torch.randn(4096, 4096, device=device)
report("mlp_4x4096_gemms", timed(3, lambda: [x @ w for _ in range(11)]))

torch.manual_seed(777)
X = torch.tensor([[0.0, 0], [0, 1], [1, 0], [1, 1]], device=device)
Y = torch.tensor([[0.0], [1], [1], [0]], device=device)
model = torch.nn.Sequential(torch.nn.Linear(2, 10), torch.nn.Sigmoid(), torch.nn.Linear(10, 10),
                            torch.nn.Sigmoid(), torch.nn.Linear(10, 10), torch.nn.Sigmoid(),
                            torch.nn.Linear(10, 1), torch.nn.Sigmoid()).to(device)
criterion, optimizer = torch.nn.BCELoss(), torch.optim.SGD(model.parameters(), lr=1)


def xor_epoch():
    optimizer.zero_grad()
    cost = criterion(model(X), Y)
    cost.backward()
    optimizer.step()


report("xor_epoch", timed(2000, xor_epoch))
