"""Flat parameter/gradient/state buffers and the optimizer update of a fused training step.

The trained parameters of each optimizer group are packed into ONE contiguous buffer per dtype,
and every ``Parameter._data`` becomes a view into it (like PyTorch's "flat parameters"); the
optimizer's state tensors (``momentum_buffer``, ``exp_avg``, ...) likewise. The update then runs a
handful of whole-buffer numpy operations per group — the SAME operations, in the same order, as
``SGD._update`` / ``Adam._update`` run per parameter, so the fused step is bitwise identical to
``optimizer.step()`` elementwise, and eager ``optimizer.step()`` can continue on the same state.

If user code rebinds a parameter's storage (``p.data = ...``, ``load_state_dict`` replacing state
tensors), :meth:`FlatState.sync` notices (identity checks, cheap) and repacks.
"""
from __future__ import annotations

import numpy as np

from codegen.loops import aligned_zeros

from .. import _dtype as D
from ..optim.adam import Adam, adam_update
from ..optim.sgd import SGD, sgd_update
from ..tensor import Tensor
from .native_update import NativeUpdate

_SGD_KEYS = ("momentum_buffer",)
_ADAM_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


class UnsupportedOptimizer(TypeError):
    """The optimizer has no fused update (only SGD, Adam, AdamW)."""


def _kind(optimizer) -> str:
    # exact types: a subclass may override _update with other equations
    if type(optimizer) is SGD:
        return "sgd"
    if isinstance(optimizer, Adam) and type(optimizer)._update is Adam._update:
        return "adam"
    raise UnsupportedOptimizer(f"compile_step: no fused update for {type(optimizer).__name__} "
                               "(supported: SGD, Adam, AdamW)")


class _Group:
    """One optimizer param group's slice of the flat buffers."""

    __slots__ = ("group", "params", "start", "end", "state_keys", "kernel")

    def __init__(self, group, params, start, end) -> None:
        self.group = group
        self.params = params
        self.start = start
        self.end = end
        self.state_keys: tuple = ()
        self.kernel = None          # the native update kernel the last step used (None: numpy)


