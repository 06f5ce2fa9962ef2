"""``symad.nn.functional``: the functional layer surface (PyTorch's ``torch.nn.functional``).

Most functions are the registry-backed ops of :mod:`symad.ops.functional`, re-exported here;
``linear`` and ``dropout`` are composites of them.
"""
from __future__ import annotations

import numpy as np

from ..ops.functional import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
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
    conv1d,
    conv2d,
    elu,
    embedding,
    gelu,
    hardsigmoid,
    hardswish,
    hardtanh,
    layer_norm,
    leaky_relu,
    max_pool1d,
    max_pool2d,
    relu6,
    silu,
    softplus,
    threshold,
)

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv1d",
    "conv2d",
    "cross_entropy",
    "dropout",
    "elu",
    "embedding",
    "gelu",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "huber_loss",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool1d",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "softplus",
    "tanh",
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
