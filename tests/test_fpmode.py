"""symad.set_flush_denormal: FTZ/DAZ for numpy and native code in the calling thread, taken by
the worker threads of native calls (numpy's own IEEE arithmetic is the oracle)."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symad
from codegen import compile_kernel, fpmode
from symad import nn, optim

TINY = np.array([1e-38, 3e-39, -2e-39, 1.0], np.float32)     # normal, subnormal halves


@pytest.fixture
def flush():
    assert symad.set_flush_denormal(True) is True
    yield
    symad.set_flush_denormal(False)


def test_default_keeps_subnormals_and_the_mode_toggles():
    half = TINY * np.float32(0.5)
    assert half[0] == np.float32(5e-39) and half[1] != 0          # IEEE: subnormal results
    assert not fpmode.flushing()
    assert symad.set_flush_denormal(True) is True
    try:
        assert fpmode.flushing()
        np.testing.assert_array_equal(TINY * np.float32(0.5), [0, 0, 0, 0.5])
        # DAZ: a subnormal input reads as 0 (3e-39 + 0 would stay 3e-39 under IEEE)
        assert (TINY[1:2] + np.float32(0))[0] == 0
    finally:
        assert symad.set_flush_denormal(False) is True
    assert not fpmode.flushing()
    np.testing.assert_array_equal(TINY * np.float32(0.5), half)
    with pytest.raises(TypeError, match="must be bool"):
        symad.set_flush_denormal(1)


def test_threaded_kernel_parts_compute_in_the_callers_mode():
    """Every chunk of a 2-thread batch kernel computes in the calling thread's mode, not only
    the calling thread's chunks — also when the worker threads were started in the other mode
    (a new thread inherits its creator's). A sum of subnormal products: each thread's partial
    sums are its own chunks' (an unflushed worker leaves half the IEEE total)."""
    x = sp.Symbol("x", real=True)
    k = compile_kernel([x], [x * sp.Float(0.5)], batched=[x], dtype="float32", threads=2,
                       min_chunk=64, reduce="sum", cache=False)
    xs = np.full(1 << 14, 2e-38, np.float32)        # x / 2 = 1e-38: subnormal
    ieee = float(np.float32(1e-38)) * xs.size
    np.testing.assert_allclose(float(k(x=xs)[0]), ieee, rtol=1e-6)    # pool starts in IEEE
    assert symad.set_flush_denormal(True)
    try:
        assert float(k(x=xs)[0]) == 0.0
    finally:
        symad.set_flush_denormal(False)
    np.testing.assert_allclose(float(k(x=xs)[0]), ieee, rtol=1e-6)


def test_compiled_step_equals_eager_under_flush(flush):
    """A step whose gradients underflow: eager (numpy in this thread) and the native program
    flush alike, so parameters agree to rounding."""
    def make():
        symad.manual_seed(0)
        net = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 2))
        return net, optim.Adam(net.parameters(), lr=1e-3)
    a, oa = make()
    b, ob = make()
    step = symad.compile_step(a, nn.MSELoss(), oa, structured=True)
    rng = np.random.default_rng(1)
    X = symad.tensor(rng.normal(size=(16, 6)).astype(np.float32) * np.float32(1e-37))
    y = symad.tensor(np.zeros((16, 2), np.float32))
    for _ in range(4):
        la = step(X, y).item()
        ob.zero_grad()
        lb = nn.MSELoss()(b(X), y)
        lb.backward()
        ob.step()
        np.testing.assert_allclose(la, lb.item(), rtol=1e-5)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), rtol=1e-5,
                                   atol=1e-7)
        g = pa.grad.numpy()
        assert not np.any((g != 0) & (np.abs(g) < np.finfo(np.float32).tiny))   # no subnormal
