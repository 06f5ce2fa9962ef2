"""``symad demo``: a tour of symad on the seed tutorials' own examples.

Four parts, each runnable alone (``--part N``):

1. exact derivative formulas next to the autograd numbers PyTorch users know (seed 000, 002);
2. the verifier catching seed 002's wrong hand-derived gradient (10 and 13 at (2, 3));
3. seed 001's d2l linear regression trained eagerly and with ``symad.compile``, timed;
4. the same model's loss and exact gradient exported (``symad.export``) and called from C.

Every number printed is computed while the demo runs. A part whose feature is not importable,
or that needs a missing C compiler, says so and is skipped. Exit code 0 when every part ran or
was skipped for a reason outside symad, 1 when a part failed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

DESCRIPTION = """\
A tour of symad on the seed tutorials' own examples, in four parts:
  1  exact derivative formulas next to autograd's numbers (d(2w^2)/dw = 4w = 40 at w = 10)
  2  the verifier catching a hand-derived slip (seed 002 claims 10 and 13; the truth is 13, 12)
  3  the d2l linear regression trained eagerly and compiled (symad.compile), with the speed-up
  4  the model's exact loss gradient exported as a C library and called from a C program
Every number is computed as the demo runs (well under a minute)."""

EPILOG = """\
examples:
  symad demo                 # all four parts
  symad demo --part 2        # only the verification part
  symad demo --part 4 --out-dir build/demo   # keep the exported C files
  symad demo --json          # machine-readable results

exit codes: 0 every part ran (or was skipped for a stated reason), 1 a part failed, 2 usage"""

PARTS = {1: "Exact derivatives next to the numbers you know",
         2: "Verification catches a hand-derived slip",
         3: "Training: eager vs symad.compile",
         4: "Export: the exact gradient, called from C"}


class Skip(Exception):
    """A part cannot run here; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", type=int, action="append", choices=sorted(PARTS),
                        metavar="N", help="run only part N (1-4); repeatable")
    parser.add_argument("--no-color", action="store_true",
                        help="plain text even on a terminal (NO_COLOR is honoured too)")
    parser.add_argument("--json", action="store_true",
                        help="print the computed results as one JSON object")
    parser.add_argument("--out-dir", metavar="DIR",
                        help="part 4: write the exported kernel and C program here (kept)")


# -- output --------------------------------------------------------------------------------------
class _Out:
    """Plain text; light ANSI colour only on a terminal; silent in --json mode."""

    CODES = {"bold": "1", "dim": "2", "green": "32", "red": "31", "yellow": "33", "cyan": "36"}

    def __init__(self, color: bool, quiet: bool) -> None:
        self.color = color
        self.quiet = quiet

    def c(self, text: str, style: str) -> str:
        if not self.color:
            return text
        codes = ";".join(self.CODES[s] for s in style.split())
        return f"\033[{codes}m{text}\033[0m"

    def __call__(self, text: str = "") -> None:
        if self.quiet:
            return
        try:
            print(text)
        except UnicodeEncodeError:  # a terminal that cannot show ∂ and friends
            print(text.encode("ascii", "replace").decode("ascii"))
        sys.stdout.flush()

    def heading(self, n: int, title: str) -> None:
        self()
        self(self.c(f"== {n}. {title} ", "bold cyan") + self.c("=" * max(3, 74 - len(title)),
                                                            "cyan"))

    def ok(self, text: str) -> str:
        return self.c(text, "green")

    def bad(self, text: str) -> str:
        return self.c(text, "red bold")


def _num(v: float) -> str:
    """A float as Python prints it, shortened when long."""
    r = repr(float(v))
    return r if len(r) <= 10 else f"{float(v):.6g}"


def _need(module: str, attr: str | None = None):
    """Import a piece of symad; raise Skip naming it when this build lacks it."""
    import importlib
    try:
        mod = importlib.import_module(module)
        return getattr(mod, attr) if attr else mod
    except (ImportError, AttributeError) as e:
        what = f"{module}.{attr}" if attr else module
        raise Skip(f"{what} is not available in this build ({type(e).__name__}: {e})") from e


