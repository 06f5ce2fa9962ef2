"""The verdict for one tensor gradient, cheapest step first, each step time-boxed:

1. **refute**: exact and claimed gradients are evaluated exactly (rationals; SymPy's certified
   ``evalf`` for transcendental values) at a few random rational points on the real tensor
   shapes. A difference beyond float rounding of constants is a counterexample.
2. **prove**: per element, the residual expands to 0, or its indicator form (kinks) is 0, or a
   short simplification ladder reaches 0. A proof for one element is carried to the elements that
   are the same expression up to renaming tensor indices (batch norm's ``dx[i, j]`` for all i, j).
   What is not proved within the budget keeps the graded verdict *equal at k random exact
   points*.
3. hints (in :mod:`symad.verify.check`) run only after the verdict, within their own budget.

>>> import numpy as np, sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> items = decide_elements("x", np.array(2 * x, dtype=object), np.array(x + x, dtype=object),
...                         [x], budget=Budget(5))
>>> items[0].equal, items[0].proved
(True, True)
"""
from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

import mpmath

import numpy as np
import sympy as sp

from .budget import Budget
from .evaluate import PointEvaluator, Undefined, Unsupported
from .decide import (Counterexample, compare, is_piecewise,
                     kink_expressions, sample_points, simplifies_to_zero)
from .indicators import (IndicatorForm, expands_or_cancels_to_zero, prove_generalized,
                         prove_indicator_identity, prove_piecewise)
from .report import GradientItem

# a relative residual below this at every point is float rounding of constants, not a mistake
ROUNDING = 1e-13
PRECISION = 90  # digits of the evaluation of transcendental values
# up to this many variables a claim is formula-sized: the scalar procedure runs first
SMALL = 8


def _elem_name(name: str, idx: tuple) -> str:
    return name if idx == () else f"{name}[{','.join(map(str, idx))}]"


def points_for(variables, rng: random.Random, n: int, *, f=None, extra=(), budget: Budget):
    """Up to ``n`` random rational points off the kink set of ``f`` (and of ``extra``), where f
    is defined. Tensors get random values at once (simple values would tie)."""
    kinks = kink_expressions(*(e for e in (f, *extra) if e is not None))
    variables = list(variables)
    out: list[dict] = []
    with budget.step() as ok:
        if len(variables) <= SMALL:
            cands = sample_points(variables, rng, 4 * n + 8)
        else:
            cands = ({v: _random_rational(rng) for v in variables} for _ in range(12 * n + 12))
        for pt in cands:
            pe = PointEvaluator(pt)
            if f is not None and value_at(f, pt, pe)[0] is None:
                continue
            if any(value_at(k, pt, pe)[1] in (None, 0) for k in kinks):
                continue
            out.append(pt)
            if len(out) == n:
                break
    _ = ok
    return out


def _random_rational(rng: random.Random):
    """A random rational of moderate size (|v| < 3: no saturated tanh/exp), small
    denominator; distinct variables rarely tie."""
    q = rng.choice((5, 7, 9, 11, 13))
    return sp.Rational(rng.choice([-1, 1]) * rng.randint(1, 3 * q - 1), q)


def value_at(expr, pt, ev: PointEvaluator | None = None) -> tuple:
    """(value for the report, value for comparison) of ``expr`` at a rational point, or
    (None, None) where it is undefined or not real. Rational values are exact (``Fraction``);
    transcendental ones are compared as ~90-digit mpmath numbers."""
    ev = ev or PointEvaluator(pt)
    try:
        v = ev.value(expr)
    except Undefined:
        return None, None
    except Unsupported:
        return _sympy_value_at(expr, pt)
    if isinstance(v, Fraction):
        r = sp.Rational(v.numerator, v.denominator)
        return r, r
    return sp.Float(mpmath.nstr(v, 30), 30), v


