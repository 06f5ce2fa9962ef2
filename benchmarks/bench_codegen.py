"""codegen benchmark: curve-fit loss + 5-parameter gradient over N = 1e6 samples.

Side by side, in one process: the codegen kernel (exact sympy.diff gradients, CSE'd), numpy,
hand-written C (scalar loop, ``cc -O3 -march=native``) and C with SIMD + OpenMP threads
(``-O3 -march=native -ffast-math -fopenmp``, ``#pragma omp parallel for simd reduction``, libmvec).
Also: compile times (the curve-fit kernel, a 10,000-node expression), 1 vs 2 threads at three
batch sizes with the native workers and with Python threads, and the first call in a new process
with a cold vs warm disk cache.

    python benchmarks/bench_codegen.py            # ~30 s
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sympy as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from codegen import compile_kernel

print = __import__("functools").partial(print, flush=True)

N = 1_000_000
REPEAT = 9
THETA = [1.3, 0.7, 2.1, 0.4, 0.1]


def curve_fit_exprs() -> tuple[list[sp.Symbol], list[sp.Expr]]:
    x, y = sp.symbols("x y")
    t = sp.symbols("t0:5")
    f = t[0] * sp.exp(-t[1] * x) * sp.sin(t[2] * x + t[3]) + t[4]
    per_sample = (f - y) ** 2
    return [x, y, *t], [per_sample] + [sp.diff(per_sample, ti) for ti in t]


def numpy_lossgrad(x: np.ndarray, y: np.ndarray, t: list[float]) -> list[float]:
    t0, t1, t2, t3, t4 = t
    e = np.exp(-t1 * x)
    arg = t2 * x + t3
    s, c = np.sin(arg), np.cos(arg)
    r = t0 * e * s + t4 - y
    r2 = 2 * r
    tec = r2 * t0 * e * c
    return [np.mean(r * r), np.mean(r2 * e * s), np.mean(-r2 * t0 * x * e * s),
            np.mean(tec * x), np.mean(tec), np.mean(r2)]


C_SOURCE = r"""
#include <math.h>
#ifdef SIMD_COS_VIA_SIN
/* GCC fuses sin(a) and cos(a) into sincos(), which has no SIMD clone and stops the loop
   vectorizer; cos(a) = sin(a + pi/2) keeps both calls vectorizable (_ZGV*_sin). */
#define COSX(COS, SIN, a) SIN((a) + 1.57079632679489661923)
#else
#define COSX(COS, SIN, a) COS(a)
#endif
#define BODY(T, EXP, SIN, COS)                                                          \
    T t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3], t4 = t[4];                            \
    T l = 0, g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0;                                    \
    PRAGMA                                                                              \
    for (long i = 0; i < n; i++) {                                                      \
        T e = EXP(-t1 * x[i]), a = t2 * x[i] + t3, s = SIN(a), c = COSX(COS, SIN, a);    \
        T r = t0 * e * s + t4 - y[i], r2 = 2 * r, tec = r2 * t0 * e * c;                \
        l += r * r; g0 += r2 * e * s; g1 -= r2 * t0 * x[i] * e * s;                     \
        g2 += tec * x[i]; g3 += tec; g4 += r2;                                          \
    }                                                                                   \
    out[0] = l / n; out[1] = g0 / n; out[2] = g1 / n; out[3] = g2 / n;                  \
    out[4] = g3 / n; out[5] = g4 / n;

void lossgrad64(const double *restrict x, const double *restrict y, long n,
                const double *t, double *out) { BODY(double, exp, sin, cos) }
void lossgrad32(const float *restrict x, const float *restrict y, long n,
                const float *t, float *out) { BODY(float, expf, sinf, cosf) }
