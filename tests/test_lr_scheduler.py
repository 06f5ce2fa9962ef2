"""``optim.lr_scheduler`` against PyTorch's documented schedules: hand-computed sequences (the
examples of PyTorch's docs) and the closed forms, evaluated independently here."""
from __future__ import annotations

import math

import pytest

import symad
from symad import optim
from symad.optim import lr_scheduler as S


def _opt(lr=0.1, kind="sgd", **kw):
    w = symad.zeros(2, requires_grad=True)
    if kind == "adam":
        return optim.Adam([w], lr=lr, **kw)
    return optim.SGD([w], lr=lr, **kw)


def _run(opt, sched, n):
    """The lr used by each of n epochs (optimizer.step() then scheduler.step(), as PyTorch
    documents)."""
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]
        opt.step()
        sched.step()
    return lrs


def test_step_lr_docs_example():
    # PyTorch docs: lr = 0.05 if epoch < 30, 0.005 if 30 <= epoch < 60, 0.0005 if 60 <= epoch < 90
    opt = _opt(0.05)
    lrs = _run(opt, S.StepLR(opt, step_size=30, gamma=0.1), 90)
    assert lrs[:30] == [0.05] * 30
    assert lrs[30:60] == pytest.approx([0.005] * 30, rel=1e-15)
    assert lrs[60:] == pytest.approx([0.0005] * 30, rel=1e-15)


def test_step_lr_small_constants():
    opt = _opt(0.1)
    assert _run(opt, S.StepLR(opt, step_size=2, gamma=0.5), 7) == [0.1, 0.1, 0.05, 0.05, 0.025,
                                                                    0.025, 0.0125]


def test_multistep_lr_docs_example():
    # PyTorch docs: 0.05 if epoch < 30, 0.005 if 30 <= epoch < 80, 0.0005 if epoch >= 80
    opt = _opt(0.05)
    lrs = _run(opt, S.MultiStepLR(opt, milestones=[30, 80], gamma=0.1), 100)
    assert lrs[:30] == [0.05] * 30
    assert lrs[30:80] == pytest.approx([0.005] * 50, rel=1e-15)
    assert lrs[80:] == pytest.approx([0.0005] * 20, rel=1e-15)


def test_multistep_repeated_milestone_applies_gamma_twice():
    opt = _opt(1.0)
    assert _run(opt, S.MultiStepLR(opt, milestones=[2, 2, 4], gamma=0.5), 6) == [
        1.0, 1.0, 0.25, 0.25, 0.125, 0.125]


def test_exponential_lr():
    opt = _opt(0.2)
    lrs = _run(opt, S.ExponentialLR(opt, gamma=0.9), 20)
    assert lrs == pytest.approx([0.2 * 0.9 ** k for k in range(20)], rel=1e-13)


@pytest.mark.parametrize("t_max,eta_min", [(10, 0.0), (7, 0.001)])
def test_cosine_annealing_matches_closed_form_over_two_periods(t_max, eta_min):
    opt = _opt(0.1)
    lrs = _run(opt, S.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min), 4 * t_max)
    # SGDR's closed form: eta_min + (base - eta_min)(1 + cos(pi T_cur / T_max)) / 2, which the
    # recursive form follows, continuing past T_max (the lr rises again)
    want = [eta_min + (0.1 - eta_min) * (1 + math.cos(math.pi * k / t_max)) / 2
            for k in range(4 * t_max)]
    assert lrs == pytest.approx(want, rel=1e-10, abs=1e-15)
    assert lrs[t_max] == pytest.approx(eta_min, abs=1e-15)


