"""The functional op surface (``symad.exp``, ``symad.where``, ...). Each function is a thin call
of a registered op through :func:`symad.ops.dispatch.apply`; composites are written with them."""
from __future__ import annotations

import builtins as _b
import warnings as _warnings
from collections import namedtuple

import numpy as np

from . import elementwise, linalg, loss, matrix, reduce  # noqa: F401  (register the ops)
from . import activation, conv, norm  # noqa: F401  (layer ops: activations, conv/pool, norms)
from . import shape as _shape_ops  # noqa: F401  (registers the shape ops)
from .. import _dtype as D
from ..autograd.recording import opaque as _opaque
from .dispatch import apply
from .loss import check_reduction, legacy_reduction
from .registry import REGISTRY

_R = REGISTRY


def _t(x):
    return x if isinstance(x, D._tensor_cls()) else None


def as_tensor_like(x, other=None):
    """``x`` as a tensor; Python numbers take ``other``'s dtype when it is a tensor."""
    from ..tensor import Tensor, tensor
    if isinstance(x, Tensor):
        return x
    if isinstance(other, Tensor):
        return tensor(x, dtype=other.dtype)
    return tensor(x)


# -- elementwise ------------------------------------------------------------------------------
def _unary(name):
    op = _R[name]

    def f(input):
        return apply(op, input)
    f.__name__ = name
    f.__doc__ = f"Elementwise {name} (registry op ``{name}``)."
    return f


exp = _unary("exp")
log = _unary("log")
sqrt = _unary("sqrt")
sin = _unary("sin")
cos = _unary("cos")
tan = _unary("tan")
tanh = _unary("tanh")
sinh = _unary("sinh")
cosh = _unary("cosh")
atan = _unary("atan")
asin = _unary("asin")
acos = _unary("acos")
log1p = _unary("log1p")
expm1 = _unary("expm1")
reciprocal = _unary("reciprocal")
sigmoid = _unary("sigmoid")
abs = _unary("abs")
sign = _unary("sign")
relu = _unary("relu")
neg = _unary("neg")
floor = _unary("floor")
erf = _unary("erf")
logical_not = _unary("logical_not")
arctan, arcsin, arccos, absolute, negative = atan, asin, acos, abs, neg


def add(input, other, *, alpha=1):
    return apply(_R["add"], input, other if alpha == 1 else other * alpha)


def sub(input, other, *, alpha=1):
    if _t(input) is None and _t(other) is not None:
        return apply(_R["rsub"], other if alpha == 1 else other * alpha, input)
    return apply(_R["sub"], input, other if alpha == 1 else other * alpha)


def mul(input, other):
    return apply(_R["mul"], input, other)


def div(input, other, *, rounding_mode=None):
    if rounding_mode == "floor":
        return apply(_R["floor_divide"], input, other)
    if rounding_mode is not None:
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                         f"found '{rounding_mode}' (symad supports None and 'floor')")
    return apply(_R["div"], input, other)


def floor_divide(input, other):
    return apply(_R["floor_divide"], input, other)


def remainder(input, other):
    return apply(_R["remainder"], input, other)


true_divide = divide = div
multiply, subtract = mul, sub


def pow(input, exponent):
    if _t(exponent) is None and _t(input) is not None:
        return apply(_R["pow_scalar"], input, exponent=exponent)
    return apply(_R["pow"], input, exponent)


def square(input):
    return pow(input, 2)


def maximum(input, other):
    return apply(_R["maximum"], input, other)


def minimum(input, other):
    return apply(_R["minimum"], input, other)


