"""``symad.distributed.value_and_grad``: a loss and its exact gradient over a Dask data set."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import ChunkedData
from .kernel import ChunkKernel, build_chunk_kernel
from .tree import tree_sum_futures


@dataclass
class Evaluation:
    """One evaluation: the loss, its gradient (one array per parameter argument) and the number
    of samples it covered."""
    value: float
    grads: tuple[np.ndarray, ...]
    count: int


def _ready(kernel: ChunkKernel) -> ChunkKernel:
    """Task: build the native kernel where the kernel object lives (fails early if it cannot)."""
    kernel.native()
    return kernel


def _chunk_task(chunk: int, row0, *parts, kernel: ChunkKernel, reader, params,
                check_finite: bool) -> np.ndarray:
    """Task: ``[n, loss sum, gradient sums...]`` of one chunk."""
    return kernel.partial(params, reader.arrays(parts, chunk), chunk, row0,
                          check_finite=check_finite)


def _unwrap(fn):
    """The Python function behind ``symad.compile(fn)`` / ``symad.value_and_grad(fn)``."""
    inner = getattr(fn, "compiled", None)
    if inner is not None:
        fn = inner
    return getattr(fn, "__wrapped__", fn)


def _as_client(client):
    from distributed import Client, get_client
    if client is None:
        try:
            return get_client()
        except ValueError:
            raise ValueError("symad.distributed: no Dask client; pass client=Client(...) or a "
                             "scheduler address, or create a Client first") from None
    if isinstance(client, str):
        return Client(client, set_as_default=False)
    return client


def _check_arity(fn, n_params: int, n_data: int) -> None:
    """A clear error when the parameters given and the data do not fill ``fn``'s arguments."""
    import inspect
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    ps = list(sig.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in ps):
        return
    pos = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in pos if p.default is p.empty]
    if not len(required) <= n_params + n_data <= len(pos):
        names = [p.name for p in pos]
        raise TypeError(f"the loss takes {len(pos)} arguments {names}: the parameters, then "
                        f"{n_data} data argument(s); got {n_params} parameter(s)")


def _param_array(p) -> np.ndarray:
    """A parameter as a float array (float32 stays float32: it decides the kernel dtype)."""
    if hasattr(p, "detach") and hasattr(p, "numpy"):  # a symad.Tensor
        p = p.detach().numpy()
    a = np.asarray(p)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


class DistributedLoss:
    """``loss(*params) -> (value, grad)`` over every chunk of a Dask data set.

    Made by :func:`value_and_grad`. Calling it runs the loss's native kernel on every chunk, one
    task per chunk next to its data, and adds the chunks' sums in a fixed tree order; a mean loss
    is divided by the global sample count. ``value`` is a Python float and ``grad`` a float64
    array shaped like the parameter (a tuple for several parameter arguments), the form
    ``scipy.optimize.minimize(loss, x0, jac=True)`` expects.
    """

    def __init__(self, fn, data, *, client=None, columns=None, persist: bool = True,
                 fan_in: int = 32, threads: int = 1, check_finite: bool = True,
                 dtype: str | None = None) -> None:
        if fan_in < 2:
            raise ValueError(f"fan_in must be >= 2, got {fan_in}")
        self.fn = _unwrap(fn)
        self.client = _as_client(client)
        self._owns_client = isinstance(client, str)
        self.data = ChunkedData(data, columns)
        self.fan_in = int(fan_in)
        self.threads = int(threads)
        self.check_finite = bool(check_finite)
        self.dtype = dtype
        self.evaluations = 0
        self._kernels: dict[tuple, tuple[ChunkKernel, object]] = {}
        self._parts = self.data.submit(self.client) if persist else None

    @property
    def n_chunks(self) -> int:
        return self.data.n_chunks

    def kernel(self, *params) -> ChunkKernel:
        """The chunk kernel for these parameter shapes (traced and compiled once, here)."""
        return self._kernel_and_future([_param_array(p) for p in params])[0]

    def _kernel_and_future(self, params):
        key = tuple((p.shape, p.dtype.str) for p in params)
        got = self._kernels.get(key)
        if got is None:
            _check_arity(self.fn, len(params), len(self.data.sample_shapes))
            ck = build_chunk_kernel(self.fn, params, self.data.examples(), dtype=self.dtype,
                                    threads=self.threads)
            fut = self.client.submit(_ready, ck, key=f"symad-chunk-kernel-{ck.digest}")
            got = self._kernels[key] = (ck, fut)
        return got

    def submit(self, *params, chunks=None) -> list:
        """Futures of the chunk partials (``chunks``: indices, default all), in chunk order."""
        arrays = [_param_array(p) for p in params]
        kf = self._kernel_and_future(arrays)[1]
        flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0)
        ids = list(range(self.n_chunks)) if chunks is None else sorted(int(c) for c in chunks)
        if any(not 0 <= i < self.n_chunks for i in ids):
            raise IndexError(f"chunk indices must be in [0, {self.n_chunks}), got {ids}")
        if not ids:
            raise ValueError("no chunks to evaluate")
        if self._parts is not None:
            parts = [self._parts[i] for i in ids]
        else:  # not persisted: load just these chunks, for this evaluation
            parts = self.data.submit(self.client, ids)
        columns = [[p[j] for p in parts] for j in range(len(parts[0]))]
        # one message for all chunk tasks (client.map), each scheduled next to its data
        return self.client.map(_chunk_task, list(ids), [self.data.row0(i) for i in ids],
                               *columns, kernel=kf, reader=self.data.reader, params=flat,
                               check_finite=self.check_finite, pure=False)

    def evaluate(self, *params, chunks=None) -> Evaluation:
        """Loss and gradient over all chunks, or over the chunk indices in ``chunks``."""
        futures = self.submit(*params, chunks=chunks)
        try:
            total = tree_sum_futures(self.client, futures, self.fan_in)
        except BaseException:
            self.client.cancel(futures)
            raise
        self.evaluations += 1
        ck = self._kernel_and_future([_param_array(p) for p in params])[0]
        return _finish(ck, total)

    def __call__(self, *params):
        ev = self.evaluate(*params)
        return ev.value, (ev.grads[0] if len(ev.grads) == 1 else ev.grads)

    def close(self) -> None:
        """Release the data and kernels this object keeps on the cluster (and close the client
        it opened for a scheduler address)."""
        self._parts = None
        self._kernels.clear()
        if self._owns_client:
            self.client.close()


