"""Random-number state a user's function may draw from outside registered ops: Python's
``random``, numpy's global ``np.random`` and symad's default generator. A compiled function that
draws from them cannot be replayed (each call must draw anew), so the compile paths watch the
runs they make and restore the streams when they refuse.

The streams are process-global but the watch must be per-thread: a Dask client, a data loader or
any library thread draws from Python's ``random`` while the user's function runs, and neither
counts as the function drawing nor may be rewound. :class:`Draws` therefore installs a profile
hook on the calling thread only (``sys.setprofile`` is per-thread) and records calls into the
three generators' methods. When another profiler already owns the thread (``cProfile``), it falls
back to comparing the streams' states around the run."""
from __future__ import annotations

import copy
import random
import sys

import numpy as np

_READS = frozenset({"getstate", "get_state", "bit_generator", "__reduce__", "__getstate__"})


def _sources():
    """The generator objects a draw is a method call on, each with its user-facing name."""
    from ..random import default_generator
    return ((random._inst, "Python's random module"),
            (np.random.mtrand._rand, "numpy.random's global generator"),
            (default_generator._rng, "symad's default generator"))


def snapshot():
    from ..random import default_generator
    st = np.random.get_state()
    return (random.getstate(), (st[1].tobytes(), st[2], st[3], st[4]),
            copy.deepcopy(default_generator.get_state()))


def _restore(snap, which) -> None:
    from ..random import default_generator
    if 0 in which:
        random.setstate(snap[0])
    if 1 in which:
        keys, pos, has_gauss, gauss = snap[1]
        np.random.set_state(("MT19937", np.frombuffer(keys, dtype=np.uint32).copy(), pos,
                             has_gauss, gauss))
    if 2 in which:
        default_generator.set_state(copy.deepcopy(snap[2]))


class Draws:
    """``with Draws() as d: ...``; then ``d.source()`` names the first stream this thread drew
    from (None: none) and ``d.undo()`` rewinds exactly the streams this thread drew from."""

    def __enter__(self):
        self._snap = snapshot()
        self._hit: list[int] = []
        self._old = sys.getprofile()
        self._hooked = self._old is None
        if self._hooked:
            from ..random import Generator
            self._objs = [obj for obj, _ in _sources()]
            self._seed_code = Generator.manual_seed.__code__
            sys.setprofile(self._profile)
        return self

    def _profile(self, frame, event, arg) -> None:
        if event == "c_call":
            owner = getattr(arg, "__self__", None)
            if owner is not None and getattr(arg, "__name__", "") not in _READS:
                for i, obj in enumerate(self._objs):
                    if owner is obj and i not in self._hit:
                        self._hit.append(i)
        elif event == "call" and frame.f_code is self._seed_code:
            # manual_seed swaps symad's generator object: follow it (and count the reseed)
            if 2 not in self._hit:
                self._hit.append(2)

    def __exit__(self, *exc):
        if self._hooked:
            sys.setprofile(None)
        else:
            now = snapshot()
            self._hit = [i for i in range(3) if now[i] != self._snap[i]]
        return False

    def source(self) -> str | None:
        names = [name for _, name in _sources()]
        return names[min(self._hit)] if self._hit else None

    def undo(self) -> None:
        _restore(self._snap, set(self._hit))

