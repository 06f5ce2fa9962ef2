"""``symad export FILE.py:FUNCTION --input NAME=DTYPE[SHAPE] ...``: the command line of export."""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np

DESCRIPTION = """\
Export a function's forward value and exact gradient as a C library: LLVM IR (.ll), an object
(.o), a shared library (lib NAME.so), a header (NAME.h) documenting the ABI and each output's
formula, a self-checking test program (NAME_test.c) and a manifest (NAME.json).

Inputs are given in the function's argument order as NAME=DTYPE[SHAPE]: DTYPE is float64 or
float32; SHAPE lists dimensions, with N as the first dimension of a data input (the batch, the C
argument n). Inputs without N are parameters: they are differentiated by the grad function.
Sample values (random normal, --seed) feed the trace and the test program's expected values."""

EPILOG = """\
examples:
  symad export model.py:loss --input X=float64[N,2] --input y=float64[N,1] \\
      --input w=float64[2,1] --input b=float64[1] --name linreg --out-dir build
  symad export fit.py:mse --input x=float64[N] --input y=float64[N] --input theta=float64[5] \\
      --name curve --target aarch64-unknown-linux-gnu --formats h,o,ll --json
  cd build && cc -O2 linreg_test.c linreg.o -lm && ./a.out    # verify on this machine

exit codes: 0 exported, 2 usage error (bad --input, no such file, not exportable)"""

_SPEC = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(float64|float32)\s*\[([^\]]*)\]\s*\Z")


def parse_input(text: str) -> tuple[str, str, tuple]:
    """``"X=float64[N,2]"`` -> ``("X", "float64", ("N", 2))``."""
    m = _SPEC.match(text)
    if not m:
        raise ValueError(f"--input {text!r}: expected NAME=DTYPE[SHAPE], e.g. X=float64[N,2] or "
                         "w=float64[5] (DTYPE float64 or float32; N marks the batch dimension)")
    name, dtype, dims = m.groups()
    shape: list = []
    for k, d in enumerate(x.strip() for x in dims.split(",") if x.strip()):
        if d == "N":
            if k != 0:
                raise ValueError(f"--input {text!r}: N (the batch) must be the first dimension")
            shape.append("N")
        elif d.isdigit():
            shape.append(int(d))
        else:
            raise ValueError(f"--input {text!r}: dimension {d!r} is neither N nor an integer")
    return name, dtype, tuple(shape)


def load_callable(ref: str):
    """``path/to/file.py:name`` -> the object (an nn.Module class is instantiated)."""
    path, sep, attr = ref.rpartition(":")
    if not sep or not path or not attr:
        raise ValueError(f"{ref!r}: expected path/to/file.py:function")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{ref!r}: no such file {path!r}")
    spec = importlib.util.spec_from_file_location(f"_symad_export_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{ref!r}: {path} has no attribute {attr!r}")
        obj = getattr(obj, part)
    from ..nn import Module
    if isinstance(obj, type) and issubclass(obj, Module):
        obj = obj()
    return obj


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("function", help="path/to/file.py:function (or an nn.Module there)")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=DTYPE[SHAPE]",
                   help="one per argument, in order; N marks the batch dimension")
    p.add_argument("--name", help="prefix of the C functions and files (default: the function)")
    p.add_argument("--out-dir", "-o", default=".", help="directory to write to (default .)")
    p.add_argument("--what", default="forward,grad", help="forward,grad (default both)")
    p.add_argument("--formats", default=None,
                   help="comma list of h,o,so,ll (default all; h,o,ll for a foreign --target)")
    p.add_argument("--target", default=None, help="LLVM triple, e.g. aarch64-unknown-linux-gnu")
    p.add_argument("--cpu", default=None, help="CPU name (default: host CPU, or generic)")
    p.add_argument("--batch", type=int, default=8, help="sample batch size N (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample inputs")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args: argparse.Namespace) -> int:
    from .export import ExportError, export
    try:
        if not args.input:
            raise ValueError("give the inputs with --input NAME=DTYPE[SHAPE] (one per argument)")
        if args.batch < 1:
            raise ValueError("--batch must be >= 1")
        fn = load_callable(args.function)
        rng = np.random.default_rng(args.seed)
        import symad
        inputs, batched = {}, []
        for text in args.input:
            name, dtype, shape = parse_input(text)
            if name in inputs:
                raise ValueError(f"--input {name!r} given twice")
            concrete = tuple(args.batch if d == "N" else d for d in shape)
            value = rng.normal(size=concrete).astype(dtype)
            is_data = bool(shape) and shape[0] == "N"
            inputs[name] = symad.tensor(value, requires_grad=not is_data)
            if is_data:
                batched.append(name)
        name = args.name or args.function.rpartition(":")[2].replace(".", "_")
        result = export(fn, inputs, args.out_dir, name=name,
                        what=tuple(w.strip() for w in args.what.split(",") if w.strip()),
                        formats=None if args.formats is None else
                        tuple(f.strip() for f in args.formats.split(",") if f.strip()),
                        target=args.target, cpu=args.cpu, batched=batched)
    except (ValueError, ExportError) as e:
        print(f"symad export: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the user's code raised: a usage problem, not a verdict
        print(f"symad export: error: {args.function} raised {type(e).__name__}: {e}",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.manifest, indent=2))
    else:
        for kind, path in result.files.items():
            print(f"wrote {path}")
        print(f"verify: cd {result.out_dir} && cc -O2 {name}_test.c {name}.o "
              f"{result.manifest['link_flags']} && ./a.out")
    return 0
