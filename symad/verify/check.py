"""``check_gradient`` and ``check_function``: exact gradient verification.

>>> r = check_gradient("x**2 + 3*x*y + y**2", {"x": "2*x + 3*y", "y": "3*x + 2*y"})
>>> r.ok, r.proved
(True, True)
"""
from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np
import sympy as sp

from .decide import Counterexample, compare, exact_value, fmt_number, sample_points
from .hints import broadcast_sum_hint, scalar_hint, transpose_hints
from .report import GradientItem, GradientReport
from .symbolic_inputs import (exactify, gradient, is_number, parameters, parse, realify,
                              real_symbols_for, tensor_values, to_number)

__all__ = ["check_gradient", "check_function"]


class _Spec:
    """f in SymPy: its scalar expression, input names, and each input's symbol array."""

    def __init__(self, display, expr, names, arrays, tensors) -> None:
        self.display = display
        self.expr = expr
        self.names: list[str] = names
        self.arrays: dict[str, np.ndarray] = arrays      # name -> object array of symbols
        self.tensors: dict[str, Any] = tensors           # name -> symbolic Tensor (callables)

    def symbols(self) -> list[sp.Symbol]:
        out: list[sp.Symbol] = []
        for n in self.names:
            out.extend(self.arrays[n].reshape(-1).tolist())
        return out

    def table(self) -> dict[str, sp.Symbol]:
        return {n: a[()] for n, a in self.arrays.items() if a.shape == ()}


def _spec_from(f, inputs, claimed_names) -> _Spec:
    if isinstance(f, str) or isinstance(f, sp.Basic):
        if isinstance(f, str):
            expr = parse(f)
        else:
            expr = realify(exactify(f))
        names = sorted({s.name for s in expr.free_symbols} | set(claimed_names or ()))
        syms = real_symbols_for(names)
        expr = realify(expr, syms)
        arrays = {n: np.array(syms[n], dtype=object) for n in names}
        return _Spec(f if isinstance(f, str) else str(f), expr, names, arrays, {})
    if callable(f):
        from ..symbolic import trace
        names = parameters(f)
        given: dict[str, Any] = {}
        if isinstance(inputs, dict):
            given = dict(inputs)
        elif inputs is not None:
            seq = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
            given = dict(zip(names, seq))
        # scalars without an example are traced from a float stand-in (any value will do)
        examples = [given.get(n, 0.0) for n in names]
        tr = trace(f, *examples, names=names)
        data = tr.output_arrays[0] if tr.output_arrays else np.array([])
        if len(tr.output_arrays) != 1 or np.size(data) != 1:
            raise ValueError(f"check_gradient needs a scalar-valued f; {_name(f)} returned shape "
                             f"{tuple(np.shape(data))} (reduce it, e.g. with .sum())")
        expr = exactify(sp.sympify(np.asarray(data, dtype=object).reshape(-1)[0]))
        arrays = {v.name: np.asarray(v.symbols, dtype=object) for v in tr.variables
                  if v.name in names}
        names = [n for n in names if n in arrays]
        tensors = {n: symbolic_tensor_from(arrays[n]) for n in names}
        return _Spec(_name(f), expr, names, arrays, tensors)
    raise TypeError(f"f must be a formula string, a SymPy expression or a callable, not "
                    f"{type(f).__name__}")


def symbolic_tensor_from(arr: np.ndarray):
    from .. import float64
    from ..tensor import Tensor
    return Tensor._wrap(np.asarray(arr, dtype=object), float64)


def _name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _elem_name(name: str, idx: tuple) -> str:
    return name if idx == () else f"{name}[{','.join(map(str, idx))}]"


