"""``symad.optim``: SGD, Adam, AdamW, RMSprop, Adagrad and LBFGS with PyTorch's update equations, and
``optim.lr_scheduler``.

>>> import symad
>>> w = symad.tensor([1.0, -2.0], requires_grad=True)
>>> opt = symad.optim.SGD([w], lr=0.1, momentum=0.9)
>>> (w ** 2).sum().backward(); _ = opt.step(); w
tensor([ 0.8000, -1.6000], requires_grad=True)
"""
from __future__ import annotations

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .lbfgs import LBFGS
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "LBFGS", "Optimizer", "RMSprop", "lr_scheduler"]
