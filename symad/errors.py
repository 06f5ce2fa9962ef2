"""Exceptions symad raises beyond Python's built-ins."""
from __future__ import annotations


class TracingError(TypeError):
    """A traced (symbolic) value was used where a concrete number is needed (``if x > 0:``,
    ``float(x)``). Use ``symad.where`` for data-dependent choices."""


def concrete_value(v):
    """The Python number behind a traced element, or a TracingError naming the problem."""
    import sympy
    e = sympy.sympify(v)
    if e.is_Integer:
        return int(e)
    if e.is_number and e.is_real is not False:
        try:
            return float(e)
        except TypeError:
            pass
    if e in (sympy.true, sympy.false):
        return bool(e)
    raise TracingError(
        f"cannot convert the traced value {e} to a Python number: it depends on the traced "
        "inputs. Python control flow on traced values (if/while, float(), item()) cannot be "
        "traced; use symad.where(cond, a, b) for a data-dependent choice.")
