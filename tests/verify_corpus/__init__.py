"""A corpus of published hand-derived tensor gradients, written the way CS231n-style numpy code
writes them (``np.sum(..., axis=0)``, ``x * (x > 0)``, ``dx[x <= 0] = 0``, ``np.maximum``,
``np.where``, helper functions, keyword arguments), each correct and with the bugs people make.

Every case is ``f(inputs) -> scalar`` (the forward pass contracted with an upstream gradient
``dout``, so its gradient is exactly the layer's backward) and a claimed backward with the same
parameters. ``expect`` is the right verdict: "right" or "wrong"; it is fixed by the derivation
in the published source (and cross-checked in the test with a float64 numeric gradient).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Callable

MODULES = ("layers", "losses", "norms", "nets", "recurrent")


@dataclass
class Case:
    """One claimed backward: f, the claim, example inputs, what to check, the right verdict."""

    name: str
    f: Callable
    claimed: Callable
    inputs: dict[str, Any]
    wrt: list[str]
    expect: str                      # "right" or "wrong"
    source: str = ""
    constants: list[str] = field(default_factory=list)


def all_cases() -> list[Case]:
    out: list[Case] = []
    for name in MODULES:
        for c in import_module(f"{__name__}.{name}").cases():
            out.append(Case(**c))
    return out