# -- part 1 --------------------------------------------------------------------------------------
def part1(out: _Out) -> dict:
    import symad
    explain = _need("symad.symbolic", "explain")

    w = symad.tensor(10.0, requires_grad=True)
    loss = 2 * w ** 2
    ex = explain(loss)  # before backward(), which frees the graph
    loss.backward()
    e = ex["w"]
    grad, exact_value, formula = w.grad.item(), float(e.value[()]), str(e.display[()])
    step = w - 0.01 * w.grad
    out("  seed 000:  w = symad.tensor(10.0, requires_grad=True);  loss = 2 * w ** 2")
    out(f"    autograd (as in PyTorch)   loss.backward(); w.grad = {_num(grad)}")
    out(f"    exact (symad.explain)      d loss/d w = {out.c(formula, 'bold')} = "
        f"{_num(exact_value)}   " + (out.ok("[agree]") if exact_value == grad
                                      else out.bad("[DISAGREE]")))
    out(f"    one SGD step, lr 0.01      w - lr * w.grad = {_num(step.item())}   "
        f"grad_fn=<{step.grad_fn.name()}>")

    x = symad.tensor(2.0, requires_grad=True)
    y = symad.tensor(3.0, requires_grad=True)
    z = x ** 2 + 3 * x * y + y ** 2
    ez = explain(z)
    z.backward()
    rows = {n: (str(ez[n].display[()]), float(ez[n].value[()])) for n in ("x", "y")}
    auto = {"x": x.grad.item(), "y": y.grad.item()}
    out()
    out("  seed 002:  z = x**2 + 3*x*y + y**2  at x = 2, y = 3")
    out(f"    autograd                   x.grad = {_num(auto['x'])}, y.grad = {_num(auto['y'])}")
    for k, n in enumerate(("x", "y")):
        label = "exact (symad.explain)" if k == 0 else ""
        f, v = rows[n]
        out(f"    {label:26s} d z/d {n} = {out.c(f, 'bold')} = {_num(v)}   "
            + (out.ok("[agree]") if v == auto[n] else out.bad("[DISAGREE]")))
    return {"loss": loss.item(), "w_grad": grad, "dloss_dw": formula, "dloss_dw_value": exact_value,
            "sgd_step": step.item(), "sgd_step_grad_fn": step.grad_fn.name(),
            "z_grad": auto, "dz": {n: {"formula": f, "value": v} for n, (f, v) in rows.items()}}


# -- part 2 --------------------------------------------------------------------------------------
def part2(out: _Out) -> dict:
    check_gradient = _need("symad.verify", "check_gradient")
    f = "x**2 + 3*x*y + y**2"
    claimed = {"x": 10, "y": 13}  # what the seed tutorial's text says
    at = {"x": 2, "y": 3}
    out(f"  The tutorial says: for z = {f}, at (x, y) = (2, 3), dz/dx = 10 and dz/dy = 13.")
    out('  symad.check_gradient("x**2 + 3*x*y + y**2", {"x": 10, "y": 13}, at={"x": 2, "y": 3})')
    r = check_gradient(f, claimed, at=at)
    items = {}
    for it in r.items:
        verdict = it.verdict()
        mark = out.ok(verdict) if it.ok else out.bad(verdict)
        out(f"    dz/d{it.name}   claimed {it.claimed_value}   exact {it.exact} = "
            f"{it.exact_value}   {mark}")
        if it.hint:
            out(f"           hint: {it.hint}")
        items[it.name] = {"claimed": str(it.claimed_value), "exact": str(it.exact),
                          "exact_value": str(it.exact_value), "verdict": verdict}
    out(f"  verdict: {out.bad(r.status) if not r.ok else out.ok(r.status)}"
        f"   (symad check exit code {r.exit_code})")
    fixed = {"x": "2*x + 3*y", "y": "3*x + 2*y"}
    r2 = check_gradient(f, fixed)
    out(f"  the corrected formulas dz/dx = {fixed['x']}, dz/dy = {fixed['y']}: "
        + (out.ok(r2.status) if r2.ok else out.bad(r2.status)) + " for all x, y")
    return {"claimed": {k: v for k, v in claimed.items()}, "at": at, "items": items,
            "verdict": r.status, "exit_code": r.exit_code, "corrected_verdict": r2.status}


# -- part 3 --------------------------------------------------------------------------------------
TRUE_W, TRUE_B, N_SAMPLES, NOISE = [2, -3.4], 4.2, 1000, 0.01  # seed 001's synthetic data
EPOCHS, BATCH, LR = 3, 10, 0.03                                 # seed 001's training loop
C_STEPS, C_LR = 200, 0.1                                        # part 4's C gradient descent


