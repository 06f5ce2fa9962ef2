"""symad dtypes and PyTorch's type-promotion rules."""
from __future__ import annotations

import numpy as np


class dtype:
    """A tensor element type, printed like PyTorch's (``symad.float32``)."""

    __slots__ = ("name", "np", "category", "itemsize")

    def __init__(self, name: str, np_dtype: type, category: int) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)
        self.category = category  # 0 bool, 1 integer, 2 floating
        self.itemsize = self.np.itemsize

    @property
    def is_floating_point(self) -> bool:
        return self.category == 2

    def __repr__(self) -> str:
        return f"symad.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


bool_ = dtype("bool", np.bool_, 0)
uint8 = dtype("uint8", np.uint8, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)

ALL = (bool_, uint8, int32, int64, float32, float64)
_FROM_NP = {d.np: d for d in ALL}
_NAMES = {d.name: d for d in ALL}
_NAMES.update({"float": float32, "double": float64, "long": int64, "int": int32})

_default_float = float32


def _by_name(name: str) -> dtype:
    return _NAMES[name]


def get_default_dtype() -> dtype:
    return _default_float


def set_default_dtype(d: dtype) -> None:
    """Set the dtype that Python floats and ``symad.tensor([1.0])`` become (float32 or float64)."""
    global _default_float
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default_float = d


def as_dtype(d) -> dtype:
    """Accept a symad dtype, a numpy dtype, a Python type or a name."""
    if isinstance(d, dtype):
        return d
    if d is float:
        return get_default_dtype()
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str) and d in _NAMES:
        return _NAMES[d]
    try:
        return from_numpy_dtype(np.dtype(d))
    except TypeError:
        raise
    except Exception:
        raise TypeError(f"cannot interpret {d!r} as a symad dtype; use symad.float32, "
                        "symad.float64, symad.int64 or symad.bool") from None


def from_numpy_dtype(nd: np.dtype) -> dtype:
    nd = np.dtype(nd)
    if nd in _FROM_NP:
        return _FROM_NP[nd]
    if nd.kind == "f":
        return float64 if nd.itemsize > 4 else float32
    if nd.kind in "iu":
        return int64
    if nd.kind == "b":
        return bool_
    raise TypeError(f"numpy dtype {nd} is not supported by symad (supported: bool, integer, "
                    "float32, float64)")


def scalar_category(x) -> int:
    if isinstance(x, (bool, np.bool_)):
        return 0
    if isinstance(x, (int, np.integer)):
        return 1
    return 2


_TENSOR = None


def _tensor_cls():
    global _TENSOR
    if _TENSOR is None:
        from .tensor import Tensor
        _TENSOR = Tensor
    return _TENSOR


def result_type(*operands) -> dtype:
    """PyTorch's promotion: tensors decide within a category; Python scalars only lift the category.

    ``float32 tensor * 2.5 -> float32``; ``int64 tensor * 2.5 -> default float``;
    ``float32 tensor + float64 tensor -> float64``; 0-dim tensors rank below dimensioned ones.
    """
    Tensor = _tensor_cls()
    # fast path: tensors of one dtype, Python numbers that do not lift its category
    dt = None
    for o in operands:
        if type(o) is Tensor:
            if dt is None:
                dt = o._dtype
            elif o._dtype is not dt:
                break
        elif not ((type(o) is float and dt is not None and dt.category == 2)
                  or (type(o) is int and dt is not None and dt.category >= 1)):
            break
    else:
        if dt is not None:
            return dt

    dims, zero_dims, scalars = [], [], []
    for o in operands:
        if isinstance(o, Tensor):
            (dims if o.ndim > 0 else zero_dims).append(o.dtype)
        else:
            scalars.append(scalar_category(o))

    def widest(ds):
        best = None
        for d in ds:
            if best is None or (d.category, d.itemsize) > (best.category, best.itemsize):
                best = d
        return best

    result = widest(dims)
    zd = widest(zero_dims)
    if zd is not None and (result is None or zd.category > result.category):
        result = zd
    sc = max(scalars) if scalars else -1
    if result is None:
        return {0: bool_, 1: int64, 2: get_default_dtype()}[sc] if sc >= 0 else get_default_dtype()
    if sc > result.category:
        result = int64 if sc == 1 else get_default_dtype()
    return result
