"""Symbolic tracing: symad computations as exact SymPy expressions and derivatives.

* :func:`trace` / :class:`Trace` — run a function on symbols, get outputs, gradients (reverse mode
  over the expression DAG), Jacobians, Hessians, kinks.
* :func:`trace_batched` / :class:`BatchedTrace` — a per-sample expression plus a reduction.
* :func:`explain` / :class:`Explanation` — the exact derivative formulas behind an eager result.
* :func:`trace_function_backward` — trace a custom Function's hand-written backward.
* :func:`symbolic_tensor`, :func:`reverse_gradient`, :func:`reverse_jacobian`.
"""
from __future__ import annotations

from .reverse import (NoDerivativeRule, display_simplify, expression_size, kinks,
                      reverse_gradient, reverse_jacobian)
from .symbols import ElementSymbol, symbolic_tensor
from .trace import FunctionBackwardTrace, Trace, Variable, trace, trace_function_backward
from .batched import BatchedTrace, NotBatchSeparable, trace_batched
from .explain import Explanation, explain

__all__ = ["trace", "Trace", "Variable", "explain", "Explanation", "symbolic_tensor",
           "ElementSymbol", "reverse_gradient", "reverse_jacobian", "kinks", "expression_size",
           "display_simplify", "trace_batched", "BatchedTrace", "NotBatchSeparable",
           "trace_function_backward", "FunctionBackwardTrace", "NoDerivativeRule"]
