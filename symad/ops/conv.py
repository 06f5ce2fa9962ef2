"""Convolution and pooling as structural registry ops, for any number of spatial dimensions.

Layout is PyTorch's: input ``(N, C, *spatial)``, weight ``(O, C/groups, *kernel)``. Op parameters
are already normalised by the caller (:mod:`symad.nn.functional_layers`): ``stride`` and
``dilation`` are tuples with one entry per spatial dim, ``padding`` a tuple of ``(before, after)``
pairs (``padding='same'`` pads asymmetrically when the kernel extent is even, as PyTorch does).

Forwards are im2col: one strided slice of the padded input per kernel offset, copied into an
``(N, C, K, *out)`` buffer and contracted with the weight by one batched matmul per group. Convolution is bilinear, so
its two VJPs are the adjoints of its two arguments and the three ops close under VJP::

    convolution(x, w)          -> x: conv_input_grad(g, w)   w: conv_weight_grad(x, g)
    conv_input_grad(g, w)  (A) -> g: convolution(A, w)       w: conv_weight_grad(A, g)
    conv_weight_grad(x, g) (B) -> x: conv_input_grad(g, B)   g: convolution(x, B)

so double backward through a convolution is again convolutions. Pooling: max pooling routes the
gradient to the first maximal element of each window (``index_scatter``, PyTorch's argmax
convention); average pooling and its adjoint ``avg_pool_backward`` are each other's VJP.
"""
from __future__ import annotations

import numpy as np
import sympy

from .dispatch import apply
from .registry import REGISTRY, register

# -- geometry --------------------------------------------------------------------------------


def _pad(x: np.ndarray, padding, value=0) -> np.ndarray:
    if not any(lo or hi for lo, hi in padding):
        return x
    width = ((0, 0),) * (x.ndim - len(padding)) + tuple(padding)
    if x.dtype == object:
        out = np.full(tuple(s + lo + hi for s, (lo, hi) in
                            zip(x.shape, width)), value, dtype=object)
        out[tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape, width))] = x
        return out
    return np.pad(x, width, constant_values=value)


def out_size(size: int, k: int, s: int, lo: int, hi: int, d: int) -> int:
    """Output length of a window op along one dim (floor mode)."""
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def _offset_slices(kidx, stride, dilation, out):
    """For kernel offset ``kidx``: the strided slice of the padded input each output reads."""
    return tuple(slice(k * d, k * d + s * (o - 1) + 1, s)
                 for k, d, s, o in zip(kidx, dilation, stride, out))


def _crop(xp: np.ndarray, padding, shape) -> np.ndarray:
    nd = len(padding)
    lead = (slice(None),) * (xp.ndim - nd)
    return xp[lead + tuple(slice(lo, lo + n) for (lo, _), n in zip(padding, shape[-nd:]))]


def _zeros(shape, dtype):
    return np.zeros(shape, dtype=dtype) if dtype != object else np.full(shape, sympy.S.Zero,
                                                                         dtype=object)


# -- convolution -----------------------------------------------------------------------------


def _im2col(x, kernel, stride, padding, dilation, out) -> np.ndarray:
    """``(N, C, K, *out)``: for each kernel offset k, the strided slice of the padded input it
    multiplies (one contiguous copy per offset; a strided-window view copied whole is ~30x
    slower for small kernels)."""
    xp = _pad(x, padding)
    buf = np.empty(x.shape[:2] + (int(np.prod(kernel)),) + tuple(out), dtype=xp.dtype)
    for k, kidx in enumerate(np.ndindex(*kernel)):
        buf[:, :, k] = xp[(slice(None), slice(None)) + _offset_slices(kidx, stride, dilation,
                                                                      out)]
    return buf


def _out_shape(spatial, kernel, stride, padding, dilation):
    return tuple(out_size(n, k, s, lo, hi, d) for n, k, s, (lo, hi), d in
                 zip(spatial, kernel, stride, padding, dilation))


