"""symad.compile and the compiled transforms against eager autograd (the reference interpreter)
and float64 finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import symad
from symad import nn, optim
from symad.compiler import CompiledFunction, CompileWarning, NotCompilable
from symad.utils import data


def curve_loss(t, x, y):
    return ((t[0] * symad.exp(-t[1] * x) * symad.sin(t[2] * x + t[3]) + t[4] - y) ** 2).mean()


def _curve_data(n=500, dtype=np.float64):
    x = np.linspace(0.0, 3.0, n).astype(dtype)
    y = (np.sin(2 * x) * np.exp(-0.3 * x) + 0.1).astype(dtype)
    t = np.array([1.0, 0.5, 2.0, 0.1, 0.2], dtype=dtype)
    return t, x, y


def _eager_value_and_grad(fn, t, *rest):
    tt = symad.tensor(t, requires_grad=True)
    out = fn(tt, *[symad.tensor(r) for r in rest])
    out.backward()
    return out.item(), tt.grad.numpy()


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_value_and_grad_curve_fit_matches_eager(dtype, rtol):
    t, x, y = _curve_data(dtype=dtype)
    v, g = symad.value_and_grad(curve_loss)(t, x, y)
    ve, ge = _eager_value_and_grad(curve_loss, t, x, y)
    assert isinstance(g, np.ndarray) and g.dtype == dtype and g.shape == (5,)
    np.testing.assert_allclose(float(v), ve, rtol=rtol)
    np.testing.assert_allclose(g, ge, rtol=rtol * 10, atol=rtol * 10)


def test_value_and_grad_matches_finite_differences():
    t, x, y = _curve_data(200)
    _, g = symad.value_and_grad(curve_loss)(t, x, y)
    h = 1e-6
    for i in range(5):
        tp, tm = t.copy(), t.copy()
        tp[i] += h
        tm[i] -= h
        fd = (curve_loss(symad.tensor(tp), symad.tensor(x), symad.tensor(y)).item()
              - curve_loss(symad.tensor(tm), symad.tensor(x), symad.tensor(y)).item()) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_grad_returns_same_kind():
    f = symad.grad(lambda w, x: ((w * x) ** 2).sum())
    g = f(np.array(2.0), np.array([1.0, 2.0]))   # d/dw sum(w^2 x^2) = 2 w sum(x^2) = 20
    assert float(g) == pytest.approx(20.0)
    gt = f(symad.tensor(2.0, dtype=symad.float64), symad.tensor([1.0, 2.0], dtype=symad.float64))
    assert isinstance(gt, symad.Tensor) and gt.item() == pytest.approx(20.0)


def test_compiled_loss_backward_accumulates_like_eager():
    t, x, y = _curve_data(100)
    tc = symad.tensor(t, requires_grad=True)
    te = symad.tensor(t, requires_grad=True)
    cf = symad.compile(curve_loss)
    X, Y = symad.tensor(x), symad.tensor(y)
    for _ in range(2):
        cf(tc, X, Y).backward()
        curve_loss(te, X, Y).backward()
    np.testing.assert_allclose(tc.grad.numpy(), te.grad.numpy(), rtol=1e-10)
    out = cf(tc, X, Y)
    assert type(out.grad_fn).__name__ == "CompiledFunctionBackward"
    assert cf.compile_count == 1


def test_backward_scaled_by_upstream_gradient():
    t, x, y = _curve_data(50)
    tc = symad.tensor(t, requires_grad=True)
    te = symad.tensor(t, requires_grad=True)
    cf = symad.compile(curve_loss)
    (3.0 * cf(tc, symad.tensor(x), symad.tensor(y))).backward()
    (3.0 * curve_loss(te, symad.tensor(x), symad.tensor(y))).backward()
    np.testing.assert_allclose(tc.grad.numpy(), te.grad.numpy(), rtol=1e-10)


def test_no_grad_gives_plain_tensor():
    t, x, y = _curve_data(50)
    tc = symad.tensor(t, requires_grad=True)
    cf = symad.compile(curve_loss)
    with symad.no_grad():
        out = cf(tc, symad.tensor(x), symad.tensor(y))
    assert out.grad_fn is None and not out.requires_grad
    assert out.item() == pytest.approx(curve_loss(symad.tensor(t), symad.tensor(x),
                                                  symad.tensor(y)).item(), rel=1e-12)


def test_recompiles_only_on_new_signature():
    cf = symad.compile(curve_loss)
    t, x, y = _curve_data(100)
    tc = symad.tensor(t, requires_grad=True)
    for n in (100, 37, 100):                      # other batch sizes: same per-sample program
        for scale in (1.0, 2.0):                  # other values: same program
            cf(tc, symad.tensor(x[:n] * scale), symad.tensor(y[:n])).backward()
    assert cf.compile_count == 1
    cf(symad.tensor(t.astype(np.float32), requires_grad=True),
       symad.tensor(x.astype(np.float32)), symad.tensor(y.astype(np.float32)))
    assert cf.compile_count == 2                  # new dtype: new signature


def test_per_sample_outputs_use_vjp_kernel():
    """A compiled model returns per-sample outputs; an eager loss on top backpropagates into it."""
    symad.manual_seed(3)
    X = symad.randn(20, 3, dtype=symad.float64)
    y = symad.randn(20, 2, dtype=symad.float64)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    cnet = symad.compile(net)
    out_c = cnet(X)
    out_e = net(X)
    np.testing.assert_allclose(out_c.detach().numpy(), out_e.detach().numpy(), rtol=1e-12)
    nn.MSELoss()(out_c, y).backward()
    gc = [p.grad.numpy().copy() for p in net.parameters()]
    net.zero_grad()
    nn.MSELoss()(out_e, y).backward()
    for a, p in zip(gc, net.parameters()):
        np.testing.assert_allclose(a, p.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_gradient_with_respect_to_batched_input():
    x = symad.tensor(np.linspace(-1, 1, 7), requires_grad=True)
    xe = symad.tensor(np.linspace(-1, 1, 7), requires_grad=True)
    y = symad.tensor(np.linspace(0, 2, 7))
    f = symad.compile(lambda a, b: (symad.sin(a) * b).mean())
    h = x * 1.0  # a non-leaf batched input
    f(h, y).backward()
    (symad.sin(xe * 1.0) * y).mean().backward()
    np.testing.assert_allclose(x.grad.numpy(), xe.grad.numpy(), rtol=1e-12)


# -- the seed training loops, compiled vs eager ------------------------------------------------

def _d2l_data(dtype):
    g = symad.Generator().manual_seed(0)
    true_w = symad.tensor([2, -3.4], dtype=dtype)
    X = symad.normal(0, 1, (1000, 2), generator=g, dtype=dtype)
    y = (X @ true_w + 4.2 + symad.normal(0, 0.01, (1000,), generator=g, dtype=dtype))
    return X, y.reshape(-1, 1)


def _d2l_scratch(compiled: bool, dtype):
    X, y = _d2l_data(dtype)
    w = symad.normal(0, 0.01, (2, 1), generator=symad.Generator().manual_seed(1), dtype=dtype)
    w.requires_grad_(True)
    b = symad.zeros(1, dtype=dtype, requires_grad=True)

    def linreg(X, w, b):
        return X @ w + b

    def squared_loss(y_hat, y):
        return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2

    def per_sample_loss(X, y, w, b):
        return squared_loss(linreg(X, w, b), y)

    step = symad.compile(per_sample_loss) if compiled else per_sample_loss
    gen = symad.Generator().manual_seed(2)
    lr, bs = 0.03, 10
    for _ in range(3):
        idx = gen.permutation(1000)
        for i in range(0, 1000, bs):
            j = symad.tensor(idx[i:i + bs])
            loss = step(X[j], y[j], w, b)
            loss.sum().backward()
            with symad.no_grad():
                for p in (w, b):
                    p -= lr * p.grad / bs
                    p.grad.zero_()
    return w.detach().numpy().copy(), b.detach().numpy().copy(), step


@pytest.mark.parametrize("dtype,rtol", [(symad.float64, 1e-10), (symad.float32, 1e-5)])
def test_seed001_scratch_loop_compiled_equals_eager(dtype, rtol):
    we, be, _ = _d2l_scratch(False, dtype)
    wc, bc, step = _d2l_scratch(True, dtype)
    np.testing.assert_allclose(wc, we, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(bc, be, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(wc.ravel(), [2.0, -3.4], atol=0.01)
    assert step.compile_count == 1


def _d2l_concise(compiled: bool, dtype):
    X, y = _d2l_data(dtype)
    symad.manual_seed(5)
    net = nn.Sequential(nn.Linear(2, 1))
    if dtype == symad.float64:
        net = net.double()
    net[0].weight.data.normal_(0, 0.01)
    net[0].bias.data.fill_(0)
    model = symad.compile(net) if compiled else net
    loss = nn.MSELoss()
    trainer = optim.SGD(net.parameters(), lr=0.03)
    loader = data.DataLoader(data.TensorDataset(X, y), batch_size=10, shuffle=True,
                             generator=symad.Generator().manual_seed(0))
    for _ in range(3):
        for xb, yb in loader:
            lval = loss(model(xb), yb)
            trainer.zero_grad()
            lval.backward()
            trainer.step()
    return net[0].weight.data.numpy().copy(), net[0].bias.data.numpy().copy()


@pytest.mark.parametrize("dtype,rtol", [(symad.float64, 1e-10), (symad.float32, 1e-5)])
def test_seed001_concise_loop_compiled_equals_eager(dtype, rtol):
    we, be = _d2l_concise(False, dtype)
    wc, bc = _d2l_concise(True, dtype)
    np.testing.assert_allclose(wc, we, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(bc, be, rtol=rtol, atol=rtol)


class ComputeGradients(symad.autograd.Function):
    """Seed 003's custom Function (its backward reads the global ``w`` for grad_x)."""

    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(x)
        return w * x + b

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return (grad_output * x).sum(), grad_output * _SEED3_W, grad_output.sum()


