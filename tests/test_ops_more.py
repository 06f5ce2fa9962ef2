"""The composites of issue 17 (split, chunk, einsum) against numpy and float64 finite
differences, and the argument checks of gather/cumsum/tril/round (PyTorch's messages)."""
from __future__ import annotations

import numpy as np
import pytest

import symad

RNG = np.random.default_rng(7)


def _fd_check(f_symad, f_numpy, arrays, eps=1e-6):
    """Gradient of sum(f(...) * v) by symad vs central differences of the numpy version."""
    ts = [symad.tensor(a, dtype=symad.float64, requires_grad=True) for a in arrays]
    out = f_symad(*ts)
    v = RNG.uniform(-1, 1, tuple(out.shape))
    (out * symad.tensor(v, dtype=symad.float64)).sum().backward()
    for i, a in enumerate(arrays):
        fd = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            vals = []
            for sgn in (1, -1):
                arrs = [x.copy() for x in arrays]
                arrs[i][j] += sgn * eps
                vals.append(np.sum(f_numpy(*arrs) * v))
            fd[j] = (vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(ts[i].grad.numpy(), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("i,i->", [(4,), (4,)]), ("i,j->ij", [(3,), (2,)]), ("ij->ji", [(2, 3)]),
    ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("ij->", [(2, 3)]), ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("...ij->...ji", [(2, 2, 3)]), ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 2, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)]), ("ij,jk", [(2, 3), (3, 2)]),
    ("ijk->ik", [(2, 3, 2)]), ("i,ij->j", [(2,), (2, 3)]), ("ij,j->i", [(2, 3), (3,)]),
])
def test_einsum_matches_numpy_and_differentiates(eq, shapes):
    arrays = [RNG.uniform(-1, 1, s) for s in shapes]
    got = symad.einsum(eq, *[symad.tensor(a, dtype=symad.float64) for a in arrays])
    want = np.einsum(eq, *arrays)
    assert tuple(got.shape) == np.shape(want)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    _fd_check(lambda *ts: symad.einsum(eq, *ts), lambda *a: np.einsum(eq, *a), arrays)


def test_einsum_list_form_and_errors():
    a, b = symad.ones(2, 3), symad.ones(3, 4)
    assert symad.einsum("ij,jk->ik", [a, b]).tolist() == [[3.0] * 4] * 2
    with pytest.raises(RuntimeError, match="does not match the number of dimensions"):
        symad.einsum("ijk,jk->ik", a, b)
    with pytest.raises(RuntimeError, match="more operands were provided"):
        symad.einsum("ij->ij", a, b)
    with pytest.raises(RuntimeError, match="output subscript z does not appear"):
        symad.einsum("ij->iz", a)


@pytest.mark.parametrize("size,dim", [(2, 0), (3, 1), ([1, 3], 1), ([2, 3], 0), (4, -1)])
def test_split_matches_numpy_and_gradients_flow(size, dim):
    x = RNG.uniform(-1, 1, (5, 4))
    d = dim % 2
    n = x.shape[d]
    sizes = size if isinstance(size, list) else [min(size, n - s) for s in range(0, n, size)]
    want = np.split(x, np.cumsum(sizes)[:-1], axis=d)
    t = symad.tensor(x, dtype=symad.float64, requires_grad=True)
    parts = symad.split(t, size, dim)
    assert len(parts) == len(want)
    for p, w in zip(parts, want):
        np.testing.assert_array_equal(p.detach().numpy(), w)
    sum((p * (k + 1)).sum() for k, p in enumerate(parts)).backward()
    scale = np.concatenate([np.full(s, k + 1.0) for k, s in enumerate(sizes)])
    want_grad = np.broadcast_to(scale[:, None] if d == 0 else scale[None, :], x.shape)
    np.testing.assert_array_equal(t.grad.numpy(), want_grad)


def test_chunk_matches_pytorch_sizes():
    # torch.arange(11).chunk(6) gives sizes [2, 2, 2, 2, 2, 1]; torch.arange(6).chunk(4): [2, 2, 2]
    assert [len(c) for c in symad.arange(11).chunk(6)] == [2, 2, 2, 2, 2, 1]
    assert [c.tolist() for c in symad.arange(6).chunk(4)] == [[0, 1], [2, 3], [4, 5]]
    assert [tuple(c.shape) for c in symad.chunk(symad.ones(2, 5), 2, dim=1)] == [(2, 3), (2, 2)]
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0"):
        symad.ones(3).chunk(0)
    with pytest.raises(RuntimeError, match="split_with_sizes expects split_sizes to sum exactly"):
        symad.ones(3).split([1, 1])


