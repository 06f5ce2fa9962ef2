"""symad.compile_step: fused step / fit against the eager loop (the reference interpreter)."""
from __future__ import annotations

import numpy as np
import pytest

import symad
from symad import nn, optim
from symad.compiler import NotCompilable
from symad.utils import data

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.05),
    "sgd_momentum_dampening_wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.2,
                                                      weight_decay=1e-2),
    "sgd_nesterov_wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True,
                                            weight_decay=1e-3),
    "adam_wd": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-2),
    "adamw_amsgrad": lambda ps: optim.AdamW(ps, lr=0.01, betas=(0.8, 0.99), amsgrad=True),
}


def _tol(dt):
    return dict(rtol=1e-10, atol=1e-12) if dt == symad.float64 else dict(rtol=2e-4, atol=2e-5)


def _cast(net, dt):
    for p in net.parameters():
        p.data = p.data.to(dt)
    return net


def small_mlp(dt, seed=0):
    symad.manual_seed(seed)
    return _cast(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)), dt)


def eager_step(net, loss_fn, opt, X, y) -> float:
    opt.zero_grad()
    loss = loss_fn(net(X), y)
    loss.backward()
    opt.step()
    return loss.item()


def assert_same(net_a, opt_a, net_b, opt_b, dt):
    tol = _tol(dt)
    for pa, pb in zip(net_a.parameters(), net_b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), **tol)
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert sorted(sa) == sorted(sb)
        for k in sb:
            np.testing.assert_allclose(np.asarray(sa[k].numpy(), np.float64),
                                       np.asarray(sb[k].numpy(), np.float64), **tol)


def data_for(dt, n=40, n_in=3, n_out=2, seed=1):
    rng = np.random.default_rng(seed)
    X = symad.tensor(rng.normal(size=(n, n_in))).to(dt)
    y = symad.tensor(rng.normal(size=(n, n_out))).to(dt)
    return X, y


