"""The fuzzer's random programs against PyTorch's own values (recorded by
tests/data/make_fuzz_pytorch.py with torch 2.14.1, float64; PyTorch is not a dependency).

Each program is evaluated eagerly by symad in float64, loss and gradients with respect to w, s
and M compared with PyTorch's. Kink points (relu at 0, ties of maximum/minimum/where, clamp
edges) are hit exactly in half the programs, so PyTorch's conventions are compared, not only
smooth values."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import symad
from fuzz_programs import Program

DATA = os.path.join(os.path.dirname(__file__), "data", "fuzz_pytorch.json")
PARAMS = ("w", "s", "M")

with open(DATA) as _f:
    RECORDED = json.load(_f)


def _close(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = 1 + np.abs(b[np.isfinite(b)]).max(initial=0)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=1e-12 * scale,
                                                   equal_nan=True))


def _eager(prog: Program):
    ts = {n: symad.tensor(np.asarray(v, np.float64), requires_grad=n in PARAMS)
          for n, v in prog.values.items()}
    out = prog.function()(ts["w"], ts["s"], ts["M"], ts["x"])
    grads = symad.autograd.grad(out, [ts[n] for n in PARAMS], allow_unused=True)
    return float(out), [None if g is None else g.numpy() for g in grads]


def test_recorded_programs_cover_kinks_and_most_run_in_pytorch():
    progs = RECORDED["programs"]
    assert len(progs) >= 3000 and RECORDED["torch"].startswith("2.")
    assert sum(p["kinks"] for p in progs) >= 100
    refused = [p for p in progs if "error" in p]
    # the only programs PyTorch refuses: negative-step slices (symad follows numpy there)
    assert {(p["error"], p["message"]) for p in refused} <= {
        ("ValueError", "step must be greater than zero")}
    assert len(refused) < 0.1 * len(progs)


@pytest.mark.parametrize("i", range(len(RECORDED["programs"])))
def test_eager_equals_pytorch(i):
    rec = RECORDED["programs"][i]
    if "error" in rec:
        pytest.skip(f"PyTorch refuses this program: {rec['error']}: {rec['message']}")
    prog = Program(rec["expr"], rec["final"], rec["k"], rec["b"],
                   {k: np.asarray(v, np.float64) for k, v in rec["values"].items()},
                   rec["kinks"])
    with np.errstate(all="ignore"):
        value, grads = _eager(prog)
    assert _close(value, rec["value"]), f"value {value!r} != PyTorch {rec['value']!r}\n{prog}"
    for n, g, want in zip(PARAMS, grads, rec["grads"]):
        if want is None:
            assert g is None or not np.any(g), f"d/d{n}: PyTorch has none, symad {g}\n{prog}"
        else:
            got = np.zeros_like(np.asarray(want)) if g is None else g
            assert _close(got, want), f"d/d{n} {np.asarray(got).tolist()} != PyTorch {want}\n{prog}"
