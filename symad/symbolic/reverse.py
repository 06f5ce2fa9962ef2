"""Exact derivatives by reverse mode over a SymPy expression DAG.

SymPy hashes expressions structurally, so a subexpression shared by several parents is one node
here: each node's adjoint is accumulated once and pushed to its arguments with a *local* rule —
no ``sympy.diff`` of a large tree per parameter. Local rules (one table, keyed by SymPy class):

* ``Add``: 1 per term; ``Mul``: product of the other factors; ``Pow``: ``e*b**(e-1)``,
  ``log(b)*b**e``;
* functions: their ``fdiff``; steps (``sign``, ``Heaviside``, ``floor``) have derivative 0 and
  ``DiracDelta`` terms are dropped (PyTorch's convention, as ``symad.ops.registry._no_dirac``);
* ``Abs``: ``sign`` (so ``abs'(0) = 0``); ``Mod(a, b)``: 1 and ``-floor(a/b)``;
* ``Piecewise``: each branch receives the adjoint times "this branch is the active one", a
  Piecewise with the *same conditions* (so relu'(0)=0 and clamp's edge gradient 1 follow from
  the formulas in the registry);
* ``Max``/``Min``: the adjoint is split evenly among the arguments equal to the result (ties).

A node class without a rule raises :class:`NoDerivativeRule` naming it.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import sympy
from sympy import Piecewise

__all__ = ["reverse_gradient", "reverse_jacobian", "NoDerivativeRule", "kinks",
           "exactify_floats", "expression_size", "display_simplify"]


class NoDerivativeRule(NotImplementedError):
    """A SymPy node reverse mode has no local derivative rule for."""


def _children(node) -> tuple:
    """The arguments a node's value depends on differentiably (conditions are not included)."""
    if isinstance(node, Piecewise):
        return tuple(ec.expr for ec in node.args)
    if node.is_Atom or not isinstance(node, sympy.Expr):
        return ()
    return node.args


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
                dep[node] = node in wrt or any(dep[c] for c in _children(node))
                order.append(node)
                continue
            if node in dep:
                continue
            dep[node] = False  # placeholder, marks "visiting"
            stack.append((node, True))
            for c in _children(node):
                if c not in dep:
                    stack.append((c, False))
    return order, dep


def _branch_indicators(node: Piecewise) -> list:
    """For each branch i, ``Piecewise((0, c_0), ..., (1, c_i), ..., (0, True))``."""
    conds = [ec.cond for ec in node.args]
    out = []
    for i in range(len(conds)):
        pieces = [(sympy.S.One if j == i else sympy.S.Zero, c) for j, c in enumerate(conds)]
        if conds[-1] is not sympy.true:
            pieces.append((sympy.S.Zero, sympy.true))
        out.append(Piecewise(*pieces))
    return out


def _local_partials(node, dep: dict) -> list:
    """[(child, d node / d child)] for the children that depend on the wrt symbols."""
    if isinstance(node, sympy.Add):
        return [(a, sympy.S.One) for a in node.args if dep[a]]
    if isinstance(node, sympy.Mul):
        args = node.args
        out = []
        for i, a in enumerate(args):
            if dep[a]:
                out.append((a, sympy.Mul(*(args[:i] + args[i + 1:]))))
        return out
    if isinstance(node, sympy.Pow):
        b, e = node.args
        out = []
        if dep[b]:
            out.append((b, e * b ** (e - 1)))
        if dep[e]:
            out.append((e, sympy.log(b) * node))
        return out
    if isinstance(node, Piecewise):
        ind = _branch_indicators(node)
        return [(ec.expr, ind[i]) for i, ec in enumerate(node.args) if dep[ec.expr]]
    if isinstance(node, (sympy.Max, sympy.Min)):
        args = node.args
        ties = sympy.Add(*[Piecewise((1, sympy.Eq(a, node)), (0, True)) for a in args])
        return [(a, Piecewise((1 / ties, sympy.Eq(a, node)), (0, True)))
                for a in args if dep[a]]
    if isinstance(node, sympy.Abs):
        return [(node.args[0], sympy.sign(node.args[0]))]
    if isinstance(node, sympy.Mod):  # a - floor(a/b)*b (PyTorch's remainder gradients)
        a, b = node.args
        return [(c, d) for c, d in ((a, sympy.S.One), (b, -sympy.floor(a / b))) if dep[c]]
    if isinstance(node, (sympy.sign, sympy.Heaviside, sympy.floor, sympy.ceiling)):
        return []
    if isinstance(node, sympy.Function):
        out = []
        for i, a in enumerate(node.args):
            if dep[a]:
                try:
                    d = node.fdiff(i + 1)
                except Exception as exc:  # ArgumentIndexError and friends
                    raise NoDerivativeRule(
                        f"no derivative rule for {type(node).__name__} (argument {i + 1})") from exc
                if d.has(sympy.Derivative):
                    raise NoDerivativeRule(f"no derivative rule for {type(node).__name__}: "
                                           f"SymPy returned {d}")
                if d.has(sympy.DiracDelta):
                    d = d.replace(sympy.DiracDelta, lambda *a: sympy.S.Zero)
                out.append((a, d))
        return out
    raise NoDerivativeRule(f"no reverse-mode derivative rule for SymPy node {type(node).__name__}"
                           f" ({node})")


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
        for child, d in _local_partials(node, dep):
            adj.setdefault(child, []).append(a * d)
    return [grads.get(s, sympy.S.Zero) for s in wrt]


