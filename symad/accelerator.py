"""``symad.accelerator``: PyTorch 2.6's device-agnostic accelerator queries; symad has none.

The PyTorch quickstart picks its device with
``torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"``,
which gives ``"cpu"`` here.

>>> import symad
>>> symad.accelerator.is_available(), symad.accelerator.device_count()
(False, 0)
"""
from __future__ import annotations

from ._device import device

__all__ = ["current_accelerator", "device_count", "is_available"]


def is_available() -> bool:
    """False: symad runs on the CPU only."""
    return False


def device_count() -> int:
    """0: no accelerators."""
    return 0


def current_accelerator(check_available: bool = False) -> device | None:
    """None: there is no accelerator (PyTorch returns None on a CPU-only machine)."""
    return None