_SEED3_W = None


def _seed003(compiled: bool):
    global _SEED3_W
    g = symad.Generator().manual_seed(2024)
    x = symad.randint(-5, 30, (11,), generator=g).to(symad.float32)
    y = 0.5 * x + 30 + symad.randn(11, generator=g)
    x_new = x * 0.1
    w = symad.tensor(1.0, requires_grad=True)
    b = symad.tensor(0.0, requires_grad=True)
    _SEED3_W = w

    def loss_of(w, x, b, y):
        return ((ComputeGradients.apply(w, x, b) - y) ** 2).mean()

    f = symad.compile(loss_of) if compiled else loss_of
    for _ in range(1000):
        loss = f(w, x_new, b, y)
        loss.backward()
        with symad.no_grad():
            w -= 1e-2 * w.grad
            b -= 1e-2 * b.grad
        w.grad.zero_()
        b.grad.zero_()
    return w.item(), b.item(), loss.item()


def test_seed003_custom_function_fit_compiled_equals_eager():
    we, be, le = _seed003(False)
    wc, bc, lc = _seed003(True)
    assert wc == pytest.approx(we, rel=1e-4) and bc == pytest.approx(be, rel=1e-4)
    assert lc == pytest.approx(le, rel=1e-4)


def test_seed002_two_layer_net_compiled_equals_eager():
    symad.manual_seed(0)
    x = symad.autograd.Variable(symad.Tensor([[1.0], [2.0], [3.0]]), requires_grad=True)
    y = symad.autograd.Variable(symad.Tensor([[2.0], [4.0], [6.0]]), requires_grad=True)
    w1 = symad.randn(1, 2, requires_grad=True)
    w2 = symad.randn(2, 1, requires_grad=True)

    def loss_fn(x, y, w1, w2):
        return (x.mm(w1).clamp(min=0).mm(w2) - y).pow(2).sum()

    f = symad.compile(loss_fn)
    grads = {}
    for name, fn in (("compiled", f), ("eager", loss_fn)):
        for t in (x, y, w1, w2):
            t.grad = None
        fn(x, y, w1, w2).backward()
        grads[name] = [t.grad.numpy().copy() for t in (x, y, w1, w2)]
    for a, b in zip(grads["compiled"], grads["eager"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert f.compile_count == 1


# -- fallback and errors ------------------------------------------------------------------------

def _branchy(w, x):
    if (w * x).sum() > 0:      # Python control flow on a traced value
        return (w * x).sum()
    return -(w * x).sum()


def test_untraceable_function_falls_back_with_one_warning():
    w = symad.tensor(2.0, requires_grad=True)
    x = symad.tensor([1.0, 2.0, 3.0])
    cf = symad.compile(_branchy)
    with pytest.warns(CompileWarning, match="symad.where"):
        out = cf(w, x)
    assert out.item() == pytest.approx(12.0)
    out.backward()
    assert w.grad.item() == pytest.approx(6.0)
    cf(w, x)   # no second warning (filterwarnings=error would raise)
    assert cf.compile_count == 0


def test_fullgraph_raises():
    cf = symad.compile(_branchy, fullgraph=True)
    with pytest.raises(NotCompilable, match="symad.where"):
        cf(symad.tensor(2.0, requires_grad=True), symad.tensor([1.0, 2.0]))


def test_compiled_module_exposes_module_api():
    net = nn.Linear(2, 1)
    cnet = symad.compile(net)
    assert isinstance(cnet, CompiledFunction)
    assert len(list(cnet.parameters())) == 2


# -- jacobian and hessian -------------------------------------------------------------------------

def test_jacobian_exact_values():
    f = symad.jacobian(lambda x: symad.stack([x[0] * x[1], symad.sin(x[0])]))
    J = f(np.array([1.0, 2.0]))
    np.testing.assert_allclose(J, [[2.0, 1.0], [np.cos(1.0), 0.0]], rtol=1e-15)


def test_hessian_of_tiny_mlp_matches_finite_differences():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 2))
    Y = rng.normal(size=(5, 1))

    def loss(theta, X, Y):
        W1 = theta[:8].reshape(2, 4)
        b1 = theta[8:12]
        W2 = theta[12:16].reshape(4, 1)
        return ((symad.tanh(X @ W1 + b1) @ W2 - Y) ** 2).mean()

    theta = rng.normal(size=16)
    H = symad.hessian(loss)(theta, X, Y)
    g = symad.grad(loss)
    h = 1e-5
    fd = np.empty((16, 16))
    for i in range(16):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += h
        tm[i] -= h
        fd[i] = (g(tp, X, Y) - g(tm, X, Y)) / (2 * h)
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    np.testing.assert_allclose(H, fd, atol=1e-6)


