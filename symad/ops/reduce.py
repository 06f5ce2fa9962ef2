"""Reductions and normalizations: sum, mean, prod, amax/amin, max/min along a dim, norm,
logsumexp, softmax, log_softmax. VJPs are written with registered ops."""
from __future__ import annotations

import numpy as np
import sympy

from ..autograd.recording import opaque as _opaque
from .registry import register, sym_map


def _axes(dim, ndim):
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return tuple(d % max(ndim, 1) for d in dims)


_SHORT_AXIS = 16


def reduce_axis(ufunc, x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    """``ufunc.reduce(x, axis, keepdims)``. numpy reduces a short LAST axis of a large array
    row by row (a 1797x10 max took ~90 µs against ~5 µs for the same work column-wise), so such
    axes are folded column by column instead; the result is the same up to the order of a sum's
    terms (max/min exactly)."""
    nd = x.ndim
    if (x.dtype.kind == "f" and nd >= 2 and axis % nd == nd - 1
            and 1 < x.shape[-1] <= _SHORT_AXIS and x.size >= 2048):
        out = ufunc(x[..., 0], x[..., 1])
        for i in range(2, x.shape[-1]):
            ufunc(out, x[..., i], out=out)
        return out[..., None] if keepdims else out
    return ufunc.reduce(x, axis=axis, keepdims=keepdims)


def _expand_back(g, ctx):
    """Broadcast a reduced gradient back to the input's shape."""
    x = ctx.inputs[0]
    dim, keepdim = ctx.params.get("dim"), ctx.params.get("keepdim", False)
    if dim is not None and not keepdim and x.ndim:
        for d in sorted(_axes(dim, x.ndim)):
            g = g.unsqueeze(d)
    elif dim is None and x.ndim and g.ndim:
        g = g.reshape((1,) * x.ndim)
    return g.expand(*x.shape)  # a 0-d gradient broadcasts directly


def _sum_np(x, dim=None, keepdim=False):
    axes = _axes(dim, x.ndim)
    if axes is not None and len(axes) == 1 and x.dtype.kind == "f":
        return reduce_axis(np.add, x, axes[0], keepdim)
    out = np.sum(x, axis=axes, keepdims=keepdim)
    if x.dtype == np.bool_ or x.dtype.kind in "iu":
        out = np.asarray(out, dtype=np.int64)
    return out


register("sum", grad_fn=lambda x, dim=None, keepdim=False: "SumBackward0" if dim is None
         else "SumBackward1", forward=_sum_np, vjp=lambda ctx, g: (_expand_back(g, ctx),),
         params=("dim", "keepdim"), dtype_rule="custom")


def _count(x, dim):
    if dim is None:
        return int(np.prod(x.shape))
    return int(np.prod([x.shape[d] for d in _axes(dim, x.ndim)]))


def _mean_np(x, dim=None, keepdim=False):
    if x.dtype.kind not in "fO":
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {x.dtype}")
    if x.dtype == object:
        n = _count(x, dim)
        return np.sum(x, axis=_axes(dim, x.ndim), keepdims=keepdim) / sympy.Integer(n)
    return np.mean(x, axis=_axes(dim, x.ndim), keepdims=keepdim)


register("mean", grad_fn=lambda x, dim=None, keepdim=False: "MeanBackward0" if dim is None
         else "MeanBackward1", forward=_mean_np,
         vjp=lambda ctx, g: (_expand_back(g, ctx) / _count(ctx.inputs[0], ctx.params.get("dim")),),
         params=("dim", "keepdim"), dtype_rule="first")


def _prod_np(x, dim=None, keepdim=False):
    return np.prod(x, axis=_axes(dim, x.ndim), keepdims=keepdim)


def _prod_vjp(ctx, g):
    """Product of all other elements, exact even when some inputs are zero."""
    from ..autograd.grad_mode import is_grad_enabled
    from ..tensor import Tensor
    x = ctx.inputs[0]
    dim = ctx.params.get("dim")
    if is_grad_enabled() and (x.requires_grad or g.requires_grad):
        return (_expand_back(g, ctx) * _expand_back(ctx.output, ctx) / x,)
    a = x._data
    axis = 0 if dim is None else _axes(dim, a.ndim)[0]
    flat = a.reshape(-1) if dim is None else np.moveaxis(a, axis, -1)
    ones = np.ones_like(flat[..., :1])
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([ones, flat[..., ::-1][..., :-1]], axis=-1),
                       axis=-1)[..., ::-1]
    others = left * right
    others = others.reshape(a.shape) if dim is None else np.moveaxis(others, -1, axis)
    return (_expand_back(g, ctx) * _opaque(Tensor._wrap(others.astype(a.dtype, copy=False))),)