def _finish(ck: ChunkKernel, total: np.ndarray) -> Evaluation:
    n = int(total[0])
    sums = total[1:]
    if ck.reduction == "mean":
        sums = sums / n if n else np.full_like(sums, np.nan)
    grads, pos = [], 1
    for shape in ck.param_shapes:
        m = int(np.prod(shape)) if shape else 1
        grads.append(np.array(sums[pos:pos + m]).reshape(shape))
        pos += m
    return Evaluation(float(sums[0]), tuple(grads), n)


def value_and_grad(fn, data, *, client=None, columns=None, persist: bool = True,
                   fan_in: int = 32, threads: int = 1, check_finite: bool = True,
                   dtype: str | None = None) -> DistributedLoss:
    """``loss(*params) -> (value, grad)`` of ``fn(*params, *data)`` over a Dask data set.

    ``fn``: the loss, a sum or mean over samples (``((f(x) - y) ** 2).mean()``); its last
    arguments are the data, the ones before them the parameters it is differentiated by. It may
    be a plain function or ``symad.compile(fn)`` / ``symad.value_and_grad(fn)``.
    ``data``: dask array(s) chunked along axis 0 (one per data argument), or a dask DataFrame
    with ``columns`` = one column name (or list of names) per data argument.
    ``client``: a ``distributed.Client``, a scheduler address, or None for the current client.
    ``persist``: load the chunks onto the workers once and keep them there (default); False
    recomputes them in every evaluation (data larger than the cluster's memory).
    ``fan_in``: partials added per combine task; ``threads``: kernel threads per task (1: Dask
    runs the chunks in parallel); ``check_finite``: raise :class:`BadChunkError` naming the
    chunk when a loss or gradient sum is NaN/inf.

    >>> import numpy as np, dask.array as da, symad.distributed as sd
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address=":0")
    >>> x = da.from_array(np.linspace(0.0, 1.0, 1000), chunks=250)
    >>> loss = sd.value_and_grad(lambda w, x: ((w * x - 2 * x) ** 2).mean(), x, client=client)
    >>> value, grad = loss(np.array(1.0))
    >>> round(value, 6), round(float(grad), 6)
    (0.3335, -0.667)
    >>> client.close()
    """
    return DistributedLoss(fn, data, client=client, columns=columns, persist=persist,
                           fan_in=fan_in, threads=threads, check_finite=check_finite, dtype=dtype)