def _conv_np(x, w, *bias, stride, padding, dilation, groups):
    n = x.shape[0]
    o, cg = w.shape[:2]
    og = o // groups
    kernel = w.shape[2:]
    out = _out_shape(x.shape[2:], kernel, stride, padding, dilation)
    cols = _im2col(x, kernel, stride, padding, dilation, out)
    p = int(np.prod(out))
    ck = cg * cols.shape[2]
    # per group: (O/G, Cg·K) @ (N, Cg·K, P) -> (N, O/G, P), already in (N, O, *out) order
    parts = [np.matmul(w[g * og:(g + 1) * og].reshape(og, ck),
                       cols[:, g * cg:(g + 1) * cg].reshape(n, ck, p)) for g in range(groups)]
    y = (parts[0] if groups == 1 else np.concatenate(parts, axis=1)).reshape((n, o) + out)
    if bias:
        y = y + bias[0].reshape((1, o) + (1,) * len(out))
    return y


def _conv_input_grad_np(g, w, *, input_shape, stride, padding, dilation, groups):
    """The adjoint of ``x -> conv(x, w)`` applied to ``g`` (col2im of ``wᵀ g``)."""
    n = g.shape[0]
    o, cg = w.shape[:2]
    og = o // groups
    kernel = w.shape[2:]
    nk = int(np.prod(kernel))
    out = g.shape[2:]
    p = int(np.prod(out))
    padded = tuple(input_shape[:2]) + tuple(s + lo + hi for s, (lo, hi) in
                                            zip(input_shape[2:], padding))
    xp = _zeros(padded, np.result_type(g.dtype, w.dtype))
    for gi in range(groups):
        wm = w[gi * og:(gi + 1) * og].reshape(og, cg * nk)
        cols = np.matmul(wm.T, g[:, gi * og:(gi + 1) * og].reshape(n, og, p))
        cols = cols.reshape((n, cg, nk) + tuple(out))
        dst = xp[:, gi * cg:(gi + 1) * cg]
        for k, kidx in enumerate(np.ndindex(*kernel)):
            dst[(slice(None), slice(None)) + _offset_slices(kidx, stride, dilation, out)] += \
                cols[:, :, k]
    return np.ascontiguousarray(_crop(xp, padding, input_shape))


def _conv_weight_grad_np(x, g, *, weight_shape, stride, padding, dilation, groups):
    """The adjoint of ``w -> conv(x, w)`` applied to ``g``."""
    n = x.shape[0]
    o, cg = weight_shape[:2]
    og = o // groups
    out = g.shape[2:]
    cols = _im2col(x, weight_shape[2:], stride, padding, dilation, out)
    p = int(np.prod(out))
    ck = cg * cols.shape[2]
    parts = []
    for gi in range(groups):
        gm = g[:, gi * og:(gi + 1) * og].reshape(n, og, p)
        cm = cols[:, gi * cg:(gi + 1) * cg].reshape(n, ck, p)
        # Σ_n g_n · cols_nᵀ as one (O/G, N·P) @ (N·P, Cg·K) product
        parts.append(np.matmul(gm.transpose(1, 0, 2).reshape(og, n * p),
                               cm.transpose(0, 2, 1).reshape(n * p, ck)))
    dw = parts[0] if groups == 1 else np.concatenate(parts, axis=0)
    return dw.reshape(weight_shape)


def _geom(params):
    return {k: params[k] for k in ("stride", "padding", "dilation", "groups")}


def convolution(x, w, bias=None, **geom):
    """The registry's convolution (``geom``: stride, padding pairs, dilation, groups)."""
    args = (x, w) if bias is None else (x, w, bias)
    return apply(REGISTRY["convolution"], *args, **geom)


def conv_input_grad(g, w, input_shape, **geom):
    return apply(REGISTRY["conv_input_grad"], g, w, input_shape=tuple(input_shape), **geom)


def conv_weight_grad(x, g, weight_shape, **geom):
    return apply(REGISTRY["conv_weight_grad"], x, g, weight_shape=tuple(weight_shape), **geom)


