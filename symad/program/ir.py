"""The tensor program: registry ops on shaped arrays, recorded once, replayed many times.

A :class:`Program` is a straight-line list of :class:`Step` s over numbered slots. A slot holds one
array: a call argument (``inputs``), a tensor that existed before the recording and is read afresh
at every run (``leaves``: parameters, buffers, captured constants — named by module path where
known), or the result of a step. A step is either a registered op's forward, or the elementwise
partial ``g * d op/d input_i`` summed to the input's shape (the VJP that eager backward runs for an
op declared by a SymPy formula). Backward steps are recorded from the registry's own VJPs, so the
program states no layer, loss or derivative of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .. import _dtype as D
from ..ops.registry import Op


@dataclass(eq=False)
class Step:
    op: Op
    ins: tuple[int, ...]
    params: dict
    out: int
    dtype: D.dtype
    partial: int | None = None          # None: forward of ``op``; i: d op / d input i (times g)
    shape: tuple = ()                   # the result's shape

    @property
    def elementwise(self) -> bool:
        return self.op.formula is not None

    def number_partial(self) -> float | None:
        """For a partial step: ``d op / d input_i`` when the registry's SymPy partial is a
        number (``d(a + b)/da = 1``), else None."""
        params = self.params
        if any(v is not None and type(v) not in (int, float) for v in params.values()):
            return None
        _, psyms, ders = self.op.derivative_exprs(params)
        d = ders[self.partial].subs({s: params[k] for k, s in psyms.items() if s is not None})
        return float(d) if d.is_Number else None

    def label(self) -> str:
        if self.partial is None:
            return self.op.name
        return f"d{self.op.name}/d{self.partial}"


@dataclass(eq=False)
class Slot:
    shape: tuple
    dtype: D.dtype
    kind: str                 # "input" | "leaf" | "step"
    name: str = ""


@dataclass(eq=False)
class Program:
    slots: list[Slot] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)        # slot of each call argument
    leaves: list[tuple[int, object]] = field(default_factory=list)   # (slot, tensor read live)
    steps: list[Step] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def new_slot(self, shape, dtype, kind, name="") -> int:
        self.slots.append(Slot(tuple(shape), dtype, kind, name))
        return len(self.slots) - 1

    def prune(self) -> Program:
        """Drop steps no output depends on (dead code), keeping the order of the rest."""
        live = {s for s in self.outputs if s >= 0}
        kept = []
        for st in reversed(self.steps):
            if st.out in live:
                kept.append(st)
                live.update(st.ins)
        self.steps = kept[::-1]
        self.leaves = [(s, t) for s, t in self.leaves if s in live]
        return self

    def __len__(self) -> int:
        return len(self.steps)

    def summary(self) -> str:
        """One line per step: ``%5 = matmul(%1, l1.weight)``."""
        def nm(i):
            s = self.slots[i]
            return s.name or f"%{i}"
        lines = []
        for i in self.inputs:
            s = self.slots[i]
            lines.append(f"input {nm(i)}: {s.dtype.name}{list(s.shape)}")
        for i, _ in self.leaves:
            s = self.slots[i]
            lines.append(f"leaf  {nm(i)}: {s.dtype.name}{list(s.shape)}")
        for st in self.steps:
            args = ", ".join(nm(i) for i in st.ins)
            ps = {k: v for k, v in st.params.items() if k != "kind"}
            extra = (" " + " ".join(f"{k}={v!r}" for k, v in ps.items())) if ps else ""
            lines.append(f"%{st.out} = {st.label()}({args}){extra}  # {list(st.shape)}")
        lines.append("outputs: " + ", ".join(nm(i) if i >= 0 else "None" for i in self.outputs))
        return "\n".join(lines)
