"""``symad.backends.mps``: Apple's Metal backend is not available in symad."""
from __future__ import annotations


def is_available() -> bool:
    """False: symad runs on the CPU."""
    return False


def is_built() -> bool:
    """False: symad is not built with MPS."""
    return False
