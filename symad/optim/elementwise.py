"""The array namespaces an optimizer's update declaration (``sgd_update``, ``adam_update``) runs
with: :data:`NUMPY` evaluates it on arrays; :class:`Tracer` reads the same declaration as
per-element formulas for generated code.

The update is written once, as in-place array statements (``xp.add(P, -lr * grad, out=P)``) on
arrays and Python-float hyperparameters. Tracing it keeps both kinds apart, so generated code
rounds exactly like numpy:

* an array becomes an :class:`Element` — a SymPy expression of one element, built unevaluated
  node by node in the statement's order (numpy's order of operations, one rounding per node);
* a hyperparameter becomes a :class:`Scalar` — a Python computation over the group's values
  (``1 - dampening`` stays a Python double, as in numpy, where it meets the array as one weak
  scalar cast to the array's dtype). Where a Scalar meets an Element it becomes a runtime input
  of the kernel (its value is computed in Python before each call); where Python branches on
  one (``if weight_decay != 0``) the outcome is recorded as a guard, and a kernel is only used
  while its guards hold.
"""
from __future__ import annotations

import math

import numpy as np
import sympy


def env_symbol(key: str, i: int | None = None) -> sympy.Symbol:
    """The symbol of an optimizer-group value in :attr:`Scalar.e` (``betas_0`` for
    ``group["betas"][0]``)."""
    return sympy.Symbol(key if i is None else f"{key}_{i}", real=True)


class _Numpy:
    """numpy for the update declarations (plus ``scalars``: call a Python-float helper)."""

    copyto = staticmethod(np.copyto)
    multiply = staticmethod(np.multiply)
    add = staticmethod(np.add)
    subtract = staticmethod(np.subtract)
    maximum = staticmethod(np.maximum)
    sqrt = staticmethod(np.sqrt)

    @staticmethod
    def scalars(fn, *args):
        return fn(*args, sqrt=math.sqrt)


NUMPY = _Numpy()


class Scalar:
    """A Python float computed from the optimizer group's values: ``fn(env)``, and the same
    computation as an unevaluated SymPy expression ``e`` of symbols named after the group's keys
    (``lr``, ``betas_0``, ``step``, ...), node for node in Python's order of operations — what a
    native loop lowers to compute it per step in double precision (the same IEEE operations and
    libm calls as Python's float arithmetic)."""

    __slots__ = ("fn", "tracer", "e")

    def __init__(self, fn, tracer: "Tracer", e=None) -> None:
        self.fn = fn
        self.tracer = tracer
        self.e = e

    def _lift(self, other):
        if isinstance(other, Scalar):
            return other.fn, other.e
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return (lambda env, c=other: c), sympy.Float(other) if isinstance(other, float) \
                else sympy.Integer(other)
        return None

    def _bin(self, other, op, sym, swap=False):
        if isinstance(other, Element):
            return NotImplemented
        lifted = self._lift(other)
        if lifted is None:
            return NotImplemented
        g, ge = lifted
        f, fe = self.fn, self.e
        if swap:
            return Scalar(lambda env: op(g(env), f(env)), self.tracer, sym(ge, fe))
        return Scalar(lambda env: op(f(env), g(env)), self.tracer, sym(fe, ge))

    def __add__(self, o):
        return self._bin(o, lambda a, b: a + b, _add)

    def __radd__(self, o):
        return self._bin(o, lambda a, b: a + b, _add, True)

    def __sub__(self, o):
        return self._bin(o, lambda a, b: a - b, _sub)

    def __rsub__(self, o):
        return self._bin(o, lambda a, b: a - b, _sub, True)

    def __mul__(self, o):
        if isinstance(o, Element):
            return o.__rmul__(self)
        return self._bin(o, lambda a, b: a * b, _mul)

    def __rmul__(self, o):
        return self._bin(o, lambda a, b: a * b, _mul, True)

    def __truediv__(self, o):
        return self._bin(o, lambda a, b: a / b, _div)

    def __pow__(self, o):
        return self._bin(o, lambda a, b: a ** b,
                         lambda a, b: sympy.Pow(a, b, evaluate=False))

    def __neg__(self):
        f = self.fn
        return Scalar(lambda env: -f(env), self.tracer, _neg(self.e))

    def __abs__(self):
        f = self.fn
        return Scalar(lambda env: abs(f(env)), self.tracer, sympy.Abs(self.e, evaluate=False))

    def sqrt(self) -> "Scalar":
        """``math.sqrt`` of this value (correctly rounded, as IEEE ``sqrt``)."""
        f = self.fn
        return Scalar(lambda env: math.sqrt(f(env)), self.tracer,
                      sympy.Pow(self.e, sympy.Rational(1, 2), evaluate=False))

    # branching on a hyperparameter: decided now, re-checked before each use of the kernel
    def _cmp(self, o, op) -> bool:
        g, _ = self._lift(o)
        f = self.fn
        return self.tracer.guard(lambda env: bool(op(f(env), g(env))))

    def __eq__(self, o):
        return self._cmp(o, lambda a, b: a == b)

    def __ne__(self, o):
        return self._cmp(o, lambda a, b: a != b)

    def __lt__(self, o):
        return self._cmp(o, lambda a, b: a < b)

    def __gt__(self, o):
        return self._cmp(o, lambda a, b: a > b)

    def __bool__(self) -> bool:
        f = self.fn
        return self.tracer.guard(lambda env: bool(f(env)))

    __hash__ = None


