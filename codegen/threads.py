"""How many threads a kernel call may use when its caller does not say (``threads=None``).

``SYMAD_NUM_THREADS`` (a positive integer) sets the process default, else the machine's core
count; :func:`set_default_threads` changes it at run time (``symad.set_num_threads`` calls it).
A kernel reads the default when it is built. Results never depend on the thread count: the
batch is split at fixed boundaries (see :meth:`codegen.Kernel._chunks`)."""
from __future__ import annotations

import os

_default: int | None = None


def _parse(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"SYMAD_NUM_THREADS must be a positive integer, got {value!r}")
    return n


def default_threads() -> int:
    """The thread count for kernels built without an explicit ``threads``."""
    if _default is not None:
        return _default
    env = os.environ.get("SYMAD_NUM_THREADS")
    return _parse(env) if env else (os.cpu_count() or 1)


def set_default_threads(n: int) -> None:
    global _default
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the thread count must be a positive integer, got {n!r}")
    _default = n
