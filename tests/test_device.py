"""``symad.device``, ``symad.cuda``, ``symad.backends``: PyTorch's device API on a CPU-only
library. Expected reprs and error types are PyTorch 2.x's (CPU-only build)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import symad
from symad import nn


def test_device_construction_and_repr():
    assert repr(symad.device("cpu")) == "device(type='cpu')"
    assert repr(symad.device("cpu:0")) == "device(type='cpu', index=0)"
    assert repr(symad.device("cpu", 0)) == "device(type='cpu', index=0)"
    assert repr(symad.device(type="cpu")) == "device(type='cpu')"
    assert str(symad.device("cpu")) == "cpu" and str(symad.device("cuda:1")) == "cuda:1"
    d = symad.device("cuda", 1)
    assert (d.type, d.index) == ("cuda", 1)
    assert symad.device(symad.device("cpu:0")) == symad.device("cpu:0")
    assert repr(symad.device(0)) == "device(type='cuda', index=0)"  # PyTorch: an int is CUDA


def test_device_equality_and_hash():
    assert symad.device("cpu") == symad.device(type="cpu")
    assert symad.device("cpu") != symad.device("cpu:0")  # index None vs 0, as in PyTorch
    assert symad.device("cpu") != "cpu"  # PyTorch compares devices only with devices
    assert len({symad.device("cpu"), symad.device("cpu"), symad.device("cpu:0")}) == 2
    assert pickle.loads(pickle.dumps(symad.device("cpu:0"))) == symad.device("cpu:0")


@pytest.mark.parametrize("bad,match", [("gpu", "Expected one of cpu, cuda"),
                                       ("cpu:-1", "Invalid device string"),
                                       ("cpu:x", "Invalid device string")])
def test_device_bad_strings(bad, match):
    with pytest.raises(RuntimeError, match=match):
        symad.device(bad)
    with pytest.raises(RuntimeError, match="must not be negative"):
        symad.device("cpu", -1)


def test_cuda_queries():
    assert symad.cuda.is_available() is False
    assert symad.cuda.device_count() == 0
    assert symad.cuda.is_initialized() is False
    symad.cuda.manual_seed(0)  # ignored without CUDA, as in PyTorch
    symad.cuda.manual_seed_all(0)
    with pytest.raises(AssertionError, match="no CUDA"):
        symad.cuda.current_device()
    assert symad.backends.mps.is_available() is False
    assert symad.backends.mps.is_built() is False
    assert symad.backends.cudnn.is_available() is False
    symad.backends.cudnn.deterministic = True  # accepted, as programs set it


def test_tutorial_device_line_picks_the_cpu():
    device = symad.device("cuda" if symad.cuda.is_available() else "cpu")
    assert device == symad.device("cpu")
    x = symad.randn(3, 2, device=device)
    assert x.device == device and x.device.type == "cpu"
    assert x.to(device) is x


@pytest.mark.parametrize("make", [
    lambda d: symad.tensor([1.0], device=d), lambda d: symad.zeros(2, device=d),
    lambda d: symad.ones(2, device=d), lambda d: symad.empty(2, device=d),
    lambda d: symad.full((2,), 1.5, device=d), lambda d: symad.eye(2, device=d),
    lambda d: symad.arange(3, device=d), lambda d: symad.linspace(0, 1, 3, device=d),
    lambda d: symad.randn(2, device=d), lambda d: symad.rand(2, device=d),
    lambda d: symad.randint(0, 3, (2,), device=d), lambda d: symad.randperm(3, device=d),
    lambda d: symad.normal(0.0, 1.0, (2,), device=d), lambda d: symad.as_tensor([1.0], device=d),
    lambda d: symad.zeros_like(symad.ones(2), device=d),
    lambda d: symad.ones_like(symad.ones(2), device=d),
    lambda d: symad.full_like(symad.ones(2), 3.0, device=d),
    lambda d: symad.empty_like(symad.ones(2), device=d),
    lambda d: symad.rand_like(symad.ones(2), device=d),
    lambda d: symad.randn_like(symad.ones(2), device=d),
    lambda d: symad.ones(2).new_zeros(3, device=d),
])
def test_creation_functions_take_device(make):
    for d in ("cpu", "cpu:0", symad.device("cpu"), None):
        assert make(d).device == symad.device("cpu")
    for d in ("cuda", symad.device("cuda:0"), "mps"):
        with pytest.raises(symad.DeviceUnavailableError) as info:
            make(d)
        assert isinstance(info.value, AssertionError) and isinstance(info.value, RuntimeError)
        assert repr(str(symad.device(d))) in str(info.value)


def test_tensor_to_forms():
    x = symad.tensor([1.5, -2.0])
    assert x.to("cpu") is x and x.to(symad.device("cpu")) is x and x.cpu() is x
    y = x.to("cpu", symad.float64)
    assert y.dtype == symad.float64 and y.tolist() == [1.5, -2.0]
    assert x.to(device="cpu", dtype=symad.float64).dtype == symad.float64
    assert x.to(symad.device("cpu"), dtype=symad.int64).tolist() == [1, -2]
    assert x.to(symad.ones(1, dtype=symad.float64)).dtype == symad.float64
    assert x.to("cpu", copy=True) is not x
    assert x.get_device() == -1 and not x.is_cuda
    with pytest.raises(AssertionError, match="symad has no CUDA"):
        x.cuda()
    with pytest.raises(RuntimeError, match="symad has no CUDA"):
        x.to("cuda:0")
    with pytest.raises(RuntimeError, match="CPU only"):
        x.to(device="mps")


def test_to_device_keeps_the_graph():
    w = symad.tensor([2.0], requires_grad=True)
    (w.to("cpu") * 3).sum().backward()
    assert w.grad.tolist() == [3.0]


def test_module_to_device_and_dtype():
    symad.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1, device="cpu"))
    w = net[0].weight
    assert net.to(symad.device("cpu")) is net and net.cpu() is net
    assert net[0].weight is w and w.device == symad.device("cpu")
    net.to("cpu", symad.float64)
    assert all(p.dtype == symad.float64 for p in net.parameters())
    net.to(device="cpu", dtype=symad.float32)
    assert all(p.dtype == symad.float32 for p in net.parameters())
    with pytest.raises(AssertionError, match="no CUDA"):
        net.cuda()
    with pytest.raises(RuntimeError, match="no CUDA"):
        net.to("cuda")
    with pytest.raises(RuntimeError, match="no CUDA"):
        nn.Linear(2, 2, device="cuda")


def test_default_device():
    assert symad.get_default_device() == symad.device("cpu")
    symad.set_default_device("cpu")
    symad.set_default_device(None)
    with symad.device("cpu"):
        assert symad.zeros(1).device.type == "cpu"
    with pytest.raises(RuntimeError, match="no CUDA"):
        symad.set_default_device("cuda")
    assert symad.get_default_device() == symad.device("cpu")


# -- meshgrid ---------------------------------------------------------------------------------

@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid_matches_numpy(indexing):
    a, b, c = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0]), np.array([6.0, 7.0, 8.0, 9.0])
    got = symad.meshgrid(symad.tensor(a), symad.tensor(b), symad.tensor(c), indexing=indexing)
    want = np.meshgrid(a, b, c, indexing=indexing)
    assert len(got) == 3
    for g, w in zip(got, want):
        assert tuple(g.shape) == w.shape
        np.testing.assert_array_equal(g.numpy(), w)
    got2 = symad.meshgrid([symad.tensor(a), symad.tensor(b)], indexing=indexing)  # a list
    for g, w in zip(got2, np.meshgrid(a, b, indexing=indexing)):
        np.testing.assert_array_equal(g.numpy(), w)


def test_meshgrid_without_indexing_warns_and_uses_ij():
    with pytest.warns(UserWarning, match="it will be required to pass the indexing argument"):
        x, y = symad.meshgrid(symad.arange(3), symad.arange(2))
    assert tuple(x.shape) == (3, 2) and x.dtype == symad.int64
    assert y.tolist() == [[0, 1], [0, 1], [0, 1]]


def test_meshgrid_zero_dim_and_errors():
    x, y = symad.meshgrid(symad.tensor(2.0), symad.tensor([1.0, 3.0]), indexing="ij")
    assert x.tolist() == [[2.0, 2.0]] and y.tolist() == [[1.0, 3.0]]
    with pytest.raises(RuntimeError, match='indexing must be one of "xy" or "ij"'):
        symad.meshgrid(symad.ones(2), indexing="ji")
    with pytest.raises(RuntimeError, match="Expected 0D or 1D tensor"):
        symad.meshgrid(symad.ones(2, 2), indexing="ij")
    with pytest.raises(RuntimeError, match="same dtype"):
        symad.meshgrid(symad.ones(2), symad.arange(2), indexing="ij")


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid_gradient_matches_finite_differences(indexing):
    rng = np.random.default_rng(0)
    a0, b0 = rng.normal(size=3), rng.normal(size=4)
    w = rng.normal(size=(3, 4) if indexing == "ij" else (4, 3))

    def f(a, b):
        x, y = np.meshgrid(a, b, indexing=indexing)
        return np.sum(np.sin(x) * y * w)

    a = symad.tensor(a0, dtype=symad.float64, requires_grad=True)
    b = symad.tensor(b0, dtype=symad.float64, requires_grad=True)
    x, y = symad.meshgrid(a, b, indexing=indexing)
    assert x.grad_fn.name() == "ExpandBackward0"
    (x.sin() * y * symad.tensor(w)).sum().backward()
    eps = 1e-6
    for t, base, k in ((a, a0, 0), (b, b0, 1)):
        fd = np.zeros_like(base)
        for j in range(base.size):
            p, m = base.copy(), base.copy()
            p[j] += eps
            m[j] -= eps
            args_p = (p, b0) if k == 0 else (a0, p)
            args_m = (m, b0) if k == 0 else (a0, m)
            fd[j] = (f(*args_p) - f(*args_m)) / (2 * eps)
        np.testing.assert_allclose(t.grad.numpy(), fd, rtol=1e-7, atol=1e-8)


# -- NumPy keyword spellings ------------------------------------------------------------------

X = np.array([[1.0, 5.0, 2.0], [4.0, -3.0, 6.0]])


@pytest.mark.parametrize("name,ref", [
    ("sum", np.sum), ("mean", np.mean), ("prod", np.prod), ("amax", np.amax), ("amin", np.amin),
    ("std", lambda a, axis, keepdims: np.std(a, axis=axis, ddof=1, keepdims=keepdims)),
    ("var", lambda a, axis, keepdims: np.var(a, axis=axis, ddof=1, keepdims=keepdims)),
])
def test_axis_and_keepdims_on_reductions(name, ref):
    t = symad.tensor(X, dtype=symad.float64)
    for axis in (0, 1):
        for keep in (False, True):
            want = ref(X, axis=axis, keepdims=keep)
            for got in (getattr(t, name)(axis, keepdims=keep),
                        getattr(t, name)(axis=axis, keepdims=keep),
                        getattr(symad, name)(t, axis=axis, keepdims=keep)):
                assert tuple(got.shape) == want.shape
                np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_axis_on_arg_and_max_and_shapes():
    t = symad.tensor(X)
    assert t.argmax(axis=1).tolist() == [1, 2] and t.argmin(axis=0).tolist() == [0, 1, 0]
    assert symad.argmax(t, axis=1, keepdims=True).tolist() == [[1], [2]]
    assert t.max(axis=1).values.tolist() == [5.0, 6.0]
    assert symad.min(t, axis=0, keepdims=True).indices.tolist() == [[0, 1, 0]]
    assert symad.cat([t, t], axis=1).shape == (2, 6)
    assert symad.stack([t, t], axis=2).shape == (2, 3, 2)
    assert t.unsqueeze(axis=0).shape == (1, 2, 3)
    assert t.softmax(axis=1).sum(axis=1).tolist() == pytest.approx([1.0, 1.0])


def test_axis_keeps_gradients():
    w = symad.tensor(X, requires_grad=True)
    w.sum(0, keepdims=True).sum().backward()
    assert w.grad.tolist() == [[1.0] * 3] * 2


def test_both_spellings_is_an_error():
    with pytest.raises(TypeError, match="multiple values for argument 'dim'"):
        symad.tensor(X).sum(dim=0, axis=1)
    with pytest.raises(TypeError, match="multiple values for argument 'keepdim'"):
        symad.sum(symad.tensor(X), 0, keepdim=True, keepdims=True)
