"""The x86 floating-point mode bits that flush subnormal numbers: FTZ (results) and DAZ (inputs).

IEEE arithmetic on subnormal floats (below 1.2e-38 in float32) runs in microcode on x86: ~100
cycles an operation instead of one. A model trained until its gradients are tiny meets them
(the 784 benchmark's step: 1.2 ms for 10,000 steps on its one batch, 5.4 ms at step 30,000).
PyTorch keeps IEEE subnormals unless ``torch.set_flush_denormal(True)``; XLA (JAX) runs with
both bits set.

:func:`set_flush` sets or clears both bits in the MXCSR register of the calling thread (numpy's
and native code's arithmetic in that thread follow it); the worker threads of a native call take
the calling thread's mode (:func:`current`, :func:`enter`). Knows LLVM only.
"""
from __future__ import annotations

import threading

from . import target as target_mod
from .cache import DiskCache
from .native import NativeModule, Slots

FTZ = 0x8000            # flush-to-zero: subnormal results become 0
DAZ = 0x0040            # denormals-are-zero: subnormal inputs read as 0
_BITS = FTZ | DAZ

_IR = """
declare void @llvm.x86.sse.stmxcsr(ptr)
declare void @llvm.x86.sse.ldmxcsr(ptr)

define i64 @symad_get_mxcsr(ptr %args) nounwind {
  %p = alloca i32, align 4
  call void @llvm.x86.sse.stmxcsr(ptr %p)
  %v = load i32, ptr %p
  %w = zext i32 %v to i64
  ret i64 %w
}

define i64 @symad_set_mxcsr(ptr %args) nounwind {
  %p = alloca i32, align 4
  %w = load i64, ptr %args
  %v = trunc i64 %w to i32
  store i32 %v, ptr %p
  call void @llvm.x86.sse.ldmxcsr(ptr %p)
  ret i64 0
}
"""

#: whether :func:`set_flush` was ever called (until then worker threads are left alone)
USED = False
_fns = None
_local = threading.local()


def supported() -> bool:
    """Whether this machine has the bits (x86-64)."""
    return target_mod.host_target().triple.split("-")[0] in ("x86_64", "amd64")


def _functions():
    global _fns
    if _fns is None:
        mod = NativeModule("fpmode", lambda: _IR, (_IR,), cache=DiskCache())
        get_fn, put_fn = mod.entry("symad_get_mxcsr"), mod.entry("symad_set_mxcsr")

        def get() -> int:
            return get_fn(None)

        def put(v: int) -> None:
            args = Slots(1)             # per call: threads set their own modes
            args.i[0] = v
            put_fn(args.address)
        _fns = (mod, get, put)
    return _fns


def flushing() -> bool:
    """Whether the calling thread flushes subnormals (both bits set)."""
    if not supported():
        return False
    return _functions()[1]() & _BITS == _BITS


def _apply(on: bool) -> None:
    _, get, put = _functions()
    csr = get()
    put((csr | _BITS) if on else (csr & ~_BITS))
    _local.mode = on


def set_flush(on: bool) -> bool:
    """Set (``True``) or clear both bits in the calling thread. Returns False, changing
    nothing, where the machine has no such bits."""
    global USED
    if not supported():
        return False
    USED = True
    _apply(bool(on))
    return True


def current() -> bool | None:
    """The calling thread's mode, for the worker threads of a native call to take
    (:func:`enter`); None (nothing to do) while :func:`set_flush` was never called."""
    return flushing() if USED else None


def enter(mode: bool | None) -> None:
    """In a worker thread, before its part of a native call: the caller's ``mode``
    (:func:`current`), so every part of the call computes alike."""
    if mode is not None and getattr(_local, "mode", None) is not mode:
        _apply(mode)
