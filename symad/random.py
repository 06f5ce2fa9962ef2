"""symad's random number generation: a seedable generator (numpy's PCG64).

Bitwise equality with PyTorch's stream is not a goal; reproducibility under ``manual_seed`` is.
"""
from __future__ import annotations

import numpy as np

from . import _dtype as D
from ._device import check_device
from .autograd.recording import escape as _escape


class Generator:
    """``g = symad.Generator().manual_seed(0)``; pass as ``generator=`` to random functions."""

    def __init__(self, device="cpu") -> None:
        check_device(device, "creating a generator on")
        self._seed = 0
        self._rng = np.random.Generator(np.random.PCG64(0))

    def manual_seed(self, seed: int) -> "Generator":
        self._seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def seed(self) -> int:
        s = int(np.random.SeedSequence().entropy % (2 ** 63))
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        return self._rng.bit_generator.state

    def set_state(self, state) -> None:
        self._rng.bit_generator.state = state

    # raw draws (numpy arrays), used by the tensor functions below
    def normal(self, mean, std, shape):
        _escape(None, "a random draw")
        return self._rng.normal(mean, std, shape)

    def uniform(self, a, b, shape):
        _escape(None, "a random draw")
        return self._rng.uniform(a, b, shape)

    def integers(self, low, high, shape):
        _escape(None, "a random draw")
        return self._rng.integers(low, high, shape)

    def permutation(self, n: int) -> np.ndarray:
        return self._rng.permutation(n)

    def permutations(self, n: int, k: int) -> np.ndarray:
        """``(k, n)`` int64: the rows ``k`` calls of :meth:`permutation` would return, from the
        same stream (the generator is left where those calls leave it), drawn in one native
        call (:mod:`codegen.pcg64`); numpy draws them when native code is unavailable."""
        try:
            from codegen.pcg64 import Permutations
            return Permutations.shared()(self._rng.bit_generator, n, k)
        except (ImportError, OSError, RuntimeError):       # no LLVM here: numpy, k calls
            return np.stack([self._rng.permutation(n) for _ in range(k)]) if k else \
                np.zeros((0, n), np.int64)


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (``symad.manual_seed(0)``)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _mk(arr, dtype, requires_grad, device=None):
    from .tensor import Tensor
    if device is not None:
        check_device(device)
    dt = D.as_dtype(dtype) if dtype is not None else D.get_default_dtype()
    t = Tensor._wrap(np.asarray(arr).astype(dt.np), dt)
    if requires_grad:
        t.requires_grad = True
    return t


def randn(*size, generator=None, dtype=None, requires_grad=False, device=None):
    g = generator or default_generator
    return _mk(g.normal(0.0, 1.0, _size(size)), dtype, requires_grad, device)


def rand(*size, generator=None, dtype=None, requires_grad=False, device=None):
    g = generator or default_generator
    return _mk(g.uniform(0.0, 1.0, _size(size)), dtype, requires_grad, device)


def randint(low, high=None, size=(), *, generator=None, dtype=None, device=None):
    if high is None:
        low, high = 0, low
    g = generator or default_generator
    return _mk(g.integers(low, high, _size((size,))), dtype or D.int64, False, device)


def randperm(n, *, generator=None, dtype=None, device=None):
    g = generator or default_generator
    return _mk(g.permutation(n), dtype or D.int64, False, device)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, requires_grad=False,
           device=None):
    """``normal(0, 0.01, size=(2, 1))``; tensor ``mean``/``std`` broadcast like PyTorch."""
    from .tensor import Tensor
    g = generator or default_generator
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    shape = _size((size,)) if size is not None else np.broadcast_shapes(np.shape(m), np.shape(s))
    if dtype is None and isinstance(mean, Tensor):
        dtype = mean.dtype
    return _mk(g.normal(m, s, shape), dtype, requires_grad, device)


def randn_like(t, *, dtype=None, requires_grad=False, device=None):
    return randn(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device)


def rand_like(t, *, dtype=None, requires_grad=False, device=None):
    return rand(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device)
