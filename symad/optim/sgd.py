"""Stochastic gradient descent with PyTorch's momentum, dampening and Nesterov rules."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .elementwise import NUMPY
from .optimizer import Optimizer, required


class SGD(Optimizer):
    r"""PyTorch's SGD: with ``g = ±grad + weight_decay * p``,

    ``b = g`` on the first step, then ``b = momentum * b + (1 - dampening) * g``;
    ``g = g + momentum * b`` (Nesterov) or ``g = b``; ``p -= lr * g``.

    >>> import symad
    >>> w = symad.tensor(10., requires_grad=True)
    >>> opt = SGD([w], lr=0.01); (2 * w ** 2).backward(); _ = opt.step(); w
    tensor(9.6000, requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None) -> None:
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _update(self, p: Tensor, group, state) -> None:
        buf = state.get("momentum_buffer")
        first = buf is None and group["momentum"] != 0
        if first:
            buf = state["momentum_buffer"] = Tensor._wrap(np.empty_like(p._data), p.dtype)
        elif buf is not None:
            buf._version.value += 1
        sgd_update(p._data, p._grad._data, None if buf is None else buf._data, group, first)


def sgd_update(P: np.ndarray, grad: np.ndarray, buf: np.ndarray | None, group: dict,
               first: bool, xp=NUMPY) -> None:
    """PyTorch's SGD equations on arrays, in place: the one declaration, run with numpy by
    ``SGD.step`` per parameter and by ``symad.compile_step`` on flat buffers, and traced to
    per-element formulas for its native update (``xp``: :mod:`symad.optim.elementwise`).

    ``buf`` is the momentum buffer (``None`` without momentum); ``first`` fills it with the
    (weight-decayed) gradient as PyTorch's first step does."""
    if group["maximize"]:
        grad = -grad
    wd, momentum = group["weight_decay"], group["momentum"]
    if wd != 0:
        grad = grad + wd * P
    if momentum != 0:
        if first:
            xp.copyto(buf, grad, casting="unsafe")
        else:
            xp.multiply(buf, momentum, out=buf)
            xp.add(buf, (1 - group["dampening"]) * grad, out=buf, casting="unsafe")
        grad = grad + momentum * buf if group["nesterov"] else buf
    xp.add(P, -group["lr"] * grad, out=P, casting="unsafe")
