"""``nn.functional`` layers: activations, convolution, pooling, layer norm and embedding.

Each function checks its arguments as PyTorch does (same exception types and messages), puts them
in the registry op's normal form, and applies the registry op (:mod:`symad.ops.activation`,
:mod:`symad.ops.conv`, :mod:`symad.ops.norm`).

>>> import symad
>>> x = symad.arange(16.).reshape(1, 1, 4, 4)
>>> max_pool2d(x, 2)
tensor([[[[ 5.,  7.],
          [13., 15.]]]])
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..autograd.grad_mode import no_grad
from ..ops import functional as OF
from ..ops.dispatch import apply
from ..ops.registry import REGISTRY as _R
from ..tensor import Tensor

# -- activations -----------------------------------------------------------------------------


def _maybe_inplace(input: Tensor, fn, inplace: bool) -> Tensor:
    return input._inplace(fn) if inplace else fn(input)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """GELU: ``x·Φ(x)`` (exact, with erf) or its tanh approximation (``approximate='tanh'``)."""
    if approximate == "none":
        return apply(_R["gelu"], input)
    if approximate == "tanh":
        return apply(_R["gelu_tanh"], input)
    raise RuntimeError(f"approximate argument must be either none or tanh, but got "
                       f"{approximate!r}")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """SiLU (swish): ``x·sigmoid(x)``."""
    return _maybe_inplace(input, lambda t: apply(_R["silu"], t), inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, ``negative_slope·x`` otherwise."""
    return _maybe_inplace(input, lambda t: apply(_R["leaky_relu"], t,
                                                 negative_slope=negative_slope), inplace)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta·x))/beta``, linear where ``beta·x > threshold``."""
    return apply(_R["softplus"], input, beta=beta, threshold=threshold)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, ``alpha·(exp(x) - 1)`` otherwise."""
    return _maybe_inplace(input, lambda t: apply(_R["elu"], t, alpha=alpha), inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """``input`` clamped to ``[min_val, max_val]`` (gradient 0 at the edges, as PyTorch)."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(input, lambda t: apply(_R["hardtanh"], t, min_val=min_val,
                                                 max_val=max_val), inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``hardtanh(input, 0, 6)`` (PyTorch's ``HardtanhBackward0`` too)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(x + 3) / 6``."""
    return _maybe_inplace(input, lambda t: apply(_R["hardsigmoid"], t), inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x·relu6(x + 3) / 6`` (MobileNetV3)."""
    return _maybe_inplace(input, lambda t: apply(_R["hardswish"], t), inplace)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``input`` where ``input > threshold``, else ``value``."""
    return _maybe_inplace(input, lambda t: apply(_R["threshold"], t, threshold=threshold,
                                                 value=value), inplace)


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x))``, computed stably."""
    return apply(_R["logsigmoid"], input)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """``scale·elu(x, alpha)`` with SELU's constants."""
    return _maybe_inplace(input, lambda t: apply(_R["selu"], t), inplace)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, ``alpha·(exp(x/alpha) - 1)`` otherwise."""
    return _maybe_inplace(input, lambda t: apply(_R["celu"], t, alpha=alpha), inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x·tanh(softplus(x))``."""
    return _maybe_inplace(input, lambda t: apply(_R["mish"], t), inplace)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""
    return apply(_R["softshrink"], input, lambd=lambd)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x`` outside ``[-lambd, lambd]``, else 0."""
    return apply(_R["hardshrink"], input, lambd=lambd)


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)`` (composed, as in PyTorch: ``DivBackward0``)."""
    return input / (OF.abs(input) + 1)


def tanhshrink(input: Tensor) -> Tensor:
    """``x - tanh(x)`` (composed, as in PyTorch: ``SubBackward0``)."""
    return input - OF.tanh(input)


# -- argument normal forms -------------------------------------------------------------------


def _tuple(v, n: int, name: str) -> tuple:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} "
                           f"values to match the convolution dimensions, but got {name}="
                           f"{list(v)}")
    return v