def test_large_dense_model_compiles_as_a_tensor_program():
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    cnet = symad.compile(net)
    X = symad.randn(8, 64)
    for _ in range(2):                     # recorded at the first call, replayed at the second
        out = cnet(X)
        out.square().sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    for _ in range(2):
        ref = net(X)
        ref.square().sum().backward()
    # float32: the replayed call runs as native loops, which sum in another order than BLAS;
    # agreement to ~8 ulps of each array's largest element (float64 below: 1e-12)
    r = ref.detach().numpy()
    np.testing.assert_allclose(out.detach().numpy(), r, rtol=1e-6, atol=1e-6 * np.abs(r).max())
    for g, p in zip(grads, net.parameters()):
        pg = p.grad.numpy()
        np.testing.assert_allclose(g.numpy(), pg, rtol=1e-6, atol=1e-6 * np.abs(pg).max())
    assert cnet.compile_count == 1
    (entry,) = cnet._entries.values()
    assert type(next(iter(entry.shapes.values()))[0]).__name__ == "NativeEntry"


def test_large_dense_model_compiles_as_a_native_program_float64():
    symad.manual_seed(1)
    net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)).to(symad.float64)
    cnet = symad.compile(net)
    X = symad.randn(8, 64, dtype=symad.float64)
    outs = [cnet(X) for _ in range(3)]     # recorded, then two replays before any backward
    (outs[1].square().sum() + outs[2].sum()).backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    refs = [net(X) for _ in range(3)]
    (refs[1].square().sum() + refs[2].sum()).backward()
    (entry,) = cnet._entries.values()
    (run, _, _) = next(iter(entry.shapes.values()))
    assert type(run).__name__ == "NativeEntry" and run.native_steps > 0
    for o, r in zip(outs, refs):
        np.testing.assert_allclose(o.detach().numpy(), r.detach().numpy(), rtol=1e-12)
    for g, p in zip(grads, net.parameters()):
        np.testing.assert_allclose(g.numpy(), p.grad.numpy(), rtol=1e-11, atol=1e-14)