def _claims(claimed, spec: _Spec, wrt: list[str]) -> dict[str, Any]:
    """name -> object array (claimed gradient per element), or a number (value at ``at``)."""
    from ..tensor import Tensor
    table = spec.table()
    out: dict[str, Any] = {}
    if callable(claimed) and not isinstance(claimed, (dict, sp.Basic)):
        args = [spec.tensors[n] if n in spec.tensors else
                _scalar_tensor(spec.arrays[n]) for n in spec.names]
        res = claimed(*args)
        if isinstance(res, dict):
            seq = [res[n] for n in wrt]
        elif isinstance(res, (tuple, list)):
            seq = list(res)
            if len(seq) == len(spec.names) and len(wrt) != len(spec.names):
                seq = [seq[spec.names.index(n)] for n in wrt]
        else:
            seq = [res]
        if len(seq) != len(wrt):
            raise ValueError(f"the claimed gradient function returned {len(seq)} gradient(s); "
                             f"expected one per input in {wrt}")
        for n, g in zip(wrt, seq):
            out[n] = _claim_value(g, table)
        return out
    if not isinstance(claimed, dict):
        raise TypeError("claimed must be a dict name -> formula/expression/number, or a callable")
    for n in wrt:
        if n not in claimed:
            continue
        v = claimed[n]
        if isinstance(v, (int, float, np.number)) or (isinstance(v, sp.Basic) and v.is_number):
            out[n] = to_number(v)  # a value (or a constant formula)
        elif isinstance(v, (Tensor, np.ndarray, list, tuple)):
            out[n] = _claim_value(v, table)
        else:
            out[n] = np.array(_claim_expr(v, table), dtype=object)
    return out


def _scalar_tensor(arr):
    from .. import float64
    from ..tensor import Tensor
    return Tensor._wrap(np.asarray(arr, dtype=object), float64)


def _claim_expr(v, table):
    if isinstance(v, str):
        return parse(v, table)
    return realify(exactify(sp.sympify(v)), table)


