"""PyTorch-style ``repr`` of tensor values (``tensor([2., 4., 6.])``, ``tensor(9.6000)``)."""
from __future__ import annotations

import numpy as np

PRECISION = 4
THRESHOLD = 1000
EDGEITEMS = 3
LINEWIDTH = 80


def _float_formatter(values: np.ndarray):
    finite = values[np.isfinite(values)]
    nonzero = np.abs(finite[finite != 0])
    int_mode = finite.size == 0 or bool(np.all(finite == np.ceil(finite)))
    sci = False
    if int_mode:
        if nonzero.size and nonzero.max() > 1e8:
            sci = True
    elif nonzero.size:
        mx, mn = nonzero.max(), nonzero.min()
        if mx / mn > 1000.0 or mx > 1e8 or mn < 1e-4:
            sci = True

    def fmt(v: float) -> str:
        if not np.isfinite(v):
            return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")
        if sci:
            return f"{v:.{PRECISION}e}"
        if int_mode:
            return f"{v:.0f}."
        return f"{v:.{PRECISION}f}"
    return fmt


def _formatter(a: np.ndarray):
    if a.dtype == object:
        return lambda v: str(v)
    if a.dtype == np.bool_:
        return lambda v: "True" if v else "False"
    if a.dtype.kind in "iu":
        return lambda v: str(int(v))
    return _float_formatter(a.reshape(-1).astype(np.float64))


def _summarize(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0 or a.size <= THRESHOLD:
        return a.reshape(-1)
    parts = []

    def walk(x):
        if x.ndim == 1:
            parts.append(x[:EDGEITEMS] if x.shape[0] > 2 * EDGEITEMS else x)
            if x.shape[0] > 2 * EDGEITEMS:
                parts.append(x[-EDGEITEMS:])
            return
        rows = range(x.shape[0])
        if x.shape[0] > 2 * EDGEITEMS:
            rows = list(range(EDGEITEMS)) + list(range(x.shape[0] - EDGEITEMS, x.shape[0]))
        for r in rows:
            walk(x[r])
    walk(a)
    return np.concatenate(parts) if parts else a.reshape(-1)


def format_values(a: np.ndarray, indent: int) -> str:
    if a.size == 0:
        return "[]"  # PyTorch prints any empty tensor as [] (the size follows in the repr)
    fmt = _formatter(_summarize(a))
    sample = _summarize(a)
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]  # like PyTorch, nan/inf do not widen the columns
    width = max((len(fmt(v)) for v in sample), default=0)
    summarize = a.size > THRESHOLD

    def cell(v):
        return fmt(v).rjust(width)

    def rec(x, ind):
        if x.ndim == 0:
            return fmt(x.item() if x.dtype != object else x[()])
        if x.ndim == 1:
            items = [cell(v) for v in x]
            if summarize and x.shape[0] > 2 * EDGEITEMS:
                items = items[:EDGEITEMS] + ["..."] + items[-EDGEITEMS:]
            per_line = max(1, (LINEWIDTH - ind) // (width + 2))
            lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
            return "[" + (",\n" + " " * (ind + 1)).join(lines) + "]"
        idx = range(x.shape[0])
        subs = []
        if summarize and x.shape[0] > 2 * EDGEITEMS:
            subs = [rec(x[i], ind + 1) for i in range(EDGEITEMS)] + ["..."] + \
                [rec(x[i], ind + 1) for i in range(x.shape[0] - EDGEITEMS, x.shape[0])]
        else:
            subs = [rec(x[i], ind + 1) for i in idx]
        sep = "," + "\n" * (x.ndim - 1) + " " * (ind + 1)
        return "[" + sep.join(subs) + "]"

    return rec(a, indent)
