"""The op registry: every primitive op is declared here once, with everything about it.

An :class:`Op` carries its name, PyTorch ``grad_fn`` name, numpy forward, dtype rule and exactly one
way to differentiate it:

* ``formula`` — a SymPy scalar formula (elementwise ops). Its partial derivatives come from SymPy;
  eager backward evaluates them with numpy (``lambdify``) or, when a differentiable backward is
  needed (``create_graph=True``), rebuilds them from registered ops (:mod:`symad.ops.sym2tensor`).
  Tracing applies the same formula to symbolic elements.
* ``vjp`` — a structured vector-Jacobian product written with other registered ops (matmul,
  reductions, reshapes, indexing, ...), so backward graphs are differentiable again.
* neither, with ``nondiff_reason`` — the op has no gradient (comparisons, argmax, ...).

Eager evaluation, autograd, tracing, codegen and the op test table all read this registry.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import sympy

from .derivatives import no_dirac, reverse_gradient, unevaluated_on_assert

REGISTRY: dict[str, "Op"] = {}


@dataclass(eq=False)
class Op:
    name: str
    grad_fn: str | Callable[..., str]
    forward: Callable[..., np.ndarray]
    formula: Callable[..., sympy.Expr] | None = None
    vjp: Callable[..., tuple] | None = None
    nondiff_reason: str | None = None
    # The same forward written with other registered ops, for paths that lower ops rather than
    # call their numpy code (native programs); the op table checks it equals ``forward``.
    decompose: Callable[..., Any] | None = None
    dtype_rule: str = "promote"  # promote | float | bool | same | first | custom
    symbolic: Callable[..., np.ndarray] | None = None
    nargs: int = 1
    params: tuple[str, ...] = ()
    doc: str = ""
    # Params that take part in dtype promotion like Python scalars (``int_tensor ** 0.5`` is float).
    dtype_params: tuple[str, ...] = ()
    # Elementwise derivative caches, keyed by the pattern of which params are None.
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def elementwise(self) -> bool:
        return self.formula is not None

    def grad_fn_name(self, *args, **params) -> str:
        g = self.grad_fn
        return g if isinstance(g, str) else g(*args, **params)

    # -- elementwise support: everything below derives from ``formula`` -------------------------
    def _symbols(self, params: dict) -> tuple[list, dict, tuple]:
        key = self._pattern(params)
        args = [sympy.Symbol(f"_a{i}", real=True) for i in range(self.nargs)]
        psyms = {k: (None if v is None else sympy.Symbol(f"_p_{k}", real=True))
                 for k, v in params.items()}
        return args, psyms, key

    @staticmethod
    def _pattern(params: dict) -> tuple:
        return tuple((k, v is None) for k, v in params.items()) if params else ()

    def derivative_exprs(self, params: dict) -> tuple[list, dict, list]:
        """(arg symbols, param symbols, [d formula / d arg_i]) for this param pattern (cached)."""
        hit = self._cache.get(("d", self._pattern(params)))
        if hit is None:
            args, psyms, key = self._symbols(params)
            # the one rule table (symad.ops.derivatives) that tracing and compiling also read
            ders = reverse_gradient(self.formula(*args, **psyms), args)
            hit = (args, psyms, ders)
            self._cache[("d", key)] = hit
        return hit

    def derivative_numpy(self, i: int, params: dict) -> Callable:
        """A numpy function (args..., params...) evaluating d formula / d arg_i.

        For the few distinct numeric parameter values a program uses (``x ** 2``, ``clamp(x, 0)``)
        the parameters are substituted before lambdify, so piecewise rules on them (``pow``'s
        exponent-0 case) fold away instead of being evaluated per call."""
        if params and len(self._cache) < 256 and all(
                v is None or type(v) in (int, float) for v in params.values()):
            vkey = ("npv", i, tuple(params.items()))
            fn = self._cache.get(vkey)
            if fn is None:
                args, psyms, ders = self.derivative_exprs(params)
                expr = ders[i].subs({s: params[k] for k, s in psyms.items() if s is not None})
                f = sympy.lambdify(args, expr, modules=[NUMPY_FUNCS, "numpy"])
                n = len(args)
                fn = self._cache[vkey] = lambda *a: f(*a[:n])
            return fn
        key = self._pattern(params)
        fn = self._cache.get(("np", i, key))
        if fn is None:
            args, psyms, ders = self.derivative_exprs(params)
            plist = [s for s in psyms.values() if s is not None]
            fn = sympy.lambdify(args + plist, ders[i], modules=[NUMPY_FUNCS, "numpy"])
            self._cache[("np", i, key)] = fn
        return fn

    def symbolic_forward(self, *arrays, **params) -> np.ndarray:
        """Apply the op to object arrays of SymPy expressions (tracing); rebuilt unevaluated
        where SymPy fails its own assertion (:func:`derivatives.unevaluated_on_assert`)."""
        return unevaluated_on_assert(self._symbolic_forward, *arrays, **params)

    def _symbolic_forward(self, *arrays, **params) -> np.ndarray:
        if self.symbolic is not None:
            return self.symbolic(*arrays, **params)
        if self.formula is not None:
            f = np.frompyfunc(lambda *a: self.apply_formula(*a, **params), self.nargs, 1)
            out = f(*arrays)
            return np.asarray(out, dtype=object)
        return self.forward(*arrays, **params)

    def apply_formula(self, *args, **params):
        """The formula applied to SymPy arguments. Large sums (a traced dense layer) go through a
        template so that SymPy's automatic simplification of functions, relations and Piecewise
        (which walks the whole argument: ~30-50 ms for a 64-term sum) is skipped; the result is
        the same expression, only unevaluated at those nodes. Arguments that are themselves
        Piecewise (``maximum(clamp(x), s)``) take the same path: SymPy's folding of nested
        Piecewise runs ``simplify`` on every condition (seconds per element)."""
        if not any((isinstance(a, sympy.Add) and len(a.args) > _BIG_SUM)
                   or (isinstance(a, sympy.Basic) and a.has(sympy.Piecewise)) for a in args):
            try:
                return self.formula(*args, **params)
            except RecursionError:
                # SymPy's relational evaluation can recurse without end on some arguments
                # (``sqrt(1 + x**2) < w - 0.347*y``): build the same formula unevaluated.
                pass
        dummies = [sympy.Dummy(real=True) for _ in args]
        template = self.formula(*dummies, **params)
        return _instantiate(sympy.sympify(template),
                            dict(zip(dummies, [sympy.sympify(a) for a in args])))


_BIG_SUM = 6
ExprCondPair = sympy.functions.elementary.piecewise.ExprCondPair
_UNEVALUATED = (sympy.Function, sympy.core.relational.Relational, sympy.Piecewise,
                sympy.logic.boolalg.BooleanFunction)


def _instantiate(template, env: dict):
    """``template`` with its dummies replaced by ``env``'s expressions, building functions,
    relations and Piecewise unevaluated (arithmetic nodes are built normally)."""
    memo: dict = {}

    def go(e):
        if e in env:
            return env[e]
        if not e.args or not (e.free_symbols & env.keys()):
            return e
        r = memo.get(e)
        if r is None:
            r = memo[e] = _rebuild(e, [go(a) for a in e.args])
        return r
    return go(template)


def _rebuild(e, args):
    """``e`` with new ``args``: functions, relations and Piecewise unevaluated, arithmetic nodes
    built normally."""
    if isinstance(e, (ExprCondPair, sympy.Piecewise)):
        # built as is: SymPy's constructors fold a condition that contains a Piecewise with
        # simplify_logic (seconds per element), evaluate=False or not
        return sympy.Basic.__new__(type(e), *args)
    if isinstance(e, _UNEVALUATED):
        return e.func(*args, evaluate=False)
    return unevaluated_on_assert(e.func, *args)


def xreplace_unevaluated(expr, rep: dict):
    """``expr.xreplace(rep)``, rebuilding functions, relations and Piecewise unevaluated (as
    :func:`_instantiate`): SymPy's own rebuild re-folds nested Piecewise conditions."""
    memo: dict = {}

    def go(e):
        if e in rep:
            return rep[e]
        if not e.args:
            return e
        r = memo.get(e)
        if r is None:
            args = [go(a) for a in e.args]
            r = memo[e] = e if all(a is b for a, b in zip(args, e.args)) else _rebuild(e, args)
        return r
    return go(expr)


