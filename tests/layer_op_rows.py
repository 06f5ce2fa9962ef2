"""Op-table rows for the layer ops (activations, convolution, pooling, layer norm, embedding).

The references are written independently of symad's forwards: scalar loops over output positions
and kernel offsets for convolution and pooling (no im2col, no strided views), ``math.erf`` for
erf, direct numpy for the rest. ``tests/test_ops_table.py`` runs them through its forward,
float64-finite-difference backward, dtype, second-derivative and fast-path tests.
"""
from __future__ import annotations

import math

import numpy as np

import symad
from symad.nn import functional as NF
from symad.ops.dispatch import apply
from symad.ops.registry import REGISTRY as R

erf_ref = np.vectorize(math.erf, otypes=[float])


def _apply(name):
    return lambda *ts, **params: apply(R[name], *ts, **params)


def _sig(x):
    return 1 / (1 + np.exp(-x))


# -- convolution references (scalar loops) -----------------------------------------------------

def _out_shape(spatial, kernel, stride, padding, dilation):
    return tuple((s + lo + hi - d * (k - 1) - 1) // st + 1
                 for s, k, st, (lo, hi), d in zip(spatial, kernel, stride, padding, dilation))


def _src(pos, kk, stride, dilation):
    return tuple(p * s + k * d for p, k, s, d in zip(pos, kk, stride, dilation))


def conv_ref(x, w, *b, stride, padding, dilation, groups):
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(padding))
    o_ch, cg = w.shape[:2]
    og = o_ch // groups
    out = _out_shape(x.shape[2:], w.shape[2:], stride, padding, dilation)
    y = np.zeros((x.shape[0], o_ch) + out)
    for o in range(o_ch):
        grp = o // og
        for pos in np.ndindex(*out):
            acc = np.zeros(x.shape[0])
            for c in range(cg):
                for kk in np.ndindex(*w.shape[2:]):
                    acc += xp[(slice(None), grp * cg + c) + _src(pos, kk, stride, dilation)] \
                        * w[(o, c) + kk]
            y[(slice(None), o) + pos] = acc + (b[0][o] if b else 0.0)
    return y


def conv_input_grad_ref(g, w, *, input_shape, stride, padding, dilation, groups):
    o_ch, cg = w.shape[:2]
    og = o_ch // groups
    xp = np.zeros(tuple(input_shape[:2]) + tuple(
        s + lo + hi for s, (lo, hi) in zip(input_shape[2:], padding)))
    for o in range(o_ch):
        grp = o // og
        for pos in np.ndindex(*g.shape[2:]):
            for c in range(cg):
                for kk in np.ndindex(*w.shape[2:]):
                    xp[(slice(None), grp * cg + c) + _src(pos, kk, stride, dilation)] += \
                        g[(slice(None), o) + pos] * w[(o, c) + kk]
    return xp[(slice(None), slice(None)) + tuple(slice(lo, lo + s) for (lo, _), s in
                                                 zip(padding, input_shape[2:]))]


def conv_weight_grad_ref(x, g, *, weight_shape, stride, padding, dilation, groups):
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(padding))
    o_ch, cg = weight_shape[:2]
    og = o_ch // groups
    dw = np.zeros(weight_shape)
    for o in range(o_ch):
        grp = o // og
        for pos in np.ndindex(*g.shape[2:]):
            for c in range(cg):
                for kk in np.ndindex(*weight_shape[2:]):
                    dw[(o, c) + kk] += np.sum(g[(slice(None), o) + pos] * xp[
                        (slice(None), grp * cg + c) + _src(pos, kk, stride, dilation)])
    return dw


# -- pooling references ------------------------------------------------------------------------

def max_pool_ref(x, *, kernel_size, stride, padding, dilation):
    nd = len(kernel_size)
    xp = np.pad(x, ((0, 0),) * (x.ndim - nd) + tuple(padding), constant_values=-np.inf)
    out = _out_shape(x.shape[-nd:], kernel_size, stride, padding, dilation)
    y = np.full(x.shape[:-nd] + out, -np.inf)
    lead = (Ellipsis,)
    for pos in np.ndindex(*out):
        for kk in np.ndindex(*kernel_size):
            y[lead + pos] = np.maximum(y[lead + pos],
                                       xp[lead + _src(pos, kk, stride, dilation)])
    return y


