"""``symad.explain``: the exact derivative formulas behind an eager computation.

After ``loss = 2 * w ** 2`` (``w = 10``), ``symad.explain(loss)`` prints
``d loss/d w = 4*w = 40.0``: the recorded graph (``loss.grad_fn`` and its ``next_functions``) is
re-run symbolically with every leaf that requires grad replaced by symbols, and the derivative
comes from reverse mode over the resulting SymPy DAG. Names come from ``tensor._name`` when set,
else from the caller's variables (``w``, ``model.0.weight``), else ``x0, x1, ...``.
Simplification is for display only, and skipped for large expressions.

>>> import symad
>>> w = symad.tensor(10.0, requires_grad=True)
>>> loss = 2 * w ** 2
>>> print(symad.explain(loss))
loss = 2*w**2 = 200.0
d loss/d w = 4*w = 40.0
"""
from __future__ import annotations

import html
import sys
from dataclasses import dataclass

import numpy as np
import sympy

from .reverse import display_simplify, exactify_floats, reverse_gradient
from .symbols import symbol_array
from .trace import evaluate_numeric, to_sympy

__all__ = ["explain", "Explanation", "ExplanationEntry"]

_MAX_ELEMENTS_SHOWN = 16


@dataclass
class ExplanationEntry:
    """One leaf: its name, symbols, exact derivative, display form and value."""
    name: str
    symbols: np.ndarray
    derivative: np.ndarray  # exact, object array shaped like the leaf
    display: np.ndarray     # simplified for display (size-capped)
    value: np.ndarray       # float64, shaped like the leaf

    @property
    def exact(self):
        return to_sympy(self.derivative)


def _fmt(v: float) -> str:
    r = repr(float(v))
    return r if len(r) <= 12 else f"{float(v):.10g}"


class Explanation:
    """The result of :func:`explain`; ``str()`` for terminals, LaTeX/HTML for Jupyter."""

    def __init__(self, out_name, out_expr, out_value, entries) -> None:
        self.output_name = out_name
        self.output = out_expr
        self.value = out_value
        self.entries: list[ExplanationEntry] = entries

    def __getitem__(self, name: str) -> ExplanationEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    def _rows(self):
        for e in self.entries:
            n = e.symbols.size
            if e.symbols.ndim == 0:
                yield e.name, e.symbols[()], e.display[()], e.value[()]
                continue
            for k, idx in enumerate(np.ndindex(*e.symbols.shape)):
                if k >= _MAX_ELEMENTS_SHOWN:
                    yield e.name, None, f"... ({n - k} more elements)", None
                    break
                yield e.name, e.symbols[idx], e.display[idx], e.value[idx]

    def __str__(self) -> str:
        out = self.output_name
        lines = [f"{out} = {display_simplify(self.output)} = {_fmt(self.value)}"] \
            if np.ndim(self.value) == 0 else [f"{out} = {self.output}"]
        for name, sym, d, v in self._rows():
            if sym is None:
                lines.append(f"d {out}/d {name}: {d}")
            else:
                lines.append(f"d {out}/d {sym} = {d} = {_fmt(v)}")
        return "\n".join(lines)

    __repr__ = __str__

    def latex(self) -> str:
        out = self.output_name
        rows = []
        for name, sym, d, v in self._rows():
            if sym is None:
                rows.append(r"&\text{%s}" % d)
            else:
                rows.append(r"\frac{\partial\, \mathrm{%s}}{\partial %s} &= %s = %s"
                            % (out, sympy.latex(sym), sympy.latex(d), _fmt(v)))
        return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td>d {html.escape(self.output_name)}/d {html.escape(str(sym))}</td>"
            f"<td><code>{html.escape(str(d))}</code></td><td>{_fmt(v)}</td></tr>"
            if sym is not None else f"<tr><td colspan=3>{html.escape(str(d))}</td></tr>"
            for _, sym, d, v in self._rows())
        return ("<table><tr><th>derivative</th><th>exact formula</th><th>value</th></tr>"
                f"{cells}</table>")


def _frame_names(frame) -> dict[int, str]:
    """id(tensor) -> variable name, from a frame's locals and globals (modules expanded)."""
    names: dict[int, str] = {}
    if frame is None:
        return names
    for scope in (frame.f_globals, frame.f_locals):
        for var, obj in list(scope.items()):
            if var.startswith("_"):
                continue
            if hasattr(obj, "named_parameters") and callable(obj.named_parameters) \
                    and not isinstance(obj, type):
                try:
                    for pname, p in obj.named_parameters():
                        names.setdefault(id(p), f"{var}.{pname}")
                except TypeError:
                    pass
            elif type(obj).__name__ in ("Tensor", "Parameter") and hasattr(obj, "_data"):
                names[id(obj)] = var  # locals override globals
    return names


