"""Differential fuzzing: random programs over the registry ops (tests/fuzz_programs.py) run
eagerly, traced to SymPy, compiled, through value_and_grad, and as float64 central differences;
every path must agree (PyTorch's conventions at kinks in every path, no crash anywhere).

CI runs ``FUZZ_PROGRAMS`` (default 300) programs, compiling every ``FUZZ_COMPILE_EVERY``-th
(default 25: a native build costs ~0.5 s); ``make fuzz`` runs a long budget with every program
compiled. A summary line reports programs run / mismatches / crashes.
"""
from __future__ import annotations

import os
import re
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

import symad
from symad.compiler import CompileWarning
from symad.compiler.native_program import NativeEntry, NativeProgram
from symad.program import capture

from fuzz_programs import Program, programs

N_PROGRAMS = int(os.environ.get("FUZZ_PROGRAMS", "300"))
COMPILE_EVERY = int(os.environ.get("FUZZ_COMPILE_EVERY", "25"))
#: every NATIVE_EVERY-th program also runs as a native tensor program (a build costs ~0.1 s)
NATIVE_EVERY = int(os.environ.get("FUZZ_NATIVE_EVERY", "4"))
DTYPES = os.environ.get("FUZZ_DTYPES", "float64,float32").split(",")
SLOW: list = []  # (seconds, path, program) of the slowest paths, for the summary
STATS = {"programs": 0, "compiled": 0, "fell_back": 0, "fd_checked": 0, "mismatches": 0,
         "crashes": 0, "native": 0, "ties": 0, "one_sided": 0}
PARAMS = ("w", "s", "M")
KINKY = r"where|maximum|minimum|clamp|relu|abs|sign|amax|max\(|index|hard|threshold"


class Mismatch(AssertionError):
    pass


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    print(f"\nfuzz: {STATS['programs']} programs run, {STATS['mismatches']} mismatches, "
          f"{STATS['crashes']} crashes ({STATS['ties']} ties eager's rounding decided and "
          f"{STATS['one_sided']} exact ties eager split that a path took one-sided, "
          f"{STATS['compiled']} compiled, {STATS['native']} as native "
          f"programs, {STATS['fell_back']} fell "
          f"back to eager with the warning, {STATS['fd_checked']} checked against central "
          f"differences)")
    for sec, path, prog in sorted(SLOW, key=lambda t: -t[0])[:int(os.environ.get("FUZZ_SLOW", 0))]:
        print(f"  slow: {sec:.2f} s {path}: {prog.source}")


def _close(a, b, rtol) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    fin = np.isfinite(b)
    scale = 1 + np.abs(b[fin]).max(initial=0)
    return bool(np.array_equal(np.isnan(a), np.isnan(b))
                and np.array_equal(np.isinf(a) & (a > 0), np.isinf(b) & (b > 0))
                and np.allclose(a[fin], b[fin], rtol=rtol, atol=rtol * scale))


def _tensors(prog: Program, dtype, grad=True):
    ts = [symad.tensor(prog.values[n], dtype=dtype, requires_grad=grad) for n in PARAMS]
    return ts, symad.tensor(prog.values["x"], dtype=dtype)


def _eager(fn, prog, dtype):
    ps, x = _tensors(prog, dtype)
    out = fn(*ps, x)
    out.backward()
    return float(out), [np.asarray(p.grad.numpy(), np.float64) if p.grad is not None
                        else np.zeros(p.shape) for p in ps]


def _trace(fn, prog):
    vals = [prog.values[n] for n in PARAMS + ("x",)]
    tr = symad.trace(fn, *vals)
    out = float(tr.evaluate())
    grads = [np.asarray(tr.evaluate(g), np.float64).reshape(np.shape(prog.values[n]))
             for n, g in zip(PARAMS, tr.gradient(wrt=list(PARAMS)))]
    return out, grads


def _tie_by_rounding(fn, prog, ref, got, exact: bool) -> bool:
    """At a kink point two paths may take different branches of a tie that only rounding
    decides. A mismatch between eager's result ``ref`` and another path's ``got`` is excused
    when one of them is the function's own result arbitrarily close to the point (at the point
    moved by ~1e-9), as computed by the other path's method:

    * the exact trace sees ``sqrt(0.5)**2 > 0.5`` False where float64 eager sees True: the trace
      next to the point gives eager's result;
    * float eager sees an exact tie (``-0.75 / 1.5 == -0.5``: the gradient is split) that the
      trace misses, SymPy having canonicalized ``w / 1.5`` into ``0.666666666666667*w``, or
      that a native loop misses, its vector ``log`` differing by an ulp from the scalar ``log``
      another loop calls: eager next to the point gives the other path's result."""
    if exact and _near(fn, prog, _trace, ref):
        STATS["ties"] += 1
        return True
    if _near(fn, prog, lambda f, p: _eager(f, p, symad.float64), got):
        STATS["one_sided"] += 1
        return True
    return False


