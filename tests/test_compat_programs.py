"""Short PyTorch programs, written the way the tutorials write them, run with
``import symad as torch``.

Each program is the tutorial's code with only the data made deterministic where PyTorch's random
stream matters (symad's generator is not PyTorch's): initial values are read back from the
program, and an independent numpy re-implementation of the same computation (float32, in the
order PyTorch evaluates it) is the oracle, at float32 rtol 1e-5. Values PyTorch prints in its
tutorials are encoded as constants.

Patterns covered (issue 17): device selection and ``.to(device)``, ``torch.cuda`` queries,
``set_default_device``, d2l-style helpers (``meshgrid``, ``sum(1, keepdims=True)``,
``argmax(axis=1)``), legacy ``size_average=`` loss arguments, ``nn.LazyLinear``, learning-rate
schedulers in a training loop, ``torch.save``/``torch.load`` of state dicts and checkpoints,
``SmoothL1Loss``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import symad as torch
from symad import nn

RTOL = 1e-5


# -- "Learning PyTorch with Examples": tensors and autograd ---------------------------------------

def test_learning_pytorch_tensors_and_autograd():
    torch.manual_seed(0)
    # --- the tutorial's program (PyTorch 2.x version) ---
    dtype = torch.float
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_default_device(device)

    x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype)
    y = torch.sin(x)

    a = torch.randn((), dtype=dtype, requires_grad=True)
    b = torch.randn((), dtype=dtype, requires_grad=True)
    c = torch.randn((), dtype=dtype, requires_grad=True)
    d = torch.randn((), dtype=dtype, requires_grad=True)
    init = [float(v) for v in (a, b, c, d)]

    learning_rate = 1e-6
    for t in range(300):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    # --- oracle: the same gradient descent in numpy float32 ---
    xs = np.linspace(-math.pi, math.pi, 2000).astype(np.float32)
    ys = np.sin(xs)
    p = np.array(init, dtype=np.float32)
    powers = np.stack([np.ones_like(xs), xs, xs ** 2, xs ** 3])
    for _ in range(300):
        r = p[0] + p[1] * xs + p[2] * xs ** 2 + p[3] * xs ** 3 - ys
        p = (p - np.float32(learning_rate) * (2 * powers * r).sum(1)).astype(np.float32)
    np.testing.assert_allclose([a.item(), b.item(), c.item(), d.item()], p, rtol=RTOL, atol=1e-6)
    assert x.device == torch.device("cpu") and a.device.type == "cpu"


def test_learning_pytorch_nn_with_legacy_size_average():
    torch.manual_seed(1)
    # --- the tutorial's nn program, with the loss spelled as older versions did ---
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated, "
                                         "please use reduction='sum' instead."):
        loss_fn = torch.nn.MSELoss(size_average=False)
    w0 = model[0].weight.detach().numpy().copy()
    b0 = model[0].bias.detach().numpy().copy()
    learning_rate = 1e-6
    losses = []
    for t in range(200):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
    linear_layer = model[0]
    # --- oracle ---
    xs = np.linspace(-math.pi, math.pi, 2000).astype(np.float32)
    X = np.stack([xs, xs ** 2, xs ** 3], 1)
    w, b = w0[0].copy(), b0.copy()
    ref_losses = []
    for _ in range(200):
        r = X @ w + b[0] - np.sin(xs)
        ref_losses.append(float((r * r).sum()))
        w = (w - np.float32(learning_rate) * 2 * (r @ X)).astype(np.float32)
        b = (b - np.float32(learning_rate) * 2 * r.sum()).astype(np.float32)
    np.testing.assert_allclose(losses, ref_losses, rtol=RTOL)
    np.testing.assert_allclose(linear_layer.weight.detach().numpy()[0], w, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(linear_layer.bias.item(), b[0], rtol=RTOL, atol=1e-7)


# -- 60-minute blitz ------------------------------------------------------------------------------

def test_blitz_autograd_and_device_moves():
    # autograd tutorial: PyTorch prints out = tensor(27., grad_fn=<MeanBackward0>) and
    # x.grad = tensor([[4.5000, 4.5000], [4.5000, 4.5000]])
    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()
    assert out.item() == 27.0 and out.grad_fn.name() == "MeanBackward0"
    out.backward()
    assert x.grad.tolist() == [[4.5, 4.5], [4.5, 4.5]]
    # tensor tutorial: "We will use torch.device objects to move tensors in and out of GPU"
    x = torch.tensor([0.5, -1.25])
    if torch.cuda.is_available():
        raise AssertionError("symad has no CUDA")
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    y = torch.ones_like(x, device=device)
    x = x.to(device)
    z = x + y
    zd = z.to("cpu", torch.double)
    assert zd.dtype == torch.float64 and zd.tolist() == [1.5, -0.25]
    assert repr(device) == "device(type='cpu')"


def test_blitz_classifier_training_step_with_device_and_data_parallel_check():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))

    torch.manual_seed(2)
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    net = Net()
    if torch.cuda.device_count() > 1:
        raise AssertionError("no DataParallel on a CPU-only library")
    net.to(device)
    params0 = [p.detach().numpy().copy() for p in net.parameters()]
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    X = np.array([[0.5, -1.0, 0.25, 2.0], [1.5, 0.5, -0.75, 0.0], [-0.5, 1.0, 1.0, -1.0]],
                 dtype=np.float32)
    T = np.array([2, 0, 1])
    data = (torch.tensor(X), torch.tensor(T))
    for epoch in range(3):
        inputs, labels = data[0].to(device), data[1].to(device)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
    # --- oracle: the same MLP, cross-entropy and SGD momentum in numpy ---
    w1, b1, w2, b2 = params0
    bufs = None
    for _ in range(3):
        h = X @ w1.T + b1
        a = np.maximum(h, 0)
        o = a @ w2.T + b2
        e = np.exp(o - o.max(1, keepdims=True))
        sm = e / e.sum(1, keepdims=True)
        go = sm.copy()
        go[np.arange(3), T] -= 1
        go /= 3
        gw2, gb2 = go.T @ a, go.sum(0)
        gh = (go @ w2) * (h > 0)
        gw1, gb1 = gh.T @ X, gh.sum(0)
        grads = [gw1, gb1, gw2, gb2]
        bufs = grads if bufs is None else [0.9 * bf + g for bf, g in zip(bufs, grads)]
        w1, b1, w2, b2 = [p - 0.1 * bf for p, bf in zip((w1, b1, w2, b2), bufs)]
    for p, ref in zip(net.parameters(), (w1, b1, w2, b2)):
        np.testing.assert_allclose(p.detach().numpy(), ref, rtol=RTOL, atol=1e-6)


def test_quickstart_device_selection_lines():
    device = (torch.accelerator.current_accelerator().type
              if torch.accelerator.is_available() else "cpu")
    assert device == "cpu"
    device = ("cuda" if torch.cuda.is_available()
              else "mps" if torch.backends.mps.is_available() else "cpu")
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).to(device)
    assert model(torch.ones(3, 2, 2, device=device)).shape == (3, 2)


# -- d2l-style helpers and softmax regression ------------------------------------------------------

# d2l's torch library aliases these at import time
d2l_meshgrid = torch.meshgrid
d2l_reduce_sum = lambda x, *args, **kwargs: x.sum(*args, **kwargs)  # noqa: E731
d2l_argmax = lambda x, *args, **kwargs: x.argmax(*args, **kwargs)  # noqa: E731
d2l_astype = lambda x, *args, **kwargs: x.type(*args, **kwargs)  # noqa: E731
d2l_to = lambda x, *args, **kwargs: x.to(*args, **kwargs)  # noqa: E731
d2l_numpy = lambda x, *args, **kwargs: x.detach().numpy(*args, **kwargs)  # noqa: E731


def d2l_try_gpu(i=0):
    if torch.cuda.device_count() >= i + 1:
        return torch.device(f"cuda:{i}")
    return torch.device("cpu")


def d2l_softmax(X):
    X_exp = torch.exp(X)
    partition = X_exp.sum(1, keepdims=True)
    return X_exp / partition  # The broadcasting mechanism is applied here


def d2l_cross_entropy(y_hat, y):
    return -torch.log(y_hat[range(len(y_hat)), y])


def d2l_accuracy(y_hat, y):
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def d2l_sgd(params, lr, batch_size):
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def test_d2l_softmax_regression_from_scratch():
    rng = np.random.default_rng(3)
    Xn = rng.normal(size=(12, 4)).astype(np.float32)
    yn = rng.integers(0, 3, size=12)
    device = d2l_try_gpu()
    num_inputs, num_outputs = 4, 3
    torch.manual_seed(3)
    W = torch.normal(0, 0.01, size=(num_inputs, num_outputs), requires_grad=True)
    b = torch.zeros(num_outputs, requires_grad=True)
    W0 = d2l_numpy(W).copy()

    def net(X):
        return d2l_softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)

    X, y = d2l_to(torch.tensor(Xn), device), torch.tensor(yn, device=device)
    lr, batch_size = 0.5, 12
    accs = []
    for epoch in range(5):
        l = d2l_cross_entropy(net(X), y)  # noqa: E741
        d2l_reduce_sum(l).backward()
        d2l_sgd([W, b], lr, batch_size)
        accs.append(d2l_accuracy(net(X), y) / len(y))
    # --- oracle ---
    Wr, br = W0.copy(), np.zeros(3, np.float32)
    ref_accs = []
    for _ in range(5):
        o = Xn @ Wr + br
        e = np.exp(o)
        p = e / e.sum(1, keepdims=True)
        g = p.copy()
        g[np.arange(12), yn] -= 1
        Wr = Wr - lr * (Xn.T @ g) / batch_size
        br = br - lr * g.sum(0) / batch_size
        o = Xn @ Wr + br
        ref_accs.append(float((o.argmax(1) == yn).sum()) / 12)
    np.testing.assert_allclose(d2l_numpy(W), Wr, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(d2l_numpy(b), br, rtol=RTOL, atol=1e-6)
    assert accs == ref_accs
    assert d2l_argmax(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), axis=1).tolist() == [1, 0]
    assert d2l_astype(torch.tensor([1.7]), torch.int64).tolist() == [1]


def test_d2l_optimization_contour_grid():
    # d2l.show_trace_2d: x1, x2 = d2l.meshgrid(d2l.arange(-5.5, 1.0, 0.1),
    #                                          d2l.arange(-3.0, 1.0, 0.1), indexing='ij')
    def f_2d(x1, x2):
        return x1 ** 2 + 2 * x2 ** 2

    x1, x2 = d2l_meshgrid(torch.arange(-5.5, 1.0, 0.1), torch.arange(-3.0, 1.0, 0.1),
                          indexing="ij")
    g1, g2 = np.meshgrid(np.arange(-5.5, 1.0, 0.1, dtype=np.float64).astype(np.float32),
                         np.arange(-3.0, 1.0, 0.1).astype(np.float32), indexing="ij")
    assert x1.shape == g1.shape == (65, 40)
    np.testing.assert_allclose(d2l_numpy(f_2d(x1, x2)), g1 ** 2 + 2 * g2 ** 2, rtol=RTOL)
    # PyTorch 2.x without indexing: a UserWarning and 'ij'
    with pytest.warns(UserWarning, match="indexing argument"):
        a, _ = torch.meshgrid(torch.arange(3), torch.arange(2))
    assert a.shape == (3, 2)


# -- LazyLinear + scheduler in a d2l-style training loop ----------------------------------------

def test_lazy_linear_regression_with_scheduler():
    rng = np.random.default_rng(4)
    true_w = np.array([2.0, -3.4], dtype=np.float32)
    Xn = rng.normal(size=(40, 2)).astype(np.float32)
    yn = (Xn @ true_w + 4.2 + rng.normal(scale=0.01, size=40)).astype(np.float32)[:, None]

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Lazy modules are a new feature ..."
        net = nn.LazyLinear(1)
    X, y = torch.tensor(Xn).to(device), torch.tensor(yn).to(device)
    net(X[:1])  # d2l: a dry run materializes the lazy parameters, then initialise

    def init_weights(m):
        if type(m) is nn.Linear:
            nn.init.constant_(m.weight, 0.1)
            nn.init.zeros_(m.bias)

    net.apply(init_weights)
    net.to(device)
    loss = nn.MSELoss()
    trainer = torch.optim.SGD(net.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(trainer, step_size=3, gamma=0.5)
    history = []
    for epoch in range(8):
        for i in range(0, 40, 10):
            trainer.zero_grad()
            l = loss(net(X[i:i + 10]), y[i:i + 10])  # noqa: E741
            l.backward()
            trainer.step()
        scheduler.step()
        history.append(scheduler.get_last_lr()[0])
    assert net.in_features == 2 and type(net) is nn.Linear
    # --- oracle ---
    w, b = np.full(2, 0.1, np.float32), np.float32(0.0)
    for epoch in range(8):
        lr = np.float32(0.1 * 0.5 ** (epoch // 3))
        for i in range(0, 40, 10):
            r = Xn[i:i + 10] @ w + b - yn[i:i + 10, 0]
            w = w - lr * (2 * r @ Xn[i:i + 10] / 10)
            b = b - lr * (2 * r.sum() / 10)
    np.testing.assert_allclose(net.weight.detach().numpy()[0], w, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(net.bias.item(), b, rtol=RTOL, atol=1e-6)
    assert history == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025], rel=1e-15)


def test_one_cycle_in_a_training_loop_with_adam():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, epochs=2, steps_per_epoch=5)
    X, y = torch.randn(20, 3), torch.randn(20, 1)
    lrs, betas = [], []
    for epoch in range(2):
        for i in range(0, 20, 4):
            opt.zero_grad()
            nn.functional.mse_loss(model(X[i:i + 4]), y[i:i + 4]).backward()
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr()[0])
            betas.append(opt.param_groups[0]["betas"][0])
    # PyTorch's schedule (cos annealing; warm-up ends at step 0.3 * 10 - 1 = 2)
    def anneal(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)
    init, top, low = 0.05 / 25, 0.05, 0.05 / 25 / 1e4
    want = [anneal(init, top, k / 2) if k <= 2 else anneal(top, low, (k - 2) / 7)
            for k in range(1, 11)]
    assert lrs == pytest.approx(want, rel=1e-12)
    assert betas[1] == pytest.approx(0.85) and betas[-2] == pytest.approx(0.95)
    # the 10th step() lands on step 10, past the schedule's end (step 9): PyTorch extrapolates
    # the annealing (pct = 8/7) rather than raising; only an 11th step() raises
    assert betas[-1] == pytest.approx(anneal(0.85, 0.95, 8 / 7), rel=1e-12)


# -- saving and loading (PyTorch's "Saving and Loading Models" tutorial) ------------------------

class TheModelClass(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_save_load_state_dict_and_checkpoint(tmp_path):
    torch.manual_seed(6)
    model = TheModelClass()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    x = torch.randn(4, 6)
    criterion = nn.CrossEntropyLoss()
    target = torch.tensor([0, 2, 1, 1])
    for _ in range(2):
        optimizer.zero_grad()
        loss = criterion(model(x), target)
        loss.backward()
        optimizer.step()
    print("Model's state_dict:")
    for param_tensor in model.state_dict():
        print(param_tensor, "\t", model.state_dict()[param_tensor].size())
    PATH = tmp_path / "model_weights.pt"
    torch.save(model.state_dict(), PATH)
    model2 = TheModelClass()
    model2.load_state_dict(torch.load(PATH, weights_only=True))
    model2.eval()
    assert torch.equal(model2(x), model(x))

    CKPT = tmp_path / "checkpoint.tar"
    torch.save({"epoch": 2, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(), "loss": loss}, CKPT)
    model3 = TheModelClass()
    optimizer3 = torch.optim.SGD(model3.parameters(), lr=0.001, momentum=0.9)
    checkpoint = torch.load(CKPT, weights_only=True)
    model3.load_state_dict(checkpoint["model_state_dict"])
    optimizer3.load_state_dict(checkpoint["optimizer_state_dict"])
    epoch, loss3 = checkpoint["epoch"], checkpoint["loss"]
    model3.train()
    assert epoch == 2 and loss3.item() == loss.item()
    for m, opt in ((model, optimizer), (model3, optimizer3)):  # one more step each: identical
        opt.zero_grad()
        criterion(m(x), target).backward()
        opt.step()
    for p, q in zip(model.parameters(), model3.parameters()):
        assert torch.equal(p, q)

    # the entire model (pickled class): PyTorch needs weights_only=False for that, and so do we
    FULL = tmp_path / "model.pt"
    torch.save(model, FULL)
    model4 = torch.load(FULL, weights_only=False)
    model4.eval()
    assert type(model4) is TheModelClass and torch.equal(model4(x), model(x))


# -- DQN-style Huber / smooth L1 loss ------------------------------------------------------------

def test_dqn_smooth_l1_loss():
    state_action_values = torch.tensor([[0.5], [2.0], [-1.0]], requires_grad=True)
    expected_state_action_values = torch.tensor([0.25, 0.0, 0.5])
    criterion = nn.SmoothL1Loss()
    loss = criterion(state_action_values, expected_state_action_values.unsqueeze(1))
    # (0.5 * 0.25**2 + (2 - 0.5) + (1.5 - 0.5)) / 3
    assert loss.item() == pytest.approx((0.03125 + 1.5 + 1.0) / 3, rel=RTOL)
    loss.backward()
    np.testing.assert_allclose(state_action_values.grad.numpy()[:, 0],
                               [0.25 / 3, 1 / 3, -1 / 3], rtol=RTOL)