def _sympy_value_at(expr, pt) -> tuple:
    try:
        v = expr.xreplace(pt)
        if not v.is_number:
            v = expr.subs(pt)
    except (ZeroDivisionError, TypeError, ValueError):
        return None, None
    if v.is_Rational:
        return v, v
    if not v.is_number or v.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        return None, None
    try:
        n = v.evalf(PRECISION + 20)
    except (TypeError, ValueError):
        return None, None
    if not n.is_real:
        re, im = n.as_real_imag()
        if not im.is_number or abs(float(im)) > 1e-30 or not re.is_number:
            return None, None
        n = re
    if not n.is_Number:
        return None, None
    return v, n


def _gap(en, cn) -> float:
    """|en − cn| relative to the larger magnitude, with a floor far below float resolution
    (noise of the 90-digit evaluation in a value that is exactly 0 is no difference)."""
    with mpmath.workprec(320):
        en, cn = (mpmath.mpf(x.numerator) / x.denominator if isinstance(x, Fraction) else
                  mpmath.mpf(x) for x in (en, cn))
        return float(abs(en - cn) / (max(abs(en), abs(cn)) + mpmath.mpf(10) ** -50))


def decide_elements(name: str, e: np.ndarray, c: np.ndarray, variables, *, f=None,
                    budget: Budget, seed: int = 0, n_points: int = 3,
                    points: list | None = None, arrays: dict | None = None,
                    prove: bool = True) -> list[GradientItem]:
    """Verdicts for every element of one input's gradient (``e`` exact, ``c`` claimed, object
    arrays of the same shape). ``prove=False`` stops after the refutation step (then
    :func:`prove_items`)."""
    rng = random.Random(seed)
    idxs = list(np.ndindex(*e.shape))
    ex = {i: sp.sympify(e[i]) for i in idxs}
    cl = {i: sp.sympify(c[i]) for i in idxs}
    state: dict[tuple, dict[str, Any]] = {i: {} for i in idxs}
    # 0. the same expression on both sides
    todo = []
    for i in idxs:
        if ex[i] == cl[i]:
            state[i].update(equal=True, proved=True, method="identical expressions")
        else:
            todo.append(i)
    if len(variables) <= SMALL and e.shape == () and todo:
        todo = _small(ex, cl, todo, state, variables, f, budget, seed)
    if points is None:
        pw_extra = [ex[i] for i in todo if is_piecewise(ex[i])][:4] + \
            [cl[i] for i in todo if is_piecewise(cl[i])][:4]
        points = points_for(variables, rng, n_points, f=f, extra=pw_extra, budget=budget) \
            if todo else []
    # 1. refute at exact points
    seen = {i: 0 for i in todo}
    rounding = {i: 0.0 for i in todo}
    with budget.step() as ok:
        for pt in points:
            pe = PointEvaluator(pt)
            for i in todo:
                if "equal" in state[i]:
                    continue
                ev, en = value_at(ex[i], pt, pe)
                if ev is None:
                    continue
                cv, cn = value_at(cl[i], pt, pe)
                if cv is None:
                    state[i].update(equal=False, proved=True, counterexample=Counterexample(
                        pt, ev, None), method="the claim is undefined at a point where f is "
                        "differentiable")
                    continue
                if ev.is_Rational and cv.is_Rational:
                    gap = 0.0 if ev == cv else _gap(ev, cv)
                    exact_diff = ev != cv
                else:
                    gap = _gap(en, cn)
                    exact_diff = gap > 1e-40
                if not exact_diff:
                    seen[i] += 1
                    continue
                if gap < ROUNDING:
                    seen[i] += 1
                    rounding[i] = max(rounding[i], gap)
                    continue
                how = ("exact evaluation at a random rational point" if ev.is_Rational and
                       cv.is_Rational else f"{PRECISION}-digit evaluation at a random rational "
                       f"point")
                state[i].update(equal=False, proved=True,
                                counterexample=Counterexample(pt, ev, cv),
                                method=f"refuted: {how}")
    refuting = ok[0]
    # 2. what is left is equal at the points; proofs follow (here, or after every input's
    #    refutation step in check_gradient: one counterexample already decides a claim)
    for i in todo:
        st = state[i]
        if "equal" in st:
            continue
        if not refuting:
            st.update(equal=None, proved=False, method=f"undecided within the time budget "
                      f"({budget.elapsed():.1f} s)")
        elif rounding[i] > 0:
            st.update(equal=True, proved=False, method=f"equal up to float rounding of constants "
                      f"(relative residual ≤ {rounding[i]:.1e} at {seen[i]} random exact points)",
                      rounding=True)
        elif seen[i] == 0:
            st.update(equal=None, proved=False, method="undecided: no random point where both "
                      "sides are defined")
        else:
            st.update(equal=True, proved=False, method=f"equal at {seen[i]} random exact points "
                      f"(no symbolic proof attempted)")
    items = []
    for i in idxs:
        st = state[i]
        items.append(GradientItem(
            name=_elem_name(name, i), exact=ex[i], claimed=cl[i], equal=st["equal"],
            proved=st["proved"], residual=st.get("residual", sp.S.Zero if st["equal"] else None),
            counterexample=st.get("counterexample"), method=st["method"],
            hint=st.get("hint")))
        if st.get("rounding"):
            items[-1].hint = ("the two sides differ only by float rounding of constants (folded "
                              "in floating point on one side, exact on the other)")
    if prove:
        prove_items(items, e.shape, arrays, budget)
    return items