def _near(fn, prog, method, want) -> bool:
    """Does ``method`` give ``want`` at one of 8 points ~1e-9 from the program's point?"""
    rng = np.random.default_rng(0)
    for _ in range(8):
        vals = [np.asarray(prog.values[n], np.float64) for n in PARAMS + ("x",)]
        vals = [v + 1e-9 * rng.standard_normal(v.shape) for v in vals]
        moved = Program(prog.expr, prog.final, prog.k, prog.b,
                        dict(zip(PARAMS + ("x",), vals)), prog.kinks)
        try:
            near = method(fn, moved)
        except Exception:   # noqa: BLE001 - a moved point may leave the domain; try another
            continue
        (v, gs), (rv, rgs) = near, want
        if _close(v, rv, 1e-6) and all(_close(g, rg, 1e-5) for g, rg in zip(gs, rgs)):
            return True
    return False


def _native(fn, prog):
    """The program recorded from one eager run, replayed as native loop segments: whole, or
    (every other time) split into a native forward and a native backward fed the seed 1, as
    ``symad.compile``'s program path runs it."""
    ps, x = _tensors(prog, symad.float64)
    arrays = [t._data for t in (*ps, x)]
    if STATS["programs"] % (2 * NATIVE_EVERY) == 0:
        recorded, _, _, _ = capture(fn, (*ps, x), wrt=list(ps), seed_input=True)
        ent = NativeEntry(recorded, recorded.inputs[-1])
        STATS["native"] += ent.native_steps > 0
        value, state = ent.forward(*arrays)
        outs = [value] + ent.backward(state, np.ones((), np.float64))
    else:
        recorded, _, _, _ = capture(fn, (*ps, x), wrt=list(ps))
        nat = NativeProgram(recorded)
        STATS["native"] += nat.native_steps > 0
        outs = nat(*arrays)
    return float(outs[0]), [np.zeros(p.shape) if g is None else np.asarray(g, np.float64)
                            for p, g in zip(ps, outs[1:])]


def _compiled(fn, prog, dtype):
    ps, x = _tensors(prog, dtype)
    c = symad.compile(fn)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", CompileWarning)
        out = c(*ps, x)
    fell_back = any(issubclass(r.category, CompileWarning) for r in w)
    out.backward()
    return (float(out), [np.asarray(p.grad.numpy(), np.float64) if p.grad is not None
                         else np.zeros(p.shape) for p in ps]), fell_back


