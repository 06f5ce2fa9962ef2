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

__all__ = ["det", "inv", "matrix_trace"]


def det(A):
    """Determinant of each square matrix in ``A`` (``torch.linalg.det``)."""
    return apply(REGISTRY["det"], A)


def inv(A):
    """Inverse of each square matrix in ``A`` (``torch.linalg.inv``)."""
    return apply(REGISTRY["inverse"], A)


def matrix_trace(A):
    """Sum of the diagonal of the matrix ``A`` (``torch.trace``; ``symad.trace`` of a tensor)."""
    return apply(REGISTRY["matrix_trace"], A)
