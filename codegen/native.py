"""The one way into native code: IR -> object code (disk cache or LLVM) -> JIT -> entry points,
and the one calling convention every generated entry point has::

    i64 NAME(ptr %args)

``args`` is an array of 8-byte *slots* in an order the module documents: a buffer's data
pointer, an ``i64`` count, or a ``double`` scalar (a ``float`` kernel truncates it after the
load, which is exact for a float32 value). The result is 0, or a positive status the module
documents (the fit loop: ``1 + i`` for a bad row index ``perm[i]``). The caller validates dtype,
shape and contiguity of every buffer before the call; :class:`Slots` holds the array on the
Python side.

Batch kernels (:mod:`codegen.kernel`), fit loops (:mod:`codegen.fit_loop`), loop programs
(:mod:`codegen.loops`), the PCG64 permutations and the FP-mode helpers are all built and
called through :class:`NativeModule`; export compiles the same IR ahead of time and puts a typed
C face in front of it (:mod:`codegen.c_entry`).
"""
from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Callable, Mapping, Sequence

import llvmlite.binding as llvm
import numpy as np

from . import target as target_mod
from .cache import DiskCache, cache_key

#: ctypes prototype of every entry point
ENTRY = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)
#: what a slot can hold, by the LLVM type it is loaded as
SLOT_TYPES = ("ptr", "i64", "double", "float")


def slot_loads(slots: Sequence[tuple[str, str]] | Mapping[int, tuple[str, str]],
               args: str = "%args") -> list[str]:
    """IR lines loading slot ``j`` of ``args`` into ``%register`` for each ``(register, type)``
    of ``slots`` (a sequence: slots 0, 1, ...; a mapping: by slot number). Types: ``ptr``,
    ``i64``, ``double``, or ``float`` (a double slot truncated)."""
    lines = []
    items = slots.items() if isinstance(slots, Mapping) else enumerate(slots)
    for j, (reg, ty) in items:
        if ty not in SLOT_TYPES:
            raise ValueError(f"slot {j} ({reg}): type {ty!r} is not one of {SLOT_TYPES}")
        lines.append(f"  %{reg}.slot = getelementptr inbounds i64, ptr {args}, i64 {j}")
        if ty == "float":
            lines += [f"  %{reg}.d = load double, ptr %{reg}.slot, align 8",
                      f"  %{reg} = fptrunc double %{reg}.d to float"]
        else:
            lines.append(f"  %{reg} = load {ty}, ptr %{reg}.slot, align 8")
    return lines


@functools.cache
def _data_offset() -> int | None:
    """Byte offset of the data pointer in numpy's array struct, if it is the expected one
    (checked against ``ctypes.data``); None -> :func:`data_pointer` uses ``ctypes.data``."""
    offset = 2 * ctypes.sizeof(ctypes.c_void_p)  # after PyObject_HEAD (refcount, type)
    probes = [np.empty(n, dt) for n in (1, 7, 1000) for dt in (np.float64, np.float32, np.int64)]
    for a in probes:
        if ctypes.c_void_p.from_address(id(a) + offset).value != a.ctypes.data:
            return None
    return offset


def _pointer_reader() -> Callable[[np.ndarray], int]:
    offset = _data_offset()
    if offset is None:
        return lambda a: a.ctypes.data
    read = ctypes.c_void_p.from_address
    return lambda a: read(id(a) + offset).value or 0


#: ``data_pointer(a)``: the address of a numpy array's data (~0.1 us; ``a.ctypes.data`` ~0.8)
data_pointer = _pointer_reader()


class Slots:
    """An argument array of ``n`` slots: ``.i`` (int64 view: pointers and counts), ``.f``
    (float64 view: scalars), ``.address`` (what an entry point takes)."""

    __slots__ = ("raw", "i", "f", "address")

    def __init__(self, n: int) -> None:
        self.raw = np.zeros(max(int(n), 1), np.int64)
        self.i = self.raw
        self.f = self.raw.view(np.float64)
        self.address = self.raw.ctypes.data


def object_code(make_ir: Callable[[], str], target: target_mod.TargetInfo,
                cache: DiskCache | None, key: str):
    """``(object code, compile seconds, cpu seconds, (module, tm) or None)``: from ``cache``
    under ``key`` (zero seconds, no module), else compiled from ``make_ir()`` and stored."""
    obj = cache.load(key) if cache is not None else None
    if obj is not None:
        return obj, 0.0, 0.0, None
    ir = make_ir()
    t0, c0 = time.perf_counter(), time.process_time()
    module, tm = target_mod.compile_ir(ir, target, jit=True)
    obj = bytes(tm.emit_object(module))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if cache is not None:
        cache.store(key, obj)
    return obj, seconds, cpu, (module, tm)


class NativeModule:
    """One generated module, loaded: ``mod.entry(name)`` is an entry point (``ENTRY``).

    ``kind`` and ``key`` (strings) name the module in the disk cache together with the host
    target and LLVM's version: ``key`` must determine ``make_ir()``'s text (the IR itself, or
    a fingerprint of what it is generated from plus :func:`source_hash`), so a warm hit skips
    IR generation as well as LLVM. ``cache``: a :class:`DiskCache` or None.

    Attributes: ``llvm_ir`` (generated on first access after a cache hit), ``optimized_ir`` and
    ``asm`` (on request), ``cache_hit``, ``compile_seconds`` / ``compile_cpu_seconds`` (LLVM
    in this process, 0 on a hit), ``ir_seconds`` (IR generation, 0 until needed).
    """

    def __init__(self, kind: str, make_ir: Callable[[], str], key: Sequence[str], *,
                 cache: DiskCache | None) -> None:
        self.target = target_mod.host_target()
        self._make_ir = make_ir
        self._ir: str | None = None
        self.ir_seconds = 0.0
        t = self.target
        full = cache_key(kind, *key, t.triple, t.cpu, t.features, target_mod.version_tag()) \
            if cache is not None else ""
        obj, self.compile_seconds, self.compile_cpu_seconds, self._optimized = object_code(
            lambda: self.llvm_ir, t, cache, full)
        self.cache_hit = self._optimized is None
        # one MCJIT engine and one TargetMachine per module (MCJIT owns it: never share one),
        # alive as long as the module; entry points keep the module alive
        self._tm = target_mod.create_target_machine(t, jit=True)
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self._tm)
        self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self._engine.finalize_object()
        self._entries: dict[str, ctypes._CFuncPtr] = {}

    @property
    def llvm_ir(self) -> str:
        """Text IR of the module as generated (before optimization)."""
        if self._ir is None:
            t0 = time.perf_counter()
            self._ir = self._make_ir()
            self.ir_seconds = time.perf_counter() - t0
        return self._ir

    def _compiled(self):
        if self._optimized is None:
            self._optimized = target_mod.compile_ir(self.llvm_ir, self.target, jit=True)
        return self._optimized

    @property
    def optimized_ir(self) -> str:
        """Text IR after the O3 pipeline."""
        return str(self._compiled()[0])

    @property
    def asm(self) -> str:
        """Host assembly of the module."""
        module, tm = self._compiled()
        return tm.emit_assembly(module)

    def address(self, name: str) -> int:
        """The address of function ``name`` (valid while this module lives)."""
        addr = self._engine.get_function_address(name)
        if not addr:
            raise KeyError(f"no function {name!r} in this native module")
        return addr

    def entry(self, name: str):
        """Entry point ``name``: ``f(args_address) -> status`` (keeps this module alive)."""
        f = self._entries.get(name)
        if f is None:
            f = ENTRY(self.address(name))
            f.module = self
            self._entries[name] = f
        return f
