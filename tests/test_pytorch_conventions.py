"""PyTorch's conventions hold in every path (eager, trace, compile, value_and_grad, export):
regressions for the drift and crash examples of issue 15. Expected values are PyTorch 2.x's,
encoded as constants (hand-derived where noted), never symad's own output."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import sympy

import symad
import symad.nn.functional as F
from symad.compiler import CompileWarning


def _grads_eager(fn, *values):
    ts = [symad.tensor(v, dtype=symad.float64, requires_grad=True) for v in values]
    out = fn(*ts)
    out.backward()
    return float(out), [np.asarray(t.grad.numpy(), np.float64) for t in ts]


def _grads_trace(fn, *values):
    tr = symad.trace(fn, *[np.asarray(v, np.float64) for v in values])
    g = tr.gradient()
    g = g if isinstance(g, list) else [g]
    return float(tr.evaluate()), [np.asarray(tr.evaluate(x), np.float64).reshape(np.shape(v))
                                  for x, v in zip(g, values)]


def _grads_vag(fn, *values):
    ts = [symad.tensor(v, dtype=symad.float64, requires_grad=True) for v in values]
    val, gs = symad.value_and_grad(fn, argnums=tuple(range(len(ts))))(*ts)
    return float(val), [np.asarray(g.numpy(), np.float64) for g in gs]


PATHS = [_grads_eager, _grads_trace, _grads_vag]


# -- pow at 0**0 -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.__name__[7:])
def test_pow_gradient_at_zero_zero_is_zero(path):
    # PyTorch: torch.tensor(0., requires_grad=True) ** torch.tensor(0., requires_grad=True)
    # -> value 1, gradients (0, 0) (pow_backward masks b == 0 and a == 0 & b >= 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        val, (ga, gb) = path(lambda a, b: a ** b, 0.0, 0.0)
    assert val == 1.0 and ga == 0.0 and gb == 0.0


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.__name__[7:])
def test_pow_gradient_away_from_zero(path):
    # d/da a**b = b a**(b-1) = 3 * 2**2 = 12; d/db = a**b log a = 8 log 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        val, (ga, gb) = path(lambda a, b: a ** b, 2.0, 3.0)
    assert val == 8.0 and ga == pytest.approx(12.0) and gb == pytest.approx(8 * math.log(2))


def test_trace_pow_gradient_formula_keeps_the_zero_rule():
    tr = symad.trace(lambda a, b: a ** b, 0.0, 0.0)
    a, b = tr.symbols
    ga, gb = tr.gradient()
    # away from the singular point the rule is the textbook derivative
    assert sympy.simplify(ga.subs({a: 2, b: 3}) - 12) == 0
    assert sympy.simplify(gb.subs({a: 2, b: 3}) - 8 * sympy.log(2)) == 0
    assert ga.subs({a: 0, b: 0}) == 0 and gb.subs({a: 0, b: 0}) == 0


# -- binary_cross_entropy's log clamp ----------------------------------------------------------
BCE_P, BCE_Y = [0.0, 0.5], [1.0, 1.0]
# PyTorch: F.binary_cross_entropy(tensor([0., .5]), tensor([1., 1.])) = (100 + log 2) / 2;
# grad = (p - y) / max(p (1 - p), 1e-12) / 2 = [-5e11, -1]
BCE_VALUE = (100 + math.log(2)) / 2
BCE_GRAD = [-5e11, -1.0]


def _bce(p):
    return F.binary_cross_entropy(p, symad.tensor(BCE_Y, dtype=symad.float64))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.__name__[7:])
def test_bce_clamps_log_at_minus_100_in_every_path(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        val, (g,) = path(_bce, BCE_P)
    assert val == pytest.approx(BCE_VALUE, rel=1e-12)
    np.testing.assert_allclose(g, BCE_GRAD, rtol=1e-9)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bce_clamp_in_native_kernel(dtype):
    """The traced loss and gradient lower to LLVM with the clamp (what compile and export run)."""
    from codegen import compile_kernel
    tr = symad.trace(_bce, np.asarray(BCE_P))
    syms = list(tr.symbols)
    k = compile_kernel(syms, [tr.output, *list(tr.gradient())], batched=[], dtype=dtype,
                       cache=False)
    val, *g = k(*BCE_P)
    rtol = 1e-12 if dtype == "float64" else 1e-6
    assert float(val) == pytest.approx(BCE_VALUE, rel=rtol)
    np.testing.assert_allclose(np.asarray(g, np.float64), BCE_GRAD, rtol=rtol)


# -- stable binary_cross_entropy_with_logits -----------------------------------------------------
LOGITS, TARGETS = [-200.0, 0.0, 200.0], [1.0, 0.5, 0.0]
# PyTorch: mean of max(x,0) - x y + log1p(exp(-|x|)) = (200 + log 2 + 200) / 3; its gradient is
# (sigmoid(x) - y) / 3 = [-1/3, 0, 1/3] (finite: no exp(200) overflow)
BCEL_VALUE = (400 + math.log(2)) / 3
BCEL_GRAD = [-1 / 3, 0.0, 1 / 3]


def _bcel(x):
    return F.binary_cross_entropy_with_logits(x, symad.tensor(TARGETS, dtype=symad.float64))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.__name__[7:])
def test_bce_with_logits_is_stable_in_every_path(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        val, (g,) = path(_bcel, LOGITS)
    assert val == pytest.approx(BCEL_VALUE, rel=1e-12)
    np.testing.assert_allclose(g, BCEL_GRAD, rtol=1e-12, atol=1e-15)


def test_bce_with_logits_traced_formula_has_no_overflowing_exp():
    tr = symad.trace(_bcel, np.asarray(LOGITS))
    assert not any(e.is_positive for x in tr.output.atoms(sympy.exp) for e in [x.args[0]]
                   if e.is_number)
    assert float(tr.evaluate()) == pytest.approx(BCEL_VALUE, rel=1e-12)


# -- eager backward through reductions to 0-d (the AxisError reports) ---------------------------
def test_mean_of_mean_in_a_quotient_backward():
    w = symad.tensor([1.0, 2.0], dtype=symad.float64, requires_grad=True)
    y = symad.tensor(np.arange(6.0).reshape(2, 3), dtype=symad.float64, requires_grad=True)
    out = ((w * 0.5 + w ** 2) * 0.5 / (1 + y.mean(dim=0).mean(dim=0))).sum()
    out.backward()
    m = 2.5  # mean of 0..5
    np.testing.assert_allclose(w.grad.numpy(), (0.5 + 2 * np.array([1.0, 2.0])) * 0.5 / (1 + m))
    num = float(((np.array([1.0, 2.0]) * 0.5 + np.array([1.0, 4.0])) * 0.5).sum())
    np.testing.assert_allclose(y.grad.numpy(), np.full((2, 3), -num / (1 + m) ** 2 / 6))


def test_maximum_with_keepdim_sum_backward_splits_ties():
    x = symad.tensor([3.0, 1.0], dtype=symad.float64, requires_grad=True)
    y = symad.tensor([1.0, 2.0], dtype=symad.float64, requires_grad=True)
    symad.maximum(y.sum(dim=-1, keepdim=True), x).sum().backward()
    # y.sum() = 3: a tie with x[0] (split 1/2 each), above x[1]
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.0])
    np.testing.assert_allclose(y.grad.numpy(), [1.5, 1.5])


# -- SymPy recursing on a relation: compile must compile or fall back, never crash ---------------
def _recursing(x, y, w):
    return symad.tanh(symad.minimum(symad.sqrt(1 + x * x), y * -0.347 + w)).sum()


def test_relation_that_recurses_in_sympy_compiles_or_falls_back():
    rng = np.random.default_rng(0)
    x, y, w = (symad.tensor(rng.standard_normal(4), dtype=symad.float64) for _ in range(3))
    ts = [t.requires_grad_() for t in (x, y, w)]
    ref = _recursing(*ts)
    eg = symad.autograd.grad([ref], ts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        val, grads = symad.value_and_grad(_recursing, argnums=(0, 1, 2))(x, y, w)
        out = symad.compile(_recursing)(x, y, w)
    assert float(val) == pytest.approx(float(ref)) and float(out) == pytest.approx(float(ref))
    for g, e in zip(grads, eg):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-9, atol=1e-12)


def test_relation_that_recurses_in_sympy_traces():
    tr = symad.trace(_recursing, 0.3, 0.2, 0.1)
    x, y, w = 0.3, 0.2, 0.1
    assert float(tr.evaluate()) == pytest.approx(math.tanh(min(math.sqrt(1 + x * x),
                                                               y * -0.347 + w)))


# -- empty batch: PyTorch's values --------------------------------------------------------------
def _mse_mean(w, x, y):
    return ((w * x - y) ** 2).mean()


def _mse_sum(w, x, y):
    return ((w * x - y) ** 2).sum()


@pytest.mark.parametrize("fn,value", [(_mse_mean, "nan"), (_mse_sum, 0.0)])
def test_empty_batch_gives_pytorch_values(fn, value):
    # PyTorch: mean over an empty tensor is nan, its gradient an empty sum (0); sum is 0 and 0
    w = symad.tensor(2.0, dtype=symad.float64, requires_grad=True)
    x = symad.zeros(0, dtype=symad.float64)
    full = symad.ones(6, dtype=symad.float64)
    compiled = symad.compile(fn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's "mean of empty slice"
        compiled(w, full, full)  # build the kernel on a real batch first
        for call in (fn, compiled, lambda *a: symad.value_and_grad(fn)(*a)):
            w.grad = None
            out = call(w, x, x)
            if isinstance(out, tuple):
                loss, g = out
            else:
                loss = out
                loss.backward()
                g = w.grad
            assert (math.isnan(float(loss)) if value == "nan" else float(loss) == value)
            assert float(g) == 0.0
