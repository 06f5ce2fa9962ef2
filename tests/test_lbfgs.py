"""LBFGS (PyTorch's algorithm) against mathematical oracles: the hand-computed first step, the
exact minimizer of a quadratic (numpy.linalg.solve), Rosenbrock's minimum (1, 1)."""
from __future__ import annotations

import numpy as np
import pytest

import symad
from symad import optim


def _quadratic(n=5, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    A = m @ m.T + n * np.eye(n)  # symmetric positive definite
    b = rng.normal(size=n)
    return A, b


def _closure(opt, x, f):
    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss
    return closure


def test_first_iteration_is_a_scaled_gradient_step():
    # state n_iter == 1: d = -g, t = min(1, 1 / |g|_1) * lr
    x = symad.tensor([3.0, -1.0], dtype=symad.float64, requires_grad=True)
    opt = optim.LBFGS([x], lr=0.5, max_iter=1)
    loss = opt.step(_closure(opt, x, lambda x: (x ** 2).sum()))
    g = np.array([6.0, -2.0])
    np.testing.assert_allclose(x.detach().numpy(), [3.0, -1.0] - min(1, 1 / 8) * 0.5 * g,
                               rtol=1e-15)
    assert loss.item() == 10.0
    assert opt.state[x]["func_evals"] == 1 and opt.state[x]["n_iter"] == 1


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_quadratic_reaches_the_exact_minimizer(line_search_fn):
    A, b = _quadratic()
    At, bt = symad.tensor(A, dtype=symad.float64), symad.tensor(b, dtype=symad.float64)
    x = symad.zeros(5, dtype=symad.float64, requires_grad=True)
    opt = optim.LBFGS([x], lr=1 if line_search_fn else 0.1, max_iter=200,
                      line_search_fn=line_search_fn, tolerance_grad=1e-12,
                      tolerance_change=1e-15)
    f = lambda x: 0.5 * (x @ (At @ x)) - bt @ x  # noqa: E731
    for _ in range(5):
        opt.step(_closure(opt, x, f))
    # stops once the loss changes by < tolerance_change: x is then within ~1e-7 (relative)
    np.testing.assert_allclose(x.detach().numpy(), np.linalg.solve(A, b), rtol=1e-6, atol=1e-9)


def test_rosenbrock_with_strong_wolfe_in_two_parameters():
    a = symad.tensor([-1.2], dtype=symad.float64, requires_grad=True)
    b = symad.tensor([1.0], dtype=symad.float64, requires_grad=True)
    opt = optim.LBFGS([a, b], line_search_fn="strong_wolfe", max_iter=100, history_size=10)
    f = lambda _: ((1 - a) ** 2 + 100 * (b - a ** 2) ** 2).sum()  # noqa: E731
    for _ in range(3):
        opt.step(_closure(opt, None, f))
    assert a.item() == pytest.approx(1.0, abs=1e-5) and b.item() == pytest.approx(1.0, abs=1e-5)
    assert opt.state[a]["func_evals"] < 150


def test_float32_parameters_and_a_model():
    symad.manual_seed(0)
    X = symad.randn(20, 3)
    y = X @ symad.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    model = symad.nn.Linear(3, 1)
    opt = optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe")
    loss_fn = symad.nn.MSELoss()

    def closure():
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        return loss
    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(model.weight.detach().numpy(), [[1.0, -2.0, 0.5]], atol=1e-4)
    assert model.weight.dtype == symad.float32


def test_errors():
    x = symad.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        optim.LBFGS([{"params": [x]}, {"params": [symad.zeros(1, requires_grad=True)]}])
    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        opt = optim.LBFGS([x], line_search_fn="backtracking")
        opt.step(lambda: (x * x).sum())
    assert optim.LBFGS([x]).defaults["max_eval"] == 25  # max_iter * 5 // 4


def test_state_dict_saves_and_resumes_exactly():
    import io
    A, b = _quadratic(seed=1)
    At, bt = symad.tensor(A, dtype=symad.float64), symad.tensor(b, dtype=symad.float64)
    f = lambda x: 0.5 * (x @ (At @ x)) - bt @ x  # noqa: E731

    def run(x, opt, n):
        for _ in range(n):
            opt.step(_closure(opt, x, f))

    x = symad.zeros(5, dtype=symad.float64, requires_grad=True)
    opt = optim.LBFGS([x], max_iter=2, history_size=3)
    run(x, opt, 2)
    buf = io.BytesIO()
    symad.save({"x": x.detach(), "opt": opt.state_dict()}, buf)
    run(x, opt, 2)
    buf.seek(0)
    ck = symad.load(buf)  # weights_only: the state is tensors and numbers
    x2 = ck["x"].clone().requires_grad_()
    opt2 = optim.LBFGS([x2], max_iter=2, history_size=3)
    opt2.load_state_dict(ck["opt"])
    run(x2, opt2, 2)
    assert x2.tolist() == x.tolist()
