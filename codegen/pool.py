"""A thread pool in native code: worker threads that never touch Python.

A ``ThreadPoolExecutor`` hand-off costs tens of microseconds (the future, the GIL, the wake-up)
per call; here the workers spin for a while on a generation counter and then sleep on a futex,
so a call that follows the last one closely reaches running workers in about a microsecond.

A *run* is a list of tasks, each an entry point of the one calling convention and its argument
array (``tasks``: an ``(n, 2)`` int64 array of function and argument addresses). The calling
thread and the workers take tasks from a shared counter until none is left; the call returns
when every worker has finished its last one. Which thread runs a task never changes its
result (each task writes its own outputs), so results do not depend on the thread count. The
workers compute with the caller's floating-point mode (MXCSR: flush-to-zero, rounding) of the
run. Linux only (futex); :func:`supported` says whether this process has it.

After a run the workers poll for ~1-2 ms before they sleep, so a worker keeps a core busy for
that long after each threaded call (as OpenMP runtimes do); ``SYMAD_NATIVE_WORKERS=0`` turns the
native workers off.

Knows LLVM only (never imports ``symad``).
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import warnings

import numpy as np

from . import target as target_mod
from .cache import DiskCache
from .native import ENTRY, NativeModule, Slots, slot_loads

#: polls of the counter before a waiting thread sleeps on its futex (~1-2 ms here). Waking a
#: sleeping thread takes ~200 us on this VM (a halted vCPU), so workers poll for a while, as
#: OpenMP runtimes do; no ``pause``: in a VM it traps to the hypervisor (pause-loop exiting)
SPIN = 1 << 22
#: the pool's state: int64 slots, the hot ones a cache line apart
GEN, NEXT, PENDING, TASKS, N_TASKS, MXCSR, STOP, WORKERS = 0, 8, 16, 24, 25, 26, 27, 28
_SIZE = 32
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}
_WAIT, _WAKE = 128, 129             # FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE


def _arch() -> str:
    return target_mod.host_target().triple.split("-")[0]


def supported() -> bool:
    """Whether native workers run here: Linux on x86-64 or AArch64, and not turned off with
    ``SYMAD_NATIVE_WORKERS=0`` (then threaded calls hand their shares to Python threads)."""
    if os.environ.get("SYMAD_NATIVE_WORKERS", "1").strip() in ("0", "false", "no", "off"):
        return False
    return sys.platform.startswith("linux") and _arch() in _SYS_FUTEX


def pool_ir() -> str:
    """``symad_pool_start`` (slots: state, workers, thread ids; returns the number started),
    ``symad_pool_run`` (slots: state, tasks, n_tasks) and ``symad_pool_stop`` (slot: state)."""
    x86 = _arch() == "x86_64"
    sys_futex = _SYS_FUTEX.get(_arch(), 202)
    put_csr = ("  %mq = getelementptr inbounds i64, ptr %pool, i64 26\n"
               "  call void @llvm.x86.sse.ldmxcsr(ptr %mq)") if x86 else ""
    get_csr = ("  %mq = getelementptr inbounds i64, ptr %pool, i64 26\n"
               "  call void @llvm.x86.sse.stmxcsr(ptr %mq)") if x86 else ""
    start_args, run_args, join_args, stop_args = (
        "\n".join(slot_loads(slots)) for slots in (
            [("pool", "ptr"), ("n", "i64"), ("tids", "ptr")],
            [("pool", "ptr"), ("tasks", "ptr"), ("n", "i64")],
            [("tids", "ptr"), ("n", "i64")],
            [("pool", "ptr")]))
    decls = ("declare void @llvm.x86.sse.stmxcsr(ptr)\n"
             "declare void @llvm.x86.sse.ldmxcsr(ptr)\n") if x86 else ""
    return f"""{decls}declare i64 @syscall(i64, ...)
declare i32 @pthread_create(ptr, ptr, ptr, ptr)
declare i32 @pthread_join(i64, ptr)

define internal void @futex_wait(ptr %a, i32 %v) {{
  %r = call i64 (i64, ...) @syscall(i64 {sys_futex}, ptr %a, i32 {_WAIT}, i32 %v, ptr null)
  ret void
}}

define internal void @futex_wake(ptr %a, i32 %n) {{
  %r = call i64 (i64, ...) @syscall(i64 {sys_futex}, ptr %a, i32 {_WAKE}, i32 %n)
  ret void
}}

; until the i32 at %a differs from %v: spin, then sleep on the futex; returns the new value
define internal i32 @await_change(ptr %a, i32 %v) {{
entry:
  br label %spin
spin:
  %s = phi i32 [ 0, %entry ], [ %s1, %relax ], [ 0, %sleep ]
  %g = load atomic i32, ptr %a acquire, align 8
  %changed = icmp ne i32 %g, %v
  br i1 %changed, label %done, label %idle
idle:
  %few = icmp ult i32 %s, {SPIN}
  br i1 %few, label %relax, label %sleep
relax:
  %s1 = add nuw i32 %s, 1
  br label %spin
sleep:
  call void @futex_wait(ptr %a, i32 %v)
  br label %spin
done:
  ret i32 %g
}}

