"""The one way codegen turns IR into callable native code: object code from the disk cache or
from LLVM (parse, O3, emit), then a JIT engine that loads it.

:func:`object_code` and :class:`Engine` serve every generated module (batch kernels, fit loops,
loop programs); export takes object code from :func:`codegen.target.emit_object` instead."""
from __future__ import annotations

import time
from collections.abc import Callable

import llvmlite.binding as llvm

from . import target as _target
from .cache import DiskCache


def object_code(make_ir: Callable[[], str], target: _target.TargetInfo,
                cache: DiskCache | None, key: str):
    """``(object code, compile seconds, cpu seconds, (module, tm) or None)``: from ``cache``
    under ``key`` (zero seconds, no module), else compiled from ``make_ir()`` and stored."""
    obj = cache.load(key) if cache is not None else None
    if obj is not None:
        return obj, 0.0, 0.0, None
    ir = make_ir()
    t0, c0 = time.perf_counter(), time.process_time()
    module, tm = _target.compile_ir(ir, target, jit=True)
    obj = bytes(tm.emit_object(module))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if cache is not None:
        cache.store(key, obj)
    return obj, seconds, cpu, (module, tm)


class Engine:
    """An MCJIT engine holding one object file; function addresses live as long as it does.
    Each engine gets its own TargetMachine (MCJIT takes ownership: never share one)."""

    def __init__(self, obj: bytes, target: _target.TargetInfo) -> None:
        self._tm = _target.create_target_machine(target, jit=True)
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self._tm)
        self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self._engine.finalize_object()

    def address(self, name: str) -> int:
        return self._engine.get_function_address(name)
