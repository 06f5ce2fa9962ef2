"""``step.fit`` on the scalarized path as ONE native call per run of epochs.

The per-sample loss and gradient expressions of the fused kernel (``entry.k.fused.spec``) and
the optimizer's update (as :class:`codegen.fit_loop.UpdateRule` data plus a runtime
hyperparameter array) go to :func:`codegen.fit_loop.compile_fit_loop`; the generated function
loops over the minibatches (row indices from the generator's permutations, exactly as
``CompiledStep.fit``'s Python loop orders them), computes each batch gradient, applies the
update to the flat buffers of :class:`~symad.compiler.flat_update.FlatState` and records the
losses. Afterwards the optimizer state, step counters, ``.grad`` (the last batch's gradient) and
tensor versions are what the Python loop leaves, so eager training continues as usual.
"""
from __future__ import annotations

import numpy as np

from .. import _dtype as D
from ..tensor import Tensor

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
        gidx = np.arange(flat.size) if runner.gidx is None else runner.gidx
        grads: list = [None] * flat.size
        for j, k in enumerate(gidx.tolist()):
            grads[k] = spec.outputs[1 + j]
        if any(t is None for t in theta) or any(g is None for g in grads):
            raise NativeFitUnavailable("the trained parameters do not all enter the kernel")
        self.theta, self.consts, self.grads = tuple(theta), tuple(consts), tuple(grads)
        self.loss = spec.outputs[0]
        self._loops: dict = {}
        self._offsets: dict = {}
        self._out = None
        self._hp = None
        self._no_consts = np.zeros(0, self.np_dtype)

    # -- the compiled loop for the current optimizer structure ---------------------------------
    def _rules(self) -> tuple:
        UpdateRule = self._fl.UpdateRule
        flat = self.flat
        rules = []
        for grp in flat.groups:
            g = grp.group
            if flat.kind == "sgd":
                rules.append(UpdateRule("sgd", grp.start, grp.end, maximize=bool(g["maximize"]),
                                        weight_decay=g["weight_decay"] != 0,
                                        momentum=g["momentum"] != 0,
                                        nesterov=bool(g["nesterov"])))
            else:
                rules.append(UpdateRule("adam", grp.start, grp.end,
                                        maximize=bool(g["maximize"]),
                                        weight_decay=g["weight_decay"] != 0,
                                        decoupled=bool(flat.optimizer._decoupled),
                                        amsgrad=bool(g["amsgrad"]),
                                        lerp_small=abs(1 - g["betas"][0]) < 0.5))
        return tuple(rules)

    def loop(self):
        rules = self._rules()
        fl = self._loops.get(rules)
        if fl is None:
            fl = self._fl.compile_fit_loop(self.theta, self.consts, self.columns, self.loss, self.grads,
                                  reduction=self.reduction, groups=rules, dtype=self.dtype,
                                  name="symad_fit")
            self._loops[rules] = fl
        return fl

    # -- running ------------------------------------------------------------------------------
    def data(self, Xa: np.ndarray, ya: np.ndarray) -> np.ndarray:
        """Row-major ``(N, columns)`` copy of X and y in the kernel dtype."""
        n = Xa.shape[0]
        out = np.concatenate((Xa.reshape(n, -1), ya.reshape(n, -1)), axis=1,
                             dtype=self.np_dtype, casting="unsafe")
        if out.shape[1] != len(self.columns):
            raise ValueError(f"compile_step: the data has {out.shape[1]} features per sample, "
                             f"the compiled step reads {len(self.columns)}")
        return out

    def offsets(self, bounds: list, per_epoch: int, epochs: int) -> np.ndarray:
        # bounds are (0, b), (b, 2b), ... (DataLoader's batches): these numbers determine them
        key = (bounds[0][1], len(bounds), per_epoch, epochs)
        off = self._offsets.get(key)
        if off is None:
            one = np.array([s for s, _ in bounds], np.int64)
            off = np.concatenate([one + e * per_epoch for e in range(epochs)]
                                 + [np.array([epochs * per_epoch], np.int64)])
            if len(self._offsets) > 16:
                self._offsets.clear()
            self._offsets[key] = off
        return off

    def run(self, data: np.ndarray, perm: np.ndarray, offsets: np.ndarray,
            steps_per_epoch: int) -> np.ndarray:
        """Run the steps; returns the per-epoch loss totals."""
        sgd_hyperparameters = self._fl.sgd_hyperparameters
        adam_hyperparameters = self._fl.adam_hyperparameters
        flat = self.flat
        flat.sync()
        fl = self.loop()
        n_steps = offsets.shape[0] - 1
        state = flat.optimizer.state
        hp = []
        bind_after = []
        if flat.kind == "sgd":
            for grp in flat.groups:
                g = grp.group
                first = g["momentum"] != 0 and "momentum_buffer" not in grp.state_keys
                if first:
                    flat._state_tensor("momentum_buffer", None)
                    bind_after.append(grp)
                hp += sgd_hyperparameters(g["lr"], g["momentum"], g["dampening"],
                                          g["weight_decay"], first)
            S = flat.S
            arrays = [S.get("momentum_buffer"), None, None]
        else:
            for grp in flat.groups:
                g = grp.group
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
                b1, b2 = g["betas"]
                hp += adam_hyperparameters(g["lr"], b1, b2, g["eps"], g["weight_decay"],
                                           bool(flat.optimizer._decoupled), step)
            S = flat.S
            arrays = [S.get("exp_avg"), S.get("exp_avg_sq"), S.get("max_exp_avg_sq")]
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
        if self._hp is None or self._hp[0] != hp:
            self._hp = (hp, np.array(hp, np.float64))
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