def test_pytorch_documented_values():
    # torch.round docs: round(tensor([4.7, -2.3, 9.1, -7.7])) = [5., -2., 9., -8.];
    # halves go to even: round(tensor([-0.5, 0.5, 1.5, 2.5])) = [-0., 0., 2., 2.]
    assert symad.round(symad.tensor([4.7, -2.3, 9.1, -7.7])).tolist() == [5.0, -2.0, 9.0, -8.0]
    assert symad.round(symad.tensor([-0.5, 0.5, 1.5, 2.5])).tolist() == [-0.0, 0.0, 2.0, 2.0]
    assert symad.round(symad.tensor([1.2345]), decimals=3).item() == pytest.approx(1.234,
                                                                                    abs=1e-6)
    # torch.ceil docs: ceil(tensor([-0.6341, -1.4208, -1.0900, 0.5826])) = [-0., -1., -1., 1.]
    assert symad.ceil(symad.tensor([-0.6341, -1.4208, -1.0900, 0.5826])).tolist() == [
        -0.0, -1.0, -1.0, 1.0]
    # torch.gather docs: gather(tensor([[1, 2], [3, 4]]), 1, tensor([[0, 0], [1, 0]]))
    assert symad.gather(symad.tensor([[1, 2], [3, 4]]), 1,
                        symad.tensor([[0, 0], [1, 0]])).tolist() == [[1, 1], [4, 3]]
    # integer cumsum is int64; cumsum accepts NumPy's axis=
    c = symad.tensor([1, 2, 3], dtype=symad.int32).cumsum(axis=0)
    assert c.dtype == symad.int64 and c.tolist() == [1, 3, 6]


def test_rounding_gradients_are_zero():
    x = symad.tensor([0.4, 1.5, -2.7], requires_grad=True)
    (symad.round(x) + symad.ceil(x) * 2 + symad.trunc(x) * 3).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    assert symad.round(x).grad_fn.name() == "RoundBackward0"
    assert symad.round(x, decimals=1).grad_fn.name() == "RoundBackward1"


def test_argument_errors():
    x = symad.ones(3, 4)
    with pytest.raises(RuntimeError, match="Expected dtype int64 for index"):
        symad.gather(x, 1, symad.tensor([[0.0]]))
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        symad.gather(x, 1, symad.tensor([0]))
    with pytest.raises(RuntimeError, match="index 4 is out of bounds for dimension 1 with size 4"):
        symad.gather(x, 1, symad.tensor([[4]]))
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.cumsum(2)
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        symad.tril(symad.ones(3))