def _first_max_positions(x, kernel_size, stride, padding, dilation):
    """{output index: the input index of its window's first maximum} by a scalar loop."""
    nd = len(kernel_size)
    out = _out_shape(x.shape[-nd:], kernel_size, stride, padding, dilation)
    where = {}
    for lead in np.ndindex(*x.shape[:-nd]):
        for pos in np.ndindex(*out):
            best, arg = -np.inf, None
            for kk in np.ndindex(*kernel_size):
                idx = tuple(p * s + k * d - lo for p, k, s, d, (lo, _) in
                            zip(pos, kk, stride, dilation, padding))
                if all(0 <= i < n for i, n in zip(idx, x.shape[-nd:])):
                    v = x[lead + idx]
                    if v > best or arg is None:
                        best, arg = v, idx
            where[lead + pos] = lead + arg
    return where


def max_pool_backward_ref(g, x, *, kernel_size, stride, padding, dilation):
    out = np.zeros(x.shape)
    for o, i in _first_max_positions(x, kernel_size, stride, padding, dilation).items():
        out[i] += g[o]
    return out


def max_pool_select_ref(gx, x, *, kernel_size, stride, padding, dilation):
    where = _first_max_positions(x, kernel_size, stride, padding, dilation)
    nd = len(kernel_size)
    out = np.zeros(x.shape[:-nd] + _out_shape(x.shape[-nd:], kernel_size, stride, padding,
                                              dilation))
    for o, i in where.items():
        out[o] = gx[i]
    return out


def max_pool_grad_samples(Sample, U, which):
    def gen(rng):
        x = U(rng, (2, 2, 5, 5))
        out = []
        for geom in ({"kernel_size": (2, 2), "stride": (2, 2), "padding": ((0, 0), (0, 0)),
                      "dilation": (1, 1)},
                     {"kernel_size": (3, 3), "stride": (2, 2), "padding": ((1, 1), (1, 1)),
                      "dilation": (1, 1)}):
            o = _out_shape((5, 5), geom["kernel_size"], geom["stride"], geom["padding"],
                           geom["dilation"])
            first = U(rng, (2, 2) + o) if which == "backward" else U(rng, (2, 2, 5, 5))
            out.append(Sample([first, x], geom, diff=(0,)))
        return out
    return gen


def _avg_count(pos, kernel_size, stride, padding, spatial, count_include_pad):
    n = 0
    for kk in np.ndindex(*kernel_size):
        idx = [p * s + k - lo for p, k, s, (lo, _) in zip(pos, kk, stride, padding)]
        real = all(0 <= i < L for i, L in zip(idx, spatial))
        in_pad = all(-lo <= i < L + hi for i, L, (lo, hi) in zip(idx, spatial, padding))
        n += real or (count_include_pad and in_pad)
    return n


def avg_pool_ref(x, *, kernel_size, stride, padding, extra, count_include_pad, divisor_override):
    nd = len(kernel_size)
    spatial = x.shape[-nd:]
    pads = tuple((lo, hi + e) for (lo, hi), e in zip(padding, extra))
    xp = np.pad(x, ((0, 0),) * (x.ndim - nd) + pads)
    out = _out_shape(spatial, kernel_size, stride, pads, (1,) * nd)
    y = np.zeros(x.shape[:-nd] + out)
    for pos in np.ndindex(*out):
        s = sum(xp[(Ellipsis,) + _src(pos, kk, stride, (1,) * nd)]
                for kk in np.ndindex(*kernel_size))
        div = divisor_override or _avg_count(pos, kernel_size, stride, padding, spatial,
                                             count_include_pad)
        y[(Ellipsis,) + pos] = s / div
    return y


