"""``symad.compile_step``: a whole training step (forward, loss, backward, update) as native calls.

>>> import symad
>>> from symad import nn, optim
>>> net = nn.Sequential(nn.Linear(2, 1))
>>> opt = optim.SGD(net.parameters(), lr=0.1)
>>> step = symad.compile_step(net, nn.MSELoss(), opt)
>>> X = symad.randn(32, 2); y = X.sum(1, keepdim=True)
>>> loss = step(X, y)            # == loss(net(X), y); zero_grad(); backward(); opt.step()
>>> history = step.fit(X, y, epochs=2, batch_size=8)

Two gradient paths, chosen per model:

* **scalarized** (models of at most ``STRUCTURED_MIN_PARAMS`` = 16 parameters — linear and
  logistic regressions — with any compilable loss): ``symad.compile``'s per-sample SymPy program
  with parameters as scalar symbols and its fused loss+gradient kernel, and a native epoch loop
  for ``fit`` (the fastest ``fit`` for such models);
* **tensor program** (every larger model, or whatever the scalarized kernel cannot take; see
  :mod:`symad.compiler.program_step`): the loss and the registry VJPs of its backward recorded
  once as a program of shaped ops, lowered to native loops, and run as one native call per
  step with the update (and whole native epochs for ``fit``) — no layer, loss or derivative is
  restated here.

The update is :class:`~symad.compiler.flat_update.FlatState`: the optimizer's own equations as a
few numpy operations on flat buffers that the parameters and optimizer state are views of.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np

from ..random import Generator, default_generator
from ..tensor import Tensor
from .flat_update import FlatState
from .kernels import columns
from .native_fit import NativeFit, NativeFitUnavailable
from .program import NotCompilable
from .program_step import ProgramRunner

#: Parameter count above which the tensor-program path is taken by default. Measured with
#: ``benchmarks/bench_step.py --paths`` (one thread, batch 32): the program's steady-state
#: ``step(X, y)`` (one native call after ~3 us of checks) is ~4x faster than the scalarized
#: step (one step of its fit loop) at every size (linear 2->1: 3.1 vs 11.4 us; MLP 3->8->1: 4.0
#: vs 16.4 us), and its native ``fit`` is faster from MLPs of ~17 parameters up (2->4->1: 2.3
#: vs 2.7 us per step; 3->8->1: 2.5 vs 4.7); the scalarized fit loop stays well ahead for
#: linear models (2->1: 0.37 vs 2.1 us per step), and its build time grows with the parameter
#: count (``bench_step.py``: 3.4 s against 0.45 s for 10->16->1).
STRUCTURED_MIN_PARAMS = 16


def _np(a, dtype=None) -> np.ndarray:
    arr = a._data if isinstance(a, Tensor) else np.asarray(a)
    return arr if dtype is None else np.asarray(arr, dtype)


class _ScalarRunner:
    """Scalarized path: symad.compile's fused loss+gradient kernel (one native call)."""

    kind = "scalarized"

    def __init__(self, entry, params: list, flat: FlatState, dtype, x_cols: int) -> None:
        self.entry = entry
        self.x_cols = x_cols        # the kernel's columns from X (the rest are y's)
        self.params = params        # every tensor entering as scalars, in kernel order
        self.flat = flat
        self.np_dtype = dtype.np
        self.kernel = entry.k.fused
        grad_ps = [params[i] for i in entry.grad_param_idx]
        where = {id(p): (o, p._data.size) for p, o in zip(flat.params, flat.offsets)}
        gidx = np.concatenate([np.arange(where[id(p)][0], where[id(p)][0] + where[id(p)][1])
                               for p in grad_ps]) if grad_ps else np.zeros(0, np.int64)
        self.n_g = gidx.size
        self.gidx = None if np.array_equal(gidx, np.arange(flat.size)) else gidx

    def prepare(self, X: np.ndarray, y: np.ndarray):
        """Whole-data layout: feature-major copies whose row slices are the kernel's columns."""
        dt = self.np_dtype
        xs = [np.ascontiguousarray(np.stack(columns(a, dt))) if a.shape[0] else
              np.empty((int(np.prod(a.shape[1:])), 0), dt) for a in (X, y)]
        return xs

    def run(self, data, s: int, e: int) -> float:
        vals: list = []
        for p in self.params:
            vals.extend(p._data.reshape(-1).tolist())
        for arr in data:
            vals.extend(arr[:, s:e])
        outs = self.kernel.call_arrays(vals)
        g = np.array(outs[1:1 + self.n_g], dtype=self.np_dtype)
        if self.gidx is None:
            self.flat.G[...] = g
        else:
            self.flat.G[self.gidx] = g
        return float(outs[0])

    @property
    def native_calls(self) -> str:
        if getattr(self, "native_fit", None) is not None:
            return "1 native call per step (one step of the native fit loop: loss, gradients, " \
                   "update)"
        return "1 codegen kernel (fused loss + gradients)"


