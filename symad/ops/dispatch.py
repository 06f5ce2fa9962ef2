"""Running a registered op: eager numpy forward, graph recording, and VJP evaluation."""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from .._exact import exact_array, exact_mode
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.recording import active as _recording
from ..autograd.graph import OpNode, SavedContext, node_class, node_for
from .registry import Op
from .shape import sum_to_shape


_OBJECT = np.dtype(object)


def _as_tensor(x, dt):
    Tensor = D._tensor_cls()
    if isinstance(x, Tensor):
        return x
    return Tensor._wrap(np.asarray(x, dtype=dt.np))


def indicator_array(a: np.ndarray) -> np.ndarray:
    """A symbolic boolean array as 0/1 numbers: relation ``r`` -> ``Piecewise((1, r), (0, True))``."""
    import sympy

    def one(v):
        if isinstance(v, (bool, np.bool_)) or v in (sympy.true, sympy.false):
            return sympy.Integer(1 if bool(v) else 0)
        return sympy.Piecewise((sympy.Integer(1), v), (sympy.Integer(0), True))
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(*a.shape):
        out[idx] = one(a[idx])
    return out


def _check_broadcast(arrays) -> None:
    """PyTorch's error for operands that do not broadcast (numpy's would be a ValueError)."""
    shapes = [a.shape for a in arrays]
    nd = max(len(sh) for sh in shapes)
    for k in range(1, nd + 1):
        sizes = {sh[-k] for sh in shapes if len(sh) >= k and sh[-k] != 1}
        if len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            raise RuntimeError(f"The size of tensor a ({a}) must match the size of tensor b "
                               f"({b}) at non-singleton dimension {nd - k}")


def result_dtype(op: Op, inputs, params=None) -> D.dtype:
    rule = op.dtype_rule
    if op.dtype_params and params:
        inputs = tuple(inputs) + tuple(params[k] for k in op.dtype_params
                                       if params.get(k) is not None)
    if rule == "first":
        return inputs[0].dtype
    if rule == "bool":
        return D.bool_
    if rule == "where":
        return D.result_type(*inputs[1:])
    dt = D.result_type(*inputs)
    if rule == "float" and not dt.is_floating_point:
        return D.get_default_dtype()
    return dt


def forward_numpy(op: Op, arrays, params: dict, dt: D.dtype):
    """The op's numpy forward on ``arrays`` with its dtype rule: ``(result array, result dtype)``.

    The one numeric evaluation of a registered op: eager :func:`apply` and the replay of a
    recorded tensor program (:mod:`symad.program`) both run it, so they agree bit for bit."""
    with np.errstate(all="ignore"):
        return forward_numpy_quiet(op, arrays, params, dt)


def forward_numpy_quiet(op: Op, arrays, params: dict, dt: D.dtype):
    """:func:`forward_numpy` for a caller that has already silenced numpy's floating-point
    warnings (``np.errstate(all="ignore")``) around many ops, as a program replay does."""
    rule = op.dtype_rule
    dnp = dt.np
    if op.formula is not None and (rule == "promote" or rule == "float"):
        arrays = [a if a.dtype == dnp else a.astype(dnp) for a in arrays]
    try:
        out = op.forward(*arrays, **params)
    except ValueError:
        _check_broadcast(arrays)
        raise
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if rule == "custom":
        dt = D.from_numpy_dtype(out.dtype)
    elif out.dtype != dnp:
        out = out.astype(dnp)
    return out, dt


def forward_numpy_plan(op: Op, in_dtypes, params: dict, dt: D.dtype):
    """:func:`forward_numpy_quiet` specialized once for inputs of known numpy dtypes (a recorded
    program's slots): ``f(*arrays) -> array``. The casts that :func:`forward_numpy_quiet` would
    find to be no-ops for these dtypes are resolved here instead of at every call."""
    rule = op.dtype_rule
    dnp = dt.np
    needs_cast = op.formula is not None and (rule == "promote" or rule == "float") and any(
        d != dnp for d in in_dtypes)
    if needs_cast or rule == "custom":
        return lambda *arrays: forward_numpy_quiet(op, arrays, params, dt)[0]
    fwd = op.forward
    ndarray = np.ndarray

    def f(*arrays):
        out = fwd(*arrays, **params) if params else fwd(*arrays)
        if type(out) is not ndarray:
            out = np.asarray(out)
        return out if out.dtype == dnp else out.astype(dnp)
    return f


