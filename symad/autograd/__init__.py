"""``symad.autograd``: PyTorch's autograd API — Function, Variable, grad, backward, gradcheck."""
from __future__ import annotations

from typing import Sequence

from .function import Function, FunctionCtx, once_differentiable
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .graph import run_backward


class _VariableMeta(type):
    def __instancecheck__(cls, obj) -> bool:
        from ..tensor import Tensor
        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableMeta):
    """Legacy wrapper (seed 002): ``Variable(t, requires_grad=True)`` is just a tensor now."""

    def __new__(cls, data, requires_grad: bool = False, volatile: bool = False):
        from ..tensor import Tensor, tensor
        t = data if isinstance(data, Tensor) else tensor(data)
        if requires_grad:
            t.requires_grad_(True)
        return t


def _seq(x):
    from ..tensor import Tensor
    if x is None:
        return None
    return [x] if isinstance(x, Tensor) else list(x)


def _default_grads(outputs, grad_outputs):
    from ..ops.functional import ones_like
    gs = _seq(grad_outputs) or [None] * len(outputs)
    if len(gs) != len(outputs):
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs "
                           f"(got {len(gs)} grad_outputs for {len(outputs)} outputs)")
    out = []
    for o, g in zip(outputs, gs):
        if g is None:
            if o.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = ones_like(o)
        elif tuple(g.shape) != tuple(o.shape):
            raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of "
                               f"{list(g.shape)} and output[0] has a shape of {list(o.shape)}.")
        out.append(g)
    return out


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, materialize_grads=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` is untouched).

    >>> import symad
    >>> x = symad.tensor(3.0, requires_grad=True)
    >>> symad.autograd.grad(x ** 3, x)
    (tensor(27.),)
    """
    outputs = _seq(outputs)
    inputs_l = _seq(inputs)
    if allow_unused is None:
        allow_unused = materialize_grads
    for o in outputs:
        if not o.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
    grads = _default_grads(outputs, grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    result = run_backward(outputs, grads, retain_graph=retain_graph, create_graph=create_graph,
                          inputs=inputs_l, accumulate=False, allow_unused=allow_unused)
    if materialize_grads:
        from ..ops.functional import zeros_like
        result = tuple(zeros_like(i) if g is None else g for g, i in zip(result, inputs_l))
    return result


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """``symad.autograd.backward([loss1, loss2])``: accumulate into leaves' ``.grad``."""
    tensors = _seq(tensors)
    grads = _default_grads(tensors, grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    run_backward(tensors, grads, retain_graph=retain_graph, create_graph=create_graph,
                 inputs=_seq(inputs), accumulate=True)


__all__ = ["Function", "FunctionCtx", "Variable", "grad", "backward", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "inference_mode", "once_differentiable"]


def __getattr__(name):
    # gradcheck/gradgradcheck live with the verification tools
    if name in ("gradcheck", "gradgradcheck", "GradcheckError"):
        from .. import gradcheck as _gc
        return getattr(_gc, name)
    raise AttributeError(f"module 'symad.autograd' has no attribute {name!r}")


_ = Sequence
