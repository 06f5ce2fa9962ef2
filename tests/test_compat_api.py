"""PyTorch API pieces of issue 17: legacy loss arguments, smooth L1 / Huber losses, LazyLinear,
allclose / isclose / equal. Oracles: PyTorch's documented mapping and formulas, hand-computed
values, numpy."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symad
from symad import nn
from symad.nn import functional as F

# -- legacy size_average= / reduce= -----------------------------------------------------------
# PyTorch's _Reduction.legacy_get_string: a missing legacy argument counts as True
LEGACY = [(None, None, None), (True, None, "mean"), (False, None, "sum"), (None, True, "mean"),
          (None, False, "none"), (True, True, "mean"), (False, True, "sum"),
          (True, False, "none"), (False, False, "none")]


@pytest.mark.parametrize("size_average,reduce,expected", LEGACY)
def test_legacy_arguments_on_loss_modules(size_average, reduce, expected):
    for cls in (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.BCELoss, nn.BCEWithLogitsLoss,
                nn.CrossEntropyLoss, nn.NLLLoss):
        if expected is None:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                assert cls(size_average=size_average, reduce=reduce,
                           reduction="sum").reduction == "sum"
            continue
        with pytest.warns(UserWarning, match=f"size_average and reduce args will be deprecated, "
                                             f"please use reduction='{expected}' instead."):
            loss = cls(size_average=size_average, reduce=reduce, reduction="mean")
        assert loss.reduction == expected, cls


def test_legacy_arguments_on_functional_losses():
    x = symad.tensor([[0.5, 2.0], [-1.0, 3.5]])
    y = symad.tensor([[0.0, 1.0], [1.0, 1.0]])
    d2 = ((x - y) ** 2).numpy()
    with pytest.warns(UserWarning, match="reduction='sum'"):
        assert F.mse_loss(x, y, size_average=False).item() == pytest.approx(d2.sum())
    with pytest.warns(UserWarning, match="reduction='none'"):
        np.testing.assert_allclose(F.mse_loss(x, y, reduce=False).numpy(), d2)
    with pytest.warns(UserWarning, match="reduction='sum'"):  # positional, PyTorch's order
        assert F.l1_loss(x, y, False).item() == pytest.approx(np.abs(x.numpy() - y.numpy()).sum())
    t = symad.tensor([1, 0])
    with pytest.warns(UserWarning, match="reduction='sum'"):
        ce = F.cross_entropy(x, t, None, False)
    logp = x.numpy() - np.log(np.exp(x.numpy()).sum(1, keepdims=True))
    assert ce.item() == pytest.approx(-(logp[0, 1] + logp[1, 0]), rel=1e-6)
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert F.nll_loss(symad.log_softmax(x, 1), t, reduce=False).shape == (2,)
    p = symad.tensor([0.25, 0.5])
    with pytest.warns(UserWarning, match="reduction='sum'"):
        F.binary_cross_entropy(p, symad.tensor([1.0, 0.0]), None, False)


def test_unsupported_loss_options_are_clear_errors():
    # cross_entropy / nll_loss take weight=, ignore_index and label_smoothing (test_nn.py);
    # what is left says so
    with pytest.raises(NotImplementedError, match="weight="):
        nn.BCELoss(weight=symad.ones(3))
    with pytest.raises(NotImplementedError, match="weight="):
        F.binary_cross_entropy(symad.rand(3), symad.rand(3), weight=symad.ones(3))
    with pytest.raises(NotImplementedError, match=r"\(N, C\) or \(C,\) inputs"):
        F.cross_entropy(symad.randn(2, 3, 4), symad.tensor([[0, 2, 1, -100], [1, 1, 0, 2]]))
    with pytest.raises(NotImplementedError, match="pos_weight="):
        nn.BCEWithLogitsLoss(pos_weight=symad.ones(3))


# -- smooth L1 / Huber ------------------------------------------------------------------------

def test_smooth_l1_hand_values_and_grad_fn():
    x = symad.tensor([0.2, 1.5, -3.0], requires_grad=True)
    loss = F.smooth_l1_loss(x, symad.zeros(3))
    # (0.5 * 0.04 + (1.5 - 0.5) + (3 - 0.5)) / 3
    assert loss.item() == pytest.approx(3.52 / 3, rel=1e-7)
    assert loss.grad_fn.name() == "SmoothL1LossBackward0"
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.2 / 3, 1 / 3, -1 / 3], rtol=1e-6)
    # beta: quadratic zone widens to |d| < 2
    assert nn.SmoothL1Loss(beta=2.0)(x, symad.zeros(3)).item() == pytest.approx(
        (0.5 * 0.04 / 2 + 0.5 * 2.25 / 2 + (3 - 1)) / 3, rel=1e-7)
    # beta = 0 is the L1 loss
    assert F.smooth_l1_loss(x, symad.zeros(3), beta=0.0, reduction="sum").item() == \
        pytest.approx(4.7, rel=1e-7)
    with pytest.raises(RuntimeError, match="negative values for beta"):
        F.smooth_l1_loss(x, x, beta=-1.0)


def test_huber_hand_values_and_relation_to_smooth_l1():
    x = symad.tensor([0.2, 1.5, -3.0], dtype=symad.float64, requires_grad=True)
    y = symad.zeros(3, dtype=symad.float64)
    h = nn.HuberLoss(delta=1.5, reduction="none")(x, y)
    np.testing.assert_allclose(h.detach().numpy(), [0.02, 1.5 * (1.5 - 0.75), 1.5 * (3 - 0.75)],
                               rtol=1e-12)
    assert h.grad_fn.name() == "HuberLossBackward0"
    # huber(delta) == delta * smooth_l1(beta=delta)
    s = F.smooth_l1_loss(x, y, beta=1.5, reduction="none")
    np.testing.assert_allclose(h.detach().numpy(), 1.5 * s.detach().numpy(), rtol=1e-12)
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.2, 1.5, -1.5], rtol=1e-12)
    with pytest.raises(RuntimeError, match="non-positive values for delta"):
        F.huber_loss(x, y, delta=0.0)


# -- LazyLinear -------------------------------------------------------------------------------

def _lazy(*args, **kw):
    with pytest.warns(UserWarning, match="Lazy modules are a new feature"):
        return nn.LazyLinear(*args, **kw)


def test_lazy_linear_infers_in_features_and_becomes_linear():
    layer = _lazy(3)
    assert repr(layer) == "LazyLinear(in_features=0, out_features=3, bias=True)"
    params = list(layer.parameters())
    assert [type(p).__name__ for p in params] == ["UninitializedParameter"] * 2
    assert layer.has_uninitialized_params()
    with pytest.raises(RuntimeError, match="Can't access the shape of an uninitialized"):
        layer.weight.shape
    opt = symad.optim.SGD(layer.parameters(), lr=0.5)  # built before the first call
    symad.manual_seed(0)
    x = symad.randn(4, 5)
    out = layer(x)
    assert type(layer) is nn.Linear and layer.in_features == 5
    assert repr(layer) == "Linear(in_features=5, out_features=3, bias=True)"
    assert out.shape == (4, 3)
    assert [type(p) for p in layer.parameters()] == [nn.Parameter, nn.Parameter]
    assert list(layer.parameters())[0] is params[0]
    w = layer.weight.detach().numpy().copy()
    b = layer.bias.detach().numpy().copy()
    bound = 1 / np.sqrt(5)  # Linear's init, with in_features = 5
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound) and np.any(w != 0)
    np.testing.assert_allclose(out.detach().numpy(), x.numpy() @ w.T + b, rtol=1e-6)
    out.sum().backward()
    opt.step()  # the optimizer updates the materialized parameters
    np.testing.assert_allclose(layer.weight.detach().numpy(),
                               w - 0.5 * np.tile(x.numpy().sum(0), (3, 1)), rtol=1e-5)


def test_lazy_linear_without_bias_and_in_sequential():
    net = nn.Sequential(_lazy(4, bias=False), nn.ReLU(), _lazy(1))
    y = net(symad.ones(2, 7))
    assert y.shape == (2, 1) and net[0].bias is None
    assert [tuple(p.shape) for p in net.parameters()] == [(4, 7), (1, 4), (1,)]


def test_lazy_linear_loads_a_state_dict():
    symad.manual_seed(1)
    src = nn.Sequential(nn.Linear(3, 2))
    dst = nn.Sequential(_lazy(2))
    dst.load_state_dict(src.state_dict())
    assert type(dst[0]) is nn.Linear and dst[0].in_features == 3
    x = symad.randn(5, 3)
    np.testing.assert_array_equal(dst(x).detach().numpy(), src(x).detach().numpy())


# -- allclose / isclose / equal ---------------------------------------------------------------

def test_isclose_matches_numpy_rule():
    a = np.array([1.0, 1e10, 1e-8, np.inf, np.nan, -np.inf, 0.0])
    b = np.array([1.0 + 1e-6, 1.00001e10, 1e-9, np.inf, np.nan, np.inf, 1e-9])
    for equal_nan in (False, True):
        got = symad.isclose(symad.tensor(a), symad.tensor(b), equal_nan=equal_nan)
        assert got.dtype == symad.bool
        np.testing.assert_array_equal(got.numpy(), np.isclose(a, b, equal_nan=equal_nan))
    got = symad.isclose(symad.tensor([[1.0], [2.0]]), symad.tensor([1.0, 2.0, 1.0 + 2e-5]),
                        rtol=0, atol=1e-5)  # broadcasting
    assert got.tolist() == [[True, False, False], [False, True, False]]


def test_allclose_and_equal():
    assert symad.allclose(symad.tensor([10000., 1e-08]), symad.tensor([10000.1, 1e-09]))
    # PyTorch's documented examples
    assert not symad.allclose(symad.tensor([10000., 1e-07]), symad.tensor([10000.1, 1e-08]))
    assert not symad.allclose(symad.tensor([1.0, float("nan")]), symad.tensor([1.0, float("nan")]))
    assert symad.allclose(symad.tensor([1.0, float("nan")]), symad.tensor([1.0, float("nan")]),
                          equal_nan=True)
    assert symad.tensor([1.0, 2.0]).allclose(symad.tensor([1.0, 2.0000001]))
    assert symad.tensor([1.0]).isclose(symad.tensor([1.1])).tolist() == [False]
    assert symad.equal(symad.tensor([1, 2]), symad.tensor([1, 2]))
    assert not symad.equal(symad.tensor([1, 2]), symad.tensor([[1, 2]]))
    assert not symad.equal(symad.tensor([float("nan")]), symad.tensor([float("nan")]))
    with pytest.raises(RuntimeError, match="float32 did not match float64"):
        symad.allclose(symad.ones(2), symad.ones(2, dtype=symad.float64))
    with pytest.raises(TypeError, match="argument 'other' \\(position 2\\) must be Tensor"):
        symad.allclose(symad.ones(2), 1.0)
    with pytest.raises(RuntimeError, match="must match the size"):
        symad.isclose(symad.ones(2), symad.ones(3))


def test_lazy_linear_under_compile():
    """A lazy model handed to symad.compile before its first call: the compiled call
    materializes it (once) and matches eager."""
    symad.manual_seed(0)
    net = nn.Sequential(_lazy(4), nn.Tanh(), _lazy(1))
    x = symad.randn(16, 3)
    out = symad.compile(net)(x)
    assert type(net[0]) is nn.Linear and net[0].in_features == 3
    np.testing.assert_allclose(out.detach().numpy(), net(x).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
