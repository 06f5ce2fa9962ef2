"""``symad diff``: exact partial derivatives of an expression (reverse mode over its DAG)."""
from __future__ import annotations

import argparse
import json
import sys

import sympy

from ..ops.parse import FormulaError, parse
from .reverse import display_simplify, reverse_gradient

DESCRIPTION = ("Print the exact partial derivatives of a SymPy-syntax expression, optionally "
               "evaluated at a point.")
EPILOG = """examples:
  symad diff "x**2 + 3*x*y + y**2" --wrt x y
  symad diff "x**2 + 3*x*y + y**2" --wrt x y --at x=2 y=3     # 13 and 12
  symad diff "tanh(w*x + b)" --latex
  symad diff "abs(x) + max(x, 0)" --json

exit codes: 0 success, 2 usage error (the expression or a --at value cannot be parsed)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("expression", help='the expression, e.g. "x**2 + 3*x*y + y**2"')
    parser.add_argument("--wrt", nargs="+", action="extend", metavar="VAR",
                        help="variables to differentiate by (default: all, sorted)")
    parser.add_argument("--at", nargs="+", action="extend", metavar="VAR=VALUE", default=[],
                        help="evaluate the partials at this point")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="print LaTeX")
    fmt.add_argument("--json", action="store_true", help="print JSON")


def _parse(text: str) -> sympy.Expr:
    """The one formula parser (``symad.ops.parse``): registry functions, ``2x``, real symbols."""
    return parse(text)


def run(args) -> int:
    try:
        expr = _parse(args.expression)
    except FormulaError as e:
        print(f"symad diff: cannot parse {args.expression!r}: {e}", file=sys.stderr)
        return 2
    syms = {s.name: s for s in expr.free_symbols}
    names = args.wrt or sorted(syms)
    wrt = [syms.get(n, sympy.Symbol(n, real=True)) for n in names]
    grads = [display_simplify(g) for g in reverse_gradient(expr, wrt)]
    point = {}
    for item in args.at:
        if "=" not in item:
            print(f"symad diff: --at expects VAR=VALUE, got {item!r}", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        point[syms.get(k, sympy.Symbol(k, real=True))] = sympy.sympify(v)
    values = [g.xreplace(point) if point else None for g in grads]
    if args.json:
        print(json.dumps({"expression": str(expr), "partials": {
            n: {"expr": str(g), "latex": sympy.latex(g),
                **({"value": _num(v)} if v is not None else {})}
            for n, g, v in zip(names, grads, values)}}, indent=2))
        return 0
    for n, g, v in zip(names, grads, values):
        if args.latex:
            line = r"\frac{\partial f}{\partial %s} = %s" % (sympy.latex(sympy.Symbol(n)),
                                                          sympy.latex(g))
            if v is not None:
                line += " = " + sympy.latex(v)
        else:
            line = f"d/d{n} = {g}" + (f" = {v}" if v is not None else "")
        print(line)
    return 0


def _num(v):
    v = sympy.nsimplify(v) if v.is_Float else v
    if v.is_Integer:
        return int(v)
    try:
        return float(v)
    except TypeError:
        return str(v)
