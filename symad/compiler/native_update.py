"""The fused optimizer update as one native loop, traced from the optimizer's own declaration.

``sgd_update`` / ``adam_update`` (:mod:`symad.optim`) are run once with the tracing namespace
(:class:`symad.optim.elementwise.Tracer`): the arrays they write become per-element formulas,
the hyperparameter arithmetic stays Python (evaluated before each call into a small scalar
buffer of the parameters' dtype, as numpy casts a Python float), and the branches they take
become guards. The loop computes every written array from the values loaded before any store,
so it is the numpy statement sequence element by element — bitwise the same results
(``tests/test_native_update.py`` checks against ``optimizer.step()``).

A kernel is reused while its guards hold and the flat buffers are the same arrays; otherwise it
is traced and built again (a cache keyed by the guards' outcomes keeps the builds of a
schedule that alternates). The first SGD step with momentum (which copies the gradient into the
new buffer) runs with numpy.
"""
from __future__ import annotations

import numpy as np
import sympy

from codegen import DiskCache
from codegen.loops import Access, LoopModule, Map

from ..optim.adam import adam_update
from ..optim.elementwise import Tracer
from ..optim.sgd import sgd_update

#: ``False``: updates run with numpy only (A/B measurements).
ENABLED = True

_SGD_KEYS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
_ADAM_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")


class _Kernel:
    def __init__(self, tracer: Tracer, names: list[str], dtype: np.dtype, n: int) -> None:
        self.tracer = tracer
        self.names = names
        written = [nm for nm in names if nm in tracer.written]
        syms = [sympy.Symbol(nm, real=True) for nm in names]
        ns = len(tracer.inputs)
        buffers = [dtype.name] * (len(names) + 1)
        ins = tuple(Access(j, 0, (1,)) for j in range(len(names))) + \
            tuple(Access(len(names), k, (0,)) for k in range(ns))
        in_syms = tuple(syms) + tuple(s for s, _ in tracer.inputs)
        first, *rest = written
        stmt = Map((n,), Access(names.index(first), 0, (1,)), ins, in_syms,
                   tracer.written[first], extra=tuple(
                       (Access(names.index(nm), 0, (1,)), tracer.written[nm]) for nm in rest))
        self.stmt, self.buffers = stmt, buffers     # (export reads them)
        self.module = LoopModule("update", buffers, [[stmt]], cache=DiskCache())
        self.call = self.module.segments[0]
        self.scal = np.zeros(max(ns, 1), dtype)
        self.fns = [fn for _, fn in tracer.inputs]
        self.ptrs = np.zeros(len(names) + 1, np.int64)
        self.ptrs[-1] = self.scal.ctypes.data
        self.bound: list = [None] * len(names)
        self.ptrs_addr = self.ptrs.ctypes.data
        self.last: tuple | None = None          # the env values the scalars were computed for

    def run(self, env: dict, arrays: list[np.ndarray]) -> None:
        for j, a in enumerate(arrays):
            if a is not self.bound[j]:
                if not (a.flags.c_contiguous and a.flags.writeable and a.dtype == self.scal.dtype
                        and a.shape == arrays[0].shape):
                    raise ValueError(f"native update: buffer {self.names[j]} is not a writeable "
                                     f"contiguous {self.scal.dtype}{list(arrays[0].shape)} array")
                self.bound[j] = a
                self.ptrs[j] = a.ctypes.data
        self.prepare(env)
        self.call(self.ptrs_addr)

    def prepare(self, env: dict) -> None:
        """The runtime scalars for ``env`` (the group's values) into ``scal``."""
        values = tuple(env.values())
        if values != self.last:
            scal = self.scal
            for k, fn in enumerate(self.fns):
                scal[k] = fn(env)
            self.last = values


