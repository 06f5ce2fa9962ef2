"""Native tensor programs: codegen's loop statements and the program lowering, against numpy
(independent oracle), the numpy replay of the same program and eager training."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symad
from codegen.loops import Access, Fill, Index, LoopModule, Map, MatMul
from symad import nn, optim
from symad.compiler import native_program
from symad.compiler.native_program import NativeProgram
from symad.program import Runner, capture

x, y = sympy.symbols("x y", real=True)


def _ptrs(*arrays):
    p = np.array([a.ctypes.data for a in arrays], dtype=np.int64)
    return p, p.ctypes.data


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loop_statements_matmul_transposed_reduce_broadcast(dtype):
    rng = np.random.default_rng(1)
    M, K, N = 5, 7, 9
    A = rng.normal(size=(M, K)).astype(dtype)
    Bt = rng.normal(size=(N, K)).astype(dtype)     # read transposed through strides
    bias = rng.normal(size=N).astype(dtype)
    C, T = np.zeros((M, N), dtype), np.zeros((M, N), dtype)
    S, mean = np.zeros(N, dtype), np.zeros((), dtype)
    seg = [Fill(2, M * N),
           Map((M, K, N), Access(2, 0, (N, 0, 1)),
               (Access(0, 0, (K, 1, 0)), Access(1, 0, (0, 1, K))), (x, y), x * y, True),
           Map((M, N), Access(3, 0, (N, 1)), (Access(2, 0, (N, 1)), Access(4, 0, (0, 1))),
               (x, y), sympy.tanh(x + y)),
           Fill(5, N),
           Map((M, N), Access(5, 0, (0, 1)), (Access(3, 0, (N, 1)),), (x,), x, True),
           Fill(6, 1),
           Map((N,), Access(6, 0, (0,)), (Access(5, 0, (1,)),), (x,), x / 9, True)]
    mod = LoopModule("t", [dtype] * 7, [seg])
    keep, addr = _ptrs(A, Bt, C, T, bias, S, mean)
    mod.segments[0](addr)
    tol = 1e-12 if dtype == "float64" else 2e-5
    ref = A.astype(np.float64) @ Bt.T.astype(np.float64)
    np.testing.assert_allclose(C, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(T, np.tanh(ref + bias), rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(S, np.tanh(ref + bias).sum(0), rtol=tol * 10, atol=tol * 10)
    np.testing.assert_allclose(mean, np.tanh(ref + bias).sum(0).sum() / 9, rtol=tol * 10,
                               atol=tol * 10)


def test_dense_dimensions_collapse_into_one_loop_and_rows_are_not_unrolled():
    from codegen.loops import _collapse, build_loops_ir
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 6, 5))
    b = rng.normal(size=(6, 5))                 # broadcast over the first dimension
    out, col = np.zeros((4, 6, 5)), np.zeros(5)
    ew = Map((4, 6, 5), Access(2, 0, (30, 5, 1)), (Access(0, 0, (30, 5, 1)),
                                                   Access(1, 0, (0, 5, 1))), (x, y), x * y)
    # the broadcast operand keeps the first dimension apart; the last two merge for everyone
    assert _collapse(ew).shape == (4, 30)
    assert _collapse(ew).ins[1].strides == (0, 1)
    red = Map((4, 6, 5), Access(3, 0, (0, 0, 1)), (Access(2, 0, (30, 5, 1)),), (x,), x, True)
    assert _collapse(red).shape == (24, 5)      # rows of a reduction over the first two dims
    mod = LoopModule("cl", ["float64"] * 4, [[ew, Fill(3, 5), red]])
    keep, addr = _ptrs(a, b, out, col)
    mod.segments[0](addr)
    np.testing.assert_allclose(out, a * b, rtol=1e-15)
    np.testing.assert_allclose(col, (a * b).sum((0, 1)), rtol=1e-13)
    ir = build_loops_ir("cl", ["float64"] * 4, [[ew]])
    assert '!"llvm.loop.unroll.disable"' in ir and "!llvm.loop !0" in ir


def test_transposing_copies_run_in_tiles_and_equal_numpy():
    from codegen.loops import TILE, _tile_transpose
    rng = np.random.default_rng(6)
    for shape in [(48, 80), (32, 32), (40, 64), (16, 64)]:
        w = rng.normal(size=shape[::-1])              # read transposed
        out = np.zeros(shape)
        st = Map(shape, Access(1, 0, (shape[1], 1)), (Access(0, 0, (1, shape[0])),), (x,), x)
        tiled = _tile_transpose(st)
        assert (tiled is not st) == all(n % TILE == 0 and n >= 2 * TILE for n in shape)
        mod = LoopModule("tt", ["float64"] * 2, [[st]])
        keep, addr = _ptrs(w, out)
        mod.segments[0](addr)
        np.testing.assert_array_equal(out, w.T)


def test_loop_statements_load_ints_and_bools_as_floats_and_vectorize():
    a = np.array([3, -2, 7, 0, 1, 5, -4, 2], dtype=np.int64)
    m = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=np.bool_)
    out = np.zeros(8, np.float32)
    seg = [Map((8,), Access(2, 0, (1,)), (Access(0, 0, (1,)), Access(1, 0, (1,))),
               (x, y), x * y + sympy.exp(x / 4))]
    mod = LoopModule("c", ["int64", "bool", "float32"], [seg])
    keep, addr = _ptrs(a, m, out)
    mod.segments[0](addr)
    np.testing.assert_allclose(out, a * m + np.exp(a / 4), rtol=1e-6)
    with pytest.raises(ValueError, match="writes float or double"):   # int64 <- float32
        LoopModule("d", ["float32", "int64"], [[Map((2,), Access(1, 0, (1,)),
                                                    (Access(0, 0, (1,)),), (x,), x)]])


@pytest.mark.parametrize("itype", ["int64", "int32"])
def test_indexed_accesses_gather_and_scatter_add_like_numpy(itype):
    """An indexed read is a gather, an indexed accumulating write ``np.add.at`` (repeated
    positions add up, in index order); an index outside the bound is clamped into the buffer
    (memory safety only: callers check bounds and raise the eager error first)."""
    rng = np.random.default_rng(2)
    src = rng.normal(size=(6, 5))
    idx = np.array([[4], [0], [2], [2], [1], [3]], dtype=itype)
    got = np.zeros((6, 1))
    add = np.array([[1.5], [-2.0], [0.25], [4.0], [3.0], [-1.0]])
    acc = np.zeros((6, 5))
    rows = np.array([0, 2, 2, 5], dtype=itype)            # scatter along dim 0, repeated rows
    vals = rng.normal(size=(4, 5))
    acc0 = np.zeros((6, 5))
    seg = [Map((6, 1), Access(2, 0, (1, 1)), (Access(0, 0, (5, 0), Index(Access(1, 0, (1, 1)),
                                                                         1, 5)),), (x,), x),
           Map((6, 1), Access(4, 0, (5, 0), Index(Access(1, 0, (1, 1)), 1, 5)),
               (Access(3, 0, (1, 1)),), (x,), x, True),
           Map((4, 5), Access(5, 0, (0, 1), Index(Access(6, 0, (1, 0)), 5, 6)),
               (Access(7, 0, (5, 1)),), (x,), x, True)]
    mod = LoopModule("g" + itype, ["float64", itype, "float64", "float64", "float64", "float64",
                                   itype, "float64"], [seg])
    keep, addr = _ptrs(src, idx, got, add, acc, acc0, rows, vals)
    mod.segments[0](addr)
    np.testing.assert_array_equal(got, np.take_along_axis(src, idx.astype(np.int64), 1))
    want = np.zeros((6, 5))
    np.add.at(want, (np.arange(6)[:, None], idx.astype(np.int64)), add)
    np.testing.assert_array_equal(acc, want)
    want0 = np.zeros((6, 5))
    np.add.at(want0, rows.astype(np.int64), vals)
    np.testing.assert_array_equal(acc0, want0)
    idx[:, 0] = [7, -3, 0, 1, 2, 99]                      # out of bounds: clamped, never read
    mod.segments[0](addr)                                  # outside the buffer
    np.testing.assert_array_equal(got[:, 0], src[np.arange(6), [4, 0, 0, 1, 2, 4]])


def test_cross_entropy_programs_run_fully_native_and_check_targets():
    """nll_loss lowers through its registry decomposition (a gather) and its VJP's scatter_add:
    a cross-entropy program has no numpy step; a target out of range raises IndexError like
    eager does (before any native code reads it)."""
    net, prog, args, want = _mlp_program(nn.CrossEntropyLoss(), nn.Tanh(), symad.float64)
    nat = NativeProgram(prog)
    assert nat.numpy_steps == 0 and nat.segments == 1
    labels = [st.label() for st in nat.lowered.steps]
    assert "gather" in labels and "scatter_add" in labels and "nll_loss" not in labels
    for g, w in zip(nat(*args), want):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-14)
    bad = args[1].copy()
    bad[5] = 3
    with pytest.raises(IndexError, match="index 3 .* out of bounds for size 3"):
        nat(args[0], bad)
    with pytest.raises(IndexError):
        nn.CrossEntropyLoss()(net(symad.tensor(args[0])), symad.tensor(bad))


def _mlp_program(loss, act, dtype, n=48):
    symad.manual_seed(3)
    net = nn.Sequential(nn.Linear(6, 16), act, nn.Linear(16, 3)).to(dtype)
    rng = np.random.default_rng(0)
    X = symad.tensor(rng.normal(size=(n, 6)), dtype=dtype)
    y = symad.tensor(rng.integers(0, 3, n)) if isinstance(loss, nn.CrossEntropyLoss) else \
        symad.tensor(rng.normal(size=(n, 3)), dtype=dtype)
    prog, out, grads, _ = capture(lambda X, y: loss(net(X), y), (X, y),
                                  wrt=list(net.parameters()),
                                  names={id(p): n for n, p in net.named_parameters()})
    return net, prog, (X._data, y._data), [out._data] + [g._data for g in grads]


@pytest.mark.parametrize("loss", [nn.MSELoss(), nn.CrossEntropyLoss(), nn.L1Loss()],
                         ids=["mse", "ce", "l1"])
@pytest.mark.parametrize("act", [nn.Tanh(), nn.ReLU(), nn.Sigmoid()], ids=["tanh", "relu",
                                                                          "sigmoid"])
def test_native_program_equals_eager_float64(loss, act):
    net, prog, args, want = _mlp_program(loss, act, symad.float64)
    nat = NativeProgram(prog)
    assert nat.native_steps > 0 and nat.segments >= 1
    got = nat(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-14)
    # the replay of the same program agrees too (and it is what runs when lowering is off)
    for g, w in zip(Runner(prog)(*args), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def test_native_program_reads_parameters_live_and_validates_arguments():
    net, prog, args, want = _mlp_program(nn.MSELoss(), nn.Tanh(), symad.float64)
    nat = NativeProgram(prog)
    with symad.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    got = nat(*args)
    ref = Runner(prog)(*args)
    assert not np.allclose(got[0], want[0])
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
    # a strided argument is copied, not misread — and copied again when it changed in place
    Xf = np.asfortranarray(args[0])
    np.testing.assert_allclose(nat(Xf, args[1])[0], ref[0], rtol=1e-12)
    Xf *= 2.0
    np.testing.assert_allclose(nat(Xf, args[1])[0], Runner(prog)(Xf, args[1])[0], rtol=1e-12)
    Xf /= 2.0
    with pytest.raises(ValueError, match=r"input 0 must be float64\[48, 6\].*got float32"):
        nat(args[0].astype(np.float32), args[1])
    with pytest.raises(ValueError, match=r"input 1 must be float64\[48, 3\].*got float64\[4, 3\]"):
        nat(args[0], args[1][:4])
    with pytest.raises(TypeError, match="expected 2 input arrays, got 1"):
        nat(args[0])
    net[0].weight.data = symad.zeros(3, 3, dtype=symad.float64)
    with pytest.raises(ValueError, match=r"tensor 0\.weight must be float64\[16, 6\]"):
        nat(*args)


def _train(native: bool, dtype, opt_fn, steps=6):
    native_program.ENABLED = native
    try:
        symad.manual_seed(0)
        net = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1)).to(dtype)
        opt = opt_fn(net.parameters())
        rng = np.random.default_rng(0)
        X = symad.tensor(rng.normal(size=(64, 10)), dtype=dtype)
        y = symad.tensor(rng.normal(size=(64, 1)), dtype=dtype)
        step = symad.compile_step(net, nn.MSELoss(), opt)
        losses = [step(X, y) for _ in range(steps)]
        return losses, [p.detach().numpy().copy() for p in net.parameters()], step.native_calls
    finally:
        native_program.ENABLED = True


@pytest.mark.parametrize("opt_fn", [lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
                                    lambda ps: optim.Adam(ps, lr=1e-2)], ids=["sgd-m", "adam"])
def test_compile_step_native_equals_eager_training(opt_fn):
    losses, params, calls = _train(True, symad.float64, opt_fn)
    assert "native call" in calls, calls
    # eager PyTorch-style loop: the oracle
    symad.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1)).to(symad.float64)
    opt = opt_fn(net.parameters())
    rng = np.random.default_rng(0)
    X = symad.tensor(rng.normal(size=(64, 10)), dtype=symad.float64)
    y = symad.tensor(rng.normal(size=(64, 1)), dtype=symad.float64)
    ref = []
    for _ in range(6):
        loss = nn.MSELoss()(net(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref.append(loss.item())
    np.testing.assert_allclose(losses, ref, rtol=1e-10)
    for p, q in zip(params, net.parameters()):
        np.testing.assert_allclose(p, q.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_compile_step_native_float32_close_to_replay():
    opt_fn = lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9)   # noqa: E731
    l1, p1, c1 = _train(True, symad.float32, opt_fn)
    l0, p0, c0 = _train(False, symad.float32, opt_fn)
    assert "native call" in c1 and "numpy/BLAS" in c0
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for a, b in zip(p1, p0):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _ce_program(make_net, n, draw):
    """A float32 cross-entropy program of ``make_net()`` (built after seeding) on ``n`` random
    rows (``draw``: the numpy distribution) of its input width: ``(program, X, y, eager loss,
    eager gradients)``."""
    symad.manual_seed(0)
    net = make_net()
    rng = np.random.default_rng(0)
    X = symad.tensor(getattr(rng, draw)(size=(n, net[0].in_features)).astype(np.float32))
    y = symad.tensor(rng.integers(0, net[-1].out_features, n))
    prog, out, grads, _ = capture(lambda X, y: nn.functional.cross_entropy(net(X), y), (X, y),
                                  wrt=list(net.parameters()))
    return prog, X, y, out, grads


def test_large_matmuls_stay_numpy_between_segments(monkeypatch):
    monkeypatch.setattr(native_program, "MAX_NATIVE_MATMUL", 1 << 16)
    prog, X, y, out, grads = _ce_program(lambda: nn.Sequential(
        nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)), 300, "uniform")
    nat = NativeProgram(prog)
    kinds = [item[0] for item in nat._plan]
    assert kinds.count("seg") == nat.segments >= 2 and nat.numpy_steps >= 3
    got = nat(X._data, y._data)
    for g, w in zip(got, [out._data] + [g._data for g in grads]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("M,K,N", [(5, 3, 7), (4, 1, 16), (9, 13, 33), (64, 10, 64), (300, 64, 32),
                                   (0, 3, 4), (3, 0, 20), (8, 5, 1), (9, 5, 10), (12, 6, 44),
                                   (13, 7, 4), (8, 3, 70)])
def test_register_tiled_matmul_edges_and_strides(M, K, N, dtype):
    """Blocks of 4 rows x 2 vectors, then 1 vector, then half a vector of columns, plus the
    edge loops; A read directly and transposed, against numpy in float64; C's previous contents
    never leak in."""
    from codegen.loops import MatMul
    rng = np.random.default_rng(M * 100 + K * 10 + N)
    A = rng.normal(size=(M, K)).astype(dtype)
    B = rng.normal(size=(K, N)).astype(dtype)
    ref = A.astype(np.float64) @ B.astype(np.float64)
    tol = 1e-5 if dtype == "float32" else 1e-13
    for abuf, astr in ((A, (K, 1)), (np.ascontiguousarray(A.T), (1, M))):
        C = np.full((M, N), 7, dtype)
        mod = LoopModule("mm", [dtype] * 3,
                         [[MatMul(M, N, K, 2, Access(0, 0, astr), Access(1, 0, (N, 1)))]])
        keep, addr = _ptrs(abuf, B, C)
        mod.segments[0](addr)
        np.testing.assert_allclose(C, ref, rtol=tol, atol=tol * (1 + np.abs(ref).max(initial=0)))
    with pytest.raises(ValueError, match="contiguous rows"):
        LoopModule("bad", [dtype] * 3, [[MatMul(2, 3, 2, 2, Access(0, 0, (2, 1)),
                                                Access(1, 0, (1, 2)))]])


#: per op with a registry ``decompose``: (argument shapes, params) cases
DECOMPOSITION_CASES = {
    "mse_loss": [(shapes, {"reduction": r}) for r in ("mean", "sum", "none")
                 for shapes in [((7, 3), (7, 3)), ((7, 3), (3,)), ((5,), ())]],
    "log_softmax": [(((7, 3),), {"dim": d}) for d in (-1, 0, 1)] + [(((4,),), {"dim": 0})],
    "softmax": [(((7, 3),), {"dim": d}) for d in (-1, 0, 1)] + [(((4,),), {"dim": 0})],
    "nll_loss": [(((7, 3), "target"), {"reduction": r}) for r in ("mean", "sum", "none")],
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_registry_decomposition_equals_the_forward(dtype):
    """An op's ``decompose`` (what native programs lower) is the same computation as its numpy
    forward: bitwise, with broadcasting, for every op that declares one (a new decomposition
    must add its cases here)."""
    from symad.ops.registry import REGISTRY
    ops = {op.name: op for op in REGISTRY.values() if op.decompose is not None}
    assert set(ops) == set(DECOMPOSITION_CASES)
    rng = np.random.default_rng(5)
    for name, cases in DECOMPOSITION_CASES.items():
        op = ops[name]
        for shapes, params in cases:
            arrays = [rng.integers(0, shapes[0][-1], shapes[0][0]) if s == "target" else
                      (rng.normal(size=s) * 30).astype(dtype) for s in shapes]
            want = op.forward(*arrays, **params)
            with symad.no_grad():
                got = op.decompose(*[symad.tensor(a) for a in arrays], **params)
            assert got.dtype.np == np.asarray(want).dtype, name
            np.testing.assert_array_equal(got.numpy(), want, err_msg=f"{name} {params}")


def test_a_derivative_holding_its_forward_loads_the_forward_result():
    """tanh' = 1 - tanh(x)^2 reads the forward's tanh buffer (one tanh per element, not two);
    the gradients still equal eager float64."""
    net, prog, args, want = _mlp_program(nn.MSELoss(), nn.Tanh(), symad.float64)
    nat = NativeProgram(prog)
    tanhs = [m for seg in nat.statements for m in seg
             if isinstance(m, Map) and m.expr.has(sympy.tanh)]
    assert len(tanhs) == 1                      # the forward only
    for g, w in zip(nat(*args), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def test_mse_loss_lowers_through_its_decomposition():
    net, prog, args, want = _mlp_program(nn.MSELoss(), nn.Tanh(), symad.float64)
    nat = NativeProgram(prog)
    assert nat.numpy_steps == 0 and nat.segments == 1
    for g, w in zip(nat(*args), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def test_cross_entropy_programs_lower_log_softmax_and_amax():
    """log_softmax lowers through its decomposition (an amax loop with -inf start, exp, a sum,
    log); values and gradients equal eager float64; amax of a row holding NaN is NaN."""
    net, prog, args, want = _mlp_program(nn.CrossEntropyLoss(), nn.Tanh(), symad.float64)
    nat = NativeProgram(prog)
    labels = [st.label() for st in nat.lowered.steps]
    assert "amax" in labels and "log_softmax" not in labels
    for g, w in zip(nat(*args), want):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-14)
    x = symad.tensor(np.array([[1.0, np.nan, 3.0], [-np.inf, -2.0, 5.0]]))
    p2, out, _, _ = capture(lambda x: x.amax(dim=1, keepdim=True), (x,), wrt=[])
    got = NativeProgram(p2)(x._data)[0]
    np.testing.assert_array_equal(got, out._data)


def test_transposed_weight_gradients_are_computed_transposed(monkeypatch):
    """``(x.T @ g).T`` (the VJP of ``x @ W.T``) becomes ``g.T @ x`` from ``TRANSPOSE_MIN``
    multiply-adds, in BLAS or native: no permute of a product is left in the lowered program,
    and the gradients still equal eager float64."""
    monkeypatch.setattr(native_program, "TRANSPOSE_MIN", 0)
    for blas in (True, False):
        if blas:
            monkeypatch.setattr(native_program, "MAX_NATIVE_MATMUL", 0)   # every matmul BLAS
        else:
            monkeypatch.undo()
            monkeypatch.setattr(native_program, "TRANSPOSE_MIN", 0)
        _check_transposed_products()


def _check_transposed_products():
    net, prog, args, want = _mlp_program(nn.MSELoss(), nn.Tanh(), symad.float64)
    nat = NativeProgram(prog)
    made = {st.out: st for st in nat.lowered.steps}
    for st in nat.lowered.steps:
        if st.op.name == "permute":
            src = made.get(st.ins[0])
            assert src is None or src.op.name != "matmul"
    for g, w in zip(nat(*args), want):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-14)


def test_any_failure_of_the_lowering_falls_back_to_the_replay(monkeypatch):
    """A compile never crashes where eager works: if building or trying the native program
    fails in any way, the step replays with numpy (the reference) and says why."""
    def broken(self, *a, **k):
        raise TypeError("simulated lowering bug")
    monkeypatch.setattr(NativeProgram, "__init__", broken)
    losses, params, calls = _train(True, symad.float64,
                                   lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9))
    assert "numpy/BLAS" in calls
    assert native_program.last_fallback == "TypeError: simulated lowering bug"
    ref_losses, ref_params, _ = _train(False, symad.float64,
                                       lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9))
    assert losses == ref_losses
    for a, b in zip(params, ref_params):
        np.testing.assert_array_equal(a, b)


def _eager_step(net, opt, X, y):
    """The tutorial's MSE step with any optimizer: the reference a compiled step must equal."""
    opt.zero_grad()
    loss = nn.MSELoss()(net(X), y)
    loss.backward()
    opt.step()
    return loss.item()


