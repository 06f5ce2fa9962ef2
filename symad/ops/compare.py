"""``isclose``, ``allclose`` and ``equal``: value comparisons without gradients (PyTorch's
tolerance rule ``|input - other| <= atol + rtol * |other|``, dtype check and broadcasting)."""
from __future__ import annotations

import numpy as np

from .. import _dtype as D


def _check(fn: str, input, other) -> None:
    Tensor = D._tensor_cls()
    for pos, x, name in ((1, input, "input"), (2, other, "other")):
        if not isinstance(x, Tensor):
            raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be Tensor, not "
                            f"{type(x).__name__}")


def isclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False):
    """Elementwise ``|input - other| <= atol + rtol * |other|`` (infinities equal themselves;
    NaNs equal each other only with ``equal_nan``), as a bool tensor.

    >>> import symad
    >>> symad.isclose(symad.tensor([1.0, 2.0]), symad.tensor([1.0 + 1e-7, 2.1]))
    tensor([ True, False])
    """
    _check("isclose", input, other)
    if input.dtype != other.dtype:
        raise RuntimeError(f"{input.dtype.name} did not match {other.dtype.name} (isclose needs "
                           f"both tensors of one dtype; convert one with .to())")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    Tensor = D._tensor_cls()
    try:
        out = np.isclose(input._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan)
    except ValueError:
        from .dispatch import _check_broadcast
        _check_broadcast([input._data, other._data])
        raise
    return Tensor._wrap(np.asarray(out), D.bool_)


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """True when :func:`isclose` holds everywhere.

    >>> import symad
    >>> symad.allclose(symad.tensor([10000., 1e-08]), symad.tensor([10000.1, 1e-09]))
    True
    """
    _check("allclose", input, other)
    return bool(np.all(isclose(input, other, rtol, atol, equal_nan)._data))


def equal(input, other) -> bool:
    """True when both tensors have the same shape and the same values (NaN is never equal).

    >>> import symad
    >>> symad.equal(symad.tensor([1, 2]), symad.tensor([1, 2]))
    True
    """
    _check("equal", input, other)
    return tuple(input.shape) == tuple(other.shape) and bool(np.all(input._data == other._data))
