"""Layer normalisation and embedding lookup as structural registry ops (PyTorch's
``NativeLayerNormBackward0`` / ``EmbeddingBackward0``), with VJPs written in registered ops so
their backward graphs are differentiable again."""
from __future__ import annotations

import numpy as np
import sympy

from .registry import REGISTRY, register, sym_map


def _norm_axes(x_ndim: int, normalized_shape) -> tuple:
    return tuple(range(x_ndim - len(normalized_shape), x_ndim))


def _layer_norm_np(x, *affine, normalized_shape, eps):
    axes = _norm_axes(x.ndim, normalized_shape)
    n = int(np.prod(normalized_shape))
    if x.dtype == object:
        mu = np.sum(x, axis=axes, keepdims=True) / n
        d = x - mu
        var = np.sum(d * d, axis=axes, keepdims=True) / n
        y = d / sym_map(sympy.sqrt)(var + sympy.Float(eps))
    else:
        mu = x.mean(axis=axes, keepdims=True)
        d = x - mu
        var = (d * d).mean(axis=axes, keepdims=True)  # biased, as PyTorch
        y = d / np.sqrt(var + x.dtype.type(eps))
    if affine:
        y = y * affine[0]
        if len(affine) > 1:
            y = y + affine[1]
    return y


def _layer_norm_vjp(ctx, g):
    """x̂ = (x - μ)·r with r = 1/sqrt(var + eps); with ĝ = g·w:
    dx = r·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂)), dw = Σ_batch g·x̂, db = Σ_batch g."""
    x = ctx.inputs[0]
    shape = ctx.params["normalized_shape"]
    dims = _norm_axes(x.ndim, shape)
    batch = tuple(range(x.ndim - len(shape)))
    mu = x.mean(dim=dims, keepdim=True)
    d = x - mu
    r = ((d * d).mean(dim=dims, keepdim=True) + ctx.params["eps"]).rsqrt()
    xhat = d * r
    need = ctx.needs_input_grad
    gh = g * ctx.inputs[1] if len(ctx.inputs) > 1 else g
    gx = None
    if need[0]:
        gx = r * (gh - gh.mean(dim=dims, keepdim=True)
                  - xhat * (gh * xhat).mean(dim=dims, keepdim=True))
    out = [gx]
    if len(ctx.inputs) > 1:
        gw = None
        if need[1]:
            gw = (g * xhat).sum(dim=batch) if batch else g * xhat
        out.append(gw)
    if len(ctx.inputs) > 2:
        out.append((g.sum(dim=batch) if batch else g) if need[2] else None)
    return tuple(out)


register("layer_norm", grad_fn="NativeLayerNormBackward0", forward=_layer_norm_np,
         vjp=_layer_norm_vjp, nargs=-1, params=("normalized_shape", "eps"), dtype_rule="first",
         doc="(x - mean)/sqrt(var + eps) over the trailing normalized_shape dims, "
             "then · weight + bias")


def _embedding_np(weight, indices, *, padding_idx=None):
    idx = np.asarray(indices, dtype=np.int64)
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError("index out of range in self")
    return weight[idx]


def _embedding_vjp(ctx, g):
    """Rows are summed per index (repeated indices accumulate); the padding row gets none."""
    # a scatter-add over the indices TENSOR (registered op), so a recorded program reads each
    # call's indices instead of baking this call's into an op parameter
    from .dispatch import apply
    from .functional import index_fill_zero, zeros_like
    weight, indices = ctx.inputs
    d = weight.shape[1]
    m = int(np.prod(indices.shape)) if indices.ndim else 1
    index = indices.reshape(m, 1).expand(m, d)
    gw = apply(REGISTRY["scatter_add"], zeros_like(weight), index, g.reshape(m, d), dim=0)
    p = ctx.params.get("padding_idx")
    if p is not None:
        gw = index_fill_zero(gw, (p,))
    return (gw, None)


register("embedding", grad_fn="EmbeddingBackward0", forward=_embedding_np, vjp=_embedding_vjp,
         nargs=2, params=("padding_idx",), dtype_rule="first",
         doc="weight[indices]; the gradient of row padding_idx is zero (PyTorch)")
