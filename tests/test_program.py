"""Tensor programs (symad.program): one recording of registry ops behind compile / compile_step.

Oracle: symad eager on identical copies of each model (float64 rtol 1e-10, float32 1e-5), plus
hand-checked program properties (size independent of the batch, no user code re-run)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import symad
from symad import nn, optim
from symad.program import NotReplayable, Runner, capture

TOL = {symad.float64: dict(rtol=1e-10, atol=1e-12), symad.float32: dict(rtol=1e-5, atol=1e-6)}


class Residual(nn.Module):
    """(a) 32 -> 64 -> 64 (+ skip) -> 1."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(32, 64)
        self.hid = nn.Linear(64, 64)
        self.out = nn.Linear(64, 1)

    def forward(self, x):
        h = symad.tanh(self.inp(x))
        h = h + symad.relu(self.hid(h))
        return self.out(h)


class TwoInputs(nn.Module):
    """(b) two data inputs."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(40, 32)
        self.b = nn.Linear(8, 32)
        self.head = nn.Linear(32, 1)

    def forward(self, x, z):
        return self.head(symad.sigmoid(self.a(x)) * self.b(z))


class Attention(nn.Module):
    """(c) softmax(q k^T / sqrt(d)) v, then Linear; width 32."""

    def __init__(self, d=32):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.proj = nn.Linear(d, 1)
        self.d = d

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        att = symad.softmax(q @ k.T / math.sqrt(self.d), dim=-1)
        return self.proj(att @ v)


def mlp784():
    """(d) 784 -> 256 -> 256 -> 10 ReLU (~270k parameters)."""
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def twins(make, dt, seed=0):
    symad.manual_seed(seed)
    a = make().to(dt)
    symad.manual_seed(seed)
    b = make().to(dt)
    return a, b


def eager_step(model, loss_fn, opt, X, y):
    opt.zero_grad()
    loss = loss_fn(model(X), y)
    loss.backward()
    opt.step()
    return loss.item()


def assert_same_params(a, b, dt):
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), err_msg=na,
                                   **TOL[dt])


CASES = {
    "residual": (Residual, lambda g, n: g.normal(size=(n, 32)), nn.MSELoss,
                 lambda g, n: g.normal(size=(n, 1))),
    "attention": (Attention, lambda g, n: g.normal(size=(n, 32)), nn.MSELoss,
                  lambda g, n: g.normal(size=(n, 1))),
    "mlp784": (mlp784, lambda g, n: g.normal(size=(n, 784)), nn.CrossEntropyLoss,
               lambda g, n: g.integers(0, 10, n)),
}


@pytest.mark.parametrize("dt", [symad.float64, symad.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_compile_step_five_steps_equal_eager(case, dt):
    make, xs, loss_cls, ys = CASES[case]
    a, b = twins(make, dt)
    oa = optim.Adam(a.parameters(), lr=1e-3, weight_decay=1e-4)
    ob = optim.Adam(b.parameters(), lr=1e-3, weight_decay=1e-4)
    step = symad.compile_step(a, loss_cls(), oa)
    g = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no fallback warning
        for i in range(5):
            n = 24 if i < 4 else 10             # a second batch shape records a second program
            X = symad.tensor(xs(g, n)).to(dt)
            yv = ys(g, n)
            y = symad.tensor(yv).to(dt) if yv.dtype.kind == "f" else symad.tensor(yv)
            la = step(X, y)
            lb = eager_step(b, loss_cls(), ob, X, y)
            np.testing.assert_allclose(la.item(), lb, **TOL[dt])
    assert step.native_calls.startswith("tensor program")
    assert_same_params(a, b, dt)


@pytest.mark.parametrize("dt", [symad.float64, symad.float32], ids=["f64", "f32"])
def test_compile_two_input_module_five_sgd_steps_equal_eager(dt):
    a, b = twins(TwoInputs, dt)
    ca = symad.compile(a)
    oa = optim.SGD(a.parameters(), lr=0.05, momentum=0.9)
    ob = optim.SGD(b.parameters(), lr=0.05, momentum=0.9)
    g = np.random.default_rng(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            x = symad.tensor(g.normal(size=(16, 40))).to(dt)
            z = symad.tensor(g.normal(size=(16, 8))).to(dt)
            y = symad.tensor(g.normal(size=(16, 1))).to(dt)
            for model, opt, f in ((a, oa, ca), (b, ob, b)):
                opt.zero_grad()
                loss = ((f(x, z) - y) ** 2).mean()
                loss.backward()
                opt.step()
    assert ca.compile_count == 1          # 1,633 parameters: one recording, replayed after
    assert_same_params(a, b, dt)


def test_program_size_does_not_grow_with_the_batch():
    # the seed's linear-regression loss
    w = symad.tensor(np.random.default_rng(0).normal(size=(2, 1)), requires_grad=True)
    b = symad.zeros(1, requires_grad=True)

    def loss(X, y):
        return (((X @ w + b) - y) ** 2 / 2).mean()

    sizes = []
    for n in (10, 1000, 100_000):
        g = np.random.default_rng(n)
        X, y = symad.tensor(g.normal(size=(n, 2))), symad.tensor(g.normal(size=(n, 1)))
        prog, out, grads, wrt = capture(loss, (X, y), wrt=[w, b], arg_names=["X", "y"])
        sizes.append(len(prog))
        vals = Runner(prog)(X.numpy(), y.numpy())
        # against a closed form: mean((Xw+b-y)^2)/2 and its gradient X^T r / n
        r = X.numpy() @ w.detach().numpy() + b.detach().numpy() - y.numpy()
        np.testing.assert_allclose(vals[0], (r ** 2).mean() / 2, rtol=1e-12)
        np.testing.assert_allclose(vals[1], X.numpy().T @ r / n, rtol=1e-10)
        np.testing.assert_allclose(vals[2], r.sum(0) / n, rtol=1e-10)
    assert sizes[0] == sizes[1] == sizes[2]


def test_compile_keeps_pythons_meaning_for_side_effects(capsys):
    """A forward with Python side effects (a counter, a print) runs once per call, as eager:
    the recording notices them and the compiled module runs eagerly after one warning."""
    class Counting(nn.Module):
        def __init__(self, big):
            super().__init__()
            self.body = mlp784() if big else nn.Linear(3, 1)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            print("forward", self.calls)
            return self.body(x)

    for big in (True, False):          # the program path (no probe) and the scalarized one
        m = Counting(big)
        cm = symad.compile(m)
        x = symad.randn(4, 784 if big else 3)
        capsys.readouterr()
        with pytest.warns(symad.compiler.CompileWarning, match="Python state|prints"):
            for _ in range(3):
                cm(x).sum().backward()
        assert m.calls == 3
        assert capsys.readouterr().out == "forward 1\nforward 2\nforward 3\n"


def test_compile_runs_a_pure_forward_once_and_replays():
    calls = []
    net = mlp784()

    class Pure(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            calls.append(1)            # a closure list, not module state: not watched
            return self.net(x)

    cm = symad.compile(Pure())
    x = symad.randn(4, 784)
    for _ in range(3):
        cm(x).sum().backward()
    assert len(calls) == 1             # recorded once (no probe: too large to scalarize)


def test_replayed_program_reads_new_data_and_parameters():
    net = nn.Linear(3, 2)
    X1, X2 = symad.randn(5, 3), symad.randn(5, 3)
    prog, out, grads, wrt = capture(lambda x: net(x).tanh().sum(), (X1,), wrt="auto")
    assert [t is p for t, p in zip(wrt, net.parameters())] == [True, True]
    run = Runner(prog)
    with symad.no_grad():
        net.weight.mul_(0.5)                 # parameters are read live at each run
    vals = run(X2.numpy())
    ref = net(X2).tanh().sum()
    ref.backward()
    np.testing.assert_allclose(vals[0], ref.item(), rtol=1e-12)
    np.testing.assert_allclose(vals[1], net.weight.grad.numpy(), rtol=1e-12)


def test_impure_functions_are_refused_with_the_reason():
    w = symad.randn(3, requires_grad=True)
    x = symad.randn(3)
    with pytest.raises(NotReplayable, match="random draw"):
        capture(lambda x: (w * x * symad.randn(3)).sum(), (x,), wrt=[w])
    with pytest.raises(NotReplayable, match="item"):
        capture(lambda x: (w * x).sum() * float((w * x).sum().item()), (x,), wrt=[w])
    with pytest.raises(NotReplayable, match="symad.where"):
        capture(lambda x: (w * x).sum() if (w * x).sum() > 0 else (w - x).sum(), (x,), wrt=[w])


def test_dropout_in_a_compiled_module_runs_eagerly_with_one_warning():
    symad.manual_seed(0)
    big = nn.Sequential(nn.Linear(64, 40), nn.Dropout(0.5), nn.Linear(40, 1))
    cf = symad.compile(big)
    x = symad.randn(4, 64)
    with pytest.warns(symad.compiler.CompileWarning, match="random draw"):
        out = cf(x)
    out.sum().backward()                     # the recording run's own result, graph intact
    assert big[0].weight.grad is not None
    cf(x)                                    # eager from now on, no second warning


def test_symad_trace_at_real_size_is_the_program_with_matrix_formulas():
    from symad.symbolic.program_trace import ProgramTrace
    g = np.random.default_rng(3)
    w, b = symad.tensor(g.normal(size=(2, 1))), symad.zeros(1)
    sizes = []
    for n in (1000, 100_000):
        X, y = symad.tensor(g.normal(size=(n, 2))), symad.tensor(g.normal(size=(n, 1)))
        tr = symad.trace(lambda X, y, w, b: (((X @ w + b) - y) ** 2 / 2).mean(), X, y, w, b,
                         constants=["X", "y"])
        assert isinstance(tr, ProgramTrace)
        sizes.append(len(tr))
        value, dw, db = tr.evaluate(X, y, w, b)
        r = X.numpy() @ w.numpy() + b.numpy() - y.numpy()
        np.testing.assert_allclose(value, (r ** 2).mean() / 2, rtol=1e-12)
        np.testing.assert_allclose(dw, X.numpy().T @ r / n, rtol=1e-10)
        np.testing.assert_allclose(db, r.sum(0) / n, rtol=1e-10)
    assert sizes[0] == sizes[1]
    text = str(tr)
    assert "X @ w" in text and "dloss/dw = Xᵀ @" in text and "dloss/db = Σ(" in text
    assert set(tr.gradient()) == {"w", "b"}


def test_symad_trace_of_a_784_mlp_names_parameters_by_module_path():
    net = mlp784()
    X, y = symad.randn(16, 784), symad.randint(0, 10, (16,))
    tr = symad.trace(lambda X, y: nn.CrossEntropyLoss()(net(X), y), X, y, constants=[0, 1])
    grads = tr.gradient()
    assert list(grads) == [n for n, _ in net.named_parameters()]
    assert "relu(" in str(tr) and "nll_loss(log_softmax(" in str(tr)
    vals = tr.evaluate(X, y)
    ref = nn.CrossEntropyLoss()(net(X), y)
    ref.backward()
    np.testing.assert_allclose(vals[0], ref.item(), rtol=1e-6)
    for v, p in zip(vals[1:], net.parameters()):
        np.testing.assert_allclose(v, p.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_dynamic_net_pattern_runs_eagerly_and_draws_like_eager():
    """PyTorch's dynamic-net tutorial: forward draws from Python's random each call."""
    import random

    class DynamicNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c, self.d, self.e = (
                nn.Parameter(symad.tensor(v)) for v in (0.1, -0.2, 0.3, 0.05, 0.01))

        def forward(self, x):
            y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
            for exp in range(4, random.randint(4, 6)):
                y = y + self.e * x ** exp
            return y

    x = symad.linspace(-math.pi, math.pi, 200)
    y = symad.sin(x)
    losses = {}
    for compiled in (False, True):
        random.seed(0)
        symad.manual_seed(0)
        model = DynamicNet()
        f = symad.compile(model) if compiled else model
        opt = optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)
        out = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(6):
                loss = ((f(x) - y) ** 2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                out.append(loss.item())
        losses[compiled] = (out, [p.detach().numpy().copy() for p in model.parameters()],
                            random.random())
        if compiled:
            msgs = [str(w.message) for w in caught
                    if issubclass(w.category, symad.compiler.CompileWarning)]
            assert len(msgs) == 1 and "Python's random module" in msgs[0]
    # same losses, parameters and random stream as eager: the probe's draws were undone
    assert losses[True][0] == losses[False][0]
    for a, b in zip(losses[True][1], losses[False][1]):
        np.testing.assert_array_equal(a, b)
    assert losses[True][2] == losses[False][2]


def test_gradient_rules_that_bake_index_arrays_are_refused():
    """A VJP that builds an index array from this call's values (instead of a registered op on
    the tensor) would replay stale indices: the recording refuses it."""
    from symad.ops import REGISTRY
    from symad.ops.registry import register

    def _bad_vjp(ctx, g):
        from symad.ops.functional import index_scatter
        key = (np.argsort(ctx.inputs[0]._data),)          # computed from values: not replayable
        return (index_scatter(g[np.argsort(key[0])], key, tuple(ctx.inputs[0].shape)),)

    op = register("_test_identity_bad_vjp", grad_fn="TestBackward0",
                  forward=lambda x: x.copy(), vjp=_bad_vjp, dtype_rule="first")
    try:
        from symad.ops.dispatch import apply
        w = symad.randn(4, requires_grad=True)
        with pytest.raises(NotReplayable, match="index arrays"):
            capture(lambda x: (apply(op, w) * x).sum(), (symad.randn(4),), wrt=[w])
        idx = symad.tensor([2, 0])
        with pytest.raises(NotReplayable, match="indexing with a tensor"):
            capture(lambda x, i: (w * x)[i].sum(), (symad.randn(4), idx), wrt=[w])
    finally:
        del REGISTRY["_test_identity_bad_vjp"]


def test_effect_watch_is_per_thread_other_threads_draws_and_prints_do_not_count():
    """A library thread (Dask's client, a data loader) that draws from Python's random and
    prints while a compile probes the user's function is neither the function's effect nor
    rewound: the compile still compiles, and the thread's stream keeps moving forward."""
    import random
    import threading
    import time

    stop = threading.Event()
    seen = []

    def chatter():
        while not stop.is_set():
            seen.append(random.random())
            np.random.random()
            print("", end="")

    def loss(w, x):
        time.sleep(0.02)        # releases the GIL: the thread surely runs inside the watch
        return ((x * w).sum(dim=1) ** 2).mean()

    t = threading.Thread(target=chatter, daemon=True)
    t.start()
    try:
        w = symad.tensor([0.5, -1.0, 2.0], requires_grad=True)
        x = symad.tensor(np.arange(24.0).reshape(8, 3) / 10)
        f = symad.compile(loss)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(3):
                out = f(w, x)
    finally:
        stop.set()
        t.join()
    ref = float(((np.arange(24.0).reshape(8, 3) / 10 @ np.array([0.5, -1.0, 2.0])) ** 2).mean())
    np.testing.assert_allclose(out.item(), ref, rtol=1e-6)
    # the thread's draws were never rewound: no value repeats in its stream
    assert len(seen) > 10 and len(set(seen)) == len(seen)


def test_effect_watch_catches_draws_under_another_profiler():
    """Under cProfile the per-thread hook is taken; the watch falls back to comparing states."""
    import cProfile
    import random

    def noisy(w):
        return w * random.random()

    w = symad.tensor([1.0, 2.0], requires_grad=True)
    prof = cProfile.Profile()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prof.enable()
        try:
            symad.compile(noisy)(w)
        finally:
            prof.disable()
    msgs = [str(c.message) for c in caught
            if issubclass(c.category, symad.compiler.CompileWarning)]
    assert len(msgs) == 1 and "Python's random module" in msgs[0]
