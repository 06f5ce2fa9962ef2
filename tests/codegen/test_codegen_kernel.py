"""Kernel calling, validation errors, reductions, threads, inspection and vectorization."""

from __future__ import annotations

import math
import platform
import re

import numpy as np
import pytest
import sympy as sp

import codegen
from codegen import Kernel, LoweringError, compile_kernel, emit_assembly, emit_object

x, y, t0, t1 = sp.symbols("x y t0 t1")


@pytest.fixture(scope="module")
def k64() -> Kernel:
    f = t0 * sp.exp(-t1 * x) * sp.sin(x)
    return compile_kernel([x, y, t0, t1], [f, (f - y) ** 2, (f - y) ** 2],
                          batched=[x, y], reduce=["none", "sum", "mean"], cache=False)


def model(xs, ys, a, b):
    f = a * np.exp(-b * xs) * np.sin(xs)
    return f, (f - ys) ** 2


def test_outputs_and_reductions_against_fsum(k64: Kernel) -> None:
    rng = np.random.default_rng(1)
    xs, ys = rng.uniform(-3, 3, 10_001), rng.uniform(-1, 1, 10_001)
    f, s, m = k64(xs, ys, 1.5, 0.25)
    want_f, sq = model(xs, ys, 1.5, 0.25)
    np.testing.assert_allclose(f, want_f, rtol=1e-14, atol=1e-300)
    exact = math.fsum(sq.tolist())
    # reassociated sum of N positive terms, each within ~10 ulp: relative error << 1e-13
    assert abs(s - exact) <= 1e-13 * exact
    assert abs(m - exact / xs.size) <= 1e-13 * exact / xs.size
    assert isinstance(s, np.float64) and isinstance(f, np.ndarray) and f.shape == xs.shape


def test_keyword_and_positional_calls_agree(k64: Kernel) -> None:
    xs, ys = np.linspace(0, 1, 7), np.linspace(1, 2, 7)
    a = k64(xs, ys, 1.0, 2.0)
    b = k64(t1=2.0, y=ys, x=xs, t0=1.0)
    c = k64.call_arrays([xs, ys, 1.0, 2.0])
    for u, v, w in zip(a, b, c):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(u, w)


def test_scalar_parameter_types(k64: Kernel) -> None:
    xs, ys = np.linspace(0, 1, 5), np.zeros(5)
    ref = k64(xs, ys, 1.0, 2.0)
    for a, b in [(1, 2), (np.float32(1.0), np.float64(2.0)), (np.array(1.0), 2)]:
        np.testing.assert_array_equal(k64(xs, ys, a, b)[0], ref[0])


def test_out_arrays_are_written(k64: Kernel) -> None:
    xs, ys = np.linspace(0, 1, 9), np.zeros(9)
    buf = np.full(9, np.nan)
    f, _, _ = k64(xs, ys, 1.0, 2.0, out=[buf, None, None])
    assert f is buf
    np.testing.assert_allclose(buf, model(xs, ys, 1.0, 2.0)[0], rtol=1e-15)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 64, 200, 1000])