"""


def build_c(workdir: Path) -> dict[str, ctypes.CDLL]:
    cc = shutil.which("cc")
    if cc is None:
        return {}
    variants = {
        "C scalar (-O3 -march=native)": (["-O3", "-march=native"], "#define PRAGMA"),
        "C SIMD+threads (fast-math, OpenMP)": (
            ["-O3", "-march=native", "-ffast-math", "-fopenmp"],
            ("#define SIMD_COS_VIA_SIN\n#define PRAGMA _Pragma(\"omp parallel for simd "
             "reduction(+:l,g0,g1,g2,g3,g4)\")")),
    }
    libs = {}
    for i, (label, (flags, pragma)) in enumerate(variants.items()):
        src = workdir / f"lossgrad{i}.c"
        so = workdir / f"lossgrad{i}.so"
        src.write_text(pragma + "\n" + C_SOURCE)
        cmd = [cc, *flags, "-fPIC", "-shared", str(src), "-o", str(so), "-lmvec", "-lm"]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print(f"  (skipping {label}: {res.stderr.strip()[:200]})")
            continue
        libs[label] = ctypes.CDLL(str(so))
    return libs


def c_runner(lib: ctypes.CDLL, dtype: str):
    fn = lib.lossgrad64 if dtype == "float64" else lib.lossgrad32
    ct = ctypes.c_double if dtype == "float64" else ctypes.c_float
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p,
                   ctypes.c_void_p]
    fn.restype = None

    def run(x: np.ndarray, y: np.ndarray, t: np.ndarray) -> list[float]:
        out = np.empty(6, x.dtype)
        fn(x.ctypes.data, y.ctypes.data, x.size, t.ctypes.data, out.ctypes.data)
        return out.tolist()
    del ct
    return run


def median_time(fn, *args) -> float:
    fn(*args)  # warm-up (page faults, thread pools)
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_dtype(dtype: str, libs: dict[str, ctypes.CDLL]) -> None:
    inputs, outputs = curve_fit_exprs()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, N).astype(dtype)
    t_true = np.array(THETA, dtype)
    y = (t_true[0] * np.exp(-t_true[1] * x) * np.sin(t_true[2] * x + t_true[3]) + t_true[4]
         + rng.normal(0, 0.05, N)).astype(dtype)
    theta = [0.9 * v for v in THETA]
    tv = np.array(theta, dtype)

    rows: dict[str, tuple[float, list[float]]] = {}
    kernels = {}
    for fm in (False, True):
        k = compile_kernel(inputs, outputs, batched=inputs[:2], reduce="mean", dtype=dtype,
                           fast_math=fm, cache=False, name="curve_fit")
        kernels[fm] = k
        label = f"codegen kernel{' (fast_math)' if fm else ''}, {k.threads} threads"
        args = [x, y, *(float(v) for v in tv)]
        rows[label] = (median_time(k.call_arrays, args),
                       [float(v) for v in k.call_arrays(args)])
    rows["numpy"] = (median_time(numpy_lossgrad, x, y, list(tv)),
                     [float(v) for v in numpy_lossgrad(x, y, list(tv))])
    for label, lib in libs.items():
        run = c_runner(lib, dtype)
        rows[label] = (median_time(run, x, y, tv), run(x, y, tv))

    ref_label = next((k for k in rows if k.startswith("C SIMD")), None)
    ref_vals = np.array(numpy_lossgrad(x.astype(np.float64), y.astype(np.float64),
                                       [float(v) for v in tv]))
    print(f"\n== curve-fit loss + 5 gradients, N={N:,}, {dtype} "
          f"(median of {REPEAT}; ratio = t(C SIMD+threads) / t) ==")
    print(f"{'variant':46s} {'time ms':>9s} {'ratio':>7s}  max rel. diff vs float64 numpy")
    for label, (t, vals) in rows.items():
        ratio = f"{rows[ref_label][0] / t:7.2f}" if ref_label else "    n/a"
        err = np.max(np.abs(np.array(vals) - ref_vals) / np.maximum(np.abs(ref_vals), 1e-30))
        print(f"{label:46s} {t * 1e3:9.2f} {ratio}  {err:.1e}")
    k = kernels[False]
    print(f"compile time of this kernel: LLVM {k.compile_seconds * 1e3:.0f} ms wall, "
          f"{k.compile_cpu_seconds * 1e3:.0f} ms CPU "
          f"(+ IR generation incl. sympy.cse {k.ir_seconds * 1e3:.0f} ms)")
    small = [x[:10].copy(), y[:10].copy(), *(float(v) for v in tv)]
    n_calls = 20000
    t, c = time.perf_counter(), time.process_time()
    for _ in range(n_calls):
        k.call_arrays(small)
    per_call = (time.perf_counter() - t) / n_calls
    per_call_cpu = (time.process_time() - c) / n_calls
    print(f"per call at N=10 (call_arrays, incl. the 10-element loop): {per_call * 1e6:.1f} us "
          f"wall, {per_call_cpu * 1e6:.1f} us CPU")


def big_expression(n_nodes: int = 10_000) -> tuple[list[sp.Symbol], sp.Expr, int]:
    """A sum of random small terms over x and 4 parameters with about ``n_nodes`` tree nodes."""
    rng = np.random.default_rng(1)
    x = sp.Symbol("x")
    p = list(sp.symbols("p0:4"))
    funcs = [sp.sin, sp.cos, sp.exp, sp.tanh, sp.log, sp.sqrt]
    terms, count = [], 1
    while count < n_nodes:
        c1, c2 = (sp.Rational(int(rng.integers(1, 50)), int(rng.integers(1, 50)))
                  for _ in range(2))
        f, g = (funcs[i] for i in rng.integers(0, len(funcs), 2))
        pa, pb = (p[i] for i in rng.integers(0, 4, 2))
        term = pa * f(c1 * x + pb) + g(x ** 2 * c2 + 1) / (pb ** 2 + 1)
        terms.append(term)
        count += sum(1 for _ in sp.preorder_traversal(term))
    return [x, *p], sp.Add(*terms), count


COLD_WARM = """
import sys, time, json
t0 = time.perf_counter()
import numpy as np, sympy as sp
sys.path.insert(0, sys.argv[2])
from codegen import compile_kernel
sys.path.insert(0, sys.argv[2] + "/benchmarks")
from bench_codegen import curve_fit_exprs
inputs, outputs = curve_fit_exprs()
t1 = time.perf_counter()
k = compile_kernel(inputs, outputs, batched=inputs[:2], reduce="mean", cache=sys.argv[1],
                   name="curve_fit")