def avg_pool_backward_ref(g, *, input_shape, kernel_size, stride, padding, extra,
                          count_include_pad, divisor_override):
    nd = len(kernel_size)
    spatial = tuple(input_shape[-nd:])
    pads = tuple((lo, hi + e) for (lo, hi), e in zip(padding, extra))
    xp = np.zeros(tuple(input_shape[:-nd]) + tuple(s + lo + hi for s, (lo, hi) in
                                                   zip(spatial, pads)))
    for pos in np.ndindex(*g.shape[-nd:]):
        div = divisor_override or _avg_count(pos, kernel_size, stride, padding, spatial,
                                             count_include_pad)
        for kk in np.ndindex(*kernel_size):
            xp[(Ellipsis,) + _src(pos, kk, stride, (1,) * nd)] += g[(Ellipsis,) + pos] / div
    return xp[(Ellipsis,) + tuple(slice(lo, lo + s) for (lo, _), s in zip(padding, spatial))]


def adaptive_ref(x, *, output_size):
    H, W = x.shape[-2:]
    oh, ow = output_size
    y = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        h0, h1 = math.floor(i * H / oh), math.ceil((i + 1) * H / oh)
        for j in range(ow):
            w0, w1 = math.floor(j * W / ow), math.ceil((j + 1) * W / ow)
            y[..., i, j] = x[..., h0:h1, w0:w1].mean(axis=(-2, -1))
    return y


def layer_norm_ref(x, *affine, normalized_shape, eps):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if affine:
        y = y * affine[0]
    if len(affine) > 1:
        y = y + affine[1]
    return y


def embedding_fd_ref(weight, idx, padding_idx=None):
    """weight[idx] with the padding row held constant (PyTorch gives it no gradient)."""
    out = weight[idx]
    if padding_idx is not None:
        out = np.where((idx == padding_idx)[..., None], 0.0, out)
    return out


# -- samples -----------------------------------------------------------------------------------

def _geom(stride, padding, dilation, groups=1):
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def conv_samples(Sample, U):
    def gen(rng):
        return [
            Sample([U(rng, (2, 2, 5, 5)), U(rng, (3, 2, 3, 3)), U(rng, (3,))],
                   _geom((1, 1), ((1, 1), (1, 1)), (1, 1))),
            Sample([U(rng, (1, 2, 6, 5)), U(rng, (2, 2, 2, 3))],
                   _geom((2, 1), ((0, 0), (1, 1)), (1, 2))),
            Sample([U(rng, (1, 4, 4, 4)), U(rng, (4, 2, 2, 2)), U(rng, (4,))],
                   _geom((1, 1), ((0, 0), (0, 0)), (1, 1), groups=2)),
            Sample([U(rng, (2, 3, 7)), U(rng, (2, 3, 3)), U(rng, (2,))],
                   _geom((2,), ((1, 2),), (2,))),
        ]
    return gen


def conv_input_grad_samples(Sample, U):
    def gen(rng):
        return [
            Sample([U(rng, (2, 3, 3, 3)), U(rng, (3, 2, 3, 3))],
                   {"input_shape": (2, 2, 5, 5), **_geom((2, 2), ((1, 1), (1, 1)), (1, 1))}),
            Sample([U(rng, (1, 4, 3)), U(rng, (4, 1, 2))],
                   {"input_shape": (1, 2, 6), **_geom((2,), ((0, 1),), (2,), groups=2)}),
        ]
    return gen


def conv_weight_grad_samples(Sample, U):
    def gen(rng):
        return [
            Sample([U(rng, (2, 2, 5, 5)), U(rng, (2, 3, 3, 3))],
                   {"weight_shape": (3, 2, 3, 3), **_geom((2, 2), ((1, 1), (1, 1)), (1, 1))}),
            Sample([U(rng, (1, 2, 6)), U(rng, (1, 4, 3))],
                   {"weight_shape": (4, 1, 2), **_geom((2,), ((0, 1),), (2,), groups=2)}),
        ]
    return gen


def max_pool_samples(Sample, U):
    def gen(rng):
        x = U(rng, (2, 2, 5, 5))
        return [
            Sample([x], {"kernel_size": (2, 2), "stride": (2, 2), "padding": ((0, 0), (0, 0)),
                         "dilation": (1, 1)}),
            Sample([x], {"kernel_size": (3, 3), "stride": (2, 2), "padding": ((1, 1), (1, 1)),
                         "dilation": (1, 1)}),
            Sample([x], {"kernel_size": (2, 2), "stride": (1, 2), "padding": ((0, 0), (1, 2)),
                         "dilation": (1, 2)}),
        ]
    return gen


