"""Export a curve-fit loss and its exact gradient as a C library, then verify it from C.

    f(x) = t0 * exp(-t1 * x) * sin(t2 * x + t3) + t4,   loss = mean over the batch of (f - y)^2

Run:  python examples/export_curve_fit.py [OUT_DIR]    (default: build/curve_fit)
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np

import symad


def mse(x, y, theta):
    f = theta[0] * symad.exp(-theta[1] * x) * symad.sin(theta[2] * x + theta[3]) + theta[4]
    return ((f - y) ** 2).mean()


def main(out_dir: str = "build/curve_fit") -> int:
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 4.0, 64)
    y = 1.5 * np.exp(-0.7 * x) * np.sin(2.0 * x + 0.3) + 0.1 + 0.01 * rng.normal(size=x.size)
    theta = symad.tensor([1.0, 0.5, 1.8, 0.1, 0.0], dtype=symad.float64, requires_grad=True)
    res = symad.export(mse, (symad.tensor(x), symad.tensor(y), theta), out_dir, name="curve")
    for kind, path in res.files.items():
        print(f"{kind:5s} {path}")
    grad = next(f for f in res.manifest["functions"] if f["name"] == "curve_grad")
    print(grad["c_signature"])
    print("d loss / d theta[1] per sample:", grad["outputs"][1]["formulas"][1])
    print("runtime:", res.manifest["link_flags"], "-", res.manifest["vector_math"])
    cc = shutil.which("cc")
    if cc is None:
        print("no `cc` on PATH: skipping the C check")
        return 0
    exe = res.out_dir / "curve_test"
    subprocess.run([cc, "-O2", "curve_test.c", "curve.o", "-o", exe.name,
                    *res.manifest["link_flags"].split()], cwd=res.out_dir, check=True)
    run = subprocess.run([str(exe)], cwd=res.out_dir, capture_output=True, text=True)
    print(run.stdout.splitlines()[-1])
    return run.returncode


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
