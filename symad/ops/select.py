"""Selections by position: ``tril``/``triu`` (triangles of the last two dims) and ``gather``
(values picked along a dim by an index tensor). VJPs are written with registered ops: the same
triangle of the gradient, and a scatter-add (``index_scatter``) for gather."""
from __future__ import annotations

import numpy as np

from .registry import REGISTRY, register


def _tri_np(keep_lower: bool):
    def forward(x, diagonal=0):
        if x.ndim < 2:
            raise RuntimeError(f"{'tril' if keep_lower else 'triu'}: input tensor must have at "
                               f"least 2 dimensions")
        rows, cols = x.shape[-2:]
        i = np.arange(rows)[:, None]
        j = np.arange(cols)[None, :]
        mask = (j - i <= diagonal) if keep_lower else (j - i >= diagonal)
        zero = np.zeros((), dtype=x.dtype) if x.dtype != object else 0
        return np.where(mask, x, zero)
    return forward


register("tril", grad_fn="TrilBackward0", forward=_tri_np(True),
         vjp=lambda ctx, g: (g.tril(ctx.params["diagonal"]),), params=("diagonal",),
         dtype_rule="first", doc="lower triangle (j - i <= diagonal), zeros elsewhere")
register("triu", grad_fn="TriuBackward0", forward=_tri_np(False),
         vjp=lambda ctx, g: (g.triu(ctx.params["diagonal"]),), params=("diagonal",),
         dtype_rule="first", doc="upper triangle (j - i >= diagonal), zeros elsewhere")


def gather_key(index: np.ndarray, dim: int) -> tuple:
    """The advanced-indexing key that picks ``out[p] = x[p with p[dim] = index[p]]``."""
    grids = list(np.indices(index.shape, sparse=True))
    grids[dim] = index
    return tuple(grids)


def _gather_np(x, index, dim):
    return x[gather_key(np.asarray(index, dtype=np.int64), dim)]


# The VJPs below read the index TENSOR through registered ops (scatter_add, gather, scatter),
# never its values into an op parameter, so a recorded program replays them with each call's
# indices.
def _zeros_like(t):
    from .functional import zeros_like
    return zeros_like(t)


def _gather_vjp(ctx, g):
    from .dispatch import apply
    x, index = ctx.inputs
    return (apply(REGISTRY["scatter_add"], _zeros_like(x), index, g, dim=ctx.params["dim"]),
            None)


register("gather", grad_fn="GatherBackward0", forward=_gather_np, vjp=_gather_vjp, nargs=2,
         params=("dim",), dtype_rule="first",
         doc="out[i][j] = x[i][index[i][j]] (dim 1): values along ``dim`` at ``index``")


# scatter / scatter_add: write (or add) ``src`` into a copy of ``x`` at the positions gather reads
def _src_part(src, index):
    """The entries of ``src`` that the index addresses (``src`` may be larger than ``index``)."""
    return src[tuple(slice(0, n) for n in index.shape)]


def _scatter_np(x, index, src, dim):
    out = np.array(x, copy=True)
    out[gather_key(np.asarray(index, dtype=np.int64), dim)] = _src_part(src, index)
    return out


def _scatter_add_np(x, index, src, dim):
    out = np.array(x, copy=True)
    np.add.at(out, gather_key(np.asarray(index, dtype=np.int64), dim), _src_part(src, index))
    return out


def _src_grad(ctx, g):
    """d/d src: the gathered gradient, in the index-shaped corner of ``src``'s shape."""
    from .dispatch import apply
    from .functional import index_scatter
    _, index, src = ctx.inputs
    gs = apply(REGISTRY["gather"], g, index, dim=ctx.params["dim"])
    if tuple(src.shape) != tuple(index.shape):
        gs = index_scatter(gs, tuple(slice(0, n) for n in index.shape), tuple(src.shape))
    return gs


def _scatter_vjp(ctx, g):
    """PyTorch's ScatterBackward: self gets g with the written positions zeroed, src gets
    g gathered at the index."""
    from .dispatch import apply
    index = ctx.inputs[1]
    zeros = _zeros_like(_src_part_tensor(ctx.inputs[2], index))
    gx = apply(REGISTRY["scatter"], g, index, zeros, dim=ctx.params["dim"]) \
        if ctx.needs_input_grad[0] else None
    return (gx, None, _src_grad(ctx, g) if ctx.needs_input_grad[2] else None)


def _src_part_tensor(src, index):
    if tuple(src.shape) == tuple(index.shape):
        return src
    return src[tuple(slice(0, n) for n in index.shape)]


def _scatter_add_vjp(ctx, g):
    return (g if ctx.needs_input_grad[0] else None, None,
            _src_grad(ctx, g) if ctx.needs_input_grad[2] else None)


register("scatter", grad_fn="ScatterBackward0", forward=_scatter_np, vjp=_scatter_vjp, nargs=3,
         params=("dim",), dtype_rule="first",
         doc="x with x[index[i][j]][j] = src[i][j] (dim 0): gather's positions overwritten")
register("scatter_add", grad_fn="ScatterAddBackward0", forward=_scatter_add_np,
         vjp=_scatter_add_vjp, nargs=3, params=("dim",), dtype_rule="first",
         doc="x with src[i][j] added at x[index[i][j]][j] (dim 0); repeated positions add up")
