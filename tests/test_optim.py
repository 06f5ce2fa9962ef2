"""symad.optim against two oracles: a numpy transcription of the algorithms in PyTorch's docs, and
parameter values computed with real PyTorch 2.13 (encoded below as constants)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import symad
from symad import optim

A = np.array([1.0, 2.0, 3.0])
B = np.array([0.5, -1.0, 0.25])
P0 = [1.0, -2.0, 3.0]

CONFIGS = {
    "sgd_plain": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd_dampening": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    "sgd_nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_wd_momentum": ("SGD", dict(lr=0.1, momentum=0.5, weight_decay=0.1)),
    "sgd_maximize": ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True)),
    "adam": ("Adam", dict(lr=0.1)),
    "adam_wd": ("Adam", dict(lr=0.1, weight_decay=0.1)),
    "adam_amsgrad": ("Adam", dict(lr=0.1, betas=(0.8, 0.99), amsgrad=True)),
    "adam_maximize": ("Adam", dict(lr=0.05, eps=1e-3, maximize=True)),
    "adamw": ("AdamW", dict(lr=0.1)),
    "adamw_wd": ("AdamW", dict(lr=0.1, weight_decay=0.5, amsgrad=True)),
}

# torch.optim.<cls>([p], **kw), 3 steps on loss = sum(0.5*A*p*p + B*p), p0 = P0 (torch 2.13.0)
TORCH_F64 = {
    'sgd_plain': [0.5935, -0.78, 0.9742499999999998],
    'sgd_momentum': [0.22899999999999993, 0.3450000000000001, -0.9405000000000004],
    'sgd_dampening': [0.33551499999999995, 0.06480000000000011, -0.5511675000000003],
    'sgd_nesterov': [-0.009018500000000049, 0.7708800000000001, -1.1568667500000005],
    'sgd_wd_momentum': [0.3884639999999999, -0.20386799999999994, 0.03367449999999989],
    'sgd_maximize': [1.8470139999999997, -5.147888, 9.342059500000001],
    'adam': [0.7009028715453672, -1.700473933862959, 2.700369467415725],
    'adam_wd': [0.7009405913211053, -1.7004794391133837, 2.7003698445761115],
    'adam_amsgrad': [0.7015965798973185, -1.7008809293774192, 2.700697366008806],
    'adam_maximize': [1.1500322155016829, -2.1500553059632512, 3.1500544157341337],
    'adamw': [0.6982170937646219, -1.694790963604646, 2.6916911257391907],
    'adamw_wd': [0.5736496715371942, -1.4306120735061172, 2.288008039314099],
}
TORCH_F32 = {
    'sgd_plain': [0.593500018119812, -0.7800000309944153, 0.9742499589920044],
    'sgd_momentum': [0.229000061750412, 0.3450000286102295, -0.9404999613761902],
    'sgd_dampening': [0.33551502227783203, 0.06480008363723755, -0.5511674880981445],
    'sgd_nesterov': [-0.009018474258482456, 0.7708799839019775, -1.1568666696548462],
    'sgd_wd_momentum': [0.38846397399902344, -0.20386798679828644, 0.03367452695965767],
    'sgd_maximize': [1.8470139503479004, -5.14788818359375, 9.342059135437012],
    'adam': [0.7009028196334839, -1.7004739046096802, 2.7003695964813232],
    'adam_wd': [0.7009405493736267, -1.7004793882369995, 2.7003698348999023],
    'adam_amsgrad': [0.7015965580940247, -1.7008808851242065, 2.700697422027588],
    'adam_maximize': [1.1500321626663208, -2.150055408477783, 3.1500542163848877],
    'adamw': [0.6982170343399048, -1.6947910785675049, 2.6916909217834473],
    'adamw_wd': [0.5736495852470398, -1.4306120872497559, 2.288008213043213],
}


# -- the numpy oracle: PyTorch's documented pseudo-code, line by line ---------------------------
def ref_sgd(p, grads_of, steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
            nesterov=False, maximize=False):
    b = None
    for t in range(1, steps + 1):
        g = grads_of(p)
        if maximize:
            g = -g
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            b = g.copy() if t == 1 else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
    return p


def ref_adam(p, grads_of, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             amsgrad=False, maximize=False, decoupled=False):
    b1, b2 = betas
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    for t in range(1, steps + 1):
        g = grads_of(p)
        if maximize:
            g = -g
        if weight_decay and decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2 ** t)
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(vhat) + eps)
    return p


def reference(cls, kw, steps=3):
    grads_of = lambda p: A * p + B
    p = np.array(P0)
    if cls == "SGD":
        return ref_sgd(p, grads_of, steps, **kw)
    kw = dict(kw)
    if cls == "AdamW":
        kw.setdefault("weight_decay", 1e-2)
        return ref_adam(p, grads_of, steps, decoupled=True, **kw)
    return ref_adam(p, grads_of, steps, **kw)


def run_symad(cls, kw, dtype, steps=3):
    p = symad.tensor(P0, dtype=dtype, requires_grad=True)
    a = symad.tensor(A, dtype=dtype)
    b = symad.tensor(B, dtype=dtype)
    opt = getattr(optim, cls)([p], **kw)
    for _ in range(steps):
        opt.zero_grad()
        loss = (0.5 * a * p * p + b * p).sum()
        loss.backward()
        opt.step()
    return p


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_numpy_reference_and_torch_float64(name):
    cls, kw = CONFIGS[name]
    p = run_symad(cls, kw, symad.float64)
    got = p.detach().numpy()
    np.testing.assert_allclose(got, reference(cls, kw), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got, TORCH_F64[name], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_torch_float32(name):
    cls, kw = CONFIGS[name]
    p = run_symad(cls, kw, symad.float32)
    assert p.dtype == symad.float32
    np.testing.assert_allclose(p.detach().numpy(), np.float32(TORCH_F32[name]), rtol=2e-6,
                               atol=2e-7)


def test_reference_oracle_is_not_trivially_equal_across_configs():
    # the configurations really exercise different branches (guards the table above)
    finals = {n: tuple(np.round(reference(*CONFIGS[n]), 10)) for n in CONFIGS}
    assert len(set(finals.values())) == len(finals)


def test_sgd_first_momentum_buffer_is_the_gradient():
    p = symad.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    (p * p).sum().backward()
    opt.step()
    buf = opt.state[p]["momentum_buffer"]
    np.testing.assert_allclose(buf.numpy(), [2.0, 4.0])  # not (1 - dampening) * grad
    np.testing.assert_allclose(p.detach().numpy(), [0.8, 1.6], rtol=1e-6)


def test_seed_sgd_step_is_9_6():
    w = symad.tensor(10.0, requires_grad=True)
    opt = optim.SGD([w], lr=0.01)
    (2 * w ** 2).backward()
    opt.step()
    assert w.item() == pytest.approx(9.6, abs=1e-6)
    assert w.is_leaf and w.requires_grad


def test_step_bumps_version_and_keeps_storage():
    p = symad.tensor([1.0, 2.0], requires_grad=True)
    ptr, v0 = p.data_ptr(), p._version.value
    opt = optim.Adam([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    assert p.data_ptr() == ptr
    assert p._version.value > v0


def test_param_groups_have_their_own_options():
    a = symad.tensor([1.0], requires_grad=True)
    b = symad.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.0)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    (a.sum() + b.sum()).backward()
    opt.step()
    assert a.item() == pytest.approx(0.9) and b.item() == pytest.approx(0.5)


def test_add_param_group_and_duplicates():
    a = symad.tensor([1.0], requires_grad=True)
    b = symad.tensor([2.0], requires_grad=True)
    opt = optim.Adam([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.01})
    assert opt.param_groups[1]["betas"] == (0.9, 0.999) and opt.param_groups[1]["lr"] == 0.01
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_invalid_arguments():
    p = symad.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)


def test_zero_grad_set_to_none_or_zero():
    p = symad.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * p).sum().backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_params_without_grad_are_skipped():
    a = symad.tensor([1.0], requires_grad=True)
    b = symad.tensor([5.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * 3).sum().backward()
    opt.step()
    assert b.item() == 5.0 and a.item() == pytest.approx(0.9)


def test_closure_is_called_and_its_loss_returned():
    p = symad.tensor([3.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with symad.no_grad():  # step re-enables grad for the closure, like PyTorch
        loss = opt.step(closure)
    assert loss.item() == 9.0 and p.item() == pytest.approx(1.5)


@pytest.mark.parametrize("name", ["sgd_nesterov", "adam_amsgrad", "adamw_wd"])
def test_state_dict_round_trip_resumes_exactly(name):
    cls, kw = CONFIGS[name]
    a = symad.tensor(A)
    b = symad.tensor(B)

    def train(p, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            (0.5 * a * p * p + b * p).sum().backward()
            opt.step()

    p1 = symad.tensor(P0, requires_grad=True)
    o1 = getattr(optim, cls)([p1], **kw)
    train(p1, o1, 2)
    sd = o1.state_dict()
    assert sorted(sd) == ["param_groups", "state"] and sd["param_groups"][0]["params"] == [0]
    p2 = symad.tensor(p1.detach().numpy().copy(), requires_grad=True)
    o2 = getattr(optim, cls)([p2], lr=123.0)  # options come back from the state dict
    o2.load_state_dict(sd)
    assert o2.param_groups[0]["lr"] == kw["lr"]
    train(p1, o1, 2)
    train(p2, o2, 2)
    np.testing.assert_array_equal(p1.detach().numpy(), p2.detach().numpy())
    # the loaded state is a copy, not shared with the source optimizer
    k = next(iter(o2.state[p2]))
    assert o2.state[p2][k] is not o1.state[p1][k]


def test_trains_a_linear_model():
    symad.manual_seed(0)
    X = symad.randn(64, 2)
    y = X @ symad.tensor([[2.0], [-3.4]]) + 4.2
    net = symad.nn.Linear(2, 1)
    opt = optim.Adam(net.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss = symad.nn.functional.mse_loss(net(X), y)
        loss.backward()
        opt.step()
    np.testing.assert_allclose(net.weight.detach().numpy(), [[2.0, -3.4]], atol=1e-3)
    assert net.bias.item() == pytest.approx(4.2, abs=1e-3)
    assert math.isfinite(loss.item())
