# The benchmark of scripts/bench/ops.lua in PyTorch: the same ops, in the
# same order and under the same names, on the same shapes (4 x 10 and
# 1000 x 1000), timed the same way (the median of rounds, each round's calls
# lasting about --seconds). ops.lua runs it and reads its lines:
#   torch<TAB>version<TAB>-
#   name<TAB>seconds a call at 4x10<TAB>seconds a call at 1000x1000
import argparse, math, statistics, time
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--seconds", type=float, default=0.05)
parser.add_argument("--only", default=None)
parser.add_argument("--cpu-clock", action="store_true",
                    help="time by this process's CPU time, not the wall clock (a shared machine)")
args = parser.parse_args()
torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)
torch.set_grad_enabled(False)

SIZES = {"small": (4, 10), "large": (1000, 1000)}
ops = []


def op(name):
    def register(make):
        ops.append((name, make))
        return make
    return register


def inputs(r, c):
    torch.manual_seed(1)
    return torch.rand(r, c), torch.rand(r, c)


def column_index(r, c):
    return torch.tensor([(i * 7) % c for i in range(1, c // 2 + 1)])


def rows_index(r, c):
    torch.manual_seed(2)
    return torch.randint(0, c, (r, c))


def simple(name, call):
    """An op of x alone."""
    op(name)(lambda r, c: (lambda x: (lambda: call(x)))(inputs(r, c)[0]))


def simple2(name, call):
    """An op of x and y."""
    op(name)(lambda r, c: (lambda xy: (lambda: call(*xy)))(inputs(r, c)))


# joining and splitting
simple2("cat", lambda x, y: torch.cat([x, y], 0))
simple2("stack", lambda x, y: torch.stack([x, y]))
simple("split", lambda x: x.split(2, 1))
simple("chunk", lambda x: x.chunk(2, 0))
simple("flip", lambda x: x.flip(1))
simple("roll", lambda x: x.roll(1, 1))
simple("repeat", lambda x: x.repeat(2, 1))
simple("slice", lambda x: x[:, 1:3])
simple("movedim", lambda x: x.movedim(0, 1))


# indexing
@op("index_select")
def _(r, c):
    x, i = inputs(r, c)[0], column_index(r, c)
    return lambda: x.index_select(1, i)


@op("gather")
def _(r, c):
    x, i = inputs(r, c)[0], rows_index(r, c)
    return lambda: x.gather(1, i)


@op("scatter")
def _(r, c):
    (x, y), i = inputs(r, c), rows_index(r, c)
    return lambda: x.scatter(1, i, y)


@op("scatter_add")
def _(r, c):
    (x, y), i = inputs(r, c), rows_index(r, c)
    return lambda: x.scatter_add(1, i, y)


@op("index_add")
def _(r, c):
    (x, y), i = inputs(r, c), column_index(r, c)
    src = y[:, : c // 2].contiguous()
    return lambda: x.index_add(1, i, src)


@op("take")
def _(r, c):
    x, i = inputs(r, c)[0], rows_index(r, c)
    return lambda: x.take(i)


def masked(name, call):
    def make(r, c):
        x = inputs(r, c)[0]
        m = x > 0.5
        return lambda: call(x, m)
    op(name)(make)


masked("masked_fill", lambda x, m: x.masked_fill(m, 0))
masked("masked_select", lambda x, m: x.masked_select(m))
masked("mask index", lambda x, m: x[m])


def mask_assign(x, m):
    x[m] = 0


masked("mask assign", mask_assign)


@op("where")
def _(r, c):
    x, y = inputs(r, c)
    m = x > y
    return lambda: torch.where(m, x, y)


masked("nonzero", lambda x, m: m.nonzero())

# reductions
simple("sort", lambda x: x.sort(1))
simple("argsort", lambda x: x.argsort(1))
simple("topk", lambda x: x.topk(3, 1))
simple("kthvalue", lambda x: x.kthvalue(2, 1))
simple("median", lambda x: x.median(1))


@op("mode")
def _(r, c):
    q = (inputs(r, c)[0] * 4).floor()
    return lambda: q.mode(1)


@op("unique")
def _(r, c):
    q = (inputs(r, c)[0] * 100).floor()
    return lambda: q.unique()


simple("cumsum", lambda x: x.cumsum(1))
simple("cumprod", lambda x: x.cumprod(1))
simple("prod", lambda x: x.prod(1))
simple("var", lambda x: x.var(1))
simple("std", lambda x: x.std())
simple("logsumexp", lambda x: x.logsumexp(1))
simple("amax", lambda x: x.amax(1))
simple("amin", lambda x: x.amin())


@op("all")
def _(r, c):
    m = inputs(r, c)[0] > 0.01
    return lambda: m.all()


@op("any")
def _(r, c):
    m = inputs(r, c)[0] > 0.99
    return lambda: m.any(1)


simple("count_nonzero", lambda x: x.count_nonzero())
simple2("dist", lambda x, y: x.dist(y))

# math
for name in ["log1p", "expm1", "log2", "rsqrt", "reciprocal", "square", "tan", "atan",
             "erf", "erfinv", "trunc", "frac", "isnan"]:
    simple(name, (lambda n: lambda x: getattr(x, n)())(name))
simple2("atan2", lambda x, y: x.atan2(y))
simple2("fmod", lambda x, y: x.fmod(y))
simple2("remainder", lambda x, y: x.remainder(y))
simple2("lerp", lambda x, y: x.lerp(y, 0.3))
simple("clamp_min", lambda x: x.clamp_min(0.5))
simple("nan_to_num", lambda x: x.nan_to_num())


@op("logical_and")
def _(r, c):
    x, y = inputs(r, c)
    a, b = x > 0.5, y > 0.5
    return lambda: a.logical_and(b)


@op("allclose")
def _(r, c):
    x = inputs(r, c)[0]
    y = x.clone()
    return lambda: x.allclose(y)


@op("equal")
def _(r, c):
    x = inputs(r, c)[0]
    y = x.clone()
    return lambda: x.equal(y)


# linear algebra
@op("mm")
def _(r, c):
    x, y = inputs(r, c)
    yt = y.t().contiguous()
    return lambda: x.mm(yt)


@op("bmm")
def _(r, c):
    batch, m, k = (10, 100, 1000) if r * c >= 1e6 else (2, 4, 5)
    torch.manual_seed(1)
    a, b = torch.rand(batch, m, k), torch.rand(batch, k, m)
    return lambda: a.bmm(b)


@op("matmul broadcast")
def _(r, c):
    x = inputs(r, c)[0]
    w = torch.rand(c, 8)
    return lambda: x.matmul(w)


@op("mv")
def _(r, c):
    x = inputs(r, c)[0]
    v = torch.rand(c)
    return lambda: x.mv(v)


@op("dot")
def _(r, c):
    x, y = inputs(r, c)
    a, b = x.view(-1), y.view(-1)
    return lambda: a.dot(b)


@op("outer")
def _(r, c):
    a, b = torch.rand(r), torch.rand(c)
    return lambda: a.outer(b)


@op("addmm")
def _(r, c):
    x = inputs(r, c)[0]
    w, b = torch.rand(c, c), torch.rand(r, c)
    return lambda: b.addmm(x, w)


simple2("einsum", lambda x, y: torch.einsum("ij,ij->i", x, y))
simple("tril", lambda x: x.tril())
simple("triu", lambda x: x.triu(1))
simple("diag", lambda x: x.diag())
simple("trace", lambda x: x.trace())

# creation
simple("zeros_like", lambda x: torch.zeros_like(x))
simple("full_like", lambda x: torch.full_like(x, 3))
simple("rand_like", lambda x: torch.rand_like(x))
op("randint")(lambda r, c: lambda: torch.randint(0, 10, (r, c)))
op("randperm")(lambda r, c: lambda: torch.randperm(r * c))
simple("tolist", lambda x: x.tolist())
# elementwise ops on inputs laid out otherwise than their result
simple("relu of x:t()", lambda x: x.t().relu())


@op("x:t() + y")
def _(r, c):
    x, y = inputs(r, c)
    yt = y.t().contiguous()
    return lambda: x.t() + yt


@op("expanded * 2")
def _(r, c):
    e = torch.tensor(1.5).expand(r, c)
    return lambda: e * 2


clock = time.process_time if args.cpu_clock else time.perf_counter


def time_call(f):
    f()
    t0 = clock()
    f()
    once = clock() - t0
    calls = max(1, math.floor(args.seconds / max(once, 1e-7)))
    times = []
    for _ in range(args.rounds):
        t0 = clock()
        for _ in range(calls):
            f()
        times.append((clock() - t0) / calls)
    return statistics.median(times)


only = set(args.only.split(",")) if args.only else None
print("torch\t%s\t-" % torch.__version__, flush=True)
for name, make in ops:
    if only and name not in only:
        continue
    small = time_call(make(*SIZES["small"]))
    large = time_call(make(*SIZES["large"]))
    print("%s\t%.9g\t%.9g" % (name, small, large), flush=True)