def prove_items(items: list[GradientItem], shape: tuple, arrays: dict | None,
                budget: Budget) -> None:
    """Upgrade "equal at k random exact points" items (in ``np.ndindex(shape)`` order) to
    symbolic proofs where one is found within the budget."""
    proved_refs: list[tuple[tuple, sp.Expr]] = []
    form = IndicatorForm()
    for i, it in zip(np.ndindex(*shape), items):
        if not (it.equal is True and not it.proved and it.method.endswith("attempted)")):
            continue
        how = None
        if not budget.expired():
            r = sp.sympify(it.exact) - sp.sympify(it.claimed)
            how = _transfer(r, i, proved_refs, arrays, shape)
            if how is None:
                how = prove_zero(r, budget, form=form)
        if how is not None:
            it.proved, it.method = True, how
            if "same expression up to" not in how:
                proved_refs.append((i, r))
        else:
            it.method = it.method.replace("no symbolic proof attempted",
                                          "no symbolic proof found within the time budget")


def _small(ex, cl, todo, state, variables, f, budget, seed) -> list:
    """Formula-sized claims (few variables): the complete scalar procedure of
    :func:`symad.verify.decide.compare` (far piecewise branches, kink probing, 50-digit
    numerics), each within the budget; what it cannot finish goes through the tensor steps."""
    rest = []
    for i in todo:
        v = None
        with budget.step(min(8.0, budget.remaining())) as ok:
            v = compare(ex[i], cl[i], variables, seed=seed, f=f)
        if not ok[0] or v is None or v.equal is None:
            rest.append(i)
            continue
        st = state[i]
        st.update(equal=v.equal, proved=v.proved, method=v.method,
                  counterexample=v.counterexample)
        if v.kink_note:
            st.update(hint=v.kink_note, residual=v.residual)
        elif v.equal is False:
            st["residual"] = v.residual
    return rest


def prove_zero(r, budget: Budget, step: float = 4.0, form=None) -> str | None:
    """A method string when ``r`` is provably 0 (almost everywhere), else None."""
    r = sp.sympify(r)
    if r == 0:
        return "identical expressions"
    how = None
    if is_piecewise(r):
        with budget.step(step) as ok:
            how = prove_generalized(r, zero=_cheap_zero)
            if how is None:
                how = prove_indicator_identity(r, form=form, zero=_cheap_zero)
            if how is None:
                how = prove_piecewise(r, zero=_cheap_zero, form=form)
        _ = ok
        return how
    if r.has(sp.Pow) and any(_half_power(p) for p in r.atoms(sp.Pow)):
        with budget.step(step) as ok:
            if _algebraic_zero(r):
                return "the residual is 0 with each square root as a symbol s, s² = its radicand"
    with budget.step(step) as ok:
        if sp.expand(r) == 0:
            return "the residual expands to 0"
        if sp.cancel(sp.together(r)) == 0:
            return "the residual cancels to 0"
    _ = ok
    with budget.step(step) as ok:
        if simplifies_to_zero(r):
            return "the residual simplifies to 0"
    return None


