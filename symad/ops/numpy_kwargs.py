"""NumPy's keyword names on PyTorch functions: ``axis`` for ``dim``, ``keepdims`` for ``keepdim``.

PyTorch's argument parser accepts these aliases on every native function and tensor method
(``x.sum(0, keepdims=True)``, ``x.argmax(axis=1)``); :func:`numpy_kwargs` gives a symad
function the same spelling. Passing both names of one argument is a ``TypeError``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

ALIASES = {"axis": "dim", "keepdims": "keepdim"}

# the reductions and shape functions that take ``dim``/``keepdim`` (functions and methods)
NAMES = ("sum", "mean", "prod", "max", "min", "amax", "amin", "argmax", "argmin", "norm", "std",
         "var", "logsumexp", "softmax", "log_softmax", "cat", "concat", "concatenate", "stack",
         "squeeze", "unsqueeze", "all", "any", "cumsum", "split", "chunk", "gather", "sort",
         "argsort", "topk")


def numpy_kwargs(fn: Callable) -> Callable:
    """``fn`` accepting ``axis=``/``keepdims=`` as PyTorch does (renamed to ``dim``/``keepdim``)."""
    if getattr(fn, "_numpy_kwargs", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        if "axis" in kwargs or "keepdims" in kwargs:
            for alias, name in ALIASES.items():
                if alias in kwargs:
                    if name in kwargs:
                        raise TypeError(f"{fn.__name__}() got multiple values for argument "
                                        f"'{name}' ('{alias}' is NumPy's name for it)")
                    kwargs[name] = kwargs.pop(alias)
        return fn(*args, **kwargs)
    wrapper._numpy_kwargs = True  # type: ignore[attr-defined]
    return wrapper


def add_numpy_kwargs(namespace: Any, names: Iterable[str] = NAMES) -> None:
    """Wrap each of ``names`` present in ``namespace`` (a module's globals dict or a class)."""
    is_dict = isinstance(namespace, dict)
    for name in names:
        fn = namespace.get(name) if is_dict else namespace.__dict__.get(name)
        if fn is None or not callable(fn):
            continue
        if is_dict:
            namespace[name] = numpy_kwargs(fn)
        else:
            setattr(namespace, name, numpy_kwargs(fn))