_AVG_SAMPLES = [
    {"kernel_size": (2, 2), "stride": (2, 2), "padding": ((0, 0), (0, 0)), "extra": (0, 0),
     "count_include_pad": True, "divisor_override": None},
    {"kernel_size": (3, 3), "stride": (2, 2), "padding": ((1, 1), (1, 1)), "extra": (0, 0),
     "count_include_pad": False, "divisor_override": None},
    {"kernel_size": (2, 3), "stride": (2, 2), "padding": ((1, 1), (0, 0)), "extra": (1, 1),
     "count_include_pad": True, "divisor_override": None},
    {"kernel_size": (2, 2), "stride": (1, 1), "padding": ((0, 0), (0, 0)), "extra": (0, 0),
     "count_include_pad": True, "divisor_override": 3},
]


def avg_pool_samples(Sample, U):
    return lambda rng: [Sample([U(rng, (2, 2, 5, 5))], dict(k)) for k in _AVG_SAMPLES]


def avg_pool_backward_samples(Sample, U):
    def gen(rng):
        out = []
        for k in _AVG_SAMPLES:
            shape = avg_pool_ref(np.zeros((2, 2, 5, 5)), **k).shape
            out.append(Sample([U(rng, shape)], {"input_shape": (2, 2, 5, 5), **k}))
        return out
    return gen


