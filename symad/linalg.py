"""``symad.linalg``: matrix functions (PyTorch's ``torch.linalg`` names).

>>> import symad
>>> A = symad.tensor([[2.0, 1.0], [1.0, 3.0]], requires_grad=True)
>>> symad.linalg.det(A).backward(); A.grad      # d det/dA = det(A) inv(A)^T
tensor([[ 3., -1.],
        [-1.,  2.]])
"""
from __future__ import annotations

from .ops import matrix as _matrix  # noqa: F401  (registers the ops)
from .ops.dispatch import apply
from .ops.registry import REGISTRY

__all__ = ["det", "inv", "matrix_trace", "norm", "vector_norm"]


def det(A):
    """Determinant of each square matrix in ``A`` (``torch.linalg.det``)."""
    return apply(REGISTRY["det"], A)


def inv(A):
    """Inverse of each square matrix in ``A`` (``torch.linalg.inv``)."""
    return apply(REGISTRY["inverse"], A)


def matrix_trace(A):
    """Sum of the diagonal of the matrix ``A`` (``torch.trace``; ``symad.trace`` of a tensor)."""
    return apply(REGISTRY["matrix_trace"], A)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The ``ord``-norm of ``x``'s elements (all of them, or along ``dim``), as
    ``torch.linalg.vector_norm``: ``ord`` 2 (the default), 1, ``inf``, ``-inf`` or any other
    positive number."""
    from .ops import functional as F
    if dtype is not None:
        x = x.to(dtype)
    if ord == float("-inf"):
        return F.amin(F.abs(x), dim=dim, keepdim=keepdim)
    if isinstance(ord, str) or ord <= 0:
        raise NotImplementedError(f"linalg.vector_norm: symad supports ord > 0 and ±inf, not "
                                  f"{ord!r}")
    return F.norm(x, ord, dim, keepdim)


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """``torch.linalg.norm`` for vector norms and the Frobenius norm: ``ord=None`` is the
    2-norm of all elements (or along ``dim``), ``'fro'`` the Frobenius norm; other matrix
    norms (``'nuc'``, 2 of a matrix, ...) raise NotImplementedError."""
    if ord is None or ord == "fro":
        return vector_norm(A, 2, dim, keepdim, dtype=dtype)
    if (dim is None and A.ndim == 1) or isinstance(dim, int) or \
            (isinstance(dim, (tuple, list)) and len(dim) == 1):
        return vector_norm(A, ord, dim, keepdim, dtype=dtype)
    raise NotImplementedError(f"linalg.norm: symad computes vector norms and the Frobenius norm; "
                              f"the matrix norm ord={ord!r} is not supported")
