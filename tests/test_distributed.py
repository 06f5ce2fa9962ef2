"""symad.distributed on a real LocalCluster (2 worker processes): loss and exact gradient over
chunked data equal the in-process ``symad.value_and_grad`` and a hand-derived numpy gradient;
the fixed-order sum is bitwise the local reference; L-BFGS and minibatch fits; a worker killed
mid-evaluation; bad chunks named in the error.

One cluster for the whole module (starting worker processes is the slow part).
"""
from __future__ import annotations

import doctest
import os
import signal
import uuid

import numpy as np
import pytest

import symad

if os.environ.get("SYMAD_REQUIRE_EXTRAS"):  # CI (.ci/run) installs symad[dask]: must run
    import dask.array as da
    import distributed
else:
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
import dask

import symad.distributed as sd


def _require(name: str):
    if os.environ.get("SYMAD_REQUIRE_EXTRAS"):
        import importlib
        return importlib.import_module(name)
    return pytest.importorskip(name)


TRUE = np.array([2.0, 0.3, 3.0, 0.5, 0.1])
START = np.array([1.5, 0.2, 2.9, 0.3, 0.0])
N, CHUNKS = 4_000_000, 16


def curve_loss(t, x, y):
    pred = t[0] * symad.exp(-t[1] * x) * symad.sin(t[2] * x + t[3]) + t[4]
    return ((pred - y) ** 2).mean()


def curve_data(n=N, chunks=CHUNKS, seed=1234):
    """x ~ U(0, 10), y = model(x) + N(0, 0.01): generated inside the tasks from a seed."""
    rng = da.random.default_rng(seed)
    x = rng.uniform(0.0, 10.0, size=n, chunks=n // chunks)
    noise = rng.normal(0.0, 0.01, size=n, chunks=n // chunks)
    t = TRUE
    return x, t[0] * da.exp(-t[1] * x) * da.sin(t[2] * x + t[3]) + t[4] + noise


def numpy_value_and_grad(t, x, y):
    """Independent oracle: the MSE and its gradient derived by hand, float64 numpy."""
    e = np.exp(-t[1] * x)
    s, c = np.sin(t[2] * x + t[3]), np.cos(t[2] * x + t[3])
    r = t[0] * e * s + t[4] - y
    d = [e * s, -t[0] * x * e * s, t[0] * e * c * x, t[0] * e * c, np.ones_like(x)]
    return np.mean(r * r), np.array([np.mean(2 * r * di) for di in d])


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=":0", death_timeout=120)
    c = distributed.Client(cluster, timeout=120)
    c.wait_for_workers(2, timeout=120)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def curve(client):
    """The 4e6-sample data set, its persisted distributed loss, and local copies of the data."""
    x, y = curve_data()
    loss = sd.value_and_grad(curve_loss, (x, y), client=client)
    xs, ys = dask.compute(x, y, scheduler="sync")
    return loss, xs, ys, (x, y)


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b)))


def test_curve_fit_equals_in_process_value_and_grad(curve):
    loss, xs, ys, _ = curve
    ev = loss.evaluate(START)
    value, grad = ev.value, ev.grads[0]
    assert ev.count == N
    assert isinstance(value, float) and grad.shape == (5,) and grad.dtype == np.float64
    ref_v, ref_g = symad.value_and_grad(curve_loss)(START, xs, ys)
    assert _rel(value, ref_v) <= 1e-12
    assert _rel(grad, ref_g) <= 1e-12
    np_v, np_g = numpy_value_and_grad(START, xs, ys)  # hand-derived, different summation order
    assert _rel(value, np_v) <= 1e-10 and _rel(grad, np_g) <= 1e-9


def test_sum_is_the_fixed_tree_order_bitwise(curve, client):
    loss, xs, ys, _ = curve
    ck = loss.kernel(START)
    step = N // CHUNKS
    parts = [ck.partial(START, [xs[i * step:(i + 1) * step], ys[i * step:(i + 1) * step]], i)
             for i in range(CHUNKS)]
    try:
        for fan_in in (4, 32):  # 4: a level of combine tasks on the workers; 32: all here
            loss.fan_in = fan_in
            ev = loss.evaluate(START)
            want = sd.tree_sum(parts, fan_in)
            assert ev.count == int(want[0])
            assert ev.value == want[1] / N
            assert np.array_equal(ev.grads[0], want[2:] / N)
    finally:
        loss.fan_in = 32
    # repeated evaluations are bitwise identical whatever the scheduling
    assert loss(START)[0] == loss(START)[0]


