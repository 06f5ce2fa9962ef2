"""symad.utils.data: batching, shuffling, drop_last, collation and random_split."""
from __future__ import annotations

import numpy as np
import pytest

import symad
from symad.utils import data
from symad.utils.data import DataLoader, Dataset, Subset, TensorDataset, random_split


def make_ds(n=10):
    X = symad.arange(2 * n, dtype=symad.float32).reshape(n, 2)
    y = symad.arange(n)
    return TensorDataset(X, y)


def test_tensor_dataset_items_and_len():
    ds = make_ds()
    assert len(ds) == 10
    x, y = ds[3]
    np.testing.assert_array_equal(x.numpy(), [6.0, 7.0])
    assert y.item() == 3
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(symad.zeros(3), symad.zeros(4))


def test_sequential_batches_and_len():
    dl = DataLoader(make_ds(), batch_size=4)
    batches = list(dl)
    assert len(dl) == 3 and len(batches) == 3
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    X, y = batches[0]
    assert X.shape == (4, 2) and X.dtype == symad.float32 and y.dtype == symad.int64
    np.testing.assert_array_equal(X.numpy(), np.arange(8).reshape(4, 2))


def test_drop_last():
    dl = DataLoader(make_ds(), batch_size=4, drop_last=True)
    assert len(dl) == 2
    assert [b[1].tolist() for b in dl] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(make_ds(8), batch_size=4, drop_last=True)) == 2


def test_shuffle_is_a_permutation_reproducible_and_fresh_each_epoch():
    ds = make_ds(50)
    g = symad.Generator().manual_seed(7)
    dl = DataLoader(ds, batch_size=8, shuffle=True, generator=g)
    epoch1 = np.concatenate([b[1].numpy() for b in dl])
    epoch2 = np.concatenate([b[1].numpy() for b in dl])
    assert sorted(epoch1.tolist()) == list(range(50))
    assert epoch1.tolist() != list(range(50))
    assert epoch1.tolist() != epoch2.tolist()
    g.manual_seed(7)
    again = np.concatenate([b[1].numpy() for b in dl])
    np.testing.assert_array_equal(epoch1, again)
    # rows stay paired with their labels
    for X, y in DataLoader(ds, batch_size=8, shuffle=True, generator=g):
        np.testing.assert_array_equal(X.numpy()[:, 0], 2 * y.numpy())


def test_shuffle_uses_the_global_seed_by_default():
    symad.manual_seed(3)
    a = [b[1].tolist() for b in DataLoader(make_ds(), batch_size=3, shuffle=True)]
    symad.manual_seed(3)
    b = [b[1].tolist() for b in DataLoader(make_ds(), batch_size=3, shuffle=True)]
    assert a == b


class Pairs(Dataset):
    """A map-style dataset of (tensor, int, float) samples — exercises default_collate."""

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return symad.tensor([float(i), -float(i)]), i, i / 2


def test_default_collate_on_a_custom_dataset():
    batches = list(DataLoader(Pairs(), batch_size=2))
    assert len(batches) == 3
    x, i, f = batches[0]
    assert isinstance(batches[0], list)  # PyTorch returns a list for tuple samples
    np.testing.assert_array_equal(x.numpy(), [[0.0, -0.0], [1.0, -1.0]])
    assert i.dtype == symad.int64 and i.tolist() == [0, 1]
    assert f.dtype == symad.float64 and f.tolist() == [0.0, 0.5]
    assert batches[2][1].tolist() == [4]


def test_default_collate_dicts_and_stack_grad():
    out = data.default_collate([{"a": 1, "b": symad.zeros(2)}, {"a": 2, "b": symad.ones(2)}])
    assert out["a"].tolist() == [1, 2] and out["b"].shape == (2, 2)
    w = symad.tensor([1.0, 2.0], requires_grad=True)
    batch = data.default_collate([w, 2 * w])
    batch.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])


def test_collate_fn_and_batch_size_none():
    dl = DataLoader(make_ds(4), batch_size=2, collate_fn=lambda b: len(b))
    assert list(dl) == [2, 2]
    items = list(DataLoader(make_ds(3), batch_size=None))
    assert len(items) == 3 and items[1][1].item() == 1


def test_fast_path_equals_generic_collation():
    ds = make_ds(7)
    fast = list(DataLoader(ds, batch_size=3))
    slow = list(DataLoader(ds, batch_size=3, collate_fn=data.default_collate))
    for a, b in zip(fast, slow):
        for ta, tb in zip(a, b):
            assert ta.dtype == tb.dtype
            np.testing.assert_array_equal(ta.numpy(), tb.numpy())


def test_random_split_lengths_and_fractions():
    ds = make_ds(10)
    parts = random_split(ds, [3, 7], generator=symad.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [3, 7]
    idx = sorted(parts[0].indices + parts[1].indices)
    assert idx == list(range(10))
    assert all(isinstance(p, Subset) for p in parts)
    # fractions: floor, then the remainder one by one from the front (PyTorch's rule)
    assert [len(p) for p in random_split(range(10), [0.33, 0.33, 0.34])] == [4, 3, 3]
    assert [len(p) for p in random_split(range(11), [0.5, 0.5])] == [6, 5]
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(ds, [3, 3])
    g1 = symad.Generator().manual_seed(5)
    g2 = symad.Generator().manual_seed(5)
    assert random_split(ds, [5, 5], generator=g1)[0].indices == \
        random_split(ds, [5, 5], generator=g2)[0].indices


def test_subset_items_and_loader():
    ds = make_ds(10)
    sub = Subset(ds, [9, 2, 4])
    assert len(sub) == 3 and sub[0][1].item() == 9
    assert [b[1].tolist() for b in DataLoader(sub, batch_size=2)] == [[9, 2], [4]]


def test_concat_dataset():
    cat = make_ds(3) + make_ds(2)
    assert len(cat) == 5 and cat[3][1].item() == 0 and cat[-1][1].item() == 1


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(make_ds(), batch_size=0)
