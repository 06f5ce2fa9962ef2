"""Python side effects a compiled call would not repeat: random draws (see :mod:`.rng`), prints,
changes to a module's plain Python attributes (``self.calls += 1``) and in-place updates of
module buffers (BatchNorm's running statistics: :data:`STATE` holds every registered buffer).

``Watch(fn)`` wraps one run of the user's code. Eager semantics runs ``forward`` once per call;
a replayed program (or a symbolic trace) would skip or repeat these effects, so the compile
paths refuse such functions with the effect named — after undoing what an extra run did."""
from __future__ import annotations

import contextlib
import io
import sys
import threading
import weakref

import numpy as np

from . import rng

_SCALARS = (int, float, str, bool, type(None))

#: the tensors that hold module state across calls (every registered buffer; ``nn.Module``
#: adds them): a run that writes one in place has an effect a replayed program would lose
STATE: "weakref.WeakSet" = weakref.WeakSet()


def mark_state(t) -> None:
    if t is not None:
        STATE.add(t)


def _modules(fn) -> list:
    modules = getattr(fn, "modules", None)
    return list(modules()) if callable(modules) else []


def _scalar_attrs(fn) -> dict:
    out = {}
    for m in _modules(fn):
        for k, v in vars(m).items():
            if not k.startswith("_") and isinstance(v, _SCALARS):
                out[(id(m), k)] = (m, v)
    return out


class _Tee(io.TextIOBase):
    """stdout during a watched run: the watching thread's writes are noted (and shown or
    swallowed); other threads' writes pass through untouched."""

    def __init__(self, real, show: bool) -> None:
        self.real = real
        self.show = show
        self.owner = threading.get_ident()
        self.wrote = False

    def write(self, s: str) -> int:
        if threading.get_ident() != self.owner:
            return self.real.write(s) if self.real is not None else len(s)
        self.wrote = self.wrote or bool(s)
        return self.real.write(s) if self.show and self.real is not None else len(s)

    def flush(self) -> None:
        if self.real is not None:
            self.real.flush()


class Watch:
    """``with Watch(fn, show=False) as w: fn(...)``; then ``w.found()`` names an effect or is
    None, ``w.undo()`` restores the random streams, module attributes and (``show=False`` only)
    buffers. ``show``: let prints through (the run is the user's real call) or swallow them (an
    extra probe run)."""

    def __init__(self, fn, *, show: bool) -> None:
        self.fn = fn
        self.show = show

    def __enter__(self):
        self._attrs = _scalar_attrs(self.fn)
        # versions show a write; the data is kept only where undo() may need it (a probe run)
        self._state = [(t, t._version.value, None if self.show else np.array(t._data, copy=True))
                       for t in list(STATE) if t._data.dtype != object]
        self._tee = _Tee(sys.stdout, self.show)
        self._redirect = contextlib.redirect_stdout(self._tee)
        self._redirect.__enter__()
        self._draws = rng.Draws().__enter__()
        return self

    def __exit__(self, *exc):
        self._draws.__exit__(*exc)
        self._redirect.__exit__(*exc)
        return False

    def found(self, *, materializing: bool = False) -> str | None:
        """The first effect seen, or None. ``materializing``: the run initialized lazy modules
        (``nn.LazyLinear``), whose one-time random draws and shape attributes are not effects
        of ``forward``; prints still are."""
        if not materializing:
            source = self._draws.source()
            if source is not None:
                return (f"it draws from {source} (a compiled call would replay one draw; pass "
                        "random tensors as arguments)")
        now = _scalar_attrs(self.fn)
        changed = sorted({k for (i, k), (m, v) in self._attrs.items()
                          if (i, k) in now and now[(i, k)][1] != v})
        if changed and not materializing:
            return (f"its forward changes Python state ({', '.join(changed)}), which a compiled "
                    "call would not repeat")
        if self._tee.wrote:
            return "it prints, which a compiled call would not repeat"
        if any(t._version.value != v for t, v, _ in self._state):
            return ("its forward updates a module buffer in place (running statistics of a "
                    "BatchNorm in training mode, ...), which a compiled call would not repeat; "
                    "in eval() mode it compiles")
        return None

    def undo(self) -> None:
        self._draws.undo()
        for t, v, saved in self._state:
            if saved is not None and t._version.value != v and t._data.shape == saved.shape:
                np.copyto(t._data, saved, casting="unsafe")
        for (_, k), (m, v) in self._attrs.items():
            setattr(m, k, v)
