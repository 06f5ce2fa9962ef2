"""Native tensor programs: ``compile_step`` with the loop lowering vs the numpy replay, one run.

    python benchmarks/bench_native_program.py [--quick] [--matmul] [--torch-python PY]
    python benchmarks/bench_native_program.py --subnormal-steps 30000

``--torch-python PY``: a Python with PyTorch (and optionally JAX) for the comparison columns,
each run in its own subprocess before symad's rows.

The three training steps of issue #14 (float32): tiny MLP 10->64(tanh)->1 batch 64 MSE SGD
momentum 0.9; digits-shaped MLP 64->32(tanh)->10 full batch 1,797 CE SGD; 784->256->256->10 ReLU
batch 128 CE Adam. Each is timed with the native lowering and the native update on and off
(``symad.compiler.native_program.ENABLED``, ``symad.compiler.native_update.ENABLED``) in the same
process; the ratio is what to read (the machine is shared). Also prints how each step runs
(``step.native_calls``).

Subnormal numbers: each step trains one fixed batch, so its gradients shrink towards the
subnormal range, where IEEE arithmetic is ~100x slower on x86. JAX (XLA) always flushes them to
zero on the CPU; symad and PyTorch keep them by default. Every symad and PyTorch step is timed
both ways from a fresh model (``symad.set_flush_denormal`` / ``torch.set_flush_denormal``), and
the ratios to JAX are given for both; ``--subnormal-steps N``: the 784 step over N steps of
training, both ways. ``--matmul``: the register-tiled native matmul against numpy's BLAS
(float32, cache-line aligned arrays) at the shapes these models use, which is what sets
``MAX_NATIVE_MATMUL``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

import numpy as np
from timing import median_time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def data():
    """The three workloads' (X, y), numpy only (the PyTorch subprocess has no symad)."""
    rng = np.random.default_rng(0)
    tiny = (rng.normal(size=(64, 10)).astype(np.float32),
            rng.normal(size=(64, 1)).astype(np.float32))
    digits = (rng.uniform(0, 1, size=(1797, 64)).astype(np.float32), rng.integers(0, 10, 1797))
    mnist = (rng.normal(size=(128, 784)).astype(np.float32), rng.integers(0, 10, 128))
    return tiny, digits, mnist


NAMES = ("tiny MLP 10-64(tanh)-1 b64 SGD-m", "digits 64-32(tanh)-10 b1797 CE SGD",
         "784-256-256-10 ReLU b128 CE Adam")
REPS = (2000, 200, 40)
FLUSH = " [flush denormals]"


def workloads():
    from symad import nn, optim
    tiny, digits, mnist = data()
    yield (NAMES[0], lambda: nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 1)),
           nn.MSELoss(), lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9), *tiny, REPS[0])
    yield (NAMES[1], lambda: nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)),
           nn.CrossEntropyLoss(), lambda ps: optim.SGD(ps, lr=0.1), *digits, REPS[1])
    yield (NAMES[2],
           lambda: nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                 nn.Linear(256, 10)),
           nn.CrossEntropyLoss(), lambda ps: optim.Adam(ps, lr=1e-3), *mnist, REPS[2])