def _half_power(p) -> bool:
    return p.exp.is_Rational and p.exp.q == 2 and not p.base.is_number


def _algebraic_zero(e) -> bool:
    """0 once every square root sqrt(S) is a positive symbol s: the numerator, a polynomial in
    the s, vanishes modulo s² − S (batch norm's 1/sqrt(var + eps) and its powers; expanding
    the same residual directly costs ~50x more at N = 8)."""
    table: dict = {}

    def sub(p):
        s = table.get(p.base)
        if s is None:
            s = table[p.base] = sp.Dummy(positive=True)
        return s ** int(p.exp * 2)
    e = e.replace(lambda n: n.is_Pow and _half_power(n), sub)
    num = sp.expand(sp.numer(sp.together(e)))
    for base, s in table.items():
        num = sp.expand(sp.rem(sp.Poly(num, s), sp.Poly(s ** 2 - base, s)).as_expr())
    return num == 0


def _cheap_zero(e) -> bool:
    """Expands or cancels to 0. Exponentials are first split (exp(a+b) = exp(a)·exp(b)) and
    replaced by positive symbols (exp(-t) = 1/E_t): an identity in those independent symbols
    holds for the exponentials too, and polynomial arithmetic on symbols is much cheaper."""
    has_exp = e.has(sp.exp)
    if has_exp:
        e = _exp_as_symbols(sp.expand(e, power_exp=True, mul=False, multinomial=False,
                                      power_base=False, log=False))
    return expands_or_cancels_to_zero(e, cancel_first=has_exp)


def _exp_as_symbols(e):
    table: dict = {}

    def sub(n):
        a = n.args[0]
        c, t = a.as_coeff_Mul()
        if c.is_Integer:
            key, k = t, int(c)
        elif a.could_extract_minus_sign():
            key, k = -a, -1
        else:
            key, k = a, 1
        s = table.get(key)
        if s is None:
            s = table[key] = sp.Dummy(positive=True)
        return s ** k
    return e.replace(lambda n: isinstance(n, sp.exp), sub)


def _transfer(r, i, proved_refs, arrays, shape) -> str | None:
    """A proved element's residual, renamed along tensor indices, is this element's residual:
    the same identity (the proof is invariant under renaming variables)."""
    if not arrays or not proved_refs or r.has(sp.Max, sp.Min):
        return None  # renaming inside Max/Min re-runs SymPy's costly Max simplification
    for j, rj in proved_refs[-3:]:
        sigma = _index_swap(j, i, arrays, shape)
        if sigma and rj.xreplace(sigma) == r:
            at = ",".join(map(str, j))
            return f"the same expression up to renaming tensor indices as the proved [{at}]"
    return None


def _index_swap(j, i, arrays, shape) -> dict:
    """Swap index j[k] <-> i[k] along every input axis of length shape[k] (all k)."""
    sigma: dict = {}
    for arr in arrays.values():
        perm = np.arange(arr.size).reshape(arr.shape)
        for k, (a, b) in enumerate(zip(j, i)):
            if a == b:
                continue
            n = shape[k]
            for ax, size in enumerate(arr.shape):
                if size == n:
                    perm = _swap_axis(perm, ax, a, b)
        flat = arr.reshape(-1)
        src = perm.reshape(-1)
        for p, q in enumerate(src):
            if p != q:
                sigma[flat[p]] = flat[q]
    return sigma


def _swap_axis(perm, ax, a, b):
    perm = np.array(perm)
    ia = [slice(None)] * perm.ndim
    ib = [slice(None)] * perm.ndim
    ia[ax] = a
    ib[ax] = b
    tmp = perm[tuple(ia)].copy()
    perm[tuple(ia)] = perm[tuple(ib)]
    perm[tuple(ib)] = tmp
    return perm
