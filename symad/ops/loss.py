"""Loss primitives with PyTorch's grad_fn names. (cross_entropy and l1_loss are composites in
:mod:`symad.ops.functional`.)"""
from __future__ import annotations

import numpy as np
import sympy

from .registry import REGISTRY, _np_clamped_log, clamped_log, register, sym_formula, sym_map

_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction "
                         "(use 'mean', 'sum' or 'none')")


def _reduce_np(v, reduction):
    if reduction == "none":
        return v
    s = np.sum(v)
    if reduction == "sum":
        return s
    return s / (sympy.Integer(v.size) if v.dtype == object else v.size)


def _reduce_grad(g, ctx, shape):
    """The upstream gradient of a reduced loss, broadcast to the elementwise shape."""
    r = ctx.params["reduction"]
    if r == "none":
        return g
    n = int(np.prod(shape))
    g = g.expand(*shape)
    return g / n if r == "mean" else g


def _mse_np(x, y, reduction="mean"):
    d = x - y
    return _reduce_np(d * d, reduction)


def _mse_vjp(ctx, g):
    x, y = ctx.inputs
    shape = np.broadcast_shapes(tuple(x.shape), tuple(y.shape))
    d = 2 * (x - y) * _reduce_grad(g, ctx, shape)
    return (d if ctx.needs_input_grad[0] else None, -d if ctx.needs_input_grad[1] else None)


def _mse_decompose(x, y, reduction="mean"):
    d = x - y
    v = d * d
    if reduction == "none":
        return v
    s = v.sum()
    return s if reduction == "sum" else s / v.numel()


register("mse_loss", grad_fn="MseLossBackward0", forward=_mse_np, vjp=_mse_vjp, nargs=2,
         params=("reduction",), decompose=_mse_decompose)


def _bce_np(x, y, reduction="mean"):
    # PyTorch clamps each log at -100 so that a saturated probability gives a finite loss: the
    # same clamp (``clamped_log``, with PyTorch's backward as its derivative) on traced elements
    if x.dtype == object or y.dtype == object:
        v = -(y * sym_map(clamped_log)(x) + (1 - y) * sym_map(clamped_log)(1 - x))
    else:
        with np.errstate(divide="ignore"):
            v = -(y * _np_clamped_log(x) + (1 - y) * np.maximum(np.log1p(-x), -100))
    return _reduce_np(v, reduction)


def _bce_vjp(ctx, g):
    x, y = ctx.inputs
    gg = _reduce_grad(g, ctx, tuple(x.shape))
    eps = 1e-12
    gx = gg * (x - y) / ((x * (1 - x)).clamp(min=eps)) if ctx.needs_input_grad[0] else None
    gy = None
    if ctx.needs_input_grad[1]:
        gy = gg * ((1 - x).log().clamp(min=-100) - x.log().clamp(min=-100))
    return (gx, gy)


register("binary_cross_entropy", grad_fn="BinaryCrossEntropyBackward0", forward=_bce_np,
         vjp=_bce_vjp, nargs=2, params=("reduction",))


def _bce_logits_term(x, y):
    """The stable per-element form max(x, 0) - x*y + log1p(exp(-|x|)), for numpy arrays and
    (through :func:`sym_formula`) SymPy elements alike; its derivative at x = 0 is
    sigmoid(0) - y, as PyTorch's (Max splits the tie, sign(0) = 0)."""
    if isinstance(x, np.ndarray):
        return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    return sympy.Max(x, 0) - x * y + sympy.log(1 + sympy.exp(-sympy.Abs(x)))


def _bce_logits_np(x, y, reduction="mean"):
    if x.dtype == object or y.dtype == object:
        v = sym_formula(_bce_logits_term, 2)(*np.broadcast_arrays(x, y))
    else:
        v = _bce_logits_term(x, y)
    return _reduce_np(v, reduction)


def _bce_logits_vjp(ctx, g):
    x, y = ctx.inputs
    gg = _reduce_grad(g, ctx, np.broadcast_shapes(tuple(x.shape), tuple(y.shape)))
    gx = gg * (x.sigmoid() - y) if ctx.needs_input_grad[0] else None
    gy = -gg * x if ctx.needs_input_grad[1] else None
    return (gx, gy)


register("binary_cross_entropy_with_logits", grad_fn="BinaryCrossEntropyWithLogitsBackward0",
         forward=_bce_logits_np, vjp=_bce_logits_vjp, nargs=2, params=("reduction",))


def _nll_key(logp_shape, target):
    n = logp_shape[0]
    return (np.arange(n), np.asarray(target, dtype=np.int64))


def _nll_np(logp, target, reduction="mean"):
    t = np.asarray(target, dtype=np.int64)
    n_classes = logp.shape[0 if logp.ndim == 1 else 1]
    if t.min(initial=0) < 0 or t.max(initial=0) >= n_classes:   # never a wrapped negative index
        bad = int(t.min()) if t.min(initial=0) < 0 else int(t.max())
        raise IndexError(f"Target {bad} is out of bounds (the input has {n_classes} classes)")
    if logp.ndim == 1:
        v = -logp[t]
    else:
        v = -logp[_nll_key(logp.shape, t)]
    return _reduce_np(v, reduction)