def _d2l_data(n: int = N_SAMPLES):
    """Seed 001's synthetic data: y = X @ TRUE_W + TRUE_B + noise (std NOISE)."""
    import symad
    g = symad.Generator().manual_seed(0)
    X = symad.normal(0, 1, (n, 2), generator=g)
    y = X @ symad.tensor(TRUE_W) + TRUE_B + symad.normal(0, NOISE, (n,), generator=g)
    return X, y.reshape(-1, 1)


def squared_loss(X, y, w, b):
    """Seed 001's per-sample loss of the linear model, (Xw + b - y)^2 / 2."""
    return (X @ w + b - y) ** 2 / 2


def _train(loss_fn, X, y, *, epochs=EPOCHS, batch=BATCH, lr=LR):
    """Seed 001's from-scratch loop (minibatch SGD under no_grad); returns timings and params."""
    import symad
    w = symad.normal(0, 0.01, (2, 1), generator=symad.Generator().manual_seed(1))
    w.requires_grad_(True)
    b = symad.zeros(1, requires_grad=True)
    gen = symad.Generator().manual_seed(2)
    n = len(X)
    times = []
    for _ in range(epochs):
        idx = gen.permutation(n)
        for i in range(0, n, batch):
            j = idx[i:i + batch]
            t0 = time.perf_counter()
            loss_fn(X[j], y[j], w, b).sum().backward()
            with symad.no_grad():
                for p in (w, b):
                    p -= lr * p.grad / batch
                    p.grad.zero_()
            times.append(time.perf_counter() - t0)
    with symad.no_grad():
        final = squared_loss(X, y, w, b).mean().item()
    return {"first_step": times[0], "per_step": float(np.median(times[1:])), "steps": len(times),
            "w": w.detach().numpy().ravel().tolist(), "b": b.item(), "loss": final}


