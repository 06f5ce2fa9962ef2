"""The hook through which a tensor program is recorded (see :mod:`symad.program`).

While a recorder is active on this thread, every registered op that runs (eager forward and the
VJPs of backward alike) reports itself here, and the few places where a tensor's value leaves the
op world (``item()``, ``numpy()``, ``bool(t)``, in-place writes outside autograd) report an escape.
The state is per thread, like the grad mode; there is nothing to record when no recorder is set.
"""
from __future__ import annotations

import threading

_state = threading.local()


def active():
    """The recorder of this thread, or None (the common case: one attribute lookup)."""
    return getattr(_state, "recorder", None)


class recording:
    """``with recording(rec):`` routes op reports on this thread to ``rec``."""

    def __init__(self, rec) -> None:
        self._rec = rec

    def __enter__(self):
        self._prev = active()
        _state.recorder = self._rec
        return self._rec

    def __exit__(self, *exc):
        _state.recorder = self._prev
        return False


def escape(tensor, what: str, write: bool = False) -> None:
    """Report that ``tensor``'s value was read (or, with ``write``, written) outside registered
    ops; ``tensor`` None: a random draw."""
    rec = active()
    if rec is not None:
        rec.escape(tensor, what, write)


def opaque(tensor):
    """Mark ``tensor`` as computed outside registered ops from other tensors' values (argmax
    indices, ...): a recorded program that uses it cannot be replayed. Returns ``tensor``."""
    rec = active()
    if rec is not None:
        rec.opaque(tensor)
    return tensor