def clamp(input, min=None, max=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if _t(min) is not None or _t(max) is not None:
        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    return apply(_R["clamp"], input, min=min, max=max)


clip = clamp


def clamp_min(input, min):
    """``clamp(input, min=min)`` with PyTorch's own name (``ClampMinBackward0``); a tensor
    bound is ``maximum`` (a tie splits the gradient)."""
    if _t(min) is not None:
        return maximum(input, min)
    return apply(_R["clamp_min"], input, min=min)


def clamp_max(input, max):
    """``clamp(input, max=max)`` with PyTorch's own name (``ClampMaxBackward0``)."""
    if _t(max) is not None:
        return minimum(input, max)
    return apply(_R["clamp_max"], input, max=max)


def where(condition, input, other):
    return apply(_R["where"], condition, input, other)


def _binary(name):
    op = _R[name]

    def f(a, b):
        return apply(op, a, b)
    f.__name__ = name
    f.__doc__ = f"Elementwise {name} (registry op ``{name}``)."
    return f


eq = _binary("eq")
ne = _binary("ne")
lt = _binary("lt")
le = _binary("le")
gt = _binary("gt")
ge = _binary("ge")
logical_and = _binary("logical_and")
logical_or = _binary("logical_or")


def zeros_like(t, *, dtype=None):
    Tensor = D._tensor_cls()
    return Tensor._wrap(np.zeros(t.shape, dtype=(dtype or t.dtype).np), dtype or t.dtype)


def ones_like(t, *, dtype=None):
    Tensor = D._tensor_cls()
    return Tensor._wrap(np.ones(t.shape, dtype=(dtype or t.dtype).np), dtype or t.dtype)


# -- reductions -------------------------------------------------------------------------------
MaxMin = namedtuple("MaxMin", ["values", "indices"])


def _dim(dim):
    if isinstance(dim, list):
        return tuple(dim)
    return dim


def sum(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    return apply(_R["sum"], input, dim=_dim(dim), keepdim=keepdim)


def mean(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    return apply(_R["mean"], input, dim=_dim(dim), keepdim=keepdim)


def prod(input, dim=None, keepdim=False):
    return apply(_R["prod"], input, dim=dim, keepdim=keepdim)


def amax(input, dim=None, keepdim=False):
    return apply(_R["amax"], input, dim=_dim(dim), keepdim=keepdim)


def amin(input, dim=None, keepdim=False):
    return apply(_R["amin"], input, dim=_dim(dim), keepdim=keepdim)


def _extreme(input, dim, keepdim, other, largest):
    Tensor = D._tensor_cls()
    if other is not None or isinstance(dim, Tensor):
        return (maximum if largest else minimum)(input, other if other is not None else dim)
    if dim is None:
        return apply(_R["amax" if largest else "amin"], input, dim=None, keepdim=False,
                     kind="MaxBackward1" if largest else "MinBackward1")
    values = apply(_R["max_dim"], input, dim=dim, keepdim=keepdim, largest=largest)
    idx = (np.argmax if largest else np.argmin)(input._data, axis=dim)
    if keepdim:
        idx = np.expand_dims(idx, dim)
    return MaxMin(values, _opaque(Tensor._wrap(np.asarray(idx, dtype=np.int64))))


def max(input, dim=None, keepdim=False, *, other=None):
    return _extreme(input, dim, keepdim, other, True)


def min(input, dim=None, keepdim=False, *, other=None):
    return _extreme(input, dim, keepdim, other, False)


def argmax(input, dim=None, keepdim=False):
    Tensor = D._tensor_cls()
    a = input._data
    if dim is None:
        return _opaque(Tensor._wrap(np.asarray(np.argmax(a), dtype=np.int64)))
    r = np.argmax(a, axis=dim)
    return _opaque(Tensor._wrap(np.asarray(np.expand_dims(r, dim) if keepdim else r,
                                           dtype=np.int64)))


def argmin(input, dim=None, keepdim=False):
    Tensor = D._tensor_cls()
    a = input._data
    if dim is None:
        return _opaque(Tensor._wrap(np.asarray(np.argmin(a), dtype=np.int64)))
    r = np.argmin(a, axis=dim)
    return _opaque(Tensor._wrap(np.asarray(np.expand_dims(r, dim) if keepdim else r,
                                           dtype=np.int64)))


def norm(input, p="fro", dim=None, keepdim=False):
    if p in ("fro", 2, 2.0):
        return apply(_R["norm2"], input, dim=_dim(dim), keepdim=keepdim)
    if p == 1:
        return sum(abs(input), dim=dim, keepdim=keepdim)
    if p == float("inf"):
        return amax(abs(input), dim=dim, keepdim=keepdim)
    return pow(sum(pow(abs(input), p), dim=dim, keepdim=keepdim), 1.0 / p)


def dist(input, other, p=2):
    """``norm(input - other, p)`` of all elements (``torch.dist``)."""
    return norm(input - other, p)


def logsumexp(input, dim, keepdim=False):
    return apply(_R["logsumexp"], input, dim=_dim(dim), keepdim=keepdim)


def softmax(input, dim=None, dtype=None):
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if dtype is not None:
        input = input.to(dtype)
    return apply(_R["softmax"], input, dim=dim)


def log_softmax(input, dim=None, dtype=None):
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if dtype is not None:
        input = input.to(dtype)
    return apply(_R["log_softmax"], input, dim=dim)


def var(input, dim=None, keepdim=False, *, unbiased=True, correction=None):
    corr = (1 if unbiased else 0) if correction is None else correction
    n = input.numel() if dim is None else int(np.prod(
        [input.shape[d] for d in (dim if isinstance(dim, (tuple, list)) else (dim,))]))
    d = input - mean(input, dim=dim, keepdim=True)
    return sum(d * d, dim=dim, keepdim=keepdim) / (n - corr)


def std(input, dim=None, keepdim=False, *, unbiased=True, correction=None):
    return sqrt(var(input, dim, keepdim, unbiased=unbiased, correction=correction))


# -- linear algebra ---------------------------------------------------------------------------
def matmul(input, other):
    return apply(_R["matmul"], input, other)


def mm(input, mat2):
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: both arguments must be 2D, got {input.ndim}D and {mat2.ndim}D")
    return matmul(input, mat2)


def mv(input, vec):
    if input.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"mv: expected a 2D matrix and a 1D vector, got {input.ndim}D and "
                           f"{vec.ndim}D")
    return matmul(input, vec)


def dot(input, other):
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    return matmul(input, other)


def outer(input, vec2):
    return matmul(input.unsqueeze(1), vec2.unsqueeze(0))


def bmm(input, mat2):
    return matmul(input, mat2)


# -- shapes -----------------------------------------------------------------------------------
def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def infer_shape(shape, numel):
    shape = list(shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = int(np.prod([s for s in shape if s != -1])) if shape else 1
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(shape)


def reshape(input, *shape, _kind="ViewBackward0"):
    shape = infer_shape(_shape_arg(shape), input.numel())
    if tuple(input.shape) == shape and _kind == "ViewBackward0" and not input.requires_grad:
        return input
    return apply(_R["reshape"], input, shape=shape, kind=_kind)


def permute(input, *dims):
    dims = _shape_arg(dims)
    if sorted(d % _b.max(input.ndim, 1) for d in dims) != list(range(input.ndim)):
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {input.ndim} is not equal to len(dims) = {len(dims)}")
    return apply(_R["permute"], input, dims=tuple(d % input.ndim for d in dims),
                 kind="PermuteBackward0")


def transpose(input, dim0, dim1):
    nd = input.ndim
    if nd == 0:
        return input
    dims = list(range(nd))
    d0, d1 = dim0 % nd, dim1 % nd
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return apply(_R["permute"], input, dims=tuple(dims), kind="TransposeBackward0")


swapaxes = transpose


def t(input):
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    if input.ndim < 2:
        return input
    return apply(_R["permute"], input, dims=(1, 0), kind="TBackward0")


def expand(input, *shape):
    shape = _shape_arg(shape)
    lead = len(shape) - input.ndim
    if lead < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(shape)}) must be greater "
                           f"or equal to the number of dimensions in the tensor ({input.ndim})")
    full = tuple(input.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    for i, s in enumerate(input.shape):
        if s != 1 and s != full[i + lead]:
            raise RuntimeError(f"The expanded size of the tensor ({full[i + lead]}) must match the "
                               f"existing size ({s}) at non-singleton dimension {i + lead}.  "
                               f"Target sizes: {list(shape)}.  Tensor sizes: {list(input.shape)}")
    if full == tuple(input.shape):
        return input
    return apply(_R["expand"], input, shape=full)


def broadcast_to(input, shape):
    return expand(input, *shape)


def sum_to_size(input, *shape):
    shape = _shape_arg(shape)
    if tuple(input.shape) == shape:
        return input
    return apply(_R["sum_to_size"], input, shape=shape)


def unsqueeze(input, dim):
    nd = input.ndim + 1
    if not -nd <= dim < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}], "
                         f"but got {dim})")
    d = dim % nd
    shape = tuple(input.shape[:d]) + (1,) + tuple(input.shape[d:])
    return apply(_R["reshape"], input, shape=shape, kind="UnsqueezeBackward0")