def _assert_params_close(a, b):
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), rtol=1e-11,
                                   atol=1e-14)


def test_steady_state_step_is_the_general_step_and_yields_to_it_on_any_change():
    """After the first steps, ``compile_step`` runs its steady state (program_step.FastStep):
    the same losses, parameters, ``.grad`` and optimizer state as eager SGD with momentum at
    every step, version counters bumped as the general path does; new batch arrays, a changed
    lr, a rebound parameter, a replaced optimizer state and zero_grad(set_to_none) in between
    are all seen."""
    from symad.compiler.program_step import FastStep

    def make():
        symad.manual_seed(1)
        net = nn.Sequential(nn.Linear(5, 48), nn.Tanh(), nn.Linear(48, 2)).double()
        return net, optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    a, oa = make()
    b, ob = make()
    step = symad.compile_step(a, nn.MSELoss(), oa)
    rng = np.random.default_rng(4)
    batches = [(symad.tensor(rng.normal(size=(16, 5))), symad.tensor(rng.normal(size=(16, 2))))
               for _ in range(3)]
    tol = {"rtol": 1e-11, "atol": 1e-13}

    def both(X, y):
        la = step(X, y).item()
        lb = _eager_step(b, ob, X, y)
        np.testing.assert_allclose(la, lb, **tol)
        for pa, pb in zip(a.parameters(), b.parameters()):
            np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), **tol)
            np.testing.assert_allclose(pa.grad.numpy(), pb.grad.numpy(), **tol)
            np.testing.assert_allclose(oa.state[pa]["momentum_buffer"].numpy(),
                                       ob.state[pb]["momentum_buffer"].numpy(), **tol)
    for k in range(6):                      # new batch arrays every step
        both(*batches[k % 3])
    assert isinstance(step._fast, FastStep) and step._fast.fused is not None
    assert "1 native call per step" in step.native_calls
    w = next(iter(a.parameters()))
    v0, g0 = w._version.value, w.grad._version.value
    both(*batches[0])
    assert (w._version.value, w.grad._version.value) == (v0 + 1, g0 + 1)
    for o in (oa, ob):                      # a schedule
        o.param_groups[0]["lr"] = 0.01
    both(*batches[1])
    with symad.no_grad():                   # a rebound parameter
        for net in (a, b):
            net[0].weight.data = net[0].weight.detach() * 0.5
    both(*batches[2])
    oa.load_state_dict(ob.state_dict())     # replaced state tensors
    oa.zero_grad()
    both(*batches[0])
    both(*batches[1])
    assert isinstance(step._fast, FastStep)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):    # the general path
        step(symad.tensor(np.zeros((16, 4))), batches[0][1])


