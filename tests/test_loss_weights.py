"""cross_entropy / nll_loss with class weights and ignored targets under the compile paths: the
values and gradients themselves are checked against torch 2.14.1 in tests/test_pytorch_edges.py;
here compiled training must equal eager training, including a batch whose ignored targets
(-100, PyTorch's default ignore_index) appear only after the program was recorded."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symad
from symad import nn, optim


def _pair():
    symad.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    return nets


def _data():
    symad.manual_seed(1)
    X, y = symad.randn(300, 8), symad.randint(0, 4, (300,))
    ignored = y.clone()
    ignored[::7] = -100
    return X, y, ignored


@pytest.mark.parametrize("kw, batches", [
    ({"weight": [1.0, 2.0, 0.5, 3.0]}, "plain, ignored, plain"),
    ({"ignore_index": 2, "label_smoothing": 0.1}, "plain, plain"),
    ({}, "plain, ignored, ignored, plain"),          # -100 appears after the recording
    ({"weight": [1.0, 2.0, 0.5, 3.0], "label_smoothing": 0.2}, "ignored, plain"),
])
def test_compile_step_equals_eager(kw, batches):
    X, y, ignored = _data()
    if "weight" in kw:
        kw = {**kw, "weight": symad.tensor(kw["weight"])}
    a, b = _pair()
    loss = nn.CrossEntropyLoss(**kw)
    oa, ob = optim.SGD(a.parameters(), lr=0.2), optim.SGD(b.parameters(), lr=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # compiles: no fallback warning
        step = symad.compile_step(a, loss, oa)
        for which in batches.split(", "):
            yy = ignored if which == "ignored" else y
            got = step(X, yy)
            ob.zero_grad()
            want = loss(b(X), yy)
            want.backward()
            ob.step()
            assert got.item() == pytest.approx(want.item(), rel=1e-6)
    np.testing.assert_allclose(a[0].weight.detach().numpy(), b[0].weight.detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_fit_with_ignored_targets_after_the_first_batch_equals_eager():
    X, y, _ = _data()
    y = y.clone()
    y[150::5] = -100
    a, b = _pair()
    loss = nn.CrossEntropyLoss()
    oa, ob = optim.SGD(a.parameters(), lr=0.2), optim.SGD(b.parameters(), lr=0.2)
    history = symad.compile_step(a, loss, oa).fit(X, y, epochs=2, batch_size=50, shuffle=False)
    want = []
    for _ in range(2):
        total = 0.0
        for s in range(0, 300, 50):
            ob.zero_grad()
            lv = loss(b(X[s:s + 50]), y[s:s + 50])
            lv.backward()
            ob.step()
            total += lv.item()
        want.append(total / 6)
    np.testing.assert_allclose(history, want, rtol=1e-5)
    np.testing.assert_allclose(a[0].weight.detach().numpy(), b[0].weight.detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_compiled_function_meets_ignored_targets_after_recording():
    X, y, ignored = _data()
    net, _ = _pair()
    loss = nn.CrossEntropyLoss()
    f = symad.compile(lambda xb, yb: loss(net(xb), yb))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for yy in (y, ignored, y):
            assert f(X, yy).item() == pytest.approx(loss(net(X), yy).item(), rel=1e-6)


def test_all_targets_ignored_is_nan_with_zero_gradient_as_pytorch():
    x = symad.tensor([[1.0, 1.0, 2.0], [0.0, -1.0, 3.0]], dtype=symad.float64,
                     requires_grad=True)
    v = nn.CrossEntropyLoss()(x, symad.tensor([-100, -100]))
    v.backward()
    assert np.isnan(v.item()) and not np.any(x.grad.numpy())


def test_nll_loss_rejects_a_weight_of_the_wrong_size():
    with pytest.raises(RuntimeError, match="weight tensor should be defined either for all 3"):
        nn.NLLLoss(weight=symad.ones(2))(symad.randn(2, 3), symad.tensor([0, 1]))


def test_the_registry_nll_op_never_wraps_a_negative_target():
    """A 1-D input with 200 classes: numpy would read logp[-100] for target -100 (a silent wrong
    value); the op raises, and nll_loss itself skips the ignored target as PyTorch does."""
    from symad.ops.dispatch import apply
    from symad.ops.registry import REGISTRY
    logp = symad.log_softmax(symad.randn(200, dtype=symad.float64), 0)
    with pytest.raises(IndexError, match="Target -100 is out of bounds"):
        apply(REGISTRY["nll_loss"], logp, symad.tensor(-100), reduction="mean")
    assert np.isnan(nn.NLLLoss()(logp, symad.tensor(-100)).item())
    assert nn.NLLLoss()(logp, symad.tensor(7)).item() == pytest.approx(-logp[7].item())
