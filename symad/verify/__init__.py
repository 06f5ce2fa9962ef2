"""Gradient verification: prove a hand-derived gradient right, or show where it is wrong.

>>> import symad
>>> r = symad.check_gradient("x**2 + 3*x*y + y**2", {"x": "2*x + 3*y", "y": "3*x + 3*y"})
>>> r.ok, r["y"].counterexample is not None
(False, True)
"""
from __future__ import annotations

from .check import check_function, check_gradient
from .decide import Counterexample, Verdict, compare
from .report import GradientItem, GradientReport

__all__ = ["check_gradient", "check_function", "GradientReport", "GradientItem",
           "Counterexample", "compare", "Verdict"]
