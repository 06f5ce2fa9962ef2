"""The corpus of published tensor gradients (tests/verify_corpus): every verdict right.

Oracles independent of the verifier: each case's label is cross-checked against float64 central
differences of ``f`` (the claimed backward, run numerically on float tensors, matches them for
every "right" case and misses them for every "wrong" one), and every counterexample's exact value
is compared with the finite-difference derivative at that very point. Per-case times are printed
(``-s``); speed goals live in benchmarks/bench_verify.py, not here.
"""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

import symad
from symad import check_gradient
from verify_corpus import Case, all_cases

CASES = all_cases()
H = 1e-6


def _float_inputs(case: Case, values: dict | None = None) -> dict:
    """The example inputs as float64 tensors (labels stay integer); ``values`` overrides
    elements by name ("x[0,1]" -> value), as in a counterexample."""
    out = {}
    for name, t in case.inputs.items():
        arr = np.array(t.detach().numpy() if isinstance(t, symad.Tensor) else t)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
            for idx in np.ndindex(*arr.shape):
                key = name if idx == () else f"{name}[{','.join(map(str, idx))}]"
                if values and key in values:
                    arr[idx] = float(values[key])
        out[name] = symad.tensor(arr)
    return out


def _f(case: Case, inputs: dict) -> float:
    return float(case.f(**inputs))


def _fd(case: Case, inputs: dict, name: str, idx: tuple) -> float:
    """Central difference of f in one element."""
    arr = inputs[name].numpy()
    orig = arr[idx]
    vals = []
    for s in (1, -1):
        bumped = arr.copy()
        bumped[idx] = orig + s * H
        vals.append(_f(case, {**inputs, name: symad.tensor(bumped)}))
    return (vals[0] - vals[1]) / (2 * H)


def _claimed_numeric(case: Case, inputs: dict) -> dict:
    res = case.claimed(**inputs)
    params = list(case.inputs)
    if isinstance(res, dict):
        return {k: res[k] for k in case.wrt}
    res = res if isinstance(res, (tuple, list)) else (res,)
    if len(res) == len(params):
        return {k: res[params.index(k)] for k in case.wrt}
    return dict(zip(case.wrt, res))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_label_agrees_with_finite_differences(case):
    """The corpus labels themselves, against float64 central differences of f."""
    inputs = _float_inputs(case)
    claims = _claimed_numeric(case, inputs)
    worst = 0.0
    for name in case.wrt:
        c = np.asarray(claims[name].detach().numpy() if isinstance(claims[name], symad.Tensor)
                       else claims[name], dtype=np.float64)
        shape = tuple(inputs[name].shape)
        if c.shape != shape:
            worst = np.inf  # a wrong-shaped gradient is wrong
            continue
        for idx in np.ndindex(*shape):
            worst = max(worst, abs(_fd(case, inputs, name, idx) - c[idx]))
    if case.expect == "right":
        assert worst < 1e-5, worst
    else:
        assert worst > 1e-4, worst


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_verdict(case):
    t0 = time.perf_counter()
    r = check_gradient(case.f, case.claimed, wrt=case.wrt, inputs=case.inputs,
                       constants=case.constants)
    took = time.perf_counter() - t0
    print(f"{case.name}: {r.status} ({r.basis}) {took:.2f} s")
    assert r.seconds is not None and r.seconds <= took
    if case.expect == "right":
        assert r.ok, str(r)
        assert r.status == "proved right", r.basis  # every correct one is proved, not sampled
        return
    assert not r.ok and r.proved, str(r)
    wrong = [it for it in r.items if it.equal is False]
    assert wrong
    it = wrong[0]
    ce = it.counterexample
    assert ce is not None, it.method
    m = re.fullmatch(r"(\w+)(?:\[([\d,]+)\])?", it.name)
    name, idx = m.group(1), tuple(int(k) for k in (m.group(2) or "").split(",") if k)
    if "shapes differ" in it.method:
        assert str(tuple(case.inputs[name].shape)) in it.method
        return
    # independent oracle: the exact value at the counterexample is f's derivative there
    inputs = _float_inputs(case, dict(ce))
    fd = _fd(case, inputs, name, idx)
    assert float(ce.exact) == pytest.approx(fd, rel=1e-4, abs=1e-6)
    assert abs(float(ce.exact) - float(ce.claimed)) > 1e-9


def test_corpus_size_and_kinds():
    names = [c.name for c in CASES]
    assert len(CASES) >= 40
    for kind in ("batchnorm", "layernorm", "softmax", "svm", "two-layer", "rnn", "lstm",
                 "attention", "dropout", "affine", "logsumexp"):
        assert any(kind in n for n in names), kind
    assert sum(c.expect == "wrong" for c in CASES) >= 20
