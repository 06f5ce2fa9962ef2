"""check_gradient: seed 002, identities needing simplification, tiny errors, kinks, tensors.

Oracles: hand-derived derivatives (2x+3y, 3x+2y, ...) and exact rational arithmetic (fractions),
independent of the code under test. Every "not ok" must carry a counterexample whose two values
really differ, and the exact value at it must match the independent oracle.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import symad
from symad import check_gradient

F = "x**2 + 3*x*y + y**2"


def oracle_grad(x, y):  # independent: hand derivative of F
    return 2 * x + 3 * y, 3 * x + 2 * y


def _frac(v) -> Fraction:
    return Fraction(int(v.p), int(v.q))


def assert_real_counterexample(item, oracle=None):
    ce = item.counterexample
    assert ce is not None, f"{item.name}: not ok without a counterexample"
    assert ce.exact != ce.claimed
    if oracle is not None:
        pt = {k: _frac(v) for k, v in ce.items()}
        assert _frac(ce.exact) == oracle(pt)


def test_seed002_values_at_point():
    r = check_gradient(F, {"x": 10, "y": 13}, at={"x": 2, "y": 3})
    assert not r.ok and r.proved
    assert str(r["x"].exact) == "2*x + 3*y" and str(r["y"].exact) == "3*x + 2*y"
    assert (r["x"].exact_value, r["y"].exact_value) == oracle_grad(2, 3) == (13, 12)
    assert r["x"].equal is False and r["y"].equal is False
    for it in r.items:
        assert_real_counterexample(it)
        assert dict(it.counterexample) == {"x": 2, "y": 3}
    assert "∂f/∂x" in r["y"].hint  # the claimed 13 is ∂f/∂x at (2, 3)
    text = str(r)
    assert "13" in text and "12" in text and "WRONG" in text


def test_seed002_formulas_right_and_wrong():
    r = check_gradient(F, {"x": "2*x + 3*y", "y": "3*x + 2*y"})
    assert r.ok and r.proved and r.status == "proved right"
    r = check_gradient(F, {"x": "2*x + 3*y", "y": "3*x + 3*y"})
    assert not r.ok and r.proved
    assert r["x"].equal is True and r["y"].equal is False
    assert_real_counterexample(r["y"], lambda p: oracle_grad(p["x"], p["y"])[1])
    assert str(r["y"].residual) == "-y"


def test_claimed_values_right_at_point():
    r = check_gradient(F, {"x": 13, "y": 12}, at={"x": 2, "y": 3})
    assert r.ok and r.proved


@pytest.mark.parametrize("f, claim", [
    ("log(1 + exp(x))", "sigmoid(x)"),          # softplus' = sigmoid
    ("log(1 + exp(x))", "1/(1 + exp(-x))"),
    ("tanh(x)", "sech(x)**2"),
    ("tanh(x)", "1 - tanh(x)**2"),
    ("sin(x)**2", "sin(2*x)"),
    ("sigmoid(x)", "sigmoid(x)*(1 - sigmoid(x))"),
])
def test_identities_need_simplification(f, claim):
    r = check_gradient(f, {"x": claim})
    assert r.ok and r.proved, str(r)


@pytest.mark.parametrize("f, claim", [
    ("tanh(x)", "sech(x)"),
    ("sin(x)**2", "cos(2*x)"),
    ("log(1 + exp(x))", "sigmoid(-x)"),
])
def test_wrong_transcendental_claims(f, claim):
    r = check_gradient(f, {"x": claim})
    assert not r.ok and r.proved
    it = r.items[0]
    assert_real_counterexample(it)
    # independent float check that the two values at the witness really differ
    assert abs(float(it.counterexample.exact) - float(it.counterexample.claimed)) > 1e-6


def test_off_by_1e_9_is_proved_wrong():
    r = check_gradient(F, {"x": "2*x + 3*y + 1e-9", "y": "3*x + 2*y"})
    assert not r.ok and r.proved
    it = r["x"]
    assert_real_counterexample(it, lambda p: oracle_grad(p["x"], p["y"])[0])
    assert _frac(it.counterexample.exact) - _frac(it.counterexample.claimed) == Fraction(-1, 10**9)
    assert "1/1000000000" in it.hint


def test_sign_flip_and_factor_hints():
    r = check_gradient("x**3", {"x": "-3*x**2"})
    assert not r.ok and "sign flip" in r.items[0].hint
    r = check_gradient("x**3", {"x": "x**2"})
    assert not r.ok and "1/3" in r.items[0].hint
    assert_real_counterexample(r.items[0], lambda p: 3 * p["x"] ** 2)


def test_sympy_expression_inputs():
    import sympy as sp
    x, y = sp.symbols("x y")  # not declared real: realified internally
    r = check_gradient(x ** 2 * y, {"x": 2 * x * y, "y": x ** 2})
    assert r.ok and r.proved


# -- kinks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("f, claim", [
    ("abs(x)", "sign(x)"),
    ("abs(x)", "x/abs(x)"),                     # undefined at 0: a measure-zero set
    ("relu(x)", "Heaviside(x)"),                # 1/2 at 0
    ("relu(x)", "Piecewise((1, x >= 0), (0, True))"),
    ("relu(x)", "Heaviside(x, 0)"),
])
def test_kinks_equal_almost_everywhere(f, claim):
    r = check_gradient(f, {"x": claim})
    assert r.ok, str(r)


@pytest.mark.parametrize("claim", ["x/abs(x)", "Heaviside(x)"])
def test_kink_only_difference_is_hinted(claim):
    f = "abs(x)" if "abs" in claim else "relu(x)"
    r = check_gradient(f, {"x": claim})
    assert r.ok
    assert "measure-zero" in r.items[0].hint


@pytest.mark.parametrize("f, claim, oracle", [
    ("abs(x)", "1", lambda p: 1 if p["x"] > 0 else -1),
    ("relu(x)", "1", lambda p: 1 if p["x"] > 0 else 0),
    ("relu(x)", "Heaviside(-x)", lambda p: 1 if p["x"] > 0 else 0),
])
def test_kinks_wrong_claims_caught_off_the_kink(f, claim, oracle):
    r = check_gradient(f, {"x": claim})
    assert not r.ok and r.proved
    it = r.items[0]
    assert_real_counterexample(it, oracle)
    assert it.counterexample["x"] != 0  # a witness on the kink would prove nothing


def test_max_tie_is_a_kink():
    r = check_gradient("Max(x, y)", {"x": "Heaviside(x - y)"})
    assert r.ok


# -- tensors ------------------------------------------------------------------------------------

def _lsq(X, w, y):
    r = X @ w - y
    return (r * r).sum() / 2


def _numeric_grad_w(X, w, y):  # independent oracle with numpy
    return X.T @ (X @ w - y)


@pytest.fixture
def lsq_inputs():
    g = np.random.default_rng(1)
    return (symad.tensor(g.standard_normal((3, 2))), symad.tensor(g.standard_normal(2)),
            symad.tensor(g.standard_normal(3)))


def test_least_squares_right_gradient_proved(lsq_inputs):
    r = check_gradient(_lsq, lambda X, w, y: (X.t() @ (X @ w - y),), wrt=["w"], inputs=lsq_inputs)
    assert r.ok and r.proved
    assert [it.name for it in r.items] == ["w[0]", "w[1]"]


def test_least_squares_all_inputs(lsq_inputs):
    def right(X, w, y):
        res = X @ w - y
        return symad.outer(res, w), X.t() @ res, -res
    r = check_gradient(_lsq, right, inputs=lsq_inputs)
    assert r.ok and r.proved and len(r.items) == 6 + 2 + 3


def test_least_squares_transposed_claim(lsq_inputs):
    r = check_gradient(_lsq, lambda X, w, y: (symad.outer(w, X @ w - y),), wrt=["X"],
                       inputs=lsq_inputs)
    assert not r.ok and r.proved
    it = r["X"]
    assert "transposed" in it.hint
    ce = it.counterexample
    assert ce is not None
    # the values at the counterexample: exact is the numpy oracle's outer(r, w); claimed its T
    names = list(ce.keys())
    vals = {k: float(v) for k, v in ce.items()}
    X = np.array([[vals[f"X[{i},{j}]"] for j in range(2)] for i in range(3)])
    w = np.array([vals[f"w[{j}]"] for j in range(2)])
    y = np.array([vals[f"y[{i}]"] for i in range(3)])
    np.testing.assert_allclose(np.array(ce.exact, dtype=float), np.outer(X @ w - y, w))
    np.testing.assert_allclose(np.array(ce.claimed, dtype=float), np.outer(X @ w - y, w).T)
    assert len(names) == 11


def test_least_squares_square_transposed_result():
    g = np.random.default_rng(2)
    X, w, y = (symad.tensor(g.standard_normal((2, 2))), symad.tensor(g.standard_normal(2)),
               symad.tensor(g.standard_normal(2)))

    def grad_X_T(X, w, y):
        return (symad.outer(w, X @ w - y),)  # square: same shape, transposed values
    r = check_gradient(_lsq, grad_X_T, wrt=["X"], inputs=(X, w, y))
    assert not r.ok
    wrong = [it for it in r.items if it.equal is False]
    assert wrong and all("transposed" in it.hint for it in wrong)
    for it in wrong:
        assert_real_counterexample(it)


def test_wrong_w_gradient_counterexample_matches_numpy(lsq_inputs):
    r = check_gradient(_lsq, lambda X, w, y: (X.t() @ (X @ w + y),), wrt=["w"], inputs=lsq_inputs)
    assert not r.ok and r.proved
    for it in r.items:
        ce = it.counterexample
        assert ce is not None
        vals = {k: float(v) for k, v in ce.items()}
        X = np.array([[vals[f"X[{i},{j}]"] for j in range(2)] for i in range(3)])
        w = np.array([vals[f"w[{j}]"] for j in range(2)])
        y = np.array([vals[f"y[{i}]"] for i in range(3)])
        k = int(it.name[2])
        assert float(ce.exact) == pytest.approx(_numeric_grad_w(X, w, y)[k])


def test_broadcast_missing_sum_hint():
    b = symad.tensor(0.5)
    x = symad.tensor([1.0, 2.0, 3.0])
    r = check_gradient(lambda x, b: ((x + b) ** 2).sum(), lambda x, b: (2 * (x + b),),
                       wrt=["b"], inputs=(x, b))
    assert not r.ok and "missing sum" in r["b"].hint
    assert r["b"].counterexample is not None


def test_report_renderings():
    r = check_gradient(F, {"x": "2*x + 3*y", "y": "3*x + 3*y"})
    assert "counterexample" in str(r) and "proved wrong" in str(r)
    assert r._repr_latex_().startswith("$") and "\\frac" in r._repr_latex_()
    assert "<table>" in r._repr_html_()
    d = r.to_dict()
    assert d["ok"] is False and d["items"][1]["counterexample"]["point"]


def test_not_ok_always_has_counterexample():
    cases = [(F, {"x": "2*x", "y": "2*y"}), ("exp(x)", {"x": "exp(x)*(1 + 1e-9)"}),
             ("sqrt(x)", {"x": "1/sqrt(x)"}), ("log(x)", {"x": "1/x**2"})]
    for f, c in cases:
        r = check_gradient(f, c)
        assert not r.ok
        for it in r.items:
            if not it.ok:
                assert_real_counterexample(it)


@pytest.mark.parametrize("f, claim, ok", [
    ("abs(x)", 1, True), ("abs(x)", -1, True), ("abs(x)", 0, True), ("abs(x)", 2, False),
    ("relu(x)", 1, True), ("relu(x)", 0.5, True), ("relu(x)", -1, False),
])
def test_value_claims_at_a_kink(f, claim, ok):
    # at x = 0 f is not differentiable: any value between the one-sided derivatives is accepted
    # (oracle: abs has -1/+1, relu 0/+1 there); anything else is wrong, with the point as witness
    r = check_gradient(f, {"x": claim}, at={"x": 0})
    assert r.ok is ok
    assert "not differentiable" in r.items[0].hint
    if not ok:
        assert dict(r.items[0].counterexample) == {"x": 0}


def test_numeric_only_verdict_is_labelled():
    r = check_gradient("x", {"x": "1 + asinh(x) - log(x + sqrt(x**2 + 1))"})
    assert r.ok and not r.proved and r.status == "right (not proved)"
    assert "not proved" in str(r)


def test_square_matrix_used_where_transpose_needed():
    g = np.random.default_rng(3)
    X, w, y = (symad.tensor(g.standard_normal((2, 2))), symad.tensor(g.standard_normal(2)),
               symad.tensor(g.standard_normal(2)))
    r = check_gradient(_lsq, lambda X, w, y: (X @ (X @ w - y),), wrt=["w"], inputs=(X, w, y))
    assert not r.ok and r.proved
    for it in r.items:
        assert "X.T is needed" in it.hint
        assert_real_counterexample(it)
    # the right one, for contrast (no hint can rescue a false "ok")
    assert check_gradient(_lsq, lambda X, w, y: (X.t() @ (X @ w - y),), wrt=["w"],
                          inputs=(X, w, y)).ok


@pytest.mark.parametrize("f, claim, oracle", [
    # a branch far from the simple sample points must still be searched (no false "ok")
    ("Piecewise((x, x < 1000), (2*x, True))", "1", lambda p: 1 if p["x"] < 1000 else 2),
    ("Piecewise((x**2, x > -500), (0, True))", "2*x", lambda p: 2 * p["x"] if p["x"] > -500 else 0),
])
def test_far_piecewise_branch_is_searched(f, claim, oracle):
    r = check_gradient(f, {"x": claim})
    assert not r.ok and r.proved
    assert_real_counterexample(r.items[0], oracle)


def test_far_piecewise_branch_right_claim():
    r = check_gradient("Piecewise((x, x < 1000), (2*x, True))",
                       {"x": "Piecewise((1, x < 1000), (2, True))"})
    assert r.ok and r.proved


def test_callable_claim_for_formula_like_a_backward():
    right = check_gradient(F, lambda x, y: (2 * x + 3 * y, 3 * x + 2 * y))
    assert right.ok and right.proved
    wrong = check_gradient(F, lambda x, y: (2 * x + 3 * y, 3 * x + 3 * y))
    assert not wrong.ok and wrong["x"].ok and not wrong["y"].ok
    assert_real_counterexample(wrong["y"], lambda p: oracle_grad(p["x"], p["y"])[1])


def test_callable_f_with_scalars():
    def f(x, y):
        return x ** 2 + 3 * x * y + y ** 2
    r = check_gradient(f, {"x": "2*x + 3*y", "y": "3*x + 2*y"})
    assert r.ok and r.proved
    r = check_gradient(f, {"x": 10, "y": 13}, at={"x": 2, "y": 3})
    assert (r["x"].exact_value, r["y"].exact_value) == (13, 12) and not r.ok
