"""``symad.nn.functional``: the functional layer surface (PyTorch's ``torch.nn.functional``).

Most functions are the registry-backed ops of :mod:`symad.ops.functional`, re-exported here;
``linear`` and ``dropout`` are composites of them.
"""
from __future__ import annotations

import numpy as np

from ..ops import functional as OF
from ..ops.functional import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    log_softmax,
    mse_loss,
    nll_loss,
    one_hot,
    relu,
    sigmoid,
    smooth_l1_loss,
    softmax,
    tanh,
)
from ..tensor import Tensor
from .functional_layers import (
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    batch_norm,
    celu,
    conv1d,
    conv2d,
    elu,
    embedding,
    gelu,
    hardshrink,
    hardsigmoid,
    hardswish,
    hardtanh,
    layer_norm,
    leaky_relu,
    logsigmoid,
    max_pool1d,
    max_pool2d,
    mish,
    relu6,
    selu,
    silu,
    softplus,
    softshrink,
    softsign,
    tanhshrink,
    threshold,
)

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "celu",
    "conv1d",
    "conv2d",
    "cosine_similarity",
    "cross_entropy",
    "dropout",
    "elu",
    "embedding",
    "gelu",
    "hardshrink",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "logsigmoid",
    "max_pool1d",
    "max_pool2d",
    "mish",
    "mse_loss",
    "nll_loss",
    "normalize",
    "one_hot",
    "pairwise_distance",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "softplus",
    "softshrink",
    "softsign",
    "tanh",
    "tanhshrink",
    "threshold",
]


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` with ``weight`` of shape ``(out_features, in_features)``.

    >>> import symad
    >>> linear(symad.ones(1, 2), symad.tensor([[1., 2.]]), symad.tensor([0.5]))
    tensor([[3.5000]])
    """
    out = input @ weight.t()
    return out if bias is None else out + bias


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *,
            generator=None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training only).

    The mask is drawn from symad's generator (``symad.manual_seed`` makes it reproducible).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        mask = np.zeros(input.shape, dtype=input.dtype.np)
    else:
        from ..random import default_generator
        g = generator or default_generator
        keep = g.uniform(0.0, 1.0, tuple(input.shape)) >= p
        mask = (keep / (1.0 - p)).astype(input.dtype.np)
    out = input * Tensor._wrap(mask, input.dtype)
    if inplace:
        input.copy_(out)
        return input
    return out


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12,
              out=None) -> Tensor:
    """``input / max(‖input‖_p, eps)`` along ``dim`` (PyTorch's composition, so the same
    gradients: a zero vector gets ``1/eps``)."""
    if out is not None:
        raise NotImplementedError("normalize: symad does not support out= (assign the result)")
    denom = OF.clamp_min(OF.norm(input, p, dim, keepdim=True), eps)
    return input / denom.expand_as(input)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``Σ (x1 / max(‖x1‖, eps)) · (x2 / max(‖x2‖, eps))`` along ``dim`` (inputs broadcast),
    as PyTorch 2.14 computes it."""
    a = x1 / OF.clamp_min(OF.norm(x1, 2, dim, keepdim=True), eps)
    b = x2 / OF.clamp_min(OF.norm(x2, 2, dim, keepdim=True), eps)
    return OF.sum(a * b, dim=dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    """``‖x1 - x2 + eps‖_p`` along the last dimension."""
    return OF.norm(x1 - x2 + eps, p, -1, keepdim=keepdim)
