"""``symad.device``: PyTorch's device type, for a library that runs on the CPU only.

Device objects for any PyTorch device type can be built and compared (so
``torch.device("cuda" if torch.cuda.is_available() else "cpu")`` works unchanged), but only the
CPU can hold tensors: asking for another device raises :class:`DeviceUnavailableError`, which is
both an ``AssertionError`` (what a CPU-only PyTorch build raises: "Torch not compiled with CUDA
enabled") and a ``RuntimeError``.

>>> import symad
>>> symad.device("cpu")
device(type='cpu')
>>> symad.zeros(2, device="cpu").device
device(type='cpu')
"""
from __future__ import annotations

from typing import Any

# PyTorch's device types (c10/core/DeviceType.cpp), in its error-message order
_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
          "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
          "privateuseone")


class DeviceUnavailableError(AssertionError, RuntimeError):
    """A tensor or module was asked to live on a device other than the CPU."""


class device:
    """A device: ``device("cpu")``, ``device("cpu:0")``, ``device("cpu", 0)``,
    ``device(type="cpu")``. Printed like PyTorch's: ``device(type='cpu')``."""

    __slots__ = ("_index", "_type")

    def __init__(self, type: Any = None, index: int | None = None) -> None:
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): a device object cannot be combined with an index")
            self._type, self._index = type._type, type._index
            return
        if isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type  # PyTorch: an int alone names a CUDA device
        if not isinstance(type, str):
            raise TypeError(f"device() received an invalid combination of arguments: expected a "
                            f"string like 'cpu' or 'cpu:0', got {type!r}")
        name, sep, idx = type.partition(":")
        if name not in _TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of "
                               f"device string: {type}")
        if sep:
            if index is not None:
                raise RuntimeError(f"type (string) must not include an index because index was "
                                   f"passed explicitly: {type}")
            if not idx.isdigit() or (len(idx) > 1 and idx[0] == "0"):
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(idx)
        if index is not None:
            index = int(index)
            if index < 0:
                raise RuntimeError(f"Device index must not be negative (got {index})")
        self._type, self._index = name, index

    @property
    def type(self) -> str:
        return self._type

    @property
    def index(self) -> int | None:
        return self._index

    def __repr__(self) -> str:
        if self._index is None:
            return f"device(type='{self._type}')"
        return f"device(type='{self._type}', index={self._index})"

    def __str__(self) -> str:
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, device):
            return NotImplemented
        return self._type == other._type and self._index == other._index

    def __hash__(self) -> int:
        return hash((self._type, self._index))

    def __reduce__(self):
        return (device, (self._type, self._index))

    def __enter__(self) -> device:
        """``with symad.device("cpu"):`` — creation already defaults to the CPU."""
        check_device(self)
        return self

    def __exit__(self, *exc) -> None:
        return None


CPU = device("cpu")


def _no_device_message(what: str, d: device) -> str:
    if d.type == "cuda":
        return (f"symad has no CUDA: {what} {str(d)!r} is not possible (symad runs on the "
                f"CPU; its speed comes from symad.compile's native kernels). Use device='cpu', "
                f"or torch.device('cuda' if torch.cuda.is_available() else 'cpu'), which picks "
                f"the CPU here.")
    return (f"symad runs on the CPU only: {what} {str(d)!r} is not possible; use "
            f"device='cpu'.")


def check_device(d: Any, what: str = "creating a tensor on") -> device:
    """``d`` (None, a string, an int or a device) as a device; anything but the CPU raises
    :class:`DeviceUnavailableError` naming the device."""
    if d is None:
        return CPU
    if not isinstance(d, device):
        d = device(d)
    if d.type != "cpu":
        raise DeviceUnavailableError(_no_device_message(what, d))
    return d


def is_device_like(x: Any) -> bool:
    """True for a device object or a string that parses as a device (``"cpu"``, ``"cuda:0"``)."""
    if isinstance(x, device):
        return True
    if isinstance(x, str):
        return x.partition(":")[0] in _TYPES
    return False


_default_device = CPU


def set_default_device(d: Any) -> None:
    """Set the device new tensors are created on; symad accepts only the CPU (or ``None``)."""
    global _default_device
    _default_device = check_device(d, "setting the default device to")


def get_default_device() -> device:
    """The device new tensors are created on: always ``device(type='cpu')``."""
    return _default_device