; tasks until the shared counter passes n_tasks
define internal void @take(ptr %pool) {{
entry:
  %nq = getelementptr inbounds i64, ptr %pool, i64 {NEXT}
  %tq = getelementptr inbounds i64, ptr %pool, i64 {TASKS}
  %tasks = load ptr, ptr %tq, align 8
  %cq = getelementptr inbounds i64, ptr %pool, i64 {N_TASKS}
  %n = load i64, ptr %cq, align 8
  br label %loop
loop:
  %t = atomicrmw add ptr %nq, i64 1 monotonic, align 8
  %more = icmp slt i64 %t, %n
  br i1 %more, label %body, label %done
body:
  %e = shl i64 %t, 1
  %fq = getelementptr inbounds i64, ptr %tasks, i64 %e
  %fn = load ptr, ptr %fq, align 8
  %aq = getelementptr inbounds i64, ptr %fq, i64 1
  %args = load ptr, ptr %aq, align 8
  %r = call i64 %fn(ptr %args)
  br label %loop
done:
  ret void
}}

define internal ptr @worker(ptr %pool) {{
entry:
  %pq = getelementptr inbounds i64, ptr %pool, i64 {PENDING}
  %sq = getelementptr inbounds i64, ptr %pool, i64 {STOP}
  br label %wait
wait:
  %seen = phi i32 [ 0, %entry ], [ %g, %finished ]
  %g = call i32 @await_change(ptr %pool, i32 %seen)
  %stop = load atomic i64, ptr %sq acquire, align 8
  %quit = icmp ne i64 %stop, 0
  br i1 %quit, label %exit, label %work
work:
{put_csr}
  call void @take(ptr %pool)
  %p = atomicrmw sub ptr %pq, i32 1 acq_rel, align 8
  %last = icmp eq i32 %p, 1
  br i1 %last, label %wake, label %finished
wake:
  call void @futex_wake(ptr %pq, i32 1)
  br label %finished
finished:
  br label %wait
exit:
  ret ptr null
}}

define i64 @symad_pool_start(ptr %args) {{
entry:
{start_args}
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %made ]
  %more = icmp slt i64 %i, %n
  br i1 %more, label %make, label %done
make:
  %tq = getelementptr inbounds i64, ptr %tids, i64 %i
  %rc = call i32 @pthread_create(ptr %tq, ptr null, ptr @worker, ptr %pool)
  %ok = icmp eq i32 %rc, 0
  br i1 %ok, label %made, label %done
made:
  %i1 = add nuw i64 %i, 1
  br label %loop
done:
  %started = phi i64 [ %i, %loop ], [ %i, %make ]
  %wq = getelementptr inbounds i64, ptr %pool, i64 {WORKERS}
  store i64 %started, ptr %wq, align 8
  ret i64 %started
}}

define i64 @symad_pool_run(ptr %args) {{
entry:
{run_args}
  %tq = getelementptr inbounds i64, ptr %pool, i64 {TASKS}
  store ptr %tasks, ptr %tq, align 8
  %cq = getelementptr inbounds i64, ptr %pool, i64 {N_TASKS}
  store i64 %n, ptr %cq, align 8
{get_csr}
  %nq = getelementptr inbounds i64, ptr %pool, i64 {NEXT}
  store atomic i64 0, ptr %nq monotonic, align 8
  %wq = getelementptr inbounds i64, ptr %pool, i64 {WORKERS}
  %nw = load i64, ptr %wq, align 8
  %nw32 = trunc i64 %nw to i32
  %pq = getelementptr inbounds i64, ptr %pool, i64 {PENDING}
  store atomic i32 %nw32, ptr %pq release, align 8
  %old = atomicrmw add ptr %pool, i32 1 release, align 8
  %any = icmp ne i32 %nw32, 0
  br i1 %any, label %wake, label %mine
wake:
  call void @futex_wake(ptr %pool, i32 2147483647)
  br label %mine
mine:
  call void @take(ptr %pool)
  br label %check
check:
  %p = load atomic i32, ptr %pq acquire, align 8
  %done = icmp eq i32 %p, 0
  br i1 %done, label %exit, label %wait
wait:
  %p2 = call i32 @await_change(ptr %pq, i32 %p)
  br label %check
exit:
  ret i64 0
}}

; slots: thread ids, count: wait for each to exit (after symad_pool_stop)
define i64 @symad_pool_join(ptr %args) {{
entry:
{join_args}
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %body ]
  %more = icmp slt i64 %i, %n
  br i1 %more, label %body, label %done
body:
  %tq = getelementptr inbounds i64, ptr %tids, i64 %i
  %t = load i64, ptr %tq, align 8
  %rc = call i32 @pthread_join(i64 %t, ptr null)
  %i1 = add nuw i64 %i, 1
  br label %loop
done:
  ret i64 0
}}

