"""The fused optimizer update as a native loop traced from ``sgd_update`` / ``adam_update``:
bitwise equal to eager ``optimizer.step()`` (the oracle), across hyperparameter changes."""
from __future__ import annotations

import numpy as np
import pytest

import symad
from symad import nn, optim
from symad.compiler import native_program, native_update
from symad.optim.elementwise import Tracer
from symad.optim.sgd import sgd_update

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.05),
    "sgd-momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd-nesterov-wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                            weight_decay=0.01),
    "sgd-dampening-maximize": lambda ps: optim.SGD(ps, lr=0.01, momentum=0.5, dampening=0.3,
                                                   maximize=True),
    "adam": lambda ps: optim.Adam(ps, lr=1e-2),
    "adam-wd-maximize-lerp>=0.5": lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=0.1,
                                                         maximize=True, betas=(0.3, 0.9)),
    "adamw-amsgrad": lambda ps: optim.AdamW(ps, lr=1e-2, amsgrad=True),
}


@pytest.fixture
def replay_gradients():
    """Gradients by the numpy replay (bitwise eager), so the update alone is compared."""
    native_program.ENABLED = False
    yield
    native_program.ENABLED = True


def _setup(dtype, make_opt):
    symad.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1)).to(dtype)
    rng = np.random.default_rng(0)
    X = symad.tensor(rng.normal(size=(64, 10)), dtype=dtype)
    y = symad.tensor(rng.normal(size=(64, 1)), dtype=dtype)
    return net, make_opt(net.parameters()), X, y


def _eager_step(net, opt, X, y):
    loss = nn.MSELoss()(net(X), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def _params(net):
    return [p.detach().numpy().copy() for p in net.parameters()]


@pytest.mark.parametrize("dtype", [symad.float32, symad.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_native_update_is_bitwise_eager(name, dtype, replay_gradients):
    net, opt, X, y = _setup(dtype, OPTIMIZERS[name])
    step = symad.compile_step(net, nn.MSELoss(), opt)
    for _ in range(6):
        step(X, y)
    (runner,) = step._runners.values()
    upd = runner.flat.native_update
    assert upd.failed is None and sum(len(v) for v in upd._kernels.values()) == 1
    net0, opt0, X0, y0 = _setup(dtype, OPTIMIZERS[name])
    for _ in range(6):
        _eager_step(net0, opt0, X0, y0)
    for a, b in zip(_params(net), _params(net0)):
        np.testing.assert_array_equal(a, b)
    # the optimizer state the fused step keeps is eager's too
    for p, q in zip(net.parameters(), net0.parameters()):
        for k, v in opt0.state[q].items():
            np.testing.assert_array_equal(np.asarray(opt.state[p][k]._data), np.asarray(v._data))


def test_lr_schedule_reuses_the_kernel_and_a_new_branch_builds_another(replay_gradients):
    make = OPTIMIZERS["sgd-momentum"]
    net, opt, X, y = _setup(symad.float32, make)
    net0, opt0, X0, y0 = _setup(symad.float32, make)
    step = symad.compile_step(net, nn.MSELoss(), opt)
    sched, sched0 = optim.lr_scheduler.StepLR(opt, 2, 0.5), optim.lr_scheduler.StepLR(opt0, 2, 0.5)
    for i in range(8):
        if i == 5:       # a branch of the declaration changes: weight decay now applies
            opt.param_groups[0]["weight_decay"] = opt0.param_groups[0]["weight_decay"] = 0.1
        step(X, y)
        _eager_step(net0, opt0, X0, y0)
        sched.step()
        sched0.step()
        for a, b in zip(_params(net), _params(net0)):
            np.testing.assert_array_equal(a, b)
    (runner,) = step._runners.values()
    # lr is a runtime input (four values, one kernel); weight_decay != 0 is a guard (two)
    assert sum(len(v) for v in runner.flat.native_update._kernels.values()) == 2


def test_disabled_native_update_runs_numpy(replay_gradients):
    native_update.ENABLED = False
    try:
        net, opt, X, y = _setup(symad.float64, OPTIMIZERS["adam"])
        step = symad.compile_step(net, nn.MSELoss(), opt)
        for _ in range(3):
            step(X, y)
        (runner,) = step._runners.values()
        assert runner.flat.native_update._kernels == {}
    finally:
        native_update.ENABLED = True
    net0, opt0, X0, y0 = _setup(symad.float64, OPTIMIZERS["adam"])
    for _ in range(3):
        _eager_step(net0, opt0, X0, y0)
    for a, b in zip(_params(net), _params(net0)):
        np.testing.assert_array_equal(a, b)


def test_tracer_keeps_hyperparameter_arithmetic_in_python():
    """``(1 - dampening)`` is one runtime scalar computed in Python (as numpy casts it), the
    momentum and weight-decay branches are guards, and P's formula reads the new buffer."""
    env = dict(lr=0.1, momentum=0.9, dampening=0.25, weight_decay=0.0, nesterov=False,
               maximize=False)
    tr = Tracer(env)
    P, G, B = tr.array("P"), tr.array("G"), tr.array("buf")
    sgd_update(P, G, B, tr.group(env), False, xp=tr)
    assert set(tr.written) == {"P", "buf"}
    values = sorted(fn(env) for _, fn in tr.inputs)
    assert values == sorted([0.9, 1 - 0.25, -0.1])
    assert tr.holds(env) and not tr.holds(dict(env, weight_decay=0.1))
    assert tr.holds(dict(env, lr=0.5))                 # lr is an input, not a guard
    import sympy
    sub = {sympy.Symbol(n, real=True): v for n, v in (("P", 2.0), ("G", 0.5), ("buf", 1.0))}
    sub.update({s: fn(env) for s, fn in tr.inputs})
    buf = 0.9 * 1.0 + 0.75 * 0.5
    assert float(tr.written["buf"].xreplace(sub)) == buf
    assert float(tr.written["P"].xreplace(sub)) == 2.0 - 0.1 * buf
