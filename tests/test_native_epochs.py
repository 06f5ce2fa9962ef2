"""step.fit on the tensor-program path: full minibatches run as native epoch loops (one call for
all epochs when every batch is full), against the eager DataLoader loop (the reference)."""
from __future__ import annotations

import numpy as np
import pytest

import symad
from symad import nn, optim
from symad.compiler import native_epochs
from symad.utils.data import DataLoader, TensorDataset


def _make(seed=0):
    symad.manual_seed(seed)
    net = nn.Sequential(nn.Linear(8, 40), nn.Tanh(), nn.Linear(40, 3)).double()
    return net, optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)


def _eager(net, opt, X, y, bs, epochs, gen, drop_last=False, shuffle=True):
    dl = DataLoader(TensorDataset(X, y), batch_size=bs, shuffle=shuffle, generator=gen,
                    drop_last=drop_last)
    hist = []
    for _ in range(epochs):
        losses = []
        for xb, yb in dl:
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(net(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        hist.append(sum(losses) / len(losses))
    return hist


@pytest.fixture
def spy(monkeypatch):
    calls = []
    orig = native_epochs.NativeEpochs.run

    def run(self, X, y, perm, env_of):
        calls.append(perm.size // self.bs)
        return orig(self, X, y, perm, env_of)
    monkeypatch.setattr(native_epochs.NativeEpochs, "run", run)
    return calls


@pytest.mark.parametrize("native", [None, True])
@pytest.mark.parametrize("bs,drop_last,shuffle", [(20, False, True), (30, False, True),
                                                  (30, True, True), (25, False, False)])
def test_fit_equals_the_dataloader_loop_and_runs_native_epochs(spy, bs, drop_last, shuffle,
                                                               native):
    """``native=True`` too: the recording batch and the momentum buffer's first fill run as
    steps (numpy fills the buffer) without the loop being declared unavailable."""
    rng = np.random.default_rng(0)
    X = symad.tensor(rng.normal(size=(200, 8)))
    y = symad.tensor(rng.integers(0, 3, 200))
    a, oa = _make()
    b, ob = _make()
    ga, gb = symad.Generator().manual_seed(5), symad.Generator().manual_seed(5)
    step = symad.compile_step(a, nn.CrossEntropyLoss(), oa)
    hist = step.fit(X, y, epochs=4, batch_size=bs, generator=ga, drop_last=drop_last,
                    shuffle=shuffle, native=native)
    want = _eager(b, ob, X, y, bs, 4, gb, drop_last, shuffle)
    np.testing.assert_allclose(hist, want, rtol=1e-12)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), rtol=1e-11,
                                   atol=1e-13, err_msg=name)
        np.testing.assert_allclose(pa.grad.numpy(), pb.grad.numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(oa.state[pa]["momentum_buffer"].numpy(),
                                   ob.state[pb]["momentum_buffer"].numpy(), rtol=1e-10,
                                   atol=1e-13)
    # the generators are where the DataLoader left its own
    np.testing.assert_array_equal(ga.permutation(7), gb.permutation(7))
    full = 200 // bs
    # epoch 0: the recording batch and the momentum buffer's first fill run as steps, the rest
    # of the epoch in one native call; then every later epoch in ONE call when all batches are
    # full, else one call per epoch (the short batch runs as a step)
    whole = 200 % bs == 0 or drop_last
    assert spy == ([full - 2, 3 * full] if whole else [full - 2] + [full] * 3)


def test_callback_early_stop_and_lr_change_between_fits(spy):
    rng = np.random.default_rng(1)
    X = symad.tensor(rng.normal(size=(120, 8)))
    y = symad.tensor(rng.integers(0, 3, 120))
    a, oa = _make(2)
    b, ob = _make(2)
    ga, gb = symad.Generator().manual_seed(9), symad.Generator().manual_seed(9)
    step = symad.compile_step(a, nn.CrossEntropyLoss(), oa)
    seen = []
    hist = step.fit(X, y, epochs=5, batch_size=12, generator=ga,
                    callback=lambda e, l: seen.append(e) or e < 2)
    assert seen == [0, 1, 2] and len(hist) == 3
    want = _eager(b, ob, X, y, 12, 3, gb)
    np.testing.assert_allclose(hist, want, rtol=1e-12)
    for g in (oa.param_groups[0], ob.param_groups[0]):
        g["lr"] = 0.02
    hist = step.fit(X, y, epochs=2, batch_size=12, generator=ga)
    want = _eager(b, ob, X, y, 12, 2, gb)
    np.testing.assert_allclose(hist, want, rtol=1e-12)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), rtol=1e-11,
                                   atol=1e-13)
    assert spy[-1] == 20                  # the last fit: both epochs in one native call


