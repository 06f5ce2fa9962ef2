"""Proofs for piecewise residuals without expanding Piecewise trees: every kink ingredient
(``Heaviside``, ``sign``, ``Abs``, ``Max``/``Min``, ``Piecewise`` conditions, ``Eq(x, Max(...))``
of an argmax) is rewritten as a polynomial in 0/1 indicator symbols ``H_d`` = [d > 0], one per
distinct switching expression ``d`` (up to sign: [−d > 0] = 1 − H_d). Off the kink set (where some
``d = 0``: measure zero, since each ``d`` is a non-constant expression free of kinks) this is an
identity. A residual that becomes 0 once ``H**k = H`` is applied is 0 for *every* 0/1 assignment,
so in particular for the consistent ones: equal almost everywhere.

>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> prove_piecewise(sp.Heaviside(x) - sp.Piecewise((1, x > 0), (0, True)))
'the residual is 0 once its kinks are written as indicators (kink set excepted)'
"""
from __future__ import annotations

import itertools

import sympy as sp
from sympy.core.relational import Relational

_HEADS = (sp.Piecewise, sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min)


class _GiveUp(Exception):
    pass


class IndicatorForm:
    """Rewrites kink ingredients as polynomials in indicator symbols (shared across calls, so
    the two sides of a comparison use the same symbol for the same switching expression)."""

    def __init__(self) -> None:
        self.symbols: dict[sp.Expr, sp.Dummy] = {}
        self._memo: dict = {}

    def _h(self, d) -> sp.Expr:
        """[d > 0] almost everywhere."""
        d = sp.expand(d)
        if d.is_number:
            if d.is_zero:
                raise _GiveUp  # a constant 0: [0 > 0] vs [0 >= 0] differ everywhere
            return sp.Integer(1 if d > 0 else 0)
        if any(d.has(h) for h in _HEADS) or d.has(*self.symbols.values()):
            raise _GiveUp  # a kink inside a switching expression: not measure-zero-safe
        if d.could_extract_minus_sign():
            return 1 - self._sym(-d)
        return self._sym(d)

    def _sym(self, d) -> sp.Dummy:
        s = self.symbols.get(d)
        if s is None:
            s = self.symbols[d] = sp.Dummy(f"H{len(self.symbols)}")
        return s

    def cond(self, c) -> sp.Expr:
        """The 0/1 indicator (almost everywhere) of a condition."""
        if c is sp.true or c is True:
            return sp.Integer(1)
        if c is sp.false or c is False:
            return sp.Integer(0)
        if isinstance(c, sp.And):
            out = sp.Integer(1)
            for a in c.args:
                out = out * self.cond(a)
            return out
        if isinstance(c, sp.Or):
            out = sp.Integer(1)
            for a in c.args:
                out = out * (1 - self.cond(a))
            return 1 - out
        if isinstance(c, sp.Not):
            return 1 - self.cond(c.args[0])
        if isinstance(c, Relational):
            lhs, rhs = c.lhs, c.rhs
            split = _abs_condition(c)
            if split is not None:
                return self.cond(split)
            if isinstance(c, (sp.Eq, sp.Ne)):
                v = self._eq(lhs, rhs)
                return v if isinstance(c, sp.Eq) else 1 - v
            if isinstance(c, (sp.StrictGreaterThan, sp.GreaterThan)):
                return self._h(self.expr(lhs) - self.expr(rhs))
            if isinstance(c, (sp.StrictLessThan, sp.LessThan)):
                return self._h(self.expr(rhs) - self.expr(lhs))
        raise _GiveUp

    def _eq(self, a, b) -> sp.Expr:
        for x, m in ((a, b), (b, a)):
            if isinstance(m, (sp.Max, sp.Min)) and x in m.args:
                sgn = 1 if isinstance(m, sp.Max) else -1
                out = sp.Integer(1)
                for o in m.args:
                    if o != x:
                        out = out * self._h(sgn * (self.expr(x) - self.expr(o)))
                return out
        d = a - b
        if any(d.has(h) for h in _HEADS):
            raise _GiveUp
        return sp.Integer(0)  # a hypersurface

    def expr(self, e) -> sp.Expr:
        """``e`` with every kink ingredient replaced by its indicator polynomial."""
        if not isinstance(e, sp.Basic) or e.is_Atom or not any(e.has(h) for h in _HEADS):
            return e
        hit = self._memo.get(e)
        if hit is not None:
            return hit
        out = self._rewrite(e)
        self._memo[e] = out
        return out

    def _rewrite(self, e) -> sp.Expr:
        if isinstance(e, sp.Piecewise):
            out = sp.Integer(0)
            none_before = sp.Integer(1)
            for val, c in e.args:
                ic = self.cond(c)
                weight = self.reduce(ic * none_before)   # a small polynomial in indicators
                if weight != 0:
                    out = out + self.expr(val) * weight
                none_before = self.reduce(none_before * (1 - ic))
            return out
        if isinstance(e, sp.Heaviside):
            return self._h(self.expr(e.args[0]))
        if isinstance(e, sp.sign):
            a = self.expr(e.args[0])
            return 2 * self._h(a) - 1
        if isinstance(e, sp.Abs):
            a = self.expr(e.args[0])
            return a * (2 * self._h(a) - 1)
        if isinstance(e, (sp.Max, sp.Min)):
            sgn = 1 if isinstance(e, sp.Max) else -1
            args = [self.expr(a) for a in e.args]
            out = sp.Integer(0)
            for i, a in enumerate(args):
                term = a
                for j, b in enumerate(args):
                    if j != i:
                        term = term * self._h(sgn * (a - b))
                out = out + term
            return out
        if isinstance(e, Relational) or isinstance(e, sp.logic.boolalg.Boolean):
            raise _GiveUp
        return e.func(*[self.expr(a) for a in e.args])

    def reduce(self, e) -> sp.Expr:
        """Expanded, with ``H**k -> H`` (indicators are idempotent)."""
        hs = set(self.symbols.values())
        e = sp.expand(e)
        if not hs:
            return e
        return e.replace(lambda n: n.is_Pow and n.base in hs and n.exp.is_Integer
                         and n.exp > 0, lambda n: n.base)


