"""Evaluating SymPy expressions at a rational point, fast: rational arithmetic (``Fraction``)
wherever the value is rational, mpmath at 320 bits (~96 digits) for transcendental parts.

SymPy's own route (``xreplace`` then ``evalf``) rebuilds every node, and ``Max``/``Min``/
``Piecewise`` rebuilds run simplifications that cost milliseconds each; a traced tensor program
shares subexpressions between its elements, so one memo per point evaluates each shared node
once.

>>> import sympy as sp
>>> x, y = sp.symbols("x y", real=True)
>>> ev = PointEvaluator({x: sp.Rational(1, 2), y: sp.Integer(-1)})
>>> ev.value(sp.Max(x, y) * 3 + sp.Piecewise((1, x > 0), (0, True)))
Fraction(5, 2)
>>> float(ev.value(sp.exp(x)))  # doctest: +ELLIPSIS
1.6487212707...
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import mpmath
import sympy as sp
from sympy.core.relational import Relational

PREC = 320  # bits (~96 digits)


class Undefined(Exception):
    """The expression has no real value at the point."""


class Unsupported(Exception):
    """A function this evaluator does not know (the caller falls back to SymPy)."""


def _mp(v):
    return v if isinstance(v, mpmath.mpf) else mpmath.mpf(v.numerator) / v.denominator


def _unify(vals):
    if any(isinstance(v, mpmath.mpf) for v in vals):
        return [_mp(v) for v in vals]
    return vals


_FUNCS = {sp.exp: mpmath.exp, sp.log: mpmath.log, sp.tanh: mpmath.tanh, sp.sinh: mpmath.sinh,
          sp.cosh: mpmath.cosh, sp.sin: mpmath.sin, sp.cos: mpmath.cos, sp.tan: mpmath.tan,
          sp.atan: mpmath.atan, sp.asin: mpmath.asin, sp.acos: mpmath.acos,
          sp.erf: mpmath.erf, sp.asinh: mpmath.asinh, sp.sech: mpmath.sech,
          sp.atanh: mpmath.atanh, sp.erfc: mpmath.erfc}


class PointEvaluator:
    """Values of expressions at one point (dict Symbol -> rational), with a shared memo."""

    def __init__(self, point: dict) -> None:
        self.point = {k: Fraction(int(sp.Rational(v).p), int(sp.Rational(v).q))
                      for k, v in point.items()}
        self.memo: dict = {}

    def value(self, expr) -> Any:
        """A ``Fraction`` or an ``mpmath.mpf``; raises :class:`Undefined`."""
        with mpmath.workprec(PREC):
            return self._v(expr)

    def sympy_value(self, expr):
        """The value as a SymPy number (Rational, or a 60-digit Float), or None if undefined."""
        try:
            v = self.value(expr)
        except Undefined:
            return None
        if isinstance(v, Fraction):
            return sp.Rational(v.numerator, v.denominator)
        return sp.Float(mpmath.nstr(v, 60), 60)

    def _v(self, e):
        m = self.memo.get(e)
        if m is not None:
            if m is Undefined:
                raise Undefined
            return m
        try:
            out = self._eval(e)
        except Undefined:
            self.memo[e] = Undefined
            raise
        except (ZeroDivisionError, ValueError, OverflowError):
            self.memo[e] = Undefined
            raise Undefined from None
        self.memo[e] = out
        return out

    def _eval(self, e):
        if e.is_Symbol:
            try:
                return self.point[e]
            except KeyError:
                raise Undefined from None
        if e.is_Rational:
            return Fraction(int(e.p), int(e.q))
        if e.is_Float:
            return mpmath.mpf(e._mpf_)
        if e is sp.pi:
            return +mpmath.pi
        if e is sp.E:
            return mpmath.e
        if isinstance(e, sp.Add):
            vals = _unify([self._v(a) for a in e.args])
            out = vals[0]
            for v in vals[1:]:
                out = out + v
            return out
        if isinstance(e, sp.Mul):
            vals = _unify([self._v(a) for a in e.args])
            out = vals[0]
            for v in vals[1:]:
                out = out * v
            return out
        if isinstance(e, sp.Pow):
            b = self._v(e.base)
            x = e.exp
            if x.is_Integer:
                if isinstance(b, Fraction) and b == 0 and x < 0:
                    raise Undefined
                return b ** int(x)
            xv = self._v(x)
            bm = _mp(b)
            if bm < 0:
                raise Undefined
            if bm == 0:
                if _mp(xv) <= 0:
                    raise Undefined
                return Fraction(0)
            return mpmath.power(bm, _mp(xv))
        f = _FUNCS.get(e.func)
        if f is not None:
            a = self._v(e.args[0])
            if e.func is sp.exp and a == 0:
                return Fraction(1)
            r = f(_mp(a))
            if not isinstance(r, mpmath.mpf):
                raise Undefined  # complex: outside the real domain
            return r
        if isinstance(e, (sp.Max, sp.Min)):
            vals = _unify([self._v(a) for a in e.args])
            return max(vals) if isinstance(e, sp.Max) else min(vals)
        if isinstance(e, sp.Abs):
            return abs(self._v(e.args[0]))
        if isinstance(e, sp.sign):
            a = self._v(e.args[0])
            return Fraction((a > 0) - (a < 0))
        if isinstance(e, sp.Heaviside):
            a = self._v(e.args[0])
            if a > 0:
                return Fraction(1)
            if a < 0:
                return Fraction(0)
            return self._v(e.args[1]) if len(e.args) > 1 else Fraction(1, 2)
        if isinstance(e, sp.Piecewise):
            for val, cond in e.args:
                if self.truth(cond):
                    return self._v(val)
            raise Undefined
        raise Unsupported(e.func)

    def truth(self, c) -> bool:
        if c is sp.true or c is True:
            return True
        if c is sp.false or c is False:
            return False
        if isinstance(c, sp.And):
            return all([self.truth(a) for a in c.args])
        if isinstance(c, sp.Or):
            return any([self.truth(a) for a in c.args])
        if isinstance(c, sp.Not):
            return not self.truth(c.args[0])
        if isinstance(c, Relational):
            a, b = _unify([self._v(c.lhs), self._v(c.rhs)])
            op = c.rel_op
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b,
                    "!=": a != b}[op]
        raise Unsupported(type(c))
