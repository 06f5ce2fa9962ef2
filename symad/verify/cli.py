"""``symad check``: prove a hand-derived gradient right, or show where it is wrong.

Exit codes: 0 proved right, 1 wrong, 2 undecided (or a usage error).
"""
from __future__ import annotations

import argparse
import sys

DESCRIPTION = ("Check claimed partial derivatives of a formula exactly: the residual is simplified "
               "to 0 (proved right), or a rational counterexample is found (proved wrong).")
EPILOG = """examples:
  symad check "x**2 + 3*x*y + y**2" --claim x="2*x+3*y" --claim y="3*x+3*y"
  symad check "x**2 + 3*x*y + y**2" --claim x=10 --claim y=13 --at x=2 --at y=3
  symad check "log(1+exp(x))" --claim x="sigmoid(x)" --json
  symad check "tanh(x)" --claim x="1 - tanh(x)**2" --timeout 5

exit codes: 0 proved right, 1 wrong, 2 undecided
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("f", help="the function, a formula in named variables (SymPy syntax; "
                        "^ is a power, 2x a product; every symad function is known)")
    parser.add_argument("--claim", action="extend", nargs="+", default=[],
                        metavar="VAR=FORMULA",
                        help="a claimed partial derivative (a formula, or a number with --at)")
    parser.add_argument("--at", action="extend", nargs="+", default=[], metavar="VAR=VALUE",
                        help="a point for value claims (and for showing values)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="time budget for the verdict (default 30); what is not decided "
                        "by then is reported as undecided or as equal at k random points")


def _pairs(items, what) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"{what} expects VAR=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _value(s: str):
    import sympy as sp

    from .symbolic_inputs import parse
    try:
        return sp.Rational(s)  # "10", "0.5", "1/3", "1e-9": exact
    except (TypeError, ValueError):
        return parse(s)


def run(args) -> int:
    from .check import check_gradient
    try:
        claims = _pairs(args.claim, "--claim")
        at = {k: _value(v) for k, v in _pairs(args.at, "--at").items()} or None
        if not claims:
            raise ValueError("give at least one --claim VAR=FORMULA")
        if at is not None:
            # a plain number is a claimed value at the point
            claimed = {}
            for k, v in claims.items():
                try:
                    claimed[k] = _value(v) if _is_number(v) else v
                except ValueError:
                    claimed[k] = v
        else:
            claimed = dict(claims)
        if args.timeout <= 0:
            raise ValueError(f"--timeout must be positive, got {args.timeout}")
        report = check_gradient(args.f, claimed, at=at, timeout=args.timeout)
    except (ValueError, TypeError) as exc:
        print(f"symad check: error: {exc}", file=sys.stderr)
        return 2
    print(report.to_json(indent=2) if args.json else str(report))
    return report.exit_code


def _is_number(s: str) -> bool:
    import sympy as sp
    try:
        sp.Rational(s)
        return True
    except (TypeError, ValueError):
        return False
