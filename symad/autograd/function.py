"""``symad.autograd.Function``: user-defined ops with a hand-written backward (PyTorch API).

As in PyTorch, ``ctx`` *is* the graph node: ``y.grad_fn`` of ``y = Square.apply(x)`` is a
``SquareBackward`` object that holds what ``forward`` saved.
"""
from __future__ import annotations

import functools

from .recording import active as _recording
from .grad_mode import is_grad_enabled, no_grad
from .graph import Node

_FREED = ("Trying to backward through the graph a second time (or directly access saved tensors "
          "after they have already been freed). Saved intermediate values of the graph are freed "
          "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
          "backward through the graph a second time or if you need to access saved tensors after "
          "calling backward.")


class FunctionCtx:
    """The ``ctx`` argument of ``forward``/``backward`` outside a graph (no input needs grad)."""

    def save_for_backward(self, *tensors) -> None:
        self._to_save = tensors
        self._saved_versions = tuple(t._version.value if t is not None else None
                                     for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        if getattr(self, "_released", False):
            raise RuntimeError(_FREED)
        saved = getattr(self, "_to_save", ())
        for i, (t, v) in enumerate(zip(saved, getattr(self, "_saved_versions", ()))):
            if t is not None and t._version.value != v:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: saved tensor {i} [{t.type()} {list(t.shape)}] is at "
                    f"version {t._version.value}; expected version {v} instead.")
        return tuple(saved)

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_differentiable = {id(t) for t in tensors}

    def mark_dirty(self, *tensors) -> None:
        self._dirty = {id(t) for t in tensors}

    def set_materialize_grads(self, value: bool) -> None:
        self._materialize = bool(value)


class BackwardFunction(Node, FunctionCtx):
    """Graph node of a custom Function; its class is named ``<FunctionName>Backward``."""

    _forward_cls: type = None  # set per subclass
    __slots__ = ("__dict__",)

    def __init__(self, next_functions=()) -> None:
        Node.__init__(self, next_functions)
        self.needs_input_grad = ()
        self.num_outputs = 1
        self._released = False
        self._materialize = True

    def apply(self, grads):
        import numpy as np

        from ..tensor import Tensor
        if self._released:
            raise RuntimeError(_FREED)
        if self._materialize:
            grads = [Tensor._wrap(np.zeros(m.shape, m.dtype.np), m.dtype)
                     if g is None and m is not None else g for g, m in zip(grads, self._out_meta)]
        result = self._forward_cls.backward(self, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        n_in = len(self._input_meta)
        name = type(self).__name__
        if len(result) < n_in or any(r is not None for r in result[n_in:]):
            raise RuntimeError(f"function {name} returned an incorrect number of gradients "
                               f"(expected {n_in}, got {len(result)})")
        out = []
        for i, (g, meta) in enumerate(zip(result[:n_in], self._input_meta)):
            if g is None or meta is None:
                out.append(None)
                continue
            if not isinstance(g, Tensor):
                raise TypeError(f"function {name} returned a gradient of type "
                                f"{type(g).__name__} at index {i}; expected a Tensor or None")
            if tuple(g.shape) != meta.shape:
                try:
                    np.broadcast_shapes(meta.shape, tuple(g.shape))
                    ok = np.broadcast_shapes(meta.shape, tuple(g.shape)) == tuple(g.shape)
                except ValueError:
                    ok = False
                if not ok:
                    raise RuntimeError(f"Function {name} returned an invalid gradient at index "
                                       f"{i} - got {list(g.shape)} but expected shape compatible "
                                       f"with {list(meta.shape)}")
                g = g.sum_to_size(meta.shape)
            out.append(g)
        return tuple(out)

    def release(self) -> None:
        self._released = True
        self._to_save = ()


class _Meta:
    __slots__ = ("shape", "dtype")

    def __init__(self, t) -> None:
        self.shape = tuple(t.shape)
        self.dtype = t.dtype


class FunctionMeta(type):
    def __init__(cls, name, bases, attrs):
        super().__init__(name, bases, attrs)
        cls._backward_cls = type(name + "Backward", (BackwardFunction,),
                                 {"_forward_cls": cls, "__slots__": ()})


class Function(metaclass=FunctionMeta):
    """Subclass with ``@staticmethod forward(ctx, *args)`` and ``backward(ctx, *grads)``;
    call with ``MyFunction.apply(*args)``.

    >>> class Square(Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 2
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 2 * x * g
    """

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError("Legacy autograd function with non-static forward method is "
                           "deprecated. Please use new-style autograd function with static "
                           "forward method, and call it with MyFunction.apply(...)")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        from ..tensor import Tensor
        tensors = [a if isinstance(a, Tensor) else None for a in args]
        needs = tuple(bool(t is not None and t.requires_grad) for t in tensors)
        record = is_grad_enabled() and any(needs)
        ctx = cls._backward_cls(())
        ctx.needs_input_grad = needs
        ctx._input_meta = tuple(_Meta(t) if t is not None else None for t in tensors)
        with no_grad():
            outputs = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        if not record:
            return outputs
        nondiff = getattr(ctx, "_non_differentiable", set())
        wrapped = []
        input_ids = {id(t) for t in tensors if t is not None}
        ctx.next_functions = tuple(_edges(tensors))
        ctx.num_outputs = len(outs)
        metas = []
        for i, o in enumerate(outs):
            if not isinstance(o, Tensor):
                wrapped.append(o)
                metas.append(None)
                continue
            if id(o) in input_ids or o._grad_fn is not None or o._requires_grad:
                src, o = o, Tensor._wrap(o._data, o.dtype)
                rec = _recording()
                if rec is not None:
                    rec.alias(o, src)
            if id(o) not in nondiff and o.dtype.is_floating_point:
                o._grad_fn = ctx
                o._output_nr = i
                o._requires_grad = True
            wrapped.append(o)
            metas.append(_Meta(o))
        ctx._out_meta = metas
        return wrapped[0] if single else tuple(wrapped)


def _edges(tensors):
    from .graph import _edge_of
    for t in tensors:
        e = _edge_of(t) if t is not None else None
        yield e if e is not None else (None, 0)


def once_differentiable(fn):
    """Marks a backward that is not itself differentiable (runs it under ``no_grad``)."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            return fn(ctx, *args)
    return wrapper