register("prod", grad_fn=lambda x, dim=None, keepdim=False: "ProdBackward0" if dim is None
         else "ProdBackward1", forward=_prod_np, vjp=_prod_vjp, params=("dim", "keepdim"),
         dtype_rule="first")


def _extreme_np(sym_fn, np_fn):
    """amax/amin forward: numpy's, or SymPy's Max/Min along the axis on traced elements."""
    def forward(x, dim=None, keepdim=False):
        ax = _axes(dim, x.ndim)
        if x.dtype != object:
            return np_fn(x, axis=ax, keepdims=keepdim)
        if ax is None:
            return np.asarray(sym_fn(*x.reshape(-1)), dtype=object)
        out = np.apply_along_axis(lambda v: sym_fn(*v), ax[0], x)
        return np.expand_dims(out, ax[0]) if keepdim else out
    return forward


_amax_np = _extreme_np(sympy.Max, np.amax)
_amin_np = _extreme_np(sympy.Min, np.amin)


def _extreme_vjp(ctx, g):
    """Ties share the gradient evenly (PyTorch's amax/amin and full max/min)."""
    x = ctx.inputs[0]
    out = _expand_back(ctx.output, ctx)
    mask = (x == out).to(x.dtype)
    dim = ctx.params.get("dim")
    count = mask.sum(dim=dim, keepdim=True) if dim is not None else mask.sum()
    return (_expand_back(g, ctx) * mask / count,)


for _n, _f in [("amax", _amax_np), ("amin", _amin_np)]:
    # ``kind``: PyTorch names the node after the spelling (amax -> AmaxBackward0, a full
    # max() -> MaxBackward1); one op serves both
    register(_n, grad_fn=(lambda nm: lambda x, dim=None, keepdim=False, kind=None:
                          kind or f"{nm.capitalize()}Backward0")(_n),
             forward=(lambda f: lambda x, dim=None, keepdim=False, kind=None:
                      f(x, dim, keepdim))(_f),
             vjp=_extreme_vjp, params=("dim", "keepdim", "kind"), dtype_rule="first")


def _argext(x, dim, largest):
    a = x._data
    return np.argmax(a, axis=dim) if largest else np.argmin(a, axis=dim)


def _max_dim_vjp(ctx, g):
    """max(dim)/min(dim): the gradient goes to the selected index only (PyTorch)."""
    from .functional import index_scatter
    x = ctx.inputs[0]
    dim, keepdim, largest = ctx.params["dim"], ctx.params["keepdim"], ctx.params["largest"]
    d = dim % x.ndim
    idx = _argext(x, d, largest)
    if keepdim:
        g = g.squeeze(d)
    grids = list(np.indices(idx.shape, sparse=True))
    key = tuple(grids[:d]) + (idx,) + tuple(grids[d:])
    return (index_scatter(g, key, tuple(x.shape)),)


def _max_dim_np(x, dim, keepdim=False, largest=True):
    if x.dtype == object:
        return (_amax_np if largest else _amin_np)(x, dim, keepdim)
    f = np.max if largest else np.min
    return f(x, axis=dim, keepdims=keepdim)