def _size(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


# -- convolution -----------------------------------------------------------------------------


def _conv(input: Tensor, weight: Tensor, bias, stride, padding, dilation, groups, nd: int):
    name = f"conv{nd}d"
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to "
                           f"{name}, but got input of size: {_size(input.shape)}")
    if weight.ndim != nd + 2:
        raise RuntimeError(f"Expected {nd + 2}-dimensional weight for {name}, but got weight of "
                           f"size {_size(weight.shape)}")
    unbatched = input.ndim == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    symbolic = input._data.dtype == object or weight._data.dtype == object  # (being traced)
    for other, what in ((weight, "weight"), (bias, "bias")):
        if other is not None and other.dtype != input.dtype and not symbolic:
            raise RuntimeError(f"Input type ({input.dtype}) and {what} type ({other.dtype}) "
                               "should be the same")
    groups = int(groups)
    o, cg = weight.shape[0], weight.shape[1]
    if groups < 1:
        raise RuntimeError("non-positive groups is not supported")
    if o % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size {_size(weight.shape)} "
                           "instead")
    if x.shape[1] != cg * groups:
        raise RuntimeError(f"Given groups={groups}, weight of size {_size(weight.shape)}, "
                           f"expected input{_size(x.shape)} to have {cg * groups} channels, but "
                           f"got {x.shape[1]} channels instead")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != o):
        raise RuntimeError(f"Given weight of size {_size(weight.shape)}, expected bias to be "
                           f"1-dimensional with {o} elements, but got bias of size "
                           f"{_size(bias.shape)} instead")
    stride = _tuple(stride, nd, "stride")
    dilation = _tuple(dilation, nd, "dilation")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    kernel = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0),) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            total = [d * (k - 1) for d, k in zip(dilation, kernel)]
            pads = tuple((t // 2, t - t // 2) for t in total)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        p = _tuple(padding, nd, "padding")
        if any(v < 0 for v in p):
            raise RuntimeError("negative padding is not supported")
        pads = tuple((v, v) for v in p)
    padded = [s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads)]
    ext = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    if any(e > s for e, s in zip(ext, padded)):
        raise RuntimeError(f"Calculated padded input size per channel: "
                           f"({' x '.join(map(str, padded))}). Kernel size: "
                           f"({' x '.join(map(str, ext))}). Kernel size can't be greater than "
                           "actual input size")
    args = (x, weight) if bias is None else (x, weight, bias)
    out = apply(_R["convolution"], *args, stride=stride, padding=pads, dilation=dilation,
                groups=groups)
    return out.squeeze(0) if unbatched else out


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """1-D cross-correlation of ``(N, C_in, L)`` with ``(C_out, C_in/groups, k)``."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of ``(N, C_in, H, W)`` with ``(C_out, C_in/groups, kh, kw)``.

    >>> import symad
    >>> conv2d(symad.ones(1, 1, 3, 3), symad.ones(1, 1, 2, 2)).tolist()
    [[[[4.0, 4.0], [4.0, 4.0]]]]
    """
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)


# -- pooling ---------------------------------------------------------------------------------


def _pool_geometry(input: Tensor, kernel_size, stride, padding, dilation, ceil_mode, nd: int,
                   kind: str):
    if input.ndim not in (nd + 1, nd + 2) or input.numel() == 0:
        raise RuntimeError(f"non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for "
                           "input")
    k = _tuple(kernel_size, nd, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _tuple(stride, nd, "stride")
    p = _tuple(padding, nd, "padding")
    d = _tuple(dilation, nd, "dilation")
    if any(v <= 0 for v in k + s + d):
        raise RuntimeError("kernel size, stride and dilation should be greater than zero")
    for pi, ki, di in zip(p, k, d):
        if kind == "max" and pi > (di * (ki - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={pi}, kernel_size={ki} and dilation={di}")
        if kind == "avg" and pi > ki // 2:
            raise RuntimeError(f"pad should be at most half of kernel size, but got pad={pi} "
                               f"and kernel_size={ki}")
    spatial = tuple(input.shape[-nd:])
    outs, extra = [], []
    for L, ki, si, pi, di in zip(spatial, k, s, p, d):
        span = L + 2 * pi - di * (ki - 1) - 1
        o = (-(-span // si) if ceil_mode else span // si) + 1
        if ceil_mode and (o - 1) * si >= L + pi:
            o -= 1  # the last window must start inside the input or its left padding
        outs.append(o)
        extra.append(max(0, (o - 1) * si + di * (ki - 1) + 1 - (L + 2 * pi)))
    if any(o < 1 for o in outs):
        c = input.shape[-nd - 1]
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, (c,) + spatial))}). "
                           f"Calculated output size: ({'x'.join(map(str, [c] + outs))}). "
                           "Output size is too small")
    return k, s, p, d, tuple(extra)


