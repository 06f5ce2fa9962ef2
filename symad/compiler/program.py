"""One compiled signature: the per-sample SymPy program of a function and its native kernels.

Pipeline (one direction): run the function on symbolic stand-ins (parameters as symbols, batched
data as ONE symbolic sample) → per-sample expressions plus a batch reduction → exact gradients by
reverse mode over the expression DAG → ``codegen`` kernels that loop over the batch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import sympy

from ..autograd.grad_mode import no_grad
from ..symbolic.batched import classify_reduction


class NotCompilable(Exception):
    """The function cannot be compiled for this signature (the message says why)."""


def symbol_array(prefix: str, shape: tuple) -> np.ndarray:
    """An object array of real SymPy symbols named ``prefix_i_j`` (valid C identifiers)."""
    n = int(np.prod(shape)) if shape else 1
    if not shape:
        return np.array(sympy.Symbol(prefix, real=True), dtype=object)
    idx = np.ndindex(*shape)
    syms = [sympy.Symbol(f"{prefix}_{'_'.join(map(str, i))}", real=True) for i in idx]
    return np.array(syms, dtype=object).reshape(shape) if n else np.empty(shape, dtype=object)


@dataclass
class BatchedInput:
    """A data argument whose leading dimension is the batch."""
    index: int            # position among the call's tensor arguments
    sample_shape: tuple   # shape of one sample
    symbols: np.ndarray   # object array, sample_shape, for sample 0


@dataclass
class ParamInput:
    """A tensor entering the kernel as scalars (model parameters, small constants)."""
    tensor_id: int
    shape: tuple
    symbols: np.ndarray


@dataclass
class Program:
    params: list[ParamInput]
    batched: list[BatchedInput]
    per_sample: list[sympy.Expr]     # flattened outputs for ONE sample
    out_shape: tuple                 # per-sample output shape (reduction none) or reduced shape
    reduction: str                   # "none" | "sum" | "mean"
    dtype: str
    timings: dict = field(default_factory=dict)


def symbolic_caller(fn, args, params, batched_pos):
    """``run(param_syms, data_syms)`` for :func:`trace_program`: calls ``fn(*args)`` with each
    tensor in ``params`` temporarily holding symbols (so modules and closures see them) and the
    batched arguments replaced by symbolic samples; the tensors are restored afterwards."""
    from .. import _dtype as D
    from ..tensor import Tensor

    def run(param_syms, data_syms):
        saved = [p._data for p in params]
        try:
            for p, s in zip(params, param_syms):
                p._data = s
            call = list(args)
            for j, d in zip(batched_pos, data_syms):
                call[j] = Tensor._wrap(d, D.float64)
            return fn(*call)
        finally:
            for p, s in zip(params, saved):
                p._data = s
    return run


def _tensor_out(out):
    from ..tensor import Tensor
    if not isinstance(out, Tensor):
        raise NotCompilable(f"the function returned {type(out).__name__}; symad.compile supports "
                            "functions returning one tensor")
    return out


def _flat(t) -> list:
    return [sympy.sympify(v) for v in np.asarray(t._data, dtype=object).reshape(-1)]


def trace_program(run, params, batched_shapes, n_params_dtype: str) -> Program:
    """Trace ``run(param_arrays, batched_arrays)`` (which returns a tensor) per sample.

    ``params``: list of (id, array) for tensors entering as scalar symbols; ``batched_shapes``:
    list of per-sample shapes. The function is traced with a batch of 1 and of 2 symbolic samples
    to learn whether its output is per sample, or a sum or mean of a per-sample term.
    """
    t0 = time.perf_counter()
    pins = [ParamInput(pid, tuple(arr.shape), symbol_array(f"p{k}", tuple(arr.shape)))
            for k, (pid, arr) in enumerate(params)]
    samples = [[symbol_array(f"x{j}s{s}", shape) for j, shape in enumerate(batched_shapes)]
               for s in range(2)]

    def run_n(n):
        data = [np.stack([samples[s][j] for s in range(n)]) for j in range(len(batched_shapes))]
        with no_grad():
            out = _tensor_out(run([p.symbols for p in pins], data))
        return out

    out1 = run_n(1)
    if not batched_shapes:
        exprs = _flat(out1)
        prog = Program(pins, [], exprs, tuple(out1.shape), "none", n_params_dtype)
        prog.timings["trace"] = time.perf_counter() - t0
        return prog
    out2 = run_n(2)
    pairs = [(a, b) for j in range(len(batched_shapes))
             for a, b in zip(samples[0][j].reshape(-1), samples[1][j].reshape(-1))]
    bins = [BatchedInput(j, tuple(shape), samples[0][j]) for j, shape in enumerate(batched_shapes)]
    found = classify_reduction(out1._data, out2._data, pairs)
    if found is not None:
        red, q = found
        out_shape = tuple(out1.shape[1:]) if red == "none" else tuple(out1.shape)
        prog = Program(pins, bins, [sympy.sympify(e) for e in np.asarray(q).reshape(-1)],
                       out_shape, red, n_params_dtype)
        prog.timings["trace"] = time.perf_counter() - t0
        return prog
    raise NotCompilable("the output is neither per sample nor a sum/mean over the batch of a "
                        "per-sample term (it mixes samples), so it cannot be compiled as a batch "
                        "kernel")
