"""The tensor-program path of ``compile_step``: loss and gradients of any model as a recorded
program (:mod:`symad.program`), replayed per step, feeding the fused optimizer update.

The first step of each batch signature IS the recording: it runs the user's ``loss_fn(model(X),
y)`` and the registry VJPs of its backward eagerly, once, and its results are that step's results
— the user's Python never runs more often than eager would. Later steps replay the program. If the
recording cannot be replayed (random draws, ``item()`` on a traced value, in-place writes, ...),
the step keeps its eager results and the runner stays eager, with one warning.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..autograd.graph import run_backward
from ..program import NotReplayable, Runner, capture
from ..program.run import same
from ..tensor import Tensor
from .flat_update import FlatState
from .native_program import NativeProgram, describe, native


class ProgramRunner:
    """Loss + gradients by replaying recorded programs (one per batch shape)."""

    kind = "program"

    def __init__(self, model, loss_fn, optimizer, trained: list, warning_cls) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.trained = trained
        self.flat: FlatState | None = None
        self.runners: dict = {}
        self.eager_reason: str | None = None
        self._warning_cls = warning_cls
        self._names = {id(p): n for n, p in model.named_parameters()} \
            if hasattr(model, "named_parameters") else {}
        self._grad_idx: list[int] | None = None   # positions in ``trained`` that get gradients

    def prepare(self, X: np.ndarray, y: np.ndarray):
        return (X, y)

    def _loss(self, xb, yb):
        return self.loss_fn(self.model(xb), yb)

    def step(self, data, s: int, e: int) -> float:
        """One training step on rows ``s:e``: loss and gradients, then the fused update."""
        loss = self.run(data, s, e)
        self.flat.finish()
        return loss

    def run(self, data, s: int, e: int) -> float:
        """Loss and gradients (into the flat gradient buffer) on rows ``s:e``, no update."""
        X, y = data
        xb, yb = (X, y) if s == 0 and e == X.shape[0] else (X[s:e], y[s:e])
        key = (xb.shape, xb.dtype.str, yb.shape, yb.dtype.str)
        flat = self.flat
        if flat is not None:
            flat.sync()
        run = self.runners.get(key)
        if run is None or self.eager_reason is not None:
            loss, grads = self._record(key, xb, yb)
        elif type(run) is NativeProgram:
            return float(run(xb, yb, out=flat.gviews)[0])   # gradients written into G
        else:
            outs = run(xb, yb)
            loss, grads = outs[0], outs[1:]
        flat = self._flat(grads)
        for v, i in zip(flat.gviews, self._grad_idx):
            v[...] = grads[i]
        return float(loss)

    def _flat(self, grads) -> FlatState:
        if self.flat is None:
            self._grad_idx = [i for i, g in enumerate(grads) if g is not None]
            self.flat = FlatState(self.optimizer, [self.trained[i] for i in self._grad_idx])
        return self.flat

    def _record(self, key, xb, yb):
        """This step, eagerly; recorded into a program for the next steps of this shape."""
        args = (Tensor._wrap(xb), Tensor._wrap(yb))
        if self.eager_reason is None:
            try:
                prog, out, grads, _ = capture(self._loss, args, wrt=self.trained,
                                           names=self._names, arg_names=["X", "y"])
            except NotReplayable as e:
                self.eager_reason = str(e)
                warnings.warn(f"symad.compile_step: running eagerly: {e}", self._warning_cls,
                              stacklevel=5)
            else:
                _check_scalar(out)
                run = Runner(prog)
                outs = run(xb, yb)
                vals = [out._data] + [None if g is None else g._data for g in grads]
                if all((a is None) == (b is None) and (a is None or same(a, b, 1e-12))
                       for a, b in zip(outs, vals)):
                    flat = self._flat(vals[1:])
                    self.runners[key] = native(
                        prog, (xb, yb), vals, out=flat.gviews,
                        copy_outputs=tuple(1 + i for i in self._grad_idx)) or run
                return out._data, vals[1:]
        out = self._loss(*args)
        _check_scalar(out)
        grads = run_backward([out], [Tensor._wrap(np.ones((), out._dtype.np), out._dtype)],
                             retain_graph=False, create_graph=False, inputs=list(self.trained),
                             accumulate=False, allow_unused=True)
        return out._data, [None if g is None else g._data for g in grads]

    @property
    def native_calls(self) -> str:
        if self.eager_reason is not None:
            return f"eager ({self.eager_reason})"
        return "; ".join(describe(r) for r in self.runners.values()) or "tensor program"


def _check_scalar(out) -> None:
    if out._data.ndim != 0:
        raise ValueError(f"compile_step: the loss must be a scalar, got shape "
                         f"{tuple(out.shape)} (use reduction='mean' or 'sum')")