def test_threads_agree_and_small_batches(n: int) -> None:
    f = sp.sin(x) * y + t0
    outs = [f, f, f]
    red = ["none", "sum", "mean"]
    k1 = compile_kernel([x, y, t0], outs, batched=[x, y], reduce=red, threads=1, min_chunk=1,
                        cache=False)
    k2 = compile_kernel([x, y, t0], outs, batched=[x, y], reduce=red, threads=2, min_chunk=1,
                        cache=False)
    rng = np.random.default_rng(n)
    xs, ys = rng.normal(size=n), rng.normal(size=n)
    a, b = k1(xs, ys, 0.5), k2(xs, ys, 0.5)
    # fixed chunks of 64 elements whatever the thread count: sums are bitwise the same too
    assert len(k2._chunks(n)) == -(-n // 64)
    assert (a[1], a[2]) == (b[1], b[2]) or (n == 0 and math.isnan(a[2]) and math.isnan(b[2]))
    np.testing.assert_array_equal(a[0], b[0])  # bitwise: same code path per element
    want = np.sin(xs) * ys + 0.5
    assert np.all(np.abs(a[0] - want) <= 1e-15 * (np.abs(np.sin(xs) * ys) + 0.5))
    exact = math.fsum(want.tolist())
    scale = math.fsum(np.abs(want).tolist()) + 1e-300
    for s in (a[1], b[1]):
        assert abs(s - exact) <= 1e-14 * scale
    if n == 0:
        assert a[1] == 0.0 and b[1] == 0.0 and math.isnan(a[2]) and math.isnan(b[2])
    else:
        assert abs(b[2] - exact / n) <= 1e-14 * scale / n


def test_large_batch_uses_threads_by_default() -> None:
    k = compile_kernel([x], [sp.cos(x), sp.cos(x)], reduce=["none", "sum"], cache=False,
                       threads=2)
    xs = np.linspace(-5, 5, 200_001)
    c, s = k(xs)
    assert len(k._chunks(xs.size)) == -(-xs.size // 16384)    # DEFAULT_MIN_CHUNK elements each
    k1 = compile_kernel([x], [sp.cos(x), sp.cos(x)], reduce=["none", "sum"], cache=False,
                        threads=1)
    c1, s1 = k1(xs)
    np.testing.assert_array_equal(c, c1)
    assert s == s1                                   # bitwise: the same chunks, summed in order
    np.testing.assert_allclose(c, np.cos(xs), rtol=4e-16 * 4, atol=1e-16)  # 4 ulp
    assert abs(s - math.fsum(np.cos(xs).tolist())) <= 1e-12 * xs.size


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float32_and_accumulate(dtype: str) -> None:
    k = compile_kernel([x, t0], [t0 * x, t0 * x], batched=[x], reduce=["none", "sum"],
                       dtype="float32",
                       accumulate=dtype, cache=False)
    xs = np.full(1_000_000, 0.1, np.float32)
    v, s = k(xs, np.float32(1.0))
    assert v.dtype == np.float32 and isinstance(s, np.float32)
    exact = 1_000_000 * float(np.float32(0.1))
    # float64 accumulation is exact to float32 rounding; float32 accumulation of 1e6 equal
    # terms in (reassociated) SIMD partial sums loses at most ~1e-4 relative here
    tol = 1e-7 if dtype == "float64" else 1e-3
    assert abs(float(s) - exact) <= tol * exact


def test_scalar_only_kernel_returns_0d() -> None:
    k = compile_kernel([t0, t1], [t0 * t1, sp.exp(t0), t0 + t1], batched=[],
                       reduce=["none", "none", "sum"], cache=False)
    p, e, s = k(3.0, 2.0)
    assert p.shape == () and float(p) == 6.0
    assert float(e) == pytest.approx(math.exp(3.0), rel=1e-15)
    assert float(s) == 5.0


def test_constant_and_input_outputs() -> None:
    k = compile_kernel([x, t0], [sp.Integer(2), x, t0, sp.pi], batched=[x], cache=False)
    xs = np.arange(4.0)
    two, xx, tt, pi = k(xs, 7.0)
    assert two.tolist() == [2.0] * 4 and xx.tolist() == xs.tolist() and tt.tolist() == [7.0] * 4
    assert pi.tolist() == [math.pi] * 4


# -- errors ---------------------------------------------------------------------------------

def test_wrong_dtype(k64: Kernel) -> None:
    with pytest.raises(TypeError, match=r"'x' has dtype float32.*ascontiguousarray"):
        k64(np.zeros(3, np.float32), np.zeros(3), 1.0, 1.0)
    with pytest.raises(TypeError, match=r"'y' must be a numpy array of float64, got list"):
        k64(np.zeros(3), [0.0, 0.0, 0.0], 1.0, 1.0)


def test_wrong_length(k64: Kernel) -> None:
    with pytest.raises(ValueError, match=r"'y' has length 4, but 'x' has length 3"):
        k64(np.zeros(3), np.zeros(4), 1.0, 1.0)


def test_non_contiguous_and_2d(k64: Kernel) -> None:
    with pytest.raises(ValueError, match=r"'x' is not C-contiguous"):
        k64(np.zeros(6)[::2], np.zeros(3), 1.0, 1.0)
    with pytest.raises(ValueError, match=r"'x' must be 1-d"):
        k64(np.zeros((3, 1)), np.zeros(3), 1.0, 1.0)


def test_missing_and_unknown_arguments(k64: Kernel) -> None:
    with pytest.raises(TypeError, match=r"missing input\(s\): t1"):
        k64(np.zeros(3), np.zeros(3), 1.0)
    with pytest.raises(TypeError, match=r"unexpected input 'z'"):
        k64(np.zeros(3), np.zeros(3), 1.0, 1.0, z=1.0)
    with pytest.raises(TypeError, match=r"got input 'x' twice"):
        k64(np.zeros(3), np.zeros(3), 1.0, 1.0, x=np.zeros(3))
    with pytest.raises(TypeError, match=r"takes 4 inputs"):
        k64(1, 2, 3, 4, 5)


def test_bad_scalar_and_bad_out(k64: Kernel) -> None:
    with pytest.raises(TypeError, match=r"'t0' is a scalar parameter"):
        k64(np.zeros(3), np.zeros(3), np.zeros(3), 1.0)
    with pytest.raises(TypeError, match=r"'t0' must be a real number, got str"):
        k64(np.zeros(3), np.zeros(3), "1", 1.0)
    with pytest.raises(ValueError, match=r"out\[0\] has shape \(2,\), expected \(3,\)"):
        k64(np.zeros(3), np.zeros(3), 1.0, 1.0, out=[np.zeros(2), None, None])
    with pytest.raises(ValueError, match=r"output 1 is a sum reduction"):
        k64(np.zeros(3), np.zeros(3), 1.0, 1.0, out=[None, np.zeros(1), None])
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"writeable"):
        k64(np.zeros(3), np.zeros(3), 1.0, 1.0, out=[ro, None, None])


def test_unsupported_sympy_class_names_it() -> None:
    with pytest.raises(LoweringError, match=r"cannot lower sympy\.Ei to LLVM"):
        compile_kernel([x], [sp.Ei(x)], cache=False)
    with pytest.raises(LoweringError, match=r"cannot lower sympy\.gamma"):
        compile_kernel([x], [sp.gamma(x) + 1], cache=False)
    f = sp.Function("f")
    with pytest.raises(LoweringError, match=r"cannot lower .*f to LLVM"):
        compile_kernel([x], [f(x)], cache=False)
    with pytest.raises(LoweringError, match=r"ImaginaryUnit"):
        compile_kernel([x], [sp.I * x], cache=False)
    assert issubclass(LoweringError, NotImplementedError)


def test_compile_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"uses \['z'\], which are not inputs"):
        compile_kernel([x], [x + sp.Symbol("z")], cache=False)
    with pytest.raises(ValueError, match=r"reduce entries must be one of"):
        compile_kernel([x], [x], reduce="max", cache=False)
    with pytest.raises(ValueError, match=r"dtype must be"):
        compile_kernel([x], [x], dtype="float16", cache=False)
    with pytest.raises(TypeError, match=r"inputs must be sympy Symbols"):
        compile_kernel([x + 1], [x], cache=False)


