"""``symad.distributed``: data-parallel loss, exact gradients and training on Dask.

Install with ``pip install 'symad[dask]'``. A loss that is a sum or mean over samples is traced
once per sample and compiled to one native loss + gradient kernel; every Dask task runs that
kernel on one chunk of the data (dask arrays chunked along the batch axis, or the partitions of
a dask DataFrame), and the chunks' sums are added in a fixed tree order, so the result does not
depend on scheduling and equals the in-process ``symad.value_and_grad`` to rounding.

* :func:`value_and_grad` -> :class:`DistributedLoss`: ``loss(params) -> (value, grad)`` for
  full-batch methods (gradient descent; ``scipy.optimize.minimize(loss, x0, jac=True)``).
* :func:`fit`: minibatch training with a ``symad.optim`` optimizer, chunks drawn across workers.
* :class:`ChunkKernel`: the picklable kernel the tasks run; :class:`BadChunkError`: a chunk with
  the wrong dtype, sample shape, or NaN/inf values, named by its index and rows.

See docs/distributed.md ("Beyond one machine").
"""
from __future__ import annotations

from .fit import FitResult, chunk_schedule, fit
from .kernel import BadChunkError, ChunkKernel, DataArg, build_chunk_kernel
from .loss import DistributedLoss, Evaluation, value_and_grad
from .tree import combine, tree_sum

__all__ = ["BadChunkError", "ChunkKernel", "DataArg", "DistributedLoss", "Evaluation",
           "FitResult", "build_chunk_kernel", "chunk_schedule", "combine", "fit", "tree_sum",
           "value_and_grad"]
