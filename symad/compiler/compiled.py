"""``symad.compile``: a drop-in callable that runs a function or module as native kernels.

First call per signature (shapes, dtypes, which inputs require grad): run eagerly once to find the
parameters (the graph's leaves that require grad, e.g. a module's weights), trace per sample,
derive exact gradients, build kernels, and check the kernel against the eager result. Later calls
run the kernels; the output's ``grad_fn`` is one compiled node whose backward accumulates into
``.grad`` exactly like eager. Anything that cannot be compiled falls back to eager with one warning
(``fullgraph=True``: an error).
"""
from __future__ import annotations

import ctypes
import sys
import time
import warnings

import numpy as np
from codegen import LoweringError

from .. import _dtype as D
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.graph import AccumulateGrad, Node, _edge_of
from ..errors import TracingError
from ..ops.functional import ones_like
from .kernels import ProgramKernels, columns
from ..program import NotReplayable
from ..program.effects import Watch
from .program import NotCompilable, symbolic_caller, trace_program
from .program_entry import ProgramEntry


#: beyond this many scalar parameters the tensor-program path: one SymPy symbol per parameter
#: makes a kernel whose LLVM optimization grows faster than its size (a 10-64-1 MLP loss, 769
#: parameters: 175 s to build, 414 us per call, against 0.36 s and 166 us as a tensor program;
#: ``x.clamp(-0.5, 0.5).sum()`` of 1,000 elements: 100 s against 0.15 s). The scalar kernel is
#: faster up to ~100 parameters (49: 130 vs 173 us per call); benchmarks/bench_compile_paths.py
MAX_SCALAR_PARAMS = 128
#: the most a caller that asks for the scalarized path (``compile_step(structured=False)``) gets
SCALAR_PARAMS_CEILING = 2048
MAX_C_ARGS = 1000         # a scalarized kernel takes one C argument per scalar (ctypes: 1024)


class CompileWarning(UserWarning):
    """symad.compile fell back to eager execution for a signature."""


def _leaves(out, stop=()) -> list:
    """Leaves that require grad and reach ``out`` through its graph, in first-seen order; the
    walk stops at the nodes of the call's own arguments (``stop``)."""
    fn = out.grad_fn
    if fn is None:
        return [out] if out.requires_grad else []
    seen, found, stack = {id(n) for n in stop}, [], [fn]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, AccumulateGrad):
            found.append(n.variable)
            continue
        for nxt, _ in reversed(n.next_functions):
            stack.append(nxt)
    return found


def _has_lazy_parameters(fn) -> bool:
    """``fn`` is a module with lazy submodules (``nn.LazyLinear``) not yet materialized."""
    modules = getattr(fn, "modules", None)
    if not callable(modules):
        return False
    return any(callable(getattr(m, "has_uninitialized_params", None))
               and m.has_uninitialized_params() for m in modules())


class CompiledBackward(Node):
    """The single graph node of a compiled call."""

    __slots__ = ("_entry", "_state", "_inputs_meta")

    def __init__(self, next_functions, entry, state) -> None:
        super().__init__(next_functions)
        self._entry = entry
        self._state = state

    def apply(self, grads):
        if self._state is None:
            raise RuntimeError("Trying to backward through the graph a second time (or directly "
                               "access saved tensors after they have already been freed). "
                               "Specify retain_graph=True if you need to backward through the "
                               "graph a second time.")
        if is_grad_enabled():
            raise RuntimeError("symad.compile: create_graph=True (higher-order gradients) is not "
                               "supported through a compiled call; call the function eagerly or "
                               "use symad.hessian")
        return self._entry.backward(self._state, grads[0])

    def release(self) -> None:
        self._state = None


def _node_class():
    cls = type("CompiledFunctionBackward", (CompiledBackward,), {"__slots__": ()})
    return cls


_NODE = _node_class()


