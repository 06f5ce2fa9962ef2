"""symad.distributed throughput: samples/s for 1 and 2 Dask workers vs in-process (not a test).

Loss: the curve fit t0*exp(-t1*x)*sin(t2*x+t3)+t4 with MSE and its exact 5-parameter gradient.
Data: N samples (default 1e7) in 16 chunks, generated on the workers from a seed and persisted.
For each setting, the median (and best) of REPEATS evaluations of loss + gradient over all data:

* in-process ``symad.value_and_grad`` on numpy arrays (kernel threads = 1 and = all cores);
* ``symad.distributed.value_and_grad`` on a LocalCluster of 1 and 2 worker processes
  (one thread each);
* the overhead per evaluation: the same 16 chunks holding 64 samples each (the Dask round trip
  and task scheduling), next to 16 no-op Dask tasks (Dask's own floor), and the kernel time of
  one chunk in this process.

Run: ``python benchmarks/bench_distributed.py [N] [REPEATS]`` (needs ``pip install 'symad[dask]'``).
"""
from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np

import symad
import symad.distributed as sd

CHUNKS = 16
THETA = np.array([1.5, 0.2, 2.9, 0.3, 0.0])


def loss(t, x, y):
    pred = t[0] * symad.exp(-t[1] * x) * symad.sin(t[2] * x + t[3]) + t[4]
    return ((pred - y) ** 2).mean()


def data(n: int):
    import dask.array as da
    rng = da.random.default_rng(1234)
    x = rng.uniform(0.0, 10.0, size=n, chunks=n // CHUNKS)
    y = 2 * da.exp(-0.3 * x) * da.sin(3 * x + 0.5) + 0.1 + rng.normal(0, 0.01, size=n,
                                                                         chunks=n // CHUNKS)
    return x, y


def _noop(i: int) -> int:
    return i


def timed(f, repeats: int) -> tuple[float, float]:
    f()  # warm: kernel build, data load
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(min(ts))


def in_process(n: int, repeats: int) -> list:
    import dask
    xs, ys = dask.compute(*data(n), scheduler="sync")
    rows = []
    for threads in (1, os.cpu_count() or 1):
        vg = symad.value_and_grad(loss, threads=threads)
        med, best = timed(lambda: vg(THETA, xs, ys), repeats)  # noqa: B023 (called right here)
        rows.append((f"in-process `symad.value_and_grad`, {threads} thread(s)", n, med, best))
    ck = sd.build_chunk_kernel(loss, [THETA], [xs[:2], ys[:2]])
    step = n // CHUNKS
    med, best = timed(lambda: ck.partial(THETA, [xs[:step], ys[:step]]), repeats)
    rows.append(("one chunk's kernel, this process, 1 thread", step, med, best))
    return rows


def main() -> None:
    import dask
    from distributed import Client, LocalCluster

    n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 10_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    print(f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, dask {dask.__version__}; N = {n:,}, "
          f"{CHUNKS} chunks, {repeats} evaluations each (median / best); load average "
          f"{os.getloadavg()[0]:.1f} at start")
    rows = in_process(n, repeats)
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            full = sd.value_and_grad(loss, data(n), client=client)
            med, best = timed(lambda: full(THETA), repeats)  # noqa: B023
            rows.append((f"`symad.distributed`, {workers} worker process(es)", n, med, best))
            tiny = sd.value_and_grad(loss, data(64 * CHUNKS), client=client)
            med, best = timed(lambda: tiny(THETA), repeats)  # noqa: B023
            rows.append((f"overhead: {CHUNKS} chunks x 64 samples, {workers} worker(s)",
                         64 * CHUNKS, med, best))
            med, best = timed(lambda: client.gather(client.map(_noop, range(CHUNKS),
                                                               pure=False)), repeats)
            rows.append((f"Dask alone: {CHUNKS} no-op tasks, {workers} worker(s)", 0, med, best))
    print()
    print("| setting | samples | median | best | samples/s (median) |")
    print("|---|---|---|---|---|")
    for name, m, med, best in rows:
        rate = f"{m / med / 1e6:.1f} M" if m >= 1e5 else "-"
        print(f"| {name} | {m:,} | {med * 1e3:.1f} ms | {best * 1e3:.1f} ms | {rate} |")


if __name__ == "__main__":
    main()
