"""Fused training benchmarks: symad.compile_step vs PyTorch eager (and JAX jit when installed).

    python benchmarks/bench_step.py [--torch-python /tmp/torchvenv/bin/python] [--quick]
    python benchmarks/bench_step.py --paths      # the two gradient paths of compile_step

Three workloads, timed in ONE run (medians of repeated blocks; the machine is shared, so compare
ratios within a run):

1. tiny MLP 10->64->1, batch 64, MSE + SGD(lr=0.01): time per training step;
2. d2l linear regression (1000x2, batch 10, 3 epochs = 300 steps, SGD lr=0.03): whole training,
   with step.fit's Python loop and with its native epoch loop (``native=True``);
   plus an MLP 10->16->1 per step on both gradient paths (scalarized, tensor program): one
   ``step(X, y)`` call vs. the native fit loop (200 full-batch epochs divided by 200);
3. digits MLP 64->32->10, full batch 1797 rows, CrossEntropy, float32: loss + gradients;

plus symad's compile times (cold disk cache). PyTorch/JAX run in-process when importable, else
in a subprocess of ``--torch-python`` / ``--jax-python`` (PyTorch and JAX are never symad
dependencies).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from timing import median_time

N_DIGITS = 1797


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    tiny = (rng.normal(size=(64, 10)).astype(np.float32),
            rng.normal(size=(64, 1)).astype(np.float32))
    Xl = rng.normal(size=(1000, 2)).astype(np.float32)
    yl = (Xl @ np.array([[2.0], [-3.4]]) + 4.2 + rng.normal(0, 0.01, (1000, 1))).astype(
        np.float32)
    Xd = rng.uniform(0, 1, size=(N_DIGITS, 64)).astype(np.float32)
    yd = rng.integers(0, 10, N_DIGITS)
    try:  # the real digits data when sklearn is there (same shapes)
        from sklearn.datasets import load_digits
        d = load_digits()
        Xd, yd = (d.data / 16).astype(np.float32), d.target.astype(np.int64)
    except ImportError:
        pass
    return tiny, (Xl, yl), (Xd, yd)


# -- symad ------------------------------------------------------------------------------------
def bench_symad(q: bool) -> dict:
    import symad
    from symad import nn, optim
    res: dict = {}
    (tx, ty), (Xl, yl), (Xd, yd) = data()
    symad.manual_seed(0)

    net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
    step = symad.compile_step(net, nn.MSELoss(), optim.SGD(net.parameters(), lr=0.01))
    X, y = symad.tensor(tx), symad.tensor(ty)
    t0 = time.perf_counter()
    step(X, y)
    res["compile tiny-MLP step (s)"] = time.perf_counter() - t0
    res["tiny-MLP step (us)"] = median_time(lambda: step(X, y), 200 if q else 1000, 7) * 1e6
    res["tiny-MLP native calls"] = step.native_calls

    X, y = symad.tensor(Xl), symad.tensor(yl)
    net = nn.Sequential(nn.Linear(2, 1))
    opt = optim.SGD(net.parameters(), lr=0.03)
    step = symad.compile_step(net, nn.MSELoss(), opt)
    t0 = time.perf_counter()
    step(X[:10], y[:10])
    res["compile linreg step (s)"] = time.perf_counter() - t0
    g = symad.Generator().manual_seed(0)
    res["linreg 3 epochs / 300 steps (us)"] = median_time(
        lambda: step.fit(X, y, epochs=3, batch_size=10, generator=g, native=False), 1,
        5 if q else 15) * 1e6
    res["linreg native calls"] = step.native_calls
    t0 = time.perf_counter()
    step.fit(X, y, epochs=1, batch_size=10, generator=g, native=True)
    res["compile linreg fit loop (s)"] = time.perf_counter() - t0
    res["linreg native fit 300 steps (us)"] = median_time(
        lambda: step.fit(X, y, epochs=3, batch_size=10, generator=g, native=True), 20,
        5 if q else 15) * 1e6
    res["  of which the 3 permutations, native (us)"] = median_time(
        lambda: g.permutations(1000, 3), 20, 5 if q else 15) * 1e6
    res["  (3 numpy generator.permutation calls (us))"] = median_time(
        lambda: [g.permutation(1000) for _ in range(3)], 20, 5 if q else 15) * 1e6

    # a small MLP (193 parameters) both ways: the scalarized path (its native fit loop) and
    # the tensor-program path (the default above STRUCTURED_MIN_PARAMS); full-batch steps of
    # 64 rows, no shuffle
    for structured, tag in ((False, "scalarized"), (True, "program")):
        net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
        step = symad.compile_step(net, nn.MSELoss(), optim.SGD(net.parameters(), lr=0.01),
                                  structured=structured)
        X, y = symad.tensor(tx), symad.tensor(ty)
        t0 = time.perf_counter()
        step(X, y)
        step.fit(X, y, epochs=1, batch_size=64, shuffle=False, native=True)
        res[f"compile MLP 10-16-1 step + fit, {tag} (s)"] = time.perf_counter() - t0
        n_fit = 200
        res[f"MLP 10-16-1 step, {tag} (us)"] = median_time(
            lambda: step(X, y), 200 if q else 1000, 7) * 1e6
        res[f"MLP 10-16-1 per step in native fit, {tag} (us)"] = median_time(
            lambda: step.fit(X, y, epochs=n_fit, batch_size=64, shuffle=False, native=True), 1,
            7 if q else 21) * 1e6 / n_fit

    X, y = symad.tensor(Xd), symad.tensor(yd)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    step = symad.compile_step(net, nn.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=0.1))
    t0 = time.perf_counter()
    step(X, y)
    res["compile digits dense (s)"] = time.perf_counter() - t0
    (runner,) = step._runners.values()
    prepared = runner.prepare(Xd, yd)
    res["digits loss+grad f32 (us)"] = median_time(
        lambda: runner.run(prepared, 0, N_DIGITS), 20 if q else 100, 7) * 1e6
    res["digits full step f32 (us)"] = median_time(lambda: step(X, y), 20 if q else 100, 7) * 1e6
    res["digits native calls"] = step.native_calls
    return res


# -- PyTorch ----------------------------------------------------------------------------------
def bench_torch(q: bool) -> dict:
    import torch
    from torch import nn
    torch.manual_seed(0)
    res: dict = {"version": torch.__version__}
    (tx, ty), (Xl, yl), (Xd, yd) = data()
    net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    lf = nn.MSELoss()
    X, y = torch.from_numpy(tx), torch.from_numpy(ty)

    def step():
        opt.zero_grad()
        lf(net(X), y).backward()
        opt.step()
    res["tiny-MLP step (us)"] = median_time(step, 200 if q else 1000, 7) * 1e6

    X, y = torch.from_numpy(Xl), torch.from_numpy(yl)

    def linreg():
        net = nn.Sequential(nn.Linear(2, 1))
        opt = torch.optim.SGD(net.parameters(), lr=0.03)
        for _ in range(3):
            perm = torch.randperm(1000)
            for s in range(0, 1000, 10):
                idx = perm[s:s + 10]
                opt.zero_grad()
                lf(net(X[idx]), y[idx]).backward()
                opt.step()
    res["linreg 3 epochs / 300 steps (us)"] = median_time(linreg, 1, 5 if q else 15) * 1e6

    X, y = torch.from_numpy(Xd), torch.from_numpy(yd)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    ce = nn.CrossEntropyLoss()

    def lossgrad():
        net.zero_grad()
        ce(net(X), y).backward()
    res["digits loss+grad f32 (us)"] = median_time(lossgrad, 20 if q else 100, 7) * 1e6
    return res


def bench_jax(q: bool) -> dict:
    import jax
    import jax.numpy as jnp
    res: dict = {"version": jax.__version__}
    (tx, ty), (Xl, yl), (Xd, yd) = data()
    k = jax.random.PRNGKey(0)
    p = {"w1": jax.random.normal(k, (10, 64)) * 0.3, "b1": jnp.zeros(64),
         "w2": jax.random.normal(k, (64, 1)) * 0.1, "b2": jnp.zeros(1)}

    def mse(p, x, y):
        h = jax.nn.relu(x @ p["w1"] + p["b1"])
        return jnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)

    @jax.jit
    def step(p, x, y):
        g = jax.grad(mse)(p, x, y)
        return jax.tree_util.tree_map(lambda a, b: a - 0.01 * b, p, g)
    x, y = jnp.asarray(tx), jnp.asarray(ty)
    step(p, x, y).__getitem__("b2").block_until_ready()
    res["tiny-MLP step (us)"] = median_time(
        lambda: step(p, x, y)["b2"].block_until_ready(), 200 if q else 1000, 7) * 1e6

    pd = {"w1": jax.random.normal(k, (64, 32)) * 0.1, "b1": jnp.zeros(32),
          "w2": jax.random.normal(k, (32, 10)) * 0.1, "b2": jnp.zeros(10)}

    def ce(p, x, y):
        z = jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1))
    vg = jax.jit(jax.value_and_grad(ce))
    xd, ydj = jnp.asarray(Xd), jnp.asarray(yd)
    vg(pd, xd, ydj)[0].block_until_ready()
    res["digits loss+grad f32 (us)"] = median_time(
        lambda: vg(pd, xd, ydj)[0].block_until_ready(), 20 if q else 100, 7) * 1e6
    return res


def _other(kind: str, python: str | None, q: bool) -> dict | None:
    try:
        return (bench_torch if kind == "torch" else bench_jax)(q)
    except ImportError:
        pass
    if not python or not os.path.exists(python):
        return None
    cmd = [python, os.path.abspath(__file__), f"--only-{kind}"] + (["--quick"] if q else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"{kind} subprocess failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_paths() -> dict:
    """The two gradient paths of ``compile_step`` side by side (what sets
    ``STRUCTURED_MIN_PARAMS``): linear and small-MLP models, batch 32 of 1,000 rows, SGD;
    ``step(X, y)`` and the per-step time inside a native ``fit`` of 3 epochs."""
    import warnings

    import symad
    from symad import nn, optim
    symad.set_num_threads(1)
    rng = np.random.default_rng(0)
    out = {}
    models = [("linear 2->1", 2, lambda: nn.Sequential(nn.Linear(2, 1))),
              ("linear 10->1", 10, lambda: nn.Sequential(nn.Linear(10, 1))),
              ("MLP 2->4->1", 2, lambda: nn.Sequential(nn.Linear(2, 4), nn.Tanh(),
                                                        nn.Linear(4, 1))),
              ("MLP 3->8->1", 3, lambda: nn.Sequential(nn.Linear(3, 8), nn.Tanh(),
                                                        nn.Linear(8, 1)))]
    for name, fin, make in models:
        X = symad.tensor(rng.normal(size=(1000, fin)).astype(np.float32))
        y = symad.tensor(rng.normal(size=(1000, 1)).astype(np.float32))
        Xb, yb = X[:32], y[:32]
        for structured, tag in ((False, "scalarized"), (True, "program")):
            symad.manual_seed(0)
            net = make()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                step = symad.compile_step(net, nn.MSELoss(),
                                          optim.SGD(net.parameters(), lr=0.01),
                                          structured=structured)
                step(Xb, yb)
                step(Xb, yb)
                g = symad.Generator().manual_seed(0)
                step.fit(X, y, epochs=1, batch_size=32, generator=g)
            out[f"{name}, {tag}: step (us)"] = median_time(lambda: step(Xb, yb), 200, 5) * 1e6
            out[f"{name}, {tag}: per step in fit (us)"] = median_time(
                lambda: step.fit(X, y, epochs=3, batch_size=32, generator=g), 10, 5) * 1e6 / 96
    return out


GOALS = {"tiny-MLP step (us)": 10.0, "linreg 3 epochs / 300 steps (us)": 50.0,
         "digits loss+grad f32 (us)": 250.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-python", default=os.environ.get(
        "SYMAD_TORCH_PYTHON", "/tmp/torchvenv/bin/python"))
    ap.add_argument("--jax-python", default=os.environ.get("SYMAD_JAX_PYTHON"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only-torch", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only-jax", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--warm-cache", action="store_true",
                    help="use the normal kernel disk cache (default: a fresh one, cold compile)")
    ap.add_argument("--paths", action="store_true",
                    help="instead: the scalarized and tensor-program paths side by side")
    a = ap.parse_args()
    if a.paths:
        for key, v in bench_paths().items():
            print(f"{key:48s}{v:10.2f}")
        return
    if a.only_torch or a.only_jax:
        print(json.dumps((bench_torch if a.only_torch else bench_jax)(a.quick)))
        return
    if not a.warm_cache:
        os.environ["SYMAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="symad-bench-cache-")
    sym = bench_symad(a.quick)
    torch_r = _other("torch", a.torch_python, a.quick)
    jax_r = _other("jax", a.jax_python, a.quick)
    cols = ["symad", f"torch {torch_r['version']} eager" if torch_r else "torch (absent)",
            f"jax {jax_r['version']} jit" if jax_r else "jax (absent)", "goal"]
    print(f"{'':36s}" + "".join(f"{c:>24s}" for c in cols))
    for key in GOALS:
        row = [sym.get(key), (torch_r or {}).get(key), (jax_r or {}).get(key), GOALS[key]]
        print(f"{key:36s}" + "".join(f"{v:24.1f}" if isinstance(v, float) else f"{'-':>24s}"
                                     for v in row))
    print(f"{'linreg native fit 300 steps (us)':36s}{sym['linreg native fit 300 steps (us)']:24.1f}"
          f"{'-':>24s}{'-':>24s}{GOALS['linreg 3 epochs / 300 steps (us)']:24.1f}")
    for key in ("  of which the 3 permutations, native (us)",
                "  (3 numpy generator.permutation calls (us))", "MLP 10-16-1 step, scalarized (us)",
                "MLP 10-16-1 per step in native fit, scalarized (us)",
                "MLP 10-16-1 step, program (us)",
                "MLP 10-16-1 per step in native fit, program (us)"):
        print(f"{key:36s}{sym[key]:24.1f}")
    for key in ("digits full step f32 (us)", "compile tiny-MLP step (s)",
                "compile linreg step (s)", "compile linreg fit loop (s)",
                "compile MLP 10-16-1 step + fit, scalarized (s)",
                "compile MLP 10-16-1 step + fit, program (s)", "compile digits dense (s)"):
        print(f"{key:36s}{sym[key]:24.3f}")
    for key in ("tiny-MLP", "linreg", "digits"):
        print(f"native calls per step, {key}: {sym[key + ' native calls']}")


if __name__ == "__main__":
    main()
