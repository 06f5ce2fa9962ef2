"""symad.nn: Module bookkeeping, layers, init and losses, against numpy and encoded PyTorch values
(torch 2.13.0, computed outside the test suite)."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import symad
from symad import nn, optim
from symad.nn import functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(4, 2, bias=False)
        self.register_buffer("scale", symad.tensor([2.0]))
        self.note = "plain attribute"

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


# -- Parameter --------------------------------------------------------------------------------
def test_parameter_shares_memory_and_requires_grad():
    t = symad.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    assert p.requires_grad and p.is_leaf and isinstance(p, symad.Tensor)
    assert p.data_ptr() == t.data_ptr()
    t[0] = 7.0
    assert p[0].item() == 7.0
    p.note = "a Parameter has a __dict__"
    assert nn.Parameter(t, requires_grad=False).requires_grad is False


def test_parameter_repr_matches_pytorch():
    assert repr(nn.Parameter(symad.tensor([1.0, 2.0]))) == \
        'Parameter containing:\ntensor([1., 2.], requires_grad=True)'


def test_parameter_ops_give_plain_tensors_and_grads():
    p = nn.Parameter(symad.tensor([1.0, -2.0]))
    y = (p * p).sum()
    assert type(y) is symad.Tensor and y.grad_fn.name() == "SumBackward0"
    y.backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, -4.0])


def test_parameter_deepcopy_is_independent():
    p = nn.Parameter(symad.tensor([1.0, 2.0]))
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q.requires_grad
    q.data[0] = 5.0
    assert p[0].item() == 1.0


# -- Module bookkeeping ------------------------------------------------------------------------
def test_registration_and_traversal():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight"]
    assert [n for n, _ in net.named_buffers()] == ["scale"]
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    assert [type(m).__name__ for m in net.modules()] == ["Net", "Linear", "Tanh", "Linear"]
    assert len(list(net.parameters(recurse=False))) == 0
    assert net.note == "plain attribute" and "note" not in net._parameters
    assert net.fc2.bias is None
    del net.fc1
    assert [n for n, _ in net.named_parameters()] == ["fc2.weight"]


def test_shared_parameter_is_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, lin)
    assert len(list(seq.parameters())) == 2


def test_assigning_non_parameter_to_parameter_slot_raises():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="weight"):
        lin.weight = symad.zeros(2, 2)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lin.nope  # noqa: B018


def test_setattr_before_init_raises():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)
            super().__init__()

    with pytest.raises(AttributeError, match="__init__"):
        Bad()


def test_train_eval_propagates():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_and_apply():
    net = Net()
    net(symad.ones(1, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0.0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Tanh", "Linear", "Net"]  # children first, like PyTorch


def test_to_double_and_float():
    net = Net()
    w = net.fc1.weight
    before = w.detach().numpy().copy()
    assert net.double() is net
    assert all(p.dtype == symad.float64 for p in net.parameters())
    assert net.scale.dtype == symad.float64
    assert net.fc1.weight is w  # same Parameter object, like PyTorch's param.data = ...
    np.testing.assert_array_equal(w.detach().numpy(), before.astype(np.float64))
    out = net(symad.ones(2, 3, dtype=symad.float64))
    assert out.dtype == symad.float64
    net.to(symad.float32)
    assert all(p.dtype == symad.float32 for p in net.parameters())
    with pytest.raises(RuntimeError, match="CPU"):
        net.to("cuda")


def test_state_dict_round_trip():
    symad.manual_seed(1)
    a, b = Net(), Net()
    sd = a.state_dict()
    # own parameters and buffers first, then the children's (torch 2.13.0 gives this order)
    assert list(sd) == ["scale", "fc1.weight", "fc1.bias", "fc2.weight"]
    assert not sd["fc1.weight"].requires_grad
    assert sd["fc1.weight"].data_ptr() == a.fc1.weight.data_ptr()  # detached, shared
    assert not np.array_equal(a.fc1.weight.detach().numpy(), b.fc1.weight.detach().numpy())
    ptr = b.fc1.weight.data_ptr()
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.fc1.weight.data_ptr() == ptr  # copied in place
    x = symad.randn(5, 3)
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())


def test_load_state_dict_errors_and_non_strict():
    net = Net()
    sd = net.state_dict()
    bad = dict(sd)
    del bad["fc1.bias"]
    bad["extra"] = symad.zeros(1)
    with pytest.raises(RuntimeError) as e:
        net.load_state_dict(bad)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "fc1.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "extra"' in msg
    r = net.load_state_dict(bad, strict=False)
    assert r.missing_keys == ["fc1.bias"] and r.unexpected_keys == ["extra"]
    shape = dict(sd)
    shape["fc1.weight"] = symad.zeros(3, 4)
    before = net.fc1.bias.detach().numpy().copy()
    shape["fc1.bias"] = symad.zeros(4)
    with pytest.raises(RuntimeError, match=r"size mismatch for fc1.weight: copying a param with "
                                           r"shape \[3, 4\] from checkpoint, the shape in current "
                                           r"model is \[4, 3\]"):
        net.load_state_dict(shape)
    np.testing.assert_array_equal(net.fc1.bias.detach().numpy(), before)  # nothing copied


def test_repr_matches_pytorch():
    assert repr(nn.Sequential(nn.Linear(2, 1))) == \
        'Sequential(\n  (0): Linear(in_features=2, out_features=1, bias=True)\n)'

    class M(nn.Module):
        def __init__(s):
            super().__init__()
            s.seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Dropout(0.3))
            s.sm = nn.Softmax(dim=1)
            s.f = nn.Flatten()
            s.ls = nn.LogSoftmax(dim=1)
            s.t = nn.Tanh()
            s.l = nn.Linear(3, 1, bias=False)

    # repr(M()) in torch 2.13.0
    assert repr(M()) == (
        'M(\n  (seq): Sequential(\n    (0): Linear(in_features=2, out_features=3, bias=True)\n'
        '    (1): ReLU()\n    (2): Dropout(p=0.3, inplace=False)\n  )\n  (sm): Softmax(dim=1)\n'
        '  (f): Flatten(start_dim=1, end_dim=-1)\n  (ls): LogSoftmax(dim=1)\n  (t): Tanh()\n'
        '  (l): Linear(in_features=3, out_features=1, bias=False)\n)')


def test_missing_forward():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


# -- containers --------------------------------------------------------------------------------
def test_sequential_indexing_slicing_append():
    l1, r, l2 = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(l1, r)
    assert len(seq) == 2 and seq[0] is l1 and seq[-1] is r
    assert list(seq) == [l1, r]
    seq.append(l2)
    assert len(seq) == 3 and seq[2] is l2
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [r, l2]
    with pytest.raises(IndexError):
        seq[3]
    x = symad.randn(4, 2)
    np.testing.assert_allclose(seq(x).detach().numpy(), l2(r(l1(x))).detach().numpy())


def test_modulelist_registers_parameters():
    class M(nn.Module):
        def __init__(s):
            super().__init__()
            s.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])

    m = M()
    assert len(list(m.parameters())) == 6
    assert [n for n, _ in m.named_parameters()][:2] == ["layers.0.weight", "layers.0.bias"]
    m.layers.append(nn.Linear(2, 1))
    assert len(m.layers) == 4 and len(list(m.parameters())) == 8


# -- Linear ------------------------------------------------------------------------------------
def test_linear_init_bounds_and_spread():
    symad.manual_seed(0)
    fan_in = 50
    lin = nn.Linear(fan_in, 200)
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), ...)
    w = lin.weight.detach().numpy()
    b = lin.bias.detach().numpy()
    assert w.shape == (200, 50) and b.shape == (200,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.98 * bound  # fills the interval, not a narrower one
    # a uniform on [-c, c] has std c/sqrt(3); 10,000 draws pin it to within ~2 %
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)
    assert lin.weight.dtype == symad.float32


def test_linear_forward_backward_matches_torch():
    lin = nn.Linear(3, 2)
    with symad.no_grad():
        lin.weight.copy_(symad.tensor([[1., 2., 3.], [-1., 0.5, 2.]]))
        lin.bias.copy_(symad.tensor([0.1, -0.2]))
    x = symad.tensor([[1., -1., 2.], [0.5, 0.25, -3.]], requires_grad=True)
    y = lin(x)
    (y * y).sum().backward()
    # torch 2.13.0 values
    np.testing.assert_allclose(y.detach().numpy(), [[5.1, 2.3], [-7.9, -6.575]], rtol=1e-6)
    np.testing.assert_allclose(lin.weight.grad.numpy(),
                               [[2.3, -14.15, 67.8], [-1.975, -7.8875, 48.65]], rtol=1e-6)
    np.testing.assert_allclose(lin.bias.grad.numpy(), [-5.6, -8.55], rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [[5.6, 22.7, 39.8], [-2.65, -38.175, -73.7]],
                               rtol=1e-6)


def test_functional_linear_without_bias_and_1d_input():
    w = symad.tensor([[1., 2.], [3., 4.], [5., 6.]])
    x = symad.tensor([1., -1.])
    np.testing.assert_array_equal(F.linear(x, w).numpy(), [-1., -1., -1.])
    assert nn.Linear(2, 3)(x).shape == (3,)


# -- activations, flatten, identity, dropout ---------------------------------------------------
def test_activation_modules_against_numpy():
    a = np.array([[-1.5, 0.0, 2.0], [0.3, -0.2, 1.0]], dtype=np.float32)
    x = symad.tensor(a)
    np.testing.assert_allclose(nn.ReLU()(x).numpy(), np.maximum(a, 0))
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(a), rtol=1e-6)
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-a)), rtol=1e-6)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    sm = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).numpy(), sm, rtol=1e-6)
    np.testing.assert_allclose(nn.LogSoftmax(dim=1)(x).numpy(), np.log(sm), rtol=1e-5)
    e0 = np.exp(a) / np.exp(a).sum(axis=0)
    np.testing.assert_allclose(nn.Softmax(dim=0)(x).numpy(), e0, rtol=1e-6)
    assert nn.Identity(3, k=1)(x) is x
    assert nn.Flatten()(symad.zeros(2, 3, 4)).shape == (2, 12)
    assert nn.Flatten(0, 1)(symad.zeros(2, 3, 4)).shape == (6, 4)


def test_dropout_train_and_eval():
    symad.manual_seed(0)
    drop = nn.Dropout(p=0.25)
    x = symad.ones(200, 50, requires_grad=True)
    y = drop(x)
    v = y.detach().numpy()
    kept = v != 0
    np.testing.assert_allclose(v[kept], 1 / 0.75, rtol=1e-6)  # survivors are rescaled
    assert kept.mean() == pytest.approx(0.75, abs=0.02)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.75, rtol=1e-6)
    drop.eval()
    assert drop(x) is x
    assert F.dropout(x, 1.0).detach().numpy().sum() == 0
    symad.manual_seed(3)
    m1 = nn.Dropout(0.5)(symad.ones(10)).numpy()
    symad.manual_seed(3)
    m2 = nn.Dropout(0.5)(symad.ones(10)).numpy()
    np.testing.assert_array_equal(m1, m2)  # reproducible under manual_seed
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


# -- losses (module wrappers, torch 2.13.0 values) ---------------------------------------------
LOGITS = [[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]]


def test_cross_entropy_and_nll_losses():
    inp = symad.tensor(LOGITS)
    tgt = symad.tensor([2, 0])
    assert nn.CrossEntropyLoss()(inp, tgt).item() == pytest.approx(2.46757173538208, rel=1e-6)
    assert nn.CrossEntropyLoss(reduction="sum")(inp, tgt).item() == \
        pytest.approx(4.93514347076416, rel=1e-6)
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction="none")(inp, tgt).numpy(),
                               [1.9643688201904297, 2.9707744121551514], rtol=1e-6)
    assert nn.NLLLoss()(F.log_softmax(inp, 1), tgt).item() == \
        pytest.approx(2.46757173538208, rel=1e-6)


def _value_and_grad(f, x):
    t = symad.tensor(x, dtype=symad.float64, requires_grad=True)
    y = f(t)
    (g,) = symad.autograd.grad(y.sum(), [t])
    return np.asarray(y.detach().numpy()), g.numpy(), y.grad_fn.name()


def test_cross_entropy_label_smoothing_matches_torch():
    """torch 2.14.1's values (recorded in float64)."""
    x = [[1.0, 1.0, 2.0], [0.0, -1.0, 3.0]]
    v, g, name = _value_and_grad(
        lambda t: F.cross_entropy(t, symad.tensor([1, 2]), label_smoothing=0.2,
                                  reduction="sum"), x)
    assert name == "AddBackward0"
    np.testing.assert_allclose(v, 2.01732861768948, rtol=1e-12)
    np.testing.assert_allclose(g, [[0.1452748909504188, -0.6547251090495813, 0.5094502180991625],
                                   [-0.020054044088692775, -0.04951884112114628,
                                    0.06957288520983906]], rtol=1e-10)
    v, _, _ = _value_and_grad(lambda t: F.cross_entropy(t, symad.tensor([0, 2]),
                                                         label_smoothing=0.1, reduction="none"), x)
    np.testing.assert_allclose(v, [1.5181113805987176, 0.2992172370907624], rtol=1e-12)
    v, g, _ = _value_and_grad(lambda t: F.cross_entropy(t, symad.tensor(2), label_smoothing=0.25),
                              [0.5, -1.0, 2.0])
    np.testing.assert_allclose(v, 0.6163112966571571, rtol=1e-12)
    np.testing.assert_allclose(g, [0.09195705880670337, -0.04422076006264588,
                                   -0.04773629874405749], rtol=1e-10)
    probs = symad.tensor([[0.2, 0.8, 0.0], [0.0, 0.0, 1.0]], dtype=symad.float64)
    v, g, _ = _value_and_grad(lambda t: nn.CrossEntropyLoss(label_smoothing=0.3)(t, probs), x)
    np.testing.assert_allclose(v, 1.10866430884474, rtol=1e-12)
    np.testing.assert_allclose(g, [[-0.014029221191457287, -0.22402922119145724,
                                    0.23805844238291454],
                                   [-0.026693688711013054, -0.041426087227239804,
                                    0.06811977593825286]], rtol=1e-10)
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(symad.tensor(x), symad.tensor([0, 2]), label_smoothing=1.5)