def part3(out: _Out) -> dict:
    compile_ = _need("symad.compiler", "compile")
    X, y = _d2l_data()
    steps = EPOCHS * -(-len(X) // BATCH)
    out(f"  seed 001 (d2l): {len(X)} samples, y = X @ {TRUE_W} + {TRUE_B} + noise; minibatches of "
        f"{BATCH},")
    out(f"  lr {LR}, {EPOCHS} epochs = {steps} SGD steps; loss (X @ w + b - y)**2 / 2 summed, "
        f"{X.dtype}")
    eager = _train(squared_loss, X, y)
    compiled_fn = compile_(squared_loss)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        comp = _train(compiled_fn, X, y)
    fell_back = [str(c.message) for c in caught if "eagerly" in str(c.message)]
    out()
    out(f"    {'':10s} {'per step':>10s}   {'learned w':22s} {'b':>8s}   {'final loss':>10s}")
    for label, r in (("eager", eager), ("compiled", comp)):
        wtxt = "[" + ", ".join(f"{v:.4f}" for v in r["w"]) + "]"
        out(f"    {label:10s} {r['per_step'] * 1e6:8.0f} us   {wtxt:22s} {r['b']:8.4f}   "
            f"{r['loss']:10.3g}")
    speedup = eager["per_step"] / comp["per_step"]
    diff = float(np.max(np.abs(np.array(eager["w"] + [eager["b"]])
                               - np.array(comp["w"] + [comp["b"]]))))
    out()
    if fell_back:
        out("  " + out.bad("symad.compile fell back to eager: ") + fell_back[0])
    out(f"  speed-up per step (median of {comp['steps'] - 1}): "
        + out.c(f"{speedup:.1f}x", "bold green" if speedup > 1 else "bold yellow")
        + f"; the first compiled call (trace, exact gradient, JIT) took "
          f"{comp['first_step'] * 1e3:.0f} ms")
    out(f"  eager and compiled parameters agree to {diff:.1g}; the truth is w = {TRUE_W}, "
        f"b = {TRUE_B}")
    return {"eager": eager, "compiled": comp, "speedup": speedup, "max_param_diff": diff,
            "compiled_count": getattr(compiled_fn, "compile_count", None),
            "fell_back": fell_back}


# -- part 4 --------------------------------------------------------------------------------------
C_MAIN = r"""/* demo_main.c - calls the kernel symad exported (linreg.h) from plain C. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "linreg.h"

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s DATA.bin N\n", argv[0]); return 2; }
    int64_t n = atoll(argv[2]);
    double *X = malloc(sizeof(double) * n * 2), *y = malloc(sizeof(double) * n);
    FILE *f = fopen(argv[1], "rb");
    if (!f || !X || !y || fread(X, sizeof(double), n * 2, f) != (size_t)(n * 2)
        || fread(y, sizeof(double), n, f) != (size_t)n) { fprintf(stderr, "bad data\n"); return 2; }
    fclose(f);
    double w[2] = {0, 0}, b[1] = {0}, loss, gw[2], gb[1];
    if (linreg_grad(n, X, y, w, b, &loss, gw, gb) != LINREG_OK) return 1;
    printf("start %.17g %.17g %.17g %.17g\n", loss, gw[0], gw[1], gb[0]);
    for (int step = 0; step < STEPS; step++) {   /* full-batch gradient descent */
        if (linreg_grad(n, X, y, w, b, &loss, gw, gb) != LINREG_OK) return 1;
        w[0] -= LR * gw[0]; w[1] -= LR * gw[1]; b[0] -= LR * gb[0];
    }
    printf("final %.17g %.17g %.17g %.17g\n", loss, w[0], w[1], b[0]);
    free(X); free(y);
    return 0;
}
"""


def mean_loss(X, y, w, b):
    """The d2l model's mean squared loss, the function part 4 exports."""
    return ((X @ w + b - y) ** 2 / 2).mean()


def _find_cc() -> str | None:
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def _run(cmd, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def part4(out: _Out, out_dir: str | None = None) -> dict:
    export = _need("symad.export_", "export")
    cc = _find_cc()
    if out_dir:
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        tmp = None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="symad-demo-")
        d = Path(tmp.name)
    try:
        return _part4(out, export, cc, d, keep=tmp is None)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _part4(out: _Out, export, cc, d: Path, keep: bool) -> dict:
    import symad
    X32, y32 = _d2l_data()
    X = X32.to(dtype=symad.float64)
    y = y32.to(dtype=symad.float64)
    # the kernel does not depend on N: trace on 8 samples, run on all 1000
    w0 = symad.zeros(2, 1, dtype=symad.float64, requires_grad=True)
    b0 = symad.zeros(1, dtype=symad.float64, requires_grad=True)
    formats = ("h", "o", "so", "ll") if cc else ("h", "o", "ll")
    res = export(mean_loss, (X[:8], y[:8], w0, b0), d, name="linreg", formats=formats)
    files = sorted(p.name for k, p in res.files.items())
    grad_fn = next(f for f in res.manifest["functions"] if f["what"] == "grad")
    formulas = {o["name"]: o["formulas"] for o in grad_fn["outputs"]}
    out('  symad.export(mean_loss, (X, y, w, b), DIR, name="linreg")   (float64; N is free)')
    out(f"    wrote {', '.join(files)}" + (f"  in {d}" if keep else ""))
    out(f"    {grad_fn['c_signature']};")
    out(f"    grad_w[0] <- {formulas['grad_w'][0]}   (mean over the n samples)")
    result = {"files": files, "c_signature": grad_fn["c_signature"], "formulas": formulas}
    if cc is None:
        out("  " + out.c("skipped the C program: no C compiler found ($CC, cc, gcc, clang); "
                         "install one to call the kernel from C", "yellow"))
        result["skipped_c"] = "no C compiler found ($CC, cc, gcc, clang)"
        return result
    (d / "demo_main.c").write_text(C_MAIN.replace("#include \"linreg.h\"",
                                                  f"#include \"linreg.h\"\n#define STEPS {C_STEPS}"
                                                  f"\n#define LR {C_LR!r}"))
    data = np.concatenate([X.numpy().ravel(), y.numpy().ravel()]).astype(np.float64)
    data.tofile(d / "data.bin")
    link = res.manifest.get("link_flags", "-lm").split()
    build = [cc, "-O2", "-o", "demo_main", "demo_main.c", "linreg.o"] + link
    p = _run(build, d)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(build)} failed:\n{p.stderr}")
    p = _run([str(d / "demo_main"), "data.bin", str(len(X))], d)
    if p.returncode != 0:
        raise RuntimeError(f"demo_main exited with {p.returncode}:\n{p.stderr}")
    lines = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in p.stdout.splitlines()}
    c_start, c_final = lines["start"], lines["final"]
    # the same numbers from symad's eager autograd, independently
    w = symad.zeros(2, 1, dtype=symad.float64, requires_grad=True)
    b = symad.zeros(1, dtype=symad.float64, requires_grad=True)
    lv = mean_loss(X, y, w, b)
    lv.backward()
    py_start = [lv.item(), *w.grad.numpy().ravel().tolist(), b.grad.item()]
    rel = max(abs(a - e) / max(1.0, abs(e)) for a, e in zip(c_start, py_start))
    out(f"  {' '.join([os.path.basename(cc)] + build[1:])}")
    out(f"  ./demo_main data.bin {len(X)}        ({len(X)} samples of part 3's data, as doubles)")
    out(f"    C, at w = 0, b = 0:      loss {c_start[0]:.6f}   grad_w [{c_start[1]:.6f}, "
        f"{c_start[2]:.6f}]   grad_b {c_start[3]:.6f}")
    out(f"    symad autograd, same:    loss {py_start[0]:.6f}   grad_w [{py_start[1]:.6f}, "
        f"{py_start[2]:.6f}]   grad_b {py_start[3]:.6f}   "
        + (out.ok(f"[max rel. diff {rel:.1g}]") if rel < 1e-12 else out.bad(f"[diff {rel:.1g}]")))
    out(f"    C, {C_STEPS} gradient-descent steps (lr {C_LR}): w = [{c_final[1]:.4f}, {c_final[2]:.4f}], "
        f"b = {c_final[3]:.4f}, loss {c_final[0]:.3g}")
    result.update({"compiler": cc, "c_start": c_start, "symad_start": py_start,
                   "max_rel_diff": rel, "c_final": {"loss": c_final[0], "w": c_final[1:3],
                                                    "b": c_final[3]}})
    if "test" in res.files:
        harness = [cc, "-O2", "-o", "linreg_test", "linreg_test.c", "linreg.o"] + link
        p1 = _run(harness, d)
        p2 = _run([str(d / "linreg_test")], d) if p1.returncode == 0 else p1
        ok = p2.returncode == 0
        out("  the generated self-test linreg_test.c (symad's values embedded): "
            + (out.ok("passed") if ok else out.bad(f"FAILED (exit {p2.returncode})")))
        result["self_test_exit"] = p2.returncode
        if not ok:
            raise RuntimeError(f"linreg_test failed:\n{p2.stdout}\n{p2.stderr}")
    return result