def prove_piecewise(residual, *, max_split: int = 6, zero=None,
                    form: IndicatorForm | None = None) -> str | None:
    """A proof that the piecewise ``residual`` is 0 almost everywhere (a method string), or None
    when this structural argument does not reach 0 (which proves nothing either way).

    With at most ``max_split`` indicators every consistent sign case is checked with ``zero``
    (a predicate for kink-free expressions; default: expands or cancels to 0); sign cases that order the
    same terms in a cycle (a < b < c < a) are impossible and skipped. With more indicators, the
    residual must vanish as a polynomial in them (``H**k = H``)."""
    form = form or IndicatorForm()  # shared across elements: one rewrite per subexpression
    try:
        r = form.expr(sp.sympify(residual))
    except _GiveUp:
        return None
    if r == 0 or (not set(form.symbols.values()) & r.free_symbols and zero_or(zero)(r)):
        return "the residual is 0 once its kinks are written as indicators (kink set excepted)"
    used = r.free_symbols
    table = {d: h for d, h in form.symbols.items() if h in used}
    hs = list(table.values())
    zero = zero_or(zero)
    if hs and len(hs) <= max_split:
        ds = list(table)
        pairs = [_as_pair(d) for d in ds]
        linear = [_as_linear(d) for d in ds]
        checked = 0
        for bits in itertools.product((0, 1), repeat=len(hs)):
            if _cyclic([p for p in pairs if p is not None],
                       [b for p, b in zip(pairs, bits) if p is not None]) or \
                    _infeasible(linear, bits):
                continue
            checked += 1
            if not zero(r.xreplace(dict(zip(hs, map(sp.Integer, bits))))):
                return None
        return f"the residual is 0 in each of the {checked} possible sign cases of its kinks"
    if hs and form.reduce(r) == 0:
        return "every indicator combination of the residual is 0 (kink set excepted)"
    return None


def _abs_condition(c):
    """|a| < b as (a < b) & (-a < b), |a| > b as (a > b) | (-a > b) (b free of kinks)."""
    d = sp.expand(c.lhs - c.rhs)
    if not isinstance(c, (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan,
                          sp.GreaterThan)):
        return None
    terms = sp.Add.make_args(d)
    absd = [t for t in terms if isinstance(t, sp.Abs)]
    if len(absd) != 1:
        return None
    a = absd[0].args[0]
    b = -(d - absd[0])           # the relation is |a| <op> b
    if any(b.has(h) for h in _HEADS) or any(a.has(h) for h in _HEADS):
        return None
    if isinstance(c, (sp.StrictLessThan, sp.LessThan)):
        return sp.And(a < b, -a < b, evaluate=False)
    return sp.Or(a > b, -a > b, evaluate=False)


def zero_or(zero):
    return zero or _zero


def _as_pair(d) -> tuple | None:
    """d = u - v (two terms, coefficients +1 and -1): the pair (u, v); else None."""
    if not isinstance(d, sp.Add) or len(d.args) != 2:
        return None
    a, b = d.args
    if b.could_extract_minus_sign() and not a.could_extract_minus_sign():
        return (a, -b)
    if a.could_extract_minus_sign() and not b.could_extract_minus_sign():
        return (b, -a)
    return None


def _as_linear(d) -> tuple | None:
    """d = sum(a_k x_k) + b with rational coefficients: ({x_k: a_k}, b); else None."""
    syms = sorted(d.free_symbols, key=str)
    try:
        poly = sp.Poly(d, *syms)
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        return None
    if poly.total_degree() != 1:
        return None
    coeffs = {}
    const = sp.Integer(0)
    for monom, c in poly.terms():
        if not c.is_Rational:
            return None
        if sum(monom) == 0:
            const = c
        else:
            coeffs[syms[monom.index(1)]] = c
    return coeffs, const


