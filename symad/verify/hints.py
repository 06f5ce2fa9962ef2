"""Recognising common mistakes in a wrong gradient: constant factor, sign flip, constant offset,
wrong variable, transposed, missing sum over a broadcast dimension."""
from __future__ import annotations

import numpy as np
import sympy as sp

from .decide import exact_value, sample_points, simplifies_to_zero


def _same(a, b, variables, rng, n=4) -> bool:
    """Exact equality at a few rational points, then a symbolic confirmation."""
    a = sp.sympify(a)
    b = sp.sympify(b)
    seen = 0
    for pt in sample_points(variables, rng, n):
        va, vb = exact_value(a, pt), exact_value(b, pt)
        if va is None or vb is None:
            continue
        seen += 1
        d = sp.sympify(va - vb)
        if d.is_Rational and d != 0:
            return False
        if not d.is_Rational and abs(sp.N(d, 30)) > 1e-20:
            return False
    return seen > 0 and simplifies_to_zero(a - b)


def transpose_hints(name, exact: np.ndarray, claimed: np.ndarray, arrays: dict, variables,
                    rng) -> str | None:
    """'transposed': the claim is the transpose of the exact gradient, or equals it once a
    square matrix input is replaced by its transpose (X used where X.T is needed)."""
    if exact.ndim == 2 and claimed.shape == exact.shape[::-1] and \
            _all_same(exact, claimed.T, variables, rng):
        return (f"transposed: the claimed gradient for {name} has shape {claimed.shape}, its "
                f"transpose equals the exact gradient ({exact.shape})")
    if claimed.shape != exact.shape:
        return None
    if exact.ndim == 2 and exact.shape[0] == exact.shape[1] and \
            _all_same(exact, claimed.T, variables, rng):
        return f"transposed: the claimed gradient for {name} is the transpose of the exact one"
    for other, arr in arrays.items():
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1] > 1 and exact.shape == (arr.shape[0],) \
                and _matrix_used_untransposed(exact, claimed, arr, variables, rng):
            return (f"transposed: the claim uses {other} where {other}.T is needed (exact = "
                    f"{other}.T @ r, claimed = {other} @ r for the same r)")
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and arr.shape[0] > 1:
            swap = {arr[i, j]: arr[j, i] for i in range(arr.shape[0])
                    for j in range(arr.shape[1])}
            swapped = np.vectorize(lambda e: sp.sympify(e).xreplace(swap), otypes=[object])(
                claimed)
            if _all_same(exact, swapped, variables, rng):
                return (f"transposed: the claim uses {other} where {other}.T is needed "
                        f"(with {other} transposed it equals the exact gradient)")
    return None


def broadcast_sum_hint(exact: np.ndarray, claimed: np.ndarray, variables, rng) -> str | None:
    """The claim has extra (broadcast) dimensions; summing them gives the exact gradient."""
    if claimed.ndim < exact.ndim:
        return None
    lead = claimed.ndim - exact.ndim
    axes = list(range(lead))
    for i, (ce, ee) in enumerate(zip(claimed.shape[lead:], exact.shape)):
        if ee == 1 and ce != 1:
            axes.append(lead + i)
        elif ce != ee:
            return None
    if not axes:
        return None
    summed = np.sum(claimed, axis=tuple(axes), keepdims=True)
    summed = summed.reshape(summed.shape[lead:]) if lead else summed
    summed = np.asarray(summed, dtype=object).reshape(exact.shape)
    if _all_same(exact, summed, variables, rng):
        return (f"missing sum over a broadcast dimension: the claim has shape {claimed.shape}; "
                f"summed over axes {tuple(axes)} it equals the exact gradient ({exact.shape})")
    return None


def _all_same(a: np.ndarray, b: np.ndarray, variables, rng) -> bool:
    return all(_same(a[idx], b[idx], variables, rng, n=2) for idx in np.ndindex(*a.shape))


