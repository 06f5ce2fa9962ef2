"""Disk cache: warm hits in a new process, corruption/truncation detection, atomic writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import sympy as sp

from codegen import DiskCache, compile_kernel

REPO = Path(__file__).resolve().parents[2]
x, t0 = sp.symbols("x t0")

SCRIPT = """
import json, sys, numpy as np, sympy as sp
from codegen import compile_kernel
x, t0 = sp.symbols("x t0")
k = compile_kernel([x, t0], [t0 * sp.sin(x) * sp.exp(-x), sp.cos(x)], batched=[x],
                   reduce=["none", "sum"], cache=sys.argv[1], name="cached")
v, s = k(np.linspace(0, 1, 100), 2.0)
print(json.dumps({"hit": k.cache_hit, "compile": k.compile_seconds,
                  "v": v.tolist(), "s": float(s)}))
"""


def run(cache_dir: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(cache_dir)], env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_warm_hit_in_new_process_skips_compile(tmp_path: Path) -> None:
    cold = run(tmp_path)
    warm = run(tmp_path)
    assert not cold["hit"] and cold["compile"] > 0
    assert warm["hit"] and warm["compile"] == 0.0
    assert warm["v"] == cold["v"] and warm["s"] == cold["s"]
    entries = list(tmp_path.rglob("*.o"))
    assert len(entries) == 1 and not list(tmp_path.rglob(".tmp-*"))


def make(cache_dir: Path):
    return compile_kernel([x, t0], [t0 * sp.exp(x)], batched=[x], cache=str(cache_dir))


def check(k) -> None:
    xs = np.linspace(-1, 1, 50)
    np.testing.assert_allclose(k(xs, 3.0)[0], 3.0 * np.exp(xs), rtol=1e-15)


def test_truncated_entry_is_rebuilt(tmp_path: Path) -> None:
    k = make(tmp_path)
    assert not k.cache_hit
    (entry,) = tmp_path.rglob("*.o")
    good = entry.read_bytes()
    for cut in (0, 10, len(good) // 2, len(good) - 1):
        entry.write_bytes(good[:cut])
        k2 = make(tmp_path)
        assert not k2.cache_hit and k2.compile_seconds > 0
        check(k2)
        assert entry.read_bytes() == good  # rewritten
    assert make(tmp_path).cache_hit


def test_corrupted_entry_is_rebuilt(tmp_path: Path) -> None:
    make(tmp_path)
    (entry,) = tmp_path.rglob("*.o")
    good = entry.read_bytes()
    for pos in (3, 20, len(good) // 2, len(good) - 1):  # magic, header digest, payload
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        entry.write_bytes(bytes(bad))
        k = make(tmp_path)
        assert not k.cache_hit
        check(k)
        assert entry.read_bytes() == good
    garbage = b"\x00" * len(good)
    entry.write_bytes(garbage)
    check(make(tmp_path))


def test_cache_disabled_and_keyed_by_content(tmp_path: Path) -> None:
    k = compile_kernel([x], [sp.sin(x)], cache=False)
    assert not k.cache_hit
    a = compile_kernel([x], [sp.sin(x)], cache=str(tmp_path))
    b = compile_kernel([x], [sp.cos(x)], cache=str(tmp_path))
    c = compile_kernel([x], [sp.sin(x)], dtype="float32", cache=str(tmp_path))
    assert not (a.cache_hit or b.cache_hit or c.cache_hit)
    assert len(list(tmp_path.rglob("*.o"))) == 3
    assert compile_kernel([x], [sp.sin(x)], cache=str(tmp_path)).cache_hit


def test_env_var_sets_default_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SYMAD_CACHE_DIR", str(tmp_path / "envcache"))
    compile_kernel([x], [sp.tanh(x)])
    assert len(list((tmp_path / "envcache").rglob("*.o"))) == 1
    assert DiskCache().directory == tmp_path / "envcache"


def test_unwritable_cache_dir_does_not_fail(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    k = compile_kernel([x], [sp.sin(x)], cache=str(blocker / "sub"))
    check_v = k(np.array([0.5]))[0]
    assert check_v[0] == np.sin(0.5) or abs(check_v[0] - np.sin(0.5)) < 1e-15
