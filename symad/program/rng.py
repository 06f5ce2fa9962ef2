"""Random-number state a user's function may draw from outside registered ops: Python's
``random``, numpy's global ``np.random`` and symad's default generator. A compiled function that
draws from them cannot be replayed (each call must draw anew), so the compile paths compare the
state around the runs they make and restore it when they refuse."""
from __future__ import annotations

import copy
import random

import numpy as np


def snapshot():
    from ..random import default_generator
    st = np.random.get_state()
    return (random.getstate(), st[1].tobytes(), st[2], st[3], st[4],
            copy.deepcopy(default_generator.get_state()))


def restore(snap) -> None:
    from ..random import default_generator
    py, keys, pos, has_gauss, gauss = snap[:5]
    random.setstate(py)
    np.random.set_state(("MT19937", np.frombuffer(keys, dtype=np.uint32).copy(), pos,
                         has_gauss, gauss))
    default_generator.set_state(copy.deepcopy(snap[5]))


def drew(before) -> str | None:
    """Which source was drawn from since ``before`` (None: none)."""
    now = snapshot()
    if now[0] != before[0]:
        return "Python's random module"
    if now[1:5] != before[1:5]:
        return "numpy.random's global generator"
    if now[5] != before[5]:
        return "symad's default generator"
    return None
