"""Fixed-order tree sum of chunk partials: the same grouping whatever the scheduling.

Level by level, consecutive groups of ``fan_in`` partials (in chunk order) are added left to
right; the result is a function of the partials and ``fan_in`` only, so it is bitwise the same
whichever worker computed what, in whatever order tasks finished, and after Dask reruns a task.
"""
from __future__ import annotations

import numpy as np


def combine(*parts: np.ndarray) -> np.ndarray:
    """Left-to-right float64 sum of partial vectors."""
    acc = np.array(parts[0], dtype=np.float64, copy=True)
    for p in parts[1:]:
        acc += p
    return acc


def _combine_group(parts: list) -> np.ndarray:
    return combine(*parts)


def tree_sum(parts: list, fan_in: int = 32) -> np.ndarray:
    """The fixed-order tree sum of ``parts`` computed in this process (the reference order).

    >>> import numpy as np
    >>> float(tree_sum([np.array([1e16]), np.array([1.0]), np.array([-1e16])], fan_in=2)[0])
    0.0
    """
    level = list(parts)
    while len(level) > fan_in:
        level = [combine(*level[i:i + fan_in]) for i in range(0, len(level), fan_in)]
    return combine(*level)


def tree_sum_futures(client, futures: list, fan_in: int = 32) -> np.ndarray:
    """:func:`tree_sum` of Dask futures: the inner levels run as tasks next to the data, the
    last ``fan_in`` (or fewer) partials are added here, in the same grouping."""
    level = list(futures)
    while len(level) > fan_in:
        groups = [level[i:i + fan_in] for i in range(0, len(level), fan_in)]
        level = client.map(_combine_group, groups, pure=False)
    return combine(*client.gather(level))
