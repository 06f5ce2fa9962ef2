"""Elementwise ops, each declared once by its SymPy scalar formula (plus a named numpy fast path).

Derivatives come from SymPy (``Op.derivative_exprs``); PyTorch's conventions at kinks follow from
the formulas: relu'(0) = 0 (strict ``x > 0``), abs'(0) = sign(0) = 0, clamp's edge gradient is 0
(the edge branches include their ends, PyTorch 2.14), maximum/minimum split ties evenly (the tie branch is the
average), and DiracDelta terms (derivatives of steps) are taken as 0.
"""
from __future__ import annotations

import numpy as np
import sympy
from sympy import Piecewise

from .derivatives import piecewise
from .registry import _np_sigmoid, register, sigmoid

Pw = Piecewise


def _unary(name, grad_fn, np_fn, formula, dtype_rule="float", doc=""):
    return register(name, grad_fn=grad_fn, forward=np_fn, formula=formula, nargs=1,
                    dtype_rule=dtype_rule, doc=doc)


def _binary(name, grad_fn, np_fn, formula, dtype_rule="promote", doc=""):
    return register(name, grad_fn=grad_fn, forward=np_fn, formula=formula, nargs=2,
                    dtype_rule=dtype_rule, doc=doc)


_unary("neg", "NegBackward0", np.negative, lambda x: -x, dtype_rule="promote")
_unary("exp", "ExpBackward0", np.exp, sympy.exp)
_unary("log", "LogBackward0", np.log, sympy.log)
_unary("sqrt", "SqrtBackward0", np.sqrt, sympy.sqrt)
_unary("sin", "SinBackward0", np.sin, sympy.sin)
_unary("cos", "CosBackward0", np.cos, sympy.cos)
_unary("tan", "TanBackward0", np.tan, sympy.tan)
_unary("tanh", "TanhBackward0", np.tanh, sympy.tanh)
_unary("sinh", "SinhBackward0", np.sinh, sympy.sinh)
_unary("cosh", "CoshBackward0", np.cosh, sympy.cosh)
_unary("atan", "AtanBackward0", np.arctan, sympy.atan)
_unary("asin", "AsinBackward0", np.arcsin, sympy.asin)
_unary("acos", "AcosBackward0", np.arccos, sympy.acos)
_unary("log1p", "Log1PBackward0", np.log1p, lambda x: sympy.log(1 + x))
_unary("expm1", "Expm1Backward0", np.expm1, lambda x: sympy.exp(x) - 1)
_unary("reciprocal", "ReciprocalBackward0", np.reciprocal, lambda x: 1 / x)
_unary("sigmoid", "SigmoidBackward0", _np_sigmoid, sigmoid)
_unary("abs", "AbsBackward0", np.abs, sympy.Abs, dtype_rule="promote")
_unary("sign", "SignBackward0", np.sign, sympy.sign, dtype_rule="promote")
_unary("relu", "ReluBackward0", lambda x: np.maximum(x, 0).astype(x.dtype, copy=False),
       lambda x: Pw((x, x > 0), (0, True)), dtype_rule="promote")

_binary("add", "AddBackward0", np.add, lambda a, b: a + b)
_binary("sub", lambda a, b: "SubBackward0", np.subtract, lambda a, b: a - b)
_binary("rsub", "RsubBackward1", lambda a, b: np.subtract(b, a), lambda a, b: b - a)
_binary("mul", "MulBackward0", np.multiply, lambda a, b: a * b)
_binary("div", "DivBackward0", np.true_divide, lambda a, b: a / b, dtype_rule="float")
# pow's PyTorch conventions at 0**0 are the Pow rule of symad.ops.derivatives (one table)
register("pow", grad_fn="PowBackward1", forward=np.power, formula=lambda a, b: a ** b, nargs=2,
         dtype_rule="promote")
_binary("maximum", "MaximumBackward0", np.maximum,
        lambda a, b: Pw((a, a > b), (b, a < b), ((a + b) / 2, True)))
_binary("minimum", "MinimumBackward0", np.minimum,
        lambda a, b: Pw((a, a < b), (b, a > b), ((a + b) / 2, True)))


def _pow_scalar_np(x, exponent):
    return np.power(x, exponent)


register("pow_scalar", grad_fn="PowBackward0", forward=_pow_scalar_np, nargs=1,
         formula=lambda x, exponent: x ** exponent, params=("exponent",), dtype_rule="promote",
         dtype_params=("exponent",),
         doc="x ** exponent for a Python-number exponent")


def _clamp_np(x, min=None, max=None):
    out = x
    if min is not None:
        out = np.maximum(out, min)
    if max is not None:
        out = np.minimum(out, max)
    return out


def _clamp_formula(x, min=None, max=None):
    """PyTorch's clamp with number bounds: ``max`` where ``x >= max`` (or where ``min >= max``:
    clamp applies ``max`` last), ``min`` where ``x <= min``, else ``x`` -- so the gradient is 1
    strictly inside ``(min, max)`` and 0 at the edges, as in PyTorch 2.14 (like hardtanh and
    relu'(0) = 0). Tensor bounds are ``maximum``/``minimum`` (ties split the gradient)."""
    pieces = []
    if max is not None:
        pieces.append((max, (x >= max) | (min >= max) if min is not None else x >= max))
    if min is not None:
        pieces.append((min, x <= min))
    pieces.append((x, True))
    return Pw(*pieces)