def test_steady_state_runs_adam_with_its_per_step_scalars():
    """Adam in the steady state: step counters counted, step size and bias correction computed
    for each call, as the general path does; equal to eager Adam at every step, and a replaced
    step counter (load_state_dict) yields to the general path."""
    from symad.compiler.program_step import FastStep

    def make():
        symad.manual_seed(3)
        net = nn.Sequential(nn.Linear(6, 48), nn.ReLU(), nn.Linear(48, 2)).double()
        return net, optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-3)
    a, oa = make()
    b, ob = make()
    step = symad.compile_step(a, nn.MSELoss(), oa)
    rng = np.random.default_rng(8)
    X, y = symad.tensor(rng.normal(size=(12, 6))), symad.tensor(rng.normal(size=(12, 2)))
    for k in range(6):
        np.testing.assert_allclose(step(X, y).item(), _eager_step(b, ob, X, y), rtol=1e-12)
        if k == 3:
            assert isinstance(step._fast, FastStep) and step._fast.fused is not None
            oa.load_state_dict(ob.state_dict())
    _assert_params_close(a, b)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert float(oa.state[pa]["step"]) == float(ob.state[pb]["step"]) == 6


def test_large_matmuls_run_in_row_blocks_on_threads_with_the_same_bits(monkeypatch):
    """threads=2 splits each large matmul into row blocks run in parallel; every output equals
    the one-thread program bit for bit (blocks start at multiples of the register block)."""
    monkeypatch.setattr(native_program, "PARALLEL_MIN", 1 << 21)
    prog, X, y, out, grads = _ce_program(lambda: nn.Sequential(
        nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 10)), 100, "normal")
    one = NativeProgram(prog, threads=1)
    two = NativeProgram(prog, threads=2)
    three = NativeProgram(prog, threads=3)
    assert not one._parallel and two._parallel and three.segments > two.segments
    want = [a.copy() for a in one(X._data, y._data)]
    for nat in (two, three):
        for _ in range(3):
            for g, w in zip(nat(X._data, y._data), want):
                np.testing.assert_array_equal(g, w)
    for g, w in zip(want, [out._data] + [g._data for g in grads]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_steady_state_fused_step_with_two_param_groups_equals_eager_adam():
    """The fused steady-state step (program and update in one native call) with two parameter
    groups of their own lr and betas: each group's hyperparameter row and step count reach its
    update — equal to eager Adam at every step."""
    def make():
        symad.manual_seed(5)
        net = nn.Sequential(nn.Linear(4, 40), nn.Tanh(), nn.Linear(40, 3)).double()
        return net, optim.Adam([{"params": net[0].parameters()},
                                {"params": net[2].parameters(), "lr": 0.03,
                                 "betas": (0.7, 0.95)}], lr=0.01)
    a, oa = make()
    b, ob = make()
    step = symad.compile_step(a, nn.MSELoss(), oa)
    rng = np.random.default_rng(2)
    X, y = symad.tensor(rng.normal(size=(9, 4))), symad.tensor(rng.normal(size=(9, 3)))
    for _ in range(7):
        np.testing.assert_allclose(step(X, y).item(), _eager_step(b, ob, X, y), rtol=1e-12)
    assert step._fast is not None and step._fast.fused is not None
    _assert_params_close(a, b)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(oa.state[pa]["exp_avg_sq"].numpy(),
                                   ob.state[pb]["exp_avg_sq"].numpy(), rtol=1e-11, atol=1e-16)


def test_gradients_are_written_straight_into_the_out_arrays():
    """Outputs copied into ``out=`` arrays: one made in a buffer nothing else views is computed
    in the caller's array itself (the weight gradients' matmuls write there, no copy loop); the
    values equal eager's, in the arrays passed, call after call."""
    prog, X, y, out, grads = _ce_program(lambda: nn.Sequential(
        nn.Linear(300, 256), nn.Tanh(), nn.Linear(256, 5)), 8, "normal")
    k_out = tuple(range(1, 1 + len(grads)))
    nat = NativeProgram(prog, copy_outputs=k_out, threads=1)
    stmts = [st for seg in nat.statements for st in seg]
    w1, b1, w2, b2 = nat._out_bufs
    # the large weight's gradient is a product of its own (transposed operands): written there
    assert any(isinstance(st, MatMul) and st.c == w1 for st in stmts)
    # the biases' sums accumulate in place; the small weight's gradient is a transposed view
    # of its product, so it alone keeps a copy loop
    copies = [st.out.buf for st in stmts if isinstance(st, Map) and st.out.buf in nat._out_bufs
              and st.expr == st.syms[0] and not st.accumulate]
    assert copies == [w2]
    outs = [np.full(g._data.shape, np.nan, np.float32) for g in grads]
    for _ in range(2):
        got = nat(X._data, y._data, out=outs)
        for g, o, w in zip(got[1:], outs, grads):
            assert g is o
            np.testing.assert_allclose(o, w._data, rtol=1e-5, atol=1e-7)


def test_a_large_misaligned_input_is_read_from_an_aligned_copy_at_every_call():
    """A float input of >= 64 KiB off a cache line, read by products as their B operand
    (vector loads) >= STAGE_REUSE times per element, is copied into an aligned buffer at each
    call: the same results, bit for bit, as the aligned array, and an in-place change of the
    caller's array is seen by the next call. Read fewer times, it is read where it is."""
    few, *_ = _ce_program(lambda: nn.Sequential(
        nn.Linear(300, 64), nn.Tanh(), nn.Linear(64, 5)), 64, "normal")
    assert not NativeProgram(few, threads=1)._stage_ok      # dW1 reads X 64 times
    prog, X, y, out, grads = _ce_program(lambda: nn.Sequential(
        nn.Linear(300, 160), nn.Tanh(), nn.Linear(160, 5)), 64, "normal")
    assert X._data.nbytes >= native_program.STAGE_MIN
    nat = NativeProgram(prog, threads=1)
    assert nat._stage_ok == {0}                             # 160 times
    raw = np.zeros(X._data.size + 16, np.float32)
    off = next(k for k in range(1, 16) if (raw.ctypes.data + 4 * k) % 64)
    Xm = raw[off:off + X._data.size].reshape(X._data.shape)
    Xm[...] = X._data
    assert Xm.ctypes.data % 64
    Xa = np.array(X._data)
    for scale in (1.0, 2.0):
        Xm *= np.float32(scale)
        Xa *= np.float32(scale)
        want = [a.copy() for a in nat(Xa, y._data)]
        got = nat(Xm, y._data)
        assert nat._ptrs[0] % 64 == 0 and nat._ptrs[0] != Xm.ctypes.data
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    np.testing.assert_allclose(nat(X._data, y._data)[0], out._data, rtol=1e-5)


def test_steady_state_with_threaded_matmuls_equals_eager_adam(monkeypatch):
    """With matmuls split over two threads the steady state makes two native calls (the program's
    parallel row blocks, then the update) instead of one: the same values as eager Adam."""
    monkeypatch.setattr(native_program, "PARALLEL_MIN", 1 << 12)

    def make():
        symad.manual_seed(7)
        net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3)).double()
        return net, optim.Adam(net.parameters(), lr=0.01)
    a, oa = make()
    b, ob = make()
    step = symad.compile_step(a, nn.MSELoss(), oa, threads=2)
    rng = np.random.default_rng(3)
    X, y = symad.tensor(rng.normal(size=(32, 20))), symad.tensor(rng.normal(size=(32, 3)))
    for _ in range(5):
        np.testing.assert_allclose(step(X, y).item(), _eager_step(b, ob, X, y), rtol=1e-12)
    fast = step._fast
    assert fast is not None and fast.parallel and fast.fused is None
    assert "2 native calls per step" in step.native_calls
    _assert_params_close(a, b)
