"""``symad.save`` / ``symad.load``: exact round trips (values bit for bit, dtype, shape,
requires_grad, Parameter-ness, shared tensors), state dicts of modules, optimizers and
schedulers, and clear errors for files that are not symad checkpoints."""
from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np
import pytest

import symad
from symad import nn, optim


def _round_trip(obj, **load_kw):
    buf = io.BytesIO()
    symad.save(obj, buf)
    buf.seek(0)
    return symad.load(buf, **load_kw)


@pytest.mark.parametrize("dtype", [symad.float32, symad.float64, symad.int64, symad.int32,
                                   symad.bool, symad.uint8])
@pytest.mark.parametrize("shape", [(), (3,), (2, 3, 4), (0, 2)])
def test_tensor_round_trip_is_exact(dtype, shape):
    rng = np.random.default_rng(0)
    arr = (rng.normal(size=shape) * 100).astype(dtype.np)
    t = symad.tensor(arr, dtype=dtype)
    back = _round_trip(t)
    assert type(back) is symad.Tensor and back.dtype == dtype and back.shape == t.shape
    assert back.numpy().tobytes() == arr.tobytes()
    assert not back.requires_grad


def test_special_floats_and_non_contiguous():
    t = symad.tensor([np.nan, np.inf, -np.inf, -0.0, 1e-45], dtype=symad.float32)
    assert _round_trip(t).numpy().tobytes() == t.numpy().tobytes()
    m = symad.arange(12.0).reshape(3, 4).t()
    assert _round_trip(m).tolist() == m.tolist()


def test_requires_grad_and_parameters_are_kept():
    w = symad.tensor([1.0, 2.0], requires_grad=True)
    p = nn.Parameter(symad.ones(2, 2))
    frozen = nn.Parameter(symad.zeros(1), requires_grad=False)
    a, b, c = _round_trip([w, p, frozen])
    assert a.requires_grad and a.is_leaf and type(a) is symad.Tensor
    assert type(b) is nn.Parameter and b.requires_grad
    assert type(c) is nn.Parameter and not c.requires_grad


def test_containers_and_shared_tensors():
    t = symad.tensor([1.0, 2.0])
    obj = {"a": t, "b": [t, (3, "x", None, 2.5, True)], "c": collections.OrderedDict(k=t * 2),
           "d": {1: t.detach()}}
    back = _round_trip(obj)
    assert back["a"] is back["b"][0]  # one tensor saved twice loads as one tensor
    assert back["b"][1] == (3, "x", None, 2.5, True)
    assert type(back["c"]) is collections.OrderedDict and back["c"]["k"].tolist() == [2.0, 4.0]
    back["a"][0] = 7.0  # a tensor and its detached alias share memory again after loading
    assert back["d"][1].tolist() == [7.0, 2.0]


def test_model_state_dict_round_trip_via_path(tmp_path):
    symad.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    path = tmp_path / "model.pt"
    symad.save(net.state_dict(), path)
    sd = symad.load(str(path), map_location="cpu", weights_only=True)
    assert type(sd) is collections.OrderedDict and list(sd) == list(net.state_dict())
    symad.manual_seed(1)
    net2 = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    net2.load_state_dict(sd)
    x = symad.randn(5, 3, dtype=symad.float64)
    assert net2(x).tolist() == net(x).tolist()
    for (k, a), b in zip(net.state_dict().items(), sd.values()):
        assert a.dtype == b.dtype == symad.float64 and a.tolist() == b.tolist(), k


def test_checkpoint_resumes_training_exactly():
    """Train, save model + optimizer + scheduler, continue; a restored copy continues the same."""
    def make():
        symad.manual_seed(3)
        net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        opt = optim.Adam(net.parameters(), lr=0.05)
        sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        return net, opt, sched

    def train(net, opt, sched, steps):
        x = symad.tensor([[0.5, -1.0], [1.5, 2.0], [-0.3, 0.7]])
        y = symad.tensor([[1.0], [-1.0], [0.5]])
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.mse_loss(net(x), y).backward()
            opt.step()
            sched.step()

    net, opt, sched = make()
    train(net, opt, sched, 3)
    ckpt = _round_trip({"model": net.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "epoch": 3})
    assert set(ckpt["optimizer"]) == {"state", "param_groups"}
    assert ckpt["optimizer"]["state"][0]["exp_avg"].dtype == symad.float32
    assert ckpt["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    train(net, opt, sched, 3)
    net2, opt2, sched2 = make()
    net2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    train(net2, opt2, sched2, 3)
    for a, b in zip(net.parameters(), net2.parameters()):
        assert a.detach().numpy().tobytes() == b.detach().numpy().tobytes()
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_weights_only_refuses_arbitrary_classes():
    buf = io.BytesIO()
    symad.save({"f": np.float64}, buf)  # a class reference, not data
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        symad.load(buf)
    buf.seek(0)
    assert symad.load(buf, weights_only=False)["f"] is np.float64
    assert _round_trip({"dt": symad.float64, "dev": symad.device("cpu")}) == {
        "dt": symad.float64, "dev": symad.device("cpu")}


def test_errors_for_foreign_and_corrupt_files(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(RuntimeError, match="is not a symad checkpoint"):
        symad.load(bad)
    torch_like = tmp_path / "torch.pt"  # the layout of a PyTorch zip checkpoint
    with zipfile.ZipFile(torch_like, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("archive/data/0", b"\x00" * 8)
    with pytest.raises(RuntimeError, match="looks like a PyTorch checkpoint"):
        symad.load(torch_like)
    good = tmp_path / "good.pt"
    symad.save({"w": symad.ones(3)}, good)
    raw = bytearray(good.read_bytes())
    body = raw.index(b"PK\x03\x04", 1)  # damage bytes inside the archive's second entry
    raw[body + 60: body + 70] = b"\xff" * 10
    (tmp_path / "damaged.pt").write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="corrupt|not a symad checkpoint"):
        symad.load(tmp_path / "damaged.pt")
    with pytest.raises(RuntimeError, match="no CUDA"):
        symad.load(good, map_location="cuda:0")


def test_symbolic_tensors_are_refused():
    from symad.tensor import Tensor
    import sympy
    t = Tensor._wrap(np.array([sympy.Symbol("x")], dtype=object), symad.float64)
    with pytest.raises(TypeError, match="symbolic"):
        symad.save(t, io.BytesIO())