class _Entry:
    """Everything compiled for one signature."""

    def __init__(self, kernels: ProgramKernels, param_refs, batched_pos, dtype) -> None:
        self.k = kernels
        self.prog = kernels.prog
        self.param_refs = param_refs         # ("arg", position) or ("obj", captured tensor)
        self.batched_pos = batched_pos       # argument positions of batched tensors
        self.np_dtype = dtype.np
        self.dtype = dtype
        self.grad_param_idx = []             # indices into param_tensors that get gradients
        self.grad_data_idx = []              # indices into batched_pos that get gradients

    # -- calling ------------------------------------------------------------------------------
    def params_of(self, args) -> list:
        """The tensors entering as scalars for this call (arguments are read from ``args``)."""
        return [args[ref] if src == "arg" else ref for src, ref in self.param_refs]

    def _inputs(self, args, params):
        vals = []
        for t in params:
            vals.extend(t._data.ravel().tolist())
        n = None
        for j in self.batched_pos:
            a = args[j]._data
            n = a.shape[0]
            vals.extend(columns(a, self.np_dtype))
        return vals, n

    def _assemble(self, outs, n):
        prog = self.prog
        if prog.reduction == "none" and prog.batched:
            arr = np.stack(outs, axis=1).reshape((n,) + tuple(prog.out_shape)) if outs else \
                np.empty((n,) + tuple(prog.out_shape), self.np_dtype)
        else:
            arr = np.array(outs, dtype=self.np_dtype).reshape(prog.out_shape)
        return arr

    def run(self, args, want_grad: bool):
        from ..tensor import Tensor
        params = self.params_of(args)
        vals, n = self._inputs(args, params)
        prog = self.prog
        fused = want_grad and prog.reduction != "none" and len(prog.per_sample) == 1
        if fused:
            outs = self.k.fused.call_arrays(vals)
            value = self._assemble(outs[:1], n)
            state = ("fused", outs[1:], n, vals, params)
        else:
            outs = self.k.forward.call_arrays(vals)
            value = self._assemble(outs, n)
            state = ("vjp", None, n, vals, params)
        result = Tensor._wrap(np.asarray(value, dtype=self.np_dtype), self.dtype)
        if want_grad:
            edges = [_edge_of(params[i]) for i in self.grad_param_idx]
            edges += [_edge_of(args[self.batched_pos[i]]) for i in self.grad_data_idx]
            result._grad_fn = _NODE(tuple(e if e is not None else (None, 0) for e in edges),
                                    self, state)
            result._requires_grad = True
        return result

    # -- backward -----------------------------------------------------------------------------
    def backward(self, state, g):
        from ..tensor import Tensor
        kind, saved, n, vals, params = state
        prog, k = self.prog, self.k
        n_p = len(k.grad_params)
        if kind == "fused":
            scale = float(np.asarray(g._data).reshape(-1)[0])
            p_flat, d_cols = saved[:n_p], saved[n_p:]
        else:
            kern, g_syms, per_sample_g = k.vjp
            garr = np.asarray(g._data, dtype=self.np_dtype)
            if per_sample_g:
                gvals = columns(garr.reshape(n, -1), self.np_dtype)
            else:
                gvals = garr.reshape(-1).tolist()
            outs = kern.call_arrays(list(vals) + list(gvals))
            scale = 1.0
            p_flat, d_cols = outs[:n_p], outs[n_p:]
        grads = []
        if self.grad_param_idx:
            flat = np.array(p_flat, dtype=np.float64)
            if n == 0:  # a reduction over no samples: its gradient is an empty sum, 0 (PyTorch)
                flat = np.zeros_like(flat)
            if scale != 1.0:
                flat *= scale
            pos = 0
            for i in self.grad_param_idx:
                t = params[i]
                m = t._data.size
                grads.append(Tensor._wrap(flat[pos:pos + m].reshape(t._data.shape)
                                          .astype(t._dtype.np), t._dtype))
                pos += m
        pos = 0
        data_scale = scale / n if (prog.reduction == "mean" and n) else scale
        for i in self.grad_data_idx:
            b = prog.batched[i]
            m = int(np.prod(b.sample_shape)) if b.sample_shape else 1
            cols = d_cols[pos:pos + m]
            pos += m
            arr = np.stack(cols, axis=1) * data_scale if m else np.empty((n, 0))
            grads.append(Tensor._wrap(arr.reshape((n,) + tuple(b.sample_shape))
                                      .astype(self.np_dtype), self.dtype))
        return tuple(grads)