def _conv_vjp(ctx, g):
    x, w = ctx.inputs[:2]
    geom = _geom(ctx.params)
    need = ctx.needs_input_grad
    gx = conv_input_grad(g, w, x.shape, **geom) if need[0] else None
    gw = conv_weight_grad(x, g, w.shape, **geom) if need[1] else None
    out = [gx, gw]
    if len(ctx.inputs) > 2:
        out.append(g.sum(dim=(0,) + tuple(range(2, g.ndim))) if need[2] else None)
    return tuple(out)


def _conv_input_grad_vjp(ctx, a):
    g, w = ctx.inputs
    geom = _geom(ctx.params)
    need = ctx.needs_input_grad
    return (convolution(a, w, **geom) if need[0] else None,
            conv_weight_grad(a, g, w.shape, **geom) if need[1] else None)


def _conv_weight_grad_vjp(ctx, b):
    x, g = ctx.inputs
    geom = _geom(ctx.params)
    need = ctx.needs_input_grad
    return (conv_input_grad(g, b, x.shape, **geom) if need[0] else None,
            convolution(x, b, **geom) if need[1] else None)


_GEOM = ("stride", "padding", "dilation", "groups")
register("convolution", grad_fn="ConvolutionBackward0", forward=_conv_np, vjp=_conv_vjp,
         nargs=-1, params=_GEOM, dtype_rule="promote",
         doc="N-d cross-correlation of (N, C, *S) with (O, C/groups, *K), optional bias (O,)")
register("conv_input_grad", grad_fn="ConvolutionBackwardBackward0", forward=_conv_input_grad_np,
         vjp=_conv_input_grad_vjp, nargs=2, params=("input_shape",) + _GEOM,
         doc="the input-gradient of convolution (a transposed convolution / col2im)")
register("conv_weight_grad", grad_fn="ConvolutionBackwardBackward0",
         forward=_conv_weight_grad_np, vjp=_conv_weight_grad_vjp, nargs=2,
         params=("weight_shape",) + _GEOM, doc="the weight-gradient of convolution")


# -- max pooling -----------------------------------------------------------------------------


