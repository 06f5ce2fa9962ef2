"""``step.fit`` on the scalarized path as ONE native call per run of epochs.

The per-sample loss and gradient expressions of the fused kernel (``entry.k.fused.spec``) and
the optimizer's update (its own declaration read by the update tracer, as
:class:`codegen.fit_loop.GroupUpdate` expressions, plus the group values as a runtime array) go
to :func:`codegen.fit_loop.compile_fit_loop`; the generated function
loops over the minibatches (row indices from the generator's permutations, exactly as
``CompiledStep.fit``'s Python loop orders them), computes each batch gradient, applies the
update to the flat buffers of :class:`~symad.compiler.flat_update.FlatState` and records the
losses. Afterwards the optimizer state, step counters, ``.grad`` (the last batch's gradient) and
tensor versions are what the Python loop leaves, so eager training continues as usual.
"""
from __future__ import annotations

import numpy as np
import sympy

from .. import _dtype as D
from ..tensor import Tensor
from .native_update import _ADAM_KEYS, _SGD_KEYS, hp_names_of, hp_values, trace_update

#: the loop array of each array the update declarations name
_ARRAY_OF = {"P": "P", "G": "G", "buf": "S0", "m": "S0", "v": "S1", "mx": "S2"}


def _variant(fl_mod, tracer):
    return fl_mod.UpdateVariant(
        tuple((_ARRAY_OF[name], e) for name, e in tracer.written.items()),
        tuple((sym, e) for (sym, _), e in zip(tracer.inputs, tracer.input_exprs)))

_SUPPORTED_DTYPES = {D.float64: "float64", D.float32: "float32"}


class NativeFitUnavailable(Exception):
    """The step cannot run ``fit`` natively (the message says why)."""


