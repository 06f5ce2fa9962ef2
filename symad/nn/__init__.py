"""``symad.nn``: modules, parameters, layers and losses (PyTorch's ``torch.nn`` API).

>>> import symad
>>> net = symad.nn.Sequential(symad.nn.Linear(2, 1))
>>> [tuple(p.shape) for p in net.parameters()]
[(1, 2), (1,)]
"""
from __future__ import annotations

from . import functional, init
from .containers import ModuleList, Sequential
from .layers import Dropout, Flatten, Identity, Linear, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .lazy import LazyLinear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss,
                   NLLLoss, SmoothL1Loss)
from .module import Module
from .parameter import Parameter, UninitializedParameter

__all__ = [
                     "BCELoss",
                     "BCEWithLogitsLoss",
                     "CrossEntropyLoss",
                     "Dropout",
                     "Flatten",
                     "HuberLoss",
                     "Identity",
                     "L1Loss",
                     "LazyLinear",
                     "Linear",
                     "LogSoftmax",
                     "MSELoss",
                     "Module",
                     "ModuleList",
                     "NLLLoss",
                     "Parameter",
                     "ReLU",
                     "Sequential",
                     "Sigmoid",
                     "SmoothL1Loss",
                     "Softmax",
                     "Tanh",
                     "UninitializedParameter",
                     "functional",
                     "init",
]
