"""``symad.set_num_threads`` / ``symad.get_num_threads`` (PyTorch's names): the threads a
compiled kernel splits its batch over when ``threads=`` is not given to ``symad.compile`` /
``compile_step``, and the row blocks a native tensor program splits each large matmul into. The
environment variable ``SYMAD_NUM_THREADS`` sets the starting value (else the machine's core
count). Kernels and programs read it when they are built; results do not depend on it (batches
and rows are split at fixed boundaries)."""
from __future__ import annotations

from codegen.threads import default_threads, set_default_threads


def set_num_threads(n: int) -> None:
    """Threads for kernels built from now on (``n >= 1``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RuntimeError(f"set_num_threads expects a positive integer, got {n!r}")
    set_default_threads(n)


def get_num_threads() -> int:
    """The thread count new kernels get (``set_num_threads``, else ``SYMAD_NUM_THREADS``, else
    the core count)."""
    return default_threads()
