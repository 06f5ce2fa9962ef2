"""Recording a tensor program from ONE eager run of the user's code (forward and backward).

The recorder sits behind :mod:`symad.autograd.recording`: every registered op reports its inputs
and result, every elementwise VJP of the backward sweep reports its partial. Values that leave the
op world (``item()``, ``numpy()``, in-place writes, random draws, argmax indices used later) make
the recording *impure*: such a program would not reproduce eager on the next call, so the caller
falls back (see :class:`NotReplayable`).
"""
from __future__ import annotations

import numpy as np

from ..autograd.graph import run_backward
from ..autograd.recording import recording
from ..tensor import Tensor
from .effects import Watch
from .ir import Program, Step


class NotReplayable(Exception):
    """The recorded run depends on something a program cannot replay (the message says what).

    ``out``: the eager result of the recording run when its graph is still intact (the caller
    can hand it to the user instead of running the function again), else None; ``grads``: the
    gradients the recording run computed (when it got that far), else None."""

    def __init__(self, msg: str, out=None, grads=None) -> None:
        super().__init__(msg)
        self.out = out
        self.grads = grads


class Recorder:
    """Maps tensors (by identity) to program slots while the user's code runs eagerly."""

    def __init__(self, names: dict[int, str] | None = None) -> None:
        self.prog = Program()
        self._slot: dict[int, int] = {}
        self._keep: list = []              # keeps recorded tensors alive: ids stay unique
        self._opaque: set[int] = set()
        self._names = names or {}
        self.impure: str | None = None
        # index arrays in op parameters: those of the forward (the user's constant indices) are
        # static; a gradient rule that builds NEW ones computed them from values (a baked key)
        self.phase = "forward"
        self._static: set[int] = set()

    # -- slots --------------------------------------------------------------------------------
    def bind_input(self, t: Tensor, name: str) -> int:
        s = self.prog.new_slot(t._data.shape, t._dtype, "input", name)
        self.prog.inputs.append(s)
        self._map(t, s)
        return s

    def _map(self, t, s: int) -> None:
        self._slot[id(t)] = s
        self._keep.append(t)

    def slot(self, t: Tensor) -> int:
        s = self._slot.get(id(t))
        if s is None:
            if id(t) in self._opaque:
                self.impure = "a value computed outside registered ops (argmax indices, ...)"
            s = self.prog.new_slot(t._data.shape, t._dtype, "leaf", self._names.get(id(t), ""))
            self.prog.leaves.append((s, t))
            self._map(t, s)
        return s

    # -- reports from symad.ops.dispatch / tensor ----------------------------------------------
    def op(self, op, tensors, params, result) -> None:
        if result._data.dtype == object:
            self.impure = "symbolic values"
            return
        self._check_params(op, params)
        ins = tuple(self.slot(t) for t in tensors)
        s = self.prog.new_slot(result._data.shape, result._dtype, "step")
        self.prog.steps.append(Step(op, ins, dict(params), s, result._dtype,
                                    shape=tuple(result._data.shape)))
        self._map(result, s)

    def _check_params(self, op, params) -> None:
        for a in _arrays_in(params.values()):
            if self.phase == "forward":
                self._static.add(id(a))
                self._keep.append(a)
            elif id(a) not in self._static and a.size > 1 and a.dtype.kind in "iub":
                self.impure = self.impure or (
                    f"a gradient rule ({op.name}) that computes index arrays from values")

    def partial(self, op, i, params, inputs, g, gi) -> None:
        ins = tuple(self.slot(t) for t in inputs) + (self.slot(g),)
        s = self.prog.new_slot(gi._data.shape, gi._dtype, "step")
        self.prog.steps.append(Step(op, ins, dict(params), s, gi._dtype, partial=i,
                                    shape=tuple(gi._data.shape)))
        self._map(gi, s)

    def alias(self, dst, src) -> None:
        self._map(dst, self.slot(src))

    def opaque(self, t) -> None:
        self._opaque.add(id(t))
        self._keep.append(t)

    def escape(self, t, what: str, write: bool = False) -> None:
        # a write to any tensor, a read of a recorded value, or a draw (t is None) escapes
        if t is None or write or id(t) in self._slot:
            self.impure = self.impure or what


def capture(fn, args: tuple, *, wrt, names: dict[int, str] | None = None,
            arg_names: list[str] | None = None, seed_input: bool = False):
    """Run ``fn(*args)`` once, eagerly, and record it with the gradients of its (single tensor)
    output with respect to ``wrt``: ``(program, eager output, eager gradients, wrt)``.

    ``wrt``: a list of tensors, or ``"auto"``: every tensor argument that requires grad, then
    every pre-existing leaf that requires grad (parameters), in order of first use. Program inputs
    are the tensor ``args`` (and, with ``seed_input``, the upstream gradient of the output as a
    last input, named ``grad_out``); outputs are ``[out] + [d out / d w for w in wrt]`` (slot -1
    for a ``w`` the output does not depend on). The eager values are this call's results."""
    rec = Recorder(names)
    arg_names = arg_names or [f"x{i}" for i in range(len(args))]
    for a, nm in zip(args, arg_names):
        if isinstance(a, Tensor):
            rec.bind_input(a, nm)
    with recording(rec):
        with Watch(fn, show=True) as watch:      # this run is the user's real call
            out = fn(*args)
        effect = watch.found()
        if effect is not None:
            rec.impure = rec.impure or f"Python side effects ({effect})"
        if not isinstance(out, Tensor):
            raise NotReplayable(f"the function returned {type(out).__name__}, not one tensor",
                                out)
        if not out.dtype.is_floating_point:
            raise NotReplayable(f"the output has dtype {out.dtype}, not a floating point type",
                                out)
        if rec.impure:
            raise NotReplayable(_impure(rec), out)
        if isinstance(wrt, str):
            wrt = [a for a in args if isinstance(a, Tensor) and a.requires_grad] + [
                t for _, t in rec.prog.leaves if t.requires_grad and t.grad_fn is None]
        grads: list = [None] * len(wrt)
        rec.phase = "backward"
        if wrt and out.requires_grad:
            seed = Tensor._wrap(np.ones(out._data.shape, dtype=out._dtype.np), out._dtype)
            if seed_input:
                rec.bind_input(seed, "grad_out")
            grads = list(run_backward([out], [seed], retain_graph=False, create_graph=False,
                                      inputs=list(wrt), accumulate=False, allow_unused=True))
    if rec.impure:
        raise NotReplayable(_impure(rec), out, grads)
    prog = rec.prog
    # -1: an output that is None (a ``w`` the output does not depend on)
    prog.outputs = [rec.slot(out)] + [rec.slot(g) if g is not None else -1 for g in grads]
    prog.prune()
    return prog, out, grads, wrt


def _arrays_in(values):
    for v in values:
        if isinstance(v, np.ndarray):
            yield v
        elif isinstance(v, (tuple, list)):
            yield from _arrays_in(v)


def _impure(rec: Recorder) -> str:
    return f"the function uses {rec.impure}, which a recorded program cannot replay"
