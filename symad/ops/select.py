"""Selections by position: ``tril``/``triu`` (triangles of the last two dims) and ``gather``
(values picked along a dim by an index tensor). VJPs are written with registered ops: the same
triangle of the gradient, and a scatter-add (``index_scatter``) for gather."""
from __future__ import annotations

import numpy as np

from .registry import register


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


def _gather_vjp(ctx, g):
    from .functional import index_scatter
    x, index = ctx.inputs
    key = gather_key(index._data.astype(np.int64), ctx.params["dim"])
    return (index_scatter(g, key, tuple(x.shape)), None)


register("gather", grad_fn="GatherBackward0", forward=_gather_np, vjp=_gather_vjp, nargs=2,
         params=("dim",), dtype_rule="first",
         doc="out[i][j] = x[i][index[i][j]] (dim 1): values along ``dim`` at ``index``")
