"""symad.compile's two paths side by side: the scalarized kernel (one SymPy symbol per parameter)
and the tensor program, each forced, on the same functions; build time (cold cache, fresh
process) and time per forward+backward call. ``MAX_SCALAR_PARAMS`` (symad/compiler/compiled.py)
is where the default switches; this script is its evidence.

    python benchmarks/bench_compile_paths.py [--big]

``--big`` adds the cases whose scalar build takes minutes (a 10-64-1 MLP: 769 parameters;
``clamp`` of 1,000 elements).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import symad, numpy as np
import symad.compiler.compiled as C
from symad import nn
kind, size, force = sys.argv[2], int(sys.argv[3]), sys.argv[4]
if force == "scalar":
    C.MAX_SCALAR_PARAMS, C.MAX_C_ARGS = 10 ** 9, 10 ** 9
elif force == "program":
    C.MAX_SCALAR_PARAMS = -1
symad.manual_seed(0)
if kind == "mlp":
    net = nn.Sequential(nn.Linear(10, size), nn.Tanh(), nn.Linear(size, 1))
    X, y, loss = symad.randn(64, 10), symad.randn(64, 1), nn.MSELoss()
    fn, args, zero = (lambda xb, yb: loss(net(xb), yb)), (X, y), net.zero_grad
    n_params = sum(p.numel() for p in net.parameters())
else:
    x = symad.randn(size, dtype=symad.float64, requires_grad=True)
    fn, args, n_params = (lambda t: t.clamp(-0.5, 0.5).sum()), (x,), size
    def zero():
        x.grad = None
f = symad.compile(fn)
t0 = time.perf_counter()
f(*args).backward()
build = time.perf_counter() - t0
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(100):
        zero()
        f(*args).backward()
    best = min(best, (time.perf_counter() - t0) / 100)
entry = next(iter(f._entries.values()))
print(json.dumps({"params": n_params, "build_s": build, "call_us": best * 1e6,
                  "path": "program" if type(entry).__name__ == "ProgramEntry" else "scalar"}))
"""


def run(kind: str, size: int, force: str) -> dict:
    env = dict(os.environ, SYMAD_CACHE_DIR=tempfile.mkdtemp(prefix="symad-paths-"),
               OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), kind, str(size), force],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    big = "--big" in sys.argv
    cases = [("mlp", 4), ("mlp", 8), ("mlp", 16), ("mlp", 32), ("clamp", 64), ("clamp", 256)]
    if big:
        cases += [("mlp", 64), ("clamp", 1000)]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"{'function':<24} {'params':>6} | {'scalar build':>12} {'call':>9} | "
          f"{'program build':>13} {'call':>9} | {'call ratio':>10} | default")
    for kind, size in cases:
        s, p, d = run(kind, size, "scalar"), run(kind, size, "program"), run(kind, size, "")
        name = f"MSE of 10-{size}-1 MLP, b64" if kind == "mlp" else f"clamp(x).sum(), x: {size}"
        print(f"{name:<24} {s['params']:>6} | {s['build_s']:>10.2f} s {s['call_us']:>6.0f} us | "
              f"{p['build_s']:>11.2f} s {p['call_us']:>6.0f} us | "
              f"{p['call_us'] / s['call_us']:>9.2f}x | {d['path']}")
    print("call ratio = program / scalar time per forward+backward call (< 1: the program is "
          "faster)")


if __name__ == "__main__":
    main()
