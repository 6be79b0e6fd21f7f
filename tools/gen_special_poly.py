#!/usr/bin/env python3
"""The polynomials of engine/src/math/special.h: each a Chebyshev
interpolant (at the N zeros of T_N, which is within a small factor of the
minimax polynomial of its degree) of a smooth function over an interval,
turned into powers of the variable the C code evaluates by Horner's rule.
Python's math module (double, within an ulp or two) gives the values; the
interpolants' errors printed here sit near 1e-12 relative, far under a
float's half ulp (6e-8), which is all the float formulas need of them.

  python3 tools/gen_special_poly.py   # prints the coefficients, highest power first
"""
import math


def chebyshev(f, lo, hi, degree):
    n = degree + 1
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    angles = [math.pi * (j + 0.5) / n for j in range(n)]
    values = [f(mid + half * math.cos(a)) for a in angles]
    c = [2.0 / n * sum(values[j] * math.cos(k * angles[j]) for j in range(n)) for k in range(n)]
    c[0] /= 2
    return c


def chebyshev_to_powers(c, mid, half):
    """sum c_k T_k((v - mid) / half) as powers of v, in exact-ish float steps"""
    # T_k as power coefficients of t, by T_{k+1} = 2t T_k - T_{k-1}
    t_prev, t_cur = [1.0], [0.0, 1.0]
    power_t = [0.0] * len(c)
    for k, ck in enumerate(c):
        tk = [1.0] if k == 0 else t_cur if k == 1 else None
        if k >= 2:
            nxt = [0.0] + [2 * a for a in t_cur]
            for i, a in enumerate(t_prev):
                nxt[i] -= a
            t_prev, t_cur = t_cur, nxt
            tk = t_cur
        for i, a in enumerate(tk):
            power_t[i] += ck * a
    # t = (v - mid) / half: expand each t^i by the binomial theorem
    out = [0.0] * len(c)
    for i, a in enumerate(power_t):
        for j in range(i + 1):
            out[j] += a * math.comb(i, j) * (-mid) ** (i - j) / half ** i
    return out


def horner(p, v):
    r = 0.0
    for a in reversed(p):
        r = r * v + a
    return r


def fit(name, f, lo, hi, degree, shifted=False):
    c = chebyshev(f, lo, hi, degree)
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    p = chebyshev_to_powers(c, 0.0, 1.0) if shifted else chebyshev_to_powers(c, mid, half)
    worst = 0.0
    for i in range(4001):
        v = lo + (hi - lo) * i / 4000
        got = horner(p, (v - mid) / half if shifted else v)
        worst = max(worst, abs(got - f(v)) / abs(f(v)))
    var = "(v - %r) / %r" % (mid, half) if shifted else "v"
    print("/* %s on [%r, %r], in powers of %s: %.2e relative at most */" % (name, lo, hi, var, worst))
    for a in reversed(p):
        print("  %r," % a)


tan_pi_8 = math.tan(math.pi / 8)
fit("atan(sqrt(v)) / sqrt(v)", lambda s: math.atan(math.sqrt(s)) / math.sqrt(s) if s > 0 else 1.0,
    0.0, tan_pi_8 ** 2, 7)
fit("erf(sqrt(v)) / sqrt(v)",
    lambda s: math.erf(math.sqrt(s)) / math.sqrt(s) if s > 0 else 2 / math.sqrt(math.pi), 0.0, 1.0, 8)
fit("exp(v^2) erfc(v)", lambda x: math.exp(x * x) * math.erfc(x), 1.0, 4.0, 14, shifted=True)
