"""Adam and AdamW with PyTorch's bias correction and (optional) AMSGrad."""
from __future__ import annotations

import math

import numpy as np

from .. import _dtype as D
from ..tensor import Tensor
from .elementwise import NUMPY
from .optimizer import Optimizer


def _zeros_like(p: Tensor) -> Tensor:
    return Tensor._wrap(np.zeros(p._data.shape, dtype=p.dtype.np), p.dtype)


class Adam(Optimizer):
    r"""PyTorch's Adam (L2 ``weight_decay`` added to the gradient).

    ``m = lerp(m, g, 1-β1)``, ``v = β2 v + (1-β2) g²``,
    ``p -= (lr / (1-β1^t)) * m / (sqrt(v) / sqrt(1-β2^t) + eps)``; with ``amsgrad`` the running
    maximum of ``v`` replaces ``v`` in the denominator.
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False, foreach=None, capturable: bool = False,
                 differentiable: bool = False, fused=None) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _update(self, p: Tensor, group, state) -> None:
        if not state:
            state["step"] = Tensor._wrap(np.array(0.0, dtype=np.float32), D.float32)
            state["exp_avg"] = _zeros_like(p)
            state["exp_avg_sq"] = _zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = _zeros_like(p)
        state["step"]._data[...] += 1
        adam_update(p._data, p._grad._data, state["exp_avg"]._data, state["exp_avg_sq"]._data,
                    state["max_exp_avg_sq"]._data if group["amsgrad"] else None,
                    float(state["step"]._data), group, self._decoupled)
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if k in state:
                state[k]._version.value += 1


def adam_scalars(step: float, lr: float, beta1: float, beta2: float,
                 sqrt=math.sqrt) -> tuple[float, float]:
    """``(step_size, sqrt(bias_correction2))`` of Adam's step ``step``, in Python floats as
    PyTorch computes them (``sqrt``: the tracer passes its own, so the same lines give the
    per-step expressions native loops evaluate)."""
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    return lr / bias_correction1, sqrt(bias_correction2)


def adam_update(P: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray,
                mx: np.ndarray | None, step: float, group: dict, decoupled: bool,
                xp=NUMPY) -> None:
    """PyTorch's Adam/AdamW equations on arrays, in place (``step`` already incremented): the
    one declaration, run with numpy by ``Adam.step`` per parameter and by
    ``symad.compile_step`` on flat buffers, and traced to per-element formulas for its native
    update (``xp``: :mod:`symad.optim.elementwise`). ``mx`` is the amsgrad running maximum
    (``None`` without amsgrad)."""
    if group["maximize"]:
        grad = -grad
    lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
    beta1, beta2 = group["betas"]
    if wd != 0:
        if decoupled:
            xp.multiply(P, 1 - lr * wd, out=P, casting="unsafe")
        else:
            grad = grad + wd * P
    # m.lerp_(grad, 1 - beta1), written as PyTorch's kernel computes it for weight < 0.5
    w = 1 - beta1
    if abs(w) < 0.5:
        xp.add(m, w * (grad - m), out=m, casting="unsafe")
    else:
        xp.subtract(grad, (grad - m) * (1 - w), out=m, casting="unsafe")
    xp.multiply(v, beta2, out=v)
    xp.add(v, (1 - beta2) * grad * grad, out=v, casting="unsafe")
    step_size, bias_correction2_sqrt = xp.scalars(adam_scalars, step, lr, beta1, beta2)
    if mx is not None:
        xp.maximum(mx, v, out=mx)
        denom = xp.sqrt(mx) / bias_correction2_sqrt + eps
    else:
        denom = xp.sqrt(v) / bias_correction2_sqrt + eps
    xp.add(P, -step_size * (m / denom), out=P, casting="unsafe")


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam step
    (default ``weight_decay=1e-2``)."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, foreach=None, capturable: bool = False,
                 differentiable: bool = False, fused=None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