def _compiled_entry(cf, args):
    """The compiled signature (``_Entry``, or symad.compile's fallback reason) of ``cf(*args)``."""
    batched, entry = cf.entry_for(args)
    if list(batched) != [0, 1]:
        raise NotCompilable("compile_step: X and y must both be batched (leading dim = rows)")
    if isinstance(entry, str):
        raise NotCompilable(f"compile_step: {entry}")
    if getattr(entry, "kind", None) == "program":
        raise NotCompilable("compile_step: no scalarized kernel for this model")
    return entry


@functools.lru_cache(maxsize=64)
def _bounds(n: int, bs: int, drop_last: bool) -> tuple:
    """The ``(start, end)`` rows of each minibatch of an epoch, as DataLoader forms them."""
    bounds = [(s, min(s + bs, n)) for s in range(0, n, bs)]
    if drop_last and bounds and bounds[-1][1] - bounds[-1][0] < bs:
        bounds.pop()
    return tuple(bounds)


class CompiledStep:
    """The callable :func:`compile_step` returns; see the module docstring."""

    def __init__(self, model, loss_fn, optimizer, *, structured: bool | None = None,
                 threads: int | None = None, verbose: bool = False) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.structured = structured
        self.threads = threads
        self.verbose = verbose
        self._runners: dict = {}
        self._fast = None               # the steady-state step (program_step.FastStep)
        self._rows: dict = {}            # batch size -> (rows in order, offsets) of one step
        self.timings: dict[str, float] = {}
        self.compile_count = 0

    def __repr__(self) -> str:
        return f"symad.compile_step({type(self.model).__name__}, " \
               f"{type(self.loss_fn).__name__}, {type(self.optimizer).__name__})"

    # -- building -----------------------------------------------------------------------------
    def _trained(self) -> list:
        return [p for g in self.optimizer.param_groups for p in g["params"] if p.requires_grad]

    def _key(self, X: np.ndarray, y: np.ndarray):
        return (X.shape[1:], X.dtype.str, y.shape[1:], y.dtype.str)

    def _runner(self, X: np.ndarray, y: np.ndarray):
        key = self._key(X, y)
        r = self._runners.get(key)
        if r is None:
            r = self._build(X, y)
            self._runners[key] = r
        return r

    def _build(self, X: np.ndarray, y: np.ndarray):
        t0 = time.perf_counter()
        n_params = sum(p.numel() for p in self._trained())
        use_program = self.structured
        if use_program is None:
            use_program = n_params > STRUCTURED_MIN_PARAMS
        runner = None
        if not use_program:
            try:
                runner = self._build_scalar(X, y)
            except NotCompilable:
                if self.structured is False:
                    raise
        if runner is None:
            from .compiled import CompileWarning
            runner = ProgramRunner(self.model, self.loss_fn, self.optimizer, self._trained(),
                                   CompileWarning)
        self.compile_count += 1
        self.timings["build"] = time.perf_counter() - t0
        if self.verbose:
            print(f"symad.compile_step: {runner.kind} path built in "
                  f"{self.timings['build'] * 1e3:.0f} ms")
        return runner

    def _build_scalar(self, X: np.ndarray, y: np.ndarray):
        from .compiled import SCALAR_PARAMS_CEILING, CompiledFunction
        model, loss_fn = self.model, self.loss_fn

        def loss_of(xb, yb):
            return loss_fn(model(xb), yb)

        cf = CompiledFunction(loss_of, fullgraph=True, threads=self.threads)
        if self.structured is False:    # asked for: the scalarized path up to its ceiling
            cf.max_scalar_params = SCALAR_PARAMS_CEILING
        args = (Tensor._wrap(np.array(X[:4])), Tensor._wrap(np.array(y[:4])))
        entry = _compiled_entry(cf, args)
        if entry.prog.reduction == "none" or len(entry.prog.per_sample) != 1:
            raise NotCompilable("compile_step: the loss must be a scalar sum or mean over the "
                                "batch")
        params = entry.params_of(args)
        grad_ps = [params[i] for i in entry.grad_param_idx]
        flat = FlatState(self.optimizer, grad_ps)
        self.timings.update(entry.k.timings)
        return _ScalarRunner(entry, params, flat, entry.dtype, int(np.prod(X.shape[1:])))

    # -- running ------------------------------------------------------------------------------
    def _one(self, runner, data, s: int, e: int) -> float:
        if runner.kind == "program":
            return runner.step(data, s, e)
        flat = runner.flat
        flat.sync()
        loss = runner.run(data, s, e)
        flat.finish()
        return loss

    def __call__(self, X, y) -> Tensor:
        """One step on the batch ``(X, y)``: returns the loss (a detached 0-d tensor) computed
        before the update, like ``loss = loss_fn(model(X), y); loss.backward(); opt.step()``."""
        fast = self._fast
        if fast is not None:
            out = fast(X, y)
            if out is not None:
                return out
        Xa, ya = _np(X), _np(y)
        runner = self._runner(Xa, ya)
        nf = self._native(runner, None, True) \
            if runner.kind == "scalarized" and Xa.shape[0] and ya.shape[0] == Xa.shape[0] \
            else None
        if nf is not None:
            # one step of the native fit loop: loss, gradient and update in one call, reading
            # X and y where they are (the kernel path below stacks them into columns first)
            loss = self._fit_loop_step(nf, Xa, ya)
        else:
            loss = self._one(runner, runner.prepare(Xa, ya), 0, Xa.shape[0])
        dt = runner.flat.dtype
        self._fast = runner.fast_step() if runner.kind == "program" else None
        return Tensor._wrap(np.array(loss, dtype=dt.np), dt)

    def _fit_loop_step(self, nf, Xa: np.ndarray, ya: np.ndarray) -> float:
        """``step(X, y)`` on the scalarized path as one step of its native fit loop (the whole
        batch, rows in order): what the kernel path computes, and leaves the same ``.grad``,
        optimizer state and versions."""
        n = Xa.shape[0]
        rows = self._rows.get(n)
        if rows is None:
            perm, off = np.arange(n, dtype=np.int64), np.array([0, n], np.int64)
            perm.flags.writeable = off.flags.writeable = False
            if len(self._rows) > 8:
                self._rows.clear()
            rows = self._rows[n] = (perm, off)
        return float(nf.run(nf.data(Xa, ya), rows[0], rows[1], 1)[0])

    def fit(self, X, y, *, epochs: int = 1, batch_size: int | None = None,
            shuffle: bool = True, generator: Generator | None = None, drop_last: bool = False,
            callback: Callable[[int, float], object] | None = None,
            native: bool | None = None) -> list[float]:
        """Train for ``epochs`` over the in-memory tensors ``X`` and ``y``.

        Minibatches are taken in the order ``DataLoader(TensorDataset(X, y), batch_size,
        shuffle=shuffle, generator=generator, drop_last=drop_last)`` would give (one
        ``generator.permutation(n)`` per epoch; the default generator when ``None``), so the
        eager loop over that DataLoader reproduces the same parameters. ``batch_size=None``:
        full batch. Returns the per-epoch mean of the minibatch losses; ``callback(epoch,
        epoch_loss)`` (epoch counts from 0) runs after each epoch and may return ``False`` to
        stop early.

        ``native``: on the scalarized path, run the epochs as one generated native function
        (:mod:`symad.compiler.native_fit`; one native call per epoch with a ``callback``, else one
        for all epochs). ``None`` (default): when available, else the Python loop; ``True``:
        required (raises :class:`NotCompilable` otherwise); ``False``: the Python loop.
        """
        Xa, ya = _np(X), _np(y)
        n = Xa.shape[0]
        if ya.shape[0] != n:
            raise ValueError(f"Size mismatch between tensors: X has {n} rows, y {ya.shape[0]}")
        bs = n if batch_size is None else int(batch_size)
        if bs <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        runner = self._runner(Xa, ya)
        bounds = _bounds(n, bs, bool(drop_last))
        if runner.kind == "program" and native is not False and bounds:
            return self._fit_program(runner, Xa, ya, bounds, epochs, shuffle, generator,
                                     callback, native)
        if native is not False:
            nf = self._native(runner, native, bool(bounds))
            if nf is not None:
                return self._fit_native(nf, Xa, ya, bounds, epochs, shuffle, generator,
                                        callback)
        base = None if shuffle else runner.prepare(Xa, ya)
        history: list[float] = []
        one = self._one
        for epoch in range(epochs):
            if shuffle:
                perm = (generator or default_generator).permutation(n)
                data = runner.prepare(Xa[perm], ya[perm])
            else:
                data = base
            total = 0.0
            for s, e in bounds:
                total += one(runner, data, s, e)
            history.append(total / len(bounds) if bounds else float("nan"))
            if callback is not None and callback(epoch, history[-1]) is False:
                break
        return history

    def _fit_program(self, runner, Xa, ya, bounds, epochs, shuffle, generator, callback,
                     native):
        """``fit`` on the tensor-program path: the full minibatches of each epoch as one call of
        the native epoch loop (:mod:`symad.compiler.native_epochs`), all epochs in one call
        when every batch is full and no callback runs between epochs; the rest (the recording
        batch, a short last batch, programs the loop cannot run) through the step itself."""
        n = Xa.shape[0]
        bs = bounds[0][1] - bounds[0][0]
        full = sum(1 for s, e in bounds if e - s == bs)      # DataLoader: full batches first
        gen = generator or default_generator
        whole = callback is None and full == len(bounds)
        Xc, yc = np.ascontiguousarray(Xa), np.ascontiguousarray(ya)
        ident = np.arange(n, dtype=np.int64)
        perms = gen.permutations(n, epochs) if shuffle and whole else None
        history: list[float] = []
        one = self._one
        epoch = 0
        while epoch < epochs:
            perm = ident if not shuffle else perms[epoch] if perms is not None else \
                gen.permutations(n, 1)[0]
            losses: list[float] = []
            i, ran = 0, 1
            while i < len(bounds):
                s, e = bounds[i]
                ne = runner.native_epochs(Xa, ya, bs) if e - s == bs else None
                if ne is None:
                    # the recording batch runs as a step, and so does any batch while the loop
                    # waits for the update's first native run (SGD's new momentum buffer);
                    # otherwise native=True requires the loop
                    if native and e - s == bs and i > 0 and not runner.epochs_pending:
                        raise NotCompilable(f"step.fit(native=True): {runner.epochs_error}")
                    rows = perm[s:e]
                    losses.append(one(runner, (Xa[rows], ya[rows]), 0, e - s))
                    i += 1
                    continue
                if whole and i == 0:            # this and every later epoch, in one call
                    rest = perms[epoch:] if perms is not None else \
                        np.tile(perm, (epochs - epoch, 1))
                    rest = np.ascontiguousarray(rest[:, :full * bs]).reshape(-1)
                    got = runner.run_epochs(ne, Xc, yc, rest)
                    ran = epochs - epoch
                    per = [got[k * full:(k + 1) * full] for k in range(ran)]
                    losses = per[0].tolist()
                    for k in range(1, ran):
                        history.append(sum(losses) / len(bounds))
                        losses = per[k].tolist()
                    break
                got = runner.run_epochs(ne, Xc, yc, np.ascontiguousarray(perm[s:full * bs]))
                losses += got.tolist()
                i = full
            history.append(sum(losses) / len(bounds))
            first = epoch
            epoch += ran
            if callback is not None:
                for k in range(first, epoch):
                    if callback(k, history[k]) is False:
                        return history
        return history

    def _native(self, runner, native: bool | None, have_batches: bool):
        """The runner's :class:`~symad.compiler.native_fit.NativeFit`, or None (Python loop)."""
        why = None
        nf = getattr(runner, "native_fit", None)
        if runner.kind != "scalarized":
            why = "the native fit loop covers the scalarized path only"
        elif not have_batches:
            why = "no minibatches"
        elif nf is None:
            why = getattr(runner, "native_fit_error", None)
            if why is None:
                try:
                    nf = runner.native_fit = NativeFit(runner)
                    nf.loop()
                except (NativeFitUnavailable, NotImplementedError, ValueError,
                        RuntimeError) as e:   # RuntimeError: LLVM; the Python loop still works
                    runner.native_fit = None
                    why = runner.native_fit_error = f"{type(e).__name__}: {e}"
        if why is not None and native:
            raise NotCompilable(f"step.fit(native=True): {why}")
        return nf if why is None else None

    def _fit_native(self, nf, Xa, ya, bounds, epochs, shuffle, generator, callback):
        n = Xa.shape[0]
        per_epoch = bounds[-1][1]          # rows used per epoch (drop_last drops the tail)
        n_b = len(bounds)
        data = nf.data(Xa, ya)
        chunk = 1 if callback is not None else max(int(epochs), 0)
        history: list[float] = []
        done = 0
        gen = generator or default_generator
        while done < epochs:
            k = min(chunk, epochs - done)
            if shuffle:           # the epochs' permutations in one native draw
                perm = gen.permutations(n, k)
                perm = perm.reshape(-1) if per_epoch == n else \
                    np.ascontiguousarray(perm[:, :per_epoch]).reshape(-1)
            else:
                perm = np.tile(np.arange(per_epoch, dtype=np.int64), k)
            totals = nf.run(data, perm, nf.offsets(bounds, per_epoch, k), n_b)
            for e in range(k):
                history.append(float(totals[e]) / n_b)
                if callback is not None and callback(done + e, history[-1]) is False:
                    return history
            done += k
        return history

    @property
    def native_calls(self) -> str:
        """What one step runs natively (per built signature)."""
        calls = "; ".join(r.native_calls for r in self._runners.values()) or "not built yet"
        fast = self._fast
        if fast is not None:
            calls += ("; steady state: 1 native call per step (program and update)"
                      if fast.fused is not None else
                      f"; steady state: {1 + len(fast.updates)} native calls per step (program, "
                      f"then each group's update)")
        return calls


def compile_step(model, loss_fn, optimizer, *, structured: bool | None = None,
                 threads: int | None = None, verbose: bool = False) -> CompiledStep:
    """A fused training step ``step(X, y) -> loss`` for ``model``, ``loss_fn``, ``optimizer``.

    Equivalent to (within float rounding)::

        optimizer.zero_grad(); loss = loss_fn(model(X), y); loss.backward(); optimizer.step()

    for ``optim.SGD`` (momentum, dampening, nesterov, weight_decay, maximize) and
    ``optim.Adam``/``optim.AdamW`` (incl. amsgrad); the optimizer's ``state`` stays consistent, so
    eager steps can follow. ``step.fit(X, y, epochs=, batch_size=, shuffle=, generator=,
    callback=)`` runs whole epochs. ``structured``: force (True) or forbid (False) the
    tensor-program path; by default it is used above ``STRUCTURED_MIN_PARAMS`` parameters and
    whenever the scalarized kernel cannot be built.
    """
    return CompiledStep(model, loss_fn, optimizer, structured=structured, threads=threads,
                        verbose=verbose)
