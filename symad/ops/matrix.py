"""Matrix functions of the last two dims: ``det``, ``inverse`` and the matrix ``trace``, so
matrix-calculus claims (log-det, trace identities) need no element-wise rewriting. VJPs are
written with registered ops (matmul, transpose, the ops themselves), so they are differentiable
again and replay in recorded programs."""
from __future__ import annotations

import numpy as np
import sympy

from .registry import REGISTRY, register


def _square(x, name: str) -> None:
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise RuntimeError(f"linalg.{name}: A must be batches of square matrices, but they are "
                           f"{x.shape[-2] if x.ndim >= 2 else 1} by {x.shape[-1]} matrices")


def _per_matrix(x: np.ndarray, f) -> np.ndarray:
    """Apply a SymPy matrix function to each matrix of an object array."""
    lead = x.shape[:-2]
    out = None
    for idx in np.ndindex(*lead):
        r = f(sympy.Matrix(x[idx]))
        if out is None:
            shape = lead + (np.shape(np.asarray(r, dtype=object)) if isinstance(
                r, sympy.MatrixBase) else ())
            out = np.empty(shape, dtype=object)
        out[idx] = np.asarray(r.tolist(), dtype=object) if isinstance(r, sympy.MatrixBase) else r
    return out


def _det_np(x):
    _square(x, "det")
    if x.dtype == object:
        return _per_matrix(x, lambda m: m.det(method="berkowitz"))
    return np.linalg.det(x)


def _inverse_np(x):
    _square(x, "inv")
    if x.dtype == object:
        return _per_matrix(x, lambda m: m.adjugate() / m.det(method="berkowitz"))
    return np.linalg.inv(x)


def _mT(t):
    return t.transpose(-2, -1)


def _inverse_vjp(ctx, g):
    # d inv(A) = -inv(A) dA inv(A)  =>  dA = -inv(A)^T g inv(A)^T
    y = _mT(ctx.output)
    return (-(y @ g @ y),)


def _det_vjp(ctx, g):
    # d det(A) = det(A) tr(inv(A) dA)  =>  dA = g det(A) inv(A)^T
    from .dispatch import apply
    a = ctx.inputs[0]
    scale = (g * ctx.output).unsqueeze(-1).unsqueeze(-1)
    return (scale * _mT(apply(REGISTRY["inverse"], a)),)


def _trace_np(x):
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {x.ndim}")
    if x.dtype == object:
        return np.asarray(sum((x[i, i] for i in range(min(x.shape))), sympy.S.Zero),
                          dtype=object)
    return np.asarray(np.trace(x))


def _trace_vjp(ctx, g):
    from ..tensor import Tensor
    x = ctx.inputs[0]
    eye = Tensor._wrap(np.eye(*x.shape, dtype=x.dtype.np), x.dtype)
    return (g * eye,)


register("det", grad_fn="LinalgDetBackward0", forward=_det_np, vjp=_det_vjp, dtype_rule="float",
         doc="determinant of each square matrix (last two dims)")
register("inverse", grad_fn="LinalgInvExBackward0", forward=_inverse_np, vjp=_inverse_vjp,
         dtype_rule="float", doc="inverse of each square matrix (last two dims)")
register("matrix_trace", grad_fn="TraceBackward0", forward=_trace_np, vjp=_trace_vjp,
         dtype_rule="first", doc="sum of the diagonal of a matrix (torch.trace)")