def _infeasible(linear, bits, limit: int = 400) -> bool:
    """Are the strict linear constraints (d > 0 when the bit is 1, else d < 0) contradictory?
    Fourier–Motzkin elimination; False when unsure (too big, or no linear constraints)."""
    cons = []
    for lin, bit in zip(linear, bits):
        if lin is None:
            continue
        coeffs, const = lin
        sgn = 1 if bit else -1
        cons.append(({k: sgn * v for k, v in coeffs.items()}, sgn * const))
    if len(cons) < 2:
        return False
    while True:
        var = next((k for c, _ in cons for k in c), None)
        if var is None:
            return any(const <= 0 for _, const in cons)
        pos = [c for c in cons if c[0].get(var, 0) > 0]
        neg = [c for c in cons if c[0].get(var, 0) < 0]
        rest = [c for c in cons if c[0].get(var, 0) == 0]
        for pc, pk in pos:
            for nc, nk in neg:
                a, b = pc[var], -nc[var]
                merged = {}
                for k in set(pc) | set(nc):
                    v = b * pc.get(k, 0) + a * nc.get(k, 0)
                    if v != 0 and k != var:
                        merged[k] = v
                rest.append((merged, b * pk + a * nk))
        cons = rest
        if len(cons) > limit:
            return False


def _cyclic(pairs, bits) -> bool:
    """Do the strict orderings (u > v when the bit is 1, else v > u) contain a cycle?"""
    edges: dict = {}
    for (u, v), bit in zip(pairs, bits):
        hi, lo = (u, v) if bit else (v, u)
        edges.setdefault(hi, set()).add(lo)
    state: dict = {}

    def visit(n) -> bool:
        state[n] = 1
        for m in edges.get(n, ()):
            if state.get(m) == 1 or (m not in state and visit(m)):
                return True
        state[n] = 2
        return False
    return any(n not in state and visit(n) for n in list(edges))


def _zero(e) -> bool:
    """Expands or cancels to 0 (cancel first when exponentials make expansion costly)."""
    return expands_or_cancels_to_zero(e, cancel_first=e.has(sp.exp, sp.log))


def expands_or_cancels_to_zero(e, *, cancel_first: bool) -> bool:
    """``expand(e) == 0`` or ``cancel(together(e)) == 0``, in the order given; a SymPy failure in
    one step just moves on to the other."""
    steps = [lambda x: sp.expand(x) == 0, lambda x: sp.cancel(sp.together(x)) == 0]
    if cancel_first:
        steps.reverse()
    for step in steps:
        try:
            if step(e):
                return True
        except (TypeError, ValueError, NotImplementedError, sp.PolynomialError):
            continue
    return False


def prove_generalized(residual, zero=None) -> str | None:
    """Replace every kink subexpression (``Max(...)``, a ``Piecewise``, ``Heaviside``, ...) by
    a fresh symbol (the same subexpression by the same symbol): if the residual is 0 for *any*
    values of those symbols, it is 0 for theirs. This proves the stable softmax / log-sum-exp
    family, where the shift by the maximum cancels algebraically.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y", real=True)
    >>> m = sp.Max(x, y)
    >>> prove_generalized(sp.exp(x - m) / (sp.exp(x - m) + sp.exp(y - m))
    ...                   - sp.exp(x) / (sp.exp(x) + sp.exp(y)))
    'the residual is 0 for any values of its 1 kink subexpression(s)'
    """
    table: dict = {}

    def opaque(n):
        return isinstance(n, _HEADS)

    def sub(n):
        s = table.get(n)
        if s is None:
            s = table[n] = sp.Dummy(f"K{len(table)}", real=True)
        return s
    r = sp.sympify(residual).replace(opaque, sub)
    if not table:
        return None
    r = sp.expand(r, power_exp=True, mul=False, multinomial=False, power_base=False, log=False)
    if (zero or _zero)(r):
        return f"the residual is 0 for any values of its {len(table)} kink subexpression(s)"
    return None


def prove_indicator_identity(residual, form: IndicatorForm | None = None, zero=None
                             ) -> str | None:
    """Kinks written as indicators, then the indicators treated as free symbols: a residual
    that is 0 for every value of them is 0 for their 0/1 values (kink set excepted)."""
    form = form or IndicatorForm()
    try:
        r = form.expr(sp.sympify(residual))
    except _GiveUp:
        return None
    if r == 0:
        return "the residual is 0 once its kinks are written as indicators (kink set excepted)"
    r = sp.expand(r, power_exp=True, mul=False, multinomial=False, power_base=False, log=False)
    if zero_or(zero)(r):
        return ("the residual is 0 for any values of its kink indicators (kink set excepted)")
    return None