def sym_call(func, arg):
    """``func(arg)`` for a SymPy function, unevaluated when ``arg`` is a large sum (see
    :meth:`Op.apply_formula`)."""
    if isinstance(arg, sympy.Add) and len(arg.args) > _BIG_SUM:
        return func(arg, evaluate=False)
    return func(arg)


def sym_formula(formula, nargs: int):
    """Elementwise ``formula`` over object arrays of SymPy elements, built from a template so
    large sums are not re-simplified at each function, relation or Piecewise."""
    dummies = [sympy.Dummy(real=True) for _ in range(nargs)]
    template = sympy.sympify(formula(*dummies))

    def one(*args):
        return _instantiate(template, dict(zip(dummies, [sympy.sympify(a) for a in args])))
    return np.frompyfunc(one, nargs, 1)


def sym_map(func):
    """Elementwise ``sym_call(func, .)`` over an object array."""
    return np.frompyfunc(lambda a: sym_call(func, a), 1, 1)


def register(name: str, *, grad_fn, forward, **kw) -> Op:
    """Declare an op. Raises if the name is taken: one declaration per op."""
    if name in REGISTRY:
        raise ValueError(f"op {name!r} is already registered")
    op = Op(name=name, grad_fn=grad_fn, forward=forward, **kw)
    if op.formula is None and op.vjp is None and op.nondiff_reason is None:
        raise ValueError(f"op {name!r} needs a formula, a vjp, or a nondiff_reason")
    REGISTRY[name] = op
    return op


