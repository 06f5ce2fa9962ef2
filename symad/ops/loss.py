"""Loss primitives with PyTorch's grad_fn names. (cross_entropy and l1_loss are composites in
:mod:`symad.ops.functional`.)"""
from __future__ import annotations

import numpy as np
import sympy

from .registry import register, sym_map

_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction "
                         "(use 'mean', 'sum' or 'none')")


def _reduce_np(v, reduction):
    if reduction == "none":
        return v
    s = np.sum(v)
    if reduction == "sum":
        return s
    return s / (sympy.Integer(v.size) if v.dtype == object else v.size)


def _reduce_grad(g, ctx, shape):
    """The upstream gradient of a reduced loss, broadcast to the elementwise shape."""
    r = ctx.params["reduction"]
    if r == "none":
        return g
    n = int(np.prod(shape))
    g = g.expand(*shape)
    return g / n if r == "mean" else g


def _mse_np(x, y, reduction="mean"):
    d = x - y
    return _reduce_np(d * d, reduction)


def _mse_vjp(ctx, g):
    x, y = ctx.inputs
    shape = np.broadcast_shapes(tuple(x.shape), tuple(y.shape))
    d = 2 * (x - y) * _reduce_grad(g, ctx, shape)
    return (d if ctx.needs_input_grad[0] else None, -d if ctx.needs_input_grad[1] else None)


register("mse_loss", grad_fn="MseLossBackward0", forward=_mse_np, vjp=_mse_vjp, nargs=2,
         params=("reduction",))


def _sym_log(a):
    return sym_map(sympy.log)(a)


def _bce_np(x, y, reduction="mean"):
    if x.dtype == object or y.dtype == object:
        v = -(y * _sym_log(x) + (1 - y) * _sym_log(1 - x))
    else:
        # PyTorch clamps each log at -100 so that a saturated probability gives a finite loss
        v = -(y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log1p(-x), -100))
    return _reduce_np(v, reduction)


def _bce_vjp(ctx, g):
    x, y = ctx.inputs
    gg = _reduce_grad(g, ctx, tuple(x.shape))
    eps = 1e-12
    gx = gg * (x - y) / ((x * (1 - x)).clamp(min=eps)) if ctx.needs_input_grad[0] else None
    gy = None
    if ctx.needs_input_grad[1]:
        gy = gg * ((1 - x).log().clamp(min=-100) - x.log().clamp(min=-100))
    return (gx, gy)


register("binary_cross_entropy", grad_fn="BinaryCrossEntropyBackward0", forward=_bce_np,
         vjp=_bce_vjp, nargs=2, params=("reduction",))


def _bce_logits_np(x, y, reduction="mean"):
    if x.dtype == object or y.dtype == object:
        sig = np.frompyfunc(lambda t: sympy.log(1 + sympy.exp(-t)), 1, 1)
        v = (1 - y) * x + sig(x)
    else:
        v = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    return _reduce_np(v, reduction)


def _bce_logits_vjp(ctx, g):
    x, y = ctx.inputs
    gg = _reduce_grad(g, ctx, np.broadcast_shapes(tuple(x.shape), tuple(y.shape)))
    gx = gg * (x.sigmoid() - y) if ctx.needs_input_grad[0] else None
    gy = -gg * x if ctx.needs_input_grad[1] else None
    return (gx, gy)


register("binary_cross_entropy_with_logits", grad_fn="BinaryCrossEntropyWithLogitsBackward0",
         forward=_bce_logits_np, vjp=_bce_logits_vjp, nargs=2, params=("reduction",))


def _nll_key(logp_shape, target):
    n = logp_shape[0]
    return (np.arange(n), np.asarray(target, dtype=np.int64))


def _nll_np(logp, target, reduction="mean"):
    t = np.asarray(target, dtype=np.int64)
    if logp.ndim == 1:
        v = -logp[t]
    else:
        if t.min(initial=0) < 0 or t.max(initial=0) >= logp.shape[1]:
            raise IndexError(f"Target {int(t.max())} is out of bounds (the input has "
                             f"{logp.shape[1]} classes)")
        v = -logp[_nll_key(logp.shape, t)]
    return _reduce_np(v, reduction)


def _nll_vjp(ctx, g):
    from .functional import index_scatter
    logp, target = ctx.inputs
    t = target._data.astype(np.int64)
    if logp.ndim == 1:
        return (index_scatter(-_reduce_grad(g, ctx, ()), (t,), tuple(logp.shape)), None)
    gg = _reduce_grad(g, ctx, (logp.shape[0],))
    return (index_scatter(-gg, _nll_key(logp.shape, t), tuple(logp.shape)), None)


register("nll_loss", grad_fn="NllLossBackward0", forward=_nll_np, vjp=_nll_vjp, nargs=2,
         params=("reduction",), dtype_rule="first")
