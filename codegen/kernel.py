"""Kernel: a JIT-compiled batch kernel that owns its LLVM engine, callable with numpy arrays."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import sympy

from . import fpmode
from . import target as target_mod
from .cache import DiskCache
from .kernel_ir import REDUCTIONS, KernelSpec, build_kernel_ir, run_slots
from .native import NativeModule, Slots, data_pointer
from .pool import NativePool
from .threads import default_threads

NP_DTYPES: dict[str, np.dtype[Any]] = {"float64": np.dtype(np.float64),
                                       "float32": np.dtype(np.float32)}

#: Below this many elements per thread a call stays on the calling thread. The chunk size also
#: fixes where partial sums are cut (the results), so it stays put; with the native workers
#: (codegen.pool) a hand-off takes ~2 us, with Python threads ~10-75 us.
DEFAULT_MIN_CHUNK = 16384


def fingerprint(expr: sympy.Basic, out: list[str]) -> None:
    """Structural serialization (much faster than srepr): class names, arity, atom values."""
    stack = [expr]
    while stack:
        node = stack.pop()
        args = node.args
        name = type(node).__name__
        if args:
            out.append(f"{name}/{len(args)}")
            stack.extend(reversed(args))
        elif isinstance(node, sympy.Dummy):
            out.append(f"D:{node.name}:{node.dummy_index}")
        elif isinstance(node, sympy.Symbol):
            out.append(f"S:{node.name}:{sorted(node.assumptions0.items())}")
        elif isinstance(node, sympy.Float):
            out.append(f"F:{node._mpf_}")
        elif isinstance(node, sympy.Rational):
            out.append(f"Q:{node.p}/{node.q}")
        else:
            out.append(f"A:{name}:{node}")


def _spec_fingerprint(spec: KernelSpec) -> str:
    """Every field of the spec (so new fields join the cache key by themselves)."""
    parts: list[str] = []
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        parts.append(field.name + "=")
        if field.name in ("inputs", "outputs"):
            for e in value:
                fingerprint(e, parts)
                parts.append(";")
        else:
            parts.append(repr(value))
    return " ".join(parts)


@functools.cache
def source_hash() -> str:
    """Hash of the codegen sources: a code change invalidates cached objects by itself."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


class _Args(Slots):
    """A thread's argument array for ``NAME_run`` with the partial sums it points to."""

    __slots__ = ("partials",)