def _vag(fn, prog, dtype):
    ps, x = _tensors(prog, dtype, grad=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        val, gs = symad.value_and_grad(fn, argnums=(0, 1, 2))(*ps, x)
    return float(val), [np.asarray(g.numpy(), np.float64) for g in gs]


def _forward64(fn, prog, vals):
    with symad.no_grad():
        ts = [symad.tensor(vals[n], dtype=symad.float64) for n in PARAMS]
        return float(fn(*ts, symad.tensor(prog.values["x"], dtype=symad.float64)))


def _differences(fn, prog, h):
    """float64 one-sided and central differences of the eager forward, per parameter element:
    [(forward, backward, central)] per parameter."""
    out = []
    f0 = _forward64(fn, prog, prog.values)
    for n in PARAMS:
        base = np.asarray(prog.values[n], np.float64)
        fwd, bwd = np.zeros(base.shape), np.zeros(base.shape)
        for idx in np.ndindex(*base.shape):
            vals = {m: np.array(prog.values[m], np.float64, copy=True) for m in PARAMS}
            vals[n][idx] = base[idx] + h
            fwd[idx] = (_forward64(fn, prog, vals) - f0) / h
            vals[n][idx] = base[idx] - h
            bwd[idx] = (f0 - _forward64(fn, prog, vals)) / h
        out.append((fwd, bwd, (fwd + bwd) / 2))
    return out


def _check(name, got, ref, prog, rtol):
    (v, gs), (rv, rgs) = got, ref
    if not _close(v, rv, rtol):
        raise Mismatch(f"{name}: value {v!r} != eager {rv!r}\n{prog}")
    for n, g, rg in zip(PARAMS, gs, rgs):
        if not _close(g, rg, rtol):
            raise Mismatch(f"{name}: d/d{n} {g.tolist()} != eager {rg.tolist()}\n{prog}")


def run_program(prog: Program, compile_it: bool) -> None:
    fn = prog.function()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = _eager(fn, prog, symad.float64)
            paths = [("trace", lambda: _trace(fn, prog), 1e-9)]
            if NATIVE_EVERY > 0 and STATS["programs"] % NATIVE_EVERY == 0:
                paths.append(("native", lambda: _native(fn, prog), 1e-9))
            if compile_it:
                paths.append(("compile", lambda: _compiled(fn, prog, symad.float64), 1e-9))
                paths.append(("value_and_grad", lambda: _vag(fn, prog, symad.float64), 1e-9))
            for name, run, rtol in paths:
                t0 = time.perf_counter()
                got = run()
                SLOW.append((time.perf_counter() - t0, name, prog))
                if name == "compile":
                    got, fell_back = got
                    STATS["fell_back" if fell_back else "compiled"] += 1
                try:
                    _check(name, got, ref, prog, rtol)
                except Mismatch:
                    if not (prog.kinks and name in ("trace", "native")
                            and _tie_by_rounding(fn, prog, ref, got, exact=name == "trace")):
                        raise
            if "float32" in DTYPES:
                # float32 against the float64 eager values where the program is continuous:
                # rounding, not conventions, differs. A comparison, kink or tie can take another
                # branch in float32 (float32(c) == x where float64 c != x), as in PyTorch; such
                # programs compare float32 paths with each other only.
                e32 = _eager(fn, prog, symad.float32)
                if not re.search(KINKY, prog.expr):
                    _check("eager float32", e32, ref, prog, 2e-3)
                if compile_it:
                    got, _ = _compiled(fn, prog, symad.float32)
                    _check("compile float32", got, _eager(fn, prog, symad.float32), prog, 2e-3)
            # central differences where the function is smooth at the point: the one-sided
            # differences agree there and two step sizes agree (at a kink, or within a step of
            # one, they do not, and the paths' agreement above checks the conventions instead)
            # Not at exact kinks: there PyTorch's conventions (ties split, relu'(0) = 0) give
            # the gradient, which a difference quotient need not equal (maximum(0, min(0, s))
            # is flat at s = 0, its convention gradient is not 0); those points are checked by
            # the paths' agreement and by tests/test_pytorch_conventions.py.
            if (not prog.kinks and np.isfinite(ref[0])
                    and all(np.isfinite(g).all() for g in ref[1])):
                d1, d2 = _differences(fn, prog, 1e-6), _differences(fn, prog, 2.5e-7)
                for n, (fw, bw, c1), (_, _, c2), g in zip(PARAMS, d1, d2, ref[1]):
                    smooth = ((np.abs(fw - bw) <= 1e-4 * (1 + np.abs(c1)))
                              & (np.abs(c1 - c2) <= 1e-6 * (1 + np.abs(c1))))
                    if smooth.any():
                        STATS["fd_checked"] += 1
                    # a difference quotient of f carries roundoff ~ eps * |f| / h (h = 1e-6):
                    # a small component of the gradient of a large f is only that accurate
                    noise = 100 * np.finfo(np.float64).eps * (1 + abs(ref[0])) / 1e-6
                    if not np.allclose(g[smooth], c1[smooth], rtol=1e-5, atol=1e-5 + noise):
                        raise Mismatch(f"central differences: d/d{n} {g.tolist()} vs "
                                       f"{c1.tolist()}\n{prog}")
    except Mismatch:
        STATS["mismatches"] += 1
        raise
    except Exception as e:
        STATS["crashes"] += 1
        raise AssertionError(f"crash: {type(e).__name__}: {e}\n{prog}") from e


@settings(max_examples=N_PROGRAMS, deadline=None, derandomize=N_PROGRAMS <= 300,
          suppress_health_check=list(HealthCheck), database=None,
          # no shrinking: a program costs up to a second; the failure message prints it whole
          phases=[Phase.explicit, Phase.generate])
@given(programs())
def test_random_programs_agree_across_paths(prog):
    STATS["programs"] += 1
    if os.environ.get("FUZZ_VERBOSE"):
        print(f"[{STATS['programs']}] {time.strftime('%X')} {prog.source}", flush=True)
    run_program(prog, compile_it=COMPILE_EVERY > 0 and (STATS["programs"] - 1) % COMPILE_EVERY == 0)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generic_points_have_no_ties(prog):
    """Central differences are checked only at generic points (no kinks): no two leaf values
    there are equal (a tie such as w == x[0] meets PyTorch's split-gradient convention)."""
    if not prog.kinks:
        flat = np.concatenate([np.ravel(v) for v in prog.values.values()])
        assert np.unique(flat).size == flat.size