register("max_dim", grad_fn=lambda x, dim, keepdim=False, largest=True:
         "MaxBackward0" if largest else "MinBackward0", forward=_max_dim_np, vjp=_max_dim_vjp,
         params=("dim", "keepdim", "largest"), dtype_rule="first")


def _norm_np(x, dim=None, keepdim=False):
    if x.dtype == object:
        s = np.sum(x * x, axis=_axes(dim, x.ndim), keepdims=keepdim)
        return sym_map(sympy.sqrt)(s)
    return np.sqrt(np.sum(x * x, axis=_axes(dim, x.ndim), keepdims=keepdim))


def _norm_vjp(ctx, g):
    from .functional import where, zeros_like
    x = ctx.inputs[0]
    n = _expand_back(ctx.output, ctx)
    safe = where(n == 0, 1.0, n)
    return (where(n == 0, zeros_like(x), _expand_back(g, ctx) * x / safe),)


register("norm2", grad_fn="LinalgVectorNormBackward0", forward=_norm_np, vjp=_norm_vjp,
         params=("dim", "keepdim"), dtype_rule="first",
         doc="Euclidean norm; gradient 0 at the origin (PyTorch)")


def _sym_exp(a):
    return sym_map(sympy.exp)(a)


def _sym_log(a):
    return sym_map(sympy.log)(a)


def _logsumexp_np(x, dim, keepdim=False):
    if x.dtype == object:
        return _sym_log(np.sum(_sym_exp(x), axis=_axes(dim, x.ndim), keepdims=keepdim))
    m = np.amax(x, axis=_axes(dim, x.ndim), keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=_axes(dim, x.ndim), keepdims=True)) + m
    return out if keepdim else np.squeeze(out, axis=_axes(dim, x.ndim))


register("logsumexp", grad_fn="LogsumexpBackward0", forward=_logsumexp_np,
         vjp=lambda ctx, g: (_expand_back(g, ctx) * (ctx.inputs[0]
                                                    - _expand_back(ctx.output, ctx)).exp(),),
         params=("dim", "keepdim"), dtype_rule="float")


def _softmax_np(x, dim):
    if x.dtype == object:
        e = _sym_exp(x)
        return e / np.sum(e, axis=dim, keepdims=True)
    m = reduce_axis(np.maximum, x, dim, keepdims=True)
    e = np.exp(x - m)
    return e / reduce_axis(np.add, e, dim, keepdims=True)


def _softmax_vjp(ctx, g):
    y = ctx.output
    dim = ctx.params["dim"]
    return (y * (g - (g * y).sum(dim=dim, keepdim=True)),)


def _softmax_decompose(x, dim):
    e = (x - x.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


register("softmax", grad_fn="SoftmaxBackward0", forward=_softmax_np, vjp=_softmax_vjp,
         params=("dim",), dtype_rule="float", decompose=_softmax_decompose)


def _log_softmax_np(x, dim):
    if x.dtype == object:
        return x - _sym_log(np.sum(_sym_exp(x), axis=dim, keepdims=True))
    m = reduce_axis(np.maximum, x, dim, keepdims=True)
    s = x - m
    return s - np.log(reduce_axis(np.add, np.exp(s), dim, keepdims=True))


def _log_softmax_vjp(ctx, g):
    y = ctx.output
    dim = ctx.params["dim"]
    return (g - y.exp() * g.sum(dim=dim, keepdim=True),)


def _log_softmax_decompose(x, dim):
    s = x - x.amax(dim=dim, keepdim=True)
    return s - s.exp().sum(dim=dim, keepdim=True).log()


register("log_softmax", grad_fn="LogSoftmaxBackward0", forward=_log_softmax_np,
         vjp=_log_softmax_vjp, params=("dim",), dtype_rule="float",
         decompose=_log_softmax_decompose)
