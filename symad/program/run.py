"""Running a recorded program on new arrays: each step is the registry's numpy evaluation
(:func:`symad.ops.dispatch.forward_numpy` / :func:`~symad.ops.dispatch.elementwise_partial`), the
same code eager runs — so a replay of eager's own inputs reproduces eager bit for bit. The replay
silences numpy's floating-point warnings once around all its steps, as eager does per op."""
from __future__ import annotations

import numpy as np

from ..ops.dispatch import elementwise_partial_quiet, forward_numpy_plan
from ..ops.shape import sum_to_shape
from .ir import Program


def step_fn(st, shapes, dtypes):
    if st.partial is None:
        return forward_numpy_plan(st.op, [dtypes[i] for i in st.ins], st.params, st.dtype)
    n_in = len(st.ins) - 1
    i, op, params = st.partial, st.op, st.params
    shape = shapes[st.ins[i]]
    const = st.number_partial()
    if const is not None:
        # d(a + b)/da = 1, d(a - b)/db = -1, ...: the partial is g scaled, summed to the shape
        def c(*arrays):
            g = arrays[n_in]
            if const != 1.0:
                g = g * g.dtype.type(const)
            return sum_to_shape(g, shape) if g.shape != shape else g
        return c

    def g(*arrays):
        return elementwise_partial_quiet(op, i, params, arrays[:n_in], arrays[n_in], shape)
    return g


class Runner:
    """``Runner(prog)(*input_arrays) -> list of output arrays`` (None for a None output).

    With ``seed`` (the slot of an upstream-gradient input), the steps split in two: ``forward``
    runs those that do not depend on the seed and returns the slot values (the saved state),
    ``backward(state, seed_array)`` runs the rest — the VJP without recomputing the forward."""

    def __init__(self, prog: Program, seed: int | None = None) -> None:
        self.prog = prog
        self.n = len(prog.slots)
        self._leaves = list(prog.leaves)
        shapes = [s.shape for s in prog.slots]
        dtypes = [s.dtype.np for s in prog.slots]
        tainted = {seed} if seed is not None else set()
        fwd, bwd = [], []
        for st in prog.steps:
            item = (step_fn(st, shapes, dtypes), st.ins, st.out)
            if tainted and any(i in tainted for i in st.ins):
                tainted.add(st.out)
                bwd.append(item)
            else:
                fwd.append(item)
        self._fwd, self._bwd = fwd, bwd
        self._seed = seed
        self._inputs = [s for s in prog.inputs if s != seed]

    def forward(self, *arrays) -> list:
        vals: list = [None] * self.n
        for s, a in zip(self._inputs, arrays):
            vals[s] = a
        for s, t in self._leaves:
            vals[s] = t._data
        with np.errstate(all="ignore"):        # once per replay, not once per step
            for f, ins, out in self._fwd:
                vals[out] = f(*[vals[i] for i in ins])
        return vals

    def backward(self, vals: list, seed: np.ndarray) -> list:
        vals = list(vals)
        vals[self._seed] = seed
        with np.errstate(all="ignore"):
            for f, ins, out in self._bwd:
                vals[out] = f(*[vals[i] for i in ins])
        return self.outputs(vals)

    def outputs(self, vals: list) -> list:
        return [vals[s] if s >= 0 else None for s in self.prog.outputs]

    def __call__(self, *arrays) -> list:
        return self.outputs(self.forward(*arrays))


def same(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    """Equal within ``rtol`` (NaNs in the same places)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=0, equal_nan=True))
