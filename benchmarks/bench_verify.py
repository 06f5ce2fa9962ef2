"""Verification at real size: symad's exact verdict next to a numeric float64 gradcheck.

For every case of the corpus in tests/verify_corpus (published hand-derived tensor gradients in
CS231n-style numpy, each correct and with realistic bugs), this reports

* symad: ``check_gradient(f, backward, ...)`` — verdict, what it rests on, wall time;
* gradcheck: symad's own numeric ``gradcheck`` (float64, PyTorch's defaults) of the *same code*:
  the forward and the hand-written backward wrapped in an ``autograd.Function``;

and whether each verdict matches the case's label. Not a timed test.

Run: ``python benchmarks/bench_verify.py`` (``--only NAME`` for one case).
"""
from __future__ import annotations

import argparse
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

import symad  # noqa: E402
from symad import check_gradient  # noqa: E402
from symad.autograd import Function, GradcheckError, gradcheck  # noqa: E402
from verify_corpus import Case, all_cases  # noqa: E402


def as_function(case: Case):
    """The case's forward and claimed backward as a custom autograd.Function."""
    names = list(case.inputs)

    class Claimed(Function):
        @staticmethod
        def forward(ctx, *args):
            ctx.save_for_backward(*[a for a in args if isinstance(a, symad.Tensor)])
            ctx.args = args
            with symad.no_grad():
                return case.f(**dict(zip(names, args)))

        @staticmethod
        def backward(ctx, g):
            res = case.claimed(**dict(zip(names, ctx.args)))
            if isinstance(res, dict):
                grads = {k: res.get(k) for k in case.wrt}
            else:
                res = res if isinstance(res, (tuple, list)) else (res,)
                grads = {k: res[names.index(k)] for k in case.wrt} if len(res) == len(names) \
                    else dict(zip(case.wrt, res))
            return tuple(g * grads[n] if n in case.wrt and grads.get(n) is not None else None
                         for n in names)
    return Claimed


def float_inputs(case: Case) -> list:
    out = []
    for name, t in case.inputs.items():
        arr = np.array(t.detach().numpy())
        if arr.dtype.kind == "f":
            out.append(symad.tensor(arr.astype(np.float64), requires_grad=name in case.wrt))
        else:
            out.append(t)
    return out


def run_gradcheck(case: Case) -> tuple[str, float]:
    t0 = time.perf_counter()
    try:
        ok = gradcheck(as_function(case).apply, tuple(float_inputs(case)))
        verdict = "right" if ok else "wrong"
    except GradcheckError:
        verdict = "wrong"
    except (RuntimeError, ValueError, TypeError) as exc:  # e.g. a wrong-shaped gradient
        verdict = f"wrong ({type(exc).__name__})"
    return verdict, time.perf_counter() - t0


def run_symad(case: Case) -> tuple[str, str, float]:
    t0 = time.perf_counter()
    r = check_gradient(case.f, case.claimed, wrt=case.wrt, inputs=case.inputs,
                       constants=case.constants)
    took = time.perf_counter() - t0
    verdict = "right" if r.ok else ("wrong" if any(i.equal is False for i in r.items)
                                    else "undecided")
    return verdict, f"{r.status}; {r.basis}", took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="run the cases whose name contains this")
    args = ap.parse_args()
    cases = [c for c in all_cases() if args.only is None or args.only in c.name]
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{len(cases)} cases")
    print(f"{'case':36s} {'label':6s} | {'symad':9s} {'time':>7s} | {'gradcheck':16s} "
          f"{'time':>7s} | rests on")
    times, right, g_right = [], 0, 0
    for c in cases:
        sv, basis, st = run_symad(c)
        gv, gt = run_gradcheck(c)
        times.append(st)
        right += sv == c.expect
        g_right += gv.split()[0] == c.expect
        print(f"{c.name:36s} {c.expect:6s} | {sv:9s} {st:6.2f}s | {gv:16s} {gt:6.2f}s | {basis}",
              flush=True)
    print(f"\nsymad: {right}/{len(cases)} verdicts right; median {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s, total {sum(times):.1f} s")
    print(f"gradcheck: {g_right}/{len(cases)} verdicts right")


if __name__ == "__main__":
    main()