def get(name: str) -> Op:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no op named {name!r} in the symad op registry") from None


_no_dirac = no_dirac  # the name verify and the trace table test import


# ---------------------------------------------------------------------------------------------
# SymPy functions symad adds, so derivatives come out in a numerically stable form.

class sigmoid(sympy.Function):
    """The logistic function 1/(1+exp(-x)); d/dx = sigmoid(x)*(1-sigmoid(x))."""

    is_real = True

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return 1 / (1 + sympy.exp(-x))
        return None

    def _eval_rewrite_as_exp(self, x, **kw):
        return 1 / (1 + sympy.exp(-x))

    _eval_rewrite_as_elementary = _eval_rewrite_as_exp  # how codegen lowers it

    def _eval_evalf(self, prec):
        return (1 / (1 + sympy.exp(-self.args[0])))._eval_evalf(prec)

    def _latex(self, printer):
        return r"\sigma\left(%s\right)" % printer._print(self.args[0])


class clamped_log(sympy.Function):
    """``max(log(x), -100)``: binary_cross_entropy's log, clamped like PyTorch's so a saturated
    probability gives a finite loss. d/dx = 1/max(x, 1e-12): PyTorch's BCE backward divides by
    ``max(x*(1-x), 1e-12)``, which this matches (to 1e-12 relative) for both of BCE's logs."""

    is_real = True

    def fdiff(self, argindex=1):
        return 1 / sympy.Max(self.args[0], BCE_EPS)

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sympy.Integer(-100) if x.is_zero else sympy.Max(sympy.log(x), -100)
        return None

    def _eval_rewrite_as_elementary(self, x, **kw):
        return sympy.Max(sympy.log(x), -100)

    def _eval_evalf(self, prec):
        return sympy.Max(sympy.log(self.args[0]), -100)._eval_evalf(prec)


BCE_EPS = sympy.Float(1e-12)


def _np_clamped_log(x):
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(x), -100)


def _np_sigmoid(x):
    x = np.asarray(x)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype if x.dtype.kind == "f"
                                                           else np.float64, copy=False)


def _np_heaviside(x, h0=0.0):
    return np.heaviside(x, h0)


def _np_select(condlist, choicelist, default=np.nan):
    """``np.select`` for lambdified Piecewise: broadcasts conditions and choices first (a
    ``True`` branch or a scalar choice next to array conditions is otherwise rejected)."""
    arrays = np.broadcast_arrays(*[np.asarray(c) for c in condlist],
                                 *[np.asarray(c) for c in choicelist])
    n = len(condlist)
    if arrays[n:] and all(a.dtype == np.bool_ for a in arrays[n:]):
        default = False  # a boolean if-then-else (SymPy's ITE) stays boolean, not nan-promoted
    return np.select(arrays[:n], arrays[n:], default)


class _BroadcastingLogical:
    """``logical_and``/``logical_or`` whose ``.reduce`` (how lambdify prints ``And``/``Or``)
    broadcasts operands of different shapes, as the elementwise ufunc does."""

    def __init__(self, ufunc) -> None:
        self._ufunc = ufunc

    def __call__(self, *args, **kw):
        return self._ufunc(*args, **kw)

    def reduce(self, operands, axis=0):
        return functools.reduce(self._ufunc, operands)


NUMPY_FUNCS: dict[str, Any] = {"sigmoid": _np_sigmoid, "Heaviside": _np_heaviside,
                               "clamped_log": _np_clamped_log,
                               "select": _np_select,
                               "logical_and": _BroadcastingLogical(np.logical_and),
                               "logical_or": _BroadcastingLogical(np.logical_or)}


@functools.lru_cache(maxsize=None)
def real_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)
