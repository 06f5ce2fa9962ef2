"""``symad.set_num_threads`` / ``SYMAD_NUM_THREADS``: the default thread count of new kernels;
results do not depend on it."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import sympy

import codegen.threads
import symad
from codegen import compile_kernel


@pytest.fixture
def restore_threads():
    old = codegen.threads._default
    yield
    codegen.threads._default = old


def test_set_num_threads_is_the_default_of_new_kernels(restore_threads):
    x, a = sympy.symbols("x a")
    symad.set_num_threads(1)
    assert symad.get_num_threads() == 1
    k1 = compile_kernel([x, a], [sympy.sin(a * x)], batched=[x], reduce="sum", cache=False,
                        min_chunk=64)
    symad.set_num_threads(2)
    k2 = compile_kernel([x, a], [sympy.sin(a * x)], batched=[x], reduce="sum", cache=False,
                        min_chunk=64)
    assert (k1.threads, k2.threads) == (1, 2)
    xs = np.linspace(-3, 3, 100_000)
    (s1,), (s2,) = k1(x=xs, a=1.5), k2(x=xs, a=1.5)
    assert s1 == s2                                   # fixed chunking: bitwise the same
    np.testing.assert_allclose(s1, np.sin(1.5 * xs).sum(), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_num_threads_rejects_non_positive_integers(bad, restore_threads):
    with pytest.raises(RuntimeError, match="set_num_threads expects a positive integer"):
        symad.set_num_threads(bad)


def test_env_variable_sets_the_starting_value():
    code = "import symad; print(symad.get_num_threads())"
    env = dict(os.environ, SYMAD_NUM_THREADS="3", PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "3", out.stderr
    env["SYMAD_NUM_THREADS"] = "many"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "SYMAD_NUM_THREADS must be a positive integer, got 'many'" \
        in out.stderr
