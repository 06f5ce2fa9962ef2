"""Verification at tensor size: one arithmetic for constants, None gradients, shapes, time
budgets, numpy formulations, and the building blocks (exact floats, indicator proofs, point
evaluation). Oracles: numpy, hand-computed rationals, mpmath, symad's float64 gradcheck."""
from __future__ import annotations

import time
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp

import symad
from symad import check_function, check_gradient
from symad._exact import exact_float
from symad.autograd import Function, gradcheck
from symad.cli import main
from symad.verify.budget import Budget
from symad.verify.evaluate import PointEvaluator
from symad.verify.indicators import prove_generalized, prove_piecewise
from symad.verify.symbolic_inputs import symbolic_tensor

EPS = 1e-5


class BatchNorm(Function):
    """Batch norm with eps = 1e-5 in forward and backward (a float on both sides)."""

    @staticmethod
    def forward(ctx, x, gamma, beta):
        mu = x.mean(0)
        var = ((x - mu) ** 2).mean(0)
        std = (var + EPS).sqrt()
        xhat = (x - mu) / std
        ctx.save_for_backward(xhat, gamma, std)
        return gamma * xhat + beta

    @staticmethod
    def backward(ctx, dout):
        xhat, gamma, std = ctx.saved_tensors
        n = xhat.shape[0]
        dxhat = dout * gamma
        dx = (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (n * std)
        return dx, (dout * xhat).sum(0), dout.sum(0)


class MaskedScale(Function):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask * 2

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask * 2, None        # no gradient for the mask: PyTorch's None


class LinearTransposedGrad(Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w.t(), g.t() @ x      # dw is (3, 2); w is (2, 3)


def _bn_inputs(requires_grad=False):
    g = np.random.default_rng(0)
    return tuple(symad.tensor(g.standard_normal(s), dtype=symad.float64,
                              requires_grad=requires_grad) for s in ((3, 2), (2,), (2,)))


def test_check_function_batchnorm_eps_same_arithmetic():
    # eps = 1e-5 appears in the exact VJP and in the backward: one exact number on both sides
    r = check_function(BatchNorm, *_bn_inputs())
    assert r.ok and r.proved, str(r)
    assert r.seconds is not None and r.basis == "symbolic proof"
    # second oracle: numeric gradcheck agrees
    assert gradcheck(BatchNorm.apply, _bn_inputs(requires_grad=True))


def test_check_function_none_for_constant_mask():
    x = symad.tensor([1.0, -2.0, 0.5], dtype=symad.float64, requires_grad=True)
    mask = symad.tensor([1.0, 0.0, 1.0], dtype=symad.float64)      # requires_grad=False
    r = check_function(MaskedScale, x, mask)
    assert r.ok and r.proved, str(r)
    assert [it.name.split("[")[0] for it in r.items] == ["x"] * 3
    # marked constant explicitly, without requires_grad flags
    r2 = check_function(MaskedScale, x.detach(), mask, constants=["mask"])
    assert r2.ok
    # not constant: None means a zero gradient (PyTorch), which is wrong for a used input
    r3 = check_function(MaskedScale, x.detach(), mask)
    assert not r3.ok and any("None" in n for n in r3.notes)
    assert all("global" not in (it.hint or "") for it in r3.items)


def test_check_function_transposed_same_size_gradient_is_a_shape_error():
    x = symad.tensor(np.ones((4, 2)), dtype=symad.float64)
    w = symad.tensor(np.ones((2, 3)), dtype=symad.float64)
    r = check_function(LinearTransposedGrad, x, w)
    assert not r.ok and r.proved
    it = r["w"]
    assert "(2, 3)" in it.method and "(3, 2)" in it.method   # never silently reshaped
    assert "transposed" in it.hint
    assert r["x[0,0]"].ok


def test_keyword_arguments_constants_and_helpers():
    def loss(W, X, reg=0.1):                     # a parameter with a default is not an input
        return np.sum(np.maximum(0, X @ W)) + reg * np.sum(W * W)

    def grad(X, W, reg=0.1):                     # parameters by name, in another order
        return {"W": X.T @ (X @ W > 0) + 2 * reg * W}

    g = np.random.default_rng(1)
    inputs = {"W": symad.tensor(g.standard_normal((2, 2))),
              "X": symad.tensor(g.standard_normal((3, 2)))}
    r = check_gradient(loss, grad, inputs=inputs, constants=["X"])
    assert r.ok and r.proved, str(r)
    assert [it.name for it in r.items] == ["W[0,0]", "W[0,1]", "W[1,0]", "W[1,1]"]

    def needs_more(W, X, lr):
        return {"W": W}
    with pytest.raises(TypeError, match="lr"):
        check_gradient(loss, needs_more, inputs=inputs, constants=["X"])
    with pytest.raises(ValueError, match="constants"):
        check_gradient(loss, grad, inputs=inputs, constants=["Z"])


def test_float_constants_folded_while_tracing():
    # 0.2*3 is folded to 0.6000000000000001 by Python before symad sees it
    def f(w):
        return np.sum(np.log(1 + np.exp(w * 0.2 * 3)))
    r = check_gradient(f, lambda w: 0.6 / (1 + np.exp(-0.6 * w)),
                       inputs={"w": symad.tensor([0.5, -1.0])})
    assert r.ok and r.proved, str(r)


def test_wrong_gradient_refuted_fast_with_counterexample():
    def f(x, d):
        return np.sum(np.tanh(x) * d)
    inputs = {"x": symad.tensor(np.linspace(-1, 1, 6).reshape(2, 3)),
              "d": symad.tensor(np.ones((2, 3)))}
    r = check_gradient(f, lambda x, d: d * (1 - np.tanh(x)), wrt=["x"], inputs=inputs)
    assert not r.ok and r.proved and r.basis == "counterexample at a point"
    ce = r["x[0,0]"].counterexample
    # oracle: mpmath at the witness
    x00, d00 = (mpmath.mpf(Fraction(str(ce[k])).numerator) / Fraction(str(ce[k])).denominator
                for k in ("x[0,0]", "d[0,0]"))
    assert float(ce.exact) == pytest.approx(float(d00 * (1 - mpmath.tanh(x00) ** 2)))
    assert "refuted" in r["x[0,0]"].method
    assert "verdict: proved wrong (rests on: counterexample at a point;" in str(r)


def test_tiny_timeout_is_undecided_never_a_wrong_verdict():
    def f(x):
        return np.sum(np.tanh(x))
    x = {"x": symad.tensor([0.1, 0.2])}
    right = check_gradient(f, lambda x: 1 / np.cosh(x) ** 2, inputs=x, timeout=1e-4)
    # out of time: undecided, or equal at the random points but unproved; never a proof
    assert right.status in ("undecided", "right (not proved)") and right.exit_code == 2
    assert "undecided within the time budget" in right.basis or "equal at" in right.basis
    wrong = check_gradient(f, lambda x: 1 / np.cosh(x), inputs=x, timeout=1e-4)
    assert wrong.status in ("undecided", "proved wrong")   # never "right"
    # with time, both are decided
    assert check_gradient(f, lambda x: 1 / np.cosh(x) ** 2, inputs=x).status == "proved right"
    assert check_gradient(f, lambda x: 1 / np.cosh(x), inputs=x).status == "proved wrong"


def test_cli_timeout_option(capsys):
    assert main(["check", "x**2", "--claim", "x=2*x", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "rests on: symbolic proof" in out
    assert main(["check", "x**2", "--claim", "x=2*x", "--timeout", "-1"]) == 2


# -- natural numpy formulations on symbolic tensors ------------------------------------------------

def test_numpy_functions_on_symbolic_tensors():
    x = symbolic_tensor("x", (2,))
    s0 = x._data[0]
    relu = sp.Piecewise((s0, s0 > 0), (0, True))
    for out in (x * (x > 0), np.where(x > 0, x, 0.0), np.maximum(x, 0)):
        v = out._data[0]
        for val in (sp.Rational(3, 2), sp.Rational(-1, 3)):
            assert float(v.subs(s0, val)) == float(relu.subs(s0, val))
    masked = x.clone()
    masked[x <= 0] = 0
    assert float(masked._data[1].subs(x._data[1], -2)) == 0
    assert float(masked._data[1].subs(x._data[1], 5)) == 5
    assert np.sum(x, axis=0)._data[()] == x._data[0] + x._data[1]
    assert np.exp(x)._data[1] == sp.exp(x._data[1])
    with pytest.raises(TypeError, match="not supported on symbolic"):
        np.fft.fft(x)


def test_numpy_functions_on_numeric_tensors_match_numpy():
    a = np.array([[1.0, -2.0], [3.0, 0.5]])
    t = symad.tensor(a, dtype=symad.float64, requires_grad=True)
    out = np.sum(np.maximum(0, t) * np.exp(t), axis=0)
    np.testing.assert_allclose(out.detach().numpy(), np.sum(np.maximum(0, a) * np.exp(a), 0))
    out.sum().backward()       # differentiable: symad ops ran
    np.testing.assert_allclose(t.grad.numpy(), np.where(a > 0, np.exp(a) * (1 + a), 0))
    assert isinstance(np.asarray(t.detach()), np.ndarray)
    assert type(np.median(t.detach())) is np.float64       # outside the table: numpy's own
    assert isinstance(np.ones(2) + symad.tensor([1.0, 2.0]), symad.Tensor)
    assert t.detach().sum(axis=1, keepdims=True).shape == (2, 1)


# -- building blocks -------------------------------------------------------------------------------

@pytest.mark.parametrize("v, want", [(0.1, Fraction(1, 10)), (0.2 * 3, Fraction(3, 5)),
                                     (1e-5, Fraction(1, 100000)), (2.000000001,
                                                                   Fraction(2000000001, 10**9)),
                                     (3 * 0.044715, Fraction(26829, 200000)),
                                     (-0.30000000000000004, Fraction(-3, 10)),
                                     (np.float32(0.1), Fraction(1, 10))])
def test_exact_float(v, want):
    got = exact_float(v)
    assert Fraction(int(got.p), int(got.q)) == want
    assert abs(float(want) - float(v)) <= 4 * np.spacing(np.float32(abs(v))
                                                         if isinstance(v, np.float32)
                                                         else abs(float(v)))


def test_budget_interrupts_a_step():
    b = Budget(5.0)
    t0 = time.perf_counter()
    with b.step(0.2) as ok:
        while True:
            pass
    assert ok == [False] and time.perf_counter() - t0 < 1.0
    with b.step(1.0) as ok:
        pass
    assert ok == [True]


def test_point_evaluator_against_mpmath():
    x, y = sp.symbols("x y", real=True)
    ev = PointEvaluator({x: sp.Rational(1, 3), y: sp.Rational(-2, 5)})
    assert ev.value(sp.Max(x, y) + sp.Abs(y) + sp.Heaviside(y)) == Fraction(1, 3) + \
        Fraction(2, 5)
    with mpmath.workprec(300):
        want = mpmath.tanh(mpmath.mpf(1) / 3) * mpmath.exp(mpmath.mpf(-2) / 5)
        got = ev.value(sp.tanh(x) * sp.exp(y))
        assert abs(got - want) < mpmath.mpf(10) ** -80


def test_indicator_proofs():
    x, y = sp.symbols("x y", real=True)
    relu_grad = sp.Piecewise((1, x > 0), (0, True))
    assert prove_piecewise(sp.Heaviside(x, 0) - relu_grad) is not None
    assert prove_piecewise(sp.sign(x) * x - sp.Abs(x)) is not None
    assert prove_piecewise(sp.Heaviside(-x) - relu_grad) is None        # wrong: no proof
    m = sp.Max(x, y)
    assert prove_generalized(sp.exp(x - m) / (sp.exp(x - m) + sp.exp(y - m))
                             - 1 / (1 + sp.exp(y - x))) is not None


def test_above_the_program_trace_threshold_stays_element_level():
    # more than symbolic.program_trace.ELEMENT_LIMIT elements: trace would switch to a program
    # trace; verification keeps element-level expressions (a counterexample names an element)
    g = np.random.default_rng(4)
    inputs = {"x": symad.tensor(g.standard_normal((16, 17))),
              "dout": symad.tensor(g.standard_normal((16, 17)))}

    def f(x, dout):
        return np.sum(np.maximum(0, x) * dout)
    right = check_gradient(f, lambda x, dout: dout * (x > 0), wrt=["x"], inputs=inputs)
    assert right.ok and len(right.items) == 16 * 17
    wrong = check_gradient(f, lambda x, dout: dout * (x < 0), wrt=["x"], inputs=inputs)
    assert not wrong.ok and wrong.proved
    ce = next(it for it in wrong.items if it.equal is False).counterexample
    assert ce is not None and ce.exact != ce.claimed


def test_tensor_report_prints_a_summary_per_input():
    def f(x, d):
        return np.sum(np.tanh(x) * d)
    inputs = {"x": symad.tensor(np.linspace(-1, 1, 12).reshape(3, 4)),
              "d": symad.tensor(np.ones((3, 4)))}
    r = check_gradient(f, lambda x, d: (d * (1 - np.tanh(x)), np.tanh(x)), inputs=inputs)
    text = str(r)
    assert "∂f/∂x (12 element(s)): 12 WRONG" in text
    assert "∂f/∂d (12 element(s)): 12 correct" in text
    assert text.count("counterexample: at") == 3          # the first wrong ones in detail
    assert text.splitlines()[-1].startswith("verdict: proved wrong (rests on: counterexample")


def test_batchnorm_at_n8_is_proved_not_sampled():
    # square roots become symbols s with s**2 = radicand: the proof stays cheap as N grows
    from verify_corpus import norms
    g = np.random.default_rng(8)
    inputs = {"x": symad.tensor(g.standard_normal((8, 3))),
              "gamma": symad.tensor(g.standard_normal(3)),
              "beta": symad.tensor(g.standard_normal(3)),
              "dout": symad.tensor(g.standard_normal((8, 3)))}
    r = check_gradient(norms.batchnorm_f, norms.batchnorm_backward_alt,
                       wrt=["x", "gamma", "beta"], inputs=inputs)
    assert r.status == "proved right", r.basis
    assert "square root" in r["x[5,2]"].method or "renaming" in r["x[5,2]"].method


def test_budget_step_interrupts_code_that_swallows_one_interruption():
    """SymPy has bare ``except:`` clauses (minimal polynomials inside simplify) that can swallow
    the step's interruption; the alarm re-fires, so the step still ends (it hung the suite once,
    in a display simplification, on a loaded machine)."""
    import time as _time

    from symad.verify.budget import Budget

    def swallow_once():
        try:
            while True:
                sum(range(1000))
        except BaseException:     # what a bare except catches
            pass
        while True:
            sum(range(1000))

    t0 = _time.perf_counter()
    with Budget(10).step(0.2) as ok:
        swallow_once()
    assert ok == [False] and _time.perf_counter() - t0 < 2.0


def _busy(seconds):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass


def _step_with_hook(body, seconds=0.05):
    """Run ``body`` in a step of ``seconds`` under a ``sys.unraisablehook`` that records the
    interruptions reported as unraisable (the garbage collection in ``body`` may also finalize
    other tests' leftovers, whose own unraisables pass to the previous hook)."""
    import sys

    from symad.verify.budget import OutOfTime
    seen = []
    old = sys.unraisablehook

    def hook(u):
        if isinstance(u.exc_value, OutOfTime):
            seen.append(u.exc_type)
        else:
            old(u)
    sys.unraisablehook = hook
    try:
        t0 = time.perf_counter()
        with Budget(10).step(seconds) as ok:
            body()
            while True:
                pass
    finally:
        sys.unraisablehook = old
    return ok, seen, time.perf_counter() - t0


def test_budget_alarm_waits_for_a_finalizer_to_finish():
    """The alarm landed in a finalizer run by the garbage collector: the OutOfTime became an
    unraisable exception (pytest's hook then failed the test: CI, stop 22) and the finalizer
    stopped half-way. It now waits for the finalizer and interrupts the step after it."""
    import gc
    import weakref
    done = []

    class Slow:
        def __del__(self):
            _busy(0.3)
            done.append("del")

    def make_garbage():
        s = Slow()
        s.cycle = s
        holder = type("Holder", (), {})()
        weakref.finalize(holder, lambda: (_busy(0.3), done.append("finalize")))
        holder.cycle = holder
        del s, holder
        gc.collect()
    ok, seen, took = _step_with_hook(make_garbage)
    assert ok == [False] and seen == [] and sorted(done) == ["del", "finalize"]
    assert took < 2.0


def test_budget_interruption_swallowed_by_a_weakref_callback_is_not_reported():
    import gc
    import weakref
    refs = []

    def make_garbage():
        class Node:
            pass
        n = Node()
        n.cycle = n
        refs.append(weakref.ref(n, lambda r: _busy(0.3)))
        del n
        gc.collect()
    ok, seen, took = _step_with_hook(make_garbage)
    assert ok == [False] and seen == [] and took < 2.0


@pytest.fixture
def probe_module(tmp_path, monkeypatch):
    """``probe_module(name, source)``: a module file ``name`` on sys.path, imported fresh and
    removed from ``sys.modules`` after the test."""
    import sys
    made = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name, source):
        (tmp_path / f"{name}.py").write_text(source)
        sys.modules.pop(name, None)
        made.append(name)
    yield make
    for name in made:
        sys.modules.pop(name, None)


def test_budget_alarm_does_not_interrupt_an_import(probe_module):
    import sys
    probe_module("symad_slow_import_probe",
                 "import time\n_t = time.perf_counter()\nwhile time.perf_counter() - _t < 0.3:\n"
                 "    pass\nLOADED = True\n")
    ok, seen, _ = _step_with_hook(lambda: __import__("symad_slow_import_probe"))
    assert ok == [False] and seen == []
    assert sys.modules["symad_slow_import_probe"].LOADED is True


def test_budget_step_run_by_a_module_being_imported_is_still_interrupted(probe_module):
    # the import system's frames below the step's ``with`` do not shield the step's own code
    probe_module("symad_step_at_import_probe",
                 "from symad.verify.budget import Budget\nwith Budget(10).step(0.05) as OK:\n"
                 "    while True:\n        pass\n")
    t0 = time.perf_counter()
    mod = __import__("symad_step_at_import_probe")
    assert mod.OK == [False] and time.perf_counter() - t0 < 2.0
