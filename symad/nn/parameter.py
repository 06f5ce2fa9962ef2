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


# ---------------------------------------------------------------------------------------------
# lazy modules' parameters

class UninitializedParameter(Parameter):
    """A parameter whose shape is not known yet (lazy modules): ``materialize(shape)`` gives it
    storage and turns it into an ordinary :class:`Parameter` (the same object, so optimizers
    built before the first forward see the values)."""

    cls_to_become = Parameter

    def __new__(cls, requires_grad: bool = True, device=None, dtype=None):
        return object.__new__(cls)

    def __init__(self, requires_grad: bool = True, device=None, dtype=None) -> None:
        import numpy as np

        from .. import _dtype as D
        from .._device import check_device
        check_device(device)
        dt = D.as_dtype(dtype) if dtype is not None else D.get_default_dtype()
        super().__init__(Tensor._wrap(np.empty((0,), dtype=dt.np), dt), requires_grad)

    def materialize(self, shape, device=None, dtype=None) -> None:
        """Allocate storage of ``shape`` (zeros; the module initialises it) and become a
        Parameter."""
        import numpy as np

        from .. import _dtype as D
        from .._device import check_device
        check_device(device)
        dt = D.as_dtype(dtype) if dtype is not None else self._dtype
        self._data = np.zeros(tuple(int(s) for s in shape), dtype=dt.np)
        self._dtype = dt
        self._version.value += 1
        self.__class__ = self.cls_to_become

    @property
    def shape(self):
        raise RuntimeError("Can't access the shape of an uninitialized parameter or buffer. This "
                           "error usually happens in `load_state_dict` when trying to load an "
                           "uninitialized parameter into an initialized one. Call `forward` to "
                           "initialize the parameters before accessing their attributes.")

    def __repr__(self) -> str:
        return "<UninitializedParameter>"

    __str__ = __repr__

    def __reduce_ex__(self, protocol):
        return (UninitializedParameter, (self._requires_grad, None, self._dtype))


def is_lazy(param) -> bool:
    """True for a parameter that has not been materialized yet."""
    return isinstance(param, UninitializedParameter)