class Element:
    """One element of an array in the update: an unevaluated SymPy expression."""

    __slots__ = ("e", "tracer")

    def __init__(self, e, tracer: "Tracer") -> None:
        self.e = e
        self.tracer = tracer

    def _other(self, o):
        if isinstance(o, Element):
            return o.e
        if isinstance(o, Scalar):
            return self.tracer.runtime(o)
        if isinstance(o, (int, float)) and not isinstance(o, bool):
            return sympy.Float(o)
        raise TypeError(f"update trace: unsupported operand {type(o).__name__}")

    def _wrap(self, e):
        return Element(e, self.tracer)

    def __add__(self, o):
        return self._wrap(sympy.Add(self.e, self._other(o), evaluate=False))

    __radd__ = __add__

    def __sub__(self, o):
        return self._wrap(sympy.Add(self.e, _neg(self._other(o)), evaluate=False))

    def __rsub__(self, o):
        return self._wrap(sympy.Add(self._other(o), _neg(self.e), evaluate=False))

    def __mul__(self, o):
        return self._wrap(sympy.Mul(self.e, self._other(o), evaluate=False))

    def __rmul__(self, o):
        return self._wrap(sympy.Mul(self._other(o), self.e, evaluate=False))

    def __truediv__(self, o):
        return self._wrap(_div(self.e, self._other(o)))

    def __neg__(self):
        return self._wrap(_neg(self.e))


def _neg(e):
    return sympy.Mul(sympy.S.NegativeOne, e, evaluate=False)


def _add(a, b):
    return sympy.Add(a, b, evaluate=False)


def _sub(a, b):
    return sympy.Add(a, _neg(b), evaluate=False)


def _mul(a, b):
    return sympy.Mul(a, b, evaluate=False)


def _div(a, b):
    return sympy.Mul(a, sympy.Pow(b, -1, evaluate=False), evaluate=False)


class Tracer:
    """The namespace that reads an update declaration as per-element formulas.

    ``arrays``: name -> Element of the arrays passed in (their symbols are the kernel's array
    inputs); after the run, ``written`` maps each array the update wrote to its new value;
    ``inputs``: the runtime scalars ``[(symbol, fn)]``; ``guards``: ``[(fn, outcome)]``."""

    def __init__(self, env: dict) -> None:
        self.env = env
        self.written: dict[str, sympy.Expr] = {}
        self.inputs: list[tuple[sympy.Symbol, object]] = []
        self.guards: list[tuple[object, bool]] = []
        #: the runtime scalars as expressions of :func:`env_symbol` symbols (same order)
        self.input_exprs: list = []
        self._names: dict[int, str] = {}

    # -- inputs -----------------------------------------------------------------------------
    def array(self, name: str) -> Element:
        el = Element(sympy.Symbol(name, real=True), self)
        self._names[id(el)] = name
        return el

    def group(self, keys) -> dict:
        """The optimizer group as Scalars (tuples, like ``betas``, element by element)."""
        out = {}
        for k in keys:
            v = self.env[k]
            if isinstance(v, tuple):
                out[k] = tuple(Scalar(lambda env, k=k, i=i: env[k][i], self, env_symbol(k, i))
                               for i in range(len(v)))
            else:
                out[k] = Scalar(lambda env, k=k: env[k], self, env_symbol(k))
        return out

    def scalar(self, key: str) -> Scalar:
        return Scalar(lambda env, k=key: env[k], self, env_symbol(key))

    # -- bookkeeping ------------------------------------------------------------------------
    def guard(self, fn) -> bool:
        outcome = fn(self.env)
        self.guards.append((fn, outcome))
        return outcome

    def holds(self, env: dict) -> bool:
        return all(fn(env) == outcome for fn, outcome in self.guards)

    def runtime(self, sc: Scalar) -> sympy.Symbol:
        sym = sympy.Symbol(f"_s{len(self.inputs)}", real=True)
        self.inputs.append((sym, sc.fn))
        self.input_exprs.append(sc.e)
        return sym

    def _store(self, out: Element, value) -> None:
        name = self._names.get(id(out))
        if name is None:
            raise TypeError("update trace: out= must be one of the traced arrays")
        out.e = value.e if isinstance(value, Element) else out._other(value)
        self.written[name] = out.e

    # -- the namespace ----------------------------------------------------------------------
    def copyto(self, dst, src, casting=None) -> None:
        self._store(dst, src)

    def multiply(self, a, b, out=None, casting=None) -> None:
        self._store(out, a * b if isinstance(a, Element) else b.__rmul__(a))

    def add(self, a, b, out=None, casting=None) -> None:
        self._store(out, a + b if isinstance(a, Element) else b.__radd__(a))

    def subtract(self, a, b, out=None, casting=None) -> None:
        self._store(out, a - b if isinstance(a, Element) else b.__rsub__(a))

    def maximum(self, a, b, out=None, casting=None) -> None:
        self._store(out, Element(sympy.Max(a.e, b.e, evaluate=False), self))

    def sqrt(self, a) -> Element:
        return Element(sympy.Pow(a.e, sympy.Rational(1, 2), evaluate=False), self)

    def scalars(self, fn, *args):
        """``fn`` (Python-float arithmetic with a ``sqrt`` argument) run on Scalars: each result
        a Scalar, evaluated per step, with its expression."""
        lifted = [a if isinstance(a, Scalar) else Scalar(lambda env, c=a: c, self,
                                                          sympy.Float(a))
                  for a in args]
        return tuple(fn(*lifted, sqrt=Scalar.sqrt))