def _nll_vjp(ctx, g):
    # written with registered ops on the target TENSOR (scatter_add at the target positions), so
    # a recorded program reads the target of each call instead of baking this call's class
    # indices into an op parameter; zeros elsewhere, -g (/ n) at each target (PyTorch's values)
    from .dispatch import apply
    from .functional import zeros_like
    logp, target = ctx.inputs
    scatter_add = REGISTRY["scatter_add"]
    if logp.ndim == 1:
        gg = _reduce_grad(g, ctx, ())
        return (apply(scatter_add, zeros_like(logp), target.reshape(1), -gg.reshape(1), dim=0),
                None)
    gg = _reduce_grad(g, ctx, (logp.shape[0],))
    return (apply(scatter_add, zeros_like(logp), target.unsqueeze(1), -gg.unsqueeze(1), dim=1),
            None)


def _nll_decompose(logp, target, reduction="mean"):
    """``-logp[i, target[i]]`` as a gather (what native programs lower), then the reduction;
    None for a 1-D input (kept as one step)."""
    from .dispatch import apply
    if logp.ndim != 2:
        return None
    v = -apply(REGISTRY["gather"], logp, target.unsqueeze(1), dim=1).reshape(logp.shape[0])
    if reduction == "none":
        return v
    s = v.sum()
    return s if reduction == "sum" else s / v.numel()


def _one_hot_np(target, num_classes=-1):
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    n = int(t.max(initial=-1)) + 1 if num_classes == -1 else int(num_classes)
    if t.size and (t.min() < 0 or t.max() >= n):
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = np.zeros(t.shape + (n,), dtype=np.int64)
    np.put_along_axis(out, t[..., None].astype(np.intp), 1, axis=-1)
    return out


_ONE_HOT = register("one_hot", grad_fn="OneHotBackward0", forward=_one_hot_np,
                    nondiff_reason="integer class indices", params=("num_classes",),
                    dtype_rule="custom", doc="F.one_hot: int64 indicator of each class")


register("nll_loss", grad_fn="NllLossBackward0", forward=_nll_np, vjp=_nll_vjp, nargs=2,
         params=("reduction",), dtype_rule="first", decompose=_nll_decompose)


# ---------------------------------------------------------------------------------------------
# PyTorch's legacy size_average= / reduce= loss arguments, and the smooth L1 / Huber losses

def legacy_reduction(size_average, reduce, reduction: str = "mean") -> str:
    """PyTorch's ``_Reduction.legacy_get_string``: when either legacy argument is given (not
    None), it decides the reduction (a missing one counts as True) and a UserWarning names the
    ``reduction=`` to use instead; otherwise ``reduction`` stands."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        ret = "mean"
    elif reduce:
        ret = "sum"
    else:
        ret = "none"
    import warnings
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{ret}' instead.", UserWarning, stacklevel=3)
    return ret


def _piecewise_loss_np(quadratic, linear):
    """Forward of a loss that is ``quadratic(d, z)`` for ``|d| < k`` and ``linear(z)`` beyond."""
    def forward(x, y, reduction="mean", k=1.0):
        d = x - y
        if d.dtype == object:
            pw = np.frompyfunc(lambda e: sympy.Piecewise(
                (quadratic(e, k), sympy.Abs(e) < k), (linear(sympy.Abs(e), k), True)), 1, 1)
            v = pw(d)
        else:
            z = np.abs(d)
            v = np.where(z < k, quadratic(d, k), linear(z, k))
        return _reduce_np(v, reduction)
    return forward


def _piecewise_loss_vjp(inside, outside_scale):
    """VJP of such a loss: ``inside(d, k)`` for ``|d| < k``, ``outside_scale(k) * sign(d)``
    beyond (both equal at ``|d| = k``)."""
    def vjp(ctx, g):
        from .functional import where
        x, y = ctx.inputs
        k = ctx.params["k"]
        d = x - y
        gg = _reduce_grad(g, ctx, np.broadcast_shapes(tuple(x.shape), tuple(y.shape)))
        outside = d.sign() * outside_scale(k)
        local = outside if k == 0 else where(d.abs() < k, inside(d, k), outside)
        gd = gg * local
        return (gd if ctx.needs_input_grad[0] else None,
                -gd if ctx.needs_input_grad[1] else None)
    return vjp


# smooth_l1: 0.5 d^2 / beta for |d| < beta, |d| - 0.5 beta beyond (beta = 0: |d|)
register("smooth_l1_loss", grad_fn="SmoothL1LossBackward0",
         forward=_piecewise_loss_np(lambda d, b: 0.5 * d * d / b if b else 0 * d,
                                    lambda z, b: z - 0.5 * b),
         vjp=_piecewise_loss_vjp(lambda d, b: d / b, lambda b: 1.0), nargs=2,
         params=("reduction", "k"),
         doc="smooth L1 loss with threshold k = beta (PyTorch's SmoothL1Loss)")
# huber: 0.5 d^2 for |d| < delta, delta (|d| - 0.5 delta) beyond
register("huber_loss", grad_fn="HuberLossBackward0",
         forward=_piecewise_loss_np(lambda d, k: 0.5 * d * d, lambda z, k: k * (z - 0.5 * k)),
         vjp=_piecewise_loss_vjp(lambda d, k: d, lambda k: k), nargs=2,
         params=("reduction", "k"), doc="Huber loss with threshold k = delta (PyTorch's HuberLoss)")