def test_kl_div_module_and_mean_warning_match_torch():
    """torch 2.14.1's values (recorded in float64)."""
    x = symad.tensor([[-1.0, -2.0], [-0.5, -0.1]], dtype=symad.float64, requires_grad=True)
    t = symad.tensor([[0.0, 0.5], [0.3, 0.7]], dtype=symad.float64)
    v = nn.KLDivLoss(reduction="batchmean")(x, t)
    v.backward()
    assert v.item() == pytest.approx(0.1312810538325669, rel=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), [[-0.0, -0.25], [-0.15, -0.35]], rtol=1e-12)
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        m = F.kl_div(x, t)
    assert m.item() == pytest.approx(0.1312810538325669 * 2 / 4, rel=1e-12)
    lt = nn.KLDivLoss(reduction="sum", log_target=True)(
        symad.tensor([-1.0, -2.0], dtype=symad.float64),
        symad.tensor([-0.5, -0.7], dtype=symad.float64))
    assert lt.item() == pytest.approx(0.9488262247851491, rel=1e-12)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.KLDivLoss(reduction="avg")


def test_cross_entropy_label_smoothing_compiles_like_eager():
    symad.manual_seed(3)
    nets = [nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    X, y = symad.randn(300, 8), symad.randint(0, 4, (300,))
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    opts = [optim.SGD(n.parameters(), lr=0.2) for n in nets]
    step = symad.compile_step(nets[0], loss, opts[0])
    for _ in range(5):
        got = step(X, y)
        opts[1].zero_grad()
        want = loss(nets[1](X), y)
        want.backward()
        opts[1].step()
        assert got.item() == pytest.approx(want.item(), rel=1e-5)
    np.testing.assert_allclose(nets[0][0].weight.detach().numpy(),
                               nets[1][0].weight.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_binary_and_regression_losses():
    pr = symad.tensor([0.2, 0.7, 0.9])
    lb = symad.tensor([0., 1., 1.])
    assert nn.BCELoss()(pr, lb).item() == pytest.approx(0.22839303314685822, rel=1e-6)
    assert nn.BCEWithLogitsLoss(reduction="sum")(symad.tensor([-1., 0.5, 2.]), lb).item() == \
        pytest.approx(0.9142667651176453, rel=1e-6)
    assert nn.L1Loss()(pr, lb).item() == pytest.approx(0.2, rel=1e-6)
    assert nn.MSELoss(reduction="sum")(pr, lb).item() == pytest.approx(0.14, rel=1e-6)
    np.testing.assert_allclose(nn.MSELoss(reduction="none")(pr, lb).numpy(),
                               [0.04, 0.09, 0.01], rtol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


def test_functional_reexports_are_the_registry_ops():
    from symad.ops import functional as OF
    for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax", "mse_loss", "l1_loss",
                 "cross_entropy", "nll_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits"):
        assert getattr(F, name) is getattr(OF, name)


# -- init --------------------------------------------------------------------------------------
def test_calculate_gain_matches_torch():
    init = nn.init
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(1.4141428569978354)
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(1.3867504905630728)
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError):
        init.calculate_gain("swish")


@pytest.mark.parametrize("fn, expected_std", [
    (lambda t: nn.init.xavier_uniform_(t), math.sqrt(2 / (300 + 200))),
    (lambda t: nn.init.xavier_normal_(t, gain=2.0), 2 * math.sqrt(2 / (300 + 200))),
    (lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu"), math.sqrt(2 / 300)),
    (lambda t: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
     math.sqrt(2 / 200)),
    (lambda t: nn.init.normal_(t, 1.0, 0.5), 0.5),
    (lambda t: nn.init.uniform_(t, -3.0, 3.0), 6 / math.sqrt(12)),
])
def test_random_inits_have_the_documented_spread(fn, expected_std):
    symad.manual_seed(0)
    w = nn.Parameter(symad.empty(200, 300))  # fan_in 300, fan_out 200
    ptr = w.data_ptr()
    assert fn(w) is w
    assert w.data_ptr() == ptr and w.grad_fn is None and w.requires_grad
    assert w.detach().numpy().std() == pytest.approx(expected_std, rel=0.02)


def test_uniform_inits_respect_their_bounds():
    symad.manual_seed(0)
    w = symad.empty(20, 30)
    nn.init.xavier_uniform_(w, gain=0.5)
    a = 0.5 * math.sqrt(6 / 50)
    assert np.abs(w.numpy()).max() <= a and np.abs(w.numpy()).max() > 0.95 * a


def test_constant_inits_and_fan_errors():
    p = nn.Parameter(symad.empty(2, 3))
    np.testing.assert_array_equal(nn.init.ones_(p).detach().numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(nn.init.zeros_(p).detach().numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(nn.init.constant_(p, 0.5).detach().numpy(), np.full((2, 3), .5))
    with pytest.raises(ValueError, match="fewer than 2"):
        nn.init.xavier_uniform_(symad.empty(3))


def test_training_loop_with_sgd_reduces_loss():
    symad.manual_seed(0)
    X = symad.randn(32, 3)
    y = (X.sum(dim=1, keepdim=True) > 0).float()
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    loss_fn = nn.BCEWithLogitsLoss()
    opt = symad.optim.SGD(net.parameters(), lr=0.5)
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn(net(X), y)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.3 * first