class Kernel:
    """A compiled batch kernel; see :func:`codegen.compile_kernel` for the meaning of the options.

    Attributes: ``llvm_ir`` (text IR as generated), ``optimized_ir`` and ``asm`` (all computed on
    first access after a cache hit), ``cache_hit`` (object code came from the disk cache),
    ``compile_seconds`` (LLVM optimization + code generation in this process, 0 on a cache hit),
    ``ir_seconds`` (sympy.cse + IR text generation, 0 until ``llvm_ir`` is needed).
    """

    def __init__(self, spec: KernelSpec, *, threads: int | None = None,
                 cache: bool | str | os.PathLike[str] | DiskCache = True,
                 min_chunk: int = DEFAULT_MIN_CHUNK):
        if spec.input_strides is not None or spec.output_strides is not None:
            raise ValueError("codegen.Kernel takes contiguous columns; strided specs are for "
                             "C entry points (codegen.c_entry)")
        self.spec = spec
        self.threads = default_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.min_chunk = max(1, int(min_chunk))
        self.dtype = NP_DTYPES[spec.dtype]
        self._acc_dtype = NP_DTYPES[spec.accumulate]
        target = target_mod.host_target()
        variants = target_mod.libmvec_variants(target)
        self._variants = variants
        # The cache key holds everything the IR is a deterministic function of (the spec, the
        # codegen sources, SymPy's version for cse, the libmvec table; NativeModule adds the
        # target), so a warm hit skips sympy.cse and IR generation as well as LLVM.
        self._cache = make_cache(cache)
        self.module = NativeModule(
            "kernel", lambda: build_kernel_ir(spec, variants),
            (_spec_fingerprint(spec), repr(sorted(variants.items())), source_hash(),
             sympy.__version__), cache=self._cache)
        self.compile_seconds = self.module.compile_seconds
        self.compile_cpu_seconds = self.module.compile_cpu_seconds
        self.cache_hit = self.module.cache_hit
        self._run = self.module.entry(spec.name + "_run")
        self._run_address = self.module.address(spec.name + "_run")
        # slots of NAME_run's arguments (kernel_ir.run_slots: c0, c1, n, chunk, the inputs,
        # the array outputs, the partial sums)
        names = [reg for reg, _ in run_slots(spec)]
        self._partials_slot = names.index("partials")
        self._out_slot = self._partials_slot - sum(r == "none" for r in spec.reduce)
        self._in_slot = self._out_slot - len(spec.inputs)

        self._names = {s.name: j for j, s in enumerate(spec.inputs)}
        self._batched_idx = [j for j, b in enumerate(spec.batched) if b]
        self._scalar_idx = [j for j, b in enumerate(spec.batched) if not b]
        self._array_outs = [k for k, r in enumerate(spec.reduce) if r == "none"]
        self._red_outs = [k for k, r in enumerate(spec.reduce) if r != "none"]
        self._n_red = len(self._red_outs)
        self._out_pos = {k: p for p, k in enumerate(self._array_outs)}
        self._red_plan = [(r, k, spec.reduce[k] == "mean") for r, k in enumerate(self._red_outs)]
        # Calls of up to this many elements are one native call on the calling thread; longer
        # ones are split into chunks of this size (see _chunks).
        self._chunk = -(-self.min_chunk // 64) * 64
        self._tls = threading.local()
        self._chunk_cache: tuple | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # -- inspection -------------------------------------------------------------------------
    @property
    def llvm_ir(self) -> str:
        """Text LLVM IR of the kernel module as generated (before optimization)."""
        return self.module.llvm_ir

    @property
    def ir_seconds(self) -> float:
        """sympy.cse + IR text generation (0 until ``llvm_ir`` is needed)."""
        return self.module.ir_seconds

    @property
    def optimized_ir(self) -> str:
        """Text IR after the O3 pipeline (look for ``<4 x double>`` and ``_ZGVdN4v_``)."""
        return self.module.optimized_ir

    @property
    def asm(self) -> str:
        """Host assembly of the module (look for ``ymm`` registers and ``_ZGVdN4v_`` calls)."""
        return self.module.asm

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.spec.inputs]

    def __repr__(self) -> str:
        return (f"<codegen.Kernel {self.spec.name}({', '.join(self.input_names)}) "
                f"{self.spec.dtype} outputs={list(self.spec.reduce)} threads={self.threads}>")

    # -- calling ----------------------------------------------------------------------------
    def __call__(self, *args: object, out: Sequence[np.ndarray | None] | None = None,
                 **kwargs: object) -> list:
        """Run the kernel: inputs by position (call order) or by symbol name.

        Batched inputs must be 1-d C-contiguous arrays of the kernel dtype and equal length N;
        scalar inputs are Python/numpy numbers. Returns one entry per output: an array of
        length N (0-d if there are no batched inputs) or a numpy scalar for sum/mean.
        """
        n_in = len(self.spec.inputs)
        if len(args) > n_in:
            raise TypeError(f"{self.spec.name}() takes {n_in} inputs "
                            f"({', '.join(self.input_names)}), got {len(args)} positional")
        values: list[object] = list(args) + [_MISSING] * (n_in - len(args))
        for name, v in kwargs.items():
            j = self._names.get(name)
            if j is None:
                raise TypeError(f"{self.spec.name}() got an unexpected input {name!r}; "
                                f"inputs are {self.input_names}")
            if values[j] is not _MISSING:
                raise TypeError(f"{self.spec.name}() got input {name!r} twice")
            values[j] = v
        missing = [self.input_names[j] for j, v in enumerate(values) if v is _MISSING]
        if missing:
            raise TypeError(f"{self.spec.name}() missing input(s): {', '.join(missing)}")
        return self.call_arrays(values, out)

    def call_arrays(self, values: Sequence[object],
                    out: Sequence[np.ndarray | None] | None = None) -> list:
        """Fast path: ``values`` is the full list of inputs in call order (no keywords)."""
        spec = self.spec
        if len(values) != len(spec.inputs):
            raise TypeError(f"{spec.name}: expected {len(spec.inputs)} inputs, got {len(values)}")
        dt = self.dtype
        n = -1
        args = self._tls_args()
        ai, af, ptr, first = args.i, args.f, data_pointer, self._in_slot
        for j in self._batched_idx:
            a: Any = values[j]
            if (type(a) is not np.ndarray or a.ndim != 1
                    or (a.dtype is not dt and a.dtype != dt)
                    or not a.flags.c_contiguous or not a.flags.aligned):
                self._reject(j, a, "input")
            if n < 0:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ValueError(f"{spec.name}: input {self.input_names[j]!r} has length "
                                 f"{a.shape[0]}, but {self.input_names[self._batched_idx[0]]!r}"
                                 f" has length {n}; batched inputs must have equal length")
            ai[first + j] = ptr(a)
        for j in self._scalar_idx:
            v = values[j]
            af[first + j] = v if type(v) is float else self._scalar(j, v)
        shape: tuple[int, ...] = (n,) if n >= 0 else ()
        length = n if n >= 0 else 1
        outs: list[object] = [None] * len(spec.outputs)
        if out is not None and len(out) != len(spec.outputs):
            raise ValueError(f"{spec.name}: out= needs {len(spec.outputs)} entries "
                             f"(None for reduced outputs), got {len(out)}")
        for k in self._array_outs:
            o = out[k] if out is not None else None
            if o is None:
                o = np.empty(shape, dt)
            elif (type(o) is not np.ndarray or o.shape != shape or o.dtype != dt
                  or not o.flags.c_contiguous or not o.flags.aligned or not o.flags.writeable):
                self._reject_out(k, o, shape)
            outs[k] = o
            ai[self._out_slot + self._out_pos[k]] = ptr(o)
        if out is not None:
            for k in self._red_outs:
                if out[k] is not None:
                    raise ValueError(f"{spec.name}: output {k} is a {spec.reduce[k]} reduction;"
                                     " pass None for it in out=")
        if length <= self._chunk:
            ai[2] = length                  # one chunk: c0, c1, n, chunk = 0, 1, n, max(n, 1)
            ai[3] = length or 1
            self._run(args.address)
            sums = args.partials.tolist()
        else:
            chunks = self._chunks(length)
            partials = np.zeros((len(chunks), max(self._n_red, 1)), self._acc_dtype)
            self._run_threads(chunks, args, partials)
            sums = [math.fsum(col) for col in partials.T.tolist()] if self._n_red else [0.0]
        to_dtype = dt.type
        for r, k, is_mean in self._red_plan:
            if is_mean:
                outs[k] = to_dtype(sums[r] / length if length else math.nan)
            else:
                outs[k] = to_dtype(sums[r])
        return outs

    def _run_threads(self, chunks: list[tuple[int, int]], args: Slots,
                     partials: np.ndarray) -> None:
        """Each chunk's partial sums into its own row; threads take consecutive groups of
        chunks, one native call per group (``NAME_run`` over chunks ``lo .. hi - 1``), so the
        rows do not depend on the thread count."""
        template = args.i.copy()
        template[2], template[3] = chunks[-1][1], self._chunk
        template[self._partials_slot] = partials.ctypes.data
        t = min(self.threads, len(chunks))
        per = -(-len(chunks) // t)
        los = np.arange(0, len(chunks), per)
        # one argument array per group of chunks (made here, on the calling thread)
        shares = np.repeat(template[None, :], len(los), axis=0)
        shares[:, 0], shares[:, 1] = los, np.minimum(los + per, len(chunks))
        if len(los) == 1:
            self._run(shares.ctypes.data)   # ctypes releases the GIL during a native call
            return
        pool = NativePool.shared(self.threads - 1)
        if pool is not None:                # native workers: the hand-off takes ~1 us
            tasks = np.empty((len(los), 2), np.int64)
            tasks[:, 0] = self._run_address
            tasks[:, 1] = shares.ctypes.data + shares.strides[0] * np.arange(len(los))
            pool.run(tasks)
            return
        executor = self._pool
        if executor is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads - 1,
                                                    thread_name_prefix="codegen-kernel")
                    weakref.finalize(self, self._pool.shutdown, wait=False)
                executor = self._pool
        mode = fpmode.current()             # the workers compute as this thread does
        f, base, step = self._run, shares.ctypes.data, shares.strides[0]

        def part(address):
            fpmode.enter(mode)
            f(address)
        futures = [executor.submit(part, base + g * step) for g in range(1, len(los))]
        f(base)
        for fut in futures:
            fut.result()

    def _tls_args(self) -> "_Args":
        # One reusable argument array (and partial sums) per calling thread (the native call
        # cannot re-enter); slots 0, 1 (the one chunk) and the partials' are set once.
        try:
            return self._tls.args
        except AttributeError:
            args = _Args(self._partials_slot + 1)
            args.partials = np.zeros(max(self._n_red, 1), self._acc_dtype)
            args.i[1] = 1
            args.i[self._partials_slot] = args.partials.ctypes.data
            self._tls.args = args
            return args

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        """Split [0, n) into chunks of ``self._chunk`` elements (a multiple of 64), whatever the
        thread count.

        Fixed boundaries make results independent of ``threads``: each chunk's partial sums are
        computed by one call and added in chunk order (``math.fsum``), and 64 is a multiple of
        every vector width x unroll the loop vectorizer uses, so each element takes the same code
        path (vector body, vector epilogue or scalar remainder, whose libm results can differ in
        the last bit) however the chunks are shared out. Aligned boundaries also avoid false
        sharing.
        """
        hit = self._chunk_cache
        if hit is not None and hit[0] == n:
            return hit[1]
        step = self._chunk
        chunks = [(s, min(s + step, n)) for s in range(0, n, step)]
        self._chunk_cache = (n, chunks)     # the same batch length, call after call
        return chunks

    # -- validation errors (slow path only) -------------------------------------------------
    def _scalar(self, j: int, v: object) -> float:
        name = self.input_names[j]
        if isinstance(v, np.ndarray) and v.ndim != 0:
            raise TypeError(f"{self.spec.name}: input {name!r} is a scalar parameter, got an "
                            f"array of shape {v.shape}; declare it in batched= to pass arrays")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number,
                                                                  np.ndarray)):
            raise TypeError(f"{self.spec.name}: input {name!r} must be a real number, "
                            f"got {type(v).__name__}")
        if isinstance(v, (complex, np.complexfloating)):
            raise TypeError(f"{self.spec.name}: input {name!r} must be real, got {v!r}")
        return float(v)  # type: ignore[arg-type]

    def _reject(self, j: int, a: object, what: str) -> None:
        name = self.input_names[j]
        dt = self.dtype.name
        fix = f"use numpy.ascontiguousarray({name}, dtype=numpy.{dt})"
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{self.spec.name}: {what} {name!r} must be a numpy array of {dt}, "
                            f"got {type(a).__name__}; {fix}")
        if isinstance(a, np.ma.MaskedArray):
            raise TypeError(f"{self.spec.name}: {what} {name!r} is a masked array; the kernel "
                            f"would ignore the mask. Pass {name}.filled(...) or compress it")
        if (a.dtype == self.dtype and a.ndim == 1 and a.flags.c_contiguous
                and a.flags.aligned):
            return  # an ndarray subclass (e.g. numpy.memmap) that is fine as it is
        if a.dtype != self.dtype:
            raise TypeError(f"{self.spec.name}: {what} {name!r} has dtype {a.dtype}, the kernel "
                            f"is {dt}; {fix} (or compile the kernel with dtype={a.dtype.name!r})")
        if a.ndim != 1:
            raise ValueError(f"{self.spec.name}: {what} {name!r} must be 1-d (length N), got "
                             f"shape {a.shape}; flatten it, e.g. {name}.ravel()")
        raise ValueError(f"{self.spec.name}: {what} {name!r} is not C-contiguous and aligned "
                         f"(e.g. a strided view); {fix}")

    def _reject_out(self, k: int, o: object, shape: tuple[int, ...]) -> None:
        dt = self.dtype.name
        if not isinstance(o, np.ndarray):
            raise TypeError(f"{self.spec.name}: out[{k}] must be a numpy array, "
                            f"got {type(o).__name__}")
        if o.dtype != self.dtype:
            raise TypeError(f"{self.spec.name}: out[{k}] has dtype {o.dtype}, expected {dt}")
        if o.shape != shape:
            raise ValueError(f"{self.spec.name}: out[{k}] has shape {o.shape}, expected {shape}")
        raise ValueError(f"{self.spec.name}: out[{k}] must be a writeable, C-contiguous, "
                         f"aligned array; allocate it with numpy.empty({shape}, numpy.{dt})")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def make_cache(cache: bool | str | os.PathLike[str] | DiskCache | None) -> DiskCache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return DiskCache()
    if isinstance(cache, DiskCache):
        return cache
    return DiskCache(cache)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def compile_kernel(inputs: Sequence[sympy.Symbol], outputs: Sequence[sympy.Expr | float], *,
                   batched: Iterable[sympy.Symbol | str] | None = None,
                   reduce: str | Sequence[str] = "none", dtype: str = "float64",
                   accumulate: str | None = None, threads: int | None = None,
                   fast_math: bool = False, cache: bool | str | os.PathLike[str] = True,
                   cse: bool = True, name: str = "kernel",
                   min_chunk: int = DEFAULT_MIN_CHUNK) -> Kernel:
    """Compile SymPy ``outputs`` over scalar ``inputs`` into a native batch kernel.

    >>> import numpy as np, sympy as sp
    >>> x, a = sp.symbols("x a")
    >>> k = compile_kernel([x, a], [a * sp.sin(x), (a * sp.sin(x)) ** 2], batched=[x],
    ...                    reduce=["none", "sum"], cache=False)
    >>> y, s = k(np.array([0.0, np.pi / 2]), 2.0)
    >>> y.tolist(), float(s)
    ([0.0, 2.0], 4.0)
    """
    inputs = tuple(inputs)
    for s in inputs:
        if not isinstance(s, sympy.Symbol):
            raise TypeError(f"inputs must be sympy Symbols, got {s!r} ({type(s).__name__})")
    if len(set(inputs)) != len(inputs) or len({s.name for s in inputs}) != len(inputs):
        raise ValueError(f"input names must be distinct: {[s.name for s in inputs]}")
    by_name = {s.name: s for s in inputs}
    if batched is None:
        batched_set = set(inputs)
    else:
        batched_set = set()
        for b in batched:
            sym = by_name.get(b) if isinstance(b, str) else b
            if sym not in inputs:
                raise ValueError(f"batched entry {b!r} is not one of the inputs "
                                 f"{[s.name for s in inputs]}")
            batched_set.add(sym)
    outs = tuple(sympy.sympify(e) for e in outputs)
    if not outs:
        raise ValueError("compile_kernel needs at least one output")
    reduce_t = (reduce,) * len(outs) if isinstance(reduce, str) else tuple(reduce)
    if len(reduce_t) != len(outs):
        raise ValueError(f"reduce has {len(reduce_t)} entries for {len(outs)} outputs")
    for r in reduce_t:
        if r not in REDUCTIONS:
            raise ValueError(f"reduce entries must be one of {REDUCTIONS}, got {r!r}")
    if dtype not in NP_DTYPES:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    accumulate = dtype if accumulate is None else accumulate
    if accumulate not in NP_DTYPES or (dtype == "float64" and accumulate == "float32"):
        raise ValueError(f"accumulate must be 'float64' or the kernel dtype, got {accumulate!r}")
    if not _NAME.match(name):
        raise ValueError(f"kernel name must be an identifier, got {name!r}")
    known = set(inputs)
    for k, e in enumerate(outs):
        extra = e.free_symbols - known
        if extra:
            raise ValueError(f"output {k} uses {sorted(map(str, extra))}, which are not inputs")
    spec = KernelSpec(name, inputs, tuple(s in batched_set for s in inputs), outs, reduce_t,
                      dtype, accumulate, bool(fast_math), bool(cse))
    return Kernel(spec, threads=threads, cache=cache, min_chunk=min_chunk)
