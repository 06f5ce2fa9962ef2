"""symad.compile benchmark, side by side in one process (ratios, not absolute claims).

1. Curve-fit loss + 5-parameter gradient, N = 1e6: symad compiled (value_and_grad) vs symad eager
   vs numpy vs hand-written C (scalar loop; SIMD + OpenMP threads) vs PyTorch eager,
   torch.compile and JAX jit when they are installed. Ratio = t(C SIMD+threads) / t.
2. The seed's d2l linear regression (1000x2, batch 10, 3 epochs = 300 steps), PyTorch-style:
   per-step time eager vs compiled, from scratch and concise (DataLoader + nn.Linear + SGD).

    python benchmarks/bench_compile.py
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

os.environ.setdefault("SYMAD_CACHE_DIR", tempfile.mkdtemp(prefix="symad-bench-cache-"))

import symad  # noqa: E402
from bench_codegen import build_c, c_runner  # noqa: E402
from symad import nn, optim  # noqa: E402
from symad.utils import data  # noqa: E402

N = 1_000_000
REPEAT = 7
THETA = np.array([1.3, 0.7, 2.1, 0.4, 0.1])


def curve_loss(t, x, y):
    return ((t[0] * symad.exp(-t[1] * x) * symad.sin(t[2] * x + t[3]) + t[4] - y) ** 2).mean()


def median_time(fn, repeat=REPEAT):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def optional(name):
    try:
        return __import__(name)
    except Exception:
        return None


def curve_fit(dtype: str, libs) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, N).astype(dtype)
    y = (THETA[0] * np.exp(-THETA[1] * x) * np.sin(THETA[2] * x + THETA[3]) + THETA[4]
         + rng.normal(0, 0.05, N)).astype(dtype)
    t = (0.9 * THETA).astype(dtype)
    rows = {}

    vg = symad.value_and_grad(curve_loss)
    t0 = time.perf_counter()
    vg(t, x, y)
    first = time.perf_counter() - t0
    rows["symad compiled (value_and_grad)"] = median_time(lambda: vg(t, x, y))

    X, Y = symad.tensor(x), symad.tensor(y)

    def eager():
        tt = symad.tensor(t, requires_grad=True)
        curve_loss(tt, X, Y).backward()
    rows["symad eager"] = median_time(eager, 3)

    def np_ref():
        e = np.exp(-t[1] * x)
        a = t[2] * x + t[3]
        s, c = np.sin(a), np.cos(a)
        r = t[0] * e * s + t[4] - y
        r2 = 2 * r
        tec = r2 * t[0] * e * c
        return [np.mean(r * r), np.mean(r2 * e * s), np.mean(-r2 * t[0] * x * e * s),
                np.mean(tec * x), np.mean(tec), np.mean(r2)]
    rows["numpy (hand-derived gradient)"] = median_time(np_ref)
    for label, lib in libs.items():
        run = c_runner(lib, dtype)
        rows[label] = median_time(lambda run=run: run(x, y, t))

    torch = optional("torch")
    torch_first = None
    if torch is not None:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_loss(tt):
            return ((tt[0] * torch.exp(-tt[1] * xt) * torch.sin(tt[2] * xt + tt[3]) + tt[4]
                     - yt) ** 2).mean()

        def torch_eager():
            tt = torch.tensor(t, requires_grad=True)
            torch_loss(tt).backward()
        rows["PyTorch eager"] = median_time(torch_eager)
        try:
            gv = torch.compile(torch.func.grad_and_value(torch_loss))
            tt = torch.tensor(t)
            t0 = time.perf_counter()
            gv(tt)
            torch_first = time.perf_counter() - t0
            rows["torch.compile(grad_and_value)"] = median_time(lambda: gv(tt))
        except Exception as e:  # torch.compile needs a working C++ toolchain
            print(f"  (torch.compile unavailable: {type(e).__name__}: {str(e)[:80]})")
    jax = optional("jax")
    if jax is not None:
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", dtype == "float64")
        xj, yj = jnp.asarray(x), jnp.asarray(y)

        def jloss(tt):
            return ((tt[0] * jnp.exp(-tt[1] * xj) * jnp.sin(tt[2] * xj + tt[3]) + tt[4]
                     - yj) ** 2).mean()
        f = jax.jit(jax.value_and_grad(jloss))
        tj = jnp.asarray(t)
        rows["JAX jit(value_and_grad)"] = median_time(
            lambda: jax.block_until_ready(f(tj)))

    ref = next((k for k in rows if k.startswith("C SIMD")), None)
    print(f"\n== curve-fit loss + gradient, N={N:,}, {dtype} (median of {REPEAT}; "
          f"ratio = t(C SIMD+threads)/t, higher is faster) ==")
    for label, sec in rows.items():
        ratio = f"{rows[ref] / sec:6.2f}" if ref else "   n/a"
        print(f"  {label:42s} {sec * 1e3:9.2f} ms  {ratio}")
    print(f"  first call of symad compiled (trace + derive + lower + JIT, cold cache): "
          f"{first * 1e3:.0f} ms" + (f"; torch.compile first call {torch_first:.2f} s"
                                     if torch_first else ""))


def d2l_data():
    g = symad.Generator().manual_seed(0)
    X = symad.normal(0, 1, (1000, 2), generator=g)
    y = X @ symad.tensor([2, -3.4]) + 4.2 + symad.normal(0, 0.01, (1000,), generator=g)
    return X, y.reshape(-1, 1)


def d2l_scratch(compiled):
    """``compiled``: False (eager), "per-sample" (the d2l per-sample loss compiled, then
    ``.sum()``) or "sum" (the summed loss compiled: one fused loss+gradient kernel)."""
    X, y = d2l_data()
    w = symad.normal(0, 0.01, (2, 1), generator=symad.Generator().manual_seed(1))
    w.requires_grad_(True)
    b = symad.zeros(1, requires_grad=True)

    def per_sample_loss(X, y, w, b):
        return (X @ w + b - y) ** 2 / 2

    def summed_loss(X, y, w, b):
        return per_sample_loss(X, y, w, b).sum()

    if compiled == "sum":
        g = symad.compile(summed_loss)

        def f(*a):
            return _Summed(g(*a))
    else:
        f = symad.compile(per_sample_loss) if compiled else per_sample_loss
    gen = symad.Generator().manual_seed(2)
    steps, t0 = 0, time.perf_counter()
    for _ in range(3):
        idx = gen.permutation(1000)
        for i in range(0, 1000, 10):
            j = idx[i:i + 10]
            f(X[j], y[j], w, b).sum().backward()
            with symad.no_grad():
                for p in (w, b):
                    p -= 0.03 * p.grad / 10
                    p.grad.zero_()
            steps += 1
    return (time.perf_counter() - t0) / steps, w.detach().numpy().ravel(), b.item()


class _Summed:
    """Lets the loop call ``.sum()`` on an already summed compiled loss."""

    def __init__(self, t):
        self.t = t

    def sum(self):
        return self.t


def d2l_concise(mode: str):
    X, y = d2l_data()
    symad.manual_seed(5)
    net = nn.Sequential(nn.Linear(2, 1))
    net[0].weight.data.normal_(0, 0.01)
    net[0].bias.data.fill_(0)
    loss = nn.MSELoss()
    if mode == "eager":
        def step_loss(xb, yb):
            return loss(net(xb), yb)
    elif mode == "compiled model":
        cnet = symad.compile(net)

        def step_loss(xb, yb):
            return loss(cnet(xb), yb)
    else:
        step_loss = symad.compile(lambda xb, yb: loss(net(xb), yb))
    trainer = optim.SGD(net.parameters(), lr=0.03)
    loader = data.DataLoader(data.TensorDataset(X, y), batch_size=10, shuffle=True,
                             generator=symad.Generator().manual_seed(0))
    steps, t0 = 0, time.perf_counter()
    for _ in range(3):
        for xb, yb in loader:
            lv = step_loss(xb, yb)
            trainer.zero_grad()
            lv.backward()
            trainer.step()
            steps += 1
    return (time.perf_counter() - t0) / steps, net[0].weight.data.numpy().ravel(), \
        net[0].bias.item()


def torch_d2l():
    torch = optional("torch")
    if torch is None:
        return {}
    torch.manual_seed(0)
    X = torch.normal(0, 1, (1000, 2))
    y = (X @ torch.tensor([2, -3.4]) + 4.2 + torch.normal(0, 0.01, (1000,))).reshape(-1, 1)
    w = torch.normal(0, 0.01, (2, 1), requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    t0, steps = time.perf_counter(), 0
    for _ in range(3):
        idx = torch.randperm(1000)
        for i in range(0, 1000, 10):
            j = idx[i:i + 10]
            ((X[j] @ w + b - y[j]) ** 2 / 2).sum().backward()
            with torch.no_grad():
                for p in (w, b):
                    p -= 0.03 * p.grad / 10
                    p.grad.zero_()
            steps += 1
    scratch = (time.perf_counter() - t0) / steps
    net = torch.nn.Sequential(torch.nn.Linear(2, 1))
    trainer = torch.optim.SGD(net.parameters(), lr=0.03)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=10,
                                         shuffle=True)
    lossf = torch.nn.MSELoss()
    t0, steps = time.perf_counter(), 0
    for _ in range(3):
        for xb, yb in loader:
            lv = lossf(net(xb), yb)
            trainer.zero_grad()
            lv.backward()
            trainer.step()
            steps += 1
    return {"PyTorch eager, from scratch": scratch,
            "PyTorch eager, concise": (time.perf_counter() - t0) / steps}


def best_of(fn, runs=3):
    """The fastest of a few whole trainings (a shared 2-core machine is noisy)."""
    results = [fn() for _ in range(runs)]
    return min(results, key=lambda r: r[0])


def training() -> None:
    print("\n== d2l linear regression, 1000x2, batch 10, 3 epochs (300 steps), float32; "
          "best of 3 trainings ==")
    rows = {}
    for compiled, label in ((False, "eager"), ("per-sample", "compiled per-sample loss"),
                            ("sum", "compiled summed loss")):
        sec, w, b = best_of(lambda: d2l_scratch(compiled))
        rows[f"symad {label}, from scratch"] = (sec, w, b)
    for mode in ("eager", "compiled model", "compiled loss(model)"):
        sec, w, b = best_of(lambda: d2l_concise(mode))
        rows[f"symad {mode}, concise"] = (sec, w, b)
    torch_runs = [torch_d2l() for _ in range(3)]
    for label in (torch_runs[0] if torch_runs else {}):
        rows[label] = (min(r[label] for r in torch_runs), None, None)
    for label, (sec, w, b) in rows.items():
        learned = f"w={np.round(w, 3).tolist()} b={b:.3f}" if w is not None else ""
        print(f"  {label:46s} {sec * 1e6:8.1f} us/step  {learned}")


def main() -> None:
    print(f"host: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, symad {symad.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        libs = build_c(Path(tmp))
        for dtype in ("float64", "float32"):
            curve_fit(dtype, libs)
    training()


if __name__ == "__main__":
    main()