define i64 @symad_pool_stop(ptr %args) {{
entry:
{stop_args}
  %sq = getelementptr inbounds i64, ptr %pool, i64 {STOP}
  store atomic i64 1, ptr %sq release, align 8
  %old = atomicrmw add ptr %pool, i32 1 release, align 8
  call void @futex_wake(ptr %pool, i32 2147483647)
  ret i64 0
}}
"""


class NativePool:
    """``workers`` native threads (see the module docstring); :meth:`run` a task table.

    One run at a time: a second thread calling :meth:`run` while one is in flight runs its
    tasks itself, one after another (the same results)."""

    _module: NativeModule | None = None

    def __init__(self, workers: int) -> None:
        if not supported():
            raise RuntimeError("native worker threads need Linux on x86-64 or AArch64")
        mod = NativePool._module
        if mod is None:
            ir = pool_ir()
            mod = NativePool._module = NativeModule("pool", lambda: ir, (ir,),
                                                    cache=DiskCache())
        self._run_fn = mod.entry("symad_pool_run")
        self._stop_fn = mod.entry("symad_pool_stop")
        self._join_fn = mod.entry("symad_pool_join")
        raw = np.zeros(_SIZE + 8, np.int64)          # the state, on its own cache lines
        skip = (-raw.ctypes.data) % 64 // 8
        self.state = raw[skip:skip + _SIZE]
        self._raw = raw
        self._tids = np.zeros(max(int(workers), 1), np.uint64)
        args = Slots(3)
        args.i[:] = (self.state.ctypes.data, int(workers), self._tids.ctypes.data)
        self.workers = int(mod.entry("symad_pool_start")(args.address))
        self.asked = int(workers)       # (fewer start if the system refuses threads)
        self.pid = os.getpid()
        self._args = Slots(3)
        self._args.i[0] = self.state.ctypes.data
        self._lock = threading.Lock()
        self._stopped = False

    def run(self, tasks: np.ndarray) -> None:
        """Run every task of ``tasks`` (an ``(n, 2)`` C-contiguous int64 array of entry point
        and argument addresses; the caller keeps what they point to alive for the call)."""
        if tasks.dtype != np.int64 or tasks.ndim != 2 or tasks.shape[1] != 2 \
                or not tasks.flags.c_contiguous:
            raise ValueError("NativePool.run: tasks must be a C-contiguous (n, 2) int64 array")
        if self._stopped or not self._lock.acquire(blocking=False):
            self.run_here(tasks)
            return
        try:
            self._args.i[1:] = (tasks.ctypes.data, tasks.shape[0])
            self._run_fn(self._args.address)
        finally:
            self._lock.release()

    @staticmethod
    def run_here(tasks: np.ndarray) -> None:
        """The tasks one after another on the calling thread."""
        for fn, args in tasks.tolist():
            ENTRY(fn)(args)

    def stop(self) -> None:
        """Let the workers exit (after the run in flight, if any) and wait until they have:
        afterwards no thread runs this module's code (it may be freed)."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._stop_fn(self._args.address)
                join = Slots(2)
                join.i[:] = (self._tids.ctypes.data, self.workers)
                self._join_fn(join.address)

    @classmethod
    def shared(cls, workers: int) -> "NativePool | None":
        """This process's pool, with at least ``workers`` threads (made on first use, remade
        larger when more are asked for; a forked child makes its own), or None where native
        workers are not supported. A run of ``t`` tasks uses at most ``t`` threads."""
        if workers < 1 or cls._failed or not supported():
            return None
        pool = cls._current
        if pool is None or pool.pid != os.getpid() or pool.asked < workers:
            with cls._make_lock:
                pool = cls._current
                if pool is None or pool.pid != os.getpid() or pool.asked < workers:
                    if pool is not None and pool.pid == os.getpid():
                        pool.stop()     # a run on it in flight finishes first
                    try:
                        pool = cls._current = cls(workers)
                    except Exception as e:  # noqa: BLE001 - threaded calls still run
                        cls._failed, cls._current = True, None
                        warnings.warn(f"codegen: native worker threads are unavailable ({e}); "
                                      "threaded calls use Python threads", RuntimeWarning,
                                      stacklevel=2)
                        return None
        return pool

    _current: "NativePool | None" = None
    _make_lock = threading.Lock()
    _failed = False                     # the pool could not be made here: Python threads


def _forget_in_child() -> None:
    """In a forked child: the parent's workers do not exist here, and a lock another parent
    thread held at the fork would stay held; the next run makes a new pool."""
    NativePool._current = None
    NativePool._make_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


@atexit.register
def _stop_all() -> None:
    """Before the interpreter tears down: the workers exit (their code stays valid meanwhile)."""
    pool = NativePool._current
    if pool is not None and pool.pid == os.getpid():
        pool.stop()