def test_lbfgs_recovers_true_parameters(curve):
    minimize = _require("scipy.optimize").minimize
    loss, *_ = curve
    res = minimize(loss, START, jac=True, method="L-BFGS-B")
    assert res.success, res.message
    np.testing.assert_allclose(res.x, TRUE, atol=2e-4)
    assert res.fun < 1.1e-4  # the noise variance is 1e-4


def test_gradient_descent_decreases_loss(curve):
    loss, *_ = curve
    t = START.copy()
    first, _ = loss(t)
    for _ in range(5):
        g = loss(t)[1]
        t = t - 0.05 * g
    assert loss(t)[0] < first


def test_worker_killed_mid_evaluation_gives_the_same_numbers(curve, client):
    loss, _, _, (x, y) = curve
    want_v, want_g = loss(START)
    name = f"symad-kill-{uuid.uuid4().hex}"

    def die_once(block, block_info=None):
        # the worker computing chunk 7's data during the evaluation kills itself, once
        if block_info[0]["chunk-location"][0] == 7:
            ev = distributed.Event(name)
            if not ev.is_set():
                ev.set()
                os.kill(os.getpid(), signal.SIGKILL)
        return block

    before = set(client.scheduler_info()["workers"])
    x_dying = x.map_blocks(die_once, dtype=x.dtype)
    fresh = sd.value_and_grad(curve_loss, (x_dying, y), client=client, persist=False)
    got_v, got_g = fresh(START)
    assert distributed.Event(name, client=client).is_set()  # the kill really happened
    client.wait_for_workers(2, timeout=120)
    assert set(client.scheduler_info()["workers"]) != before  # one worker was replaced
    assert got_v == want_v and np.array_equal(got_g, want_g)
    # the persisted loss lost the chunks the dead worker held: Dask recomputes them
    again_v, again_g = loss(START)
    assert again_v == want_v and np.array_equal(again_g, want_g)


def _count_builds_and_traces():
    """Worker-side instrumentation: count codegen.Kernel constructions and traces."""
    import codegen
    from symad import symbolic
    if not hasattr(codegen.Kernel, "_test_counts"):
        codegen.Kernel._test_counts = {"builds": 0, "traces": 0}
        init, trace = codegen.Kernel.__init__, symbolic.trace_batched

        def counting_init(self, *a, **kw):
            codegen.Kernel._test_counts["builds"] += 1
            init(self, *a, **kw)

        def counting_trace(*a, **kw):
            codegen.Kernel._test_counts["traces"] += 1
            return trace(*a, **kw)
        codegen.Kernel.__init__ = counting_init
        symbolic.trace_batched = counting_trace
    return dict(codegen.Kernel._test_counts)


def test_kernel_built_once_per_worker_and_never_traced_there(client):
    before = client.run(_count_builds_and_traces)
    x = da.from_array(np.linspace(0.0, 1.0, 16_000), chunks=1000)

    def fresh_loss(t, x):  # a kernel no other test built
        return ((t[0] * symad.exp(-t[1] * x) - 0.5 * x) ** 2).sum()

    loss = sd.value_and_grad(fresh_loss, x, client=client)
    for k in range(4):
        loss(np.array([1.0, 0.1 * k]))
    after = client.run(_count_builds_and_traces)
    builds = {w: after[w]["builds"] - before[w]["builds"] for w in after}
    assert all(b <= 1 for b in builds.values()) and sum(builds.values()) >= 1, builds
    assert all(after[w]["traces"] == before[w]["traces"] for w in after)


