"""RMSprop with PyTorch's update equations (momentum, centered, weight decay, maximize)."""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from ..tensor import Tensor
from .optimizer import Optimizer


def _zeros_like(p: Tensor) -> Tensor:
    return Tensor._wrap(np.zeros(p._data.shape, dtype=p.dtype.np), p.dtype)


class RMSprop(Optimizer):
    r"""PyTorch's RMSprop: with ``g = ±grad + weight_decay * p``,

    ``v = alpha v + (1 - alpha) g²``; centered: ``m = lerp(m, g, 1 - alpha)``,
    ``avg = sqrt(v - m²) + eps``, else ``avg = sqrt(v) + eps``; with momentum
    ``b = momentum b + g / avg``, ``p -= lr b``, else ``p -= lr g / avg``.

    >>> import symad
    >>> w = symad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = RMSprop([w], lr=0.01)
    >>> (w ** 2).sum().backward(); _ = opt.step(); w
    tensor([ 0.9000, -1.9000], requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps,
                                      centered=centered, weight_decay=weight_decay,
                                      capturable=capturable, foreach=foreach, maximize=maximize,
                                      differentiable=differentiable))

    def _update(self, p: Tensor, group, state) -> None:
        if not state:
            state["step"] = Tensor._wrap(np.array(0.0, dtype=np.float32), D.float32)
            state["square_avg"] = _zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = _zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = _zeros_like(p)
        state["step"]._data[...] += 1
        buf = state.get("momentum_buffer")
        gavg = state.get("grad_avg")
        rmsprop_update(p._data, p._grad._data, state["square_avg"]._data,
                       None if gavg is None else gavg._data, None if buf is None else buf._data,
                       group)
        for k in ("square_avg", "momentum_buffer", "grad_avg"):
            if k in state:
                state[k]._version.value += 1


def rmsprop_update(P: np.ndarray, grad: np.ndarray, square_avg: np.ndarray,
                   grad_avg: np.ndarray | None, buf: np.ndarray | None, group: dict) -> None:
    """PyTorch's RMSprop equations on arrays, in place (``grad_avg`` for ``centered``, ``buf``
    for ``momentum > 0``)."""
    if group["maximize"]:
        grad = -grad
    lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
    if group["weight_decay"] != 0:
        grad = grad + group["weight_decay"] * P
    np.multiply(square_avg, alpha, out=square_avg)
    np.add(square_avg, (1 - alpha) * grad * grad, out=square_avg, casting="unsafe")
    if grad_avg is not None:
        w = 1 - alpha  # grad_avg.lerp_(grad, 1 - alpha), as PyTorch's kernel computes it
        if abs(w) < 0.5:
            np.add(grad_avg, w * (grad - grad_avg), out=grad_avg, casting="unsafe")
        else:
            np.subtract(grad, (grad - grad_avg) * (1 - w), out=grad_avg, casting="unsafe")
        avg = np.sqrt(square_avg - grad_avg * grad_avg)
    else:
        avg = np.sqrt(square_avg)
    avg = avg + eps
    if buf is not None:
        np.multiply(buf, group["momentum"], out=buf)
        np.add(buf, grad / avg, out=buf, casting="unsafe")
        np.add(P, -lr * buf, out=P, casting="unsafe")
    else:
        np.add(P, -lr * (grad / avg), out=P, casting="unsafe")