class NativeUpdate:
    """``upd(kind, group, arrays, step=None, decoupled=False) -> kernel | None``: apply one
    group's update natively (returns the kernel that ran) or report that numpy must (None:
    disabled, or a structure with no kernel, e.g. the momentum buffer's first fill)."""

    def __init__(self) -> None:
        self._kernels: dict = {}
        self.failed: str | None = None

    def __call__(self, kind: str, group: dict, arrays: dict, *, step: float | None = None,
                 decoupled: bool = False) -> "_Kernel | None":
        if not ENABLED or self.failed is not None:
            return None
        keys = _SGD_KEYS if kind == "sgd" else _ADAM_KEYS
        env = {k: group[k] for k in keys}
        if step is not None:
            env["step"] = step
        names = list(arrays)
        first = arrays[names[0]]
        key = (kind, tuple(names), first.size, first.dtype.str, decoupled)
        cands = self._kernels.setdefault(key, [])
        values = tuple(env.values())
        # the kernel used last for these same hyperparameter values needs no guard check
        kern = next((k for k in cands if k.last == values), None) or \
            next((k for k in cands if k.tracer.holds(env)), None)
        if kern is None:
            try:
                kern = self._build(kind, env, names, first, decoupled)
            except Exception as e:      # noqa: BLE001 - any failure: numpy runs the update
                self.failed = f"{type(e).__name__}: {e}"
                return None
            cands.append(kern)
        kern.run(env, [arrays[nm] for nm in names])
        return kern

    @staticmethod
    def _build(kind, env, names, first, decoupled) -> _Kernel:
        return _Kernel(trace_update(kind, env, names, decoupled), names, first.dtype, first.size)


def trace_update(kind: str, env: dict, names: list[str], decoupled: bool = False,
                 first: bool = False) -> Tracer:
    """The optimizer's own update declaration (``sgd_update`` / ``adam_update``) read by the
    tracer for a group with values ``env`` (Adam: and ``env["step"]``) over the arrays
    ``names`` (SGD: P, G[, buf]; Adam: P, G, m, v[, mx]); ``first``: SGD's first step, which
    fills the momentum buffer."""
    tr = Tracer(env)
    el = {nm: tr.array(nm) for nm in names}
    if kind == "sgd":
        sgd_update(el["P"], el["G"], el.get("buf"), tr.group(_SGD_KEYS), first, xp=tr)
    else:
        adam_update(el["P"], el["G"], el["m"], el["v"], el.get("mx"), tr.scalar("step"),
                    tr.group(_ADAM_KEYS), decoupled, xp=tr)
    return tr


def scalars_ir(exprs: list, hp_slot: int, hp_names: list[str], ty: str,
               step) -> tuple[str, str]:
    """``(IR lines, declarations)`` computing update kernels' runtime scalars in native code:
    ``exprs`` is ``[(buffer slot of a kernel's scalar buffer, tracer.input_exprs)]``; each
    expression is evaluated in double precision (Python's float arithmetic: the same IEEE
    operations and libm calls, in the tracer's order) from the group's values — the float64
    buffer ``hp_slot`` in ``hp_names`` order, its next entry the step base — and
    ``step(lowerer, load_base) -> IR value`` (the step count), then rounded to ``ty`` and
    stored. Each kernel reads its own block of ``hp`` (``len(hp_names) + 1`` values, the k-th
    kernel's from ``k * (len(hp_names) + 1)``: param groups differ). The lines read ``%bufs``
    (the segments' buffer array)."""
    from codegen.lowering import hp_scalars_ir
    lines = [f"  %hq = getelementptr inbounds ptr, ptr %bufs, i64 {hp_slot}",
             "  %hpp = load ptr, ptr %hq"]
    decls: dict = {}
    width = len(hp_names) + 1
    for g, (slot, es) in enumerate(exprs):
        body, values = hp_scalars_ir(es, "%hpp", g * width, hp_names, step, ty, f"hs{g}_",
                                     decls)
        lines += [f"  %hs{g}q = getelementptr inbounds ptr, ptr %bufs, i64 {slot}",
                  f"  %hs{g}p = load ptr, ptr %hs{g}q"] + body
        for k, v in enumerate(values):
            lines += [f"  %hs{g}s{k} = getelementptr inbounds {ty}, ptr %hs{g}p, i64 {k}",
                      f"  store {ty} {v}, ptr %hs{g}s{k}"]
    return "\n".join(lines), "\n".join(decls.values())


def hp_names_of(tracers) -> list[str]:
    """The group values (other than ``step``) the traced updates' scalar expressions read, in a
    fixed order: the layout of the float64 ``hp`` rows of :func:`scalars_ir` and the fit loop."""
    names: list[str] = []
    for tr in tracers:
        for e in tr.input_exprs:
            if e is None:
                raise ValueError("an update scalar without an expression")
            for sym in sorted(e.free_symbols, key=str):
                if sym.name != "step" and sym.name not in names:
                    names.append(sym.name)
    return names


def hp_values(names: list[str], env: dict) -> list[float]:
    """``env``'s values for :func:`hp_names_of` names (``betas_0`` is ``env["betas"][0]``)."""
    out = []
    for name in names:
        if name in env:
            out.append(float(env[name]))
        else:
            key, _, i = name.rpartition("_")
            out.append(float(env[key][int(i)]))
    return out
