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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symad", description="symad: exact symbolic gradients, verified and compiled.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
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
