"""nn.BatchNorm1d / BatchNorm2d and F.batch_norm against PyTorch (torch 2.14.1's recorded results
of tests/batchnorm_sequence.py: outputs, input/weight/bias gradients, running statistics and
their counter over training steps, then eval mode), and under symad.compile / compile_step,
where the in-place update of the running statistics must not be lost."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

import symad
from batchnorm_sequence import run
from symad import nn, optim
from symad.compiler import CompileWarning

with open(os.path.join(os.path.dirname(__file__), "data", "pytorch_batchnorm.json")) as _f:
    TORCH = json.load(_f)


@pytest.fixture(scope="module")
def ours():
    old = symad.get_default_dtype()
    try:
        return run(symad, nn)
    finally:
        symad.set_default_dtype(old)


@pytest.mark.parametrize("case", [k for k in TORCH if k.startswith("bn")])
def test_batchnorm_sequence_matches_torch(ours, case):
    assert len(ours[case]) == len(TORCH[case])
    for got, want in zip(ours[case], TORCH[case]):
        assert set(got) == set(want)
        for key in want:
            if key == "name":
                continue        # NativeBatchNormBackward0 in PyTorch; symad composes registry ops
            np.testing.assert_allclose(np.asarray(got[key], np.float64),
                                       np.asarray(want[key], np.float64), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{case}: {key}")


def test_batchnorm_repr_state_and_errors_match_torch(ours):
    assert ours["repr"] == TORCH["repr"]
    assert ours["keys"] == TORCH["keys"]
    assert ours["error_one_value"] == TORCH["error_one_value"] == "ValueError"
    assert ours["error_dims"] == TORCH["error_dims"] == "ValueError"
    m = nn.BatchNorm1d(3)
    assert m.num_batches_tracked.dtype == symad.int64 and m.num_batches_tracked.item() == 0


def _pair(make):
    symad.manual_seed(0)
    a, b = make(), make()
    b.load_state_dict(a.state_dict())
    return a, b


class _Counted(nn.Module):
    """Its module's forward, counted in a list outside the module (not a module attribute)."""

    def __init__(self, inner, calls):
        super().__init__()
        self.inner = inner
        self._calls = calls

    def forward(self, x):
        self._calls.append(1)
        return self.inner(x)


def _mlp():
    return nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))


def test_compile_step_keeps_running_statistics_and_runs_forward_once():
    """The running statistics are an in-place update a recorded program would lose: compile_step
    says so once and trains eagerly, running the model once per step (as eager does)."""
    a, b = _pair(_mlp)
    calls = []
    counted = _Counted(a, calls)
    X, y = symad.randn(64, 10), symad.randint(0, 3, (64,))
    loss = nn.CrossEntropyLoss()
    oa, ob = optim.SGD(a.parameters(), lr=0.1), optim.SGD(b.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        step = symad.compile_step(counted, loss, oa)
        for _ in range(3):
            la = step(X, y)
            ob.zero_grad()
            lb = loss(b(X), y)
            lb.backward()
            ob.step()
            assert la.item() == lb.item()
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 1 and "updates a module buffer in place" in msgs[0]
    assert a[1].num_batches_tracked.item() == b[1].num_batches_tracked.item() == 3
    np.testing.assert_array_equal(a[1].running_mean.numpy(), b[1].running_mean.numpy())
    np.testing.assert_array_equal(a[1].running_var.numpy(), b[1].running_var.numpy())
    np.testing.assert_array_equal(a[0].weight.detach().numpy(), b[0].weight.detach().numpy())
    assert len(calls) == 3


def test_compile_of_a_small_model_in_training_mode_undoes_its_probe():
    """symad.compile's per-sample path probes the function on a slice first: the probe's update
    of the running statistics is undone, and the call runs eagerly with one warning."""
    def make():
        return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    a, b = _pair(make)
    X = symad.randn(16, 2)
    with pytest.warns(CompileWarning, match="updates a module buffer in place"):
        ya = symad.compile(a)(X)
    yb = b(X)
    np.testing.assert_array_equal(ya.detach().numpy(), yb.detach().numpy())
    assert a[1].num_batches_tracked.item() == b[1].num_batches_tracked.item() == 1
    np.testing.assert_array_equal(a[1].running_mean.numpy(), b[1].running_mean.numpy())


def test_eval_mode_compiles_and_matches_eager():
    a, b = _pair(_mlp)
    X = symad.randn(64, 10)
    for m in (a, b):        # some running statistics first
        m(X)
        m.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ya = symad.compile(a)(X)
    np.testing.assert_allclose(ya.detach().numpy(), b(X).detach().numpy(), rtol=1e-6, atol=1e-6)


def test_dropout_under_compile_step_draws_what_eager_draws():
    """A model whose forward draws (dropout) runs eagerly under compile_step; the recording run
    is the step's eager run, so the masks are the ones eager training draws."""
    def make():
        return nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.3), nn.Linear(16, 1))
    a, b = _pair(make)
    X, y = symad.randn(32, 6), symad.randn(32, 1)
    loss = nn.MSELoss()
    oa, ob = optim.SGD(a.parameters(), lr=0.05), optim.SGD(b.parameters(), lr=0.05)
    step = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step = symad.compile_step(a, loss, oa)
        symad.manual_seed(7)
        got = [step(X, y).item() for _ in range(3)]
    symad.manual_seed(7)
    want = []
    for _ in range(3):
        ob.zero_grad()
        lv = loss(b(X), y)
        lv.backward()
        ob.step()
        want.append(lv.item())
    assert got == want
    np.testing.assert_array_equal(a[0].weight.detach().numpy(), b[0].weight.detach().numpy())


def test_export_refuses_training_mode_and_leaves_the_statistics_alone(tmp_path):
    """export runs the function once for reference values: in training mode that run would move
    the running statistics and the exported kernel would not; it says so and undoes the run."""
    from symad.export_.export import ExportError
    symad.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    X, y = symad.randn(16, 3), symad.randn(16, 1)

    def loss(xb, yb):
        return ((net(xb) - yb) ** 2).mean()
    before = net[1].running_mean.numpy().copy()
    with pytest.raises(ExportError, match="updates a module buffer in place"):
        symad.export(loss, (X, y), tmp_path / "train", name="bn_train", formats=["h"])
    np.testing.assert_array_equal(net[1].running_mean.numpy(), before)
    assert net[1].num_batches_tracked.item() == 0
    net.eval()
    res = symad.export(loss, (X, y), tmp_path / "eval", name="bn_eval", formats=["h"])
    assert (tmp_path / "eval" / "bn_eval.h").exists() and res is not None