def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nd):
    k, s, p, d, extra = _pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode,
                                       nd, "max")
    pads = tuple((pi, pi + e) for pi, e in zip(p, extra))
    out = apply(_R["max_pool"], input, kernel_size=k, stride=s, padding=pads, dilation=d)
    if not return_indices:
        return out
    from ..ops.conv import max_pool_argmax
    key = max_pool_argmax(input._data, k, s, pads, d)
    flat = np.zeros(tuple(out.shape), dtype=np.int64)
    for ax, size in zip(key[-nd:], input.shape[-nd:]):
        flat = flat * size + ax
    return out, Tensor._wrap(flat)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over each ``kernel_size`` window of ``(N, C, H, W)``; the gradient goes to the first
    maximum of each window (PyTorch's ``MaxPool2DWithIndicesBackward0``)."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over each window of ``(N, C, L)`` (PyTorch computes it as a 2-D pool of height 1)."""
    if input.ndim not in (2, 3) or input.numel() == 0:
        raise RuntimeError("max_pool1d() Expected 2D or 3D input tensor, but got "
                           f"{_size(input.shape)}")
    k, s, p, d = (None if v is None else _tuple(v, 1, n)[0] for v, n in
                  [(kernel_size, "kernel_size"), (stride, "stride"), (padding, "padding"),
                   (dilation, "dilation")])
    r = _max_pool(input.unsqueeze(-2), (1, k), None if s is None else (1, s), (0, p), (1, d),
                  ceil_mode, return_indices, 2)
    if return_indices:
        return r[0].squeeze(-2), r[1].squeeze(-2)
    return r.squeeze(-2)


def _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, nd):
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    k, s, p, _, extra = _pool_geometry(input, kernel_size, stride, padding, 1, ceil_mode, nd,
                                       "avg")
    return apply(_R["avg_pool"], input, kernel_size=k, stride=s,
                 padding=tuple((pi, pi) for pi in p), extra=extra,
                 count_include_pad=bool(count_include_pad), divisor_override=divisor_override)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over each ``kernel_size`` window of ``(N, C, H, W)``."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, 2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over each window of ``(N, C, L)`` (a 2-D pool of height 1, as in PyTorch)."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"avg_pool1d() Expected 2D or 3D input tensor, but got "
                           f"{_size(input.shape)}")
    k = _tuple(kernel_size, 1, "kernel_size")[0]
    s = None if stride is None else _tuple(stride, 1, "stride")[0]
    p = _tuple(padding, 1, "padding")[0]
    out = _avg_pool(input.unsqueeze(-2), (1, k), None if s is None else (1, s), (0, p),
                    ceil_mode, count_include_pad, None, 2)
    return out.squeeze(-2)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Mean over PyTorch's adaptive bins, giving ``output_size`` (``None`` keeps a dim)."""
    if input.ndim not in (3, 4) or any(s == 0 for s in input.shape[-2:]):
        raise RuntimeError("adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got "
                           f"{_size(input.shape)}")
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    size = tuple(int(input.shape[-2 + i]) if v is None else int(v) for i, v in enumerate(size))
    return apply(_R["adaptive_avg_pool2d"], input, output_size=size)


# -- normalisation and embedding -------------------------------------------------------------


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims (biased variance), then scale and
    shift by ``weight``/``bias``."""
    shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(int(s) for s in normalized_shape)
    n = len(shape)
    if n == 0 or input.ndim < n or tuple(input.shape[-n:]) != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size"
                           f"{_size(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but "
                               f"got {name} of shape {_size(t.shape)} and normalized_shape = "
                               f"{_size(shape)}")
    if weight is None and bias is not None:
        from ..tensor import ones
        weight = ones(*shape, dtype=bias.dtype)
    args = [input] + [t for t in (weight, bias) if t is not None]
    return apply(_R["layer_norm"], *args, normalized_shape=shape, eps=float(eps))


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dimension 1) over the batch and the spatial dimensions.

    Training (or no running statistics): the batch's mean and biased variance normalise, and
    the running statistics (when given) move toward the batch's mean and *unbiased* variance by
    ``momentum``. Evaluation: the running
    statistics normalise. Built from registry ops (mean, sub, mul, rsqrt), so every path that
    runs them runs batch norm; the running statistics are updated in place without gradient."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input with a channel dimension (N, C, ...), "
                         f"got input of size {_size(input.shape)}")
    c = input.shape[1]
    view = (1, c) + (1,) * (input.ndim - 2)
    dims = tuple(d for d in range(input.ndim) if d != 1)
    if training:
        n = int(np.prod([input.shape[d] for d in dims]))
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {_size(input.shape)}")
        mean = OF.mean(input, dim=dims, keepdim=True)
        centred = input - mean
        var = OF.mean(centred * centred, dim=dims, keepdim=True)
        if running_mean is not None and running_var is not None:
            m = float(momentum)
            with no_grad():
                running_mean.mul_(1.0 - m).add_(mean.reshape(c) * m)
                running_var.mul_(1.0 - m).add_(var.reshape(c) * (m * n / (n - 1)))
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm: running_mean and running_var must be defined in "
                               "evaluation mode")
        centred = input - running_mean.reshape(view)
        var = running_var.reshape(view)
    out = centred / OF.sqrt(var + eps)
    if weight is not None:
        out = out * weight.reshape(view)
    if bias is not None:
        out = out + bias.reshape(view)
    return out


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` selected by the integer tensor ``input``; row ``padding_idx`` gets no
    gradient, and repeated indices accumulate theirs."""
    if not isinstance(input, Tensor) or input.dtype.is_floating_point or input.dtype.name == "bool":
        got = type(input).__name__ if not isinstance(input, Tensor) else input.dtype.name
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got {got} instead (while "
                           "checking arguments for embedding)")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not "
                                  "supported by symad (leave them at their defaults)")
    if padding_idx is not None:
        n = weight.shape[0]
        if padding_idx > 0:
            assert padding_idx < n, "Padding_idx must be within num_embeddings"
        elif padding_idx < 0:
            assert padding_idx >= -n, "Padding_idx must be within num_embeddings"
            padding_idx = n + padding_idx
    return apply(_R["embedding"], weight, input, padding_idx=padding_idx)


__all__ = ["adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d", "elu",
           "batch_norm", "celu", "embedding", "gelu", "hardshrink", "hardsigmoid", "logsigmoid",
           "mish", "selu", "softshrink", "softsign", "tanhshrink", "hardswish", "hardtanh", "layer_norm",
           "leaky_relu", "max_pool1d", "max_pool2d", "relu6", "silu", "softplus", "threshold"]
