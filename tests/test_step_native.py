"""step.fit's native epoch loop (codegen.fit_loop) against the eager DataLoader loop (the
reference interpreter), the Python fit loop and a numpy oracle; bad-input errors."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symad
from codegen import fit_loop
from codegen.fit_loop import FitLoop, GroupUpdate, UpdateVariant, compile_fit_loop
from symad import nn, optim
from symad.compiler import NotCompilable
from symad.optim.adam import adam_update
from symad.optim.sgd import sgd_update
from symad.utils import data

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.05),
    "sgd_momentum_dampening_wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.2,
                                                      weight_decay=1e-2),
    "sgd_nesterov_wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True,
                                            weight_decay=1e-3),
    "adam_wd": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-2),
    "adamw_amsgrad": lambda ps: optim.AdamW(ps, lr=0.01, betas=(0.8, 0.99), amsgrad=True),
    # 1 - beta1 >= 0.5: the other form of PyTorch's lerp
    "adam_small_beta1": lambda ps: optim.Adam(ps, lr=0.01, betas=(0.3, 0.9)),
}


def _tol(dt):
    return {"rtol": 1e-10, "atol": 1e-12} if dt == symad.float64 else {"rtol": 2e-4, "atol": 2e-5}


def _cast(net, dt):
    for p in net.parameters():
        p.data = p.data.to(dt)
    return net


def small_mlp(dt, seed=0):
    symad.manual_seed(seed)
    return _cast(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)), dt)


def data_for(dt, n=45, n_in=3, n_out=2, seed=1):
    rng = np.random.default_rng(seed)
    X = symad.tensor(rng.normal(size=(n, n_in))).to(dt)
    y = symad.tensor(rng.normal(size=(n, n_out))).to(dt)
    return X, y


def d2l_data(dt, n=1000):
    symad.manual_seed(0)
    X = symad.normal(0, 1, (n, 2))
    y = symad.matmul(X, symad.tensor([2, -3.4])) + 4.2
    y += symad.normal(0, 0.01, y.shape)
    return X.to(dt), y.reshape((-1, 1)).to(dt)


def d2l_net(dt, seed=7):
    symad.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 1))
    net[0].weight.data.normal_(0, 0.01)
    net[0].bias.data.fill_(0)
    return _cast(net, dt)


def eager_step(net, loss_fn, opt, X, y) -> float:
    opt.zero_grad()
    loss = loss_fn(net(X), y)
    loss.backward()
    opt.step()
    return loss.item()


def eager_fit(net, loss_fn, opt, X, y, epochs, bs, seed, drop_last=False, shuffle=True):
    loader = data.DataLoader(data.TensorDataset(X, y), bs, shuffle=shuffle, drop_last=drop_last,
                             generator=symad.Generator().manual_seed(seed))
    return [float(np.mean([eager_step(net, loss_fn, opt, xb, yb) for xb, yb in loader]))
            for _ in range(epochs)]


def assert_same(net_a, opt_a, net_b, opt_b, dt, grads=True):
    tol = _tol(dt)
    for pa, pb in zip(net_a.parameters(), net_b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), **tol)
        if grads and pb.grad is not None:
            np.testing.assert_allclose(pa.grad.numpy(), pb.grad.numpy(), **tol)
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert sorted(sa) == sorted(sb)
        for k in sb:
            np.testing.assert_allclose(np.asarray(sa[k].numpy(), np.float64),
                                       np.asarray(sb[k].numpy(), np.float64), **tol)


def _runner(step):
    (runner,) = step._runners.values()
    return runner


# -- symad: native fit == eager DataLoader loop == Python fit ------------------------------------
@pytest.mark.parametrize("dt", [symad.float64, symad.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_d2l_native_fit_matches_eager_and_python_fit(dt, opt_name):
    X, y = d2l_data(dt)
    nets = [d2l_net(dt) for _ in range(3)]
    opts = [OPTIMIZERS[opt_name](n.parameters()) for n in nets]
    loss_fn = nn.MSELoss()
    s_nat = symad.compile_step(nets[0], loss_fn, opts[0])
    s_py = symad.compile_step(nets[1], loss_fn, opts[1])
    h_nat = s_nat.fit(X, y, epochs=3, batch_size=10, generator=symad.Generator().manual_seed(11),
                      native=True)
    h_py = s_py.fit(X, y, epochs=3, batch_size=10, generator=symad.Generator().manual_seed(11),
                    native=False)
    h_eager = eager_fit(nets[2], loss_fn, opts[2], X, y, 3, 10, 11)
    assert _runner(s_nat).native_fit is not None
    assert getattr(_runner(s_py), "native_fit", None) is None
    assert_same(nets[0], opts[0], nets[2], opts[2], dt)
    assert_same(nets[0], opts[0], nets[1], opts[1], dt)
    np.testing.assert_allclose(h_nat, h_eager, **_tol(dt))
    np.testing.assert_allclose(h_nat, h_py, **_tol(dt))
    assert h_nat[-1] < 0.5 * h_nat[0]  # it trained


@pytest.mark.parametrize("dt", [symad.float64, symad.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_small_mlp_short_last_batch_then_eager_continues(dt, opt_name):
    X, y = data_for(dt, n=45)                    # 45 = 5 * 8 + 5: a short last batch
    a, b = small_mlp(dt), small_mlp(dt)
    assert sum(p.numel() for p in a.parameters()) <= 256
    oa, ob = OPTIMIZERS[opt_name](a.parameters()), OPTIMIZERS[opt_name](b.parameters())
    loss_fn = nn.MSELoss()
    step = symad.compile_step(a, loss_fn, oa, structured=False)
    h = step.fit(X, y, epochs=2, batch_size=8, generator=symad.Generator().manual_seed(4))
    assert _runner(step).kind == "scalarized" and _runner(step).native_fit is not None
    he = eager_fit(b, loss_fn, ob, X, y, 2, 8, 4)
    np.testing.assert_allclose(h, he, **_tol(dt))
    assert_same(a, oa, b, ob, dt)
    # eager steps continue from the state the native loop left, then native fit again
    eager_step(a, loss_fn, oa, X[:9], y[:9])
    eager_step(b, loss_fn, ob, X[:9], y[:9])
    assert_same(a, oa, b, ob, dt)
    step.fit(X, y, epochs=1, batch_size=16, shuffle=False)
    eager_fit(b, loss_fn, ob, X, y, 1, 16, 0, shuffle=False)
    assert_same(a, oa, b, ob, dt)


@pytest.mark.parametrize("dt", [symad.float64, symad.float32], ids=["f64", "f32"])
def test_sum_reduction_drop_last_default_generator(dt):
    X, y = data_for(dt, n=45)
    a, b = small_mlp(dt, 2), small_mlp(dt, 2)
    oa = OPTIMIZERS["sgd_momentum_dampening_wd"](a.parameters())
    ob = OPTIMIZERS["sgd_momentum_dampening_wd"](b.parameters())
    loss_fn = nn.MSELoss(reduction="sum")
    step = symad.compile_step(a, loss_fn, oa, structured=False)
    symad.manual_seed(5)
    step.fit(X, y, epochs=2, batch_size=8, drop_last=True, native=True)
    symad.manual_seed(5)
    loader = data.DataLoader(data.TensorDataset(X, y), 8, shuffle=True, drop_last=True)
    for _ in range(2):
        for xb, yb in loader:
            eager_step(b, loss_fn, ob, xb, yb)
    assert_same(a, oa, b, ob, dt)


@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3,
                         maximize=True),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-2, maximize=True)], ids=["sgd", "adam"])
def test_maximize_of_a_negated_loss(make_opt):
    dt = symad.float64
    X, y = data_for(dt)
    a, b = small_mlp(dt), small_mlp(dt)
    oa, ob = make_opt(a.parameters()), make_opt(b.parameters())

    def neg_mse(out, t):
        return -nn.functional.mse_loss(out, t)
    step = symad.compile_step(a, neg_mse, oa, structured=False)
    h = step.fit(X, y, epochs=2, batch_size=10, generator=symad.Generator().manual_seed(2),
                 native=True)
    he = eager_fit(b, neg_mse, ob, X, y, 2, 10, 2)
    np.testing.assert_allclose(h, he, **_tol(dt))
    assert h[1] > h[0]   # the negated loss went up
    assert_same(a, oa, b, ob, dt)


def test_callback_per_epoch_stop_and_lr_change_without_recompiling():
    dt = symad.float64
    X, y = data_for(dt, n=40)
    a, b = small_mlp(dt), small_mlp(dt)
    oa = optim.SGD(a.parameters(), lr=0.1, momentum=0.9)
    ob = optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.MSELoss()
    step = symad.compile_step(a, loss_fn, oa, structured=False)
    seen = []

    def cb(epoch, loss):
        seen.append((epoch, loss))
        oa.param_groups[0]["lr"] *= 0.5          # a schedule between epochs
        return epoch < 2                          # stop after the third epoch
    ga = symad.Generator().manual_seed(8)
    hist = step.fit(X, y, epochs=10, batch_size=10, generator=ga, callback=cb, native=True)
    assert [e for e, _ in seen] == [0, 1, 2] and [l for _, l in seen] == hist
    gb = symad.Generator().manual_seed(8)
    loader = data.DataLoader(data.TensorDataset(X, y), 10, shuffle=True, generator=gb)
    eh = []
    for _ in range(3):
        eh.append(float(np.mean([eager_step(b, loss_fn, ob, xb, yb) for xb, yb in loader])))
        ob.param_groups[0]["lr"] *= 0.5
    np.testing.assert_allclose(hist, eh, **_tol(dt))
    assert_same(a, oa, b, ob, dt)
    assert len(_runner(step).native_fit._loops) == 1   # lr is a runtime value
    # the generator advanced exactly as the eager loop's (3 permutations)
    assert np.array_equal(ga.permutation(40), gb.permutation(40))


def test_two_param_groups_and_a_frozen_parameter():
    dt = symad.float64
    X, y = data_for(dt)

    def build():
        net = small_mlp(dt, 3)
        net[0].bias.requires_grad_(False)        # not trained
        opt = optim.SGD([{"params": [net[0].weight], "lr": 0.02, "momentum": 0.5},
                         {"params": [net[2].weight, net[2].bias], "nesterov": True,
                          "momentum": 0.7}], lr=0.1)
        return net, opt
    (a, oa), (b, ob) = build(), build()
    step = symad.compile_step(a, nn.MSELoss(), oa, structured=False)
    h = step.fit(X, y, epochs=3, batch_size=7, generator=symad.Generator().manual_seed(1),
                 native=True)
    he = eager_fit(b, nn.MSELoss(), ob, X, y, 3, 7, 1)
    np.testing.assert_allclose(h, he, **_tol(dt))
    assert_same(a, oa, b, ob, dt)
    nf = _runner(step).native_fit
    assert len(nf.theta) == 24 + 16 + 2 and len(nf.grads) == len(nf.theta)


def test_native_selection_and_fallback():
    X, y = data_for(symad.float64, n=20)
    net = nn.Sequential(nn.Linear(3, 80), nn.ReLU(), nn.Linear(80, 2))   # 482 params: dense
    _cast(net, symad.float64)
    # the tensor-program path runs native epochs (tests/test_native_epochs.py); for a program
    # with a step that has no loop lowering (a cumulative sum) native=True names what is
    # missing, the default falls back to the step loop
    def loss(out, y):
        return ((out.cumsum(1) - y) ** 2).mean()
    step = symad.compile_step(net, loss, optim.Adam(net.parameters(), lr=0.01))
    with pytest.raises(NotCompilable, match="the program has numpy steps"):
        step.fit(X, y, batch_size=5, native=True)
    assert len(step.fit(X, y, batch_size=5)) == 1
    net = small_mlp(symad.float64)
    step = symad.compile_step(net, nn.MSELoss(), optim.SGD(net.parameters(), lr=0.01),
                              structured=False)
    step.fit(X, y, batch_size=5)
    assert _runner(step).native_fit is not None
    assert np.isnan(step.fit(X[:0], y[:0], batch_size=5)[0])      # no batches: Python loop
    with pytest.raises(NotCompilable, match="no minibatches"):
        step.fit(X[:0], y[:0], batch_size=5, native=True)


# -- codegen: the loop alone, against a numpy oracle of the optimizer equations ---------------
def _traced_group(kind, group, n, decoupled=False):
    """A GroupUpdate as symad builds it: the optimizer's declaration read by the update tracer
    (its expressions are what the loop lowers; numpy running the same declaration is the
    oracle below)."""
    from symad.compiler.native_fit import _ARRAY_OF, _variant
    from symad.compiler.native_update import hp_names_of, trace_update
    keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize") \
        if kind == "sgd" else ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
    env = {k: group[k] for k in keys}
    if kind == "adam":
        env["step"] = 1.0
        names = ["P", "G", "m", "v"] + (["mx"] if group["amsgrad"] else [])
    else:
        names = ["P", "G"] + (["buf"] if group["momentum"] != 0 else [])
    t = trace_update(kind, env, names, decoupled)
    tf = trace_update(kind, env, names, decoupled, first=True) if "buf" in names else None
    hp = hp_names_of([x for x in (t, tf) if x is not None])
    g = GroupUpdate(0, n, tuple((sp.Symbol(nm, real=True), _ARRAY_OF[nm]) for nm in names),
                    tuple(sp.Symbol(h, real=True) for h in hp), _variant(fit_loop, t),
                    _variant(fit_loop, tf) if tf is not None else None)
    return g, hp, env


def _linreg_loop(kind, dt, group, decoupled=False, split=None):
    w0, w1, b, x0, x1, y = sp.symbols("w0 w1 b x0 x1 y", real=True)
    q = (w0 * x0 + w1 * x1 + b - y) ** 2
    g, hp, env = _traced_group(kind, group, 3, decoupled)
    fl = compile_fit_loop([w0, w1, b], [], [x0, x1, y], q, [sp.diff(q, s) for s in (w0, w1, b)],
                          reduction="mean", groups=[g], dtype=dt, cache=False, split=split)
    return fl, hp, env


def test_codegen_fit_loop_reads_inputs_and_targets_from_two_arrays():
    """``split=2``: x0, x1 from D and y from D2 — the same run, bit for bit, as one
    interleaved D; mismatched pairs are Python errors."""
    group = {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0,
             "nesterov": False, "maximize": False}
    rng = np.random.default_rng(3)
    N = 17
    D = rng.normal(size=(N, 3))
    perm = rng.permutation(N).astype(np.int64)
    off = np.array([0, 4, 8, 12, 16, 17], np.int64)
    outs = []
    for split in (None, 2):
        fl, names, env = _linreg_loop("sgd", "float64", group, split=split)
        from symad.compiler.native_update import hp_values
        hp = np.array(hp_values(names, env) + [0.0, 1.0])
        P, G, S = np.array([0.1, -0.2, 0.3]), np.zeros(3), [np.zeros(3), None, None]
        losses, totals = np.zeros(5), np.zeros(1)
        data = D if split is None else (D[:, :2].copy(), D[:, 2:].copy())
        fl.run(perm, off, data, P, np.zeros(0), G, S, hp, losses, totals, 5)
        outs.append((P, G, S[0], losses, totals))
        if split is not None:
            args = (perm, off, data, P, np.zeros(0), G, S, hp, losses, totals, 5)
            with pytest.raises(TypeError, match="pair"):
                fl.run(perm, off, D, *args[3:])
            with pytest.raises(ValueError, match="D has 17 rows, D2 16"):
                fl.run(perm, off, (data[0], data[1][:16]), *args[3:])
            with pytest.raises(ValueError, match="D2 has 2 columns"):
                fl.run(perm, off, (data[0], D[:, 1:].copy()), *args[3:])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    assert outs[0][3][0] != 0.0          # the run did compute losses


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_codegen_fit_loop_against_numpy_oracle(dt, kind):
    if kind == "sgd":
        group = {"lr": 0.05, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01,
                 "nesterov": False, "maximize": False}
    else:
        group = {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.01,
                 "amsgrad": True, "maximize": False}
    from symad.compiler.native_update import hp_values
    fl, names, env = _linreg_loop(kind, dt, group, decoupled=True)
    # the group's values, the step count before the run, the first-step flag (SGD's new buffer)
    hp = hp_values(names, env) + [0.0, 1.0 if kind == "sgd" else 0.0]
    rng = np.random.default_rng(0)
    N, bs = 23, 5
    D = rng.normal(size=(N, 3)).astype(dt)
    perm = rng.permutation(N).astype(np.int64)
    off = np.array(list(range(0, N, bs)) + [N], np.int64)
    P0 = np.array([0.1, -0.2, 0.3], dt)
    P, G, S = P0.copy(), np.zeros(3, dt), [np.zeros(3, dt) for _ in range(3)]
    n_steps = len(off) - 1
    losses, totals = np.zeros(n_steps), np.zeros(2)
    fl.run(perm, off, D, P, np.zeros(0, dt), G, S, np.array(hp), losses, totals, 3)
    Pr, st = P0.copy(), [np.zeros(3, dt) for _ in range(3)]
    ref_losses = []
    for s in range(n_steps):
        rows = D[perm[off[s]:off[s + 1]]].astype(np.float64)
        r = rows[:, :2] @ Pr[:2].astype(np.float64) + np.float64(Pr[2]) - rows[:, 2]
        ref_losses.append(float(np.dtype(dt).type(np.mean(r ** 2))))
        g = np.array([np.mean(2 * r * rows[:, 0]), np.mean(2 * r * rows[:, 1]),
                      np.mean(2 * r)]).astype(dt)
        if kind == "sgd":
            sgd_update(Pr, g, st[0], group, s == 0)
        else:
            adam_update(Pr, g, st[0], st[1], st[2], float(s + 1), group, True)
    tol = {"rtol": 1e-12} if dt == "float64" else {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(P, Pr, **tol)
    np.testing.assert_allclose(G, g, **tol)
    np.testing.assert_allclose(losses, ref_losses, **tol)
    np.testing.assert_allclose(totals, [sum(ref_losses[:3]), sum(ref_losses[3:])], **tol)
    for a, b_ in zip(S[:2 if kind == "adam" else 1], st):
        np.testing.assert_allclose(a, b_, **tol)


def test_codegen_fit_loop_bad_inputs_are_python_errors():
    fl, names, _ = _linreg_loop("sgd", "float64", {"lr": 0.1, "momentum": 0.9,
                                                    "dampening": 0.0, "weight_decay": 0.0,
                                                    "nesterov": False, "maximize": False})
    assert isinstance(fl, FitLoop) and "params=3" in repr(fl)
    N = 10
    ok = {"perm": np.arange(N, dtype=np.int64), "offsets": np.array([0, 5, 10], np.int64),
              "D": np.zeros((N, 3)), "P": np.zeros(3), "C": np.zeros(0), "G": np.zeros(3),
              "state": [np.zeros(3), None, None], "hp": np.zeros(len(names) + 2),
          "losses": np.zeros(2),
              "totals": np.zeros(1), "steps_per_epoch": 2}
    fl.run(**ok)

    def bad(exc, match, **kw):
        with pytest.raises(exc, match=match):
            fl.run(**{**ok, **kw})
    ok["P"][:] = before = np.array([1.0, 2.0, 3.0])
    bad(ValueError, "outside", perm=np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10], np.int64))
    bad(ValueError, r"outside.*perm\[0\] = -1", perm=np.array([-1] + list(range(1, 10)),
                                                              np.int64))
    np.testing.assert_array_equal(ok["P"], before)     # checked before any step ran
    bad(TypeError, "dtype int32", perm=np.arange(N, dtype=np.int32))
    bad(TypeError, "numpy array", perm=list(range(N)))
    bad(ValueError, "non-decreasing", offsets=np.array([0, 6, 5], np.int64))
    bad(ValueError, "non-decreasing", offsets=np.array([0, 5, 11], np.int64))
    bad(ValueError, "non-decreasing", offsets=np.array([-1, 5, 10], np.int64))
    bad(ValueError, "offsets has length 0", offsets=np.zeros(0, np.int64))
    bad(ValueError, "columns", D=np.zeros((N, 2)))
    bad(ValueError, "C-contiguous", D=np.zeros((3, N)).T)
    bad(TypeError, "dtype float32", D=np.zeros((N, 3), np.float32))
    bad(ValueError, "P has length 2", P=np.zeros(2))
    ro = np.zeros(3)
    ro.flags.writeable = False
    bad(ValueError, "writeable", P=ro)
    bad(ValueError, "state\\[0\\] is needed", state=[None, None, None])
    bad(ValueError, "losses has length 1", losses=np.zeros(1))
    bad(ValueError, "hp has length 1", hp=np.zeros(1))
    bad(ValueError, "steps_per_epoch", steps_per_epoch=0)
    one = GroupUpdate(0, 1, ((sp.Symbol("P", real=True), "P"),), (),
                      UpdateVariant((), ()))
    with pytest.raises(ValueError, match="groups cover"):
        compile_fit_loop(
            list(sp.symbols("a b")), [], [], sp.Symbol("a"), [1, 1], reduction="mean",
            groups=[one], cache=False)
    with pytest.raises(ValueError, match="not inputs"):
        compile_fit_loop([sp.Symbol("a")], [], [], sp.Symbol("z"), [1], reduction="mean",
                         groups=[one], cache=False)
    with pytest.raises(ValueError, match="among P, G"):
        compile_fit_loop([sp.Symbol("a")], [], [], sp.Symbol("a"), [1], reduction="mean",
                         groups=[GroupUpdate(0, 1, ((sp.Symbol("Q", real=True), "Q"),), (),
                                             UpdateVariant((), ()))], cache=False)


@pytest.mark.parametrize("dt", [symad.float64, symad.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("opt_name", ["sgd_momentum_dampening_wd", "adamw_amsgrad"])
def test_scalarized_step_runs_one_step_of_the_native_fit_loop(dt, opt_name, monkeypatch):
    """``step(X, y)`` on the scalarized path is one step of the native fit loop (one native call
    for loss, gradient and update): step after step equal to eager — losses, parameters,
    ``.grad``, optimizer state — with the batch size changing between calls, and eager steps
    continuing from the state it leaves."""
    from symad.compiler.native_fit import NativeFit
    X, y = data_for(dt, n=45)
    a, b = small_mlp(dt), small_mlp(dt)
    oa, ob = OPTIMIZERS[opt_name](a.parameters()), OPTIMIZERS[opt_name](b.parameters())
    loss_fn = nn.MSELoss()
    step = symad.compile_step(a, loss_fn, oa, structured=False)
    runs = []
    real = NativeFit.run
    monkeypatch.setattr(NativeFit, "run", lambda self, *a_: runs.append(1) or real(self, *a_))
    for k, (s, e) in enumerate([(0, 10), (10, 20), (20, 27), (27, 45), (0, 45)]):
        la = step(X[s:e], y[s:e]).item()
        lb = eager_step(b, loss_fn, ob, X[s:e], y[s:e])
        np.testing.assert_allclose(la, lb, **_tol(dt))
        assert_same(a, oa, b, ob, dt)
    assert _runner(step).kind == "scalarized"
    assert len(runs) == 5 and "native fit loop" in step.native_calls
    for _ in range(2):                      # eager continues from what the loop left
        eager_step(a, loss_fn, oa, X, y)
        eager_step(b, loss_fn, ob, X, y)
    assert_same(a, oa, b, ob, dt)


def test_structured_false_keeps_the_scalarized_path_above_compiles_default_limit():
    """symad.compile gives functions of more than MAX_SCALAR_PARAMS (128) parameters to the
    tensor program; compile_step(structured=False) asks for the scalarized path and still gets
    it (a 10-16-1 MLP, 193 parameters: the native fit loop), equal to eager."""
    from symad.compiler.compiled import MAX_SCALAR_PARAMS
    dt = symad.float64
    X, y = data_for(dt, n=64, n_in=10, n_out=1)
    symad.manual_seed(11)
    a = nn.Sequential(nn.Linear(X.shape[1], 16), nn.Tanh(), nn.Linear(16, 1)).to(dt)
    b = nn.Sequential(nn.Linear(X.shape[1], 16), nn.Tanh(), nn.Linear(16, 1)).to(dt)
    b.load_state_dict(a.state_dict())
    assert sum(p.numel() for p in a.parameters()) > MAX_SCALAR_PARAMS
    oa, ob = optim.SGD(a.parameters(), lr=0.05), optim.SGD(b.parameters(), lr=0.05)
    step = symad.compile_step(a, nn.MSELoss(), oa, structured=False)
    got = step(X, y)
    assert _runner(step).kind == "scalarized"
    want = eager_step(b, nn.MSELoss(), ob, X, y)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-12)
    assert_same(a, oa, b, ob, dt)
