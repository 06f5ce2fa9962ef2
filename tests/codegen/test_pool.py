"""codegen.pool: native worker threads, against serial runs of the same tasks (numpy oracle)."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import sympy as sp

from codegen import compile_kernel, pool
from codegen.native import NativeModule
from codegen.pool import NativePool

pytestmark = pytest.mark.skipif(not pool.supported(), reason="native workers need Linux")

# task t: out[0] = sum(sin(i) for i < n), args = (out address, n)
_IR = """
define i64 @work(ptr %args) {
entry:
  %out = load ptr, ptr %args
  %q = getelementptr inbounds i64, ptr %args, i64 1
  %n = load i64, ptr %q
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %acc = phi double [0.0, %entry], [%a1, %loop]
  %f = sitofp i64 %i to double
  %s = call double @sin(double %f)
  %a1 = fadd double %acc, %s
  %i1 = add i64 %i, 1
  %c = icmp slt i64 %i1, %n
  br i1 %c, label %loop, label %done
done:
  store double %a1, ptr %out
  ret i64 0
}
declare double @sin(double)
"""


@pytest.fixture(scope="module")
def work():
    return NativeModule("pool_test_work", lambda: _IR, (_IR,), cache=None)


def _tasks(work, sizes):
    out = np.full(len(sizes), np.nan)
    args = np.zeros((len(sizes), 2), np.int64)
    args[:, 0] = out.ctypes.data + 8 * np.arange(len(sizes))
    args[:, 1] = sizes
    tasks = np.zeros((len(sizes), 2), np.int64)
    tasks[:, 0] = work.address("work")
    tasks[:, 1] = args.ctypes.data + args.strides[0] * np.arange(len(sizes))
    want = np.array([np.sin(np.arange(n, dtype=np.float64)).sum() for n in sizes])
    return tasks, out, want, args


def test_every_task_runs_once_with_its_own_arguments(work):
    p = NativePool.shared(1)
    assert p.workers >= 1
    sizes = [3000 * (t + 1) for t in range(13)]
    tasks, out, want, keep = _tasks(work, sizes)
    p.run(tasks)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-9)
    p.run(np.zeros((0, 2), np.int64))                   # no tasks: returns
    with pytest.raises(ValueError, match=r"\(n, 2\) int64"):
        p.run(tasks.astype(np.int32))
    with pytest.raises(ValueError, match=r"\(n, 2\) int64"):
        p.run(tasks[:, :1].copy())


def test_runs_from_several_python_threads(work):
    p = NativePool.shared(1)
    errors = []

    def hammer(seed):
        sizes = [int(s) for s in np.random.default_rng(seed).integers(1, 400, 5)]
        tasks, out, want, keep = _tasks(work, sizes)
        for _ in range(300):
            out[:] = np.nan
            p.run(tasks)
            if not np.allclose(out, want, rtol=1e-12, atol=1e-9):
                errors.append(seed)
                return
    ths = [threading.Thread(target=hammer, args=(s,)) for s in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert not errors


def test_a_stopped_pool_runs_tasks_on_the_caller(work):
    p = NativePool(1)
    sizes = [500, 700]
    tasks, out, want, keep = _tasks(work, sizes)
    p.run(tasks)
    p.stop()                                    # joins the worker
    out[:] = np.nan
    p.run(tasks)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-9)


def test_a_forked_child_makes_its_own_pool(work):
    p = NativePool.shared(1)
    sizes = [800, 900, 1000]
    tasks, out, want, keep = _tasks(work, sizes)
    pid = os.fork()
    if pid == 0:                                # child: the parent's workers do not exist here
        code = 1
        try:
            q = NativePool.shared(1)
            out[:] = np.nan
            q.run(tasks)
            code = 0 if (q is not p and np.allclose(out, want, rtol=1e-12, atol=1e-9)) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_threaded_kernels_agree_with_the_python_pool(monkeypatch):
    """The same chunks and sums whether the workers are native or Python threads."""
    x, a = sp.symbols("x a")
    k = compile_kernel([x, a], [sp.exp(-a * x) * sp.sin(x), sp.sin(x) ** 2], batched=[x],
                       reduce=["sum", "none"], threads=2, cache=False, min_chunk=1000)
    xs = np.linspace(-3, 3, 20_011)
    s_native, arr_native = k(xs, 0.3)
    monkeypatch.setattr(pool, "supported", lambda: False)
    k2 = compile_kernel([x, a], [sp.exp(-a * x) * sp.sin(x), sp.sin(x) ** 2], batched=[x],
                        reduce=["sum", "none"], threads=2, cache=False, min_chunk=1000)
    s_py, arr_py = k2(xs, 0.3)
    assert s_native == s_py and np.array_equal(arr_native, arr_py)
    np.testing.assert_allclose(s_native, (np.exp(-0.3 * xs) * np.sin(xs)).sum(), rtol=1e-12)
    np.testing.assert_allclose(arr_native, np.sin(xs) ** 2, rtol=1e-14, atol=1e-15)


def test_a_pool_that_cannot_be_made_falls_back_to_python_threads(monkeypatch):
    """If the native workers cannot start (here: the module fails to load), a threaded kernel
    warns once and computes the same values on Python threads."""
    def refuse(self, workers):
        raise OSError("no pthread_create here")
    monkeypatch.setattr(NativePool, "__init__", refuse)
    monkeypatch.setattr(NativePool, "_current", None)
    monkeypatch.setattr(NativePool, "_failed", False)
    x = sp.Symbol("x")
    k = compile_kernel([x], [sp.sin(x)], batched=[x], reduce="sum", threads=2, cache=False,
                       min_chunk=1000)
    xs = np.linspace(0, 2, 10_007)
    with pytest.warns(RuntimeWarning, match="native worker threads are unavailable"):
        (s1,) = k(xs)
    (s2,) = k(xs)                       # no second warning: the failure is remembered
    assert s1 == s2
    np.testing.assert_allclose(s1, np.sin(xs).sum(), rtol=1e-12)