register("clamp", grad_fn="ClampBackward1", forward=_clamp_np, formula=_clamp_formula, nargs=1,
         params=("min", "max"), dtype_rule="promote", dtype_params=("min", "max"),
         doc="clamp(x, min, max); gradient 1 strictly inside (min, max), 0 at the edges "
             "(PyTorch 2.14)")


def _clamp_min_np(x, min):
    return _clamp_np(x, min=min)


def _clamp_max_np(x, max):
    return _clamp_np(x, max=max)


def _clamp_min_formula(x, min):
    return _clamp_formula(x, min=min)


def _clamp_max_formula(x, max):
    return _clamp_formula(x, max=max)


register("clamp_min", grad_fn="ClampMinBackward0", forward=_clamp_min_np,
         formula=_clamp_min_formula, nargs=1, params=("min",), dtype_rule="promote",
         dtype_params=("min",), doc="clamp_min(x, min): clamp with a lower bound only")
register("clamp_max", grad_fn="ClampMaxBackward0", forward=_clamp_max_np,
         formula=_clamp_max_formula, nargs=1, params=("max",), dtype_rule="promote",
         dtype_params=("max",), doc="clamp_max(x, max): clamp with an upper bound only")


def _rel_symbolic(rel):
    f = np.frompyfunc(rel, 2, 1)
    return lambda a, b: f(a, b)


_NONDIFF_CMP = "comparisons are piecewise constant: no gradient flows through them"
for _name, _np_fn, _rel in [
    ("eq", np.equal, sympy.Eq), ("ne", np.not_equal, sympy.Ne),
    ("lt", np.less, sympy.Lt), ("le", np.less_equal, sympy.Le),
    ("gt", np.greater, sympy.Gt), ("ge", np.greater_equal, sympy.Ge),
]:
    register(_name, grad_fn="", forward=_np_fn, nargs=2, dtype_rule="bool",
             nondiff_reason=_NONDIFF_CMP, symbolic=_rel_symbolic(_rel))

register("logical_and", grad_fn="", forward=np.logical_and, nargs=2, dtype_rule="bool",
         nondiff_reason=_NONDIFF_CMP, symbolic=_rel_symbolic(sympy.And))
register("logical_or", grad_fn="", forward=np.logical_or, nargs=2, dtype_rule="bool",
         nondiff_reason=_NONDIFF_CMP, symbolic=_rel_symbolic(sympy.Or))
register("logical_not", grad_fn="", forward=np.logical_not, nargs=1, dtype_rule="bool",
         nondiff_reason=_NONDIFF_CMP, symbolic=lambda a: np.frompyfunc(sympy.Not, 1, 1)(a))
def _zero_vjp(ctx, g):
    from .functional import zeros_like
    return tuple(zeros_like(t) if need else None
                 for t, need in zip(ctx.inputs, ctx.needs_input_grad))


register("floor", grad_fn="FloorBackward0", forward=np.floor, nargs=1, dtype_rule="first",
         vjp=_zero_vjp, symbolic=lambda a: np.frompyfunc(sympy.floor, 1, 1)(a),
         doc="floor; piecewise constant, so its gradient is zero (as in PyTorch)")
register("floor_divide", grad_fn="", forward=np.floor_divide, nargs=2, dtype_rule="promote",
         nondiff_reason="floor division is piecewise constant",
         symbolic=_rel_symbolic(lambda a, b: sympy.floor(a / b)))
register("fill", grad_fn=lambda x, value, kind="FillBackward2": kind,
         forward=lambda x, value, kind=None: np.full_like(x, value), vjp=_zero_vjp, nargs=1,
         params=("value", "kind"), dtype_rule="first",
         doc="x's shape filled with a constant: fill_/zero_ on a tensor in a graph (zero grad)")


def _remainder_vjp(ctx, g):
    """a - b * floor(a / b): d/da = 1, d/db = -floor(a / b) (PyTorch's RemainderBackward0)."""
    from .functional import div
    a, b = ctx.inputs
    return (g if ctx.needs_input_grad[0] else None,
            -g * div(a, b, rounding_mode="floor") if ctx.needs_input_grad[1] else None)


register("remainder", grad_fn="RemainderBackward0", forward=np.remainder, nargs=2,
         dtype_rule="promote", vjp=_remainder_vjp, symbolic=_rel_symbolic(sympy.Mod))


def _where_vjp(ctx, g):
    from .functional import where, zeros_like
    c = ctx.inputs[0]
    z = zeros_like(g)
    return (None,
            where(c, g, z) if ctx.needs_input_grad[1] else None,
            where(c, z, g) if ctx.needs_input_grad[2] else None)


def _where_symbolic(c, a, b):
    def one(ci, ai, bi):
        if ci is True or ci is sympy.true or ci is np.True_:
            return ai
        if ci is False or ci is sympy.false or ci is np.False_:
            return bi
        # built as is: SymPy's Piecewise folds a condition holding a Piecewise (slow, and an
        # AssertionError inside SymPy on some)
        return piecewise((ai, ci), (bi, sympy.true))
    return np.frompyfunc(one, 3, 1)(c, a, b)


def _where_dtype(c, a, b):
    return np.where(c, a, b)


register("where", grad_fn="WhereBackward0", forward=_where_dtype, vjp=_where_vjp, nargs=3,
         symbolic=_where_symbolic, dtype_rule="where",
         doc="where(cond, a, b); the condition gets no gradient")