def explain(t, name: str | None = None, *, simplify: bool = True, _frame=None) -> Explanation:
    """Explain a scalar tensor's gradient: for each leaf that requires grad, the exact formula
    of ``d t / d leaf`` and its value. Call it before ``backward()`` (which frees the graph) or
    after ``backward(retain_graph=True)``."""
    from ..tensor import Tensor
    if not isinstance(t, Tensor):
        raise TypeError(f"explain expects a symad Tensor, got {type(t).__name__}")
    if t.numel() != 1:
        raise ValueError(f"explain needs a scalar (one-element) tensor; got shape "
                         f"{list(t.shape)}")
    frame = _frame if _frame is not None else sys._getframe(1)
    names = _frame_names(frame)
    out_name = name or getattr(t, "_name", None) or names.get(id(t)) or "out"

    leaves: dict[int, tuple] = {}  # id(leaf) -> (leaf, symbols)

    def leaf_symbols(leaf):
        hit = leaves.get(id(leaf))
        if hit is None:
            nm = getattr(leaf, "_name", None) or names.get(id(leaf)) or f"x{len(leaves)}"
            hit = (leaf, symbol_array(nm, leaf.shape), nm)
            leaves[id(leaf)] = hit
        return hit[1]

    if t.grad_fn is None:
        if not t.requires_grad:
            raise ValueError("explain: the tensor does not require grad (no graph to explain)")
        expr = leaf_symbols(t).reshape(-1)[0]
    else:
        expr = _Rebuilder(leaf_symbols).value(t.grad_fn, t._output_nr)
        expr = exactify_floats(sympy.sympify(np.asarray(expr, dtype=object).reshape(-1)[0]))
    entries = []
    flat = [s for _, syms, _ in leaves.values() for s in syms.reshape(-1)]
    grads = reverse_gradient(expr, flat)
    env = {}
    for leaf, syms, _ in leaves.values():
        vals = np.asarray(leaf._data, dtype=np.float64)
        env.update({s: float(v) for s, v in zip(syms.reshape(-1), vals.reshape(-1))})
    k = 0
    for leaf, syms, nm in leaves.values():
        n = syms.size
        d = np.empty(n, dtype=object)
        d[:] = grads[k:k + n]
        k += n
        d = d.reshape(syms.shape)
        disp = np.vectorize(lambda e: display_simplify(e) if simplify else e, otypes=[object])(d)
        value = np.asarray(evaluate_numeric(d, env), dtype=np.float64).reshape(syms.shape)
        entries.append(ExplanationEntry(nm, syms, d, disp, value))
    out_value = float(np.asarray(t._data, dtype=np.float64).reshape(-1)[0])
    return Explanation(out_name, expr, out_value, entries)


class _Rebuilder:
    """Re-evaluates grad_fn nodes symbolically (memoized per node)."""

    def __init__(self, leaf_symbols) -> None:
        self.leaf_symbols = leaf_symbols
        self.memo: dict = {}

    def value(self, node, output_nr: int = 0):
        key = id(node)
        if key not in self.memo:
            self.memo[key] = (node, self._compute(node))
        outs = self.memo[key][1]
        return outs[output_nr]

    def _edge_value(self, edge, tensor):
        fn, nr = edge if edge is not None else (None, 0)
        if fn is None:
            if tensor is None:
                raise ValueError("explain: a constant input of a custom Function was not saved; "
                                 "its value is unknown")
            return np.asarray(tensor._data, dtype=object)
        if type(fn).__name__ == "AccumulateGrad":
            return self.leaf_symbols(fn.variable)
        return self.value(fn, nr)

    def _compute(self, node) -> list:
        from ..autograd.function import BackwardFunction, FunctionCtx
        from ..tensor import Tensor
        if isinstance(node, BackwardFunction):
            return self._compute_function(node)
        ctx = getattr(node, "ctx", None)
        op = getattr(node, "op", None)
        if op is None:
            raise NotImplementedError(f"explain: cannot re-evaluate graph node "
                                      f"{type(node).__name__}")
        if ctx is not None:
            params, inputs = ctx.params, ctx.inputs
        elif getattr(node, "_kept", None) is not None:  # freed by backward(): structure kept
            params, inputs = node._kept
        else:
            raise RuntimeError("explain: the graph was freed; call explain() before backward(), "
                               "or use backward(retain_graph=True)")
        arrays = [self._edge_value(e, t) for e, t in zip(node.next_functions, inputs)]
        out = op.symbolic_forward(*[np.asarray(a, dtype=object) for a in arrays], **params)
        _ = (FunctionCtx, Tensor)
        return [np.asarray(out, dtype=object)]

    def _compute_function(self, node) -> list:
        from .. import float64
        from ..autograd import no_grad
        from ..autograd.function import FunctionCtx
        from ..tensor import Tensor
        saved = list(getattr(node, "_to_save", ()) or ())
        metas = node._input_meta
        args = []
        for edge, meta in zip(node.next_functions, metas):
            fn = edge[0] if edge is not None else None
            if fn is None:
                # a constant input: find it among the saved tensors by shape
                match = next((s for s in saved if s is not None and meta is not None
                              and tuple(s.shape) == meta.shape and s.grad_fn is None
                              and not s.requires_grad), None)
                if match is None:
                    raise ValueError(
                        f"explain: {type(node).__name__} has a constant input that its forward "
                        "did not save_for_backward; explain cannot recover its value")
                saved.remove(match)
                args.append(match)
            else:
                args.append(Tensor._wrap(np.asarray(self._edge_value(edge, None), dtype=object),
                                         float64))
        with no_grad():
            out = node._forward_cls.forward(FunctionCtx(), *args)
        outs = out if isinstance(out, tuple) else (out,)
        return [np.asarray(o._data if isinstance(o, Tensor) else o, dtype=object) for o in outs]
