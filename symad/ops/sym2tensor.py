"""Evaluate a SymPy expression with tensor ops, so that derivatives SymPy derived from an op's
formula become differentiable tensor graphs (used by ``create_graph=True`` backward).

Dispatch is by SymPy class along the MRO; an unknown class raises and names it.
"""
from __future__ import annotations

import sympy

from . import functional as F


def evaluate(expr, env: dict):
    """Evaluate ``expr``; ``env`` maps SymPy symbols to tensors or numbers."""
    return evaluate_many([expr], env)[0]


def evaluate_many(exprs, env: dict) -> list:
    """Evaluate several expressions, sharing common subexpressions (one memo for all)."""
    memo: dict = {}

    def ev(e):
        r = memo.get(e)
        if r is None:
            r = _eval(e, ev, env)
            memo[e] = r
        return r

    return [ev(sympy.sympify(e)) for e in exprs]


def _eval(e, ev, env):
    if e.is_Symbol:
        return env[e]
    if e is sympy.true:
        return True
    if e is sympy.false:
        return False
    if e.is_Number or e.is_NumberSymbol:
        return float(e) if not e.is_Integer else int(e)
    for cls in type(e).__mro__:
        h = _HANDLERS.get(cls)
        if h is not None:
            return h(e, ev)
    raise NotImplementedError(f"cannot evaluate sympy.{type(e).__name__} with symad tensor ops")


def _add(e, ev):
    out = None
    for a in e.args:
        v = ev(a)
        out = v if out is None else out + v
    return out


def _mul(e, ev):
    out = None
    for a in e.args:
        v = ev(a)
        out = v if out is None else out * v
    return out


def _pow(e, ev):
    b, x = e.args
    if x == sympy.Rational(1, 2):
        return F.sqrt(ev(b))
    if x == -1:
        return 1 / ev(b)
    return ev(b) ** ev(x)


def _piecewise(e, ev):
    return _pieces(e.args, ev)


def _pieces(pairs, ev):
    # recurse on the (value, condition) pairs themselves: Piecewise(*rest) would evaluate
    # ``Piecewise((0, True))`` to 0 and lose its structure
    (val, cond), rest = pairs[0], pairs[1:]
    if cond is sympy.true or not rest:
        return ev(val)
    return F.where(ev(cond), ev(val), _pieces(rest, ev))


def _rel(op):
    return lambda e, ev: op(F.as_tensor_like(ev(e.lhs), ev(e.rhs)), ev(e.rhs))


def _and(e, ev):
    out = None
    for a in e.args:
        v = ev(a)
        out = v if out is None else F.logical_and(out, v)
    return out


def _or(e, ev):
    out = None
    for a in e.args:
        v = ev(a)
        out = v if out is None else F.logical_or(out, v)
    return out


def _heaviside(e, ev):
    """H(0) is the second argument, else 0 (PyTorch's and numpy's convention, as codegen's
    lowering and ``NUMPY_FUNCS``)."""
    x = ev(e.args[0])
    h0 = ev(e.args[1]) if len(e.args) > 1 else 0.0
    return F.where(x > 0, 1.0, F.where(x < 0, 0.0, h0)) * F.ones_like(x)


def _unary(name):
    return lambda e, ev: getattr(F, name)(F.as_tensor_like(ev(e.args[0])))


_HANDLERS = {
    sympy.Add: _add,
    sympy.Mul: _mul,
    sympy.Pow: _pow,
    sympy.Piecewise: _piecewise,
    sympy.StrictGreaterThan: _rel(lambda a, b: a > b),
    sympy.GreaterThan: _rel(lambda a, b: a >= b),
    sympy.StrictLessThan: _rel(lambda a, b: a < b),
    sympy.LessThan: _rel(lambda a, b: a <= b),
    sympy.Equality: _rel(lambda a, b: F.eq(a, b)),
    sympy.Unequality: _rel(lambda a, b: F.ne(a, b)),
    sympy.And: _and,
    sympy.Or: _or,
    sympy.Not: lambda e, ev: F.logical_not(ev(e.args[0])),
    # ITE(c, a, b) of booleans: (c and a) or (not c and b); SymPy writes a Piecewise's
    # condition that holds a Piecewise this way
    sympy.logic.boolalg.ITE: lambda e, ev: F.where(ev(e.args[0]), ev(e.args[1]),
                                                   ev(e.args[2])),
    sympy.Heaviside: _heaviside,
    sympy.floor: _unary("floor"),
    sympy.erf: _unary("erf"),
    sympy.Max: lambda e, ev: _fold(F.maximum, e, ev),
    sympy.Min: lambda e, ev: _fold(F.minimum, e, ev),
}


def _fold(fn, e, ev):
    out = F.as_tensor_like(ev(e.args[0]))
    for a in e.args[1:]:
        out = fn(out, ev(a))
    return out


def register_function(cls, handler) -> None:
    """Evaluate SymPy function ``cls`` with ``handler(expr, ev)`` (ops declaring their own SymPy
    function, e.g. ``round``'s ``round_half_even``)."""
    _HANDLERS[cls] = handler


def _register_from_registry() -> None:
    """Each unary elementwise op whose formula is one SymPy function of its argument (exp, sin,
    Abs, sigmoid, ...) evaluates that function: the mapping is read from the registry, not
    restated here."""
    from .registry import REGISTRY
    x = sympy.Symbol("_x", real=True)
    for op in REGISTRY.values():
        if op.formula is None or op.nargs != 1 or op.params:
            continue
        e = op.formula(x)
        if isinstance(e, sympy.Function) and e.args == (x,):
            _HANDLERS.setdefault(type(e), _unary(op.name))


_register_from_registry()