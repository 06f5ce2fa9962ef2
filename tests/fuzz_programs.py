"""Random programs over symad's registry ops for the differential fuzzer (tests/test_fuzz.py).

A program is a small expression tree over three inputs — ``w`` (a parameter of shape (k,)),
``s`` (a 0-d parameter) and ``x`` (batched data, shape (B, k)) — using broadcasting, reductions,
matmul, indexing, where/maximum/minimum, softmax and the elementwise ops, reduced to a scalar
loss. Leaf values are drawn from a small set including 0 and repeated values, so kinks (relu at 0,
abs at 0, maximum ties, clamp edges) are hit exactly. The tree is rendered as Python source over
``symad`` so that eager, trace, compile and value_and_grad all run the very same function.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

# shapes: "Bk" (B, k), "B1" (B, 1), "k" (k,), "s" ()
_JOIN = {frozenset(["Bk"]): "Bk", frozenset(["B1"]): "B1", frozenset(["k"]): "k",
         frozenset(["s"]): "s", frozenset(["Bk", "B1"]): "Bk", frozenset(["Bk", "k"]): "Bk",
         frozenset(["Bk", "s"]): "Bk", frozenset(["B1", "k"]): "Bk", frozenset(["B1", "s"]): "B1",
         frozenset(["k", "s"]): "k"}

UNARY = {
    "neg": "(-{a})", "tanh": "symad.tanh({a})", "sigmoid": "symad.sigmoid({a})",
    "sin": "symad.sin({a})", "cos": "symad.cos({a})", "atan": "symad.atan({a})",
    "relu": "symad.relu({a})", "abs": "symad.abs({a})", "exp_tanh": "symad.exp(symad.tanh({a}))",
    "log": "symad.log({a} * {a} + 0.5)", "sqrt": "symad.sqrt({a} * {a} + 0.25)",
    "log1p": "symad.log1p({a} * {a})", "expm1": "symad.expm1(symad.tanh({a}))",
    "square": "({a} ** 2)", "cube": "({a} ** 3)", "clamp": "symad.clamp({a}, -0.5, 0.5)",
    "clamp_min": "symad.clamp({a}, min=0.0)", "sign_mul": "(symad.sign({a}) * {a})",
    "reciprocal": "symad.reciprocal({a} * {a} + 1)",
    "clamp_max": "symad.clamp_max({a}, 0.25)",
    "hardtanh": "symad.nn.functional.hardtanh({a}, -0.5, 0.75)",
    "relu6": "symad.nn.functional.relu6({a} * 8)",
    # (not hardsigmoid: PyTorch's backward uses 1/6 rounded to float32 even in float64, which
    # the recorded differential test would report; tests/test_pytorch_edges.py lists it)
    "hardswish": "symad.nn.functional.hardswish({a} * 4)",
    "threshold": "symad.nn.functional.threshold({a}, 0.25, -0.5)",
}
BINARY = {
    "add": "({a} + {b})", "sub": "({a} - {b})", "mul": "({a} * {b})",
    "div": "({a} / ({b} * {b} + 0.5))", "maximum": "symad.maximum({a}, {b})",
    "minimum": "symad.minimum({a}, {b})", "where": "symad.where({a} > {b}, {a}, {b} * 0.5)",
    "pow": "(({a} * {a} + 0.5) ** {b})", "rsub": "(1.5 - {a} * {b})",
}
# reductions and structural ops on a (B, k)-shaped operand: (template, result shape)
STRUCT_BK = {
    "sum_last": ("{a}.sum(dim=-1, keepdim=True)", "B1"),
    "mean_last": ("{a}.mean(dim=-1, keepdim=True)", "B1"),
    "amax_last": ("{a}.amax(dim=-1, keepdim=True)", "B1"),
    "logsumexp": ("symad.logsumexp({a}, dim=-1, keepdim=True)", "B1"),
    "softmax": ("symad.softmax({a}, dim=-1)", "Bk"),
    "log_softmax": ("symad.log_softmax({a}, dim=-1)", "Bk"),
    "matmul": ("({a} @ M)", "Bk"),
    "index_first": ("{a}[:, :1]", "B1"),
    "index_rev": ("{a}[:, ::-1]", "Bk"),
    "mean_batch": ("{a}.mean(dim=0)", "k"),
}
STRUCT_K = {"sum_k": ("{a}.sum()", "s"), "index_k": ("{a}[-1]", "s"),
            "max_k": ("{a}.max()", "s")}


@dataclass
class Program:
    """A drawn program: ``source`` is ``lambda w, s, M, x: ...`` over ``symad``."""
    expr: str
    final: str
    k: int
    b: int
    values: dict
    kinks: bool = False  # leaf values from a small set with 0 and repeats: kinks hit exactly

    @property
    def source(self) -> str:
        return f"lambda w, s, M, x: ({self.expr}).{self.final}()"

    def function(self):
        import symad
        return eval(self.source, {"symad": symad})  # noqa: S307 - our own generated source

    def __str__(self) -> str:
        vals = {n: np.asarray(v).tolist() for n, v in self.values.items()}
        return f"{self.source}\n  at {vals}"


LEAF_VALUES = [-1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 0.25, -0.75]


def _values(draw, shape, kinks: bool, rng: np.random.Generator):
    n = int(np.prod(shape)) if shape else 1
    if kinks:
        vals = draw(st.lists(st.sampled_from(LEAF_VALUES), min_size=n, max_size=n))
    else:  # generic points: no exact zeros or ties (hypothesis's floats favour 0.0 and repeats)
        vals = rng.uniform(-1.5, 1.5, n).astype(np.float32)
    return np.asarray(vals, dtype=np.float64).reshape(shape)


@st.composite
def programs(draw, max_depth: int = 4) -> Program:
    """A random program and the point to evaluate it at."""
    k = draw(st.integers(1, 3))
    b = draw(st.integers(1, 4))
    kinks = draw(st.booleans())

    def node(depth: int) -> tuple[str, str]:
        if depth <= 0 or draw(st.integers(0, 9)) < 2:
            leaf = draw(st.sampled_from(["x", "x", "w", "s", "c"]))
            if leaf == "c":
                # a 0-d tensor of the program's dtype: ``symad.cos(0.0)`` on a bare Python float
                # would compute in the default float32 inside a float64 program (and PyTorch
                # refuses ops on Python numbers)
                c = draw(st.sampled_from([0.5, 2.0, -1.0, 0.0]))
                return f"symad.tensor({c!r}, dtype=x.dtype)", "s"
            return leaf, {"x": "Bk", "w": "k", "s": "s"}[leaf]
        kind = draw(st.sampled_from(["u", "u", "b", "b", "b", "st"]))
        if kind == "u":
            a, sh = node(depth - 1)
            return UNARY[draw(st.sampled_from(sorted(UNARY)))].format(a=a), sh
        if kind == "b":
            a, sa = node(depth - 1)
            c, sb = node(depth - 1)
            return (BINARY[draw(st.sampled_from(sorted(BINARY)))].format(a=a, b=c),
                    _JOIN[frozenset([sa, sb])])
        a, sh = node(depth - 1)
        if sh in ("B1", "s"):
            a, sh = f"({a} * x)", "Bk"  # broadcast up to (B, k) first
        if sh == "k":
            name = draw(st.sampled_from(sorted(STRUCT_K)))
            tmpl, out = STRUCT_K[name]
        else:
            name = draw(st.sampled_from(sorted(STRUCT_BK)))
            tmpl, out = STRUCT_BK[name]
        return tmpl.format(a=a), out

    expr, sh = node(draw(st.integers(1, max_depth)))
    if not re.search(r"\b[wsM]\b", expr):
        expr = f"({expr}) * s"  # the loss must depend on a parameter (and be a tensor)
    final = draw(st.sampled_from(["sum", "mean"]))
    # one stream for all leaves of a generic point: a seed per leaf repeats when hypothesis draws
    # the same integer twice (it favours repeats), and equal leaves are ties (w == x[0] made
    # max(min(x, w), x) meet PyTorch's tie convention, 0.25, where differences see 0)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    while True:
        values = {"w": _values(draw, (k,), kinks, rng), "s": _values(draw, (), kinks, rng),
                  "M": _values(draw, (k, k), kinks, rng), "x": _values(draw, (b, k), kinks, rng)}
        flat = np.concatenate([np.ravel(v) for v in values.values()])
        if kinks or np.unique(flat).size == flat.size:     # a generic point has no ties
            break
    return Program(expr, final, k, b, values, kinks)
