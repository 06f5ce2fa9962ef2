"""Running a recorded program on new arrays: each step is the registry's numpy evaluation
(:func:`symad.ops.dispatch.forward_numpy` / :func:`~symad.ops.dispatch.elementwise_partial`), the
same code eager runs — so a replay of eager's own inputs reproduces eager bit for bit. Fused
elementwise regions (:mod:`symad.program.fuse`) replace runs of steps by one native kernel."""
from __future__ import annotations

import numpy as np

from ..ops.dispatch import elementwise_partial, forward_numpy
from .ir import Program


class Runner:
    """``Runner(prog)(*input_arrays) -> list of output arrays`` (None for a None output)."""

    def __init__(self, prog: Program, kernels: dict | None = None) -> None:
        self.prog = prog
        self.n = len(prog.slots)
        self._leaves = [(s, t) for s, t in prog.leaves]
        self._plan = self._build(kernels or {})

    def _build(self, kernels):
        plan = []
        shapes = {i: s.shape for i, s in enumerate(self.prog.slots)}
        for st in self.prog.steps:
            k = kernels.get(st.out)
            if k is not None:
                plan.append((k, st.ins, None, st.out))
                continue
            if st.partial is None:
                op, params, dt = st.op, st.params, st.dtype

                def f(*arrays, op=op, params=params, dt=dt):
                    return forward_numpy(op, arrays, params, dt)[0]
            else:
                n_in = len(st.ins) - 1
                i, op, params = st.partial, st.op, st.params
                shape = shapes[st.ins[i]]

                def f(*arrays, op=op, params=params, i=i, n_in=n_in, shape=shape):
                    return elementwise_partial(op, i, params, arrays[:n_in], arrays[n_in],
                                               shape)
            plan.append((f, st.ins, None, st.out))
        return plan

    def __call__(self, *arrays) -> list:
        vals: list = [None] * self.n
        for s, a in zip(self.prog.inputs, arrays):
            vals[s] = a
        for s, t in self._leaves:
            vals[s] = t._data
        for f, ins, _, out in self._plan:
            vals[out] = f(*[vals[i] for i in ins])
        return [vals[s] if s >= 0 else None for s in self.prog.outputs]


def same(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    """Equal within ``rtol`` (NaNs in the same places)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=0, equal_nan=True))
