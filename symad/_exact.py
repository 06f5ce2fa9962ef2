"""Exact numbers for float constants, shared by tracing (ops) and verification.

While :func:`exact_constants` is active (``check_gradient`` / ``check_function`` turn it on),
floating constants that meet symbolic tensors enter the expression as exact rationals
(:func:`exact_float`) instead of SymPy Floats, so a hand-written backward and the traced forward
compute with the same numbers: ``(X @ w) / 3`` stays exact instead of being rounded to a float
and read back as a slightly different rational.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from fractions import Fraction
from typing import Iterator

import numpy as np
import sympy as sp

_EXACT = contextvars.ContextVar("symad_exact_constants", default=False)


@contextmanager
def exact_constants(on: bool = True) -> Iterator[None]:
    """Within the block, float constants in symbolic arithmetic are exact rationals."""
    token = _EXACT.set(on)
    try:
        yield
    finally:
        _EXACT.reset(token)


def exact_mode() -> bool:
    return _EXACT.get()


def exact_array(a: np.ndarray) -> np.ndarray:
    """A float array as an object array of exact rationals."""
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(*a.shape):
        out[idx] = exact_float(a[idx])
    return out


def exact_float(v: float) -> sp.Rational:
    """The simplest rational within float rounding (4 ulps) of ``v``: 0.1 -> 1/10, and also
    0.2*3 = 0.6000000000000001 -> 3/5, so a constant folded in floating point while tracing
    and the same constant written out exactly are one number.

    >>> exact_float(0.2 * 3), exact_float(1e-5), exact_float(0.134145)
    (3/5, 1/100000, 26829/200000)
    """
    spacing = np.spacing(np.float32(abs(v))) if isinstance(v, np.float32) else None
    v = float(v)
    if v == 0 or not np.isfinite(v) or abs(v) >= 1e300:
        return sp.Integer(0) if v == 0 else sp.Float(v)
    slack = Fraction(4 * float(spacing if spacing is not None else np.spacing(abs(v))))
    f = Fraction(repr(v))
    best = _simplest_between(f - slack, f + slack)
    if best.denominator * 1000 > f.denominator:
        best = f  # no markedly simpler number nearby: the decimal as printed (2.000000001)
    return sp.Rational(best.numerator, best.denominator)


def _simplest_between(lo: Fraction, hi: Fraction) -> Fraction:
    """The rational with the smallest denominator in [lo, hi] (Stern-Brocot descent)."""
    if lo <= 0 <= hi:
        return Fraction(0)
    if hi < 0:
        return -_simplest_between(-hi, -lo)
    fl = lo.numerator // lo.denominator
    if Fraction(fl) == lo:
        return lo
    if fl + 1 <= hi:
        return Fraction(fl + 1)
    rest = _simplest_between(1 / (hi - fl), 1 / (lo - fl))
    return fl + 1 / rest


