"""numpy functions on tensors: ``np.where``, ``np.maximum``, ``np.exp``, ``np.sum(x, axis=0)``
... with a tensor argument run the matching symad op and return a tensor (PyTorch returns tensors
from numpy ufuncs too), so hand-written numpy code (a CS231n-style backward) runs on tensors,
traces on symbolic ones and is differentiable. numpy functions outside the table see tensors as
ndarrays (through ``__array__``) and return ndarrays; on symbolic tensors they raise, naming the
function.

>>> import numpy as np
>>> from symad.verify.symbolic_inputs import symbolic_tensor
>>> x = symbolic_tensor("x", (2,))
>>> np.maximum(x, 0).shape, np.where(x > 0, x, 0).shape
(symad.Size([2]), symad.Size([2]))
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

_OBJECT = np.dtype(object)


def _F():
    from .ops import functional as F
    return F


def _table() -> tuple[dict, dict]:
    """(ufunc -> symad function, numpy function -> symad function); built on first use."""
    F = _F()
    operators = {
        np.add: F.add, np.subtract: F.sub, np.multiply: F.mul, np.true_divide: F.div,
        np.power: F.pow, np.matmul: F.matmul, np.greater: F.gt, np.greater_equal: F.ge,
        np.less: F.lt, np.less_equal: F.le, np.equal: F.eq, np.not_equal: F.ne,
        np.negative: F.neg, np.positive: lambda x: x, np.logical_and: F.logical_and,
        np.logical_or: F.logical_or, np.logical_not: F.logical_not,
        np.bitwise_and: F.logical_and, np.bitwise_or: F.logical_or, np.invert: F.logical_not,
    }
    ufuncs = dict(operators)
    ufuncs.update({
        np.exp: F.exp, np.log: F.log, np.sqrt: F.sqrt, np.tanh: F.tanh, np.sin: F.sin,
        np.cos: F.cos, np.tan: F.tan, np.arctan: F.atan, np.sinh: F.sinh, np.cosh: F.cosh,
        np.log1p: F.log1p, np.expm1: F.expm1, np.absolute: F.abs, np.sign: F.sign,
        np.square: F.square, np.reciprocal: F.reciprocal,
        np.maximum: lambda a, b: F.maximum(*_tensors(a, b)),
        np.minimum: lambda a, b: F.minimum(*_tensors(a, b)),
    })
    functions = {
        np.where: lambda c, a, b: F.where(c, a, b),
        np.sum: _reduction(F.sum), np.mean: _reduction(F.mean),
        np.max: _reduction(F.amax), np.amax: _reduction(F.amax),
        np.min: _reduction(F.amin), np.amin: _reduction(F.amin),
        np.prod: _reduction(F.prod),
        np.var: lambda a, axis=None, keepdims=False, ddof=0: F.var(
            a, _dim(axis), keepdims, unbiased=bool(ddof)),
        np.std: lambda a, axis=None, keepdims=False, ddof=0: F.std(
            a, _dim(axis), keepdims, unbiased=bool(ddof)),
        np.dot: lambda a, b: F.matmul(*_tensors(a, b)) if _ndim(a) and _ndim(b)
        else F.mul(a, b),
        np.outer: lambda a, b: F.outer(*_tensors(a, b)),
        np.transpose: lambda a, axes=None: a.T if axes is None else F.permute(a, *axes),
        np.reshape: lambda a, shape, **k: F.reshape(a, *np.atleast_1d(shape).tolist()),
        np.clip: lambda a, lo, hi, **k: F.clamp(a, lo, hi),
        np.zeros_like: lambda a, dtype=None, **k: _like(a, 0, dtype),
        np.ones_like: lambda a, dtype=None, **k: _like(a, 1, dtype),
        np.full_like: lambda a, v, dtype=None, **k: _like(a, v, dtype),
        np.copy: lambda a, **k: F.clone(a),
        np.stack: lambda seq, axis=0, **k: F.stack(list(seq), axis),
        np.concatenate: lambda seq, axis=0, **k: F.cat(list(seq), axis),
        np.squeeze: lambda a, axis=None: F.squeeze(a, axis),
        np.expand_dims: lambda a, axis: F.unsqueeze(a, axis),
        np.sqrt: F.sqrt,
    }
    return ufuncs, functions, operators


_TABLES: list = []


def _tables():
    if not _TABLES:
        _TABLES.extend(_table())
    return _TABLES


def _dim(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _reduction(fn: Callable) -> Callable:
    def run(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        if out is not None:
            raise TypeError("symad tensors do not support numpy's out= argument")
        return fn(a, _dim(axis), keepdims)
    return run


def _ndim(a) -> int:
    return int(np.ndim(a._data if hasattr(a, "_data") else a))


def _tensors(*xs):
    from .tensor import Tensor, tensor
    like = next(x for x in xs if isinstance(x, Tensor))
    return tuple(x if isinstance(x, Tensor) else tensor(x, dtype=like.dtype) for x in xs)


def _like(a, value, dtype):
    from .tensor import full_like
    return full_like(a, value, dtype=dtype)


def _lift(args) -> tuple:
    """ndarrays among the arguments as tensors (a numpy mask in ``np.where(mask, x, 0)``)."""
    from .tensor import tensor
    return tuple(tensor(a) if isinstance(a, np.ndarray) else a for a in args)


def _symbolic(args) -> bool:
    from .tensor import Tensor
    for a in args:
        if isinstance(a, Tensor) and a._data.dtype is _OBJECT:
            return True
        if isinstance(a, (list, tuple)) and _symbolic(a):
            return True
    return False


def _plain(a):
    from .tensor import Tensor
    if isinstance(a, Tensor):
        return np.asarray(a)
    if isinstance(a, (list, tuple)):
        return type(a)(_plain(x) for x in a)
    return a


def array_ufunc(ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_ufunc__``: the symad op for numpy ufuncs in the table."""
    ufuncs, _, operators = _tables()
    if method == "__call__" and kwargs.get("out") is None:
        fn = ufuncs.get(ufunc)
        if fn is not None:
            kw = {k: v for k, v in kwargs.items() if k not in ("out", "casting", "dtype")}
            return fn(*_lift(inputs), **kw)
    if _symbolic(inputs):
        raise TypeError(f"numpy's {ufunc.__name__} ({method}) is not supported on symbolic "
                        f"tensors; use the symad op of the same name")
    return getattr(ufunc, method)(*_plain(inputs), **_plain_kwargs(kwargs))


def _plain_kwargs(kwargs: dict) -> dict:
    out = dict(kwargs)
    if "out" in out and out["out"] is not None:
        out["out"] = _plain(out["out"])
    return out


def array_function(func, args: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_function__``: the symad op for numpy functions in the table, else
    numpy's own on ndarrays (symbolic tensors: an error naming the function)."""
    fn = _tables()[1].get(func)
    if fn is not None:
        return fn(*_lift(args), **kwargs)
    if _symbolic(args) or _symbolic(tuple(kwargs.values())):
        raise TypeError(f"numpy.{func.__name__} is not supported on symbolic tensors; use "
                        f"the symad op of the same name")
    return func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()})
