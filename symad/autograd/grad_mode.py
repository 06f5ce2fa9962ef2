"""Gradient-mode switches: ``no_grad``, ``enable_grad``, ``set_grad_enabled`` (context managers
and decorators, as in PyTorch)."""
from __future__ import annotations

import functools
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def _set(flag: bool) -> None:
    _state.enabled = bool(flag)


class _Scope:
    """Set the grad mode for one ``with`` block."""

    def __init__(self, flag: bool) -> None:
        self._flag = flag

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self._flag)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False


class _Mode(_Scope):
    """A grad-mode switch usable as ``with m():``, ``@m()`` and bare ``@m`` (PyTorch 2.x)."""

    _flag: bool

    def __new__(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]) and cls is not set_grad_enabled:
            inst = super().__new__(cls)
            inst.__init__()
            return inst(args[0])  # bare decorator: @symad.no_grad
        return super().__new__(cls)

    def __init__(self) -> None:
        pass

    def __call__(self, fn):
        flag = self._flag

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _Scope(flag):
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_Mode):
    """Disable gradient recording. ``with symad.no_grad(): w -= lr * w.grad``"""

    _flag = False


class enable_grad(_Mode):
    """Enable gradient recording inside a ``no_grad`` block."""

    _flag = True


class set_grad_enabled(_Mode):
    """``set_grad_enabled(False)`` acts immediately (like PyTorch) and as a context manager."""

    def __init__(self, mode: bool) -> None:
        self._flag = bool(mode)
        self._prev = is_grad_enabled()
        _set(self._flag)

    def __call__(self, fn):
        _set(self._prev)  # used as a decorator: do not change the mode at definition time
        return super().__call__(fn)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False


class inference_mode(no_grad):
    """Alias of ``no_grad`` (symad has no separate inference tensors)."""

    def __init__(self, mode: bool = True) -> None:
        self._flag = not mode