class NativeFit:
    """The native fit loop(s) of one :class:`~symad.compiler.step._ScalarRunner`."""

    def __init__(self, runner) -> None:
        entry, flat = runner.entry, runner.flat
        if entry.dtype != flat.dtype or flat.dtype not in _SUPPORTED_DTYPES:
            raise NativeFitUnavailable("the data and the parameters have different dtypes")
        from codegen import fit_loop
        self._fl = fit_loop   # codegen is imported when a native loop is first wanted
        spec = runner.kernel.spec
        self.runner = runner
        self.flat = flat
        self.dtype = _SUPPORTED_DTYPES[flat.dtype]
        self.np_dtype = flat.dtype.np
        self.reduction = entry.prog.reduction
        if self.reduction not in ("mean", "sum"):
            raise NativeFitUnavailable(f"reduction {self.reduction!r}")
        where = {id(p): o for p, o in zip(flat.params, flat.offsets)}
        theta: list = [None] * flat.size
        consts, self.const_tensors = [], []
        pos = 0
        for p in runner.params:
            n = p._data.size
            syms = spec.inputs[pos:pos + n]
            pos += n
            o = where.get(id(p))
            if o is None:
                consts.extend(syms)
                self.const_tensors.append(p)
            else:
                theta[o:o + n] = syms
        self.columns = tuple(spec.inputs[pos:])
        self.split = runner.x_cols         # columns from X; the rest from y
        if not 0 <= self.split <= len(self.columns):
            raise NativeFitUnavailable(f"{len(self.columns)} data columns, {self.split} from X")
        gidx = np.arange(flat.size) if runner.gidx is None else runner.gidx
        grads: list = [None] * flat.size
        for j, k in enumerate(gidx.tolist()):
            grads[k] = spec.outputs[1 + j]
        if any(t is None for t in theta) or any(g is None for g in grads):
            raise NativeFitUnavailable("the trained parameters do not all enter the kernel")
        self.theta, self.consts, self.grads = tuple(theta), tuple(consts), tuple(grads)
        self.loss = spec.outputs[0]
        self._loops: list = []          # (array names, traces, FitLoop)
        self._last = None               # (group values, the loop they selected)
        self._offsets: dict = {}
        self._out = None
        self._dsrc: tuple = (None, None)    # the (X, y) arrays whose views ``data`` returned
        self._dviews = None
        self._hp = None
        self._no_consts = np.zeros(0, self.np_dtype)

    # -- the compiled loop for the current optimizer structure ---------------------------------
    def _env(self, grp) -> dict:
        keys = _SGD_KEYS if self.flat.kind == "sgd" else _ADAM_KEYS
        env = {k: grp.group[k] for k in keys}
        if self.flat.kind == "adam":
            env["step"] = 1.0           # a placeholder: no branch of the update reads the step
        return env

    def _names(self, grp) -> tuple:
        g = grp.group
        if self.flat.kind == "sgd":
            return ("P", "G") + (("buf",) if g["momentum"] != 0 else ())
        return ("P", "G", "m", "v") + (("mx",) if g["amsgrad"] else ())

    def _values(self) -> tuple:
        keys = _SGD_KEYS if self.flat.kind == "sgd" else _ADAM_KEYS
        return tuple(tuple(grp.group[k] for k in keys) for grp in self.flat.groups)

    def loop(self, values: tuple | None = None):
        """The compiled loop whose traced updates hold for the groups' current values (their
        guards: which terms exist), built from the optimizer's declaration when none does."""
        values = self._values() if values is None else values
        if self._last is not None and self._last[0] == values:
            return self._last[1]
        fl = self._loop()
        self._last = (values, fl)
        return fl

    def _loop(self):
        flat = self.flat
        envs = [self._env(grp) for grp in flat.groups]
        names = tuple(self._names(grp) for grp in flat.groups)
        for key, traces, fl in self._loops:
            if key == names and all(all(t.holds(env) for t in ts if t is not None)
                                    for ts, env in zip(traces, envs)):
                self._traces = traces
                return fl
        fl_mod = self._fl
        decoupled = bool(getattr(flat.optimizer, "_decoupled", False))
        groups, traces = [], []
        for grp, env, nms in zip(flat.groups, envs, names):
            t = trace_update(flat.kind, env, list(nms), decoupled)
            tf = trace_update(flat.kind, env, list(nms), decoupled, first=True) \
                if flat.kind == "sgd" and "buf" in nms else None
            traces.append((t, tf))
            hp = hp_names_of([x for x in (t, tf) if x is not None])
            groups.append(fl_mod.GroupUpdate(
                grp.start, grp.end,
                tuple((sympy.Symbol(nm, real=True), _ARRAY_OF[nm]) for nm in nms),
                tuple(sympy.Symbol(h, real=True) for h in hp), _variant(fl_mod, t),
                _variant(fl_mod, tf) if tf is not None else None))
        fl = fl_mod.compile_fit_loop(self.theta, self.consts, self.columns, self.loss,
                                     self.grads, reduction=self.reduction, groups=groups,
                                     dtype=self.dtype, name="symad_fit", split=self.split)
        fl.hp_names = [[str(h) for h in g.hp] for g in groups]
        self._loops.append((names, traces, fl))
        self._traces = traces
        return fl

    # -- running ------------------------------------------------------------------------------
    def data(self, Xa: np.ndarray, ya: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` as the loop reads them: row-major ``(N, features)`` arrays of the kernel
        dtype — views of ``Xa`` and ``ya`` when they are C-contiguous arrays of that dtype (no
        copy: the loop reads the caller's data), converted copies otherwise."""
        if Xa is self._dsrc[0] and ya is self._dsrc[1]:
            return self._dviews                 # the same arrays' views: their live data
        n = Xa.shape[0]
        dt = self.np_dtype
        parts, copied = [], False
        for a, w, what in ((Xa, self.split, "X"), (ya, len(self.columns) - self.split, "y")):
            a2 = a.reshape(n, -1) if a.ndim != 2 else a
            if a2.shape[1] != w:
                raise ValueError(f"compile_step: {what} has {a2.shape[1]} features per sample, "
                                 f"the compiled step reads {w}")
            if not (a.flags.c_contiguous and a2.dtype == dt and a2.flags.aligned):
                a2 = np.ascontiguousarray(a2, dtype=dt)
                copied = True
            parts.append(a2)
        views = tuple(parts)
        # kept only when both are views (a converted copy would miss in-place changes)
        self._dsrc, self._dviews = ((None, None), None) if copied else ((Xa, ya), views)
        return views

    def offsets(self, bounds: list, per_epoch: int, epochs: int) -> np.ndarray:
        # bounds are (0, b), (b, 2b), ... (DataLoader's batches): these numbers determine them
        key = (bounds[0][1], len(bounds), per_epoch, epochs)
        off = self._offsets.get(key)
        if off is None:
            one = np.array([s for s, _ in bounds], np.int64)
            off = np.concatenate([one + e * per_epoch for e in range(epochs)]
                                 + [np.array([epochs * per_epoch], np.int64)])
            off.flags.writeable = False     # the loop then checks it once
            if len(self._offsets) > 16:
                self._offsets.clear()
            self._offsets[key] = off
        return off

    def run(self, data: np.ndarray, perm: np.ndarray, offsets: np.ndarray,
            steps_per_epoch: int) -> np.ndarray:
        """Run the steps; returns the per-epoch loss totals."""
        flat = self.flat
        flat.sync()
        values = self._values()
        fl = self.loop(values)
        n_steps = offsets.shape[0] - 1
        state = flat.optimizer.state
        hp: list = []
        bind_after = []
        for grp, names in zip(flat.groups, fl.hp_names):
            g = grp.group
            first, step = 0.0, 0.0
            if flat.kind == "sgd":
                if g["momentum"] != 0 and "momentum_buffer" not in grp.state_keys:
                    flat._state_tensor("momentum_buffer", None)
                    bind_after.append(grp)
                    first = 1.0
            else:
                if "exp_avg" not in grp.state_keys:
                    keys = ("exp_avg", "exp_avg_sq") + (
                        ("max_exp_avg_sq",) if g["amsgrad"] else ())
                    for k in keys:
                        flat._state_tensor(k, None)[grp.start:grp.end] = 0
                        flat._bind_state(grp, k)
                    for p in grp.params:
                        state[p]["step"] = Tensor._wrap(np.array(0.0, dtype=np.float32),
                                                        D.float32)
                    grp.state_keys = keys
                step = float(state[grp.params[0]]["step"]._data)
            hp.append((names, grp, step, first))
        key = (values, tuple((st, fi) for _, _, st, fi in hp))
        if self._hp is None or self._hp[0] != key:
            row = []
            for names, grp, step, first in hp:
                row += hp_values(names, self._env(grp)) + [step, first]
            self._hp = (key, np.array(row, np.float64))
        S = flat.S
        arrays = [S.get("momentum_buffer"), None, None] if flat.kind == "sgd" else \
            [S.get("exp_avg"), S.get("exp_avg_sq"), S.get("max_exp_avg_sq")]
        consts = [t._data.reshape(-1) for t in self.const_tensors]
        C = np.concatenate(consts).astype(self.np_dtype) if consts else self._no_consts
        # the step's own result arrays, reused while the run has the same shape (the loop
        # checks an array once while it stays the same object)
        n_epochs = -(-n_steps // steps_per_epoch)
        if self._out is None or self._out[0].shape[0] != n_steps \
                or self._out[1].shape[0] != n_epochs:
            self._out = (np.empty(n_steps, np.float64), np.zeros(n_epochs, np.float64))
        losses, totals = self._out
        totals[...] = 0.0
        fl.run(perm, offsets, data, flat.P, C, flat.G, arrays, self._hp[1], losses, totals,
               steps_per_epoch)
        totals = totals.copy()
        # what FlatState.finish leaves after the last step
        for p, gt in zip(flat.params, flat.grad_tensors):
            p._grad = gt
            p._version.value += 1
            gt._version.value += 1
        for grp in bind_after:
            flat._bind_state(grp, "momentum_buffer")
            grp.state_keys = grp.state_keys + ("momentum_buffer",)
        for grp in flat.groups:
            if flat.kind == "adam":
                for p in grp.params:
                    state[p]["step"]._data[...] += n_steps
            for k in grp.state_keys:
                flat._bump(grp, k)
        return totals
