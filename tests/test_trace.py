"""Tracing beyond the op table: Hessians, PyTorch's kink conventions, control-flow errors,
batched tracing, custom Function backward tracing, the ``symad diff`` command."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import sympy

import symad
from symad import nn
from symad.symbolic import (NotBatchSeparable, reverse_gradient, symbolic_tensor, trace,
                            trace_batched, trace_function_backward)


def test_seed_000_and_002_gradients():
    tr = trace(lambda w: 2 * w ** 2, 10.0)
    w = tr.symbols[0]
    assert tr.output == 2 * w ** 2 and tr.gradient() == 4 * w
    assert tr.evaluate(tr.gradient()) == 40.0
    tr = trace(lambda x, y: x ** 2 + 3 * x * y + y ** 2, 2.0, 3.0)
    assert [float(tr.evaluate(g)) for g in tr.gradient()] == [13.0, 12.0]  # not 10 and 13


def test_gradient_shapes_follow_inputs():
    tr = trace(lambda W, b: ((W @ symad.ones(3, dtype=symad.float64)) * b).sum(),
               np.ones((2, 3)), 0.5)
    gW, gb = tr.gradient()
    assert isinstance(gW, sympy.Matrix) and gW.shape == (2, 3)
    assert isinstance(gb, sympy.Expr)
    assert tr.gradient(wrt="b") == gb
    assert str(tr.symbols[1]) == "W[0,1]" and sympy.latex(tr.symbols[1]) == "W_{0,1}"


def test_hessian_of_tiny_mlp_matches_central_differences():
    symad.manual_seed(3)
    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    X = np.array([[0.3, -0.5], [1.1, 0.2], [-0.4, 0.9]])
    Y = np.array([[0.2], [-0.1], [0.5]])
    loss = nn.MSELoss()
    tr = trace(lambda x, y: loss(net(x), y), X, Y, constants=(0, 1))
    params = [p for _, p in net.named_parameters()]
    H = np.array(tr.evaluate(tr.hessian()), dtype=np.float64)
    theta0 = np.concatenate([p._data.reshape(-1) for p in params])

    def eager_grad(theta):
        k = 0
        for p in params:
            n = p._data.size
            p._data = theta[k:k + n].reshape(p._data.shape).copy()
            k += n
        net.zero_grad()
        loss(net(symad.tensor(X)), symad.tensor(Y)).backward()
        return np.concatenate([p.grad._data.reshape(-1) for p in params])

    eps = 1e-5
    fd = np.empty_like(H)
    for j in range(theta0.size):
        e = np.zeros_like(theta0)
        e[j] = eps
        fd[:, j] = (eager_grad(theta0 + e) - eager_grad(theta0 - e)) / (2 * eps)
    eager_grad(theta0)
    assert H.shape == (17, 17)
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fn, at, expected", [
    (lambda x: x.relu(), 0.0, 0.0),                              # relu'(0) = 0
    (lambda x: x.abs(), 0.0, 0.0),                               # abs'(0) = 0
    (lambda x: x.clamp(-1.0, 1.0), 1.0, 0.0),                    # clamp edge gradient 0
    (lambda x: x.clamp(-1.0, 1.0), -1.0, 0.0),                   # (PyTorch 2.14.1)
    (lambda x: x.clamp(-1.0, 1.0), 0.5, 1.0),
    (lambda x: symad.maximum(x, symad.tensor(0.0, dtype=symad.float64)), 0.0, 0.5),  # ties
    (lambda x: symad.stack([x, x * 1, x - 1]).amax(), 0.0, 1.0),  # 2-way tie on one symbol
    (lambda x: symad.where(x > 0, x * x, 3 * x), 0.0, 3.0),
])
def test_kink_conventions_match_eager(fn, at, expected):
    t = symad.tensor(at, dtype=symad.float64, requires_grad=True)
    fn(t).sum().backward()
    tr = trace(lambda x: fn(x).sum(), at)
    assert float(tr.evaluate(tr.gradient())) == expected == float(t.grad._data)


def test_kinks_listed():
    tr = trace(lambda x, y: x.abs() + symad.maximum(x, y) + y.relu(), 1.0, 2.0)
    x, y = tr.symbols
    ks = set(tr.kinks())
    assert {sympy.Eq(x, 0), sympy.Eq(y, 0)} <= ks
    assert sympy.Eq(x, y) in ks or sympy.Eq(y, x) in ks


def test_control_flow_on_traced_value_names_the_line():
    def f(x):
        if x > 0:  # the offending line
            return x
        return -x
    with pytest.raises(symad.TracingError) as ei:
        trace(f, 1.0)
    msg = str(ei.value)
    assert "if x > 0:  # the offending line" in msg and "symad.where" in msg
    assert "test_trace.py" in msg


def test_control_flow_on_shapes_and_concrete_values_works():
    def f(x, n):
        out = x
        for _ in range(int(n)):
            out = out * 2 if x.shape[0] == 3 else out
        return out.sum()
    tr = trace(f, np.ones(3), 2, constants=(1,))
    assert tr.gradient() == sympy.Matrix([4, 4, 4])


def _dag_eval(expr, env, memo=None):
    """float value of an expression, memoized per DAG node (a tree walk would be exponential)."""
    memo = {} if memo is None else memo
    if expr in memo:
        return memo[expr]
    if expr.is_Symbol:
        v = env[expr]
    elif expr.is_Number:
        v = float(expr)
    else:
        a = [_dag_eval(c, env, memo) for c in expr.args]
        v = {sympy.Add: lambda: sum(a), sympy.Mul: lambda: float(np.prod(a)),
             sympy.Pow: lambda: a[0] ** a[1], sympy.sin: lambda: np.sin(a[0]),
             sympy.cos: lambda: np.cos(a[0])}[type(expr)]()
    memo[expr] = v
    return v


def test_reverse_gradient_shares_subexpressions():
    x = sympy.Symbol("x", real=True)
    e = x
    for _ in range(14):  # a tower whose tree has ~2**14 nodes; its DAG ~60
        e = sympy.sin(e) * sympy.cos(e)
    t0 = time.perf_counter()
    (g,) = reverse_gradient(e, [x])
    assert time.perf_counter() - t0 < 5
    assert symad.symbolic.expression_size(g) < 200
    # oracle: the same tower by hand in floats, value and derivative (forward mode)
    v, dv = 0.3, 1.0
    for _ in range(14):
        v, dv = np.sin(v) * np.cos(v), (np.cos(v) ** 2 - np.sin(v) ** 2) * dv
    assert _dag_eval(g, {x: 0.3}) == pytest.approx(dv, rel=1e-9)


def test_symbolic_tensor():
    t = symbolic_tensor("W", (2, 2))
    assert t.shape == (2, 2) and t.dtype == symad.float64
    assert str((t @ t)._data[0, 1]) == "W[0,0]*W[0,1] + W[0,1]*W[1,1]"


# -- batched tracing -------------------------------------------------------------------------

def _linreg_data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = X @ np.array([[2.0], [-3.4]]) + 4.2 + 0.01 * rng.normal(size=(n, 1))
    return X, y


def _linreg_loss(w, b, X, y):  # the seed's squared loss, averaged over the batch
    return ((X @ w + b - y) ** 2 / 2).mean()


def test_batched_linear_regression_is_size_independent_of_n():
    w, b = np.array([[0.1], [-0.2]]), 0.3
    X, y = _linreg_data(1000)
    X10, y10 = _linreg_data(10)
    s10 = trace_batched(_linreg_loss, w, b, X10, y10, batched=("X", "y"))
    # (its time, < 0.2 s at N = 1000, is measured in benchmarks/bench_trace.py, not asserted)
    bt = trace_batched(_linreg_loss, w, b, X, y, batched=("X", "y"))
    assert bt.reduction == "mean" and bt.batch_size == 1000
    X10k, y10k = _linreg_data(10_000)
    s10k = trace_batched(_linreg_loss, w, b, X10k, y10k, batched=("X", "y"))
    assert s10.size() == s10k.size() == bt.size()
    assert s10.per_sample == s10k.per_sample
    # the per-sample term times the reduction reproduces eager value and gradient
    ts = [symad.tensor(a, dtype=symad.float64, requires_grad=True) for a in (w, b)]
    out = _linreg_loss(ts[0], ts[1], symad.tensor(X), symad.tensor(y))
    out.backward()
    assert bt.evaluate() == pytest.approx(float(out._data), rel=1e-10)
    g = bt.evaluate(bt.gradient())
    np.testing.assert_allclose(g, np.concatenate([ts[0].grad._data.reshape(-1),
                                                  ts[1].grad._data.reshape(-1)]), rtol=1e-10)


def test_batched_reductions_and_failure():
    w = np.array([[0.5], [0.25]])
    X = np.ones((7, 2))
    assert trace_batched(lambda w, X: (X @ w).tanh(), w, X, batched=("X",)).reduction == "none"
    assert trace_batched(lambda w, X: (X @ w).sum() * 3, w, X, batched=(1,)).reduction == "sum"
    with pytest.raises(NotBatchSeparable):
        trace_batched(lambda w, X: (X @ w).sum() ** 2, w, X, batched=("X",))
    with pytest.raises(NotBatchSeparable):  # batch-norm-like: mixes samples
        trace_batched(lambda w, X: ((X @ w) - (X @ w).mean()).pow(2).mean(), w, X,
                      batched=("X",))


def test_batched_with_nn_module_closed_over():
    symad.manual_seed(1)
    net = nn.Sequential(nn.Linear(2, 1)).double()
    X, y = _linreg_data(50)
    bt = trace_batched(lambda X, y: nn.MSELoss()(net(X), y), X, y, batched=(True, True))
    assert bt.reduction == "mean"
    assert [str(s) for s in bt.param_symbols] == ["0.weight[0,0]", "0.weight[0,1]", "0.bias[0]"]
    out = nn.MSELoss()(net(symad.tensor(X)), symad.tensor(y))
    assert bt.evaluate() == pytest.approx(float(out._data), rel=1e-10)


# -- custom Function backward ----------------------------------------------------------------

W_GLOBAL = symad.tensor(1.0, requires_grad=True)


class ComputeGradients(symad.autograd.Function):
    """Seed 003: the backward reads the global ``W_GLOBAL`` instead of a saved tensor."""

    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(x)
        return w * x + b

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return (grad_output * x).sum(), grad_output * W_GLOBAL, grad_output.sum()


from seed_functions import Square  # noqa: E402  (seed 003's Function)


def test_trace_function_backward_finds_the_global_read():
    fb = trace_function_backward(ComputeGradients, 2.0, np.array([1.0, 2.0]), 0.5)
    assert fb.input_names == ["w", "x", "b"]
    assert fb.mismatches() == [1]                 # grad_x uses the global, not the traced w
    w = fb.inputs[0]
    g = fb.grad_outputs[0]
    assert fb.expected[1] == g * w                 # what it should have been
    ok = trace_function_backward(Square, np.array([1.0, -2.0]))
    assert ok.mismatches() == []
    assert ok.grads[0] == 2 * ok.inputs[0].multiply_elementwise(ok.grad_outputs[0])


# -- CLI -------------------------------------------------------------------------------------

def test_cli_diff(capsys):
    from symad.cli import main
    assert main(["diff", "x**2 + 3*x*y + y**2", "--wrt", "x", "y", "--at", "x=2", "y=3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["d/dx = 2*x + 3*y = 13", "d/dy = 3*x + 2*y = 12"]
    assert main(["diff", "x**2*y", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["partials"]["x"]["expr"] == "2*x*y" and data["partials"]["y"]["expr"] == "x**2"
    assert main(["diff", "sin(x)", "--latex"]) == 0
    assert capsys.readouterr().out.strip() == r"\frac{\partial f}{\partial x} = \cos{\left(x \right)}"
    assert main(["diff", "x +* "]) == 2


def test_numeric_evaluation_of_nested_piecewise_is_float64():
    """Fuzz finding: the DAG evaluation of a gradient whose conditions hold a Piecewise built its
    0/1 branch constants in the default float32, so 1/6 was rounded (d/dw 0.06250000186 instead
    of eager's 0.0625)."""
    w = np.array([-1.0, 0.5, 0.25])
    x = np.array([[1.0, 0.25, -0.75]])

    def f(w, x):
        return symad.maximum(x, symad.relu(w) ** 3).mean()

    tr = symad.trace(f, w, x, constants=["x"])
    got = [float(tr.evaluate(g)) for g in np.asarray(tr.gradient_arrays()[0]).ravel()]
    W = symad.tensor(w, requires_grad=True)
    f(W, symad.tensor(x)).backward()
    assert got == W.grad.numpy().tolist() == [0.0, 0.0, 0.0625]
    assert symad.get_default_dtype() == symad.float32


def test_power_of_a_sum_over_nested_clamps_traces():
    """Fuzz finding (program 722 of 10,000): ``1 / (c*c + 0.5)`` with ``c`` a clamp of a clamp
    evaluated ``Pow(Piecewise, -1)`` into a Piecewise whose conditions hold a Piecewise, and
    SymPy's piecewise_fold raised AssertionError. The trace builds that node unevaluated; values
    and the gradient equal eager float64 (independent of the trace)."""
    X = np.array([[-1.078, -0.417], [0.564, 0.416], [1.148, -1.399], [0.763, 0.225]])

    def f(s, x):
        c = symad.clamp(symad.clamp(symad.where(-1.0 > x, -1.0, x * 0.5), min=0.0), -0.5, 0.5)
        z = symad.expm1(symad.tanh(symad.sin(x.sum(dim=-1, keepdim=True))))
        return (z / (c * c + 0.5) * s).mean()

    tr = symad.trace(f, -1.4547, X)
    S = symad.tensor(-1.4547, dtype=symad.float64, requires_grad=True)
    ref = f(S, symad.tensor(X))
    ref.backward()
    assert math.isclose(float(tr.evaluate()), ref.item(), rel_tol=1e-12)
    (g,) = tr.gradient(wrt=["s"])
    assert math.isclose(float(tr.evaluate(g)), S.grad.item(), rel_tol=1e-12)
    # and by hand: d/ds of mean(z / (c^2 + 1/2) * s) is mean(z / (c^2 + 1/2))
    c = np.clip(np.clip(np.where(-1.0 > X, -1.0, X * 0.5), 0.0, None), -0.5, 0.5)
    z = np.expm1(np.tanh(np.sin(X.sum(axis=-1, keepdims=True))))
    assert math.isclose(float(tr.evaluate(g)), float((z / (c * c + 0.5)).mean()), rel_tol=1e-12)


def test_atan_of_a_piecewise_traces_its_gradient():
    """Fuzz finding (the stream with the hard activations, 2026-11-26): the derivative of
    ``atan(maximum(minimum(...), atan(...)))`` is ``1/(1 + Piecewise**2)``, whose construction
    fails SymPy's own assertion in piecewise_fold; it surfaced as "no derivative rule for atan".
    The sweep is now rebuilt unevaluated; the gradient equals eager float64's."""
    w0 = np.array([-0.64469421, -1.23295259, 0.33241645])
    x0 = np.array([[-0.03360408, 0.25444558, 0.73757041], [1.0343883, 1.00951266, -0.8720597],
                   [-0.05056685, 0.91033387, -0.91665262]])

    def f(w, s, x):
        two = symad.tensor(2.0, dtype=x.dtype)
        inner = symad.minimum(symad.where(w > s, w, s * 0.5), symad.tensor(-1.0, dtype=x.dtype)
                              / (symad.tensor(0.25, dtype=x.dtype) + 0.5))
        return symad.atan(symad.maximum(inner, symad.atan(symad.where(x > two, x, two * 0.5)))
                          ).sum()

    tr = symad.trace(f, w0, -1.17805326, x0)
    W = symad.tensor(w0, dtype=symad.float64, requires_grad=True)
    X = symad.tensor(x0, dtype=symad.float64, requires_grad=True)
    ref = f(W, symad.tensor(-1.17805326, dtype=symad.float64), X)
    ref.backward()
    assert math.isclose(float(tr.evaluate()), ref.item(), rel_tol=1e-12)
    gw, gx = tr.gradient(wrt=["w", "x"])
    for g, want in ((gw, W.grad.numpy()), (gx, X.grad.numpy())):
        got = np.array([float(tr.evaluate(e)) for e in np.ravel(np.asarray(g, dtype=object))])
        np.testing.assert_allclose(got, want.ravel(), rtol=1e-12, atol=1e-15)


def _trace_and_compile_equal_eager(f, w0, s0, x0):
    """Value and d/dw, d/ds of ``f(w, s, x)`` by the trace and by ``symad.compile`` == eager
    float64 (the oracle)."""
    W = symad.tensor(w0, requires_grad=True)
    S = symad.tensor(s0, dtype=symad.float64, requires_grad=True)
    ref = f(W, S, symad.tensor(x0))
    ref.backward()
    tr = symad.trace(f, w0, s0, x0)
    gw, gs = tr.gradient(wrt=["w", "s"])
    assert math.isclose(float(tr.evaluate()), ref.item(), rel_tol=1e-12)
    np.testing.assert_allclose(np.asarray(tr.evaluate(gw), np.float64).ravel(), W.grad.numpy(),
                               rtol=1e-12, atol=1e-15)
    assert math.isclose(float(tr.evaluate(gs)), S.grad.item(), rel_tol=1e-12)
    W2 = symad.tensor(w0, requires_grad=True)
    S2 = symad.tensor(s0, dtype=symad.float64, requires_grad=True)
    out = symad.compile(f)(W2, S2, symad.tensor(x0))
    out.backward()
    assert math.isclose(out.item(), ref.item(), rel_tol=1e-12)
    np.testing.assert_allclose(W2.grad.numpy(), W.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_power_of_piecewise_with_piecewise_conditions_differentiates_and_compiles():
    """Fuzz finding: d/db of ``b**3`` with ``b = where(minimum(s, x) > w/0.5, ...)`` made SymPy
    distribute the power into a Piecewise whose conditions hold a Piecewise and assert in
    piecewise_fold (reverse sweep), and sympy.cse did the same in codegen. The sweep retries with
    evaluation off; codegen lowers without cse. Trace and compile equal eager float64."""
    w0 = np.array([0.035464875400066376, 1.351391077041626, -1.0675212144851685])
    s0 = 0.705288290977478
    x0 = np.array([[-0.7621010541915894, 0.29658523201942444, -0.4157973825931549]])

    def f(w, s, x):
        zero = symad.tensor(0.0, dtype=x.dtype)
        a = (((x * x + 0.5) ** x) * ((x * x + 0.5) ** x) + 0.5) ** symad.minimum(x, s)
        c = w / (zero * zero + 0.5)
        b = symad.where(symad.minimum(s, x) > c, symad.minimum(s, x), c * 0.5)
        return (symad.where(a > b, a, b * 0.5) ** 3).sum()

    _trace_and_compile_equal_eager(f, w0, s0, x0)


def test_mean_over_piecewise_with_piecewise_conditions_traces():
    """Fuzz finding: ``mean`` of elements that are a Piecewise whose conditions hold a Piecewise
    (where(log1p(...) > maximum(maximum(s, w), 2 + x), ...) ** 2) made SymPy's Mul flattening
    assert in piecewise_fold; the op's symbolic forward is rebuilt with evaluation off. Trace and
    compile equal eager float64."""
    w0 = np.array([-1.3596069812774658, -1.3653109073638916, -0.5224372744560242])
    s0 = 0.9805330634117126
    x0 = np.array([[-0.7151635885238647, -0.6045265793800354, 0.9426771998405457],
                   [-1.2242522239685059, 0.30030158162117004, 0.6856815814971924],
                   [-0.9362967610359192, -1.3345601558685303, -0.6750919222831726]])

    def f(w, s, x):
        a = symad.log1p(symad.sqrt(s * s + 0.25) * symad.sqrt(s * s + 0.25))
        b = symad.maximum(symad.maximum(s, w), symad.tensor(2.0, dtype=x.dtype) + x)
        return (symad.where(a > b, a, b * 0.5) ** 2).mean()

    _trace_and_compile_equal_eager(f, w0, s0, x0)


def test_gradient_with_if_then_else_in_a_piecewise_condition_evaluates():
    """Fuzz finding: the gradient of where(minimum(x, 0) > atan(expm1(tanh(w))), ...) holds
    ``ITE`` inside a Piecewise condition; the DAG evaluator had no ITE handler and fell back to
    lambdify with cse, which dropped a branch (d/dw came out [0, 0, 0]; eager [1/6, 0.0551, 1/6])."""
    w0, x0 = np.array([0.0, 1.0, 0.0]), np.array([[1.0, 1.0, 0.25]])

    def f(w, x):
        zero = symad.tensor(0.0, dtype=x.dtype)
        a = symad.atan(symad.expm1(symad.tanh(w)))
        return symad.atan(symad.where(symad.minimum(x, zero) > a, symad.minimum(x, zero),
                                      a * 0.5)).mean()

    W = symad.tensor(w0, requires_grad=True)
    f(W, symad.tensor(x0)).backward()
    tr = symad.trace(f, w0, x0)
    (gw,) = tr.gradient(wrt=["w"])
    got = np.asarray(tr.evaluate(gw), np.float64).ravel()
    np.testing.assert_allclose(got, W.grad.numpy(), rtol=1e-12)
    # by hand: d/dw_i of atan(a_i / 2) / 3 at a_i = atan(expm1(tanh(w_i))), w_i = 0 -> 1/6
    assert math.isclose(got[0], 1 / 6, rel_tol=1e-12) and math.isclose(got[2], 1 / 6,
                                                                        rel_tol=1e-12)
