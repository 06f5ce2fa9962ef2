"""The picklable loss + gradient kernel that every Dask task runs on its chunk.

A :class:`ChunkKernel` is built once, on the client, from the loss function: symad's batched
tracer (:func:`symad.symbolic.trace_batched`) splits the loss into a per-sample term and a sum or
mean over samples, the exact gradient of that term comes from reverse mode, and
:func:`codegen.compile_kernel` lowers ``[term, d term / d params...]`` with ``"sum"`` reductions.
What travels to the workers is the kernel's :class:`codegen.KernelSpec` (SymPy expressions, a few
kilobytes) plus the argument layout; each worker process turns it into native code once (a hit in
its own disk cache, or one LLVM compile) and keeps it for every later task. Nothing is traced on
a worker, and no file system is shared.

A chunk's result is the vector ``[n_samples, sum of the term, sums of its gradient...]`` in
float64; the sums of all chunks, divided by the global sample count for a mean loss, are the
loss and gradient of the whole data set.
"""
from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


class BadChunkError(ValueError):
    """A data chunk cannot be used: wrong dtype, wrong sample shape, or NaN/inf values.

    ``chunk`` is the chunk's index along the batch axis (partition number of a DataFrame),
    ``argument`` the name of the data argument (or column), when known.
    """

    def __init__(self, message: str, chunk: int | None = None,
                 argument: str | None = None) -> None:
        super().__init__(message)
        self.chunk = chunk
        self.argument = argument

    def __reduce__(self):  # keep chunk/argument when Dask ships the error to the client
        return (type(self), (str(self), self.chunk, self.argument))


@dataclass(frozen=True)
class DataArg:
    """One data argument of the loss: its name and the shape of one sample."""
    name: str
    sample_shape: tuple[int, ...]

    @property
    def width(self) -> int:
        return int(np.prod(self.sample_shape)) if self.sample_shape else 1


class ProcessKernels:
    """This process's native chunk kernels by content digest (bounded, least recently used
    dropped first). Dask's memory manager may drop a worker's copy of a kernel object and
    fetch it again; the native code stays here, so each worker process compiles it once."""

    def __init__(self, maxsize: int = 32) -> None:
        self.maxsize = maxsize
        self._kernels: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def get_or_build(self, digest: str, build: Callable[[], Any]):
        with self._lock:  # one build per digest even when tasks run on several threads
            k = self._kernels.get(digest)
            if k is None:
                k = self._kernels[digest] = build()
                self.builds += 1
                while len(self._kernels) > self.maxsize:
                    self._kernels.popitem(last=False)
            self._kernels.move_to_end(digest)
            return k

    def add(self, digest: str, kernel) -> None:
        with self._lock:
            self._kernels[digest] = kernel


#: The one cache of this process (a Dask worker process builds each kernel once).
PROCESS_KERNELS = ProcessKernels()


