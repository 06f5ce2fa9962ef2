"""Native kernels of a traced :class:`~symad.compiler.program.Program`, built on demand.

* forward: the per-sample outputs (or their batch reduction);
* fused: for a scalar reduced loss, the loss AND its exact gradients in one pass over the data
  (the upstream gradient of a scalar is a scale factor applied afterwards);
* vjp: for per-sample or vector outputs, gradients contracted with the upstream gradient, which
  enters the kernel as extra (batched or scalar) inputs.
"""
from __future__ import annotations

import time

import numpy as np
import sympy

from .program import Program


def _gradient(expr, wrt):
    from ..symbolic.reverse import reverse_gradient
    return reverse_gradient(expr, list(wrt))


class ProgramKernels:
    def __init__(self, prog: Program, param_grad: list[bool], data_grad: list[bool], *,
                 threads, verbose: bool = False) -> None:
        self.prog = prog
        self.threads = threads
        self.verbose = verbose
        self.param_syms = [s for p in prog.params for s in p.symbols.reshape(-1)]
        self.data_syms = [s for b in prog.batched for s in b.symbols.reshape(-1)]
        self.inputs = self.param_syms + self.data_syms
        self.batched_set = set(self.data_syms)
        # which symbols we differentiate with respect to
        self.grad_params = [s for p, need in zip(prog.params, param_grad) if need
                            for s in p.symbols.reshape(-1)]
        self.grad_data = [s for b, need in zip(prog.batched, data_grad) if need
                          for s in b.symbols.reshape(-1)]
        self._fwd = self._fused = self._vjp = None
        self.timings: dict[str, float] = dict(prog.timings)

    def _compile(self, inputs, outputs, batched, reduce, name):
        from codegen import compile_kernel
        t0 = time.perf_counter()
        k = compile_kernel(inputs, outputs, batched=batched, reduce=reduce,
                           dtype=self.prog.dtype, threads=self.threads, name=name)
        self.timings[f"lower+jit {name}"] = time.perf_counter() - t0
        return k

    def _red(self):
        return self.prog.reduction if self.data_syms else "none"

    @property
    def forward(self):
        if self._fwd is None:
            self._fwd = self._compile(self.inputs, self.prog.per_sample, self.data_syms,
                                      self._red(), "symad_forward")
        return self._fwd

    @property
    def fused(self):
        """Scalar loss: [loss, dloss/dparams..., dq/ddata...] in one pass."""
        if self._fused is None:
            (q,) = self.prog.per_sample
            t0 = time.perf_counter()
            grads = _gradient(q, self.grad_params + self.grad_data)
            self.timings["derive"] = time.perf_counter() - t0
            red = self._red()
            n_p = len(self.grad_params)
            reduce = [red] + [red] * n_p + ["none"] * len(self.grad_data)
            self._fused = self._compile(self.inputs, [q] + grads, self.data_syms, reduce,
                                        "symad_fused")
        return self._fused

    @property
    def vjp(self):
        """Inputs + upstream gradient symbols -> contracted gradients."""
        if self._vjp is None:
            prog = self.prog
            g_syms = [sympy.Symbol(f"g_{j}", real=True) for j in range(len(prog.per_sample))]
            s = sympy.Add(*[g * q for g, q in zip(g_syms, prog.per_sample)])
            t0 = time.perf_counter()
            grads = _gradient(s, self.grad_params + self.grad_data)
            self.timings["derive"] = time.perf_counter() - t0
            red = self._red()
            per_sample_g = red == "none" and bool(self.data_syms)
            batched = self.data_syms + (g_syms if per_sample_g else [])
            p_red = "sum" if per_sample_g else red
            reduce = [p_red] * len(self.grad_params) + ["none"] * len(self.grad_data)
            self._vjp = (self._compile(self.inputs + g_syms, grads, batched, reduce,
                                       "symad_vjp"), g_syms, per_sample_g)
        return self._vjp


def columns(arr: np.ndarray, dtype) -> list[np.ndarray]:
    """Per-sample element columns of a batched array (N, *sample) as contiguous 1-D arrays."""
    a = np.asarray(arr, dtype=dtype)
    n = a.shape[0]
    # aligned as well as contiguous: a tensor over a misaligned buffer (np.frombuffer at an odd
    # offset) is valid user data; the kernel gets an aligned copy instead of an error
    if a.ndim == 1:
        return [np.require(a, requirements=("C", "A"))]
    flat = a.reshape(n, -1)
    if flat.shape[1] == 1:
        return [np.require(flat[:, 0], requirements=("C", "A"))]
    cols = np.require(flat.T, requirements=("C", "A"))
    return list(cols)