# -- driver --------------------------------------------------------------------------------------
def run(args) -> int:
    color = (not args.no_color and not args.json and not os.environ.get("NO_COLOR")
             and sys.stdout.isatty())
    out = _Out(color, quiet=args.json)
    parts = sorted(set(args.part)) if args.part else sorted(PARTS)
    t_start = time.perf_counter()
    out(out.c("symad demo", "bold") + ": exact gradients, verified, compiled and exported, on the"
        " seed tutorials' own examples")
    results: dict = {}
    status = 0
    for n in parts:
        out.heading(n, PARTS[n])
        t0 = time.perf_counter()
        try:
            fn = {1: part1, 2: part2, 3: part3}.get(n)
            data = fn(out) if fn else part4(out, args.out_dir)
            results[str(n)] = {**data, "status": "ok"}
        except Skip as e:
            out("  " + out.c(f"skipped: {e}", "yellow"))
            results[str(n)] = {"status": "skipped", "reason": str(e)}
        except Exception as e:  # report and go on with the other parts
            out("  " + out.bad(f"failed: {type(e).__name__}: {e}"))
            if not args.json:
                traceback.print_exc(file=sys.stderr)
            results[str(n)] = {"status": "failed", "reason": f"{type(e).__name__}: {e}"}
            status = 1
        results[str(n)]["seconds"] = time.perf_counter() - t0
    total = time.perf_counter() - t_start
    out()
    out(out.c(f"done in {total:.1f} s", "dim") + "  (next: docs/getting_started.md, "
        "`symad check --help`, `symad export --help`)")
    if args.json:
        print(json.dumps({"parts": results, "seconds": total, "exit_code": status}, indent=2,
                         default=str))
    return status
