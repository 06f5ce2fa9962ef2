"""erf and the activations of modern networks (GELU, SiLU, LeakyReLU, Softplus, ELU, and the
piecewise-linear Hardtanh, Hardsigmoid, Hardswish, Threshold), each declared once by its SymPy
scalar formula plus a named numpy fast path.

Derivatives come from SymPy, so PyTorch's conventions follow from the formulas: LeakyReLU's and
ELU's gradient at 0 is the negative-side one (the positive branch is strict ``x > 0``, as in
``leaky_relu_backward``), Softplus is linear above ``threshold`` (gradient exactly 1 there). The hard activations' edges
belong to their flat pieces, as in PyTorch 2.14 (torch 2.14.1's recorded values): hardtanh's
gradient is 0 at ``min_val`` and ``max_val`` (like clamp's), hardsigmoid's 0 at -3 and 3,
hardswish's 0 at -3 and 1 at 3, threshold's 0 at the threshold. (PyTorch's hardsigmoid backward
multiplies by 1/6 rounded to float32 even in float64; symad's slope is exactly 1/6.)

numpy has no ``erf`` and scipy is not a dependency, so :func:`np_erf` evaluates it in float64
(|relative error| < 1e-15 against ``math.erf``): below 2 a power series with positive terms,
``erf(x) = 2/sqrt(pi) exp(-x²) Σ (2x²)ⁿ x / (2n+1)!!`` (no cancellation), above it the continued
fraction of ``erfc``. Both are fixed-length loops over whole arrays.
"""
from __future__ import annotations

import math

import numpy as np
import sympy
from sympy import Piecewise

from .elementwise import _clamp_formula, _clamp_np
from .registry import NUMPY_FUNCS, register, sigmoid

_SERIES_CUT = 2.0
# c_n = 1 / (2n+1)!!, n = 0..29, highest first (Horner): 6e-16 relative below |x| = 2
_SERIES = np.cumprod([1.0] + [1.0 / (2 * n + 1) for n in range(1, 30)])[::-1].copy()
_CF_TERMS = 40  # continued fraction depth for |x| >= 2 (2.3e-16 relative on erf)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def np_erf(x) -> np.ndarray:
    """The error function of a float array (computed in float64, returned in x's float dtype).

    >>> float(np_erf(np.array(0.5)))
    0.5204998778130465
    """
    x = np.asarray(x)
    out_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    a = np.abs(x.astype(np.float64))
    out = np.empty_like(a)
    small = a < _SERIES_CUT
    xs = a[small]
    x2 = 2.0 * xs * xs
    acc = np.full_like(xs, _SERIES[0])
    for c in _SERIES[1:]:  # Horner in 2x²
        acc *= x2
        acc += c
    out[small] = _TWO_OVER_SQRT_PI * np.exp(-xs * xs) * xs * acc
    big = ~small
    xl = a[big]
    # erfc(x) = exp(-x²)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated backwards
    with np.errstate(all="ignore"):
        f = xl.copy()
        for k in range(_CF_TERMS, 0, -1):
            np.divide(k / 2.0, f, out=f)
            f += xl
        erfc = np.exp(-xl * xl) * _INV_SQRT_PI / f
    out[big] = np.where(np.isinf(xl), 1.0, 1.0 - erfc)
    out = np.where(np.isnan(a), np.nan, np.copysign(out, x))
    return out.astype(out_dtype, copy=False)


NUMPY_FUNCS["erf"] = np_erf  # lambdified derivatives that contain erf (GELU's) use it too

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu_np(x):
    return 0.5 * x * (1.0 + np_erf(x * x.dtype.type(1 / math.sqrt(2.0))))


def _gelu_formula(x):
    return x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2


def _gelu_tanh_np(x):
    inner = x.dtype.type(_SQRT_2_OVER_PI) * (x + x.dtype.type(0.044715) * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(inner))


def _gelu_tanh_formula(x):
    k = sympy.sqrt(2 / sympy.pi)
    return x * (1 + sympy.tanh(k * (x + sympy.Float(0.044715) * x ** 3))) / 2


def _silu_np(x):
    from .registry import _np_sigmoid
    return x * _np_sigmoid(x)


def _leaky_relu_np(x, negative_slope=0.01):
    return np.where(x > 0, x, x * negative_slope)


def _softplus_np(x, beta=1.0, threshold=20.0):
    bx = x * beta
    return np.where(bx > threshold, x, np.log1p(np.exp(bx)) / beta)


def _softplus_formula(x, beta=1.0, threshold=20.0):
    return Piecewise((x, beta * x > threshold), (sympy.log(1 + sympy.exp(beta * x)) / beta, True))


def _elu_np(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(x))


def _elu_formula(x, alpha=1.0):
    return Piecewise((x, x > 0), (alpha * (sympy.exp(x) - 1), True))


def _hardtanh_np(x, min_val=-1.0, max_val=1.0):
    return _clamp_np(x, min=min_val, max=max_val)     # hardtanh is clamp under another name


def _hardtanh_formula(x, min_val=-1.0, max_val=1.0):
    return _clamp_formula(x, min=min_val, max=max_val)


def _hardsigmoid_np(x):
    return np.minimum(np.maximum(x + 3, 0), 6) / 6


def _hardsigmoid_formula(x):
    return Piecewise((0, x <= -3), (1, x >= 3), ((x + 3) / 6, True))


def _hardswish_np(x):
    return x * np.minimum(np.maximum(x + 3, 0), 6) / 6