def test_lambda_lr_and_per_group_lambdas():
    opt = _opt(0.5)
    assert _run(opt, S.LambdaLR(opt, lambda e: 0.95 ** e), 5) == pytest.approx(
        [0.5 * 0.95 ** e for e in range(5)], rel=1e-15)
    w1, w2 = symad.zeros(1, requires_grad=True), symad.zeros(1, requires_grad=True)
    opt = optim.SGD([{"params": [w1]}, {"params": [w2], "lr": 1.0}], lr=0.1)
    sched = S.LambdaLR(opt, [lambda e: e // 2, lambda e: 1 / (e + 1)])
    for _ in range(3):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == [0.1, 0.25]
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        S.LambdaLR(opt, [lambda e: 1.0])


def test_one_cycle_hand_values_and_momentum():
    # max_lr 1, 10 steps, pct_start 0.3: initial 1/25 = 0.04, warm-up ends at step 2.0,
    # cosine: step 1 is halfway: 1 + (0.04 - 1)/2 = 0.52; final lr 0.04 / 1e4
    opt = _opt(0.1, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    lrs, moms = [], []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.04, 0.52, 1.0], rel=1e-15)
    assert moms[:3] == pytest.approx([0.95, 0.90, 0.85], rel=1e-15)
    for k in range(2, 10):  # annealing phase, closed form
        pct = (k - 2.0) / (9 - 2.0)
        want = 4e-6 + (1.0 - 4e-6) / 2 * (math.cos(math.pi * pct) + 1)
        assert lrs[k] == pytest.approx(want, rel=1e-14)
    assert lrs[9] == pytest.approx(4e-6, rel=1e-12) and moms[9] == pytest.approx(0.95)
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        sched.step()


def test_one_cycle_linear_three_phase_and_adam_betas():
    opt = _opt(0.1, kind="adam")
    sched = S.OneCycleLR(opt, max_lr=0.5, epochs=2, steps_per_epoch=5, anneal_strategy="linear",
                         three_phase=True, pct_start=0.4)
    assert sched.total_steps == 10
    lrs, b1 = [], []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        b1.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    lo, hi, last = 0.02, 0.5, 0.02 / 1e4
    # phases end at steps 3.0, 6.0 and 9
    want = [lo + (hi - lo) * k / 3 for k in range(4)] + [hi + (lo - hi) * (k - 3) / 3
                                                         for k in (4, 5, 6)]
    want += [lo + (last - lo) * (k - 6) / 3 for k in (7, 8, 9)]
    assert lrs == pytest.approx(want, rel=1e-13)
    assert b1[0] == 0.95 and b1[3] == pytest.approx(0.85) and b1[6] == pytest.approx(0.95)
    assert opt.param_groups[0]["betas"][1] == 0.999


def test_one_cycle_argument_errors():
    opt = _opt()
    with pytest.raises(ValueError, match="You must define either total_steps OR"):
        S.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="Expected float between 0 and 1 pct_start"):
        S.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=2.0)
    with pytest.raises(ValueError, match="anneal_strategy must be one of"):
        S.OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="must support momentum or beta1"):
        S.OneCycleLR(optim.Adagrad([symad.zeros(1, requires_grad=True)]), 1.0, total_steps=5)


def test_scheduler_before_optimizer_warns():
    opt = _opt()
    sched = S.StepLR(opt, 1)
    with pytest.warns(UserWarning, match=r"Detected call of `lr_scheduler.step\(\)` before"):
        sched.step()


def test_step_with_epoch_uses_closed_form_and_warns():
    opt = _opt(1.0)
    sched = S.StepLR(opt, step_size=3, gamma=0.1)
    opt.step()
    with pytest.warns(UserWarning, match="The epoch parameter in `scheduler.step\\(\\)`"):
        sched.step(7)
    assert sched.get_last_lr() == pytest.approx([0.01], rel=1e-15)


def test_scheduler_state_dict_round_trip():
    opt = _opt(0.1)
    sched = S.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        opt.step()
        sched.step()
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 4 and sd["base_lrs"] == [0.1]
    opt2 = _opt(0.1)
    opt2.load_state_dict(opt.state_dict())
    sched2 = S.CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(sd)
    for _ in range(3):
        opt.step()
        sched.step()
        opt2.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()


def test_resuming_needs_initial_lr():
    with pytest.raises(KeyError, match="param 'initial_lr' is not specified"):
        S.StepLR(_opt(), 2, last_epoch=3)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        S.StepLR(object(), 2)


def test_reduce_lr_on_plateau():
    opt = _opt(1.0)
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    lrs = []
    for metric in [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0]:
        opt.step()
        sched.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    # bad epochs: 4.0 repeats; > patience (1) after two bad epochs -> halve, counter resets
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_scheduler_drives_compile_step_like_eager():
    """symad.compile_step reads the group's lr at every step, so a scheduler changes it; the
    compiled update counts as an optimizer step (no 'before optimizer.step()' warning)."""
    from symad import nn
    X, y = symad.randn(32, 3), symad.randn(32, 1)
    weights = []
    for compiled in (True, False):
        symad.manual_seed(0)
        net = nn.Linear(3, 1)
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.5)
        sched = S.StepLR(opt, step_size=1, gamma=0.5)
        step = symad.compile_step(net, nn.MSELoss(), opt) if compiled else None
        for _ in range(3):
            if compiled:
                step(X, y)
            else:
                opt.zero_grad()
                nn.MSELoss()(net(X), y).backward()
                opt.step()
            sched.step()
        weights.append(net.weight.detach().numpy())
        assert sched.get_last_lr() == [0.0125]
    import numpy as np
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-5, atol=1e-7)
