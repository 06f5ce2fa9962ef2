"""Trace + reverse-mode gradient time and expression size (not a timed test).

Models: the curve fit t0*exp(-t1*x)*sin(t2*x+t3)+t4 with MSE, a 2-16-16-1 MLP and a 64-32-10 MLP
(softmax cross-entropy against one-hot targets). Each is traced per sample with
``trace_batched`` (so the batch size never enters SymPy). Dense layers are *scalarized*: a
64x32 matmul becomes 2048 product terms in SymPy; this is the current behaviour, measured here.
Also the seed's linear regression at N = 10, 1000, 10,000 (issue goal: under 0.2 s at N = 1000,
expression size independent of N).

Run: ``python benchmarks/bench_trace.py``
"""
from __future__ import annotations

import time

import numpy as np

import symad
from symad import nn
from symad.symbolic import expression_size, trace_batched


def curve_fit():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, size=(256, 1))
    y = 2 * np.exp(-0.5 * x) * np.sin(3 * x + 0.2) + 0.1
    theta = np.array([1.0, 0.3, 2.5, 0.0, 0.0])

    def loss(t, x, y):
        return ((t[0] * (-t[1] * x).exp() * (t[2] * x + t[3]).sin() + t[4] - y) ** 2).mean()
    return loss, (theta, x, y), ("x", "y")


def mlp(sizes, classes=False):
    symad.manual_seed(0)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    net = nn.Sequential(*layers[:-1]).double()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, sizes[0]))
    if classes:
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], size=128)]

        def loss(X, Y):  # softmax cross-entropy with one-hot targets
            return -(net(X).log_softmax(1) * Y).sum(1).mean()
    else:
        Y = rng.normal(size=(128, sizes[-1]))

        def loss(X, Y):
            return nn.MSELoss()(net(X), Y)
    return loss, (X, Y), ("X", "Y")


def bench(name, fn, examples, batched):
    t0 = time.perf_counter()
    bt = trace_batched(fn, *examples, batched=batched)
    t1 = time.perf_counter()
    grad = bt.gradient()
    t2 = time.perf_counter()
    size_f = bt.size()
    size_g = expression_size(grad)
    print(f"{name:<12} params={len(bt.param_symbols):>5}  trace {t1 - t0:7.3f} s  "
          f"gradient {t2 - t1:7.3f} s  |per-sample expr| {size_f:>7} nodes  "
          f"|gradient| {size_g:>7} nodes  reduction={bt.reduction}")
    return bt


def linreg_batch_sizes():
    """The seed's linear-regression loss traced over batches of 10, 1000 and 10,000 samples:
    the per-sample expression (and the time) must not depend on the batch size."""
    rng = np.random.default_rng(0)
    w, b = np.array([[0.1], [-0.2]]), 0.3

    def loss(w, b, X, y):
        return ((X @ w + b - y) ** 2 / 2).mean()
    for n in (10, 1000, 10_000):
        X, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 1))
        t0 = time.perf_counter()
        bt = trace_batched(loss, w, b, X, y, batched=("X", "y"))
        print(f"linreg N={n:<6} trace {time.perf_counter() - t0:7.3f} s  "
              f"|per-sample expr| {bt.size():>4} nodes  reduction={bt.reduction}")


if __name__ == "__main__":
    linreg_batch_sizes()
    bench("curve-fit", *curve_fit())
    bench("MLP 2-16-16-1", *mlp([2, 16, 16, 1]))
    bench("MLP 64-32-10", *mlp([64, 32, 10], classes=True))
