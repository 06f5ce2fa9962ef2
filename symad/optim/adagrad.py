"""Adagrad with PyTorch's update equations (lr decay, weight decay, initial accumulator)."""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from ..tensor import Tensor
from .optimizer import Optimizer


class Adagrad(Optimizer):
    r"""PyTorch's Adagrad: with ``g = ±grad + weight_decay * p`` at step ``t``,

    ``clr = lr / (1 + (t - 1) lr_decay)``, ``s += g²``, ``p -= clr g / (sqrt(s) + eps)``.
    The state (``step``, ``sum``) exists from construction, as in PyTorch.

    >>> import symad
    >>> w = symad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = Adagrad([w], lr=0.1)
    >>> (w ** 2).sum().backward(); _ = opt.step(); w
    tensor([ 0.9000, -1.9000], requires_grad=True)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: "
                             f"{initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps,
                                      weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = Tensor._wrap(np.array(0.0, dtype=np.float32), D.float32)
                state["sum"] = Tensor._wrap(
                    np.full(p._data.shape, group["initial_accumulator_value"], dtype=p.dtype.np),
                    p.dtype)

    def _update(self, p: Tensor, group, state) -> None:
        state["step"]._data[...] += 1
        adagrad_update(p._data, p._grad._data, state["sum"]._data, float(state["step"]._data),
                       group)
        state["sum"]._version.value += 1


def adagrad_update(P: np.ndarray, grad: np.ndarray, state_sum: np.ndarray, step: float,
                   group: dict) -> None:
    """PyTorch's Adagrad equations on arrays, in place (``step`` already incremented)."""
    if group["maximize"]:
        grad = -grad
    if group["weight_decay"] != 0:
        grad = grad + group["weight_decay"] * P
    clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
    np.add(state_sum, grad * grad, out=state_sum, casting="unsafe")
    std = np.sqrt(state_sum) + group["eps"]
    np.add(P, -clr * (grad / std), out=P, casting="unsafe")
