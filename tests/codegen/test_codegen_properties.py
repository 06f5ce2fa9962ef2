"""Property tests (hypothesis): random finite inputs, kernel vs mpmath within 4 ulp."""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen import compile_kernel

x, y = sp.symbols("x y")
FUNCS = {"exp": (sp.exp, mpmath.exp), "log": (sp.log, mpmath.log), "sin": (sp.sin, mpmath.sin),
         "tanh": (sp.tanh, mpmath.tanh), "atan": (sp.atan, mpmath.atan)}


@functools.cache
def kernel(dtype: str):
    exprs = [f(x) for f, _ in FUNCS.values()] + [x * y / (x * x + 1)]
    return compile_kernel([x, y], exprs, dtype=dtype, cache=False, threads=1)


def ulps(got: float, want: mpmath.mpf, dtype: str) -> float:
    t = np.dtype(dtype).type
    with np.errstate(over="ignore"):
        w = t(float(want))
    if math.isinf(float(w)) or math.isinf(float(got)):
        return 0.0 if float(w) == float(got) else math.inf
    return abs(float(got) - float(w)) / float(np.spacing(abs(w)) or np.spacing(t(0)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-700, 700, allow_nan=False, width=64), min_size=1, max_size=40),
       st.sampled_from(["float64", "float32"]))
def test_functions_within_4_ulp(values: list[float], dtype: str) -> None:
    dt = np.dtype(dtype)
    with np.errstate(over="ignore"):
        xs = np.array(values, dt)
    ys = xs[::-1].copy()
    outs = kernel(dtype)(xs, ys)
    for k, (name, (_, mp_f)) in enumerate(FUNCS.items()):
        for v, got in zip(xs.tolist(), outs[k].tolist()):
            if not math.isfinite(v) or (name == "log" and v <= 0):
                continue
            with mpmath.workprec(120):
                assert ulps(got, mp_f(mpmath.mpf(v)), dtype) <= 4, (name, v, got)
    # compound x*y/(x*x+1): 4 correctly rounded operations -> relative error <= 4 u (+ cond 1)
    for v, w, got in zip(xs.tolist(), ys.tolist(), outs[-1].tolist()):
        if not (math.isfinite(v) and math.isfinite(w)) or v * v > 1e30:
            continue
        with mpmath.workprec(120):
            want = mpmath.mpf(v) * w / (mpmath.mpf(v) ** 2 + 1)
        assert ulps(got, want, dtype) <= 6, (v, w, got)