def test_a_class_index_out_of_range_raises_before_the_native_epochs_write():
    rng = np.random.default_rng(3)
    X = symad.tensor(rng.normal(size=(60, 8)))
    yv = rng.integers(0, 3, 60)
    a, oa = _make()
    step = symad.compile_step(a, nn.CrossEntropyLoss(), oa)
    step.fit(X, symad.tensor(yv), epochs=1, batch_size=10)
    before = [p.detach().numpy().copy() for p in a.parameters()]
    yv[17] = 3
    with pytest.raises(IndexError, match="out of bounds"):
        step.fit(X, symad.tensor(yv), epochs=2, batch_size=10, shuffle=False)
    for p, q in zip(a.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), q)


@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.Adam(ps, lr=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01, betas=(0.8, 0.99), amsgrad=True),
    lambda ps: optim.Adam(ps, lr=0.01, betas=(0.3, 0.9), weight_decay=1e-2),
], ids=["adam", "adamw-amsgrad", "adam-small-beta1"])
@pytest.mark.parametrize("dtype", [symad.float64, symad.float32])
def test_adam_epochs_compute_the_bias_corrections_per_step_natively(spy, make_opt, dtype):
    """Adam's step size and bias correction change every step: the epoch loop evaluates the
    tracer's expressions of them (from adam_scalars) per batch in double precision, as Python
    does; parameters, state and step counters equal the eager DataLoader loop."""
    rng = np.random.default_rng(4)
    X = symad.tensor(rng.normal(size=(96, 8))).to(dtype)
    y = symad.tensor(rng.integers(0, 3, 96))

    def make():
        symad.manual_seed(7)
        net = nn.Sequential(nn.Linear(8, 40), nn.Tanh(), nn.Linear(40, 3)).to(dtype)
        return net, make_opt(net.parameters())
    a, oa = make()
    b, ob = make()
    ga, gb = symad.Generator().manual_seed(1), symad.Generator().manual_seed(1)
    step = symad.compile_step(a, nn.CrossEntropyLoss(), oa)
    hist = step.fit(X, y, epochs=3, batch_size=16, generator=ga)
    want = _eager(b, ob, X, y, 16, 3, gb)
    tol = {"rtol": 1e-11, "atol": 1e-13} if dtype == symad.float64 else \
        {"rtol": 2e-5, "atol": 2e-6}
    np.testing.assert_allclose(hist, want, **tol)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), **tol)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            np.testing.assert_allclose(oa.state[pa][key].numpy(), ob.state[pb][key].numpy(),
                                       **tol)
    assert spy == [6 - 1, 2 * 6]       # after the recording batch: the rest in two calls


def test_param_groups_with_their_own_learning_rates(spy):
    rng = np.random.default_rng(5)
    X = symad.tensor(rng.normal(size=(64, 8)))
    y = symad.tensor(rng.integers(0, 3, 64))

    def make():
        symad.manual_seed(4)
        net = nn.Sequential(nn.Linear(8, 40), nn.Tanh(), nn.Linear(40, 3)).double()
        return net, optim.Adam([{"params": net[0].parameters(), "lr": 0.02},
                                {"params": net[2].parameters(), "lr": 0.002,
                                 "betas": (0.85, 0.99)}])
    a, oa = make()
    b, ob = make()
    ga, gb = symad.Generator().manual_seed(2), symad.Generator().manual_seed(2)
    step = symad.compile_step(a, nn.CrossEntropyLoss(), oa)
    hist = step.fit(X, y, epochs=3, batch_size=16, generator=ga)
    np.testing.assert_allclose(hist, _eager(b, ob, X, y, 16, 3, gb), rtol=1e-12)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), rtol=1e-11,
                                   atol=1e-14)
    assert sum(spy) == 3 * 4 - 1


def test_a_changed_update_structure_between_fits_runs_like_eager(spy):
    """weight decay switched on after the steps that built the epoch loop: the loop's traced
    update no longer holds, so fit runs the step path until a matching update exists (never an
    error where eager trains); parameters equal the eager loop."""
    rng = np.random.default_rng(6)
    X = symad.tensor(rng.normal(size=(64, 8)))
    y = symad.tensor(rng.integers(0, 3, 64))

    def make():
        symad.manual_seed(2)
        net = nn.Sequential(nn.Linear(8, 40), nn.Tanh(), nn.Linear(40, 3)).double()
        return net, optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    a, oa = make()
    b, ob = make()
    ga, gb = symad.Generator().manual_seed(3), symad.Generator().manual_seed(3)
    step = symad.compile_step(a, nn.CrossEntropyLoss(), oa)
    step.fit(X, y, epochs=2, batch_size=16, generator=ga)
    _eager(b, ob, X, y, 16, 2, gb)
    for o in (oa, ob):
        o.param_groups[0]["weight_decay"] = 1e-2
    hist = step.fit(X, y, epochs=2, batch_size=16, generator=ga)
    np.testing.assert_allclose(hist, _eager(b, ob, X, y, 16, 2, gb), rtol=1e-12)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), rtol=1e-11,
                                   atol=1e-14)
