"""Turning the things users pass to ``check_gradient`` into SymPy: strings, expressions, numbers,
callables over symad tensors. Tracing itself is ``symad.symbolic``'s job; the small fallbacks here
only run while that package is absent (running a function on object-array tensors *is* tracing)."""
from __future__ import annotations

import inspect
from fractions import Fraction

import numpy as np
import sympy as sp

from .._exact import exact_float
from ..ops.registry import _no_dirac


def real_symbols_for(names) -> dict[str, sp.Symbol]:
    return {n: _scalar_symbol(n) for n in names}


def _scalar_symbol(name: str) -> sp.Symbol:
    try:
        from ..symbolic.symbols import scalar_symbol
        return scalar_symbol(name)
    except ImportError:  # pragma: no cover - tracer not installed
        return sp.Symbol(name, real=True)


def symbolic_tensor(name: str, shape):
    try:
        from ..symbolic.symbols import symbolic_tensor as st
        return st(name, shape)
    except ImportError:  # pragma: no cover - tracer not installed
        from .. import float64
        from ..tensor import Tensor
        shape = tuple(shape)
        arr = np.empty(shape, dtype=object)
        for idx in np.ndindex(*shape):
            arr[idx] = sp.Symbol(name + "".join(f"_{i}" for i in idx), real=True)
        return Tensor._wrap(arr, float64)


def exactify(e):
    """Floats -> exact rationals (:func:`exact_float`): exact arithmetic from here on."""
    e = sp.sympify(e)
    if e.has(sp.Float):
        e = e.xreplace({f: exact_float(f) if abs(float(f)) < 1e300 else f
                        for f in e.atoms(sp.Float)})
    return _no_dirac(e)


def to_number(v):
    """An exact SymPy number for a Python/numpy/SymPy number (floats by their decimal repr)."""
    if isinstance(v, Fraction):
        return sp.Rational(v.numerator, v.denominator)
    if isinstance(v, (bool, np.bool_)):
        return sp.Integer(int(v))
    if isinstance(v, (int, np.integer)):
        return sp.Integer(int(v))
    if isinstance(v, (float, np.floating)):
        return exact_float(v)
    return exactify(sp.sympify(v))


def is_number(v) -> bool:
    if isinstance(v, (int, float, Fraction, np.number)):
        return True
    return isinstance(v, sp.Basic) and v.is_number


def parse(s: str, symbols: dict[str, sp.Symbol] | None = None) -> sp.Expr:
    """Parse a formula with real symbols: the one formula parser (:mod:`symad.ops.parse`:
    ``^`` is a power, ``2x`` a product, every registry function known), floats made exact."""
    from ..ops.parse import parse as parse_formula
    e = parse_formula(s, symbols)
    return realify(exactify(e), symbols)


def realify(e, symbols: dict[str, sp.Symbol] | None = None):
    """Replace plain symbols by the real symbols of the same name."""
    e = sp.sympify(e)
    rep = {}
    for s in e.free_symbols:
        target = (symbols or {}).get(s.name)
        if target is None:
            if s.is_real:
                continue  # already real (e.g. a traced tensor element)
            target = _scalar_symbol(s.name)
        if s != target:
            rep[s] = target
    return e.xreplace(rep) if rep else e


def parameters(fn) -> list[str]:
    sig = inspect.signature(fn)
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def tensor_values(t) -> np.ndarray:
    """An object array of exact SymPy values of a tensor/array/number/expression."""
    from ..tensor import Tensor
    if isinstance(t, Tensor):
        arr = t._data
    else:
        arr = np.asarray(t, dtype=object) if not isinstance(t, np.ndarray) else t
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(*arr.shape):
        v = arr[idx]
        out[idx] = to_number(v) if is_number(v) else exactify(sp.sympify(v))
    return out


def gradient(expr, wrt: list) -> list:
    """Exact partial derivatives with PyTorch's kink conventions (reverse mode when
    ``symad.symbolic`` is present)."""
    try:
        from ..symbolic.reverse import reverse_gradient
    except ImportError:  # pragma: no cover - tracer not installed
        reverse_gradient = None
    if reverse_gradient is not None:
        try:
            return [_no_dirac(sp.sympify(g)) for g in reverse_gradient(expr, list(wrt))]
        except NotImplementedError:
            pass
    return [_no_dirac(sp.diff(expr, v)) for v in wrt]
