"""The one derivative rule table, keyed by SymPy class, and reverse mode over a SymPy DAG.

Every derivative symad computes from a formula reads this table: the registry's elementwise ops
(``Op.derivative_exprs``: eager backward, ``create_graph`` backward), tracing (``Trace.gradient``),
``explain``, verification, ``symad diff`` and the compiled kernels. PyTorch's conventions live in
the rules, once:

* ``Pow``: d/db of ``b**e`` is 0 where ``e == 0`` and d/de is 0 where ``b == 0`` and ``e >= 0``
  (PyTorch's ``pow_backward``: no ``0 * inf`` at 0**0);
* ``Piecewise``: each branch receives the adjoint times "this branch is the active one", so
  relu'(0) = 0 and clamp's edge gradient 0 follow from the registry's formulas;
* ``Max``/``Min``: the adjoint is split evenly among the arguments equal to the result (ties);
* ``Abs``: ``sign`` (abs'(0) = 0); ``Mod(a, b)``: 1 and ``-floor(a/b)``;
* steps (``sign``, ``Heaviside``, ``floor``, ``ceiling``) have derivative 0 and ``DiracDelta``
  terms are dropped;
* any other function: its SymPy ``fdiff`` (symad's own functions, e.g. ``sigmoid`` and the BCE
  ``clamped_log``, state their PyTorch derivative there).

SymPy hashes expressions structurally, so a subexpression shared by several parents is one node:
each node's adjoint is accumulated once and pushed to its arguments with the local rule — no
``sympy.diff`` of a large tree per parameter. A node class without a rule raises
:class:`NoDerivativeRule` naming it.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import sympy
from sympy import Piecewise

__all__ = ["reverse_gradient", "reverse_jacobian", "NoDerivativeRule", "RULES", "no_dirac"]


class NoDerivativeRule(NotImplementedError):
    """A SymPy node reverse mode has no local derivative rule for."""


def no_dirac(expr):
    """Derivatives of steps (sign, Heaviside) are 0 almost everywhere and, by PyTorch's
    convention, 0 at the step as well."""
    if isinstance(expr, sympy.Basic) and expr.has(sympy.DiracDelta):
        expr = expr.replace(sympy.DiracDelta, lambda *a: sympy.S.Zero)
    return expr


def piecewise(*pairs) -> Piecewise:
    """``Piecewise(*pairs)`` built as is: SymPy's constructor folds conditions that contain a
    Piecewise with simplify_logic (seconds per node, and an AssertionError on some)."""
    from sympy.functions.elementary.piecewise import ExprCondPair
    return sympy.Basic.__new__(Piecewise, *[sympy.Basic.__new__(ExprCondPair, sympy.sympify(e),
                                                                sympy.sympify(c))
                                            for e, c in pairs])


# -- the local rules: node -> [d node / d arg_i for each differentiable argument] ---------------
# A rule gets the node and, per entry of ``children(node)``, whether that partial is wanted; it
# returns one partial per entry (``None`` where not wanted).

def _add(node, want):
    return [sympy.S.One if w else None for w in want]


def _mul(node, want):
    args = node.args
    return [sympy.Mul(*(args[:i] + args[i + 1:])) if w else None for i, w in enumerate(want)]


def _pow(node, want):
    """PyTorch's pow_backward: d/db = 0 where e == 0; d/de = 0 where b == 0 and e >= 0."""
    b, e = node.args
    db = de = None
    if want[0]:
        db = e * b ** (e - 1)
        if not (e.is_number and e.is_zero is False):
            db = piecewise((sympy.S.Zero, sympy.Eq(e, 0)), (db, sympy.true))
    if want[1]:
        de = sympy.log(b) * node
        if not (b.is_number and b.is_positive):
            de = piecewise((sympy.S.Zero, sympy.Eq(b, 0) & (e >= 0)), (de, sympy.true))
    return [db, de]


def _branch_indicators(node: Piecewise, want=None) -> list:
    """For each branch i, ``Piecewise((0, c_0), ..., (1, c_i), ..., (0, True))``."""
    conds = [ec.cond for ec in node.args]
    out = []
    for i in range(len(conds)):
        pieces = [(sympy.S.One if j == i else sympy.S.Zero, c) for j, c in enumerate(conds)]
        if conds[-1] is not sympy.true:
            pieces.append((sympy.S.Zero, sympy.true))
        # unevaluated: the conditions are the node's own, and SymPy's re-evaluation of some
        # relations recurses without end (``sqrt(1 + x**2) < w - 0.347*y``)
        out.append(piecewise(*pieces))
    return out


def _max_min(node, want):
    args = node.args
    ties = sympy.Add(*[piecewise((1, sympy.Eq(a, node)), (0, sympy.true)) for a in args])
    return [piecewise((1 / ties, sympy.Eq(a, node)), (0, sympy.true)) if w else None
            for a, w in zip(args, want)]


def _abs(node, want):
    return [sympy.sign(node.args[0])]


def _mod(node, want):  # a - floor(a/b)*b (PyTorch's remainder gradients)
    a, b = node.args
    return [sympy.S.One, -sympy.floor(a / b)]


def _step(node, want):
    return [sympy.S.Zero] * len(node.args)


