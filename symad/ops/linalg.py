"""Matrix products. One ``matmul`` op covers dot, mv, mm and batched products; the grad_fn name
follows PyTorch's spelling of each case."""
from __future__ import annotations

import numpy as np

from .registry import register


def _shape_str(s):
    return "x".join(str(d) for d in s)


def check_matmul(a_shape, b_shape) -> None:
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{len(a_shape)}D and {len(b_shape)}D")
    k1 = a_shape[-1]
    k2 = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if k1 == k2:
        return
    if len(a_shape) == 1 and len(b_shape) == 1:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{a_shape[0]}] and src "
                           f"[{b_shape[0]}] to have the same number of elements, but got "
                           f"{a_shape[0]} and {b_shape[0]} elements respectively")
    if len(a_shape) == 2 and len(b_shape) == 1:
        raise RuntimeError(f"size mismatch, got input ({a_shape[0]}), mat "
                           f"({_shape_str(a_shape)}), vec ({b_shape[0]})")
    raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_shape_str(a_shape[-2:]) if len(a_shape) > 1 else '1x' + str(a_shape[0])} "
                       f"and {_shape_str(b_shape[-2:]) if len(b_shape) > 1 else str(b_shape[0]) + 'x1'})")


def _matmul_np(a, b):
    check_matmul(a.shape, b.shape)
    if a.dtype == object or b.dtype == object:
        return _object_matmul(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
    return np.matmul(a, b)


def _object_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """matmul of SymPy object arrays, each dot product built as ONE ``Add`` (numpy's pairwise
    accumulation re-flattens a growing sum k times: ~9x slower for a 64-term dot product)."""
    import sympy
    a2 = a if a.ndim > 1 else a[None, :]
    b2 = b if b.ndim > 1 else b[:, None]
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    A = np.broadcast_to(a2, batch + a2.shape[-2:])
    B = np.broadcast_to(b2, batch + b2.shape[-2:])
    n, k, m = A.shape[-2], A.shape[-1], B.shape[-1]
    out = np.empty(batch + (n, m), dtype=object)
    for idx in np.ndindex(*batch):
        Ai, Bi = A[idx], B[idx]
        for i in range(n):
            for j in range(m):
                out[idx + (i, j)] = sympy.Add(*[Ai[i, t] * Bi[t, j] for t in range(k)])
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


def _grad_fn(a, b):
    na, nb = a.ndim, b.ndim
    if na == 1 and nb == 1:
        return "DotBackward0"
    if na == 2 and nb == 1:
        return "MvBackward0"
    if na == 2 and nb == 2:
        return "MmBackward0"
    if na == 1 and nb == 2:
        return "SqueezeBackward4"
    return "UnsafeViewBackward0"


def _matmul_vjp(ctx, g):
    a, b = ctx.inputs
    na, nb = a.ndim, b.ndim
    a2 = a.unsqueeze(0) if na == 1 else a
    b2 = b.unsqueeze(-1) if nb == 1 else b
    # g without the dimensions matmul dropped: (.., 1, m) for a 1-D a, (.., n, 1) for a 1-D b
    g2 = g
    if na == 1:
        g2 = g2.unsqueeze(-1 if nb == 1 else -2)
    if nb == 1:
        g2 = g2.unsqueeze(-1)
    ga = gb = None
    if ctx.needs_input_grad[0]:
        ga = g2 @ b2.transpose(-1, -2)
        ga = ga.sum_to_size(a2.shape) if tuple(ga.shape) != tuple(a2.shape) else ga
        ga = ga.reshape(a.shape) if na == 1 else ga
    if ctx.needs_input_grad[1]:
        gb = a2.transpose(-1, -2) @ g2
        gb = gb.sum_to_size(b2.shape) if tuple(gb.shape) != tuple(b2.shape) else gb
        gb = gb.reshape(b.shape) if nb == 1 else gb
    return (ga, gb)


register("matmul", grad_fn=_grad_fn, forward=_matmul_np, vjp=_matmul_vjp, nargs=2)
