"""Readable formulas for a recorded program: matrix-level, one line per shared intermediate.

Every op prints as ``name(args)`` except the arithmetic and linear-algebra spellings people write
(``a + b``, ``a @ Wᵀ``, ``-a``, ``a**2``); elementwise partials of the backward print as the
registry's SymPy derivative applied to the argument names (``(1 - tanh(h1)**2)*g``). Nothing here
states an op's meaning: names come from the registry, derivatives from its formulas.
"""
from __future__ import annotations

import numpy as np
import sympy

from .ir import Program

_INFIX = {"add": " + ", "sub": " - ", "mul": "*", "div": "/", "matmul": " @ "}
_SILENT = {"expand", "reshape", "to_dtype", "clone"}   # shape-only: show the argument


def _atomic(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch in " +-*/@":
            return False
    return True


def _paren(text: str) -> str:
    return text if _atomic(text) else f"({text})"


class Formulas:
    """``Formulas(prog, output_names)``: ``lines()`` of ``name = formula``."""

    def __init__(self, prog: Program, output_names: list[str]) -> None:
        self.prog = prog
        self.output_names = output_names
        self.producer = {st.out: st for st in prog.steps}
        # how often each value is referenced by the formulas (a partial whose derivative is a
        # number references only its upstream gradient)
        uses: dict[int, int] = {}
        for st in prog.steps:
            ins = st.ins
            if st.partial is not None and st.number_partial() is not None:
                ins = ins[-1:]
            for i in ins:
                uses[i] = uses.get(i, 0) + 1
        self.uses = uses
        self.text: dict[int, str] = {}
        self.lines_: list[str] = []
        self.counter = 0

    def _leaf(self, s: int) -> str:
        slot = self.prog.slots[s]
        if slot.name:
            return slot.name
        for i, t in self.prog.leaves:
            if i == s and t._data.size == 1:
                v = float(np.asarray(t._data).reshape(-1)[0])
                return repr(int(v)) if v.is_integer() else f"{v:.6g}"
        return f"c{s}"

    def expr(self, s: int) -> str:
        if s < 0:
            return "0"
        hit = self.text.get(s)
        if hit is not None:
            return hit
        st = self.producer.get(s)
        if st is None:
            text = self._leaf(s)
        else:
            text = self._step(st)
            if self.uses.get(s, 0) > 1 and not _atomic(text) and s not in self.prog.outputs:
                self.counter += 1
                name = f"h{self.counter}"
                self.lines_.append(f"{name} = {text}")
                text = name
        self.text[s] = text
        return text

    def _step(self, st) -> str:
        args = [self.expr(i) for i in st.ins]
        name = st.op.name
        if st.partial is not None:
            return self._partial(st, args)
        if name in _SILENT:
            return args[0]
        if name == "sum_to_size":
            return f"Σ({args[0]})"     # summed over the broadcast (batch) dimensions
        if name in _INFIX and len(args) == 2:
            alpha = st.params.get("alpha", 1)
            b = args[1] if alpha in (1, None) else f"{alpha}*{_paren(args[1])}"
            return f"{_paren(args[0])}{_INFIX[name]}{_paren(b)}"
        if name == "neg":
            return f"-{_paren(args[0])}"
        if name == "permute" and len(st.params.get("dims", ())) == 2:
            a = args[0]
            return a[:-1] if a.endswith("ᵀ") and _atomic(a) else f"{_paren(a)}ᵀ"
        if name in ("pow_scalar", "pow") and len(args) == 1:
            return f"{_paren(args[0])}**{st.params.get('exponent', st.params.get('b'))}"
        ps = [f"{k}={v!r}" for k, v in st.params.items()
              if k != "kind" and v is not None and v is not False and v != "mean"
              and not isinstance(v, np.ndarray)]
        return f"{name}({', '.join(args + ps)})"

    def _partial(self, st, args) -> str:
        op = st.op
        syms, psyms, ders = op.derivative_exprs(st.params)
        env = {a: sympy.Symbol(_paren(t)) for a, t in zip(syms, args[:-1])}
        env.update({s: st.params[k] for k, s in psyms.items() if s is not None})
        d = ders[st.partial].subs(env)
        g = args[-1]
        if d == 1:
            text = g
        elif d == -1:
            text = f"-{_paren(g)}"
        else:
            text = f"{_paren(str(d))}*{_paren(g)}"
        if tuple(self.prog.slots[st.ins[-1]].shape) != tuple(st.shape):
            text = f"Σ({text})"      # summed to the input's shape (over broadcast dimensions)
        return text

    def lines(self) -> list[str]:
        outs = []
        for name, s in zip(self.output_names, self.prog.outputs):
            outs.append(f"{name} = {self.expr(s)}")
        return self.lines_ + outs


def formulas(prog: Program, output_names: list[str]) -> list[str]:
    """The program as ``name = formula`` lines (shared intermediates first)."""
    return Formulas(prog, output_names).lines()
