"""``symad.optim``: SGD, Adam and AdamW with PyTorch's update equations.

>>> import symad
>>> w = symad.tensor([1.0, -2.0], requires_grad=True)
>>> opt = symad.optim.SGD([w], lr=0.1, momentum=0.9)
>>> (w ** 2).sum().backward(); _ = opt.step(); w
tensor([ 0.8000, -1.6000], requires_grad=True)
"""
from __future__ import annotations

from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]
