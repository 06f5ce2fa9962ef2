"""Custom autograd.Functions from the seed tutorials, shared by the tests (seed 003's Square)."""
from __future__ import annotations

import symad


class Square(symad.autograd.Function):
    """Seed 003: y = x**2 with a hand-written backward 2*x*g."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 2

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g
