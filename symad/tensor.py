"""The symad Tensor: a numpy array plus PyTorch's autograd metadata.

Operations go through the op registry (:mod:`symad.ops`); this class only adapts PyTorch's
method names, operators, in-place semantics and printing to it.
"""
from __future__ import annotations

import warnings
import weakref
from typing import Any

import numpy as np

from . import _dtype as D
from ._device import CPU, check_device, device as _device, is_device_like
from ._format import format_values
from .autograd.grad_mode import is_grad_enabled
from .autograd.graph import AccumulateGrad, _Handle, run_backward
from .autograd.recording import active as _recording
from .autograd.recording import escape as _escape
from .ops import functional as F
from .ops import functional_more as FM
from .ops.compare import allclose, equal, isclose
from .ops.dispatch import apply
from .ops.numpy_kwargs import add_numpy_kwargs
from .ops.registry import REGISTRY


class Size(tuple):
    """A tensor shape (a tuple, printed as ``symad.Size([3, 2])``)."""

    def __repr__(self) -> str:
        return f"symad.Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


class _Version:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "int64": "LongTensor",
               "int32": "IntTensor", "bool": "BoolTensor", "uint8": "ByteTensor"}


class Tensor:
    """An n-dimensional array with autograd. Create with :func:`symad.tensor`.

    >>> w = tensor(10., requires_grad=True); (2 * w ** 2).backward(); w.grad
    tensor(40.)
    """

    __slots__ = ("_data", "_dtype", "_requires_grad", "_grad_fn", "_output_nr", "_version",
                 "_grad", "_hooks", "_acc_ref", "_name", "__weakref__")
    __array_priority__ = 1000  # numpy defers to our reflected operators

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from ._numpy_interop import array_ufunc
        return array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from ._numpy_interop import array_function
        return array_function(func, args, kwargs)

    def __init__(self, *args, dtype=None) -> None:
        """``Tensor(data)`` or ``Tensor(*sizes)`` (zeros), default float dtype, like torch.Tensor."""
        dt = D.as_dtype(dtype) if dtype is not None else D.get_default_dtype()
        if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
            src = args[0]
            arr = src._data if isinstance(src, Tensor) else np.array(src)
            arr = np.array(arr, dtype=dt.np)
        else:
            arr = np.zeros(tuple(int(a) for a in args), dtype=dt.np)
        self._init(arr, dt)

    def _init(self, arr: np.ndarray, dt: D.dtype) -> None:
        self._data = arr
        self._dtype = dt
        self._requires_grad = False
        self._grad_fn = None
        self._output_nr = 0
        self._version = _Version()
        self._grad = None
        self._hooks = None
        self._acc_ref = None
        self._name = None

    @classmethod
    def _wrap(cls, arr: np.ndarray, dt: D.dtype | None = None) -> "Tensor":
        t = object.__new__(Tensor)
        if dt is None:
            dt = D.float64 if arr.dtype == object else D.from_numpy_dtype(arr.dtype)
        elif arr.dtype is not dt.np and arr.dtype != dt.np and arr.dtype != object:
            arr = arr.astype(dt.np)
        # inlined _init (this is the hottest constructor)
        t._data = arr
        t._dtype = dt
        t._requires_grad = False
        t._grad_fn = None
        t._output_nr = 0
        t._version = _Version()
        t._grad = None
        t._hooks = None
        t._acc_ref = None
        t._name = None
        return t

    # -- basic properties -----------------------------------------------------------------
    @property
    def dtype(self) -> D.dtype:
        return self._dtype

    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self._data.shape[dim]

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    nelement = numel

    def element_size(self) -> int:
        return self._dtype.itemsize

    @property
    def device(self) -> _device:
        """Always ``device(type='cpu')``: symad tensors live in numpy arrays."""
        return CPU

    is_cuda = False
    is_mps = False
    is_meta = False

    def get_device(self) -> int:
        """-1, PyTorch's answer for a CPU tensor."""
        return -1

    def is_floating_point(self) -> bool:
        return self._dtype.is_floating_point

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    def contiguous(self) -> "Tensor":
        return self if self.is_contiguous() else self.clone()

    def data_ptr(self) -> int:
        return int(self._data.__array_interface__["data"][0])

    def type(self, dtype=None):
        if dtype is None:
            return f"symad.{_TYPE_NAMES.get(self._dtype.name, 'Tensor')}"
        return self.to(dtype)

    # -- autograd metadata ----------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        flag = bool(flag)
        if self._grad_fn is not None and not flag:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If you "
                               "want to use a computed variable in a subgraph that doesn't require "
                               "differentiation use var_no_grad = var.detach().")
        if flag and not self._dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point and complex dtype can require "
                               f"gradients (got {self._dtype}); convert with .float() first")
        self._requires_grad = flag

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        self.requires_grad = requires_grad
        return self

    @property
    def grad_fn(self):
        return self._grad_fn

    @property
    def is_leaf(self) -> bool:
        return self._grad_fn is None

    @property
    def grad(self):
        if self._grad_fn is not None and self._grad is None and not self._retains():
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its "
                ".grad attribute won't be populated during autograd.backward(). If you indeed want "
                "the .grad field to be populated for a non-leaf Tensor, use .retain_grad() on the "
                "non-leaf Tensor.", UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of "
                                f"type {type(value).__name__}")
            if tuple(value.shape) != tuple(self.shape):
                raise RuntimeError("assigned grad has data of a different size")
            if value.dtype != self.dtype and value._data.dtype != object:
                raise RuntimeError("assigned grad has data of a different type")
        self._grad = value

    @property
    def retains_grad(self) -> bool:
        return self._retains()

    def _retains(self) -> bool:
        fn = self._grad_fn
        return bool(fn is not None and fn._retained and self._output_nr in fn._retained)

    def retain_grad(self) -> None:
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._grad_fn is None:
            return
        fn = self._grad_fn
        if fn._retained is None:
            fn._retained = {}
        fn._retained[self._output_nr] = weakref.ref(self)

    def register_hook(self, hook):
        """``hook(grad) -> Tensor | None`` runs when this tensor's gradient is computed."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(hook)
            return _Handle(self._hooks, hook)
        fn = self._grad_fn
        if fn._tensor_hooks is None:
            fn._tensor_hooks = {}
        lst = fn._tensor_hooks.setdefault(self._output_nr, [])
        lst.append(hook)
        return _Handle(lst, hook)

    def _get_accumulator(self) -> AccumulateGrad:
        acc = self._acc_ref() if self._acc_ref is not None else None
        if acc is None:
            acc = AccumulateGrad(self)
            self._acc_ref = weakref.ref(acc)
        return acc

    def _accumulate_grad(self, g: "Tensor", create_graph: bool) -> None:
        if tuple(g.shape) != tuple(self.shape):
            g = g.sum_to_size(self.shape)
        if g._dtype != self._dtype and g._data.dtype != object:
            g = g.to(self._dtype)
        if self._grad is None:
            self._grad = g if create_graph else Tensor._wrap(np.array(g._data, copy=True),
                                                             self._dtype)
        elif create_graph or self._grad.requires_grad:
            self._grad = self._grad + g
        else:
            np.add(self._grad._data, g._data, out=self._grad._data, casting="unsafe")
            self._grad._version.value += 1

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d self / d leaf into every leaf's ``.grad`` (PyTorch semantics)."""
        if not self._requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            gradient = F.ones_like(self)
        elif not isinstance(gradient, Tensor):
            gradient = tensor(gradient, dtype=self._dtype)
        if tuple(gradient.shape) != tuple(self.shape):
            raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of "
                               f"{list(gradient.shape)} and output[0] has a shape of "
                               f"{list(self.shape)}.")
        if retain_graph is None:
            retain_graph = create_graph
        if inputs is not None:
            inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            if not inputs:
                raise RuntimeError("'inputs' argument to backward() cannot be empty.")
        run_backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph,
                     inputs=inputs, accumulate=True)

    def detach(self) -> "Tensor":
        """A tensor sharing storage (and version counter) that is cut from the graph."""
        t = Tensor._wrap(self._data, self._dtype)
        t._version = self._version
        rec = _recording()
        if rec is not None:
            rec.alias(t, self)
        return t

    def detach_(self) -> "Tensor":
        self._grad_fn = None
        self._requires_grad = False
        return self

    @property
    def data(self) -> "Tensor":
        t = Tensor._wrap(self._data, self._dtype)
        rec = _recording()
        if rec is not None:
            rec.alias(t, self)
        return t

    @data.setter
    def data(self, value: "Tensor") -> None:
        if not isinstance(value, Tensor):
            raise TypeError("data must be set to a Tensor")
        _escape(self, "assignment to .data", write=True)
        self._data = value._data
        self._dtype = value._dtype

    # -- conversion -------------------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        _escape(self, "numpy()")
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        _escape(self, "conversion to a numpy array")
        return self._data if dtype is None else self._data.astype(dtype)

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to "
                               "Scalar")
        _escape(self, "item() (a Python number)")
        v = self._data.reshape(-1)[0]
        if self._data.dtype == object:
            from .errors import concrete_value
            return concrete_value(v)
        return v.item()

    def tolist(self):
        _escape(self, "tolist()")
        return self._data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._dtype.is_floating_point:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        _escape(self, "a Python condition on a tensor value (if/while/bool(); use symad.where "
                      "for a choice that depends on values)")
        return bool(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    # by identity, as torch.Tensor (whose __eq__ is elementwise too); the C slot keeps dict
    # lookups keyed by tensors (optimizer.state) fast
    __hash__ = object.__hash__

    def __format__(self, spec: str) -> str:
        if self.ndim == 0 and self._data.dtype != object:
            return format(self.item(), spec)
        return format(repr(self), spec)

    def to(self, *args, dtype=None, copy: bool = False, device=None, non_blocking: bool = False,
           memory_format=None) -> "Tensor":
        """``t.to(symad.float64)``, ``t.to("cpu")``, ``t.to(device, dtype)``, ``t.to(other)``.

        Devices other than the CPU raise :class:`symad.DeviceUnavailableError`."""
        dtype = _parse_to(args, dtype, device, "moving a tensor to")
        if dtype is None:
            return self.clone() if copy else self
        dt = D.as_dtype(dtype)
        if dt == self._dtype and not copy:
            return self
        return apply(REGISTRY["to_dtype"], self, dtype=dt)

    def cpu(self, memory_format=None) -> "Tensor":
        return self

    def cuda(self, device=None, non_blocking: bool = False, memory_format=None):
        """Raises :class:`symad.DeviceUnavailableError`: symad has no CUDA."""
        check_device("cuda" if device is None else _cuda_device(device), "moving a tensor to")

    def float(self) -> "Tensor":
        return self.to(D.float32)

    def double(self) -> "Tensor":
        return self.to(D.float64)

    def long(self) -> "Tensor":
        return self.to(D.int64)

    def int(self) -> "Tensor":
        return self.to(D.int32)

    def bool(self) -> "Tensor":
        return self.to(D.bool_)

    def type_as(self, other: "Tensor") -> "Tensor":
        return self.to(other.dtype)

    # -- printing ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        prefix = "tensor("
        body = format_values(self._data, len(prefix))
        extras = []
        default = (D.get_default_dtype(), D.int64, D.bool_)
        if self._data.dtype != object and self._dtype not in default:
            extras.append(f"dtype={self._dtype}")
        if self.numel() == 0 and self.ndim != 1:
            extras.append(f"size={tuple(self.shape)}")
        if self._grad_fn is not None:
            extras.append(f"grad_fn=<{self._grad_fn.name()}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return prefix + body + "".join(", " + e for e in extras) + ")"

    __str__ = __repr__

    def _repr_latex_(self) -> str:
        import sympy
        a = self._data
        if a.ndim <= 2:
            m = sympy.Matrix(a.reshape(a.shape[0] if a.ndim else 1, -1).tolist()) if a.ndim \
                else sympy.sympify(a.item() if a.dtype != object else a[()])
            return "$" + sympy.latex(m) + "$"
        return None

    # -- in place ---------------------------------------------------------------------------
    def _check_inplace(self) -> None:
        if self._grad_fn is None and self._requires_grad and is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation.")

    def _alias_for_inplace(self) -> "Tensor":
        """A snapshot of self (value and graph position) the in-place result is computed from."""
        t = Tensor._wrap(np.array(self._data, copy=True), self._dtype)
        t._requires_grad = self._requires_grad
        t._grad_fn = self._grad_fn
        t._output_nr = self._output_nr
        if self._grad_fn is None and self._requires_grad:
            t._acc_ref = None
            return self  # unreachable: leaves requiring grad are rejected under grad mode
        return t

    def _inplace(self, fn, *args, **kw) -> "Tensor":
        """Run ``fn(self, *args)`` out of place and write the result into self's storage."""
        self._check_inplace()
        recording = is_grad_enabled() and (self._requires_grad or any(
            isinstance(a, Tensor) and a._requires_grad for a in args))
        src = self._alias_for_inplace() if recording else self
        result = fn(src, *args, **kw)
        if result._dtype.category > self._dtype.category:
            raise RuntimeError(f"result type {result._dtype.name.capitalize()} can't be cast to "
                               f"the desired output type {self._dtype.name.capitalize()}")
        self._write(result._data, source=result)
        if recording and result._grad_fn is not None:
            self._grad_fn = result._grad_fn
            self._output_nr = result._output_nr
            self._requires_grad = True
            # the node's saved output must be this tensor now
            ctx = getattr(result._grad_fn, "ctx", None)
            if ctx is not None and ctx.output is result:
                ctx.output = self
        return self

    def _write(self, values: np.ndarray, source: "Tensor | None" = None) -> None:
        rec = _recording()
        if rec is not None:
            if source is None:
                rec.escape(self, "an in-place write", True)
            else:
                rec.alias(self, source)
        if self._data.dtype == object or values.dtype == object:
            if self._data.shape == np.shape(values):
                self._data = np.array(values, dtype=object)
            else:
                self._data = np.array(np.broadcast_to(values, self._data.shape), dtype=object)
        else:
            np.copyto(self._data, values, casting="unsafe")
        self._version.value += 1

    def add_(self, other, *, alpha=1):
        return self._inplace(lambda s, o: F.add(s, o, alpha=alpha), other)

    def sub_(self, other, *, alpha=1):
        return self._inplace(lambda s, o: F.sub(s, o, alpha=alpha), other)

    def mul_(self, other):
        return self._inplace(F.mul, other)

    def div_(self, other):
        return self._inplace(F.div, other)

    def pow_(self, exponent):
        return self._inplace(F.pow, exponent)

    def clamp_(self, min=None, max=None):
        return self._inplace(lambda s: F.clamp(s, min, max))

    clip_ = clamp_

    def clamp_min_(self, min):
        return self._inplace(lambda s: F.clamp_min(s, min))

    def clamp_max_(self, max):
        return self._inplace(lambda s: F.clamp_max(s, max))

    def exp_(self):
        return self._inplace(F.exp)

    def relu_(self):
        return self._inplace(F.relu)

    def neg_(self):
        return self._inplace(F.neg)

    def sqrt_(self):
        return self._inplace(F.sqrt)

    def abs_(self):
        return self._inplace(F.abs)

    def sigmoid_(self):
        return self._inplace(F.sigmoid)

    def tanh_(self):
        return self._inplace(F.tanh)

    def zero_(self):
        self._check_inplace()
        return self._fill_constant(0, "ZeroBackward0")

    def fill_(self, value):
        self._check_inplace()
        if isinstance(value, Tensor):
            value = value.item()
        return self._fill_constant(value, "FillBackward2")

    def _fill_constant(self, value, kind):
        if is_grad_enabled() and self._requires_grad:
            # a non-leaf in a graph stays in it, with a zero gradient (PyTorch's FillBackward2)
            return self._inplace(lambda s: _apply("fill", s, value=value, kind=kind))
        self._write(np.full(self._data.shape, value, dtype=self._data.dtype))
        return self

    def copy_(self, src):
        src = src if isinstance(src, Tensor) else tensor(src)
        # never o itself: self must get its own node, not share the source's grad_fn
        return self._inplace(lambda s, o: (o + F.zeros_like(s)).to(s.dtype)
                             if tuple(o.shape) != tuple(s.shape)
                             else (F.clone(o) if o.dtype == s.dtype else o.to(s.dtype)), src)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        from .random import default_generator
        self._check_inplace()
        g = generator or default_generator
        self._write(g.normal(mean, std, self._data.shape).astype(self._data.dtype))
        return self

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        from .random import default_generator
        self._check_inplace()
        g = generator or default_generator
        self._write(g.uniform(a, b, self._data.shape).astype(self._data.dtype))
        return self

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    # -- indexing ---------------------------------------------------------------------------
    @staticmethod
    def _key(key):
        def conv(k):
            if isinstance(k, Tensor):
                _escape(k, "indexing with a tensor's values")
                return k._data if k.ndim else (k._data.item() if k._dtype != D.bool_ else k._data)
            if isinstance(k, list):
                return np.asarray(k)
            return k
        if isinstance(key, tuple):
            return tuple(conv(k) for k in key)
        return conv(key)

    def __getitem__(self, key):
        key = self._key(key)
        return apply(REGISTRY["getitem"], self, key=key)

    def __setitem__(self, key, value):
        if isinstance(key, Tensor) and key._dtype == D.bool_ and key._data.dtype == object:
            return self._set_symbolic_mask(key, value)
        key = self._key(key)
        self._check_inplace()
        if not isinstance(value, Tensor):
            value = tensor(value, dtype=self._dtype) if not isinstance(value, np.ndarray) \
                else Tensor._wrap(value.astype(self._dtype.np))
        recording = is_grad_enabled() and (self._requires_grad or value._requires_grad)
        if not recording:
            _escape(self, "in-place item assignment", write=True)
            if self._data.dtype == object or value._data.dtype == object:
                data = np.array(self._data, dtype=object)
                data[key] = value._data
                self._data = data
                self._version.value += 1
            else:
                self._data[key] = value._data
                self._version.value += 1
            return
        self._inplace(lambda s, v: apply(REGISTRY["index_put"], s, v, key=key), value)

    def _set_symbolic_mask(self, mask: "Tensor", value) -> None:
        """``x[mask] = v`` for a mask whose truth is symbolic (``dx[x <= 0] = 0`` traced): the
        same values as ``where(mask, v, x)`` written into x."""
        if tuple(mask.shape) != tuple(self.shape):
            raise IndexError(f"a symbolic boolean mask must have the indexed tensor's shape "
                             f"{tuple(self.shape)}, not {tuple(mask.shape)}")
        if isinstance(value, Tensor) and value.numel() != 1 and \
                tuple(value.shape) != tuple(self.shape):
            raise TypeError("x[mask] = values with a symbolic mask needs a scalar value (the "
                            "number of True entries is unknown while tracing); write "
                            "x = symad.where(mask, values, x) instead")
        self._inplace(lambda s, m: F.where(m, value, s), mask)

    def select(self, dim: int, index: int) -> "Tensor":
        key = (slice(None),) * (dim % self.ndim) + (index,)
        return self[key]

    def masked_fill(self, mask, value):
        return F.where(mask, value, self)

    def masked_fill_(self, mask, value):
        return self._inplace(lambda s, m: F.where(m, value, s), mask)

    # -- operators --------------------------------------------------------------------------
    def __add__(self, o): return F.add(self, o)
    def __radd__(self, o): return F.add(o, self)
    def __sub__(self, o): return F.sub(self, o)
    def __rsub__(self, o): return F.sub(o, self)
    def __mul__(self, o): return F.mul(self, o)
    def __rmul__(self, o): return F.mul(o, self)
    def __truediv__(self, o): return F.div(self, o)
    def __rtruediv__(self, o):
        # a number over a tensor is ``reciprocal(self) * o`` in PyTorch (MulBackward0, and its
        # rounding)
        if isinstance(o, (int, float)) and not isinstance(o, bool):
            return F.reciprocal(self) * o
        return F.div(o, self)
    def __floordiv__(self, o): return F.div(self, o, rounding_mode="floor")
    def __rfloordiv__(self, o): return F.div(o, self, rounding_mode="floor")
    def __mod__(self, o): return _apply("remainder", self, o)
    def __pow__(self, o): return F.pow(self, o)
    def __rpow__(self, o): return _apply("pow", o, self)
    def __matmul__(self, o): return F.matmul(self, _as(o, self))
    def __rmatmul__(self, o): return F.matmul(_as(o, self), self)
    def __neg__(self): return F.neg(self)
    def __pos__(self): return self
    def __abs__(self): return F.abs(self)
    def __invert__(self): return F.logical_not(self)
    def __and__(self, o): return F.logical_and(self, o)
    def __or__(self, o): return F.logical_or(self, o)
    def __eq__(self, o): return F.eq(self, o)  # type: ignore[override]
    def __ne__(self, o): return F.ne(self, o)  # type: ignore[override]
    def __lt__(self, o): return F.lt(self, o)
    def __le__(self, o): return F.le(self, o)
    def __gt__(self, o): return F.gt(self, o)
    def __ge__(self, o): return F.ge(self, o)

    # -- methods that mirror functions ------------------------------------------------------
    def add(self, o, *, alpha=1): return F.add(self, o, alpha=alpha)
    def sub(self, o, *, alpha=1): return F.sub(self, o, alpha=alpha)
    def mul(self, o): return F.mul(self, o)
    def div(self, o, *, rounding_mode=None): return F.div(self, o, rounding_mode=rounding_mode)
    def pow(self, e): return F.pow(self, e)
    def matmul(self, o): return F.matmul(self, o)
    def mm(self, o): return F.mm(self, o)
    def mv(self, o): return F.mv(self, o)
    def dot(self, o): return F.dot(self, o)
    def exp(self): return F.exp(self)
    def log(self): return F.log(self)
    def log1p(self): return F.log1p(self)
    def expm1(self): return F.expm1(self)
    def sqrt(self): return F.sqrt(self)
    def rsqrt(self): return F.reciprocal(F.sqrt(self))
    def square(self): return F.square(self)
    def abs(self): return F.abs(self)
    def sign(self): return F.sign(self)
    def sin(self): return F.sin(self)
    def cos(self): return F.cos(self)
    def tan(self): return F.tan(self)
    def tanh(self): return F.tanh(self)
    def sinh(self): return F.sinh(self)
    def cosh(self): return F.cosh(self)
    def atan(self): return F.atan(self)
    def asin(self): return F.asin(self)
    def acos(self): return F.acos(self)
    def remainder(self, o): return F.remainder(self, o)
    def floor_divide(self, o): return F.floor_divide(self, o)
    def logical_and(self, o): return F.logical_and(self, o)
    def logical_or(self, o): return F.logical_or(self, o)
    def logical_not(self): return F.logical_not(self)
    def sigmoid(self): return F.sigmoid(self)
    def erf(self): return F.erf(self)
    def relu(self): return F.relu(self)
    def neg(self): return F.neg(self)
    def reciprocal(self): return F.reciprocal(self)
    def floor(self): return F.floor(self)
    def clamp(self, min=None, max=None): return F.clamp(self, min, max)
    clip = clamp
    def clamp_min(self, min): return F.clamp_min(self, min)
    def clamp_max(self, max): return F.clamp_max(self, max)
    def maximum(self, o): return F.maximum(self, o)
    def minimum(self, o): return F.minimum(self, o)
    def eq(self, o): return F.eq(self, o)
    def ne(self, o): return F.ne(self, o)
    def lt(self, o): return F.lt(self, o)
    def le(self, o): return F.le(self, o)
    def gt(self, o): return F.gt(self, o)
    def ge(self, o): return F.ge(self, o)
    def sum(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        return F.sum(self, _axis(dim, axis), keepdims or keepdim, dtype=dtype)
    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        return F.mean(self, _axis(dim, axis), keepdims or keepdim, dtype=dtype)
    def prod(self, dim=None, keepdim=False): return F.prod(self, dim, keepdim)
    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return F.max(self, _axis(dim, axis), keepdims or keepdim)
    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return F.min(self, _axis(dim, axis), keepdims or keepdim)
    def amax(self, dim=None, keepdim=False): return F.amax(self, dim, keepdim)
    def amin(self, dim=None, keepdim=False): return F.amin(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return F.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return F.argmin(self, dim, keepdim)
    def norm(self, p="fro", dim=None, keepdim=False): return F.norm(self, p, dim, keepdim)
    def dist(self, other, p=2): return F.dist(self, other, p)
    def var(self, dim=None, keepdim=False, *, unbiased=True, correction=None):
        return F.var(self, dim, keepdim, unbiased=unbiased, correction=correction)

    def std(self, dim=None, keepdim=False, *, unbiased=True, correction=None):
        return F.std(self, dim, keepdim, unbiased=unbiased, correction=correction)
    def logsumexp(self, dim, keepdim=False): return F.logsumexp(self, dim, keepdim)
    def softmax(self, dim): return F.softmax(self, dim)
    def log_softmax(self, dim): return F.log_softmax(self, dim)
    def reshape(self, *shape): return F.reshape(self, *shape)
    def reshape_as(self, o): return F.reshape(self, *o.shape)
    def view_as(self, o): return self.view(*o.shape)
    def permute(self, *dims): return F.permute(self, *dims)
    def transpose(self, d0, d1): return F.transpose(self, d0, d1)
    def det(self): return apply(REGISTRY["det"], self)
    def inverse(self): return apply(REGISTRY["inverse"], self)
    def trace(self): return apply(REGISTRY["matrix_trace"], self)
    def t(self): return F.t(self)
    def expand(self, *shape): return F.expand(self, *shape)
    def expand_as(self, o): return F.expand(self, *o.shape)
    def sum_to_size(self, *shape): return F.sum_to_size(self, *shape)
    def unsqueeze(self, dim): return F.unsqueeze(self, dim)
    def squeeze(self, dim=None): return F.squeeze(self, dim)
    def flatten(self, start_dim=0, end_dim=-1): return F.flatten(self, start_dim, end_dim)
    def clone(self): return F.clone(self)
    def where(self, cond, other): return F.where(cond, self, other)
    def outer(self, o): return F.outer(self, o)

    def view(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (int, tuple, list)):
            return self.to(shape[0])
        if not self._data.flags.c_contiguous and self.ndim > 1:
            raise RuntimeError("view size is not compatible with input tensor's size and stride "
                               "(at least one dimension spans across two contiguous subspaces). "
                               "Use .reshape(...) instead.")
        return F.reshape(self, *shape)

    @property
    def T(self) -> "Tensor":
        return self.permute(*reversed(range(self.ndim))) if self.ndim != 2 else self.t()

    @property
    def mT(self) -> "Tensor":
        return self.transpose(-2, -1)

    def all(self, dim=None, keepdim=False):
        return Tensor._wrap(np.asarray(np.all(self._data, axis=dim, keepdims=keepdim)))

    def any(self, dim=None, keepdim=False):
        return Tensor._wrap(np.asarray(np.any(self._data, axis=dim, keepdims=keepdim)))

    def isnan(self):
        return Tensor._wrap(np.isnan(self._data))

    def isinf(self):
        return Tensor._wrap(np.isinf(self._data))

    def isfinite(self):
        return Tensor._wrap(np.isfinite(self._data))

    def allclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
        return allclose(self, other, rtol, atol, equal_nan)

    def isclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> "Tensor":
        return isclose(self, other, rtol, atol, equal_nan)

    def equal(self, other) -> bool:
        return equal(self, other)

    # -- issue 17: rounding, scans, triangles, gather, split/chunk (symad.ops.functional_more) ---
    def round(self, *, decimals=0): return FM.round(self, decimals=decimals)
    def ceil(self): return FM.ceil(self)
    def trunc(self): return FM.trunc(self)
    fix = trunc
    def cumsum(self, dim, *, dtype=None): return FM.cumsum(self, dim, dtype=dtype)
    def tril(self, diagonal=0): return FM.tril(self, diagonal)
    def triu(self, diagonal=0): return FM.triu(self, diagonal)
    def gather(self, dim, index): return FM.gather(self, dim, index)

    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        if src is not None and not isinstance(src, Tensor) and value is None:
            src, value = None, src  # t.scatter(1, idx, 1.0): PyTorch's value overload
        return FM.scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
        return self._inplace(lambda s: s.scatter(dim, index, src, value=value, reduce=reduce))

    def scatter_add(self, dim, index, src): return FM.scatter_add(self, dim, index, src)

    def scatter_add_(self, dim, index, src):
        return self._inplace(lambda s, o: FM.scatter_add(s, dim, index, o), src)
    def split(self, split_size, dim=0): return FM.split(self, split_size, dim)
    def sort(self, dim=-1, descending=False, stable=False): return FM.sort(self, dim, descending)
    def argsort(self, dim=-1, descending=False, stable=False):
        return FM.argsort(self, dim, descending)
    def topk(self, k, dim=-1, largest=True, sorted=True): return FM.topk(self, k, dim, largest)
    def chunk(self, chunks, dim=0): return FM.chunk(self, chunks, dim)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return zeros(*size, dtype=dtype or self._dtype, device=device,
                     requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return ones(*size, dtype=dtype or self._dtype, device=device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return zeros(*size, dtype=dtype or self._dtype, device=device,
                     requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
        return full(size, fill_value, dtype=dtype or self._dtype, device=device,
                    requires_grad=requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
        return tensor(data, dtype=dtype or self._dtype, device=device,
                      requires_grad=requires_grad)

    def zero_grad_(self):
        self._grad = None


_DTYPE_NAMES = ("float32", "float64", "int64", "int32", "bool", "float", "double", "long", "int",
                "uint8")


def _cuda_device(d):
    return d if isinstance(d, (str, _device)) else _device("cuda", int(d))


def _parse_to(args, dtype, device, what: str):
    """The dtype asked for by ``.to(...)``'s arguments (None: keep), after checking that every
    device among them is the CPU. Shared by ``Tensor.to`` and ``Module.to``."""
    check_device(device, what)
    for a in args:
        if a is None:
            continue
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, str) and a in _DTYPE_NAMES:
            dtype = a  # symad also accepts dtype names
        elif is_device_like(a):
            check_device(a, what)
        elif isinstance(a, bool):
            continue  # PyTorch's positional non_blocking / copy flags
        elif isinstance(a, int):
            check_device(a, what)
        else:
            dtype = a
    return dtype


def _axis(dim, axis):
    """PyTorch's ``axis=`` alias of ``dim=`` (numpy-style code: ``x.sum(axis=0)``)."""
    if axis is not None and dim is not None:
        raise TypeError("got both dim and its alias axis; pass one")
    return tuple(axis) if isinstance(axis, list) else (axis if axis is not None else dim)


def _apply(name, *args, **params):
    return apply(REGISTRY[name], *args, **params)


def _as(x, like: Tensor) -> Tensor:
    return x if isinstance(x, Tensor) else tensor(x, dtype=like.dtype)


# ---------------------------------------------------------------------------------------------
# creation

def _infer_dtype(data) -> D.dtype:
    if isinstance(data, Tensor):
        return data.dtype
    if isinstance(data, np.ndarray):
        return D.from_numpy_dtype(data.dtype)
    if isinstance(data, np.generic):
        return D.from_numpy_dtype(np.asarray(data).dtype)
    kinds = set()

    def walk(x):
        if isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif isinstance(x, Tensor):
            kinds.add(x.dtype.category)
        elif isinstance(x, np.ndarray):
            kinds.add(D.from_numpy_dtype(x.dtype).category)
        else:
            kinds.add(D.scalar_category(x))
    walk(data)
    cat = max(kinds) if kinds else 2
    return {0: D.bool_, 1: D.int64, 2: D.get_default_dtype()}[cat]


def _to_array(data):
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (list, tuple)):
        return np.array([_to_array(v) for v in data]) if data and any(
            isinstance(v, Tensor) for v in data) else np.array(data)
    return np.array(data)


def tensor(data: Any, dtype=None, device=None, requires_grad: bool = False,
           pin_memory: bool = False) -> Tensor:
    """Create a tensor from data (copied). ``symad.tensor([1., 2.], requires_grad=True)``"""
    if device is not None:
        check_device(device)
    if isinstance(data, Tensor) and data._data.dtype == object:
        t = Tensor._wrap(np.array(data._data, copy=True), data.dtype)
        return t.requires_grad_(requires_grad) if requires_grad else t
    dt = D.as_dtype(dtype) if dtype is not None else _infer_dtype(data)
    arr = _to_array(data)
    if arr.dtype == object:
        t = Tensor._wrap(np.array(arr, dtype=object), dt)
    else:
        t = Tensor._wrap(np.array(arr, dtype=dt.np), dt)
    if requires_grad:
        t.requires_grad = True
    return t


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """``data`` as a tensor, sharing memory with a tensor or numpy array when the dtype fits."""
    if device is not None:
        check_device(device)
    if isinstance(data, Tensor) and (dtype is None or D.as_dtype(dtype) == data.dtype):
        return data
    if isinstance(data, np.ndarray) and dtype is None:
        return from_numpy(data)
    return tensor(data, dtype=dtype)


def from_numpy(a: np.ndarray) -> Tensor:
    """A tensor sharing memory with a numpy array (dtype preserved)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    return Tensor._wrap(a, D.from_numpy_dtype(a.dtype))


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _make(arr, dtype, requires_grad, device=None):
    if device is not None:
        check_device(device)
    t = Tensor._wrap(arr, dtype)
    if requires_grad:
        t.requires_grad = True
    return t


def _float_dtype(dtype) -> D.dtype:
    return D.as_dtype(dtype) if dtype is not None else D.get_default_dtype()


def zeros(*size, dtype=None, requires_grad=False, device=None, layout=None,
          pin_memory=False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3), device="cpu")``."""
    dt = _float_dtype(dtype)
    return _make(np.zeros(_size(size), dt.np), dt, requires_grad, device)


def ones(*size, dtype=None, requires_grad=False, device=None, layout=None,
         pin_memory=False) -> Tensor:
    """A tensor of ones."""
    dt = _float_dtype(dtype)
    return _make(np.ones(_size(size), dt.np), dt, requires_grad, device)


def empty(*size, dtype=None, requires_grad=False, device=None, layout=None,
          pin_memory=False) -> Tensor:
    """An uninitialised tensor (symad fills it with zeros)."""
    return zeros(*size, dtype=dtype, requires_grad=requires_grad, device=device)


def full(size, fill_value, *, dtype=None, requires_grad=False, device=None, layout=None,
         pin_memory=False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (dtype inferred from the value)."""
    dt = D.as_dtype(dtype) if dtype is not None else _infer_dtype(fill_value)
    return _make(np.full(_size((size,)), fill_value, dt.np), dt, requires_grad, device)


def eye(n, m=None, *, dtype=None, requires_grad=False, device=None, layout=None,
        pin_memory=False) -> Tensor:
    """The ``n x m`` identity matrix."""
    dt = _float_dtype(dtype)
    return _make(np.eye(n, m, dtype=dt.np), dt, requires_grad, device)


def arange(start, end=None, step=1, *, dtype=None, requires_grad=False, device=None,
           layout=None, pin_memory=False) -> Tensor:
    """``[start, end)`` in steps of ``step``; int64 unless a bound or the step is a float."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dt = D.get_default_dtype() if any(isinstance(v, float) for v in (start, end, step)) \
            else D.int64
    else:
        dt = D.as_dtype(dtype)
    return _make(np.arange(start, end, step).astype(dt.np), dt, requires_grad, device)


def linspace(start, end, steps, *, dtype=None, requires_grad=False, device=None,
             layout=None, pin_memory=False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    dt = _float_dtype(dtype)
    return _make(np.linspace(start, end, steps).astype(dt.np), dt, requires_grad, device)


def zeros_like(t, *, dtype=None, requires_grad=False, device=None, layout=None,
               memory_format=None) -> Tensor:
    """Zeros of ``t``'s shape (and dtype unless given)."""
    return zeros(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device)


def ones_like(t, *, dtype=None, requires_grad=False, device=None, layout=None,
              memory_format=None) -> Tensor:
    """Ones of ``t``'s shape (and dtype unless given)."""
    return ones(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device)


def full_like(t, fill_value, *, dtype=None, requires_grad=False, device=None, layout=None,
              memory_format=None) -> Tensor:
    """``fill_value`` in ``t``'s shape (and dtype unless given)."""
    return full(tuple(t.shape), fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad,
                device=device)


def empty_like(t, *, dtype=None, requires_grad=False, device=None, layout=None,
               memory_format=None) -> Tensor:
    """An uninitialised tensor of ``t``'s shape (symad fills it with zeros)."""
    return zeros_like(t, dtype=dtype, requires_grad=requires_grad, device=device)


class FloatTensor(Tensor):
    """Legacy constructor: ``FloatTensor([1, 2])`` is a float32 tensor."""

    __slots__ = ()

    def __new__(cls, *args):
        return Tensor(*args, dtype=D.float32)


class DoubleTensor(Tensor):
    __slots__ = ()

    def __new__(cls, *args):
        return Tensor(*args, dtype=D.float64)


class LongTensor(Tensor):
    __slots__ = ()

    def __new__(cls, *args):
        return Tensor(*args, dtype=D.int64)


# NumPy keyword spellings on the methods (``x.sum(0, keepdims=True)``), as PyTorch accepts them
add_numpy_kwargs(Tensor)