def apply(op: Op, *inputs, **params):
    """Run ``op`` on tensors (Python scalars are wrapped with PyTorch's promotion rules)."""
    Tensor = D._tensor_cls()
    rule = op.dtype_rule
    dt = result_dtype(op, inputs, params)
    if all(type(x) is Tensor for x in inputs):
        tensors = inputs
    else:
        # comparisons: Python scalars take the inputs' promoted dtype, not the bool result
        # dtype (``x > 0.5`` must not compare against ``True``)
        for i, v in enumerate(inputs):
            if v is None or isinstance(v, (str, bytes)):
                raise TypeError(f"{op.name}(): argument {i + 1} must be a Tensor or a number, "
                                f"not {type(v).__name__}")
        wrap_dt = D.result_type(*inputs) if rule == "bool" else dt
        tensors = tuple(_as_tensor(x, D.bool_ if (i == 0 and rule == "where") else wrap_dt)
                        for i, x in enumerate(inputs))
    arrays = [t._data for t in tensors]
    if any(a.dtype is _OBJECT for a in arrays):
        if exact_mode():  # verification: float constants as exact rationals (one arithmetic)
            arrays = [exact_array(a) if a.dtype.kind == "f" else a for a in arrays]
        if rule == "custom" and isinstance(params.get("dtype"), D.dtype):
            dt = params["dtype"]  # a cast of symbolic data keeps the requested dtype
        if dt is not D.bool_:
            # a symbolic mask used as a number (``x * (x > 0)``, ``mask.double()``): each
            # relation becomes its 0/1 indicator; a ``where`` condition stays a relation
            arrays = [indicator_array(a) if t._dtype is D.bool_ and a.dtype is _OBJECT
                      and not (i == 0 and rule == "where") else a
                      for i, (t, a) in enumerate(zip(tensors, arrays))]
        out = op.symbolic_forward(*[np.asarray(a, dtype=object) for a in arrays], **params)
        out = np.asarray(out, dtype=object)
    else:
        out, dt = forward_numpy(op, arrays, params, dt)
    result = Tensor._wrap(out, dt)
    rec = _recording()
    if rec is not None:
        rec.op(op, tensors, params, result)
    if op.nondiff_reason is None and is_grad_enabled():
        needs = tuple(t._requires_grad for t in tensors)
        if True in needs:
            if not dt.is_floating_point:
                return result
            ctx = SavedContext(tensors, result, params, needs)
            cls = node_class(op.grad_fn_name(*tensors, **params), OpNode)
            result._grad_fn = node_for(tensors, lambda nf: cls(op, ctx, nf))
            result._requires_grad = True
    return result


def run_vjp(op: Op, ctx: SavedContext, g):
    """The input gradients of one node, reduced to each input's shape."""
    if op.vjp is not None:
        grads = op.vjp(ctx, g)
    else:
        grads = _elementwise_vjp(op, ctx, g)
    out = []
    for t, gi in zip(ctx.inputs, grads):
        if gi is not None and gi._data.shape != t._data.shape:
            gi = gi.sum_to_size(t.shape)
        out.append(gi)
    return tuple(out)


def elementwise_partial(op: Op, i: int, params: dict, arrays, g: np.ndarray, shape) -> np.ndarray:
    """``g * d op / d input_i`` evaluated in numpy (the SymPy partial, lambdified) and summed down
    to the input's ``shape``: the numeric VJP of an elementwise op, shared by eager backward and
    the replay of a recorded program."""
    with np.errstate(all="ignore"):
        return elementwise_partial_quiet(op, i, params, arrays, g, shape)


def elementwise_partial_quiet(op: Op, i: int, params: dict, arrays, g: np.ndarray,
                              shape) -> np.ndarray:
    """:func:`elementwise_partial` inside the caller's ``np.errstate(all="ignore")``."""
    fn = op.derivative_numpy(i, params)
    pvals = [v for v in params.values() if v is not None]
    val = g * np.asarray(fn(*arrays, *pvals), dtype=g.dtype)
    if val.shape != tuple(shape):
        val = sum_to_shape(val, shape)
    return val.astype(g.dtype, copy=False)


def _elementwise_vjp(op: Op, ctx: SavedContext, g):
    Tensor = D._tensor_cls()
    from .sym2tensor import evaluate

    params = ctx.params
    grads = []
    differentiable = is_grad_enabled() and (g.requires_grad or any(
        t.requires_grad for t in ctx.inputs))
    for i, t in enumerate(ctx.inputs):
        if not ctx.needs_input_grad[i]:
            grads.append(None)
            continue
        if differentiable or g._data.dtype == object:
            args, psyms, ders = op.derivative_exprs(params)
            env = dict(zip(args, ctx.inputs))
            env.update({s: params[k] for k, s in psyms.items() if s is not None})
            d = evaluate(ders[i], env)
        else:
            # no graph needed: the same SymPy partial, evaluated and contracted in numpy
            val = elementwise_partial(op, i, params, [x._data for x in ctx.inputs], g._data,
                                      t._data.shape)
            gi = Tensor._wrap(val, g._dtype)
            rec = _recording()
            if rec is not None:
                rec.partial(op, i, params, ctx.inputs, g, gi)
            grads.append(gi)
            continue
        grads.append(g * d)
    return grads