# -- inspection, vectorization, export ------------------------------------------------------

def test_ir_and_asm_are_inspectable(k64: Kernel) -> None:
    # the typed body is internal; the entry point has codegen.native's convention
    assert "define internal void @kernel(" in k64.llvm_ir and "fadd reassoc" in k64.llvm_ir
    assert "define i64 @kernel_run(ptr %args)" in k64.llvm_ir
    assert re.search(r"define .*i64 @kernel_run\(ptr", k64.optimized_ir)
    assert "kernel_run:" in k64.asm


HOST = codegen.host_target()


@pytest.mark.skipif(not (platform.machine() == "x86_64" and HOST.has_feature("avx2")),
                    reason="libmvec AVX2 variants need an x86-64 host with AVX2")
@pytest.mark.parametrize("dtype,variant", [("float64", "_ZGVdN4v_"), ("float32", "_ZGVdN8v_")])
def test_sin_exp_reduction_is_vectorized(dtype: str, variant: str) -> None:
    k = compile_kernel([x], [sp.sin(x) * sp.exp(x)], reduce="sum", dtype=dtype, cache=False)
    asm = k.asm
    assert "ymm" in asm
    assert f"{variant}sin" in asm and f"{variant}exp" in asm
    ty = "<4 x double>" if dtype == "float64" else "<8 x float>"
    assert ty in k.optimized_ir
    xs = np.linspace(-1, 1, 1001).astype(dtype)
    (s,) = k(xs)
    want = math.fsum((np.sin(xs.astype(float)) * np.exp(xs.astype(float))).tolist())
    assert abs(float(s) - want) <= (1e-12 if dtype == "float64" else 1e-4) * 1001


def test_fast_math_flags_and_result() -> None:
    k = compile_kernel([x, t0], [x / t0 + x * t0], batched=[x], fast_math=True, cache=False)
    assert "fdiv fast" in k.llvm_ir
    xs = np.linspace(1, 2, 11)
    np.testing.assert_allclose(k(xs, 3.0)[0], xs / 3 + xs * 3, rtol=1e-15)


