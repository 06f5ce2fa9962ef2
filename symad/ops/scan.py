"""``cumsum`` along a dimension; its VJP is a reversed cumulative sum written with registered ops
(``sum - cumsum + g``)."""
from __future__ import annotations

import numpy as np

from .registry import register


def _cumsum_np(x, dim):
    out = np.cumsum(x, axis=dim % max(x.ndim, 1)) if x.ndim else np.array(x, copy=True)
    if x.dtype == np.bool_ or x.dtype.kind in "iu":
        out = np.asarray(out, dtype=np.int64)  # PyTorch: integer cumsum is int64
    return out


def _cumsum_vjp(ctx, g):
    """d/dx_j of sum_i g_i y_i with y_i = sum_{j<=i} x_j is sum_{i>=j} g_i: a reversed cumsum."""
    if g.ndim == 0:
        return (g,)
    dim = ctx.params["dim"]
    return (g.sum(dim, keepdim=True) - g.cumsum(dim) + g,)


register("cumsum", grad_fn="CumsumBackward0", forward=_cumsum_np, vjp=_cumsum_vjp,
         params=("dim",), dtype_rule="custom", doc="cumulative sum along ``dim``")