def torch_rows(quick: bool, threads: int = 1) -> dict:
    """PyTorch eager, one thread (as symad's native programs and OpenBLAS here): the same three
    steps written the tutorial way (zero_grad, loss, backward, step); each measured from a fresh
    model with IEEE subnormals (PyTorch's default) and with ``torch.set_flush_denormal(True)``
    (key suffix ``FLUSH``)."""
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    tiny, digits, mnist = data()
    nets = [(lambda: nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 1)), nn.MSELoss(),
             lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9), tiny),
            (lambda: nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)),
             nn.CrossEntropyLoss(), lambda ps: torch.optim.SGD(ps, lr=0.1), digits),
            (lambda: nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                                   nn.ReLU(), nn.Linear(256, 10)),
             nn.CrossEntropyLoss(), lambda ps: torch.optim.Adam(ps, lr=1e-3), mnist)]
    out = {"version": torch.__version__}
    for name, n, (make, lf, mk, (X, y)) in zip(NAMES, REPS, nets):
        X, y = torch.from_numpy(X), torch.from_numpy(y)
        for flush in (False, True):
            torch.set_flush_denormal(flush)
            torch.manual_seed(0)
            net = make()
            opt = mk(net.parameters())

            def step(net=net, opt=opt):
                opt.zero_grad()
                lf(net(X), y).backward()
                opt.step()
            step()
            out[name + (FLUSH if flush else "")] = \
                median_time(step, max(5, n // 10) if quick else n, 7) * 1e6
        torch.set_flush_denormal(False)
    return out


def jax_rows(quick: bool, threads: int = 1) -> dict:
    """JAX ``jit`` of the same three steps (value_and_grad + the optimizer's equations written
    out, as the JAX tutorials do without optax), one thread (``XLA_FLAGS`` set before import)."""
    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1")
    import jax
    import jax.numpy as jnp
    tiny, digits, mnist = data()

    def init(sizes, key):
        ps = []
        for i, o in zip(sizes[:-1], sizes[1:]):
            key, k1, k2 = jax.random.split(key, 3)
            bound = 1 / np.sqrt(i)
            ps.append((jax.random.uniform(k1, (o, i), jnp.float32, -bound, bound),
                       jax.random.uniform(k2, (o,), jnp.float32, -bound, bound)))
        return ps

    def mlp(act):
        def f(ps, X):
            for k, (W, b) in enumerate(ps):
                X = X @ W.T + b
                if k < len(ps) - 1:
                    X = act(X)
            return X
        return f

    def ce(logits, y):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    def mse(out, y):
        return jnp.mean((out - y) ** 2)

    def sgd(lr, momentum):
        def upd(ps, st, g, t):
            if momentum:
                st = jax.tree.map(lambda b, gg: momentum * b + gg, st, g)
                return jax.tree.map(lambda p, b: p - lr * b, ps, st), st
            return jax.tree.map(lambda p, gg: p - lr * gg, ps, g), st
        return upd

    def adam(lr, b1=0.9, b2=0.999, eps=1e-8):
        def upd(ps, st, g, t):
            m, v = st
            m = jax.tree.map(lambda a, gg: b1 * a + (1 - b1) * gg, m, g)
            v = jax.tree.map(lambda a, gg: b2 * a + (1 - b2) * gg * gg, v, g)
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            ps = jax.tree.map(lambda p, a, b: p - lr / c1 * a / (jnp.sqrt(b / c2) + eps),
                              ps, m, v)
            return ps, (m, v)
        return upd

    key = jax.random.PRNGKey(0)
    cases = [([10, 64, 1], jnp.tanh, mse, sgd(0.01, 0.9), tiny),
             ([64, 32, 10], jnp.tanh, ce, sgd(0.1, 0.0), digits),
             ([784, 256, 256, 10], jax.nn.relu, ce, adam(1e-3), mnist)]
    out = {"version": jax.__version__}
    for name, n, (sizes, act, lossf, upd, (X, y)) in zip(NAMES, REPS, cases):
        ps = init(sizes, key)
        f = mlp(act)
        zeros = jax.tree.map(jnp.zeros_like, ps)
        st = (zeros, zeros) if upd.__qualname__.startswith("jax_rows.<locals>.adam") else zeros

        @jax.jit
        def step(ps, st, X, y, t, f=f, lossf=lossf, upd=upd):
            loss, g = jax.value_and_grad(lambda q: lossf(f(q, X), y))(ps)
            ps, st = upd(ps, st, g, t)
            return ps, st, loss
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        state = {"ps": ps, "st": st, "t": 1.0}

        def run():
            state["ps"], state["st"], loss = step(state["ps"], state["st"], Xj, yj, state["t"])
            state["t"] += 1
            loss.block_until_ready()
        run()
        out[name] = median_time(run, max(5, n // 10) if quick else n, 7) * 1e6
    return out


def matmuls() -> dict:
    from codegen.loops import Access, LoopModule, MatMul, aligned_zeros
    rng = np.random.default_rng(0)
    out = {}
    for M, K, N in [(64, 10, 64), (10, 64, 64), (64, 64, 1), (128, 10, 256), (1797, 10, 32),
                    (1797, 32, 10), (1797, 64, 32), (128, 256, 256), (128, 784, 256)]:
        # cache-line aligned, as native programs hold their buffers (numpy's own arrays of
        # this size start 16 bytes past a line, which splits the vector loads of B)
        A, B, C = (aligned_zeros(s, np.float32) for s in ((M, K), (K, N), (M, N)))
        A[...] = rng.normal(size=(M, K))
        B[...] = rng.normal(size=(K, N))
        mod = LoopModule("mm", ["float32"] * 3,
                         [[MatMul(M, N, K, 2, Access(0, 0, (K, 1)), Access(1, 0, (N, 1)))]])
        ptrs = np.array([a.ctypes.data for a in (A, B, C)], dtype=np.int64)
        call, addr = mod.segments[0], ptrs.ctypes.data
        n = max(5, int(2e6 / (M * N * K)))
        tn, tb = median_time(lambda: call(addr), n, 7), median_time(lambda: A @ B, n, 7)
        out[f"{M}x{K}x{N} ({M * K * N} MACs)"] = {"native (us)": tn * 1e6, "BLAS (us)": tb * 1e6,
                                                 "native / BLAS": tn / tb}
    return out


def subnormal_trajectory(steps: int, every: int = 2500) -> dict:
    """The 784 Adam step trained ``steps`` times on its one batch, IEEE subnormals vs
    ``set_flush_denormal(True)``: microseconds per step (mean of the 100 steps up to each
    ``every``-th step), each mode from the same fresh model."""
    import time

    import symad
    name, model, loss, opt, X, y, _ = list(workloads())[2]
    out = {}
    for flush in (False, True):
        symad.set_flush_denormal(flush)
        symad.manual_seed(0)
        net = model()
        step = symad.compile_step(net, loss, opt(net.parameters()))
        Xt, yt = symad.tensor(X), symad.tensor(y)
        series = {}
        done = 0
        while done < steps:
            t0 = time.perf_counter()
            for _ in range(100):
                step(Xt, yt)
            done += 100
            if done % every == 0 or done >= steps:
                series[done] = (time.perf_counter() - t0) / 100 * 1e6
        out["flush denormals" if flush else "IEEE subnormals"] = series
    symad.set_flush_denormal(False)
    return {name: out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--matmul", action="store_true")
    ap.add_argument("--torch-python", default=os.environ.get("SYMAD_TORCH_PYTHON"),
                    help="a Python with PyTorch, run in a subprocess for the PyTorch column")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for every column (symad.set_num_threads, torch.set_num_threads,"
                         " XLA's default when > 1); default 1")
    ap.add_argument("--parallel-min", type=int, default=None,
                    help="native_program.PARALLEL_MIN: the multiply-adds from which a matmul is "
                         "split over the threads (default: symad's)")
    ap.add_argument("--subnormal-steps", type=int, default=0,
                    help="instead: the 784 step's time over this many steps on its one batch, "
                         "IEEE subnormals vs flushed (symad only)")
    ap.add_argument("--only-torch", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only-jax", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.only_torch:
        print(json.dumps(torch_rows(args.quick, args.threads)))
        return
    if args.only_jax:
        print(json.dumps(jax_rows(args.quick, args.threads)))
        return
    if args.matmul:
        print(json.dumps(matmuls(), indent=2))
        return
    if args.subnormal_steps:
        import symad
        symad.set_num_threads(args.threads)
        print(json.dumps(subnormal_trajectory(args.subnormal_steps), indent=2))
        return
    torch = jax = None
    if args.torch_python:
        # the same Python runs PyTorch eager, then (if it has JAX) JAX jit, each in its own
        # process, before symad's rows
        rows = {}
        for which in ("torch", "jax"):
            cmd = [args.torch_python, os.path.abspath(__file__), f"--only-{which}",
                   f"--threads={args.threads}"] + \
                (["--quick"] if args.quick else [])
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode == 0:
                rows[which] = json.loads(res.stdout.strip().splitlines()[-1])
            else:
                print(f"{which} subprocess failed:\n{res.stderr[-2000:]}", file=sys.stderr)
        torch, jax = rows.get("torch"), rows.get("jax")
    import symad
    symad.set_num_threads(args.threads)
    from symad.compiler import native_program, native_update
    if args.parallel_min is not None:
        native_program.PARALLEL_MIN = args.parallel_min
    rows = {}
    for name, model, loss, opt, X, y, n in workloads():
        if args.quick:
            n = max(5, n // 10)
        row = {}
        # each measurement from a fresh model: the same steps from the same start
        for key, native, flush in (("native", True, False), ("native, flush denormals", True, True),
                                   ("numpy replay", False, False)):
            native_program.ENABLED = native_update.ENABLED = native
            symad.set_flush_denormal(flush)
            symad.manual_seed(0)
            net = model()
            step = symad.compile_step(net, loss, opt(net.parameters()))
            Xt, yt = symad.tensor(X), symad.tensor(y)
            step(Xt, yt)
            step(Xt, yt)
            row[f"{key} (us/step)"] = median_time(lambda: step(Xt, yt), n, 7) * 1e6
            if not flush:
                row[f"{key} runs as"] = step.native_calls
        native_program.ENABLED = native_update.ENABLED = True
        symad.set_flush_denormal(False)
        nat, natf = row["native (us/step)"], row["native, flush denormals (us/step)"]
        row["replay / native"] = row["numpy replay (us/step)"] / nat
        th = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
        if torch is not None:
            row[f"PyTorch {torch['version']} eager, {th} (us/step)"] = torch[name]
            row[f"PyTorch eager, flush denormals (us/step)"] = torch[name + FLUSH]
            row["native / PyTorch"] = nat / torch[name]
            row["native / PyTorch, both flushing"] = natf / torch[name + FLUSH]
        if jax is not None:
            row[f"JAX {jax['version']} jit, {th}, flushes denormals (us/step)"] = jax[name]
            row["native / JAX"] = nat / jax[name]
            row["native / JAX, both flushing"] = natf / jax[name]
        rows[name] = row
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, "
                      f"{os.cpu_count()} cores, Python {platform.python_version()}",
                      "results": rows}, indent=2))


if __name__ == "__main__":
    main()
