"""``symad.backends``: PyTorch's backend flags, for code that sets or queries them.

symad has one backend (numpy eagerly, LLVM-compiled kernels via ``symad.compile``); the GPU
backends report unavailable and cuDNN's flags are accepted and have no effect.

>>> import symad
>>> symad.backends.mps.is_available(), symad.backends.cudnn.is_available()
(False, False)
"""
from __future__ import annotations

from . import cudnn, mps

__all__ = ["cudnn", "mps"]
