"""symad — PyTorch-style autograd whose graphs become exact SymPy derivatives and native kernels.

>>> import symad
>>> w = symad.tensor(10.0, requires_grad=True)
>>> loss = 2 * w ** 2
>>> loss.backward()
>>> w.grad
tensor(40.)
"""
from __future__ import annotations

import importlib as _importlib

from ._dtype import (bool_ as bool, dtype, float32, float64, get_default_dtype, int32, int64,
                     set_default_dtype, uint8)
from ._device import (DeviceUnavailableError, device, get_default_device,
                      set_default_device)
from .autograd import Function, no_grad, enable_grad, set_grad_enabled, is_grad_enabled, \
    inference_mode
from .errors import TracingError
from .ops.functional import (abs, acos, add, amax, amin, argmax, argmin, asin, atan, bmm,
                             cat, clamp, clamp_max, clamp_min, clip, clone, concat, cos, cosh,
                             cross_entropy, dist, div, dot,
                             eq, erf, exp, expand, expm1, flatten, floor, floor_divide, ge, gt,
                             le, log, log1p, remainder,
                             log_softmax, logical_and, logical_not, logical_or, logsumexp, lt,
                             matmul, max, maximum, mean, min, minimum, mm, mul, mv, ne, neg, norm,
                             outer, permute, pow, prod, reciprocal, relu, reshape, sigmoid, sign,
                             sin, sinh, softmax, sqrt, square, squeeze, stack, std, sub, sum, t,
                             tan, tanh, transpose, unsqueeze, var, where)
from .ops.compare import allclose, equal, isclose
from .ops.functional_more import (argsort, ceil, chunk, cumsum, einsum, fix, gather, round,
                                  scatter, scatter_add, sort, split, topk, tril, triu, trunc)
from .ops.meshgrid import meshgrid
from .random import (Generator, initial_seed, manual_seed, normal, rand, rand_like, randint,
                     randn, randn_like, randperm, seed)
from .serialization import load, save
from .tensor import (DoubleTensor, FloatTensor, LongTensor, Size, Tensor, arange, as_tensor,
                     empty, empty_like, eye, from_numpy, full, full_like, linspace, ones,
                     ones_like, tensor, zeros, zeros_like)

__version__ = "0.1.0"
float = float32  # noqa: A001  (PyTorch's aliases)
double = float64
long = int64

_LAZY = {"accelerator", "cuda", "backends", "nn", "optim", "utils", "autograd", "ops", "symbolic", "verify", "cli", "codegen_bridge",
         "compiler", "export_", "gradcheck", "demo",
         "distributed", "linalg", "threads"}
# names of symad's own layers, loaded on first use (keeps `import symad` fast)
_LAZY_ATTRS = {
    "trace": ("symad.symbolic", "trace"),          # trace(tensor) is torch.trace (see there)
    "det": ("symad.linalg", "det"),
    "inverse": ("symad.linalg", "inv"),
    "Trace": ("symad.symbolic", "Trace"),
    "explain": ("symad.symbolic", "explain"),
    "check_gradient": ("symad.verify", "check_gradient"),
    "check_function": ("symad.verify", "check_function"),
    "compile": ("symad.compiler", "compile"),
    "grad": ("symad.compiler", "grad"),
    "value_and_grad": ("symad.compiler", "value_and_grad"),
    "jacobian": ("symad.compiler", "jacobian"),
    "hessian": ("symad.compiler", "hessian"),
    "compile_step": ("symad.compiler", "compile_step"),
    "export": ("symad.export_", "export"),
    "set_num_threads": ("symad.threads", "set_num_threads"),
    "get_num_threads": ("symad.threads", "get_num_threads"),
    "set_flush_denormal": ("symad.fpmode", "set_flush_denormal"),
}


def __getattr__(name: str):
    if name in _LAZY_ATTRS:
        mod, attr = _LAZY_ATTRS[name]
        return getattr(_importlib.import_module(mod), attr)
    if name in _LAZY:
        return _importlib.import_module(f"symad.{name}")
    raise AttributeError(f"module 'symad' has no attribute {name!r}")