def _reachable(root, dep: dict) -> set:
    seen = {root}
    stack = [root]
    while stack:
        n = stack.pop()
        for c in _children(n):
            if dep.get(c) and c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


def reverse_gradient(expr, wrt: Sequence[sympy.Symbol]) -> list:
    """The exact gradient ``[d expr / d s for s in wrt]`` by one reverse sweep over the DAG.

    >>> import sympy; x, y = sympy.symbols("x y", real=True)
    >>> reverse_gradient(x**2 + 3*x*y + y**2, [x, y])
    [2*x + 3*y, 3*x + 2*y]
    """
    expr = sympy.sympify(expr)
    wrt = list(wrt)
    order, dep = _topo([expr], set(wrt))
    return _sweep(expr, wrt, order, dep)


def reverse_jacobian(exprs: Iterable, wrt: Sequence[sympy.Symbol]) -> sympy.Matrix:
    """The Jacobian ``d exprs[i] / d wrt[j]`` (one reverse sweep per output, shared DAG order)."""
    exprs = [sympy.sympify(e) for e in exprs]
    wrt = list(wrt)
    order, dep = _topo(exprs, set(wrt))
    return sympy.Matrix([_sweep(e, wrt, order, dep) for e in exprs]) if exprs else \
        sympy.zeros(0, len(wrt))


# ---------------------------------------------------------------------------------------------
# helpers shared by tracing and explain

def exactify_floats(expr, max_den_bits: int = 20):
    """Replace Floats whose float64 value is an exact short binary fraction (2.0, 0.5, 3.0) by
    the equal Rational. Exact, not an approximation: 0.1 stays a Float."""
    if not isinstance(expr, sympy.Basic):
        return expr
    floats = expr.atoms(sympy.Float)
    if not floats:
        return expr
    rep = {}
    for f in floats:
        r = sympy.Rational(float(f))
        if r.q <= (1 << max_den_bits) and abs(r.p) < (1 << 53):
            rep[f] = r
    return expr.xreplace(rep) if rep else expr


def expression_size(exprs) -> int:
    """Number of distinct nodes in the DAG of ``exprs`` (shared subexpressions counted once)."""
    if isinstance(exprs, sympy.Basic) and not isinstance(exprs, sympy.MatrixBase):
        exprs = [exprs]
    seen: set = set()
    stack = [sympy.sympify(e) for e in exprs]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(n.args)
    return len(seen)


def display_simplify(expr, max_ops: int = 80):
    """``simplify`` for display only, skipped above ``max_ops`` operations (size cap)."""
    if not isinstance(expr, sympy.Basic):
        return expr
    if isinstance(expr, sympy.MatrixBase):
        return expr.applyfunc(lambda e: display_simplify(e, max_ops))
    try:
        if sympy.count_ops(expr) > max_ops:
            return expr
        out = sympy.simplify(expr)
        return out if sympy.count_ops(out) <= sympy.count_ops(expr) else expr
    except Exception:  # simplify is best-effort cosmetics; the unsimplified form is exact
        return expr


# ---------------------------------------------------------------------------------------------
# kinks

def kinks(exprs) -> list:
    """The conditions where ``exprs`` may fail to be differentiable (a superset): the boundaries
    of Piecewise conditions, zeros of Abs/sign/Heaviside arguments and ties of Max/Min.

    >>> import sympy; x = sympy.Symbol("x", real=True)
    >>> kinks(sympy.Abs(x))
    [Eq(x, 0)]
    """
    if isinstance(exprs, sympy.Basic) and not isinstance(exprs, sympy.MatrixBase):
        exprs = [exprs]
    found: dict = {}
    seen: set = set()
    stack = [sympy.sympify(e) for e in exprs]

    def add(lhs, rhs=sympy.S.Zero):
        eq = sympy.Eq(lhs, rhs, evaluate=False)
        if lhs != rhs:
            found.setdefault(eq, None)

    while stack:
        n = stack.pop()
        if n in seen or n.is_Atom:
            continue
        seen.add(n)
        if isinstance(n, Piecewise):
            for ec in n.args:
                for rel in ec.cond.atoms(sympy.core.relational.Relational):
                    add(rel.lhs, rel.rhs)
        elif isinstance(n, (sympy.Abs, sympy.sign, sympy.Heaviside)):
            add(n.args[0])
        elif isinstance(n, (sympy.Max, sympy.Min)):
            a = n.args
            for i in range(len(a)):
                for j in range(i + 1, len(a)):
                    add(a[i], a[j])
        elif isinstance(n, (sympy.floor, sympy.ceiling)):
            add(n.args[0], sympy.floor(n.args[0]))
        stack.extend(n.args)
    return list(found)
