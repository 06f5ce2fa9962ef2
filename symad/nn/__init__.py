"""``symad.nn``: modules, parameters, layers and losses (PyTorch's ``torch.nn`` API).

>>> import symad
>>> net = symad.nn.Sequential(symad.nn.Linear(2, 1))
>>> [tuple(p.shape) for p in net.parameters()]
[(1, 2), (1,)]
"""
from __future__ import annotations

from . import functional, init
from .activation import (CELU, ELU, GELU, SELU, Hardshrink, Hardsigmoid, Hardswish, Hardtanh,
                         LeakyReLU, LogSigmoid, Mish, ReLU6, SiLU, Softplus, Softshrink, Softsign,
                         Tanhshrink, Threshold)
from .containers import ModuleList, Sequential
from .conv import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Conv1d, Conv2d, MaxPool1d, MaxPool2d
from .layers import Dropout, Flatten, Identity, Linear, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .lazy import LazyLinear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss,
                   MSELoss,
                   NLLLoss, SmoothL1Loss)
from .module import Module
from .normalization import BatchNorm1d, BatchNorm2d, Embedding, LayerNorm
from .parameter import Parameter, UninitializedParameter

__all__ = [
    "ELU",
    "GELU",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "BCELoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "BCEWithLogitsLoss",
    "Conv1d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Embedding",
    "Flatten",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "HuberLoss",
    "Identity",
    "KLDivLoss",
    "L1Loss",
    "LayerNorm",
    "LazyLinear",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "ReLU6",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "SmoothL1Loss",
    "Softmax",
    "Softplus",
    "Tanh",
    "Threshold",
    "UninitializedParameter",
    "functional",
    "init",
    "CELU",
    "SELU",
    "Hardshrink",
    "LogSigmoid",
    "Mish",
    "Softshrink",
    "Softsign",
    "Tanhshrink",
]
