"""codegen: SymPy expressions -> vectorized, threaded native batch kernels through llvmlite.

It knows SymPy and LLVM only (never imports ``symad``). The pieces:

* :func:`compile_kernel` / :class:`Kernel` - lower a list of SymPy expressions over named scalar
  inputs into one LLVM function that loops over a batch of N samples (batched inputs are arrays,
  the others scalar parameters), with per-output ``"none"`` (array of N), ``"sum"`` or ``"mean"``
  reductions fused into the same pass; JIT it (or load it from the disk cache) and call it with
  numpy arrays::

      import numpy as np, sympy as sp
      from codegen import compile_kernel
      x, y, a, b = sp.symbols("x y a b")
      loss = (a * sp.exp(-b * x) - y) ** 2
      k = compile_kernel([x, y, a, b], [loss, sp.diff(loss, a), sp.diff(loss, b)],
                         batched=[x, y], reduce="mean", dtype="float64")
      L, dL_da, dL_db = k(x=np.linspace(0, 1, 1000), y=np.zeros(1000), a=1.0, b=2.0)

* :class:`LoweringError` - raised for SymPy constructs with no lowering ("cannot lower sympy.Ei").
* :func:`emit_object` / :func:`emit_assembly` - object code / assembly for IR text on any LLVM
  target (``reloc="pic"`` for shared libraries); used by export.
* :func:`compile_fit_loop` / :class:`FitLoop` - a native training loop: many minibatch optimizer
  steps (per-sample loss + exact gradients over index-selected rows, then the optimizer update
  the caller traced, as :class:`GroupUpdate` expressions) in one generated function
  (``codegen/fit_loop.py``).
* :class:`DiskCache` - the object-code cache (``$SYMAD_CACHE_DIR`` or ``~/.cache/symad``).
* :class:`NativeModule` / :class:`Slots` (``codegen/native.py``) - the one front door (IR ->
  cache -> JIT -> entry points) and the one calling convention every entry point has,
  ``i64 NAME(ptr args)`` over an array of 8-byte slots.

See docs/codegen.md for what is supported, the numerics (ulp bounds, reductions), threads,
the cache and how to look at the IR and assembly.
"""

from __future__ import annotations

from .cache import DiskCache, default_cache_dir
from .fit_loop import FitLoop, GroupUpdate, UpdateVariant, compile_fit_loop
from .kernel import Kernel, compile_kernel
from .kernel_ir import KernelSpec, build_kernel_ir
from .lowering import Lowerer, LoweringError
from .native import NativeModule, Slots
from .target import emit_assembly, emit_object, host_target

__all__ = [
    "DiskCache", "FitLoop", "GroupUpdate", "Kernel", "KernelSpec", "Lowerer", "LoweringError",
    "NativeModule", "Slots", "UpdateVariant", "build_kernel_ir", "compile_fit_loop",
    "compile_kernel", "default_cache_dir", "emit_assembly", "emit_object", "host_target",
]