def test_new_ops_compile_and_match_eager():
    """symad.compile gets the registry ops of issue 17 at once: no CompileWarning (warnings are
    errors in the suite), same loss and gradients as eager."""
    from symad import nn
    symad.manual_seed(0)
    x, y = symad.randn(16, 3) * 3, symad.randn(16, 2)
    net = nn.Linear(3, 2)

    def f(x, y):
        h = net(x)
        z = symad.round(h) * h + symad.ceil(h) * 0.5 + symad.trunc(h) * 0.25
        return nn.functional.smooth_l1_loss(z.cumsum(1), y, beta=0.5) + \
            nn.functional.huber_loss(h, y, delta=0.7)

    compiled = symad.compile(f)
    a = compiled(x, y)
    a.backward()
    g = [p.grad.numpy().copy() for p in net.parameters()]
    net.zero_grad()
    b = f(x, y)
    b.backward()
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    for gc, p in zip(g, net.parameters()):
        np.testing.assert_allclose(gc, p.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_scatter_pytorch_documented_values_and_one_hot():
    # torch.Tensor.scatter_ docs
    src = symad.arange(1, 11).reshape((2, 5))
    index = symad.tensor([[0, 1, 2, 0]])
    assert symad.zeros(3, 5, dtype=src.dtype).scatter_(0, index, src).tolist() == [
        [1, 0, 0, 4, 0], [0, 2, 0, 0, 0], [0, 0, 3, 0, 0]]
    index = symad.tensor([[0, 1, 2], [0, 1, 4]])
    assert symad.zeros(3, 5, dtype=src.dtype).scatter_(1, index, src).tolist() == [
        [1, 2, 3, 0, 0], [6, 7, 0, 0, 8], [0, 0, 0, 0, 0]]
    # the one-hot idiom of many tutorials
    y = symad.tensor([2, 0, 1])
    assert symad.zeros(3, 4).scatter_(1, y.unsqueeze(1), 1).tolist() == [
        [0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
    # scatter_add: repeated positions add up
    idx = symad.tensor([[0, 1, 2, 0, 0], [2, 0, 0, 1, 2]])
    out = symad.zeros(3, 5).scatter_add_(0, idx, symad.ones(2, 5))
    assert out.tolist() == [[1, 1, 1, 1, 1], [0, 1, 0, 1, 0], [1, 0, 1, 0, 1]]


def test_scatter_gradients_and_errors():
    x = symad.zeros(3, 4, requires_grad=True)
    s = symad.ones(3, 1, requires_grad=True)
    out = x.scatter(1, symad.tensor([[2], [0], [1]]), s)
    assert out.grad_fn.name() == "ScatterBackward0"
    (out * symad.arange(12.0).reshape(3, 4)).sum().backward()
    assert x.grad.tolist() == [[0, 1, 0, 3], [0, 5, 6, 7], [8, 0, 10, 11]]
    assert s.grad.tolist() == [[2], [4], [9]]
    with pytest.raises(RuntimeError, match="index 5 is out of bounds for dimension 1 with size 4"):
        symad.zeros(3, 4).scatter(1, symad.tensor([[5]]), 1.0)
    with pytest.raises(NotImplementedError, match="reduce"):
        symad.zeros(3, 4).scatter(1, symad.tensor([[0]]), 1.0, reduce="add")
    with pytest.raises(RuntimeError, match="smaller than src"):
        symad.zeros(3, 4).scatter(1, symad.tensor([[0, 1]]), symad.ones(1, 1))


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_sort_matches_numpy_and_differentiates(descending, dim):
    x = RNG.uniform(-1, 1, (3, 4))
    t = symad.tensor(x, dtype=symad.float64)
    values, indices = symad.sort(t, dim=dim, descending=descending)
    want = np.sort(x, axis=dim)
    want = np.flip(want, axis=dim) if descending else want
    np.testing.assert_array_equal(values.numpy(), want)
    np.testing.assert_array_equal(np.take_along_axis(x, indices.numpy(), axis=dim), want)
    assert indices.dtype == symad.int64

    def ref(a):
        s = np.sort(a, axis=dim)
        return np.flip(s, axis=dim) if descending else s
    _fd_check(lambda a: symad.sort(a, dim, descending).values, ref, [x])


def test_topk_and_argsort_documented_values_and_ties():
    # torch.topk docs: topk(arange(1., 6.), 3) = values [5., 4., 3.], indices [4, 3, 2]
    v, i = symad.topk(symad.arange(1.0, 6.0), 3)
    assert v.tolist() == [5.0, 4.0, 3.0] and i.tolist() == [4, 3, 2]
    v, i = symad.arange(1.0, 6.0).topk(2, largest=False)
    assert v.tolist() == [1.0, 2.0] and i.tolist() == [0, 1]
    # ties keep their original order, ascending and descending
    assert symad.argsort(symad.tensor([2, 1, 2, 0])).tolist() == [3, 1, 0, 2]
    assert symad.argsort(symad.tensor([2, 1, 2, 0]), descending=True).tolist() == [0, 2, 1, 3]
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        symad.topk(symad.ones(3), 4)
    # the top-k accuracy of pytorch/examples (imagenet)
    output = symad.tensor([[0.1, 0.5, 0.4], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    target = symad.tensor([2, 0, 1])
    _, pred = output.topk(2, 1, True, True)
    pred = pred.t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    top1 = correct[:1].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / 3)
    top2 = correct[:2].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / 3)
    assert top1.tolist() == pytest.approx([100 / 3]) and top2.tolist() == pytest.approx([300 / 3])
    x = symad.tensor([1.0, 4.0, 2.0], requires_grad=True)
    symad.topk(x, 2).values.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0]