class ChunkKernel:
    """Loss-term sum and exact gradient sums over one chunk of samples, as native code.

    ``spec``: the :class:`codegen.KernelSpec` (inputs: parameter scalars, constant scalars, then
    one column per data element; outputs: the per-sample term and its gradient, all ``"sum"``).
    ``param_shapes``: shapes of the differentiated parameter arguments; ``constants``: values of
    further scalar inputs (parameters of modules the loss closes over, frozen at build time);
    ``data``: the data arguments; ``reduction``: ``"mean"`` or ``"sum"`` over samples.
    """

    def __init__(self, spec, param_shapes, constants, data, reduction: str, *,
                 threads: int = 1) -> None:
        self._spec = spec
        self._spec_blob = pickle.dumps(spec)  # what travels; unpickled only to build
        self.param_shapes = [tuple(s) for s in param_shapes]
        self.constants = [float(c) for c in constants]
        self.data = list(data)
        self.reduction = reduction
        self.threads = int(threads)
        self.n_params = int(sum(int(np.prod(s)) if s else 1 for s in self.param_shapes))
        self.np_dtype = np.dtype(spec.dtype)
        self.digest = hashlib.sha256(self._spec_blob + pickle.dumps(
            (self.param_shapes, self.constants, self.data, reduction, self.threads))
        ).hexdigest()[:32]
        self._native: Any = None

    @property
    def spec(self):
        """The :class:`codegen.KernelSpec` (SymPy expressions; unpickled on first use)."""
        if self._spec is None:
            self._spec = pickle.loads(self._spec_blob)
        return self._spec

    # -- shipping: only the spec's bytes travel; native code is built once per process --------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_native"] = None
        state["_spec"] = None
        return state

    def __dask_tokenize__(self) -> str:
        return self.digest

    def __repr__(self) -> str:
        names = ", ".join(d.name for d in self.data)
        return (f"<symad.distributed.ChunkKernel {self.reduction} over samples of ({names}); "
                f"{self.n_params} parameters, {self.np_dtype}>")

    def native(self):
        """The :class:`codegen.Kernel` of this process: built on first use (disk cache hit or
        JIT) and shared by every copy of this kernel in the process, so a worker builds it once
        even when Dask drops its copy of the kernel object and fetches it again."""
        k = self._native
        if k is None:
            k = self._native = PROCESS_KERNELS.get_or_build(self.digest, self._build_native)
        return k

    def _build_native(self):
        from codegen import Kernel
        return Kernel(self.spec, threads=self.threads)

    # -- one chunk ----------------------------------------------------------------------------
    def columns(self, arrays, chunk: int, row0: int | None) -> tuple[list[np.ndarray], int]:
        """Contiguous kernel-dtype columns of one chunk's data arrays, and its sample count;
        raises :class:`BadChunkError` for a wrong dtype, sample shape or length."""
        if len(arrays) != len(self.data):
            raise BadChunkError(f"{_where(chunk, None, None)} has {len(arrays)} data arrays, the "
                                f"loss takes {len(self.data)}", chunk)
        cols: list[np.ndarray] = []
        n = None
        for d, a in zip(self.data, arrays):
            a = np.asarray(a)
            n_a = a.shape[0] if a.ndim else None
            where = _where(chunk, row0, n_a)
            if a.dtype.kind != "f":
                raise BadChunkError(
                    f"{where}: data argument {d.name!r} has dtype {a.dtype}, expected "
                    f"floating-point numbers ({self.np_dtype}); convert it, e.g. "
                    f"x.astype('{self.np_dtype}'), or drop the non-numeric rows", chunk, d.name)
            if a.ndim == 0 or tuple(a.shape[1:]) != d.sample_shape:
                got = "a scalar" if a.ndim == 0 else f"samples of shape {tuple(a.shape[1:])}"
                raise BadChunkError(
                    f"{where}: data argument {d.name!r} has {got}, the loss was traced with "
                    f"samples of shape {d.sample_shape} (chunk shape {a.shape}); every chunk "
                    "must hold whole samples along axis 0", chunk, d.name)
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise BadChunkError(
                    f"{where}: data argument {d.name!r} has {a.shape[0]} samples, "
                    f"{self.data[0].name!r} has {n}; the data arguments must be chunked alike",
                    chunk, d.name)
            flat = a.reshape(a.shape[0], d.width)
            for c in range(d.width):
                # data received over the network may sit at an unaligned address: copy it then
                cols.append(np.require(flat[:, c], self.np_dtype, ["C", "A"]))
        return cols, int(n or 0)

    def partial(self, params: np.ndarray, arrays, chunk: int = 0, row0: int | None = None, *,
                check_finite: bool = True) -> np.ndarray:
        """``[n, sum of the loss term, gradient sums...]`` (float64) over one chunk."""
        cols, n = self.columns(arrays, chunk, row0)
        values = [float(v) for v in np.asarray(params, np.float64).reshape(-1)]
        if len(values) != self.n_params:
            raise ValueError(f"expected {self.n_params} parameter values, got {len(values)}")
        outs = self.native().call_arrays(values + self.constants + cols)
        result = np.empty(2 + self.n_params, np.float64)
        result[0] = n
        result[1:] = [float(o) for o in outs]
        if check_finite and not np.all(np.isfinite(result)):
            raise self._nonfinite_error(cols, chunk, row0, n, result, values)
        return result

    def _nonfinite_error(self, cols, chunk, row0, n, result, values) -> BadChunkError:
        where = _where(chunk, row0, n)
        pos = 0
        for d in self.data:
            for c in range(d.width):
                bad = np.flatnonzero(~np.isfinite(cols[pos + c]))
                if bad.size:
                    i = int(bad[0])
                    overall = f" (row {row0 + i} overall)" if row0 is not None else ""
                    elem = f"{d.name}[{c}]" if d.width > 1 else d.name
                    return BadChunkError(
                        f"{where}: data argument {d.name!r} holds {cols[pos + c][i]} at row {i} "
                        f"of the chunk{overall}, {bad.size} non-finite value(s) in {elem}: the "
                        "loss and gradient would be NaN. Drop or fill those samples first",
                        chunk, d.name)
            pos += d.width
        what = "loss" if not np.isfinite(result[1]) else "gradient"
        return BadChunkError(
            f"{where}: the {what} is not finite (loss term sum {result[1]}) although the data "
            f"is finite: the parameters {np.round(values, 6).tolist()} are outside the model's "
            "domain on these samples (e.g. overflow in exp). Pass check_finite=False to get the "
            "non-finite value instead of this error (line searches can back off from it)",
            chunk, None)