def _small(n=8000, chunks=8, seed=7):
    rng = np.random.default_rng(seed)
    xs = rng.uniform(0, 10, n)
    ys = TRUE[0] * np.exp(-TRUE[1] * xs) * np.sin(TRUE[2] * xs + TRUE[3]) + TRUE[4]
    return xs, ys, da.from_array(xs, chunks=n // chunks), da.from_array(ys, chunks=n // chunks)


def test_nan_in_a_chunk_is_named(client):
    xs, _, _, y = _small()
    xs = xs.copy()
    xs[5 * 1000 + 17] = np.nan
    loss = sd.value_and_grad(curve_loss, (da.from_array(xs, chunks=1000), y), client=client)
    with pytest.raises(sd.BadChunkError, match=r"chunk 5 \(rows 5000\.\.5999\).*'x'.*nan.*"
                                               r"row 17 of the chunk \(row 5017 overall\)"):
        loss(START)


def test_wrong_dtype_and_width_chunks_are_named(client):
    *_, x, y = _small()

    def int_chunk(b, block_info=None):
        return b.astype(np.int64) if block_info[0]["chunk-location"][0] == 3 else b

    bad = sd.value_and_grad(curve_loss, (x.map_blocks(int_chunk, dtype=x.dtype), y),
                            client=client)
    with pytest.raises(sd.BadChunkError, match=r"chunk 3 .*'x' has dtype int64") as e:
        bad(START)
    assert e.value.chunk == 3 and e.value.argument == "x"

    def wide_chunk(b, block_info=None):
        return np.stack([b, b], axis=1) if block_info[0]["chunk-location"][0] == 6 else b

    wide = sd.value_and_grad(curve_loss, (x, y.map_blocks(wide_chunk, dtype=y.dtype)),
                             client=client)
    with pytest.raises(sd.BadChunkError, match=r"chunk 6 .*'y' has samples of shape \(2,\)"):
        wide(START)


def test_parameters_outside_the_domain_raise_unless_asked(client):
    *_, x, y = _small()
    huge = np.array([1.0, -1e3, 1.0, 0.0, 0.0])  # exp(1000 x) overflows
    loss = sd.value_and_grad(curve_loss, (x, y), client=client)
    with pytest.raises(sd.BadChunkError, match="not finite .* data is finite"):
        loss(huge)
    lenient = sd.value_and_grad(curve_loss, (x, y), client=client, check_finite=False)
    assert not np.isfinite(lenient(huge)[0])


def test_bad_inputs_fail_before_any_task(client):
    xs, _, x, y = _small()
    with pytest.raises(TypeError, match="dask.array.from_array"):
        sd.value_and_grad(curve_loss, (xs, y), client=client)
    with pytest.raises(TypeError, match="dtype int64"):
        sd.value_and_grad(curve_loss, (x.astype(np.int64), y), client=client)
    with pytest.raises(ValueError, match="same length"):
        sd.value_and_grad(curve_loss, (x, y[:-1]), client=client)
    per_sample = sd.value_and_grad(lambda t, x, y: (t[0] * x - y) ** 2, (x, y), client=client)
    with pytest.raises(ValueError, match="sum or mean over samples"):
        per_sample(START)


def test_dataframe_columns_and_scheduler_address(client):
    pd = _require("pandas")
    dd = _require("dask.dataframe")
    rng = np.random.default_rng(3)
    n = 6000
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                          "label": rng.normal(size=n), "name": ["s"] * n})
    ddf = dd.from_pandas(frame, npartitions=5)

    def lin_loss(w, b, X, y):
        return (((X * w).sum(dim=1) + b - y) ** 2).sum()

    w0, b0 = np.array([0.5, -1.0]), np.array(0.25)
    loss = sd.value_and_grad(lin_loss, ddf, columns=[["a", "b"], "label"],
                             client=client.scheduler.address)
    try:
        value, (gw, gb) = loss(w0, b0)
    finally:
        loss.close()
    X, yv = frame[["a", "b"]].to_numpy(), frame["label"].to_numpy()
    r = X @ w0 + b0 - yv
    assert _rel(value, (r ** 2).sum()) <= 1e-12
    np.testing.assert_allclose(gw, 2 * X.T @ r, rtol=1e-12)
    np.testing.assert_allclose(gb, 2 * r.sum(), rtol=1e-12)
    ref_v, (ref_w, ref_b) = symad.value_and_grad(lin_loss, argnums=(0, 1))(w0, b0, X, yv)
    assert _rel(value, ref_v) <= 1e-12 and _rel(gw, ref_w) <= 1e-12 and _rel(gb, ref_b) <= 1e-12
    with pytest.raises(TypeError, match="column 'name' has dtype"):
        sd.value_and_grad(lin_loss, ddf, columns=[["a", "b"], "name"], client=client)
    with pytest.raises(KeyError, match="'nope'"):
        sd.value_and_grad(lin_loss, ddf, columns=[["a", "nope"], "label"], client=client)


