"""Batched tracing: a function of a batch becomes one per-sample expression plus a reduction.

The function is traced at N = 1 and N = 2 symbolic samples. With ``q`` the N = 1 output written
in per-sample symbols, the output is

* ``"none"`` (per-sample) when row ``i`` of the N = 2 output is ``q`` of sample ``i``;
* ``"sum"`` when the N = 2 output equals ``q(s0) + q(s1)``;
* ``"mean"`` when it equals ``(q(s0) + q(s1)) / 2``;

checked at two random points in float64 (rtol 1e-9; a probabilistic identity test). Anything else
raises :class:`NotBatchSeparable`. The batch size N never enters SymPy, so the expression size
does not depend on it.

>>> import symad, numpy as np
>>> from symad.symbolic import trace_batched
>>> X, y, w = np.ones((1000, 2)), np.ones((1000, 1)), np.zeros((2, 1))
>>> bt = trace_batched(lambda w, X, y: ((X @ w - y) ** 2).mean(), w, X, y,
...                    batched=("X", "y"))
>>> bt.reduction, bt.per_sample
('mean', (X[0]*w[0,0] + X[1]*w[1,0] - y[0])**2)
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import sympy

from .reverse import expression_size, reverse_gradient
from .symbols import ElementSymbol, scalar_symbol, symbol_array
from .trace import Variable, _param_names, to_sympy, trace

__all__ = ["trace_batched", "BatchedTrace", "NotBatchSeparable"]


class NotBatchSeparable(ValueError):
    """The traced output is neither per-sample nor a sum/mean of a per-sample term."""


def _sample_symbols(name: str, n: int, rest: tuple) -> np.ndarray:
    """Symbols of n samples; sample 0 uses the per-sample symbols themselves (``X[j]``), so the
    N = 1 output *is* the per-sample term and no substitution is ever needed."""
    out = np.empty((n,) + rest, dtype=object)
    out[0] = _per_sample_symbols(name, rest)
    for k in range(1, n):
        for j in np.ndindex(*rest):
            out[(k,) + j] = ElementSymbol(name, (k,) + j)
    return out


def _per_sample_symbols(name: str, rest: tuple) -> np.ndarray:
    return symbol_array(name, rest) if rest else np.array(scalar_symbol(name), dtype=object)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and \
        bool(np.allclose(a, b, rtol=1e-9, atol=1e-12))


class BatchedTrace:
    """A per-sample expression and how the batch combines it.

    * ``per_sample``: Expr, or Matrix/ndarray for a non-scalar per-sample output, in terms of
      ``data_symbols`` (one sample) and ``param_symbols``;
    * ``reduction``: ``"none"``, ``"sum"`` or ``"mean"``;
    * ``params`` / ``data``: the :class:`~symad.symbolic.trace.Variable` lists (parameters keep
      their example values; ``data`` variables have per-sample shapes);
    * ``batch_size``: N of the examples (not part of any expression).
    """

    def __init__(self, name, per_sample_array, reduction, params, data, batch_size,
                 data_examples) -> None:
        self.name = name
        self.per_sample_array = per_sample_array
        self.reduction = reduction
        self.params = params
        self.data = data
        self.batch_size = batch_size
        self._data_examples = data_examples

    @property
    def per_sample(self):
        return to_sympy(self.per_sample_array)

    @property
    def param_symbols(self) -> list:
        return [s for v in self.params for s in v.flat]

    @property
    def data_symbols(self) -> list:
        return [s for v in self.data for s in v.flat]

    def size(self) -> int:
        return expression_size(list(self.per_sample_array.reshape(-1)))

    def gradient(self) -> list:
        """Per-sample gradient of a scalar per-sample term w.r.t. ``param_symbols`` (flat);
        the batch gradient is its sum (``"sum"``) or mean (``"mean"``) over samples."""
        if self.per_sample_array.size != 1:
            raise ValueError("gradient needs a scalar per-sample term")
        return reverse_gradient(self.per_sample_array.reshape(-1)[0], self.param_symbols)

    def evaluate(self, what=None, params=None, data=None) -> np.ndarray:
        """Evaluate over the whole batch in float64: each sample, then the reduction.
        ``what`` defaults to the per-sample output; ``params``/``data`` to the examples."""
        pvals = params if params is not None else [v.example for v in self.params]
        dvals = data if data is not None else self._data_examples
        what = self.per_sample_array if what is None else what
        what_arr = np.asarray(list(what) if isinstance(what, (list, sympy.MatrixBase))
                              else what, dtype=object)
        from ..ops.registry import NUMPY_FUNCS
        args, vals = [], []
        for v, val in zip(self.params, pvals):
            arr = np.asarray(getattr(val, "_data", val), dtype=np.float64).reshape(v.shape)
            args += v.flat
            vals += [float(x) for x in arr.reshape(-1)]
        n = None
        for v, d in zip(self.data, dvals):
            arr = np.asarray(getattr(d, "_data", d), dtype=np.float64)
            n = arr.shape[0]
            cols = arr.reshape(n, -1)
            args += v.flat
            vals += [cols[:, j] for j in range(cols.shape[1])]
        flat = [sympy.sympify(e) for e in what_arr.reshape(-1)]
        f = sympy.lambdify(args, flat, modules=[NUMPY_FUNCS, "numpy"], cse=True)
        with np.errstate(all="ignore"):
            res = f(*vals)
        rows = np.stack([np.broadcast_to(np.asarray(r, dtype=np.float64), (n,)) for r in res],
                        axis=1).reshape((n,) + what_arr.shape)
        if self.reduction == "none":
            return rows
        return rows.sum(axis=0) if self.reduction == "sum" else rows.mean(axis=0)

    def __str__(self) -> str:
        red = {"none": "per sample", "sum": "summed over the batch",
               "mean": "averaged over the batch"}[self.reduction]
        return f"BatchedTrace of {self.name}: {self.per_sample}  ({red}, N={self.batch_size})"

    __repr__ = __str__


def classify_reduction(e1: np.ndarray, e2: np.ndarray, pairs, rtol: float = 1e-9):
    """How a function's output depends on the batch, from its traces at N = 1 and N = 2.

    ``e1``/``e2``: the outputs (object arrays) traced with one and two symbolic samples, where
    sample 0 uses the same symbols in both traces; ``pairs``: ``(sample-0 symbol, sample-1
    symbol)`` for every per-sample element. Returns ``(reduction, q)`` with ``q`` the per-sample
    term (an object array) and ``reduction`` in ``"none"`` (row i of e2 is q of sample i),
    ``"mean"`` or ``"sum"`` (e2 is (q(s0)+q(s1))/2 or q(s0)+q(s1)), or ``None``. Decided by float64
    evaluation at three random points with shared subexpressions evaluated once (a probabilistic
    identity test; q is never substituted symbolically)."""
    from ..autograd.grad_mode import no_grad
    from ..ops.sym2tensor import evaluate_many
    from ..tensor import Tensor
    e1 = np.asarray(e1, dtype=object)
    e2 = np.asarray(e2, dtype=object)
    s0 = [a for a, _ in pairs]
    s1 = [b for _, b in pairs]
    syms = set()
    for e in list(e1.flat) + list(e2.flat):
        syms |= sympy.sympify(e).free_symbols
    rng = np.random.default_rng(20261123)

    def draw():
        return Tensor._wrap(rng.uniform(0.3, 1.7, 3) * rng.choice([-1.0, 1.0], 3))

    shared = {s: draw() for s in syms if s not in set(s0) | set(s1)}
    a = {s: draw() for s in s0}
    b = {s: draw() for s in s0}
    env2 = dict(shared) | a | {t: b[u] for u, t in zip(s0, s1)}
    env_q0 = dict(shared) | a
    env_q1 = dict(shared) | b

    def values(exprs, env):
        with no_grad(), np.errstate(all="ignore"):
            out = evaluate_many(list(exprs), env)
        return np.array([np.broadcast_to(np.asarray(v._data if isinstance(v, Tensor) else v,
                                                    dtype=np.float64), (3,)) for v in out])

    def close(x, y):
        return x.shape == y.shape and bool(np.all(np.isfinite(y))) and \
            bool(np.all(np.abs(x - y) <= rtol * (1.0 + np.abs(y))))

    try:
        v2 = values(e2.flat, env2)
        if e1.ndim >= 1 and e1.shape[0] == 1 and e2.shape == (2,) + e1.shape[1:]:
            q = np.asarray(e1[0], dtype=object)
            q0, q1 = values(q.flat, env_q0), values(q.flat, env_q1)
            if close(v2, np.concatenate([q0, q1])):
                return "none", q
        if e1.shape == e2.shape:
            q0, q1 = values(e1.flat, env_q0), values(e1.flat, env_q1)
            for red, comb in (("mean", (q0 + q1) / 2), ("sum", q0 + q1)):
                if close(v2, comb):
                    return red, e1
    except (TypeError, ValueError, NotImplementedError):
        return None
    return None


def trace_batched(fn: Callable, *examples, batched: Sequence[int | str | bool],
                  names: Sequence[str] | None = None) -> BatchedTrace:
    """Trace ``fn`` whose inputs in ``batched`` (indices, names, or one bool per input) carry a
    leading batch dimension, and split the result into a per-sample term plus a reduction.
    Raises :class:`NotBatchSeparable` when the output is not of that form."""
    from .. import float64
    from ..tensor import Tensor

    arg_names = _param_names(fn, len(examples), names)
    if len(batched) == len(examples) and all(isinstance(b, bool) for b in batched):
        bset = {i for i, b in enumerate(batched) if b}
    else:
        bset = {b if isinstance(b, int) else arg_names.index(b) for b in batched}
    if not bset:
        raise ValueError("trace_batched: name at least one batched input")
    shapes = {i: tuple(np.shape(getattr(examples[i], "_data", examples[i]))) for i in bset}
    for i, s in shapes.items():
        if len(s) == 0:
            raise ValueError(f"batched input {arg_names[i]!r} has no batch dimension")
        if any(np.issubdtype(np.asarray(getattr(examples[i], "_data", examples[i])).dtype, t)
               for t in (np.integer, np.bool_)):
            raise NotBatchSeparable(
                f"batched input {arg_names[i]!r} is integer/bool data (e.g. class labels); "
                "batched tracing needs floating per-sample data (use one-hot targets)")
    batch_size = next(iter(shapes.values()))[0]

    def run(n: int):
        args = []
        for i, e in enumerate(examples):
            if i in bset:
                syms = _sample_symbols(arg_names[i], n, shapes[i][1:])
                args.append(Tensor._wrap(syms, float64))
            else:
                args.append(e)
        return trace(fn, *args, names=arg_names)

    t1, t2 = run(1), run(2)
    e1, e2 = t1.output_arrays[0], t2.output_arrays[0]
    per = {i: _per_sample_symbols(arg_names[i], shapes[i][1:]) for i in bset}
    data_names = {arg_names[i] for i in bset}
    params = [v for v in t2.variables if v.name not in data_names]
    second = {i: _sample_symbols(arg_names[i], 2, shapes[i][1:])[1] for i in bset}
    pairs = [(u, v) for i in sorted(bset) for u, v in zip(np.asarray(per[i]).reshape(-1),
                                                           np.asarray(second[i]).reshape(-1))]
    found = classify_reduction(e1, e2, pairs)
    reduction, q = found if found is not None else (None, None)
    if reduction is None:
        raise NotBatchSeparable(
            f"{getattr(fn, '__name__', 'fn')}: the output (shape {e1.shape} at N=1, {e2.shape} "
            "at N=2) is neither per-sample nor a sum/mean over the batch of a per-sample term "
            "(e.g. it mixes samples, like batch normalization, or normalizes by a constant "
            "that is not N)")
    data = [Variable(arg_names[i], np.asarray(per[i], dtype=object), None, "data")
            for i in sorted(bset)]
    data_examples = [examples[i] for i in sorted(bset)]
    return BatchedTrace(getattr(fn, "__name__", type(fn).__name__), np.asarray(q, dtype=object),
                        reduction, params, data, batch_size, data_examples)
