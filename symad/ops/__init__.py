"""symad's op registry and the ops declared in it (see :mod:`symad.ops.registry`)."""
from . import functional  # noqa: F401  (declares every op)
from . import functional_more  # noqa: F401  (rounding, cumsum, tril/triu, gather, einsum, ...)
from .registry import REGISTRY, Op, get, register

__all__ = ["REGISTRY", "Op", "get", "register", "functional"]
