"""``symad.distributed.fit``: minibatch training whose steps draw chunks across the workers."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .loss import DistributedLoss, _param_array


@dataclass
class FitResult:
    """What :func:`fit` returns: the fitted ``params`` (same structure as given), the minibatch
    loss of every step (``losses``, before that step's update) and the chunks each step used."""
    params: np.ndarray | tuple[np.ndarray, ...]
    losses: list[float] = field(default_factory=list)
    chunks: list[list[int]] = field(default_factory=list)


def chunk_schedule(n_chunks: int, chunks_per_step: int, steps: int, seed: int) -> list[list[int]]:
    """The chunks of each step: epochs of a seeded permutation of all chunks, cut into groups of
    ``chunks_per_step`` (sorted within a step, which fixes the order their sums are added in).

    >>> chunk_schedule(4, 2, 3, seed=0)
    [[0, 2], [1, 3], [2, 3]]
    """
    if not 1 <= chunks_per_step <= n_chunks:
        raise ValueError(f"chunks_per_step must be between 1 and the number of chunks "
                         f"({n_chunks}), got {chunks_per_step}")
    rng = np.random.default_rng(seed)
    out: list[list[int]] = []
    order: list[int] = []
    while len(out) < steps:
        if len(order) < chunks_per_step:
            order = [int(i) for i in rng.permutation(n_chunks)]
        out.append(sorted(order[:chunks_per_step]))
        order = order[chunks_per_step:]
    return out


def fit(loss: DistributedLoss, params, *, optimizer: Callable | None = None, steps: int = 100,
        chunks_per_step: int = 1, seed: int = 0,
        callback: Callable[[int, float], None] | None = None) -> FitResult:
    """Minibatch training: each step evaluates the loss and exact gradient on
    ``chunks_per_step`` chunks (tasks next to their data, on whichever workers hold them) and
    applies one optimizer step on the client.

    ``loss``: a :class:`DistributedLoss` from :func:`value_and_grad`; ``params``: initial value
    of the parameter argument(s) (an array, or a tuple of arrays). ``optimizer``: a function
    from a list of ``symad`` tensors to a ``symad.optim`` optimizer (default
    ``lambda ps: symad.optim.Adam(ps, lr=1e-2)``), so the update equations are symad's (and
    PyTorch's). Chunks are drawn by :func:`chunk_schedule` with ``seed``: every chunk once per
    epoch, the same sequence on every run.
    """
    from .. import tensor
    from ..optim import Adam

    single = not isinstance(params, (tuple, list))
    arrays = [_param_array(p) for p in ([params] if single else params)]
    ts = [tensor(a, requires_grad=True) for a in arrays]
    opt = (optimizer or (lambda ps: Adam(ps, lr=1e-2)))(ts)
    result = FitResult(params=None)  # type: ignore[arg-type]
    for step, chunks in enumerate(chunk_schedule(loss.n_chunks, chunks_per_step, steps, seed)):
        ev = loss.evaluate(*[t.detach().numpy() for t in ts], chunks=chunks)
        for t, g in zip(ts, ev.grads):
            t.grad = tensor(g.astype(t.detach().numpy().dtype))
        opt.step()
        result.losses.append(ev.value)
        result.chunks.append(chunks)
        if callback is not None:
            callback(step, ev.value)
    final = [np.array(t.detach().numpy()) for t in ts]
    result.params = final[0] if single else tuple(final)
    return result