def _claim_value(g, table) -> np.ndarray:
    from ..tensor import Tensor
    if g is None:
        return np.array(sp.S.Zero, dtype=object)
    if isinstance(g, str):
        return np.array(parse(g, table), dtype=object)
    arr = g._data if isinstance(g, Tensor) else g
    if isinstance(arr, sp.Basic) or is_number(arr):
        arr = np.array(arr, dtype=object)
    arr = np.asarray(arr, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(*arr.shape):
        v = arr[idx]
        out[idx] = parse(v, table) if isinstance(v, str) else (
            to_number(v) if is_number(v) else realify(exactify(sp.sympify(v)), table))
    return out


def _point(at: dict | None, spec: _Spec) -> dict | None:
    if at is None:
        return None
    pt = {}
    for n, v in at.items():
        if n not in spec.arrays:
            raise ValueError(f"at= names {n!r}, which is not an input of f ({spec.names})")
        arr = spec.arrays[n]
        vals = tensor_values(v) if not is_number(v) else np.array(to_number(v), dtype=object)
        vals = np.broadcast_to(vals, arr.shape)
        for idx in np.ndindex(*arr.shape):
            pt[arr[idx]] = vals[idx]
    return pt


def check_gradient(f, claimed, *, wrt=None, inputs=None, at: dict | None = None,
                   seed: int = 0) -> GradientReport:
    """Prove a claimed gradient of ``f`` right, or show where it is wrong.

    ``f``: a formula string (``"x**2 + 3*x*y + y**2"``), a SymPy expression, or a callable over
    symad tensors returning a scalar (``inputs=`` gives example tensors for non-scalar
    parameters). ``claimed``: a dict name -> formula/expression, or name -> number (a claimed
    *value* at the point ``at=``), or a callable with f's parameters returning one gradient per
    input (like a hand-written backward).

    >>> r = check_gradient("x**2 + 3*x*y + y**2", {"x": 10, "y": 13}, at={"x": 2, "y": 3})
    >>> r.ok, r["x"].exact_value, r["y"].exact_value
    (False, 13, 12)
    """
    claimed_names = list(claimed) if isinstance(claimed, dict) else []
    if isinstance(wrt, str):
        wrt = [wrt]
    spec = _spec_from(f, inputs, (wrt or []) + claimed_names if not callable(f) else None)
    if wrt is None:
        wrt = [n for n in spec.names if n in claimed] if isinstance(claimed, dict) \
            else list(spec.names)
    for n in wrt:
        if n not in spec.arrays:
            raise ValueError(f"{n!r} is not an input of f (inputs: {spec.names})")
    variables = spec.symbols()
    grads = gradient(spec.expr, variables)
    exact_of = dict(zip(variables, grads))
    exact: dict[str, np.ndarray] = {}
    for n in wrt:
        arr = spec.arrays[n]
        e = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(*arr.shape):
            e[idx] = exact_of[arr[idx]]
        exact[n] = e
    claims = _claims(claimed, spec, wrt)
    point = _point(at, spec)
    report = GradientReport(f=spec.display, title="check_gradient")
    rng = random.Random(seed)
    for n in wrt:
        if n not in claims:
            report.notes.append(f"no claim given for {n}")
            continue
        c = claims[n]
        if not isinstance(c, np.ndarray):  # a bare number
            c = np.array(c, dtype=object)
            if point is not None:
                report.items.append(_value_item(n, exact[n][()], c[()], point, exact, spec))
                continue
        report.items.extend(_compare_input(n, exact[n], c, spec, variables, point, exact, rng,
                                           seed))
    if not report.items:
        raise ValueError("nothing to check: claimed names none of f's inputs")
    return report


def _one_sided(e, var, point):
    """The one-sided limits of the derivative ``e`` in ``var`` at ``point`` (others fixed)."""
    from .decide import to_piecewise
    rest = {k: v for k, v in point.items() if k != var}
    g = to_piecewise(sp.sympify(e).xreplace(rest))
    p = sp.sympify(point[var])
    eps = sp.Rational(1, 10 ** 30)
    out = []
    for side in (1, -1):
        branch = g
        if isinstance(g, sp.Piecewise):
            # the branch active just beside p; branches are continuous up to their boundary
            near = {var: p + side * eps}
            branch = next((ex for ex, cond in g.args if bool(cond.xreplace(near))), None)
            if branch is None:
                return None
        try:
            v = sp.sympify(branch).xreplace({var: p})
            if v.has(sp.nan, sp.zoo) or not v.is_number:
                v = sp.limit(branch, var, p, "+" if side > 0 else "-")
        except (NotImplementedError, ValueError, TypeError):
            return None
        out.append(v)
    return out


def _value_item(n, e, c, point, exact, spec) -> GradientItem:
    from .decide import kink_expressions
    ev = exact_value(e, point)
    eq = ev is not None and sp.simplify(ev - c) == 0
    it = GradientItem(name=n, exact=e, claimed=c, equal=bool(eq), proved=True,
                      method="exact evaluation at the given point", at=_named(point),
                      exact_value=ev, claimed_value=c)
    on_kink = [k for k in kink_expressions(spec.expr, e) if exact_value(k, point) == 0]
    if on_kink:
        var = spec.arrays[n][()]
        lims = _one_sided(e, var, point)
        note = (f"f is not differentiable at this point ({on_kink[0]} = 0); the exact value "
                f"shown is PyTorch's convention")
        if lims is not None and all(x.is_real for x in lims):
            lo, hi = min(lims), max(lims)
            note += f"; the one-sided derivatives in {n} are {lims[1]} (left) and {lims[0]} (right)"
            if not eq and lo <= c <= hi:
                it.equal = True
                note += "; the claimed value lies between them (a valid subgradient choice)"
        it.hint = note
        if it.equal:
            return it
    if not eq:
        it.residual = None if ev is None else sp.nsimplify(ev - c)
        it.counterexample = Counterexample(_named(point), ev, c)
        for other, arr in exact.items():
            if it.hint is None and other != n and arr.shape == ():
                ov = exact_value(arr[()], point)
                if ov is not None and sp.simplify(ov - c) == 0:
                    it.hint = (f"the claimed value {c} is ∂f/∂{other} at this point: "
                               f"components swapped or wrong variable?")
        if it.hint is None and ev is not None and ev != 0 and c == -ev:
            it.hint = "sign flip: claimed = −exact"
    return it


def _named(point: dict) -> dict:
    return {str(k): v for k, v in point.items()}


def _compare_input(n, e, c, spec, variables, point, exact_all, rng, seed) -> list[GradientItem]:
    if c.shape != e.shape:
        try:
            c_b = np.broadcast_to(c, e.shape) if c.shape == () else None
        except ValueError:
            c_b = None
        if c_b is None:
            return [_shape_mismatch_item(n, e, c, spec, variables, rng)]
        c = np.array(c_b, dtype=object)
    items = []
    t_hints = None
    for idx in np.ndindex(*e.shape):
        name = _elem_name(n, idx)
        v = compare(e[idx], c[idx], variables, seed=seed, f=spec.expr)
        it = GradientItem(name=name, exact=_show(e[idx]), claimed=c[idx], equal=v.equal,
                          proved=v.proved, residual=v.residual if v.equal is not True else
                          sp.S.Zero, counterexample=v.counterexample, method=v.method)
        if v.kink_note:
            it.hint = v.kink_note
            it.residual = v.residual
        if v.equal is False:
            if t_hints is None:
                t_hints = transpose_hints(n, e, c, spec.arrays, variables, rng)
            it.hint = t_hints or scalar_hint(e[idx], c[idx], variables,
                                             {k: a for k, a in exact_all.items() if k != n},
                                             rng)
        if point is not None:
            it.at = _named(point)
            it.exact_value = exact_value(e[idx], point)
            it.claimed_value = exact_value(c[idx], point)
        items.append(it)
    return items


def _show(e):
    from .decide import is_piecewise
    if is_piecewise(sp.sympify(e)):
        return e  # simplify on Piecewise is slow and rarely clearer
    try:
        from ..symbolic.reverse import display_simplify
        return display_simplify(e)
    except ImportError:  # pragma: no cover
        return e


def _shape_mismatch_item(n, e, c, spec, variables, rng) -> GradientItem:
    hint = transpose_hints(n, e, c, spec.arrays, variables, rng) or \
        broadcast_sum_hint(e, c, variables, rng)
    pt = next(iter(sample_points(variables, rng, 1, validity=[spec.expr])), None) or {}
    ev = np.vectorize(lambda x: exact_value(x, pt), otypes=[object])(e)
    cv = np.vectorize(lambda x: exact_value(x, pt), otypes=[object])(c)
    return GradientItem(
        name=n, exact=sp.Array(e.tolist()) if e.ndim else e[()],
        claimed=sp.Array(c.tolist()) if c.ndim else c[()], equal=False, proved=True,
        residual=None, method=f"shapes differ: exact {e.shape}, claimed {c.shape}",
        counterexample=Counterexample(_named(pt), sp.Array(ev.tolist()) if ev.ndim else ev[()],
                                      sp.Array(cv.tolist()) if cv.ndim else cv[()]),
        hint=hint or f"the claimed gradient has shape {c.shape}; the input {n} has shape "
        f"{e.shape}")


# ---------------------------------------------------------------------------------------------
# custom autograd.Function

def check_function(function_cls, *example_inputs, seed: int = 0) -> GradientReport:
    """Check a custom ``autograd.Function``'s backward against the exact derivative of its
    forward, for all inputs and all incoming gradients: both are traced on symbolic tensors
    shaped like ``example_inputs`` (:func:`symad.symbolic.trace_function_backward`).

    A backward that reads a value not passed through ``ctx`` (a global) is caught: its traced
    gradient holds a constant where the exact one depends on an input.
    """
    from ..symbolic import trace_function_backward
    tr = trace_function_backward(function_cls, *example_inputs)
    arrays: dict[str, np.ndarray] = {}
    for nm, sym in zip(tr.input_names, tr.inputs):
        if sym is not None:
            arrays[nm] = _as_array(sym, None)
    g_syms = [s for g in tr.grad_outputs for s in _as_array(g, None).reshape(-1)]
    in_syms = [s for a in arrays.values() for s in a.reshape(-1)]
    variables = in_syms + g_syms
    report = GradientReport(f=f"{function_cls.__name__} (forward vs backward)",
                            title="check_function")
    for nm, sym, got, want in zip(tr.input_names, tr.inputs, tr.grads, tr.expected):
        if sym is None or want is None:
            continue
        arr = arrays[nm]
        e = _as_array(want, arr.shape)
        if got is None:
            c = np.empty(arr.shape, dtype=object)
            c[...] = sp.S.Zero
            report.notes.append(f"backward returned None for {nm}: treated as a zero gradient")
        else:
            c = tensor_values(np.asarray(_as_array(got, None), dtype=object))
            if c.size == arr.size and c.shape != arr.shape:
                c = c.reshape(arr.shape)
        if c.shape != e.shape:
            report.items.append(_shape_mismatch_item(
                nm, e, c, _Spec("", sp.S.Zero, list(arrays), arrays, {}), variables,
                random.Random(seed)))
            continue
        for idx in np.ndindex(*e.shape):
            v = compare(e[idx], c[idx], variables, seed=seed)
            it = GradientItem(name=_elem_name(nm, idx), exact=_show(e[idx]), claimed=c[idx],
                              equal=v.equal, proved=v.proved, residual=v.residual,
                              counterexample=v.counterexample, method=v.method,
                              hint=v.kink_note)
            if v.equal is False:
                it.hint = _ignored_input_hint(e[idx], c[idx], arrays, g_syms) or scalar_hint(
                    e[idx], c[idx], variables, {}, random.Random(seed))
            report.items.append(it)
            if it.hint and "does not use input" in it.hint:
                note = it.hint.split(" — ")[0]
                if note not in report.notes:
                    report.notes.append(note)
    return report


def _as_array(m, shape) -> np.ndarray:
    """A traced value (Expr, Matrix, ndarray) as an object array (of ``shape`` if given)."""
    if isinstance(m, sp.MatrixBase):
        a = np.array(m.tolist(), dtype=object)
    else:
        a = np.asarray(m, dtype=object) if isinstance(m, np.ndarray) else \
            np.array(sp.sympify(m), dtype=object)
    if shape is not None and a.shape != tuple(shape) and a.size == int(np.prod(shape)):
        a = a.reshape(shape)
    elif shape is None and a.ndim == 2 and a.shape[1] == 1 and isinstance(m, sp.MatrixBase):
        a = a.reshape(-1)  # 1-d tensors trace to column matrices
    return a


def _ignored_input_hint(exact, traced, arrays, g_syms) -> str | None:
    """The gradient lacks an input symbol the exact one has: the backward used a constant (a
    global, or a value captured when the class was defined) instead of that input."""
    exact = sp.sympify(exact)
    traced = sp.sympify(traced)
    missing = sorted((exact.free_symbols - traced.free_symbols) - set(g_syms), key=str)
    if not missing:
        if any(g in exact.free_symbols for g in g_syms) and \
                not any(g in traced.free_symbols for g in g_syms):
            return "the backward ignores grad_output (chain rule: multiply by it)"
        return None
    owners = []
    for s in missing:
        for nm, arr in arrays.items():
            if s in set(arr.reshape(-1)):
                owners.append((nm, s))
    if not owners:
        return None
    nm, s = owners[0]
    used = None
    if len(missing) == 1:
        try:
            sols = sp.solve(sp.Eq(exact, traced), s)
        except (NotImplementedError, TypeError, ValueError):
            sols = []
        consts = [x for x in sols if x.is_number]
        if len(consts) == 1:
            used = consts[0]
    what = f"the constant {used}" if used is not None else "a constant"
    return (f"the backward does not use input {nm!r} ({s}), which the exact gradient depends on; "
            f"it uses {what} in its place — a value not passed through ctx (a global variable "
            f"or one captured when the class was defined?). Save {nm} with "
            f"ctx.save_for_backward and read it from ctx.saved_tensors.")


_ = (Callable, fmt_number)