def _function(node, want):
    out: list = []
    for i, w in enumerate(want):
        if not w:
            out.append(None)
            continue
        try:
            d = node.fdiff(i + 1)
        except AssertionError:
            # SymPy failing its own assertion while building the derivative (``atan(Piecewise)``:
            # 1/(1 + Piecewise**2) folds conditions that hold a Piecewise): the caller's
            # unevaluated_on_assert rebuilds the sweep with evaluation off
            raise
        except Exception as exc:  # ArgumentIndexError and friends
            raise NoDerivativeRule(
                f"no derivative rule for {type(node).__name__} (argument {i + 1})") from exc
        if d.has(sympy.Derivative):
            raise NoDerivativeRule(f"no derivative rule for {type(node).__name__}: "
                                   f"SymPy returned {d}")
        out.append(no_dirac(d))
    return out


RULES: dict[type, Callable[[sympy.Basic], list]] = {
    sympy.Add: _add,
    sympy.Mul: _mul,
    sympy.Pow: _pow,
    Piecewise: _branch_indicators,
    sympy.Max: _max_min,
    sympy.Min: _max_min,
    sympy.Abs: _abs,
    sympy.Mod: _mod,
    sympy.sign: _step,
    sympy.Heaviside: _step,
    sympy.floor: _step,
    sympy.ceiling: _step,
    sympy.Function: _function,
}


def _rule(node) -> Callable:
    for cls in type(node).__mro__:
        r = RULES.get(cls)
        if r is not None:
            return r
    raise NoDerivativeRule(f"no reverse-mode derivative rule for SymPy node {type(node).__name__}"
                           f" ({node})")


def children(node) -> tuple:
    """The arguments a node's value depends on differentiably (conditions are not included)."""
    if isinstance(node, Piecewise):
        return tuple(ec.expr for ec in node.args)
    if node.is_Atom or not isinstance(node, sympy.Expr):
        return ()
    return node.args


def local_partials(node, dep: dict) -> list:
    """[(child, d node / d child)] for the children that depend on the wrt symbols."""
    kids = children(node)
    want = [bool(dep[c]) for c in kids]
    if not any(want):
        return []
    partials = _rule(node)(node, want)
    return [(c, d) for c, d, w in zip(kids, partials, want) if w and d != 0]


# -- the sweep ---------------------------------------------------------------------------------

def _topo(roots: Sequence, wrt: set) -> tuple[list, dict]:
    """Post-order over the DAG (children first) and, per node, whether it depends on ``wrt``."""
    order: list = []
    dep: dict = {}
    for root in roots:
        if root in dep:
            continue
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                dep[node] = node in wrt or any(dep[c] for c in children(node))
                order.append(node)
                continue
            if node in dep:
                continue
            dep[node] = False  # placeholder, marks "visiting"
            stack.append((node, True))
            for c in children(node):
                if c not in dep:
                    stack.append((c, False))
    return order, dep


def _reachable(root, dep: dict) -> set:
    seen = {root}
    stack = [root]
    while stack:
        n = stack.pop()
        for c in children(n):
            if dep.get(c) and c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


def _sweep(root, wrt: list, order: list, dep: dict) -> list:
    if not dep.get(root, False):
        return [sympy.S.Zero] * len(wrt)
    # only the nodes below ``root`` matter; walk the shared order in reverse (parents first)
    adj: dict = {root: [sympy.S.One]}
    below = _reachable(root, dep)
    wrt_set = set(wrt)
    grads: dict = {}
    for node in reversed(order):
        if node not in below:
            continue
        terms = adj.pop(node, None)
        if not terms:
            continue
        a = sympy.Add(*terms) if len(terms) > 1 else terms[0]
        if node in wrt_set:
            grads[node] = a
            continue
        if a == 0:
            continue
        for child, d in local_partials(node, dep):
            adj.setdefault(child, []).append(a * d)
    return [grads.get(s, sympy.S.Zero) for s in wrt]


def reverse_gradient(expr, wrt: Sequence[sympy.Symbol]) -> list:
    """The exact gradient ``[d expr / d s for s in wrt]`` by one reverse sweep over the DAG.

    >>> import sympy; x, y = sympy.symbols("x y", real=True)
    >>> reverse_gradient(x**2 + 3*x*y + y**2, [x, y])
    [2*x + 3*y, 3*x + 2*y]
    """
    expr = sympy.sympify(expr)
    wrt = list(wrt)
    order, dep = _topo([expr], set(wrt))
    return unevaluated_on_assert(_sweep, expr, wrt, order, dep)


def unevaluated_on_assert(fn, /, *args, **kw):
    """``fn(*args, **kw)``, again with SymPy's evaluation off if SymPy fails its own assertion.
    ``Piecewise ** n`` (reached through Pow, Mul flattening, a mean's division) distributes into a
    new Piecewise whose constructor folds conditions that hold a Piecewise (``clamp(clamp(x))``,
    ``where(minimum(s, x) > w, ...)``) and asserts in ``piecewise_fold``; the unevaluated nodes
    mean the same. The one answer to that SymPy failure for tracing, its rebuilds and the
    reverse sweep (fuzz findings)."""
    try:
        return fn(*args, **kw)
    except AssertionError:
        with sympy.evaluate(False):
            return fn(*args, **kw)


def reverse_jacobian(exprs: Iterable, wrt: Sequence[sympy.Symbol]) -> sympy.Matrix:
    """The Jacobian ``d exprs[i] / d wrt[j]`` (one reverse sweep per output, shared DAG order)."""
    exprs = [sympy.sympify(e) for e in exprs]
    wrt = list(wrt)
    order, dep = _topo(exprs, set(wrt))
    return sympy.Matrix([unevaluated_on_assert(_sweep, e, wrt, order, dep)
                         for e in exprs]) if exprs else \
        sympy.zeros(0, len(wrt))
