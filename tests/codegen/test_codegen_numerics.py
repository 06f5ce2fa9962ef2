"""Correctness table: kernel outputs vs mpmath (finite inputs) and IEEE numpy (inf/nan inputs).

Every row is one SymPy expression over x, y (batched) and a (a scalar parameter = 1.75),
evaluated by a compiled kernel in float64 and float32 on edge inputs (0, -0, +-1, tiny,
subnormal, huge, +-inf, nan) plus random values, and compared in ulps of the kernel dtype:

* finite inputs: the reference is the oracle evaluated in mpmath at 200 bits and rounded to the
  dtype; a complex mpmath result (log(-1), asin(2)) means the kernel must return nan;
* non-finite inputs (or a pole: mpmath raises): the reference is the same oracle in IEEE numpy
  float64, so nan/inf propagation must match exactly.

Bounds (ulp, f64 / f32): + - * / sqrt, Abs, floor, sign, Min/Max, selects: 0 (correctly rounded
or exact); libm/libmvec functions: 4 (glibc's documented libmvec bound); short multiplication
chains and constants: the rounding count; compound expressions: the sum of their parts' bounds
times the condition number on the tested domain (written next to the row).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.codegen.cfunctions import exp2, expm1, hypot, log1p, log2, log10

from codegen import compile_kernel

x, y, a = sp.symbols("x y a")
A_VALUE = 1.75


class sigmoid(sp.Function):
    """A user Function lowers through its ``elementary`` rewrite (codegen never imports symad, so
    symad's own sigmoid reaches codegen the same way)."""

    def _eval_rewrite_as_elementary(self, x, **kw):
        return 1 / (1 + sp.exp(-x))



class MP:
    """mpmath namespace for oracles."""
    exp, log, sin, cos, tan = mpmath.exp, mpmath.log, mpmath.sin, mpmath.cos, mpmath.tan
    sinh, cosh, tanh = mpmath.sinh, mpmath.cosh, mpmath.tanh
    asin, acos, atan, atan2 = mpmath.asin, mpmath.acos, mpmath.atan, mpmath.atan2
    asinh, acosh, atanh = mpmath.asinh, mpmath.acosh, mpmath.atanh
    erf, erfc, log1p, expm1 = mpmath.erf, mpmath.erfc, mpmath.log1p, mpmath.expm1
    sqrt, floor, ceil, hypot = mpmath.sqrt, mpmath.floor, mpmath.ceil, mpmath.hypot
    pi, e = mpmath.pi, mpmath.e

    @staticmethod
    def pow(u, v):
        return mpmath.power(u, v)

    @staticmethod
    def log2(u):
        return mpmath.log(u, 2)

    @staticmethod
    def log10(u):
        return mpmath.log10(u)

    @staticmethod
    def exp2(u):
        return mpmath.power(2, u)

    @staticmethod
    def q(p, r):  # exact rational p/r
        return mpmath.mpf(p) / r

    @staticmethod
    def nan():
        return mpmath.nan

    abs = staticmethod(abs)
    minimum = staticmethod(min)
    maximum = staticmethod(max)


class NP:
    """IEEE float64 numpy namespace for oracles (same formulas)."""
    exp, log, sin, cos, tan = np.exp, np.log, np.sin, np.cos, np.tan
    sinh, cosh, tanh = np.sinh, np.cosh, np.tanh
    asin, acos, atan, atan2 = np.arcsin, np.arccos, np.arctan, np.arctan2
    asinh, acosh, atanh = np.arcsinh, np.arccosh, np.arctanh
    log1p, expm1, log2, log10, exp2 = np.log1p, np.expm1, np.log2, np.log10, np.exp2
    sqrt, floor, ceil, hypot, pow = np.sqrt, np.floor, np.ceil, np.hypot, np.power
    abs, minimum, maximum = np.abs, np.minimum, np.maximum
    pi, e = np.float64(math.pi), np.float64(math.e)

    @staticmethod
    def erf(u):
        return np.float64(math.erf(u))

    @staticmethod
    def erfc(u):
        return np.float64(math.erfc(u))

    @staticmethod
    def q(p, r):
        return np.float64(p) / r

    @staticmethod
    def nan():
        return np.float64(np.nan)


@dataclass
class Row:
    id: str
    expr: sp.Expr
    oracle: Callable  # oracle(m, x, y, a) with m = MP or NP
    domain: str = "real"  # real | small | unit | pos
    ulp: tuple[float, float] = (4, 4)  # (float64, float32)


def isnan(v) -> bool:
    return v != v  # noqa: PLR0124 - works for floats, numpy and mpmath numbers


def heav(m, u, at0):
    return m.nan() if isnan(u) else (1 if u > 0 else 0 if u < 0 else at0)


def sign(m, u):
    return u if isnan(u) else (1 if u > 0 else -1 if u < 0 else 0)


def pw1(m, u):
    return u * u if u < 0 else m.sin(u) if u < 2 else 1


def pw2(m, u, v):
    if -1 < u < 1:
        return u
    if u < -5 or not (u > 0 and v > 0):
        return v
    return 0


def pw3(m, u, v):
    return 1 if u == v else 2 if u != 0 else 3


def nanmin(m, *vals):  # NaN-propagating like llvm.minimum / numpy.minimum
    return m.nan() if any(isnan(v) for v in vals) else min(vals)


def nanmax(m, *vals):
    return m.nan() if any(isnan(v) for v in vals) else max(vals)


LIBM = 4
ROWS = [
    # exactly rounded arithmetic
    Row("add", x + y, lambda m, x, y, a: x + y, ulp=(0, 0)),
    Row("sub", x - y, lambda m, x, y, a: x - y, ulp=(0, 0)),
    Row("mul", x * y, lambda m, x, y, a: x * y, ulp=(0, 0)),
    Row("div", x / y, lambda m, x, y, a: x / y, ulp=(0, 0)),
    Row("neg", -x, lambda m, x, y, a: -x, ulp=(0, 0)),
    Row("mul_param", a * x, lambda m, x, y, a: a * x, ulp=(0, 0)),
    Row("div_param", x / a, lambda m, x, y, a: x / a, ulp=(0, 0)),
    Row("div_3", x / 3, lambda m, x, y, a: x / 3, ulp=(0, 0)),
    Row("div_10", x * sp.Rational(1, 10), lambda m, x, y, a: x / 10, ulp=(0, 0)),
    Row("rational_2_3", 2 * x / 3, lambda m, x, y, a: m.q(2, 3) * x, ulp=(1, 1)),
    Row("float_const", sp.Float(0.1) * x, lambda m, x, y, a: 0.1 * x, ulp=(0, 1)),
    Row("pi_x", sp.pi * x, lambda m, x, y, a: m.pi * x, ulp=(1, 1)),
    Row("E_x", sp.E * x, lambda m, x, y, a: m.e * x, ulp=(1, 1)),
    Row("x_over_E", x / sp.E, lambda m, x, y, a: x * m.exp(-1), ulp=(5, 5)),  # exp(-1) call
    # powers: x**n by binary powering has relative error <= (n-1) u, i.e. <= n-1 ulp;
    # x**-n one more rounding; x**(n/2) = sqrt(x)**n; other exponents call pow()
    Row("sq", x**2, lambda m, x, y, a: x * x, ulp=(0, 0)),
    Row("cube", x**3, lambda m, x, y, a: x * x * x, ulp=(2, 2)),
    Row("pow4", x**4, lambda m, x, y, a: x**4, ulp=(3, 3)),
    Row("pow7", x**7, lambda m, x, y, a: x**7, ulp=(6, 6)),
    Row("pow16", x**16, lambda m, x, y, a: x**16, "small", ulp=(15, 15)),
    Row("pow40", x**40, lambda m, x, y, a: m.pow(x, 40), "small", ulp=(LIBM, LIBM)),
    Row("recip", 1 / x, lambda m, x, y, a: 1 / x, ulp=(0, 0)),
    Row("inv_sq", x**-2, lambda m, x, y, a: 1 / (x * x), ulp=(2, 2)),
    Row("inv_cube", x**-3, lambda m, x, y, a: 1 / (x * x * x), ulp=(3, 3)),
    Row("sqrt", sp.sqrt(x), lambda m, x, y, a: m.sqrt(x), ulp=(0, 0)),
    Row("rsqrt", 1 / sp.sqrt(x), lambda m, x, y, a: 1 / m.sqrt(x), ulp=(1, 1)),
    Row("pow_3_2", x**sp.Rational(3, 2), lambda m, x, y, a: m.sqrt(x) ** 3, "pos", ulp=(5, 5)),
    Row("pow_float", x**2.5, lambda m, x, y, a: m.pow(x, 2.5), "pos", ulp=(LIBM, LIBM)),
    Row("pow_xy", x**y, lambda m, x, y, a: m.pow(x, y), "pos", ulp=(LIBM, LIBM)),
    Row("pow_param", x**a, lambda m, x, y, a: m.pow(x, a), "pos", ulp=(LIBM, LIBM)),
    # elementary functions (libm / libmvec)
    Row("exp", sp.exp(x), lambda m, x, y, a: m.exp(x)),
    Row("log", sp.log(x), lambda m, x, y, a: m.log(x), "pos"),
    Row("sin", sp.sin(x), lambda m, x, y, a: m.sin(x)),
    Row("cos", sp.cos(x), lambda m, x, y, a: m.cos(x)),
    Row("tan", sp.tan(x), lambda m, x, y, a: m.tan(x)),
    Row("sinh", sp.sinh(x), lambda m, x, y, a: m.sinh(x)),
    Row("cosh", sp.cosh(x), lambda m, x, y, a: m.cosh(x)),
    Row("tanh", sp.tanh(x), lambda m, x, y, a: m.tanh(x)),
    Row("asin", sp.asin(x), lambda m, x, y, a: m.asin(x), "unit"),
    Row("acos", sp.acos(x), lambda m, x, y, a: m.acos(x), "unit"),
    Row("atan", sp.atan(x), lambda m, x, y, a: m.atan(x)),
    Row("asinh", sp.asinh(x), lambda m, x, y, a: m.asinh(x)),
    Row("acosh", sp.acosh(x), lambda m, x, y, a: m.acosh(x), "pos"),
    Row("atanh", sp.atanh(x), lambda m, x, y, a: m.atanh(x), "unit"),
    Row("erf", sp.erf(x), lambda m, x, y, a: m.erf(x)),
    Row("erfc", sp.erfc(x), lambda m, x, y, a: m.erfc(x)),
    Row("log1p", log1p(x), lambda m, x, y, a: m.log1p(x), "pos"),
    Row("expm1", expm1(x), lambda m, x, y, a: m.expm1(x)),
    Row("log2", log2(x), lambda m, x, y, a: m.log2(x), "pos"),
    Row("log10", log10(x), lambda m, x, y, a: m.log10(x), "pos"),
    Row("exp2", exp2(x), lambda m, x, y, a: m.exp2(x)),
    Row("atan2", sp.atan2(y, x), lambda m, x, y, a: m.atan2(y, x)),
    Row("hypot", hypot(x, y), lambda m, x, y, a: m.hypot(x, y)),
    # exact non-smooth functions and selects
    Row("abs", sp.Abs(x), lambda m, x, y, a: abs(x), ulp=(0, 0)),
    Row("sign", sp.sign(x), lambda m, x, y, a: sign(m, x), ulp=(0, 0)),
    Row("floor", sp.floor(x), lambda m, x, y, a: m.floor(x), ulp=(0, 0)),
    Row("ceiling", sp.ceiling(x), lambda m, x, y, a: m.ceil(x), ulp=(0, 0)),
    Row("min", sp.Min(x, y), lambda m, x, y, a: nanmin(m, x, y), ulp=(0, 0)),
    Row("max3", sp.Max(x, y, a), lambda m, x, y, a: nanmax(m, x, y, a), ulp=(0, 0)),
    Row("relu", sp.Max(0, x), lambda m, x, y, a: nanmax(m, 0, x), ulp=(0, 0)),
    Row("clamp", sp.Min(sp.Max(x, -1), 1),
        lambda m, x, y, a: nanmin(m, nanmax(m, x, -1), 1), ulp=(0, 0)),
    # SymPy stores Heaviside(x) as Heaviside(x, 1/2); the second argument is the value at 0
    Row("heaviside", sp.Heaviside(x), lambda m, x, y, a: heav(m, x, 0.5), ulp=(0, 0)),
    Row("heaviside_0", sp.Heaviside(x, 0), lambda m, x, y, a: heav(m, x, 0), ulp=(0, 0)),
    Row("heaviside2", sp.Heaviside(x, y), lambda m, x, y, a: heav(m, x, y), ulp=(0, 0)),
    Row("piecewise", sp.Piecewise((x**2, x < 0), (sp.sin(x), x < 2), (1, True)),
        lambda m, x, y, a: pw1(m, x)),
    Row("piecewise_logic", sp.Piecewise((x, sp.And(x > -1, x < 1)),
                                        (y, sp.Or(x < -5, sp.Not(sp.And(x > 0, y > 0)))),
                                        (0, True)),
        lambda m, x, y, a: pw2(m, x, y), ulp=(0, 0)),
    Row("piecewise_no_default", sp.Piecewise((x, x > 0)),
        lambda m, x, y, a: x if x > 0 else m.nan(), ulp=(0, 0)),
    Row("piecewise_eq_ne", sp.Piecewise((1, sp.Eq(x, y)), (2, sp.Ne(x, 0)), (3, True)),
        lambda m, x, y, a: pw3(m, x, y), ulp=(0, 0)),
    Row("piecewise_param", sp.Piecewise((x, a > 1), (-x, True)),
        lambda m, x, y, a: x if a > 1 else -x, ulp=(0, 0)),
    Row("piecewise_true", sp.Piecewise((x, sp.true)), lambda m, x, y, a: x, ulp=(0, 0)),
    # compound expressions: bound = sum of parts x condition number on the domain
    Row("sigmoid", sigmoid(x), lambda m, x, y, a: 1 / (1 + m.exp(-x)), ulp=(6, 6)),
    Row("sin_exp", sp.sin(x) * sp.exp(-x / 2), lambda m, x, y, a: m.sin(x) * m.exp(-x / 2),
        "small", ulp=(10, 10)),  # 4 + 4 + 1 (exp of x/2: cond |x/2| <= 1 on "small")
    Row("gauss", sp.exp(-x**2), lambda m, x, y, a: m.exp(-x * x), "small",
        ulp=(8, 8)),  # 4 + 0.5 * x^2 <= 2
    Row("log_quad", sp.log(x**2 + 2), lambda m, x, y, a: m.log(x * x + 2), "small",
        ulp=(6, 6)),  # 4 + cond(log) 1.45 x 1
    Row("norm", sp.sqrt(x**2 + y**2), lambda m, x, y, a: m.sqrt(x * x + y * y), "small",
        ulp=(2, 2)),
    Row("x_exp_y", x * sp.exp(y), lambda m, x, y, a: x * m.exp(y), "small", ulp=(6, 6)),
    Row("tanh_param", sp.tanh(a * x), lambda m, x, y, a: m.tanh(a * x), "small", ulp=(6, 6)),
    Row("softplus", sp.log(1 + sp.exp(x)), lambda m, x, y, a: m.log(1 + m.exp(x)), "small",
        ulp=(16, 16)),  # cond(log(1+u)) <= 1 + 4 ulp exp + 1 add, x log1p region: see docs
    Row("curve_fit", a * sp.exp(-x / 4) * sp.sin(2 * x + 1) + y,
        lambda m, x, y, a: a * m.exp(-x / 4) * m.sin(2 * x + 1) + y, "small", ulp=None),
]

EDGES = {
    "float64": [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-300, -1e-300, 5e-310, 1e300, -1e300,
                math.inf, -math.inf, math.nan, 700.0, -745.0, 1.5, -0.75],
    "float32": [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-30, -1e-30, 1e-40, 1e30, -1e30,
                math.inf, -math.inf, math.nan, 88.0, -103.0, 1.5, -0.75],
}


def mpf_to_float(r: mpmath.mpf) -> float:
    """Nearest float64 (mpmath's float() fails for exponents far outside the double range)."""
    if r == 0 or not mpmath.isfinite(r):
        return float(r)
    if abs(r) > mpmath.mpf(2) ** 1100:
        return math.copysign(math.inf, r)
    if abs(r) < mpmath.mpf(2) ** -1100:
        return math.copysign(0.0, r)
    return float(r)


def inputs_for(row: Row, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(row.id.encode()))
    # "small": compound formulas; no tiny/huge finite edges, whose intermediate under/overflow
    # (x*x -> 0 in sqrt(x*x + y*y)) is a property of the formula, not of the kernel.
    edges = [v for v in EDGES[dtype]
             if row.domain != "small" or not math.isfinite(v) or v == 0 or 0.1 < abs(v) < 10]
    lo, hi = {"real": (-10, 10), "small": (-2, 2), "unit": (-1, 1), "pos": (0, 10)}[row.domain]
    rand = list(rng.uniform(lo, hi, 24))
    if row.domain == "pos":
        rand += list(np.exp(rng.uniform(-20, 20, 8)))
    xs = edges + rand
    ys = edges[3:] + edges[:3] + list(rng.uniform(lo, hi, 24))
    if row.domain == "pos":
        ys += list(rng.uniform(-3, 3, 8))
    # pairs of edges too, for the two-input rows
    xs += edges
    ys += edges
    n = min(len(xs), len(ys))
    dt = np.dtype(dtype)
    with np.errstate(over="ignore"):
        return np.array(xs[:n], dtype=dt), np.array(ys[:n], dtype=dt)


def reference(row: Row, xv: float, yv: float, dtype: str) -> float:
    vals = (xv, yv, float(np.dtype(dtype).type(A_VALUE)))
    # mpmath has no -0, so zero inputs (atan2(-0, -0) = -pi) take the IEEE reference path.
    if all(math.isfinite(v) and v != 0 for v in vals):
        with mpmath.workprec(200):
            try:
                r = row.oracle(MP, *(mpmath.mpf(v) for v in vals))
            except (ZeroDivisionError, ValueError, OverflowError):  # pole; mpmath erfc(1e300)
                r = None
            if r is not None:
                if isinstance(r, mpmath.mpc):
                    if r.imag != 0:
                        return math.nan
                    r = r.real
                with np.errstate(over="ignore"):
                    return float(np.dtype(dtype).type(mpf_to_float(mpmath.mpf(r))))
    with np.errstate(all="ignore"):
        r = row.oracle(NP, *(np.float64(v) for v in vals))
        return float(np.dtype(dtype).type(r))


def ulp_distance(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Distance in units in the last place along the float line (+0 == -0, inf next to max)."""
    itype = np.int64 if got.dtype == np.float64 else np.int32

    def line(v: np.ndarray) -> list[int]:
        lowest = int(np.iinfo(itype).min)
        return [lowest - i if i < 0 else i for i in v.view(itype).tolist()]

    # Python ints: exact (int64 differences can overflow, float64 rounds them)
    return np.array([abs(g - w) for g, w in zip(line(got), line(want))], dtype=np.float64)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("row", [r for r in ROWS if r.ulp is not None], ids=lambda r: r.id)
def test_expression_matches_mpmath(row: Row, dtype: str) -> None:
    k = compile_kernel([x, y, a], [row.expr], batched=[x, y], dtype=dtype, cache=False,
                       threads=1)
    xs, ys = inputs_for(row, dtype)
    (got,) = k(xs, ys, A_VALUE)
    want = np.array([reference(row, float(u), float(v), dtype) for u, v in zip(xs, ys)],
                    dtype=dtype)
    nan_want = np.isnan(want)
    bad_nan = np.flatnonzero(nan_want != np.isnan(got))
    assert bad_nan.size == 0, [(xs[i], ys[i], got[i], want[i]) for i in bad_nan]
    bound = row.ulp[0] if dtype == "float64" else row.ulp[1]
    dist = np.where(nan_want, 0.0, ulp_distance(got, want))
    bad = np.flatnonzero(dist > bound)
    assert bad.size == 0, [(xs[i], ys[i], got[i], want[i], dist[i]) for i in bad]


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-14), ("float32", 1e-5)])
def test_compound_expression_matches_numpy_float64(dtype: str, rtol: float) -> None:
    """The curve-fit model: relative error vs float64 numpy (documented compound tolerance)."""
    row = next(r for r in ROWS if r.id == "curve_fit")
    k = compile_kernel([x, y, a], [row.expr], batched=[x, y], dtype=dtype, cache=False)
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(-2, 2, 1000).astype(dtype), rng.uniform(-3, 3, 1000).astype(dtype)
    (got,) = k(xs, ys, A_VALUE)
    a32 = float(np.dtype(dtype).type(A_VALUE))
    x64, y64 = xs.astype(np.float64), ys.astype(np.float64)
    want = a32 * np.exp(-x64 / 4) * np.sin(2 * x64 + 1) + y64
    # mixed bound: relative to the magnitude of the summands (the sum can cancel)
    scale = np.abs(a32 * np.exp(-x64 / 4) * np.sin(2 * x64 + 1)) + np.abs(y64)
    err = np.abs(got - want)
    assert np.all(err <= rtol * scale), float(np.max(err / scale))


def test_ulp_distance_helper() -> None:
    one = np.array([1.0, -1.0, 0.0, -5e-324, np.inf])
    nxt = np.array([np.nextafter(1.0, 2.0), np.nextafter(-1.0, -2.0), -0.0, 5e-324,
                    np.finfo(np.float64).max])
    assert ulp_distance(one, nxt).tolist() == [1, 1, 0, 2, 1]
    f = np.array([1.0], np.float32)
    assert ulp_distance(f, np.nextafter(f, np.float32(0))).tolist() == [1]
