"""Rounding ops other than floor: ``round`` (half to even, optional ``decimals``), ``ceil`` and
``trunc``. Piecewise constant, so their gradient is zero everywhere (as in PyTorch)."""
from __future__ import annotations

import numpy as np
import sympy

from .elementwise import _zero_vjp
from .registry import NUMPY_FUNCS, register
from .sym2tensor import register_function


class round_half_even(sympy.Function):
    """``round(x)`` with ties to even (IEEE / numpy / PyTorch); derivative 0."""

    is_real = True

    @classmethod
    def eval(cls, x):
        if x.is_Rational:
            f = sympy.floor(x)
            frac = x - f
            if frac > sympy.Rational(1, 2) or (frac == sympy.Rational(1, 2) and f % 2 == 1):
                return f + 1
            return f
        if x.is_Float:
            return sympy.Float(np.round(float(x)))
        return None

    def fdiff(self, argindex=1):
        return sympy.S.Zero

    def _eval_evalf(self, prec):
        v = self.args[0].evalf(prec)
        return round_half_even(v) if v.is_Number else None


NUMPY_FUNCS["round_half_even"] = np.round


def _round_tensor(e, ev):
    from .dispatch import apply
    from .functional import as_tensor_like
    from .registry import REGISTRY
    return apply(REGISTRY["round"], as_tensor_like(ev(e.args[0])), decimals=0)


register_function(round_half_even, _round_tensor)


def _round_np(x, decimals=0):
    return np.round(x, decimals)


def _round_symbolic(x, decimals=0):
    s = sympy.Integer(10) ** decimals
    f = (lambda e: round_half_even(e)) if decimals == 0 else \
        (lambda e: round_half_even(e * s) / s)
    return np.frompyfunc(f, 1, 1)(x)


register("round", grad_fn=lambda x, decimals=0: "RoundBackward0" if decimals == 0
         else "RoundBackward1", forward=_round_np, nargs=1, params=("decimals",),
         dtype_rule="first", vjp=_zero_vjp, symbolic=_round_symbolic,
         doc="round half to even (to ``decimals`` places); zero gradient (as in PyTorch)")
register("ceil", grad_fn="CeilBackward0", forward=np.ceil, nargs=1, dtype_rule="first",
         vjp=_zero_vjp, symbolic=lambda a: np.frompyfunc(lambda e: -sympy.floor(-e), 1, 1)(a),
         doc="ceil; piecewise constant, so its gradient is zero (as in PyTorch)")
register("trunc", grad_fn="TruncBackward0", forward=np.trunc, nargs=1, dtype_rule="first",
         vjp=_zero_vjp,
         symbolic=lambda a: np.frompyfunc(lambda e: sympy.sign(e) * sympy.floor(sympy.Abs(e)),
                                          1, 1)(a),
         doc="round toward zero; zero gradient (as in PyTorch)")
