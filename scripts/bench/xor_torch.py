# The XOR loop of scripts/bench/xor.lua in PyTorch, for the ratio it prints.
import argparse, time, torch

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10000)
parser.add_argument("--runs", type=int, default=5)
args = parser.parse_args()
torch.set_num_threads(1)

def train(n):
    torch.manual_seed(777)
    X = torch.tensor([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
    Y = torch.tensor([[0.], [1.], [1.], [0.]])
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 10), torch.nn.Sigmoid(), torch.nn.Linear(10, 10), torch.nn.Sigmoid(),
        torch.nn.Linear(10, 10), torch.nn.Sigmoid(), torch.nn.Linear(10, 1), torch.nn.Sigmoid())
    criterion = torch.nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1)
    t0 = time.perf_counter()
    for _ in range(n):
        optimizer.zero_grad()
        cost = criterion(model(X), Y)
        cost.backward()
        optimizer.step()
    return (time.perf_counter() - t0) / n

train(500)
times = sorted(train(args.epochs) for _ in range(args.runs))
print("PyTorch XOR epoch: %.2f us (median of %d runs of %d epochs; torch %s, 1 thread)"
      % (times[len(times) // 2] * 1e6, args.runs, args.epochs, torch.__version__))