def test_emit_object_and_assembly_for_other_targets(k64: Kernel) -> None:
    ir = codegen.build_kernel_ir(k64.spec)  # no libmvec mapping: portable IR
    assert emit_object(ir, reloc="pic")[:4] == b"\x7fELF"
    obj = emit_object(ir, triple="aarch64-unknown-linux-gnu")
    assert obj[:4] == b"\x7fELF" and obj[18] == 183  # e_machine = EM_AARCH64
    asm = emit_assembly(ir, triple="aarch64-unknown-linux-gnu", cpu="generic")
    assert "kernel_run:" in asm


def test_large_expression_compiles() -> None:
    # a 1000-term sum of distinct transcendental terms; DAG with shared subterms
    terms = [sp.sin(x * (i + 1)) * sp.exp(-x / (i + 1)) for i in range(300)]
    e = sp.Add(*terms)
    k = compile_kernel([x], [e], cache=False, cse=False)
    xs = np.linspace(0, 1, 33)
    want = sum(np.sin(xs * (i + 1)) * np.exp(-xs / (i + 1)) for i in range(300))
    np.testing.assert_allclose(k(xs)[0], want, rtol=1e-12, atol=1e-12)


def test_concurrent_calls_from_python_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    k = compile_kernel([x, t0], [sp.exp(t0 * x), sp.exp(t0 * x)], batched=[x],
                       reduce=["none", "sum"], threads=2, min_chunk=64, cache=False)
    xs = np.linspace(-1, 1, 5000)

    def job(i: int) -> bool:
        a = 0.01 * i
        v, s = k(xs, a)
        want = np.exp(a * xs)
        return bool(np.allclose(v, want, rtol=1e-15) and abs(s - math.fsum(want)) < 1e-9)

    with ThreadPoolExecutor(4) as ex:
        assert all(ex.map(job, range(40)))


def test_shared_condition_after_cse() -> None:
    cond = sp.And(x > 0, y < 1)
    e1 = sp.Piecewise((x, cond), (0, True))
    e2 = sp.Piecewise((y, cond), (1, True)) * sp.Piecewise((2, cond), (3, True))
    k = compile_kernel([x, y], [e1, e2], cache=False)
    xs, ys = np.array([1.0, -1.0, 1.0, np.nan]), np.array([0.5, 0.5, 2.0, 0.0])
    a, b = k(xs, ys)
    c = (xs > 0) & (ys < 1)
    np.testing.assert_array_equal(a, np.where(c, xs, 0.0))
    np.testing.assert_array_equal(b, np.where(c, ys, 1.0) * np.where(c, 2.0, 3.0))


def test_ndarray_subclasses(k64: Kernel, tmp_path) -> None:
    mm = np.memmap(tmp_path / "x.bin", dtype=np.float64, mode="w+", shape=(4,))
    mm[:] = [0.0, 1.0, 2.0, 3.0]
    ys = np.zeros(4)
    np.testing.assert_array_equal(k64(mm, ys, 1.0, 2.0)[0], k64(np.array(mm), ys, 1.0, 2.0)[0])
    masked = np.ma.masked_array(np.zeros(4), mask=[0, 1, 0, 0])
    with pytest.raises(TypeError, match=r"'x' is a masked array"):
        k64(masked, ys, 1.0, 2.0)


@pytest.mark.skipif(not (platform.machine() == "x86_64" and HOST.has_feature("avx512f")),
                    reason="the AVX-512 libmvec variants need a host with AVX-512F")
@pytest.mark.parametrize("dtype,variant,ty", [("float64", "_ZGVeN8v_", "<8 x double>"),
                                              ("float32", "_ZGVeN16v_", "<16 x float>")])
def test_avx512_hosts_use_512_bit_vector_math(dtype: str, variant: str, ty: str) -> None:
    k = compile_kernel([x], [sp.sin(x) * sp.exp(x)], reduce="sum", dtype=dtype, cache=False)
    assert "zmm" in k.asm
    assert f"{variant}sin" in k.asm and f"{variant}exp" in k.asm
    assert ty in k.optimized_ir
    xs = np.linspace(-1, 1, 1001).astype(dtype)
    (s,) = k(xs)
    want = math.fsum((np.sin(xs.astype(float)) * np.exp(xs.astype(float))).tolist())
    assert abs(float(s) - want) <= (1e-12 if dtype == "float64" else 1e-4) * 1001
