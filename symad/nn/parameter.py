"""``nn.Parameter``: a tensor that a :class:`~symad.nn.Module` registers as trainable."""
from __future__ import annotations

from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor with ``requires_grad=True`` that shares memory with the tensor it wraps.

    >>> import symad
    >>> t = symad.zeros(2)
    >>> p = symad.nn.Parameter(t)
    >>> p.requires_grad, p.data_ptr() == t.data_ptr()
    (True, True)
    """

    # no __slots__: a Parameter gets a __dict__ (modules may hang attributes on it)

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        return object.__new__(cls)

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True) -> None:
        if data is None:
            from ..tensor import empty
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter expects a Tensor (got {type(data).__name__}); "
                            "wrap the data with symad.tensor(...) first")
        self._init(data._data, data._dtype)
        self._version = data._version  # same storage, same version counter (like detach())
        if requires_grad:
            self.requires_grad = True

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __reduce_ex__(self, protocol):
        return (_rebuild_parameter, (self._data, self._dtype.name, self._requires_grad))

    def __deepcopy__(self, memo):
        import numpy as np
        if id(self) in memo:
            return memo[id(self)]
        p = Parameter(Tensor._wrap(np.array(self._data, copy=True), self._dtype),
                      self._requires_grad)
        if self._grad is not None:
            p._grad = Tensor._wrap(np.array(self._grad._data, copy=True), self._grad._dtype)
        memo[id(self)] = p
        return p


def _rebuild_parameter(arr, dtype_name: str, requires_grad: bool) -> Parameter:
    from .. import _dtype as D
    return Parameter(Tensor._wrap(arr, D.as_dtype(dtype_name)), requires_grad)