def test_mismatched_batch_raises_the_eager_error():
    f = symad.compile(lambda w, x, y: ((w * x - y) ** 2).mean())
    w = symad.tensor(1.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="size of tensor a"):
        f(w, symad.ones(10), symad.ones(8))


def test_keyword_arguments_run_eagerly_with_one_warning():
    f = symad.compile(lambda w, x: (w * x).sum())
    w = symad.tensor(2.0, requires_grad=True)
    with pytest.warns(CompileWarning, match="keyword"):
        out = f(w, x=symad.tensor([1.0, 2.0]))
    assert out.item() == pytest.approx(6.0)
    out.backward()
    assert w.grad.item() == pytest.approx(3.0)


def test_verbose_reports_phase_times(capsys):
    f = symad.compile(lambda w, x: ((w * x) ** 2).mean(), verbose=True)
    f(symad.tensor(2.0, requires_grad=True), symad.tensor([1.0, 2.0, 3.0]))
    out = capsys.readouterr().out
    assert "symad.compile: built" in out and "trace" in out and "lower+jit" in out


def test_class_label_targets_compile_as_a_tensor_program():
    symad.manual_seed(0)
    net = nn.Linear(4, 3)
    lossf = nn.CrossEntropyLoss()
    f = symad.compile(lambda X, y: lossf(net(X), y))
    X, y = symad.randn(8, 4), symad.randint(0, 3, (8,))
    for k in range(2):
        yk = (y + k) % 3                    # the second call must read its own labels
        out = f(X, yk)
        out.backward()
        ref = lossf(net(X), yk)
        assert out.item() == pytest.approx(ref.item(), rel=1e-6)
        got = net.weight.grad.clone()
        net.zero_grad()
        ref.backward()
        # float32 native loops sum in another order than eager's BLAS: ~8 ulps of the scale
        wg = net.weight.grad.numpy()
        np.testing.assert_allclose(got.numpy(), wg, rtol=1e-6, atol=1e-6 * np.abs(wg).max())
        net.zero_grad()