class FlatState:
    """Packs ``params`` (the tensors the gradient program differentiates) of ``optimizer``.

    ``P``: flat parameters, ``G``: flat gradients (the gradient program writes them),
    ``views[i]``: the view of parameter ``i`` (``params[i]``'s shape) into ``P``; ``offsets[i]``.
    """

    def __init__(self, optimizer, params: list) -> None:
        self.optimizer = optimizer
        self.kind = _kind(optimizer)
        wanted = {id(p) for p in params}
        ordered, groups = [], []
        off = 0
        for g in optimizer.param_groups:
            ps = [p for p in g["params"] if id(p) in wanted]
            if ps:
                n = sum(p._data.size for p in ps)
                groups.append(_Group(g, ps, off, off + n))
                ordered.extend(ps)
                off += n
        missing = [p for p in params if all(p is not q for q in ordered)]
        if missing:
            raise ValueError("compile_step: the loss depends on parameters that the optimizer "
                             f"does not update (shapes {[tuple(p.shape) for p in missing]})")
        dts = {p.dtype for p in ordered}
        if len(dts) != 1:
            raise TypeError("compile_step: all trained parameters must have one dtype, got "
                            f"{sorted(d.name for d in dts)}")
        self.dtype = dts.pop()
        self.params = ordered
        self.groups = groups
        self.size = off
        np_dt = self.dtype.np
        self.P = aligned_zeros(off, np_dt)      # cache-line aligned: native loops read them
        self.G = aligned_zeros(off, np_dt)
        self.offsets = []
        pos = 0
        for p in ordered:
            self.offsets.append(pos)
            pos += p._data.size
        self.views = [self.P[o:o + p._data.size].reshape(p._data.shape)
                      for o, p in zip(self.offsets, ordered)]
        self.gviews = [self.G[o:o + p._data.size].reshape(p._data.shape)
                       for o, p in zip(self.offsets, ordered)]
        self.grad_tensors = [Tensor._wrap(v, self.dtype) for v in self.gviews]
        self.S: dict[str, np.ndarray] = {}
        self._state_views: dict[str, list] = {}
        self._slices: dict = {}
        self.native_update = NativeUpdate()
        self.repack()

    # -- packing ------------------------------------------------------------------------------
    def repack(self) -> None:
        """(Re)bind every parameter and state tensor to the flat buffers, keeping values."""
        for p, v in zip(self.params, self.views):
            if p._data is not v:
                v[...] = p._data
                p._data = v
        keys = _SGD_KEYS if self.kind == "sgd" else _ADAM_KEYS
        state = self.optimizer.state
        for key in keys:
            have = [key in state.get(p, {}) for p in self.params]
            if not any(have):
                continue
            buf = self.S.get(key)
            if buf is None:
                buf = self.S[key] = aligned_zeros(self.size, self.dtype.np)
                self._state_views[key] = [buf[o:o + p._data.size].reshape(p._data.shape)
                                          for o, p in zip(self.offsets, self.params)]
            for p, v, h in zip(self.params, self._state_views[key], have):
                if h:
                    t = state[p][key]
                    if t._data is not v:
                        v[...] = t._data
                        t._data = v
        for grp in self.groups:
            grp.state_keys = tuple(k for k in keys if all(
                k in state.get(p, {}) for p in grp.params)) if state else ()
            partial = [k for k in keys if k not in grp.state_keys and any(
                k in state.get(p, {}) for p in grp.params)] if state else []
            if partial:
                raise ValueError(f"compile_step: optimizer state {partial[0]!r} exists for some "
                                 "parameters of a group but not others; the fused update needs "
                                 "them in step")
            if self.kind == "adam" and state:
                steps = {float(state[p]["step"]._data) for p in grp.params if "step" in state[p]}
                if len(steps) > 1:
                    raise ValueError("compile_step: Adam step counts differ within a group")

    def sync(self) -> None:
        """Before a step: repack if any parameter or state tensor was rebound."""
        for p, v in zip(self.params, self.views):
            if p._data is not v:
                self.repack()
                return
        state = self.optimizer.state
        for key, views in self._state_views.items():
            for p, v in zip(self.params, views):
                s = state.get(p)
                if s is not None and key in s and s[key]._data is not v:
                    self.repack()
                    return

    def _state_tensor(self, key: str, init: np.ndarray | None) -> np.ndarray:
        """The flat buffer of ``key`` (created, and bound into optimizer.state, on first use)."""
        buf = self.S.get(key)
        if buf is None:
            buf = self.S[key] = aligned_zeros(self.size, self.dtype.np)
            self._state_views[key] = [buf[o:o + p._data.size].reshape(p._data.shape)
                                      for o, p in zip(self.offsets, self.params)]
        return buf

    def _bind_state(self, grp: _Group, key: str) -> None:
        views = self._state_views[key]
        state = self.optimizer.state
        for p in grp.params:
            i = self._index[id(p)]
            state[p][key] = Tensor._wrap(views[i], self.dtype)

    @property
    def _index(self) -> dict:
        idx = getattr(self, "_idx", None)
        if idx is None:
            idx = self._idx = {id(p): i for i, p in enumerate(self.params)}
        return idx

    #: flat buffer of each array name the update declarations trace (sgd_update's P, G, buf;
    #: adam_update's P, G, m, v, mx): "P", "G" or the optimizer-state key
    UPDATE_BUFFERS = {"P": "P", "G": "G", "buf": "momentum_buffer", "m": "exp_avg",
                      "v": "exp_avg_sq", "mx": "max_exp_avg_sq"}

    def update_groups(self) -> list:
        """Per group, the native update kernel its last step ran and where each of the
        kernel's arrays lives: ``(kernel, [(flat buffer name, element offset)])`` (whole-program
        lowerings — native epochs, export — put the kernel's statement after the program's)."""
        out = []
        for grp in self.groups:
            kern = grp.kernel
            if kern is None:
                raise ValueError("a param group's update did not run natively on the last step")
            out.append((kern, [(self.UPDATE_BUFFERS[nm], grp.start) for nm in kern.names]))
        return out

    def buffer(self, name: str) -> np.ndarray:
        """The flat array ``name`` of :meth:`update_groups` (``P``, ``G`` or a state key)."""
        return self.P if name == "P" else self.G if name == "G" else self.S[name]

    def note_steps(self, n: int) -> None:
        """After ``n`` steps run natively (gradient and update in the flat buffers): what ``n``
        calls of :meth:`finish` leave — ``.grad`` exposed, every version counter moved."""
        for p, gt in zip(self.params, self.grad_tensors):
            p._grad = gt
            p._version.value += n
            gt._version.value += n
        state = self.optimizer.state
        for grp in self.groups:
            for k in grp.state_keys:
                for p in grp.params:
                    state[p][k]._version.value += n
            if self.kind == "adam":     # Adam's float32 step counters (exact below 2**24)
                for p in grp.params:
                    state[p]["step"]._data[...] += n

    # -- the update ---------------------------------------------------------------------------
    def finish(self) -> None:
        """After the gradient program filled ``G``: expose ``.grad`` and apply the update."""
        for p, gt in zip(self.params, self.grad_tensors):
            p._grad = gt
            p._version.value += 1
        gt0 = self.grad_tensors
        for gt in gt0:
            gt._version.value += 1
        if self.kind == "sgd":
            for grp in self.groups:
                self._sgd(grp)
        else:
            for grp in self.groups:
                self._adam(grp)

    def _slice(self, base: np.ndarray, grp: _Group) -> np.ndarray:
        """``base[grp.start:grp.end]``, the same view object while ``base`` is the same array
        (the native update binds its buffers by identity)."""
        key = (id(base), grp.start)
        hit = self._slices.get(key)
        if hit is None or hit[0] is not base:
            hit = self._slices[key] = (base, base[grp.start:grp.end])
        return hit[1]

    def _sgd(self, grp: _Group) -> None:
        group = grp.group
        s, e = grp.start, grp.end
        buf, first = None, False
        if group["momentum"] != 0:
            first = "momentum_buffer" not in grp.state_keys
            buf = self._state_tensor("momentum_buffer", None)[s:e] if first \
                else self._slice(self.S["momentum_buffer"], grp)
        arrays = {"P": self._slice(self.P, grp), "G": self._slice(self.G, grp)}
        if buf is not None:
            arrays["buf"] = buf
        grp.kernel = None if first else self.native_update("sgd", group, arrays)
        if grp.kernel is None:
            sgd_update(self.P[s:e], self.G[s:e], buf, group, first)
        if first:
            self._bind_state(grp, "momentum_buffer")
            grp.state_keys = grp.state_keys + ("momentum_buffer",)
        elif buf is not None:
            self._bump(grp, "momentum_buffer")

    def _bump(self, grp: _Group, key: str) -> None:
        state = self.optimizer.state
        for p in grp.params:
            state[p][key]._version.value += 1

    def _adam(self, grp: _Group) -> None:
        group = grp.group
        state = self.optimizer.state
        s, e = grp.start, grp.end
        P, grad = self.P[s:e], self.G[s:e]
        amsgrad = group["amsgrad"]
        if "exp_avg" not in grp.state_keys:
            keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
            for k in keys:
                self._state_tensor(k, None)[s:e] = 0
                self._bind_state(grp, k)
            for p in grp.params:
                state[p]["step"] = Tensor._wrap(np.array(0.0, dtype=np.float32), D.float32)
            grp.state_keys = keys
        for p in grp.params:
            state[p]["step"]._data[...] += 1
        step = float(state[grp.params[0]]["step"]._data)
        arrays = {"P": self._slice(self.P, grp), "G": self._slice(self.G, grp),
                  "m": self._slice(self.S["exp_avg"], grp),
                  "v": self._slice(self.S["exp_avg_sq"], grp)}
        if amsgrad:
            arrays["mx"] = self._slice(self.S["max_exp_avg_sq"], grp)
        grp.kernel = self.native_update("adam", group, arrays, step=step,
                                        decoupled=self.optimizer._decoupled)
        if grp.kernel is None:
            adam_update(P, grad, self.S["exp_avg"][s:e], self.S["exp_avg_sq"][s:e],
                        self.S["max_exp_avg_sq"][s:e] if amsgrad else None, step, group,
                        self.optimizer._decoupled)
        for k in grp.state_keys:
            self._bump(grp, k)
