"""Reverse mode over SymPy expressions, plus the helpers tracing and explain share.

The derivative rules and the reverse sweep live in :mod:`symad.ops.derivatives` (one table, keyed
by SymPy class, with PyTorch's conventions: pow at 0**0, kinks, ties); this module re-exports
them for the symbolic layer and adds display helpers (exact floats, size, simplify, kinks).
"""
from __future__ import annotations

import sympy
from sympy import Piecewise

from ..ops.derivatives import NoDerivativeRule, reverse_gradient, reverse_jacobian
from ..ops.registry import xreplace_unevaluated

__all__ = ["reverse_gradient", "reverse_jacobian", "NoDerivativeRule", "kinks",
           "exactify_floats", "expression_size", "display_simplify"]


# ---------------------------------------------------------------------------------------------
# helpers shared by tracing and explain

def exactify_floats(expr, max_den_bits: int = 20):
    """Replace Floats whose float64 value is an exact short binary fraction (2.0, 0.5, 3.0) by
    the equal Rational. Exact, not an approximation: 0.1 stays a Float."""
    if not isinstance(expr, sympy.Basic):
        return expr
    floats = expr.atoms(sympy.Float)
    if not floats:
        return expr
    rep = {}
    for f in floats:
        r = sympy.Rational(float(f))
        if r.q <= (1 << max_den_bits) and abs(r.p) < (1 << 53):
            rep[f] = r
    return xreplace_unevaluated(expr, rep) if rep else expr


def expression_size(exprs) -> int:
    """Number of distinct nodes in the DAG of ``exprs`` (shared subexpressions counted once)."""
    if isinstance(exprs, sympy.Basic) and not isinstance(exprs, sympy.MatrixBase):
        exprs = [exprs]
    seen: set = set()
    stack = [sympy.sympify(e) for e in exprs]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(n.args)
    return len(seen)


def display_simplify(expr, max_ops: int = 80):
    """``simplify`` for display only, skipped above ``max_ops`` operations (size cap)."""
    if not isinstance(expr, sympy.Basic):
        return expr
    if isinstance(expr, sympy.MatrixBase):
        return expr.applyfunc(lambda e: display_simplify(e, max_ops))
    try:
        if sympy.count_ops(expr) > max_ops:
            return expr
        out = sympy.simplify(expr)
        return out if sympy.count_ops(out) <= sympy.count_ops(expr) else expr
    except Exception:  # simplify is best-effort cosmetics; the unsimplified form is exact
        return expr


# ---------------------------------------------------------------------------------------------
# kinks

def kinks(exprs) -> list:
    """The conditions where ``exprs`` may fail to be differentiable (a superset): the boundaries
    of Piecewise conditions, zeros of Abs/sign/Heaviside arguments and ties of Max/Min.

    >>> import sympy; x = sympy.Symbol("x", real=True)
    >>> kinks(sympy.Abs(x))
    [Eq(x, 0)]
    """
    if isinstance(exprs, sympy.Basic) and not isinstance(exprs, sympy.MatrixBase):
        exprs = [exprs]
    found: dict = {}
    seen: set = set()
    stack = [sympy.sympify(e) for e in exprs]

    def add(lhs, rhs=sympy.S.Zero):
        eq = sympy.Eq(lhs, rhs, evaluate=False)
        if lhs != rhs:
            found.setdefault(eq, None)

    while stack:
        n = stack.pop()
        if n in seen or n.is_Atom:
            continue
        seen.add(n)
        if isinstance(n, Piecewise):
            for ec in n.args:
                for rel in ec.cond.atoms(sympy.core.relational.Relational):
                    add(rel.lhs, rel.rhs)
        elif isinstance(n, (sympy.Abs, sympy.sign, sympy.Heaviside)):
            add(n.args[0])
        elif isinstance(n, (sympy.Max, sympy.Min)):
            a = n.args
            for i in range(len(a)):
                for j in range(i + 1, len(a)):
                    add(a[i], a[j])
        elif isinstance(n, (sympy.floor, sympy.ceiling)):
            add(n.args[0], sympy.floor(n.args[0]))
        stack.extend(n.args)
    return list(found)
