"""The one formula parser: ``symad diff``, ``symad check`` and string arguments of
``check_gradient`` read formulas with it.

Every scalar function of the op registry is known by its registry name (``sigmoid``, ``relu``,
``maximum``, ``log1p``, ...) with the registry's formula, so a parsed ``relu(x)`` has the same
derivative rule (``relu'(0) = 0``) as ``symad.relu`` on a tensor. A few spellings users type
are aliases (``max``/``min``/``abs``/``softplus``/``Heaviside``, SymPy's ``Max``, ``Abs``, ...).
``^`` is a power; implicit products work (``2x``, ``3 x y``, ``2(x + 1)``), and a name is never
split into letters (``sigmoid`` is one name, ``xy`` is one variable). Calling a name that is not
a known function is a ``ValueError`` naming it. Every variable is a real symbol.

>>> parse("2x + sigmoid(x)")
2*x + sigmoid(x)
"""
from __future__ import annotations

import functools
import keyword
from typing import Any, Callable

import sympy
from sympy.parsing.sympy_parser import (convert_xor, implicit_application,
                                        implicit_multiplication, parse_expr,
                                        standard_transformations)

from .registry import REGISTRY, real_symbol

__all__ = ["parse", "known_functions", "FormulaError"]

_TRANSFORMS = standard_transformations + (convert_xor, implicit_multiplication,
                                          implicit_application)


class FormulaError(ValueError):
    """A formula that cannot be parsed (the message names the unknown name or the syntax)."""


def _registry_functions() -> dict[str, Callable]:
    """``name -> scalar function`` for every elementwise registry op (its formula)."""
    out: dict[str, Callable] = {}
    for name, op in REGISTRY.items():
        if op.formula is None:
            continue
        if op.params:
            def fn(*args, _op=op):
                n = _op.nargs
                return _op.formula(*args[:n], **dict(zip(_op.params, args[n:])))
        else:
            def fn(*args, _op=op):
                return _op.formula(*args)
        fn.__name__ = name
        out[name] = fn
    return out


@functools.lru_cache(maxsize=1)
def known_functions() -> dict[str, Any]:
    """Every name a formula may call: the registry's elementwise ops, then common aliases."""
    funcs: dict[str, Any] = {
        # SymPy's own spellings and the usual math names
        "Max": sympy.Max, "Min": sympy.Min, "Abs": sympy.Abs, "Heaviside": sympy.Heaviside,
        "max": sympy.Max, "min": sympy.Min, "sech": sympy.sech, "coth": sympy.coth,
        "atan2": sympy.atan2, "erf": sympy.erf, "gamma": sympy.gamma, "ln": sympy.log,
        "softplus": lambda x: sympy.log(1 + sympy.exp(x)), "exp2": lambda x: 2 ** x,
    }
    funcs.update(_registry_functions())  # the registry's meaning wins over any alias
    return funcs


_CONSTANTS = {"pi": sympy.pi, "E": sympy.E, "oo": sympy.oo}


def parse(text: str, symbols: dict[str, sympy.Symbol] | None = None) -> sympy.Expr:
    """Parse ``text`` into a SymPy expression over real symbols (``symbols`` overrides)."""
    if not isinstance(text, str):
        raise TypeError(f"parse() expects a formula string, got {type(text).__name__}")
    funcs = known_functions()
    local: dict[str, Any] = dict(funcs)
    local.update(_CONSTANTS)
    if symbols:
        local.update(symbols)
    for n in _names(text):
        if n in local or keyword.iskeyword(n):
            continue
        if _called(text, n):  # a call: a registry function or SymPy's own (asinh, Piecewise)
            f = getattr(sympy, n, None)
            if not callable(f):
                raise FormulaError(_unknown_message(text, n))
            local[n] = f
        else:  # a variable, one name however long (never split into letters)
            local[n] = real_symbol(n)
    try:
        expr = parse_expr(text, local_dict=local, transformations=_TRANSFORMS)
    except (SyntaxError, TypeError, sympy.SympifyError, AttributeError) as exc:
        raise FormulaError(f"cannot parse formula {text!r}: {exc}") from None
    except Exception as exc:  # tokenize.TokenError and friends: unbalanced brackets
        raise FormulaError(f"cannot parse formula {text!r}: {exc}") from None
    expr = sympy.sympify(expr)
    undefined = sorted({type(f).__name__ for f in expr.atoms(sympy.core.function.AppliedUndef)})
    if undefined:
        raise FormulaError(_unknown_message(text, undefined[0]))
    rep = {s: real_symbol(s.name) for s in expr.free_symbols
           if not s.is_real and (not symbols or s.name not in symbols)}
    return expr.xreplace(rep) if rep else expr


def _names(text: str) -> list[str]:
    import io
    import tokenize
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and tok.string not in out:
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # parse_expr reports the syntax error
    return out


def _called(text: str, name: str) -> bool:
    """Whether ``name`` is written as a call, ``name(``."""
    import re
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}\s*\(", text) is not None


def _unknown_message(text: str, name: str) -> str:
    known = sorted(n for n in known_functions() if n[0].islower())
    return (f"unknown function {name!r} in formula {text!r}; known functions: "
            f"{', '.join(known)}")
