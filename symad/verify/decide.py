"""The decision procedure: is ``claimed`` equal to ``exact`` wherever ``f`` is differentiable?

1. The residual ``exact - claimed`` simplifies to 0 (per branch of a piecewise residual, skipping
   branches whose region has measure zero) -> **proved equal**.
2. Exact evaluation at random rational points off the kink set finds a point where the residual is
   not zero (rational arithmetic, or SymPy's certified ``evalf(strict=True)`` for transcendental
   values; no float tolerance) -> **proved different**, with that point as the counterexample.
3. Neither: a 50-digit mpmath comparison at many points, labelled "not proved".

>>> import sympy
>>> x = sympy.Symbol("x", real=True)
>>> compare(2 * x, x + x, [x]).equal
True
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from fractions import Fraction

import sympy as sp
from sympy.core.evalf import PrecisionExhausted

# Simple rationals first: counterexamples a person can check by hand. 0 is excluded (it is where
# most kinks live); it is still reached through kink probing.
_SIMPLE = [sp.Rational(v) for v in ("1", "2", "-1", "1/2", "3", "-2", "-1/2", "1/3", "3/2", "-3",
                                     "2/3", "5/2", "4", "-3/2", "5", "1/4")]
_PIECEWISE_HEADS = (sp.Piecewise, sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min)


class Counterexample(dict):
    """Input values (a dict name -> value) where exact and claimed differ, with both values."""

    def __init__(self, point: dict, exact, claimed) -> None:
        dict.__init__(self, {str(k): v for k, v in point.items()})
        self.exact = exact
        self.claimed = claimed

    @property
    def point(self) -> dict:
        return dict(self)

    def __repr__(self) -> str:
        at = ", ".join(f"{k}={v}" for k, v in self.items())
        return f"Counterexample({at}: exact={self.exact}, claimed={self.claimed})"

    def __eq__(self, other) -> bool:
        return dict.__eq__(self, other) and getattr(other, "exact", None) == self.exact \
            and getattr(other, "claimed", None) == self.claimed

    __hash__ = None  # type: ignore[assignment]


@dataclass
class Verdict:
    equal: bool | None          # None: undecided even numerically (should not happen in practice)
    proved: bool
    method: str                 # how it was decided, for the report
    residual: sp.Expr
    counterexample: Counterexample | None = None
    kink_note: str | None = None  # "differs only on a measure-zero set ..."
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# exact evaluation

def is_piecewise(expr) -> bool:
    return any(expr.has(h) for h in _PIECEWISE_HEADS)


def kink_expressions(*exprs) -> list[sp.Expr]:
    """Expressions whose zero set is where a piecewise ingredient switches (the kink set)."""
    out: list[sp.Expr] = []
    for e in exprs:
        if not isinstance(e, sp.Basic):
            continue
        for node in sp.preorder_traversal(e):
            if isinstance(node, (sp.Abs, sp.sign, sp.Heaviside)):
                out.append(node.args[0])
            elif isinstance(node, (sp.Max, sp.Min)):
                a = node.args
                out.extend(a[i] - a[j] for i in range(len(a)) for j in range(i + 1, len(a)))
            elif isinstance(node, sp.Piecewise):
                for _, cond in node.args:
                    for rel in cond.atoms(sp.core.relational.Relational):
                        out.append(rel.lhs - rel.rhs)
    uniq = []
    for k in out:
        if k.free_symbols and k not in uniq:
            uniq.append(k)
    return uniq


def exact_value(expr, point: dict):
    """The value of ``expr`` at a rational point, exactly (a SymPy number), or None if undefined
    or not real there."""
    try:
        point = {k: sp.sympify(v) for k, v in point.items()}
        v = sp.sympify(sp.sympify(expr).xreplace(point))
        if not v.is_number:
            v = sp.sympify(expr).subs(point)
    except (ZeroDivisionError, TypeError, ValueError):
        return None
    if v.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or not v.is_number:
        return None
    if v.is_Rational:
        return v
    if v.is_real is False:
        return None
    try:
        if v.is_extended_real is None and sp.im(v).evalf(30, chop=True) != 0:
            return None
    except (TypeError, ValueError):
        return None
    return v


def certified_nonzero(v) -> bool | None:
    """True if the number is certainly non-zero, False if certainly zero, None if unknown."""
    if v.is_Rational:
        return v != 0
    if v.is_zero is not None:
        return not v.is_zero
    try:
        f = v.evalf(30, strict=True)
    except PrecisionExhausted:
        return None  # evalf cannot tell it from zero: almost certainly zero
    except (TypeError, ValueError):
        return None
    if not f.is_number:
        return None
    return f != 0


def fmt_number(v) -> str:
    """A number for reports: exact form, plus a decimal when it is not rational."""
    if v is None:
        return "undefined"
    v = sp.sympify(v)
    if v.is_Rational or not v.is_number:
        return str(v)
    return f"{v} ≈ {sp.N(v, 15)}"


# ---------------------------------------------------------------------------------------------
# sampling

def _random_rational(rng: random.Random):
    return sp.Rational(rng.choice([-1, 1]) * rng.randint(1, 40), rng.randint(1, 12))


def sample_points(variables, rng: random.Random, n: int, kinks=(), validity=(), *,
                  simple_first: bool = True):
    """Up to ``n`` rational points (dict Symbol -> Rational) off the kink set where every
    expression in ``validity`` is defined and real. Simple values come first (unless
    ``simple_first=False``: many variables would tie)."""
    variables = list(variables)
    tries = 0 if simple_first else 24
    produced = 0
    while produced < n and tries < 20 * n + 64:
        k = tries
        tries += 1
        if k < 24:
            # offset per variable so that distinct variables get distinct simple values
            pt = {v: _SIMPLE[(k + 5 * i) % len(_SIMPLE)] for i, v in enumerate(variables)}
            if k % 3 == 1:  # an all-positive point (log, sqrt domains)
                pt = {v: abs(val) for v, val in pt.items()}
        else:
            pt = {v: _random_rational(rng) for v in variables}
            if k % 2:
                pt = {v: abs(val) for v, val in pt.items()}
        if any(exact_value(kk, pt) in (None, 0) for kk in kinks):
            continue
        if any(exact_value(e, pt) is None for e in validity):
            continue
        produced += 1
        yield pt


# ---------------------------------------------------------------------------------------------
# simplification

def simplifies_to_zero(r) -> bool:
    """Try a ladder of rewrites, cheapest first; True only when SymPy reaches exactly 0."""
    r = sp.sympify(r)
    if r == 0:
        return True
    attempts = (
        lambda e: sp.expand(e),
        lambda e: sp.cancel(sp.together(e)),
        lambda e: sp.simplify(e),
        lambda e: sp.simplify(e.rewrite(sp.exp)),
        lambda e: sp.simplify(sp.expand_trig(e)),
        lambda e: sp.simplify(sp.expand(e.rewrite(sp.exp))),
    )
    for attempt in attempts:
        try:
            if attempt(r) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError, RecursionError):
            continue
    return False


def to_piecewise(e):
    """Abs, sign, Heaviside, Max, Min rewritten as Piecewise, then folded into one Piecewise."""
    def pw(node):
        a = node.args[0]
        if isinstance(node, sp.Abs):
            return sp.Piecewise((a, a >= 0), (-a, True))
        if isinstance(node, sp.sign):
            return sp.Piecewise((1, a > 0), (-1, a < 0), (0, True))
        if isinstance(node, sp.Heaviside):
            h0 = node.args[1] if len(node.args) > 1 else sp.Rational(1, 2)
            return sp.Piecewise((1, a > 0), (0, a < 0), (h0, True))
        return node.rewrite(sp.Piecewise)
    e = e.replace(lambda n: isinstance(n, (sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min)), pw)
    return sp.piecewise_fold(e)


def _measure_zero(region) -> bool | None:
    """Does a condition describe a set of measure zero? None when SymPy cannot say."""
    if region is sp.false:
        return True
    if region is sp.true:
        return False
    if len(region.free_symbols) == 1:
        try:
            return region.as_set().measure == 0
        except (NotImplementedError, ValueError, TypeError, AttributeError):
            pass
    # an equality anywhere in a conjunction confines the region to a hypersurface
    if isinstance(region, sp.Eq) or (isinstance(region, sp.And)
                                     and any(isinstance(a, sp.Eq) for a in region.args)):
        return True
    return None


def branches(r):
    """[(branch expression, effective region)] of a folded piecewise residual."""
    r = to_piecewise(r)
    if not isinstance(r, sp.Piecewise):
        return [(r, sp.true)]
    out = []
    before = sp.false
    for expr, cond in r.args:
        region = sp.And(cond, sp.Not(before))
        out.append((expr, region))
        before = sp.Or(before, cond)
    return out


# ---------------------------------------------------------------------------------------------
# the procedure

def compare(exact, claimed, variables, *, seed: int = 0, f=None, n_points: int = 12) -> Verdict:
    """Decide whether ``claimed == exact`` almost everywhere (see module docstring)."""
    exact = sp.sympify(exact)
    claimed = sp.sympify(claimed)
    residual = exact - claimed
    variables = list(variables) or sorted(residual.free_symbols, key=str)
    rng = random.Random(seed)
    piecewise = is_piecewise(exact) or is_piecewise(claimed)
    kinks = kink_expressions(exact, claimed, f) if piecewise or f is not None else []
    validity = [e for e in (f, exact) if e is not None]

    # 1. cheap zero
    simple = sp.expand(residual)
    if simple == 0:
        return _with_kink_probe(Verdict(True, True, "the residual expands to 0", sp.S.Zero),
                                exact, claimed, variables, kinks, rng)

    # 2. witness search (exact arithmetic)
    undecided_points = 0
    for pt in sample_points(variables, rng, n_points, kinks, validity):
        ev = exact_value(exact, pt)
        cv = exact_value(claimed, pt)
        if ev is None:
            continue
        if cv is None:
            return Verdict(False, True, "the claim is undefined where f is differentiable",
                           _display_residual(residual), Counterexample(pt, ev, None))
        nz = certified_nonzero(sp.sympify(ev - cv))
        if nz:
            return Verdict(False, True, "exact evaluation at a rational point",
                           _display_residual(residual), Counterexample(pt, ev, cv))
        if nz is None:
            undecided_points += 1

    # 3. symbolic proof
    if not piecewise:
        if simplifies_to_zero(residual):
            return Verdict(True, True, "the residual simplifies to 0", sp.S.Zero)
    else:
        v = _prove_piecewise(residual, variables, rng, exact, claimed)
        if v is not None and v.equal is False:
            return v
        if v is not None:
            return _with_kink_probe(v, exact, claimed, variables, kinks, rng)

    # 4. high-precision numerics, labelled as such
    return _numeric(exact, claimed, residual, variables, rng, kinks, validity)


def _display_residual(residual):
    try:
        return sp.simplify(residual) if sp.count_ops(residual) < 200 else residual
    except (TypeError, ValueError, NotImplementedError):
        return residual


def _region_point(region, variables, rng) -> dict | None:
    """A rational point strictly inside a univariate region (e.g. x >= 1000), others random."""
    syms = list(region.free_symbols)
    if len(syms) != 1:
        return None
    try:
        st = region.as_set()
    except (NotImplementedError, ValueError, TypeError, AttributeError):
        return None
    parts = st.args if isinstance(st, sp.Union) else (st,)
    for iv in parts:
        if not isinstance(iv, sp.Interval) or iv.measure == 0:
            continue
        a, b = iv.start, iv.end
        if a.is_infinite and b.is_infinite:
            v = sp.Integer(1)
        elif a.is_infinite:
            v = sp.floor(b) - 1
        elif b.is_infinite:
            v = sp.ceiling(a) + 1
        else:
            v = sp.nsimplify((a + b) / 2)
        base = next(iter(sample_points([x for x in variables if x != syms[0]], rng, 1)), {})
        base[syms[0]] = sp.Rational(v)
        return base
    return None


def _prove_piecewise(residual, variables, rng, exact=None, claimed=None) -> Verdict | None:
    try:
        parts = branches(residual)
    except (TypeError, ValueError, NotImplementedError):
        return None
    skipped = []
    for expr, region in parts:
        if simplifies_to_zero(expr):
            continue
        mz = _measure_zero(region)
        if mz:
            skipped.append(region)
            continue
        pt = _region_point(region, variables, rng)
        if pt is not None and exact is not None:
            ev, cv = exact_value(exact, pt), exact_value(claimed, pt)
            if ev is not None and (cv is None or certified_nonzero(sp.sympify(ev - cv))):
                return Verdict(False, True, "exact evaluation inside a region of the piecewise "
                               "residual", _display_residual(residual), Counterexample(pt, ev, cv))
        if mz is None and not _region_hit(region, variables, rng):
            skipped.append(region)
            continue
        return None
    v = Verdict(True, True, "every branch of the piecewise residual simplifies to 0"
                + (" (apart from measure-zero regions)" if skipped else ""), sp.S.Zero)
    if skipped:
        v.residual = sp.piecewise_fold(residual)
    return v


def _region_hit(region, variables, rng) -> bool:
    for pt in sample_points(variables, rng, 12):
        try:
            if bool(region.xreplace(pt)):
                return True
        except TypeError:
            continue
    return False


def _kink_root(k, var):
    """A real root of the kink expression ``k`` (already numeric in the other variables) in
    ``var``: linear and quadratic cases only (solve() on anything bigger is too slow here)."""
    try:
        poly = sp.Poly(k, var)
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        return None
    if poly.degree() == 1:
        a, b = poly.all_coeffs()
        return -b / a
    if poly.degree() == 2:
        roots = [r for r in sp.roots(poly).keys() if r.is_real]
        return roots[0] if roots else None
    return None


def _with_kink_probe(v: Verdict, exact, claimed, variables, kinks, rng) -> Verdict:
    """After proving equality a.e., look for kink points where the two still differ (allowed,
    but worth a hint)."""
    for k in kinks[:6]:
        for var in sorted(k.free_symbols, key=str)[:2]:
            if var not in variables:
                continue
            others = [s for s in variables if s != var]
            base = next(iter(sample_points(others, rng, 1)), {})
            root = _kink_root(k.xreplace(base), var)
            if root is None or not root.is_number:
                continue
            pt = dict(base)
            pt[var] = root
            ev = exact_value(exact, pt)
            cv = exact_value(claimed, pt)
            if ev is None and cv is None:
                continue
            if ev is None or cv is None or certified_nonzero(sp.sympify(ev - cv)):
                at = ", ".join(f"{a}={b}" for a, b in pt.items())
                v.kink_note = (f"differs only on a measure-zero set ({k} = 0, where f is "
                               f"not differentiable): at {at} exact gives "
                               f"{fmt_number(ev)} (PyTorch's convention), claimed "
                               f"{fmt_number(cv)}")
                v.residual = exact - claimed
                return v
    return v


def _numeric(exact, claimed, residual, variables, rng, kinks, validity) -> Verdict:
    worst = sp.S.Zero
    n = 0
    for pt in sample_points(variables, rng, 20, kinks, validity):
        ev = exact_value(exact, pt)
        cv = exact_value(claimed, pt)
        if ev is None or cv is None:
            continue
        d = sp.N(ev - cv, 50)
        n += 1
        if abs(d) > sp.Float("1e-30", 50) * (1 + abs(sp.N(ev, 50))):
            return Verdict(False, False, "50-digit numeric evaluation (not proved)",
                           residual, Counterexample(pt, ev, cv))
        worst = max(worst, abs(d))
    if n == 0:
        return Verdict(None, False, "no point found where both sides are defined", residual)
    return Verdict(True, False, f"agrees to 50 digits at {n} random points (not proved: "
                   f"SymPy could not simplify the residual to 0)", residual)


def as_fraction(v) -> Fraction | None:
    v = sp.sympify(v)
    return Fraction(int(v.p), int(v.q)) if v.is_Rational else None
