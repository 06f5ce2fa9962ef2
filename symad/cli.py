"""The ``symad`` command line. Each subcommand lives with the feature it drives and is loaded on
demand; exit codes: 0 success (or "proved right"), 1 a negative verdict, 2 usage error or
undecided."""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, function adding its arguments, function running it, one-line help)
SUBCOMMANDS = {
    "demo": ("symad.demo", "A tour of symad on the seed tutorials' own examples."),
    "diff": ("symad.symbolic.cli", "Exact partial derivatives of an expression."),
    "check": ("symad.verify.cli", "Prove a hand-derived gradient right, or show where it is wrong."),
    "export": ("symad.export_.cli", "Export forward/gradient kernels as .ll/.o/.so/.h."),
}


EPILOG = """\
examples:
  symad demo                                   # the tour, on the seed tutorials' examples
  symad diff "x**2 + 3*x*y + y**2" --at x=2 y=3
  symad check "x**2 + 3*x*y + y**2" --claim x=10 y=13 --at x=2 y=3
  symad export model.py:loss --input X=float64[N,2] --input w=float64[2] --name m
  symad COMMAND --help                         # options and examples of one command

exit codes: 0 success (or "proved right"), 1 a negative verdict (e.g. a gradient proved
wrong), 2 a usage error or an undecided verdict. --json gives machine-readable output."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symad", description="symad: exact symbolic gradients, verified and compiled.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("symad"):
                continue  # feature not installed in this build
            raise
        p = sub.add_parser(name, help=help_, description=getattr(module, "DESCRIPTION", help_),
                           epilog=getattr(module, "EPILOG", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import symad
        print(f"symad {symad.__version__}")
        return 0
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
