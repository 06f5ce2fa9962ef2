"""``check_gradient`` and ``check_function``: exact gradient verification.

>>> r = check_gradient("x**2 + 3*x*y + y**2", {"x": "2*x + 3*y", "y": "3*x + 2*y"})
>>> r.ok, r.proved
(True, True)
"""
from __future__ import annotations

import contextlib
import inspect
import random
from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp

from .._exact import exact_constants
from .budget import Budget
from .decide import Counterexample, exact_value, fmt_number, sample_points
from .hints import broadcast_sum_hint, numeric_hint, transpose_hints
from .pipeline import decide_elements, points_for, prove_items
from .report import GradientItem, GradientReport
from .symbolic_inputs import (exactify, gradient, is_number, parameters, parse, realify,
                              real_symbols_for, tensor_values, to_number)

__all__ = ["check_gradient", "check_function"]


class _Spec:
    """f in SymPy: its scalar expression, input names, and each input's symbol array."""

    def __init__(self, display, expr, names, arrays, tensors, fixed=None) -> None:
        self.display = display
        self.fixed: dict[str, Any] = dict(fixed or {})   # constant inputs: name -> value
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


def _params(fn) -> list:
    return [p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _as_tensor(v):
    from ..tensor import Tensor
    return Tensor._wrap(np.asarray(v)) if isinstance(v, np.ndarray) else v


def _exact_constant(v):
    """A floating constant input as an exact tensor (each float as :func:`exact_float`)."""
    from .. import float64
    from ..tensor import Tensor
    data = v._data if isinstance(v, Tensor) else np.asarray(v)
    if data.dtype.kind != "f":
        return v
    out = np.empty(data.shape, dtype=object)
    for idx in np.ndindex(*data.shape):
        out[idx] = to_number(float(data[idx]))
    return Tensor._wrap(out, float64)


def _spec_from(f, inputs, claimed_names, constants=()) -> _Spec:
    if isinstance(f, str) or isinstance(f, sp.Basic):
        if isinstance(f, str):
            expr = parse(f)
        else:
            expr = realify(exactify(f))
        names = sorted({s.name for s in expr.free_symbols} | set(claimed_names or ()))
        syms = real_symbols_for(names)
        expr = realify(expr, syms)
        arrays = {n: np.array(syms[n], dtype=object) for n in names}
        spec = _Spec(f if isinstance(f, str) else str(f), expr, names, arrays, {})
        spec.all_names = names
        return spec
    if callable(f):
        from ..symbolic import trace
        given: dict[str, Any] = {}
        if isinstance(inputs, dict):
            given = dict(inputs)
        elif inputs is not None:
            seq = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
            given = dict(zip(parameters(f), seq))
        # parameters with a default that no input names (reg=0.1) keep their default
        names = [p.name for p in _params(f) if p.name in given or p.default is p.empty]
        unknown = [n for n in constants if n not in names]
        if unknown:
            raise ValueError(f"constants= names {unknown}, which are not inputs of "
                             f"{_name(f)} ({names})")
        # scalars without an example are traced from a float stand-in (any value will do);
        # constants become exact rationals, so both sides compute with them in one arithmetic
        examples = [_exact_constant(given.get(n, 0.0)) if n in constants else given.get(n, 0.0)
                    for n in names]
        # element-level SymPy on purpose (verification compares elements), at any size
        tr = trace(f, *examples, names=names, constants=list(constants), _elements=True)
        data = tr.output_arrays[0] if tr.output_arrays else np.array([])
        if len(tr.output_arrays) != 1 or np.size(data) != 1:
            raise ValueError(f"check_gradient needs a scalar-valued f; {_name(f)} returned shape "
                             f"{tuple(np.shape(data))} (reduce it, e.g. with .sum())")
        expr = exactify(sp.sympify(np.asarray(data, dtype=object).reshape(-1)[0]))
        arrays = {v.name: np.asarray(v.symbols, dtype=object) for v in tr.variables
                  if v.name in names}
        fixed = {n: _as_tensor(ex) for n, ex in zip(names, examples) if n not in arrays}
        tensors = {n: symbolic_tensor_from(arrays[n]) for n in names if n in arrays}
        spec = _Spec(_name(f), expr, [n for n in names if n in arrays], arrays, tensors, fixed)
        spec.all_names = names
        return spec
    raise TypeError(f"f must be a formula string, a SymPy expression or a callable, not "
                    f"{type(f).__name__}")


def symbolic_tensor_from(arr: np.ndarray):
    from .. import float64
    from ..tensor import Tensor
    return Tensor._wrap(np.asarray(arr, dtype=object), float64)


def _name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _claims(claimed, spec: _Spec, wrt: list[str]) -> dict[str, Any]:
    """name -> object array (claimed gradient per element), or a number (value at ``at``)."""
    from ..tensor import Tensor
    table = spec.table()
    out: dict[str, Any] = {}
    if callable(claimed) and not isinstance(claimed, (dict, sp.Basic)):
        avail = {n: spec.tensors[n] if n in spec.tensors else _scalar_tensor(spec.arrays[n])
                 for n in spec.names}
        avail.update(spec.fixed)
        res = _call_claimed(claimed, avail, spec.all_names)
        every = spec.all_names
        if isinstance(res, dict):
            missing = [n for n in wrt if n not in res]
            if missing:
                raise ValueError(f"the claimed gradient dict has no entry for {missing}")
            seq = [res[n] for n in wrt]
        elif isinstance(res, (tuple, list)):
            seq = list(res)
            if len(seq) == len(every) and len(wrt) != len(every):
                seq = [seq[every.index(n)] for n in wrt]
            elif len(seq) == len(spec.names) and len(wrt) != len(spec.names):
                seq = [seq[spec.names.index(n)] for n in wrt]
        else:
            seq = [res]
        if len(seq) != len(wrt):
            raise ValueError(f"the claimed gradient function returned {len(seq)} gradient(s); "
                             f"expected one per input in {wrt} (or one per parameter of f, "
                             f"{every}, with None for those not checked)")
        for n, g in zip(wrt, seq):
            out[n] = None if g is None else _claim_value(g, table)
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


def _call_claimed(fn, avail: dict, order: list):
    """Call a claimed backward with f's inputs: by parameter name when its names are f's,
    else positionally; parameters with defaults it does not share with f keep them."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return fn(*[avail[n] for n in order])
    P = inspect.Parameter
    if any(p.kind == P.VAR_POSITIONAL for p in params):
        return fn(*[avail[n] for n in order])
    required = [p for p in params if p.default is P.empty and p.kind != P.VAR_KEYWORD]
    if all(p.name in avail for p in required):
        kw = {p.name: avail[p.name] for p in params if p.name in avail
              and p.kind != P.POSITIONAL_ONLY}
        pos = [avail[p.name] for p in params if p.kind == P.POSITIONAL_ONLY]
        return fn(*pos, **kw)
    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    if len(required) == len(order) and all(p in positional for p in required):
        return fn(*[avail[n] for n in order])
    missing = [p.name for p in required if p.name not in avail]
    raise TypeError(f"the claimed gradient function {_name(fn)} needs {missing}, which are not "
                    f"inputs of f ({order}); name its parameters like f's (extra ones need "
                    f"a default)")


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
                   constants: Sequence[str] | str | None = None, seed: int = 0,
                   timeout: float | None = 30.0) -> GradientReport:
    """Prove a claimed gradient of ``f`` right, or show where it is wrong.

    ``f``: a formula string (``"x**2 + 3*x*y + y**2"``), a SymPy expression, or a callable over
    symad tensors returning a scalar (``inputs=`` gives example tensors for non-scalar
    parameters; numpy functions work on them: ``np.maximum(0, x)``, ``np.where``, masks).
    ``claimed``: a dict name -> formula/expression, or name -> number (a claimed *value* at the
    point ``at=``), or a callable with f's parameters returning one gradient per input (like a
    hand-written backward; ``None`` for an input not differentiated).
    ``constants``: inputs held at their example values (masks, labels): not differentiated.
    ``timeout``: seconds for the verdict; hints and display simplification get what is left.

    The verdict rests on a symbolic proof, on a counterexample (exact evaluation at a random
    rational point), or (graded lower) on equality at k random exact points; ``report.seconds``
    is the time it took.

    >>> r = check_gradient("x**2 + 3*x*y + y**2", {"x": 10, "y": 13}, at={"x": 2, "y": 3})
    >>> r.ok, r["x"].exact_value, r["y"].exact_value
    (False, 13, 12)
    """
    budget = Budget(timeout)
    constants = [constants] if isinstance(constants, str) else list(constants or [])
    claimed_names = list(claimed) if isinstance(claimed, dict) else []
    if isinstance(wrt, str):
        wrt = [wrt]
    with exact_constants():
        spec = _spec_from(f, inputs, (wrt or []) + claimed_names if not callable(f) else None,
                          constants if callable(f) else ())
    if wrt is None:
        wrt = [n for n in spec.names if n in claimed] if isinstance(claimed, dict) \
            else list(spec.names)
    wrt = [n for n in wrt if n not in constants]
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
    with exact_constants():
        claims = _claims(claimed, spec, wrt)
    point = _point(at, spec)
    report = GradientReport(f=spec.display, title="check_gradient")
    rng = random.Random(seed)
    points = None
    pending: list = []
    for n in wrt:
        if n not in claims:
            report.notes.append(f"no claim given for {n}")
            continue
        c = claims[n]
        if c is None:
            report.notes.append(f"the claimed backward returned None for {n}: a zero gradient, "
                                f"as in PyTorch (mark {n} constant, constants=[{n!r}], if it is "
                                f"not differentiated)")
            c = np.full(exact[n].shape, sp.S.Zero, dtype=object)
        if not isinstance(c, np.ndarray):  # a bare number
            c = np.array(c, dtype=object)
            if point is not None:
                report.items.append(_value_item(n, exact[n][()], c[()], point, exact, spec))
                continue
        e = exact[n]
        if c.shape != e.shape:
            if c.shape == () and not callable(claimed):
                c = np.array(np.broadcast_to(c, e.shape), dtype=object)
            else:
                report.items.append(_shape_mismatch_item(n, e, c, spec, variables, rng))
                continue
        if points is None:
            extra = [x for cc in claims.values() if isinstance(cc, np.ndarray)
                     for x in cc.reshape(-1)[:4]]
            points = points_for(variables, rng, 3, f=spec.expr, extra=extra, budget=budget)
        items = decide_elements(n, e, c, variables, f=spec.expr, budget=budget, seed=seed,
                                points=points, arrays=spec.arrays, prove=False)
        pending.append((items, e.shape))
        if point is not None:
            for it, idx in zip(items, np.ndindex(*e.shape)):
                it.at = _named(point)
                it.exact_value = exact_value(e[idx], point)
                it.claimed_value = exact_value(c[idx], point)
        report.items.extend(items)
    if not report.items:
        raise ValueError("nothing to check: claimed names none of f's inputs")
    _prove_unless_refuted(report, pending, spec.arrays, budget)
    report.seconds = budget.elapsed()
    # after the verdict: hints and display, each within what is left (and a few seconds)
    _hints(report, exact, claims, spec, variables, points or [], budget, rng)
    _display(report, budget)
    return report


def _prove_unless_refuted(report, pending, arrays, budget) -> None:
    """Symbolic proofs for the elements equal at the random points, unless some component is
    already refuted (one counterexample decides the claim; the rest stay "equal at k points,
    proof skipped")."""
    if any(it.equal is False and it.proved for it in report.items):
        for items, _ in pending:
            for it in items:
                if it.equal is True and not it.proved:
                    it.method = it.method.replace("no symbolic proof attempted",
                                                  "proof skipped: the claim is already refuted")
        return
    for items, shape in pending:
        prove_items(items, shape, arrays, budget)


def _after(budget: Budget, cap: float) -> Budget:
    return Budget(max(0.0, min(cap, budget.remaining())))


def _hints(report, exact, claims, spec, variables, points, budget, rng) -> None:
    hb = _after(budget, 1.5)
    t_hint: dict[str, str | None] = {}
    for it in report.items:
        n = it.name.split("[", 1)[0]
        if it.equal is not False or it.hint or n not in exact or \
                not isinstance(claims.get(n), np.ndarray):
            continue
        if hb.expired():
            break
        with hb.step() as ok:
            if n not in t_hint:
                t_hint[n] = None
                c = claims[n]
                if c.shape == exact[n].shape:
                    t_hint[n] = transpose_hints(n, exact[n], c, spec.arrays, variables, rng)
            hint = t_hint[n]
            if hint is None:
                pts = ([dict((s, it.counterexample.point.get(str(s))) for s in variables)]
                       if it.counterexample is not None else []) + list(points)
                pts = [p for p in pts if all(v is not None for v in p.values())]
                others = {k: a for k, a in exact.items() if k != n}
                try:
                    hint = numeric_hint(it.exact, it.claimed, pts[:3], others)
                except (ArithmeticError, TypeError, ValueError):
                    hint = None  # a hint is a courtesy: it never spoils the verdict
            it.hint = hint
        _ = ok


def _display(report, budget) -> None:
    """Simplify small exact gradients and residuals for display, within a short budget."""
    db = _after(budget, 0.5)
    for it in report.items:
        if db.expired():
            break
        if it.equal is False and it.residual is None and isinstance(it.exact, sp.Expr) \
                and isinstance(it.claimed, sp.Expr):
            r = sp.sympify(it.exact) - sp.sympify(it.claimed)
            it.residual = r
            if sp.count_ops(r) < 60:
                with db.step(0.5) as ok:
                    it.residual = sp.simplify(r)
                _ = ok
        if isinstance(it.exact, sp.Expr) and sp.count_ops(it.exact) < 40:
            with db.step(0.3) as ok:
                it.exact = _show(it.exact)
            _ = ok


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

def check_function(function_cls, *example_inputs, constants: Sequence[str | int] = (),
                   seed: int = 0, timeout: float | None = 30.0) -> GradientReport:
    """Check a custom ``autograd.Function``'s backward against the exact derivative of its
    forward, for all inputs and all incoming gradients: both are traced on symbolic tensors
    shaped like ``example_inputs`` (:func:`symad.symbolic.trace_function_backward`).

    Both sides are compared in one arithmetic (float constants such as ``eps = 1e-5`` are the
    same exact numbers on both). Inputs named (or numbered) in ``constants``, and, when some
    example inputs require grad, the floating ones that do not, are not differentiated; a
    ``None`` gradient for them is PyTorch's convention. A wrong-shaped gradient (a transposed
    ``dw``) is reported with both shapes, never reshaped.

    A backward that reads a value not passed through ``ctx`` (a global) is caught: its traced
    gradient holds a constant where the exact one depends on an input.
    """
    from ..symbolic import trace_function_backward
    from ..tensor import Tensor
    budget = Budget(timeout)
    with exact_constants():
        tr = trace_function_backward(function_cls, *example_inputs)
    any_rg = any(isinstance(x, Tensor) and x.requires_grad for x in example_inputs)
    skip = set()
    for k, (nm, x) in enumerate(zip(tr.input_names, example_inputs)):
        if nm in constants or k in constants or (any_rg and isinstance(x, Tensor)
                                                 and not x.requires_grad):
            skip.add(nm)
    arrays: dict[str, np.ndarray] = {}
    for nm, sym in zip(tr.input_names, tr.inputs):
        if sym is not None:
            arrays[nm] = _as_array(sym, None)
    g_syms = [s for g in tr.grad_outputs for s in _as_array(g, None).reshape(-1)]
    in_syms = [s for a in arrays.values() for s in a.reshape(-1)]
    variables = in_syms + g_syms
    report = GradientReport(f=f"{function_cls.__name__} (forward vs backward)",
                            title="check_function")
    rng = random.Random(seed)
    points = None
    spec = _Spec("", sp.S.Zero, list(arrays), arrays, {})
    pending: list = []
    to_prove: list = []
    for nm, sym, got, want in zip(tr.input_names, tr.inputs, tr.grads, tr.expected):
        if sym is None or want is None:
            continue
        if nm in skip:
            if got is not None:
                report.notes.append(f"{nm} is constant: its gradient is not checked")
            continue
        arr = arrays[nm]
        e = _exact_array(_as_array(want, arr.shape))
        if got is None:
            c = np.full(arr.shape, sp.S.Zero, dtype=object)
            report.notes.append(f"backward returned None for {nm}: a zero gradient, as in "
                                f"PyTorch (mark {nm} constant, constants=[{nm!r}] or "
                                f"requires_grad=False, if it is not differentiated)")
        else:
            c = tensor_values(np.asarray(_as_array(got, None), dtype=object))
        if c.shape != e.shape:
            report.items.append(_shape_mismatch_item(nm, e, c, spec, variables, rng))
            continue
        if points is None:
            points = points_for(variables, rng, 3, budget=budget,
                                extra=list(e.reshape(-1)[:4]) + list(c.reshape(-1)[:4]))
        items = decide_elements(nm, e, c, variables, budget=budget, seed=seed, points=points,
                                arrays=arrays, prove=False)
        report.items.extend(items)
        to_prove.append((items, e.shape))
        pending.extend((it, got is None) for it in items)
    _prove_unless_refuted(report, to_prove, arrays, budget)
    report.seconds = budget.elapsed()
    hb = _after(budget, 1.5)
    for it, was_none in pending:
        if it.equal is not False or it.hint or hb.expired():
            continue
        with hb.step() as ok, _quiet():
            it.hint = (None if was_none else _ignored_input_hint(it.exact, it.claimed, arrays,
                                                                 g_syms)) or \
                numeric_hint(it.exact, it.claimed, ([_full_point(it.counterexample, variables)]
                                                    if it.counterexample else []) + points[:2])
        _ = ok
        if it.hint and "does not use input" in it.hint:
            note = it.hint.split(" — ")[0]
            if note not in report.notes:
                report.notes.append(note)
    _display(report, budget)
    return report


@contextlib.contextmanager
def _quiet():
    """Hints are a courtesy: an arithmetic failure while looking for one is ignored."""
    try:
        yield
    except (ArithmeticError, TypeError, ValueError):
        pass


def _full_point(ce, variables) -> dict:
    return {s: ce.point[str(s)] for s in variables if str(s) in ce.point}


def _exact_array(a: np.ndarray) -> np.ndarray:
    """The exact side in the claimed side's arithmetic: floats (eps = 1e-5) as rationals."""
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(*a.shape):
        out[idx] = exactify(a[idx])
    return out


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
