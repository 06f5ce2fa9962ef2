"""Compiled functional transforms: ``symad.grad``, ``value_and_grad``, ``jacobian``, ``hessian``.

``grad``/``value_and_grad`` run through :func:`symad.compile` (one fused native pass over the data
for a loss); ``jacobian``/``hessian`` trace the whole function (small inputs), derive the exact
derivative matrix by reverse mode, and compile it as one kernel. Inputs may be numpy arrays or
tensors; results come back as the same kind.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .compiled import CompiledFunction


def _argnums(argnums):
    return (argnums,) if isinstance(argnums, int) else tuple(argnums)


def _to_tensors(args, argnums, requires_grad: bool):
    from ..tensor import Tensor, tensor
    out, kinds = [], []
    for j, a in enumerate(args):
        kinds.append("tensor" if isinstance(a, Tensor) else
                     "numpy" if isinstance(a, np.ndarray) else
                     "scalar" if isinstance(a, (int, float)) else "other")
        if j in argnums:
            if isinstance(a, Tensor):
                t = a.detach().to(a.dtype if a.dtype.is_floating_point else D.get_default_dtype())
                t = Tensor._wrap(t._data, t.dtype)
            elif isinstance(a, np.ndarray):
                t = Tensor._wrap(a if a.dtype.kind == "f" else a.astype(np.float64))
            else:
                t = tensor(float(a), dtype=D.float64)
            out.append(t.requires_grad_(requires_grad))
        elif isinstance(a, np.ndarray):
            out.append(Tensor._wrap(a))
        else:
            out.append(a)
    return out, kinds


def _back(t, kind):
    if t is None:
        return None
    if kind == "tensor":
        return t.detach()
    if kind == "scalar":
        return float(t.item())
    return np.asarray(t.detach()._data)


def value_and_grad(fn, argnums=0, *, has_aux: bool = False, **compile_kw):
    """``value_and_grad(loss_fn)(t, x, y) -> (loss, dloss/dt)`` from one native pass.

    >>> import numpy as np, symad
    >>> vg = symad.value_and_grad(lambda w, x: ((w * x) ** 2).sum())
    >>> v, g = vg(np.array(2.0), np.array([1.0, 2.0]))
    >>> float(v), float(g)
    (20.0, 20.0)
    """
    nums = _argnums(argnums)
    compiled = CompiledFunction(fn, **compile_kw)

    def wrapped(*args):
        from ..autograd import grad as agrad
        targs, kinds = _to_tensors(args, nums, True)
        out = compiled(*targs)
        if out.numel() != 1:
            raise RuntimeError(f"grad requires a scalar output, got shape {tuple(out.shape)}; "
                               "use symad.jacobian for vector outputs")
        gs = agrad([out], [targs[j] for j in nums], allow_unused=True)
        gs = [g if g is not None else targs[j].detach() * 0 for g, j in zip(gs, nums)]
        value = _back(out, "tensor" if kinds[nums[0]] == "tensor" else
                      ("scalar" if kinds[nums[0]] == "scalar" else "numpy"))
        grads = tuple(_back(g, kinds[j]) for g, j in zip(gs, nums))
        return value, (grads[0] if isinstance(argnums, int) else grads)

    wrapped.compiled = compiled
    return wrapped


def grad(fn, argnums=0, **compile_kw):
    """``grad(f)(*args)``: the gradient of a scalar function with respect to ``args[argnums]``."""
    vg = value_and_grad(fn, argnums, **compile_kw)

    def wrapped(*args):
        return vg(*args)[1]
    wrapped.compiled = vg.compiled
    return wrapped


class _MatrixKernel:
    """Traces ``fn`` over fully symbolic inputs and compiles a derivative matrix of it."""

    def __init__(self, fn, argnums, order: int) -> None:
        self.fn, self.argnums, self.order = fn, argnums, order
        self._cache: dict = {}

    def _build(self, targs):
        from codegen import compile_kernel

        from ..symbolic.reverse import reverse_gradient, reverse_jacobian
        from ..tensor import Tensor
        from .program import trace_program
        tensors = [a for a in targs if isinstance(a, Tensor)]
        dt = D.float64 if any(t.dtype == D.float64 for t in tensors) else D.float32

        def run(param_syms, _data):
            it = iter(param_syms)
            call = [Tensor._wrap(next(it), D.float64) if isinstance(a, Tensor) else a
                    for a in targs]
            return self.fn(*call)

        prog = trace_program(run, [(id(t), t._data) for t in tensors], [], dt.name)
        pos = [j for j, a in enumerate(targs) if isinstance(a, Tensor)]
        wrt_syms = [s for j in self.argnums
                    for s in prog.params[pos.index(j)].symbols.reshape(-1)]
        if self.order == 1:
            mat = reverse_jacobian(prog.per_sample, wrt_syms)
            shape_out = tuple(prog.out_shape)
        else:
            if len(prog.per_sample) != 1:
                raise RuntimeError("hessian requires a scalar function, got output shape "
                                   f"{tuple(prog.out_shape)}")
            g = reverse_gradient(prog.per_sample[0], wrt_syms)
            mat = reverse_jacobian(g, wrt_syms)
            shape_out = ()
        flat = list(mat)  # row-major
        inputs = [s for p in prog.params for s in p.symbols.reshape(-1)]
        k = compile_kernel(inputs, flat or [0], batched=[], reduce="none", dtype=dt.name,
                           name="symad_derivative")
        return k, shape_out, dt, len(wrt_syms)

    def __call__(self, *args):
        targs, kinds = _to_tensors(args, self.argnums, False)
        from ..tensor import Tensor
        key = tuple((tuple(a.shape), a.dtype.name) if isinstance(a, Tensor) else ("v", a)
                    for a in targs)
        built = self._cache.get(key)
        if built is None:
            built = self._cache[key] = self._build(targs)
        k, shape_out, dt, n_wrt = built
        vals = [v for a in targs if isinstance(a, Tensor)
                for v in np.asarray(a._data, np.float64).reshape(-1).tolist()]
        outs = k.call_arrays(vals)
        arr = np.array([float(o) for o in outs], dtype=dt.np)
        in_shape = tuple(targs[self.argnums[0]].shape) if len(self.argnums) == 1 else (n_wrt,)
        if self.order == 1:
            arr = arr.reshape(shape_out + in_shape)
        else:
            arr = arr.reshape(in_shape + in_shape)
        kind = kinds[self.argnums[0]]
        if kind == "tensor":
            return Tensor._wrap(arr, dt)
        return float(arr) if kind == "scalar" and arr.ndim == 0 else arr


def jacobian(fn, argnums=0):
    """``jacobian(f)(x)``: d f(x) / d x as an array of shape ``f(x).shape + x.shape``."""
    return _MatrixKernel(fn, _argnums(argnums), 1)


def hessian(fn, argnums=0):
    """``hessian(f)(x)``: the exact Hessian of a scalar ``f`` at ``x`` (shape ``x.shape * 2``)."""
    return _MatrixKernel(fn, _argnums(argnums), 2)