def squeeze(input, dim=None):
    if dim is None:
        shape = tuple(s for s in input.shape if s != 1)
        kind = "SqueezeBackward0"
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {d % _b.max(input.ndim, 1) for d in dims}
        shape = tuple(s for i, s in enumerate(input.shape) if not (i in dims and s == 1))
        kind = "SqueezeBackward1"
    if shape == tuple(input.shape):
        return input
    return apply(_R["reshape"], input, shape=shape, kind=kind)


def flatten(input, start_dim=0, end_dim=-1):
    if input.ndim == 0:
        return reshape(input, 1)
    s, e = start_dim % input.ndim, end_dim % input.ndim
    if s == e:
        return input
    shp = tuple(input.shape)
    new = shp[:s] + (int(np.prod(shp[s:e + 1])),) + shp[e + 1:]
    return apply(_R["reshape"], input, shape=new, kind="ViewBackward0")


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    return apply(_R["cat"], *tensors, dim=dim)


concat = concatenate = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                           f"{[list(s) for s in shapes]}")
    return apply(_R["stack"], *tensors, dim=dim % (tensors[0].ndim + 1))


def clone(input):
    return apply(_R["clone"], input)


def index_scatter(g, key, shape):
    return apply(_R["index_scatter"], g, key=key, shape=shape)


