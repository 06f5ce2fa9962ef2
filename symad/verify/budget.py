"""Time boxes for the steps of a gradient check: a verdict step, hints, display simplification.

SymPy calls cannot be cancelled cooperatively, so a step that overruns is interrupted with a
``SIGALRM`` timer (main thread only; elsewhere the deadline is checked between steps). The
alarm re-fires every ``_REFIRE`` seconds and never lands where an exception would be lost or
leave damage: in a finalizer (``__del__``, a ``weakref.finalize`` callback), in the import
system (a half-imported module) or in an unraisable-exception hook; there it waits for the next
firing. An interruption that still ends up unraisable (a bare ``weakref.ref`` callback, which no
frame names) is dropped by the step's ``sys.unraisablehook`` filter, never reported.

>>> b = Budget(5.0)
>>> with b.step(0.5) as ok:
...     pass
>>> b.remaining() > 4
True
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator


class OutOfTime(BaseException):
    """A time-boxed step ran past its budget (a BaseException: library code that catches
    ``Exception`` must not swallow it)."""


class Budget:
    """A total time budget (seconds) with nested, interruptible steps."""

    def __init__(self, seconds: float | None) -> None:
        self.start = time.perf_counter()
        self.deadline = None if seconds is None else self.start + float(seconds)
        self._stack: list[float] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        if self.deadline is None:
            return float("inf")
        return self.deadline - time.perf_counter()

    def expired(self) -> bool:
        return self.remaining() <= 0

    @contextmanager
    def step(self, seconds: float | None = None) -> Iterator[list]:
        """Run the block for at most ``seconds`` (and within the total budget). Yields a
        one-element list; ``[True]`` unless the block was interrupted (then ``[False]``; the
        :class:`OutOfTime` is swallowed)."""
        limit = self.remaining() if seconds is None else min(seconds, self.remaining())
        outer = self._stack[-1] if self._stack else float("inf")
        end = min(time.perf_counter() + max(limit, 0.0), outer)
        flag = [True]
        end = max(end, time.perf_counter() + 1e-4)  # no time left: interrupted at once
        use_alarm = threading.current_thread() is threading.main_thread() and end != float("inf")
        self._stack.append(end)
        old = None
        if use_alarm:
            _ENTRIES.append(_caller())
            old_hook = sys.unraisablehook
            sys.unraisablehook = _UnraisableFilter(old_hook)
            old = signal.signal(signal.SIGALRM, _raise)
            # re-fired every _REFIRE seconds: SymPy has bare ``except:`` clauses (minimal
            # polynomials, inside simplify) that can swallow one OutOfTime
            _ARMED[0] = True
            signal.setitimer(signal.ITIMER_REAL, max(end - time.perf_counter(), 1e-3), _REFIRE)
        try:
            yield flag
        except OutOfTime:
            _ARMED[0] = False
            if time.perf_counter() < end - 1e-3 and len(self._stack) > 1:
                raise  # an outer step's alarm, not ours
            flag[0] = False
        finally:
            _ARMED[0] = False
            self._stack.pop()
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old if old is not None else signal.SIG_DFL)
                sys.unraisablehook = old_hook
                _ENTRIES.pop()
                if self._stack:  # re-arm the enclosing step's alarm
                    rest = self._stack[-1] - time.perf_counter()
                    if rest <= 0:
                        raise OutOfTime()
                    signal.signal(signal.SIGALRM, _raise)
                    _ARMED[0] = True
                    signal.setitimer(signal.ITIMER_REAL, rest, _REFIRE)


_REFIRE = 0.05
_ARMED = [False]      # a step is running: an alarm now interrupts it (off while it unwinds)


def _raise(signum, frame):
    if _ARMED[0] and _interruptible(frame):
        raise OutOfTime()


_ENTRIES: list = []   # the frame that entered each running alarmed step (innermost last)


_ENTER = contextlib._GeneratorContextManager.__enter__.__code__


def _caller():
    """The frame whose ``with`` entered the step (past contextlib's frames)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code is _ENTER:
        frame = frame.f_back
    return frame


_NOT_HERE = {"__del__", "unraisable_hook", "unraisablehook"}     # finalizers and hooks


def _interruptible(frame) -> bool:
    """False while ``frame`` (or a caller up to the step's ``with``) is a finalizer, the import
    system or an unraisable hook: an exception there is swallowed or leaves a half-imported
    module. Frames below the step's ``with`` do not count (a step run by a module's top-level
    code while it is imported is still interrupted)."""
    entry = _ENTRIES[-1] if _ENTRIES else None
    while frame is not None and frame is not entry:
        code = frame.f_code
        if code.co_name in _NOT_HERE or code is _FILTER_CODE or \
                code.co_filename.endswith("weakref.py") or \
                code.co_filename.startswith("<frozen importlib"):   # finalize, imports
            return False
        frame = frame.f_back
    return True


class _UnraisableFilter:
    """``sys.unraisablehook`` during a step: drops an :class:`OutOfTime` that a finalizer
    swallowed (the alarm fires again), passes everything else to the hook it replaced."""

    def __init__(self, previous) -> None:
        self.previous = previous

    def __call__(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, OutOfTime):
            return
        self.previous(unraisable)


_FILTER_CODE = _UnraisableFilter.__call__.__code__