def _matrix_used_untransposed(exact, claimed, M, variables, rng) -> bool:
    """exact = M.T @ r and claimed = M @ r for one r, checked exactly at two rational points
    (r solved from the first equation with rational linear algebra)."""
    seen = 0
    for pt in sample_points(variables, rng, 3):
        Mv = sp.Matrix(M.shape[0], M.shape[1], [exact_value(m, pt) for m in M.reshape(-1)])
        ev = sp.Matrix([exact_value(x, pt) for x in exact.reshape(-1)])
        cv = sp.Matrix([exact_value(x, pt) for x in claimed.reshape(-1)])
        if any(v is None for v in list(Mv) + list(ev) + list(cv)) or Mv.det() == 0:
            continue
        r = Mv.T.LUsolve(ev)
        if list(sp.simplify(Mv * r - cv)) != [0] * len(cv):
            return False
        seen += 1
        if seen == 2:
            return True
    return False


def numeric_hint(exact, claimed, points, others: dict | None = None) -> str | None:
    """Constant factor, sign flip, constant offset or wrong variable, recognised from values at
    ``points`` (no simplification), then confirmed by expansion."""
    import mpmath

    from .pipeline import value_at
    exact = sp.sympify(exact)
    claimed = sp.sympify(claimed)
    vals = []
    for pt in points:
        (ev, _), (cv, _) = value_at(exact, pt), value_at(claimed, pt)
        if ev is not None and cv is not None:
            vals.append((pt, ev, cv))
    if not vals:
        return None
    rational = all(ev.is_Rational and cv.is_Rational for _, ev, cv in vals)

    def const(xs):
        if rational:
            return xs[0] if all(x == xs[0] for x in xs) else None
        with mpmath.workprec(320):
            m = [_mp(x) for x in xs]
            ok = all(abs(x - m[0]) <= mpmath.mpf(10) ** -25 * (1 + abs(m[0])) for x in m)
        return sp.nsimplify(sp.Float(m[0], 40), rational=True, tolerance=1e-20) if ok else None

    def ratio(c, e):
        if rational:
            return c / e
        with mpmath.workprec(320):
            return _mp(c) / _mp(e)

    if all(not _mp(ev) == 0 for _, ev, _ in vals):
        q = const([ratio(cv, ev) for _, ev, cv in vals])
        if q is not None and q.is_Rational and q not in (0, 1):
            how = "" if sp.expand(claimed - q * exact) == 0 else \
                f" (at {len(vals)} random points)"
            return f"sign flip: claimed = −exact{how}" if q == -1 else \
                f"constant factor: claimed = {q} × exact{how}"
    d = const([ev - cv if rational else _diff(ev, cv) for _, ev, cv in vals])
    if d is not None and d != 0 and d.is_Rational and sp.expand(exact - claimed - d) == 0:
        return f"off by a constant: exact − claimed = {d}"
    for name, arr in (others or {}).items():
        for idx in np.ndindex(*arr.shape):
            o = sp.sympify(arr[idx])
            if all(value_at(o, pt)[0] == cv for pt, _, cv in vals) and \
                    sp.expand(o - claimed) == 0:
                label = name if idx == () else f"{name}[{','.join(map(str, idx))}]"
                return f"the claim is ∂f/∂{label}: components swapped or wrong variable?"
    return None


def _diff(a, b):
    import mpmath
    with mpmath.workprec(320):
        return _mp(a) - _mp(b)


def _mp(x):
    """A comparison value (Fraction, mpf, SymPy number) as an mpmath number."""
    import mpmath
    from fractions import Fraction
    with mpmath.workprec(320):
        if isinstance(x, Fraction):
            return mpmath.mpf(x.numerator) / x.denominator
        if isinstance(x, sp.Basic):
            return mpmath.mpf(sp.Float(x, 96)._mpf_) if not x.is_Rational else \
                mpmath.mpf(int(x.p)) / int(x.q)
        return mpmath.mpf(x)
