"""``symad.trace`` at real size: the tensor program of a function, shown as matrix formulas.

Element-level SymPy (one symbol per tensor element) is exact but grows with every element; past
``ELEMENT_LIMIT`` symbolic elements :func:`symad.trace` records the function's tensor program
instead (:mod:`symad.program`: one eager run, registry ops on whole arrays, the registry VJPs of
the backward) — its size does not depend on the batch. ``tr.elements()`` still gives the
element-level :class:`~symad.symbolic.trace.Trace` on request.
"""
from __future__ import annotations

import html

import numpy as np

from ..program import Runner, capture
from ..program.display import formulas

#: Above this many symbolic elements (float inputs + module parameters), ``symad.trace`` records
#: the tensor program instead of element-level SymPy.
ELEMENT_LIMIT = 256


class ProgramTrace:
    """The recorded program of ``fn`` at the example inputs' shapes.

    ``program``: the :class:`~symad.program.Program` (forward + gradient steps);
    ``formulas()``: its ``name = formula`` lines; ``gradient()``: ``{input name: formula}``;
    ``evaluate(*inputs)``: ``[value, *gradients]`` as numpy arrays at new inputs of the same
    shapes; ``elements()``: the element-level :class:`Trace` (slow for large tensors)."""

    def __init__(self, fn, examples, args, arg_names, wrt, wrt_names) -> None:
        self._fn, self._examples = fn, examples
        self.name = getattr(fn, "__name__", type(fn).__name__)
        names = {id(t): n for t, n in zip(wrt, wrt_names)}
        prog, out, grads, _ = capture(fn, tuple(args), wrt=wrt, names=names,
                                      arg_names=arg_names)
        self.program = prog
        self.wrt_names = list(wrt_names)
        self._arg_names = arg_names
        self._tensor_args = [i for i, a in enumerate(args) if hasattr(a, "_data")]
        self._runner = Runner(prog)
        self.value = out._data

    def __len__(self) -> int:
        return len(self.program)

    def formulas(self) -> list[str]:
        out = "loss" if self.value.ndim == 0 else "out"
        return formulas(self.program, [out] + [f"d{out}/d{n}" for n in self.wrt_names])

    def gradient(self) -> dict[str, str]:
        """``{input name: the formula of d output / d input}``."""
        lines = self.formulas()
        grads = lines[-len(self.wrt_names):] if self.wrt_names else []
        return {n: ln.split(" = ", 1)[1] for n, ln in zip(self.wrt_names, grads)}

    def evaluate(self, *inputs) -> list[np.ndarray]:
        """``[value, *gradients]`` at new tensor inputs (same shapes as the examples)."""
        arrays = [np.asarray(getattr(x, "_data", x)) for x in inputs]
        return self._runner(*arrays)

    def elements(self):
        """The element-level trace (one SymPy symbol per element)."""
        from .trace import trace
        return trace(self._fn, *self._examples, names=self._arg_names, _elements=True)

    def __str__(self) -> str:
        head = (f"{self.name}: tensor program of {len(self.program)} steps "
                f"(inputs: {', '.join(self._describe())})")
        return "\n".join([head] + ["  " + ln for ln in self.formulas()])

    __repr__ = __str__

    def _describe(self) -> list[str]:
        out = []
        for s in self.program.inputs:
            sl = self.program.slots[s]
            out.append(f"{sl.name}{list(sl.shape)}")
        return out

    def _repr_html_(self) -> str:
        rows = "".join(f"<div><code>{html.escape(ln)}</code></div>" for ln in self.formulas())
        return f"<div><b>{html.escape(self.name)}</b> — tensor program of " \
               f"{len(self.program)} steps{rows}</div>"