def layer_rows(Row, Sample, U, unary):
    """The rows, built with the table's own Row/Sample classes and samplers."""
    rows = [
        Row("erf", symad.erf, erf_ref, unary(lambda r, s: U(r, s, -3.0, 3.0)),
            int_dtype=symad.float32),
        Row("gelu", NF.gelu, lambda x: 0.5 * x * (1 + erf_ref(x / math.sqrt(2))), unary()),
        Row("gelu_tanh", lambda x: NF.gelu(x, approximate="tanh"),
            lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
            unary()),
        Row("silu", NF.silu, lambda x: x * _sig(x), unary()),
        Row("leaky_relu", lambda x, **k: NF.leaky_relu(x, **k),
            lambda x, negative_slope=0.01: np.where(x > 0, x, negative_slope * x),
            lambda rng: [Sample([U(rng, (2, 3)) + 0.013]),
                         Sample([U(rng, (4,)) + 0.013], {"negative_slope": 0.2})]),
        Row("softplus", lambda x, **k: NF.softplus(x, **k),
            lambda x, beta=1.0, threshold=20.0: np.where(beta * x > threshold, x,
                                                         np.log(1 + np.exp(beta * x)) / beta),
            lambda rng: [Sample([U(rng, (2, 3))]),
                         Sample([U(rng, (5,))], {"beta": 2.0, "threshold": 1.5})]),
        Row("elu", lambda x, **k: NF.elu(x, **k),
            lambda x, alpha=1.0: np.where(x > 0, x, alpha * (np.exp(x) - 1)),
            lambda rng: [Sample([U(rng, (2, 3)) + 0.013]),
                         Sample([U(rng, (4,)) + 0.013], {"alpha": 1.5})]),
        # the hard activations: samples away from their kinks (-3, 3, the bounds); the kinks
        # themselves are in tests/test_layers.py against torch 2.14.1's recorded values
        Row("hardtanh", lambda x, **k: NF.hardtanh(x, **k),
            lambda x, min_val=-1.0, max_val=1.0: np.clip(x, min_val, max_val),
            lambda rng: [Sample([np.array([-1.7, -0.6, 0.1, 0.9, 1.6])]),
                         Sample([np.array([-0.3, 0.4, 2.2, 5.1])],
                                {"min_val": 0.0, "max_val": 2.0})]),
        Row("hardsigmoid", NF.hardsigmoid, lambda x: np.clip(x + 3, 0, 6) / 6,
            lambda rng: [Sample([np.array([-4.1, -2.2, 0.3, 2.9, 3.6])])]),
        Row("hardswish", NF.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6,
            lambda rng: [Sample([np.array([-4.1, -2.2, 0.3, 2.9, 3.6])])]),
        Row("threshold", lambda x, **k: NF.threshold(x, **k),
            lambda x, threshold, value: np.where(x > threshold, x, value),
            lambda rng: [Sample([np.array([-1.2, 0.4, 0.9, 1.7])],
                                {"threshold": 0.5, "value": -2.0})]),
        Row("logsigmoid", NF.logsigmoid, lambda x: -np.log1p(np.exp(-x)), unary()),
        Row("selu", NF.selu, lambda x: 1.0507009873554805 * np.where(
            x > 0, x, 1.6732632423543772 * np.expm1(x)), lambda rng: [Sample([U(rng, (2, 3))
                                                                              + 0.013])]),
        Row("celu", lambda x, **k: NF.celu(x, **k),
            lambda x, alpha=1.0: np.where(x > 0, x, alpha * np.expm1(x / alpha)),
            lambda rng: [Sample([U(rng, (2, 3)) + 0.013]),
                         Sample([U(rng, (4,)) + 0.013], {"alpha": 2.0})]),
        Row("mish", NF.mish, lambda x: x * np.tanh(np.log1p(np.exp(x))), unary()),
        Row("softshrink", lambda x, **k: NF.softshrink(x, **k),
            lambda x, lambd=0.5: np.where(x > lambd, x - lambd,
                                          np.where(x < -lambd, x + lambd, 0.0)),
            lambda rng: [Sample([np.array([-1.7, -0.3, 0.1, 0.9])]),
                         Sample([np.array([-1.7, -0.3, 0.1, 0.9])], {"lambd": 0.2})]),
        Row("hardshrink", lambda x, **k: NF.hardshrink(x, **k),
            lambda x, lambd=0.5: np.where(np.abs(x) > lambd, x, 0.0),
            lambda rng: [Sample([np.array([-1.7, -0.3, 0.1, 0.9])]),
                         Sample([np.array([-1.7, -0.3, 0.1, 0.9])], {"lambd": 0.2})]),
        Row("convolution", _apply("convolution"), conv_ref, conv_samples(Sample, U)),
        Row("conv_input_grad", _apply("conv_input_grad"), conv_input_grad_ref,
            conv_input_grad_samples(Sample, U)),
        Row("conv_weight_grad", _apply("conv_weight_grad"), conv_weight_grad_ref,
            conv_weight_grad_samples(Sample, U)),
        Row("max_pool", _apply("max_pool"), max_pool_ref, max_pool_samples(Sample, U)),
        Row("max_pool_backward", _apply("max_pool_backward"), max_pool_backward_ref,
            max_pool_grad_samples(Sample, U, "backward")),
        Row("max_pool_select", _apply("max_pool_select"), max_pool_select_ref,
            max_pool_grad_samples(Sample, U, "select")),
        Row("avg_pool", _apply("avg_pool"), avg_pool_ref, avg_pool_samples(Sample, U)),
        Row("avg_pool_backward", _apply("avg_pool_backward"), avg_pool_backward_ref,
            avg_pool_backward_samples(Sample, U)),
        Row("adaptive_avg_pool2d", _apply("adaptive_avg_pool2d"), adaptive_ref,
            lambda rng: [Sample([U(rng, (2, 2, 5, 7))], {"output_size": s})
                         for s in ((3, 2), (2, 7), (1, 1))]),
        Row("layer_norm", _apply("layer_norm"), layer_norm_ref,
            lambda rng: [Sample([U(rng, (2, 3, 4)), U(rng, (3, 4)), U(rng, (3, 4))],
                                {"normalized_shape": (3, 4), "eps": 1e-5}),
                         Sample([U(rng, (3, 5)), U(rng, (5,))],
                                {"normalized_shape": (5,), "eps": 1e-3}),
                         Sample([U(rng, (4,))], {"normalized_shape": (4,), "eps": 1e-5})]),
        Row("embedding", _apply("embedding"), lambda w, idx, padding_idx=None: w[idx],
            lambda rng: [Sample([U(rng, (5, 3)), np.array([[0, 2, 2], [4, 2, 1]])],
                                {"padding_idx": p}, diff=(0,)) for p in (None, 2)],
            fd_ref=embedding_fd_ref),
    ]
    return rows
