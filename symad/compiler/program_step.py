"""The tensor-program path of ``compile_step``: loss and gradients of any model as a recorded
program (:mod:`symad.program`), replayed per step, feeding the fused optimizer update.

The first step of each batch signature IS the recording: it runs the user's ``loss_fn(model(X),
y)`` and the registry VJPs of its backward eagerly, once, and its results are that step's results
— the user's Python never runs more often than eager would. Later steps replay the program. If the
recording cannot be replayed (random draws, ``item()`` on a traced value, in-place writes, ...),
the step keeps its eager results and the runner stays eager, with one warning.
"""
from __future__ import annotations

import warnings
from operator import attrgetter, is_, itemgetter

import numpy as np

from ..autograd.graph import run_backward
from ..program import NotReplayable, Runner, capture
from ..program.run import same
from ..ops.functional import has_ignored_targets
from ..tensor import Tensor
from .flat_update import FlatState
from . import native_update
from .native_program import NativeProgram, describe, native


class ProgramRunner:
    """Loss + gradients by replaying recorded programs (one per batch shape)."""

    kind = "program"

    def __init__(self, model, loss_fn, optimizer, trained: list, warning_cls) -> None:
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.trained = trained
        self.flat: FlatState | None = None
        self.runners: dict = {}
        self.eager_reason: str | None = None
        self._warning_cls = warning_cls
        self._names = {id(p): n for n, p in model.named_parameters()} \
            if hasattr(model, "named_parameters") else {}
        self._grad_idx: list[int] | None = None   # positions in ``trained`` that get gradients
        self.last_key = None
        self._epochs: dict = {}
        self.epochs_error: str | None = None
        # the loop is missing only because a group's update has not run natively yet (SGD's
        # momentum buffer is filled by numpy on its first step): a later batch will have it
        self.epochs_pending = False
        # shape keys recorded from a batch holding ignored targets (-100): their programs skip
        # them; a program recorded without meets them as an index error and is recorded again
        self._ignoring: set = set()

    def prepare(self, X: np.ndarray, y: np.ndarray):
        return (X, y)

    def _loss(self, xb, yb):
        return self.loss_fn(self.model(xb), yb)

    def step(self, data, s: int, e: int) -> float:
        """One training step on rows ``s:e``: loss and gradients, then the fused update."""
        loss = self.run(data, s, e)
        self.flat.finish()
        return loss

    def run(self, data, s: int, e: int) -> float:
        """Loss and gradients (into the flat gradient buffer) on rows ``s:e``, no update."""
        X, y = data
        xb, yb = (X, y) if s == 0 and e == X.shape[0] else (X[s:e], y[s:e])
        key = self.last_key = (xb.shape, xb.dtype.str, yb.shape, yb.dtype.str)
        flat = self.flat
        if flat is not None:
            flat.sync()
        run = self.runners.get(key)
        if run is None or self.eager_reason is not None:
            loss, grads = self._record(key, xb, yb)
        else:
            try:
                if type(run) is NativeProgram:
                    return float(run(xb, yb, out=flat.gviews)[0])   # gradients written into G
                outs = run(xb, yb)
                loss, grads = outs[0], outs[1:]
            except IndexError:
                # a target equal to ignore_index (-100) in a program recorded from a batch
                # without one (the targets are checked before any native code runs): this batch
                # is recorded again, eagerly, and its program skips ignored targets from now on
                if key in self._ignoring or not has_ignored_targets([yb]):
                    raise
                loss, grads = self._record(key, xb, yb)
        flat = self._flat(grads)
        for v, i in zip(flat.gviews, self._grad_idx):
            v[...] = grads[i]
        return float(loss)

    def _flat(self, grads) -> FlatState:
        if self.flat is None:
            self._grad_idx = [i for i, g in enumerate(grads) if g is not None]
            self.flat = FlatState(self.optimizer, [self.trained[i] for i in self._grad_idx])
        return self.flat

    def _record(self, key, xb, yb):
        """This step, eagerly; recorded into a program for the next steps of this shape."""
        if has_ignored_targets([yb]):
            self._ignoring.add(key)
        args = (Tensor._wrap(xb), Tensor._wrap(yb))
        if self.eager_reason is None:
            try:
                prog, out, grads, _ = capture(self._loss, args, wrt=self.trained,
                                           names=self._names, arg_names=["X", "y"])
            except NotReplayable as e:
                self.eager_reason = str(e)
                warnings.warn(f"symad.compile_step: running eagerly: {e}", self._warning_cls,
                              stacklevel=5)
                if isinstance(e.out, Tensor):
                    # the recording run was this step's eager run: its result (and gradients,
                    # when it got that far) are this step's, so the model runs once, as eager
                    out = e.out
                    _check_scalar(out)
                    grads = e.grads if e.grads is not None else run_backward(
                        [out], [Tensor._wrap(np.ones((), out._dtype.np), out._dtype)],
                        retain_graph=False, create_graph=False, inputs=list(self.trained),
                        accumulate=False, allow_unused=True)
                    return out._data, [None if g is None else g._data for g in grads]
            else:
                _check_scalar(out)
                run = Runner(prog)
                outs = run(xb, yb)
                vals = [out._data] + [None if g is None else g._data for g in grads]
                if all((a is None) == (b is None) and (a is None or same(a, b, 1e-12))
                       for a, b in zip(outs, vals)):
                    flat = self._flat(vals[1:])
                    self.runners[key] = native(
                        prog, (xb, yb), vals, out=flat.gviews,
                        copy_outputs=tuple(1 + i for i in self._grad_idx)) or run
                return out._data, vals[1:]
        out = self._loss(*args)
        _check_scalar(out)
        grads = run_backward([out], [Tensor._wrap(np.ones((), out._dtype.np), out._dtype)],
                             retain_graph=False, create_graph=False, inputs=list(self.trained),
                             accumulate=False, allow_unused=True)
        return out._data, [None if g is None else g._data for g in grads]

    def native_epochs(self, X: np.ndarray, y: np.ndarray, bs: int):
        """The native epoch loop for full batches of ``bs`` rows of ``(X, y)`` (see
        :mod:`symad.compiler.native_epochs`), or None (``epochs_error`` says why): it needs the
        batch program recorded, fully native, and the update run natively last step."""
        n_rows = X.shape[0]
        key = ((bs,) + X.shape[1:], X.dtype.str, (bs,) + y.shape[1:], y.dtype.str)
        run = self.runners.get(key)
        flat = self.flat
        if type(run) is not NativeProgram or flat is None or self.eager_reason is not None:
            self.epochs_error = "the batch program is not a native program (yet)"
            return None
        if key not in self._ignoring and has_ignored_targets([y]):
            # batches run as steps until one with an ignored target records the program again
            self.epochs_error = ("the targets hold ignore_index (-100), which the program "
                                 "recorded from the first batch does not skip (yet)")
            return None
        kernels = tuple(g.kernel for g in flat.groups)
        self.epochs_pending = any(k is None for k in kernels) and native_update.ENABLED \
            and flat.native_update.failed is None
        ck = (key, n_rows, tuple(map(id, kernels)))
        ne = self._epochs.get(ck)
        if ne is None and ck not in self._epochs:
            from .native_epochs import NativeEpochs
            try:
                if any(k is None for k in kernels):
                    raise ValueError("the update did not run natively on the last step")
                ne = NativeEpochs(run, flat, n_rows)
            except Exception as e:  # noqa: BLE001 - the step itself runs the batches instead
                self.epochs_error = f"{type(e).__name__}: {e}"
                ne = None
            self._epochs[ck] = ne
        if ne is not None and not all(g.kernel.tracer.holds(self._update_env(g))
                                      for g in flat.groups):
            # the hyperparameters' structure changed since the update was traced (a weight
            # decay switched on): the step path runs, and traces the update that holds now
            self.epochs_error = "the update was traced for other hyperparameters"
            return None
        return ne

    def _update_env(self, grp) -> dict:
        """The values a group's traced update is checked and evaluated with (Adam: the step
        the next update counts)."""
        from .native_update import _ADAM_KEYS, _SGD_KEYS
        flat = self.flat
        env = {k: grp.group[k] for k in (_SGD_KEYS if flat.kind == "sgd" else _ADAM_KEYS)}
        if flat.kind == "adam":
            env["step"] = float(flat.optimizer.state[grp.params[0]]["step"]._data) + 1
        return env

    def run_epochs(self, ne, X: np.ndarray, y: np.ndarray, perm: np.ndarray) -> np.ndarray:
        """Run ``ne`` over ``perm`` and leave what as many steps leave (``.grad``, versions)."""
        flat = self.flat
        flat.sync()
        groups = {id(g.kernel): g for g in flat.groups}
        losses = ne.run(X, y, perm, lambda kern: self._update_env(groups[id(kern)]))
        flat.note_steps(len(losses))
        return losses

    def fast_step(self) -> "FastStep | None":
        """The steady-state step for batches like the last one (see :class:`FastStep`), when
        the last step ran as a native program and every group's update natively; else None."""
        run = self.runners.get(self.last_key)
        flat = self.flat
        if (type(run) is not NativeProgram or run.numpy_steps or self.eager_reason is not None
                or run.lowered.outputs[0] not in run._buf_of
                or flat is None or not all(g.kernel is not None for g in flat.groups)):
            return None
        return FastStep(run, flat, self._fused(run))

    def _fused(self, run: NativeProgram):
        """The program and the update as one native function (``NativeEpochs.step``) for the
        steady state, or None: the program splits matmuls over threads (its own calls run
        them in parallel), or the loop cannot be built (the step then makes two calls)."""
        if run._parallel:
            return None
        flat = self.flat
        kernels = tuple(g.kernel for g in flat.groups)
        bs = run.lowered.slots[run.lowered.inputs[0]].shape[0]
        ck = ("step", self.last_key, tuple(map(id, kernels)))
        if ck not in self._epochs:
            from .native_epochs import NativeEpochs
            try:
                self._epochs[ck] = NativeEpochs(run, flat, bs)
            except Exception as e:  # noqa: BLE001 - two native calls per step instead
                self.epochs_error = f"{type(e).__name__}: {e}"
                self._epochs[ck] = None
        return self._epochs[ck]

    @property
    def native_calls(self) -> str:
        if self.eager_reason is not None:
            return f"eager ({self.eager_reason})"
        return "; ".join(describe(r) for r in self.runners.values()) or "tensor program"