def test_minibatch_fit_equals_the_same_steps_in_process(client):
    xs, ys, x, y = _small(n=8000, chunks=8)
    loss = sd.value_and_grad(curve_loss, (x, y), client=client)

    def sgd(ps):
        return symad.optim.SGD(ps, lr=0.02, momentum=0.9)

    out = sd.fit(loss, START, optimizer=sgd, steps=12, chunks_per_step=3, seed=5)
    assert len(out.losses) == 12 and out.chunks == sd.chunk_schedule(8, 3, 12, seed=5)
    # epochs: the first two steps (6 of 8 chunks) use distinct chunks
    first = [i for c in out.chunks[:2] for i in c]
    assert len(first) == len(set(first)) == 6
    # the same steps in one process: in-process value_and_grad on the same chunks' rows
    t = symad.tensor(START.copy(), requires_grad=True)
    opt = sgd([t])
    vg = symad.value_and_grad(curve_loss)
    for step, chunks in enumerate(out.chunks):
        rows = np.concatenate([np.arange(c * 1000, (c + 1) * 1000) for c in chunks])
        v, g = vg(t.detach().numpy(), xs[rows], ys[rows])
        assert abs(out.losses[step] - v) <= 1e-12 * abs(v)
        t.grad = symad.tensor(g)
        opt.step()
    np.testing.assert_allclose(out.params, t.detach().numpy(), rtol=1e-11)
    assert loss(out.params)[0] < loss(START)[0]


def test_unwraps_compiled_functions_and_default_client(client, curve):
    _, xs, ys, (x, y) = curve
    small_x, small_y = x[:100_000], y[:100_000]
    with distributed.Client(client.scheduler.address) as c2:  # becomes the current client
        loss = sd.value_and_grad(symad.value_and_grad(curve_loss), (small_x, small_y))
        assert loss.client is c2
        v, g = loss(START)
    ref_v, ref_g = symad.value_and_grad(curve_loss)(START, xs[:100_000], ys[:100_000])
    assert _rel(v, ref_v) <= 1e-12 and _rel(g, ref_g) <= 1e-12


@pytest.mark.parametrize("mod", ["tree", "fit"])  # loss's example is docs/distributed.md's
def test_docstring_examples(mod):
    import importlib
    m = importlib.import_module(f"symad.distributed.{mod}")
    result = doctest.testmod(m, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_float32_data_and_parameters_give_a_float32_kernel(client):
    xs, ys, x, y = _small(n=40_000, chunks=4)
    loss = sd.value_and_grad(curve_loss, (x.astype(np.float32), y.astype(np.float32)),
                             client=client)
    t32 = START.astype(np.float32)
    value, grad = loss(t32)
    assert loss.kernel(t32).spec.dtype == "float32"
    # float32 kernel, float64 sums: close to the float64 oracle on the rounded data
    np_v, np_g = numpy_value_and_grad(t32.astype(np.float64), xs.astype(np.float32)
                                      .astype(np.float64), ys.astype(np.float32)
                                      .astype(np.float64))
    assert _rel(value, np_v) <= 1e-5 and _rel(grad, np_g) <= 1e-4
    # float64 parameters promote the kernel to float64, as in PyTorch
    assert loss.kernel(START).spec.dtype == "float64"


def test_example_script_fits_on_the_cluster(client):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / "distributed_curve_fit.py"
    spec = importlib.util.spec_from_file_location("distributed_curve_fit", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(client, n=200_000, chunks=8, adam_steps=30)
    np.testing.assert_allclose(out["lbfgs"], TRUE, atol=1e-3)
    assert out["adam_losses"][-1] < out["adam_losses"][0]


def test_unpersisted_minibatch_and_arity_errors(client):
    xs, ys, x, y = _small(n=8000, chunks=8)
    lazy = sd.value_and_grad(curve_loss, (x, y), client=client, persist=False)
    ev = lazy.evaluate(START, chunks=[6, 1])
    rows = np.r_[1000:2000, 6000:7000]
    ref_v, ref_g = symad.value_and_grad(curve_loss)(START, xs[rows], ys[rows])
    assert ev.count == 2000 and _rel(ev.value, ref_v) <= 1e-12 and _rel(ev.grads[0], ref_g) <= 1e-12
    with pytest.raises(TypeError, match=r"takes 3 arguments \['t', 'x', 'y'\].*got 2 param"):
        lazy(START, START)
    with pytest.raises(IndexError, match="chunk indices"):
        lazy.evaluate(START, chunks=[8])
