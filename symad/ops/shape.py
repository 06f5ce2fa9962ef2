"""Shape and indexing ops: reshape/view, permute/transpose, expand, broadcast-reduce, indexing,
cat/stack, clone and dtype casts. Each VJP is written with other registered ops."""
from __future__ import annotations

import numpy as np

from .registry import register


def _norm_dims(dims, ndim):
    return tuple(d % ndim if ndim else 0 for d in dims)


# reshape family: one op, PyTorch's grad_fn name chosen by the caller's spelling (``kind``)
def _reshape_np(x, shape, kind="ViewBackward0"):
    return np.reshape(x, shape)


def _reshape_vjp(ctx, g):
    return (g.reshape(ctx.inputs[0].shape),)


register("reshape", grad_fn=lambda x, shape, kind="ViewBackward0": kind, forward=_reshape_np,
         vjp=_reshape_vjp, params=("shape", "kind"), dtype_rule="first")


def _permute_np(x, dims, kind="PermuteBackward0"):
    return np.transpose(x, dims)


def _permute_vjp(ctx, g):
    dims = ctx.params["dims"]
    inv = tuple(np.argsort(dims))
    return (g.permute(*inv),)


register("permute", grad_fn=lambda x, dims, kind="PermuteBackward0": kind, forward=_permute_np,
         vjp=_permute_vjp, params=("dims", "kind"), dtype_rule="first")


def _expand_np(x, shape):
    return np.broadcast_to(x, shape)


register("expand", grad_fn="ExpandBackward0", forward=_expand_np,
         vjp=lambda ctx, g: (g.sum_to_size(ctx.inputs[0].shape),), params=("shape",),
         dtype_rule="first")


def sum_to_shape(a: np.ndarray, shape) -> np.ndarray:
    """Sum ``a`` down to ``shape`` (the reverse of numpy broadcasting)."""
    shape = tuple(shape)
    if a.shape == shape:
        return a
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and a.shape[i + lead] != 1)
    out = a.sum(axis=axes, keepdims=True) if axes else a
    if lead:
        out = out.reshape(out.shape[lead:])
    return out.reshape(shape)


register("sum_to_size", grad_fn="SumBackward1",
         forward=lambda x, shape: sum_to_shape(x, shape),
         vjp=lambda ctx, g: (g.expand(*ctx.inputs[0].shape),), params=("shape",),
         dtype_rule="first", doc="broadcast-reduce: sum over broadcast dimensions")


def _index_kind(key):
    keys = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, (np.ndarray, list)) for k in keys):
        return "IndexBackward0"
    if any(isinstance(k, (int, np.integer)) for k in keys):
        return "SelectBackward0"
    if all(k is None or k is Ellipsis for k in keys):
        return "UnsqueezeBackward0"
    return "SliceBackward0"


def _getitem_vjp(ctx, g):
    from .functional import index_scatter
    return (index_scatter(g, ctx.params["key"], tuple(ctx.inputs[0].shape)),)


register("getitem", grad_fn=lambda x, key: _index_kind(key),
         forward=lambda x, key: x[key], vjp=_getitem_vjp, params=("key",), dtype_rule="first")


def _index_scatter_np(g, key, shape):
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(out, key, g)
    return out


register("index_scatter", grad_fn="IndexPutBackward0", forward=_index_scatter_np,
         vjp=lambda ctx, g: (g[ctx.params["key"]],), params=("key", "shape"),
         dtype_rule="first", doc="zeros(shape) with g added at key: the VJP of indexing")


def _index_put_np(x, v, key):
    out = x.copy()
    out[key] = v
    return out


def _index_put_vjp(ctx, g):
    from .functional import index_fill_zero
    key = ctx.params["key"]
    gx = index_fill_zero(g, key) if ctx.needs_input_grad[0] else None
    gv = None
    if ctx.needs_input_grad[1]:
        gv = g[key].sum_to_size(ctx.inputs[1].shape)
    return (gx, gv)


register("index_put", grad_fn="CopySlices", forward=_index_put_np, vjp=_index_put_vjp, nargs=2,
         params=("key",), dtype_rule="first", doc="x with x[key] = v (out of place)")


def _fill_zero_np(g, key):
    out = g.copy()
    out[key] = 0
    return out


def _fill_zero(g, key):
    from .functional import index_fill_zero
    return index_fill_zero(g, key)


register("index_fill_zero", grad_fn="IndexPutBackward0", forward=_fill_zero_np,
         vjp=lambda ctx, g: (_fill_zero(g, ctx.params["key"]),),
         params=("key",), dtype_rule="first")


def _cat_np(*xs, dim=0):
    return np.concatenate(xs, axis=dim)


def _cat_vjp(ctx, g):
    dim = ctx.params["dim"]
    out, start = [], 0
    for t in ctx.inputs:
        n = t.shape[dim]
        idx = (slice(None),) * (dim % g.ndim) + (slice(start, start + n),)
        out.append(g[idx])
        start += n
    return tuple(out)


register("cat", grad_fn="CatBackward0", forward=_cat_np, vjp=_cat_vjp, nargs=-1,
         params=("dim",))


def _stack_vjp(ctx, g):
    dim = ctx.params["dim"]
    return tuple(g.select(dim, i) for i in range(len(ctx.inputs)))


register("stack", grad_fn="StackBackward0", forward=lambda *xs, dim=0: np.stack(xs, axis=dim),
         vjp=_stack_vjp, nargs=-1, params=("dim",))

register("clone", grad_fn="CloneBackward0", forward=lambda x: np.array(x, copy=True),
         vjp=lambda ctx, g: (g,), dtype_rule="first")


def _to_np(x, dtype):
    return x.astype(dtype.np)


register("to_dtype", grad_fn="ToCopyBackward0", forward=_to_np, symbolic=lambda x, dtype: x,
         vjp=lambda ctx, g: (g.to(ctx.inputs[0].dtype),), params=("dtype",),
         dtype_rule="custom")
