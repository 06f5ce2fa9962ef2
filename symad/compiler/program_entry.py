"""The tensor-program path of ``symad.compile``: a signature whose parameters are too many to
scalarize, or whose data the per-sample kernel cannot take (class indices, ...), runs as a
recorded program (:mod:`symad.program`) instead of falling back to eager.

The first call of each argument shape IS the recording (the user's function runs once, eagerly,
as it would without compile); later calls replay it. The output's ``grad_fn`` is one compiled
node whose backward replays the recorded VJP steps with the upstream gradient — the forward is
not recomputed — and accumulates into ``.grad`` like eager.
"""
from __future__ import annotations

import numpy as np

from ..autograd.grad_mode import is_grad_enabled
from ..autograd.graph import _edge_of
from ..ops.functional import has_ignored_targets
from ..program import NotReplayable, Runner, capture
from ..program.run import same
from ..tensor import Tensor
from .native_program import NativeEntry, native_entry


class ProgramEntry:
    """One compiled signature (all batch sizes): a recorded program per argument shape."""

    kind = "program"

    def __init__(self, fn, names: dict[int, str], node_cls) -> None:
        self.fn = fn
        self.names = names
        self.node_cls = node_cls
        self.shapes: dict = {}           # shape key -> (Runner, wrt refs, output dtype)
        self._ignoring: set = set()      # keys recorded from a call holding ignored targets

    def __call__(self, args):
        key = tuple(a._data.shape if isinstance(a, Tensor) else None for a in args)
        hit = self.shapes.get(key)
        if hit is None:
            return self._record(key, args)
        run, refs, dt = hit
        arrays = [a._data for a in args if isinstance(a, Tensor)]
        try:
            if type(run) is NativeEntry:
                value, state = run.forward(*arrays)
                return self._attach(Tensor._wrap(value, dt), run, refs, args, state)
            vals = run.forward(*arrays)
        except IndexError:
            # a target equal to ignore_index (-100) in a program recorded without one (checked
            # before native code runs): this call is recorded again, its program skips them
            if not has_ignored_targets(arrays) or key in self._ignoring:
                raise
            return self._record(key, args)
        out = Tensor._wrap(vals[run.prog.outputs[0]], dt)
        return self._attach(out, run, refs, args, vals)

    def _record(self, key, args):
        if has_ignored_targets([a._data for a in args if isinstance(a, Tensor)]):
            self._ignoring.add(key)
        want = is_grad_enabled()
        prog, out, _, wrt = capture(self.fn, args, wrt="auto" if want else [],
                                    names=self.names, seed_input=True)
        seed = prog.inputs[-1] if want and len(prog.inputs) > sum(
            isinstance(a, Tensor) for a in args) else None
        run = Runner(prog, seed)
        arrays = [a._data for a in args if isinstance(a, Tensor)]
        vals = run.forward(*arrays)
        if not same(vals[prog.outputs[0]], out._data, 1e-12):
            raise NotReplayable("the replayed program disagrees with the eager run")
        pos = {id(a): j for j, a in enumerate(args) if isinstance(a, Tensor)}
        refs = [("arg", pos[id(t)]) if id(t) in pos else ("obj", t) for t in wrt]
        fast = None
        if seed is not None:
            ones = np.ones(prog.slots[seed].shape, prog.slots[seed].dtype.np)
            fast = native_entry(prog, seed, arrays, vals[prog.outputs[0]],
                                run.backward(vals, ones)[1:])
        self.shapes[key] = (fast or run, refs, out._dtype)
        res = Tensor._wrap(out._data, out._dtype)
        return self._attach(res, run, refs, args, vals)

    def _attach(self, out, run, refs, args, vals):
        if (type(run) is not NativeEntry and run._seed is None) or not is_grad_enabled():
            return out
        tensors = [args[r] if kind == "arg" else r for kind, r in refs]
        if not any(t.requires_grad for t in tensors):
            return out
        edges = [_edge_of(t) for t in tensors]
        out._grad_fn = self.node_cls(tuple(e if e is not None else (None, 0) for e in edges),
                                     _Backward(run, tensors), vals)
        out._requires_grad = True
        return out


class _Backward:
    """What the compiled node calls: the recorded VJP steps on the saved forward values."""

    def __init__(self, run: Runner, tensors: list) -> None:
        self.run = run
        self.tensors = tensors

    def backward(self, vals, g):
        run = self.run
        seed = run.seed if type(run) is NativeEntry else run._seed
        slot = run.prog.slots[seed]
        arr = np.broadcast_to(np.asarray(g._data, dtype=slot.dtype.np), slot.shape)
        if type(run) is NativeEntry:
            grads = run.backward(vals, arr)
        else:
            grads = run.backward(vals, arr)[1:]
        return tuple(None if gi is None else Tensor._wrap(np.asarray(gi), t._dtype)
                     for gi, t in zip(grads, self.tensors))