@pytest.mark.parametrize("dt", [symad.float64, symad.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("structured", [False, True], ids=["scalarized", "structured"])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_step_matches_eager_then_eager_continues(dt, structured, opt_name):
    X, y = data_for(dt)
    a, b = small_mlp(dt), small_mlp(dt)
    oa, ob = OPTIMIZERS[opt_name](a.parameters()), OPTIMIZERS[opt_name](b.parameters())
    loss_fn = nn.MSELoss()
    step = symad.compile_step(a, loss_fn, oa, structured=structured)
    for i in range(4):
        Xb, yb = X[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10]
        la = step(Xb, yb)
        lb = eager_step(b, loss_fn, ob, Xb, yb)
        np.testing.assert_allclose(la.item(), lb, **_tol(dt))
    assert_same(a, oa, b, ob, dt)
    for pa, pb in zip(a.parameters(), b.parameters()):  # .grad holds the last gradient
        np.testing.assert_allclose(pa.grad.numpy(), pb.grad.numpy(), **_tol(dt))
    # the optimizer state is the optimizer's own: eager steps continue from it ...
    eager_step(a, loss_fn, oa, X, y)
    eager_step(b, loss_fn, ob, X, y)
    assert_same(a, oa, b, ob, dt)
    # ... and the fused step continues after eager steps
    step(X[:7], y[:7])
    eager_step(b, loss_fn, ob, X[:7], y[:7])
    assert_same(a, oa, b, ob, dt)


def test_lr_change_and_rebound_parameter_are_seen():
    dt = symad.float64
    X, y = data_for(dt)
    a, b = small_mlp(dt), small_mlp(dt)
    oa = optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    ob = optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    step = symad.compile_step(a, nn.MSELoss(), oa, structured=True)
    step(X, y)
    eager_step(b, nn.MSELoss(), ob, X, y)
    for o in (oa, ob):  # a scheduler changing lr
        o.param_groups[0]["lr"] = 0.02
    with symad.no_grad():  # user code rebinding a parameter's storage
        a[0].weight.data = a[0].weight.detach() * 0.5
        b[0].weight.data = b[0].weight.detach() * 0.5
    for _ in range(2):
        step(X, y)
        eager_step(b, nn.MSELoss(), ob, X, y)
    assert_same(a, oa, b, ob, dt)


def test_linreg_step_against_numpy_oracle():
    """Plain SGD on linear regression, checked against a hand-written numpy loop."""
    rng = np.random.default_rng(3)
    Xn = rng.normal(size=(30, 2))
    yn = Xn @ np.array([[2.0], [-3.4]]) + 4.2
    net = nn.Sequential(nn.Linear(2, 1))
    _cast(net, symad.float64)
    w, b = net[0].weight.detach().numpy().copy(), net[0].bias.detach().numpy().copy()
    step = symad.compile_step(net, nn.MSELoss(), optim.SGD(net.parameters(), lr=0.03))
    for i in range(3):
        xb, yb = Xn[i * 10:(i + 1) * 10], yn[i * 10:(i + 1) * 10]
        loss = step(symad.tensor(xb), symad.tensor(yb)).item()
        r = xb @ w.T + b - yb
        assert loss == pytest.approx(np.mean(r ** 2), rel=1e-12)
        gw, gb = 2 * r.T @ xb / len(xb), 2 * r.sum(0) / len(xb)
        w, b = w - 0.03 * gw, b - 0.03 * gb
    np.testing.assert_allclose(net[0].weight.detach().numpy(), w, rtol=1e-12)
    np.testing.assert_allclose(net[0].bias.detach().numpy(), b, rtol=1e-12)


def d2l_data(n=1000):
    symad.manual_seed(0)
    true_w = symad.tensor([2, -3.4])
    X = symad.normal(0, 1, (n, 2))
    y = symad.matmul(X, true_w) + 4.2
    y += symad.normal(0, 0.01, y.shape)
    return X, y.reshape((-1, 1))


def d2l_net():
    net = nn.Sequential(nn.Linear(2, 1))
    net[0].weight.data.normal_(0, 0.01)
    net[0].bias.data.fill_(0)
    return net


@pytest.mark.parametrize("opt_name", ["sgd", "sgd_nesterov_wd", "adamw_amsgrad"])
def test_fit_reproduces_dataloader_loop_d2l(opt_name):
    X, y = d2l_data()
    symad.manual_seed(7)
    a = d2l_net()
    symad.manual_seed(7)
    b = d2l_net()
    oa, ob = OPTIMIZERS[opt_name](a.parameters()), OPTIMIZERS[opt_name](b.parameters())
    loss_fn = nn.MSELoss()
    step = symad.compile_step(a, loss_fn, oa)
    seen = []
    hist = step.fit(X, y, epochs=3, batch_size=10, generator=symad.Generator().manual_seed(11),
                    callback=lambda e, l: seen.append((e, l)))
    loader = data.DataLoader(data.TensorDataset(X, y), 10, shuffle=True,
                             generator=symad.Generator().manual_seed(11))
    eager_hist = []
    for _ in range(3):
        losses = [eager_step(b, loss_fn, ob, xb, yb) for xb, yb in loader]
        eager_hist.append(float(np.mean(losses)))
    assert_same(a, oa, b, ob, symad.float32)
    np.testing.assert_allclose(hist, eager_hist, rtol=1e-4)
    assert [e for e, _ in seen] == [0, 1, 2] and [l for _, l in seen] == hist
    assert hist[-1] < 0.5 * hist[0]  # it trained


@pytest.mark.parametrize("dt", [symad.float64, symad.float32], ids=["f64", "f32"])
def test_fit_small_mlp_default_generator_drop_last_and_no_shuffle(dt):
    X, y = data_for(dt, n=45)
    a, b = small_mlp(dt, 2), small_mlp(dt, 2)
    oa, ob = OPTIMIZERS["adam_wd"](a.parameters()), OPTIMIZERS["adam_wd"](b.parameters())
    loss_fn = nn.MSELoss(reduction="sum")
    step = symad.compile_step(a, loss_fn, oa)
    symad.manual_seed(5)
    step.fit(X, y, epochs=2, batch_size=8, drop_last=True)
    step.fit(X, y, epochs=1, batch_size=16, shuffle=False)
    symad.manual_seed(5)
    ds = data.TensorDataset(X, y)
    for loader in (data.DataLoader(ds, 8, shuffle=True, drop_last=True),) * 2 + (
            data.DataLoader(ds, 16),):
        for xb, yb in loader:
            eager_step(b, loss_fn, ob, xb, yb)
    assert_same(a, oa, b, ob, dt)


def test_fit_callback_can_stop():
    X, y = data_for(symad.float64)
    net = small_mlp(symad.float64)
    step = symad.compile_step(net, nn.MSELoss(), optim.SGD(net.parameters(), lr=0.01))
    hist = step.fit(X, y, epochs=10, batch_size=20, callback=lambda e, l: e < 2)
    assert len(hist) == 3


def digits_like(dt, n=150, seed=0):
    rng = np.random.default_rng(seed)
    X = symad.tensor(rng.uniform(0, 16, size=(n, 64))).to(dt)
    y = symad.tensor(rng.integers(0, 10, n))
    return X, y


def digits_mlp(dt, seed=0):
    symad.manual_seed(seed)
    return _cast(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), dt)


@pytest.mark.parametrize("dt", [symad.float64, symad.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("opt_name", ["sgd_nesterov_wd", "adam_wd"])
def test_structured_dense_64_32_10_cross_entropy(dt, opt_name):
    X, y = digits_like(dt)
    a, b = digits_mlp(dt), digits_mlp(dt)
    oa, ob = OPTIMIZERS[opt_name](a.parameters()), OPTIMIZERS[opt_name](b.parameters())
    loss_fn = nn.CrossEntropyLoss()
    step = symad.compile_step(a, loss_fn, oa)
    for i in range(3):
        la = step(X, y)
        lb = eager_step(b, loss_fn, ob, X, y)
        np.testing.assert_allclose(la.item(), lb, **_tol(dt))
    step.fit(X, y, epochs=2, batch_size=32, generator=symad.Generator().manual_seed(3))
    loader = data.DataLoader(data.TensorDataset(X, y), 32, shuffle=True,
                             generator=symad.Generator().manual_seed(3))
    for _ in range(2):
        for xb, yb in loader:
            eager_step(b, loss_fn, ob, xb, yb)
    assert_same(a, oa, b, ob, dt)
    assert step.native_calls.startswith("tensor program")


def test_program_is_chosen_for_large_dense_and_never_scalarizes():
    from symad.compiler.program_step import ProgramRunner
    net = digits_mlp(symad.float64)
    step = symad.compile_step(net, nn.CrossEntropyLoss(),
                              optim.SGD(net.parameters(), lr=0.1))
    sizes = []
    for n in (20, 200):
        X, y = digits_like(symad.float64, n=n)
        step(X, y)
        step(X, y)
        (runner,) = step._runners.values()
        assert isinstance(runner, ProgramRunner) and runner.eager_reason is None
        sizes.append(len(runner.runners[(tuple(X.shape), X.numpy().dtype.str, tuple(y.shape),
                                         y.numpy().dtype.str)].prog))
    # one step per op: the program does not grow with the batch and holds no scalar symbols
    assert sizes[0] == sizes[1] < 60


def test_sigmoid_chain_and_final_activation_structured():
    dt = symad.float64
    symad.manual_seed(4)
    mk = lambda: nn.Sequential(nn.Linear(5, 6), nn.Sigmoid(), nn.Tanh(), nn.Linear(6, 3),  # noqa
                               nn.ReLU(), nn.Linear(3, 2), nn.Sigmoid())
    symad.manual_seed(4)
    a = _cast(mk(), dt)
    symad.manual_seed(4)
    b = _cast(mk(), dt)
    X, y = data_for(dt, n_in=5)
    oa, ob = optim.SGD(a.parameters(), lr=0.1), optim.SGD(b.parameters(), lr=0.1)
    step = symad.compile_step(a, nn.MSELoss(), oa, structured=True)
    for _ in range(3):
        step(X, y)
        eager_step(b, nn.MSELoss(), ob, X, y)
    assert_same(a, oa, b, ob, dt)


def test_errors():
    net = small_mlp(symad.float64)
    X, y = data_for(symad.float64)

    class Other(optim.SGD):
        def _update(self, p, group, state):
            super()._update(p, group, state)

    with pytest.raises(TypeError, match="no fused update"):
        symad.compile_step(net, nn.MSELoss(), Other(net.parameters(), lr=0.1))(X, y)
    step = symad.compile_step(net, nn.MSELoss(), optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="batch_size"):
        step.fit(X, y, batch_size=0)
