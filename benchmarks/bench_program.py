"""Tensor-program benchmarks (issue 13): compile time and step time of real-size models.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_program.py [--quick]

Four models, float32, Adam(lr=1e-3), timed in ONE run (medians of repeated blocks; the machine
is shared, so compare the ratios within a run):

(a) residual 32->64->64(+skip)->1, MSE, batch 64;
(b) two-input module (40 and 8 features -> 32 -> 1) through ``symad.compile`` + backward + step;
(c) softmax attention block of width 32, then Linear, MSE, batch 64;
(d) 784->256->256->10 ReLU MLP, CrossEntropyLoss on class indices, batch 128.

Columns: first step (recording = the compile), then per step: ``symad.compile_step`` (or the
compiled module for (b)), symad eager, PyTorch eager when importable (never a dependency).
Also: ``symad.trace``-side recording time of the seed's linear-regression loss at N = 10, 1,000,
100,000 and the program size at each N.
"""
from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
from timing import median_time

import symad
from symad import optim
from symad.program import capture

try:
    import torch
except ImportError:  # PyTorch is optional: the column is left out
    torch = None


def build(lib, case):
    """The same model in symad or torch (``lib`` is the module namespace)."""
    nn_ = lib.nn

    class Residual(nn_.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.hid, self.out = nn_.Linear(32, 64), nn_.Linear(64, 64), \
                nn_.Linear(64, 1)

        def forward(self, x):
            h = lib.tanh(self.inp(x))
            return self.out(h + lib.relu(self.hid(h)))

    class TwoInputs(nn_.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.head = nn_.Linear(40, 32), nn_.Linear(8, 32), nn_.Linear(32, 1)

        def forward(self, x, z):
            return self.head(lib.sigmoid(self.a(x)) * self.b(z))

    class Attention(nn_.Module):
        def __init__(self, d=32):
            super().__init__()
            self.q, self.k, self.v = nn_.Linear(d, d), nn_.Linear(d, d), nn_.Linear(d, d)
            self.proj, self.d = nn_.Linear(d, 1), d

        def forward(self, x):
            att = lib.softmax(self.q(x) @ self.k(x).T / math.sqrt(self.d), dim=-1)
            return self.proj(att @ self.v(x))

    if case == "a":
        return Residual(), nn_.MSELoss()
    if case == "b":
        return TwoInputs(), nn_.MSELoss()
    if case == "c":
        return Attention(), nn_.MSELoss()
    return nn_.Sequential(nn_.Linear(784, 256), nn_.ReLU(), nn_.Linear(256, 256), nn_.ReLU(),
                          nn_.Linear(256, 10)), nn_.CrossEntropyLoss()


def data(case, rng):
    if case == "d":
        return (rng.normal(size=(128, 784)).astype(np.float32),), rng.integers(0, 10, 128)
    if case == "b":
        return (rng.normal(size=(64, 40)).astype(np.float32),
                rng.normal(size=(64, 8)).astype(np.float32)), \
            rng.normal(size=(64, 1)).astype(np.float32)
    return (rng.normal(size=(64, 32)).astype(np.float32),), \
        rng.normal(size=(64, 1)).astype(np.float32)


def run_case(case, number, repeat):
    rng = np.random.default_rng(0)
    xs, y = data(case, rng)
    res = {}
    # symad compiled
    model, lossf = build(symad, case)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    X = [symad.tensor(x) for x in xs]
    Y = symad.tensor(y)
    if case == "b":
        cm = symad.compile(model)

        def step():
            opt.zero_grad()
            loss = lossf(cm(*X), Y)
            loss.backward()
            opt.step()
    else:
        st = symad.compile_step(model, lossf, opt)

        def step():
            st(X[0], Y)
    t0 = time.perf_counter()
    step()
    res["first step (records)"] = time.perf_counter() - t0
    res["compiled"] = median_time(step, number, repeat)
    # symad eager
    model, lossf = build(symad, case)
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def eager():
        opt.zero_grad()
        loss = lossf(model(*X), Y)
        loss.backward()
        opt.step()
    eager()
    res["symad eager"] = median_time(eager, number, repeat)
    if torch is not None:
        torch.set_num_threads(1)
        tm, tl = build(torch, case)
        topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
        TX = [torch.from_numpy(x) for x in xs]
        TY = torch.from_numpy(y)

        def teager():
            topt.zero_grad()
            loss = tl(tm(*TX), TY)
            loss.backward()
            topt.step()
        teager()
        res["torch eager"] = median_time(teager, number, repeat)
    return res


def trace_sizes():
    w = symad.tensor(np.random.default_rng(0).normal(size=(2, 1)), requires_grad=True)
    b = symad.zeros(1, requires_grad=True)
    out = []
    for n in (10, 1000, 100_000):
        g = np.random.default_rng(n)
        X, y = symad.tensor(g.normal(size=(n, 2))), symad.tensor(g.normal(size=(n, 1)))
        t0 = time.perf_counter()
        prog = capture(lambda X, y: (((X @ w + b) - y) ** 2 / 2).mean(), (X, y),
                       wrt=[w, b])[0]
        out.append((n, time.perf_counter() - t0, len(prog)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    number, repeat = (5, 3) if a.quick else (20, 5)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, "
          f"python {platform.python_version()}, numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch is not None else ", torch not installed"))
    names = {"a": "(a) residual 32-64-64-1", "b": "(b) two inputs (compile)",
             "c": "(c) attention w=32", "d": "(d) MLP 784-256-256-10 CE"}
    for case in "abcd":
        r = run_case(case, number, repeat)
        line = f"{names[case]:28s} record {r['first step (records)'] * 1e3:7.1f} ms | step " \
               f"compiled {r['compiled'] * 1e6:8.0f} us  eager {r['symad eager'] * 1e6:8.0f} us" \
               f"  (x{r['symad eager'] / r['compiled']:.2f})"
        if "torch eager" in r:
            line += f"  torch {r['torch eager'] * 1e6:8.0f} us " \
                    f"(x{r['torch eager'] / r['compiled']:.2f})"
        print(line)
    for n, t, size in trace_sizes():
        print(f"linreg loss recorded at N={n:>6}: {t * 1e3:6.1f} ms, {size} program steps")


if __name__ == "__main__":
    main()