def _where(chunk: int, row0: int | None, n: int | None) -> str:
    if row0 is not None and n is not None:
        return f"chunk {chunk} (rows {row0}..{row0 + n - 1})"
    return f"chunk {chunk}"


def build_chunk_kernel(fn, params, data_examples, *, dtype: str | None = None,
                       threads: int = 1) -> ChunkKernel:
    """Trace ``fn(*params, *data)`` per sample and compile its ``"sum"`` loss + gradient kernel.

    ``params``: example parameter values (their shapes matter); ``data_examples``: one small
    array per data argument (``(k, *sample_shape)``). The loss must be a sum or mean over
    samples of a scalar per-sample term.
    """
    from codegen import compile_kernel

    from ..symbolic import NotBatchSeparable, reverse_gradient, trace_batched

    data_examples = [np.asarray(d) for d in data_examples]
    if dtype is None:  # PyTorch's promotion: float32 only if every parameter and datum is
        dtype = "float32" if all(np.asarray(a).dtype == np.float32
                                 for a in list(params) + data_examples) else "float64"
    params = [np.asarray(p, dtype=np.float64) for p in params]
    examples = params + [np.zeros((2,) + d.shape[1:], dtype=dtype) for d in data_examples]
    n_p = len(params)
    batched = [False] * n_p + [True] * len(data_examples)
    try:
        bt = trace_batched(fn, *examples, batched=batched)
    except NotBatchSeparable as e:
        raise ValueError(f"symad.distributed: {e}") from None
    if bt.reduction not in ("sum", "mean"):
        raise ValueError(
            "symad.distributed needs a loss that is a sum or mean over samples of a per-sample "
            f"term; {bt.name} returns one value per sample (reduction {bt.reduction!r}). "
            "Reduce it with .mean() or .sum()")
    if bt.per_sample_array.size != 1:
        raise ValueError(f"symad.distributed needs a scalar loss; {bt.name} returns shape "
                         f"{bt.per_sample_array.shape}")
    inputs = [v for v in bt.params if v.kind == "input"]  # the parameter arguments, in order
    if len(inputs) != n_p:
        raise ValueError(f"symad.distributed: traced {len(inputs)} parameter arguments of "
                         f"{bt.name}, expected {n_p}")
    wrt = [s for v in inputs for s in v.flat]
    param_shapes = [tuple(p.shape) for p in params]
    consts = [v for v in bt.params if v.kind != "input"]
    const_syms = [s for v in consts for s in v.flat]
    const_vals = [float(x) for v in consts for x in np.asarray(v.example).reshape(-1)]
    q = bt.per_sample_array.reshape(-1)[0]
    grads = reverse_gradient(q, wrt)
    data = [DataArg(v.name, tuple(v.shape)) for v in bt.data]
    data_syms = bt.data_symbols
    k = compile_kernel(wrt + const_syms + data_syms, [q] + list(grads), batched=data_syms,
                       reduce="sum", dtype=dtype, accumulate="float64", threads=threads,
                       name="symad_chunk")
    ck = ChunkKernel(k.spec, param_shapes, const_vals, data, bt.reduction, threads=threads)
    ck._native = k  # the client's own copy, already compiled
    PROCESS_KERNELS.add(ck.digest, k)
    return ck