def _check_scalar(out) -> None:
    if out._data.ndim != 0:
        raise ValueError(f"compile_step: the loss must be a scalar, got shape "
                         f"{tuple(out.shape)} (use reduction='mean' or 'sum')")


_DATA = attrgetter("_data")


class FastStep:
    """``compile_step``'s steady state: ONE native call for loss, gradients and the update of
    every parameter group (``fused``: :class:`NativeEpochs`' step function; else one call for
    the program and one per group's update), with the Python around it reduced to checks.

    Built after a step that ran both natively (SGD or Adam; Adam's step counters are counted
    here and its step size and bias corrections computed per call, natively when fused). Each
    call checks what the general path would act on, and returns None — the caller then takes the
    general path, which re-syncs and rebuilds — when anything changed: a parameter or
    optimizer-state tensor rebound (``p.data = ...``, ``load_state_dict``), a hyperparameter
    changed (an LR schedule), a batch of another shape or dtype. Otherwise it does what the
    general path does, in the same order: bind the batch, run the program (gradients into the
    flat buffer) and the update, expose ``.grad``, bump the versions of parameters, ``.grad``
    and state tensors; the loss is a fresh 0-d array."""

    def __init__(self, nat: NativeProgram, flat: FlatState, fused=None) -> None:
        self.nat = nat
        # the gradients go into the flat buffer (the recording call wrote into scratch arrays)
        for k, j, a in zip(nat._copy_outputs, nat._out_bufs, flat.gviews):
            if nat._bound[j] is not a:
                nat._bind(j, a, f"out array for output {k}")
        self.calls = [nat._calls[k] for k in nat._seg_order]
        self.parallel, self.index_checks = nat._parallel, bool(nat._index_checks)
        self.addr = nat._ptrs_addr
        slots = nat.lowered.slots
        self.specs = [(slots[s].shape, slots[s].dtype.np) for s in nat.lowered.inputs]
        n_in = len(self.specs)
        self.leaf_tensors = [t for _, t in nat._leaves]
        self.leaf_bufs = [nat._bound[n_in + k] for k in range(len(self.leaf_tensors))]
        out0 = nat.lowered.outputs[0]
        self.loss_buf = nat._arrays[nat._buf_of[out0]] if out0 in nat._buf_of else None
        self.flat = flat
        self.params, self.views, self.grads = flat.params, flat.views, flat.grad_tensors
        # the leaf check covers the parameters when each is a leaf bound to its flat view
        leaf_of = {id(t): b for t, b in zip(self.leaf_tensors, self.leaf_bufs)}
        self.params_are_leaves = all(leaf_of.get(id(p)) is v
                                     for p, v in zip(self.params, self.views))
        self.optimizer = flat.optimizer
        state = flat.optimizer.state
        entries = [(p, key, state[p][key], v) for key, views in flat._state_views.items()
                   for p, v in zip(flat.params, views) if key in state.get(p, {})]
        self.state_params = [p for p, _, _, _ in entries]
        self.state_dicts = [state[p] for p in self.state_params]
        self.state_keys = [k for _, k, _, _ in entries]
        self.state_tensors = [t for _, _, t, _ in entries]
        self.state_views = [v for _, _, _, v in entries]
        self.versions = [p._version for p in flat.params] + [g._version for g in self.grads]
        self.versions += [t._version for t in self.state_tensors]
        from .native_update import _ADAM_KEYS, _SGD_KEYS
        self.adam = flat.kind == "adam"
        keys = _ADAM_KEYS if self.adam else _SGD_KEYS
        state = flat.optimizer.state
        # Adam: the step counters the general path increments before each update
        self.updates = [(g.group, keys, g.kernel,
                         [state[p]["step"] for p in g.params] if self.adam else [])
                        for g in flat.groups]
        self.dtype = flat.dtype
        # each group's values as the kernel's scalars were computed for (Adam's: the step aside)
        self.hp_checks = [(group, itemgetter(*keys), kern.last[:-1] if self.adam else kern.last)
                          for group, keys, kern, _ in self.updates]
        self.fused = fused
        if fused is not None:
            for g, (grp, keys, _, _) in enumerate(self.updates):
                fused.set_values(g, {k: grp[k] for k in keys})   # the step: set per call
            self._fused_ptrs = fused.step_pointers()
            self._fused_addr = self._fused_ptrs.ctypes.data

    def __call__(self, X, y):
        nat = self.nat
        bound = nat._bound
        if type(X) is Tensor:
            X = X._data
        if type(y) is Tensor:
            y = y._data
        rebound = X is not bound[0] or y is not bound[1]
        if (X is not bound[0] and not self._rebind(0, X)) or \
                (y is not bound[1] and not self._rebind(1, y)):
            return None
        if not (all(map(is_, map(_DATA, self.leaf_tensors), self.leaf_bufs))
                and (self.params_are_leaves
                     or all(map(is_, map(_DATA, self.params), self.views)))
                and self._state_bound()):
            return None
        adam = self.adam
        if adam and not self._steps_bound():
            return None
        for group, get, want in self.hp_checks:
            if get(group) != want:          # a schedule changed a value
                return None

        if self.index_checks:
            try:
                nat.check_indices()
            except IndexError:
                if has_ignored_targets([nat._bound[j] for j in range(len(self.specs))]):
                    return None     # the general path records this batch again
                raise
        counts = []
        if adam:                            # as FlatState._adam: count, then the scalars
            for _, _, _, steps in self.updates:
                for t in steps:
                    t._data[...] += 1
                counts.append(float(steps[0]._data))
        fused = self.fused
        if fused is not None:               # program, scalars and update: one call
            if rebound:
                self._fused_ptrs[:2] = nat._ptrs[:2]
            for g, step in enumerate(counts):
                fused.hp[g, -1] = step
            fused.step(self._fused_addr)
        else:
            if self.parallel:
                nat.run_segments()
            else:
                for call in self.calls:
                    call(self.addr)
            for g, (group, keys, kern, _) in enumerate(self.updates):
                if adam:
                    env = {k: group[k] for k in keys}
                    env["step"] = counts[g]
                    kern.prepare(env)
                kern.call(kern.ptrs_addr)
        loss = self.loss_buf.copy()         # the update does not touch the loss buffer
        for p, g in zip(self.params, self.grads):
            p._grad = g
        for v in self.versions:             # parameters, .grad and state tensors changed
            v.value += 1
        return Tensor._wrap(loss, self.dtype)

    def _rebind(self, j: int, a) -> bool:
        """A new batch array of the recorded shape and dtype is bound (True); else the general
        path takes the call."""
        shape, dt = self.specs[j]
        if type(a) is not np.ndarray or a.shape != shape or a.dtype != dt:
            return False
        self.nat._bind(j, a, f"input {j}")
        return True

    def _steps_bound(self) -> bool:
        """Adam's step counters are still the state's (``load_state_dict`` replaces them)."""
        state = self.optimizer.state
        return all(state.get(p, {}).get("step") is t
                   for (_, _, _, steps), grp in zip(self.updates, self.flat.groups)
                   for p, t in zip(grp.params, steps))

    def _state_bound(self) -> bool:
        """Each state tensor is still ``optimizer.state[p][key]`` (read afresh:
        ``load_state_dict`` replaces entries) and still a view of the flat state buffer."""
        dicts = list(map(self.optimizer.state.get, self.state_params))
        return (all(map(is_, dicts, self.state_dicts))
                and all(map(is_, map(dict.get, dicts, self.state_keys), self.state_tensors))
                and all(map(is_, map(_DATA, self.state_tensors), self.state_views)))
