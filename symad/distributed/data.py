"""Partitioned data sets: dask arrays chunked along the batch axis, or a dask DataFrame.

:class:`ChunkedData` checks a data set up front (types, dtypes, alignment of the chunks) and
turns it into chunks: chunk ``i`` is the ``i``-th block of every data array (or the ``i``-th
partition of the DataFrame). :class:`ChunkReader` is the tiny picklable recipe a task uses to
get the loss's data arrays out of a chunk's stored parts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernel import BadChunkError

ColumnSpec = str | list[str] | tuple[str, ...]


@dataclass(frozen=True)
class ChunkReader:
    """How a task gets the loss's data arrays from one chunk's parts.

    There is one part per chunk. ``columns is None``: a tuple of the chunk's blocks, one per data
    argument. Otherwise a pandas DataFrame partition, and each entry of ``columns`` is a
    column name (a 1-d argument) or a list of names (a 2-d argument, one sample per row).
    """
    columns: tuple[str | tuple[str, ...], ...] | None = None

    def arrays(self, parts, chunk: int) -> list[np.ndarray]:
        (stored,) = parts
        if self.columns is None:  # the chunk's blocks, stored together (ChunkedData.submit)
            return list(stored)
        frame = stored
        out = []
        for spec in self.columns:
            names = [spec] if isinstance(spec, str) else list(spec)
            missing = [c for c in names if c not in frame.columns]
            if missing:
                raise BadChunkError(f"partition {chunk}: column(s) {missing} missing (it has "
                                    f"{list(frame.columns)})", chunk, missing[0])
            for c in names:
                if frame[c].dtype.kind != "f":
                    raise BadChunkError(
                        f"partition {chunk}: column {c!r} has dtype {frame[c].dtype}, expected "
                        f"floating-point numbers; convert it (ddf[{c!r}].astype('float64')) or "
                        "drop the non-numeric rows", chunk, c)
            sub = frame[spec] if isinstance(spec, str) else frame[names]
            out.append(sub.to_numpy())
        return out


class ChunkedData:
    """A data set cut into chunks along the batch axis (see the module docstring).

    ``data``: a dask array, a tuple/list of dask arrays (one per data argument of the loss, all
    with the same length), or a dask DataFrame with ``columns`` naming the column(s) of each data
    argument. Arrays are rechunked so that only axis 0 is split and all arrays share its chunks.
    """

    def __init__(self, data, columns=None) -> None:
        import dask.array as da
        self.reader: ChunkReader
        if _is_dataframe(data):
            if columns is None:
                raise TypeError("a dask DataFrame needs columns=[...]: one column name (or a list "
                                "of names) per data argument of the loss, in argument order")
            cols = tuple(c if isinstance(c, str) else tuple(c) for c in columns)
            known = list(data.columns)
            for spec in cols:
                for c in ([spec] if isinstance(spec, str) else spec):
                    if c not in known:
                        raise KeyError(f"column {c!r} is not in the DataFrame (columns: {known})")
                    kind = np.dtype(data.dtypes[c]).kind if _is_numpy_dtype(data.dtypes[c]) \
                        else "O"
                    if kind != "f":
                        raise TypeError(f"column {c!r} has dtype {data.dtypes[c]}, expected "
                                        f"floating-point numbers; convert it with "
                                        f"ddf[{c!r}].astype('float64')")
            self.reader = ChunkReader(cols)
            self.collections = [data]
            self.sample_shapes: list[tuple[int, ...]] = [() if isinstance(s, str) else (len(s),)
                                                        for s in cols]
            self.dtypes = [np.result_type(*[np.dtype(data.dtypes[c]) for c in
                                            ([s] if isinstance(s, str) else s)]) for s in cols]
            self.n_chunks = int(data.npartitions)
            self.row_offsets: list[int] | None = None
            return
        if columns is not None:
            raise TypeError("columns= is for a dask DataFrame; for arrays pass one array per data "
                            "argument")
        arrays = [data] if isinstance(data, da.Array) else list(data) \
            if isinstance(data, (list, tuple)) else None
        if not arrays:
            raise TypeError(f"data must be a dask array, a tuple of dask arrays or a dask "
                            f"DataFrame, got {type(data).__name__}")
        for j, a in enumerate(arrays):
            if not isinstance(a, da.Array):
                hint = (" (wrap it: dask.array.from_array(a, chunks=...))"
                        if isinstance(a, np.ndarray) else "")
                raise TypeError(f"data argument {j} is a {type(a).__name__}, not a dask "
                                f"array{hint}")
            if a.ndim == 0:
                raise ValueError(f"data argument {j} is a scalar; data needs a batch axis 0")
            if a.dtype.kind != "f":
                raise TypeError(f"data argument {j} has dtype {a.dtype}, expected floating-point "
                                f"numbers; convert it with .astype('float64')")
            if any(np.isnan(c) for c in a.chunks[0]):
                raise ValueError(f"data argument {j} has unknown chunk sizes; call "
                                 ".compute_chunk_sizes() on it first")
        n = arrays[0].shape[0]
        for j, a in enumerate(arrays):
            if a.shape[0] != n:
                raise ValueError(f"data argument {j} has {a.shape[0]} samples, data argument 0 "
                                 f"has {n}; all data arguments need the same length")
        rows = arrays[0].chunks[0]
        self.collections = [a if a.chunks[0] == rows and all(len(c) == 1 for c in a.chunks[1:])
                            else a.rechunk((rows,) + tuple(-1 for _ in a.shape[1:]))
                            for a in arrays]
        self.reader = ChunkReader(None)
        self.sample_shapes = [tuple(int(s) for s in a.shape[1:]) for a in arrays]
        self.dtypes = [a.dtype for a in arrays]
        self.n_chunks = len(rows)
        self.row_offsets = [int(s) for s in np.concatenate([[0], np.cumsum(rows)[:-1]])]

    def examples(self) -> list[np.ndarray]:
        """Two zero samples per data argument (shapes and dtypes for tracing)."""
        return [np.zeros((2,) + s, dtype=d) for s, d in zip(self.sample_shapes, self.dtypes)]

    def submit(self, client, chunks=None) -> list[list]:
        """Futures of the parts of every chunk (or of the chunk indices ``chunks``), computed
        and kept on the cluster for as long as the futures live.

        The blocks of one chunk (x_i, y_i, ...) become ONE stored value, so a chunk's data sits
        on one worker and an evaluation never moves it (Dask would otherwise fetch a block from
        another worker, and its memory manager drops such copies again between evaluations).
        """
        import dask
        ids = list(range(self.n_chunks)) if chunks is None else list(chunks)
        blocks = [np.asarray(c.to_delayed(), dtype=object).reshape(-1)
                  for c in self.collections]
        if self.reader.columns is None:
            values = [dask.delayed(_together, pure=True)(*[b[i] for b in blocks]) for i in ids]
        else:
            values = [blocks[0][i] for i in ids]
        return [[f] for f in client.compute(values)]

    def row0(self, chunk: int) -> int | None:
        return None if self.row_offsets is None else self.row_offsets[chunk]


def _together(*blocks) -> tuple:
    """Task: one chunk's blocks as one stored value."""
    return blocks


def _is_dataframe(data) -> bool:
    mod = type(data).__module__
    return mod.startswith("dask") and hasattr(data, "npartitions") and hasattr(data, "columns")


def _is_numpy_dtype(dt) -> bool:
    return isinstance(dt, np.dtype)
