"""Fit a damped oscillation to millions of samples on a Dask cluster (symad.distributed).

    python examples/distributed_curve_fit.py                      # 2 local worker processes
    python examples/distributed_curve_fit.py tcp://scheduler:8786 # an existing cluster

The data (x ~ U(0, 10), y = model(x) + noise) is generated inside the tasks from a seed, 16
chunks; the loss + exact gradient kernel runs on every chunk. First L-BFGS (SciPy, full batch),
then the same fit from the start by minibatch Adam over chunks. Needs ``pip install
'symad[dask]'``.
"""
from __future__ import annotations

import sys
import time

import numpy as np

import symad
import symad.distributed as sd

TRUE = np.array([2.0, 0.3, 3.0, 0.5, 0.1])
START = np.array([1.5, 0.2, 2.9, 0.3, 0.0])


def loss(t, x, y):
    pred = t[0] * symad.exp(-t[1] * x) * symad.sin(t[2] * x + t[3]) + t[4]
    return ((pred - y) ** 2).mean()


def make_data(n: int, chunks: int, seed: int = 1234):
    import dask.array as da
    rng = da.random.default_rng(seed)
    x = rng.uniform(0.0, 10.0, size=n, chunks=n // chunks)
    noise = rng.normal(0.0, 0.01, size=n, chunks=n // chunks)
    return x, TRUE[0] * da.exp(-TRUE[1] * x) * da.sin(TRUE[2] * x + TRUE[3]) + TRUE[4] + noise


def main(client=None, n: int = 4_000_000, chunks: int = 16, adam_steps: int = 200) -> dict:
    """Run both fits; returns the fitted parameters, losses and evaluation counts."""
    from scipy.optimize import minimize
    dloss = sd.value_and_grad(loss, make_data(n, chunks), client=client)
    t0 = time.perf_counter()
    res = minimize(dloss, START, jac=True, method="L-BFGS-B")
    t_lbfgs = time.perf_counter() - t0
    print(f"L-BFGS: {res.nfev} evaluations over {n:,} samples in {t_lbfgs:.1f} s")
    print(f"  fitted {np.round(res.x, 5)}  (true {TRUE}), loss {res.fun:.3g}")
    t0 = time.perf_counter()
    out = sd.fit(dloss, START, optimizer=lambda ps: symad.optim.Adam(ps, lr=0.01),
                 steps=adam_steps, chunks_per_step=2, seed=0)
    print(f"Adam, {adam_steps} steps of 2 chunks: loss {out.losses[0]:.3g} -> "
          f"{out.losses[-1]:.3g} in {time.perf_counter() - t0:.1f} s")
    print(f"  fitted {np.round(out.params, 4)}")
    return {"lbfgs": res.x, "lbfgs_loss": float(res.fun), "nfev": int(res.nfev),
            "adam": out.params, "adam_losses": out.losses}


if __name__ == "__main__":
    from distributed import Client, LocalCluster
    if len(sys.argv) > 1:
        with Client(sys.argv[1]) as c:
            main(c)
    else:
        with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as c:
            main(c)