def index_fill_zero(g, key):
    return apply(_R["index_fill_zero"], g, key=key)


# -- losses -----------------------------------------------------------------------------------
def _check_sizes(input, target, name):
    if tuple(input.shape) != tuple(target.shape):
        _warnings.warn(f"Using a target size ({tuple(target.shape)}) that is different to the "
                      f"input size ({tuple(input.shape)}) in {name}. This will likely lead to "
                      "incorrect results due to broadcasting. Please ensure they have the same "
                      "size.", UserWarning, stacklevel=3)


def _unsupported(name: str, **options) -> None:
    """A clear error for PyTorch loss options symad does not implement (given non-default)."""
    for k, v in options.items():
        if v is not None:
            raise NotImplementedError(f"{name}: symad does not support {k}= yet (got {v!r}); "
                                      f"leave it at its default None")


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean squared error; ``size_average``/``reduce`` are PyTorch's legacy spellings."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    _check_sizes(input, target, "mse_loss")
    return apply(_R["mse_loss"], input, target, reduction=reduction)


def _reduced(v, reduction):
    """A pointwise loss ``v`` as ``reduction`` asks: as is, summed or averaged."""
    return v if reduction == "none" else (sum(v) if reduction == "sum" else mean(v))


def check_kl_reduction(reduction) -> None:
    """kl_div's reductions: the usual three and ``'batchmean'``."""
    if reduction != "batchmean":
        check_reduction(reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean absolute error (a composite of ``abs`` and a reduction)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    _check_sizes(input, target, "l1_loss")
    return _reduced(abs(input - target), reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence of ``target`` from the log-probabilities ``input``, pointwise
    ``target·(log target - input)`` (0 where ``target`` is 0, as PyTorch's ``xlogy``) or, with
    ``log_target``, ``exp(target)·(target - input)``. ``reduction='batchmean'`` divides the sum by
    the batch size (the KL divergence); ``'mean'`` divides by every element, with PyTorch's
    warning."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_kl_reduction(reduction)
    if log_target:
        v = exp(target) * (target - input)
    else:
        positive = target > 0        # log(1) = 0 where target is 0: no 0·log 0 = NaN
        v = target * (log(where(positive, target, 1.0)) - input)
    if reduction == "batchmean":
        return sum(v) / (input.shape[0] if input.ndim else 1)
    if reduction == "mean":
        _warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", UserWarning, stacklevel=2)
    return _reduced(v, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean",
                   beta=1.0):
    """``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (registry op
    ``smooth_l1_loss``; ``beta=0`` is the L1 loss)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _check_sizes(input, target, "smooth_l1_loss")
    return apply(_R["smooth_l1_loss"], input, target, reduction=reduction, k=float(beta))


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """``0.5 d**2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)`` (registry op
    ``huber_loss``)."""
    _unsupported("huber_loss", weight=weight)
    check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _check_sizes(input, target, "huber_loss")
    return apply(_R["huber_loss"], input, target, reduction=reduction, k=float(delta))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """Binary cross-entropy of probabilities (logs clamped at -100, as PyTorch)."""
    _unsupported("binary_cross_entropy", weight=weight)
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"Using a target size ({tuple(target.shape)}) that is different to the "
                         f"input size ({tuple(input.shape)}) is deprecated. Please ensure they "
                         "have the same size.")
    return apply(_R["binary_cross_entropy"], input, target, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Binary cross-entropy of logits (numerically stable form)."""
    _unsupported("binary_cross_entropy_with_logits", weight=weight, pos_weight=pos_weight)
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"Target size ({tuple(target.shape)}) must be the same as input size "
                         f"({tuple(input.shape)})")
    return apply(_R["binary_cross_entropy_with_logits"], input, target, reduction=reduction)


def one_hot(tensor, num_classes=-1):
    """``F.one_hot``: an int64 tensor with a trailing class dimension (1 at each index)."""
    return apply(_R["one_hot"], tensor, num_classes=num_classes)


#: PyTorch's default ``ignore_index`` of nll_loss / cross_entropy
IGNORE_INDEX = -100


def has_ignored_targets(arrays) -> bool:
    """Whether an integer array among ``arrays`` holds PyTorch's default ignore_index."""
    return any(isinstance(a, np.ndarray) and a.dtype.kind in "iu"
               and bool(np.any(a == IGNORE_INDEX)) for a in arrays)


def _needs_weights(target, weight, ignore_index) -> bool:
    """The weighted composition runs when there is a weight, a non-default ignore_index, or a
    target equal to it in this call; the plain registry op otherwise (a recorded program of the
    plain op meets a later batch's ignored target as an index error, and the compile paths
    record that batch again: ``has_ignored_targets``)."""
    return weight is not None or ignore_index != IGNORE_INDEX or \
        has_ignored_targets([target._data])


def _class_weights(input, target, weight, ignore_index):
    """``(w, kept, safe)``: per-sample weights ``weight[target]`` (1 without a weight), 0 where
    the target is ``ignore_index``; ``kept`` the 0/1 mask alone; the targets with ignored ones
    replaced by class 0 (a valid index)."""
    cdim = 1 if input.ndim > 1 else 0
    if input.ndim > 2:
        raise NotImplementedError("nll_loss / cross_entropy: symad supports weight= and "
                                  "ignore_index with (N, C) or (C,) inputs, not "
                                  f"{tuple(input.shape)}")
    n_classes = input.shape[cdim]
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise RuntimeError(f"weight tensor should be defined either for all {n_classes} classes "
                           f"or no classes but got weight tensor of shape: "
                           f"[{', '.join(map(str, weight.shape))}]")
    keep = ne(target, ignore_index)
    safe = where(keep, target, 0)
    kept = keep.to(input.dtype)
    w = kept if weight is None else \
        kept * sum(one_hot(safe, n_classes).to(input.dtype) * weight.to(input.dtype), dim=-1)
    return w, kept, safe


def _weighted(v, w, reduction):
    """``v`` reduced: as is, summed, or divided by ``sum(w)`` -- where every target is ignored
    (``sum(w) == 0``) the mean is NaN with gradient 0, as PyTorch's nll_loss gives."""
    if reduction == "none":
        return v
    if reduction == "sum":
        return sum(v)
    s = sum(w)
    empty = eq(s, 0)
    return sum(v) / where(empty, 1.0, s) + where(empty, float("nan"), 0.0)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=IGNORE_INDEX,
             reduce=None, reduction="mean"):
    """Negative log-likelihood of log-probabilities at the target class indices; ``weight``
    scales each class, targets equal to ``ignore_index`` count for nothing, and ``'mean'``
    divides by the summed weights of the counted targets (PyTorch's rule)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    if target.dtype.is_floating_point:
        raise RuntimeError("expected scalar type Long but found Float (nll_loss targets are "
                           "class indices; use .long())")
    if not _needs_weights(target, weight, ignore_index):
        return apply(_R["nll_loss"], input, target, reduction=reduction)
    w, _, safe = _class_weights(input, target, weight, ignore_index)
    return _weighted(apply(_R["nll_loss"], input, safe, reduction="none") * w, w, reduction)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=IGNORE_INDEX,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy: class indices (int64) or class probabilities (same shape).

    ``weight`` scales each class and ``ignore_index`` drops targets, as in :func:`nll_loss`.
    ``label_smoothing`` = ε mixes in the uniform distribution over the C classes as PyTorch
    does: with class indices ``(1 - ε)·nll + ε/C·(-Σ_c w_c log p_c)`` (each reduced the same
    way, a weighted mean over the counted targets' weights), with probabilities the target
    becomes ``(1 - ε)·target + ε/C``."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    check_reduction(reduction)
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    cdim = 1 if input.ndim > 1 else 0
    n_classes = input.shape[cdim]
    logp = log_softmax(input, dim=cdim)
    wlogp = logp if weight is None else logp * weight.to(input.dtype)
    if target.dtype.is_floating_point:
        if eps:
            target = target * (1.0 - eps) + eps / n_classes
        return _reduced(-sum(target * wlogp, dim=cdim), reduction)
    if not eps:
        return nll_loss(logp, target, weight=weight, ignore_index=ignore_index,
                        reduction=reduction)
    smooth = -sum(wlogp, dim=cdim)
    if _needs_weights(target, weight, ignore_index):
        w, kept, safe = _class_weights(input, target, weight, ignore_index)
        nll = _weighted(apply(_R["nll_loss"], logp, safe, reduction="none") * w, w, reduction)
        smooth = _weighted(smooth * kept, w, reduction)
    else:
        nll = apply(_R["nll_loss"], logp, target, reduction=reduction)
        smooth = _reduced(smooth, reduction)
    return (1.0 - eps) * nll + smooth * (eps / n_classes)


# -- NumPy keyword spellings (axis=, keepdims=) on the functions above: PyTorch accepts them ----
from .numpy_kwargs import add_numpy_kwargs as _add_numpy_kwargs  # noqa: E402

_add_numpy_kwargs(globals())