def _pool_windows(x, kernel, stride, padding, dilation, fill) -> np.ndarray:
    """``(*lead, K, *out)``: the padded input's strided slice for each kernel offset."""
    nd = len(kernel)
    xp = _pad(x, padding, fill)
    out = tuple((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in
                zip(xp.shape[-nd:], kernel, stride, dilation))
    buf = np.empty(xp.shape[:-nd] + (int(np.prod(kernel)),) + out, dtype=xp.dtype)
    tail = (slice(None),) * nd
    for k, kidx in enumerate(np.ndindex(*kernel)):
        buf[(Ellipsis, k) + tail] = xp[(Ellipsis,) + _offset_slices(kidx, stride, dilation, out)]
    return buf


def _max_pool_np(x, *, kernel_size, stride, padding, dilation):
    axis = -len(kernel_size) - 1
    if x.dtype == object:
        v = np.moveaxis(_pool_windows(x, kernel_size, stride, padding, dilation, -sympy.oo),
                        axis, -1)
        out = np.empty(v.shape[:-1], dtype=object)
        for idx in np.ndindex(*out.shape):
            out[idx] = sympy.Max(*v[idx])
        return out
    return _pool_windows(x, kernel_size, stride, padding, dilation, -np.inf).max(axis=axis)


def max_pool_argmax(x: np.ndarray, kernel_size, stride, padding, dilation) -> tuple:
    """Index arrays (one per dim of ``x``, shaped like the output) of each window's first
    maximum, in ``x``'s coordinates: where max pooling sends the gradient (PyTorch)."""
    nd = len(kernel_size)
    v = _pool_windows(x, kernel_size, stride, padding, dilation, -np.inf)
    out = v.shape[:-nd - 1] + v.shape[-nd:]
    # NaN counts as the maximum (PyTorch propagates it); otherwise the first maximum wins
    nan = np.isnan(v)
    arg = np.where(nan.any(-nd - 1), nan.argmax(-nd - 1), v.argmax(-nd - 1))
    koff = np.unravel_index(arg, kernel_size)
    grids = np.indices(out, sparse=True)
    lead = tuple(grids[:x.ndim - nd])
    spatial = tuple(grids[x.ndim - nd + i] * stride[i] + koff[i] * dilation[i] - padding[i][0]
                    for i in range(nd))
    return lead + spatial


def _max_pool_vjp(ctx, g):
    # the routing to each window's maximum is computed by a registered op from the input TENSOR,
    # so a recorded program recomputes it from each call's input (never baked into a parameter)
    return (apply(_MAX_POOL_BACKWARD, g, ctx.inputs[0], **ctx.params),)


def _pool_key(x, g_shape, p) -> tuple:
    if x.dtype == object:       # numbers held as objects (a traced gradient of constant data)
        x = x.astype(np.float64)
    key = max_pool_argmax(x, p["kernel_size"], p["stride"], p["padding"], p["dilation"])
    return tuple(np.broadcast_to(k, tuple(g_shape)) for k in key)


def _max_pool_backward_np(g, x, **p):
    out = np.zeros(x.shape, dtype=g.dtype)
    np.add.at(out, _pool_key(x, g.shape, p), g)
    return out


def _max_pool_select_np(gx, x, **p):
    if x.dtype == object:
        x = x.astype(np.float64)
    v = _pool_windows(x, p["kernel_size"], p["stride"], p["padding"], p["dilation"], -np.inf)
    out_shape = v.shape[:-len(p["kernel_size"]) - 1] + v.shape[-len(p["kernel_size"]):]
    return gx[_pool_key(x, out_shape, p)]


def _max_pool_backward_vjp(ctx, gg):
    return (apply(_MAX_POOL_SELECT, gg, ctx.inputs[1], **ctx.params), None)


def _max_pool_select_vjp(ctx, g):
    return (apply(_MAX_POOL_BACKWARD, g, ctx.inputs[1], **ctx.params), None)


_POOL_PARAMS = ("kernel_size", "stride", "padding", "dilation")
_MAX_POOL_BACKWARD = register(
    "max_pool_backward", grad_fn=lambda g, x, kernel_size, **kw:
    f"MaxPool{len(kernel_size)}DWithIndicesBackwardBackward0", forward=_max_pool_backward_np,
    vjp=_max_pool_backward_vjp, nargs=2, params=_POOL_PARAMS, dtype_rule="first",
    doc="max pooling's VJP: g added at each window's first maximum of x (x: no gradient)")
_MAX_POOL_SELECT = register(
    "max_pool_select", grad_fn="MaxPoolSelectBackward0", forward=_max_pool_select_np,
    vjp=_max_pool_select_vjp, nargs=2, params=_POOL_PARAMS, dtype_rule="first",
    doc="the values of gx at each window's first maximum of x: the VJP of max_pool_backward")


register("max_pool", grad_fn=lambda x, kernel_size, **kw:
         f"MaxPool{len(kernel_size)}DWithIndicesBackward0", forward=_max_pool_np,
         vjp=_max_pool_vjp, params=("kernel_size", "stride", "padding", "dilation"),
         dtype_rule="first", doc="max over each window; the gradient goes to the first maximum")


# -- average pooling -------------------------------------------------------------------------


def _avg_divisor(spatial, kernel_size, stride, padding, extra, count_include_pad,
                 divisor_override, dtype):
    """Per-output-position divisor: the window's count of real elements (plus the regular
    padding when ``count_include_pad``); the ceil-mode overhang ``extra`` never counts."""
    if divisor_override is not None:
        return divisor_override
    ones = np.ones(spatial)
    cnt = np.pad(ones, tuple(padding), constant_values=1.0 if count_include_pad else 0.0)
    cnt = np.pad(cnt, tuple((0, e) for e in extra))
    nd = len(kernel_size)
    w = _pool_windows(cnt, kernel_size, stride, ((0, 0),) * nd, (1,) * nd, 0.0)
    return w.sum(axis=-nd - 1).astype(dtype if dtype != object else np.float64)


def _avg_pool_np(x, *, kernel_size, stride, padding, extra, count_include_pad,
                 divisor_override):
    nd = len(kernel_size)
    pads = tuple((lo, hi + e) for (lo, hi), e in zip(padding, extra))
    v = _pool_windows(x, kernel_size, stride, pads, (1,) * nd, 0)
    s = v.sum(axis=-nd - 1)
    div = _avg_divisor(x.shape[-nd:], kernel_size, stride, padding, extra, count_include_pad,
                       divisor_override, x.dtype)
    if x.dtype == object:
        return s / (np.vectorize(sympy.nsimplify)(div) if np.ndim(div) else sympy.nsimplify(div))
    return (s / div).astype(x.dtype, copy=False)


def _avg_pool_backward_np(g, *, input_shape, kernel_size, stride, padding, extra,
                          count_include_pad, divisor_override):
    nd = len(kernel_size)
    div = _avg_divisor(input_shape[-nd:], kernel_size, stride, padding, extra, count_include_pad,
                       divisor_override, g.dtype)
    gd = g / div
    out = g.shape[-nd:]
    padded = tuple(input_shape[:-nd]) + tuple(s + lo + hi + e for s, (lo, hi), e in
                                              zip(input_shape[-nd:], padding, extra))
    xp = _zeros(padded, g.dtype)
    lead = (slice(None),) * (len(input_shape) - nd)
    for kidx in np.ndindex(*kernel_size):
        xp[lead + _offset_slices(kidx, stride, (1,) * nd, out)] += gd
    return np.ascontiguousarray(_crop(xp, padding, input_shape))


_AVG = ("kernel_size", "stride", "padding", "extra", "count_include_pad", "divisor_override")


def _avg_params(params):
    return {k: params[k] for k in _AVG}


register("avg_pool", grad_fn=lambda x, kernel_size, **kw: f"AvgPool{len(kernel_size)}DBackward0",
         forward=_avg_pool_np, params=_AVG, dtype_rule="first",
         vjp=lambda ctx, g: (apply(REGISTRY["avg_pool_backward"], g,
                                   input_shape=tuple(ctx.inputs[0].shape),
                                   **_avg_params(ctx.params)),),
         doc="mean over each window (count_include_pad, divisor_override as PyTorch)")
register("avg_pool_backward",
         grad_fn=lambda g, kernel_size, **kw: f"AvgPool{len(kernel_size)}DBackwardBackward0",
         forward=_avg_pool_backward_np, params=("input_shape",) + _AVG, dtype_rule="first",
         vjp=lambda ctx, a: (apply(REGISTRY["avg_pool"], a, **_avg_params(ctx.params)),),
         doc="the adjoint of avg_pool: each output's gradient spread over its window")


# -- adaptive average pooling ----------------------------------------------------------------


def adaptive_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) averaging matrix of PyTorch's adaptive bins [floor(i·n/o), ceil((i+1)·n/o))."""
    m = np.zeros((out, size))
    for i in range(out):
        lo = (i * size) // out
        hi = -((-(i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _adaptive_np(x, *, output_size):
    ph, pw = (adaptive_matrix(s, o) for s, o in zip(x.shape[-2:], output_size))
    if x.dtype == object:
        ph, pw = (np.vectorize(sympy.nsimplify)(m).astype(object) for m in (ph, pw))
        return np.matmul(np.matmul(ph, x), pw.T)
    return np.matmul(np.matmul(ph.astype(x.dtype), x), pw.T.astype(x.dtype))


def _adaptive_vjp(ctx, g):
    from ..tensor import Tensor
    x = ctx.inputs[0]
    ph, pw = (Tensor._wrap(adaptive_matrix(s, o).astype(x.dtype.np), x.dtype)
              for s, o in zip(x.shape[-2:], ctx.params["output_size"]))
    return (ph.t() @ g @ pw,)


register("adaptive_avg_pool2d", grad_fn="AdaptiveAvgPool2DBackward0", forward=_adaptive_np,
         vjp=_adaptive_vjp, params=("output_size",), dtype_rule="first",
         doc="average over PyTorch's adaptive bins; separable: P_h · x · P_wᵀ")
