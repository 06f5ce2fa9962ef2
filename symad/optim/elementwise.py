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

import numpy as np
import sympy


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
        return fn(*args)


NUMPY = _Numpy()


class Scalar:
    """A Python float computed from the optimizer group's values: ``fn(env)``."""

    __slots__ = ("fn", "tracer")

    def __init__(self, fn, tracer: "Tracer") -> None:
        self.fn = fn
        self.tracer = tracer

    def _lift(self, other):
        if isinstance(other, Scalar):
            return other.fn
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return lambda env, c=other: c
        return None

    def _bin(self, other, op, swap=False):
        if isinstance(other, Element):
            return NotImplemented
        g = self._lift(other)
        if g is None:
            return NotImplemented
        f = self.fn
        if swap:
            return Scalar(lambda env: op(g(env), f(env)), self.tracer)
        return Scalar(lambda env: op(f(env), g(env)), self.tracer)

    def __add__(self, o):
        return self._bin(o, lambda a, b: a + b)

    def __radd__(self, o):
        return self._bin(o, lambda a, b: a + b, True)

    def __sub__(self, o):
        return self._bin(o, lambda a, b: a - b)

    def __rsub__(self, o):
        return self._bin(o, lambda a, b: a - b, True)

    def __mul__(self, o):
        if isinstance(o, Element):
            return o.__rmul__(self)
        return self._bin(o, lambda a, b: a * b)

    def __rmul__(self, o):
        return self._bin(o, lambda a, b: a * b, True)

    def __truediv__(self, o):
        return self._bin(o, lambda a, b: a / b)

    def __pow__(self, o):
        return self._bin(o, lambda a, b: a ** b)

    def __neg__(self):
        f = self.fn
        return Scalar(lambda env: -f(env), self.tracer)

    def __abs__(self):
        f = self.fn
        return Scalar(lambda env: abs(f(env)), self.tracer)

    # branching on a hyperparameter: decided now, re-checked before each use of the kernel
    def _cmp(self, o, op) -> bool:
        g = self._lift(o)
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
                out[k] = tuple(Scalar(lambda env, k=k, i=i: env[k][i], self)
                               for i in range(len(v)))
            else:
                out[k] = Scalar(lambda env, k=k: env[k], self)
        return out

    def scalar(self, key: str) -> Scalar:
        return Scalar(lambda env, k=key: env[k], self)

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
        """``fn`` over Python floats, evaluated per step: each result a runtime Scalar."""
        fns = [a.fn if isinstance(a, Scalar) else (lambda env, c=a: c) for a in args]
        n = len(fn(*[f(self.env) for f in fns]))
        return tuple(Scalar(lambda env, i=i: fn(*[f(env) for f in fns])[i], self)
                     for i in range(n))