@pytest.mark.parametrize("fn,expected", [
    # PyTorch's conventions at the kinks, per sample x in [-1, 0, 0, 2] with w = 1:
    (lambda w, x: symad.relu(w * x).sum(), 2.0),                  # relu'(0) = 0 -> -1*0+0+0+2*1
    (lambda w, x: symad.abs(w * x).sum(), 1.0 + 2.0),             # abs'(0) = 0 -> 1 + 0 + 0 + 2
    (lambda w, x: symad.clamp(w * x, -1.0, 2.0).sum(), 0.0),      # edges get gradient 0
    (lambda w, x: symad.clamp(w * x, -2.0, 2.0).sum(), -1.0),     # (PyTorch 2.14.1): -1 + 0
    (lambda w, x: symad.maximum(w * x, x).sum(), 0.5 * (-1 + 2.0)),  # every element ties at
                                                                    # w = 1: split evenly
])
def test_compiled_gradients_follow_pytorch_kink_conventions(fn, expected):
    x = symad.tensor([-1.0, 0.0, 0.0, 2.0], dtype=symad.float64)
    w = symad.tensor(1.0, dtype=symad.float64, requires_grad=True)
    we = symad.tensor(1.0, dtype=symad.float64, requires_grad=True)
    symad.compile(fn)(w, x).backward()
    fn(we, x).backward()
    assert w.grad.item() == pytest.approx(expected)
    assert w.grad.item() == pytest.approx(we.grad.item())
