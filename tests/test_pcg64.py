"""codegen.pcg64: numpy's PCG64 permutations drawn natively, bit for bit, with the generator's
stream continuing exactly as after numpy's own draws (numpy is the oracle)."""
from __future__ import annotations

import numpy as np
import pytest

from codegen.pcg64 import Permutations


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 12345, 2 ** 63 + 7])
@pytest.mark.parametrize("n,k", [(0, 2), (1, 3), (2, 5), (7, 1), (10, 4), (128, 2), (257, 3),
                                 (1000, 3), (65537, 1)])
def test_permutations_and_the_stream_after_equal_numpy(seed, n, k, direct, monkeypatch):
    """``direct``: numpy's state struct read and written in place (its layout checked once per
    generator); else through ``bit_generator.state``. Sizes around the 128-output blocks."""
    perms = Permutations.shared()
    if not direct:
        monkeypatch.setattr(perms, "_state_address", lambda bg: None)
    a = np.random.Generator(np.random.PCG64(seed))
    b = np.random.Generator(np.random.PCG64(seed))
    b.integers(0, 10, 3)                 # an odd number of 32-bit draws: a buffered half
    a.integers(0, 10, 3)
    want = np.stack([b.permutation(n) for _ in range(k)]) if k else np.zeros((0, n))
    got = perms(a.bit_generator, n, k)
    assert got.dtype == np.int64 and got.shape == (k, n)
    np.testing.assert_array_equal(got, want)
    assert a.bit_generator.state == b.bit_generator.state
    np.testing.assert_array_equal(a.random(5), b.random(5))          # the stream continues
    np.testing.assert_array_equal(a.permutation(9), b.permutation(9))


def test_bad_arguments_are_python_errors():
    perms = Permutations.shared()
    with pytest.raises(TypeError, match="PCG64"):
        perms(np.random.MT19937(0), 5, 1)
    with pytest.raises(ValueError, match=">= 0"):
        perms(np.random.PCG64(0), -1, 1)


def test_many_seeds_and_sizes_against_numpy():
    """Every size up to 70 (each power-of-two range of the mask) for 40 seeds, with the buffered
    half set or not, three permutations per call."""
    perms = Permutations.shared()
    for seed in range(40):
        a = np.random.Generator(np.random.PCG64(seed))
        b = np.random.Generator(np.random.PCG64(seed))
        if seed % 2:
            a.integers(0, 7, 1)
            b.integers(0, 7, 1)
        for n in range(71):
            got = perms(a.bit_generator, n, 3)
            want = np.stack([b.permutation(n) for _ in range(3)])
            np.testing.assert_array_equal(got, want)
        assert a.bit_generator.state == b.bit_generator.state