k(np.linspace(0, 1, 1000), np.zeros(1000), 1.0, 1.0, 1.0, 1.0, 1.0)
t2 = time.perf_counter()
print(json.dumps({"first_call": t2 - t1, "hit": k.cache_hit}))
"""


def bench_cache() -> None:
    with tempfile.TemporaryDirectory() as d:
        res = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", COLD_WARM, d, str(REPO)],
                                 capture_output=True, text=True, check=True)
            res.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cold, warm = res
    print(f"\nfirst call in a new process (compile_kernel + call, after sympy.diff): "
          f"cold cache {cold['first_call'] * 1e3:.0f} ms, warm cache {warm['first_call'] * 1e3:.0f}"
          f" ms (hit={warm['hit']}) -> {cold['first_call'] / warm['first_call']:.1f}x faster")


def best_time(fn, repeat: int = 9, number: int = 20) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


def bench_threads() -> None:
    """The curve-fit kernel on 1 and 2 threads at three batch sizes, the second thread's share
    handed to the native workers (codegen.pool) and to Python threads (SYMAD_NATIVE_WORKERS=0),
    side by side in this process."""
    from codegen import pool
    inputs, outputs = curve_fit_exprs()
    rng = np.random.default_rng(0)
    print("\n== threads: curve-fit kernel, float64, best of 9 x 20 calls (us) ==")
    print(f"{'N':>10} {'1 thread':>10} {'2, native':>10} {'2, Python':>10}"
          f" {'speedup native':>15} {'speedup Python':>15}")
    ks = {t: compile_kernel(inputs, outputs, batched=inputs[:2], reduce="mean", threads=t)
          for t in (1, 2)}
    old = os.environ.get("SYMAD_NATIVE_WORKERS")
    try:
        for n in (50_000, 200_000, 1_000_000):
            x, y = rng.uniform(0, 3, n), rng.normal(size=n)
            row = {}
            for name, t, env in (("one", 1, "1"), ("native", 2, "1"), ("python", 2, "0")):
                os.environ["SYMAD_NATIVE_WORKERS"] = env
                row[name] = best_time(lambda: ks[t].call_arrays([x, y, *THETA])) * 1e6
            print(f"{n:>10,} {row['one']:>10.0f} {row['native']:>10.0f} {row['python']:>10.0f}"
                  f" {row['one'] / row['native']:>14.2f}x {row['one'] / row['python']:>14.2f}x")
    finally:
        if old is None:
            os.environ.pop("SYMAD_NATIVE_WORKERS", None)
        else:
            os.environ["SYMAD_NATIVE_WORKERS"] = old
    print(f"  (native workers here: {pool.supported()})")


def main() -> None:
    t_start = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"codegen benchmark; {os.cpu_count()} cores, load average {load:.1f} "
          "(timings are wall clock unless marked CPU)")
    with tempfile.TemporaryDirectory() as d:
        libs = build_c(Path(d))
        if not libs:
            print("  (no working `cc`: C comparisons skipped)")
        for dtype in ("float64", "float32"):
            bench_dtype(dtype, libs)
    inputs, expr, count = big_expression()
    t = time.perf_counter()
    k = compile_kernel(inputs, [expr], batched=inputs[:1], reduce="sum", cache=False, cse=False)
    total = time.perf_counter() - t
    print(f"\n{count:,}-node expression: LLVM compile {k.compile_seconds:.2f} s wall "
          f"({k.compile_cpu_seconds:.2f} s CPU), IR generation {k.ir_seconds:.2f} s, "
          f"total {total:.2f} s")
    bench_threads()
    bench_cache()
    print(f"\n(benchmark took {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