def _hardswish_formula(x):
    return Piecewise((0, x <= -3), (x, x >= 3), (x * (x + 3) / 6, True))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _logsigmoid_np(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _logsigmoid_formula(x):      # stable at both ends; gradient 1 - sigmoid(x) (0.5 at 0)
    return sympy.Min(x, 0) - sympy.log(1 + sympy.exp(-sympy.Abs(x)))


def _selu_np(x):
    return _SELU_SCALE * _elu_np(x, _SELU_ALPHA)


def _selu_formula(x):
    return _SELU_SCALE * _elu_formula(x, _SELU_ALPHA)


def _celu_np(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(x / alpha))


def _celu_formula(x, alpha=1.0):
    return Piecewise((x, x > 0), (alpha * (sympy.exp(x / alpha) - 1), True))


def _mish_np(x):
    return x * np.tanh(np.logaddexp(0, x))


def _mish_formula(x):            # softplus as -log(sigmoid(-x)): its derivative is sigmoid(x)
    return x * sympy.tanh(-sympy.log(sigmoid(-x)))


def _softshrink_np(x, lambd=0.5):
    return np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, 0 * x))


def _softshrink_formula(x, lambd=0.5):
    return Piecewise((x - lambd, x > lambd), (x + lambd, x < -lambd), (0, True))


def _hardshrink_np(x, lambd=0.5):
    return np.where((x > lambd) | (x < -lambd), x, 0 * x)


def _hardshrink_formula(x, lambd=0.5):
    return Piecewise((x, x > lambd), (x, x < -lambd), (0, True))


def _threshold_np(x, threshold, value):
    return np.where(x > threshold, x, np.asarray(value, x.dtype))


def _threshold_formula(x, threshold, value):
    return Piecewise((x, x > threshold), (value, True))


register("erf", grad_fn="ErfBackward0", forward=np_erf, formula=sympy.erf, dtype_rule="float",
         doc="the error function 2/sqrt(pi) ∫₀ˣ exp(-t²) dt")
register("gelu", grad_fn="GeluBackward0", forward=_gelu_np, formula=_gelu_formula,
         dtype_rule="float", doc="GELU, exact form x·Φ(x) = x/2·(1 + erf(x/√2))")
register("gelu_tanh", grad_fn="GeluBackward0", forward=_gelu_tanh_np, formula=_gelu_tanh_formula,
         dtype_rule="float",
         doc="GELU, tanh approximation (approximate='tanh'): x/2·(1 + tanh(√(2/π)(x + 0.044715x³)))")
register("silu", grad_fn="SiluBackward0", forward=_silu_np, formula=lambda x: x * sigmoid(x),
         dtype_rule="float", doc="SiLU / swish: x·sigmoid(x)")
register("leaky_relu", grad_fn="LeakyReluBackward0", forward=_leaky_relu_np,
         formula=lambda x, negative_slope=0.01: Piecewise((x, x > 0), (negative_slope * x, True)),
         params=("negative_slope",), dtype_rule="float",
         doc="x for x > 0, negative_slope·x otherwise (gradient negative_slope at 0, as PyTorch)")
register("softplus", grad_fn="SoftplusBackward0", forward=_softplus_np, formula=_softplus_formula,
         params=("beta", "threshold"), dtype_rule="float",
         doc="log(1 + exp(beta·x))/beta; x itself where beta·x > threshold (PyTorch)")
register("hardtanh", grad_fn="HardtanhBackward0", forward=_hardtanh_np, formula=_hardtanh_formula,
         params=("min_val", "max_val"), dtype_rule="float",
         doc="x clamped to [min_val, max_val]; gradient 0 at the edges (relu6 = hardtanh(0, 6))")
register("hardsigmoid", grad_fn="HardsigmoidBackward0", forward=_hardsigmoid_np,
         formula=_hardsigmoid_formula, dtype_rule="float",
         doc="relu6(x + 3) / 6; gradient 1/6 strictly inside (-3, 3)")
register("hardswish", grad_fn="HardswishBackward0", forward=_hardswish_np,
         formula=_hardswish_formula, dtype_rule="float",
         doc="x·relu6(x + 3) / 6; gradient 0 at -3 and 1 at 3")
register("threshold", grad_fn="ThresholdBackward0", forward=_threshold_np,
         formula=_threshold_formula, params=("threshold", "value"), dtype_rule="float",
         doc="x where x > threshold, else value")
register("logsigmoid", grad_fn="LogSigmoidBackward0", forward=_logsigmoid_np,
         formula=_logsigmoid_formula, dtype_rule="float", doc="log(sigmoid(x)), stably")
register("selu", grad_fn="EluBackward0", forward=_selu_np, formula=_selu_formula,
         dtype_rule="float", doc="scale·elu(x, alpha) with SELU's constants (PyTorch's node name)")
register("celu", grad_fn="CeluBackward0", forward=_celu_np, formula=_celu_formula,
         params=("alpha",), dtype_rule="float", doc="x for x > 0, alpha·(exp(x/alpha) - 1)")
register("mish", grad_fn="MishBackward0", forward=_mish_np, formula=_mish_formula,
         dtype_rule="float", doc="x·tanh(softplus(x))")
register("softshrink", grad_fn="SoftshrinkBackward0", forward=_softshrink_np,
         formula=_softshrink_formula, params=("lambd",), dtype_rule="float",
         doc="x ∓ lambd outside [-lambd, lambd], 0 inside (gradient 0 at the edges)")
register("hardshrink", grad_fn="HardshrinkBackward0", forward=_hardshrink_np,
         formula=_hardshrink_formula, params=("lambd",), dtype_rule="float",
         doc="x outside [-lambd, lambd], 0 inside (gradient 0 at the edges)")
register("elu", grad_fn="EluBackward0", forward=_elu_np, formula=_elu_formula,
         params=("alpha",), dtype_rule="float", doc="x for x > 0, alpha·(exp(x) - 1) otherwise")
