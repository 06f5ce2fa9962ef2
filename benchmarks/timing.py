"""Shared timing helper of the benchmark scripts (run as ``python benchmarks/bench_*.py``, so this
directory is on ``sys.path``)."""
from __future__ import annotations

import time

import numpy as np


def median_time(fn, number: int, repeat: int) -> float:
    """Median over ``repeat`` blocks of the mean time of ``number`` calls of ``fn()``."""
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        ts.append((time.perf_counter() - t0) / number)
    return float(np.median(ts))