class CompiledFunction:
    """The callable :func:`symad.compile` returns. ``compile_count`` counts kernel builds."""

    def __init__(self, fn, *, fullgraph=False, dtype=None, threads=None, verbose=False) -> None:
        self._fn = fn
        self.fullgraph = fullgraph
        self.dtype = D.as_dtype(dtype) if dtype is not None else None
        self.threads = threads
        self.verbose = verbose
        self._entries: dict = {}
        self.compile_count = 0
        self._warned = False
        self.max_scalar_params = MAX_SCALAR_PARAMS   # above it: the tensor-program path
        self.__wrapped__ = fn
        self.__doc__ = getattr(fn, "__doc__", None)

    # a compiled module still looks like the module (parameters(), train(), state_dict(), ...)
    def __getattr__(self, name):
        if name.startswith("__") or name == "_fn":
            raise AttributeError(name)
        return getattr(self._fn, name)

    def __repr__(self) -> str:
        return f"symad.compile({self._fn!r})"

    @staticmethod
    def _classify(args):
        """(batch size, positions of batched tensors, signature key) in one pass.

        A tensor is batched when it is not a leaf that requires grad and its leading dimension
        equals that of the first such tensor; the key holds everything but the batch size."""
        from ..tensor import Tensor
        n = None
        batched = []
        sig = []
        for j, a in enumerate(args):
            if isinstance(a, Tensor):
                shape = a._data.shape
                param_like = a._grad_fn is None and a._requires_grad
                if n is None and shape and not param_like:
                    n = shape[0]
                is_b = bool(shape) and not param_like and shape[0] == n
                if is_b:
                    batched.append(j)
                    shape = shape[1:]
                sig.append((is_b, shape, a._dtype.name, a._requires_grad))
            elif isinstance(a, (int, float, bool, str, type(None))):
                sig.append(("V", a))
            else:
                sig.append(("O", id(a)))
        return n, batched, (tuple(sig), is_grad_enabled())

    def entry_for(self, args):
        """The compiled program for ``args``' signature, built if needed (used by
        ``compile_step``); ``(batched positions, entry or the fallback reason)``."""
        _, batched, key = self._classify(args)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._build(args, batched, key)
        return batched, entry

    def __call__(self, *args, **kwargs):
        from ..tensor import Tensor
        if kwargs:
            self._warn("keyword arguments are not compiled; pass them positionally",
                       stacklevel=3)
            return self._fn(*args, **kwargs)
        if any(type(a) is np.ndarray for a in args):
            args = tuple(Tensor._wrap(a) if type(a) is np.ndarray else a for a in args)
        n, batched, key = self._classify(args)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._build(args, batched, key)
        if isinstance(entry, str):
            return self._fn(*args)  # this signature runs eagerly (warned once)
        if isinstance(entry, ProgramEntry):
            return self._run_program(key, entry, args)
        params = entry.params_of(args)
        want = is_grad_enabled() and (any(params[i].requires_grad for i in entry.grad_param_idx)
                                      or any(args[entry.batched_pos[i]].requires_grad
                                             for i in entry.grad_data_idx))
        return entry.run(args, want)

    def _run_program(self, key, entry, args):
        n = len(entry.shapes)
        try:
            out = entry(args)
        except NotReplayable as e:
            self._fail(key, str(e))
            # the recording run was this call's eager run; when its graph is intact it is the
            # result, so the function runs no more often than without compile
            return e.out if e.out is not None else self._fn(*args)
        self.compile_count += len(entry.shapes) - n
        return out

    def _program_entry(self, key):
        """The tensor-program path for this signature (recorded at its first call)."""
        names = {}
        if hasattr(self._fn, "named_parameters"):
            names = {id(p): n for n, p in self._fn.named_parameters()}
        entry = ProgramEntry(self._fn, names, _NODE)
        self._entries[key] = entry
        return entry

    def _fail(self, key, reason):
        if self.fullgraph:
            raise NotCompilable(f"symad.compile(fullgraph=True): {reason}")
        self._warn(reason)
        self._entries[key] = reason
        return reason

    def _warn(self, reason: str, stacklevel: int = 5) -> None:
        """One warning per compiled callable, pointing at the user's call (default: the call
        went through ``__call__`` -> ``_build`` -> ``_fail``)."""
        if not self._warned:
            warnings.warn(f"symad.compile: running {getattr(self._fn, '__name__', self._fn)!r} "
                          f"eagerly: {reason}", CompileWarning, stacklevel=stacklevel)
            self._warned = True

    @staticmethod
    def _probe(args, batched, k: int = 4):
        """Copies of the batched arguments cut to ``k`` samples (fresh leaves)."""
        from ..tensor import Tensor
        out = list(args)
        for j in batched:
            a = args[j]
            t = Tensor._wrap(np.array(a._data[:k], copy=True), a.dtype)
            t._requires_grad = a.requires_grad
            out[j] = t
        return tuple(out)

    def _build(self, args, batched, key):
        from ..tensor import Tensor
        t0 = time.perf_counter()
        # decided without running the function: too many parameters to scalarize, or batched
        # integer data (class labels) -> the tensor-program path
        n_module = sum(p.numel() for p in self._fn.parameters()) \
            if hasattr(self._fn, "parameters") and callable(self._fn.parameters) else 0
        if n_module > self.max_scalar_params or any(
                not args[j].dtype.is_floating_point for j in batched):
            return self._program_entry(key)
        # 1. eager discovery on a few samples: the parameters are the graph's leaves that
        #    require grad; the same probe checks the kernel against eager afterwards.
        full_args, args = args, self._probe(args, batched)
        lazy = _has_lazy_parameters(self._fn)   # their first call draws initial values once
        try:
            with Watch(self._fn, show=False) as watch:
                ref = self._fn(*args)
            effect = watch.found(materializing=lazy)
            if effect is not None:
                # eager runs forward once per call: undo what the probe did (random draws,
                # counters; its prints were swallowed) and run eagerly from now on
                watch.undo()
                return self._fail(key, effect)
        except Exception as exc:
            # the probe changed the batch size: let the user's own call raise its own error
            self._fn(*full_args)
            return self._fail(key, "the function fails on a 4-sample slice of the batch but not "
                                   "on the whole batch (it depends on the batch size): the slice "
                                   f"raised {type(exc).__name__}: {exc}")
        if not isinstance(ref, Tensor):
            return self._fail(key, f"it returned {type(ref).__name__}, not a tensor")
        bset = set(batched)
        arg_ids = {id(args[j]) for j in batched}
        stop = [a.grad_fn for a in args if isinstance(a, Tensor) and a.grad_fn is not None]
        leaves = [t for t in _leaves(ref, stop) if id(t) not in arg_ids]
        params = list(leaves)
        for j, a in enumerate(args):
            if isinstance(a, Tensor) and j not in bset and all(a is not p for p in params):
                params.append(a)
        dts = [p.dtype for p in params] + [args[j].dtype for j in batched]
        if self.dtype is not None:
            dt = self.dtype
        else:
            floats = [d for d in dts if d.is_floating_point]
            dt = D.float64 if any(d == D.float64 for d in floats) else D.float32
        bshapes = [tuple(args[j].shape[1:]) for j in batched]
        n_scalars = sum(p.numel() for p in params)
        n_columns = sum(int(np.prod(sh)) if sh else 1 for sh in bshapes)
        if n_scalars > self.max_scalar_params or n_scalars + n_columns > MAX_C_ARGS:
            return self._program_entry(key)

        run = symbolic_caller(self._fn, args, params, batched)

        try:
            prog = trace_program(run, [(id(p), p._data) for p in params], bshapes, dt.name)
        except (NotCompilable, TracingError, NotImplementedError, TypeError, ValueError,
                IndexError, RecursionError):
            # not a per-sample scalar program (mixes samples, control flow on values, ...):
            # the tensor program records what eager runs
            return self._program_entry(key)
        param_grad = [p.requires_grad for p in params]
        data_grad = [args[j].requires_grad for j in batched]
        try:
            kern = ProgramKernels(prog, param_grad, data_grad, threads=self.threads,
                                  verbose=self.verbose)
        except ctypes.ArgumentError:      # more scalar arguments than a C call can take
            return self._program_entry(key)
        pos = {id(a): j for j, a in enumerate(args) if isinstance(a, Tensor)}
        refs = [("arg", pos[id(p)]) if id(p) in pos else ("obj", p) for p in params]
        entry = _Entry(kern, refs, batched, dt)
        entry.grad_param_idx = [i for i, f in enumerate(param_grad) if f]
        entry.grad_data_idx = [i for i, f in enumerate(data_grad) if f]
        try:
            self._selfcheck(entry, args, ref)
        except ctypes.ArgumentError:      # more scalar arguments than a C call can take
            return self._program_entry(key)
        except NotCompilable as e:
            return self._fail(key, str(e))
        except LoweringError as e:  # names the SymPy construct with no lowering
            return self._fail(key, str(e))
        except RecursionError as e:  # SymPy recursing on a relation: eager still works
            return self._fail(key, f"RecursionError in SymPy while building the kernel: {e}")
        self.compile_count += 1
        self._entries[key] = entry
        total = time.perf_counter() - t0
        if self.verbose or total > 1.0:  # a slow build says where its time went
            parts = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in kern.timings.items())
            print(f"symad.compile: built {getattr(self._fn, '__name__', 'module')} in "
                  f"{total * 1e3:.0f} ms ({parts})",
                  file=sys.stdout if self.verbose else sys.stderr)
        return entry

    def _selfcheck(self, entry, args, ref) -> None:
        """The kernel must reproduce the eager value (and gradients) it replaces."""
        want = is_grad_enabled() and ref.requires_grad
        out = entry.run(args, want)
        tol = 1e-9 if entry.dtype == D.float64 else 2e-4
        a, b = np.asarray(out._data, np.float64), np.asarray(ref._data, np.float64)
        scale = 1 + np.abs(b[np.isfinite(b)]).max(initial=0)  # nan where eager is nan is agreement
        if a.shape != b.shape or not np.allclose(a, b, rtol=tol, atol=tol * scale,
                                                 equal_nan=True):
            raise NotCompilable("the compiled kernel disagrees with the eager result "
                                f"(max abs difference {np.abs(a - b).max(initial=0):.3g})")
        if want and entry.grad_param_idx:
            from ..autograd import grad as agrad
            ps = [entry.params_of(args)[i] for i in entry.grad_param_idx]
            g = ones_like(ref)
            eager = agrad([ref], ps, grad_outputs=[g], allow_unused=True, retain_graph=True)
            comp = entry.backward(out.grad_fn._state, g)[:len(ps)]
            for e, c in zip(eager, comp):
                if e is None:
                    continue
                ea, ca = np.asarray(e._data, np.float64), np.asarray(c._data, np.float64)
                if not np.allclose(ca, ea, rtol=tol * 10, atol=tol * 10 * (1 + np.abs(ea).max(
                        initial=0))):
                    raise NotCompilable("the compiled gradient disagrees with eager autograd "
                                        f"(max abs difference {np.abs(ca - ea).max():.3g})")


def compile(fn=None, *, fullgraph: bool = False, dtype=None, threads: int | None = None,
            verbose: bool = False):
    """Compile a function or ``nn.Module`` to native kernels (usable as a decorator).

    >>> import symad
    >>> @symad.compile
    ... def loss_fn(w, x, y):
    ...     return ((w * x - y) ** 2).mean()
    >>> w = symad.tensor(1.0, requires_grad=True)
    >>> x = symad.linspace(0, 1, 5); y = 3 * x
    >>> loss = loss_fn(w, x, y); loss.backward(); round(w.grad.item(), 4)
    -1.5
    """
    if fn is None:
        return lambda f: compile(f, fullgraph=fullgraph, dtype=dtype, threads=threads,
                                 verbose=verbose)
    return CompiledFunction(fn, fullgraph=fullgraph, dtype=dtype, threads=threads,
                            verbose=verbose)
