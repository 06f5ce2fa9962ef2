"""RMSprop and Adagrad against independent float64 numpy re-implementations of PyTorch's
documented update equations, plus hand-computed first steps; optimizer state dicts."""
from __future__ import annotations

import math

import numpy as np
import pytest

import symad
from symad import optim

W0 = np.array([1.0, -2.0, 0.5, 3.0])
TARGET = np.array([0.3, 0.1, -0.7, 2.0])


def _grad(w):
    """Gradient of the test loss sum((w - target)^2 * (1 + w^2)/2)."""
    d = w - TARGET
    return d * (1 + w * w) + d * d * w


def _symad_run(make, steps=6):
    w = symad.tensor(W0, dtype=symad.float64, requires_grad=True)
    opt = make([w])
    tgt = symad.tensor(TARGET, dtype=symad.float64)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        d = w - tgt
        (d * d * (1 + w * w) / 2).sum().backward()
        opt.step()
        out.append(w.detach().numpy().copy())
    return np.array(out), opt


def _rmsprop_ref(steps, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, maximize=False):
    w = W0.copy()
    v = np.zeros_like(w)
    gavg = np.zeros_like(w)
    buf = np.zeros_like(w)
    out = []
    for _ in range(steps):
        g = _grad(w)
        g = -g if maximize else g
        g = g + weight_decay * w
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            gavg = alpha * gavg + (1 - alpha) * g
            avg = np.sqrt(v - gavg * gavg) + eps
        else:
            avg = np.sqrt(v) + eps
        if momentum > 0:
            buf = momentum * buf + g / avg
            w = w - lr * buf
        else:
            w = w - lr * g / avg
        out.append(w.copy())
    return np.array(out)


def _adagrad_ref(steps, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, maximize=False):
    w = W0.copy()
    s = np.full_like(w, initial_accumulator_value)
    out = []
    for t in range(1, steps + 1):
        g = _grad(w)
        g = -g if maximize else g
        g = g + weight_decay * w
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        w = w - clr * g / (np.sqrt(s) + eps)
        out.append(w.copy())
    return np.array(out)


@pytest.mark.parametrize("kw", [{}, {"lr": 0.05, "alpha": 0.9}, {"momentum": 0.8},
                                {"centered": True}, {"centered": True, "momentum": 0.5},
                                {"weight_decay": 0.1}, {"maximize": True, "lr": 1e-3}])
def test_rmsprop_matches_numpy(kw):
    got, _ = _symad_run(lambda ps: optim.RMSprop(ps, **kw))
    np.testing.assert_allclose(got, _rmsprop_ref(6, **kw), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", [{}, {"lr": 0.5}, {"lr_decay": 0.1, "lr": 0.3},
                                {"initial_accumulator_value": 0.5}, {"weight_decay": 0.2},
                                {"maximize": True}])
def test_adagrad_matches_numpy(kw):
    got, _ = _symad_run(lambda ps: optim.Adagrad(ps, **kw))
    np.testing.assert_allclose(got, _adagrad_ref(6, **kw), rtol=1e-12, atol=1e-14)


def test_hand_computed_steps():
    # f = w^2 at w = 1: grad 2. RMSprop: v = 0.01 * 4, p = 1 - 0.01 * 2 / 0.2 = 0.9
    w = symad.tensor([1.0], dtype=symad.float64, requires_grad=True)
    opt = optim.RMSprop([w], lr=0.01, eps=0.0)
    (w ** 2).sum().backward()
    opt.step()
    assert w.item() == pytest.approx(0.9, abs=1e-15)
    # Adagrad, lr 0.1: s = 4, p = 0.9; then g = 1.8, s = 7.24, p = 0.9 - 0.18 / sqrt(7.24)
    w = symad.tensor([1.0], dtype=symad.float64, requires_grad=True)
    opt = optim.Adagrad([w], lr=0.1, eps=0.0)
    for _ in range(2):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    assert w.item() == pytest.approx(0.9 - 0.18 / math.sqrt(7.24), abs=1e-15)


def test_float32_stays_float32():
    w = symad.tensor([1.0, 2.0], requires_grad=True)
    for opt in (optim.RMSprop([w], momentum=0.9, centered=True), optim.Adagrad([w])):
        (w * w).sum().backward()
        opt.step()
        w.grad = None
        assert w.dtype == symad.float32 and w.detach().numpy().dtype == np.float32
        assert all(v.dtype in (symad.float32,) for s in opt.state.values() for v in s.values())


def test_invalid_arguments():
    w = [symad.zeros(1, requires_grad=True)]
    for make, match in [(lambda: optim.RMSprop(w, lr=-1), "Invalid learning rate"),
                        (lambda: optim.RMSprop(w, alpha=-0.1), "Invalid alpha value"),
                        (lambda: optim.RMSprop(w, momentum=-1), "Invalid momentum value"),
                        (lambda: optim.Adagrad(w, lr_decay=-1), "Invalid lr_decay value"),
                        (lambda: optim.Adagrad(w, initial_accumulator_value=-1),
                         "Invalid initial_accumulator_value value")]:
        with pytest.raises(ValueError, match=match):
            make()


def test_param_group_keys_are_pytorchs():
    w = [symad.zeros(1, requires_grad=True)]
    assert list(optim.RMSprop(w).state_dict()["param_groups"][0]) == [
        "lr", "momentum", "alpha", "eps", "centered", "weight_decay", "capturable", "foreach",
        "maximize", "differentiable", "params"]
    sd = optim.Adagrad(w).state_dict()
    assert list(sd["param_groups"][0]) == [
        "lr", "lr_decay", "eps", "weight_decay", "initial_accumulator_value", "foreach",
        "maximize", "differentiable", "fused", "params"]
    assert list(sd["state"][0]) == ["step", "sum"]  # Adagrad's state exists before any step


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.05),
                                  lambda ps: optim.RMSprop(ps, momentum=0.5, centered=True),
                                  lambda ps: optim.Adagrad(ps, lr=0.2, lr_decay=0.01)])
def test_state_dict_resumes_exactly(make):
    """Train 3 steps, save the optimizer state, train 3 more; a fresh optimizer loaded with the
    state continues identically (PyTorch's layout: {'state': {idx: ...}, 'param_groups': ...})."""
    full, _ = _symad_run(make, steps=6)
    first, opt = _symad_run(make, steps=3)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"} and list(sd["state"]) == [0]
    assert sd["param_groups"][0]["params"] == [0]
    w = symad.tensor(first[-1], dtype=symad.float64, requires_grad=True)
    opt2 = make([w])
    opt2.load_state_dict(sd)
    tgt = symad.tensor(TARGET, dtype=symad.float64)
    for k in range(3):
        opt2.zero_grad()
        d = w - tgt
        (d * d * (1 + w * w) / 2).sum().backward()
        opt2.step()
        np.testing.assert_array_equal(w.detach().numpy(), full[3 + k])
