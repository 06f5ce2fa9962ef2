"""``symad.cuda``: PyTorch's ``torch.cuda`` queries, answered for a CPU-only library.

``is_available()`` is False and ``device_count()`` is 0, so the usual
``device = torch.device("cuda" if torch.cuda.is_available() else "cpu")`` picks the CPU. Seeding
functions are silently ignored (as PyTorch does when CUDA is absent); anything that needs a GPU
raises :class:`symad.DeviceUnavailableError` (an ``AssertionError``, like a CPU-only PyTorch).

>>> import symad
>>> symad.cuda.is_available(), symad.cuda.device_count()
(False, 0)
"""
from __future__ import annotations

from typing import NoReturn

from ._device import DeviceUnavailableError, device

__all__ = ["current_device", "device_count", "get_device_name", "is_available",
           "is_initialized", "manual_seed", "manual_seed_all", "synchronize"]


def is_available() -> bool:
    """False: symad has no CUDA backend."""
    return False


def device_count() -> int:
    """0: no CUDA devices."""
    return 0


def is_initialized() -> bool:
    """False: CUDA is never initialised."""
    return False


def manual_seed(seed: int) -> None:
    """Ignored without CUDA, as in PyTorch (seed the CPU with ``symad.manual_seed``)."""
    int(seed)


def manual_seed_all(seed: int) -> None:
    """Ignored without CUDA, as in PyTorch."""
    int(seed)


def _unavailable(what: str) -> NoReturn:
    raise DeviceUnavailableError(f"symad has no CUDA: torch.cuda.{what}() needs a GPU; symad "
                                 f"runs on the CPU (check torch.cuda.is_available() first)")


def current_device() -> int:
    """Raises: there is no current CUDA device."""
    _unavailable("current_device")


def get_device_name(device: device | int | str | None = None) -> str:
    """Raises: there is no CUDA device to name."""
    _unavailable("get_device_name")


def synchronize(device: device | int | str | None = None) -> None:
    """Raises: there is no CUDA device to synchronize."""
    _unavailable("synchronize")
