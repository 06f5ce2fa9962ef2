"""Readable SymPy symbols for tensor elements, and symbolic tensors built from them.

An element ``W[0, 1]`` of a traced tensor named ``W`` is the real symbol :class:`ElementSymbol`
whose SymPy name is the identifier ``W_0_1`` (safe for lambdify and code generators), printed as
``W[0,1]`` in text and ``W_{0,1}`` in LaTeX.

>>> from symad.symbolic import symbolic_tensor
>>> W = symbolic_tensor("W", (2, 2))
>>> print(W._data[0, 1])
W[0,1]
"""
from __future__ import annotations

import re

import numpy as np
import sympy

__all__ = ["ElementSymbol", "symbolic_tensor", "scalar_symbol", "symbol_array", "identifier"]


def identifier(name: str) -> str:
    """A Python identifier for a display name (``0.weight`` -> ``p0_weight``)."""
    s = re.sub(r"\W", "_", name)
    if not s or s[0].isdigit():
        s = "p" + s
    return s


class ElementSymbol(sympy.Symbol):
    """A real symbol standing for ``base[index]``; prints as ``base[i,j]`` / ``base_{i,j}``."""

    __slots__ = ("base_name", "index")

    def __new__(cls, base: str, index: tuple[int, ...], **assumptions):
        assumptions.setdefault("real", True)
        index = tuple(int(i) for i in index)
        name = identifier(base) + "".join(f"_{i}" for i in index)
        obj = sympy.Symbol.__xnew__(cls, name, **assumptions)
        obj.base_name = base
        obj.index = index
        return obj

    def __getnewargs_ex__(self):
        return ((self.base_name, self.index), self.assumptions0)

    def _hashable_content(self):
        return sympy.Symbol._hashable_content(self) + (self.base_name, self.index)

    def _sympystr(self, printer):
        return f"{self.base_name}[{','.join(map(str, self.index))}]"

    def _latex(self, printer):
        base = self.base_name
        if len(base) > 1 and not base.isalpha():
            base = r"\mathrm{%s}" % base.replace("_", r"\_")
        elif len(base) > 1:
            base = printer._print(sympy.Symbol(base))
        return "%s_{%s}" % (base, ",".join(map(str, self.index)))

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm
        return prettyForm(self._sympystr(printer))


def scalar_symbol(name: str) -> sympy.Symbol:
    """The real symbol of a scalar input (its display name may be any string)."""
    if name.isidentifier():
        return sympy.Symbol(name, real=True)
    return ElementSymbol(name, ())


def symbol_array(name: str, shape) -> np.ndarray:
    """A numpy object array of real symbols ``name[i,j,...]`` (a 0-d array for shape ``()``)."""
    shape = tuple(int(s) for s in shape)
    if shape == ():
        return np.array(scalar_symbol(name), dtype=object)
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = ElementSymbol(name, idx)
    return out


def symbolic_tensor(name: str, shape=()):
    """A symad Tensor (nominal dtype float64) whose elements are real symbols ``name[i,...]``.

    >>> x = symbolic_tensor("x", (3,)); print((x * 2).sum()._data[()])
    2*x[0] + 2*x[1] + 2*x[2]
    """
    from .. import float64
    from ..tensor import Tensor
    return Tensor._wrap(symbol_array(name, shape), float64)
