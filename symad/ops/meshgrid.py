"""``meshgrid``: coordinate grids from 1-D tensors, composed of registered ops (reshape and
expand), so gradients flow back to the inputs like PyTorch's."""
from __future__ import annotations

import warnings

from .. import _dtype as D


def meshgrid(*tensors, indexing: str | None = None) -> tuple:
    """Grids ``G_i`` with ``G_i[j0, j1, ...] = tensors[i][j_i]`` (``indexing="ij"``) or with the
    first two axes swapped (``"xy"``, NumPy's default). Like PyTorch 2.x, leaving ``indexing``
    out warns once and uses ``"ij"``.

    >>> import symad
    >>> gx, gy = symad.meshgrid(symad.tensor([1, 2, 3]), symad.tensor([4, 5]), indexing="ij")
    >>> gx.shape, gy.tolist()
    (symad.Size([3, 2]), [[4, 5], [4, 5], [4, 5]])
    """
    Tensor = D._tensor_cls()
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the "
                      "indexing argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: '
                           f"{indexing}")
    if not tensors:
        raise RuntimeError("torch.meshgrid expects a non-empty TensorList")
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"meshgrid(): expected Tensors, got {type(t).__name__}")
        if t.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but "
                               f"got: {t}")
    if len({t.dtype for t in tensors}) > 1:
        raise RuntimeError("torch.meshgrid: expects all tensors to have the same dtype")
    swap = indexing == "xy" and len(tensors) >= 2
    if swap:  # PyTorch: the grids of (t1, t0, ...), with the first two outputs swapped back
        tensors = (tensors[1], tensors[0]) + tuple(tensors[2:])
    shape = tuple(t.numel() for t in tensors)
    n = len(tensors)
    grids = []
    for i, t in enumerate(tensors):
        view = [1] * n
        view[i] = shape[i]
        grids.append(t.reshape(*view).expand(*shape))
    if swap:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)
